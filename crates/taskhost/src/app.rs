//! The commands: each turns parsed arguments and settings into calls on the other modules.
//!
//! Exit codes: 0 every item ok; 1 some item did not succeed (or the run failed part-way);
//! 2 usage or configuration error; 130 interrupted; 141 the output was closed.

use std::fs::File;
use std::io::{self, BufReader, IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Parser;
use serde_json::value::RawValue;
use taskhost_loader::{LoadOptions, PluginSet};

use crate::cli::{Cli, Command, ConfigCommand, LogFormatArg, RunArgs};
use crate::config::settings::{self, Isolation, JobSettings, LogFormat, Settings};
use crate::dispatch::{self, Catalog, Pools, RunOptions};
use crate::expand::{ExpandSource, JobItems, JobsSource};
use crate::plugin_facts::PluginFacts;
use crate::routing::{RouteOverrides, Router};
use crate::signals::{Interrupts, INTERRUPTED_EXIT};
use crate::sink::{JsonlSink, OutcomeSink};
use crate::source::{ItemsSource, JsonlSource, PlainInput, PlainLinesSource, WorkItem, WorkSource};
use crate::telemetry::{self, SharedBar};

/// Exit status: every item succeeded.
pub const EXIT_OK: u8 = 0;
/// Exit status: some item did not succeed, or the run failed part-way.
pub const EXIT_NOT_ALL_OK: u8 = 1;
/// Exit status: usage or configuration error.
pub const EXIT_USAGE: u8 = 2;
/// Exit status: the output's reader went away (`taskhost run | head -1`), which stopped the
/// run: 128 + SIGPIPE, what a shell reports for a tool killed by a closed pipe.
pub const EXIT_OUTPUT_CLOSED: u8 = 141;

/// An error and the exit status it maps to.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub error: anyhow::Error,
}

pub(crate) trait OrExit<T> {
    fn or_exit(self, code: u8) -> Result<T, Failure>;
}

impl<T, E: Into<anyhow::Error>> OrExit<T> for Result<T, E> {
    fn or_exit(self, code: u8) -> Result<T, Failure> {
        self.map_err(|error| Failure {
            code,
            error: error.into(),
        })
    }
}

/// Parses the command line, runs the command and returns the exit status.
pub fn run_cli() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return ExitCode::from(if error.use_stderr() {
                EXIT_USAGE
            } else {
                EXIT_OK
            });
        }
    };
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            eprintln!("taskhost: error: {:#}", failure.error);
            ExitCode::from(failure.code)
        }
    }
}

/// The config file: `--config`, else `TASKHOST_CONFIG`.
fn config_path(cli: &Cli) -> Option<PathBuf> {
    cli.global
        .config
        .clone()
        .or_else(|| std::env::var_os("TASKHOST_CONFIG").map(PathBuf::from))
        .filter(|p| !p.as_os_str().is_empty())
}

pub(crate) fn load_settings(file: Option<&Path>) -> Result<(Settings, Vec<String>), Failure> {
    let env: Vec<(String, String)> = std::env::vars().collect();
    let loaded = crate::config::load(file, &env).or_exit(EXIT_USAGE)?;
    Ok((loaded.settings, loaded.sources))
}

