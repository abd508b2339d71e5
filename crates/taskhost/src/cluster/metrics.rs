//! `taskhost worker --metrics-addr`: the worker's counters per plugin (relaxed atomics, bumped
//! where it pulls, finishes and gives back items) and the executor's counters per pool, served
//! as Prometheus text (rendered by `prometheus-client`) on `GET /metrics` by one thread.
//!
//! The values are read at scrape time: each scrape builds a fresh registry from the atomics
//! and the pools' snapshots, so the hot path only ever does a relaxed add.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use taskhost_executor::{MetricsReader, MetricsSnapshot};

/// What the exposition format's content type says.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Keeps a group of counters on a cache line of its own: the pulling thread, the dispatcher's
/// writer and the client's runtime each bump theirs without taking the line from the others.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Line<T>(T);

/// Bumped by the plugin's pulling thread.
#[derive(Debug, Default)]
struct Pulls {
    /// Deliveries pulled from the plugin's queue.
    pulled: AtomicU64,
    /// Pulled deliveries the server had delivered before (a delivery count above 1).
    redelivered: AtomicU64,
    /// Deliveries given back to the queue (`nak`): rare, by whichever thread holds one.
    given_back: AtomicU64,
}

/// Bumped where the records are written (the dispatcher's writer).
#[derive(Debug, Default)]
struct Outcomes {
    /// Outcome records handed over to be published.
    handed_over: AtomicU64,
    /// Of those, the records whose status is not `ok`.
    failed: AtomicU64,
}

/// Bumped when the server has answered (the client's runtime).
#[derive(Debug, Default)]
struct Answers {
    /// Records published and their items acked.
    acked: AtomicU64,
    /// Records that could not be published, or items that could not be acked.
    finish_errors: AtomicU64,
}

/// One plugin's counters: each only grows. Items held now are what was pulled less what
/// ended (acked, not finished for an error, given back).
#[derive(Debug, Default)]
pub(crate) struct PluginCounters {
    pulls: Line<Pulls>,
    outcomes: Line<Outcomes>,
    answers: Line<Answers>,
}

impl PluginCounters {
    /// A delivery came, its server-side delivery count `deliveries`.
    pub(crate) fn inc_pulled(&self, deliveries: u64) {
        self.pulls.0.pulled.fetch_add(1, Relaxed);
        if deliveries > 1 {
            self.pulls.0.redelivered.fetch_add(1, Relaxed);
        }
    }
    /// A delivery went back to the queue.
    pub(crate) fn inc_given_back(&self) {
        self.pulls.0.given_back.fetch_add(1, Relaxed);
    }
    /// An outcome of `status` is on its way.
    pub(crate) fn inc_outcome(&self, status: crate::sink::Status) {
        self.outcomes.0.handed_over.fetch_add(1, Relaxed);
        if status != crate::sink::Status::Ok {
            self.outcomes.0.failed.fetch_add(1, Relaxed);
        }
    }
    /// An outcome was published and its item acked.
    pub(crate) fn inc_acked(&self) {
        self.answers.0.acked.fetch_add(1, Relaxed);
    }
    /// An outcome could not be published or its item acked.
    pub(crate) fn inc_finish_error(&self) {
        self.answers.0.finish_errors.fetch_add(1, Relaxed);
    }

    /// Items pulled and not ended yet. The ends are read first: an item is pulled before it
    /// ends, so a scrape in between counts it held rather than going below zero.
    fn held(&self) -> u64 {
        let ended = self.answers.0.acked.load(Relaxed)
            + self.answers.0.finish_errors.load(Relaxed)
            + self.pulls.0.given_back.load(Relaxed);
        self.pulls.0.pulled.load(Relaxed).saturating_sub(ended)
    }
}

/// What a scrape reads.
#[derive(Debug)]
pub(crate) struct Exporter {
    /// The worker's name (`taskhost_worker_info{worker=…}`).
    pub(crate) worker: String,
    /// The loaded plugins, by the index their counters have in the state.
    pub(crate) plugins: Vec<String>,
    /// By plugin index (the worker state's).
    pub(crate) counters: Arc<[PluginCounters]>,
    /// The pools, in the configuration's order.
    pub(crate) pools: Vec<MetricsReader>,
}

