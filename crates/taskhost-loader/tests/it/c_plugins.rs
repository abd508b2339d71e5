//! Plugins written in C against `taskhost_plugin.h`: what only the `csample` sample plugin
//! (built by `cargo xtask build-plugins`) does (what it does like the Rust ones is in
//! `both_abis`), and small variants of `tiny_plugin.c`, compiled here with the machine's C compiler
//! (`$CC`, else `cc`), that the loader must refuse or whose failures it must report.

use std::path::{Path, PathBuf};
use std::process::Command;

use taskhost_loader::{
    FailureKind, LoadError, LoadOptions, LogLevel, PluginAbi, PluginSet, RunContext, TaskFailure,
    TaskInfo,
};

use crate::support::{
    folder_with, json, library_file_name, load, run, samples, task, workspace_root, Recorder,
};

#[test]
fn the_c_plugin_loads_beside_the_rust_ones_and_describes_itself() {
    // A folder with both kinds: the loader tells them apart by their exported symbol.
    let dir = folder_with(&["taskhost_testkit", "taskhost_csample"]);
    let (set, skipped) = load(&[dir.path()]);
    assert!(skipped.is_empty(), "{skipped:?}");
    let names: Vec<_> = set.plugins().iter().map(|p| p.name()).collect();
    assert_eq!(names, ["csample", "testkit"]);

    let abis: Vec<_> = set.plugins().iter().map(|p| p.abi()).collect();
    assert_eq!(abis, [PluginAbi::C, PluginAbi::AbiStable]);
    assert_eq!(PluginSet::c_abi_version(), "1.0");

    let plugin = samples().plugin("csample").unwrap();
    assert_eq!(plugin.version(), "0.1.0");
    assert_eq!(plugin.metadata(), r#"{"language":"c"}"#);
    assert!(plugin
        .path()
        .ends_with(library_file_name("taskhost_csample")));
    let names: Vec<_> = plugin.tasks().iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["echo", "collatz", "sleep", "fail", "log", "greet"]);
    assert_eq!(
        plugin.tasks()[0],
        TaskInfo {
            name: "echo".into(),
            description: "returns its input bytes unchanged".into()
        }
    );
    assert!(task("csample/sleep").description().contains("cancellation"));
    // No expand step in C ABI 1.0.
    assert!(!plugin.can_expand());
    let failure = plugin.expand("x", b"{}").unwrap_err();
    assert_eq!(failure.kind, FailureKind::InvalidInput);
    assert_eq!(failure.message, "plugin `csample` does not expand jobs");
}

#[test]
fn c_greet_reads_and_writes_json_with_the_headers_helpers() {
    let output = run(
        "csample/greet",
        r#" {"x": [1, {"name": "no"}], "name": "A\"da\u0021"} "#,
    );
    assert_eq!(
        output.unwrap(),
        serde_json::json!({"greeting": "hello, A\"da!"})
    );
    for input in [r#"{"name": 5}"#, r#"["name"]"#, "{}", r#"{"name": "cut"#] {
        let failure = run("csample/greet", input).unwrap_err();
        assert_eq!(failure.kind, FailureKind::InvalidInput, "{input}");
    }
}

