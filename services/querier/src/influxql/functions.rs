//! InfluxQL's aggregates, selectors and transformations, with InfluxDB 1.x's results and
//! types: `mean`, `median`, `stddev`, `integral`, `derivative` and `moving_average` are
//! floats; `count` and `elapsed` integers; `sum`, `spread`, `difference` and `cumulative_sum`
//! keep an integer field's type; selectors return the chosen point's value (and time).

use ferrite_influxql::{Expr, Literal};

use super::eval::{self, PointRef, Scalar};
use super::source::{PushFunc, Source};
use super::value::{FieldType, Value};
use super::{Error, Result};

/// An aggregate or selector.
#[derive(Debug, Clone, PartialEq)]
pub enum Func {
    Count,
    /// `count(distinct(x))`.
    CountDistinct,
    Distinct,
    /// `integral(x, unit)`: unit in ns.
    Integral(i64),
    Mean,
    Median,
    Mode,
    Spread,
    Stddev,
    Sum,
    First,
    Last,
    Min,
    Max,
    /// `percentile(x, p)`.
    Percentile(f64),
    /// `sample(x, n)`.
    Sample(usize),
    /// `top(x, [tags…,] n)`.
    Top(usize),
    /// `bottom(x, [tags…,] n)`.
    Bottom(usize),
}

impl Func {
    /// The function called `name` with `args`, checked as InfluxDB checks them.
    pub fn parse(name: &str, args: &[Expr]) -> Result<Self> {
        let arity = |expected: usize| -> Result<()> {
            if args.len() == expected {
                Ok(())
            } else {
                Err(Error::query(format!(
                    "invalid number of arguments for {name}, expected {expected}, got {}",
                    args.len()
                )))
            }
        };
        let int_arg = |i: usize| -> Result<i64> {
            match args.get(i) {
                Some(Expr::Literal(Literal::Integer(n))) => Ok(*n),
                _ => Err(Error::query(format!(
                    "expected integer argument in {name}()"
                ))),
            }
        };
        Ok(match name {
            "count" => {
                arity(1)?;
                match &args[0] {
                    Expr::Distinct(_) => Self::CountDistinct,
                    Expr::Call { name, .. } if name.eq_ignore_ascii_case("distinct") => {
                        Self::CountDistinct
                    }
                    _ => Self::Count,
                }
            }
            "distinct" => {
                arity(1)?;
                Self::Distinct
            }
            "integral" => {
                if args.len() == 2 {
                    match &args[1] {
                        Expr::Literal(Literal::Duration(d)) if *d > 0 => Self::Integral(*d),
                        _ => {
                            return Err(Error::query(
                                "second argument to integral must be a duration",
                            ));
                        }
                    }
                } else {
                    arity(1)?;
                    Self::Integral(1_000_000_000)
                }
            }
            "mean" | "median" | "mode" | "spread" | "stddev" | "sum" | "first" | "last" | "min"
            | "max" => {
                arity(1)?;
                match name {
                    "mean" => Self::Mean,
                    "median" => Self::Median,
                    "mode" => Self::Mode,
                    "spread" => Self::Spread,
                    "stddev" => Self::Stddev,
                    "sum" => Self::Sum,
                    "first" => Self::First,
                    "last" => Self::Last,
                    "min" => Self::Min,
                    _ => Self::Max,
                }
            }
            "percentile" => {
                arity(2)?;
                match &args[1] {
                    Expr::Literal(Literal::Integer(n)) => Self::Percentile(*n as f64),
                    Expr::Literal(Literal::Float(f)) => Self::Percentile(*f),
                    _ => {
                        return Err(Error::query("expected float argument in percentile()"));
                    }
                }
            }
            "sample" => {
                arity(2)?;
                let n = int_arg(1)?;
                if n <= 0 {
                    return Err(Error::query("sample window must be greater than 1, got 0"));
                }
                Self::Sample(n as usize)
            }
            "top" | "bottom" => {
                if args.len() < 2 {
                    return Err(Error::query(format!(
                        "invalid number of arguments for {name}, expected at least 2, got {}",
                        args.len()
                    )));
                }
                let n = int_arg(args.len() - 1)?;
                if n <= 0 {
                    return Err(Error::query(format!(
                        "limit ({n}) in {name} function must be at least 1"
                    )));
                }
                if name == "top" {
                    Self::Top(n as usize)
                } else {
                    Self::Bottom(n as usize)
                }
            }
            other => return Err(Error::query(format!("undefined function {other}()"))),
        })
    }

