//! Python's `Executor.map`: [`Executor::map`] (every item submitted at the call) and
//! [`Executor::map_buffered`] (Python 3.14's `buffersize`: at most `n` items ahead of the
//! consumer, so the input may be endless).

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use crate::error::{MapError, ResultError, SubmitError};
use crate::executor::Executor;
use crate::future::TaskFuture;
use crate::job::MapCall;
use crate::sync::Arc;

impl Executor {
    /// Python's `map`: submits `f(item)` for every item before returning, then yields the
    /// results in input order. `timeout` is a deadline fixed now, at the call. On the first error
    /// or timeout the iterator yields it, cancels the remaining futures, and ends; dropping the
    /// iterator early cancels the remaining futures too. If a submission is refused, the futures
    /// already submitted are cancelled and the error hands back the refused item.
    ///
    /// ```
    /// let pool = taskhost_executor::Executor::new(4).unwrap();
    /// let squares: Vec<u64> = pool
    ///     .map(|x: u64| x * x, 1..=5, None)
    ///     .unwrap()
    ///     .collect::<Result<_, _>>()
    ///     .unwrap();
    /// assert_eq!(squares, [1, 4, 9, 16, 25]);
    /// ```
    pub fn map<I, F, T>(
        &self,
        f: F,
        items: I,
        timeout: Option<Duration>,
    ) -> Result<MapResults<T>, SubmitError<I::Item>>
    where
        I: IntoIterator,
        I::Item: Send + 'static,
        F: Fn(I::Item) -> T + Send + Sync + 'static,
        T: Clone + Send + Sync + 'static,
    {
        let deadline = timeout.map(|t| Instant::now() + t);
        let f = Arc::new(f);
        let mut futures = Vec::new();
        for item in items {
            let call = MapCall {
                f: Arc::clone(&f),
                item,
            };
            match self.inner.submit_future(None, call) {
                Ok(future) => futures.push(future),
                Err(error) => {
                    for future in &futures {
                        future.cancel();
                    }
                    return Err(error.map(|call| call.item));
                }
            }
        }
        Ok(MapResults {
            futures,
            next: 0,
            deadline,
            stopped: false,
        })
    }

    /// Python 3.14's `map(fn, items, timeout=…, buffersize=n)`: submits the first `buffersize`
    /// items now, and one more each time the consumer asks for a result, so that at most
    /// `buffersize` items are submitted ahead of the consumer and `items` may be endless. Results
    /// come in input order; `timeout` is a deadline fixed now, at the call. As with
    /// [`map`](Self::map), the first error or timeout is yielded and ends the iteration, and the
    /// futures not consumed are cancelled (also when the iterator is dropped).
    ///
    /// A `buffersize` of 0 is refused ([`MapError::ZeroBufferSize`], Python's `ValueError`). A
    /// refusal of one of the first `buffersize` submissions cancels those already submitted and
    /// hands the item back ([`MapError::Refused`]); a refusal later (the pool was shut down
    /// meanwhile) is yielded as [`ResultError::NotSubmitted`] and ends the iteration, like the
    /// `RuntimeError` Python's iterator raises.
    ///
    /// ```
    /// let pool = taskhost_executor::Executor::new(4).unwrap();
    /// // An endless input: only what the consumer takes (plus the buffer) is ever submitted.
    /// let first: Vec<u64> = pool
    ///     .map_buffered(|x: u64| x * x, 1.., None, 8)
    ///     .unwrap()
    ///     .take(5)
    ///     .collect::<Result<_, _>>()
    ///     .unwrap();
    /// assert_eq!(first, [1, 4, 9, 16, 25]);
    /// assert!(pool.map_buffered(|x: u64| x, 1..3, None, 0).is_err());
    /// ```
    pub fn map_buffered<I, F, T>(
        &self,
        f: F,
        items: I,
        timeout: Option<Duration>,
        buffersize: usize,
    ) -> Result<BufferedMap<'_, I::IntoIter, F, T>, MapError<I::Item>>
    where
        I: IntoIterator,
        I::Item: Send + 'static,
        F: Fn(I::Item) -> T + Send + Sync + 'static,
        T: Clone + Send + Sync + 'static,
    {
        if buffersize == 0 {
            return Err(MapError::ZeroBufferSize);
        }
        let mut map = BufferedMap {
            pool: self,
            f: Arc::new(f),
            items: items.into_iter(),
            // Not `buffersize` up front: a huge buffer over a short input allocates nothing.
            futures: VecDeque::new(),
            deadline: timeout.map(|t| Instant::now() + t),
            stopped: false,
        };
        for _ in 0..buffersize {
            match map.submit_next() {
                Some(Ok(())) => {}
                Some(Err(error)) => {
                    map.cancel_rest();
                    return Err(MapError::Refused(error));
                }
                None => break,
            }
        }
        Ok(map)
    }
}

/// The results of [`Executor::map`], in input order.
///
/// ```
/// let pool = taskhost_executor::Executor::new(2).unwrap();
/// let results = pool.map(|s: &str| s.len(), ["a", "bb"], None).unwrap();
/// assert_eq!(results.futures().len(), 2);
/// assert_eq!(results.collect::<Vec<_>>(), [Ok(1), Ok(2)]);
/// ```
pub struct MapResults<T: Send + Sync + 'static> {
    futures: Vec<TaskFuture<T>>,
    next: usize,
    deadline: Option<Instant>,
    stopped: bool,
}

