//! `GapFillExec`: inserts the missing time bins of every series into an aggregate's sorted
//! output and fills their values.
//!
//! ```text
//!  input, sorted by (series…, time), one partition
//!    │  split into series runs (a run may span batches)
//!    ▼
//!  one series at a time: merge its rows with the bins of [date_bin(start), end)
//!    ▼
//!  output batches of at most `batch_size` rows; a long series spans several
//! ```
//!
//! Memory: the rows of the series being filled (at most one row per bin of the range) and
//! one output batch. Rows of a series are only kept until its last output batch is built.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, ArrowPrimitiveType, AsArray, PrimitiveBuilder, RecordBatch,
    RecordBatchOptions, TimestampNanosecondArray, UInt32Array,
};
use arrow::compute::{SortOptions, cast, concat_batches, take};
use arrow::datatypes::{
    DataType, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, Schema,
    SchemaRef, TimeUnit, TimestampNanosecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use arrow::row::{OwnedRow, RowConverter, SortField};
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{Column, DFSchema, ScalarValue};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::simplify::SimplifyContext;
use datafusion::logical_expr::{ColumnarValue, Expr, LogicalPlan, UserDefinedLogicalNode};
use datafusion::optimizer::simplify_expressions::ExprSimplifier;
use datafusion::physical_expr::expressions::Column as PhysicalColumn;
use datafusion::physical_expr::{
    EquivalenceProperties, LexOrdering, LexRequirement, OrderingRequirements, Partitioning,
    PhysicalExpr, PhysicalSortExpr, PhysicalSortRequirement,
};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{BaselineMetrics, ExecutionPlanMetricsSet, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, Distribution, ExecutionPlan, PlanProperties,
};
use datafusion::physical_planner::{ExtensionPlanner, PhysicalPlanner};
use futures::StreamExt;

use super::{Fill, GapFill, GapFillError, TimeBound};

const NANOS_PER_DAY: i64 = 86_400_000_000_000;
const NANOS_PER_MILLI: i64 = 1_000_000;

/// Plans [`GapFill`] nodes as [`GapFillExec`].
#[derive(Debug, Default)]
pub(crate) struct GapFillPlanner;

#[async_trait]
impl ExtensionPlanner for GapFillPlanner {
    async fn plan_extension(
        &self,
        planner: &dyn PhysicalPlanner,
        node: &dyn UserDefinedLogicalNode,
        logical_inputs: &[&LogicalPlan],
        physical_inputs: &[Arc<dyn ExecutionPlan>],
        session: &dyn Session,
        planning_ctx: &PhysicalPlanningContext,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        let Some(gapfill) = node.as_any().downcast_ref::<GapFill>() else {
            return Ok(None);
        };
        let ([logical_input], [physical_input]) = (logical_inputs, physical_inputs) else {
            return Err(DataFusionError::Internal(
                "GapFill takes exactly one input".into(),
            ));
        };
        let input_schema = logical_input.schema();
        if input_schema.fields().len() != gapfill.schema().fields().len() {
            return Err(DataFusionError::Internal(format!(
                "GapFill input has {} columns, its output {}",
                input_schema.fields().len(),
                gapfill.schema().fields().len()
            )));
        }
        let index = |c: &Column| input_schema.index_of_column(c);
        let eval = |expr: &Expr| evaluate_constant(expr, planner, session, planning_ctx);

        let stride = stride_nanos(&eval(&gapfill.params.stride)?)?;
        let origin = match &gapfill.params.origin {
            Some(origin) => timestamp_nanos("origin", &eval(origin)?)?,
            None => 0,
        };
        let start = tightest(
            &gapfill.params.lower,
            &eval,
            |v, inclusive| Ok(if inclusive { v } else { v.saturating_add(1) }),
            i64::max,
        )?;
        let end = tightest(
            &gapfill.params.upper,
            &eval,
            |v, inclusive| Ok(if inclusive { v.saturating_add(1) } else { v }),
            i64::min,
        )?;
        let params = ExecParams {
            series: gapfill.series.iter().map(index).collect::<Result<_>>()?,
            time: index(&gapfill.time)?,
            aggregates: gapfill
                .aggregates
                .iter()
                .map(|(c, fill)| Ok((index(c)?, *fill)))
                .collect::<Result<_>>()?,
            stride,
            origin,
            start,
            end,
        };
        let schema = Arc::clone(gapfill.schema().inner());
        Ok(Some(Arc::new(GapFillExec::try_new(
            Arc::clone(physical_input),
            params,
            schema,
        )?)))
    }
}

/// The tightest of `bounds`, each turned into a half-open range end by `to_end`.
fn tightest(
    bounds: &[TimeBound],
    eval: &impl Fn(&Expr) -> Result<ScalarValue>,
    to_end: impl Fn(i64, bool) -> Result<i64>,
    pick: fn(i64, i64) -> i64,
) -> Result<i64> {
    let mut tightest: Option<i64> = None;
    for bound in bounds {
        let value = to_end(
            timestamp_nanos("time bound", &eval(&bound.expr)?)?,
            bound.inclusive,
        )?;
        tightest = Some(tightest.map_or(value, |t| pick(t, value)));
    }
    tightest.ok_or_else(|| {
        DataFusionError::Internal("GapFill without a bound on one side of time".into())
    })
}

/// Evaluate an expression without columns, folding `now()` to the query's start time exactly
/// as the optimizer folded it in the WHERE clause.
fn evaluate_constant(
    expr: &Expr,
    planner: &dyn PhysicalPlanner,
    session: &dyn Session,
    planning_ctx: &PhysicalPlanningContext,
) -> Result<ScalarValue> {
    let props = session.execution_props();
    let context = SimplifyContext::builder()
        .with_query_execution_start_time(props.query_execution_start_time)
        .with_config_options(Arc::new(session.config_options().clone()))
        .build();
    let expr = ExprSimplifier::new(context).simplify(expr.clone())?;
    let physical =
        planner.create_physical_expr(&expr, &DFSchema::empty(), session, planning_ctx)?;
    let one_row = RecordBatch::try_new_with_options(
        Arc::new(Schema::empty()),
        vec![],
        &RecordBatchOptions::new().with_row_count(Some(1)),
    )?;
    match physical.evaluate(&one_row)? {
        ColumnarValue::Scalar(value) => Ok(value),
        ColumnarValue::Array(array) => ScalarValue::try_from_array(&array, 0),
    }
}

/// Nanoseconds since the epoch of a timestamp, date or RFC 3339 string value.
fn timestamp_nanos(what: &'static str, value: &ScalarValue) -> Result<i64> {
    let invalid = || GapFillError::InvalidParameter {
        what,
        expected: "timestamp",
        value: value.to_string(),
    };
    let nanos = match value {
        ScalarValue::TimestampNanosecond(Some(v), _) => Some(*v),
        ScalarValue::TimestampMicrosecond(Some(v), _) => v.checked_mul(1_000),
        ScalarValue::TimestampMillisecond(Some(v), _) => v.checked_mul(NANOS_PER_MILLI),
        ScalarValue::TimestampSecond(Some(v), _) => v.checked_mul(1_000_000_000),
        other if !other.is_null() => {
            // A time zone makes the cast read strings as instants, never as local times.
            let utc = DataType::Timestamp(TimeUnit::Nanosecond, Some("+00:00".into()));
            match other.cast_to(&utc) {
                Ok(ScalarValue::TimestampNanosecond(Some(v), _)) => Some(v),
                _ => None,
            }
        }
        _ => None,
    };
    nanos.ok_or_else(|| invalid().into())
}

/// The stride in nanoseconds: a positive interval without months.
fn stride_nanos(value: &ScalarValue) -> Result<i64> {
    let invalid = || GapFillError::InvalidStride(value.to_string());
    let nanos = match value {
        ScalarValue::IntervalMonthDayNano(Some(v)) if v.months == 0 => i64::from(v.days)
            .checked_mul(NANOS_PER_DAY)
            .and_then(|d| d.checked_add(v.nanoseconds)),
        ScalarValue::IntervalDayTime(Some(v)) => i64::from(v.days)
            .checked_mul(NANOS_PER_DAY)
            .and_then(|d| d.checked_add(i64::from(v.milliseconds) * NANOS_PER_MILLI)),
        ScalarValue::DurationNanosecond(Some(v)) => Some(*v),
        ScalarValue::DurationMicrosecond(Some(v)) => v.checked_mul(1_000),
        ScalarValue::DurationMillisecond(Some(v)) => v.checked_mul(NANOS_PER_MILLI),
        ScalarValue::DurationSecond(Some(v)) => v.checked_mul(1_000_000_000),
        _ => None,
    };
    match nanos {
        Some(n) if n > 0 => Ok(n),
        _ => Err(invalid().into()),
    }
}

/// Types `interpolate` accepts.
pub(super) fn can_interpolate(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
            | DataType::Float32
            | DataType::Float64
    )
}

