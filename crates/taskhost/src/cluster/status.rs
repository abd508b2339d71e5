//! `taskhost cluster status`: the workers heard within two heartbeats, what waits in the
//! queue per task, each plugin's consumer (waiting, held by a worker, redelivered, pulls
//! waiting) and the dead letters kept.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::heartbeat::{Heartbeat, INTERVAL};
use super::{cluster_config, connect};
use crate::app::{load_settings, Failure, OrExit, EXIT_NOT_ALL_OK, EXIT_OK};
use crate::cli::Cli;
use crate::config::duration::format_duration;

pub(super) fn run(_cli: &Cli, file: Option<&Path>) -> Result<u8, Failure> {
    let mut text = String::new();
    // Lines into `text`, written at once at the end (a closed pipe is not worth a panic).
    macro_rules! out {
        ($($arg:tt)*) => {{
            use std::fmt::Write as _;
            let _ = writeln!(text, $($arg)*);
        }};
    }
    let (settings, _) = load_settings(file)?;
    let config = cluster_config(&settings, "cluster status")?;
    let queue = connect(config)?;
    let mut heartbeats = queue.heartbeats().or_exit(EXIT_NOT_ALL_OK)?;
    let mut workers: BTreeMap<String, Heartbeat> = BTreeMap::new();
    let deadline = Instant::now() + INTERVAL * 2 + Duration::from_millis(500);
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        let Some(beat) = heartbeats.next(left).or_exit(EXIT_NOT_ALL_OK)? else {
            break;
        };
        if let Ok(heartbeat) = serde_json::from_slice::<Heartbeat>(&beat.payload) {
            workers.insert(beat.worker, heartbeat);
        }
    }
    let counts = queue.counts().or_exit(EXIT_NOT_ALL_OK)?;
    let client = queue.client();
    out!(
        "cluster {} at {} (nats-server {})",
        client.settings().prefix(),
        client.settings().url(),
        client.server_version()
    );
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    out!(
        "\nworkers ({}, heard within {}):",
        workers.len(),
        format_duration(INTERVAL * 2)
    );
    for (name, beat) in &workers {
        let pools: Vec<String> = beat
            .pools
            .iter()
            .map(|(pool, workers)| format!("{pool} {workers}"))
            .collect();
        out!(
            "  {name:<28} running {:<4} up {:<8} plugins {}  pools {}",
            beat.running,
            format_duration(Duration::from_secs(now.saturating_sub(beat.started))),
            beat.plugins.join(","),
            pools.join(", ")
        );
    }
    out!("\nqueued per task (waiting or running):");
    if counts.queued.is_empty() {
        out!("  none");
    }
    for (plugin, task, count) in &counts.queued {
        out!("  {:<32} {count}", format!("{plugin}/{task}"));
    }
    out!("\nplugins (waiting / held by a worker / redelivered / pulls waiting):");
    if counts.plugins.is_empty() {
        out!("  none served yet");
    }
    for (plugin, state) in &counts.plugins {
        out!(
            "  {plugin:<24} {} / {} / {} / {}",
            state.pending,
            state.ack_pending,
            state.redelivered,
            state.waiting_pulls
        );
    }
    out!(
        "\ndead letters (items given up after cluster.max_deliver deliveries): {}",
        counts.dead_letters
    );
    let _ = std::io::Write::write_all(&mut std::io::stdout(), text.as_bytes());
    Ok(EXIT_OK)
}