type Labels = Vec<(&'static str, String)>;

/// A metric's name (without the prefix and `_total`), its help and where its value is read.
type Spec<F> = (&'static str, &'static str, F);
type PluginField = fn(&PluginCounters) -> &AtomicU64;
type PoolField = fn(&MetricsSnapshot) -> u64;

/// Registers the metric `name` with `help`: one sample per item of `items`, labelled
/// `label=label_of(item)`, its value put there by `set(metric, item)`.
fn family<M, T>(
    registry: &mut Registry,
    name: &str,
    help: &str,
    label: &'static str,
    items: &[T],
    set: impl Fn(&M, &T),
    label_of: impl Fn(&T) -> String,
) where
    M: prometheus_client::metrics::TypedMetric
        + prometheus_client::encoding::EncodeMetric
        + Default
        + Send
        + Sync
        + std::fmt::Debug
        + 'static,
{
    let metric = Family::<Labels, M>::default();
    for item in items {
        set(&metric.get_or_create(&vec![(label, label_of(item))]), item);
    }
    registry.register(name, help, metric);
}

impl Exporter {
    /// The Prometheus text of every metric now.
    pub(crate) fn render(&self) -> String {
        let mut registry = Registry::with_prefix("taskhost");
        let info = Family::<Labels, Gauge>::default();
        info.get_or_create(&vec![("worker", self.worker.clone())])
            .set(1);
        registry.register("worker_info", "The worker's name (always 1)", info);
        self.register_plugins(&mut registry);
        self.register_pools(&mut registry);
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut text, &registry);
        text
    }

    fn register_plugins(&self, registry: &mut Registry) {
        let plugins: Vec<(&String, &PluginCounters)> =
            self.plugins.iter().zip(self.counters.iter()).collect();
        let name = |item: &(&String, &PluginCounters)| item.0.clone();
        let counters: [Spec<PluginField>; 7] = [
            (
                "worker_items_pulled",
                "Items pulled from the plugin's queue",
                |c| &c.pulls.0.pulled,
            ),
            (
                "worker_items_redelivered",
                "Items pulled that the server had delivered before",
                |c| &c.pulls.0.redelivered,
            ),
            (
                "worker_items_given_back",
                "Items given back to the queue (nak) for another worker",
                |c| &c.pulls.0.given_back,
            ),
            (
                "worker_outcomes",
                "Outcome records handed over to be published",
                |c| &c.outcomes.0.handed_over,
            ),
            (
                "worker_items_failed",
                "Outcome records whose status is not ok",
                |c| &c.outcomes.0.failed,
            ),
            (
                "worker_items_acked",
                "Outcome records published and their items acked",
                |c| &c.answers.0.acked,
            ),
            (
                "worker_finish_errors",
                "Outcome records not published or items not acked (delivered again later)",
                |c| &c.answers.0.finish_errors,
            ),
        ];
        for (metric, help, field) in counters {
            family::<Counter, _>(
                registry,
                metric,
                help,
                "plugin",
                &plugins,
                |counter, item| {
                    counter.inc_by(field(item.1).load(Relaxed));
                },
                name,
            );
        }
        family::<Gauge, _>(
            registry,
            "worker_items_held",
            "Items pulled and not acked or given back yet",
            "plugin",
            &plugins,
            |gauge, item| {
                gauge.set(gauge_value(item.1.held()));
            },
            name,
        );
    }

    fn register_pools(&self, registry: &mut Registry) {
        let pools: Vec<(String, MetricsSnapshot)> = self
            .pools
            .iter()
            .map(|pool| (pool.name().to_owned(), pool.metrics()))
            .collect();
        let name = |item: &(String, MetricsSnapshot)| item.0.clone();
        let counters: [Spec<PoolField>; 7] = [
            ("pool_tasks_submitted", "Tasks the pool accepted", |m| {
                m.submitted
            }),
            ("pool_tasks_completed", "Tasks that returned", |m| {
                m.completed
            }),
            (
                "pool_tasks_failed",
                "Tasks that panicked or a broken pool failed",
                |m| m.failed,
            ),
            ("pool_tasks_cancelled", "Tasks that ended cancelled", |m| {
                m.cancelled
            }),
            ("pool_tasks_rejected", "Submissions the pool refused", |m| {
                m.rejected
            }),
            ("pool_workers_spawned", "Worker threads started", |m| {
                m.workers_spawned
            }),
            ("pool_workers_retired", "Worker threads that exited", |m| {
                m.workers_retired
            }),
        ];
        for (metric, help, field) in counters {
            family::<Counter, _>(
                registry,
                metric,
                help,
                "pool",
                &pools,
                |counter, item| {
                    counter.inc_by(field(&item.1));
                },
                name,
            );
        }
        let gauges: [Spec<PoolField>; 5] = [
            (
                "pool_tasks_queued",
                "Items waiting in the pool's queue",
                |m| m.queued,
            ),
            ("pool_tasks_running", "Tasks running", |m| m.running),
            ("pool_workers_alive", "Worker threads alive", |m| {
                m.workers_alive as u64
            }),
            (
                "pool_workers_idle",
                "Worker threads waiting for work",
                |m| m.workers_idle as u64,
            ),
            (
                "pool_workers_peak",
                "The most worker threads alive at once",
                |m| m.workers_peak as u64,
            ),
        ];
        for (metric, help, field) in gauges {
            family::<Gauge, _>(
                registry,
                metric,
                help,
                "pool",
                &pools,
                |gauge, item| {
                    gauge.set(gauge_value(field(&item.1)));
                },
                name,
            );
        }
    }
}

