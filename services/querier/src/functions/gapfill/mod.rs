//! Gap filling: `date_bin_gapfill`, `locf` and `interpolate`, as in InfluxDB 3.
//!
//! ```sql
//! SELECT date_bin_gapfill(INTERVAL '10 minutes', time) AS minute, host, locf(avg(usage))
//! FROM cpu WHERE time >= '2024-01-01T00:00:00Z' AND time < '2024-01-01T01:00:00Z'
//! GROUP BY 1, host
//! ```
//!
//! An aggregate grouped by time bins has no row for a bin without data; this query returns
//! one row per series (the other GROUP BY columns) and bin of the WHERE clause's time range.
//! None of the three functions is ever evaluated as such: an analyzer rule rewrites the plan.
//!
//! ```text
//!  Projection [minute, host, locf(avg(usage))]      Projection [minute, host, avg(usage)]
//!   Aggregate [date_bin_gapfill(..), host]   ──►     GapFill (series [host], time, locf avg)
//!    Filter time >= A AND time < B                    Aggregate [date_bin(..), host]
//!     TableScan cpu                                    Filter time >= A AND time < B ...
//!
//!  physical: SortExec(host, time) ─► GapFillExec (one partition, one series at a time)
//! ```
//!
//! - [`rule::GapFillRule`] finds an Aggregate grouping by `date_bin_gapfill`, groups by plain
//!   `date_bin` instead, reads the time range from the filters below it and puts a [`GapFill`]
//!   node above it; `locf(x)` / `interpolate(x)` directly above become fill strategies of
//!   that node. Any of the three functions left anywhere else is a planning error.
//! - [`exec::GapFillExec`] takes the aggregate's rows sorted by (series, time) and inserts
//!   a row for every missing bin in `[date_bin(start), end)`, then fills values.
//!
//! Semantics:
//! - the range is half-open `[start, end)`, from the WHERE clause's bounds on the time
//!   column: `>=`, `>`, `<`, `<=`, `=`, `BETWEEN`, with any constant expression (timestamp
//!   or RFC 3339 string literals, `now() - INTERVAL '1 hour'`, evaluated once, at the same
//!   instant as the filters); several bounds on one side take the tightest; both sides are
//!   required. Bounds inside `OR` or `NOT` are not bounds;
//! - the first bin is the one holding `start` (it may begin before `start`);
//! - only series present in the aggregate's output are filled (a series with no row in the
//!   range does not appear);
//! - gap rows carry the series' values and NULL in every aggregate column, unless
//!   `locf`: the last non-null value of the series before the row (a leading gap stays NULL),
//!   `interpolate`: the linear interpolation between the series' non-null values before and
//!   after the row (leading and trailing gaps stay NULL; integers round to nearest, halves
//!   away from zero). Both also replace NULLs the aggregate itself produced;
//! - `locf` / `interpolate` wrap an aggregate directly (`locf(avg(usage))`, also inside an
//!   expression such as `locf(selector_last(usage, time))['value']`); one aggregate gets one
//!   treatment per query, and neither combines with HAVING;
//! - strides are fixed durations (days and shorter); month strides are rejected.

mod exec;
mod rule;

use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;

use arrow::datatypes::DataType;
use datafusion::common::{Column, DFSchema, DFSchemaRef, plan_err};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{
    ColumnarValue, Expr, LogicalPlan, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    UserDefinedLogicalNodeCore, Volatility,
};

pub(crate) use exec::GapFillPlanner;
pub(crate) use rule::GapFillRule;

/// Name of the gap-filling binning function.
pub(crate) const DATE_BIN_GAPFILL: &str = "date_bin_gapfill";
/// Name of the last-observation-carried-forward fill.
pub(crate) const LOCF: &str = "locf";
/// Name of the linear-interpolation fill.
pub(crate) const INTERPOLATE: &str = "interpolate";

