//! The dispatcher: entries in, one outcome per entry out.
//!
//! ```text
//!  reader thread ──(bounded channel)──► dispatch loop ──► pool.submit ──► worker runs the plugin
//!  (WorkSource)                          │ permit per entry                │ done callback
//!                                        │ (backpressure)                  ▼
//!                                        └── invalid / rejected ──► outbox ─► writer ─► OutcomeSink
//!                                                                   (reorders with --ordered,
//!                                                                    releases the permit)
//!  timer thread: per-attempt timeouts (request_stop), giving up on an attempt that ignores its
//!  stop request, and retries after their backoff
//! ```
//!
//! Invariants: every entry taken from the source gets exactly one outcome (whoever removes an
//! attempt from the `running` table reports it); an entry holds one in-flight permit from the
//! moment it is taken until its outcome is written, so memory is bounded by `run.max_in_flight`
//! whatever the input size, with or without `--ordered`.
//!
//! A task that ignores its timeout is reported `timed_out` once the grace after it has passed;
//! its worker stays busy, so the pools are then not joined at the end. A plugin calling `exit`
//! mid-run is answered by [`exit_watch`]: every record out, then status 1.

pub mod exit_watch;
mod handoff;
pub mod journal;
mod outbox;
#[cfg(test)]
mod proptests;
mod timer;

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::value::RawValue;
use taskhost_executor::{
    CancelReason, Executor, ResultError, ShutdownOptions, SubmitError, TaskContext, TaskFuture,
    TaskOptions,
};
use taskhost_loader::{FailureKind, PluginSet, PluginTask, TaskFailure, TracingContext};

use crate::config::duration::format_duration;
use crate::config::settings::{PoolSettings, RetryPolicy, Settings, WhenFull};
use crate::progress::{PoolUse, Progress, Summary};
use crate::routing::Router;
use crate::signals::Interrupts;
use crate::sink::{millis, Outcome, OutcomeSink, Status};
use crate::source::{parse_line, Entry, EntryBody, WorkItem, WorkSource};
use crate::telemetry::SharedBar;

use outbox::Outbox;
use timer::{Timer, TimerAction};

/// What one attempt returns from the worker.
type AttemptResult = Result<Vec<u8>, TaskFailure>;

/// A task the host can run: the plugin's task with its route resolved.
#[derive(Debug)]
pub struct ResolvedTask {
    pub name: Arc<str>,
    pub plugin: String,
    pub task: PluginTask,
    pub pool: usize,
    pub pool_name: Arc<str>,
    pub retry: RetryPolicy,
    pub timeout: Option<Duration>,
}

/// The pools, built from the settings.
#[derive(Debug)]
pub struct Pools {
    pub settings: Vec<PoolSettings>,
    pub executors: Vec<Executor>,
}

impl Pools {
    pub fn build(settings: &Settings) -> Result<Self> {
        let mut built = Self {
            settings: Vec::new(),
            executors: Vec::new(),
        };
        for pool in settings.pools.values() {
            let when_full = match pool.when_full {
                WhenFull::Block => taskhost_executor::WhenFull::Block,
                WhenFull::Reject => taskhost_executor::WhenFull::Reject,
                WhenFull::CallerRuns => taskhost_executor::WhenFull::CallerRuns,
            };
            let executor = Executor::builder()
                .name(pool.name.clone())
                .max_workers(pool.max_workers)
                .thread_name_prefix(pool.thread_name_prefix.clone())
                .idle_timeout(pool.idle_timeout)
                .max_tasks_per_worker(pool.max_tasks_per_worker)
                .queue_capacity(pool.queue_capacity)
                .when_full(when_full)
                // Every outcome record carries `waited_ms` and `ran_ms`.
                .task_timings(true)
                .build()
                .with_context(|| format!("building pool `{}`", pool.name))?;
            built.settings.push(pool.clone());
            built.executors.push(executor);
        }
        Ok(built)
    }

    pub fn index(&self, name: &str) -> Option<usize> {
        self.settings.iter().position(|p| p.name == name)
    }
}

/// Every task of every loaded plugin, routed.
#[derive(Debug)]
pub struct Catalog {
    tasks: HashMap<String, Arc<ResolvedTask>>,
}

impl Catalog {
    pub fn new(plugins: &PluginSet, router: &Router, pools: &Pools) -> Result<Self> {
        let mut tasks = HashMap::new();
        for task in plugins.tasks() {
            let name = task.full_name().to_owned();
            let decision = router.route(&name);
            let pool = pools.index(&decision.pool).with_context(|| {
                format!(
                    "the route for {name} names pool `{}`, which does not exist",
                    decision.pool
                )
            })?;
            tasks.insert(
                name.clone(),
                Arc::new(ResolvedTask {
                    name: Arc::from(name.as_str()),
                    plugin: task.plugin_name().to_owned(),
                    task,
                    pool,
                    pool_name: Arc::from(decision.pool.as_str()),
                    retry: decision.retry,
                    timeout: decision.timeout,
                }),
            );
        }
        Ok(Self { tasks })
    }

