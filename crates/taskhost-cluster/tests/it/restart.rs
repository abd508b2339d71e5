//! The server stops and starts again on the same store: nothing stored is lost.

use std::time::{Duration, Instant};

use taskhost_cluster::testing::NatsServer;

use crate::support::{echo, open, settings};

#[test]
fn queued_items_and_outcomes_survive_a_server_restart() {
    let mut server = NatsServer::start();
    let queue = open(settings(&server).ack_wait(Duration::from_secs(30)));
    let ids: Vec<String> = (0..5).map(|n| n.to_string()).collect();
    for id in &ids {
        queue.publish_item(&echo("r1", id)).unwrap();
    }
    queue.publish_outcome("r1", "earlier", b"kept").unwrap();
    let testkit = queue.plugin_queue("testkit").unwrap();
    let pid = server.pid();
    server.restart();
    assert_ne!(server.pid(), pid, "a new process");

    // The client reconnects by itself; requests fail meanwhile.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut got = Vec::new();
    while got.len() < 5 {
        assert!(Instant::now() < deadline, "got {got:?} within 20 s");
        match testkit.fetch(5 - got.len(), Duration::from_millis(500)) {
            Ok(deliveries) => got.extend(deliveries.into_iter().map(|d| d.item_id().to_owned())),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
    got.sort();
    assert_eq!(got, ids);
    let mut results = queue.results("r1").unwrap();
    let outcome = results.next(Duration::from_secs(5)).unwrap().unwrap();
    assert_eq!(
        (outcome.item_id.as_str(), &outcome.payload[..]),
        ("earlier", &b"kept"[..])
    );
}

#[test]
fn finish_gives_the_delivery_back_while_the_server_is_down() {
    let mut server = NatsServer::start();
    let queue = open(settings(&server).ack_wait(Duration::from_secs(30)));
    queue.publish_item(&echo("r1", "a")).unwrap();
    let testkit = queue.plugin_queue("testkit").unwrap();
    let delivery = testkit
        .fetch(1, Duration::from_secs(5))
        .unwrap()
        .pop()
        .unwrap();
    server.stop();
    let failed = delivery.finish(b"outcome").unwrap_err();
    assert_eq!(failed.delivery.item_id(), "a");
    server.restart();

    let deadline = Instant::now() + Duration::from_secs(20);
    let mut delivery = failed.delivery;
    loop {
        match delivery.finish(b"outcome") {
            Ok(_) => break,
            Err(failed) => {
                assert!(Instant::now() < deadline, "still failing: {}", failed.error);
                delivery = failed.delivery;
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
    let mut results = queue.results("r1").unwrap();
    assert_eq!(
        results
            .next(Duration::from_secs(5))
            .unwrap()
            .unwrap()
            .payload,
        b"outcome"
    );
    assert_eq!(results.next(Duration::from_millis(300)).unwrap(), None);
}
