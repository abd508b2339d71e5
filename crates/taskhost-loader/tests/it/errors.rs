//! Libraries and folders the loader must refuse, each with a short, precise message; one bad
//! plugin does not stop the others unless `strict`.

use std::path::{Path, PathBuf};
use std::process::Command;

use taskhost_loader::{LoadError, LoadOptions, PluginSet};

use crate::support::{copy_into, folder_with, library_file_name, load, sample_plugin};

fn loaded_names(set: &PluginSet) -> Vec<&str> {
    set.plugins().iter().map(|p| p.name()).collect()
}

fn strict_error(dir: &Path) -> LoadError {
    PluginSet::load(
        &[dir.to_path_buf()],
        &LoadOptions {
            strict: true,
            ..LoadOptions::default()
        },
    )
    .expect_err("a strict load stops at the bad plugin")
}

#[test]
fn a_text_file_named_like_a_library_is_not_a_library() {
    let dir = folder_with(&["taskhost_testkit"]);
    let bogus = dir.path().join(library_file_name("bogus"));
    std::fs::write(&bogus, "this is not a library\n").unwrap();
    let (set, skipped) = load(&[dir.path()]);
    assert_eq!(loaded_names(&set), ["testkit"]);
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert!(
        matches!(skipped[0], LoadError::NotALibrary { .. }),
        "{skipped:?}"
    );
    let message = skipped[0].to_string();
    let prefix = format!(
        "{}: expected a dynamic library, found a file the loader cannot open (",
        bogus.display()
    );
    assert!(message.starts_with(&prefix), "{message}");
    assert!(!message.contains('\n'), "{message}");
    assert!(matches!(
        strict_error(dir.path()),
        LoadError::NotALibrary { .. }
    ));
}

/// Compiles a tiny Rust cdylib that exports a C function but no plugin root module.
fn library_without_root_symbol(dir: &Path) -> PathBuf {
    let source = dir.join("noroot.rs");
    std::fs::write(
        &source,
        "#[no_mangle]\npub extern \"C\" fn not_a_taskhost_plugin() -> u32 { 7 }\n",
    )
    .unwrap();
    let library = dir.join(library_file_name("noroot"));
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let output = Command::new(rustc)
        .args([
            "--crate-type",
            "cdylib",
            "--crate-name",
            "noroot",
            "--edition",
            "2021",
            "-o",
        ])
        .arg(&library)
        .arg(&source)
        .output()
        .expect("starting rustc");
    assert!(
        output.status.success(),
        "rustc failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::remove_file(source).unwrap();
    library
}

#[test]
fn a_library_without_the_root_symbol_is_not_a_plugin() {
    let dir = folder_with(&["taskhost_primes"]);
    let library = library_without_root_symbol(dir.path());
    let (set, skipped) = load(&[dir.path()]);
    assert_eq!(loaded_names(&set), ["primes"]);
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert_eq!(
        skipped[0].to_string(),
        format!(
            "{}: expected a taskhost plugin, found a library without the \
             `_1as_0lib_1header_0root_bmodule_bloader` symbol \
             (was it built with `taskhost_plugin_api::export_plugin!`?) or the \
             `taskhost_plugin_descriptor` symbol of a C plugin",
            library.display()
        )
    );
    assert!(matches!(
        strict_error(dir.path()),
        LoadError::NoRootSymbol { .. }
    ));
}

#[test]
fn two_plugins_with_the_same_name_keep_the_first() {
    let dir = folder_with(&["taskhost_testkit"]);
    let copy = dir.path().join(library_file_name("taskhost_testkit_copy"));
    std::fs::copy(sample_plugin("taskhost_testkit"), &copy).unwrap();
    let first = dir.path().join(library_file_name("taskhost_testkit"));
    let (set, skipped) = load(&[dir.path()]);
    assert_eq!(loaded_names(&set), ["testkit"]);
    assert_eq!(set.plugins()[0].path(), first);
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert_eq!(
        skipped[0].to_string(),
        format!(
            "{}: plugin name `testkit` is already taken by {}",
            copy.display(),
            first.display()
        )
    );
    assert!(matches!(
        strict_error(dir.path()),
        LoadError::DuplicateName { .. }
    ));
}

#[test]
fn a_missing_folder_is_reported_and_the_others_still_load() {
    let good = folder_with(&["taskhost_primes"]);
    let missing = good.path().join("no-such-folder");
    let (set, skipped) = load(&[&missing, good.path()]);
    assert_eq!(loaded_names(&set), ["primes"]);
    assert_eq!(skipped.len(), 1);
    assert_eq!(
        skipped[0].to_string(),
        format!("plugin folder {} does not exist", missing.display())
    );
    assert!(matches!(
        strict_error(&missing),
        LoadError::MissingFolder { .. }
    ));
}

#[test]
fn the_same_folder_twice_loads_each_file_once() {
    let dir = folder_with(&["taskhost_primes"]);
    let (set, skipped) = load(&[dir.path(), dir.path()]);
    assert_eq!(loaded_names(&set), ["primes"]);
    assert_eq!(skipped.len(), 1);
    let path = dir.path().join(library_file_name("taskhost_primes"));
    assert_eq!(
        skipped[0].to_string(),
        format!("{}: already loaded", path.display())
    );
}

#[test]
fn other_files_in_a_plugin_folder_are_ignored() {
    let dir = folder_with(&["taskhost_primes"]);
    std::fs::write(dir.path().join("README.txt"), "notes").unwrap();
    std::fs::create_dir(dir.path().join(library_file_name("a_folder"))).unwrap();
    copy_into(
        &sample_plugin("taskhost_primes"),
        &dir.path().join(library_file_name("a_folder")),
    );
    let (set, skipped) = load(&[dir.path()]);
    assert_eq!(loaded_names(&set), ["primes"]);
    assert!(skipped.is_empty(), "{skipped:?}");
}

/// The size of the ELF64 little-endian header and program header table of `bytes`, and where
/// its last loadable (`PT_LOAD`) segment ends in the file. Enough for the sample plugins of a
/// 64-bit little-endian Linux host; the loader's own parser is unit-tested in `src/elf.rs`.
fn elf64_extent(bytes: &[u8]) -> (usize, usize) {
    let uint = |at: usize, width: usize| {
        bytes[at..at + width]
            .iter()
            .rev()
            .fold(0usize, |n, b| (n << 8) | usize::from(*b))
    };
    assert_eq!(
        &bytes[..6],
        b"\x7fELF\x02\x01",
        "an ELF64 little-endian library"
    );
    let (phoff, phentsize, phnum) = (uint(0x20, 8), uint(0x36, 2), uint(0x38, 2));
    let loadable_end = (0..phnum)
        .map(|i| phoff + i * phentsize)
        .filter(|&at| uint(at, 4) == 1)
        .map(|at| uint(at + 8, 8) + uint(at + 32, 8))
        .max()
        .expect("a library has loadable segments");
    (phoff + phnum * phentsize, loadable_end)
}

/// `1048576` → `1 048 576`, as the loader writes sizes.
fn grouped(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(' ');
        }
        out.push(digit);
    }
    out
}

