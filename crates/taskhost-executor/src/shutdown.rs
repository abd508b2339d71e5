//! How a pool stops: [`Executor::shutdown`](crate::Executor::shutdown) and its named forms
//! ([`ShutdownOptions`]), the time-limited shutdown and its [`ShutdownReport`], and the broken
//! pool (an initializer failed, or no worker could start), which stops the pool the same way.
//!
//! Both first wait until no submit is in flight (`quiesce`: per stripe, submits that entered
//! minus submits that left), so no item can land behind the point where workers stop; then a
//! shutdown closes the queue, and a broken pool fails what is queued. Joining skips the caller's
//! own thread (shutdown from inside a task).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use crate::events::{emit_drop_panicked, emit_pool_broken, emit_pool_shutdown};
use crate::pool::{Abandon, PoolInner};
use crate::sync::thread::{self, JoinHandle};
use crate::sync::{lock, wait_until, Arc, Ordering};
use crate::timings::NOT_TIMED;

/// How [`Executor::shutdown_with`](crate::Executor::shutdown_with) stops a pool: Python's two
/// `shutdown` arguments, by name. Later submits are refused either way, and calling any form of
/// shutdown again is harmless.
///
/// ```
/// use taskhost_executor::{Executor, ShutdownOptions};
///
/// let pool = Executor::new(2).unwrap();
/// let f = pool.submit(|| 6 * 7).unwrap();
/// // `shutdown(true, false)`, by name: queued work runs, then every worker is joined.
/// pool.shutdown_with(ShutdownOptions { wait: true, cancel_queued: false });
/// assert_eq!(f.result(None), Ok(&42));
/// assert_eq!(pool.metrics().workers_alive, 0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ShutdownOptions {
    /// Join every worker thread before returning, except the caller's own when called from
    /// inside a task (Python's `wait`).
    pub wait: bool,
    /// Cancel the queued items ([`CancelReason::Shutdown`](crate::CancelReason::Shutdown))
    /// instead of letting them run (Python's `cancel_futures`).
    pub cancel_queued: bool,
}

/// One task still running when
/// [`Executor::shutdown_timeout`](crate::Executor::shutdown_timeout) gave up waiting.
///
/// ```
/// # use taskhost_executor::RunningTask;
/// fn describe(t: &RunningTask) -> String {
///     format!("{} {:?} on {} for {:?}", t.id, t.name, t.worker, t.running_for)
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunningTask {
    /// The task's id.
    pub id: u64,
    /// Its name, if it was given one.
    pub name: Option<String>,
    /// The worker thread running it.
    pub worker: String,
    /// How long it had been running; `None` unless the pool records
    /// [`task_timings`](crate::ExecutorBuilder::task_timings).
    pub running_for: Option<Duration>,
}

/// What [`Executor::shutdown_timeout`](crate::Executor::shutdown_timeout) found.
///
/// ```
/// use std::time::Duration;
/// use taskhost_executor::Executor;
///
/// let pool = Executor::new(1).unwrap();
/// pool.submit(|| ()).unwrap();
/// let report = pool.shutdown_timeout(Duration::from_secs(5), false);
/// assert!(report.all_stopped && report.still_running.is_empty());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Every worker exited within the limit.
    pub all_stopped: bool,
    /// Tasks still running when the limit passed.
    pub still_running: Vec<RunningTask>,
    /// How long the call waited.
    pub waited: Duration,
}

impl PoolInner {
    /// Stops accepting work, drains or closes the queue, and joins the workers if asked to.
    pub(crate) fn shutdown(self: &Arc<Self>, options: ShutdownOptions) {
        let ShutdownOptions {
            wait,
            cancel_queued: cancel_futures,
        } = options;
        let first = !self.shutdown.swap(true, Ordering::SeqCst);
        if first || cancel_futures {
            if cancel_futures {
                self.quiesce(|| self.drain(Abandon::Shutdown));
            } else {
                self.quiesce(|| {});
            }
        }
        if first {
            emit_pool_shutdown(&self.name, wait, cancel_futures);
            self.closed.store(true, Ordering::SeqCst);
            self.queue.close();
        }
        if wait {
            self.join_all();
        }
    }