/// Column positions (in the input, which has the output's columns) and the time range.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ExecParams {
    series: Vec<usize>,
    time: usize,
    aggregates: Vec<(usize, Option<Fill>)>,
    /// Bin width in nanoseconds, positive.
    stride: i64,
    /// A bin boundary, in nanoseconds.
    origin: i64,
    /// The range `[start, end)` in nanoseconds.
    start: i64,
    end: i64,
}

impl ExecParams {
    /// The bin holding `start` (as `date_bin` computes it), if any bin starts before `end`.
    fn first_bin(&self) -> Option<i64> {
        if self.start >= self.end {
            return None;
        }
        let (start, origin, stride) = (
            i128::from(self.start),
            i128::from(self.origin),
            i128::from(self.stride),
        );
        let bin = origin + (start - origin).div_euclid(stride) * stride;
        i64::try_from(bin).ok().filter(|b| *b < self.end)
    }

    /// The bin after `bin`, if it starts before `end`.
    fn next_bin(&self, bin: i64) -> Option<i64> {
        bin.checked_add(self.stride).filter(|b| *b < self.end)
    }
}

/// Fills gaps of an input sorted by (series, time); see the module documentation.
#[derive(Debug)]
pub(crate) struct GapFillExec {
    input: Arc<dyn ExecutionPlan>,
    params: Arc<ExecParams>,
    schema: SchemaRef,
    cache: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl GapFillExec {
    fn try_new(
        input: Arc<dyn ExecutionPlan>,
        params: ExecParams,
        schema: SchemaRef,
    ) -> Result<Self> {
        let ordering = sort_order(&schema, &params)?;
        // Output rows keep the (series, time) order of the input.
        let equivalences = match ordering {
            Some(ordering) => {
                EquivalenceProperties::new_with_orderings(Arc::clone(&schema), [ordering])
            }
            None => EquivalenceProperties::new(Arc::clone(&schema)),
        };
        let cache = Arc::new(PlanProperties::new(
            equivalences,
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        Ok(Self {
            input,
            params: Arc::new(params),
            schema,
            cache,
            metrics: ExecutionPlanMetricsSet::new(),
        })
    }
}

/// Series columns, then time, ascending with nulls last: SQL's `ORDER BY series, time`, so
/// a query ordered that way needs no sort above the gap filling.
fn sort_order(schema: &Schema, params: &ExecParams) -> Result<Option<LexOrdering>> {
    let options = SortOptions {
        descending: false,
        nulls_first: false,
    };
    let exprs = params
        .series
        .iter()
        .chain([&params.time])
        .map(|&i| {
            let column: Arc<dyn PhysicalExpr> =
                Arc::new(PhysicalColumn::new(schema.field(i).name(), i));
            PhysicalSortExpr::new(column, options)
        })
        .collect::<Vec<_>>();
    Ok(LexOrdering::new(exprs))
}

impl DisplayAs for GapFillExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = |i: usize| self.schema.field(i).name().clone();
        let p = &self.params;
        let aggregates = p
            .aggregates
            .iter()
            .map(|&(i, fill)| match fill {
                Some(fill) => format!("{}({})", fill.name(), name(i)),
                None => name(i),
            })
            .collect::<Vec<_>>();
        let time = |ns: i64| chrono::DateTime::from_timestamp_nanos(ns).to_rfc3339();
        write!(
            f,
            "GapFillExec: series=[{}], time={}, aggregates=[{}], stride={}ns, origin={}, \
             range=[{}, {})",
            p.series
                .iter()
                .map(|&i| name(i))
                .collect::<Vec<_>>()
                .join(", "),
            name(p.time),
            aggregates.join(", "),
            p.stride,
            time(p.origin),
            time(p.start),
            time(p.end),
        )
    }
}

impl ExecutionPlan for GapFillExec {
    fn name(&self) -> &str {
        "GapFillExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.cache
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn required_input_distribution(&self) -> Vec<Distribution> {
        // Every row of a series must reach the same stream.
        vec![Distribution::SinglePartition]
    }

    fn required_input_ordering(&self) -> Vec<Option<OrderingRequirements>> {
        let requirement = sort_order(&self.input.schema(), &self.params)
            .ok()
            .flatten()
            .and_then(|o| LexRequirement::new(o.into_iter().map(PhysicalSortRequirement::from)))
            .map(OrderingRequirements::new);
        vec![requirement]
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![false]
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if children.len() != 1 {
            return Err(DataFusionError::Internal(format!(
                "GapFillExec takes one child, got {}",
                children.len()
            )));
        }
        Ok(Arc::new(Self::try_new(
            children.swap_remove(0),
            self.params.as_ref().clone(),
            Arc::clone(&self.schema),
        )?))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return Err(DataFusionError::Internal(format!(
                "GapFillExec has one partition, asked for {partition}"
            )));
        }
        let batch_size = context.session_config().batch_size().max(1);
        let input = self.input.execute(0, context)?;
        let filler = GapFiller::try_new(
            Arc::clone(&self.params),
            Arc::clone(&self.schema),
            batch_size,
        )?;
        let metrics = BaselineMetrics::new(&self.metrics, partition);
        let stream = futures::stream::unfold(
            (input, filler, false),
            move |(mut input, mut filler, mut input_done)| {
                let metrics = metrics.clone();
                async move {
                    loop {
                        match filler.next_output(input_done) {
                            Ok(Some(batch)) => {
                                metrics.record_output(batch.num_rows());
                                return Some((Ok(batch), (input, filler, input_done)));
                            }
                            Ok(None) if input_done => return None,
                            Ok(None) => {}
                            Err(e) => return Some((Err(e), (input, filler.failed(), true))),
                        }
                        match input.next().await {
                            Some(Ok(batch)) => {
                                if let Err(e) = filler.push(&batch) {
                                    return Some((Err(e), (input, filler.failed(), true)));
                                }
                            }
                            Some(Err(e)) => {
                                return Some((Err(e), (input, filler.failed(), true)));
                            }
                            None => {
                                input_done = true;
                                if let Err(e) = filler.finish() {
                                    return Some((Err(e), (input, filler.failed(), true)));
                                }
                            }
                        }
                    }
                }
            },
        );
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            stream,
        )))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}

