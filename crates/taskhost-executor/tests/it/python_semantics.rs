//! Points 1-12: the internals of Python 3.14's `ThreadPoolExecutor`.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use taskhost_executor::{
    as_completed, default_max_workers, wait, BuildError, CancelReason, Executor, FutureState,
    ResultError, ReturnWhen, ShutdownOptions, SubmitError, TaskError,
};

use crate::util::{eventually, quiet_panics, Gate};

fn thread_name() -> String {
    thread::current().name().unwrap_or("").to_string()
}

#[test]
fn p01_submit_returns_at_once_and_queue_is_fifo() {
    let pool = Executor::new(1).unwrap();
    let gate = Gate::new();
    let g = gate.clone();
    let blocker = pool.submit(move || g.wait()).unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    let futures: Vec<_> = (0..20)
        .map(|i| {
            let order = order.clone();
            let started = Instant::now();
            let f = pool.submit(move || order.lock().unwrap().push(i)).unwrap();
            assert!(started.elapsed() < Duration::from_secs(1), "submit blocked");
            assert_eq!(f.state(), FutureState::Pending);
            f
        })
        .collect();
    gate.open();
    blocker.result(None).unwrap();
    for f in &futures {
        f.result(None).unwrap();
    }
    assert_eq!(*order.lock().unwrap(), (0..20).collect::<Vec<_>>());
}

#[test]
fn p01_submit_from_inside_a_task_and_from_other_threads() {
    let pool = Arc::new(Executor::new(2).unwrap());
    let p = pool.clone();
    let outer = pool.submit(move || p.submit(|| 41 + 1).unwrap()).unwrap();
    let inner = outer.result(None).unwrap().clone();
    assert_eq!(inner.result(None), Ok(&42));
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let pool = pool.clone();
            thread::spawn(move || *pool.submit(move || i * 2).unwrap().result(None).unwrap())
        })
        .collect();
    let sum: i32 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(sum, 12);
}

#[test]
fn p02_no_thread_starts_at_build_time() {
    let pool = Executor::new(8).unwrap();
    thread::sleep(Duration::from_millis(20));
    let m = pool.metrics();
    assert_eq!((m.workers_alive, m.workers_spawned), (0, 0));
}

#[test]
fn p02_ten_sequential_tasks_run_on_one_thread() {
    let pool = Executor::new(8).unwrap();
    let mut names = BTreeSet::new();
    for _ in 0..10 {
        names.insert(
            pool.submit(thread_name)
                .unwrap()
                .result(None)
                .unwrap()
                .clone(),
        );
    }
    assert_eq!(names.len(), 1, "threads used: {names:?}");
    assert_eq!(pool.metrics().workers_spawned, 1);
}

#[test]
fn p02_ten_blocking_tasks_start_exactly_max_workers() {
    let pool = Executor::new(4).unwrap();
    let gate = Gate::new();
    let futures: Vec<_> = (0..10)
        .map(|_| {
            let g = gate.clone();
            pool.submit(move || {
                g.wait();
                thread_name()
            })
            .unwrap()
        })
        .collect();
    eventually("four tasks running", || pool.metrics().running == 4);
    thread::sleep(Duration::from_millis(20));
    assert_eq!(pool.metrics().workers_spawned, 4);
    gate.open();
    let names: BTreeSet<_> = futures
        .iter()
        .map(|f| f.result(None).unwrap().clone())
        .collect();
    assert_eq!(names.len(), 4);
    let m = pool.metrics();
    assert_eq!((m.workers_spawned, m.workers_peak), (4, 4));
}

#[cfg(target_os = "linux")]
fn cpu_ticks_and_state(tid: &str) -> (u64, char) {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap();
    let after_comm = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    let state = fields[0].chars().next().unwrap();
    // utime and stime are fields 14 and 15 of the stat line, 12 and 13 after the comm.
    (
        fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap(),
        state,
    )
}

