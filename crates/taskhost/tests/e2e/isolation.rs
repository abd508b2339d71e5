//! Isolated pools (`isolation = "process"`): real worker processes, real signals, real crashes.
//! A crash, a hang or a runaway costs exactly the item that caused it; every line still gets
//! one record; no worker process outlives its host.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::util::{by_id, jsonl, Dir, Run};

/// An isolated pool `iso` with the `pool` settings; `extra` TOML (routes that come first, and
/// other tables); then every testkit and csample task routes to `iso`.
fn isolated(pool: &str, extra: &str) -> Dir {
    Dir::with_config(&format!(
        "[pools.iso]\nisolation = \"process\"\n{pool}\n{extra}\n\
         [[routes]]\ntask = \"testkit/*\"\npool = \"iso\"\n\
         [[routes]]\ntask = \"csample/*\"\npool = \"iso\"\n"
    ))
}

/// The worker processes started for `dir`'s config that are still alive (from /proc).
fn worker_processes(dir: &Dir) -> Vec<u32> {
    let config = dir.config().to_string_lossy().into_owned();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| {
            let pid: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            (cmdline.contains("__serve-worker") && cmdline.contains(&config)).then_some(pid)
        })
        .collect()
}

/// Waits up to `limit` for `done`.
fn eventually(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    done()
}

/// Exactly one record per input line, 1..=n.
fn assert_one_record_per_line(run: &Run, n: usize) -> BTreeMap<String, Value> {
    let outcomes = run.outcomes();
    let mut lines: Vec<u64> = outcomes
        .iter()
        .map(|o| o["line"].as_u64().unwrap())
        .collect();
    lines.sort_unstable();
    assert_eq!(
        lines,
        (1..=n as u64).collect::<Vec<_>>(),
        "one record per line\n{}",
        run.stderr
    );
    by_id(&outcomes)
}

fn status(records: &BTreeMap<String, Value>, id: &str) -> String {
    records[id]["status"].as_str().unwrap().to_owned()
}

fn error(records: &BTreeMap<String, Value>, id: &str) -> String {
    records[id]["error"].as_str().unwrap_or_default().to_owned()
}

/// 1,000 items, mostly good, with segfaults, aborts, `exit(3)`, stack overflows and noise on
/// stdout and stderr mixed in: only the bad items are not `ok`, each says what happened, the
/// records on stdout are all JSON, exit 1, no worker process left behind.
#[test]
fn a_batch_with_crashes_costs_exactly_the_crashing_items() {
    let dir = isolated("max_workers = 2\nquarantine_after = 0", "");
    let bad = [
        (
            100,
            json!({"how": "segv"}),
            "testkit/crash",
            "killed by SIGSEGV",
        ),
        (
            200,
            json!({"how": "abort"}),
            "testkit/crash",
            "killed by SIGABRT",
        ),
        (
            300,
            json!({"code": 3}),
            "testkit/exit",
            "exited with code 3",
        ),
        (
            400,
            json!({"how": "overflow"}),
            "testkit/crash",
            "killed by SIG",
        ),
        (
            500,
            json!({"how": "segv"}),
            "testkit/crash",
            "killed by SIGSEGV",
        ),
        (
            600,
            json!({"code": 0}),
            "testkit/exit",
            "exited with code 0",
        ),
    ];
    let items: Vec<Value> = (0..1000)
        .map(|i| {
            if let Some((_, input, task, _)) = bad.iter().find(|b| b.0 == i) {
                return json!({"id": format!("i{i}"), "task": task, "input": input});
            }
            match i % 50 {
                7 => json!({"id": format!("i{i}"), "task": "testkit/print", "input": {"text": "noise on stdout\n"}}),
                8 => json!({"id": format!("i{i}"), "task": "csample/echo", "input": {"n": i}}),
                _ => json!({"id": format!("i{i}"), "task": "testkit/echo", "input": {"n": i}}),
            }
        })
        .collect();
    let started = Instant::now();
    let run = dir.run(&["run"], &jsonl(&items));
    run.assert_code(1);
    assert!(started.elapsed() < Duration::from_secs(120));
    for line in run.stdout.lines() {
        serde_json::from_str::<Value>(line)
            .unwrap_or_else(|e| panic!("not a record: {line:?}: {e}"));
    }
    let records = assert_one_record_per_line(&run, 1000);
    for (i, _, task, how) in &bad {
        let id = format!("i{i}");
        assert_eq!(status(&records, &id), "crashed", "{:?}", records[&id]);
        let expected = format!("worker process {how}");
        assert!(
            error(&records, &id).starts_with(&expected),
            "{:?}",
            records[&id]
        );
        assert!(error(&records, &id).contains(&format!("while running {task}")));
    }
    let not_ok: Vec<&String> = records
        .iter()
        .filter(|(_, r)| r["status"] != "ok")
        .map(|(id, _)| id)
        .collect();
    assert_eq!(
        not_ok.len(),
        bad.len(),
        "only the bad items fail: {not_ok:?}"
    );
    assert_eq!(
        records["i8"]["output"],
        json!({"n": 8}),
        "C plugins run isolated too"
    );
    assert!(
        run.stderr.contains("noise on stdout"),
        "what a plugin prints reaches the log"
    );
    assert!(
        eventually(Duration::from_secs(5), || worker_processes(&dir).is_empty()),
        "worker processes left: {:?}",
        worker_processes(&dir)
    );
}

