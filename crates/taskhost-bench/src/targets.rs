//! The speed targets of issue 5, checked against one run's tables: what each target asks, the
//! figure measured, and whether it is met. Reported, never asserted: these machines are noisy.

use std::fmt::Write as _;

use serde::Serialize;

use crate::scenarios::Contender;
use crate::table::{figure, Row, ScenarioReport};

/// One target and where this run stands.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TargetCheck {
    /// The scenario's number.
    pub scenario: u8,
    /// What issue 5 asks.
    pub target: String,
    /// What this run measured, in words and figures.
    pub measured: String,
    /// `Some(true)` met, `Some(false)` missed, `None` not measured in this run.
    pub met: Option<bool>,
}

/// A check from an optional comparison: `None` when a figure is missing.
fn check(scenario: u8, target: &str, measured: Option<(String, bool)>) -> TargetCheck {
    let (measured, met) = match measured {
        Some((measured, met)) => (measured, Some(met)),
        None => ("not measured".to_owned(), None),
    };
    TargetCheck {
        scenario,
        target: target.to_owned(),
        measured,
        met,
    }
}

/// A ratio against its limit: the figure as the report prints it, and whether it is met.
fn at_most(ratio: Option<f64>, limit: f64) -> Option<(String, bool)> {
    ratio.map(|ratio| (format!("{ratio:.2}×"), ratio <= limit))
}

/// The same limit on the floor ratio for both executor paths: `submit` (a future per task) and
/// `execute` (fire and forget, like the floor). `target` follows the path's name.
fn both_paths(
    checks: &mut Vec<TargetCheck>,
    scenario: &ScenarioReport,
    number: u8,
    target: &str,
    limit: f64,
) {
    let ratio = |contender: Contender| {
        scenario
            .row(contender.name())
            .and_then(|row| row.ratio_to_floor)
    };
    checks.push(check(
        number,
        &format!("executor submit {target}"),
        at_most(ratio(Contender::ExecutorSubmit), limit),
    ));
    checks.push(check(
        number,
        &format!("executor execute {target} (fire and forget)"),
        at_most(ratio(Contender::ExecutorExecute), limit),
    ));
}

