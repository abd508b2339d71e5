//! The contenders in the executor scenarios, behind one small trait.
//!
//! Pools come in two shapes. *Spawners* run a closure and give nothing back (the floor, rayon,
//! `threadpool`, the executor's `execute`): a batch waits on a countdown [`Latch`] and a round trip
//! sends its answer over a channel. *Submitters* hand back a handle per task (tokio's
//! `spawn_blocking`, `blocking::unblock`, the executor's `submit`, and the [`HandleFloor`]): a
//! batch keeps the handles and waits for each. Both shapes pay for how they report completion, which is the point: that cost is
//! part of what a user buys.

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, JoinHandle, Thread};

use anyhow::{anyhow, Context as _, Result};
use crossbeam_channel::{Receiver, Sender};

/// The work in every "trivial task": a multiply the optimiser cannot see through.
pub fn trivial(input: u64) -> u64 {
    black_box(input).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// What every executor scenario needs from a contender.
pub trait Pool: Sync + Sized {
    /// What a submitting thread keeps to wait for its batch.
    type Pending: Send;

    /// Builds the pool with `workers` worker threads.
    fn build(workers: usize) -> Result<Self>;

    /// Submits `count` tasks, the `i`th running `task(i)`, from this thread.
    fn submit_batch<F>(&self, count: usize, task: F) -> Self::Pending
    where
        F: Fn(u64) -> u64 + Clone + Send + 'static;

    /// Waits until every task of a batch has finished.
    fn wait_batch(&self, pending: Self::Pending);

    /// Submits one task and waits for its result.
    fn round_trip(&self, input: u64) -> u64;

    /// Runs `count` trivial tasks from this thread and waits for all of them.
    fn run_batch(&self, count: usize) {
        let pending = self.submit_batch(count, trivial);
        self.wait_batch(pending);
    }

    /// Why this contender cannot build a fresh pool in this process (its pool is global), if so.
    /// Its cold start is then measured in a fresh child process per sample.
    fn fresh_pool_unsupported() -> Option<&'static str> {
        None
    }
}

/// A pool that runs closures and reports nothing back.
pub trait Spawn: Sync + Sized {
    /// Builds the pool with `workers` worker threads.
    fn build(workers: usize) -> Result<Self>;
    /// Runs `job` on the pool some time later.
    fn spawn<F: FnOnce() + Send + 'static>(&self, job: F);
}

/// A pool that hands back a handle for each task. Every task in these scenarios returns a `u64`.
pub trait Submit: Sync + Sized {
    /// The handle to a task's result.
    type Handle: Send;
    /// Builds the pool with `workers` worker threads.
    fn build(workers: usize) -> Result<Self>;
    /// Queues `job` and returns its handle.
    fn submit<F: FnOnce() -> u64 + Send + 'static>(&self, job: F) -> Self::Handle;
    /// Blocks until the task behind `handle` has finished and returns its result.
    fn wait(&self, handle: Self::Handle) -> u64;
    /// Why this contender cannot build a fresh pool in this process (its pool is global), if so.
    /// Its cold start is then measured in a fresh child process per sample.
    fn fresh_pool_unsupported() -> Option<&'static str> {
        None
    }
}

/// A countdown that wakes its waiter when it reaches zero; only the last task takes the lock.
#[derive(Debug)]
pub struct Latch {
    /// Tasks that have not finished yet.
    remaining: AtomicUsize,
    /// Set (under the lock) by the task that brings `remaining` to zero.
    done: Mutex<bool>,
    /// Signalled once, when `done` is set.
    done_changed: Condvar,
}

impl Latch {
    /// A latch that opens after `count` calls to [`Latch::count_down`].
    pub fn new(count: usize) -> Latch {
        Latch {
            remaining: AtomicUsize::new(count),
            done: Mutex::new(count == 0),
            done_changed: Condvar::new(),
        }
    }

    /// Records one finished task.
    pub fn count_down(&self) {
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            *self
                .done
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()) = true;
            self.done_changed.notify_all();
        }
    }

    /// Blocks until every task has counted down.
    pub fn wait(&self) {
        let mut done = self
            .done
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        while !*done {
            done = self
                .done_changed
                .wait(done)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }
}

