//! The plugin guide as a plugin author meets it: the README's walk-through (and the C guide in
//! `docs/c-plugins.md`) built out of the tree from its own snippets, the file-name rule, and
//! panics that reach the log.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

use crate::util::{jsonl, plugin_dir, workspace_root, Dir};

/// The first fenced block of `lang` after the line that starts with `heading` in the README.
fn snippet(readme: &str, heading: &str, lang: &str) -> String {
    let start = readme
        .find(heading)
        .unwrap_or_else(|| panic!("the README has no {heading:?}"));
    let fence = format!("```{lang}\n");
    let from = start + readme[start..].find(&fence).expect("a fenced block") + fence.len();
    let to = from + readme[from..].find("\n```").expect("the end of the block");
    readme[from..=to].to_owned()
}

/// A folder the loader trusts (not group- or world-writable), with `files` copied in.
fn plugin_folder(dir: &Path, files: &[(PathBuf, &str)]) -> PathBuf {
    let plugins = dir.join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    for (from, name) in files {
        std::fs::copy(from, plugins.join(name)).unwrap();
    }
    plugins
}

fn config_for(dir: &Path, plugins: &Path) -> PathBuf {
    let config = dir.join("guide.toml");
    std::fs::write(
        &config,
        format!("[plugins]\ndirs = [{:?}]\n", plugins.display().to_string()),
    )
    .unwrap();
    config
}

fn taskhost(config: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_taskhost"));
    command.arg("--config").arg(config).arg("--no-progress");
    command.env_remove("RUST_LOG");
    command
}

/// The README's "Writing a plugin" steps 1 and 2, as written, in a crate outside the workspace
/// (only its path to `taskhost-plugin-api` is put where this checkout is), built, dropped in a
/// plugin folder and run by the host.
#[test]
fn the_readmes_plugin_walk_through_builds_out_of_the_tree_and_runs() {
    let readme = std::fs::read_to_string(workspace_root().join("README.md")).unwrap();
    let manifest = snippet(&readme, "**1. Create the crate**", "toml");
    let code = snippet(&readme, "**2. Write the tasks**", "rust");
    let written_path = "../taskhost/crates/taskhost-plugin-api";
    assert!(manifest.contains(written_path), "{manifest}");
    let api = workspace_root().join("crates/taskhost-plugin-api");
    let manifest = manifest.replace(written_path, &api.display().to_string());

    let dir = Dir::new();
    let krate = dir.path().join("taskhost-plugin-wordcount");
    std::fs::create_dir_all(krate.join("src")).unwrap();
    // Not a member of any workspace above it.
    std::fs::write(
        krate.join("Cargo.toml"),
        format!("{manifest}\n[workspace]\n"),
    )
    .unwrap();
    std::fs::write(krate.join("src/lib.rs"), code).unwrap();
    // The workspace's lockfile: the same dependency versions, none to fetch when cached.
    std::fs::copy(
        workspace_root().join("Cargo.lock"),
        krate.join("Cargo.lock"),
    )
    .unwrap();
    // A target folder kept between runs, so that only the first compiles abi_stable.
    let target = workspace_root().join("target/plugin-guide");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let built = Command::new(&cargo)
        .args(["build", "--quiet"])
        .env("CARGO_TARGET_DIR", &target)
        .current_dir(&krate)
        .status()
        .unwrap();
    assert!(built.success(), "building the README's plugin failed");
    let library = format!(
        "{}taskhost_wordcount{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    );
    let plugins = plugin_folder(
        dir.path(),
        &[(target.join("debug").join(&library), &library)],
    );
    let config = config_for(dir.path(), &plugins);

    let listed = taskhost(&config).arg("plugins").output().unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.contains("wordcount/count"), "{listed}");
    assert!(listed.contains("[debug build"), "{listed}");
    let run = dir.run_command(
        taskhost(&config)
            .args(["--log-format", "json", "run"])
            .env("RUST_LOG", "taskhost::plugin=info"),
        &jsonl(&[
            json!({"id": "w", "task": "wordcount/count", "input": {"text": "one two\nthree"}}),
        ]),
    );
    run.assert_code(0);
    assert_eq!(run.outcomes()[0]["output"], 3, "{}", run.stdout);
    let logged = run
        .events()
        .iter()
        .any(|e| e["target"] == "taskhost::plugin" && e["fields"]["message"] == "counted 3 words");
    assert!(logged, "{}", run.stderr);
}

