//! The points a `SELECT` reads: a measurement's rows through DataFusion (dedup, pruning and
//! the ingesters' unpersisted rows exactly as SQL sees them), or a subquery's result.
//!
//! ```text
//!  measurement ──► ctx.table(m) ─ filter(time bounds, tag = 'v') ─ [rank by time ≤ LIMIT
//!                  per group] ─ select(time, tags, fields) ─ collect
//!                  ─► rows grouped by their full tag set ─► Source
//!  subquery    ──► its series (name, tags, columns, values) ─────────────────► Source
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array, StringArray,
    TimestampNanosecondArray, UInt64Array,
};
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;
use arrow::row::{RowConverter, SortField};
use datafusion::common::{Column, ScalarValue, TableReference};
use datafusion::execution::memory_pool::MemoryReservation;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::functions_window::expr_fn::rank;
use datafusion::logical_expr::{Expr as DfExpr, ExprFunctionExt, SortExpr, lit};
use datafusion::prelude::{DataFrame, SessionContext};
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
    /// A DataFusion form of the whole `WHERE` clause, if it has one.
    pub filter: Option<DfExpr>,
    /// Read only the points a raw query's per-series `LIMIT` can return.
    pub limit: Option<ScanLimit>,
}

/// The first `rows` points in time order of each group of series (`GROUP BY` tags), counting
/// only points with one of the fields read: what a raw query's `OFFSET` + `LIMIT` keeps of
/// each group. Points tied in time with the last one kept are kept too, so the engine, which
/// orders ties by series, makes the same choice as over every point.
#[derive(Debug, Clone)]
pub struct ScanLimit {
    /// The `GROUP BY` tag keys.
    pub group_tags: Vec<String>,
    /// Points per group, `OFFSET` + `LIMIT`.
    pub rows: usize,
    /// `ORDER BY time DESC`: the last points, not the first.
    pub descending: bool,
}

/// Every batch of `df`, its operators drawing memory from `runtime`'s pool.
async fn collect(df: DataFrame, runtime: &Arc<RuntimeEnv>) -> Result<Vec<RecordBatch>> {
    let task_ctx = Arc::new(df.task_ctx().with_runtime(Arc::clone(runtime)));
    let plan = df
        .create_physical_plan()
        .await
        .map_err(|e| QueryError::from_datafusion(e, Stage::Execution))?;
    datafusion::physical_plan::collect(plan, task_ctx)
        .await
        .map_err(|e| QueryError::from_datafusion(e, Stage::Execution))
}

/// The rank a limited scan filters on; the projection after it drops the column.
const RANK_COLUMN: &str = "__ferrite_rank";

