//! The Python contender: `python/pool_bench.py` run as a subprocess, reporting JSON on stdout.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{bail, Context, Result};
use serde::de::DeserializeOwned;
use serde::Deserialize;

/// The name of the Python contender in the report.
pub const NAME: &str = "python ThreadPoolExecutor";

/// Set by `--no-python`: every Python row is then reported as skipped.
static DISABLED: AtomicBool = AtomicBool::new(false);

/// Leaves Python out of this run (`--no-python`, e.g. while profiling the Rust contenders).
pub fn disable() {
    DISABLED.store(true, Ordering::Relaxed);
}

/// Whether `--no-python` left Python out of this run.
pub fn disabled() -> bool {
    DISABLED.load(Ordering::Relaxed)
}

/// The script, found beside this crate's manifest.
fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("python")
        .join("pool_bench.py")
}

/// Runs `pool_bench.py <scenario> <arguments>` and parses what it prints.
pub fn run<T: DeserializeOwned>(scenario: &str, arguments: &[String]) -> Result<T> {
    if disabled() {
        bail!("left out with --no-python");
    }
    let output = Command::new("python3")
        .arg(script())
        .arg(scenario)
        .args(arguments)
        .output()
        .context("running python3 (is it installed?)")?;
    if !output.status.success() {
        bail!(
            "python3 pool_bench.py {scenario} failed with {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    serde_json::from_slice(&output.stdout)
        .with_context(|| format!("parsing the JSON of pool_bench.py {scenario}"))
}

/// What the timed scenarios print.
#[derive(Debug, Deserialize)]
struct Samples {
    /// Nanoseconds per task or per iteration.
    samples_ns: Vec<f64>,
}

/// Runs a timed scenario and returns its samples, in nanoseconds.
pub fn samples(scenario: &str, arguments: &[(&str, String)]) -> Result<Vec<f64>> {
    let arguments: Vec<String> = arguments
        .iter()
        .flat_map(|(flag, value)| [format!("--{flag}"), value.clone()])
        .collect();
    run::<Samples>(scenario, &arguments).map(|samples| samples.samples_ns)
}
