//! `testkit`: small tasks that exercise the host — echo, sleep, fail, panic, log, progress, spin —
//! and misbehaving ones that the host must survive: `print` (writes to stdout), `hide_stdout`
//! (points descriptor 1 at `/dev/null`), `exit` (ends the process), `raw` (returns output that
//! is not JSON), `stuck` (ignores cancellation), `crash` (segfaults, aborts, overflows its stack,
//! allocates without end or spins for ever: for isolated pools).
//!
//! Used by the loader's and the host's tests and by the benchmarks. Every well-behaved task that
//! takes time (`sleep`, `spin`, `progress`) honours cancellation within a few milliseconds.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use taskhost_plugin_api::{export_plugin, LogLevel, Plugin, TaskContext, TaskError};

/// How often long tasks look at the cancellation flag.
const CANCEL_POLL: Duration = Duration::from_millis(2);

/// Input of `sleep` and `spin`.
#[derive(Debug, Deserialize)]
pub struct Millis {
    /// Milliseconds to sleep or spin.
    pub ms: u64,
}

/// Output of `sleep` and `spin`.
#[derive(Debug, Serialize)]
pub struct Elapsed {
    /// Milliseconds actually spent.
    pub elapsed_ms: f64,
}

/// Input of `fail`, `panic` and `log`.
#[derive(Debug, Default, Deserialize)]
pub struct Message {
    /// The message to fail, panic or log with.
    #[serde(default)]
    pub message: String,
}

/// Input of `progress`.
#[derive(Debug, Deserialize)]
pub struct Steps {
    /// How many progress reports to send.
    pub steps: u64,
    /// Milliseconds to wait between reports.
    #[serde(default)]
    pub step_ms: u64,
}

/// Input of `print`.
#[derive(Debug, Deserialize)]
pub struct Print {
    /// Written to stdout as it is (no newline added).
    pub text: String,
}

/// Input of `exit`.
#[derive(Debug, Deserialize)]
pub struct Exit {
    /// The process's exit status.
    pub code: i32,
    /// Exit from a new thread after this many milliseconds (the task itself returns at once);
    /// `None`: exit from the task, at once.
    #[serde(default)]
    pub after_ms: Option<u64>,
}

/// Input of `raw`.
#[derive(Debug, Deserialize)]
pub struct Raw {
    /// The output, byte for byte.
    pub bytes: Vec<u8>,
}

/// Input of `crash`.
#[derive(Debug, Deserialize)]
pub struct Crash {
    /// `segv` (the process gets SIGSEGV), `abort`, `overflow` (recurses until the stack
    /// overflows), `hog` (allocates and touches memory until it fails, at most `max_mb` MiB),
    /// `loop` (spins for ever, ignoring cancellation).
    pub how: String,
    /// Crash only while this file does not exist, creating it first: the item crashes on its
    /// first attempt and succeeds on the next.
    #[serde(default)]
    pub once: Option<std::path::PathBuf>,
    /// `hog`'s ceiling, so that a run without a memory limit cannot take the machine.
    #[serde(default = "default_hog_mb")]
    pub max_mb: u64,
}

fn default_hog_mb() -> u64 {
    4096
}

/// `echo`: the input, unchanged.
pub fn echo(input: &[u8], _ctx: &TaskContext<'_>) -> Result<Vec<u8>, TaskError> {
    Ok(input.to_vec())
}

/// `sleep`: waits `ms` milliseconds without using the CPU, or until cancelled.
pub fn sleep(input: Millis, ctx: &TaskContext<'_>) -> Result<Elapsed, TaskError> {
    let start = Instant::now();
    let deadline = start + Duration::from_millis(input.ms);
    loop {
        ctx.check_cancelled()?;
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        std::thread::sleep(CANCEL_POLL.min(deadline - now));
    }
    Ok(Elapsed {
        elapsed_ms: start.elapsed().as_secs_f64() * 1e3,
    })
}

