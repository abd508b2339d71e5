//! The pool: [`Executor`], its [`ExecutorBuilder`], and the worker threads.
//!
//! The spawn/idle/retire protocol follows Python 3.14's `ThreadPoolExecutor`:
//!
//! * `submit` pushes the item, then tries to claim an idle worker (`idle_tokens`, Python's
//!   `_idle_semaphore.acquire(timeout=0)`); only if none can be claimed and fewer than
//!   `max_workers` threads are alive does it start one, under the `workers` lock.
//! * A worker that finds the queue empty releases one idle token and blocks on the queue.
//! * A worker retires (idle timeout, task limit) under the `workers` lock: it first counts itself
//!   out of `alive`, then looks at the queue; if work is there it stays (idle) or starts its
//!   replacement (task limit). A submitter that pushed work and saw `alive` at the maximum is
//!   therefore always covered: either it sees the decrement and spawns, or the worker sees its
//!   item. SeqCst fences on both sides rule out the store-buffering interleaving.
//! * Shutdown and broken-pool drains first wait until no submit is in flight (`submits`: per
//!   stripe, submits that entered minus submits that left), so no item can land behind the
//!   point where workers stop.
//! * Once every worker that can exist is alive and none can retire while the pool is open (no
//!   idle timeout, no task limit), no thread will ever start again: submitters and workers then
//!   leave the idle tokens alone (`PoolInner::saturated`), so the busy case is a plain load.

use std::any::Any;
use std::cell::Cell;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use tracing::{Level, Span};

use crate::context::{TaskContext, TaskOptions};
use crate::error::{BuildError, SubmitError};
use crate::events::{
    current_parent, emit_drop_panicked, emit_pool_broken, emit_pool_shutdown, emit_queued,
    emit_rejected, emit_retired, emit_spawn_failed, emit_spawn_recovered, emit_spawned,
    open_task_span, panic_message,
};
use crate::future::{HoldsFutureCell, TaskFuture};
use crate::future_cell::FutureCell;
use crate::job::{Abandon, ExecuteJob, FutureJob, Plain, TaskFn, Traced, WithContext, Work};
use crate::metrics::{Metrics, MetricsSnapshot, Padded, WorkerSide, WorkerTotals};
use crate::queue::{Popped, Queue};
use crate::sync::thread::{self, JoinHandle};
use crate::sync::{
    counter, fence, lock, spin_wait, Arc, AtomicBool, AtomicU64, AtomicUsize, Condvar, Mutex,
    Ordering, Striped,
};
use crate::task_id::next_task_id;
use crate::timings::NOT_TIMED;
use crate::worker_state::{self, MakeState, WorkerInfo};

/// What a submitter does when a bounded queue is full ([`ExecutorBuilder::when_full`]).
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
    /// Refuse with [`SubmitError::QueueFull`], handing the closure back.
    Reject,
    /// Run the task at once in the submitting thread (its future is done when `submit` returns).
    CallerRuns,
}

type Initializer = Arc<dyn Fn() -> Result<(), String> + Send + Sync + 'static>;

/// Builds an [`Executor`]. Setters consume and return the builder; each says its default.
///
/// ```
/// use std::time::Duration;
/// use taskhost_executor::{Executor, WhenFull};
///
/// let pool = Executor::builder()
///     .name("io")
///     .max_workers(4)
///     .idle_timeout(Some(Duration::from_secs(30)))
///     .max_tasks_per_worker(1000)
///     .queue_capacity(64)
///     .when_full(WhenFull::Block)
///     .build()
///     .unwrap();
/// assert_eq!(pool.name(), "io");
/// ```
#[derive(Clone, Default)]
pub struct ExecutorBuilder {
    name: Option<String>,
    max_workers: Option<usize>,
    thread_name_prefix: Option<String>,
    idle_timeout: Option<Duration>,
    max_tasks_per_worker: usize,
    queue_capacity: usize,
    when_full: WhenFull,
    initializer: Option<Initializer>,
    worker_state: Option<MakeState>,
    task_timings: bool,
    stack_size: Option<usize>,
}

impl fmt::Debug for ExecutorBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExecutorBuilder")
            .field("name", &self.name)
            .field("max_workers", &self.max_workers)
            .field("thread_name_prefix", &self.thread_name_prefix)
            .field("idle_timeout", &self.idle_timeout)
            .field("max_tasks_per_worker", &self.max_tasks_per_worker)
            .field("queue_capacity", &self.queue_capacity)
            .field("when_full", &self.when_full)
            .field("initializer", &self.initializer.is_some())
            .field("worker_state", &self.worker_state.is_some())
            .field("task_timings", &self.task_timings)
            .field("stack_size", &self.stack_size)
            .finish()
    }
}

/// The most worker threads a pool may have: each is an OS thread with its own stack, and a
/// larger setting is a typo (`10^9` once started a thread per item in flight), not a plan.
///
/// ```
/// use taskhost_executor::{BuildError, Executor, MAX_WORKERS};
/// let err = Executor::new(MAX_WORKERS + 1).unwrap_err();
/// assert_eq!(err, BuildError::TooManyWorkers(MAX_WORKERS + 1));
/// ```
pub const MAX_WORKERS: usize = 4096;

/// How long a submit that could not start the pool's only worker waits before each retry.
const SPAWN_RETRY_DELAYS_MS: [u64; 5] = [1, 4, 16, 64, 256];

/// The largest bounded queue, in items. Only what is queued takes memory (a bound above a few
/// thousand places is not allocated up front); past this, use an unbounded queue (0).
///
/// ```
/// use taskhost_executor::{BuildError, Executor, MAX_QUEUE_CAPACITY};
/// let err = Executor::builder().queue_capacity(usize::MAX).build().unwrap_err();
/// assert_eq!(err, BuildError::QueueTooLarge(usize::MAX));
/// assert!(Executor::builder().queue_capacity(MAX_QUEUE_CAPACITY).build().is_ok());
/// ```
pub const MAX_QUEUE_CAPACITY: usize = 1 << 24;

/// `min(32, available_parallelism + 4)`, Python's default `max_workers`.
///
/// ```
/// let n = taskhost_executor::default_max_workers();
/// assert!((5..=32).contains(&n));
/// ```
pub fn default_max_workers() -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cpus + 4).min(32)
}

