//! The errors of a running pool: why a task has no value, why a submit was refused, why a
//! future was cancelled. Messages are lowercase with no trailing period. (`BuildError` is in
//! `builder.rs`, beside the limits it names.)

use std::fmt;

/// Why a future ended cancelled.
///
/// ```
/// use taskhost_executor::CancelReason;
/// assert_eq!(CancelReason::StopRequested.as_str(), "stop_requested");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CancelReason {
    /// [`TaskFuture::cancel`](crate::TaskFuture::cancel) while it was pending.
    User,
    /// `shutdown(.., cancel_futures = true)` while it was queued.
    Shutdown,
    /// The task honoured a stop request.
    StopRequested,
}

impl CancelReason {
    /// The reason as written in the `reason` field of the `task.cancelled` event.
    ///
    /// ```
    /// assert_eq!(taskhost_executor::CancelReason::User.as_str(), "user");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            CancelReason::User => "user",
            CancelReason::Shutdown => "shutdown",
            CancelReason::StopRequested => "stop_requested",
        }
    }
}

impl fmt::Display for CancelReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why [`TaskFuture::result`](crate::TaskFuture::result) has no value.
///
/// ```
/// use taskhost_executor::{CancelReason, ResultError};
/// let e = ResultError::Cancelled(CancelReason::User);
/// assert_eq!(e.to_string(), "the task was cancelled (user)");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResultError {
    /// The timeout passed before the task was done; the future is unchanged.
    Timeout,
    /// The future was cancelled.
    Cancelled(CancelReason),
    /// The task panicked; the panic message.
    Panicked(String),
    /// The task never ran because the pool broke; the reason.
    BrokenPool(String),
    /// The item was never submitted: [`BufferedMap`](crate::BufferedMap) could not submit it
    /// (the pool was shut down or broke while the results were being read); the refusal.
    NotSubmitted(String),
}

impl fmt::Display for ResultError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResultError::Timeout => f.write_str("timed out waiting for the task"),
            ResultError::Cancelled(reason) => write!(f, "the task was cancelled ({reason})"),
            ResultError::Panicked(message) => write!(f, "the task panicked: {message}"),
            ResultError::BrokenPool(message) => write!(f, "the pool is broken: {message}"),
            ResultError::NotSubmitted(refusal) => {
                write!(f, "the item was not submitted: {refusal}")
            }
        }
    }
}

impl std::error::Error for ResultError {}

/// The error a finished task left behind, from [`TaskFuture::exception`](crate::TaskFuture::exception).
///
/// ```
/// use taskhost_executor::TaskError;
/// assert_eq!(TaskError::Panicked("x".into()).to_string(), "the task panicked: x");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskError {
    /// The task panicked; the panic message.
    Panicked(String),
    /// The task never ran because the pool broke; the reason.
    BrokenPool(String),
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskError::Panicked(message) => write!(f, "the task panicked: {message}"),
            TaskError::BrokenPool(message) => write!(f, "the pool is broken: {message}"),
        }
    }
}

impl std::error::Error for TaskError {}

/// Why a submission was refused. Each variant hands the closure back.
///
/// ```
/// use taskhost_executor::{Executor, SubmitError};
///
/// let pool = Executor::new(1).unwrap();
/// pool.shutdown_and_wait();
/// let err = pool.submit(|| 1).unwrap_err();
/// assert_eq!(err.to_string(), "cannot submit: the pool has been shut down");
/// let f = err.into_inner();
/// assert_eq!(f(), 1);
/// ```
pub enum SubmitError<F> {
    /// The pool was shut down.
    ShutDown(F),
    /// The pool is broken (an initializer failed); the reason.
    BrokenPool(F, String),
    /// The bounded queue was full and the policy is [`WhenFull::Reject`](crate::WhenFull::Reject).
    QueueFull(F),
}

impl<F> SubmitError<F> {
    /// The closure that was not submitted.
    ///
    /// ```
    /// # use taskhost_executor::SubmitError;
    /// let e = SubmitError::QueueFull(7);
    /// assert_eq!(e.into_inner(), 7);
    /// ```
    pub fn into_inner(self) -> F {
        match self {
            SubmitError::ShutDown(f)
            | SubmitError::BrokenPool(f, _)
            | SubmitError::QueueFull(f) => f,
        }
    }

