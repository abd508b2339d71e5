//! Outcomes: one per item at the reader, whatever the workers published.

use std::time::Duration;

use taskhost_cluster::testing::NatsServer;

use crate::support::{open, settings};

#[test]
fn outcomes_are_read_once_per_item_within_and_after_the_duplicate_window() {
    let server = NatsServer::start();
    let queue = open(settings(&server).duplicate_window(Duration::from_secs(1)));
    let first = queue.publish_outcome("r1", "a", b"first").unwrap();
    assert!(!first.duplicate);
    let again = queue.publish_outcome("r1", "a", b"second").unwrap();
    assert!(again.duplicate, "dropped by the server within the window");
    assert_eq!(again.sequence, first.sequence);
    queue.publish_outcome("r1", "b", b"b").unwrap();
    queue.publish_outcome("r2", "a", b"other run").unwrap();

    let mut results = queue.results("r1").unwrap();
    let read: Vec<(String, Vec<u8>)> = (0..2)
        .map(|_| {
            let outcome = results.next(Duration::from_secs(5)).unwrap().unwrap();
            assert_eq!(outcome.run_id, "r1");
            (outcome.item_id, outcome.payload)
        })
        .collect();
    assert_eq!(
        read,
        [
            ("a".to_owned(), b"first".to_vec()),
            ("b".to_owned(), b"b".to_vec())
        ]
    );
    assert_eq!(results.next(Duration::from_millis(300)).unwrap(), None);

    // Past the window the server stores a second outcome; the reader still drops it.
    std::thread::sleep(Duration::from_millis(1500));
    let late = queue.publish_outcome("r1", "a", b"late").unwrap();
    assert!(!late.duplicate);
    assert_eq!(results.next(Duration::from_millis(500)).unwrap(), None);
    assert_eq!(results.duplicates_skipped(), 1);

    // A reader that starts over (a resumed submitter) reads each item once too.
    let mut resumed = queue.results("r1").unwrap();
    let mut items = Vec::new();
    while let Some(outcome) = resumed.next(Duration::from_millis(500)).unwrap() {
        items.push(outcome.item_id);
        assert!(items.len() <= 2, "{items:?}");
    }
    assert_eq!(items, ["a", "b"]);
    let mut other = queue.results("r2").unwrap();
    assert_eq!(
        other.next(Duration::from_secs(5)).unwrap().unwrap().payload,
        b"other run"
    );
    assert_eq!(other.next(Duration::from_millis(300)).unwrap(), None);
}