/// `spin`: keeps one CPU busy for `ms` milliseconds, or until cancelled.
pub fn spin(input: Millis, ctx: &TaskContext<'_>) -> Result<Elapsed, TaskError> {
    let start = Instant::now();
    let deadline = start + Duration::from_millis(input.ms);
    let mut next_poll = start;
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    while Instant::now() < deadline {
        for _ in 0..1024 {
            state = std::hint::black_box(state.rotate_left(5) ^ 0x2545_f491_4f6c_dd1d);
        }
        if Instant::now() >= next_poll {
            ctx.check_cancelled()?;
            next_poll += CANCEL_POLL;
        }
    }
    Ok(Elapsed {
        elapsed_ms: start.elapsed().as_secs_f64() * 1e3,
    })
}

/// `fail`: always fails with `message`.
pub fn fail(input: Message, _ctx: &TaskContext<'_>) -> Result<(), TaskError> {
    Err(TaskError::failed(input.message))
}

/// `panic`: always panics with `message` (the SDK turns it into a `panicked` failure).
pub fn panic(input: Message, _ctx: &TaskContext<'_>) -> Result<(), TaskError> {
    panic!("{}", input.message)
}

/// `log`: logs `message` once at each level, error to trace, through the host context.
pub fn log(input: Message, ctx: &TaskContext<'_>) -> Result<u32, TaskError> {
    let levels = [
        LogLevel::Error,
        LogLevel::Warn,
        LogLevel::Info,
        LogLevel::Debug,
        LogLevel::Trace,
    ];
    for level in levels {
        ctx.log(level, format!("{} ({})", input.message, level.as_str()));
    }
    Ok(levels.len() as u32)
}

/// `progress`: reports progress `1..=steps` of `steps`, waiting `step_ms` between reports.
pub fn progress(input: Steps, ctx: &TaskContext<'_>) -> Result<u64, TaskError> {
    for done in 1..=input.steps {
        ctx.check_cancelled()?;
        if input.step_ms > 0 {
            std::thread::sleep(Duration::from_millis(input.step_ms));
        }
        ctx.progress(done, Some(input.steps));
    }
    Ok(input.steps)
}

/// `print`: writes `text` to the process's stdout, as a careless plugin would.
pub fn print(input: Print, _ctx: &TaskContext<'_>) -> Result<(), TaskError> {
    use std::io::Write;
    let mut stdout = std::io::stdout();
    stdout
        .write_all(input.text.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|error| TaskError::failed(format!("writing to stdout: {error}")))
}

/// `hide_stdout`: points descriptor 1 at `/dev/null`, as a plugin that closes stdout (and has
/// the descriptor reused) would: whatever is written to descriptor 1 after it is gone.
pub fn hide_stdout(_input: (), _ctx: &TaskContext<'_>) -> Result<(), TaskError> {
    #[cfg(unix)]
    {
        let null = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/null")
            .map_err(|error| TaskError::failed(format!("opening /dev/null: {error}")))?;
        rustix::stdio::dup2_stdout(&null)
            .map_err(|error| TaskError::failed(format!("dup2 over stdout: {error}")))
    }
    #[cfg(not(unix))]
    Err(TaskError::failed("hide_stdout works on Unix only"))
}

/// `exit`: ends the whole process with `code`, from the task or, after `after_ms`, from a
/// thread of its own.
pub fn exit(input: Exit, _ctx: &TaskContext<'_>) -> Result<(), TaskError> {
    match input.after_ms {
        None => std::process::exit(input.code),
        Some(ms) => {
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(ms));
                std::process::exit(input.code)
            });
            Ok(())
        }
    }
}

/// `raw`: returns `bytes` as the output, JSON or not.
pub fn raw(input: &[u8], _ctx: &TaskContext<'_>) -> Result<Vec<u8>, TaskError> {
    let raw: Raw = serde_json::from_slice(input).map_err(|error| {
        TaskError::invalid_input(format!("expected {{\"bytes\": [..]}}: {error}"))
    })?;
    Ok(raw.bytes)
}

/// `stuck`: sleeps `ms` milliseconds and never looks at the cancellation flag.
pub fn stuck(input: Millis, _ctx: &TaskContext<'_>) -> Result<Elapsed, TaskError> {
    let start = Instant::now();
    std::thread::sleep(Duration::from_millis(input.ms));
    Ok(Elapsed {
        elapsed_ms: start.elapsed().as_secs_f64() * 1e3,
    })
}

