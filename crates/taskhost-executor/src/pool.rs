//! What a pool is made of: [`PoolInner`], the state that the executor handle, its submitters and
//! its workers share, and the interface between the pool and what it runs — a queued [`Work`]
//! item and the [`WorkerCtx`] it is given when it runs.
//!
//! The item types and the context live here, with `PoolInner`, because each names the other: the
//! pool holds a queue of items, and an item runs against the pool. What the items are
//! (`FutureJob`, `ExecuteJob`) is `job.rs`; how the state changes is `worker.rs` (threads start,
//! idle and retire), `submit.rs` (an item reaches the queue) and `shutdown.rs` (the pool stops).

use std::any::Any;
use std::cell::Cell;
use std::time::{Duration, Instant};

use tracing::{Level, Span};

use crate::events::open_task_span;
use crate::metrics::{Metrics, MetricsSnapshot, Padded, WorkerSide, WorkerTotals};
use crate::queue::Queue;
use crate::sync::thread::JoinHandle;
use crate::sync::{
    counter, lock, Arc, AtomicBool, AtomicU64, AtomicUsize, Condvar, Mutex, Ordering, Striped,
};
use crate::timings::NOT_TIMED;
use crate::worker_state::MakeState;

/// What a submitter does when a bounded queue is full
/// ([`ExecutorBuilder::when_full`](crate::ExecutorBuilder::when_full)).
///
/// ```
/// use taskhost_executor::{Executor, WhenFull};
/// let pool = Executor::builder().queue_capacity(8).when_full(WhenFull::CallerRuns).build().unwrap();
/// # drop(pool);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum WhenFull {
    /// Block the submitting thread until there is room (the default).
    #[default]
    Block,
    /// Refuse with [`SubmitError::QueueFull`](crate::SubmitError::QueueFull), handing the
    /// closure back.
    Reject,
    /// Run the task at once in the submitting thread (its future is done when `submit` returns).
    CallerRuns,
}

/// Runs once in each worker thread before its first task
/// ([`ExecutorBuilder::initializer`](crate::ExecutorBuilder::initializer)).
pub(crate) type Initializer = Arc<dyn Fn() -> Result<(), String> + Send + Sync + 'static>;

/// A pool's fixed settings: what the builder was told, checked and with its defaults filled in.
pub(crate) struct Settings {
    pub(crate) name: String,
    pub(crate) thread_name_prefix: String,
    pub(crate) max_workers: usize,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) max_tasks_per_worker: usize,
    /// 0: unbounded.
    pub(crate) queue_capacity: usize,
    pub(crate) when_full: WhenFull,
    pub(crate) initializer: Option<Initializer>,
    pub(crate) worker_state: Option<MakeState>,
    pub(crate) task_timings: bool,
    pub(crate) stack_size: Option<usize>,
}

/// One worker's own counters, and what it is running now (for
/// [`ShutdownReport`](crate::ShutdownReport)).
pub(crate) struct WorkerSlot {
    /// This worker's own counters (summed by `Executor::metrics`).
    pub(crate) counts: Padded<WorkerSide>,
    /// The running task's id; 0 while none runs.
    pub(crate) task_id: counter::AtomicU64,
    /// When the running task started (ns since the pool's epoch), or [`NOT_TIMED`].
    pub(crate) started_ns: counter::AtomicU64,
    /// Whether `name` holds a name (so that an unnamed task after an unnamed one takes no lock).
    pub(crate) has_name: counter::AtomicBool,
    /// The running task's name, if it has one.
    pub(crate) name: Mutex<Option<Arc<str>>>,
}

impl Default for WorkerSlot {
    fn default() -> Self {
        WorkerSlot {
            counts: Padded(WorkerSide::sole_writer()),
            task_id: counter::AtomicU64::new(0),
            started_ns: counter::AtomicU64::new(0),
            has_name: counter::AtomicBool::new(false),
            name: Mutex::new(None),
        }
    }
}

