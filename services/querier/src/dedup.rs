//! `DedupExec`: merges rows of equal primary key from overlapping chunks, the later write
//! winning field by field.
//!
//! ```text
//!   chunks (+ write-order column) ──► SortExec(pk…, order) ──► DedupExec ──► one row per key
//! ```
//!
//! The input is sorted by primary key and then by write order, so the rows of one key form a
//! run, possibly spanning input batches. DedupExec holds back the last run of each batch
//! until the next batch shows whether it continues, and hands every batch of complete runs to
//! [`ferrite_model::dedup::sort_dedup`], the same upsert rule ingester persistence uses: for
//! each field, the last non-null value in write order.

use std::fmt;
use std::sync::Arc;

use arrow::array::{ArrayRef, UInt64Array};
use arrow::compute::{SortOptions, cast, concat_batches};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::{
    EquivalenceProperties, LexOrdering, LexRequirement, OrderingRequirements, Partitioning,
    PhysicalExpr, PhysicalSortExpr, PhysicalSortRequirement,
};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::filter_pushdown::{FilterDescription, FilterPushdownPhase};
use datafusion::physical_plan::metrics::{BaselineMetrics, ExecutionPlanMetricsSet, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, Distribution, ExecutionPlan, PlanProperties,
};
use futures::StreamExt;

/// Name of the write-order column DedupExec's input carries after the data columns: a higher
/// value is a later write.
pub(crate) const ORDER_COLUMN: &str = "__ferrite_write_order";

/// The write-order column's field.
pub(crate) fn order_field() -> Arc<Field> {
    Arc::new(Field::new(ORDER_COLUMN, DataType::UInt64, false))
}

/// Deduplicates an input sorted by [`DedupExec::sort_order`].
#[derive(Debug)]
pub(crate) struct DedupExec {
    input: Arc<dyn ExecutionPlan>,
    /// Primary-key column names (tags sorted, then `time`).
    primary_key: Vec<String>,
    /// The input's schema without the order column.
    output_schema: SchemaRef,
    cache: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl DedupExec {
    /// `input` must end with the [`ORDER_COLUMN`] and be sorted by
    /// [`Self::sort_order`]`(input.schema(), primary_key)`; `output_schema` is the input's
    /// schema without that column (passed in so field metadata is exactly the table's).
    pub(crate) fn try_new(
        input: Arc<dyn ExecutionPlan>,
        primary_key: Vec<String>,
        output_schema: SchemaRef,
    ) -> Result<Self> {
        let input_schema = input.schema();
        let last = input_schema.fields().last().map(|f| f.name().as_str());
        if last != Some(ORDER_COLUMN)
            || input_schema.fields().len() != output_schema.fields().len() + 1
        {
            return Err(DataFusionError::Internal(format!(
                "DedupExec input must be the output columns followed by {ORDER_COLUMN}, got {input_schema:?}"
            )));
        }
        let cache = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&output_schema)),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        Ok(Self {
            input,
            primary_key,
            output_schema,
            cache,
            metrics: ExecutionPlanMetricsSet::new(),
        })
    }

    /// Primary key ascending (nulls first, as persisted files are sorted), then write order.
    pub(crate) fn sort_order(schema: &Schema, primary_key: &[String]) -> Result<LexOrdering> {
        let options = SortOptions {
            descending: false,
            nulls_first: true,
        };
        let mut exprs = Vec::with_capacity(primary_key.len() + 1);
        for name in primary_key.iter().map(String::as_str).chain([ORDER_COLUMN]) {
            let column: Arc<dyn PhysicalExpr> = Arc::new(Column::new_with_schema(name, schema)?);
            exprs.push(PhysicalSortExpr::new(column, options));
        }
        LexOrdering::new(exprs)
            .ok_or_else(|| DataFusionError::Internal("empty dedup sort order".into()))
    }

    fn required_ordering(&self) -> Result<LexRequirement> {
        let ordering = Self::sort_order(&self.input.schema(), &self.primary_key)?;
        LexRequirement::new(ordering.iter().cloned().map(PhysicalSortRequirement::from))
            .ok_or_else(|| DataFusionError::Internal("empty dedup sort requirement".into()))
    }
}

impl DisplayAs for DedupExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "DedupExec: primary_key=[{}]",
            self.primary_key.join(", ")
        )
    }
}

