//! Last-value and distinct-value caches, as InfluxDB 3 Core has them: what a definition says,
//! how one is checked against its table, and the in-memory structures that ingesters keep up
//! to date as writes arrive and that queriers use again to merge the ingesters' answers.
//!
//! ```text
//!  write batch ─► LastCache::update      key (tags) ─► the `count` newest rows by time
//!             └─► DistinctCache::update  each distinct tuple of the columns ─► when last seen
//!  last_cache('cpu') ─► every ingester's LastCache::batch ─► querier: a fresh LastCache fed
//!                       with all of them (newest `count` per key overall) ─► one batch
//! ```
//!
//! Invariants:
//! - a key's rows are the newest by `time` the cache has seen, newest first: a row that
//!   arrives late with an older time never replaces a newer one, so merging several caches'
//!   answers gives the newest overall;
//! - two rows of one key with the same time are one row, the later write's non-null values
//!   winning, as deduplication merges them;
//! - entries expire by the wall-clock time since they were cached (`ttl`, `max_age`), not by
//!   their `time` value: data written with old timestamps is cached like any other.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Array, ArrayRef, RecordBatch, TimestampNanosecondArray, new_null_array};
use arrow::compute::{cast, interleave, take};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::error::ArrowError;
use arrow::row::{RowConverter, SortField};
use serde::{Deserialize, Serialize};

use crate::{ColumnType, DatabaseId, TIME_COLUMN, TableId, TableSchema};

/// Rows kept per key when a last-value cache is created without a count.
pub const DEFAULT_LAST_CACHE_COUNT: usize = 1;
/// The most rows a last-value cache keeps per key.
pub const MAX_LAST_CACHE_COUNT: usize = 10;
/// How long a last-value cache keeps a row without a newer one: four hours, as Core.
pub const DEFAULT_LAST_CACHE_TTL_SECONDS: u64 = 4 * 3600;
/// Distinct tuples a distinct-value cache keeps when created without a limit.
pub const DEFAULT_DISTINCT_CACHE_MAX_CARDINALITY: usize = 100_000;
/// How long a distinct-value cache keeps a tuple not seen again: one day, as Core.
pub const DEFAULT_DISTINCT_CACHE_MAX_AGE_SECONDS: u64 = 86_400;
/// The longest cache name accepted.
const MAX_NAME_LEN: usize = 256;

/// The two kinds of cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheKind {
    /// Last-value cache (LVC).
    Last,
    /// Distinct-value cache (DVC).
    Distinct,
}

impl CacheKind {
    /// `last` or `distinct`, as the catalog stores it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Last => "last",
            Self::Distinct => "distinct",
        }
    }

    /// Inverse of [`Self::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Last, Self::Distinct]
            .into_iter()
            .find(|k| k.name() == name)
    }

    /// The SQL table function that reads this kind: `last_cache` or `distinct_cache`.
    pub fn function(self) -> &'static str {
        match self {
            Self::Last => "last_cache",
            Self::Distinct => "distinct_cache",
        }
    }
}

/// A column a last-value cache stores, with its type (fixed for the table's life).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheColumn {
    /// Column name.
    pub name: String,
    /// Its type in the table.
    pub column_type: ColumnType,
}

/// What a cache holds. Stored in the catalog as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CacheSpec {
    /// The newest `count` rows of every distinct key.
    Last {
        /// Tag columns whose values identify a key (may be none: one key for the table).
        key_columns: Vec<String>,
        /// Columns stored per row; `time` is always among them (last unless named).
        value_columns: Vec<CacheColumn>,
        /// Rows kept per key, 1 to [`MAX_LAST_CACHE_COUNT`].
        count: usize,
        /// A row not replaced for this long is dropped.
        ttl_seconds: u64,
    },
    /// Every distinct tuple of some tag columns.
    Distinct {
        /// Tag columns, in the order given.
        columns: Vec<String>,
        /// The most tuples kept; the least recently seen go first.
        max_cardinality: usize,
        /// A tuple not seen for this long is dropped.
        max_age_seconds: u64,
    },
}

/// Why a cache definition was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CacheDefinitionError(pub String);

