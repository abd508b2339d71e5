//! The dispatcher: entries in, one outcome per entry out.
//!
//! ```text
//!  reader thread ──(bounded queue)──► dispatch loop ──► pool.submit ──► worker runs the plugin
//!  (intake)                            │ permit per entry                │ (in this process, or
//!                                      │ (backpressure)                  │  in its worker process)
//!                                      │                                 ▼ done callback (attempt)
//!                                      └── invalid / rejected ──► outbox ─► writer ─► OutcomeSink
//!                                                                 (reorders with --ordered,
//!                                                                  releases the permit)
//!  timer thread: per-attempt timeouts (request_stop), giving up on an attempt that ignores its
//!  stop request, and retries after their backoff
//! ```
//!
//! One file per question, in layers (each uses only those above it):
//! `job` (what an attempt carries) · `catalog`, `pools` (what runs where) · `permits`,
//! `handoff`, `outbox`, `timer` (the plumbing) · `running` (attempts in the pools) ·
//! `verdict` (what a result means) · `attempt` (submit, callback, timeout, retry) · `writer` ·
//! `stop` (Ctrl-C, the grace, `exit`) · `control` (single entries from outside: the cluster
//! worker's cancels) · `intake` (reader, routing an entry) · `run` (the steps).
//!
//! Invariants: every entry taken from the source gets exactly one outcome (whoever removes an
//! attempt from the `running` table reports it); an entry holds one in-flight permit from the
//! moment it is taken until its outcome is written, so memory is bounded by `run.max_in_flight`
//! whatever the input size, with or without `--ordered`.
//!
//! A task that ignores its timeout is reported `timed_out` once the grace after it has passed;
//! in a thread pool its worker stays busy, so the pools are then not joined at the end (in an
//! isolated pool its worker process is killed instead). A plugin calling `exit` mid-run is
//! answered by [`exit_watch`]: every record out, then status 1.

mod attempt;
mod catalog;
mod control;
pub mod exit_watch;
mod handoff;
mod intake;
mod job;
pub mod journal;
mod outbox;
mod permits;
mod pools;
#[cfg(test)]
mod proptests;
mod run;
mod running;
mod stop;
mod timer;
mod verdict;
mod writer;

use std::sync::{Mutex, MutexGuard};

pub use catalog::{did_you_mean, Catalog, ResolvedTask};
pub use control::RunControl;
pub use pools::{Pools, WorkerProcess, KILL_GRACE};
pub use run::{run, RunOptions, RunReport};

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
