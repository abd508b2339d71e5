//! The executor scenarios (1–4, 7, 8 of issue 5), generic over [`Pool`], and the plan of how much
//! of each to run.

use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::pools::{
    trivial, Blocking, ExecutorExecute, ExecutorSubmit, Floor, HandleFloor, Pool, Rayon, Spawning,
    Submitting, ThreadPoolCrate, Tokio,
};
use crate::procfs;

/// Workers in every pool, as in issue 5.
pub const WORKERS: usize = 2;

/// How many tasks and repetitions each scenario runs.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// Whether this is the `--quick` plan.
    pub quick: bool,
    /// Scenario 1: tasks per repetition, and repetitions.
    pub throughput_tasks: usize,
    pub throughput_reps: usize,
    /// Scenario 1 for Python, which is far slower: fewer tasks, the figure is per task.
    pub python_throughput_tasks: usize,
    /// Repetitions for every Python scenario that repeats.
    pub python_reps: usize,
    /// Scenario 2: round trips, each one a sample.
    pub round_trips: usize,
    pub python_round_trips: usize,
    /// Scenario 3: submitting threads, tasks per thread, repetitions.
    pub submitters: usize,
    pub tasks_per_submitter: usize,
    pub many_submitters_reps: usize,
    pub python_tasks_per_submitter: usize,
    /// Scenario 4: pools built, each one a sample.
    pub cold_starts: usize,
    pub python_cold_starts: usize,
    /// Scenario 5: calls per repetition, and repetitions.
    pub plugin_calls: usize,
    pub plugin_reps: usize,
    /// Scenario 6: items per run, runs, and the larger input that checks that peak RSS stays flat.
    pub host_items: usize,
    pub host_reps: usize,
    pub host_items_large: usize,
    /// Scenario 7: tasks queued behind the blocked pool.
    pub memory_tasks: usize,
    pub python_memory_tasks: usize,
    /// Scenario 8: seconds each idle process is watched, and processes per contender.
    pub idle_seconds: f64,
    pub idle_reps: usize,
    /// Scenario 9: items per run, and runs.
    pub cluster_items: usize,
    pub cluster_reps: usize,
}

impl Plan {
    /// The full plan: the sizes issue 5 names.
    pub fn full() -> Plan {
        Plan {
            quick: false,
            throughput_tasks: 1_000_000,
            throughput_reps: 10,
            python_throughput_tasks: 100_000,
            python_reps: 3,
            round_trips: 100_000,
            python_round_trips: 10_000,
            submitters: 4,
            tasks_per_submitter: 250_000,
            many_submitters_reps: 10,
            python_tasks_per_submitter: 25_000,
            cold_starts: 200,
            python_cold_starts: 50,
            plugin_calls: 10_000_000,
            plugin_reps: 10,
            host_items: 1_000_000,
            host_reps: 3,
            host_items_large: 4_000_000,
            memory_tasks: 1_000_000,
            python_memory_tasks: 1_000_000,
            idle_seconds: 2.0,
            idle_reps: 3,
            cluster_items: 50_000,
            cluster_reps: 3,
        }
    }

    /// The `--quick` plan: under two minutes on two loaded cores; per-task figures stay comparable.
    pub fn quick() -> Plan {
        Plan {
            quick: true,
            throughput_tasks: 100_000,
            throughput_reps: 5,
            python_throughput_tasks: 20_000,
            python_reps: 2,
            round_trips: 10_000,
            python_round_trips: 2_000,
            submitters: 4,
            tasks_per_submitter: 25_000,
            many_submitters_reps: 3,
            python_tasks_per_submitter: 5_000,
            cold_starts: 30,
            python_cold_starts: 10,
            plugin_calls: 1_000_000,
            plugin_reps: 5,
            host_items: 100_000,
            host_reps: 2,
            host_items_large: 400_000,
            memory_tasks: 200_000,
            python_memory_tasks: 100_000,
            idle_seconds: 2.0,
            idle_reps: 2,
            cluster_items: 10_000,
            cluster_reps: 2,
        }
    }
}

/// The Rust contenders of the executor scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contender {
    /// Two std threads and a crossbeam channel of boxed closures.
    Floor,
    /// The floor plus a result handle per task.
    HandleFloor,
    /// taskhost-executor's `submit`, a future per task.
    ExecutorSubmit,
    /// taskhost-executor's fire-and-forget `execute`.
    ExecutorExecute,
    /// rayon's `ThreadPool::spawn`.
    Rayon,
    /// The `threadpool` crate.
    ThreadPool,
    /// tokio's `spawn_blocking`.
    Tokio,
    /// smol's `blocking::unblock`.
    Blocking,
}

