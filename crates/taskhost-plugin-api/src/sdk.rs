//! The SDK for plugin authors: [`Plugin`], [`TaskContext`], [`TaskError`] and the glue that
//! [`export_plugin!`](crate::export_plugin) uses to turn them into the root module.

use std::any::Any;
use std::collections::BTreeMap;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{RNone, ROption, RResult, RSlice, RSome, RStr, RVec};

use crate::abi::{
    HostContext, HostContextRef, HostContext_TO, LogLevel, PluginDescriptor, RawFailure,
    TaskDescriptor,
};

/// Why a task did not produce an output.
///
/// The same kinds are used by the host to report outcomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// The task ran and reported an error.
    Failed,
    /// The task panicked; the panic was caught inside the plugin.
    Panicked,
    /// The task stopped because the host asked it to.
    Cancelled,
    /// The input could not be understood (bad JSON, missing field, unknown task).
    InvalidInput,
}

impl FailureKind {
    /// The code that carries this kind across the ABI.
    ///
    /// ```
    /// use taskhost_plugin_api::FailureKind;
    /// assert_eq!(FailureKind::from_code(FailureKind::Panicked.code()), FailureKind::Panicked);
    /// ```
    pub fn code(self) -> u8 {
        match self {
            FailureKind::Failed => 1,
            FailureKind::Panicked => 2,
            FailureKind::Cancelled => 3,
            FailureKind::InvalidInput => 4,
        }
    }

    /// The kind for an ABI code; a code this version does not know reads as `Failed`.
    ///
    /// ```
    /// use taskhost_plugin_api::FailureKind;
    /// assert_eq!(FailureKind::from_code(200), FailureKind::Failed);
    /// ```
    pub fn from_code(code: u8) -> FailureKind {
        match code {
            2 => FailureKind::Panicked,
            3 => FailureKind::Cancelled,
            4 => FailureKind::InvalidInput,
            _ => FailureKind::Failed,
        }
    }

    /// The kind's name as outcome records spell it: `failed`, `panicked`, `cancelled`,
    /// `invalid_input`.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Failed => "failed",
            FailureKind::Panicked => "panicked",
            FailureKind::Cancelled => "cancelled",
            FailureKind::InvalidInput => "invalid_input",
        }
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error a task function returns: a [`FailureKind`] and a message.
///
/// `?` works on I/O errors (they become `failed`) and on strings.
///
/// ```
/// use taskhost_plugin_api::{FailureKind, TaskError};
/// let error = TaskError::invalid_input("`n` must be positive");
/// assert_eq!(error.kind(), FailureKind::InvalidInput);
/// assert_eq!(error.message(), "`n` must be positive");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskError {
    kind: FailureKind,
    message: String,
}

impl TaskError {
    /// A failure of the given kind.
    pub fn new(kind: FailureKind, message: impl Into<String>) -> TaskError {
        TaskError {
            kind,
            message: message.into(),
        }
    }

    /// The task ran and failed.
    pub fn failed(message: impl Into<String>) -> TaskError {
        TaskError::new(FailureKind::Failed, message)
    }

    /// The input was not acceptable.
    pub fn invalid_input(message: impl Into<String>) -> TaskError {
        TaskError::new(FailureKind::InvalidInput, message)
    }

    /// The task stopped because the host asked it to.
    pub fn cancelled() -> TaskError {
        TaskError::new(FailureKind::Cancelled, "cancelled by the host")
    }

    /// The kind of failure.
    pub fn kind(&self) -> FailureKind {
        self.kind
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    fn into_raw(self) -> RawFailure {
        RawFailure {
            kind: self.kind.code(),
            message: self.message.into(),
        }
    }
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

impl std::error::Error for TaskError {}

impl From<std::io::Error> for TaskError {
    fn from(error: std::io::Error) -> TaskError {
        TaskError::failed(error.to_string())
    }
}

impl From<String> for TaskError {
    fn from(message: String) -> TaskError {
        TaskError::failed(message)
    }
}

impl From<&str> for TaskError {
    fn from(message: &str) -> TaskError {
        TaskError::failed(message)
    }
}

/// What a running task sees of the host: cancellation, progress and logging.
///
/// Log through [`TaskContext::info`] and friends, not through `tracing` or `log` in the plugin:
/// those would write to the plugin's own, unconfigured copy of their globals.
pub struct TaskContext<'a> {
    host: HostContextRef<'a>,
}

impl fmt::Debug for TaskContext<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not `is_cancelled()`: asking the host can have effects (an executor counts a seen stop
        // request as observed).
        f.debug_struct("TaskContext").finish_non_exhaustive()
    }
}

