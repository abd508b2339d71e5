//! Where outcomes go.
//!
//! The dispatcher writes exactly one [`Outcome`] per entry to an [`OutcomeSink`]. Today that is
//! JSON lines to a file or stdout ([`JsonlSink`]). A NATS JetStream sink would publish the record
//! and then acknowledge the work message: `write` is the point at which an item counts as done.

use std::io::{self, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// How an item ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    Failed,
    Panicked,
    /// The worker process of an isolated pool died while running the item.
    Crashed,
    Cancelled,
    TimedOut,
    Rejected,
    Invalid,
}

impl Status {
    pub const ALL: [Status; 8] = [
        Self::Ok,
        Self::Failed,
        Self::Panicked,
        Self::Crashed,
        Self::Cancelled,
        Self::TimedOut,
        Self::Rejected,
        Self::Invalid,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Failed => "failed",
            Self::Panicked => "panicked",
            Self::Crashed => "crashed",
            Self::Cancelled => "cancelled",
            Self::TimedOut => "timed_out",
            Self::Rejected => "rejected",
            Self::Invalid => "invalid",
        }
    }
}

/// One outcome record; field order is the order written.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub id: String,
    /// Shared with the run's task table (no copy per record).
    pub task: Option<Arc<str>>,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<Box<RawValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub pool: Option<Arc<str>>,
    /// The worker thread that ran the latest attempt (`io_3`); `null` when none ran.
    pub worker: Option<Arc<str>>,
    /// When the first attempt started, RFC 3339 (UTC, milliseconds); `null` when none did.
    pub started: Option<String>,
    pub attempts: u32,
    pub waited_ms: f64,
    pub ran_ms: f64,
    pub line: u64,
    /// Position among the run's entries (for `--ordered`); not written.
    #[serde(skip)]
    pub seq: u64,
}

impl Outcome {
    /// An outcome for an item that never reached a pool.
    pub fn unrun(
        line: u64,
        id: Option<String>,
        task: Option<String>,
        status: Status,
        error: String,
    ) -> Self {
        Self {
            id: id.unwrap_or_else(|| line.to_string()),
            task: task.map(Arc::from),
            status,
            output: None,
            error: Some(error),
            pool: None,
            worker: None,
            started: None,
            attempts: 0,
            waited_ms: 0.0,
            ran_ms: 0.0,
            line,
            seq: 0,
        }
    }
}

/// A place outcomes go.
pub trait OutcomeSink: Send {
    /// Records one outcome.
    fn write(&mut self, outcome: &Outcome) -> io::Result<()>;
    /// Makes everything written so far durable (or visible).
    fn flush(&mut self) -> io::Result<()>;
    /// Flushes and, where the records go to a file, waits until they are on disk
    /// (`fdatasync`). The journal calls it before it records ids as finished.
    fn sync(&mut self) -> io::Result<()> {
        self.flush()
    }
    /// Called by the writer thread at least every 50 ms, with or without new outcomes (the
    /// journal commits from here).
    fn tick(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Records wait in the sink's buffer at most about this long (plus the writer's 50 ms tick): a
/// process that ends abruptly (a plugin calling `exit`, `kill -9`) loses at most that much, and
/// whoever reads the stream sees records as they finish.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(100);

/// JSON lines to any writer.
#[derive(Debug)]
pub struct JsonlSink<W: Write> {
    writer: io::BufWriter<W>,
    /// The output file, for [`OutcomeSink::sync`]; `None` for stdout and other writers.
    file: Option<std::fs::File>,
    /// A pipe or socket whose reader may go away (`taskhost run | head -1`): [`OutcomeSink::tick`]
    /// looks whether it has, so a run whose next record is far off stops anyway.
    reader_may_leave: Option<std::fs::File>,
    /// The output is a terminal: each record is flushed as it is written.
    flush_each_record: bool,
    /// Records are in the buffer, not yet handed to the writer.
    unflushed: bool,
    last_flush: Instant,
}

impl<W: Write + Send> JsonlSink<W> {
    pub fn new(writer: W) -> Self {
        Self {
            writer: io::BufWriter::with_capacity(64 * 1024, writer),
            file: None,
            reader_may_leave: None,
            flush_each_record: false,
            unflushed: false,
            last_flush: Instant::now(),
        }
    }
}

/// What kind of thing an output descriptor is, for how records are flushed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputKind {
    /// A regular file: `fdatasync`ed by [`OutcomeSink::sync`].
    File,
    /// A terminal: every record is flushed at once.
    Terminal,
    /// A pipe or socket: its reader may go away, which ends the run (exit 141).
    Pipe,
    /// Anything else (`/dev/null`, another device).
    Other,
}

