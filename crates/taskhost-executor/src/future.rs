//! [`TaskFuture`]: the handle to one submitted task, and its shared state.
//!
//! The state (`Shared<T>`) lives inside the task's single allocation (the queued work item,
//! `FutureJob`), which every clone of the future shares. Its lifecycle is one atomic byte, so a task that nobody waits on completes
//! without taking any lock: the mutex is touched only when a waiter, callback, waker or watcher has
//! registered (the `HAS_WAITERS` bit says so).

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::OnceLock;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::error::{CancelReason, ResultError, TaskError};
use crate::executor::Parent;
use crate::sync::{
    lock, spin_wait, Arc, AtomicBool, AtomicU64, AtomicU8, Condvar, Mutex, MutexGuard, Ordering,
};
use crate::wait::Watch;

pub(crate) const PENDING: u8 = 0;
pub(crate) const RUNNING: u8 = 1;
pub(crate) const FINISHED: u8 = 2;
pub(crate) const FAILED: u8 = 3;
/// Failed without running because the pool broke: finished with an error, as Python's
/// `BrokenThreadPool` futures are, not cancelled.
pub(crate) const BROKEN: u8 = 4;
/// Every state from here up is a cancellation ([`TaskFuture::cancelled`]).
pub(crate) const CANCELLED_USER: u8 = 5;
pub(crate) const CANCELLED_SHUTDOWN: u8 = 6;
pub(crate) const CANCELLED_STOP: u8 = 7;
const STATE_MASK: u8 = 0x0f;
const HAS_WAITERS: u8 = 0x80;
/// Set (with `HAS_WAITERS`, under the waiter lock) by a thread about to block on the condvar:
/// only then does completing the task make the wake-up system call (a std `Condvar` makes it
/// on every notify, sleeper or not, and a future with a done callback but no blocked reader is
/// the host's every item).
const HAS_SLEEPERS: u8 = 0x40;
/// The timings word of a task that is not timed.
const UNSET: u64 = u64::MAX;
/// High bit of the timings word: the task has not started; the rest is its enqueue time.
const QUEUED: u64 = 1 << 63;
/// The timings word's low half while the task runs.
const RUN_PENDING: u64 = 0xFFFF_FFFF;
/// The timings word's high half when the run was timed but the queue wait was not.
const WAIT_UNKNOWN: u64 = 0x7FFF_FFFF;
/// Bits of the queue wait (the high half less [`QUEUED`]'s bit) and of the run time.
const WAIT_BITS: u32 = 31;
const RUN_BITS: u32 = 32;
/// Nanoseconds per unit of a packed duration: ns, µs, ms, s.
const UNIT_NS: [u64; 4] = [1, 1_000, 1_000_000, 1_000_000_000];

/// `ns` in `bits` bits: two bits of unit and a count in the finest unit that fits (rounded
/// down), so short durations keep every nanosecond and long ones lose under two millionths,
/// with no cap short of decades. The all-ones code is never produced ([`RUN_PENDING`],
/// [`WAIT_UNKNOWN`]).
fn pack_duration(ns: u64, bits: u32) -> u64 {
    let count_bits = bits - 2;
    let limit = (1u64 << count_bits) - 1;
    for (unit, scale) in (0u64..).zip(UNIT_NS) {
        let count = ns / scale;
        if count < limit {
            return (unit << count_bits) | count;
        }
    }
    (3 << count_bits) | (limit - 1)
}

/// The inverse of [`pack_duration`].
fn unpack_duration(code: u64, bits: u32) -> Duration {
    let count_bits = bits - 2;
    let unit = usize::try_from((code >> count_bits) & 3).unwrap_or(3);
    let count = code & ((1u64 << count_bits) - 1);
    Duration::from_nanos(count.saturating_mul(UNIT_NS[unit]))
}

fn is_done(state: u8) -> bool {
    state & STATE_MASK >= FINISHED
}

pub(crate) fn cancelled_state(reason: CancelReason) -> u8 {
    match reason {
        CancelReason::User => CANCELLED_USER,
        CancelReason::Shutdown => CANCELLED_SHUTDOWN,
        CancelReason::StopRequested => CANCELLED_STOP,
    }
}

/// Where a future is in its life: `Pending → Running → Finished`, or `Pending → Cancelled`
/// (and `Running → Cancelled` only when the task honoured a stop request).
///
/// ```
/// use taskhost_executor::{Executor, FutureState};
///
/// let pool = Executor::new(1).unwrap();
/// let f = pool.submit(|| 7).unwrap();
/// f.result(None).unwrap();
/// assert_eq!(f.state(), FutureState::Finished);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FutureState {
    /// Queued, not yet picked up by a worker.
    Pending,
    /// A worker is running the task.
    Running,
    /// The task returned or panicked, or never ran because the pool broke.
    Finished,
    /// The task was cancelled before it ran, or honoured a stop request.
    Cancelled,
}

