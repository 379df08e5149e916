//! The table provider: one user table, read from persisted Parquet files and the ingesters'
//! unpersisted rows, deduplicated where chunks overlap.
//!
//! ```text
//!  scan(projection, filters, limit)
//!    1. time range ◄── filters on `time`
//!    2. ingesters: unpersisted partitions in the range, narrowed by `tag = / IN` filters
//!       (FIRST)
//!    3. catalog: parquet files of the table, pruned by [min_time, max_time]   (SECOND;
//!       the list is reused while the catalog version and the ingesters' persist counts
//!       stand still, see `file_list`)
//!       and, with a custom partition template, partitions ruled out by tag predicates
//!    4. chunks grouped by overlapping time ranges:
//!         lone file ────────────────► DataSourceExec(parquet, all filters for pruning) ─┐
//!         lone deduplicated ingester partition ► MemorySourceExec ► Filter(pk-only) ───┤
//!         overlapping files/ingester ► Union ► Filter(pk-only) ► Sort ► DedupExec ─────┤► Union
//! ```
//!
//! An ingester marks a partition's rows deduplicated when it has deduplicated them itself
//! (a partition that stopped receiving writes): alone in its group they are scanned as they
//! are, like a file.
//!
//! Invariants:
//! - ingesters are asked before the catalog. An ingester registers a file in the catalog
//!   before the file's rows leave its memory, so rows persisted between the two calls are
//!   seen at least once (in the file), and dedup removes the copy seen twice;
//! - only predicates on primary-key columns (tags, `time`) run below dedup: every row of one
//!   key has the same tags and time, so such a predicate keeps or drops a key's rows together.
//!   A field predicate below dedup could drop the later write and resurrect an older value;
//! - every returned batch has exactly the table's projected schema: tags Utf8, `time`
//!   Timestamp(ns), columns a file lacks as nulls.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, TimestampNanosecondArray, UInt64Array, new_null_array};
use arrow::compute::{cast, max, min};
use arrow::datatypes::{DataType, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column as LogicalColumn, DFSchema, ScalarValue};
use datafusion::datasource::TableType;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::physical_plan::parquet::CachedParquetFileReaderFactory;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::datasource::table_schema::TableSchema as ScanSchema;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::{PhysicalExpr, conjunction};
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::sorts::sort_preserving_merge::SortPreservingMergeExec;
use datafusion::physical_plan::union::UnionExec;
use datafusion::physical_plan::{ExecutionPlan, ExecutionPlanProperties};
use ferrite_catalog::{Catalog, ParquetFile};
use ferrite_ingester::api::{IngesterQuery, QueryRequest, QueryResponse, TagIn};
use ferrite_model::{
    ColumnType, DatabaseId, DatabaseLimits, PartitionId, PartitionTemplate, TIME_COLUMN,
    TableSchema, TemplatePart, column_type_of,
};
use futures::future::try_join_all;
use tracing::Instrument;

use crate::dedup::{DedupExec, ORDER_COLUMN, order_field};
use crate::error::QueryError;
use crate::file_list::FileLists;
use crate::time_range::TimeRange;

/// One user table as DataFusion sees it.
#[derive(Debug)]
pub(crate) struct QuerierTable {
    database_id: DatabaseId,
    /// The database's retention: older rows are never returned.
    limits: DatabaseLimits,
    table: TableSchema,
    /// Arrow schema of the whole table: columns sorted by name.
    schema: SchemaRef,
    /// Tags in lexicographic order, then `time`.
    primary_key: Vec<String>,
    catalog: Arc<dyn Catalog>,
    /// The engine's file lists, shared by its queries.
    file_lists: Arc<FileLists>,
    ingesters: Arc<[Arc<dyn IngesterQuery>]>,
    store_url: ObjectStoreUrl,
}

