//! Pulling: bounded fetches, sharing between workers, leases, redelivery, nak.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use taskhost_cluster::testing::NatsServer;
use taskhost_cluster::{Finishing, Published};

use crate::support::{echo, open, pull_n, settings};

#[test]
fn two_workers_share_the_items_and_each_item_goes_to_one() {
    let server = NatsServer::start();
    let submitter = open(settings(&server).ack_wait(Duration::from_secs(30)));
    let ids: Vec<String> = (0..200).map(|n| n.to_string()).collect();
    let items: Vec<_> = ids.iter().map(|id| echo("shared", id)).collect();
    for result in submitter.publish_items(&items) {
        result.unwrap();
    }
    let finished = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..2)
        .map(|_| {
            // Each worker has a connection of its own, as on two machines.
            let queue = open(settings(&server).ack_wait(Duration::from_secs(30)));
            let finished = Arc::clone(&finished);
            thread::spawn(move || {
                let testkit = queue.plugin_queue("testkit").unwrap();
                let deadline = Instant::now() + Duration::from_secs(30);
                let mut ran = Vec::new();
                while finished.load(Ordering::SeqCst) < 200 && Instant::now() < deadline {
                    let deliveries = testkit.fetch(5, Duration::from_millis(200)).unwrap();
                    assert!(deliveries.len() <= 5, "fetched {}", deliveries.len());
                    for delivery in deliveries {
                        thread::sleep(Duration::from_millis(2)); // the task
                        ran.push(delivery.item_id().to_owned());
                        delivery.finish(b"done").unwrap();
                        finished.fetch_add(1, Ordering::SeqCst);
                    }
                }
                ran
            })
        })
        .collect();
    let ran: Vec<Vec<String>> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    let mut times: HashMap<&str, usize> = HashMap::new();
    for id in ran.iter().flatten() {
        *times.entry(id.as_str()).or_default() += 1;
    }
    assert_eq!(times.len(), 200, "every item ran");
    assert!(times.values().all(|&n| n == 1), "no item ran twice");
    assert!(
        ran.iter().all(|items| !items.is_empty()),
        "each worker ran some: {} and {}",
        ran[0].len(),
        ran[1].len()
    );
    let mut results = submitter.results("shared").unwrap();
    let mut outcomes = BTreeSet::new();
    while let Some(outcome) = results.next(Duration::from_secs(2)).unwrap() {
        outcomes.insert(outcome.item_id);
        if outcomes.len() == 200 {
            break;
        }
    }
    assert_eq!(outcomes.len(), 200);
}

#[test]
fn a_fetch_takes_at_most_max_and_leaves_the_rest_to_others() {
    let server = NatsServer::start();
    let queue = open(settings(&server).ack_wait(Duration::from_secs(30)));
    let ids: Vec<String> = (0..10).map(|n| n.to_string()).collect();
    for id in &ids {
        queue.publish_item(&echo("r1", id)).unwrap();
    }
    let testkit = queue.plugin_queue("testkit").unwrap();
    let first = testkit.fetch(3, Duration::ZERO).unwrap();
    assert_eq!(first.len(), 3);
    let state = testkit.state().unwrap();
    assert_eq!((state.pending, state.ack_pending), (7, 3));
    let rest = testkit.fetch(100, Duration::from_secs(1)).unwrap();
    assert_eq!(rest.len(), 7);
    assert!(testkit.fetch(0, Duration::from_secs(1)).unwrap().is_empty());
    assert!(testkit.fetch(5, Duration::ZERO).unwrap().is_empty());
}