impl<'a> TaskContext<'a> {
    /// Wraps the host's context. Used by the generated entry points and by tests that drive a
    /// task function without a host.
    pub fn new(host: HostContextRef<'a>) -> TaskContext<'a> {
        TaskContext { host }
    }

    /// Whether the host asked this task to stop.
    pub fn is_cancelled(&self) -> bool {
        self.host.is_cancelled()
    }

    /// `Err(TaskError::cancelled())` once the host asked this task to stop: `ctx.check_cancelled()?`
    /// in a loop is the usual way to honour cancellation.
    pub fn check_cancelled(&self) -> Result<(), TaskError> {
        if self.is_cancelled() {
            Err(TaskError::cancelled())
        } else {
            Ok(())
        }
    }

    /// Reports progress: `done` units of `total` (when known).
    pub fn progress(&self, done: u64, total: Option<u64>) {
        let total = match total {
            Some(total) => RSome(total),
            None => RNone,
        };
        self.host.progress(done, total);
    }

    /// Sends a log record to the host's subscriber, tagged with the plugin and task names.
    pub fn log(&self, level: LogLevel, message: impl AsRef<str>) {
        self.host.log(level, RStr::from_str(message.as_ref()));
    }

    /// Logs at error level.
    pub fn error(&self, message: impl AsRef<str>) {
        self.log(LogLevel::Error, message);
    }

    /// Logs at warn level.
    pub fn warn(&self, message: impl AsRef<str>) {
        self.log(LogLevel::Warn, message);
    }

    /// Logs at info level.
    pub fn info(&self, message: impl AsRef<str>) {
        self.log(LogLevel::Info, message);
    }

    /// Logs at debug level.
    pub fn debug(&self, message: impl AsRef<str>) {
        self.log(LogLevel::Debug, message);
    }

    /// Logs at trace level.
    pub fn trace(&self, message: impl AsRef<str>) {
        self.log(LogLevel::Trace, message);
    }
}

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

/// The host of [`Plugin::run_detached`]: never cancelled, logs to stderr.
struct DetachedHost;

impl HostContext for DetachedHost {
    fn is_cancelled(&self) -> bool {
        false
    }

    fn progress(&self, _done: u64, _total: ROption<u64>) {}

    fn log(&self, level: LogLevel, message: RStr<'_>) {
        eprintln!("[{}] {message}", level.as_str());
    }
}

/// The message of a caught panic payload.
fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(message) = payload.downcast_ref::<&str>() {
        (*message).to_owned()
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}

/// Runs `body`, turning a panic into a `panicked` failure so that it never unwinds into the
/// host (abi_stable ends the process when a panic reaches one of its `extern "C"` shims).
fn guarded<T>(body: impl FnOnce() -> Result<T, TaskError>) -> RResult<T, RawFailure> {
    guarded_at(body).0
}

/// [`guarded`], and where it panicked, if it did: the panic hook stays quiet meanwhile (see
/// `crate::panics`), so the caller reports the panic through the host's log.
fn guarded_at<T>(
    body: impl FnOnce() -> Result<T, TaskError>,
) -> (RResult<T, RawFailure>, Option<String>) {
    let (result, location) = crate::panics::quietly(|| catch_unwind(AssertUnwindSafe(body)));
    let result = match result {
        Ok(Ok(value)) => RResult::ROk(value),
        Ok(Err(error)) => RResult::RErr(error.into_raw()),
        Err(payload) => RResult::RErr(
            TaskError::new(FailureKind::Panicked, panic_message(payload.as_ref())).into_raw(),
        ),
    };
    (result, location)
}

/// Runs one entry point's `body` guarded; a panic is logged through the host's context (an
/// error, with where it happened), as the plugin's own stderr would have shown it.
fn guarded_logged<T>(
    what: &str,
    ctx: &TaskContext<'_>,
    body: impl FnOnce() -> Result<T, TaskError>,
) -> RResult<T, RawFailure> {
    let (result, location) = guarded_at(body);
    if let (RResult::RErr(failure), Some(location)) = (&result, location) {
        ctx.error(format!(
            "{what} panicked at {location}: {}",
            failure.message
        ));
    }
    result
}

/// The glue behind `export_plugin!`. Not a stable API: only the macro calls it.
#[doc(hidden)]
pub mod __private {
    use std::sync::OnceLock;

