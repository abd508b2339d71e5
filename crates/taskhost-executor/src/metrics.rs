//! Pool counters: relaxed atomics behind `inc_*` methods, read as a [`MetricsSnapshot`]. Three
//! groups, each on cache lines of its own: the submit side (striped per submitting thread, summed
//! on read), one set per worker (written by that worker alone, with a plain load and store instead
//! of a locked add, summed on read), and rare events.

use crate::sync::counter::{AtomicU64, AtomicUsize};
use crate::sync::{Ordering::Relaxed, Striped};

/// Keeps a group of counters on its own cache line, so submitters and workers do not fight over
/// one line.
#[derive(Default)]
#[repr(align(128))]
pub(crate) struct Padded<T>(pub(crate) T);

/// Counters written by submitting threads (one set per stripe, summed on read). Submits that
/// started are counted by the executor's own stripes (its shutdown protocol needs them);
/// `submitted` is those less the refusals.
#[derive(Default)]
pub(crate) struct SubmitSide {
    /// Submissions refused.
    pub(crate) rejected: AtomicU64,
}

/// Counters written by workers. Each worker has its own set (in its slot), so workers never
/// share a cache line on the hot path; the pool-wide set counts work done outside workers
/// (caller-runs, drains).
#[derive(Default)]
pub(crate) struct WorkerSide {
    /// Items taken off the queue (run, skipped or drained).
    pub(crate) dequeued: AtomicU64,
    /// Tasks that started running.
    pub(crate) started: AtomicU64,
    /// Tasks that stopped running, whatever the outcome.
    pub(crate) stopped: AtomicU64,
    /// Tasks that returned normally.
    pub(crate) completed: AtomicU64,
    /// Tasks that panicked.
    pub(crate) failed: AtomicU64,
    /// Only one thread ever writes these counters (a worker's own set): increments are a plain
    /// load and store, not a locked read-modify-write. Readers only ever load.
    sole_writer: bool,
}

impl WorkerSide {
    /// A set written by one thread only (a worker's own).
    pub(crate) fn sole_writer() -> Self {
        WorkerSide {
            sole_writer: true,
            ..WorkerSide::default()
        }
    }

    #[inline]
    fn add_one(&self, counter: &AtomicU64) {
        if self.sole_writer {
            counter.store(counter.load(Relaxed).wrapping_add(1), Relaxed);
        } else {
            counter.fetch_add(1, Relaxed);
        }
    }
    #[inline]
    pub(crate) fn inc_dequeued(&self) {
        self.add_one(&self.dequeued);
    }
    #[inline]
    pub(crate) fn inc_started(&self) {
        self.add_one(&self.started);
    }
    #[inline]
    pub(crate) fn inc_stopped(&self) {
        self.add_one(&self.stopped);
    }
    #[inline]
    pub(crate) fn inc_completed(&self) {
        self.add_one(&self.completed);
    }
    #[inline]
    pub(crate) fn inc_failed(&self) {
        self.add_one(&self.failed);
    }

    /// Adds these counters into `totals`.
    pub(crate) fn add_to(&self, totals: &mut WorkerTotals) {
        totals.dequeued += self.dequeued.load(Relaxed);
        totals.started += self.started.load(Relaxed);
        totals.stopped += self.stopped.load(Relaxed);
        totals.completed += self.completed.load(Relaxed);
        totals.failed += self.failed.load(Relaxed);
    }
}

/// Plain sums of [`WorkerSide`] counters.
#[derive(Default, Clone, Copy)]
pub(crate) struct WorkerTotals {
    pub(crate) dequeued: u64,
    pub(crate) started: u64,
    pub(crate) stopped: u64,
    pub(crate) completed: u64,
    pub(crate) failed: u64,
}

/// Counters written rarely.
#[derive(Default)]
pub(crate) struct Rare {
    /// Futures that ended cancelled, whatever the reason.
    pub(crate) cancelled: AtomicU64,
    /// Futures failed unrun because the pool broke (reported within `failed`).
    pub(crate) broken: AtomicU64,
    /// Workers currently blocked waiting for work.
    pub(crate) workers_idle: AtomicUsize,
    /// Highest number of workers alive at once.
    pub(crate) workers_peak: AtomicUsize,
    /// Worker threads ever started.
    pub(crate) workers_spawned: AtomicU64,
    /// Worker threads that exited.
    pub(crate) workers_retired: AtomicU64,
}

/// All the counters of one pool, shared by the executor, its workers and its futures.
#[derive(Default)]
pub(crate) struct Metrics {
    pub(crate) submit: Striped<SubmitSide>,
    pub(crate) worker: Padded<WorkerSide>,
    pub(crate) rare: Padded<Rare>,
}

