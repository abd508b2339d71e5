//! The C-ABI backend: plugins written in C, C++, Zig or anything else that can export a C
//! function, against `crates/taskhost-plugin-api/include/taskhost_plugin.h`.
//!
//! Such a library exports one function, `taskhost_plugin_descriptor`, that returns a pointer
//! to a static descriptor: a magic number, the ABI version, the plugin's name, version and
//! task types (each with its `run` function), and the function that frees the buffers a run
//! hands back. At load the loader checks the magic and the version and copies every string into
//! Rust-owned data; at run time it calls the task's `run` with a [`ThHostContext`] whose
//! callbacks are the `extern "C"` trampolines below, each bridging to the caller's
//! [`RunContext`] through [`HostAdapter`] (which catches a panic of the host's callback, so
//! none unwinds into the plugin's C frames).
//!
//! This is the one module of the crate with `unsafe` code: each item that needs it carries its
//! own `#[allow(unsafe_code)]`, each block a `// SAFETY:` comment. The `#[repr(C)]` types here
//! mirror the header field by field; keep the two in step (the header is the contract).

use std::ffi::{c_char, c_void, CStr};
use std::path::Path;

use abi_stable::std_types::{ROption, RStr};
use taskhost_plugin_api::abi::HostContext;
use taskhost_plugin_api::{FailureKind, LogLevel};

use crate::context::{HostAdapter, RunContext};
use crate::description::{Description, TaskFailure, TaskInfo};
use crate::error::LoadError;

/// The symbol a C plugin exports (`TH_DESCRIPTOR_SYMBOL`).
pub(crate) const DESCRIPTOR_SYMBOL: &str = "taskhost_plugin_descriptor";

/// `TH_PLUGIN_MAGIC`: "THPL" read as a little-endian `u32`.
pub(crate) const MAGIC: u32 = 0x4C50_4854;

/// `TH_ABI_VERSION_MAJOR`: a plugin must declare exactly this major version.
pub(crate) const ABI_MAJOR: u16 = 1;

/// `TH_ABI_VERSION_MINOR`: a plugin may declare this minor version or an older one.
pub(crate) const ABI_MINOR: u16 = 0;

/// The most task types a descriptor may declare: a larger count is a corrupt descriptor.
const MAX_TASKS: usize = 4096;

/// The platform's library handle: on Unix opened `RTLD_NOW | RTLD_LOCAL`.
#[cfg(unix)]
pub(crate) type Library = libloading::os::unix::Library;
/// The platform's library handle.
#[cfg(not(unix))]
pub(crate) type Library = libloading::Library;

/// `th_host_context`.
#[repr(C)]
struct ThHostContext {
    host: *mut c_void,
    is_cancelled: unsafe extern "C" fn(host: *mut c_void) -> bool,
    progress: unsafe extern "C" fn(host: *mut c_void, done: u64, total: u64),
    log: unsafe extern "C" fn(host: *mut c_void, level: i32, message: *const c_char, len: usize),
}

/// `th_output`.
#[repr(C)]
struct ThOutput {
    data: *mut u8,
    len: usize,
}

/// `th_run_fn`.
type RunFn = unsafe extern "C" fn(
    input: *const u8,
    len: usize,
    ctx: *const ThHostContext,
    out: *mut ThOutput,
) -> i32;

/// The descriptor's `free_buffer`.
type FreeFn = unsafe extern "C" fn(data: *mut u8, len: usize);

/// `th_task_type`.
#[repr(C)]
struct ThTaskType {
    name: *const c_char,
    description: *const c_char,
    run: Option<RunFn>,
}

/// `th_plugin_descriptor` (ABI 1.0).
#[repr(C)]
struct ThPluginDescriptor {
    magic: u32,
    abi_major: u16,
    abi_minor: u16,
    name: *const c_char,
    version: *const c_char,
    metadata: *const c_char,
    tasks: *const ThTaskType,
    task_count: usize,
    free_buffer: Option<FreeFn>,
}

/// `th_descriptor_fn`: the exported symbol.
type DescriptorFn = unsafe extern "C" fn() -> *const ThPluginDescriptor;

/// `TH_PROGRESS_TOTAL_UNKNOWN`.
const PROGRESS_TOTAL_UNKNOWN: u64 = u64::MAX;

