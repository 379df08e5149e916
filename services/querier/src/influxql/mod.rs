//! InfluxQL over the same data as SQL.
//!
//! ```text
//!  QueryEngine::influxql(db, "stmt; stmt…", params)
//!    parse (ferrite-influxql)                 ◄── a syntax error fails the request (400)
//!    bind $params ─► for each statement, in order; the first failing one ends the list:
//!      SELECT        select.rs: DataFusion scan of each measurement (dedup, pruning,
//!                    unpersisted rows) ─► series per tag set, buckets, fill, functions
//!      SHOW …        meta.rs: from the catalog schema, tag values from scans
//!      CREATE DATABASE
//!  ─► Vec<StatementResult>: series {name, tags, columns, values} or an error, per statement
//! ```
//!
//! The results are rendered by the wire: the 1.x JSON and CSV of `/query` (`http.rs`), or
//! Arrow batches (`iox::measurement`, `time`, tags, values) for `/api/v3/query_influxql` and
//! Flight tickets with `"query_type": "influxql"` ([`to_batches`]).

mod eval;
mod functions;
pub(crate) mod http;
mod meta;
mod select;
mod source;
mod value;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, Int64Builder, StringBuilder,
    TimestampNanosecondBuilder, UInt64Builder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use datafusion::common::ScalarValue;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::prelude::SessionContext;
use ferrite_auth::Caller;
use ferrite_influxql::{Expr, Literal, SelectStatement, Source as AstSource, Statement};
use ferrite_model::DatabaseSchema;
use futures::future::BoxFuture;

pub use value::Value;

use crate::engine::QueryEngine;
use crate::error::QueryError;
use crate::params::QueryParams;
use crate::query_log::Protocol;

/// One result series.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Measurement name (empty for `SHOW SERIES` and `SHOW RETENTION POLICIES`).
    pub name: String,
    /// The GROUP BY tag values.
    pub tags: BTreeMap<String, String>,
    /// Column names; `time` first when the rows have times.
    pub columns: Vec<String>,
    /// Rows.
    pub values: Vec<Vec<Value>>,
    /// The statement's `tz()`: RFC3339 times are printed with its offset.
    pub timezone: Option<chrono_tz::Tz>,
}

/// The outcome of one statement.
#[derive(Debug, Clone, PartialEq)]
pub struct StatementResult {
    /// Its position in the request, from 0.
    pub statement_id: usize,
    /// Its series, or the error that ended it.
    pub outcome: std::result::Result<Vec<Series>, String>,
}

/// A statement's failure: the client's (reported in its result) or the engine's (fails the
/// request).
#[derive(Debug)]
pub(crate) enum Error {
    /// Shown as the statement's `error`.
    Query(String),
    /// The request fails with this error's status.
    Engine(QueryError),
}

impl Error {
    pub(crate) fn query(message: impl Into<String>) -> Self {
        Self::Query(message.into())
    }
}

impl From<QueryError> for Error {
    fn from(e: QueryError) -> Self {
        match e {
            QueryError::DatabaseNotFound(db) => Self::Query(format!("database not found: {db}")),
            QueryError::Plan(e) => Self::Query(e.to_string()),
            other => Self::Engine(other),
        }
    }
}

pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;

/// An InfluxQL request as [`QueryEngine::influxql`] takes it.
#[derive(Debug, Clone)]
pub struct InfluxqlRequest<'a> {
    /// Who asks.
    pub caller: &'a Caller,
    /// The `db` parameter (statements may name their own).
    pub database: Option<&'a str>,
    /// The `rp` parameter: a policy other than `autogen` / `default` names the database
    /// `db/rp`, as writes do.
    pub retention_policy: Option<&'a str>,
    /// The statements.
    pub query: &'a str,
    /// Values of `$name` bind parameters.
    pub params: QueryParams,
}

