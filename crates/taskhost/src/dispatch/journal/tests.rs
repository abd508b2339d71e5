//! The journal's tests: commits after the records, torn lines, resuming, and a journal cut
//! anywhere by a crash.

use std::collections::HashSet;
use std::fs::File;
use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::sink::{Outcome, OutcomeSink, Status};
use crate::source::JsonlSource;

use super::*;

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