impl ExecutorBuilder {
    /// A builder with every default.
    ///
    /// ```
    /// let pool = taskhost_executor::ExecutorBuilder::new().build().unwrap();
    /// assert_eq!(pool.name(), "pool");
    /// ```
    pub fn new() -> Self {
        ExecutorBuilder::default()
    }

    /// The pool's name, the `pool` field of every tracing event. Default `"pool"`.
    ///
    /// ```
    /// let pool = taskhost_executor::Executor::builder().name("cpu").build().unwrap();
    /// assert_eq!(pool.name(), "cpu");
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The most worker threads alive at once. Default [`default_max_workers`]
    /// (`min(32, available_parallelism + 4)`); 0 makes [`build`](Self::build) fail.
    ///
    /// ```
    /// let pool = taskhost_executor::Executor::builder().max_workers(3).build().unwrap();
    /// assert_eq!(pool.max_workers(), 3);
    /// ```
    pub fn max_workers(mut self, max_workers: usize) -> Self {
        self.max_workers = Some(max_workers);
        self
    }

    /// Worker threads are named `"{prefix}_{n}"`, `n` counting from 0. Default: the pool name.
    ///
    /// ```
    /// let pool = taskhost_executor::Executor::builder().thread_name_prefix("w").build().unwrap();
    /// let f = pool.submit(|| std::thread::current().name().map(String::from)).unwrap();
    /// assert_eq!(f.result(None).unwrap().as_deref(), Some("w_0"));
    /// ```
    pub fn thread_name_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.thread_name_prefix = Some(prefix.into());
        self
    }

    /// Idle workers retire after this long without work; the next submit starts one again.
    /// Default `None`: idle workers block forever and never retire (Python's behaviour).
    /// `Some(Duration::ZERO)` retires a worker as soon as it finds the queue empty.
    ///
    /// ```
    /// use std::time::Duration;
    /// let pool = taskhost_executor::Executor::builder()
    ///     .idle_timeout(Some(Duration::from_secs(10)))
    ///     .build()
    ///     .unwrap();
    /// # drop(pool);
    /// ```
    pub fn idle_timeout(mut self, idle_timeout: Option<Duration>) -> Self {
        self.idle_timeout = idle_timeout;
        self
    }

    /// A worker retires after running this many tasks, and a new one takes its place if work
    /// remains. Default 0: unlimited.
    ///
    /// ```
    /// let pool = taskhost_executor::Executor::builder().max_tasks_per_worker(100).build().unwrap();
    /// # drop(pool);
    /// ```
    pub fn max_tasks_per_worker(mut self, max_tasks: usize) -> Self {
        self.max_tasks_per_worker = max_tasks;
        self
    }

    /// Bounds the queue to this many waiting items; see [`when_full`](Self::when_full).
    /// Default 0: unbounded.
    ///
    /// ```
    /// let pool = taskhost_executor::Executor::builder().queue_capacity(16).build().unwrap();
    /// # drop(pool);
    /// ```
    pub fn queue_capacity(mut self, capacity: usize) -> Self {
        self.queue_capacity = capacity;
        self
    }

    /// What `submit` does when a bounded queue is full. Default [`WhenFull::Block`]. Has no
    /// effect on an unbounded queue.
    ///
    /// ```
    /// use taskhost_executor::{Executor, WhenFull};
    /// let pool = Executor::builder().queue_capacity(1).when_full(WhenFull::Reject).build().unwrap();
    /// # drop(pool);
    /// ```
    pub fn when_full(mut self, policy: WhenFull) -> Self {
        self.when_full = policy;
        self
    }

    /// Runs once in each worker thread before its first task. If it returns `Err` (or panics)
    /// the pool is broken: queued futures fail with [`ResultError::BrokenPool`] and every later
    /// submit is refused with [`SubmitError::BrokenPool`]. Default: none.
    ///
    /// ```
    /// use taskhost_executor::{Executor, ResultError};
    /// let pool = Executor::builder().initializer(|| Err("no GPU".to_string())).build().unwrap();
    /// let f = pool.submit(|| 1).unwrap();
    /// assert_eq!(f.result(None), Err(ResultError::BrokenPool("no GPU".into())));
    /// ```
    pub fn initializer<I>(mut self, initializer: I) -> Self
    where
        I: Fn() -> Result<(), String> + Send + Sync + 'static,
    {
        self.initializer = Some(Arc::new(initializer));
        self
    }

    /// Gives every worker thread a state of its own: `make` runs in the worker when it starts
    /// (after the [`initializer`](Self::initializer)), its tasks reach the state with
    /// [`with_worker_state`](crate::with_worker_state), and it is dropped when the worker exits
    /// (idle retirement, recycling after [`max_tasks_per_worker`](Self::max_tasks_per_worker),
    /// shutdown), in the worker's thread. A `make` that panics breaks the pool, as a failing
    /// initializer does. Default: none.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    /// use taskhost_executor::{with_worker_state, Executor};
    ///
    /// struct Connection(Arc<AtomicUsize>);
    /// impl Drop for Connection {
    ///     fn drop(&mut self) { self.0.fetch_add(1, Ordering::SeqCst); }
    /// }
    /// let closed = Arc::new(AtomicUsize::new(0));
    /// let c = Arc::clone(&closed);
    /// let pool = Executor::builder()
    ///     .max_workers(1)
    ///     .max_tasks_per_worker(2)                 // a new worker (and connection) every 2 tasks
    ///     .worker_state(move |_| Connection(Arc::clone(&c)))
    ///     .build()
    ///     .unwrap();
    /// for _ in 0..4 {
    ///     let f = pool.submit(|| with_worker_state(|_: &mut Connection| ()).is_some()).unwrap();
    ///     assert!(*f.result(None).unwrap());
    /// }
    /// pool.shutdown(true, false);
    /// assert_eq!(closed.load(Ordering::SeqCst), 2);
    /// ```
    pub fn worker_state<S, M>(mut self, make: M) -> Self
    where
        S: 'static,
        M: Fn(&WorkerInfo<'_>) -> S + Send + Sync + 'static,
    {
        self.worker_state = Some(Arc::new(move |info: &WorkerInfo<'_>| {
            Box::new(make(info)) as Box<dyn Any>
        }));
        self
    }

    /// Records each task's queue wait and run time, read back with
    /// [`TaskFuture::timings`](crate::TaskFuture::timings) and in the
    /// [`RunningTask::running_for`] of a [`ShutdownReport`]. Default `false`: timing a task costs
    /// a clock read when it is submitted and one when it ends (20–30 ns each on a virtual
    /// machine, a good part of a trivial task's whole cost), so a pool that does not ask pays
    /// nothing. The `waited_us`/`ran_us` fields of the DEBUG events are filled either way
    /// whenever those events are enabled.
    ///
    /// ```
    /// use taskhost_executor::Executor;
    ///
    /// let timed = Executor::builder().task_timings(true).build().unwrap();
    /// let f = timed.submit(|| ()).unwrap();
    /// f.result(None).unwrap();
    /// assert!(f.timings().queue_wait.is_some() && f.timings().run_time.is_some());
    ///
    /// let untimed = Executor::new(1).unwrap();
    /// let f = untimed.submit(|| ()).unwrap();
    /// f.result(None).unwrap();
    /// assert_eq!(f.timings().run_time, None);
    /// ```
    pub fn task_timings(mut self, on: bool) -> Self {
        self.task_timings = on;
        self
    }

    /// The stack size of each worker thread, in bytes. Default: the platform's (std's
    /// `RUST_MIN_STACK` or 2 MiB).
    ///
    /// ```
    /// let pool = taskhost_executor::Executor::builder().stack_size(8 << 20).build().unwrap();
    /// assert_eq!(*pool.submit(|| 1).unwrap().result(None).unwrap(), 1);
    /// ```
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.stack_size = Some(bytes);
        self
    }

    /// Builds the pool. No thread starts until the first submit.
    ///
    /// ```
    /// use taskhost_executor::{BuildError, Executor};
    /// assert_eq!(Executor::builder().max_workers(0).build().unwrap_err(), BuildError::ZeroWorkers);
    /// let pool = Executor::builder().build().unwrap();
    /// assert_eq!(pool.metrics().workers_alive, 0);
    /// ```
    pub fn build(self) -> Result<Executor, BuildError> {
        let max_workers = self.max_workers.unwrap_or_else(default_max_workers);
        if max_workers == 0 {
            return Err(BuildError::ZeroWorkers);
        }
        if max_workers > MAX_WORKERS {
            return Err(BuildError::TooManyWorkers(max_workers));
        }
        if self.queue_capacity > MAX_QUEUE_CAPACITY {
            return Err(BuildError::QueueTooLarge(self.queue_capacity));
        }
        let name = self.name.unwrap_or_else(|| "pool".to_owned());
        let prefix = self.thread_name_prefix.unwrap_or_else(|| name.clone());
        let inner = PoolInner {
            name: name.into_boxed_str(),
            thread_name_prefix: prefix.into_boxed_str(),
            max_workers,
            idle_timeout: self.idle_timeout,
            task_timings: self.task_timings,
            stack_size: self.stack_size,
            max_tasks_per_worker: self.max_tasks_per_worker,
            workers_can_retire: self.idle_timeout.is_some() || self.max_tasks_per_worker != 0,
            bounded: self.queue_capacity != 0,
            when_full: self.when_full,
            initializer: self.initializer,
            worker_state: self.worker_state,
            queue: Queue::new(self.queue_capacity),
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
        };
        Ok(Executor {
            inner: Arc::new(inner),
        })
    }
}

