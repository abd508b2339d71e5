//! One scenario's table ([`ScenarioReport`]: a [`Row`] per contender, the ratios to the floor, the
//! notes) and how its figures are written.

use std::fmt::Write as _;

use anyhow::Result;
use serde::Serialize;

use crate::stats::{ratio, Summary};

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
    /// fastest (max / min): the machine changed speed while the scenario ran (the shared
    /// machines have two speeds, see the README's "Reading the report"), so this run's ratios
    /// are less certain than usual. Returns whether it did.
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

/// A row from a contender's samples, or a skipped row saying what went wrong.
pub fn row_from(name: &str, samples: Result<Vec<f64>>) -> Row {
    match samples {
        Ok(samples) => match Summary::of(&samples) {
            Some(summary) => {
                eprintln!("  {name:<28} median {}", figure(summary.median));
                Row::measured(name, Some(summary))
            }
            None => Row::skipped(name, "no samples"),
        },
        Err(error) => {
            eprintln!("  {name:<28} skipped: {error:#}");
            Row::skipped(name, format!("{error:#}"))
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
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

    /// A round-trip table with these rows and one note.
    pub(crate) fn scenario(rows: Vec<Row>) -> ScenarioReport {
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
}