/// A library cut anywhere before the end of its loadable segments is refused with a short
/// error, never opened: `dlopen` would map the missing pages and the test process would die of
/// `SIGBUS` on the first touch.
#[cfg(all(
    target_os = "linux",
    target_pointer_width = "64",
    target_endian = "little"
))]
#[test]
fn a_plugin_truncated_at_any_size_is_refused_without_crashing() {
    for name in ["taskhost_primes", "taskhost_csample"] {
        let whole = std::fs::read(sample_plugin(name)).unwrap();
        let (headers_end, loadable_end) = elf64_extent(&whole);
        let sizes = [
            0,
            3,
            40,
            100,
            headers_end - 1,
            headers_end,
            1_000,
            4_096,
            loadable_end / 3,
            loadable_end / 2,
            loadable_end - 4_096,
            loadable_end - 1,
        ];
        for size in sizes {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join(library_file_name(name));
            std::fs::write(&path, &whole[..size]).unwrap();
            let (set, skipped) = load(&[dir.path()]);
            assert!(set.plugins().is_empty(), "{name} cut at {size}: {set:?}");
            assert_eq!(skipped.len(), 1, "{name} cut at {size}: {skipped:?}");
            let message = skipped[0].to_string();
            assert!(!message.contains('\n'), "{message}");
            let context = format!("{name} cut at {size}: {message}");
            if size >= headers_end {
                assert!(
                    matches!(skipped[0], LoadError::IncompleteLibrary { .. }),
                    "{context}"
                );
                let prefix = format!("{}: not a complete library: segment ", path.display());
                let suffix = format!(" but the file has {} bytes (truncated?)", grouped(size));
                assert!(
                    message.starts_with(&prefix) && message.ends_with(&suffix),
                    "{context}"
                );
            } else {
                assert!(
                    matches!(skipped[0], LoadError::NotALibrary { .. }),
                    "{context}"
                );
                let prefix = format!(
                    "{}: expected a dynamic library, found a file the loader cannot open (",
                    path.display()
                );
                assert!(message.starts_with(&prefix), "{context}");
            }
            match size {
                // The reasons glibc's `dlopen` gives, now the loader's own.
                40 => assert!(message.ends_with("(file too short)"), "{context}"),
                100 => assert!(message.ends_with("(cannot read file data)"), "{context}"),
                _ => {}
            }
            let strict = strict_error(dir.path());
            assert_eq!(strict.to_string(), message, "strict, {context}");
        }
        // The whole file still loads.
        let dir = folder_with(&[name]);
        let (set, skipped) = load(&[dir.path()]);
        assert_eq!(set.plugins().len(), 1, "{skipped:?}");
    }
}
