//! The running table: every attempt that is in a pool (queued or running), by the job's
//! sequence number. Whoever removes an attempt from it reports its outcome, so that a callback,
//! the timer and a shutdown racing for one item produce exactly one record.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use taskhost_executor::TaskFuture;

use super::job::{Attempted, Job};
use super::lock;
use super::timer::TimerKey;

/// An attempt in a pool. The job waits here (not in the done callback), so whoever removes the
/// entry gets it back whole, with nothing cloned.
pub(crate) struct Running {
    /// `None` while `submit_with` has not returned yet.
    pub(crate) future: Option<TaskFuture<Attempted>>,
    /// The timer fired this attempt's timeout (and asked it to stop).
    pub(crate) timed_out: bool,
    /// It ignored the stop request, and its worker process was killed (the executor then
    /// reports the attempt stopped, without its result).
    pub(crate) killed: bool,
    /// Its run's caller cancelled it ([`super::RunControl::cancel`]): whatever it ends with,
    /// it is not retried.
    pub(crate) cancelled: bool,
    /// The attempt's timeout in the timer, once it has started.
    pub(crate) timeout_key: Option<TimerKey>,
    /// When it was submitted, and (for an attempt with a timeout) when it started: the run time
    /// of an attempt that is given up on while it still runs.
    pub(crate) submitted: Instant,
    pub(crate) started: Option<Instant>,
    /// Its `span` is entered when cancelling, so the executor's event carries the item's fields.
    pub(crate) job: Job,
}

impl Running {
    /// A job's attempt, registered just before it is submitted.
    pub(crate) fn new(job: Job) -> Running {
        Running {
            future: None,
            timed_out: false,
            killed: false,
            cancelled: false,
            timeout_key: None,
            submitted: Instant::now(),
            started: None,
            job,
        }
    }

    /// When this attempt started (on the wall clock), if it has and that is known.
    pub(crate) fn started_at(&self) -> Option<std::time::SystemTime> {
        let started = self.started.or_else(|| {
            let wait = self.future.as_ref()?.timings().queue_wait?;
            Some(self.submitted + wait)
        })?;
        std::time::SystemTime::now().checked_sub(started.elapsed())
    }

    /// How long this attempt has run so far (zero when it has not started).
    pub(crate) fn ran_so_far(&self) -> Duration {
        if let Some(run_time) = self.future.as_ref().and_then(|f| f.timings().run_time) {
            return run_time;
        }
        let started = self.started.or_else(|| {
            let wait = self.future.as_ref()?.timings().queue_wait?;
            Some(self.submitted + wait)
        });
        started.map(|at| at.elapsed()).unwrap_or_default()
    }
}

/// Hashes the table's keys, the run's own sequence numbers: nobody else chooses them, so
/// SipHash's protection against chosen keys buys nothing, and a multiply spreads consecutive
/// numbers over the table (the dispatcher and every worker hash each item's key).
#[derive(Default)]
pub(crate) struct SeqHasher(u64);

impl Hasher for SeqHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(byte)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// How many shards the table has: the dispatcher registers item n while the workers remove
/// items n − k, and with one lock they queued for each other.
const SHARDS: usize = 16;

/// Attempts by sequence number (one shard's worth).
pub(crate) type Shard = HashMap<u64, Running, BuildHasherDefault<SeqHasher>>;

/// One shard, on its own cache-line pair.
#[repr(align(128))]
#[derive(Default)]
struct PaddedShard(Mutex<Shard>);

/// The running table, sharded by sequence number.
#[derive(Default)]
pub(crate) struct RunningTable {
    shards: [PaddedShard; SHARDS],
}

impl RunningTable {
    /// The shard that holds `seq`, locked.
    pub(crate) fn shard(&self, seq: u64) -> MutexGuard<'_, Shard> {
        lock(&self.shards[(seq % SHARDS as u64) as usize].0)
    }

    /// Something taken from every attempt that has one (each shard locked in turn).
    pub(crate) fn collect<T>(&self, mut take: impl FnMut(&Running) -> Option<T>) -> Vec<T> {
        let mut taken = Vec::new();
        for shard in &self.shards {
            taken.extend(lock(&shard.0).values().filter_map(&mut take));
        }
        taken
    }

    /// Removes every attempt.
    pub(crate) fn drain(&self) -> Vec<(u64, Running)> {
        let mut drained = Vec::new();
        for shard in &self.shards {
            drained.extend(lock(&shard.0).drain());
        }
        drained
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_spread_over_the_table() {
        use std::hash::BuildHasher;
        let build = BuildHasherDefault::<SeqHasher>::default();
        let hashes: std::collections::HashSet<u64> =
            (0..10_000u64).map(|n| build.hash_one(n)).collect();
        assert_eq!(hashes.len(), 10_000);
        // hashbrown takes its 7 control bits from the top: they must vary with the key too.
        let tops: std::collections::HashSet<u64> =
            (0..1_000u64).map(|n| build.hash_one(n) >> 57).collect();
        assert!(tops.len() > 100, "{} distinct top bits", tops.len());
        let mut map: HashMap<u64, u64, BuildHasherDefault<SeqHasher>> = HashMap::default();
        map.extend((0..1_000).map(|n| (n, n * 2)));
        assert!((0..1_000).all(|n| map[&n] == n * 2));
    }
}