/// Why a gap-filling query cannot be planned or run.
#[derive(Debug, thiserror::Error)]
pub(crate) enum GapFillError {
    /// The WHERE clause bounds time on at most one side.
    #[error(
        "date_bin_gapfill requires a WHERE clause with a lower and an upper bound on time \
         (e.g. time >= '2024-01-01T00:00:00Z' AND time < '2024-01-02T00:00:00Z'); \
         missing: {missing}"
    )]
    MissingTimeBound {
        /// `lower bound`, `upper bound` or both.
        missing: &'static str,
    },
    /// `date_bin_gapfill` used outside the GROUP BY of an aggregate.
    #[error(
        "date_bin_gapfill may only be used as a GROUP BY expression of an aggregate query \
         (e.g. SELECT date_bin_gapfill(INTERVAL '1 minute', time), avg(usage) ... GROUP BY 1)"
    )]
    GapfillOutsideGroupBy,
    /// More than one GROUP BY expression bins time with `date_bin_gapfill`.
    #[error("only one date_bin_gapfill may appear in a GROUP BY")]
    SeveralGapfills,
    /// GROUPING SETS, CUBE or ROLLUP around `date_bin_gapfill`.
    #[error("date_bin_gapfill cannot be used with GROUPING SETS, CUBE or ROLLUP")]
    GroupingSets,
    /// The second argument of `date_bin_gapfill` is not a column.
    #[error("date_bin_gapfill's second argument must be the time column, got {0}")]
    TimeNotAColumn(String),
    /// A stride or origin that refers to columns or changes from row to row.
    #[error("date_bin_gapfill's {what} must be a constant, got {expr}")]
    NotConstant {
        /// `stride` or `origin`.
        what: &'static str,
        /// The offending expression.
        expr: String,
    },
    /// `locf` or `interpolate` without `date_bin_gapfill` below it.
    #[error(
        "{function} may only be used in the SELECT list of a query grouped by \
         date_bin_gapfill, around an aggregate (e.g. {function}(avg(usage)))"
    )]
    FillOutsideGapfill {
        /// `locf` or `interpolate`.
        function: &'static str,
    },
    /// `locf` or `interpolate` in a query that also has a HAVING clause.
    #[error(
        "{function} cannot be combined with HAVING; filter the gap-filled rows in an outer \
         query instead"
    )]
    FillWithHaving {
        /// `locf` or `interpolate`.
        function: &'static str,
    },
    /// `locf(x)` where `x` is not an aggregate of the gap-filled query.
    #[error("{function} must be applied to an aggregate function directly, got {function}({arg})")]
    FillNotOnAggregate {
        /// `locf` or `interpolate`.
        function: &'static str,
        /// The argument given.
        arg: String,
    },
    /// One aggregate used with two different fills, or both filled and unfilled.
    #[error(
        "{column} is used with different fills in one query ({first} and {second}); \
         compute it once"
    )]
    ConflictingFills {
        /// The aggregate column.
        column: String,
        /// One use.
        first: &'static str,
        /// Another use.
        second: &'static str,
    },
    /// `interpolate` over a value that is not a number.
    #[error("interpolate needs a numeric aggregate; {column} is {data_type}")]
    InterpolateNotNumeric {
        /// The aggregate column.
        column: String,
        /// Its type.
        data_type: DataType,
    },
    /// A stride of months or years, or none at all.
    #[error(
        "date_bin_gapfill's stride must be a positive fixed duration (days or shorter), \
         got {0}"
    )]
    InvalidStride(String),
    /// A bound, stride or origin that evaluates to something other than a timestamp.
    #[error("date_bin_gapfill's {what} must be a non-null {expected}, got {value}")]
    InvalidParameter {
        /// Which parameter.
        what: &'static str,
        /// What it should have been.
        expected: &'static str,
        /// What it was.
        value: String,
    },
}

impl From<GapFillError> for DataFusionError {
    fn from(err: GapFillError) -> Self {
        // Every cause is in the query text: DataFusion's Plan class makes the querier answer
        // 400 whichever stage raises it.
        match err {
            GapFillError::MissingTimeBound { .. }
            | GapFillError::GapfillOutsideGroupBy
            | GapFillError::SeveralGapfills
            | GapFillError::GroupingSets
            | GapFillError::TimeNotAColumn(_)
            | GapFillError::NotConstant { .. }
            | GapFillError::FillOutsideGapfill { .. }
            | GapFillError::FillWithHaving { .. }
            | GapFillError::FillNotOnAggregate { .. }
            | GapFillError::ConflictingFills { .. }
            | GapFillError::InterpolateNotNumeric { .. }
            | GapFillError::InvalidStride(_)
            | GapFillError::InvalidParameter { .. } => DataFusionError::Plan(err.to_string()),
        }
    }
}

/// The scalar functions of gap filling. None of them ever runs: [`GapFillRule`] replaces
/// them all, or fails the query.
pub(crate) fn udfs() -> Vec<Arc<ScalarUDF>> {
    vec![
        Arc::new(ScalarUDF::new_from_impl(DateBinGapfill::new())),
        Arc::new(ScalarUDF::new_from_impl(FillFunction::new(Fill::Locf))),
        Arc::new(ScalarUDF::new_from_impl(FillFunction::new(
            Fill::Interpolate,
        ))),
    ]
}

