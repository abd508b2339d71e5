//! Bad input of every kind and what the user sees: the rows of
//! "Bad input: what the user sees" in `docs/bad-input.md`.

use serde_json::Value;

use crate::util::{by_id, Dir};

/// Each bad work-item line: the line, the record's id, status and an excerpt of its `error`.
const BAD_LINES: &[(&[u8], &str, &str, &str)] = &[
    (
        b"not json",
        "1",
        "invalid",
        "line 1: expected a JSON object {\"id\", \"task\", \"input\"}, found a parse error: expected ident at line 1 column 2",
    ),
    (
        br#"{"id":"cut","task":"testkit/echo""#,
        "2",
        "invalid",
        "found a parse error: EOF while parsing an object",
    ),
    (
        br#"["arr","testkit/echo"]"#,
        "3",
        "invalid",
        "line 3: expected a JSON object {\"id\", \"task\", \"input\"}, found an array",
    ),
    (br#""testkit/echo""#, "4", "invalid", "found a string"),
    (
        br#"{"id":["x"],"task":"testkit/echo"}"#,
        "5",
        "invalid",
        "line 5: expected `id` to be a string or a number, found [\"x\"]",
    ),
    (
        br#"{"id":true,"task":"testkit/echo"}"#,
        "6",
        "invalid",
        "expected `id` to be a string or a number, found true",
    ),
    (
        br#"{"id":"task-number","task":5}"#,
        "7",
        "invalid",
        "invalid type: integer `5`, expected a string",
    ),
    (
        br#"{"id":"no-task","input":1}"#,
        "no-task",
        "invalid",
        "line 8: expected a `task` field (\"plugin/task\"), found none",
    ),
    (
        br#"{"id":"colour","task":"testkit/echo","colour":"red"}"#,
        "9",
        "invalid",
        "unknown field `colour`, expected one of `id`, `task`, `input`",
    ),
    (
        b"{\"id\":\"utf\",\"task\":\"testkit/\xff\"}",
        "10",
        "invalid",
        "line 10: expected UTF-8 text, found invalid utf-8 sequence of 1 bytes from index 28",
    ),
    (
        b"\xef\xbb\xbf{\"id\":\"bom\",\"task\":\"testkit/echo\"}",
        "11",
        "invalid",
        "found a parse error: expected value at line 1 column 1",
    ),
    (
        br#"{"id":"a","task":"testkit/echo"}{"id":"b"}"#,
        "12",
        "invalid",
        "found a parse error: trailing characters",
    ),
    (
        br#"{"id":"d1","id":"d2","task":"testkit/echo"}"#,
        "13",
        "invalid",
        "found a parse error: duplicate field `id`",
    ),
    (
        br#"{"id":"unknown","task":"nope/none"}"#,
        "unknown",
        "rejected",
        "line 14: unknown task \"nope/none\": no loaded plugin provides it (see `taskhost plugins`)",
    ),
    (
        br#"{"id":"no-slash","task":"testkit"}"#,
        "no-slash",
        "rejected",
        "unknown task \"testkit\"",
    ),
    (
        br#"{"id":"bad-input","task":"testkit/sleep","input":{"ms":"soon"}}"#,
        "bad-input",
        "failed",
        "invalid input: input: invalid type: string \"soon\", expected u64",
    ),
    (
        b"{\"id\":\"nul\0\",\"task\":\"testkit/echo\"}",
        "17",
        "invalid",
        "control character (\\u0000-\\u001F) found while parsing a string",
    ),
];

#[test]
fn each_bad_line_gets_one_record_with_its_status_and_message() {
    let dir = Dir::new();
    let mut input = Vec::new();
    for (line, ..) in BAD_LINES {
        input.extend_from_slice(line);
        input.push(b'\n');
    }
    // A huge line: longer than run.max_line_bytes (1 MiB by default), measured, never buffered.
    input.extend_from_slice(br#"{"id":"huge","task":"testkit/echo","input":""#);
    input.extend(std::iter::repeat_n(b'x', 2 << 20));
    input.extend_from_slice(b"\"}\n");
    let path = dir.path().join("bad.jsonl");
    std::fs::write(&path, &input).unwrap();
    let run = dir.run(&["run", "-i", path.to_str().unwrap()], "");
    run.assert_code(1);
    let outcomes = run.outcomes();
    assert_eq!(outcomes.len(), BAD_LINES.len() + 1, "one record per line");
    let by_id = by_id(&outcomes);
    for (index, (line, id, status, excerpt)) in BAD_LINES.iter().enumerate() {
        let record: &Value = by_id
            .get(*id)
            .unwrap_or_else(|| panic!("no record {id} for {}", String::from_utf8_lossy(line)));
        assert_eq!(record["line"], index as u64 + 1, "{record}");
        assert_eq!(record["status"], *status, "{record}");
        let error = record["error"].as_str().unwrap();
        assert!(error.contains(excerpt), "{id}: {error:?} lacks {excerpt:?}");
    }
    let huge = &by_id[&(BAD_LINES.len() + 1).to_string()];
    assert_eq!(huge["status"], "rejected");
    assert_eq!(
        huge["error"],
        format!(
            "line {} is {} bytes, longer than run.max_line_bytes",
            BAD_LINES.len() + 1,
            input.len() - BAD_LINES.iter().map(|l| l.0.len() + 1).sum::<usize>() - 1
        )
    );
    assert!(
        run.stderr
            .contains("status: failed 1, rejected 3, invalid 14"),
        "{}",
        run.stderr
    );
}

/// Each bad configuration given to `run`: the file, an excerpt of the message.
const BAD_RUN_CONFIGS: &[(&str, &str)] = &[
    (
        "colour = \"red\"\n",
        "bad.toml:1: key `colour`: unknown field `colour`, expected one of `plugins`, `logging`, `run`, `pools`, `routes`, `jobs`",
    ),
    (
        "[pools.io]\nmax_wrokers = 3\n",
        "bad.toml:2: key `pools.io.max_wrokers`: unknown field `max_wrokers`, expected one of `max_workers`",
    ),
    (
        "[pools.io]\nmax_workers = \"many\"\n",
        "key `pools.io.max_workers`: wrong type: expected an integer, found string \"many\"",
    ),
    (
        "[run]\nshutdown_grace = \"30 s\"\n",
        "key `run.shutdown_grace`: expected a number and a unit with no space between them (ns, us, ms, s, m, h), such as \"250ms\" or \"30s\", found \"30 s\" (write \"30s\" without the space)",
    ),
    (
        "[run]\nshutdown_grace = \"5\"\n",
        "found \"5\" (the unit is missing)",
    ),
    ("[run]\nshutdown_grace = \"-5s\"\n", "found \"-5s\""),
    (
        "[pools.cpu]\nidle_timeout = \"5 fortnights\"\n",
        "key `pools.cpu.idle_timeout`: expected a number and a unit",
    ),
    (
        "[pools.cpu]\nmax_workers = 0\n",
        "bad.toml:2: key `pools.cpu.max_workers`: expected an integer of at least 1 (0 is not allowed), found 0",
    ),
    (
        "[pools.cpu]\nmax_workers = -1\n",
        "key `pools.cpu.max_workers`: expected an integer of at least 1 (0 is not allowed), found -1",
    ),
    (
        "[run]\nmax_in_flight = 0\n",
        "key `run.max_in_flight`: expected an integer of at least 1 (0 is not allowed), found 0",
    ),
    (
        "[pools.io\nmax_workers = 3\n",
        "bad.toml: not valid TOML: TOML parse error at line 1, column 10",
    ),
];

#[test]
fn a_bad_config_stops_run_with_exit_2_before_any_item() {
    let dir = Dir::new();
    for (text, excerpt) in BAD_RUN_CONFIGS {
        let file = dir.write("bad.toml", text);
        let run = dir.run_command(
            dir.command()
                .args(["run", "--config", file.to_str().unwrap()]),
            "{\"task\":\"testkit/echo\"}\n",
        );
        run.assert_code(2);
        assert!(run.stdout.is_empty(), "{text:?}: {}", run.stdout);
        assert!(
            run.stderr
                .starts_with("taskhost: error: invalid configuration"),
            "{text:?}: {}",
            run.stderr
        );
        assert!(
            run.stderr.contains(excerpt),
            "{text:?}: {:?} lacks {excerpt:?}",
            run.stderr
        );
    }
    // Not UTF-8.
    let file = dir.path().join("latin1.toml");
    std::fs::write(&file, b"[run]\n# caf\xe9\n").unwrap();
    let run = dir.run(&["run", "--config", file.to_str().unwrap()], "");
    run.assert_code(2);
    assert!(
        run.stderr
            .contains("latin1.toml: stream did not contain valid UTF-8"),
        "{}",
        run.stderr
    );
    // Zero workers from the environment.
    let run = dir.run_command(
        dir.command()
            .env("TASKHOST_POOLS__CPU__MAX_WORKERS", "0")
            .arg("run"),
        "",
    );
    run.assert_code(2);
    assert!(
        run.stderr.contains(
            "environment variable TASKHOST_POOLS__CPU__MAX_WORKERS: key `pools.cpu.max_workers`: \
             expected an integer of at least 1 (0 is not allowed), found 0"
        ),
        "{}",
        run.stderr
    );
}

#[test]
fn bad_expand_params_are_a_usage_error() {
    let run = Dir::new().run(&["run", "--expand", "testkit/x", "--params", "{bad"], "");
    run.assert_code(2);
    assert!(
        run.stderr
            .contains("--params: expected JSON, found \"{bad\": key must be a string"),
        "{}",
        run.stderr
    );
}

/// A plugin folder with the sample testkit plugin and `bad` as a library file.
fn plugin_folder_with(dir: &Dir, bad: &[u8], strict: bool) -> std::path::PathBuf {
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::copy(
        crate::util::plugin_dir().join("libtaskhost_testkit.so"),
        plugins.join("libtaskhost_testkit.so"),
    )
    .unwrap();
    std::fs::write(plugins.join("libtaskhost_bad.so"), bad).unwrap();
    dir.write(
        "plugins.toml",
        &format!("[plugins]\ndirs = [\"plugins\"]\nstrict = {strict}\n"),
    )
}

fn sample_library() -> Vec<u8> {
    std::fs::read(crate::util::plugin_dir().join("libtaskhost_primes.so")).unwrap()
}

#[test]
fn an_empty_or_cut_short_plugin_file_is_skipped_with_a_warning() {
    for (bad, excerpt) in [
        (
            Vec::new(),
            "found a file the loader cannot open (file too short)",
        ),
        (
            sample_library()[..100].to_vec(),
            "found a file the loader cannot open (cannot read file data)",
        ),
    ] {
        let dir = Dir::new();
        let config = plugin_folder_with(&dir, &bad, false);
        // The config's relative `dirs` are taken from its folder.
        let bad_library = dir.path().join("plugins/libtaskhost_bad.so");
        let run = dir.run(
            &["run", "--config", config.to_str().unwrap()],
            "{\"id\":\"e\",\"task\":\"testkit/echo\",\"input\":1}\n",
        );
        run.assert_code(0);
        assert_eq!(run.outcomes()[0]["status"], "ok");
        assert!(
            run.stderr.contains(&format!(
                "skipping plugin: {}: expected a dynamic library, ",
                bad_library.display()
            )) && run.stderr.contains(excerpt),
            "{}",
            run.stderr
        );
        // strict = true: exit 2 before any item.
        let config = plugin_folder_with(&dir, &bad, true);
        let run = dir.run(&["run", "--config", config.to_str().unwrap()], "");
        run.assert_code(2);
        assert!(
            run.stderr.contains(&format!(
                "taskhost: error: loading plugins: {}: expected a dynamic library",
                bad_library.display()
            )) && run.stderr.contains(excerpt),
            "{}",
            run.stderr
        );
    }
}

/// A library cut inside its loadable segments: the ELF headers are whole, so `dlopen` would map
/// the file and the process would die of SIGBUS on the first page past its end. The loader
/// checks the segments against the file's size first and skips the library with a warning.
#[test]
fn a_plugin_file_truncated_inside_its_segments_is_skipped_with_a_warning() {
    let dir = Dir::new();
    let config = plugin_folder_with(&dir, &sample_library()[..20_000], false);
    let run = dir.run(
        &["run", "--config", config.to_str().unwrap()],
        "{\"id\":\"e\",\"task\":\"testkit/echo\",\"input\":1}\n",
    );
    run.assert_code(0);
    assert!(
        run.stderr.contains(&format!(
            "skipping plugin: {}: not a complete library: segment ",
            dir.path().join("plugins/libtaskhost_bad.so").display()
        )) && run
            .stderr
            .contains(" but the file has 20 000 bytes (truncated?)"),
        "{}",
        run.stderr
    );
}

/// Integer ids used to go through `f64`: `…123` and `…124` both became `1.2345678901234568e+22`.
#[test]
fn number_ids_are_kept_exactly_as_written() {
    let dir = Dir::new();
    let input = "{\"id\":12345678901234567890123,\"task\":\"testkit/echo\"}\n\
                 {\"id\":12345678901234567890124,\"task\":\"testkit/echo\"}\n\
                 {\"id\":1e3,\"task\":\"testkit/echo\"}\n\
                 {\"id\":-0.50,\"task\":\"testkit/echo\"}\n";
    let run = dir.run(&["run"], input);
    run.assert_code(0);
    let ids: Vec<String> = by_id(&run.outcomes()).into_keys().collect();
    assert_eq!(
        ids,
        [
            "-0.50",
            "12345678901234567890123",
            "12345678901234567890124",
            "1e3"
        ]
    );
}

/// Plugin output must be JSON: it used to become a JSON string with status `ok`, invalid UTF-8
/// replaced with U+FFFD.
#[test]
fn plugin_output_that_is_not_json_fails_and_shows_it() {
    let dir = Dir::new();
    let item = |id: &str, bytes: &[u8]| {
        format!("{{\"id\":\"{id}\",\"task\":\"testkit/raw\",\"input\":{{\"bytes\":{bytes:?}}}}}\n")
    };
    let input = [
        item("text", b"plain text"),
        item("utf8", b"\"caf\xe9\""),
        item("json", b"[1, 2]"),
    ]
    .concat();
    let run = dir.run(&["run"], &input);
    run.assert_code(1);
    let by_id = by_id(&run.outcomes());
    assert_eq!(by_id["json"]["status"], "ok");
    assert_eq!(by_id["json"]["output"], serde_json::json!([1, 2]));
    assert_eq!(by_id["text"]["status"], "failed");
    assert_eq!(
        by_id["text"]["error"],
        "output is not JSON: expected value at line 1 column 1 (10 bytes, starting with \"plain text\")"
    );
    assert!(by_id["text"].get("output").is_none());
    assert_eq!(by_id["utf8"]["status"], "failed");
    assert_eq!(
        by_id["utf8"]["error"],
        "output is not JSON: invalid UTF-8 at byte 4 of 6 (output starts with \"\\\"caf\\xe9\\\"\")"
    );
    assert_eq!(
        by_id["utf8"]["attempts"], 1,
        "not retried: it would say the same"
    );
}

/// `taskhost run >&-` used to exit 0 with no record (the Rust runtime puts `/dev/null` in place
/// of a closed descriptor).
#[test]
fn a_closed_stdout_is_an_error_and_dev_null_is_not() {
    let dir = Dir::new();
    let item = "{\"id\":\"a\",\"task\":\"testkit/echo\"}\n";
    let shell = |redirect: &str| {
        let mut command = std::process::Command::new("sh");
        let taskhost = dir.command();
        command
            .current_dir(dir.path())
            .arg("-c")
            .arg(format!("exec \"$0\" \"$@\" {redirect}"));
        command.arg(taskhost.get_program());
        command.args(taskhost.get_args());
        for (name, value) in taskhost.get_envs() {
            match value {
                Some(value) => command.env(name, value),
                None => command.env_remove(name),
            };
        }
        command.args(["run"]);
        command
    };
    let closed = dir.run_command(&mut shell(">&-"), item);
    closed.assert_code(2);
    assert!(
        closed
            .stderr
            .contains("taskhost: error: stdout is closed, so the outcome records would go nowhere"),
        "{}",
        closed.stderr
    );
    dir.run_command(&mut shell(">/dev/null"), item)
        .assert_code(0);
    // `/dev/null` opened read-write (as Python's `subprocess.DEVNULL` gives) is not a closed
    // stdout either.
    dir.run_command(&mut shell("1<>/dev/null"), item)
        .assert_code(0);
    // Records to a file do not need stdout.
    let output = dir.path().join("out.jsonl");
    dir.run_command(
        shell(">&-").args(["--output", output.to_str().unwrap()]),
        item,
    )
    .assert_code(0);
    assert_eq!(
        crate::util::parse_jsonl(&std::fs::read_to_string(&output).unwrap()).len(),
        1
    );
}
