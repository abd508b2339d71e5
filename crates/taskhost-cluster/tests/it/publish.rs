//! Publishing: de-duplication by run and item id, batches, deleting queued items.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use taskhost_cluster::testing::NatsServer;
use taskhost_cluster::{ClusterError, NewItem};

use crate::support::{echo, open, pull_n, settings};

#[test]
fn publishing_again_is_dropped_by_run_and_item_id() {
    let server = NatsServer::start();
    // A long ack_wait: the deliveries below are held, and must not come back meanwhile.
    let queue = open(settings(&server).ack_wait(Duration::from_secs(30)));
    let first = queue.publish_item(&echo("r1", "a")).unwrap();
    assert!(!first.duplicate);
    let again = queue.publish_item(&echo("r1", "a")).unwrap();
    assert!(again.duplicate);
    assert_eq!(again.sequence, first.sequence);
    let other_run = queue.publish_item(&echo("r2", "a")).unwrap();
    let other_item = queue.publish_item(&echo("r1", "b")).unwrap();
    assert!(!other_run.duplicate && !other_item.duplicate);
    assert_ne!(other_run.sequence, first.sequence);

    let batch = queue.publish_items(&[echo("r1", "a"), echo("r1", "c"), echo("r1", "c")]);
    let duplicates: Vec<bool> = batch
        .iter()
        .map(|r| r.as_ref().unwrap().duplicate)
        .collect();
    assert_eq!(duplicates, [true, false, true]);

    let testkit = queue.plugin_queue("testkit").unwrap();
    let deliveries = pull_n(&testkit, 10, Duration::from_secs(2));
    let mut got: Vec<(String, String)> = deliveries
        .iter()
        .map(|d| (d.run_id().to_owned(), d.item_id().to_owned()))
        .collect();
    got.sort();
    let want: Vec<(String, String)> = [("r1", "a"), ("r1", "b"), ("r1", "c"), ("r2", "a")]
        .iter()
        .map(|(r, i)| (r.to_string(), i.to_string()))
        .collect();
    assert_eq!(got, want);
}

#[test]
fn a_batch_gets_one_result_per_item_in_order() {
    let server = NatsServer::start();
    let queue = open(settings(&server));
    let ids: Vec<String> = (0..600).map(|n| format!("item {n}")).collect();
    let mut items: Vec<NewItem<'_>> = ids.iter().map(|id| echo("batch", id)).collect();
    items.insert(
        300,
        NewItem {
            plugin: "bad plugin",
            ..echo("batch", "x")
        },
    );
    let results = queue.publish_items(&items);
    assert_eq!(results.len(), 601);
    assert!(matches!(
        results[300],
        Err(ClusterError::InvalidName { kind: "plugin", .. })
    ));
    let sequences: Vec<u64> = results
        .iter()
        .enumerate()
        .filter(|(index, _)| *index != 300)
        .map(|(_, result)| result.as_ref().unwrap().sequence)
        .collect();
    assert!(sequences.windows(2).all(|w| w[0] < w[1]), "in order");
    assert_eq!(
        queue
            .plugin_queue("testkit")
            .unwrap()
            .state()
            .unwrap()
            .pending,
        600
    );
    // The stored item is what was published, ids with spaces included.
    let stored = queue.item_at(sequences[42]).unwrap().unwrap();
    assert_eq!(
        (stored.run_id.as_str(), stored.item_id.as_str()),
        ("batch", "item 42")
    );
    assert_eq!(
        (stored.plugin.as_str(), stored.task.as_str()),
        ("testkit", "echo")
    );
    assert_eq!(stored.payload, b"item 42");
}

#[test]
fn deleting_a_queued_item_cancels_it() {
    let server = NatsServer::start();
    let queue = open(settings(&server).ack_wait(Duration::from_secs(30)));
    let published: Vec<u64> = ["a", "b\nc", "d"]
        .iter()
        .map(|id| queue.publish_item(&echo("r1", id)).unwrap().sequence)
        .collect();
    assert!(queue.delete_item(published[1]).unwrap());
    assert!(!queue.delete_item(published[1]).unwrap(), "already gone");
    assert_eq!(queue.item_at(published[1]).unwrap(), None);
    assert_eq!(queue.item_at(published[2]).unwrap().unwrap().item_id, "d");

    let testkit = queue.plugin_queue("testkit").unwrap();
    let deliveries = pull_n(&testkit, 3, Duration::from_secs(2));
    let ids: BTreeSet<&str> = deliveries.iter().map(|d| d.item_id()).collect();
    assert_eq!(ids, BTreeSet::from(["a", "d"]));
    for delivery in deliveries {
        delivery.ack().unwrap();
    }
    queue.client().flush().unwrap();
    // An acked item leaves the work queue (the server applies acks on its own time).
    let deadline = Instant::now() + Duration::from_secs(3);
    while queue.item_at(published[0]).unwrap().is_some() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        !queue.delete_item(published[0]).unwrap(),
        "nothing left to delete"
    );
}
