//! Issue 14: where the executor used to differ from Python 3.14 without meaning to. Each test
//! names the CPython test (in `Lib/test/test_concurrent_futures/`) or rule it mirrors.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use taskhost_executor::{
    as_completed, wait, Executor, FutureState, MapError, ResultError, ReturnWhen, SubmitError,
    TaskOptions,
};

use crate::util::Gate;

/// A pool whose initializer fails: broken on its first worker's start.
fn broken_pool() -> Executor {
    Executor::builder()
        .max_workers(1)
        .initializer(|| Err("no licence".to_string()))
        .build()
        .unwrap()
}

/// Mirrors `executor.py`'s rule `fs = set(fs)` in `wait`: a future passed twice is one future.
#[test]
fn py314_wait_counts_a_repeated_future_once() {
    let pool = Executor::new(2).unwrap();
    let gate = Gate::new();
    let g = gate.clone();
    let done = pool.submit(|| ()).unwrap();
    done.result(None).unwrap();
    let slow = pool.submit(move || g.wait()).unwrap();
    let r = wait(
        &[done.clone(), done.clone(), slow.clone(), slow.clone()],
        Some(Duration::from_millis(20)),
        ReturnWhen::AllCompleted,
    );
    assert_eq!((r.done.len(), r.not_done.len()), (1, 1));
    assert_eq!((r.done[0].id(), r.not_done[0].id()), (done.id(), slow.id()));
    gate.open();
    let r = wait(
        &[slow.clone(), slow.clone()],
        None,
        ReturnWhen::AllCompleted,
    );
    assert_eq!((r.done.len(), r.not_done.len()), (1, 0));
}

/// Mirrors `test_as_completed.py::AsCompletedTests::test_duplicate_futures` (bpo-20367): each
/// distinct future is yielded once, and the timeout counts distinct futures.
#[test]
fn py314_as_completed_yields_a_repeated_future_once() {
    let pool = Executor::new(2).unwrap();
    let f = pool.submit(|| 5).unwrap();
    f.result(None).unwrap();
    let ids: Vec<u64> = as_completed(&[f.clone(), f.clone(), f.clone()], None)
        .map(|r| r.unwrap().id())
        .collect();
    assert_eq!(ids, [f.id()]);

    // A pending future passed three times: yielded once when it finishes.
    let gate = Gate::new();
    let g = gate.clone();
    let pending = pool.submit(move || g.wait()).unwrap();
    let mut it = as_completed(&[pending.clone(), pending.clone(), pending.clone()], None);
    gate.open();
    assert_eq!(it.next().unwrap().unwrap().id(), pending.id());
    assert!(it.next().is_none());

    // The timeout error's counts: "1 (of 1)", not "2 (of 2)".
    let gate = Gate::new();
    let g = gate.clone();
    let h = pool.submit(move || g.wait()).unwrap();
    let mut it = as_completed(&[h.clone(), h.clone()], Some(Duration::from_millis(20)));
    let err = it.next().unwrap().unwrap_err();
    assert_eq!((err.unfinished, err.total), (1, 1));
    assert_eq!(err.to_string(), "timed out: 1 of 1 futures unfinished");
    gate.open();
}

/// Mirrors `test_init.py::FailingInitializerMixin::test_initializer`: the queued futures of a
/// broken pool finish with the broken-pool error; they are done, not cancelled, and cannot be
/// cancelled.
#[test]
fn py314_a_broken_pools_futures_are_failed_not_cancelled() {
    let pool = broken_pool();
    let queued: Vec<_> = (0..3).map(|i| pool.submit(move || i).unwrap()).collect();
    for f in &queued {
        assert_eq!(
            f.result(Some(Duration::from_secs(10))),
            Err(ResultError::BrokenPool("no licence".into()))
        );
        assert!(f.done());
        assert!(
            !f.cancelled(),
            "a broken-pool failure is not a cancellation"
        );
        assert!(!f.cancel(), "cancel() on a finished future returns false");
        assert_eq!(f.cancel_reason(), None);
        assert_eq!(f.state(), FutureState::Finished);
    }
    // `wait(FIRST_EXCEPTION)` sees them as exceptions.
    let r = wait(&queued, None, ReturnWhen::FirstException);
    assert_eq!(r.done.len(), 3);
    let m = pool.metrics();
    assert_eq!((m.failed, m.cancelled), (3, 0));
    assert_eq!(m.submitted, m.completed + m.failed + m.cancelled);
}

