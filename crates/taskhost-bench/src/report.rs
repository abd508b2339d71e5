//! The report: one table per scenario, as Markdown, JSON and an SVG plot of the main scenarios.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::scenarios::Plan;
use crate::stats::{ratio, Summary};
use crate::targets::{self, TargetCheck};

/// Everything one run measured.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Whether this was a `--quick` run (fewer tasks and repetitions).
    pub quick: bool,
    /// When the run started, UTC, ISO 8601.
    pub started_utc: String,
    /// What it ran on.
    pub machine: Machine,
    /// How many tasks and repetitions each scenario ran.
    pub plan: Plan,
    /// One entry per scenario run, in order.
    pub scenarios: Vec<ScenarioReport>,
    /// Where this run stands against the targets of issue 5.
    pub targets: Vec<TargetCheck>,
}

/// The machine a report was measured on.
#[derive(Debug, Serialize)]
pub struct Machine {
    /// `model name` from `/proc/cpuinfo`.
    pub cpu_model: String,
    /// Logical CPUs available to this process.
    pub cpus: usize,
    /// `/proc/sys/kernel/osrelease`.
    pub kernel: String,
    /// The 1-minute load average when the run started: a hint of how noisy it was.
    pub load_average_1m: String,
    /// The source measured: `git rev-parse --short HEAD`, `+dirty` when the tree has changes,
    /// `unknown` outside a git checkout.
    pub commit: String,
}

/// The checked-out commit of this workspace, as [`Machine::commit`] describes it.
fn workspace_commit() -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .ok()
            .filter(|output| output.status.success())
            .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
    };
    match git(&["rev-parse", "--short", "HEAD"]) {
        Some(commit) if !commit.is_empty() => {
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|status| !status.is_empty());
            if dirty {
                format!("{commit}+dirty")
            } else {
                commit
            }
        }
        _ => "unknown".to_owned(),
    }
}

impl Machine {
    /// Describes this machine from `/proc`.
    pub fn detect() -> Machine {
        let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|line| {
                line.strip_prefix("model name")?
                    .split_once(':')
                    .map(|(_, model)| model.trim())
            })
            .unwrap_or("unknown")
            .to_owned();
        let read_trimmed = |path: &str| fs::read_to_string(path).map(|text| text.trim().to_owned());
        Machine {
            cpu_model,
            cpus: std::thread::available_parallelism().map_or(1, |cpus| cpus.get()),
            kernel: read_trimmed("/proc/sys/kernel/osrelease").unwrap_or_default(),
            load_average_1m: read_trimmed("/proc/loadavg")
                .map(|loadavg| {
                    loadavg
                        .split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_owned()
                })
                .unwrap_or_default(),
            commit: workspace_commit(),
        }
    }
}

/// One scenario's table.
#[derive(Debug, Serialize)]
pub struct ScenarioReport {
    /// The scenario's number in issue 5.
    pub number: u8,
    /// The name `--scenario` takes.
    pub key: &'static str,
    /// A short title.
    pub title: &'static str,
    /// What one sample is, for the reader.
    pub measures: String,
    /// The unit of every figure in the table (lower is better for all of them).
    pub unit: &'static str,
    /// Whether the p99 column matters here (round trip).
    pub show_p99: bool,
    /// One row per contender; the floor's row has `is_floor`.
    pub rows: Vec<Row>,
    /// Remarks on how to read this table.
    pub notes: Vec<String>,
    /// Why the whole scenario did not run, if it did not.
    pub skipped: Option<String>,
}

/// One contender's figures in one scenario.
#[derive(Debug, Serialize)]
pub struct Row {
    /// Who ran.
    pub contender: String,
    /// Whether this row is the floor the ratios divide by.
    pub is_floor: bool,
    /// The figures, or `None` if this contender was skipped.
    pub summary: Option<Summary>,
    /// Median over the floor's median.
    pub ratio_to_floor: Option<f64>,
    /// p99 over the floor's p99 (only where `show_p99`).
    pub p99_ratio_to_floor: Option<f64>,
    /// Anything else worth a column: items/s, peak RSS, thread count.
    pub extra: Option<String>,
    /// The peak resident set of the process that ran this row (scenarios 6 and 7), KiB.
    pub peak_rss_kib: Option<u64>,
    /// Why this contender did not run, if it did not.
    pub skipped: Option<String>,
}

