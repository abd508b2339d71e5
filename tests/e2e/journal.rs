//! `run --journal FILE` and `--resume`: a real `kill -9` mid-run, then a resumed run.
//!
//! The guarantee checked: exactly once against the journal (an id in the journal is never run
//! again; every id not in it is run by the resumed run, once), at least once in the output (every
//! input id has a record in one of the two outputs; records written after run 1's last journal
//! commit may be in both).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::trace::WaitTimeout;
use crate::util::{by_id, jsonl, Dir};

/// The ids of a journal's complete lines (a torn last line is left out, as `--resume` does).
fn journal_ids(path: &std::path::Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let complete = match text.rfind('\n') {
        Some(at) => &text[..=at],
        None => "",
    };
    complete
        .lines()
        .map(|l| serde_json::from_str::<String>(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect()
}

/// Outcome records of a file a crash may have cut: a torn last line is left out.
fn outcomes_of(path: &std::path::Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut outcomes = Vec::new();
    let mut lines = text.split_inclusive('\n').peekable();
    while let Some(line) = lines.next() {
        match serde_json::from_str::<Value>(line) {
            Ok(value) => outcomes.push(value),
            Err(error) => assert!(
                lines.peek().is_none() && !line.ends_with('\n'),
                "only the last line may be torn: {line:?}: {error}"
            ),
        }
    }
    outcomes
}

fn count_lines(path: &std::path::Path) -> usize {
    std::fs::read(path)
        .map(|b| b.iter().filter(|&&c| c == b'\n').count())
        .unwrap_or(0)
}

#[test]
fn kill_9_mid_run_then_resume_runs_every_id_once_against_the_journal() {
    const N: usize = 20_000;
    let dir = Dir::new();
    let items: Vec<Value> = (0..N)
        .map(|i| json!({"id": format!("k{i}"), "task": "testkit/sleep", "input": {"ms": 1}}))
        .collect();
    let input = dir.write("in.jsonl", &jsonl(&items));
    let journal = dir.path().join("run.journal");
    let out1 = dir.path().join("out1.jsonl");
    let out2 = dir.path().join("out2.jsonl");
    let args = |out: &std::path::Path, resume: bool| {
        let mut args = vec![
            "run".to_owned(),
            "--input".into(),
            input.to_str().unwrap().into(),
            "--output".into(),
            out.to_str().unwrap().into(),
            "--journal".into(),
            journal.to_str().unwrap().into(),
        ];
        if resume {
            args.push("--resume".into());
        }
        args
    };

    // Run 1: 20,000 items of 1 ms on 4 workers (about 6 s); SIGKILL once 1,000 are journaled.
    // (The journal is committed at most every 250 ms; see `dispatch::journal`.)
    let run1_args = args(&out1, false);
    let mut child = dir.spawn(&run1_args.iter().map(String::as_str).collect::<Vec<_>>());
    let started = Instant::now();
    while count_lines(&journal) < 1000 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the journal never reached 1,000 ids"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "run 1 ended before it was killed"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // Between two commits: the output buffer has spilled records whose ids are not journaled.
    std::thread::sleep(Duration::from_millis(200));
    child.kill().unwrap(); // SIGKILL: no handler, no flush
    let status = child.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );

    let journaled: Vec<String> = journal_ids(&journal);
    let journaled_set: BTreeSet<String> = journaled.iter().cloned().collect();
    assert_eq!(
        journaled.len(),
        journaled_set.len(),
        "an id journaled twice"
    );
    assert!(journaled.len() < N, "run 1 should have been cut short");
    let run1 = outcomes_of(&out1);
    let run1_ids: BTreeMap<String, Value> = by_id(&run1);
    // Every journaled id has its record out before it (flushed, then journaled).
    for id in &journaled {
        let record = run1_ids
            .get(id)
            .unwrap_or_else(|| panic!("{id} is in the journal but has no record in run 1"));
        assert_eq!(record["status"], "ok", "{record}");
    }

    // Run 2: resume with the same journal.
    let run2_args = args(&out2, true);
    let run2 = dir
        .command()
        .args(&run2_args)
        .output()
        .expect("running taskhost");
    let stderr = String::from_utf8_lossy(&run2.stderr);
    assert_eq!(run2.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "resumed: skipped {} input items already finished",
            journaled.len()
        )),
        "{stderr}"
    );
    let run2_outcomes = outcomes_of(&out2);
    let run2_ids = by_id(&run2_outcomes); // panics on a duplicate
                                          // No id both skipped (journaled) and run again.
    for id in run2_ids.keys() {
        assert!(
            !journaled_set.contains(id),
            "{id} was journaled by run 1 and run again"
        );
    }
    // Every input id: in the journal, or run (once) by run 2.
    for i in 0..N {
        let id = format!("k{i}");
        assert!(
            journaled_set.contains(&id) ^ run2_ids.contains_key(&id),
            "{id}: journaled {} / run by run 2 {}",
            journaled_set.contains(&id),
            run2_ids.contains_key(&id)
        );
    }
    assert_eq!(journaled.len() + run2_ids.len(), N);
    // At least once in the output: the union of the two outputs has every id.
    let union: BTreeSet<&String> = run1_ids.keys().chain(run2_ids.keys()).collect();
    assert_eq!(union.len(), N);
    // Records of run 1 that were written but not yet journaled are the only repeats.
    let repeated = run1_ids
        .keys()
        .filter(|id| run2_ids.contains_key(*id))
        .count();
    assert_eq!(repeated, run1_ids.len() - journaled.len());
    eprintln!(
        "kill -9 after {} journaled ids ({} records in run 1's output, {} of them repeated by \
         run 2); run 2 ran {}",
        journaled.len(),
        run1_ids.len(),
        repeated,
        run2_ids.len()
    );
    // And now the journal holds every id, once.
    let all = journal_ids(&journal);
    assert_eq!(all.len(), N);
    assert_eq!(all.iter().collect::<BTreeSet<_>>().len(), N);
}