impl QueryEngine {
    /// Run every statement of `request`, in order; after one fails the rest are "not
    /// executed" (as in InfluxDB 1.x). A query that does not parse, a permission refusal or an engine
    /// failure fails the whole request.
    pub async fn influxql(
        &self,
        request: InfluxqlRequest<'_>,
    ) -> std::result::Result<Vec<StatementResult>, QueryError> {
        let tracker = self.query_log().start(
            Protocol::InfluxQl,
            request.database.unwrap_or(""),
            request.query,
            Arc::clone(&self.runtime_env().memory_pool),
        );
        // The query's operators and the rows it holds draw on its own pool (counted in the
        // query log) on the way to the engine's.
        let runtime = Arc::new(RuntimeEnv {
            memory_pool: tracker.memory_pool(),
            ..(**self.runtime_env()).clone()
        });
        let run = async {
            let mut statements = ferrite_influxql::parse_statements(request.query)
                .map_err(|e| QueryError::InvalidRequest(format!("error parsing query: {e}")))?;
            for statement in &mut statements {
                bind(statement, &request.params)?;
                check_time_zones(statement)?;
                check_regexes(statement)?;
            }
            let _slot = self.slot().await?;
            let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX);
            let mut results = Vec::with_capacity(statements.len());
            let mut failed = false;
            for (id, statement) in statements.iter().enumerate() {
                // After a failure the rest are reported, not run.
                let outcome = if failed {
                    Err("not executed".to_string())
                } else {
                    match self.statement(&request, statement, now, &runtime).await {
                        Ok(series) => Ok(series),
                        Err(Error::Query(message)) => Err(message),
                        Err(Error::Engine(e)) => return Err(e),
                    }
                };
                failed |= outcome.is_err();
                results.push(StatementResult {
                    statement_id: id,
                    outcome,
                });
            }
            Ok(results)
        };
        let span = tracker.span().clone();
        let run = tracing::Instrument::instrument(run, span);
        let result = match self.query_timeout() {
            None => run.await,
            Some(limit) => tokio::time::timeout(limit, run)
                .await
                .unwrap_or(Err(QueryError::Timeout(limit))),
        };
        match &result {
            Ok(results) => {
                let rows: usize = results
                    .iter()
                    .filter_map(|r| r.outcome.as_ref().ok())
                    .flatten()
                    .map(|s| s.values.len())
                    .sum();
                tracker.add_rows(rows);
                tracker.finish();
            }
            Err(e) => tracker.fail(e),
        }
        result
    }

    async fn statement(
        &self,
        request: &InfluxqlRequest<'_>,
        statement: &Statement,
        now: i64,
        runtime: &Arc<RuntimeEnv>,
    ) -> Result<Vec<Series>> {
        let reader = |db: String| self.reader(request.caller, db, runtime);
        let database = |named: Option<&String>| -> Result<String> {
            let db = named
                .map(String::as_str)
                .or(request.database)
                .filter(|d| !d.is_empty())
                .ok_or_else(|| Error::query("database name required"))?;
            Ok(with_policy(db, request.retention_policy))
        };
        match statement {
            Statement::Select(select) => {
                let db = match select_database(select) {
                    Some((db, rp)) => with_policy(db, rp.map(String::as_str)),
                    None => database(None)?,
                };
                let reader = reader(db).await?;
                select::select(&reader, select, now).await
            }
            Statement::ShowDatabases => meta::show_databases(self, request.caller).await,
            Statement::CreateDatabase(create) => {
                meta::create_database(self, request.caller, create).await
            }
            Statement::ShowRetentionPolicies(show) => {
                let db = database(show.database.as_ref())?;
                meta::show_retention_policies(self, request.caller, &db).await
            }
            Statement::ShowMeasurements(show) => {
                let db = database(show.database.as_ref())?;
                let reader = reader(db).await?;
                meta::show_measurements(&reader, show, now).await
            }
            Statement::ShowTagKeys(show) => {
                let db = database(show.database.as_ref())?;
                let reader = reader(db).await?;
                meta::show_tag_keys(&reader, show, now).await
            }
            Statement::ShowTagValues(show) => {
                let db = database(show.database.as_ref())?;
                let reader = reader(db).await?;
                meta::show_tag_values(&reader, show, now).await
            }
            Statement::ShowFieldKeys(show) => {
                let db = database(show.database.as_ref())?;
                let reader = reader(db).await?;
                meta::show_field_keys(&reader, show)
            }
            Statement::ShowSeries(show) => {
                let db = database(show.database.as_ref())?;
                let reader = reader(db).await?;
                meta::show_series(&reader, show, now).await
            }
        }
    }

    /// A reader of `database` for `caller`, who must be allowed to read it, whose scans run
    /// on `runtime` and count the rows they hold in its memory pool.
    async fn reader(
        &self,
        caller: &Caller,
        database: String,
        runtime: &Arc<RuntimeEnv>,
    ) -> Result<DbReader> {
        caller
            .require(ferrite_catalog::Action::Read, &database)
            .await
            .map_err(|e| Error::Engine(e.into()))?;
        let (ctx, schema) = self.session_and_schema(&database).await?;
        let memory = MemoryConsumer::new("InfluxQL rows").register(&runtime.memory_pool);
        Ok(DbReader {
            ctx,
            runtime: Arc::clone(runtime),
            schema,
            memory: parking_lot::Mutex::new(memory),
        })
    }
}

