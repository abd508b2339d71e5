//! The server gives up after `max_deliver` deliveries and says so in an advisory.

use std::time::{Duration, Instant};

use taskhost_cluster::testing::NatsServer;

use crate::support::{echo, open, settings};

#[test]
fn an_item_whose_deliveries_run_out_is_a_dead_letter_with_the_count() {
    let server = NatsServer::start();
    let queue = open(settings(&server).max_deliver(3));
    let published = queue.publish_item(&echo("r1", "doomed")).unwrap();
    queue.publish_item(&echo("r1", "fine")).unwrap();
    let testkit = queue.plugin_queue("testkit").unwrap();
    let mut dead_letters = queue.dead_letters().unwrap();

    // A worker that fails "doomed" every time (nak), and finishes "fine".
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut doomed_deliveries = Vec::new();
    let dead = loop {
        assert!(Instant::now() < deadline, "no dead letter within 15 s");
        for delivery in testkit.fetch(2, Duration::from_millis(200)).unwrap() {
            if delivery.item_id() == "doomed" {
                doomed_deliveries.push(delivery.delivery_count());
                delivery.nak().unwrap();
            } else {
                delivery.finish(b"ok").unwrap();
            }
        }
        if let Some(dead) = dead_letters.next(Duration::from_millis(50)).unwrap() {
            break dead;
        }
    };
    assert_eq!(doomed_deliveries, [1, 2, 3]);
    assert_eq!(dead.sequence, published.sequence);
    assert_eq!(dead.deliveries, 3);
    assert_eq!(dead.plugin, "testkit");
    let item = dead.item.expect("the item stays in the stream");
    assert_eq!(
        (item.run_id.as_str(), item.item_id.as_str()),
        ("r1", "doomed")
    );
    assert_eq!(item.payload, b"doomed");
    assert!(testkit
        .fetch(2, Duration::from_millis(500))
        .unwrap()
        .is_empty());

    // Stored: a submitter that comes back later reads the same dead letter.
    let mut resumed = queue.dead_letters().unwrap();
    let again = resumed.next(Duration::from_secs(5)).unwrap().unwrap();
    assert_eq!((again.sequence, again.deliveries), (published.sequence, 3));
    assert!(queue.delete_item(dead.sequence).unwrap());
    assert_eq!(resumed.next(Duration::from_millis(300)).unwrap(), None);
}
