//! Waiting on many futures: [`wait`] and [`as_completed`].
//!
//! Both register one [`Watch`] on every pending future; a future that completes (or is
//! cancelled: a cancelled future is done at once, unlike Python) pushes its index into the watch.

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

use crate::error::{AsCompletedTimeout, ResultError};
use crate::future::TaskFuture;
use crate::sync::Arc;
use crate::watch::Watch;

/// When [`wait`] returns.
///
/// ```
/// use taskhost_executor::ReturnWhen;
/// assert_ne!(ReturnWhen::FirstCompleted, ReturnWhen::AllCompleted);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReturnWhen {
    /// As soon as any future is done (finished or cancelled).
    FirstCompleted,
    /// As soon as any future finishes with an error (panic or broken pool), or all are done.
    FirstException,
    /// When every future is done.
    AllCompleted,
}

/// The two sets [`wait`] returns, each in input order.
///
/// ```
/// use taskhost_executor::{wait, Executor, ReturnWhen};
///
/// let pool = Executor::new(2).unwrap();
/// let fs: Vec<_> = (0..3).map(|i| pool.submit(move || i).unwrap()).collect();
/// let r = wait(&fs, None, ReturnWhen::AllCompleted);
/// assert_eq!((r.done.len(), r.not_done.len()), (3, 0));
/// ```
#[derive(Debug)]
pub struct WaitResult<T: Send + Sync + 'static> {
    /// Futures that were done when `wait` returned.
    pub done: Vec<TaskFuture<T>>,
    /// Futures that were not.
    pub not_done: Vec<TaskFuture<T>>,
}

fn is_exception<T: Send + Sync + 'static>(future: &TaskFuture<T>) -> bool {
    future.done()
        && matches!(
            future.result(Some(Duration::ZERO)),
            Err(ResultError::Panicked(_)) | Err(ResultError::BrokenPool(_))
        )
}

/// The futures with repeats left out (the first of each kept, in input order): Python's
/// `set(fs)`, so that a future passed twice is counted, watched and yielded once.
fn distinct<T: Send + Sync + 'static>(futures: &[TaskFuture<T>]) -> Vec<TaskFuture<T>> {
    let mut seen = HashSet::with_capacity(futures.len());
    futures
        .iter()
        .filter(|future| seen.insert(future.id()))
        .cloned()
        .collect()
}

/// Waits until the futures are done as `return_when` asks, or `timeout` passes (`None`: no
/// limit), and returns which are done. Like Python's `concurrent.futures.wait`, except that a
/// cancelled future counts as done the moment it is cancelled. A future passed more than once
/// is one future (Python's `set(fs)`): it appears once in the result.
///
/// ```
/// use std::time::Duration;
/// use taskhost_executor::{wait, Executor, ReturnWhen};
///
/// let pool = Executor::new(2).unwrap();
/// let fast = pool.submit(|| 1).unwrap();
/// let slow = pool.submit(|| std::thread::sleep(Duration::from_millis(300))).unwrap();
/// let r = wait(&[fast.clone()], None, ReturnWhen::FirstCompleted);
/// assert_eq!(r.done.len(), 1);
/// let r = wait(&[slow], Some(Duration::from_millis(10)), ReturnWhen::AllCompleted);
/// assert_eq!(r.not_done.len(), 1);
/// ```
pub fn wait<T: Send + Sync + 'static>(
    futures: &[TaskFuture<T>],
    timeout: Option<Duration>,
    return_when: ReturnWhen,
) -> WaitResult<T> {
    let deadline = timeout.map(|t| Instant::now() + t);
    let futures = &distinct(futures)[..];
    let satisfied = |futures: &[TaskFuture<T>]| {
        let done = futures.iter().filter(|f| f.done()).count();
        match return_when {
            ReturnWhen::FirstCompleted => done > 0 || futures.is_empty(),
            ReturnWhen::FirstException => done == futures.len() || futures.iter().any(is_exception),
            ReturnWhen::AllCompleted => done == futures.len(),
        }
    };
    if !satisfied(futures) {
        let watch = Watch::new();
        for (index, future) in futures.iter().enumerate() {
            future.watch(&watch, index);
        }
        while !satisfied(futures) {
            if watch.next(deadline).is_none() {
                break;
            }
        }
        for future in futures {
            future.unwatch(&watch);
        }
    }
    let (done, not_done) = futures.iter().cloned().partition(|f| f.done());
    WaitResult { done, not_done }
}

