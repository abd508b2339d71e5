//! What `--log-format json` and `--trace-chrome` show.

use serde_json::{json, Value};

use crate::util::{jsonl, Dir};

/// The item id of an event: the `id` of its `item` span, else the executor's own `task` field
/// (the host names each pool task after its item id).
fn item_id(event: &Value) -> Option<&str> {
    let from_span = event["spans"]
        .as_array()
        .and_then(|spans| spans.iter().find(|span| span["name"] == "item"))
        .and_then(|span| span["id"].as_str());
    from_span.or_else(|| {
        (event["target"] == "taskhost_executor")
            .then(|| event["fields"]["task"].as_str())
            .flatten()
    })
}

fn in_item_span(event: &Value) -> bool {
    event["spans"]
        .as_array()
        .is_some_and(|spans| spans.iter().any(|span| span["name"] == "item"))
}

fn ids_with(events: &[Value], message: &str) -> Vec<String> {
    let mut ids: Vec<String> = events
        .iter()
        .filter(|e| e["fields"]["message"] == message)
        .filter_map(|e| item_id(e).map(str::to_owned))
        .collect();
    ids.sort();
    ids
}

#[test]
fn the_json_trace_has_each_event_for_the_right_ids() {
    let dir = Dir::with_config(
        "[pools.one]\nmax_workers = 1\n[[routes]]\ntask = \"testkit/*\"\npool = \"one\"\n\
         [[routes]]\ntask = \"primes/*\"\npool = \"cpu\"\nretries = 1\nbackoff = \"10ms\"\n",
    );
    let input = jsonl(&[
        json!({"id": "good", "task": "testkit/echo", "input": 1}),
        json!({"id": "bad", "task": "testkit/panic", "input": {"message": "kaboom"}}),
        // Stops after the signal below: one worker, so "queued" waits behind "blocker".
        json!({"id": "blocker", "task": "testkit/sleep", "input": {"ms": 60000}}),
        json!({"id": "queued", "task": "testkit/echo", "input": 2}),
        json!({"id": "retry", "task": "primes/count", "input": {"n": "not a number"}}),
    ]);
    let input_path = dir.write("in.jsonl", &input);
    let child = dir
        .command()
        .env("RUST_LOG", "taskhost_executor=debug,taskhost=info")
        .args([
            "--log-format",
            "json",
            "run",
            "--input",
            input_path.to_str().unwrap(),
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    crate::signals::send_signal(&child, "INT");
    let output = child.wait_with_output_timeout();
    let run = crate::util::Run::from(output);
    run.assert_code(130);
    let events = run.events();
    assert!(
        ids_with(&events, "task.queued").contains(&"good".to_owned()),
        "{}",
        run.stderr
    );
    assert!(ids_with(&events, "task.started").contains(&"good".to_owned()));
    assert!(ids_with(&events, "task.finished").contains(&"good".to_owned()));
    assert!(ids_with(&events, "task.queued").contains(&"bad".to_owned()));
    // A plugin panic is caught at the plugin's boundary and reported once, by the host
    // (`item.failed`, status `panicked`): for the pool, the task returned.
    assert!(
        ids_with(&events, "task.failed").is_empty(),
        "{}",
        run.stderr
    );
    assert!(ids_with(&events, "task.finished").contains(&"bad".to_owned()));
    let bad_failed = events
        .iter()
        .find(|e| e["fields"]["message"] == "item.failed" && item_id(e) == Some("bad"))
        .unwrap_or_else(|| panic!("no item.failed for bad\n{}", run.stderr));
    assert_eq!(bad_failed["fields"]["status"], "panicked");
    // Invalid input is not retried.
    assert!(ids_with(&events, "item.failed").contains(&"retry".to_owned()));
    assert!(!ids_with(&events, "task.retry").contains(&"retry".to_owned()));
    let cancelled = ids_with(&events, "task.cancelled");
    assert!(
        cancelled.contains(&"queued".to_owned()),
        "cancelled: {cancelled:?}\n{}",
        run.stderr
    );
    assert!(!cancelled.contains(&"good".to_owned()));
    // Every event inside an item span carries its task, plugin and pool.
    for event in events.iter().filter(|e| in_item_span(e)) {
        let span = event["spans"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == "item")
            .unwrap();
        for field in ["task", "plugin", "pool"] {
            assert!(span.get(field).is_some(), "{field} missing in {event}");
        }
    }
    let by_id = crate::util::by_id(&run.outcomes());
    assert_eq!(by_id["queued"]["status"], "cancelled");
    assert_eq!(by_id["blocker"]["status"], "cancelled");
}

#[test]
fn failures_and_retries_are_events() {
    let dir = Dir::with_config(
        "[[routes]]\ntask = \"testkit/fail\"\npool = \"default\"\nretries = 1\nbackoff = \"10ms\"\n",
    );
    let input = jsonl(&[json!({"id": "f", "task": "testkit/fail", "input": {"message": "nope"}})]);
    let run = dir.run_command(
        dir.command()
            .env("RUST_LOG", "taskhost_executor=debug,taskhost=info")
            .args(["--log-format", "json", "run"]),
        &input,
    );
    run.assert_code(1);
    let events = run.events();
    assert_eq!(ids_with(&events, "task.retry"), ["f"], "{}", run.stderr);
    assert_eq!(
        ids_with(&events, "item.failed"),
        ["f", "f"],
        "one per attempt"
    );
    assert_eq!(ids_with(&events, "task.queued"), ["f", "f"]);
}

#[test]
fn a_chrome_trace_is_written() {
    let dir = Dir::new();
    let input = jsonl(&[
        json!({"id": "a", "task": "testkit/sleep", "input": {"ms": 5}}),
        json!({"id": "b", "task": "testkit/sleep", "input": {"ms": 5}}),
    ]);
    let run = dir.run(&["run", "--trace-chrome", "trace.json"], &input);
    run.assert_code(0);
    let text = std::fs::read_to_string(dir.path().join("trace.json")).unwrap();
    let trace: Value = serde_json::from_str(&text).expect("the chrome trace is JSON");
    let events = trace
        .as_array()
        .or_else(|| trace["traceEvents"].as_array())
        .expect("trace events");
    // One track per worker thread, and the tasks it ran as slices on it.
    let worker_threads: Vec<&Value> = events
        .iter()
        .filter(|e| {
            e["name"] == "thread_name"
                && e["args"]["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("default_"))
        })
        .map(|e| &e["tid"])
        .collect();
    assert!(!worker_threads.is_empty(), "{text}");
    // Each task's slice on its worker's track is named after the item: `task #line`.
    let mut task_slices: Vec<&str> = events
        .iter()
        .filter(|e| e["ph"] == "B" && worker_threads.contains(&&e["tid"]))
        .filter_map(|e| e["name"].as_str())
        .collect();
    task_slices.sort_unstable();
    task_slices.dedup();
    assert_eq!(
        task_slices,
        ["testkit/sleep #1", "testkit/sleep #2"],
        "{text}"
    );
    assert!(
        events.iter().any(|e| e["name"] == "task.finished"),
        "{text}"
    );
    // Events are named by their message, never by a source location.
    assert!(
        !events
            .iter()
            .any(|e| e["name"].as_str().is_some_and(|n| n.starts_with("event "))),
        "{text}"
    );
}

/// `Child::wait_with_output` with a safety limit, so a hang fails the test instead of CI.
pub trait WaitTimeout {
    fn wait_with_output_timeout(self) -> std::process::Output;
}

impl WaitTimeout for std::process::Child {
    fn wait_with_output_timeout(self) -> std::process::Output {
        let pid = self.id();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let watchdog = std::thread::spawn(move || {
            if done_rx
                .recv_timeout(std::time::Duration::from_secs(60))
                .is_err()
            {
                let _ = std::process::Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
        });
        let output = self.wait_with_output().unwrap();
        let _ = done_tx.send(());
        watchdog.join().unwrap();
        output
    }
}
