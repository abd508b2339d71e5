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
use crate::util::{by_id, jsonl, Dir, Run};

/// The ids of a journal's complete lines (a torn last line is left out, as `--resume` does,
/// and so is the header that says what the journal belongs to).
fn journal_ids(path: &std::path::Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let complete = match text.rfind('\n') {
        Some(at) => &text[..=at],
        None => "",
    };
    complete
        .lines()
        .enumerate()
        .filter(|(n, l)| !(*n == 0 && l.starts_with("{\"taskhost_journal\":")))
        .map(|(_, l)| l)
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
    let first = Run::from(child.wait_with_output_timeout());
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

/// The arguments of `taskhost run -i INPUT -o OUTPUT --journal JOURNAL [--resume]`.
fn journaled_args<'a>(
    input: &'a str,
    output: &'a str,
    journal: &'a str,
    resume: bool,
) -> Vec<&'a str> {
    let mut args = vec!["run", "-i", input, "-o", output, "--journal", journal];
    if resume {
        args.push("--resume");
    }
    args
}

/// `taskhost run -i INPUT -o OUTPUT --journal JOURNAL [--resume]`.
fn journaled(dir: &Dir, input: &str, output: &str, journal: &str, resume: bool) -> Run {
    dir.run(&journaled_args(input, output, journal, resume), "")
}

/// The same, started and left running.
fn spawn_journaled(
    dir: &Dir,
    input: &str,
    output: &str,
    journal: &str,
    resume: bool,
) -> std::process::Child {
    dir.spawn(&journaled_args(input, output, journal, resume))
}

