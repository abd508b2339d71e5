//! Work items. A task with a future is **one allocation**: the closure lives inside the same
//! `Arc` as the future's cell (`FutureJob`), and the queue carries that `Arc`. A
//! fire-and-forget task (`ExecuteJob`) is one `Box`: nothing else ever points at it, so the
//! worker that takes it touches no reference count.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use crate::context::{StopSource, TaskContext};
use crate::error::CancelReason;
use crate::events::{
    drop_contained, emit_broken, emit_cancelled, emit_failed, emit_finished, panic_message, Parent,
};
use crate::future::{HoldsFutureCell, TaskFuture};
use crate::future_cell::{FutureCell, Message, Outcome};
use crate::pool::{Abandon, Job, OwnedJob, PoolInner, WorkerCtx};
use crate::sync::{lock, Arc, Mutex};
use crate::task_id::next_task_id;
use crate::timings::NOT_TIMED;
use tracing::Span;

/// A task body: a plain closure, a closure that wants its context, or one `map` item.
pub(crate) trait TaskFn<T>: Send + 'static {
    /// Runs the body; `context` builds the task's context if the body wants one.
    fn call(self, context: &dyn Fn() -> TaskContext) -> T;
}

/// `FnOnce() -> T`.
pub(crate) struct Plain<F>(pub(crate) F);

impl<F, T> TaskFn<T> for Plain<F>
where
    F: FnOnce() -> T + Send + 'static,
{
    fn call(self, _context: &dyn Fn() -> TaskContext) -> T {
        (self.0)()
    }
}

/// `FnOnce(&TaskContext) -> T`.
pub(crate) struct WithContext<F>(pub(crate) F);

impl<F, T> TaskFn<T> for WithContext<F>
where
    F: FnOnce(&TaskContext) -> T + Send + 'static,
{
    fn call(self, context: &dyn Fn() -> TaskContext) -> T {
        (self.0)(&context())
    }
}

/// One item of [`Executor::map`](crate::Executor::map): the shared function and its argument.
pub(crate) struct MapCall<F, A> {
    pub(crate) f: Arc<F>,
    pub(crate) item: A,
}

impl<F, A, T> TaskFn<T> for MapCall<F, A>
where
    F: Fn(A) -> T + Send + Sync + 'static,
    A: Send + 'static,
{
    fn call(self, _context: &dyn Fn() -> TaskContext) -> T {
        (self.f)(self.item)
    }
}

/// A task with a future: the future's state and the closure, in one allocation.
pub(crate) struct FutureJob<C, T> {
    pub(crate) cell: FutureCell<T, TaskFuture<T>>,
    /// The closure, taken (under an uncontended lock) by whoever runs or drops the task, so it
    /// does not live on with the futures. (The submitter's span is in the cell's extras, so that
    /// this `Option` costs no more than the closure's own tag; the enqueue instant is in the
    /// cell's timings word.)
    pub(crate) task: Mutex<Option<C>>,
}

impl<C, T> HoldsFutureCell<T> for FutureJob<C, T>
where
    C: TaskFn<T>,
    T: Send + Sync + 'static,
{
    fn future_cell(&self) -> &FutureCell<T, TaskFuture<T>> {
        &self.cell
    }
}

impl<C, T> StopSource for FutureJob<C, T>
where
    C: TaskFn<T>,
    T: Send + Sync + 'static,
{
    fn stop_requested(&self) -> bool {
        self.cell.stop_requested()
    }
    fn mark_observed(&self) {
        self.cell.mark_observed();
    }
}

impl<C, T> FutureJob<C, T>
where
    C: TaskFn<T>,
    T: Send + Sync + 'static,
{
    /// A future handle on this job (built only when a callback needs one).
    fn future(self: &Arc<Self>) -> TaskFuture<T> {
        TaskFuture {
            job: Arc::clone(self) as Arc<dyn HoldsFutureCell<T>>,
        }
    }

    /// Drops the closure early (cancelled items), so captured data does not live as long as
    /// the futures do.
    fn drop_task(&self, pool: &PoolInner) {
        let task = lock(&self.task).take();
        drop_contained(task, &pool.name, self.cell.id);
        drop(self.cell.take_parent());
    }
}

/// Fails a started task's future if the worker unwinds before the task's body has returned
/// (a panic outside the body: a tracing subscriber's, say), so that no waiter waits forever on
/// a future whose worker is gone. Forgotten once the body has returned.
struct FailOnUnwind<'a, T: Send + Sync + 'static> {
    cell: &'a FutureCell<T, TaskFuture<T>>,
    owner: &'a dyn Fn() -> TaskFuture<T>,
}

impl<T: Send + Sync + 'static> Drop for FailOnUnwind<'_, T> {
    fn drop(&mut self) {
        let message = Message("the worker thread panicked outside the task".to_owned());
        self.cell
            .complete(Outcome::Panicked(Box::new(message)), self.owner);
    }
}

