//! Why a plugin did not load.

use std::fmt;
use std::path::PathBuf;

/// Why a plugin (or a plugin folder) was not loaded.
///
/// Messages are short and name the path, what was expected and what was found; the long
/// report abi_stable writes for a layout mismatch goes to `tracing::debug!` only.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// A configured plugin folder does not exist.
    #[error("plugin folder {} does not exist", dir.display())]
    MissingFolder {
        /// The folder.
        dir: PathBuf,
    },

    /// A plugin folder could not be listed.
    #[error("reading plugin folder {}: {source}", dir.display())]
    ReadFolder {
        /// The folder.
        dir: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },

    /// The file is not a dynamic library the platform can load.
    #[error("{}: expected a dynamic library, found a file the loader cannot open ({reason})", path.display())]
    NotALibrary {
        /// The file.
        path: PathBuf,
        /// The platform loader's message.
        reason: String,
    },

    /// The library file ends before one of its loadable (`PT_LOAD`) segments does: a truncated
    /// copy. Found from the ELF program headers before the library is opened (mapping it would
    /// kill the process with `SIGBUS`); not checked on macOS and Windows.
    #[error("{}: not a complete library: {reason}", path.display())]
    IncompleteLibrary {
        /// The file.
        path: PathBuf,
        /// Which segment ends where, and the file's size.
        reason: String,
    },

    /// The library loads but does not export a taskhost plugin.
    #[error("{}: expected a taskhost plugin, found a library without the `{symbol}` symbol (was it built with `taskhost_plugin_api::export_plugin!`?) or the `taskhost_plugin_descriptor` symbol of a C plugin", path.display())]
    NoRootSymbol {
        /// The library.
        path: PathBuf,
        /// The symbol of a Rust plugin (abi_stable's root module) that was looked for.
        symbol: String,
    },

    /// The plugin was built against a version of `taskhost-plugin-api` this host cannot use.
    #[error("{}: built against taskhost-plugin-api {found}, this host needs {expected} (rebuild the plugin against it)", path.display())]
    IncompatibleVersion {
        /// The library.
        path: PathBuf,
        /// The host's interface version.
        expected: String,
        /// The plugin's interface version.
        found: String,
    },

    /// The plugin's root module does not have the layout the host expects, e.g. a plugin built
    /// against an older revision of the interface, or with another abi_stable.
    #[error("{}: its root module does not match taskhost-plugin-api {expected}: {summary} (rebuild the plugin against it)", path.display())]
    IncompatibleLayout {
        /// The library.
        path: PathBuf,
        /// The host's interface version.
        expected: String,
        /// The `Error:` lines of abi_stable's report, joined with `; `.
        summary: String,
    },

    /// A C plugin's descriptor does not start with the magic number of `taskhost_plugin.h`.
    #[error("{}: expected a taskhost C plugin descriptor from `{symbol}` starting with magic number {expected:#010x}, found {found:#010x} (was it built with taskhost_plugin.h?)", path.display())]
    BadMagic {
        /// The library.
        path: PathBuf,
        /// The descriptor symbol.
        symbol: String,
        /// `TH_PLUGIN_MAGIC`.
        expected: u32,
        /// What the descriptor holds instead.
        found: u32,
    },

    /// A C plugin was built against a version of the C ABI (`taskhost_plugin.h`) this host
    /// cannot use: another major version, or a newer minor version.
    #[error("{}: built against taskhost C plugin ABI {found}, this host supports {expected} (the same major version, up to its minor version; rebuild the plugin against the host's taskhost_plugin.h)", path.display())]
    IncompatibleCAbi {
        /// The library.
        path: PathBuf,
        /// The host's C ABI version, `major.minor`.
        expected: String,
        /// The plugin's C ABI version, `major.minor`.
        found: String,
    },

    /// The plugin's own initialisation or `describe` entry point failed.
    #[error("{}: the plugin failed to start: {message}", path.display())]
    PluginFailed {
        /// The library.
        path: PathBuf,
        /// What the plugin reported.
        message: String,
    },

    /// The plugin describes itself in a way the host cannot use (a bad name, duplicated tasks).
    #[error("{}: {reason}", path.display())]
    InvalidDescriptor {
        /// The library.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// Two libraries call themselves by the same plugin name.
    #[error("{}: plugin name `{name}` is already taken by {}", path.display(), first.display())]
    DuplicateName {
        /// The plugin name.
        name: String,
        /// The library that was skipped.
        path: PathBuf,
        /// The library that was loaded first under that name.
        first: PathBuf,
    },

    /// The same file was found twice (a folder listed twice, or a hard path alias).
    #[error("{}: already loaded", path.display())]
    AlreadyLoaded {
        /// The library.
        path: PathBuf,
    },

    /// A plugin folder the trust rules refuse (a symbolic link, writable by group or others,
    /// or owned by someone other than the current user or root).
    #[error("plugin folder {}: refused: {reason}", dir.display())]
    UntrustedFolder {
        /// The folder.
        dir: PathBuf,
        /// Which rule it breaks.
        reason: Distrust,
    },

    /// A plugin folder with a folder on its path (from the root down) that the trust rules
    /// refuse: a symbolic link, owned by someone other than the current user or root, or
    /// writable by group or others without the sticky bit (`/tmp` passes).
    #[error("plugin folder {}: refused: folder {} on its path: {reason}", dir.display(), ancestor.display())]
    UntrustedAncestor {
        /// The plugin folder.
        dir: PathBuf,
        /// The folder on its path that breaks a rule.
        ancestor: PathBuf,
        /// Which rule it breaks.
        reason: Distrust,
    },

    /// A plugin file the trust rules refuse (a symbolic link, writable by group or others, or
    /// owned by someone other than the current user or root). It was not loaded.
    #[error("{}: refused: {reason}", path.display())]
    Untrusted {
        /// The file.
        path: PathBuf,
        /// Which rule it breaks.
        reason: Distrust,
    },

    /// A plugin file could not be opened or read.
    #[error("{}: cannot read the plugin file: {source}", path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },

    /// A pin in [`crate::LoadOptions::pins`] is not `sha256:<64 hex digits>`. Nothing is loaded.
    #[error("the pin of plugin `{plugin}` is not valid: {reason}")]
    InvalidPin {
        /// The plugin the pin is for.
        plugin: String,
        /// What is wrong with it.
        reason: String,
    },

    /// With [`crate::LoadOptions::require_pins`], a library no pin matches. When `plugin` is
    /// `None` the file was refused before it was opened.
    #[error("{}", unpinned_message(path, plugin.as_deref(), found, hint))]
    Unpinned {
        /// The file.
        path: PathBuf,
        /// The plugin's name, when it was loaded far enough to say (its checksum is pinned,
        /// under another name).
        plugin: Option<String>,
        /// The file's checksum, `sha256:<hex>`.
        found: String,
        /// More to say (the pin its file name suggests), or empty.
        hint: String,
    },

    /// A plugin whose pin does not match its file. Found once the library is open (only then is
    /// its name known).
    #[error("{}: refused: plugin `{plugin}` is pinned to {expected}, found {found}{note}", path.display())]
    PinMismatch {
        /// The file.
        path: PathBuf,
        /// The plugin's name.
        plugin: String,
        /// The pinned checksum, `sha256:<hex>`.
        expected: String,
        /// The file's checksum, `sha256:<hex>`.
        found: String,
        /// More to say (that the library was opened, or whose pin the checksum is), or empty.
        note: String,
    },

    /// Any other loading error, reduced to its first line.
    #[error("{}: {message}", path.display())]
    Other {
        /// The library.
        path: PathBuf,
        /// The first line of the error.
        message: String,
    },
}

