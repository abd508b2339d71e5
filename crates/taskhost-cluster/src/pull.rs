//! A worker's side: [`PluginQueue`] pulls a bounded number of items, and each [`Delivery`] is
//! leased until it is acked, nak'ed or terminated.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::PullConsumer;
use async_nats::jetstream::{self, AckKind};
use futures_util::StreamExt;
use tokio::task::AbortHandle;

use crate::client::Client;
use crate::error::ClusterError;
use crate::queue::{self, Published};

/// How long past the caller's wait a pull may take before the client gives up on the server.
const PULL_MARGIN: Duration = Duration::from_secs(5);

/// The items of one plugin, shared by every worker that has loaded it: a durable pull consumer
/// on the items stream. Each item goes to one worker at a time; an item not acked within
/// `ack_wait` goes to another. Made by [`Queue::plugin_queue`].
///
/// [`Queue::plugin_queue`]: crate::Queue::plugin_queue
///
/// # Examples
///
/// A worker's loop, pulling no more than its pools have room for:
///
/// ```no_run
/// use std::time::Duration;
/// use taskhost_cluster::{Client, ClusterSettings, Queue};
///
/// let settings = ClusterSettings::builder("nats://127.0.0.1:4222").build()?;
/// let queue = Queue::open(&Client::connect(&settings)?)?;
/// let echo = queue.plugin_queue("testkit")?;
/// let room = 4;
/// for mut delivery in echo.fetch(room, Duration::from_secs(1))? {
///     delivery.keep_leased();
///     let outcome = delivery.payload().to_vec(); // run the task here
///     delivery.finish(&outcome).map_err(|failed| failed.error)?;
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct PluginQueue {
    client: Client,
    consumer: PullConsumer,
    plugin: String,
}

impl fmt::Debug for PluginQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PluginQueue")
            .field("plugin", &self.plugin)
            .finish_non_exhaustive()
    }
}

/// The server's counts for one plugin's consumer ([`PluginQueue::state`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsumerState {
    /// Items waiting for a worker (not delivered yet, or due for redelivery).
    pub pending: u64,
    /// Items delivered and not acked yet: running somewhere, or held by a dead worker.
    pub ack_pending: u64,
    /// Items delivered more than once that are not acked yet.
    pub redelivered: u64,
    /// Pull requests of workers waiting for items.
    pub waiting_pulls: u64,
}

impl ConsumerState {
    pub(crate) fn from_info(info: &jetstream::consumer::Info) -> ConsumerState {
        ConsumerState {
            pending: info.num_pending,
            ack_pending: info.num_ack_pending as u64,
            redelivered: info.num_redelivered as u64,
            waiting_pulls: info.num_waiting as u64,
        }
    }
}

impl PluginQueue {
    pub(crate) fn new(client: Client, consumer: PullConsumer, plugin: &str) -> PluginQueue {
        PluginQueue {
            client,
            consumer,
            plugin: plugin.to_owned(),
        }
    }

    /// The plugin whose items this queue holds.
    pub fn plugin(&self) -> &str {
        &self.plugin
    }