/// A `tz()` naming no time zone fails the request as a parse error, as in InfluxDB 1.x.
fn check_time_zones(statement: &Statement) -> std::result::Result<(), QueryError> {
    fn check(select: &SelectStatement) -> std::result::Result<(), QueryError> {
        if let Some(name) = &select.timezone
            && name.parse::<chrono_tz::Tz>().is_err()
        {
            return Err(QueryError::InvalidRequest(format!(
                "error parsing query: unable to find time zone {name}"
            )));
        }
        select.sources.iter().try_for_each(|s| match s {
            AstSource::Subquery(inner) => check(inner),
            AstSource::Measurement(_) => Ok(()),
        })
    }
    match statement {
        Statement::Select(select) => check(select),
        _ => Ok(()),
    }
}

/// A regex that does not compile fails the request as a parse error, as in InfluxDB 1.x.
fn check_regexes(statement: &Statement) -> std::result::Result<(), QueryError> {
    fn regex(source: &str) -> std::result::Result<(), QueryError> {
        regex::Regex::new(source).map(|_| ()).map_err(|e| {
            let reason = e.to_string();
            let reason = reason.lines().last().unwrap_or_default().trim().to_string();
            QueryError::InvalidRequest(format!(
                "error parsing query: error parsing regexp: {reason}: `{source}`"
            ))
        })
    }
    fn expr(e: &Expr) -> std::result::Result<(), QueryError> {
        match e {
            Expr::Literal(Literal::Regex(r)) => regex(r),
            Expr::Call { args, .. } => args.iter().try_for_each(expr),
            Expr::Binary { lhs, rhs, .. } => expr(lhs).and_then(|()| expr(rhs)),
            Expr::Nested(inner) => expr(inner),
            _ => Ok(()),
        }
    }
    fn name(m: &ferrite_influxql::MeasurementName) -> std::result::Result<(), QueryError> {
        match m {
            ferrite_influxql::MeasurementName::Regex(r) => regex(r),
            ferrite_influxql::MeasurementName::Name(_) => Ok(()),
        }
    }
    fn select(s: &SelectStatement) -> std::result::Result<(), QueryError> {
        s.fields.iter().try_for_each(|f| expr(&f.expr))?;
        s.condition.iter().try_for_each(expr)?;
        for d in &s.dimensions {
            if let ferrite_influxql::Dimension::Regex(r) = d {
                regex(r)?;
            }
        }
        s.sources.iter().try_for_each(|source| match source {
            AstSource::Measurement(m) => name(&m.name),
            AstSource::Subquery(inner) => select(inner),
        })
    }
    match statement {
        Statement::Select(s) => select(s),
        Statement::ShowMeasurements(s) => {
            s.with_measurement.iter().try_for_each(name)?;
            s.condition.iter().try_for_each(expr)
        }
        Statement::ShowTagKeys(s) => s.condition.iter().try_for_each(expr),
        Statement::ShowTagValues(s) => {
            if let ferrite_influxql::ShowTagValuesKey::EqRegex(r)
            | ferrite_influxql::ShowTagValuesKey::NotEqRegex(r) = &s.key
            {
                regex(r)?;
            }
            s.condition.iter().try_for_each(expr)
        }
        Statement::ShowSeries(s) => s.condition.iter().try_for_each(expr),
        _ => Ok(()),
    }
}