    pub use abi_stable;

    use super::*;
    use crate::abi::{PluginModule, PluginModuleRef};
    use abi_stable::prefix_type::PrefixTypeTrait;

    /// Builds the plugin once; a panic in the constructor is reported by every entry point.
    pub fn plugin(
        cell: &'static OnceLock<Result<Plugin, String>>,
        constructor: fn() -> Plugin,
    ) -> Result<&'static Plugin, TaskError> {
        let built = cell.get_or_init(|| {
            catch_unwind(constructor).map_err(|payload| panic_message(payload.as_ref()))
        });
        built.as_ref().map_err(|message| {
            TaskError::new(
                FailureKind::Panicked,
                format!("building the plugin: {message}"),
            )
        })
    }

    /// `PluginModule::describe`; `debug_build` is `cfg!(debug_assertions)` where the macro
    /// expanded, i.e. the plugin crate's own profile.
    pub fn describe(
        plugin: impl FnOnce() -> Result<&'static Plugin, TaskError>,
        debug_build: bool,
    ) -> RResult<PluginDescriptor, RawFailure> {
        guarded(|| Ok(plugin()?.descriptor(debug_build)))
    }

    /// `PluginModule::run_task`.
    pub fn run_task(
        plugin: impl FnOnce() -> Result<&'static Plugin, TaskError>,
        task: RStr<'_>,
        input: RSlice<'_, u8>,
        context: HostContextRef<'_>,
    ) -> RResult<RVec<u8>, RawFailure> {
        let ctx = TaskContext::new(context);
        let what = format!("task `{}`", task.as_str());
        guarded_logged(&what, &ctx, || {
            plugin()?
                .run(task.as_str(), input.as_slice(), &ctx)
                .map(RVec::from)
        })
    }

    /// `PluginModule::expand`.
    pub fn expand(
        plugin: impl FnOnce() -> Result<&'static Plugin, TaskError>,
        job: RStr<'_>,
        params: RSlice<'_, u8>,
        context: HostContextRef<'_>,
    ) -> RResult<RVec<u8>, RawFailure> {
        let ctx = TaskContext::new(context);
        let what = format!("expanding job `{}`", job.as_str());
        guarded_logged(&what, &ctx, || {
            plugin()?
                .expand_with(job.as_str(), params.as_slice(), &ctx)
                .map(RVec::from)
        })
    }

    /// The root module, given the three entry points; `expand` is left out when the plugin
    /// has no expand step.
    pub fn root_module(
        can_expand: bool,
        describe: extern "C" fn() -> RResult<PluginDescriptor, RawFailure>,
        run_task: extern "C" fn(
            RStr<'_>,
            RSlice<'_, u8>,
            HostContextRef<'_>,
        ) -> RResult<RVec<u8>, RawFailure>,
        expand: extern "C" fn(
            RStr<'_>,
            RSlice<'_, u8>,
            HostContextRef<'_>,
        ) -> RResult<RVec<u8>, RawFailure>,
    ) -> PluginModuleRef {
        PluginModule {
            describe,
            run_task,
            expand: can_expand.then_some(expand),
        }
        .leak_into_prefix()
    }