impl Row {
    /// A row with figures.
    pub fn measured(contender: impl Into<String>, summary: Option<Summary>) -> Row {
        Row {
            contender: contender.into(),
            is_floor: false,
            summary,
            ratio_to_floor: None,
            p99_ratio_to_floor: None,
            extra: None,
            peak_rss_kib: None,
            skipped: None,
        }
    }

    /// A row for a contender that did not run, and why.
    pub fn skipped(contender: impl Into<String>, reason: impl Into<String>) -> Row {
        Row {
            skipped: Some(reason.into()),
            ..Row::measured(contender, None)
        }
    }

    /// Marks this row as the floor.
    pub fn floor(mut self) -> Row {
        self.is_floor = true;
        self
    }

    /// Records the peak resident set of the process behind this row.
    pub fn with_peak_rss_kib(mut self, peak_rss_kib: u64) -> Row {
        self.peak_rss_kib = Some(peak_rss_kib);
        self
    }

    /// Adds the extra column.
    pub fn with_extra(mut self, extra: impl Into<String>) -> Row {
        self.extra = Some(extra.into());
        self
    }
}

impl ScenarioReport {
    /// The row of the contender with this name.
    pub fn row(&self, contender: &str) -> Option<&Row> {
        self.rows.iter().find(|row| row.contender == contender)
    }

    /// The median of the contender with this name, if it was measured.
    pub fn median(&self, contender: &str) -> Option<f64> {
        self.row(contender)?.summary.map(|summary| summary.median)
    }

    /// The floor's row.
    pub fn floor_row(&self) -> Option<&Row> {
        self.rows.iter().find(|row| row.is_floor)
    }

    /// Fills in every row's ratios from the floor row.
    pub fn compute_ratios(&mut self) {
        let floor = self.floor_row().and_then(|row| row.summary);
        for row in &mut self.rows {
            if let (Some(floor), Some(summary)) = (floor, row.summary) {
                row.ratio_to_floor = ratio(summary.median, floor.median);
                if self.show_p99 {
                    row.p99_ratio_to_floor = ratio(summary.p99, floor.p99);
                }
            }
        }
    }

    /// Adds a note when the floor's repetitions spread over more than `limit` times their
    /// fastest (max / min): the machine changed speed while the scenario ran (on the shared
    /// 2-vCPU machines the floor of scenario 3 reads ~50 ns in one mode and ~200 ns in the
    /// other), so this run's ratios are less certain than usual. Returns whether it did.
    pub fn note_unsteady_floor(&mut self, limit: f64) -> bool {
        let Some(floor) = self.floor_row().and_then(|row| row.summary) else {
            return false;
        };
        if !(floor.min > 0.0 && floor.max / floor.min > limit) {
            return false;
        }
        self.notes.push(format!(
            "The floor's repetitions spread from {} to {} {} ({:.1}×): the machine changed \
             speed during this scenario, so its ratios are less certain than usual (each \
             contender's repetitions are interleaved with the floor's, but a mode change can \
             still fall between them).",
            figure(floor.min),
            figure(floor.max),
            self.unit,
            floor.max / floor.min
        ));
        true
    }

    /// Adds a note with `contender`'s median over `reference`'s (both rows by name), if both
    /// were measured: `what` says what the reference is. Returns whether it did.
    pub fn note_ratio_to(&mut self, contender: &str, reference: &str, what: &str) -> bool {
        let (Some(measured), Some(against)) = (self.median(contender), self.median(reference))
        else {
            return false;
        };
        let Some(ratio) = ratio(measured, against) else {
            return false;
        };
        self.notes.push(format!(
            "{contender} is {ratio:.2}× the {reference} ({what}): {} against {} {}.",
            figure(measured),
            figure(against),
            self.unit
        ));
        true
    }