impl OutputKind {
    pub fn of(file: &std::fs::File) -> io::Result<OutputKind> {
        use std::io::IsTerminal;
        let file_type = file.metadata()?.file_type();
        if file_type.is_file() {
            return Ok(OutputKind::File);
        }
        if file.is_terminal() {
            return Ok(OutputKind::Terminal);
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::FileTypeExt;
            if file_type.is_fifo() || file_type.is_socket() {
                return Ok(OutputKind::Pipe);
            }
        }
        Ok(OutputKind::Other)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            OutputKind::File => "file",
            OutputKind::Terminal => "terminal",
            OutputKind::Pipe => "pipe",
            OutputKind::Other => "other",
        }
    }
}

impl JsonlSink<std::fs::File> {
    /// JSON lines to a file, a terminal or a pipe (stdout, `--output FILE`). A regular file is
    /// `fdatasync`ed by [`OutcomeSink::sync`] (`fdatasync` on `/dev/null` or a FIFO fails with
    /// `EINVAL`, and has nothing to do); a terminal gets each record at once; a pipe is watched
    /// for its reader going away.
    pub fn file(file: std::fs::File) -> io::Result<Self> {
        let kind = OutputKind::of(&file)?;
        let handle = matches!(kind, OutputKind::File | OutputKind::Pipe)
            .then(|| file.try_clone())
            .transpose()?;
        tracing::debug!(target: "taskhost", kind = kind.as_str(), "output.opened");
        let mut sink = Self::new(file);
        sink.flush_each_record = kind == OutputKind::Terminal;
        match kind {
            OutputKind::File => sink.file = handle,
            OutputKind::Pipe => sink.reader_may_leave = handle,
            OutputKind::Terminal | OutputKind::Other => {}
        }
        Ok(sink)
    }
}

/// Whether the reading end of the pipe or socket `file` writes to is closed: `poll` reports
/// `POLLERR` (a pipe) or `POLLHUP` (a socket) without anything being written.
#[cfg(unix)]
fn reader_left(file: &std::fs::File) -> bool {
    use rustix::event::{poll, PollFd, PollFlags};
    let mut fds = [PollFd::new(file, PollFlags::empty())];
    let zero = rustix::time::Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    match poll(&mut fds, Some(&zero)) {
        Ok(0) | Err(_) => false,
        Ok(_) => fds[0].revents().intersects(PollFlags::ERR | PollFlags::HUP),
    }
}

#[cfg(not(unix))]
fn reader_left(_: &std::fs::File) -> bool {
    false
}

impl<W: Write + Send> OutcomeSink for JsonlSink<W> {
    fn write(&mut self, outcome: &Outcome) -> io::Result<()> {
        self.unflushed = true;
        serde_json::to_writer(&mut self.writer, outcome)?;
        self.writer.write_all(b"\n")?;
        if self.flush_each_record {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.unflushed = false;
        self.last_flush = Instant::now();
        self.writer.flush()
    }

    fn sync(&mut self) -> io::Result<()> {
        self.flush()?;
        match &self.file {
            Some(file) => file.sync_data(),
            None => Ok(()),
        }
    }

    fn tick(&mut self) -> io::Result<()> {
        if self.unflushed && self.last_flush.elapsed() >= FLUSH_INTERVAL {
            self.flush()?;
        }
        if self.reader_may_leave.as_ref().is_some_and(reader_left) {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the output's reader has gone away",
            ));
        }
        Ok(())
    }
}

/// Takes an output file's lock (`flock`) for as long as `file` (or a clone) is open: two runs
/// writing one output interleave and tear each other's records.
/// Only regular files are locked: `/dev/null` or a FIFO may serve many runs at once.
fn lock_output(file: &std::fs::File) -> io::Result<()> {
    if !file.metadata()?.is_file() {
        return Ok(());
    }
    if try_lock(file)? {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::WouldBlock,
            "it is in use by another taskhost run (it holds the file's lock)",
        ))
    }
}

