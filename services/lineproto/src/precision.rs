//! Timestamp precision: the spellings clients send and the conversion to nanoseconds.

use std::{fmt, str::FromStr};

/// The unit of the timestamps in a write request.
///
/// Parsed from every spelling the three write APIs accept (see [`Precision::parse`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Precision {
    /// Nanoseconds (the default of `/write` and `/api/v2/write`).
    #[default]
    Nanosecond,
    /// Microseconds.
    Microsecond,
    /// Milliseconds.
    Millisecond,
    /// Seconds.
    Second,
    /// Guess the unit of each timestamp from its magnitude (InfluxDB 3 `precision=auto`,
    /// the default of `/api/v3/write_lp`); see [`Precision::guess`].
    Auto,
}

/// A precision string that is none of the accepted spellings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid precision '{0}': expected one of ns, us, ms, s (or n, u, µs, nanosecond, \
     microsecond, millisecond, second, auto)"
)]
pub struct InvalidPrecision(pub String);

/// A timestamp that does not fit in `i64` nanoseconds once scaled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("timestamp {value} out of range for precision {precision}")]
pub struct TimestampOutOfRange {
    /// The timestamp as written.
    pub value: i64,
    /// The precision it was scaled by.
    pub precision: Precision,
}

impl Precision {
    /// Parses a precision as sent by v1 (`n`, `u`, `ms`, `s`), v2 (`ns`, `us`, `ms`, `s`) and
    /// v3 (`nanosecond`, `microsecond`, `millisecond`, `second`, `auto`) clients. The micro
    /// sign (`µ`, `µs`, and Greek `μ`) is accepted for microseconds. Spellings are
    /// case-sensitive, as in InfluxDB. Minutes and hours (`m`, `h` of InfluxDB 1.x) are not
    /// supported, as in InfluxDB 3.
    pub fn parse(s: &str) -> Result<Self, InvalidPrecision> {
        Ok(match s {
            "n" | "ns" | "nanosecond" => Self::Nanosecond,
            "u" | "us" | "µ" | "µs" | "μ" | "μs" | "microsecond" => Self::Microsecond,
            "ms" | "millisecond" => Self::Millisecond,
            "s" | "second" => Self::Second,
            "auto" => Self::Auto,
            other => return Err(InvalidPrecision(other.to_owned())),
        })
    }

    /// The short name (`ns`, `us`, `ms`, `s`, `auto`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Nanosecond => "ns",
            Self::Microsecond => "us",
            Self::Millisecond => "ms",
            Self::Second => "s",
            Self::Auto => "auto",
        }
    }

    /// Nanoseconds per unit; `None` for [`Precision::Auto`], which depends on the value.
    pub fn nanos_per_unit(self) -> Option<i64> {
        match self {
            Self::Nanosecond => Some(1),
            Self::Microsecond => Some(1_000),
            Self::Millisecond => Some(1_000_000),
            Self::Second => Some(1_000_000_000),
            Self::Auto => None,
        }
    }

    /// The unit InfluxDB 3 Core assumes for `ts` under `precision=auto`
    /// (`influxdb3_write::guess_precision`): with `v = |ts| / 1_000_000_000`,
    /// `v < 5` → seconds, `v < 5_000` → milliseconds, `v < 5_000_000` → microseconds, else
    /// nanoseconds. So seconds up to 4_999_999_999 (year 2128), milliseconds up to year 2128,
    /// and so on; nanosecond timestamps before 1970-02-28 are taken for microseconds.
    pub fn guess(ts: i64) -> Self {
        let v = ts.unsigned_abs() / 1_000_000_000;
        if v < 5 {
            Self::Second
        } else if v < 5_000 {
            Self::Millisecond
        } else if v < 5_000_000 {
            Self::Microsecond
        } else {
            Self::Nanosecond
        }
    }

    /// Converts `ts` in this precision to nanoseconds, failing on `i64` overflow.
    pub fn to_nanos(self, ts: i64) -> Result<i64, TimestampOutOfRange> {
        let unit = match self {
            Self::Auto => Self::guess(ts),
            other => other,
        };
        let factor = unit.nanos_per_unit().unwrap_or(1);
        ts.checked_mul(factor).ok_or(TimestampOutOfRange {
            value: ts,
            precision: self,
        })
    }
}

impl FromStr for Precision {
    type Err = InvalidPrecision;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