#[cfg(target_os = "linux")]
#[test]
fn p03_idle_worker_blocks_without_cpu_and_is_reused() {
    let pool = Executor::new(1).unwrap();
    let tid = pool
        .submit(|| {
            let link = std::fs::read_link("/proc/thread-self").unwrap();
            link.file_name().unwrap().to_string_lossy().into_owned()
        })
        .unwrap()
        .result(None)
        .unwrap()
        .clone();
    eventually("worker idle", || pool.metrics().workers_idle == 1);
    let (before, _) = cpu_ticks_and_state(&tid);
    thread::sleep(Duration::from_millis(500));
    let (after, state) = cpu_ticks_and_state(&tid);
    assert_eq!(state, 'S', "an idle worker must be asleep");
    assert!(
        after - before <= 1,
        "idle worker used {} ticks of CPU",
        after - before
    );
    let again = pool
        .submit(|| std::fs::read_link("/proc/thread-self").unwrap())
        .unwrap();
    assert!(
        again.result(None).unwrap().ends_with(&tid),
        "idle worker not reused"
    );
    assert_eq!(pool.metrics().workers_spawned, 1);
}

#[test]
fn p04_panic_is_captured_and_pool_keeps_serving() {
    quiet_panics();
    let pool = Executor::new(1).unwrap();
    let boom = pool.submit(|| -> u32 { panic!("boom: {}", 7) }).unwrap();
    assert_eq!(
        boom.result(None),
        Err(ResultError::Panicked("boom: 7".into()))
    );
    let static_boom = pool.submit(|| -> u32 { panic!("boom static") }).unwrap();
    assert_eq!(
        static_boom.exception(None),
        Ok(Some(TaskError::Panicked("boom static".into())))
    );
    let names: BTreeSet<_> = (0..5)
        .map(|_| {
            pool.submit(thread_name)
                .unwrap()
                .result(None)
                .unwrap()
                .clone()
        })
        .collect();
    assert_eq!(names.len(), 1);
    let m = pool.metrics();
    assert_eq!((m.failed, m.completed, m.workers_spawned), (2, 5, 1));
}

#[test]
fn p05_states_and_cancel_semantics() {
    let pool = Executor::new(1).unwrap();
    let gate = Gate::new();
    let g = gate.clone();
    let running = pool.submit(move || g.wait()).unwrap();
    eventually("running", || running.running());
    assert_eq!(running.state(), FutureState::Running);
    assert!(!running.cancel(), "a running task cannot be cancelled");
    assert!(!running.done());
    let queued = pool.submit(|| 1).unwrap();
    assert_eq!(queued.state(), FutureState::Pending);
    assert!(!queued.running() && !queued.done() && !queued.cancelled());
    assert!(queued.cancel());
    assert!(queued.cancel(), "cancel() is true again once cancelled");
    assert_eq!(queued.state(), FutureState::Cancelled);
    assert!(queued.cancelled() && queued.done());
    gate.open();
    running.result(None).unwrap();
    assert_eq!(running.state(), FutureState::Finished);
    assert!(!running.cancel(), "a finished task cannot be cancelled");
    assert!(!running.cancelled());
}

#[test]
fn p05_worker_skips_a_cancelled_item_without_running_it() {
    let pool = Executor::new(1).unwrap();
    let gate = Gate::new();
    let g = gate.clone();
    pool.submit(move || g.wait()).unwrap();
    let ran = Arc::new(AtomicBool::new(false));
    let r = ran.clone();
    let skipped = pool
        .submit(move || r.store(true, Ordering::SeqCst))
        .unwrap();
    let after = pool.submit(|| 2).unwrap();
    assert!(skipped.cancel());
    gate.open();
    assert_eq!(after.result(None), Ok(&2));
    pool.shutdown_and_wait();
    assert!(!ran.load(Ordering::SeqCst), "a cancelled item must not run");
    let m = pool.metrics();
    assert_eq!((m.completed, m.cancelled, m.queued), (2, 1, 0));
}

