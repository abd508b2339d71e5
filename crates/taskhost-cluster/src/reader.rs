//! Readers that wait for what others publish: [`Results`] (a run's outcomes), [`DeadLetters`]
//! (items the server gave up on) and [`CancelListener`] (cancels, for workers).

use std::collections::HashSet;
use std::fmt;
use std::pin::Pin;
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{pull, DeliverPolicy};
use async_nats::jetstream::{self, stream::Stream};
use futures_util::StreamExt;

use crate::client::Client;
use crate::error::ClusterError;
use crate::names::{self, RunId};
use crate::queue::{self, Queue, QueuedItem};

/// An ordered, ephemeral consumer over a stream: no acks, recreated by the client after a
/// server restart, resumed where it was.
type OrderedMessages = Pin<Box<pull::Ordered>>;

async fn ordered(stream: &Stream, filter_subject: String) -> Result<OrderedMessages, ClusterError> {
    let action = format!("reading {filter_subject}");
    let consumer = stream
        .create_consumer(pull::OrderedConfig {
            filter_subject,
            deliver_policy: DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .map_err(|error| ClusterError::request(action.clone(), error))?;
    let messages = consumer
        .messages()
        .await
        .map_err(|error| ClusterError::request(action, error))?;
    Ok(Box::pin(messages))
}

/// The next message within `wait`, `None` when none came.
fn next_message(
    client: &Client,
    messages: &mut OrderedMessages,
    wait: Duration,
    what: &str,
) -> Result<Option<jetstream::Message>, ClusterError> {
    match client.block_on(async { tokio::time::timeout(wait, messages.next()).await }) {
        Err(_elapsed) => Ok(None),
        Ok(None) => Err(ClusterError::request(what, "the server ended the stream")),
        Ok(Some(Err(error))) => Err(ClusterError::request(what, error)),
        Ok(Some(Ok(message))) => Ok(Some(message)),
    }
}

/// The outcome of one item, as a worker published it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The run.
    pub run_id: String,
    /// The item.
    pub item_id: String,
    /// What the worker published.
    pub payload: Vec<u8>,
    /// Its sequence in the results stream.
    pub sequence: u64,
}

/// The outcomes of one run, oldest first, **each item once**: the server drops an outcome
/// published twice within the duplicate window, and this reader drops any that comes later
/// (counted by [`Results::duplicates_skipped`]). Made by [`Queue::results`]; it reads from the
/// start of the run, so a submitter that restarts reads everything again.
pub struct Results {
    client: Client,
    messages: OrderedMessages,
    run_id: String,
    seen: HashSet<String>,
    duplicates_skipped: u64,
}

impl fmt::Debug for Results {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Results")
            .field("run_id", &self.run_id)
            .field("seen", &self.seen.len())
            .field("duplicates_skipped", &self.duplicates_skipped)
            .finish_non_exhaustive()
    }
}

impl Results {
    pub(crate) fn open(
        client: &Client,
        stream: &Stream,
        run_id: &RunId,
    ) -> Result<Results, ClusterError> {
        let subject = client.names().results_subject(run_id);
        let messages = client.block_on(ordered(stream, subject))?;
        Ok(Results {
            client: client.clone(),
            messages,
            run_id: run_id.as_str().to_owned(),
            seen: HashSet::new(),
            duplicates_skipped: 0,
        })
    }

    /// The next outcome of an item not seen before, waiting at most `wait`; `None` when none
    /// came in time.
    pub fn next(&mut self, wait: Duration) -> Result<Option<Outcome>, ClusterError> {
        let deadline = Instant::now() + wait;
        let what = format!("reading the outcomes of run {}", self.run_id);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(message) = next_message(&self.client, &mut self.messages, left, &what)? else {
                return Ok(None);
            };
            let Some((run_id, item_id)) = message.headers.as_ref().and_then(queue::ids_of) else {
                tracing::warn!(target: "taskhost::cluster", "skipping an outcome without ids");
                continue;
            };
            if !self.seen.insert(item_id.clone()) {
                self.duplicates_skipped += 1;
                continue;
            }
            let sequence = message.info().map_or(0, |info| info.stream_sequence);
            return Ok(Some(Outcome {
                run_id,
                item_id,
                payload: message.payload.to_vec(),
                sequence,
            }));
        }
    }

    /// How many outcomes of items already returned were dropped.
    pub fn duplicates_skipped(&self) -> u64 {
        self.duplicates_skipped
    }
}

