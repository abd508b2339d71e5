//! The journal: `taskhost run --journal FILE [--resume]`.
//!
//! A crash (`kill -9`, an out-of-memory kill, a plugin that aborts or segfaults and takes the
//! in-process host down with it) loses the run's state. The journal is the way back: it is an
//! append-only file with the id of each *finished* item, and `--resume` skips the input items whose
//! id it already holds.
//!
//! **Format.** A first line that says what the journal belongs to ([`JournalHeader`], a JSON
//! object), then one JSON string per line: the outcome record's `id` (the item's id, or its line
//! number when it has none), e.g. `"a1"` or `"17"`. A last line without its `\n` is a torn write
//! from a crash: it is ignored, and cut off before anything is appended. The journal is locked
//! (`flock`) for the life of the run: a second run on it is refused.
//!
//! **What counts as finished.** Every final status — `ok`, `failed`, `panicked`, `crashed`,
//! `timed_out`, `rejected`, `invalid` — except `cancelled`: an item cancelled by Ctrl-C /
//! SIGTERM did not finish, so a resumed run does it again. (`rejected` counts as finished,
//! including a rejection by a full queue with `when_full = "reject"`; to redo those, remove
//! their ids from the journal.)
//!
//! **Ordering and durability.** [`JournaledSink`] wraps the outcome sink. `write` writes the
//! record to the sink and only remembers the id; a *commit* then (1) flushes the sink and, for an
//! output file, `fdatasync`s it, and only after that (2) appends the remembered ids to the journal
//! and `fdatasync`s the journal. So an id is in the journal only once its outcome record is
//! durable in the output (with `--output -` there is nothing to sync: the records are flushed to
//! stdout, and whoever reads it holds them). Commits happen at most every [`COMMIT_INTERVAL`] (the writer ticks the
//! sink), when [`COMMIT_BATCH`] ids are waiting, at the end of the run, after Ctrl-C (the wind-down
//! writes every outcome, then commits) and on the second Ctrl-C (the emergency flush commits too).
//!
//! **Guarantee.** Against the journal, exactly once: an id in the journal is never run again by
//! `--resume`, and every input item whose id is not in it is run (and gets its record) by the
//! resumed run. Output, at least once: records written after the last commit before a crash are
//! in the first run's output *and* the resumed run's (their ids never reached the journal). Ids
//! must be unique, as `--resume` skips by id: a journaled run refuses the second occurrence of
//! an id ([`ResumeSource`]).
//!
//! The skip set holds every id of the journal in memory (a `HashSet<String>`), and the duplicate
//! check every id read so far.

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::sink::{Outcome, OutcomeSink, Status};
use crate::source::{parse_line, Entry, EntryBody, InvalidLine, WorkSource};

/// Ids wait at most about this long (plus the writer's 50 ms tick) before they are committed.
pub const COMMIT_INTERVAL: Duration = Duration::from_millis(250);

/// Commit as soon as this many ids wait (bounds the ids held in memory between commits).
pub const COMMIT_BATCH: usize = 16_384;

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

/// What a journal belongs to, written as its first line when it is created and checked by
/// `--resume`: resuming into an output that was deleted would leave the finished items' records
/// nowhere, and another output or a changed input deserve a word.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournalHeader {
    /// The format version (1).
    pub taskhost_journal: u32,
    /// Where the items come from: an absolute file path, `-` for stdin, or the `--expand` /
    /// `--jobs` that made them.
    pub input: String,
    /// The input file's size and modification time (nanoseconds since the epoch), when a file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_modified_ns: Option<u128>,
    /// The outcome records' file as an absolute path, or `-` for stdout.
    pub output: String,
}

impl JournalHeader {
    pub const VERSION: u32 = 1;

