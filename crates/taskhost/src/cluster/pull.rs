//! The worker's [`WorkSource`]: a thread per loaded plugin pulls that plugin's items, never
//! more than its pools have room for, and the source hands each delivery to the dispatcher
//! as an entry (leased under the entry's `seq`, which the sink finds it by).

use std::io;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use taskhost_cluster::{Delivery, PluginQueue};

use super::leases::WorkerState;
use super::outcomes::{finish, give_back};
use super::record;
use crate::sink::{Outcome, Status};
use crate::source::{Entry, EntryBody, InvalidLine, WorkItem, WorkSource};

/// How long one pull waits for an item: also how soon a stopping worker stops pulling.
const PULL_WAIT: Duration = Duration::from_millis(500);

/// How long a pull waits for room before it looks at the stop flag again.
const ROOM_WAIT: Duration = Duration::from_millis(200);

/// The longest pause after failed pulls (the server is away; the client reconnects).
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Deliveries become entries.
#[derive(Debug)]
pub(crate) struct DeliverySource {
    state: Arc<WorkerState>,
    deliveries: Receiver<(usize, Delivery)>,
    /// The `seq` the dispatcher gives the next entry: it numbers the entries from 0 in the
    /// order the source yields them.
    next_seq: u64,
}

/// Starts a pulling thread for each of `queues` (one per plugin, by index); what they pull
/// comes out of the returned source.
pub(crate) fn start(
    queues: Vec<PluginQueue>,
    state: &Arc<WorkerState>,
    worker: &Arc<str>,
) -> io::Result<(DeliverySource, Vec<JoinHandle<()>>)> {
    let (sender, deliveries) = mpsc::channel();
    let mut threads = Vec::new();
    for (plugin, queue) in queues.into_iter().enumerate() {
        let puller = Puller {
            state: Arc::clone(state),
            worker: Arc::clone(worker),
            queue,
            plugin,
            sender: sender.clone(),
        };
        threads.push(
            std::thread::Builder::new()
                .name(format!("taskhost-pull-{plugin}"))
                .spawn(move || puller.run())?,
        );
    }
    let source = DeliverySource {
        state: Arc::clone(state),
        deliveries,
        next_seq: 0,
    };
    Ok((source, threads))
}

/// One plugin's pulling thread.
struct Puller {
    state: Arc<WorkerState>,
    worker: Arc<str>,
    queue: PluginQueue,
    plugin: usize,
    sender: Sender<(usize, Delivery)>,
}

impl Puller {
    fn run(self) {
        let mut backoff = Duration::from_millis(100);
        while !self.state.stopping() {
            // What waits now, as much as there is room for; when nothing waits, a pull that
            // waits for one, holding one place only: an idle plugin must not hold the room
            // that the pools share with the others.
            let pulled = match self.pull(usize::MAX, Duration::ZERO) {
                Ok(0) => self.pull(1, PULL_WAIT),
                other => other,
            };
            match pulled {
                Ok(_) => backoff = Duration::from_millis(100),
                Err(error) => {
                    tracing::warn!(
                        target: "taskhost::cluster",
                        plugin = self.queue.plugin(),
                        "{error}; trying again in {backoff:?}"
                    );
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// One pull of at most `max` items (and no more than there is room for), waiting up to
    /// `wait` for the first; hands them over and says how many came.
    fn pull(&self, max: usize, wait: Duration) -> Result<usize, taskhost_cluster::ClusterError> {
        let room = self.state.reserve(self.plugin, max, ROOM_WAIT);
        if room == 0 {
            return Ok(0);
        }
        match self.queue.fetch(room, wait) {
            Ok(deliveries) => {
                let count = deliveries.len();
                self.state.release(self.plugin, room.saturating_sub(count));
                let counters = &self.state.counters[self.plugin];
                for delivery in deliveries {
                    counters.inc_pulled(delivery.delivery_count());
                    self.hand_over(delivery);
                }
                Ok(count)
            }
            Err(error) => {
                self.state.release(self.plugin, room);
                Err(error)
            }
        }
    }

    fn hand_over(&self, mut delivery: Delivery) {
        if self.state.stopping() {
            return give_back(&self.state, delivery, self.plugin);
        }
        if self.state.run_cancelled(delivery.run_id()) {
            let line = record::parse_item_payload(delivery.payload()).map_or(0, |(line, _)| line);
            let outcome = Outcome::unrun(
                line,
                Some(delivery.item_id().to_owned()),
                Some(full_task(&delivery)),
                Status::Cancelled,
                format!(
                    "its submitter cancelled run {}: not started",
                    delivery.run_id()
                ),
            );
            let count = delivery.delivery_count();
            let record = record::record(&outcome, Some(&self.worker), count);
            return finish(
                &self.state,
                delivery,
                self.plugin,
                Status::Cancelled,
                record,
            );
        }
        delivery.keep_leased();
        if let Err(mpsc::SendError((plugin, delivery))) = self.sender.send((self.plugin, delivery))
        {
            give_back(&self.state, delivery, plugin);
        }
    }
}

/// `plugin/task`, as work items name tasks.
fn full_task(delivery: &Delivery) -> String {
    format!("{}/{}", delivery.plugin(), delivery.task())
}

impl DeliverySource {
    fn entry(&mut self, plugin: usize, delivery: Delivery) -> Entry {
        let task = full_task(&delivery);
        let id = delivery.item_id().to_owned();
        let (line, body) = match record::parse_item_payload(delivery.payload()) {
            Ok((line, input)) => (line, EntryBody::Item(WorkItem { id, task, input })),
            Err(message) => (
                0,
                EntryBody::Refused(InvalidLine {
                    id: Some(id),
                    task: Some(task),
                    message,
                }),
            ),
        };
        self.state.lease(self.next_seq, delivery, plugin);
        self.next_seq += 1;
        Entry { line, body }
    }
}

impl WorkSource for DeliverySource {
    fn next_entry(&mut self) -> io::Result<Option<Entry>> {
        loop {
            match self.deliveries.recv_timeout(Duration::from_millis(100)) {
                Ok((plugin, delivery)) if self.state.stopping() => {
                    give_back(&self.state, delivery, plugin);
                }
                Ok((plugin, delivery)) => return Ok(Some(self.entry(plugin, delivery))),
                Err(RecvTimeoutError::Timeout) => {}
                // Every pulling thread has stopped.
                Err(RecvTimeoutError::Disconnected) => return Ok(None),
            }
        }
    }
}
