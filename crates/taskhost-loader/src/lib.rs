//! Discovers and loads compiled taskhost plugins, and runs their tasks.
//!
//! # Why a crate of its own
//!
//! The host binary and the benchmark harness both load plugins. Keeping the FFI boundary in one
//! small crate means it is the only crate that touches dynamic libraries, so `taskhost` itself
//! can `#![forbid(unsafe_code)]`. The abi_stable backend needs no `unsafe` of ours (abi_stable
//! checks the layout of every plugin's root module before handing it out); the C-ABI backend
//! — plugins in C, C++ or Zig that export the versioned descriptor of
//! `taskhost-plugin-api/include/taskhost_plugin.h`, opened through libloading — does, and it
//! is confined to one module, each item with its own `#[allow(unsafe_code)]` and each `unsafe`
//! block with a `// SAFETY:` comment. (The other `unsafe` is [`exit_hook`]'s `atexit` and
//! `_exit`: a plugin that calls `exit` ends the host, and only an exit handler runs after; and
//! [`stdio_probe`]'s constructor, which sees a closed stdout before the Rust runtime hides it.)
//!
//! # What it does
//!
//! - [`PluginSet::load`] lists each configured folder for platform library names
//!   (`{DLL_PREFIX}name{DLL_SUFFIX}`: `libname.so`, `libname.dylib`, `name.dll`), in name
//!   order, and tells the two kinds of plugin apart by the symbol they export: a Rust plugin's
//!   abi_stable root module is opened with
//!   `abi_stable::library::lib_header_from_path(..).init_root_module()` (never
//!   `RootModule::load_from_file`, which caches one module per interface type and would hand
//!   the first plugin back for every path); a C plugin's `taskhost_plugin_descriptor` is
//!   checked for its magic number and ABI version and copied into Rust-owned data. Either way
//!   the plugin describes itself and its tasks are indexed as `plugin/task`; from then on the
//!   two kinds are indistinguishable.
//! - Before anything is opened, each folder and file must pass the trust rules, like sshd's
//!   `StrictModes` (Unix): no symbolic link, not writable by group or others, owned by the
//!   current user or root ([`Distrust`] says which rule a refused path breaks). Optional
//!   SHA-256 pins per plugin ([`LoadOptions::pins`], [`LoadOptions::require_pins`]) are checked
//!   on the checksum of the very descriptor the library is then loaded through
//!   (`/proc/self/fd/N` on Linux), so the file cannot change in between;
//!   [`LoadedPlugin::sha256`] gives the value to pin.
//! - On ELF platforms (not macOS or Windows) the ELF header and program headers are then read
//!   through that descriptor, and a library cut short inside a loadable segment is refused
//!   ([`LoadError::IncompleteLibrary`]; one cut inside those headers, [`LoadError::NotALibrary`])
//!   instead of being mapped: `dlopen` would map pages past the end of the file, and touching
//!   them kills the process with `SIGBUS`.
//! - A file that fails to load or is refused is reported as a short [`LoadError`] and skipped,
//!   unless [`LoadOptions::strict`] is set. Libraries are never unloaded.
//! - [`PluginTask::run`] calls the plugin with a [`RunContext`] (cancellation, progress, logs);
//!   [`TracingContext`] is a ready one that forwards plugin logs to `tracing`.
//!
//! This crate knows nothing of pools, configuration files or JSONL.
//!
//! ```no_run
//! use std::path::PathBuf;
//! use taskhost_loader::{LoadOptions, PluginSet, TracingContext};
//!
//! let (plugins, skipped) =
//!     PluginSet::load(&[PathBuf::from("target/plugins")], &LoadOptions::default())?;
//! for error in &skipped {
//!     eprintln!("skipped: {error}");
//! }
//! let task = plugins.task("primes/count").expect("the primes plugin is loaded");
//! let output = task.run(br#"{"n": 100}"#, &TracingContext::new(&task));
//! assert_eq!(output.unwrap(), br#"{"n":100,"count":25}"#);
//! # Ok::<(), taskhost_loader::LoadError>(())
//! ```
#![deny(missing_docs)]

mod backend;
mod c_abi;
mod context;
mod elf;
mod error;
pub mod exit_hook;
pub mod stdio_probe;
mod trust;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

pub use context::{RunContext, TracingContext};
pub use error::LoadError;
pub use taskhost_plugin_api::{FailureKind, LogLevel, WorkItem};
pub use trust::{parse_pin, Distrust};

use backend::Backend;

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

/// A task that did not produce an output: its kind and message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct TaskFailure {
    /// Why the task failed.
    pub kind: FailureKind,
    /// What the plugin (or the loader) said.
    pub message: String,
}

/// Which ABI a plugin library speaks. Informational only: both kinds run the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PluginAbi {
    /// A Rust plugin: the abi_stable root module of `taskhost_plugin_api::export_plugin!`.
    AbiStable,
    /// A plugin in C (or C++, Zig, ...) exporting the descriptor of `taskhost_plugin.h`.
    C,
}

impl PluginAbi {
    /// `"abi_stable"` or `"c"`.
    pub fn as_str(self) -> &'static str {
        match self {
            PluginAbi::AbiStable => "abi_stable",
            PluginAbi::C => "c",
        }
    }
}

impl fmt::Display for PluginAbi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One task type of a plugin, as the plugin describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskInfo {
    /// The task's name within its plugin (the `task` of `plugin/task`).
    pub name: String,
    /// A one-line description.
    pub description: String,
}