#[test]
fn p06_result_and_exception_with_timeout() {
    quiet_panics();
    let pool = Executor::new(1).unwrap();
    let gate = Gate::new();
    let g = gate.clone();
    let slow = pool
        .submit(move || {
            g.wait();
            5
        })
        .unwrap();
    let t = Instant::now();
    assert_eq!(
        slow.result(Some(Duration::from_millis(50))),
        Err(ResultError::Timeout)
    );
    assert!(t.elapsed() >= Duration::from_millis(50));
    assert_eq!(
        slow.exception(Some(Duration::from_millis(1))),
        Err(ResultError::Timeout)
    );
    assert!(!slow.done(), "a timeout leaves the future unchanged");
    gate.open();
    for _ in 0..3 {
        assert_eq!(slow.result(None), Ok(&5), "readable any number of times");
    }
    assert_eq!(slow.exception(Some(Duration::ZERO)), Ok(None));

    let gate = Gate::new();
    let g = gate.clone();
    pool.submit(move || g.wait()).unwrap();
    let cancelled = pool.submit(|| 1).unwrap();
    cancelled.cancel();
    assert_eq!(
        cancelled.result(Some(Duration::ZERO)),
        Err(ResultError::Cancelled(CancelReason::User))
    );
    assert_eq!(
        cancelled.exception(None),
        Err(ResultError::Cancelled(CancelReason::User))
    );
    gate.open();
    let bad = pool.submit(|| -> u8 { panic!("boom x") }).unwrap();
    assert_eq!(
        bad.exception(None),
        Ok(Some(TaskError::Panicked("boom x".into())))
    );
    assert_eq!(
        bad.exception(None),
        Ok(Some(TaskError::Panicked("boom x".into())))
    );
}

#[test]
fn p07_done_callbacks_order_thread_and_panics() {
    quiet_panics();
    let pool = Executor::builder()
        .thread_name_prefix("cb")
        .max_workers(1)
        .build()
        .unwrap();
    let gate = Gate::new();
    let g = gate.clone();
    let f = pool
        .submit(move || {
            g.wait();
            3
        })
        .unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    for i in 0..3 {
        let log = log.clone();
        f.add_done_callback(move |f| {
            log.lock()
                .unwrap()
                .push((i, thread_name(), *f.result(None).unwrap()));
        });
        if i == 1 {
            f.add_done_callback(|_| panic!("boom in callback"));
        }
    }
    gate.open();
    f.result(None).unwrap();
    eventually("callbacks ran", || log.lock().unwrap().len() == 3);
    let log_now = log.lock().unwrap().clone();
    assert_eq!(
        log_now,
        vec![
            (0, "cb_0".to_string(), 3),
            (1, "cb_0".to_string(), 3),
            (2, "cb_0".to_string(), 3)
        ]
    );
    // Already done: runs at once, in this thread.
    let here = Arc::new(Mutex::new(None));
    let h = here.clone();
    f.add_done_callback(move |_| *h.lock().unwrap() = Some(thread::current().id()));
    assert_eq!(*here.lock().unwrap(), Some(thread::current().id()));
    // A cancel runs callbacks in the cancelling thread.
    let gate = Gate::new();
    let g = gate.clone();
    pool.submit(move || g.wait()).unwrap();
    let queued = pool.submit(|| 0).unwrap();
    let (tx, rx) = mpsc::channel();
    queued.add_done_callback(move |f| tx.send((thread::current().id(), f.cancelled())).unwrap());
    queued.cancel();
    assert_eq!(rx.try_recv().unwrap(), (thread::current().id(), true));
    gate.open();
}

#[test]
fn p08_shutdown_without_cancel_runs_queued_items() {
    let pool = Executor::new(1).unwrap();
    let gate = Gate::new();
    let g = gate.clone();
    pool.submit(move || g.wait()).unwrap();
    let queued: Vec<_> = (0..5).map(|i| pool.submit(move || i).unwrap()).collect();
    let opener = {
        let gate = gate.clone();
        thread::spawn(move || {
            thread::sleep(Duration::from_millis(30));
            gate.open();
        })
    };
    pool.shutdown_and_wait();
    opener.join().unwrap();
    for (i, f) in queued.iter().enumerate() {
        assert_eq!(
            f.result(Some(Duration::ZERO)),
            Ok(&i),
            "queued items still run"
        );
    }
    assert_eq!(pool.metrics().workers_alive, 0, "wait joins every worker");
    let err = pool.submit(|| 9).unwrap_err();
    assert!(matches!(err, SubmitError::ShutDown(_)));
    assert_eq!(
        err.to_string(),
        "cannot submit: the pool has been shut down"
    );
    assert_eq!((err.into_inner())(), 9, "the closure comes back");
    pool.shutdown_with(ShutdownOptions {
        wait: true,
        cancel_queued: true,
    });
    pool.shutdown_with(ShutdownOptions {
        wait: false,
        cancel_queued: false,
    });
}

