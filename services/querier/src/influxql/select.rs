//! `SELECT`: InfluxQL's series semantics over the points DataFusion reads.
//!
//! ```text
//!  sources (measurements, regexes, subqueries)        one at a time, in name order
//!    └─ expand projections (*, /re/, mean(*))       ─► Proj trees over calls and fields
//!    └─ scan: time bounds + tag equalities pushed to DataFusion; the rest of WHERE per point
//!    └─ group points by the GROUP BY tags            ─► one output series per tag set
//!         raw:        a row per point (or per transformed point)
//!         aggregate:  a row per time bucket: calls, fill, then transformations
//!    └─ ORDER BY time, LIMIT/OFFSET per series; SLIMIT/SOFFSET over series
//! ```

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Offset, TimeZone};
use ferrite_influxql::{
    BinaryOp, Dimension, Expr, Fill, Literal, MeasurementName, SelectStatement, SortOrder,
    Source as AstSource, WildcardType,
};

use super::eval::{self, MathFn, PointRef, Scalar, TimeRange};
use super::functions::{Call, CallOutput, Func, Transform};
use super::source::{AggregateRow, AggregateScan, InputSeries, Point, Scan, ScanLimit, Source};
use super::value::{FieldType, Value};
use super::{Error, Result, Series};

/// What a `SELECT` runs against.
pub trait Reader: Sync {
    /// The measurement names of the database.
    fn measurements(&self) -> Vec<String>;
    /// Read measurement `name` (`None` if it does not exist).
    fn scan<'a>(
        &'a self,
        name: &'a str,
        scan: Scan,
    ) -> futures::future::BoxFuture<'a, Result<Option<Source>>>;
    /// Aggregate measurement `name` in DataFusion (`None` if it does not exist).
    fn aggregate<'a>(
        &'a self,
        name: &'a str,
        request: AggregateScan,
    ) -> futures::future::BoxFuture<'a, Result<Option<Vec<AggregateRow>>>>;
    /// Measurement `name`'s fields (with their types) and tags, without rows.
    fn shell(&self, name: &str) -> Option<Source>;
}

/// The numeric field columns of a source (a subquery's: those holding numbers).
fn numeric_columns(source: &Source) -> BTreeSet<String> {
    source
        .fields
        .iter()
        .enumerate()
        .filter(|(i, (_, kind))| match kind {
            Some(t) => matches!(
                t,
                FieldType::Float | FieldType::Integer | FieldType::Unsigned
            ),
            // A subquery's column: the type of its values.
            None => source
                .series
                .iter()
                .flat_map(|s| s.points.iter())
                .map(|p| &p.values[*i])
                .find(|v| !v.is_null())
                .is_some_and(Value::is_numeric),
        })
        .map(|(_, (n, _))| n.clone())
        .collect()
}

/// Run `stmt`; `now` is its `now()`.
pub fn select<'a>(
    reader: &'a dyn Reader,
    stmt: &'a SelectStatement,
    now: i64,
) -> futures::future::BoxFuture<'a, Result<Vec<Series>>> {
    Box::pin(async move {
        let (range, condition) = match &stmt.condition {
            Some(c) => {
                let (range, rest) = eval::split_time(c, now)?;
                (range, rest)
            }
            None => (TimeRange::default(), None),
        };
        let tz = stmt
            .timezone
            .as_deref()
            .map(|name| {
                name.parse::<chrono_tz::Tz>()
                    .map_err(|_| Error::query(format!("unable to find time zone {name}")))
            })
            .transpose()?;
        // Every measurement of the statement shares one column list (InfluxDB's union of
        // their fields and tags): a measurement lacking a column has nulls there.
        let mut names: BTreeSet<String> = BTreeSet::new();
        for source in &stmt.sources {
            if let AstSource::Measurement(m) = source {
                match &m.name {
                    MeasurementName::Name(n) => {
                        names.insert(n.clone());
                    }
                    MeasurementName::Regex(re) => {
                        let re = eval::compile_regex(re)?;
                        names.extend(reader.measurements().into_iter().filter(|n| re.is_match(n)));
                    }
                }
            }
        }
        let mut fields: Vec<String> = Vec::new();
        let mut numeric = BTreeSet::new();
        let mut tags = BTreeSet::new();
        let mut present = Vec::new();
        for name in &names {
            let Some(shell) = reader.shell(name) else {
                continue;
            };
            for (field, _) in &shell.fields {
                if !fields.contains(field) {
                    fields.push(field.clone());
                }
            }
            numeric.extend(numeric_columns(&shell));
            tags.extend(shell.tag_keys);
            present.push(name.clone());
        }
        fields.sort();
        let mut out = Vec::new();
        if !present.is_empty() {
            let plan = Plan::new(stmt, &fields, &numeric, &tags, range, tz)?;
            for name in present {
                if let Some(series) = plan
                    .pushdown(reader, &name, condition.as_ref(), now)
                    .await?
                {
                    out.extend(series);
                    continue;
                }
                let scan = Scan {
                    fields: plan.needed_fields(condition.as_ref(), &fields),
                    min_time: range.min,
                    max_time: range.max,
                    tag_equals: condition
                        .as_ref()
                        .map(|c| eval::tag_equalities(c, &tags))
                        .unwrap_or_default(),
                    // The whole condition, when it has a DataFusion form: fewer rows read
                    // (it is still checked per point, which changes nothing then).
                    filter: condition.as_ref().and_then(|c| {
                        reader
                            .shell(&name)
                            .and_then(|shell| eval::to_datafusion(c, &shell))
                    }),
                    limit: plan.scan_limit(condition.as_ref()),
                };
                let Some(source) = reader.scan(&name, scan).await? else {
                    continue;
                };
                out.extend(plan.run(&source, condition.as_ref(), now)?);
            }
        }
        for source in &stmt.sources {
            let AstSource::Subquery(inner) = source else {
                continue;
            };
            // The outer query's GROUP BY tags group the inner query too.
            let mut inner = inner.as_ref().clone();
            for dim in &stmt.dimensions {
                if !matches!(dim, Dimension::Time { .. }) && !inner.dimensions.contains(dim) {
                    inner.dimensions.push(dim.clone());
                }
            }
            let inner_series = select(reader, &inner, now).await?;
            for source in sources_of(inner_series) {
                let fields: Vec<String> = source.fields.iter().map(|(n, _)| n.clone()).collect();
                let numeric = numeric_columns(&source);
                let plan = Plan::new(stmt, &fields, &numeric, &source.tag_keys, range, tz)?;
                let mut source = source;
                // The outer time range applies to the inner rows too.
                for series in &mut source.series {
                    series.points.retain(|p| {
                        range.min.is_none_or(|m| p.time >= m)
                            && range.max.is_none_or(|m| p.time <= m)
                    });
                }
                out.extend(plan.run(&source, condition.as_ref(), now)?);
            }
        }
        if stmt.order_by == Some(SortOrder::Descending) {
            // Descending time order lists the series in reverse too.
            out.reverse();
        }
        let offset = stmt.series_offset.unwrap_or(0) as usize;
        let mut out: Vec<Series> = out.into_iter().skip(offset).collect();
        if let Some(limit) = stmt.series_limit {
            out.truncate(limit as usize);
        }
        Ok(out)
    })
}