impl Contender {
    /// Every contender, the floor first.
    pub const ALL: [Contender; 8] = [
        Contender::Floor,
        Contender::HandleFloor,
        Contender::ExecutorSubmit,
        Contender::ExecutorExecute,
        Contender::Rayon,
        Contender::ThreadPool,
        Contender::Tokio,
        Contender::Blocking,
    ];

    /// Whether this contender belongs in the scenario with this key. The handle floor is a
    /// reference for batches of handles (scenarios 1, 3 and 7); it is no pool, and its waiter
    /// parks at once, so a round trip (scenario 2) would measure the scheduler, not a handle.
    pub fn runs_in(self, scenario: &str) -> bool {
        self != Contender::HandleFloor
            || matches!(scenario, "throughput" | "many-submitters" | "memory")
    }

    /// The name in the report.
    pub fn name(self) -> &'static str {
        match self {
            Contender::Floor => "floor",
            Contender::HandleFloor => "handle floor",
            Contender::ExecutorSubmit => "taskhost-executor submit",
            Contender::ExecutorExecute => "taskhost-executor execute",
            Contender::Rayon => "rayon spawn",
            Contender::ThreadPool => "threadpool execute",
            Contender::Tokio => "tokio spawn_blocking",
            Contender::Blocking => "blocking::unblock",
        }
    }

    /// The name on the command line (`--contender`, and the hidden child commands).
    pub fn key(self) -> &'static str {
        match self {
            Contender::Floor => "floor",
            Contender::HandleFloor => "handle-floor",
            Contender::ExecutorSubmit => "executor-submit",
            Contender::ExecutorExecute => "executor-execute",
            Contender::Rayon => "rayon",
            Contender::ThreadPool => "threadpool",
            Contender::Tokio => "tokio",
            Contender::Blocking => "blocking",
        }
    }

    /// The contender with this key.
    pub fn from_key(key: &str) -> Result<Contender> {
        Contender::ALL
            .into_iter()
            .find(|contender| contender.key() == key)
            .ok_or_else(|| {
                anyhow!(
                    "unknown contender `{key}`, expected one of {}",
                    Contender::keys()
                )
            })
    }

    /// Every key, for error messages.
    pub fn keys() -> String {
        Contender::ALL.map(Contender::key).join(", ")
    }
}

/// Calls the generic function `$function::<P>($arguments)` with `P` the pool type of `$contender`.
macro_rules! with_pool {
    ($contender:expr, $function:ident ( $($argument:expr),* )) => {
        match $contender {
            Contender::Floor => $function::<Spawning<Floor>>($($argument),*),
            Contender::HandleFloor => $function::<Submitting<HandleFloor>>($($argument),*),
            Contender::ExecutorSubmit => $function::<Submitting<ExecutorSubmit>>($($argument),*),
            Contender::ExecutorExecute => $function::<Spawning<ExecutorExecute>>($($argument),*),
            Contender::Rayon => $function::<Spawning<Rayon>>($($argument),*),
            Contender::ThreadPool => $function::<Spawning<ThreadPoolCrate>>($($argument),*),
            Contender::Tokio => $function::<Submitting<Tokio>>($($argument),*),
            Contender::Blocking => $function::<Submitting<Blocking>>($($argument),*),
        }
    };
}

/// Scenario 1: nanoseconds per task of submitting `tasks` trivial tasks from one thread and
/// waiting for all of them; one sample per repetition.
pub fn throughput(contender: Contender, tasks: usize, reps: usize) -> Result<Vec<f64>> {
    fn run<P: Pool>(tasks: usize, reps: usize) -> Result<Vec<f64>> {
        let pool = P::build(WORKERS)?;
        pool.run_batch(tasks.min(10_000)); // warm-up: workers started, allocator primed
        Ok((0..reps)
            .map(|_| {
                let start = Instant::now();
                pool.run_batch(tasks);
                start.elapsed().as_nanos() as f64 / tasks as f64
            })
            .collect())
    }
    with_pool!(contender, run(tasks, reps))
}

/// Scenario 2: nanoseconds of each of `iterations` round trips (submit one task, wait for it).
pub fn round_trip(contender: Contender, iterations: usize) -> Result<Vec<f64>> {
    fn run<P: Pool>(iterations: usize) -> Result<Vec<f64>> {
        let pool = P::build(WORKERS)?;
        // Every pool starts all its workers first (a batch as wide as the pool), as a pool
        // that has been serving for a while has: pools that start workers on demand would
        // otherwise run every round trip on one.
        pool.wait_batch(pool.submit_batch(WORKERS, trivial));
        for index in 0..iterations.min(1_000) as u64 {
            black_box(pool.round_trip(index));
        }
        Ok((0..iterations as u64)
            .map(|index| {
                let start = Instant::now();
                black_box(pool.round_trip(index));
                start.elapsed().as_nanos() as f64
            })
            .collect())
    }
    with_pool!(contender, run(iterations))
}

