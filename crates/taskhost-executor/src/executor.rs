//! [`Executor`], the handle a user holds: every method they call, each documented with an
//! example and delegating to the pool (`submit.rs`, `shutdown.rs`). Dropping it shuts the pool
//! down and waits.

use std::fmt;
use std::time::Duration;

use crate::context::{TaskContext, TaskOptions};
use crate::error::SubmitError;
use crate::future::TaskFuture;
use crate::job::{Plain, WithContext};
use crate::metrics::MetricsSnapshot;
use crate::pool::PoolInner;
use crate::shutdown::{ShutdownOptions, ShutdownReport};
use crate::sync::{Arc, Ordering};

/// A thread pool with the semantics of Python's `concurrent.futures.ThreadPoolExecutor`.
///
/// `Send + Sync`; share it by reference or in an `Arc`. Dropping it is
/// [`shutdown_and_wait`](Self::shutdown_and_wait).
/// See the [crate docs](crate) for a tour.
///
/// ```
/// use taskhost_executor::Executor;
///
/// let pool = Executor::new(4).unwrap();
/// let futures: Vec<_> = (0..8).map(|i| pool.submit(move || i * i).unwrap()).collect();
/// let squares: Vec<i32> = futures.iter().map(|f| *f.result(None).unwrap()).collect();
/// assert_eq!(squares, [0, 1, 4, 9, 16, 25, 36, 49]);
/// ```
pub struct Executor {
    pub(crate) inner: Arc<PoolInner>,
}

impl fmt::Debug for Executor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Executor")
            .field("name", &self.inner.name)
            .field("max_workers", &self.inner.max_workers)
            .field("metrics", &self.metrics())
            .finish()
    }
}

impl Drop for Executor {
    fn drop(&mut self) {
        let wait = !self.inner.detached.load(Ordering::SeqCst);
        self.inner.shutdown(ShutdownOptions {
            wait,
            cancel_queued: false,
        });
    }
}

impl Executor {
    /// The pool's name.
    ///
    /// ```
    /// assert_eq!(taskhost_executor::Executor::new(1).unwrap().name(), "pool");
    /// ```
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The most worker threads alive at once.
    ///
    /// ```
    /// assert_eq!(taskhost_executor::Executor::new(3).unwrap().max_workers(), 3);
    /// ```
    pub fn max_workers(&self) -> usize {
        self.inner.max_workers
    }

    /// Queues `f` and returns its future at once. Callable from any thread, including from
    /// inside a task. A worker starts only if no idle one can be claimed and fewer than
    /// `max_workers` are alive. The value type must be `Send + Sync` because every clone of the
    /// future can read it from any thread.
    ///
    /// ```
    /// let pool = taskhost_executor::Executor::new(2).unwrap();
    /// let f = pool.submit(|| "hi".to_string()).unwrap();
    /// assert_eq!(f.result(None).unwrap(), "hi");
    /// ```
    pub fn submit<F, T>(&self, f: F) -> Result<TaskFuture<T>, SubmitError<F>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + Sync + 'static,
    {
        self.inner
            .submit_future(None, Plain(f))
            .map_err(|e| e.map(|task: Plain<F>| task.0))
    }

    /// Like [`submit`](Self::submit), with options, for a closure that receives its
    /// [`TaskContext`] (to watch for a stop request).
    ///
    /// ```
    /// use taskhost_executor::{Executor, TaskOptions};
    /// let pool = Executor::new(2).unwrap();
    /// let f = pool.submit_with(TaskOptions::new().name("job"), |ctx| ctx.task_id()).unwrap();
    /// assert_eq!(*f.result(None).unwrap(), f.id());
    /// ```
    pub fn submit_with<F, T>(
        &self,
        options: TaskOptions,
        f: F,
    ) -> Result<TaskFuture<T>, SubmitError<F>>
    where
        F: FnOnce(&TaskContext) -> T + Send + 'static,
        T: Send + Sync + 'static,
    {
        self.inner
            .submit_future(options.name, WithContext(f))
            .map_err(|e| e.map(|task: WithContext<F>| task.0))
    }

