//! [`JournaledSink`]: the outcome sink of a journaled run, which commits an id to the journal
//! only once its record is durable in the output (see the module doc of `journal` for the
//! ordering).

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::sink::{Outcome, OutcomeSink, Status};

use super::file::Journal;

/// Ids wait at most about this long (plus the writer's 50 ms tick) before they are committed.
pub const COMMIT_INTERVAL: Duration = Duration::from_millis(250);

/// Commit as soon as this many ids wait (bounds the ids held in memory between commits).
pub const COMMIT_BATCH: usize = 16_384;

/// An outcome sink that also journals finished items (see the module doc for the ordering).
pub struct JournaledSink {
    inner: Box<dyn OutcomeSink>,
    journal: Journal,
    /// Ids whose records are written to `inner` but not yet committed.
    pending: Vec<String>,
    last_commit: Instant,
    committed: Arc<AtomicU64>,
}

impl std::fmt::Debug for JournaledSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JournaledSink")
            .field("journal", &self.journal)
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

impl JournaledSink {
    pub fn new(inner: Box<dyn OutcomeSink>, journal: Journal) -> Self {
        Self {
            inner,
            journal,
            pending: Vec::new(),
            last_commit: Instant::now(),
            committed: Arc::new(AtomicU64::new(0)),
        }
    }

    /// How many ids this run has committed to the journal so far.
    pub fn committed(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.committed)
    }

    /// Makes the written records durable, then journals their ids.
    fn commit(&mut self) -> io::Result<()> {
        self.last_commit = Instant::now();
        if self.pending.is_empty() {
            return self.inner.flush();
        }
        // The records first: an id must never be in the journal before its record is out.
        self.inner.sync()?;
        let journal_path = self.journal.path().display().to_string();
        self.journal.append(&self.pending).map_err(|error| {
            io::Error::new(error.kind(), format!("journal {journal_path}: {error}"))
        })?;
        self.committed
            .fetch_add(self.pending.len() as u64, Ordering::Relaxed);
        self.pending.clear();
        Ok(())
    }
}

/// Whether an outcome with this status is journaled (finished): all but `cancelled`.
pub fn is_finished(status: Status) -> bool {
    status != Status::Cancelled
}

impl OutcomeSink for JournaledSink {
    fn write(&mut self, outcome: &Outcome) -> io::Result<()> {
        self.inner.write(outcome)?;
        if is_finished(outcome.status) {
            self.pending.push(outcome.id.clone());
            if self.pending.len() >= COMMIT_BATCH {
                self.commit()?;
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.commit()
    }

    fn sync(&mut self) -> io::Result<()> {
        self.commit()
    }

    fn tick(&mut self) -> io::Result<()> {
        self.inner.tick()?;
        if !self.pending.is_empty() && self.last_commit.elapsed() >= COMMIT_INTERVAL {
            self.commit()?;
        }
        Ok(())
    }
}
