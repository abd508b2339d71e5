//! The journal: `taskhost run --journal FILE [--resume]`.
//!
//! A crash (`kill -9`, an out-of-memory kill, a plugin that aborts or segfaults and takes the
//! in-process host down with it) loses the run's state. The journal is the way back: it is an
//! append-only file with the id of each *finished* item, and `--resume` skips the input items whose
//! id it already holds.
//!
//! **Format.** A first line that says what the journal belongs to ([`JournalHeader`], a JSON
//! object), then one JSON string per line: the outcome record's `id` (the item's id, or its line
//! number when it has none), e.g. `"a1"` or `"17"`. A last line without its `\n` is a torn write
//! from a crash: it is ignored, and cut off before anything is appended. The journal is locked
//! (`flock`) for the life of the run: a second run on it is refused.
//!
//! **What counts as finished.** Every final status — `ok`, `failed`, `panicked`, `crashed`,
//! `timed_out`, `rejected`, `invalid` — except `cancelled`: an item cancelled by Ctrl-C /
//! SIGTERM did not finish, so a resumed run does it again. (`rejected` counts as finished,
//! including a rejection by a full queue with `when_full = "reject"`; to redo those, remove
//! their ids from the journal.)
//!
//! **Ordering and durability.** [`JournaledSink`] wraps the outcome sink. `write` writes the
//! record to the sink and only remembers the id; a *commit* then (1) flushes the sink and, for an
//! output file, `fdatasync`s it, and only after that (2) appends the remembered ids to the journal
//! and `fdatasync`s the journal. So an id is in the journal only once its outcome record is
//! durable in the output (with `--output -` there is nothing to sync: the records are flushed to
//! stdout, and whoever reads it holds them). Commits happen at most every [`COMMIT_INTERVAL`] (the writer ticks the
//! sink), when [`COMMIT_BATCH`] ids are waiting, at the end of the run, after Ctrl-C (the wind-down
//! writes every outcome, then commits) and on the second Ctrl-C (the emergency flush commits too).
//!
//! **Guarantee.** Against the journal, exactly once: an id in the journal is never run again by
//! `--resume`, and every input item whose id is not in it is run (and gets its record) by the
//! resumed run. Output, at least once: records written after the last commit before a crash are
//! in the first run's output *and* the resumed run's (their ids never reached the journal). Ids
//! must be unique, as `--resume` skips by id: a journaled run refuses the second occurrence of
//! an id ([`ResumeSource`]).
//!
//! The skip set holds every id of the journal in memory (a `HashSet<String>`), and the duplicate
//! check every id read so far.
//!
//! One file per question, in layers (each uses only those above it): `header` (what a journal
//! belongs to) · `file` (reading, opening and appending to the file) · `sink`
//! ([`JournaledSink`]) and `source` ([`ResumeSource`]) · this file ([`attach`], the report).

mod file;
mod header;
mod sink;
mod source;
#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::sink::OutcomeSink;
use crate::source::WorkSource;

pub use file::{read_journal, Journal, JournalContents, JournalError};
pub use header::JournalHeader;
pub use sink::{is_finished, JournaledSink, COMMIT_BATCH, COMMIT_INTERVAL};
pub use source::{entry_id, ResumeSource};

/// What the journal did in this run, for the summary.
#[derive(Debug)]
pub struct JournalReport {
    path: PathBuf,
    resumed: bool,
    /// Records the journal held when the run started.
    previous: usize,
    skipped: Arc<AtomicU64>,
    committed: Arc<AtomicU64>,
}

impl std::fmt::Display for JournalReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "  journal {}: {} finished items recorded by this run",
            self.path.display(),
            self.committed.load(Ordering::Relaxed)
        )?;
        if self.resumed {
            write!(
                f,
                "; resumed: skipped {} input items already finished (the journal held {})",
                self.skipped.load(Ordering::Relaxed),
                self.previous
            )?;
        }
        writeln!(f)
    }
}

/// Wraps the run's source (leaving out what `contents` holds) and sink in the opened journal.
pub fn attach(
    journal: Journal,
    contents: JournalContents,
    resume: bool,
    source: Box<dyn WorkSource>,
    sink: Box<dyn OutcomeSink>,
) -> (Box<dyn WorkSource>, Box<dyn OutcomeSink>, JournalReport) {
    let previous = contents.records;
    let source = ResumeSource::new(source, contents.ids);
    let skipped = source.skipped();
    let source: Box<dyn WorkSource> = Box::new(source);
    let path = journal.path().to_owned();
    let sink = JournaledSink::new(sink, journal);
    let committed = sink.committed();
    let report = JournalReport {
        path,
        resumed: resume,
        previous,
        skipped,
        committed,
    };
    (source, Box::new(sink), report)
}
