//! The run: start the writer, the timer and the reader, run the dispatch loop, wait for every
//! outcome (or drain on a stop), then shut the pools down. Each step is a function of its own.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use taskhost_executor::ShutdownOptions;

use super::attempt::Dispatcher;
use super::catalog::Catalog;
use super::control::RunControl;
use super::intake::{self, Parsed};
use super::outbox::Outbox;
use super::permits::Permits;
use super::pools::Pools;
use super::timer::{Timer, TimerAction};
use super::writer::{self, Writer, WriterStop, WRITER_BATCH};
use super::{exit_watch, handoff, lock, stop};
use crate::config::settings::PoolSettings;
use crate::progress::{PoolUse, Progress, Summary};
use crate::signals::Interrupts;
use crate::sink::{Outcome, OutcomeSink};
use crate::source::WorkSource;
use crate::telemetry::SharedBar;

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub ordered: bool,
    pub max_in_flight: usize,
    pub shutdown_grace: Duration,
    pub progress: bool,
    /// Reaches single entries while the run goes (the cluster worker's cancels).
    pub control: RunControl,
}

/// What the run ended with.
#[derive(Debug)]
pub struct RunReport {
    pub summary: Summary,
    /// Reading the input failed part-way (the entries read before were run).
    pub source_error: Option<String>,
}

/// Runs every entry of `source` through the pools and writes one outcome per entry to `sink`.
#[allow(clippy::too_many_arguments)]
pub fn run(
    source: Box<dyn WorkSource>,
    sink: Box<dyn OutcomeSink>,
    catalog: &Catalog,
    pools: Pools,
    options: &RunOptions,
    interrupts: &Arc<Interrupts>,
    bar: &SharedBar,
) -> Result<RunReport> {
    let permits = Arc::new(Permits::new(options.max_in_flight.max(1)));
    let outbox = Arc::new(Outbox::new(
        (options.max_in_flight / 8).clamp(1, WRITER_BATCH),
    ));
    let output_failed = Arc::new(AtomicBool::new(false));
    let progress = Progress::new(bar, options.progress, source.len_hint());
    let writer = Arc::new(Mutex::new(Writer::new(
        sink,
        options.ordered,
        progress,
        Arc::clone(&output_failed),
    )));
    write_all_on_second_signal(interrupts, &writer, &outbox);
    let Pools {
        settings: pool_settings,
        executors,
        isolated,
    } = pools;
    let dispatcher = Arc::new(Dispatcher {
        executors,
        isolated,
        outcomes: Arc::clone(&outbox),
        running: Default::default(),
        stopping: AtomicBool::new(false),
        timer: Timer::default(),
        timeout_grace: options.shutdown_grace,
        abandoned: AtomicU64::new(0),
        stuck: pool_settings.iter().map(|_| AtomicUsize::new(0)).collect(),
        max_workers: pool_settings.iter().map(|p| p.max_workers).collect(),
    });
    let timer_thread = start_timer(&dispatcher)?;
    options.control.attach(&dispatcher);

    // Plugin code calling `exit` from here on: every record out, then a failing status.
    let exit_watch = {
        let (dispatcher, writer, outbox) = (
            Arc::clone(&dispatcher),
            Arc::clone(&writer),
            Arc::clone(&outbox),
        );
        exit_watch::arm(move || stop::unexpected_exit(&dispatcher, &writer, &outbox))
    };
    let writer_stop = Arc::new(WriterStop {
        expected: AtomicU64::new(u64::MAX),
        give_up: AtomicBool::new(false),
    });
    let writer_thread = writer::spawn(
        Arc::clone(&writer),
        Arc::clone(&outbox),
        Arc::clone(&permits),
        Arc::clone(&writer_stop),
    )?;
    let stop_reading = Arc::new(AtomicBool::new(false));
    let entries = intake::spawn_reader(source, Arc::clone(&stop_reading))?;

    let stop = || interrupts.requested() || output_failed.load(Ordering::SeqCst);
    let (taken, source_error) = dispatch_loop(
        &dispatcher,
        catalog,
        &entries,
        &permits,
        &stop_reading,
        &stop,
    );
    writer_stop.expected.store(taken, Ordering::SeqCst);
    let interrupted = wait_for_outcomes(
        &dispatcher,
        &writer_thread,
        &writer_stop,
        &stop_reading,
        options.shutdown_grace,
        &stop,
    ) | interrupts.requested();
    drop(entries);
    writer_thread
        .join()
        .map_err(|_| anyhow::anyhow!("the writer thread panicked"))?;
    // Every record is written: an `exit` now loses nothing. (Dropped here, while `dispatcher`
    // is still held: the watch's clone must not be the one that drops the pools.)
    drop(exit_watch);
    options.control.detach();
    dispatcher.timer.shut_down();
    let _ = timer_thread.join();
    interrupts.clear_hook();

    let mut writer = lock(&writer);
    let write_error = writer.error.take();
    let (counts, wall) = writer.progress.finish();
    drop(writer);
    let pools = shut_pools(dispatcher, &pool_settings, interrupted);
    // A closed pipe is how a reader says it has seen enough: a stop, not an error.
    let output_closed = write_error
        .as_ref()
        .is_some_and(|error| error.kind() == std::io::ErrorKind::BrokenPipe);
    if let Some(error) = write_error.filter(|_| !output_closed) {
        return Err(error).context("writing outcomes");
    }
    Ok(RunReport {
        summary: Summary {
            counts,
            wall,
            pools,
            interrupted: interrupted && !output_closed,
            output_closed,
        },
        source_error,
    })
}

