//! A worker thread's life: when one starts (a submit that could claim no idle worker, or a
//! retiring worker's replacement), the loop it runs, and when it retires. This is the
//! spawn/idle/retire protocol; it follows Python 3.14's `ThreadPoolExecutor`:
//!
//! * `submit` pushes the item, then tries to claim an idle worker (`idle_tokens`, Python's
//!   `_idle_semaphore.acquire(timeout=0)`); only if none can be claimed and fewer than
//!   `max_workers` threads are alive does it start one, under the `workers` lock.
//! * A worker that finds the queue empty releases one idle token and blocks on the queue.
//! * A worker retires (idle timeout, task limit) under the `workers` lock: it first counts itself
//!   out of `alive`, then looks at the queue; if work is there it stays (idle) or starts its
//!   replacement (task limit). A submitter that pushed work and saw `alive` at the maximum is
//!   therefore always covered: either it sees the decrement and spawns, or the worker sees its
//!   item. SeqCst fences on both sides rule out the store-buffering interleaving.
//! * Shutdown and broken-pool drains first wait until no submit is in flight (`shutdown.rs`), so
//!   no item can land behind the point where workers stop.
//! * Once every worker that can exist is alive and none can retire while the pool is open (no
//!   idle timeout, no task limit), no thread will ever start again: submitters and workers then
//!   leave the idle tokens alone (`PoolInner::saturated`), so the busy case is a plain load.

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use crate::events::{
    emit_drop_panicked, emit_retired, emit_spawn_failed, emit_spawn_recovered, emit_spawned,
    panic_message,
};
use crate::pool::{PoolInner, Work, WorkerCtx, WorkerRecord, WorkerSlot, Workers};
use crate::queue::{Popped, Queue};
use crate::sync::{fence, lock, spin_wait, thread, Arc, Ordering};
use crate::worker_state::{self, WorkerInfo};

/// How long a submit that could not start the pool's only worker waits before each retry.
const SPAWN_RETRY_DELAYS_MS: [u64; 5] = [1, 4, 16, 64, 256];

impl PoolInner {
    /// After a push: claim an idle worker, or start one if below the maximum.
    #[inline]
    pub(crate) fn adjust_thread_count(self: &Arc<Self>) -> Result<(), std::io::Error> {
        if self.saturated() {
            Ok(())
        } else {
            self.claim_or_spawn()
        }
    }

    /// [`adjust_thread_count`](Self::adjust_thread_count) of a pool that is not saturated.
    #[inline(never)]
    fn claim_or_spawn(self: &Arc<Self>) -> Result<(), std::io::Error> {
        if self.try_claim_idle() {
            return Ok(());
        }
        if self.workers_can_retire {
            // Pairs with the fence in `retire_idle`/`retire_replacing` (see the module docs).
            fence(Ordering::SeqCst);
        }
        if self.alive.load(Ordering::SeqCst) >= self.max_workers {
            return Ok(());
        }
        let mut workers = lock(&self.workers);
        if self.alive.load(Ordering::SeqCst) < self.max_workers {
            if let Err(error) = self.spawn_locked(&mut workers) {
                drop(workers);
                return self.spawn_failed(error);
            }
        }
        Ok(())
    }

    /// Starts a worker (the caller holds the `workers` lock and saw room for one). A failure is
    /// logged once per streak of failures, with the count when a start succeeds again.
    fn spawn_locked(self: &Arc<Self>, workers: &mut Workers) -> Result<(), std::io::Error> {
        let mut retired = workers.retired_counts;
        workers.threads.retain_mut(|record| {
            // A worker drops its slot when it exits; a record without a handle was taken by
            // `join_all`, whose join may still be under way.
            let finished = match &record.handle {
                Some(handle) => thread::is_finished(handle),
                None => Arc::strong_count(&record.slot) == 1,
            };
            if finished {
                if let Some(handle) = record.handle.take() {
                    let _ = handle.join();
                }
                record.slot.counts.0.add_to(&mut retired);
            }
            !finished
        });
        workers.retired_counts = retired;
        let index = workers.next_index;
        workers.next_index += 1;
        let name = format!("{}_{}", self.thread_name_prefix, index);
        let slot = Arc::new(WorkerSlot::default());
        let alive = self.alive.fetch_add(1, Ordering::SeqCst) + 1;
        self.metrics.on_spawn(alive);
        let pool = Arc::clone(self);
        let thread_slot = Arc::clone(&slot);
        let thread_name = name.clone();
        match thread::spawn_named(name.clone(), self.stack_size, move || {
            worker_main(pool, thread_slot, thread_name);
        }) {
            Ok(handle) => {
                workers.threads.push(WorkerRecord {
                    name,
                    handle: Some(handle),
                    slot,
                });
                if workers.spawn_failures != 0 {
                    emit_spawn_recovered(&self.name, workers.spawn_failures);
                    workers.spawn_failures = 0;
                }
                Ok(())
            }
            Err(error) => {
                self.alive.fetch_sub(1, Ordering::SeqCst);
                workers.spawn_failures += 1;
                if workers.spawn_failures == 1 {
                    emit_spawn_failed(&self.name, &name, &error);
                }
                Err(error)
            }
        }
    }

