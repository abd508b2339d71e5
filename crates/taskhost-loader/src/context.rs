//! What the host gives a running task: [`RunContext`], the ready-made [`TracingContext`], and
//! the adapter that turns either into the plugin API's FFI host context.

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};

use abi_stable::std_types::{ROption, RStr};
use taskhost_plugin_api::abi::HostContext;
use taskhost_plugin_api::LogLevel;

/// The host's side of a running task: cancellation, progress and logging.
///
/// The loader calls these from the thread that runs the task, while the plugin runs.
pub trait RunContext {
    /// Whether the task should stop. Plugins poll this.
    fn is_cancelled(&self) -> bool;

    /// A progress report from the plugin: `done` units of `total` (when known). Ignored by
    /// default.
    fn progress(&self, done: u64, total: Option<u64>) {
        let _ = (done, total);
    }

    /// A log record from the plugin.
    fn log(&self, level: LogLevel, message: &str);
}

/// Where a [`TracingContext`] reads cancellation from.
enum Cancellation<'a> {
    Never,
    Flag(&'a AtomicBool),
    Check(&'a (dyn Fn() -> bool + Sync)),
}

/// A ready [`RunContext`]: cancellation from an [`AtomicBool`] or a closure, progress and logs
/// as `tracing` events with target `taskhost::plugin` and the fields `plugin` (the plugin's
/// name) and `task` (the full task name).
///
/// Log records keep their level; progress reports are `trace` events with `done` and `total`
/// fields and the message `plugin.progress`.
///
/// ```no_run
/// # fn demo(set: &taskhost_loader::PluginSet) {
/// use std::sync::atomic::AtomicBool;
/// use taskhost_loader::TracingContext;
///
/// let task = set.task("testkit/sleep").expect("testkit is loaded");
/// let stop = AtomicBool::new(false);
/// let context = TracingContext::new(&task).with_cancel_flag(&stop);
/// let output = task.run(br#"{"ms": 10}"#, &context);
/// # }
/// ```
pub struct TracingContext<'a> {
    plugin: &'a str,
    task: &'a str,
    cancellation: Cancellation<'a>,
}

impl fmt::Debug for TracingContext<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TracingContext")
            .field("plugin", &self.plugin)
            .field("task", &self.task)
            .finish_non_exhaustive()
    }
}

impl<'a> TracingContext<'a> {
    /// A context that tags events with the given plugin name and full task name (for expand
    /// steps and other calls that are not a [`PluginTask`](crate::PluginTask)).
    pub fn with_names(plugin: &'a str, task: &'a str) -> TracingContext<'a> {
        TracingContext {
            plugin,
            task,
            cancellation: Cancellation::Never,
        }
    }

    /// Reads cancellation from `flag` (relaxed loads: the flag only ever goes from false to true).
    pub fn with_cancel_flag(mut self, flag: &'a AtomicBool) -> TracingContext<'a> {
        self.cancellation = Cancellation::Flag(flag);
        self
    }

    /// Reads cancellation from `check`, e.g. `&|| token.is_cancelled()`.
    pub fn with_cancel_check(mut self, check: &'a (dyn Fn() -> bool + Sync)) -> TracingContext<'a> {
        self.cancellation = Cancellation::Check(check);
        self
    }
}

impl RunContext for TracingContext<'_> {
    fn is_cancelled(&self) -> bool {
        match self.cancellation {
            Cancellation::Never => false,
            Cancellation::Flag(flag) => flag.load(Ordering::Relaxed),
            Cancellation::Check(check) => check(),
        }
    }

    fn progress(&self, done: u64, total: Option<u64>) {
        tracing::trace!(
            target: "taskhost::plugin",
            plugin = self.plugin,
            task = self.task,
            done,
            total,
            "plugin.progress"
        );
    }

    fn log(&self, level: LogLevel, message: &str) {
        let (plugin, task) = (self.plugin, self.task);
        match level {
            LogLevel::Error => {
                tracing::error!(target: "taskhost::plugin", plugin, task, "{message}")
            }
            LogLevel::Warn => tracing::warn!(target: "taskhost::plugin", plugin, task, "{message}"),
            LogLevel::Info => tracing::info!(target: "taskhost::plugin", plugin, task, "{message}"),
            LogLevel::Debug => {
                tracing::debug!(target: "taskhost::plugin", plugin, task, "{message}")
            }
            LogLevel::Trace => {
                tracing::trace!(target: "taskhost::plugin", plugin, task, "{message}")
            }
        }
    }
}

/// Presents a [`RunContext`] to a plugin as the API's FFI host context.
pub(crate) struct HostAdapter<'a> {
    pub(crate) context: &'a dyn RunContext,
}

// A panic in the host's callbacks must not unwind through the plugin's `extern "C"` frames
// (that aborts the process), so each callback catches it here: a panicking cancellation check
// reads as "cancelled", a panicking progress or log callback is reported and dropped.
impl HostContext for HostAdapter<'_> {
    fn is_cancelled(&self) -> bool {
        catch_unwind(AssertUnwindSafe(|| self.context.is_cancelled())).unwrap_or_else(|_| {
            tracing::error!(target: "taskhost::plugin", "the host's cancellation check panicked");
            true
        })
    }

    fn progress(&self, done: u64, total: ROption<u64>) {
        let reported = catch_unwind(AssertUnwindSafe(|| {
            self.context.progress(done, total.into_option())
        }));
        if reported.is_err() {
            tracing::error!(target: "taskhost::plugin", "the host's progress callback panicked");
        }
    }

    fn log(&self, level: LogLevel, message: RStr<'_>) {
        let logged = catch_unwind(AssertUnwindSafe(|| {
            self.context.log(level, message.as_str())
        }));
        if logged.is_err() {
            tracing::error!(target: "taskhost::plugin", "the host's log callback panicked");
        }
    }
}
