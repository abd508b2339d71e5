//! Whether stdout was closed when the process started.
//!
//! The Rust runtime puts `/dev/null` (read-write) in place of a standard descriptor that is
//! closed at startup, before `main` runs: by then `taskhost run >&-` looks like a stdout that
//! is `/dev/null` on purpose (as Python's `subprocess.DEVNULL` gives), and the outcome records
//! would vanish without a word. A constructor in `.init_array` runs before the runtime does,
//! and looks.

use std::sync::atomic::{AtomicU8, Ordering};

/// 0: not looked (not Linux, no `/proc`, or the constructor did not run); 1: open; 2: closed.
static STDOUT_AT_START: AtomicU8 = AtomicU8::new(0);

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
#[used]
// SAFETY: a function pointer in `.init_array` is called once by the dynamic loader before
// `main`, like any C constructor; `probe` only reads `/proc` and stores an atomic, and needs
// nothing of the Rust runtime's set-up.
#[link_section = ".init_array"]
static PROBE: extern "C" fn() = probe;

#[cfg(target_os = "linux")]
extern "C" fn probe() {
    // `/proc/self/fd/1` is there exactly when descriptor 1 is open; without `/proc`, no answer.
    if std::fs::symlink_metadata("/proc/self/fd").is_err() {
        return;
    }
    let closed = std::fs::symlink_metadata("/proc/self/fd/1").is_err();
    STDOUT_AT_START.store(if closed { 2 } else { 1 }, Ordering::Relaxed);
}

/// Whether descriptor 1 was closed when the process started; `None` when that is not known.
pub fn stdout_closed_at_start() -> Option<bool> {
    match STDOUT_AT_START.load(Ordering::Relaxed) {
        1 => Some(false),
        2 => Some(true),
        _ => None,
    }
}