/// The streaming state: series being collected, series ready to fill, output being built.
struct GapFiller {
    params: Arc<ExecParams>,
    schema: SchemaRef,
    batch_size: usize,
    /// Encodes series values for equality; `None` without series columns (one series).
    keys: Option<RowConverter>,
    /// Rows of the series whose end has not been seen, and its key.
    open: Vec<RecordBatch>,
    open_key: Option<OwnedRow>,
    /// Complete series, first to fill first.
    ready: VecDeque<SeriesCursor>,
    /// Output pieces of the next batch and their row count.
    out: Vec<RecordBatch>,
    out_rows: usize,
}

impl GapFiller {
    fn try_new(params: Arc<ExecParams>, schema: SchemaRef, batch_size: usize) -> Result<Self> {
        let keys = if params.series.is_empty() {
            None
        } else {
            let fields = params
                .series
                .iter()
                .map(|&i| SortField::new(schema.field(i).data_type().clone()))
                .collect();
            Some(RowConverter::new(fields)?)
        };
        Ok(Self {
            params,
            schema,
            batch_size,
            keys,
            open: Vec::new(),
            open_key: None,
            ready: VecDeque::new(),
            out: Vec::new(),
            out_rows: 0,
        })
    }

    /// After an error the stream ends; drop what is held.
    fn failed(mut self) -> Self {
        self.open.clear();
        self.ready.clear();
        self.out.clear();
        self.out_rows = 0;
        self
    }