/// A subquery's series as sources, one per measurement name.
fn sources_of(series: Vec<Series>) -> Vec<Source> {
    let mut by_name: BTreeMap<String, Source> = BTreeMap::new();
    for s in series {
        let source = by_name.entry(s.name.clone()).or_insert_with(|| Source {
            name: s.name.clone(),
            fields: Vec::new(),
            tag_keys: BTreeSet::new(),
            series: Vec::new(),
        });
        source.tag_keys.extend(s.tags.keys().cloned());
        let indexes: Vec<usize> = s
            .columns
            .iter()
            .skip(1)
            .map(|c| match source.field_index(c) {
                Some(i) => i,
                None => {
                    source.fields.push((c.clone(), None));
                    source.fields.len() - 1
                }
            })
            .collect();
        let width = source.fields.len();
        let points = s
            .values
            .into_iter()
            .map(|row| {
                let time = match row.first() {
                    Some(Value::Time(t)) => *t,
                    _ => 0,
                };
                let mut values = vec![Value::Null; width];
                for (v, i) in row.into_iter().skip(1).zip(&indexes) {
                    values[*i] = v;
                }
                Point { time, values }
            })
            .collect();
        source.series.push(InputSeries {
            tags: s.tags,
            points,
        });
    }
    // Earlier series were built before later columns were known: pad them.
    let mut sources: Vec<Source> = by_name.into_values().collect();
    for source in &mut sources {
        let width = source.fields.len();
        for series in &mut source.series {
            for p in &mut series.points {
                p.values.resize(width, Value::Null);
            }
        }
    }
    sources
}

/// An output series' GROUP BY tag values, by key.
type GroupKey = Vec<(String, String)>;

/// A projection compiled against one source.
#[derive(Debug, Clone)]
enum Proj {
    /// A per-point value (raw queries, or the fields beside a selector).
    Scalar(Scalar),
    /// The result of call `i` of the plan.
    Call(usize),
    /// A constant.
    Lit(Value),
    Binary(Box<Proj>, BinaryOp, Box<Proj>),
    Math(MathFn, Vec<Proj>),
    /// A transformation over the series of its argument's values.
    Transform(Transform, Box<Proj>),
}

/// A `SELECT` planned for one source's columns.
struct Plan<'s> {
    stmt: &'s SelectStatement,
    /// Output column names (after `time`) and their expressions (unexpanded, uncompiled).
    columns: Vec<(String, Expr)>,
    /// The GROUP BY tag keys, sorted.
    group_tags: Vec<String>,
    /// `GROUP BY time(interval, offset)`.
    interval: Option<(i64, i64)>,
    range: TimeRange,
    tz: Option<chrono_tz::Tz>,
}

impl<'s> Plan<'s> {
    fn new(
        stmt: &'s SelectStatement,
        fields: &[String],
        numeric: &BTreeSet<String>,
        tags: &BTreeSet<String>,
        range: TimeRange,
        tz: Option<chrono_tz::Tz>,
    ) -> Result<Self> {
        let mut group_tags = BTreeSet::new();
        let mut interval = None;
        for dim in &stmt.dimensions {
            match dim {
                Dimension::Time {
                    interval: i,
                    offset,
                } => {
                    if *i <= 0 {
                        return Err(Error::query("time dimension must have a positive duration"));
                    }
                    interval = Some((*i, offset.unwrap_or(0)));
                }
                Dimension::Tag(t) => {
                    group_tags.insert(t.clone());
                }
                Dimension::Regex(re) => {
                    let re = eval::compile_regex(re)?;
                    group_tags.extend(tags.iter().filter(|t| re.is_match(t)).cloned());
                }
                Dimension::Wildcard => group_tags.extend(tags.iter().cloned()),
            }
        }
        let columns = expand(stmt, fields, numeric, tags, &group_tags)?;
        Ok(Self {
            stmt,
            columns,
            group_tags: group_tags.into_iter().collect(),
            interval,
            range,
            tz,
        })
    }

    /// The fields the projections and the condition read (`None`: all).
    fn needed_fields(
        &self,
        condition: Option<&Expr>,
        fields: &[String],
    ) -> Option<BTreeSet<String>> {
        let mut names = BTreeSet::new();
        for (_, e) in &self.columns {
            refs(e, &mut names);
        }
        if let Some(c) = condition {
            refs(c, &mut names);
        }
        Some(
            fields
                .iter()
                .filter(|f| names.contains(*f))
                .cloned()
                .collect(),
        )
    }