/// Read `table` through `ctx`, run on `runtime`: the fields asked for (those the table has),
/// every tag, in series of one tag set each.
/// The rows read are counted in `memory` (the query's pool): a scan too big for the querier
/// fails with its memory limit instead of exhausting the process.
pub async fn scan(
    ctx: &SessionContext,
    runtime: &Arc<RuntimeEnv>,
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
    let (mut df, mut conditions) = table_between(ctx, table, scan.min_time, scan.max_time).await?;
    for (tag, value) in &scan.tag_equals {
        if tag_keys.contains(tag) {
            conditions.push(column(tag).eq(lit(value.as_str())));
        }
    }
    conditions.extend(scan.filter.clone());
    if let Some(condition) = conditions.into_iter().reduce(DfExpr::and) {
        df = df.filter(condition).map_err(planning)?;
    }
    if let Some(limit) = &scan.limit {
        df = limited(df, limit, &tag_keys, &fields).map_err(planning)?;
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
    let batches = collect(df, runtime).await?;
    let bytes: usize = batches.iter().map(|b| b.get_array_memory_size()).sum();
    // Rows become values about twice their Arrow size.
    memory
        .lock()
        .try_grow(bytes.saturating_mul(3))
        .map_err(QueryError::from_stream_error)?;

    // Each row's tag set in the Arrow row format: one encoding pass per batch, and a lookup
    // without allocating per row; a series' tag map is built once, at its first point.
    let tag_list: Vec<&String> = tag_keys.iter().collect();
    let converter = RowConverter::new(vec![SortField::new(DataType::Utf8); tag_list.len()])
        .map_err(|e| QueryError::Internal(format!("tag rows: {e}")))?;
    let mut index: HashMap<Box<[u8]>, usize> = HashMap::new();
    let mut series: Vec<InputSeries> = Vec::new();
    for batch in &batches {
        let times = batch
            .column(0)
            .as_any()
            .downcast_ref::<TimestampNanosecondArray>()
            .ok_or_else(|| QueryError::Internal("time column is not a timestamp".into()))?;
        let tag_columns: Vec<ArrayRef> = (0..tag_list.len())
            .map(|i| to_strings(batch.column(1 + i)).map(|a| Arc::new(a) as ArrayRef))
            .collect::<Result<_>>()?;
        let keys = converter
            .convert_columns(&tag_columns)
            .map_err(|e| QueryError::Internal(format!("tag rows: {e}")))?;
        let field_columns: Vec<&ArrayRef> = (0..fields.len())
            .map(|i| batch.column(1 + tag_list.len() + i))
            .collect();
        for row in 0..batch.num_rows() {
            let key = keys.row(row);
            let at = match index.get(key.as_ref()) {
                Some(&at) => at,
                None => {
                    let tags = tag_list
                        .iter()
                        .zip(&tag_columns)
                        .filter(|(_, c)| c.is_valid(row))
                        .map(|(k, c)| ((*k).clone(), c.as_string::<i32>().value(row).to_string()))
                        .collect();
                    series.push(InputSeries {
                        tags,
                        points: Vec::new(),
                    });
                    index.insert(key.as_ref().into(), series.len() - 1);
                    series.len() - 1
                }
            };
            let values = field_columns
                .iter()
                .map(|c| cell(c, row))
                .collect::<Result<Vec<_>>>()?;
            series[at].points.push(Point {
                time: times.value(row),
                values,
            });
        }
    }
    series.sort_by(|a, b| a.tags.cmp(&b.tags));
    Ok(Source {
        name: table.name.clone(),
        fields,
        tag_keys,
        series,
    })
}

/// `df` cut to the points `limit` keeps: of the points with at least one of `fields`, those
/// ranked within `limit.rows` by time in their group (ties share a rank).
fn limited(
    df: DataFrame,
    limit: &ScanLimit,
    tag_keys: &BTreeSet<String>,
    fields: &[(String, Option<FieldType>)],
) -> datafusion::error::Result<DataFrame> {
    let column = |name: &str| DfExpr::Column(Column::from_name(name));
    let Some(has_field) = fields
        .iter()
        .map(|(f, _)| column(f).is_not_null())
        .reduce(DfExpr::or)
    else {
        // No field read: no point is a row.
        return df.limit(0, Some(0));
    };
    // A GROUP BY tag this measurement lacks is the empty value for every point.
    let partition: Vec<DfExpr> = limit
        .group_tags
        .iter()
        .filter(|t| tag_keys.contains(*t))
        .map(|t| column(t))
        .collect();
    let rank = rank()
        .partition_by(partition)
        .order_by(vec![SortExpr::new(
            column("time"),
            !limit.descending,
            false,
        )])
        .build()?
        .alias(RANK_COLUMN);
    df.filter(has_field)?
        .window(vec![rank])?
        .filter(column(RANK_COLUMN).lt_eq(lit(limit.rows as u64)))
}

/// `table` in `ctx`, and the conditions bounding its `time` to `[min, max]` (ns, inclusive).
async fn table_between(
    ctx: &SessionContext,
    table: &TableSchema,
    min: Option<i64>,
    max: Option<i64>,
) -> Result<(DataFrame, Vec<DfExpr>)> {
    let df = ctx
        .table(TableReference::bare(table.name.as_str()))
        .await
        .map_err(|e| QueryError::from_datafusion(e, Stage::Planning))?;
    let time = || DfExpr::Column(Column::from_name("time"));
    let at = |t: i64| lit(ScalarValue::TimestampNanosecond(Some(t), None));
    let mut conditions = Vec::new();
    conditions.extend(min.map(|t| time().gt_eq(at(t))));
    conditions.extend(max.map(|t| time().lt_eq(at(t))));
    Ok((df, conditions))
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

/// An aggregate DataFusion computes for InfluxQL (see `select.rs`'s pushdown).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushFunc {
    Count,
    Sum,
    Mean,
    Min,
    Max,
    First,
    Last,
    Spread,
}

/// A measurement's rows aggregated by DataFusion: filtered, grouped by tags and time bucket.
#[derive(Debug, Clone, Default)]
pub struct AggregateScan {
    /// Inclusive time bounds, ns.
    pub min_time: Option<i64>,
    pub max_time: Option<i64>,
    /// The rest of the `WHERE` clause.
    pub filter: Option<DfExpr>,
    /// Tags to group by (a missing tag is the group `''`).
    pub group_tags: Vec<String>,
    /// `GROUP BY time(interval, offset)`.
    pub interval: Option<(i64, i64)>,
    /// What to compute, over which field.
    pub calls: Vec<(PushFunc, String)>,
}

/// One group's results: its tag values, its bucket's start (0 without an interval) and each
/// call's value with the time of the point a selector chose.
#[derive(Debug, Clone)]
pub struct AggregateRow {
    pub tags: Vec<String>,
    pub bucket: i64,
    pub outputs: Vec<(Value, Option<i64>)>,
}

/// Run `request` over `table` as one DataFusion aggregate: time-bucketed with `date_bin`,
/// selectors through ferrite's `selector_*` functions (which return the chosen point's time).
pub async fn aggregate(
    ctx: &SessionContext,
    runtime: &Arc<RuntimeEnv>,
    table: &TableSchema,
    request: &AggregateScan,
) -> Result<Vec<AggregateRow>> {
    use datafusion::functions_aggregate::expr_fn::{avg, count, max, min, sum};
    let planning = |e| QueryError::from_datafusion(e, Stage::Planning);
    let column = |name: &str| DfExpr::Column(Column::from_name(name));
    let (mut df, mut conditions) =
        table_between(ctx, table, request.min_time, request.max_time).await?;
    conditions.extend(request.filter.clone());
    if let Some(condition) = conditions.into_iter().reduce(DfExpr::and) {
        df = df.filter(condition).map_err(planning)?;
    }
    let mut groups: Vec<DfExpr> = request
        .group_tags
        .iter()
        .map(|t| {
            if table.columns.contains_key(t) {
                column(t).alias(t)
            } else {
                lit(ScalarValue::Utf8(None)).alias(t)
            }
        })
        .collect();
    if let Some((interval, offset)) = request.interval {
        let stride = ScalarValue::IntervalMonthDayNano(Some(
            arrow::datatypes::IntervalMonthDayNano::new(0, 0, interval),
        ));
        let origin = ScalarValue::TimestampNanosecond(Some(offset), None);
        groups.push(
            datafusion::functions::expr_fn::date_bin(lit(stride), column("time"), lit(origin))
                .alias("__bucket"),
        );
    }
    let selector = |name: &str, field: &str| -> Result<DfExpr> {
        let udaf = datafusion::execution::FunctionRegistry::udaf(ctx, name).map_err(planning)?;
        Ok(udaf.call(vec![column(field), column("time")]))
    };
    // Rows per group, so that an aggregate over no rows (one row without GROUP BY) is dropped.
    let mut aggregates = vec![count(column("time")).alias("__rows")];
    for (i, (func, field)) in request.calls.iter().enumerate() {
        let f = column(field);
        let name = format!("__c{i}");
        match func {
            PushFunc::Count => aggregates.push(count(f).alias(name)),
            PushFunc::Sum => aggregates.push(sum(f).alias(name)),
            PushFunc::Mean => aggregates.push(avg(f).alias(name)),
            PushFunc::Min => aggregates.push(selector("selector_min", field)?.alias(name)),
            PushFunc::Max => aggregates.push(selector("selector_max", field)?.alias(name)),
            PushFunc::First => aggregates.push(selector("selector_first", field)?.alias(name)),
            PushFunc::Last => aggregates.push(selector("selector_last", field)?.alias(name)),
            PushFunc::Spread => {
                aggregates.push(min(f.clone()).alias(format!("{name}_min")));
                aggregates.push(max(f).alias(format!("{name}_max")));
            }
        }
    }
    df = df.aggregate(groups, aggregates).map_err(planning)?;
    let batches = collect(df, runtime).await?;

    let mut out = Vec::new();
    for batch in &batches {
        let tags: Vec<StringArray> = (0..request.group_tags.len())
            .map(|i| to_strings(batch.column(i)))
            .collect::<Result<_>>()?;
        let mut at = request.group_tags.len();
        let buckets = match request.interval {
            Some(_) => {
                let column = batch.column(at);
                at += 1;
                Some(
                    column
                        .as_any()
                        .downcast_ref::<TimestampNanosecondArray>()
                        .cloned()
                        .ok_or_else(|| {
                            QueryError::Internal("date_bin is not a timestamp".into())
                        })?,
                )
            }
            None => None,
        };
        let rows = batch
            .column(at)
            .as_any()
            .downcast_ref::<Int64Array>()
            .cloned()
            .ok_or_else(|| QueryError::Internal("count is not an integer".into()))?;
        at += 1;
        for row in 0..batch.num_rows() {
            if rows.value(row) == 0 {
                continue;
            }
            let mut next = at;
            let mut outputs = Vec::with_capacity(request.calls.len());
            for (func, _) in &request.calls {
                let array = batch.column(next);
                next += 1;
                outputs.push(match func {
                    PushFunc::Min | PushFunc::Max | PushFunc::First | PushFunc::Last => {
                        selected(array, row)?
                    }
                    PushFunc::Spread => {
                        let high = batch.column(next);
                        next += 1;
                        (spread(&cell(array, row)?, &cell(high, row)?), None)
                    }
                    _ => (cell(array, row)?, None),
                });
            }
            out.push(AggregateRow {
                tags: tags
                    .iter()
                    .map(|t| {
                        if t.is_null(row) {
                            String::new()
                        } else {
                            t.value(row).to_string()
                        }
                    })
                    .collect(),
                bucket: buckets.as_ref().map_or(0, |b| b.value(row)),
                outputs,
            });
        }
    }
    Ok(out)
}

/// A selector's `{value, time}` at `row`.
fn selected(array: &ArrayRef, row: usize) -> Result<(Value, Option<i64>)> {
    let structs = array
        .as_any()
        .downcast_ref::<arrow::array::StructArray>()
        .ok_or_else(|| QueryError::Internal("selector result is not a struct".into()))?;
    if structs.is_null(row) {
        return Ok((Value::Null, None));
    }
    let value = cell(structs.column(0), row)?;
    let time = structs
        .column(1)
        .as_any()
        .downcast_ref::<TimestampNanosecondArray>()
        .filter(|t| !t.is_null(row))
        .map(|t| t.value(row));
    Ok((value, time))
}

/// `max - min`, keeping integers integers.
fn spread(min: &Value, max: &Value) -> Value {
    match (min, max) {
        (Value::Integer(a), Value::Integer(b)) => Value::Integer(b.wrapping_sub(*a)),
        (Value::Unsigned(a), Value::Unsigned(b)) => Value::Unsigned(b.wrapping_sub(*a)),
        (a, b) => match (a.as_f64(), b.as_f64()) {
            (Some(a), Some(b)) => Value::Float(b - a),
            _ => Value::Null,
        },
    }
}
