//! What an attempt's result means for its item: the status, the output or error of its record,
//! and whether the route's retry policy applies. A pure function of the result, so each rule has
//! a unit test of its own.

use serde_json::value::RawValue;
use taskhost_executor::{CancelReason, ResultError};
use taskhost_loader::FailureKind;

use super::job::{AttemptFailure, AttemptResult};
use crate::sink::Status;

/// How one attempt ended, as its record will say (before the timeout and retry rules).
#[derive(Debug)]
pub(crate) struct Verdict {
    pub(crate) status: Status,
    pub(crate) output: Option<Box<RawValue>>,
    pub(crate) error: Option<String>,
    /// Another attempt could end otherwise (a failure, a panic, a crash); the same input given
    /// to the same task again would not (invalid input, output that is not JSON).
    pub(crate) retryable: bool,
}

impl Verdict {
    fn new(status: Status, error: impl Into<String>, retryable: bool) -> Verdict {
        Verdict {
            status,
            output: None,
            error: Some(error.into()),
            retryable,
        }
    }
}

/// The verdict on what the pool handed back for one attempt.
pub(crate) fn verdict(result: Result<&AttemptResult, ResultError>) -> Verdict {
    let failure = match result {
        Ok(Ok(bytes)) => {
            return match output_json(bytes) {
                Ok(output) => Verdict {
                    status: Status::Ok,
                    output: Some(output),
                    error: None,
                    retryable: false,
                },
                Err(error) => Verdict::new(Status::Failed, error, false),
            };
        }
        Ok(Err(failure)) => failure,
        Err(ResultError::Cancelled(CancelReason::StopRequested)) => {
            return Verdict::new(Status::Cancelled, "stopped on request", false);
        }
        Err(ResultError::Cancelled(reason)) => {
            return Verdict::new(Status::Cancelled, format!("cancelled ({reason})"), false);
        }
        Err(ResultError::Panicked(message)) => {
            return Verdict::new(Status::Panicked, message, true);
        }
        Err(other) => return Verdict::new(Status::Failed, other.to_string(), true),
    };
    match failure {
        AttemptFailure::Plugin(failure) => match failure.kind {
            FailureKind::Failed => Verdict::new(Status::Failed, &failure.message, true),
            FailureKind::Panicked => Verdict::new(Status::Panicked, &failure.message, true),
            FailureKind::Cancelled => Verdict::new(Status::Cancelled, &failure.message, false),
            FailureKind::InvalidInput => Verdict::new(
                Status::Failed,
                format!("invalid input: {}", failure.message),
                false,
            ),
        },
        AttemptFailure::Crashed(why) => Verdict::new(Status::Crashed, why, true),
        // Killed after it ignored a stop request: a timeout (see `Dispatcher::completed`) or
        // the end of the run.
        AttemptFailure::Killed(why) => Verdict::new(Status::Cancelled, why, false),
        AttemptFailure::NotStarted(why) => Verdict::new(Status::Failed, why, true),
        AttemptFailure::Quarantined(why) => Verdict::new(Status::Rejected, why, false),
    }
}