#[test]
fn p08_shutdown_with_cancel_futures_cancels_queued_items() {
    let pool = Executor::new(1).unwrap();
    let gate = Gate::new();
    let g = gate.clone();
    let running = pool.submit(move || g.wait()).unwrap();
    eventually("running", || running.running());
    let queued: Vec<_> = (0..5).map(|i| pool.submit(move || i).unwrap()).collect();
    pool.shutdown_with(ShutdownOptions {
        wait: false,
        cancel_queued: true,
    });
    for f in &queued {
        assert_eq!(
            f.result(Some(Duration::ZERO)),
            Err(ResultError::Cancelled(CancelReason::Shutdown))
        );
    }
    gate.open();
    pool.shutdown_and_wait();
    assert_eq!(running.result(None), Ok(&()));
    let m = pool.metrics();
    assert_eq!((m.cancelled, m.completed, m.workers_alive), (5, 1, 0));
}

#[test]
fn p08_dropping_the_executor_shuts_down_and_waits() {
    let done = Arc::new(AtomicBool::new(false));
    let d = done.clone();
    let f = {
        let pool = Executor::new(1).unwrap();
        pool.submit(move || {
            thread::sleep(Duration::from_millis(50));
            d.store(true, Ordering::SeqCst);
        })
        .unwrap()
    };
    assert!(
        done.load(Ordering::SeqCst),
        "drop must wait for running work"
    );
    assert!(f.done());
}

#[test]
fn p09_failing_initializer_breaks_the_pool() {
    let pool = Executor::builder()
        .max_workers(1)
        .initializer(|| Err("database unreachable".to_string()))
        .build()
        .unwrap();
    let queued: Vec<_> = (0..3)
        .map(|i| pool.submit(move || i).unwrap_or_else(|_| panic!()))
        .collect();
    for f in &queued {
        assert_eq!(
            f.result(Some(Duration::from_secs(10))),
            Err(ResultError::BrokenPool("database unreachable".into()))
        );
        assert_eq!(
            f.exception(None),
            Ok(Some(TaskError::BrokenPool("database unreachable".into())))
        );
    }
    let err = pool.submit(|| 1).unwrap_err();
    match &err {
        SubmitError::BrokenPool(_, why) => assert_eq!(why, "database unreachable"),
        other => panic!("expected a broken-pool error, got {other:?}"),
    }
    assert_eq!(
        err.to_string(),
        "cannot submit: the pool is broken: database unreachable"
    );
    assert!(pool.execute(|| ()).is_err());
    let m = pool.metrics();
    // Failed with the broken-pool error, not cancelled (issue 14).
    assert_eq!(
        (m.failed, m.cancelled, m.rejected, m.completed),
        (3, 0, 2, 0)
    );
}

#[test]
fn p09_initializer_runs_once_per_worker_before_its_first_task() {
    let inits = Arc::new(Mutex::new(Vec::new()));
    let i = inits.clone();
    let pool = Executor::builder()
        .max_workers(2)
        .thread_name_prefix("init")
        .initializer(move || {
            i.lock().unwrap().push(thread_name());
            Ok(())
        })
        .build()
        .unwrap();
    let gate = Gate::new();
    let futures: Vec<_> = (0..6)
        .map(|_| {
            let g = gate.clone();
            let inits = inits.clone();
            pool.submit(move || {
                g.wait();
                inits.lock().unwrap().contains(&thread_name())
            })
            .unwrap()
        })
        .collect();
    eventually("both workers running", || pool.metrics().running == 2);
    gate.open();
    assert!(futures.iter().all(|f| *f.result(None).unwrap()));
    let mut names = inits.lock().unwrap().clone();
    names.sort();
    assert_eq!(names, ["init_0", "init_1"]);
}

#[test]
fn p10_map_results_in_input_order() {
    let pool = Executor::new(4).unwrap();
    let results: Vec<_> = pool
        .map(
            |i: u64| {
                thread::sleep(Duration::from_millis(10 - i));
                i * 10
            },
            0..10,
            None,
        )
        .unwrap()
        .collect();
    assert_eq!(results, (0..10).map(|i| Ok(i * 10)).collect::<Vec<_>>());
}