/// Runs one parsed command line.
pub fn run(cli: Cli) -> Result<u8, Failure> {
    let file = config_path(&cli);
    match &cli.command {
        Command::ServeWorker => serve_worker(file.as_deref()),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            // Without the hidden commands, which clap_complete would offer too.
            let full = Cli::command();
            let mut visible = clap::Command::new("taskhost")
                .version(env!("CARGO_PKG_VERSION"))
                .args(full.get_arguments().cloned());
            for command in full.get_subcommands().filter(|c| !c.is_hide_set()) {
                visible = visible.subcommand(command.clone());
            }
            let mut script = Vec::new();
            clap_complete::generate(*shell, &mut visible, "taskhost", &mut script);
            match io::Write::write_all(&mut io::stdout().lock(), &script) {
                Ok(()) => Ok(EXIT_OK),
                Err(error) if error.kind() == io::ErrorKind::BrokenPipe => Ok(EXIT_OUTPUT_CLOSED),
                Err(error) => Err(error)
                    .context("writing the completion script")
                    .or_exit(EXIT_NOT_ALL_OK),
            }
        }
        Command::Man { dir } => {
            use clap::CommandFactory;
            std::fs::create_dir_all(dir)
                .and_then(|()| clap_mangen::generate_to(Cli::command(), dir))
                .with_context(|| format!("writing the man pages into {}", dir.display()))
                .or_exit(EXIT_NOT_ALL_OK)?;
            Ok(EXIT_OK)
        }
        Command::Config(ConfigCommand::Show) => {
            let (settings, sources) = load_settings(file.as_deref())?;
            let text = toml::to_string(&settings::to_raw(&settings))
                .context("printing the configuration as TOML")
                .or_exit(EXIT_NOT_ALL_OK)?;
            println!(
                "# The effective configuration, from: {}\n",
                sources.join(", then ")
            );
            print!("{text}");
            Ok(EXIT_OK)
        }
        Command::Config(ConfigCommand::Check { file: checked }) => {
            let Some(checked) = checked.clone().or(file) else {
                return Err(Failure {
                    code: EXIT_USAGE,
                    error: anyhow::anyhow!(
                        "expected a file to check (`taskhost config check FILE` or --config FILE)"
                    ),
                });
            };
            let (settings, _) = load_settings(Some(&checked))?;
            // Routes that match no loaded task are probably typos: warn, do not fail.
            if let Ok((plugins, _)) =
                PluginSet::load(&settings.plugins.dirs, &load_options(&settings, false))
            {
                let names: Vec<String> =
                    plugins.tasks().map(|t| t.full_name().to_owned()).collect();
                if !names.is_empty() {
                    for route in Router::new(settings.routes.clone()).unused(&names) {
                        eprintln!(
                            "taskhost: warning: {}: route `{}` matches no loaded task",
                            checked.display(),
                            route.task
                        );
                    }
                }
            }
            println!(
                "{}: ok ({} pools, {} routes, {} jobs)",
                checked.display(),
                settings.pools.len(),
                settings.routes.len(),
                settings.jobs.len()
            );
            Ok(EXIT_OK)
        }
        Command::Plugins(args) => {
            let (settings, _) = load_settings(file.as_deref())?;
            let _guard = init_telemetry(&cli, &settings, &SharedBar::default())?;
            let host = Host::load(&settings, &cli, RouteOverrides::default())?;
            if args.pins {
                print_pins(&host, &settings)?;
            } else {
                print_plugins(&host);
            }
            Ok(EXIT_OK)
        }
        Command::Run(args) => run_work(&cli, args, file.as_deref()),
        Command::Worker(args) => crate::cluster::worker(&cli, args, file.as_deref()),
        Command::Submit(args) => crate::cluster::submit(&cli, args, file.as_deref()),
        Command::Cluster(command) => crate::cluster::status(&cli, command, file.as_deref()),
        Command::Demo(args) => {
            let (settings, _) = load_settings(file.as_deref())?;
            let bar = SharedBar::default();
            let _guard = init_telemetry(&cli, &settings, &bar)?;
            let interrupts = Interrupts::install().or_exit(EXIT_NOT_ALL_OK)?;
            let host = Host::load(&settings, &cli, RouteOverrides::default())?;
            if host.plugins.plugins().is_empty() {
                return Err(Failure {
                    code: EXIT_USAGE,
                    error: anyhow::anyhow!(
                        "no plugins found in {}: build them with `cargo xtask build-plugins` and \
                         name target/plugins in [plugins] dirs, or run `cargo xtask demo`",
                        display_dirs(&settings.plugins.dirs)
                    ),
                });
            }
            let items = job_items(&settings.jobs, &host)?;
            eprintln!(
                "taskhost demo: {} from {} jobs in the configuration, on pools {}",
                match items.len_hint() {
                    Some(n) => format!("{n} work items"),
                    None => "work items".to_owned(),
                },
                settings.jobs.len(),
                settings
                    .pools
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let source: Box<dyn WorkSource> = Box::new(items);
            let sink: Box<dyn OutcomeSink> = match &args.output {
                Some(output) => open_sink(output)?,
                None => Box::new(JsonlSink::new(io::sink())),
            };
            execute(
                &cli,
                &settings,
                host,
                source,
                sink,
                false,
                &interrupts,
                &bar,
            )
        }
    }
}

