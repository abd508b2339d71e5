//! Plugins built outside the workspace: the "drop in a compiled plugin" promise end to end,
//! and plugins built against an interface this host must refuse.

use std::path::{Path, PathBuf};

use taskhost_loader::{FailureKind, LoadError, PluginSet, TracingContext};

use crate::support::{build_external, copy_into, json, load, workspace_root};

const PLUGIN_SOURCE: &str = r#"
use serde::Deserialize;
use taskhost_plugin_api::{export_plugin, Plugin, TaskContext, TaskError};

#[derive(Deserialize)]
struct Input {
    text: String,
}

fn count(input: Input, ctx: &TaskContext<'_>) -> Result<usize, TaskError> {
    ctx.info("counting words");
    Ok(input.text.split_whitespace().count())
}

fn plugin() -> Plugin {
    Plugin::new("wordcount", "0.3.0").task("count", "counts the words of `text`", count)
}

export_plugin!(plugin);
"#;

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// Writes a plugin crate at `dir` whose `taskhost-plugin-api` dependency is at `api_dir`.
fn plugin_crate(dir: &Path, package: &str, lib_name: &str, api_dir: &Path, source: &str) {
    write(
        &dir.join("Cargo.toml"),
        &format!(
            r#"[package]
name = "{package}"
version = "0.3.0"
edition = "2021"
publish = false

[lib]
name = "{lib_name}"
crate-type = ["cdylib"]

[dependencies]
taskhost-plugin-api = {{ path = {api_dir:?} }}
serde = {{ version = "1", features = ["derive"] }}

[workspace]
"#,
            api_dir = api_dir.to_str().unwrap(),
        ),
    );
    write(&dir.join("src/lib.rs"), source);
}

/// A copy of this workspace's `taskhost-plugin-api` at `dir`, with its version set to
/// `version` and `patch` applied to each source file (path relative to `src/`, text).
fn api_copy(dir: &Path, version: &str, patch: impl Fn(&str, String) -> String) {
    let api = workspace_root().join("crates/taskhost-plugin-api");
    write(
        &dir.join("Cargo.toml"),
        &format!(
            r#"[package]
name = "taskhost-plugin-api"
version = "{version}"
edition = "2021"

[features]
default = ["json"]
json = ["dep:serde", "dep:serde_json"]

[dependencies]
abi_stable = {{ version = "0.11.3", default-features = false }}
serde = {{ version = "1", features = ["derive"], optional = true }}
serde_json = {{ version = "1", optional = true }}
"#
        ),
    );
    copy_sources(&api.join("src"), &dir.join("src"), &patch);
}

/// Copies every file under `from` (folders too) to `to`, each through `patch` (by file name).
fn copy_sources(from: &Path, to: &Path, patch: &impl Fn(&str, String) -> String) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        if entry.file_type().unwrap().is_dir() {
            copy_sources(&entry.path(), &to.join(&name), patch);
            continue;
        }
        let text = std::fs::read_to_string(entry.path()).unwrap();
        write(&to.join(&name), &patch(&name, text));
    }
}

fn build_plugin_against(
    api_dir: &Path,
    package: &str,
    lib_name: &str,
) -> (tempfile::TempDir, PathBuf) {
    build_plugin_from(api_dir, package, lib_name, PLUGIN_SOURCE)
}

fn build_plugin_from(
    api_dir: &Path,
    package: &str,
    lib_name: &str,
    source: &str,
) -> (tempfile::TempDir, PathBuf) {
    let work = tempfile::tempdir().unwrap();
    let crate_dir = work.path().join(package);
    plugin_crate(&crate_dir, package, lib_name, api_dir, source);
    let library = build_external(&crate_dir, lib_name);
    (work, library)
}

#[test]
fn a_plugin_built_outside_the_workspace_drops_in_and_runs() {
    let api = workspace_root().join("crates/taskhost-plugin-api");
    let (_work, library) = build_plugin_against(&api, "wordcount-plugin", "taskhost_ext_wordcount");
    let plugins = tempfile::tempdir().unwrap();
    copy_into(&library, plugins.path());
    let (set, skipped) = load(&[plugins.path()]);
    assert!(skipped.is_empty(), "{skipped:?}");
    let plugin = &set.plugins()[0];
    assert_eq!((plugin.name(), plugin.version()), ("wordcount", "0.3.0"));
    let task = set.task("wordcount/count").unwrap();
    assert_eq!(task.description(), "counts the words of `text`");
    let output = task
        .run(
            br#"{"text": "one two  three"}"#,
            &TracingContext::new(&task),
        )
        .unwrap();
    assert_eq!(json(&output), 3);
    let failure = task.run(b"[]", &TracingContext::new(&task)).unwrap_err();
    assert_eq!(failure.kind, FailureKind::InvalidInput);
}

