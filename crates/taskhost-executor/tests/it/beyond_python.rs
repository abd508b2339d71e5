//! Points 13-19: past Python.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::{Duration, Instant};

use taskhost_executor::{
    as_completed, wait, CancelReason, Executor, ResultError, ReturnWhen, SubmitError, TaskOptions,
    TaskTimings, WhenFull,
};

use crate::util::{eventually, Gate};

#[test]
fn p13_cancelled_future_is_done_at_once_for_wait() {
    let pool = Executor::new(1).unwrap();
    let gate = Gate::new();
    let g = gate.clone();
    pool.submit(move || g.wait()).unwrap();
    let queued = pool.submit(|| 1).unwrap();
    let fs = vec![queued.clone()];
    let waiter = thread::spawn(move || {
        let t = Instant::now();
        let r = wait(&fs, Some(Duration::from_secs(10)), ReturnWhen::AllCompleted);
        (r.done.len(), t.elapsed())
    });
    thread::sleep(Duration::from_millis(30));
    assert!(queued.cancel());
    let (done, elapsed) = waiter.join().unwrap();
    assert_eq!(done, 1);
    assert!(
        elapsed < Duration::from_secs(5),
        "wait noticed the cancel only after {elapsed:?}"
    );
    // The worker is still blocked: the cancel was seen without any worker dequeuing the item.
    assert_eq!(pool.metrics().running, 1);
    gate.open();
}

#[test]
fn p13_cancelled_future_is_done_at_once_for_as_completed() {
    let pool = Executor::new(1).unwrap();
    let gate = Gate::new();
    let g = gate.clone();
    let blocker = pool.submit(move || g.wait()).unwrap();
    let queued = pool.submit(|| ()).unwrap();
    let fs = vec![blocker.clone(), queued.clone()];
    let q = queued.clone();
    let canceller = thread::spawn(move || {
        thread::sleep(Duration::from_millis(30));
        q.cancel()
    });
    let mut it = as_completed(&fs, Some(Duration::from_secs(10)));
    let first = it.next().unwrap().unwrap();
    assert_eq!(first.id(), queued.id());
    assert!(first.cancelled());
    assert!(canceller.join().unwrap());
    assert!(blocker.running(), "yielded while the worker was still busy");
    gate.open();
    assert_eq!(it.next().unwrap().unwrap().id(), blocker.id());
}

#[test]
fn p14_stop_request_sets_the_context_and_an_honouring_task_ends_cancelled() {
    let pool = Executor::new(2).unwrap();
    let loops = Arc::new(AtomicUsize::new(0));
    let l = loops.clone();
    let honouring = pool
        .submit_with(TaskOptions::new().name("loop"), move |ctx| {
            while !ctx.is_cancelled() {
                l.fetch_add(1, Ordering::Relaxed);
                thread::sleep(Duration::from_millis(1));
            }
            "stopped"
        })
        .unwrap();
    eventually("running", || honouring.running());
    assert!(!honouring.cancel(), "cancel() keeps Python's meaning");
    assert!(honouring.request_stop());
    assert_eq!(
        honouring.result(Some(Duration::from_secs(10))),
        Err(ResultError::Cancelled(CancelReason::StopRequested))
    );
    assert!(honouring.cancelled());
    assert_eq!(honouring.cancel_reason(), Some(CancelReason::StopRequested));
    assert!(loops.load(Ordering::Relaxed) > 0);

    // A task that never looks finishes normally.
    let gate = Gate::new();
    let g = gate.clone();
    let ignoring = pool
        .submit_with(TaskOptions::new(), move |_ctx| {
            g.wait();
            7
        })
        .unwrap();
    eventually("running", || ignoring.running());
    ignoring.request_stop();
    gate.open();
    assert_eq!(ignoring.result(None), Ok(&7));

    // The token reaches code that only has the token; plain submits finish normally.
    let via_token = pool
        .submit_with(TaskOptions::new(), |ctx| {
            let token = ctx.token();
            while !token.is_cancelled() {
                thread::sleep(Duration::from_millis(1));
            }
        })
        .unwrap();
    eventually("running", || via_token.running());
    via_token.request_stop();
    assert_eq!(
        via_token.result(None),
        Err(ResultError::Cancelled(CancelReason::StopRequested))
    );
    let m = pool.metrics();
    assert_eq!((m.cancelled, m.completed), (2, 1));
}

