//! The progress bar (only when stderr is a terminal) and the summary printed at the end.

use std::collections::BTreeMap;
use std::fmt;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::sink::Status;
use crate::telemetry::SharedBar;

/// Counts outcomes and draws the bar.
#[derive(Debug)]
pub struct Progress {
    bar: Option<ProgressBar>,
    counts: BTreeMap<Status, u64>,
    started: Instant,
    not_ok: u64,
}

impl Progress {
    /// A bar on stderr when `enabled` and stderr is a terminal; a silent counter otherwise.
    pub fn new(shared: &SharedBar, enabled: bool, total: Option<u64>) -> Self {
        let bar = (enabled && std::io::stderr().is_terminal()).then(|| {
            let bar = match total {
                Some(total) => {
                    ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr())
                }
                None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
            };
            let template = if total.is_some() {
                "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} {rate} eta {eta} {msg}"
            } else {
                "{spinner} [{elapsed_precise}] {pos} done {rate} {msg}"
            };
            bar.set_style(
                ProgressStyle::with_template(template)
                    .expect("the template is valid")
                    .with_key(
                        "rate",
                        |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                            let _ = write!(w, "{:.0}/s", state.per_sec());
                        },
                    )
                    .progress_chars("=> "),
            );
            bar.enable_steady_tick(Duration::from_millis(100));
            // The first bar is the one log lines suspend; later runs in the process draw alone.
            let _ = shared.set(bar.clone());
            bar
        });
        Self {
            bar,
            counts: BTreeMap::new(),
            started: Instant::now(),
            not_ok: 0,
        }
    }

    /// Sets or raises the expected total.
    pub fn set_total(&self, total: u64) {
        if let Some(bar) = &self.bar {
            bar.set_length(total);
        }
    }

    /// Counts one outcome.
    pub fn record(&mut self, status: Status) {
        *self.counts.entry(status).or_default() += 1;
        if status != Status::Ok {
            self.not_ok += 1;
            if let Some(bar) = &self.bar {
                bar.set_message(format!("{} not ok", self.not_ok));
            }
        }
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
    }

    /// Removes the bar and returns the counts and the wall time.
    pub fn finish(&mut self) -> (BTreeMap<Status, u64>, Duration) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        (std::mem::take(&mut self.counts), self.started.elapsed())
    }
}

/// Peak use of one pool.
#[derive(Debug, Clone)]
pub struct PoolUse {
    pub name: String,
    pub max_workers: usize,
    pub workers_peak: usize,
    pub completed: u64,
}

/// What a run did, printed at the end.
#[derive(Debug, Clone)]
pub struct Summary {
    pub counts: BTreeMap<Status, u64>,
    pub wall: Duration,
    pub pools: Vec<PoolUse>,
    pub interrupted: bool,
    /// The output's reader went away (`taskhost run | head -1`), which stopped the run as
    /// Ctrl-C does; the records from then on went nowhere.
    pub output_closed: bool,
}

impl Summary {
    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }

    pub fn all_ok(&self) -> bool {
        self.counts
            .iter()
            .all(|(status, count)| *status == Status::Ok || *count == 0)
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total = self.total();
        let seconds = self.wall.as_secs_f64();
        let rate = if seconds > 0.0 {
            total as f64 / seconds
        } else {
            0.0
        };
        writeln!(
            f,
            "taskhost: {total} items in {seconds:.3}s ({rate:.0} items/s){}",
            if self.output_closed {
                ", stopped: the output was closed"
            } else if self.interrupted {
                ", interrupted"
            } else {
                ""
            }
        )?;
        let counts: Vec<String> = Status::ALL
            .iter()
            .filter_map(|status| {
                let count = self.counts.get(status).copied().unwrap_or(0);
                (count > 0).then(|| format!("{} {count}", status.as_str()))
            })
            .collect();
        writeln!(
            f,
            "  status: {}",
            if counts.is_empty() {
                "none".to_owned()
            } else {
                counts.join(", ")
            }
        )?;
        for pool in &self.pools {
            writeln!(
                f,
                "  pool {:<10} peak workers {}/{}, tasks run {}",
                pool.name, pool.workers_peak, pool.max_workers, pool.completed
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_counts_by_status() {
        let summary = Summary {
            counts: BTreeMap::from([(Status::Ok, 8), (Status::TimedOut, 2)]),
            wall: Duration::from_secs(2),
            pools: vec![PoolUse {
                name: "cpu".to_owned(),
                max_workers: 2,
                workers_peak: 2,
                completed: 10,
            }],
            interrupted: false,
            output_closed: false,
        };
        let text = summary.to_string();
        assert!(text.contains("10 items in 2.000s (5 items/s)"), "{text}");
        assert!(text.contains("status: ok 8, timed_out 2"), "{text}");
        assert!(text.contains("peak workers 2/2"), "{text}");
        assert!(!summary.all_ok());
    }
}
