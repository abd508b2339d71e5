//! `taskhost run --dry-run`: every work item as it would run (task, pool, timeout, retries,
//! input), as JSON lines, without running any. The items come from the same sources as a run
//! (an `--expand` still asks its plugin for them); nothing is submitted to a pool.

use std::io::{self, Write};

use serde::Serialize;
use serde_json::value::RawValue;

use crate::config::duration::format_duration;
use crate::dispatch::Catalog;
use crate::source::{parse_line, EntryBody, InvalidLine, WorkItem, WorkSource};

/// What the dry run found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct DryRun {
    pub items: u64,
    /// Items that would not run: not a work item, or a task no plugin provides.
    pub refused: u64,
}

/// One line of the dry run; field order is the order written.
#[derive(Debug, Serialize)]
struct Planned {
    id: String,
    task: Option<String>,
    /// The pool it would run on; `null` when it would not run.
    pool: Option<String>,
    timeout: Option<String>,
    retries: Option<u32>,
    line: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    input: Option<Box<RawValue>>,
    /// Why it would not run.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

impl Planned {
    fn refused(id: String, task: Option<String>, line: u64, why: &str) -> Planned {
        Planned {
            id,
            task,
            pool: None,
            timeout: None,
            retries: None,
            line,
            input: None,
            error: Some(format!("line {line}: {why}")),
        }
    }

    fn item(item: WorkItem, line: u64, catalog: &Catalog) -> Planned {
        let Some(task) = catalog.get(&item.task) else {
            let why = catalog.unknown(&item.task);
            return Planned::refused(item.id, Some(item.task), line, &why);
        };
        Planned {
            id: item.id,
            task: Some(item.task),
            pool: Some(task.pool_name.to_string()),
            timeout: task.timeout.map(format_duration),
            retries: Some(task.retry.retries),
            line,
            input: Some(item.input),
            error: None,
        }
    }
}

/// Writes one line per entry of `source` to `out`: where it would run, or why it would not.
pub fn print(
    source: &mut dyn WorkSource,
    catalog: &Catalog,
    out: &mut dyn Write,
) -> io::Result<DryRun> {
    let mut found = DryRun::default();
    while let Some(entry) = source.next_entry()? {
        found.items += 1;
        let line = entry.line;
        let invalid = |invalid: InvalidLine| {
            let id = invalid.id.unwrap_or_else(|| line.to_string());
            Planned::refused(id, invalid.task, line, &invalid.message)
        };
        let planned = match entry.body {
            EntryBody::Item(item) => Planned::item(item, line, catalog),
            EntryBody::Line(bytes) => match parse_line(&bytes, line) {
                Ok(item) => Planned::item(item, line, catalog),
                Err(why) => invalid(why),
            },
            EntryBody::Refused(why) => invalid(why),
            EntryBody::Oversized { bytes } => {
                let why = format!("{bytes} bytes, longer than run.max_line_bytes");
                Planned::refused(line.to_string(), None, line, &why)
            }
        };
        if planned.error.is_some() {
            found.refused += 1;
        }
        serde_json::to_writer(&mut *out, &planned)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(found)
}