impl Metrics {
    pub(crate) fn inc_rejected(&self) {
        self.submit.mine().rejected.fetch_add(1, Relaxed);
    }
    pub(crate) fn inc_cancelled(&self) {
        self.rare.0.cancelled.fetch_add(1, Relaxed);
    }
    pub(crate) fn inc_broken(&self) {
        self.rare.0.broken.fetch_add(1, Relaxed);
    }
    pub(crate) fn inc_idle(&self) {
        self.rare.0.workers_idle.fetch_add(1, Relaxed);
    }
    pub(crate) fn dec_idle(&self) {
        self.rare.0.workers_idle.fetch_sub(1, Relaxed);
    }
    pub(crate) fn on_spawn(&self, alive_now: usize) {
        self.rare.0.workers_spawned.fetch_add(1, Relaxed);
        self.rare.0.workers_peak.fetch_max(alive_now, Relaxed);
    }
    pub(crate) fn inc_retired(&self) {
        self.rare.0.workers_retired.fetch_add(1, Relaxed);
    }

    /// Reads every counter. The values are read one by one, so while the pool is busy they may
    /// disagree slightly with each other; once the pool is quiet they add up.
    /// `entered` counts every submit that started (accepted or refused); `workers` holds the
    /// counters of every worker, alive or retired.
    pub(crate) fn snapshot(
        &self,
        entered: impl FnOnce() -> u64,
        workers_alive: usize,
        workers: WorkerTotals,
    ) -> MetricsSnapshot {
        let mut totals = workers;
        self.worker.0.add_to(&mut totals);
        // Refusals are read before the submits that started: a submit refused between the two
        // reads counts as submitted for now (as one still in flight does), never the reverse.
        let rejected: u64 = self.submit.iter().map(|s| s.rejected.load(Relaxed)).sum();
        let submitted = entered().saturating_sub(rejected);
        let WorkerTotals {
            dequeued,
            started,
            stopped,
            completed,
            failed,
        } = totals;
        MetricsSnapshot {
            workers_alive,
            workers_idle: self.rare.0.workers_idle.load(Relaxed),
            workers_peak: self.rare.0.workers_peak.load(Relaxed),
            workers_spawned: self.rare.0.workers_spawned.load(Relaxed),
            workers_retired: self.rare.0.workers_retired.load(Relaxed),
            submitted,
            queued: submitted.saturating_sub(dequeued),
            running: started.saturating_sub(stopped),
            completed,
            failed: failed + self.rare.0.broken.load(Relaxed),
            cancelled: self.rare.0.cancelled.load(Relaxed),
            rejected,
        }
    }
}

/// A point-in-time copy of a pool's counters, from [`Executor::metrics`](crate::Executor::metrics).
///
/// Field names are a stable API. Once every future has resolved,
/// `submitted == completed + failed + cancelled`.
///
/// ```
/// use taskhost_executor::Executor;
///
/// let pool = Executor::new(2).unwrap();
/// pool.submit(|| 1).unwrap().result(None).unwrap();
/// pool.shutdown_and_wait();
/// let m = pool.metrics();
/// assert_eq!((m.submitted, m.completed, m.workers_alive), (1, 1, 0));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MetricsSnapshot {
    /// Worker threads alive now.
    pub workers_alive: usize,
    /// Worker threads blocked waiting for work now.
    pub workers_idle: usize,
    /// The most worker threads alive at once so far.
    pub workers_peak: usize,
    /// Worker threads started so far.
    pub workers_spawned: u64,
    /// Worker threads that have exited so far (idle timeout, task limit, shutdown, broken pool).
    pub workers_retired: u64,
    /// Tasks accepted so far (including those run in the caller's thread by `WhenFull::CallerRuns`).
    pub submitted: u64,
    /// Items waiting in the queue now (cancelled items stay queued until a worker skips them).
    pub queued: u64,
    /// Tasks running now.
    pub running: u64,
    /// Tasks that returned normally.
    pub completed: u64,
    /// Tasks that panicked, and futures failed unrun because the pool broke (Python finishes
    /// those with `BrokenThreadPool`; they are not cancelled).
    pub failed: u64,
    /// Futures that ended cancelled, whatever the [`CancelReason`](crate::CancelReason). A
    /// future cancelled by the user while queued is counted when its item leaves the queue.
    pub cancelled: u64,
    /// Submissions refused (queue full, shut down, broken pool).
    pub rejected: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_derives_queued_and_running() {
        let m = Metrics::default();
        m.inc_rejected();
        let w = &m.worker.0;
        w.inc_dequeued();
        w.inc_dequeued();
        w.inc_started();
        w.inc_started();
        w.inc_stopped();
        m.on_spawn(3);
        m.on_spawn(2);
        let retired = WorkerTotals {
            completed: 1,
            ..WorkerTotals::default()
        };
        let s = m.snapshot(|| 6, 2, retired);
        assert_eq!(
            (s.submitted, s.queued, s.running, s.completed, s.rejected),
            (5, 3, 1, 1, 1)
        );
        assert_eq!(
            (s.workers_alive, s.workers_peak, s.workers_spawned),
            (2, 3, 2)
        );
    }

    #[test]
    fn counter_groups_sit_on_separate_cache_lines() {
        assert!(std::mem::align_of::<Padded<WorkerSide>>() >= 128);
    }
}
