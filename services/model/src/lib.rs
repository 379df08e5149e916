//! The data model every ferrite service shares: catalog ids, column types, the daily
//! partition rule and the Arrow conventions of the external wire.
//!
//! ```text
//!  database ──► table (measurement) ──► columns: tags (Utf8) · fields (i64 u64 f64 bool utf8) · time
//!                    └──► partitions (one per UTC day, key "%Y-%m-%d") ──► parquet files
//! ```
//!
//! Invariants kept here:
//! - a column's type never changes and a name is never both a tag and a field;
//! - every Arrow schema that leaves a service carries tags as plain `Utf8` and `time` as
//!   `Timestamp(Nanosecond)`, with the IOx column-type metadata clients read;
//! - a partition key is a pure function of the row's time, so any service computes it.

pub mod cache;
pub mod dedup;
pub mod parquet_format;
pub mod partition;
pub mod sort_key;

pub use partition::{PartitionTemplate, TemplateError, TemplatePart, TimeFormat};

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// Name of the timestamp column of every table.
pub const TIME_COLUMN: &str = "time";

/// Field metadata key IOx and its clients use for a column's semantic type.
pub const COLUMN_TYPE_METADATA_KEY: &str = "iox::column::type";

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
        pub struct $name(pub i64);

        impl $name {
            /// The raw catalog id.
            pub fn get(self) -> i64 {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

id_type!(
    /// Catalog id of a database (namespace).
    DatabaseId
);
id_type!(
    /// Catalog id of a table (measurement).
    TableId
);
id_type!(
    /// Catalog id of a column.
    ColumnId
);
id_type!(
    /// Catalog id of a partition.
    PartitionId
);
id_type!(
    /// Catalog id of a parquet file.
    ParquetFileId
);

/// The semantic type of a column. The numeric codes are stored in the catalog and never change.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum ColumnType {
    /// Signed 64-bit integer field (`1i`).
    I64,
    /// Unsigned 64-bit integer field (`1u`).
    U64,
    /// Float field (`1.0`).
    F64,
    /// Boolean field (`t`, `true`, ...).
    Bool,
    /// String field (`"x"`).
    String,
    /// The `time` column.
    Time,
    /// Tag: an indexed string in the primary key.
    Tag,
}

impl ColumnType {
    /// All types, in catalog-code order.
    pub const ALL: [Self; 7] = [
        Self::I64,
        Self::U64,
        Self::F64,
        Self::Bool,
        Self::String,
        Self::Time,
        Self::Tag,
    ];

    /// Catalog code (the IOx numbering: I64=1 … Tag=7).
    pub fn code(self) -> i16 {
        match self {
            Self::I64 => 1,
            Self::U64 => 2,
            Self::F64 => 3,
            Self::Bool => 4,
            Self::String => 5,
            Self::Time => 6,
            Self::Tag => 7,
        }
    }

    /// Inverse of [`Self::code`].
    pub fn from_code(code: i16) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.code() == code)
    }

    /// The name used in error messages ("column 'usage' is float …").
    pub fn name(self) -> &'static str {
        match self {
            Self::I64 => "integer",
            Self::U64 => "unsigned integer",
            Self::F64 => "float",
            Self::Bool => "boolean",
            Self::String => "string",
            Self::Time => "timestamp",
            Self::Tag => "tag",
        }
    }

    /// True for the five field types.
    pub fn is_field(self) -> bool {
        !matches!(self, Self::Time | Self::Tag)
    }

    /// Arrow type on every external wire and in parquet files.
    pub fn arrow_type(self) -> DataType {
        match self {
            Self::I64 => DataType::Int64,
            Self::U64 => DataType::UInt64,
            Self::F64 => DataType::Float64,
            Self::Bool => DataType::Boolean,
            Self::String | Self::Tag => DataType::Utf8,
            Self::Time => DataType::Timestamp(TimeUnit::Nanosecond, None),
        }
    }

    /// The IOx `iox::column::type` metadata value.
    pub fn iox_metadata(self) -> &'static str {
        match self {
            Self::I64 => "iox::column_type::field::integer",
            Self::U64 => "iox::column_type::field::uinteger",
            Self::F64 => "iox::column_type::field::float",
            Self::Bool => "iox::column_type::field::boolean",
            Self::String => "iox::column_type::field::string",
            Self::Time => "iox::column_type::timestamp",
            Self::Tag => "iox::column_type::tag",
        }
    }

    /// Inverse of [`Self::iox_metadata`].
    pub fn from_iox_metadata(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.iox_metadata() == s)
    }

    /// The arrow field for a column of this type. `time` is the only non-nullable column.
    pub fn arrow_field(self, name: &str) -> Field {
        Field::new(name, self.arrow_type(), self != Self::Time).with_metadata(
            [(
                COLUMN_TYPE_METADATA_KEY.to_string(),
                self.iox_metadata().to_string(),
            )]
            .into(),
        )
    }
}

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The column type recorded in an arrow field's metadata, if any.
pub fn column_type_of(field: &Field) -> Option<ColumnType> {
    field
        .metadata()
        .get(COLUMN_TYPE_METADATA_KEY)
        .and_then(|v| ColumnType::from_iox_metadata(v))
}

