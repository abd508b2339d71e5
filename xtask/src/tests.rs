//! Unit tests of the xtask helpers.

use std::fs;

use crate::{c_plugins, library_file_name, project_root, CPluginDir};

#[test]
fn c_plugins_are_folders_with_c_files_and_no_manifest() {
    let root = tempfile_dir();
    let plugins = root.join("plugins");
    for (dir, files) in [
        ("rust", &["Cargo.toml", "lib.c"][..]),
        ("c-two", &["b.c", "a.c", "notes.md"][..]),
        ("docs", &["README.md"][..]),
        ("one", &["one.c"][..]),
    ] {
        fs::create_dir_all(plugins.join(dir)).unwrap();
        for file in files {
            fs::write(plugins.join(dir).join(file), "").unwrap();
        }
    }
    let found = c_plugins(&plugins).unwrap();
    assert_eq!(
        found,
        [
            CPluginDir {
                name: "c-two".into(),
                sources: vec![plugins.join("c-two/a.c"), plugins.join("c-two/b.c")],
            },
            CPluginDir {
                name: "one".into(),
                sources: vec![plugins.join("one/one.c")],
            },
        ]
    );
    assert_eq!(found[0].lib_name(), "taskhost_c_two");
    assert!(c_plugins(&root.join("missing")).unwrap().is_empty());
    fs::remove_dir_all(root).unwrap();
}

#[test]
fn the_sample_c_plugin_is_found_and_excluded_from_the_workspace() {
    let found = c_plugins(&project_root().join("plugins")).unwrap();
    let names: Vec<_> = found.iter().map(|p| p.name.as_str()).collect();
    assert!(names.contains(&"csample"), "{names:?}");
    let manifest = fs::read_to_string(project_root().join("Cargo.toml")).unwrap();
    for plugin in &found {
        assert!(
            manifest.contains(&format!("\"plugins/{}\"", plugin.name)),
            "plugins/{} has no Cargo.toml, so the root Cargo.toml must list it in \
             [workspace] exclude (the `plugins/*` member glob would fail on it)",
            plugin.name
        );
    }
    assert_eq!(
        library_file_name("taskhost_csample"),
        format!(
            "{}taskhost_csample{}",
            std::env::consts::DLL_PREFIX,
            std::env::consts::DLL_SUFFIX
        )
    );
}

/// A fresh folder under the system temp folder (xtask has no tempfile dependency).
fn tempfile_dir() -> std::path::PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "xtask-test-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}
