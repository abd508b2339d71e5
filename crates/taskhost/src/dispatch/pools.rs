//! The pools of a run, one executor per `[pools.<name>]` of the settings. In an isolated pool
//! (`isolation = "process"`) each worker thread owns a worker process (its executor worker
//! state) and hands it its tasks; [`Isolated`] runs one task that way and keeps the pool's
//! quarantine.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use taskhost_executor::Executor;

use super::catalog::ResolvedTask;
use super::job::{AttemptFailure, AttemptResult};
use crate::config::settings::{Isolation, PoolSettings, Settings, WhenFull};
#[cfg(unix)]
use crate::isolation::{ChildSpec, ChildWorker, Crash, Quarantine};

/// How long a task in a worker process has to stop after it is asked to (its timeout passed, or
/// the run is stopping) before its process is killed.
pub const KILL_GRACE: Duration = Duration::from_secs(1);

/// The pools, built from the settings.
#[derive(Debug)]
pub struct Pools {
    pub settings: Vec<PoolSettings>,
    pub executors: Vec<Executor>,
    /// Per pool, for an isolated one: how its tasks reach their worker processes.
    pub(crate) isolated: Vec<Option<Arc<Isolated>>>,
}

/// How to start a worker process, for the pools that need one (`None` where the platform has
/// no isolated pools).
#[cfg(unix)]
pub type WorkerProcess = Arc<ChildSpec>;
#[cfg(not(unix))]
pub type WorkerProcess = ();

impl Pools {
    /// Builds every pool of `settings`; `worker_process` says how to start the worker processes
    /// of the isolated ones (an error if one is isolated and it is `None`).
    pub fn build(settings: &Settings, worker_process: Option<&WorkerProcess>) -> Result<Self> {
        let mut built = Self {
            settings: Vec::new(),
            executors: Vec::new(),
            isolated: Vec::new(),
        };
        for pool in settings.pools.values() {
            let when_full = match pool.when_full {
                WhenFull::Block => taskhost_executor::WhenFull::Block,
                WhenFull::Reject => taskhost_executor::WhenFull::Reject,
                WhenFull::CallerRuns => taskhost_executor::WhenFull::CallerRuns,
            };
            let mut builder = Executor::builder()
                .name(pool.name.clone())
                .max_workers(pool.max_workers)
                .thread_name_prefix(pool.thread_name_prefix.clone())
                .idle_timeout(pool.idle_timeout)
                .max_tasks_per_worker(pool.max_tasks_per_worker)
                .queue_capacity(pool.queue_capacity)
                .when_full(when_full)
                // Every outcome record carries `waited_ms` and `ran_ms`.
                .task_timings(true);
            let mut isolated = None;
            if pool.isolation == Isolation::Process {
                let spec = worker_process.with_context(|| {
                    format!(
                        "pool `{}` is isolated, and this host cannot start worker processes",
                        pool.name
                    )
                })?;
                builder = with_worker_processes(builder, spec, pool);
                isolated = Some(Arc::new(Isolated::new(pool)));
            }
            let executor = builder
                .build()
                .with_context(|| format!("building pool `{}`", pool.name))?;
            built.settings.push(pool.clone());
            built.executors.push(executor);
            built.isolated.push(isolated);
        }
        Ok(built)
    }

    pub fn index(&self, name: &str) -> Option<usize> {
        self.settings.iter().position(|p| p.name == name)
    }
}

/// Gives each worker of the pool a worker process: started with the worker, ended when it
/// retires (idle, or after `max_tasks_per_worker` tasks) or the pool shuts down.
#[cfg(unix)]
fn with_worker_processes(
    builder: taskhost_executor::ExecutorBuilder,
    spec: &WorkerProcess,
    pool: &PoolSettings,
) -> taskhost_executor::ExecutorBuilder {
    let spec = Arc::new(spec.for_pool(pool.memory_limit, pool.cpu_limit));
    builder.worker_state(move |worker| ChildWorker::new(Arc::clone(&spec), worker.worker()))
}

#[cfg(not(unix))]
fn with_worker_processes(
    builder: taskhost_executor::ExecutorBuilder,
    _spec: &WorkerProcess,
    _pool: &PoolSettings,
) -> taskhost_executor::ExecutorBuilder {
    builder
}

/// An isolated pool's side of running a task in a worker process.
#[derive(Debug)]
pub(crate) struct Isolated {
    pool: String,
    quarantine_after: u32,
    #[cfg(unix)]
    quarantine: Quarantine,
}

impl Isolated {
    fn new(pool: &PoolSettings) -> Isolated {
        Isolated {
            pool: pool.name.clone(),
            quarantine_after: pool.quarantine_after,
            #[cfg(unix)]
            quarantine: Quarantine::new(pool.quarantine_after),
        }
    }

    /// Runs `task` on `input` in this worker's process (on a pool worker thread), unless its
    /// plugin is quarantined. `cancelled` is the task's stop request.
    #[cfg(unix)]
    pub(crate) fn run(
        &self,
        task: &ResolvedTask,
        input: &[u8],
        cancelled: &dyn Fn() -> bool,
    ) -> AttemptResult {
        if self.quarantine.is_quarantined(&task.plugin) {
            return Err(AttemptFailure::Quarantined(self.quarantined(&task.plugin)));
        }
        let ran = taskhost_executor::with_worker_state(|child: &mut ChildWorker| {
            child.run(&task.plugin, &task.name, input, cancelled, KILL_GRACE)
        });
        let result = match ran {
            None => Err(AttemptFailure::NotStarted(
                "the task ran outside the pool's worker threads, where there is no worker process"
                    .to_owned(),
            )),
            Some(Ok(Ok(output))) => Ok(output),
            Some(Ok(Err(failure))) => Err(AttemptFailure::Plugin(failure)),
            Some(Err(Crash::Died(why))) => Err(AttemptFailure::Crashed(why)),
            Some(Err(Crash::Killed(why))) => Err(AttemptFailure::Killed(why)),
            Some(Err(Crash::NotStarted(why))) => Err(AttemptFailure::NotStarted(why)),
        };
        let crashed = matches!(result, Err(AttemptFailure::Crashed(_)));
        let before = self.quarantine.is_quarantined(&task.plugin);
        if self.quarantine.record(&task.plugin, crashed) && !before {
            tracing::warn!(
                target: "taskhost",
                plugin = %task.plugin,
                pool = %self.pool,
                crashes = self.quarantine_after,
                "plugin.quarantined: its remaining items in this pool are rejected"
            );
        }
        result
    }

    #[cfg(not(unix))]
    pub(crate) fn run(&self, _: &ResolvedTask, _: &[u8], _: &dyn Fn() -> bool) -> AttemptResult {
        Err(AttemptFailure::NotStarted(
            "isolated pools need a Unix system".to_owned(),
        ))
    }

    fn quarantined(&self, plugin: &str) -> String {
        format!(
            "plugin `{plugin}` is quarantined in pool `{}`: its worker process crashed on {} items \
             in a row, so its remaining items are not run (pools.{}.quarantine_after)",
            self.pool, self.quarantine_after, self.pool
        )
    }
}
