//! Repository rules, checked as tests (in the spirit of rust-analyzer's `tidy.rs`).
//!
//! `cargo xtask test` runs them with the rest of the workspace's tests.

use std::fs;
use std::path::{Path, PathBuf};

use crate::project_root;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if name == "target" || name.to_string_lossy().starts_with('.') {
            continue;
        }
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn all_rust_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in ["crates", "plugins", "xtask"] {
        rust_files(&project_root().join(dir), &mut files);
    }
    files
}

/// Every `unsafe` block carries a `// SAFETY:` comment on one of the three lines above it.
#[test]
fn every_unsafe_block_has_a_safety_comment() {
    let mut offenders = Vec::new();
    for file in all_rust_files() {
        if file.ends_with("xtask/src/tidy.rs") {
            continue; // this file names the pattern in its own strings
        }
        let text = fs::read_to_string(&file).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (index, line) in lines.iter().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            if !code.contains("unsafe {") && !code.trim_end().ends_with("unsafe") {
                continue;
            }
            let start = index.saturating_sub(3);
            let documented = lines[start..=index].iter().any(|l| l.contains("SAFETY:"));
            if !documented {
                offenders.push(format!("{}:{}", file.display(), index + 1));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "unsafe blocks without a `// SAFETY:` comment:\n{}",
        offenders.join("\n")
    );
}

/// Every crate in the workspace opts into the shared lints.
#[test]
fn every_crate_uses_workspace_lints() {
    let mut offenders = Vec::new();
    for dir in ["crates", "plugins"] {
        let Ok(entries) = fs::read_dir(project_root().join(dir)) else {
            continue;
        };
        for entry in entries.flatten() {
            let manifest = entry.path().join("Cargo.toml");
            if let Ok(text) = fs::read_to_string(&manifest) {
                if !text.contains("[lints]") || !text.contains("workspace = true") {
                    offenders.push(manifest.display().to_string());
                }
            }
        }
    }
    let xtask = fs::read_to_string(project_root().join("xtask/Cargo.toml")).unwrap();
    assert!(xtask.contains("[lints]"), "xtask/Cargo.toml lacks [lints]");
    assert!(
        offenders.is_empty(),
        "manifests without `[lints] workspace = true`:\n{}",
        offenders.join("\n")
    );
}

/// The CI script runs the README's test command, and the README shows it.
#[test]
fn ci_runs_the_readme_test_command() {
    let ci = fs::read_to_string(project_root().join(".ci/run")).unwrap();
    assert!(
        ci.contains("cargo xtask test"),
        ".ci/run must call `cargo xtask test`"
    );
    let readme = fs::read_to_string(project_root().join("README.md")).unwrap();
    assert!(
        readme.contains("cargo xtask test"),
        "README.md must show `cargo xtask test`"
    );
    assert!(
        readme.contains("cargo xtask demo"),
        "README.md must show `cargo xtask demo`"
    );
}

/// The path of `file` from the workspace root, with `/` between its parts.
fn relative(file: &Path) -> String {
    let path = file.strip_prefix(project_root()).unwrap_or(file);
    path.components()
        .map(|part| part.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// Every Rust file opens with a `//!` line saying what it is for, so that a newcomer who opens
/// it knows at once whether it answers their question.
#[test]
fn every_rust_file_opens_with_what_it_is_for() {
    let mut offenders = Vec::new();
    for file in all_rust_files() {
        let text = fs::read_to_string(&file).unwrap();
        let first = text.lines().next().unwrap_or_default();
        let says_something = first
            .strip_prefix("//! ")
            .is_some_and(|rest| !rest.trim().is_empty());
        if !says_something {
            offenders.push(format!("{}: {first:?}", relative(&file)));
        }
    }
    assert!(!all_rust_files().is_empty());
    assert!(
        offenders.is_empty(),
        "files whose first line is not a `//! ` line saying what the file is for:\n{}",
        offenders.join("\n")
    );
}

/// A file of the executor or the host over this many lines has grown into the place where
/// everything happens: split it so that each question has a file of its own.
const MAX_LINES: usize = 600;

/// The folders whose files [`MAX_LINES`] holds for.
const LINE_LIMITED: [&str; 2] = ["crates/taskhost-executor/src", "crates/taskhost/src"];

/// The files of [`LINE_LIMITED`] that are over [`MAX_LINES`] today, and why. The list only
/// shrinks: a file that is split must leave it (the test fails while a listed file is short).
const LONG_FILES: &[(&str, &str)] = &[(
    "crates/taskhost/src/cluster/submit.rs",
    "one submission's steps (publish, collect, reject after the wait, Ctrl-C, --resume) share \
         its state; to split by step",
)];

#[test]
fn executor_and_host_files_stay_short_or_say_why_not() {
    let mut files = Vec::new();
    for dir in LINE_LIMITED {
        rust_files(&project_root().join(dir), &mut files);
    }
    assert!(files.len() > 20, "found only {files:?}");
    let mut too_long = Vec::new();
    let mut listed_but_short = Vec::new();
    for file in &files {
        let name = relative(file);
        let lines = fs::read_to_string(file).unwrap().lines().count();
        let listed = LONG_FILES.iter().any(|(long, _)| *long == name);
        if lines > MAX_LINES && !listed {
            too_long.push(format!("{name}: {lines} lines"));
        }
        if lines <= MAX_LINES && listed {
            listed_but_short.push(format!("{name}: {lines} lines"));
        }
    }
    for (long, _) in LONG_FILES {
        assert!(
            files.iter().any(|file| relative(file) == *long),
            "{long} is in LONG_FILES but does not exist: take it off the list"
        );
    }
    assert!(
        too_long.is_empty(),
        "files over {MAX_LINES} lines: split them by question, or add them to LONG_FILES \
         with the reason:\n{}",
        too_long.join("\n")
    );
    assert!(
        listed_but_short.is_empty(),
        "files in LONG_FILES that are {MAX_LINES} lines or fewer now: take them off the list:\n{}",
        listed_but_short.join("\n")
    );
}

/// The modules of the loader and of the bench, in layers, bottom first (the order
/// ARCHITECTURE.md and each crate's root give). A module uses only modules of lower layers, so
/// no two files import each other; the crate root (`lib.rs`, `main.rs`) sits on top. (The
/// executor checks its own layers in `crates/taskhost-executor/tests/it/layers.rs`.)
const LAYERS: [(&str, &[&[&str]]); 2] = [
    (
        "crates/taskhost-loader/src",
        &[
            &["error", "description", "elf", "exit_hook", "stdio_probe"],
            &["trust", "context"],
            &["c_abi"],
            &["backend"],
            &["plugin"],
            &["load"],
        ],
    ),
    (
        "crates/taskhost-bench/src",
        &[
            &["stats", "procfs", "python", "pools"],
            &["scenarios", "table"],
            &["external"],
            &["celery"],
            &["cluster"],
            &["targets"],
            &["report"],
            &["runner"],
        ],
    ),
];

/// The modules a line of code names after `crate::`, including each of a `crate::{a, b}` group
/// (comment lines name none). A group left open on the line reads as the module `{`, which is in
/// no layer: write such a `use` on one line, or one per module.
fn crate_modules(line: &str) -> Vec<&str> {
    if line.trim_start().starts_with("//") {
        return Vec::new();
    }
    fn identifier(text: &str) -> &str {
        let text = text.trim_start();
        let end = text
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(text.len());
        &text[..end]
    }
    let mut modules = Vec::new();
    for (at, prefix) in line.match_indices("crate::") {
        let rest = &line[at + prefix.len()..];
        match rest.strip_prefix('{') {
            Some(group) => match group.find('}') {
                Some(end) => modules.extend(group[..end].split(',').map(identifier)),
                None => modules.push("{"),
            },
            None => modules.push(identifier(rest)),
        }
    }
    modules.retain(|module| !module.is_empty());
    modules
}

#[test]
fn loader_and_bench_modules_use_only_lower_layers() {
    let mut wrong = Vec::new();
    for (dir, layers) in LAYERS {
        let layer_of = |module: &str| layers.iter().position(|layer| layer.contains(&module));
        let mut files = Vec::new();
        rust_files(&project_root().join(dir), &mut files);
        assert!(files.len() > 5, "found only {files:?} in {dir}");
        for file in files {
            let module = file.file_stem().unwrap().to_string_lossy().into_owned();
            if module == "lib" || module == "main" {
                continue;
            }
            let Some(layer) = layer_of(&module) else {
                wrong.push(format!(
                    "{}: in no layer (add it to LAYERS and ARCHITECTURE.md)",
                    relative(&file)
                ));
                continue;
            };
            let text = fs::read_to_string(&file).unwrap();
            for (index, line) in text.lines().enumerate() {
                for used in crate_modules(line) {
                    // A name at the crate root (a re-export) hides the module it comes from.
                    if layer_of(used).is_none_or(|used_layer| used_layer >= layer) {
                        wrong.push(format!(
                            "{}:{} uses crate::{used}",
                            relative(&file),
                            index + 1
                        ));
                    }
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "uses outside the lower layers:\n{}",
        wrong.join("\n")
    );
}