/// Takes an exclusive `flock` on `file` without waiting: false when another open file holds
/// it. The lock lasts as long as the file (or a clone of it) stays open. (`rustix`, not std's
/// `File::try_lock`: that needs Rust 1.89, above this workspace's minimum.)
#[cfg(unix)]
pub fn try_lock(file: &std::fs::File) -> io::Result<bool> {
    use rustix::fs::{flock, FlockOperation};
    match flock(file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(true),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(false),
        Err(error) => Err(error.into()),
    }
}

/// Not on Unix: no lock.
#[cfg(not(unix))]
pub fn try_lock(_file: &std::fs::File) -> io::Result<bool> {
    Ok(true)
}

/// Creates (or empties) the output file at `path`, locked for the life of the run. The lock
/// is taken before the file is emptied, so a second run cannot clobber a running one's output.
pub fn create_output(path: &std::path::Path) -> io::Result<std::fs::File> {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    lock_output(&file)?;
    if file.metadata()?.is_file() {
        file.set_len(0)?;
    }
    Ok(file)
}

/// The outcome stream for `--output -`: a private duplicate of stdout, after which descriptor
/// 1 is pointed at stderr. Plugins run in this process and may print, or close descriptor 1;
/// what they print then goes to stderr, and the records stay whole on a descriptor of their own.
///
/// A closed stdout (`>&-`) is an error: the Rust runtime replaces a closed standard descriptor
/// with `/dev/null` opened read-write, and every record would vanish there. The loader's probe
/// saw descriptor 1 before that; where it could not look, `/dev/null` open read-write is taken
/// for a closed stdout (a shell's `>/dev/null` opens it write-only).
#[cfg(unix)]
pub fn take_stdout() -> io::Result<std::fs::File> {
    use std::os::fd::AsFd;
    let stdout = io::stdout();
    let fd = stdout.as_fd();
    let closed = taskhost_loader::stdio_probe::stdout_closed_at_start()
        .unwrap_or_else(|| is_stand_in_for_a_closed_descriptor(fd));
    if closed {
        return Err(io::Error::other(
            "stdout is closed, so the outcome records would go nowhere: give it somewhere to go, \
             or pass --output FILE (--output /dev/null to discard them)",
        ));
    }
    // `F_DUPFD_CLOEXEC`: the copy is not inherited by anything a plugin spawns.
    let private = fd.try_clone_to_owned()?;
    rustix::stdio::dup2_stdout(io::stderr().as_fd())?;
    Ok(std::fs::File::from(private))
}

/// What [`take_stdout`] gives: the outcome stream.
#[cfg(unix)]
pub type Stdout = std::fs::File;
/// What [`take_stdout`] gives: the outcome stream.
#[cfg(not(unix))]
pub type Stdout = io::Stdout;

/// The sink for `--output -`, on the stream [`take_stdout`] gave.
#[cfg(unix)]
pub fn stdout_sink(stdout: std::fs::File) -> io::Result<Box<dyn OutcomeSink>> {
    Ok(Box::new(JsonlSink::file(stdout)?))
}

/// Not on Unix: stdout as it is.
#[cfg(not(unix))]
pub fn stdout_sink(stdout: io::Stdout) -> io::Result<Box<dyn OutcomeSink>> {
    Ok(Box::new(JsonlSink::new(stdout)))
}

/// Not on Unix: the outcome stream is stdout itself.
#[cfg(not(unix))]
pub fn take_stdout() -> io::Result<io::Stdout> {
    Ok(io::stdout())
}

/// Whether `fd` is `/dev/null` open for reading and writing: what the Rust runtime puts in
/// place of a standard descriptor that was closed when the process started (and, alas, also
/// what Python's `subprocess.DEVNULL` gives).
#[cfg(unix)]
fn is_stand_in_for_a_closed_descriptor(fd: std::os::fd::BorrowedFd<'_>) -> bool {
    use rustix::fs::{fcntl_getfl, fstat, stat, OFlags};
    let (Ok(here), Ok(null)) = (fstat(fd), stat("/dev/null")) else {
        return false;
    };
    let read_write = fcntl_getfl(fd)
        .map(|flags| flags & OFlags::RWMODE == OFlags::RDWR)
        .unwrap_or(false);
    here.st_rdev == null.st_rdev && here.st_ino == null.st_ino && read_write
}

