//! One attempt of one item: submitting it to its pool, its done callback, its timeout and the
//! grace after it, and its retry. [`Dispatcher`] is what the dispatch loop, the callbacks, the
//! timer and the writer share.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde_json::value::RawValue;
use taskhost_executor::{Executor, SubmitError, TaskContext, TaskFuture, TaskOptions};
use taskhost_loader::TracingContext;

use super::job::{AttemptFailure, Attempted, Job};
use super::outbox::Outbox;
use super::pools::Isolated;
use super::running::{Running, RunningTable};
use super::timer::{Timer, TimerAction};
use super::verdict::verdict;
use crate::config::duration::format_duration;
use crate::sink::{millis, rfc3339, Outcome, Status};

/// The state of a run that every thread of it shares.
///
/// Aligned to a cache-line pair so that the `Arc`'s counts (each item's done callback holds a
/// clone) do not share a line with the fields.
#[repr(align(128))]
pub(crate) struct Dispatcher {
    pub(crate) executors: Vec<Executor>,
    /// Per pool: its worker processes' settings, for an isolated pool.
    pub(crate) isolated: Vec<Option<Arc<Isolated>>>,
    /// To the writer thread; once the writer has ended, sends are dropped.
    pub(crate) outcomes: Arc<Outbox<Outcome>>,
    /// Attempts in the pools.
    pub(crate) running: RunningTable,
    pub(crate) stopping: AtomicBool,
    pub(crate) timer: Timer,
    /// How long an attempt that ran past its timeout gets to stop before it is given up on.
    pub(crate) timeout_grace: Duration,
    /// Attempts given up on while still running (their workers stay busy): the pools cannot be
    /// waited for at the end.
    pub(crate) abandoned: AtomicU64,
    /// Per pool: how many of its workers are held by attempts given up on, and how many it has.
    pub(crate) stuck: Vec<AtomicUsize>,
    pub(crate) max_workers: Vec<usize>,
}

impl Dispatcher {
    pub(crate) fn send(&self, outcome: Outcome) {
        self.outcomes.send(outcome);
    }

    /// Submits one attempt of `job`.
    pub(crate) fn submit(self: &Arc<Self>, job: Job) {
        let _entered = job.span.clone().entered();
        if self.stopping.load(Ordering::SeqCst) {
            let why = "interrupted before it started";
            return self.finish(job, Status::Cancelled, None, Some(why.into()));
        }
        if let Some(error) = self.no_worker_left(job.task.pool) {
            return self.finish(job, Status::Failed, None, Some(error));
        }
        let task = Arc::clone(&job.task);
        let input = job.item.input.clone();
        let seq = job.seq;
        let attempt = job.attempt;
        let timeout = task.timeout;
        let pool = task.pool;
        let isolated = self.isolated[pool].clone();
        // Only an attempt with a timeout, or in a worker process that may be killed, needs the
        // table from inside the pool (a clone per item is a reference count the workers then
        // drop: one more line between the threads).
        let shared = (timeout.is_some() || isolated.is_some()).then(|| Arc::clone(self));
        // The pool's task name only feeds the executor's own events (the item span carries the
        // id to all the others): not worth an allocation per item when nobody records them.
        let name = tracing::enabled!(target: "taskhost_executor", tracing::Level::WARN)
            .then(|| job.item.id.clone());
        let closure = move |ctx: &TaskContext| -> Attempted {
            let started = SystemTime::now();
            if let (Some(timeout), Some(shared)) = (timeout, &shared) {
                let key = shared.timer.schedule(
                    Instant::now() + timeout,
                    TimerAction::Timeout { seq, attempt },
                );
                if let Some(entry) = shared.running.shard(seq).get_mut(&seq) {
                    entry.timeout_key = Some(key);
                    entry.started = Some(Instant::now());
                }
            }
            let token = ctx.token();
            let check = move || token.is_cancelled();
            let input = input.get().as_bytes();
            let result = match &isolated {
                None => {
                    let context = TracingContext::new(&task.task).with_cancel_check(&check);
                    task.task
                        .run(input, &context)
                        .map_err(AttemptFailure::Plugin)
                }
                Some(isolated) => isolated.run(&task, input, &check),
            };
            if let Some(shared) = &shared {
                let mut table = shared.running.shard(seq);
                let entry = table.get_mut(&seq).filter(|r| r.job.attempt == attempt);
                let given_up = entry.is_none();
                if let Some(entry) = entry {
                    entry.killed = matches!(result, Err(AttemptFailure::Killed(_)));
                }
                drop(table);
                if given_up {
                    // It ended after all: its worker is back. (Or it was reported at the end
                    // of the shutdown grace, which held no worker: never below zero.)
                    let _ = shared.stuck[task.pool].fetch_update(
                        Ordering::SeqCst,
                        Ordering::SeqCst,
                        |n| n.checked_sub(1),
                    );
                }
            }
            Attempted::here(started, result)
        };
        // Registered before submitting: the task may finish (and its callback run) before
        // `submit_with` returns, and the callback reports only what it finds here.
        self.running.shard(seq).insert(seq, Running::new(job));
        let options = match name {
            Some(name) => TaskOptions::new().name(name),
            None => TaskOptions::new(),
        };
        match self.executors[pool].submit_with(options, closure) {
            Ok(future) => {
                let shared = Arc::clone(self);
                future.add_done_callback(move |future| shared.completed(seq, future));
                // The handle itself goes into the table (no clone to make and drop: each is a
                // locked write to a line the worker running the task is using). If the
                // callback has already run, the entry is gone and the handle is dropped here.
                if let Some(entry) = self.running.shard(seq).get_mut(&seq) {
                    entry.future = Some(future);
                }
            }
            Err(error) => {
                let Some(running) = self.running.shard(seq).remove(&seq) else {
                    return;
                };
                let pool_name = &running.job.task.pool_name;
                let (status, message) = match &error {
                    SubmitError::QueueFull(_) => (
                        Status::Rejected,
                        format!("pool `{pool_name}` refused it: its queue is full"),
                    ),
                    SubmitError::ShutDown(_) => (
                        Status::Cancelled,
                        format!("pool `{pool_name}` is shut down"),
                    ),
                    SubmitError::BrokenPool(_, why) => (
                        Status::Failed,
                        format!("pool `{pool_name}` is broken: {why}"),
                    ),
                };
                self.finish(running.job, status, None, Some(message));
            }
        }
    }