/// `crash`: ends the process the way `how` says (see [`Crash`]), as a broken plugin would.
pub fn crash(input: Crash, _ctx: &TaskContext<'_>) -> Result<u64, TaskError> {
    if let Some(marker) = &input.once {
        if marker.exists() {
            return Ok(0);
        }
        std::fs::write(marker, b"crashed once\n")
            .map_err(|error| TaskError::failed(format!("writing {}: {error}", marker.display())))?;
    }
    match input.how.as_str() {
        "segv" => {
            #[cfg(unix)]
            {
                use rustix::process::{getpid, kill_process, Signal};
                // The Rust runtime's SIGSEGV handler takes the first one (it looks for a stack
                // overflow, then restores the default action): a real fault would fault again.
                for _ in 0..3 {
                    let _ = kill_process(getpid(), Signal::SEGV);
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
            Err(TaskError::failed("SIGSEGV did not end the process"))
        }
        "abort" => std::process::abort(),
        "overflow" => Ok(recurse(std::hint::black_box(1))),
        "hog" => {
            let mut held: Vec<Vec<u8>> = Vec::new();
            while (held.len() as u64) * 16 < input.max_mb {
                held.push(vec![1u8; 16 << 20]);
            }
            Ok(std::hint::black_box(held).len() as u64 * 16)
        }
        "loop" => {
            let mut n = 0u64;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        other => Err(TaskError::invalid_input(format!(
            "expected how = \"segv\", \"abort\", \"overflow\", \"hog\" or \"loop\", found {other:?}"
        ))),
    }
}

/// Recurses without end (each frame keeps a buffer alive, so it cannot be made a loop).
fn recurse(depth: u64) -> u64 {
    let frame = std::hint::black_box([depth; 64]);
    // Never false (the depth only grows), but the compiler cannot tell.
    if std::hint::black_box(depth) == 0 {
        return 0;
    }
    recurse(depth + 1) + frame[depth as usize % 64]
}

/// The plugin, as the host sees it.
pub fn plugin() -> Plugin {
    Plugin::new("testkit", env!("CARGO_PKG_VERSION"))
        .raw_task("echo", "returns its input unchanged", echo)
        .task(
            "sleep",
            "waits `ms` milliseconds, honouring cancellation",
            sleep,
        )
        .task("spin", "keeps a CPU busy for `ms` milliseconds", spin)
        .task("fail", "fails with `message`", fail)
        .task("panic", "panics with `message`", panic)
        .task("log", "logs `message` at every level", log)
        .task("progress", "reports `steps` progress updates", progress)
        .task("print", "writes `text` to stdout (misbehaves)", print)
        .task("exit", "ends the process with `code` (misbehaves)", exit)
        .task(
            "hide_stdout",
            "points descriptor 1 at /dev/null (misbehaves)",
            hide_stdout,
        )
        .raw_task("raw", "returns `bytes` as its output, JSON or not", raw)
        .task(
            "stuck",
            "sleeps `ms` milliseconds, ignoring cancellation (misbehaves)",
            stuck,
        )
        .task(
            "crash",
            "segfaults, aborts, overflows its stack, eats memory or spins (misbehaves)",
            crash,
        )
}

export_plugin!(plugin);

#[cfg(test)]
mod tests {
    use super::*;
    use taskhost_plugin_api::FailureKind;

    #[test]
    fn echo_returns_its_input() {
        assert_eq!(
            plugin().run_detached("echo", b"{\"a\":1}").unwrap(),
            b"{\"a\":1}"
        );
    }

    #[test]
    fn fail_fails_with_the_message() {
        let error = plugin()
            .run_detached("fail", br#"{"message": "boom"}"#)
            .unwrap_err();
        assert_eq!(
            (error.kind(), error.message()),
            (FailureKind::Failed, "boom")
        );
    }

    #[test]
    fn sleep_waits_at_least_the_time_asked() {
        let output = plugin().run_detached("sleep", br#"{"ms": 5}"#).unwrap();
        let output: serde_json::Value = serde_json::from_slice(&output).unwrap();
        assert!(output["elapsed_ms"].as_f64().unwrap() >= 5.0, "{output}");
    }

    #[test]
    fn panic_panics_with_the_message() {
        let panic =
            std::panic::catch_unwind(|| plugin().run_detached("panic", br#"{"message": "oh no"}"#))
                .unwrap_err();
        assert_eq!(panic.downcast_ref::<String>().unwrap(), "oh no");
    }
}