/// Opens (or creates) `path` to append records to, cutting off a torn last line (one without
/// its `\n`, left by a crash) so that the next record starts on a line of its own. The file is
/// locked for as long as it is open (see [`create_output`]).
pub fn open_for_append(path: &std::path::Path) -> io::Result<std::fs::File> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    lock_output(&file)?;
    let len = file.metadata()?.len();
    // Find the end of the last whole line, reading backwards.
    let mut end = len;
    let mut chunk = vec![0u8; 64 * 1024];
    let mut keep = 0;
    while end > 0 {
        let start = end.saturating_sub(chunk.len() as u64);
        let size = (end - start) as usize;
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut chunk[..size])?;
        if let Some(at) = chunk[..size].iter().rposition(|&b| b == b'\n') {
            keep = start + at as u64 + 1;
            break;
        }
        end = start;
    }
    if keep < len {
        file.set_len(keep)?;
    }
    file.seek(SeekFrom::Start(keep))?;
    Ok(file)
}

/// `time` in RFC 3339, UTC, to the millisecond: `2026-05-01T12:00:00.123Z`.
pub fn rfc3339(time: std::time::SystemTime) -> String {
    humantime::format_rfc3339_millis(time).to_string()
}

/// Rounds a duration to milliseconds with three decimals.
pub fn millis(duration: Option<std::time::Duration>) -> f64 {
    duration.map_or(0.0, |d| (d.as_secs_f64() * 1_000_000.0).round() / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_have_the_documented_shape() {
        let mut bytes = Vec::new();
        {
            let mut sink = JsonlSink::new(&mut bytes);
            let mut outcome = Outcome::unrun(3, None, None, Status::Invalid, "bad".to_owned());
            sink.write(&outcome).unwrap();
            outcome.status = Status::TimedOut;
            outcome.error = None;
            outcome.output = Some(RawValue::from_string("{\"n\":1}".to_owned()).unwrap());
            sink.write(&outcome).unwrap();
            sink.flush().unwrap();
        }
        let text = String::from_utf8(bytes).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            r#"{"id":"3","task":null,"status":"invalid","error":"bad","pool":null,"worker":null,"started":null,"attempts":0,"waited_ms":0.0,"ran_ms":0.0,"line":3}"#
        );
        assert!(lines[1].contains(r#""status":"timed_out","output":{"n":1},"pool""#));
    }

    #[cfg(unix)]
    #[test]
    fn a_socket_whose_reader_left_is_seen_without_writing() {
        use std::os::fd::OwnedFd;
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        let file = std::fs::File::from(OwnedFd::from(ours));
        assert_eq!(OutputKind::of(&file).unwrap(), OutputKind::Pipe);
        let mut sink = JsonlSink::file(file).unwrap();
        sink.tick().unwrap();
        drop(theirs);
        let error = sink.tick().unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::BrokenPipe);
    }

    #[test]
    fn a_regular_file_is_a_file() {
        let file = tempfile::tempfile().unwrap();
        assert_eq!(OutputKind::of(&file).unwrap(), OutputKind::File);
        let mut sink = JsonlSink::file(file).unwrap();
        sink.write(&Outcome::unrun(1, None, None, Status::Ok, String::new()))
            .unwrap();
        sink.sync().unwrap();
        sink.tick().unwrap();
    }

    #[test]
    fn appending_cuts_a_torn_last_record_off() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        for (before, after) in [
            ("", ""),
            ("{\"id\":\"a\"}\n", "{\"id\":\"a\"}\n"),
            ("{\"id\":\"a\"}\n{\"id\":\"b", "{\"id\":\"a\"}\n"),
            ("{\"id\":\"torn", ""),
        ] {
            std::fs::write(&path, before).unwrap();
            let mut file = open_for_append(&path).unwrap();
            file.write_all(b"{}\n").unwrap();
            drop(file);
            assert_eq!(
                std::fs::read_to_string(&path).unwrap(),
                format!("{after}{{}}\n")
            );
        }
        let long = format!("{}\n{}", "x".repeat(200_000), "y".repeat(100_000));
        std::fs::write(&path, &long).unwrap();
        drop(open_for_append(&path).unwrap());
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 200_001);
    }
}