/// A worker thread the pool started and has not pruned yet.
pub(crate) struct WorkerRecord {
    /// The thread's name (`{prefix}_{n}`).
    pub(crate) name: String,
    /// `None` once `join_all` took it (its join may still be under way).
    pub(crate) handle: Option<JoinHandle<()>>,
    /// Shared with the worker, which drops its reference when it exits.
    pub(crate) slot: Arc<WorkerSlot>,
}

/// State guarded by the spawn/retire lock.
pub(crate) struct Workers {
    /// The `n` of the next thread name.
    pub(crate) next_index: usize,
    /// The workers started and not yet pruned (pruned when the next one starts).
    pub(crate) threads: Vec<WorkerRecord>,
    /// Why the pool broke (the first reason wins).
    pub(crate) broken_reason: Option<String>,
    /// Worker starts that failed since the last one that succeeded (logged once per streak).
    pub(crate) spawn_failures: u64,
    /// Counters of workers whose records were pruned.
    pub(crate) retired_counts: WorkerTotals,
}

/// Everything the executor, its workers and its futures share.
///
/// Aligned to a cache-line pair so that the `Arc`'s reference counts (bumped for every future)
/// do not share a line with the settings every submit and every task reads.
#[repr(align(128))]
pub(crate) struct PoolInner {
    /// The `pool` field of every event.
    pub(crate) name: Box<str>,
    /// Worker threads are named `{prefix}_{n}`.
    pub(crate) thread_name_prefix: Box<str>,
    /// The most worker threads alive at once.
    pub(crate) max_workers: usize,
    /// How long an idle worker waits for work before it retires (`None`: forever).
    pub(crate) idle_timeout: Option<Duration>,
    /// [`ExecutorBuilder::task_timings`](crate::ExecutorBuilder::task_timings).
    pub(crate) task_timings: bool,
    /// [`ExecutorBuilder::stack_size`](crate::ExecutorBuilder::stack_size).
    pub(crate) stack_size: Option<usize>,
    /// A worker retires after this many tasks (0: never).
    pub(crate) max_tasks_per_worker: usize,
    /// An idle timeout or a task limit is set: workers may retire while the pool is open.
    pub(crate) workers_can_retire: bool,
    /// The queue has a capacity, so [`when_full`](Self::when_full) applies.
    pub(crate) bounded: bool,
    pub(crate) when_full: WhenFull,
    /// Runs in each worker before its first task; a failure breaks the pool.
    pub(crate) initializer: Option<Initializer>,
    /// [`ExecutorBuilder::worker_state`](crate::ExecutorBuilder::worker_state).
    pub(crate) worker_state: Option<MakeState>,
    /// The FIFO work queue every worker takes from.
    pub(crate) queue: Queue<Work>,
    pub(crate) metrics: Metrics,
    /// Every per-task instant is in ns since this one.
    pub(crate) epoch: Instant,
    /// Python's idle semaphore: released by a worker about to wait, claimed by a submitter.
    /// (On its own cache line: written by workers and submitters alike.)
    pub(crate) idle_tokens: Padded<AtomicUsize>,
    /// Worker threads counted alive (the spawn decision reads it).
    pub(crate) alive: AtomicUsize,
    /// Submits that entered and left, per stripe (each submitting thread writes its own
    /// stripe's line; shutdown waits until no stripe has one in flight).
    pub(crate) submits: Striped<SubmitStripe>,
    /// No more submits.
    pub(crate) shutdown: AtomicBool,
    /// No more submits and none in flight: a worker that finds the queue empty exits.
    pub(crate) closed: AtomicBool,
    /// An initializer failed.
    pub(crate) broken: AtomicBool,
    /// The spawn/retire lock.
    pub(crate) workers: Mutex<Workers>,
    /// Signalled whenever a worker exits.
    pub(crate) workers_changed: Condvar,
    /// `shutdown_timeout` gave up on running tasks: dropping the executor will not join them.
    pub(crate) detached: AtomicBool,
}