/// What one worker is running now, for [`ShutdownReport`].
pub(crate) struct WorkerSlot {
    /// This worker's own counters (summed by `Executor::metrics`).
    counts: Padded<WorkerSide>,
    task_id: counter::AtomicU64,
    started_ns: counter::AtomicU64,
    has_name: counter::AtomicBool,
    name: Mutex<Option<Arc<str>>>,
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

struct WorkerRecord {
    name: String,
    handle: Option<JoinHandle<()>>,
    slot: Arc<WorkerSlot>,
}

/// State guarded by the spawn/retire lock.
struct Workers {
    next_index: usize,
    threads: Vec<WorkerRecord>,
    broken_reason: Option<String>,
    /// Worker starts that failed since the last one that succeeded (logged once per streak).
    spawn_failures: u64,
    /// Counters of workers whose records were pruned.
    retired_counts: WorkerTotals,
}

/// Everything the executor, its workers and its futures share.
///
/// Aligned to a cache-line pair so that the `Arc`'s reference counts (bumped for every future)
/// do not share a line with the settings every submit and every task reads.
#[repr(align(128))]
pub(crate) struct PoolInner {
    pub(crate) name: Box<str>,
    thread_name_prefix: Box<str>,
    max_workers: usize,
    idle_timeout: Option<Duration>,
    /// [`ExecutorBuilder::task_timings`].
    task_timings: bool,
    /// [`ExecutorBuilder::stack_size`].
    stack_size: Option<usize>,
    max_tasks_per_worker: usize,
    /// An idle timeout or a task limit is set: workers may retire while the pool is open.
    workers_can_retire: bool,
    bounded: bool,
    when_full: WhenFull,
    initializer: Option<Initializer>,
    /// [`ExecutorBuilder::worker_state`].
    worker_state: Option<MakeState>,
    queue: Queue<Work>,
    pub(crate) metrics: Metrics,
    epoch: Instant,
    /// Python's idle semaphore: released by a worker about to wait, claimed by a submitter.
    /// (On its own cache line: written by workers and submitters alike.)
    idle_tokens: Padded<AtomicUsize>,
    /// Worker threads counted alive (the spawn decision reads it).
    alive: AtomicUsize,
    /// Submits that entered and left, per stripe (each submitting thread writes its own
    /// stripe's line; shutdown waits until no stripe has one in flight).
    submits: Striped<SubmitStripe>,
    /// No more submits.
    shutdown: AtomicBool,
    /// No more submits and none in flight: a worker that finds the queue empty exits.
    closed: AtomicBool,
    /// An initializer failed.
    broken: AtomicBool,
    /// The spawn/retire lock.
    workers: Mutex<Workers>,
    /// Signalled whenever a worker exits.
    workers_changed: Condvar,
    /// `shutdown_timeout` gave up on running tasks: dropping the executor will not join them.
    detached: AtomicBool,
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
    /// and dropping one. Kept out of line on purpose: inlined into the jobs' `run`, it cut
    /// scenario 3's `execute` time by a further ~10% but made scenario 1's lone submitter ~8%
    /// slower (A/B runs, five each; the profiles did not say why: removing the workers' idle spin
    /// did not bring it back, so code layout is as likely as the faster workers).
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
    fn enter(&self) {
        self.entered.fetch_add(1, Ordering::SeqCst);
    }

