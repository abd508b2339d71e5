//! The cluster mode: `taskhost worker` on each machine and `taskhost submit` to feed them,
//! sharing one NATS JetStream server through `taskhost-cluster` (which owns the connection,
//! the layout on the server and the protocol of one item; tokio and async-nats stay there).
//!
//! A worker runs its items through the very dispatcher `taskhost run` uses
//! ([`crate::dispatch::run`]): [`pull`] is its [`crate::source::WorkSource`] (pulls bounded
//! by the pools' room), [`outcomes`] its [`crate::sink::OutcomeSink`] (publish the record,
//! then ack), and [`crate::dispatch::RunControl`] reaches single items for the submitter's
//! cancels and the shutdown. The submitter publishes, then collects exactly one record per
//! input line from the results stream, where it also puts its own verdicts (rejected, gave
//! up, cancelled) so that the first outcome stored for an item is the one every reader sees.
//!
//! Files: [`record`] (what travels) · [`leases`] (what a worker holds) · [`outcomes`] ·
//! [`pull`] · [`worker`] (the command) · [`submit`] and [`collect`] (the submitter) ·
//! [`heartbeat`] and [`status`] (`taskhost cluster status`) · [`metrics`] (`--metrics-addr`).

mod collect;
mod heartbeat;
mod leases;
mod metrics;
mod outcomes;
mod pull;
mod record;
mod status;
mod submit;
mod worker;

use std::path::Path;

use clap::{Args, Subcommand};
use taskhost_cluster::{Client, Queue};

use crate::app::{Failure, EXIT_USAGE};
use crate::cli::Cli;
use crate::config::cluster::ClusterConfig;
use crate::config::Settings;

/// `taskhost worker`.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// The name the worker's records and heartbeats carry (default: host name and process id)
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Serve Prometheus metrics on http://ADDR/metrics (IP:PORT; port 0: any free port, the
    /// one bound is printed on stderr)
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
}

/// `taskhost submit`.
#[derive(Debug, Args)]
pub struct SubmitArgs {
    /// Work items as JSON lines; `-` is stdin
    #[arg(long, short = 'i', value_name = "FILE|-", default_value = "-")]
    pub input: String,
    /// Where outcome records go, as JSON lines; `-` is stdout
    #[arg(long, short = 'o', value_name = "FILE|-", default_value = "-")]
    pub output: String,
    /// Write outcomes in input order instead of completion order
    #[arg(long)]
    pub ordered: bool,
    /// Reattach to run RUN_ID (printed when it started) with the same input: its records are
    /// written again, and only the items it had not submitted yet are submitted
    #[arg(long, value_name = "RUN_ID")]
    pub resume: Option<String>,
}

/// `taskhost cluster …`.
#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// The live workers (plugins, pools, items running), queue depth per task, redeliveries
    /// and dead letters
    Status,
}

/// `taskhost worker`: serves the cluster's items until Ctrl-C or SIGTERM (then exits 0).
pub fn worker(cli: &Cli, args: &WorkerArgs, file: Option<&Path>) -> Result<u8, Failure> {
    worker::run(cli, args, file)
}

/// `taskhost submit`.
pub fn submit(cli: &Cli, args: &SubmitArgs, file: Option<&Path>) -> Result<u8, Failure> {
    submit::run(cli, args, file)
}

/// `taskhost cluster status`.
pub fn status(cli: &Cli, command: &ClusterCommand, file: Option<&Path>) -> Result<u8, Failure> {
    match command {
        ClusterCommand::Status => status::run(cli, file),
    }
}

/// The `[cluster]` table, or the error that says it is missing.
fn cluster_config<'a>(settings: &'a Settings, command: &str) -> Result<&'a ClusterConfig, Failure> {
    settings.cluster.as_ref().ok_or_else(|| Failure {
        code: EXIT_USAGE,
        error: anyhow::anyhow!(
            "taskhost {command} needs a [cluster] table in the configuration, with at least \
             url = \"nats://HOST:4222\" (see `taskhost config show`)"
        ),
    })
}

/// Connects and opens the cluster's streams: an unreachable server, refused credentials or
/// streams with other settings are one line and exit status 2.
fn connect(config: &ClusterConfig) -> Result<Queue, Failure> {
    let usage = |error: taskhost_cluster::ClusterError| Failure {
        code: EXIT_USAGE,
        error: error.into(),
    };
    let client = Client::connect(&config.connection).map_err(usage)?;
    Queue::open(&client).map_err(usage)
}
