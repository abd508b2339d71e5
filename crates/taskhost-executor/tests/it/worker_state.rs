//! State per worker ([`ExecutorBuilder::worker_state`]): made when a worker starts, used by its
//! tasks, dropped when it exits (the lifecycle hook isolated pools build on).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use taskhost_executor::{with_worker_state, Executor, ResultError, WhenFull};

use crate::util::{eventually, quiet_panics, Gate};

/// Counts how many states were made and dropped, and remembers the threads that did it.
#[derive(Default)]
struct Ledger {
    made: AtomicUsize,
    dropped: AtomicUsize,
    dropped_on: Mutex<Vec<String>>,
}

struct State {
    ledger: Arc<Ledger>,
    worker: String,
    tasks: usize,
}

impl Drop for State {
    fn drop(&mut self) {
        self.ledger.dropped.fetch_add(1, Ordering::SeqCst);
        let thread = std::thread::current().name().unwrap_or("").to_owned();
        self.ledger.dropped_on.lock().unwrap().push(thread);
    }
}

fn pool_with_state(ledger: &Arc<Ledger>, builder: taskhost_executor::ExecutorBuilder) -> Executor {
    let l = Arc::clone(ledger);
    builder
        .worker_state(move |w| {
            l.made.fetch_add(1, Ordering::SeqCst);
            assert_eq!(std::thread::current().name(), Some(w.worker()));
            State {
                ledger: Arc::clone(&l),
                worker: w.worker().to_owned(),
                tasks: 0,
            }
        })
        .build()
        .unwrap()
}

/// One task's view: (the worker its state belongs to, how many tasks that state has seen).
fn visit() -> Option<(String, usize)> {
    with_worker_state(|s: &mut State| {
        s.tasks += 1;
        (s.worker.clone(), s.tasks)
    })
}

#[test]
fn worker_state_is_made_once_per_worker_and_reused_by_its_tasks() {
    let ledger = Arc::new(Ledger::default());
    let pool = pool_with_state(&ledger, Executor::builder().name("ws").max_workers(1));
    assert_eq!(
        ledger.made.load(Ordering::SeqCst),
        0,
        "made when a worker starts, not before"
    );
    let seen: Vec<_> = (0..5)
        .map(|_| pool.submit(visit).unwrap().result(None).unwrap().clone())
        .collect();
    let expected: Vec<_> = (1..=5).map(|n| Some(("ws_0".to_owned(), n))).collect();
    assert_eq!(seen, expected);
    assert_eq!(ledger.made.load(Ordering::SeqCst), 1);
    // Not on a worker, or not this type: no state.
    assert_eq!(visit(), None);
    let other = pool.submit(|| with_worker_state(|n: &mut u8| *n)).unwrap();
    assert_eq!(other.result(None), Ok(&None));
    // Nested: no second `&mut` to the same state.
    let nested = pool
        .submit(|| with_worker_state(|_: &mut State| visit()))
        .unwrap();
    assert_eq!(nested.result(None), Ok(&Some(None)));
    pool.shutdown_and_wait();
    assert_eq!(ledger.dropped.load(Ordering::SeqCst), 1);
    assert_eq!(*ledger.dropped_on.lock().unwrap(), ["ws_0"]);
}

