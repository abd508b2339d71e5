//! [`FutureCell`]: the state one task's future shares with its work item — the lifecycle, the
//! outcome, and whoever waits — and the rules for changing it.
//!
//! The cell lives inside the task's single allocation (the queued work item, `FutureJob`), which
//! every clone of the future shares. Its lifecycle is one `AtomicU8` (`PENDING → RUNNING →
//! FINISHED|FAILED`, or `PENDING → CANCELLED_*`, or `RUNNING → CANCELLED_STOP`, or, when the
//! pool breaks, `PENDING → RUNNING → BROKEN`) plus two bits:
//!
//! * `HAS_WAITERS`: a waiter, callback, waker or watcher registered, so completion must take the
//!   waiter lock. A task that nobody waits on completes without taking any lock.
//! * `HAS_SLEEPERS`: a reader about to block on the condvar set it under the waiter lock. Only
//!   then does completion make the wake-up system call, which a std `Condvar` otherwise makes on
//!   every notify: a done callback alone costs no system call.
//!
//! The value is in a `OnceLock`, written once by the thread that owns the `RUNNING` state, before
//! the state says done (panic and broken-pool messages are boxed, so the slot is the value plus a
//! tag). The waiter list is allocated only when a callback, waker or watcher registers (the first
//! callback inline, no vector); a blocking `result` only needs the lock and the condvar. Before it
//! blocks, a reader watches the state for a short bounded while ([`spin_wait`]), so a trivial
//! task's reader usually never sleeps and its worker never takes the lock.
//!
//! The cell does not know the handle type its callbacks receive (`H`, a
//! [`TaskFuture`](crate::TaskFuture)): that keeps it below `future.rs`, which builds on it.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::OnceLock;
use std::task::Waker;
use std::time::{Duration, Instant};

use crate::error::CancelReason;
use crate::events::{emit_callback_panicked, panic_message, Parent};
use crate::sync::{
    lock, spin_wait, wait_until, Arc, AtomicBool, AtomicU8, Condvar, Mutex, MutexGuard, Ordering,
};
use crate::timings::TimingsWord;
use crate::watch::Watch;

pub(crate) const PENDING: u8 = 0;
pub(crate) const RUNNING: u8 = 1;
pub(crate) const FINISHED: u8 = 2;
pub(crate) const FAILED: u8 = 3;
/// Failed without running because the pool broke: finished with an error, as Python's
/// `BrokenThreadPool` futures are, not cancelled.
pub(crate) const BROKEN: u8 = 4;
/// Every state from here up is a cancellation
/// ([`TaskFuture::cancelled`](crate::TaskFuture::cancelled)).
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

pub(crate) fn is_done(state: u8) -> bool {
    state & STATE_MASK >= FINISHED
}

