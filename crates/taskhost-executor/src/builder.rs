//! How a pool is configured and made: [`ExecutorBuilder`] (consuming setters, each with its
//! default), the limits it checks ([`MAX_WORKERS`], [`MAX_QUEUE_CAPACITY`]) and the
//! [`BuildError`] it returns, Python's default size ([`default_max_workers`]), and the entry
//! points [`Executor::builder`] and [`Executor::new`].

use std::any::Any;
use std::fmt;
use std::time::Duration;

use crate::executor::Executor;
use crate::pool::{Initializer, PoolInner, Settings, WhenFull};
use crate::sync::Arc;
use crate::worker_state::{MakeState, WorkerInfo};

/// Builds an [`Executor`]. Setters consume and return the builder; each says its default.
///
/// ```
/// use std::time::Duration;
/// use taskhost_executor::{Executor, WhenFull};
///
/// let pool = Executor::builder()
///     .name("io")
///     .max_workers(4)
///     .idle_timeout(Some(Duration::from_secs(30)))
///     .max_tasks_per_worker(1000)
///     .queue_capacity(64)
///     .when_full(WhenFull::Block)
///     .build()
///     .unwrap();
/// assert_eq!(pool.name(), "io");
/// ```
#[derive(Clone, Default)]
pub struct ExecutorBuilder {
    name: Option<String>,
    max_workers: Option<usize>,
    thread_name_prefix: Option<String>,
    idle_timeout: Option<Duration>,
    max_tasks_per_worker: usize,
    queue_capacity: usize,
    when_full: WhenFull,
    initializer: Option<Initializer>,
    worker_state: Option<MakeState>,
    task_timings: bool,
    stack_size: Option<usize>,
}

impl fmt::Debug for ExecutorBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExecutorBuilder")
            .field("name", &self.name)
            .field("max_workers", &self.max_workers)
            .field("thread_name_prefix", &self.thread_name_prefix)
            .field("idle_timeout", &self.idle_timeout)
            .field("max_tasks_per_worker", &self.max_tasks_per_worker)
            .field("queue_capacity", &self.queue_capacity)
            .field("when_full", &self.when_full)
            .field("initializer", &self.initializer.is_some())
            .field("worker_state", &self.worker_state.is_some())
            .field("task_timings", &self.task_timings)
            .field("stack_size", &self.stack_size)
            .finish()
    }
}

/// The most worker threads a pool may have: each is an OS thread with its own stack, and a
/// larger setting is a typo (`10^9` once started a thread per item in flight), not a plan.
///
/// ```
/// use taskhost_executor::{BuildError, Executor, MAX_WORKERS};
/// let err = Executor::new(MAX_WORKERS + 1).unwrap_err();
/// assert_eq!(err, BuildError::TooManyWorkers(MAX_WORKERS + 1));
/// ```
pub const MAX_WORKERS: usize = 4096;

/// The largest bounded queue, in items. Only what is queued takes memory (a bound above a few
/// thousand places is not allocated up front); past this, use an unbounded queue (0).
///
/// ```
/// use taskhost_executor::{BuildError, Executor, MAX_QUEUE_CAPACITY};
/// let err = Executor::builder().queue_capacity(usize::MAX).build().unwrap_err();
/// assert_eq!(err, BuildError::QueueTooLarge(usize::MAX));
/// assert!(Executor::builder().queue_capacity(MAX_QUEUE_CAPACITY).build().is_ok());
/// ```
pub const MAX_QUEUE_CAPACITY: usize = 1 << 24;

/// Why an [`ExecutorBuilder`] could not build a pool.
///
/// ```
/// use taskhost_executor::{BuildError, Executor};
/// let err = Executor::new(0).unwrap_err();
/// assert_eq!(err, BuildError::ZeroWorkers);
/// assert_eq!(err.to_string(), "max_workers must be at least 1, found 0");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildError {
    /// `max_workers` was 0.
    ZeroWorkers,
    /// `max_workers` was above [`MAX_WORKERS`] (a thread each).
    TooManyWorkers(usize),
    /// `queue_capacity` was above [`MAX_QUEUE_CAPACITY`].
    QueueTooLarge(usize),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::ZeroWorkers => f.write_str("max_workers must be at least 1, found 0"),
            BuildError::TooManyWorkers(found) => write!(
                f,
                "max_workers must be at most {} (one thread each), found {found}",
                MAX_WORKERS
            ),
            BuildError::QueueTooLarge(found) => write!(
                f,
                "queue_capacity must be at most {} (0 is unbounded), found {found}",
                MAX_QUEUE_CAPACITY
            ),
        }
    }
}

impl std::error::Error for BuildError {}

/// `min(32, available_parallelism + 4)`, Python's default `max_workers`.
///
/// ```
/// let n = taskhost_executor::default_max_workers();
/// assert!((5..=32).contains(&n));
/// ```
pub fn default_max_workers() -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cpus + 4).min(32)
}

impl ExecutorBuilder {
    /// A builder with every default.
    ///
    /// ```
    /// let pool = taskhost_executor::ExecutorBuilder::new().build().unwrap();
    /// assert_eq!(pool.name(), "pool");
    /// ```
    pub fn new() -> Self {
        ExecutorBuilder::default()
    }