    /// What a raw query's `LIMIT` lets the scan leave out: every column a plain field or tag
    /// (no function, operator or cast), no condition beyond the time range, a `LIMIT`, no
    /// `GROUP BY time`. Then each group's output is its first (or, descending, last)
    /// `OFFSET` + `LIMIT` points that carry a selected field, whatever the other points
    /// are. InfluxQL's `lastpoint` (`SELECT * … GROUP BY hostname ORDER BY time DESC
    /// LIMIT 1`) reads 100 points instead of every one.
    fn scan_limit(&self, condition: Option<&Expr>) -> Option<ScanLimit> {
        let limit = self.stmt.limit?;
        let plain = self.columns.iter().all(|(_, e)| {
            matches!(
                strip(e),
                Expr::VarRef {
                    data_type: None,
                    ..
                }
            )
        });
        (plain && condition.is_none() && self.interval.is_none()).then(|| ScanLimit {
            group_tags: self.group_tags.clone(),
            rows: (self.stmt.offset.unwrap_or(0) as usize).saturating_add(limit as usize),
            descending: self.stmt.order_by == Some(SortOrder::Descending),
        })
    }

    /// Evaluate over `source`'s points.
    fn run(&self, source: &Source, condition: Option<&Expr>, now: i64) -> Result<Vec<Series>> {
        let mut calls: Vec<Call> = Vec::new();
        let projs: Vec<Proj> = self
            .columns
            .iter()
            .map(|(_, e)| compile_proj(e, source, now, &mut calls))
            .collect::<Result<_>>()?;
        let condition = condition
            .map(|c| eval::compile(c, source, now))
            .transpose()?;
        let aggregate = !calls.is_empty();
        if !aggregate && self.interval.is_some() {
            return Err(Error::query(
                "GROUP BY requires at least one aggregate function",
            ));
        }
        if aggregate {
            check_aggregate_mix(&projs, &calls)?;
            if self.interval.is_none()
                && let Some(Proj::Transform(t, _)) =
                    projs.iter().find(|p| matches!(p, Proj::Transform(..)))
            {
                return Err(Error::query(format!(
                    "{} aggregate requires a GROUP BY interval",
                    t.name()
                )));
            }
        } else if !projs.iter().any(reads_field) {
            // Only tags selected: InfluxDB answers with no rows.
            return Ok(Vec::new());
        }

        // Group the source's points by the GROUP BY tags.
        let mut groups: BTreeMap<GroupKey, Vec<(usize, usize)>> = BTreeMap::new();
        for (si, series) in source.series.iter().enumerate() {
            let key: Vec<(String, String)> = self
                .group_tags
                .iter()
                .map(|t| (t.clone(), series.tags.get(t).cloned().unwrap_or_default()))
                .collect();
            let members = groups.entry(key).or_default();
            for (pi, point) in series.points.iter().enumerate() {
                let at = PointRef {
                    time: point.time,
                    tags: &series.tags,
                    values: &point.values,
                };
                if condition.as_ref().is_none_or(|c| c.matches(at)) {
                    members.push((si, pi));
                }
            }
        }
        let column_names: Vec<String> = std::iter::once("time".to_string())
            .chain(self.output_names(&projs, &calls))
            .collect();
        // The first bucket of an aggregate without a lower bound: the earliest point.
        let earliest = groups
            .values()
            .flat_map(|m| m.iter().map(|&(s, p)| source.series[s].points[p].time))
            .min();
        let mut out = Vec::new();
        for (key, mut members) in groups {
            if members.is_empty() {
                continue;
            }
            // Time order; points of one time stay in series order.
            members.sort_by_key(|&(s, p)| (source.series[s].points[p].time, s));
            let points: Vec<PointRef<'_>> = members
                .iter()
                .map(|&(s, p)| {
                    let series = &source.series[s];
                    let point = &series.points[p];
                    PointRef {
                        time: point.time,
                        tags: &series.tags,
                        values: &point.values,
                    }
                })
                .collect();
            let rows = if aggregate {
                self.aggregate_rows(&points, &projs, &calls, earliest, now)?
            } else {
                raw_rows(&points, &projs)?
            };
            out.extend(self.series(&source.name, key, &column_names, rows));
        }
        Ok(out)
    }

    /// One output series of `rows` (ordered, offset and limited), unless none are left.
    fn series(
        &self,
        name: &str,
        key: GroupKey,
        columns: &[String],
        mut rows: Vec<Vec<Value>>,
    ) -> Option<Series> {
        if self.stmt.order_by == Some(SortOrder::Descending) {
            rows.reverse();
        }
        let offset = self.stmt.offset.unwrap_or(0) as usize;
        let mut rows: Vec<Vec<Value>> = rows.into_iter().skip(offset).collect();
        if let Some(limit) = self.stmt.limit {
            rows.truncate(limit as usize);
        }
        (!rows.is_empty()).then(|| Series {
            name: name.to_string(),
            tags: key.into_iter().collect(),
            columns: columns.to_vec(),
            values: rows,
            timezone: self.tz,
        })
    }

