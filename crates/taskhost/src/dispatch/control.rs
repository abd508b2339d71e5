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
    /// stop (its record then says what the task made of that), and one waiting to retry is
    /// recorded `cancelled` at once, without the retry. `false` when the entry is in none of
    /// those states: not dispatched yet, or finished.
    pub fn cancel(&self, seq: u64) -> bool {
        let Some(dispatcher) = self.dispatcher() else {
            return false;
        };
        if Self::cancel_in_pool(&dispatcher, seq) || Self::cancel_retry(&dispatcher, seq) {
            return true;
        }
        // A retry that fired meanwhile has moved from the timer to its pool.
        Self::cancel_in_pool(&dispatcher, seq)
    }

    /// Cancels the attempt of entry `seq` that is in a pool, if there is one.
    fn cancel_in_pool(dispatcher: &Dispatcher, seq: u64) -> bool {
        let found = dispatcher
            .running
            .shard(seq)
            .get_mut(&seq)
            .and_then(|running| {
                running.cancelled = true;
                Some((running.future.clone()?, running.job.span.clone()))
            });
        let Some((future, span)) = found else {
            return false;
        };
        let _entered = span.enter();
        if !future.cancel() {
            future.request_stop();
        }
        true
    }

    /// Records entry `seq` `cancelled` if it waits to retry.
    fn cancel_retry(dispatcher: &Dispatcher, seq: u64) -> bool {
        let Some(job) = dispatcher.timer.take_retry(seq) else {
            return false;
        };
        dispatcher.cancel_waiting(job, "cancelled while waiting to retry");
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

    /// How many entries wait to retry now.
    #[cfg(test)]
    fn waiting_to_retry(&self) -> usize {
        self.dispatcher()
            .map_or(0, |dispatcher| dispatcher.timer.retries())
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
    use crate::config::settings::Settings;
    use crate::config::{load_from, EMBEDDED_DEFAULT};
    use crate::dispatch::proptests::{fixture, plugin_dir, Records};
    use crate::dispatch::{run, Catalog, Pools, RunOptions};
    use crate::routing::Router;
    use crate::signals::Interrupts;
    use crate::sink::{Outcome, Status};
    use crate::source::JsonlSource;
    use crate::telemetry::SharedBar;

    /// Runs testkit/sleep items of `ms` each on the fixture's pools (3 workers), calling
    /// `meanwhile` with the run's control on another thread; the records by `seq`.
    fn run_sleeps(
        ms: &[u64],
        meanwhile: impl FnOnce(&RunControl) + Send,
    ) -> BTreeMap<u64, (Status, String)> {
        let input: String = ms
            .iter()
            .enumerate()
            .map(|(i, ms)| {
                format!(
                    "{{\"id\":\"s{i}\",\"task\":\"testkit/sleep\",\"input\":{{\"ms\":{ms}}}}}\n"
                )
            })
            .collect();
        run_lines(&fixture().0, input, meanwhile)
            .into_iter()
            .map(|(seq, o)| (seq, (o.status, o.error.unwrap_or_default())))
            .collect()
    }

    /// Runs the JSON lines of `input` with `settings` and the fixture's plugins, calling
    /// `meanwhile` with the run's control on another thread; the records by `seq`.
    fn run_lines(
        settings: &Settings,
        input: String,
        meanwhile: impl FnOnce(&RunControl) + Send,
    ) -> BTreeMap<u64, Outcome> {
        let plugins = &fixture().1;
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
        written.into_iter().map(|o| (o.seq, o)).collect()
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

    /// The fixture's configuration, with testkit/fail retried after a minute.
    fn slow_retries() -> Settings {
        let file = format!(
            "[plugins]\ndirs = [{:?}]\n\n[pools.default]\nmax_workers = 3\n\n\
             [[routes]]\ntask = \"testkit/fail\"\npool = \"default\"\nretries = 2\n\
             backoff = \"60s\"\n\n\
             [[routes]]\ntask = \"testkit/stuck\"\npool = \"default\"\ntimeout = \"100ms\"\n\
             retries = 2\nbackoff = \"60s\"\n",
            plugin_dir().display().to_string()
        );
        load_from(EMBEDDED_DEFAULT, Some(("control.toml".into(), file)), &[])
            .expect("the test config loads")
            .settings
    }

    #[test]
    fn a_cancel_reaches_an_entry_waiting_to_retry() {
        let input = "{\"id\":\"f\",\"task\":\"testkit/fail\",\"input\":{\"message\":\"no\"}}\n\
                     {\"id\":\"e\",\"task\":\"testkit/echo\",\"input\":1}\n";
        let started = Instant::now();
        let records = run_lines(&slow_retries(), input.to_owned(), |control| {
            let deadline = Instant::now() + Duration::from_secs(30);
            while control.waiting_to_retry() == 0 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            assert_eq!(
                control.waiting_to_retry(),
                1,
                "the failed item waits to retry"
            );
            assert!(control.cancel(0));
            assert_eq!(control.waiting_to_retry(), 0);
            assert!(!control.cancel(0), "recorded already");
        });
        let failed = &records[&0];
        assert_eq!(failed.status, Status::Cancelled, "{failed:?}");
        assert_eq!(
            failed.error.as_deref(),
            Some("cancelled while waiting to retry")
        );
        assert_eq!(failed.attempts, 1, "the retry it waited for did not run");
        assert_eq!(records[&1].status, Status::Ok);
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the run did not wait for the minute's backoff"
        );
    }

    #[test]
    fn a_cancelled_attempt_that_fails_anyway_is_not_retried() {
        // testkit/stuck ignores the stop request and runs past its timeout: a failure that is
        // retried, unless its caller cancelled it.
        let input = "{\"id\":\"s\",\"task\":\"testkit/stuck\",\"input\":{\"ms\":400}}\n";
        let records = run_lines(&slow_retries(), input.to_owned(), |control| {
            let running = until_running(control, 1);
            assert_eq!(running, [0]);
            assert!(control.cancel(0));
        });
        let record = &records[&0];
        assert_eq!(record.status, Status::TimedOut, "{record:?}");
        assert_eq!(record.attempts, 1, "not retried: {record:?}");
    }
}
