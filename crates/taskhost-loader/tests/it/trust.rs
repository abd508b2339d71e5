//! Plugin trust: the folders, the folders on their paths and the files the loader refuses
//! (symbolic links, group- or world-writable, owned by another user), and SHA-256 pins (right,
//! wrong, missing, invalid).
//!
//! Unix only. The tests may run as root (CI does): the "owned by another user" cases chown a
//! copy to another uid, which needs root (or `CAP_CHOWN`); without it they print why and return.
#![cfg(unix)]

use std::collections::BTreeMap;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use taskhost_loader::{Distrust, LoadError, LoadOptions, PluginSet};

use crate::support::{folder_with, library_file_name, load, sample_plugin};

fn loaded_names(set: &PluginSet) -> Vec<&str> {
    set.plugins().iter().map(|p| p.name()).collect()
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn strict() -> LoadOptions {
    LoadOptions {
        strict: true,
        ..LoadOptions::default()
    }
}

fn load_with(dirs: &[&Path], options: &LoadOptions) -> (PluginSet, Vec<LoadError>) {
    let dirs: Vec<PathBuf> = dirs.iter().map(|d| d.to_path_buf()).collect();
    PluginSet::load(&dirs, options).expect("a non-strict load with valid pins never fails")
}

fn strict_error(dir: &Path) -> LoadError {
    PluginSet::load(&[dir.to_path_buf()], &strict()).expect_err("a strict load stops at it")
}

/// `sha256:<hex>` of a file, computed here independently of the loader.
fn sha256_of(path: &Path) -> String {
    let digest = Sha256::digest(std::fs::read(path).unwrap());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

fn pins(entries: &[(&str, &str)]) -> BTreeMap<String, String> {
    entries
        .iter()
        .map(|(name, pin)| ((*name).to_owned(), (*pin).to_owned()))
        .collect()
}

fn plugin_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(library_file_name(name))
}

/// Gives `path` to another uid; `false` (with the reason printed) when this process may not.
fn chown_to_another_user(path: &Path) -> bool {
    match std::os::unix::fs::chown(path, Some(4242), None) {
        Ok(()) => true,
        Err(error) => {
            eprintln!(
                "skipped: cannot chown {} to uid 4242 ({error}); this case needs root or CAP_CHOWN",
                path.display()
            );
            false
        }
    }
}

#[test]
fn a_symlinked_plugin_file_is_refused() {
    let dir = folder_with(&["taskhost_testkit"]);
    let link = plugin_path(dir.path(), "taskhost_primes");
    let target = sample_plugin("taskhost_primes");
    symlink(&target, &link).unwrap();
    let (set, skipped) = load(&[dir.path()]);
    assert_eq!(loaded_names(&set), ["testkit"]);
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert!(
        matches!(
            &skipped[0],
            LoadError::Untrusted { path, reason: Distrust::Symlink { .. } } if *path == link
        ),
        "{skipped:?}"
    );
    assert_eq!(
        skipped[0].to_string(),
        format!(
            "{}: refused: it is a symbolic link (to {}); plugins and plugin folders must be real \
             files and folders (copy the file, or configure the real folder)",
            link.display(),
            target.display()
        )
    );
    // libtaskhost_primes.so sorts before libtaskhost_testkit.so: a strict load stops at it.
    assert!(matches!(
        strict_error(dir.path()),
        LoadError::Untrusted {
            reason: Distrust::Symlink { .. },
            ..
        }
    ));
}

#[test]
fn a_symlinked_plugin_folder_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let real = root.path().join("real");
    std::fs::create_dir(&real).unwrap();
    std::fs::copy(
        sample_plugin("taskhost_primes"),
        plugin_path(&real, "taskhost_primes"),
    )
    .unwrap();
    let link = root.path().join("plugins");
    symlink(&real, &link).unwrap();
    let (set, skipped) = load(&[&link]);
    assert!(set.plugins().is_empty());
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    let message = skipped[0].to_string();
    assert!(
        message.starts_with(&format!(
            "plugin folder {}: refused: it is a symbolic link (to {})",
            link.display(),
            real.display()
        )),
        "{message}"
    );
    assert!(matches!(
        strict_error(&link),
        LoadError::UntrustedFolder {
            reason: Distrust::Symlink { .. },
            ..
        }
    ));
    // The real folder itself is fine.
    let (set, skipped) = load(&[&real]);
    assert_eq!(loaded_names(&set), ["primes"]);
    assert!(skipped.is_empty(), "{skipped:?}");
}

