//! `taskhost-bench`: taskhost-executor against its peers, measured in the same run.
//!
//! Run through `cargo xtask bench [--quick]`; see this crate's README for what each scenario
//! measures and how to read the ratios. Writes `target/bench/report.{md,json,svg}` and prints the
//! Markdown to stdout; progress goes to stderr.
//!
//! The modules form layers, bottom first; each uses only modules of lower layers:
//! `stats`, `procfs`, `python`, `pools` (the peers behind one trait) · `scenarios` (what each
//! scenario does for one contender), `table` (one scenario's rows and ratios) · `external`
//! (the plugin call and the host end to end) · `celery` (Celery and Redis, started and
//! stopped by pid) · `cluster` (submit and workers over a real NATS
//! server) · `targets` (the targets against the tables) ·
//! `report` (the whole run as Markdown, JSON, SVG) · `runner` (which scenario runs what) · this
//! file (the command line).
#![forbid(unsafe_code)]

mod celery;
mod cluster;
mod external;
mod pools;
mod procfs;
mod python;
mod report;
mod runner;
mod scenarios;
mod stats;
mod table;
mod targets;

use std::env;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};

use crate::report::{Machine, Report};
use crate::scenarios::{Contender, Plan};

const HELP: &str = "\
taskhost-bench: taskhost-executor against its peers; writes target/bench/report.{md,json,svg}

USAGE:
  taskhost-bench [--quick] [--scenario NAME]... [--contender NAME]... [--out DIR] [--no-python]

OPTIONS:
  --quick             fewer tasks and repetitions (under 2 minutes on 2 cores)
  --scenario NAME     run only this scenario (repeatable): throughput, round-trip,
                      many-submitters, cold-start, plugin-call, host-e2e, memory, idle,
                      cluster, or 1-9
  --contender NAME    run only this Rust contender (repeatable; the floor is always run)
  --out DIR           where the report goes (default: <workspace>/target/bench)
  --no-python         leave the Python contender out (e.g. while profiling)
  -h, --help          this text
";