    /// The pool's name, the `pool` field of every tracing event. Default `"pool"`.
    ///
    /// ```
    /// let pool = taskhost_executor::Executor::builder().name("cpu").build().unwrap();
    /// assert_eq!(pool.name(), "cpu");
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The most worker threads alive at once. Default [`default_max_workers`]
    /// (`min(32, available_parallelism + 4)`); 0 makes [`build`](Self::build) fail.
    ///
    /// ```
    /// let pool = taskhost_executor::Executor::builder().max_workers(3).build().unwrap();
    /// assert_eq!(pool.max_workers(), 3);
    /// ```
    pub fn max_workers(mut self, max_workers: usize) -> Self {
        self.max_workers = Some(max_workers);
        self
    }

    /// Worker threads are named `"{prefix}_{n}"`, `n` counting from 0. Default: the pool name.
    ///
    /// ```
    /// let pool = taskhost_executor::Executor::builder().thread_name_prefix("w").build().unwrap();
    /// let f = pool.submit(|| std::thread::current().name().map(String::from)).unwrap();
    /// assert_eq!(f.result(None).unwrap().as_deref(), Some("w_0"));
    /// ```
    pub fn thread_name_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.thread_name_prefix = Some(prefix.into());
        self
    }

    /// Idle workers retire after this long without work; the next submit starts one again.
    /// Default `None`: idle workers block forever and never retire (Python's behaviour).
    /// `Some(Duration::ZERO)` retires a worker as soon as it finds the queue empty.
    ///
    /// ```
    /// use std::time::Duration;
    /// let pool = taskhost_executor::Executor::builder()
    ///     .idle_timeout(Some(Duration::from_secs(10)))
    ///     .build()
    ///     .unwrap();
    /// # drop(pool);
    /// ```
    pub fn idle_timeout(mut self, idle_timeout: Option<Duration>) -> Self {
        self.idle_timeout = idle_timeout;
        self
    }

    /// A worker retires after running this many tasks, and a new one takes its place if work
    /// remains. Default 0: unlimited.
    ///
    /// ```
    /// let pool = taskhost_executor::Executor::builder().max_tasks_per_worker(100).build().unwrap();
    /// # drop(pool);
    /// ```
    pub fn max_tasks_per_worker(mut self, max_tasks: usize) -> Self {
        self.max_tasks_per_worker = max_tasks;
        self
    }

    /// Bounds the queue to this many waiting items; see [`when_full`](Self::when_full).
    /// Default 0: unbounded.
    ///
    /// ```
    /// let pool = taskhost_executor::Executor::builder().queue_capacity(16).build().unwrap();
    /// # drop(pool);
    /// ```
    pub fn queue_capacity(mut self, capacity: usize) -> Self {
        self.queue_capacity = capacity;
        self
    }

    /// What `submit` does when a bounded queue is full. Default [`WhenFull::Block`]. Has no
    /// effect on an unbounded queue.
    ///
    /// ```
    /// use taskhost_executor::{Executor, WhenFull};
    /// let pool = Executor::builder().queue_capacity(1).when_full(WhenFull::Reject).build().unwrap();
    /// # drop(pool);
    /// ```
    pub fn when_full(mut self, policy: WhenFull) -> Self {
        self.when_full = policy;
        self
    }

    /// Runs once in each worker thread before its first task. If it returns `Err` (or panics)
    /// the pool is broken: queued futures fail with
    /// [`ResultError::BrokenPool`](crate::ResultError::BrokenPool) and every later submit is
    /// refused with [`SubmitError::BrokenPool`](crate::SubmitError::BrokenPool). Default: none.
    ///
    /// ```
    /// use taskhost_executor::{Executor, ResultError};
    /// let pool = Executor::builder().initializer(|| Err("no GPU".to_string())).build().unwrap();
    /// let f = pool.submit(|| 1).unwrap();
    /// assert_eq!(f.result(None), Err(ResultError::BrokenPool("no GPU".into())));
    /// ```
    pub fn initializer<I>(mut self, initializer: I) -> Self
    where
        I: Fn() -> Result<(), String> + Send + Sync + 'static,
    {
        self.initializer = Some(Arc::new(initializer));
        self
    }

    /// Gives every worker thread a state of its own: `make` runs in the worker when it starts
    /// (after the [`initializer`](Self::initializer)), its tasks reach the state with
    /// [`with_worker_state`](crate::with_worker_state), and it is dropped when the worker exits
    /// (idle retirement, recycling after [`max_tasks_per_worker`](Self::max_tasks_per_worker),
    /// shutdown), in the worker's thread. A `make` that panics breaks the pool, as a failing
    /// initializer does. Default: none.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    /// use taskhost_executor::{with_worker_state, Executor};
    ///
    /// struct Connection(Arc<AtomicUsize>);
    /// impl Drop for Connection {
    ///     fn drop(&mut self) { self.0.fetch_add(1, Ordering::SeqCst); }
    /// }
    /// let closed = Arc::new(AtomicUsize::new(0));
    /// let c = Arc::clone(&closed);
    /// let pool = Executor::builder()
    ///     .max_workers(1)
    ///     .max_tasks_per_worker(2)                 // a new worker (and connection) every 2 tasks
    ///     .worker_state(move |_| Connection(Arc::clone(&c)))
    ///     .build()
    ///     .unwrap();
    /// for _ in 0..4 {
    ///     let f = pool.submit(|| with_worker_state(|_: &mut Connection| ()).is_some()).unwrap();
    ///     assert!(*f.result(None).unwrap());
    /// }
    /// pool.shutdown_and_wait();
    /// assert_eq!(closed.load(Ordering::SeqCst), 2);
    /// ```
    pub fn worker_state<S, M>(mut self, make: M) -> Self
    where
        S: 'static,
        M: Fn(&WorkerInfo<'_>) -> S + Send + Sync + 'static,
    {
        self.worker_state = Some(Arc::new(move |info: &WorkerInfo<'_>| {
            Box::new(make(info)) as Box<dyn Any>
        }));
        self
    }

    /// Records each task's queue wait and run time, read back with
    /// [`TaskFuture::timings`](crate::TaskFuture::timings) and in the
    /// [`RunningTask::running_for`](crate::RunningTask::running_for) of a
    /// [`ShutdownReport`](crate::ShutdownReport). Default `false`: timing a task costs
    /// a clock read when it is submitted and one when it ends (together a good part of a trivial
    /// task's whole cost), so a pool that does not ask pays nothing. The `waited_us`/`ran_us`
    /// fields of the DEBUG events are filled either way whenever those events are enabled.
    ///
    /// ```
    /// use taskhost_executor::Executor;
    ///
    /// let timed = Executor::builder().task_timings(true).build().unwrap();
    /// let f = timed.submit(|| ()).unwrap();
    /// f.result(None).unwrap();
    /// assert!(f.timings().queue_wait.is_some() && f.timings().run_time.is_some());
    ///
    /// let untimed = Executor::new(1).unwrap();
    /// let f = untimed.submit(|| ()).unwrap();
    /// f.result(None).unwrap();
    /// assert_eq!(f.timings().run_time, None);
    /// ```
    pub fn task_timings(mut self, on: bool) -> Self {
        self.task_timings = on;
        self
    }

    /// The stack size of each worker thread, in bytes. Default: the platform's (std's
    /// `RUST_MIN_STACK` or 2 MiB).
    ///
    /// ```
    /// let pool = taskhost_executor::Executor::builder().stack_size(8 << 20).build().unwrap();
    /// assert_eq!(*pool.submit(|| 1).unwrap().result(None).unwrap(), 1);
    /// ```
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.stack_size = Some(bytes);
        self
    }

    /// Builds the pool. No thread starts until the first submit.
    ///
    /// ```
    /// use taskhost_executor::{BuildError, Executor};
    /// assert_eq!(Executor::builder().max_workers(0).build().unwrap_err(), BuildError::ZeroWorkers);
    /// let pool = Executor::builder().build().unwrap();
    /// assert_eq!(pool.metrics().workers_alive, 0);
    /// ```
    pub fn build(self) -> Result<Executor, BuildError> {
        let max_workers = self.max_workers.unwrap_or_else(default_max_workers);
        if max_workers == 0 {
            return Err(BuildError::ZeroWorkers);
        }
        if max_workers > MAX_WORKERS {
            return Err(BuildError::TooManyWorkers(max_workers));
        }
        if self.queue_capacity > MAX_QUEUE_CAPACITY {
            return Err(BuildError::QueueTooLarge(self.queue_capacity));
        }
        let name = self.name.unwrap_or_else(|| "pool".to_owned());
        let thread_name_prefix = self.thread_name_prefix.unwrap_or_else(|| name.clone());
        let inner = PoolInner::new(Settings {
            name,
            thread_name_prefix,
            max_workers,
            idle_timeout: self.idle_timeout,
            max_tasks_per_worker: self.max_tasks_per_worker,
            queue_capacity: self.queue_capacity,
            when_full: self.when_full,
            initializer: self.initializer,
            worker_state: self.worker_state,
            task_timings: self.task_timings,
            stack_size: self.stack_size,
        });
        Ok(Executor {
            inner: Arc::new(inner),
        })
    }
}

impl Executor {
    /// A builder with every default.
    ///
    /// ```
    /// let pool = taskhost_executor::Executor::builder().max_workers(2).build().unwrap();
    /// # drop(pool);
    /// ```
    pub fn builder() -> ExecutorBuilder {
        ExecutorBuilder::new()
    }

    /// A pool with `max_workers` threads at most and every other default; 0 is an error.
    ///
    /// ```
    /// let pool = taskhost_executor::Executor::new(2).unwrap();
    /// assert!(taskhost_executor::Executor::new(0).is_err());
    /// # drop(pool);
    /// ```
    pub fn new(max_workers: usize) -> Result<Executor, BuildError> {
        Executor::builder().max_workers(max_workers).build()
    }
}
