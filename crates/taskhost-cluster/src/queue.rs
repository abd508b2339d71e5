//! [`Queue`]: the streams of one cluster, and what a submitter does with them (publish items,
//! delete queued ones, publish outcomes, cancel runs).

use std::collections::VecDeque;

use async_nats::jetstream::context::{CreateStreamErrorKind, PublishAckFuture};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::{self, DeleteMessageErrorKind, RawMessageErrorKind};
use async_nats::jetstream::ErrorCode;
use async_nats::jetstream::{self, consumer};
use async_nats::HeaderMap;

use crate::client::Client;
use crate::error::ClusterError;
use crate::names::{self, RunId, Token, ITEM_HEADER, RUN_HEADER};
use crate::pull::{ConsumerState, PluginQueue};
use crate::reader::{CancelListener, DeadLetters, Heartbeats, Results};

/// How many publications of [`Queue::publish_items`] wait for their ack at once.
const PUBLISH_WINDOW: usize = 256;

/// An item to publish: where it goes and what it carries.
#[derive(Debug, Clone, Copy)]
pub struct NewItem<'a> {
    /// The run it belongs to (1 to 64 of `A-Z a-z 0-9 _ -`).
    pub run_id: &'a str,
    /// The item's id, unique within the run; any text.
    pub item_id: &'a str,
    /// The plugin that provides the task (`[A-Za-z0-9_.-]`).
    pub plugin: &'a str,
    /// The task's name within the plugin (`[A-Za-z0-9_.-]`).
    pub task: &'a str,
    /// The bytes a worker receives; the crate never looks inside.
    pub payload: &'a [u8],
}

/// What the server said about a publication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    /// The message's sequence in its stream: pass it to [`Queue::delete_item`] to cancel a
    /// queued item.
    pub sequence: u64,
    /// `true` when the server already had a message with this run and item id within the
    /// duplicate window and stored nothing (`sequence` is then the first one's).
    pub duplicate: bool,
}

/// An item as it sits in the queue (see [`Queue::item_at`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedItem {
    /// Its sequence in the items stream.
    pub sequence: u64,
    /// Its run.
    pub run_id: String,
    /// Its id.
    pub item_id: String,
    /// The plugin of its task.
    pub plugin: String,
    /// Its task.
    pub task: String,
    /// What it carries.
    pub payload: Vec<u8>,
}

/// What [`Queue::counts`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueCounts {
    /// Items in the queue (waiting, or running and not acked yet) per plugin and task, by name.
    pub queued: Vec<(String, String, u64)>,
    /// Each plugin's consumer (a plugin that some worker has served), by name.
    pub plugins: Vec<(String, ConsumerState)>,
    /// Max-deliveries advisories kept (items the server gave up on, within
    /// `results_max_age`).
    pub dead_letters: u64,
}

/// The streams of one cluster (one prefix) on the server: items, results and dead letters.
///
/// [`Queue::open`] creates whatever is missing; it is idempotent and safe when many workers and
/// submitters start at once. A submitter publishes items and reads [`Results`]; a worker takes
/// a [`PluginQueue`] per plugin it has loaded and pulls from it. Clones are cheap.
///
/// # Examples
///
/// A submitter's side:
///
/// ```no_run
/// use std::time::Duration;
/// use taskhost_cluster::{Client, ClusterSettings, NewItem, Queue};
///
/// let settings = ClusterSettings::builder("nats://127.0.0.1:4222").build()?;
/// let queue = Queue::open(&Client::connect(&settings)?)?;
/// let published = queue.publish_item(&NewItem {
///     run_id: "run-1",
///     item_id: "a1",
///     plugin: "checksum",
///     task: "sha256",
///     payload: br#"{"path":"README.md"}"#,
/// })?;
/// assert!(!published.duplicate);
/// let mut results = queue.results("run-1")?;
/// if let Some(outcome) = results.next(Duration::from_secs(30))? {
///     println!("{}: {}", outcome.item_id, String::from_utf8_lossy(&outcome.payload));
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Queue {
    client: Client,
    items: jetstream::stream::Stream,
    results: jetstream::stream::Stream,
    dead_letters: jetstream::stream::Stream,
}

