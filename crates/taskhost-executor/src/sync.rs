//! The synchronisation seam of the spawn/idle/retire protocol.
//!
//! Everything the protocol needs to be correct goes through this module: the atomics, the locks,
//! the work [`Queue`], thread spawning and joining, and the bounded waits ([`spin_wait`],
//! [`thread::backoff`]). Nothing outside this module names `std::sync` or `crossbeam_channel` for
//! protocol state.
//!
//! Under `cfg(loom)` (`RUSTFLAGS="--cfg loom"`, see `tests/loom.rs`) this module swaps in loom's
//! atomics, `Mutex`, `Condvar` and threads, and a [`Queue`] built on a loom `Mutex<VecDeque>` and
//! `Condvar` (loom cannot see inside crossbeam), so the model checker runs the real protocol code.
//! What loom does not model stays real: `Arc` (loom's cannot hold `dyn Job`; reference counts are
//! not protocol state), the metrics [`counter`]s, the future's `OnceLock` (written before the
//! state word that publishes it), clocks (`Instant`) and tracing.

use std::time::Duration;

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, Ordering};
#[cfg(loom)]
pub(crate) use loom::sync::{Condvar, Mutex, MutexGuard};
#[cfg(loom)]
pub(crate) use loom_atomics::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
pub(crate) use std::sync::Arc;
#[cfg(not(loom))]
pub(crate) use std::sync::{Condvar, Mutex, MutexGuard};

#[cfg(not(loom))]
use crossbeam_channel::{Receiver, Sender, TryRecvError, TrySendError};

/// Loom's atomics with `SeqCst` made whole. Loom treats a `SeqCst` access as `AcqRel` (only
/// `fence(SeqCst)` gets the full semantics), which reports false alarms for the protocol's
/// store-then-load-elsewhere pairs (a submit's `entered` increment and `shutdown` check against
/// shutdown's store and in-flight check). So every `SeqCst` access here is bracketed by
/// `fence(SeqCst)`, which gives the single total order the real code relies on; weaker
/// orderings pass straight through. (The price: a deliberately removed protocol fence between two
/// `SeqCst` accesses cannot be caught by the model.)
#[cfg(loom)]
mod loom_atomics {
    use loom::sync::atomic::{fence, Ordering};

    /// Runs one access, with `SeqCst` fences around it if it is `SeqCst`.
    fn sc<R>(orders: &[Ordering], access: impl FnOnce() -> R) -> R {
        let seq_cst = orders.contains(&Ordering::SeqCst);
        if seq_cst {
            fence(Ordering::SeqCst);
        }
        let result = access();
        if seq_cst {
            fence(Ordering::SeqCst);
        }
        result
    }

    macro_rules! fenced {
        ($name:ident, $t:ty) => {
            #[derive(Debug, Default)]
            pub(crate) struct $name(loom::sync::atomic::$name);

            #[allow(dead_code)]
            impl $name {
                pub(crate) fn new(value: $t) -> Self {
                    $name(loom::sync::atomic::$name::new(value))
                }
                pub(crate) fn load(&self, order: Ordering) -> $t {
                    sc(&[order], || self.0.load(order))
                }
                pub(crate) fn store(&self, value: $t, order: Ordering) {
                    sc(&[order], || self.0.store(value, order))
                }
                pub(crate) fn swap(&self, value: $t, order: Ordering) -> $t {
                    sc(&[order], || self.0.swap(value, order))
                }
                pub(crate) fn fetch_or(&self, value: $t, order: Ordering) -> $t {
                    sc(&[order], || self.0.fetch_or(value, order))
                }
                pub(crate) fn fetch_and(&self, value: $t, order: Ordering) -> $t {
                    sc(&[order], || self.0.fetch_and(value, order))
                }
                pub(crate) fn compare_exchange(
                    &self,
                    current: $t,
                    new: $t,
                    success: Ordering,
                    failure: Ordering,
                ) -> Result<$t, $t> {
                    sc(&[success, failure], || {
                        self.0.compare_exchange(current, new, success, failure)
                    })
                }
                pub(crate) fn compare_exchange_weak(
                    &self,
                    current: $t,
                    new: $t,
                    success: Ordering,
                    failure: Ordering,
                ) -> Result<$t, $t> {
                    sc(&[success, failure], || {
                        self.0.compare_exchange_weak(current, new, success, failure)
                    })
                }
                pub(crate) fn fetch_update(
                    &self,
                    set: Ordering,
                    fetch: Ordering,
                    update: impl FnMut($t) -> Option<$t>,
                ) -> Result<$t, $t> {
                    sc(&[set, fetch], || self.0.fetch_update(set, fetch, update))
                }
            }
        };
    }

