//! The in-flight limit: one permit per entry from the moment it is read until its outcome is
//! written, so memory is bounded by `run.max_in_flight` whatever the input size.

use std::sync::{Condvar, Mutex};
use std::time::Duration;

use super::lock;

/// A counting semaphore: the in-flight limit.
///
/// A dispatcher that ran out is woken only once a quarter of the permits are back, not for
/// every outcome written (a context switch per item once the downstream is the slower side).
#[derive(Debug)]
pub(crate) struct Permits {
    state: Mutex<PermitState>,
    changed: Condvar,
    /// A waiting `acquire` is woken once this many permits are available.
    resume_at: usize,
}

#[derive(Debug)]
struct PermitState {
    available: usize,
    /// Threads blocked in `acquire`: a release wakes (a system call) only when there is one.
    waiting: usize,
}

impl Permits {
    pub(crate) fn new(count: usize) -> Self {
        Self {
            state: Mutex::new(PermitState {
                available: count,
                waiting: 0,
            }),
            changed: Condvar::new(),
            resume_at: (count / 4).max(1),
        }
    }

    /// Takes a permit; gives up (false) when `stop` returns true.
    pub(crate) fn acquire(&self, stop: impl Fn() -> bool) -> bool {
        let mut state = lock(&self.state);
        loop {
            if stop() {
                return false;
            }
            if state.available > 0 {
                state.available -= 1;
                return true;
            }
            state.waiting += 1;
            state = self
                .changed
                .wait_timeout(state, Duration::from_millis(50))
                .unwrap_or_else(|e| e.into_inner())
                .0;
            state.waiting -= 1;
        }
    }

    /// Gives back `count` permits.
    pub(crate) fn release(&self, count: usize) {
        if count == 0 {
            return;
        }
        let mut state = lock(&self.state);
        state.available += count;
        let wake = state.waiting > 0 && state.available >= self.resume_at;
        drop(state);
        if wake {
            self.changed.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[test]
    fn permits_bound_and_give_up_on_stop() {
        let permits = Permits::new(2);
        assert!(permits.acquire(|| false));
        assert!(permits.acquire(|| false));
        let stop = AtomicBool::new(false);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                std::thread::sleep(Duration::from_millis(100));
                stop.store(true, Ordering::SeqCst);
            });
            assert!(!permits.acquire(|| stop.load(Ordering::SeqCst)));
        });
        permits.release(1);
        assert!(permits.acquire(|| false));
    }
}
