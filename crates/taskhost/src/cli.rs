//! The command line (clap derive). Parsing only: no I/O here.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::duration::parse_duration;
use crate::config::settings::limits;

/// Runs batches of work items through compiled task plugins on named thread pools.
#[derive(Debug, Parser)]
#[command(name = "taskhost", version, about, long_about = None)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Listed after each command's own flags in `--help`.
#[derive(Debug, Args)]
#[command(next_display_order = 1000)]
pub struct GlobalArgs {
    /// Configuration file layered over the embedded default [env: TASKHOST_CONFIG]
    #[arg(long, short = 'c', global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Log format on stderr; overrides `logging.format`
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormatArg>,
    /// Also write a Chrome / Perfetto trace (open it at ui.perfetto.dev)
    #[arg(long, global = true, value_name = "FILE")]
    pub trace_chrome: Option<PathBuf>,
    /// Never draw the progress bar (it is drawn only when stderr is a terminal anyway)
    #[arg(long, global = true)]
    pub no_progress: bool,
    /// Do not print the summary at the end
    #[arg(long, short = 'q', global = true)]
    pub quiet: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormatArg {
    Pretty,
    Compact,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run work items: JSON lines from --input, a plugin's expansion (--expand), or the config's jobs (--config-jobs)
    Run(Box<RunArgs>),
    /// List the loaded plugins, their versions and task types, and the pool each task routes to
    Plugins(PluginsArgs),
    /// Show or check the configuration
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Run the demo batch: the config's jobs (checksums of this repository, primes) with a summary
    Demo(DemoArgs),
    /// Print a shell completion script (`taskhost completions bash > ~/.local/share/bash-completion/completions/taskhost`)
    Completions {
        /// The shell
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write the man pages (taskhost.1 and one per command) into DIR: what `cargo xtask man` runs
    #[command(name = "__man", hide = true)]
    Man {
        /// The folder to write them in
        dir: PathBuf,
    },
    /// Serve a cluster's work items ([cluster] in the config) with this host's plugins and pools
    Worker(crate::cluster::WorkerArgs),
    /// Submit work items to a cluster's workers; write one outcome record per input line
    Submit(crate::cluster::SubmitArgs),
    /// Look at a cluster: its workers, queues and dead letters
    #[command(subcommand)]
    Cluster(crate::cluster::ClusterCommand),
    /// Serve one worker of an isolated pool (started by the host itself, never by hand)
    #[command(name = "__serve-worker", hide = true)]
    ServeWorker,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Run this task once per ARG, or per line of --lines (stdin when neither is given),
    /// without writing JSON: each becomes the input field the task names (see --field)
    #[arg(value_name = "PLUGIN/TASK", conflicts_with_all = ["input", "expand", "config_jobs"])]
    pub task: Option<String>,
    /// With PLUGIN/TASK: one work item per argument (write `--` before one that starts with `-`)
    #[arg(value_name = "ARG", requires = "task", conflicts_with = "lines")]
    pub args: Vec<String>,
    /// Work items as JSON lines; `-` is stdin (the default when no other source is given)
    #[arg(long, short = 'i', value_name = "FILE|-", conflicts_with_all = ["expand", "config_jobs"])]
    pub input: Option<String>,
    /// Where outcome records go, as JSON lines; `-` is stdout
    #[arg(long, short = 'o', value_name = "FILE|-", default_value = "-")]
    pub output: String,
    /// Write outcomes in input order instead of completion order
    #[arg(long)]
    pub ordered: bool,
    /// Ask a plugin to expand a job into work items: `plugin/job`
    #[arg(long, value_name = "PLUGIN/JOB", conflicts_with = "config_jobs")]
    pub expand: Option<String>,
    /// The job's parameters for --expand, as JSON
    #[arg(long, value_name = "JSON", requires = "expand", default_value = "{}")]
    pub params: String,
    /// Run the `[[jobs]]` of the configuration
    #[arg(long)]
    pub config_jobs: bool,
    /// The old name of --config-jobs, which read like parallel's `--jobs N`: refused with a
    /// word on both meanings
    #[arg(long = "jobs", hide = true, value_name = "N", num_args = 0..=1, value_parser = old_jobs)]
    pub old_jobs: Option<Option<String>>,
    /// With PLUGIN/TASK: one work item per line of FILE; `-` is stdin
    #[arg(long, value_name = "FILE|-", requires = "task")]
    pub lines: Option<String>,
    /// With PLUGIN/TASK: each line or argument becomes `{"FIELD": "…"}` (default: the field
    /// the task names, as `checksum/sha256` names `path`; else the text as a JSON string)
    #[arg(long, value_name = "FIELD", requires = "task")]
    pub field: Option<String>,
    /// Print each work item with where it would run (pool, timeout, retries) as JSON lines,
    /// without running any
    #[arg(long, conflicts_with_all = ["journal", "resume"])]
    pub dry_run: bool,
    /// Every pool runs at most N workers (overrides `max_workers`; a pool no item goes to
    /// starts no thread anyway)
    #[arg(long, short = 'j', value_name = "N", value_parser = workers, allow_hyphen_values = true)]
    pub workers: Option<usize>,
    /// Every task's attempts may run this long (overrides the routes' `timeout`), e.g. `30s`
    #[arg(long, value_name = "DURATION", value_parser = timeout)]
    pub timeout: Option<Duration>,
    /// Every task gets N retries after a failed, panicked or timed-out attempt (overrides
    /// the routes' `retries`)
    #[arg(long, value_name = "N", value_parser = retries, allow_hyphen_values = true)]
    pub retries: Option<u32>,
    /// Run only what did not succeed in a previous run: skip the ids with an `ok` record in
    /// FILE (that run's outcome records, or its journal); with --output FILE itself, its
    /// records that are not `ok` are replaced by this run's
    #[arg(long, value_name = "FILE", conflicts_with = "resume")]
    pub resume_failed: Option<PathBuf>,
    /// Append the id of each finished item (any status but `cancelled`) to FILE, durably
    #[arg(long, value_name = "FILE")]
    pub journal: Option<PathBuf>,
    /// Skip the items whose id is already in the --journal file (after a crash)
    #[arg(long, requires = "journal")]
    pub resume: bool,
}

/// `-j N`: a worker count within the configuration's range.
fn workers(text: &str) -> Result<usize, String> {
    let n = count_from(
        text,
        1,
        limits::MAX_WORKERS,
        "workers",
        " (each worker is a thread)",
    )?;
    Ok(n as usize)
}

/// `--retries N`: a retry count within the configuration's range.
fn retries(text: &str) -> Result<u32, String> {
    Ok(count_from(text, 0, limits::RETRIES, "retries", "")? as u32)
}

/// An integer from `min` to `max`, or an error that says so.
fn count_from(text: &str, min: i64, max: i64, what: &str, why: &str) -> Result<i64, String> {
    text.parse::<i64>()
        .ok()
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| {
            format!("expected a number of {what} from {min} to {max}{why}, found {text:?}")
        })
}

/// `--jobs`: never accepted; says what to write instead.
fn old_jobs(_: &str) -> Result<String, String> {
    Err(OLD_JOBS.to_owned())
}

/// What `--jobs` says.
pub const OLD_JOBS: &str = "`--jobs` is gone: write `--config-jobs` to run the configuration's \
                            [[jobs]], or `-j N` / `--workers N` for N workers";

/// `--timeout DURATION`: a duration as the configuration writes it, more than zero.
fn timeout(text: &str) -> Result<Duration, String> {
    match parse_duration(text)? {
        Duration::ZERO => Err(format!(
            "expected a timeout longer than zero, found {text:?}"
        )),
        duration => Ok(duration),
    }
}

#[derive(Debug, Args)]
pub struct PluginsArgs {
    /// Print the SHA-256 pins of the loaded plugins as TOML (`[plugins.pins]`), to paste into the config
    #[arg(long)]
    pub pins: bool,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where outcome records go, as JSON lines (default: discarded; the summary is printed)
    #[arg(long, short = 'o', value_name = "FILE|-")]
    pub output: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the effective configuration (defaults, file, environment) as TOML
    Show,
    /// Check a configuration file (default: the one --config names); exit 2 with the errors
    Check {
        /// The file to check
        file: Option<PathBuf>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_go_after_the_subcommand_too() {
        let cli =
            Cli::try_parse_from(["taskhost", "run", "--ordered", "--config", "x.toml"]).unwrap();
        assert_eq!(cli.global.config, Some(PathBuf::from("x.toml")));
        let Command::Run(run) = cli.command else {
            panic!("expected run")
        };
        assert!(run.ordered);
        assert_eq!(run.output, "-");
    }

    #[test]
    fn resume_needs_a_journal() {
        assert!(Cli::try_parse_from(["taskhost", "run", "--resume"]).is_err());
        let cli = Cli::try_parse_from(["taskhost", "run", "--journal", "j", "--resume"]).unwrap();
        let Command::Run(run) = cli.command else {
            panic!("expected run")
        };
        assert_eq!(run.journal, Some(PathBuf::from("j")));
        assert!(run.resume);
    }

    #[test]
    fn everyday_flags_parse_and_bad_values_say_what_was_expected() {
        let cli = Cli::try_parse_from([
            "taskhost",
            "run",
            "-j",
            "3",
            "--timeout",
            "1.5s",
            "--retries",
            "2",
        ])
        .unwrap();
        let Command::Run(run) = cli.command else {
            panic!("expected run")
        };
        assert_eq!(run.workers, Some(3));
        assert_eq!(run.timeout, Some(Duration::from_millis(1500)));
        assert_eq!(run.retries, Some(2));
        for (flag, value, expected) in [
            ("-j", "0", "expected a number of workers from 1 to 1024"),
            ("--workers", "many", "found \"many\""),
            ("--retries", "101", "from 0 to 100"),
            ("--timeout", "0s", "longer than zero"),
            ("--timeout", "5", "(the unit is missing)"),
        ] {
            let error = Cli::try_parse_from(["taskhost", "run", flag, value])
                .unwrap_err()
                .to_string();
            assert!(error.contains(expected), "{flag} {value}: {error}");
        }
    }

    #[test]
    fn the_old_jobs_flag_is_gone() {
        let error = Cli::try_parse_from(["taskhost", "run", "--jobs", "4"]).unwrap_err();
        assert!(error.to_string().contains(OLD_JOBS), "{error}");
        let cli = Cli::try_parse_from(["taskhost", "run", "--config-jobs"]).unwrap();
        let Command::Run(run) = cli.command else {
            panic!("expected run")
        };
        assert!(run.config_jobs);
    }

    #[test]
    fn a_task_runs_over_arguments_or_lines() {
        let cli =
            Cli::try_parse_from(["taskhost", "run", "checksum/sha256", "a", "--", "-b"]).unwrap();
        let Command::Run(run) = cli.command else {
            panic!("expected run")
        };
        assert_eq!(run.task.as_deref(), Some("checksum/sha256"));
        assert_eq!(run.args, ["a", "-b"]);
        assert!(Cli::try_parse_from(["taskhost", "run", "x/y", "--lines", "f"]).is_ok());
        assert!(Cli::try_parse_from(["taskhost", "run", "x/y", "a", "--lines", "f"]).is_err());
        assert!(Cli::try_parse_from(["taskhost", "run", "--lines", "f"]).is_err());
        assert!(Cli::try_parse_from(["taskhost", "run", "x/y", "-i", "f"]).is_err());
        assert!(Cli::try_parse_from(["taskhost", "run", "--field", "path"]).is_err());
    }

    #[test]
    fn input_and_expand_conflict() {
        assert!(Cli::try_parse_from(["taskhost", "run", "-i", "x", "--expand", "a/b"]).is_err());
        assert!(Cli::try_parse_from(["taskhost", "run", "--params", "{}"]).is_err());
    }
}