/// The C plugin guide's plugin (`docs/c-plugins.md`, linked from the README), compiled as the
/// guide says (when there is a C compiler).
#[test]
fn the_readmes_c_plugin_builds_and_runs() {
    let readme = std::fs::read_to_string(workspace_root().join("docs/c-plugins.md")).unwrap();
    let code = snippet(&readme, "**1. Describe the plugin.**", "c");
    let dir = Dir::new();
    std::fs::write(dir.path().join("hello.c"), code).unwrap();
    let compiler = std::env::var("CC").unwrap_or_else(|_| "cc".to_owned());
    let library = format!(
        "{}taskhost_hello{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    );
    let include = workspace_root().join("crates/taskhost-plugin-api/include");
    let Ok(status) = Command::new(&compiler)
        .args([
            "-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-Werror", "-I",
        ])
        .arg(&include)
        .arg("-o")
        .arg(dir.path().join(&library))
        .arg(dir.path().join("hello.c"))
        .status()
    else {
        eprintln!("skipped: no C compiler ({compiler})");
        return;
    };
    assert!(status.success(), "the README's C plugin does not compile");
    let plugins = plugin_folder(dir.path(), &[(dir.path().join(&library), &library)]);
    let config = config_for(dir.path(), &plugins);
    let run = dir.run_command(
        taskhost(&config).args(["run", "hello/echo", "--", "hi"]),
        "",
    );
    run.assert_code(0);
    assert_eq!(run.outcomes()[0]["output"], "hi", "{}", run.stderr);
    let run = dir.run_command(
        taskhost(&config).args(["run", "hello/greet", "--field", "name", "Ada"]),
        "",
    );
    run.assert_code(0);
    assert_eq!(
        run.outcomes()[0]["output"],
        json!({"greeting": "hello, Ada"}),
        "{}",
        run.stderr
    );
}

/// Only `lib*.so` files load; another file that looks like a library is named in the log.
#[test]
fn a_library_under_another_name_is_skipped_with_a_word() {
    let dir = Dir::new();
    let testkit = plugin_dir().join(format!(
        "{}taskhost_testkit{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ));
    let plugins = plugin_folder(
        dir.path(),
        &[
            (testkit.clone(), "taskhost_testkit.so"),
            (testkit, "libtaskhost_testkit.so.1"),
        ],
    );
    std::fs::write(plugins.join("README.txt"), "notes").unwrap();
    let config = config_for(dir.path(), &plugins);
    let listed = dir.run_command(
        taskhost(&config)
            .args(["--log-format", "json", "plugins"])
            .env("RUST_LOG", "taskhost::loader=info"),
        "",
    );
    listed.assert_code(0);
    assert_eq!(listed.stdout.trim(), "no plugins loaded");
    let mut skipped: Vec<String> = listed
        .events()
        .iter()
        .filter(|e| {
            e["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("plugin.skipped: only files named lib"))
        })
        .map(|e| {
            let path = e["fields"]["path"].as_str().unwrap();
            Path::new(path)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    skipped.sort();
    // The README is left out at info level (it is a debug event).
    assert_eq!(
        skipped,
        ["libtaskhost_testkit.so.1", "taskhost_testkit.so"],
        "{}",
        listed.stderr
    );
}

/// A plugin's panic reaches the host's log (JSON here), not stderr raw.
#[test]
fn a_plugin_panic_goes_through_the_log_not_raw_to_stderr() {
    let dir = Dir::new();
    let run = dir.run_command(
        dir.command().args(["--log-format", "json", "run"]),
        &jsonl(&[json!({"id": "p", "task": "testkit/panic", "input": {"message": "kaboom"}})]),
    );
    run.assert_code(1);
    assert_eq!(run.outcomes()[0]["status"], "panicked");
    assert!(
        !run.stderr.lines().any(|l| l.starts_with("thread '")),
        "a raw panic message: {}",
        run.stderr
    );
    let event: Vec<Value> = run
        .events()
        .into_iter()
        .filter(|e| e["target"] == "taskhost::plugin" && e["level"] == "ERROR")
        .collect();
    assert_eq!(event.len(), 1, "{}", run.stderr);
    let message = event[0]["fields"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("task `panic` panicked at plugins/testkit/src/lib.rs:")
            && message.ends_with(": kaboom"),
        "{message}"
    );
}
