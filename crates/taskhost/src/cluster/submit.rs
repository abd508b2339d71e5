//! `taskhost submit`: publishes the items of the input (message ids from the run id and the
//! item id, so publishing again duplicates nothing), then writes exactly one record per input
//! line from the run's results: the workers' records, and the submitter's own verdicts, which
//! it publishes there too (the server keeps the first outcome stored for an item, so a worker
//! that finishes an item just as the submitter gives up on it leaves one record, not two):
//!
//! - an item whose plugin no live worker serves (no heartbeat names it, no pull waits on its
//!   queue, no worker holds one of its items) for `cluster.worker_wait` is `rejected` and
//!   deleted from the queue;
//! - an item the server gave up on (the max-deliveries advisory) is `failed`, "gave up after
//!   N deliveries", and deleted;
//! - on Ctrl-C, queued items are deleted, running ones asked to stop, and what has no record
//!   after `run.shutdown_grace` is `cancelled`; exit status 130.
//!
//! Lines that are not work items are recorded locally, as `taskhost run` records them. At most
//! `run.max_in_flight` items are between read and written. `--resume RUN_ID` reads what the
//! run stored first and submits only what has no record yet.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::path::Path;
use std::sync::mpsc::{self, Receiver, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use taskhost_cluster::{DeadLetters, Heartbeats, NewItem, Queue, Results};

use super::collect::{Collector, Outstanding, Pending};
use super::heartbeat::{Heartbeat, INTERVAL};
use super::{cluster_config, connect, record, SubmitArgs};
use crate::app::{
    init_telemetry, load_settings, Failure, OrExit, EXIT_NOT_ALL_OK, EXIT_OK, EXIT_USAGE,
};
use crate::cli::Cli;
use crate::config::cluster::ClusterConfig;
use crate::config::duration::format_duration;
use crate::progress::Summary;
use crate::signals::{Interrupts, INTERRUPTED_EXIT};
use crate::sink::{Outcome, Status};
use crate::source::{parse_line, Entry, EntryBody, JsonlSource, WorkSource};
use crate::telemetry::SharedBar;

/// How many items are published at once.
const PUBLISH_BATCH: usize = 256;

/// How often the submitter looks at dead letters and at plugins no worker serves.
const CHECK_EVERY: Duration = Duration::from_millis(500);

/// A resumed run reads what is stored until the results pause this long.
const STORED_PAUSE: Duration = Duration::from_millis(500);

pub(super) fn run(cli: &Cli, args: &SubmitArgs, file: Option<&Path>) -> Result<u8, Failure> {
    let (settings, _) = load_settings(file)?;
    let config = cluster_config(&settings, "submit")?;
    let bar = SharedBar::default();
    let _guard = init_telemetry(cli, &settings, &bar)?;
    let run_id = match &args.resume {
        Some(run_id) => check_run_id(run_id)?,
        None => new_run_id(),
    };
    let output: File = if args.output == "-" {
        crate::sink::take_stdout().or_exit(EXIT_USAGE)?
    } else {
        crate::sink::create_output(Path::new(&args.output))
            .with_context(|| format!("creating output {}", args.output))
            .or_exit(EXIT_USAGE)?
    };
    let input: Box<dyn BufRead + Send> = if args.input == "-" {
        Box::new(BufReader::new(io::stdin()))
    } else {
        let file = File::open(&args.input)
            .with_context(|| format!("opening input {}", args.input))
            .or_exit(EXIT_USAGE)?;
        Box::new(BufReader::with_capacity(256 * 1024, file))
    };
    let interrupts = Interrupts::install().or_exit(EXIT_NOT_ALL_OK)?;
    let queue = connect(config)?;
    eprintln!(
        "taskhost submit: run {run_id} (reattach with `taskhost submit --resume {run_id}` and the same input)"
    );
    let entries = read_input(JsonlSource::new(input, settings.run.max_line_bytes))
        .or_exit(EXIT_NOT_ALL_OK)?;
    let mut submission = Submission {
        results: queue.results(&run_id).or_exit(EXIT_NOT_ALL_OK)?,
        dead_letters: queue.dead_letters().or_exit(EXIT_NOT_ALL_OK)?,
        heartbeats: queue.heartbeats().or_exit(EXIT_NOT_ALL_OK)?,
        queue,
        run_id,
        config,
        grace: settings.run.shutdown_grace,
        max_in_flight: settings.run.max_in_flight,
        entries,
        input_done: false,
        outstanding: Outstanding::default(),
        taken: 0,
        collector: Collector::new(output, args.ordered),
        last_alive: Default::default(),
        interrupts: Arc::clone(&interrupts),
        started: Instant::now(),
    };
    let interrupted = submission.run(args.resume.is_some());
    let collector = &mut submission.collector;
    collector.finish();
    if let Some(error) = collector.error.take() {
        return Err(Failure {
            code: EXIT_NOT_ALL_OK,
            error: anyhow::Error::new(error).context("writing outcomes"),
        });
    }
    let summary = Summary {
        counts: std::mem::take(&mut collector.counts),
        wall: submission.started.elapsed(),
        pools: Vec::new(),
        interrupted,
        output_closed: false,
    };
    if !cli.global.quiet {
        eprint!("{summary}");
    }
    Ok(if interrupted {
        INTERRUPTED_EXIT as u8
    } else if summary.all_ok() {
        EXIT_OK
    } else {
        EXIT_NOT_ALL_OK
    })
}

/// A run id from the clock and the process id: `r` and hex digits.
fn new_run_id() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos());
    format!("r{nanos:x}{:x}", std::process::id())
}

