//! How long a task waited and ran: [`TaskTimings`], and the one `u64` word a task keeps them in.
//!
//! While the task is queued the word is `QUEUED | enqueue time` (ns since the pool's epoch); once
//! it has started, the queue wait is in the high half and the run time in the low half, each
//! packed as two bits of unit (ns, µs, ms, s) and a count in the finest unit that fits: exact to
//! the nanosecond up to about half a second, under two millionths off beyond, saturating after 17
//! years. One word instead of two keeps a task with a two-word closure within glibc's fast bins
//! (a unit test in `job.rs` guards the size).
//!
//! Every per-task instant is integer ns since the pool's epoch: one clock read per submit, and one
//! per task on a busy worker (a task's end is the next one's start). A task is timed only in a
//! pool built with [`task_timings(true)`](crate::ExecutorBuilder::task_timings) or while the DEBUG
//! events that carry `waited_us`/`ran_us` are enabled; otherwise no clock is read at all.

use std::time::Duration;

use crate::sync::{AtomicU64, Ordering};

/// An instant (ns since the pool's epoch) that was not taken because the task is not timed: a
/// worker slot's `started_ns`, an execute job's enqueue time.
pub(crate) const NOT_TIMED: u64 = u64::MAX;

/// The timings word of a task that is not timed.
const UNSET: u64 = u64::MAX;
/// High bit of the timings word: the task has not started; the rest is its enqueue time.
const QUEUED: u64 = 1 << 63;
/// The timings word's low half while the task runs.
const RUN_PENDING: u64 = 0xFFFF_FFFF;
/// The timings word's high half when the run was timed but the queue wait was not.
const WAIT_UNKNOWN: u64 = 0x7FFF_FFFF;
/// Bits of the queue wait (the high half less [`QUEUED`]'s bit) and of the run time.
const WAIT_BITS: u32 = 31;
const RUN_BITS: u32 = 32;
/// Nanoseconds per unit of a packed duration: ns, µs, ms, s.
const UNIT_NS: [u64; 4] = [1, 1_000, 1_000_000, 1_000_000_000];

/// How long a task waited in the queue and how long it ran, from
/// [`TaskFuture::timings`](crate::TaskFuture::timings): recorded only by a pool built with
/// [`task_timings(true)`](crate::ExecutorBuilder::task_timings). Exact to the nanosecond up to
/// about half a second, then to the microsecond, millisecond or second (under two millionths off),
/// never rounded up.
///
/// ```
/// use taskhost_executor::Executor;
///
/// let pool = Executor::builder().max_workers(1).task_timings(true).build().unwrap();
/// let f = pool.submit(|| ()).unwrap();
/// f.result(None).unwrap();
/// let t = f.timings();
/// assert!(t.queue_wait.is_some() && t.run_time.is_some());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TaskTimings {
    /// Time from submission to the start of the run; `None` until the task starts.
    pub queue_wait: Option<Duration>,
    /// Time the task ran; `None` until it has finished running.
    pub run_time: Option<Duration>,
}

/// `ns` in `bits` bits: two bits of unit and a count in the finest unit that fits (rounded
/// down), so short durations keep every nanosecond and long ones lose under two millionths,
/// with no cap short of decades. The all-ones code is never produced ([`RUN_PENDING`],
/// [`WAIT_UNKNOWN`]).
fn pack_duration(ns: u64, bits: u32) -> u64 {
    let count_bits = bits - 2;
    let limit = (1u64 << count_bits) - 1;
    for (unit, scale) in (0u64..).zip(UNIT_NS) {
        let count = ns / scale;
        if count < limit {
            return (unit << count_bits) | count;
        }
    }
    (3 << count_bits) | (limit - 1)
}

/// The inverse of [`pack_duration`].
fn unpack_duration(code: u64, bits: u32) -> Duration {
    let count_bits = bits - 2;
    let unit = usize::try_from((code >> count_bits) & 3).unwrap_or(3);
    let count = code & ((1u64 << count_bits) - 1);
    Duration::from_nanos(count.saturating_mul(UNIT_NS[unit]))
}

/// One task's timings word (see the module docs). Written only by the thread that runs the task;
/// read by any future handle.
pub(crate) struct TimingsWord(AtomicU64);

impl TimingsWord {
    /// `queued_ns`: when the task was queued, in ns since its pool's epoch (`None`: the task is
    /// not timed).
    pub(crate) fn new(queued_ns: Option<u64>) -> Self {
        TimingsWord(AtomicU64::new(
            queued_ns.map_or(UNSET, |ns| QUEUED | (ns & !QUEUED)),
        ))
    }

