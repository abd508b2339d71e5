//! The scenarios that need more than a pool: the plugin call (5) and the host end to end (6).
//!
//! Both need artefacts that `cargo run -p taskhost-bench` does not build: the plugin libraries
//! (`cargo xtask build-plugins`, into `<target>/plugins/`) and the host binary
//! (`cargo build --release -p taskhost`, `<target>/release/taskhost`). `<target>` is the target
//! directory this benchmark binary itself was built into. Where one is missing, the scenario is
//! reported as skipped with the command that would build it; it never reports made-up numbers.

use std::env;
use std::fs::{self, File};
use std::hint::black_box;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{ROption, RStr};
use anyhow::{bail, Context, Result};
use taskhost_loader::{LoadOptions, PluginSet, TracingContext};
use taskhost_plugin_api::abi::{HostContext, HostContextRef, HostContext_TO};
use taskhost_plugin_api::{LogLevel, TaskContext};

use crate::procfs;
use crate::scenarios::{Plan, WORKERS};
use crate::table::{figure, row_from, Row, ScenarioReport};

/// The name of the row of scenario 5 that calls through the ABI.
pub const THROUGH_THE_ABI: &str = "through the ABI (loader)";

/// The name of the row of scenario 5 that calls a C plugin through the C ABI.
pub const THROUGH_THE_C_ABI: &str = "through the C ABI (loader)";

/// The input of every `testkit/echo` call: a small JSON object like a real work item's.
const ECHO_INPUT: &[u8] = br#"{"n":12345,"text":"hello, taskhost","ok":true}"#;

/// The target directory this binary was built into (`<target>/release/taskhost-bench`).
pub(crate) fn target_dir() -> Result<PathBuf> {
    let this_binary = env::current_exe().context("finding this benchmark's own binary")?;
    this_binary
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .with_context(|| format!("no target directory above {}", this_binary.display()))
}

/// Where `cargo xtask build-plugins` puts the plugin libraries.
pub(crate) fn plugin_dir() -> Result<PathBuf> {
    Ok(target_dir()?.join("plugins"))
}

/// The host binary of the same profile as this one.
pub(crate) fn host_binary() -> Result<PathBuf> {
    let this_binary = env::current_exe().context("finding this benchmark's own binary")?;
    let directory = this_binary
        .parent()
        .context("this binary has no directory")?;
    Ok(directory.join(format!("taskhost{}", env::consts::EXE_SUFFIX)))
}

/// A host context for direct calls: never cancelled, drops progress and logs.
struct SilentHost;

impl HostContext for SilentHost {
    fn is_cancelled(&self) -> bool {
        false
    }

    fn progress(&self, _done: u64, _total: ROption<u64>) {}

    fn log(&self, _level: LogLevel, _message: RStr<'_>) {}
}

/// Nanoseconds per call of `call`, `calls` calls per repetition, after a warm-up.
fn time_calls(calls: usize, reps: usize, mut call: impl FnMut() -> usize) -> Vec<f64> {
    for _ in 0..calls.min(10_000) {
        black_box(call());
    }
    (0..reps)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..calls {
                black_box(call());
            }
            start.elapsed().as_nanos() as f64 / calls as f64
        })
        .collect()
}