fn unpinned_message(
    path: &std::path::Path,
    plugin: Option<&str>,
    found: &str,
    hint: &str,
) -> String {
    match plugin {
        None => format!(
            "{}: refused: `require_pins` is on and no pin in [plugins.pins] matches the file's checksum {found}, so it was not opened{hint}",
            path.display()
        ),
        Some(plugin) => format!(
            "{}: refused: `require_pins` is on and plugin `{plugin}` has no pin in [plugins.pins] (the file's checksum {found}{hint})",
            path.display()
        ),
    }
}

/// Why a plugin file or folder is not trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Distrust {
    /// The path is a symbolic link.
    Symlink {
        /// Where it points, when that could be read.
        target: Option<PathBuf>,
    },
    /// Group or others may write to it.
    Writable {
        /// The permission bits (`mode & 0o7777`).
        mode: u32,
    },
    /// Someone other than the current user or root owns it.
    Owner {
        /// The owner's uid.
        uid: u32,
        /// The current (effective) uid.
        euid: u32,
    },
    /// It is not a regular file (or, for a folder, not a directory).
    NotRegular,
}

impl fmt::Display for Distrust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Distrust::Symlink { target } => {
                f.write_str("it is a symbolic link")?;
                if let Some(target) = target {
                    write!(f, " (to {})", target.display())?;
                }
                f.write_str(
                    "; plugins and plugin folders must be real files and folders \
                     (copy the file, or configure the real folder)",
                )
            }
            Distrust::Writable { mode } => write!(
                f,
                "it is writable by group or others (mode {mode:04o}); only its owner may \
                 write to it (chmod go-w)"
            ),
            Distrust::Owner { uid, euid } => write!(
                f,
                "it is owned by uid {uid}, expected the current user (uid {euid}) or root (uid 0)"
            ),
            Distrust::NotRegular => f.write_str("it is not a regular file"),
        }
    }
}