/// `taskhost run`.
fn run_work(cli: &Cli, args: &RunArgs, file: Option<&Path>) -> Result<u8, Failure> {
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
    let bar = SharedBar::default();
    let _guard = init_telemetry(cli, &settings, &bar)?;
    // Before any plugin is loaded: its constructors may print already.
    let stdout = (args.output == "-")
        .then(|| crate::sink::take_stdout().or_exit(EXIT_USAGE))
        .transpose()?;
    let interrupts = Interrupts::install().or_exit(EXIT_NOT_ALL_OK)?;
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
        &interrupts,
        &bar,
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

/// `; did you mean `close`?` when a candidate is close to `name`, else nothing.
fn suggestion<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    dispatch::did_you_mean(name, candidates)
        .map(|close| format!("; did you mean `{close}`?"))
        .unwrap_or_default()
}

/// A usage error (exit 2).
fn usage(error: anyhow::Error) -> Failure {
    Failure {
        code: EXIT_USAGE,
        error,
    }
}

/// `run --dry-run`: each item and where it would run, to the output; exit 1 when some item
/// would not run.
fn dry_run(
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

pub(crate) fn init_telemetry(
    cli: &Cli,
    settings: &Settings,
    bar: &SharedBar,
) -> Result<telemetry::TelemetryGuard, Failure> {
    let format = match cli.global.log_format {
        Some(LogFormatArg::Pretty) => LogFormat::Pretty,
        Some(LogFormatArg::Compact) => LogFormat::Compact,
        Some(LogFormatArg::Json) => LogFormat::Json,
        None => settings.logging.format,
    };
    telemetry::init(
        format,
        &settings.logging.filter,
        cli.global.trace_chrome.as_deref(),
        Arc::clone(bar),
    )
    .or_exit(EXIT_USAGE)
}

/// Plugins, pools and routes, ready to run.
pub(crate) struct Host {
    pub(crate) plugins: PluginSet,
    pub(crate) pools: Pools,
    pub(crate) catalog: Catalog,
    router: Router,
}

impl Host {
    pub(crate) fn load(
        settings: &Settings,
        cli: &Cli,
        overrides: RouteOverrides,
    ) -> Result<Self, Failure> {
        let options = load_options(settings, settings.plugins.strict);
        let (plugins, skipped) = PluginSet::load(&settings.plugins.dirs, &options)
            .context("loading plugins")
            .or_exit(EXIT_USAGE)?;
        if plugins.plugins().is_empty() {
            tracing::warn!(
                target: "taskhost",
                dirs = %display_dirs(&settings.plugins.dirs),
                skipped = skipped.len(),
                "no plugins loaded"
            );
        }
        let router = Router::new(settings.routes.clone()).with_overrides(overrides);
        let worker_process = worker_process(settings, cli).or_exit(EXIT_USAGE)?;
        let pools = Pools::build(settings, worker_process.as_ref()).or_exit(EXIT_USAGE)?;
        let catalog = Catalog::new(&plugins, &router, &pools).or_exit(EXIT_USAGE)?;
        let names = catalog.names();
        if !names.is_empty() {
            for route in router.unused(&names) {
                tracing::warn!(
                    target: "taskhost",
                    route = %route.task,
                    pool = %route.pool,
                    "route matches no loaded task"
                );
            }
        }
        Ok(Self {
            plugins,
            pools,
            catalog,
            router,
        })
    }
}

/// How an isolated pool starts its worker processes: this binary again, with the same
/// configuration file (the environment, and with it `TASKHOST_*` settings, is inherited).
/// `None` when no pool is isolated.
#[cfg(unix)]
fn worker_process(settings: &Settings, cli: &Cli) -> Result<Option<dispatch::WorkerProcess>> {
    use crate::isolation::{ChildSpec, SERVE_COMMAND};
    if !settings
        .pools
        .values()
        .any(|pool| pool.isolation == Isolation::Process)
    {
        return Ok(None);
    }
    let program = std::env::current_exe().context("finding this program, to start workers")?;
    let mut args = Vec::new();
    if let Some(config) = &cli.global.config {
        args.push("--config".into());
        args.push(config.clone().into_os_string());
    }
    args.push(SERVE_COMMAND.into());
    Ok(Some(Arc::new(ChildSpec::new(program, args))))
}

#[cfg(not(unix))]
fn worker_process(_: &Settings, _: &Cli) -> Result<Option<dispatch::WorkerProcess>> {
    Ok(None)
}

/// `taskhost __serve-worker`: one worker process of an isolated pool. It loads the plugins as
/// the host did (same folders, trust rules and pins) and serves its host worker's tasks; it
/// logs nothing of its own (what it prints reaches the host's log as `plugin.output`).
fn serve_worker(file: Option<&Path>) -> Result<u8, Failure> {
    #[cfg(unix)]
    {
        let plugins = load_settings(file)
            .map_err(|failure| format!("{:#}", failure.error))
            .and_then(|(settings, _)| {
                let options = load_options(&settings, settings.plugins.strict);
                PluginSet::load(&settings.plugins.dirs, &options)
                    .map(|(plugins, _)| plugins)
                    .map_err(|error| format!("loading plugins: {error:#}"))
            });
        crate::isolation::serve(plugins).or_exit(EXIT_NOT_ALL_OK)?;
        Ok(EXIT_OK)
    }
    #[cfg(not(unix))]
    {
        let _ = file;
        Err(Failure {
            code: EXIT_USAGE,
            error: anyhow::anyhow!("isolated pools need a Unix system"),
        })
    }
}

/// The loader's options from the settings: `strict`, and the trust pins.
fn load_options(settings: &Settings, strict: bool) -> LoadOptions {
    LoadOptions {
        strict,
        pins: settings.plugins.pins.clone(),
        require_pins: settings.plugins.require_pins,
    }
}

/// `taskhost plugins --pins`: the loaded plugins' checksums as a `[plugins.pins]` table.
fn print_pins(host: &Host, settings: &Settings) -> Result<(), Failure> {
    let mut lines = Vec::new();
    for plugin in host.plugins.plugins() {
        let sum = plugin
            .sha256()
            .with_context(|| format!("reading {}", plugin.path().display()))
            .or_exit(EXIT_NOT_ALL_OK)?;
        let name = plugin.name();
        let key = if name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            name.to_owned()
        } else {
            format!("{name:?}")
        };
        lines.push(format!(
            "{key} = \"{sum}\"  # version {}, {}",
            plugin.version(),
            plugin.path().display()
        ));
    }
    println!(
        "# SHA-256 pins (`taskhost plugins --pins`): {} plugin(s) loaded from {}.\n\
         # Paste into the configuration; with `require_pins = true` under [plugins], no other\n\
         # library is opened.\n[plugins.pins]",
        lines.len(),
        display_dirs(&settings.plugins.dirs)
    );
    for line in lines {
        println!("{line}");
    }
    Ok(())
}