#[test]
fn a_group_writable_plugin_file_is_refused() {
    let dir = folder_with(&["taskhost_primes", "taskhost_testkit"]);
    let file = plugin_path(dir.path(), "taskhost_primes");
    chmod(&file, 0o775);
    let (set, skipped) = load(&[dir.path()]);
    assert_eq!(loaded_names(&set), ["testkit"]);
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert_eq!(
        skipped[0].to_string(),
        format!(
            "{}: refused: it is writable by group or others (mode 0775); only its owner may \
             write to it (chmod go-w)",
            file.display()
        )
    );
    assert!(matches!(
        strict_error(dir.path()),
        LoadError::Untrusted {
            reason: Distrust::Writable { mode: 0o775 },
            ..
        }
    ));
}

#[test]
fn a_world_writable_plugin_file_is_refused() {
    let dir = folder_with(&["taskhost_primes"]);
    let file = plugin_path(dir.path(), "taskhost_primes");
    chmod(&file, 0o646);
    let (set, skipped) = load(&[dir.path()]);
    assert!(set.plugins().is_empty());
    assert!(
        matches!(
            &skipped[..],
            [LoadError::Untrusted { path, reason: Distrust::Writable { mode: 0o646 } }] if *path == file
        ),
        "{skipped:?}"
    );
    // Fixed with `chmod go-w`, it loads.
    chmod(&file, 0o644);
    let (set, skipped) = load(&[dir.path()]);
    assert_eq!(loaded_names(&set), ["primes"]);
    assert!(skipped.is_empty(), "{skipped:?}");
}

#[test]
fn a_group_or_world_writable_plugin_folder_is_refused() {
    for mode in [0o770, 0o707, 0o1777] {
        let dir = folder_with(&["taskhost_primes"]);
        chmod(dir.path(), mode);
        let (set, skipped) = load(&[dir.path()]);
        assert!(set.plugins().is_empty(), "mode {mode:o}");
        assert_eq!(skipped.len(), 1, "{skipped:?}");
        assert_eq!(
            skipped[0].to_string(),
            format!(
                "plugin folder {}: refused: it is writable by group or others (mode {mode:04o}); \
                 only its owner may write to it (chmod go-w)",
                dir.path().display()
            )
        );
        assert!(matches!(
            strict_error(dir.path()),
            LoadError::UntrustedFolder {
                reason: Distrust::Writable { .. },
                ..
            }
        ));
        chmod(dir.path(), 0o700);
    }
}

#[test]
fn a_plugin_file_owned_by_another_user_is_refused() {
    let dir = folder_with(&["taskhost_primes", "taskhost_testkit"]);
    let file = plugin_path(dir.path(), "taskhost_primes");
    if !chown_to_another_user(&file) {
        return;
    }
    let (set, skipped) = load(&[dir.path()]);
    assert_eq!(loaded_names(&set), ["testkit"]);
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    let message = skipped[0].to_string();
    assert!(
        message.starts_with(&format!(
            "{}: refused: it is owned by uid 4242, expected the current user (uid ",
            file.display()
        )),
        "{message}"
    );
    assert!(message.ends_with(") or root (uid 0)"), "{message}");
    assert!(matches!(
        strict_error(dir.path()),
        LoadError::Untrusted {
            reason: Distrust::Owner { uid: 4242, .. },
            ..
        }
    ));
}