#[test]
fn a_fetch_waits_for_the_first_item_and_no_longer() {
    let server = NatsServer::start();
    let queue = open(settings(&server));
    let testkit = queue.plugin_queue("testkit").unwrap();
    let started = Instant::now();
    assert!(testkit
        .fetch(4, Duration::from_millis(400))
        .unwrap()
        .is_empty());
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(350) && waited < Duration::from_secs(2),
        "{waited:?}"
    );

    let publisher = queue.clone();
    let late = thread::spawn(move || {
        thread::sleep(Duration::from_millis(300));
        publisher.publish_item(&echo("r1", "late")).unwrap();
    });
    let started = Instant::now();
    let deliveries = testkit.fetch(4, Duration::from_secs(5)).unwrap();
    let waited = started.elapsed();
    late.join().unwrap();
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0].item_id(), "late");
    assert_eq!(deliveries[0].delivery_count(), 1);
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(2),
        "returned as soon as the item came, not after the full wait: {waited:?}"
    );
}

#[test]
fn an_unacked_item_is_redelivered_after_ack_wait() {
    let server = NatsServer::start();
    let queue = open(settings(&server));
    queue.publish_item(&echo("r1", "a")).unwrap();
    let testkit = queue.plugin_queue("testkit").unwrap();
    let held = pull_n(&testkit, 1, Duration::from_secs(5));
    assert_eq!(held.len(), 1);
    let taken = Instant::now();
    // A second worker waits; the first never acks (as if it had died).
    let other = open(settings(&server)).plugin_queue("testkit").unwrap();
    let again = pull_n(&other, 1, Duration::from_secs(5));
    let after = taken.elapsed();
    assert_eq!(again.len(), 1, "redelivered");
    assert_eq!(again[0].item_id(), "a");
    assert_eq!(again[0].delivery_count(), 2);
    assert!(
        after >= Duration::from_millis(900) && after < Duration::from_millis(2500),
        "redelivered after ack_wait (1 s) and within a second more: {after:?}"
    );
}

#[test]
fn a_kept_lease_holds_a_long_task_past_ack_wait() {
    let server = NatsServer::start();
    let queue = open(settings(&server));
    queue.publish_item(&echo("r1", "long")).unwrap();
    let testkit = queue.plugin_queue("testkit").unwrap();
    let mut delivery = pull_n(&testkit, 1, Duration::from_secs(5)).pop().unwrap();
    delivery.keep_leased();
    // Three and a half times ack_wait, while another worker keeps asking.
    let other = open(settings(&server)).plugin_queue("testkit").unwrap();
    let stolen = pull_n(&other, 1, Duration::from_millis(3500));
    assert!(stolen.is_empty(), "redelivered while leased: {stolen:?}");
    assert!(
        delivery.lease_extensions() >= 6,
        "a third of ack_wait apart: {}",
        delivery.lease_extensions()
    );
    delivery.finish(b"done").unwrap();
    assert!(pull_n(&other, 1, Duration::from_millis(1500)).is_empty());
}

#[test]
fn a_nak_with_a_delay_holds_the_item_back_that_long() {
    let server = NatsServer::start();
    let queue = open(settings(&server).ack_wait(Duration::from_secs(30)));
    queue.publish_item(&echo("r1", "a")).unwrap();
    let testkit = queue.plugin_queue("testkit").unwrap();
    let delivery = pull_n(&testkit, 1, Duration::from_secs(5)).pop().unwrap();
    let naked = Instant::now();
    delivery.nak_after(Duration::from_millis(1500)).unwrap();
    assert!(testkit
        .fetch(1, Duration::from_millis(700))
        .unwrap()
        .is_empty());
    let again = pull_n(&testkit, 1, Duration::from_secs(5)).pop().unwrap();
    let after = naked.elapsed();
    assert!(
        after >= Duration::from_millis(1400) && after < Duration::from_secs(3),
        "{after:?}"
    );
    assert_eq!(again.delivery_count(), 2);

    // A plain nak gives it back at once (long before ack_wait, 30 s here).
    let naked = Instant::now();
    again.nak().unwrap();
    let third = pull_n(&testkit, 1, Duration::from_secs(5)).pop().unwrap();
    assert!(
        naked.elapsed() < Duration::from_secs(1),
        "{:?}",
        naked.elapsed()
    );
    assert_eq!(third.delivery_count(), 3);

    // A terminated item is never delivered again.
    third.term().unwrap();
    assert!(pull_n(&testkit, 1, Duration::from_millis(1500)).is_empty());
}