fn check_run_id(run_id: &str) -> Result<String, Failure> {
    let fits = (1..=64).contains(&run_id.len())
        && run_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'));
    if fits {
        Ok(run_id.to_owned())
    } else {
        Err(Failure {
            code: EXIT_USAGE,
            error: anyhow::anyhow!(
                "--resume: expected a run id as `taskhost submit` printed it (1 to 64 of A-Z a-z \
                 0-9 _ -), found {run_id:?}"
            ),
        })
    }
}

/// Reads the input on a thread of its own (stdin may be slow), a bounded way ahead.
fn read_input(
    mut source: JsonlSource<Box<dyn BufRead + Send>>,
) -> io::Result<Receiver<io::Result<Entry>>> {
    let (sender, entries) = mpsc::sync_channel(PUBLISH_BATCH);
    std::thread::Builder::new()
        .name("taskhost-reader".to_owned())
        .spawn(move || loop {
            let entry = source.next_entry().transpose();
            let end = !matches!(entry, Some(Ok(_)));
            if let Some(entry) = entry {
                if sender.send(entry).is_err() {
                    break;
                }
            }
            if end {
                break;
            }
        })?;
    Ok(entries)
}

/// An item ready to publish.
struct Ready {
    id: String,
    pending: Pending,
    task_name: String,
    payload: Vec<u8>,
}

struct Submission<'a, W: Write> {
    queue: Queue,
    run_id: String,
    config: &'a ClusterConfig,
    grace: Duration,
    max_in_flight: usize,
    entries: Receiver<io::Result<Entry>>,
    input_done: bool,
    results: Results,
    dead_letters: DeadLetters,
    /// The workers' heartbeats: which plugins some live worker has loaded.
    heartbeats: Heartbeats,
    outstanding: Outstanding,
    /// Entries taken from the input so far (the next one's index).
    taken: u64,
    collector: Collector<W>,
    /// When a worker was last seen serving each plugin (pulling from its queue, holding one of
    /// its items, or naming it in a heartbeat).
    last_alive: std::collections::HashMap<String, Instant>,
    interrupts: Arc<Interrupts>,
    started: Instant,
}