    macro_rules! fenced_int {
        ($name:ident, $t:ty) => {
            fenced!($name, $t);

            #[allow(dead_code)]
            impl $name {
                pub(crate) fn fetch_add(&self, value: $t, order: Ordering) -> $t {
                    sc(&[order], || self.0.fetch_add(value, order))
                }
                pub(crate) fn fetch_sub(&self, value: $t, order: Ordering) -> $t {
                    sc(&[order], || self.0.fetch_sub(value, order))
                }
                pub(crate) fn fetch_max(&self, value: $t, order: Ordering) -> $t {
                    sc(&[order], || self.0.fetch_max(value, order))
                }
            }
        };
    }

    fenced!(AtomicBool, bool);
    fenced_int!(AtomicU8, u8);
    fenced_int!(AtomicU64, u64);
    fenced_int!(AtomicUsize, usize);
}

/// Plain atomics for state that is not part of the protocol (metrics, task ids, what a worker is
/// running): always `std`, also under loom, so they neither need a model nor add to its states.
pub(crate) mod counter {
    pub(crate) use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
}

/// Threads: `std::thread`, or loom's under `cfg(loom)`.
pub(crate) mod thread {
    #[cfg(loom)]
    pub(crate) use loom::thread::{current, JoinHandle};
    #[cfg(not(loom))]
    pub(crate) use std::thread::{current, JoinHandle};

    /// Starts a named thread (with `stack_size` bytes of stack, if given; not under loom).
    pub(crate) fn spawn_named(
        name: String,
        stack_size: Option<usize>,
        body: impl FnOnce() + Send + 'static,
    ) -> std::io::Result<JoinHandle<()>> {
        #[cfg(loom)]
        {
            let _ = stack_size;
            loom::thread::Builder::new().name(name).spawn(body)
        }
        #[cfg(not(loom))]
        {
            let builder = std::thread::Builder::new().name(name);
            match stack_size {
                Some(bytes) => builder.stack_size(bytes),
                None => builder,
            }
            .spawn(body)
        }
    }

    /// Whether the thread has finished (a join will not block). Loom's handles cannot tell:
    /// always false there, so records are only pruned by the final join.
    pub(crate) fn is_finished(handle: &JoinHandle<()>) -> bool {
        #[cfg(loom)]
        {
            let _ = handle;
            false
        }
        #[cfg(not(loom))]
        handle.is_finished()
    }

    /// One round of waiting for another thread (`round` counts from 0): yield for a while, then
    /// sleep briefly. Under loom, a yield (loom has no time).
    pub(crate) fn backoff(round: u32) {
        #[cfg(loom)]
        {
            let _ = round;
            loom::thread::yield_now();
        }
        #[cfg(not(loom))]
        if round < 64 {
            std::thread::yield_now();
        } else {
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
    }
}

/// Locks a mutex, ignoring poisoning: no lock in this crate is held while user code runs, so a
/// poisoned lock can only come from a bug in this crate, and the data is still consistent.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Tries `attempt` for a short, bounded while and returns its first `Some`: seven rounds of
/// doubling spins (1, 2, … 64 spin hints), then four yields — the same budget as crossbeam's
/// own `Backoff` before its `recv` blocks (with half of it, a future's reader slept, and paid a
/// wake-up, on about one round trip in fifty). Not a polling loop: callers block after it. A
/// `cfg(loom)` twin tries once and yields.
#[cfg(not(loom))]
pub(crate) fn spin_wait<T>(mut attempt: impl FnMut() -> Option<T>) -> Option<T> {
    for step in 0..11u32 {
        if step <= 6 {
            for _ in 0..(1u32 << step) {
                std::hint::spin_loop();
            }
        } else {
            std::thread::yield_now();
        }
        if let Some(found) = attempt() {
            return Some(found);
        }
    }
    None
}

/// The loom twin of [`spin_wait`]: one yield (so loom sees a thread waiting on another), one try.
#[cfg(loom)]
pub(crate) fn spin_wait<T>(mut attempt: impl FnMut() -> Option<T>) -> Option<T> {
    loom::thread::yield_now();
    attempt()
}

/// How many stripes a [`Striped`] value has (one under loom: every thread maps to it, which
/// changes nothing in the protocol, and keeps the model small).
#[cfg(not(loom))]
const STRIPES: usize = 8;
#[cfg(loom)]
const STRIPES: usize = 1;

/// One value on its own pair of cache lines.
#[derive(Default)]
#[repr(align(128))]
struct Stripe<T>(T);

/// A value kept once per stripe, so that submitting threads (each always on its own stripe,
/// chosen round-robin on first use) rarely write the same cache line. Readers combine every
/// stripe ([`Striped::iter`]). Used for the submits that entered and left (shutdown reads every
/// stripe with SeqCst loads: a stripe whose two counts agree has no submit between its check
/// and its push) and the submit-side metrics.
pub(crate) struct Striped<T> {
    stripes: [Stripe<T>; STRIPES],
}

impl<T: Default> Default for Striped<T> {
    fn default() -> Self {
        Striped {
            stripes: std::array::from_fn(|_| Stripe::default()),
        }
    }
}

impl<T> Striped<T> {
    /// This thread's stripe.
    pub(crate) fn mine(&self) -> &T {
        &self.stripes[stripe_index()].0
    }