#[test]
fn resume_appends_to_the_same_output_and_skips_a_torn_journal_line() {
    let dir = Dir::new();
    let items: Vec<Value> = (0..6)
        .map(|i| json!({"id": format!("e{i}"), "task": "testkit/echo", "input": {"i": i}}))
        .collect();
    let input = dir.write("in.jsonl", &jsonl(&items));
    let output = dir.path().join("out.jsonl");
    let journal = dir.path().join("j");
    // What a crash could leave: e0 and e1 journaled, e2's record out but not journaled, a
    // torn record after it, and a torn journal line.
    std::fs::write(
        &output,
        concat!(
            r#"{"id":"e0","status":"ok"}"#,
            "\n",
            r#"{"id":"e1","status":"ok"}"#,
            "\n",
            r#"{"id":"e2","status":"ok"}"#,
            "\n",
            r#"{"id":"e3","sta"#
        ),
    )
    .unwrap();
    std::fs::write(&journal, "\"e0\"\n\"e1\"\n\"e2").unwrap();
    let run = dir.run(
        &[
            "run",
            "-i",
            input.to_str().unwrap(),
            "-o",
            output.to_str().unwrap(),
            "--journal",
            journal.to_str().unwrap(),
            "--resume",
        ],
        "",
    );
    run.assert_code(0);
    assert!(
        run.stderr
            .contains("resumed: skipped 2 input items already finished (the journal held 2)"),
        "{}",
        run.stderr
    );
    // The torn record is gone; e2 is there twice (at least once), the rest once.
    let outcomes = crate::util::parse_jsonl(&std::fs::read_to_string(&output).unwrap());
    let ids: Vec<&str> = outcomes.iter().map(|o| o["id"].as_str().unwrap()).collect();
    assert_eq!(ids[..3], ["e0", "e1", "e2"]);
    let mut rest: Vec<&str> = ids[3..].to_vec();
    rest.sort_unstable();
    assert_eq!(rest, ["e2", "e3", "e4", "e5"]);
    assert_eq!(journal_ids(&journal).len(), 6);
}

