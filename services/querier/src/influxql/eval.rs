//! Per-point expressions: `WHERE` conditions, raw projections, the arguments of functions.
//!
//! An InfluxQL expression is compiled against one [`Source`] into a [`Scalar`] (names resolved
//! to a field index, a tag or `time`), then evaluated point by point. The rules are
//! InfluxDB 1.x's: a missing tag compares as `''`; a comparison with a missing field is false;
//! integer `/` integer is a float; a time compares with RFC3339 strings, integers (ns) and
//! durations (an epoch with a unit).

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, NaiveDateTime};
use ferrite_influxql::{BinaryOp, Expr, Literal, VarRefDataType};
use regex::Regex;

use super::source::Source;
use super::value::{FieldType, Value};
use super::{Error, Result};

/// A compiled per-point expression.
#[derive(Debug, Clone)]
pub enum Scalar {
    /// A field of the source, by index.
    Field(usize),
    /// A tag.
    Tag(String),
    /// The point's time.
    Time,
    /// A constant.
    Lit(Value),
    /// A regex (the right side of `=~` / `!~`).
    Regex(Regex),
    /// `lhs op rhs`.
    Binary(Box<Scalar>, BinaryOp, Box<Scalar>),
    /// A math function of its arguments.
    Math(MathFn, Vec<Scalar>),
    /// A numeric field read as another numeric type (`x::integer` truncates).
    Cast(Box<Scalar>, FieldType),
}

/// The point an expression is evaluated at.
#[derive(Debug, Clone, Copy)]
pub struct PointRef<'a> {
    /// ns since the epoch.
    pub time: i64,
    /// Its series' tags.
    pub tags: &'a BTreeMap<String, String>,
    /// Its field values.
    pub values: &'a [Value],
}

/// The scalar math functions of InfluxQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MathFn {
    Abs,
    Ceil,
    Floor,
    Round,
    Sqrt,
    Pow,
    Ln,
    Log,
    Log2,
    Log10,
    Exp,
    Sin,
    Cos,
    Tan,
    Asin,
    Acos,
    Atan,
    Atan2,
}

impl MathFn {
    /// The function called `name`, if it is a math function.
    pub fn by_name(name: &str) -> Option<Self> {
        Some(match name {
            "abs" => Self::Abs,
            "ceil" => Self::Ceil,
            "floor" => Self::Floor,
            "round" => Self::Round,
            "sqrt" => Self::Sqrt,
            "pow" => Self::Pow,
            "ln" => Self::Ln,
            "log" => Self::Log,
            "log2" => Self::Log2,
            "log10" => Self::Log10,
            "exp" => Self::Exp,
            "sin" => Self::Sin,
            "cos" => Self::Cos,
            "tan" => Self::Tan,
            "asin" => Self::Asin,
            "acos" => Self::Acos,
            "atan" => Self::Atan,
            "atan2" => Self::Atan2,
            _ => return None,
        })
    }

    /// How many arguments it takes.
    pub fn arity(self) -> usize {
        match self {
            Self::Pow | Self::Log | Self::Atan2 => 2,
            _ => 1,
        }
    }

