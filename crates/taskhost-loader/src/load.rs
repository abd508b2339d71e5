//! Loading the plugins of a list of folders into a [`PluginSet`]: each file checked against the
//! trust rules and its pin, then opened, described and indexed by `plugin/task`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::backend::{self, Backend};
use crate::c_abi;
#[cfg(all(unix, not(target_vendor = "apple")))]
use crate::elf;
use crate::error::{Distrust, LoadError};
use crate::plugin::{LoadedPlugin, PluginInner, PluginTask};
use crate::trust;

/// How [`PluginSet::load`] treats a plugin that does not load, and which plugins it trusts.
///
/// The trust rules (see [`Distrust`]: no symbolic links, nothing writable by group or others,
/// owned by the current user or root) always apply; they cannot be turned off.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Stop at the first error instead of skipping the plugin (default: false).
    pub strict: bool,
    /// SHA-256 pins by plugin name: `"checksum" => "sha256:<64 hex digits>"`. A plugin whose
    /// name is pinned loads only if its file has that checksum. An invalid pin makes
    /// [`PluginSet::load`] fail before it opens anything.
    pub pins: BTreeMap<String, String>,
    /// Refuse every library no pin matches. The check is made on the file's checksum *before*
    /// the library is opened, so no unpinned code ever runs (a plugin's name is only known once
    /// its library is open; without `require_pins` a pin is checked after that).
    pub require_pins: bool,
}

/// Every plugin that loaded, indexed by task name. `Send + Sync`; share it behind an `Arc`.
#[derive(Default)]
pub struct PluginSet {
    plugins: Vec<LoadedPlugin>,
    tasks: HashMap<String, PluginTask>,
}

impl fmt::Debug for PluginSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PluginSet")
            .field("plugins", &self.plugins)
            .finish()
    }
}

/// Whether `name` is usable as a plugin or task name.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
}

impl PluginSet {
    /// Loads every plugin in `dirs`.
    ///
    /// Each folder and file must pass the trust rules first (see [`Distrust`]), then its pin
    /// (see [`LoadOptions::pins`] and [`LoadOptions::require_pins`]). Returns the set and the
    /// errors of the plugins (or folders) that were skipped. With [`LoadOptions::strict`], the
    /// first such error is returned as `Err` instead. An invalid pin is always an `Err`.
    pub fn load(
        dirs: &[PathBuf],
        options: &LoadOptions,
    ) -> Result<(PluginSet, Vec<LoadError>), LoadError> {
        let pins = trust::parse_pins(&options.pins)?;
        let pinned: HashMap<&str, &str> = pins
            .iter()
            .map(|(name, pin)| (pin.as_str(), name.as_str()))
            .collect();
        let mut set = PluginSet::default();
        let mut skipped = Vec::new();
        let mut seen_files = HashSet::new();
        let mut by_name: HashMap<String, PathBuf> = HashMap::new();
        let skip = |error: LoadError, skipped: &mut Vec<LoadError>| {
            if options.strict {
                return Err(error);
            }
            tracing::warn!(target: "taskhost::loader", "skipping plugin: {error}");
            skipped.push(error);
            Ok(())
        };
        for dir in dirs {
            let entries = match trust::Folder::open(dir).and_then(|folder| {
                let entries = folder.entries()?;
                Ok((folder, entries))
            }) {
                Ok(entries) => entries,
                Err(error) => {
                    skip(error, &mut skipped)?;
                    continue;
                }
            };
            let (folder, entries) = entries;
            for entry in entries {
                let path = match entry {
                    trust::Entry::Symlink(path) => {
                        let error = LoadError::Untrusted {
                            reason: Distrust::Symlink {
                                target: std::fs::read_link(&path).ok(),
                            },
                            path,
                        };
                        skip(error, &mut skipped)?;
                        continue;
                    }
                    trust::Entry::File(path) => path,
                };
                let candidate = match folder.open_file(&path) {
                    Ok(candidate) => candidate,
                    Err(error) => {
                        skip(error, &mut skipped)?;
                        continue;
                    }
                };
                if !seen_files.insert(candidate.id.clone()) {
                    skip(LoadError::AlreadyLoaded { path }, &mut skipped)?;
                    continue;
                }
                let plugin = match load_checked(candidate, &pins, &pinned, options.require_pins) {
                    Ok(plugin) => plugin,
                    Err(error) => {
                        skip(error, &mut skipped)?;
                        continue;
                    }
                };
                if let Some(first) = by_name.get(plugin.name()) {
                    let error = LoadError::DuplicateName {
                        name: plugin.name().to_owned(),
                        path,
                        first: first.clone(),
                    };
                    skip(error, &mut skipped)?;
                    continue;
                }
                by_name.insert(plugin.name().to_owned(), path.clone());
                tracing::info!(
                    target: "taskhost::loader",
                    plugin = plugin.name(),
                    version = plugin.version(),
                    path = %path.display(),
                    abi = plugin.abi().as_str(),
                    tasks = plugin.tasks().len(),
                    pinned = pins.contains_key(plugin.name()),
                    "plugin.loaded"
                );
                for task in plugin.runnable_tasks() {
                    set.tasks.insert(task.full_name().to_owned(), task);
                }
                set.plugins.push(plugin);
            }
        }
        for name in pins.keys() {
            if set.plugin(name).is_none() {
                tracing::warn!(
                    target: "taskhost::loader",
                    plugin = name.as_str(),
                    "plugin `{name}` is pinned but was not loaded"
                );
            }
        }
        Ok((set, skipped))
    }

