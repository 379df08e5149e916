//! Partition templates: how a table's rows are split into partitions, as in InfluxDB 3
//! Clustered (`--template-tag`, `--template-tag-bucket`, `--template-timeformat`).
//!
//! ```text
//!  template  [tag region] [bucket host/8] [time %Y-%m]
//!  row       cpu,host=a,region=eu … 2024-03-05T10:00:00Z
//!  key       eu|3|2024-03
//! ```
//!
//! Invariants:
//! - a key is the template's parts joined by `|`, each part's value percent-encoded so a
//!   value never contains `|`; a row without the tag gets `!` (an encoded value never is
//!   exactly `!`), a value longer than 200 bytes is cut and marked with a trailing `#`;
//! - every template has exactly one time part; without one, `%Y-%m-%d` is appended. The
//!   default template is that part alone, so default keys are UTC days (`2024-03-05`);
//! - a bucket is FNV-1a (32 bit) of the tag value's bytes modulo the bucket count: the same
//!   value lands in the same bucket in every process and version;
//! - a template is fixed when its table is created (a table takes its database's template
//!   unless it has its own), so one table's keys never change meaning.

use std::borrow::Cow;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// Most parts a template may have.
pub const MAX_PARTS: usize = 8;
/// Most buckets a bucket part may have.
pub const MAX_BUCKETS: u32 = 1000;
/// Longest tag value kept whole in a key, in bytes.
const MAX_VALUE_BYTES: usize = 200;
/// The key value of a row that lacks the tag.
pub const NULL_VALUE: &str = "!";

/// How a partition key formats a row's time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TimeFormat {
    /// `%Y-%m-%d`: one partition per UTC day (the default).
    #[serde(rename = "%Y-%m-%d")]
    Day,
    /// `%Y-%W`: per week of the year, weeks starting on Monday (week 00 holds the days
    /// before the year's first Monday).
    #[serde(rename = "%Y-%W")]
    Week,
    /// `%Y-%m`: per month.
    #[serde(rename = "%Y-%m")]
    Month,
    /// `%Y`: per year.
    #[serde(rename = "%Y")]
    Year,
}

impl TimeFormat {
    /// Every format, as written.
    pub const ALL: [(&'static str, TimeFormat); 4] = [
        ("%Y-%m-%d", TimeFormat::Day),
        ("%Y-%W", TimeFormat::Week),
        ("%Y-%m", TimeFormat::Month),
        ("%Y", TimeFormat::Year),
    ];

    /// The strftime pattern.
    pub fn pattern(self) -> &'static str {
        match self {
            Self::Day => "%Y-%m-%d",
            Self::Week => "%Y-%W",
            Self::Month => "%Y-%m",
            Self::Year => "%Y",
        }
    }

    /// The format written as `s`.
    pub fn parse(s: &str) -> Result<Self, TemplateError> {
        Self::ALL
            .iter()
            .find(|(p, _)| *p == s)
            .map(|(_, f)| *f)
            .ok_or_else(|| {
                TemplateError(format!(
                    "time format '{s}' is not supported: use one of %Y-%m-%d, %Y-%W, %Y-%m, %Y"
                ))
            })
    }

    fn format(self, time_ns: i64, out: &mut String) {
        let t = chrono::DateTime::from_timestamp_nanos(time_ns);
        let _ = write!(out, "{}", t.format(self.pattern()));
    }

    /// The `[start, end)` nanoseconds a formatted value covers.
    pub fn range(self, value: &str) -> Option<(i64, i64)> {
        use chrono::{Datelike, NaiveDate};
        let ns = |d: NaiveDate| d.and_hms_opt(0, 0, 0)?.and_utc().timestamp_nanos_opt();
        let (start, end) = match self {
            Self::Day => {
                let d = NaiveDate::parse_from_str(value, "%Y-%m-%d").ok()?;
                (d, d.succ_opt()?)
            }
            Self::Month => {
                let d = NaiveDate::parse_from_str(&format!("{value}-01"), "%Y-%m-%d").ok()?;
                let next = if d.month() == 12 {
                    NaiveDate::from_ymd_opt(d.year() + 1, 1, 1)?
                } else {
                    NaiveDate::from_ymd_opt(d.year(), d.month() + 1, 1)?
                };
                (d, next)
            }
            Self::Year => {
                let y: i32 = value.parse().ok()?;
                (
                    NaiveDate::from_ymd_opt(y, 1, 1)?,
                    NaiveDate::from_ymd_opt(y + 1, 1, 1)?,
                )
            }
            Self::Week => {
                let (y, w) = value.split_once('-')?;
                let (y, w): (i32, i64) = (y.parse().ok()?, w.parse().ok()?);
                let jan1 = NaiveDate::from_ymd_opt(y, 1, 1)?;
                let next_year = NaiveDate::from_ymd_opt(y + 1, 1, 1)?;
                // Days from Jan 1 to the first Monday (week 01 starts there).
                let to_monday = (7 - i64::from(jan1.weekday().num_days_from_monday())) % 7;
                let first_monday = jan1 + chrono::Duration::days(to_monday);
                let (start, end) = if w == 0 {
                    (jan1, first_monday)
                } else {
                    let s = first_monday + chrono::Duration::days(7 * (w - 1));
                    (s, s + chrono::Duration::days(7))
                };
                (start.max(jan1), end.min(next_year))
            }
        };
        Some((ns(start)?, ns(end)?))
    }
}

