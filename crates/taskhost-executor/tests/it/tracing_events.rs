//! Point 20: tracing events with stable names and fields, and per-task spans.

use std::time::Duration;

use taskhost_executor::{Executor, TaskOptions};

use crate::util::{capture, eventually, quiet_panics, set_capturing, Gate, Record};

fn events_of<'a>(events: &'a [Record], name: &str) -> Vec<&'a Record> {
    events
        .iter()
        .filter(|e| e.name == name && e.field("pool") == Some("p20pool"))
        .collect()
}

#[test]
fn p20_tracing_events_and_spans() {
    quiet_panics();
    let capture = capture();
    set_capturing(true);
    let pool = Executor::builder()
        .name("p20pool")
        .thread_name_prefix("p20w")
        .max_workers(1)
        .idle_timeout(Some(Duration::from_millis(200)))
        .build()
        .unwrap();
    let request = tracing::info_span!("request", item = "a1");
    let (named, parent_id) = {
        let _entered = request.enter();
        let f = pool
            .submit_with(TaskOptions::new().name("checksum"), |_| 1)
            .unwrap();
        (f, request.id().unwrap().into_u64())
    };
    named.result(None).unwrap();
    let failed = pool.submit(|| -> u8 { panic!("boom traced") }).unwrap();
    let _ = failed.result(None);
    let gate = Gate::new();
    let g = gate.clone();
    let blocker = pool.submit(move || g.wait()).unwrap();
    eventually("running", || blocker.running());
    let cancelled = pool.submit(|| 0).unwrap();
    cancelled.cancel();
    let stopped = pool
        .submit_with(TaskOptions::new().name("stoppable"), |ctx| {
            while !ctx.is_cancelled() {}
        })
        .unwrap();
    stopped.request_stop();
    gate.open();
    let _ = stopped.result(None);
    eventually("idle retirement", || pool.metrics().workers_retired == 1);
    pool.submit(|| 2).unwrap().result(None).unwrap();
    pool.shutdown_and_wait();
    let _ = pool.submit(|| 0);
    set_capturing(false);

    let events = capture.events.lock().unwrap().clone();
    let spans = capture.spans.lock().unwrap().clone();

    let queued = events_of(&events, "task.queued");
    assert_eq!(queued.len(), 6);
    let first = queued[0];
    assert_eq!(
        first.field("task_id"),
        Some(named.id().to_string().as_str())
    );
    assert_eq!(first.field("task"), Some("checksum"));
    assert_eq!(first.field("queue_depth"), Some("1"));
    assert_eq!(first.field("message"), Some("task.queued"));

    let started = events_of(&events, "task.started");
    assert_eq!(started.len(), 5, "the cancelled task never starts");
    assert_eq!(started[0].field("worker"), Some("p20w_0"));
    assert!(started[0].field("waited_us").is_some());

    let finished = events_of(&events, "task.finished");
    assert_eq!(finished.len(), 3, "named task, blocker, last task");
    assert!(finished[0].field("ran_us").is_some());

    let failed_events = events_of(&events, "task.failed");
    assert_eq!(failed_events.len(), 1);
    assert_eq!(failed_events[0].field("panic"), Some("boom traced"));
    assert_eq!(
        failed_events[0].field("task_id"),
        Some(failed.id().to_string().as_str())
    );

    let cancelled_events = events_of(&events, "task.cancelled");
    let reasons: Vec<_> = cancelled_events
        .iter()
        .map(|e| e.field("reason").unwrap())
        .collect();
    assert_eq!(reasons, ["user", "stop_requested"]);
    assert_eq!(cancelled_events[1].field("task"), Some("stoppable"));

    let rejected = events_of(&events, "task.rejected");
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].field("reason"), Some("shut_down"));

    let spawned = events_of(&events, "worker.spawned");
    assert_eq!(
        spawned.len(),
        2,
        "one before the idle retirement, one after"
    );
    let retired: Vec<_> = events_of(&events, "worker.retired")
        .iter()
        .map(|e| e.field("reason").unwrap().to_string())
        .collect();
    assert_eq!(retired, ["idle", "shutdown"]);
    assert_eq!(events_of(&events, "pool.shutdown").len(), 1);

    // The task span: named "task", child of the submitter's span, and the started event is in it.
    let task_spans: Vec<_> = spans
        .values()
        .filter(|(s, _)| s.name == "task" && s.field("task_id") == Some(&named.id().to_string()))
        .collect();
    assert_eq!(task_spans.len(), 1);
    let task_span = &task_spans[0].0;
    assert_eq!(
        task_span.span,
        Some(parent_id),
        "task span's parent is the submitter's span"
    );
    assert_eq!(task_span.field("task"), Some("checksum"));
    assert_eq!(task_span.field("pool"), Some("p20pool"));
    assert_eq!(started[0].span, task_span.id);
    // Tasks submitted outside any span get a root task span.
    let failed_span = spans
        .values()
        .find(|(s, _)| s.name == "task" && s.field("task_id") == Some(&failed.id().to_string()))
        .unwrap();
    assert_eq!(failed_span.0.span, None);
}