#[test]
fn worker_state_is_dropped_when_its_worker_retires_and_made_anew_for_the_next() {
    let ledger = Arc::new(Ledger::default());
    let pool = pool_with_state(
        &ledger,
        Executor::builder()
            .name("wsidle")
            .max_workers(1)
            .idle_timeout(Some(Duration::from_millis(20))),
    );
    assert_eq!(
        pool.submit(visit).unwrap().result(None).unwrap().clone(),
        Some(("wsidle_0".to_owned(), 1))
    );
    eventually("the idle worker retires and drops its state", || {
        ledger.dropped.load(Ordering::SeqCst) == 1
    });
    assert_eq!(
        pool.submit(visit).unwrap().result(None).unwrap().clone(),
        Some(("wsidle_1".to_owned(), 1))
    );
    assert_eq!(ledger.made.load(Ordering::SeqCst), 2);

    // Recycling after N tasks: each new worker gets a new state.
    let ledger = Arc::new(Ledger::default());
    let pool = pool_with_state(
        &ledger,
        Executor::builder()
            .name("wsrecycle")
            .max_workers(1)
            .max_tasks_per_worker(3),
    );
    let counts: Vec<usize> = (0..7)
        .map(|_| {
            pool.submit(visit)
                .unwrap()
                .result(None)
                .unwrap()
                .clone()
                .unwrap()
                .1
        })
        .collect();
    assert_eq!(counts, [1, 2, 3, 1, 2, 3, 1]);
    pool.shutdown_and_wait();
    assert_eq!(
        (
            ledger.made.load(Ordering::SeqCst),
            ledger.dropped.load(Ordering::SeqCst)
        ),
        (3, 3)
    );
}

#[test]
fn worker_state_is_dropped_before_a_waiting_shutdown_returns() {
    let ledger = Arc::new(Ledger::default());
    let pool = pool_with_state(&ledger, Executor::builder().name("wsdown").max_workers(3));
    let gate = Gate::new();
    let futures: Vec<_> = (0..3)
        .map(|_| {
            let g = gate.clone();
            pool.submit(move || {
                g.wait();
                visit()
            })
            .unwrap()
        })
        .collect();
    eventually("three workers", || pool.metrics().workers_alive == 3);
    gate.open();
    for f in &futures {
        assert!(f.result(None).unwrap().is_some());
    }
    pool.shutdown_and_wait();
    assert_eq!(ledger.made.load(Ordering::SeqCst), 3);
    assert_eq!(ledger.dropped.load(Ordering::SeqCst), 3);
}

#[test]
fn a_task_the_caller_runs_itself_sees_no_worker_state() {
    let gate = Gate::new();
    let g = gate.clone();
    let pool = Executor::builder()
        .max_workers(1)
        .queue_capacity(1)
        .when_full(WhenFull::CallerRuns)
        .worker_state(|_| 7u8)
        .build()
        .unwrap();
    let blocker = pool.submit(move || g.wait()).unwrap();
    while !blocker.running() {
        std::thread::yield_now();
    }
    let _queued = pool.submit(|| with_worker_state(|n: &mut u8| *n)).unwrap();
    let here = pool.submit(|| with_worker_state(|n: &mut u8| *n)).unwrap();
    assert_eq!(here.result(None), Ok(&None), "ran in the caller's thread");
    gate.open();
    assert_eq!(_queued.result(None), Ok(&Some(7)));
}

#[test]
fn a_worker_state_that_panics_when_made_breaks_the_pool() {
    quiet_panics();
    let pool = Executor::builder()
        .max_workers(1)
        .worker_state(|_| -> u8 { panic!("boom: no child process") })
        .build()
        .unwrap();
    let f = pool.submit(|| 1).unwrap();
    assert_eq!(
        f.result(Some(Duration::from_secs(10))),
        Err(ResultError::BrokenPool(
            "worker state panicked: boom: no child process".into()
        ))
    );
}

#[test]
fn a_worker_state_that_panics_when_dropped_costs_nothing() {
    quiet_panics();
    struct Bomb;
    impl Drop for Bomb {
        fn drop(&mut self) {
            panic!("boom: state dropped");
        }
    }
    let pool = Executor::builder()
        .max_workers(1)
        .max_tasks_per_worker(1)
        .worker_state(|_| Bomb)
        .build()
        .unwrap();
    for i in 0..4 {
        assert_eq!(pool.submit(move || i).unwrap().result(None), Ok(&i));
    }
    pool.shutdown_and_wait();
    let m = pool.metrics();
    assert_eq!((m.completed, m.workers_alive), (4, 0));
    assert_eq!(m.workers_spawned, m.workers_retired);
}