    /// The same error with the closure replaced by `g(closure)`.
    ///
    /// ```
    /// # use taskhost_executor::SubmitError;
    /// let e = SubmitError::QueueFull(7).map(|_| ());
    /// assert!(matches!(e, SubmitError::QueueFull(())));
    /// ```
    pub fn map<G>(self, g: impl FnOnce(F) -> G) -> SubmitError<G> {
        match self {
            SubmitError::ShutDown(f) => SubmitError::ShutDown(g(f)),
            SubmitError::BrokenPool(f, why) => SubmitError::BrokenPool(g(f), why),
            SubmitError::QueueFull(f) => SubmitError::QueueFull(g(f)),
        }
    }

    /// The reason as written in the `reason` field of the `task.rejected` event.
    ///
    /// ```
    /// # use taskhost_executor::SubmitError;
    /// assert_eq!(SubmitError::QueueFull(()).reason(), "queue_full");
    /// ```
    pub fn reason(&self) -> &'static str {
        match self {
            SubmitError::ShutDown(_) => "shut_down",
            SubmitError::BrokenPool(..) => "broken_pool",
            SubmitError::QueueFull(_) => "queue_full",
        }
    }
}

impl<F> fmt::Debug for SubmitError<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SubmitError::ShutDown(_) => f.write_str("ShutDown(..)"),
            SubmitError::BrokenPool(_, why) => write!(f, "BrokenPool(.., {why:?})"),
            SubmitError::QueueFull(_) => f.write_str("QueueFull(..)"),
        }
    }
}

impl<F> fmt::Display for SubmitError<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SubmitError::ShutDown(_) => f.write_str("cannot submit: the pool has been shut down"),
            SubmitError::BrokenPool(_, why) => {
                write!(f, "cannot submit: the pool is broken: {why}")
            }
            SubmitError::QueueFull(_) => f.write_str("cannot submit: the queue is full"),
        }
    }
}

impl<F> std::error::Error for SubmitError<F> {}

/// Why [`Executor::map_buffered`](crate::Executor::map_buffered) returned no iterator. The
/// refusal hands the item back, as [`SubmitError`] does.
///
/// ```
/// use taskhost_executor::{Executor, MapError};
/// let pool = Executor::new(1).unwrap();
/// let err = pool.map_buffered(|x: u8| x, [1], None, 0).unwrap_err();
/// assert!(matches!(err, MapError::ZeroBufferSize));
/// assert_eq!(err.to_string(), "buffersize must be at least 1, found 0");
/// ```
pub enum MapError<X> {
    /// The buffer size was 0 (Python raises `ValueError`).
    ZeroBufferSize,
    /// A submission of the first buffer was refused; the futures already submitted were
    /// cancelled.
    Refused(SubmitError<X>),
}

impl<X> fmt::Debug for MapError<X> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MapError::ZeroBufferSize => f.write_str("ZeroBufferSize"),
            MapError::Refused(error) => write!(f, "Refused({error:?})"),
        }
    }
}

impl<X> fmt::Display for MapError<X> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MapError::ZeroBufferSize => f.write_str("buffersize must be at least 1, found 0"),
            MapError::Refused(error) => error.fmt(f),
        }
    }
}

impl<X> std::error::Error for MapError<X> {}

/// The timeout error of [`as_completed`](crate::as_completed): how many futures were unfinished.
///
/// ```
/// let e = taskhost_executor::AsCompletedTimeout { unfinished: 2, total: 5 };
/// assert_eq!(e.to_string(), "timed out: 2 of 5 futures unfinished");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AsCompletedTimeout {
    /// Futures not done when the deadline passed.
    pub unfinished: usize,
    /// Futures given to `as_completed`.
    pub total: usize,
}

impl fmt::Display for AsCompletedTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "timed out: {} of {} futures unfinished",
            self.unfinished, self.total
        )
    }
}

impl std::error::Error for AsCompletedTimeout {}