/// The database (and policy) the first qualified measurement of `select` names
/// (`db.rp.m`), if any.
fn select_database(select: &SelectStatement) -> Option<(&str, Option<&String>)> {
    select.sources.iter().find_map(|s| match s {
        AstSource::Measurement(m) => m
            .database
            .as_deref()
            .map(|db| (db, m.retention_policy.as_ref())),
        AstSource::Subquery(inner) => select_database(inner),
    })
}

/// The database holding `db`'s retention policy `rp`: `db` itself for the default policy,
/// else `db/rp` (as v1 writes name it).
fn with_policy(db: &str, rp: Option<&str>) -> String {
    match rp {
        None | Some("" | "autogen" | "default") => db.to_string(),
        Some(rp) => format!("{db}/{rp}"),
    }
}

/// Reads one database's measurements for `SELECT` and `SHOW`.
pub(crate) struct DbReader {
    ctx: SessionContext,
    /// The query's runtime, whose memory pool its plans draw on.
    runtime: Arc<RuntimeEnv>,
    schema: DatabaseSchema,
    /// The rows its scans hold.
    memory: parking_lot::Mutex<MemoryReservation>,
}

impl select::Reader for DbReader {
    fn measurements(&self) -> Vec<String> {
        self.schema.tables.keys().cloned().collect()
    }

    fn scan<'a>(
        &'a self,
        name: &'a str,
        scan: source::Scan,
    ) -> BoxFuture<'a, Result<Option<source::Source>>> {
        Box::pin(async move {
            let Some(table) = self.schema.tables.get(name) else {
                return Ok(None);
            };
            Ok(Some(
                source::scan(&self.ctx, &self.runtime, table, &scan, &self.memory).await?,
            ))
        })
    }

    fn aggregate<'a>(
        &'a self,
        name: &'a str,
        request: source::AggregateScan,
    ) -> BoxFuture<'a, Result<Option<Vec<source::AggregateRow>>>> {
        Box::pin(async move {
            let Some(table) = self.schema.tables.get(name) else {
                return Ok(None);
            };
            Ok(Some(
                source::aggregate(&self.ctx, &self.runtime, table, &request).await?,
            ))
        })
    }

    fn shell(&self, name: &str) -> Option<source::Source> {
        let table = self.schema.tables.get(name)?;
        let mut shell = source::Source {
            name: name.to_string(),
            fields: Vec::new(),
            tag_keys: BTreeSet::new(),
            series: Vec::new(),
        };
        for (column, (_, kind)) in &table.columns {
            if *kind == ferrite_model::ColumnType::Tag {
                shell.tag_keys.insert(column.clone());
            } else if let Some(t) = source::field_type(*kind) {
                shell.fields.push((column.clone(), Some(t)));
            }
        }
        Some(shell)
    }
}

