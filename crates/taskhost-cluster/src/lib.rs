//! taskhost's cluster mode: workers on many machines sharing one NATS JetStream work queue,
//! through the official `async-nats` client, behind a blocking API for plain threads.
//!
//! # What this crate owns
//!
//! - The connection ([`Client`]): settings checked into [`ClusterSettings`] (keys named as in
//!   the `[cluster]` table), a bounded first connect, credentials and a TLS CA, a small tokio
//!   runtime of its own. **tokio and async-nats live only here**; callers see blocking methods.
//! - The layout on the server ([`Queue::open`]): which streams, subjects and consumers exist
//!   and how they are named, created idempotently by whoever starts first.
//! - The protocol of one item: publish with a de-duplicating message id, pull a bounded number,
//!   keep the lease while it runs, publish the outcome *before* the ack, nak with a delay,
//!   delete to cancel, the max-deliveries advisory when the server gives up, cancels of
//!   running items.
//!
//! # What it must not know
//!
//! The executor, pools, plugins, routing, retries and the JSON of work items and outcomes.
//! Payloads are opaque bytes; plugin and task names are only subject tokens. The host's one
//! dispatch path decides what runs where and what an outcome says; this crate only moves
//! bytes between submitters and workers, at least once.
//!
//! # Layout (prefix `taskhost`)
//!
//! | what | name |
//! | --- | --- |
//! | items stream, work-queue retention, file storage | `taskhost_items`, subjects `taskhost.items.>` |
//! | one item | `taskhost.items.<plugin>.<task>`, headers `Nats-Msg-Id: <run>:<item>`, `Taskhost-Run`, `Taskhost-Item` |
//! | one durable pull consumer per plugin, shared by its workers | `<plugin>`, filter `taskhost.items.<plugin>.*` |
//! | results stream, limits retention, `results_max_age` | `taskhost_results`, subjects `taskhost.results.>` |
//! | one run's outcomes | `taskhost.results.<run>`, `Nats-Msg-Id: <run>:<item>` |
//! | dead letters: the max-deliveries advisories, stored | `taskhost_dead`, subjects `$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.taskhost_items.*` |
//! | cancels of running items (core NATS, not stored) | `taskhost.cancel.<run>`, payload empty (the run) or `item:<item>` |
//! | heartbeats of workers (core NATS, not stored) | `taskhost.workers.<worker>`, payload the host's |
//!
//! Why so: a subject per plugin lets a worker pull only items of plugins it has loaded (a work
//! queue stream allows one consumer per subject, and plugins never overlap); the task in the
//! subject leaves room for per-task depth in `taskhost cluster status`. An item with no worker
//! for its plugin waits in the stream; the submitter decides when to give up on it. `.` in a
//! plugin or task name is written `~` in subjects and consumer names.
//!
//! # Guarantees
//!
//! At-least-once: an item whose worker dies is redelivered after `ack_wait`, so a task may run
//! twice, and outcomes are de-duplicated by run and item id (by the server within the
//! duplicate window, by [`Results`] always).
//!
//! # Examples
//!
//! A worker and a submitter (a server must run at the URL; the crate's tests start one with
//! `testing::NatsServer`, feature `testing`):
//!
//! ```no_run
//! use std::time::Duration;
//! use taskhost_cluster::{Client, ClusterSettings, NewItem, Queue};
//!
//! let settings = ClusterSettings::builder("nats://127.0.0.1:4222")
//!     .ack_wait(Duration::from_secs(10))
//!     .build()?;
//! let queue = Queue::open(&Client::connect(&settings)?)?;
//!
//! // Submitter: publish, then read the outcomes.
//! queue.publish_item(&NewItem {
//!     run_id: "run-1",
//!     item_id: "a1",
//!     plugin: "testkit",
//!     task: "echo",
//!     payload: b"hello",
//! })?;
//!
//! // Worker: pull what the pools have room for, run, publish the outcome, ack.
//! let testkit = queue.plugin_queue("testkit")?;
//! for mut delivery in testkit.fetch(8, Duration::from_secs(1))? {
//!     delivery.keep_leased();
//!     let outcome = delivery.payload().to_ascii_uppercase();
//!     delivery.finish(&outcome).map_err(|failed| failed.error)?;
//! }
//!
//! let mut results = queue.results("run-1")?;
//! let outcome = results.next(Duration::from_secs(5))?.expect("one outcome");
//! assert_eq!(outcome.payload, b"HELLO");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod client;
mod error;
mod names;
mod pull;
mod queue;
mod reader;
mod settings;
#[cfg(feature = "testing")]
pub mod testing;

pub use client::Client;
pub use error::ClusterError;
pub use pull::{ConsumerState, Delivery, FinishError, Finishing, PluginQueue};
pub use queue::{NewItem, Published, Queue, QueueCounts, QueuedItem};
pub use reader::{
    Cancel, CancelListener, DeadLetter, DeadLetters, Heartbeat, Heartbeats, Outcome, Results,
};
pub use settings::{
    ClusterSettings, ClusterSettingsBuilder, Credentials, InvalidSettings, SettingsError,
};