impl QuerierTable {
    pub(crate) fn new(
        database_id: DatabaseId,
        limits: DatabaseLimits,
        table: TableSchema,
        catalog: Arc<dyn Catalog>,
        file_lists: Arc<FileLists>,
        ingesters: Arc<[Arc<dyn IngesterQuery>]>,
        store_url: ObjectStoreUrl,
    ) -> Self {
        let schema = table.arrow_schema();
        let mut primary_key: Vec<String> = table
            .tag_columns()
            .into_iter()
            .map(str::to_string)
            .collect();
        primary_key.push(TIME_COLUMN.to_string());
        Self {
            database_id,
            limits,
            table,
            schema,
            primary_key,
            catalog,
            file_lists,
            ingesters,
            store_url,
        }
    }

    /// What the filters require of partition keys, when the table's template has tag parts
    /// and the filters pin some of those tags to values.
    fn partition_filter(&self, filters: &[Expr]) -> Option<PartitionFilter<'_>> {
        let template = &self.table.partition_template;
        if template.is_default() {
            return None;
        }
        let template_tags: Vec<&str> = template
            .parts()
            .iter()
            .filter_map(|p| match p {
                TemplatePart::TagValue(t) | TemplatePart::TagBucket { tag: t, .. } => {
                    Some(t.as_str())
                }
                TemplatePart::TimeFormat(_) => None,
            })
            .collect();
        let required: Vec<(String, Vec<String>)> = filters
            .iter()
            .filter_map(tag_values)
            .filter(|(tag, _)| template_tags.contains(&tag.as_str()))
            .collect();
        (!required.is_empty()).then_some(PartitionFilter { template, required })
    }

    /// True when `expr` may run below dedup: it reads only primary-key columns and gives the
    /// same answer every time it is evaluated.
    fn is_key_only(&self, expr: &Expr) -> bool {
        let columns = expr.column_refs();
        !columns.is_empty()
            && !expr.is_volatile()
            && columns.iter().all(|c| self.primary_key.contains(&c.name))
    }

    /// The ingesters' rows of the table in `range`, narrowed by the `tag = 'v'` and
    /// `tag IN (…)` filters: a query for a few series of many copies and sends only those.
    async fn ingester_data(
        &self,
        read_schema: &SchemaRef,
        range: TimeRange,
        filters: &[Expr],
    ) -> Result<Vec<QueryResponse>, QueryError> {
        let tags = filters
            .iter()
            .filter_map(tag_values)
            .filter(|(column, _)| {
                read_schema.field_with_name(column).is_ok_and(|f| {
                    column_type_of(f) == Some(ColumnType::Tag) && f.data_type() == &DataType::Utf8
                })
            })
            .map(|(column, values)| TagIn { column, values })
            .collect();
        let request = QueryRequest {
            database_id: self.database_id,
            table_id: self.table.id,
            schema: Arc::clone(read_schema),
            time_range: range.to_half_open(),
            tags,
        };
        Ok(try_join_all(
            self.ingesters
                .iter()
                .map(|ingester| ingester.query(request.clone())),
        )
        .await?)
    }

    /// A Parquet reader of this table's files whose footers and page indexes are kept in
    /// the runtime's file metadata cache: a file is immutable once written, so repeated
    /// queries read only the row groups and pages they need, not the metadata again.
    fn parquet_source(&self, state: &dyn Session, schema: ScanSchema) -> Result<ParquetSource> {
        let runtime = state.runtime_env();
        let store = runtime.object_store(&self.store_url)?;
        let cache = runtime.cache_manager.get_file_metadata_cache();
        Ok(ParquetSource::new(schema)
            .with_table_parquet_options(state.table_options().parquet.clone())
            .with_parquet_file_reader_factory(Arc::new(CachedParquetFileReaderFactory::new(
                store, cache,
            ))))
    }

    /// A parquet scan of files that need no dedup.
    fn plain_scan(
        &self,
        state: &dyn Session,
        files: Vec<&ParquetFile>,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let mut source = self.parquet_source(state, ScanSchema::from(Arc::clone(&self.schema)))?;
        if let Some(predicate) = physical_predicate(state, filters, &self.schema) {
            source = source.with_predicate(predicate);
        }
        let files = files
            .into_iter()
            .map(|f| partitioned_file(f, None))
            .collect();
        let config = FileScanConfigBuilder::new(self.store_url.clone(), Arc::new(source))
            .with_file_groups(file_groups(files, state.config().target_partitions()))
            .with_projection_indices(projection.cloned())?
            .with_limit(limit)
            .build();
        Ok(DataSourceExec::from_data_source(config))
    }

    /// A scan of ingester rows that need no dedup (each group deduplicated by its ingester
    /// and overlapping nothing else), filtered exactly by `key_filters` (the retention bound
    /// among them), then projected.
    fn rows_scan(
        &self,
        state: &dyn Session,
        groups: Vec<Vec<RecordBatch>>,
        read_schema: &SchemaRef,
        key_filters: &[Expr],
        output_schema: &SchemaRef,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let mut plan: Arc<dyn ExecutionPlan> =
            MemorySourceConfig::try_new_exec(&groups, Arc::clone(read_schema), None)?;
        if let Some(predicate) = physical_predicate(state, key_filters, read_schema) {
            plan = Arc::new(FilterExec::try_new(predicate, plan)?);
        }
        project(plan, read_schema, output_schema)
    }

    /// A scan of files that need no dedup, filtered exactly by `key_filters` (which hold the
    /// retention bound): the files' rows with the primary key, filtered, then projected.
    fn retained_scan(
        &self,
        state: &dyn Session,
        files: Vec<&ParquetFile>,
        read_schema: &SchemaRef,
        key_filters: &[Expr],
        output_schema: &SchemaRef,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let read: Vec<usize> = read_schema
            .fields()
            .iter()
            .map(|f| self.schema.index_of(f.name()))
            .collect::<std::result::Result<_, _>>()?;
        let mut plan = self.plain_scan(state, files, Some(&read), key_filters, None)?;
        if let Some(predicate) = physical_predicate(state, key_filters, read_schema) {
            plan = Arc::new(FilterExec::try_new(predicate, plan)?);
        }
        project(plan, read_schema, output_schema)
    }

    /// Files and ingester rows whose time ranges overlap, merged by primary key.
    fn dedup_scan(
        &self,
        state: &dyn Session,
        files: Vec<(u64, &ParquetFile)>,
        ingester_batches: Vec<RecordBatch>,
        read_schema: &SchemaRef,
        key_filters: &[Expr],
        output_schema: &SchemaRef,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let input_schema = with_order_column(read_schema);
        let mut inputs: Vec<Arc<dyn ExecutionPlan>> = vec![];
        if !files.is_empty() {
            let scan_schema = ScanSchema::builder(Arc::clone(read_schema))
                .with_table_partition_cols(vec![order_field()])
                .build();
            let mut source = self.parquet_source(state, scan_schema)?;
            if let Some(predicate) = physical_predicate(state, key_filters, &input_schema) {
                source = source.with_predicate(predicate);
            }
            let files = files
                .into_iter()
                .map(|(order, f)| partitioned_file(f, Some(order)))
                .collect();
            let config = FileScanConfigBuilder::new(self.store_url.clone(), Arc::new(source))
                .with_file_groups(file_groups(files, state.config().target_partitions()))
                .build();
            inputs.push(DataSourceExec::from_data_source(config));
        }
        if !ingester_batches.is_empty() {
            inputs.push(MemorySourceConfig::try_new_exec(
                &[ingester_batches],
                Arc::clone(&input_schema),
                None,
            )?);
        }
        let mut plan = UnionExec::try_new(inputs)?;
        if let Some(predicate) = physical_predicate(state, key_filters, &input_schema) {
            plan = Arc::new(FilterExec::try_new(predicate, plan)?);
        }
        plan = sorted_for_dedup(plan, &self.primary_key)?;
        plan = Arc::new(DedupExec::try_new(
            plan,
            self.primary_key.clone(),
            Arc::clone(read_schema),
        )?);
        project(plan, read_schema, output_schema)
    }
}

