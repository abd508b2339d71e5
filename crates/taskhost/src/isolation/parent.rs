//! The host side: [`ChildWorker`], one child process serving one executor worker's tasks.

use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::protocol::{send, Inbox, Outcome, Request, Response};
use super::{ChildSpec, CPU_LIMIT_ENV, MEMORY_LIMIT_ENV, PARENT_ENV, SOCKET_ENV};
use taskhost_loader::{RunContext, TaskFailure, TracingContext};

/// How often a waiting host looks at the task's cancel check and the clock.
const POLL: Duration = Duration::from_millis(20);
/// How long a child may take to load its plugins and say it is ready.
const START_LIMIT: Duration = Duration::from_secs(30);
/// How long a child that was asked to exit (its socket closed) gets before it is killed.
const EXIT_GRACE: Duration = Duration::from_secs(2);

/// Why a task run in a child has no outcome from the plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Crash {
    /// The child died while running the task; what happened, as an operator reads it
    /// ("worker process killed by SIGSEGV while running p/t").
    Died(String),
    /// The task did not stop within the grace after it was asked to; the child was killed.
    Killed(String),
    /// No child could be started (or it refused to serve): the task never ran.
    NotStarted(String),
}

impl std::fmt::Display for Crash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Crash::Died(why) | Crash::Killed(why) | Crash::NotStarted(why) => f.write_str(why),
        }
    }
}

/// What a look at the socket found.
enum Event {
    Message(Response),
    /// Nothing within the poll interval.
    Nothing,
    /// The socket closed or carried something that is not a message: the child is gone or
    /// broken.
    Gone,
}

/// One live child process and its socket, read by the worker thread itself (a reader thread
/// would add a wake-up to every round trip).
struct Live {
    child: Child,
    /// Reads time out after [`POLL`], so that a waiting worker looks at its stop request.
    socket: UnixStream,
    /// What was read and not yet taken as a message.
    inbox: Inbox,
    /// The threads that forward its stdout and stderr: they end when it has ended.
    forwarders: Vec<thread::JoinHandle<()>>,
}

/// A child process that serves one executor worker's tasks, started on demand and replaced
/// after it dies. Dropping it ends the child (its socket closes; killed after a grace).
#[derive(Debug)]
pub struct ChildWorker {
    spec: Arc<ChildSpec>,
    worker: String,
    live: Option<LiveHandle>,
    next_id: u64,
    /// The task running now, for the lines the child prints.
    running: Arc<Mutex<Option<String>>>,
    /// A line the child wrote to stderr during the task that says why it died (an allocation
    /// failure says so there).
    last_stderr: Arc<Mutex<String>>,
}

/// [`Live`], kept apart so that `ChildWorker` can derive `Debug`.
struct LiveHandle(Live);

impl std::fmt::Debug for LiveHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live")
            .field("pid", &self.0.child.id())
            .finish()
    }
}

impl ChildWorker {
    /// A worker for the executor worker `worker`; its child starts now (if it cannot, the
    /// first task says why and the next one tries again).
    pub fn new(spec: Arc<ChildSpec>, worker: &str) -> ChildWorker {
        let mut this = ChildWorker {
            spec,
            worker: worker.to_owned(),
            live: None,
            next_id: 0,
            running: Arc::new(Mutex::new(None)),
            last_stderr: Arc::new(Mutex::new(String::new())),
        };
        if let Err(error) = this.start() {
            tracing::warn!(worker = %this.worker, error = %error, "isolation.start_failed");
        }
        this
    }

    /// The child's process id, while one is running.
    pub fn pid(&self) -> Option<u32> {
        self.live.as_ref().map(|live| live.0.child.id())
    }

    fn start(&mut self) -> Result<(), Crash> {
        let live = spawn_child(&self.spec, &self.worker, &self.running, &self.last_stderr)
            .map_err(|e| Crash::NotStarted(format!("cannot start a worker process: {e:#}")))?;
        tracing::debug!(
            target: "taskhost::isolation",
            worker = %self.worker,
            pid = live.child.id(),
            "worker_process.started"
        );
        self.live = Some(LiveHandle(live));
        Ok(())
    }

