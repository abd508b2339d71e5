//! Helpers shared by the tests.

use std::time::{Duration, Instant};

use taskhost_cluster::testing::NatsServer;
use taskhost_cluster::{
    Client, ClusterSettings, ClusterSettingsBuilder, Delivery, NewItem, PluginQueue, Queue,
};

/// Settings for `server` with a short `ack_wait` (1 s), so redelivery tests take seconds.
pub fn settings(server: &NatsServer) -> ClusterSettingsBuilder {
    ClusterSettings::builder(server.url())
        .ack_wait(Duration::from_secs(1))
        .connect_timeout(Duration::from_secs(2))
}

/// A connected queue with `builder`'s settings.
pub fn open(builder: ClusterSettingsBuilder) -> Queue {
    let settings = builder.build().expect("valid settings");
    let client = Client::connect(&settings).expect("connecting to the test server");
    Queue::open(&client).expect("opening the queue")
}

/// An item of plugin `testkit`, task `echo`, whose payload is its id.
pub fn echo<'a>(run_id: &'a str, item_id: &'a str) -> NewItem<'a> {
    NewItem {
        run_id,
        item_id,
        plugin: "testkit",
        task: "echo",
        payload: item_id.as_bytes(),
    }
}

/// Pulls until `count` deliveries came or `within` ran out.
pub fn pull_n(queue: &PluginQueue, count: usize, within: Duration) -> Vec<Delivery> {
    let deadline = Instant::now() + within;
    let mut deliveries = Vec::new();
    while deliveries.len() < count && Instant::now() < deadline {
        let left = deadline.saturating_duration_since(Instant::now());
        let wait = left.min(Duration::from_millis(500));
        deliveries.extend(
            queue
                .fetch(count - deliveries.len(), wait)
                .expect("pulling"),
        );
    }
    deliveries
}
