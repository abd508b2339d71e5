//! What a worker holds: the deliveries it has taken (by the `seq` of their entry in the run),
//! the room its pools have left, the runs its submitters cancelled, and whether it is
//! stopping. Shared by the fetch threads, the source, the sink, the cancel listener and the
//! shutdown; the lock is never held while talking to the server.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use taskhost_cluster::Delivery;

use super::metrics::PluginCounters;

/// How long a pull waits for more room to be free while its plugin holds items.
const GATHER: Duration = Duration::from_millis(2);

/// How many cancelled runs a worker remembers (their items pulled later are not run).
const CANCELLED_RUNS_KEPT: usize = 1024;

/// A delivery the dispatcher has, by its entry's `seq`.
#[derive(Debug)]
pub(crate) struct Lease {
    pub(crate) delivery: Delivery,
    /// Which of the worker's plugins (its room is given back when the item is done).
    pub(crate) plugin: usize,
    /// The submitter asked to stop it: its `cancelled` record is published, not given back.
    pub(crate) cancelled: bool,
}

/// The room of one plugin: the workers of the pools its tasks route to.
#[derive(Debug)]
struct Room {
    capacity: usize,
    /// Reserved for a pull, or held by an item that is not finished yet.
    taken: usize,
}

#[derive(Debug, Default)]
struct Inner {
    leases: HashMap<u64, Lease>,
    rooms: Vec<Room>,
    /// Every pool counted once: a pull takes room from both its plugin and the whole.
    capacity: usize,
    taken: usize,
    /// Outcomes being published in the background.
    finishing: usize,
    cancelled_runs: HashSet<String>,
    cancelled_order: VecDeque<String>,
}

/// The worker's shared state.
#[derive(Debug, Default)]
pub(crate) struct WorkerState {
    inner: Mutex<Inner>,
    /// Room came back, a background finish ended, or the worker is stopping.
    changed: Condvar,
    stopping: AtomicBool,
    /// Per plugin (by index): what `--metrics-addr` serves.
    pub(crate) counters: Arc<[PluginCounters]>,
}