#[test]
fn a_plugin_folder_owned_by_another_user_is_refused() {
    let dir = folder_with(&["taskhost_primes"]);
    if !chown_to_another_user(dir.path()) {
        return;
    }
    let (set, skipped) = load(&[dir.path()]);
    assert!(set.plugins().is_empty());
    assert!(
        matches!(
            &skipped[..],
            [LoadError::UntrustedFolder {
                reason: Distrust::Owner { uid: 4242, .. },
                ..
            }]
        ),
        "{skipped:?}"
    );
}

/// `root/a/b/plugins` holding the primes plugin, every folder mode 0755.
fn nested_plugin_folder() -> (tempfile::TempDir, PathBuf) {
    let root = tempfile::tempdir().unwrap();
    let plugins = root.path().join("a/b/plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    for folder in ["a", "a/b", "a/b/plugins"] {
        chmod(&root.path().join(folder), 0o755);
    }
    std::fs::copy(
        sample_plugin("taskhost_primes"),
        plugin_path(&plugins, "taskhost_primes"),
    )
    .unwrap();
    (root, plugins)
}

#[test]
fn a_nested_plugin_folder_with_a_sound_path_loads() {
    let (_root, plugins) = nested_plugin_folder();
    let (set, skipped) = load(&[&plugins]);
    assert_eq!(loaded_names(&set), ["primes"]);
    assert!(skipped.is_empty(), "{skipped:?}");
}

#[test]
fn a_symlinked_folder_above_the_plugin_folder_is_refused() {
    let (root, _plugins) = nested_plugin_folder();
    let link = root.path().join("link");
    symlink(root.path().join("a"), &link).unwrap();
    let through_link = link.join("b/plugins");
    let (set, skipped) = load(&[&through_link]);
    assert!(set.plugins().is_empty());
    assert!(
        matches!(
            &skipped[..],
            [LoadError::UntrustedAncestor { dir, ancestor, reason: Distrust::Symlink { .. } }]
                if *dir == through_link && *ancestor == link
        ),
        "{skipped:?}"
    );
    assert_eq!(
        skipped[0].to_string(),
        format!(
            "plugin folder {}: refused: folder {} on its path: it is a symbolic link (to {}); \
             plugins and plugin folders must be real files and folders (copy the file, or \
             configure the real folder)",
            through_link.display(),
            link.display(),
            root.path().join("a").display()
        )
    );
    assert!(matches!(
        strict_error(&through_link),
        LoadError::UntrustedAncestor {
            reason: Distrust::Symlink { .. },
            ..
        }
    ));
}

#[test]
fn a_group_or_world_writable_folder_above_the_plugin_folder_is_refused() {
    let (root, plugins) = nested_plugin_folder();
    let above = root.path().join("a");
    for mode in [0o775, 0o757, 0o777] {
        chmod(&above, mode);
        let (set, skipped) = load(&[&plugins]);
        assert!(set.plugins().is_empty(), "mode {mode:o}");
        assert!(
            matches!(
                &skipped[..],
                [LoadError::UntrustedAncestor { ancestor, reason: Distrust::Writable { mode: found }, .. }]
                    if *ancestor == above && *found == mode
            ),
            "mode {mode:o}: {skipped:?}"
        );
        assert_eq!(
            skipped[0].to_string(),
            format!(
                "plugin folder {}: refused: folder {} on its path: it is writable by group or \
                 others (mode {mode:04o}); only its owner may write to it (chmod go-w)",
                plugins.display(),
                above.display()
            )
        );
    }
    // The folder right above the plugin folder counts as much as the top one.
    chmod(&above, 0o755);
    chmod(&root.path().join("a/b"), 0o770);
    let (_, skipped) = load(&[&plugins]);
    assert!(
        matches!(&skipped[..], [LoadError::UntrustedAncestor { ancestor, .. }] if *ancestor == root.path().join("a/b")),
        "{skipped:?}"
    );
}

