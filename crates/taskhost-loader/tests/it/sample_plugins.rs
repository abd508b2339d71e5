//! The sample plugins: every task type of every plugin, run through the loader. (The C plugin's
//! own behaviour is tested in `c_plugins`.)

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use taskhost_executor::{CancelReason, Executor, ResultError, TaskFuture, TaskOptions};
use taskhost_loader::{FailureKind, LogLevel, PluginTask, TaskFailure, TracingContext};

use crate::support::{json, samples, Recorder};

fn task(full_name: &str) -> PluginTask {
    samples()
        .task(full_name)
        .unwrap_or_else(|| panic!("no task {full_name}"))
}

fn run(full_name: &str, input: &str) -> Result<serde_json::Value, TaskFailure> {
    task(full_name)
        .run(input.as_bytes(), &Recorder::default())
        .map(|bytes| json(&bytes))
}

/// A testkit task that misbehaves on purpose (its description says so): it ends the process,
/// writes to the host's descriptors or ignores cancellation, so it cannot run inside this test.
fn misbehaves(task: &PluginTask) -> bool {
    task.description().ends_with("(misbehaves)")
}

#[test]
fn the_sample_plugins_load_with_their_tasks() {
    let set = samples();
    let names: Vec<_> = set.plugins().iter().map(|p| p.name()).collect();
    assert_eq!(names, ["checksum", "csample", "primes", "testkit"]);
    // testkit's tasks that misbehave on purpose (print to stdout, exit, ...) serve the host's
    // tests; they are left out here, so adding one does not change what this test says.
    let tasks: Vec<_> = set
        .tasks()
        .filter(|t| !misbehaves(t))
        .map(|t| t.full_name().to_owned())
        .collect();
    assert_eq!(
        tasks,
        [
            "checksum/sha256",
            "csample/echo",
            "csample/collatz",
            "csample/sleep",
            "csample/fail",
            "csample/log",
            "csample/greet",
            "primes/count",
            "testkit/echo",
            "testkit/sleep",
            "testkit/spin",
            "testkit/fail",
            "testkit/panic",
            "testkit/log",
            "testkit/progress",
            "testkit/raw",
        ]
    );
    let expanding: Vec<_> = set
        .plugins()
        .iter()
        .map(|p| (p.name(), p.can_expand()))
        .collect();
    assert_eq!(
        expanding,
        [
            ("checksum", true),
            ("csample", false),
            ("primes", false),
            ("testkit", false)
        ]
    );
    for plugin in set.plugins() {
        if plugin.name() != "csample" {
            // The Rust samples take the workspace's version; csample's is in its C source.
            assert_eq!(plugin.version(), env!("CARGO_PKG_VERSION"));
        }
        assert!(plugin.path().is_file());
    }
    let sleep = task("testkit/sleep");
    assert_eq!(
        (sleep.plugin_name(), sleep.task_name()),
        ("testkit", "sleep")
    );
    assert!(sleep.description().contains("cancellation"));
    assert!(set.task("testkit/nope").is_none());
}

#[test]
fn echo_returns_its_input_bytes() {
    let input = br#"{"hello": ["world", 1, null]}"#;
    let output = task("testkit/echo")
        .run(input, &Recorder::default())
        .unwrap();
    assert_eq!(output, input);
}

