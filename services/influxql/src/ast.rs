//! The syntax tree a planner works from, and its canonical InfluxQL text.
//!
//! Every type's `Display` prints InfluxQL in InfluxDB's `String()` style (upper-case keywords,
//! identifiers quoted only when they must be), so `parse(display(parse(q))) == parse(q)`.
//! Binary expressions print without parentheses: the parser keeps the ones the user wrote as
//! [`Expr::Nested`], so a tree it built prints back to the same tree.

use std::fmt::{self, Display, Formatter, Write as _};

use crate::lexer::{
    self, NANOS_PER_DAY, NANOS_PER_HOUR, NANOS_PER_MICRO, NANOS_PER_MILLI, NANOS_PER_MINUTE,
    NANOS_PER_SECOND, NANOS_PER_WEEK,
};

/// One InfluxQL statement.
#[derive(Debug, Clone, PartialEq)]
pub enum Statement {
    /// `SELECT …`
    Select(Box<SelectStatement>),
    /// `SHOW DATABASES`
    ShowDatabases,
    /// `SHOW MEASUREMENTS …`
    ShowMeasurements(ShowMeasurementsStatement),
    /// `SHOW TAG KEYS …`
    ShowTagKeys(ShowTagKeysStatement),
    /// `SHOW TAG VALUES … WITH KEY …`
    ShowTagValues(ShowTagValuesStatement),
    /// `SHOW FIELD KEYS …`
    ShowFieldKeys(ShowFieldKeysStatement),
    /// `SHOW SERIES …`
    ShowSeries(ShowSeriesStatement),
    /// `SHOW RETENTION POLICIES [ON db]`
    ShowRetentionPolicies(ShowRetentionPoliciesStatement),
    /// `CREATE DATABASE name [WITH …]`
    CreateDatabase(CreateDatabaseStatement),
}

/// `SELECT fields FROM sources [WHERE] [GROUP BY] [fill()] [ORDER BY] [LIMIT] [OFFSET]
/// [SLIMIT] [SOFFSET] [tz()]`.
#[derive(Debug, Clone, PartialEq)]
pub struct SelectStatement {
    /// The projection, at least one.
    pub fields: Vec<Field>,
    /// `FROM`, at least one.
    pub sources: Vec<Source>,
    /// `WHERE`.
    pub condition: Option<Expr>,
    /// `GROUP BY`, empty when absent.
    pub dimensions: Vec<Dimension>,
    /// `fill(…)`.
    pub fill: Option<Fill>,
    /// `ORDER BY time ASC|DESC` (only `time` can be ordered by).
    pub order_by: Option<SortOrder>,
    /// `LIMIT n`: rows per series.
    pub limit: Option<u64>,
    /// `OFFSET n`: rows per series.
    pub offset: Option<u64>,
    /// `SLIMIT n`: series.
    pub series_limit: Option<u64>,
    /// `SOFFSET n`: series.
    pub series_offset: Option<u64>,
    /// `tz('Area/City')`.
    pub timezone: Option<String>,
}

/// One projected expression and its `AS` alias.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// What is projected.
    pub expr: Expr,
    /// `AS alias`.
    pub alias: Option<String>,
}

/// One `FROM` source.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// `[db.[rp].]measurement` or a regex over measurement names.
    Measurement(QualifiedMeasurementName),
    /// `(SELECT …)`.
    Subquery(Box<SelectStatement>),
}

/// `measurement`, `rp.measurement`, `db.rp.measurement` or `db..measurement`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QualifiedMeasurementName {
    /// Database, when given.
    pub database: Option<String>,
    /// Retention policy, when given.
    pub retention_policy: Option<String>,
    /// The measurement or a regex over measurement names.
    pub name: MeasurementName,
}

/// A measurement by name or by regex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MeasurementName {
    /// An exact name.
    Name(String),
    /// A regex, as its source (between the slashes, `\/` already turned into `/`).
    Regex(String),
}

