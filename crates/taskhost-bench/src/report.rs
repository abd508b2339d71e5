//! The report: one table per scenario, as Markdown, JSON and an SVG plot of the main scenarios.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::scenarios::Plan;
use crate::table::ScenarioReport;
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
    use crate::stats::Summary;
    use crate::table::tests::scenario;
    use crate::table::Row;

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
