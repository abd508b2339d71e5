//! `taskhost run`: statuses, exit codes, order, retries, timeouts, expansion, scale.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use crate::util::{by_id, jsonl, Dir};

#[test]
fn every_status_and_exit_code_1() {
    let dir = Dir::new();
    let input = format!(
        "{}not json\n\n{}{}{}",
        jsonl(&[
            json!({"id": "ok", "task": "testkit/echo", "input": {"x": 1}}),
            json!({"id": "failed", "task": "testkit/fail", "input": {"message": "boom"}}),
            json!({"id": "panicked", "task": "testkit/panic", "input": {"message": "oops"}}),
        ]),
        jsonl(&[json!({"id": "unknown", "task": "nope/missing", "input": {}})]),
        "{\"id\": \"no-task\"}\n",
        jsonl(&[json!({"task": "testkit/echo", "input": 5})]),
    );
    let run = dir.run(&["run"], &input);
    run.assert_code(1);
    let outcomes = run.outcomes();
    assert_eq!(
        outcomes.len(),
        7,
        "one outcome per non-blank line: {outcomes:#?}"
    );
    let by_id = by_id(&outcomes);
    assert_eq!(by_id["ok"]["status"], "ok");
    assert_eq!(by_id["ok"]["output"], json!({"x": 1}));
    assert_eq!(by_id["ok"]["pool"], "default");
    assert_eq!(by_id["ok"]["attempts"], 1);
    assert_eq!(by_id["failed"]["status"], "failed");
    assert!(by_id["failed"]["error"].as_str().unwrap().contains("boom"));
    assert_eq!(by_id["panicked"]["status"], "panicked");
    assert!(by_id["panicked"]["error"]
        .as_str()
        .unwrap()
        .contains("oops"));
    // Line 4 is not JSON: invalid, with its line number as id and in the message.
    assert_eq!(by_id["4"]["status"], "invalid");
    assert_eq!(by_id["4"]["line"], 4);
    assert!(by_id["4"]["error"].as_str().unwrap().starts_with("line 4:"));
    assert_eq!(by_id["unknown"]["status"], "rejected");
    assert_eq!(by_id["unknown"]["line"], 6);
    assert!(by_id["unknown"]["error"]
        .as_str()
        .unwrap()
        .contains("unknown task"));
    assert_eq!(by_id["no-task"]["status"], "invalid");
    // No id: the line number is the id.
    assert_eq!(by_id["8"]["status"], "ok");
    assert_eq!(by_id["8"]["output"], 5);
    for outcome in &outcomes {
        for field in [
            "id",
            "task",
            "status",
            "pool",
            "attempts",
            "waited_ms",
            "ran_ms",
            "line",
        ] {
            assert!(outcome.get(field).is_some(), "{field} missing in {outcome}");
        }
        assert!(
            outcome.get("output").is_some() != outcome.get("error").is_some(),
            "{outcome}"
        );
    }
}

#[test]
fn all_ok_exits_0_and_routes_to_pools() {
    let dir = Dir::with_config(
        "[pools.io]\nmax_workers = 2\n[[routes]]\ntask = \"primes/*\"\npool = \"cpu\"\n\
         [[routes]]\ntask = \"checksum/*\"\npool = \"io\"\n",
    );
    dir.write("hello.txt", "hello\n");
    let input = jsonl(&[
        json!({"id": "p", "task": "primes/count", "input": {"n": 100}}),
        json!({"id": "c", "task": "checksum/sha256", "input": {"path": "hello.txt"}}),
        json!({"id": "e", "task": "testkit/echo", "input": null}),
    ]);
    let run = dir.run(&["run"], &input);
    run.assert_code(0);
    let by_id = by_id(&run.outcomes());
    assert_eq!(by_id["p"]["pool"], "cpu");
    assert_eq!(by_id["p"]["output"]["count"], 25);
    assert_eq!(by_id["c"]["pool"], "io");
    assert_eq!(
        by_id["c"]["output"]["sha256"],
        "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"
    );
    assert_eq!(by_id["e"]["pool"], "default");
    assert!(run.stderr.contains("status: ok 3"), "{}", run.stderr);
}