#[test]
fn finish_stores_the_outcome_and_then_acks() {
    let server = NatsServer::start();
    let queue = open(settings(&server));
    queue.publish_item(&echo("r1", "a")).unwrap();
    let testkit = queue.plugin_queue("testkit").unwrap();
    let delivery = pull_n(&testkit, 1, Duration::from_secs(5)).pop().unwrap();
    let published = delivery.finish(b"outcome of a").unwrap();
    assert!(!published.duplicate);
    let mut results = queue.results("r1").unwrap();
    let outcome = results.next(Duration::from_secs(5)).unwrap().unwrap();
    assert_eq!(outcome.item_id, "a");
    assert_eq!(outcome.payload, b"outcome of a");
    assert_eq!(outcome.sequence, published.sequence);
    // Acked: not redelivered after ack_wait.
    assert!(pull_n(&testkit, 1, Duration::from_millis(1800)).is_empty());
}

#[test]
fn finishing_in_the_background_publishes_then_acks_each_item() {
    finishes_each_item_in_the_background(false);
}

#[test]
fn finishing_a_batch_publishes_then_acks_each_item() {
    finishes_each_item_in_the_background(true);
}

/// 50 items pulled and finished in the background, one by one or in one [`Finishing`].
fn finishes_each_item_in_the_background(batched: bool) {
    let server = NatsServer::start();
    let queue = open(settings(&server).ack_wait(Duration::from_secs(30)));
    assert_eq!(
        queue.plugin_state("testkit").unwrap(),
        None,
        "no consumer yet"
    );
    let ids: Vec<String> = (0..50).map(|n| n.to_string()).collect();
    let items: Vec<_> = ids.iter().map(|id| echo("bg", id)).collect();
    for result in queue.publish_items(&items) {
        result.unwrap();
    }
    let testkit = queue.plugin_queue("testkit").unwrap();
    let state = queue.plugin_state("testkit").unwrap().expect("created");
    assert_eq!(state.pending, 50);
    let deliveries = pull_n(&testkit, 50, Duration::from_secs(10));
    assert_eq!(deliveries.len(), 50);
    let (sender, finished) = std::sync::mpsc::channel();
    let mut batch = Finishing::default();
    for delivery in deliveries {
        let outcome = format!("out-{}", delivery.item_id()).into_bytes();
        let sender = sender.clone();
        let done = move |result: Result<Published, _>| {
            let _ = sender.send(result.map(|published| published.duplicate));
        };
        if batched {
            batch.add(delivery, outcome, done);
        } else {
            delivery.finish_in_background(outcome, done);
        }
    }
    assert_eq!(batch.len(), if batched { 50 } else { 0 });
    if batched {
        assert!(
            finished.recv_timeout(Duration::from_millis(300)).is_err(),
            "nothing goes out before the batch starts"
        );
    }
    batch.start();
    assert!(batch.is_empty());
    for _ in 0..50 {
        let duplicate = finished.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(duplicate, Ok(false));
    }
    // Acked: nothing pending, nothing leased, nothing comes back.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut state = testkit.state().unwrap();
    while state.ack_pending > 0 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
        state = testkit.state().unwrap();
    }
    assert_eq!((state.pending, state.ack_pending), (0, 0), "{state:?}");
    assert!(testkit
        .fetch(1, Duration::from_millis(300))
        .unwrap()
        .is_empty());
    let mut results = queue.results("bg").unwrap();
    let mut outcomes = HashMap::new();
    while outcomes.len() < 50 {
        let outcome = results
            .next(Duration::from_secs(5))
            .unwrap()
            .expect("an outcome");
        outcomes.insert(outcome.item_id.clone(), outcome.payload);
    }
    assert_eq!(outcomes["7"], b"out-7");
}
