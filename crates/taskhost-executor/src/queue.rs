//! The FIFO work queue: one crossbeam channel behind a tiny API (`push`, `try_push`, `try_pop`,
//! `pop_blocking(timeout) -> Item | Closed | TimedOut`, `close`), and its `cfg(loom)` twin (a loom
//! `Mutex<VecDeque>` and `Condvar`: loom cannot see inside crossbeam). With [`crate::sync`] it is
//! the seam the model checker replaces.
//!
//! `close` sends one wake-up message that each worker passes on (Python's `None` sentinel), so a
//! blocked worker is a plain `recv`, never a `select`.

use std::time::Duration;

#[cfg(not(loom))]
use crossbeam_channel::{Receiver, Sender, TryRecvError, TrySendError};

#[cfg(loom)]
use crate::sync::Condvar;
use crate::sync::{lock, Mutex};
#[cfg(not(loom))]
use crate::sync::{AtomicBool, AtomicUsize, Condvar, Ordering};

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
    /// slot up front: gigabytes for a bound of 10^8, before the first item); `None` otherwise.
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
    use crate::sync::Arc;
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
