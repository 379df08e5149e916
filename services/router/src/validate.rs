//! Schema on write: checks every parsed line against the database schema and builds the
//! batches of the lines that pass.
//!
//! ```text
//!  body ─► parse lines ─► for each line: types vs schema ─┬─ conflict ──► LineIssue
//!                                                         ├─ new table/column ─► SchemaChanges
//!                                                         └─ ok ─► BatchBuilder[table, day]
//! ```
//!
//! Runs on a blocking thread (it is the CPU-heavy part of a write). When a line needs a
//! table or column the schema lacks, the result is [`Validated::NeedsSchema`]: the caller
//! creates them in the catalog and runs validation again with the new schema. Known schema
//! costs no catalog round trip.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use arrow::record_batch::RecordBatch;
use ferrite_lineproto::{Lines, ParsedLine, Precision};
use ferrite_model::{ColumnType, DatabaseSchema, NANOS_PER_DAY, TableSchema, day_partition_key};

use crate::builder::{BatchBuilder, field_type};

/// At most this many bad lines are reported in one response.
pub const MAX_REPORTED_ERRORS: usize = 100;

/// One rejected line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineIssue {
    /// 1-based line number.
    pub line_number: usize,
    /// The line as sent (cut to 1 KiB).
    pub original_line: String,
    /// Why, without the line prefix: "column 'usage' is float in table 'cpu', got integer".
    pub message: String,
}

/// Columns (name → type) to create per table, in first-seen order per table.
pub type SchemaChanges = BTreeMap<String, Vec<(String, ColumnType)>>;

/// Rows of one table and partition, ready for the ingester.
#[derive(Debug)]
pub struct TableRows {
    /// Table name.
    pub table: String,
    /// Partition key.
    pub partition_key: String,
    /// The rows.
    pub batch: RecordBatch,
}

/// Why a line was rejected.
#[derive(Debug, Clone, Copy)]
pub enum Reason {
    /// Not valid line protocol.
    Parse,
    /// A field's type differs from its column's.
    Schema,
    /// Older than the database's retention period.
    Retention,
}

/// Rejected lines counted by reason.
#[derive(Debug, Default, Clone, Copy)]
pub struct Rejections {
    /// Lines that do not parse.
    pub parse: usize,
    /// Lines whose types conflict with the schema.
    pub schema: usize,
    /// Lines older than the retention period.
    pub retention: usize,
}

impl Rejections {
    fn count(&mut self, reason: Reason) {
        match reason {
            Reason::Parse => self.parse += 1,
            Reason::Schema => self.schema += 1,
            Reason::Retention => self.retention += 1,
        }
    }
}

/// The outcome of validating a body.
#[derive(Debug)]
pub enum Validated {
    /// These tables/columns must exist before the body can be written. The counts say
    /// which lines would be written, so a request that will be rejected creates no schema.
    NeedsSchema {
        /// Tables and columns to create (only for lines that are otherwise good).
        changes: SchemaChanges,
        /// Lines that pass once the schema exists.
        accepted: usize,
        /// Lines rejected (at most [`MAX_REPORTED_ERRORS`] kept) …
        issues: Vec<LineIssue>,
        /// … out of this many …
        rejected: usize,
        /// … for these reasons.
        by_reason: Rejections,
    },
    /// Everything known: the good lines' rows and the bad lines.
    Ready {
        /// Rows grouped by table and partition.
        rows: Vec<TableRows>,
        /// Lines written.
        accepted: usize,
        /// Lines rejected (at most [`MAX_REPORTED_ERRORS`] kept) …
        issues: Vec<LineIssue>,
        /// … out of this many …
        rejected: usize,
        /// … for these reasons.
        by_reason: Rejections,
    },
}

