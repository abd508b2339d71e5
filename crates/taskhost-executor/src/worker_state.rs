//! State per worker thread: made when the worker starts, handed to its tasks, dropped when it
//! exits ([`ExecutorBuilder::worker_state`](crate::ExecutorBuilder::worker_state)). A
//! connection, a scratch buffer, or a child process that serves one worker's tasks.

use std::any::Any;
use std::cell::RefCell;
use std::fmt;

use crate::sync::Arc;

/// Makes one worker's state.
pub(crate) type MakeState = Arc<dyn Fn(&WorkerInfo<'_>) -> Box<dyn Any> + Send + Sync + 'static>;

thread_local! {
    /// The state of the worker running on this thread (none on other threads).
    static STATE: RefCell<Option<Box<dyn Any>>> = const { RefCell::new(None) };
}

/// Which worker a state is being made for, given to the function of
/// [`ExecutorBuilder::worker_state`](crate::ExecutorBuilder::worker_state).
///
/// ```
/// use taskhost_executor::{with_worker_state, Executor};
///
/// let pool = Executor::builder()
///     .name("db")
///     .worker_state(|w| format!("{} on {}", w.worker(), w.pool()))
///     .build()
///     .unwrap();
/// let f = pool.submit(|| with_worker_state(|s: &mut String| s.clone())).unwrap();
/// assert_eq!(f.result(None).unwrap().as_deref(), Some("db_0 on db"));
/// ```
pub struct WorkerInfo<'a> {
    pub(crate) pool: &'a str,
    pub(crate) worker: &'a str,
}

impl WorkerInfo<'_> {
    /// The pool's name.
    ///
    /// ```
    /// # use taskhost_executor::Executor;
    /// let pool = Executor::builder().name("io").worker_state(|w| w.pool().len()).build().unwrap();
    /// # drop(pool);
    /// ```
    pub fn pool(&self) -> &str {
        self.pool
    }

    /// The worker's thread name (`{prefix}_{n}`).
    ///
    /// ```
    /// # use taskhost_executor::Executor;
    /// let pool = Executor::builder().worker_state(|w| w.worker().to_owned()).build().unwrap();
    /// # drop(pool);
    /// ```
    pub fn worker(&self) -> &str {
        self.worker
    }
}

impl fmt::Debug for WorkerInfo<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkerInfo")
            .field("pool", &self.pool)
            .field("worker", &self.worker)
            .finish()
    }
}

/// Runs `f` on the state of the worker running this task, if the pool was built with
/// [`worker_state`](crate::ExecutorBuilder::worker_state) of type `S`. `None` outside a worker
/// (a task the caller ran itself under [`WhenFull::CallerRuns`](crate::WhenFull), any other
/// thread), when the state is of another type, or from inside `f` itself (no second `&mut`).
///
/// Tasks on one worker run one after another, so `f` has the state to itself.
///
/// ```
/// use taskhost_executor::{with_worker_state, Executor};
///
/// let pool = Executor::builder().max_workers(1).worker_state(|_| 0u32).build().unwrap();
/// for _ in 0..3 {
///     pool.submit(|| with_worker_state(|n: &mut u32| *n += 1)).unwrap().result(None).unwrap();
/// }
/// let seen = pool.submit(|| with_worker_state(|n: &mut u32| *n)).unwrap();
/// assert_eq!(*seen.result(None).unwrap(), Some(3));
/// assert_eq!(with_worker_state(|n: &mut u32| *n), None); // not a worker thread
/// ```
pub fn with_worker_state<S: 'static, R>(f: impl FnOnce(&mut S) -> R) -> Option<R> {
    STATE
        .try_with(|state| {
            let mut slot = state.try_borrow_mut().ok()?;
            let state = slot.as_mut()?.downcast_mut::<S>()?;
            Some(f(state))
        })
        .ok()
        .flatten()
}

/// Installs this worker's state; the returned guard drops it when the worker exits, however it
/// exits (retirement, shutdown, a broken pool, unwinding).
pub(crate) fn install(state: Box<dyn Any>, pool: &str) -> StateGuard {
    STATE.with(|slot| *slot.borrow_mut() = Some(state));
    StateGuard {
        pool: pool.to_owned(),
    }
}

/// Drops the worker's state when the worker exits.
pub(crate) struct StateGuard {
    pool: String,
}

impl Drop for StateGuard {
    fn drop(&mut self) {
        let state = STATE
            .try_with(|slot| slot.try_borrow_mut().ok().and_then(|mut s| s.take()))
            .ok()
            .flatten();
        // User data: a panicking `Drop` must not take the exiting worker's bookkeeping with it.
        crate::events::drop_contained(state, &self.pool, 0);
    }
}
