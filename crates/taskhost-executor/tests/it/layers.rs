//! The crate's source files form layers (issue 16): a module uses only modules in a lower layer,
//! so a newcomer can read them bottom up and no two files import each other. `LAYERS` is the
//! order ARCHITECTURE.md lists; a new file must be placed in it.

use std::collections::HashMap;
use std::path::Path;

/// Bottom first. Modules of one layer do not use one another.
const LAYERS: &[&[&str]] = &[
    &["sync", "error"],
    &[
        "queue", "events", "task_id", "metrics", "context", "timings", "watch",
    ],
    &["worker_state", "future_cell"],
    &["future", "pool"],
    &["job", "shutdown", "wait"],
    &["worker"],
    &["submit"],
    &["executor"],
    &["builder", "owned", "map"],
];

/// Every source file but `lib.rs` (which sits on top), by module name.
fn sources() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "rs"))
        .map(|path| {
            let module = path.file_stem().unwrap().to_str().unwrap().to_owned();
            let text = std::fs::read_to_string(&path).unwrap();
            (module, text)
        })
        .filter(|(module, _)| module != "lib")
        .collect();
    files.sort();
    files
}

fn layer_of(module: &str) -> usize {
    LAYERS
        .iter()
        .position(|layer| layer.contains(&module))
        .unwrap_or_else(|| {
            panic!("src/{module}.rs is in no layer: add it to LAYERS (and to ARCHITECTURE.md)")
        })
}

/// The lines that are code: comments, docs and their examples left out.
fn code_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(index, line)| (index + 1, line))
        .filter(|(_, line)| !line.trim_start().starts_with("//"))
}

/// The identifiers that follow `crate::` on a line.
fn crate_paths(line: &str) -> Vec<&str> {
    line.match_indices("crate::")
        .map(|(at, prefix)| {
            let rest = &line[at + prefix.len()..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            &rest[..end]
        })
        .collect()
}

#[test]
fn i16_every_source_file_has_a_layer_and_opens_with_its_purpose() {
    for (module, text) in sources() {
        layer_of(&module);
        assert!(
            text.starts_with("//! "),
            "src/{module}.rs must open with a `//!` line saying what it is for"
        );
    }
}

#[test]
fn i16_modules_use_only_lower_layers() {
    let mut wrong = Vec::new();
    for (module, text) in sources() {
        let layer = layer_of(&module);
        for (line_no, line) in code_lines(&text) {
            for used in crate_paths(line) {
                let lower = LAYERS[..layer].iter().any(|l| l.contains(&used));
                if !lower {
                    // A name at the crate root (a re-export) hides which module it comes from.
                    wrong.push(format!("src/{module}.rs:{line_no} uses crate::{used}"));
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

/// `worker.rs`, `shutdown.rs` and `submit.rs` each add an `impl PoolInner` block; a method call
/// needs no `use`, so this checks those calls follow the same order.
#[test]
fn i16_pool_methods_are_called_from_their_layer_or_above() {
    let sources = sources();
    let mut defined_in: HashMap<String, String> = HashMap::new();
    for (module, text) in &sources {
        let mut inside = false;
        for (_, line) in code_lines(text) {
            if line.starts_with("impl PoolInner {") {
                inside = true;
            } else if line.starts_with('}') {
                inside = false;
            } else if inside {
                // Methods only (four spaces in), not functions nested in their bodies.
                let method = line
                    .strip_prefix("    pub(crate) fn ")
                    .or(line.strip_prefix("    fn "));
                if let Some(rest) = method {
                    let name: String = rest
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    let previous = defined_in.insert(name.clone(), module.clone());
                    assert!(previous.is_none(), "PoolInner::{name} is defined twice");
                }
            }
        }
    }
    assert!(defined_in.len() > 20, "found only {defined_in:?}");
    let mut wrong = Vec::new();
    for (module, text) in &sources {
        for (line_no, line) in code_lines(text) {
            for (name, definer) in &defined_in {
                if definer != module
                    && line.contains(&format!(".{name}("))
                    && layer_of(definer) >= layer_of(module)
                {
                    wrong.push(format!(
                        "src/{module}.rs:{line_no} calls {name} of src/{definer}.rs"
                    ));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "calls up the layers:\n{}",
        wrong.join("\n")
    );
}
