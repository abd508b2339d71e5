//! Loom models of the pool's core protocol: submit, idle claim, spawn, idle retirement, shutdown,
//! cancel. Under `cfg(loom)` the crate's `sync` seam runs the real protocol code on loom's
//! atomics, locks, threads and a loom-built queue (see `src/sync.rs`).
//!
//! ```text
//! RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
//!     cargo test -p taskhost-executor --test loom --release
//! ```
//!
//! Every model bounds preemptions (loom's exhaustive search is otherwise exponential). A lost
//! task shows up as a loom deadlock (the waiter blocks forever on a future nobody resolves); a
//! double run or a wrong outcome as a failed assertion.
#![cfg(loom)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use taskhost_executor::{CancelReason, Executor, ResultError, ShutdownOptions, SubmitError};

/// Runs `body` under loom with at most `preemptions` preemptions per execution, and prints how
/// many executions it explored (`-- --nocapture` shows it).
fn model(preemptions: usize, body: impl Fn() + Sync + Send + 'static) {
    let executions = Arc::new(AtomicUsize::new(0));
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(preemptions);
    builder.check({
        let executions = Arc::clone(&executions);
        move || {
            executions.fetch_add(1, Ordering::Relaxed);
            body();
        }
    });
    eprintln!(
        "{}: {} executions (preemption bound {preemptions})",
        std::thread::current().name().unwrap_or("model"),
        executions.load(Ordering::Relaxed)
    );
}

/// A task that counts its runs and returns `value`.
fn counted(runs: &Arc<AtomicUsize>, value: u32) -> impl FnOnce() -> u32 + Send + 'static {
    let runs = Arc::clone(runs);
    move || {
        runs.fetch_add(1, Ordering::Relaxed);
        value
    }
}

/// A task submitted while the last idle worker times out and retires still runs: either the
/// worker sees the item when it re-checks the queue after counting itself out, or the submitter
/// sees `alive` drop (or claims the worker's idle token) and starts or wakes a worker.
/// (In the loom queue, an idle worker with a timeout times out as soon as the queue is empty.)
#[test]
fn submit_racing_idle_retirement_still_runs() {
    model(3, || {
        let pool = Executor::builder()
            .max_workers(1)
            .idle_timeout(Some(Duration::from_millis(1)))
            .build()
            .unwrap();
        let runs = Arc::new(AtomicUsize::new(0));
        let first = pool.submit(counted(&runs, 1)).unwrap();
        assert_eq!(first.result(None), Ok(&1));
        // The worker is now going idle, timing out, and retiring, while this submit races it.
        let second = pool.submit(counted(&runs, 2)).unwrap();
        assert_eq!(second.result(None), Ok(&2));
        drop(pool);
        assert_eq!(runs.load(Ordering::Relaxed), 2);
    });
}

/// Two submitters against a two-worker pool whose idle workers retire at once: each task is
/// covered by exactly one of claim-an-idle-token, spawn, or a retiring worker's re-check, and
/// `alive` never passes the maximum.
#[test]
fn two_submitters_racing_idle_claims_and_retirement() {
    model(2, || {
        let pool = Arc::new(
            Executor::builder()
                .max_workers(2)
                .idle_timeout(Some(Duration::from_millis(1)))
                .build()
                .unwrap(),
        );
        let runs = Arc::new(AtomicUsize::new(0));
        let other = {
            let pool = Arc::clone(&pool);
            let runs = Arc::clone(&runs);
            loom::thread::spawn(move || pool.submit(counted(&runs, 2)).unwrap())
        };
        let future = pool.submit(counted(&runs, 1)).unwrap();
        assert_eq!(future.result(None), Ok(&1));
        assert!(pool.metrics().workers_alive <= 2);
        assert_eq!(other.join().unwrap().result(None), Ok(&2));
        assert!(pool.metrics().workers_peak <= 2);
        drop(pool);
        assert_eq!(runs.load(Ordering::Relaxed), 2);
    });
}

/// The same race against a worker that must exit after each task (task limit): it starts its
/// replacement when it sees work, or the submitter starts one.
#[test]
fn submit_racing_task_limit_retirement_still_runs() {
    model(3, || {
        let pool = Executor::builder()
            .max_workers(1)
            .max_tasks_per_worker(1)
            .build()
            .unwrap();
        let runs = Arc::new(AtomicUsize::new(0));
        let first = pool.submit(counted(&runs, 1)).unwrap();
        let second = pool.submit(counted(&runs, 2)).unwrap();
        assert_eq!(second.result(None), Ok(&2));
        assert_eq!(first.result(None), Ok(&1));
        drop(pool);
        assert_eq!(runs.load(Ordering::Relaxed), 2);
    });
}