    /// Every stripe.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> {
        self.stripes.iter().map(|stripe| &stripe.0)
    }
}

/// This thread's stripe number, handed out round-robin.
#[cfg(loom)]
fn stripe_index() -> usize {
    0
}

/// This thread's stripe number, handed out round-robin.
#[cfg(not(loom))]
fn stripe_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: std::cell::Cell<usize> = const { std::cell::Cell::new(usize::MAX) };
    }
    INDEX
        .try_with(|index| {
            if index.get() == usize::MAX {
                index.set(NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES);
            }
            index.get()
        })
        .unwrap_or(0)
}

/// What a blocking [`Queue::pop_blocking`] returned.
pub(crate) enum Popped<T> {
    /// An item, in FIFO order.
    Item(T),
    /// The queue was closed (the pool shut down); the queue may still hold items.
    Closed,
    /// The idle timeout passed with no item.
    TimedOut,
}

#[cfg(not(loom))]
/// What travels on the channel: work, or the wake-up a closing queue passes from worker to worker.
enum Message<T> {
    Item(T),
    /// Sent once by [`Queue::close`]; whoever receives it passes it on (as Python's workers pass
    /// on the `None` sentinel), so one message wakes every blocked worker in turn.
    Wake,
}

#[cfg(not(loom))]
/// The FIFO work queue: one crossbeam channel, so a blocked worker is a plain `recv` (no
/// `select` over several channels, no polling).
pub(crate) struct Queue<T> {
    /// Sending side; never dropped, so the channel never disconnects.
    tx: Sender<Message<T>>,
    /// Receiving side shared by every worker.
    rx: Receiver<Message<T>>,
    /// Set by [`Queue::close`].
    closed: AtomicBool,
    /// The bound of a queue too large for crossbeam's array channel (which allocates every
    /// slot up front: 10^8 places took 3.1 GB for one item); `None` otherwise.
    room: Option<Room>,
}

/// Bounded queues up to this many places use crossbeam's array channel (allocated up front,
/// at most a few hundred KiB); larger ones an unbounded channel behind a [`Room`] count, so
/// memory follows what is queued, not the bound.
#[cfg(not(loom))]
pub(crate) const ARRAY_QUEUE_LIMIT: usize = 4096;

/// The free places of a large bounded queue, and where a blocked submitter waits for one.
#[cfg(not(loom))]
struct Room {
    free: AtomicUsize,
    /// Submitters waiting for a place; a pop that frees one wakes one only if this is non-zero.
    waiting: AtomicUsize,
    lock: Mutex<()>,
    freed: Condvar,
}

#[cfg(not(loom))]
impl Room {
    fn try_take(&self) -> bool {
        self.free
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }

    /// Takes a place, blocking until one is free. No wake-up is lost: the waiter counts
    /// itself in and looks again under the lock; a freeing pop adds its place, then looks at
    /// the count (both `SeqCst`), and notifies under the same lock.
    fn take(&self) {
        if self.try_take() {
            return;
        }
        let mut guard = lock(&self.lock);
        self.waiting.fetch_add(1, Ordering::SeqCst);
        while !self.try_take() {
            guard = self
                .freed
                .wait(guard)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        self.waiting.fetch_sub(1, Ordering::SeqCst);
    }

    fn give_back(&self) {
        self.free.fetch_add(1, Ordering::SeqCst);
        if self.waiting.load(Ordering::SeqCst) != 0 {
            let _guard = lock(&self.lock);
            self.freed.notify_one();
        }
    }
}

#[cfg(not(loom))]
impl<T> Queue<T> {
    /// A queue with room for `capacity` items; 0 means unbounded.
    pub(crate) fn new(capacity: usize) -> Self {
        let large = capacity > ARRAY_QUEUE_LIMIT;
        let (tx, rx) = if capacity == 0 || large {
            crossbeam_channel::unbounded()
        } else {
            crossbeam_channel::bounded(capacity)
        };
        Queue {
            tx,
            rx,
            closed: AtomicBool::new(false),
            room: large.then(|| Room {
                free: AtomicUsize::new(capacity),
                waiting: AtomicUsize::new(0),
                lock: Mutex::new(()),
                freed: Condvar::new(),
            }),
        }
    }

    /// Pushes an item, blocking while a bounded queue is full.
    pub(crate) fn push(&self, item: T) {
        if let Some(room) = &self.room {
            room.take();
        }
        // The receiver lives as long as `self`, so the channel cannot be disconnected.
        if self.tx.send(Message::Item(item)).is_err() {
            unreachable!("the work queue's receiver lives as long as its sender");
        }
    }

    /// A popped item's place is free again (large bounded queues only).
    fn popped(&self, item: T) -> T {
        if let Some(room) = &self.room {
            room.give_back();
        }
        item
    }

    /// Pushes an item unless a bounded queue is full, in which case the item comes back.
    pub(crate) fn try_push(&self, item: T) -> Result<(), T> {
        if let Some(room) = &self.room {
            if !room.try_take() {
                return Err(item);
            }
        }
        match self.tx.try_send(Message::Item(item)) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(Message::Item(item)))
            | Err(TrySendError::Disconnected(Message::Item(item))) => Err(item),
            Err(_) => unreachable!("only items are sent here"),
        }
    }

    /// Passes the close wake-up on. If a bounded queue is full, nobody is blocked on it, and
    /// whoever empties it sees the closed flag before blocking.
    fn pass_wake(&self) {
        let _ = self.tx.try_send(Message::Wake);
    }

    /// Takes the oldest item without blocking.
    pub(crate) fn try_pop(&self) -> Option<T> {
        match self.rx.try_recv() {
            Ok(Message::Item(item)) => Some(self.popped(item)),
            Ok(Message::Wake) => {
                self.pass_wake();
                None
            }
            Err(TryRecvError::Empty) | Err(TryRecvError::Disconnected) => None,
        }
    }

    /// Blocks (without polling) until an item arrives, the queue closes, or `timeout` passes.
    pub(crate) fn pop_blocking(&self, timeout: Option<Duration>) -> Popped<T> {
        if self.closed.load(Ordering::SeqCst) {
            return Popped::Closed;
        }
        let message = match timeout {
            None => self.rx.recv().ok(),
            Some(timeout) => match self.rx.recv_timeout(timeout) {
                Ok(message) => Some(message),
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => return Popped::TimedOut,
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => None,
            },
        };
        match message {
            Some(Message::Item(item)) => Popped::Item(self.popped(item)),
            Some(Message::Wake) => {
                self.pass_wake();
                Popped::Closed
            }
            None => Popped::Closed,
        }
    }

    /// Whether the queue holds no item right now.
    pub(crate) fn is_empty(&self) -> bool {
        self.rx.is_empty()
    }

    /// How many items the queue holds right now.
    pub(crate) fn len(&self) -> usize {
        self.rx.len()
    }

    /// Wakes every blocked worker with [`Popped::Closed`], now and on every later blocking pop.
    /// Call it only once no more items will be pushed.
    pub(crate) fn close(&self) {
        if !self.closed.swap(true, Ordering::SeqCst) {
            self.pass_wake();
        }
    }
}

