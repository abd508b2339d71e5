//! [`ResumeSource`]: the source of a journaled run, which refuses a second item with the same id
//! and leaves out the items whose id the journal holds (`--resume`).

use std::collections::{HashMap, HashSet};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::source::{parse_line, Entry, EntryBody, InvalidLine, WorkSource};

/// The id an entry's outcome record will carry (what the journal holds for it).
pub fn entry_id(entry: &Entry) -> String {
    match &entry.body {
        EntryBody::Item(item) => item.id.clone(),
        EntryBody::Line(bytes) => match parse_line(bytes, entry.line) {
            Ok(item) => item.id,
            Err(invalid) => invalid.id.unwrap_or_else(|| entry.line.to_string()),
        },
        EntryBody::Oversized { .. } => entry.line.to_string(),
        EntryBody::Refused(invalid) => invalid.id.clone().unwrap_or_else(|| entry.line.to_string()),
    }
}

/// The source of a journaled run: refuses duplicate ids and leaves out the entries whose id is
/// in the journal (`--resume`).
///
/// The journal knows items by id only, so two items with one id would be one to `--resume`:
/// the second occurrence of an id is refused (`invalid`, naming the first line), whether or not
/// the first is skipped. Lines are parsed here, on the reader thread; a parsed item is handed on
/// as [`EntryBody::Item`], so the dispatcher does not parse it again.
pub struct ResumeSource {
    inner: Box<dyn WorkSource>,
    done: HashSet<String>,
    /// Every id read so far, with the line it was first on and whether that line had no id.
    seen: HashMap<String, (u64, bool)>,
    skipped: Arc<AtomicU64>,
}

impl std::fmt::Debug for ResumeSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResumeSource")
            .field("done", &self.done.len())
            .field("seen", &self.seen.len())
            .field("skipped", &self.skipped)
            .finish_non_exhaustive()
    }
}

impl ResumeSource {
    pub fn new(inner: Box<dyn WorkSource>, done: HashSet<String>) -> Self {
        Self {
            inner,
            done,
            seen: HashMap::new(),
            skipped: Arc::new(AtomicU64::new(0)),
        }
    }

    /// How many entries were left out so far.
    pub fn skipped(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.skipped)
    }
}

impl WorkSource for ResumeSource {
    fn next_entry(&mut self) -> io::Result<Option<Entry>> {
        loop {
            let Some(entry) = self.inner.next_entry()? else {
                return Ok(None);
            };
            let line = entry.line;
            // Whether the id is the line number because the line has none.
            let (body, task, implicit) = match entry.body {
                EntryBody::Line(bytes) => match parse_line(&bytes, line) {
                    Ok(item) => {
                        let task = Some(item.task.clone());
                        // Looked for only when it matters: the id is the line number.
                        let implicit = item.id == line.to_string() && !mentions_id(&bytes);
                        (EntryBody::Item(item), task, implicit)
                    }
                    Err(invalid) => {
                        let (task, implicit) = (invalid.task.clone(), invalid.id.is_none());
                        (EntryBody::Line(bytes), task, implicit)
                    }
                },
                EntryBody::Item(item) => {
                    let task = Some(item.task.clone());
                    (EntryBody::Item(item), task, false)
                }
                EntryBody::Refused(invalid) => {
                    let implicit = invalid.id.is_none();
                    (EntryBody::Refused(invalid), None, implicit)
                }
                body => (body, None, true),
            };
            let entry = Entry { line, body };
            let id = entry_id(&entry);
            match self.seen.entry(id) {
                std::collections::hash_map::Entry::Occupied(first) => {
                    let id = first.key().clone();
                    let (first_line, first_implicit) = *first.get();
                    let implicit = if implicit || first_implicit {
                        " (an item without an `id` takes its line number as id)"
                    } else {
                        ""
                    };
                    let message =
                        format!("duplicate id {id:?}, first on line {first_line}{implicit}");
                    return Ok(Some(Entry {
                        line,
                        body: EntryBody::Refused(InvalidLine {
                            id: Some(id),
                            task,
                            message,
                        }),
                    }));
                }
                std::collections::hash_map::Entry::Vacant(vacant) => {
                    if self.done.contains(vacant.key()) {
                        vacant.insert((line, implicit));
                        self.skipped.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    vacant.insert((line, implicit));
                }
            }
            return Ok(Some(entry));
        }
    }

    fn len_hint(&self) -> Option<u64> {
        self.inner
            .len_hint()
            .map(|n| n.saturating_sub(self.done.len() as u64))
    }
}

/// Whether a line's bytes hold `"id"` (a line that does not has no `id` field).
fn mentions_id(bytes: &[u8]) -> bool {
    bytes.windows(4).any(|window| window == b"\"id\"")
}
