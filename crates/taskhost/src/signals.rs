//! Ctrl-C and SIGTERM.
//!
//! The first signal asks the run to wind down (stop reading, cancel what is queued, ask running
//! tasks to stop, wait up to the grace period, write every outcome). The second runs the
//! emergency hook the dispatcher registered (flush what is done) and exits 130 at once.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};

/// The exit status of an interrupted run.
pub const INTERRUPTED_EXIT: i32 = 130;

type Hook = Box<dyn Fn() + Send + Sync>;

/// Shared interrupt state.
#[derive(Default)]
pub struct Interrupts {
    count: AtomicUsize,
    emergency: Mutex<Option<Hook>>,
}

impl std::fmt::Debug for Interrupts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Interrupts")
            .field("count", &self.count.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Interrupts {
    /// State that no signal handler feeds (tests, or when installing failed).
    pub fn detached() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Installs the process's Ctrl-C / SIGTERM handler. Call once.
    pub fn install() -> Result<Arc<Self>> {
        let interrupts = Self::detached();
        let handler = Arc::clone(&interrupts);
        ctrlc::set_handler(move || handler.signal())
            .context("installing the Ctrl-C / SIGTERM handler")?;
        Ok(interrupts)
    }

    /// What the handler does; public so tests can simulate a signal.
    pub fn signal(&self) {
        let count = self.count.fetch_add(1, Ordering::SeqCst) + 1;
        if count == 1 {
            tracing::warn!(
                target: "taskhost",
                "interrupted: stopping (press Ctrl-C again to exit at once)"
            );
        } else {
            tracing::warn!(target: "taskhost", "interrupted again: exiting now");
            if let Some(hook) = self
                .emergency
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .as_ref()
            {
                hook();
            }
            // The host's own exit, not a plugin's.
            crate::dispatch::exit_watch::disarm();
            std::process::exit(INTERRUPTED_EXIT);
        }
    }

    /// Whether a stop was asked for.
    pub fn requested(&self) -> bool {
        self.count.load(Ordering::SeqCst) > 0
    }

    /// Sets what the second signal runs before exiting (replacing any earlier hook).
    pub fn on_second_signal(&self, hook: impl Fn() + Send + Sync + 'static) {
        *self.emergency.lock().unwrap_or_else(|e| e.into_inner()) = Some(Box::new(hook));
    }

    /// Removes the hook.
    pub fn clear_hook(&self) {
        *self.emergency.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}