impl WorkerState {
    /// `rooms[plugin]`: how many of its items may run at once; `capacity`: how many of all.
    pub(crate) fn new(rooms: &[usize], capacity: usize) -> Arc<WorkerState> {
        let state = WorkerState {
            counters: rooms.iter().map(|_| PluginCounters::default()).collect(),
            ..WorkerState::default()
        };
        {
            let mut inner = state.lock();
            inner.rooms = rooms
                .iter()
                .map(|&capacity| Room { capacity, taken: 0 })
                .collect();
            inner.capacity = capacity;
        }
        Arc::new(state)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reserves room for at most `max` items of `plugin`, waiting up to `wait` for some;
    /// 0 when there is none (or the worker is stopping).
    ///
    /// While the plugin still holds items, a pull waits up to [`GATHER`] for a quarter of its
    /// room to be free, so that one pull brings several items: a pull per item that finishes
    /// would cost the server a request each.
    pub(crate) fn reserve(&self, plugin: usize, max: usize, wait: Duration) -> usize {
        let now = Instant::now();
        let deadline = now + wait;
        let gathered = now + GATHER;
        let mut inner = self.lock();
        loop {
            if self.stopping() {
                return 0;
            }
            let room = &inner.rooms[plugin];
            let (capacity, held) = (room.capacity, room.taken);
            let free = capacity
                .saturating_sub(held)
                .min(inner.capacity.saturating_sub(inner.taken))
                .min(max);
            let now = Instant::now();
            let enough =
                free >= (capacity / 4).max(1) || held == 0 || now >= gathered || now >= deadline;
            if free > 0 && enough {
                inner.rooms[plugin].taken += free;
                inner.taken += free;
                return free;
            }
            let until = if free > 0 {
                gathered.min(deadline)
            } else {
                deadline
            };
            let left = until.saturating_duration_since(now);
            if left.is_zero() && free == 0 {
                return 0;
            }
            inner = self
                .changed
                .wait_timeout(inner, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Gives back `count` places of `plugin`: reserved and not used, or held by an item that
    /// is done (finished, or given back to the queue).
    pub(crate) fn release(&self, plugin: usize, count: usize) {
        if count == 0 {
            return;
        }
        let mut inner = self.lock();
        let room = &mut inner.rooms[plugin];
        room.taken = room.taken.saturating_sub(count);
        inner.taken = inner.taken.saturating_sub(count);
        drop(inner);
        self.changed.notify_all();
    }

    /// The dispatcher takes `delivery` as entry `seq`.
    pub(crate) fn lease(&self, seq: u64, delivery: Delivery, plugin: usize) {
        self.lock().leases.insert(
            seq,
            Lease {
                delivery,
                plugin,
                cancelled: false,
            },
        );
    }

    /// The lease of entry `seq`, taken away: `None` when it was given back already.
    pub(crate) fn take(&self, seq: u64) -> Option<Lease> {
        self.lock().leases.remove(&seq)
    }

    /// How many deliveries the dispatcher holds.
    pub(crate) fn leased(&self) -> usize {
        self.lock().leases.len()
    }

    /// Every lease, taken away (the shutdown gives them back to the queue).
    pub(crate) fn take_all(&self) -> Vec<Lease> {
        self.lock().leases.drain().map(|(_, lease)| lease).collect()
    }

    /// The submitter of `run_id` asks to stop `item_id`, or all its items: marks them and
    /// returns their entries' `seq`s. A whole run is remembered, so that its items pulled
    /// later are not run.
    pub(crate) fn cancel(&self, run_id: &str, item_id: Option<&str>) -> Vec<u64> {
        let mut inner = self.lock();
        if item_id.is_none() && inner.cancelled_runs.insert(run_id.to_owned()) {
            inner.cancelled_order.push_back(run_id.to_owned());
            if inner.cancelled_order.len() > CANCELLED_RUNS_KEPT {
                if let Some(oldest) = inner.cancelled_order.pop_front() {
                    inner.cancelled_runs.remove(&oldest);
                }
            }
        }
        let mut seqs = Vec::new();
        for (seq, lease) in &mut inner.leases {
            let delivery = &lease.delivery;
            if delivery.run_id() == run_id && item_id.is_none_or(|id| id == delivery.item_id()) {
                lease.cancelled = true;
                seqs.push(*seq);
            }
        }
        seqs
    }

    /// Whether the submitter of `run_id` cancelled it.
    pub(crate) fn run_cancelled(&self, run_id: &str) -> bool {
        self.lock().cancelled_runs.contains(run_id)
    }

    /// Stop pulling: from now on nothing is taken, and what arrives is given back.
    pub(crate) fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.changed.notify_all();
    }

    pub(crate) fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// An outcome starts its way to the server.
    pub(crate) fn finishing(&self) {
        self.lock().finishing += 1;
    }

    /// An outcome's way to the server ended (published and acked, or failed).
    pub(crate) fn finished(&self) {
        let mut inner = self.lock();
        inner.finishing = inner.finishing.saturating_sub(1);
        drop(inner);
        self.changed.notify_all();
    }

    /// Waits until no outcome is on its way, at most `wait`; how many still are.
    pub(crate) fn wait_finished(&self, wait: Duration) -> usize {
        let deadline = Instant::now() + wait;
        let mut inner = self.lock();
        while inner.finishing > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            inner = self
                .changed
                .wait_timeout(inner, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        inner.finishing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_is_bounded_per_plugin_and_in_all() {
        // Plugin 0 has 3 places, plugin 1 has 2, and the pools 4 in all.
        let state = WorkerState::new(&[3, 2], 4);
        let no_wait = Duration::ZERO;
        assert_eq!(state.reserve(0, 10, no_wait), 3);
        assert_eq!(state.reserve(0, 10, no_wait), 0);
        assert_eq!(
            state.reserve(1, 10, no_wait),
            1,
            "only one place left in all"
        );
        state.release(0, 2);
        assert_eq!(state.reserve(1, 10, no_wait), 1, "plugin 1 is full now");
        assert_eq!(state.reserve(0, 1, no_wait), 1);
        // A waiting pull gets the room given back meanwhile.
        std::thread::scope(|scope| {
            scope.spawn(|| {
                std::thread::sleep(Duration::from_millis(50));
                state.release(1, 1);
            });
            assert_eq!(state.reserve(1, 5, Duration::from_secs(30)), 1);
        });
        state.stop();
        state.release(0, 2);
        assert_eq!(state.reserve(0, 1, no_wait), 0, "nothing while stopping");
    }

    #[test]
    fn a_cancelled_run_is_remembered_a_cancelled_item_is_not() {
        let state = WorkerState::new(&[1], 1);
        assert!(state.cancel("r1", Some("a")).is_empty());
        assert!(!state.run_cancelled("r1"));
        state.cancel("r1", None);
        assert!(state.run_cancelled("r1"));
        for n in 0..CANCELLED_RUNS_KEPT {
            state.cancel(&format!("other{n}"), None);
        }
        assert!(!state.run_cancelled("r1"), "the oldest is forgotten");
        assert!(state.run_cancelled(&format!("other{}", CANCELLED_RUNS_KEPT - 1)));
    }

    #[test]
    fn waiting_for_finishes_ends_when_the_last_one_does() {
        let state = WorkerState::new(&[1], 1);
        assert_eq!(state.wait_finished(Duration::ZERO), 0);
        state.finishing();
        state.finishing();
        assert_eq!(state.wait_finished(Duration::from_millis(10)), 2);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                state.finished();
                std::thread::sleep(Duration::from_millis(20));
                state.finished();
            });
            assert_eq!(state.wait_finished(Duration::from_secs(30)), 0);
        });
    }
}