    /// The submit pushed its item or was refused.
    fn leave(&self) {
        self.left.fetch_add(1, Ordering::SeqCst);
    }

    /// Submits between [`enter`](Self::enter) and [`leave`](Self::leave). `left` is read first:
    /// a submit that leaves between the two reads is still counted, never one missed.
    fn in_flight(&self) -> u64 {
        let left = self.left.load(Ordering::SeqCst);
        self.entered.load(Ordering::SeqCst).wrapping_sub(left)
    }

    /// Submits that ever started on this stripe.
    fn entered(&self) -> u64 {
        self.entered.load(Ordering::Relaxed)
    }
}

/// A refused job and why.
type Refused = (Work, Refusal);

enum Refusal {
    ShutDown,
    Broken(String),
    Full,
}

impl PoolInner {
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
    fn try_claim_idle(&self) -> bool {
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
    fn saturated(&self) -> bool {
        !self.workers_can_retire && self.alive.load(Ordering::Relaxed) >= self.max_workers
    }

    /// After a push: claim an idle worker, or start one if below the maximum.
    #[inline]
    fn adjust_thread_count(self: &Arc<Self>) -> Result<(), std::io::Error> {
        if self.saturated() {
            Ok(())
        } else {
            self.claim_or_spawn()
        }
    }

    /// [`adjust_thread_count`](Self::adjust_thread_count) of a pool that is not saturated.
    #[inline(never)]
    fn claim_or_spawn(self: &Arc<Self>) -> Result<(), std::io::Error> {
        if self.try_claim_idle() {
            return Ok(());
        }
        if self.workers_can_retire {
            // Pairs with the fence in `retire_idle`/`retire_replacing` (see the module docs).
            fence(Ordering::SeqCst);
        }
        if self.alive.load(Ordering::SeqCst) >= self.max_workers {
            return Ok(());
        }
        let mut workers = lock(&self.workers);
        if self.alive.load(Ordering::SeqCst) < self.max_workers {
            if let Err(error) = self.spawn_locked(&mut workers) {
                drop(workers);
                return self.spawn_failed(error);
            }
        }
        Ok(())
    }

    /// Starts a worker (the caller holds the `workers` lock and saw room for one). A failure is
    /// logged once per streak of failures, with the count when a start succeeds again.
    fn spawn_locked(self: &Arc<Self>, workers: &mut Workers) -> Result<(), std::io::Error> {
        let mut retired = workers.retired_counts;
        workers.threads.retain_mut(|record| {
            // A worker drops its slot when it exits; a record without a handle was taken by
            // `join_all`, whose join may still be under way.
            let finished = match &record.handle {
                Some(handle) => thread::is_finished(handle),
                None => Arc::strong_count(&record.slot) == 1,
            };
            if finished {
                if let Some(handle) = record.handle.take() {
                    let _ = handle.join();
                }
                record.slot.counts.0.add_to(&mut retired);
            }
            !finished
        });
        workers.retired_counts = retired;
        let index = workers.next_index;
        workers.next_index += 1;
        let name = format!("{}_{}", self.thread_name_prefix, index);
        let slot = Arc::new(WorkerSlot::default());
        let alive = self.alive.fetch_add(1, Ordering::SeqCst) + 1;
        self.metrics.on_spawn(alive);
        let pool = Arc::clone(self);
        let thread_slot = Arc::clone(&slot);
        let thread_name = name.clone();
        match thread::spawn_named(name.clone(), self.stack_size, move || {
            worker_main(pool, thread_slot, thread_name);
        }) {
            Ok(handle) => {
                workers.threads.push(WorkerRecord {
                    name,
                    handle: Some(handle),
                    slot,
                });
                if workers.spawn_failures != 0 {
                    emit_spawn_recovered(&self.name, workers.spawn_failures);
                    workers.spawn_failures = 0;
                }
                Ok(())
            }
            Err(error) => {
                self.alive.fetch_sub(1, Ordering::SeqCst);
                workers.spawn_failures += 1;
                if workers.spawn_failures == 1 {
                    emit_spawn_failed(&self.name, &name, &error);
                }
                Err(error)
            }
        }
    }

    /// A submit could not start a worker. If others are alive they will drain the queue; if
    /// none is, retry with backoff (a thread limit may free up as exiting threads finish), and
    /// then break the pool rather than leave queued futures with nobody to run them.
    /// `Err`: still no worker; the caller breaks the pool once it is out of its submit window
    /// (breaking waits for every submit in flight to leave).
    #[cold]
    fn spawn_failed(self: &Arc<Self>, mut error: std::io::Error) -> Result<(), std::io::Error> {
        for delay_ms in SPAWN_RETRY_DELAYS_MS {
            if self.alive.load(Ordering::SeqCst) != 0 {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(delay_ms));
            let mut workers = lock(&self.workers);
            if self.alive.load(Ordering::SeqCst) != 0
                || self.queue.is_empty()
                || self.broken.load(Ordering::SeqCst)
            {
                return Ok(());
            }
            match self.spawn_locked(&mut workers) {
                Ok(()) => return Ok(()),
                Err(again) => error = again,
            }
        }
        if self.alive.load(Ordering::SeqCst) == 0 {
            Err(error)
        } else {
            Ok(())
        }
    }

    /// An idle worker whose timeout passed (and who took its own token back) tries to retire.
    /// False: work arrived, stay.
    fn retire_idle(&self, worker: &str) -> bool {
        let _workers = lock(&self.workers);
        self.alive.fetch_sub(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        if !self.queue.is_empty() {
            self.alive.fetch_add(1, Ordering::SeqCst);
            return false;
        }
        emit_retired(&self.name, worker, "idle");
        self.metrics.inc_retired();
        self.workers_changed.notify_all();
        true
    }

    /// A worker that reached its task limit retires, starting its replacement if work remains.
    /// False: the replacement could not start, so this worker stays (its recycling waits for
    /// its next task limit) rather than leave queued work to nobody.
    fn retire_replacing(self: &Arc<Self>, worker: &str) -> bool {
        let mut workers = lock(&self.workers);
        self.alive.fetch_sub(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        if !self.queue.is_empty()
            && self.alive.load(Ordering::SeqCst) < self.max_workers
            && self.spawn_locked(&mut workers).is_err()
        {
            self.alive.fetch_add(1, Ordering::SeqCst);
            return false;
        }
        emit_retired(&self.name, worker, "max_tasks");
        self.metrics.inc_retired();
        self.workers_changed.notify_all();
        true
    }

    /// A worker died (unwound outside any task): counted out, replaced if work is queued. No
    /// event: a panicking subscriber here would abort the process.
    fn replace_dead(self: &Arc<Self>, _worker: &str) {
        let mut workers = lock(&self.workers);
        self.alive.fetch_sub(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        self.metrics.inc_retired();
        if !self.closed.load(Ordering::SeqCst)
            && !self.queue.is_empty()
            && self.alive.load(Ordering::SeqCst) < self.max_workers
        {
            // Best effort: a failure is logged, and the next submit tries again.
            let _ = self.spawn_locked(&mut workers);
        }
        self.workers_changed.notify_all();
    }

    /// A worker exits for good (shutdown, broken pool).
    fn retire_exit(&self, worker: &str, reason: &'static str) {
        let _workers = lock(&self.workers);
        self.alive.fetch_sub(1, Ordering::SeqCst);
        emit_retired(&self.name, worker, reason);
        self.metrics.inc_retired();
        self.workers_changed.notify_all();
    }

    fn broken_reason(&self) -> String {
        lock(&self.workers)
            .broken_reason
            .clone()
            .unwrap_or_else(|| "an initializer failed".to_owned())
    }

    /// Waits until no submit is between its check and its push, draining if asked to.
    fn quiesce(&self, mut drain: impl FnMut()) {
        let mut spins = 0u32;
        loop {
            drain();
            if self.submits.iter().all(|stripe| stripe.in_flight() == 0) {
                break;
            }
            thread::backoff(spins);
            spins += 1;
        }
        drain();
    }

    fn drain(&self, why: Abandon<'_>) {
        while let Some(job) = self.queue.try_pop() {
            self.metrics.worker.0.inc_dequeued();
            // Abandoning drops user data (contained there); this also catches a panic in the
            // last reference's drop, so one bad item cannot stop the drain.
            if let Err(payload) = catch_unwind(AssertUnwindSafe(|| job.abandon(self, why))) {
                emit_drop_panicked(&self.name, 0, payload);
            }
        }
    }

    fn mark_broken(&self, reason: String) {
        {
            let mut workers = lock(&self.workers);
            if workers.broken_reason.is_none() {
                workers.broken_reason = Some(reason);
            }
        }
        self.broken.store(true, Ordering::SeqCst);
        let reason = self.broken_reason();
        emit_pool_broken(&self.name, &reason);
        self.quiesce(|| self.drain(Abandon::Broken(&reason)));
    }

    /// Puts a job on the queue under the pool's policy. `Ok(Some(job))`: run it here.
    fn enqueue(
        self: &Arc<Self>,
        job: Work,
        task_id: u64,
        task: Option<&str>,
    ) -> Result<Option<Work>, Refused> {
        let stripe = self.submits.mine();
        stripe.enter();
        // Broken first, as Python 3.14 checks: the more informative reason wins when both hold.
        let refusal = if self.broken.load(Ordering::SeqCst) {
            Some(Refusal::Broken(self.broken_reason()))
        } else if self.shutdown.load(Ordering::SeqCst) {
            Some(Refusal::ShutDown)
        } else {
            None
        };
        if let Some(refusal) = refusal {
            stripe.leave();
            return Err(self.refuse(job, refusal, task_id, task));
        }
        let mut no_worker = Ok(());
        let result = if !self.bounded || self.when_full == WhenFull::Block {
            emit_queued(&self.name, task_id, task, || self.queue.len() + 1);
            self.queue.push(job);
            no_worker = self.adjust_thread_count();
            Ok(None)
        } else {
            match self.queue.try_push(job) {
                Ok(()) => {
                    emit_queued(&self.name, task_id, task, || self.queue.len());
                    no_worker = self.adjust_thread_count();
                    Ok(None)
                }
                Err(job) if self.when_full == WhenFull::CallerRuns => Ok(Some(job)),
                Err(job) => Err((job, Refusal::Full)),
            }
        };
        stripe.leave();
        if let Err(error) = no_worker {
            // The queued futures (this one too) fail with this reason: never a hang.
            self.mark_broken(format!("cannot start a worker thread: {error}"));
        }
        result.map_err(|(job, refusal)| self.refuse(job, refusal, task_id, task))
    }

    fn refuse(&self, job: Work, refusal: Refusal, task_id: u64, task: Option<&str>) -> Refused {
        self.metrics.inc_rejected();
        // An untraced fire-and-forget task has no number yet (`0`).
        let task_id = if task_id == 0 {
            next_task_id()
        } else {
            task_id
        };
        let reason = match refusal {
            Refusal::ShutDown => "shut_down",
            Refusal::Broken(_) => "broken_pool",
            Refusal::Full => "queue_full",
        };
        emit_rejected(&self.name, task_id, task, reason);
        (job, refusal)
    }

    /// Runs a job in the submitting thread (`WhenFull::CallerRuns`).
    fn run_here(&self, job: Work) {
        self.metrics.worker.0.inc_dequeued();
        let ctx = WorkerCtx {
            pool: self,
            worker: "caller",
            slot: None,
            idle_token: None,
            last_task: false,
            clock: None,
            clocked: self.wants_clock(),
        };
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| job.run(&ctx))) {
            emit_drop_panicked(&self.name, 0, payload);
        }
    }

    fn shutdown(self: &Arc<Self>, wait: bool, cancel_futures: bool) {
        let first = !self.shutdown.swap(true, Ordering::SeqCst);
        if first || cancel_futures {
            if cancel_futures {
                self.quiesce(|| self.drain(Abandon::Shutdown));
            } else {
                self.quiesce(|| {});
            }
        }
        if first {
            emit_pool_shutdown(&self.name, wait, cancel_futures);
            self.closed.store(true, Ordering::SeqCst);
            self.queue.close();
        }
        if wait {
            self.join_all();
        }
    }

    /// Joins every worker thread except the caller's own (shutdown from inside a task).
    fn join_all(&self) {
        let me = thread::current().id();
        loop {
            let handles: Vec<JoinHandle<()>> = {
                let mut workers = lock(&self.workers);
                workers
                    .threads
                    .iter_mut()
                    .filter(|r| r.handle.as_ref().is_some_and(|h| h.thread().id() != me))
                    .filter_map(|r| r.handle.take())
                    .collect()
            };
            if handles.is_empty() {
                break;
            }
            for handle in handles {
                let _ = handle.join();
            }
        }
    }

    fn running_tasks(&self) -> Vec<RunningTask> {
        let now = self.epoch.elapsed();
        let workers = lock(&self.workers);
        let mut running = Vec::new();
        for record in &workers.threads {
            let task_id = record.slot.task_id.load(Ordering::Relaxed);
            if task_id == 0 {
                continue;
            }
            let started = record.slot.started_ns.load(Ordering::Relaxed);
            running.push(RunningTask {
                id: task_id,
                name: lock(&record.slot.name).as_deref().map(str::to_owned),
                worker: record.name.clone(),
                running_for: (started != NOT_TIMED)
                    .then(|| now.saturating_sub(Duration::from_nanos(started))),
            });
        }
        running
    }
}

fn worker_main(pool: Arc<PoolInner>, slot: Arc<WorkerSlot>, name: String) {
    emit_spawned(&pool.name, &name);
    let _departure = Departure {
        pool: &pool,
        worker: &name,
    };
    if let Some(initializer) = &pool.initializer {
        let failure = match catch_unwind(AssertUnwindSafe(|| initializer())) {
            Ok(Ok(())) => None,
            Ok(Err(message)) => Some(message),
            Err(panic) => Some(format!(
                "initializer panicked: {}",
                panic_message(panic.as_ref())
            )),
        };
        if let Some(message) = failure {
            pool.mark_broken(message);
            pool.retire_exit(&name, "broken");
            return;
        }
    }
    // Declared after `_departure`, so dropped first: the state goes before the worker is
    // counted out.
    let _state = match &pool.worker_state {
        None => None,
        Some(make) => {
            let info = WorkerInfo {
                pool: &pool.name,
                worker: &name,
            };
            match catch_unwind(AssertUnwindSafe(|| make(&info))) {
                Ok(state) => Some(worker_state::install(state, &pool.name)),
                Err(panic) => {
                    pool.mark_broken(format!(
                        "worker state panicked: {}",
                        panic_message(panic.as_ref())
                    ));
                    pool.retire_exit(&name, "broken");
                    return;
                }
            }
        }
    };
    let idle_token = Cell::new(false);
    let last_end = Cell::new(None);
    let mut tasks_run = 0usize;
    let limit = pool.max_tasks_per_worker;
    'work: loop {
        let job = match pool.queue.try_pop() {
            Some(job) => job,
            None => 'idle: {
                // Time passes from here on: the previous task's end is no longer a start.
                last_end.set(None);
                if pool.closed.load(Ordering::SeqCst) {
                    // Look again: the queue was found empty *before* `closed` was seen, and a
                    // submit that passed the shutdown check may have pushed in between (found by
                    // the loom model `shutdown_racing_submit_*`). Once `closed` is seen no push
                    // can follow, so an empty queue now is empty for good.
                    // (Not `is_empty`: the close wake-up counts as a message there.)
                    // Any token we hold no longer matters: nothing is submitted after close.
                    if let Some(job) = pool.queue.try_pop() {
                        break 'idle job;
                    }
                    pool.retire_exit(&name, "shutdown");
                    return;
                }
                if !idle_token.get() && !pool.saturated() {
                    pool.idle_tokens.0.fetch_add(1, Ordering::SeqCst);
                    idle_token.set(true);
                }
                // A short, bounded spin before sleeping (as crossbeam's own `recv` does): a
                // steady submitter usually refills the queue within microseconds, and parking
                // then waking a thread costs far more. Not a polling loop: after it, we block.
                if let Some(job) = spin_pop(&pool.queue) {
                    break 'idle job;
                }
                pool.metrics.inc_idle();
                let popped = pool.queue.pop_blocking(pool.idle_timeout);
                pool.metrics.dec_idle();
                match popped {
                    Popped::Item(job) => job,
                    Popped::Closed => continue 'work,
                    Popped::TimedOut => {
                        // Take our token back; if a submitter already claimed it, work is on
                        // its way to us, so stay.
                        if pool.try_claim_idle() {
                            idle_token.set(false);
                            if pool.retire_idle(&name) {
                                return;
                            }
                        }
                        continue 'work;
                    }
                }
            }
        };
        // Busy again. As in Python, the token we released is not taken back: the submitter of
        // the item we just took claims it (it pushes, then claims). Taking it back here would
        // race that claim and make the submitter start a needless thread.
        idle_token.set(false);
        slot.counts.0.inc_dequeued();
        run_one(
            &pool,
            &slot,
            &name,
            (&idle_token, &last_end),
            job,
            &mut tasks_run,
        );
        if limit != 0 && tasks_run >= limit {
            if pool.retire_replacing(&name) {
                return;
            }
            tasks_run = 0;
        }
    }
}

/// Counts out a worker that unwinds (a panic outside any task and outside the user data it
/// drops: the executor's own code, or a tracing subscriber), and starts its replacement if work
/// is queued, so the pool never waits on a worker that is gone.
struct Departure<'a> {
    pool: &'a Arc<PoolInner>,
    worker: &'a str,
}