fn refuse<T>(message: impl Into<String>) -> Result<T, CacheDefinitionError> {
    Err(CacheDefinitionError(message.into()))
}

impl CacheSpec {
    /// A last-value cache over `table`. Key columns default to the table's tags, value
    /// columns to every other column; `time` is added to the values when not named.
    pub fn last(
        table: &TableSchema,
        key_columns: Option<Vec<String>>,
        value_columns: Option<Vec<String>>,
        count: Option<usize>,
        ttl_seconds: Option<u64>,
    ) -> Result<Self, CacheDefinitionError> {
        let key_columns = match key_columns {
            Some(keys) => keys,
            None => table.tag_columns().into_iter().map(String::from).collect(),
        };
        no_duplicates(&key_columns, "key")?;
        for k in &key_columns {
            match column_type(table, k)? {
                ColumnType::Tag => {}
                other => {
                    return refuse(format!(
                        "column '{k}' is {} in table '{}': key columns must be tags",
                        described(other),
                        table.name
                    ));
                }
            }
        }
        let mut values = match value_columns {
            Some(values) => {
                no_duplicates(&values, "value")?;
                values
            }
            None => table
                .columns
                .keys()
                .filter(|c| !key_columns.contains(c) && *c != TIME_COLUMN)
                .cloned()
                .collect(),
        };
        if !values.iter().any(|v| v == TIME_COLUMN) {
            values.push(TIME_COLUMN.to_string());
        }
        let mut value_columns = Vec::with_capacity(values.len());
        for v in values {
            if key_columns.contains(&v) {
                return refuse(format!(
                    "column '{v}' is a key column: it cannot be a value column too"
                ));
            }
            let column_type = column_type(table, &v)?;
            value_columns.push(CacheColumn {
                name: v,
                column_type,
            });
        }
        let count = count.unwrap_or(DEFAULT_LAST_CACHE_COUNT);
        if !(1..=MAX_LAST_CACHE_COUNT).contains(&count) {
            return refuse(format!(
                "count must be between 1 and {MAX_LAST_CACHE_COUNT}, got {count}"
            ));
        }
        let ttl_seconds = ttl_seconds.unwrap_or(DEFAULT_LAST_CACHE_TTL_SECONDS);
        if ttl_seconds == 0 {
            return refuse("ttl must be at least one second");
        }
        Ok(Self::Last {
            key_columns,
            value_columns,
            count,
            ttl_seconds,
        })
    }

    /// A distinct-value cache over tag `columns` of `table`.
    pub fn distinct(
        table: &TableSchema,
        columns: Vec<String>,
        max_cardinality: Option<usize>,
        max_age_seconds: Option<u64>,
    ) -> Result<Self, CacheDefinitionError> {
        if columns.is_empty() {
            return refuse("a distinct cache needs at least one column");
        }
        no_duplicates(&columns, "")?;
        for c in &columns {
            match column_type(table, c)? {
                ColumnType::Tag => {}
                other => {
                    return refuse(format!(
                        "column '{c}' is {} in table '{}': distinct cache columns must be tags",
                        described(other),
                        table.name
                    ));
                }
            }
        }
        let max_cardinality = max_cardinality.unwrap_or(DEFAULT_DISTINCT_CACHE_MAX_CARDINALITY);
        if max_cardinality == 0 {
            return refuse("max_cardinality must be at least 1");
        }
        let max_age_seconds = max_age_seconds.unwrap_or(DEFAULT_DISTINCT_CACHE_MAX_AGE_SECONDS);
        if max_age_seconds == 0 {
            return refuse("max_age must be at least one second");
        }
        Ok(Self::Distinct {
            columns,
            max_cardinality,
            max_age_seconds,
        })
    }

    /// Which kind of cache this is.
    pub fn kind(&self) -> CacheKind {
        match self {
            Self::Last { .. } => CacheKind::Last,
            Self::Distinct { .. } => CacheKind::Distinct,
        }
    }

    /// The name Core gives a cache created without one: the table, the columns, the kind.
    pub fn default_name(&self, table: &str) -> String {
        let columns = match self {
            Self::Last { key_columns, .. } => key_columns,
            Self::Distinct { columns, .. } => columns,
        };
        let mut parts = vec![table.to_string()];
        parts.extend(columns.iter().cloned());
        parts.push(self.kind().function().to_string());
        parts.join("_")
    }