    /// Apply to evaluated arguments.
    pub fn apply(self, args: &[Value]) -> Value {
        let x = &args[0];
        match self {
            Self::Abs => match x {
                Value::Integer(v) => Value::Integer(v.wrapping_abs()),
                Value::Unsigned(v) => Value::Unsigned(*v),
                v => float(v.as_f64().map(f64::abs)),
            },
            Self::Ceil | Self::Floor | Self::Round => match x {
                Value::Integer(_) | Value::Unsigned(_) => x.clone(),
                v => float(v.as_f64().map(|f| match self {
                    Self::Ceil => f.ceil(),
                    Self::Floor => f.floor(),
                    _ => f.round(),
                })),
            },
            _ => {
                let Some(a) = x.as_f64() else {
                    return Value::Null;
                };
                let b = args.get(1).and_then(Value::as_f64);
                float(match self {
                    Self::Sqrt => Some(a.sqrt()),
                    Self::Pow => b.map(|b| a.powf(b)),
                    Self::Ln => Some(a.ln()),
                    Self::Log => b.map(|b| a.log(b)),
                    Self::Log2 => Some(a.log2()),
                    Self::Log10 => Some(a.log10()),
                    Self::Exp => Some(a.exp()),
                    Self::Sin => Some(a.sin()),
                    Self::Cos => Some(a.cos()),
                    Self::Tan => Some(a.tan()),
                    Self::Asin => Some(a.asin()),
                    Self::Acos => Some(a.acos()),
                    Self::Atan => Some(a.atan()),
                    Self::Atan2 => b.map(|b| a.atan2(b)),
                    Self::Abs | Self::Ceil | Self::Floor | Self::Round => None,
                })
            }
        }
    }
}

fn float(v: Option<f64>) -> Value {
    v.map_or(Value::Null, Value::Float)
}

/// How a name resolves in a source.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolved {
    Field(usize),
    Tag(String),
    Time,
    Missing,
}

/// Resolve `name` (with its `::type`) in `source`: a field first, then a tag, as InfluxDB does.
pub fn resolve(source: &Source, name: &str, data_type: Option<VarRefDataType>) -> Resolved {
    if name == "time" {
        return Resolved::Time;
    }
    let field = source.field_index(name);
    let tag = source.tag_keys.contains(name);
    match data_type {
        Some(VarRefDataType::Tag) => {
            if tag {
                Resolved::Tag(name.to_string())
            } else {
                Resolved::Missing
            }
        }
        Some(VarRefDataType::Field) | None => match (field, tag) {
            (Some(i), _) => Resolved::Field(i),
            (None, true) if data_type.is_none() => Resolved::Tag(name.to_string()),
            _ => Resolved::Missing,
        },
        Some(t) => match field {
            Some(i) if type_matches(source.fields[i].1, t) => Resolved::Field(i),
            _ => Resolved::Missing,
        },
    }
}

fn type_matches(actual: Option<FieldType>, wanted: VarRefDataType) -> bool {
    match actual {
        None => true,
        Some(t) => matches!(
            (t, wanted),
            (FieldType::Float, VarRefDataType::Float)
                | (FieldType::Integer, VarRefDataType::Integer)
                | (FieldType::Unsigned, VarRefDataType::Unsigned)
                | (FieldType::String, VarRefDataType::String)
                | (FieldType::Boolean, VarRefDataType::Boolean)
                // A numeric cast converts.
                | (FieldType::Integer, VarRefDataType::Float)
                | (FieldType::Float, VarRefDataType::Integer)
        ),
    }
}

/// Compile a per-point expression; `now` is the query's `now()`.
pub fn compile(expr: &Expr, source: &Source, now: i64) -> Result<Scalar> {
    Ok(match expr {
        Expr::Nested(inner) => compile(inner, source, now)?,
        Expr::VarRef { name, data_type } => match resolve(source, name, *data_type) {
            Resolved::Field(i) => match data_type {
                Some(VarRefDataType::Integer) if source.fields[i].1 == Some(FieldType::Float) => {
                    Scalar::Cast(Box::new(Scalar::Field(i)), FieldType::Integer)
                }
                Some(VarRefDataType::Float) if source.fields[i].1 == Some(FieldType::Integer) => {
                    Scalar::Cast(Box::new(Scalar::Field(i)), FieldType::Float)
                }
                _ => Scalar::Field(i),
            },
            Resolved::Tag(t) => Scalar::Tag(t),
            Resolved::Time => Scalar::Time,
            Resolved::Missing => Scalar::Lit(Value::Null),
        },
        Expr::Literal(lit) => match lit {
            Literal::Regex(re) => Scalar::Regex(compile_regex(re)?),
            other => Scalar::Lit(literal(other)),
        },
        Expr::BindParam(name) => {
            return Err(Error::query(format!("missing parameter: {name}")));
        }
        Expr::Call { name, args } if name.eq_ignore_ascii_case("now") && args.is_empty() => {
            Scalar::Lit(Value::Time(now))
        }
        Expr::Call { name, args } => {
            let lower = name.to_ascii_lowercase();
            let Some(f) = MathFn::by_name(&lower) else {
                return Err(Error::query(format!("undefined function {name}()")));
            };
            if args.len() != f.arity() {
                return Err(Error::query(format!(
                    "invalid number of arguments for {lower}, expected {}, got {}",
                    f.arity(),
                    args.len()
                )));
            }
            Scalar::Math(
                f,
                args.iter()
                    .map(|a| compile(a, source, now))
                    .collect::<Result<_>>()?,
            )
        }
        Expr::Binary { lhs, op, rhs } => Scalar::Binary(
            Box::new(compile(lhs, source, now)?),
            *op,
            Box::new(compile(rhs, source, now)?),
        ),
        Expr::Wildcard(_) | Expr::Distinct(_) => {
            return Err(Error::query(format!("unsupported expression: {expr}")));
        }
    })
}