    /// This scenario's Markdown section.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "## {}. {} ({}, lower is better)\n",
            self.number, self.title, self.unit
        );
        let _ = writeln!(out, "{}\n", self.measures);
        if let Some(reason) = &self.skipped {
            let _ = writeln!(out, "skipped: {reason}\n");
            return out;
        }
        let p99_header = if self.show_p99 {
            " p99 | p99 × floor |"
        } else {
            ""
        };
        let p99_rule = if self.show_p99 { "---:|---:|" } else { "" };
        let _ = writeln!(
            out,
            "| contender | median | min | max | × floor |{p99_header} notes |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|{p99_rule}---|");
        for row in &self.rows {
            let name = if row.is_floor {
                format!("**{}** (floor)", row.contender)
            } else {
                row.contender.clone()
            };
            let notes = match (&row.skipped, &row.extra) {
                (Some(reason), _) => format!("skipped: {reason}"),
                (None, Some(extra)) => extra.clone(),
                (None, None) => String::new(),
            };
            let cells = match row.summary {
                Some(summary) => {
                    let p99 = if self.show_p99 {
                        format!(
                            " | {} | {}",
                            figure(summary.p99),
                            times(row.p99_ratio_to_floor)
                        )
                    } else {
                        String::new()
                    };
                    format!(
                        "{} | {} | {} | {}{p99}",
                        figure(summary.median),
                        figure(summary.min),
                        figure(summary.max),
                        times(row.ratio_to_floor)
                    )
                }
                None => {
                    let p99 = if self.show_p99 { " | — | —" } else { "" };
                    format!("— | — | — | —{p99}")
                }
            };
            let _ = writeln!(out, "| {name} | {cells} | {notes} |");
        }
        out.push('\n');
        for note in &self.notes {
            let _ = writeln!(out, "- {note}");
        }
        if !self.notes.is_empty() {
            out.push('\n');
        }
        out
    }
}

/// A figure to three significant digits or so.
pub fn figure(value: f64) -> String {
    match value.abs() {
        magnitude if magnitude >= 100.0 => format!("{value:.0}"),
        magnitude if magnitude >= 10.0 => format!("{value:.1}"),
        _ => format!("{value:.2}"),
    }
}

/// A ratio as `1.23×`, or a dash.
fn times(ratio: Option<f64>) -> String {
    ratio.map_or_else(|| "—".to_owned(), |ratio| format!("{ratio:.2}×"))
}

impl Report {
    /// The whole report as Markdown.
    pub fn markdown(&self) -> String {
        let mut out = String::from("# taskhost benchmarks\n\n");
        let machine = &self.machine;
        let _ = writeln!(
            out,
            "Run {} ({}) of commit {} on {} × {} (Linux {}, load average {} at start). \
             Every ratio divides by the floor measured in the same run; on a shared, noisy machine \
             the ratios mean more than the absolute times.\n",
            self.started_utc,
            if self.quick {
                "`--quick`: fewer tasks and repetitions, per-task figures"
            } else {
                "full run"
            },
            machine.commit,
            machine.cpus,
            machine.cpu_model,
            machine.kernel,
            machine.load_average_1m,
        );
        for scenario in &self.scenarios {
            out.push_str(&scenario.markdown());
        }
        if !self.targets.is_empty() {
            out.push_str(&targets::markdown(&self.targets));
        }
        out
    }

