//! What the run does when plugin code ends the process with `exit` in the middle of it.
//!
//! Plugins run in the host's process, so a plugin's `exit(0)` would end the run with status 0
//! (which means "every item ok") and lose whatever was not written yet. While a run is going,
//! `arm` holds its answer: `taskhost_loader::exit_hook` calls it from the exit handler, on the
//! thread that called `exit`; it records the unfinished items `cancelled`, writes and commits
//! every record, says on stderr which tasks were running, and the process ends with status 1.
//! The host's own exits (the end of `main`, the second Ctrl-C) disarm it first.

use std::sync::{Mutex, Once, TryLockError};
use std::time::{Duration, Instant};

/// The exit status after plugin code ended the process: the run failed part-way.
pub const UNEXPECTED_EXIT_STATUS: i32 = 1;

type Watch = Box<dyn FnOnce() -> String + Send>;

static WATCH: Mutex<Option<Watch>> = Mutex::new(None);
static REGISTER: Once = Once::new();

/// Disarms the watch when the run ends.
#[derive(Debug)]
pub(crate) struct Armed(());

impl Drop for Armed {
    fn drop(&mut self) {
        disarm();
    }
}

/// Sets what an unexpected `exit` does until the returned guard is dropped: `watch` writes what
/// it can and returns the message to print.
pub(crate) fn arm(watch: impl FnOnce() -> String + Send + 'static) -> Armed {
    REGISTER.call_once(|| {
        if !taskhost_loader::exit_hook::on_exit(on_exit) {
            tracing::warn!(
                target: "taskhost",
                "could not register the exit handler: a plugin that calls exit() ends the run \
                 without its last records"
            );
        }
    });
    *WATCH.lock().unwrap_or_else(|e| e.into_inner()) = Some(Box::new(watch));
    Armed(())
}

/// The host is ending the process itself: let the exit go on.
pub fn disarm() {
    let watch = WATCH.lock().unwrap_or_else(|e| e.into_inner()).take();
    drop(watch);
}

/// The exit handler: `None` outside a run (or after [`disarm`]).
fn on_exit() -> Option<i32> {
    // Another thread may be arming or disarming this very moment; nobody holds the lock long.
    let deadline = Instant::now() + Duration::from_secs(1);
    let watch = loop {
        match WATCH.try_lock() {
            Ok(mut slot) => break slot.take(),
            Err(TryLockError::Poisoned(poisoned)) => break poisoned.into_inner().take(),
            Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(TryLockError::WouldBlock) => return Some(UNEXPECTED_EXIT_STATUS),
        }
    }?;
    let message = watch();
    eprintln!("taskhost: error: {message}");
    Some(UNEXPECTED_EXIT_STATUS)
}
