//! What every plugin does alike, whichever ABI it is built against: one table-driven test per
//! behaviour, run on the Rust samples (abi_stable) and on `csample` (the C ABI). What only one
//! ABI does is tested in `sample_plugins` (Rust) and `c_plugins` (C).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use taskhost_executor::{CancelReason, Executor, ResultError, TaskFuture, TaskOptions};
use taskhost_loader::{FailureKind, LogLevel, PluginAbi, PluginTask, TaskFailure, TracingContext};

use crate::support::{json, misbehaves, run, samples, task, Recorder};

/// One ABI's sample tasks for the shared behaviours, with what each says in its own words.
struct Abi {
    abi: PluginAbi,
    /// Returns its input bytes.
    echo: &'static str,
    /// Fails with `{"message"}`.
    fail: &'static str,
    /// Sleeps `{"ms"}` milliseconds, polling for cancellation.
    sleep: &'static str,
    /// What `sleep`'s message says when `ms` is missing.
    sleep_without_ms_says: &'static str,
    /// How `sleep`'s message starts when it is cancelled, where the plugin says more.
    sleep_cancelled_starts: Option<&'static str>,
    /// Logs `{"message"}` at each level, returns 5.
    log: &'static str,
    /// A CPU-bound task and an input that would run for a long time.
    long_running: (&'static str, &'static str),
    /// Its message when cancelled before it starts, where the plugin says more.
    long_running_cancelled_says: Option<&'static str>,
}