/// A task that ignores its timeout is killed with its worker process after the kill grace:
/// `timed_out`, saying so; a busy loop too; the run ends, and the next item runs.
#[test]
fn a_task_that_ignores_its_timeout_is_killed_and_the_run_ends() {
    let dir = isolated(
        "max_workers = 1",
        "[[routes]]\ntask = \"testkit/stuck\"\npool = \"iso\"\ntimeout = \"300ms\"\n\
         [[routes]]\ntask = \"testkit/crash\"\npool = \"iso\"\ntimeout = \"300ms\"\n",
    );
    let items = [
        json!({"id": "stuck", "task": "testkit/stuck", "input": {"ms": 600_000}}),
        json!({"id": "loop", "task": "testkit/crash", "input": {"how": "loop"}}),
        json!({"id": "after", "task": "testkit/echo", "input": 1}),
    ];
    let started = Instant::now();
    let run = dir.run(&["run"], &jsonl(&items));
    run.assert_code(1);
    assert!(started.elapsed() < Duration::from_secs(60));
    let records = assert_one_record_per_line(&run, 3);
    for id in ["stuck", "loop"] {
        assert_eq!(status(&records, id), "timed_out", "{:?}", records[id]);
        assert!(
            error(&records, id).contains("its worker process was killed"),
            "{:?}",
            records[id]
        );
        let ran = records[id]["ran_ms"].as_f64().unwrap();
        assert!(ran >= 300.0, "ran_ms is the real run time: {ran}");
    }
    assert_eq!(status(&records, "after"), "ok");
}

/// Ctrl-C with tasks that ignore it: their worker processes are killed after the kill grace,
/// every record is written (`cancelled`), exit 130, well within the shutdown grace.
#[test]
fn ctrl_c_with_hung_tasks_ends_within_the_grace() {
    let dir = isolated("max_workers = 3", "");
    let items = [
        json!({"id": "stuck", "task": "testkit/stuck", "input": {"ms": 600_000}}),
        json!({"id": "loop", "task": "testkit/crash", "input": {"how": "loop"}}),
        json!({"id": "polite", "task": "testkit/sleep", "input": {"ms": 600_000}}),
    ];
    let input = dir.write("in.jsonl", &jsonl(&items));
    let child = dir.spawn(&["run", "--input", input.to_str().unwrap()]);
    assert!(eventually(Duration::from_secs(20), || worker_processes(
        &dir
    )
    .len()
        == 3));
    std::thread::sleep(Duration::from_millis(300));
    let signalled = Instant::now();
    crate::signals::send_signal(&child, "INT");
    let run = Run::from(child.wait_with_output().unwrap());
    run.assert_code(130);
    // The base config's grace is 2 s: the kill grace (1 s) ends the hung tasks before it.
    assert!(signalled.elapsed() < Duration::from_secs(10));
    let records = assert_one_record_per_line(&run, 3);
    for id in ["stuck", "loop", "polite"] {
        assert_eq!(status(&records, id), "cancelled", "{:?}", records[id]);
    }
    assert!(error(&records, "stuck").contains("worker process was killed"));
    assert!(
        !error(&records, "polite").contains("killed"),
        "it stopped when asked"
    );
    assert!(eventually(Duration::from_secs(5), || worker_processes(
        &dir
    )
    .is_empty()));
}