impl Drop for Departure<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.pool.replace_dead(self.worker);
        }
    }
}

/// Runs one dequeued job on a worker, counting it if it ran.
fn run_one(
    pool: &PoolInner,
    slot: &WorkerSlot,
    name: &str,
    (idle_token, last_end): (&Cell<bool>, &Cell<Option<u64>>),
    job: Work,
    tasks_run: &mut usize,
) {
    let limit = pool.max_tasks_per_worker;
    let ctx = WorkerCtx {
        pool,
        worker: name,
        slot: Some(slot),
        idle_token: Some(idle_token),
        last_task: limit != 0 && *tasks_run + 1 >= limit,
        clock: Some(last_end),
        clocked: pool.wants_clock(),
    };
    // The task's own panic is caught inside `run`; what unwinds out of it is a `Drop` of user
    // data that `run` does not own by then (the job's last reference, holding the value).
    // The task ran and was counted: keep the worker.
    let ran = catch_unwind(AssertUnwindSafe(|| job.run(&ctx))).unwrap_or_else(|payload| {
        emit_drop_panicked(&pool.name, 0, payload);
        true
    });
    if ran {
        *tasks_run += 1;
    }
}

/// Tries the queue for a short, bounded while ([`spin_wait`]) before giving up.
fn spin_pop(queue: &Queue<Work>) -> Option<Work> {
    spin_wait(|| queue.try_pop())
}

