//! The bounded queue from the reader thread to the dispatch loop.
//!
//! Like a `sync_channel`, every entry is handed over as soon as it is read, and the reader stops
//! when the queue holds [`CAPACITY`] entries. Unlike one, a full queue does not wake the reader
//! for every slot that frees up (a context switch per entry once the dispatcher is the slower
//! side): the reader is woken when the queue has drained to half, and each side makes the wake-up
//! system call only when the other is actually waiting.

use std::collections::VecDeque;
use std::sync::mpsc::RecvTimeoutError;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::lock;

/// How many entries the reader may be ahead.
pub(crate) const CAPACITY: usize = 256;

struct State<T> {
    queue: VecDeque<T>,
    /// The reader has finished (its handle is dropped).
    sender_gone: bool,
    /// The dispatcher has finished (its handle is dropped).
    receiver_gone: bool,
    reader_waiting: bool,
    taker_waiting: bool,
}

struct Inner<T> {
    state: Mutex<State<T>>,
    /// For the dispatcher: an entry arrived or the reader finished.
    not_empty: Condvar,
    /// For the reader: room again, or the dispatcher finished.
    not_full: Condvar,
}

/// The reader's end.
pub(crate) struct Sender<T>(Arc<Inner<T>>);

/// The dispatcher's end.
pub(crate) struct Receiver<T>(Arc<Inner<T>>);

pub(crate) fn channel<T>() -> (Sender<T>, Receiver<T>) {
    let inner = Arc::new(Inner {
        state: Mutex::new(State {
            queue: VecDeque::with_capacity(CAPACITY),
            sender_gone: false,
            receiver_gone: false,
            reader_waiting: false,
            taker_waiting: false,
        }),
        not_empty: Condvar::new(),
        not_full: Condvar::new(),
    });
    (Sender(Arc::clone(&inner)), Receiver(inner))
}

impl<T> Sender<T> {
    /// Hands `value` over, waiting while the queue is full; `Err` once the receiver is gone.
    pub(crate) fn send(&self, value: T) -> Result<(), T> {
        let mut state = lock(&self.0.state);
        while state.queue.len() >= CAPACITY && !state.receiver_gone {
            state.reader_waiting = true;
            state = self
                .0
                .not_full
                .wait(state)
                .unwrap_or_else(|e| e.into_inner());
        }
        state.reader_waiting = false;
        if state.receiver_gone {
            return Err(value);
        }
        state.queue.push_back(value);
        if state.taker_waiting {
            state.taker_waiting = false;
            drop(state);
            self.0.not_empty.notify_one();
        }
        Ok(())
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        lock(&self.0.state).sender_gone = true;
        self.0.not_empty.notify_all();
    }
}

impl<T> Receiver<T> {
    /// Takes the next value, waiting up to `timeout`.
    pub(crate) fn recv_timeout(&self, timeout: Duration) -> Result<T, RecvTimeoutError> {
        let mut deadline = None;
        let mut state = lock(&self.0.state);
        loop {
            if let Some(value) = state.queue.pop_front() {
                if state.reader_waiting && state.queue.len() <= CAPACITY / 2 {
                    state.reader_waiting = false;
                    drop(state);
                    self.0.not_full.notify_one();
                }
                return Ok(value);
            }
            if state.sender_gone {
                return Err(RecvTimeoutError::Disconnected);
            }
            // The clock is read only once the queue is found empty (not once per entry).
            let now = Instant::now();
            let deadline = *deadline.get_or_insert(now + timeout);
            if now >= deadline {
                return Err(RecvTimeoutError::Timeout);
            }
            state.taker_waiting = true;
            state = self
                .0
                .not_empty
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
            state.taker_waiting = false;
        }
    }

    /// Takes the next value if there is one.
    pub(crate) fn try_recv(&self) -> Option<T> {
        let mut state = lock(&self.0.state);
        let value = state.queue.pop_front();
        if value.is_some() && state.reader_waiting && state.queue.len() <= CAPACITY / 2 {
            state.reader_waiting = false;
            drop(state);
            self.0.not_full.notify_one();
        }
        value
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let mut state = lock(&self.0.state);
        state.receiver_gone = true;
        // What was handed over and not taken is dropped with the queue, as with a channel.
        state.queue.clear();
        drop(state);
        self.0.not_full.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hands_over_in_order_and_bounds_the_reader() {
        let (tx, rx) = channel::<usize>();
        let reader = std::thread::spawn(move || {
            for n in 0..10 * CAPACITY {
                tx.send(n).unwrap();
            }
        });
        std::thread::sleep(Duration::from_millis(20));
        assert!(lock(&rx.0.state).queue.len() <= CAPACITY);
        for n in 0..10 * CAPACITY {
            assert_eq!(rx.recv_timeout(Duration::from_secs(5)), Ok(n));
        }
        reader.join().unwrap();
        assert_eq!(
            rx.recv_timeout(Duration::from_millis(10)),
            Err(RecvTimeoutError::Disconnected)
        );
    }

    #[test]
    fn a_dropped_receiver_releases_a_blocked_reader() {
        let (tx, rx) = channel::<usize>();
        let reader = std::thread::spawn(move || {
            let mut n = 0;
            while tx.send(n).is_ok() {
                n += 1;
            }
            n
        });
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(rx.try_recv(), Some(0));
        assert_eq!(rx.recv_timeout(Duration::from_millis(1)), Ok(1));
        drop(rx);
        assert!(reader.join().unwrap() >= CAPACITY);
    }

    #[test]
    fn an_empty_queue_times_out() {
        let (_tx, rx) = channel::<usize>();
        assert_eq!(
            rx.recv_timeout(Duration::from_millis(5)),
            Err(RecvTimeoutError::Timeout)
        );
        assert_eq!(rx.try_recv(), None);
    }
}
