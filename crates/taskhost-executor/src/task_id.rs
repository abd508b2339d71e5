//! Task ids: unique within the process (not globally ordered), handed to each submitting thread
//! in blocks so that submitters do not all bump one shared counter.

use std::cell::Cell;

use crate::sync::{counter, Ordering};

static NEXT_TASK_ID: counter::AtomicU64 = counter::AtomicU64::new(1);

/// How many ids a submitting thread takes from the global counter at a time.
const ID_BLOCK: u64 = 1024;

/// A new task id (ids start at 1; 0 means "not numbered yet").
pub(crate) fn next_task_id() -> u64 {
    thread_local! {
        /// The next id of this thread's block, and the end of the block.
        static IDS: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
    }
    IDS.try_with(|ids| {
        let (mut next, mut end) = ids.get();
        if next == end {
            next = NEXT_TASK_ID.fetch_add(ID_BLOCK, Ordering::Relaxed);
            end = next + ID_BLOCK;
        }
        ids.set((next + 1, end));
        next
    })
    .unwrap_or_else(|_| NEXT_TASK_ID.fetch_add(1, Ordering::Relaxed))
}
