//! Soak test: random submits, panics, cancels, stop requests, idle retirements and recycling
//! across several pools for a while, then an audit of the accounting.
//!
//! ```text
//! cargo run --release -p taskhost-executor --example soak -- --secs 300 [--seed N] [--submitters 4]
//! ```
//!
//! `cargo xtask soak` runs it for minutes; `cargo xtask test` runs a short version. It exits
//! non-zero, naming the broken rule, when any of these fails:
//!
//! - every accepted future resolved exactly once (its done callback ran once, and its final
//!   state agrees with what the task did);
//! - per pool, the pool's metrics equal our own tally: `submitted = completed + failed +
//!   cancelled`, and `rejected` equals the refusals we saw;
//! - no worker thread is alive after `shutdown(wait = true)`, and the process has as many
//!   threads at the end as before the pools were built;
//! - resident memory is back near its level after the warm-up round.

use std::fs;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use taskhost_executor::{
    CancelReason, Executor, FutureState, ResultError, SubmitError, TaskFuture, TaskOptions,
    WhenFull,
};

/// What the submitters saw happen to their tasks, per pool.
#[derive(Default)]
struct Tally {
    accepted: AtomicU64,
    rejected: AtomicU64,
    /// Done callbacks that ran, by final state.
    ok: AtomicU64,
    panicked: AtomicU64,
    cancelled: AtomicU64,
    /// A done callback that found the future not done, or a future whose state disagreed with
    /// the task (a value where a panic was thrown, ...).
    wrong: AtomicU64,
}

impl Tally {
    fn resolved(&self) -> u64 {
        self.ok.load(Ordering::Relaxed)
            + self.panicked.load(Ordering::Relaxed)
            + self.cancelled.load(Ordering::Relaxed)
    }
}

/// What a task was meant to do, so its callback can check the outcome.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Work,
    Panic,
    /// Loops until asked to stop (or a short deadline passes).
    Stoppable,
}

/// A small deterministic generator (xorshift), so a failing seed can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

struct Options {
    secs: u64,
    seed: u64,
    submitters: usize,
}

fn parse_options() -> Result<Options, String> {
    let mut options = Options {
        secs: 10,
        seed: 0x5eed,
        submitters: 4,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| -> Result<u64, String> {
            let text = args.next().ok_or(format!("{name} needs a value"))?;
            text.parse()
                .map_err(|_| format!("{name}: expected a whole number, found {text:?}"))
        };
        match arg.as_str() {
            "--secs" => options.secs = value("--secs")?,
            "--seed" => options.seed = value("--seed")?.max(1),
            "--submitters" => options.submitters = value("--submitters")?.max(1) as usize,
            other => {
                return Err(format!(
                    "unknown argument {other:?} (expected --secs, --seed, --submitters)"
                ))
            }
        }
    }
    Ok(options)
}

fn pools() -> Vec<Executor> {
    let build = |builder: taskhost_executor::ExecutorBuilder| builder.build().expect("valid pool");
    vec![
        // Idle retirement all the time.
        build(
            Executor::builder()
                .name("soak-idle")
                .max_workers(4)
                .idle_timeout(Some(Duration::from_millis(2))),
        ),
        // Recycling after a few tasks, bounded queue that blocks.
        build(
            Executor::builder()
                .name("soak-recycle")
                .max_workers(3)
                .max_tasks_per_worker(7)
                .queue_capacity(64)
                .when_full(WhenFull::Block),
        ),
        // A small bounded queue that rejects.
        build(
            Executor::builder()
                .name("soak-reject")
                .max_workers(2)
                .queue_capacity(8)
                .when_full(WhenFull::Reject),
        ),
        // Caller-runs, with idle retirement and recycling together.
        build(
            Executor::builder()
                .name("soak-caller")
                .max_workers(2)
                .queue_capacity(4)
                .when_full(WhenFull::CallerRuns)
                .idle_timeout(Some(Duration::from_millis(1)))
                .max_tasks_per_worker(13),
        ),
    ]
}

fn thread_count() -> Option<usize> {
    fs::read_dir("/proc/self/task").ok().map(|d| d.count())
}

