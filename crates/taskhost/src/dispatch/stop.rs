//! Ending a run early: Ctrl-C (cancel what is queued, ask what runs to stop), the end of the
//! shutdown grace (report what still runs), and a plugin calling `exit` (every record out).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use taskhost_executor::TaskFuture;

use super::attempt::Dispatcher;
use super::job::Job;
use super::lock;
use super::outbox::Outbox;
use super::writer::Writer;
use crate::sink::{millis, rfc3339, Outcome, Status};

impl Dispatcher {
    /// Ctrl-C: cancel what is queued, ask what runs to stop.
    pub(crate) fn stop_all(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        let futures = self
            .running
            .collect(|r| Some((r.future.clone()?, r.job.span.clone())));
        for (future, span) in futures {
            let _entered = span.enter();
            if !future.cancel() {
                future.request_stop();
            }
        }
        self.cancel_retries();
    }

    /// Nothing starts from now on: what is queued or waits to retry is cancelled; what runs
    /// goes on (see [`super::RunControl::cancel_unstarted`]).
    pub(crate) fn stop_starting(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        for future in self.running.collect(|r| r.future.clone()) {
            // Wins only against an attempt that has not started.
            future.cancel();
        }
        self.cancel_retries();
    }

    fn cancel_retries(&self) {
        for job in self.timer.take_retries() {
            self.cancel_waiting(job, "interrupted while waiting to retry");
        }
    }

    /// Records `job`, taken from the timer before its retry, `cancelled` for `why`; its record
    /// counts the attempts it made, not the one it waited for.
    pub(crate) fn cancel_waiting(&self, mut job: Job, why: &str) {
        job.attempt = job.attempt.saturating_sub(1).max(1);
        self.finish(job, Status::Cancelled, None, Some(why.into()));
    }

    /// After the grace period: report what still runs (or waits) as cancelled, for `reason`.
    /// Returns the tasks that were running, as `task (id, line)`.
    pub(crate) fn abandon_running(&self, reason: &str) -> Vec<String> {
        let abandoned = self.running.drain();
        self.cancel_retries();
        let mut ran = Vec::new();
        for (seq, running) in abandoned {
            let timings = running
                .future
                .as_ref()
                .map(TaskFuture::timings)
                .unwrap_or_default();
            let ran_for = running.ran_so_far();
            let started = running.started_at();
            let job = running.job;
            if timings.queue_wait.is_some() {
                ran.push(format!(
                    "{} (id {:?}, line {})",
                    job.task.name, job.item.id, job.line
                ));
            }
            self.send(Outcome {
                id: job.item.id,
                task: Some(Arc::clone(&job.task.name)),
                status: Status::Cancelled,
                output: None,
                error: Some(reason.to_owned()),
                pool: Some(Arc::clone(&job.task.pool_name)),
                worker: job.worker,
                started: job.started.or(started).map(rfc3339),
                attempts: job.attempt,
                waited_ms: millis(Some(job.waited + timings.queue_wait.unwrap_or_default())),
                ran_ms: millis(Some(job.ran + ran_for)),
                line: job.line,
                seq,
            });
        }
        ran
    }
}

/// Plugin code called `exit` during the run (see [`super::exit_watch`]): records the unfinished
/// items `cancelled`, writes and commits every record, and says what was running.
pub(crate) fn unexpected_exit(
    dispatcher: &Dispatcher,
    slot: &Mutex<Writer>,
    outbox: &Outbox<Outcome>,
) -> String {
    dispatcher.stopping.store(true, Ordering::SeqCst);
    let running = dispatcher.abandon_running(
        "the process was ended by a plugin calling exit() before this item finished",
    );
    lock(slot).write_everything(outbox);
    // The writer thread may hold a batch it took just before: a moment for it to write it.
    std::thread::sleep(Duration::from_millis(20));
    let mut writer = lock(slot);
    writer.drain_pending();
    writer.flush();
    let mut message = format!(
        "a plugin ended the process with exit() in the middle of the run; {} records are written \
         (the unfinished items' as `cancelled`)",
        writer.written
    );
    if let Some(error) = &writer.error {
        message = format!("{message}, but writing them failed: {error}");
    }
    match running.len() {
        0 => message.push_str("; no task was running"),
        n => {
            let shown: Vec<&str> = running.iter().take(10).map(String::as_str).collect();
            let more = if n > shown.len() {
                format!(" and {} more", n - shown.len())
            } else {
                String::new()
            };
            message.push_str(&format!("; running then: {}{more}", shown.join(", ")));
        }
    }
    message
}