/// An item whose deliveries ran out (`max_deliver`), from the server's max-deliveries advisory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The item's sequence in the items stream.
    pub sequence: u64,
    /// How many times it was delivered.
    pub deliveries: u64,
    /// The plugin whose consumer gave up.
    pub plugin: String,
    /// The item, when it is still in the stream (the server leaves it there; the submitter
    /// deletes it with [`Queue::delete_item`] once it has recorded the failure).
    pub item: Option<QueuedItem>,
}

/// The server's advisory, as JSON.
#[derive(serde::Deserialize)]
struct MaxDeliveriesAdvisory {
    consumer: String,
    stream_seq: u64,
    deliveries: u64,
}

/// The max-deliveries advisories of every plugin's consumer, oldest first; they are stored in
/// the dead-letter stream for `results_max_age`, so a submitter that was away still reads them.
/// Made by [`Queue::dead_letters`].
///
/// # Examples
///
/// A submitter records "gave up" for its own items and removes them from the queue:
///
/// ```no_run
/// use std::time::Duration;
/// use taskhost_cluster::{Client, ClusterSettings, Queue};
///
/// let settings = ClusterSettings::builder("nats://127.0.0.1:4222").build()?;
/// let queue = Queue::open(&Client::connect(&settings)?)?;
/// let mut dead_letters = queue.dead_letters()?;
/// while let Some(dead) = dead_letters.next(Duration::from_millis(100))? {
///     match &dead.item {
///         Some(item) if item.run_id == "run-1" => {
///             println!("{}: gave up after {} deliveries", item.item_id, dead.deliveries);
///             queue.delete_item(dead.sequence)?;
///         }
///         _ => {} // another run's, or deleted already
///     }
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct DeadLetters {
    client: Client,
    messages: OrderedMessages,
    queue: Queue,
}

impl fmt::Debug for DeadLetters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeadLetters").finish_non_exhaustive()
    }
}

impl DeadLetters {
    pub(crate) fn open(
        client: &Client,
        stream: &Stream,
        queue: Queue,
    ) -> Result<DeadLetters, ClusterError> {
        let subject = client.names().dead_letter_subjects();
        let messages = client.block_on(ordered(stream, subject))?;
        Ok(DeadLetters {
            client: client.clone(),
            messages,
            queue,
        })
    }

    /// The next dead letter within `wait`, with its item looked up; `None` when none came.
    pub fn next(&mut self, wait: Duration) -> Result<Option<DeadLetter>, ClusterError> {
        let deadline = Instant::now() + wait;
        let what = "reading the dead letters";
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(message) = next_message(&self.client, &mut self.messages, left, what)? else {
                return Ok(None);
            };
            let advisory: MaxDeliveriesAdvisory = match serde_json::from_slice(&message.payload) {
                Ok(advisory) => advisory,
                Err(error) => {
                    tracing::warn!(target: "taskhost::cluster", "skipping an advisory: {error}");
                    continue;
                }
            };
            let item = self.queue.item_at(advisory.stream_seq)?;
            return Ok(Some(DeadLetter {
                sequence: advisory.stream_seq,
                deliveries: advisory.deliveries,
                plugin: names::decode_token(&advisory.consumer),
                item,
            }));
        }
    }
}

/// A request to stop running items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cancel {
    /// The run.
    pub run_id: String,
    /// One item of it, or `None` for all of the run's items.
    pub item_id: Option<String>,
}

/// Hears the cancels of every run of this cluster, from the moment it was made (cancels are
/// not stored). Made by [`Queue::cancel_listener`].
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
/// use taskhost_cluster::{Client, ClusterSettings, Queue};
///
/// let settings = ClusterSettings::builder("nats://127.0.0.1:4222").build()?;
/// let queue = Queue::open(&Client::connect(&settings)?)?;
/// let mut cancels = queue.cancel_listener()?; // a worker, before it pulls
/// queue.cancel_item("run-1", "a1")?; // a submitter, on Ctrl-C
/// let cancel = cancels.next(Duration::from_secs(1))?.expect("heard");
/// assert_eq!(cancel.item_id.as_deref(), Some("a1"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct CancelListener {
    client: Client,
    subscriber: async_nats::Subscriber,
}

