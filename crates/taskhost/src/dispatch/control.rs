//! [`RunControl`]: a handle on a run while it goes, for a caller that must reach single entries
//! of it from outside the source and the sink (the cluster worker: a submitter's cancel, and a
//! shutdown that lets running items finish while nothing new starts).

use std::sync::{Arc, Mutex, Weak};

use super::attempt::Dispatcher;
use super::lock;

/// A handle on the run it is passed to (in [`super::RunOptions`]); it does nothing before the
/// run starts or after it ends. Clones share the run.
#[derive(Clone, Default)]
pub struct RunControl {
    dispatcher: Arc<Mutex<Weak<Dispatcher>>>,
}

impl std::fmt::Debug for RunControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let attached = lock(&self.dispatcher).strong_count() > 0;
        f.debug_struct("RunControl")
            .field("attached", &attached)
            .finish()
    }
}

impl RunControl {
    pub(crate) fn attach(&self, dispatcher: &Arc<Dispatcher>) {
        *lock(&self.dispatcher) = Arc::downgrade(dispatcher);
    }

    pub(crate) fn detach(&self) {
        *lock(&self.dispatcher) = Weak::new();
    }

    fn dispatcher(&self) -> Option<Arc<Dispatcher>> {
        lock(&self.dispatcher).upgrade()
    }

    /// Stops entry `seq` (its place among the run's entries, from 0: the `seq` of its
    /// outcome): an attempt waiting in its pool's queue is cancelled, a running one is asked to
    /// stop (its record then says what the task made of that). `false` when the entry has no
    /// attempt in a pool: not dispatched yet, finished, or waiting to retry.
    pub fn cancel(&self, seq: u64) -> bool {
        let Some(dispatcher) = self.dispatcher() else {
            return false;
        };
        let found = dispatcher
            .running
            .shard(seq)
            .get(&seq)
            .and_then(|running| Some((running.future.clone()?, running.job.span.clone())));
        let Some((future, span)) = found else {
            return false;
        };
        let _entered = span.enter();
        if !future.cancel() {
            future.request_stop();
        }
        true
    }

    /// From now on nothing starts: attempts waiting in a pool's queue or for a retry, and
    /// entries the source still hands over, are recorded `cancelled`; running attempts go on
    /// to their end (and are not retried).
    pub fn cancel_unstarted(&self) {
        let Some(dispatcher) = self.dispatcher() else {
            return;
        };
        dispatcher.stop_starting();
    }

    /// The entries whose attempt is running now.
    #[cfg(test)]
    fn running(&self) -> Vec<u64> {
        let Some(dispatcher) = self.dispatcher() else {
            return Vec::new();
        };
        dispatcher.running.collect(|running| {
            let future = running.future.as_ref()?;
            future.running().then_some(running.job.seq)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::{Duration, Instant};

    use super::*;
    use crate::dispatch::proptests::{fixture, Records};
    use crate::dispatch::{run, Catalog, Pools, RunOptions};
    use crate::routing::Router;
    use crate::signals::Interrupts;
    use crate::sink::Status;
    use crate::source::JsonlSource;
    use crate::telemetry::SharedBar;

    /// Runs testkit/sleep items of `ms` each on the fixture's pools (3 workers), calling
    /// `meanwhile` with the run's control on another thread; the records by `seq`.
    fn run_sleeps(
        ms: &[u64],
        meanwhile: impl FnOnce(&RunControl) + Send,
    ) -> BTreeMap<u64, (Status, String)> {
        let (settings, plugins) = fixture();
        let input: String = ms
            .iter()
            .enumerate()
            .map(|(i, ms)| {
                format!(
                    "{{\"id\":\"s{i}\",\"task\":\"testkit/sleep\",\"input\":{{\"ms\":{ms}}}}}\n"
                )
            })
            .collect();
        let router = Router::new(settings.routes.clone());
        let pools = Pools::build(settings, None).unwrap();
        let catalog = Catalog::new(plugins, &router, &pools).unwrap();
        let records = Records::default();
        let control = RunControl::default();
        let options = RunOptions {
            ordered: false,
            max_in_flight: 64,
            shutdown_grace: Duration::from_secs(5),
            progress: false,
            control: control.clone(),
        };
        std::thread::scope(|scope| {
            scope.spawn(|| meanwhile(&control));
            run(
                Box::new(JsonlSource::new(std::io::Cursor::new(input), 1024)),
                Box::new(records.clone()),
                &catalog,
                pools,
                &options,
                &Interrupts::detached(),
                &SharedBar::default(),
            )
            .unwrap();
        });
        assert!(
            !control.cancel(0),
            "the run is over: the control is detached"
        );
        let written = lock(&records.0).clone();
        written
            .into_iter()
            .map(|o| (o.seq, (o.status, o.error.unwrap_or_default())))
            .collect()
    }

    /// Waits (at most 30 s) until `count` entries run.
    fn until_running(control: &RunControl, count: usize) -> Vec<u64> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let running = control.running();
            if running.len() >= count || Instant::now() > deadline {
                return running;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn a_cancel_stops_one_running_entry_and_no_other() {
        let records = run_sleeps(&[300, 60_000, 300], |control| {
            assert!(until_running(control, 3).contains(&1));
            assert!(control.cancel(1));
        });
        assert_eq!(records.len(), 3);
        assert_eq!(records[&0].0, Status::Ok);
        assert_eq!(records[&2].0, Status::Ok);
        assert_eq!(records[&1].0, Status::Cancelled, "{:?}", records[&1]);
    }

    #[test]
    fn cancel_unstarted_lets_running_entries_finish_and_cancels_the_queued() {
        // Three workers: three run, three wait in the queue.
        let records = run_sleeps(&[1_500; 6], |control| {
            let running = until_running(control, 3);
            control.cancel_unstarted();
            assert_eq!(running.len(), 3);
        });
        assert_eq!(records.len(), 6);
        let ok = records.values().filter(|(s, _)| *s == Status::Ok).count();
        let cancelled: Vec<_> = records
            .values()
            .filter(|(s, _)| *s == Status::Cancelled)
            .collect();
        assert_eq!((ok, cancelled.len()), (3, 3), "{records:?}");
    }
}