    /// Runs `task` (of `plugin`) on `input` in the child. `cancelled` is polled while it runs:
    /// once it turns true the child is asked to stop the task, and killed if the task has not
    /// ended `kill_after` later. What the task logs and reports as progress is emitted here, as
    /// if it ran in this process. `Err`: the child died or was killed (and will be replaced by
    /// the next call), or could not be started.
    pub fn run(
        &mut self,
        plugin: &str,
        task: &str,
        input: &[u8],
        cancelled: &dyn Fn() -> bool,
        kill_after: Duration,
    ) -> Result<Result<Vec<u8>, TaskFailure>, Crash> {
        if self.live.is_none() {
            self.start()?;
        }
        self.next_id += 1;
        let id = self.next_id;
        let request = Request::Run {
            id,
            task: task.to_owned(),
            input: String::from_utf8_lossy(input).into_owned(),
        };
        *self.running.lock().unwrap_or_else(|e| e.into_inner()) = Some(task.to_owned());
        self.last_stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        let context = TracingContext::with_names(plugin, task);
        let result = self.exchange(id, &context, &request, cancelled, kill_after);
        *self.running.lock().unwrap_or_else(|e| e.into_inner()) = None;
        if let Err(crash) = &result {
            // Whatever happened, this child is done; the next call starts another.
            if let Some(LiveHandle(live)) = self.live.take() {
                tracing::warn!(
                    target: "taskhost::isolation",
                    worker = %self.worker,
                    pid = live.child.id(),
                    task,
                    error = %crash,
                    "worker_process.crashed"
                );
                end_child(live, Duration::ZERO);
            }
        }
        result
    }

    fn exchange(
        &mut self,
        id: u64,
        context: &TracingContext<'_>,
        request: &Request,
        cancelled: &dyn Fn() -> bool,
        kill_after: Duration,
    ) -> Result<Result<Vec<u8>, TaskFailure>, Crash> {
        let task = context_task(request);
        let Some(LiveHandle(live)) = self.live.as_mut() else {
            return Err(Crash::NotStarted("no worker process".into()));
        };
        if send(&live.socket, request).is_err() {
            return Err(Crash::Died(died(live, task, &self.spec, &self.last_stderr)));
        }
        let mut asked_to_stop: Option<Instant> = None;
        loop {
            match receive(live) {
                Event::Message(Response::Done { id: done, outcome }) if done == id => {
                    return Ok(match outcome {
                        Outcome::Ok { output } => Ok(output.into_bytes()),
                        Outcome::OkBytes { output } => Ok(output),
                        Outcome::Failed { kind, message } => Err(TaskFailure {
                            kind: kind.kind(),
                            message,
                        }),
                    });
                }
                Event::Message(Response::Log {
                    id: from,
                    level,
                    message,
                }) if from == id => context.log(level.level(), &message),
                Event::Message(Response::Progress {
                    id: from,
                    done,
                    total,
                }) if from == id => context.progress(done, total),
                Event::Message(_) | Event::Nothing => {}
                Event::Gone => {
                    return Err(Crash::Died(died(live, task, &self.spec, &self.last_stderr)));
                }
            }
            match asked_to_stop {
                None if cancelled() => {
                    asked_to_stop = Some(Instant::now());
                    let _ = send(&live.socket, &Request::Cancel { id });
                    // The child reads its socket only when its task looks at its cancel check
                    // after this signal (it has no reader thread: one wake-up less per call).
                    nudge(&live.child);
                }
                Some(at) if at.elapsed() >= kill_after => {
                    let _ = live.child.kill();
                    let _ = live.child.wait();
                    return Err(Crash::Killed(format!(
                        "task {task} did not stop within {} ms of being asked to; its worker \
                         process was killed",
                        kill_after.as_millis()
                    )));
                }
                _ => {}
            }
        }
    }
}

impl Drop for ChildWorker {
    fn drop(&mut self) {
        if let Some(LiveHandle(live)) = self.live.take() {
            end_child(live, EXIT_GRACE);
        }
    }
}

/// The task a request runs.
fn context_task(request: &Request) -> &str {
    match request {
        Request::Run { task, .. } => task,
        Request::Cancel { .. } => "-",
    }
}