    /// The schema of what the cache returns: keys then values (last), or the columns.
    pub fn schema(&self) -> SchemaRef {
        let fields: Vec<Field> = match self {
            Self::Last {
                key_columns,
                value_columns,
                ..
            } => key_columns
                .iter()
                .map(|k| ColumnType::Tag.arrow_field(k))
                .chain(
                    value_columns
                        .iter()
                        .map(|v| v.column_type.arrow_field(&v.name)),
                )
                .collect(),
            Self::Distinct { columns, .. } => columns
                .iter()
                .map(|c| ColumnType::Tag.arrow_field(c))
                .collect(),
        };
        Arc::new(Schema::new(fields))
    }

    /// The JSON the catalog stores.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a cache spec always serializes")
    }

    /// Inverse of [`Self::to_json`].
    pub fn from_json(text: &str) -> Result<Self, String> {
        serde_json::from_str(text).map_err(|e| format!("invalid cache definition: {e}"))
    }
}

/// Check a cache name given by a user.
pub fn validate_cache_name(name: &str) -> Result<(), CacheDefinitionError> {
    if name.is_empty() {
        return refuse("cache name must not be empty");
    }
    if name.len() > MAX_NAME_LEN {
        return refuse(format!(
            "cache name is {} bytes long, the limit is {MAX_NAME_LEN}",
            name.len()
        ));
    }
    if name.chars().any(char::is_control) {
        return refuse("cache name must not contain control characters");
    }
    Ok(())
}

/// "a float field", "an integer field", "a timestamp column".
fn described(t: ColumnType) -> String {
    let name = t.name();
    let article = if name.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    let what = if t.is_field() { "field" } else { "column" };
    format!("{article} {name} {what}")
}

fn column_type(table: &TableSchema, name: &str) -> Result<ColumnType, CacheDefinitionError> {
    table.column_type(name).ok_or_else(|| {
        CacheDefinitionError(format!(
            "column '{name}' not found in table '{}'",
            table.name
        ))
    })
}

fn no_duplicates(columns: &[String], what: &str) -> Result<(), CacheDefinitionError> {
    for (i, c) in columns.iter().enumerate() {
        if columns[..i].contains(c) {
            let what = if what.is_empty() {
                String::new()
            } else {
                format!("{what} ")
            };
            return refuse(format!("column '{c}' is named twice as a {what}column"));
        }
    }
    Ok(())
}

/// A cache as the catalog lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheDefinition {
    /// Catalog id; a cache deleted and created again gets a new one.
    pub id: i64,
    /// Its table's database.
    pub database_id: DatabaseId,
    /// Its table.
    pub table_id: TableId,
    /// The table's name when listed.
    pub table: String,
    /// Unique per table and kind.
    pub name: String,
    /// What it holds.
    pub spec: CacheSpec,
}

impl CacheDefinition {
    /// A fresh, empty cache for this definition.
    pub fn new_cache(&self) -> Result<Cache, ArrowError> {
        Ok(match &self.spec {
            CacheSpec::Last { .. } => Cache::Last(LastCache::new(&self.spec)?),
            CacheSpec::Distinct { .. } => Cache::Distinct(DistinctCache::new(&self.spec)?),
        })
    }

    /// An empty cache to merge several caches' answers in: the newest `count` rows per key
    /// overall, or the union of the tuples. The union is not cut to the cardinality limit,
    /// which each answer is within already: what to drop could only be chosen arbitrarily.
    pub fn merge_cache(&self) -> Result<Cache, ArrowError> {
        match &self.spec {
            CacheSpec::Last { .. } => self.new_cache(),
            CacheSpec::Distinct {
                columns,
                max_age_seconds,
                ..
            } => Ok(Cache::Distinct(DistinctCache::new(&CacheSpec::Distinct {
                columns: columns.clone(),
                max_cardinality: usize::MAX,
                max_age_seconds: *max_age_seconds,
            })?)),
        }
    }
}

