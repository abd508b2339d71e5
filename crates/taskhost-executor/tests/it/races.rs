//! Deliberate races around the spawn/idle/retire decision, each repeated many times.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use taskhost_executor::{Executor, ShutdownOptions, SubmitError};

const LIMIT: Option<Duration> = Some(Duration::from_secs(10));

/// A task queued while the only worker retires on its idle timeout must still run. The submit
/// lands at every point around the timeout: before it, during the retire decision, after it.
#[test]
fn race_task_queued_while_only_worker_retires_on_idle_timeout() {
    let pool = Executor::builder()
        .max_workers(1)
        .idle_timeout(Some(Duration::from_micros(200)))
        .build()
        .unwrap();
    for round in 0..2_000u64 {
        assert_eq!(
            pool.submit(move || round).unwrap().result(LIMIT),
            Ok(&round),
            "round {round}"
        );
        // Sleep around the idle timeout so the next submit races the retirement.
        let pause = (round * 37) % 400;
        if pause > 0 {
            thread::sleep(Duration::from_micros(pause));
        }
    }
    let m = pool.metrics();
    assert!(m.workers_retired > 0, "the race was never exercised: {m:?}");
    assert!(m.workers_alive <= 1);
}

/// Same with a zero idle timeout: a worker retires the moment it finds the queue empty.
#[test]
fn race_zero_idle_timeout_never_strands_work() {
    let pool = Arc::new(
        Executor::builder()
            .max_workers(2)
            .idle_timeout(Some(Duration::ZERO))
            .build()
            .unwrap(),
    );
    let submitters: Vec<_> = (0..2)
        .map(|_| {
            let pool = pool.clone();
            thread::spawn(move || {
                for i in 0..2_000u32 {
                    assert_eq!(pool.submit(move || i).unwrap().result(LIMIT), Ok(&i));
                }
            })
        })
        .collect();
    for s in submitters {
        s.join().unwrap();
    }
    let m = pool.metrics();
    assert_eq!(m.completed, 4_000);
    assert!(m.workers_peak <= 2);
}

/// Workers retiring after every task while submitters keep pushing: every task still runs and
/// the pool never exceeds its maximum.
#[test]
fn race_max_tasks_retirement_with_concurrent_submits() {
    let pool = Arc::new(
        Executor::builder()
            .max_workers(2)
            .max_tasks_per_worker(1)
            .build()
            .unwrap(),
    );
    let ran = Arc::new(AtomicUsize::new(0));
    let submitters: Vec<_> = (0..3)
        .map(|_| {
            let pool = pool.clone();
            let ran = ran.clone();
            thread::spawn(move || {
                let futures: Vec<_> = (0..500)
                    .map(|_| {
                        let ran = ran.clone();
                        pool.submit(move || {
                            ran.fetch_add(1, Ordering::SeqCst);
                        })
                        .unwrap()
                    })
                    .collect();
                for f in futures {
                    f.result(LIMIT).unwrap();
                }
            })
        })
        .collect();
    for s in submitters {
        s.join().unwrap();
    }
    assert_eq!(ran.load(Ordering::SeqCst), 1_500);
    pool.shutdown_and_wait();
    let m = pool.metrics();
    assert!(m.workers_peak <= 2, "{m:?}");
    // One worker per task, plus at most a few replacements that found the work already taken.
    assert!(m.workers_spawned >= 1_500, "{m:?}");
    assert_eq!(m.workers_retired, m.workers_spawned, "{m:?}");
    assert_eq!(m.workers_alive, 0);
}

/// Submits racing a shutdown: every accepted future resolves, every refused one says why.
#[test]
fn race_submit_against_shutdown_every_accepted_future_resolves() {
    for round in 0..200 {
        let pool = Arc::new(Executor::new(2).unwrap());
        let submitters: Vec<_> = (0..2)
            .map(|_| {
                let pool = pool.clone();
                thread::spawn(move || {
                    let mut accepted = Vec::new();
                    for i in 0..100u32 {
                        match pool.submit(move || i) {
                            Ok(f) => accepted.push(f),
                            Err(SubmitError::ShutDown(_)) => break,
                            Err(other) => panic!("unexpected {other}"),
                        }
                    }
                    accepted
                })
            })
            .collect();
        if round % 2 == 0 {
            thread::yield_now();
        }
        pool.shutdown_with(ShutdownOptions {
            wait: true,
            cancel_queued: round % 3 == 0,
        });
        for s in submitters {
            for f in s.join().unwrap() {
                assert!(
                    f.result(LIMIT).is_ok() || f.cancelled(),
                    "round {round}: {f:?}"
                );
            }
        }
        let m = pool.metrics();
        assert_eq!(
            m.submitted,
            m.completed + m.cancelled,
            "round {round}: {m:?}"
        );
        assert_eq!(m.workers_alive, 0);
    }
}

/// Sequential submit-and-wait from several threads with an idle timeout close to the work's
/// rhythm: claims of idle workers race their retirement.
#[test]
fn race_idle_claim_against_retirement_from_many_threads() {
    let pool = Arc::new(
        Executor::builder()
            .max_workers(3)
            .idle_timeout(Some(Duration::from_micros(100)))
            .build()
            .unwrap(),
    );
    let threads: Vec<_> = (0..3)
        .map(|t| {
            let pool = pool.clone();
            thread::spawn(move || {
                for i in 0..1_000u64 {
                    let f = pool.submit(move || i * t).unwrap();
                    assert_eq!(f.result(LIMIT), Ok(&(i * t)));
                    if i % 7 == 0 {
                        thread::sleep(Duration::from_micros(150));
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let m = pool.metrics();
    assert_eq!(m.completed, 3_000);
    assert!(m.workers_peak <= 3);
}

/// An initializer fails while other threads keep submitting: every accepted future ends with
/// the broken-pool error (none is stranded in the queue), every later submit is refused.
#[test]
fn race_broken_pool_against_concurrent_submits() {
    use taskhost_executor::ResultError;
    for round in 0..50 {
        let pool = Arc::new(
            Executor::builder()
                .max_workers(2)
                .initializer(move || {
                    thread::sleep(Duration::from_micros(50 * (round % 5)));
                    Err("no licence".to_string())
                })
                .build()
                .unwrap(),
        );
        let submitters: Vec<_> = (0..2)
            .map(|_| {
                let pool = pool.clone();
                thread::spawn(move || {
                    let mut accepted = Vec::new();
                    let mut refused = 0;
                    for i in 0..200u32 {
                        match pool.submit(move || i) {
                            Ok(f) => accepted.push(f),
                            Err(SubmitError::BrokenPool(_, why)) => {
                                assert_eq!(why, "no licence");
                                refused += 1;
                            }
                            Err(other) => panic!("unexpected {other}"),
                        }
                    }
                    (accepted, refused)
                })
            })
            .collect();
        let mut accepted_total = 0;
        for s in submitters {
            let (accepted, _refused) = s.join().unwrap();
            accepted_total += accepted.len() as u64;
            for f in accepted {
                assert_eq!(
                    f.result(LIMIT),
                    Err(ResultError::BrokenPool("no licence".into())),
                    "round {round}"
                );
            }
        }
        assert!(matches!(
            pool.submit(|| 0),
            Err(SubmitError::BrokenPool(..))
        ));
        let m = pool.metrics();
        assert_eq!(m.submitted, accepted_total);
        // Failed with the broken-pool error, not cancelled (issue 14).
        assert_eq!(
            (m.completed, m.failed, m.cancelled),
            (0, accepted_total, 0),
            "round {round}: {m:?}"
        );
    }
}