/// An item that crashes on its first attempt only succeeds on the retry its route allows.
#[test]
fn a_crash_is_retried_like_a_failure() {
    let dir = isolated(
        "max_workers = 1",
        "[[routes]]\ntask = \"testkit/crash\"\npool = \"iso\"\nretries = 1\nbackoff = \"10ms\"\n",
    );
    let marker = dir.path().join("crashed-once");
    let items = [
        json!({"id": "once", "task": "testkit/crash", "input": {"how": "abort", "once": marker}}),
        json!({"id": "always", "task": "testkit/crash", "input": {"how": "segv"}}),
    ];
    let run = dir.run(&["run"], &jsonl(&items));
    run.assert_code(1);
    let records = assert_one_record_per_line(&run, 2);
    assert_eq!(status(&records, "once"), "ok", "{:?}", records["once"]);
    assert_eq!(records["once"]["attempts"], 2);
    assert_eq!(status(&records, "always"), "crashed");
    assert_eq!(records["always"]["attempts"], 2);
}

/// A plugin that crashes on item after item is quarantined: its remaining items are
/// `rejected`, saying why, and the other plugins go on.
#[test]
fn a_plugin_that_keeps_crashing_is_quarantined() {
    let dir = isolated("max_workers = 1\nquarantine_after = 3", "");
    let mut items: Vec<Value> = (0..10)
        .map(|i| json!({"id": format!("c{i}"), "task": "testkit/crash", "input": {"how": "segv"}}))
        .collect();
    items.push(json!({"id": "other", "task": "csample/echo", "input": {"x": 1}}));
    let run = dir.run(&["run", "--ordered"], &jsonl(&items));
    run.assert_code(1);
    let records = assert_one_record_per_line(&run, 11);
    let crashed: Vec<&str> = (0..10)
        .map(|i| records[&format!("c{i}")]["status"].as_str().unwrap())
        .collect();
    assert_eq!(crashed[..3], ["crashed"; 3], "{crashed:?}");
    assert_eq!(crashed[3..], ["rejected"; 7], "{crashed:?}");
    let why = error(&records, "c9");
    assert!(
        why.contains("plugin `testkit` is quarantined") && why.contains("3 items in a row"),
        "{why}"
    );
    assert_eq!(status(&records, "other"), "ok");
    assert!(run.stderr.contains("plugin.quarantined"), "{}", run.stderr);
}

/// A task past the pool's memory or CPU limit ends `crashed`, naming the limit; the next item
/// runs in a new worker process.
#[test]
fn a_task_past_a_limit_is_crashed_and_names_the_limit() {
    let dir = isolated(
        "max_workers = 1\nmemory_limit = \"256 MiB\"\ncpu_limit = \"1s\"",
        "",
    );
    let items = [
        json!({"id": "hog", "task": "testkit/crash", "input": {"how": "hog"}}),
        json!({"id": "spin", "task": "testkit/crash", "input": {"how": "loop"}}),
        json!({"id": "after", "task": "testkit/spin", "input": {"ms": 50}}),
    ];
    let run = dir.run(&["run", "--ordered"], &jsonl(&items));
    run.assert_code(1);
    let records = assert_one_record_per_line(&run, 3);
    assert_eq!(status(&records, "hog"), "crashed");
    assert!(
        error(&records, "hog").contains("memory_limit of 256"),
        "{:?}",
        records["hog"]
    );
    assert_eq!(status(&records, "spin"), "crashed");
    assert!(
        error(&records, "spin").contains("SIGXCPU")
            && error(&records, "spin").contains("cpu_limit of 1s"),
        "{:?}",
        records["spin"]
    );
    assert_eq!(status(&records, "after"), "ok");
}

/// Logs and progress of a plugin in a worker process reach the host's log with the same target
/// and fields as in-process; what it writes to stderr is a `plugin.output` event.
#[test]
fn logs_from_a_worker_process_read_as_in_process() {
    let dir = isolated("max_workers = 1", "[logging]\nfilter = \"info\"\n");
    let items = [json!({"id": "l", "task": "testkit/log", "input": {"message": "hello"}})];
    let run = dir.run(&["run", "--log-format", "json"], &jsonl(&items));
    run.assert_code(0);
    let events = run.events();
    let warn = events
        .iter()
        .find(|e| e["target"] == "taskhost::plugin" && e["level"] == "WARN")
        .unwrap_or_else(|| panic!("no plugin warning\n{}", run.stderr));
    assert_eq!(warn["fields"]["plugin"], "testkit");
    assert_eq!(warn["fields"]["task"], "testkit/log");
    assert!(warn["fields"]["message"]
        .as_str()
        .unwrap()
        .contains("hello"));
}