/// Opens the library at `path` (`RTLD_NOW | RTLD_LOCAL` on Unix: every symbol resolved now,
/// none made visible to later libraries).
#[allow(unsafe_code)]
pub(crate) fn open_library(path: &Path) -> Result<Library, libloading::Error> {
    #[cfg(unix)]
    {
        use libloading::os::unix::{RTLD_LOCAL, RTLD_NOW};
        // SAFETY: opening a library runs its initialisers. The loader only opens files from
        // the folders the host was configured with, which is the trust boundary of plugins.
        unsafe { Library::open(Some(path), RTLD_NOW | RTLD_LOCAL) }
    }
    #[cfg(not(unix))]
    {
        // SAFETY: as above: initialisers of a library from a configured plugin folder.
        unsafe { Library::new(path) }
    }
}

/// Whether `library` exports `symbol` (given without its NUL).
#[allow(unsafe_code)]
pub(crate) fn exports(library: &Library, symbol: &str) -> bool {
    let mut name = symbol.as_bytes().to_vec();
    name.push(0);
    // SAFETY: the symbol is only looked up, never read or called through this pointer type.
    unsafe { library.get::<*const c_void>(&name) }.is_ok()
}

/// A loaded C plugin: its description copied into Rust-owned data and the task functions, which
/// point into a library that is never unloaded.
pub(crate) struct CPlugin {
    description: Description,
    runs: Vec<RunFn>,
    free_buffer: FreeFn,
}

impl CPlugin {
    /// Reads the descriptor of `library` (which exports [`DESCRIPTOR_SYMBOL`]) and checks it.
    #[allow(unsafe_code)]
    pub(crate) fn load(path: &Path, library: &'static Library) -> Result<CPlugin, LoadError> {
        let path_buf = path.to_path_buf();
        let invalid = |reason: String| LoadError::InvalidDescriptor {
            path: path_buf.clone(),
            reason,
        };
        let symbol = format!("{DESCRIPTOR_SYMBOL}\0");
        // SAFETY: the header declares the symbol as `const th_plugin_descriptor *(void)`, which
        // is `DescriptorFn`; the library is never unloaded (`&'static`), so neither is it.
        let describe: DescriptorFn = match unsafe { library.get::<DescriptorFn>(symbol.as_bytes()) }
        {
            Ok(symbol) => *symbol,
            Err(_) => {
                return Err(LoadError::NoRootSymbol {
                    path: path_buf,
                    symbol: abi_stable::library::ROOT_MODULE_LOADER_NAME.to_owned(),
                })
            }
        };
        // SAFETY: the descriptor function takes no arguments and, by the header's contract, is
        // called once at load from one thread and returns a pointer to a static descriptor.
        let descriptor = unsafe { describe() };
        if descriptor.is_null() {
            return Err(LoadError::PluginFailed {
                path: path_buf,
                message: format!("{DESCRIPTOR_SYMBOL}() returned NULL"),
            });
        }
        // SAFETY: every version of the descriptor starts with `magic: u32`; a non-NULL pointer
        // from the descriptor function points at one. Only that field is read before the magic
        // number confirms the layout.
        let magic = unsafe { (*descriptor).magic };
        if magic != MAGIC {
            return Err(LoadError::BadMagic {
                path: path_buf,
                symbol: DESCRIPTOR_SYMBOL.to_owned(),
                expected: MAGIC,
                found: magic,
            });
        }
        // SAFETY: with the magic number right, the version fields follow it in every version.
        let (major, minor) = unsafe { ((*descriptor).abi_major, (*descriptor).abi_minor) };
        if major != ABI_MAJOR || minor > ABI_MINOR {
            return Err(LoadError::IncompatibleCAbi {
                path: path_buf,
                expected: format!("{ABI_MAJOR}.{ABI_MINOR}"),
                found: format!("{major}.{minor}"),
            });
        }
        // SAFETY: a 1.x descriptor with x <= our minor has at least the 1.0 fields, which are
        // exactly `ThPluginDescriptor`; it is static and immutable (header contract).
        let descriptor = unsafe { &*descriptor };
        let text = |field: &str, pointer: *const c_char, optional: bool| {
            if pointer.is_null() {
                return if optional {
                    Ok(String::new())
                } else {
                    Err(invalid(format!(
                        "expected a NUL-terminated UTF-8 `{field}` in the descriptor, found NULL"
                    )))
                };
            }
            // SAFETY: a non-NULL string of the descriptor is NUL-terminated and static (header
            // contract); it is copied out at once.
            let bytes = unsafe { CStr::from_ptr(pointer) };
            bytes.to_str().map(str::to_owned).map_err(|e| {
                invalid(format!(
                    "expected UTF-8 in the descriptor's `{field}`, found invalid bytes ({e})"
                ))
            })
        };
        let name = text("name", descriptor.name, false)?;
        let version = text("version", descriptor.version, false)?;
        let metadata = text("metadata", descriptor.metadata, true)?;
        let Some(free_buffer) = descriptor.free_buffer else {
            return Err(invalid(format!(
                "plugin `{name}`: expected a `free_buffer` function in the descriptor, found NULL"
            )));
        };
        let count = descriptor.task_count;
        if count > MAX_TASKS || (count > 0 && descriptor.tasks.is_null()) {
            return Err(invalid(format!(
                "plugin `{name}`: expected `tasks` to point at `task_count` task types \
                 (at most {MAX_TASKS}), found {count} at {:p}",
                descriptor.tasks
            )));
        }
        let task_types: &[ThTaskType] = if count == 0 {
            &[]
        } else {
            // SAFETY: `tasks` is non-NULL and points at `task_count` static task types (header
            // contract; the count was bounded above).
            unsafe { std::slice::from_raw_parts(descriptor.tasks, count) }
        };
        let mut tasks = Vec::with_capacity(count);
        let mut runs = Vec::with_capacity(count);
        for (index, task) in task_types.iter().enumerate() {
            let field = format!("tasks[{index}].name");
            let task_name = text(&field, task.name, false)?;
            let field = format!("tasks[{index}].description");
            let description = text(&field, task.description, true)?;
            let Some(run) = task.run else {
                return Err(invalid(format!(
                    "plugin `{name}`: expected a `run` function for task `{task_name}`, found NULL"
                )));
            };
            tasks.push(TaskInfo {
                name: task_name,
                description,
            });
            runs.push(run);
        }
        Ok(CPlugin {
            description: Description {
                name,
                version,
                metadata,
                tasks,
            },
            runs,
            free_buffer,
        })
    }