/// Substitute `$name` bind parameters with the request's `params`.
fn bind(statement: &mut Statement, params: &QueryParams) -> std::result::Result<(), QueryError> {
    fn expr(e: &mut Expr, params: &QueryParams) -> std::result::Result<(), QueryError> {
        match e {
            Expr::BindParam(name) => {
                let value = params.get(name).ok_or_else(|| {
                    QueryError::InvalidParams(format!("missing parameter: {name}"))
                })?;
                *e = Expr::Literal(match value {
                    ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) => {
                        Literal::String(s.clone())
                    }
                    ScalarValue::Boolean(Some(b)) => Literal::Boolean(*b),
                    ScalarValue::Int64(Some(i)) => Literal::Integer(*i),
                    ScalarValue::UInt64(Some(u)) => Literal::Unsigned(*u),
                    ScalarValue::Float64(Some(f)) => Literal::Float(*f),
                    other => {
                        return Err(QueryError::InvalidParams(format!(
                            "parameter {name}: unsupported value {other}"
                        )));
                    }
                });
                Ok(())
            }
            Expr::Call { args, .. } => args.iter_mut().try_for_each(|a| expr(a, params)),
            Expr::Binary { lhs, rhs, .. } => {
                expr(lhs, params)?;
                expr(rhs, params)
            }
            Expr::Nested(inner) => expr(inner, params),
            _ => Ok(()),
        }
    }
    fn select(
        s: &mut SelectStatement,
        params: &QueryParams,
    ) -> std::result::Result<(), QueryError> {
        for f in &mut s.fields {
            expr(&mut f.expr, params)?;
        }
        if let Some(c) = &mut s.condition {
            expr(c, params)?;
        }
        for source in &mut s.sources {
            if let AstSource::Subquery(inner) = source {
                select(inner, params)?;
            }
        }
        Ok(())
    }
    let condition = match statement {
        Statement::Select(s) => return select(s, params),
        Statement::ShowMeasurements(s) => &mut s.condition,
        Statement::ShowTagKeys(s) => &mut s.condition,
        Statement::ShowTagValues(s) => &mut s.condition,
        Statement::ShowSeries(s) => &mut s.condition,
        _ => return Ok(()),
    };
    if let Some(c) = condition {
        expr(c, params)?;
    }
    Ok(())
}

/// Series as Arrow batches, one per series, in InfluxDB 3's shape: `iox::measurement`,
/// `time` (when the rows have times), the series' tags, then its value columns.
pub fn to_batches(
    series: &[Series],
) -> std::result::Result<(SchemaRef, Vec<RecordBatch>), QueryError> {
    // The columns of every series together, with one type each (from the first value).
    let mut tag_keys: Vec<String> = Vec::new();
    let mut value_columns: Vec<(String, DataType)> = Vec::new();
    let mut has_time = false;
    for s in series {
        for k in s.tags.keys() {
            if !tag_keys.contains(k) {
                tag_keys.push(k.clone());
            }
        }
        for (i, c) in s.columns.iter().enumerate() {
            if i == 0 && c == "time" {
                has_time = true;
                continue;
            }
            let kind = s
                .values
                .iter()
                .map(|r| &r[i])
                .find(|v| !v.is_null())
                .map(arrow_type);
            match value_columns.iter_mut().find(|(n, _)| n == c) {
                Some((_, t)) if *t == DataType::Null => {
                    if let Some(k) = kind {
                        *t = k;
                    }
                }
                Some(_) => {}
                None => value_columns.push((c.clone(), kind.unwrap_or(DataType::Null))),
            }
        }
    }
    tag_keys.sort();
    let mut fields = vec![Field::new("iox::measurement", DataType::Utf8, false)];
    if has_time {
        fields.push(Field::new(
            "time",
            DataType::Timestamp(TimeUnit::Nanosecond, None),
            false,
        ));
    }
    fields.extend(tag_keys.iter().map(|k| Field::new(k, DataType::Utf8, true)));
    fields.extend(value_columns.iter().map(|(n, t)| {
        let t = if *t == DataType::Null {
            DataType::Utf8
        } else {
            t.clone()
        };
        Field::new(n, t, true)
    }));
    let schema: SchemaRef = Arc::new(Schema::new(fields));
    let mut batches = Vec::new();
    for s in series {
        let n = s.values.len();
        let index = |name: &str| s.columns.iter().position(|c| c == name);
        let mut columns: Vec<ArrayRef> = Vec::new();
        let mut measurement = StringBuilder::new();
        (0..n).for_each(|_| measurement.append_value(&s.name));
        columns.push(Arc::new(measurement.finish()));
        if has_time {
            let mut times = TimestampNanosecondBuilder::new();
            for row in &s.values {
                times.append_value(match row.first() {
                    Some(Value::Time(t)) => *t,
                    _ => 0,
                });
            }
            columns.push(Arc::new(times.finish()));
        }
        for k in &tag_keys {
            let mut b = StringBuilder::new();
            (0..n).for_each(|_| b.append_option(s.tags.get(k)));
            columns.push(Arc::new(b.finish()));
        }
        for field in schema
            .fields()
            .iter()
            .skip(1 + usize::from(has_time) + tag_keys.len())
        {
            let at = index(field.name());
            let cells: Vec<&Value> = s
                .values
                .iter()
                .map(|r| at.map_or(&Value::Null, |a| &r[a]))
                .collect();
            columns.push(build(field.data_type(), &cells));
        }
        batches.push(
            RecordBatch::try_new(Arc::clone(&schema), columns)
                .map_err(|e| QueryError::Internal(format!("influxql result batch: {e}")))?,
        );
    }
    Ok((schema, batches))
}

