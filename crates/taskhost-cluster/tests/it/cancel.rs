//! Cancels reach the workers that listen.

use std::time::Duration;

use taskhost_cluster::testing::NatsServer;
use taskhost_cluster::Cancel;

use crate::support::{open, settings};

#[test]
fn listeners_hear_cancels_of_runs_and_of_items() {
    let server = NatsServer::start();
    let worker = open(settings(&server));
    let mut listener = worker.cancel_listener().unwrap();
    let mut other_cluster = open(settings(&server).prefix("other"))
        .cancel_listener()
        .unwrap();
    let submitter = open(settings(&server));
    submitter.cancel_item("r1", "a b").unwrap();
    submitter.cancel_item("r1", "").unwrap();
    submitter.cancel_run("r2").unwrap();
    let heard: Vec<Cancel> = (0..3)
        .map(|_| {
            listener
                .next(Duration::from_secs(5))
                .unwrap()
                .expect("a cancel")
        })
        .collect();
    assert_eq!(
        heard,
        [
            Cancel {
                run_id: "r1".into(),
                item_id: Some("a b".into())
            },
            Cancel {
                run_id: "r1".into(),
                item_id: Some(String::new())
            },
            Cancel {
                run_id: "r2".into(),
                item_id: None
            },
        ]
    );
    assert_eq!(listener.next(Duration::from_millis(200)).unwrap(), None);
    assert_eq!(
        other_cluster.next(Duration::from_millis(200)).unwrap(),
        None
    );
}
