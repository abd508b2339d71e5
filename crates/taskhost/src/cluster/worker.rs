//! `taskhost worker`: loads the plugins and pools of the configuration, pulls the items of
//! the plugins it has loaded (no more than its pools have room for) and runs them through
//! [`dispatch::run`], the same path as `taskhost run`, with a source of deliveries and a sink
//! that publishes each record before it acks the item.
//!
//! Ctrl-C or SIGTERM: stop pulling; what has not started is given back to the queue at once
//! (`nak`), what runs has `run.shutdown_grace` to finish (its outcome is published as usual);
//! after the grace what still runs is given back too and asked to stop. Exit status 0. A
//! second signal exits at once (130).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use taskhost_cluster::Queue;

use super::heartbeat::{self, Heartbeat};
use super::leases::WorkerState;
use super::metrics::{self, Exporter};
use super::outcomes::{give_back, ClusterSink};
use super::{cluster_config, connect, pull, WorkerArgs};
use crate::app::{
    init_telemetry, load_settings, Failure, Host, OrExit, EXIT_NOT_ALL_OK, EXIT_OK, EXIT_USAGE,
};
use crate::cli::Cli;
use crate::dispatch::{self, Catalog, Pools, RunControl, RunOptions};
use crate::signals::Interrupts;
use crate::telemetry::SharedBar;

/// How long a stopping worker waits for the outcomes on their way to the server.
const FINISH_WAIT: Duration = Duration::from_secs(10);

pub(super) fn run(cli: &Cli, args: &WorkerArgs, file: Option<&Path>) -> Result<u8, Failure> {
    let (settings, _) = load_settings(file)?;
    let config = cluster_config(&settings, "worker")?;
    let name = match &args.name {
        Some(name) => name.clone(),
        None => default_name(),
    };
    if let Err(message) = heartbeat::check_name(&name) {
        return Err(Failure {
            code: EXIT_USAGE,
            error: anyhow::anyhow!("--name: {message}"),
        });
    }
    let bar = SharedBar::default();
    let _guard = init_telemetry(cli, &settings, &bar)?;
    let interrupts = Interrupts::install().or_exit(EXIT_NOT_ALL_OK)?;
    let host = Host::load(&settings, cli, Default::default())?;
    let queue = connect(config)?;
    let plugins: Vec<String> = host
        .plugins
        .plugins()
        .iter()
        .map(|plugin| plugin.name().to_owned())
        .collect();
    if plugins.is_empty() {
        return Err(Failure {
            code: EXIT_USAGE,
            error: anyhow::anyhow!(
                "no plugins loaded, so this worker could take no item (see `taskhost plugins`)"
            ),
        });
    }
    let (rooms, capacity) = rooms(&plugins, &host.catalog, &host.pools);
    let queues = plugins
        .iter()
        .map(|plugin| queue.plugin_queue(plugin))
        .collect::<Result<Vec<_>, _>>()
        .or_exit(EXIT_USAGE)?;
    let state = WorkerState::new(&rooms, capacity);
    // Before anything is pulled: an address that cannot be bound leaves no item held.
    if let Some(addr) = args.metrics_addr {
        serve_metrics(addr, &name, &plugins, &state, &host.pools)?;
    }
    let worker: Arc<str> = Arc::from(name.as_str());
    let control = RunControl::default();
    let listening = listen_for_cancels(&queue, &state, &control)?;
    let (source, pullers) = pull::start(queues, &state, &worker)
        .context("starting the pulling threads")
        .or_exit(EXIT_NOT_ALL_OK)?;
    let beating = heartbeat::start(
        &queue,
        Heartbeat::new(&name, &plugins, &host.pools.settings),
        &state,
    );
    if !cli.global.quiet {
        eprintln!(
            "taskhost worker {name}: serving {} from {} (at most {capacity} items at once; \
             Ctrl-C or SIGTERM to stop)",
            plugins.join(", "),
            config.connection.url()
        );
    }

    // What `dispatch::run` treats as Ctrl-C: only the end of the grace, not the signal.
    let give_up = Interrupts::detached();
    let over = Arc::new(AtomicBool::new(false));
    let shutdown = {
        let (state, control, give_up, over) = (
            Arc::clone(&state),
            control.clone(),
            Arc::clone(&give_up),
            Arc::clone(&over),
        );
        let grace = settings.run.shutdown_grace;
        let interrupts = Arc::clone(&interrupts);
        std::thread::Builder::new()
            .name("taskhost-shutdown".to_owned())
            .spawn(move || {
                shut_down_on_signal(&interrupts, &state, &control, &give_up, grace, &over)
            })
            .context("starting the shutdown thread")
            .or_exit(EXIT_NOT_ALL_OK)?
    };
    let options = RunOptions {
        ordered: false,
        // No more than the pulls can bring: the writer then wakes for a handful of records,
        // not after waiting for a batch that cannot fill.
        max_in_flight: capacity,
        shutdown_grace: settings.run.shutdown_grace,
        progress: false,
        control,
    };
    let sink = ClusterSink {
        state: Arc::clone(&state),
        worker: Arc::clone(&worker),
        finishing: Default::default(),
    };
    let Host {
        plugins: loaded,
        pools,
        catalog,
        ..
    } = host;
    let report = dispatch::run(
        Box::new(source),
        Box::new(sink),
        &catalog,
        pools,
        &options,
        &give_up,
        &bar,
    );
    std::mem::forget(loaded);
    over.store(true, Ordering::SeqCst);
    state.stop();
    for puller in pullers {
        let _ = puller.join();
    }
    let _ = shutdown.join();
    listening.store(false, Ordering::SeqCst);
    drop(beating);
    let unfinished = state.wait_finished(FINISH_WAIT);
    if unfinished > 0 {
        tracing::warn!(
            target: "taskhost::cluster",
            unfinished,
            "outcomes still on their way to the server at exit: their items will be delivered \
             again after cluster.ack_wait"
        );
    }
    let _ = queue.client().flush();
    let report = report.or_exit(EXIT_NOT_ALL_OK)?;
    if !cli.global.quiet {
        eprintln!("taskhost worker {name}: stopped");
        eprint!("{}", report.summary);
    }
    Ok(EXIT_OK)
}

