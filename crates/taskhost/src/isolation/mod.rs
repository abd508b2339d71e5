//! Isolated pools (`isolation = "process"`): every executor worker owns one child process — this
//! same binary, run as `taskhost __serve-worker` — that loads the plugins and runs the worker's
//! tasks. A plugin that crashes, aborts, exits or is killed costs the item it was running (status
//! `crashed`), and the child is replaced; a task that ignores a stop request is killed with its
//! child. The executor knows nothing of this: a [`ChildWorker`] is the worker's state
//! (`ExecutorBuilder::worker_state`), started with the worker and ended when it retires.
//!
//! The host and its child talk JSON over a private Unix socket (in a 0700 folder of its own);
//! what the child prints goes to the host's tracing as `plugin.output` events, never into the
//! outcome stream.

mod child;
mod parent;
mod protocol;

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

pub use child::serve;
pub use parent::{ChildWorker, Crash};

/// The environment variable that carries the socket path to the child.
pub(crate) const SOCKET_ENV: &str = "TASKHOST_WORKER_SOCKET";

/// The hidden subcommand a child runs.
pub const SERVE_COMMAND: &str = "__serve-worker";

/// The environment variables that carry a pool's limits to its worker processes.
pub(crate) const MEMORY_LIMIT_ENV: &str = "TASKHOST_WORKER_MEMORY_LIMIT";
pub(crate) const CPU_LIMIT_ENV: &str = "TASKHOST_WORKER_CPU_LIMIT";
/// The host's process id, so that a child started just as its host died notices.
pub(crate) const PARENT_ENV: &str = "TASKHOST_WORKER_PARENT";

/// How to start a child: the program and its arguments (the host's own binary, its
/// configuration, the hidden subcommand), and the pool's limits.
#[derive(Debug, Clone)]
pub struct ChildSpec {
    /// The program (normally `std::env::current_exe()`).
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<OsString>,
    /// The limit on each child's address space, in bytes (`RLIMIT_AS`).
    pub memory_limit: Option<u64>,
    /// The limit on each task's CPU time (`RLIMIT_CPU`, moved on before each task).
    pub cpu_limit: Option<Duration>,
}

impl ChildSpec {
    /// A spec that runs `program` with `args`, without limits.
    pub fn new(program: PathBuf, args: Vec<OsString>) -> ChildSpec {
        ChildSpec {
            program,
            args,
            memory_limit: None,
            cpu_limit: None,
        }
    }

    /// The same spec with one pool's limits.
    pub fn for_pool(&self, memory_limit: Option<u64>, cpu_limit: Option<Duration>) -> ChildSpec {
        ChildSpec {
            memory_limit,
            cpu_limit,
            ..self.clone()
        }
    }

    /// What a crash may be owed to, for its message: the limits this child ran under.
    pub(crate) fn limits_note(&self, how: &str) -> String {
        let mut notes = Vec::new();
        if how.contains("SIGXCPU") {
            if let Some(limit) = self.cpu_limit {
                notes.push(format!(
                    "it used up the pool's cpu_limit of {}",
                    crate::config::duration::format_duration(limit)
                ));
            }
        }
        if how.contains("memory allocation") {
            if let Some(limit) = self.memory_limit {
                notes.push(format!(
                    "it ran out of the pool's memory_limit of {}",
                    bytesize::ByteSize::b(limit).display().iec()
                ));
            }
        }
        if notes.is_empty() {
            String::new()
        } else {
            format!(" ({})", notes.join("; "))
        }
    }
}

/// Crashes in a row per plugin: a plugin that crashes on `limit` items in a row is quarantined
/// (its remaining items are rejected) instead of crash-looping through its workers.
#[derive(Debug)]
pub struct Quarantine {
    limit: u32,
    streaks: Mutex<HashMap<String, u32>>,
}

impl Quarantine {
    /// Quarantines after `limit` crashes in a row (0: never).
    pub fn new(limit: u32) -> Quarantine {
        Quarantine {
            limit,
            streaks: Mutex::new(HashMap::new()),
        }
    }

    /// Records how one of `plugin`'s items ended; true once it is (now) quarantined.
    pub fn record(&self, plugin: &str, crashed: bool) -> bool {
        let mut streaks = self.streaks.lock().unwrap_or_else(|e| e.into_inner());
        let streak = streaks.entry(plugin.to_owned()).or_insert(0);
        if self.limit != 0 && *streak >= self.limit {
            return true;
        }
        *streak = if crashed { *streak + 1 } else { 0 };
        self.limit != 0 && *streak >= self.limit
    }

    /// Whether `plugin` is quarantined.
    pub fn is_quarantined(&self, plugin: &str) -> bool {
        let streaks = self.streaks.lock().unwrap_or_else(|e| e.into_inner());
        self.limit != 0 && streaks.get(plugin).is_some_and(|s| *s >= self.limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    #[test]
    fn a_plugin_is_quarantined_after_its_limit_of_crashes_in_a_row() {
        let q = Quarantine::new(3);
        assert!(!q.record("bad", true) && !q.record("bad", true));
        assert!(!q.record("bad", false), "a success ends the streak");
        assert!(!q.record("bad", true) && !q.record("bad", true));
        assert!(q.record("bad", true));
        assert!(q.is_quarantined("bad") && !q.is_quarantined("good"));
        assert!(
            q.record("bad", false),
            "quarantine is for the rest of the run"
        );
        let never = Quarantine::new(0);
        assert!((0..10).all(|_| !never.record("x", true)));
    }

    #[test]
    fn exit_statuses_read_as_an_operator_would_say_them() {
        use std::process::ExitStatus;
        assert_eq!(
            parent::describe(ExitStatus::from_raw(11)),
            "killed by SIGSEGV"
        );
        assert_eq!(
            parent::describe(ExitStatus::from_raw(6 | 0x80)),
            "killed by SIGABRT (core dumped)"
        );
        assert_eq!(
            parent::describe(ExitStatus::from_raw(3 << 8)),
            "exited with code 3"
        );
        assert_eq!(
            parent::describe(ExitStatus::from_raw(0)),
            "exited with code 0"
        );
        assert_eq!(
            parent::describe(ExitStatus::from_raw(64)),
            "killed by signal 64"
        );
    }
}
