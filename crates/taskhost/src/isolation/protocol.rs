//! The messages between a host worker and its child process: JSON values on a private Unix
//! socket, one after another (serde_json's stream reader finds where each ends, so there is no
//! framing of our own). Never on the child's stdout, which belongs to the plugins.

use std::io::{self, Read};
use std::os::unix::net::UnixStream;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Host → child.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(crate) enum Request {
    /// Run one task. `input` is the item's input, as JSON text.
    Run {
        id: u64,
        task: String,
        input: String,
    },
    /// Ask the running task `id` to stop (its cancel check turns true).
    Cancel { id: u64 },
}

/// Child → host.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(crate) enum Response {
    /// The plugins are loaded; the child serves requests from now on.
    Ready { pid: u32, tasks: usize },
    /// The child could not start serving (a plugin failed to load, say).
    Refused { error: String },
    /// Task `id` ended.
    Done { id: u64, outcome: Outcome },
    /// Task `id` logged a record (the host re-emits it as if the task ran in the host).
    Log {
        id: u64,
        level: LevelCode,
        message: String,
    },
    /// Task `id` reported progress.
    Progress {
        id: u64,
        done: u64,
        total: Option<u64>,
    },
}

/// A `LogLevel` on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum LevelCode {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl LevelCode {
    pub(crate) fn from_level(level: taskhost_loader::LogLevel) -> LevelCode {
        use taskhost_loader::LogLevel;
        match level {
            LogLevel::Error => LevelCode::Error,
            LogLevel::Warn => LevelCode::Warn,
            LogLevel::Info => LevelCode::Info,
            LogLevel::Debug => LevelCode::Debug,
            LogLevel::Trace => LevelCode::Trace,
        }
    }

    pub(crate) fn level(self) -> taskhost_loader::LogLevel {
        use taskhost_loader::LogLevel;
        match self {
            LevelCode::Error => LogLevel::Error,
            LevelCode::Warn => LogLevel::Warn,
            LevelCode::Info => LogLevel::Info,
            LevelCode::Debug => LogLevel::Debug,
            LevelCode::Trace => LogLevel::Trace,
        }
    }
}

/// How a task ended in the child.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub(crate) enum Outcome {
    /// The plugin's output, as text (it is meant to be JSON).
    Ok { output: String },
    /// The plugin's output, when it is not UTF-8 (the host says so in its record).
    OkBytes { output: Vec<u8> },
    /// The plugin reported a failure; `kind` as in the loader's `FailureKind`.
    Failed { kind: FailureCode, message: String },
}

/// A `FailureKind` on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum FailureCode {
    Failed,
    Panicked,
    Cancelled,
    InvalidInput,
}

impl FailureCode {
    pub(crate) fn from_kind(kind: taskhost_loader::FailureKind) -> FailureCode {
        use taskhost_loader::FailureKind;
        match kind {
            FailureKind::Panicked => FailureCode::Panicked,
            FailureKind::Cancelled => FailureCode::Cancelled,
            FailureKind::InvalidInput => FailureCode::InvalidInput,
            _ => FailureCode::Failed,
        }
    }

    pub(crate) fn kind(self) -> taskhost_loader::FailureKind {
        use taskhost_loader::FailureKind;
        match self {
            FailureCode::Failed => FailureKind::Failed,
            FailureCode::Panicked => FailureKind::Panicked,
            FailureCode::Cancelled => FailureKind::Cancelled,
            FailureCode::InvalidInput => FailureKind::InvalidInput,
        }
    }
}

/// Sends one message in one write (serialising straight into the socket would make a system
/// call, and wake the reader, per JSON token).
pub(crate) fn send(socket: &UnixStream, message: &impl Serialize) -> io::Result<()> {
    use std::io::Write;
    let mut writer = socket;
    writer.write_all(&serde_json::to_vec(message)?)
}

/// What was read from a socket and not yet taken as a message. Messages are JSON values back
/// to back: serde_json's stream reader says where one ends, or that it is not complete yet.
#[derive(Debug, Default)]
pub(crate) struct Inbox {
    bytes: Vec<u8>,
}

/// Something that is not a message arrived: the other side is broken.
#[derive(Debug)]
pub(crate) struct Garbled;

impl Inbox {
    /// The next complete message, if one has been read.
    pub(crate) fn take<T: DeserializeOwned>(&mut self) -> Result<Option<T>, Garbled> {
        let mut messages = serde_json::Deserializer::from_slice(&self.bytes).into_iter::<T>();
        match messages.next() {
            Some(Ok(message)) => {
                let used = messages.byte_offset();
                self.bytes.drain(..used);
                Ok(Some(message))
            }
            Some(Err(error)) if error.is_eof() => Ok(None),
            Some(Err(_)) => Err(Garbled),
            None => {
                self.bytes.clear();
                Ok(None)
            }
        }
    }

    /// Reads once from `socket` (as its blocking mode and timeout say); `Ok(0)`: it closed. The
    /// read size doubles with what is waiting, so a large message is parsed a few times, not
    /// once per read.
    pub(crate) fn fill(&mut self, socket: &UnixStream) -> io::Result<usize> {
        let held = self.bytes.len();
        self.bytes.resize(held + held.max(64 * 1024), 0);
        let read = (&*socket).read(&mut self.bytes[held..]);
        self.bytes.truncate(held + *read.as_ref().unwrap_or(&0));
        read
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Several messages written back to back are read back one by one, whatever they hold.
    #[test]
    fn messages_read_back_from_a_stream_in_order() {
        let mut wire = Vec::new();
        let sent = [
            Request::Run {
                id: 1,
                task: "p/t".into(),
                input: "{\"a\":\"}{\\n\"}".into(),
            },
            Request::Cancel { id: 1 },
        ];
        for message in &sent {
            serde_json::to_writer(&mut wire, message).unwrap();
        }
        let read: Vec<Request> = serde_json::Deserializer::from_slice(&wire)
            .into_iter()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(format!("{read:?}"), format!("{sent:?}"));
    }

    /// The inbox takes whole messages only, however the bytes arrive.
    #[test]
    fn the_inbox_takes_whole_messages_as_they_complete() {
        let (a, b) = UnixStream::pair().unwrap();
        let mut wire = serde_json::to_vec(&Request::Cancel { id: 7 }).unwrap();
        wire.extend(serde_json::to_vec(&Request::Cancel { id: 8 }).unwrap());
        let mut inbox = Inbox::default();
        let (first, rest) = wire.split_at(5);
        std::io::Write::write_all(&mut &a, first).unwrap();
        inbox.fill(&b).unwrap();
        assert!(
            inbox.take::<Request>().unwrap().is_none(),
            "not complete yet"
        );
        std::io::Write::write_all(&mut &a, rest).unwrap();
        inbox.fill(&b).unwrap();
        assert!(matches!(inbox.take(), Ok(Some(Request::Cancel { id: 7 }))));
        assert!(matches!(inbox.take(), Ok(Some(Request::Cancel { id: 8 }))));
        assert!(inbox.take::<Request>().unwrap().is_none());
        std::io::Write::write_all(&mut &a, b"}{").unwrap();
        inbox.fill(&b).unwrap();
        assert!(inbox.take::<Request>().is_err(), "garbage is garbage");
        drop(a);
        assert_eq!(Inbox::default().fill(&b).unwrap(), 0, "closed");
    }
}