    /// The plugin's description, as read at load.
    pub(crate) fn description(&self) -> &Description {
        &self.description
    }

    /// Runs task `index` (in descriptor order) on `input` in the calling thread.
    #[allow(unsafe_code)]
    pub(crate) fn run(
        &self,
        index: usize,
        input: &[u8],
        context: &dyn RunContext,
    ) -> Result<Vec<u8>, TaskFailure> {
        let adapter = HostAdapter { context };
        let host = ThHostContext {
            host: std::ptr::from_ref(&adapter).cast_mut().cast::<c_void>(),
            is_cancelled: host_is_cancelled,
            progress: host_progress,
            log: host_log,
        };
        let mut output = ThOutput {
            data: std::ptr::null_mut(),
            len: 0,
        };
        // SAFETY: `run` comes from the descriptor of a library that is never unloaded and has
        // the header's `th_run_fn` signature. `input` is valid for `len` bytes for the call;
        // `host` and `adapter` outlive it; `output` is a valid, writable `th_output`.
        let status = unsafe { (self.runs[index])(input.as_ptr(), input.len(), &host, &mut output) };
        let bytes = self.take_output(output);
        if status == 0 {
            return Ok(bytes);
        }
        let task = &self.description.tasks[index].name;
        let message = String::from_utf8_lossy(&bytes).into_owned();
        let (kind, message) = match status {
            1..=4 => {
                let kind = FailureKind::from_code(status as u8);
                if message.is_empty() {
                    let message = match kind {
                        FailureKind::Cancelled => "cancelled by the host".to_owned(),
                        kind => format!("task `{task}` returned `{kind}` without a message"),
                    };
                    (kind, message)
                } else {
                    (kind, message)
                }
            }
            unknown => (
                FailureKind::Failed,
                format!("task `{task}` returned the unknown status {unknown}: {message}"),
            ),
        };
        Err(TaskFailure { kind, message })
    }

    /// Copies the plugin's output into a `Vec` and hands the buffer back to `free_buffer`.
    #[allow(unsafe_code)]
    fn take_output(&self, output: ThOutput) -> Vec<u8> {
        if output.data.is_null() {
            return Vec::new();
        }
        // SAFETY: the plugin set `data` to a buffer of `len` readable bytes that it owns until
        // `free_buffer` below (header contract).
        let bytes = unsafe { std::slice::from_raw_parts(output.data, output.len) }.to_vec();
        // SAFETY: a non-NULL `data` goes back to the plugin's `free_buffer` exactly once, after
        // the last read of it.
        unsafe { (self.free_buffer)(output.data, output.len) };
        bytes
    }
}

