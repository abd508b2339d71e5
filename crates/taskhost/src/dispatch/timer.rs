//! One thread for everything that must happen later: an attempt's timeout (ask it to stop), the
//! end of the grace that follows (give up on it) and a retry after its backoff (submit it again).

use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use anyhow::{Context, Result};

use super::{lock, Job, Shared};

/// Something to do at a given time.
#[derive(Debug)]
pub(crate) enum TimerAction {
    /// Attempt `attempt` of job `seq` has run for its whole timeout.
    Timeout { seq: u64, attempt: u32 },
    /// The grace period after that timeout has passed: give up on the attempt if it still runs.
    Abandon { seq: u64, attempt: u32 },
    /// Submit the job again.
    Retry(Box<Job>),
}

/// Identifies a scheduled action, for [`Timer::cancel`].
pub(crate) type TimerKey = (Instant, u64);

#[derive(Debug, Default)]
struct TimerState {
    /// By due time; the counter keeps keys unique. A completed attempt removes its timeout, so
    /// the map holds at most one entry per item in flight.
    actions: BTreeMap<TimerKey, TimerAction>,
    next_key: u64,
    shut_down: bool,
}

/// The schedule; [`spawn`] runs it.
#[derive(Debug, Default)]
pub(crate) struct Timer {
    state: Mutex<TimerState>,
    changed: Condvar,
}

impl Timer {
    pub(crate) fn schedule(&self, at: Instant, action: TimerAction) -> TimerKey {
        let mut state = lock(&self.state);
        let key = (at, state.next_key);
        state.next_key += 1;
        let earliest = state.actions.keys().next().is_none_or(|first| key < *first);
        state.actions.insert(key, action);
        drop(state);
        if earliest {
            self.changed.notify_one();
        }
        key
    }

    /// Drops a scheduled action (a timeout whose attempt has finished).
    pub(crate) fn cancel(&self, key: TimerKey) {
        lock(&self.state).actions.remove(&key);
    }

    /// Removes every pending retry (for an interrupt) and returns the jobs.
    pub(crate) fn take_retries(&self) -> Vec<Job> {
        let mut state = lock(&self.state);
        let keys: Vec<TimerKey> = state
            .actions
            .iter()
            .filter(|(_, action)| matches!(action, TimerAction::Retry(_)))
            .map(|(key, _)| *key)
            .collect();
        keys.into_iter()
            .filter_map(|key| match state.actions.remove(&key) {
                Some(TimerAction::Retry(job)) => Some(*job),
                _ => None,
            })
            .collect()
    }

    pub(crate) fn shut_down(&self) {
        lock(&self.state).shut_down = true;
        self.changed.notify_all();
    }
}

/// Starts the timer thread.
pub(crate) fn spawn(shared: Arc<Shared>) -> Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("taskhost-timer".to_owned())
        .spawn(move || loop {
            let action = {
                let mut state = lock(&shared.timer.state);
                loop {
                    if state.shut_down {
                        return;
                    }
                    let now = Instant::now();
                    match state.actions.keys().next().copied() {
                        Some(key) if key.0 <= now => {
                            if let Some(action) = state.actions.remove(&key) {
                                break action;
                            }
                        }
                        Some((at, _)) => {
                            state = shared
                                .timer
                                .changed
                                .wait_timeout(state, at - now)
                                .unwrap_or_else(|e| e.into_inner())
                                .0;
                        }
                        None => {
                            state = shared
                                .timer
                                .changed
                                .wait(state)
                                .unwrap_or_else(|e| e.into_inner());
                        }
                    }
                }
            };
            match action {
                TimerAction::Timeout { seq, attempt } => shared.time_out(seq, attempt),
                TimerAction::Abandon { seq, attempt } => shared.abandon(seq, attempt),
                TimerAction::Retry(job) => shared.submit(*job),
            }
        })
        .context("starting the timer thread")
}