fn display_dirs(dirs: &[PathBuf]) -> String {
    if dirs.is_empty() {
        // The default folder is below $XDG_DATA_HOME or $HOME, and neither is set.
        return "no folder (set [plugins] dirs, or HOME for the default one)".to_owned();
    }
    dirs.iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn print_plugins(host: &Host) {
    if host.plugins.plugins().is_empty() {
        println!("no plugins loaded");
        return;
    }
    for plugin in host.plugins.plugins() {
        let facts = PluginFacts::of(plugin);
        let mut notes = String::new();
        if plugin.can_expand() {
            notes.push_str("  [expands jobs");
            if !facts.expand_jobs.is_empty() {
                notes.push_str(&format!(": {}", facts.expand_jobs.join(", ")));
            }
            notes.push(']');
        }
        if facts.debug_build == Some(true) {
            notes.push_str(
                "  [debug build: tasks run several times slower; build it with --release]",
            );
        }
        println!(
            "{} {}  ({}){notes}",
            plugin.name(),
            plugin.version(),
            plugin.path().display(),
        );
        for task in plugin.tasks() {
            let full = format!("{}/{}", plugin.name(), task.name);
            let decision = host.router.route(&full);
            let mut routing = format!("pool {}", decision.pool);
            if host
                .pools
                .index(&decision.pool)
                .is_some_and(|pool| host.pools.settings[pool].isolation == Isolation::Process)
            {
                routing.push_str(" (isolated)");
            }
            if decision.retry.retries > 0 {
                routing.push_str(&format!(", retries {}", decision.retry.retries));
            }
            if let Some(timeout) = decision.timeout {
                routing.push_str(&format!(
                    ", timeout {}",
                    crate::config::duration::format_duration(timeout)
                ));
            }
            if let Some(field) = facts.arguments.get(&task.name) {
                routing.push_str(&format!(", ARG is `{field}`"));
            }
            println!("  {full:<24} -> {routing:<28} {}", task.description);
        }
    }
}

fn open_source(
    args: &RunArgs,
    settings: &Settings,
    host: &Host,
    progress: bool,
) -> Result<Box<dyn WorkSource>, Failure> {
    if let Some(task) = &args.expand {
        let params: serde_json::Value = serde_json::from_str(&args.params)
            .with_context(|| format!("--params: expected JSON, found {:?}", args.params))
            .or_exit(EXIT_USAGE)?;
        let job = JobSettings::Expand {
            task: task.clone(),
            params,
        };
        return Ok(Box::new(job_items(&[job], host)?));
    }
    if args.config_jobs {
        return Ok(Box::new(job_items(&settings.jobs, host)?));
    }
    let limit = settings.run.max_line_bytes;
    if let Some(task) = &args.task {
        let field = args.field.clone().or_else(|| {
            let plugin = host.plugins.plugin(task.split_once('/')?.0)?;
            let task_name = task.split_once('/')?.1;
            PluginFacts::of(plugin).arguments.remove(task_name)
        });
        let plain = PlainInput {
            task: task.clone(),
            field,
        };
        if args.lines.is_none() && !args.args.is_empty() {
            return Ok(Box::new(ItemsSource::new(plain.items(&args.args))));
        }
        let lines = open_lines(
            args.lines.as_deref(),
            limit,
            progress,
            StdinNotice::PLAIN_LINES,
        )?;
        return Ok(Box::new(PlainLinesSource::new(lines, plain)));
    }
    let lines = open_lines(
        args.input.as_deref(),
        limit,
        progress,
        StdinNotice::JSON_LINES,
    )?;
    Ok(Box::new(lines))
}

/// What a terminal on stdin is told it is read for.
struct StdinNotice {
    /// What to type there.
    what: &'static str,
    /// How to give them otherwise.
    instead: &'static str,
}

impl StdinNotice {
    const JSON_LINES: StdinNotice = StdinNotice {
        what: "work items, one JSON object per line",
        instead: "--input FILE",
    };
    const PLAIN_LINES: StdinNotice = StdinNotice {
        what: "one line of text per work item",
        instead: "--lines FILE, or arguments after the task",
    };
}

/// The lines of `path` (`-` or `None`: stdin, with a word when it is a terminal).
fn open_lines(
    path: Option<&str>,
    limit: usize,
    progress: bool,
    notice: StdinNotice,
) -> Result<JsonlSource<Box<dyn io::BufRead + Send>>, Failure> {
    match path {
        None | Some("-") => {
            let stdin = io::stdin();
            if stdin.is_terminal() {
                eprintln!(
                    "taskhost: reading {}, from stdin (a terminal); end with Ctrl-D, or give \
                     them otherwise ({})",
                    notice.what, notice.instead
                );
            }
            Ok(JsonlSource::new(Box::new(BufReader::new(stdin)), limit))
        }
        Some(path) => {
            let file = File::open(path)
                .with_context(|| format!("opening input {path}"))
                .or_exit(EXIT_USAGE)?;
            // Counting lines costs one quick pass; only worth it for a bar someone sees.
            let lines = (progress && io::stderr().is_terminal())
                .then(|| count_lines(Path::new(path)).ok())
                .flatten();
            let reader: Box<dyn io::BufRead + Send> =
                Box::new(BufReader::with_capacity(256 * 1024, file));
            Ok(JsonlSource::new(reader, limit).with_len_hint(lines))
        }
    }
}

fn count_lines(path: &Path) -> io::Result<u64> {
    let mut file = File::open(path)?;
    let mut buffer = vec![0u8; 256 * 1024];
    let mut lines = 0u64;
    let mut last = b'\n';
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        lines += buffer[..read].iter().filter(|&&b| b == b'\n').count() as u64;
        last = buffer[read - 1];
    }
    Ok(lines + u64::from(last != b'\n'))
}

