//! The points a `SELECT` reads: a measurement's rows through DataFusion (dedup, pruning and
//! the ingesters' unpersisted rows exactly as SQL sees them), or a subquery's result.
//!
//! ```text
//!  measurement ──► ctx.table(m) ─ filter(time bounds, tag = 'v') ─ select(time, tags, fields)
//!                  ─ collect ─► rows grouped by their full tag set ─► Source
//!  subquery    ──► its series (name, tags, columns, values) ─────────────────► Source
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap};

use arrow::array::{
    Array, ArrayRef, BooleanArray, Float64Array, Int64Array, StringArray, TimestampNanosecondArray,
    UInt64Array,
};
use arrow::datatypes::DataType;
use datafusion::common::{Column, ScalarValue, TableReference};
use datafusion::execution::memory_pool::MemoryReservation;
use datafusion::logical_expr::{Expr as DfExpr, SortExpr, lit};
use datafusion::prelude::SessionContext;
use ferrite_model::{ColumnType, TableSchema};

use super::value::{FieldType, Value};
use crate::error::{QueryError, Result, Stage};

/// One point: its time and its field values, aligned with [`Source::fields`].
#[derive(Debug, Clone)]
pub struct Point {
    /// ns since the epoch.
    pub time: i64,
    /// One value per field of the source (`Null` where the point lacks it).
    pub values: Vec<Value>,
}

/// The points of one tag set.
#[derive(Debug, Clone)]
pub struct InputSeries {
    /// The tag set (absent tags are not in the map).
    pub tags: BTreeMap<String, String>,
    /// Points in time order.
    pub points: Vec<Point>,
}

/// What a `SELECT` reads from one measurement or subquery.
#[derive(Debug, Clone)]
pub struct Source {
    /// The measurement's name (a subquery's: its result series' name).
    pub name: String,
    /// The field columns read, with their types (`None`: mixed types, from a subquery).
    pub fields: Vec<(String, Option<FieldType>)>,
    /// Every tag key of the measurement.
    pub tag_keys: BTreeSet<String>,
    /// Series in tag-set order.
    pub series: Vec<InputSeries>,
}

impl Source {
    /// The index of field `name`.
    pub fn field_index(&self, name: &str) -> Option<usize> {
        self.fields.iter().position(|(n, _)| n == name)
    }
}

/// The field type of a catalog column type (`None` for tags and time).
pub fn field_type(column: ColumnType) -> Option<FieldType> {
    match column {
        ColumnType::F64 => Some(FieldType::Float),
        ColumnType::I64 => Some(FieldType::Integer),
        ColumnType::U64 => Some(FieldType::Unsigned),
        ColumnType::String => Some(FieldType::String),
        ColumnType::Bool => Some(FieldType::Boolean),
        ColumnType::Time | ColumnType::Tag => None,
    }
}

/// What to read from a measurement.
#[derive(Debug, Default, Clone)]
pub struct Scan {
    /// Fields to read (every field when `None`).
    pub fields: Option<BTreeSet<String>>,
    /// Inclusive lower time bound, ns.
    pub min_time: Option<i64>,
    /// Inclusive upper time bound, ns.
    pub max_time: Option<i64>,
    /// `tag = 'value'` conditions every point must meet (ANDed at the top of `WHERE`).
    pub tag_equals: Vec<(String, String)>,
}