/// An expression: a projection, a function argument or a condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A field or tag reference, optionally typed (`usage::float`).
    VarRef {
        /// The field or tag key.
        name: String,
        /// The `::type` cast.
        data_type: Option<VarRefDataType>,
    },
    /// `*`, `*::field` or `*::tag`.
    Wildcard(Option<WildcardType>),
    /// A constant.
    Literal(Literal),
    /// `$name`, a bind parameter not yet substituted.
    BindParam(String),
    /// `name(args…)`, any function name (checked by the planner, not here).
    Call {
        /// Function name as written.
        name: String,
        /// Arguments.
        args: Vec<Expr>,
    },
    /// `DISTINCT x`, the shorthand for `distinct(x)`.
    Distinct(String),
    /// `lhs op rhs`.
    Binary {
        /// Left operand.
        lhs: Box<Expr>,
        /// Operator.
        op: BinaryOp,
        /// Right operand.
        rhs: Box<Expr>,
    },
    /// `(expr)`, kept so the tree prints back as written.
    Nested(Box<Expr>),
}

/// The `::type` of a variable reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VarRefDataType {
    /// `::field`
    Field,
    /// `::tag`
    Tag,
    /// `::integer`
    Integer,
    /// `::float`
    Float,
    /// `::string`
    String,
    /// `::boolean`
    Boolean,
    /// `::unsigned`
    Unsigned,
}

/// The `::type` of a wildcard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WildcardType {
    /// `*::field`
    Field,
    /// `*::tag`
    Tag,
}

/// A constant.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// An integer that fits `i64` (a leading minus folded in).
    Integer(i64),
    /// An integer above `i64::MAX`.
    Unsigned(u64),
    /// A number with a decimal point.
    Float(f64),
    /// A single-quoted string, unescaped.
    String(String),
    /// `true` / `false`.
    Boolean(bool),
    /// A duration (`1h30m`), in nanoseconds.
    Duration(i64),
    /// A regex, as its source (see [`MeasurementName::Regex`]).
    Regex(String),
}

/// A binary operator. Precedence, loosest first: `OR`; `AND`; comparisons; `+ - | ^`;
/// `* / % &`. All are left-associative.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `%`
    Mod,
    /// `&`
    BitAnd,
    /// `|`
    BitOr,
    /// `^`
    BitXor,
    /// `=`
    Eq,
    /// `!=` (also written `<>`)
    NotEq,
    /// `<`
    Lt,
    /// `<=`
    LtEq,
    /// `>`
    Gt,
    /// `>=`
    GtEq,
    /// `=~`
    EqRegex,
    /// `!~`
    NotEqRegex,
    /// `AND`
    And,
    /// `OR`
    Or,
}

impl BinaryOp {
    /// Binding strength: higher binds tighter (InfluxDB's values).
    pub fn precedence(self) -> u8 {
        match self {
            Self::Or => 1,
            Self::And => 2,
            Self::Eq
            | Self::NotEq
            | Self::Lt
            | Self::LtEq
            | Self::Gt
            | Self::GtEq
            | Self::EqRegex
            | Self::NotEqRegex => 4,
            Self::Add | Self::Sub | Self::BitOr | Self::BitXor => 5,
            Self::Mul | Self::Div | Self::Mod | Self::BitAnd => 6,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Add => "+",
            Self::Sub => "-",
            Self::Mul => "*",
            Self::Div => "/",
            Self::Mod => "%",
            Self::BitAnd => "&",
            Self::BitOr => "|",
            Self::BitXor => "^",
            Self::Eq => "=",
            Self::NotEq => "!=",
            Self::Lt => "<",
            Self::LtEq => "<=",
            Self::Gt => ">",
            Self::GtEq => ">=",
            Self::EqRegex => "=~",
            Self::NotEqRegex => "!~",
            Self::And => "AND",
            Self::Or => "OR",
        }
    }
}

/// One `GROUP BY` dimension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dimension {
    /// `time(interval[, offset])`, in nanoseconds.
    Time {
        /// Bucket width.
        interval: i64,
        /// Shift of the bucket boundaries (may be negative).
        offset: Option<i64>,
    },
    /// A tag key.
    Tag(String),
    /// Every tag key matching a regex.
    Regex(String),
    /// `*`: every tag key.
    Wildcard,
}

/// `fill(…)`: what an empty `GROUP BY time()` bucket yields.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fill {
    /// `fill(null)`, the default.
    Null,
    /// `fill(none)`: no row.
    None,
    /// `fill(previous)`
    Previous,
    /// `fill(linear)`
    Linear,
    /// `fill(<integer>)`
    Integer(i64),
    /// `fill(<float>)`
    Float(f64),
}