fn rss_kib() -> Option<u64> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Checks a finished future against what its task was meant to do.
fn audit(future: &TaskFuture<u64>, kind: Kind, tally: &Tally) {
    let state = future.state();
    let outcome = future.result(Some(Duration::ZERO));
    let agrees = match (state, outcome) {
        (FutureState::Finished, Ok(_)) => {
            tally.ok.fetch_add(1, Ordering::Relaxed);
            kind != Kind::Panic
        }
        (FutureState::Finished, Err(ResultError::Panicked(message))) => {
            tally.panicked.fetch_add(1, Ordering::Relaxed);
            kind == Kind::Panic && message.starts_with("soak panic")
        }
        (FutureState::Cancelled, Err(ResultError::Cancelled(reason))) => {
            tally.cancelled.fetch_add(1, Ordering::Relaxed);
            matches!(reason, CancelReason::User | CancelReason::StopRequested)
        }
        _ => false,
    };
    if !agrees {
        tally.wrong.fetch_add(1, Ordering::Relaxed);
    }
}

/// One submitter: random tasks on random pools until the deadline.
fn submit_loop(pools: &[Executor], tallies: &'static [Tally], seed: u64, deadline: Instant) {
    let mut rng = Rng(seed);
    let mut pending_stops: Vec<TaskFuture<u64>> = Vec::new();
    while Instant::now() < deadline {
        let index = rng.below(pools.len() as u64) as usize;
        let (pool, tally): (_, &'static Tally) = (&pools[index], &tallies[index]);
        let roll = rng.below(100);
        let kind = match roll {
            0..=4 => Kind::Panic,
            5..=7 => Kind::Stoppable,
            _ => Kind::Work,
        };
        let spin = rng.below(200);
        let submitted = pool.submit_with(TaskOptions::new(), move |ctx| -> u64 {
            match kind {
                Kind::Panic => panic!("soak panic {spin}"),
                Kind::Stoppable => {
                    let until = Instant::now() + Duration::from_millis(20);
                    while !ctx.is_cancelled() && Instant::now() < until {
                        thread::yield_now();
                    }
                    spin
                }
                Kind::Work => (0..spin).fold(0u64, |acc, x| acc.wrapping_mul(31).wrapping_add(x)),
            }
        });
        match submitted {
            Ok(future) => {
                tally.accepted.fetch_add(1, Ordering::Relaxed);
                let fired = Arc::new(AtomicBool::new(false));
                future.add_done_callback(move |done| {
                    if fired.swap(true, Ordering::Relaxed) || !done.done() {
                        tally.wrong.fetch_add(1, Ordering::Relaxed);
                    }
                    audit(done, kind, tally);
                });
                match rng.below(10) {
                    0 => {
                        future.cancel();
                    }
                    1 if kind == Kind::Stoppable => pending_stops.push(future),
                    _ => {}
                }
            }
            Err(SubmitError::QueueFull(_)) => {
                tally.rejected.fetch_add(1, Ordering::Relaxed);
            }
            Err(other) => panic!("unexpected refusal while running: {other}"),
        }
        if pending_stops.len() > 8 {
            for future in pending_stops.drain(..) {
                future.request_stop();
            }
        }
        // Now and then go quiet, so idle workers retire and new ones start.
        if rng.below(5_000) == 0 {
            thread::sleep(Duration::from_millis(5));
        }
    }
    for future in pending_stops {
        future.request_stop();
    }
}

fn main() -> ExitCode {
    let options = match parse_options() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("soak: error: {message}");
            return ExitCode::from(2);
        }
    };
    // The soak's own panics are expected: keep them off stderr, report any other.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info.payload().downcast_ref::<String>().map(String::as_str);
        if !message.is_some_and(|m| m.starts_with("soak panic")) {
            default_hook(info);
        }
    }));
    let threads_before = thread_count();
    let pools = pools();
    // Leaked: done callbacks may outlive any scope, and the process ends right after.
    let tallies: &'static [Tally] = Box::leak(
        (0..pools.len())
            .map(|_| Tally::default())
            .collect::<Vec<_>>()
            .into_boxed_slice(),
    );

    let started = Instant::now();
    let mut rss_after_warmup = None;
    let total = Duration::from_secs(options.secs);
    // A warm-up round of a tenth of the time (at least one second), then the rest.
    let warmup = (total / 10).max(Duration::from_secs(1)).min(total);
    for (round, length) in [(0, warmup), (1, total.saturating_sub(warmup))] {
        let deadline = Instant::now() + length;
        thread::scope(|scope| {
            for n in 0..options.submitters {
                let seed = options
                    .seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(n as u64 * 2 + round + 1);
                let pools = &pools;
                scope.spawn(move || submit_loop(pools, tallies, seed | 1, deadline));
            }
        });
        if round == 0 {
            rss_after_warmup = rss_kib();
        }
    }

    let mut failures = Vec::new();
    for (pool, tally) in pools.iter().zip(tallies) {
        pool.shutdown_and_wait();
        let m = pool.metrics();
        let name = pool.name();
        let accepted = tally.accepted.load(Ordering::Relaxed);
        let rejected = tally.rejected.load(Ordering::Relaxed);
        println!(
            "{name:<13} accepted {accepted:>9}  ok {:>9}  panicked {:>7}  cancelled {:>7}  rejected {:>7}  workers spawned {:>6} peak {}",
            tally.ok.load(Ordering::Relaxed),
            tally.panicked.load(Ordering::Relaxed),
            tally.cancelled.load(Ordering::Relaxed),
            rejected,
            m.workers_spawned,
            m.workers_peak,
        );
        let mut check = |ok: bool, what: String| {
            if !ok {
                failures.push(format!("{name}: {what}"));
            }
        };
        check(
            tally.resolved() == accepted,
            format!("{} futures resolved, {accepted} accepted", tally.resolved()),
        );
        check(
            tally.wrong.load(Ordering::Relaxed) == 0,
            format!(
                "{} futures resolved wrongly or twice",
                tally.wrong.load(Ordering::Relaxed)
            ),
        );
        check(
            m.submitted == accepted,
            format!("metrics say {} submitted, we saw {accepted}", m.submitted),
        );
        check(
            m.submitted == m.completed + m.failed + m.cancelled,
            format!(
                "submitted {} != completed {} + failed {} + cancelled {}",
                m.submitted, m.completed, m.failed, m.cancelled
            ),
        );
        check(
            m.completed == tally.ok.load(Ordering::Relaxed),
            format!(
                "metrics completed {} != ok {}",
                m.completed,
                tally.ok.load(Ordering::Relaxed)
            ),
        );
        check(
            m.failed == tally.panicked.load(Ordering::Relaxed),
            format!(
                "metrics failed {} != panicked {}",
                m.failed,
                tally.panicked.load(Ordering::Relaxed)
            ),
        );
        check(
            m.cancelled == tally.cancelled.load(Ordering::Relaxed),
            format!(
                "metrics cancelled {} != cancelled {}",
                m.cancelled,
                tally.cancelled.load(Ordering::Relaxed)
            ),
        );
        check(
            m.rejected == rejected,
            format!(
                "metrics rejected {} != refusals seen {rejected}",
                m.rejected
            ),
        );
        check(
            m.workers_alive == 0,
            format!(
                "{} workers alive after shutdown(wait = true)",
                m.workers_alive
            ),
        );
        check(
            m.workers_spawned == m.workers_retired,
            format!(
                "{} workers spawned, {} retired",
                m.workers_spawned, m.workers_retired
            ),
        );
    }
    drop(pools);

    let threads_after = thread_count();
    if let (Some(before), Some(after)) = (threads_before, threads_after) {
        if after != before {
            failures.push(format!("{before} threads before the pools, {after} after"));
        }
    }
    let rss_end = rss_kib();
    let pushed: u64 = tallies
        .iter()
        .map(|t| t.accepted.load(Ordering::Relaxed) + t.rejected.load(Ordering::Relaxed))
        .sum();
    println!(
        "soak: {pushed} submissions in {:.1}s with {} submitters (seed {}); threads {:?} -> {:?}; RSS after warm-up {:?} KiB, at the end {:?} KiB",
        started.elapsed().as_secs_f64(),
        options.submitters,
        options.seed,
        threads_before,
        threads_after,
        rss_after_warmup,
        rss_end,
    );
    if let (Some(warm), Some(end)) = (rss_after_warmup, rss_end) {
        // Allocator arenas and thread stacks come and go; "back to baseline" is within 32 MiB.
        if end > warm + 32 * 1024 {
            failures.push(format!(
                "RSS grew from {warm} KiB after warm-up to {end} KiB"
            ));
        }
    }
    if failures.is_empty() {
        println!("soak: every rule held");
        ExitCode::SUCCESS
    } else {
        for failure in &failures {
            eprintln!("soak: FAILED: {failure}");
        }
        ExitCode::FAILURE
    }
}