struct PluginInner {
    name: String,
    version: String,
    path: PathBuf,
    metadata: String,
    tasks: Vec<TaskInfo>,
    full_names: Vec<String>,
    backend: Backend,
    /// The descriptor the library was loaded through (never closed, see `trust`).
    file: &'static File,
    /// `sha256:<hex>` of `file`, computed when first asked for (or when pins are checked).
    sha256: OnceLock<String>,
}

/// A plugin library that loaded: its name, version, file, tasks and expand step.
///
/// Cheap to clone (an `Arc`), `Send + Sync`.
#[derive(Clone)]
pub struct LoadedPlugin {
    inner: Arc<PluginInner>,
}

impl fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("name", &self.inner.name)
            .field("version", &self.inner.version)
            .field("path", &self.inner.path)
            .field("tasks", &self.inner.full_names)
            .finish()
    }
}

impl LoadedPlugin {
    /// The plugin's name (the `plugin` of `plugin/task`).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The plugin's own version, as it reports it.
    pub fn version(&self) -> &str {
        &self.inner.version
    }

    /// The library file it was loaded from.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The SHA-256 checksum of the library file, `sha256:<64 hex digits>`: the value to pin it
    /// with. It is computed (once) from the very descriptor the library was loaded through, so
    /// it describes the code that runs even if the file was replaced since.
    pub fn sha256(&self) -> std::io::Result<&str> {
        if let Some(sum) = self.inner.sha256.get() {
            return Ok(sum);
        }
        let sum = trust::sha256(self.inner.file)?;
        Ok(self.inner.sha256.get_or_init(|| sum))
    }

    /// Which ABI the library speaks (a Rust abi_stable plugin or a C plugin).
    pub fn abi(&self) -> PluginAbi {
        self.inner.backend.abi()
    }

    /// The JSON metadata the plugin attached (empty when none).
    pub fn metadata(&self) -> &str {
        &self.inner.metadata
    }

    /// The plugin's task types, in the order it declared them.
    pub fn tasks(&self) -> &[TaskInfo] {
        &self.inner.tasks
    }

    /// The plugin's tasks as runnable handles.
    pub fn runnable_tasks(&self) -> impl Iterator<Item = PluginTask> + '_ {
        (0..self.inner.tasks.len()).map(|index| PluginTask {
            plugin: Arc::clone(&self.inner),
            index,
        })
    }

    /// Whether the plugin has an expand step.
    pub fn can_expand(&self) -> bool {
        self.inner.backend.can_expand()
    }

    /// Expands `job` with `params` (JSON) into work items, with a [`TracingContext`] that is
    /// never cancelled.
    pub fn expand(&self, job: &str, params: &[u8]) -> Result<Vec<WorkItem>, TaskFailure> {
        let task = format!("{}/{job}", self.inner.name);
        self.expand_with(
            job,
            params,
            &TracingContext::with_names(&self.inner.name, &task),
        )
    }

    /// Expands `job` with `params` (JSON) into work items, with the given context.
    pub fn expand_with(
        &self,
        job: &str,
        params: &[u8],
        context: &dyn RunContext,
    ) -> Result<Vec<WorkItem>, TaskFailure> {
        let bytes = self.expand_raw(job, params, context)?;
        serde_json::from_slice(&bytes).map_err(|e| TaskFailure {
            kind: FailureKind::Failed,
            message: format!(
                "plugin `{}` returned work items that are not a JSON array of {{\"task\", \"input\"}}: {e}",
                self.inner.name
            ),
        })
    }

    /// Expands `job` with `params` and returns the plugin's bytes unparsed (a JSON array of
    /// work items by contract).
    pub fn expand_raw(
        &self,
        job: &str,
        params: &[u8],
        context: &dyn RunContext,
    ) -> Result<Vec<u8>, TaskFailure> {
        self.inner
            .backend
            .expand(job, params, context)
            .unwrap_or_else(|| {
                Err(TaskFailure {
                    kind: FailureKind::InvalidInput,
                    message: format!("plugin `{}` does not expand jobs", self.inner.name),
                })
            })
    }
}

/// A runnable task type: `plugin/task`. Cheap to clone (an `Arc` and an index), `Send + Sync`.
#[derive(Clone)]
pub struct PluginTask {
    plugin: Arc<PluginInner>,
    index: usize,
}

impl fmt::Debug for PluginTask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PluginTask")
            .field(&self.full_name())
            .finish()
    }
}

impl PluginTask {
    /// `plugin/task`.
    pub fn full_name(&self) -> &str {
        &self.plugin.full_names[self.index]
    }

    /// The plugin's name.
    pub fn plugin_name(&self) -> &str {
        &self.plugin.name
    }

    /// The task's name within the plugin.
    pub fn task_name(&self) -> &str {
        &self.plugin.tasks[self.index].name
    }

    /// The one-line description.
    pub fn description(&self) -> &str {
        &self.plugin.tasks[self.index].description
    }

    /// The library the task lives in.
    pub fn plugin_path(&self) -> &Path {
        &self.plugin.path
    }

    /// Runs the task on `input` (JSON by convention) in the calling thread.
    ///
    /// A panic inside the plugin comes back as a [`FailureKind::Panicked`] failure; it never
    /// unwinds into the host.
    pub fn run(&self, input: &[u8], context: &dyn RunContext) -> Result<Vec<u8>, TaskFailure> {
        self.plugin
            .backend
            .run(self.index, self.task_name(), input, context)
    }
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
    Ok(LoadedPlugin {
        inner: Arc::new(PluginInner {
            name,
            version: descriptor.version,
            path: path.to_path_buf(),
            metadata: descriptor.metadata,
            tasks,
            full_names,
            backend,
            file,
            sha256,
        }),
    })
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
