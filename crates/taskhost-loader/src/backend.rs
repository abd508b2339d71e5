//! The loading backends, told apart by the symbol a library exports: abi_stable root modules
//! (Rust plugins built with `taskhost_plugin_api::export_plugin!`) and the plain C ABI of
//! `taskhost_plugin.h` (plugins in C, C++, Zig), opened through libloading. Both offer the same
//! operations, so the rest of the crate never asks which kind a plugin is.

use std::path::Path;

use abi_stable::library::{
    lib_header_from_path, LibraryError, RootModule, ROOT_MODULE_LOADER_NAME,
};
use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::sabi_types::{VersionNumber, VersionStrings};
use abi_stable::std_types::{RSlice, RStr};
use taskhost_plugin_api::abi::{HostContextRef, HostContext_TO, PluginModuleRef, RawFailure};

use taskhost_plugin_api::FailureKind;

use crate::c_abi::{self, CPlugin};
use crate::context::{HostAdapter, RunContext};
use crate::description::{Description, PluginAbi, TaskFailure, TaskInfo};
use crate::error::LoadError;

/// A loaded plugin library, by backend. Libraries are never unloaded (abi_stable leaks them on
/// purpose: code or data of a plugin may still be referenced; [`Backend::open`] leaks its own
/// handle and the C backend's [`CPlugin`]), so this is `Copy`.
#[derive(Clone, Copy)]
pub(crate) enum Backend {
    /// A Rust plugin exporting a `taskhost_plugin_api` root module.
    AbiStable(PluginModuleRef),
    /// A plugin exporting the C descriptor symbol of `taskhost_plugin.h`.
    C(&'static CPlugin),
}

/// The interface version this host was built against.
pub(crate) fn interface_version() -> String {
    PluginModuleRef::VERSION_STRINGS.version.to_string()
}

impl Backend {
    /// Opens the library at `path`, tells its kind by the symbol it exports, and checks it
    /// against this host's interface: abi_stable's root module, or the C descriptor (magic
    /// number and ABI version). A library that exports both is taken as an abi_stable plugin.
    ///
    /// The library is opened through `load_path` (`/proc/self/fd/N` on Linux: the descriptor
    /// that was checked and hashed), which names the same file as `path`; messages name `path`.
    pub(crate) fn open(path: &Path, load_path: &Path) -> Result<Backend, LoadError> {
        let library = c_abi::open_library(load_path).map_err(|e| LoadError::NotALibrary {
            path: path.to_path_buf(),
            reason: short_dlerror(&e.to_string(), load_path),
        })?;
        // Never unloaded, whatever comes next: a plugin's code and data may still be referenced,
        // and even a library that is refused has run its initialisers (its teardown, such as a
        // Rust cdylib's thread-local destructors, is not safe to run while threads live on).
        let library: &'static c_abi::Library = Box::leak(Box::new(library));
        if c_abi::exports(library, ROOT_MODULE_LOADER_NAME) {
            // abi_stable opens the file again (the same, already loaded library) and checks it.
            return Backend::open_abi_stable(path, load_path);
        }
        if c_abi::exports(library, c_abi::DESCRIPTOR_SYMBOL) {
            let plugin = CPlugin::load(path, library)?;
            return Ok(Backend::C(Box::leak(Box::new(plugin))));
        }
        Err(LoadError::NoRootSymbol {
            path: path.to_path_buf(),
            symbol: ROOT_MODULE_LOADER_NAME.to_owned(),
        })
    }

    /// Checks the abi_stable root module of the library at `path` (opened through
    /// `load_path`, which is already loaded) and initialises it.
    fn open_abi_stable(path: &Path, load_path: &Path) -> Result<Backend, LoadError> {
        let header =
            lib_header_from_path(load_path).map_err(|e| library_error(path, load_path, e))?;
        check_interface_version(path, header.version_strings())?;
        let module = header
            .init_root_module::<PluginModuleRef>()
            .map_err(|e| library_error(path, load_path, e))?;
        Ok(Backend::AbiStable(module))
    }

    /// Which ABI the plugin speaks.
    pub(crate) fn abi(self) -> PluginAbi {
        match self {
            Backend::AbiStable(_) => PluginAbi::AbiStable,
            Backend::C(_) => PluginAbi::C,
        }
    }

    /// Asks the plugin to describe itself.
    pub(crate) fn describe(self) -> Result<Description, TaskFailure> {
        match self {
            Backend::AbiStable(module) => {
                let descriptor = module.describe()()
                    .into_result()
                    .map_err(TaskFailure::from_raw)?;
                Ok(Description {
                    name: descriptor.name.into_string(),
                    version: descriptor.version.into_string(),
                    metadata: descriptor.metadata.into_string(),
                    tasks: descriptor
                        .tasks
                        .into_iter()
                        .map(|task| TaskInfo {
                            name: task.name.into_string(),
                            description: task.description.into_string(),
                        })
                        .collect(),
                })
            }
            Backend::C(plugin) => Ok(plugin.description().clone()),
        }
    }

    /// Whether the plugin has an expand step (C plugins have none in ABI 1.0).
    pub(crate) fn can_expand(self) -> bool {
        match self {
            Backend::AbiStable(module) => module.expand().is_some(),
            Backend::C(_) => false,
        }
    }