/// Scenario 3: nanoseconds per task with `submitters` threads each submitting `tasks_per_submitter`
/// trivial tasks and waiting for its own; one sample per repetition.
pub fn many_submitters(
    contender: Contender,
    submitters: usize,
    tasks_per_submitter: usize,
    reps: usize,
) -> Result<Vec<f64>> {
    fn run<P: Pool>(
        submitters: usize,
        tasks_per_submitter: usize,
        reps: usize,
    ) -> Result<Vec<f64>> {
        let pool = P::build(WORKERS)?;
        pool.run_batch(tasks_per_submitter.min(10_000));
        let mut samples = Vec::with_capacity(reps);
        for _ in 0..reps {
            let start_line = Barrier::new(submitters + 1);
            let elapsed = thread::scope(|scope| {
                for _ in 0..submitters {
                    scope.spawn(|| {
                        start_line.wait();
                        pool.run_batch(tasks_per_submitter);
                    });
                }
                start_line.wait();
                let start = Instant::now();
                // Leaving the scope joins every submitter.
                start
            })
            .elapsed();
            samples.push(elapsed.as_nanos() as f64 / (submitters * tasks_per_submitter) as f64);
        }
        Ok(samples)
    }
    with_pool!(contender, run(submitters, tasks_per_submitter, reps))
}

/// Scenario 4: nanoseconds from nothing to the first task's result (build the pool, one round
/// trip); the pool is torn down outside the timing. One sample per pool.
pub fn cold_start(contender: Contender, pools: usize) -> Result<Vec<f64>> {
    fn run<P: Pool>(pools: usize) -> Result<Vec<f64>> {
        if let Some(reason) = P::fresh_pool_unsupported() {
            bail!("{reason}");
        }
        let mut samples = Vec::with_capacity(pools);
        for index in 0..pools as u64 {
            let start = Instant::now();
            let pool = P::build(WORKERS)?;
            black_box(pool.round_trip(index));
            samples.push(start.elapsed().as_nanos() as f64);
            drop(pool);
        }
        Ok(samples)
    }
    with_pool!(contender, run(pools))
}

/// Whether this contender's cold start must be measured in fresh child processes, because its
/// pool is global to the process ([`first_task_ns`] in each).
pub fn needs_fresh_process(contender: Contender) -> bool {
    fn run<P: Pool>() -> bool {
        P::fresh_pool_unsupported().is_some()
    }
    with_pool!(contender, run())
}

/// Scenario 4 in a fresh child process: nanoseconds from nothing to the first task's result, on
/// the process's first pool (for global pools, the first use).
pub fn first_task_ns(contender: Contender) -> Result<f64> {
    fn run<P: Pool>() -> Result<f64> {
        let start = Instant::now();
        let pool = P::build(WORKERS)?;
        black_box(pool.round_trip(0));
        Ok(start.elapsed().as_nanos() as f64)
    }
    with_pool!(contender, run())
}

/// What the memory child (scenario 7) reports.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct MemoryFigures {
    /// Tasks queued behind the blocked workers.
    pub tasks: usize,
    /// `VmRSS` just before queueing, KiB.
    pub rss_before_kib: u64,
    /// `VmRSS` with every task queued, KiB.
    pub rss_after_kib: u64,
    /// `VmHWM` (peak RSS) before, KiB.
    pub hwm_before_kib: u64,
    /// `VmHWM` with every task queued, KiB.
    pub hwm_after_kib: u64,
}

impl MemoryFigures {
    /// Resident bytes added per queued task.
    pub fn bytes_per_task(&self) -> f64 {
        (self.rss_after_kib.saturating_sub(self.rss_before_kib) * 1024) as f64 / self.tasks as f64
    }
}