/// Waits for a child whose socket failed and says how it ended, and what a limit of its pool
/// may have had to do with it.
fn died(live: &mut Live, task: &str, spec: &ChildSpec, last_stderr: &Mutex<String>) -> String {
    // The socket closes as the process exits; its status follows within moments.
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        match live.child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(5)),
            Ok(None) | Err(_) => {
                let _ = live.child.kill();
                break live.child.wait().ok();
            }
        }
    };
    // What it wrote last (an allocation failure says so on stderr) is read to the end.
    let deadline = Instant::now() + Duration::from_millis(500);
    while live.forwarders.iter().any(|f| !f.is_finished()) && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(2));
    }
    match status {
        Some(status) => {
            let how = describe(status);
            let last = last_stderr.lock().unwrap_or_else(|e| e.into_inner());
            let note = spec.limits_note(&format!("{how} {last}"));
            format!("worker process {how} while running {task}{note}")
        }
        None => format!("worker process lost while running {task}"),
    }
}

/// "killed by SIGSEGV", "exited with code 3", "exited with code 0".
pub(crate) fn describe(status: ExitStatus) -> String {
    if let Some(signal) = status.signal() {
        let core = if status.core_dumped() {
            " (core dumped)"
        } else {
            ""
        };
        return format!("killed by {}{core}", signal_name(signal));
    }
    match status.code() {
        Some(code) => format!("exited with code {code}"),
        None => "ended".to_owned(),
    }
}

/// The usual name of a Linux signal number.
fn signal_name(signal: i32) -> String {
    let name = match signal {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        5 => "SIGTRAP",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        24 => "SIGXCPU",
        25 => "SIGXFSZ",
        31 => "SIGSYS",
        _ => return format!("signal {signal}"),
    };
    name.to_owned()
}

/// Tells a child that a message waits for its running task (`SIGUSR1`).
fn nudge(child: &Child) {
    use rustix::process::{kill_process, Pid, Signal};
    if let Some(pid) = Pid::from_raw(child.id() as i32) {
        let _ = kill_process(pid, Signal::USR1);
    }
}

/// Ends a child: closing its socket tells it to exit; after `grace` it is killed.
fn end_child(live: Live, grace: Duration) {
    let Live {
        mut child, socket, ..
    } = live;
    let _ = socket.shutdown(std::net::Shutdown::Both);
    drop(socket);
    let deadline = Instant::now() + grace;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => return,
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(5)),
            _ => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A private folder (mode 0700) for the socket, removed when dropped.
struct SocketDir(PathBuf);

impl SocketDir {
    fn new(worker: &str) -> io::Result<SocketDir> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let safe: String = worker
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .take(40)
            .collect();
        let dir = std::env::temp_dir().join(format!("taskhost-{}-{safe}-{n}", std::process::id()));
        std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
        Ok(SocketDir(dir))
    }

    fn socket(&self) -> PathBuf {
        self.0.join("worker.sock")
    }
}

impl Drop for SocketDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn spawn_child(
    spec: &ChildSpec,
    worker: &str,
    running: &Arc<Mutex<Option<String>>>,
    last_stderr: &Arc<Mutex<String>>,
) -> anyhow::Result<Live> {
    use anyhow::Context;
    let dir = SocketDir::new(worker).context("creating the worker socket's folder")?;
    let path = dir.socket();
    let listener =
        UnixListener::bind(&path).with_context(|| format!("binding {}", path.display()))?;
    listener.set_nonblocking(true)?;
    let mut command = Command::new(&spec.program);
    command
        .args(&spec.args)
        .env(SOCKET_ENV, &path)
        .env("TASKHOST_WORKER_NAME", worker)
        .env(PARENT_ENV, std::process::id().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(bytes) = spec.memory_limit {
        command.env(MEMORY_LIMIT_ENV, bytes.to_string());
    }
    if let Some(limit) = spec.cpu_limit {
        command.env(CPU_LIMIT_ENV, limit.as_secs().max(1).to_string());
    }
    let mut child = command
        .spawn()
        .with_context(|| format!("starting {}", spec.program.display()))?;
    let mut forwarders = Vec::new();
    for (stream, pipe) in [
        (
            "stdout",
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        ),
        (
            "stderr",
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        ),
    ] {
        if let Some(pipe) = pipe {
            let last = (stream == "stderr").then(|| Arc::clone(last_stderr));
            forwarders.extend(forward_output(
                pipe,
                stream,
                worker,
                child.id(),
                Arc::clone(running),
                last,
            ));
        }
    }
    let socket = match accept(&listener, &mut child) {
        Ok(socket) => socket,
        Err(error) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(error);
        }
    };
    drop(listener);
    drop(dir);
    socket.set_nonblocking(false)?;
    socket.set_read_timeout(Some(POLL))?;
    let mut live = Live {
        child,
        socket,
        inbox: Inbox::default(),
        forwarders,
    };
    wait_ready(&mut live)?;
    Ok(live)
}

