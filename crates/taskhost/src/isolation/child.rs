//! The child side: `taskhost __serve-worker` loads the plugins (under the same trust rules and
//! pins as the host) and runs the tasks its host worker sends, one at a time. It ends when the
//! socket closes (the worker retired, or the host is gone, even killed with `kill -9`) and, as a
//! second guard, when the thread that started it ends (the parent-death signal).

use std::io::{BufReader, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::Duration;

use anyhow::Context;
use taskhost_loader::{LogLevel, PluginSet, RunContext};

use super::protocol::{FailureCode, LevelCode, Outcome, Request, Response};
use super::{CPU_LIMIT_ENV, MEMORY_LIMIT_ENV, PARENT_ENV};

/// Serves the host worker at the socket named in the environment, with `plugins` (or tells it
/// why there are none). Returns when the host closes the socket.
pub fn serve(plugins: Result<PluginSet, String>) -> anyhow::Result<()> {
    end_with_the_host()?;
    let path = super::parent::socket_from_env()
        .context("no worker socket: this command is started by the host for an isolated pool")?;
    let socket =
        UnixStream::connect(&path).with_context(|| format!("connecting to {}", path.display()))?;
    let writer = Arc::new(Mutex::new(socket.try_clone()?));
    let plugins = match plugins {
        Ok(plugins) => plugins,
        Err(error) => {
            send(&writer, &Response::Refused { error })?;
            return Ok(());
        }
    };
    let cpu_limit = env_number(CPU_LIMIT_ENV).map(Duration::from_secs);
    send(
        &writer,
        &Response::Ready {
            pid: std::process::id(),
            tasks: plugins.tasks().count(),
        },
    )?;
    // A reader thread, so that a cancel reaches the task while it runs.
    let running = Arc::new(AtomicU64::new(0));
    let cancel = Arc::new(AtomicBool::new(false));
    let (tx, runs) = mpsc::channel();
    {
        let (running, cancel) = (Arc::clone(&running), Arc::clone(&cancel));
        thread::Builder::new()
            .name("serve-reader".into())
            .spawn(move || {
                let requests =
                    serde_json::Deserializer::from_reader(BufReader::new(socket)).into_iter();
                for request in requests {
                    match request {
                        Ok(Request::Cancel { id }) => {
                            if running.load(Ordering::SeqCst) == id {
                                cancel.store(true, Ordering::SeqCst);
                            }
                        }
                        Ok(run @ Request::Run { .. }) => {
                            if tx.send(run).is_err() {
                                return;
                            }
                        }
                        Err(_) => break,
                    }
                }
                // The host closed the socket (the worker retired) or is gone: a task still
                // running here has nobody to report to.
                std::process::exit(0);
            })?;
    }
    // Only now: loading the plugins and starting the reader are not the tasks' to pay for.
    limit_memory().context("setting the pool's memory_limit")?;
    for request in runs {
        let Request::Run { id, task, input } = request else {
            continue;
        };
        cancel.store(false, Ordering::SeqCst);
        running.store(id, Ordering::SeqCst);
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
                    cancel: &cancel,
                    writer: &writer,
                };
                match plugin_task.run(input.as_bytes(), &context) {
                    Ok(output) => Outcome::Ok { output },
                    Err(failure) => Outcome::Failed {
                        kind: FailureCode::from_kind(failure.kind),
                        message: failure.message,
                    },
                }
            }
        };
        running.store(0, Ordering::SeqCst);
        send(&writer, &Response::Done { id, outcome })?;
    }
    Ok(())
}

/// The task's context in the child: cancellation from the host's requests; logs and progress
/// sent to the host, which emits them as if the task ran there.
struct Forwarding<'a> {
    id: u64,
    cancel: &'a AtomicBool,
    writer: &'a Mutex<UnixStream>,
}

impl RunContext for Forwarding<'_> {
    fn is_cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }

    fn progress(&self, done: u64, total: Option<u64>) {
        let _ = send(
            self.writer,
            &Response::Progress {
                id: self.id,
                done,
                total,
            },
        );
    }

    fn log(&self, level: LogLevel, message: &str) {
        let _ = send(
            self.writer,
            &Response::Log {
                id: self.id,
                level: LevelCode::from_level(level),
                message: message.to_owned(),
            },
        );
    }
}

fn send(writer: &Mutex<UnixStream>, response: &Response) -> anyhow::Result<()> {
    let mut writer = writer.lock().unwrap_or_else(|e| e.into_inner());
    serde_json::to_writer(&mut *writer, response)?;
    writer.flush()?;
    Ok(())
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