impl<C, T> Job for FutureJob<C, T>
where
    C: TaskFn<T>,
    T: Send + Sync + 'static,
{
    fn run(self: Arc<Self>, worker: &WorkerCtx<'_>) -> bool {
        let pool = worker.pool;
        let cell = &self.cell;
        if !cell.try_start() {
            // Cancelled while queued: skip it, as Python's worker does. The cancellation is
            // counted here, when the item leaves the queue (the future has no pool reference).
            self.drop_task(pool);
            pool.metrics.inc_cancelled();
            emit_cancelled(&pool.name, cell.id, cell.name(), CancelReason::User);
            return false;
        }
        let owner = || self.future();
        let unpublished = FailOnUnwind {
            cell,
            owner: &owner,
        };
        let Some(task) = lock(&self.task).take() else {
            unreachable!("a pending item still has its closure");
        };
        let parent = cell.take_parent();
        let name = cell.name();
        let started_ns = worker.start_ns();
        let waited = match (started_ns, cell.timings.queued_ns()) {
            (Some(started), Some(queued)) => {
                let waited_ns = started.saturating_sub(queued);
                cell.timings.record_queue_wait(waited_ns);
                Duration::from_nanos(waited_ns)
            }
            _ => Duration::ZERO,
        };
        let span = worker.begin(
            cell.id,
            cell.name_arc(),
            name,
            parent.as_ref(),
            started_ns,
            waited,
        );
        drop(parent);
        let _entered = span.as_ref().map(Span::enter);
        let context = || TaskContext {
            task_id: cell.id,
            source: Arc::clone(&self) as Arc<dyn StopSource>,
        };
        let result = catch_unwind(AssertUnwindSafe(|| task.call(&context)));
        let ran = match (started_ns, worker.end_ns()) {
            (Some(started), Some(ended)) => {
                let ran_ns = ended.saturating_sub(started);
                cell.timings.record_run_time(ran_ns);
                Duration::from_nanos(ran_ns)
            }
            _ => Duration::ZERO,
        };
        worker.end();
        // From here every path publishes (and none unwinds short of a subscriber's panic).
        std::mem::forget(unpublished);
        let outcome = match result {
            Ok(value) => {
                if cell.stop_was_observed() {
                    drop_contained(value, &pool.name, cell.id);
                    pool.metrics.inc_cancelled();
                    emit_cancelled(&pool.name, cell.id, name, CancelReason::StopRequested);
                    worker.before_publish();
                    if cell.complete_stopped(&owner) {
                        worker.forget_clock();
                    }
                    return true;
                }
                worker.counts().inc_completed();
                emit_finished(&pool.name, cell.id, name, ran);
                Outcome::Value(value)
            }
            Err(panic) => {
                let message = panic_message(panic.as_ref());
                drop_contained(panic, &pool.name, cell.id);
                worker.counts().inc_failed();
                emit_failed(&pool.name, cell.id, name, ran, &message);
                Outcome::Panicked(Box::new(Message(message)))
            }
        };
        worker.before_publish();
        if cell.complete(outcome, &owner) {
            // Waking waiters and running callbacks took time: the next task cannot reuse
            // this task's end as its start.
            worker.forget_clock();
        }
        true
    }

    fn abandon(self: Arc<Self>, pool: &PoolInner, why: Abandon<'_>) {
        self.drop_task(pool);
        let cell = &self.cell;
        let owner = || self.future();
        // Counted before the future says done, so a reader of a done future sees it counted.
        match why {
            Abandon::Shutdown => {
                pool.metrics.inc_cancelled();
                let resolved = cell.cancel_pending(CancelReason::Shutdown, &owner);
                // Not resolved here: the user cancelled it while it was queued; counted now.
                let reason = if resolved {
                    CancelReason::Shutdown
                } else {
                    CancelReason::User
                };
                emit_cancelled(&pool.name, cell.id, cell.name(), reason);
            }
            Abandon::Broken(message) => {
                // Claimed first (not yet done), so the count is right before anyone sees it
                // done: a future the user cancelled while queued stays cancelled; any other
                // fails with the pool's reason (not cancelled: Python's `BrokenThreadPool`).
                if cell.try_start() {
                    pool.metrics.inc_broken();
                    emit_broken(&pool.name, cell.id, cell.name(), message);
                    let outcome = Outcome::Broken(Box::new(Message(message.to_owned())));
                    cell.complete(outcome, &owner);
                } else {
                    pool.metrics.inc_cancelled();
                    emit_cancelled(&pool.name, cell.id, cell.name(), CancelReason::User);
                }
            }
        }
    }

    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}