/// Accepts the child's connection, or says why it never came.
fn accept(listener: &UnixListener, child: &mut Child) -> anyhow::Result<UnixStream> {
    let deadline = Instant::now() + START_LIMIT;
    loop {
        match listener.accept() {
            Ok((socket, _)) => return Ok(socket),
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
            Err(error) => return Err(error.into()),
        }
        if let Some(status) = child.try_wait()? {
            anyhow::bail!(
                "the worker process {} before it connected",
                describe(status)
            );
        }
        if Instant::now() >= deadline {
            anyhow::bail!(
                "the worker process did not connect within {} s",
                START_LIMIT.as_secs()
            );
        }
        thread::sleep(Duration::from_millis(2));
    }
}

fn wait_ready(live: &mut Live) -> anyhow::Result<()> {
    let deadline = Instant::now() + START_LIMIT;
    loop {
        match receive(live) {
            Event::Message(Response::Ready { .. }) => return Ok(()),
            Event::Message(Response::Refused { error }) => {
                anyhow::bail!("the worker process could not serve: {error}")
            }
            Event::Message(other) => anyhow::bail!("the worker process said {other:?} first"),
            Event::Nothing if Instant::now() < deadline => {}
            Event::Nothing => {
                anyhow::bail!(
                    "the worker process was not ready within {} s",
                    START_LIMIT.as_secs()
                )
            }
            Event::Gone => {
                let status = live.child.wait()?;
                anyhow::bail!("the worker process {} while starting", describe(status))
            }
        }
    }
}

/// The next message from the child, reading for at most [`POLL`].
fn receive(live: &mut Live) -> Event {
    loop {
        match live.inbox.take() {
            Ok(Some(message)) => return Event::Message(message),
            Ok(None) => {}
            Err(_) => return Event::Gone,
        }
        match live.inbox.fill(&live.socket) {
            Ok(0) => return Event::Gone,
            Ok(_) => {}
            Err(error)
                if matches!(
                    error.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Event::Nothing
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Event::Gone,
        }
    }
}

/// Turns what the child prints into tracing events (`plugin.output`, warnings) naming the
/// worker and the task it ran.
fn forward_output(
    pipe: Box<dyn Read + Send>,
    stream: &'static str,
    worker: &str,
    pid: u32,
    running: Arc<Mutex<Option<String>>>,
    last: Option<Arc<Mutex<String>>>,
) -> Option<thread::JoinHandle<()>> {
    let worker = worker.to_owned();
    thread::Builder::new()
        .name(format!("{worker}-{stream}"))
        .spawn(move || {
            for line in BufReader::new(pipe).split(b'\n') {
                let Ok(line) = line else { return };
                let line = String::from_utf8_lossy(&line);
                let task = running.lock().unwrap_or_else(|e| e.into_inner()).clone();
                // Warnings: in a thread pool the same lines reach the terminal as they are.
                tracing::warn!(
                    target: "taskhost::isolation",
                    worker = %worker,
                    pid,
                    stream,
                    task = task.as_deref().unwrap_or("-"),
                    line = %line,
                    "plugin.output"
                );
                // What says why the process is about to die (an allocation failure): kept
                // until the next task starts.
                if let Some(last) = last.as_ref().filter(|_| line.contains("memory allocation")) {
                    *last.lock().unwrap_or_else(|e| e.into_inner()) = line.into_owned();
                }
            }
        })
        .ok()
}

/// The socket path a child was given (for the child side).
pub(crate) fn socket_from_env() -> Option<PathBuf> {
    std::env::var_os(SOCKET_ENV).map(PathBuf::from)
}
