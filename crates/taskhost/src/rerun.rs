//! `taskhost run --resume-failed PREVIOUS`: run again only what did not succeed in a previous
//! run (parallel's `--resume-failed`). PREVIOUS is that run's outcome records, or its journal
//! (whose first line names the records' file). The ids with an `ok` record are left out of this
//! run; every other input item runs. When this run writes to PREVIOUS itself, the records that
//! are not `ok` are taken out of it first (they are being redone), so that the file ends with
//! exactly one record per id.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

/// The part of a record this needs.
#[derive(Deserialize)]
struct Record {
    id: String,
    status: String,
}

/// The first line of a journal.
#[derive(Deserialize)]
struct JournalFirstLine {
    #[allow(dead_code)]
    taskhost_journal: u32,
    output: String,
}

/// The previous run's records.
#[derive(Debug)]
pub struct Previous {
    /// The records' file (the journal's output when a journal was given).
    pub records: PathBuf,
    /// The ids that succeeded.
    pub succeeded: HashSet<String>,
    /// Records that are not `ok`.
    pub not_ok: u64,
}

/// Reads the previous run's records from `path`: an outcome file, or a journal that names one.
pub fn read(path: &Path) -> Result<Previous> {
    let records = records_file(path)?;
    let file = File::open(&records).with_context(|| format!("opening {}", records.display()))?;
    let mut succeeded = HashSet::new();
    let mut not_ok = 0;
    let mut lines = BufReader::new(file).split(b'\n').enumerate().peekable();
    while let Some((index, line)) = lines.next() {
        let line = line.with_context(|| format!("reading {}", records.display()))?;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<Record>(&line) {
            Ok(record) if record.status == "ok" => {
                succeeded.insert(record.id);
            }
            Ok(_) => not_ok += 1,
            // A torn last record (a crash): that item did not finish.
            Err(_) if lines.peek().is_none() => {}
            Err(error) => bail!(
                "{}:{}: expected an outcome record with `id` and `status`, found {:?} ({error})",
                records.display(),
                index + 1,
                String::from_utf8_lossy(&line[..line.len().min(80)])
            ),
        }
    }
    Ok(Previous {
        records,
        succeeded,
        not_ok,
    })
}

/// The records' file: `path`, or the output a journal at `path` names.
fn records_file(path: &Path) -> Result<PathBuf> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut first = String::new();
    BufReader::new(file.take(64 * 1024))
        .read_line(&mut first)
        .with_context(|| format!("reading {}", path.display()))?;
    let Ok(header) = serde_json::from_str::<JournalFirstLine>(&first) else {
        return Ok(path.to_owned());
    };
    if header.output == "-" {
        bail!(
            "{} is the journal of a run whose records went to stdout, so which items failed is \
             not known here: pass the file those records were saved to",
            path.display()
        );
    }
    Ok(PathBuf::from(header.output))
}

/// Whether `output` names the records' file itself (this run then writes to it).
pub fn is_same_file(output: &Path, records: &Path) -> bool {
    match (
        std::fs::canonicalize(output),
        std::fs::canonicalize(records),
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Takes the records that are not `ok` out of `path` (through a new file renamed over it, so a
/// crash leaves one or the other whole), and opens it to append this run's records, locked.
pub fn keep_only_successes(path: &Path) -> io::Result<File> {
    // Held until the new file is locked: no other run writes the old one meanwhile.
    let old = crate::sink::open_for_append(path)?;
    let folder = path.parent().filter(|p| !p.as_os_str().is_empty());
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let partial = folder
        .unwrap_or(Path::new("."))
        .join(format!(".{name}.resume-failed"));
    {
        let mut kept = BufWriter::new(File::create(&partial)?);
        for line in BufReader::new(File::open(path)?).split(b'\n') {
            let line = line?;
            let ok = serde_json::from_slice::<Record>(&line).is_ok_and(|r| r.status == "ok");
            if ok {
                kept.write_all(&line)?;
                kept.write_all(b"\n")?;
            }
        }
        kept.into_inner()
            .map_err(io::IntoInnerError::into_error)?
            .sync_all()?;
    }
    std::fs::rename(&partial, path)?;
    let new = crate::sink::open_for_append(path)?;
    drop(old);
    Ok(new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn successes_are_read_from_records_or_through_a_journal() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.jsonl");
        std::fs::write(
            &out,
            "{\"id\":\"a\",\"status\":\"ok\",\"line\":1}\n\n{\"id\":\"b\",\"status\":\"failed\"}\n{\"id\":\"c\",\"sta",
        )
        .unwrap();
        let previous = read(&out).unwrap();
        assert_eq!(previous.succeeded, HashSet::from(["a".to_owned()]));
        assert_eq!(previous.not_ok, 1);
        let journal = dir.path().join("j");
        std::fs::write(
            &journal,
            format!(
                "{{\"taskhost_journal\":1,\"input\":\"-\",\"output\":{:?}}}\n\"a\"\n",
                out.display().to_string()
            ),
        )
        .unwrap();
        assert_eq!(read(&journal).unwrap().records, out);
        std::fs::write(
            &journal,
            "{\"taskhost_journal\":1,\"input\":\"-\",\"output\":\"-\"}\n",
        )
        .unwrap();
        assert!(read(&journal)
            .unwrap_err()
            .to_string()
            .contains("went to stdout"));
        std::fs::write(&out, "{\"id\":\"a\"}\n{\"id\":\"b\",\"status\":\"ok\"}\n").unwrap();
        let error = read(&out).unwrap_err().to_string();
        assert!(error.ends_with(":1: expected an outcome record with `id` and `status`, found \"{\\\"id\\\":\\\"a\\\"}\" (missing field `status` at line 1 column 10)"), "{error}");
    }

    #[test]
    fn the_records_file_keeps_only_its_successes() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.jsonl");
        std::fs::write(
            &out,
            "{\"id\":\"a\",\"status\":\"ok\"}\n{\"id\":\"b\",\"status\":\"failed\"}\n{\"id\":\"c\",\"status\":\"ok\"}\n",
        )
        .unwrap();
        let mut file = keep_only_successes(&out).unwrap();
        file.write_all(b"{\"id\":\"b\",\"status\":\"ok\"}\n")
            .unwrap();
        drop(file);
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            "{\"id\":\"a\",\"status\":\"ok\"}\n{\"id\":\"c\",\"status\":\"ok\"}\n{\"id\":\"b\",\"status\":\"ok\"}\n"
        );
        assert!(is_same_file(&out, &dir.path().join("./out.jsonl")));
        assert!(!is_same_file(&out, &dir.path().join("other")));
    }
}
