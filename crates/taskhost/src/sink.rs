//! Where outcomes go.
//!
//! The dispatcher writes exactly one [`Outcome`] per entry to an [`OutcomeSink`]. Today that is
//! JSON lines to a file or stdout ([`JsonlSink`]). A NATS JetStream sink would publish the record
//! and then acknowledge the work message: `write` is the point at which an item counts as done.

use std::io::{self, Write};
use std::sync::Arc;

use serde::Serialize;
use serde_json::value::RawValue;

/// How an item ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    Failed,
    Panicked,
    Cancelled,
    TimedOut,
    Rejected,
    Invalid,
}

impl Status {
    pub const ALL: [Status; 7] = [
        Self::Ok,
        Self::Failed,
        Self::Panicked,
        Self::Cancelled,
        Self::TimedOut,
        Self::Rejected,
        Self::Invalid,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Failed => "failed",
            Self::Panicked => "panicked",
            Self::Cancelled => "cancelled",
            Self::TimedOut => "timed_out",
            Self::Rejected => "rejected",
            Self::Invalid => "invalid",
        }
    }
}

/// One outcome record; field order is the order written.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub id: String,
    /// Shared with the run's task table (no copy per record).
    pub task: Option<Arc<str>>,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<Box<RawValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub pool: Option<Arc<str>>,
    pub attempts: u32,
    pub waited_ms: f64,
    pub ran_ms: f64,
    pub line: u64,
    /// Position among the run's entries (for `--ordered`); not written.
    #[serde(skip)]
    pub seq: u64,
}

impl Outcome {
    /// An outcome for an item that never reached a pool.
    pub fn unrun(
        line: u64,
        id: Option<String>,
        task: Option<String>,
        status: Status,
        error: String,
    ) -> Self {
        Self {
            id: id.unwrap_or_else(|| line.to_string()),
            task: task.map(Arc::from),
            status,
            output: None,
            error: Some(error),
            pool: None,
            attempts: 0,
            waited_ms: 0.0,
            ran_ms: 0.0,
            line,
            seq: 0,
        }
    }
}

/// A place outcomes go.
pub trait OutcomeSink: Send {
    /// Records one outcome.
    fn write(&mut self, outcome: &Outcome) -> io::Result<()>;
    /// Makes everything written so far durable (or visible).
    fn flush(&mut self) -> io::Result<()>;
    /// Flushes and, where the records go to a file, waits until they are on disk
    /// (`fdatasync`). The journal calls it before it records ids as finished.
    fn sync(&mut self) -> io::Result<()> {
        self.flush()
    }
    /// Called by the writer thread at least every 50 ms, with or without new outcomes (the
    /// journal commits from here).
    fn tick(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// JSON lines to any writer.
#[derive(Debug)]
pub struct JsonlSink<W: Write> {
    writer: io::BufWriter<W>,
    /// The output file, for [`OutcomeSink::sync`]; `None` for stdout and other writers.
    file: Option<std::fs::File>,
}

impl<W: Write + Send> JsonlSink<W> {
    pub fn new(writer: W) -> Self {
        Self {
            writer: io::BufWriter::with_capacity(64 * 1024, writer),
            file: None,
        }
    }
}

impl JsonlSink<std::fs::File> {
    /// JSON lines to a file, which [`OutcomeSink::sync`] `fdatasync`s.
    pub fn file(file: std::fs::File) -> io::Result<Self> {
        let handle = file.try_clone()?;
        let mut sink = Self::new(file);
        sink.file = Some(handle);
        Ok(sink)
    }
}

impl<W: Write + Send> OutcomeSink for JsonlSink<W> {
    fn write(&mut self, outcome: &Outcome) -> io::Result<()> {
        serde_json::to_writer(&mut self.writer, outcome)?;
        self.writer.write_all(b"\n")
    }

    fn flush(&mut self) -> io::Result<()> {
        self.writer.flush()
    }

    fn sync(&mut self) -> io::Result<()> {
        self.writer.flush()?;
        match &self.file {
            Some(file) => file.sync_data(),
            None => Ok(()),
        }
    }
}

/// Opens (or creates) `path` to append records to, cutting off a torn last line (one without
/// its `\n`, left by a crash) so that the next record starts on a line of its own.
pub fn open_for_append(path: &std::path::Path) -> io::Result<std::fs::File> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    let len = file.metadata()?.len();
    // Find the end of the last whole line, reading backwards.
    let mut end = len;
    let mut chunk = vec![0u8; 64 * 1024];
    let mut keep = 0;
    while end > 0 {
        let start = end.saturating_sub(chunk.len() as u64);
        let size = (end - start) as usize;
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut chunk[..size])?;
        if let Some(at) = chunk[..size].iter().rposition(|&b| b == b'\n') {
            keep = start + at as u64 + 1;
            break;
        }
        end = start;
    }
    if keep < len {
        file.set_len(keep)?;
    }
    file.seek(SeekFrom::Start(keep))?;
    Ok(file)
}

/// Rounds a duration to milliseconds with three decimals.
pub fn millis(duration: Option<std::time::Duration>) -> f64 {
    duration.map_or(0.0, |d| (d.as_secs_f64() * 1_000_000.0).round() / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_have_the_documented_shape() {
        let mut bytes = Vec::new();
        {
            let mut sink = JsonlSink::new(&mut bytes);
            let mut outcome = Outcome::unrun(3, None, None, Status::Invalid, "bad".to_owned());
            sink.write(&outcome).unwrap();
            outcome.status = Status::TimedOut;
            outcome.error = None;
            outcome.output = Some(RawValue::from_string("{\"n\":1}".to_owned()).unwrap());
            sink.write(&outcome).unwrap();
            sink.flush().unwrap();
        }
        let text = String::from_utf8(bytes).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            r#"{"id":"3","task":null,"status":"invalid","error":"bad","pool":null,"attempts":0,"waited_ms":0.0,"ran_ms":0.0,"line":3}"#
        );
        assert!(lines[1].contains(r#""status":"timed_out","output":{"n":1},"pool""#));
    }

    #[test]
    fn appending_cuts_a_torn_last_record_off() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        for (before, after) in [
            ("", ""),
            ("{\"id\":\"a\"}\n", "{\"id\":\"a\"}\n"),
            ("{\"id\":\"a\"}\n{\"id\":\"b", "{\"id\":\"a\"}\n"),
            ("{\"id\":\"torn", ""),
        ] {
            std::fs::write(&path, before).unwrap();
            let mut file = open_for_append(&path).unwrap();
            file.write_all(b"{}\n").unwrap();
            drop(file);
            assert_eq!(
                std::fs::read_to_string(&path).unwrap(),
                format!("{after}{{}}\n")
            );
        }
        let long = format!("{}\n{}", "x".repeat(200_000), "y".repeat(100_000));
        std::fs::write(&path, &long).unwrap();
        drop(open_for_append(&path).unwrap());
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 200_001);
    }
}