#[test]
fn p14_stop_request_on_a_pending_task_is_seen_when_it_starts() {
    let pool = Executor::new(1).unwrap();
    let gate = Gate::new();
    let g = gate.clone();
    pool.submit(move || g.wait()).unwrap();
    let f = pool
        .submit_with(TaskOptions::new(), |ctx| ctx.is_cancelled())
        .unwrap();
    f.request_stop();
    gate.open();
    assert_eq!(
        f.result(None),
        Err(ResultError::Cancelled(CancelReason::StopRequested))
    );
}

#[test]
fn p15_idle_timeout_retires_workers_and_the_next_submit_starts_one() {
    let pool = Executor::builder()
        .max_workers(2)
        .idle_timeout(Some(Duration::from_millis(30)))
        .build()
        .unwrap();
    pool.submit(|| ()).unwrap().result(None).unwrap();
    assert_eq!(pool.metrics().workers_alive, 1);
    eventually("idle worker retired", || pool.metrics().workers_alive == 0);
    assert_eq!(pool.metrics().workers_retired, 1);
    assert_eq!(pool.submit(|| 5).unwrap().result(None), Ok(&5));
    assert_eq!(pool.metrics().workers_spawned, 2);
}

#[test]
fn p15_no_idle_timeout_by_default() {
    let pool = Executor::new(1).unwrap();
    pool.submit(|| ()).unwrap().result(None).unwrap();
    thread::sleep(Duration::from_millis(100));
    let m = pool.metrics();
    assert_eq!((m.workers_alive, m.workers_retired), (1, 0));
}

#[test]
fn p15_max_tasks_per_worker_replaces_the_worker() {
    let pool = Executor::builder()
        .max_workers(1)
        .max_tasks_per_worker(3)
        .thread_name_prefix("mt")
        .build()
        .unwrap();
    let gate = Gate::new();
    let futures: Vec<_> = (0..7)
        .map(|_| {
            let g = gate.clone();
            pool.submit(move || {
                g.wait();
                thread::current().name().unwrap().to_string()
            })
            .unwrap()
        })
        .collect();
    gate.open();
    let names: Vec<_> = futures
        .iter()
        .map(|f| f.result(None).unwrap().clone())
        .collect();
    assert_eq!(
        names,
        ["mt_0", "mt_0", "mt_0", "mt_1", "mt_1", "mt_1", "mt_2"]
    );
    let m = pool.metrics();
    assert_eq!(
        (m.workers_spawned, m.workers_retired, m.workers_peak),
        (3, 2, 1)
    );
}

#[test]
fn p16_bounded_queue_blocks_the_submitter() {
    let pool = Executor::builder()
        .max_workers(1)
        .queue_capacity(2)
        .build()
        .unwrap();
    let gate = Gate::new();
    let g = gate.clone();
    let blocker = pool.submit(move || g.wait()).unwrap();
    eventually("running", || blocker.running());
    pool.submit(|| ()).unwrap();
    pool.submit(|| ()).unwrap();
    let submitted = Arc::new(AtomicBool::new(false));
    let pool = Arc::new(pool);
    let (p, s) = (pool.clone(), submitted.clone());
    let submitter = thread::spawn(move || {
        let f = p.submit(|| 4).unwrap();
        s.store(true, Ordering::SeqCst);
        f
    });
    thread::sleep(Duration::from_millis(50));
    assert!(
        !submitted.load(Ordering::SeqCst),
        "submit must block while the queue is full"
    );
    gate.open();
    let f = submitter.join().unwrap();
    assert_eq!(f.result(None), Ok(&4));
}

#[test]
fn p16_bounded_queue_rejects_and_hands_the_closure_back() {
    let pool = Executor::builder()
        .max_workers(1)
        .queue_capacity(1)
        .when_full(WhenFull::Reject)
        .build()
        .unwrap();
    let gate = Gate::new();
    let g = gate.clone();
    let blocker = pool.submit(move || g.wait()).unwrap();
    eventually("running", || blocker.running());
    pool.submit(|| 1).unwrap();
    let err = pool.submit(|| 2).unwrap_err();
    assert!(matches!(err, SubmitError::QueueFull(_)));
    assert_eq!(err.to_string(), "cannot submit: the queue is full");
    assert_eq!((err.into_inner())(), 2);
    let err = pool.execute(|| ()).unwrap_err();
    assert_eq!(err.reason(), "queue_full");
    assert_eq!(pool.metrics().rejected, 2);
    gate.open();
}