impl ExecutionPlan for DedupExec {
    fn name(&self) -> &str {
        "DedupExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.cache
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn required_input_distribution(&self) -> Vec<Distribution> {
        vec![Distribution::SinglePartition]
    }

    fn required_input_ordering(&self) -> Vec<Option<OrderingRequirements>> {
        // Declared so the optimizer keeps (or supplies) the sort below us.
        vec![self.required_ordering().ok().map(OrderingRequirements::new)]
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

    /// No filter from above (including dynamic TopK / join filters) passes below dedup: a
    /// filter on a field would drop the later write and resurrect an older value. Filters on
    /// key columns are placed below us by the table provider instead.
    fn gather_filters_for_pushdown(
        &self,
        _phase: FilterPushdownPhase,
        parent_filters: Vec<Arc<dyn PhysicalExpr>>,
        _config: &ConfigOptions,
    ) -> Result<FilterDescription> {
        Ok(FilterDescription::all_unsupported(
            &parent_filters,
            &self.children(),
        ))
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if children.len() != 1 {
            return Err(DataFusionError::Internal(format!(
                "DedupExec takes one child, got {}",
                children.len()
            )));
        }
        Ok(Arc::new(Self::try_new(
            children.swap_remove(0),
            self.primary_key.clone(),
            Arc::clone(&self.output_schema),
        )?))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return Err(DataFusionError::Internal(format!(
                "DedupExec has one partition, asked for {partition}"
            )));
        }
        let input = self.input.execute(0, context)?;
        let input_schema = input.schema();
        let key_indices = self
            .primary_key
            .iter()
            .map(|name| input_schema.index_of(name))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let state = RunMerger {
            input_schema,
            output_schema: Arc::clone(&self.output_schema),
            key_indices,
            key: self.primary_key.clone(),
            pending: None,
        };
        let metrics = BaselineMetrics::new(&self.metrics, partition);
        let stream = futures::stream::unfold(
            (input, state, false),
            move |(mut input, mut state, done)| {
                let metrics = metrics.clone();
                async move {
                    if done {
                        return None;
                    }
                    loop {
                        match input.next().await {
                            Some(Ok(batch)) => match state.push(batch) {
                                Ok(Some(out)) => {
                                    metrics.record_output(out.num_rows());
                                    return Some((Ok(out), (input, state, false)));
                                }
                                Ok(None) => continue,
                                Err(e) => return Some((Err(e), (input, state, true))),
                            },
                            Some(Err(e)) => return Some((Err(e), (input, state, true))),
                            None => {
                                return match state.finish() {
                                    Ok(Some(out)) => {
                                        metrics.record_output(out.num_rows());
                                        Some((Ok(out), (input, state, true)))
                                    }
                                    Ok(None) => None,
                                    Err(e) => Some((Err(e), (input, state, true))),
                                };
                            }
                        }
                    }
                }
            },
        );
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.output_schema),
            stream,
        )))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}

/// Cuts a sorted stream into batches of complete key runs and merges each.
struct RunMerger {
    input_schema: SchemaRef,
    output_schema: SchemaRef,
    key_indices: Vec<usize>,
    /// The key's column names, in the input's sort order: merged rows keep that order.
    key: Vec<String>,
    /// The last run seen, which the next batch may continue.
    pending: Option<RecordBatch>,
}

impl RunMerger {
    fn push(&mut self, batch: RecordBatch) -> Result<Option<RecordBatch>> {
        let batch = match self.pending.take() {
            Some(pending) => concat_batches(&self.input_schema, [&pending, &batch])?,
            None => batch,
        };
        let rows = batch.num_rows();
        if rows == 0 {
            return Ok(None);
        }
        let keys: Vec<ArrayRef> = self
            .key_indices
            .iter()
            .map(|&i| Arc::clone(batch.column(i)))
            .collect();
        let last_run_start = arrow::compute::partition(&keys)?
            .ranges()
            .last()
            .map_or(0, |r| r.start);
        self.pending = Some(self.collapse(batch.slice(last_run_start, rows - last_run_start))?);
        if last_run_start == 0 {
            return Ok(None);
        }
        self.merge(&batch.slice(0, last_run_start)).map(Some)
    }

    fn finish(&mut self) -> Result<Option<RecordBatch>> {
        match self.pending.take() {
            Some(batch) if batch.num_rows() > 0 => self.merge(&batch).map(Some),
            _ => Ok(None),
        }
    }

    /// Merge a held-back run into one row now, so a key repeated across many batches is not
    /// copied again with every batch. Merging is associative: the merged row carries the run's
    /// last write position, below every later row of the key.
    fn collapse(&self, run: RecordBatch) -> Result<RecordBatch> {
        if run.num_rows() <= 1 {
            return Ok(run);
        }
        let order_index = run.num_columns() - 1;
        let last_order = run.column(order_index).slice(run.num_rows() - 1, 1);
        let merged = self.merge(&run)?;
        let mut columns = merged.columns().to_vec();
        columns.push(last_order);
        Ok(RecordBatch::try_new(
            Arc::clone(&self.input_schema),
            columns,
        )?)
    }