    /// The done callback: runs in the thread that completed the attempt.
    fn completed(self: &Arc<Self>, seq: u64, future: &TaskFuture<Attempted>) {
        // Whoever removes the attempt reports it: after the grace period the dispatcher may
        // already have reported it as cancelled.
        let Some(running) = self.running.shard(seq).remove(&seq) else {
            return;
        };
        if let Some(key) = running.timeout_key {
            self.timer.cancel(key);
        }
        let mut job = running.job;
        let timings = future.timings();
        job.waited += timings.queue_wait.unwrap_or_default();
        job.ran += timings.run_time.unwrap_or_default();
        let attempted = future.result(Some(Duration::ZERO));
        if let Ok(attempted) = attempted {
            job.started.get_or_insert(attempted.started);
            job.worker = attempted.worker.clone();
        }
        let result = attempted.map(|attempted| &attempted.result);
        let killed = running.killed || matches!(result, Ok(Err(AttemptFailure::Killed(_))));
        let mut verdict = verdict(result);
        if verdict.status == Status::Cancelled && !self.stopping.load(Ordering::SeqCst) {
            if let Some(why) = self.no_worker_left(job.task.pool) {
                verdict.status = Status::Failed;
                verdict.error = Some(why);
            }
        }
        if killed && verdict.status == Status::Cancelled {
            verdict.error = Some(format!(
                "stopped on request: it did not stop within {} of being asked to, so its worker \
                 process was killed",
                format_duration(super::pools::KILL_GRACE)
            ));
        }
        // The flag alone could be a timer that fired just as the attempt finished in time.
        let timeout = job.task.timeout.unwrap_or_default();
        if running.timed_out && timings.run_time.unwrap_or_default() >= timeout {
            verdict.status = Status::TimedOut;
            verdict.output = None;
            let mut error = format!("ran longer than its {} timeout", format_duration(timeout));
            if killed {
                error.push_str(&format!(
                    " and did not stop within {} of being asked to: its worker process was \
                     killed",
                    format_duration(super::pools::KILL_GRACE)
                ));
            }
            verdict.error = Some(error);
            verdict.retryable = true;
        }
        let status = verdict.status;
        let error = verdict.error;
        if matches!(
            status,
            Status::Failed | Status::Panicked | Status::TimedOut | Status::Crashed
        ) {
            let _entered = job.span.enter();
            tracing::info!(
                target: "taskhost",
                attempt = job.attempt,
                status = status.as_str(),
                error = error.as_deref().unwrap_or_default(),
                "item.failed"
            );
        }
        if status != Status::Ok
            && verdict.retryable
            && job.attempt <= job.task.retry.retries
            && !running.cancelled
            && !self.stopping.load(Ordering::SeqCst)
        {
            let delay = job.task.retry.delay_before(job.attempt + 1);
            {
                let _entered = job.span.enter();
                tracing::info!(
                    target: "taskhost",
                    attempt = job.attempt,
                    status = status.as_str(),
                    error = error.as_deref().unwrap_or_default(),
                    delay_ms = delay.as_millis() as u64,
                    "task.retry"
                );
            }
            job.attempt += 1;
            self.timer
                .schedule(Instant::now() + delay, TimerAction::Retry(Box::new(job)));
            return;
        }
        self.finish(job, status, verdict.output, error);
    }