    /// Answer an aggregate query over measurement `name` with one DataFusion aggregate, when
    /// every call is one DataFusion computes with InfluxQL's result (count, sum, mean, min,
    /// max, first, last, spread of a field) and the condition has a DataFusion form; `None`
    /// otherwise (the points are then read and aggregated here).
    async fn pushdown(
        &self,
        reader: &dyn Reader,
        name: &str,
        condition: Option<&Expr>,
        now: i64,
    ) -> Result<Option<Vec<Series>>> {
        if self.tz.is_some() {
            return Ok(None);
        }
        let Some(shell) = reader.shell(name) else {
            return Ok(None);
        };
        let mut calls: Vec<Call> = Vec::new();
        let mut projs = Vec::new();
        for (_, e) in &self.columns {
            match compile_proj(e, &shell, now, &mut calls) {
                Ok(p) => projs.push(p),
                // The point-by-point path reports it.
                Err(_) => return Ok(None),
            }
        }
        if calls.is_empty() || !projs.iter().all(only_calls) {
            return Ok(None);
        }
        if self.interval.is_none() && projs.iter().any(has_transform) {
            return Ok(None);
        }
        let mut pushed = Vec::new();
        for call in &calls {
            let Some((func, field)) = call.pushable(&shell) else {
                return Ok(None);
            };
            pushed.push((func, field));
        }
        let filter = match condition {
            None => None,
            Some(c) => match eval::to_datafusion(c, &shell) {
                Some(f) => Some(f),
                None => return Ok(None),
            },
        };
        let request = AggregateScan {
            min_time: self.range.min,
            max_time: self.range.max,
            filter,
            group_tags: self.group_tags.clone(),
            interval: self.interval,
            calls: pushed,
        };
        tracing::debug!(
            measurement = name,
            "InfluxQL aggregate planned in DataFusion"
        );
        let Some(rows) = reader.aggregate(name, request).await? else {
            return Ok(Some(Vec::new()));
        };
        let earliest = rows.iter().map(|r| r.bucket).min();
        let mut groups: BTreeMap<GroupKey, BTreeMap<i64, Vec<CallOutput>>> = BTreeMap::new();
        for row in rows {
            let key: GroupKey = self.group_tags.iter().cloned().zip(row.tags).collect();
            let outputs = row
                .outputs
                .into_iter()
                .map(|(value, time)| CallOutput::One {
                    value,
                    time,
                    point: None,
                })
                .collect();
            groups.entry(key).or_default().insert(row.bucket, outputs);
        }
        let column_names: Vec<String> = std::iter::once("time".to_string())
            .chain(self.output_names(&projs, &calls))
            .collect();
        let mut out = Vec::new();
        for (key, buckets) in groups {
            let rows = self.computed_rows(buckets, &projs, &calls, earliest, now)?;
            out.extend(self.series(name, key, &column_names, rows));
        }
        Ok(Some(out))
    }

    /// The column names after `time`: aliases, else derived from the expression; a name
    /// already taken gets `_1`, `_2`…; `top(x, host, n)` adds a column per tag.
    fn output_names(&self, projs: &[Proj], calls: &[Call]) -> Vec<String> {
        let mut names = Vec::new();
        for ((name, _), proj) in self.columns.iter().zip(projs) {
            names.push(name.clone());
            if let Proj::Call(i) = proj {
                names.extend(calls[*i].tag_args.iter().cloned());
            }
        }
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        names
            .into_iter()
            .map(|n| {
                let count = seen.entry(n.clone()).or_insert(0);
                let out = if *count == 0 {
                    n.clone()
                } else {
                    format!("{n}_{count}")
                };
                *count += 1;
                out
            })
            .collect()
    }

