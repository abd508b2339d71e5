//! The everyday flags of `taskhost run`, end to end.

use serde_json::{json, Value};

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

#[test]
fn a_task_runs_over_arguments_lines_and_stdin_without_json() {
    let dir = Dir::new();
    dir.write("a.txt", "a\n");
    dir.write("b c.txt", "bc\n");
    dir.write("files.txt", "a.txt\n\nb c.txt\n");
    let sha = |run: &crate::util::Run| -> Vec<(String, String, String)> {
        run.outcomes()
            .iter()
            .map(|o| {
                (
                    o["id"].as_str().unwrap().to_owned(),
                    o["output"]["path"].as_str().unwrap_or_default().to_owned(),
                    o["status"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let ok = |id: &str, path: &str| (id.to_owned(), path.to_owned(), "ok".to_owned());
    // The checksum plugin names `path` as its argument field.
    let run = dir.run(
        &["run", "--ordered", "checksum/sha256", "a.txt", "b c.txt"],
        "",
    );
    run.assert_code(0);
    assert_eq!(sha(&run), [ok("1", "a.txt"), ok("2", "b c.txt")]);
    assert_eq!(
        run.outcomes()[0]["output"]["sha256"],
        "87428fc522803d31065e7bce3cf03fe475096631e5e07bbd7a0fde60c4cf25c7"
    );
    // Lines: blank ones skipped, the line number is the id.
    let run = dir.run(
        &[
            "run",
            "--ordered",
            "checksum/sha256",
            "--lines",
            "files.txt",
        ],
        "",
    );
    run.assert_code(0);
    assert_eq!(sha(&run), [ok("1", "a.txt"), ok("3", "b c.txt")]);
    let run = dir.run(&["run", "--ordered", "checksum/sha256"], "a.txt\nb c.txt\n");
    assert_eq!(sha(&run), [ok("1", "a.txt"), ok("2", "b c.txt")]);
    // No field named: the text itself, as a JSON string; --field names one.
    let run = dir.run(&["run", "--ordered", "testkit/echo", "--", "-x", "y z"], "");
    run.assert_code(0);
    let outputs: Vec<Value> = run.outcomes().iter().map(|o| o["output"].clone()).collect();
    assert_eq!(outputs, [json!("-x"), json!("y z")]);
    let run = dir.run(&["run", "testkit/echo", "--field", "name", "x"], "");
    assert_eq!(run.outcomes()[0]["output"], json!({"name": "x"}));
}

#[test]
fn an_unknown_task_says_which_one_was_meant() {
    let dir = Dir::new();
    let run = dir.run(&["run", "checksum/sha265", "a.txt"], "");
    run.assert_code(2);
    assert!(
        run.stderr.contains(
            "unknown task \"checksum/sha265\": no loaded plugin provides it; did you mean \"checksum/sha256\"?"
        ),
        "{}",
        run.stderr
    );
    assert!(run.stdout.is_empty());
    let run = dir.run(
        &["run"],
        &jsonl(&[
            json!({"id": "typo", "task": "testkit/ecko"}),
            json!({"id": "far", "task": "zzz/qqq"}),
        ]),
    );
    run.assert_code(1);
    let by_id = by_id(&run.outcomes());
    assert_eq!(by_id["typo"]["status"], "rejected");
    assert!(by_id["typo"]["error"]
        .as_str()
        .unwrap()
        .contains("did you mean \"testkit/echo\"?"));
    assert!(!by_id["far"]["error"]
        .as_str()
        .unwrap()
        .contains("did you mean"));
}

#[test]
fn a_dry_run_prints_where_each_item_would_run_and_runs_nothing() {
    let dir = Dir::with_config(
        "[pools.io]\nmax_workers = 2\n[[routes]]\ntask = \"checksum/*\"\npool = \"io\"\nretries = 2\n",
    );
    let input = jsonl(&[
        json!({"id": "hash", "task": "checksum/sha256", "input": {"path": "x"}}),
        // Would sleep a minute if it ran.
        json!({"id": "sleep", "task": "testkit/sleep", "input": {"ms": 60_000}}),
        json!({"id": "typo", "task": "testkit/ecko"}),
    ]);
    let started = std::time::Instant::now();
    let run = dir.run(
        &["run", "--dry-run", "--timeout", "5s"],
        &format!("{input}not json\n"),
    );
    run.assert_code(1);
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(
        lines[0],
        r#"{"id":"hash","task":"checksum/sha256","pool":"io","timeout":"5s","retries":2,"line":1,"input":{"path":"x"}}"#
    );
    assert_eq!(
        lines[1],
        r#"{"id":"sleep","task":"testkit/sleep","pool":"default","timeout":"5s","retries":0,"line":2,"input":{"ms":60000}}"#
    );
    assert!(
        lines[2].contains(r#""pool":null"#) && lines[2].contains("did you mean"),
        "{}",
        lines[2]
    );
    assert!(
        lines[3].contains("line 4: expected a JSON object"),
        "{}",
        lines[3]
    );
    assert_eq!(lines.len(), 4);
    assert!(
        run.stderr
            .contains("dry run: 4 items, 2 would run, 2 would not; nothing was run"),
        "{}",
        run.stderr
    );
    // Everything routable: exit 0; the same with a task over arguments.
    let run = dir.run(&["run", "--dry-run", "checksum/sha256", "a", "b"], "");
    run.assert_code(0);
    assert_eq!(run.stdout.lines().count(), 2);
    assert!(
        run.stdout.contains(r#""input":{"path":"b"}"#),
        "{}",
        run.stdout
    );
}

/// With a terminal on stdin (`script` gives one) and no --input, taskhost says it is waiting
/// for work items there.
#[test]
fn a_terminal_on_stdin_gets_a_word_on_what_to_type() {
    if !crate::util::has_script() {
        return;
    }
    let dir = Dir::new();
    let command = format!(
        "{} --config {} --no-progress -q run",
        env!("CARGO_BIN_EXE_taskhost"),
        dir.config().display()
    );
    let mut child = std::process::Command::new("script")
        .args(["-qfec", &command, "/dev/null"])
        .current_dir(dir.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    std::thread::spawn(move || {
        use std::io::Write;
        std::thread::sleep(std::time::Duration::from_millis(500));
        let _ = stdin.write_all(b"{\"id\":\"typed\",\"task\":\"testkit/echo\",\"input\":1}\n");
        std::thread::sleep(std::time::Duration::from_millis(500));
        let _ = stdin.write_all(b"\x04");
    });
    use crate::trace::WaitTimeout;
    let run = crate::util::Run::from(child.wait_with_output_timeout());
    run.assert_code(0);
    assert!(
        run.stdout.contains(
            "taskhost: reading work items, one JSON object per line, from stdin (a terminal); end with Ctrl-D"
        ),
        "{}",
        run.stdout
    );
    assert!(run
        .stdout
        .contains(r#"{"id":"typed","task":"testkit/echo","status":"ok""#));
}

#[test]
fn expand_checks_the_plugin_and_the_job_half() {
    let dir = Dir::new();
    dir.write("data/x.txt", "x");
    let params = r#"{"root": "data"}"#;
    for (job, expected) in [
        (
            "checksum/sha265",
            "expand checksum/sha265: plugin `checksum` has no job `sha265`; did you mean `sha256`? (its jobs: sha256)",
        ),
        (
            "checksun/sha256",
            "expand checksun/sha256: no plugin named `checksun` is loaded; did you mean `checksum`?",
        ),
        ("checksum", "expand: expected `plugin/job`, found \"checksum\""),
    ] {
        let run = dir.run(&["run", "--expand", job, "--params", params], "");
        run.assert_code(2);
        assert!(run.stderr.contains(expected), "{job}: {}", run.stderr);
    }
    let run = dir.run(
        &["run", "--expand", "checksum/sha256", "--params", params],
        "",
    );
    run.assert_code(0);
    assert_eq!(run.outcomes().len(), 1);
}

#[test]
fn resume_failed_reruns_only_what_did_not_succeed_and_keeps_one_record_per_id() {
    let dir = Dir::new();
    let first = jsonl(&[
        json!({"id": "a", "task": "testkit/echo", "input": 1}),
        json!({"id": "b", "task": "testkit/fail", "input": {"message": "flaky"}}),
        json!({"id": "c", "task": "testkit/echo", "input": 3}),
        json!({"id": "d", "task": "testkit/panic", "input": {"message": "oops"}}),
    ]);
    dir.write("in.jsonl", &first);
    let run = dir.run(
        &[
            "run",
            "-i",
            "in.jsonl",
            "-o",
            "out.jsonl",
            "--journal",
            "run.journal",
        ],
        "",
    );
    run.assert_code(1);
    // What failed is fixed now (same ids); what succeeded would fail if it ran again.
    dir.write(
        "in.jsonl",
        &jsonl(&[
            json!({"id": "a", "task": "testkit/fail", "input": {"message": "ran twice"}}),
            json!({"id": "b", "task": "testkit/echo", "input": 2}),
            json!({"id": "c", "task": "testkit/fail", "input": {"message": "ran twice"}}),
            json!({"id": "d", "task": "testkit/echo", "input": 4}),
            json!({"id": "e", "task": "testkit/echo", "input": 5}),
        ]),
    );
    // A dry run shows what would run again: the failures and the new item.
    let dry = dir.run(
        &[
            "run",
            "-i",
            "in.jsonl",
            "--resume-failed",
            "out.jsonl",
            "--dry-run",
        ],
        "",
    );
    dry.assert_code(0);
    let planned: Vec<Value> = dry.outcomes().iter().map(|o| o["id"].clone()).collect();
    assert_eq!(planned, ["b", "d", "e"]);
    // Through the journal (which names out.jsonl), to stdout: only the reruns.
    let run = dir.run(
        &["run", "-i", "in.jsonl", "--resume-failed", "run.journal"],
        "",
    );
    run.assert_code(0);
    assert_eq!(
        by_id(&run.outcomes()).keys().collect::<Vec<_>>(),
        ["b", "d", "e"]
    );
    assert!(
        run.stderr
            .contains("resume-failed: skipped 2 items that succeeded in"),
        "{}",
        run.stderr
    );
    // Into the same file: its failed records are replaced, every id once, all ok.
    let run = dir.run(
        &[
            "run",
            "-i",
            "in.jsonl",
            "--resume-failed",
            "out.jsonl",
            "-o",
            "out.jsonl",
        ],
        "",
    );
    run.assert_code(0);
    let records =
        crate::util::parse_jsonl(&std::fs::read_to_string(dir.path().join("out.jsonl")).unwrap());
    let by_id = by_id(&records);
    assert_eq!(by_id.keys().collect::<Vec<_>>(), ["a", "b", "c", "d", "e"]);
    assert!(by_id.values().all(|r| r["status"] == "ok"), "{records:#?}");
    assert_eq!(by_id["a"]["output"], 1, "a kept its first record");
    // A file that is not outcome records is refused, naming it.
    dir.write("junk.jsonl", "hello\nworld\n");
    let run = dir.run(
        &["run", "-i", "in.jsonl", "--resume-failed", "junk.jsonl"],
        "",
    );
    run.assert_code(2);
    assert!(
        run.stderr
            .contains("junk.jsonl:1: expected an outcome record with `id` and `status`"),
        "{}",
        run.stderr
    );
}

#[test]
fn records_carry_their_start_time_and_worker() {
    let dir = Dir::with_config(
        "[pools.io]\nmax_workers = 2\n[[routes]]\ntask = \"testkit/sleep\"\npool = \"io\"\n",
    );
    let before = std::time::SystemTime::now();
    let run = dir.run(
        &["run"],
        &jsonl(&[
            json!({"id": "echo", "task": "testkit/echo", "input": 1}),
            json!({"id": "sleep", "task": "testkit/sleep", "input": {"ms": 50}}),
            json!({"id": "typo", "task": "testkit/ecko"}),
        ]),
    );
    let after = std::time::SystemTime::now();
    run.assert_code(1);
    let by_id = by_id(&run.outcomes());
    for (id, pool) in [("echo", "default"), ("sleep", "io")] {
        let record = &by_id[id];
        let worker = record["worker"].as_str().unwrap();
        let number = worker
            .strip_prefix(&format!("{pool}_"))
            .unwrap_or_else(|| panic!("{record}"));
        assert!(number.parse::<u32>().is_ok(), "{record}");
        let started = record["started"].as_str().unwrap();
        assert!(started.ends_with('Z') && started.len() == "2026-01-01T00:00:00.000Z".len());
        let started = humantime::parse_rfc3339(started).unwrap();
        // Millisecond precision: allow the truncation.
        assert!(
            started + std::time::Duration::from_millis(1) >= before,
            "{record}"
        );
        assert!(started <= after, "{record}");
    }
    assert_eq!(by_id["typo"]["worker"], Value::Null);
    assert_eq!(by_id["typo"]["started"], Value::Null);
}

#[test]
fn completions_and_man_pages_come_from_the_flags() {
    let dir = Dir::new();
    for (shell, marker) in [
        ("bash", "_taskhost()"),
        ("zsh", "#compdef taskhost"),
        ("fish", "complete -c taskhost"),
    ] {
        let run = dir.run(&["completions", shell], "");
        run.assert_code(0);
        assert!(run.stdout.contains(marker), "{shell}: {}", run.stdout);
        for flag in ["config-jobs", "resume-failed", "dry-run", "workers"] {
            assert!(run.stdout.contains(flag), "{shell} lacks --{flag}");
        }
        assert!(
            !run.stdout.contains("serve-worker"),
            "{shell}: a hidden command"
        );
    }
    let run = dir.run(&["completions", "tcsh"], "");
    run.assert_code(2);
    assert!(
        run.stderr.contains("invalid value 'tcsh'"),
        "{}",
        run.stderr
    );
    let run = dir.run(&["__man", "man"], "");
    run.assert_code(0);
    let page = std::fs::read_to_string(dir.path().join("man/taskhost-run.1")).unwrap();
    assert!(page.starts_with(".ie \\n(.g .ds Aq"), "{page}");
    assert!(page.contains(".TH taskhost-run 1"), "{page}");
    assert!(page.contains("\\-\\-resume\\-failed"), "{page}");
    assert!(dir.path().join("man/taskhost.1").is_file());
}

/// A large expansion comes a page at a time (256 items): every item once, numbered in order,
/// the default ids `plugin/job#n` running on across pages.
#[test]
fn an_expansion_larger_than_a_page_runs_every_item_once_in_order() {
    let dir = Dir::new();
    for folder in 0..3 {
        for file in 0..250 {
            dir.write(&format!("data/d{folder}/f{file:03}.txt"), "x");
        }
    }
    let params = r#"{"root": "data", "glob": "**/*.txt"}"#;
    let run = dir.run(
        &[
            "run",
            "--ordered",
            "--expand",
            "checksum/sha256",
            "--params",
            params,
        ],
        "",
    );
    run.assert_code(0);
    let outcomes = run.outcomes();
    assert_eq!(outcomes.len(), 750);
    for (index, outcome) in outcomes.iter().enumerate() {
        let n = index + 1;
        assert_eq!(outcome["line"], n);
        assert_eq!(outcome["id"], format!("checksum/sha256#{n}"));
        let path = format!("data/d{}/f{:03}.txt", index / 250, index % 250);
        assert_eq!(outcome["output"]["path"], path, "{outcome}");
    }
    // A stop part-way gives the rest up (the plugin is told), and the run ends at once.
    let mut child = dir.spawn(&["run", "--expand", "checksum/sha256", "--params", params]);
    drop(child.stdout.take());
    use crate::trace::WaitTimeout;
    let stopped = crate::util::Run::from(child.wait_with_output_timeout());
    stopped.assert_code(141);
}