    /// The plugins that loaded, in load order (folder order, then file name order).
    pub fn plugins(&self) -> &[LoadedPlugin] {
        &self.plugins
    }

    /// The plugin called `name`.
    pub fn plugin(&self, name: &str) -> Option<&LoadedPlugin> {
        self.plugins.iter().find(|p| p.name() == name)
    }

    /// The task called `full_name` (`plugin/task`).
    pub fn task(&self, full_name: &str) -> Option<PluginTask> {
        self.tasks.get(full_name).cloned()
    }

    /// Every task of every plugin, in load order.
    pub fn tasks(&self) -> impl Iterator<Item = PluginTask> + '_ {
        self.plugins.iter().flat_map(LoadedPlugin::runnable_tasks)
    }

    /// The interface version (`taskhost-plugin-api`) plugins must have been built against.
    pub fn interface_version() -> String {
        backend::interface_version()
    }

    /// The C plugin ABI version (`taskhost_plugin.h`) this host speaks, `major.minor`: it
    /// loads C plugins of the same major version and this minor version or an older one.
    pub fn c_abi_version() -> String {
        format!("{}.{}", c_abi::ABI_MAJOR, c_abi::ABI_MINOR)
    }
}

/// Checks a trusted, open library file against the pins, loads it through its descriptor and
/// checks its pin again by name.
fn load_checked(
    candidate: trust::Candidate,
    pins: &BTreeMap<String, String>,
    pinned: &HashMap<&str, &str>,
    require_pins: bool,
) -> Result<LoadedPlugin, LoadError> {
    let path = candidate.path.clone();
    let sha256 = OnceLock::new();
    let checksum = |file: &File| {
        trust::sha256(file).map_err(|source| LoadError::Unreadable {
            path: path.clone(),
            source,
        })
    };
    if require_pins {
        let found = checksum(&candidate.file)?;
        if !pinned.contains_key(found.as_str()) {
            let hint = trust::guess_pin_key(&path, pins)
                .map(|(key, pin)| {
                    format!("; by its file name it may be plugin `{key}`, which is pinned to {pin}")
                })
                .unwrap_or_default();
            return Err(LoadError::Unpinned {
                path,
                plugin: None,
                found,
                hint,
            });
        }
        let _ = sha256.set(found);
    }
    #[cfg(all(unix, not(target_vendor = "apple")))]
    check_complete(&path, &candidate.file)?;
    let load_path = candidate.load_path();
    // From here on the library may be mapped under `load_path`: its descriptor stays open for
    // the life of the process (see `trust`).
    let file: &'static File = Box::leak(Box::new(candidate.file));
    let plugin = load_one(&path, &load_path, file, sha256)?;
    let name = plugin.name();
    match pins.get(name) {
        Some(expected) => {
            let found = plugin.sha256().map_err(|source| LoadError::Unreadable {
                path: path.clone(),
                source,
            })?;
            if found != expected {
                let note = match pinned.get(found) {
                    Some(other) => format!(", the pin of `{other}`"),
                    None => {
                        " (its library was opened to read its name; with `require_pins = true` \
                             a file no pin matches is refused before it is opened)"
                            .to_owned()
                    }
                };
                return Err(LoadError::PinMismatch {
                    path,
                    plugin: name.to_owned(),
                    expected: expected.clone(),
                    found: found.to_owned(),
                    note,
                });
            }
        }
        None if require_pins => {
            let found = plugin
                .sha256()
                .map_err(|source| LoadError::Unreadable {
                    path: path.clone(),
                    source,
                })?
                .to_owned();
            let hint = pinned
                .get(found.as_str())
                .map(|other| format!(" is pinned as `{other}`"))
                .unwrap_or_default();
            return Err(LoadError::Unpinned {
                path,
                plugin: Some(name.to_owned()),
                found,
                hint,
            });
        }
        None => {}
    }
    Ok(plugin)
}