/// How long a task waited in the queue and how long it ran, from [`TaskFuture::timings`]:
/// recorded only by a pool built with
/// [`task_timings(true)`](crate::ExecutorBuilder::task_timings). Exact to the nanosecond up to
/// about half a second, then to the microsecond, millisecond or second (under two millionths off),
/// never rounded up.
///
/// ```
/// use taskhost_executor::Executor;
///
/// let pool = Executor::builder().max_workers(1).task_timings(true).build().unwrap();
/// let f = pool.submit(|| ()).unwrap();
/// f.result(None).unwrap();
/// let t = f.timings();
/// assert!(t.queue_wait.is_some() && t.run_time.is_some());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TaskTimings {
    /// Time from submission to the start of the run; `None` until the task starts.
    pub queue_wait: Option<Duration>,
    /// Time the task ran; `None` until it has finished running.
    pub run_time: Option<Duration>,
}

/// What a finished task left behind. The messages are boxed so that the slot is no bigger than
/// the value plus a tag (every queued task carries this slot).
pub(crate) enum Outcome<T> {
    Value(T),
    Panicked(Box<Message>),
    Broken(Box<Message>),
}

/// A panic or broken-pool message (boxed inside [`Outcome`]).
pub(crate) struct Message(pub(crate) String);

type Callback<T> = Box<dyn FnOnce(&TaskFuture<T>) + Send>;

/// Everything that waits on one future; only touched when `HAS_WAITERS` is set, and only
/// allocated when a callback, waker or watcher registers (a plain `result` wait needs none).
struct Waiters<T> {
    /// The first callback, kept inline: most futures that get one get only one, and this saves
    /// the vector's allocation.
    first_callback: Option<Callback<T>>,
    /// Callbacks registered after the first, in order.
    callbacks: Vec<Callback<T>>,
    wakers: Vec<Waker>,
    watchers: Vec<(Arc<Watch>, usize)>,
}

impl<T> Default for Waiters<T> {
    fn default() -> Self {
        Waiters {
            first_callback: None,
            callbacks: Vec::new(),
            wakers: Vec::new(),
            watchers: Vec::new(),
        }
    }
}

/// The waiter list behind its lock: `None` until something registers.
type WaiterSlot<T> = Option<Box<Waiters<T>>>;

/// The waiter list, created on first use.
fn waiters_mut<T>(slot: &mut WaiterSlot<T>) -> &mut Waiters<T> {
    slot.get_or_insert_with(Box::default)
}

/// The state one task's future shares with its work item. Kept small: every queued task
/// carries one (issue 5's memory target).
pub(crate) struct Shared<T> {
    pub(crate) id: u64,
    /// The name and the submitter's span, boxed together (8 bytes for both, no allocation when
    /// the task has neither): with the one-word timings below, a task with a closure of up to
    /// two words stays within glibc's fast bins (chunks of up to 128 bytes). Eight bytes more
    /// put it in the 144-byte class, which glibc coalesces on free and trims from the heap: a
    /// million-task batch in the benchmark then ran at 2.2× the floor's time per task instead
    /// of 1.07–1.33× (ARCHITECTURE.md says when the fast bins do not help).
    extras: Option<Box<Extras>>,
    state: AtomicU8,
    stop_requested: AtomicBool,
    stop_observed: AtomicBool,
    outcome: OnceLock<Outcome<T>>,
    /// [`UNSET`] if the task is not timed. While it is queued: `QUEUED | enqueue time` (ns since
    /// the pool's epoch). Once it has started: the queue wait in the high half and the run time
    /// in the low half ([`RUN_PENDING`] until it has run), each packed by [`pack_duration`].
    /// One word, not two: eight bytes less keep a task with a two-word closure within glibc's
    /// fast bins.
    timings: AtomicU64,
    waiters: Mutex<WaiterSlot<T>>,
    condvar: Condvar,
}

/// What only some tasks have (see [`Shared`]'s `extras`).
struct Extras {
    name: Option<Arc<str>>,
    /// The submitter's span, the parent of the task's span; taken when the task starts (or is
    /// dropped unrun), so that a live span handle does not keep the submitter's span open for
    /// as long as the futures live.
    parent: Mutex<Parent>,
}