    /// Split `batch` into runs of one series each; every run but the last completes a series.
    fn push(&mut self, batch: &RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let Some(keys) = &self.keys else {
            self.open.push(batch.clone());
            return Ok(());
        };
        let columns = self
            .params
            .series
            .iter()
            .map(|&i| Arc::clone(batch.column(i)))
            .collect::<Vec<_>>();
        let rows = keys.convert_columns(&columns)?;
        let mut run_start = 0;
        for row in 0..=rows.num_rows() {
            let boundary =
                row == rows.num_rows() || (row > 0 && rows.row(row) != rows.row(row - 1));
            if !boundary {
                continue;
            }
            let key = rows.row(run_start);
            let continues = self.open_key.as_ref().is_some_and(|k| k.row() == key);
            if !continues {
                self.close_open_series()?;
                self.open_key = Some(key.owned());
            }
            self.open.push(batch.slice(run_start, row - run_start));
            run_start = row;
        }
        Ok(())
    }

    /// The input ended: the open series is complete.
    fn finish(&mut self) -> Result<()> {
        self.close_open_series()
    }

    fn close_open_series(&mut self) -> Result<()> {
        if self.open.is_empty() {
            return Ok(());
        }
        let rows = concat_batches(&self.schema, &self.open)?;
        self.open.clear();
        self.open_key = None;
        self.ready
            .push_back(SeriesCursor::try_new(rows, &self.params)?);
        Ok(())
    }