/// Either kind of cache.
#[derive(Debug)]
pub enum Cache {
    /// Last values.
    Last(LastCache),
    /// Distinct values.
    Distinct(DistinctCache),
}

impl Cache {
    /// Take the rows of `batch` (any columns by name; missing ones are nulls) into the cache.
    pub fn update(&mut self, batch: &RecordBatch, now: Instant) -> Result<(), ArrowError> {
        match self {
            Self::Last(c) => c.update(batch, now),
            Self::Distinct(c) => c.update(batch, now),
        }
    }

    /// What the cache holds, unexpired at `now`.
    pub fn batch(&self, now: Instant) -> Result<RecordBatch, ArrowError> {
        match self {
            Self::Last(c) => c.batch(now),
            Self::Distinct(c) => c.batch(now),
        }
    }

    /// Drop what expired by `now`.
    pub fn prune(&mut self, now: Instant) {
        match self {
            Self::Last(c) => c.prune(now),
            Self::Distinct(c) => c.prune(now),
        }
    }

    /// Entries held (keys of a last-value cache, tuples of a distinct one).
    pub fn len(&self) -> usize {
        match self {
            Self::Last(c) => c.entries.len(),
            Self::Distinct(c) => c.seen.len(),
        }
    }

    /// True when the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The column `name` of `batch` as plain `Utf8` (tags may arrive dictionary-encoded), or
/// nulls when the batch does not have it.
fn utf8_column(batch: &RecordBatch, name: &str) -> Result<ArrayRef, ArrowError> {
    column_as(batch, name, &DataType::Utf8)
}

fn column_as(
    batch: &RecordBatch,
    name: &str,
    data_type: &DataType,
) -> Result<ArrayRef, ArrowError> {
    match batch.column_by_name(name) {
        Some(c) if c.data_type() == data_type => Ok(Arc::clone(c)),
        Some(c) => cast(c, data_type),
        None => Ok(new_null_array(data_type, batch.num_rows())),
    }
}

fn utf8_converter(columns: usize) -> Result<RowConverter, ArrowError> {
    RowConverter::new(vec![SortField::new(DataType::Utf8); columns])
}

/// The rows of `columns` as row-format keys; `None` for zero columns (one key for all).
fn keys_of(
    converter: &RowConverter,
    batch: &RecordBatch,
    columns: &[String],
) -> Result<Option<arrow::row::Rows>, ArrowError> {
    if columns.is_empty() {
        return Ok(None);
    }
    let arrays = columns
        .iter()
        .map(|c| utf8_column(batch, c))
        .collect::<Result<Vec<_>, _>>()?;
    converter.convert_columns(&arrays).map(Some)
}

/// A row a last-value cache holds: row `row` of a small batch of value columns.
#[derive(Debug, Clone)]
struct Slot {
    time: i64,
    cached_at: Instant,
    values: Arc<RecordBatch>,
    row: usize,
}

/// The newest `count` rows of every key. See the module doc.
#[derive(Debug)]
pub struct LastCache {
    count: usize,
    ttl: Duration,
    key_columns: Vec<String>,
    values: SchemaRef,
    schema: SchemaRef,
    keys: RowConverter,
    /// Newest first, at most `count`.
    entries: HashMap<Box<[u8]>, Vec<Slot>>,
}

impl LastCache {
    /// An empty cache for a `CacheSpec::Last`.
    pub fn new(spec: &CacheSpec) -> Result<Self, ArrowError> {
        let CacheSpec::Last {
            key_columns,
            value_columns,
            count,
            ttl_seconds,
        } = spec
        else {
            return Err(ArrowError::InvalidArgumentError(
                "not a last-value cache".into(),
            ));
        };
        let values = Arc::new(Schema::new(
            value_columns
                .iter()
                .map(|v| v.column_type.arrow_field(&v.name))
                .collect::<Vec<_>>(),
        ));
        Ok(Self {
            count: (*count).max(1),
            ttl: Duration::from_secs(*ttl_seconds),
            key_columns: key_columns.clone(),
            values,
            schema: spec.schema(),
            keys: utf8_converter(key_columns.len())?,
            entries: HashMap::new(),
        })
    }

