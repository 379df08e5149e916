//! Values of InfluxQL results and of the points they are computed from.

use std::cmp::Ordering;

/// One cell: a field value, a tag value, a time or nothing.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// No value (a missing field, an empty bucket).
    Null,
    /// A float field or a computed float.
    Float(f64),
    /// A signed integer.
    Integer(i64),
    /// An unsigned integer.
    Unsigned(u64),
    /// A string field or a tag value.
    String(String),
    /// A boolean field.
    Boolean(bool),
    /// A timestamp, ns since the epoch (rendered per the request's `epoch`).
    Time(i64),
}

impl Value {
    /// Whether this is [`Value::Null`].
    pub fn is_null(&self) -> bool {
        matches!(self, Self::Null)
    }

    /// The value as a float, for numbers.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Self::Float(v) => Some(*v),
            Self::Integer(v) => Some(*v as f64),
            Self::Unsigned(v) => Some(*v as f64),
            _ => None,
        }
    }

    /// Whether the value is a number.
    pub fn is_numeric(&self) -> bool {
        matches!(self, Self::Float(_) | Self::Integer(_) | Self::Unsigned(_))
    }

    /// Total order among values of one column: numbers by value, then strings, booleans
    /// (false first). Nulls first.
    pub fn total_cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Self::Integer(a), Self::Integer(b)) => a.cmp(b),
            (Self::Unsigned(a), Self::Unsigned(b)) => a.cmp(b),
            (Self::String(a), Self::String(b)) => a.cmp(b),
            (Self::Boolean(a), Self::Boolean(b)) => a.cmp(b),
            (Self::Time(a), Self::Time(b)) => a.cmp(b),
            (Self::Null, Self::Null) => Ordering::Equal,
            (Self::Null, _) => Ordering::Less,
            (_, Self::Null) => Ordering::Greater,
            (a, b) => match (a.as_f64(), b.as_f64()) {
                (Some(x), Some(y)) => x.total_cmp(&y),
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => rank(a).cmp(&rank(b)),
            },
        }
    }
}

/// Order of the non-numeric kinds when compared with each other.
fn rank(v: &Value) -> u8 {
    match v {
        Value::Null => 0,
        Value::Float(_) | Value::Integer(_) | Value::Unsigned(_) => 1,
        Value::String(_) => 2,
        Value::Boolean(_) => 3,
        Value::Time(_) => 4,
    }
}

/// The InfluxQL type of a field column (`SHOW FIELD KEYS`, `::` casts, function rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    /// `float`.
    Float,
    /// `integer`.
    Integer,
    /// `unsigned`.
    Unsigned,
    /// `string`.
    String,
    /// `boolean`.
    Boolean,
}

impl FieldType {
    /// The name InfluxDB shows.
    pub fn name(self) -> &'static str {
        match self {
            Self::Float => "float",
            Self::Integer => "integer",
            Self::Unsigned => "unsigned",
            Self::String => "string",
            Self::Boolean => "boolean",
        }
    }
}
