//! Results handed out by ownership: [`Executor::submit_owned`] for a task whose value is `Send`
//! but not `Sync` (a `Cell`, an `mpsc::Receiver`), which a shared [`TaskFuture`] cannot hold
//! because any of its clones may read the value from any thread.

use std::fmt;
use std::ops::Deref;
use std::time::Duration;

use crate::context::{TaskContext, TaskOptions};
use crate::error::{ResultError, SubmitError};
use crate::executor::Executor;
use crate::future::TaskFuture;
use crate::job::{Plain, TaskFn, WithContext};
use crate::sync::{lock, Mutex};

/// The value of an owned task, in its future's slot: it can only be moved out, by the one
/// [`OwnedFuture`], so the value itself never needs `Sync`.
pub struct Owned<U>(Mutex<Option<U>>);

impl<U> fmt::Debug for Owned<U> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Owned(..)")
    }
}

/// The sole handle to a task submitted with [`Executor::submit_owned`]: not `Clone`, and
/// [`into_result`](Self::into_result) moves the value out. It derefs to the task's
/// [`TaskFuture`] for everything else (`cancel`, `done`, `request_stop`, and `wait` or
/// `as_completed` over clones of it); those clones can watch the task but never read the value.
///
/// Which to use: [`submit`](Executor::submit) when the value is `Sync` or should be read more
/// than once or by several threads; `submit_owned` when it is only `Send`, or when moving it
/// out is all that is needed (no `Clone`, no reference held into the future).
///
/// ```
/// use std::cell::Cell;
/// use taskhost_executor::Executor;
///
/// let pool = Executor::new(1).unwrap();
/// let f = pool.submit_owned(|| Cell::new(41)).unwrap();   // `Cell` is `Send`, not `Sync`
/// assert!(f.wait(None) && !f.cancelled());
/// let cell = f.into_result().unwrap();
/// cell.set(cell.get() + 1);
/// assert_eq!(cell.get(), 42);
/// ```
pub struct OwnedFuture<U: Send + 'static> {
    future: TaskFuture<Owned<U>>,
}

impl<U: Send + 'static> fmt::Debug for OwnedFuture<U> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("OwnedFuture").field(&self.future).finish()
    }
}

impl<U: Send + 'static> Deref for OwnedFuture<U> {
    type Target = TaskFuture<Owned<U>>;

    fn deref(&self) -> &Self::Target {
        &self.future
    }
}

impl<U: Send + 'static> OwnedFuture<U> {
    /// The task's future, e.g. to clone into a list for [`wait`](crate::wait) or
    /// [`as_completed`](crate::as_completed).
    ///
    /// ```
    /// use taskhost_executor::{wait, Executor, ReturnWhen};
    /// let pool = Executor::new(1).unwrap();
    /// let f = pool.submit_owned(|| std::rc::Rc::new(1).as_ref() + 1).unwrap();
    /// let r = wait(&[f.as_future().clone()], None, ReturnWhen::AllCompleted);
    /// assert_eq!(r.done.len(), 1);
    /// assert_eq!(f.into_result(), Ok(2));
    /// ```
    pub fn as_future(&self) -> &TaskFuture<Owned<U>> {
        &self.future
    }

    /// Blocks until the task is done or `timeout` passes (`None`: no limit); true if done.
    ///
    /// ```
    /// use std::time::Duration;
    /// let pool = taskhost_executor::Executor::new(1).unwrap();
    /// let f = pool.submit_owned(|| std::thread::sleep(Duration::from_millis(100))).unwrap();
    /// assert!(!f.wait(Some(Duration::from_millis(1))));
    /// assert!(f.wait(None));
    /// ```
    pub fn wait(&self, timeout: Option<Duration>) -> bool {
        !matches!(self.future.result(timeout), Err(ResultError::Timeout))
    }

    /// Blocks until the task is done, then moves its value out, or says why there is none (as
    /// [`TaskFuture::result`] does). To bound the wait, call [`wait`](Self::wait) first.
    ///
    /// ```
    /// use taskhost_executor::{Executor, ResultError};
    /// let pool = Executor::new(1).unwrap();
    /// let (tx, rx) = std::sync::mpsc::channel::<u8>();
    /// let f = pool.submit_owned(move || { tx.send(9).unwrap(); rx }).unwrap();
    /// assert_eq!(f.into_result().unwrap().recv(), Ok(9));
    /// let boom = pool.submit_owned(|| -> u8 { panic!("boom") }).unwrap();
    /// assert_eq!(boom.into_result(), Err(ResultError::Panicked("boom".into())));
    /// ```
    pub fn into_result(self) -> Result<U, ResultError> {
        let owned = self.future.result(None)?;
        // This handle is the only one that takes, and it is consumed by taking.
        Ok(lock(&owned.0)
            .take()
            .unwrap_or_else(|| unreachable!("an owned value is taken once, by its one handle")))
    }
}

impl Executor {
    /// Like [`submit`](Self::submit), for a value that is `Send` but need not be `Sync`: the
    /// returned [`OwnedFuture`] is the only handle that can read it, by moving it out.
    ///
    /// ```
    /// let pool = taskhost_executor::Executor::new(1).unwrap();
    /// let f = pool.submit_owned(|| std::cell::RefCell::new(vec![1, 2])).unwrap();
    /// assert_eq!(f.into_result().unwrap().into_inner(), [1, 2]);
    /// ```
    pub fn submit_owned<F, U>(&self, f: F) -> Result<OwnedFuture<U>, SubmitError<F>>
    where
        F: FnOnce() -> U + Send + 'static,
        U: Send + 'static,
    {
        self.inner
            .submit_future(None, IntoOwned(Plain(f)))
            .map(|future| OwnedFuture { future })
            .map_err(|e| e.map(|task| task.0 .0))
    }

    /// Like [`submit_with`](Self::submit_with), for a value that is `Send` but need not be
    /// `Sync` (see [`submit_owned`](Self::submit_owned)).
    ///
    /// ```
    /// use taskhost_executor::{Executor, TaskOptions};
    /// let pool = Executor::new(1).unwrap();
    /// let f = pool
    ///     .submit_owned_with(TaskOptions::new().name("cell"), |ctx| std::cell::Cell::new(ctx.task_id()))
    ///     .unwrap();
    /// let id = f.id();
    /// assert_eq!(f.into_result().unwrap().get(), id);
    /// ```
    pub fn submit_owned_with<F, U>(
        &self,
        options: TaskOptions,
        f: F,
    ) -> Result<OwnedFuture<U>, SubmitError<F>>
    where
        F: FnOnce(&TaskContext) -> U + Send + 'static,
        U: Send + 'static,
    {
        self.inner
            .submit_future(options.name, IntoOwned(WithContext(f)))
            .map(|future| OwnedFuture { future })
            .map_err(|e| e.map(|task| task.0 .0))
    }
}

/// A task body whose value goes into an [`Owned`] slot.
struct IntoOwned<C>(C);

impl<C, U> TaskFn<Owned<U>> for IntoOwned<C>
where
    C: TaskFn<U>,
    U: Send + 'static,
{
    fn call(self, context: &dyn Fn() -> TaskContext) -> Owned<U> {
        Owned(Mutex::new(Some(self.0.call(context))))
    }
}
