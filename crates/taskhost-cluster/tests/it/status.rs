//! What `taskhost cluster status` reads: heartbeats, and the queue's counts.

use std::time::Duration;

use taskhost_cluster::testing::NatsServer;

use crate::support::{echo, open, pull_n, settings};

#[test]
fn heartbeats_are_heard_by_who_listens_and_name_their_worker() {
    let server = NatsServer::start();
    let queue = open(settings(&server));
    let mut heartbeats = queue.heartbeats().unwrap();
    queue
        .publish_heartbeat("host-1.lan-42", b"{\"running\":3}")
        .unwrap();
    let beat = heartbeats
        .next(Duration::from_secs(5))
        .unwrap()
        .expect("heard");
    assert_eq!(beat.worker, "host-1.lan-42");
    assert_eq!(beat.payload, b"{\"running\":3}");
    assert!(heartbeats
        .next(Duration::from_millis(100))
        .unwrap()
        .is_none());
    assert!(
        queue.publish_heartbeat("a b", b"").is_err(),
        "not a subject token"
    );
}

#[test]
fn counts_say_what_is_queued_per_task_and_held_per_plugin() {
    let server = NatsServer::start();
    let queue = open(settings(&server).ack_wait(Duration::from_secs(30)));
    let ids: Vec<String> = (0..5).map(|n| n.to_string()).collect();
    for id in &ids {
        queue.publish_item(&echo("c", id)).unwrap();
    }
    let mut other = echo("c", "x");
    other.task = "sleep";
    queue.publish_item(&other).unwrap();
    let counts = queue.counts().unwrap();
    assert_eq!(
        counts.queued,
        [
            ("testkit".to_owned(), "echo".to_owned(), 5),
            ("testkit".to_owned(), "sleep".to_owned(), 1)
        ]
    );
    assert!(counts.plugins.is_empty(), "no worker yet");
    assert_eq!(counts.dead_letters, 0);
    let testkit = queue.plugin_queue("testkit").unwrap();
    let held = pull_n(&testkit, 2, Duration::from_secs(5));
    assert_eq!(held.len(), 2);
    let counts = queue.counts().unwrap();
    let (plugin, state) = &counts.plugins[0];
    assert_eq!(plugin, "testkit");
    assert_eq!((state.pending, state.ack_pending), (4, 2));
}
