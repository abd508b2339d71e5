//! [`TaskFuture`]: the handle to one submitted task, like Python's `concurrent.futures.Future`,
//! and [`FutureState`].
//!
//! A future is an `Arc` of the task's work item (`FutureJob`, in `job.rs`), reached through the
//! [`HoldsFutureCell`] trait; the state it reads and changes is that item's
//! [`crate::future_cell::FutureCell`]. A future holds no reference to its pool, so
//! submitting costs no shared reference count; a user `cancel()` is therefore counted in the
//! metrics, and its `task.cancelled` event emitted, when the item leaves the queue.

use std::fmt;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::error::{CancelReason, ResultError, TaskError};
use crate::future_cell::{
    is_done, FutureCell, Outcome, BROKEN, CANCELLED_SHUTDOWN, CANCELLED_STOP, CANCELLED_USER,
    FAILED, FINISHED, PENDING, RUNNING,
};
use crate::sync::Arc;
use crate::timings::TaskTimings;
use crate::watch::Watch;

/// Where a future is in its life: `Pending → Running → Finished`, or `Pending → Cancelled`
/// (and `Running → Cancelled` only when the task honoured a stop request).
///
/// ```
/// use taskhost_executor::{Executor, FutureState};
///
/// let pool = Executor::new(1).unwrap();
/// let f = pool.submit(|| 7).unwrap();
/// f.result(None).unwrap();
/// assert_eq!(f.state(), FutureState::Finished);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FutureState {
    /// Queued, not yet picked up by a worker.
    Pending,
    /// A worker is running the task.
    Running,
    /// The task returned or panicked, or never ran because the pool broke.
    Finished,
    /// The task was cancelled before it ran, or honoured a stop request.
    Cancelled,
}

/// The handle to one submitted task, like Python's `concurrent.futures.Future`.
///
/// Cheap to clone: every clone shares one state. `Send + Sync`. Read the result any number of
/// times with [`result`](Self::result); it also implements [`std::future::Future`] (for
/// `T: Clone`), so async code can `.await` it — the output is `Result<T, ResultError>`, a clone of
/// the stored value.
///
/// ```
/// use std::time::Duration;
/// use taskhost_executor::Executor;
///
/// let pool = Executor::new(2).unwrap();
/// let f = pool.submit(|| 6 * 7).unwrap();
/// assert_eq!(*f.result(Some(Duration::from_secs(5))).unwrap(), 42);
/// assert!(f.done() && !f.cancelled());
/// ```
pub struct TaskFuture<T> {
    /// The job that holds this future's cell (and, until it runs, the closure).
    pub(crate) job: Arc<dyn HoldsFutureCell<T>>,
}

impl<T> Clone for TaskFuture<T> {
    fn clone(&self) -> Self {
        TaskFuture {
            job: Arc::clone(&self.job),
        }
    }
}

impl<T: Send + Sync + 'static> fmt::Debug for TaskFuture<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskFuture")
            .field("id", &self.cell().id)
            .field("name", &self.cell().name())
            .field("state", &self.state())
            .finish()
    }
}