/// A literal's value (durations are ns integers).
pub fn literal(lit: &Literal) -> Value {
    match lit {
        Literal::Integer(v) => Value::Integer(*v),
        Literal::Unsigned(v) => Value::Unsigned(*v),
        Literal::Float(v) => Value::Float(*v),
        Literal::String(s) => Value::String(s.clone()),
        Literal::Boolean(b) => Value::Boolean(*b),
        Literal::Duration(d) => Value::Integer(*d),
        Literal::Regex(r) => Value::String(r.clone()),
    }
}

/// A regex literal compiled as Go's RE2 syntax would be read.
pub fn compile_regex(source: &str) -> Result<Regex> {
    Regex::new(source).map_err(|e| Error::query(format!("invalid regex /{source}/: {e}")))
}

impl Scalar {
    /// The value at `point` in a projection (a missing tag is null).
    pub fn eval(&self, point: PointRef<'_>) -> Value {
        self.eval_in(point, false)
    }

    /// Whether `point` meets this condition.
    pub fn matches(&self, point: PointRef<'_>) -> bool {
        matches!(self.eval_in(point, true), Value::Boolean(true))
    }

    fn eval_in(&self, point: PointRef<'_>, condition: bool) -> Value {
        match self {
            Self::Field(i) => point.values[*i].clone(),
            Self::Tag(t) => match point.tags.get(t) {
                Some(v) => Value::String(v.clone()),
                None if condition => Value::String(String::new()),
                None => Value::Null,
            },
            Self::Time => Value::Time(point.time),
            Self::Lit(v) => v.clone(),
            Self::Regex(r) => Value::String(r.as_str().to_string()),
            Self::Cast(inner, to) => match (inner.eval_in(point, condition), to) {
                (Value::Float(f), FieldType::Integer) => Value::Integer(f as i64),
                (Value::Integer(i), FieldType::Float) => Value::Float(i as f64),
                (other, _) => other,
            },
            Self::Math(f, args) => {
                let args: Vec<Value> = args.iter().map(|a| a.eval_in(point, condition)).collect();
                if args.iter().any(Value::is_null) {
                    Value::Null
                } else {
                    f.apply(&args)
                }
            }
            Self::Binary(lhs, op, rhs) => match op {
                BinaryOp::And => Value::Boolean(lhs.matches(point) && rhs.matches(point)),
                BinaryOp::Or => Value::Boolean(lhs.matches(point) || rhs.matches(point)),
                BinaryOp::EqRegex | BinaryOp::NotEqRegex => {
                    let Self::Regex(re) = rhs.as_ref() else {
                        return Value::Boolean(false);
                    };
                    match lhs.eval_in(point, condition) {
                        Value::String(s) => {
                            Value::Boolean(re.is_match(&s) == (*op == BinaryOp::EqRegex))
                        }
                        // A missing tag matches as the empty string; a missing field never.
                        _ => Value::Boolean(false),
                    }
                }
                _ => {
                    let l = lhs.eval_in(point, condition);
                    let r = rhs.eval_in(point, condition);
                    binary(&l, *op, &r)
                }
            },
        }
    }
}

