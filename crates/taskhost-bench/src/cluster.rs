//! Scenario 9: the cluster mode. `taskhost submit` with two local `taskhost worker`s on
//! `testkit/echo`, against the engine's own limit (a raw async-nats publish → pull → ack loop
//! with the same payloads and batch sizes), and `taskhost run` in one process for what
//! distribution costs, and Celery with a Redis broker (`celery`). A real `nats-server -js` on
//! 127.0.0.1 (the one the cluster tests use).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use async_nats::jetstream::{self, consumer, stream};
use futures_util::StreamExt;
use taskhost_cluster::testing::NatsServer;

use crate::celery::{self, Children};
use crate::external::{host_binary, plugin_dir};
use crate::scenarios::Plan;
use crate::table::{figure, row_from, Row, ScenarioReport};

/// The pool workers of each `taskhost worker`.
const POOL_WORKERS: usize = 8;

/// The most a worker's pull asks for: the room of its pool (its workers, and as many waiting
/// in its unbounded queue).
const PULL_BATCH: usize = 2 * POOL_WORKERS;

/// How many publications wait for their acks at once (as `taskhost submit`'s).
const PUBLISH_WINDOW: usize = 256;

pub fn cluster_end_to_end(plan: &Plan) -> ScenarioReport {
    eprintln!("scenario 9: cluster");
    let mut report = ScenarioReport {
        number: 9,
        key: "cluster",
        title: "Cluster mode",
        measures: format!(
            "{} JSONL work items for `testkit/echo` through `taskhost submit` and two \
             `taskhost worker` processes ({POOL_WORKERS} pool workers each, so pulls of up to \
             {PULL_BATCH}) on one local nats-server (file storage), {} runs, timed from the \
             submitter's start to its exit. Floor: the engine's own limit, one process \
             publishing the same payloads ({PUBLISH_WINDOW} acks awaited at once) while two \
             connections pull batches of up to {PULL_BATCH} and ack each item. Also \
             `taskhost run` on the same items in one process, for what distribution costs, \
             and Celery with a Redis broker and two workers (see the notes).",
            plan.cluster_items, plan.cluster_reps
        ),
        unit: "ns per item",
        show_p99: false,
        rows: Vec::new(),
        notes: Vec::new(),
        skipped: None,
    };
    if let Err(error) = rows(plan, &mut report) {
        eprintln!("  skipped: {error:#}");
        report.skipped = Some(format!("{error:#}"));
        report.rows.clear();
    }
    report
}

fn rows(plan: &Plan, report: &mut ScenarioReport) -> Result<()> {
    let host = host_binary()?;
    if !host.exists() {
        bail!(
            "no {} (run `cargo build --release -p taskhost` first)",
            host.display()
        );
    }
    let server = NatsServer::try_start(taskhost_cluster::Credentials::None)
        .map_err(|error| anyhow::anyhow!("{error}"))?;
    let work = std::env::temp_dir().join(format!("taskhost-bench-cluster-{}", std::process::id()));
    fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let result = rows_in(plan, report, &host, &server, &work);
    let _ = fs::remove_dir_all(&work);
    result
}