/// `kill -9` of the host: its worker processes end with it (no orphan).
#[test]
fn no_worker_process_outlives_a_killed_host() {
    let dir = isolated("max_workers = 3", "");
    let items: Vec<Value> = (0..3)
        .map(|i| json!({"id": format!("s{i}"), "task": "testkit/stuck", "input": {"ms": 600_000}}))
        .collect();
    let input = dir.write("in.jsonl", &jsonl(&items));
    let mut child = dir.spawn(&["run", "--input", input.to_str().unwrap()]);
    assert!(
        eventually(Duration::from_secs(20), || worker_processes(&dir).len()
            == 3),
        "{:?}",
        worker_processes(&dir)
    );
    crate::signals::send_signal(&child, "KILL");
    let _ = child.wait();
    assert!(
        eventually(Duration::from_secs(5), || worker_processes(&dir).is_empty()),
        "orphans: {:?}",
        worker_processes(&dir)
    );
}

/// `config check` refuses what cannot work, naming the key.
#[test]
fn isolation_settings_are_checked() {
    let dir = Dir::new();
    for (toml, key, says) in [
        (
            "isolation = \"fork\"",
            "pools.p.isolation",
            "expected one of",
        ),
        (
            "memory_limit = \"1 GiB\"",
            "pools.p.memory_limit",
            "applies only to isolation = \"process\"",
        ),
        (
            "isolation = \"process\"\nmemory_limit = \"lots\"",
            "pools.p.memory_limit",
            "expected a size",
        ),
        (
            "isolation = \"process\"\nqueue_capacity = 4\nwhen_full = \"caller-runs\"",
            "pools.p.when_full",
            "conflicts with isolation",
        ),
    ] {
        let file = dir.write("bad.toml", &format!("[pools.p]\n{toml}\n"));
        let run = dir.run(&["config", "check", file.to_str().unwrap()], "");
        run.assert_code(2);
        assert!(
            run.stderr.contains(key) && run.stderr.contains(says),
            "{toml}: {}",
            run.stderr
        );
    }
}

/// `config show` and `taskhost plugins` say which pools are isolated.
#[test]
fn plugins_and_config_show_say_which_pools_are_isolated() {
    let dir = isolated("max_workers = 1", "");
    let plugins = dir.run(&["plugins"], "");
    plugins.assert_code(0);
    let line = plugins
        .stdout
        .lines()
        .find(|l| l.contains("testkit/echo"))
        .unwrap();
    assert!(line.contains("pool iso (isolated)"), "{line}");
    let show = dir.run(&["config", "show"], "");
    show.assert_code(0);
    assert!(
        show.stdout.contains("isolation = \"process\""),
        "{}",
        show.stdout
    );
}

/// The batch of the crash test without the items that crash (those are not run in a thread
/// pool: they would take the host down) under `isolation = "thread"`: every item `ok`, what a
/// plugin prints goes to stderr, exit 0.
#[test]
fn the_same_batch_without_crashes_runs_alike_in_a_thread_pool() {
    let dir = Dir::with_config("[[routes]]\ntask = \"*/*\"\npool = \"cpu\"\n");
    let items: Vec<Value> = (0..1000)
        .map(|i| match i % 50 {
            7 => json!({"id": format!("i{i}"), "task": "testkit/print", "input": {"text": "noise on stdout\n"}}),
            8 => json!({"id": format!("i{i}"), "task": "csample/echo", "input": {"n": i}}),
            _ => json!({"id": format!("i{i}"), "task": "testkit/echo", "input": {"n": i}}),
        })
        .collect();
    let run = dir.run(&["run"], &jsonl(&items));
    run.assert_code(0);
    let records = assert_one_record_per_line(&run, 1000);
    assert!(records.values().all(|r| r["status"] == "ok"));
    assert!(run.stderr.contains("noise on stdout"));
}