    /// A full output batch, or with `flush` whatever is left; `None` when more input is
    /// needed (or, with `flush`, nothing is left).
    fn next_output(&mut self, flush: bool) -> Result<Option<RecordBatch>> {
        while self.out_rows < self.batch_size {
            let Some(cursor) = self.ready.front_mut() else {
                break;
            };
            let piece = cursor.fill(self.batch_size - self.out_rows, &self.params, &self.schema)?;
            if cursor.is_done() {
                self.ready.pop_front();
            }
            if let Some(piece) = piece {
                self.out_rows += piece.num_rows();
                self.out.push(piece);
            }
        }
        if self.out_rows == 0 || (self.out_rows < self.batch_size && !flush) {
            return Ok(None);
        }
        let batch = concat_batches(&self.schema, &self.out)?;
        self.out.clear();
        self.out_rows = 0;
        Ok(Some(batch))
    }
}

/// Where an output row comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// Row `.0` of the series' input.
    Row(usize),
    /// A missing bin at `time`; `next_row` is the first input row after it.
    Gap { time: i64, next_row: usize },
}

/// Per-aggregate memory of a series being filled.
#[derive(Debug)]
struct FillState {
    /// The last input row with a non-null value already emitted.
    last_value: Option<usize>,
    /// For `interpolate`: for each row `i`, the first row `>= i` with a non-null value (or
    /// the row count).
    next_value: Vec<usize>,
}