#[test]
fn input_and_output_files() {
    let dir = Dir::new();
    dir.write(
        "in.jsonl",
        &jsonl(&[json!({"id": "a", "task": "testkit/echo", "input": 1})]),
    );
    let run = dir.run(&["run", "--input", "in.jsonl", "--output", "out.jsonl"], "");
    run.assert_code(0);
    assert!(run.stdout.is_empty());
    let written = std::fs::read_to_string(dir.path().join("out.jsonl")).unwrap();
    assert_eq!(crate::util::parse_jsonl(&written)[0]["output"], 1);
    let missing = dir.run(&["run", "--input", "missing.jsonl"], "");
    missing.assert_code(2);
    assert!(
        missing.stderr.contains("opening input missing.jsonl"),
        "{}",
        missing.stderr
    );
}

#[test]
fn oversized_lines_are_rejected_and_the_run_goes_on() {
    let dir = Dir::with_config("");
    let config = std::fs::read_to_string(dir.config()).unwrap();
    std::fs::write(
        dir.config(),
        config.replace("[run]\n", "[run]\nmax_line_bytes = 100\n"),
    )
    .unwrap();
    let long = json!({"id": "long", "task": "testkit/echo", "input": "x".repeat(500)});
    let input = jsonl(&[
        json!({"id": "a", "task": "testkit/echo", "input": 1}),
        long,
        json!({"id": "b", "task": "testkit/echo", "input": 2}),
    ]);
    let run = dir.run(&["run", "--ordered"], &input);
    run.assert_code(1);
    let outcomes = run.outcomes();
    assert_eq!(outcomes.len(), 3);
    assert_eq!(outcomes[1]["status"], "rejected");
    assert_eq!(outcomes[1]["line"], 2);
    assert!(
        outcomes[1]["error"]
            .as_str()
            .unwrap()
            .contains("max_line_bytes"),
        "{}",
        outcomes[1]
    );
    assert_eq!(outcomes[2]["status"], "ok");
}

