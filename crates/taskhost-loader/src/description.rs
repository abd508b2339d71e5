//! What a plugin says about itself and its tasks, whatever its ABI: the plugin's
//! [`Description`], each [`TaskInfo`], the [`PluginAbi`] it speaks, and the [`TaskFailure`] a
//! task ends with when it gives no output.

use std::fmt;

use taskhost_plugin_api::FailureKind;

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

/// How a plugin describes itself, in Rust-owned data, whatever its backend.
#[derive(Debug, Clone)]
pub(crate) struct Description {
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) metadata: String,
    pub(crate) tasks: Vec<TaskInfo>,
}