/// Whatever holds a future's shared state (the job that also holds the closure).
pub(crate) trait HasShared<T>: Send + Sync + 'static {
    fn shared(&self) -> &Shared<T>;
}

impl<T: Send + Sync + 'static> Shared<T> {
    pub(crate) fn stop_requested(&self) -> bool {
        self.stop_requested.load(Ordering::Acquire)
    }

    pub(crate) fn mark_observed(&self) {
        self.stop_observed.store(true, Ordering::Relaxed);
    }

    /// `parent`: the submitter's span; `queued_ns`: when the task was queued, in ns since its
    /// pool's epoch (`None`: the task is not timed).
    pub(crate) fn new(
        id: u64,
        name: Option<Arc<str>>,
        parent: Parent,
        queued_ns: Option<u64>,
    ) -> Self {
        let extras = (name.is_some() || parent.is_some()).then(|| {
            Box::new(Extras {
                name,
                parent: Mutex::new(parent),
            })
        });
        Shared {
            id,
            extras,
            state: AtomicU8::new(PENDING),
            stop_requested: AtomicBool::new(false),
            stop_observed: AtomicBool::new(false),
            outcome: OnceLock::new(),
            timings: AtomicU64::new(queued_ns.map_or(UNSET, |ns| QUEUED | (ns & !QUEUED))),
            waiters: Mutex::new(None),
            condvar: Condvar::new(),
        }
    }

    /// The task's name.
    pub(crate) fn name(&self) -> Option<&str> {
        self.name_arc().map(|name| &**name)
    }

    /// The task's name, shared.
    pub(crate) fn name_arc(&self) -> Option<&Arc<str>> {
        self.extras.as_ref()?.name.as_ref()
    }

    /// Takes the submitter's span (once: when the task starts or is dropped unrun).
    pub(crate) fn take_parent(&self) -> Parent {
        self.extras
            .as_ref()
            .and_then(|extras| lock(&extras.parent).take())
    }

    /// When the task was queued (ns since the pool's epoch), if it is timed; only meaningful
    /// before [`record_queue_wait`](Self::record_queue_wait), i.e. to the thread that starts it.
    pub(crate) fn queued_ns(&self) -> Option<u64> {
        let raw = self.timings.load(Ordering::Relaxed);
        (raw != UNSET && raw & QUEUED != 0).then_some(raw & !QUEUED)
    }

    fn load(&self) -> u8 {
        self.state.load(Ordering::Acquire) & STATE_MASK
    }

    /// Moves `from → to` (keeping the waiter bit); returns the previous raw state on success.
    fn transition(&self, from: u8, to: u8) -> Result<u8, u8> {
        let mut current = self.state.load(Ordering::Acquire);
        loop {
            if current & STATE_MASK != from {
                return Err(current);
            }
            let next = (current & (HAS_WAITERS | HAS_SLEEPERS)) | to;
            match self.state.compare_exchange_weak(
                current,
                next,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(previous) => return Ok(previous),
                Err(actual) => current = actual,
            }
        }
    }

    /// Claims a pending item for running; false if it was cancelled while queued.
    pub(crate) fn try_start(&self) -> bool {
        self.transition(PENDING, RUNNING).is_ok()
    }

    /// Records the queue wait (by the worker that started the task, the word's only writer).
    pub(crate) fn record_queue_wait(&self, waited_ns: u64) {
        let word = (pack_duration(waited_ns, WAIT_BITS) << 32) | RUN_PENDING;
        self.timings.store(word, Ordering::Relaxed);
    }

    /// Records the run time (by the worker that ran the task), keeping the queue wait.
    pub(crate) fn record_run_time(&self, ran_ns: u64) {
        let raw = self.timings.load(Ordering::Relaxed);
        let wait = if raw & QUEUED != 0 {
            WAIT_UNKNOWN
        } else {
            raw >> 32
        };
        let word = (wait << 32) | pack_duration(ran_ns, RUN_BITS);
        self.timings.store(word, Ordering::Relaxed);
    }

    /// The queue wait and run time recorded so far.
    fn timings(&self) -> TaskTimings {
        let raw = self.timings.load(Ordering::Relaxed);
        if raw & QUEUED != 0 {
            return TaskTimings::default();
        }
        let (wait, run) = (raw >> 32, raw & 0xFFFF_FFFF);
        TaskTimings {
            queue_wait: (wait != WAIT_UNKNOWN).then(|| unpack_duration(wait, WAIT_BITS)),
            run_time: (run != RUN_PENDING).then(|| unpack_duration(run, RUN_BITS)),
        }
    }

    pub(crate) fn stop_was_observed(&self) -> bool {
        self.stop_observed.load(Ordering::Relaxed) && self.stop_requested.load(Ordering::Relaxed)
    }

    /// Publishes the outcome of a run (state must be RUNNING, owned by the caller). Returns
    /// whether anyone had registered (and so was woken or had callbacks run).
    pub(crate) fn complete(&self, outcome: Outcome<T>, owner: &dyn Fn() -> TaskFuture<T>) -> bool {
        let to = match outcome {
            Outcome::Value(_) => FINISHED,
            Outcome::Panicked(_) => FAILED,
            Outcome::Broken(_) => BROKEN,
        };
        let _ = self.outcome.set(outcome);
        match self.transition(RUNNING, to) {
            Ok(previous) => self.notify(previous, owner),
            Err(_) => false,
        }
    }

    /// Ends a running task as cancelled because it honoured a stop request.
    pub(crate) fn complete_stopped(&self, owner: &dyn Fn() -> TaskFuture<T>) -> bool {
        match self.transition(RUNNING, CANCELLED_STOP) {
            Ok(previous) => self.notify(previous, owner),
            Err(_) => false,
        }
    }

    /// Cancels a pending future for `reason`; true if this call cancelled it.
    pub(crate) fn cancel_pending(
        &self,
        reason: CancelReason,
        owner: &dyn Fn() -> TaskFuture<T>,
    ) -> bool {
        match self.transition(PENDING, cancelled_state(reason)) {
            Ok(previous) => {
                self.notify(previous, owner);
                true
            }
            Err(_) => false,
        }
    }

    /// Wakes whoever registered, if anyone did (`previous` is the raw state before the change).
    /// `owner` builds a future handle for the callbacks.
    #[inline]
    fn notify(&self, previous: u8, owner: &dyn Fn() -> TaskFuture<T>) -> bool {
        previous & HAS_WAITERS != 0 && self.notify_registered(previous, owner)
    }

    /// [`notify`](Self::notify) once something has registered.
    #[inline(never)]
    fn notify_registered(&self, previous: u8, owner: &dyn Fn() -> TaskFuture<T>) -> bool {
        let waiters = lock(&self.waiters).take();
        // Notify after unlocking, so a woken waiter does not block on the lock we hold. No
        // wake-up is lost: a sleeper sets `HAS_SLEEPERS` and starts waiting under the lock, so
        // either our state change saw the bit (and we took the lock after it was waiting), or
        // its `fetch_or` saw the task done and it never slept.
        if previous & HAS_SLEEPERS != 0 {
            self.condvar.notify_all();
        }
        let Some(waiters) = waiters else {
            return true;
        };
        let Waiters {
            first_callback,
            callbacks,
            wakers,
            watchers,
        } = *waiters;
        for (watch, index) in watchers {
            watch.notify(index);
        }
        for waker in wakers {
            waker.wake();
        }
        let Some(first) = first_callback else {
            return true;
        };
        let future = owner();
        future.run_callback(first);
        for callback in callbacks {
            future.run_callback(callback);
        }
        true
    }

    /// Watches the state for a short, bounded while ([`spin_wait`]) before the caller blocks:
    /// a trivial task usually finishes within microseconds, and sleeping on the condvar then
    /// being woken costs far more, on both sides (the worker need not even take the lock if
    /// nobody registered).
    fn spin_until_done(&self) -> bool {
        spin_wait(|| is_done(self.load()).then_some(())).is_some()
    }

    /// Locks the waiter list and sets `HAS_WAITERS`; returns the guard and whether it is done.
    fn register(&self) -> (MutexGuard<'_, WaiterSlot<T>>, bool) {
        self.register_with(HAS_WAITERS)
    }

    /// Like [`register`](Self::register), for a thread that will block on the condvar.
    fn register_sleeper(&self) -> (MutexGuard<'_, WaiterSlot<T>>, bool) {
        self.register_with(HAS_WAITERS | HAS_SLEEPERS)
    }

    fn register_with(&self, bits: u8) -> (MutexGuard<'_, WaiterSlot<T>>, bool) {
        let guard = lock(&self.waiters);
        let state = self.state.fetch_or(bits, Ordering::AcqRel);
        (guard, is_done(state))
    }

    #[inline]
    fn wait_done(&self, timeout: Option<Duration>) -> bool {
        is_done(self.load()) || self.wait_not_done(timeout)
    }

    /// [`wait_done`](Self::wait_done) for a task not yet done when first looked at.
    #[inline(never)]
    fn wait_not_done(&self, timeout: Option<Duration>) -> bool {
        if timeout != Some(Duration::ZERO) && self.spin_until_done() {
            return true;
        }
        let deadline = timeout.map(|t| Instant::now() + t);
        let (mut guard, done) = self.register_sleeper();
        if done {
            return true;
        }
        loop {
            if is_done(self.load()) {
                return true;
            }
            match deadline {
                None => {
                    guard = self
                        .condvar
                        .wait(guard)
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                }
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return false;
                    }
                    guard = self
                        .condvar
                        .wait_timeout(guard, deadline - now)
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .0;
                }
            }
        }
    }
}

