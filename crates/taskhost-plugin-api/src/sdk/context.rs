//! [`TaskContext`]: what a running task gets from the host (cancellation, progress, logs).

use std::fmt;

use abi_stable::std_types::{RNone, RSome, RStr};

use super::TaskError;
use crate::abi::{HostContextRef, LogLevel};

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