/// `l op r` for the arithmetic, bitwise and comparison operators.
pub fn binary(l: &Value, op: BinaryOp, r: &Value) -> Value {
    use BinaryOp::*;
    if l.is_null() || r.is_null() {
        return match op {
            Eq | NotEq | Lt | LtEq | Gt | GtEq => Value::Boolean(false),
            _ => Value::Null,
        };
    }
    match op {
        Eq | NotEq | Lt | LtEq | Gt | GtEq => compare(l, op, r),
        Add | Sub | Mul | Div | Mod => arithmetic(l, op, r),
        BitAnd | BitOr | BitXor => match (l, r) {
            (Value::Integer(a), Value::Integer(b)) => Value::Integer(match op {
                BitAnd => a & b,
                BitOr => a | b,
                _ => a ^ b,
            }),
            (Value::Unsigned(a), Value::Unsigned(b)) => Value::Unsigned(match op {
                BitAnd => a & b,
                BitOr => a | b,
                _ => a ^ b,
            }),
            (Value::Boolean(a), Value::Boolean(b)) => Value::Boolean(match op {
                BitAnd => a & b,
                BitOr => a | b,
                _ => a ^ b,
            }),
            _ => Value::Null,
        },
        And | Or | EqRegex | NotEqRegex => Value::Null,
    }
}

fn compare(l: &Value, op: BinaryOp, r: &Value) -> Value {
    use std::cmp::Ordering;
    let ordering: Option<Ordering> = match (l, r) {
        (Value::Time(t), other) | (other, Value::Time(t)) => {
            let Some(o) = time_of(other) else {
                return Value::Boolean(false);
            };
            let ord = t.cmp(&o);
            Some(if matches!(l, Value::Time(_)) {
                ord
            } else {
                ord.reverse()
            })
        }
        (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
        (Value::Boolean(a), Value::Boolean(b)) => Some(a.cmp(b)),
        (Value::Integer(a), Value::Integer(b)) => Some(a.cmp(b)),
        (Value::Unsigned(a), Value::Unsigned(b)) => Some(a.cmp(b)),
        (a, b) => match (a.as_f64(), b.as_f64()) {
            (Some(x), Some(y)) => x.partial_cmp(&y),
            _ => None,
        },
    };
    let Some(ordering) = ordering else {
        return Value::Boolean(false);
    };
    Value::Boolean(match op {
        BinaryOp::Eq => ordering == Ordering::Equal,
        BinaryOp::NotEq => ordering != Ordering::Equal,
        BinaryOp::Lt => ordering == Ordering::Less,
        BinaryOp::LtEq => ordering != Ordering::Greater,
        BinaryOp::Gt => ordering == Ordering::Greater,
        _ => ordering != Ordering::Less,
    })
}

fn arithmetic(l: &Value, op: BinaryOp, r: &Value) -> Value {
    use BinaryOp::*;
    match (l, r) {
        (Value::Integer(a), Value::Integer(b)) => match op {
            Add => Value::Integer(a.wrapping_add(*b)),
            Sub => Value::Integer(a.wrapping_sub(*b)),
            Mul => Value::Integer(a.wrapping_mul(*b)),
            Div if *b == 0 => Value::Float(0.0),
            Div => Value::Float(*a as f64 / *b as f64),
            _ if *b == 0 => Value::Integer(0),
            _ => Value::Integer(a.wrapping_rem(*b)),
        },
        (Value::Unsigned(a), Value::Unsigned(b)) => match op {
            Add => Value::Unsigned(a.wrapping_add(*b)),
            Sub => Value::Unsigned(a.wrapping_sub(*b)),
            Mul => Value::Unsigned(a.wrapping_mul(*b)),
            Div if *b == 0 => Value::Float(0.0),
            Div => Value::Float(*a as f64 / *b as f64),
            _ if *b == 0 => Value::Unsigned(0),
            _ => Value::Unsigned(a % b),
        },
        (Value::Time(t), Value::Integer(d)) => match op {
            Add => Value::Time(t.wrapping_add(*d)),
            Sub => Value::Time(t.wrapping_sub(*d)),
            _ => Value::Null,
        },
        (a, b) => match (a.as_f64(), b.as_f64()) {
            (Some(x), Some(y)) => Value::Float(match op {
                Add => x + y,
                Sub => x - y,
                Mul => x * y,
                Div if y == 0.0 => 0.0,
                Div => x / y,
                _ => x % y,
            }),
            _ => Value::Null,
        },
    }
}

/// A value compared with `time`, as ns: a time, an integer (ns), a float, an RFC3339 string.
fn time_of(v: &Value) -> Option<i64> {
    match v {
        Value::Time(t) | Value::Integer(t) => Some(*t),
        Value::Unsigned(u) => i64::try_from(*u).ok(),
        Value::Float(f) => Some(*f as i64),
        Value::String(s) => parse_time(s).ok(),
        _ => None,
    }
}

/// An InfluxQL time string: RFC3339 (`2024-01-01T00:00:00Z`, with fractions and offsets),
/// `2024-01-01 00:00:00[.frac]` (UTC) or a date `2024-01-01`.
pub fn parse_time(s: &str) -> Result<i64> {
    let invalid = || Error::query(format!("invalid timestamp string: '{s}'"));
    let utc = if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        t.to_utc()
    } else if let Ok(t) = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f") {
        t.and_utc()
    } else if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        d.and_hms_opt(0, 0, 0).ok_or_else(invalid)?.and_utc()
    } else {
        return Err(invalid());
    };
    utc.timestamp_nanos_opt().ok_or_else(invalid)
}

