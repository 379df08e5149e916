//! Durations as people type them (`30d`, `12h`, `90m`, `1w`, `1h30m`, `500ms`) and as the
//! API wants retention periods (nanoseconds, 0 = infinite).

use std::time::Duration;

/// A duration that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Nothing given.
    #[error("empty duration: expected a number and a unit, e.g. 30d, 12h or 90m")]
    Empty,
    /// A number without a unit (other than 0).
    #[error("duration '{0}' lacks a unit: expected e.g. 30d, 12h, 90m, 45s")]
    MissingUnit(String),
    /// A unit that is not one of ns, us, ms, s, m, h, d, w.
    #[error("unknown unit '{unit}' in duration '{text}': use ns, us, ms, s, m, h, d or w")]
    UnknownUnit {
        /// The unit as typed.
        unit: String,
        /// The whole duration.
        text: String,
    },
    /// Not a number where one was expected.
    #[error("invalid duration '{0}': expected a number and a unit, e.g. 30d, 12h, 1h30m")]
    Invalid(String),
    /// Longer than 584 years.
    #[error("duration '{0}' is too long")]
    Overflow(String),
}

const UNITS: &[(&str, u64)] = &[
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
    ("d", 86_400_000_000_000),
    ("w", 604_800_000_000_000),
];

/// Parse `30d`, `12h`, `1h30m`, `500ms`; `0` alone is zero.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    parse_nanos(text).map(Duration::from_nanos)
}

/// A retention period in nanoseconds: a duration, or `0` / `infinite` / `none` for ever
/// (which the API spells 0).
pub fn parse_retention(text: &str) -> Result<u64, DurationError> {
    match text.trim().to_ascii_lowercase().as_str() {
        "infinite" | "inf" | "none" | "forever" => Ok(0),
        _ => parse_nanos(text),
    }
}

fn parse_nanos(text: &str) -> Result<u64, DurationError> {
    let s = text.trim();
    if s.is_empty() {
        return Err(DurationError::Empty);
    }
    if s.bytes().all(|b| b == b'0') {
        return Ok(0);
    }
    let mut total: u64 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(DurationError::Invalid(s.to_string()));
        }
        let (number, after) = rest.split_at(digits);
        let unit_len = after
            .char_indices()
            .find(|(_, c)| c.is_ascii_digit())
            .map_or(after.len(), |(i, _)| i);
        let (unit, next) = after.split_at(unit_len);
        if unit.is_empty() {
            return Err(DurationError::MissingUnit(s.to_string()));
        }
        let per_unit = UNITS
            .iter()
            .find(|(name, _)| *name == unit)
            .map(|(_, nanos)| *nanos)
            .ok_or_else(|| DurationError::UnknownUnit {
                unit: unit.to_string(),
                text: s.to_string(),
            })?;
        let value: u64 = number
            .parse()
            .map_err(|_| DurationError::Overflow(s.to_string()))?;
        total = value
            .checked_mul(per_unit)
            .and_then(|n| total.checked_add(n))
            .ok_or_else(|| DurationError::Overflow(s.to_string()))?;
        rest = next;
    }
    Ok(total)
}

/// A retention period for people: `infinite`, `30d`, `1d12h`, `90s`.
pub fn format_retention(nanos: i64) -> String {
    if nanos <= 0 {
        return "infinite".to_string();
    }
    format_nanos(nanos.unsigned_abs())
}

/// Whole units from weeks down to nanoseconds, largest first: `1d12h`, `500ms`.
pub fn format_nanos(nanos: u64) -> String {
    if nanos == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    let mut rest = nanos;
    // Weeks are left out: "30d" reads better than "4w2d".
    for (name, per_unit) in UNITS.iter().rev().filter(|(n, _)| *n != "w" && *n != "µs") {
        if rest >= *per_unit {
            out.push_str(&format!("{}{name}", rest / per_unit));
            rest %= per_unit;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_combinations_parse() {
        let secs = |s: &str| parse_duration(s).unwrap().as_secs();
        assert_eq!(secs("30s"), 30);
        assert_eq!(secs("90m"), 5400);
        assert_eq!(secs("12h"), 43_200);
        assert_eq!(secs("30d"), 2_592_000);
        assert_eq!(secs("1w"), 604_800);
        assert_eq!(secs("1h30m"), 5400);
        assert_eq!(secs(" 1d12h "), 129_600);
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
    }

    #[test]
    fn retention_zero_and_infinite_mean_forever() {
        assert_eq!(parse_retention("0"), Ok(0));
        assert_eq!(parse_retention("infinite"), Ok(0));
        assert_eq!(parse_retention("INF"), Ok(0));
        assert_eq!(parse_retention("30d"), Ok(30 * 86_400 * 1_000_000_000));
    }

    #[test]
    fn bad_durations_say_what_is_wrong() {
        assert_eq!(parse_duration(""), Err(DurationError::Empty));
        assert_eq!(
            parse_duration("30"),
            Err(DurationError::MissingUnit("30".into()))
        );
        assert!(matches!(
            parse_duration("3y"),
            Err(DurationError::UnknownUnit { unit, .. }) if unit == "y"
        ));
        assert_eq!(
            parse_duration("d3"),
            Err(DurationError::Invalid("d3".into()))
        );
        assert!(matches!(
            parse_duration("99999999999w"),
            Err(DurationError::Overflow(_))
        ));
        assert!(
            DurationError::MissingUnit("30".into())
                .to_string()
                .contains("e.g. 30d")
        );
    }

    #[test]
    fn retention_formats_in_whole_units() {
        assert_eq!(format_retention(0), "infinite");
        assert_eq!(format_retention(30 * 86_400 * 1_000_000_000), "30d");
        assert_eq!(format_retention(129_600 * 1_000_000_000), "1d12h");
        assert_eq!(format_retention(5_400 * 1_000_000_000), "1h30m");
        assert_eq!(format_nanos(1_500_000_000), "1s500ms");
    }
}