    pub fn get(&self, name: &str) -> Option<&Arc<ResolvedTask>> {
        self.tasks.get(name)
    }

    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.tasks.keys().cloned().collect();
        names.sort();
        names
    }
}

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub ordered: bool,
    pub max_in_flight: usize,
    pub shutdown_grace: Duration,
    pub progress: bool,
}

/// What the run ended with.
#[derive(Debug)]
pub struct RunReport {
    pub summary: Summary,
    /// Reading the input failed part-way (the entries read before were run).
    pub source_error: Option<String>,
}

/// A counting semaphore: the in-flight limit.
///
/// A dispatcher that ran out is woken only once a quarter of the permits are back, not for
/// every outcome written (a context switch per item once the downstream is the slower side).
#[derive(Debug)]
struct Permits {
    state: Mutex<PermitState>,
    changed: Condvar,
    /// A waiting `acquire` is woken once this many permits are available.
    resume_at: usize,
}

#[derive(Debug)]
struct PermitState {
    available: usize,
    /// Threads blocked in `acquire`: a release wakes (a system call) only when there is one.
    waiting: usize,
}

impl Permits {
    fn new(count: usize) -> Self {
        Self {
            state: Mutex::new(PermitState {
                available: count,
                waiting: 0,
            }),
            changed: Condvar::new(),
            resume_at: (count / 4).max(1),
        }
    }

    /// Takes a permit; gives up (false) when `stop` returns true.
    fn acquire(&self, stop: impl Fn() -> bool) -> bool {
        let mut state = lock(&self.state);
        loop {
            if stop() {
                return false;
            }
            if state.available > 0 {
                state.available -= 1;
                return true;
            }
            state.waiting += 1;
            state = self
                .changed
                .wait_timeout(state, Duration::from_millis(50))
                .unwrap_or_else(|e| e.into_inner())
                .0;
            state.waiting -= 1;
        }
    }