/// The adapter behind a context's `host` pointer, or `None` for a NULL pointer.
#[allow(unsafe_code)]
unsafe fn adapter<'a>(host: *mut c_void) -> Option<&'a HostAdapter<'a>> {
    // SAFETY: the caller passes the `host` of a context made by `CPlugin::run`: NULL (a
    // plugin bug) or a `HostAdapter` alive for the whole call to the plugin, and the header only
    // allows the callbacks during that call.
    unsafe { host.cast::<HostAdapter<'a>>().as_ref() }
}

/// `is_cancelled(host)`: a panic of the host's check reads as cancelled ([`HostAdapter`]).
#[allow(unsafe_code)]
unsafe extern "C" fn host_is_cancelled(host: *mut c_void) -> bool {
    // SAFETY: called by the plugin with the `host` pointer of the context it was given.
    match unsafe { adapter(host) } {
        Some(adapter) => HostContext::is_cancelled(adapter),
        None => true,
    }
}

/// `progress(host, done, total)`: a panic of the host's callback is logged and dropped.
#[allow(unsafe_code)]
unsafe extern "C" fn host_progress(host: *mut c_void, done: u64, total: u64) {
    // SAFETY: called by the plugin with the `host` pointer of the context it was given.
    if let Some(adapter) = unsafe { adapter(host) } {
        let total = if total == PROGRESS_TOTAL_UNKNOWN {
            ROption::RNone
        } else {
            ROption::RSome(total)
        };
        HostContext::progress(adapter, done, total);
    }
}

/// `log(host, level, message, len)`: invalid UTF-8 is replaced, an unknown level is `info`, a
/// panic of the host's callback is logged and dropped.
#[allow(unsafe_code)]
unsafe extern "C" fn host_log(host: *mut c_void, level: i32, message: *const c_char, len: usize) {
    // SAFETY: called by the plugin with the `host` pointer of the context it was given.
    let Some(adapter) = (unsafe { adapter(host) }) else {
        return;
    };
    let bytes = if message.is_null() || len == 0 {
        &[][..]
    } else {
        // SAFETY: the header asks for `len` readable bytes at `message` for the call.
        unsafe { std::slice::from_raw_parts(message.cast::<u8>(), len) }
    };
    let text = String::from_utf8_lossy(bytes);
    HostContext::log(adapter, log_level(level), RStr::from_str(&text));
}

/// A C log level (`TH_LOG_*`); anything else is `info`.
fn log_level(level: i32) -> LogLevel {
    match level {
        1 => LogLevel::Error,
        2 => LogLevel::Warn,
        4 => LogLevel::Debug,
        5 => LogLevel::Trace,
        _ => LogLevel::Info,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The constants match the header's (the header is the contract).
    #[test]
    fn constants_match_the_header() {
        let header = include_str!("../../taskhost-plugin-api/include/taskhost_plugin.h");
        let define = |name: &str| {
            header
                .lines()
                .find_map(|line| line.strip_prefix(&format!("#define {name} ")))
                .unwrap_or_else(|| panic!("the header defines {name}"))
                .trim()
                .to_owned()
        };
        assert_eq!(
            define("TH_PLUGIN_MAGIC"),
            format!("{MAGIC:#010X}u").replace("0X", "0x")
        );
        assert_eq!(MAGIC.to_le_bytes(), *b"THPL");
        assert_eq!(define("TH_ABI_VERSION_MAJOR"), ABI_MAJOR.to_string());
        assert_eq!(define("TH_ABI_VERSION_MINOR"), ABI_MINOR.to_string());
        assert_eq!(
            define("TH_DESCRIPTOR_SYMBOL"),
            format!("\"{DESCRIPTOR_SYMBOL}\"")
        );
    }

    #[test]
    fn log_levels_map_like_the_header_says() {
        let levels: Vec<_> = (0..=6).map(log_level).collect();
        assert_eq!(
            levels,
            [
                LogLevel::Info,
                LogLevel::Error,
                LogLevel::Warn,
                LogLevel::Info,
                LogLevel::Debug,
                LogLevel::Trace,
                LogLevel::Info
            ]
        );
    }
}