    /// Takes at most `max` items: those waiting now, or if there are none, the first that
    /// arrives within `wait` (with those that came with it). Returns an empty list when nothing
    /// came. Nothing is buffered beyond what is returned: the server hands out exactly the
    /// items returned, each leased to this worker for `ack_wait`.
    ///
    /// An item that does not carry a run and item id (not published by this crate) is
    /// terminated and skipped.
    pub fn fetch(&self, max: usize, wait: Duration) -> Result<Vec<Delivery>, ClusterError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let action = format!("pulling items of plugin {}", self.plugin);
        let messages = self
            .client
            .block_on_timeout(&action, wait + PULL_MARGIN, async {
                let mut messages = self.pull(max, None).await?;
                if messages.is_empty() && !wait.is_zero() {
                    // Wait for one only: a request for `max` would hold the first until
                    // `max` arrived or `wait` ran out.
                    messages = self.pull(1, Some(wait)).await?;
                    if !messages.is_empty() && max > 1 {
                        messages.extend(self.pull(max - 1, None).await?);
                    }
                }
                Ok::<_, ClusterError>(messages)
            })??;
        let mut deliveries = Vec::with_capacity(messages.len());
        for message in messages {
            match Delivery::new(self.client.clone(), Box::new(message)) {
                Ok(delivery) => deliveries.push(delivery),
                Err(message) => {
                    tracing::warn!(
                        target: "taskhost::cluster",
                        subject = %message.subject,
                        "terminating a queued message without a run and item id"
                    );
                    let _ = self.client.block_on(message.ack_with(AckKind::Term));
                }
            }
        }
        Ok(deliveries)
    }

    /// One pull request: `wait: None` answers at once with what is there.
    async fn pull(
        &self,
        max: usize,
        wait: Option<Duration>,
    ) -> Result<Vec<jetstream::Message>, ClusterError> {
        let action = || format!("pulling items of plugin {}", self.plugin);
        let mut batch = match wait {
            None => self.consumer.fetch().max_messages(max).messages().await,
            Some(wait) => {
                self.consumer
                    .batch()
                    .max_messages(max)
                    .expires(wait)
                    .messages()
                    .await
            }
        }
        .map_err(|error| ClusterError::request(action(), error))?;
        let mut messages = Vec::new();
        // The batch ends by itself: after `max` messages, or with the server's "no messages"
        // or "request expired" answer.
        while let Some(message) = batch.next().await {
            match message {
                Ok(message) => messages.push(message),
                // Items already taken stay valid; the error only ends this pull.
                Err(error) if !messages.is_empty() => {
                    tracing::debug!(target: "taskhost::cluster", "pull ended early: {error}");
                    break;
                }
                Err(error) => return Err(ClusterError::request(action(), error)),
            }
        }
        Ok(messages)
    }

    /// The server's counts for this plugin's items.
    pub fn state(&self) -> Result<ConsumerState, ClusterError> {
        let action = format!("reading the state of plugin {}'s queue", self.plugin);
        let mut consumer = self.consumer.clone();
        let info = self.client.block_on(async {
            consumer
                .info()
                .await
                .cloned()
                .map_err(|error| ClusterError::request(action, error))
        })?;
        Ok(ConsumerState::from_info(&info))
    }
}

/// One item leased to this worker. Until it is finished, acked, nak'ed or terminated, no other
/// worker gets it, for `ack_wait` after the last sign of life: call [`Delivery::keep_leased`]
/// before a task that may run that long. Dropping it without an ack leaves it to be
/// redelivered after `ack_wait`.
pub struct Delivery {
    client: Client,
    /// Boxed: the message is 400 bytes, and a delivery travels by value.
    message: Box<jetstream::Message>,
    run_id: String,
    item_id: String,
    plugin: String,
    task: String,
    sequence: u64,
    delivered: u64,
    /// The task that extends the lease, while one runs.
    lease: Option<LeaseKeeper>,
}

impl fmt::Debug for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delivery")
            .field("run_id", &self.run_id)
            .field("item_id", &self.item_id)
            .field("plugin", &self.plugin)
            .field("task", &self.task)
            .field("sequence", &self.sequence)
            .field("delivered", &self.delivered)
            .finish_non_exhaustive()
    }
}

impl Delivery {
    /// A delivery from a message, or the message back when it is not an item of ours.
    fn new(
        client: Client,
        message: Box<jetstream::Message>,
    ) -> Result<Delivery, Box<jetstream::Message>> {
        let Some((plugin, task)) = client.names().plugin_and_task_of(message.subject.as_str())
        else {
            return Err(message);
        };
        let Some((run_id, item_id)) = message.headers.as_ref().and_then(queue::ids_of) else {
            return Err(message);
        };
        let Ok(info) = message.info() else {
            return Err(message);
        };
        let (sequence, delivered) = (info.stream_sequence, info.delivered.max(1) as u64);
        Ok(Delivery {
            client,
            message,
            run_id,
            item_id,
            plugin,
            task,
            sequence,
            delivered,
            lease: None,
        })
    }

    /// The item's run.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// The item's id.
    pub fn item_id(&self) -> &str {
        &self.item_id
    }

    /// The plugin of the item's task.
    pub fn plugin(&self) -> &str {
        &self.plugin
    }

    /// The item's task.
    pub fn task(&self) -> &str {
        &self.task
    }

    /// What the submitter published.
    pub fn payload(&self) -> &[u8] {
        &self.message.payload
    }

    /// The item's sequence in the items stream.
    pub fn sequence(&self) -> u64 {
        self.sequence
    }

    /// Which delivery this is: 1 the first time, more after a worker died or nak'ed it.
    pub fn delivery_count(&self) -> u64 {
        self.delivered
    }

    /// Extends the lease once: the server waits `ack_wait` from now before it gives the item
    /// to another worker.
    pub fn extend_lease(&self) -> Result<(), ClusterError> {
        self.send_ack(AckKind::Progress, "extending the lease of")
    }

