//! How a task reaches the queue: a future's one allocation or a fire-and-forget box is built,
//! pushed under the pool's policy ([`WhenFull`]), a worker claimed or started, or the task is run
//! in the caller's thread, or refused with its closure handed back.
//!
//! Neither path takes a lock on the way in: two atomic increments on the submitting thread's own
//! stripe (`enter` and `leave`, which shutdown waits on), a push, and for a future one reference
//! count.

use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::error::SubmitError;
use crate::events::{current_parent, emit_drop_panicked, emit_queued, emit_rejected};
use crate::future::{HoldsFutureCell, TaskFuture};
use crate::future_cell::FutureCell;
use crate::job::{ExecuteJob, FutureJob, TaskFn, Traced};
use crate::pool::{PoolInner, WhenFull, Work, WorkerCtx};
use crate::sync::{lock, Arc, Mutex, Ordering};
use crate::task_id::next_task_id;
use crate::timings::NOT_TIMED;

/// A job the queue did not take, handed back with the reason.
type RefusedWork = (Work, WhyRefused);

/// Why a submit was refused.
enum WhyRefused {
    ShutDown,
    Broken(String),
    Full,
}

impl WhyRefused {
    /// The error a refused submit returns, with its closure `f` handed back.
    fn into_error<F>(self, f: F) -> SubmitError<F> {
        match self {
            WhyRefused::ShutDown => SubmitError::ShutDown(f),
            WhyRefused::Broken(why) => SubmitError::BrokenPool(f, why),
            WhyRefused::Full => SubmitError::QueueFull(f),
        }
    }
}

impl PoolInner {
    /// Builds a task with a future (one allocation: the closure and the future's cell) and
    /// queues it.
    pub(crate) fn submit_future<C, T>(
        self: &Arc<Self>,
        name: Option<Arc<str>>,
        task: C,
    ) -> Result<TaskFuture<T>, SubmitError<C>>
    where
        C: TaskFn<T>,
        T: Send + Sync + 'static,
    {
        let id = next_task_id();
        let queued_ns = self.wants_clock().then(|| self.now_ns());
        let job = Arc::new(FutureJob {
            cell: FutureCell::new(id, name, current_parent(), queued_ns),
            task: Mutex::new(Some(task)),
        });
        let future = TaskFuture {
            job: Arc::clone(&job) as Arc<dyn HoldsFutureCell<T>>,
        };
        match self.enqueue(Work::Shared(job), id, future.name()) {
            Ok(None) => Ok(future),
            Ok(Some(job)) => {
                self.run_here(job);
                Ok(future)
            }
            Err((job, refusal)) => {
                let Work::Shared(job) = job else {
                    unreachable!("the job is the one just built");
                };
                let job = job
                    .into_any()
                    .downcast::<FutureJob<C, T>>()
                    .unwrap_or_else(|_| unreachable!("the job is the one just built"));
                let Some(task) = lock(&job.task).take() else {
                    unreachable!("a refused job still has its closure");
                };
                Err(refusal.into_error(task))
            }
        }
    }

    /// Builds a fire-and-forget task (one box, no future) and queues it.
    pub(crate) fn execute<F>(self: &Arc<Self>, f: F) -> Result<(), SubmitError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        let parent = current_parent();
        let timed = self.wants_clock();
        // Untraced, the task is numbered by the worker that starts it (0 here: no event that
        // could show an id is enabled, and a refusal numbers it on the spot; ids start at 1).
        let (id, traced) = if timed || parent.is_some() {
            let id = next_task_id();
            let queued_ns = if timed { self.now_ns() } else { NOT_TIMED };
            let traced = Traced {
                id,
                parent,
                queued_ns,
            };
            (id, Some(Box::new(traced)))
        } else {
            (0, None)
        };
        let job = Box::new(ExecuteJob { f, traced });
        match self.enqueue(Work::Owned(job), id, None) {
            Ok(None) => Ok(()),
            Ok(Some(job)) => {
                self.run_here(job);
                Ok(())
            }
            Err((job, refusal)) => {
                let Work::Owned(job) = job else {
                    unreachable!("the job is the one just built");
                };
                let f = job
                    .into_any()
                    .downcast::<ExecuteJob<F>>()
                    .unwrap_or_else(|_| unreachable!("the job is the one just built"))
                    .f;
                Err(refusal.into_error(f))
            }
        }
    }

    /// Puts a job on the queue under the pool's policy. `Ok(Some(job))`: run it here.
    fn enqueue(
        self: &Arc<Self>,
        job: Work,
        task_id: u64,
        task: Option<&str>,
    ) -> Result<Option<Work>, RefusedWork> {
        let stripe = self.submits.mine();
        stripe.enter();
        // Broken first, as Python 3.14 checks: the more informative reason wins when both hold.
        let refusal = if self.broken.load(Ordering::SeqCst) {
            Some(WhyRefused::Broken(self.broken_reason()))
        } else if self.shutdown.load(Ordering::SeqCst) {
            Some(WhyRefused::ShutDown)
        } else {
            None
        };
        if let Some(refusal) = refusal {
            stripe.leave();
            return Err(self.refuse(job, refusal, task_id, task));
        }
        let mut no_worker = Ok(());
        let result = if !self.bounded || self.when_full == WhenFull::Block {
            emit_queued(&self.name, task_id, task, || self.queue.len() + 1);
            self.queue.push(job);
            no_worker = self.adjust_thread_count();
            Ok(None)
        } else {
            match self.queue.try_push(job) {
                Ok(()) => {
                    emit_queued(&self.name, task_id, task, || self.queue.len());
                    no_worker = self.adjust_thread_count();
                    Ok(None)
                }
                Err(job) if self.when_full == WhenFull::CallerRuns => Ok(Some(job)),
                Err(job) => Err((job, WhyRefused::Full)),
            }
        };
        stripe.leave();
        if let Err(error) = no_worker {
            // The queued futures (this one too) fail with this reason: never a hang.
            self.mark_broken(format!("cannot start a worker thread: {error}"));
        }
        result.map_err(|(job, refusal)| self.refuse(job, refusal, task_id, task))
    }

    /// Counts and reports a refusal.
    fn refuse(
        &self,
        job: Work,
        refusal: WhyRefused,
        task_id: u64,
        task: Option<&str>,
    ) -> RefusedWork {
        self.metrics.inc_rejected();
        // An untraced fire-and-forget task has no number yet (`0`).
        let task_id = if task_id == 0 {
            next_task_id()
        } else {
            task_id
        };
        let reason = match refusal {
            WhyRefused::ShutDown => "shut_down",
            WhyRefused::Broken(_) => "broken_pool",
            WhyRefused::Full => "queue_full",
        };
        emit_rejected(&self.name, task_id, task, reason);
        (job, refusal)
    }

    /// Runs a job in the submitting thread (`WhenFull::CallerRuns`).
    fn run_here(&self, job: Work) {
        self.metrics.worker.0.inc_dequeued();
        let ctx = WorkerCtx::in_caller(self);
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| job.run(&ctx))) {
            emit_drop_panicked(&self.name, 0, payload);
        }
    }
}
