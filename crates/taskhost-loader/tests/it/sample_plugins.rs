//! The Rust sample plugins (abi_stable): what the set of samples holds, and the behaviours only
//! they have (panics, spin, progress, primes, checksum's expand step). What every plugin does
//! alike (echo, fail, sleep, log, cancellation, the executor) is in `both_abis`; the C plugin's
//! own behaviour in `c_plugins`.

use taskhost_loader::{FailureKind, TracingContext};

use crate::support::{json, misbehaves, run, samples, task, Recorder};

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
fn input_that_is_not_json_is_invalid_input() {
    let failure = run("primes/count", "not json").unwrap_err();
    assert_eq!(failure.kind, FailureKind::InvalidInput);
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
