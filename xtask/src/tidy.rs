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
    for dir in ["crates", "plugins", "tests", "xtask"] {
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
