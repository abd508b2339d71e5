//! Shared helpers: where the sample plugins are, temp plugin folders, a recording context,
//! and building crates outside the workspace.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

use taskhost_loader::{
    LoadError, LoadOptions, LogLevel, PluginSet, PluginTask, RunContext, TaskFailure,
};

/// The sample plugins `cargo xtask build-plugins` builds: three in Rust, `csample` in C.
pub const SAMPLE_PLUGINS: [&str; 4] = [
    "taskhost_checksum",
    "taskhost_csample",
    "taskhost_primes",
    "taskhost_testkit",
];

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("the loader lives at crates/taskhost-loader")
        .to_path_buf()
}

pub fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// The platform file name of the library `name` (`libname.so` on Linux).
pub fn library_file_name(name: &str) -> String {
    format!(
        "{}{name}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    )
}

/// The folder holding the compiled sample plugins, built once per test run if needed.
pub fn sample_plugin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = match std::env::var_os("TASKHOST_TEST_PLUGIN_DIR") {
            Some(dir) => PathBuf::from(dir),
            None => {
                // Debug, as `cargo xtask test` builds them: it shares the tests' compiled
                // dependencies, which a release build would compile again.
                let status = cargo()
                    .args(["xtask", "build-plugins", "--debug"])
                    .current_dir(workspace_root())
                    .status()
                    .expect("starting `cargo xtask build-plugins`");
                assert!(
                    status.success(),
                    "TASKHOST_TEST_PLUGIN_DIR is unset and `cargo xtask build-plugins --debug` failed \
                     ({status}); run the tests with `cargo xtask test`"
                );
                workspace_root().join("target/plugins")
            }
        };
        for name in SAMPLE_PLUGINS {
            let file = dir.join(library_file_name(name));
            assert!(
                file.is_file(),
                "sample plugin {} is missing: run `cargo xtask build-plugins` or `cargo xtask test`",
                file.display()
            );
        }
        dir
    })
}

/// The compiled sample plugin `name` (e.g. `taskhost_testkit`).
pub fn sample_plugin(name: &str) -> PathBuf {
    sample_plugin_dir().join(library_file_name(name))
}

/// A fresh plugin folder holding copies of the named sample plugins.
pub fn folder_with(names: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for name in names {
        std::fs::copy(
            sample_plugin(name),
            dir.path().join(library_file_name(name)),
        )
        .unwrap();
    }
    dir
}

/// Loads `dirs`, not strict.
pub fn load(dirs: &[&Path]) -> (PluginSet, Vec<LoadError>) {
    let dirs: Vec<PathBuf> = dirs.iter().map(|d| d.to_path_buf()).collect();
    PluginSet::load(&dirs, &LoadOptions::default()).expect("a non-strict load never fails")
}

/// The sample plugins, loaded once per test binary (libraries are never unloaded).
pub fn samples() -> &'static PluginSet {
    static SET: OnceLock<PluginSet> = OnceLock::new();
    SET.get_or_init(|| {
        let (set, skipped) = load(&[sample_plugin_dir()]);
        assert!(skipped.is_empty(), "{skipped:?}");
        set
    })
}

/// The sample task `full_name` (`plugin/task`).
pub fn task(full_name: &str) -> PluginTask {
    samples()
        .task(full_name)
        .unwrap_or_else(|| panic!("no task {full_name}"))
}

/// Runs the sample task `full_name` on `input` with a fresh [`Recorder`] and parses its output.
pub fn run(full_name: &str, input: &str) -> Result<serde_json::Value, TaskFailure> {
    task(full_name)
        .run(input.as_bytes(), &Recorder::default())
        .map(|bytes| json(&bytes))
}

/// A testkit task that misbehaves on purpose (its description says so): it ends the process,
/// writes to the host's descriptors or ignores cancellation, so it cannot run inside a test.
pub fn misbehaves(task: &PluginTask) -> bool {
    task.description().ends_with("(misbehaves)")
}

/// A [`RunContext`] that records what the plugin tells it.
#[derive(Default)]
pub struct Recorder {
    pub cancelled: AtomicBool,
    pub logs: Mutex<Vec<(LogLevel, String)>>,
    pub progress: Mutex<Vec<(u64, Option<u64>)>>,
}

impl Recorder {
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Relaxed);
    }
}

impl RunContext for Recorder {
    fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }

    fn progress(&self, done: u64, total: Option<u64>) {
        self.progress.lock().unwrap().push((done, total));
    }

    fn log(&self, level: LogLevel, message: &str) {
        self.logs.lock().unwrap().push((level, message.to_owned()));
    }
}

/// Parses JSON output.
pub fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(bytes)))
}

/// Builds the crate at `crate_dir` as a cdylib into the shared `target/external-plugin` folder
/// and returns the library `lib_name`. Uses the workspace's lockfile so that no new versions
/// are needed, and tries offline first.
pub fn build_external(crate_dir: &Path, lib_name: &str) -> PathBuf {
    std::fs::copy(
        workspace_root().join("Cargo.lock"),
        crate_dir.join("Cargo.lock"),
    )
    .unwrap();
    let target_dir = workspace_root().join("target/external-plugin");
    let build = |offline: bool| {
        let mut command = cargo();
        command
            .arg("build")
            .arg("--quiet")
            .arg("--manifest-path")
            .arg(crate_dir.join("Cargo.toml"))
            .env("CARGO_TARGET_DIR", &target_dir);
        if offline {
            command.arg("--offline");
        }
        command.output().expect("starting cargo")
    };
    let mut output = build(true);
    if !output.status.success() {
        eprintln!(
            "offline build failed, retrying online:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        output = build(false);
    }
    assert!(
        output.status.success(),
        "building {} failed:\n{}",
        crate_dir.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let library = target_dir.join("debug").join(library_file_name(lib_name));
    assert!(library.is_file(), "{} was not built", library.display());
    library
}

/// Copies `from` (a file) into `dir`, keeping its file name, and returns the new path.
pub fn copy_into(from: &Path, dir: &Path) -> PathBuf {
    let to = dir.join(from.file_name().unwrap());
    std::fs::copy(from, &to).unwrap();
    to
}