/// The loom twin of the work queue: a loom `Mutex<VecDeque>` and `Condvar`, same API.
///
/// Loom has no time, so a [`Queue::pop_blocking`] with a timeout on an empty queue returns
/// [`Popped::TimedOut`] at once (the shortest timeout there is), which makes every idle worker
/// with an `idle_timeout` try to retire as soon as it goes idle: the retire path races every
/// submit. A pop without a timeout blocks on the condvar until an item or the close.
#[cfg(loom)]
pub(crate) struct Queue<T> {
    state: Mutex<QueueState<T>>,
    /// Signalled on every push, pop from a bounded queue, and close.
    changed: Condvar,
    /// 0: unbounded.
    capacity: usize,
}

#[cfg(loom)]
struct QueueState<T> {
    items: std::collections::VecDeque<T>,
    closed: bool,
}

#[cfg(loom)]
impl<T> Queue<T> {
    pub(crate) fn new(capacity: usize) -> Self {
        Queue {
            state: Mutex::new(QueueState {
                items: std::collections::VecDeque::new(),
                closed: false,
            }),
            changed: Condvar::new(),
            capacity,
        }
    }

    fn full(&self, state: &QueueState<T>) -> bool {
        self.capacity != 0 && state.items.len() >= self.capacity
    }

    pub(crate) fn push(&self, item: T) {
        let mut state = lock(&self.state);
        while self.full(&state) {
            state = self
                .changed
                .wait(state)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        state.items.push_back(item);
        drop(state);
        self.changed.notify_all();
    }

    pub(crate) fn try_push(&self, item: T) -> Result<(), T> {
        let mut state = lock(&self.state);
        if self.full(&state) {
            return Err(item);
        }
        state.items.push_back(item);
        drop(state);
        self.changed.notify_all();
        Ok(())
    }

    pub(crate) fn try_pop(&self) -> Option<T> {
        let item = lock(&self.state).items.pop_front();
        if item.is_some() && self.capacity != 0 {
            self.changed.notify_all();
        }
        item
    }

    pub(crate) fn pop_blocking(&self, timeout: Option<Duration>) -> Popped<T> {
        let mut state = lock(&self.state);
        loop {
            if state.closed {
                return Popped::Closed;
            }
            if let Some(item) = state.items.pop_front() {
                drop(state);
                if self.capacity != 0 {
                    self.changed.notify_all();
                }
                return Popped::Item(item);
            }
            if timeout.is_some() {
                return Popped::TimedOut;
            }
            state = self
                .changed
                .wait(state)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        lock(&self.state).items.is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        lock(&self.state).items.len()
    }

    pub(crate) fn close(&self) {
        lock(&self.state).closed = true;
        self.changed.notify_all();
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn queue_is_fifo() {
        let q = Queue::new(0);
        for i in 0..5 {
            q.push(i);
        }
        assert_eq!(q.len(), 5);
        let out: Vec<_> = std::iter::from_fn(|| q.try_pop()).collect();
        assert_eq!(out, [0, 1, 2, 3, 4]);
        assert!(q.is_empty());
    }

    #[test]
    fn bounded_queue_hands_the_item_back_when_full() {
        let q = Queue::new(1);
        assert!(q.try_push(1).is_ok());
        assert_eq!(q.try_push(2), Err(2));
    }

    #[test]
    fn pop_blocking_times_out_only_with_a_timeout() {
        let q: Queue<u8> = Queue::new(0);
        let t = Instant::now();
        assert!(matches!(
            q.pop_blocking(Some(Duration::from_millis(20))),
            Popped::TimedOut
        ));
        assert!(t.elapsed() >= Duration::from_millis(20));
        q.push(7);
        assert!(matches!(q.pop_blocking(None), Popped::Item(7)));
    }

    #[test]
    fn close_wakes_every_blocked_popper() {
        let q: Arc<Queue<u8>> = Arc::new(Queue::new(0));
        let poppers: Vec<_> = (0..3)
            .map(|_| {
                let q = Arc::clone(&q);
                std::thread::spawn(move || matches!(q.pop_blocking(None), Popped::Closed))
            })
            .collect();
        std::thread::sleep(Duration::from_millis(20));
        q.close();
        assert!(poppers.into_iter().all(|p| p.join().unwrap()));
        assert!(
            matches!(q.pop_blocking(None), Popped::Closed),
            "stays closed"
        );
    }
}
