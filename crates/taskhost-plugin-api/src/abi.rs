//! The frozen ABI: the root module every plugin exports, the FFI types it passes, and the host
//! context a running task talks to.
//!
//! Plugin authors normally never touch this module: [`export_plugin!`](crate::export_plugin)
//! builds the root module from a [`Plugin`](crate::Plugin). The host's loader uses it directly.

use abi_stable::{
    declare_root_module_statics,
    library::RootModule,
    package_version_strings, sabi_trait,
    sabi_types::VersionStrings,
    std_types::{ROption, RResult, RSlice, RStr, RString, RVec},
    StableAbi,
};

/// The name under which abi_stable exports the root module's loader.
///
/// `export_plugin!` writes this literal into `#[export_name]`; a unit test keeps it equal to
/// `abi_stable::library::ROOT_MODULE_LOADER_NAME`.
#[doc(hidden)]
pub const ROOT_MODULE_SYMBOL: &str = "_1as_0lib_1header_0root_bmodule_bloader";

/// The root module of a plugin: the table of functions the host calls.
///
/// This is an abi_stable *prefix type*: the host reaches it through [`PluginModuleRef`]. Its
/// fields are frozen for the major version of this crate.
///
/// # Compatibility rule (for plugin authors)
///
/// - A plugin must be built against the same `taskhost-plugin-api` major version as the host
///   (for `0.x`, the same minor version). The loader checks this first and refuses others
///   with an error naming both versions.
/// - abi_stable then compares layouts. It rejects a plugin built against an *older* revision
///   of this struct than the host's ("too many fields": the host's table is longer than the
///   plugin's). So fields are never added here within a version: the interface evolves
///   through the JSON payloads, [`PluginDescriptor::metadata`] and new
///   [`FailureKind`](crate::FailureKind) codes (unknown codes read as `failed`).
/// - `expand` is the last prefix field (`#[sabi(last_prefix_field)]`): every field up to it is
///   guaranteed present in every plugin, so the host reads them without an `Option`.
#[repr(C)]
#[derive(StableAbi, Debug)]
#[sabi(kind(Prefix(prefix_ref = PluginModuleRef)))]
pub struct PluginModule {
    /// Describes the plugin: its name, version and task types.
    pub describe: extern "C" fn() -> RResult<PluginDescriptor, RawFailure>,

    /// Runs the task type named `task` (without the plugin prefix) on `input` (JSON by
    /// convention) and returns its output bytes (JSON by convention) or a failure.
    pub run_task: extern "C" fn(
        task: RStr<'_>,
        input: RSlice<'_, u8>,
        context: HostContextRef<'_>,
    ) -> RResult<RVec<u8>, RawFailure>,

    /// Expands a job description into work items: a JSON array of
    /// `{"id"?: string, "task": "plugin/task", "input": any}` as UTF-8 bytes.
    ///
    /// `None` when the plugin does not expand jobs.
    #[sabi(last_prefix_field)]
    pub expand: Option<
        extern "C" fn(
            job: RStr<'_>,
            params: RSlice<'_, u8>,
            context: HostContextRef<'_>,
        ) -> RResult<RVec<u8>, RawFailure>,
    >,
}

impl RootModule for PluginModuleRef {
    declare_root_module_statics! {PluginModuleRef}

    const BASE_NAME: &'static str = "taskhost_plugin";
    const NAME: &'static str = "taskhost-plugin-api";
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}

/// What a plugin says about itself, returned by [`PluginModule::describe`].
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct PluginDescriptor {
    /// The plugin's name: the `plugin` part of `plugin/task`. Unique among loaded plugins.
    pub name: RString,
    /// The plugin's own version (free text, semver by convention).
    pub version: RString,
    /// The task types the plugin can run.
    pub tasks: RVec<TaskDescriptor>,
    /// A JSON object with anything later revisions of the interface need to say
    /// (empty string when there is nothing). The extension point that keeps the root module frozen.
    pub metadata: RString,
}

/// One task type of a plugin.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct TaskDescriptor {
    /// The task's name: the `task` part of `plugin/task`.
    pub name: RString,
    /// A one-line description.
    pub description: RString,
}

/// A task failure as it crosses the ABI: a [`FailureKind`](crate::FailureKind) code and a message.
///
/// The kind is a plain code (not an enum) so that a later revision may add kinds without
/// changing the layout; a code the host does not know reads as
/// [`FailureKind::Failed`](crate::FailureKind::Failed).
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct RawFailure {
    /// [`FailureKind::code`](crate::FailureKind::code) of the failure.
    pub kind: u8,
    /// A human-readable message.
    pub message: RString,
}

/// The level of a log record sent through [`HostContext::log`].
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    /// Something failed.
    Error = 1,
    /// Something looks wrong.
    Warn = 2,
    /// Progress worth telling an operator.
    Info = 3,
    /// Details for a developer.
    Debug = 4,
    /// Everything.
    Trace = 5,
}

impl LogLevel {
    /// The level's lowercase name, as `tracing` spells it.
    ///
    /// ```
    /// assert_eq!(taskhost_plugin_api::LogLevel::Warn.as_str(), "warn");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

pub use host_context::*;

// SAFETY: `#[sabi_trait]` expands to the unsafe vtable glue of an FFI-safe trait object, which
// abi_stable vouches for; this module holds that one trait and nothing written by hand.
#[allow(unsafe_code, non_local_definitions)]
mod host_context {
    use super::*;

    /// What the host offers a running task: cancellation, progress and logging.
    ///
    /// A plugin's own `tracing` or `log` calls never reach the host (a `cdylib` carries its own copy
    /// of their globals), so every log record a plugin wants the host to see goes through here.
    /// Plugin authors use it through [`TaskContext`](crate::TaskContext).
    #[sabi_trait]
    pub trait HostContext {
        /// Whether the host asked the task to stop. Long tasks poll this and return
        /// [`FailureKind::Cancelled`](crate::FailureKind::Cancelled) when it becomes true.
        fn is_cancelled(&self) -> bool;

        /// Reports progress: `done` units of `total` (when known).
        fn progress(&self, done: u64, total: ROption<u64>);

        /// Sends a log record to the host's tracing subscriber.
        #[sabi(last_prefix_field)]
        fn log(&self, level: LogLevel, message: RStr<'_>);
    }
}

/// The host context as a borrowed FFI trait object.
pub type HostContextRef<'a> = HostContext_TO<'a, abi_stable::sabi_types::RRef<'a, ()>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_module_symbol_matches_abi_stable() {
        assert_eq!(
            ROOT_MODULE_SYMBOL,
            abi_stable::library::ROOT_MODULE_LOADER_NAME
        );
    }
}
