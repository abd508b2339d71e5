//! A hook for when plugin code ends the process with `exit`.
//!
//! Plugins run inside the host's process: a plugin that calls `exit` (C's `exit`, Rust's
//! `std::process::exit`), from a task or from a thread of its own, ends the host in the middle
//! of its run, and the host's code after that point never runs. What does run is every function
//! registered with libc's `atexit`, on the thread that called `exit`. [`on_exit`] registers one
//! that calls the host's hook; the hook can write out what it holds and return the status the
//! process should end with instead (given to `_exit`, because calling `exit` again from inside
//! `exit` is undefined behaviour).

use std::ffi::c_int;
use std::sync::OnceLock;

type Hook = Box<dyn Fn() -> Option<i32> + Send + Sync>;

static HOOK: OnceLock<Hook> = OnceLock::new();

/// Registers `hook` to run when the process exits through `exit` (which is also how `main`
/// returning ends it). When the hook returns a status, the process ends at once with it;
/// `None` lets the exit go on as it was. Only the first call registers anything: it returns
/// false after that, or when libc could not register the handler.
pub fn on_exit(hook: impl Fn() -> Option<i32> + Send + Sync + 'static) -> bool {
    if HOOK.set(Box::new(hook)).is_err() {
        return false;
    }
    register()
}

#[cfg(unix)]
#[allow(unsafe_code)]
fn register() -> bool {
    extern "C" {
        fn atexit(function: extern "C" fn()) -> c_int;
    }
    // SAFETY: `atexit` has no preconditions; `run_hook` is a plain `extern "C" fn` that lives
    // as long as the process and does not unwind (it catches panics).
    unsafe { atexit(run_hook) == 0 }
}

#[cfg(not(unix))]
fn register() -> bool {
    false
}

#[cfg(unix)]
#[allow(unsafe_code)]
extern "C" fn run_hook() {
    extern "C" {
        fn _exit(status: c_int) -> !;
    }
    let Some(hook) = HOOK.get() else {
        return;
    };
    // A panic must not unwind into libc: it counts as a request to fail.
    let status = std::panic::catch_unwind(std::panic::AssertUnwindSafe(hook)).unwrap_or(Some(70));
    if let Some(status) = status {
        // SAFETY: `_exit` ends the process at once and has no preconditions; unlike `exit` it
        // may be called from an exit handler.
        unsafe { _exit(status) }
    }
}