/// Scenario 5: one `testkit/echo` call through the ABI against the same function called directly.
pub fn plugin_call(plan: &Plan) -> ScenarioReport {
    eprintln!("scenario 5: plugin-call");
    let mut report = ScenarioReport {
        number: 5,
        key: "plugin-call",
        title: "Plugin call",
        measures: format!(
            "`testkit/echo` on a {}-byte JSON input, {} calls per repetition, {} repetitions, in \
             this thread. Floor: `taskhost_testkit::echo` linked in and called as a Rust function. \
             The difference is the cost of the ABI (copying the input and output across it, the \
             context adapter, the panic guard).",
            ECHO_INPUT.len(),
            plan.plugin_calls,
            plan.plugin_reps
        ),
        unit: "ns per call",
        show_p99: false,
        rows: Vec::new(),
        notes: Vec::new(),
        skipped: None,
    };
    let plugins = match load_plugins() {
        Ok(plugins) => plugins,
        Err(error) => {
            eprintln!("  skipped: {error:#}");
            report.skipped = Some(format!("{error:#}"));
            return report;
        }
    };
    let host = SilentHost;
    let host: HostContextRef<'_> = HostContext_TO::from_ptr(&host, TD_Opaque);
    let context = TaskContext::new(host);
    let direct = time_calls(plan.plugin_calls, plan.plugin_reps, || {
        taskhost_testkit::echo(black_box(ECHO_INPUT), &context).map_or(0, |output| output.len())
    });
    report
        .rows
        .push(row_from("direct call", Ok(direct)).floor());

    let sdk = taskhost_testkit::plugin();
    let in_process = time_calls(plan.plugin_calls, plan.plugin_reps, || {
        sdk.run("echo", black_box(ECHO_INPUT), &context)
            .map_or(0, |output| output.len())
    });
    report.rows.push(
        row_from("SDK dispatch, no ABI", Ok(in_process))
            .with_extra("`Plugin::run`: task lookup by name + boxed function"),
    );

    // The same echo through the loader, from the abi_stable plugin and from the C plugin.
    let through_loader = |full_name: &str| {
        plugins
            .task(full_name)
            .with_context(|| format!("no `{full_name}`: run `cargo xtask build-plugins` first"))
            .map(|task| {
                let context = TracingContext::new(&task);
                time_calls(plan.plugin_calls, plan.plugin_reps, || {
                    task.run(black_box(ECHO_INPUT), &context)
                        .map_or(0, |output| output.len())
                })
            })
    };
    report.rows.push(
        row_from(THROUGH_THE_ABI, through_loader("testkit/echo"))
            .with_extra("`PluginTask::run` with a `TracingContext`"),
    );
    report.rows.push(
        row_from(THROUGH_THE_C_ABI, through_loader("csample/echo"))
            .with_extra("`csample/echo`, a C plugin: `PluginTask::run` with a `TracingContext`"),
    );
    // Far slower per call (a round trip through the kernel): a hundredth of the calls.
    let process_calls = (plan.plugin_calls / 100).max(1_000);
    report.rows.push(
        row_from(
            THROUGH_A_WORKER_PROCESS,
            through_worker_process(process_calls, plan.plugin_reps),
        )
        .with_extra(format!(
            "`testkit/echo` in an isolated pool's worker process (`ChildWorker::run`: a request \
             and a response over its Unix socket), {process_calls} calls per repetition"
        )),
    );
    report.compute_ratios();
    let median = |index: usize| report.rows[index].summary.map(|summary| summary.median);
    if let Some(floor) = median(0) {
        for (index, what) in [(2, "The abi_stable ABI"), (3, "The C ABI")] {
            if let Some(through) = median(index) {
                report.notes.push(format!(
                    "{what} adds {} ns per call over the direct call (median).",
                    figure(through - floor)
                ));
            }
        }
    }
    if let (Some(in_process), Some(process)) = (median(2), median(4)) {
        report.notes.push(format!(
            "A worker process adds {} ns per call over the in-process call through the ABI \
             (median; target: under 5,000 ns).",
            figure(process - in_process)
        ));
    }
    report
}

/// The name of the row of scenario 5 that calls into an isolated pool's worker process.
pub const THROUGH_A_WORKER_PROCESS: &str = "through a worker process";

/// Scenario 5's worker-process row: `testkit/echo` run by a `taskhost __serve-worker` child of
/// the release host, through the same client the isolated pools use.
fn through_worker_process(calls: usize, reps: usize) -> Result<Vec<f64>> {
    use std::sync::Arc;
    use taskhost::isolation::{ChildSpec, ChildWorker, SERVE_COMMAND};
    let host = host_binary()?;
    if !host.exists() {
        bail!(
            "no {} (run `cargo build --release -p taskhost` first)",
            host.display()
        );
    }
    let work = env::temp_dir().join(format!("taskhost-bench-child-{}", std::process::id()));
    fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let config = work.join("taskhost.toml");
    fs::write(&config, host_config(&plugin_dir()?, "thread"))
        .with_context(|| format!("writing {}", config.display()))?;
    let spec = ChildSpec::new(
        host,
        vec!["--config".into(), config.into(), SERVE_COMMAND.into()],
    );
    let mut child = ChildWorker::new(Arc::new(spec), "bench_0");
    let mut failed = None;
    let times = time_calls(calls, reps, || {
        match child.run(
            "testkit",
            "testkit/echo",
            black_box(ECHO_INPUT),
            &|| false,
            Duration::from_secs(1),
        ) {
            Ok(Ok(output)) => output.len(),
            other => {
                failed.get_or_insert_with(|| format!("{other:?}"));
                0
            }
        }
    });
    drop(child);
    let _ = fs::remove_dir_all(&work);
    match failed {
        Some(error) => bail!("the worker process did not echo: {error}"),
        None => Ok(times),
    }
}

