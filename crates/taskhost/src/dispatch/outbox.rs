//! The queue from the workers (and the dispatcher) to the writer thread.
//!
//! A channel wakes its receiver for every value sent while it waits: on a busy run that is a
//! context switch per outcome, and the writer never gets a batch worth taking. Here the writer
//! takes everything queued in one go, and a sender wakes it only when it is worth it:
//!
//! * the writer, finding the queue empty, first waits *shallowly*: for at most [`GATHER`], and a
//!   sender wakes it early only once `wake_at` outcomes are queued;
//! * if nothing came in that while, it waits *deeply* (up to the caller's timeout), and the
//!   first outcome sent wakes it at once (an outcome after a quiet spell is written promptly).
//!
//! So an outcome waits at most [`GATHER`] before the writer has it, and a busy run costs one
//! wake-up per `wake_at` outcomes instead of one per outcome.

use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use super::lock;

/// The longest an outcome waits in the queue while the writer gathers a batch.
pub(crate) const GATHER: Duration = Duration::from_millis(1);

/// How the writer is waiting, if it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Waiting {
    No,
    /// Gathering a batch: wake it once `wake_at` values are queued.
    Shallow,
    /// Idle: wake it for the first value.
    Deep,
}

struct State<T> {
    queue: Vec<T>,
    waiting: Waiting,
    /// The writer has finished: later values are dropped.
    closed: bool,
}

/// Many senders, one taker. See the module docs.
pub(crate) struct Outbox<T> {
    state: Mutex<State<T>>,
    ready: Condvar,
    wake_at: usize,
}

impl<T> Outbox<T> {
    /// A queue whose gathering writer is woken once `wake_at` (at least 1) values are queued.
    pub(crate) fn new(wake_at: usize) -> Self {
        Outbox {
            state: Mutex::new(State {
                queue: Vec::new(),
                waiting: Waiting::No,
                closed: false,
            }),
            ready: Condvar::new(),
            wake_at: wake_at.max(1),
        }
    }

    /// Queues `value`; dropped if the writer has finished.
    pub(crate) fn send(&self, value: T) {
        let mut state = lock(&self.state);
        if state.closed {
            return;
        }
        state.queue.push(value);
        let wake = match state.waiting {
            Waiting::No => false,
            Waiting::Shallow => state.queue.len() >= self.wake_at,
            Waiting::Deep => true,
        };
        if wake {
            state.waiting = Waiting::No;
            drop(state);
            self.ready.notify_one();
        }
    }

    /// Moves everything queued into `batch` (which should be empty), waiting up to `timeout`
    /// for something to arrive; `batch` stays empty if nothing did.
    pub(crate) fn take_all(&self, batch: &mut Vec<T>, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut state = lock(&self.state);
        if state.queue.is_empty() {
            state.waiting = Waiting::Shallow;
            state = self
                .ready
                .wait_timeout(state, GATHER.min(timeout))
                .unwrap_or_else(|e| e.into_inner())
                .0;
            while state.queue.is_empty() {
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                state.waiting = Waiting::Deep;
                state = self
                    .ready
                    .wait_timeout(state, deadline - now)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            state.waiting = Waiting::No;
        }
        std::mem::swap(&mut state.queue, batch);
    }

    /// Drops every later value, and hands back what is still queued.
    pub(crate) fn close(&self) -> Vec<T> {
        let mut state = lock(&self.state);
        state.closed = true;
        std::mem::take(&mut state.queue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn every_value_arrives_once_in_send_order_per_sender() {
        let outbox = Arc::new(Outbox::new(8));
        let senders: Vec<_> = (0..3u64)
            .map(|s| {
                let outbox = Arc::clone(&outbox);
                std::thread::spawn(move || {
                    for n in 0..10_000u64 {
                        outbox.send((s, n));
                    }
                })
            })
            .collect();
        let mut seen = vec![Vec::new(); 3];
        let mut batch = Vec::new();
        let mut total = 0;
        let started = Instant::now();
        while total < 30_000 {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "stuck at {total}"
            );
            outbox.take_all(&mut batch, Duration::from_millis(50));
            total += batch.len();
            for (s, n) in batch.drain(..) {
                seen[s as usize].push(n);
            }
        }
        for handle in senders {
            handle.join().unwrap();
        }
        for values in seen {
            assert_eq!(values, (0..10_000).collect::<Vec<_>>());
        }
        assert!(outbox.close().is_empty());
    }

    #[test]
    fn a_lone_value_after_a_quiet_spell_is_taken_promptly() {
        let outbox = Arc::new(Outbox::new(64));
        let sender = {
            let outbox = Arc::clone(&outbox);
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(30));
                outbox.send(7);
            })
        };
        let mut batch = Vec::new();
        let started = Instant::now();
        outbox.take_all(&mut batch, Duration::from_secs(10));
        assert_eq!(batch, [7]);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "woken, not timed out"
        );
        sender.join().unwrap();
    }

    #[test]
    fn an_empty_outbox_times_out_and_a_closed_one_drops_sends() {
        let outbox = Outbox::new(4);
        let mut batch = Vec::new();
        let started = Instant::now();
        outbox.take_all(&mut batch, Duration::from_millis(20));
        assert!(batch.is_empty());
        assert!(started.elapsed() >= Duration::from_millis(20));
        outbox.send(1);
        assert_eq!(outbox.close(), [1]);
        outbox.send(2);
        outbox.take_all(&mut batch, Duration::ZERO);
        assert!(batch.is_empty());
    }
}