    /// [`Executor::shutdown_timeout`](crate::Executor::shutdown_timeout).
    pub(crate) fn shutdown_timeout(
        self: &Arc<Self>,
        limit: Duration,
        cancel_futures: bool,
    ) -> ShutdownReport {
        let started = Instant::now();
        let deadline = started + limit;
        self.shutdown(ShutdownOptions {
            wait: false,
            cancel_queued: cancel_futures,
        });
        let me = thread::current().id();
        let own_worker = {
            let workers = lock(&self.workers);
            workers
                .threads
                .iter()
                .any(|r| r.handle.as_ref().is_some_and(|h| h.thread().id() == me))
        };
        let target = usize::from(own_worker);
        {
            let mut workers = lock(&self.workers);
            while self.alive.load(Ordering::SeqCst) > target {
                let Some(again) = wait_until(&self.workers_changed, workers, Some(deadline)) else {
                    break;
                };
                workers = again;
            }
        }
        let all_stopped = self.alive.load(Ordering::SeqCst) <= target;
        let still_running = if all_stopped {
            self.join_all();
            Vec::new()
        } else {
            self.detached.store(true, Ordering::SeqCst);
            self.running_tasks()
        };
        ShutdownReport {
            all_stopped,
            still_running,
            waited: started.elapsed(),
        }
    }

    /// Joins every worker thread except the caller's own (shutdown from inside a task).
    pub(crate) fn join_all(&self) {
        let me = thread::current().id();
        loop {
            let handles: Vec<JoinHandle<()>> = {
                let mut workers = lock(&self.workers);
                workers
                    .threads
                    .iter_mut()
                    .filter(|r| r.handle.as_ref().is_some_and(|h| h.thread().id() != me))
                    .filter_map(|r| r.handle.take())
                    .collect()
            };
            if handles.is_empty() {
                break;
            }
            for handle in handles {
                let _ = handle.join();
            }
        }
    }

    /// What each worker is running now.
    fn running_tasks(&self) -> Vec<RunningTask> {
        let now = self.epoch.elapsed();
        let workers = lock(&self.workers);
        let mut running = Vec::new();
        for record in &workers.threads {
            let task_id = record.slot.task_id.load(Ordering::Relaxed);
            if task_id == 0 {
                continue;
            }
            let started = record.slot.started_ns.load(Ordering::Relaxed);
            running.push(RunningTask {
                id: task_id,
                name: lock(&record.slot.name).as_deref().map(str::to_owned),
                worker: record.name.clone(),
                running_for: (started != NOT_TIMED)
                    .then(|| now.saturating_sub(Duration::from_nanos(started))),
            });
        }
        running
    }

    /// Waits until no submit is between its check and its push, draining if asked to.
    fn quiesce(&self, mut drain: impl FnMut()) {
        let mut spins = 0u32;
        loop {
            drain();
            if self.submits.iter().all(|stripe| stripe.in_flight() == 0) {
                break;
            }
            thread::backoff(spins);
            spins += 1;
        }
        drain();
    }

    /// Resolves every queued item without running it.
    fn drain(&self, why: Abandon<'_>) {
        while let Some(job) = self.queue.try_pop() {
            self.metrics.worker.0.inc_dequeued();
            // Abandoning drops user data (contained there); this also catches a panic in the
            // last reference's drop, so one bad item cannot stop the drain.
            if let Err(payload) = catch_unwind(AssertUnwindSafe(|| job.abandon(self, why))) {
                emit_drop_panicked(&self.name, 0, payload);
            }
        }
    }

    /// Breaks the pool: later submits are refused and queued futures fail with `reason` (the
    /// first reason wins).
    pub(crate) fn mark_broken(&self, reason: String) {
        {
            let mut workers = lock(&self.workers);
            if workers.broken_reason.is_none() {
                workers.broken_reason = Some(reason);
            }
        }
        self.broken.store(true, Ordering::SeqCst);
        let reason = self.broken_reason();
        emit_pool_broken(&self.name, &reason);
        self.quiesce(|| self.drain(Abandon::Broken(&reason)));
    }
}