#[test]
fn a_sticky_world_writable_folder_above_the_plugin_folder_is_allowed() {
    // Like /tmp: others may create entries there but not rename or remove someone else's.
    let (root, plugins) = nested_plugin_folder();
    chmod(&root.path().join("a"), 0o1777);
    let (set, skipped) = load(&[&plugins]);
    assert_eq!(loaded_names(&set), ["primes"]);
    assert!(skipped.is_empty(), "{skipped:?}");
    // The plugin folder itself gets no such leeway (others could add libraries to it).
    chmod(&plugins, 0o1777);
    let (set, skipped) = load(&[&plugins]);
    assert!(set.plugins().is_empty());
    assert!(
        matches!(
            &skipped[..],
            [LoadError::UntrustedFolder {
                reason: Distrust::Writable { mode: 0o1777 },
                ..
            }]
        ),
        "{skipped:?}"
    );
}

#[test]
fn a_folder_above_the_plugin_folder_owned_by_another_user_is_refused() {
    let (root, plugins) = nested_plugin_folder();
    let above = root.path().join("a/b");
    if !chown_to_another_user(&above) {
        return;
    }
    let (set, skipped) = load(&[&plugins]);
    assert!(set.plugins().is_empty());
    assert!(
        matches!(
            &skipped[..],
            [LoadError::UntrustedAncestor { ancestor, reason: Distrust::Owner { uid: 4242, .. }, .. }]
                if *ancestor == above
        ),
        "{skipped:?}"
    );
    // Even sticky, a folder someone else owns is refused: its owner may rename anything in it.
    chmod(&above, 0o1777);
    let (_, skipped) = load(&[&plugins]);
    assert!(
        matches!(
            &skipped[..],
            [LoadError::UntrustedAncestor {
                reason: Distrust::Owner { uid: 4242, .. },
                ..
            }]
        ),
        "{skipped:?}"
    );
}

#[test]
fn a_plugin_folder_path_through_a_file_is_a_read_error() {
    let (root, _plugins) = nested_plugin_folder();
    let file = root.path().join("a/file");
    std::fs::write(&file, "not a folder").unwrap();
    let (_, skipped) = load(&[&file.join("plugins")]);
    assert!(
        matches!(&skipped[..], [LoadError::ReadFolder { .. }]),
        "{skipped:?}"
    );
}

#[test]
fn a_hard_link_to_a_loaded_plugin_is_already_loaded() {
    let first = folder_with(&["taskhost_primes"]);
    let second = tempfile::tempdir().unwrap();
    let original = plugin_path(first.path(), "taskhost_primes");
    let alias = plugin_path(second.path(), "taskhost_primes");
    std::fs::hard_link(&original, &alias).unwrap();
    let (set, skipped) = load(&[first.path(), second.path()]);
    assert_eq!(loaded_names(&set), ["primes"]);
    assert!(
        matches!(&skipped[..], [LoadError::AlreadyLoaded { path }] if *path == alias),
        "{skipped:?}"
    );
}

#[test]
fn the_checksum_is_the_files_sha256() {
    let dir = folder_with(&["taskhost_primes", "taskhost_csample"]);
    let (set, skipped) = load(&[dir.path()]);
    assert!(skipped.is_empty(), "{skipped:?}");
    for plugin in set.plugins() {
        assert_eq!(plugin.sha256().unwrap(), sha256_of(plugin.path()));
    }
}

#[test]
fn the_checksum_describes_the_loaded_file_even_after_the_path_is_replaced() {
    let dir = folder_with(&["taskhost_primes"]);
    let file = plugin_path(dir.path(), "taskhost_primes");
    let expected = sha256_of(&file);
    let (set, _) = load(&[dir.path()]);
    let plugin = set.plugin("primes").expect("primes loads");
    // Replace the file under the same name: the loaded plugin still describes the old one,
    // hashed through the descriptor it was loaded from.
    std::fs::remove_file(&file).unwrap();
    std::fs::write(&file, "not the plugin any more").unwrap();
    assert_eq!(plugin.sha256().unwrap(), expected);
}