/// One task still running when [`Executor::shutdown_timeout`] gave up waiting.
///
/// ```
/// # use taskhost_executor::RunningTask;
/// fn describe(t: &RunningTask) -> String {
///     format!("{} {:?} on {} for {:?}", t.id, t.name, t.worker, t.running_for)
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunningTask {
    /// The task's id.
    pub id: u64,
    /// Its name, if it was given one.
    pub name: Option<String>,
    /// The worker thread running it.
    pub worker: String,
    /// How long it had been running; `None` unless the pool records
    /// [`task_timings`](ExecutorBuilder::task_timings).
    pub running_for: Option<Duration>,
}

/// What [`Executor::shutdown_timeout`] found.
///
/// ```
/// use std::time::Duration;
/// use taskhost_executor::Executor;
///
/// let pool = Executor::new(1).unwrap();
/// pool.submit(|| ()).unwrap();
/// let report = pool.shutdown_timeout(Duration::from_secs(5), false);
/// assert!(report.all_stopped && report.still_running.is_empty());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Every worker exited within the limit.
    pub all_stopped: bool,
    /// Tasks still running when the limit passed.
    pub still_running: Vec<RunningTask>,
    /// How long the call waited.
    pub waited: Duration,
}

/// A thread pool with the semantics of Python's `concurrent.futures.ThreadPoolExecutor`.
///
/// `Send + Sync`; share it by reference or in an `Arc`. Dropping it is `shutdown(true, false)`.
/// See the [crate docs](crate) for a tour.
///
/// ```
/// use taskhost_executor::Executor;
///
/// let pool = Executor::new(4).unwrap();
/// let futures: Vec<_> = (0..8).map(|i| pool.submit(move || i * i).unwrap()).collect();
/// let squares: Vec<i32> = futures.iter().map(|f| *f.result(None).unwrap()).collect();
/// assert_eq!(squares, [0, 1, 4, 9, 16, 25, 36, 49]);
/// ```
pub struct Executor {
    inner: Arc<PoolInner>,
}