/// Loads the plugins from `<target>/plugins`, or says how to build them.
fn load_plugins() -> Result<PluginSet> {
    let directory = plugin_dir()?;
    let library = directory.join(format!(
        "{}taskhost_testkit{}",
        env::consts::DLL_PREFIX,
        env::consts::DLL_SUFFIX
    ));
    if !library.exists() {
        bail!(
            "no {} (run `cargo xtask build-plugins` first)",
            library.display()
        );
    }
    let (plugins, _skipped) =
        PluginSet::load(std::slice::from_ref(&directory), &LoadOptions::default())
            .with_context(|| format!("loading the plugins in {}", directory.display()))?;
    if plugins.task("testkit/echo").is_none() {
        bail!(
            "the plugins in {} have no `testkit/echo`",
            directory.display()
        );
    }
    Ok(plugins)
}

/// How a child process ended: how long it ran and its peak resident set.
#[derive(Debug, Clone, Copy)]
struct ProcessRun {
    /// From spawn to exit.
    elapsed: Duration,
    /// The last `VmHWM` read before it exited, KiB.
    peak_rss_kib: u64,
}

/// Runs `command` to completion, reading its peak RSS (`VmHWM`) every few milliseconds.
fn run_watched(command: &mut Command) -> Result<ProcessRun> {
    let start = Instant::now();
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting a child process")?;
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak_rss_kib = 0;
    let mut polls = 0u32;
    let status = loop {
        // VmHWM is the kernel's own high-water mark, so an occasional read sees the peak so far;
        // reading it on every 2 ms turn would take CPU from the two cores being measured. Read
        // before `try_wait`: once reaped, the numbers are gone (a zombie has no Vm* lines).
        if polls.is_multiple_of(10) {
            if let Ok(status) = fs::read_to_string(&status_path) {
                peak_rss_kib =
                    peak_rss_kib.max(procfs::status_field_kib(&status, "VmHWM").unwrap_or(0));
            }
        }
        polls = polls.wrapping_add(1);
        if let Some(status) = child.try_wait().context("waiting for a child process")? {
            break status;
        }
        thread::sleep(Duration::from_millis(2));
    };
    let elapsed = start.elapsed();
    if !status.success() {
        let mut stderr = String::new();
        if let Some(mut pipe) = child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
        }
        bail!("{command:?} failed with {status}: {}", stderr.trim());
    }
    Ok(ProcessRun {
        elapsed,
        peak_rss_kib,
    })
}

/// Writes `items` work items for `testkit/echo`, one JSON object a line.
fn write_items(path: &Path, items: usize) -> Result<()> {
    let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = BufWriter::new(file);
    for index in 0..items {
        writeln!(
            out,
            r#"{{"id":{index},"task":"testkit/echo","input":{{"n":{index},"text":"hello, taskhost","ok":true}}}}"#
        )
        .with_context(|| format!("writing {}", path.display()))?;
    }
    out.flush()
        .with_context(|| format!("writing {}", path.display()))
}

/// The serde_json floor of scenario 6, run in a child process: read every line, parse it,
/// serialise it again and write it, in one thread.
pub fn json_floor_child(input: &Path, output: &Path) -> Result<()> {
    let reader =
        BufReader::new(File::open(input).with_context(|| format!("opening {}", input.display()))?);
    let mut writer = BufWriter::new(
        File::create(output).with_context(|| format!("creating {}", output.display()))?,
    );
    for line in reader.lines() {
        let line = line.with_context(|| format!("reading {}", input.display()))?;
        let value: serde_json::Value = serde_json::from_str(&line).context("parsing a line")?;
        serde_json::to_writer(&mut writer, &value).context("serialising a line")?;
        writer
            .write_all(b"\n")
            .with_context(|| format!("writing {}", output.display()))?;
    }
    writer
        .flush()
        .with_context(|| format!("writing {}", output.display()))
}

/// The host's configuration file for scenario 6: plugins from the bench's target directory,
/// `WORKERS` workers in the default pool with `isolation`, logs only on errors.
fn host_config(plugin_dir: &Path, isolation: &str) -> String {
    // A TOML basic string reads like a JSON string for any path without control characters.
    let dir = serde_json::to_string(&plugin_dir.display().to_string()).unwrap_or_default();
    format!(
        "[plugins]\ndirs = [{dir}]\nstrict = false\n\n[logging]\nfilter = \"error\"\n\n\
         [pools.default]\nmax_workers = {WORKERS}\nisolation = \"{isolation}\"\n"
    )
}