/// One part of a partition key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TemplatePart {
    /// The value of a tag.
    TagValue(String),
    /// The bucket a tag's value hashes into.
    TagBucket {
        /// The tag.
        tag: String,
        /// How many buckets.
        buckets: u32,
    },
    /// The row's time, formatted.
    TimeFormat(TimeFormat),
}

/// How a table's rows are partitioned.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PartitionTemplate {
    parts: Vec<TemplatePart>,
}

/// Why a template is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid partition template: {0}")]
pub struct TemplateError(pub String);

impl Default for PartitionTemplate {
    fn default() -> Self {
        Self {
            parts: vec![TemplatePart::TimeFormat(TimeFormat::Day)],
        }
    }
}

impl PartitionTemplate {
    /// A template of `parts`, checked: at most [`MAX_PARTS`] parts, at most one time part
    /// (`%Y-%m-%d` is appended when there is none), each tag at most once and never `time`,
    /// bucket counts from 1 to [`MAX_BUCKETS`].
    pub fn new(mut parts: Vec<TemplatePart>) -> Result<Self, TemplateError> {
        let times = parts
            .iter()
            .filter(|p| matches!(p, TemplatePart::TimeFormat(_)))
            .count();
        if times > 1 {
            return Err(TemplateError(
                "it may have one time format, not several".into(),
            ));
        }
        if times == 0 {
            parts.push(TemplatePart::TimeFormat(TimeFormat::Day));
        }
        if parts.len() > MAX_PARTS {
            return Err(TemplateError(format!(
                "it has {} parts; at most {MAX_PARTS} (tags, tag buckets and the time format)",
                parts.len()
            )));
        }
        let mut seen = std::collections::BTreeSet::new();
        for p in &parts {
            let tag = match p {
                TemplatePart::TagValue(t) => t,
                TemplatePart::TagBucket { tag, buckets } => {
                    if !(1..=MAX_BUCKETS).contains(buckets) {
                        return Err(TemplateError(format!(
                            "tag bucket '{tag}' has {buckets} buckets; use 1 to {MAX_BUCKETS}"
                        )));
                    }
                    tag
                }
                TemplatePart::TimeFormat(_) => continue,
            };
            if tag.is_empty() || tag == crate::TIME_COLUMN {
                return Err(TemplateError(format!(
                    "'{tag}' cannot be a template tag: name a tag of the table"
                )));
            }
            if !seen.insert(tag.as_str()) {
                return Err(TemplateError(format!("tag '{tag}' appears twice")));
            }
        }
        Ok(Self { parts })
    }

    /// Read the stored (JSON) form; empty means the default.
    pub fn from_json(text: &str) -> Result<Self, TemplateError> {
        if text.is_empty() {
            return Ok(Self::default());
        }
        let parts: Vec<TemplatePart> = serde_json::from_str(text)
            .map_err(|e| TemplateError(format!("cannot read '{text}': {e}")))?;
        Self::new(parts)
    }

