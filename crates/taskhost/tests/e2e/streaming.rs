//! Output that streams through real pipes, and pipes whose reader goes away
//! (`taskhost run | head -1`).

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ChildStdout, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::trace::WaitTimeout;
use crate::util::{jsonl, parse_jsonl, Dir, Run};

/// Reads one line from the child's stdout, or fails the test after `limit` (a run that only
/// writes at the end would block here until it ends).
fn first_line(stdout: ChildStdout, limit: Duration) -> (String, BufReader<ChildStdout>) {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        reader.read_line(&mut line).expect("reading stdout");
        let _ = sender.send((line, reader));
    });
    receiver
        .recv_timeout(limit)
        .expect("no record on stdout while the run is going on: the output does not stream")
}

/// The rest of a child whose stdout the test took (and closed).
fn finish(child: Child) -> Run {
    Run::from(child.wait_with_output_timeout())
}

#[test]
fn records_reach_a_pipe_while_the_run_goes_on_and_a_closed_pipe_stops_a_slow_batch() {
    let dir = Dir::new();
    let mut items = vec![json!({"id": "quick", "task": "testkit/echo", "input": 1})];
    // Far longer than the test's limits: the run cannot simply have ended.
    items.extend((0..8).map(
        |i| json!({"id": format!("slow{i}"), "task": "testkit/sleep", "input": {"ms": 120_000}}),
    ));
    let input = dir.write("in.jsonl", &jsonl(&items));
    let mut child = dir.spawn(&["run", "--input", input.to_str().unwrap()]);
    let (line, reader) = first_line(child.stdout.take().unwrap(), Duration::from_secs(30));
    let record: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(record["id"], "quick", "{line}");
    assert!(
        child.try_wait().unwrap().is_none(),
        "the record came before the run ended"
    );
    // `head -1` exits: the read end of the pipe closes.
    let closed_at = Instant::now();
    drop(reader);
    let run = finish(child);
    run.assert_code(141);
    assert!(
        closed_at.elapsed() < Duration::from_secs(60),
        "the run went on after its output was closed"
    );
    assert!(!run.stderr.contains("error"), "{}", run.stderr);
    assert!(!run.stderr.contains("Broken pipe"), "{}", run.stderr);
    assert!(
        run.stderr.contains("stopped: the output was closed"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("cancelled 8"), "{}", run.stderr);
}

#[test]
fn a_closed_pipe_stops_a_fast_batch_quietly_and_resume_does_the_rest() {
    let dir = Dir::new();
    let total = 50_000;
    let items: Vec<Value> = (0..total)
        .map(|i| json!({"id": format!("e{i}"), "task": "testkit/echo", "input": i}))
        .collect();
    let input = dir.write("in.jsonl", &jsonl(&items));
    let input = input.to_str().unwrap();
    let mut child = dir.spawn(&["run", "--input", input, "--journal", "run.journal"]);
    let (line, reader) = first_line(child.stdout.take().unwrap(), Duration::from_secs(30));
    assert!(line.contains("\"status\":\"ok\""), "{line}");
    drop(reader);
    let run = finish(child);
    run.assert_code(141);
    assert!(!run.stderr.contains("error"), "{}", run.stderr);
    assert!(run.stderr.contains("cancelled"), "{}", run.stderr);
    // The journal holds at most what the pipe took before it closed (an id is journaled
    // after its record is flushed); a resumed run does the rest, each id once.
    let journal = std::fs::read_to_string(dir.path().join("run.journal")).unwrap();
    let journaled = journal.lines().skip(1).count();
    assert!(journaled < total, "{journaled} ids journaled");
    let resumed = dir.run(
        &[
            "run",
            "--input",
            input,
            "--journal",
            "run.journal",
            "--resume",
            "--output",
            "rest.jsonl",
        ],
        "",
    );
    resumed.assert_code(0);
    let rest = parse_jsonl(&std::fs::read_to_string(dir.path().join("rest.jsonl")).unwrap());
    assert_eq!(rest.len(), total - journaled);
}

#[test]
fn a_closed_pipe_before_the_first_record_is_a_stop_too() {
    let dir = Dir::new();
    let items: Vec<Value> = (0..4)
        .map(|i| json!({"id": format!("s{i}"), "task": "testkit/sleep", "input": {"ms": 120_000}}))
        .collect();
    let input = dir.write("in.jsonl", &jsonl(&items));
    let mut child = dir.spawn(&["run", "--input", input.to_str().unwrap()]);
    // Give the run a moment to start, then close the pipe without reading anything.
    std::thread::sleep(Duration::from_millis(300));
    drop(child.stdout.take());
    let run = finish(child);
    run.assert_code(141);
    assert!(run.stderr.contains("cancelled 4"), "{}", run.stderr);
}

/// A terminal gets each record as it is written (`script` gives the run a pseudo-terminal).
#[test]
fn a_terminal_output_is_flushed_per_record() {
    if !crate::util::has_script() {
        return;
    }
    let dir = Dir::new();
    let input = dir.write(
        "in.jsonl",
        &jsonl(&[json!({"id": "t", "task": "testkit/echo", "input": 7})]),
    );
    let command = format!(
        "{} --config {} --no-progress --log-format json run --input {}",
        env!("CARGO_BIN_EXE_taskhost"),
        dir.config().display(),
        input.display()
    );
    let mut child = std::process::Command::new("script")
        .args(["-qfec", &command, "/dev/null"])
        .current_dir(dir.path())
        .env("RUST_LOG", "taskhost=debug")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut text = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    let run = finish(child);
    run.assert_code(0);
    let opened: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l.trim()).ok())
        .filter(|v| v["fields"]["message"] == "output.opened")
        .collect();
    assert_eq!(opened.len(), 1, "{text}");
    assert_eq!(opened[0]["fields"]["kind"], "terminal", "{text}");
    assert!(text.contains(r#""id":"t""#), "{text}");
}

/// A pipe is recognised as one (and watched for its reader going away), a file as a file.
#[test]
fn outputs_are_told_apart() {
    let dir = Dir::new();
    let input = jsonl(&[json!({"id": "a", "task": "testkit/echo", "input": 1})]);
    for (args, kind) in [
        (&["run"][..], "pipe"),
        (&["run", "--output", "out.jsonl"][..], "file"),
        (&["run", "--output", "/dev/null"][..], "other"),
    ] {
        let run = dir.run_command(
            dir.command()
                .env("RUST_LOG", "taskhost=debug")
                .args(["--log-format", "json"])
                .args(args),
            &input,
        );
        run.assert_code(0);
        let kinds: Vec<Value> = run
            .events()
            .into_iter()
            .filter(|e| e["fields"]["message"] == "output.opened")
            .map(|e| e["fields"]["kind"].clone())
            .collect();
        assert_eq!(kinds, [kind], "{args:?}: {}", run.stderr);
    }
}