    /// Take the newest rows of `batch` per key.
    pub fn update(&mut self, batch: &RecordBatch, now: Instant) -> Result<(), ArrowError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let time = batch
            .column_by_name(TIME_COLUMN)
            .and_then(|c| c.as_any().downcast_ref::<TimestampNanosecondArray>())
            .ok_or_else(|| ArrowError::InvalidArgumentError("batch has no time column".into()))?;
        let keys = keys_of(&self.keys, batch, &self.key_columns)?;
        let key = |i: usize| keys.as_ref().map_or(&[][..], |k| k.row(i).data());

        // Per key, the rows in this batch that can be among its `count` newest, in batch
        // order (a later row of the same time merges over an earlier one).
        let mut groups: HashMap<&[u8], Vec<usize>> = HashMap::new();
        for i in 0..batch.num_rows() {
            if time.is_valid(i) {
                groups.entry(key(i)).or_default().push(i);
            }
        }
        let mut chosen: Vec<(&[u8], Vec<usize>)> = Vec::with_capacity(groups.len());
        for (k, rows) in groups {
            let mut times: Vec<i64> = rows.iter().map(|&i| time.value(i)).collect();
            times.sort_unstable_by(|a, b| b.cmp(a));
            times.dedup();
            let mut floor = times[times.len().min(self.count) - 1];
            // A full entry takes nothing older than its oldest row.
            if let Some(slots) = self.entries.get(k)
                && slots.len() >= self.count
            {
                floor = floor.max(slots[slots.len() - 1].time);
            }
            let rows: Vec<usize> = rows
                .into_iter()
                .filter(|&i| time.value(i) >= floor)
                .collect();
            if !rows.is_empty() {
                chosen.push((k, rows));
            }
        }
        if chosen.is_empty() {
            return Ok(());
        }
        let indices: arrow::array::UInt32Array = chosen
            .iter()
            .flat_map(|(_, rows)| rows.iter().map(|&i| i as u32))
            .collect();
        let columns = self
            .values
            .fields()
            .iter()
            .map(|f| {
                let column = batch
                    .column_by_name(f.name())
                    .map(|c| take(c.as_ref(), &indices, None))
                    .transpose()?;
                match column {
                    Some(c) if c.data_type() == f.data_type() => Ok(c),
                    Some(c) => cast(&c, f.data_type()),
                    None => Ok(new_null_array(f.data_type(), indices.len())),
                }
            })
            .collect::<Result<Vec<_>, ArrowError>>()?;
        let taken = Arc::new(RecordBatch::try_new(Arc::clone(&self.values), columns)?);

        let mut at = 0;
        for (k, rows) in chosen {
            let slots = self.entries.entry(k.into()).or_default();
            slots.retain(|s| now.duration_since(s.cached_at) <= self.ttl);
            for i in rows {
                let slot = Slot {
                    time: time.value(i),
                    cached_at: now,
                    values: Arc::clone(&taken),
                    row: at,
                };
                at += 1;
                insert_slot(slots, slot, self.count)?;
            }
        }
        Ok(())
    }

    /// Every key's unexpired rows, newest first within a key, keys in order.
    pub fn batch(&self, now: Instant) -> Result<RecordBatch, ArrowError> {
        let mut keys: Vec<&Box<[u8]>> = self.entries.keys().collect();
        keys.sort_unstable();
        let parser = self.keys.parser();
        let mut key_rows = Vec::new();
        let mut sources: Vec<&Arc<RecordBatch>> = Vec::new();
        let mut source_of: HashMap<*const RecordBatch, usize> = HashMap::new();
        let mut picks = Vec::new();
        for k in keys {
            for s in &self.entries[k] {
                if now.duration_since(s.cached_at) > self.ttl {
                    continue;
                }
                let source = *source_of.entry(Arc::as_ptr(&s.values)).or_insert_with(|| {
                    sources.push(&s.values);
                    sources.len() - 1
                });
                picks.push((source, s.row));
                key_rows.push(parser.parse(k));
            }
        }
        let mut columns = if self.key_columns.is_empty() {
            Vec::new()
        } else if key_rows.is_empty() {
            self.key_columns
                .iter()
                .map(|_| new_null_array(&DataType::Utf8, 0))
                .collect()
        } else {
            self.keys.convert_rows(key_rows)?
        };
        for (c, field) in self.values.fields().iter().enumerate() {
            let arrays: Vec<&dyn Array> = sources.iter().map(|b| b.column(c).as_ref()).collect();
            columns.push(if picks.is_empty() {
                new_null_array(field.data_type(), 0)
            } else {
                interleave(&arrays, &picks)?
            });
        }
        RecordBatch::try_new(Arc::clone(&self.schema), columns)
    }