/// Serves `--metrics-addr` from a thread of its own and prints where.
fn serve_metrics(
    addr: SocketAddr,
    name: &str,
    plugins: &[String],
    state: &WorkerState,
    pools: &Pools,
) -> Result<(), Failure> {
    let exporter = Exporter {
        worker: name.to_owned(),
        plugins: plugins.to_vec(),
        counters: Arc::clone(&state.counters),
        pools: pools
            .executors
            .iter()
            .map(|pool| pool.metrics_reader())
            .collect(),
    };
    let bound = metrics::serve(addr, exporter).map_err(|error| Failure {
        code: EXIT_USAGE,
        error: anyhow::anyhow!("--metrics-addr {addr}: {error}"),
    })?;
    // Printed even with --quiet: with port 0 nothing else says where to scrape.
    eprintln!("taskhost worker {name}: metrics on http://{bound}/metrics");
    Ok(())
}

/// How many items each plugin may hold at once, and all plugins together: for each pool its
/// tasks route to, the pool's workers and what its queue holds (`queue_capacity`; an unbounded
/// queue counts as one item waiting behind each worker, so that a worker finds its next item
/// here rather than a round trip away).
fn rooms(plugins: &[String], catalog: &Catalog, pools: &Pools) -> (Vec<usize>, usize) {
    let pool_room = |pool: usize| {
        let settings = &pools.settings[pool];
        let queued = match settings.queue_capacity {
            0 => settings.max_workers,
            bounded => bounded,
        };
        settings.max_workers + queued
    };
    let names = catalog.names();
    let pools_of = |plugin: &str| {
        let mut used: Vec<usize> = names
            .iter()
            .filter_map(|name| catalog.get(name))
            .filter(|task| task.plugin == plugin)
            .map(|task| task.pool)
            .collect();
        used.sort_unstable();
        used.dedup();
        used
    };
    let rooms = plugins
        .iter()
        .map(|plugin| {
            pools_of(plugin)
                .into_iter()
                .map(pool_room)
                .sum::<usize>()
                .max(1)
        })
        .collect();
    let mut every: Vec<usize> = plugins.iter().flat_map(|plugin| pools_of(plugin)).collect();
    every.sort_unstable();
    every.dedup();
    let capacity = every.into_iter().map(pool_room).sum::<usize>().max(1);
    (rooms, capacity)
}

/// The first signal: stop pulling, give back what has not started, let what runs finish
/// within `grace`, then give back what still runs and end the run.
fn shut_down_on_signal(
    interrupts: &Interrupts,
    state: &WorkerState,
    control: &RunControl,
    give_up: &Interrupts,
    grace: Duration,
    over: &AtomicBool,
) {
    while !interrupts.requested() {
        if over.load(Ordering::SeqCst) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    tracing::info!(target: "taskhost::cluster", "worker.stopping");
    state.stop();
    control.cancel_unstarted();
    let deadline = Instant::now() + grace;
    while state.leased() > 0 && Instant::now() < deadline && !over.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let left = state.take_all();
    if !left.is_empty() {
        tracing::warn!(
            target: "taskhost::cluster",
            items = left.len(),
            "still running when the shutdown grace ended: given back to the queue"
        );
    }
    for lease in left {
        give_back(state, lease.delivery, lease.plugin);
    }
    give_up.signal();
}

/// Starts the thread that hears the submitters' cancels and stops the items they name; it
/// ends when the returned flag is cleared.
fn listen_for_cancels(
    queue: &Queue,
    state: &Arc<WorkerState>,
    control: &RunControl,
) -> Result<Arc<AtomicBool>, Failure> {
    let mut cancels = queue.cancel_listener().or_exit(EXIT_USAGE)?;
    let listening = Arc::new(AtomicBool::new(true));
    let (state, control, flag) = (Arc::clone(state), control.clone(), Arc::clone(&listening));
    std::thread::Builder::new()
        .name("taskhost-cancels".to_owned())
        .spawn(move || {
            while flag.load(Ordering::SeqCst) {
                match cancels.next(Duration::from_millis(200)) {
                    Ok(Some(cancel)) => {
                        let seqs = state.cancel(&cancel.run_id, cancel.item_id.as_deref());
                        tracing::info!(
                            target: "taskhost::cluster",
                            run = %cancel.run_id,
                            item = cancel.item_id.as_deref(),
                            running = seqs.len(),
                            "run.cancelled"
                        );
                        for seq in seqs {
                            control.cancel(seq);
                        }
                    }
                    Ok(None) => {}
                    Err(error) => {
                        tracing::warn!(target: "taskhost::cluster", "{error}");
                        std::thread::sleep(Duration::from_millis(500));
                    }
                }
            }
        })
        .context("starting the cancel listener")
        .or_exit(EXIT_NOT_ALL_OK)?;
    Ok(listening)
}

/// `<host name>-<process id>`.
fn default_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| heartbeat::check_name(name).is_ok())
        .unwrap_or_else(|| "worker".to_owned());
    format!("{host}-{}", std::process::id())
}
