//! Work items: a task's closure boxed once together with what the worker needs to run it.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use tracing::Span;

use crate::context::TaskContext;
use crate::error::CancelReason;
use crate::executor::{emit_cancelled, panic_message, PoolInner, WorkerCtx};
use crate::future::{Outcome, Shared};
use crate::sync::Arc;

/// Why a queued item is being dropped without running.
#[derive(Clone, Copy)]
pub(crate) enum Abandon<'a> {
    Shutdown,
    Broken(&'a str),
}

/// One item on the work queue.
pub(crate) trait Job: Send {
    /// Runs the item (or skips it if its future was cancelled); true if it ran.
    fn run(self: Box<Self>, worker: &WorkerCtx<'_>) -> bool;
    /// Resolves the item without running it.
    fn abandon(self: Box<Self>, pool: &PoolInner, why: Abandon<'_>);
    /// The boxed item as `Any`, so a refused submission can hand the closure back.
    fn into_any(self: Box<Self>) -> Box<dyn Any + Send>;
}

/// A task body: a plain closure, a closure that wants its context, or one `map` item.
pub(crate) trait TaskFn<T>: Send + 'static {
    fn call(self, shared: &Arc<Shared<T>>) -> T;
}

/// `FnOnce() -> T`.
pub(crate) struct Plain<F>(pub(crate) F);

impl<F, T> TaskFn<T> for Plain<F>
where
    F: FnOnce() -> T + Send + 'static,
{
    fn call(self, _shared: &Arc<Shared<T>>) -> T {
        (self.0)()
    }
}

/// `FnOnce(&TaskContext) -> T`.
pub(crate) struct WithContext<F>(pub(crate) F);

impl<F, T> TaskFn<T> for WithContext<F>
where
    F: FnOnce(&TaskContext) -> T + Send + 'static,
    T: Send + Sync + 'static,
{
    fn call(self, shared: &Arc<Shared<T>>) -> T {
        let context = TaskContext {
            task_id: shared.id,
            source: Arc::clone(shared) as Arc<dyn crate::context::StopSource>,
        };
        (self.0)(&context)
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
    fn call(self, _shared: &Arc<Shared<T>>) -> T {
        (self.f)(self.item)
    }
}

/// A task with a future.
pub(crate) struct FutureJob<C, T> {
    pub(crate) task: C,
    pub(crate) shared: Arc<Shared<T>>,
    pub(crate) parent: Span,
    pub(crate) queued_at: Instant,
}

impl<C, T> Job for FutureJob<C, T>
where
    C: TaskFn<T>,
    T: Send + Sync + 'static,
{
    fn run(self: Box<Self>, worker: &WorkerCtx<'_>) -> bool {
        let FutureJob {
            task,
            shared,
            parent,
            queued_at,
        } = *self;
        let pool = worker.pool;
        if !shared.try_start() {
            // Cancelled while queued: skip it, as Python's worker does. The cancellation is
            // counted here, when the item leaves the queue (the future has no pool reference).
            pool.metrics.inc_cancelled();
            emit_cancelled(pool, shared.id, shared.name.as_deref(), CancelReason::User);
            return false;
        }
        let name = shared.name.as_deref();
        let started = worker.start_instant();
        let waited = started.saturating_duration_since(queued_at);
        shared.record_queue_wait(waited);
        let span = worker.begin(shared.id, &shared.name, name, &parent, started, waited);
        let _entered = span.enter();
        let result = catch_unwind(AssertUnwindSafe(|| task.call(&shared)));
        let ran = worker.end_instant().saturating_duration_since(started);
        shared.record_run_time(ran);
        worker.end();
        let outcome = match result {
            Ok(value) => {
                if shared.stop_was_observed() {
                    drop(value);
                    pool.metrics.inc_cancelled();
                    emit_cancelled(pool, shared.id, name, CancelReason::StopRequested);
                    worker.before_publish();
                    if shared.complete_stopped() {
                        worker.forget_clock();
                    }
                    return true;
                }
                worker.counts().inc_completed();
                worker.emit_finished(shared.id, name, ran);
                Outcome::Value(value)
            }
            Err(panic) => {
                let message = panic_message(panic.as_ref());
                worker.counts().inc_failed();
                worker.emit_failed(shared.id, name, ran, &message);
                Outcome::Panicked(message)
            }
        };
        worker.before_publish();
        if shared.complete(outcome) {
            // Waking waiters and running callbacks took time: the next task cannot reuse
            // this task's end as its start.
            worker.forget_clock();
        }
        true
    }

    fn abandon(self: Box<Self>, pool: &PoolInner, why: Abandon<'_>) {
        let shared = &self.shared;
        // Counted before the future says done, so a reader of a done future sees it counted.
        pool.metrics.inc_cancelled();
        let resolved = match why {
            Abandon::Shutdown => shared.cancel_pending(CancelReason::Shutdown),
            Abandon::Broken(message) => shared.break_pending(message),
        };
        // Not resolved here: the user cancelled it while it was queued; count it now.
        let reason = match why {
            _ if !resolved => CancelReason::User,
            Abandon::Shutdown => CancelReason::Shutdown,
            Abandon::Broken(_) => CancelReason::BrokenPool,
        };
        emit_cancelled(pool, shared.id, shared.name.as_deref(), reason);
    }

    fn into_any(self: Box<Self>) -> Box<dyn Any + Send> {
        self
    }
}

/// A fire-and-forget task ([`Executor::execute`](crate::Executor::execute)): no future at all.
pub(crate) struct ExecuteJob<F> {
    pub(crate) f: F,
    pub(crate) id: u64,
    pub(crate) parent: Span,
    /// Only read for the `waited_us` field, so only taken when that event is enabled.
    pub(crate) queued_at: Option<Instant>,
}

impl<F> Job for ExecuteJob<F>
where
    F: FnOnce() + Send + 'static,
{
    fn run(self: Box<Self>, worker: &WorkerCtx<'_>) -> bool {
        let ExecuteJob {
            f,
            id,
            parent,
            queued_at,
        } = *self;
        let started = worker.start_instant();
        let waited = queued_at.map_or(Duration::ZERO, |q| started.saturating_duration_since(q));
        let span = worker.begin(id, &None, None, &parent, started, waited);
        let _entered = span.enter();
        let result = catch_unwind(AssertUnwindSafe(f));
        let ran = worker.end_instant().saturating_duration_since(started);
        worker.end();
        match result {
            Ok(()) => {
                worker.counts().inc_completed();
                worker.emit_finished(id, None, ran);
            }
            Err(panic) => {
                worker.counts().inc_failed();
                worker.emit_failed(id, None, ran, &panic_message(panic.as_ref()));
            }
        }
        worker.before_publish();
        true
    }

    fn abandon(self: Box<Self>, pool: &PoolInner, why: Abandon<'_>) {
        pool.metrics.inc_cancelled();
        let reason = match why {
            Abandon::Shutdown => CancelReason::Shutdown,
            Abandon::Broken(_) => CancelReason::BrokenPool,
        };
        emit_cancelled(pool, self.id, None, reason);
    }

    fn into_any(self: Box<Self>) -> Box<dyn Any + Send> {
        self
    }
}
