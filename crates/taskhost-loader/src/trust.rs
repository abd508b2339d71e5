//! Plugin trust: which folders and files the loader agrees to open, and pins.
//!
//! On Unix, like sshd's `StrictModes`, a plugin folder, every folder on its path from the root
//! down, and each plugin file must be
//!
//! - no symbolic link (each folder is opened with `openat(parent, name, O_NOFOLLOW |
//!   O_DIRECTORY)` through the descriptor of the folder above it, each file with
//!   `openat(folder, name, O_NOFOLLOW)`, so none can be swapped for a link after the check);
//! - not writable by group or others (`mode & 0o022 == 0`), except that a folder *above* the
//!   plugin folder may be when it is sticky (`/tmp`): there only an entry's owner or root can
//!   rename or remove it;
//! - owned by the current (effective) user or by root.
//!
//! Otherwise whoever may write to a folder on the path could put another folder (or a link) in
//! the plugin folder's place and choose what loads.
//!
//! The checks are made on the open descriptors (`fstat`), and the same descriptor is hashed
//! (SHA-256, for pins) and then loaded: on Linux through `/proc/self/fd/N`, so the library the
//! platform loader maps is the very file that was checked and hashed even if the name is
//! replaced meanwhile. Elsewhere the library is loaded by its path after the checks (a window
//! remains, closed in practice by the folder rules: only its owner or root can replace a file in
//! a folder that passed them).
//!
//! On other platforms (Windows) only the symbolic-link rule is checked (by path, on the folder
//! and each folder above it, and on each file); ownership and
//! permission bits are not, and the library is loaded by path after hashing.
//!
//! The descriptor of a file that was handed to the platform loader is never closed (libraries
//! are never unloaded either): on Linux the library's name *is* `/proc/self/fd/N`, and glibc
//! would take a later library opened under a reused `N` for the one already loaded.

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Distrust, LoadError};

/// `sha256:<64 lowercase hex digits>` from a pin as written: the `sha256:` prefix and 64 hex
/// digits (either case). The error says what is wrong.
pub fn parse_pin(text: &str) -> Result<String, String> {
    let Some(hex) = text.strip_prefix("sha256:") else {
        return Err(format!(
            "expected \"sha256:<64 hex digits>\", found {text:?} (sha256 is the only algorithm)"
        ));
    };
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "expected \"sha256:\" and 64 hex digits, found {} characters after \"sha256:\" in {text:?}",
            hex.chars().count()
        ));
    }
    Ok(format!("sha256:{}", hex.to_ascii_lowercase()))
}

/// The pins of [`crate::LoadOptions::pins`], checked and normalised.
pub(crate) fn parse_pins(
    pins: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, LoadError> {
    pins.iter()
        .map(|(plugin, pin)| match parse_pin(pin) {
            Ok(pin) => Ok((plugin.clone(), pin)),
            Err(reason) => Err(LoadError::InvalidPin {
                plugin: plugin.clone(),
                reason,
            }),
        })
        .collect()
}

/// The plugin a library file is probably for, by its name: the pin key equal to the file
/// stem (`libchecksum.so` → `checksum`) or ending it after a `_` or `-`
/// (`libtaskhost_checksum.so` → `checksum`). Only for messages: nothing is decided on it.
pub(crate) fn guess_pin_key<'a>(
    path: &Path,
    pins: &'a BTreeMap<String, String>,
) -> Option<(&'a str, &'a str)> {
    let name = path.file_name()?.to_str()?;
    let stem = name
        .strip_prefix(std::env::consts::DLL_PREFIX)?
        .strip_suffix(std::env::consts::DLL_SUFFIX)?;
    pins.iter()
        .find(|(key, _)| {
            stem == key.as_str()
                || stem
                    .strip_suffix(key.as_str())
                    .is_some_and(|rest| rest.ends_with('_') || rest.ends_with('-'))
        })
        .map(|(key, pin)| (key.as_str(), pin.as_str()))
}

