//! `taskhost worker --metrics-addr`: a real server and worker, items submitted, and the
//! counters scraped from `/metrics` over plain HTTP/1.0 must equal what was run.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::cluster::{items, turn, Cluster};
use crate::util::Dir;

/// `GET path` on `addr` (HOST:PORT): the status line and the body.
fn get(addr: &str, path: &str) -> (String, String) {
    let mut stream = TcpStream::connect(addr).expect("connecting to the metrics address");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {response:?}"));
    let status = head.lines().next().unwrap_or_default().to_owned();
    (status, body.to_owned())
}

/// The samples of the text format: `name{labels}` to value (comments left out).
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| {
            let (key, value) = line.rsplit_once(' ').unwrap();
            (key.to_owned(), value.parse().unwrap())
        })
        .collect()
}

/// The `metrics on http://ADDR/metrics` address in the worker's log.
fn metrics_addr(log: &str) -> String {
    let line = log
        .lines()
        .find(|line| line.contains(": metrics on http://"))
        .unwrap_or_else(|| panic!("no metrics address in:\n{log}"));
    let url = line.split("http://").nth(1).unwrap();
    url.strip_suffix("/metrics").unwrap().to_owned()
}

#[test]
fn a_workers_metrics_count_what_it_pulled_acked_and_failed() {
    let _turn = turn();
    let mut cluster = Cluster::start("", 4);
    let worker = cluster.worker_with("m1", &[], &["--metrics-addr", "127.0.0.1:0"]);
    let addr = metrics_addr(&worker.log());
    let mut work = items("ok", 30, "testkit/echo", json!({"payload": "x"}));
    work.extend(items("bad", 7, "testkit/fail", json!({"message": "no"})));
    let (run, records) = cluster.submit(&work, &[]);
    run.assert_code(1);
    assert_eq!(records.len(), 37, "{}", run.stderr);
    assert_eq!(records.iter().filter(|r| r["status"] == "ok").count(), 30);

    // Acks end in the background, after the submitter has its records: scrape until the
    // last one is counted (bounded).
    let acked = "taskhost_worker_items_acked_total{plugin=\"testkit\"}";
    let deadline = Instant::now() + Duration::from_secs(30);
    let metrics = loop {
        let (status, body) = get(&addr, "/metrics");
        assert!(status.contains(" 200 "), "{status}");
        assert!(body.ends_with("# EOF\n"), "{body}");
        let metrics = samples(&body);
        if metrics.get(acked) == Some(&37.0) || Instant::now() >= deadline {
            break metrics;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let plugin = |name: &str| {
        let key = format!("taskhost_{name}{{plugin=\"testkit\"}}");
        *metrics
            .get(&key)
            .unwrap_or_else(|| panic!("no {key} in {metrics:?}"))
    };
    assert_eq!(plugin("worker_items_pulled_total"), 37.0, "{metrics:?}");
    assert_eq!(plugin("worker_items_acked_total"), 37.0, "{metrics:?}");
    assert_eq!(plugin("worker_outcomes_total"), 37.0, "{metrics:?}");
    assert_eq!(plugin("worker_items_failed_total"), 7.0, "{metrics:?}");
    assert_eq!(plugin("worker_items_redelivered_total"), 0.0, "{metrics:?}");
    assert_eq!(plugin("worker_items_given_back_total"), 0.0, "{metrics:?}");
    assert_eq!(plugin("worker_finish_errors_total"), 0.0, "{metrics:?}");
    assert_eq!(plugin("worker_items_held"), 0.0, "{metrics:?}");
    assert_eq!(
        metrics.get("taskhost_worker_info{worker=\"m1\"}"),
        Some(&1.0)
    );
    // A task that returns an error still returned: the pool completed every item.
    let pool = |name: &str, pool: &str| {
        let key = format!("taskhost_{name}{{pool=\"{pool}\"}}");
        *metrics
            .get(&key)
            .unwrap_or_else(|| panic!("no {key} in {metrics:?}"))
    };
    assert_eq!(pool("pool_tasks_submitted_total", "default"), 37.0);
    assert_eq!(pool("pool_tasks_completed_total", "default"), 37.0);
    assert_eq!(pool("pool_tasks_failed_total", "default"), 0.0);
    assert_eq!(pool("pool_tasks_running", "default"), 0.0);
    assert_eq!(pool("pool_tasks_completed_total", "cpu"), 0.0);
    assert_eq!(pool("pool_workers_alive", "cpu"), 0.0);

    let (status, _) = get(&addr, "/other");
    assert!(status.contains(" 404 "), "{status}");
}

#[test]
fn a_bad_metrics_addr_is_a_usage_error_naming_the_flag() {
    let dir = Dir::with_config("[cluster]\nurl = \"nats://127.0.0.1:1\"\n");
    let run = dir.run(&["worker", "--metrics-addr", "not-an-address"], "");
    run.assert_code(2);
    assert!(run.stderr.contains("--metrics-addr"), "{}", run.stderr);
}

#[test]
fn a_metrics_addr_in_use_is_a_usage_error_naming_the_flag() {
    let _turn = turn();
    let cluster = Cluster::start("", 1);
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let run = cluster.dir.run(&["worker", "--metrics-addr", &addr], "");
    run.assert_code(2);
    assert!(
        run.stderr.contains(&format!("--metrics-addr {addr}")),
        "{}",
        run.stderr
    );
}
