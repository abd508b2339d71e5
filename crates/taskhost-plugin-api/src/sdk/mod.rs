//! The SDK for plugin authors: [`Plugin`], [`TaskContext`], [`TaskError`] and the glue that
//! [`export_plugin!`](crate::export_plugin) uses to turn them into the root module.

mod context;
mod error;
mod glue;
#[cfg(test)]
mod tests;

pub use context::TaskContext;
pub use error::{FailureKind, TaskError};
pub use glue::__private;
use glue::*;

use std::collections::BTreeMap;
use std::fmt;

use abi_stable::sabi_trait::TD_Opaque;

use crate::abi::{HostContextRef, HostContext_TO, PluginDescriptor, TaskDescriptor};

type RawTaskFn = dyn Fn(&[u8], &TaskContext<'_>) -> Result<Vec<u8>, TaskError> + Send + Sync;
type RawExpandFn =
    dyn Fn(&str, &[u8], &TaskContext<'_>) -> Result<Vec<u8>, TaskError> + Send + Sync;
#[cfg(feature = "json")]
type ItemsFn = dyn Fn(&str, &[u8], &TaskContext<'_>) -> Result<crate::pages::WorkItems, TaskError>
    + Send
    + Sync;

struct TaskEntry {
    description: String,
    run: Box<RawTaskFn>,
}

/// A plugin under construction: its name, version, task types and optional expand step.
///
/// Build one in a function and hand that function to [`export_plugin!`](crate::export_plugin).
/// Task names must be unique within the plugin and must not contain `/`.
///
/// ```
/// use taskhost_plugin_api::{Plugin, TaskContext, TaskError};
///
/// fn shout(input: String, _ctx: &TaskContext<'_>) -> Result<String, TaskError> {
///     Ok(input.to_uppercase())
/// }
///
/// let plugin = Plugin::new("demo", "0.1.0").task("shout", "upper-cases a string", shout);
/// assert_eq!(plugin.task_names().collect::<Vec<_>>(), ["shout"]);
/// ```
pub struct Plugin {
    name: String,
    version: String,
    metadata: String,
    tasks: BTreeMap<String, TaskEntry>,
    order: Vec<String>,
    expand: Option<Box<RawExpandFn>>,
    /// The same expand step, one item at a time, for a host that pages through it.
    #[cfg(feature = "json")]
    expand_items: Option<Box<ItemsFn>>,
    /// The page-by-page expansions under way.
    #[cfg(feature = "json")]
    expansions: crate::pages::Expansions,
    /// The job names the expand step takes (`plugin/JOB`); empty: any.
    expand_jobs: Vec<String>,
    /// Per task, the input field a plain line or argument fills (`taskhost run TASK ARG…`).
    arguments: BTreeMap<String, String>,
}

impl fmt::Debug for Plugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.name)
            .field("version", &self.version)
            .field("tasks", &self.order)
            .field("can_expand", &self.expand.is_some())
            .finish()
    }
}

impl Plugin {
    /// A plugin with no task types yet. `name` is the `plugin` part of `plugin/task`;
    /// `version` is usually `env!("CARGO_PKG_VERSION")`.
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> Plugin {
        Plugin {
            name: name.into(),
            version: version.into(),
            metadata: String::new(),
            tasks: BTreeMap::new(),
            order: Vec::new(),
            expand: None,
            #[cfg(feature = "json")]
            expand_items: None,
            #[cfg(feature = "json")]
            expansions: Default::default(),
            expand_jobs: Vec::new(),
            arguments: BTreeMap::new(),
        }
    }

    /// Names the input field of `task` that a plain line or argument fills, so that
    /// `taskhost run plugin/task a.txt b.txt` (or `--lines files.txt`) runs the task on
    /// `{"field": "a.txt"}`, then `{"field": "b.txt"}`. Without it each line is handed over
    /// as a JSON string. The host reads it from the plugin's metadata.
    ///
    /// ```
    /// use taskhost_plugin_api::{Plugin, TaskContext, TaskError};
    ///
    /// fn size(input: serde_json::Value, _ctx: &TaskContext<'_>) -> Result<u64, TaskError> {
    ///     let path = input["path"].as_str().unwrap_or_default();
    ///     std::fs::metadata(path).map(|m| m.len()).map_err(|e| TaskError::failed(e.to_string()))
    /// }
    ///
    /// let plugin = Plugin::new("files", "0.1.0")
    ///     .task("size", "the size of the file at `path`", size)
    ///     .task_argument("size", "path");
    /// # let _ = plugin;
    /// ```
    ///
    /// # Panics
    ///
    /// If `task` is not a task of the plugin (add the task first).
    pub fn task_argument(mut self, task: &str, field: &str) -> Plugin {
        assert!(
            self.tasks.contains_key(task),
            "task_argument: plugin `{}` has no task `{task}` (add it first)",
            self.name
        );
        self.arguments.insert(task.to_owned(), field.to_owned());
        self
    }