/// A fire-and-forget task ([`Executor::execute`](crate::Executor::execute)): no future at all,
/// boxed (not shared), so the worker takes the closure out without a lock or a reference count.
/// Untraced, it is the closure and one word: a closure of two words fits glibc's 32-byte chunk,
/// as the floor's boxed closure does (a unit test guards it). The id, parent span and enqueue
/// time are boxed apart because, inline, they pushed the job into a larger chunk, which costs
/// glibc work per task consolidating its bins (the bench README has the count).
pub(crate) struct ExecuteJob<F> {
    pub(crate) f: F,
    /// What only tracing needs; `None` when no span was current and DEBUG events are off. The
    /// task is then numbered by the worker that starts it: nothing has shown its id before
    /// (`task.queued` is a DEBUG event).
    pub(crate) traced: Option<Box<Traced>>,
}

/// The parts of an [`ExecuteJob`] that only tracing reads.
pub(crate) struct Traced {
    pub(crate) id: u64,
    pub(crate) parent: Parent,
    /// Enqueue time (ns since the pool's epoch), or [`NOT_TIMED`].
    pub(crate) queued_ns: u64,
}

impl<F> OwnedJob for ExecuteJob<F>
where
    F: FnOnce() + Send + 'static,
{
    fn run(self: Box<Self>, worker: &WorkerCtx<'_>) -> bool {
        let ExecuteJob { f, traced } = *self;
        let (id, parent, queued_ns) = match traced {
            Some(traced) => (traced.id, traced.parent, traced.queued_ns),
            None => (next_task_id(), None, NOT_TIMED),
        };
        let started_ns = worker.start_ns();
        let waited = match (started_ns, (queued_ns != NOT_TIMED).then_some(queued_ns)) {
            (Some(started), Some(queued)) => Duration::from_nanos(started.saturating_sub(queued)),
            _ => Duration::ZERO,
        };
        let span = worker.begin(id, None, None, parent.as_ref(), started_ns, waited);
        let _entered = span.as_ref().map(Span::enter);
        let result = catch_unwind(AssertUnwindSafe(f));
        let ran = match (started_ns, worker.end_ns()) {
            (Some(started), Some(ended)) => Duration::from_nanos(ended.saturating_sub(started)),
            _ => Duration::ZERO,
        };
        worker.end();
        match result {
            Ok(()) => {
                worker.counts().inc_completed();
                emit_finished(&worker.pool.name, id, None, ran);
            }
            Err(panic) => {
                worker.counts().inc_failed();
                emit_failed(
                    &worker.pool.name,
                    id,
                    None,
                    ran,
                    &panic_message(panic.as_ref()),
                );
                drop_contained(panic, &worker.pool.name, id);
            }
        }
        worker.before_publish();
        true
    }

    fn abandon(self: Box<Self>, pool: &PoolInner, why: Abandon<'_>) {
        let id = self
            .traced
            .as_ref()
            .map_or_else(next_task_id, |traced| traced.id);
        drop_contained(self, &pool.name, id);
        match why {
            Abandon::Shutdown => {
                pool.metrics.inc_cancelled();
                emit_cancelled(&pool.name, id, None, CancelReason::Shutdown);
            }
            Abandon::Broken(message) => {
                pool.metrics.inc_broken();
                emit_broken(&pool.name, id, None, message);
            }
        }
    }

    fn into_any(self: Box<Self>) -> Box<dyn Any + Send> {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An untraced fire-and-forget job is its closure and one word: with a two-word closure it
    /// fits glibc's 32-byte chunk (24 bytes, plus malloc's 8-byte header), like a boxed closure.
    #[test]
    fn a_small_execute_job_fits_a_32_byte_chunk() {
        type Closure = ([u64; 2], ());
        let size = std::mem::size_of::<ExecuteJob<Closure>>();
        assert!(size <= 24, "{size} bytes");
    }

    /// Every queued `submit` carries one of these; glibc serves chunks of up to 128 bytes
    /// (120 bytes of payload) from its fast bins, so keep the task (with the `Arc`'s two
    /// counts) under that for a closure of up to two words. The next class up (144 bytes) is
    /// coalesced on free and trimmed from the heap, which makes large batches far slower per
    /// task (the bench README has the measurements).
    #[test]
    fn a_small_task_fits_a_fast_bin() {
        // A closure that captures two words (no niche for the `Option` to use), returning one.
        fn closure(n: u64, m: u64) -> impl FnOnce() -> u64 + Send + 'static {
            move || n.wrapping_mul(m)
        }
        fn size_of_job<C: Send + 'static>(_: &C) -> usize {
            std::mem::size_of::<FutureJob<Plain<C>, u64>>()
        }
        let size = size_of_job(&closure(7, 3)) + 16;
        assert!(size <= 120, "{size} bytes");
    }
}