    /// The identity of `input` (a file path, `-`, or a description of generated items) and
    /// `output` (a file path or `-`).
    pub fn new(input: Option<&str>, generated: Option<String>, output: &str) -> Self {
        let absolute = |path: &str| {
            std::path::absolute(path)
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| path.to_owned())
        };
        let mut header = Self {
            taskhost_journal: Self::VERSION,
            input: "-".to_owned(),
            input_bytes: None,
            input_modified_ns: None,
            output: if output == "-" {
                "-".to_owned()
            } else {
                absolute(output)
            },
        };
        if let Some(generated) = generated {
            header.input = generated;
        } else if let Some(path) = input.filter(|p| *p != "-") {
            header.input = std::fs::canonicalize(path)
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| absolute(path));
            if let Ok(metadata) = std::fs::metadata(path) {
                header.input_bytes = Some(metadata.len());
                header.input_modified_ns = metadata
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map(|d| d.as_nanos());
            }
        }
        header
    }

    /// How the input differs from the one the journal was started on, if it does.
    fn input_change(&self, now: &Self) -> Option<String> {
        if self.input != now.input {
            return Some(format!(
                "it was started on input {}, this run reads {}",
                self.input, now.input
            ));
        }
        if self.input_bytes != now.input_bytes || self.input_modified_ns != now.input_modified_ns {
            return Some(format!(
                "input {} changed since the journal was started ({} bytes then, {} now)",
                self.input,
                self.input_bytes.map_or("?".to_owned(), |n| n.to_string()),
                now.input_bytes.map_or("?".to_owned(), |n| n.to_string()),
            ));
        }
        None
    }
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
    fn append(&mut self, ids: &[String]) -> io::Result<()> {
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

/// An outcome sink that also journals finished items (see the module doc for the ordering).
pub struct JournaledSink {
    inner: Box<dyn OutcomeSink>,
    journal: Journal,
    /// Ids whose records are written to `inner` but not yet committed.
    pending: Vec<String>,
    last_commit: Instant,
    committed: Arc<AtomicU64>,
}

impl std::fmt::Debug for JournaledSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JournaledSink")
            .field("journal", &self.journal)
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

impl JournaledSink {
    pub fn new(inner: Box<dyn OutcomeSink>, journal: Journal) -> Self {
        Self {
            inner,
            journal,
            pending: Vec::new(),
            last_commit: Instant::now(),
            committed: Arc::new(AtomicU64::new(0)),
        }
    }

    /// How many ids this run has committed to the journal so far.
    pub fn committed(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.committed)
    }

    /// Makes the written records durable, then journals their ids.
    fn commit(&mut self) -> io::Result<()> {
        self.last_commit = Instant::now();
        if self.pending.is_empty() {
            return self.inner.flush();
        }
        // The records first: an id must never be in the journal before its record is out.
        self.inner.sync()?;
        let journal_path = self.journal.path.display().to_string();
        self.journal.append(&self.pending).map_err(|error| {
            io::Error::new(error.kind(), format!("journal {journal_path}: {error}"))
        })?;
        self.committed
            .fetch_add(self.pending.len() as u64, Ordering::Relaxed);
        self.pending.clear();
        Ok(())
    }
}

/// Whether an outcome with this status is journaled (finished): all but `cancelled`.
pub fn is_finished(status: Status) -> bool {
    status != Status::Cancelled
}

impl OutcomeSink for JournaledSink {
    fn write(&mut self, outcome: &Outcome) -> io::Result<()> {
        self.inner.write(outcome)?;
        if is_finished(outcome.status) {
            self.pending.push(outcome.id.clone());
            if self.pending.len() >= COMMIT_BATCH {
                self.commit()?;
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.commit()
    }

    fn sync(&mut self) -> io::Result<()> {
        self.commit()
    }

    fn tick(&mut self) -> io::Result<()> {
        self.inner.tick()?;
        if !self.pending.is_empty() && self.last_commit.elapsed() >= COMMIT_INTERVAL {
            self.commit()?;
        }
        Ok(())
    }
}

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

/// What the journal did in this run, for the summary.
#[derive(Debug)]
pub struct JournalReport {
    path: PathBuf,
    resumed: bool,
    /// Records the journal held when the run started.
    previous: usize,
    skipped: Arc<AtomicU64>,
    committed: Arc<AtomicU64>,
}

impl std::fmt::Display for JournalReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "  journal {}: {} finished items recorded by this run",
            self.path.display(),
            self.committed.load(Ordering::Relaxed)
        )?;
        if self.resumed {
            write!(
                f,
                "; resumed: skipped {} input items already finished (the journal held {})",
                self.skipped.load(Ordering::Relaxed),
                self.previous
            )?;
        }
        writeln!(f)
    }
}