impl fmt::Debug for Executor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Executor")
            .field("name", &self.inner.name)
            .field("max_workers", &self.inner.max_workers)
            .field("metrics", &self.metrics())
            .finish()
    }
}

impl Drop for Executor {
    fn drop(&mut self) {
        let wait = !self.inner.detached.load(Ordering::SeqCst);
        self.inner.shutdown(wait, false);
    }
}

impl Executor {
    /// A builder with every default.
    ///
    /// ```
    /// let pool = taskhost_executor::Executor::builder().max_workers(2).build().unwrap();
    /// # drop(pool);
    /// ```
    pub fn builder() -> ExecutorBuilder {
        ExecutorBuilder::new()
    }

    /// A pool with `max_workers` threads at most and every other default; 0 is an error.
    ///
    /// ```
    /// let pool = taskhost_executor::Executor::new(2).unwrap();
    /// assert!(taskhost_executor::Executor::new(0).is_err());
    /// # drop(pool);
    /// ```
    pub fn new(max_workers: usize) -> Result<Executor, BuildError> {
        Executor::builder().max_workers(max_workers).build()
    }

    /// The pool's name.
    ///
    /// ```
    /// assert_eq!(taskhost_executor::Executor::new(1).unwrap().name(), "pool");
    /// ```
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The most worker threads alive at once.
    ///
    /// ```
    /// assert_eq!(taskhost_executor::Executor::new(3).unwrap().max_workers(), 3);
    /// ```
    pub fn max_workers(&self) -> usize {
        self.inner.max_workers
    }

    /// Queues `f` and returns its future at once. Callable from any thread, including from
    /// inside a task. A worker starts only if no idle one can be claimed and fewer than
    /// `max_workers` are alive. The value type must be `Send + Sync` because every clone of the
    /// future can read it from any thread.
    ///
    /// ```
    /// let pool = taskhost_executor::Executor::new(2).unwrap();
    /// let f = pool.submit(|| "hi".to_string()).unwrap();
    /// assert_eq!(f.result(None).unwrap(), "hi");
    /// ```
    pub fn submit<F, T>(&self, f: F) -> Result<TaskFuture<T>, SubmitError<F>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + Sync + 'static,
    {
        self.submit_task(None, Plain(f))
            .map_err(|e| e.map(|task: Plain<F>| task.0))
    }

    /// Like [`submit`](Self::submit), with options, for a closure that receives its
    /// [`TaskContext`] (to watch for a stop request).
    ///
    /// ```
    /// use taskhost_executor::{Executor, TaskOptions};
    /// let pool = Executor::new(2).unwrap();
    /// let f = pool.submit_with(TaskOptions::new().name("job"), |ctx| ctx.task_id()).unwrap();
    /// assert_eq!(*f.result(None).unwrap(), f.id());
    /// ```
    pub fn submit_with<F, T>(
        &self,
        options: TaskOptions,
        f: F,
    ) -> Result<TaskFuture<T>, SubmitError<F>>
    where
        F: FnOnce(&TaskContext) -> T + Send + 'static,
        T: Send + Sync + 'static,
    {
        self.submit_task(options.name, WithContext(f))
            .map_err(|e| e.map(|task: WithContext<F>| task.0))
    }

    pub(crate) fn submit_task<C, T>(
        &self,
        name: Option<Arc<str>>,
        task: C,
    ) -> Result<TaskFuture<T>, SubmitError<C>>
    where
        C: TaskFn<T>,
        T: Send + Sync + 'static,
    {
        let id = next_task_id();
        let queued_ns = self.inner.wants_clock().then(|| self.inner.now_ns());
        let job = Arc::new(FutureJob {
            cell: FutureCell::new(id, name, current_parent(), queued_ns),
            task: Mutex::new(Some(task)),
        });
        let future = TaskFuture {
            job: Arc::clone(&job) as Arc<dyn HoldsFutureCell<T>>,
        };
        match self.inner.enqueue(Work::Shared(job), id, future.name()) {
            Ok(None) => Ok(future),
            Ok(Some(job)) => {
                self.inner.run_here(job);
                Ok(future)
            }
            Err((job, refusal)) => {
                let Work::Shared(job) = job else {
                    unreachable!("the job is the one just built");
                };
                let job = job
                    .into_any()
                    .downcast::<FutureJob<C, T>>()
                    .unwrap_or_else(|_| unreachable!("the job is the one just built"));
                let Some(task) = lock(&job.task).take() else {
                    unreachable!("a refused job still has its closure");
                };
                Err(match refusal {
                    Refusal::ShutDown => SubmitError::ShutDown(task),
                    Refusal::Broken(why) => SubmitError::BrokenPool(task, why),
                    Refusal::Full => SubmitError::QueueFull(task),
                })
            }
        }
    }

