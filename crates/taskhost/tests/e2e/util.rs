//! The e2e helper: a temp folder with a config, the real `taskhost` binary, JSONL outcomes.
//!
//! In the spirit of ripgrep's `tests/util.rs`: each test builds a [`Dir`], writes what it needs,
//! runs the binary and asserts on parsed output.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;

/// The folder with the compiled sample plugins: `TASKHOST_TEST_PLUGIN_DIR` (set by
/// `cargo xtask test`), else `<workspace>/target/plugins`.
pub fn plugin_dir() -> PathBuf {
    let dir = std::env::var_os("TASKHOST_TEST_PLUGIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/plugins"));
    let has_plugins = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .flatten()
                .any(|e| e.file_name().to_string_lossy().contains("taskhost_testkit"))
        })
        .unwrap_or(false);
    assert!(
        has_plugins,
        "the sample plugins are not built in {}: run `cargo xtask build-plugins` \
         (or `cargo xtask test`), or set TASKHOST_TEST_PLUGIN_DIR",
        dir.display()
    );
    dir
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/taskhost is two levels below the root")
        .to_path_buf()
}

/// A config that every test starts from: the sample plugins and small pools.
pub fn base_config() -> String {
    format!(
        r#"
[plugins]
dirs = [{dir:?}]
strict = false

[run]
shutdown_grace = "2s"

[pools.default]
max_workers = 4

[pools.cpu]
max_workers = 2
"#,
        dir = plugin_dir().display().to_string()
    )
}

/// A temp folder to run in.
pub struct Dir {
    pub dir: tempfile::TempDir,
    config: PathBuf,
}

impl Dir {
    /// A folder with the base config.
    pub fn new() -> Self {
        Self::with_config("")
    }

    /// A folder with the base config plus `extra` (TOML appended to it).
    pub fn with_config(extra: &str) -> Self {
        let dir = tempfile::tempdir().expect("creating a temp dir");
        let config = dir.path().join("taskhost.toml");
        std::fs::write(&config, format!("{}\n{extra}", base_config())).unwrap();
        Self { dir, config }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn config(&self) -> &Path {
        &self.config
    }

    /// Writes a file in the folder and returns its path.
    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&path, contents).unwrap();
        path
    }

    /// The binary with a clean environment, this folder as working directory and its config.
    pub fn command(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_taskhost"));
        command.current_dir(self.path());
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("TASKHOST_") {
                command.env_remove(&name);
            }
        }
        command.env_remove("RUST_LOG");
        command.env("RUST_BACKTRACE", "0");
        command
            .arg("--config")
            .arg(&self.config)
            .arg("--no-progress");
        command
    }

    /// Runs the binary with `args` and `stdin`.
    pub fn run(&self, args: &[&str], stdin: &str) -> Run {
        self.run_command(self.command().args(args), stdin)
    }

    pub fn run_command(&self, command: &mut Command, stdin: &str) -> Run {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting taskhost");
        let mut input = child.stdin.take().unwrap();
        let stdin = stdin.to_owned();
        let feeder = std::thread::spawn(move || {
            let _ = input.write_all(stdin.as_bytes());
        });
        let output = child.wait_with_output().expect("waiting for taskhost");
        feeder.join().unwrap();
        Run::from(output)
    }

    /// Starts the binary without waiting (for signal tests).
    pub fn spawn(&self, args: &[&str]) -> Child {
        self.command()
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting taskhost")
    }
}

/// What a run printed and how it exited.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(output: Output) -> Self {
        Self {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl Run {
    /// The outcome records on stdout.
    pub fn outcomes(&self) -> Vec<Value> {
        parse_jsonl(&self.stdout)
    }

    /// The JSON log events on stderr (other lines, such as the summary, are skipped).
    pub fn events(&self) -> Vec<Value> {
        self.stderr
            .lines()
            .filter(|l| l.starts_with('{'))
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            Some(code),
            "expected exit code {code}\nstdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }
}

pub fn parse_jsonl(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
        .collect()
}

/// Work items as JSON lines.
pub fn jsonl<'a>(items: impl IntoIterator<Item = &'a Value>) -> String {
    let mut text = String::new();
    for item in items {
        text.push_str(&item.to_string());
        text.push('\n');
    }
    text
}

/// Outcomes by id (panics on a duplicate id).
pub fn by_id(outcomes: &[Value]) -> BTreeMap<String, Value> {
    let mut map = BTreeMap::new();
    for outcome in outcomes {
        let id = outcome["id"]
            .as_str()
            .expect("every outcome has a string id")
            .to_owned();
        assert!(
            map.insert(id.clone(), outcome.clone()).is_none(),
            "two outcomes for id {id}"
        );
    }
    map
}

/// Whether `script` (util-linux) is there to give a run a pseudo-terminal; says so when not.
pub fn has_script() -> bool {
    let found = Command::new("script").arg("--version").output().is_ok();
    if !found {
        eprintln!("skipped: `script` (util-linux) is not installed, so no pseudo-terminal");
    }
    found
}