    /// Writes `report.md`, `report.json` and `report.svg` into `directory`.
    pub fn write(&self, directory: &Path) -> Result<()> {
        fs::create_dir_all(directory)
            .with_context(|| format!("creating {}", directory.display()))?;
        let write = |name: &str, contents: &[u8]| {
            let path = directory.join(name);
            fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))
        };
        write("report.md", self.markdown().as_bytes())?;
        write(
            "report.json",
            &serde_json::to_vec_pretty(self).context("serialising the report")?,
        )?;
        write("report.svg", self.svg().as_bytes())
    }

    /// A plot of the main scenarios: each contender's median as a multiple of the floor's, on a log
    /// scale, one panel per scenario; bars grow from the floor's line (1×) to the contender's ratio.
    pub fn svg(&self) -> String {
        const MAIN: [&str; 4] = ["throughput", "round-trip", "many-submitters", "memory"];
        const WIDTH: f64 = 860.0;
        const LABEL_WIDTH: f64 = 230.0;
        const PLOT_WIDTH: f64 = 560.0;
        const BAR_HEIGHT: f64 = 18.0;
        const ROW_HEIGHT: f64 = 24.0;
        let panels: Vec<(&ScenarioReport, Vec<(&str, f64)>)> = MAIN
            .iter()
            .filter_map(|key| self.scenarios.iter().find(|scenario| scenario.key == *key))
            .map(|scenario| {
                let bars = scenario
                    .rows
                    .iter()
                    .filter_map(|row| Some((row.contender.as_str(), row.ratio_to_floor?)))
                    .collect::<Vec<_>>();
                (scenario, bars)
            })
            .filter(|(_, bars)| !bars.is_empty())
            .collect();
        let largest = panels
            .iter()
            .flat_map(|(_, bars)| bars.iter().map(|&(_, ratio)| ratio))
            .fold(2.0, f64::max);
        let smallest = panels
            .iter()
            .flat_map(|(_, bars)| bars.iter().map(|&(_, ratio)| ratio))
            .fold(0.5, f64::min);
        let (log_low, log_high) = (smallest.log10().floor(), (largest * 1.5).log10().ceil());
        let x_of = |ratio: f64| {
            LABEL_WIDTH + (ratio.log10() - log_low) / (log_high - log_low) * PLOT_WIDTH
        };
        let panel_heights: Vec<f64> = panels
            .iter()
            .map(|(_, bars)| 50.0 + bars.len() as f64 * ROW_HEIGHT + 10.0)
            .collect();
        let height = 70.0 + panel_heights.iter().sum::<f64>();
        let mut svg = String::new();
        let _ = writeln!(
            svg,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">"#
        );
        let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
        let _ = writeln!(
            svg,
            r#"<text x="10" y="24" font-size="16" font-weight="bold">taskhost-executor vs peers: median time as a multiple of the floor (log scale, lower is better)</text>"#
        );
        let _ = writeln!(
            svg,
            r##"<text x="10" y="44" fill="#555">{} · {} × {} · {}</text>"##,
            escape(&self.started_utc),
            self.machine.cpus,
            escape(&self.machine.cpu_model),
            if self.quick { "--quick" } else { "full run" }
        );
        let mut top = 70.0;
        for ((scenario, bars), panel_height) in panels.iter().zip(&panel_heights) {
            let _ = writeln!(
                svg,
                r#"<text x="10" y="{}" font-size="14" font-weight="bold">{}. {} ({})</text>"#,
                top + 16.0,
                scenario.number,
                escape(scenario.title),
                escape(scenario.unit)
            );
            let axis_top = top + 26.0;
            let axis_bottom = axis_top + bars.len() as f64 * ROW_HEIGHT;
            let mut decade = log_low;
            while decade <= log_high {
                for step in [1.0, 2.0, 5.0] {
                    let tick = 10f64.powf(decade) * step;
                    if tick.log10() > log_high + 1e-9 || tick.log10() < log_low - 1e-9 {
                        continue;
                    }
                    let x = x_of(tick);
                    let _ = writeln!(
                        svg,
                        r##"<line x1="{x:.1}" y1="{axis_top}" x2="{x:.1}" y2="{axis_bottom}" stroke="#ddd"/><text x="{x:.1}" y="{}" text-anchor="middle" fill="#777" font-size="10">{}×</text>"##,
                        axis_bottom + 12.0,
                        if tick >= 1.0 {
                            format!("{tick:.0}")
                        } else {
                            format!("{tick:.1}")
                        }
                    );
                }
                decade += 1.0;
            }
            let one = x_of(1.0);
            for (index, &(name, ratio)) in bars.iter().enumerate() {
                let y = axis_top + index as f64 * ROW_HEIGHT + (ROW_HEIGHT - BAR_HEIGHT) / 2.0;
                let (left, right) = if ratio >= 1.0 {
                    (one, x_of(ratio))
                } else {
                    (x_of(ratio), one)
                };
                let color = if name.starts_with("taskhost") {
                    "#d62728"
                } else if name == "floor" {
                    "#7f7f7f"
                } else if name.starts_with("python") {
                    "#9467bd"
                } else {
                    "#1f77b4"
                };
                let _ = writeln!(
                    svg,
                    r##"<text x="{}" y="{:.1}" text-anchor="end">{}</text><rect x="{left:.1}" y="{y:.1}" width="{:.1}" height="{BAR_HEIGHT}" fill="{color}"/><text x="{:.1}" y="{:.1}" fill="#333">{:.2}×</text>"##,
                    LABEL_WIDTH - 8.0,
                    y + 13.0,
                    escape(name),
                    (right - left).max(1.0),
                    right.max(one) + 4.0,
                    y + 13.0,
                    ratio
                );
            }
            let _ = writeln!(
                svg,
                r#"<line x1="{one:.1}" y1="{axis_top}" x2="{one:.1}" y2="{axis_bottom}" stroke="black"/>"#
            );
            top += panel_height;
        }
        svg.push_str("</svg>\n");
        svg
    }
}

/// Escapes text for SVG.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Now, UTC, as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn now_utc() -> String {
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    utc_from_unix_seconds(seconds)
}

