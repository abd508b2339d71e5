//! `primes`: counts the primes below `n` with a segmented sieve of Eratosthenes. CPU-bound.
//!
//! The sieve works on segments of [`SEGMENT_LEN`] odd numbers so that memory stays small for a
//! big `n`, and it looks at the cancellation flag and reports progress once per segment.

use serde::{Deserialize, Serialize};
use taskhost_plugin_api::{export_plugin, Plugin, TaskContext, TaskError};

/// Odd numbers per segment (a 256 KiB `Vec<bool>`, about an L2 cache).
pub const SEGMENT_LEN: u64 = 256 * 1024;

/// Input of `count`.
#[derive(Debug, Deserialize)]
pub struct CountInput {
    /// Count the primes `p < n`.
    pub n: u64,
}

/// Output of `count`.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct CountOutput {
    /// The `n` asked for.
    pub n: u64,
    /// How many primes are below `n`.
    pub count: u64,
}

/// The largest `r` with `r * r <= n`.
fn integer_sqrt(n: u64) -> u64 {
    let mut root = (n as f64).sqrt() as u64;
    while root.saturating_mul(root) > n {
        root -= 1;
    }
    while (root + 1).saturating_mul(root + 1) <= n {
        root += 1;
    }
    root
}

/// The odd primes up to and including `limit`, by a plain sieve.
fn small_odd_primes(limit: u64) -> Vec<u64> {
    let limit = limit as usize;
    let mut composite = vec![false; limit + 1];
    let mut primes = Vec::new();
    let mut candidate = 3;
    while candidate <= limit {
        if !composite[candidate] {
            primes.push(candidate as u64);
            let mut multiple = candidate * candidate;
            while multiple <= limit {
                composite[multiple] = true;
                multiple += 2 * candidate;
            }
        }
        candidate += 2;
    }
    primes
}

/// Counts the primes below `n`, calling `between_segments(done, total)` before each segment;
/// an error from it stops the count.
pub fn count_primes_below(
    n: u64,
    mut between_segments: impl FnMut(u64, u64) -> Result<(), TaskError>,
) -> Result<u64, TaskError> {
    if n <= 2 {
        return Ok(0);
    }
    let last = n - 1; // the largest candidate
    let sieving_primes = small_odd_primes(integer_sqrt(last));
    // Segment k holds the odd numbers low, low + 2, ..., starting at low = 3.
    let odd_count = (last - 1) / 2; // odd numbers in 3..=last
    let segments = odd_count.div_ceil(SEGMENT_LEN);
    let mut composite = vec![false; SEGMENT_LEN as usize];
    let mut count = 1; // the prime 2
    for segment in 0..segments {
        between_segments(segment, segments)?;
        let low = 3 + 2 * segment * SEGMENT_LEN;
        let len = SEGMENT_LEN.min(odd_count - segment * SEGMENT_LEN) as usize;
        let high = low + 2 * (len as u64 - 1); // the largest odd number in this segment
        composite[..len].fill(false);
        for &prime in &sieving_primes {
            let square = prime * prime;
            if square > high {
                break;
            }
            // The first odd multiple of `prime` that is >= max(low, prime²).
            let mut multiple = if square >= low {
                square
            } else {
                let first = low.div_ceil(prime) * prime;
                if first % 2 == 0 {
                    first + prime
                } else {
                    first
                }
            };
            while multiple <= high {
                composite[((multiple - low) / 2) as usize] = true;
                multiple += 2 * prime;
            }
        }
        count += composite[..len].iter().filter(|&&c| !c).count() as u64;
    }
    between_segments(segments, segments)?;
    Ok(count)
}

/// `count`: the number of primes below `n`.
pub fn count(input: CountInput, ctx: &TaskContext<'_>) -> Result<CountOutput, TaskError> {
    let count = count_primes_below(input.n, |done, total| {
        ctx.check_cancelled()?;
        ctx.progress(done, Some(total));
        Ok(())
    })?;
    Ok(CountOutput { n: input.n, count })
}

/// The plugin, as the host sees it.
pub fn plugin() -> Plugin {
    Plugin::new("primes", env!("CARGO_PKG_VERSION")).task(
        "count",
        "counts the primes below `n` (segmented sieve)",
        count,
    )
}

export_plugin!(plugin);

#[cfg(test)]
mod tests {
    use super::*;

    fn count_below(n: u64) -> u64 {
        count_primes_below(n, |_, _| Ok(())).unwrap()
    }

    fn naive(n: u64) -> u64 {
        (2..n)
            .filter(|&k| (2..).take_while(|d| d * d <= k).all(|d| k % d != 0))
            .count() as u64
    }

    #[test]
    fn small_values_match_trial_division() {
        for n in 0..2000 {
            assert_eq!(count_below(n), naive(n), "n = {n}");
        }
    }

    #[test]
    fn known_values_across_segments() {
        assert_eq!(count_below(1_000_000), 78_498);
        assert_eq!(count_below(10_000_000), 664_579);
        // Segment boundaries: around 3 + 2 * SEGMENT_LEN.
        let boundary = 3 + 2 * SEGMENT_LEN;
        let is_prime = |k: u64| k >= 2 && (2..).take_while(|d| d * d <= k).all(|d| k % d != 0);
        for n in boundary - 6..boundary + 6 {
            let step = count_below(n + 1) - count_below(n);
            assert_eq!(step, u64::from(is_prime(n)), "n = {n}");
        }
    }

    #[test]
    fn cancellation_stops_the_sieve() {
        let mut calls = 0;
        let result = count_primes_below(100_000_000, |_, _| {
            calls += 1;
            if calls == 3 {
                Err(TaskError::cancelled())
            } else {
                Ok(())
            }
        });
        assert_eq!(result.unwrap_err(), TaskError::cancelled());
        assert_eq!(calls, 3);
    }

    #[test]
    fn task_speaks_json() {
        let output = plugin().run_detached("count", br#"{"n": 100}"#).unwrap();
        assert_eq!(output, br#"{"n":100,"count":25}"#);
    }
}