/// The value of a time expression in a condition: `now()`, `now() - 1h`, `'2024-…'`, an
/// integer (ns), an epoch with a unit (`1704067200s`), and sums of those with durations.
pub fn time_expr(expr: &Expr, now: i64) -> Result<Option<i64>> {
    Ok(match expr {
        Expr::Nested(inner) => time_expr(inner, now)?,
        Expr::Call { name, args } if name.eq_ignore_ascii_case("now") && args.is_empty() => {
            Some(now)
        }
        Expr::Literal(Literal::String(s)) => Some(parse_time(s).map_err(|_| {
            Error::query("invalid operation: time and *influxql.StringLiteral are not compatible")
        })?),
        Expr::Literal(Literal::Integer(v) | Literal::Duration(v)) => Some(*v),
        Expr::Literal(Literal::Float(f)) => Some(*f as i64),
        Expr::Binary { lhs, op, rhs } if matches!(op, BinaryOp::Add | BinaryOp::Sub) => {
            match (time_expr(lhs, now)?, time_expr(rhs, now)?) {
                (Some(a), Some(b)) if *op == BinaryOp::Add => Some(a.saturating_add(b)),
                (Some(a), Some(b)) => Some(a.saturating_sub(b)),
                _ => None,
            }
        }
        _ => None,
    })
}

/// The time range a condition bounds the query to (inclusive ns), from the comparisons of
/// `time` it ANDs at its top level.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeRange {
    /// Inclusive lower bound.
    pub min: Option<i64>,
    /// Inclusive upper bound.
    pub max: Option<i64>,
}

impl TimeRange {
    /// Narrow to `other`.
    fn intersect(&mut self, min: Option<i64>, max: Option<i64>) {
        if let Some(m) = min {
            self.min = Some(self.min.map_or(m, |x| x.max(m)));
        }
        if let Some(m) = max {
            self.max = Some(self.max.map_or(m, |x| x.min(m)));
        }
    }
}

