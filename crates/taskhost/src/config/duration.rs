//! Strict human durations: `"250ms"`, `"30s"`, `"1.5m"`. A space between number and unit is an
//! error, so is a missing unit: a config value means exactly one thing.

use std::time::Duration;

const UNITS: &[(&str, f64)] = &[
    ("ns", 1e-9),
    ("us", 1e-6),
    ("ms", 1e-3),
    ("s", 1.0),
    ("m", 60.0),
    ("h", 3600.0),
];

/// Parses a duration such as `"250ms"` or `"30s"`.
///
/// The error says what was expected and what was found.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let expected =
        "expected a number and a unit with no space between them (ns, us, ms, s, m, h), \
                    such as \"250ms\" or \"30s\"";
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(format!("{expected}, found an empty string"));
    }
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, rest) = trimmed.split_at(split);
    if number.is_empty() {
        return Err(format!("{expected}, found {text:?}"));
    }
    if rest.starts_with(char::is_whitespace) {
        let unit = rest.trim();
        return Err(format!(
            "{expected}, found {text:?} (write \"{number}{unit}\" without the space)"
        ));
    }
    if text != trimmed {
        return Err(format!("{expected}, found {text:?} (remove the spaces)"));
    }
    if rest.is_empty() {
        return Err(format!("{expected}, found {text:?} (the unit is missing)"));
    }
    let Some(&(_, seconds_per_unit)) = UNITS.iter().find(|(unit, _)| *unit == rest) else {
        return Err(format!(
            "{expected}, found unknown unit {rest:?} in {text:?}"
        ));
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{expected}, found {text:?} (not a number)"))?;
    Duration::try_from_secs_f64(value * seconds_per_unit)
        .map_err(|_| format!("{expected}, found {text:?} (out of range)"))
}

/// Formats a duration the way [`parse_duration`] reads it, in the largest exact unit.
pub fn format_duration(duration: Duration) -> String {
    let nanos = duration.as_nanos();
    if nanos == 0 {
        return "0s".to_owned();
    }
    for (unit, per) in [
        ("h", 3_600_000_000_000u128),
        ("m", 60_000_000_000),
        ("s", 1_000_000_000),
        ("ms", 1_000_000),
        ("us", 1_000),
    ] {
        if nanos.is_multiple_of(per) {
            return format!("{}{unit}", nanos / per);
        }
    }
    format!("{nanos}ns")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_unit() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("10us"), Ok(Duration::from_micros(10)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn a_space_is_an_error_that_says_so() {
        let error = parse_duration("30 s").unwrap_err();
        assert!(error.contains("found \"30 s\""), "{error}");
        assert!(error.contains("write \"30s\" without the space"), "{error}");
    }

    #[test]
    fn missing_or_unknown_units_are_errors() {
        assert!(parse_duration("30")
            .unwrap_err()
            .contains("unit is missing"));
        assert!(parse_duration("30sec")
            .unwrap_err()
            .contains("unknown unit \"sec\""));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration(" 30s").is_err());
    }

    #[test]
    fn formats_in_the_largest_exact_unit() {
        assert_eq!(format_duration(Duration::from_secs(30)), "30s");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(format_duration(Duration::from_secs(120)), "2m");
        assert_eq!(format_duration(Duration::ZERO), "0s");
        for text in ["250ms", "30s", "5m", "1h", "7us"] {
            assert_eq!(format_duration(parse_duration(text).unwrap()), text);
        }
    }
}
