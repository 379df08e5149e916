//! Persisted files merged into one stream in primary-key order, duplicates resolved: the
//! compactor's input, built from the same parts as a query's dedup scan.
//!
//! ```text
//!  file 0 (sorted by pk) ─┐  one partition per file, declared sorted by (pk…, order)
//!  file 1 (sorted by pk) ─┼─► SortPreservingMergeExec ─► DedupExec ─► rows sorted by pk,
//!  file n (sorted by pk) ─┘   (k-way merge, streaming)                one per key
//! ```
//!
//! Invariant: every file is sorted by its partition's sort key (tags in the key's order,
//! then `time`, nulls first; see `ferrite_model::sort_key`), as ingesters and the compactor
//! write them. A file lacking a tag holds nulls there, a constant column, so it is sorted by
//! the key wherever the key puts that tag. Nothing is sorted again: the merge holds one
//! batch per file, whatever the files' sizes.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use datafusion::common::ScalarValue;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::datasource::table_schema::TableSchema as ScanSchema;
use datafusion::error::Result;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::Operator;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::{BinaryExpr, Column, Literal};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::sorts::sort_preserving_merge::SortPreservingMergeExec;
use ferrite_catalog::ParquetFile;
use ferrite_model::TIME_COLUMN;

use crate::dedup::{DedupExec, order_field};
use crate::table::{partitioned_file, with_order_column};

/// A plan reading `files` (given in write order: a later file's value wins for the same
/// key) with `schema`'s columns (the table's, sorted by name; missing columns read as nulls)
/// and producing their rows merged by `primary_key` (the partition's sort columns: every
/// file is sorted by them) and deduplicated, last write winning
/// field by field. With `time_range` (`[min, max]` ns, inclusive), only rows in it: the
/// files' statistics prune row groups and pages outside it.
pub fn merged_files(
    store_url: &ObjectStoreUrl,
    schema: &SchemaRef,
    primary_key: &[String],
    files: &[ParquetFile],
    time_range: Option<(i64, i64)>,
) -> Result<Arc<dyn ExecutionPlan>> {
    if files.is_empty() {
        return Ok(Arc::new(EmptyExec::new(Arc::clone(schema))));
    }
    let input_schema = with_order_column(schema);
    let ordering = DedupExec::sort_order(&input_schema, primary_key)?;
    let scan_schema = ScanSchema::builder(Arc::clone(schema))
        .with_table_partition_cols(vec![order_field()])
        .build();
    let mut source = ParquetSource::new(scan_schema);
    let predicate = time_range
        .map(|(min, max)| time_between(&input_schema, min, max))
        .transpose()?;
    if let Some(p) = &predicate {
        source = source.with_predicate(Arc::clone(p));
    }
    let groups = files
        .iter()
        .enumerate()
        .map(|(order, f)| FileGroup::new(vec![partitioned_file(f, Some(order as u64))]))
        .collect();
    let config = FileScanConfigBuilder::new(store_url.clone(), Arc::new(source))
        .with_file_groups(groups)
        .with_output_ordering(vec![ordering.clone()])
        .build();
    let mut scan: Arc<dyn ExecutionPlan> = DataSourceExec::from_data_source(config);
    if let Some(p) = predicate {
        // Pruning skips what statistics rule out; this drops the rest, row by row. `time` is
        // part of the key, so a key's rows are kept or dropped together.
        scan = Arc::new(FilterExec::try_new(p, scan)?);
    }
    let merged = Arc::new(SortPreservingMergeExec::new(ordering, scan));
    Ok(Arc::new(DedupExec::try_new(
        merged,
        primary_key.to_vec(),
        Arc::clone(schema),
    )?))
}

/// `min <= time AND time <= max` over `schema`.
fn time_between(schema: &SchemaRef, min: i64, max: i64) -> Result<Arc<dyn PhysicalExpr>> {
    let time: Arc<dyn PhysicalExpr> = Arc::new(Column::new_with_schema(TIME_COLUMN, schema)?);
    let bound = |op, t| -> Arc<dyn PhysicalExpr> {
        let value = ScalarValue::TimestampNanosecond(Some(t), None);
        Arc::new(BinaryExpr::new(
            Arc::clone(&time),
            op,
            Arc::new(Literal::new(value)),
        ))
    };
    Ok(Arc::new(BinaryExpr::new(
        bound(Operator::GtEq, min),
        Operator::And,
        bound(Operator::LtEq, max),
    )))
}