    /// The stored (JSON) form.
    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.parts).expect("a template serializes")
    }

    /// The parts, in key order.
    pub fn parts(&self) -> &[TemplatePart] {
        &self.parts
    }

    /// True for the default template (UTC days only).
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }

    /// The partition key of a row with `tags` at `time_ns`, written into `out` (cleared
    /// first).
    pub fn key_into<'a>(
        &self,
        tags: impl Fn(&str) -> Option<Cow<'a, str>>,
        time_ns: i64,
        out: &mut String,
    ) {
        out.clear();
        for (i, part) in self.parts.iter().enumerate() {
            if i > 0 {
                out.push('|');
            }
            match part {
                TemplatePart::TagValue(tag) => match tags(tag) {
                    Some(v) => encode_value(&v, out),
                    None => out.push_str(NULL_VALUE),
                },
                TemplatePart::TagBucket { tag, buckets } => match tags(tag) {
                    Some(v) => {
                        let _ = write!(out, "{}", bucket(&v, *buckets));
                    }
                    None => out.push_str(NULL_VALUE),
                },
                TemplatePart::TimeFormat(f) => f.format(time_ns, out),
            }
        }
    }

    /// The partition key of a row, as a new string.
    pub fn key<'a>(&self, tags: impl Fn(&str) -> Option<Cow<'a, str>>, time_ns: i64) -> String {
        let mut out = String::new();
        self.key_into(tags, time_ns, &mut out);
        out
    }

    /// Could a partition with `key` hold a row whose tag `tag` equals one of `values`?
    /// `true` when the template has no part for the tag or the key cannot be read.
    pub fn may_hold(&self, key: &str, tag: &str, values: &[&str]) -> bool {
        let fields: Vec<&str> = key.split('|').collect();
        if fields.len() != self.parts.len() {
            return true;
        }
        for (part, field) in self.parts.iter().zip(fields) {
            match part {
                TemplatePart::TagValue(t) if t == tag => {
                    if let Some(kept) = field.strip_suffix('#') {
                        // Cut: compare the kept prefix only.
                        return values.iter().any(|v| encoded(v).starts_with(kept));
                    }
                    return values.iter().any(|v| encoded(v) == field);
                }
                TemplatePart::TagBucket { tag: t, buckets } if t == tag => {
                    return values
                        .iter()
                        .any(|v| bucket(v, *buckets).to_string() == field);
                }
                _ => {}
            }
        }
        true
    }

    /// The `[start, end)` nanoseconds a key's rows fall in, from its time part.
    pub fn time_range(&self, key: &str) -> Option<(i64, i64)> {
        let fields: Vec<&str> = key.split('|').collect();
        if fields.len() != self.parts.len() {
            return None;
        }
        self.parts
            .iter()
            .zip(fields)
            .find_map(|(part, field)| match part {
                TemplatePart::TimeFormat(f) => f.range(field),
                _ => None,
            })
    }

    /// Human form: `tag region | bucket host/8 | time %Y-%m`.
    pub fn describe(&self) -> String {
        self.parts
            .iter()
            .map(|p| match p {
                TemplatePart::TagValue(t) => format!("tag {t}"),
                TemplatePart::TagBucket { tag, buckets } => format!("bucket {tag}/{buckets}"),
                TemplatePart::TimeFormat(f) => format!("time {}", f.pattern()),
            })
            .collect::<Vec<_>>()
            .join(" | ")
    }
}

