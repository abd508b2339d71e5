//! Panics inside a plugin's entry points: caught (see `sdk::guarded`), and kept off the
//! process's stderr. Left to itself, the plugin's own copy of `std` would print `thread '…'
//! panicked at …` raw, outside the host's log format; instead the panic hook (the plugin's
//! own: a `cdylib` carries its own `std`) only notes where the panic happened, and the entry
//! point sends that through the host context's log, which the host routes through `tracing`.
//! A panic anywhere else (a thread of the plugin's own) still reaches the previous hook.

use std::cell::{Cell, RefCell};
use std::panic::{self, PanicHookInfo};
use std::sync::Once;

thread_local! {
    /// This thread is inside a guarded entry point.
    static GUARDED: Cell<bool> = const { Cell::new(false) };
    /// Where the last guarded panic on this thread happened (`src/lib.rs:10:5`).
    static LOCATION: RefCell<Option<String>> = const { RefCell::new(None) };
}

static HOOK: Once = Once::new();

/// Installs the hook, once per plugin library.
fn install() {
    HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info: &PanicHookInfo<'_>| {
            if GUARDED.with(Cell::get) {
                let location = info
                    .location()
                    .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()));
                LOCATION.with(|slot| *slot.borrow_mut() = location);
            } else {
                previous(info);
            }
        }));
    });
}

/// Runs `body` with guarded panics kept quiet; returns what it returned and, when it panicked,
/// where.
pub(crate) fn quietly<T>(body: impl FnOnce() -> T) -> (T, Option<String>) {
    install();
    let was = GUARDED.with(|guarded| guarded.replace(true));
    LOCATION.with(|slot| slot.borrow_mut().take());
    let value = body();
    GUARDED.with(|guarded| guarded.set(was));
    (value, LOCATION.with(|slot| slot.borrow_mut().take()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guarded_panic_is_located_and_an_unguarded_one_is_not() {
        let (caught, location) = quietly(|| panic::catch_unwind(|| panic!("inside")));
        assert!(caught.is_err());
        let location = location.expect("where it panicked");
        assert!(
            location.starts_with("crates/taskhost-plugin-api/src/panics.rs:"),
            "{location}"
        );
        let (fine, location) = quietly(|| 5);
        assert_eq!((fine, location), (5, None));
    }
}
