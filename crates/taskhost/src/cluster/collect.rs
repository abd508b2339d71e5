//! The submitter's side of the results: which items still wait for a record, and the output
//! they are written to, once each, in completion order or (with `--ordered`) input order.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{self, Write};
use std::time::Instant;

use super::record;
use crate::sink::{Outcome, Status, FLUSH_INTERVAL};

/// An item published and waiting for its record.
#[derive(Debug, Clone)]
pub(super) struct Pending {
    /// Its place among the entries of the input (the order of `--ordered`).
    pub(super) index: u64,
    pub(super) line: u64,
    /// `plugin/task`.
    pub(super) task: String,
    pub(super) plugin: String,
    /// Its sequence in the items stream; `None` when it could not be published.
    pub(super) sequence: Option<u64>,
    /// When it was published.
    pub(super) since: Instant,
    /// The submitter has published its own verdict (rejected, gave up): only the record
    /// is awaited.
    pub(super) decided: bool,
}

impl Pending {
    /// A record the submitter makes itself, `status` for `error`, never run by a worker.
    pub(super) fn own_record(
        &self,
        id: &str,
        status: Status,
        error: String,
        deliveries: u64,
    ) -> Vec<u8> {
        let mut outcome = Outcome::unrun(
            self.line,
            Some(id.to_owned()),
            Some(self.task.clone()),
            status,
            error,
        );
        outcome.attempts = u32::from(deliveries > 0);
        record::record(&outcome, None, deliveries)
    }
}

/// The items of the run by id: those waiting for a record, and records that came before
/// their line was read (a resumed run reads what the first one stored before its input).
#[derive(Debug, Default)]
pub(super) struct Outstanding {
    pub(super) pending: HashMap<String, Pending>,
    early: HashMap<String, Vec<u8>>,
    /// Every id read from the input so far.
    read: HashSet<String>,
}

impl Outstanding {
    /// An id read from the input: `false` when an earlier line had it.
    pub(super) fn read(&mut self, id: &str) -> bool {
        self.read.insert(id.to_owned())
    }

    /// The record already stored for an id just read (a resumed run), if any.
    pub(super) fn stored(&mut self, id: &str) -> Option<Vec<u8>> {
        self.early.remove(id)
    }

    /// A record from the results: the item it completes and the record, or `None` when it
    /// completes nothing (written already, or of a line not read yet: kept for then).
    pub(super) fn complete(&mut self, id: String, record: Vec<u8>) -> Option<(Pending, Vec<u8>)> {
        if let Some(pending) = self.pending.remove(&id) {
            return Some((pending, record));
        }
        if !self.read.contains(&id) {
            self.early.insert(id, record);
        }
        None
    }
}

/// The output: each record once, counted.
pub(super) struct Collector<W: Write> {
    out: io::BufWriter<W>,
    ordered: bool,
    /// With `--ordered`: records waiting for an earlier one, by index.
    held: BTreeMap<u64, Vec<u8>>,
    next_index: u64,
    pub(super) counts: BTreeMap<Status, u64>,
    pub(super) written: u64,
    last_flush: Instant,
    pub(super) error: Option<io::Error>,
}

impl<W: Write> Collector<W> {
    pub(super) fn new(out: W, ordered: bool) -> Self {
        Collector {
            out: io::BufWriter::with_capacity(64 * 1024, out),
            ordered,
            held: BTreeMap::new(),
            next_index: 0,
            counts: BTreeMap::new(),
            written: 0,
            last_flush: Instant::now(),
            error: None,
        }
    }

    /// Takes the record of entry `index`.
    pub(super) fn emit(&mut self, index: u64, record: Vec<u8>) {
        if !self.ordered {
            return self.write(&record);
        }
        self.held.insert(index, record);
        while let Some(record) = self.held.remove(&self.next_index) {
            self.write(&record);
            self.next_index += 1;
        }
    }

    fn write(&mut self, record: &[u8]) {
        let status = record::status_of(record).unwrap_or(Status::Failed);
        *self.counts.entry(status).or_default() += 1;
        self.written += 1;
        if self.error.is_none() {
            let written = self
                .out
                .write_all(record)
                .and_then(|()| self.out.write_all(b"\n"));
            if let Err(error) = written {
                self.error = Some(error);
            }
        }
    }

    /// Records taken and not written yet (waiting for an earlier one).
    pub(super) fn held(&self) -> usize {
        self.held.len()
    }

    /// Flushes when the last flush is [`FLUSH_INTERVAL`] old.
    pub(super) fn tick(&mut self) {
        if self.last_flush.elapsed() >= FLUSH_INTERVAL {
            self.flush();
        }
    }

    /// Writes what is held (gaps and all: an interrupted run) and flushes.
    pub(super) fn finish(&mut self) {
        for record in std::mem::take(&mut self.held).into_values() {
            self.write(&record);
        }
        self.flush();
    }

    fn flush(&mut self) {
        self.last_flush = Instant::now();
        if let Err(error) = self.out.flush() {
            self.error.get_or_insert(error);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(status: &str, id: &str) -> Vec<u8> {
        format!("{{\"id\":\"{id}\",\"status\":\"{status}\"}}").into_bytes()
    }

    #[test]
    fn ordered_output_waits_for_earlier_records_and_counts_them() {
        let mut out = Vec::new();
        {
            let mut collector = Collector::new(&mut out, true);
            collector.emit(1, record("ok", "b"));
            collector.emit(2, record("failed", "c"));
            assert_eq!((collector.written, collector.held()), (0, 2));
            collector.emit(0, record("ok", "a"));
            assert_eq!(collector.written, 3);
            collector.emit(4, record("ok", "e"));
            collector.finish();
            assert_eq!(collector.counts[&Status::Ok], 3);
            assert_eq!(collector.counts[&Status::Failed], 1);
        }
        let ids: Vec<String> = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|line| line[7..8].to_owned())
            .collect();
        assert_eq!(ids, ["a", "b", "c", "e"]);
    }

    #[test]
    fn a_record_completes_its_item_once_and_an_early_one_waits_for_its_line() {
        let mut outstanding = Outstanding::default();
        assert!(outstanding.read("a"));
        assert!(!outstanding.read("a"), "a second line with id a");
        outstanding.pending.insert(
            "a".into(),
            Pending {
                index: 0,
                line: 1,
                task: "t/x".into(),
                plugin: "t".into(),
                sequence: Some(1),
                since: Instant::now(),
                decided: false,
            },
        );
        assert!(outstanding
            .complete("a".into(), record("ok", "a"))
            .is_some());
        assert!(
            outstanding
                .complete("a".into(), record("ok", "a"))
                .is_none(),
            "once"
        );
        assert!(outstanding
            .complete("b".into(), record("ok", "b"))
            .is_none());
        assert!(outstanding.read("b"));
        assert_eq!(outstanding.stored("b"), Some(record("ok", "b")));
        assert_eq!(outstanding.stored("b"), None);
    }
}