fn open_sink(output: &str) -> Result<Box<dyn OutcomeSink>, Failure> {
    if output == "-" {
        let stdout = crate::sink::take_stdout().or_exit(EXIT_USAGE)?;
        return crate::sink::stdout_sink(stdout)
            .context("opening stdout for the outcome records")
            .or_exit(EXIT_USAGE);
    }
    let file = crate::sink::create_output(Path::new(output))
        .and_then(JsonlSink::file)
        .with_context(|| format!("creating output {output}"))
        .or_exit(EXIT_USAGE)?;
    Ok(Box::new(file))
}

/// Work items from the configuration's jobs (or one `--expand`).
fn job_items(jobs: &[JobSettings], host: &Host) -> Result<JobsSource, Failure> {
    let mut made = Vec::new();
    for job in jobs {
        match job {
            JobSettings::Expand { task, params } => {
                let Some((plugin_name, job_name)) = task.split_once('/') else {
                    return Err(usage(anyhow::anyhow!(
                        "expand: expected `plugin/job`, found {task:?}"
                    )));
                };
                let Some(plugin) = host.plugins.plugin(plugin_name) else {
                    let loaded: Vec<&str> =
                        host.plugins.plugins().iter().map(|p| p.name()).collect();
                    return Err(usage(anyhow::anyhow!(
                        "expand {task}: no plugin named `{plugin_name}` is loaded{} (loaded: {})",
                        suggestion(plugin_name, loaded.iter().copied()),
                        if loaded.is_empty() {
                            "none".to_owned()
                        } else {
                            loaded.join(", ")
                        }
                    )));
                };
                // The jobs the plugin says it takes (the SDK's `expand_jobs`); a plugin that
                // says nothing gets any job name and may refuse it itself.
                let jobs = PluginFacts::of(plugin).expand_jobs;
                if plugin.can_expand() && !jobs.is_empty() && !jobs.iter().any(|j| j == job_name) {
                    return Err(usage(anyhow::anyhow!(
                        "expand {task}: plugin `{plugin_name}` has no job `{job_name}`{} (its \
                         jobs: {})",
                        suggestion(job_name, jobs.iter().map(String::as_str)),
                        jobs.join(", ")
                    )));
                }
                let expansion =
                    ExpandSource::start(plugin, job_name, params).map_err(|failure| {
                        // The plugin refusing the parameters (or not expanding at all) is a usage
                        // error; a failure while expanding is not.
                        let code = if failure.kind == taskhost_loader::FailureKind::InvalidInput {
                            EXIT_USAGE
                        } else {
                            EXIT_NOT_ALL_OK
                        };
                        Failure {
                            code,
                            error: anyhow::Error::new(failure)
                                .context(format!("expanding {task} with {params}")),
                        }
                    })?;
                made.push(JobItems::Expand(expansion));
            }
            JobSettings::Inputs { task, inputs } => {
                let items: Vec<WorkItem> = (1..)
                    .zip(inputs)
                    .map(|(number, input)| WorkItem {
                        id: format!("{task}#{number}"),
                        task: task.clone(),
                        input: to_raw(input),
                    })
                    .collect();
                made.push(JobItems::Items(items.into_iter()));
            }
        }
    }
    Ok(JobsSource::new(made))
}

fn to_raw(value: &serde_json::Value) -> Box<RawValue> {
    RawValue::from_string(value.to_string()).expect("a serialized JSON value is JSON")
}

#[allow(clippy::too_many_arguments)]
fn execute(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_lines_with_or_without_a_final_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.jsonl");
        std::fs::write(&path, "a\nb\nc").unwrap();
        assert_eq!(count_lines(&path).unwrap(), 3);
        std::fs::write(&path, "a\nb\n").unwrap();
        assert_eq!(count_lines(&path).unwrap(), 2);
    }
}