/// `ORDER BY time ASC|DESC`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortOrder {
    /// Oldest first (the default).
    Ascending,
    /// Newest first.
    Descending,
}

/// `SHOW MEASUREMENTS [ON db] [WITH MEASUREMENT =|=~ …] [WHERE] [LIMIT] [OFFSET]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ShowMeasurementsStatement {
    /// `ON db`.
    pub database: Option<String>,
    /// `WITH MEASUREMENT = name` ([`MeasurementName::Name`]) or `=~ /re/` (`Regex`).
    pub with_measurement: Option<MeasurementName>,
    /// `WHERE` over tags.
    pub condition: Option<Expr>,
    /// `LIMIT n`.
    pub limit: Option<u64>,
    /// `OFFSET n`.
    pub offset: Option<u64>,
}

/// `SHOW TAG KEYS [ON db] [FROM …] [WHERE] [LIMIT] [OFFSET]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ShowTagKeysStatement {
    /// `ON db`.
    pub database: Option<String>,
    /// `FROM`, empty when absent.
    pub sources: Vec<QualifiedMeasurementName>,
    /// `WHERE`.
    pub condition: Option<Expr>,
    /// `LIMIT n`.
    pub limit: Option<u64>,
    /// `OFFSET n`.
    pub offset: Option<u64>,
}

/// `SHOW TAG VALUES [ON db] [FROM …] WITH KEY … [WHERE] [LIMIT] [OFFSET]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ShowTagValuesStatement {
    /// `ON db`.
    pub database: Option<String>,
    /// `FROM`, empty when absent.
    pub sources: Vec<QualifiedMeasurementName>,
    /// Which tag keys' values to list.
    pub key: ShowTagValuesKey,
    /// `WHERE`.
    pub condition: Option<Expr>,
    /// `LIMIT n`.
    pub limit: Option<u64>,
    /// `OFFSET n`.
    pub offset: Option<u64>,
}

/// The `WITH KEY` clause of `SHOW TAG VALUES`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShowTagValuesKey {
    /// `= key`
    Eq(String),
    /// `!= key`
    NotEq(String),
    /// `=~ /re/`
    EqRegex(String),
    /// `!~ /re/`
    NotEqRegex(String),
    /// `IN (key, …)`
    In(Vec<String>),
}

/// `SHOW FIELD KEYS [ON db] [FROM …] [LIMIT] [OFFSET]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ShowFieldKeysStatement {
    /// `ON db`.
    pub database: Option<String>,
    /// `FROM`, empty when absent.
    pub sources: Vec<QualifiedMeasurementName>,
    /// `LIMIT n`.
    pub limit: Option<u64>,
    /// `OFFSET n`.
    pub offset: Option<u64>,
}

/// `SHOW SERIES [ON db] [FROM …] [WHERE] [LIMIT] [OFFSET]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ShowSeriesStatement {
    /// `ON db`.
    pub database: Option<String>,
    /// `FROM`, empty when absent.
    pub sources: Vec<QualifiedMeasurementName>,
    /// `WHERE`.
    pub condition: Option<Expr>,
    /// `LIMIT n`.
    pub limit: Option<u64>,
    /// `OFFSET n`.
    pub offset: Option<u64>,
}

/// `SHOW RETENTION POLICIES [ON db]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShowRetentionPoliciesStatement {
    /// `ON db`.
    pub database: Option<String>,
}

/// `CREATE DATABASE name [WITH [DURATION d] [REPLICATION n] [SHARD DURATION d] [NAME rp]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateDatabaseStatement {
    /// The database.
    pub name: String,
    /// `DURATION`, nanoseconds; `0` is `INF` (keep forever).
    pub duration: Option<i64>,
    /// `REPLICATION n`.
    pub replication: Option<u64>,
    /// `SHARD DURATION`, nanoseconds.
    pub shard_duration: Option<i64>,
    /// `NAME rp`: the default retention policy's name.
    pub retention_policy_name: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Display

/// An identifier, double-quoted when it is empty, a keyword or not a bare identifier.
pub struct Ident<'a>(pub &'a str);