impl PoolInner {
    /// A pool with nothing started: no thread runs until the first submit.
    pub(crate) fn new(settings: Settings) -> PoolInner {
        let Settings {
            name,
            thread_name_prefix,
            max_workers,
            idle_timeout,
            max_tasks_per_worker,
            queue_capacity,
            when_full,
            initializer,
            worker_state,
            task_timings,
            stack_size,
        } = settings;
        PoolInner {
            name: name.into_boxed_str(),
            thread_name_prefix: thread_name_prefix.into_boxed_str(),
            max_workers,
            idle_timeout,
            task_timings,
            stack_size,
            max_tasks_per_worker,
            workers_can_retire: idle_timeout.is_some() || max_tasks_per_worker != 0,
            bounded: queue_capacity != 0,
            when_full,
            initializer,
            worker_state,
            queue: Queue::new(queue_capacity),
            metrics: Metrics::default(),
            epoch: Instant::now(),
            idle_tokens: Padded(AtomicUsize::new(0)),
            alive: AtomicUsize::new(0),
            submits: Striped::default(),
            shutdown: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            broken: AtomicBool::new(false),
            workers: Mutex::new(Workers {
                next_index: 0,
                threads: Vec::new(),
                broken_reason: None,
                spawn_failures: 0,
                retired_counts: WorkerTotals::default(),
            }),
            workers_changed: Condvar::new(),
            detached: AtomicBool::new(false),
        }
    }

    /// Whether a task is timed: the pool records timings, or the DEBUG events that carry
    /// `waited_us`/`ran_us` are enabled.
    #[inline]
    pub(crate) fn wants_clock(&self) -> bool {
        self.task_timings || tracing::enabled!(target: "taskhost_executor", Level::DEBUG)
    }

    /// Now, in ns since the pool's epoch: the one clock read of a submit, and of a task on a
    /// busy worker (its end is the next task's start).
    pub(crate) fn now_ns(&self) -> u64 {
        let since = Instant::now().saturating_duration_since(self.epoch);
        since
            .as_secs()
            .saturating_mul(1_000_000_000)
            .saturating_add(u64::from(since.subsec_nanos()))
    }

    /// Claims one idle token if any (Python's `_idle_semaphore.acquire(timeout=0)`).
    pub(crate) fn try_claim_idle(&self) -> bool {
        self.idle_tokens
            .0
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }

    /// Every worker that can ever exist is alive and none can retire while the pool is open (no
    /// idle timeout, no task limit), so no thread will ever start again: idle tokens no longer
    /// decide anything, and neither submitters nor workers touch them (the busy case costs a
    /// plain load of a line that is only written when a thread starts or exits).
    #[inline]
    pub(crate) fn saturated(&self) -> bool {
        !self.workers_can_retire && self.alive.load(Ordering::Relaxed) >= self.max_workers
    }

    /// Why the pool broke.
    pub(crate) fn broken_reason(&self) -> String {
        lock(&self.workers)
            .broken_reason
            .clone()
            .unwrap_or_else(|| "an initializer failed".to_owned())
    }

    /// The pool's counters now ([`Executor::metrics`](crate::Executor::metrics)).
    pub(crate) fn metrics_snapshot(&self) -> MetricsSnapshot {
        let totals = {
            let workers = lock(&self.workers);
            let mut totals = workers.retired_counts;
            for record in &workers.threads {
                record.slot.counts.0.add_to(&mut totals);
            }
            totals
        };
        let entered = || self.submits.iter().map(SubmitStripe::entered).sum();
        self.metrics
            .snapshot(entered, self.alive.load(Ordering::SeqCst), totals)
    }
}

/// One stripe of submit bookkeeping: two counters that only grow, on one cache line. A submit
/// makes two read-modify-writes here, entering (before its shutdown check) and leaving (after
/// its push or refusal); the difference is the submits in flight, which shutdown waits to see
/// at zero, and `entered` less the refusals is the `submitted` metric (counted before the push,
/// so a task is never seen finished before it is seen submitted).
#[derive(Default)]
pub(crate) struct SubmitStripe {
    entered: AtomicU64,
    left: AtomicU64,
}

impl SubmitStripe {
    /// A submit starts; `SeqCst`, against shutdown's store of `shutdown` then read of
    /// [`in_flight`](Self::in_flight).
    pub(crate) fn enter(&self) {
        self.entered.fetch_add(1, Ordering::SeqCst);
    }

    /// The submit pushed its item or was refused.
    pub(crate) fn leave(&self) {
        self.left.fetch_add(1, Ordering::SeqCst);
    }