/// FNV-1a, 32 bit: small, fast on short strings, and fixed by its definition, so bucket
/// numbers never change between versions.
fn fnv1a(bytes: &[u8]) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for b in bytes {
        hash ^= u32::from(*b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

/// The bucket of a tag value.
pub fn bucket(value: &str, buckets: u32) -> u32 {
    fnv1a(value.as_bytes()) % buckets.max(1)
}

fn encoded(value: &str) -> String {
    let mut out = String::new();
    encode_value(value, &mut out);
    out
}

/// `value` with `%`, `|` and `!` percent-encoded, cut to [`MAX_VALUE_BYTES`] (on a
/// character boundary) and marked with `#` when longer. `#` is encoded too, so a mark is
/// never confused with a value's own `#`.
fn encode_value(value: &str, out: &mut String) {
    let start = out.len();
    for c in value.chars() {
        if out.len() - start >= MAX_VALUE_BYTES {
            out.push('#');
            return;
        }
        match c {
            '%' => out.push_str("%25"),
            '|' => out.push_str("%7C"),
            '!' => out.push_str("%21"),
            '#' => out.push_str("%23"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<Cow<'a, str>> {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| Cow::Borrowed(*v))
        }
    }

    /// 2024-03-05T10:00:00Z.
    const T: i64 = 1_709_632_800_000_000_000;

    #[test]
    fn the_default_template_keys_rows_by_utc_day() {
        let t = PartitionTemplate::default();
        assert!(t.is_default());
        assert_eq!(t.key(tags(&[("host", "a")]), T), "2024-03-05");
        assert_eq!(t.key(tags(&[]), 0), crate::day_partition_key(0));
        assert_eq!(t.to_json(), r#"[{"timeFormat":"%Y-%m-%d"}]"#);
        assert_eq!(PartitionTemplate::from_json("").unwrap(), t);
    }

    #[test]
    fn keys_join_tag_values_buckets_and_time() {
        let t = PartitionTemplate::new(vec![
            TemplatePart::TagValue("region".into()),
            TemplatePart::TagBucket {
                tag: "host".into(),
                buckets: 8,
            },
            TemplatePart::TimeFormat(TimeFormat::Month),
        ])
        .unwrap();
        let key = t.key(tags(&[("host", "a"), ("region", "eu|west")]), T);
        assert_eq!(key, format!("eu%7Cwest|{}|2024-03", bucket("a", 8)));
        assert_eq!(t.key(tags(&[]), T), "!|!|2024-03", "missing tags");
        assert_eq!(t.key(tags(&[("region", "!")]), T), "%21|!|2024-03");
        let json = t.to_json();
        assert_eq!(
            json,
            r#"[{"tagValue":"region"},{"tagBucket":{"tag":"host","buckets":8}},{"timeFormat":"%Y-%m"}]"#
        );
        assert_eq!(PartitionTemplate::from_json(&json).unwrap(), t);
        assert_eq!(t.describe(), "tag region | bucket host/8 | time %Y-%m");
    }

    #[test]
    fn a_tag_predicate_rules_out_other_partitions() {
        let t = PartitionTemplate::new(vec![
            TemplatePart::TagValue("region".into()),
            TemplatePart::TagBucket {
                tag: "host".into(),
                buckets: 4,
            },
        ])
        .unwrap();
        let key = t.key(tags(&[("host", "a"), ("region", "eu")]), T);
        assert!(t.may_hold(&key, "region", &["eu"]));
        assert!(t.may_hold(&key, "region", &["us", "eu"]));
        assert!(!t.may_hold(&key, "region", &["us"]));
        assert!(t.may_hold(&key, "host", &["a"]));
        let other = (0..100)
            .map(|i| format!("h{i}"))
            .find(|h| bucket(h, 4) != bucket("a", 4))
            .unwrap();
        assert!(!t.may_hold(&key, "host", &[other.as_str()]));
        assert!(t.may_hold(&key, "dc", &["x"]), "no part for the tag");
        assert_eq!(t.time_range(&key), TimeFormat::Day.range("2024-03-05"));
    }

    #[test]
    fn long_values_are_cut_and_still_match_their_prefix() {
        let t = PartitionTemplate::new(vec![TemplatePart::TagValue("k".into())]).unwrap();
        let long = "x".repeat(300);
        let key = t.key(tags(&[("k", long.as_str())]), T);
        assert_eq!(key.split('|').next().unwrap().len(), MAX_VALUE_BYTES + 1);
        assert!(t.may_hold(&key, "k", &[long.as_str()]));
        assert!(!t.may_hold(&key, "k", &["y"]));
    }

    #[test]
    fn time_formats_cover_their_ranges() {
        for (pattern, f) in TimeFormat::ALL {
            assert_eq!(TimeFormat::parse(pattern).unwrap(), f);
            let mut key = String::new();
            f.format(T, &mut key);
            let (start, end) = f.range(&key).unwrap_or_else(|| panic!("{pattern}: {key}"));
            assert!(start <= T && T < end, "{pattern}: {key}");
            for edge in [start, end - 1] {
                let mut k = String::new();
                f.format(edge, &mut k);
                assert_eq!(k, key, "{pattern}: the range's edges are in it");
            }
            let mut after = String::new();
            f.format(end, &mut after);
            assert_ne!(after, key, "{pattern}: the end is not");
        }
        // Week 00: the days before the first Monday (2023-01-01 is a Sunday: one day).
        assert_eq!(
            TimeFormat::Week.range("2023-00").map(|(s, e)| e - s),
            Some(crate::NANOS_PER_DAY)
        );
        assert!(TimeFormat::parse("%d").is_err());
    }

    #[test]
    fn bad_templates_are_refused_with_the_reason() {
        let err = |parts| PartitionTemplate::new(parts).unwrap_err().to_string();
        assert!(
            err(vec![
                TemplatePart::TimeFormat(TimeFormat::Day),
                TemplatePart::TimeFormat(TimeFormat::Year)
            ])
            .contains("one time format")
        );
        assert!(
            err(vec![
                TemplatePart::TagValue("a".into()),
                TemplatePart::TagValue("a".into())
            ])
            .contains("appears twice")
        );
        assert!(
            err(vec![TemplatePart::TagBucket {
                tag: "a".into(),
                buckets: 0
            }])
            .contains("1 to 1000")
        );
        assert!(err(vec![TemplatePart::TagValue("time".into())]).contains("'time'"));
        assert!(
            err((0..8)
                .map(|i| TemplatePart::TagValue(format!("t{i}")))
                .collect())
            .contains("at most 8")
        );
        assert!(PartitionTemplate::from_json("[{\"nope\":1}]").is_err());
    }
}