/// Adapts a [`Spawn`] pool to [`Pool`]: batches wait on a [`Latch`], round trips on a channel.
#[derive(Debug)]
pub struct Spawning<S> {
    /// The pool.
    pool: S,
    /// Where a round-trip task sends its answer; one channel reused for every round trip.
    answer_sender: Sender<u64>,
    /// Where the round-trip caller waits for it.
    answer_receiver: Receiver<u64>,
}

impl<S: Spawn> Pool for Spawning<S> {
    type Pending = Arc<Latch>;

    fn build(workers: usize) -> Result<Self> {
        let (answer_sender, answer_receiver) = crossbeam_channel::bounded(1);
        Ok(Spawning {
            pool: S::build(workers)?,
            answer_sender,
            answer_receiver,
        })
    }

    fn submit_batch<F>(&self, count: usize, task: F) -> Arc<Latch>
    where
        F: Fn(u64) -> u64 + Clone + Send + 'static,
    {
        let latch = Arc::new(Latch::new(count));
        for index in 0..count as u64 {
            let latch = Arc::clone(&latch);
            let task = task.clone();
            self.pool.spawn(move || {
                black_box(task(index));
                latch.count_down();
            });
        }
        latch
    }

    fn wait_batch(&self, pending: Arc<Latch>) {
        pending.wait();
    }

    fn round_trip(&self, input: u64) -> u64 {
        let answer_sender = self.answer_sender.clone();
        self.pool.spawn(move || {
            // The receiver lives as long as the pool, so this cannot fail while anyone listens.
            let _ = answer_sender.send(trivial(input));
        });
        self.answer_receiver
            .recv()
            .expect("a round-trip task dropped its answer")
    }
}

/// Adapts a [`Submit`] pool to [`Pool`]: batches keep and wait on every handle.
#[derive(Debug)]
pub struct Submitting<S>(S);

impl<S: Submit> Pool for Submitting<S> {
    type Pending = Vec<S::Handle>;

    fn build(workers: usize) -> Result<Self> {
        S::build(workers).map(Submitting)
    }

    fn submit_batch<F>(&self, count: usize, task: F) -> Self::Pending
    where
        F: Fn(u64) -> u64 + Clone + Send + 'static,
    {
        (0..count as u64)
            .map(|index| {
                let task = task.clone();
                self.0.submit(move || task(index))
            })
            .collect()
    }

    fn wait_batch(&self, pending: Self::Pending) {
        for handle in pending {
            black_box(self.0.wait(handle));
        }
    }

    fn round_trip(&self, input: u64) -> u64 {
        let handle = self.0.submit(move || trivial(input));
        self.0.wait(handle)
    }

    fn fresh_pool_unsupported() -> Option<&'static str> {
        S::fresh_pool_unsupported()
    }
}

/// The floor: two std threads taking boxed closures from one crossbeam channel. The least any
/// queue-based pool can do.
#[derive(Debug)]
pub struct Floor {
    /// The queue; dropped first on drop so that the workers see it closed and exit.
    sender: Option<Sender<Box<dyn FnOnce() + Send>>>,
    /// The workers, joined on drop.
    workers: Vec<JoinHandle<()>>,
}

impl Spawn for Floor {
    fn build(workers: usize) -> Result<Self> {
        let (sender, receiver) = crossbeam_channel::unbounded::<Box<dyn FnOnce() + Send>>();
        let workers = (0..workers)
            .map(|index| {
                let receiver = receiver.clone();
                thread::Builder::new()
                    .name(format!("floor-{index}"))
                    .spawn(move || {
                        for job in receiver {
                            job();
                        }
                    })
                    .context("spawning a floor worker")
            })
            .collect::<Result<_>>()?;
        Ok(Floor {
            sender: Some(sender),
            workers,
        })
    }

    fn spawn<F: FnOnce() + Send + 'static>(&self, job: F) {
        if let Some(sender) = &self.sender {
            sender
                .send(Box::new(job))
                .expect("the floor's workers hang up only on drop");
        }
    }
}