fn main() -> ExitCode {
    // smol's `blocking` reads its thread limit once, on first use; every scenario gives each pool
    // two workers (and scenario 7 relies on exactly two to block), so set it, overriding any
    // value from the environment, before any other thread exists. Children inherit it.
    env::set_var("BLOCKING_MAX_THREADS", scenarios::WORKERS.to_string());
    match run() {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// What the command line asked for.
#[derive(Debug)]
struct Arguments {
    quick: bool,
    scenarios: Vec<&'static str>,
    contenders: Vec<Contender>,
    out: PathBuf,
}

fn run() -> Result<ExitCode> {
    let raw: Vec<String> = env::args().skip(1).collect();
    if raw.first().map(String::as_str) == Some("__child") {
        return child(&raw[1..]).map(|()| ExitCode::SUCCESS);
    }
    if raw
        .iter()
        .any(|argument| argument == "-h" || argument == "--help")
    {
        print!("{HELP}");
        return Ok(ExitCode::SUCCESS);
    }
    let arguments = parse(&raw)?;
    let plan = if arguments.quick {
        Plan::quick()
    } else {
        Plan::full()
    };
    let mut report = Report {
        quick: arguments.quick,
        started_utc: report::now_utc(),
        machine: Machine::detect(),
        plan: plan.clone(),
        scenarios: Vec::new(),
        targets: Vec::new(),
    };
    for key in &arguments.scenarios {
        let scenario = runner::run_scenario(key, &plan, &arguments.contenders)?;
        report.scenarios.push(scenario);
        report.targets = targets::check_all(&report.scenarios);
        // Write after every scenario, so that an interrupted full run still leaves a report.
        report.write(&arguments.out)?;
    }
    print!("{}", report.markdown());
    eprintln!("wrote {}/report.{{md,json,svg}}", arguments.out.display());
    Ok(ExitCode::SUCCESS)
}

fn parse(raw: &[String]) -> Result<Arguments> {
    let mut arguments = Arguments {
        quick: false,
        scenarios: Vec::new(),
        contenders: Vec::new(),
        out: workspace_root().join("target").join("bench"),
    };
    let mut raw = raw.iter();
    while let Some(argument) = raw.next() {
        let mut value = |flag: &str| raw.next().with_context(|| format!("{flag} needs a value"));
        match argument.as_str() {
            "--quick" => arguments.quick = true,
            "--scenario" => arguments
                .scenarios
                .push(runner::scenario_by_name(value("--scenario")?)?.1),
            "--contender" => arguments
                .contenders
                .push(Contender::from_key(value("--contender")?)?),
            "--out" => arguments.out = PathBuf::from(value("--out")?),
            "--no-python" => python::disable(),
            // `cargo bench` passes `--bench`; accept and ignore it.
            "--bench" => {}
            other => bail!("unexpected argument `{other}`\n\n{HELP}"),
        }
    }
    if arguments.scenarios.is_empty() {
        arguments.scenarios = runner::SCENARIOS.iter().map(|(_, key)| *key).collect();
    }
    if arguments.contenders.is_empty() {
        arguments.contenders = Contender::ALL.to_vec();
    } else if !arguments.contenders.contains(&Contender::Floor) {
        arguments.contenders.insert(0, Contender::Floor);
    }
    Ok(arguments)
}

/// The workspace root, two levels above this crate's manifest.
fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .nth(2)
        .map_or(manifest.clone(), PathBuf::from)
}

/// The hidden child processes of scenarios 1 (the kept-heap note), 4 (global pools), 6, 7 and 8; each prints one JSON
/// value on stdout.
fn child(arguments: &[String]) -> Result<()> {
    let argument = |index: usize| {
        arguments
            .get(index)
            .map(String::as_str)
            .with_context(|| format!("__child: missing argument {index}"))
    };
    let json = match argument(0)? {
        "memory" => {
            let contender = Contender::from_key(argument(1)?)?;
            let tasks = argument(2)?.parse().context("__child memory: task count")?;
            serde_json::to_string(&scenarios::memory_child(contender, tasks)?)?
        }
        "idle" => {
            let contender = match argument(1)? {
                "none" => None,
                key => Some(Contender::from_key(key)?),
            };
            let seconds = argument(2)?.parse().context("__child idle: seconds")?;
            serde_json::to_string(&scenarios::idle_child(contender, seconds)?)?
        }
        "cold-start" => {
            let contender = Contender::from_key(argument(1)?)?;
            serde_json::to_string(&scenarios::first_task_ns(contender)?)?
        }
        "throughput" => {
            let contender = Contender::from_key(argument(1)?)?;
            let tasks = argument(2)?
                .parse()
                .context("__child throughput: task count")?;
            let reps = argument(3)?
                .parse()
                .context("__child throughput: repetitions")?;
            serde_json::to_string(&scenarios::throughput(contender, tasks, reps)?)?
        }
        "json-floor" => {
            external::json_floor_child(Path::new(argument(1)?), Path::new(argument(2)?))?;
            "{}".to_owned()
        }
        other => bail!("unknown child command `{other}`"),
    };
    println!("{json}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_strs(arguments: &[&str]) -> Result<Arguments> {
        parse(
            &arguments
                .iter()
                .map(|argument| argument.to_string())
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn no_arguments_run_everything() {
        let arguments = parse_strs(&[]).unwrap();
        assert!(!arguments.quick);
        assert_eq!(arguments.scenarios.len(), runner::SCENARIOS.len());
        assert_eq!(arguments.contenders, Contender::ALL);
        assert!(arguments.out.ends_with("target/bench"));
    }

    #[test]
    fn scenarios_by_name_or_number_and_the_floor_always_runs() {
        let arguments = parse_strs(&[
            "--quick",
            "--scenario",
            "3",
            "--scenario",
            "idle",
            "--contender",
            "rayon",
        ])
        .unwrap();
        assert!(arguments.quick);
        assert_eq!(arguments.scenarios, ["many-submitters", "idle"]);
        assert_eq!(arguments.contenders, [Contender::Floor, Contender::Rayon]);
    }

    #[test]
    fn bad_arguments_are_errors() {
        assert!(parse_strs(&["--scenario", "nine"]).is_err());
        assert!(parse_strs(&["--scenario"]).is_err());
        assert!(parse_strs(&["--contender", "async-std"]).is_err());
        assert!(parse_strs(&["--fast"]).is_err());
    }
}