/// `plan` (rows of `read_schema`) narrowed to `output_schema`'s columns.
fn project(
    plan: Arc<dyn ExecutionPlan>,
    read_schema: &SchemaRef,
    output_schema: &SchemaRef,
) -> Result<Arc<dyn ExecutionPlan>> {
    if output_schema.fields() == read_schema.fields() {
        return Ok(plan);
    }
    let exprs = output_schema
        .fields()
        .iter()
        .map(|f| {
            let column: Arc<dyn PhysicalExpr> =
                Arc::new(Column::new_with_schema(f.name(), read_schema)?);
            Ok((column, f.name().clone()))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Arc::new(ProjectionExec::try_new(exprs, plan)?))
}

/// Nanoseconds since the epoch, now.
fn now_nanos() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX)
}

#[async_trait]
impl TableProvider for QuerierTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        // Used to prune files, row groups and pages and (for keys) below dedup, never as the
        // only filter: DataFusion applies every filter again above the scan.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let output_schema = Arc::new(match projection {
            Some(p) => self.schema.project(p)?,
            None => self.schema.as_ref().clone(),
        });
        let mut filters: Vec<Expr> = filters
            .iter()
            .map(|f| unqualify(f.clone()))
            .collect::<Result<_>>()?;
        // Rows older than the retention period are never returned, even before the
        // compactor has removed them: the bound prunes files and ingester data like any time
        // filter, and is applied exactly below (dedup's key filters, or `retained_scan`).
        let retention = self.limits.retention_cutoff(now_nanos());
        if let Some(cutoff) = retention {
            filters.push(
                datafusion::prelude::col(TIME_COLUMN).gt_eq(datafusion::prelude::lit(
                    ScalarValue::TimestampNanosecond(Some(cutoff), None),
                )),
            );
        }
        let range = TimeRange::from_filters(&filters);
        // A table whose columns are not registered yet (no `time`) cannot hold rows.
        if range.is_empty() || self.schema.index_of(TIME_COLUMN).is_err() {
            return Ok(Arc::new(EmptyExec::new(output_schema)));
        }

        // What dedup needs on top of the projection: the primary key.
        let mut read_indices: BTreeSet<usize> = match projection {
            Some(p) => p.iter().copied().collect(),
            None => (0..self.schema.fields().len()).collect(),
        };
        for key in &self.primary_key {
            read_indices.insert(self.schema.index_of(key)?);
        }
        let read_schema = Arc::new(
            self.schema
                .project(&read_indices.into_iter().collect::<Vec<_>>())?,
        );

        // Ingesters first, catalog second: see the module invariants.
        let table = self.table.name.as_str();
        let responses = self
            .ingester_data(&read_schema, range, &filters)
            .instrument(tracing::info_span!("ingester_read", table))
            .await
            .map_err(QueryError::into_datafusion)?;
        let ingesters = responses
            .iter()
            .map(|r| (r.ingester_uuid, r.persist_count))
            .collect();
        let listed = self
            .file_lists
            .files(self.catalog.as_ref(), self.table.id, ingesters)
            .instrument(tracing::info_span!("catalog_files", table))
            .await
            .map_err(|e| QueryError::Catalog(e).into_datafusion())?;
        let mut files: Vec<&ParquetFile> = listed
            .iter()
            .filter(|f| range.overlaps(f.params.min_time, f.params.max_time))
            .collect();
        // With a custom partition template, partitions may cover the same time but never
        // share a key: chunks are grouped by partition, and predicates on the template's tags
        // rule whole partitions out, files and ingester rows alike.
        let mut responses = responses;
        let mut keys: HashMap<PartitionId, String> = HashMap::new();
        if !self.table.partition_template.is_default() {
            keys = self
                .catalog
                .table_partitions(self.table.id)
                .await
                .map_err(|e| QueryError::Catalog(e).into_datafusion())?
                .into_iter()
                .map(|p| (p.id, p.key))
                .collect();
            if let Some(wanted) = self.partition_filter(&filters) {
                files.retain(|f| {
                    keys.get(&f.params.partition_id)
                        .is_none_or(|key| wanted.may_hold(key))
                });
                for r in &mut responses {
                    r.partitions.retain(|p| wanted.may_hold(&p.partition_key));
                }
            }
        }
        // Write order: files by the sequence numbers they hold, ingester data after all files.
        files.sort_by_key(|f| (f.params.max_sequence_number, f.id));

        let mut chunks: Vec<Chunk<'_>> = files
            .iter()
            .enumerate()
            .map(|(rank, file)| Chunk {
                partition: keys.get(&file.params.partition_id).map(String::as_str),
                min_time: file.params.min_time,
                max_time: file.params.max_time,
                data: ChunkData::File(rank as u64, file),
            })
            .collect();
        let input_schema = with_order_column(&read_schema);
        let mut next_order = files.len() as u64;
        for response in &responses {
            for partition in &response.partitions {
                if partition.deduplicated {
                    let mut range = TimeRange::EMPTY;
                    for batch in partition.batches.iter().filter(|b| b.num_rows() > 0) {
                        range = range.hull(time_range_of(batch)?);
                    }
                    if !range.is_empty() {
                        chunks.push(Chunk {
                            partition: (!keys.is_empty())
                                .then_some(partition.partition_key.as_str()),
                            min_time: range.min,
                            max_time: range.max,
                            data: ChunkData::Deduplicated(&partition.batches),
                        });
                    }
                    continue;
                }
                let mut batches = Vec::with_capacity(partition.batches.len());
                // The range grouping relies on, from the rows themselves.
                let mut range = TimeRange::EMPTY;
                for batch in &partition.batches {
                    if batch.num_rows() == 0 {
                        continue;
                    }
                    let batch = with_write_order(batch, &input_schema, next_order)?;
                    range = range.hull(time_range_of(&batch)?);
                    next_order += batch.num_rows() as u64;
                    batches.push(batch);
                }
                if !batches.is_empty() {
                    chunks.push(Chunk {
                        partition: (!keys.is_empty()).then_some(partition.partition_key.as_str()),
                        min_time: range.min,
                        max_time: range.max,
                        data: ChunkData::Ingester(batches),
                    });
                }
            }
        }

        let key_filters: Vec<Expr> = filters
            .iter()
            .filter(|f| self.is_key_only(f))
            .cloned()
            .collect();
        let mut plain_files = vec![];
        let mut plain_rows: Vec<Vec<RecordBatch>> = vec![];
        let mut plans: Vec<Arc<dyn ExecutionPlan>> = vec![];
        for group in group_overlapping(chunks) {
            match group.as_slice() {
                [
                    Chunk {
                        data: ChunkData::File(_, file),
                        ..
                    },
                ] => plain_files.push(*file),
                [
                    Chunk {
                        data: ChunkData::Deduplicated(batches),
                        ..
                    },
                ] => plain_rows.push(batches.to_vec()),
                _ => {
                    let mut group_files = vec![];
                    let mut group_batches = vec![];
                    for chunk in group {
                        match chunk.data {
                            ChunkData::File(order, file) => group_files.push((order, file)),
                            ChunkData::Ingester(batches) => group_batches.extend(batches),
                            ChunkData::Deduplicated(batches) => {
                                for batch in batches {
                                    group_batches.push(with_write_order(
                                        batch,
                                        &input_schema,
                                        next_order,
                                    )?);
                                    next_order += batch.num_rows() as u64;
                                }
                            }
                        }
                    }
                    plans.push(self.dedup_scan(
                        state,
                        group_files,
                        group_batches,
                        &read_schema,
                        &key_filters,
                        &output_schema,
                    )?);
                }
            }
        }
        if !plain_files.is_empty() {
            plans.push(match retention {
                None => self.plain_scan(state, plain_files, projection, &filters, limit)?,
                Some(_) => self.retained_scan(
                    state,
                    plain_files,
                    &read_schema,
                    &key_filters,
                    &output_schema,
                )?,
            });
        }
        if !plain_rows.is_empty() {
            plans.push(self.rows_scan(
                state,
                plain_rows,
                &read_schema,
                &key_filters,
                &output_schema,
            )?);
        }
        if plans.is_empty() {
            return Ok(Arc::new(EmptyExec::new(output_schema)));
        }
        UnionExec::try_new(plans)
    }
}

