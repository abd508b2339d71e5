//! The names of everything on the server: streams, subjects, consumers and headers.
//!
//! The layout, for the prefix `taskhost` (see the crate docs for the why):
//!
//! | what | name |
//! | --- | --- |
//! | items stream (work-queue retention) | `taskhost_items`, subjects `taskhost.items.>` |
//! | one item | subject `taskhost.items.<plugin>.<task>` |
//! | a plugin's consumer (durable, pull) | `<plugin>` on `taskhost_items`, filter `taskhost.items.<plugin>.*` |
//! | results stream (limits retention) | `taskhost_results`, subjects `taskhost.results.>` |
//! | one run's outcomes | subject `taskhost.results.<run id>` |
//! | dead letters (limits retention) | `taskhost_dead`, subjects `$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.taskhost_items.*` |
//! | cancels (core NATS, not stored) | subject `taskhost.cancel.<run id>` |
//! | heartbeats (core NATS, not stored) | subject `taskhost.workers.<worker>` |
//!
//! Plugin and task names may hold `.` (the loader allows `[A-Za-z0-9_.-]`), which splits NATS
//! subjects, so a name becomes a subject token with `.` written as `~` (a character no name
//! holds, so the mapping is one to one). Item ids are free text: in headers and message ids they
//! are percent-encoded outside printable ASCII.

use crate::error::ClusterError;

/// The header that carries an item's run id, on items and outcomes.
pub(crate) const RUN_HEADER: &str = "Taskhost-Run";
/// The header that carries an item's id (percent-encoded), on items and outcomes.
pub(crate) const ITEM_HEADER: &str = "Taskhost-Item";

/// A cancel's payload: empty for a whole run, this prefix and the encoded item id for one item
/// (so that an item whose id is empty is not taken for the run).
pub(crate) const CANCEL_ITEM_PREFIX: &str = "item:";

/// The subject of JetStream's max-deliveries advisory for a consumer of `stream`.
const MAX_DELIVERIES_ADVISORY: &str = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES";

/// Every name derived from one prefix.
#[derive(Debug, Clone)]
pub(crate) struct Names {
    /// A single subject token, checked by the settings.
    prefix: String,
}

impl Names {
    pub(crate) fn new(prefix: &str) -> Names {
        Names {
            prefix: prefix.to_owned(),
        }
    }

    pub(crate) fn items_stream(&self) -> String {
        format!("{}_items", self.prefix)
    }

    pub(crate) fn items_subjects(&self) -> String {
        format!("{}.items.>", self.prefix)
    }

    /// `<prefix>.items.<plugin>.<task>`, from names already made tokens.
    pub(crate) fn item_subject(&self, plugin: &Token, task: &Token) -> String {
        format!("{}.items.{}.{}", self.prefix, plugin.0, task.0)
    }

    pub(crate) fn plugin_filter(&self, plugin: &Token) -> String {
        format!("{}.items.{}.*", self.prefix, plugin.0)
    }

    /// The durable consumer's name: the plugin's token (consumers are named per stream).
    pub(crate) fn consumer_name(&self, plugin: &Token) -> String {
        plugin.0.clone()
    }

    pub(crate) fn results_stream(&self) -> String {
        format!("{}_results", self.prefix)
    }

    pub(crate) fn results_subjects(&self) -> String {
        format!("{}.results.>", self.prefix)
    }

    pub(crate) fn results_subject(&self, run_id: &RunId) -> String {
        format!("{}.results.{}", self.prefix, run_id.0)
    }

    pub(crate) fn dead_letter_stream(&self) -> String {
        format!("{}_dead", self.prefix)
    }

    pub(crate) fn dead_letter_subjects(&self) -> String {
        format!("{MAX_DELIVERIES_ADVISORY}.{}.*", self.items_stream())
    }

    pub(crate) fn cancel_subject(&self, run_id: &RunId) -> String {
        format!("{}.cancel.{}", self.prefix, run_id.0)
    }

    pub(crate) fn cancel_subjects(&self) -> String {
        format!("{}.cancel.*", self.prefix)
    }

    /// `<prefix>.workers.<worker>`: a worker's heartbeats (core NATS, not stored).
    pub(crate) fn heartbeat_subject(&self, worker: &Token) -> String {
        format!("{}.workers.{}", self.prefix, worker.0)
    }

    pub(crate) fn heartbeat_subjects(&self) -> String {
        format!("{}.workers.*", self.prefix)
    }

    /// The run id from a cancel subject, `None` for any other subject.
    pub(crate) fn run_of_cancel_subject<'a>(&self, subject: &'a str) -> Option<&'a str> {
        subject
            .strip_prefix(self.prefix.as_str())?
            .strip_prefix(".cancel.")
            .filter(|run| !run.is_empty() && !run.contains('.'))
    }

    /// The plugin and task names (decoded) of an item subject.
    pub(crate) fn plugin_and_task_of(&self, subject: &str) -> Option<(String, String)> {
        let rest = subject
            .strip_prefix(self.prefix.as_str())?
            .strip_prefix(".items.")?;
        let (plugin, task) = rest.split_once('.')?;
        if plugin.is_empty() || task.is_empty() || task.contains('.') {
            return None;
        }
        Some((decode_token(plugin), decode_token(task)))
    }
}

