//! The synchronisation seam of the spawn/idle/retire protocol.
//!
//! Everything the protocol needs to be correct goes through this module and the work queue
//! ([`crate::queue`]): the atomics, the locks, thread spawning and joining, and the bounded waits
//! ([`spin_wait`], [`thread::backoff`]). Nothing outside these two modules names `std::sync` or
//! `crossbeam_channel` for protocol state.
//!
//! Under `cfg(loom)` (`RUSTFLAGS="--cfg loom"`, see `tests/loom.rs`) this module swaps in loom's
//! atomics, `Mutex`, `Condvar` and threads (and the queue its loom twin), so the model checker
//! runs the real protocol code.
//! What loom does not model stays real: `Arc` (loom's cannot hold `dyn Job`; reference counts are
//! not protocol state), the metrics [`counter`]s, the future's `OnceLock` (written before the
//! state word that publishes it), clocks (`Instant`) and tracing.
use std::time::Instant;

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, Ordering};
#[cfg(loom)]
pub(crate) use loom::sync::{Condvar, Mutex, MutexGuard};
#[cfg(loom)]
pub(crate) use loom_atomics::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
pub(crate) use std::sync::Arc;
#[cfg(not(loom))]
pub(crate) use std::sync::{Condvar, Mutex, MutexGuard};

/// Loom's atomics with `SeqCst` made whole. Loom treats a `SeqCst` access as `AcqRel` (only
/// `fence(SeqCst)` gets the full semantics), which reports false alarms for the protocol's
/// store-then-load-elsewhere pairs (a submit's `entered` increment and `shutdown` check against
/// shutdown's store and in-flight check). So every `SeqCst` access here is bracketed by
/// `fence(SeqCst)`, which gives the single total order the real code relies on; weaker
/// orderings pass straight through. (The price: a deliberately removed protocol fence between two
/// `SeqCst` accesses cannot be caught by the model.)
#[cfg(loom)]
mod loom_atomics {
    use loom::sync::atomic::{fence, Ordering};

    /// Runs one access, with `SeqCst` fences around it if it is `SeqCst`.
    fn sc<R>(orders: &[Ordering], access: impl FnOnce() -> R) -> R {
        let seq_cst = orders.contains(&Ordering::SeqCst);
        if seq_cst {
            fence(Ordering::SeqCst);
        }
        let result = access();
        if seq_cst {
            fence(Ordering::SeqCst);
        }
        result
    }

    macro_rules! fenced {
        ($name:ident, $t:ty) => {
            #[derive(Debug, Default)]
            pub(crate) struct $name(loom::sync::atomic::$name);

            #[allow(dead_code)]
            impl $name {
                pub(crate) fn new(value: $t) -> Self {
                    $name(loom::sync::atomic::$name::new(value))
                }
                pub(crate) fn load(&self, order: Ordering) -> $t {
                    sc(&[order], || self.0.load(order))
                }
                pub(crate) fn store(&self, value: $t, order: Ordering) {
                    sc(&[order], || self.0.store(value, order))
                }
                pub(crate) fn swap(&self, value: $t, order: Ordering) -> $t {
                    sc(&[order], || self.0.swap(value, order))
                }
                pub(crate) fn fetch_or(&self, value: $t, order: Ordering) -> $t {
                    sc(&[order], || self.0.fetch_or(value, order))
                }
                pub(crate) fn fetch_and(&self, value: $t, order: Ordering) -> $t {
                    sc(&[order], || self.0.fetch_and(value, order))
                }
                pub(crate) fn compare_exchange(
                    &self,
                    current: $t,
                    new: $t,
                    success: Ordering,
                    failure: Ordering,
                ) -> Result<$t, $t> {
                    sc(&[success, failure], || {
                        self.0.compare_exchange(current, new, success, failure)
                    })
                }
                pub(crate) fn compare_exchange_weak(
                    &self,
                    current: $t,
                    new: $t,
                    success: Ordering,
                    failure: Ordering,
                ) -> Result<$t, $t> {
                    sc(&[success, failure], || {
                        self.0.compare_exchange_weak(current, new, success, failure)
                    })
                }
                pub(crate) fn fetch_update(
                    &self,
                    set: Ordering,
                    fetch: Ordering,
                    update: impl FnMut($t) -> Option<$t>,
                ) -> Result<$t, $t> {
                    sc(&[set, fetch], || self.0.fetch_update(set, fetch, update))
                }
            }
        };
    }

    macro_rules! fenced_int {
        ($name:ident, $t:ty) => {
            fenced!($name, $t);

            #[allow(dead_code)]
            impl $name {
                pub(crate) fn fetch_add(&self, value: $t, order: Ordering) -> $t {
                    sc(&[order], || self.0.fetch_add(value, order))
                }
                pub(crate) fn fetch_sub(&self, value: $t, order: Ordering) -> $t {
                    sc(&[order], || self.0.fetch_sub(value, order))
                }
                pub(crate) fn fetch_max(&self, value: $t, order: Ordering) -> $t {
                    sc(&[order], || self.0.fetch_max(value, order))
                }
            }
        };
    }

    fenced!(AtomicBool, bool);
    fenced_int!(AtomicU8, u8);
    fenced_int!(AtomicU64, u64);
    fenced_int!(AtomicUsize, usize);
}

/// Plain atomics for state that is not part of the protocol (metrics, task ids, what a worker is
/// running): always `std`, also under loom, so they neither need a model nor add to its states.
pub(crate) mod counter {
    pub(crate) use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
}