    /// A submit could not start a worker. If others are alive they will drain the queue; if
    /// none is, retry with backoff (a thread limit may free up as exiting threads finish), and
    /// then break the pool rather than leave queued futures with nobody to run them.
    /// `Err`: still no worker; the caller breaks the pool once it is out of its submit window
    /// (breaking waits for every submit in flight to leave).
    #[cold]
    fn spawn_failed(self: &Arc<Self>, mut error: std::io::Error) -> Result<(), std::io::Error> {
        for delay_ms in SPAWN_RETRY_DELAYS_MS {
            if self.alive.load(Ordering::SeqCst) != 0 {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(delay_ms));
            let mut workers = lock(&self.workers);
            if self.alive.load(Ordering::SeqCst) != 0
                || self.queue.is_empty()
                || self.broken.load(Ordering::SeqCst)
            {
                return Ok(());
            }
            match self.spawn_locked(&mut workers) {
                Ok(()) => return Ok(()),
                Err(again) => error = again,
            }
        }
        if self.alive.load(Ordering::SeqCst) == 0 {
            Err(error)
        } else {
            Ok(())
        }
    }

    /// An idle worker whose timeout passed (and who took its own token back) tries to retire.
    /// False: work arrived, stay.
    fn retire_idle(&self, worker: &str) -> bool {
        let _workers = lock(&self.workers);
        self.alive.fetch_sub(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        if !self.queue.is_empty() {
            self.alive.fetch_add(1, Ordering::SeqCst);
            return false;
        }
        self.retired(worker, "idle");
        true
    }

    /// A worker that reached its task limit retires, starting its replacement if work remains.
    /// False: the replacement could not start, so this worker stays (its recycling waits for
    /// its next task limit) rather than leave queued work to nobody.
    fn retire_replacing(self: &Arc<Self>, worker: &str) -> bool {
        let mut workers = lock(&self.workers);
        self.alive.fetch_sub(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        if !self.queue.is_empty()
            && self.alive.load(Ordering::SeqCst) < self.max_workers
            && self.spawn_locked(&mut workers).is_err()
        {
            self.alive.fetch_add(1, Ordering::SeqCst);
            return false;
        }
        self.retired(worker, "max_tasks");
        true
    }

    /// A worker died (unwound outside any task): counted out, replaced if work is queued. No
    /// event: a panicking subscriber here would abort the process.
    fn replace_dead(self: &Arc<Self>, _worker: &str) {
        let mut workers = lock(&self.workers);
        self.alive.fetch_sub(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        self.metrics.inc_retired();
        if !self.closed.load(Ordering::SeqCst)
            && !self.queue.is_empty()
            && self.alive.load(Ordering::SeqCst) < self.max_workers
        {
            // Best effort: a failure is logged, and the next submit tries again.
            let _ = self.spawn_locked(&mut workers);
        }
        self.workers_changed.notify_all();
    }

    /// A worker exits for good (shutdown, broken pool).
    fn retire_exit(&self, worker: &str, reason: &'static str) {
        let _workers = lock(&self.workers);
        self.alive.fetch_sub(1, Ordering::SeqCst);
        self.retired(worker, reason);
    }

    /// A worker has counted itself out (the caller holds the `workers` lock): reported, counted,
    /// and whoever waits for workers to exit is woken.
    fn retired(&self, worker: &str, reason: &'static str) {
        emit_retired(&self.name, worker, reason);
        self.metrics.inc_retired();
        self.workers_changed.notify_all();
    }
}

/// The body of a worker thread, from its start to its exit.
fn worker_main(pool: Arc<PoolInner>, slot: Arc<WorkerSlot>, name: String) {
    emit_spawned(&pool.name, &name);
    let _departure = Departure {
        pool: &pool,
        worker: &name,
    };
    if let Some(initializer) = &pool.initializer {
        let failure = match catch_unwind(AssertUnwindSafe(|| initializer())) {
            Ok(Ok(())) => None,
            Ok(Err(message)) => Some(message),
            Err(panic) => Some(format!(
                "initializer panicked: {}",
                panic_message(panic.as_ref())
            )),
        };
        if let Some(message) = failure {
            pool.mark_broken(message);
            pool.retire_exit(&name, "broken");
            return;
        }
    }
    // Declared after `_departure`, so dropped first: the state goes before the worker is
    // counted out.
    let _state = match &pool.worker_state {
        None => None,
        Some(make) => {
            let info = WorkerInfo {
                pool: &pool.name,
                worker: &name,
            };
            match catch_unwind(AssertUnwindSafe(|| make(&info))) {
                Ok(state) => Some(worker_state::install(state, &pool.name)),
                Err(panic) => {
                    pool.mark_broken(format!(
                        "worker state panicked: {}",
                        panic_message(panic.as_ref())
                    ));
                    pool.retire_exit(&name, "broken");
                    return;
                }
            }
        }
    };
    let idle_token = Cell::new(false);
    let last_end = Cell::new(None);
    let mut tasks_run = 0usize;
    let limit = pool.max_tasks_per_worker;
    'work: loop {
        let job = match pool.queue.try_pop() {
            Some(job) => job,
            None => 'idle: {
                // Time passes from here on: the previous task's end is no longer a start.
                last_end.set(None);
                if pool.closed.load(Ordering::SeqCst) {
                    // Look again: the queue was found empty *before* `closed` was seen, and a
                    // submit that passed the shutdown check may have pushed in between (found by
                    // the loom model `shutdown_racing_submit_*`). Once `closed` is seen no push
                    // can follow, so an empty queue now is empty for good.
                    // (Not `is_empty`: the close wake-up counts as a message there.)
                    // Any token we hold no longer matters: nothing is submitted after close.
                    if let Some(job) = pool.queue.try_pop() {
                        break 'idle job;
                    }
                    pool.retire_exit(&name, "shutdown");
                    return;
                }
                if !idle_token.get() && !pool.saturated() {
                    pool.idle_tokens.0.fetch_add(1, Ordering::SeqCst);
                    idle_token.set(true);
                }
                // A short, bounded spin before sleeping (as crossbeam's own `recv` does): a
                // steady submitter usually refills the queue within microseconds, and parking
                // then waking a thread costs far more. Not a polling loop: after it, we block.
                if let Some(job) = spin_pop(&pool.queue) {
                    break 'idle job;
                }
                pool.metrics.inc_idle();
                let popped = pool.queue.pop_blocking(pool.idle_timeout);
                pool.metrics.dec_idle();
                match popped {
                    Popped::Item(job) => job,
                    Popped::Closed => continue 'work,
                    Popped::TimedOut => {
                        // Take our token back; if a submitter already claimed it, work is on
                        // its way to us, so stay.
                        if pool.try_claim_idle() {
                            idle_token.set(false);
                            if pool.retire_idle(&name) {
                                return;
                            }
                        }
                        continue 'work;
                    }
                }
            }
        };
        // Busy again. As in Python, the token we released is not taken back: the submitter of
        // the item we just took claims it (it pushes, then claims). Taking it back here would
        // race that claim and make the submitter start a needless thread.
        idle_token.set(false);
        slot.counts.0.inc_dequeued();
        run_one(
            &pool,
            &slot,
            &name,
            (&idle_token, &last_end),
            job,
            &mut tasks_run,
        );
        if limit != 0 && tasks_run >= limit {
            if pool.retire_replacing(&name) {
                return;
            }
            tasks_run = 0;
        }
    }
}

/// Counts out a worker that unwinds (a panic outside any task and outside the user data it
/// drops: the executor's own code, or a tracing subscriber), and starts its replacement if work
/// is queued, so the pool never waits on a worker that is gone.
struct Departure<'a> {
    pool: &'a Arc<PoolInner>,
    worker: &'a str,
}