/// Validate `body` against `schema` (None for a database not created yet).
pub fn validate(
    body: &str,
    precision: Precision,
    default_time: i64,
    schema: Option<&DatabaseSchema>,
) -> Result<Validated, arrow::error::ArrowError> {
    let empty = BTreeMap::new();
    let tables = schema.map_or(&empty, |s| &s.tables);
    let retention = schema.and_then(|s| {
        s.limits
            .retention_cutoff(default_time)
            .map(|cutoff| (cutoff, s.name.as_str(), s.limits.retention_period_ns))
    });
    let mut lines = Lines::new(body).with_precision(precision);
    let mut line = ParsedLine::default();
    let mut builders: HashMap<String, Partitions> = HashMap::new();
    // A custom template's key of the current line; allocated once.
    let mut key = String::new();
    let mut pending: BTreeMap<String, Vec<(String, ColumnType)>> = BTreeMap::new();
    let mut issues = Vec::new();
    let (mut accepted, mut rejected) = (0, 0);
    let mut by_reason = Rejections::default();
    let mut reject = |reason: Reason, issue: LineIssue, issues: &mut Vec<LineIssue>| {
        rejected += 1;
        by_reason.count(reason);
        if issues.len() < MAX_REPORTED_ERRORS {
            issues.push(issue);
        }
    };

    while let Some(result) = lines.next_into(&mut line) {
        if let Err(e) = result {
            let message = e.kind.to_string();
            reject(
                Reason::Parse,
                LineIssue {
                    line_number: e.line_number,
                    original_line: e.original_line,
                    message,
                },
                &mut issues,
            );
            continue;
        }
        if let Some((cutoff, database, period)) = retention
            && line.timestamp.unwrap_or(default_time) < cutoff
        {
            reject(
                Reason::Retention,
                LineIssue {
                    line_number: line.line_number,
                    original_line: original_line(body, line.line_number),
                    message: format!(
                        "point is older than the retention period of database '{database}' \
                         ({}): the oldest time accepted now is {}",
                        ferrite_model::format_duration_ns(period),
                        rfc3339(cutoff)
                    ),
                },
                &mut issues,
            );
            continue;
        }
        let table = tables.get(line.measurement.as_ref());
        match check_line(&line, table, &mut pending) {
            Check::Conflict(message) => {
                reject(
                    Reason::Schema,
                    LineIssue {
                        line_number: line.line_number,
                        original_line: original_line(body, line.line_number),
                        message,
                    },
                    &mut issues,
                );
                continue;
            }
            Check::New => {
                accepted += 1;
                continue;
            }
            Check::Ok => accepted += 1,
        }
        if !pending.is_empty() {
            // Rows are built once, after the schema exists.
            continue;
        }
        let time = line.timestamp.unwrap_or(default_time);
        let partitions = builders.entry(line.measurement.to_string()).or_default();
        let builder = match table.map(|t| &t.partition_template) {
            Some(template) if !template.is_default() => {
                let tags = &line.tags;
                template.key_into(
                    |name| {
                        tags.iter()
                            .find(|(k, _)| k == name)
                            .map(|(_, v)| Cow::Borrowed(v.as_ref()))
                    },
                    time,
                    &mut key,
                );
                if !partitions.by_key.contains_key(key.as_str()) {
                    partitions.by_key.insert(key.clone(), BatchBuilder::new());
                }
                partitions.by_key.get_mut(key.as_str()).expect("inserted")
            }
            // The default template: UTC days, keyed by day number so the key string is
            // made once per day, not per line.
            _ => {
                &mut partitions
                    .by_day
                    .entry(time.div_euclid(NANOS_PER_DAY))
                    .or_insert_with(|| (day_partition_key(time), BatchBuilder::new()))
                    .1
            }
        };
        builder.append(&line, time);
    }
    if !pending.is_empty() {
        return Ok(Validated::NeedsSchema {
            changes: pending,
            accepted,
            issues,
            rejected,
            by_reason,
        });
    }
    let mut rows = Vec::new();
    for (table, partitions) in builders {
        let keyed = partitions.by_day.into_values().chain(partitions.by_key);
        for (partition_key, builder) in keyed {
            rows.push(TableRows {
                table: table.clone(),
                partition_key,
                batch: builder.finish()?,
            });
        }
    }
    Ok(Validated::Ready {
        rows,
        accepted,
        issues,
        rejected,
        by_reason,
    })
}

/// The rows of one table being built, by partition.
#[derive(Default)]
struct Partitions {
    /// Default template: by UTC day number, with the day's key.
    by_day: HashMap<i64, (String, BatchBuilder)>,
    /// Custom template: by key.
    by_key: HashMap<String, BatchBuilder>,
}