/// Every target whose scenario is in `scenarios`.
pub fn check_all(scenarios: &[ScenarioReport]) -> Vec<TargetCheck> {
    let submit = Contender::ExecutorSubmit.name();
    let execute = Contender::ExecutorExecute.name();
    let mut checks = Vec::new();
    for scenario in scenarios {
        if scenario.skipped.is_some() {
            continue;
        }
        match scenario.key {
            "throughput" => {
                both_paths(
                    &mut checks,
                    scenario,
                    1,
                    "≤ 1.3× the floor's time per task",
                    1.3,
                );
                for peer in [Contender::Tokio.name(), Contender::Blocking.name()] {
                    checks.push(check(
                        1,
                        &format!("executor submit faster than {peer}"),
                        scenario
                            .median(submit)
                            .zip(scenario.median(peer))
                            .map(|(ours, theirs)| {
                                (
                                    format!("{} vs {} ns per task", figure(ours), figure(theirs)),
                                    ours < theirs,
                                )
                            }),
                    ));
                }
                checks.push(check(
                    1,
                    "executor submit ≥ 50× faster than Python's ThreadPoolExecutor",
                    scenario
                        .median(submit)
                        .zip(scenario.median(crate::python::NAME))
                        .map(|(ours, python)| {
                            (
                                format!("{:.1}× faster", python / ours),
                                python / ours >= 50.0,
                            )
                        }),
                ));
            }
            "round-trip" => {
                let submit_row = scenario.row(submit);
                checks.push(check(
                    2,
                    "executor submit round trip: median ≤ 1.5× the floor",
                    at_most(submit_row.and_then(|row| row.ratio_to_floor), 1.5),
                ));
                checks.push(check(
                    2,
                    "executor submit round trip: p99 ≤ 2× the floor's p99",
                    at_most(submit_row.and_then(|row| row.p99_ratio_to_floor), 2.0),
                ));
            }
            "many-submitters" => {
                both_paths(
                    &mut checks,
                    scenario,
                    3,
                    "with 4 submitters ≤ 1.5× the floor",
                    1.5,
                );
            }
            "plugin-call" => {
                let direct = scenario
                    .floor_row()
                    .and_then(|row| row.summary)
                    .map(|summary| summary.median);
                let abi = scenario
                    .rows
                    .iter()
                    .find(|row| row.contender == crate::external::THROUGH_THE_ABI)
                    .and_then(|row| row.summary)
                    .map(|summary| summary.median);
                checks.push(check(
                    5,
                    "a call through the ABI costs < 50 ns more than a direct call",
                    direct.zip(abi).map(|(direct, abi)| {
                        (
                            format!(
                                "+{} ns ({} vs {} ns)",
                                figure(abi - direct),
                                figure(abi),
                                figure(direct)
                            ),
                            abi - direct < 50.0,
                        )
                    }),
                ));
            }
            "cluster" => {
                let distributed = scenario
                    .rows
                    .iter()
                    .find(|row| row.contender.starts_with("taskhost submit"));
                checks.push(check(
                    9,
                    "`taskhost submit` + 2 workers ≥ half the raw publish → pull → ack loop's items/s",
                    distributed.and_then(|row| row.ratio_to_floor).map(|ratio| {
                        (
                            format!("{:.0}% of the floor's items/s", 100.0 / ratio),
                            ratio <= 2.0,
                        )
                    }),
                ));
                let celery = scenario.median(crate::celery::NAME);
                checks.push(check(
                    9,
                    "`taskhost submit` + 2 workers faster than Celery + Redis",
                    distributed
                        .and_then(|row| row.summary)
                        .zip(celery)
                        .map(|(submit, celery)| {
                            (
                                format!("{:.2}× Celery's items/s", celery / submit.median),
                                submit.median < celery,
                            )
                        }),
                ));
            }
            "host-e2e" => {
                let host_rows: Vec<&Row> =
                    scenario.rows.iter().filter(|row| !row.is_floor).collect();
                checks.push(check(
                    6,
                    "`taskhost run` ≥ half the serde_json floor's items/s",
                    host_rows
                        .first()
                        .and_then(|row| row.ratio_to_floor)
                        .map(|ratio| {
                            (
                                format!("{:.0}% of the floor's items/s", 100.0 / ratio),
                                ratio <= 2.0,
                            )
                        }),
                ));
                let peaks = host_rows
                    .first()
                    .and_then(|row| row.peak_rss_kib)
                    .zip(host_rows.get(1).and_then(|row| row.peak_rss_kib));
                checks.push(check(
                    6,
                    "peak RSS flat (within 1.2×) from N to 4N items",
                    peaks.filter(|&(small, _)| small > 0).map(|(small, large)| {
                        let growth = large as f64 / small as f64;
                        (
                            format!(
                                "{growth:.2}× ({} → {} MiB)",
                                figure(small as f64 / 1024.0),
                                figure(large as f64 / 1024.0)
                            ),
                            growth <= 1.2,
                        )
                    }),
                ));
            }
            "memory" => {
                // The closure itself: the task index for submitters, index + latch for spawners.
                for (contender, closure_bytes) in [(submit, 8.0), (execute, 16.0)] {
                    checks.push(check(
                        7,
                        &format!("{contender}: < 200 bytes per queued task beyond the closure ({closure_bytes} bytes)"),
                        scenario.median(contender).map(|bytes| {
                            (format!("{} bytes beyond the closure", figure(bytes - closure_bytes)), bytes - closure_bytes < 200.0)
                        }),
                    ));
                }
            }
            "idle" => {
                let bare = scenario.floor_row().and_then(|row| row.summary);
                for contender in [submit, execute] {
                    checks.push(check(
                        8,
                        &format!("{contender} idle: within 100 µs of CPU (over the window) of a process with no pool"),
                        bare.zip(scenario.median(contender)).map(|(bare, ours)| {
                            let difference = ours - bare.median;
                            (format!("{difference:+.0} µs ({} vs {} µs)", figure(ours), figure(bare.median)), difference <= 100.0)
                        }),
                    ));
                }
            }
            _ => {}
        }
    }
    checks
}