/// A plugin's output as JSON. Output must be one JSON value in UTF-8: anything else is the
/// task's failure, with the first bytes shown, rather than a guess at what was meant (a string,
/// with invalid bytes replaced).
pub(crate) fn output_json(bytes: &[u8]) -> Result<Box<RawValue>, String> {
    let shown = || {
        let head = &bytes[..bytes.len().min(60)];
        let more = if bytes.len() > head.len() { "…" } else { "" };
        format!("{}{more}", head.escape_ascii())
    };
    let text = std::str::from_utf8(bytes).map_err(|error| {
        format!(
            "output is not JSON: invalid UTF-8 at byte {} of {} (output starts with \"{}\")",
            error.valid_up_to(),
            bytes.len(),
            shown()
        )
    })?;
    RawValue::from_string(text.trim().to_owned()).map_err(|error| {
        format!(
            "output is not JSON: {error} ({} bytes, starting with \"{}\")",
            bytes.len(),
            shown()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use taskhost_loader::TaskFailure;

    fn plugin(kind: FailureKind, message: &str) -> AttemptResult {
        Err(AttemptFailure::Plugin(TaskFailure {
            kind,
            message: message.to_owned(),
        }))
    }

    fn said(result: Result<&AttemptResult, ResultError>) -> (Status, Option<String>, bool) {
        let v = verdict(result);
        (v.status, v.error, v.retryable)
    }

    #[test]
    fn json_output_is_ok_and_kept_as_written() {
        let v = verdict(Ok(&Ok(br#" {"a": 1} "#.to_vec())));
        assert_eq!(v.status, Status::Ok);
        assert_eq!(v.output.unwrap().get(), r#"{"a": 1}"#);
        assert_eq!((v.error, v.retryable), (None, false));
    }

    #[test]
    fn output_that_is_not_json_fails_and_is_not_retried() {
        let (status, error, retryable) = said(Ok(&Ok(b"plain".to_vec())));
        assert_eq!(status, Status::Failed);
        assert!(error.unwrap().starts_with("output is not JSON: "));
        assert!(!retryable);
    }

    #[test]
    fn plugin_failures_map_to_their_statuses() {
        let cases = [
            (FailureKind::Failed, Status::Failed, "no", true),
            (FailureKind::Panicked, Status::Panicked, "no", true),
            (FailureKind::Cancelled, Status::Cancelled, "no", false),
            (
                FailureKind::InvalidInput,
                Status::Failed,
                "invalid input: no",
                false,
            ),
        ];
        for (kind, status, error, retryable) in cases {
            assert_eq!(
                said(Ok(&plugin(kind, "no"))),
                (status, Some(error.to_owned()), retryable),
                "{kind:?}"
            );
        }
    }

    #[test]
    fn a_crash_is_crashed_and_retried_a_quarantine_is_rejected_and_not() {
        let crashed = Err(AttemptFailure::Crashed("killed by SIGSEGV".into()));
        assert_eq!(
            said(Ok(&crashed)),
            (Status::Crashed, Some("killed by SIGSEGV".into()), true)
        );
        let quarantined = Err(AttemptFailure::Quarantined("quarantined".into()));
        assert_eq!(
            said(Ok(&quarantined)),
            (Status::Rejected, Some("quarantined".into()), false)
        );
        let killed = Err(AttemptFailure::Killed("killed".into()));
        assert_eq!(said(Ok(&killed)).0, Status::Cancelled);
    }

    #[test]
    fn what_the_pool_says_maps_too() {
        assert_eq!(
            said(Err(ResultError::Cancelled(CancelReason::StopRequested))),
            (Status::Cancelled, Some("stopped on request".into()), false)
        );
        assert_eq!(
            said(Err(ResultError::Panicked("oh".into()))),
            (Status::Panicked, Some("oh".into()), true)
        );
        let (status, error, _) = said(Err(ResultError::BrokenPool("gone".into())));
        assert_eq!(status, Status::Failed);
        assert!(error.unwrap().contains("gone"));
    }

    #[test]
    fn output_that_is_not_json_is_an_error_that_shows_it() {
        assert_eq!(output_json(br#"{"a":1}"#).unwrap().get(), r#"{"a":1}"#);
        assert_eq!(output_json(b" 5\n").unwrap().get(), "5");
        assert_eq!(
            output_json(b"plain text").unwrap_err(),
            "output is not JSON: expected value at line 1 column 1 (10 bytes, starting with \"plain text\")"
        );
        assert_eq!(
            output_json(&[b'"', 0xff, b'"']).unwrap_err(),
            "output is not JSON: invalid UTF-8 at byte 1 of 3 (output starts with \"\\\"\\xff\\\"\")"
        );
        assert!(output_json(b"").unwrap_err().contains("EOF"));
    }
}