fn rows_in(
    plan: &Plan,
    report: &mut ScenarioReport,
    host: &Path,
    server: &NatsServer,
    work: &Path,
) -> Result<()> {
    let config = work.join("taskhost.toml");
    fs::write(
        &config,
        format!(
            "[plugins]\ndirs = [{:?}]\n\n[pools.default]\nmax_workers = {POOL_WORKERS}\n\n\
             [cluster]\nurl = \"{}\"\n",
            plugin_dir()?.display().to_string(),
            server.url()
        ),
    )?;
    let input = work.join("items.jsonl");
    let output = work.join("outcomes.jsonl");
    let mut lines = String::new();
    for n in 0..plan.cluster_items {
        lines.push_str(&format!(
            "{{\"id\":\"i{n}\",\"task\":\"testkit/echo\",\"input\":{{\"n\":{n}}}}}\n"
        ));
    }
    fs::write(&input, &lines)?;
    let payload = br#"1
{"n":12345}"#
        .to_vec();

    let floor: Vec<f64> = (0..plan.cluster_reps)
        .map(|rep| {
            raw_loop(
                &server.url(),
                &format!("raw{rep}"),
                plan.cluster_items,
                &payload,
            )
            .map(|elapsed| elapsed.as_nanos() as f64 / plan.cluster_items as f64)
        })
        .collect::<Result<_>>()?;
    report.rows.push(with_rate(
        row_from("raw async-nats publish → pull → ack", Ok(floor)).floor(),
    ));

    let command = |args: &[&str]| {
        let mut command = Command::new(host);
        command
            .arg("--config")
            .arg(&config)
            .args(["--no-progress", "--quiet"])
            .args(args)
            .env_remove("RUST_LOG")
            .env_remove("TASKHOST_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        command
    };
    let workers = Children(
        ["w1", "w2"]
            .iter()
            .map(|name| command(&["worker", "--name", name]).spawn())
            .collect::<std::io::Result<_>>()
            .context("starting the workers")?,
    );
    // Ready once both pull (the first run would otherwise time their start).
    wait_for_pulls(&server.url(), 2)?;
    // `taskhost COMMAND --input … --output …`, timed per run and checked, in ns per item.
    let timed = |subcommand: &str| -> Result<Vec<f64>> {
        (0..plan.cluster_reps)
            .map(|_| {
                let started = Instant::now();
                let io = ["--input", path(&input)?, "--output", path(&output)?];
                let status = command(&[&[subcommand][..], &io[..]].concat()).status()?;
                let elapsed = started.elapsed();
                if !status.success() {
                    bail!("taskhost {subcommand} exited with {status}");
                }
                check_outcomes(&output, plan.cluster_items)?;
                Ok(elapsed.as_nanos() as f64 / plan.cluster_items as f64)
            })
            .collect()
    };
    let distributed = timed("submit")?;
    drop(workers);
    report.rows.push(with_rate(row_from(
        "taskhost submit + 2 workers → testkit/echo",
        Ok(distributed),
    )));
    let local = timed("run")?;
    report.rows.push(with_rate(row_from(
        "taskhost run (one process, no server)",
        Ok(local),
    )));
    report.notes.push(
        "× floor is a time ratio: the floor's items/s over the contender's (target for \
         `taskhost submit + 2 workers`: at most 2×, i.e. at least half the raw loop's items/s). \
         Each item costs the cluster mode two stored messages (the item and its outcome) and \
         the floor one."
            .to_owned(),
    );
    let celery = row_from(
        celery::NAME,
        celery::samples(plan.cluster_items, plan.cluster_reps),
    );
    report.notes.push(match &celery.skipped {
        Some(reason) => format!("{}: skipped: {reason}.", celery::NAME),
        None => celery::note(),
    });
    report.rows.push(with_rate(celery));
    Ok(())
}

fn path(path: &Path) -> Result<&str> {
    path.to_str().context("a temporary path that is not UTF-8")
}

/// The row with its items/s in the notes (none for a skipped row).
fn with_rate(row: Row) -> Row {
    match row.summary {
        Some(summary) => row.with_extra(format!("{} items/s", figure(1e9 / summary.median))),
        None => row,
    }
}

/// Every line of `output` is an `ok` record, and there are `items` of them.
fn check_outcomes(output: &PathBuf, items: usize) -> Result<()> {
    let text = fs::read_to_string(output)?;
    let ok = text
        .lines()
        .filter(|line| line.contains(r#""status":"ok""#))
        .count();
    if ok != items || text.lines().count() != items {
        bail!(
            "{} records, {ok} of them ok, for {items} items",
            text.lines().count()
        );
    }
    Ok(())
}

/// Waits (at most 60 s) until `count` pulls wait on the testkit queue.
fn wait_for_pulls(url: &str, count: u64) -> Result<()> {
    let settings = taskhost_cluster::ClusterSettings::builder(url).build()?;
    let queue = taskhost_cluster::Queue::open(&taskhost_cluster::Client::connect(&settings)?)?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Some(state) = queue.plugin_state("testkit")? {
            if state.waiting_pulls >= count {
                return Ok(());
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("the workers did not start pulling within 60 s")
}

/// The floor: `items` payloads published to a work-queue stream of its own (named after
/// `prefix`) with message ids, `PUBLISH_WINDOW` acks awaited at once, while two connections
/// pull batches of up to `PULL_BATCH` and ack each; the time until the last ack is sent.
fn raw_loop(url: &str, prefix: &str, items: usize, payload: &[u8]) -> Result<Duration> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let publisher = jetstream::new(async_nats::connect(url).await?);
        let stream = publisher
            .create_stream(stream::Config {
                name: format!("{prefix}_items"),
                subjects: vec![format!("{prefix}.items.>")],
                retention: stream::RetentionPolicy::WorkQueue,
                storage: stream::StorageType::File,
                duplicate_window: Duration::from_secs(3600),
                ..Default::default()
            })
            .await?;
        stream
            .create_consumer(consumer::pull::Config {
                durable_name: Some("testkit".to_owned()),
                ack_policy: consumer::AckPolicy::Explicit,
                ack_wait: Duration::from_secs(30),
                filter_subject: format!("{prefix}.items.testkit.*"),
                ..Default::default()
            })
            .await?;
        let started = Instant::now();
        let mut pullers = Vec::new();
        let per_puller = [items / 2 + items % 2, items / 2];
        for share in per_puller {
            let context = jetstream::new(async_nats::connect(url).await?);
            let stream_name = format!("{prefix}_items");
            pullers.push(tokio::spawn(async move {
                let stream = context.get_stream(&stream_name).await?;
                let consumer: consumer::PullConsumer =
                    stream.get_consumer("testkit").await.map_err(boxed)?;
                let mut acked = 0;
                while acked < share {
                    let mut batch = consumer
                        .fetch()
                        .max_messages(PULL_BATCH.min(share - acked))
                        .messages()
                        .await?;
                    let mut got = 0;
                    while let Some(message) = batch.next().await {
                        message.map_err(boxed)?.ack().await.map_err(boxed)?;
                        got += 1;
                    }
                    if got == 0 {
                        // Nothing waiting: wait for one, as a worker's pull does.
                        let mut one = consumer
                            .batch()
                            .max_messages(1)
                            .expires(Duration::from_millis(500))
                            .messages()
                            .await?;
                        while let Some(message) = one.next().await {
                            message.map_err(boxed)?.ack().await.map_err(boxed)?;
                            got += 1;
                        }
                    }
                    acked += got;
                }
                Ok::<_, anyhow::Error>(())
            }));
        }
        let mut waiting = std::collections::VecDeque::new();
        for n in 0..items {
            let publish = jetstream::message::PublishMessage::build()
                .payload(payload.to_vec().into())
                .message_id(format!("{prefix}:{n}"));
            let ack = publisher
                .send_publish(format!("{prefix}.items.testkit.echo"), publish)
                .await?;
            waiting.push_back(ack);
            if waiting.len() >= PUBLISH_WINDOW {
                waiting.pop_front().expect("a full window").await?;
            }
        }
        for ack in waiting {
            ack.await?;
        }
        for puller in pullers {
            puller.await??;
        }
        Ok(started.elapsed())
    })
}

/// async-nats's boxed errors, as anyhow's.
fn boxed(error: async_nats::Error) -> anyhow::Error {
    anyhow::anyhow!(error)
}
