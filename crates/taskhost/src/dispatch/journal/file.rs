//! The journal file: reading it back ([`read_journal`]), opening and locking it for a run
//! ([`Journal::open`], which checks it against the run's [`JournalHeader`]), and appending ids.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::header::JournalHeader;

/// Why a journal could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error(
        "journal {path}:{line}: expected a JSON string (an item id) per line, found {found:?} \
         (is this really a taskhost journal?)"
    )]
    Corrupt {
        path: PathBuf,
        line: u64,
        found: String,
    },
    #[error(
        "journal {path} already holds {records} finished items: pass --resume to skip them, \
         or remove the file to start over"
    )]
    NotEmpty { path: PathBuf, records: usize },
    #[error(
        "journal {path} is in use by another taskhost run (it holds the journal's lock): \
         wait for that run to end, or give this one another journal"
    )]
    Locked { path: PathBuf },
    #[error(
        "journal {path} holds {records} finished items whose records went to {output}, \
         which {state}: restore it, or remove the journal to start over"
    )]
    OutputMissing {
        path: PathBuf,
        output: String,
        records: usize,
        /// `does not exist any more`, or `is empty now`.
        state: &'static str,
    },
}

/// The ids a journal holds, and how much of the file is whole records.
#[derive(Debug, Default)]
pub struct JournalContents {
    /// What the journal belongs to (none in a journal written before headers existed).
    pub header: Option<JournalHeader>,
    pub ids: HashSet<String>,
    /// Complete records read (duplicates included).
    pub records: usize,
    /// Bytes of complete lines; anything after is a torn last line.
    pub valid_len: u64,
    /// Bytes of a torn last line (cut off when the journal is opened for appending).
    pub torn_bytes: u64,
}

/// Reads a journal: complete lines are ids; a last line without `\n` is ignored as torn.
pub fn read_journal(reader: impl Read, path: &Path) -> Result<JournalContents, JournalError> {
    let mut reader = BufReader::new(reader);
    let mut contents = JournalContents::default();
    let mut buffer = Vec::new();
    let mut line = 0u64;
    loop {
        buffer.clear();
        let read = reader
            .read_until(b'\n', &mut buffer)
            .map_err(|source| JournalError::Io {
                path: path.to_owned(),
                source,
            })?;
        if read == 0 {
            break;
        }
        if buffer.last() != Some(&b'\n') {
            contents.torn_bytes = read as u64;
            break;
        }
        line += 1;
        let record = &buffer[..buffer.len() - 1];
        if line == 1 && record.starts_with(b"{") {
            if let Ok(header) = serde_json::from_slice::<JournalHeader>(record) {
                contents.header = Some(header);
                contents.valid_len += read as u64;
                continue;
            }
        }
        match serde_json::from_slice::<String>(record) {
            Ok(id) => {
                contents.ids.insert(id);
                contents.records += 1;
                contents.valid_len += read as u64;
            }
            Err(_) => {
                return Err(JournalError::Corrupt {
                    path: path.to_owned(),
                    line,
                    found: String::from_utf8_lossy(&record[..record.len().min(80)]).into_owned(),
                })
            }
        }
    }
    Ok(contents)
}

/// An open journal, ready to append to.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: File,
}

