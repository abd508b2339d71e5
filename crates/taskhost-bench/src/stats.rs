//! Order statistics over repeated measurements: median, min, max and p99.
//!
//! Medians rather than means because these machines are shared: one rep that lost its core to a
//! compiler drags a mean far more than a median.

use serde::Serialize;

/// The summary of one contender's samples in one scenario, in the scenario's unit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Summary {
    /// How many samples were summarised.
    pub samples: usize,
    /// The smallest sample.
    pub min: f64,
    /// The middle sample (the mean of the two middle ones for an even count).
    pub median: f64,
    /// The 99th percentile, nearest-rank: the smallest sample with at least 99% of samples at or
    /// below it.
    pub p99: f64,
    /// The largest sample.
    pub max: f64,
}

impl Summary {
    /// Summarises `samples`; `None` when there are none or one is not a number.
    pub fn of(samples: &[f64]) -> Option<Summary> {
        if samples.is_empty() || samples.iter().any(|sample| sample.is_nan()) {
            return None;
        }
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        Some(Summary {
            samples: sorted.len(),
            min: sorted[0],
            median: median_of_sorted(&sorted),
            p99: percentile_of_sorted(&sorted, 99.0),
            max: sorted[sorted.len() - 1],
        })
    }
}

/// The median of an already sorted, non-empty slice.
fn median_of_sorted(sorted: &[f64]) -> f64 {
    let middle = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        sorted[middle]
    } else {
        (sorted[middle - 1] + sorted[middle]) / 2.0
    }
}

/// The nearest-rank percentile of an already sorted, non-empty slice (`percent` in 0..=100).
fn percentile_of_sorted(sorted: &[f64], percent: f64) -> f64 {
    let rank = (percent / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// `value / floor`, or `None` where the floor is zero or either side is missing.
pub fn ratio(value: f64, floor: f64) -> Option<f64> {
    (floor > 0.0 && value.is_finite()).then(|| value / floor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_count_takes_the_middle_sample() {
        let summary = Summary::of(&[5.0, 1.0, 3.0]).unwrap();
        assert_eq!(summary.samples, 3);
        assert_eq!(summary.min, 1.0);
        assert_eq!(summary.median, 3.0);
        assert_eq!(summary.max, 5.0);
    }

    #[test]
    fn even_count_averages_the_two_middle_samples() {
        let summary = Summary::of(&[4.0, 1.0, 2.0, 10.0]).unwrap();
        assert_eq!(summary.median, 3.0);
        assert_eq!(summary.min, 1.0);
        assert_eq!(summary.max, 10.0);
    }

    #[test]
    fn p99_is_nearest_rank() {
        // 1..=100: the 99th percentile is the 99th value.
        let samples: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(Summary::of(&samples).unwrap().p99, 99.0);
        // 1..=1000: rank 990.
        let samples: Vec<f64> = (1..=1000).rev().map(f64::from).collect();
        let summary = Summary::of(&samples).unwrap();
        assert_eq!(summary.p99, 990.0);
        assert_eq!(summary.median, 500.5);
        // Ten samples: rank ceil(9.9) = 10, the maximum.
        let samples: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(Summary::of(&samples).unwrap().p99, 10.0);
    }

    #[test]
    fn one_sample_is_every_statistic() {
        let summary = Summary::of(&[7.5]).unwrap();
        assert_eq!(
            (summary.min, summary.median, summary.p99, summary.max),
            (7.5, 7.5, 7.5, 7.5)
        );
    }

    #[test]
    fn no_samples_or_nan_gives_none() {
        assert_eq!(Summary::of(&[]), None);
        assert_eq!(Summary::of(&[1.0, f64::NAN]), None);
    }

    #[test]
    fn ratio_refuses_a_zero_floor() {
        assert_eq!(ratio(3.0, 2.0), Some(1.5));
        assert_eq!(ratio(3.0, 0.0), None);
        assert_eq!(ratio(f64::INFINITY, 2.0), None);
    }
}