/// Ids used to collide silently: `1` and `"1"`, and an item without an id (its line number)
/// with an explicit id; `--resume` then skipped the second item as if it were done.
#[test]
fn a_duplicate_id_is_invalid_and_names_the_first_line() {
    let dir = Dir::new();
    let journal = dir.path().join("j");
    let journal_arg = journal.to_str().unwrap();
    let input = "{\"id\":1,\"task\":\"testkit/echo\",\"input\":\"number\"}\n\
                 {\"id\":\"1\",\"task\":\"testkit/echo\",\"input\":\"string\"}\n\
                 {\"id\":\"4\",\"task\":\"testkit/echo\",\"input\":\"explicit\"}\n\
                 {\"task\":\"testkit/echo\",\"input\":\"implicit\"}\n\
                 {\"id\":\"1\",\"task\":\"testkit/echo\",\"input\":\"again\"}\n\
                 {\"task\":\"testkit/echo\",\"input\":\"implicit first\"}\n\
                 {\"id\":\"6\",\"task\":\"testkit/echo\",\"input\":\"explicit second\"}\n";
    let input_path = dir.write("in.jsonl", input);
    let input_arg = input_path.to_str().unwrap();
    let run = dir.run(&["run", "-i", input_arg, "--journal", journal_arg], "");
    run.assert_code(1);
    let mut records: Vec<(u64, String, String, String)> = run
        .outcomes()
        .iter()
        .map(|o| {
            (
                o["line"].as_u64().unwrap(),
                o["id"].as_str().unwrap().to_owned(),
                o["status"].as_str().unwrap().to_owned(),
                o["error"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    records.sort();
    let expected = [
        (1, "1", "ok", ""),
        (2, "1", "invalid", "line 2: duplicate id \"1\", first on line 1"),
        (3, "4", "ok", ""),
        (
            4,
            "4",
            "invalid",
            "line 4: duplicate id \"4\", first on line 3 (an item without an `id` takes its line number as id)",
        ),
        (5, "1", "invalid", "line 5: duplicate id \"1\", first on line 1"),
        (6, "6", "ok", ""),
        (
            7,
            "6",
            "invalid",
            "line 7: duplicate id \"6\", first on line 6 (an item without an `id` takes its line number as id)",
        ),
    ]
    .map(|(line, id, status, error)| (line, id.to_owned(), status.to_owned(), error.to_owned()));
    assert_eq!(records, expected);
    // A resumed run says the same about the duplicates: it does not skip them as done.
    let again = dir.run(
        &["run", "-i", input_arg, "--journal", journal_arg, "--resume"],
        "",
    );
    again.assert_code(1);
    let lines: Vec<u64> = again
        .outcomes()
        .iter()
        .filter(|o| o["status"] == "invalid")
        .map(|o| o["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, [2, 4, 5, 7], "{}", again.stdout);
}

/// Two runs on one journal used to both exit 0 and interleave their ids.
#[test]
fn a_second_run_on_a_journal_or_resumed_output_in_use_is_refused_with_exit_2() {
    let dir = Dir::new();
    let input = dir.write(
        "in.jsonl",
        &jsonl(&[json!({"id": "long", "task": "testkit/sleep", "input": {"ms": 30000}})]),
    );
    let input_arg = input.to_str().unwrap();
    let journal = dir.path().join("j");
    let output = dir.path().join("out.jsonl");
    let (journal_arg, output_arg) = (journal.to_str().unwrap(), output.to_str().unwrap());
    let first = spawn_journaled(&dir, input_arg, output_arg, journal_arg, false);
    // The journal gets its header once the first run holds it.
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::fs::metadata(&journal).map_or(0, |m| m.len()) == 0 {
        assert!(
            Instant::now() < deadline,
            "the first run never opened its journal"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let other = dir.path().join("j2");
    let refused = [
        // The same journal, a fresh run and a resumed one.
        (
            dir.run(&["run", "-i", input_arg, "--journal", journal_arg], ""),
            format!("taskhost: error: journal {journal_arg} is in use by another taskhost run"),
        ),
        (
            journaled(&dir, input_arg, output_arg, journal_arg, true),
            format!("taskhost: error: journal {journal_arg} is in use by another taskhost run"),
        ),
        // Another journal, the same output: resuming would append to a file being written.
        (
            journaled(&dir, input_arg, output_arg, other.to_str().unwrap(), true),
            format!(
                "taskhost: error: opening output {output_arg} to append: it is in use by \
                 another taskhost run"
            ),
        ),
    ];
    for (run, message) in refused {
        run.assert_code(2);
        assert!(run.stderr.contains(&message), "{}", run.stderr);
    }
    crate::signals::send_signal(&first, "INT");
    let first = Run::from(first.wait_with_output_timeout());
    first.assert_code(130);
    // The refused runs wrote nothing into the first run's files.
    assert_eq!(journal_ids(&journal), Vec::<String>::new());
    assert_eq!(outcomes_of(&output).len(), 1);
}

/// `--resume` used to carry on silently with a deleted output (707 of 2000 records came back)
/// or a changed input.
#[test]
fn resume_checks_the_output_and_input_the_journal_belongs_to() {
    let dir = Dir::new();
    let items = |n: usize| {
        jsonl(
            &(0..n)
                .map(|i| json!({"id": format!("r{i}"), "task": "testkit/echo", "input": i}))
                .collect::<Vec<_>>(),
        )
    };
    let input = dir.write("in.jsonl", &items(3));
    let journal = dir.path().join("j");
    let output = dir.path().join("out.jsonl");
    let (input_arg, journal_arg, output_arg) = (
        input.to_str().unwrap(),
        journal.to_str().unwrap(),
        output.to_str().unwrap(),
    );
    journaled(&dir, input_arg, output_arg, journal_arg, false).assert_code(0);
    let resume = |output: &str| journaled(&dir, input_arg, output, journal_arg, true);
    // Another output: allowed, with a warning.
    let elsewhere = dir.path().join("elsewhere.jsonl");
    let run = resume(elsewhere.to_str().unwrap());
    run.assert_code(0);
    assert!(
        run.stderr.contains(&format!(
            "journal.other_output: the records of the 3 finished items the journal holds are in \
             {output_arg}; this run writes the rest to {}",
            elsewhere.display()
        )),
        "{}",
        run.stderr
    );
    // The output is gone.
    let kept = std::fs::read(&output).unwrap();
    std::fs::remove_file(&output).unwrap();
    let run = resume(output_arg);
    run.assert_code(2);
    assert!(
        run.stderr.contains(&format!(
            "holds 3 finished items whose records went to {output_arg}, which does not exist any more"
        )),
        "{}",
        run.stderr
    );
    // Emptied (`> out.jsonl`, or a run without `--journal` over it): the records are lost too.
    std::fs::write(&output, "").unwrap();
    let run = resume(output_arg);
    run.assert_code(2);
    assert!(
        run.stderr.contains(&format!(
            "holds 3 finished items whose records went to {output_arg}, which is empty now: \
             restore it, or remove the journal to start over"
        )),
        "{}",
        run.stderr
    );
    assert_eq!(std::fs::read(&output).unwrap(), b"", "left alone");
    // The input grew: a warning, and only the new item runs.
    std::fs::write(&output, kept).unwrap();
    std::fs::write(&input, items(4)).unwrap();
    let run = resume(output_arg);
    run.assert_code(0);
    assert!(
        run.stderr.contains(&format!(
            "journal.input_changed: input {} changed since the journal was started",
            input.canonicalize().unwrap().display()
        )),
        "{}",
        run.stderr
    );
    let ids: Vec<String> = by_id(&outcomes_of(&output)).into_keys().collect();
    assert_eq!(ids, ["r0", "r1", "r2", "r3"]);
    // `/dev/null` is always empty: not a lost output.
    let discarded = dir.path().join("j-null");
    let discarded_arg = discarded.to_str().unwrap();
    journaled(&dir, input_arg, "/dev/null", discarded_arg, false).assert_code(0);
    journaled(&dir, input_arg, "/dev/null", discarded_arg, true).assert_code(0);
}

/// Whether process `pid` holds a `flock` through a descriptor open on `path` (Linux: the
/// `lock:` lines of `/proc/PID/fdinfo/FD`).
#[cfg(target_os = "linux")]
fn holds_lock_on(pid: u32, path: &std::path::Path) -> bool {
    let Ok(descriptors) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    descriptors.flatten().any(|fd| {
        std::fs::read_link(fd.path()).is_ok_and(|target| target == path)
            && std::fs::read_to_string(
                std::path::Path::new(&format!("/proc/{pid}/fdinfo")).join(fd.file_name()),
            )
            .is_ok_and(|info| info.contains("FLOCK"))
    })
}

/// The output of a resumed run (opened to append) is locked as well, and a run without a
/// journal, which would empty it, is refused before it touches it.
#[cfg(target_os = "linux")]
#[test]
fn a_resumed_runs_output_is_locked_too_and_a_plain_run_on_it_is_refused() {
    let dir = Dir::new();
    let quick = json!({"id": "quick", "task": "testkit/echo", "input": 1});
    let input = dir.write("in.jsonl", &jsonl(std::slice::from_ref(&quick)));
    let input_arg = input.to_str().unwrap();
    let journal = dir.path().join("j");
    let output = dir.path().join("out.jsonl");
    let (journal_arg, output_arg) = (journal.to_str().unwrap(), output.to_str().unwrap());
    journaled(&dir, input_arg, output_arg, journal_arg, false).assert_code(0);
    // The resumed run has one item left, which takes 30 s.
    std::fs::write(
        &input,
        jsonl(&[
            quick,
            json!({"id": "long", "task": "testkit/sleep", "input": {"ms": 30000}}),
        ]),
    )
    .unwrap();
    let resumed = spawn_journaled(&dir, input_arg, output_arg, journal_arg, true);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !holds_lock_on(resumed.id(), &output) {
        assert!(
            Instant::now() < deadline,
            "the resumed run never locked its output"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let before = std::fs::read(&output).unwrap();
    let plain = dir.run(
        &["run", "-o", output_arg],
        "{\"id\":\"x\",\"task\":\"testkit/echo\"}\n",
    );
    plain.assert_code(2);
    assert!(
        plain.stderr.contains(&format!(
            "taskhost: error: creating output {output_arg}: it is in use by another taskhost run \
             (it holds the file's lock)"
        )),
        "{}",
        plain.stderr
    );
    let other = dir.path().join("j2");
    let appending = journaled(&dir, input_arg, output_arg, other.to_str().unwrap(), true);
    appending.assert_code(2);
    assert!(
        appending.stderr.contains(&format!(
            "taskhost: error: opening output {output_arg} to append: it is in use by another \
             taskhost run"
        )),
        "{}",
        appending.stderr
    );
    assert_eq!(std::fs::read(&output).unwrap(), before, "left alone");
    crate::signals::send_signal(&resumed, "INT");
    Run::from(resumed.wait_with_output_timeout()).assert_code(130);
    let ids: Vec<String> = outcomes_of(&output)
        .iter()
        .map(|o| o["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, ["quick", "long"]);
}