    /// Extends the lease in the background every third of `ack_wait` until the delivery is
    /// finished, acked, nak'ed, terminated or dropped. Calling it again does nothing.
    pub fn keep_leased(&mut self) {
        if self.lease.is_none() {
            let every = self.client.settings().lease_interval();
            self.lease = Some(LeaseKeeper::start(
                &self.client,
                (*self.message).clone(),
                every,
            ));
        }
    }

    /// How many lease extensions [`Delivery::keep_leased`] has sent so far.
    pub fn lease_extensions(&self) -> u64 {
        self.lease.as_ref().map_or(0, LeaseKeeper::sent)
    }

    /// Publishes the item's outcome (see [`Queue::publish_outcome`]) and then acks the item:
    /// the order that loses no outcome. When the outcome cannot be published, the item is not
    /// acked and comes back in the error, to try again or to drop (it is then redelivered
    /// after `ack_wait`).
    ///
    /// [`Queue::publish_outcome`]: crate::Queue::publish_outcome
    // The error gives the delivery back by value (as crossbeam's `SendError` gives the message
    // back); it is made once per item at most, so its 200 bytes cost nothing worth a box.
    #[allow(clippy::result_large_err)]
    pub fn finish(mut self, outcome: &[u8]) -> Result<Published, FinishError> {
        match queue::publish_outcome(&self.client, &self.run_id, &self.item_id, outcome) {
            Ok(published) => {
                self.stop_lease();
                match self.send_ack(AckKind::Ack, "acking") {
                    Ok(()) => Ok(published),
                    Err(error) => Err(FinishError {
                        delivery: self,
                        error,
                    }),
                }
            }
            Err(error) => Err(FinishError {
                delivery: self,
                error,
            }),
        }
    }

    /// [`Delivery::finish`] without waiting: the outcome is published and the item acked from
    /// the client's runtime, the lease kept meanwhile, and `done` is called there with what
    /// the server said (it must be quick: it runs on the thread that drives the connection).
    /// When the outcome cannot be published, the item is not acked: it is redelivered after
    /// `ack_wait`. [`Finishing`] does this for many deliveries at once.
    pub fn finish_in_background<F>(self, outcome: Vec<u8>, done: F)
    where
        F: FnOnce(Result<Published, ClusterError>) + Send + 'static,
    {
        let mut finishing = Finishing::default();
        finishing.add(self, outcome, done);
        finishing.start();
    }

    /// Acks the item without an outcome: it is done and gone from the queue.
    pub fn ack(mut self) -> Result<(), ClusterError> {
        self.stop_lease();
        self.send_ack(AckKind::Ack, "acking")
    }

    /// Gives the item back at once, for any worker (this one included) to take again.
    pub fn nak(mut self) -> Result<(), ClusterError> {
        self.stop_lease();
        self.send_ack(AckKind::Nak(None), "giving back")
    }

    /// Gives the item back, to be delivered again no sooner than `delay` from now.
    pub fn nak_after(mut self, delay: Duration) -> Result<(), ClusterError> {
        self.stop_lease();
        self.send_ack(AckKind::Nak(Some(delay)), "giving back")
    }

    /// Tells the server never to deliver the item again (it stays in the stream until deleted).
    pub fn term(mut self) -> Result<(), ClusterError> {
        self.stop_lease();
        self.send_ack(AckKind::Term, "terminating")
    }

    fn stop_lease(&mut self) {
        self.lease = None;
    }

    /// Sends an ack of `kind` (the server does not answer acks; [`Client::flush`] waits until
    /// they are written).
    fn send_ack(&self, kind: AckKind, what: &str) -> Result<(), ClusterError> {
        self.client
            .block_on(self.message.ack_with(kind))
            .map_err(|error| {
                ClusterError::request(
                    format!("{what} item {:?} of run {}", self.item_id, self.run_id),
                    error,
                )
            })
    }
}

/// What [`Finishing`] calls with the server's answer for one delivery.
type Done = Box<dyn FnOnce(Result<Published, ClusterError>) + Send>;

/// One delivery of a [`Finishing`]: its outcome, the item to ack, and its lease meanwhile.
struct Finish {
    outcome: Result<queue::OutcomeMessage, ClusterError>,
    item: Box<jetstream::Message>,
    lease: Option<LeaseKeeper>,
    action: String,
    done: Done,
}

