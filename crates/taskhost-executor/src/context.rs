//! What a task can see of itself: [`TaskContext`], [`CancellationToken`], and [`TaskOptions`].

use std::fmt;

use crate::sync::Arc;

/// The source behind a cancellation token (the task's shared future state).
pub(crate) trait StopSource: Send + Sync + 'static {
    fn stop_requested(&self) -> bool;
    fn mark_observed(&self);
}

/// Options for one task, given to [`Executor::submit_with`](crate::Executor::submit_with).
///
/// ```
/// use taskhost_executor::{Executor, TaskOptions};
///
/// let pool = Executor::new(1).unwrap();
/// let f = pool.submit_with(TaskOptions::new().name("resize"), |_ctx| 1).unwrap();
/// assert_eq!(f.name(), Some("resize"));
/// ```
#[derive(Debug, Clone, Default)]
pub struct TaskOptions {
    pub(crate) name: Option<Arc<str>>,
}

impl TaskOptions {
    /// Options with no name.
    ///
    /// ```
    /// let options = taskhost_executor::TaskOptions::new();
    /// # let _ = options;
    /// ```
    pub fn new() -> Self {
        TaskOptions::default()
    }

    /// Names the task: the name appears as the `task` field of its tracing events and span, in
    /// [`ShutdownReport`](crate::ShutdownReport), and from [`TaskFuture::name`](crate::TaskFuture::name).
    /// Default: no name.
    ///
    /// ```
    /// let options = taskhost_executor::TaskOptions::new().name("checksum/sha256");
    /// # let _ = options;
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(Arc::from(name.into()));
        self
    }
}

/// A task's view of itself, passed to closures given to
/// [`Executor::submit_with`](crate::Executor::submit_with).
///
/// ```
/// use taskhost_executor::{Executor, TaskOptions};
///
/// let pool = Executor::new(1).unwrap();
/// let f = pool.submit_with(TaskOptions::new(), |ctx| (ctx.task_id(), ctx.is_cancelled())).unwrap();
/// assert_eq!(*f.result(None).unwrap(), (f.id(), false));
/// ```
pub struct TaskContext {
    pub(crate) task_id: u64,
    pub(crate) source: Arc<dyn StopSource>,
}

impl fmt::Debug for TaskContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskContext")
            .field("task_id", &self.task_id)
            .field("stop_requested", &self.source.stop_requested())
            .finish()
    }
}

impl TaskContext {
    /// Whether a stop was requested ([`TaskFuture::request_stop`](crate::TaskFuture::request_stop)).
    ///
    /// Seeing `true` here counts as *observing* the request: if the task then returns, its
    /// future ends as cancelled with [`CancelReason::StopRequested`](crate::CancelReason) and the
    /// value is dropped. A task that never sees `true` finishes normally.
    ///
    /// ```
    /// # use taskhost_executor::{Executor, TaskOptions};
    /// let pool = Executor::new(1).unwrap();
    /// let f = pool.submit_with(TaskOptions::new(), |ctx| ctx.is_cancelled()).unwrap();
    /// assert_eq!(f.result(None), Ok(&false));
    /// ```
    pub fn is_cancelled(&self) -> bool {
        observe(&*self.source)
    }

    /// The task's id (the same as [`TaskFuture::id`](crate::TaskFuture::id)).
    ///
    /// ```
    /// # use taskhost_executor::{Executor, TaskOptions};
    /// let pool = Executor::new(1).unwrap();
    /// let f = pool.submit_with(TaskOptions::new(), |ctx| ctx.task_id()).unwrap();
    /// assert_eq!(*f.result(None).unwrap(), f.id());
    /// ```
    pub fn task_id(&self) -> u64 {
        self.task_id
    }

    /// A token to hand to code that should watch for the stop request (it can outlive the task).
    ///
    /// ```
    /// # use taskhost_executor::{Executor, TaskOptions};
    /// let pool = Executor::new(1).unwrap();
    /// let f = pool.submit_with(TaskOptions::new(), |ctx| ctx.token()).unwrap();
    /// let token = f.result(None).unwrap().clone();
    /// assert!(!token.is_cancelled());
    /// ```
    pub fn token(&self) -> CancellationToken {
        CancellationToken {
            source: Arc::clone(&self.source),
        }
    }
}

fn observe(source: &dyn StopSource) -> bool {
    if source.stop_requested() {
        source.mark_observed();
        true
    } else {
        false
    }
}

/// A cheap, cloneable view of one task's stop request. `Clone + Send + Sync + 'static`.
///
/// Seeing `true` from [`is_cancelled`](Self::is_cancelled) counts as observing the request,
/// exactly like [`TaskContext::is_cancelled`].
///
/// ```
/// use taskhost_executor::{Executor, TaskOptions};
///
/// let pool = Executor::new(1).unwrap();
/// let f = pool.submit_with(TaskOptions::new(), |ctx| ctx.token()).unwrap();
/// let token = f.result(None).unwrap().clone();
/// f.request_stop();
/// assert!(token.is_cancelled());
/// ```
#[derive(Clone)]
pub struct CancellationToken {
    source: Arc<dyn StopSource>,
}

impl fmt::Debug for CancellationToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancellationToken")
            .field("cancelled", &self.source.stop_requested())
            .finish()
    }
}

impl CancellationToken {
    /// Whether the task's stop was requested.
    ///
    /// ```
    /// # use taskhost_executor::{Executor, TaskOptions};
    /// let pool = Executor::new(1).unwrap();
    /// let f = pool.submit_with(TaskOptions::new(), |ctx| ctx.token().is_cancelled()).unwrap();
    /// assert_eq!(f.result(None), Ok(&false));
    /// ```
    pub fn is_cancelled(&self) -> bool {
        observe(&*self.source)
    }
}