fn gauge_value(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Binds `addr` and serves `exporter` on `GET /metrics` from a thread of its own (for the
/// life of the process); other paths are 404. Returns the bound address (port 0: the one
/// the system chose).
pub(crate) fn serve(addr: SocketAddr, exporter: Exporter) -> std::io::Result<SocketAddr> {
    let server = tiny_http::Server::http(addr).map_err(std::io::Error::other)?;
    let bound = server
        .server_addr()
        .to_ip()
        .ok_or_else(|| std::io::Error::other("the metrics server has no IP address"))?;
    std::thread::Builder::new()
        .name("taskhost-metrics".to_owned())
        .spawn(move || {
            for request in server.incoming_requests() {
                let response =
                    if request.method() == &tiny_http::Method::Get && request.url() == "/metrics" {
                        let header = tiny_http::Header::from_bytes("Content-Type", CONTENT_TYPE)
                            .expect("a valid header");
                        tiny_http::Response::from_string(exporter.render()).with_header(header)
                    } else {
                        tiny_http::Response::from_string("not found: try GET /metrics\n")
                            .with_status_code(404)
                    };
                if let Err(error) = request.respond(response) {
                    tracing::debug!(target: "taskhost::cluster", "metrics: {error}");
                }
            }
        })?;
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::Status;

    #[test]
    fn renders_plugin_counters_and_held_items() {
        let all: Arc<[PluginCounters]> = (0..2).map(|_| PluginCounters::default()).collect();
        let counters = &all[1];
        counters.inc_pulled(1);
        counters.inc_pulled(3);
        counters.inc_pulled(1);
        counters.inc_outcome(Status::Ok);
        counters.inc_outcome(Status::Failed);
        counters.inc_acked();
        counters.inc_given_back();
        let exporter = Exporter {
            worker: "w1".to_owned(),
            plugins: vec!["a".to_owned(), "b".to_owned()],
            counters: Arc::clone(&all),
            pools: vec![taskhost_executor::Executor::new(1)
                .unwrap()
                .metrics_reader()],
        };
        let text = exporter.render();
        for line in [
            "taskhost_worker_info{worker=\"w1\"} 1",
            "taskhost_worker_items_pulled_total{plugin=\"b\"} 3",
            "taskhost_worker_items_pulled_total{plugin=\"a\"} 0",
            "taskhost_worker_items_redelivered_total{plugin=\"b\"} 1",
            "taskhost_worker_outcomes_total{plugin=\"b\"} 2",
            "taskhost_worker_items_failed_total{plugin=\"b\"} 1",
            "taskhost_worker_items_acked_total{plugin=\"b\"} 1",
            "taskhost_worker_items_given_back_total{plugin=\"b\"} 1",
            "taskhost_worker_items_held{plugin=\"b\"} 1",
            "taskhost_pool_tasks_completed_total{pool=\"pool\"} 0",
            "taskhost_pool_workers_alive{pool=\"pool\"} 0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "no line {line:?} in:\n{text}"
            );
        }
        assert!(text.contains("# TYPE taskhost_worker_items_held gauge"));
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