impl fmt::Debug for CancelListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancelListener").finish_non_exhaustive()
    }
}

impl CancelListener {
    pub(crate) fn open(client: &Client) -> Result<CancelListener, ClusterError> {
        let subject = client.names().cancel_subjects();
        Ok(CancelListener {
            client: client.clone(),
            subscriber: subscribe(client, subject)?,
        })
    }

    /// The next cancel within `wait`; `None` when none came.
    pub fn next(&mut self, wait: Duration) -> Result<Option<Cancel>, ClusterError> {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(message) = next_on(
                &self.client,
                &mut self.subscriber,
                left,
                "listening for cancels",
            )?
            else {
                return Ok(None);
            };
            let names = self.client.names();
            let Some(run_id) = names.run_of_cancel_subject(message.subject.as_str()) else {
                continue;
            };
            let item_id = if message.payload.is_empty() {
                None
            } else {
                let item = std::str::from_utf8(&message.payload)
                    .ok()
                    .and_then(|payload| payload.strip_prefix(names::CANCEL_ITEM_PREFIX))
                    .and_then(names::decode_item_id);
                match item {
                    Some(item_id) => Some(item_id),
                    None => continue,
                }
            };
            return Ok(Some(Cancel {
                run_id: run_id.to_owned(),
                item_id,
            }));
        }
    }
}

/// One worker's heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heartbeat {
    /// The worker's name.
    pub worker: String,
    /// What it published.
    pub payload: Vec<u8>,
}

/// Hears the heartbeats of every worker of this cluster, from the moment it was made. Made by
/// [`Queue::heartbeats`]; workers send them with [`Queue::publish_heartbeat`].
pub struct Heartbeats {
    client: Client,
    subscriber: async_nats::Subscriber,
}

impl fmt::Debug for Heartbeats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Heartbeats").finish_non_exhaustive()
    }
}

impl Heartbeats {
    pub(crate) fn open(client: &Client) -> Result<Heartbeats, ClusterError> {
        let subject = client.names().heartbeat_subjects();
        Ok(Heartbeats {
            client: client.clone(),
            subscriber: subscribe(client, subject)?,
        })
    }

    /// The next heartbeat within `wait`; `None` when none came.
    pub fn next(&mut self, wait: Duration) -> Result<Option<Heartbeat>, ClusterError> {
        let what = "listening for heartbeats";
        let Some(message) = next_on(&self.client, &mut self.subscriber, wait, what)? else {
            return Ok(None);
        };
        let worker = message
            .subject
            .rsplit('.')
            .next()
            .map(names::decode_token)
            .unwrap_or_default();
        Ok(Some(Heartbeat {
            worker,
            payload: message.payload.to_vec(),
        }))
    }
}

/// The next message of a subscription within `wait`, `None` when none came.
fn next_on(
    client: &Client,
    subscriber: &mut async_nats::Subscriber,
    wait: Duration,
    what: &str,
) -> Result<Option<async_nats::Message>, ClusterError> {
    match client.block_on(async { tokio::time::timeout(wait, subscriber.next()).await }) {
        Err(_elapsed) => Ok(None),
        Ok(None) => Err(ClusterError::request(what, "the subscription ended")),
        Ok(Some(message)) => Ok(Some(message)),
    }
}

/// Subscribes to `subject` and waits until the server has the subscription, so that nothing
/// published after this returns is missed.
fn subscribe(client: &Client, subject: String) -> Result<async_nats::Subscriber, ClusterError> {
    let action = format!("listening on {subject}");
    client.block_on(async {
        let subscriber = client
            .nats()
            .subscribe(subject)
            .await
            .map_err(|error| ClusterError::request(action.clone(), error))?;
        client
            .nats()
            .flush()
            .await
            .map_err(|error| ClusterError::request(action, error))?;
        Ok::<_, ClusterError>(subscriber)
    })
}