impl Display for Ident<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let s = self.0;
        let bare = s
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && lexer::keyword(s).is_none();
        if bare {
            return f.write_str(s);
        }
        f.write_char('"')?;
        for c in s.chars() {
            match c {
                '"' => f.write_str("\\\"")?,
                '\\' => f.write_str("\\\\")?,
                '\n' => f.write_str("\\n")?,
                c => f.write_char(c)?,
            }
        }
        f.write_char('"')
    }
}

/// A single-quoted string literal.
struct Quoted<'a>(&'a str);

impl Display for Quoted<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_char('\'')?;
        for c in self.0.chars() {
            match c {
                '\'' => f.write_str("\\'")?,
                '\\' => f.write_str("\\\\")?,
                '\n' => f.write_str("\\n")?,
                c => f.write_char(c)?,
            }
        }
        f.write_char('\'')
    }
}

/// A regex literal `/…/`.
struct Regex<'a>(&'a str);

impl Display for Regex<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "/{}/", self.0.replace('/', "\\/"))
    }
}

/// A duration in InfluxDB's format: the largest unit that divides it evenly (`90m`, `1w`).
pub struct DurationDisplay(pub i64);

impl Display for DurationDisplay {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let nanos = self.0;
        if nanos == 0 {
            return f.write_str("0s");
        }
        if nanos < 0 {
            f.write_char('-')?;
        }
        let abs = nanos.unsigned_abs();
        const UNITS: &[(i64, &str)] = &[
            (NANOS_PER_WEEK, "w"),
            (NANOS_PER_DAY, "d"),
            (NANOS_PER_HOUR, "h"),
            (NANOS_PER_MINUTE, "m"),
            (NANOS_PER_SECOND, "s"),
            (NANOS_PER_MILLI, "ms"),
            (NANOS_PER_MICRO, "u"),
        ];
        for &(unit, suffix) in UNITS {
            let unit = unit.unsigned_abs();
            if abs.is_multiple_of(unit) {
                return write!(f, "{}{suffix}", abs / unit);
            }
        }
        write!(f, "{abs}ns")
    }
}

/// Writes `items` separated by `, `.
fn comma_list<T: Display>(f: &mut Formatter<'_>, items: &[T]) -> fmt::Result {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        item.fmt(f)?;
    }
    Ok(())
}

/// A float that reads back as a float: always with a decimal point.
fn write_float(f: &mut Formatter<'_>, v: f64) -> fmt::Result {
    let text = v.to_string();
    if text.contains('.') || !v.is_finite() {
        f.write_str(&text)
    } else {
        write!(f, "{text}.0")
    }
}

impl Display for Statement {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Self::Select(s) => s.fmt(f),
            Self::ShowDatabases => f.write_str("SHOW DATABASES"),
            Self::ShowMeasurements(s) => s.fmt(f),
            Self::ShowTagKeys(s) => s.fmt(f),
            Self::ShowTagValues(s) => s.fmt(f),
            Self::ShowFieldKeys(s) => s.fmt(f),
            Self::ShowSeries(s) => s.fmt(f),
            Self::ShowRetentionPolicies(s) => s.fmt(f),
            Self::CreateDatabase(s) => s.fmt(f),
        }
    }
}

fn write_on(f: &mut Formatter<'_>, database: Option<&String>) -> fmt::Result {
    match database {
        Some(db) => write!(f, " ON {}", Ident(db)),
        None => Ok(()),
    }
}

fn write_from(f: &mut Formatter<'_>, sources: &[QualifiedMeasurementName]) -> fmt::Result {
    if sources.is_empty() {
        return Ok(());
    }
    f.write_str(" FROM ")?;
    comma_list(f, sources)
}

fn write_where(f: &mut Formatter<'_>, condition: Option<&Expr>) -> fmt::Result {
    match condition {
        Some(c) => write!(f, " WHERE {c}"),
        None => Ok(()),
    }
}

fn write_count(f: &mut Formatter<'_>, keyword: &str, value: Option<u64>) -> fmt::Result {
    match value {
        Some(n) => write!(f, " {keyword} {n}"),
        None => Ok(()),
    }
}