/// The time bounds of `condition`, and the condition without them (`None`: nothing left).
pub fn split_time(condition: &Expr, now: i64) -> Result<(TimeRange, Option<Expr>)> {
    let mut range = TimeRange::default();
    let rest = strip_time(condition, now, &mut range)?;
    Ok((range, rest))
}

fn is_time(e: &Expr) -> bool {
    match e {
        Expr::VarRef { name, .. } => name.eq_ignore_ascii_case("time"),
        Expr::Nested(inner) => is_time(inner),
        _ => false,
    }
}

fn strip_time(e: &Expr, now: i64, range: &mut TimeRange) -> Result<Option<Expr>> {
    match e {
        Expr::Nested(inner) => strip_time(inner, now, range),
        Expr::Binary {
            lhs,
            op: BinaryOp::And,
            rhs,
        } => {
            let l = strip_time(lhs, now, range)?;
            let r = strip_time(rhs, now, range)?;
            Ok(match (l, r) {
                (Some(l), Some(r)) => Some(Expr::Binary {
                    lhs: Box::new(l),
                    op: BinaryOp::And,
                    rhs: Box::new(r),
                }),
                (l, r) => l.or(r),
            })
        }
        Expr::Binary { lhs, op, rhs } if is_time(lhs) || is_time(rhs) => {
            let (op, other) = if is_time(lhs) {
                (*op, rhs.as_ref())
            } else {
                (flip(*op), lhs.as_ref())
            };
            let Some(t) = time_expr(other, now)? else {
                return Err(Error::query(format!("invalid time comparison: {e}")));
            };
            match op {
                BinaryOp::Gt => range.intersect(Some(t.saturating_add(1)), None),
                BinaryOp::GtEq => range.intersect(Some(t), None),
                BinaryOp::Lt => range.intersect(None, Some(t.saturating_sub(1))),
                BinaryOp::LtEq => range.intersect(None, Some(t)),
                BinaryOp::Eq => range.intersect(Some(t), Some(t)),
                _ => {
                    return Err(Error::query(format!(
                        "invalid time comparison operator: {}",
                        e
                    )));
                }
            }
            Ok(None)
        }
        other => {
            if mentions_time(other) {
                return Err(Error::query(
                    "invalid time condition: time can only be compared in conditions ANDed \
                     together (no OR)",
                ));
            }
            Ok(Some(other.clone()))
        }
    }
}

fn mentions_time(e: &Expr) -> bool {
    match e {
        Expr::Nested(inner) => mentions_time(inner),
        Expr::Binary { lhs, rhs, .. } => mentions_time(lhs) || mentions_time(rhs),
        other => is_time(other),
    }
}

fn flip(op: BinaryOp) -> BinaryOp {
    match op {
        BinaryOp::Gt => BinaryOp::Lt,
        BinaryOp::GtEq => BinaryOp::LtEq,
        BinaryOp::Lt => BinaryOp::Gt,
        BinaryOp::LtEq => BinaryOp::GtEq,
        other => other,
    }
}

/// The `tag = 'value'` comparisons ANDed at the top of `condition` (for pruning).
pub fn tag_equalities(
    condition: &Expr,
    source_tags: &std::collections::BTreeSet<String>,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    collect_equalities(condition, source_tags, &mut out);
    out
}

fn collect_equalities(
    e: &Expr,
    tags: &std::collections::BTreeSet<String>,
    out: &mut Vec<(String, String)>,
) {
    match e {
        Expr::Nested(inner) => collect_equalities(inner, tags, out),
        Expr::Binary {
            lhs,
            op: BinaryOp::And,
            rhs,
        } => {
            collect_equalities(lhs, tags, out);
            collect_equalities(rhs, tags, out);
        }
        Expr::Binary {
            lhs,
            op: BinaryOp::Eq,
            rhs,
        } => {
            if let (Expr::VarRef { name, data_type }, Expr::Literal(Literal::String(v))) =
                (lhs.as_ref(), rhs.as_ref())
                && matches!(data_type, None | Some(VarRefDataType::Tag))
                && tags.contains(name)
                && !v.is_empty()
            {
                out.push((name.clone(), v.clone()));
            }
        }
        _ => {}
    }
}