impl Drop for Floor {
    fn drop(&mut self) {
        self.sender = None;
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

/// The handle floor: the floor's threads and channel, plus the least a per-task result handle
/// needs in safe Rust with std's primitives: a shared slot that the task fills (`OnceLock`) and
/// that wakes a parked waiter only if one registered. Two allocations per task (the slot and the
/// boxed closure), no cancellation, no ids, no shutdown guarantees. Not a peer but a second
/// reference line: what returning a handle costs in this harness, whoever implements it. It
/// wakes only a waiter that registered: a `Condvar` notified per task would add a futex wake per
/// task, and the line would measure that instead of the handle (see the README).
#[derive(Debug)]
pub struct HandleFloor(Floor);

/// One task's result slot in the [`HandleFloor`].
#[derive(Debug, Default)]
pub struct Slot {
    /// The task's result, set once by the worker.
    value: OnceLock<u64>,
    /// The thread waiting for the result, if one registered before it was set.
    waiter: Mutex<Option<Thread>>,
}

impl Submit for HandleFloor {
    type Handle = Arc<Slot>;

    fn build(workers: usize) -> Result<Self> {
        Floor::build(workers).map(HandleFloor)
    }

    fn submit<F: FnOnce() -> u64 + Send + 'static>(&self, job: F) -> Self::Handle {
        let slot = Arc::new(Slot::default());
        let filled = Arc::clone(&slot);
        self.0.spawn(move || {
            let _ = filled.value.set(job());
            // After the set: a waiter that registers later sees the value on its next check.
            let waiter = filled
                .waiter
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if let Some(waiter) = &*waiter {
                waiter.unpark();
            }
        });
        slot
    }

    fn wait(&self, handle: Self::Handle) -> u64 {
        if let Some(value) = handle.value.get() {
            return *value;
        }
        *handle
            .waiter
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(thread::current());
        // Parks wake spuriously too, so the value is checked on every wake.
        loop {
            if let Some(value) = handle.value.get() {
                return *value;
            }
            thread::park();
        }
    }
}

/// rayon's `ThreadPool::spawn`.
#[derive(Debug)]
pub struct Rayon(rayon::ThreadPool);

impl Spawn for Rayon {
    fn build(workers: usize) -> Result<Self> {
        rayon::ThreadPoolBuilder::new()
            .num_threads(workers)
            .build()
            .map(Rayon)
            .map_err(|error| anyhow!("building a rayon pool: {error}"))
    }

    fn spawn<F: FnOnce() + Send + 'static>(&self, job: F) {
        self.0.spawn(job);
    }
}

/// The `threadpool` crate's `ThreadPool::execute`.
#[derive(Debug)]
pub struct ThreadPoolCrate(threadpool::ThreadPool);

impl Spawn for ThreadPoolCrate {
    fn build(workers: usize) -> Result<Self> {
        Ok(ThreadPoolCrate(threadpool::ThreadPool::new(workers)))
    }

    fn spawn<F: FnOnce() + Send + 'static>(&self, job: F) {
        self.0.execute(job);
    }
}

impl Drop for ThreadPoolCrate {
    fn drop(&mut self) {
        self.0.join();
    }
}

/// tokio's `spawn_blocking` on a current-thread runtime with `max_blocking_threads(workers)`.
#[derive(Debug)]
pub struct Tokio(tokio::runtime::Runtime);

impl Submit for Tokio {
    type Handle = tokio::task::JoinHandle<u64>;

    fn build(workers: usize) -> Result<Self> {
        tokio::runtime::Builder::new_current_thread()
            .max_blocking_threads(workers)
            .build()
            .map(Tokio)
            .context("building a tokio runtime")
    }

    fn submit<F: FnOnce() -> u64 + Send + 'static>(&self, job: F) -> Self::Handle {
        self.0.spawn_blocking(job)
    }

    fn wait(&self, handle: Self::Handle) -> u64 {
        block_on(handle).expect("a spawn_blocking task panicked or was cancelled")
    }
}

/// smol's `blocking::unblock`. Its pool is global and sized by `BLOCKING_MAX_THREADS`, which
/// `main` sets to 2 before anything else runs, so `workers` here is ignored.
#[derive(Debug)]
pub struct Blocking;

impl Submit for Blocking {
    type Handle = blocking::Task<u64>;

    fn build(_workers: usize) -> Result<Self> {
        Ok(Blocking)
    }

    fn submit<F: FnOnce() -> u64 + Send + 'static>(&self, job: F) -> Self::Handle {
        blocking::unblock(job)
    }

    fn wait(&self, handle: Self::Handle) -> u64 {
        block_on(handle)
    }

    fn fresh_pool_unsupported() -> Option<&'static str> {
        Some("the pool is global, built once per process")
    }
}