    /// Submits between [`enter`](Self::enter) and [`leave`](Self::leave). `left` is read first:
    /// a submit that leaves between the two reads is still counted, never one missed.
    pub(crate) fn in_flight(&self) -> u64 {
        let left = self.left.load(Ordering::SeqCst);
        self.entered.load(Ordering::SeqCst).wrapping_sub(left)
    }

    /// Submits that ever started on this stripe.
    pub(crate) fn entered(&self) -> u64 {
        self.entered.load(Ordering::Relaxed)
    }
}

/// Why a queued item is being dropped without running.
#[derive(Clone, Copy)]
pub(crate) enum Abandon<'a> {
    Shutdown,
    Broken(&'a str),
}

/// One item on the work queue.
pub(crate) enum Work {
    /// A task whose future shares its allocation.
    Shared(Arc<dyn Job>),
    /// A fire-and-forget task, owned by the queue alone.
    Owned(Box<dyn OwnedJob>),
}

impl Work {
    /// Runs the item (or skips it if its future was cancelled); true if it ran.
    pub(crate) fn run(self, worker: &WorkerCtx<'_>) -> bool {
        match self {
            Work::Shared(job) => job.run(worker),
            Work::Owned(job) => job.run(worker),
        }
    }

    /// Resolves the item without running it.
    pub(crate) fn abandon(self, pool: &PoolInner, why: Abandon<'_>) {
        match self {
            Work::Shared(job) => job.abandon(pool, why),
            Work::Owned(job) => job.abandon(pool, why),
        }
    }
}