    /// Gives back `count` permits.
    fn release(&self, count: usize) {
        if count == 0 {
            return;
        }
        let mut state = lock(&self.state);
        state.available += count;
        let wake = state.waiting > 0 && state.available >= self.resume_at;
        drop(state);
        if wake {
            self.changed.notify_all();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// One entry on its way through a pool.
#[derive(Debug)]
pub(crate) struct Job {
    seq: u64,
    line: u64,
    item: WorkItem,
    task: Arc<ResolvedTask>,
    attempt: u32,
    waited: Duration,
    ran: Duration,
    span: tracing::Span,
}

/// An attempt in a pool, keyed by the job's sequence number. The job waits here (not in the
/// done callback), so whoever removes the entry gets it back whole, with nothing cloned.
struct Running {
    /// `None` while `submit_with` has not returned yet.
    future: Option<TaskFuture<AttemptResult>>,
    /// The timer fired this attempt's timeout (and asked it to stop).
    timed_out: bool,
    /// The attempt's timeout in the timer, once it has started.
    timeout_key: Option<timer::TimerKey>,
    /// When it was submitted, and (for an attempt with a timeout) when it started: the run time
    /// of an attempt that is given up on while it still runs.
    submitted: Instant,
    started: Option<Instant>,
    /// Its `span` is entered when cancelling, so the executor's event carries the item's fields.
    job: Job,
}

impl Running {
    /// How long this attempt has run so far (zero when it has not started).
    fn ran_so_far(&self) -> Duration {
        if let Some(run_time) = self.future.as_ref().and_then(|f| f.timings().run_time) {
            return run_time;
        }
        let started = self.started.or_else(|| {
            let wait = self.future.as_ref()?.timings().queue_wait?;
            Some(self.submitted + wait)
        });
        started.map(|at| at.elapsed()).unwrap_or_default()
    }
}

/// Hashes the `running` table's keys, the run's own sequence numbers: nobody else chooses them,
/// so SipHash's protection against chosen keys buys nothing, and a multiply spreads consecutive
/// numbers over the table (the dispatcher and every worker hash each item's key).
#[derive(Default)]
struct SeqHasher(u64);

impl Hasher for SeqHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(byte)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// How many shards the `running` table has.
const RUNNING_SHARDS: usize = 16;

/// One shard of the `running` table, on its own cache-line pair.
#[repr(align(128))]
#[derive(Default)]
struct RunningShard(Mutex<RunningTable>);

/// Attempts by sequence number (one shard's worth).
type RunningTable = HashMap<u64, Running, BuildHasherDefault<SeqHasher>>;

/// What the dispatch loop, the callbacks, the timer and the writer share.
///
/// Aligned to a cache-line pair so that the `Arc`'s counts (each item's done callback holds a
/// clone) do not share a line with the fields.
#[repr(align(128))]
pub(crate) struct Shared {
    executors: Vec<Executor>,
    /// To the writer thread; once the writer has ended, sends are dropped.
    outcomes: Arc<Outbox<Outcome>>,
    /// Attempts in the pools, by sequence number, sharded by it: the dispatcher registers item
    /// n while the workers remove items n − k, and one lock had them queue for each other.
    running: [RunningShard; RUNNING_SHARDS],
    stopping: AtomicBool,
    timer: Timer,
    /// How long an attempt that ran past its timeout gets to stop before it is given up on.
    timeout_grace: Duration,
    /// Attempts given up on while still running (their workers stay busy): the pools cannot be
    /// waited for at the end.
    abandoned: AtomicU64,
    /// Per pool: how many of its workers are held by attempts given up on, and how many it has.
    stuck: Vec<AtomicUsize>,
    max_workers: Vec<usize>,
}

impl Shared {
    /// The `running` shard that holds `seq`.
    fn running(&self, seq: u64) -> MutexGuard<'_, RunningTable> {
        lock(&self.running[(seq % RUNNING_SHARDS as u64) as usize].0)
    }

    fn send(&self, outcome: Outcome) {
        self.outcomes.send(outcome);
    }

    /// Submits one attempt of `job`.
    pub(crate) fn submit(self: &Arc<Self>, job: Job) {
        let _entered = job.span.clone().entered();
        if self.stopping.load(Ordering::SeqCst) {
            self.finish(
                job,
                Status::Cancelled,
                None,
                Some("interrupted before it started".into()),
            );
            return;
        }
        if let Some(error) = self.no_worker_left(job.task.pool) {
            self.finish(job, Status::Failed, None, Some(error));
            return;
        }
        let task = Arc::clone(&job.task);
        let input = job.item.input.clone();
        let seq = job.seq;
        let attempt = job.attempt;
        let timeout = task.timeout;
        let pool = task.pool;
        // Only an attempt with a timeout needs the table from inside the pool (a clone per item
        // is a reference count the workers then drop: one more line between the threads).
        let shared = timeout.map(|_| Arc::clone(self));
        // The pool's task name only feeds the executor's own events (the item span carries the
        // id to all the others): not worth an allocation per item when nobody records them.
        let name = tracing::enabled!(target: "taskhost_executor", tracing::Level::WARN)
            .then(|| job.item.id.clone());
        let closure = move |ctx: &TaskContext| -> AttemptResult {
            if let (Some(timeout), Some(shared)) = (timeout, &shared) {
                let key = shared.timer.schedule(
                    Instant::now() + timeout,
                    TimerAction::Timeout { seq, attempt },
                );
                if let Some(entry) = shared.running(seq).get_mut(&seq) {
                    entry.timeout_key = Some(key);
                    entry.started = Some(Instant::now());
                }
            }
            let token = ctx.token();
            let check = move || token.is_cancelled();
            let context = TracingContext::new(&task.task).with_cancel_check(&check);
            let result = task.task.run(input.get().as_bytes(), &context);
            if let Some(shared) = &shared {
                let given_up = shared
                    .running(seq)
                    .get(&seq)
                    .is_none_or(|r| r.job.attempt != attempt);
                if given_up {
                    // It ended after all: its worker is back.
                    shared.stuck[task.pool].fetch_sub(1, Ordering::SeqCst);
                }
            }
            if let Err(failure) = &result {
                if failure.kind == FailureKind::Panicked {
                    // The plugin caught its panic at the FFI boundary; re-raise it here (without
                    // the panic hook) so the pool records a panicked task: `task.failed` event,
                    // `failed` metric, `ResultError::Panicked` in the future.
                    std::panic::resume_unwind(Box::new(failure.message.clone()));
                }
            }
            result
        };
        // Registered before submitting: the task may finish (and its callback run) before
        // `submit_with` returns, and the callback reports only what it finds here.
        self.running(seq).insert(
            seq,
            Running {
                future: None,
                timed_out: false,
                timeout_key: None,
                submitted: Instant::now(),
                started: None,
                job,
            },
        );
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
                if let Some(entry) = self.running(seq).get_mut(&seq) {
                    entry.future = Some(future);
                }
            }
            Err(error) => {
                let Some(running) = self.running(seq).remove(&seq) else {
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
    fn completed(self: &Arc<Self>, seq: u64, future: &TaskFuture<AttemptResult>) {
        // Whoever removes the attempt reports it: after the grace period the dispatcher may
        // already have reported it as cancelled.
        let Some(running) = self.running(seq).remove(&seq) else {
            return;
        };
        if let Some(key) = running.timeout_key {
            self.timer.cancel(key);
        }
        let mut job = running.job;
        let timings = future.timings();
        job.waited += timings.queue_wait.unwrap_or_default();
        job.ran += timings.run_time.unwrap_or_default();
        let (mut status, mut output, mut error, retryable) = match future
            .result(Some(Duration::ZERO))
        {
            Ok(Ok(bytes)) => match output_json(bytes) {
                Ok(output) => (Status::Ok, Some(output), None, false),
                // The same input gives the same output: a retry would not help.
                Err(error) => (Status::Failed, None, Some(error), false),
            },
            Ok(Err(failure)) => match failure.kind {
                FailureKind::Failed => (Status::Failed, None, Some(failure.message.clone()), true),
                FailureKind::Panicked => {
                    (Status::Panicked, None, Some(failure.message.clone()), true)
                }
                FailureKind::Cancelled => (
                    Status::Cancelled,
                    None,
                    Some(failure.message.clone()),
                    false,
                ),
                FailureKind::InvalidInput => (
                    Status::Failed,
                    None,
                    Some(format!("invalid input: {}", failure.message)),
                    false,
                ),
                #[allow(unreachable_patterns)]
                _ => (Status::Failed, None, Some(failure.message.clone()), true),
            },
            Err(ResultError::Cancelled(reason)) => (
                Status::Cancelled,
                None,
                Some(match reason {
                    CancelReason::StopRequested => "stopped on request".to_owned(),
                    other => format!("cancelled ({other})"),
                }),
                false,
            ),
            Err(ResultError::Panicked(message)) => {
                (Status::Panicked, None, Some(message.clone()), true)
            }
            Err(other) => (Status::Failed, None, Some(other.to_string()), true),
        };
        if status == Status::Cancelled && !self.stopping.load(Ordering::SeqCst) {
            if let Some(why) = self.no_worker_left(job.task.pool) {
                status = Status::Failed;
                error = Some(why);
            }
        }
        // The flag alone could be a timer that fired just as the attempt finished in time.
        let timeout = job.task.timeout.unwrap_or_default();
        if running.timed_out && timings.run_time.unwrap_or_default() >= timeout {
            status = Status::TimedOut;
            output = None;
            error = Some(format!(
                "ran longer than its {} timeout",
                format_duration(timeout)
            ));
        }
        let retryable = retryable || status == Status::TimedOut;
        if matches!(status, Status::Failed | Status::Panicked | Status::TimedOut) {
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
            && retryable
            && job.attempt <= job.task.retry.retries
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
        self.finish(job, status, output, error);
    }

    /// Sends the outcome of a job.
    fn finish(
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
            attempts: job.attempt,
            waited_ms: millis(Some(job.waited)),
            ran_ms: millis(Some(job.ran)),
            line: job.line,
            seq: job.seq,
        });
    }

    /// The timer fired a timeout for `seq`.
    pub(crate) fn time_out(&self, seq: u64, attempt: u32) {
        let mut running = self.running(seq);
        if let Some(entry) = running.get_mut(&seq).filter(|r| r.job.attempt == attempt) {
            entry.timed_out = true;
            if let Some(future) = &entry.future {
                future.request_stop();
            }
            drop(running);
            // A thread cannot be killed: a task that ignores the request is given up on, so
            // that one stuck task does not hold the whole run.
            self.timer.schedule(
                Instant::now() + self.timeout_grace,
                TimerAction::Abandon { seq, attempt },
            );
        }
    }

    /// The timer fired the grace period after a timeout, and the attempt still runs: it is
    /// reported `timed_out` now, and its result, if it ever comes, is dropped.
    pub(crate) fn abandon(&self, seq: u64, attempt: u32) {
        let Some(running) = ({
            let mut table = self.running(seq);
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
        let mut job = running.job;
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
            let queued: Vec<TaskFuture<AttemptResult>> = self
                .running
                .iter()
                .flat_map(|shard| {
                    lock(&shard.0)
                        .values()
                        .filter(|r| r.job.task.pool == pool)
                        .filter_map(|r| r.future.clone())
                        .collect::<Vec<_>>()
                })
                .collect();
            for future in queued {
                future.cancel();
            }
        }
    }

    /// Why pool `pool` can run nothing more, if every one of its workers is held by an attempt
    /// given up on.
    fn no_worker_left(&self, pool: usize) -> Option<String> {
        let stuck = self.stuck[pool].load(Ordering::SeqCst);
        (stuck >= self.max_workers[pool]).then(|| {
            format!(
                "pool `{}` has no worker left to run it: all {stuck} are held by tasks that \
                 ignored their timeout",
                self.executors[pool].name()
            )
        })
    }

    /// Ctrl-C: cancel what is queued, ask what runs to stop.
    fn stop_all(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        let futures: Vec<(TaskFuture<AttemptResult>, tracing::Span)> = self
            .running
            .iter()
            .flat_map(|shard| {
                lock(&shard.0)
                    .values()
                    .filter_map(|r| Some((r.future.clone()?, r.job.span.clone())))
                    .collect::<Vec<_>>()
            })
            .collect();
        for (future, span) in futures {
            let _entered = span.enter();
            if !future.cancel() {
                future.request_stop();
            }
        }
        for job in self.timer.take_retries() {
            self.finish(
                job,
                Status::Cancelled,
                None,
                Some("interrupted while waiting to retry".into()),
            );
        }
    }

    /// After the grace period: report what still runs (or waits) as cancelled, for `reason`.
    /// Returns the tasks that were running, as `task (id, line)`.
    fn abandon_running(&self, reason: &str) -> Vec<String> {
        let abandoned: Vec<(u64, Running)> = self
            .running
            .iter()
            .flat_map(|shard| lock(&shard.0).drain().collect::<Vec<_>>())
            .collect();
        for job in self.timer.take_retries() {
            self.finish(
                job,
                Status::Cancelled,
                None,
                Some("interrupted while waiting to retry".into()),
            );
        }
        let mut ran = Vec::new();
        for (seq, running) in abandoned {
            let timings = running
                .future
                .as_ref()
                .map(TaskFuture::timings)
                .unwrap_or_default();
            let ran_for = running.ran_so_far();
            let job = running.job;
            if timings.queue_wait.is_some() {
                ran.push(format!(
                    "{} (id {:?}, line {})",
                    job.task.name, job.item.id, job.line
                ));
            }
            self.send(Outcome {
                id: job.item.id,
                task: Some(Arc::clone(&job.task.name)),
                status: Status::Cancelled,
                output: None,
                error: Some(reason.to_owned()),
                pool: Some(Arc::clone(&job.task.pool_name)),
                attempts: job.attempt,
                waited_ms: millis(Some(job.waited + timings.queue_wait.unwrap_or_default())),
                ran_ms: millis(Some(job.ran + ran_for)),
                line: job.line,
                seq,
            });
        }
        ran
    }
}

/// A plugin's output as JSON. Output must be one JSON value in UTF-8: anything else is the
/// task's failure, with the first bytes shown, rather than a guess at what was meant (a string,
/// with invalid bytes replaced).
fn output_json(bytes: &[u8]) -> Result<Box<RawValue>, String> {
    let shown = || {
        let head = &bytes[..bytes.len().min(60)];
        let more = if bytes.len() > head.len() { "…" } else { "" };
        format!("{}{more}", head.escape_ascii())
    };
    let text = std::str::from_utf8(bytes).map_err(|error| {
        format!(
            "output is not JSON: invalid UTF-8 at byte {} of {} (output starts with \"{}\")",
            error.valid_up_to(),
            bytes.len(),
            shown()
        )
    })?;
    RawValue::from_string(text.trim().to_owned()).map_err(|error| {
        format!(
            "output is not JSON: {error} ({} bytes, starting with \"{}\")",
            bytes.len(),
            shown()
        )
    })
}

/// The most outcomes the writer gathers before it is woken (fewer for a small in-flight limit,
/// so that permits keep flowing back).
const WRITER_BATCH: usize = 64;

/// The writer: owns the sink, the reorder buffer and the progress counters.
struct Writer {
    sink: Box<dyn OutcomeSink>,
    ordered: bool,
    next_seq: u64,
    pending: BTreeMap<u64, Outcome>,
    written: u64,
    progress: Progress,
    error: Option<std::io::Error>,
    /// Set on the first write error: the run stops as if interrupted (e.g. `taskhost run | head`).
    failed: Arc<AtomicBool>,
}

impl Writer {
    fn accept(&mut self, outcome: Outcome) -> u64 {
        if !self.ordered {
            self.emit(&outcome);
            return 1;
        }
        self.pending.insert(outcome.seq, outcome);
        let mut emitted = 0;
        while let Some(outcome) = self.pending.remove(&self.next_seq) {
            self.emit(&outcome);
            self.next_seq += 1;
            emitted += 1;
        }
        emitted
    }

    fn emit(&mut self, outcome: &Outcome) {
        self.progress.record(outcome.status);
        self.written += 1;
        if self.error.is_none() {
            if let Err(error) = self.sink.write(outcome) {
                self.failed.store(true, Ordering::SeqCst);
                self.error = Some(error);
            }
        }
    }

    /// Writes whatever is buffered, in order, gaps and all.
    fn drain_pending(&mut self) -> u64 {
        let pending = std::mem::take(&mut self.pending);
        let count = pending.len() as u64;
        for outcome in pending.into_values() {
            self.emit(&outcome);
        }
        count
    }

    fn flush(&mut self) {
        if let Err(error) = self.sink.flush() {
            self.error.get_or_insert(error);
        }
    }

    /// Lets the sink do periodic work (the journal's commits).
    fn tick(&mut self) {
        if self.error.is_none() {
            if let Err(error) = self.sink.tick() {
                self.failed.store(true, Ordering::SeqCst);
                self.error = Some(error);
            }
        }
    }
}

/// Runs every entry of `source` through the pools and writes one outcome per entry to `sink`.
#[allow(clippy::too_many_arguments)]
pub fn run(
    source: Box<dyn WorkSource>,
    sink: Box<dyn OutcomeSink>,
    catalog: &Catalog,
    pools: Pools,
    options: &RunOptions,
    interrupts: &Arc<Interrupts>,
    bar: &SharedBar,
) -> Result<RunReport> {
    let permits = Arc::new(Permits::new(options.max_in_flight.max(1)));
    let outbox = Arc::new(Outbox::new(
        (options.max_in_flight / 8).clamp(1, WRITER_BATCH),
    ));
    let total_hint = source.len_hint();
    let output_failed = Arc::new(AtomicBool::new(false));
    let writer = Arc::new(Mutex::new(Writer {
        sink,
        ordered: options.ordered,
        next_seq: 0,
        pending: BTreeMap::new(),
        written: 0,
        progress: Progress::new(bar, options.progress, total_hint),
        error: None,
        failed: Arc::clone(&output_failed),
    }));
    // A second Ctrl-C: write what is done and leave.
    {
        let writer = Arc::clone(&writer);
        let outbox = Arc::clone(&outbox);
        interrupts.on_second_signal(move || {
            let mut writer = lock(&writer);
            // Outcomes the writer had not taken yet are finished work too.
            for outcome in outbox.close() {
                writer.accept(outcome);
            }
            writer.drain_pending();
            writer.flush();
            writer.progress.finish();
        });
    }
    let pool_settings = pools.settings;
    let shared = Arc::new(Shared {
        executors: pools.executors,
        outcomes: Arc::clone(&outbox),
        running: Default::default(),
        stopping: AtomicBool::new(false),
        timer: Timer::default(),
        timeout_grace: options.shutdown_grace,
        abandoned: AtomicU64::new(0),
        stuck: pool_settings.iter().map(|_| AtomicUsize::new(0)).collect(),
        max_workers: pool_settings.iter().map(|p| p.max_workers).collect(),
    });
    let timer_thread = timer::spawn(Arc::clone(&shared))?;

    // Plugin code calling `exit` from here on: every record out, then a failing status.
    let exit_watch = {
        let shared = Arc::clone(&shared);
        let writer = Arc::clone(&writer);
        let outbox = Arc::clone(&outbox);
        exit_watch::arm(move || unexpected_exit(&shared, &writer, &outbox))
    };

    // The writer thread.
    let expected = Arc::new(AtomicU64::new(u64::MAX));
    let give_up = Arc::new(AtomicBool::new(false));
    let writer_thread = {
        let writer = Arc::clone(&writer);
        let permits = Arc::clone(&permits);
        let expected = Arc::clone(&expected);
        let give_up = Arc::clone(&give_up);
        std::thread::Builder::new()
            .name("taskhost-writer".to_owned())
            .spawn(move || {
                let mut received = 0u64;
                let mut batch = Vec::new();
                loop {
                    if received >= expected.load(Ordering::SeqCst) || give_up.load(Ordering::SeqCst)
                    {
                        break;
                    }
                    outbox.take_all(&mut batch, Duration::from_millis(50));
                    // One lock of the writer and one permit release per batch.
                    let mut writer = lock(&writer);
                    received += batch.len() as u64;
                    let emitted: u64 = batch.drain(..).map(|o| writer.accept(o)).sum();
                    writer.tick();
                    drop(writer);
                    permits.release(emitted as usize);
                }
                let mut writer = lock(&writer);
                for outcome in outbox.close() {
                    writer.accept(outcome);
                }
                writer.drain_pending();
                writer.flush();
            })
            .context("starting the writer thread")?
    };

    // The reader thread: a bounded channel keeps it a little ahead of the dispatcher.
    let (entry_tx, entry_rx) = handoff::channel::<std::io::Result<Entry>>();
    let stop_reading = Arc::new(AtomicBool::new(false));
    {
        let stop_reading = Arc::clone(&stop_reading);
        let mut source = source;
        std::thread::Builder::new()
            .name("taskhost-reader".to_owned())
            .spawn(move || loop {
                if stop_reading.load(Ordering::SeqCst) {
                    break;
                }
                match source.next_entry() {
                    Ok(Some(mut entry)) => {
                        // Parsed here, not by the dispatcher (the pipeline's busiest thread). A
                        // line that does not parse goes on as it is: the dispatcher reports it.
                        if let EntryBody::Line(bytes) = &entry.body {
                            if let Ok(item) = parse_line(bytes, entry.line) {
                                entry.body = EntryBody::Item(item);
                            }
                        }
                        if entry_tx.send(Ok(entry)).is_err() {
                            break;
                        }
                    }
                    Ok(None) => break,
                    Err(error) => {
                        let _ = entry_tx.send(Err(error));
                        break;
                    }
                }
            })
            .context("starting the reader thread")?;
    }

    // The dispatch loop.
    let mut seq = 0u64;
    let mut source_error = None;
    let stop = || interrupts.requested() || output_failed.load(Ordering::SeqCst);
    loop {
        if stop() {
            break;
        }
        let entry = match entry_rx.recv_timeout(Duration::from_millis(50)) {
            Ok(Ok(entry)) => entry,
            Ok(Err(error)) => {
                source_error = Some(format!("reading the input: {error}"));
                break;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        if !permits.acquire(stop) {
            // Interrupted while waiting: this entry was read, so it gets an outcome too.
            cancel_entry(&shared, entry, seq);
            seq += 1;
            break;
        }
        dispatch_entry(&shared, catalog, entry, seq);
        seq += 1;
    }
    if stop() {
        // Entries the reader already handed over get an outcome too; later ones were never
        // taken. They are counted into `expected` before it is published: published first, the
        // writer could count these outcomes in place of those still running and stop early,
        // losing the latter (found by `proptests::an_interrupt_at_any_moment_…`).
        stop_reading.store(true, Ordering::SeqCst);
        while let Some(Ok(entry)) = entry_rx.try_recv() {
            cancel_entry(&shared, entry, seq);
            seq += 1;
        }
    }
    expected.store(seq, Ordering::SeqCst);

    // Wait for every outcome to be written. A signal now (or one that ended the loop above)
    // cancels what is queued, asks what runs to stop, and waits only up to the grace period.
    let mut interrupted = false;
    while !writer_thread.is_finished() {
        if stop() {
            interrupted = interrupts.requested();
            // (The dispatch loop has ended: the reader is done, or the entries it handed over
            // were cancelled above.)
            stop_reading.store(true, Ordering::SeqCst);
            shared.stop_all();
            let deadline = Instant::now() + options.shutdown_grace;
            while !writer_thread.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            shared.abandon_running("still running when the shutdown grace period ended");
            // Every outcome is sent by now; a moment for the writer to take them, then stop.
            let deadline = Instant::now() + Duration::from_secs(2);
            while !writer_thread.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            give_up.store(true, Ordering::SeqCst);
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    interrupted |= interrupts.requested();
    drop(entry_rx);
    writer_thread
        .join()
        .map_err(|_| anyhow::anyhow!("the writer thread panicked"))?;
    // Every record is written: an `exit` now loses nothing. (Dropped here, while `shared` is
    // still held: the watch's clone must not be the one that drops the pools.)
    drop(exit_watch);
    shared.timer.shut_down();
    let _ = timer_thread.join();
    interrupts.clear_hook();

    let mut writer = lock(&writer);
    let write_error = writer.error.take();
    let (counts, wall) = writer.progress.finish();
    drop(writer);

    // Shut the pools down; after an interrupt, or once a task was given up on, do not wait for
    // tasks that ignore the stop.
    let abandoned = shared.abandoned.load(Ordering::SeqCst) > 0;
    let mut pools_used = Vec::new();
    for (settings, executor) in pool_settings.iter().zip(&shared.executors) {
        if interrupted || abandoned {
            executor.shutdown_with(ShutdownOptions {
                wait: false,
                cancel_queued: true,
            });
        } else {
            executor.shutdown_and_wait();
        }
        let metrics = executor.metrics();
        if metrics.completed > 0 || metrics.workers_peak > 0 {
            pools_used.push(PoolUse {
                name: settings.name.clone(),
                max_workers: settings.max_workers,
                workers_peak: metrics.workers_peak,
                completed: metrics.completed,
            });
        }
    }
    if interrupted || abandoned {
        // Dropping an executor joins its workers; a task that ignores its stop request would
        // hold the exit up, so the pools are left to the process exit.
        std::mem::forget(shared);
    }
    if let Some(error) = write_error {
        return Err(error).context("writing outcomes");
    }
    Ok(RunReport {
        summary: Summary {
            counts,
            wall,
            pools: pools_used,
            interrupted,
        },
        source_error,
    })
}

/// Plugin code called `exit` during the run (see [`exit_watch`]): records the unfinished items
/// `cancelled`, writes and commits every record, and says what was running.
fn unexpected_exit(shared: &Shared, slot: &Mutex<Writer>, outbox: &Outbox<Outcome>) -> String {
    shared.stopping.store(true, Ordering::SeqCst);
    let running = shared.abandon_running(
        "the process was ended by a plugin calling exit() before this item finished",
    );
    let mut writer = lock(slot);
    for outcome in outbox.close() {
        writer.accept(outcome);
    }
    writer.drain_pending();
    writer.flush();
    drop(writer);
    // The writer thread may hold a batch it took just before: a moment for it to write it.
    std::thread::sleep(Duration::from_millis(20));
    let mut writer = lock(slot);
    writer.drain_pending();
    writer.flush();
    let mut message = format!(
        "a plugin ended the process with exit() in the middle of the run; {} records are written \
         (the unfinished items' as `cancelled`)",
        writer.written
    );
    if let Some(error) = &writer.error {
        message = format!("{message}, but writing them failed: {error}");
    }
    match running.len() {
        0 => message.push_str("; no task was running"),
        n => {
            let shown: Vec<&str> = running.iter().take(10).map(String::as_str).collect();
            let more = if n > shown.len() {
                format!(" and {} more", n - shown.len())
            } else {
                String::new()
            };
            message.push_str(&format!("; running then: {}{more}", shown.join(", ")));
        }
    }
    message
}

fn cancel_entry(shared: &Shared, entry: Entry, seq: u64) {
    let (id, task) = match &entry.body {
        EntryBody::Item(item) => (Some(item.id.clone()), Some(item.task.clone())),
        EntryBody::Line(bytes) => match parse_line(bytes, entry.line) {
            Ok(item) => (Some(item.id), Some(item.task)),
            Err(invalid) => (invalid.id, invalid.task),
        },
        EntryBody::Oversized { .. } => (None, None),
        EntryBody::Refused(invalid) => (invalid.id.clone(), invalid.task.clone()),
    };
    let mut outcome = Outcome::unrun(
        entry.line,
        id,
        task,
        Status::Cancelled,
        "interrupted before it started".to_owned(),
    );
    outcome.seq = seq;
    shared.send(outcome);
}

fn dispatch_entry(shared: &Arc<Shared>, catalog: &Catalog, entry: Entry, seq: u64) {
    let line = entry.line;
    let unrun = |id: Option<String>, task: Option<String>, status: Status, error: String| {
        tracing::info!(
            target: "taskhost",
            line,
            id = id.as_deref(),
            task = task.as_deref(),
            error = %error,
            "{}",
            if status == Status::Invalid { "item.invalid" } else { "item.rejected" }
        );
        let mut outcome = Outcome::unrun(line, id, task, status, error);
        outcome.seq = seq;
        shared.send(outcome);
    };
    let item = match entry.body {
        EntryBody::Item(item) => item,
        EntryBody::Oversized { bytes } => {
            return unrun(
                None,
                None,
                Status::Rejected,
                format!("line {line} is {bytes} bytes, longer than run.max_line_bytes"),
            );
        }
        EntryBody::Refused(invalid) => {
            return unrun(
                invalid.id,
                invalid.task,
                Status::Invalid,
                format!("line {line}: {}", invalid.message),
            )
        }
        EntryBody::Line(bytes) => match parse_line(&bytes, line) {
            Ok(item) => item,
            Err(invalid) => {
                return unrun(
                    invalid.id,
                    invalid.task,
                    Status::Invalid,
                    format!("line {line}: {}", invalid.message),
                )
            }
        },
    };
    let Some(task) = catalog.get(&item.task) else {
        let error = format!(
            "line {line}: unknown task {:?}: no loaded plugin provides it (see `taskhost plugins`)",
            item.task
        );
        return unrun(Some(item.id), Some(item.task), Status::Rejected, error);
    };
    let span = tracing::info_span!(
        target: "taskhost",
        "item",
        id = %item.id,
        task = %task.name,
        plugin = %task.plugin,
        pool = %task.pool_name,
        line,
    );
    shared.submit(Job {
        seq,
        line,
        item,
        task: Arc::clone(task),
        attempt: 1,
        waited: Duration::ZERO,
        ran: Duration::ZERO,
        span,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Collects what is written.
    #[derive(Debug, Clone, Default)]
    struct Collect(Arc<Mutex<Vec<u64>>>);

    impl OutcomeSink for Collect {
        fn write(&mut self, outcome: &Outcome) -> std::io::Result<()> {
            lock(&self.0).push(outcome.line);
            Ok(())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn writer(ordered: bool, sink: Collect) -> Writer {
        Writer {
            sink: Box::new(sink),
            ordered,
            next_seq: 0,
            pending: BTreeMap::new(),
            written: 0,
            progress: Progress::new(&SharedBar::default(), false, None),
            error: None,
            failed: Arc::new(AtomicBool::new(false)),
        }
    }

    fn outcome(seq: u64) -> Outcome {
        let mut outcome = Outcome::unrun(seq + 1, None, None, Status::Ok, String::new());
        outcome.seq = seq;
        outcome
    }

    #[test]
    fn sequence_numbers_spread_over_the_table() {
        use std::hash::BuildHasher;
        let build = BuildHasherDefault::<SeqHasher>::default();
        let hashes: std::collections::HashSet<u64> =
            (0..10_000u64).map(|n| build.hash_one(n)).collect();
        assert_eq!(hashes.len(), 10_000);
        // hashbrown takes its 7 control bits from the top: they must vary with the key too.
        let tops: std::collections::HashSet<u64> =
            (0..1_000u64).map(|n| build.hash_one(n) >> 57).collect();
        assert!(tops.len() > 100, "{} distinct top bits", tops.len());
        let mut map: HashMap<u64, u64, BuildHasherDefault<SeqHasher>> = HashMap::default();
        map.extend((0..1_000).map(|n| (n, n * 2)));
        assert!((0..1_000).all(|n| map[&n] == n * 2));
    }

    #[test]
    fn the_writer_reorders_and_counts_what_it_emits() {
        let sink = Collect::default();
        let mut writer = writer(true, sink.clone());
        assert_eq!(writer.accept(outcome(2)), 0);
        assert_eq!(writer.accept(outcome(1)), 0);
        assert_eq!(writer.accept(outcome(0)), 3);
        assert_eq!(writer.accept(outcome(4)), 0);
        assert_eq!(*lock(&sink.0), [1, 2, 3]);
        // An emergency flush writes what is buffered, gaps and all.
        assert_eq!(writer.drain_pending(), 1);
        assert_eq!(*lock(&sink.0), [1, 2, 3, 5]);
    }

    #[test]
    fn the_unordered_writer_writes_at_once() {
        let sink = Collect::default();
        let mut writer = writer(false, sink.clone());
        assert_eq!(writer.accept(outcome(3)), 1);
        assert_eq!(writer.accept(outcome(0)), 1);
        assert_eq!(*lock(&sink.0), [4, 1]);
    }

    #[test]
    fn permits_bound_and_give_up_on_stop() {
        let permits = Permits::new(2);
        assert!(permits.acquire(|| false));
        assert!(permits.acquire(|| false));
        let stop = AtomicBool::new(false);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                std::thread::sleep(Duration::from_millis(100));
                stop.store(true, Ordering::SeqCst);
            });
            assert!(!permits.acquire(|| stop.load(Ordering::SeqCst)));
        });
        permits.release(1);
        assert!(permits.acquire(|| false));
    }

    #[test]
    fn output_that_is_not_json_is_an_error_that_shows_it() {
        assert_eq!(output_json(br#"{"a":1}"#).unwrap().get(), r#"{"a":1}"#);
        assert_eq!(output_json(b" 5\n").unwrap().get(), "5");
        assert_eq!(
            output_json(b"plain text").unwrap_err(),
            "output is not JSON: expected value at line 1 column 1 (10 bytes, starting with \"plain text\")"
        );
        assert_eq!(
            output_json(&[b'"', 0xff, b'"']).unwrap_err(),
            "output is not JSON: invalid UTF-8 at byte 1 of 3 (output starts with \"\\\"\\xff\\\"\")"
        );
        assert!(output_json(b"").unwrap_err().contains("EOF"));
    }
}