/// Identifies a file whatever name it was reached by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum FileId {
    /// Device and inode.
    #[cfg(unix)]
    Inode(u64, u64),
    /// The canonical path (where inodes are not available).
    #[cfg_attr(unix, allow(dead_code))]
    Path(PathBuf),
}

/// An entry of a plugin folder named like a library.
#[derive(Debug)]
pub(crate) enum Entry {
    /// A regular file (by the listing; checked again on the descriptor).
    File(PathBuf),
    /// A symbolic link: refused.
    Symlink(PathBuf),
}

/// A plugin folder that passed the checks, open.
#[derive(Debug)]
pub(crate) struct Folder {
    dir: PathBuf,
    #[cfg(unix)]
    handle: std::os::fd::OwnedFd,
}

/// A library file that passed the checks, open: the descriptor that is hashed and loaded.
#[derive(Debug)]
pub(crate) struct Candidate {
    pub(crate) path: PathBuf,
    pub(crate) file: File,
    pub(crate) id: FileId,
}

fn untrusted_folder(dir: &Path, reason: Distrust) -> LoadError {
    LoadError::UntrustedFolder {
        dir: dir.to_path_buf(),
        reason,
    }
}

fn untrusted(path: &Path, reason: Distrust) -> LoadError {
    LoadError::Untrusted {
        path: path.to_path_buf(),
        reason,
    }
}

fn symlink(path: &Path) -> Distrust {
    Distrust::Symlink {
        target: std::fs::read_link(path).ok(),
    }
}

/// The owner and permission rules, on the metadata of an open descriptor.
#[cfg(unix)]
fn check_owner_and_mode(metadata: &std::fs::Metadata) -> Result<(), Distrust> {
    use std::os::unix::fs::MetadataExt;
    let euid = rustix::process::geteuid().as_raw();
    let uid = metadata.uid();
    if uid != euid && uid != 0 {
        return Err(Distrust::Owner { uid, euid });
    }
    let mode = metadata.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(Distrust::Writable { mode });
    }
    Ok(())
}

/// The rules for a folder on the plugin folder's path: those of [`check_owner_and_mode`],
/// except that a folder others may write to passes when it is sticky (`/tmp`, mode 1777):
/// there no one but an entry's owner (or root) can rename or remove it, so the next folder
/// down, checked in its turn, cannot be swapped.
#[cfg(unix)]
fn check_ancestor(metadata: &std::fs::Metadata) -> Result<(), Distrust> {
    use std::os::unix::fs::MetadataExt;
    match check_owner_and_mode(metadata) {
        Err(Distrust::Writable { .. }) if metadata.mode() & 0o1000 != 0 => Ok(()),
        result => result,
    }
}