/// A plugin file replaced (renamed over) while a run goes on: a worker process started later
/// loads the file as it is then, under the same rules; with a pin, the changed file is refused,
/// and that plugin's items fail in the new process while the run goes on.
#[test]
fn a_plugin_replaced_mid_run_is_loaded_anew_and_refused_when_pinned() {
    let dir = Dir::new();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    for name in ["libtaskhost_testkit.so", "libtaskhost_csample.so"] {
        std::fs::copy(crate::util::plugin_dir().join(name), plugins.join(name)).unwrap();
    }
    let config = dir.write("iso.toml", "");
    let write_config = |pins: &str| {
        std::fs::write(
            &config,
            format!(
                "[plugins]\ndirs = [{:?}]\n{pins}\n[pools.iso]\nisolation = \"process\"\n\
                 max_workers = 1\nquarantine_after = 0\n[[routes]]\ntask = \"*/*\"\npool = \"iso\"\n",
                plugins.display().to_string()
            ),
        )
        .unwrap();
    };
    write_config("");
    let command = || {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_taskhost"));
        command
            .current_dir(dir.path())
            .env("RUST_BACKTRACE", "0")
            .env_remove("RUST_LOG")
            .arg("--config")
            .arg(&config)
            .arg("--no-progress");
        command
    };
    let pins = dir.run_command(command().args(["plugins", "--pins"]), "");
    pins.assert_code(0);
    let testkit_pin = pins
        .stdout
        .lines()
        .find(|l| l.starts_with("testkit = "))
        .unwrap()
        .split('#')
        .next()
        .unwrap()
        .trim()
        .to_owned();
    write_config(&format!("[plugins.pins]\n{testkit_pin}\n"));
    let items = [
        json!({"id": "before", "task": "testkit/sleep", "input": {"ms": 1500}}),
        json!({"id": "crash", "task": "testkit/crash", "input": {"how": "segv"}}),
        json!({"id": "after", "task": "testkit/echo", "input": 1}),
        json!({"id": "c", "task": "csample/echo", "input": 2}),
    ];
    let input = dir.write("in.jsonl", &jsonl(&items));
    let child = command()
        .args(["run", "--ordered", "--input", input.to_str().unwrap()])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Once the first worker process has mapped the plugin (it loads before it serves)...
    let config_text = config.to_string_lossy().into_owned();
    let loaded = || {
        std::fs::read_dir("/proc").unwrap().flatten().any(|entry| {
            let proc_dir = entry.path();
            let cmdline = std::fs::read(proc_dir.join("cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            cmdline.contains("__serve-worker")
                && cmdline.contains(&config_text)
                && std::fs::read_to_string(proc_dir.join("maps"))
                    .is_ok_and(|maps| maps.contains("libtaskhost_testkit.so"))
        })
    };
    assert!(
        eventually(Duration::from_secs(20), loaded),
        "no worker process loaded testkit"
    );
    // ...the file is replaced the way an upgrade does it: a new file renamed over the old one.
    let staged = plugins.join(".staged");
    std::fs::copy(plugins.join("libtaskhost_csample.so"), &staged).unwrap();
    std::fs::rename(&staged, plugins.join("libtaskhost_testkit.so")).unwrap();
    let run = Run::from(child.wait_with_output().unwrap());
    run.assert_code(1);
    let records = assert_one_record_per_line(&run, 4);
    assert_eq!(
        status(&records, "before"),
        "ok",
        "{:?}\n{}",
        records["before"],
        run.stderr
    );
    assert_eq!(status(&records, "crash"), "crashed");
    assert_eq!(
        status(&records, "after"),
        "failed",
        "{:?}",
        records["after"]
    );
    assert!(
        error(&records, "after").contains("the worker process has no task `testkit/echo`"),
        "{:?}",
        records["after"]
    );
    assert_eq!(status(&records, "c"), "ok", "the other plugins go on");
}

/// A worker process is replaced with its worker after `max_tasks_per_worker` tasks (Python's
/// `max_tasks_per_child`): six items, two per worker, one worker at a time: three processes.
#[test]
fn a_worker_process_is_replaced_after_max_tasks_per_worker() {
    let dir = isolated(
        "max_workers = 1\nmax_tasks_per_worker = 2",
        "[logging]\nfilter = \"warn,taskhost::isolation=debug\"\n",
    );
    let items: Vec<Value> = (0..6)
        .map(|i| json!({"id": format!("e{i}"), "task": "testkit/echo", "input": i}))
        .collect();
    let run = dir.run(&["run", "--log-format", "json"], &jsonl(&items));
    run.assert_code(0);
    let records = assert_one_record_per_line(&run, 6);
    assert!(records.values().all(|r| r["status"] == "ok"));
    let pids: std::collections::BTreeSet<u64> = run
        .events()
        .iter()
        .filter(|e| e["fields"]["message"] == "worker_process.started")
        .filter_map(|e| e["fields"]["pid"].as_u64())
        .collect();
    assert_eq!(
        pids.len(),
        3,
        "worker processes started: {pids:?}\n{}",
        run.stderr
    );
    assert!(eventually(Duration::from_secs(5), || worker_processes(
        &dir
    )
    .is_empty()));
}