/// Yields the futures as they complete: those already done first (in input order), then in
/// completion order. Once the deadline (`timeout` from the call; `None`: no limit) passes, yields
/// one `Err(AsCompletedTimeout)` saying how many are unfinished, then ends. Cancelled futures
/// are yielded the moment they are cancelled. A future passed more than once is yielded (and
/// counted in the timeout) once, as in Python.
///
/// ```
/// use taskhost_executor::{as_completed, Executor};
///
/// let pool = Executor::new(2).unwrap();
/// let fs: Vec<_> = (0..4).map(|i| pool.submit(move || i * 10).unwrap()).collect();
/// let mut total = 0;
/// for f in as_completed(&fs, None) {
///     total += *f.unwrap().result(None).unwrap();
/// }
/// assert_eq!(total, 60);
/// ```
pub fn as_completed<T: Send + Sync + 'static>(
    futures: &[TaskFuture<T>],
    timeout: Option<Duration>,
) -> AsCompleted<T> {
    let deadline = timeout.map(|t| Instant::now() + t);
    let futures = distinct(futures);
    let watch = Watch::new();
    let mut ready = VecDeque::new();
    let mut pending = 0;
    for (index, future) in futures.iter().enumerate() {
        if future.watch(&watch, index) {
            pending += 1;
        } else {
            ready.push_back(index);
        }
    }
    AsCompleted {
        futures,
        watch,
        ready,
        pending,
        deadline,
        finished: false,
    }
}

/// The iterator returned by [`as_completed`].
///
/// ```
/// use taskhost_executor::{as_completed, Executor};
///
/// let pool = Executor::new(1).unwrap();
/// let f = pool.submit(|| 1).unwrap();
/// let mut it = as_completed(std::slice::from_ref(&f), None);
/// assert_eq!(it.next().unwrap().unwrap().id(), f.id());
/// assert!(it.next().is_none());
/// ```
pub struct AsCompleted<T: Send + Sync + 'static> {
    futures: Vec<TaskFuture<T>>,
    watch: Arc<Watch>,
    ready: VecDeque<usize>,
    pending: usize,
    deadline: Option<Instant>,
    finished: bool,
}

impl<T: Send + Sync + 'static> std::fmt::Debug for AsCompleted<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsCompleted")
            .field("total", &self.futures.len())
            .field("pending", &self.pending)
            .finish()
    }
}

impl<T: Send + Sync + 'static> Iterator for AsCompleted<T> {
    type Item = Result<TaskFuture<T>, AsCompletedTimeout>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(index) = self.ready.pop_front() {
            return Some(Ok(self.futures[index].clone()));
        }
        if self.finished || self.pending == 0 {
            return None;
        }
        match self.watch.next(self.deadline) {
            Some(index) => {
                self.pending -= 1;
                Some(Ok(self.futures[index].clone()))
            }
            None => {
                self.finished = true;
                Some(Err(AsCompletedTimeout {
                    unfinished: self.pending,
                    total: self.futures.len(),
                }))
            }
        }
    }
}

impl<T: Send + Sync + 'static> Drop for AsCompleted<T> {
    fn drop(&mut self) {
        if self.pending > 0 {
            for future in &self.futures {
                future.unwatch(&self.watch);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watch_delivers_in_notification_order_and_times_out() {
        let watch = Watch::new();
        watch.notify(2);
        watch.notify(0);
        assert_eq!(watch.next(None), Some(2));
        assert_eq!(watch.next(None), Some(0));
        let deadline = Instant::now() + Duration::from_millis(10);
        assert_eq!(watch.next(Some(deadline)), None);
    }

    #[test]
    fn wait_on_nothing_returns_at_once() {
        let r = wait::<u8>(&[], None, ReturnWhen::FirstCompleted);
        assert!(r.done.is_empty() && r.not_done.is_empty());
        let r = wait::<u8>(&[], None, ReturnWhen::AllCompleted);
        assert!(r.done.is_empty());
    }
}
