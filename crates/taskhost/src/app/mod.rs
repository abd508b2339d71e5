//! The commands: each turns parsed arguments and settings into calls on the other modules.
//!
//! Exit codes: 0 every item ok; 1 some item did not succeed (or the run failed part-way);
//! 2 usage or configuration error; 130 interrupted; 141 the output was closed.

mod commands;
mod host;
mod inputs;
mod work;

pub(crate) use host::Host;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Result;
use clap::Parser;

use crate::cli::{Cli, Command, ConfigCommand, LogFormatArg};
use crate::config::settings::{LogFormat, Settings};
use crate::dispatch::{self};
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

pub fn run(cli: Cli) -> Result<u8, Failure> {
    let file = config_path(&cli);
    let file = file.as_deref();
    match &cli.command {
        Command::ServeWorker => host::serve_worker(file),
        Command::Completions { shell } => commands::completions(*shell),
        Command::Man { dir } => commands::man(dir),
        Command::Config(ConfigCommand::Show) => commands::config_show(file),
        Command::Config(ConfigCommand::Check { file: checked }) => {
            commands::config_check(file.map(Path::to_path_buf), checked.as_ref())
        }
        Command::Plugins(args) => commands::plugins(&cli, args, file),
        Command::Run(args) => work::run_work(&cli, args, file),
        Command::Worker(args) => crate::cluster::worker(&cli, args, file),
        Command::Submit(args) => crate::cluster::submit(&cli, args, file),
        Command::Cluster(command) => crate::cluster::status(&cli, command, file),
        Command::Demo(args) => commands::demo(&cli, args, file),
    }
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