/// Scenario 6: `host_items` JSONL items through `taskhost run` to `testkit/echo`, against the
/// serde_json floor; and the peak RSS at `host_items_large` items, which should stay flat.
pub fn host_end_to_end(plan: &Plan) -> ScenarioReport {
    eprintln!("scenario 6: host-e2e");
    let mut report = ScenarioReport {
        number: 6,
        key: "host-e2e",
        title: "Host end to end",
        measures: format!(
            "{} JSONL work items for `testkit/echo` through `taskhost run --input FILE --output \
             FILE` ({WORKERS} workers in the default pool), {} runs, timed from process start to \
             exit. Floor: a child process reading, parsing (serde_json::Value), re-serialising and \
             writing the same lines in one thread. Peak RSS is polled from /proc/PID/status.",
            plan.host_items, plan.host_reps
        ),
        unit: "ns per item",
        show_p99: false,
        rows: Vec::new(),
        notes: Vec::new(),
        skipped: None,
    };
    if let Err(error) = host_rows(plan, &mut report) {
        eprintln!("  skipped: {error:#}");
        report.skipped = Some(format!("{error:#}"));
        report.rows.clear();
    }
    report
}

fn host_rows(plan: &Plan, report: &mut ScenarioReport) -> Result<()> {
    let host = host_binary()?;
    if !host.exists() {
        bail!(
            "no {} (run `cargo build --release -p taskhost` first)",
            host.display()
        );
    }
    let plugins = plugin_dir()?;
    load_plugins()?;
    let work = env::temp_dir().join(format!("taskhost-bench-{}", std::process::id()));
    fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let result = host_rows_in(plan, report, &host, &plugins, &work);
    let _ = fs::remove_dir_all(&work);
    result
}

