//! A plugin that loaded ([`LoadedPlugin`]: its name, version, file, checksum, tasks and expand
//! step) and its runnable tasks ([`PluginTask`]), whatever backend runs them.

use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use taskhost_plugin_api::{FailureKind, WorkItem};

use crate::backend::Backend;
use crate::context::{RunContext, TracingContext};
use crate::description::{PluginAbi, TaskFailure, TaskInfo};
use crate::trust;

/// What a [`LoadedPlugin`] and its [`PluginTask`]s share.
pub(crate) struct PluginInner {
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) path: PathBuf,
    pub(crate) metadata: String,
    pub(crate) tasks: Vec<TaskInfo>,
    /// `plugin/task` of each of `tasks`.
    pub(crate) full_names: Vec<String>,
    pub(crate) backend: Backend,
    /// The descriptor the library was loaded through (never closed, see `trust`).
    pub(crate) file: &'static File,
    /// `sha256:<hex>` of `file`, computed when first asked for (or when pins are checked).
    pub(crate) sha256: OnceLock<String>,
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
    pub(crate) fn new(inner: PluginInner) -> LoadedPlugin {
        LoadedPlugin {
            inner: Arc::new(inner),
        }
    }

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

impl<'a> TracingContext<'a> {
    /// A context for `task` that is never cancelled.
    pub fn new(task: &'a PluginTask) -> TracingContext<'a> {
        TracingContext::with_names(task.plugin_name(), task.full_name())
    }
}