#[test]
fn p10_map_submits_everything_before_returning() {
    let pool = Executor::new(2).unwrap();
    let results = pool.map(|i: u32| i, 0..50, None).unwrap();
    assert_eq!(pool.metrics().submitted, 50);
    assert_eq!(results.futures().len(), 50);
}

#[test]
fn p10_map_deadline_is_fixed_at_the_call_and_cancels_the_rest() {
    let pool = Executor::new(1).unwrap();
    let started = Instant::now();
    let mut results = pool
        .map(
            |i: u64| {
                if i > 0 {
                    thread::sleep(Duration::from_millis(700));
                }
                i
            },
            0..10,
            Some(Duration::from_millis(300)),
        )
        .unwrap();
    let futures = results.futures().to_vec();
    assert_eq!(results.next(), Some(Ok(0)));
    assert_eq!(results.next(), Some(Err(ResultError::Timeout)));
    assert_eq!(results.next(), None);
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_millis(650),
        "the deadline is measured from the call, not per item: {elapsed:?}"
    );
    // Everything not yet started was cancelled.
    assert!(futures[2..].iter().all(|f| f.cancelled()));
}

#[test]
fn p10_map_error_cancels_the_rest() {
    quiet_panics();
    let pool = Executor::new(1).unwrap();
    let gate = Gate::new();
    let g = gate.clone();
    pool.submit(move || g.wait()).unwrap();
    let mut results = pool
        .map(
            |i: u32| {
                if i == 1 {
                    panic!("boom map");
                }
                thread::sleep(Duration::from_millis(20));
                i
            },
            0..6,
            None,
        )
        .unwrap();
    let futures = results.futures().to_vec();
    gate.open();
    assert_eq!(results.next(), Some(Ok(0)));
    assert_eq!(
        results.next(),
        Some(Err(ResultError::Panicked("boom map".into())))
    );
    assert_eq!(results.next(), None);
    let cancelled = futures.iter().filter(|f| f.cancelled()).count();
    assert!(
        cancelled >= 3,
        "remaining futures cancelled, got {cancelled}"
    );
}

#[test]
fn p11_wait_first_completed_first_exception_all_completed() {
    quiet_panics();
    let pool = Executor::new(3).unwrap();
    let gate = Gate::new();
    let g = gate.clone();
    let blocked = pool.submit(move || g.wait()).unwrap();
    let quick = pool.submit(|| ()).unwrap();
    let fs = vec![blocked.clone(), quick.clone()];
    let r = wait(
        &fs,
        Some(Duration::from_secs(10)),
        ReturnWhen::FirstCompleted,
    );
    assert_eq!(
        r.done.iter().map(|f| f.id()).collect::<Vec<_>>(),
        [quick.id()]
    );
    assert_eq!(
        r.not_done.iter().map(|f| f.id()).collect::<Vec<_>>(),
        [blocked.id()]
    );

    let failing = pool.submit(|| panic!("boom wait")).unwrap();
    let fs = vec![blocked.clone(), failing.clone()];
    let r = wait(
        &fs,
        Some(Duration::from_secs(10)),
        ReturnWhen::FirstException,
    );
    assert_eq!(r.done.len(), 1);
    assert_eq!(r.done[0].id(), failing.id());

    let t = Instant::now();
    let r = wait(
        &fs,
        Some(Duration::from_millis(50)),
        ReturnWhen::AllCompleted,
    );
    assert!(t.elapsed() >= Duration::from_millis(50));
    assert_eq!((r.done.len(), r.not_done.len()), (1, 1));
    gate.open();
    let r = wait(&fs, None, ReturnWhen::AllCompleted);
    assert_eq!((r.done.len(), r.not_done.len()), (2, 0));
}