/// A second Ctrl-C: write what is done and leave.
fn write_all_on_second_signal(
    interrupts: &Interrupts,
    writer: &Arc<Mutex<Writer>>,
    outbox: &Arc<Outbox<Outcome>>,
) {
    let (writer, outbox) = (Arc::clone(writer), Arc::clone(outbox));
    interrupts.on_second_signal(move || {
        let mut writer = lock(&writer);
        // Outcomes the writer had not taken yet are finished work too.
        writer.write_everything(&outbox);
        writer.progress.finish();
    });
}

fn start_timer(dispatcher: &Arc<Dispatcher>) -> Result<JoinHandle<()>> {
    let dispatcher = Arc::clone(dispatcher);
    std::thread::Builder::new()
        .name("taskhost-timer".to_owned())
        .spawn(move || {
            dispatcher.timer.run(|action| match action {
                TimerAction::Timeout { seq, attempt } => dispatcher.time_out(seq, attempt),
                TimerAction::Abandon { seq, attempt } => dispatcher.abandon(seq, attempt),
                TimerAction::Retry(job) => dispatcher.submit(*job),
            })
        })
        .context("starting the timer thread")
}

/// Takes entries until the source ends or a stop, each with a permit; returns how many were
/// taken (each gets exactly one outcome) and the source's error, if it failed part-way.
fn dispatch_loop(
    dispatcher: &Arc<Dispatcher>,
    catalog: &Catalog,
    entries: &handoff::Receiver<std::io::Result<Parsed>>,
    permits: &Permits,
    stop_reading: &AtomicBool,
    stop: &dyn Fn() -> bool,
) -> (u64, Option<String>) {
    let mut seq = 0u64;
    let mut source_error = None;
    loop {
        if stop() {
            break;
        }
        let entry = match entries.recv_timeout(Duration::from_millis(50)) {
            Ok(Ok(entry)) => entry,
            Ok(Err(error)) => {
                source_error = Some(format!("reading the input: {error}"));
                break;
            }
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        if !permits.acquire(stop) {
            // Interrupted while waiting: this entry was read, so it gets an outcome too.
            intake::cancel_entry(dispatcher, entry, seq);
            seq += 1;
            break;
        }
        intake::dispatch_entry(dispatcher, catalog, entry, seq);
        seq += 1;
    }
    if stop() {
        // Entries the reader already handed over get an outcome too; later ones were never
        // taken. They are counted before the total is published: published first, the writer
        // could count these outcomes in place of those still running and stop early, losing
        // the latter (found by `proptests::an_interrupt_at_any_moment_…`).
        stop_reading.store(true, Ordering::SeqCst);
        while let Some(Ok(entry)) = entries.try_recv() {
            intake::cancel_entry(dispatcher, entry, seq);
            seq += 1;
        }
    }
    (seq, source_error)
}

/// Waits for every outcome to be written. A stop now (or one that ended the dispatch loop)
/// cancels what is queued, asks what runs to stop, and waits only up to the grace period.
/// Returns whether the run was interrupted.
fn wait_for_outcomes(
    dispatcher: &Dispatcher,
    writer_thread: &JoinHandle<()>,
    writer_stop: &WriterStop,
    stop_reading: &AtomicBool,
    grace: Duration,
    stop: &dyn Fn() -> bool,
) -> bool {
    let wait_until = |deadline: Instant| {
        while !writer_thread.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    while !writer_thread.is_finished() {
        if stop() {
            // (The dispatch loop has ended: the reader is done, or the entries it handed over
            // were cancelled.)
            stop_reading.store(true, Ordering::SeqCst);
            dispatcher.stop_all();
            wait_until(Instant::now() + grace);
            dispatcher.abandon_running("still running when the shutdown grace period ended");
            // Every outcome is sent by now; a moment for the writer to take them, then stop.
            wait_until(Instant::now() + Duration::from_secs(2));
            writer_stop.give_up.store(true, Ordering::SeqCst);
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

/// Shuts the pools down and says how each was used. After an interrupt, or once a task was
/// given up on, it does not wait for tasks that ignore the stop.
fn shut_pools(
    dispatcher: Arc<Dispatcher>,
    settings: &[PoolSettings],
    interrupted: bool,
) -> Vec<PoolUse> {
    let abandoned = dispatcher.abandoned.load(Ordering::SeqCst) > 0;
    let mut used = Vec::new();
    for (settings, executor) in settings.iter().zip(&dispatcher.executors) {
        if interrupted || abandoned {
            executor.shutdown_with(ShutdownOptions {
                wait: false,
                cancel_queued: true,
            });
        } else {
            executor.shutdown_and_wait();
        }
        let metrics = executor.metrics();
        if metrics.completed > 0 || metrics.workers_peak > 0 {
            used.push(PoolUse {
                name: settings.name.clone(),
                max_workers: settings.max_workers,
                workers_peak: metrics.workers_peak,
                completed: metrics.completed,
            });
        }
    }
    if interrupted || abandoned {
        // Dropping an executor joins its workers; a task that ignores its stop request would
        // hold the exit up, so the pools are left to the process exit.
        std::mem::forget(dispatcher);
    }
    used
}