    /// Fire and forget: queues `f` with no future (the cheapest path). Its panic is logged as a
    /// `task.failed` event and counted in `failed`.
    ///
    /// ```
    /// use std::sync::mpsc::channel;
    /// let pool = taskhost_executor::Executor::new(1).unwrap();
    /// let (tx, rx) = channel();
    /// pool.execute(move || tx.send(3).unwrap()).unwrap();
    /// assert_eq!(rx.recv().unwrap(), 3);
    /// ```
    pub fn execute<F>(&self, f: F) -> Result<(), SubmitError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        let parent = current_parent();
        let timed = self.inner.wants_clock();
        // Untraced, the task is numbered by the worker that starts it (0 here: no event that
        // could show an id is enabled, and a refusal numbers it on the spot; ids start at 1).
        let (id, traced) = if timed || parent.is_some() {
            let id = next_task_id();
            let queued_ns = if timed {
                self.inner.now_ns()
            } else {
                NOT_TIMED
            };
            let traced = Traced {
                id,
                parent,
                queued_ns,
            };
            (id, Some(Box::new(traced)))
        } else {
            (0, None)
        };
        let job = Box::new(ExecuteJob { f, traced });
        match self.inner.enqueue(Work::Owned(job), id, None) {
            Ok(None) => Ok(()),
            Ok(Some(job)) => {
                self.inner.run_here(job);
                Ok(())
            }
            Err((job, refusal)) => {
                let Work::Owned(job) = job else {
                    unreachable!("the job is the one just built");
                };
                let f = job
                    .into_any()
                    .downcast::<ExecuteJob<F>>()
                    .unwrap_or_else(|_| unreachable!("the job is the one just built"))
                    .f;
                Err(match refusal {
                    Refusal::ShutDown => SubmitError::ShutDown(f),
                    Refusal::Broken(why) => SubmitError::BrokenPool(f, why),
                    Refusal::Full => SubmitError::QueueFull(f),
                })
            }
        }
    }

    /// Stops accepting work; later submits fail with [`SubmitError::ShutDown`]. Queued items
    /// still run, unless `cancel_futures`, in which case they are cancelled
    /// ([`CancelReason::Shutdown`]). With `wait`, joins every worker thread (except the
    /// caller's own, when called from inside a task). Calling it again is harmless.
    ///
    /// ```
    /// let pool = taskhost_executor::Executor::new(2).unwrap();
    /// let f = pool.submit(|| 1).unwrap();
    /// pool.shutdown(true, false);
    /// pool.shutdown(true, false);
    /// assert_eq!(f.result(None), Ok(&1));
    /// assert_eq!(pool.metrics().workers_alive, 0);
    /// assert!(pool.submit(|| 2).is_err());
    /// ```
    pub fn shutdown(&self, wait: bool, cancel_futures: bool) {
        self.inner.shutdown(wait, cancel_futures);
    }

    /// Shuts down (like `shutdown(false, cancel_futures)`), then waits at most `limit` for every
    /// worker to exit. The report lists the tasks still running when the limit passed. If some
    /// were, dropping the executor afterwards does not wait for them either.
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskhost_executor::{Executor, TaskOptions};
    ///
    /// let pool = Executor::new(1).unwrap();
    /// let (tx, rx) = std::sync::mpsc::channel::<()>();
    /// let f = pool.submit_with(TaskOptions::new().name("stuck"), move |_| rx.recv().ok()).unwrap();
    /// while !f.running() { std::thread::yield_now(); }
    /// let report = pool.shutdown_timeout(Duration::from_millis(20), false);
    /// assert!(!report.all_stopped);
    /// assert_eq!(report.still_running[0].name.as_deref(), Some("stuck"));
    /// tx.send(()).unwrap();
    /// ```
    pub fn shutdown_timeout(&self, limit: Duration, cancel_futures: bool) -> ShutdownReport {
        let started = Instant::now();
        let deadline = started + limit;
        self.inner.shutdown(false, cancel_futures);
        let me = thread::current().id();
        let own_worker = {
            let workers = lock(&self.inner.workers);
            workers
                .threads
                .iter()
                .any(|r| r.handle.as_ref().is_some_and(|h| h.thread().id() == me))
        };
        let target = usize::from(own_worker);
        let mut workers = lock(&self.inner.workers);
        while self.inner.alive.load(Ordering::SeqCst) > target {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            workers = self
                .inner
                .workers_changed
                .wait_timeout(workers, deadline - now)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
        drop(workers);
        let all_stopped = self.inner.alive.load(Ordering::SeqCst) <= target;
        let still_running = if all_stopped {
            self.inner.join_all();
            Vec::new()
        } else {
            self.inner.detached.store(true, Ordering::SeqCst);
            self.inner.running_tasks()
        };
        ShutdownReport {
            all_stopped,
            still_running,
            waited: started.elapsed(),
        }
    }

    /// The pool's counters now.
    ///
    /// ```
    /// let pool = taskhost_executor::Executor::new(2).unwrap();
    /// pool.submit(|| ()).unwrap().result(None).unwrap();
    /// let m = pool.metrics();
    /// assert_eq!((m.submitted, m.completed, m.workers_spawned), (1, 1, 1));
    /// ```
    pub fn metrics(&self) -> MetricsSnapshot {
        let totals = {
            let workers = lock(&self.inner.workers);
            let mut totals = workers.retired_counts;
            for record in &workers.threads {
                record.slot.counts.0.add_to(&mut totals);
            }
            totals
        };
        let entered = || self.inner.submits.iter().map(SubmitStripe::entered).sum();
        self.inner
            .metrics
            .snapshot(entered, self.inner.alive.load(Ordering::SeqCst), totals)
    }
}