/// One complete series and how far its output has been produced.
#[derive(Debug)]
struct SeriesCursor {
    /// The series' input rows, in time order.
    rows: RecordBatch,
    /// Their times in nanoseconds.
    times: Vec<Option<i64>>,
    /// The time column's type, restored on output.
    time_type: DataType,
    next_row: usize,
    next_bin: Option<i64>,
    fills: Vec<FillState>,
}

impl SeriesCursor {
    fn try_new(rows: RecordBatch, params: &ExecParams) -> Result<Self> {
        let time = rows.column(params.time);
        let time_type = time.data_type().clone();
        let DataType::Timestamp(_, tz) = &time_type else {
            return Err(DataFusionError::Internal(format!(
                "GapFillExec time column must be a timestamp, got {time_type}"
            )));
        };
        let nanos = cast(time, &DataType::Timestamp(TimeUnit::Nanosecond, tz.clone()))?;
        let times = nanos
            .as_primitive::<TimestampNanosecondType>()
            .iter()
            .collect::<Vec<_>>();
        let fills = params
            .aggregates
            .iter()
            .map(|&(i, fill)| {
                let next_value = if fill == Some(Fill::Interpolate) {
                    let values = rows.column(i);
                    let mut next = vec![values.len(); values.len() + 1];
                    for row in (0..values.len()).rev() {
                        next[row] = if values.is_valid(row) {
                            row
                        } else {
                            next[row + 1]
                        };
                    }
                    next
                } else {
                    Vec::new()
                };
                FillState {
                    last_value: None,
                    next_value,
                }
            })
            .collect();
        Ok(Self {
            rows,
            times,
            time_type,
            next_row: 0,
            next_bin: params.first_bin(),
            fills,
        })
    }

    fn is_done(&self) -> bool {
        self.next_row >= self.times.len() && self.next_bin.is_none()
    }

    /// The next at most `limit` output rows, merging input rows and missing bins by time.
    fn next_slots(&mut self, limit: usize, params: &ExecParams) -> Vec<Slot> {
        let mut slots = Vec::with_capacity(limit.min(self.times.len() + 16));
        while slots.len() < limit {
            let row_time = self.times.get(self.next_row).copied();
            // An input row comes first when it is not after the next bin, and takes the bin's
            // place when it is that bin; NULL times sort last, after every bin.
            let row_first = match (row_time, self.next_bin) {
                (None, _) => false,
                (Some(_), None) => true,
                (Some(time), Some(bin)) => time.is_some_and(|t| t <= bin),
            };
            if row_first {
                if let (Some(Some(time)), Some(bin)) = (row_time, self.next_bin)
                    && time == bin
                {
                    self.next_bin = params.next_bin(bin);
                }
                slots.push(Slot::Row(self.next_row));
                self.next_row += 1;
            } else if let Some(bin) = self.next_bin {
                slots.push(Slot::Gap {
                    time: bin,
                    next_row: self.next_row,
                });
                self.next_bin = params.next_bin(bin);
            } else {
                break;
            }
        }
        slots
    }