#[test]
fn p16_bounded_queue_caller_runs() {
    let pool = Executor::builder()
        .max_workers(1)
        .queue_capacity(1)
        .when_full(WhenFull::CallerRuns)
        .build()
        .unwrap();
    let gate = Gate::new();
    let g = gate.clone();
    let blocker = pool.submit(move || g.wait()).unwrap();
    eventually("running", || blocker.running());
    pool.submit(|| thread::current().id()).unwrap();
    let here = pool.submit(|| thread::current().id()).unwrap();
    assert!(here.done(), "caller-runs completes before submit returns");
    assert_eq!(here.result(None), Ok(&thread::current().id()));
    gate.open();
}

#[test]
fn p17_shutdown_timeout_reports_running_tasks() {
    let pool = Executor::builder()
        .name("p17")
        .max_workers(2)
        .task_timings(true)
        .build()
        .unwrap();
    let gate = Gate::new();
    let g = gate.clone();
    let stuck = pool
        .submit_with(TaskOptions::new().name("stuck-task"), move |_| g.wait())
        .unwrap();
    let quick = pool.submit(|| ()).unwrap();
    quick.result(None).unwrap();
    eventually("running", || stuck.running());
    thread::sleep(Duration::from_millis(20));
    let started = Instant::now();
    let report = pool.shutdown_timeout(Duration::from_millis(50), false);
    assert!(started.elapsed() >= Duration::from_millis(50));
    assert!(!report.all_stopped);
    assert_eq!(report.still_running.len(), 1);
    let task = &report.still_running[0];
    assert_eq!(task.id, stuck.id());
    assert_eq!(task.name.as_deref(), Some("stuck-task"));
    assert!(
        task.running_for.unwrap() >= Duration::from_millis(20),
        "{:?}",
        task.running_for
    );
    assert!(task.worker.starts_with("p17_"));
    gate.open();
    stuck.result(None).unwrap();
    let report = pool.shutdown_timeout(Duration::from_secs(10), false);
    assert!(report.all_stopped && report.still_running.is_empty());
    assert_eq!(pool.metrics().workers_alive, 0);
}

/// Untraced `execute` tasks carry no id of their own (it would put them in a bigger malloc
/// class); the worker that starts one numbers it. The running report still tells them apart.
#[test]
fn p17_untraced_execute_tasks_are_numbered_when_they_start() {
    let pool = Executor::builder().max_workers(2).build().unwrap();
    let gate = Gate::new();
    let started = Arc::new(AtomicUsize::new(0));
    for _ in 0..2 {
        let (g, started) = (gate.clone(), Arc::clone(&started));
        pool.execute(move || {
            started.fetch_add(1, Ordering::SeqCst);
            g.wait();
        })
        .unwrap();
    }
    eventually("both running", || started.load(Ordering::SeqCst) == 2);
    let report = pool.shutdown_timeout(Duration::from_millis(10), false);
    let mut ids: Vec<u64> = report.still_running.iter().map(|task| task.id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 2, "{:?}", report.still_running);
    assert!(ids.iter().all(|&id| id != 0));
    gate.open();
    assert!(
        pool.shutdown_timeout(Duration::from_secs(10), false)
            .all_stopped
    );
}