/// A future the user cancelled while queued stays cancelled when the pool then breaks.
#[test]
fn py314_a_user_cancel_before_the_pool_breaks_stays_a_cancel() {
    let gate = Gate::new();
    let g = gate.clone();
    let pool = Executor::builder()
        .max_workers(1)
        .initializer(move || {
            g.wait();
            Err("late failure".to_string())
        })
        .build()
        .unwrap();
    let first = pool.submit(|| 0).unwrap();
    let cancelled = pool.submit(|| 1).unwrap();
    assert!(cancelled.cancel());
    gate.open();
    assert_eq!(
        first.result(None),
        Err(ResultError::BrokenPool("late failure".into()))
    );
    assert!(cancelled.cancelled() && !first.cancelled());
    let m = pool.metrics();
    assert_eq!((m.failed, m.cancelled), (1, 1));
}

/// Mirrors `ThreadPoolExecutor.submit`, which checks `_broken` before `_shutdown`: a broken
/// pool that was also shut down refuses as broken.
#[test]
fn py314_a_broken_and_shut_down_pool_refuses_as_broken() {
    let pool = broken_pool();
    let f = pool.submit(|| 1).unwrap();
    assert!(matches!(f.result(None), Err(ResultError::BrokenPool(_))));
    pool.shutdown_and_wait();
    match pool.submit(|| 2) {
        Err(SubmitError::BrokenPool(_, why)) => assert_eq!(why, "no licence"),
        other => panic!("expected a broken-pool refusal, got {other:?}"),
    }
    assert!(matches!(
        pool.execute(|| ()),
        Err(SubmitError::BrokenPool(..))
    ));
}

/// Mirrors `executor.py::ExecutorTest::test_map_buffersize_value_validation`: 0 is refused.
#[test]
fn py314_map_buffersize_zero_is_refused() {
    let pool = Executor::new(1).unwrap();
    let err = pool.map_buffered(|x: u8| x, [1, 2], None, 0).unwrap_err();
    assert!(matches!(err, MapError::ZeroBufferSize));
    assert_eq!(err.to_string(), "buffersize must be at least 1, found 0");
    assert_eq!(pool.metrics().submitted, 0);
}

/// Mirrors `test_map_buffersize_on_infinite_iterable`: an endless input is fine.
#[test]
fn py314_map_buffersize_over_an_infinite_iterator() {
    let pool = Executor::new(2).unwrap();
    let results = pool.map_buffered(|x: u64| x * 2, 0u64.., None, 4).unwrap();
    let got: Vec<u64> = results.take(100).map(Result::unwrap).collect();
    assert_eq!(got, (0..100).map(|x| x * 2).collect::<Vec<_>>());
    // 100 consumed, each asking for one more: 4 ahead at the start, 100 refills.
    let m = pool.metrics();
    assert!(m.submitted <= 104, "submitted {}", m.submitted);
}

/// Mirrors `test_map_buffersize` and `test_map_buffersize_when_buffer_is_full`: at every step
/// at most `buffersize` items are submitted ahead of the consumer, and one more is taken from
/// the input each time the consumer takes a result.
#[test]
fn py314_map_buffersize_counts_the_items_submitted_ahead() {
    let pool = Executor::new(2).unwrap();
    let taken = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&taken);
    let input = (0..10usize).inspect(move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
    });
    let buffersize = 3;
    let mut results = pool
        .map_buffered(|x: usize| x + 100, input, None, buffersize)
        .unwrap();
    assert_eq!(taken.load(Ordering::SeqCst), buffersize);
    assert_eq!(results.in_flight(), buffersize);
    let mut consumed = 0;
    while let Some(result) = results.next() {
        assert_eq!(result, Ok(consumed + 100));
        consumed += 1;
        let ahead = taken.load(Ordering::SeqCst) - consumed;
        assert_eq!(
            ahead,
            buffersize.min(10 - consumed),
            "after {consumed} results"
        );
        assert_eq!(results.in_flight(), ahead);
    }
    assert_eq!(consumed, 10);

    // `test_map_buffersize_when_buffer_is_full`: nothing consumed, only `buffersize` fetched.
    let mut ints = 0..4;
    let unread = pool.map_buffered(|x: i32| x, &mut ints, None, 2).unwrap();
    drop(unread);
    assert_eq!(ints.next(), Some(2));
}