/// The handle to one submitted task, like Python's `concurrent.futures.Future`.
///
/// Cheap to clone: every clone shares one state. `Send + Sync`. Read the result any number of
/// times with [`result`](Self::result); it also implements [`std::future::Future`] (for
/// `T: Clone`), so async code can `.await` it — the output is `Result<T, ResultError>`, a clone of
/// the stored value.
///
/// ```
/// use std::time::Duration;
/// use taskhost_executor::Executor;
///
/// let pool = Executor::new(2).unwrap();
/// let f = pool.submit(|| 6 * 7).unwrap();
/// assert_eq!(*f.result(Some(Duration::from_secs(5))).unwrap(), 42);
/// assert!(f.done() && !f.cancelled());
/// ```
pub struct TaskFuture<T> {
    /// The job that holds this future's state (and, until it runs, the closure).
    pub(crate) cell: Arc<dyn HasShared<T>>,
}

impl<T> Clone for TaskFuture<T> {
    fn clone(&self) -> Self {
        TaskFuture {
            cell: Arc::clone(&self.cell),
        }
    }
}

impl<T: Send + Sync + 'static> fmt::Debug for TaskFuture<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskFuture")
            .field("id", &self.sh().id)
            .field("name", &self.sh().name())
            .field("state", &self.state())
            .finish()
    }
}