/// `date_bin_gapfill(stride, time[, origin])`: `date_bin` whose aggregate gets its gaps
/// filled. Typed exactly like `date_bin`, so the rewrite keeps every column's type.
#[derive(Debug, PartialEq, Eq, Hash)]
struct DateBinGapfill {
    signature: Signature,
}

impl DateBinGapfill {
    fn new() -> Self {
        Self {
            signature: datafusion::functions::datetime::date_bin()
                .signature()
                .clone(),
        }
    }
}

impl ScalarUDFImpl for DateBinGapfill {
    fn name(&self) -> &str {
        DATE_BIN_GAPFILL
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match arg_types.get(1) {
            Some(DataType::Timestamp(unit, tz)) => Ok(DataType::Timestamp(*unit, tz.clone())),
            other => plan_err!(
                "date_bin_gapfill's second argument must be a timestamp, got {}",
                other.map_or("nothing".to_string(), ToString::to_string)
            ),
        }
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        Err(GapFillError::GapfillOutsideGroupBy.into())
    }
}

/// How missing values of an aggregate column are filled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Fill {
    /// The last non-null value of the series.
    Locf,
    /// Linear between the non-null values around the row.
    Interpolate,
}

impl Fill {
    fn name(self) -> &'static str {
        match self {
            Self::Locf => LOCF,
            Self::Interpolate => INTERPOLATE,
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        match name {
            LOCF => Some(Self::Locf),
            INTERPOLATE => Some(Self::Interpolate),
            _ => None,
        }
    }
}

/// `locf(x)` / `interpolate(x)`: markers the rule turns into a [`Fill`] of [`GapFill`].
#[derive(Debug, PartialEq, Eq, Hash)]
struct FillFunction {
    fill: Fill,
    signature: Signature,
}

impl FillFunction {
    fn new(fill: Fill) -> Self {
        Self {
            fill,
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for FillFunction {
    fn name(&self) -> &str {
        self.fill.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match arg_types {
            [t] => Ok(t.clone()),
            _ => plan_err!("{} takes one argument", self.fill.name()),
        }
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        Err(GapFillError::FillOutsideGapfill {
            function: self.fill.name(),
        }
        .into())
    }
}

/// One side of the time range, as written in the WHERE clause.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd)]
pub(crate) struct TimeBound {
    /// A constant timestamp expression.
    pub(crate) expr: Expr,
    /// `>=` / `<=` rather than `>` / `<`.
    pub(crate) inclusive: bool,
}

/// What [`GapFill`] needs besides its input's columns; expressions are evaluated when the
/// plan becomes physical.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd)]
pub(crate) struct GapFillParams {
    /// The bin width.
    pub(crate) stride: Expr,
    /// Where bins are counted from (the Unix epoch when absent).
    pub(crate) origin: Option<Expr>,
    /// Every lower bound on time; the largest wins.
    pub(crate) lower: Vec<TimeBound>,
    /// Every upper bound on time; the smallest wins.
    pub(crate) upper: Vec<TimeBound>,
}

impl GapFillParams {
    fn expressions(&self) -> Vec<Expr> {
        let mut exprs = vec![self.stride.clone()];
        exprs.extend(self.origin.clone());
        exprs.extend(self.lower.iter().map(|b| b.expr.clone()));
        exprs.extend(self.upper.iter().map(|b| b.expr.clone()));
        exprs
    }

    /// The same parameters with `exprs` (in [`Self::expressions`] order) in place.
    fn with_expressions(&self, exprs: Vec<Expr>) -> Result<Self> {
        let expected = self.expressions().len();
        if exprs.len() != expected {
            return Err(DataFusionError::Internal(format!(
                "GapFill expects {expected} expressions, got {}",
                exprs.len()
            )));
        }
        let mut exprs = exprs.into_iter();
        let mut next = || exprs.next().expect("length checked above");
        let stride = next();
        let origin = self.origin.as_ref().map(|_| next());
        let lower = self
            .lower
            .iter()
            .map(|b| TimeBound {
                expr: next(),
                inclusive: b.inclusive,
            })
            .collect();
        let upper = self
            .upper
            .iter()
            .map(|b| TimeBound {
                expr: next(),
                inclusive: b.inclusive,
            })
            .collect();
        Ok(Self {
            stride,
            origin,
            lower,
            upper,
        })
    }
}

/// Logical node: the rows of `input` (an aggregate grouped by series and time bin) plus a
/// row for every missing bin of every series, with aggregates filled per `fills`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct GapFill {
    pub(crate) input: Arc<LogicalPlan>,
    /// Columns naming a series: the GROUP BY columns other than the time bin.
    pub(crate) series: Vec<Column>,
    /// The time bin column.
    pub(crate) time: Column,
    /// The aggregate columns, each with its fill (`None`: NULL in gaps).
    pub(crate) aggregates: Vec<(Column, Option<Fill>)>,
    pub(crate) params: GapFillParams,
    /// The input's schema with every aggregate column nullable (gaps are NULL).
    schema: DFSchemaRef,
}

impl GapFill {
    pub(crate) fn try_new(
        input: Arc<LogicalPlan>,
        series: Vec<Column>,
        time: Column,
        aggregates: Vec<(Column, Option<Fill>)>,
        params: GapFillParams,
    ) -> Result<Self> {
        let input_schema = input.schema();
        let mut fields = Vec::with_capacity(input_schema.fields().len());
        for (qualifier, field) in input_schema.iter() {
            let column = Column::new(qualifier.cloned(), field.name());
            let field = if aggregates.iter().any(|(c, _)| *c == column) {
                Arc::new(field.as_ref().clone().with_nullable(true))
            } else {
                Arc::clone(field)
            };
            fields.push((qualifier.cloned(), field));
        }
        let schema = DFSchema::new_with_metadata(fields, input_schema.metadata().clone())?
            .with_functional_dependencies(input_schema.functional_dependencies().clone())?;
        Ok(Self {
            input,
            series,
            time,
            aggregates,
            params,
            schema: Arc::new(schema),
        })
    }

    /// The same node with `fill` for aggregate `column`.
    pub(crate) fn with_fill(&self, column: &Column, fill: Fill) -> Self {
        let mut node = self.clone();
        for (c, f) in &mut node.aggregates {
            if c == column {
                *f = Some(fill);
            }
        }
        node
    }
}

impl PartialOrd for GapFill {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        // The schema follows from the rest.
        (
            &self.input,
            &self.series,
            &self.time,
            &self.aggregates,
            &self.params,
        )
            .partial_cmp(&(
                &other.input,
                &other.series,
                &other.time,
                &other.aggregates,
                &other.params,
            ))
    }
}

impl UserDefinedLogicalNodeCore for GapFill {
    fn name(&self) -> &str {
        "GapFill"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![self.input.as_ref()]
    }

