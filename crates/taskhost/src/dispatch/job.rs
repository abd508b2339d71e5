//! One entry on its way through a pool: what an attempt carries, and what it returns.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use taskhost_loader::TaskFailure;

use super::catalog::ResolvedTask;
use crate::source::WorkItem;

/// What one attempt returns from the worker: the plugin's output bytes, or why there are none.
pub(crate) type AttemptResult = Result<Vec<u8>, AttemptFailure>;

/// What one attempt hands back from its worker: its result, and when and where it started.
#[derive(Debug)]
pub(crate) struct Attempted {
    pub(crate) result: AttemptResult,
    pub(crate) started: SystemTime,
    /// The worker thread's name (`{pool}_{n}`).
    pub(crate) worker: Option<Arc<str>>,
}

impl Attempted {
    /// The attempt on this thread, started at `started`, that ended with `result`.
    pub(crate) fn here(started: SystemTime, result: AttemptResult) -> Attempted {
        thread_local! {
            /// This thread's name, made once per thread (a reference count per record).
            static WORKER: Option<Arc<str>> = std::thread::current().name().map(Arc::from);
        }
        Attempted {
            result,
            started,
            worker: WORKER.with(Clone::clone),
        }
    }
}

/// Why an attempt has no output.
#[derive(Debug)]
pub(crate) enum AttemptFailure {
    /// The plugin reported a failure (in this process or in a worker process).
    Plugin(TaskFailure),
    /// The worker process died while running the task (a signal, an exit, a broken socket).
    Crashed(String),
    /// The task ignored a stop request (a timeout, the end of the run) for longer than the
    /// kill grace: its worker process was killed.
    Killed(String),
    /// No worker process could be started to run it.
    NotStarted(String),
    /// Its plugin crashed on too many items in a row: the task was not run.
    Quarantined(String),
}

/// One entry on its way through a pool, from its first attempt to its outcome.
#[derive(Debug)]
pub(crate) struct Job {
    /// The entry's place in the run (the writer's order with `--ordered`).
    pub(crate) seq: u64,
    /// Its line in the input.
    pub(crate) line: u64,
    pub(crate) item: WorkItem,
    pub(crate) task: Arc<ResolvedTask>,
    /// 1 for the first attempt.
    pub(crate) attempt: u32,
    /// Time spent queued and running, summed over the attempts so far.
    pub(crate) waited: Duration,
    pub(crate) ran: Duration,
    /// When its first attempt started, and the worker that ran its latest.
    pub(crate) started: Option<SystemTime>,
    pub(crate) worker: Option<Arc<str>>,
    /// The item's span: every event about it carries its id, task, plugin, pool and line.
    pub(crate) span: tracing::Span,
}
