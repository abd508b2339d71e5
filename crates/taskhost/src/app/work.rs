//! `taskhost run` (and the end of `demo`): its set-up, `--dry-run`, and running the items
//! through the dispatcher.

use std::io::{self};
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};

use crate::cli::{Cli, RunArgs};
use crate::config::settings::Settings;
use crate::dispatch::{self, RunOptions};
use crate::routing::RouteOverrides;
use crate::signals::{Interrupts, INTERRUPTED_EXIT};
use crate::sink::{JsonlSink, OutcomeSink};
use crate::source::WorkSource;
use crate::telemetry::{self, SharedBar};

use super::host::Host;
use super::inputs::{open_sink, open_source};
use super::{
    init_telemetry, load_settings, usage, Failure, OrExit, EXIT_NOT_ALL_OK, EXIT_OK,
    EXIT_OUTPUT_CLOSED, EXIT_USAGE,
};

/// `taskhost run`.
/// What `run` and `demo` set up alike, before their plugins load: tracing (around the progress
/// bar) and the signal handlers.
pub(super) struct Session {
    pub(super) bar: SharedBar,
    pub(super) interrupts: Arc<Interrupts>,
    _telemetry: telemetry::TelemetryGuard,
}

pub(super) fn start_run(cli: &Cli, settings: &Settings) -> Result<Session, Failure> {
    let bar = SharedBar::default();
    let telemetry = init_telemetry(cli, settings, &bar)?;
    let interrupts = Interrupts::install().or_exit(EXIT_NOT_ALL_OK)?;
    Ok(Session {
        bar,
        interrupts,
        _telemetry: telemetry,
    })
}

pub(super) fn run_work(cli: &Cli, args: &RunArgs, file: Option<&Path>) -> Result<u8, Failure> {
    if args.old_jobs.is_some() {
        return Err(usage(anyhow::anyhow!(crate::cli::OLD_JOBS)));
    }
    let (mut settings, _) = load_settings(file)?;
    if let Some(workers) = args.workers {
        for pool in settings.pools.values_mut() {
            pool.max_workers = workers;
        }
    }
    let overrides = RouteOverrides {
        retries: args.retries,
        timeout: args.timeout,
    };
    let session = start_run(cli, &settings)?;
    // Before any plugin is loaded: its constructors may print already.
    let stdout = (args.output == "-")
        .then(|| crate::sink::take_stdout().or_exit(EXIT_USAGE))
        .transpose()?;
    let host = Host::load(&settings, cli, overrides)?;
    let progress = !cli.global.no_progress;
    if let Some(task) = &args.task {
        if host.catalog.get(task).is_none() {
            return Err(usage(anyhow::anyhow!("{}", host.catalog.unknown(task))));
        }
    }
    let previous = match &args.resume_failed {
        Some(path) => Some(
            crate::rerun::read(path)
                .with_context(|| format!("--resume-failed {}", path.display()))
                .or_exit(EXIT_USAGE)?,
        ),
        None => None,
    };
    let rerun_source =
        |source: Box<dyn WorkSource>, previous: &mut Option<crate::rerun::Previous>| match previous
        {
            Some(previous) => {
                let succeeded = std::mem::take(&mut previous.succeeded);
                let source = dispatch::journal::ResumeSource::new(source, succeeded);
                let skipped = source.skipped();
                (Box::new(source) as Box<dyn WorkSource>, Some(skipped))
            }
            None => (source, None),
        };
    let mut previous = previous;
    if args.dry_run {
        let (mut source, _) = rerun_source(
            open_source(args, &settings, &host, progress)?,
            &mut previous,
        );
        return dry_run(&mut *source, &host, stdout, &args.output, cli.global.quiet);
    }
    // The journal first: refusing it must not clobber the output file.
    let journal = match &args.journal {
        Some(path) => {
            let generated = match (&args.expand, args.config_jobs, &args.task) {
                (Some(task), _, _) => Some(format!("--expand {task} --params {}", args.params)),
                (None, true, _) => Some("--config-jobs".to_owned()),
                (None, false, Some(task)) if args.lines.is_none() && !args.args.is_empty() => {
                    Some(format!("{task} {}", args.args.join(" ")))
                }
                _ => None,
            };
            let input = args.lines.as_deref().or(args.input.as_deref());
            let identity = dispatch::journal::JournalHeader::new(input, generated, &args.output);
            Some(
                dispatch::journal::Journal::open(path, args.resume, &identity)
                    .or_exit(EXIT_USAGE)?,
            )
        }
        None => None,
    };
    let (source, rerun_skipped) = rerun_source(
        open_source(args, &settings, &host, progress)?,
        &mut previous,
    );
    let output = Path::new(&args.output);
    let sink: Box<dyn OutcomeSink> = match stdout {
        Some(stdout) => crate::sink::stdout_sink(stdout)
            .context("opening stdout for the outcome records")
            .or_exit(EXIT_USAGE)?,
        None if previous
            .as_ref()
            .is_some_and(|p| crate::rerun::is_same_file(output, &p.records)) =>
        {
            // Its records that are not `ok` are redone by this run: out with them first.
            let file = crate::rerun::keep_only_successes(output)
                .and_then(JsonlSink::file)
                .with_context(|| format!("rewriting output {} to resume", args.output))
                .or_exit(EXIT_USAGE)?;
            Box::new(file)
        }
        None if args.resume => {
            // Resuming appends to the output (a torn last record is cut off).
            let file = crate::sink::open_for_append(Path::new(&args.output))
                .and_then(JsonlSink::file)
                .with_context(|| format!("opening output {} to append", args.output))
                .or_exit(EXIT_USAGE)?;
            Box::new(file)
        }
        None => open_sink(&args.output)?,
    };
    let (source, sink, journal) = match journal {
        Some((journal, contents)) => {
            let (source, sink, report) =
                dispatch::journal::attach(journal, contents, args.resume, source, sink);
            (source, sink, Some(report))
        }
        None => (source, sink, None),
    };
    let code = execute(
        cli,
        &settings,
        host,
        source,
        sink,
        args.ordered,
        &session.interrupts,
        &session.bar,
    )?;
    if let Some(journal) = journal.filter(|_| !cli.global.quiet) {
        eprint!("{journal}");
    }
    if let (Some(previous), Some(skipped)) = (previous.filter(|_| !cli.global.quiet), rerun_skipped)
    {
        eprintln!(
            "  resume-failed: skipped {} items that succeeded in {} ({} records there were not ok)",
            skipped.load(std::sync::atomic::Ordering::Relaxed),
            previous.records.display(),
            previous.not_ok
        );
    }
    Ok(code)
}