/// A table's columns by name, as the catalog knows them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableSchema {
    /// Table id.
    pub id: TableId,
    /// Table (measurement) name.
    pub name: String,
    /// Columns by name.
    pub columns: BTreeMap<String, (ColumnId, ColumnType)>,
    /// How its rows are split into partitions; fixed at creation.
    pub partition_template: PartitionTemplate,
}

impl TableSchema {
    /// Arrow schema of the whole table: columns sorted by name.
    pub fn arrow_schema(&self) -> SchemaRef {
        Arc::new(Schema::new(
            self.columns
                .iter()
                .map(|(name, (_, t))| t.arrow_field(name))
                .collect::<Vec<_>>(),
        ))
    }

    /// Tag column names in lexicographic order: with `time`, the primary key.
    pub fn tag_columns(&self) -> Vec<&str> {
        self.columns
            .iter()
            .filter(|(_, (_, t))| *t == ColumnType::Tag)
            .map(|(n, _)| n.as_str())
            .collect()
    }

    /// Type of a column, if the table has it.
    pub fn column_type(&self, name: &str) -> Option<ColumnType> {
        self.columns.get(name).map(|(_, t)| *t)
    }
}

/// A database's retention period and service protection limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DatabaseLimits {
    /// Rows older than now minus this are refused on write and never returned; 0: kept
    /// forever.
    pub retention_period_ns: i64,
    /// Most tables the database may have.
    pub max_tables: i32,
    /// Most columns (`time` and tags included) a table may have.
    pub max_columns_per_table: i32,
}

impl Default for DatabaseLimits {
    /// Forever, 500 tables, 250 columns per table (InfluxDB Clustered's defaults).
    fn default() -> Self {
        Self {
            retention_period_ns: 0,
            max_tables: 500,
            max_columns_per_table: 250,
        }
    }
}

impl DatabaseLimits {
    /// The oldest time (ns) a row may have at `now_ns`; `None` without a retention period.
    pub fn retention_cutoff(&self, now_ns: i64) -> Option<i64> {
        (self.retention_period_ns > 0).then(|| now_ns.saturating_sub(self.retention_period_ns))
    }
}

/// A duration in ns as people write it: `30d`, `12h`, `90m`, `45s`, or `1500ms`; `0` is
/// `infinite` (a retention period of 0 keeps data forever).
pub fn format_duration_ns(ns: i64) -> String {
    const UNITS: [(i64, &str); 5] = [
        (86_400_000_000_000, "d"),
        (3_600_000_000_000, "h"),
        (60_000_000_000, "m"),
        (1_000_000_000, "s"),
        (1_000_000, "ms"),
    ];
    if ns == 0 {
        return "infinite".to_string();
    }
    UNITS.iter().find(|(unit, _)| ns % unit == 0).map_or_else(
        || format!("{ns}ns"),
        |(unit, name)| format!("{}{name}", ns / unit),
    )
}

/// A database and all of its tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseSchema {
    /// Database id.
    pub id: DatabaseId,
    /// Database name.
    pub name: String,
    /// Retention and limits.
    pub limits: DatabaseLimits,
    /// Tables by name.
    pub tables: BTreeMap<String, TableSchema>,
}

