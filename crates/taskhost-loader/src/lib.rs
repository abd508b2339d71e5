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

// The modules form layers, bottom first; a module uses only modules of lower layers:
// 1. `error` (why a plugin did not load), `description` (what a plugin says about itself),
//    `elf`, `exit_hook`, `stdio_probe`;
// 2. `trust` (which files may be opened, pins), `context` (what a running task sees);
// 3. `c_abi` (the C backend, the crate's `unsafe`);
// 4. `backend` (abi_stable or C, behind one enum);
// 5. `plugin` (`LoadedPlugin`, `PluginTask`);
// 6. `load` (`PluginSet::load`).
// This file sits on top: the crate docs and the re-exports.

mod backend;
mod c_abi;
mod context;
mod description;
mod elf;
mod error;
pub mod exit_hook;
mod load;
mod plugin;
pub mod stdio_probe;
mod trust;

pub use context::{RunContext, TracingContext};
pub use description::{PluginAbi, TaskFailure, TaskInfo};
pub use error::{Distrust, LoadError};
pub use load::{LoadOptions, PluginSet};
pub use plugin::{LoadedPlugin, PluginTask};
pub use taskhost_plugin_api::{FailureKind, LogLevel, WorkItem};
pub use trust::parse_pin;