    /// Rows of an aggregate query for one series' points (in time order).
    fn aggregate_rows(
        &self,
        points: &[PointRef<'_>],
        projs: &[Proj],
        calls: &[Call],
        earliest: Option<i64>,
        now: i64,
    ) -> Result<Vec<Vec<Value>>> {
        let fill = self.stmt.fill.unwrap_or(Fill::Null);
        // Buckets: (start, the points in it).
        let mut buckets: Vec<(i64, &[PointRef<'_>])> = Vec::new();
        match self.interval {
            None => {
                let start = self.range.min.unwrap_or(0);
                buckets.push((start, points));
            }
            Some((interval, offset)) if matches!(fill, Fill::None) => {
                let mut at = 0;
                while at < points.len() {
                    let b = self.bucket_start(points[at].time, interval, offset);
                    let end = points[at..]
                        .iter()
                        .position(|p| self.bucket_start(p.time, interval, offset) != b)
                        .map_or(points.len(), |n| at + n);
                    buckets.push((b, &points[at..end]));
                    at = end;
                }
            }
            Some((interval, offset)) => {
                let mut at = 0;
                for start in self.bucket_starts(earliest, now)? {
                    let next = self.next_bucket(start, interval, offset);
                    let end = points[at..]
                        .iter()
                        .position(|p| p.time >= next)
                        .map_or(points.len(), |n| at + n);
                    buckets.push((start, &points[at..end]));
                    at = end;
                }
            }
        }
        let multi_row = calls.len() == 1 && calls[0].func.is_multi_row();
        let mut rows = Vec::new();
        for (start, bucket) in buckets {
            if bucket.is_empty() {
                if self.interval.is_some() {
                    rows.push((self.empty_row(start, projs, calls), true));
                }
                continue;
            }
            let outputs: Vec<CallOutput> = calls.iter().map(|c| c.apply(bucket)).collect();
            if multi_row {
                let picks = match &outputs[0] {
                    CallOutput::Rows(r) => r.clone(),
                    CallOutput::One { .. } => Vec::new(),
                };
                for (time, value, point) in picks {
                    let mut row = vec![Value::Time(if calls[0].func.keeps_point_time() {
                        time
                    } else {
                        start
                    })];
                    for proj in projs {
                        match proj {
                            Proj::Call(_) => {
                                row.push(value.clone());
                                for t in &calls[0].tag_args {
                                    row.push(
                                        point
                                            .and_then(|p| bucket[p].tags.get(t).cloned())
                                            .map_or(Value::Null, Value::String),
                                    );
                                }
                            }
                            other => row.push(eval_bucket(other, &[], point.map(|p| bucket[p]))),
                        }
                    }
                    rows.push((row, false));
                }
                continue;
            }
            let selected = match outputs.first() {
                Some(CallOutput::One { point, .. }) if calls.len() == 1 => point.map(|p| bucket[p]),
                _ => None,
            };
            if let Some(row) = self.bucket_row(start, &outputs, selected, projs, calls) {
                rows.push((row, false));
            }
        }
        self.finish_rows(rows, projs)
    }

    /// Rows of an aggregate query whose calls were computed by DataFusion: `computed` holds
    /// each non-empty bucket's call outputs, by bucket start.
    fn computed_rows(
        &self,
        computed: BTreeMap<i64, Vec<CallOutput>>,
        projs: &[Proj],
        calls: &[Call],
        earliest: Option<i64>,
        now: i64,
    ) -> Result<Vec<Vec<Value>>> {
        let fill = self.stmt.fill.unwrap_or(Fill::Null);
        let mut rows = Vec::new();
        if self.interval.is_none() || matches!(fill, Fill::None) {
            for (start, outputs) in computed {
                let start = if self.interval.is_none() {
                    self.range.min.unwrap_or(0)
                } else {
                    start
                };
                if let Some(row) = self.bucket_row(start, &outputs, None, projs, calls) {
                    rows.push((row, false));
                }
            }
        } else {
            let mut computed = computed;
            for start in self.bucket_starts(earliest, now)? {
                match computed.remove(&start) {
                    Some(outputs) => {
                        if let Some(row) = self.bucket_row(start, &outputs, None, projs, calls) {
                            rows.push((row, false));
                        }
                    }
                    None => rows.push((self.empty_row(start, projs, calls), true)),
                }
            }
        }
        self.finish_rows(rows, projs)
    }

    /// The starts of every `GROUP BY time` bucket of the query's range (from the earliest
    /// point without a lower bound; to now without an upper one).
    fn bucket_starts(&self, earliest: Option<i64>, now: i64) -> Result<Vec<i64>> {
        let Some((interval, offset)) = self.interval else {
            return Ok(Vec::new());
        };
        let lower = self.range.min.or(earliest).unwrap_or(0);
        let upper = self.range.max.unwrap_or(now);
        let mut starts = Vec::new();
        let mut start = self.bucket_start(lower, interval, offset);
        while start <= upper {
            if starts.len() == MAX_BUCKETS {
                return Err(Error::query(format!(
                    "max-select-buckets limit exceeded: more than {MAX_BUCKETS} GROUP BY time \
                     buckets; narrow the time range or widen the interval"
                )));
            }
            starts.push(start);
            start = self.next_bucket(start, interval, offset);
        }
        Ok(starts)
    }

    /// The row of an empty bucket before `fill(previous|linear)`: the fill value, 0 for a
    /// bare `count`, else null.
    fn empty_row(&self, start: i64, projs: &[Proj], calls: &[Call]) -> Vec<Value> {
        let fill = self.stmt.fill.unwrap_or(Fill::Null);
        let mut row = vec![Value::Time(start)];
        for (proj, n) in projs.iter().zip(self.widths(projs, calls)) {
            let v = match &fill {
                Fill::Integer(i) if !has_transform(proj) => Value::Integer(*i),
                Fill::Float(f) if !has_transform(proj) => Value::Float(*f),
                _ if count_only(proj, calls) => Value::Integer(0),
                _ => Value::Null,
            };
            row.extend(std::iter::repeat_n(v, n));
        }
        row
    }

    /// The row of a bucket with points (`None`: a bucket of the whole range whose every
    /// value is null, which InfluxDB leaves out). `selected`: the point a lone selector chose.
    fn bucket_row(
        &self,
        start: i64,
        outputs: &[CallOutput],
        selected: Option<PointRef<'_>>,
        projs: &[Proj],
        calls: &[Call],
    ) -> Option<Vec<Value>> {
        // One selector alone, without GROUP BY time: the row takes the selected point's time.
        let selector_time =
            self.interval.is_none() && calls.len() == 1 && calls[0].func.is_selector();
        let time = match (selector_time, outputs) {
            (true, [CallOutput::One { time: Some(t), .. }]) => *t,
            // InfluxDB reports an integral over the whole range at time zero.
            _ if self.interval.is_none()
                && calls.iter().all(|c| matches!(c.func, Func::Integral(_))) =>
            {
                0
            }
            _ => start,
        };
        let mut row = vec![Value::Time(time)];
        for proj in projs {
            row.push(eval_bucket(proj, outputs, selected));
        }
        if self.interval.is_none() && row[1..].iter().all(Value::is_null) {
            return None;
        }
        Some(row)
    }

    /// `fill(previous|linear)` over the rows (flagged when their bucket was empty), then the
    /// transformations.
    fn finish_rows(
        &self,
        rows: Vec<(Vec<Value>, bool)>,
        projs: &[Proj],
    ) -> Result<Vec<Vec<Value>>> {
        let (mut rows, empty_rows): (Vec<Vec<Value>>, Vec<bool>) = rows.into_iter().unzip();
        match self.stmt.fill.unwrap_or(Fill::Null) {
            Fill::Previous => {
                for i in 1..rows.len() {
                    if empty_rows[i] {
                        for c in 1..rows[i].len() {
                            if rows[i][c].is_null() {
                                rows[i][c] = rows[i - 1][c].clone();
                            }
                        }
                    }
                }
            }
            Fill::Linear => fill_linear(&mut rows, &empty_rows),
            _ => {}
        }
        if projs.iter().any(has_transform) {
            rows = apply_transforms(rows, projs, self.transform_interval())?;
        }
        Ok(rows)
    }

    /// The default unit of `derivative` over buckets: the GROUP BY interval.
    fn transform_interval(&self) -> Option<i64> {
        self.interval.map(|(i, _)| i)
    }

    /// The output columns each projection takes.
    fn widths(&self, projs: &[Proj], calls: &[Call]) -> Vec<usize> {
        projs
            .iter()
            .map(|p| match p {
                Proj::Call(i) => 1 + calls[*i].tag_args.len(),
                _ => 1,
            })
            .collect()
    }

    /// The start of the bucket holding `t` (in the query's time zone).
    fn bucket_start(&self, t: i64, interval: i64, offset: i64) -> i64 {
        let zone_offset = |at: i64| -> i64 {
            self.tz.map_or(0, |tz| {
                let utc = chrono::DateTime::from_timestamp_nanos(at);
                i64::from(
                    tz.offset_from_utc_datetime(&utc.naive_utc())
                        .fix()
                        .local_minus_utc(),
                ) * 1_000_000_000
            })
        };
        let shift = zone_offset(t);
        let local = t + shift;
        let local_start = local - (local - offset).rem_euclid(interval);
        let start = local_start - shift;
        // A zone change between the bucket's start and `t` moves the start by the difference.
        let start_shift = zone_offset(start);
        start + shift - start_shift
    }

    fn next_bucket(&self, start: i64, interval: i64, offset: i64) -> i64 {
        let next = self.bucket_start(start.saturating_add(interval), interval, offset);
        if next > start {
            next
        } else {
            self.bucket_start(
                start.saturating_add(interval + interval / 2),
                interval,
                offset,
            )
        }
    }
}

/// The functions whose `f(*)` / `f(/re/)` expand to the numeric fields only.
const NUMERIC_ONLY: &[&str] = &[
    "mean",
    "median",
    "spread",
    "stddev",
    "sum",
    "integral",
    "percentile",
    "top",
    "bottom",
    "derivative",
    "non_negative_derivative",
    "difference",
    "non_negative_difference",
    "moving_average",
    "cumulative_sum",
    "abs",
    "ceil",
    "floor",
    "round",
    "sqrt",
    "pow",
    "ln",
    "log",
    "log2",
    "log10",
    "exp",
    "sin",
    "cos",
    "tan",
    "asin",
    "acos",
    "atan",
    "atan2",
];

/// Buckets one query may produce with a filling `fill`.
const MAX_BUCKETS: usize = 1_000_000;

/// The output column names and expressions of `stmt` for a source with these columns:
/// `*`, `*::field`, `/regex/` and `f(*)`, `f(/regex/)` expanded, sorted as InfluxDB sorts them.
fn expand(
    stmt: &SelectStatement,
    fields: &[String],
    numeric: &BTreeSet<String>,
    tags: &BTreeSet<String>,
    group_tags: &BTreeSet<String>,
) -> Result<Vec<(String, Expr)>> {
    let mut out = Vec::new();
    let var = |name: &str| Expr::VarRef {
        name: name.to_string(),
        data_type: None,
    };
    for field in &stmt.fields {
        match strip(&field.expr) {
            Expr::Wildcard(kind) => {
                let mut names: Vec<&String> = Vec::new();
                if !matches!(kind, Some(WildcardType::Tag)) {
                    names.extend(fields.iter());
                }
                if !matches!(kind, Some(WildcardType::Field)) {
                    names.extend(tags.iter().filter(|t| !group_tags.contains(*t)));
                }
                names.sort();
                out.extend(names.into_iter().map(|n| (n.clone(), var(n))));
            }
            Expr::Literal(Literal::Regex(re)) => {
                let re = eval::compile_regex(re)?;
                let mut names: Vec<&String> = fields
                    .iter()
                    .chain(tags.iter().filter(|t| !group_tags.contains(*t)))
                    .filter(|n| re.is_match(n))
                    .collect();
                names.sort();
                out.extend(names.into_iter().map(|n| (n.clone(), var(n))));
            }
            Expr::Call { name, args }
                if matches!(
                    args.first().map(strip),
                    Some(Expr::Wildcard(_) | Expr::Literal(Literal::Regex(_)))
                ) =>
            {
                let pattern = match args.first().map(strip) {
                    Some(Expr::Literal(Literal::Regex(re))) => Some(eval::compile_regex(re)?),
                    _ => None,
                };
                let numeric_only = NUMERIC_ONLY.contains(&name.to_ascii_lowercase().as_str());
                let candidates = fields.iter().filter(|f| {
                    pattern.as_ref().is_none_or(|re| re.is_match(f))
                        && (!numeric_only || numeric.contains(*f))
                });
                for f in candidates {
                    let mut args = args.clone();
                    args[0] = var(f);
                    let label = field.alias.clone().map_or_else(
                        || format!("{}_{f}", name.to_ascii_lowercase()),
                        |a| format!("{a}_{f}"),
                    );
                    out.push((
                        label,
                        Expr::Call {
                            name: name.clone(),
                            args,
                        },
                    ));
                }
            }
            // `time` is always the first column; naming it adds nothing.
            Expr::VarRef { name, .. } if name == "time" => {}
            expr => {
                let label = field.alias.clone().unwrap_or_else(|| column_name(expr));
                out.push((label, expr.clone()));
            }
        }
    }
    Ok(out)
}

fn strip(e: &Expr) -> &Expr {
    match e {
        Expr::Nested(inner) => strip(inner),
        other => other,
    }
}

/// InfluxDB's name for an unaliased column.
fn column_name(e: &Expr) -> String {
    match e {
        Expr::Nested(inner) => column_name(inner),
        Expr::VarRef { name, .. } => name.clone(),
        Expr::Call { name, .. } => name.to_ascii_lowercase(),
        Expr::Distinct(_) => "distinct".to_string(),
        Expr::Binary { lhs, rhs, .. } => {
            let parts: Vec<String> = [column_name(lhs), column_name(rhs)]
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect();
            parts.join("_")
        }
        _ => String::new(),
    }
}

/// The names a projection or condition reads.
fn refs(e: &Expr, out: &mut BTreeSet<String>) {
    match e {
        Expr::VarRef { name, .. } => {
            out.insert(name.clone());
        }
        Expr::Distinct(name) => {
            out.insert(name.clone());
        }
        Expr::Call { args, .. } => args.iter().for_each(|a| refs(a, out)),
        Expr::Binary { lhs, rhs, .. } => {
            refs(lhs, out);
            refs(rhs, out);
        }
        Expr::Nested(inner) => refs(inner, out),
        _ => {}
    }
}

/// Compile a projection; aggregate and selector calls are appended to `calls`.
fn compile_proj(e: &Expr, source: &Source, now: i64, calls: &mut Vec<Call>) -> Result<Proj> {
    Ok(match e {
        Expr::Nested(inner) => compile_proj(inner, source, now, calls)?,
        Expr::Literal(lit) => Proj::Lit(eval::literal(lit)),
        Expr::Binary { lhs, op, rhs } => Proj::Binary(
            Box::new(compile_proj(lhs, source, now, calls)?),
            *op,
            Box::new(compile_proj(rhs, source, now, calls)?),
        ),
        Expr::Distinct(name) => {
            let call = Call::new(
                Func::Distinct,
                &[Expr::VarRef {
                    name: name.clone(),
                    data_type: None,
                }],
                source,
                now,
            )?;
            calls.push(call);
            Proj::Call(calls.len() - 1)
        }
        Expr::Call { name, args } => {
            let lower = name.to_ascii_lowercase();
            if let Some(f) = MathFn::by_name(&lower) {
                if args.len() != f.arity() {
                    return Err(Error::query(format!(
                        "invalid number of arguments for {lower}, expected {}, got {}",
                        f.arity(),
                        args.len()
                    )));
                }
                let args: Vec<Proj> = args
                    .iter()
                    .map(|a| compile_proj(a, source, now, calls))
                    .collect::<Result<_>>()?;
                return Ok(match scalar_args(&args) {
                    Some(scalars) => Proj::Scalar(Scalar::Math(f, scalars)),
                    None => Proj::Math(f, args),
                });
            }
            if let Some(t) = Transform::parse(&lower, args)? {
                let inner = args.first().ok_or_else(|| {
                    Error::query(format!(
                        "invalid number of arguments for {lower}, expected at least 1, got 0"
                    ))
                })?;
                return Ok(Proj::Transform(
                    t,
                    Box::new(compile_proj(inner, source, now, calls)?),
                ));
            }
            if lower == "now" {
                return Ok(Proj::Lit(Value::Time(now)));
            }
            let func = Func::parse(&lower, args)?;
            let call = Call::new(func, args, source, now)?;
            calls.push(call);
            let index = calls.len() - 1;
            Proj::Call(index)
        }
        other => Proj::Scalar(eval::compile(other, source, now)?),
    })
}

fn scalar_args(args: &[Proj]) -> Option<Vec<Scalar>> {
    args.iter()
        .map(|a| match a {
            Proj::Scalar(s) => Some(s.clone()),
            Proj::Lit(v) => Some(Scalar::Lit(v.clone())),
            _ => None,
        })
        .collect()
}

/// Whether the projection is built of calls and constants only (no per-point value).
fn only_calls(p: &Proj) -> bool {
    match p {
        Proj::Call(_) | Proj::Lit(_) => true,
        Proj::Binary(l, _, r) => only_calls(l) && only_calls(r),
        Proj::Math(_, args) => args.iter().all(only_calls),
        Proj::Transform(_, inner) => only_calls(inner),
        Proj::Scalar(_) => false,
    }
}

fn reads_field(p: &Proj) -> bool {
    match p {
        Proj::Scalar(s) => scalar_reads_field(s),
        Proj::Binary(l, _, r) => reads_field(l) || reads_field(r),
        Proj::Math(_, args) => args.iter().any(reads_field),
        Proj::Transform(_, inner) => reads_field(inner),
        Proj::Call(_) => true,
        Proj::Lit(_) => false,
    }
}

/// The field indexes a projection reads.
fn proj_fields(p: &Proj, out: &mut Vec<usize>) {
    match p {
        Proj::Scalar(s) => scalar_fields(s, out),
        Proj::Binary(l, _, r) => {
            proj_fields(l, out);
            proj_fields(r, out);
        }
        Proj::Math(_, args) => args.iter().for_each(|a| proj_fields(a, out)),
        Proj::Transform(_, inner) => proj_fields(inner, out),
        Proj::Call(_) | Proj::Lit(_) => {}
    }
}

fn scalar_fields(s: &Scalar, out: &mut Vec<usize>) {
    match s {
        Scalar::Field(i) => out.push(*i),
        Scalar::Binary(l, _, r) => {
            scalar_fields(l, out);
            scalar_fields(r, out);
        }
        Scalar::Math(_, args) => args.iter().for_each(|a| scalar_fields(a, out)),
        Scalar::Cast(inner, _) => scalar_fields(inner, out),
        _ => {}
    }
}

fn scalar_reads_field(s: &Scalar) -> bool {
    match s {
        Scalar::Field(_) => true,
        Scalar::Binary(l, _, r) => scalar_reads_field(l) || scalar_reads_field(r),
        Scalar::Math(_, args) => args.iter().any(scalar_reads_field),
        Scalar::Cast(inner, _) => scalar_reads_field(inner),
        _ => false,
    }
}

fn has_transform(p: &Proj) -> bool {
    match p {
        Proj::Transform(..) => true,
        Proj::Binary(l, _, r) => has_transform(l) || has_transform(r),
        Proj::Math(_, args) => args.iter().any(has_transform),
        _ => false,
    }
}

/// Whether the projection is a bare `count(...)` (0, not null, in an empty bucket).
fn count_only(p: &Proj, calls: &[Call]) -> bool {
    matches!(p, Proj::Call(i) if matches!(calls[*i].func, Func::Count | Func::CountDistinct))
}

/// Raw fields beside aggregates are allowed only with a single selector.
fn check_aggregate_mix(projs: &[Proj], calls: &[Call]) -> Result<()> {
    fn has_scalar_field(p: &Proj) -> bool {
        match p {
            Proj::Scalar(s) => scalar_reads_field(s) || matches!(s, Scalar::Tag(_)),
            Proj::Binary(l, _, r) => has_scalar_field(l) || has_scalar_field(r),
            Proj::Math(_, args) => args.iter().any(has_scalar_field),
            _ => false,
        }
    }
    let raw = projs.iter().any(has_scalar_field);
    if raw && !(calls.len() == 1 && calls[0].func.is_selector()) {
        return Err(Error::query(
            "mixing aggregate and non-aggregate queries is not supported",
        ));
    }
    if calls.iter().any(|c| c.func.is_multi_row()) && calls.len() > 1 {
        let name = calls
            .iter()
            .find(|c| c.func.is_multi_row())
            .map_or("top", |c| c.func.name());
        return Err(Error::query(format!(
            "selector function {name}() cannot be combined with other functions"
        )));
    }
    Ok(())
}

/// A projection's value in a bucket: calls from `outputs`, per-point values at the selected
/// point.
fn eval_bucket(p: &Proj, outputs: &[CallOutput], point: Option<PointRef<'_>>) -> Value {
    match p {
        Proj::Call(i) => match outputs.get(*i) {
            Some(CallOutput::One { value, .. }) => value.clone(),
            _ => Value::Null,
        },
        Proj::Lit(v) => v.clone(),
        Proj::Scalar(s) => point.map_or(Value::Null, |p| s.eval(p)),
        Proj::Binary(l, op, r) => eval::binary(
            &eval_bucket(l, outputs, point),
            *op,
            &eval_bucket(r, outputs, point),
        ),
        Proj::Math(f, args) => {
            let args: Vec<Value> = args
                .iter()
                .map(|a| eval_bucket(a, outputs, point))
                .collect();
            if args.iter().any(Value::is_null) {
                Value::Null
            } else {
                f.apply(&args)
            }
        }
        // Filled in by `apply_transforms` from the inner values.
        Proj::Transform(_, inner) => eval_bucket(inner, outputs, point),
    }
}

/// Rows of a raw query: one per point, or per transformed point.
fn raw_rows(points: &[PointRef<'_>], projs: &[Proj]) -> Result<Vec<Vec<Value>>> {
    let mut rows = Vec::with_capacity(points.len());
    let mut read: Vec<usize> = Vec::new();
    projs.iter().for_each(|p| proj_fields(p, &mut read));
    let transforms = projs.iter().any(has_transform);
    for p in points {
        let mut row = Vec::with_capacity(projs.len() + 1);
        row.push(Value::Time(p.time));
        for proj in projs {
            row.push(match proj {
                Proj::Scalar(s) => s.eval(*p),
                other => eval_bucket(other, &[], Some(*p)),
            });
        }
        // A point without any of the fields the projections read is not a row.
        if read.iter().any(|i| !p.values[*i].is_null()) {
            rows.push(row);
        }
    }
    if transforms {
        rows = apply_transforms(rows, projs, None)?;
    }
    Ok(rows)
}

/// Replace each transformed column's values (its argument's, per row) with the transform's
/// output, then drop the rows where every column is null.
fn apply_transforms(
    mut rows: Vec<Vec<Value>>,
    projs: &[Proj],
    interval: Option<i64>,
) -> Result<Vec<Vec<Value>>> {
    for (c, proj) in projs.iter().enumerate() {
        let Proj::Transform(t, _) = proj else {
            if has_transform(proj) {
                return Err(Error::query(
                    "expressions around transformation functions are not supported",
                ));
            }
            continue;
        };
        let input: Vec<(i64, Value)> = rows
            .iter()
            .map(|r| {
                let time = match r[0] {
                    Value::Time(t) => t,
                    _ => 0,
                };
                (time, r[c + 1].clone())
            })
            .collect();
        let output = t.apply(&input, interval);
        for (row, v) in rows.iter_mut().zip(output) {
            row[c + 1] = v;
        }
    }
    if projs.iter().any(|p| matches!(p, Proj::Transform(..))) {
        rows.retain(|r| r[1..].iter().any(|v| !v.is_null()));
    }
    Ok(rows)
}

/// `fill(linear)`: each empty bucket's numeric columns interpolated between the nearest
/// non-empty buckets around it.
fn fill_linear(rows: &mut [Vec<Value>], empty: &[bool]) {
    let width = rows.first().map_or(0, Vec::len);
    for c in 1..width {
        let mut last: Option<usize> = None;
        for i in 0..rows.len() {
            if empty[i] || rows[i][c].is_null() {
                continue;
            }
            if let Some(prev) = last
                && i > prev + 1
            {
                let (Some(y0), Some(y1)) = (rows[prev][c].as_f64(), rows[i][c].as_f64()) else {
                    last = Some(i);
                    continue;
                };
                let integer = matches!(rows[prev][c], Value::Integer(_))
                    && matches!(rows[i][c], Value::Integer(_));
                let (Value::Time(t0), Value::Time(t1)) = (&rows[prev][0], &rows[i][0]) else {
                    continue;
                };
                let (t0, t1) = (*t0, *t1);
                for j in prev + 1..i {
                    if !empty[j] {
                        continue;
                    }
                    let Value::Time(t) = rows[j][0] else { continue };
                    let y = y0 + (y1 - y0) * ((t - t0) as f64 / (t1 - t0) as f64);
                    rows[j][c] = if integer {
                        Value::Integer(y as i64)
                    } else {
                        Value::Float(y)
                    };
                }
            }
            last = Some(i);
        }
    }
}