/// Primary-key column names of an arrow schema: tags in lexicographic order, then `time`.
pub fn primary_key(schema: &Schema) -> Vec<String> {
    let mut tags: Vec<String> = schema
        .fields()
        .iter()
        .filter(|f| column_type_of(f) == Some(ColumnType::Tag))
        .map(|f| f.name().clone())
        .collect();
    tags.sort();
    tags.push(TIME_COLUMN.to_string());
    tags
}

/// Nanoseconds in one day: the width of a default partition.
pub const NANOS_PER_DAY: i64 = 86_400 * 1_000_000_000;

/// The default partition key of a row: its UTC day, `%Y-%m-%d`.
pub fn day_partition_key(time_ns: i64) -> String {
    // The date of the instant itself: flooring to the day start first would overflow for
    // times in the first day representable as i64 nanoseconds (1677-09-21).
    chrono::DateTime::from_timestamp_nanos(time_ns)
        .date_naive()
        .format("%Y-%m-%d")
        .to_string()
}

/// The `[start, end)` nanosecond range a daily partition key covers.
pub fn day_partition_range(key: &str) -> Option<(i64, i64)> {
    let date = chrono::NaiveDate::parse_from_str(key, "%Y-%m-%d").ok()?;
    let start = date.and_hms_opt(0, 0, 0)?.and_utc().timestamp_nanos_opt()?;
    Some((start, start.checked_add(NANOS_PER_DAY)?))
}

/// Why a database name is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Empty name.
    #[error("database name must not be empty")]
    Empty,
    /// Over 64 bytes.
    #[error("database name '{0}' is longer than 64 characters")]
    TooLong(String),
    /// Characters outside the allowed set.
    #[error(
        "database name '{0}' may only contain letters, digits, '_', '-' and '/' and must start with a letter or digit"
    )]
    BadCharacters(String),
}

/// Check a database name: 1–64 ASCII letters, digits, `_`, `-` or `/` (for v1 `db/rp`),
/// starting with a letter or digit.
pub fn validate_database_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > 64 {
        return Err(NameError::TooLong(name.to_string()));
    }
    let ok_first = name.as_bytes()[0].is_ascii_alphanumeric();
    let ok_rest = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'/'));
    if ok_first && ok_rest {
        Ok(())
    } else {
        Err(NameError::BadCharacters(name.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_type_codes_round_trip() {
        for t in ColumnType::ALL {
            assert_eq!(ColumnType::from_code(t.code()), Some(t));
            assert_eq!(ColumnType::from_iox_metadata(t.iox_metadata()), Some(t));
        }
        assert_eq!(ColumnType::from_code(0), None);
    }

    #[test]
    fn day_partition_keys_are_utc_days() {
        assert_eq!(day_partition_key(0), "1970-01-01");
        assert_eq!(day_partition_key(-1), "1969-12-31");
        assert_eq!(day_partition_key(NANOS_PER_DAY), "1970-01-02");
        let (s, e) = day_partition_range("2024-03-05").unwrap();
        assert_eq!(day_partition_key(s), "2024-03-05");
        assert_eq!(day_partition_key(e - 1), "2024-03-05");
        assert_eq!(day_partition_key(e), "2024-03-06");
        assert_eq!(day_partition_key(i64::MIN), "1677-09-21");
        assert_eq!(day_partition_key(i64::MAX), "2262-04-11");
        assert_eq!(day_partition_range("garbage"), None);
    }

    #[test]
    fn primary_key_is_sorted_tags_then_time() {
        let schema = Schema::new(vec![
            ColumnType::F64.arrow_field("usage"),
            ColumnType::Tag.arrow_field("region"),
            ColumnType::Time.arrow_field("time"),
            ColumnType::Tag.arrow_field("host"),
        ]);
        assert_eq!(primary_key(&schema), vec!["host", "region", "time"]);
    }

    #[test]
    fn database_names_are_checked() {
        assert!(validate_database_name("db_1-x/autogen2").is_ok());
        assert_eq!(validate_database_name(""), Err(NameError::Empty));
        assert!(matches!(
            validate_database_name("_x"),
            Err(NameError::BadCharacters(_))
        ));
        assert!(matches!(
            validate_database_name("a b"),
            Err(NameError::BadCharacters(_))
        ));
        assert!(matches!(
            validate_database_name(&"a".repeat(65)),
            Err(NameError::TooLong(_))
        ));
    }
}
