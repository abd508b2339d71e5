//! The child side: `taskhost __serve-worker` loads the plugins (under the same trust rules and
//! pins as the host) and runs the tasks its host worker sends, one at a time. It ends when the
//! socket closes (the worker retired) and when the host thread that started it ends, however it
//! ends (the parent-death signal, even after `kill -9`).

use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use taskhost_loader::{LogLevel, PluginSet, RunContext};

use super::protocol::{send, FailureCode, Inbox, LevelCode, Outcome, Request, Response};
use super::{CPU_LIMIT_ENV, MEMORY_LIMIT_ENV, PARENT_ENV};

/// Serves the host worker at the socket named in the environment, with `plugins` (or tells it
/// why there are none). Returns when the host closes the socket.
///
/// One thread reads the socket and runs the tasks (a reader thread would add a wake-up to every
/// call). A running task learns of a stop request when it looks at its cancel check after the
/// host's `SIGUSR1` says that a message waits.
pub fn serve(plugins: Result<PluginSet, String>) -> anyhow::Result<()> {
    end_with_the_host()?;
    let path = super::parent::socket_from_env()
        .context("no worker socket: this command is started by the host for an isolated pool")?;
    let socket =
        UnixStream::connect(&path).with_context(|| format!("connecting to {}", path.display()))?;
    let plugins = match plugins {
        Ok(plugins) => plugins,
        Err(error) => {
            send(&socket, &Response::Refused { error })?;
            return Ok(());
        }
    };
    let nudged = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGUSR1, Arc::clone(&nudged))
        .context("listening for the host's SIGUSR1")?;
    let cpu_limit = env_number(CPU_LIMIT_ENV).map(Duration::from_secs);
    send(
        &socket,
        &Response::Ready {
            pid: std::process::id(),
            tasks: plugins.tasks().count(),
        },
    )?;
    // Only now: loading the plugins is not the tasks' to pay for.
    limit_memory().context("setting the pool's memory_limit")?;
    let mut inbox = Inbox::default();
    loop {
        let request = match inbox.take::<Request>() {
            Ok(Some(request)) => request,
            Ok(None) => match inbox.fill(&socket) {
                // The host closed the socket (the worker retired) or is gone.
                Ok(0) => return Ok(()),
                Ok(_) => continue,
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(error).context("reading the worker socket"),
            },
            Err(_) => anyhow::bail!("the host sent something that is not a request"),
        };
        // A stop request that came after its task ended is for nobody.
        let Request::Run { id, task, input } = request else {
            continue;
        };
        if let Some(limit) = cpu_limit {
            limit_cpu(limit)?;
        }
        let outcome = match plugins.task(&task) {
            None => Outcome::Failed {
                kind: FailureCode::InvalidInput,
                message: format!("the worker process has no task `{task}`"),
            },
            Some(plugin_task) => {
                let context = Forwarding {
                    id,
                    socket: &socket,
                    inbox: Mutex::new(&mut inbox),
                    nudged: &nudged,
                    cancelled: AtomicBool::new(false),
                };
                match plugin_task.run(input.as_bytes(), &context) {
                    Ok(output) => match String::from_utf8(output) {
                        Ok(output) => Outcome::Ok { output },
                        Err(not_utf8) => Outcome::OkBytes {
                            output: not_utf8.into_bytes(),
                        },
                    },
                    Err(failure) => Outcome::Failed {
                        kind: FailureCode::from_kind(failure.kind),
                        message: failure.message,
                    },
                }
            }
        };
        send(&socket, &Response::Done { id, outcome })?;
    }
}

/// The task's context in the child: cancellation from the host's requests; logs and progress
/// sent to the host, which emits them as if the task ran there.
struct Forwarding<'a> {
    id: u64,
    socket: &'a UnixStream,
    inbox: Mutex<&'a mut Inbox>,
    /// Set by the host's SIGUSR1: a message waits on the socket.
    nudged: &'a AtomicBool,
    cancelled: AtomicBool,
}