    /// Merge complete runs: split off the order column and apply the shared upsert rule.
    fn merge(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        let order_index = batch.num_columns() - 1;
        let order = cast(batch.column(order_index), &DataType::UInt64)?;
        let order = order
            .as_any()
            .downcast_ref::<UInt64Array>()
            .ok_or_else(|| DataFusionError::Internal("write order is not UInt64".into()))?;
        let data = RecordBatch::try_new(
            Arc::clone(&self.output_schema),
            batch.columns()[..order_index].to_vec(),
        )?;
        Ok(ferrite_model::dedup::sort_dedup_by(
            &data,
            &self.key,
            Some(order),
        )?)
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{Array, Float64Array, Int64Array, StringArray, TimestampNanosecondArray};
    use datafusion::datasource::memory::MemorySourceConfig;
    use datafusion::physical_plan::collect;
    use datafusion::prelude::SessionContext;
    use ferrite_model::ColumnType;

    use super::*;

    fn data_schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            ColumnType::Tag.arrow_field("host"),
            ColumnType::I64.arrow_field("load"),
            ColumnType::Time.arrow_field("time"),
            ColumnType::F64.arrow_field("usage"),
        ]))
    }

    fn input_schema() -> SchemaRef {
        let mut fields = data_schema().fields().to_vec();
        fields.push(order_field());
        Arc::new(Schema::new(fields))
    }

    type Row = (&'static str, Option<i64>, i64, Option<f64>, u64);

    fn batch(rows: &[Row]) -> RecordBatch {
        RecordBatch::try_new(
            input_schema(),
            vec![
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
                Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.1))),
                Arc::new(TimestampNanosecondArray::from_iter_values(
                    rows.iter().map(|r| r.2),
                )),
                Arc::new(Float64Array::from_iter(rows.iter().map(|r| r.3))),
                Arc::new(UInt64Array::from_iter_values(rows.iter().map(|r| r.4))),
            ],
        )
        .unwrap()
    }

    /// Sort then dedup `partitions` (each a list of batches) and return (host, load, time,
    /// usage) rows.
    async fn dedup(
        partitions: Vec<Vec<RecordBatch>>,
        batch_size: usize,
    ) -> Vec<(String, Option<i64>, i64, Option<f64>)> {
        let pk = vec!["host".to_string(), "time".to_string()];
        let input = MemorySourceConfig::try_new_exec(&partitions, input_schema(), None).unwrap();
        let sorted = crate::table::sorted_for_dedup(input, &pk).unwrap();
        let exec = Arc::new(DedupExec::try_new(sorted, pk, data_schema()).unwrap());
        let ctx = SessionContext::new_with_config(
            datafusion::prelude::SessionConfig::new().with_batch_size(batch_size),
        );
        let out = collect(exec, ctx.task_ctx()).await.unwrap();
        let mut rows = vec![];
        for b in out {
            assert_eq!(b.schema(), data_schema());
            let host = b.column(0).as_any().downcast_ref::<StringArray>().unwrap();
            let load = b.column(1).as_any().downcast_ref::<Int64Array>().unwrap();
            let time = b
                .column(2)
                .as_any()
                .downcast_ref::<TimestampNanosecondArray>()
                .unwrap();
            let usage = b.column(3).as_any().downcast_ref::<Float64Array>().unwrap();
            for i in 0..b.num_rows() {
                rows.push((
                    host.value(i).to_string(),
                    load.is_valid(i).then(|| load.value(i)),
                    time.value(i),
                    usage.is_valid(i).then(|| usage.value(i)),
                ));
            }
        }
        rows
    }

    #[tokio::test]
    async fn later_writes_win_field_by_field() {
        let older = batch(&[
            ("a", Some(1), 10, Some(1.0), 0),
            ("b", Some(2), 10, Some(2.0), 0),
        ]);
        let newer = batch(&[("a", None, 10, Some(9.0), 1), ("c", Some(3), 10, None, 1)]);
        let rows = dedup(vec![vec![newer], vec![older]], 8192).await;
        assert_eq!(
            rows,
            vec![
                ("a".into(), Some(1), 10, Some(9.0)),
                ("b".into(), Some(2), 10, Some(2.0)),
                ("c".into(), Some(3), 10, None),
            ]
        );
    }

    #[tokio::test]
    async fn runs_spanning_batch_boundaries_are_merged() {
        // Many versions of one key, sorted output cut into batches of 2 rows.
        let versions: Vec<Row> = (0..7)
            .map(|i| {
                (
                    "a",
                    (i % 2 == 0).then_some(i as i64),
                    5,
                    Some(i as f64),
                    i as u64,
                )
            })
            .chain([("b", Some(0), 5, None, 100)])
            .collect();
        let rows = dedup(vec![vec![batch(&versions)]], 2).await;
        assert_eq!(
            rows,
            vec![
                ("a".into(), Some(6), 5, Some(6.0)),
                ("b".into(), Some(0), 5, None)
            ]
        );
    }

    #[tokio::test]
    async fn empty_input_gives_no_rows() {
        assert!(dedup(vec![vec![batch(&[])]], 8192).await.is_empty());
    }
}
