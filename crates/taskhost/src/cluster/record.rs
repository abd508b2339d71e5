//! What travels between `taskhost submit` and `taskhost worker`, besides the ids the cluster
//! crate carries in headers: an item's payload, and an outcome's record.
//!
//! - An item's payload is its input line's number, a newline, and its `input` as JSON text
//!   (`12\n{"n":1}`): the worker's records then carry the submitter's line, in their `line`
//!   field and in their messages, and the input reaches the plugin as the submitter read it.
//! - An outcome is the record `taskhost run` writes, plus `worker` (its name; `null` for a
//!   record the submitter made itself: rejected, gave up, cancelled before it started) and
//!   `deliveries` (how many times the server handed the item out). `attempts` counts every
//!   attempt on every delivery that is known: the attempts of the last one, plus one for each
//!   delivery before it. The submitter writes the record as it was published, byte for byte.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::sink::{Outcome, Status};

/// An item's payload: its line and its input.
pub(crate) fn item_payload(line: u64, input: &RawValue) -> Vec<u8> {
    let input = input.get();
    let mut payload = Vec::with_capacity(input.len() + 12);
    payload.extend_from_slice(line.to_string().as_bytes());
    payload.push(b'\n');
    payload.extend_from_slice(input.as_bytes());
    payload
}

/// The line and input of an item's payload; `Err` says what is wrong with it.
pub(crate) fn parse_item_payload(payload: &[u8]) -> Result<(u64, Box<RawValue>), String> {
    let expected = "expected a line number, a newline and JSON (what taskhost submit publishes)";
    let text = std::str::from_utf8(payload).map_err(|error| format!("{expected}: {error}"))?;
    let (line, input) = text
        .split_once('\n')
        .ok_or_else(|| format!("{expected}, found no newline"))?;
    let line = line
        .parse()
        .map_err(|_| format!("{expected}, found {line:?} before the newline"))?;
    let input = RawValue::from_string(input.to_owned())
        .map_err(|error| format!("{expected}: the input is not JSON: {error}"))?;
    Ok((line, input))
}

/// The record of an outcome, as published.
#[derive(Serialize)]
struct Record<'a> {
    #[serde(flatten)]
    outcome: &'a Outcome,
    /// The `taskhost worker` that ran it (the record's `worker` is its thread there).
    host: Option<&'a str>,
    deliveries: u64,
}

/// The record of `outcome`, run by `worker` on its `deliveries`-th delivery (`None` and 0:
/// made by the submitter, never delivered).
pub(crate) fn record(outcome: &Outcome, worker: Option<&str>, deliveries: u64) -> Vec<u8> {
    let mut counted;
    let outcome = if deliveries > 1 {
        counted = outcome.clone();
        counted.attempts += u32::try_from(deliveries - 1).unwrap_or(u32::MAX);
        &counted
    } else {
        outcome
    };
    let record = Record {
        outcome,
        host: worker,
        deliveries,
    };
    serde_json::to_vec(&record).expect("an outcome record serializes")
}

/// The status of a published record; `None` when it is not a record.
pub(crate) fn status_of(record: &[u8]) -> Option<Status> {
    #[derive(Deserialize)]
    struct StatusOnly {
        status: Status,
    }
    serde_json::from_slice::<StatusOnly>(record)
        .ok()
        .map(|found| found.status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_carries_the_line_and_the_input_as_written() {
        let input = RawValue::from_string(r#"{"n": [1, 2]}"#.to_owned()).unwrap();
        let payload = item_payload(42, &input);
        assert_eq!(payload, b"42\n{\"n\": [1, 2]}");
        let (line, back) = parse_item_payload(&payload).unwrap();
        assert_eq!((line, back.get()), (42, r#"{"n": [1, 2]}"#));
        for bad in [&b"{}"[..], b"x\n{}", b"1\n{", b"\xff\n1"] {
            let error = parse_item_payload(bad).unwrap_err();
            assert!(error.starts_with("expected a line number"), "{error}");
        }
    }

    #[test]
    fn a_record_is_the_run_record_plus_the_worker_and_its_deliveries() {
        let mut outcome = Outcome::unrun(
            3,
            Some("a".into()),
            Some("t/x".into()),
            Status::Ok,
            "e".into(),
        );
        outcome.output = Some(RawValue::from_string("{\"k\": 1}".to_owned()).unwrap());
        outcome.attempts = 2;
        let plain = serde_json::to_string(&outcome).unwrap();
        let published = String::from_utf8(record(&outcome, Some("w1"), 1)).unwrap();
        assert_eq!(
            published,
            format!(
                "{},\"worker\":\"w1\",\"deliveries\":1}}",
                &plain[..plain.len() - 1]
            )
        );
        assert!(
            published.contains(r#""output":{"k": 1}"#),
            "kept as written"
        );
        // Two deliveries before this one: two more attempts.
        let value: serde_json::Value =
            serde_json::from_slice(&record(&outcome, Some("w2"), 3)).unwrap();
        assert_eq!(
            (value["attempts"].as_u64(), value["deliveries"].as_u64()),
            (Some(4), Some(3))
        );
        let mine: serde_json::Value = serde_json::from_slice(&record(&outcome, None, 0)).unwrap();
        assert!(mine["host"].is_null());
        assert_eq!(status_of(&record(&outcome, None, 0)), Some(Status::Ok));
        assert_eq!(
            status_of(b"{\"status\":\"timed_out\"}"),
            Some(Status::TimedOut)
        );
        assert_eq!(status_of(b"not a record"), None);
    }
}