/// taskhost-executor's `submit`, which returns a [`taskhost_executor::TaskFuture`] per task.
#[derive(Debug)]
pub struct ExecutorSubmit(taskhost_executor::Executor);

impl Submit for ExecutorSubmit {
    type Handle = taskhost_executor::TaskFuture<u64>;

    fn build(workers: usize) -> Result<Self> {
        build_executor(workers).map(ExecutorSubmit)
    }

    fn submit<F: FnOnce() -> u64 + Send + 'static>(&self, job: F) -> Self::Handle {
        self.0
            .submit(job)
            .unwrap_or_else(|_| panic!("the executor refused a task while open"))
    }

    fn wait(&self, handle: Self::Handle) -> u64 {
        *handle
            .result(None)
            .expect("an executor task panicked or was cancelled")
    }
}

/// taskhost-executor's fire-and-forget `execute`.
#[derive(Debug)]
pub struct ExecutorExecute(taskhost_executor::Executor);

impl Spawn for ExecutorExecute {
    fn build(workers: usize) -> Result<Self> {
        build_executor(workers).map(ExecutorExecute)
    }

    fn spawn<F: FnOnce() + Send + 'static>(&self, job: F) {
        self.0
            .execute(job)
            .unwrap_or_else(|_| panic!("the executor refused a task while open"));
    }
}

/// An executor with `workers` workers and every other setting at its default.
fn build_executor(workers: usize) -> Result<taskhost_executor::Executor> {
    taskhost_executor::Executor::builder()
        .max_workers(workers)
        .build()
        .map_err(|error| anyhow!("building a taskhost executor: {error}"))
}

/// Wakes the thread that is blocked in [`block_on`].
struct ThreadWaker(Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

thread_local! {
    /// One waker per thread, so that waiting on a handle allocates nothing.
    static THREAD_WAKER: Waker = Waker::from(Arc::new(ThreadWaker(thread::current())));
}

/// Polls `future` on this thread, parking between polls. Spurious unparks only cost a poll.
pub fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    THREAD_WAKER.with(|waker| {
        let mut context = Context::from_waker(waker);
        loop {
            if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
                return output;
            }
            thread::park();
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exercise<P: Pool>() {
        let pool = P::build(2).unwrap();
        assert_eq!(pool.round_trip(3), trivial(3));
        pool.run_batch(1_000);
        let pending = pool.submit_batch(10, |index| index + 1);
        pool.wait_batch(pending);
    }

    #[test]
    fn every_contender_runs_batches_and_round_trips() {
        exercise::<Spawning<Floor>>();
        exercise::<Submitting<HandleFloor>>();
        exercise::<Spawning<Rayon>>();
        exercise::<Spawning<ThreadPoolCrate>>();
        exercise::<Submitting<Tokio>>();
        exercise::<Submitting<Blocking>>();
        exercise::<Submitting<ExecutorSubmit>>();
        exercise::<Spawning<ExecutorExecute>>();
    }

    #[test]
    fn a_handle_floor_waiter_that_parks_before_the_result_gets_it() {
        let pool = HandleFloor::build(1).unwrap();
        let (release, released) = crossbeam_channel::bounded::<()>(0);
        let handle = pool.submit(move || {
            released.recv().unwrap();
            7
        });
        // The task finishes only once the waiter has registered, so the wake must reach a
        // parked (or about to park) waiter: without the unpark this test hangs.
        let watched = Arc::clone(&handle);
        let releaser = thread::spawn(move || {
            while watched.waiter.lock().unwrap().is_none() {
                thread::sleep(std::time::Duration::from_millis(1));
            }
            release.send(()).unwrap();
        });
        assert_eq!(pool.wait(handle), 7);
        releaser.join().unwrap();
    }

    #[test]
    fn latch_opens_after_the_last_count_down() {
        let latch = Arc::new(Latch::new(3));
        let counted = Arc::new(AtomicUsize::new(0));
        let handles: Vec<_> = (0..3)
            .map(|_| {
                let (latch, counted) = (Arc::clone(&latch), Arc::clone(&counted));
                thread::spawn(move || {
                    counted.fetch_add(1, Ordering::SeqCst);
                    latch.count_down();
                })
            })
            .collect();
        latch.wait();
        assert_eq!(counted.load(Ordering::SeqCst), 3);
        for handle in handles {
            handle.join().unwrap();
        }
        Latch::new(0).wait();
    }
}