/// Shutdown racing a submit from another thread: the submit is either refused (the closure comes
/// back, never run) or accepted, and then the task runs exactly once and its future resolves,
/// even though the worker may be deciding to exit at the same moment.
///
/// `warm`: this thread submits a task first, so a worker is alive (or starting) when the race
/// begins. Otherwise the racing submit is the pool's first and starts the worker itself.
fn shutdown_racing_submit(cancel_futures: bool, warm: bool) {
    model(3, move || {
        let pool = Arc::new(Executor::new(1).unwrap());
        let runs = Arc::new(AtomicUsize::new(0));
        let before = warm.then(|| pool.submit(counted(&runs, 1)).unwrap());
        let submitter = {
            let pool = Arc::clone(&pool);
            let runs = Arc::clone(&runs);
            loom::thread::spawn(move || match pool.submit(counted(&runs, 2)) {
                Ok(future) => Some(future),
                Err(SubmitError::ShutDown(task)) => {
                    // The closure came back, unrun: it is the task (call it, then uncount it).
                    assert_eq!(task(), 2);
                    runs.fetch_sub(1, Ordering::Relaxed);
                    None
                }
                Err(other) => panic!("unexpected refusal: {}", other.reason()),
            })
        };
        pool.shutdown_with(ShutdownOptions {
            wait: true,
            cancel_queued: cancel_futures,
        });
        let accepted = submitter.join().unwrap();
        let mut expected_runs = 0;
        for (future, value) in [(before, 1), (accepted, 2)] {
            let Some(future) = future else { continue };
            // Every worker was joined: an accepted task is resolved by now.
            assert!(
                future.done(),
                "task {value} accepted but unresolved after shutdown: {:?} {:?}",
                future.state(),
                pool.metrics()
            );
            match future.result(None) {
                Ok(&v) => {
                    assert_eq!(v, value);
                    expected_runs += 1;
                }
                Err(ResultError::Cancelled(CancelReason::Shutdown)) if cancel_futures => {}
                Err(error) => panic!("unexpected outcome: {error}"),
            }
        }
        assert_eq!(pool.metrics().workers_alive, 0);
        drop(pool);
        assert_eq!(runs.load(Ordering::Relaxed), expected_runs);
    });
}

#[test]
fn shutdown_racing_submit_runs_or_refuses_once() {
    shutdown_racing_submit(false, true);
}

#[test]
fn shutdown_cancelling_racing_submit_resolves_once() {
    shutdown_racing_submit(true, true);
}

/// The same race against the pool's first submit, which starts the worker.
#[test]
fn shutdown_racing_the_first_submit_runs_or_refuses_once() {
    shutdown_racing_submit(false, false);
}

/// `cancel()` racing the worker that starts the task: either the cancel wins (the future is
/// cancelled and the task never runs) or the start wins (the cancel returns false and the task
/// runs to its end); the future resolves once either way.
#[test]
fn cancel_racing_start_resolves_once() {
    model(3, || {
        let pool = Executor::new(1).unwrap();
        let runs = Arc::new(AtomicUsize::new(0));
        let future = pool.submit(counted(&runs, 7)).unwrap();
        let canceller = {
            let future = future.clone();
            loom::thread::spawn(move || future.cancel())
        };
        let outcome = future.result(None).cloned();
        let cancelled = canceller.join().unwrap();
        drop(pool);
        let ran = runs.load(Ordering::Relaxed);
        if cancelled {
            assert_eq!(outcome, Err(ResultError::Cancelled(CancelReason::User)));
            assert_eq!(ran, 0, "a cancelled task never runs");
        } else {
            assert_eq!(outcome, Ok(7));
            assert_eq!(ran, 1, "a task the cancel lost to runs once");
        }
        assert_eq!(future.result(None).cloned(), outcome, "resolved once");
    });
}

/// A reader blocking in `result` while the task completes is always woken, also when a done
/// callback registered first (so the waiter bit is set by someone who never sleeps): the
/// completing worker makes the condvar's wake-up call only when a sleeper marked itself, and the
/// sleeper marks itself under the same lock it sleeps on.
#[test]
fn a_blocked_reader_racing_completion_and_a_callback_is_woken() {
    model(3, || {
        let pool = Executor::new(1).unwrap();
        let calls = Arc::new(AtomicUsize::new(0));
        let future = pool.submit(|| 5u32).unwrap();
        let callback_calls = Arc::clone(&calls);
        future.add_done_callback(move |f| {
            assert_eq!(f.result(None), Ok(&5));
            callback_calls.fetch_add(1, Ordering::Relaxed);
        });
        let reader = {
            let future = future.clone();
            loom::thread::spawn(move || *future.result(None).unwrap())
        };
        assert_eq!(future.result(None), Ok(&5));
        assert_eq!(reader.join().unwrap(), 5);
        drop(pool);
        assert_eq!(calls.load(Ordering::Relaxed), 1);
    });
}