#[test]
fn ordered_output_follows_input_order() {
    let dir = Dir::new();
    // Later items finish first, so completion order is the reverse of input order.
    let items: Vec<Value> = (0..12)
        .map(|i| json!({"id": format!("i{i}"), "task": "testkit/sleep", "input": {"ms": 10 * (12 - i)}}))
        .collect();
    let run = dir.run(&["run", "--ordered"], &jsonl(&items));
    run.assert_code(0);
    let lines: Vec<u64> = run
        .outcomes()
        .iter()
        .map(|o| o["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, (1..=12).collect::<Vec<u64>>());

    let run = dir.run(&["run"], &jsonl(&items));
    run.assert_code(0);
    let lines: Vec<u64> = run
        .outcomes()
        .iter()
        .map(|o| o["line"].as_u64().unwrap())
        .collect();
    assert_ne!(
        lines,
        (1..=12).collect::<Vec<u64>>(),
        "completion order should differ"
    );
    assert_eq!(lines.iter().copied().collect::<BTreeSet<_>>().len(), 12);
}

#[test]
fn retries_with_backoff_count_attempts() {
    let dir = Dir::with_config(
        "[[routes]]\ntask = \"testkit/fail\"\npool = \"default\"\nretries = 2\nbackoff = \"20ms\"\n",
    );
    let input = jsonl(&[
        json!({"id": "f", "task": "testkit/fail", "input": {"message": "always"}}),
        json!({"id": "p", "task": "testkit/panic", "input": {}}),
    ]);
    let run = dir.run(&["run", "--log-format", "json"], &input);
    run.assert_code(1);
    let by_id = by_id(&run.outcomes());
    assert_eq!(by_id["f"]["status"], "failed");
    assert_eq!(by_id["f"]["attempts"], 3, "1 try + 2 retries");
    // No route with retries for testkit/panic: one attempt.
    assert_eq!(by_id["p"]["attempts"], 1);
}

#[test]
fn timeouts_stop_the_task_and_say_timed_out() {
    let dir = Dir::with_config(
        "[[routes]]\ntask = \"testkit/sleep\"\npool = \"default\"\ntimeout = \"100ms\"\n\
         [[routes]]\ntask = \"testkit/spin\"\npool = \"default\"\ntimeout = \"50ms\"\nretries = 1\nbackoff = \"10ms\"\n",
    );
    let input = jsonl(&[
        json!({"id": "slow", "task": "testkit/sleep", "input": {"ms": 10000}}),
        json!({"id": "quick", "task": "testkit/sleep", "input": {"ms": 1}}),
        json!({"id": "spin", "task": "testkit/spin", "input": {"ms": 200}}),
    ]);
    let started = std::time::Instant::now();
    let run = dir.run(&["run"], &input);
    run.assert_code(1);
    assert!(started.elapsed().as_secs() < 8, "the sleep was not stopped");
    let by_id = by_id(&run.outcomes());
    assert_eq!(by_id["slow"]["status"], "timed_out");
    assert_eq!(by_id["slow"]["attempts"], 1);
    let ran = by_id["slow"]["ran_ms"].as_f64().unwrap();
    assert!((90.0..5000.0).contains(&ran), "ran {ran} ms");
    assert!(by_id["slow"]["error"]
        .as_str()
        .unwrap()
        .contains("100ms timeout"));
    assert_eq!(by_id["quick"]["status"], "ok");
    // spin ignores the stop request: still timed out, and retried once.
    assert_eq!(by_id["spin"]["status"], "timed_out");
    assert_eq!(by_id["spin"]["attempts"], 2);
}

#[test]
fn expand_runs_the_plugins_work_items() {
    let dir = Dir::with_config("[[routes]]\ntask = \"checksum/*\"\npool = \"cpu\"\n");
    dir.write("tree/a.txt", "hello\n");
    dir.write("tree/sub/b.txt", "");
    dir.write("tree/skip.md", "no");
    let run = dir.run(
        &[
            "run",
            "--expand",
            "checksum/sha256",
            "--params",
            r#"{"root": "tree", "glob": "**/*.txt"}"#,
        ],
        "",
    );
    run.assert_code(0);
    let outcomes = run.outcomes();
    assert_eq!(outcomes.len(), 2, "{outcomes:#?}");
    let mut hashes: Vec<(String, String)> = outcomes
        .iter()
        .map(|o| {
            assert_eq!(o["pool"], "cpu");
            (
                o["output"]["path"].as_str().unwrap().to_owned(),
                o["output"]["sha256"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    hashes.sort();
    assert!(hashes[0].0.ends_with("a.txt"), "{hashes:?}");
    assert_eq!(
        hashes[0].1,
        "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"
    );
    assert_eq!(
        hashes[1].1,
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );

    let bad = dir.run(&["run", "--expand", "nosuch/job"], "");
    bad.assert_code(2);
    assert!(
        bad.stderr.contains("no plugin named `nosuch`"),
        "{}",
        bad.stderr
    );
    let bad = dir.run(
        &["run", "--expand", "checksum/sha256", "--params", "{oops"],
        "",
    );
    bad.assert_code(2);
    assert!(
        bad.stderr.contains("--params: expected JSON"),
        "{}",
        bad.stderr
    );
}

#[test]
fn config_jobs_run_with_dash_dash_config_jobs() {
    let dir = Dir::with_config(
        "[[jobs]]\ntask = \"primes/count\"\ninputs = [{ n = 10 }, { n = 100 }]\n\
         [[jobs]]\nexpand = \"checksum/sha256\"\nparams = { root = \"data\", glob = \"*.txt\" }\n",
    );
    dir.write("data/x.txt", "x");
    let run = dir.run(&["run", "--config-jobs"], "");
    run.assert_code(0);
    let by_id = by_id(&run.outcomes());
    assert_eq!(by_id.len(), 3, "{by_id:#?}");
    assert_eq!(by_id["primes/count#1"]["output"]["count"], 4);
    assert_eq!(by_id["primes/count#2"]["output"]["count"], 25);
}

#[test]
fn plugins_lists_tasks_and_their_pools() {
    let dir =
        Dir::with_config("[[routes]]\ntask = \"primes/*\"\npool = \"cpu\"\ntimeout = \"5s\"\n");
    let run = dir.run(&["plugins"], "");
    run.assert_code(0);
    let line = run
        .stdout
        .lines()
        .find(|l| l.contains("primes/count"))
        .expect(&run.stdout);
    assert!(line.contains("pool cpu"), "{line}");
    assert!(line.contains("timeout 5s"), "{line}");
    let line = run
        .stdout
        .lines()
        .find(|l| l.contains("testkit/echo"))
        .expect(&run.stdout);
    assert!(line.contains("pool default"), "{line}");
    assert!(
        run.stdout.lines().any(|l| l.starts_with("checksum 0.1.0")),
        "{}",
        run.stdout
    );
}

#[test]
fn a_hundred_thousand_items_give_a_hundred_thousand_unique_outcomes() {
    let dir = Dir::new();
    let mut input = String::with_capacity(100_000 * 60);
    for i in 0..100_000 {
        input.push_str(&format!(
            "{{\"id\":\"item-{i}\",\"task\":\"testkit/echo\",\"input\":{i}}}\n"
        ));
    }
    dir.write("big.jsonl", &input);
    let run = dir.run(
        &["run", "--input", "big.jsonl", "--output", "out.jsonl", "-q"],
        "",
    );
    run.assert_code(0);
    let written = std::fs::read_to_string(dir.path().join("out.jsonl")).unwrap();
    let mut ids = BTreeSet::new();
    let mut count = 0;
    for line in written.lines() {
        let outcome: Value = serde_json::from_str(line).unwrap();
        assert_eq!(outcome["status"], "ok");
        ids.insert(outcome["id"].as_str().unwrap().to_owned());
        count += 1;
    }
    assert_eq!(count, 100_000);
    assert_eq!(ids.len(), 100_000);
}

#[test]
fn a_full_queue_rejects_with_when_full_reject() {
    let dir = Dir::with_config(
        "[pools.tiny]\nmax_workers = 1\nqueue_capacity = 1\nwhen_full = \"reject\"\n\
         [[routes]]\ntask = \"testkit/sleep\"\npool = \"tiny\"\n",
    );
    let items: Vec<Value> = (0..6)
        .map(|i| json!({"id": format!("s{i}"), "task": "testkit/sleep", "input": {"ms": 200}}))
        .collect();
    let run = dir.run(&["run"], &jsonl(&items));
    run.assert_code(1);
    let outcomes = run.outcomes();
    assert_eq!(outcomes.len(), 6);
    let rejected = outcomes
        .iter()
        .filter(|o| o["status"] == "rejected")
        .count();
    assert!(rejected >= 3, "{outcomes:#?}");
    assert!(outcomes.iter().any(|o| o["status"] == "ok"));
}

#[test]
fn demo_runs_the_default_configs_jobs() {
    let dir = Dir::new();
    let out = dir.path().join("demo.jsonl");
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_taskhost"));
    // From the workspace root with no --config: the embedded default, as `cargo xtask demo` does.
    command
        .current_dir(crate::util::workspace_root())
        .env_remove("TASKHOST_CONFIG")
        .env_remove("RUST_LOG")
        .env(
            "TASKHOST_PLUGINS__DIRS",
            crate::util::plugin_dir().to_str().unwrap(),
        )
        .args(["demo", "--no-progress", "--output", out.to_str().unwrap()]);
    let run = dir.run_command(&mut command, "");
    run.assert_code(0);
    let outcomes = crate::util::parse_jsonl(&std::fs::read_to_string(&out).unwrap());
    let primes = outcomes
        .iter()
        .filter(|o| o["task"] == "primes/count")
        .count();
    let checksums: Vec<&Value> = outcomes
        .iter()
        .filter(|o| o["task"] == "checksum/sha256")
        .collect();
    assert_eq!(primes, 24);
    assert!(checksums.len() > 10, "{}", checksums.len());
    assert!(checksums
        .iter()
        .all(|o| o["pool"] == "io" && o["status"] == "ok"));
    assert!(checksums.iter().any(|o| o["output"]["path"]
        .as_str()
        .unwrap()
        .ends_with("crates/taskhost/src/main.rs")));
    assert!(run.stderr.contains("pool cpu"), "{}", run.stderr);
    assert!(run.stderr.contains("status: ok"), "{}", run.stderr);
}

/// A plugin's prints used to land in the outcome stream: `no newline hereRAW-WRITE-NO-NL{"id":…}`.
#[test]
fn what_a_plugin_prints_goes_to_stderr_not_into_the_records() {
    let dir = Dir::new();
    let mut items = Vec::new();
    for i in 0..50 {
        items.push(json!({"id": format!("p{i}"), "task": "testkit/print", "input": {"text": "no newline hereRAW-WRITE-NO-NL"}}));
        items.push(json!({"id": format!("e{i}"), "task": "testkit/echo", "input": i}));
    }
    let run = dir.run(&["run"], &jsonl(&items));
    run.assert_code(0);
    // Every stdout line is a whole record.
    let outcomes = run.outcomes();
    assert_eq!(by_id(&outcomes).len(), 100);
    assert!(!run.stdout.contains("RAW-WRITE"));
    assert_eq!(
        run.stderr.matches("RAW-WRITE-NO-NL").count(),
        50,
        "{}",
        run.stderr
    );
}

/// A plugin that closes descriptor 1 (here: points it at `/dev/null`) used to take the records
/// written after it with it.
#[test]
fn a_plugin_that_takes_descriptor_1_away_loses_no_record() {
    let dir = Dir::new();
    let mut items = vec![json!({"id": "hide", "task": "testkit/hide_stdout", "input": null})];
    items.extend(
        (0..20).map(|i| json!({"id": format!("e{i}"), "task": "testkit/echo", "input": i})),
    );
    let mut command = dir.command();
    command
        .env("TASKHOST_POOLS__DEFAULT__MAX_WORKERS", "1")
        .arg("run");
    let run = dir.run_command(&mut command, &jsonl(&items));
    run.assert_code(0);
    assert_eq!(by_id(&run.outcomes()).len(), 21);
}

/// Records used to wait in a 64 KiB buffer until the end of the run: a reader of the stream saw
/// nothing, and an abrupt end lost them.
#[test]
fn records_reach_the_output_while_the_run_goes_on() {
    use std::io::BufRead;
    let dir = Dir::new();
    let input = dir.write(
        "in.jsonl",
        &jsonl(&[
            json!({"id": "quick", "task": "testkit/echo", "input": 1}),
            json!({"id": "long", "task": "testkit/sleep", "input": {"ms": 60_000}}),
        ]),
    );
    let mut child = dir.spawn(&["run", "-i", input.to_str().unwrap()]);
    let stdout = child.stdout.take().unwrap();
    let (line_tx, line_rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut lines = std::io::BufReader::new(stdout).lines();
        let _ = line_tx.send(lines.next());
        lines.count()
    });
    let first = line_rx.recv_timeout(std::time::Duration::from_secs(20));
    let running = child.try_wait().unwrap().is_none();
    crate::signals::send_signal(&child, "INT");
    let status = child.wait().unwrap();
    let rest = reader.join().unwrap();
    let first: Value =
        serde_json::from_str(&first.expect("no record within 20 s").unwrap().unwrap()).unwrap();
    assert_eq!(first["id"], "quick");
    assert!(running, "the run had ended before its first record arrived");
    assert_eq!((status.code(), rest), (Some(130), 1));
}

/// A task that ignores its stop request used to hold the run forever after its timeout.
#[test]
fn a_task_that_ignores_its_timeout_is_given_up_on_and_the_run_ends() {
    let dir = Dir::with_config(
        "[pools.one]\nmax_workers = 1\n\
         [[routes]]\ntask = \"testkit/stuck\"\npool = \"one\"\ntimeout = \"200ms\"\nretries = 2\n",
    );
    let input = dir.write(
        "in.jsonl",
        &jsonl(&[
            json!({"id": "stuck", "task": "testkit/stuck", "input": {"ms": 600_000}}),
            json!({"id": "queued", "task": "testkit/stuck", "input": {"ms": 1}}),
            json!({"id": "fine", "task": "testkit/echo", "input": 1}),
        ]),
    );
    let started = std::time::Instant::now();
    let mut command = dir.command();
    command
        .env("TASKHOST_RUN__SHUTDOWN_GRACE", "300ms")
        .args(["run", "-i", input.to_str().unwrap()])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    use crate::trace::WaitTimeout;
    let run = crate::util::Run::from(command.spawn().unwrap().wait_with_output_timeout());
    let took = started.elapsed();
    run.assert_code(1);
    assert!(took.as_secs() < 30, "took {took:?}");
    let by_id = by_id(&run.outcomes());
    assert_eq!(by_id["fine"]["status"], "ok");
    let stuck = &by_id["stuck"];
    assert_eq!(stuck["status"], "timed_out");
    // Given up on, not retried: another attempt would take another worker for good.
    assert_eq!(stuck["attempts"], 1);
    assert_eq!(
        stuck["error"],
        "ran longer than its 200ms timeout and did not stop within 300ms of being asked to: \
         given up on (the task ignores cancellation; its worker thread stays busy)"
    );
    let ran = stuck["ran_ms"].as_f64().unwrap();
    assert!((450.0..30_000.0).contains(&ran), "ran_ms {ran}");
    // The pool's one worker is held for good: what waited for it fails instead of waiting.
    assert_eq!(by_id["queued"]["status"], "failed");
    assert_eq!(
        by_id["queued"]["error"],
        "pool `one` has no worker left to run it: all 1 are held by tasks that ignored their timeout"
    );
}

/// A plugin calling `exit(0)` used to end the run with status 0 and every record lost; a
/// background thread's `exit(3)` lost the records finished 300 ms before.
#[test]
fn a_plugin_calling_exit_loses_no_record_and_the_run_fails() {
    let dir = Dir::new();
    let echo = |n: usize| -> Vec<Value> {
        (0..n)
            .map(|i| json!({"id": format!("e{i}"), "task": "testkit/echo", "input": i}))
            .collect()
    };
    // From the task itself, on a pool of one worker (so the echoes finish first).
    let mut items = echo(20);
    items.push(json!({"id": "bye", "task": "testkit/exit", "input": {"code": 0}}));
    let journal = dir.path().join("j");
    let mut command = dir.command();
    command
        .env("TASKHOST_POOLS__DEFAULT__MAX_WORKERS", "1")
        .args(["run", "--journal", journal.to_str().unwrap()]);
    let run = dir.run_command(&mut command, &jsonl(&items));
    run.assert_code(1);
    assert!(
        run.stderr.contains(
            "taskhost: error: a plugin ended the process with exit() in the middle of the run; \
             21 records are written (the unfinished items' as `cancelled`); running then: \
             testkit/exit (id \"bye\", line 21)"
        ),
        "{}",
        run.stderr
    );
    let records = by_id(&run.outcomes());
    assert_eq!(records.len(), 21);
    assert!((0..20).all(|i| records[&format!("e{i}")]["status"] == "ok"));
    assert_eq!(records["bye"]["status"], "cancelled");
    // The finished items are journaled too (after the header), the cancelled one is not.
    let journal = std::fs::read_to_string(&journal).unwrap();
    assert_eq!(journal.lines().count(), 1 + 20, "{journal}");

    // From a thread of the plugin's own, 300 ms after its task returned, while another runs.
    let mut items = echo(5);
    items.push(json!({"id": "bg", "task": "testkit/exit", "input": {"code": 3, "after_ms": 300}}));
    items.push(json!({"id": "long", "task": "testkit/sleep", "input": {"ms": 30_000}}));
    let run = dir.run(&["run"], &jsonl(&items));
    run.assert_code(1);
    assert!(
        run.stderr
            .contains("running then: testkit/sleep (id \"long\", line 7)"),
        "{}",
        run.stderr
    );
    let by_id = by_id(&run.outcomes());
    assert_eq!(by_id.len(), 7);
    assert!(["e0", "e1", "e2", "e3", "e4", "bg"]
        .iter()
        .all(|id| by_id[*id]["status"] == "ok"));
    assert_eq!(by_id["long"]["status"], "cancelled");
    assert_eq!(
        by_id["long"]["error"],
        "the process was ended by a plugin calling exit() before this item finished"
    );
}