#[test]
fn cancelled_items_are_not_journaled_so_a_resume_redoes_them() {
    let dir = Dir::new();
    let items: Vec<Value> = (0..400)
        .map(|i| json!({"id": format!("c{i}"), "task": "testkit/sleep", "input": {"ms": 20}}))
        .collect();
    let input = dir.write("in.jsonl", &jsonl(&items));
    let journal = dir.path().join("j");
    let journal_arg = journal.to_str().unwrap();
    let child = dir.spawn(&[
        "run",
        "-i",
        input.to_str().unwrap(),
        "--journal",
        journal_arg,
    ]);
    std::thread::sleep(Duration::from_millis(600));
    crate::signals::send_signal(&child, "INT");
    let first = crate::util::Run::from(child.wait_with_output_timeout());
    first.assert_code(130);
    let outcomes = first.outcomes();
    assert_eq!(outcomes.len(), 400, "every line read has a record");
    let ok: BTreeSet<String> = outcomes
        .iter()
        .filter(|o| o["status"] == "ok")
        .map(|o| o["id"].as_str().unwrap().to_owned())
        .collect();
    assert!(!ok.is_empty() && ok.len() < 400);
    // Ctrl-C commits: exactly the finished (ok) ids are in the journal, none of the cancelled.
    let journaled: BTreeSet<String> = journal_ids(&journal).into_iter().collect();
    assert_eq!(journaled, ok);

    let second = dir.run(
        &[
            "run",
            "-i",
            input.to_str().unwrap(),
            "--journal",
            journal_arg,
            "--resume",
        ],
        "",
    );
    second.assert_code(0);
    let redone = by_id(&second.outcomes());
    assert_eq!(redone.len(), 400 - ok.len());
    assert!(redone.keys().all(|id| !ok.contains(id)));
}

#[test]
fn invalid_and_unknown_items_are_finished_and_line_numbers_are_their_ids() {
    let dir = Dir::new();
    let journal = dir.path().join("j");
    let journal_arg = journal.to_str().unwrap();
    let input = "not json\n{\"task\":\"nope/x\"}\n{\"task\":\"testkit/echo\"}\n";
    let run = dir.run(&["run", "--journal", journal_arg], input);
    run.assert_code(1);
    let mut statuses: Vec<String> = run
        .outcomes()
        .iter()
        .map(|o| o["status"].as_str().unwrap().to_owned())
        .collect();
    statuses.sort();
    assert_eq!(statuses, ["invalid", "ok", "rejected"]);
    let mut ids = journal_ids(&journal);
    ids.sort();
    assert_eq!(ids, ["1", "2", "3"]);
    // A resume with the same input has nothing left to do.
    let again = dir.run(&["run", "--journal", journal_arg, "--resume"], input);
    again.assert_code(0);
    assert_eq!(again.outcomes().len(), 0);
    assert!(
        again.stderr.contains("skipped 3 input items"),
        "{}",
        again.stderr
    );
}

#[test]
fn a_journal_with_records_needs_resume_and_the_output_is_left_alone() {
    let dir = Dir::new();
    let journal = dir.write("j", "\"a\"\n");
    let output = dir.write("out.jsonl", "precious\n");
    let run = dir.run(
        &[
            "run",
            "-o",
            output.to_str().unwrap(),
            "--journal",
            journal.to_str().unwrap(),
        ],
        "",
    );
    run.assert_code(2);
    assert!(
        run.stderr
            .contains("already holds 1 finished items: pass --resume"),
        "{}",
        run.stderr
    );
    assert_eq!(std::fs::read_to_string(&output).unwrap(), "precious\n");
    let garbage = dir.write("g", "{\"id\":\"a\"}\n");
    let run = dir.run(
        &["run", "--journal", garbage.to_str().unwrap(), "--resume"],
        "",
    );
    run.assert_code(2);
    assert!(
        run.stderr
            .contains(":1: expected a JSON string (an item id) per line"),
        "{}",
        run.stderr
    );
}
