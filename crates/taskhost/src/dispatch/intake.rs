//! Taking entries in: the reader thread, which reads and parses ahead of the dispatcher, and
//! what the dispatch loop does with each entry (route it to its pool, or record why not).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};

use super::attempt::Dispatcher;
use super::catalog::Catalog;
use super::handoff;
use super::job::Job;
use crate::sink::{Outcome, Status};
use crate::source::{parse_line, EntryBody, InvalidLine, WorkItem, WorkSource};

/// An entry as the reader hands it over: parsed, or with the reason it cannot run.
#[derive(Debug)]
pub(crate) struct Parsed {
    pub(crate) line: u64,
    pub(crate) body: ParsedBody,
}

#[derive(Debug)]
pub(crate) enum ParsedBody {
    Item(WorkItem),
    /// Not a work item (bad JSON, a wrong type, a duplicate id): recorded `invalid`.
    Invalid(InvalidLine),
    /// Longer than `run.max_line_bytes`: recorded `rejected`.
    Oversized {
        bytes: usize,
    },
}

/// Starts the reader thread: it parses each entry (here, not in the dispatcher, the pipeline's
/// busiest thread) and hands it over through a bounded queue until the source ends, `stop` is
/// set or the dispatcher hangs up.
pub(crate) fn spawn_reader(
    mut source: Box<dyn WorkSource>,
    stop: Arc<AtomicBool>,
) -> Result<handoff::Receiver<std::io::Result<Parsed>>> {
    let (entries, received) = handoff::channel::<std::io::Result<Parsed>>();
    std::thread::Builder::new()
        .name("taskhost-reader".to_owned())
        .spawn(move || loop {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            match source.next_entry() {
                Ok(Some(entry)) => {
                    let body = match entry.body {
                        EntryBody::Item(item) => ParsedBody::Item(item),
                        EntryBody::Line(bytes) => match parse_line(&bytes, entry.line) {
                            Ok(item) => ParsedBody::Item(item),
                            Err(invalid) => ParsedBody::Invalid(invalid),
                        },
                        EntryBody::Oversized { bytes } => ParsedBody::Oversized { bytes },
                        EntryBody::Refused(invalid) => ParsedBody::Invalid(invalid),
                    };
                    let parsed = Parsed {
                        line: entry.line,
                        body,
                    };
                    if entries.send(Ok(parsed)).is_err() {
                        break;
                    }
                }
                Ok(None) => break,
                Err(error) => {
                    let _ = entries.send(Err(error));
                    break;
                }
            }
        })
        .context("starting the reader thread")?;
    Ok(received)
}

/// An entry taken in after a stop: recorded `cancelled`, never run.
pub(crate) fn cancel_entry(dispatcher: &Dispatcher, entry: Parsed, seq: u64) {
    let (id, task) = match entry.body {
        ParsedBody::Item(item) => (Some(item.id), Some(item.task)),
        ParsedBody::Invalid(invalid) => (invalid.id, invalid.task),
        ParsedBody::Oversized { .. } => (None, None),
    };
    let mut outcome = Outcome::unrun(
        entry.line,
        id,
        task,
        Status::Cancelled,
        "interrupted before it started".to_owned(),
    );
    outcome.seq = seq;
    dispatcher.send(outcome);
}

/// Routes one entry to its pool, or records why it cannot run.
pub(crate) fn dispatch_entry(
    dispatcher: &Arc<Dispatcher>,
    catalog: &Catalog,
    entry: Parsed,
    seq: u64,
) {
    let line = entry.line;
    let unrun = |id: Option<String>, task: Option<String>, status: Status, error: String| {
        tracing::info!(
            target: "taskhost",
            line,
            id = id.as_deref(),
            task = task.as_deref(),
            error = %error,
            "{}",
            if status == Status::Invalid { "item.invalid" } else { "item.rejected" }
        );
        let mut outcome = Outcome::unrun(line, id, task, status, error);
        outcome.seq = seq;
        dispatcher.send(outcome);
    };
    let item = match entry.body {
        ParsedBody::Item(item) => item,
        ParsedBody::Oversized { bytes } => {
            let error = format!("line {line} is {bytes} bytes, longer than run.max_line_bytes");
            return unrun(None, None, Status::Rejected, error);
        }
        ParsedBody::Invalid(invalid) => {
            let error = format!("line {line}: {}", invalid.message);
            return unrun(invalid.id, invalid.task, Status::Invalid, error);
        }
    };
    let Some(task) = catalog.get(&item.task) else {
        let error = format!("line {line}: {}", catalog.unknown(&item.task));
        return unrun(Some(item.id), Some(item.task), Status::Rejected, error);
    };
    let span = tracing::info_span!(
        target: "taskhost",
        "item",
        id = %item.id,
        task = %task.name,
        plugin = %task.plugin,
        pool = %task.pool_name,
        line,
    );
    dispatcher.submit(Job {
        seq,
        line,
        item,
        task: Arc::clone(task),
        attempt: 1,
        waited: Duration::ZERO,
        ran: Duration::ZERO,
        started: None,
        worker: None,
        span,
    });
}