/// The end-of-iteration rules of `map` hold with a buffer: the first error ends the iteration
/// and what is not consumed is cancelled, also on drop.
#[test]
fn py314_map_buffersize_stops_at_the_first_error_and_cancels_the_rest() {
    let pool = Executor::new(1).unwrap();
    let gate = Gate::new();
    let g = gate.clone();
    let blocker = pool.submit(move || g.wait()).unwrap();
    let mut results = pool
        .map_buffered(
            |x: u32| {
                assert!(x != 1, "boom: one");
                x
            },
            0..,
            Some(Duration::from_secs(30)),
            2,
        )
        .unwrap();
    gate.open();
    blocker.result(None).unwrap();
    assert_eq!(results.next(), Some(Ok(0)));
    assert!(matches!(
        results.next(),
        Some(Err(ResultError::Panicked(_)))
    ));
    assert_eq!(results.next(), None);
    assert_eq!(results.in_flight(), 0);

    // Dropped with a buffer full of queued items: they are cancelled, not run.
    let gate = Gate::new();
    let g = gate.clone();
    let blocker = pool.submit(move || g.wait()).unwrap();
    let ran = Arc::new(AtomicUsize::new(0));
    let r = Arc::clone(&ran);
    let results = pool
        .map_buffered(
            move |_: u32| {
                r.fetch_add(1, Ordering::SeqCst);
            },
            0..,
            None,
            5,
        )
        .unwrap();
    drop(results);
    gate.open();
    blocker.result(None).unwrap();
    pool.shutdown_and_wait();
    assert_eq!(ran.load(Ordering::SeqCst), 0);
}

/// A deadline passes: the timeout is yielded, the rest cancelled.
#[test]
fn py314_map_buffersize_deadline_is_fixed_at_the_call() {
    let pool = Executor::new(1).unwrap();
    let mut results = pool
        .map_buffered(
            |x: u64| {
                std::thread::sleep(Duration::from_millis(50));
                x
            },
            0..,
            Some(Duration::from_millis(120)),
            2,
        )
        .unwrap();
    let mut oks = 0;
    let last = loop {
        match results.next() {
            Some(Ok(_)) => oks += 1,
            other => break other,
        }
    };
    assert_eq!(last, Some(Err(ResultError::Timeout)));
    assert!(
        oks < 5,
        "{oks} results before a 120 ms deadline at 50 ms each"
    );
    assert_eq!(results.next(), None);
}

/// A refill refused because the pool was shut down meanwhile ends the iteration with the
/// refusal (Python's iterator raises `RuntimeError` from `submit`).
#[test]
fn py314_map_buffersize_refill_refused_after_shutdown() {
    let pool = Executor::new(1).unwrap();
    let mut results = pool.map_buffered(|x: u8| x, 0.., None, 1).unwrap();
    pool.shutdown_and_wait();
    match results.next() {
        Some(Err(ResultError::NotSubmitted(why))) => {
            assert_eq!(why, "cannot submit: the pool has been shut down");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(results.next(), None);
}

/// Mirrors `test_future.py::FutureTests::test_result_with_success`, for values Python would
/// hand back whatever they are: a `Send` but not `Sync` value (`Cell`, `mpsc::Receiver`) moves
/// out of its one handle.
#[test]
fn py314_a_send_but_not_sync_value_is_handed_out_by_ownership() {
    let pool = Executor::new(2).unwrap();
    let cell = pool.submit_owned(|| Cell::new(7)).unwrap();
    let (tx, rx) = mpsc::channel::<&str>();
    let receiver = pool
        .submit_owned_with(TaskOptions::new().name("rx"), move |_| {
            tx.send("hello").unwrap();
            rx
        })
        .unwrap();
    assert_eq!(receiver.name(), Some("rx"));
    let watcher = cell.as_future().clone();
    assert_eq!(cell.into_result().map(Cell::into_inner), Ok(7));
    assert!(watcher.done() && !watcher.cancelled());
    assert_eq!(receiver.into_result().unwrap().recv(), Ok("hello"));

    // Errors come through as with `result`. One worker, held by the blocker: `queued` waits.
    let pool = Executor::new(1).unwrap();
    let gate = Gate::new();
    let g = gate.clone();
    let blocker = pool.submit(move || g.wait()).unwrap();
    let queued = pool.submit_owned(|| Cell::new(0)).unwrap();
    let (waited, cancelled) = (queued.wait(Some(Duration::from_millis(5))), queued.cancel());
    gate.open();
    blocker.result(None).unwrap();
    assert!(!waited && cancelled);
    assert!(matches!(
        queued.into_result(),
        Err(ResultError::Cancelled(_))
    ));
}