fn arrow_type(v: &Value) -> DataType {
    match v {
        Value::Float(_) => DataType::Float64,
        Value::Integer(_) => DataType::Int64,
        Value::Unsigned(_) => DataType::UInt64,
        Value::Boolean(_) => DataType::Boolean,
        Value::Time(_) => DataType::Timestamp(TimeUnit::Nanosecond, None),
        Value::String(_) | Value::Null => DataType::Utf8,
    }
}

/// One column of `cells`, converted to `data_type` where they differ.
fn build(data_type: &DataType, cells: &[&Value]) -> ArrayRef {
    match data_type {
        DataType::Float64 => {
            let mut b = Float64Builder::new();
            cells.iter().for_each(|v| b.append_option(v.as_f64()));
            Arc::new(b.finish())
        }
        DataType::Int64 => {
            let mut b = Int64Builder::new();
            cells.iter().for_each(|v| {
                b.append_option(match v {
                    Value::Integer(i) => Some(*i),
                    _ => None,
                })
            });
            Arc::new(b.finish())
        }
        DataType::UInt64 => {
            let mut b = UInt64Builder::new();
            cells.iter().for_each(|v| {
                b.append_option(match v {
                    Value::Unsigned(u) => Some(*u),
                    _ => None,
                })
            });
            Arc::new(b.finish())
        }
        DataType::Boolean => {
            let mut b = BooleanBuilder::new();
            cells.iter().for_each(|v| {
                b.append_option(match v {
                    Value::Boolean(x) => Some(*x),
                    _ => None,
                })
            });
            Arc::new(b.finish())
        }
        DataType::Timestamp(..) => {
            let mut b = TimestampNanosecondBuilder::new();
            cells.iter().for_each(|v| {
                b.append_option(match v {
                    Value::Time(t) => Some(*t),
                    _ => None,
                })
            });
            Arc::new(b.finish())
        }
        _ => {
            let mut b = StringBuilder::new();
            cells.iter().for_each(|v| {
                b.append_option(match v {
                    Value::String(s) => Some(s.clone()),
                    Value::Null => None,
                    other => Some(format!("{other:?}")),
                })
            });
            Arc::new(b.finish())
        }
    }
}