    /// Whether the plugin built by `plugin` has an expand step (false when building it failed).
    pub fn can_expand(plugin: impl FnOnce() -> Result<&'static Plugin, TaskError>) -> bool {
        plugin().map(Plugin::can_expand).unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guarded_turns_a_panic_into_a_panicked_failure() {
        let result: RResult<(), RawFailure> = guarded(|| panic!("boom {}", 7));
        let failure = result.unwrap_err();
        assert_eq!(FailureKind::from_code(failure.kind), FailureKind::Panicked);
        assert_eq!(failure.message.as_str(), "boom 7");
        let result: RResult<(), RawFailure> = guarded(|| std::panic::panic_any(42_u8));
        assert_eq!(
            result.unwrap_err().message.as_str(),
            "panic with a non-string payload"
        );
    }

    #[test]
    fn guarded_passes_errors_and_values_through() {
        let ok: RResult<u8, RawFailure> = guarded(|| Ok(3));
        assert_eq!(ok.unwrap(), 3);
        let err: RResult<u8, RawFailure> = guarded(|| Err(TaskError::cancelled()));
        let failure = err.unwrap_err();
        assert_eq!(FailureKind::from_code(failure.kind), FailureKind::Cancelled);
    }

    #[test]
    fn unknown_tasks_are_invalid_input_naming_the_known_ones() {
        let plugin = Plugin::new("p", "1")
            .raw_task("a", "", |i, _| Ok(i.to_vec()))
            .raw_task("b", "", |i, _| Ok(i.to_vec()));
        let error = plugin.run_detached("c", b"").unwrap_err();
        assert_eq!(error.kind(), FailureKind::InvalidInput);
        assert_eq!(error.message(), "plugin `p` has no task `c` (it has: a, b)");
    }

    #[test]
    #[should_panic(expected = "task `a` is defined twice")]
    fn a_task_name_cannot_be_used_twice() {
        let _ = Plugin::new("p", "1")
            .raw_task("a", "", |i, _| Ok(i.to_vec()))
            .raw_task("a", "", |i, _| Ok(i.to_vec()));
    }

    #[test]
    fn the_descriptor_lists_tasks_in_declaration_order() {
        let plugin = Plugin::new("p", "1.2.3")
            .raw_task("z", "last letter", |i, _| Ok(i.to_vec()))
            .raw_task("a", "first letter", |i, _| Ok(i.to_vec()));
        let descriptor = plugin.descriptor(false);
        assert_eq!(descriptor.version.as_str(), "1.2.3");
        let tasks: Vec<_> = descriptor
            .tasks
            .iter()
            .map(|t| (t.name.as_str(), t.description.as_str()))
            .collect();
        assert_eq!(tasks, [("z", "last letter"), ("a", "first letter")]);
    }

    #[test]
    fn the_metadata_carries_the_build_the_arguments_and_the_jobs_beside_the_authors() {
        let plugin = Plugin::new("p", "1")
            .raw_task("a", "", |i, _| Ok(i.to_vec()))
            .raw_task("b", "", |i, _| Ok(i.to_vec()))
            .task_argument("a", "pa\"th")
            .raw_expand(|_, _, _| Ok(b"[]".to_vec()))
            .expand_jobs(["j1", "j2"]);
        let facts = r#""taskhost":{"debug_build":true,"arguments":{"a":"pa\"th"},"expand_jobs":["j1","j2"]}"#;
        assert_eq!(
            plugin.descriptor(true).metadata.as_str(),
            format!("{{{facts}}}")
        );
        let plugin = plugin.metadata(r#" {"mine": 1}"#);
        assert_eq!(
            plugin.descriptor(true).metadata.as_str(),
            format!("{{{facts},\"mine\": 1}}")
        );
        let plugin = plugin.metadata("{ }");
        assert_eq!(
            plugin.descriptor(true).metadata.as_str(),
            format!("{{{facts}}}")
        );
        // Not an object: left alone.
        let plugin = plugin.metadata("[1]");
        assert_eq!(plugin.descriptor(false).metadata.as_str(), "[1]");
        let bare = Plugin::new("p", "1").descriptor(false);
        assert_eq!(
            bare.metadata.as_str(),
            r#"{"taskhost":{"debug_build":false}}"#
        );
    }

    #[test]
    #[should_panic(expected = "task_argument: plugin `p` has no task `x`")]
    fn a_task_argument_needs_its_task() {
        let _ = Plugin::new("p", "1").task_argument("x", "path");
    }
}