    /// The function's name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Count | Self::CountDistinct => "count",
            Self::Distinct => "distinct",
            Self::Integral(_) => "integral",
            Self::Mean => "mean",
            Self::Median => "median",
            Self::Mode => "mode",
            Self::Spread => "spread",
            Self::Stddev => "stddev",
            Self::Sum => "sum",
            Self::First => "first",
            Self::Last => "last",
            Self::Min => "min",
            Self::Max => "max",
            Self::Percentile(_) => "percentile",
            Self::Sample(_) => "sample",
            Self::Top(_) => "top",
            Self::Bottom(_) => "bottom",
        }
    }

    /// Returns a chosen point (its time, and the fields beside it).
    pub fn is_selector(&self) -> bool {
        matches!(
            self,
            Self::First
                | Self::Last
                | Self::Min
                | Self::Max
                | Self::Percentile(_)
                | Self::Sample(_)
                | Self::Top(_)
                | Self::Bottom(_)
        )
    }

    /// Accepts numbers only.
    pub fn is_numeric_only(&self) -> bool {
        matches!(
            self,
            Self::Integral(_)
                | Self::Mean
                | Self::Median
                | Self::Spread
                | Self::Stddev
                | Self::Sum
                | Self::Percentile(_)
                | Self::Top(_)
                | Self::Bottom(_)
        )
    }

    /// Returns several rows per bucket.
    pub fn is_multi_row(&self) -> bool {
        matches!(
            self,
            Self::Distinct | Self::Sample(_) | Self::Top(_) | Self::Bottom(_)
        )
    }

    /// Its rows keep the chosen points' times even with `GROUP BY time`.
    pub fn keeps_point_time(&self) -> bool {
        matches!(self, Self::Sample(_) | Self::Top(_) | Self::Bottom(_))
    }
}

/// A call compiled against a source.
#[derive(Debug, Clone)]
pub struct Call {
    /// What it computes.
    pub func: Func,
    /// Its first argument, per point.
    arg: Scalar,
    /// The tag arguments of `top` / `bottom`.
    pub tag_args: Vec<String>,
}

/// What a call yields for one bucket.
#[derive(Debug, Clone)]
pub enum CallOutput {
    /// One value; selectors give the chosen point's time and index.
    One {
        value: Value,
        time: Option<i64>,
        point: Option<usize>,
    },
    /// Several rows: (time, value, chosen point).
    Rows(Vec<(i64, Value, Option<usize>)>),
}

impl Call {
    /// Compile `func(args…)` against `source`.
    pub fn new(func: Func, args: &[Expr], source: &Source, now: i64) -> Result<Self> {
        let first = match args.first() {
            Some(Expr::Distinct(name)) => Expr::VarRef {
                name: name.clone(),
                data_type: None,
            },
            Some(Expr::Call { name, args }) if name.eq_ignore_ascii_case("distinct") => args
                .first()
                .cloned()
                .ok_or_else(|| Error::query("distinct function requires at least one argument"))?,
            Some(Expr::Call { .. }) => {
                return Err(Error::query(format!(
                    "expected field argument in {}()",
                    func.name()
                )));
            }
            Some(e) => e.clone(),
            None => {
                return Err(Error::query(format!(
                    "invalid number of arguments for {}, expected 1, got 0",
                    func.name()
                )));
            }
        };
        let tag_args = match func {
            Func::Top(_) | Func::Bottom(_) => args[1..args.len() - 1]
                .iter()
                .map(|a| match a {
                    Expr::VarRef { name, .. } => Ok(name.clone()),
                    _ => Err(Error::query(format!(
                        "only fields or tags are allowed in {}(), found {a}",
                        func.name()
                    ))),
                })
                .collect::<Result<_>>()?,
            _ => Vec::new(),
        };
        let arg = eval::compile(&first, source, now)?;
        if func.is_numeric_only()
            && let Scalar::Field(i) = &arg
            && let Some(t @ (FieldType::String | FieldType::Boolean)) = source.fields[*i].1
        {
            return Err(Error::query(format!(
                "unsupported {} iterator type: *query.{}InterruptIterator",
                func.name(),
                t.name()
            )));
        }
        Ok(Self {
            arg,
            func,
            tag_args,
        })
    }

