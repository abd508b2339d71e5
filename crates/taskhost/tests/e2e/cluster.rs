//! The cluster mode end to end: a real `nats-server -js` on 127.0.0.1 (the cluster crate's
//! test server), `taskhost worker` processes of the real binary, and `taskhost submit`.
//!
//! Every wait is bounded in count and in time; no test asserts on how long something took
//! beyond generous bounds that only catch a hang. The tests take turns (a lock): each starts
//! a server and several processes, and together they would starve a small machine.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use taskhost_cluster::testing::NatsServer;

use crate::signals::send_signal;
use crate::util::{jsonl, parse_jsonl, Dir, Run};

/// One cluster test at a time.
pub fn turn() -> MutexGuard<'static, ()> {
    static TURN: Mutex<()> = Mutex::new(());
    TURN.lock().unwrap_or_else(|e| e.into_inner())
}

/// A server, a folder with a config naming it, and the workers started so far.
pub struct Cluster {
    pub server: NatsServer,
    pub dir: Dir,
    workers: Vec<Worker>,
}

/// A `taskhost worker` process; killed when dropped.
pub struct Worker {
    pub name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Worker {
    /// What it wrote on stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends `signal` and waits (at most 60 s) for it to exit; its exit status.
    pub fn stop(&mut self, signal: &str) -> Option<i32> {
        let mut child = self.child.take()?;
        send_signal(&child, signal);
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Some(status) = child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        panic!(
            "worker {} did not exit within 60s of SIG{signal}",
            self.name
        );
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Cluster {
    /// A server without authentication and a config with `[cluster]` (plus `cluster`, more
    /// keys of that table) whose default pool has `workers` workers.
    pub fn start(cluster: &str, workers: usize) -> Cluster {
        let server = NatsServer::start();
        let dir = Dir::with_config(&format!(
            "[cluster]\nurl = \"{}\"\nconnect_timeout = \"2s\"\n{cluster}\n",
            server.url()
        ));
        let config = std::fs::read_to_string(dir.config()).unwrap();
        let default_pool = "[pools.default]\nmax_workers = 4\n";
        assert!(
            config.contains(default_pool),
            "the base config changed: {config}"
        );
        let config = config.replace(
            default_pool,
            &format!("[pools.default]\nmax_workers = {workers}\n"),
        );
        std::fs::write(dir.config(), config).unwrap();
        Cluster {
            server,
            dir,
            workers: Vec::new(),
        }
    }

    /// Starts `taskhost worker --name NAME` (with `args` before `worker`) and waits until it
    /// serves.
    pub fn worker(&mut self, name: &str, args: &[&str]) -> &mut Worker {
        self.worker_with(name, args, &[])
    }

    /// [`Cluster::worker`] with `worker_args` after `worker`.
    pub fn worker_with(&mut self, name: &str, args: &[&str], worker_args: &[&str]) -> &mut Worker {
        let log = self.dir.path().join(format!("{name}.log"));
        let child = self
            .dir
            .command()
            .args(args)
            .args(["worker", "--name", name])
            .args(worker_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log).unwrap())
            .spawn()
            .expect("starting taskhost worker");
        self.workers.push(Worker {
            name: name.to_owned(),
            child: Some(child),
            log,
        });
        let worker = self.workers.last_mut().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while !worker.log().contains(": serving ") {
            assert!(
                Instant::now() < deadline,
                "worker {name} did not start serving within 60s:\n{}",
                worker.log()
            );
            if let Some(child) = worker.child.as_mut() {
                if let Some(status) = child.try_wait().unwrap() {
                    panic!("worker {name} exited with {status}:\n{}", worker.log());
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        worker
    }

    pub fn worker_named(&mut self, name: &str) -> &mut Worker {
        self.workers.iter_mut().find(|w| w.name == name).unwrap()
    }

    /// `taskhost submit` of `items` (written to a file), waiting for it; its records parsed.
    pub fn submit(&self, items: &[Value], args: &[&str]) -> (Run, Vec<Value>) {
        let input = self.dir.write("in.jsonl", &jsonl(items));
        let output = self.dir.path().join("out.jsonl");
        let mut command = self.dir.command();
        command
            .args(["submit", "--input", input.to_str().unwrap()])
            .args(["--output", output.to_str().unwrap()])
            .args(args);
        let run = self.dir.run_command(&mut command, "");
        let records = parse_jsonl(&std::fs::read_to_string(&output).unwrap_or_default());
        (run, records)
    }

    /// Starts `taskhost submit` without waiting; its stderr is piped (the run id is on it).
    pub fn spawn_submit(&self, items: &[Value], output: &str, args: &[&str]) -> Child {
        let input = self.dir.write("in.jsonl", &jsonl(items));
        self.dir
            .command()
            .args(["submit", "--input", input.to_str().unwrap()])
            .args(["--output", self.dir.path().join(output).to_str().unwrap()])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting taskhost submit")
    }

    /// The records in `output` so far.
    pub fn records(&self, output: &str) -> Vec<Value> {
        let text = std::fs::read_to_string(self.dir.path().join(output)).unwrap_or_default();
        // A record may be half written: only whole lines count.
        let whole = text.rfind('\n').map_or("", |end| &text[..=end]);
        parse_jsonl(whole)
    }

    /// Waits (at most `within`) until `output` holds `count` records.
    pub fn wait_for_records(&self, output: &str, count: usize, within: Duration) -> Vec<Value> {
        let deadline = Instant::now() + within;
        loop {
            let records = self.records(output);
            if records.len() >= count || Instant::now() >= deadline {
                return records;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The run id `taskhost submit` prints first on stderr.
fn run_id_of(child: &mut Child) -> String {
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let first = lines.next().expect("a line on stderr").unwrap();
    // Keep reading stderr so that the submitter never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    first
        .split_whitespace()
        .nth(3)
        .unwrap_or_else(|| panic!("no run id in {first:?}"))
        .to_owned()
}

/// Work items `task` with `input`, ids `{prefix}{n}`.
pub fn items(prefix: &str, count: usize, task: &str, input: Value) -> Vec<Value> {
    (0..count)
        .map(|n| json!({"id": format!("{prefix}{n}"), "task": task, "input": input}))
        .collect()
}

/// The records by id, asserting that each line of `items` has exactly one (with its line).
fn one_per_line(items: &[Value], records: &[Value]) -> BTreeMap<String, Value> {
    let mut by_id = BTreeMap::new();
    for record in records {
        let id = record["id"].as_str().unwrap().to_owned();
        assert!(
            by_id.insert(id.clone(), record.clone()).is_none(),
            "two records for {id}"
        );
    }
    assert_eq!(by_id.len(), items.len(), "a record per line");
    for (index, item) in items.iter().enumerate() {
        let id = item["id"].as_str().unwrap();
        let record = by_id
            .get(id)
            .unwrap_or_else(|| panic!("no record for {id}"));
        assert_eq!(record["line"], json!(index + 1), "{record}");
    }
    by_id
}

/// How many records each worker wrote (`null`: the submitter's own).
fn by_worker(records: &BTreeMap<String, Value>) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for record in records.values() {
        let worker = record["host"].as_str().unwrap_or("(submitter)").to_owned();
        *counts.entry(worker).or_default() += 1;
    }
    counts
}

#[test]
fn ten_thousand_items_across_three_workers_one_record_each() {
    let _turn = turn();
    let mut cluster = Cluster::start("", 4);
    for name in ["w1", "w2", "w3"] {
        cluster.worker(name, &[]);
    }
    let items = items("e", 10_000, "testkit/echo", json!({"payload": "x"}));
    let (run, records) = cluster.submit(&items, &[]);
    run.assert_code(0);
    assert!(run.stderr.contains("ok 10000"), "{}", run.stderr);
    let records = one_per_line(&items, &records);
    assert!(records.values().all(|r| r["status"] == "ok"));
    assert_eq!(records["e7"]["output"], json!({"payload": "x"}));
    let counts = by_worker(&records);
    assert_eq!(
        counts.keys().collect::<Vec<_>>(),
        ["w1", "w2", "w3"],
        "each worker ran some: {counts:?}"
    );

    // The status command sees the three.
    let status = cluster.dir.run(&["cluster", "status"], "");
    status.assert_code(0);
    for name in ["w1", "w2", "w3"] {
        assert!(status.stdout.contains(name), "{}", status.stdout);
    }
    assert!(status.stdout.contains("testkit"), "{}", status.stdout);
}

#[test]
fn a_worker_killed_mid_run_loses_nothing_and_its_items_run_again() {
    let _turn = turn();
    let mut cluster = Cluster::start("ack_wait = \"2s\"", 4);
    cluster.worker("doomed", &[]);
    cluster.worker("survivor", &[]);
    let items = items("s", 80, "testkit/sleep", json!({"ms": 250}));
    let submit = cluster.spawn_submit(&items, "out.jsonl", &[]);
    // Once the doomed worker has finished a few, it dies holding the ones it runs.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cluster
        .records("out.jsonl")
        .iter()
        .any(|r| r["host"] == "doomed")
    {
        assert!(Instant::now() < deadline, "the doomed worker ran nothing");
        std::thread::sleep(Duration::from_millis(10));
    }
    let killed_at = std::time::SystemTime::now();
    cluster.worker_named("doomed").stop("KILL");
    let output = crate::trace::WaitTimeout::wait_with_output_timeout(submit);
    let run = Run::from(output);
    run.assert_code(0);
    let records = one_per_line(&items, &cluster.records("out.jsonl"));
    assert!(records.values().all(|r| r["status"] == "ok"), "{records:?}");
    let again: Vec<&Value> = records
        .values()
        .filter(|r| r["deliveries"].as_u64() > Some(1))
        .collect();
    assert!(
        !again.is_empty(),
        "the items the killed worker held came back"
    );
    for record in &again {
        assert_eq!(record["host"], "survivor", "{record}");
        assert!(record["attempts"].as_u64() > Some(1), "{record}");
    }
    // The first item given up by the dead worker started again within ack_wait and a second.
    let restarted = again
        .iter()
        .map(|record| {
            let started = record["started"].as_str().expect("a started time");
            let started = humantime::parse_rfc3339(started).expect("RFC 3339");
            started.duration_since(killed_at).unwrap_or_default()
        })
        .min()
        .expect("redelivered items");
    eprintln!("redelivery after kill -9: {restarted:?} (ack_wait 2 s)");
    assert!(
        restarted <= Duration::from_secs(3),
        "redelivered {restarted:?} after the kill, more than ack_wait + 1 s"
    );
}

#[test]
fn stopping_and_restarting_the_server_mid_run_loses_nothing() {
    let _turn = turn();
    let mut cluster = Cluster::start("ack_wait = \"3s\"", 4);
    cluster.worker("w1", &[]);
    cluster.worker("w2", &[]);
    let items = items("r", 600, "testkit/sleep", json!({"ms": 20}));
    let submit = cluster.spawn_submit(&items, "out.jsonl", &[]);
    let before = cluster.wait_for_records("out.jsonl", 100, Duration::from_secs(60));
    assert!(before.len() >= 100, "the run started");
    cluster.server.stop();
    std::thread::sleep(Duration::from_millis(500));
    cluster.server.restart();
    let run = Run::from(crate::trace::WaitTimeout::wait_with_output_timeout(submit));
    run.assert_code(0);
    let records = one_per_line(&items, &cluster.records("out.jsonl"));
    assert!(
        records.values().all(|r| r["status"] == "ok"),
        "{}",
        run.stderr
    );
    assert!(
        records.len() > before.len(),
        "records came after the restart too"
    );
}

/// A folder with only the testkit plugin in it.
fn testkit_only(dir: &Dir) -> PathBuf {
    let only = dir.path().join("testkit-only");
    std::fs::create_dir(&only).unwrap();
    let library = std::fs::read_dir(crate::util::plugin_dir())
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().contains("taskhost_testkit"))
        .unwrap();
    std::fs::copy(library.path(), only.join(library.file_name())).unwrap();
    only
}

#[test]
fn a_worker_takes_only_its_plugins_items_and_the_others_are_rejected_after_the_wait() {
    let _turn = turn();
    let cluster = Cluster::start("worker_wait = \"2s\"", 4);
    // The base config names the folder with every plugin; this worker's has testkit only.
    let only = testkit_only(&cluster.dir);
    let log = cluster.dir.path().join("lone.log");
    let mut lone = cluster
        .dir
        .command()
        .env("TASKHOST_PLUGINS__DIRS", only.to_str().unwrap())
        .args(["worker", "--name", "lone"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(&log)
        .unwrap()
        .contains(": serving testkit from")
    {
        assert!(
            Instant::now() < deadline,
            "{}",
            std::fs::read_to_string(&log).unwrap()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut all = items("e", 20, "testkit/echo", json!(1));
    all.extend(items("p", 3, "primes/count", json!({"n": 100})));
    all.push(json!({"id": "t", "task": "testkit/no_such_task"}));
    let (run, records) = cluster.submit(&all, &[]);
    let _ = lone.kill();
    let _ = lone.wait();
    run.assert_code(1);
    let records = one_per_line(&all, &records);
    for n in 0..20 {
        let record = &records[&format!("e{n}")];
        assert_eq!(
            (record["status"].as_str(), record["host"].as_str()),
            (Some("ok"), Some("lone"))
        );
    }
    for n in 0..3 {
        let record = &records[&format!("p{n}")];
        assert_eq!(record["status"], "rejected", "{record}");
        assert!(record["host"].is_null(), "no worker took it: {record}");
        let error = record["error"].as_str().unwrap();
        assert!(
            error.contains("primes/count") && error.contains("cluster.worker_wait"),
            "{error}"
        );
    }
    // A task the plugin lacks: the worker that took it says so.
    let unknown = &records["t"];
    assert_eq!(
        (unknown["status"].as_str(), unknown["host"].as_str()),
        (Some("rejected"), Some("lone"))
    );
    assert!(unknown["error"]
        .as_str()
        .unwrap()
        .contains("testkit/no_such_task"));
}

#[test]
fn a_task_longer_than_ack_wait_is_not_redelivered_while_its_worker_lives() {
    let _turn = turn();
    let mut cluster = Cluster::start("ack_wait = \"1s\"", 4);
    cluster.worker("w1", &[]);
    cluster.worker("w2", &[]);
    let items = items("long", 2, "testkit/sleep", json!({"ms": 3500}));
    let (run, records) = cluster.submit(&items, &[]);
    run.assert_code(0);
    let records = one_per_line(&items, &records);
    for record in records.values() {
        assert_eq!(record["deliveries"], 1, "{record}");
        assert_eq!(record["attempts"], 1, "{record}");
    }
    // Neither worker ran one a second time.
    for name in ["w1", "w2"] {
        let code = cluster.worker_named(name).stop("TERM");
        assert_eq!(code, Some(0));
    }
    let ran: usize = ["w1", "w2"]
        .iter()
        .map(|name| tasks_run(&cluster.worker_named(name).log()))
        .sum();
    assert_eq!(ran, 2);
}

/// How many items `worker` holds, from `taskhost cluster status` (0 when it is not listed).
fn held_by(status: &str, worker: &str) -> usize {
    status
        .lines()
        .find(|line| line.trim_start().starts_with(&format!("{worker} ")))
        .and_then(|line| line.split("running ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|count| count.parse().ok())
        .unwrap_or(0)
}

/// The tasks a stopped worker ran, from its summary's pool lines (0 without one).
fn tasks_run(log: &str) -> usize {
    log.lines()
        .filter_map(|line| line.split("tasks run ").nth(1))
        .filter_map(|count| count.trim().parse::<usize>().ok())
        .sum()
}

#[test]
fn ctrl_c_of_the_submitter_cancels_queued_and_running_items() {
    let _turn = turn();
    let mut cluster = Cluster::start("", 2);
    cluster.worker("w1", &[]);
    let items = items("c", 10, "testkit/sleep", json!({"ms": 30_000}));
    let mut submit = cluster.spawn_submit(&items, "out.jsonl", &[]);
    let run_id = run_id_of(&mut submit);
    // Two run on the worker (its pool has two workers), the rest wait in its pool's queue
    // (as many again) and on the server.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = cluster.dir.run(&["cluster", "status"], "");
        if held_by(&status.stdout, "w1") >= 2 {
            break;
        }
        assert!(Instant::now() < deadline, "{}", status.stdout);
    }
    let interrupted = Instant::now();
    send_signal(&submit, "INT");
    let status = submit.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert!(
        interrupted.elapsed() < Duration::from_secs(25),
        "the cancel did not wait for the 30 s tasks"
    );
    let records = one_per_line(&items, &cluster.records("out.jsonl"));
    assert!(
        records.values().all(|r| r["status"] == "cancelled"),
        "{records:?}"
    );
    // The two that ran were stopped by their worker; the queued ones were cancelled before
    // they started, by the submitter (deleted from the queue) or by the worker (taken just
    // before the delete, after the cancel).
    let cancelled = format!("its submitter cancelled run {run_id}: ");
    let stopped = records
        .values()
        .filter(|r| r["error"] == format!("{cancelled}stopped on request"))
        .count();
    assert_eq!(stopped, 2, "{records:#?}");
    for record in records.values() {
        let error = record["error"].as_str().unwrap();
        if record["host"].is_null() {
            assert_eq!(
                error, "cancelled: its submitter was interrupted",
                "{record}"
            );
        } else {
            assert!(error.starts_with(&cancelled), "{record}");
        }
    }
    // Nothing is left on the queue for a worker to run.
    let status = cluster.dir.run(&["cluster", "status"], "");
    assert!(
        status
            .stdout
            .contains("queued per task (waiting or running):\n  none"),
        "{}",
        status.stdout
    );
}

#[test]
fn a_killed_submitter_resumes_and_nothing_runs_twice() {
    let _turn = turn();
    let mut cluster = Cluster::start("", 2);
    cluster.worker("w1", &[]);
    let items = items("k", 30, "testkit/sleep", json!({"ms": 150}));
    let mut first = cluster.spawn_submit(&items, "first.jsonl", &[]);
    let run_id = run_id_of(&mut first);
    let before = cluster.wait_for_records("first.jsonl", 5, Duration::from_secs(60));
    assert!(before.len() >= 5 && before.len() < 30, "{}", before.len());
    send_signal(&first, "KILL");
    let _ = first.wait();
    let output = cluster.dir.path().join("second.jsonl");
    let mut command = cluster.dir.command();
    command
        .args(["submit", "--resume", &run_id, "--ordered"])
        .args([
            "--input",
            cluster.dir.path().join("in.jsonl").to_str().unwrap(),
        ])
        .args(["--output", output.to_str().unwrap()]);
    let run = cluster.dir.run_command(&mut command, "");
    run.assert_code(0);
    assert!(
        run.stderr.contains(&format!("run {run_id}")),
        "{}",
        run.stderr
    );
    let records = parse_jsonl(&std::fs::read_to_string(&output).unwrap());
    let lines: Vec<u64> = records
        .iter()
        .map(|r| r["line"].as_u64().unwrap())
        .collect();
    assert_eq!(
        lines,
        (1..=30).collect::<Vec<u64>>(),
        "every line once, in order"
    );
    one_per_line(&items, &records);
    assert!(records.iter().all(|r| r["status"] == "ok"));
    assert!(records.iter().all(|r| r["deliveries"] == 1), "{records:?}");
    let code = cluster.worker_named("w1").stop("TERM");
    assert_eq!(code, Some(0));
    assert_eq!(
        tasks_run(&cluster.worker_named("w1").log()),
        30,
        "each item ran once"
    );
}

#[test]
fn a_bad_cluster_table_an_unreachable_server_and_wrong_credentials_exit_2() {
    let _turn = turn();
    // No url.
    let dir = Dir::with_config("[cluster]\nack_wait = \"10s\"\n");
    for command in ["worker", "submit"] {
        let run = dir.run(&[command], "");
        run.assert_code(2);
        assert!(
            run.stderr.contains("key `cluster`: expected a `url`"),
            "{}",
            run.stderr
        );
    }
    // Without the table at all.
    let run = Dir::new().run(&["submit"], "");
    run.assert_code(2);
    assert!(
        run.stderr.contains("needs a [cluster] table"),
        "{}",
        run.stderr
    );
    // A bad value, with its line.
    let dir = Dir::with_config("[cluster]\nurl = \"nats://127.0.0.1:1\"\nmax_deliver = 0\n");
    let run = dir.run(&["worker"], "");
    run.assert_code(2);
    assert!(
        run.stderr.contains("key `cluster.max_deliver`"),
        "{}",
        run.stderr
    );

    // Nobody listens on the port: one line, quickly.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = Dir::with_config(&format!(
        "[cluster]\nurl = \"nats://127.0.0.1:{port}\"\nconnect_timeout = \"1s\"\n"
    ));
    let started = Instant::now();
    for command in ["worker", "submit"] {
        let run = dir.run(&[command], "");
        run.assert_code(2);
        let errors: Vec<&str> = run.stderr.lines().filter(|l| l.contains("error")).collect();
        assert_eq!(errors.len(), 1, "{}", run.stderr);
        assert!(
            errors[0].contains(&format!(
                "cannot connect to the NATS server at nats://127.0.0.1:{port}"
            )),
            "{}",
            run.stderr
        );
    }
    assert!(started.elapsed() < Duration::from_secs(30), "no hang");

    // A server that wants a password, given the wrong one.
    let server = NatsServer::start_with(taskhost_cluster::Credentials::UserPassword {
        user: "taskhost".into(),
        password: "right".into(),
    });
    let dir = Dir::with_config(&format!(
        "[cluster]\nurl = \"{}\"\nuser = \"taskhost\"\npassword = \"wrong\"\n",
        server.url()
    ));
    let run = dir.run(&["submit"], "");
    run.assert_code(2);
    assert!(
        run.stderr.contains("refused the credentials"),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("wrong"),
        "the password is not shown: {}",
        run.stderr
    );
    let run = dir.run(&["cluster", "status"], "");
    run.assert_code(2);
}