impl Display for SelectStatement {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str("SELECT ")?;
        comma_list(f, &self.fields)?;
        f.write_str(" FROM ")?;
        comma_list(f, &self.sources)?;
        write_where(f, self.condition.as_ref())?;
        if !self.dimensions.is_empty() {
            f.write_str(" GROUP BY ")?;
            comma_list(f, &self.dimensions)?;
        }
        if let Some(fill) = self.fill {
            write!(f, " {fill}")?;
        }
        match self.order_by {
            Some(SortOrder::Ascending) => f.write_str(" ORDER BY time ASC")?,
            Some(SortOrder::Descending) => f.write_str(" ORDER BY time DESC")?,
            None => {}
        }
        write_count(f, "LIMIT", self.limit)?;
        write_count(f, "OFFSET", self.offset)?;
        write_count(f, "SLIMIT", self.series_limit)?;
        write_count(f, "SOFFSET", self.series_offset)?;
        if let Some(tz) = &self.timezone {
            write!(f, " tz({})", Quoted(tz))?;
        }
        Ok(())
    }
}

impl Display for Field {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        self.expr.fmt(f)?;
        match &self.alias {
            Some(alias) => write!(f, " AS {}", Ident(alias)),
            None => Ok(()),
        }
    }
}

impl Display for Source {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Self::Measurement(m) => m.fmt(f),
            Self::Subquery(s) => write!(f, "({s})"),
        }
    }
}

impl Display for QualifiedMeasurementName {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match (&self.database, &self.retention_policy) {
            (Some(db), Some(rp)) => write!(f, "{}.{}.", Ident(db), Ident(rp))?,
            (Some(db), None) => write!(f, "{}..", Ident(db))?,
            (None, Some(rp)) => write!(f, "{}.", Ident(rp))?,
            (None, None) => {}
        }
        self.name.fmt(f)
    }
}

impl Display for MeasurementName {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Self::Name(name) => Ident(name).fmt(f),
            Self::Regex(re) => Regex(re).fmt(f),
        }
    }
}

impl Display for Expr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Self::VarRef { name, data_type } => {
                Ident(name).fmt(f)?;
                match data_type {
                    Some(t) => write!(f, "::{t}"),
                    None => Ok(()),
                }
            }
            Self::Wildcard(None) => f.write_str("*"),
            Self::Wildcard(Some(WildcardType::Field)) => f.write_str("*::field"),
            Self::Wildcard(Some(WildcardType::Tag)) => f.write_str("*::tag"),
            Self::Literal(l) => l.fmt(f),
            Self::BindParam(name) => write!(f, "${name}"),
            Self::Call { name, args } => {
                // `distinct` is a keyword but reads back as a call when followed by `(`
                // (with its name in lower case).
                if name == "distinct" {
                    write!(f, "{name}(")?;
                } else {
                    write!(f, "{}(", Ident(name))?;
                }
                comma_list(f, args)?;
                f.write_char(')')
            }
            Self::Distinct(name) => write!(f, "DISTINCT {}", Ident(name)),
            Self::Binary { lhs, op, rhs } => write!(f, "{lhs} {} {rhs}", op.as_str()),
            Self::Nested(e) => write!(f, "({e})"),
        }
    }
}

impl Display for VarRefDataType {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Field => "field",
            Self::Tag => "tag",
            Self::Integer => "integer",
            Self::Float => "float",
            Self::String => "string",
            Self::Boolean => "boolean",
            Self::Unsigned => "unsigned",
        })
    }
}

impl Display for Literal {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Self::Integer(v) => write!(f, "{v}"),
            Self::Unsigned(v) => write!(f, "{v}"),
            Self::Float(v) => write_float(f, *v),
            Self::String(s) => Quoted(s).fmt(f),
            Self::Boolean(true) => f.write_str("true"),
            Self::Boolean(false) => f.write_str("false"),
            Self::Duration(d) => DurationDisplay(*d).fmt(f),
            Self::Regex(re) => Regex(re).fmt(f),
        }
    }
}

impl Display for BinaryOp {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Display for Dimension {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Self::Time { interval, offset } => {
                write!(f, "time({}", DurationDisplay(*interval))?;
                if let Some(offset) = offset {
                    write!(f, ", {}", DurationDisplay(*offset))?;
                }
                f.write_char(')')
            }
            Self::Tag(tag) => Ident(tag).fmt(f),
            Self::Regex(re) => Regex(re).fmt(f),
            Self::Wildcard => f.write_char('*'),
        }
    }
}