    /// Sends the outcome of a job.
    pub(crate) fn finish(
        &self,
        job: Job,
        status: Status,
        output: Option<Box<RawValue>>,
        error: Option<String>,
    ) {
        self.send(Outcome {
            id: job.item.id,
            task: Some(Arc::clone(&job.task.name)),
            status,
            output,
            error,
            pool: Some(Arc::clone(&job.task.pool_name)),
            worker: job.worker,
            started: job.started.map(rfc3339),
            attempts: job.attempt,
            waited_ms: millis(Some(job.waited)),
            ran_ms: millis(Some(job.ran)),
            line: job.line,
            seq: job.seq,
        });
    }

    /// The timer fired a timeout for `seq`.
    pub(crate) fn time_out(&self, seq: u64, attempt: u32) {
        let mut running = self.running.shard(seq);
        if let Some(entry) = running.get_mut(&seq).filter(|r| r.job.attempt == attempt) {
            entry.timed_out = true;
            if let Some(future) = &entry.future {
                future.request_stop();
            }
            let pool = entry.job.task.pool;
            drop(running);
            // In an isolated pool, a task that ignores the request is killed with its worker
            // process (`KILL_GRACE`). A thread cannot be killed: such a task is given up on, so
            // that one stuck task does not hold the whole run.
            if self.isolated[pool].is_none() {
                self.timer.schedule(
                    Instant::now() + self.timeout_grace,
                    TimerAction::Abandon { seq, attempt },
                );
            }
        }
    }

    /// The timer fired the grace period after a timeout, and the attempt still runs: it is
    /// reported `timed_out` now, and its result, if it ever comes, is dropped.
    pub(crate) fn abandon(&self, seq: u64, attempt: u32) {
        let Some(running) = ({
            let mut table = self.running.shard(seq);
            match table.get(&seq) {
                Some(r) if r.job.attempt == attempt && r.timed_out => table.remove(&seq),
                _ => None,
            }
        }) else {
            return;
        };
        self.abandoned.fetch_add(1, Ordering::SeqCst);
        let pool = running.job.task.pool;
        self.stuck[pool].fetch_add(1, Ordering::SeqCst);
        let ran = running.ran_so_far();
        let started = running.started_at();
        let mut job = running.job;
        if let Some(started) = started {
            job.started.get_or_insert(started);
        }
        job.ran += ran;
        if let Some(future) = &running.future {
            job.waited += future.timings().queue_wait.unwrap_or_default();
        }
        let timeout = job.task.timeout.unwrap_or_default();
        let error = format!(
            "ran longer than its {} timeout and did not stop within {} of being asked to: \
             given up on (the task ignores cancellation; its worker thread stays busy)",
            format_duration(timeout),
            format_duration(self.timeout_grace)
        );
        {
            let _entered = job.span.enter();
            tracing::warn!(
                target: "taskhost",
                attempt = job.attempt,
                ran_ms = millis(Some(ran)),
                "item.abandoned: a task did not stop after its timeout"
            );
        }
        self.finish(job, Status::TimedOut, None, Some(error));
        if self.no_worker_left(pool).is_some() {
            // What waits in the pool's queue would wait for ever: it fails (see `completed`).
            let queued = self
                .running
                .collect(|r| r.future.clone().filter(|_| r.job.task.pool == pool));
            for future in queued {
                future.cancel();
            }
        }
    }

    /// Why pool `pool` can run nothing more, if every one of its workers is held by an attempt
    /// given up on.
    pub(crate) fn no_worker_left(&self, pool: usize) -> Option<String> {
        let stuck = self.stuck[pool].load(Ordering::SeqCst);
        (stuck >= self.max_workers[pool]).then(|| {
            format!(
                "pool `{}` has no worker left to run it: all {stuck} are held by tasks that \
                 ignored their timeout",
                self.executors[pool].name()
            )
        })
    }
}