    /// The DataFusion aggregate computing this call over field `name`, if there is one
    /// with InfluxQL's result.
    pub fn pushable(&self, source: &Source) -> Option<(PushFunc, String)> {
        let Scalar::Field(i) = &self.arg else {
            return None;
        };
        let (name, kind) = &source.fields[*i];
        let numeric = matches!(
            kind,
            Some(FieldType::Float | FieldType::Integer | FieldType::Unsigned)
        );
        let func = match self.func {
            Func::Count => PushFunc::Count,
            Func::Sum if numeric => PushFunc::Sum,
            Func::Mean if numeric => PushFunc::Mean,
            Func::Spread if numeric => PushFunc::Spread,
            Func::Min if numeric => PushFunc::Min,
            Func::Max if numeric => PushFunc::Max,
            Func::First => PushFunc::First,
            Func::Last => PushFunc::Last,
            _ => return None,
        };
        Some((func, name.clone()))
    }

    /// The call over one bucket's points (in time order).
    pub fn apply(&self, points: &[PointRef<'_>]) -> CallOutput {
        let values: Vec<(i64, Value, usize)> = points
            .iter()
            .enumerate()
            .filter_map(|(i, p)| {
                let v = self.arg.eval(*p);
                (!v.is_null()).then_some((p.time, v, i))
            })
            .collect();
        let one = |value: Value| CallOutput::One {
            value,
            time: None,
            point: None,
        };
        let pick = |chosen: Option<&(i64, Value, usize)>| match chosen {
            Some((t, v, i)) => CallOutput::One {
                value: v.clone(),
                time: Some(*t),
                point: Some(*i),
            },
            None => one(Value::Null),
        };
        match &self.func {
            Func::Count => one(Value::Integer(values.len() as i64)),
            Func::CountDistinct => {
                let mut distinct: Vec<&Value> = values.iter().map(|(_, v, _)| v).collect();
                distinct.sort_by(|a, b| a.total_cmp(b));
                distinct.dedup();
                one(Value::Integer(distinct.len() as i64))
            }
            Func::Distinct => {
                // In order of first appearance within one series; merged from several,
                // sorted by value (InfluxDB's order either way).
                let mut distinct: Vec<Value> = Vec::new();
                for (_, v, _) in &values {
                    if !distinct.contains(v) {
                        distinct.push(v.clone());
                    }
                }
                let one_series = points
                    .windows(2)
                    .all(|w| std::ptr::eq(w[0].tags, w[1].tags));
                if !one_series {
                    distinct.sort_by(|a, b| a.total_cmp(b));
                }
                CallOutput::Rows(distinct.into_iter().map(|v| (0, v, None)).collect())
            }
            Func::Sum => one(sum(&values)),
            Func::Mean => one(numbers(&values).map_or(Value::Null, |xs| {
                Value::Float(xs.iter().sum::<f64>() / xs.len() as f64)
            })),
            Func::Median => one(numbers(&values).map_or(Value::Null, |mut xs| {
                xs.sort_by(f64::total_cmp);
                let n = xs.len();
                Value::Float(if n % 2 == 1 {
                    xs[n / 2]
                } else {
                    (xs[n / 2 - 1] + xs[n / 2]) / 2.0
                })
            })),
            Func::Mode => {
                // The most frequent value; a tie goes to the value seen first.
                let mut counts: Vec<(&Value, usize, usize)> = Vec::new();
                for (order, (_, v, _)) in values.iter().enumerate() {
                    match counts.iter_mut().find(|(x, _, _)| *x == v) {
                        Some(entry) => entry.1 += 1,
                        None => counts.push((v, 1, order)),
                    }
                }
                let best = counts
                    .iter()
                    .max_by(|a, b| a.1.cmp(&b.1).then(b.2.cmp(&a.2)));
                one(best.map_or(Value::Null, |(v, _, _)| (*v).clone()))
            }
            Func::Spread => {
                let min = values
                    .iter()
                    .map(|(_, v, _)| v)
                    .min_by(|a, b| a.total_cmp(b));
                let max = values
                    .iter()
                    .map(|(_, v, _)| v)
                    .max_by(|a, b| a.total_cmp(b));
                one(match (min, max) {
                    (Some(Value::Integer(a)), Some(Value::Integer(b))) => Value::Integer(b - a),
                    (Some(Value::Unsigned(a)), Some(Value::Unsigned(b))) => Value::Unsigned(b - a),
                    (Some(a), Some(b)) => match (a.as_f64(), b.as_f64()) {
                        (Some(a), Some(b)) => Value::Float(b - a),
                        _ => Value::Null,
                    },
                    _ => Value::Null,
                })
            }
            Func::Stddev => one(numbers(&values).map_or(Value::Null, |xs| {
                let n = xs.len() as f64;
                if xs.len() < 2 {
                    return Value::Null;
                }
                let mean = xs.iter().sum::<f64>() / n;
                let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
                Value::Float(var.sqrt())
            })),
            Func::Integral(unit) => one(match numbers(&values) {
                None => Value::Null,
                Some(xs) => {
                    let mut area = 0.0;
                    for w in 1..xs.len() {
                        let dt = (values[w].0 - values[w - 1].0) as f64 / *unit as f64;
                        area += (xs[w] + xs[w - 1]) / 2.0 * dt;
                    }
                    Value::Float(area)
                }
            }),
            // Points of one time (from several series): the greater value wins.
            Func::First => pick(values.iter().reduce(|best, x| {
                if x.0 < best.0 || (x.0 == best.0 && x.1.total_cmp(&best.1).is_gt()) {
                    x
                } else {
                    best
                }
            })),
            Func::Last => pick(values.iter().reduce(|best, x| {
                if x.0 > best.0 || (x.0 == best.0 && x.1.total_cmp(&best.1).is_gt()) {
                    x
                } else {
                    best
                }
            })),
            Func::Min => pick(values.iter().reduce(|best, x| {
                if x.1.total_cmp(&best.1).is_lt() {
                    x
                } else {
                    best
                }
            })),
            Func::Max => pick(values.iter().reduce(|best, x| {
                if x.1.total_cmp(&best.1).is_gt() {
                    x
                } else {
                    best
                }
            })),
            Func::Percentile(p) => {
                let mut sorted: Vec<&(i64, Value, usize)> = values.iter().collect();
                sorted.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
                let i = (sorted.len() as f64 * p / 100.0 + 0.5).floor() as i64 - 1;
                if i < 0 || i as usize >= sorted.len() {
                    one(Value::Null)
                } else {
                    pick(Some(sorted[i as usize]))
                }
            }
            Func::Sample(n) => {
                // Deterministic per bucket: evenly spaced points stand in for a random draw.
                let len = values.len();
                let take = (*n).min(len);
                let rows = (0..take)
                    .map(|k| {
                        let (t, v, i) = &values[k * len / take.max(1)];
                        (*t, v.clone(), Some(*i))
                    })
                    .collect();
                CallOutput::Rows(rows)
            }
            Func::Top(n) | Func::Bottom(n) => {
                let top = matches!(self.func, Func::Top(_));
                let mut sorted: Vec<&(i64, Value, usize)> = values.iter().collect();
                sorted.sort_by(|a, b| {
                    let by_value = a.1.total_cmp(&b.1);
                    (if top { by_value.reverse() } else { by_value }).then(a.0.cmp(&b.0))
                });
                let mut chosen: Vec<&(i64, Value, usize)> = Vec::new();
                let mut seen_tags = std::collections::BTreeSet::new();
                for x in sorted {
                    if chosen.len() == *n {
                        break;
                    }
                    if !self.tag_args.is_empty() {
                        let key: Vec<Option<&String>> = self
                            .tag_args
                            .iter()
                            .map(|t| points[x.2].tags.get(t))
                            .collect();
                        if !seen_tags.insert(key) {
                            continue;
                        }
                    }
                    chosen.push(x);
                }
                chosen.sort_by_key(|x| (x.0, x.2));
                CallOutput::Rows(
                    chosen
                        .into_iter()
                        .map(|(t, v, i)| (*t, v.clone(), Some(*i)))
                        .collect(),
                )
            }
        }
    }
}

/// The values as floats, if they are all numbers and there is at least one.
fn numbers(values: &[(i64, Value, usize)]) -> Option<Vec<f64>> {
    if values.is_empty() {
        return None;
    }
    values.iter().map(|(_, v, _)| v.as_f64()).collect()
}

fn sum(values: &[(i64, Value, usize)]) -> Value {
    if values.is_empty() {
        return Value::Null;
    }
    if values
        .iter()
        .all(|(_, v, _)| matches!(v, Value::Integer(_)))
    {
        return Value::Integer(values.iter().fold(0i64, |acc, (_, v, _)| match v {
            Value::Integer(x) => acc.wrapping_add(*x),
            _ => acc,
        }));
    }
    if values
        .iter()
        .all(|(_, v, _)| matches!(v, Value::Unsigned(_)))
    {
        return Value::Unsigned(values.iter().fold(0u64, |acc, (_, v, _)| match v {
            Value::Unsigned(x) => acc.wrapping_add(*x),
            _ => acc,
        }));
    }
    numbers(values).map_or(Value::Null, |xs| Value::Float(xs.iter().sum()))
}

/// A transformation over a series of values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Transform {
    Difference {
        non_negative: bool,
    },
    /// `unit` ns; `None`: the GROUP BY interval, else 1s.
    Derivative {
        unit: Option<i64>,
        non_negative: bool,
    },
    MovingAverage(usize),
    CumulativeSum,
    /// `unit` ns (default 1ns).
    Elapsed(i64),
}

