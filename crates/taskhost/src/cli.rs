//! The command line (clap derive). Parsing only: no I/O here.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Runs batches of work items through compiled task plugins on named thread pools.
#[derive(Debug, Parser)]
#[command(name = "taskhost", version, about, long_about = None)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
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
    /// Run work items: JSON lines from --input, a plugin's expansion (--expand), or the config's jobs
    Run(RunArgs),
    /// List the loaded plugins, their versions and task types, and the pool each task routes to
    Plugins(PluginsArgs),
    /// Show or check the configuration
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Run the demo batch: the config's jobs (checksums of this repository, primes) with a summary
    Demo(DemoArgs),
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
    /// Work items as JSON lines; `-` is stdin (the default when neither --expand nor --jobs is given)
    #[arg(long, short = 'i', value_name = "FILE|-", conflicts_with_all = ["expand", "jobs"])]
    pub input: Option<String>,
    /// Where outcome records go, as JSON lines; `-` is stdout
    #[arg(long, short = 'o', value_name = "FILE|-", default_value = "-")]
    pub output: String,
    /// Write outcomes in input order instead of completion order
    #[arg(long)]
    pub ordered: bool,
    /// Ask a plugin to expand a job into work items: `plugin/task`
    #[arg(long, value_name = "PLUGIN/TASK", conflicts_with = "jobs")]
    pub expand: Option<String>,
    /// The job's parameters for --expand, as JSON
    #[arg(long, value_name = "JSON", requires = "expand", default_value = "{}")]
    pub params: String,
    /// Run the `[[jobs]]` of the configuration
    #[arg(long)]
    pub jobs: bool,
    /// Append the id of each finished item (any status but `cancelled`) to FILE, durably
    #[arg(long, value_name = "FILE")]
    pub journal: Option<PathBuf>,
    /// Skip the items whose id is already in the --journal file (after a crash)
    #[arg(long, requires = "journal")]
    pub resume: bool,
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
    fn input_and_expand_conflict() {
        assert!(Cli::try_parse_from(["taskhost", "run", "-i", "x", "--expand", "a/b"]).is_err());
        assert!(Cli::try_parse_from(["taskhost", "run", "--params", "{}"]).is_err());
    }
}
