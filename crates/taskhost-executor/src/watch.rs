//! A [`Watch`]: the mailbox that [`wait`](fn@crate::wait) and [`as_completed`](crate::as_completed)
//! register on every pending future, into which each future pushes its index when it is done.

use std::collections::VecDeque;
use std::time::Instant;

use crate::sync::{lock, wait_until, Arc, Condvar, Mutex};

/// A mailbox of "future number `i` is done" notifications.
pub(crate) struct Watch {
    done: Mutex<VecDeque<usize>>,
    condvar: Condvar,
}

impl Watch {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Watch {
            done: Mutex::new(VecDeque::new()),
            condvar: Condvar::new(),
        })
    }

    pub(crate) fn notify(&self, index: usize) {
        lock(&self.done).push_back(index);
        self.condvar.notify_all();
    }

    /// Waits for the next notification until `deadline`.
    pub(crate) fn next(&self, deadline: Option<Instant>) -> Option<usize> {
        let mut done = lock(&self.done);
        loop {
            if let Some(index) = done.pop_front() {
                return Some(index);
            }
            done = wait_until(&self.condvar, done, deadline)?;
        }
    }
}
