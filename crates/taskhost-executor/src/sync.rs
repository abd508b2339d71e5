//! The synchronisation seam of the spawn/idle/retire protocol.
//!
//! Everything the protocol needs to be correct goes through this module: the atomics, the locks,
//! and the work [`Queue`]. A later change model-checks the protocol with `loom`, which cannot see
//! inside crossbeam, by swapping this module for one built on loom's primitives under `cfg(loom)`.
//! Nothing outside this module names `std::sync` or `crossbeam_channel` for protocol state.

use std::time::Duration;

pub(crate) use std::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
pub(crate) use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use crossbeam_channel::{Receiver, Sender, TryRecvError, TrySendError};

/// Locks a mutex, ignoring poisoning: no lock in this crate is held while user code runs, so a
/// poisoned lock can only come from a bug in this crate, and the data is still consistent.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Tries `attempt` for a short, bounded while and returns its first `Some`: six rounds of
/// doubling spins (1, 2, … 32 spin hints), then four yields, as crossbeam's own `Backoff` does
/// before its `recv` blocks. Not a polling loop: callers block after it. A `cfg(loom)` twin
/// tries once and yields.
pub(crate) fn spin_wait<T>(mut attempt: impl FnMut() -> Option<T>) -> Option<T> {
    for step in 0..10u32 {
        if step < 6 {
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

/// How many stripes a [`Striped`] value has.
const STRIPES: usize = 8;

/// One value on its own pair of cache lines.
#[derive(Default)]
#[repr(align(128))]
struct Stripe<T>(T);

/// A value kept once per stripe, so that submitting threads (each always on its own stripe,
/// chosen round-robin on first use) rarely write the same cache line. Readers combine every
/// stripe ([`Striped::iter`]). Used for the in-flight submit count (which shutdown sums with
/// SeqCst loads: a stripe read as zero has no submit between its check and its push, and the
/// sum is only ever compared with zero) and the submit-side metrics.
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

/// What travels on the channel: work, or the wake-up a closing queue passes from worker to worker.
enum Message<T> {
    Item(T),
    /// Sent once by [`Queue::close`]; whoever receives it passes it on (as Python's workers pass
    /// on the `None` sentinel), so one message wakes every blocked worker in turn.
    Wake,
}

/// The FIFO work queue: one crossbeam channel, so a blocked worker is a plain `recv` (no
/// `select` over several channels, no polling).
pub(crate) struct Queue<T> {
    /// Sending side; never dropped, so the channel never disconnects.
    tx: Sender<Message<T>>,
    /// Receiving side shared by every worker.
    rx: Receiver<Message<T>>,
    /// Set by [`Queue::close`].
    closed: AtomicBool,
}

impl<T> Queue<T> {
    /// A queue with room for `capacity` items; 0 means unbounded.
    pub(crate) fn new(capacity: usize) -> Self {
        let (tx, rx) = if capacity == 0 {
            crossbeam_channel::unbounded()
        } else {
            crossbeam_channel::bounded(capacity)
        };
        Queue {
            tx,
            rx,
            closed: AtomicBool::new(false),
        }
    }

    /// Pushes an item, blocking while a bounded queue is full.
    pub(crate) fn push(&self, item: T) {
        // The receiver lives as long as `self`, so the channel cannot be disconnected.
        if self.tx.send(Message::Item(item)).is_err() {
            unreachable!("the work queue's receiver lives as long as its sender");
        }
    }

    /// Pushes an item unless a bounded queue is full, in which case the item comes back.
    pub(crate) fn try_push(&self, item: T) -> Result<(), T> {
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
            Ok(Message::Item(item)) => Some(item),
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
            Some(Message::Item(item)) => Popped::Item(item),
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

#[cfg(test)]
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