/// `ns` since the epoch as RFC 3339 (UTC).
fn rfc3339(ns: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(ns).to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

enum Check {
    Ok,
    /// The line needs schema that does not exist yet (recorded in `pending`).
    New,
    Conflict(String),
}

fn check_line(
    line: &ParsedLine<'_>,
    table: Option<&TableSchema>,
    pending: &mut BTreeMap<String, Vec<(String, ColumnType)>>,
) -> Check {
    let measurement = line.measurement.as_ref();
    let columns = line
        .tags
        .iter()
        .map(|(k, _)| (k.as_ref(), ColumnType::Tag))
        .chain(line.fields.iter().map(|(k, v)| (k.as_ref(), field_type(v))));
    if let Some((name, _)) = line
        .fields
        .iter()
        .find(|(f, _)| line.tags.iter().any(|(t, _)| t == f))
    {
        return Check::Conflict(format!(
            "column '{name}' is both a tag and a field in table '{measurement}'"
        ));
    }
    let mut new = Vec::new();
    for (name, requested) in columns {
        let known = table.and_then(|t| t.column_type(name)).or_else(|| {
            pending
                .get(measurement)
                .and_then(|cols| cols.iter().find(|(n, _)| n == name).map(|(_, t)| *t))
        });
        match known {
            Some(existing) if existing != requested => {
                return Check::Conflict(format!(
                    "column '{name}' is {existing} in table '{measurement}', got {requested}"
                ));
            }
            Some(_) => {}
            None => new.push((name.to_string(), requested)),
        }
    }
    if new.is_empty() && table.is_some() {
        return Check::Ok;
    }
    let cols = pending.entry(measurement.to_string()).or_default();
    if table.is_none() && cols.is_empty() {
        cols.push((ferrite_model::TIME_COLUMN.to_string(), ColumnType::Time));
    }
    cols.extend(new);
    Check::New
}

/// The text of physical line `n` (1-based), cut like parse errors are.
fn original_line(body: &str, n: usize) -> String {
    let line = body.split('\n').nth(n - 1).unwrap_or("");
    let line = line.strip_suffix('\r').unwrap_or(line);
    let mut end = line.len().min(ferrite_lineproto::MAX_ORIGINAL_LINE_BYTES);
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    line[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrite_model::{ColumnId, DatabaseId, TableId};

    fn schema() -> DatabaseSchema {
        let mut columns = BTreeMap::new();
        columns.insert("host".to_string(), (ColumnId(1), ColumnType::Tag));
        columns.insert("usage".to_string(), (ColumnId(2), ColumnType::F64));
        columns.insert("time".to_string(), (ColumnId(3), ColumnType::Time));
        let cpu = TableSchema {
            id: TableId(1),
            name: "cpu".into(),
            columns,
            partition_template: Default::default(),
        };
        DatabaseSchema {
            id: DatabaseId(1),
            name: "db".into(),
            limits: ferrite_model::DatabaseLimits::default(),
            tables: [("cpu".to_string(), cpu)].into(),
        }
    }

    #[test]
    fn known_schema_needs_no_changes_and_splits_days() {
        let day = NANOS_PER_DAY;
        let body = format!("cpu,host=a usage=1 1\ncpu,host=a usage=2 {}\n", day + 5);
        let Validated::Ready {
            rows,
            accepted,
            issues,
            ..
        } = validate(&body, Precision::Nanosecond, 0, Some(&schema())).unwrap()
        else {
            panic!("schema is known");
        };
        assert_eq!(accepted, 2);
        assert!(issues.is_empty());
        let mut keys: Vec<_> = rows.iter().map(|r| r.partition_key.as_str()).collect();
        keys.sort();
        assert_eq!(keys, vec!["1970-01-01", "1970-01-02"]);
    }

    #[test]
    fn a_custom_template_keys_rows_by_its_parts() {
        let mut db = schema();
        let cpu = db.tables.get_mut("cpu").unwrap();
        cpu.partition_template = ferrite_model::PartitionTemplate::new(vec![
            ferrite_model::TemplatePart::TagValue("host".into()),
            ferrite_model::TemplatePart::TimeFormat(ferrite_model::TimeFormat::Month),
        ])
        .unwrap();
        let body = format!(
            "cpu,host=a usage=1 1\ncpu,host=b usage=2 2\ncpu usage=3 3\ncpu,host=a usage=4 {}\n",
            40 * NANOS_PER_DAY
        );
        let Validated::Ready { rows, .. } =
            validate(&body, Precision::Nanosecond, 0, Some(&db)).unwrap()
        else {
            panic!("schema is known");
        };
        let mut keys: Vec<(&str, usize)> = rows
            .iter()
            .map(|r| (r.partition_key.as_str(), r.batch.num_rows()))
            .collect();
        keys.sort();
        assert_eq!(
            keys,
            vec![
                ("!|1970-01", 1),
                ("a|1970-01", 1),
                ("a|1970-02", 1),
                ("b|1970-01", 1)
            ]
        );
    }

    #[test]
    fn type_conflicts_name_line_column_and_both_types() {
        let body = "cpu,host=a usage=1 1\n# comment\ncpu,host=a usage=3i 2\ncpu,usage=x usage=1 3";
        let Validated::Ready {
            accepted,
            issues,
            rejected,
            ..
        } = validate(body, Precision::Nanosecond, 0, Some(&schema())).unwrap()
        else {
            panic!("schema is known");
        };
        assert_eq!((accepted, rejected), (1, 2));
        assert_eq!(issues[0].line_number, 3);
        assert_eq!(
            issues[0].message,
            "column 'usage' is float in table 'cpu', got integer"
        );
        assert_eq!(issues[0].original_line, "cpu,host=a usage=3i 2");
        assert_eq!(
            issues[1].message,
            "column 'usage' is both a tag and a field in table 'cpu'"
        );
    }

    #[test]
    fn new_tables_and_columns_are_requested_once_with_first_seen_types() {
        let body = "mem free=1i 1\nmem free=2.5 2\ncpu,host=a usage=1,idle=2 3";
        let Validated::NeedsSchema { changes, .. } =
            validate(body, Precision::Nanosecond, 0, Some(&schema())).unwrap()
        else {
            panic!("schema is missing");
        };
        assert_eq!(
            changes.get("mem").unwrap(),
            &vec![
                ("time".to_string(), ColumnType::Time),
                ("free".to_string(), ColumnType::I64)
            ]
        );
        assert_eq!(
            changes.get("cpu").unwrap(),
            &vec![("idle".to_string(), ColumnType::F64)]
        );
    }
}