impl Queue {
    /// Creates the three streams if they are missing (or finds them, with the same settings).
    ///
    /// Fails with [`ClusterError::Conflict`] when a stream exists with other settings (another
    /// `duplicate_window` or `results_max_age`).
    pub fn open(client: &Client) -> Result<Queue, ClusterError> {
        let names = client.names();
        let settings = client.settings();
        let items = stream::Config {
            name: names.items_stream(),
            description: Some("taskhost work items, one subject per plugin and task".into()),
            subjects: vec![names.items_subjects()],
            retention: stream::RetentionPolicy::WorkQueue,
            storage: stream::StorageType::File,
            duplicate_window: settings.duplicate_window(),
            ..Default::default()
        };
        let results = stream::Config {
            name: names.results_stream(),
            description: Some("taskhost outcomes, one subject per run".into()),
            subjects: vec![names.results_subjects()],
            retention: stream::RetentionPolicy::Limits,
            storage: stream::StorageType::File,
            duplicate_window: settings.duplicate_window(),
            max_age: settings.results_max_age(),
            ..Default::default()
        };
        let dead_letters = stream::Config {
            name: names.dead_letter_stream(),
            description: Some("max-deliveries advisories of the taskhost items stream".into()),
            subjects: vec![names.dead_letter_subjects()],
            retention: stream::RetentionPolicy::Limits,
            storage: stream::StorageType::File,
            max_age: settings.results_max_age(),
            ..Default::default()
        };
        Ok(Queue {
            items: ensure_stream(client, items)?,
            results: ensure_stream(client, results)?,
            dead_letters: ensure_stream(client, dead_letters)?,
            client: client.clone(),
        })
    }

    /// The client this queue talks through.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Publishes one item and waits for the server to store it. Its message id is the run id
    /// and the item id, so publishing it again within the duplicate window stores nothing and
    /// returns the first sequence with `duplicate: true`.
    pub fn publish_item(&self, item: &NewItem<'_>) -> Result<Published, ClusterError> {
        self.publish_items(std::slice::from_ref(item))
            .pop()
            .expect("one result per item")
    }