fn host_rows_in(
    plan: &Plan,
    report: &mut ScenarioReport,
    host: &Path,
    plugins: &Path,
    work: &Path,
) -> Result<()> {
    let config = work.join("taskhost.toml");
    fs::write(&config, host_config(plugins, "thread"))
        .with_context(|| format!("writing {}", config.display()))?;
    let isolated_config = work.join("isolated.toml");
    fs::write(&isolated_config, host_config(plugins, "process"))
        .with_context(|| format!("writing {}", isolated_config.display()))?;
    let input = work.join("items.jsonl");
    let output = work.join("outcomes.jsonl");
    write_items(&input, plan.host_items)?;
    let this_binary = env::current_exe().context("finding this benchmark's own binary")?;

    let floor_runs: Vec<ProcessRun> = (0..plan.host_reps)
        .map(|_| {
            run_watched(
                Command::new(&this_binary)
                    .arg("__child")
                    .arg("json-floor")
                    .arg(&input)
                    .arg(&output),
            )
        })
        .collect::<Result<_>>()?;
    report
        .rows
        .push(process_row("serde_json, one thread", &floor_runs, plan.host_items).floor());

    let host_command_with = |config: &Path, input: &Path| {
        let mut command = Command::new(host);
        command
            .arg("--config")
            .arg(config)
            .arg("--no-progress")
            .arg("--quiet")
            .arg("run")
            .arg("--input")
            .arg(input)
            .arg("--output")
            .arg(&output)
            .env_remove("RUST_LOG")
            .env_remove("TASKHOST_CONFIG");
        command
    };
    let host_command = |input: &Path| host_command_with(&config, input);
    let host_runs: Vec<ProcessRun> = (0..plan.host_reps)
        .map(|_| run_watched(&mut host_command(&input)))
        .collect::<Result<_>>()?;
    let ok_outcomes = count_lines_containing(&output, br#""status":"ok""#)?;
    if ok_outcomes != plan.host_items {
        bail!(
            "`taskhost run` wrote {ok_outcomes} `ok` outcomes for {} items",
            plan.host_items
        );
    }
    report.rows.push(process_row(
        "taskhost run → testkit/echo",
        &host_runs,
        plan.host_items,
    ));
    let isolated_runs: Vec<ProcessRun> = (0..plan.host_reps)
        .map(|_| run_watched(&mut host_command_with(&isolated_config, &input)))
        .collect::<Result<_>>()?;
    let isolated_ok = count_lines_containing(&output, br#""status":"ok""#)?;
    if isolated_ok != plan.host_items {
        bail!(
            "`taskhost run` with isolation = \"process\" wrote {isolated_ok} `ok` outcomes for {} \
             items",
            plan.host_items
        );
    }
    let thread_row_index = report.rows.len() - 1;
    report.rows.push(
        process_row(
            "taskhost run, isolation = \"process\"",
            &isolated_runs,
            plan.host_items,
        )
        .with_extra("the same items, each worker's tasks in its own worker process"),
    );
    let isolated_row_index = report.rows.len() - 1;

    write_items(&input, plan.host_items_large)?;
    let large_run = run_watched(&mut host_command(&input))?;
    let large_row = process_row(
        &format!("taskhost run, {} items", plan.host_items_large),
        &[large_run],
        plan.host_items_large,
    );
    report.rows.push(large_row);
    let small_peak = host_runs
        .iter()
        .map(|run| run.peak_rss_kib)
        .max()
        .unwrap_or(0);
    if small_peak > 0 {
        report.notes.push(format!(
            "Peak RSS at {} items is {:.2}× the peak at {} items (target: within 1.20×, i.e. flat).",
            plan.host_items_large,
            large_run.peak_rss_kib as f64 / small_peak as f64,
            plan.host_items
        ));
    }
    report.notes.push(
        "× floor is a time ratio: items/s of the floor divided by items/s of the contender \
         (target: at most 2×, i.e. at least half the floor's items/s)."
            .to_owned(),
    );
    report.compute_ratios();
    let median = |index: usize| report.rows[index].summary.map(|summary| summary.median);
    if let (Some(thread), Some(process)) = (median(thread_row_index), median(isolated_row_index)) {
        report.notes.push(format!(
            "isolation = \"process\" runs {:.2}× the items/s of isolation = \"thread\" \
             (target: at least 0.5×).",
            thread / process
        ));
    }
    Ok(())
}

/// A row of the host table from whole-process runs.
fn process_row(name: &str, runs: &[ProcessRun], items: usize) -> Row {
    let per_item: Vec<f64> = runs
        .iter()
        .map(|run| run.elapsed.as_nanos() as f64 / items as f64)
        .collect();
    let peak_rss_kib = runs.iter().map(|run| run.peak_rss_kib).max().unwrap_or(0);
    let peak_mib = peak_rss_kib as f64 / 1024.0;
    let row = row_from(name, Ok(per_item)).with_peak_rss_kib(peak_rss_kib);
    let items_per_second = row.summary.map_or(0.0, |summary| 1e9 / summary.median);
    row.with_extra(format!(
        "{} items/s; peak RSS {} MiB",
        figure(items_per_second),
        figure(peak_mib)
    ))
}

/// Lines of a file that contain `needle`.
fn count_lines_containing(path: &Path, needle: &[u8]) -> Result<usize> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut lines = 0;
    for line in BufReader::new(file).split(b'\n') {
        let line = line.with_context(|| format!("reading {}", path.display()))?;
        if line.windows(needle.len()).any(|window| window == needle) {
            lines += 1;
        }
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_direct_echo_returns_its_input() {
        let host = SilentHost;
        let host: HostContextRef<'_> = HostContext_TO::from_ptr(&host, TD_Opaque);
        let context = TaskContext::new(host);
        assert_eq!(
            taskhost_testkit::echo(ECHO_INPUT, &context).unwrap(),
            ECHO_INPUT
        );
    }

    #[test]
    fn the_json_floor_round_trips_every_line() {
        let work = env::temp_dir().join(format!("taskhost-bench-test-{}", std::process::id()));
        fs::create_dir_all(&work).unwrap();
        let (input, output) = (work.join("in.jsonl"), work.join("out.jsonl"));
        write_items(&input, 25).unwrap();
        json_floor_child(&input, &output).unwrap();
        assert_eq!(
            count_lines_containing(&output, b"testkit/echo").unwrap(),
            25
        );
        assert_eq!(count_lines_containing(&output, br#""n":3,"#).unwrap(), 1);
        let first: serde_json::Value =
            serde_json::from_str(fs::read_to_string(&output).unwrap().lines().next().unwrap())
                .unwrap();
        assert_eq!(first["task"], "testkit/echo");
        assert_eq!(first["input"]["n"], 0);
        fs::remove_dir_all(&work).unwrap();
    }

    #[test]
    fn the_host_config_names_the_plugin_dir_and_two_workers() {
        let config = host_config(Path::new("/tmp/plugins dir"), "process");
        assert!(
            config.contains(r#"dirs = ["/tmp/plugins dir"]"#),
            "{config}"
        );
        assert!(
            config.contains(&format!("max_workers = {WORKERS}")),
            "{config}"
        );
        assert!(config.contains("isolation = \"process\""), "{config}");
    }
}