    /// Names the jobs the expand step takes: `--expand plugin/JOB` with another job is refused
    /// (an `invalid_input` failure that lists these) before the expand step runs. Without it,
    /// any job name reaches the expand step, which may then tell its jobs apart.
    ///
    /// ```
    /// use taskhost_plugin_api::Plugin;
    ///
    /// let plugin = Plugin::new("files", "0.1.0")
    ///     .raw_expand(|_job, _params, _ctx| Ok(b"[]".to_vec()))
    ///     .expand_jobs(["list"]);
    /// assert!(plugin.expand_detached("list", b"{}").is_ok());
    /// let error = plugin.expand_detached("lsit", b"{}").unwrap_err();
    /// assert_eq!(error.message(), "plugin `files` has no job `lsit` to expand (it has: list)");
    /// ```
    pub fn expand_jobs<I, S>(mut self, jobs: I) -> Plugin
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.expand_jobs = jobs.into_iter().map(Into::into).collect();
        self
    }

    /// Attaches a JSON object of metadata for the host (empty by default).
    pub fn metadata(mut self, json: impl Into<String>) -> Plugin {
        self.metadata = json.into();
        self
    }

    /// Adds a task type over raw bytes: the input as the host sent it, the output as the host
    /// will record it (JSON by convention).
    ///
    /// # Panics
    ///
    /// If the name is empty, contains `/`, or is already taken.
    pub fn raw_task<F>(mut self, name: &str, description: &str, run: F) -> Plugin
    where
        F: Fn(&[u8], &TaskContext<'_>) -> Result<Vec<u8>, TaskError> + Send + Sync + 'static,
    {
        assert!(
            !name.is_empty() && !name.contains('/'),
            "task name `{name}` must be non-empty and contain no `/`"
        );
        assert!(
            !self.tasks.contains_key(name),
            "task `{name}` is defined twice"
        );
        self.order.push(name.to_owned());
        self.tasks.insert(
            name.to_owned(),
            TaskEntry {
                description: description.to_owned(),
                run: Box::new(run),
            },
        );
        self
    }

    /// Adds a typed task type: the input is parsed from JSON into `I` (a parse error is an
    /// `invalid_input` failure) and the output `O` is written back as JSON.
    ///
    /// # Panics
    ///
    /// If the name is empty, contains `/`, or is already taken.
    #[cfg(feature = "json")]
    pub fn task<I, O, F>(self, name: &str, description: &str, run: F) -> Plugin
    where
        I: serde::de::DeserializeOwned,
        O: serde::Serialize,
        F: Fn(I, &TaskContext<'_>) -> Result<O, TaskError> + Send + Sync + 'static,
    {
        self.raw_task(name, description, move |input, ctx| {
            let input: I = serde_json::from_slice(input)
                .map_err(|e| TaskError::invalid_input(format!("input: {e}")))?;
            let output = run(input, ctx)?;
            serde_json::to_vec(&output)
                .map_err(|e| TaskError::failed(format!("serializing the output: {e}")))
        })
    }

    /// Sets the expand step over raw bytes: job name and parameters in, a JSON array of work
    /// items (see [`WorkItem`]) out.
    pub fn raw_expand<F>(mut self, expand: F) -> Plugin
    where
        F: Fn(&str, &[u8], &TaskContext<'_>) -> Result<Vec<u8>, TaskError> + Send + Sync + 'static,
    {
        self.expand = Some(Box::new(expand));
        #[cfg(feature = "json")]
        {
            self.expand_items = None;
        }
        self
    }

    /// Sets a typed expand step: the parameters are parsed from JSON into `P` and the returned
    /// work items are written as a JSON array.
    ///
    /// The host takes the items a page at a time (see [`Plugin::expand_iter`]), but this
    /// step makes them all at once: for a large expansion, prefer `expand_iter`.
    #[cfg(feature = "json")]
    pub fn expand<P, F>(self, expand: F) -> Plugin
    where
        P: serde::de::DeserializeOwned,
        F: Fn(&str, P, &TaskContext<'_>) -> Result<Vec<WorkItem>, TaskError>
            + Send
            + Sync
            + 'static,
    {
        self.expand_iter(move |job, params: P, ctx| {
            Ok(expand(job, params, ctx)?.into_iter().map(Ok))
        })
    }

    /// Sets a typed expand step that makes its work items one at a time: the host takes them a
    /// page at a time, as its bounded window has room, so a job that expands to millions of
    /// items never has them all in memory (the iterator must own what it needs: it outlives
    /// the call). An `Err` item ends the expansion with that failure.
    ///
    /// ```
    /// use taskhost_plugin_api::{Plugin, WorkItem};
    ///
    /// #[derive(serde::Deserialize)]
    /// struct Range {
    ///     to: u64,
    /// }
    ///
    /// let plugin = Plugin::new("numbers", "0.1.0")
    ///     .raw_task("square", "squares a number", |input, _ctx| Ok(input.to_vec()))
    ///     .expand_iter(|_job, range: Range, _ctx| {
    ///         Ok((1..=range.to).map(|n| {
    ///             Ok(WorkItem {
    ///                 id: None,
    ///                 task: "numbers/square".into(),
    ///                 input: serde_json::json!(n),
    ///             })
    ///         }))
    ///     });
    /// let items = plugin.expand_detached("squares", br#"{"to": 3}"#).unwrap();
    /// assert_eq!(items, br#"[{"task":"numbers/square","input":1},{"task":"numbers/square","input":2},{"task":"numbers/square","input":3}]"#);
    /// ```
    #[cfg(feature = "json")]
    pub fn expand_iter<P, F, I>(mut self, expand: F) -> Plugin
    where
        P: serde::de::DeserializeOwned,
        F: Fn(&str, P, &TaskContext<'_>) -> Result<I, TaskError> + Send + Sync + 'static,
        I: IntoIterator<Item = Result<WorkItem, TaskError>>,
        I::IntoIter: Send + 'static,
    {
        let items = move |job: &str, params: &[u8], ctx: &TaskContext<'_>| {
            let params: P = serde_json::from_slice(params)
                .map_err(|e| TaskError::invalid_input(format!("parameters of `{job}`: {e}")))?;
            let items = expand(job, params, ctx)?.into_iter();
            Ok(Box::new(items) as crate::pages::WorkItems)
        };
        let items: std::sync::Arc<ItemsFn> = std::sync::Arc::new(items);
        let one_shot = std::sync::Arc::clone(&items);
        self = self.raw_expand(move |job, params, ctx| {
            let all = one_shot(job, params, ctx)?.collect::<Result<Vec<WorkItem>, _>>()?;
            serde_json::to_vec(&all)
                .map_err(|e| TaskError::failed(format!("serializing work items: {e}")))
        });
        self.expand_items = Some(Box::new(move |job, params, ctx| items(job, params, ctx)));
        self
    }

    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The task names, in the order they were added.
    pub fn task_names(&self) -> impl Iterator<Item = &str> + '_ {
        self.order.iter().map(String::as_str)
    }

    /// Whether the plugin has an expand step.
    pub fn can_expand(&self) -> bool {
        self.expand.is_some()
    }

    /// Runs a task directly, without the ABI (for the plugin's own tests and benchmarks).
    /// Panics are not caught here.
    pub fn run(
        &self,
        task: &str,
        input: &[u8],
        ctx: &TaskContext<'_>,
    ) -> Result<Vec<u8>, TaskError> {
        match self.tasks.get(task) {
            Some(entry) => (entry.run)(input, ctx),
            None => Err(TaskError::invalid_input(format!(
                "plugin `{}` has no task `{task}` (it has: {})",
                self.name,
                self.order.join(", ")
            ))),
        }
    }

    /// Runs a task directly with a context that is never cancelled and prints log records to
    /// stderr: for a plugin's own unit tests. Panics are not caught here.
    ///
    /// ```
    /// use taskhost_plugin_api::{Plugin, TaskContext, TaskError};
    ///
    /// fn double(n: u64, _ctx: &TaskContext<'_>) -> Result<u64, TaskError> {
    ///     Ok(n * 2)
    /// }
    ///
    /// let plugin = Plugin::new("math", "0.1.0").task("double", "doubles a number", double);
    /// assert_eq!(plugin.run_detached("double", b"21").unwrap(), b"42");
    /// ```
    pub fn run_detached(&self, task: &str, input: &[u8]) -> Result<Vec<u8>, TaskError> {
        let host: HostContextRef<'_> = HostContext_TO::from_ptr(&DetachedHost, TD_Opaque);
        self.run(task, input, &TaskContext::new(host))
    }

    /// Runs the expand step directly, like [`Plugin::run_detached`]; an `invalid_input` failure
    /// when the plugin has none.
    pub fn expand_detached(&self, job: &str, params: &[u8]) -> Result<Vec<u8>, TaskError> {
        let host: HostContextRef<'_> = HostContext_TO::from_ptr(&DetachedHost, TD_Opaque);
        self.expand_with(job, params, &TaskContext::new(host))
    }

    fn expand_with(
        &self,
        job: &str,
        params: &[u8],
        ctx: &TaskContext<'_>,
    ) -> Result<Vec<u8>, TaskError> {
        if !self.expand_jobs.is_empty() && !self.expand_jobs.iter().any(|known| known == job) {
            return Err(TaskError::invalid_input(format!(
                "plugin `{}` has no job `{job}` to expand (it has: {})",
                self.name,
                self.expand_jobs.join(", ")
            )));
        }
        #[cfg(feature = "json")]
        if let Some(items) = &self.expand_items {
            if let Some(request) = crate::pages::PageRequest::parse(params) {
                let start = if request.is_first() {
                    let params = serde_json::to_vec(&request.params)
                        .map_err(|e| TaskError::failed(e.to_string()))?;
                    Some(items(job, &params, ctx)?)
                } else {
                    None
                };
                return self.expansions.page(&request, start);
            }
        }
        match &self.expand {
            Some(expand) => expand(job, params, ctx),
            None => Err(TaskError::invalid_input(format!(
                "plugin `{}` does not expand jobs",
                self.name
            ))),
        }
    }

    /// The descriptor the host reads; `debug_build` is `cfg!(debug_assertions)` of the crate
    /// that exported the plugin (see [`export_plugin!`](crate::export_plugin)).
    fn descriptor(&self, debug_build: bool) -> PluginDescriptor {
        PluginDescriptor {
            name: self.name.as_str().into(),
            version: self.version.as_str().into(),
            tasks: self
                .order
                .iter()
                .map(|name| TaskDescriptor {
                    name: name.as_str().into(),
                    description: self.tasks[name].description.as_str().into(),
                })
                .collect(),
            metadata: self.metadata_with_facts(debug_build).into(),
        }
    }

    /// The author's metadata with the SDK's facts under the key `"taskhost"`:
    /// `{"taskhost": {"debug_build": true, "arguments": {"task": "field"}, "expand_jobs": […]}, …}`.
    /// Metadata that is not a JSON object is left as it is.
    fn metadata_with_facts(&self, debug_build: bool) -> String {
        let mut facts = format!("\"debug_build\":{debug_build}");
        if !self.arguments.is_empty() {
            let pairs: Vec<String> = self
                .arguments
                .iter()
                .map(|(task, field)| format!("{}:{}", json_string(task), json_string(field)))
                .collect();
            facts.push_str(&format!(",\"arguments\":{{{}}}", pairs.join(",")));
        }
        if !self.expand_jobs.is_empty() {
            let jobs: Vec<String> = self.expand_jobs.iter().map(|j| json_string(j)).collect();
            facts.push_str(&format!(",\"expand_jobs\":[{}]", jobs.join(",")));
        }
        #[cfg(feature = "json")]
        if self.expand_items.is_some() {
            facts.push_str(",\"expand_pages\":true");
        }
        let ours = format!("\"taskhost\":{{{facts}}}");
        let theirs = self.metadata.trim();
        match theirs.strip_prefix('{') {
            None if theirs.is_empty() => format!("{{{ours}}}"),
            None => self.metadata.clone(),
            Some(rest) if rest.trim_start().starts_with('}') => format!("{{{ours}}}"),
            Some(rest) => format!("{{{ours},{rest}"),
        }
    }
}

/// `text` as a JSON string literal.
fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// One work item produced by an expand step: serialized as
/// `{"id": ..., "task": "plugin/task", "input": ...}` (`id` left out when `None`).
#[cfg(feature = "json")]
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct WorkItem {
    /// An optional identifier for the outcome record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The full task name, `plugin/task`.
    pub task: String,
    /// The task's input.
    pub input: serde_json::Value,
}