/// Tag values partition keys must allow.
struct PartitionFilter<'a> {
    template: &'a PartitionTemplate,
    /// Each tag with the values a row may have.
    required: Vec<(String, Vec<String>)>,
}

impl PartitionFilter<'_> {
    /// Could the partition with `key` hold a row the filters keep?
    fn may_hold(&self, key: &str) -> bool {
        self.required.iter().all(|(tag, values)| {
            let values: Vec<&str> = values.iter().map(String::as_str).collect();
            self.template.may_hold(key, tag, &values)
        })
    }
}

/// The values a filter pins a column to: `col = 'v'`, `'v' = col`, `col IN ('v', …)`, and
/// ORs of those on one column (DataFusion writes a short IN list as ORs).
fn tag_values(expr: &Expr) -> Option<(String, Vec<String>)> {
    use datafusion::logical_expr::{BinaryExpr, Operator, expr::InList};
    let literal = |e: &Expr| match e {
        Expr::Literal(ScalarValue::Utf8(Some(v)) | ScalarValue::LargeUtf8(Some(v)), _)
        | Expr::Literal(ScalarValue::Utf8View(Some(v)), _) => Some(v.clone()),
        Expr::Literal(ScalarValue::Dictionary(_, v), _) => match v.as_ref() {
            ScalarValue::Utf8(Some(v)) => Some(v.clone()),
            _ => None,
        },
        _ => None,
    };
    let column = |e: &Expr| match e {
        Expr::Column(c) => Some(c.name.clone()),
        Expr::Cast(c) => match c.expr.as_ref() {
            Expr::Column(c) => Some(c.name.clone()),
            _ => None,
        },
        _ => None,
    };
    match expr {
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Eq,
            right,
        }) => match (column(left), literal(right), column(right), literal(left)) {
            (Some(c), Some(v), _, _) | (_, _, Some(c), Some(v)) => Some((c, vec![v])),
            _ => None,
        },
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Or,
            right,
        }) => {
            let (a, mut values) = tag_values(left)?;
            let (b, more) = tag_values(right)?;
            (a == b).then(|| {
                values.extend(more);
                (a, values)
            })
        }
        Expr::InList(InList {
            expr,
            list,
            negated: false,
        }) => {
            let c = column(expr)?;
            let values = list.iter().map(literal).collect::<Option<Vec<_>>>()?;
            Some((c, values))
        }
        _ => None,
    }
}