/// Deliveries finished together: [`Delivery::finish_in_background`] for many at once, in one
/// task on the client's runtime. Every outcome is sent before the first answer is awaited, so
/// the runtime wakes once for the lot and the connection writes them in a few system calls.
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
/// use taskhost_cluster::{Client, ClusterSettings, Finishing, Queue};
///
/// let settings = ClusterSettings::builder("nats://127.0.0.1:4222").build()?;
/// let queue = Queue::open(&Client::connect(&settings)?)?;
/// let mut finishing = Finishing::default();
/// for delivery in queue.plugin_queue("testkit")?.fetch(16, Duration::from_secs(1))? {
///     let outcome = delivery.payload().to_vec(); // run the task here
///     finishing.add(delivery, outcome, |result| {
///         if let Err(error) = result {
///             eprintln!("{error}: the item comes back after ack_wait");
///         }
///     });
/// }
/// finishing.start();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Default)]
pub struct Finishing {
    client: Option<Client>,
    items: Vec<Finish>,
}

impl fmt::Debug for Finishing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Finishing")
            .field("items", &self.items.len())
            .finish_non_exhaustive()
    }
}

impl Finishing {
    /// Adds `delivery`, to be finished with `outcome`; `done` is called as in
    /// [`Delivery::finish_in_background`].
    pub fn add<F>(&mut self, mut delivery: Delivery, outcome: Vec<u8>, done: F)
    where
        F: FnOnce(Result<Published, ClusterError>) + Send + 'static,
    {
        let outcome = queue::OutcomeMessage::new(
            &delivery.client,
            &delivery.run_id,
            &delivery.item_id,
            outcome,
        );
        let action = format!(
            "acking item {:?} of run {}",
            delivery.item_id, delivery.run_id
        );
        let lease = delivery.lease.take();
        let Delivery {
            client,
            message: item,
            ..
        } = delivery;
        self.client.get_or_insert(client);
        self.items.push(Finish {
            outcome,
            item,
            lease,
            action,
            done: Box::new(done),
        });
    }

    /// How many deliveries wait for [`Finishing::start`].
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether none waits.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Starts finishing what was added, in the background; this batch is then empty again.
    pub fn start(&mut self) {
        let Some(client) = self.client.take() else {
            return;
        };
        let items = std::mem::take(&mut self.items);
        // Holds the messages (their connection) and the leases, never the `Client`.
        client.spawn(async move {
            let mut sent = Vec::with_capacity(items.len());
            for finish in items {
                let answer = match finish.outcome {
                    Ok(outcome) => outcome.send().await,
                    Err(error) => Err(error),
                };
                sent.push((
                    answer,
                    finish.item,
                    finish.lease,
                    finish.action,
                    finish.done,
                ));
            }
            for (answer, item, lease, action, done) in sent {
                let published = match answer {
                    Ok((what, ack)) => queue::await_ack(what, ack).await,
                    Err(error) => Err(error),
                };
                drop(lease);
                let result = match published {
                    Ok(published) => item
                        .ack_with(AckKind::Ack)
                        .await
                        .map(|()| published)
                        .map_err(|error| ClusterError::request(action, error)),
                    Err(error) => Err(error),
                };
                done(result);
            }
        });
    }
}

/// [`Delivery::finish`] failed: the delivery, not acked, and why.
#[derive(Debug)]
pub struct FinishError {
    /// The delivery, still leased until `ack_wait` runs out.
    pub delivery: Delivery,
    /// What went wrong.
    pub error: ClusterError,
}

impl fmt::Display for FinishError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.error.fmt(f)
    }
}

impl std::error::Error for FinishError {}

/// Extends a delivery's lease from the runtime's thread until dropped.
struct LeaseKeeper {
    task: AbortHandle,
    sent: Arc<AtomicU64>,
}

impl LeaseKeeper {
    fn start(client: &Client, message: jetstream::Message, every: Duration) -> LeaseKeeper {
        let sent = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&sent);
        // Holds a clone of the message (its connection), never the `Client`.
        let task = client.spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await; // the first tick is immediate: the delivery itself was one
            loop {
                ticks.tick().await;
                match message.ack_with(AckKind::Progress).await {
                    Ok(()) => {
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(error) => tracing::warn!(
                        target: "taskhost::cluster",
                        "extending a lease failed: {error}"
                    ),
                }
            }
        });
        LeaseKeeper {
            task: task.abort_handle(),
            sent,
        }
    }

    fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }
}

impl Drop for LeaseKeeper {
    fn drop(&mut self) {
        self.task.abort();
    }
}
