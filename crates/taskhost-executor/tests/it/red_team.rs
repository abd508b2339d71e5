//! Issue 15's executor points: user data whose `Drop` panics (11), a worker thread that cannot
//! start (12), absurd sizes (13).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use taskhost_executor::{
    BuildError, CancelReason, Executor, ResultError, ShutdownOptions, SubmitError,
    MAX_QUEUE_CAPACITY, MAX_WORKERS,
};

use crate::util::{quiet_panics, Gate};

/// Panics when dropped (the payload starts with "boom", which the tests' hook keeps quiet).
struct PanicOnDrop(Arc<AtomicUsize>);

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
        panic!("boom: dropped");
    }
}

/// A value that panics when dropped, dropped by the worker (the future was dropped first):
/// before the fix the worker died, `workers_alive` still said 1 and later tasks never ran.
#[test]
fn r11_a_value_that_panics_when_dropped_does_not_kill_the_worker() {
    quiet_panics();
    let drops = Arc::new(AtomicUsize::new(0));
    let pool = Executor::new(1).unwrap();
    let gate = Gate::new();
    let g = gate.clone();
    let d = Arc::clone(&drops);
    let future = pool
        .submit(move || {
            g.wait();
            PanicOnDrop(d)
        })
        .unwrap();
    drop(future); // the worker now holds the last reference to the value
    gate.open();
    for i in 0..5 {
        let later = pool.submit(move || i * 2).unwrap();
        assert_eq!(later.result(Some(Duration::from_secs(10))), Ok(&(i * 2)));
    }
    assert_eq!(drops.load(Ordering::SeqCst), 1);
    let m = pool.metrics();
    assert_eq!((m.workers_alive, m.workers_spawned), (1, 1), "{m:?}");
    assert_eq!(m.completed, 6);
}

/// A queued closure that panics when dropped, skipped after a cancel (by the worker) and
/// drained by `shutdown(cancel_futures)` (by the caller), for `submit` and `execute` alike.
#[test]
fn r11_closures_that_panic_when_dropped_unrun_are_contained() {
    quiet_panics();
    let drops = Arc::new(AtomicUsize::new(0));
    let pool = Executor::new(1).unwrap();
    let gate = Gate::new();
    let g = gate.clone();
    let blocker = pool.submit(move || g.wait()).unwrap();
    while !blocker.running() {
        std::thread::yield_now();
    }
    let bomb = PanicOnDrop(Arc::clone(&drops));
    let skipped = pool.submit(move || drop(bomb)).unwrap();
    assert!(skipped.cancel());
    let drained: Vec<_> = (0..3)
        .map(|_| {
            let bomb = PanicOnDrop(Arc::clone(&drops));
            pool.submit(move || drop(bomb)).unwrap()
        })
        .collect();
    for _ in 0..2 {
        let bomb = PanicOnDrop(Arc::clone(&drops));
        pool.execute(move || drop(bomb)).unwrap();
    }
    // The shutdown drains the queue in this thread while the worker is busy: every drop there
    // must be contained (before the fix, shutdown itself panicked).
    let pool = Arc::new(pool);
    let p = Arc::clone(&pool);
    let closer = std::thread::spawn(move || {
        p.shutdown_with(ShutdownOptions {
            wait: true,
            cancel_queued: true,
        })
    });
    std::thread::sleep(Duration::from_millis(50));
    gate.open();
    closer.join().expect("shutdown must not panic");
    blocker.result(None).unwrap();
    assert_eq!(
        skipped.result(None),
        Err(ResultError::Cancelled(CancelReason::User))
    );
    for f in &drained {
        assert!(matches!(
            f.result(Some(Duration::from_secs(10))),
            Err(ResultError::Cancelled(_))
        ));
    }
    assert_eq!(drops.load(Ordering::SeqCst), 6);
    let m = pool.metrics();
    assert_eq!(m.submitted, m.completed + m.failed + m.cancelled, "{m:?}");
    assert_eq!(m.workers_alive, 0);
}