impl<W: Write> Submission<'_, W> {
    /// Submits and collects until every entry has its record; returns whether it was
    /// interrupted.
    fn run(&mut self, resuming: bool) -> bool {
        if resuming {
            self.read_stored();
        }
        let mut last_check = Instant::now();
        loop {
            if self.interrupts.requested() {
                self.cancel();
                return true;
            }
            let in_flight = self.taken - self.collector.written;
            let room = self.max_in_flight.saturating_sub(in_flight as usize);
            let took = if self.input_done || room == 0 {
                0
            } else {
                self.take_input(room.min(PUBLISH_BATCH))
            };
            let wait = if took > 0 {
                Duration::ZERO
            } else {
                Duration::from_millis(50)
            };
            self.collect(wait);
            if last_check.elapsed() >= CHECK_EVERY {
                last_check = Instant::now();
                self.check_dead_letters();
                self.check_unclaimed();
            }
            self.collector.tick();
            if self.input_done && self.outstanding.pending.is_empty() && self.collector.held() == 0
            {
                return false;
            }
        }
    }

    /// A resumed run: what the first submitter's run stored, before any input is read.
    fn read_stored(&mut self) {
        let mut count = 0u64;
        loop {
            match self.results.next(STORED_PAUSE) {
                Ok(Some(outcome)) => {
                    count += 1;
                    self.outstanding.complete(outcome.item_id, outcome.payload);
                }
                Ok(None) => break,
                Err(error) => {
                    tracing::warn!(target: "taskhost::cluster", "{error}");
                    break;
                }
            }
        }
        eprintln!(
            "taskhost submit: run {}: {count} records stored already",
            self.run_id
        );
    }

    /// Takes up to `max` entries from the input and publishes the items among them; how many
    /// entries it took.
    fn take_input(&mut self, max: usize) -> usize {
        let mut ready = Vec::new();
        let mut took = 0;
        while took < max {
            let entry = match self.entries.try_recv() {
                Ok(Ok(entry)) => entry,
                Ok(Err(error)) => {
                    tracing::error!(target: "taskhost", "reading the input: {error}");
                    self.input_done = true;
                    break;
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    self.input_done = true;
                    break;
                }
            };
            let index = self.taken;
            self.taken += 1;
            took += 1;
            match self.classify(entry, index) {
                Ok(item) => ready.push(item),
                Err(Some(record)) => self.collector.emit(index, record),
                Err(None) => {}
            }
        }
        if !ready.is_empty() {
            self.publish(ready);
        }
        took
    }

    /// An item to publish, or its record already (a line that is not a work item, or a
    /// resumed run's item that has one), or nothing (recorded meanwhile).
    fn classify(&mut self, entry: Entry, index: u64) -> Result<Ready, Option<Vec<u8>>> {
        let line = entry.line;
        let local = |id: Option<String>, task: Option<String>, status, error: String| {
            let outcome = Outcome::unrun(line, id, task, status, error);
            Some(record::record(&outcome, None, 0))
        };
        let item = match entry.body {
            EntryBody::Line(bytes) => match parse_line(&bytes, line) {
                Ok(item) => item,
                Err(invalid) => {
                    let error = format!("line {line}: {}", invalid.message);
                    return Err(local(invalid.id, invalid.task, Status::Invalid, error));
                }
            },
            EntryBody::Oversized { bytes } => {
                let error = format!("line {line} is {bytes} bytes, longer than run.max_line_bytes");
                return Err(local(None, None, Status::Rejected, error));
            }
            EntryBody::Item(item) => item,
            EntryBody::Refused(invalid) => {
                let error = format!("line {line}: {}", invalid.message);
                return Err(local(invalid.id, invalid.task, Status::Invalid, error));
            }
        };
        if !self.outstanding.read(&item.id) {
            let error = format!(
                "line {line}: id {:?} is an earlier line's too: in a cluster run each item needs \
                 an id of its own",
                item.id
            );
            return Err(local(
                Some(item.id),
                Some(item.task),
                Status::Invalid,
                error,
            ));
        }
        let Some((plugin, task)) = split_task(&item.task) else {
            let error = format!(
                "line {line}: unknown task {:?}: expected \"plugin/task\", each of A-Z a-z 0-9 _ - .",
                item.task
            );
            return Err(local(
                Some(item.id),
                Some(item.task),
                Status::Rejected,
                error,
            ));
        };
        if let Some(record) = self.outstanding.stored(&item.id) {
            return Err(Some(record));
        }
        Ok(Ready {
            payload: record::item_payload(line, &item.input),
            task_name: task.to_owned(),
            pending: Pending {
                index,
                line,
                task: item.task.clone(),
                plugin: plugin.to_owned(),
                sequence: None,
                since: Instant::now(),
                decided: false,
            },
            id: item.id,
        })
    }

    /// Publishes `ready` (again and again while the server is away, until Ctrl-C).
    fn publish(&mut self, mut ready: Vec<Ready>) {
        let mut backoff = Duration::from_millis(200);
        while !ready.is_empty() {
            let items: Vec<NewItem<'_>> = ready
                .iter()
                .map(|item| NewItem {
                    run_id: &self.run_id,
                    item_id: &item.id,
                    plugin: &item.pending.plugin,
                    task: &item.task_name,
                    payload: &item.payload,
                })
                .collect();
            let published = self.queue.publish_items(&items);
            let mut failed = Vec::new();
            let mut last_error = None;
            for (mut item, result) in ready.into_iter().zip(published) {
                match result {
                    Ok(published) => {
                        item.pending.sequence = Some(published.sequence);
                        item.pending.since = Instant::now();
                        self.outstanding.pending.insert(item.id, item.pending);
                    }
                    Err(error) => {
                        last_error = Some(error);
                        failed.push(item);
                    }
                }
            }
            ready = failed;
            if let Some(error) = last_error {
                if self.interrupts.requested() {
                    // Never published: the cancel records them.
                    for item in ready {
                        self.outstanding.pending.insert(item.id, item.pending);
                    }
                    return;
                }
                tracing::warn!(
                    target: "taskhost::cluster",
                    "{error}; publishing {} items again in {backoff:?}",
                    ready.len()
                );
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }

    /// Takes the records that have come, waiting up to `wait` for the first.
    fn collect(&mut self, wait: Duration) {
        let mut wait = wait;
        for _ in 0..PUBLISH_BATCH * 4 {
            match self.results.next(wait) {
                Ok(Some(outcome)) => {
                    if let Some((pending, record)) =
                        self.outstanding.complete(outcome.item_id, outcome.payload)
                    {
                        self.collector.emit(pending.index, record);
                    }
                    wait = Duration::ZERO;
                }
                Ok(None) => return,
                Err(error) => {
                    tracing::warn!(target: "taskhost::cluster", "{error}; reading the results again");
                    std::thread::sleep(Duration::from_millis(500));
                    match self.queue.results(&self.run_id) {
                        Ok(results) => self.results = results,
                        Err(error) => tracing::warn!(target: "taskhost::cluster", "{error}"),
                    }
                    return;
                }
            }
        }
    }

    /// Publishes the submitter's own record for `id`; `false` when the server did not take it.
    fn decide(&mut self, id: &str, record: &[u8]) -> bool {
        match self.queue.publish_outcome(&self.run_id, id, record) {
            Ok(_) => {
                if let Some(pending) = self.outstanding.pending.get_mut(id) {
                    pending.decided = true;
                }
                true
            }
            Err(error) => {
                tracing::warn!(target: "taskhost::cluster", "{error}");
                false
            }
        }
    }

    /// Items the server gave up on: `failed`, and off the queue.
    fn check_dead_letters(&mut self) {
        loop {
            let dead = match self.dead_letters.next(Duration::ZERO) {
                Ok(Some(dead)) => dead,
                Ok(None) => return,
                Err(error) => {
                    tracing::warn!(target: "taskhost::cluster", "{error}");
                    return;
                }
            };
            let Some(item) = dead.item.filter(|item| item.run_id == self.run_id) else {
                continue;
            };
            let Some(pending) = self.outstanding.pending.get(&item.item_id) else {
                continue;
            };
            let error = format!(
                "gave up after {} deliveries (cluster.max_deliver): each worker that took it \
                 stopped or died before it finished",
                dead.deliveries
            );
            let record = pending.own_record(&item.item_id, Status::Failed, error, dead.deliveries);
            if self.decide(&item.item_id, &record) {
                let _ = self.queue.delete_item(dead.sequence);
            }
        }
    }

    /// Items whose plugin no live worker has served for `cluster.worker_wait`: `rejected`,
    /// and off the queue.
    fn check_unclaimed(&mut self) {
        let wait = self.config.worker_wait;
        let now = Instant::now();
        // A worker busy with other plugins' items may neither pull from nor hold this
        // plugin's: its heartbeat still says it serves it.
        while let Ok(Some(beat)) = self.heartbeats.next(Duration::ZERO) {
            if let Ok(heartbeat) = serde_json::from_slice::<Heartbeat>(&beat.payload) {
                for plugin in heartbeat.plugins {
                    self.last_alive.insert(plugin, now);
                }
            }
        }
        let mut overdue: Vec<String> = self
            .outstanding
            .pending
            .values()
            .filter(|p| !p.decided && p.sequence.is_some() && now.duration_since(p.since) >= wait)
            .map(|p| p.plugin.clone())
            .collect();
        overdue.sort();
        overdue.dedup();
        for plugin in overdue {
            let heard = self
                .last_alive
                .get(&plugin)
                .is_some_and(|&alive| now.duration_since(alive) < INTERVAL * 3);
            let served = heard
                || match self.queue.plugin_state(&plugin) {
                    Ok(Some(state)) => state.waiting_pulls > 0 || state.ack_pending > 0,
                    Ok(None) => false,
                    // The server cannot say: nothing is decided on a guess.
                    Err(_) => true,
                };
            if served {
                self.last_alive.insert(plugin, now);
                continue;
            }
            let alive = self.last_alive.get(&plugin).copied();
            let unclaimed: Vec<(String, Pending)> = self
                .outstanding
                .pending
                .iter()
                .filter(|(_, p)| p.plugin == plugin && !p.decided)
                .filter(|(_, p)| {
                    let since = alive.map_or(p.since, |alive| alive.max(p.since));
                    now.duration_since(since) >= wait
                })
                .map(|(id, p)| (id.clone(), p.clone()))
                .collect();
            for (id, pending) in unclaimed {
                if let Some(sequence) = pending.sequence {
                    let _ = self.queue.delete_item(sequence);
                }
                let error = format!(
                    "line {}: no worker took it within {} (cluster.worker_wait): no live worker \
                     serves plugin `{plugin}`, which task {} needs",
                    pending.line,
                    format_duration(wait),
                    pending.task
                );
                let record = pending.own_record(&id, Status::Rejected, error, 0);
                self.decide(&id, &record);
            }
        }
    }

    /// Ctrl-C: running items are asked to stop and queued ones deleted; what has no record
    /// once the grace is over is `cancelled`.
    fn cancel(&mut self) {
        eprintln!(
            "taskhost submit: interrupted: cancelling run {} ({} items without a record)",
            self.run_id,
            self.outstanding.pending.len()
        );
        if let Err(error) = self.queue.cancel_run(&self.run_id) {
            tracing::warn!(target: "taskhost::cluster", "{error}");
        }
        let sequences: Vec<u64> = self
            .outstanding
            .pending
            .values()
            .filter_map(|p| p.sequence)
            .collect();
        for sequence in sequences {
            let _ = self.queue.delete_item(sequence);
        }
        self.collect_until(Instant::now() + self.grace);
        let left: Vec<(String, Pending)> = self
            .outstanding
            .pending
            .iter()
            .map(|(id, p)| (id.clone(), p.clone()))
            .collect();
        for (id, pending) in &left {
            let error = "cancelled: its submitter was interrupted".to_owned();
            let record = pending.own_record(id, Status::Cancelled, error, 0);
            self.decide(id, &record);
        }
        self.collect_until(Instant::now() + Duration::from_secs(5));
        // The server took none of these: recorded here only.
        let unrecorded: Vec<(String, Pending)> = self.outstanding.pending.drain().collect();
        for (id, pending) in unrecorded {
            let error = "cancelled: its submitter was interrupted".to_owned();
            let record = pending.own_record(&id, Status::Cancelled, error, 0);
            self.collector.emit(pending.index, record);
        }
    }

    fn collect_until(&mut self, deadline: Instant) {
        while !self.outstanding.pending.is_empty() && Instant::now() < deadline {
            self.collect(Duration::from_millis(50));
        }
    }
}

/// `("plugin", "task")` of `plugin/task`, when both are names a subject can hold.
fn split_task(task: &str) -> Option<(&str, &str)> {
    let (plugin, name) = task.split_once('/')?;
    let fits = |part: &str| {
        !part.is_empty()
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    };
    (fits(plugin) && fits(name)).then_some((plugin, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_split_into_subject_tokens() {
        assert_eq!(split_task("testkit/echo"), Some(("testkit", "echo")));
        assert_eq!(
            split_task("my.plugin/sha_256"),
            Some(("my.plugin", "sha_256"))
        );
        for bad in ["echo", "/echo", "a/", "a/b/c", "a b/c", "a/*"] {
            assert_eq!(split_task(bad), None, "{bad}");
        }
    }

    #[test]
    fn run_ids_are_checked_and_made_fresh() {
        assert!(check_run_id("r18f0a9").is_ok());
        assert!(check_run_id("a.b").is_err());
        let (first, second) = (new_run_id(), new_run_id());
        assert_ne!(first, second);
        assert!(check_run_id(&first).is_ok());
    }
}