    /// When the task was queued (ns since the pool's epoch), if it is timed; only meaningful
    /// before [`record_queue_wait`](Self::record_queue_wait), i.e. to the thread that starts it.
    pub(crate) fn queued_ns(&self) -> Option<u64> {
        let raw = self.0.load(Ordering::Relaxed);
        (raw != UNSET && raw & QUEUED != 0).then_some(raw & !QUEUED)
    }

    /// Records the queue wait (by the worker that started the task, the word's only writer).
    pub(crate) fn record_queue_wait(&self, waited_ns: u64) {
        let word = (pack_duration(waited_ns, WAIT_BITS) << 32) | RUN_PENDING;
        self.0.store(word, Ordering::Relaxed);
    }

    /// Records the run time (by the worker that ran the task), keeping the queue wait.
    pub(crate) fn record_run_time(&self, ran_ns: u64) {
        let raw = self.0.load(Ordering::Relaxed);
        let wait = if raw & QUEUED != 0 {
            WAIT_UNKNOWN
        } else {
            raw >> 32
        };
        let word = (wait << 32) | pack_duration(ran_ns, RUN_BITS);
        self.0.store(word, Ordering::Relaxed);
    }

    /// The queue wait and run time recorded so far.
    pub(crate) fn read(&self) -> TaskTimings {
        let raw = self.0.load(Ordering::Relaxed);
        if raw & QUEUED != 0 {
            return TaskTimings::default();
        }
        let (wait, run) = (raw >> 32, raw & 0xFFFF_FFFF);
        TaskTimings {
            queue_wait: (wait != WAIT_UNKNOWN).then(|| unpack_duration(wait, WAIT_BITS)),
            run_time: (run != RUN_PENDING).then(|| unpack_duration(run, RUN_BITS)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Packed durations keep every nanosecond while they fit, lose under a thousandth beyond,
    /// never round up, and never produce the all-ones markers.
    #[test]
    fn packed_durations_round_trip() {
        for bits in [WAIT_BITS, RUN_BITS] {
            let marker = (1u64 << bits) - 1;
            // The longest duration a field holds (17 years for the wait): beyond, it saturates.
            let longest = ((1u64 << (bits - 2)) - 2) * UNIT_NS[3];
            let mut ns = 0u64;
            while ns < u64::MAX / 3 {
                for probe in [ns, ns + 1, ns.saturating_mul(3) / 2] {
                    let code = pack_duration(probe, bits);
                    assert!(code < marker, "{probe} ns packs to the marker");
                    let back = u64::try_from(unpack_duration(code, bits).as_nanos()).unwrap();
                    assert!(back <= probe, "{probe} ns rounds up to {back}");
                    if probe < 1 << (bits - 3) {
                        assert_eq!(back, probe, "short durations are exact");
                    } else if probe <= longest {
                        assert!(probe - back <= probe / 1000, "{probe} ns came back {back}");
                    } else {
                        assert_eq!(back, longest, "{probe} ns saturates");
                    }
                }
                ns = ns * 2 + 1;
            }
        }
    }

    /// The timings word: untimed and queued read as nothing, a started task has a wait and no
    /// run time yet, a finished one both; a run timed without its wait keeps the wait unknown.
    #[test]
    fn the_timings_word_reads_back_what_was_recorded() {
        let untimed = TimingsWord::new(None);
        assert_eq!(untimed.read(), TaskTimings::default());
        let timed = TimingsWord::new(Some(5_000));
        assert_eq!(timed.queued_ns(), Some(5_000));
        assert_eq!(timed.read(), TaskTimings::default(), "still queued");
        timed.record_queue_wait(1_234);
        assert_eq!(timed.queued_ns(), None);
        assert_eq!(
            timed.read(),
            TaskTimings {
                queue_wait: Some(Duration::from_nanos(1_234)),
                run_time: None
            }
        );
        timed.record_run_time(3_000_000_007);
        let t = timed.read();
        assert_eq!(t.queue_wait, Some(Duration::from_nanos(1_234)));
        assert_eq!(t.run_time, Some(Duration::from_micros(3_000_000)));
        untimed.record_run_time(42);
        assert_eq!(
            untimed.read(),
            TaskTimings {
                queue_wait: None,
                run_time: Some(Duration::from_nanos(42))
            }
        );
    }
}
