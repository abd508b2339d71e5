//! [`ClusterError`]: what can go wrong talking to the server.

use std::time::Duration;

/// An error of the cluster client. Each message is one line that says what was being done.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// The server could not be reached, refused the credentials, or did not answer within
    /// `cluster.connect_timeout`.
    #[error("cannot connect to the NATS server at {url}: {reason}")]
    Connect {
        /// The URL(s) tried.
        url: String,
        /// Why, in words.
        reason: String,
    },
    /// The server answered, but runs JetStream older than 2.10 or none at all.
    #[error("the NATS server at {url} {reason}")]
    UnsuitableServer {
        /// The URL(s) tried.
        url: String,
        /// What is missing: "runs 2.9.25; the cluster mode needs 2.10 or later".
        reason: String,
    },
    /// A plugin name, task name or run id that cannot be part of a subject.
    #[error("invalid {kind} {name:?}: expected {expected}")]
    InvalidName {
        /// "plugin", "task" or "run id".
        kind: &'static str,
        /// The name as given.
        name: String,
        /// The characters allowed.
        expected: &'static str,
    },
    /// A stream or consumer exists with other settings than this process's.
    #[error(
        "{what} exists on the server with other settings ({detail}); every worker and \
         submitter of one cluster needs the same cluster.prefix, ack_wait, max_deliver, \
         duplicate_window and results_max_age (or delete it on the server to start anew)"
    )]
    Conflict {
        /// "stream taskhost_items" or "consumer echo of stream taskhost_items".
        what: String,
        /// The server's description.
        detail: String,
    },
    /// A request the server refused or did not answer.
    #[error("{action}: {reason}")]
    Request {
        /// What was being done: "publishing item a1 of run r1".
        action: String,
        /// Why it failed, in the server's or the client's words.
        reason: String,
    },
    /// A blocking wait on the server ran out of time.
    #[error("{action}: no answer within {after:?}")]
    TimedOut {
        /// What was being waited for.
        action: String,
        /// How long.
        after: Duration,
    },
}

impl ClusterError {
    pub(crate) fn request(action: impl Into<String>, reason: impl ToString) -> ClusterError {
        ClusterError::Request {
            action: action.into(),
            reason: reason.to_string(),
        }
    }
}
