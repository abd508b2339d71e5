//! Creating the streams and consumers: idempotent, shared, and strict about settings.

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use taskhost_cluster::testing::NatsServer;
use taskhost_cluster::{ClusterError, NewItem};

use crate::support::{echo, open, pull_n, settings};

#[test]
fn concurrent_creators_all_succeed_and_share_one_consumer_per_plugin() {
    let server = NatsServer::start();
    let creators = 8;
    let barrier = Arc::new(Barrier::new(creators));
    let handles: Vec<_> = (0..creators)
        .map(|_| {
            let builder = settings(&server);
            let barrier = Arc::clone(&barrier);
            thread::spawn(move || {
                let settings = builder.build().unwrap();
                let client = taskhost_cluster::Client::connect(&settings).unwrap();
                barrier.wait();
                let queue = taskhost_cluster::Queue::open(&client).unwrap();
                let testkit = queue.plugin_queue("testkit").unwrap();
                let checksum = queue.plugin_queue("checksum").unwrap();
                (queue, testkit, checksum)
            })
        })
        .collect();
    let opened: Vec<_> = handles
        .into_iter()
        .map(|handle| handle.join().expect("a creator failed"))
        .collect();
    let queue = &opened[0].0;
    for id in ["a", "b", "c"] {
        queue.publish_item(&echo("r1", id)).unwrap();
    }
    // One consumer per plugin: every handle sees the same three pending items, and the
    // other plugin's consumer none of them.
    for (_, testkit, checksum) in &opened {
        assert_eq!(testkit.state().unwrap().pending, 3);
        assert_eq!(checksum.state().unwrap().pending, 0);
    }
    let taken = pull_n(&opened[5].1, 3, Duration::from_secs(5));
    assert_eq!(taken.len(), 3);
    assert_eq!(opened[2].1.state().unwrap().ack_pending, 3);
}

#[test]
fn other_settings_for_an_existing_queue_are_a_conflict_naming_what_differs() {
    let server = NatsServer::start();
    let queue = open(settings(&server));
    queue.plugin_queue("testkit").unwrap();

    let other_ack_wait = open(settings(&server).ack_wait(Duration::from_secs(7)));
    let error = other_ack_wait.plugin_queue("testkit").unwrap_err();
    assert!(matches!(error, ClusterError::Conflict { .. }), "{error:?}");
    assert!(
        error
            .to_string()
            .starts_with("consumer testkit of stream taskhost_items exists on the server"),
        "{error}"
    );
    // A plugin no one has opened yet is free to take.
    other_ack_wait.plugin_queue("checksum").unwrap();

    let settings = settings(&server)
        .duplicate_window(Duration::from_secs(7200))
        .results_max_age(Duration::from_secs(7200))
        .build()
        .unwrap();
    let client = taskhost_cluster::Client::connect(&settings).unwrap();
    let error = taskhost_cluster::Queue::open(&client).unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("stream taskhost_items exists on the server with other settings"),
        "{error}"
    );
}

#[test]
fn names_that_cannot_be_subjects_are_refused_and_dots_are_kept() {
    let server = NatsServer::start();
    let queue = open(settings(&server));
    let error = queue.plugin_queue("a b").unwrap_err();
    assert_eq!(
        error.to_string(),
        "invalid plugin \"a b\": expected one or more of A-Z a-z 0-9 _ - ."
    );
    let bad_task = NewItem {
        task: "x*",
        ..echo("r1", "a")
    };
    assert!(matches!(
        queue.publish_item(&bad_task),
        Err(ClusterError::InvalidName { kind: "task", .. })
    ));
    assert!(matches!(
        queue.publish_item(&echo("r.1", "a")),
        Err(ClusterError::InvalidName { kind: "run id", .. })
    ));

    let dotted = NewItem {
        plugin: "my.plugin",
        task: "v1.sum",
        ..echo("r1", "d")
    };
    queue.publish_item(&dotted).unwrap();
    let deliveries = pull_n(
        &queue.plugin_queue("my.plugin").unwrap(),
        1,
        Duration::from_secs(5),
    );
    assert_eq!(deliveries.len(), 1);
    assert_eq!(
        (deliveries[0].plugin(), deliveries[0].task()),
        ("my.plugin", "v1.sum")
    );
    // `my` is another plugin: its consumer does not see `my.plugin`'s items.
    queue.publish_item(&dotted).unwrap();
    queue
        .publish_item(&NewItem {
            item_id: "e",
            ..dotted
        })
        .unwrap();
    assert_eq!(
        queue.plugin_queue("my").unwrap().state().unwrap().pending,
        0
    );
}

#[test]
fn two_prefixes_on_one_server_are_two_clusters() {
    let server = NatsServer::start();
    let first = open(settings(&server).prefix("first"));
    let second = open(settings(&server).prefix("second"));
    first.publish_item(&echo("r1", "a")).unwrap();
    let theirs = second.plugin_queue("testkit").unwrap();
    assert!(theirs
        .fetch(10, Duration::from_millis(300))
        .unwrap()
        .is_empty());
    let ours = pull_n(
        &first.plugin_queue("testkit").unwrap(),
        1,
        Duration::from_secs(5),
    );
    assert_eq!(ours.len(), 1);
    assert_eq!(ours[0].item_id(), "a");
}