/// A fire-and-forget item: like [`Job`], but owned, so it need not be `Sync`.
pub(crate) trait OwnedJob: Send {
    /// Runs the item; true (it always runs).
    fn run(self: Box<Self>, worker: &WorkerCtx<'_>) -> bool;
    /// Drops the item without running it.
    fn abandon(self: Box<Self>, pool: &PoolInner, why: Abandon<'_>);
    /// The item as `Any`, so a refused submission can hand the closure back.
    fn into_any(self: Box<Self>) -> Box<dyn Any + Send>;
}

/// A task with a future, on the work queue.
pub(crate) trait Job: Send + Sync {
    /// Runs the item (or skips it if its future was cancelled); true if it ran.
    fn run(self: Arc<Self>, worker: &WorkerCtx<'_>) -> bool;
    /// Resolves the item without running it.
    fn abandon(self: Arc<Self>, pool: &PoolInner, why: Abandon<'_>);
    /// The item as `Any`, so a refused submission can hand the closure back.
    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;
}

/// What a job needs from the thread that runs it.
pub(crate) struct WorkerCtx<'a> {
    pub(crate) pool: &'a PoolInner,
    worker: &'a str,
    slot: Option<&'a WorkerSlot>,
    /// Whether this worker holds an idle token (None: the caller's thread).
    idle_token: Option<&'a Cell<bool>>,
    /// This is the worker's last task (task limit): do not announce it idle.
    last_task: bool,
    /// The instant the previous task ended, if this item was dequeued right after it (no
    /// waiting in between): it doubles as this task's start, saving a clock read per task.
    clock: Option<&'a Cell<Option<u64>>>,
    /// Whether this task is timed at all ([`PoolInner::wants_clock`]).
    clocked: bool,
}

impl<'a> WorkerCtx<'a> {
    /// The context of a task that a worker dequeued.
    #[inline]
    pub(crate) fn on_worker(
        pool: &'a PoolInner,
        worker: &'a str,
        slot: &'a WorkerSlot,
        (idle_token, clock): (&'a Cell<bool>, &'a Cell<Option<u64>>),
        last_task: bool,
    ) -> Self {
        WorkerCtx {
            pool,
            worker,
            slot: Some(slot),
            idle_token: Some(idle_token),
            last_task,
            clock: Some(clock),
            clocked: pool.wants_clock(),
        }
    }

    /// The context of a task run in the submitting thread (`WhenFull::CallerRuns`).
    pub(crate) fn in_caller(pool: &'a PoolInner) -> Self {
        WorkerCtx {
            pool,
            worker: "caller",
            slot: None,
            idle_token: None,
            last_task: false,
            clock: None,
            clocked: pool.wants_clock(),
        }
    }
}

impl WorkerCtx<'_> {
    /// When the task starts: the previous task's end if this item was dequeued straight after
    /// it (the difference is one `try_pop`), the clock otherwise.
    /// In ns since the pool's epoch, like every per-task instant (plain integer arithmetic
    /// from here on, not `Instant`/`Duration` math).
    /// `None` when the task is not timed (no clock read at all).
    #[inline]
    pub(crate) fn start_ns(&self) -> Option<u64> {
        let kept = self.clock.and_then(Cell::take);
        self.clocked
            .then(|| kept.unwrap_or_else(|| self.pool.now_ns()))
    }

    /// Reads the clock at the end of a timed task, and keeps it for the next task's start.
    #[inline]
    pub(crate) fn end_ns(&self) -> Option<u64> {
        if !self.clocked {
            return None;
        }
        let now = self.pool.now_ns();
        if let Some(clock) = self.clock {
            clock.set(Some(now));
        }
        Some(now)
    }

    /// Forgets the kept end instant (time passed since).
    pub(crate) fn forget_clock(&self) {
        if let Some(clock) = self.clock {
            clock.set(None);
        }
    }

    /// The counters this thread writes: its own if it is a worker, the pool's otherwise.
    #[inline]
    pub(crate) fn counts(&self) -> &WorkerSide {
        match self.slot {
            Some(slot) => &slot.counts.0,
            None => &self.pool.metrics.worker.0,
        }
    }

    /// Marks the task running and opens its span (`started_ns`: since the pool's epoch, if the
    /// task is timed). `None` when no subscriber takes INFO: then no span can be recorded and no
    /// DEBUG event emitted, and the task pays for neither building a disabled span nor entering
    /// and dropping one. Kept out of line on purpose: inlining it into the jobs' `run` speeds up
    /// fire-and-forget tasks from many submitters but slows a lone submitter's batch, so measure
    /// both (benchmark scenarios 1 and 3; the bench README has the runs) before changing it.
    #[inline(never)]
    pub(crate) fn begin(
        &self,
        task_id: u64,
        name_arc: Option<&Arc<str>>,
        name: Option<&str>,
        parent: Option<&Span>,
        started_ns: Option<u64>,
        waited: Duration,
    ) -> Option<Span> {
        self.counts().inc_started();
        if let Some(slot) = self.slot {
            slot.task_id.store(task_id, Ordering::Relaxed);
            slot.started_ns
                .store(started_ns.unwrap_or(NOT_TIMED), Ordering::Relaxed);
            if name_arc.is_some() || slot.has_name.load(Ordering::Relaxed) {
                *lock(&slot.name) = name_arc.cloned();
                slot.has_name.store(name_arc.is_some(), Ordering::Relaxed);
            }
        }
        if !tracing::level_enabled!(Level::INFO) {
            return None;
        }
        Some(open_task_span(
            &self.pool.name,
            self.worker,
            task_id,
            name,
            parent,
            waited,
        ))
    }

    /// Marks the task no longer running.
    #[inline]
    pub(crate) fn end(&self) {
        self.counts().inc_stopped();
        if let Some(slot) = self.slot {
            slot.task_id.store(0, Ordering::Relaxed);
        }
    }

    /// Called just before a task's outcome becomes visible: if the queue is empty, this worker
    /// announces itself idle now, so that a submitter woken by the outcome can claim it instead
    /// of starting a thread (ten tasks awaited one after another run on one thread).
    #[inline]
    pub(crate) fn before_publish(&self) {
        if let Some(token) = self.idle_token {
            if !self.last_task
                && !token.get()
                && !self.pool.saturated()
                && self.pool.queue.is_empty()
            {
                self.pool.idle_tokens.0.fetch_add(1, Ordering::SeqCst);
                token.set(true);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The queue stores items inline: a shared task or a boxed one, three words either way.
    #[test]
    fn a_queue_item_is_three_words() {
        assert_eq!(std::mem::size_of::<Work>(), 24);
    }
}