impl<T: Send + Sync + 'static> TaskFuture<T> {
    fn sh(&self) -> &Shared<T> {
        self.cell.shared()
    }

    /// The task's id, unique within the process, as in the tracing field `task_id`.
    ///
    /// ```
    /// # use taskhost_executor::Executor;
    /// let pool = Executor::new(1).unwrap();
    /// let (a, b) = (pool.submit(|| ()).unwrap(), pool.submit(|| ()).unwrap());
    /// assert_ne!(a.id(), b.id());
    /// ```
    pub fn id(&self) -> u64 {
        self.sh().id
    }

    /// The task's name from [`TaskOptions::name`](crate::TaskOptions::name), if it has one.
    ///
    /// ```
    /// # use taskhost_executor::{Executor, TaskOptions};
    /// let pool = Executor::new(1).unwrap();
    /// let f = pool.submit_with(TaskOptions::new().name("hash"), |_| ()).unwrap();
    /// assert_eq!(f.name(), Some("hash"));
    /// ```
    pub fn name(&self) -> Option<&str> {
        self.sh().name()
    }

    /// The current state.
    ///
    /// ```
    /// # use taskhost_executor::{Executor, FutureState};
    /// let pool = Executor::new(1).unwrap();
    /// let f = pool.submit(|| ()).unwrap();
    /// f.result(None).unwrap();
    /// assert_eq!(f.state(), FutureState::Finished);
    /// ```
    pub fn state(&self) -> FutureState {
        match self.sh().load() {
            PENDING => FutureState::Pending,
            RUNNING => FutureState::Running,
            FINISHED | FAILED | BROKEN => FutureState::Finished,
            _ => FutureState::Cancelled,
        }
    }

    /// Cancels the task if it has not started: returns true while pending (and again if already
    /// cancelled), false once running or finished. Python's meaning; to stop a running task use
    /// [`request_stop`](Self::request_stop). A cancelled future is done at once: waiters, `wait`
    /// and `as_completed` see it immediately, and its done callbacks run in this thread.
    ///
    /// ```
    /// # use taskhost_executor::Executor;
    /// let pool = Executor::new(1).unwrap();
    /// let (tx, rx) = std::sync::mpsc::channel::<()>();
    /// let blocker = pool.submit(move || rx.recv().ok()).unwrap();
    /// let queued = pool.submit(|| 1).unwrap();
    /// assert!(queued.cancel() && queued.cancel() && queued.cancelled());
    /// tx.send(()).unwrap();
    /// blocker.result(None).unwrap();
    /// assert!(!blocker.cancel());
    /// ```
    pub fn cancel(&self) -> bool {
        // The pool counts the cancellation (and emits `task.cancelled`) when the item leaves
        // the queue, so that a future need not hold a reference to its pool.
        self.sh()
            .cancel_pending(CancelReason::User, &|| self.clone())
            || self.cancelled()
    }

    /// Whether the future ended cancelled (for any [`CancelReason`]).
    ///
    /// ```
    /// # use taskhost_executor::Executor;
    /// let pool = Executor::new(1).unwrap();
    /// let f = pool.submit(|| ()).unwrap();
    /// f.result(None).unwrap();
    /// assert!(!f.cancelled());
    /// ```
    pub fn cancelled(&self) -> bool {
        self.sh().load() >= CANCELLED_USER
    }

    /// Why the future was cancelled, if it was.
    ///
    /// ```
    /// # use taskhost_executor::{Executor, CancelReason};
    /// let pool = Executor::new(1).unwrap();
    /// let (tx, rx) = std::sync::mpsc::channel::<()>();
    /// let _blocker = pool.submit(move || rx.recv().ok()).unwrap();
    /// let f = pool.submit(|| ()).unwrap();
    /// f.cancel();
    /// assert_eq!(f.cancel_reason(), Some(CancelReason::User));
    /// tx.send(()).unwrap();
    /// ```
    pub fn cancel_reason(&self) -> Option<CancelReason> {
        match self.sh().load() {
            CANCELLED_USER => Some(CancelReason::User),
            CANCELLED_SHUTDOWN => Some(CancelReason::Shutdown),
            CANCELLED_STOP => Some(CancelReason::StopRequested),
            _ => None,
        }
    }

    /// Whether a worker is running the task now.
    ///
    /// ```
    /// # use taskhost_executor::Executor;
    /// let pool = Executor::new(1).unwrap();
    /// let f = pool.submit(|| ()).unwrap();
    /// f.result(None).unwrap();
    /// assert!(!f.running());
    /// ```
    pub fn running(&self) -> bool {
        self.sh().load() == RUNNING
    }

    /// Whether the future is finished or cancelled.
    ///
    /// ```
    /// # use taskhost_executor::Executor;
    /// let pool = Executor::new(1).unwrap();
    /// let f = pool.submit(|| ()).unwrap();
    /// f.result(None).unwrap();
    /// assert!(f.done());
    /// ```
    pub fn done(&self) -> bool {
        is_done(self.sh().load())
    }

    /// Blocks until the task is done or `timeout` passes (`None`: no limit), then returns a
    /// reference to its value, or why there is none. A timeout leaves the future unchanged; the
    /// result can be read any number of times.
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskhost_executor::{Executor, ResultError};
    ///
    /// let pool = Executor::new(1).unwrap();
    /// let slow = pool.submit(|| std::thread::sleep(Duration::from_millis(200))).unwrap();
    /// assert_eq!(slow.result(Some(Duration::from_millis(1))), Err(ResultError::Timeout));
    /// assert_eq!(slow.result(None), Ok(&()));
    /// let boom = pool.submit(|| -> u8 { panic!("boom") }).unwrap();
    /// assert_eq!(boom.result(None), Err(ResultError::Panicked("boom".into())));
    /// ```
    pub fn result(&self, timeout: Option<Duration>) -> Result<&T, ResultError> {
        let shared = self.sh();
        if !shared.wait_done(timeout) {
            return Err(ResultError::Timeout);
        }
        match shared.load() {
            FINISHED | FAILED | BROKEN => match shared.outcome.get() {
                Some(Outcome::Value(value)) => Ok(value),
                Some(Outcome::Panicked(message)) => Err(ResultError::Panicked(message.0.clone())),
                Some(Outcome::Broken(message)) => Err(ResultError::BrokenPool(message.0.clone())),
                None => unreachable!("a finished future has an outcome"),
            },
            _ => Err(ResultError::Cancelled(
                self.cancel_reason().unwrap_or(CancelReason::User),
            )),
        }
    }

    /// Like Python's `exception()`: blocks like [`result`](Self::result), then returns the task's
    /// error (`None` if it returned normally). Errors with `Timeout` or `Cancelled`.
    ///
    /// ```
    /// # use taskhost_executor::{Executor, TaskError};
    /// let pool = Executor::new(1).unwrap();
    /// let ok = pool.submit(|| 1).unwrap();
    /// assert_eq!(ok.exception(None), Ok(None));
    /// let bad = pool.submit(|| -> u8 { panic!("bad") }).unwrap();
    /// assert_eq!(bad.exception(None), Ok(Some(TaskError::Panicked("bad".into()))));
    /// ```
    pub fn exception(&self, timeout: Option<Duration>) -> Result<Option<TaskError>, ResultError> {
        match self.result(timeout) {
            Ok(_) => Ok(None),
            Err(ResultError::Panicked(message)) => Ok(Some(TaskError::Panicked(message))),
            Err(ResultError::BrokenPool(message)) => Ok(Some(TaskError::BrokenPool(message))),
            Err(other) => Err(other),
        }
    }

    /// Adds a callback that runs once the future is done, in the thread that completes (or
    /// cancels) it, or at once in this thread if it is already done. Callbacks run in the order
    /// added; one that panics is logged (event `callback.panicked`) and the others still run.
    ///
    /// ```
    /// use std::sync::mpsc::channel;
    /// use taskhost_executor::Executor;
    ///
    /// let pool = Executor::new(1).unwrap();
    /// let (tx, rx) = channel();
    /// let f = pool.submit(|| 5).unwrap();
    /// f.add_done_callback(move |f| tx.send(*f.result(None).unwrap()).unwrap());
    /// assert_eq!(rx.recv().unwrap(), 5);
    /// ```
    pub fn add_done_callback<C>(&self, callback: C)
    where
        C: FnOnce(&TaskFuture<T>) + Send + 'static,
    {
        let (mut guard, done) = self.sh().register();
        if done {
            drop(guard);
            self.run_callback(Box::new(callback));
        } else {
            let waiters = waiters_mut(&mut guard);
            if waiters.first_callback.is_none() {
                waiters.first_callback = Some(Box::new(callback));
            } else {
                waiters.callbacks.push(Box::new(callback));
            }
        }
    }

    fn run_callback(&self, callback: Callback<T>) {
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| callback(self))) {
            let message = crate::executor::panic_message(panic.as_ref());
            tracing::event!(
                name: "callback.panicked",
                target: "taskhost_executor",
                tracing::Level::ERROR,
                task_id = self.sh().id,
                task = self.sh().name(),
                panic = %message,
                "callback.panicked"
            );
        }
    }

    /// Asks the task to stop cooperatively: sets its [`CancellationToken`](crate::CancellationToken).
    /// A task that then sees [`TaskContext::is_cancelled`](crate::TaskContext::is_cancelled)
    /// return true and returns ends as cancelled with [`CancelReason::StopRequested`]; a task that
    /// never looks finishes normally. Works on pending tasks too (they see it when they start).
    /// Returns false if the future was already done.
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskhost_executor::{CancelReason, Executor, ResultError, TaskOptions};
    ///
    /// let pool = Executor::new(1).unwrap();
    /// let f = pool
    ///     .submit_with(TaskOptions::new(), |ctx| {
    ///         while !ctx.is_cancelled() {
    ///             std::thread::sleep(Duration::from_millis(1));
    ///         }
    ///     })
    ///     .unwrap();
    /// assert!(f.request_stop());
    /// assert_eq!(f.result(None), Err(ResultError::Cancelled(CancelReason::StopRequested)));
    /// ```
    pub fn request_stop(&self) -> bool {
        self.sh().stop_requested.store(true, Ordering::Release);
        !self.done()
    }

    /// Whether [`request_stop`](Self::request_stop) was called.
    ///
    /// ```
    /// # use taskhost_executor::Executor;
    /// let pool = Executor::new(1).unwrap();
    /// let f = pool.submit(|| ()).unwrap();
    /// f.request_stop();
    /// assert!(f.stop_requested());
    /// ```
    pub fn stop_requested(&self) -> bool {
        self.sh().stop_requested.load(Ordering::Acquire)
    }

    /// How long the task waited in the queue and how long it ran (each `None` until known, and
    /// always `None` unless the pool was built with
    /// [`task_timings(true)`](crate::ExecutorBuilder::task_timings)).
    ///
    /// ```
    /// # use taskhost_executor::Executor;
    /// let pool = Executor::builder().max_workers(1).task_timings(true).build().unwrap();
    /// let f = pool.submit(|| std::thread::sleep(std::time::Duration::from_millis(5))).unwrap();
    /// f.result(None).unwrap();
    /// assert!(f.timings().run_time.unwrap() >= std::time::Duration::from_millis(5));
    /// ```
    pub fn timings(&self) -> TaskTimings {
        self.sh().timings()
    }

    /// Registers a multi-future watcher; false if the future is already done.
    pub(crate) fn watch(&self, watch: &Arc<Watch>, index: usize) -> bool {
        let (mut guard, done) = self.sh().register();
        if !done {
            waiters_mut(&mut guard)
                .watchers
                .push((Arc::clone(watch), index));
        }
        !done
    }

    /// Removes a watcher registered with [`watch`](Self::watch).
    pub(crate) fn unwatch(&self, watch: &Arc<Watch>) {
        if let Some(waiters) = lock(&self.sh().waiters).as_mut() {
            waiters.watchers.retain(|(w, _)| !Arc::ptr_eq(w, watch));
        }
    }
}