/// The checks as a Markdown section.
pub fn markdown(checks: &[TargetCheck]) -> String {
    let mut out = String::from("## Targets of issue 5\n\n");
    out.push_str("Measured in this run; a noisy machine can move a figure across its line.\n\n");
    out.push_str("| # | target | measured | met |\n|---:|---|---|---|\n");
    for check in checks {
        let met = match check.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "—",
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {met} |",
            check.scenario, check.target, check.measured
        );
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Summary;

    fn throughput(rows: Vec<Row>) -> ScenarioReport {
        let mut report = ScenarioReport {
            number: 1,
            key: "throughput",
            title: "Throughput",
            measures: String::new(),
            unit: "ns per task",
            show_p99: false,
            rows,
            notes: Vec::new(),
            skipped: None,
        };
        report.compute_ratios();
        report
    }

    #[test]
    fn throughput_targets_compare_medians() {
        let report = throughput(vec![
            Row::measured("floor", Summary::of(&[100.0])).floor(),
            Row::measured(Contender::ExecutorSubmit.name(), Summary::of(&[120.0])),
            Row::measured(Contender::ExecutorExecute.name(), Summary::of(&[200.0])),
            Row::measured(Contender::Tokio.name(), Summary::of(&[500.0])),
            Row::measured(crate::python::NAME, Summary::of(&[1_200.0])),
        ]);
        let checks = check_all(&[report]);
        let met: Vec<Option<bool>> = checks.iter().map(|check| check.met).collect();
        // submit 1.2× (met), execute 2× (missed), faster than tokio (met), blocking missing,
        // Python only 10× slower (missed).
        assert_eq!(
            met,
            [Some(true), Some(false), Some(true), None, Some(false)]
        );
        assert_eq!(checks[0].measured, "1.20×");
        assert!(markdown(&checks)
            .contains("| 1 | executor submit ≤ 1.3× the floor's time per task | 1.20× | yes |"));
    }

    #[test]
    fn the_plugin_target_reads_the_abi_row_not_the_sdk_row() {
        let mut report = throughput(vec![
            Row::measured("direct call", Summary::of(&[20.0])).floor(),
            Row::measured("SDK dispatch, no ABI", Summary::of(&[25.0])),
            Row::measured(crate::external::THROUGH_THE_ABI, Summary::of(&[90.0])),
        ]);
        report.key = "plugin-call";
        let checks = check_all(&[report]);
        assert_eq!(checks.len(), 1);
        assert_eq!(checks[0].met, Some(false));
        assert!(
            checks[0].measured.starts_with("+70.0 ns"),
            "{}",
            checks[0].measured
        );
    }

    #[test]
    fn many_submitters_checks_both_executor_paths() {
        let mut report = throughput(vec![
            Row::measured("floor", Summary::of(&[50.0])).floor(),
            Row::measured(Contender::ExecutorSubmit.name(), Summary::of(&[160.0])),
            Row::measured(Contender::ExecutorExecute.name(), Summary::of(&[70.0])),
        ]);
        report.key = "many-submitters";
        let checks = check_all(&[report]);
        let found: Vec<(u8, &str, Option<bool>)> = checks
            .iter()
            .map(|check| (check.scenario, check.measured.as_str(), check.met))
            .collect();
        assert_eq!(found, [(3, "3.20×", Some(false)), (3, "1.40×", Some(true))]);
        assert!(checks[1].target.contains("execute"));
    }

    #[test]
    fn the_cluster_targets_compare_submit_with_the_floor_and_with_celery() {
        let cluster = |celery: Row| {
            let mut report = throughput(vec![
                Row::measured("raw loop", Summary::of(&[20_000.0])).floor(),
                Row::measured("taskhost submit + 2 workers", Summary::of(&[50_000.0])),
                celery,
            ]);
            report.key = "cluster";
            check_all(&[report])
        };
        let checks = cluster(Row::measured(
            crate::celery::NAME,
            Summary::of(&[1_000_000.0]),
        ));
        let found: Vec<(u8, &str, Option<bool>)> = checks
            .iter()
            .map(|check| (check.scenario, check.measured.as_str(), check.met))
            .collect();
        assert_eq!(
            found,
            [
                (9, "40% of the floor's items/s", Some(false)),
                (9, "20.00× Celery's items/s", Some(true))
            ]
        );
        let skipped = cluster(Row::skipped(crate::celery::NAME, "no redis-server"));
        assert_eq!(skipped[1].met, None);
    }

    #[test]
    fn skipped_scenarios_have_no_targets() {
        let mut report = throughput(Vec::new());
        report.skipped = Some("not built".to_owned());
        assert!(check_all(&[report]).is_empty());
    }
}