#[test]
fn c_collatz_computes_and_reports_progress() {
    let recorder = Recorder::default();
    let output = task("csample/collatz")
        .run(br#"{"n": 1000000}"#, &recorder)
        .unwrap();
    assert_eq!(
        json(&output),
        serde_json::json!({"n": 1000000, "start": 837799, "steps": 524})
    );
    let progress = recorder.progress.lock().unwrap().clone();
    // Every 1% (9999 starts), then the last one.
    assert_eq!(progress.len(), 101, "{progress:?}");
    assert_eq!(progress.last(), Some(&(999_999, Some(999_999))));
    // A bare number is accepted too, and other members are skipped.
    assert_eq!(run("csample/collatz", " 10 ").unwrap()["start"], 9);
    assert_eq!(
        run(
            "csample/collatz",
            r#"{"note": "n is \"here\"", "nested": {"n": 1}, "n": 100}"#
        )
        .unwrap()["start"],
        97
    );
}

#[test]
fn c_bad_input_is_invalid_input_with_the_plugins_message() {
    for input in [
        "",
        "not json",
        r#"{"n": -3}"#,
        r#"{"n": 1}"#,
        r#"{"m": 5}"#,
        "[5]",
    ] {
        let failure = run("csample/collatz", input).unwrap_err();
        assert_eq!(
            failure,
            TaskFailure {
                kind: FailureKind::InvalidInput,
                message: "expected {\"n\": N} or a bare N, an integer from 2 to 10000000000".into()
            },
            "input {input:?}"
        );
    }
}

// ---- variants of tiny_plugin.c -------------------------------------------------------------

/// Compiles `tests/it/tiny_plugin.c` with `defines` into `dir` as the library `lib_name`.
fn compile_tiny(dir: &Path, lib_name: &str, defines: &[&str]) -> PathBuf {
    let compiler = std::env::var("CC")
        .ok()
        .filter(|cc| !cc.trim().is_empty())
        .unwrap_or_else(|| "cc".to_owned());
    let mut words = compiler.split_whitespace();
    let program = words.next().unwrap();
    let library = dir.join(library_file_name(lib_name));
    let output = Command::new(program)
        .args(words)
        .args([
            "-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-Werror", "-I",
        ])
        .arg(workspace_root().join("crates/taskhost-plugin-api/include"))
        .args(defines.iter().map(|d| format!("-D{d}")))
        .arg("-o")
        .arg(&library)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/tiny_plugin.c"))
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "these tests compile C plugins, but the C compiler `{program}` could not be \
                 started ({e}): install gcc or clang, or set $CC"
            )
        });
    assert!(
        output.status.success(),
        "compiling tiny_plugin.c with {defines:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    library
}

/// Loads the one library in `dir` strictly and returns the error.
fn refusal(dir: &Path) -> LoadError {
    PluginSet::load(
        &[dir.to_path_buf()],
        &LoadOptions {
            strict: true,
            ..LoadOptions::default()
        },
    )
    .expect_err("the library must be refused")
}

/// The tiny plugin, compiled as it is and loaded (each test its own copy of the library).
fn tiny() -> (tempfile::TempDir, PluginSet) {
    let dir = tempfile::tempdir().unwrap();
    compile_tiny(dir.path(), "taskhost_tiny", &[]);
    let (set, skipped) = load(&[dir.path()]);
    assert!(skipped.is_empty(), "{skipped:?}");
    (dir, set)
}

#[test]
fn a_c_plugin_with_the_wrong_magic_number_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let library = compile_tiny(
        dir.path(),
        "taskhost_badmagic",
        &["TH_TEST_MAGIC=0xDEADBEEFu"],
    );
    let error = refusal(dir.path());
    assert!(
        matches!(
            error,
            LoadError::BadMagic {
                found: 0xDEAD_BEEF,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        format!(
            "{}: expected a taskhost C plugin descriptor from `taskhost_plugin_descriptor` \
             starting with magic number 0x4c504854, found 0xdeadbeef (was it built with \
             taskhost_plugin.h?)",
            library.display()
        )
    );
    // Not strict: skipped with the same error, the other plugins load.
    std::fs::copy(
        crate::support::sample_plugin("taskhost_csample"),
        dir.path().join(library_file_name("taskhost_csample")),
    )
    .unwrap();
    let (set, skipped) = load(&[dir.path()]);
    assert_eq!(set.plugins().len(), 1);
    assert_eq!(set.plugins()[0].name(), "csample");
    assert_eq!(skipped.len(), 1);
    assert!(matches!(skipped[0], LoadError::BadMagic { .. }));
}

#[test]
fn a_c_plugin_built_for_another_abi_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    for (defines, found) in [
        (&["TH_TEST_MAJOR=2"][..], "2.0"),
        (&["TH_TEST_MAJOR=0", "TH_TEST_MINOR=9"][..], "0.9"),
        (&["TH_TEST_MINOR=1"][..], "1.1"),
    ] {
        let sub = dir.path().join(found);
        std::fs::create_dir(&sub).unwrap();
        let library = compile_tiny(&sub, "taskhost_version", defines);
        let error = refusal(&sub);
        assert!(
            matches!(&error, LoadError::IncompatibleCAbi { expected, found: f, .. }
                if expected == "1.0" && f == found),
            "{error:?}"
        );
        assert_eq!(
            error.to_string(),
            format!(
                "{}: built against taskhost C plugin ABI {found}, this host supports 1.0 (the \
                 same major version, up to its minor version; rebuild the plugin against the \
                 host's taskhost_plugin.h)",
                library.display()
            )
        );
    }
}