impl<T: Send + Sync + 'static> fmt::Debug for MapResults<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MapResults")
            .field("total", &self.futures.len())
            .field("next", &self.next)
            .finish()
    }
}

impl<T: Send + Sync + 'static> MapResults<T> {
    /// The futures, in input order.
    ///
    /// ```
    /// let pool = taskhost_executor::Executor::new(2).unwrap();
    /// let results = pool.map(|x: i32| x, [1, 2, 3], None).unwrap();
    /// assert_eq!(results.futures().len(), 3);
    /// ```
    pub fn futures(&self) -> &[TaskFuture<T>] {
        &self.futures
    }

    fn cancel_rest(&mut self) {
        self.stopped = true;
        for future in &self.futures[self.next.min(self.futures.len())..] {
            future.cancel();
        }
    }
}

impl<T: Clone + Send + Sync + 'static> Iterator for MapResults<T> {
    type Item = Result<T, ResultError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.stopped || self.next >= self.futures.len() {
            return None;
        }
        let timeout = self
            .deadline
            .map(|d| d.saturating_duration_since(Instant::now()));
        let result = self.futures[self.next].result(timeout).cloned();
        if result.is_err() {
            self.cancel_rest();
        } else {
            self.next += 1;
        }
        Some(result)
    }
}

impl<T: Send + Sync + 'static> Drop for MapResults<T> {
    fn drop(&mut self) {
        if !self.stopped {
            self.cancel_rest();
        }
    }
}

/// The results of [`Executor::map_buffered`], in input order; submits one more item each time
/// a result is asked for.
///
/// ```
/// let pool = taskhost_executor::Executor::new(2).unwrap();
/// let mut results = pool.map_buffered(|x: i32| x + 1, [1, 2, 3], None, 2).unwrap();
/// assert_eq!(results.in_flight(), 2);
/// assert_eq!(results.next(), Some(Ok(2)));
/// assert_eq!(results.collect::<Vec<_>>(), [Ok(3), Ok(4)]);
/// ```
pub struct BufferedMap<'pool, I: Iterator, F, T: Send + Sync + 'static> {
    pool: &'pool Executor,
    f: Arc<F>,
    items: I,
    /// Submitted and not yet consumed, in input order.
    futures: VecDeque<TaskFuture<T>>,
    deadline: Option<Instant>,
    stopped: bool,
}

impl<I: Iterator, F, T: Send + Sync + 'static> fmt::Debug for BufferedMap<'_, I, F, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BufferedMap")
            .field("in_flight", &self.futures.len())
            .field("stopped", &self.stopped)
            .finish()
    }
}

impl<I, F, T> BufferedMap<'_, I, F, T>
where
    I: Iterator,
    I::Item: Send + 'static,
    F: Fn(I::Item) -> T + Send + Sync + 'static,
    T: Send + Sync + 'static,
{
    /// How many items are submitted and not yet consumed (at most the buffer size between
    /// calls to `next`).
    ///
    /// ```
    /// let pool = taskhost_executor::Executor::new(1).unwrap();
    /// let results = pool.map_buffered(|x: u8| x, 0.., None, 3).unwrap();
    /// assert_eq!(results.in_flight(), 3);
    /// ```
    pub fn in_flight(&self) -> usize {
        self.futures.len()
    }

    /// Submits the next item, if there is one.
    fn submit_next(&mut self) -> Option<Result<(), SubmitError<I::Item>>> {
        let item = self.items.next()?;
        let call = MapCall {
            f: Arc::clone(&self.f),
            item,
        };
        Some(match self.pool.inner.submit_future(None, call) {
            Ok(future) => {
                self.futures.push_back(future);
                Ok(())
            }
            Err(error) => Err(error.map(|call| call.item)),
        })
    }

    fn cancel_rest(&mut self) {
        self.stopped = true;
        for future in self.futures.drain(..) {
            future.cancel();
        }
    }
}

impl<I, F, T> Iterator for BufferedMap<'_, I, F, T>
where
    I: Iterator,
    I::Item: Send + 'static,
    F: Fn(I::Item) -> T + Send + Sync + 'static,
    T: Clone + Send + Sync + 'static,
{
    type Item = Result<T, ResultError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.stopped || self.futures.is_empty() {
            return None;
        }
        // Refill before waiting, as Python does: the pool works on the next item while the
        // consumer waits for this one.
        if let Some(Err(error)) = self.submit_next() {
            self.cancel_rest();
            return Some(Err(ResultError::NotSubmitted(error.to_string())));
        }
        let timeout = self
            .deadline
            .map(|d| d.saturating_duration_since(Instant::now()));
        let future = self.futures.pop_front()?;
        let result = future.result(timeout).cloned();
        if result.is_err() {
            future.cancel();
            self.cancel_rest();
        }
        Some(result)
    }
}

impl<I: Iterator, F, T: Send + Sync + 'static> Drop for BufferedMap<'_, I, F, T> {
    fn drop(&mut self) {
        for future in self.futures.drain(..) {
            future.cancel();
        }
    }
}
