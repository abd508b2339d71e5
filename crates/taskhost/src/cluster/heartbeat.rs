//! A worker's heartbeat: every [`INTERVAL`] it says who it is, what it serves and how busy it
//! is, for `taskhost cluster status` (core NATS, not stored: a worker that is silent for a
//! while is gone).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use taskhost_cluster::Queue;

use super::leases::WorkerState;
use crate::config::settings::PoolSettings;

/// How often a worker sends its heartbeat.
pub(crate) const INTERVAL: Duration = Duration::from_secs(1);

/// What a heartbeat says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Heartbeat {
    pub(crate) name: String,
    pub(crate) plugins: Vec<String>,
    /// Pool name → its workers.
    pub(crate) pools: BTreeMap<String, usize>,
    /// Items it holds now (running, or waiting for a pool worker).
    pub(crate) running: usize,
    /// When it started, in seconds since 1970.
    pub(crate) started: u64,
    /// The taskhost version it runs.
    pub(crate) version: String,
}

impl Heartbeat {
    pub(crate) fn new(name: &str, plugins: &[String], pools: &[PoolSettings]) -> Heartbeat {
        Heartbeat {
            name: name.to_owned(),
            plugins: plugins.to_vec(),
            pools: pools
                .iter()
                .map(|pool| (pool.name.clone(), pool.max_workers))
                .collect(),
            running: 0,
            started: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |since| since.as_secs()),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        }
    }
}

/// A worker's name: what a subject token may hold, 1 to 64 of `A-Z a-z 0-9 _ - .`.
pub(crate) fn check_name(name: &str) -> Result<(), String> {
    let fits = (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if fits {
        Ok(())
    } else {
        Err(format!(
            "expected a worker name of 1 to 64 of A-Z a-z 0-9 _ - ., found {name:?}"
        ))
    }
}

/// Sends heartbeats until dropped.
#[derive(Debug)]
pub(crate) struct Beating {
    going: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Beating {
    fn drop(&mut self) {
        self.going.store(false, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Starts the heartbeat thread (a worker without one still works: it is only unseen).
pub(crate) fn start(queue: &Queue, mut heartbeat: Heartbeat, state: &Arc<WorkerState>) -> Beating {
    let going = Arc::new(AtomicBool::new(true));
    let (queue, state, flag) = (queue.clone(), Arc::clone(state), Arc::clone(&going));
    let thread = std::thread::Builder::new()
        .name("taskhost-heartbeat".to_owned())
        .spawn(move || {
            let mut warned = false;
            while flag.load(Ordering::SeqCst) {
                heartbeat.running = state.leased();
                let payload = serde_json::to_vec(&heartbeat).expect("a heartbeat serializes");
                match queue.publish_heartbeat(&heartbeat.name, &payload) {
                    Ok(()) => warned = false,
                    Err(error) if !warned => {
                        warned = true;
                        tracing::warn!(target: "taskhost::cluster", "{error}");
                    }
                    Err(_) => {}
                }
                // Short naps, so that dropping the handle does not wait a whole interval.
                let mut slept = Duration::ZERO;
                while slept < INTERVAL && flag.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(50));
                    slept += Duration::from_millis(50);
                }
            }
        })
        .map_err(|error| tracing::warn!(target: "taskhost::cluster", "no heartbeats: {error}"))
        .ok();
    Beating { going, thread }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_subject_tokens() {
        assert!(check_name("host-1.example.org-42").is_ok());
        for bad in ["", "a b", "a*", "é", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }
}