#[test]
fn a_c_run_function_returning_an_error_is_a_failed_outcome() {
    let (_dir, set) = tiny();
    let run = |name: &str| {
        set.task(name)
            .unwrap()
            .run(b"{}", &Recorder::default())
            .unwrap_err()
    };
    assert_eq!(
        run("tiny/fail"),
        TaskFailure {
            kind: FailureKind::Failed,
            message: "no such file: data.bin".into()
        }
    );
    assert_eq!(
        run("tiny/odd"),
        TaskFailure {
            kind: FailureKind::Failed,
            message: "task `odd` returned the unknown status 42: what is this".into()
        }
    );
    assert_eq!(
        run("tiny/silent"),
        TaskFailure {
            kind: FailureKind::Panicked,
            message: "task `silent` returned `panicked` without a message".into()
        }
    );
    // Each of the two messages went back to the plugin's free_buffer once ("silent" had none).
    let frees = set.task("tiny/frees").unwrap();
    assert_eq!(frees.run(b"", &Recorder::default()).unwrap(), b"2");
    // ... and so did the output of that call.
    assert_eq!(frees.run(b"", &Recorder::default()).unwrap(), b"3");
}

#[test]
fn c_callbacks_reach_the_run_context() {
    let (_dir, set) = tiny();
    let callbacks = set.task("tiny/callbacks").unwrap();
    let recorder = Recorder::default();
    assert_eq!(json(&callbacks.run(b"", &recorder).unwrap()), "running");
    assert_eq!(
        recorder.logs.lock().unwrap().clone(),
        [
            (LogLevel::Warn, "careful".to_owned()),
            (LogLevel::Info, "odd level \u{fffd}".to_owned()),
            (LogLevel::Debug, String::new()),
        ]
    );
    assert_eq!(
        recorder.progress.lock().unwrap().clone(),
        [(1, None), (2, Some(3))]
    );
    recorder.cancel();
    assert_eq!(json(&callbacks.run(b"", &recorder).unwrap()), "cancelled");
}

/// A context whose every callback panics.
struct Panicky;

impl RunContext for Panicky {
    fn is_cancelled(&self) -> bool {
        panic!("is_cancelled panicked")
    }

    fn progress(&self, _done: u64, _total: Option<u64>) {
        panic!("progress panicked")
    }

    fn log(&self, _level: LogLevel, _message: &str) {
        panic!("log panicked")
    }
}

#[test]
fn a_panicking_host_callback_does_not_unwind_into_c() {
    let (_dir, set) = tiny();
    // The panics are caught in the trampolines: logs and progress are dropped, and a
    // cancellation check that panics reads as cancelled.
    let output = set
        .task("tiny/callbacks")
        .unwrap()
        .run(b"", &Panicky)
        .unwrap();
    assert_eq!(json(&output), "cancelled");
    let failure = task("csample/sleep")
        .run(br#"{"ms": 60000}"#, &Panicky)
        .unwrap_err();
    assert_eq!(failure.kind, FailureKind::Cancelled);
}

#[test]
fn c_descriptors_with_missing_or_bad_fields_are_refused() {
    let cases: [(&[&str], &str); 3] = [
        (
            &["TH_TEST_NULL_DESCRIPTOR"],
            "the plugin failed to start: taskhost_plugin_descriptor() returned NULL",
        ),
        (
            &["TH_TEST_NULL_RUN"],
            "plugin `tiny`: expected a `run` function for task `fail`, found NULL",
        ),
        (
            &["TH_TEST_NAME=\"two words\""],
            "expected a plugin name of letters, digits, `_`, `-` or `.`, found `two words`",
        ),
    ];
    for (index, (defines, message)) in cases.into_iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        let library = compile_tiny(dir.path(), &format!("taskhost_bad{index}"), defines);
        let error = refusal(dir.path());
        assert_eq!(
            error.to_string(),
            format!("{}: {message}", library.display()),
            "{defines:?}"
        );
    }
}