/// Read `table` through `ctx`: the fields asked for (those the table has), every tag, in
/// series of one tag set each.
/// The rows read are counted in `memory` (the query's pool): a scan too big for the querier
/// fails with its memory limit instead of exhausting the process.
pub async fn scan(
    ctx: &SessionContext,
    table: &TableSchema,
    scan: &Scan,
    memory: &parking_lot::Mutex<MemoryReservation>,
) -> Result<Source> {
    let tag_keys: BTreeSet<String> = table
        .columns
        .iter()
        .filter(|(_, (_, t))| *t == ColumnType::Tag)
        .map(|(n, _)| n.clone())
        .collect();
    let fields: Vec<(String, Option<FieldType>)> = table
        .columns
        .iter()
        .filter_map(|(n, (_, t))| field_type(*t).map(|f| (n.clone(), Some(f))))
        .filter(|(n, _)| scan.fields.as_ref().is_none_or(|w| w.contains(n)))
        .collect();
    let planning = |e| QueryError::from_datafusion(e, Stage::Planning);
    let column = |name: &str| DfExpr::Column(Column::from_name(name));
    let mut df = ctx
        .table(TableReference::bare(table.name.as_str()))
        .await
        .map_err(planning)?;
    let mut conditions = Vec::new();
    if let Some(min) = scan.min_time {
        conditions
            .push(column("time").gt_eq(lit(ScalarValue::TimestampNanosecond(Some(min), None))));
    }
    if let Some(max) = scan.max_time {
        conditions
            .push(column("time").lt_eq(lit(ScalarValue::TimestampNanosecond(Some(max), None))));
    }
    for (tag, value) in &scan.tag_equals {
        if tag_keys.contains(tag) {
            conditions.push(column(tag).eq(lit(value.as_str())));
        }
    }
    if let Some(condition) = conditions.into_iter().reduce(DfExpr::and) {
        df = df.filter(condition).map_err(planning)?;
    }
    let mut projection = vec![column("time")];
    projection.extend(tag_keys.iter().map(|t| column(t)));
    projection.extend(fields.iter().map(|(f, _)| column(f)));
    df = df.select(projection).map_err(planning)?;
    // Sorted by time here so that each series' points arrive in order; series are split
    // out below.
    df = df
        .sort(vec![SortExpr::new(column("time"), true, false)])
        .map_err(planning)?;
    let batches = df
        .collect()
        .await
        .map_err(|e| QueryError::from_datafusion(e, Stage::Execution))?;
    let bytes: usize = batches.iter().map(|b| b.get_array_memory_size()).sum();
    // Rows become values about twice their Arrow size.
    memory
        .lock()
        .try_grow(bytes.saturating_mul(3))
        .map_err(QueryError::from_stream_error)?;

    let mut by_tags: HashMap<Vec<Option<String>>, InputSeries> = HashMap::new();
    let tag_list: Vec<&String> = tag_keys.iter().collect();
    for batch in &batches {
        let times = batch
            .column(0)
            .as_any()
            .downcast_ref::<TimestampNanosecondArray>()
            .ok_or_else(|| QueryError::Internal("time column is not a timestamp".into()))?;
        let tag_columns: Vec<StringArray> = (0..tag_list.len())
            .map(|i| to_strings(batch.column(1 + i)))
            .collect::<Result<_>>()?;
        let field_columns: Vec<&ArrayRef> = (0..fields.len())
            .map(|i| batch.column(1 + tag_list.len() + i))
            .collect();
        for row in 0..batch.num_rows() {
            let key: Vec<Option<String>> = tag_columns
                .iter()
                .map(|c| (!c.is_null(row)).then(|| c.value(row).to_string()))
                .collect();
            let values = field_columns
                .iter()
                .map(|c| cell(c, row))
                .collect::<Result<Vec<_>>>()?;
            let series = by_tags.entry(key).or_insert_with_key(|key| InputSeries {
                tags: tag_list
                    .iter()
                    .zip(key)
                    .filter_map(|(k, v)| v.as_ref().map(|v| ((*k).clone(), v.clone())))
                    .collect(),
                points: Vec::new(),
            });
            series.points.push(Point {
                time: times.value(row),
                values,
            });
        }
    }
    let mut series: Vec<InputSeries> = by_tags.into_values().collect();
    series.sort_by(|a, b| a.tags.cmp(&b.tags));
    Ok(Source {
        name: table.name.clone(),
        fields,
        tag_keys,
        series,
    })
}

/// A tag column (dictionary or plain) as plain strings.
fn to_strings(array: &ArrayRef) -> Result<StringArray> {
    let cast = arrow::compute::cast(array, &DataType::Utf8)
        .map_err(|e| QueryError::Internal(format!("tag column: {e}")))?;
    cast.as_any()
        .downcast_ref::<StringArray>()
        .cloned()
        .ok_or_else(|| QueryError::Internal("tag column is not a string".into()))
}

/// One cell of a field column.
fn cell(array: &ArrayRef, row: usize) -> Result<Value> {
    if array.is_null(row) {
        return Ok(Value::Null);
    }
    let any = array.as_any();
    let value = match array.data_type() {
        DataType::Float64 => any
            .downcast_ref::<Float64Array>()
            .map(|a| Value::Float(a.value(row))),
        DataType::Int64 => any
            .downcast_ref::<Int64Array>()
            .map(|a| Value::Integer(a.value(row))),
        DataType::UInt64 => any
            .downcast_ref::<UInt64Array>()
            .map(|a| Value::Unsigned(a.value(row))),
        DataType::Boolean => any
            .downcast_ref::<BooleanArray>()
            .map(|a| Value::Boolean(a.value(row))),
        DataType::Utf8 => any
            .downcast_ref::<StringArray>()
            .map(|a| Value::String(a.value(row).to_string())),
        _ => None,
    };
    value.ok_or_else(|| {
        QueryError::Internal(format!(
            "unexpected field column type {}",
            array.data_type()
        ))
    })
}
