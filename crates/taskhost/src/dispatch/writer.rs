//! The writer: one thread owns the sink, puts records back in input order with `--ordered`,
//! counts them for the progress line and the summary, and gives the in-flight permits back.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};

use super::lock;
use super::outbox::Outbox;
use super::permits::Permits;
use crate::progress::Progress;
use crate::sink::{Outcome, OutcomeSink};

/// The most outcomes the writer gathers before it is woken (fewer for a small in-flight limit,
/// so that permits keep flowing back).
pub(crate) const WRITER_BATCH: usize = 64;

/// The sink, the reorder buffer and the progress counters.
pub(crate) struct Writer {
    sink: Box<dyn OutcomeSink>,
    ordered: bool,
    next_seq: u64,
    pending: BTreeMap<u64, Outcome>,
    pub(crate) written: u64,
    pub(crate) progress: Progress,
    pub(crate) error: Option<std::io::Error>,
    /// Set on the first write error: the run stops as if interrupted (e.g. `taskhost run | head`).
    failed: Arc<AtomicBool>,
}

impl Writer {
    pub(crate) fn new(
        sink: Box<dyn OutcomeSink>,
        ordered: bool,
        progress: Progress,
        failed: Arc<AtomicBool>,
    ) -> Writer {
        Writer {
            sink,
            ordered,
            next_seq: 0,
            pending: BTreeMap::new(),
            written: 0,
            progress,
            error: None,
            failed,
        }
    }

    /// Takes one outcome; returns how many were written (none while it waits for its turn).
    pub(crate) fn accept(&mut self, outcome: Outcome) -> u64 {
        if !self.ordered {
            self.emit(&outcome);
            return 1;
        }
        self.pending.insert(outcome.seq, outcome);
        let mut emitted = 0;
        while let Some(outcome) = self.pending.remove(&self.next_seq) {
            self.emit(&outcome);
            self.next_seq += 1;
            emitted += 1;
        }
        emitted
    }

    fn emit(&mut self, outcome: &Outcome) {
        self.progress.record(outcome.status);
        self.written += 1;
        if self.error.is_none() {
            if let Err(error) = self.sink.write(outcome) {
                self.failed.store(true, Ordering::SeqCst);
                self.error = Some(error);
            }
        }
    }

    /// Writes whatever is buffered, in order, gaps and all.
    pub(crate) fn drain_pending(&mut self) -> u64 {
        let pending = std::mem::take(&mut self.pending);
        let count = pending.len() as u64;
        for outcome in pending.into_values() {
            self.emit(&outcome);
        }
        count
    }

    pub(crate) fn flush(&mut self) {
        if let Err(error) = self.sink.flush() {
            self.error.get_or_insert(error);
        }
    }

    /// Closes the outbox and writes every outcome in it and in the reorder buffer: the last
    /// thing before the process ends, however it ends.
    pub(crate) fn write_everything(&mut self, outbox: &Outbox<Outcome>) {
        for outcome in outbox.close() {
            self.accept(outcome);
        }
        self.drain_pending();
        self.flush();
    }

    /// Lets the sink do periodic work (the journal's commits).
    fn tick(&mut self) {
        if self.error.is_none() {
            if let Err(error) = self.sink.tick() {
                self.failed.store(true, Ordering::SeqCst);
                self.error = Some(error);
            }
        }
    }
}

/// When the writer thread stops: once it has written `expected` outcomes (`u64::MAX` until the
/// dispatcher knows how many entries it took), or at once when told to give up.
#[derive(Debug)]
pub(crate) struct WriterStop {
    pub(crate) expected: AtomicU64,
    pub(crate) give_up: AtomicBool,
}

/// Starts the writer thread: it takes outcomes from `outbox` in batches until `stop` says so.
pub(crate) fn spawn(
    writer: Arc<Mutex<Writer>>,
    outbox: Arc<Outbox<Outcome>>,
    permits: Arc<Permits>,
    stop: Arc<WriterStop>,
) -> Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("taskhost-writer".to_owned())
        .spawn(move || {
            let mut received = 0u64;
            let mut batch = Vec::new();
            loop {
                if received >= stop.expected.load(Ordering::SeqCst)
                    || stop.give_up.load(Ordering::SeqCst)
                {
                    break;
                }
                outbox.take_all(&mut batch, Duration::from_millis(50));
                // One lock of the writer and one permit release per batch.
                let mut writer = lock(&writer);
                received += batch.len() as u64;
                let emitted: u64 = batch.drain(..).map(|o| writer.accept(o)).sum();
                writer.tick();
                drop(writer);
                permits.release(emitted as usize);
            }
            lock(&writer).write_everything(&outbox);
        })
        .context("starting the writer thread")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::Status;
    use crate::telemetry::SharedBar;

    /// Collects what is written.
    #[derive(Debug, Clone, Default)]
    struct Collect(Arc<Mutex<Vec<u64>>>);

    impl OutcomeSink for Collect {
        fn write(&mut self, outcome: &Outcome) -> std::io::Result<()> {
            lock(&self.0).push(outcome.line);
            Ok(())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn writer(ordered: bool, sink: Collect) -> Writer {
        let progress = Progress::new(&SharedBar::default(), false, None);
        Writer::new(
            Box::new(sink),
            ordered,
            progress,
            Arc::new(AtomicBool::new(false)),
        )
    }

    fn outcome(seq: u64) -> Outcome {
        let mut outcome = Outcome::unrun(seq + 1, None, None, Status::Ok, String::new());
        outcome.seq = seq;
        outcome
    }

    #[test]
    fn the_writer_reorders_and_counts_what_it_emits() {
        let sink = Collect::default();
        let mut writer = writer(true, sink.clone());
        assert_eq!(writer.accept(outcome(2)), 0);
        assert_eq!(writer.accept(outcome(1)), 0);
        assert_eq!(writer.accept(outcome(0)), 3);
        assert_eq!(writer.accept(outcome(4)), 0);
        assert_eq!(*lock(&sink.0), [1, 2, 3]);
        // An emergency flush writes what is buffered, gaps and all.
        assert_eq!(writer.drain_pending(), 1);
        assert_eq!(*lock(&sink.0), [1, 2, 3, 5]);
    }

    #[test]
    fn the_unordered_writer_writes_at_once() {
        let sink = Collect::default();
        let mut writer = writer(false, sink.clone());
        assert_eq!(writer.accept(outcome(3)), 1);
        assert_eq!(writer.accept(outcome(0)), 1);
        assert_eq!(*lock(&sink.0), [4, 1]);
    }
}