    fn schema(&self) -> &DFSchemaRef {
        &self.schema
    }

    /// Only the constant parameters: the optimizer simplifies them (folding `now()` at the
    /// query's start time, as in the filters), and column references stay as they are.
    fn expressions(&self) -> Vec<Expr> {
        self.params.expressions()
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let series = self
            .series
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>();
        let aggregates = self
            .aggregates
            .iter()
            .map(|(c, fill)| match fill {
                Some(fill) => format!("{}({c})", fill.name()),
                None => c.to_string(),
            })
            .collect::<Vec<_>>();
        let bounds = |bounds: &[TimeBound]| {
            bounds
                .iter()
                .map(|b| format!("{}{}", b.expr, if b.inclusive { " incl" } else { "" }))
                .collect::<Vec<_>>()
                .join(", ")
        };
        write!(
            f,
            "GapFill: series=[{}], time={}, aggregates=[{}], stride={}, lower=[{}], upper=[{}]",
            series.join(", "),
            self.time,
            aggregates.join(", "),
            self.params.stride,
            bounds(&self.params.lower),
            bounds(&self.params.upper),
        )?;
        if let Some(origin) = &self.params.origin {
            write!(f, ", origin={origin}")?;
        }
        Ok(())
    }

    fn with_exprs_and_inputs(
        &self,
        exprs: Vec<Expr>,
        mut inputs: Vec<LogicalPlan>,
    ) -> Result<Self> {
        if inputs.len() != 1 {
            return Err(DataFusionError::Internal(format!(
                "GapFill takes one input, got {}",
                inputs.len()
            )));
        }
        // The schema stays the one the rule derived. Optimizer rules that add columns to the
        // input to carry them up through this node (leaf-expression pushdown) check for them
        // in the output and back off; a column computed below gap filling would not be filled.
        Ok(Self {
            input: Arc::new(inputs.swap_remove(0)),
            series: self.series.clone(),
            time: self.time.clone(),
            aggregates: self.aggregates.clone(),
            params: self.params.with_expressions(exprs)?,
            schema: Arc::clone(&self.schema),
        })
    }
}