    /// Publishes many items, up to 256 waiting for their acks at once, and returns one result
    /// per item, in order. Much faster than one [`Queue::publish_item`] after another.
    pub fn publish_items(&self, items: &[NewItem<'_>]) -> Vec<Result<Published, ClusterError>> {
        let mut results: Vec<Option<Result<Published, ClusterError>>> = vec![None; items.len()];
        self.client.block_on(async {
            let mut waiting: VecDeque<(usize, String, PublishAckFuture)> = VecDeque::new();
            for (index, item) in items.iter().enumerate() {
                let action = format!("publishing item {:?} of run {}", item.item_id, item.run_id);
                match self.send_item(item).await {
                    Ok(ack) => waiting.push_back((index, action, ack)),
                    Err(error) => results[index] = Some(Err(error)),
                }
                if waiting.len() >= PUBLISH_WINDOW {
                    let (index, action, ack) = waiting.pop_front().expect("the window is full");
                    results[index] = Some(await_ack(action, ack).await);
                }
            }
            for (index, action, ack) in waiting {
                results[index] = Some(await_ack(action, ack).await);
            }
        });
        results
            .into_iter()
            .map(|result| result.expect("every item has a result"))
            .collect()
    }

    async fn send_item(&self, item: &NewItem<'_>) -> Result<PublishAckFuture, ClusterError> {
        let run_id = RunId::new(item.run_id)?;
        let plugin = Token::new("plugin", item.plugin)?;
        let task = Token::new("task", item.task)?;
        let subject = self.client.names().item_subject(&plugin, &task);
        let publish = PublishMessage::build()
            .payload(item.payload.to_vec().into())
            .headers(ids_headers(&run_id, item.item_id))
            .message_id(names::message_id(&run_id, item.item_id));
        self.client
            .jetstream()
            .send_publish(subject, publish)
            .await
            .map_err(|error| {
                ClusterError::request(
                    format!("publishing item {:?} of run {}", item.item_id, item.run_id),
                    error,
                )
            })
    }

    /// Deletes a queued item (its `sequence` from [`Published`]), so no worker takes it: how a
    /// submitter cancels what has not started. `Ok(false)` when it is gone already (done, or
    /// deleted before).
    pub fn delete_item(&self, sequence: u64) -> Result<bool, ClusterError> {
        let action = format!("deleting item {sequence} from the queue");
        self.client.block_on(async {
            match self.items.delete_message(sequence).await {
                Ok(deleted) => Ok(deleted),
                Err(error) => match error.kind() {
                    DeleteMessageErrorKind::JetStream(js) if is_no_message(&js) => Ok(false),
                    _ => Err(ClusterError::request(action, error)),
                },
            }
        })
    }

    /// The item stored at `sequence`, or `None` when no item is there any more.
    pub fn item_at(&self, sequence: u64) -> Result<Option<QueuedItem>, ClusterError> {
        let action = format!("reading item {sequence} of the queue");
        let message = self.client.block_on(async {
            match self.items.get_raw_message(sequence).await {
                Ok(message) => Ok(Some(message)),
                Err(error) => match error.kind() {
                    RawMessageErrorKind::NoMessageFound => Ok(None),
                    _ => Err(ClusterError::request(action.clone(), error)),
                },
            }
        })?;
        let Some(message) = message else {
            return Ok(None);
        };
        let names = self.client.names();
        let (plugin, task) = names
            .plugin_and_task_of(message.subject.as_str())
            .ok_or_else(|| {
                ClusterError::request(
                    action.clone(),
                    format!("unexpected subject {}", message.subject),
                )
            })?;
        let (run_id, item_id) = ids_of(&message.headers)
            .ok_or_else(|| ClusterError::request(action, "the item has no run or item id"))?;
        Ok(Some(QueuedItem {
            sequence,
            run_id,
            item_id,
            plugin,
            task,
            payload: message.payload.to_vec(),
        }))
    }

    /// Publishes the outcome of an item and waits until it is stored; a second outcome of the
    /// same run and item within the duplicate window is dropped (`duplicate: true`). A worker
    /// publishes the outcome *before* it acks the item (see [`Delivery::finish`]), so an
    /// outcome is never lost; a redelivered item may yield a second outcome, which the server
    /// (or [`Results`]) drops.
    ///
    /// [`Delivery::finish`]: crate::Delivery::finish
    pub fn publish_outcome(
        &self,
        run_id: &str,
        item_id: &str,
        payload: &[u8],
    ) -> Result<Published, ClusterError> {
        publish_outcome(&self.client, run_id, item_id, payload)
    }

    /// The queue of one plugin's items, shared by every worker that has loaded the plugin: its
    /// durable pull consumer is created if missing.
    ///
    /// Fails with [`ClusterError::Conflict`] when the consumer exists with another `ack_wait`
    /// or `max_deliver`.
    pub fn plugin_queue(&self, plugin: &str) -> Result<PluginQueue, ClusterError> {
        let token = Token::new("plugin", plugin)?;
        let names = self.client.names();
        let settings = self.client.settings();
        let name = names.consumer_name(&token);
        let config = consumer::pull::Config {
            durable_name: Some(name.clone()),
            description: Some(format!("taskhost workers of plugin {plugin}")),
            deliver_policy: consumer::DeliverPolicy::All,
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait: settings.ack_wait(),
            max_deliver: i64::from(settings.max_deliver()),
            filter_subject: names.plugin_filter(&token),
            ..Default::default()
        };
        let what = format!("consumer {name} of stream {}", names.items_stream());
        let consumer = self.client.block_on(async {
            self.items
                .create_consumer_strict(config)
                .await
                .map_err(|error| {
                    use async_nats::jetstream::stream::ConsumerCreateStrictErrorKind as Kind;
                    match error.kind() {
                        Kind::AlreadyExists => ClusterError::Conflict {
                            what: what.clone(),
                            detail: error.to_string(),
                        },
                        _ => ClusterError::request(format!("creating {what}"), error),
                    }
                })
        })?;
        Ok(PluginQueue::new(self.client.clone(), consumer, plugin))
    }

    /// The server's counts for one plugin's items, without creating its consumer: `None` when
    /// no worker of that plugin has ever started (nothing will take its items).
    pub fn plugin_state(&self, plugin: &str) -> Result<Option<ConsumerState>, ClusterError> {
        use async_nats::jetstream::context::ConsumerInfoErrorKind;
        let token = Token::new("plugin", plugin)?;
        let name = self.client.names().consumer_name(&token);
        let action = format!("reading the state of plugin {plugin}'s queue");
        self.client.block_on(async {
            match self.items.consumer_info(&name).await {
                Ok(info) => Ok(Some(ConsumerState::from_info(&info))),
                Err(error) if error.kind() == ConsumerInfoErrorKind::NotFound => Ok(None),
                Err(error) => Err(ClusterError::request(action, error)),
            }
        })
    }

    /// Reads the outcomes of `run_id`, from the first one stored, each item once.
    pub fn results(&self, run_id: &str) -> Result<Results, ClusterError> {
        let run_id = RunId::new(run_id)?;
        Results::open(&self.client, &self.results, &run_id)
    }

    /// Reads the max-deliveries advisories of every plugin's consumer, from the oldest kept:
    /// the items the server gave up on.
    pub fn dead_letters(&self) -> Result<DeadLetters, ClusterError> {
        DeadLetters::open(&self.client, &self.dead_letters, self.clone())
    }

    /// Asks the workers to stop every running item of `run_id`. Only workers connected now
    /// hear it (a cancel is not stored); delete the queued items too.
    pub fn cancel_run(&self, run_id: &str) -> Result<(), ClusterError> {
        self.send_cancel(run_id, None)
    }

    /// Asks the workers to stop item `item_id` of `run_id`, if one is running it.
    pub fn cancel_item(&self, run_id: &str, item_id: &str) -> Result<(), ClusterError> {
        self.send_cancel(run_id, Some(item_id))
    }

    fn send_cancel(&self, run_id: &str, item_id: Option<&str>) -> Result<(), ClusterError> {
        let run = RunId::new(run_id)?;
        let subject = self.client.names().cancel_subject(&run);
        let payload = item_id
            .map(|item_id| {
                format!(
                    "{}{}",
                    names::CANCEL_ITEM_PREFIX,
                    names::encode_item_id(item_id)
                )
            })
            .unwrap_or_default();
        let action = format!("cancelling run {run_id}");
        self.client.block_on(async {
            self.client
                .nats()
                .publish(subject, payload.into())
                .await
                .map_err(|error| ClusterError::request(action.clone(), error))
        })?;
        self.client.flush()
    }

    /// Announces that worker `worker` (a name of `A-Z a-z 0-9 _ - .`) is alive, with
    /// `payload` (what it serves; the crate never looks inside). Not stored: only
    /// [`Heartbeats`] listening now hear it.
    pub fn publish_heartbeat(&self, worker: &str, payload: &[u8]) -> Result<(), ClusterError> {
        let token = Token::new("worker name", worker)?;
        let subject = self.client.names().heartbeat_subject(&token);
        let action = format!("publishing the heartbeat of worker {worker}");
        self.client.block_on(async {
            self.client
                .nats()
                .publish(subject, payload.to_vec().into())
                .await
                .map_err(|error| ClusterError::request(action, error))
        })
    }

    /// Listens for the heartbeats of every worker, from now on.
    pub fn heartbeats(&self) -> Result<Heartbeats, ClusterError> {
        Heartbeats::open(&self.client)
    }

    /// What the server holds now: items per plugin and task, each plugin consumer's counts,
    /// and the dead letters kept.
    pub fn counts(&self) -> Result<QueueCounts, ClusterError> {
        use futures_util::StreamExt;
        let names = self.client.names();
        let action = "reading the queue's counts";
        self.client.block_on(async {
            let mut queued = Vec::new();
            let mut subjects = self
                .items
                .info_with_subjects(names.items_subjects())
                .await
                .map_err(|error| ClusterError::request(action, error))?;
            while let Some(subject) = subjects.next().await {
                let (subject, count) =
                    subject.map_err(|error| ClusterError::request(action, error))?;
                if let Some((plugin, task)) = names.plugin_and_task_of(&subject) {
                    queued.push((plugin, task, count as u64));
                }
            }
            queued.sort();
            let mut plugins = Vec::new();
            let mut consumers = self.items.consumers();
            while let Some(info) = consumers.next().await {
                let info = info.map_err(|error| ClusterError::request(action, error))?;
                plugins.push((
                    names::decode_token(&info.name),
                    ConsumerState::from_info(&info),
                ));
            }
            plugins.sort_by(|a, b| a.0.cmp(&b.0));
            let mut dead_letters = self.dead_letters.clone();
            let dead = dead_letters
                .info()
                .await
                .map_err(|error| ClusterError::request(action, error))?
                .state
                .messages;
            Ok(QueueCounts {
                queued,
                plugins,
                dead_letters: dead,
            })
        })
    }

    /// Listens for cancels of every run, from now on (see [`Queue::cancel_run`]).
    pub fn cancel_listener(&self) -> Result<CancelListener, ClusterError> {
        CancelListener::open(&self.client)
    }
}

/// Publishes an outcome (shared by [`Queue`] and [`crate::Delivery`]).
pub(crate) fn publish_outcome(
    client: &Client,
    run_id: &str,
    item_id: &str,
    payload: &[u8],
) -> Result<Published, ClusterError> {
    let outcome = OutcomeMessage::new(client, run_id, item_id, payload.to_vec())?;
    client.block_on(outcome.publish())
}

/// An outcome ready to publish: everything it needs, without the [`Client`] (so that it can
/// travel into a task on the runtime).
pub(crate) struct OutcomeMessage {
    jetstream: jetstream::Context,
    subject: String,
    publish: PublishMessage,
    action: String,
}

impl OutcomeMessage {
    pub(crate) fn new(
        client: &Client,
        run_id: &str,
        item_id: &str,
        payload: Vec<u8>,
    ) -> Result<OutcomeMessage, ClusterError> {
        let run = RunId::new(run_id)?;
        let publish = PublishMessage::build()
            .payload(payload.into())
            .headers(ids_headers(&run, item_id))
            .message_id(names::message_id(&run, item_id));
        Ok(OutcomeMessage {
            jetstream: client.jetstream().clone(),
            subject: client.names().results_subject(&run),
            publish,
            action: format!("publishing the outcome of item {item_id:?} of run {run_id}"),
        })
    }