    /// The next output piece of at most `limit` rows, `None` when the series is done.
    fn fill(
        &mut self,
        limit: usize,
        params: &ExecParams,
        schema: &SchemaRef,
    ) -> Result<Option<RecordBatch>> {
        let slots = self.next_slots(limit, params);
        if slots.is_empty() {
            return Ok(None);
        }
        let mut columns: Vec<Option<ArrayRef>> = vec![None; schema.fields().len()];

        let times = slots
            .iter()
            .map(|slot| match *slot {
                Slot::Row(r) => self.times[r],
                Slot::Gap { time, .. } => Some(time),
            })
            .collect::<TimestampNanosecondArray>();
        let tz = match &self.time_type {
            DataType::Timestamp(_, tz) => tz.clone(),
            _ => None,
        };
        let times: ArrayRef = Arc::new(times.with_timezone_opt(tz));
        columns[params.time] = Some(cast(&times, &self.time_type)?);

        // Series values are the same on every row: gaps copy the first row's.
        let series_rows = slots
            .iter()
            .map(|slot| match *slot {
                Slot::Row(r) => r as u32,
                Slot::Gap { .. } => 0,
            })
            .collect::<UInt32Array>();
        for &i in &params.series {
            columns[i] = Some(take(self.rows.column(i), &series_rows, None)?);
        }

        for (k, &(i, fill)) in params.aggregates.iter().enumerate() {
            let values = self.rows.column(i);
            let state = &mut self.fills[k];
            columns[i] = Some(match fill {
                None => {
                    let rows = slots
                        .iter()
                        .map(|slot| match *slot {
                            Slot::Row(r) => Some(r as u32),
                            Slot::Gap { .. } => None,
                        })
                        .collect::<UInt32Array>();
                    take(values, &rows, None)?
                }
                Some(Fill::Locf) => {
                    let rows = slots
                        .iter()
                        .map(|slot| {
                            if let Slot::Row(r) = *slot
                                && values.is_valid(r)
                            {
                                state.last_value = Some(r);
                            }
                            state.last_value.map(|r| r as u32)
                        })
                        .collect::<UInt32Array>();
                    take(values, &rows, None)?
                }
                Some(Fill::Interpolate) => interpolate(values, &slots, &self.times, state)?,
            });
        }

        let columns = columns
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                c.ok_or_else(|| {
                    DataFusionError::Internal(format!(
                        "GapFillExec has no role for column {}",
                        schema.field(i).name()
                    ))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Some(RecordBatch::try_new(Arc::clone(schema), columns)?))
    }
}

/// Linear interpolation between the values around a row, for every supported type.
fn interpolate(
    values: &ArrayRef,
    slots: &[Slot],
    times: &[Option<i64>],
    state: &mut FillState,
) -> Result<ArrayRef> {
    macro_rules! by_type {
        ($($variant:ident => $arrow:ty),* $(,)?) => {
            match values.data_type() {
                $(DataType::$variant => interpolate_primitive::<$arrow>(values, slots, times, state),)*
                other => Err(DataFusionError::Internal(format!(
                    "interpolate over {other} passed planning"
                ))),
            }
        };
    }
    by_type!(
        Int8 => Int8Type, Int16 => Int16Type, Int32 => Int32Type, Int64 => Int64Type,
        UInt8 => UInt8Type, UInt16 => UInt16Type, UInt32 => UInt32Type, UInt64 => UInt64Type,
        Float32 => Float32Type, Float64 => Float64Type,
    )
}

fn interpolate_primitive<T: Lerp>(
    values: &ArrayRef,
    slots: &[Slot],
    times: &[Option<i64>],
    state: &mut FillState,
) -> Result<ArrayRef> {
    let values = values.as_primitive::<T>();
    let mut out = PrimitiveBuilder::<T>::with_capacity(slots.len());
    for slot in slots {
        let (time, next_from) = match *slot {
            Slot::Row(r) if values.is_valid(r) => {
                state.last_value = Some(r);
                out.append_value(values.value(r));
                continue;
            }
            Slot::Row(r) => (times[r], r + 1),
            Slot::Gap { time, next_row } => (Some(time), next_row),
        };
        let interpolated = (|| {
            let time = time?;
            let before = state.last_value?;
            let after = state.next_value[next_from];
            if after >= values.len() {
                return None;
            }
            let (t0, t1) = (times[before]?, times[after]?);
            if !(t0 < time && time < t1) {
                return None;
            }
            Some(T::lerp(
                values.value(before),
                values.value(after),
                i128::from(time) - i128::from(t0),
                i128::from(t1) - i128::from(t0),
            ))
        })();
        out.append_option(interpolated);
    }
    Ok(Arc::new(out.finish()))
}

/// `a + (b - a) * num / den` for `0 < num < den`.
trait Lerp: ArrowPrimitiveType {
    fn lerp(a: Self::Native, b: Self::Native, num: i128, den: i128) -> Self::Native;
}

macro_rules! lerp_float {
    ($($t:ty),*) => {$(
        impl Lerp for $t {
            fn lerp(a: Self::Native, b: Self::Native, num: i128, den: i128) -> Self::Native {
                let fraction = num as f64 / den as f64;
                (f64::from(a) + (f64::from(b) - f64::from(a)) * fraction) as Self::Native
            }
        }
    )*};
}
lerp_float!(Float32Type, Float64Type);

macro_rules! lerp_integer {
    ($($t:ty),*) => {$(
        impl Lerp for $t {
            fn lerp(a: Self::Native, b: Self::Native, num: i128, den: i128) -> Self::Native {
                let (a, b) = (i128::from(a), i128::from(b));
                // The exact value is (a * den + (b - a) * num) / den; round that, not the step.
                let exact = a
                    .checked_mul(den)
                    .and_then(|ad| (b - a).checked_mul(num).and_then(|s| ad.checked_add(s)));
                let value = match exact {
                    Some(numerator) => divide_rounding(numerator, den),
                    // Only near the ends of u64/i64 with ranges of centuries.
                    None => (a as f64 + (b - a) as f64 * (num as f64 / den as f64)).round() as i128,
                };
                // Between a and b, so it fits the type.
                Self::Native::try_from(value).unwrap_or(if b > a {
                    Self::Native::MAX
                } else {
                    Self::Native::MIN
                })
            }
        }
    )*};
}
lerp_integer!(
    Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type, UInt32Type, UInt64Type
);

/// `n / d` rounded to nearest, halves away from zero (`d > 0`).
fn divide_rounding(n: i128, d: i128) -> i128 {
    let (q, r) = (n / d, n % d);
    if 2 * r.abs() >= d { q + n.signum() } else { q }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(stride: i64, origin: i64, start: i64, end: i64) -> ExecParams {
        ExecParams {
            series: vec![],
            time: 0,
            aggregates: vec![],
            stride,
            origin,
            start,
            end,
        }
    }

    #[test]
    fn the_first_bin_holds_start_counting_from_origin() {
        assert_eq!(params(10, 0, 25, 100).first_bin(), Some(20));
        assert_eq!(params(10, 3, 25, 100).first_bin(), Some(23));
        assert_eq!(params(10, 3, 22, 100).first_bin(), Some(13));
        assert_eq!(params(10, 0, -5, 100).first_bin(), Some(-10));
        assert_eq!(params(10, 0, 25, 25).first_bin(), None);
        assert_eq!(params(10, 0, 95, 100).next_bin(90), None);
    }

    #[test]
    fn integer_interpolation_rounds_halves_away_from_zero() {
        assert_eq!(Int64Type::lerp(0, 10, 1, 4), 3); // 2.5
        assert_eq!(Int64Type::lerp(10, 0, 1, 4), 8); // 7.5
        assert_eq!(Int64Type::lerp(2, 1, 1, 2), 2); // 1.5
        assert_eq!(Int64Type::lerp(-2, -1, 1, 2), -2); // -1.5
        assert_eq!(Int64Type::lerp(0, 10, 1, 3), 3); // 3.33
        assert_eq!(UInt64Type::lerp(0, u64::MAX, 1, 2), u64::MAX / 2 + 1);
        assert_eq!(Float64Type::lerp(1.0, 2.0, 1, 4), 1.25);
    }

    #[test]
    fn strides_are_positive_fixed_durations() {
        use arrow::datatypes::IntervalMonthDayNano;
        let interval = |months, days, nanos| {
            ScalarValue::IntervalMonthDayNano(Some(IntervalMonthDayNano::new(months, days, nanos)))
        };
        assert_eq!(stride_nanos(&interval(0, 1, 5)).unwrap(), NANOS_PER_DAY + 5);
        assert!(stride_nanos(&interval(1, 0, 0)).is_err());
        assert!(stride_nanos(&interval(0, 0, 0)).is_err());
        assert!(stride_nanos(&ScalarValue::Int64(Some(5))).is_err());
    }
}