    /// Fire and forget: queues `f` with no future (the cheapest path). Its panic is logged as a
    /// `task.failed` event and counted in `failed`.
    ///
    /// ```
    /// use std::sync::mpsc::channel;
    /// let pool = taskhost_executor::Executor::new(1).unwrap();
    /// let (tx, rx) = channel();
    /// pool.execute(move || tx.send(3).unwrap()).unwrap();
    /// assert_eq!(rx.recv().unwrap(), 3);
    /// ```
    pub fn execute<F>(&self, f: F) -> Result<(), SubmitError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        self.inner.execute(f)
    }

    /// Python's `shutdown(wait, cancel_futures)`: stops accepting work; later submits fail with
    /// [`SubmitError::ShutDown`]. Queued items still run, unless `cancel_futures`, in which case
    /// they are cancelled ([`CancelReason::Shutdown`](crate::CancelReason::Shutdown)). With
    /// `wait`, joins every worker thread (except the caller's own, when called from inside a
    /// task). Calling it again is harmless.
    ///
    /// Two booleans say little at a call site: prefer
    /// [`shutdown_and_wait`](Self::shutdown_and_wait) (`shutdown(true, false)`, what dropping the
    /// executor does) or [`shutdown_with`](Self::shutdown_with), which names both.
    ///
    /// ```
    /// let pool = taskhost_executor::Executor::new(2).unwrap();
    /// let f = pool.submit(|| 1).unwrap();
    /// pool.shutdown(true, false); // wait = true, cancel_futures = false
    /// pool.shutdown(true, false);
    /// assert_eq!(f.result(None), Ok(&1));
    /// assert_eq!(pool.metrics().workers_alive, 0);
    /// assert!(pool.submit(|| 2).is_err());
    /// ```
    pub fn shutdown(&self, wait: bool, cancel_futures: bool) {
        self.shutdown_with(ShutdownOptions {
            wait,
            cancel_queued: cancel_futures,
        });
    }

    /// Stops accepting work, lets every queued item run, and joins every worker thread (except
    /// the caller's own, when called from inside a task): `shutdown(true, false)`, and what
    /// dropping the executor does. Calling it again is harmless.
    ///
    /// ```
    /// use taskhost_executor::{Executor, SubmitError};
    ///
    /// let pool = Executor::new(2).unwrap();
    /// let queued: Vec<_> = (0..4).map(|i| pool.submit(move || i * 10).unwrap()).collect();
    /// pool.shutdown_and_wait();
    /// assert!(queued.iter().all(|f| f.done() && !f.cancelled())); // every one ran
    /// assert_eq!(pool.metrics().workers_alive, 0);
    /// assert!(matches!(pool.submit(|| 0), Err(SubmitError::ShutDown(_))));
    /// ```
    pub fn shutdown_and_wait(&self) {
        self.shutdown_with(ShutdownOptions {
            wait: true,
            cancel_queued: false,
        });
    }

    /// Shuts down as `options` say: join the workers or return at once, run or cancel what is
    /// queued. Later submits fail with [`SubmitError::ShutDown`]; calling it again is harmless
    /// (a later call can still cancel what is queued, or wait).
    ///
    /// ```
    /// use taskhost_executor::{CancelReason, Executor, ResultError, ShutdownOptions};
    ///
    /// let pool = Executor::new(1).unwrap();
    /// let (release, blocker) = std::sync::mpsc::channel::<()>();
    /// let running = pool.submit(move || blocker.recv().ok()).unwrap();
    /// let queued = pool.submit(|| 1).unwrap();
    /// while !running.running() { std::thread::yield_now(); }
    /// pool.shutdown_with(ShutdownOptions { wait: false, cancel_queued: true });
    /// assert_eq!(queued.result(None), Err(ResultError::Cancelled(CancelReason::Shutdown)));
    /// release.send(()).unwrap();
    /// assert!(running.result(None).is_ok()); // a running task is never cancelled
    /// ```
    pub fn shutdown_with(&self, options: ShutdownOptions) {
        self.inner.shutdown(options);
    }

    /// Shuts down (like `shutdown(false, cancel_futures)`), then waits at most `limit` for every
    /// worker to exit. The report lists the tasks still running when the limit passed. If some
    /// were, dropping the executor afterwards does not wait for them either.
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskhost_executor::{Executor, TaskOptions};
    ///
    /// let pool = Executor::new(1).unwrap();
    /// let (tx, rx) = std::sync::mpsc::channel::<()>();
    /// let f = pool.submit_with(TaskOptions::new().name("stuck"), move |_| rx.recv().ok()).unwrap();
    /// while !f.running() { std::thread::yield_now(); }
    /// let report = pool.shutdown_timeout(Duration::from_millis(20), false);
    /// assert!(!report.all_stopped);
    /// assert_eq!(report.still_running[0].name.as_deref(), Some("stuck"));
    /// tx.send(()).unwrap();
    /// ```
    pub fn shutdown_timeout(&self, limit: Duration, cancel_futures: bool) -> ShutdownReport {
        self.inner.shutdown_timeout(limit, cancel_futures)
    }

    /// The pool's counters now.
    ///
    /// ```
    /// let pool = taskhost_executor::Executor::new(2).unwrap();
    /// pool.submit(|| ()).unwrap().result(None).unwrap();
    /// let m = pool.metrics();
    /// assert_eq!((m.submitted, m.completed, m.workers_spawned), (1, 1, 1));
    /// ```
    pub fn metrics(&self) -> MetricsSnapshot {
        self.inner.metrics_snapshot()
    }

    /// A handle that reads the pool's counters from elsewhere (a metrics endpoint), also
    /// after the executor has moved. It neither submits nor keeps the pool running: dropping
    /// the executor shuts the pool down as usual, and the reader then sees the final counts.
    ///
    /// ```
    /// let pool = taskhost_executor::Executor::builder().name("io").max_workers(1).build().unwrap();
    /// let reader = pool.metrics_reader();
    /// pool.submit(|| ()).unwrap().result(None).unwrap();
    /// drop(pool);
    /// assert_eq!((reader.name(), reader.metrics().completed), ("io", 1));
    /// ```
    pub fn metrics_reader(&self) -> MetricsReader {
        MetricsReader {
            inner: Arc::clone(&self.inner),
        }
    }
}

/// Reads one pool's counters: see [`Executor::metrics_reader`].
#[derive(Clone)]
pub struct MetricsReader {
    inner: Arc<PoolInner>,
}

impl MetricsReader {
    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The pool's counters now, as [`Executor::metrics`] gives them.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.inner.metrics_snapshot()
    }
}

impl fmt::Debug for MetricsReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsReader")
            .field("name", &self.inner.name)
            .finish_non_exhaustive()
    }
}