    /// Publishes and waits until the server has stored it (or dropped it as a duplicate).
    pub(crate) async fn publish(self) -> Result<Published, ClusterError> {
        let (action, ack) = self.send().await?;
        await_ack(action, ack).await
    }

    /// Publishes without waiting for the server's answer: what [`await_ack`] then waits for.
    pub(crate) async fn send(self) -> Result<(String, PublishAckFuture), ClusterError> {
        let OutcomeMessage {
            jetstream,
            subject,
            publish,
            action,
        } = self;
        match jetstream.send_publish(subject, publish).await {
            Ok(ack) => Ok((action, ack)),
            Err(error) => Err(ClusterError::request(action, error)),
        }
    }
}

fn ids_headers(run_id: &RunId, item_id: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(RUN_HEADER, run_id.as_str());
    headers.insert(ITEM_HEADER, names::encode_item_id(item_id).as_str());
    headers
}

/// The run and item id of a message's headers.
pub(crate) fn ids_of(headers: &HeaderMap) -> Option<(String, String)> {
    let run_id = headers.get(RUN_HEADER)?.as_str().to_owned();
    let item_id = names::decode_item_id(headers.get(ITEM_HEADER)?.as_str())?;
    Some((run_id, item_id))
}

pub(crate) async fn await_ack(
    action: String,
    ack: PublishAckFuture,
) -> Result<Published, ClusterError> {
    let ack = ack
        .await
        .map_err(|error| ClusterError::request(action, error))?;
    Ok(Published {
        sequence: ack.sequence,
        duplicate: ack.duplicate,
    })
}

/// Whether the server's error says there is no message at that sequence. A delete of a
/// missing message fails with the generic "delete failed" code and "no message found".
fn is_no_message(error: &async_nats::jetstream::Error) -> bool {
    let code = error.error_code();
    code == ErrorCode::NO_MESSAGE_FOUND
        || code == ErrorCode::SEQUENCE_NOT_FOUND
        || (code == ErrorCode::STREAM_MESSAGE_DELETE_FAILED
            && error.to_string().starts_with("no message found"))
}

/// Creates a stream, or finds it with the same settings: the server answers a create of an
/// identical stream with success, so concurrent creators all succeed.
fn ensure_stream(
    client: &Client,
    config: stream::Config,
) -> Result<jetstream::stream::Stream, ClusterError> {
    let name = config.name.clone();
    client.block_on(async {
        client
            .jetstream()
            .create_stream(config)
            .await
            .map_err(|error| match error.kind() {
                CreateStreamErrorKind::JetStream(js)
                    if js.error_code() == ErrorCode::STREAM_NAME_EXIST =>
                {
                    ClusterError::Conflict {
                        what: format!("stream {name}"),
                        detail: js.to_string(),
                    }
                }
                _ => ClusterError::request(format!("creating stream {name}"), error),
            })
    })
}