impl Journal {
    /// Opens (or creates) the journal at `path` and locks it for the life of the run.
    ///
    /// With `resume`, returns the ids it already holds (none when the file does not exist yet)
    /// and cuts a torn last line off; a journal whose output is gone or emptied is refused, and
    /// another output or a changed input is warned about. Without `resume`, a journal that
    /// already holds records is refused, so that a forgotten `--resume` does not silently redo
    /// finished work.
    pub fn open(
        path: &Path,
        resume: bool,
        identity: &JournalHeader,
    ) -> Result<(Self, JournalContents), JournalError> {
        let io_error = |source| JournalError::Io {
            path: path.to_owned(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io_error)?;
        // Two runs appending to one journal interleave their ids, and two resumed runs both run
        // what it lacks: the second run is refused. The lock (`flock`) goes with the file,
        // which the journal keeps open until the run ends.
        if !crate::sink::try_lock(&file).map_err(io_error)? {
            return Err(JournalError::Locked {
                path: path.to_owned(),
            });
        }
        let mut contents = read_journal(&mut file, path)?;
        if !resume && contents.records > 0 {
            return Err(JournalError::NotEmpty {
                path: path.to_owned(),
                records: contents.records,
            });
        }
        if contents.records > 0 {
            check_identity(path, &contents, identity)?;
        }
        if contents.torn_bytes > 0 {
            tracing::warn!(
                target: "taskhost",
                journal = %path.display(),
                bytes = contents.torn_bytes,
                "journal.torn_line: ignoring the torn last line of the journal"
            );
        }
        if contents.records == 0 {
            // Nothing finished yet: the journal starts over and belongs to this run.
            contents.valid_len = 0;
            contents.header = Some(identity.clone());
        }
        // Cut a torn tail (or, without --resume, an empty file's stray bytes) off, and append
        // from the end of the last whole record.
        file.set_len(contents.valid_len).map_err(io_error)?;
        file.seek(SeekFrom::Start(contents.valid_len))
            .map_err(io_error)?;
        if contents.valid_len == 0 {
            let mut line = serde_json::to_vec(identity).expect("a header serializes");
            line.push(b'\n');
            file.write_all(&line).map_err(io_error)?;
            contents.valid_len = line.len() as u64;
        }
        file.sync_data().map_err(io_error)?;
        Ok((
            Self {
                path: path.to_owned(),
                file,
            },
            contents,
        ))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `ids` and makes them durable (one write, then `fdatasync`).
    pub(super) fn append(&mut self, ids: &[String]) -> io::Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut bytes = Vec::with_capacity(ids.iter().map(|id| id.len() + 3).sum());
        for id in ids {
            serde_json::to_writer(&mut bytes, id)?;
            bytes.push(b'\n');
        }
        self.file.write_all(&bytes)?;
        self.file.sync_data()
    }
}

/// Refuses to resume into the journal's output when that file is gone or empty (the finished
/// items' records would be lost without a word); warns when this run's output or input is not
/// the one the journal was started on.
fn check_identity(
    path: &Path,
    contents: &JournalContents,
    now: &JournalHeader,
) -> Result<(), JournalError> {
    let Some(then) = &contents.header else {
        tracing::warn!(
            target: "taskhost",
            journal = %path.display(),
            "journal.no_header: the journal does not say which input and output it belongs to \
             (written by an older taskhost): they are not checked"
        );
        return Ok(());
    };
    // The output held a record of every id the journal holds (each was journaled after its
    // record was synced), so an output file gone or emptied since (`> out.jsonl`, or a run
    // without `--journal` over it) has lost them.
    let lost = match std::fs::metadata(&then.output) {
        _ if then.output == "-" => None,
        Err(error) if error.kind() == io::ErrorKind::NotFound => Some("does not exist any more"),
        Ok(metadata) if metadata.is_file() && metadata.len() == 0 => Some("is empty now"),
        _ => None,
    };
    if then.output != now.output {
        // Allowed (the records are then split over two outputs), but never silently.
        tracing::warn!(
            target: "taskhost",
            journal = %path.display(),
            "journal.other_output: the records of the {} finished items the journal holds are in \
             {}{}; this run writes the rest to {}",
            contents.records,
            then.output,
            lost.map(|state| format!(" (which {state})")).unwrap_or_default(),
            now.output
        );
    } else if let Some(state) = lost {
        return Err(JournalError::OutputMissing {
            path: path.to_owned(),
            output: then.output.clone(),
            records: contents.records,
            state,
        });
    }
    if let Some(change) = then.input_change(now) {
        tracing::warn!(
            target: "taskhost",
            journal = %path.display(),
            "journal.input_changed: {change}; items are skipped by id, so an item whose id the \
             journal holds is not run again even if it changed"
        );
    }
    Ok(())
}