const ABIS: [Abi; 2] = [
    Abi {
        abi: PluginAbi::AbiStable,
        echo: "testkit/echo",
        fail: "testkit/fail",
        sleep: "testkit/sleep",
        sleep_without_ms_says: "missing field `ms`",
        sleep_cancelled_starts: None,
        log: "testkit/log",
        long_running: ("primes/count", r#"{"n": 100000000000}"#),
        long_running_cancelled_says: None,
    },
    Abi {
        abi: PluginAbi::C,
        echo: "csample/echo",
        fail: "csample/fail",
        sleep: "csample/sleep",
        sleep_without_ms_says: "\"ms\"",
        sleep_cancelled_starts: Some("cancelled after "),
        log: "csample/log",
        long_running: ("csample/collatz", r#"{"n": 10000000000}"#),
        long_running_cancelled_says: Some("cancelled at start 1024 of 9999999999"),
    },
];

#[test]
fn the_table_names_tasks_of_its_abi() {
    for abi in &ABIS {
        for name in [abi.echo, abi.fail, abi.sleep, abi.log, abi.long_running.0] {
            let plugin = samples().plugin(task(name).plugin_name()).unwrap();
            assert_eq!(plugin.abi(), abi.abi, "{name}");
        }
    }
}

#[test]
fn echo_returns_its_input_bytes() {
    for abi in &ABIS {
        let echo = task(abi.echo);
        let input = br#"{"hello": ["world", 1, null]}"#;
        assert_eq!(echo.run(input, &Recorder::default()).unwrap(), input);
        assert_eq!(echo.run(b"", &Recorder::default()).unwrap(), b"");
        let big = vec![b'x'; 1 << 20];
        assert_eq!(echo.run(&big, &Recorder::default()).unwrap(), big);
    }
}

#[test]
fn fail_is_a_failed_outcome_with_the_message_and_the_plugin_lives_on() {
    for abi in &ABIS {
        for (input, message) in [
            (r#"{"message": "disk on fire"}"#, "disk on fire"),
            (
                r#"{"message": "disk \"sda\" on fire\n\u0041"}"#,
                "disk \"sda\" on fire\nA",
            ),
        ] {
            assert_eq!(
                run(abi.fail, input).unwrap_err(),
                TaskFailure {
                    kind: FailureKind::Failed,
                    message: message.into()
                },
                "{}",
                abi.fail
            );
        }
        // The plugin keeps working after a failure.
        assert_eq!(run(abi.echo, "7").unwrap(), 7);
    }
}

#[test]
fn bad_input_is_invalid_input_with_the_plugins_message() {
    for abi in &ABIS {
        let failure = run(abi.sleep, r#"{"seconds": 1}"#).unwrap_err();
        assert_eq!(failure.kind, FailureKind::InvalidInput, "{}", abi.sleep);
        assert!(
            failure.message.contains(abi.sleep_without_ms_says),
            "{}: {failure}",
            abi.sleep
        );
    }
}

#[test]
fn sleep_sleeps_and_stops_within_milliseconds_when_cancelled() {
    for abi in &ABIS {
        let output = run(abi.sleep, r#"{"ms": 20}"#).unwrap();
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
        let failure = task(abi.sleep)
            .run(br#"{"ms": 60000}"#, &*recorder)
            .unwrap_err();
        let stopped = Instant::now();
        let cancelled_at = canceller.join().unwrap();
        assert_eq!(failure.kind, FailureKind::Cancelled, "{}", abi.sleep);
        if let Some(start) = abi.sleep_cancelled_starts {
            assert!(failure.message.starts_with(start), "{failure}");
        }
        let reaction = stopped.duration_since(cancelled_at);
        assert!(
            reaction < Duration::from_millis(500),
            "{} took {reaction:?}",
            abi.sleep
        );
    }
}

#[test]
fn a_long_task_honours_cancellation() {
    for abi in &ABIS {
        let (name, input) = abi.long_running;
        let recorder = Recorder::default();
        recorder.cancel();
        let started = Instant::now();
        let failure = task(name).run(input.as_bytes(), &recorder).unwrap_err();
        assert_eq!(failure.kind, FailureKind::Cancelled, "{name}");
        if let Some(message) = abi.long_running_cancelled_says {
            assert_eq!(failure.message, message);
        }
        assert!(started.elapsed() < Duration::from_secs(5), "{name}");
    }
}

#[test]
fn logs_reach_the_context_at_every_level() {
    for abi in &ABIS {
        let recorder = Recorder::default();
        let output = task(abi.log)
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
            ],
            "{}",
            abi.log
        );
    }
}

/// Runs `task` on `input` inside an executor task, with the executor's stop request as the
/// cancellation flag: the way the host dispatches work items.
fn submit(
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

/// What a task run through the executor must give back.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// Any output.
    Ok,
    /// A JSON object whose member has this value.
    Member(&'static str, u64),
    /// A failure of this kind.
    Fails(FailureKind),
}

#[test]
fn every_task_type_of_both_abis_runs_through_the_executor() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("data.bin");
    std::fs::write(&file, vec![7u8; 1 << 20]).unwrap();
    let file_input = serde_json::json!({"path": file}).to_string();
    let work: Vec<(&str, String, Expect)> = vec![
        ("testkit/echo", r#"{"x": 1}"#.into(), Expect::Ok),
        ("testkit/sleep", r#"{"ms": 10}"#.into(), Expect::Ok),
        ("testkit/spin", r#"{"ms": 10}"#.into(), Expect::Ok),
        (
            "testkit/fail",
            r#"{"message": "f"}"#.into(),
            Expect::Fails(FailureKind::Failed),
        ),
        (
            "testkit/panic",
            r#"{"message": "p"}"#.into(),
            Expect::Fails(FailureKind::Panicked),
        ),
        ("testkit/log", r#"{"message": "l"}"#.into(), Expect::Ok),
        ("testkit/progress", r#"{"steps": 3}"#.into(), Expect::Ok),
        (
            "primes/count",
            r#"{"n": 100000}"#.into(),
            Expect::Member("count", 9592),
        ),
        ("checksum/sha256", file_input, Expect::Ok),
        ("csample/echo", r#"{"x": 1}"#.into(), Expect::Ok),
        (
            "csample/collatz",
            r#"{"n": 10000}"#.into(),
            Expect::Member("start", 6171),
        ),
        (
            "csample/collatz",
            r#"{"n": 1000}"#.into(),
            Expect::Member("start", 871),
        ),
        ("csample/sleep", r#"{"ms": 10}"#.into(), Expect::Ok),
        ("csample/sleep", r#"{"ms": 5}"#.into(), Expect::Ok),
        (
            "csample/fail",
            r#"{"message": "f"}"#.into(),
            Expect::Fails(FailureKind::Failed),
        ),
        ("csample/log", r#"{"message": "l"}"#.into(), Expect::Ok),
        ("csample/greet", r#"{"name": "g"}"#.into(), Expect::Ok),
        ("testkit/raw", r#"{"bytes": [123, 125]}"#.into(), Expect::Ok),
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
        .take(work.len() * 4)
        .map(|(name, input, expect)| (*name, *expect, submit(&pool, task(name), input.clone())))
        .collect();
    for (name, expect, future) in futures {
        let result = future
            .result(None)
            .expect("the executor task itself never fails");
        let failed = result.as_ref().err().map(|f| f.kind);
        match expect {
            Expect::Ok => assert_eq!(failed, None, "{name}: {result:?}"),
            Expect::Fails(kind) => assert_eq!(failed, Some(kind), "{name}: {result:?}"),
            Expect::Member(member, value) => {
                assert_eq!(failed, None, "{name}: {result:?}");
                assert_eq!(json(result.as_ref().unwrap())[member], value, "{name}");
            }
        }
    }
}

#[test]
fn a_stop_request_through_the_executor_cancels_a_sleeping_plugin_task() {
    let pool = Executor::builder().max_workers(2).build().unwrap();
    for abi in &ABIS {
        let future = submit(&pool, task(abi.sleep), r#"{"ms": 60000}"#.into());
        while !future.running() {
            std::thread::sleep(Duration::from_millis(1));
        }
        let asked = Instant::now();
        assert!(future.request_stop());
        // The task saw the stop request, so the executor records the future as cancelled.
        assert_eq!(
            future.result(None),
            Err(ResultError::Cancelled(CancelReason::StopRequested)),
            "{}",
            abi.sleep
        );
        assert!(
            asked.elapsed() < Duration::from_millis(500),
            "{}: {:?}",
            abi.sleep,
            asked.elapsed()
        );
    }
}