#[test]
fn p11_as_completed_yields_finished_first_then_completion_order() {
    let pool = Executor::new(3).unwrap();
    let early = pool.submit(|| 0).unwrap();
    early.result(None).unwrap();
    let gates: Vec<_> = (0..2).map(|_| Gate::new()).collect();
    let a = {
        let g = gates[0].clone();
        pool.submit(move || {
            g.wait();
            1
        })
        .unwrap()
    };
    let b = {
        let g = gates[1].clone();
        pool.submit(move || {
            g.wait();
            2
        })
        .unwrap()
    };
    let fs = vec![a.clone(), b.clone(), early.clone()];
    let mut it = as_completed(&fs, Some(Duration::from_secs(10)));
    assert_eq!(
        it.next().unwrap().unwrap().id(),
        early.id(),
        "already finished first"
    );
    gates[1].open();
    assert_eq!(it.next().unwrap().unwrap().id(), b.id());
    gates[0].open();
    assert_eq!(it.next().unwrap().unwrap().id(), a.id());
    assert!(it.next().is_none());
}

#[test]
fn p11_as_completed_timeout_says_how_many_are_unfinished() {
    let pool = Executor::new(3).unwrap();
    let gate = Gate::new();
    let fs: Vec<_> = (0..3)
        .map(|i| {
            let g = gate.clone();
            pool.submit(move || {
                if i > 0 {
                    g.wait();
                }
            })
            .unwrap()
        })
        .collect();
    let mut it = as_completed(&fs, Some(Duration::from_millis(100)));
    assert!(it.next().unwrap().is_ok());
    let err = it.next().unwrap().unwrap_err();
    assert_eq!((err.unfinished, err.total), (2, 3));
    assert_eq!(err.to_string(), "timed out: 2 of 3 futures unfinished");
    assert!(it.next().is_none());
    gate.open();
}

#[test]
fn p12_default_max_workers_zero_is_an_error_and_thread_names() {
    let cpus = thread::available_parallelism().unwrap().get();
    assert_eq!(default_max_workers(), (cpus + 4).min(32));
    assert_eq!(
        Executor::builder().build().unwrap().max_workers(),
        (cpus + 4).min(32)
    );
    assert_eq!(Executor::new(0).unwrap_err(), BuildError::ZeroWorkers);
    assert_eq!(
        Executor::builder().max_workers(0).build().unwrap_err(),
        BuildError::ZeroWorkers
    );

    let pool = Executor::builder()
        .max_workers(3)
        .thread_name_prefix("io")
        .build()
        .unwrap();
    let gate = Gate::new();
    let names: Vec<_> = (0..3)
        .map(|_| {
            let g = gate.clone();
            pool.submit(move || {
                g.wait();
                thread_name()
            })
            .unwrap()
        })
        .collect();
    eventually("three running", || pool.metrics().running == 3);
    gate.open();
    let names: BTreeSet<_> = names
        .iter()
        .map(|f| f.result(None).unwrap().clone())
        .collect();
    assert_eq!(names, ["io_0", "io_1", "io_2"].map(String::from).into());

    let pool = Executor::builder()
        .name("cpu")
        .max_workers(1)
        .build()
        .unwrap();
    assert_eq!(
        pool.submit(thread_name).unwrap().result(None).unwrap(),
        "cpu_0"
    );
    let pool = Executor::new(1).unwrap();
    assert_eq!(
        pool.submit(thread_name).unwrap().result(None).unwrap(),
        "pool_0"
    );
}

#[test]
fn p01_a_burst_of_tasks_all_run() {
    // Guards the gate helper the other tests lean on.
    let pool = Executor::new(2).unwrap();
    let counter = Arc::new(AtomicUsize::new(0));
    let fs: Vec<_> = (0..4)
        .map(|_| {
            let c = counter.clone();
            pool.submit(move || c.fetch_add(1, Ordering::SeqCst))
                .unwrap()
        })
        .collect();
    for f in &fs {
        f.result(None).unwrap();
    }
    assert_eq!(counter.load(Ordering::SeqCst), 4);
}

#[test]
fn p05_a_skipped_items_closure_is_dropped_even_while_its_future_lives() {
    let pool = Executor::new(1).unwrap();
    let gate = Gate::new();
    let g = gate.clone();
    pool.submit(move || g.wait()).unwrap();
    let captured = Arc::new(());
    let c = captured.clone();
    let f = pool.submit(move || drop(c)).unwrap();
    assert!(f.cancel());
    gate.open();
    pool.shutdown_and_wait();
    assert!(f.cancelled());
    assert_eq!(
        Arc::strong_count(&captured),
        1,
        "the skipped closure was dropped"
    );
}