/// A plugin or task name made a subject token (`.` written as `~`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Token(String);

impl Token {
    /// Checks `name` (a plugin or task name, `kind` says which) and encodes it.
    pub(crate) fn new(kind: &'static str, name: &str) -> Result<Token, ClusterError> {
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !valid {
            return Err(ClusterError::InvalidName {
                kind,
                name: name.to_owned(),
                expected: "one or more of A-Z a-z 0-9 _ - .",
            });
        }
        Ok(Token(name.replace('.', "~")))
    }
}

pub(crate) fn decode_token(token: &str) -> String {
    token.replace('~', ".")
}

/// A run id: a subject token of `[A-Za-z0-9_-]`, at most 64 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RunId(String);

impl RunId {
    pub(crate) fn new(run_id: &str) -> Result<RunId, ClusterError> {
        let valid = !run_id.is_empty()
            && run_id.len() <= 64
            && run_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'));
        if !valid {
            return Err(ClusterError::InvalidName {
                kind: "run id",
                name: run_id.to_owned(),
                expected: "1 to 64 of A-Z a-z 0-9 _ -",
            });
        }
        Ok(RunId(run_id.to_owned()))
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

/// The `Nats-Msg-Id` of an item or an outcome: the run id, `:`, the encoded item id. Run ids
/// hold no `:`, so two different (run, item) pairs never share an id.
pub(crate) fn message_id(run_id: &RunId, item_id: &str) -> String {
    format!("{}:{}", run_id.0, encode_item_id(item_id))
}

/// Percent-encodes `%` and every byte outside printable ASCII (`!` to `~`), so any item id fits
/// a header value and comes back unchanged.
pub(crate) fn encode_item_id(item_id: &str) -> String {
    let mut encoded = String::with_capacity(item_id.len());
    for byte in item_id.bytes() {
        if byte == b'%' || !(b'!'..=b'~').contains(&byte) {
            encoded.push_str(&format!("%{byte:02X}"));
        } else {
            encoded.push(char::from(byte));
        }
    }
    encoded
}

/// The inverse of [`encode_item_id`]; `None` for text it cannot have made.
pub(crate) fn decode_item_id(encoded: &str) -> Option<String> {
    let bytes = encoded.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let hex = encoded.get(index + 1..index + 3)?;
            decoded.push(u8::from_str_radix(hex, 16).ok()?);
            index += 3;
        } else {
            decoded.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(decoded).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_tokens_one_to_one() {
        let names = Names::new("th");
        let plugin = Token::new("plugin", "my.plugin-2").unwrap();
        let task = Token::new("task", "sha_256").unwrap();
        let subject = names.item_subject(&plugin, &task);
        assert_eq!(subject, "th.items.my~plugin-2.sha_256");
        assert_eq!(names.plugin_filter(&plugin), "th.items.my~plugin-2.*");
        assert_eq!(
            names.plugin_and_task_of(&subject),
            Some(("my.plugin-2".to_owned(), "sha_256".to_owned()))
        );
        assert_eq!(names.plugin_and_task_of("th.results.r1"), None);
        assert_eq!(names.plugin_and_task_of("other.items.a.b"), None);
        for bad in ["", "a b", "a*", "a>", "a/b", "é"] {
            let error = Token::new("task", bad).unwrap_err().to_string();
            assert!(error.contains("task"), "{error}");
        }
    }

    #[test]
    fn run_ids_are_single_tokens() {
        assert!(RunId::new("run-1_A").is_ok());
        for bad in ["", "a.b", "a:b", "a b", &"x".repeat(65)] {
            assert!(RunId::new(bad).is_err(), "{bad:?}");
        }
        let names = Names::new("th");
        let run = RunId::new("r7").unwrap();
        assert_eq!(names.cancel_subject(&run), "th.cancel.r7");
        assert_eq!(names.run_of_cancel_subject("th.cancel.r7"), Some("r7"));
        assert_eq!(names.run_of_cancel_subject("th.cancel."), None);
        assert_eq!(names.run_of_cancel_subject("tx.cancel.r7"), None);
    }

    #[test]
    fn item_ids_round_trip_through_the_encoding() {
        for id in ["a1", "50%", "with space", "line\nbreak", "ü-ñ", "", "%41"] {
            let encoded = encode_item_id(id);
            assert!(
                encoded.bytes().all(|b| (b'!'..=b'~').contains(&b)),
                "{encoded:?}"
            );
            assert_eq!(decode_item_id(&encoded).as_deref(), Some(id));
        }
        assert_eq!(encode_item_id("a b%"), "a%20b%25");
        assert_eq!(decode_item_id("%4"), None);
        assert_eq!(decode_item_id("%zz"), None);
        let run = RunId::new("r").unwrap();
        assert_ne!(message_id(&run, "a:b"), message_id(&run, "a%3Ab"));
    }
}