/// Opens the plugin folder `dir` one folder at a time from the root down, each folder with
/// `openat(parent, name, O_DIRECTORY | O_NOFOLLOW)` and checked with `fstat` on its
/// descriptor before the next is opened through it, like sshd's `StrictModes` checks the
/// path of `authorized_keys`. A symbolic link anywhere on the path is refused, so is a folder
/// owned by someone other than the user or root, or writable by group or others (an
/// ancestor may be writable when it is sticky, see [`check_ancestor`]; the plugin folder
/// itself may not). A relative `dir` is taken from the working directory.
#[cfg(unix)]
fn walk_to_folder(dir: &Path) -> Result<std::os::fd::OwnedFd, LoadError> {
    use std::path::Component;

    use rustix::fs::{Mode, OFlags};

    let read_error = |source: io::Error| LoadError::ReadFolder {
        dir: dir.to_path_buf(),
        source,
    };
    let absolute = std::path::absolute(dir).map_err(read_error)?;
    let names: Vec<&std::ffi::OsStr> = absolute
        .components()
        .filter_map(|component| match component {
            Component::Normal(name) => Some(name),
            Component::ParentDir => Some(std::ffi::OsStr::new("..")),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect();
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut walked = PathBuf::from("/");
    let mut current = rustix::fs::open("/", flags, Mode::empty()).map_err(io::Error::from);
    // `current` is the open of `walked`, the path through `names[..index]`.
    let mut index = 0;
    loop {
        let is_folder = index == names.len();
        let refuse = |walked: &Path, reason: Distrust| {
            if is_folder {
                untrusted_folder(dir, reason)
            } else {
                LoadError::UntrustedAncestor {
                    dir: dir.to_path_buf(),
                    ancestor: walked.to_path_buf(),
                    reason,
                }
            }
        };
        let handle = match current {
            Ok(handle) => File::from(handle),
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                return Err(LoadError::MissingFolder {
                    dir: dir.to_path_buf(),
                })
            }
            // ELOOP is what O_NOFOLLOW gives for a link; a link to a file can also give
            // ENOTDIR (O_DIRECTORY), so ask the path itself which it was.
            Err(error) => {
                let is_link = std::fs::symlink_metadata(&walked)
                    .is_ok_and(|metadata| metadata.file_type().is_symlink());
                return Err(if is_link {
                    refuse(&walked, symlink(&walked))
                } else {
                    read_error(error)
                });
            }
        };
        let metadata = handle.metadata().map_err(read_error)?;
        let checked = if is_folder {
            check_owner_and_mode(&metadata)
        } else {
            check_ancestor(&metadata)
        };
        checked.map_err(|reason| refuse(&walked, reason))?;
        if is_folder {
            return Ok(handle.into());
        }
        let name = names[index];
        walked.push(name);
        current = rustix::fs::openat(&handle, name, flags, Mode::empty()).map_err(io::Error::from);
        index += 1;
    }
}

impl Folder {
    /// Checks and opens the plugin folder `dir`, and every folder on its path from the root
    /// down (see [`walk_to_folder`]).
    pub(crate) fn open(dir: &Path) -> Result<Folder, LoadError> {
        #[cfg(unix)]
        {
            let handle = walk_to_folder(dir)?;
            Ok(Folder {
                dir: dir.to_path_buf(),
                handle,
            })
        }
        #[cfg(not(unix))]
        {
            let read_error = |source: io::Error| LoadError::ReadFolder {
                dir: dir.to_path_buf(),
                source,
            };
            let absolute = std::path::absolute(dir).map_err(read_error)?;
            for ancestor in absolute.ancestors() {
                match std::fs::symlink_metadata(ancestor) {
                    Err(error) if error.kind() == io::ErrorKind::NotFound => {
                        return Err(LoadError::MissingFolder {
                            dir: dir.to_path_buf(),
                        })
                    }
                    Err(source) => return Err(read_error(source)),
                    Ok(metadata) if metadata.file_type().is_symlink() => {
                        return Err(if ancestor == absolute {
                            untrusted_folder(dir, symlink(dir))
                        } else {
                            LoadError::UntrustedAncestor {
                                dir: dir.to_path_buf(),
                                ancestor: ancestor.to_path_buf(),
                                reason: symlink(ancestor),
                            }
                        });
                    }
                    Ok(_) => {}
                }
            }
            Ok(Folder {
                dir: dir.to_path_buf(),
            })
        }
    }

    /// The entries named like a platform library (`{DLL_PREFIX}*{DLL_SUFFIX}`, not hidden), in
    /// name order. Folders and other special files are left out; symbolic links are kept, to be
    /// refused.
    pub(crate) fn entries(&self) -> Result<Vec<Entry>, LoadError> {
        let read_error = |source: io::Error| LoadError::ReadFolder {
            dir: self.dir.clone(),
            source,
        };
        let mut entries = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(read_error)? {
            let entry = entry.map_err(read_error)?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else {
                tracing::debug!(
                    target: "taskhost::loader",
                    path = %entry.path().display(),
                    "plugin.skipped: the file name is not UTF-8"
                );
                continue;
            };
            let is_library = name.starts_with(std::env::consts::DLL_PREFIX)
                && name.ends_with(std::env::consts::DLL_SUFFIX)
                && !name.starts_with('.');
            if !is_library {
                // A library under another name is worth a word (`wordcount.so`, `libx.so.1`);
                // a README or a `.partial` being copied in, only at debug level.
                let looks_like_a_library =
                    name.contains(std::env::consts::DLL_SUFFIX) && !name.starts_with('.');
                let path = entry.path();
                let rule = format!(
                    "only files named {}NAME{} load",
                    std::env::consts::DLL_PREFIX,
                    std::env::consts::DLL_SUFFIX
                );
                if looks_like_a_library {
                    tracing::info!(target: "taskhost::loader", path = %path.display(), "plugin.skipped: {rule}");
                } else {
                    tracing::debug!(target: "taskhost::loader", path = %path.display(), "plugin.skipped: {rule}");
                }
                continue;
            }
            // `file_type` does not follow symbolic links.
            let file_type = entry.file_type().map_err(read_error)?;
            if file_type.is_symlink() {
                entries.push(Entry::Symlink(entry.path()));
            } else if file_type.is_file() {
                entries.push(Entry::File(entry.path()));
            }
        }
        entries.sort_by(|a, b| a.path().cmp(b.path()));
        Ok(entries)
    }

    /// Opens the library `path` (an entry of this folder) through the folder's descriptor,
    /// without following a symbolic link, and checks it.
    pub(crate) fn open_file(&self, path: &Path) -> Result<Candidate, LoadError> {
        let unreadable = |source: io::Error| LoadError::Unreadable {
            path: path.to_path_buf(),
            source,
        };
        #[cfg(unix)]
        let file = {
            use rustix::fs::{Mode, OFlags};
            let name = path.file_name().unwrap_or(path.as_os_str());
            // NONBLOCK: a FIFO swapped in after the listing must not hang the open.
            let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK;
            match rustix::fs::openat(&self.handle, name, flags, Mode::empty()) {
                Ok(handle) => File::from(handle),
                Err(rustix::io::Errno::LOOP) => return Err(untrusted(path, symlink(path))),
                Err(errno) => return Err(unreadable(errno.into())),
            }
        };
        #[cfg(not(unix))]
        let file = {
            if std::fs::symlink_metadata(path)
                .map_err(unreadable)?
                .file_type()
                .is_symlink()
            {
                return Err(untrusted(path, symlink(path)));
            }
            File::open(path).map_err(unreadable)?
        };
        let metadata = file.metadata().map_err(unreadable)?;
        if !metadata.is_file() {
            return Err(untrusted(path, Distrust::NotRegular));
        }
        #[cfg(unix)]
        let id = {
            use std::os::unix::fs::MetadataExt;
            check_owner_and_mode(&metadata).map_err(|reason| untrusted(path, reason))?;
            FileId::Inode(metadata.dev(), metadata.ino())
        };
        #[cfg(not(unix))]
        let id = FileId::Path(path.canonicalize().unwrap_or_else(|_| path.to_path_buf()));
        Ok(Candidate {
            path: path.to_path_buf(),
            file,
            id,
        })
    }
}

impl Entry {
    pub(crate) fn path(&self) -> &Path {
        match self {
            Entry::File(path) | Entry::Symlink(path) => path,
        }
    }
}

impl Candidate {
    /// The path to hand to the platform loader: `/proc/self/fd/N` on Linux when it names this
    /// very descriptor's file, else the file's path.
    pub(crate) fn load_path(&self) -> PathBuf {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            use std::os::fd::AsRawFd;
            use std::os::unix::fs::MetadataExt;
            let alias = PathBuf::from(format!("/proc/self/fd/{}", self.file.as_raw_fd()));
            if let (Ok(through_proc), FileId::Inode(dev, ino)) =
                (std::fs::metadata(&alias), &self.id)
            {
                if through_proc.dev() == *dev && through_proc.ino() == *ino {
                    return alias;
                }
            }
            tracing::debug!(
                target: "taskhost::loader",
                path = %self.path.display(),
                "/proc/self/fd is not available: loading by path"
            );
        }
        self.path.clone()
    }
}

