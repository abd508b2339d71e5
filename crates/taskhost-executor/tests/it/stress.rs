//! The stress test: a million tasks from four threads, with panics, cancels and stop requests.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Instant;

use taskhost_executor::{CancelReason, Executor, ResultError, TaskOptions};

use crate::util::quiet_panics;

/// xorshift64*: deterministic per-thread randomness without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

const SUBMITTERS: usize = 4;
const PER_SUBMITTER: usize = 250_000;

#[test]
fn stress_million_tasks_four_submitters_every_future_resolves_once() {
    quiet_panics();
    let started = Instant::now();
    let pool = Arc::new(
        Executor::builder()
            .name("stress")
            .max_workers(4)
            .build()
            .unwrap(),
    );
    // Each completion callback bumps its task's slot: every future must resolve exactly once.
    let resolutions: Arc<Vec<AtomicUsize>> = Arc::new(
        (0..SUBMITTERS * PER_SUBMITTER)
            .map(|_| AtomicUsize::new(0))
            .collect(),
    );
    let ran = Arc::new(AtomicU64::new(0));
    let submitters: Vec<_> = (0..SUBMITTERS)
        .map(|s| {
            let pool = pool.clone();
            let resolutions = resolutions.clone();
            let ran = ran.clone();
            thread::spawn(move || {
                let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (s as u64 + 1));
                let mut futures = Vec::with_capacity(PER_SUBMITTER);
                let mut counts = [0u64; 4]; // panics, cancels, stops, plain
                for i in 0..PER_SUBMITTER {
                    let slot = s * PER_SUBMITTER + i;
                    let roll = rng.next() % 100;
                    let ran = ran.clone();
                    let future = pool
                        .submit_with(TaskOptions::new(), move |ctx| {
                            ran.fetch_add(1, Ordering::Relaxed);
                            if roll < 2 {
                                panic!("stress panic");
                            }
                            if roll < 6 {
                                // Spin a little so a stop request can land while it runs.
                                for _ in 0..100 {
                                    if ctx.is_cancelled() {
                                        break;
                                    }
                                    std::hint::spin_loop();
                                }
                            }
                            slot as u64
                        })
                        .unwrap();
                    let r = resolutions.clone();
                    future.add_done_callback(move |_| {
                        r[slot].fetch_add(1, Ordering::Relaxed);
                    });
                    if roll < 2 {
                        counts[0] += 1;
                    } else if roll < 4 {
                        counts[1] += 1;
                        future.cancel();
                    } else if roll < 6 {
                        counts[2] += 1;
                        future.request_stop();
                    } else {
                        counts[3] += 1;
                    }
                    // Keep a sample of futures to check their outcome; dropping the rest is fine.
                    if i % 16 == 0 {
                        futures.push((slot, roll, future));
                    }
                }
                (futures, counts)
            })
        })
        .collect();
    let mut sampled = Vec::new();
    for handle in submitters {
        let (futures, _counts) = handle.join().unwrap();
        sampled.extend(futures);
    }
    pool.shutdown_and_wait();
    let elapsed = started.elapsed();

    let m = pool.metrics();
    let total = (SUBMITTERS * PER_SUBMITTER) as u64;
    assert_eq!(m.submitted, total);
    assert_eq!(
        m.completed + m.failed + m.cancelled,
        total,
        "metrics add up: {m:?}"
    );
    assert_eq!((m.queued, m.running, m.rejected), (0, 0, 0), "{m:?}");
    assert_eq!(
        m.workers_alive, 0,
        "no worker alive after shutdown(wait = true)"
    );
    assert_eq!(m.workers_spawned, m.workers_retired);
    // Every task that ran ended completed, failed, or cancelled because it honoured a stop.
    let ran = ran.load(Ordering::Relaxed);
    assert!(ran >= m.completed + m.failed && ran <= m.completed + m.failed + m.cancelled);
    for (slot, count) in resolutions.iter().enumerate() {
        let count = count.load(Ordering::Relaxed);
        assert_eq!(count, 1, "future {slot} resolved {count} times");
    }
    for (slot, roll, future) in &sampled {
        assert!(future.done());
        match future.result(None) {
            Ok(value) => assert_eq!(*value, *slot as u64),
            Err(ResultError::Panicked(message)) => {
                assert!(*roll < 2);
                assert_eq!(message, "stress panic");
            }
            Err(ResultError::Cancelled(CancelReason::User)) => assert!((2..4).contains(roll)),
            Err(ResultError::Cancelled(CancelReason::StopRequested)) => {
                assert!((4..6).contains(roll))
            }
            Err(other) => panic!("unexpected outcome {other:?}"),
        }
    }
    eprintln!("stress: {total} tasks in {elapsed:?} ({m:?})");
}