/// Wraps the run's source (leaving out what `contents` holds) and sink in the opened journal.
pub fn attach(
    journal: Journal,
    contents: JournalContents,
    resume: bool,
    source: Box<dyn WorkSource>,
    sink: Box<dyn OutcomeSink>,
) -> (Box<dyn WorkSource>, Box<dyn OutcomeSink>, JournalReport) {
    let previous = contents.records;
    let source = ResumeSource::new(source, contents.ids);
    let skipped = source.skipped();
    let source: Box<dyn WorkSource> = Box::new(source);
    let path = journal.path.clone();
    let sink = JournaledSink::new(sink, journal);
    let committed = sink.committed();
    let report = JournalReport {
        path,
        resumed: resume,
        previous,
        skipped,
        committed,
    };
    (source, Box::new(sink), report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::JsonlSource;

    #[derive(Debug, Default, Clone)]
    struct Log(Arc<std::sync::Mutex<Vec<String>>>);

    impl OutcomeSink for Log {
        fn write(&mut self, outcome: &Outcome) -> io::Result<()> {
            self.0.lock().unwrap().push(format!("write {}", outcome.id));
            Ok(())
        }
        fn flush(&mut self) -> io::Result<()> {
            self.0.lock().unwrap().push("flush".to_owned());
            Ok(())
        }
        fn sync(&mut self) -> io::Result<()> {
            self.0.lock().unwrap().push("sync".to_owned());
            Ok(())
        }
    }

    fn header() -> JournalHeader {
        JournalHeader::new(None, None, "-")
    }

    fn header_line() -> Vec<u8> {
        let mut line = serde_json::to_vec(&header()).unwrap();
        line.push(b'\n');
        line
    }

    fn outcome(id: &str, status: Status) -> Outcome {
        let mut outcome = Outcome::unrun(1, Some(id.to_owned()), None, status, String::new());
        outcome.error = None;
        outcome
    }

    #[test]
    fn finished_ids_are_committed_after_the_records_and_cancelled_ones_never() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let (journal, contents) = Journal::open(&path, false, &header()).unwrap();
        assert_eq!(contents.records, 0);
        let log = Log::default();
        let mut sink = JournaledSink::new(Box::new(log.clone()), journal);
        for (id, status) in [
            ("a", Status::Ok),
            ("b", Status::Cancelled),
            ("c\n\"odd\"", Status::Failed),
            ("d", Status::Invalid),
        ] {
            sink.write(&outcome(id, status)).unwrap();
        }
        // Nothing is journaled before a commit.
        assert_eq!(std::fs::read(&path).unwrap(), header_line());
        sink.tick().unwrap(); // too early: no commit
        assert_eq!(std::fs::read(&path).unwrap(), header_line());
        sink.flush().unwrap();
        assert_eq!(
            *log.0.lock().unwrap(),
            ["write a", "write b", "write c\n\"odd\"", "write d", "sync"]
        );
        let contents = read_journal(File::open(&path).unwrap(), &path).unwrap();
        assert_eq!(contents.records, 3);
        assert!(contents.ids.contains("c\n\"odd\""));
        assert!(!contents.ids.contains("b"));
        assert_eq!(sink.committed().load(Ordering::Relaxed), 3);
    }

    #[test]
    fn a_tick_commits_once_the_interval_has_passed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let (journal, _) = Journal::open(&path, false, &header()).unwrap();
        let mut sink = JournaledSink::new(Box::new(Log::default()), journal);
        sink.write(&outcome("a", Status::Ok)).unwrap();
        std::thread::sleep(COMMIT_INTERVAL + Duration::from_millis(20));
        sink.tick().unwrap();
        assert_eq!(
            std::fs::read(&path).unwrap(),
            [header_line(), b"\"a\"\n".to_vec()].concat()
        );
    }

    #[test]
    fn a_torn_last_line_is_ignored_and_cut_off_on_resume() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        std::fs::write(&path, "\"a\"\n\"b\"\n\"c").unwrap();
        let (journal, contents) = Journal::open(&path, true, &header()).unwrap();
        assert_eq!(contents.records, 2);
        assert_eq!(contents.torn_bytes, 2);
        assert_eq!(
            contents.ids,
            HashSet::from(["a".to_owned(), "b".to_owned()])
        );
        let mut sink = JournaledSink::new(Box::new(Log::default()), journal);
        sink.write(&outcome("c", Status::Ok)).unwrap();
        sink.flush().unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "\"a\"\n\"b\"\n\"c\"\n"
        );
    }

    #[test]
    fn a_journal_with_records_needs_resume_and_garbage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        std::fs::write(&path, "\"a\"\n").unwrap();
        let error = Journal::open(&path, false, &header()).unwrap_err();
        assert!(error.to_string().contains("pass --resume"), "{error}");
        std::fs::write(&path, "\"a\"\n{\"id\":\"x\"}\n").unwrap();
        let error = Journal::open(&path, true, &header()).unwrap_err();
        assert!(
            error.to_string().contains(":2: expected a JSON string"),
            "{error}"
        );
        // A missing journal is an empty one, with or without --resume.
        let fresh = dir.path().join("new");
        assert_eq!(Journal::open(&fresh, true, &header()).unwrap().1.records, 0);
    }

    use proptest::prelude::*;

    proptest! {
        /// Whatever ids (any text), statuses and commit points, and wherever a crash cuts the
        /// journal: reading it back gives whole records only, each the id of a record that was
        /// synced to the sink before it, never a cancelled one.
        #[test]
        fn a_journal_cut_anywhere_reads_back_synced_finished_ids(
            outcomes in proptest::collection::vec(
                (".{0,12}", proptest::sample::select(Status::ALL.to_vec()), any::<bool>()),
                0..40,
            ),
            cut in any::<proptest::sample::Index>(),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("j");
            let (journal, _) = Journal::open(&path, false, &header()).unwrap();
            let log = Log::default();
            let mut sink = JournaledSink::new(Box::new(log.clone()), journal);
            for (id, status, commit) in &outcomes {
                sink.write(&outcome(id, *status)).unwrap();
                if *commit {
                    sink.flush().unwrap();
                }
            }
            let bytes = std::fs::read(&path).unwrap();
            let cut = if bytes.is_empty() { 0 } else { cut.index(bytes.len() + 1) };
            let contents = read_journal(&bytes[..cut], &path).unwrap();
            prop_assert_eq!(contents.valid_len + contents.torn_bytes, cut as u64);
            // The ids written to the sink before its last sync.
            let events = log.0.lock().unwrap().clone();
            let last_sync = events.iter().rposition(|e| e == "sync").unwrap_or(0);
            let synced: HashSet<String> = outcomes
                .iter()
                .take(events[..last_sync].iter().filter(|e| e.starts_with("write ")).count())
                .filter(|(_, status, _)| is_finished(*status))
                .map(|(id, _, _)| id.clone())
                .collect();
            prop_assert!(contents.ids.is_subset(&synced), "{:?} not within {:?}", contents.ids, synced);
            if cut == bytes.len() {
                prop_assert_eq!(contents.ids, synced);
            }
        }
    }

    #[test]
    fn resume_skips_journaled_ids_including_line_number_ids() {
        let text = "{\"id\":\"a\",\"task\":\"t/x\"}\n{\"task\":\"t/x\"}\nnot json\n\n{\"id\":\"d\",\"task\":\"t/x\"}\n";
        let done = HashSet::from(["a".to_owned(), "3".to_owned()]);
        let mut source = ResumeSource::new(
            Box::new(JsonlSource::new(
                io::Cursor::new(text.as_bytes().to_vec()),
                1024,
            )),
            done,
        );
        let skipped = source.skipped();
        let ids: Vec<String> = std::iter::from_fn(|| source.next_entry().unwrap())
            .map(|e| entry_id(&e))
            .collect();
        assert_eq!(ids, ["2", "d"]);
        assert_eq!(skipped.load(Ordering::Relaxed), 2);
    }
}