/// Many tasks, a third of them leaving a value that panics when the worker drops it, a third
/// cancelled with a panicking closure: every future resolves, no worker dies, counts add up.
#[test]
fn stress_panicking_drops_never_cost_a_worker() {
    quiet_panics();
    let drops = Arc::new(AtomicUsize::new(0));
    let pool = Executor::new(4).unwrap();
    let mut kept = Vec::new();
    for i in 0..3000usize {
        let d = Arc::clone(&drops);
        match i % 3 {
            0 => {
                let f = pool.submit(move || PanicOnDrop(d)).unwrap();
                // If the task already finished, this thread holds the last handle and the
                // value panics here, on the test's own thread: that panic is the value's, not
                // the pool's, so it is caught; either way the value is dropped exactly once.
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(f)));
            }
            1 => {
                let bomb = PanicOnDrop(d);
                let f = pool.submit(move || drop(bomb)).unwrap();
                f.cancel();
                kept.push(f);
            }
            _ => kept.push(pool.submit(move || drop(d)).unwrap()),
        }
    }
    for f in &kept {
        assert!(f.result(Some(Duration::from_secs(30))) != Err(ResultError::Timeout));
    }
    pool.shutdown_and_wait();
    assert_eq!(drops.load(Ordering::SeqCst), 2000);
    let m = pool.metrics();
    assert_eq!(m.workers_spawned, m.workers_retired);
    assert!(m.workers_spawned <= 4, "{m:?}");
    assert_eq!(m.submitted, m.completed + m.failed + m.cancelled, "{m:?}");
}

/// No worker thread can start (its stack cannot be mapped): the queued future fails with a
/// clear broken-pool error instead of waiting forever, and later submits are refused.
#[test]
fn r12_a_pool_whose_workers_cannot_start_fails_its_futures_instead_of_hanging() {
    let pool = Executor::builder()
        .max_workers(2)
        .stack_size(1 << 60)
        .build()
        .unwrap();
    let started = Instant::now();
    let f = pool.submit(|| 1).unwrap();
    match f.result(Some(Duration::from_secs(30))) {
        Err(ResultError::BrokenPool(why)) => {
            assert!(why.starts_with("cannot start a worker thread: "), "{why}");
        }
        other => panic!("expected a broken-pool failure, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(matches!(
        pool.submit(|| 2),
        Err(SubmitError::BrokenPool(..))
    ));
    let m = pool.metrics();
    assert_eq!((m.workers_alive, m.failed, m.rejected), (0, 1, 1));
}

/// Sizes past the limits are refused at build time, naming the limit; a large bound is not
/// allocated up front (10^8 places took 3.1 GB for one item), and still bounds.
#[test]
fn r13_absurd_sizes_are_refused_and_a_large_bound_costs_nothing_up_front() {
    assert_eq!(
        Executor::new(1_000_000_000).unwrap_err(),
        BuildError::TooManyWorkers(1_000_000_000)
    );
    let err = Executor::builder()
        .queue_capacity(9_223_372_036_854_775_807)
        .build()
        .unwrap_err();
    assert_eq!(err, BuildError::QueueTooLarge(9_223_372_036_854_775_807));
    assert_eq!(
        err.to_string(),
        format!(
            "queue_capacity must be at most {MAX_QUEUE_CAPACITY} (0 is unbounded), found 9223372036854775807"
        )
    );
    assert!(Executor::new(MAX_WORKERS).is_ok());

    let rss_before = rss_kib();
    let pool = Executor::builder()
        .max_workers(1)
        .queue_capacity(MAX_QUEUE_CAPACITY)
        .when_full(taskhost_executor::WhenFull::Reject)
        .build()
        .unwrap();
    assert_eq!(*pool.submit(|| 5).unwrap().result(None).unwrap(), 5);
    if let (Some(before), Some(after)) = (rss_before, rss_kib()) {
        // An array of 16 M slots would be hundreds of MiB.
        assert!(after < before + 64 * 1024, "{before} KiB -> {after} KiB");
    }

    // A large bound still bounds: a queue past the array limit rejects when full.
    let gate = Gate::new();
    let g = gate.clone();
    let capacity = 5000;
    let pool = Executor::builder()
        .max_workers(1)
        .queue_capacity(capacity)
        .when_full(taskhost_executor::WhenFull::Reject)
        .build()
        .unwrap();
    let blocker = pool.submit(move || g.wait()).unwrap();
    while !blocker.running() {
        std::thread::yield_now();
    }
    let queued: Vec<_> = (0..capacity)
        .map(|i| pool.submit(move || i).unwrap())
        .collect();
    assert!(matches!(pool.submit(|| 0), Err(SubmitError::QueueFull(_))));
    gate.open();
    assert_eq!(queued.last().unwrap().result(None), Ok(&(capacity - 1)));
    // And places come back as items leave.
    let again: Vec<_> = (0..capacity)
        .map(|i| pool.submit(move || i).unwrap())
        .collect();
    assert_eq!(again[10].result(None), Ok(&10));
}

/// This process's resident memory, from `/proc` (None elsewhere).
fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