/// Refuses an ELF library cut short before the platform loader maps it (see `elf`).
///
/// A file cut inside its loadable segments is a [`LoadError::IncompleteLibrary`] that says
/// which segment ends where. A file cut inside its ELF header or program headers is a
/// [`LoadError::NotALibrary`] with the very reason glibc's `dlopen` gives for it ("file too
/// short", "cannot read file data"), so the message does not change with the libc; where the
/// headers end goes to `debug` level.
#[cfg(all(unix, not(target_vendor = "apple")))]
fn check_complete(path: &Path, file: &File) -> Result<(), LoadError> {
    let incomplete = elf::check_file(file).map_err(|source| LoadError::Unreadable {
        path: path.to_path_buf(),
        source,
    })?;
    let why = match incomplete {
        Ok(()) => return Ok(()),
        Err(why) => why,
    };
    let reason = match why {
        elf::Incomplete::Segment { .. } => {
            return Err(LoadError::IncompleteLibrary {
                path: path.to_path_buf(),
                reason: why.to_string(),
            })
        }
        elf::Incomplete::Header { .. } => "file too short",
        elf::Incomplete::ProgramHeaders { .. } => "cannot read file data",
    };
    tracing::debug!(
        target: "taskhost::loader",
        path = %path.display(),
        "{}: not a complete library: {why}",
        path.display()
    );
    Err(LoadError::NotALibrary {
        path: path.to_path_buf(),
        reason: reason.to_owned(),
    })
}

/// Opens one library (through `load_path`, which names the same file as `path`) and reads its
/// description. Messages name `path`.
fn load_one(
    path: &Path,
    load_path: &Path,
    file: &'static File,
    sha256: OnceLock<String>,
) -> Result<LoadedPlugin, LoadError> {
    let backend = Backend::open(path, load_path)?;
    let descriptor = backend
        .describe()
        .map_err(|failure| LoadError::PluginFailed {
            path: path.to_path_buf(),
            message: failure.to_string(),
        })?;
    let invalid = |reason: String| LoadError::InvalidDescriptor {
        path: path.to_path_buf(),
        reason,
    };
    let name = descriptor.name;
    if !valid_name(&name) {
        return Err(invalid(format!(
            "expected a plugin name of letters, digits, `_`, `-` or `.`, found `{name}`"
        )));
    }
    let mut tasks = Vec::new();
    let mut names = HashSet::new();
    for task in descriptor.tasks {
        if !valid_name(&task.name) {
            return Err(invalid(format!(
                "plugin `{name}`: expected a task name of letters, digits, `_`, `-` or `.`, found `{}`",
                task.name
            )));
        }
        if !names.insert(task.name.clone()) {
            return Err(invalid(format!(
                "plugin `{name}` declares task `{}` twice",
                task.name
            )));
        }
        tasks.push(task);
    }
    let full_names = tasks.iter().map(|t| format!("{name}/{}", t.name)).collect();
    Ok(LoadedPlugin::new(PluginInner {
        name,
        version: descriptor.version,
        path: path.to_path_buf(),
        metadata: descriptor.metadata,
        tasks,
        full_names,
        backend,
        file,
        sha256,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn handles_are_send_and_sync() {
        assert_send_sync::<PluginSet>();
        assert_send_sync::<LoadedPlugin>();
        assert_send_sync::<PluginTask>();
    }

    #[test]
    fn names_are_checked() {
        assert!(valid_name("checksum"));
        assert!(valid_name("my-plugin_2.0"));
        assert!(!valid_name(""));
        assert!(!valid_name("a/b"));
        assert!(!valid_name("with space"));
    }

    #[test]
    fn missing_folder_is_reported_and_skipped() {
        let dir = PathBuf::from("/definitely/not/here");
        let (set, skipped) =
            PluginSet::load(std::slice::from_ref(&dir), &LoadOptions::default()).unwrap();
        assert!(set.plugins().is_empty());
        assert_eq!(skipped.len(), 1);
        assert_eq!(
            skipped[0].to_string(),
            "plugin folder /definitely/not/here does not exist"
        );
        let strict = PluginSet::load(
            &[dir],
            &LoadOptions {
                strict: true,
                ..LoadOptions::default()
            },
        )
        .unwrap_err();
        assert!(
            matches!(strict, LoadError::MissingFolder { .. }),
            "{strict:?}"
        );
    }
}