impl<T: Send + Sync + 'static> TaskFuture<T> {
    fn cell(&self) -> &FutureCell<T, TaskFuture<T>> {
        self.job.future_cell()
    }

    /// The task's id, unique within the process, as in the tracing field `task_id`.
    ///
    /// ```
    /// # use taskhost_executor::Executor;
    /// let pool = Executor::new(1).unwrap();
    /// let (a, b) = (pool.submit(|| ()).unwrap(), pool.submit(|| ()).unwrap());
    /// assert_ne!(a.id(), b.id());
    /// ```
    pub fn id(&self) -> u64 {
        self.cell().id
    }

    /// The task's name from [`TaskOptions::name`](crate::TaskOptions::name), if it has one.
    ///
    /// ```
    /// # use taskhost_executor::{Executor, TaskOptions};
    /// let pool = Executor::new(1).unwrap();
    /// let f = pool.submit_with(TaskOptions::new().name("hash"), |_| ()).unwrap();
    /// assert_eq!(f.name(), Some("hash"));
    /// ```
    pub fn name(&self) -> Option<&str> {
        self.cell().name()
    }

    /// The current state.
    ///
    /// ```
    /// # use taskhost_executor::{Executor, FutureState};
    /// let pool = Executor::new(1).unwrap();
    /// let f = pool.submit(|| ()).unwrap();
    /// f.result(None).unwrap();
    /// assert_eq!(f.state(), FutureState::Finished);
    /// ```
    pub fn state(&self) -> FutureState {
        match self.cell().load() {
            PENDING => FutureState::Pending,
            RUNNING => FutureState::Running,
            FINISHED | FAILED | BROKEN => FutureState::Finished,
            _ => FutureState::Cancelled,
        }
    }

    /// Cancels the task if it has not started: returns true while pending (and again if already
    /// cancelled), false once running or finished. Python's meaning; to stop a running task use
    /// [`request_stop`](Self::request_stop). A cancelled future is done at once: waiters, `wait`
    /// and `as_completed` see it immediately, and its done callbacks run in this thread.
    ///
    /// ```
    /// # use taskhost_executor::Executor;
    /// let pool = Executor::new(1).unwrap();
    /// let (tx, rx) = std::sync::mpsc::channel::<()>();
    /// let blocker = pool.submit(move || rx.recv().ok()).unwrap();
    /// let queued = pool.submit(|| 1).unwrap();
    /// assert!(queued.cancel() && queued.cancel() && queued.cancelled());
    /// tx.send(()).unwrap();
    /// blocker.result(None).unwrap();
    /// assert!(!blocker.cancel());
    /// ```
    pub fn cancel(&self) -> bool {
        // The pool counts the cancellation (and emits `task.cancelled`) when the item leaves
        // the queue, so that a future need not hold a reference to its pool.
        self.cell()
            .cancel_pending(CancelReason::User, &|| self.clone())
            || self.cancelled()
    }

    /// Whether the future ended cancelled (for any [`CancelReason`]).
    ///
    /// ```
    /// # use taskhost_executor::Executor;
    /// let pool = Executor::new(1).unwrap();
    /// let f = pool.submit(|| ()).unwrap();
    /// f.result(None).unwrap();
    /// assert!(!f.cancelled());
    /// ```
    pub fn cancelled(&self) -> bool {
        self.cell().load() >= CANCELLED_USER
    }

    /// Why the future was cancelled, if it was.
    ///
    /// ```
    /// # use taskhost_executor::{Executor, CancelReason};
    /// let pool = Executor::new(1).unwrap();
    /// let (tx, rx) = std::sync::mpsc::channel::<()>();
    /// let _blocker = pool.submit(move || rx.recv().ok()).unwrap();
    /// let f = pool.submit(|| ()).unwrap();
    /// f.cancel();
    /// assert_eq!(f.cancel_reason(), Some(CancelReason::User));
    /// tx.send(()).unwrap();
    /// ```
    pub fn cancel_reason(&self) -> Option<CancelReason> {
        match self.cell().load() {
            CANCELLED_USER => Some(CancelReason::User),
            CANCELLED_SHUTDOWN => Some(CancelReason::Shutdown),
            CANCELLED_STOP => Some(CancelReason::StopRequested),
            _ => None,
        }
    }

    /// Whether a worker is running the task now.
    ///
    /// ```
    /// # use taskhost_executor::Executor;
    /// let pool = Executor::new(1).unwrap();
    /// let f = pool.submit(|| ()).unwrap();
    /// f.result(None).unwrap();
    /// assert!(!f.running());
    /// ```
    pub fn running(&self) -> bool {
        self.cell().load() == RUNNING
    }

    /// Whether the future is finished or cancelled.
    ///
    /// ```
    /// # use taskhost_executor::Executor;
    /// let pool = Executor::new(1).unwrap();
    /// let f = pool.submit(|| ()).unwrap();
    /// f.result(None).unwrap();
    /// assert!(f.done());
    /// ```
    pub fn done(&self) -> bool {
        is_done(self.cell().load())
    }

    /// Blocks until the task is done or `timeout` passes (`None`: no limit), then returns a
    /// reference to its value, or why there is none. A timeout leaves the future unchanged; the
    /// result can be read any number of times.
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskhost_executor::{Executor, ResultError};
    ///
    /// let pool = Executor::new(1).unwrap();
    /// let slow = pool.submit(|| std::thread::sleep(Duration::from_millis(200))).unwrap();
    /// assert_eq!(slow.result(Some(Duration::from_millis(1))), Err(ResultError::Timeout));
    /// assert_eq!(slow.result(None), Ok(&()));
    /// let boom = pool.submit(|| -> u8 { panic!("boom") }).unwrap();
    /// assert_eq!(boom.result(None), Err(ResultError::Panicked("boom".into())));
    /// ```
    pub fn result(&self, timeout: Option<Duration>) -> Result<&T, ResultError> {
        let cell = self.cell();
        if !cell.wait_done(timeout) {
            return Err(ResultError::Timeout);
        }
        match cell.load() {
            FINISHED | FAILED | BROKEN => match cell.outcome() {
                Some(Outcome::Value(value)) => Ok(value),
                Some(Outcome::Panicked(message)) => Err(ResultError::Panicked(message.0.clone())),
                Some(Outcome::Broken(message)) => Err(ResultError::BrokenPool(message.0.clone())),
                None => unreachable!("a finished future has an outcome"),
            },
            _ => Err(ResultError::Cancelled(
                self.cancel_reason().unwrap_or(CancelReason::User),
            )),
        }
    }

    /// Like Python's `exception()`: blocks like [`result`](Self::result), then returns the task's
    /// error (`None` if it returned normally). Errors with `Timeout` or `Cancelled`.
    ///
    /// ```
    /// # use taskhost_executor::{Executor, TaskError};
    /// let pool = Executor::new(1).unwrap();
    /// let ok = pool.submit(|| 1).unwrap();
    /// assert_eq!(ok.exception(None), Ok(None));
    /// let bad = pool.submit(|| -> u8 { panic!("bad") }).unwrap();
    /// assert_eq!(bad.exception(None), Ok(Some(TaskError::Panicked("bad".into()))));
    /// ```
    pub fn exception(&self, timeout: Option<Duration>) -> Result<Option<TaskError>, ResultError> {
        match self.result(timeout) {
            Ok(_) => Ok(None),
            Err(ResultError::Panicked(message)) => Ok(Some(TaskError::Panicked(message))),
            Err(ResultError::BrokenPool(message)) => Ok(Some(TaskError::BrokenPool(message))),
            Err(other) => Err(other),
        }
    }

    /// Adds a callback that runs once the future is done, in the thread that completes (or
    /// cancels) it, or at once in this thread if it is already done. Callbacks run in the order
    /// added; one that panics is logged (event `callback.panicked`) and the others still run.
    ///
    /// ```
    /// use std::sync::mpsc::channel;
    /// use taskhost_executor::Executor;
    ///
    /// let pool = Executor::new(1).unwrap();
    /// let (tx, rx) = channel();
    /// let f = pool.submit(|| 5).unwrap();
    /// f.add_done_callback(move |f| tx.send(*f.result(None).unwrap()).unwrap());
    /// assert_eq!(rx.recv().unwrap(), 5);
    /// ```
    pub fn add_done_callback<C>(&self, callback: C)
    where
        C: FnOnce(&TaskFuture<T>) + Send + 'static,
    {
        self.cell().add_callback(self, Box::new(callback));
    }

    /// Asks the task to stop cooperatively: sets its [`CancellationToken`](crate::CancellationToken).
    /// A task that then sees [`TaskContext::is_cancelled`](crate::TaskContext::is_cancelled)
    /// return true and returns ends as cancelled with [`CancelReason::StopRequested`]; a task that
    /// never looks finishes normally. Works on pending tasks too (they see it when they start).
    /// Returns false if the future was already done.
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskhost_executor::{CancelReason, Executor, ResultError, TaskOptions};
    ///
    /// let pool = Executor::new(1).unwrap();
    /// let f = pool
    ///     .submit_with(TaskOptions::new(), |ctx| {
    ///         while !ctx.is_cancelled() {
    ///             std::thread::sleep(Duration::from_millis(1));
    ///         }
    ///     })
    ///     .unwrap();
    /// assert!(f.request_stop());
    /// assert_eq!(f.result(None), Err(ResultError::Cancelled(CancelReason::StopRequested)));
    /// ```
    pub fn request_stop(&self) -> bool {
        self.cell().request_stop();
        !self.done()
    }

    /// Whether [`request_stop`](Self::request_stop) was called.
    ///
    /// ```
    /// # use taskhost_executor::Executor;
    /// let pool = Executor::new(1).unwrap();
    /// let f = pool.submit(|| ()).unwrap();
    /// f.request_stop();
    /// assert!(f.stop_requested());
    /// ```
    pub fn stop_requested(&self) -> bool {
        self.cell().stop_requested()
    }

    /// How long the task waited in the queue and how long it ran (each `None` until known, and
    /// always `None` unless the pool was built with
    /// [`task_timings(true)`](crate::ExecutorBuilder::task_timings)).
    ///
    /// ```
    /// # use taskhost_executor::Executor;
    /// let pool = Executor::builder().max_workers(1).task_timings(true).build().unwrap();
    /// let f = pool.submit(|| std::thread::sleep(std::time::Duration::from_millis(5))).unwrap();
    /// f.result(None).unwrap();
    /// assert!(f.timings().run_time.unwrap() >= std::time::Duration::from_millis(5));
    /// ```
    pub fn timings(&self) -> TaskTimings {
        self.cell().timings.read()
    }

    /// Registers a multi-future watcher; false if the future is already done.
    pub(crate) fn watch(&self, watch: &Arc<Watch>, index: usize) -> bool {
        self.cell().add_watcher(watch, index)
    }

    /// Removes a watcher registered with [`watch`](Self::watch).
    pub(crate) fn unwatch(&self, watch: &Arc<Watch>) {
        self.cell().remove_watcher(watch);
    }
}

impl<T: Clone + Send + Sync + 'static> std::future::Future for TaskFuture<T> {
    type Output = Result<T, ResultError>;

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if !self.done() && self.cell().add_waker(cx.waker()) {
            return Poll::Pending;
        }
        Poll::Ready(self.result(Some(Duration::ZERO)).cloned())
    }
}

/// Whatever holds a future's cell: the work item that also holds the closure, so that the task
/// and its future are one allocation.
pub(crate) trait HoldsFutureCell<T>: Send + Sync + 'static {
    fn future_cell(&self) -> &FutureCell<T, TaskFuture<T>>;
}