impl Forwarding<'_> {
    /// Reads what waits on the socket without blocking, and takes the stop requests for this
    /// task (the host sends nothing else while a task runs).
    fn read_waiting(&self) {
        let mut inbox = self.inbox.lock().unwrap_or_else(|e| e.into_inner());
        if self.socket.set_nonblocking(true).is_err() {
            return;
        }
        while matches!(inbox.fill(self.socket), Ok(n) if n > 0) {}
        let _ = self.socket.set_nonblocking(false);
        while let Ok(Some(request)) = inbox.take::<Request>() {
            if matches!(request, Request::Cancel { id } if id == self.id) {
                self.cancelled.store(true, Ordering::Relaxed);
            }
        }
    }
}

impl RunContext for Forwarding<'_> {
    fn is_cancelled(&self) -> bool {
        if self.nudged.swap(false, Ordering::AcqRel) {
            self.read_waiting();
        }
        self.cancelled.load(Ordering::Relaxed)
    }

    fn progress(&self, done: u64, total: Option<u64>) {
        let _ = send(
            self.socket,
            &Response::Progress {
                id: self.id,
                done,
                total,
            },
        );
    }

    fn log(&self, level: LogLevel, message: &str) {
        let _ = send(
            self.socket,
            &Response::Log {
                id: self.id,
                level: LevelCode::from_level(level),
                message: message.to_owned(),
            },
        );
    }
}

/// Asks the kernel to kill this process when the thread that started it ends, then checks
/// that the host has not ended already (it could have, just before).
fn end_with_the_host() -> anyhow::Result<()> {
    use rustix::process::{getppid, set_parent_process_death_signal, Signal};
    set_parent_process_death_signal(Some(Signal::KILL))
        .context("asking to end with the host (PR_SET_PDEATHSIG)")?;
    if let Some(expected) = env_number(PARENT_ENV) {
        let parent = getppid().map(|pid| pid.as_raw_nonzero().get() as u64);
        if parent != Some(expected) {
            std::process::exit(0);
        }
    }
    Ok(())
}

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok()?.parse().ok()
}

/// The pool's `memory_limit`: the address space this process may add, from now on, to what
/// it has mapped once its plugins are loaded (an allocator's reservations and the threads'
/// stacks are far larger than what they hold, so an absolute limit would mostly measure those).
fn limit_memory() -> std::io::Result<()> {
    use rustix::process::{setrlimit, Resource, Rlimit};
    let Some(bytes) = env_number(MEMORY_LIMIT_ENV) else {
        return Ok(());
    };
    let limit = mapped_now()?.saturating_add(bytes);
    setrlimit(
        Resource::As,
        Rlimit {
            current: Some(limit),
            maximum: Some(limit),
        },
    )
    .map_err(Into::into)
}

/// This process's address space now, in bytes (`VmSize` of `/proc/self/status`).
fn mapped_now() -> std::io::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmSize:"))
        .and_then(|rest| rest.trim().strip_suffix("kB"))
        .and_then(|kib| kib.trim().parse::<u64>().ok())
        .map(|kib| kib * 1024)
        .ok_or_else(|| std::io::Error::other("no VmSize in /proc/self/status"))
}

/// The pool's `cpu_limit` for the next task: the soft CPU limit moved to what this process has
/// used so far plus the limit (the kernel sends SIGXCPU past it).
fn limit_cpu(limit: Duration) -> std::io::Result<()> {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    use rustix::time::{clock_gettime, ClockId};
    let used = clock_gettime(ClockId::ProcessCPUTime);
    let soft = used.tv_sec as u64 + limit.as_secs() + u64::from(used.tv_nsec > 0);
    let hard = getrlimit(Resource::Cpu).maximum;
    setrlimit(
        Resource::Cpu,
        Rlimit {
            current: Some(hard.map_or(soft, |hard| soft.min(hard))),
            maximum: hard,
        },
    )
    .map_err(Into::into)
}