#[test]
fn a_plugin_built_against_another_interface_version_is_refused() {
    let work = tempfile::tempdir().unwrap();
    let api = work.path().join("api-0.2");
    api_copy(&api, "0.2.0", |_, text| text);
    let (_plugin_work, library) =
        build_plugin_against(&api, "wordcount-api-two", "taskhost_ext_api_two");
    let plugins = tempfile::tempdir().unwrap();
    let path = copy_into(&library, plugins.path());
    let (set, skipped) = load(&[plugins.path()]);
    assert!(set.plugins().is_empty());
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert!(
        matches!(skipped[0], LoadError::IncompatibleVersion { .. }),
        "{skipped:?}"
    );
    assert_eq!(
        skipped[0].to_string(),
        format!(
            "{}: built against taskhost-plugin-api 0.2.0, this host needs {} \
             (rebuild the plugin against it)",
            path.display(),
            PluginSet::interface_version()
        )
    );
}

#[test]
fn a_plugin_built_against_an_older_root_module_is_refused() {
    // The interface as it would have been without the `expand` field: same name, same version,
    // one root field fewer. abi_stable must refuse it ("too many fields" on the host's side).
    let work = tempfile::tempdir().unwrap();
    let api = work.path().join("api-older");
    api_copy(
        &api,
        &PluginSet::interface_version(),
        |name, text| match name {
            "abi.rs" => {
                let start = text
                    .find("    /// Expands a job description")
                    .expect("expand field");
                let end = start
                    + text[start..]
                        .find("    >,\n}")
                        .expect("end of expand field")
                    + 7;
                let text = format!("{}{}", &text[..start], &text[end..]);
                let run_task = "    pub run_task: extern";
                assert!(text.contains(run_task));
                text.replacen(
                    run_task,
                    "    #[sabi(last_prefix_field)]\n    pub run_task: extern",
                    1,
                )
            }
            "glue.rs" => {
                let field = "            expand: can_expand.then_some(expand),\n";
                assert!(text.contains(field));
                text.replacen(field, "", 1).replacen(
                    "        PluginModule {",
                    "        let _ = (can_expand, expand);\n        PluginModule {",
                    1,
                )
            }
            _ => text,
        },
    );
    let (_plugin_work, library) =
        build_plugin_against(&api, "wordcount-older", "taskhost_ext_older");
    let plugins = tempfile::tempdir().unwrap();
    let path = copy_into(&library, plugins.path());
    let (set, skipped) = load(&[plugins.path()]);
    assert!(set.plugins().is_empty());
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert!(
        matches!(skipped[0], LoadError::IncompatibleLayout { .. }),
        "{skipped:?}"
    );
    let message = skipped[0].to_string();
    let prefix = format!(
        "{}: its root module does not match taskhost-plugin-api {}: ",
        path.display(),
        PluginSet::interface_version()
    );
    assert_eq!(
        message,
        format!(
            "{prefix}incompatible type size; prefix-types have a different prefix; \
             too many fields (rebuild the plugin against it)"
        )
    );
}

/// Builds a one-file plugin against this workspace's interface, drops it into a fresh folder
/// and loads that folder.
fn load_external(package: &str, lib_name: &str, source: &str) -> (PathBuf, Vec<LoadError>) {
    let api = workspace_root().join("crates/taskhost-plugin-api");
    let (_work, library) = build_plugin_from(&api, package, lib_name, source);
    let plugins = tempfile::tempdir().unwrap();
    let path = copy_into(&library, plugins.path());
    let (set, skipped) = load(&[plugins.path()]);
    assert!(set.plugins().is_empty(), "{:?}", set.plugins());
    (path, skipped)
}

#[test]
fn a_plugin_whose_constructor_panics_is_refused_with_the_panic_message() {
    let (path, skipped) = load_external(
        "panicky-plugin",
        "taskhost_ext_panicky",
        r#"
fn plugin() -> taskhost_plugin_api::Plugin {
    panic!("no config file")
}
taskhost_plugin_api::export_plugin!(plugin);
"#,
    );
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert_eq!(
        skipped[0].to_string(),
        format!(
            "{}: the plugin failed to start: panicked: building the plugin: no config file",
            path.display()
        )
    );
}

#[test]
fn a_plugin_with_an_unusable_name_is_refused() {
    let (path, skipped) = load_external(
        "badly-named-plugin",
        "taskhost_ext_badly_named",
        r#"
fn plugin() -> taskhost_plugin_api::Plugin {
    taskhost_plugin_api::Plugin::new("bad name", "1.0.0")
}
taskhost_plugin_api::export_plugin!(plugin);
"#,
    );
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert!(
        matches!(skipped[0], LoadError::InvalidDescriptor { .. }),
        "{skipped:?}"
    );
    assert_eq!(
        skipped[0].to_string(),
        format!(
            "{}: expected a plugin name of letters, digits, `_`, `-` or `.`, found `bad name`",
            path.display()
        )
    );
}