/// `plan` sorted into one partition in [`DedupExec::sort_order`]: partitions are sorted in
/// parallel, then merged.
pub(crate) fn sorted_for_dedup(
    plan: Arc<dyn ExecutionPlan>,
    primary_key: &[String],
) -> Result<Arc<dyn ExecutionPlan>> {
    let order = DedupExec::sort_order(&plan.schema(), primary_key)?;
    if plan.output_partitioning().partition_count() <= 1 {
        return Ok(Arc::new(SortExec::new(order, plan)));
    }
    let sorted = Arc::new(SortExec::new(order.clone(), plan).with_preserve_partitioning(true));
    Ok(Arc::new(SortPreservingMergeExec::new(order, sorted)))
}

/// A unit of data with a known time range.
#[derive(Debug)]
struct Chunk<'a> {
    /// Its partition key, when partitions may share time ranges (a custom template); chunks
    /// of different partitions never hold the same key.
    partition: Option<&'a str>,
    min_time: i64,
    max_time: i64,
    data: ChunkData<'a>,
}

#[derive(Debug)]
enum ChunkData<'a> {
    /// A persisted file (deduplicated within itself) and its write-order rank.
    File(u64, &'a ParquetFile),
    /// Unpersisted rows with their write-order column: may repeat keys.
    Ingester(Vec<RecordBatch>),
    /// Unpersisted rows an ingester deduplicated (no key twice), without the
    /// write-order column.
    Deduplicated(&'a [RecordBatch]),
}

/// Group chunks whose `[min_time, max_time]` ranges overlap, transitively. Rows of one key
/// share a time, so they are always inside one group.
fn group_overlapping(mut chunks: Vec<Chunk<'_>>) -> Vec<Vec<Chunk<'_>>> {
    chunks.sort_by_key(|c| (c.partition, c.min_time, c.max_time));
    let mut groups: Vec<Vec<Chunk<'_>>> = vec![];
    let mut group_max = i64::MIN;
    for chunk in chunks {
        match groups.last_mut() {
            Some(group) if chunk.min_time <= group_max && group[0].partition == chunk.partition => {
                group_max = group_max.max(chunk.max_time);
                group.push(chunk);
            }
            _ => {
                group_max = chunk.max_time;
                groups.push(vec![chunk]);
            }
        }
    }
    groups
}

/// `schema` followed by the write-order column.
pub(crate) fn with_order_column(schema: &SchemaRef) -> SchemaRef {
    let mut fields = schema.fields().to_vec();
    fields.push(order_field());
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// An ingester batch in exactly `input_schema` (the read schema plus the order column),
/// numbering rows in write order from `first`. Columns the ingester left out become nulls.
fn with_write_order(
    batch: &RecordBatch,
    input_schema: &SchemaRef,
    first: u64,
) -> Result<RecordBatch> {
    let rows = batch.num_rows();
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(input_schema.fields().len());
    for field in input_schema.fields() {
        if field.name() == ORDER_COLUMN {
            columns.push(Arc::new(UInt64Array::from_iter_values(
                first..first + rows as u64,
            )));
            continue;
        }
        let column = match batch.schema().index_of(field.name()) {
            Ok(i) => Arc::clone(batch.column(i)),
            Err(_) => new_null_array(field.data_type(), rows),
        };
        let column = if column.data_type() == field.data_type() {
            column
        } else {
            cast(&column, field.data_type())?
        };
        columns.push(column);
    }
    Ok(RecordBatch::try_new(Arc::clone(input_schema), columns)?)
}

/// The smallest and largest `time` of a non-empty batch.
fn time_range_of(batch: &RecordBatch) -> Result<TimeRange> {
    let time = batch.column(batch.schema().index_of(TIME_COLUMN)?);
    let time = time
        .as_any()
        .downcast_ref::<TimestampNanosecondArray>()
        .ok_or_else(|| DataFusionError::Internal("time is not Timestamp(ns)".into()))?;
    match (min(time), max(time)) {
        (Some(lo), Some(hi)) => Ok(TimeRange::new(lo, hi)),
        _ => Ok(TimeRange::EMPTY),
    }
}

pub(crate) fn partitioned_file(file: &ParquetFile, order: Option<u64>) -> PartitionedFile {
    let size = u64::try_from(file.params.file_size_bytes).unwrap_or_default();
    let pf = PartitionedFile::new(file.params.object_path(), size);
    match order {
        Some(order) => pf.with_partition_values(vec![ScalarValue::UInt64(Some(order))]),
        None => pf,
    }
}

/// Spread files over at most `target` groups, largest first onto the lightest group.
fn file_groups(mut files: Vec<PartitionedFile>, target: usize) -> Vec<FileGroup> {
    let groups = target.clamp(1, files.len().max(1));
    files.sort_by_key(|f| std::cmp::Reverse(f.effective_size()));
    let mut buckets: Vec<(u64, Vec<PartitionedFile>)> = vec![(0, vec![]); groups];
    for file in files {
        let lightest = buckets
            .iter_mut()
            .min_by_key(|(size, _)| *size)
            .expect("at least one group");
        lightest.0 += file.effective_size();
        lightest.1.push(file);
    }
    buckets
        .into_iter()
        .filter(|(_, files)| !files.is_empty())
        .map(|(_, files)| FileGroup::new(files))
        .collect()
}

/// The AND of every filter that converts to a physical expression over `schema`; filters that
/// do not (subqueries, columns outside `schema`) are left to the filter above the scan.
fn physical_predicate(
    state: &dyn Session,
    filters: &[Expr],
    schema: &SchemaRef,
) -> Option<Arc<dyn PhysicalExpr>> {
    let df_schema = DFSchema::try_from(schema.as_ref().clone()).ok()?;
    let exprs: Vec<_> = filters
        .iter()
        .filter(|f| {
            f.column_refs()
                .iter()
                .all(|c| schema.field_with_name(&c.name).is_ok())
        })
        .filter_map(|f| state.create_physical_expr(f.clone(), &df_schema).ok())
        .collect();
    (!exprs.is_empty()).then(|| conjunction(exprs))
}

/// Drop table qualifiers so filters resolve against our unqualified scan schemas.
fn unqualify(expr: Expr) -> Result<Expr> {
    expr.transform(|e| match e {
        Expr::Column(c) if c.relation.is_some() => Ok(Transformed::yes(Expr::Column(
            LogicalColumn::new_unqualified(c.name),
        ))),
        other => Ok(Transformed::no(other)),
    })
    .map(|t| t.data)
}

impl From<QueryError> for DataFusionError {
    fn from(err: QueryError) -> Self {
        err.into_datafusion()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(min: i64, max: i64) -> Chunk<'static> {
        Chunk {
            partition: None,
            min_time: min,
            max_time: max,
            data: ChunkData::Ingester(vec![]),
        }
    }

    fn ranges(groups: &[Vec<Chunk<'_>>]) -> Vec<Vec<(i64, i64)>> {
        groups
            .iter()
            .map(|g| g.iter().map(|c| (c.min_time, c.max_time)).collect())
            .collect()
    }

    #[test]
    fn overlapping_chunks_are_grouped_transitively() {
        let groups = group_overlapping(vec![
            chunk(20, 30),
            chunk(0, 10),
            chunk(10, 12),
            chunk(31, 40),
            chunk(5, 6),
            chunk(35, 50),
            chunk(100, 100),
        ]);
        assert_eq!(
            ranges(&groups),
            vec![
                vec![(0, 10), (5, 6), (10, 12)],
                vec![(20, 30)],
                vec![(31, 40), (35, 50)],
                vec![(100, 100)],
            ]
        );
    }

    #[test]
    fn chunks_of_different_partitions_are_never_grouped() {
        let mut chunks = vec![chunk(0, 10), chunk(5, 15), chunk(8, 9)];
        chunks[0].partition = Some("eu|2024");
        chunks[1].partition = Some("us|2024");
        chunks[2].partition = Some("eu|2024");
        let groups = group_overlapping(chunks);
        assert_eq!(ranges(&groups), vec![vec![(0, 10), (8, 9)], vec![(5, 15)]]);
    }

    #[test]
    fn files_are_balanced_over_groups() {
        let files = (1..=5)
            .map(|i| PartitionedFile::new(format!("f{i}"), i * 10))
            .collect();
        let groups = file_groups(files, 2);
        assert_eq!(groups.len(), 2);
        let sizes: Vec<u64> = groups
            .iter()
            .map(|g| g.iter().map(|f| f.effective_size()).sum())
            .collect();
        assert_eq!(sizes.iter().sum::<u64>(), 150);
        assert!(sizes.iter().all(|s| *s >= 70 && *s <= 80), "{sizes:?}");
        assert_eq!(file_groups(vec![], 4).len(), 0);
    }
}