/// Formats seconds since the Unix epoch as `YYYY-MM-DDTHH:MM:SSZ` (Howard Hinnant's civil-from-days).
fn utc_from_unix_seconds(seconds: u64) -> String {
    let days = (seconds / 86_400) as i64;
    let second_of_day = seconds % 86_400;
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        second_of_day / 3_600,
        second_of_day % 3_600 / 60,
        second_of_day % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unsteady_floor_is_noted_and_a_steady_one_is_not() {
        let floor = |samples: &[f64]| {
            let mut report = scenario(vec![
                Row::measured("floor", Summary::of(samples)).floor(),
                Row::measured("other", Summary::of(&[100.0])),
            ]);
            report.notes.clear();
            let noted = report.note_unsteady_floor(2.0);
            (noted, report.notes)
        };
        let (noted, notes) = floor(&[50.0, 60.0, 99.0]);
        assert!(!noted && notes.is_empty(), "1.98× is steady: {notes:?}");
        let (noted, notes) = floor(&[50.0, 60.0, 210.0]);
        assert!(noted);
        assert_eq!(notes.len(), 1);
        assert!(
            notes[0].starts_with(
                "The floor's repetitions spread from 50.0 to 210 ns per iteration (4.2×)"
            ),
            "{}",
            notes[0]
        );
        let mut skipped = scenario(vec![Row::skipped("floor", "not built").floor()]);
        assert!(
            !skipped.note_unsteady_floor(2.0),
            "no floor figures, no note"
        );
    }

    #[test]
    fn a_ratio_to_a_reference_row_is_noted_only_when_both_were_measured() {
        let mut report = scenario(vec![
            Row::measured("floor", Summary::of(&[50.0])).floor(),
            Row::measured("reference", Summary::of(&[80.0, 100.0, 120.0])),
            Row::measured("mine", Summary::of(&[150.0])),
            Row::skipped("absent", "not built"),
        ]);
        report.notes.clear();
        assert!(report.note_ratio_to("mine", "reference", "the least it can be"));
        assert_eq!(
            report.notes,
            ["mine is 1.50× the reference (the least it can be): 150 against 100 ns per iteration."]
        );
        assert!(!report.note_ratio_to("mine", "absent", "x"));
        assert!(!report.note_ratio_to("nobody", "reference", "x"));
        assert_eq!(report.notes.len(), 1);
    }

    fn scenario(rows: Vec<Row>) -> ScenarioReport {
        ScenarioReport {
            number: 2,
            key: "round-trip",
            title: "Round trip",
            measures: "one submit and wait".to_owned(),
            unit: "ns per iteration",
            show_p99: true,
            rows,
            notes: vec!["a note".to_owned()],
            skipped: None,
        }
    }

    #[test]
    fn ratios_divide_by_the_floor_row() {
        let mut report = scenario(vec![
            Row::measured("floor", Summary::of(&[10.0, 20.0, 30.0])).floor(),
            Row::measured("taskhost-executor submit", Summary::of(&[15.0, 30.0, 90.0])),
            Row::skipped("python", "not installed"),
        ]);
        report.compute_ratios();
        assert_eq!(report.rows[0].ratio_to_floor, Some(1.0));
        assert_eq!(report.rows[1].ratio_to_floor, Some(1.5));
        assert_eq!(report.rows[1].p99_ratio_to_floor, Some(3.0));
        assert_eq!(report.rows[2].ratio_to_floor, None);
        let markdown = report.markdown();
        assert!(
            markdown.contains("| **floor** (floor) | 20.0 | 10.0 | 30.0 | 1.00× | 30.0 | 1.00× |"),
            "{markdown}"
        );
        assert!(
            markdown.contains(
                "| taskhost-executor submit | 30.0 | 15.0 | 90.0 | 1.50× | 90.0 | 3.00× |"
            ),
            "{markdown}"
        );
        assert!(markdown.contains("skipped: not installed"), "{markdown}");
    }

    #[test]
    fn formats_utc_dates() {
        assert_eq!(utc_from_unix_seconds(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc_from_unix_seconds(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc_from_unix_seconds(1_795_000_000), "2026-11-18T11:06:40Z");
    }

    #[test]
    fn svg_has_one_bar_per_measured_row() {
        let mut round_trip = scenario(vec![
            Row::measured("floor", Summary::of(&[10.0])).floor(),
            Row::measured("rayon", Summary::of(&[25.0])),
        ]);
        round_trip.compute_ratios();
        let report = Report {
            quick: true,
            started_utc: "now".to_owned(),
            machine: Machine::detect(),
            plan: Plan::quick(),
            scenarios: vec![round_trip],
            targets: Vec::new(),
        };
        let svg = report.svg();
        assert!(svg.starts_with("<svg"));
        assert_eq!(svg.matches("<rect ").count(), 1 + 2);
        assert!(svg.contains("2.50×"));
    }
}