/// `condition` as a DataFusion filter with the same meaning (a missing tag is `''`; a
/// comparison with a missing field is false), or `None` if part of it has no such form
/// (it is then evaluated point by point instead).
pub fn to_datafusion(condition: &Expr, source: &Source) -> Option<datafusion::logical_expr::Expr> {
    use datafusion::common::{Column, ScalarValue};
    use datafusion::logical_expr::{Expr as Df, lit};
    let column = |name: &str| Df::Column(Column::from_name(name));
    // A tag with its absence read as ''.
    let tag = |name: &str| {
        datafusion::functions::expr_fn::coalesce(vec![
            datafusion::functions::expr_fn::arrow_cast(column(name), lit("Utf8")),
            lit(""),
        ])
    };
    match condition {
        Expr::Nested(inner) => to_datafusion(inner, source),
        Expr::Binary {
            lhs,
            op: op @ (BinaryOp::And | BinaryOp::Or),
            rhs,
        } => {
            let l = to_datafusion(lhs, source)?;
            let r = to_datafusion(rhs, source)?;
            Some(if *op == BinaryOp::And {
                l.and(r)
            } else {
                l.or(r)
            })
        }
        Expr::Binary { lhs, op, rhs } => {
            let (Expr::VarRef { name, data_type }, Expr::Literal(literal)) =
                (lhs.as_ref(), rhs.as_ref())
            else {
                return None;
            };
            if !matches!(
                data_type,
                None | Some(VarRefDataType::Field | VarRefDataType::Tag)
            ) {
                return None;
            }
            let target = match resolve(source, name, *data_type) {
                Resolved::Field(i) => column(&source.fields[i].0),
                // `tag = 'v'` for a non-empty `v` as the plain comparison, which prunes files,
                // row groups and ingester rows as SQL's does: a missing tag compares as null
                // instead of false, and a filter built only of AND and OR keeps the same rows
                // either way.
                Resolved::Tag(t)
                    if *op == BinaryOp::Eq
                        && matches!(literal, Literal::String(v) if !v.is_empty()) =>
                {
                    column(&t)
                }
                Resolved::Tag(t) => tag(&t),
                Resolved::Missing => return Some(lit(false)),
                Resolved::Time => return None,
            };
            if let (BinaryOp::EqRegex | BinaryOp::NotEqRegex, Literal::Regex(re)) = (op, literal) {
                let matches =
                    datafusion::functions::expr_fn::regexp_like(target, lit(re.as_str()), None);
                return Some(if *op == BinaryOp::EqRegex {
                    matches
                } else {
                    // A missing field never matches either way.
                    matches
                        .clone()
                        .is_not_null()
                        .and(datafusion::logical_expr::not(matches))
                });
            }
            let value = match literal {
                Literal::Integer(i) => ScalarValue::Int64(Some(*i)),
                Literal::Unsigned(u) => ScalarValue::UInt64(Some(*u)),
                Literal::Float(f) => ScalarValue::Float64(Some(*f)),
                Literal::String(s) => ScalarValue::Utf8(Some(s.clone())),
                Literal::Boolean(b) => ScalarValue::Boolean(Some(*b)),
                Literal::Duration(_) | Literal::Regex(_) => return None,
            };
            let value = lit(value);
            Some(match op {
                BinaryOp::Eq => target.eq(value),
                BinaryOp::NotEq => target.not_eq(value),
                BinaryOp::Lt => target.lt(value),
                BinaryOp::LtEq => target.lt_eq(value),
                BinaryOp::Gt => target.gt(value),
                BinaryOp::GtEq => target.gt_eq(value),
                _ => return None,
            })
        }
        _ => None,
    }
}
