//! The everyday flags of `taskhost run`, end to end.

use serde_json::json;

use crate::util::{by_id, jsonl, Dir};

#[test]
fn workers_timeout_and_retries_override_the_configuration() {
    // The config says 4 workers, no timeout, no retries.
    let dir = Dir::new();
    let input = jsonl(&[
        json!({"id": "a", "task": "testkit/sleep", "input": {"ms": 20}}),
        json!({"id": "b", "task": "testkit/sleep", "input": {"ms": 20}}),
        json!({"id": "c", "task": "testkit/sleep", "input": {"ms": 20}}),
    ]);
    let run = dir.run(&["run", "-j", "1"], &input);
    run.assert_code(0);
    assert!(
        run.stderr.contains("pool default    peak workers 1/1"),
        "{}",
        run.stderr
    );
    let run = dir.run(&["run", "--workers", "2"], &input);
    assert!(run.stderr.contains("peak workers 2/2"), "{}", run.stderr);

    let input = jsonl(&[
        json!({"id": "slow", "task": "testkit/sleep", "input": {"ms": 60_000}}),
        json!({"id": "fails", "task": "testkit/fail", "input": {"message": "no"}}),
    ]);
    let run = dir.run(&["run", "--timeout", "200ms", "--retries", "2"], &input);
    run.assert_code(1);
    let by_id = by_id(&run.outcomes());
    assert_eq!(by_id["slow"]["status"], "timed_out", "{}", by_id["slow"]);
    assert!(by_id["slow"]["error"]
        .as_str()
        .unwrap()
        .contains("its 200ms timeout"));
    assert_eq!(by_id["slow"]["attempts"], 3);
    assert_eq!(by_id["fails"]["status"], "failed");
    assert_eq!(by_id["fails"]["attempts"], 3);
}

#[test]
fn bad_flag_values_are_usage_errors_that_say_what_was_expected() {
    let dir = Dir::new();
    for (args, expected) in [
        (
            &["run", "-j", "0"][..],
            "expected a number of workers from 1 to 1024",
        ),
        (
            &["run", "--timeout", "5 s"][..],
            "write \"5s\" without the space",
        ),
        (
            &["run", "--retries", "-1"][..],
            "expected a number of retries from 0 to 100",
        ),
        (
            &["run", "--jobs"][..],
            "`--jobs` is gone: write `--config-jobs`",
        ),
        (
            &["run", "--jobs", "4"][..],
            "or `-j N` / `--workers N` for N workers",
        ),
    ] {
        let run = dir.run(args, "");
        run.assert_code(2);
        assert!(run.stderr.contains(expected), "{args:?}: {}", run.stderr);
    }
}