/// Scenario 7, run in a child process: block every worker, queue `tasks` trivial tasks (keeping
/// their handles where the pool gives handles), and read the resident set before and after.
pub fn memory_child(contender: Contender, tasks: usize) -> Result<MemoryFigures> {
    fn run<P: Pool>(tasks: usize) -> Result<MemoryFigures> {
        let pool = P::build(WORKERS)?;
        let (open_gate, gate) = crossbeam_channel::bounded::<()>(0);
        let (started_sender, started) = crossbeam_channel::unbounded::<()>();
        let blockers = pool.submit_batch(WORKERS, move |_| {
            let _ = started_sender.send(());
            // Returns when `open_gate` is dropped.
            let _ = gate.recv();
            0
        });
        for _ in 0..WORKERS {
            started
                .recv_timeout(Duration::from_secs(30))
                .context("waiting for the workers to block")?;
        }
        let rss_before_kib = procfs::self_status_kib("VmRSS")?;
        let hwm_before_kib = procfs::self_status_kib("VmHWM")?;
        let queued = pool.submit_batch(tasks, trivial);
        let rss_after_kib = procfs::self_status_kib("VmRSS")?;
        let hwm_after_kib = procfs::self_status_kib("VmHWM")?;
        drop(open_gate);
        pool.wait_batch(blockers);
        pool.wait_batch(queued);
        Ok(MemoryFigures {
            tasks,
            rss_before_kib,
            rss_after_kib,
            hwm_before_kib,
            hwm_after_kib,
        })
    }
    with_pool!(contender, run(tasks))
}

/// What the idle child (scenario 8) reports.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct IdleFigures {
    /// CPU nanoseconds all threads ran over the window, from per-thread schedstat (precise).
    pub cpu_ns: u64,
    /// The same from `/proc/self/stat` clock ticks (10 ms resolution, counts exited threads).
    pub tick_cpu_ns: u64,
    /// Threads in the process at the end of the window.
    pub threads: u64,
}

/// Scenario 8, run in a child process: start a pool, make every worker exist, then watch the
/// process's CPU time over `seconds` of doing nothing. `None` watches a process with no pool.
pub fn idle_child(contender: Option<Contender>, seconds: f64) -> Result<IdleFigures> {
    fn run<P: Pool>(seconds: f64) -> Result<IdleFigures> {
        let pool = P::build(WORKERS)?;
        // Two tasks that wait for each other need both workers at once.
        let both_running = Arc::new(Barrier::new(WORKERS));
        let pending = pool.submit_batch(WORKERS, move |_| {
            both_running.wait();
            0
        });
        pool.wait_batch(pending);
        let figures = watch_idle(seconds);
        drop(pool);
        figures
    }
    match contender {
        Some(contender) => with_pool!(contender, run(seconds)),
        None => watch_idle(seconds),
    }
}

/// Measures this process's CPU time over `seconds` of sleeping.
fn watch_idle(seconds: f64) -> Result<IdleFigures> {
    thread::sleep(Duration::from_millis(50)); // let the last task's wake-ups settle
    let threads_before = procfs::self_thread_run_ns().unwrap_or_default();
    let ticks_before = procfs::self_cpu_ns_from_ticks()?;
    thread::sleep(Duration::from_secs_f64(seconds));
    let threads_after = procfs::self_thread_run_ns().unwrap_or_default();
    let ticks_after = procfs::self_cpu_ns_from_ticks()?;
    Ok(IdleFigures {
        cpu_ns: procfs::run_ns_between(&threads_before, &threads_after),
        tick_cpu_ns: ticks_after.saturating_sub(ticks_before),
        threads: procfs::self_status_kib("Threads")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scenario_runs_on_every_contender_in_miniature() {
        for contender in Contender::ALL {
            assert_eq!(
                throughput(contender, 100, 2).unwrap().len(),
                2,
                "{contender:?}"
            );
            assert_eq!(
                round_trip(contender, 10).unwrap().len(),
                10,
                "{contender:?}"
            );
            assert_eq!(
                many_submitters(contender, 2, 50, 2).unwrap().len(),
                2,
                "{contender:?}"
            );
            // The kernel's RSS counters are approximate (per-CPU batches), so a thousand tasks
            // show no reliable growth; only check that the child's protocol completes.
            assert_eq!(memory_child(contender, 1_000).unwrap().tasks, 1_000);
        }
        assert_eq!(cold_start(Contender::Floor, 3).unwrap().len(), 3);
        assert!(cold_start(Contender::Blocking, 3).is_err());
        assert!(needs_fresh_process(Contender::Blocking));
        assert!(!needs_fresh_process(Contender::ExecutorSubmit));
        assert!(first_task_ns(Contender::Floor).unwrap() > 0.0);
    }

    #[test]
    fn keys_round_trip() {
        for contender in Contender::ALL {
            assert_eq!(Contender::from_key(contender.key()).unwrap(), contender);
        }
        assert!(Contender::from_key("nope").is_err());
    }

    #[test]
    fn bytes_per_task_uses_the_resident_set_difference() {
        let figures = MemoryFigures {
            tasks: 1_024,
            rss_before_kib: 1_000,
            rss_after_kib: 1_064,
            hwm_before_kib: 1_000,
            hwm_after_kib: 1_064,
        };
        assert_eq!(figures.bytes_per_task(), 64.0);
    }
}