#[test]
fn a_plugin_with_the_right_pin_loads() {
    let dir = folder_with(&["taskhost_primes", "taskhost_testkit"]);
    let primes = sha256_of(&plugin_path(dir.path(), "taskhost_primes"));
    // Upper-case hex is accepted.
    let options = LoadOptions {
        strict: true,
        pins: pins(&[(
            "primes",
            &primes.to_uppercase().replace("SHA256:", "sha256:"),
        )]),
        ..LoadOptions::default()
    };
    let (set, skipped) = load_with(&[dir.path()], &options);
    assert_eq!(loaded_names(&set), ["primes", "testkit"]);
    assert!(skipped.is_empty(), "{skipped:?}");
}

#[test]
fn a_pin_mismatch_is_refused_naming_both_checksums() {
    let dir = folder_with(&["taskhost_primes", "taskhost_testkit"]);
    let file = plugin_path(dir.path(), "taskhost_primes");
    let found = sha256_of(&file);
    let wrong = format!("sha256:{}", "0".repeat(64));
    let options = LoadOptions {
        pins: pins(&[("primes", &wrong)]),
        ..LoadOptions::default()
    };
    let (set, skipped) = load_with(&[dir.path()], &options);
    assert_eq!(loaded_names(&set), ["testkit"]);
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    let message = skipped[0].to_string();
    assert_eq!(
        message,
        format!(
            "{}: refused: plugin `primes` is pinned to {wrong}, found {found} (its library was \
             opened to read its name; with `require_pins = true` a file no pin matches is refused \
             before it is opened)",
            file.display()
        )
    );
    assert!(set.task("primes/count").is_none());
    let error = PluginSet::load(
        &[dir.path().to_path_buf()],
        &LoadOptions {
            strict: true,
            ..options
        },
    )
    .unwrap_err();
    assert!(
        matches!(&error, LoadError::PinMismatch { plugin, .. } if plugin == "primes"),
        "{error:?}"
    );
}

#[test]
fn require_pins_refuses_an_unpinned_plugin_before_opening_it() {
    let dir = folder_with(&["taskhost_primes", "taskhost_testkit"]);
    let primes = sha256_of(&plugin_path(dir.path(), "taskhost_primes"));
    let testkit_file = plugin_path(dir.path(), "taskhost_testkit");
    let testkit = sha256_of(&testkit_file);
    let options = LoadOptions {
        pins: pins(&[("primes", &primes)]),
        require_pins: true,
        ..LoadOptions::default()
    };
    let (set, skipped) = load_with(&[dir.path()], &options);
    assert_eq!(loaded_names(&set), ["primes"]);
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert_eq!(
        skipped[0].to_string(),
        format!(
            "{}: refused: `require_pins` is on and no pin in [plugins.pins] matches the file's \
             checksum {testkit}, so it was not opened",
            testkit_file.display()
        )
    );
    assert!(
        matches!(&skipped[0], LoadError::Unpinned { plugin: None, .. }),
        "{skipped:?}"
    );
    // With no pins at all, nothing loads.
    let (set, skipped) = load_with(
        &[dir.path()],
        &LoadOptions {
            require_pins: true,
            ..LoadOptions::default()
        },
    );
    assert!(set.plugins().is_empty());
    assert_eq!(skipped.len(), 2, "{skipped:?}");
}

#[test]
fn require_pins_with_a_changed_file_names_the_expected_and_found_checksums() {
    let dir = folder_with(&["taskhost_testkit"]);
    let file = plugin_path(dir.path(), "taskhost_testkit");
    let found = sha256_of(&file);
    let old = format!("sha256:{}", "ab".repeat(32));
    let options = LoadOptions {
        pins: pins(&[("testkit", &old)]),
        require_pins: true,
        ..LoadOptions::default()
    };
    let error = PluginSet::load(
        &[dir.path().to_path_buf()],
        &LoadOptions {
            strict: true,
            ..options
        },
    )
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "{}: refused: `require_pins` is on and no pin in [plugins.pins] matches the file's \
             checksum {found}, so it was not opened; by its file name it may be plugin \
             `testkit`, which is pinned to {old}",
            file.display()
        )
    );
}

