//! Every tracing event and span the executor emits, in one place: their names and fields are a
//! stable contract (the table in the crate docs), so a change here is a change to the API.
//!
//! A task nobody traces pays for none of this: every per-task event that a trivial task would
//! emit sits behind an inline level test, with the event itself in a cold function, and the task
//! span is only built when a subscriber takes INFO. The rest (user data that panics when
//! dropped, [`drop_contained`]) lives here because its only output is an event.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use tracing::{Level, Span};

use crate::error::CancelReason;

/// The tracing target of every event and span this crate emits (for filters such as
/// `RUST_LOG=taskhost_executor=debug`).
///
/// ```
/// assert_eq!(taskhost_executor::TRACING_TARGET, "taskhost_executor");
/// ```
pub const TRACING_TARGET: &str = "taskhost_executor";

/// The submitter's span, carried by a queued task (in the future's `extras` box, or an execute
/// job's `Traced` box) to be its `task` span's parent. `None` when no subscriber could record a
/// task span or the submitter is in no span: both make the task span a root, and the task then
/// needs no box for it.
pub(crate) type Parent = Option<Span>;

/// The submitter's span, if tracing could record a task span at all.
#[inline]
pub(crate) fn current_parent() -> Parent {
    if tracing::level_enabled!(Level::INFO) {
        let span = Span::current();
        (!span.is_none()).then_some(span)
    } else {
        None
    }
}

/// The text of a panic payload.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "Box<dyn Any>".to_owned()
    }
}

/// Drops user data (a closure, a task's value, a panic payload) so that a panic its `Drop`
/// raises cannot unwind into the pool: it is logged as `task.drop_panicked` and the thread goes
/// on. Without this a panicking `Drop` killed the worker (or `shutdown` itself), and the pool
/// never recovered.
pub(crate) fn drop_contained<V>(value: V, pool: &str, task_id: u64) {
    if let Err(payload) = catch_unwind(AssertUnwindSafe(move || drop(value))) {
        emit_drop_panicked(pool, task_id, payload);
    }
}

/// `task.drop_panicked`: user data panicked in its `Drop` (`task_id` 0: the task is not known).
#[cold]
pub(crate) fn emit_drop_panicked(pool: &str, task_id: u64, payload: Box<dyn std::any::Any + Send>) {
    let message = panic_message(payload.as_ref());
    tracing::event!(
        name: "task.drop_panicked",
        target: "taskhost_executor",
        Level::ERROR,
        pool,
        task_id,
        panic = %message,
        "task.drop_panicked"
    );
    // This payload's own `Drop` could panic again: leak it (a few bytes, once per such
    // panic) rather than unwind here.
    std::mem::forget(payload);
}

/// `task.queued`. `queue_depth` is only called when the event is enabled: reading the depth
/// touches the consumers' cache lines.
#[inline]
pub(crate) fn emit_queued(
    pool: &str,
    task_id: u64,
    task: Option<&str>,
    queue_depth: impl FnOnce() -> usize,
) {
    // The level test inline, the event out of line: a task nobody traces pays one load.
    if tracing::level_enabled!(Level::DEBUG) {
        emit_queued_event(pool, task_id, task, queue_depth());
    }
}

#[cold]
#[inline(never)]
fn emit_queued_event(pool: &str, task_id: u64, task: Option<&str>, queue_depth: usize) {
    tracing::event!(
        name: "task.queued",
        target: "taskhost_executor",
        Level::DEBUG,
        pool,
        task_id,
        task,
        queue_depth,
        "task.queued"
    );
}

/// The `task` span of a task that starts now, with its `task.started` event inside it.
#[cold]
#[inline(never)]
pub(crate) fn open_task_span(
    pool: &str,
    worker: &str,
    task_id: u64,
    task: Option<&str>,
    parent: Option<&Span>,
    waited: Duration,
) -> Span {
    let span = tracing::info_span!(
        target: "taskhost_executor",
        parent: parent.and_then(Span::id),
        "task",
        pool,
        task_id,
        task
    );
    span.in_scope(|| {
        tracing::event!(
            name: "task.started",
            target: "taskhost_executor",
            Level::DEBUG,
            pool,
            task_id,
            task,
            worker,
            waited_us = micros(waited),
            "task.started"
        );
    });
    span
}

/// `task.finished`.
#[inline]
pub(crate) fn emit_finished(pool: &str, task_id: u64, task: Option<&str>, ran: Duration) {
    // As in `emit_queued`: the level test inline, the event out of line.
    if tracing::level_enabled!(Level::DEBUG) {
        emit_finished_event(pool, task_id, task, ran);
    }
}