    /// Drop expired rows and keys left without rows.
    pub fn prune(&mut self, now: Instant) {
        let ttl = self.ttl;
        self.entries.retain(|_, slots| {
            slots.retain(|s| now.duration_since(s.cached_at) <= ttl);
            !slots.is_empty()
        });
    }
}

/// Put `slot` among a key's rows (newest first, at most `count`); a row of the same time
/// merges with the one there, its non-null values winning.
fn insert_slot(slots: &mut Vec<Slot>, slot: Slot, count: usize) -> Result<(), ArrowError> {
    match slots.iter().position(|s| s.time <= slot.time) {
        Some(p) if slots[p].time == slot.time => {
            let merged = merge_rows(&slots[p], &slot)?;
            slots[p] = merged;
        }
        Some(p) => slots.insert(p, slot),
        None => slots.push(slot),
    }
    slots.truncate(count);
    Ok(())
}

fn merge_rows(old: &Slot, new: &Slot) -> Result<Slot, ArrowError> {
    let columns = (0..new.values.num_columns())
        .map(|c| {
            let (o, n) = (old.values.column(c), new.values.column(c));
            let pick = if n.is_null(new.row) {
                (0, old.row)
            } else {
                (1, new.row)
            };
            interleave(&[o.as_ref(), n.as_ref()], &[pick])
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Slot {
        time: new.time,
        cached_at: new.cached_at,
        values: Arc::new(RecordBatch::try_new(new.values.schema(), columns)?),
        row: 0,
    })
}

/// Every distinct tuple of some columns, with when it was last seen. See the module doc.
#[derive(Debug)]
pub struct DistinctCache {
    max_cardinality: usize,
    max_age: Duration,
    columns: Vec<String>,
    schema: SchemaRef,
    rows: RowConverter,
    /// When each tuple was last seen, and its place in the order of arrival (what the
    /// cardinality limit evicts by: instants can tie, this cannot).
    seen: HashMap<Box<[u8]>, (Instant, u64)>,
    arrivals: u64,
}

impl DistinctCache {
    /// An empty cache for a `CacheSpec::Distinct`.
    pub fn new(spec: &CacheSpec) -> Result<Self, ArrowError> {
        let CacheSpec::Distinct {
            columns,
            max_cardinality,
            max_age_seconds,
        } = spec
        else {
            return Err(ArrowError::InvalidArgumentError(
                "not a distinct-value cache".into(),
            ));
        };
        Ok(Self {
            max_cardinality: (*max_cardinality).max(1),
            max_age: Duration::from_secs(*max_age_seconds),
            columns: columns.clone(),
            schema: spec.schema(),
            rows: utf8_converter(columns.len())?,
            seen: HashMap::new(),
            arrivals: 0,
        })
    }

    /// Record every tuple of `batch` as seen at `now`; past the cardinality limit, the least
    /// recently seen tuples go.
    pub fn update(&mut self, batch: &RecordBatch, now: Instant) -> Result<(), ArrowError> {
        let Some(rows) = keys_of(&self.rows, batch, &self.columns)? else {
            return Ok(());
        };
        for row in &rows {
            self.arrivals += 1;
            let seen = (now, self.arrivals);
            match self.seen.get_mut(row.data()) {
                Some(at) => *at = seen,
                None => {
                    self.seen.insert(row.data().into(), seen);
                }
            }
        }
        if self.seen.len() > self.max_cardinality {
            let excess = self.seen.len() - self.max_cardinality;
            let mut by_age: Vec<(u64, Box<[u8]>)> = self
                .seen
                .iter()
                .map(|(k, (_, n))| (*n, k.clone()))
                .collect();
            by_age.select_nth_unstable_by_key(excess - 1, |(n, _)| *n);
            for (_, k) in by_age.into_iter().take(excess) {
                self.seen.remove(&k);
            }
        }
        Ok(())
    }

    /// The unexpired tuples, in order.
    pub fn batch(&self, now: Instant) -> Result<RecordBatch, ArrowError> {
        let mut keys: Vec<&Box<[u8]>> = self
            .seen
            .iter()
            .filter(|(_, (at, _))| now.duration_since(*at) <= self.max_age)
            .map(|(k, _)| k)
            .collect();
        keys.sort_unstable();
        let columns = if keys.is_empty() {
            self.columns
                .iter()
                .map(|_| new_null_array(&DataType::Utf8, 0))
                .collect()
        } else {
            let parser = self.rows.parser();
            self.rows
                .convert_rows(keys.into_iter().map(|k| parser.parse(k)))?
        };
        RecordBatch::try_new(Arc::clone(&self.schema), columns)
    }

    /// Drop tuples not seen within the max age.
    pub fn prune(&mut self, now: Instant) {
        let max_age = self.max_age;
        self.seen
            .retain(|_, (at, _)| now.duration_since(*at) <= max_age);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use arrow::array::{Float64Array, StringArray};
    use arrow::util::pretty::pretty_format_batches;

    use super::*;
    use crate::ColumnId;

    fn cpu() -> TableSchema {
        let columns = [
            ("host", ColumnType::Tag),
            ("region", ColumnType::Tag),
            ("usage", ColumnType::F64),
            ("time", ColumnType::Time),
        ];
        TableSchema {
            id: TableId(1),
            name: "cpu".into(),
            columns: columns
                .into_iter()
                .enumerate()
                .map(|(i, (n, t))| (n.to_string(), (ColumnId(i as i64), t)))
                .collect::<BTreeMap<_, _>>(),
            partition_template: Default::default(),
        }
    }

    fn rows(data: &[(&str, Option<&str>, Option<f64>, i64)]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            ColumnType::Tag.arrow_field("host"),
            ColumnType::Tag.arrow_field("region"),
            ColumnType::F64.arrow_field("usage"),
            ColumnType::Time.arrow_field("time"),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from_iter_values(data.iter().map(|r| r.0))),
                Arc::new(StringArray::from_iter(data.iter().map(|r| r.1))),
                Arc::new(Float64Array::from_iter(data.iter().map(|r| r.2))),
                Arc::new(TimestampNanosecondArray::from_iter_values(
                    data.iter().map(|r| r.3),
                )),
            ],
        )
        .unwrap()
    }

    fn text(batch: &RecordBatch) -> String {
        pretty_format_batches(std::slice::from_ref(batch))
            .unwrap()
            .to_string()
    }

    #[test]
    fn last_cache_keeps_the_newest_rows_per_key_whatever_the_arrival_order() {
        let spec = CacheSpec::last(&cpu(), Some(vec!["host".into()]), None, Some(2), None).unwrap();
        let mut cache = LastCache::new(&spec).unwrap();
        let now = Instant::now();
        cache
            .update(
                &rows(&[
                    ("a", Some("eu"), Some(1.0), 10),
                    ("a", Some("eu"), Some(3.0), 30),
                    ("b", None, Some(5.0), 5),
                ]),
                now,
            )
            .unwrap();
        // Late and older: ignored for a full key; same time: merged, non-null wins.
        cache
            .update(
                &rows(&[
                    ("a", Some("eu"), Some(2.0), 20),
                    ("a", Some("eu"), Some(0.5), 5),
                    ("b", Some("us"), None, 5),
                ]),
                now,
            )
            .unwrap();
        let expected = "\
+------+--------+-------+-------------------------------+
| host | region | usage | time                          |
+------+--------+-------+-------------------------------+
| a    | eu     | 3.0   | 1970-01-01T00:00:00.000000030 |
| a    | eu     | 2.0   | 1970-01-01T00:00:00.000000020 |
| b    | us     | 5.0   | 1970-01-01T00:00:00.000000005 |
+------+--------+-------+-------------------------------+";
        assert_eq!(text(&cache.batch(now).unwrap()), expected);

        // Merging two caches' answers is feeding one into a fresh cache.
        let mut merged = LastCache::new(&spec).unwrap();
        merged.update(&cache.batch(now).unwrap(), now).unwrap();
        merged
            .update(&rows(&[("a", Some("eu"), Some(9.0), 25)]), now)
            .unwrap();
        let batch = merged.batch(now).unwrap();
        assert_eq!(batch.num_rows(), 3);
        assert!(text(&batch).contains("| a    | eu     | 9.0   | 1970-01-01T00:00:00.000000025 |"));
    }

    #[test]
    fn last_cache_rows_expire_after_the_ttl() {
        let spec = CacheSpec::last(&cpu(), None, None, None, Some(10)).unwrap();
        let mut cache = LastCache::new(&spec).unwrap();
        let start = Instant::now();
        cache
            .update(&rows(&[("a", None, Some(1.0), 1)]), start)
            .unwrap();
        assert_eq!(
            cache
                .batch(start + Duration::from_secs(10))
                .unwrap()
                .num_rows(),
            1
        );
        assert_eq!(
            cache
                .batch(start + Duration::from_secs(11))
                .unwrap()
                .num_rows(),
            0
        );
        cache.prune(start + Duration::from_secs(11));
        assert!(cache.entries.is_empty());
    }

    #[test]
    fn distinct_cache_keeps_the_most_recently_seen_tuples() {
        let spec = CacheSpec::distinct(
            &cpu(),
            vec!["region".into(), "host".into()],
            Some(2),
            Some(60),
        )
        .unwrap();
        let mut cache = DistinctCache::new(&spec).unwrap();
        let t0 = Instant::now();
        cache
            .update(
                &rows(&[("a", Some("eu"), None, 1), ("b", Some("eu"), None, 1)]),
                t0,
            )
            .unwrap();
        let t1 = t0 + Duration::from_secs(1);
        cache
            .update(
                &rows(&[("c", None, None, 1), ("b", Some("eu"), None, 2)]),
                t1,
            )
            .unwrap();
        let expected = "\
+--------+------+
| region | host |
+--------+------+
|        | c    |
| eu     | b    |
+--------+------+";
        assert_eq!(text(&cache.batch(t1).unwrap()), expected);
        assert_eq!(
            cache
                .batch(t1 + Duration::from_secs(61))
                .unwrap()
                .num_rows(),
            0
        );
    }

    #[test]
    fn definitions_are_checked_against_the_table() {
        let t = cpu();
        let err = |r: Result<CacheSpec, CacheDefinitionError>| r.unwrap_err().0;
        assert_eq!(
            err(CacheSpec::last(
                &t,
                Some(vec!["usage".into()]),
                None,
                None,
                None
            )),
            "column 'usage' is a float field in table 'cpu': key columns must be tags"
        );
        assert_eq!(
            err(CacheSpec::last(
                &t,
                Some(vec!["nope".into()]),
                None,
                None,
                None
            )),
            "column 'nope' not found in table 'cpu'"
        );
        assert_eq!(
            err(CacheSpec::last(&t, None, None, Some(11), None)),
            "count must be between 1 and 10, got 11"
        );
        assert_eq!(
            err(CacheSpec::last(
                &t,
                Some(vec!["host".into()]),
                Some(vec!["host".into()]),
                None,
                None
            )),
            "column 'host' is a key column: it cannot be a value column too"
        );
        assert_eq!(
            err(CacheSpec::distinct(&t, vec!["usage".into()], None, None)),
            "column 'usage' is a float field in table 'cpu': distinct cache columns must be tags"
        );
        let spec = CacheSpec::last(&t, None, Some(vec!["usage".into()]), None, None).unwrap();
        assert_eq!(spec.default_name("cpu"), "cpu_host_region_last_cache");
        let names: Vec<_> = spec
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(names, ["host", "region", "usage", "time"]);
        assert_eq!(CacheSpec::from_json(&spec.to_json()).unwrap(), spec);
    }
}
