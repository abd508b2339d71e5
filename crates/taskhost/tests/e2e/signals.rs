//! Ctrl-C and SIGTERM with real signals: nothing read is lost, exit 130.

use std::collections::BTreeSet;
use std::process::Child;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::trace::WaitTimeout;
use crate::util::{jsonl, Dir, Run};

pub fn send_signal(child: &Child, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .expect("running kill");
    assert!(status.success());
}

/// Outcome lines are exactly 1..=n, each once: no record lost, none doubled.
fn assert_contiguous(outcomes: &[Value]) -> u64 {
    let lines: Vec<u64> = outcomes
        .iter()
        .map(|o| o["line"].as_u64().unwrap())
        .collect();
    let unique: BTreeSet<u64> = lines.iter().copied().collect();
    assert_eq!(unique.len(), lines.len(), "an outcome was written twice");
    let last = unique.iter().next_back().copied().unwrap_or(0);
    assert_eq!(
        unique,
        (1..=last).collect::<BTreeSet<u64>>(),
        "a line has no outcome"
    );
    last
}

fn interrupted_run(signal: &str, extra_config: &str, items: &[Value], wait: Duration) -> Run {
    let dir = Dir::with_config(extra_config);
    let input = dir.write("in.jsonl", &jsonl(items));
    let child = dir.spawn(&["run", "--input", input.to_str().unwrap()]);
    std::thread::sleep(wait);
    send_signal(&child, signal);
    Run::from(child.wait_with_output_timeout())
}

#[test]
fn ctrl_c_mid_run_loses_no_record_and_exits_130() {
    let items: Vec<Value> = (0..2000)
        .map(|i| json!({"id": format!("s{i}"), "task": "testkit/sleep", "input": {"ms": 100}}))
        .collect();
    let started = Instant::now();
    let run = interrupted_run("INT", "", &items, Duration::from_millis(800));
    run.assert_code(130);
    assert!(started.elapsed() < Duration::from_secs(20));
    let outcomes = run.outcomes();
    let last = assert_contiguous(&outcomes);
    assert!(
        (1..2000).contains(&last),
        "the run should have been cut short: {last}"
    );
    let ok = outcomes.iter().filter(|o| o["status"] == "ok").count();
    let cancelled = outcomes
        .iter()
        .filter(|o| o["status"] == "cancelled")
        .count();
    assert!(ok > 0, "some items finished before the signal");
    assert!(cancelled > 0, "queued items are reported cancelled");
    assert_eq!(
        ok + cancelled,
        outcomes.len(),
        "{:#?}",
        outcomes
            .iter()
            .filter(|o| o["status"] != "ok" && o["status"] != "cancelled")
            .collect::<Vec<_>>()
    );
    assert!(run.stderr.contains("interrupted"), "{}", run.stderr);
}

#[test]
fn sigterm_does_the_same() {
    let items: Vec<Value> = (0..500)
        .map(|i| json!({"id": format!("s{i}"), "task": "testkit/sleep", "input": {"ms": 50}}))
        .collect();
    let run = interrupted_run("TERM", "", &items, Duration::from_millis(600));
    run.assert_code(130);
    assert_contiguous(&run.outcomes());
}

#[test]
fn a_task_that_ignores_the_stop_is_reported_after_the_grace_period() {
    let items: Vec<Value> = (0..8)
        .map(|i| json!({"id": format!("spin{i}"), "task": "testkit/spin", "input": {"ms": 30000}}))
        .collect();
    let started = Instant::now();
    let run = interrupted_run("INT", "", &items, Duration::from_millis(800));
    run.assert_code(130);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "the grace period was not applied"
    );
    let outcomes = run.outcomes();
    assert_eq!(assert_contiguous(&outcomes), 8);
    assert!(
        outcomes.iter().all(|o| o["status"] == "cancelled"),
        "{outcomes:#?}"
    );
}

#[test]
fn a_second_ctrl_c_exits_at_once_with_what_is_done() {
    let mut items: Vec<Value> = (0..3)
        .map(|i| json!({"id": format!("quick{i}"), "task": "testkit/echo", "input": i}))
        .collect();
    items.extend((0..4).map(
        |i| json!({"id": format!("spin{i}"), "task": "testkit/spin", "input": {"ms": 60000}}),
    ));
    let dir = Dir::with_config("");
    let config = std::fs::read_to_string(dir.config()).unwrap();
    std::fs::write(
        dir.config(),
        config.replace("shutdown_grace = \"2s\"", "shutdown_grace = \"60s\""),
    )
    .unwrap();
    let input = dir.write("in.jsonl", &jsonl(&items));
    let child = dir.spawn(&["run", "--input", input.to_str().unwrap()]);
    std::thread::sleep(Duration::from_millis(800));
    let started = Instant::now();
    send_signal(&child, "INT");
    std::thread::sleep(Duration::from_millis(500));
    send_signal(&child, "INT");
    let run = Run::from(child.wait_with_output_timeout());
    run.assert_code(130);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the second signal did not exit at once"
    );
    let outcomes = run.outcomes();
    let quick = outcomes.iter().filter(|o| o["status"] == "ok").count();
    assert_eq!(quick, 3, "what was done is flushed: {outcomes:#?}");
}

/// A task still running when the grace period ended used to be recorded with `ran_ms: 0.0`.
#[test]
fn a_task_given_up_on_after_ctrl_c_records_how_long_it_ran() {
    let items = [json!({"id": "stuck", "task": "testkit/stuck", "input": {"ms": 600_000}})];
    let run = interrupted_run("INT", "", &items, Duration::from_millis(800));
    run.assert_code(130);
    let outcomes = run.outcomes();
    assert_eq!(outcomes.len(), 1);
    assert_eq!(outcomes[0]["status"], "cancelled");
    // It ran from the start until the end of the 2 s grace period after the signal.
    let ran = outcomes[0]["ran_ms"].as_f64().unwrap();
    assert!((2000.0..60_000.0).contains(&ran), "ran_ms {ran}");
}