/// Threads: `std::thread`, or loom's under `cfg(loom)`.
pub(crate) mod thread {
    #[cfg(loom)]
    pub(crate) use loom::thread::{current, JoinHandle};
    #[cfg(not(loom))]
    pub(crate) use std::thread::{current, JoinHandle};

    /// Starts a named thread (with `stack_size` bytes of stack, if given; not under loom).
    pub(crate) fn spawn_named(
        name: String,
        stack_size: Option<usize>,
        body: impl FnOnce() + Send + 'static,
    ) -> std::io::Result<JoinHandle<()>> {
        #[cfg(loom)]
        {
            let _ = stack_size;
            loom::thread::Builder::new().name(name).spawn(body)
        }
        #[cfg(not(loom))]
        {
            let builder = std::thread::Builder::new().name(name);
            match stack_size {
                Some(bytes) => builder.stack_size(bytes),
                None => builder,
            }
            .spawn(body)
        }
    }

    /// Whether the thread has finished (a join will not block). Loom's handles cannot tell:
    /// always false there, so records are only pruned by the final join.
    pub(crate) fn is_finished(handle: &JoinHandle<()>) -> bool {
        #[cfg(loom)]
        {
            let _ = handle;
            false
        }
        #[cfg(not(loom))]
        handle.is_finished()
    }

    /// One round of waiting for another thread (`round` counts from 0): yield for a while, then
    /// sleep briefly. Under loom, a yield (loom has no time).
    pub(crate) fn backoff(round: u32) {
        #[cfg(loom)]
        {
            let _ = round;
            loom::thread::yield_now();
        }
        #[cfg(not(loom))]
        if round < 64 {
            std::thread::yield_now();
        } else {
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
    }
}

/// Locks a mutex, ignoring poisoning: no lock in this crate is held while user code runs, so a
/// poisoned lock can only come from a bug in this crate, and the data is still consistent.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Waits once on `condvar` (ignoring poisoning, as [`lock`] does), at most until `deadline`
/// (`None`: no limit). `None` if the deadline had already passed: the caller gives up. Callers
/// loop, checking their condition before each wait.
pub(crate) fn wait_until<'a, T>(
    condvar: &Condvar,
    guard: MutexGuard<'a, T>,
    deadline: Option<Instant>,
) -> Option<MutexGuard<'a, T>> {
    let guard = match deadline {
        None => condvar
            .wait(guard)
            .unwrap_or_else(std::sync::PoisonError::into_inner),
        Some(deadline) => {
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            condvar
                .wait_timeout(guard, deadline - now)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0
        }
    };
    Some(guard)
}

/// Tries `attempt` for a short, bounded while and returns its first `Some`: seven rounds of
/// doubling spins (1, 2, … 64 spin hints), then four yields — the same budget as crossbeam's
/// own `Backoff` before its `recv` blocks (with half of it, a future's reader slept, and paid a
/// wake-up, measurably more often: the bench README has the numbers). Not a polling loop:
/// callers block after it. A
/// `cfg(loom)` twin tries once and yields.
#[cfg(not(loom))]
pub(crate) fn spin_wait<T>(mut attempt: impl FnMut() -> Option<T>) -> Option<T> {
    for step in 0..11u32 {
        if step <= 6 {
            for _ in 0..(1u32 << step) {
                std::hint::spin_loop();
            }
        } else {
            std::thread::yield_now();
        }
        if let Some(found) = attempt() {
            return Some(found);
        }
    }
    None
}

/// The loom twin of [`spin_wait`]: one yield (so loom sees a thread waiting on another), one try.
#[cfg(loom)]
pub(crate) fn spin_wait<T>(mut attempt: impl FnMut() -> Option<T>) -> Option<T> {
    loom::thread::yield_now();
    attempt()
}

/// How many stripes a [`Striped`] value has (one under loom: every thread maps to it, which
/// changes nothing in the protocol, and keeps the model small).
#[cfg(not(loom))]
const STRIPES: usize = 8;
#[cfg(loom)]
const STRIPES: usize = 1;

/// One value on its own pair of cache lines.
#[derive(Default)]
#[repr(align(128))]
struct Stripe<T>(T);

/// A value kept once per stripe, so that submitting threads (each always on its own stripe,
/// chosen round-robin on first use) rarely write the same cache line. Readers combine every
/// stripe ([`Striped::iter`]). Used for the submits that entered and left (shutdown reads every
/// stripe with SeqCst loads: a stripe whose two counts agree has no submit between its check
/// and its push) and the submit-side metrics.
pub(crate) struct Striped<T> {
    stripes: [Stripe<T>; STRIPES],
}

impl<T: Default> Default for Striped<T> {
    fn default() -> Self {
        Striped {
            stripes: std::array::from_fn(|_| Stripe::default()),
        }
    }
}

impl<T> Striped<T> {
    /// This thread's stripe.
    pub(crate) fn mine(&self) -> &T {
        &self.stripes[stripe_index()].0
    }

    /// Every stripe.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> {
        self.stripes.iter().map(|stripe| &stripe.0)
    }
}

/// This thread's stripe number, handed out round-robin.
#[cfg(loom)]
fn stripe_index() -> usize {
    0
}

/// This thread's stripe number, handed out round-robin.
#[cfg(not(loom))]
fn stripe_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: std::cell::Cell<usize> = const { std::cell::Cell::new(usize::MAX) };
    }
    INDEX
        .try_with(|index| {
            if index.get() == usize::MAX {
                index.set(NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES);
            }
            index.get()
        })
        .unwrap_or(0)
}