#[cold]
#[inline(never)]
fn emit_finished_event(pool: &str, task_id: u64, task: Option<&str>, ran: Duration) {
    tracing::event!(
        name: "task.finished",
        target: "taskhost_executor",
        Level::DEBUG,
        pool,
        task_id,
        task,
        ran_us = micros(ran),
        "task.finished"
    );
}

/// `task.failed`: the task panicked.
pub(crate) fn emit_failed(
    pool: &str,
    task_id: u64,
    task: Option<&str>,
    ran: Duration,
    panic: &str,
) {
    tracing::event!(
        name: "task.failed",
        target: "taskhost_executor",
        Level::WARN,
        pool,
        task_id,
        task,
        ran_us = micros(ran),
        panic,
        "task.failed"
    );
}

/// `task.cancelled`.
pub(crate) fn emit_cancelled(pool: &str, task_id: u64, task: Option<&str>, reason: CancelReason) {
    tracing::event!(
        name: "task.cancelled",
        target: "taskhost_executor",
        Level::INFO,
        pool,
        task_id,
        task,
        reason = reason.as_str(),
        "task.cancelled"
    );
}

/// `task.broken`: a queued future failed unrun because the pool broke (Python:
/// `BrokenThreadPool`).
pub(crate) fn emit_broken(pool: &str, task_id: u64, task: Option<&str>, reason: &str) {
    tracing::event!(
        name: "task.broken",
        target: "taskhost_executor",
        Level::WARN,
        pool,
        task_id,
        task,
        reason,
        "task.broken"
    );
}

/// `task.rejected`.
pub(crate) fn emit_rejected(pool: &str, task_id: u64, task: Option<&str>, reason: &'static str) {
    tracing::event!(
        name: "task.rejected",
        target: "taskhost_executor",
        Level::WARN,
        pool,
        task_id,
        task,
        reason,
        "task.rejected"
    );
}

/// `callback.panicked`: a done callback panicked (no `pool` field: a future does not know its
/// pool).
pub(crate) fn emit_callback_panicked(task_id: u64, task: Option<&str>, panic: &str) {
    tracing::event!(
        name: "callback.panicked",
        target: "taskhost_executor",
        Level::ERROR,
        task_id,
        task,
        panic = %panic,
        "callback.panicked"
    );
}

/// `worker.spawned`, emitted by the new worker itself.
pub(crate) fn emit_spawned(pool: &str, worker: &str) {
    tracing::event!(
        name: "worker.spawned",
        target: "taskhost_executor",
        Level::DEBUG,
        pool,
        worker = %worker,
        "worker.spawned"
    );
}

/// `worker.spawn_failed`: the first failure of a streak.
pub(crate) fn emit_spawn_failed(pool: &str, worker: &str, error: &std::io::Error) {
    tracing::event!(
        name: "worker.spawn_failed",
        target: "taskhost_executor",
        Level::ERROR,
        pool,
        worker = %worker,
        error = %error,
        "worker.spawn_failed"
    );
}

/// `worker.spawn_recovered`: a worker started after `failures` starts that failed.
pub(crate) fn emit_spawn_recovered(pool: &str, failures: u64) {
    tracing::event!(
        name: "worker.spawn_recovered",
        target: "taskhost_executor",
        Level::WARN,
        pool,
        failures,
        "worker.spawn_recovered"
    );
}

/// `worker.retired`.
pub(crate) fn emit_retired(pool: &str, worker: &str, reason: &'static str) {
    tracing::event!(
        name: "worker.retired",
        target: "taskhost_executor",
        Level::DEBUG,
        pool,
        worker,
        reason,
        "worker.retired"
    );
}

/// `pool.shutdown`, once per pool.
pub(crate) fn emit_pool_shutdown(pool: &str, wait: bool, cancel_futures: bool) {
    tracing::event!(
        name: "pool.shutdown",
        target: "taskhost_executor",
        Level::INFO,
        pool,
        wait,
        cancel_futures,
        "pool.shutdown"
    );
}

/// `pool.broken`.
pub(crate) fn emit_pool_broken(pool: &str, reason: &str) {
    tracing::event!(
        name: "pool.broken",
        target: "taskhost_executor",
        Level::ERROR,
        pool,
        reason = %reason,
        "pool.broken"
    );
}

/// A duration in whole microseconds, as the `*_us` fields carry it.
fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}