    /// Runs task number `index` of the plugin's description, called `task`, on `input`.
    pub(crate) fn run(
        self,
        index: usize,
        task: &str,
        input: &[u8],
        context: &dyn RunContext,
    ) -> Result<Vec<u8>, TaskFailure> {
        match self {
            Backend::AbiStable(module) => {
                let adapter = HostAdapter { context };
                let host: HostContextRef<'_> = HostContext_TO::from_ptr(&adapter, TD_Opaque);
                module.run_task()(RStr::from_str(task), RSlice::from_slice(input), host)
                    .into_result()
                    .map(|output| output.into_vec())
                    .map_err(TaskFailure::from_raw)
            }
            Backend::C(plugin) => plugin.run(index, input, context),
        }
    }

    /// Runs the expand step on `job` and `params`; `None` when the plugin has none.
    pub(crate) fn expand(
        self,
        job: &str,
        params: &[u8],
        context: &dyn RunContext,
    ) -> Option<Result<Vec<u8>, TaskFailure>> {
        match self {
            Backend::AbiStable(module) => {
                let expand = module.expand()?;
                let adapter = HostAdapter { context };
                let host: HostContextRef<'_> = HostContext_TO::from_ptr(&adapter, TD_Opaque);
                Some(
                    expand(RStr::from_str(job), RSlice::from_slice(params), host)
                        .into_result()
                        .map(|output| output.into_vec())
                        .map_err(TaskFailure::from_raw),
                )
            }
            Backend::C(_) => None,
        }
    }
}

impl TaskFailure {
    fn from_raw(raw: RawFailure) -> TaskFailure {
        TaskFailure {
            kind: FailureKind::from_code(raw.kind),
            message: raw.message.into_string(),
        }
    }
}

/// Refuses a plugin built against another interface version before abi_stable compares layouts
/// (for a newer `0.x` minor version abi_stable would only say "incompatible package versions").
///
/// The rule: same major version, and for `0.x` the same minor version.
fn check_interface_version(path: &Path, found: VersionStrings) -> Result<(), LoadError> {
    let expected = PluginModuleRef::VERSION_STRINGS;
    let incompatible = || LoadError::IncompatibleVersion {
        path: path.to_path_buf(),
        expected: expected.version.to_string(),
        found: found.version.to_string(),
    };
    let (Ok(host), Ok(plugin)) = (VersionNumber::new(expected), VersionNumber::new(found)) else {
        return Err(incompatible());
    };
    let compatible = host.major == plugin.major && (host.major != 0 || host.minor == plugin.minor);
    if compatible {
        Ok(())
    } else {
        Err(incompatible())
    }
}

/// The `Error:` lines of abi_stable's layout report, deduplicated and joined: e.g.
/// "incompatible type size; prefix-types have a different prefix; too many fields".
fn layout_errors(report: &str) -> String {
    let mut errors: Vec<&str> = Vec::new();
    for line in report.lines() {
        if let Some(error) = line.trim().strip_prefix("Error:") {
            let error = error.trim();
            if !error.is_empty() && !errors.contains(&error) {
                errors.push(error);
            }
        }
    }
    if errors.is_empty() {
        first_error_line(report)
    } else {
        errors.join("; ")
    }
}

/// The first line of `text` that says what went wrong, for the short message.
fn first_error_line(text: &str) -> String {
    let lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let error_line = lines
        .clone()
        .find(|l| l.contains("Error:") || l.contains("error:"));
    error_line
        .or_else(|| lines.clone().next())
        .unwrap_or("unknown error")
        .to_owned()
}

/// Turns abi_stable's error into a short [`LoadError`]; the full report goes to debug level.
/// `load_path` is the name the library was opened by (see [`Backend::open`]).
fn library_error(path: &Path, load_path: &Path, error: LibraryError) -> LoadError {
    let path_buf = path.to_path_buf();
    tracing::debug!(
        target: "taskhost::loader",
        path = %path.display(),
        "abi_stable's report on {}:\n{error}",
        path.display()
    );
    match error {
        LibraryError::OpenError { err, .. } => LoadError::NotALibrary {
            path: path_buf,
            reason: short_dlerror(&err.to_string(), load_path),
        },
        LibraryError::GetSymbolError { symbol, .. } => LoadError::NoRootSymbol {
            path: path_buf,
            symbol: String::from_utf8_lossy(&symbol)
                .trim_end_matches('\0')
                .to_owned(),
        },
        LibraryError::IncompatibleVersionNumber {
            expected_version,
            actual_version,
            ..
        } => LoadError::IncompatibleVersion {
            path: path_buf,
            expected: expected_version.to_string(),
            found: actual_version.to_string(),
        },
        LibraryError::AbiInstability(report) => LoadError::IncompatibleLayout {
            path: path_buf,
            expected: interface_version(),
            summary: layout_errors(&report.to_string()),
        },
        LibraryError::InvalidAbiHeader(header) => LoadError::IncompatibleLayout {
            path: path_buf,
            expected: interface_version(),
            summary: format!("built with an incompatible abi_stable ({header:?})"),
        },
        LibraryError::RootModule { err, .. } => LoadError::PluginFailed {
            path: path_buf,
            message: first_error_line(&err.to_string()),
        },
        other => LoadError::Other {
            path: path_buf,
            message: first_error_line(&other.to_string()),
        },
    }
}

/// The platform loader's message without the path it repeats (we print the path already).
fn short_dlerror(message: &str, path: &Path) -> String {
    let message = first_error_line(message);
    let path_prefix = format!("{}: ", path.display());
    match message.find(&path_prefix) {
        Some(start) => message[start + path_prefix.len()..].to_owned(),
        None => message,
    }
}