pub(crate) fn cancelled_state(reason: CancelReason) -> u8 {
    match reason {
        CancelReason::User => CANCELLED_USER,
        CancelReason::Shutdown => CANCELLED_SHUTDOWN,
        CancelReason::StopRequested => CANCELLED_STOP,
    }
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

/// A done callback; `H` is the future handle it is given.
pub(crate) type Callback<H> = Box<dyn FnOnce(&H) + Send>;

/// Everything that waits on one future; only touched when `HAS_WAITERS` is set, and only
/// allocated when a callback, waker or watcher registers (a plain `result` wait needs none).
struct Waiters<H> {
    /// The first callback, kept inline: most futures that get one get only one, and this saves
    /// the vector's allocation.
    first_callback: Option<Callback<H>>,
    /// Callbacks registered after the first, in order.
    callbacks: Vec<Callback<H>>,
    wakers: Vec<Waker>,
    watchers: Vec<(Arc<Watch>, usize)>,
}

impl<H> Default for Waiters<H> {
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
type WaiterSlot<H> = Option<Box<Waiters<H>>>;

/// The waiter list, created on first use.
fn waiters_mut<H>(slot: &mut WaiterSlot<H>) -> &mut Waiters<H> {
    slot.get_or_insert_with(Box::default)
}

/// The state one task's future shares with its work item (value type `T`; `H`, the future
/// handle that done callbacks receive). Kept small: every queued task carries one (issue 5's
/// memory target).
pub(crate) struct FutureCell<T, H> {
    pub(crate) id: u64,
    /// The name and the submitter's span, boxed together (8 bytes for both, no allocation when
    /// the task has neither): with the one-word timings below, a task with a closure of up to
    /// two words stays within glibc's fast bins (chunks of up to 128 bytes). Eight bytes more
    /// put it in the 144-byte class, which glibc coalesces on free and trims from the heap, and
    /// large batches then cost far more per task (ARCHITECTURE.md says when the fast bins do not
    /// help; the bench README has the measurements).
    extras: Option<Box<Extras>>,
    state: AtomicU8,
    stop_requested: AtomicBool,
    stop_observed: AtomicBool,
    outcome: OnceLock<Outcome<T>>,
    /// The queue wait and run time, in one word (see [`crate::timings`]).
    pub(crate) timings: TimingsWord,
    waiters: Mutex<WaiterSlot<H>>,
    condvar: Condvar,
}

/// What only some tasks have (see [`FutureCell`]'s `extras`).
struct Extras {
    name: Option<Arc<str>>,
    /// The submitter's span, the parent of the task's span; taken when the task starts (or is
    /// dropped unrun), so that a live span handle does not keep the submitter's span open for
    /// as long as the futures live.
    parent: Mutex<Parent>,
}

impl<T: Send + Sync + 'static, H: 'static> FutureCell<T, H> {
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
        FutureCell {
            id,
            extras,
            state: AtomicU8::new(PENDING),
            stop_requested: AtomicBool::new(false),
            stop_observed: AtomicBool::new(false),
            outcome: OnceLock::new(),
            timings: TimingsWord::new(queued_ns),
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

    /// The lifecycle state, without the waiter bits.
    pub(crate) fn load(&self) -> u8 {
        self.state.load(Ordering::Acquire) & STATE_MASK
    }

    /// The outcome, once the state says finished.
    pub(crate) fn outcome(&self) -> Option<&Outcome<T>> {
        self.outcome.get()
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

    /// Asks the task to stop ([`TaskFuture::request_stop`](crate::TaskFuture::request_stop)).
    pub(crate) fn request_stop(&self) {
        self.stop_requested.store(true, Ordering::Release);
    }

    pub(crate) fn stop_requested(&self) -> bool {
        self.stop_requested.load(Ordering::Acquire)
    }

    /// The task saw the stop request (through its context or a token).
    pub(crate) fn mark_observed(&self) {
        self.stop_observed.store(true, Ordering::Relaxed);
    }

    pub(crate) fn stop_was_observed(&self) -> bool {
        self.stop_observed.load(Ordering::Relaxed) && self.stop_requested.load(Ordering::Relaxed)
    }

    /// Publishes the outcome of a run (state must be RUNNING, owned by the caller). Returns
    /// whether anyone had registered (and so was woken or had callbacks run).
    pub(crate) fn complete(&self, outcome: Outcome<T>, owner: &dyn Fn() -> H) -> bool {
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
    pub(crate) fn complete_stopped(&self, owner: &dyn Fn() -> H) -> bool {
        match self.transition(RUNNING, CANCELLED_STOP) {
            Ok(previous) => self.notify(previous, owner),
            Err(_) => false,
        }
    }

    /// Cancels a pending future for `reason`; true if this call cancelled it.
    pub(crate) fn cancel_pending(&self, reason: CancelReason, owner: &dyn Fn() -> H) -> bool {
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
    fn notify(&self, previous: u8, owner: &dyn Fn() -> H) -> bool {
        previous & HAS_WAITERS != 0 && self.notify_registered(previous, owner)
    }

    /// [`notify`](Self::notify) once something has registered.
    #[inline(never)]
    fn notify_registered(&self, previous: u8, owner: &dyn Fn() -> H) -> bool {
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
        self.run_callback(&future, first);
        for callback in callbacks {
            self.run_callback(&future, callback);
        }
        true
    }

    /// Runs one done callback; a panic in it is logged (`callback.panicked`) and goes no further.
    pub(crate) fn run_callback(&self, future: &H, callback: Callback<H>) {
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| callback(future))) {
            let message = panic_message(panic.as_ref());
            emit_callback_panicked(self.id, self.name(), &message);
        }
    }

    /// Adds a done callback, or runs it at once (in this thread) if the future is already done.
    pub(crate) fn add_callback(&self, future: &H, callback: Callback<H>) {
        let (mut guard, done) = self.register();
        if done {
            drop(guard);
            self.run_callback(future, callback);
        } else {
            let waiters = waiters_mut(&mut guard);
            if waiters.first_callback.is_none() {
                waiters.first_callback = Some(callback);
            } else {
                waiters.callbacks.push(callback);
            }
        }
    }

    /// Registers an async waker (once per distinct waker); false if the future is already done.
    pub(crate) fn add_waker(&self, waker: &Waker) -> bool {
        let (mut guard, done) = self.register();
        if !done {
            let wakers = &mut waiters_mut(&mut guard).wakers;
            if !wakers.iter().any(|w| w.will_wake(waker)) {
                wakers.push(waker.clone());
            }
        }
        !done
    }

    /// Registers a multi-future watcher; false if the future is already done.
    pub(crate) fn add_watcher(&self, watch: &Arc<Watch>, index: usize) -> bool {
        let (mut guard, done) = self.register();
        if !done {
            waiters_mut(&mut guard)
                .watchers
                .push((Arc::clone(watch), index));
        }
        !done
    }

    /// Removes a watcher registered with [`add_watcher`](Self::add_watcher).
    pub(crate) fn remove_watcher(&self, watch: &Arc<Watch>) {
        if let Some(waiters) = lock(&self.waiters).as_mut() {
            waiters.watchers.retain(|(w, _)| !Arc::ptr_eq(w, watch));
        }
    }

    /// Watches the state for a short, bounded while ([`spin_wait`]) before the caller blocks:
    /// a trivial task usually finishes within microseconds, and sleeping on the condvar then
    /// being woken costs far more, on both sides (the worker need not even take the lock if
    /// nobody registered).
    fn spin_until_done(&self) -> bool {
        spin_wait(|| is_done(self.load()).then_some(())).is_some()
    }

    /// Locks the waiter list and sets `HAS_WAITERS`; returns the guard and whether it is done.
    fn register(&self) -> (MutexGuard<'_, WaiterSlot<H>>, bool) {
        self.register_with(HAS_WAITERS)
    }

    /// Like [`register`](Self::register), for a thread that will block on the condvar.
    fn register_sleeper(&self) -> (MutexGuard<'_, WaiterSlot<H>>, bool) {
        self.register_with(HAS_WAITERS | HAS_SLEEPERS)
    }

    fn register_with(&self, bits: u8) -> (MutexGuard<'_, WaiterSlot<H>>, bool) {
        let guard = lock(&self.waiters);
        let state = self.state.fetch_or(bits, Ordering::AcqRel);
        (guard, is_done(state))
    }

    /// Blocks until the task is done or `timeout` passes (`None`: no limit); true if done.
    #[inline]
    pub(crate) fn wait_done(&self, timeout: Option<Duration>) -> bool {
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
            match wait_until(&self.condvar, guard, deadline) {
                Some(again) => guard = again,
                None => return false,
            }
        }
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
}