impl<T: Clone + Send + Sync + 'static> std::future::Future for TaskFuture<T> {
    type Output = Result<T, ResultError>;

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if !self.done() {
            let (mut guard, done) = self.sh().register();
            if !done {
                let wakers = &mut waiters_mut(&mut guard).wakers;
                if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
                    wakers.push(cx.waker().clone());
                }
                return Poll::Pending;
            }
        }
        Poll::Ready(self.result(Some(Duration::ZERO)).cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn done_states_are_the_terminal_ones() {
        assert!(!is_done(PENDING) && !is_done(RUNNING));
        for state in [
            FINISHED,
            FAILED,
            BROKEN,
            CANCELLED_USER,
            CANCELLED_SHUTDOWN,
            CANCELLED_STOP,
        ] {
            assert!(is_done(state) && is_done(state | HAS_WAITERS));
        }
    }

    /// `cancelled()` is `state >= CANCELLED_USER`: a broken-pool failure must sit below.
    const _: () = assert!(BROKEN < CANCELLED_USER && FAILED < BROKEN);

    #[test]
    fn cancel_reasons_map_to_distinct_states() {
        let states: std::collections::BTreeSet<_> = [
            CancelReason::User,
            CancelReason::Shutdown,
            CancelReason::StopRequested,
        ]
        .into_iter()
        .map(cancelled_state)
        .collect();
        assert_eq!(states.len(), 3);
        assert!(states.iter().all(|&s| s >= CANCELLED_USER));
    }

    /// Packed durations keep every nanosecond while they fit, lose under a thousandth beyond,
    /// never round up, and never produce the all-ones markers.
    #[test]
    fn packed_durations_round_trip() {
        for bits in [WAIT_BITS, RUN_BITS] {
            let marker = (1u64 << bits) - 1;
            // The longest duration a field holds (17 years for the wait): beyond, it saturates.
            let longest = ((1u64 << (bits - 2)) - 2) * UNIT_NS[3];
            let mut ns = 0u64;
            while ns < u64::MAX / 3 {
                for probe in [ns, ns + 1, ns.saturating_mul(3) / 2] {
                    let code = pack_duration(probe, bits);
                    assert!(code < marker, "{probe} ns packs to the marker");
                    let back = u64::try_from(unpack_duration(code, bits).as_nanos()).unwrap();
                    assert!(back <= probe, "{probe} ns rounds up to {back}");
                    if probe < 1 << (bits - 3) {
                        assert_eq!(back, probe, "short durations are exact");
                    } else if probe <= longest {
                        assert!(probe - back <= probe / 1000, "{probe} ns came back {back}");
                    } else {
                        assert_eq!(back, longest, "{probe} ns saturates");
                    }
                }
                ns = ns * 2 + 1;
            }
        }
    }

    /// The timings word: untimed and queued read as nothing, a started task has a wait and no
    /// run time yet, a finished one both; a run timed without its wait keeps the wait unknown.
    #[test]
    fn the_timings_word_reads_back_what_was_recorded() {
        let untimed = Shared::<u8>::new(1, None, None, None);
        assert_eq!(untimed.timings(), TaskTimings::default());
        let timed = Shared::<u8>::new(2, None, None, Some(5_000));
        assert_eq!(timed.queued_ns(), Some(5_000));
        assert_eq!(timed.timings(), TaskTimings::default(), "still queued");
        timed.record_queue_wait(1_234);
        assert_eq!(timed.queued_ns(), None);
        assert_eq!(
            timed.timings(),
            TaskTimings {
                queue_wait: Some(Duration::from_nanos(1_234)),
                run_time: None
            }
        );
        timed.record_run_time(3_000_000_007);
        let t = timed.timings();
        assert_eq!(t.queue_wait, Some(Duration::from_nanos(1_234)));
        assert_eq!(t.run_time, Some(Duration::from_micros(3_000_000)));
        untimed.record_run_time(42);
        assert_eq!(
            untimed.timings(),
            TaskTimings {
                queue_wait: None,
                run_time: Some(Duration::from_nanos(42))
            }
        );
    }
}