#[test]
fn fail_fails_with_the_message() {
    let failure = run("testkit/fail", r#"{"message": "disk on fire"}"#).unwrap_err();
    assert_eq!(
        failure,
        TaskFailure {
            kind: FailureKind::Failed,
            message: "disk on fire".into()
        }
    );
}

#[test]
fn a_panic_in_a_plugin_is_a_panicked_failure_and_the_host_lives_on() {
    let failure = run("testkit/panic", r#"{"message": "plugin bug #7"}"#).unwrap_err();
    assert_eq!(failure.kind, FailureKind::Panicked);
    assert_eq!(failure.message, "plugin bug #7");
    // The same plugin keeps working after the panic.
    assert_eq!(
        run("testkit/echo", r#"{"still": "alive"}"#).unwrap(),
        serde_json::json!({"still": "alive"})
    );
}

#[test]
fn bad_input_is_invalid_input() {
    let failure = run("testkit/sleep", r#"{"seconds": 1}"#).unwrap_err();
    assert_eq!(failure.kind, FailureKind::InvalidInput);
    assert!(failure.message.contains("missing field `ms`"), "{failure}");
    let failure = run("primes/count", "not json").unwrap_err();
    assert_eq!(failure.kind, FailureKind::InvalidInput);
}

#[test]
fn sleep_sleeps_and_stops_within_milliseconds_when_cancelled() {
    let output = run("testkit/sleep", r#"{"ms": 20}"#).unwrap();
    assert!(output["elapsed_ms"].as_f64().unwrap() >= 20.0, "{output}");

    let recorder = Arc::new(Recorder::default());
    let canceller = {
        let recorder = Arc::clone(&recorder);
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            recorder.cancel();
            Instant::now()
        })
    };
    let failure = task("testkit/sleep")
        .run(br#"{"ms": 60000}"#, &*recorder)
        .unwrap_err();
    let stopped = Instant::now();
    let cancelled_at = canceller.join().unwrap();
    assert_eq!(failure.kind, FailureKind::Cancelled);
    let reaction = stopped.duration_since(cancelled_at);
    assert!(reaction < Duration::from_millis(500), "took {reaction:?}");
}

#[test]
fn spin_keeps_the_cpu_busy_for_the_time_asked() {
    let output = run("testkit/spin", r#"{"ms": 30}"#).unwrap();
    let elapsed = output["elapsed_ms"].as_f64().unwrap();
    assert!(elapsed >= 30.0, "{output}");

    let recorder = Recorder::default();
    recorder.cancel();
    let failure = task("testkit/spin")
        .run(br#"{"ms": 60000}"#, &recorder)
        .unwrap_err();
    assert_eq!(failure.kind, FailureKind::Cancelled);
}

#[test]
fn log_reaches_the_context_at_every_level() {
    let recorder = Recorder::default();
    let output = task("testkit/log")
        .run(br#"{"message": "hi"}"#, &recorder)
        .unwrap();
    assert_eq!(json(&output), 5);
    let logs = recorder.logs.lock().unwrap().clone();
    assert_eq!(
        logs,
        [
            (LogLevel::Error, "hi (error)".to_owned()),
            (LogLevel::Warn, "hi (warn)".to_owned()),
            (LogLevel::Info, "hi (info)".to_owned()),
            (LogLevel::Debug, "hi (debug)".to_owned()),
            (LogLevel::Trace, "hi (trace)".to_owned()),
        ]
    );
}

#[test]
fn progress_reports_each_step() {
    let recorder = Recorder::default();
    let output = task("testkit/progress")
        .run(br#"{"steps": 4}"#, &recorder)
        .unwrap();
    assert_eq!(json(&output), 4);
    let progress = recorder.progress.lock().unwrap().clone();
    assert_eq!(
        progress,
        [(1, Some(4)), (2, Some(4)), (3, Some(4)), (4, Some(4))]
    );
}

#[test]
fn primes_count_is_right_and_reports_progress() {
    let recorder = Recorder::default();
    let output = task("primes/count")
        .run(br#"{"n": 1000000}"#, &recorder)
        .unwrap();
    assert_eq!(
        json(&output),
        serde_json::json!({"n": 1000000, "count": 78498})
    );
    let progress = recorder.progress.lock().unwrap().clone();
    let last = *progress.last().unwrap();
    assert_eq!(last.0, last.1.unwrap(), "{progress:?}");
}

#[test]
fn primes_count_honours_cancellation() {
    let recorder = Recorder::default();
    recorder.cancel();
    let started = Instant::now();
    let failure = task("primes/count")
        .run(br#"{"n": 100000000000}"#, &recorder)
        .unwrap_err();
    assert_eq!(failure.kind, FailureKind::Cancelled);
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn checksum_expands_a_folder_and_hashes_each_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("abc.txt"), "abc").unwrap();
    std::fs::write(dir.path().join("empty.txt"), "").unwrap();
    std::fs::write(dir.path().join("skip.md"), "no").unwrap();
    let checksum = samples().plugin("checksum").unwrap();
    let params = serde_json::json!({"root": dir.path(), "glob": "*.txt"});
    let items = checksum
        .expand("sha256", &serde_json::to_vec(&params).unwrap())
        .unwrap();
    assert_eq!(items.len(), 2);
    let mut digests = Vec::new();
    for item in items {
        let task = samples()
            .task(&item.task)
            .expect("expand names a loaded task");
        let input = serde_json::to_vec(&item.input).unwrap();
        let output = json(&task.run(&input, &TracingContext::new(&task)).unwrap());
        assert_eq!(output["path"], item.input["path"]);
        digests.push((output["bytes"].as_u64().unwrap(), output["sha256"].clone()));
    }
    assert_eq!(
        digests,
        [
            (
                3,
                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad".into()
            ),
            (
                0,
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".into()
            ),
        ]
    );
    let failure = samples()
        .plugin("primes")
        .unwrap()
        .expand("x", b"{}")
        .unwrap_err();
    assert_eq!(failure.kind, FailureKind::InvalidInput);
    assert_eq!(failure.message, "plugin `primes` does not expand jobs");
}

/// Runs `task` on `input` inside an executor task, with the executor's stop request as the
/// cancellation flag: the way the host dispatches work items.
pub(crate) fn submit(
    pool: &Executor,
    task: PluginTask,
    input: String,
) -> TaskFuture<Result<Vec<u8>, TaskFailure>> {
    pool.submit_with(TaskOptions::new().name(task.full_name()), move |ctx| {
        let is_cancelled = || ctx.is_cancelled();
        let context = TracingContext::new(&task).with_cancel_check(&is_cancelled);
        task.run(input.as_bytes(), &context)
    })
    .unwrap_or_else(|_| panic!("the pool refused the task"))
}

#[test]
fn every_task_type_runs_through_the_executor() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("data.bin");
    std::fs::write(&file, vec![7u8; 1 << 20]).unwrap();
    let file_input = serde_json::json!({"path": file}).to_string();
    let work: Vec<(&str, String, Option<FailureKind>)> = vec![
        ("testkit/echo", r#"{"x": 1}"#.into(), None),
        ("testkit/sleep", r#"{"ms": 10}"#.into(), None),
        ("testkit/spin", r#"{"ms": 10}"#.into(), None),
        (
            "testkit/fail",
            r#"{"message": "f"}"#.into(),
            Some(FailureKind::Failed),
        ),
        (
            "testkit/panic",
            r#"{"message": "p"}"#.into(),
            Some(FailureKind::Panicked),
        ),
        ("testkit/log", r#"{"message": "l"}"#.into(), None),
        ("testkit/progress", r#"{"steps": 3}"#.into(), None),
        ("primes/count", r#"{"n": 100000}"#.into(), None),
        ("checksum/sha256", file_input, None),
        ("csample/echo", r#"{"x": 1}"#.into(), None),
        ("csample/collatz", r#"{"n": 10000}"#.into(), None),
        ("csample/sleep", r#"{"ms": 10}"#.into(), None),
        (
            "csample/fail",
            r#"{"message": "f"}"#.into(),
            Some(FailureKind::Failed),
        ),
        ("csample/log", r#"{"message": "l"}"#.into(), None),
        ("csample/greet", r#"{"name": "g"}"#.into(), None),
        ("testkit/raw", r#"{"bytes": [123, 125]}"#.into(), None),
    ];
    let covered: BTreeSet<&str> = work.iter().map(|w| w.0).collect();
    let all: BTreeSet<String> = samples()
        .tasks()
        .filter(|t| !misbehaves(t))
        .map(|t| t.full_name().to_owned())
        .collect();
    assert_eq!(
        covered,
        all.iter().map(String::as_str).collect(),
        "every task type is exercised"
    );
    let pool = Executor::builder().max_workers(2).build().unwrap();
    let futures: Vec<_> = work
        .iter()
        .cycle()
        .take(work.len() * 3)
        .map(|(name, input, expected)| (*name, *expected, submit(&pool, task(name), input.clone())))
        .collect();
    for (name, expected, future) in futures {
        let result = future
            .result(None)
            .expect("the executor task itself never fails");
        assert_eq!(
            result.as_ref().err().map(|f| f.kind),
            expected,
            "{name}: {result:?}"
        );
        if name == "primes/count" {
            let output = json(result.as_ref().unwrap());
            assert_eq!(output["count"], 9592);
        }
        if name == "csample/collatz" {
            let output = json(result.as_ref().unwrap());
            assert_eq!(output["start"], 6171);
        }
    }
}

#[test]
fn a_stop_request_through_the_executor_cancels_a_sleeping_plugin_task() {
    let pool = Executor::builder().max_workers(2).build().unwrap();
    let future = submit(&pool, task("testkit/sleep"), r#"{"ms": 60000}"#.into());
    while !future.running() {
        std::thread::sleep(Duration::from_millis(1));
    }
    let asked = Instant::now();
    assert!(future.request_stop());
    // The task saw the stop request, so the executor records the future as cancelled.
    assert_eq!(
        future.result(None),
        Err(ResultError::Cancelled(CancelReason::StopRequested))
    );
    assert!(
        asked.elapsed() < Duration::from_millis(500),
        "{:?}",
        asked.elapsed()
    );
}