/// `sha256:<hex>` of the whole file behind `file`, read through the descriptor (from offset 0,
/// without moving a shared offset on Unix).
pub(crate) fn sha256(file: &File) -> io::Result<String> {
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 16];
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileExt;
        let mut offset = 0u64;
        loop {
            let read = match file.read_at(&mut buffer, offset) {
                Ok(0) => break,
                Ok(read) => read,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(error),
            };
            hasher.update(&buffer[..read]);
            offset += read as u64;
        }
    }
    #[cfg(not(unix))]
    {
        use std::io::{Read, Seek, SeekFrom};
        let mut reader = file;
        reader.seek(SeekFrom::Start(0))?;
        loop {
            let read = match reader.read(&mut buffer) {
                Ok(0) => break,
                Ok(read) => read,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(error),
            };
            hasher.update(&buffer[..read]);
        }
    }
    let digest = hasher.finalize();
    let mut text = String::with_capacity(7 + 64);
    text.push_str("sha256:");
    for byte in digest {
        text.push_str(&format!("{byte:02x}"));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_are_parsed_and_normalised() {
        let hex = "AB".repeat(32);
        assert_eq!(
            parse_pin(&format!("sha256:{hex}")).unwrap(),
            format!("sha256:{}", "ab".repeat(32))
        );
        assert!(parse_pin(&hex).unwrap_err().contains("sha256 is the only"));
        assert!(parse_pin("sha256:abc").unwrap_err().contains("found 3"));
        assert!(parse_pin(&format!("sha256:{}", "zz".repeat(32))).is_err());
        assert!(parse_pin("md5:abc")
            .unwrap_err()
            .contains("sha256 is the only"));
        assert!(parse_pin("").is_err());
    }

    #[test]
    fn the_pin_key_is_guessed_from_the_file_name() {
        let pins: BTreeMap<String, String> = [("checksum", "a"), ("primes", "b")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let file = |stem: &str| {
            PathBuf::from(format!(
                "/x/{}{stem}{}",
                std::env::consts::DLL_PREFIX,
                std::env::consts::DLL_SUFFIX
            ))
        };
        assert_eq!(
            guess_pin_key(&file("taskhost_checksum"), &pins),
            Some(("checksum", "a"))
        );
        assert_eq!(guess_pin_key(&file("primes"), &pins), Some(("primes", "b")));
        assert_eq!(guess_pin_key(&file("notprimes"), &pins), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_file_is_loaded_through_the_descriptor_it_was_checked_on() {
        let dir = std::env::temp_dir().join(format!("taskhost-trust-fd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        }
        let path = dir.join("libx.so");
        std::fs::write(&path, "x").unwrap();
        let folder = Folder::open(&dir).unwrap();
        let candidate = folder.open_file(&path).unwrap();
        let load_path = candidate.load_path();
        assert!(
            load_path.starts_with("/proc/self/fd/"),
            "{}",
            load_path.display()
        );
        // Replacing the name does not change what the descriptor's path reads.
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, "y").unwrap();
        assert_eq!(std::fs::read(&load_path).unwrap(), b"x");
        drop(candidate);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn sha256_of_a_file() {
        let dir = std::env::temp_dir().join(format!("taskhost-trust-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("abc");
        std::fs::write(&path, "abc").unwrap();
        let file = File::open(&path).unwrap();
        assert_eq!(
            sha256(&file).unwrap(),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