#[test]
fn require_pins_with_every_plugin_pinned_loads_them_all() {
    let names = ["taskhost_csample", "taskhost_primes", "taskhost_testkit"];
    let dir = folder_with(&names);
    let options = LoadOptions {
        strict: true,
        require_pins: true,
        pins: pins(&[
            (
                "csample",
                &sha256_of(&plugin_path(dir.path(), "taskhost_csample")),
            ),
            (
                "primes",
                &sha256_of(&plugin_path(dir.path(), "taskhost_primes")),
            ),
            (
                "testkit",
                &sha256_of(&plugin_path(dir.path(), "taskhost_testkit")),
            ),
        ]),
    };
    let (set, skipped) = load_with(&[dir.path()], &options);
    assert_eq!(loaded_names(&set), ["csample", "primes", "testkit"]);
    assert!(skipped.is_empty());
}

#[test]
fn require_pins_refuses_a_pinned_file_that_calls_itself_by_another_name() {
    let dir = folder_with(&["taskhost_primes"]);
    let primes = sha256_of(&plugin_path(dir.path(), "taskhost_primes"));
    // The checksum is pinned, but under another plugin's name.
    let options = LoadOptions {
        pins: pins(&[("checksum", &primes)]),
        require_pins: true,
        ..LoadOptions::default()
    };
    let (set, skipped) = load_with(&[dir.path()], &options);
    assert!(set.plugins().is_empty());
    let message = skipped[0].to_string();
    assert!(
        message.ends_with(&format!(
            "refused: `require_pins` is on and plugin `primes` has no pin in [plugins.pins] \
             (the file's checksum {primes} is pinned as `checksum`)"
        )),
        "{message}"
    );
}

#[test]
fn an_invalid_pin_is_an_error_before_anything_loads() {
    let dir = folder_with(&["taskhost_primes"]);
    for pin in [
        "md5:abc",
        "sha256:1234",
        &format!("sha256:{}", "g".repeat(64)),
    ] {
        let error = PluginSet::load(
            &[dir.path().to_path_buf()],
            &LoadOptions {
                pins: pins(&[("primes", pin)]),
                ..LoadOptions::default()
            },
        )
        .unwrap_err();
        assert!(
            matches!(&error, LoadError::InvalidPin { plugin, .. } if plugin == "primes"),
            "{error:?}"
        );
        assert!(
            error
                .to_string()
                .starts_with("the pin of plugin `primes` is not valid: expected"),
            "{error}"
        );
    }
}

/// Whether the library file `path` is mapped into this process (Linux: `/proc/self/maps`
/// names the real file even when it was opened through `/proc/self/fd/N`).
#[cfg(target_os = "linux")]
fn is_mapped(path: &Path) -> bool {
    let path = path.canonicalize().unwrap();
    std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .any(|line| line.ends_with(&*path.to_string_lossy()))
}

#[cfg(target_os = "linux")]
#[test]
fn require_pins_never_maps_an_unpinned_library() {
    let dir = folder_with(&["taskhost_primes", "taskhost_testkit"]);
    let primes = plugin_path(dir.path(), "taskhost_primes");
    let testkit = plugin_path(dir.path(), "taskhost_testkit");
    let options = LoadOptions {
        pins: pins(&[("primes", &sha256_of(&primes))]),
        require_pins: true,
        ..LoadOptions::default()
    };
    let (set, skipped) = load_with(&[dir.path()], &options);
    assert_eq!(loaded_names(&set), ["primes"]);
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert!(is_mapped(&primes), "the pinned library is mapped");
    assert!(
        !is_mapped(&testkit),
        "the unpinned library was never opened"
    );
}
