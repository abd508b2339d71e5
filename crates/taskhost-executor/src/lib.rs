//! A thread-pool executor with the semantics of Python's `concurrent.futures.ThreadPoolExecutor`,
//! and then some.
//!
//! This crate knows nothing of plugins, TOML or JSON: it runs closures on threads and tells you
//! how they ended. It depends on `crossbeam-channel` (the work queue) and `tracing` (events).
//!
//! # A first pool
//!
//! [`Executor::submit`] queues a closure and returns a [`TaskFuture`] at once; `result` blocks
//! until the value is there (or a timeout passes) and can be read any number of times.
//!
//! ```
//! use std::time::Duration;
//! use taskhost_executor::Executor;
//!
//! let pool = Executor::new(4).unwrap();            // at most 4 threads, none started yet
//! let answer = pool.submit(|| 6 * 7).unwrap();
//! assert_eq!(*answer.result(Some(Duration::from_secs(5))).unwrap(), 42);
//! assert!(answer.done());
//! // Dropping the pool is `shutdown_and_wait()`: queued work finishes, threads are joined.
//! ```
//!
//! Workers start on demand: a submit first tries to claim an idle worker, and starts a thread
//! only if none is idle and fewer than `max_workers` exist (default
//! `min(32, available_parallelism + 4)`). Threads are named `"{prefix}_{n}"`.
//!
//! # Failures are values
//!
//! A panicking task does not take its worker down: the panic message is in its future.
//!
//! ```
//! use taskhost_executor::{Executor, ResultError, TaskError};
//!
//! let pool = Executor::new(1).unwrap();
//! let bad = pool.submit(|| -> u32 { panic!("disk on fire") }).unwrap();
//! assert_eq!(bad.result(None), Err(ResultError::Panicked("disk on fire".into())));
//! assert_eq!(bad.exception(None), Ok(Some(TaskError::Panicked("disk on fire".into()))));
//! assert_eq!(*pool.submit(|| 1).unwrap().result(None).unwrap(), 1); // still serving
//! ```
//!
//! # Cancelling
//!
//! [`TaskFuture::cancel`] keeps Python's meaning: it succeeds only while the task is queued.
//! A cancelled future is done *at once* — [`wait`] and [`as_completed`] see it immediately.
//! To stop a task that is already running, ask it: [`TaskFuture::request_stop`] sets the
//! task's [`CancellationToken`]; a task started with [`Executor::submit_with`] sees it through
//! [`TaskContext::is_cancelled`]. A task that observed `true` and returns ends as cancelled
//! ([`CancelReason::StopRequested`]); a task that never looked finishes normally.
//!
//! ```
//! use std::time::Duration;
//! use taskhost_executor::{CancelReason, Executor, ResultError, TaskOptions};
//!
//! let pool = Executor::new(1).unwrap();
//! let crawler = pool
//!     .submit_with(TaskOptions::new().name("crawl"), |ctx| {
//!         let mut pages = 0;
//!         while !ctx.is_cancelled() {
//!             pages += 1;
//!             std::thread::sleep(Duration::from_millis(1));
//!         }
//!         pages
//!     })
//!     .unwrap();
//! let queued = pool.submit(|| "never runs").unwrap();
//! assert!(queued.cancel());                  // still queued: cancelled, done at once
//! while !crawler.running() { std::thread::yield_now(); }
//! assert!(!crawler.cancel());                // running: cancel() cannot stop it...
//! crawler.request_stop();                    // ...but it can be asked to stop
//! assert_eq!(
//!     crawler.result(None),
//!     Err(ResultError::Cancelled(CancelReason::StopRequested))
//! );
//! ```
//!
//! # Waiting on many
//!
//! [`wait`] returns the done and not-done futures ([`ReturnWhen`] says when), [`as_completed`]
//! yields them as they finish, and [`Executor::map`] yields results in input order with one
//! deadline for the whole call.
//!
//! ```
//! use taskhost_executor::{as_completed, wait, Executor, ReturnWhen};
//!
//! let pool = Executor::new(4).unwrap();
//! let futures: Vec<_> = (1..=4u64).map(|n| pool.submit(move || n * n).unwrap()).collect();
//! let sum: u64 = as_completed(&futures, None).map(|f| *f.unwrap().result(None).unwrap()).sum();
//! assert_eq!(sum, 30);
//! assert!(wait(&futures, None, ReturnWhen::AllCompleted).not_done.is_empty());
//!
//! let lengths: Vec<usize> = pool
//!     .map(|s: &str| s.len(), ["a", "bb", "ccc"], None)
//!     .unwrap()
//!     .collect::<Result<_, _>>()
//!     .unwrap();
//! assert_eq!(lengths, [1, 2, 3]);
//! ```
//!
//! # Shaping the pool
//!
//! ```
//! use std::time::Duration;
//! use taskhost_executor::{Executor, SubmitError, WhenFull};
//!
//! let pool = Executor::builder()
//!     .name("io")                                 // the `pool` field of every event
//!     .max_workers(2)
//!     .idle_timeout(Some(Duration::from_secs(30)))  // idle threads retire (default: never)
//!     .max_tasks_per_worker(10_000)               // recycle threads (default 0: never)
//!     .queue_capacity(100)                        // bounded queue (default 0: unbounded)
//!     .when_full(WhenFull::Reject)                // or Block (default), CallerRuns
//!     .initializer(|| Ok(()))                     // once per thread; Err breaks the pool
//!     .build()
//!     .unwrap();
//! pool.shutdown_and_wait();
//! match pool.submit(|| 1) {
//!     Err(SubmitError::ShutDown(f)) => assert_eq!(f(), 1), // the closure comes back
//!     _ => unreachable!(),
//! }
//! ```
//!
//! # Shutting down
//!
//! [`Executor::shutdown`]`(wait, cancel_futures)` is Python's; the same two choices by name are
//! [`Executor::shutdown_and_wait`] (`shutdown(true, false)`: queued work runs, workers are
//! joined; also what dropping the pool does) and [`Executor::shutdown_with`] with
//! [`ShutdownOptions`]. [`Executor::shutdown_timeout`] waits at most a given time and reports the
//! tasks still running.
//!
//! ```
//! use std::time::Duration;
//! use taskhost_executor::{Executor, TaskOptions};
//!
//! let pool = Executor::new(1).unwrap();
//! let (release, stuck) = std::sync::mpsc::channel::<()>();
//! let f = pool.submit_with(TaskOptions::new().name("stuck"), move |_| stuck.recv().ok()).unwrap();
//! while !f.running() { std::thread::yield_now(); }
//! let report = pool.shutdown_timeout(Duration::from_millis(10), false);
//! assert_eq!(report.still_running[0].name.as_deref(), Some("stuck"));
//! release.send(()).unwrap();
//! ```
//!
//! # Metrics and timings
//!
//! [`Executor::metrics`] returns a [`MetricsSnapshot`] (a plain `Copy` struct, a stable API);
//! [`TaskFuture::timings`] gives one task's queue wait and run time, in a pool built with
//! [`ExecutorBuilder::task_timings`] (off by default: it costs two clock reads per task).
//!
//! ```
//! use taskhost_executor::Executor;
//!
//! let pool = Executor::builder().max_workers(2).task_timings(true).build().unwrap();
//! let f = pool.submit(|| ()).unwrap();
//! f.result(None).unwrap();
//! pool.shutdown_and_wait();
//! let m = pool.metrics();
//! assert_eq!(m.submitted, m.completed + m.failed + m.cancelled);
//! assert!(f.timings().run_time.is_some());
//! ```
//!
//! # What a task costs
//!
//! [`Executor::execute`] (fire and forget) makes one allocation per task: the closure and one
//! word (24 bytes for a two-word closure; the id and span go in a second box only while tracing
//! records them). [`Executor::submit`] makes one too, holding the closure *and* the future's
//! state, 120 bytes for a two-word closure (within glibc's fast bins), freed when the last
//! [`TaskFuture`] handle is dropped. Neither takes a lock on the way in: two atomic increments
//! on the submitting thread's own cache line, a push on the queue, and for a future one
//! reference count. Tracing costs a task nobody traces a few level tests: no span is built
//! unless a subscriber takes INFO, and a task that succeeds builds no event unless one takes
//! DEBUG (`task.failed` is a WARN event).
//!
//! So a program that keeps a million futures holds about 120 MB until it drops them, and with
//! glibc's allocator big batches in a loop can cost more than the tasks do: once the handles are
//! dropped, glibc may merge the freed chunks and give the top of the heap back to the kernel,
//! and the next batch then faults it in again page by page. Whether it does depends on the
//! heap's history and on the task's size class. Tasks of up to 120 bytes (a closure that
//! captures two words, a one-word result) come from glibc's fast bins, which it merges less
//! often: one word more per task can double the time of a million-task batch (the benchmark's
//! README, `crates/taskhost-bench`, has the measurements). One pool running back-to-back
//! million-task batches meets the cycle at either size. Such programs can keep the heap
//! (`MALLOC_TOP_PAD_=536870912`, or `mallopt`'s `M_TOP_PAD`/`M_TRIM_THRESHOLD`), use another
//! allocator (the `taskhost` binary uses mimalloc), or hold fewer handles at once
//! ([`Executor::map`], [`as_completed`]).
//!
//! # Async
//!
//! `TaskFuture<T>` implements [`std::future::Future`] when `T: Clone`, with output
//! `Result<T, ResultError>` (a clone of the stored value), so async code can `.await` it; the
//! completing worker wakes the task. Any executor works; this crate needs none.
//!
//! ```
//! use taskhost_executor::{Executor, ResultError};
//!
//! async fn double(pool: &Executor) -> Result<u32, ResultError> {
//!     Ok(pool.submit(|| 21u32).unwrap().await? * 2)
//! }
//! # let _ = double;
//! ```
//!
//! # Tracing
//!
//! Events are emitted with `tracing`, target `taskhost_executor` ([`TRACING_TARGET`]); each
//! event's name and message are the same string. Names and fields are a stable contract. Every
//! task event has the fields `pool`, `task_id` and, if the task was named with
//! [`TaskOptions::name`], `task`.
//!
//! | Event              | Level | Extra fields                                                   |
//! |--------------------|-------|----------------------------------------------------------------|
//! | `task.queued`      | DEBUG | `queue_depth`                                                  |
//! | `task.started`     | DEBUG | `worker` (thread name), `waited_us`                            |
//! | `task.finished`    | DEBUG | `ran_us`                                                       |
//! | `task.failed`      | WARN  | `ran_us`, `panic` (the panic message)                          |
//! | `task.cancelled`   | INFO  | `reason`: `user`, `shutdown`, `stop_requested`                 |
//! | `task.broken`      | WARN  | `reason`: why the pool broke (a queued future failed unrun)    |
//! | `task.rejected`    | WARN  | `reason`: `queue_full`, `shut_down`, `broken_pool`             |
//! | `worker.spawned`   | DEBUG | `pool`, `worker` (no task fields)                              |
//! | `worker.retired`   | DEBUG | `pool`, `worker`, `reason`: `idle`, `max_tasks`, `shutdown`, `broken` |
//! | `pool.shutdown`    | INFO  | `pool`, `wait`, `cancel_futures`                               |
//! | `pool.broken`      | ERROR | `pool`, `reason`                                               |
//! | `callback.panicked`| ERROR | `task_id`, `task`, `panic` (no `pool` field)                   |
//!
//! A queued future cancelled with [`TaskFuture::cancel`] is done at once, but its
//! `task.cancelled` event (reason `user`) and its count in the metrics come when the item leaves
//! the queue (a worker skips it, or a shutdown drains it): futures hold no reference to their
//! pool, which keeps the submit path free of a shared reference count.
//!
//! Each task runs inside an INFO span named `task` (fields `pool`, `task_id`, `task`) whose
//! parent is the span that was current in the submitting thread, so fields the caller put on
//! its own span (an item id, say) apply to the task's events too. With no subscriber
//! installed, the cost is a few relaxed loads per event.
//!
//! # Where this differs from Python
//!
//! Two differences, both on purpose:
//!
//! * A cancelled future is done at once for `wait`/`as_completed` (Python waits for a worker to
//!   dequeue it), so a caller that cancels does not wait on a busy pool to see it.
//! * The default `max_workers` is `min(32, available_parallelism + 4)`: Rust's
//!   `available_parallelism` also honours a container's CPU quota, where Python's
//!   `os.process_cpu_count()` counts only the CPUs the process may be scheduled on.
//!
//! Everything else follows Python 3.14, in Rust's forms: errors are values (`result` returns a
//! [`ResultError`], `map` yields `Result`s) rather than exceptions; futures of a broken pool are
//! finished with [`ResultError::BrokenPool`], not cancelled; [`wait`] and [`as_completed`] treat
//! a future passed twice as one; [`Executor::map_buffered`] is `map(…, buffersize=n)`. A shared
//! [`TaskFuture`] needs a `Sync` value (its clones read it from any thread);
//! [`Executor::submit_owned`] takes any `Send` value and hands it out by ownership.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod builder;
mod context;
mod error;
mod events;
mod executor;
mod future;
mod future_cell;
mod job;
mod map;
mod metrics;
mod owned;
mod pool;
mod queue;
mod shutdown;
mod submit;
mod sync;
mod task_id;
mod timings;
mod wait;
mod watch;
mod worker;
mod worker_state;

pub use builder::{
    default_max_workers, BuildError, ExecutorBuilder, MAX_QUEUE_CAPACITY, MAX_WORKERS,
};
pub use context::{CancellationToken, TaskContext, TaskOptions};
pub use error::{AsCompletedTimeout, CancelReason, MapError, ResultError, SubmitError, TaskError};
pub use events::TRACING_TARGET;
pub use executor::{Executor, MetricsReader};
pub use future::{FutureState, TaskFuture};
pub use map::{BufferedMap, MapResults};
pub use metrics::MetricsSnapshot;
pub use owned::{Owned, OwnedFuture};
pub use pool::WhenFull;
pub use shutdown::{RunningTask, ShutdownOptions, ShutdownReport};
pub use timings::TaskTimings;
pub use wait::{as_completed, wait, AsCompleted, ReturnWhen, WaitResult};
pub use worker_state::{with_worker_state, WorkerInfo};

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn public_handles_are_send_and_sync() {
        assert_send_sync::<Executor>();
        assert_send_sync::<TaskFuture<String>>();
        assert_send_sync::<CancellationToken>();
        assert_send_sync::<TaskContext>();
        assert_send_sync::<MetricsSnapshot>();
    }
}
