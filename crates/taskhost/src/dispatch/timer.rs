//! One thread for everything that must happen later: an attempt's timeout (ask it to stop), the
//! end of the grace that follows (give up on it) and a retry after its backoff (submit it again).

use std::collections::BTreeMap;
use std::sync::{Condvar, Mutex};
use std::time::Instant;

use super::job::Job;
use super::lock;

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
        self.take_retries_of(|_| true)
    }

    /// Removes the pending retry of job `seq` (a cancel of that one entry), if it waits.
    pub(crate) fn take_retry(&self, seq: u64) -> Option<Job> {
        self.take_retries_of(|job| job.seq == seq).pop()
    }

    fn take_retries_of(&self, wanted: impl Fn(&Job) -> bool) -> Vec<Job> {
        let mut state = lock(&self.state);
        let keys: Vec<TimerKey> = state
            .actions
            .iter()
            .filter(|(_, action)| matches!(action, TimerAction::Retry(job) if wanted(job)))
            .map(|(key, _)| *key)
            .collect();
        keys.into_iter()
            .filter_map(|key| match state.actions.remove(&key) {
                Some(TimerAction::Retry(job)) => Some(*job),
                _ => None,
            })
            .collect()
    }

    /// How many retries are pending.
    #[cfg(test)]
    pub(crate) fn retries(&self) -> usize {
        let state = lock(&self.state);
        let retries = state.actions.values();
        retries
            .filter(|action| matches!(action, TimerAction::Retry(_)))
            .count()
    }

    pub(crate) fn shut_down(&self) {
        lock(&self.state).shut_down = true;
        self.changed.notify_all();
    }

    /// Runs the schedule on this thread, handing each action to `fire` when it is due, until
    /// [`shut_down`](Self::shut_down).
    pub(crate) fn run(&self, mut fire: impl FnMut(TimerAction)) {
        loop {
            let action = {
                let mut state = lock(&self.state);
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
                            state = self
                                .changed
                                .wait_timeout(state, at - now)
                                .unwrap_or_else(|e| e.into_inner())
                                .0;
                        }
                        None => {
                            state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
                        }
                    }
                }
            };
            fire(action);
        }
    }
}
