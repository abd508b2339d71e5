//! The worker's [`OutcomeSink`]: each record the dispatcher writes is published to the
//! submitter's results (with the worker's name), and only then is the item acked, in the
//! background and a batch of the writer's at a time ([`Finishing`]), so that many items are on
//! their way at once. An item the shutdown stopped
//! before it ran is given back to the queue instead, for another worker to take at once.

use std::io;
use std::sync::Arc;

use taskhost_cluster::ClusterError;
use taskhost_cluster::{Delivery, Finishing, Published};

use super::leases::WorkerState;
use super::record;
use crate::sink::{Outcome, OutcomeSink, Status};

/// Publishes outcomes, then acks their items.
#[derive(Debug)]
pub(crate) struct ClusterSink {
    pub(crate) state: Arc<WorkerState>,
    pub(crate) worker: Arc<str>,
    /// This batch's outcomes, started at the writer's next tick.
    pub(crate) finishing: Finishing,
}

impl OutcomeSink for ClusterSink {
    fn write(&mut self, outcome: &Outcome) -> io::Result<()> {
        // Given back already (the shutdown grace ended while it ran): another worker has it.
        let Some(lease) = self.state.take(outcome.seq) else {
            return Ok(());
        };
        if outcome.status == Status::Cancelled && !lease.cancelled && self.state.stopping() {
            // Stopped by this worker's shutdown, not by its submitter: not done, so not ours
            // to record.
            give_back(&self.state, lease.delivery, lease.plugin);
            return Ok(());
        }
        let deliveries = lease.delivery.delivery_count();
        let status = outcome.status;
        let record = if lease.cancelled && outcome.status == Status::Cancelled {
            let mut said = outcome.clone();
            said.error = Some(format!(
                "its submitter cancelled run {}: {}",
                lease.delivery.run_id(),
                outcome.error.as_deref().unwrap_or("cancelled")
            ));
            record::record(&said, Some(&self.worker), deliveries)
        } else {
            record::record(outcome, Some(&self.worker), deliveries)
        };
        let done = finishing(&self.state, lease.plugin, status);
        self.finishing.add(lease.delivery, record, done);
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.finishing.start();
        Ok(())
    }

    fn tick(&mut self) -> io::Result<()> {
        self.finishing.start();
        Ok(())
    }
}

/// Publishes `record` (an outcome of `status`) as the outcome of `delivery`, then acks it, in
/// the background; the plugin's room comes back when that is over. An outcome that cannot be
/// published leaves the item unacked: the server delivers it again after `cluster.ack_wait`.
pub(crate) fn finish(
    state: &Arc<WorkerState>,
    delivery: Delivery,
    plugin: usize,
    status: Status,
    record: Vec<u8>,
) {
    delivery.finish_in_background(record, finishing(state, plugin, status));
}

/// Counts an outcome of `status` on its way, and returns what to do with the server's answer:
/// count it and give the plugin's room back.
fn finishing(
    state: &Arc<WorkerState>,
    plugin: usize,
    status: Status,
) -> impl FnOnce(Result<Published, ClusterError>) + Send + 'static {
    state.finishing();
    state.counters[plugin].inc_outcome(status);
    let state = Arc::clone(state);
    move |result| {
        if let Err(error) = result {
            state.counters[plugin].inc_finish_error();
            tracing::warn!(
                target: "taskhost::cluster",
                "{error}; the item will be delivered again after cluster.ack_wait"
            );
        } else {
            state.counters[plugin].inc_acked();
        }
        state.release(plugin, 1);
        state.finished();
    }
}

/// Gives `delivery` back to the queue at once (`nak`), for any worker to take.
pub(crate) fn give_back(state: &WorkerState, delivery: Delivery, plugin: usize) {
    state.counters[plugin].inc_given_back();
    if let Err(error) = delivery.nak() {
        tracing::warn!(
            target: "taskhost::cluster",
            "{error}; the item will be delivered again after cluster.ack_wait"
        );
    }
    state.release(plugin, 1);
}