/// `run --dry-run`: each item and where it would run, to the output; exit 1 when some item
/// would not run.
pub(super) fn dry_run(
    source: &mut dyn WorkSource,
    host: &Host,
    stdout: Option<crate::sink::Stdout>,
    output: &str,
    quiet: bool,
) -> Result<u8, Failure> {
    let writer: Box<dyn io::Write> = match stdout {
        Some(stdout) => Box::new(stdout),
        None => Box::new(
            crate::sink::create_output(Path::new(output))
                .with_context(|| format!("creating output {output}"))
                .or_exit(EXIT_USAGE)?,
        ),
    };
    let mut writer = io::BufWriter::new(writer);
    match crate::dry_run::print(source, &host.catalog, &mut writer) {
        Ok(found) => {
            if !quiet {
                eprintln!(
                    "taskhost: dry run: {} items, {} would run, {} would not; nothing was run",
                    found.items,
                    found.items - found.refused,
                    found.refused
                );
            }
            Ok(if found.refused == 0 {
                EXIT_OK
            } else {
                EXIT_NOT_ALL_OK
            })
        }
        Err(error) if error.kind() == io::ErrorKind::BrokenPipe => Ok(EXIT_OUTPUT_CLOSED),
        Err(error) => Err(Failure {
            code: EXIT_NOT_ALL_OK,
            error: anyhow::Error::new(error).context("dry run"),
        }),
    }
}

#[allow(clippy::too_many_arguments)]
pub(super) fn execute(
    cli: &Cli,
    settings: &Settings,
    host: Host,
    source: Box<dyn WorkSource>,
    sink: Box<dyn OutcomeSink>,
    ordered: bool,
    interrupts: &Arc<Interrupts>,
    bar: &SharedBar,
) -> Result<u8, Failure> {
    let options = RunOptions {
        ordered,
        max_in_flight: settings.run.max_in_flight,
        shutdown_grace: settings.run.shutdown_grace,
        progress: !cli.global.no_progress,
        control: Default::default(),
    };
    let Host {
        plugins,
        pools,
        catalog,
        ..
    } = host;
    let report = dispatch::run(source, sink, &catalog, pools, &options, interrupts, bar)
        .or_exit(EXIT_NOT_ALL_OK)?;
    // The plugins stay loaded until the process ends (libraries are never unloaded).
    std::mem::forget(plugins);
    if !cli.global.quiet {
        eprint!("{}", report.summary);
    }
    if let Some(error) = &report.source_error {
        eprintln!("taskhost: error: {error}");
    }
    Ok(if report.summary.output_closed {
        EXIT_OUTPUT_CLOSED
    } else if report.summary.interrupted {
        INTERRUPTED_EXIT as u8
    } else if report.source_error.is_some() || !report.summary.all_ok() {
        EXIT_NOT_ALL_OK
    } else {
        EXIT_OK
    })
}