impl Transform {
    /// Its name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Difference {
                non_negative: false,
            } => "difference",
            Self::Difference { non_negative: true } => "non_negative_difference",
            Self::Derivative {
                non_negative: false,
                ..
            } => "derivative",
            Self::Derivative {
                non_negative: true, ..
            } => "non_negative_derivative",
            Self::MovingAverage(_) => "moving_average",
            Self::CumulativeSum => "cumulative_sum",
            Self::Elapsed(_) => "elapsed",
        }
    }

    /// The transformation called `name`, if it is one.
    pub fn parse(name: &str, args: &[Expr]) -> Result<Option<Self>> {
        let unit = |i: usize| -> Result<Option<i64>> {
            match args.get(i) {
                None => Ok(None),
                Some(Expr::Literal(Literal::Duration(d))) if *d > 0 => Ok(Some(*d)),
                Some(_) => Err(Error::query(format!(
                    "second argument to {name} must be a duration"
                ))),
            }
        };
        let arity = |range: std::ops::RangeInclusive<usize>| -> Result<()> {
            if range.contains(&args.len()) {
                Ok(())
            } else {
                Err(Error::query(format!(
                    "invalid number of arguments for {name}, expected {}, got {}",
                    range.start(),
                    args.len()
                )))
            }
        };
        Ok(Some(match name {
            "difference" | "non_negative_difference" => {
                arity(1..=1)?;
                Self::Difference {
                    non_negative: name.starts_with("non_negative"),
                }
            }
            "derivative" | "non_negative_derivative" => {
                arity(1..=2)?;
                Self::Derivative {
                    unit: unit(1)?,
                    non_negative: name.starts_with("non_negative"),
                }
            }
            "moving_average" => {
                arity(2..=2)?;
                match &args[1] {
                    Expr::Literal(Literal::Integer(n)) if *n >= 2 => {
                        Self::MovingAverage(*n as usize)
                    }
                    _ => {
                        return Err(Error::query("moving_average window must be greater than 1"));
                    }
                }
            }
            "cumulative_sum" => {
                arity(1..=1)?;
                Self::CumulativeSum
            }
            "elapsed" => {
                arity(1..=2)?;
                Self::Elapsed(unit(1)?.unwrap_or(1))
            }
            _ => return Ok(None),
        }))
    }

    /// The transformation of `input` (time, value), one output per input row (null where
    /// it yields nothing). `interval`: the GROUP BY interval, if any.
    pub fn apply(&self, input: &[(i64, Value)], interval: Option<i64>) -> Vec<Value> {
        let mut out = vec![Value::Null; input.len()];
        let mut prev: Option<(i64, &Value)> = None;
        let mut window: std::collections::VecDeque<f64> = std::collections::VecDeque::new();
        let mut running: Option<Value> = None;
        for (i, (t, v)) in input.iter().enumerate() {
            if v.is_null() {
                continue;
            }
            match self {
                Self::Difference { non_negative } => {
                    if let Some((_, p)) = prev {
                        let d = match (p, v) {
                            (Value::Integer(a), Value::Integer(b)) => Value::Integer(b - a),
                            (a, b) => match (a.as_f64(), b.as_f64()) {
                                (Some(a), Some(b)) => Value::Float(b - a),
                                _ => Value::Null,
                            },
                        };
                        let negative = d.as_f64().is_some_and(|x| x < 0.0);
                        if !(*non_negative && negative) {
                            out[i] = d;
                        }
                    }
                }
                Self::Derivative { unit, non_negative } => {
                    let unit = unit.or(interval).unwrap_or(1_000_000_000) as f64;
                    if let Some((pt, p)) = prev
                        && *t != pt
                        && let (Some(a), Some(b)) = (p.as_f64(), v.as_f64())
                    {
                        let d = (b - a) / ((*t - pt) as f64 / unit);
                        if !(*non_negative && d < 0.0) {
                            out[i] = Value::Float(d);
                        }
                    }
                }
                Self::MovingAverage(n) => {
                    if let Some(x) = v.as_f64() {
                        window.push_back(x);
                        if window.len() > *n {
                            window.pop_front();
                        }
                        if window.len() == *n {
                            out[i] = Value::Float(window.iter().sum::<f64>() / *n as f64);
                        }
                    }
                }
                Self::CumulativeSum => {
                    let next = match (&running, v) {
                        (None, v) => v.clone(),
                        (Some(Value::Integer(a)), Value::Integer(b)) => Value::Integer(a + b),
                        (Some(a), b) => match (a.as_f64(), b.as_f64()) {
                            (Some(a), Some(b)) => Value::Float(a + b),
                            _ => Value::Null,
                        },
                    };
                    out[i] = next.clone();
                    running = Some(next);
                }
                Self::Elapsed(unit) => {
                    if let Some((pt, _)) = prev {
                        out[i] = Value::Integer((*t - pt) / *unit);
                    }
                }
            }
            prev = Some((*t, v));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    const S: i64 = 1_000_000_000;

    fn series(values: &[Value]) -> Vec<(i64, Value)> {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| (i as i64 * 10 * S, v.clone()))
            .collect()
    }

    fn source() -> Source {
        Source {
            name: "m".into(),
            fields: vec![("v".into(), Some(FieldType::Float))],
            tag_keys: Default::default(),
            series: Vec::new(),
        }
    }

    fn call(func: Func) -> Call {
        let arg = [Expr::VarRef {
            name: "v".into(),
            data_type: None,
        }];
        Call::new(func, &arg, &source(), 0).unwrap()
    }

    /// The call over points of `v` every 10 s.
    fn apply(func: Func, values: &[f64]) -> CallOutput {
        let tags = BTreeMap::new();
        let rows: Vec<Vec<Value>> = values.iter().map(|v| vec![Value::Float(*v)]).collect();
        let points: Vec<PointRef<'_>> = rows
            .iter()
            .enumerate()
            .map(|(i, r)| PointRef {
                time: i as i64 * 10 * S,
                tags: &tags,
                values: r,
            })
            .collect();
        call(func).apply(&points)
    }

    fn value(out: CallOutput) -> (Value, Option<i64>) {
        match out {
            CallOutput::One { value, time, .. } => (value, time),
            CallOutput::Rows(_) => panic!("several rows"),
        }
    }

    #[test]
    fn derivative_defaults_to_one_second_or_the_interval() {
        let input = series(&[
            Value::Float(0.0),
            Value::Float(20.0),
            Value::Null,
            Value::Float(30.0),
        ]);
        let per_second = Transform::Derivative {
            unit: None,
            non_negative: false,
        };
        assert_eq!(
            per_second.apply(&input, None),
            vec![
                Value::Null,
                Value::Float(2.0),
                Value::Null,
                Value::Float(0.5)
            ]
        );
        // Over buckets the default unit is the GROUP BY interval.
        assert_eq!(
            per_second.apply(&input, Some(60 * S))[1],
            Value::Float(120.0)
        );
    }

    #[test]
    fn difference_keeps_integers_and_non_negative_drops_decreases() {
        let input = series(&[Value::Integer(5), Value::Integer(3), Value::Integer(10)]);
        let all = Transform::Difference {
            non_negative: false,
        };
        let up = Transform::Difference { non_negative: true };
        assert_eq!(
            all.apply(&input, None),
            vec![Value::Null, Value::Integer(-2), Value::Integer(7)]
        );
        assert_eq!(
            up.apply(&input, None),
            vec![Value::Null, Value::Null, Value::Integer(7)]
        );
    }

    #[test]
    fn moving_average_starts_at_the_window_and_cumulative_sum_runs() {
        let input = series(&[Value::Float(1.0), Value::Float(2.0), Value::Float(6.0)]);
        assert_eq!(
            Transform::MovingAverage(2).apply(&input, None),
            vec![Value::Null, Value::Float(1.5), Value::Float(4.0)]
        );
        assert_eq!(
            Transform::CumulativeSum.apply(&input, None),
            vec![Value::Float(1.0), Value::Float(3.0), Value::Float(9.0)]
        );
        assert_eq!(
            Transform::Elapsed(S).apply(&input, None),
            vec![Value::Null, Value::Integer(10), Value::Integer(10)]
        );
    }

    #[test]
    fn percentile_is_the_nearest_rank_and_keeps_its_point_time() {
        let values = [5.0, 1.0, 4.0, 2.0, 3.0];
        assert_eq!(
            value(apply(Func::Percentile(50.0), &values)),
            (Value::Float(3.0), Some(40 * S))
        );
        assert_eq!(
            value(apply(Func::Percentile(100.0), &values)).0,
            Value::Float(5.0)
        );
        assert_eq!(value(apply(Func::Percentile(0.0), &values)).0, Value::Null);
    }

    #[test]
    fn aggregates_have_influxql_types_and_selectors_their_point() {
        let values = [2.0, 8.0, 4.0, 8.0];
        assert_eq!(value(apply(Func::Count, &values)).0, Value::Integer(4));
        assert_eq!(value(apply(Func::Mean, &values)).0, Value::Float(5.5));
        assert_eq!(value(apply(Func::Median, &values)).0, Value::Float(6.0));
        assert_eq!(value(apply(Func::Spread, &values)).0, Value::Float(6.0));
        assert_eq!(value(apply(Func::Mode, &values)).0, Value::Float(8.0));
        // Among equal values max() keeps the earliest point.
        assert_eq!(
            value(apply(Func::Max, &values)),
            (Value::Float(8.0), Some(10 * S))
        );
        assert_eq!(
            value(apply(Func::Last, &values)),
            (Value::Float(8.0), Some(30 * S))
        );
        // Trapezoids over 10 s steps, per second: (2+8)/2*10 + (8+4)/2*10 + (4+8)/2*10.
        assert_eq!(
            value(apply(Func::Integral(S), &values)).0,
            Value::Float(170.0)
        );
    }

    #[test]
    fn numeric_functions_refuse_strings_with_influxdbs_message() {
        let source = Source {
            fields: vec![("v".into(), Some(FieldType::String))],
            ..source()
        };
        let arg = [Expr::VarRef {
            name: "v".into(),
            data_type: None,
        }];
        let Err(Error::Query(message)) = Call::new(Func::Mean, &arg, &source, 0) else {
            panic!("mean of a string must fail");
        };
        assert_eq!(
            message,
            "unsupported mean iterator type: *query.stringInterruptIterator"
        );
    }
}