impl Drop for Departure<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.pool.replace_dead(self.worker);
        }
    }
}

/// Runs one dequeued job on a worker, counting it if it ran.
fn run_one(
    pool: &PoolInner,
    slot: &WorkerSlot,
    name: &str,
    (idle_token, last_end): (&Cell<bool>, &Cell<Option<u64>>),
    job: Work,
    tasks_run: &mut usize,
) {
    let limit = pool.max_tasks_per_worker;
    let last_task = limit != 0 && *tasks_run + 1 >= limit;
    let ctx = WorkerCtx::on_worker(pool, name, slot, (idle_token, last_end), last_task);
    // The task's own panic is caught inside `run`; what unwinds out of it is a `Drop` of user
    // data that `run` does not own by then (the job's last reference, holding the value).
    // The task ran and was counted: keep the worker.
    let ran = catch_unwind(AssertUnwindSafe(|| job.run(&ctx))).unwrap_or_else(|payload| {
        emit_drop_panicked(&pool.name, 0, payload);
        true
    });
    if ran {
        *tasks_run += 1;
    }
}

/// Tries the queue for a short, bounded while ([`spin_wait`]) before giving up.
fn spin_pop(queue: &Queue<Work>) -> Option<Work> {
    spin_wait(|| queue.try_pop())
}
