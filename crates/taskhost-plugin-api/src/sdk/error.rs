//! Why a task produced no output: [`FailureKind`] and [`TaskError`].

use std::fmt;

use crate::abi::RawFailure;

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

    pub(super) fn into_raw(self) -> RawFailure {
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