impl Display for Fill {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Self::Null => f.write_str("fill(null)"),
            Self::None => f.write_str("fill(none)"),
            Self::Previous => f.write_str("fill(previous)"),
            Self::Linear => f.write_str("fill(linear)"),
            Self::Integer(v) => write!(f, "fill({v})"),
            Self::Float(v) => {
                f.write_str("fill(")?;
                write_float(f, *v)?;
                f.write_char(')')
            }
        }
    }
}

impl Display for ShowMeasurementsStatement {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str("SHOW MEASUREMENTS")?;
        write_on(f, self.database.as_ref())?;
        match &self.with_measurement {
            Some(MeasurementName::Name(name)) => {
                write!(f, " WITH MEASUREMENT = {}", Ident(name))?;
            }
            Some(MeasurementName::Regex(re)) => write!(f, " WITH MEASUREMENT =~ {}", Regex(re))?,
            None => {}
        }
        write_where(f, self.condition.as_ref())?;
        write_count(f, "LIMIT", self.limit)?;
        write_count(f, "OFFSET", self.offset)
    }
}

impl Display for ShowTagKeysStatement {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str("SHOW TAG KEYS")?;
        write_on(f, self.database.as_ref())?;
        write_from(f, &self.sources)?;
        write_where(f, self.condition.as_ref())?;
        write_count(f, "LIMIT", self.limit)?;
        write_count(f, "OFFSET", self.offset)
    }
}

impl Display for ShowTagValuesStatement {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str("SHOW TAG VALUES")?;
        write_on(f, self.database.as_ref())?;
        write_from(f, &self.sources)?;
        write!(f, " WITH KEY {}", self.key)?;
        write_where(f, self.condition.as_ref())?;
        write_count(f, "LIMIT", self.limit)?;
        write_count(f, "OFFSET", self.offset)
    }
}

impl Display for ShowTagValuesKey {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Self::Eq(key) => write!(f, "= {}", Ident(key)),
            Self::NotEq(key) => write!(f, "!= {}", Ident(key)),
            Self::EqRegex(re) => write!(f, "=~ {}", Regex(re)),
            Self::NotEqRegex(re) => write!(f, "!~ {}", Regex(re)),
            Self::In(keys) => {
                f.write_str("IN (")?;
                let keys: Vec<Ident<'_>> = keys.iter().map(|k| Ident(k)).collect();
                comma_list(f, &keys)?;
                f.write_char(')')
            }
        }
    }
}

impl Display for ShowFieldKeysStatement {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str("SHOW FIELD KEYS")?;
        write_on(f, self.database.as_ref())?;
        write_from(f, &self.sources)?;
        write_count(f, "LIMIT", self.limit)?;
        write_count(f, "OFFSET", self.offset)
    }
}

impl Display for ShowSeriesStatement {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str("SHOW SERIES")?;
        write_on(f, self.database.as_ref())?;
        write_from(f, &self.sources)?;
        write_where(f, self.condition.as_ref())?;
        write_count(f, "LIMIT", self.limit)?;
        write_count(f, "OFFSET", self.offset)
    }
}

impl Display for ShowRetentionPoliciesStatement {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str("SHOW RETENTION POLICIES")?;
        write_on(f, self.database.as_ref())
    }
}

impl Display for CreateDatabaseStatement {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "CREATE DATABASE {}", Ident(&self.name))?;
        let any_option = self.duration.is_some()
            || self.replication.is_some()
            || self.shard_duration.is_some()
            || self.retention_policy_name.is_some();
        if !any_option {
            return Ok(());
        }
        f.write_str(" WITH")?;
        match self.duration {
            Some(0) => f.write_str(" DURATION INF")?,
            Some(d) => write!(f, " DURATION {}", DurationDisplay(d))?,
            None => {}
        }
        write_count(f, "REPLICATION", self.replication)?;
        if let Some(d) = self.shard_duration {
            write!(f, " SHARD DURATION {}", DurationDisplay(d))?;
        }
        match &self.retention_policy_name {
            Some(rp) => write!(f, " NAME {}", Ident(rp)),
            None => Ok(()),
        }
    }
}