#[test]
fn p18_metrics_and_per_task_timings() {
    crate::util::quiet_panics();
    let pool = Executor::builder()
        .max_workers(2)
        .task_timings(true)
        .build()
        .unwrap();
    let gate = Gate::new();
    let running: Vec<_> = (0..2)
        .map(|_| {
            let g = gate.clone();
            pool.submit(move || g.wait()).unwrap()
        })
        .collect();
    eventually("two running", || pool.metrics().running == 2);
    let queued: Vec<_> = (0..3).map(|_| pool.submit(|| ()).unwrap()).collect();
    let cancelled = pool.submit(|| ()).unwrap();
    cancelled.cancel();
    let m = pool.metrics();
    assert_eq!(
        (m.workers_alive, m.running, m.queued, m.submitted),
        (2, 2, 4, 6)
    );
    assert_eq!(
        m.cancelled, 0,
        "counted when the cancelled item leaves the queue"
    );
    thread::sleep(Duration::from_millis(20));
    gate.open();
    let panicking = pool.submit(|| panic!("boom metrics")).unwrap();
    let _ = panicking.result(None);
    for f in running.iter().chain(&queued) {
        f.result(None).unwrap();
    }
    let t = queued[0].timings();
    assert!(t.queue_wait.unwrap() >= Duration::from_millis(20), "{t:?}");
    assert!(t.run_time.is_some());
    assert_eq!(cancelled.timings().queue_wait, None);
    pool.shutdown_and_wait();
    let m = pool.metrics();
    assert_eq!(m.submitted, 7);
    assert_eq!(
        (m.completed, m.failed, m.cancelled, m.rejected),
        (5, 1, 1, 0)
    );
    assert_eq!(m.submitted, m.completed + m.failed + m.cancelled);
    assert_eq!(
        (m.queued, m.running, m.workers_alive, m.workers_idle),
        (0, 0, 0, 0)
    );
    assert_eq!(
        (m.workers_spawned, m.workers_peak, m.workers_retired),
        (2, 2, 2)
    );
    let _ = pool.submit(|| ());
    assert_eq!(pool.metrics().rejected, 1);
}

struct ThreadWaker(thread::Thread, AtomicUsize);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.1.fetch_add(1, Ordering::SeqCst);
        self.0.unpark();
    }
}

fn block_on<F: Future>(future: F) -> (F::Output, usize) {
    let waker_state = Arc::new(ThreadWaker(thread::current(), AtomicUsize::new(0)));
    let waker = Waker::from(waker_state.clone());
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return (out, waker_state.1.load(Ordering::SeqCst));
        }
        thread::park_timeout(Duration::from_secs(1));
    }
}

#[test]
fn p19_the_future_can_be_awaited() {
    let pool = Executor::new(1).unwrap();
    let gate = Gate::new();
    let g = gate.clone();
    let f = pool
        .submit(move || {
            g.wait();
            String::from("async")
        })
        .unwrap();
    let opener = {
        let gate = gate.clone();
        thread::spawn(move || {
            thread::sleep(Duration::from_millis(30));
            gate.open();
        })
    };
    let (out, wakes) = block_on(async move {
        let text = f.await?;
        Ok::<_, ResultError>(text + "!")
    });
    assert_eq!(out, Ok("async!".to_string()));
    assert!(wakes >= 1, "completion must wake the task");
    opener.join().unwrap();

    let g2 = Gate::new();
    let g = g2.clone();
    pool.submit(move || g.wait()).unwrap();
    let cancelled = pool.submit(|| 1).unwrap();
    cancelled.cancel();
    let (out, _) = block_on(cancelled);
    assert_eq!(out, Err(ResultError::Cancelled(CancelReason::User)));
    g2.open();
}

#[test]
fn p08_execute_is_fire_and_forget_and_refused_after_shutdown() {
    crate::util::quiet_panics();
    let pool = Executor::new(2).unwrap();
    let ran = Arc::new(AtomicUsize::new(0));
    for _ in 0..100 {
        let ran = ran.clone();
        pool.execute(move || {
            ran.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    }
    pool.execute(|| panic!("boom execute")).unwrap();
    pool.shutdown_and_wait();
    assert_eq!(ran.load(Ordering::SeqCst), 100);
    let m = pool.metrics();
    assert_eq!((m.submitted, m.completed, m.failed), (101, 100, 1));
    let err = pool.execute(|| ()).unwrap_err();
    assert!(matches!(err, SubmitError::ShutDown(_)));
}

#[test]
fn p18_an_untimed_pool_reads_no_clock_and_reports_no_timings() {
    let pool = Executor::builder()
        .name("p18u")
        .max_workers(1)
        .build()
        .unwrap();
    let gate = Gate::new();
    let g = gate.clone();
    let stuck = pool
        .submit_with(TaskOptions::new().name("untimed"), move |_| g.wait())
        .unwrap();
    eventually("running", || stuck.running());
    assert_eq!(
        stuck.timings().queue_wait,
        None,
        "not recorded at the start either"
    );
    let report = pool.shutdown_timeout(Duration::from_millis(10), false);
    assert_eq!(report.still_running.len(), 1);
    assert_eq!(report.still_running[0].running_for, None);
    gate.open();
    stuck.result(None).unwrap();
    assert_eq!(stuck.timings(), TaskTimings::default());
}
