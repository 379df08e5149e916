//! Carrying out one [`Round`]: merge the inputs range by range, write each range's rows as a
//! new Parquet object, then swap inputs for outputs in one catalog transaction.
//!
//! ```text
//!  the partition's sort key, read after the inputs were listed
//!  for each output range [lo, hi]:
//!     inputs overlapping it ─► merged_files (k-way merge by that key + dedup, time-filtered)
//!        ─► AsyncArrowWriter ─► object store (multipart upload, streamed)
//!  lease still held? ─► catalog.replace_files(inputs, outputs)   (all or nothing)
//! ```
//!
//! Invariants: an output is uploaded completely before it is registered; if the process
//! dies anywhere before the commit, the catalog is unchanged and the uploaded objects are
//! orphans that garbage collection removes after its grace period; a commit that finds an
//! input gone (another compactor, retention) changes nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use arrow::array::{Array, TimestampNanosecondArray};
use arrow::compute::{max, min};
use arrow::datatypes::Schema;
use datafusion::error::DataFusionError;
use datafusion::execution::TaskContext;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::physical_plan::execute_stream;
use ferrite_catalog::{CatalogRef, ParquetFile, ParquetFileParams, PartitionSummary};
use ferrite_model::TIME_COLUMN;
use ferrite_model::parquet_format::ROW_GROUP_ROWS;
use futures::StreamExt;
use object_store::ObjectStore;
use object_store::buffered::BufWriter;
use object_store::path::Path;
use parquet::arrow::AsyncArrowWriter;
use parquet::file::properties::WriterProperties;
use tracing::info;

use crate::plan::{ROW_GROUP_BYTES, Round};

/// Why a round did not finish.
#[derive(Debug, thiserror::Error)]
pub enum RoundError {
    /// The partition cannot be compacted as it is (a file cannot be read, the merge needs
    /// more memory than the budget): recorded, and the partition skipped until cleared.
    #[error("{0}")]
    Skip(String),
    /// Something outside is failing (object store, catalog): tried again next cycle.
    #[error("{0}")]
    Retry(String),
    /// The lease was lost before the commit: another compactor is active now.
    #[error("the compactor lease was lost before the commit")]
    LostLease,
    /// An input was replaced or expired meanwhile: nothing was changed.
    #[error("{0}")]
    Conflict(String),
}

/// What a finished round did.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The registered outputs.
    pub outputs: Vec<ParquetFile>,
    /// Rows read (before dedup) and written.
    pub rows_in: i64,
    /// Rows written.
    pub rows_out: i64,
    /// Bytes of the inputs.
    pub bytes_in: i64,
    /// Bytes of the outputs.
    pub bytes_out: i64,
}

/// Runs rounds against one catalog and object store.
#[derive(Debug)]
pub struct Executor {
    pub(crate) catalog: CatalogRef,
    pub(crate) store: Arc<dyn ObjectStore>,
    pub(crate) store_url: ObjectStoreUrl,
    /// Has the object store registered and the memory budget as its pool.
    pub(crate) task: Arc<TaskContext>,
}

impl Executor {
    /// Carry out `round` for the partition of `summary`; commit only while `leased` is true.
    pub async fn run(
        &self,
        summary: &PartitionSummary,
        round: &Round,
        leased: &AtomicBool,
    ) -> Result<Outcome, RoundError> {
        let started = Instant::now();
        let table = self
            .catalog
            .table_schema(summary.partition.table_id)
            .await
            .map_err(|e| RoundError::Retry(format!("reading the table schema: {e}")))?;
        let schema = table.arrow_schema();
        let sort_key = self.sort_key(summary, &schema).await?;
        let max_sequence_number = round
            .inputs
            .iter()
            .map(|f| f.params.max_sequence_number)
            .max()
            .unwrap_or_default();
        let rows_in: i64 = round.inputs.iter().map(|f| f.params.row_count).sum();
        let bytes_in: i64 = round.inputs.iter().map(|f| f.params.file_size_bytes).sum();
        let row_group_rows = row_group_rows(rows_in, bytes_in);

        let mut outputs: Vec<ParquetFileParams> = vec![];
        for &(lo, hi) in &round.ranges {
            let inputs: Vec<ParquetFile> = round
                .inputs
                .iter()
                .filter(|f| f.params.min_time <= hi && f.params.max_time >= lo)
                .cloned()
                .collect();
            let plan = ferrite_querier::merge::merged_files(
                &self.store_url,
                &schema,
                &sort_key,
                &inputs,
                Some((lo, hi)),
            )
            .map_err(|e| classify(&e))?;
            let mut stream =
                execute_stream(plan, Arc::clone(&self.task)).map_err(|e| classify(&e))?;
            let object_store_id = uuid::Uuid::new_v4();
            let mut params = ParquetFileParams {
                database_id: summary.database_id,
                table_id: summary.partition.table_id,
                partition_id: summary.partition.id,
                object_store_id,
                min_time: i64::MAX,
                max_time: i64::MIN,
                row_count: 0,
                file_size_bytes: 0,
                compaction_level: round.level,
                max_sequence_number,
            };
            let path = Path::from(params.object_path());
            let props = writer_properties(&schema, &sort_key, summary, row_group_rows);
            let upload = BufWriter::new(Arc::clone(&self.store), path.clone());
            let mut writer = AsyncArrowWriter::try_new(upload, Arc::clone(&schema), Some(props))
                .map_err(|e| RoundError::Retry(format!("starting {path}: {e}")))?;
            while let Some(batch) = stream.next().await {
                let batch = batch.map_err(|e| classify(&e))?;
                if batch.num_rows() == 0 {
                    continue;
                }
                if let Some((a, b)) = time_bounds(&batch) {
                    params.min_time = params.min_time.min(a);
                    params.max_time = params.max_time.max(b);
                }
                params.row_count += batch.num_rows() as i64;
                writer
                    .write(&batch)
                    .await
                    .map_err(|e| RoundError::Retry(format!("writing {path}: {e}")))?;
            }
            if params.row_count == 0 {
                // Nothing in this range (dedup or an estimate's gap): no file. The upload
                // never started a multipart upload for so little; dropping it sends nothing.
                continue;
            }
            writer
                .finish()
                .await
                .map_err(|e| RoundError::Retry(format!("uploading {path}: {e}")))?;
            params.file_size_bytes = writer.bytes_written() as i64;
            tracing::debug!(%path, rows = params.row_count, "compaction output uploaded");
            outputs.push(params);
        }

        if !leased.load(Ordering::Acquire) {
            return Err(RoundError::LostLease);
        }
        let replaced: Vec<_> = round.inputs.iter().map(|f| f.id).collect();
        tracing::debug!(
            partition = summary.partition.id.get(),
            "compaction committing"
        );
        let outputs = match self.catalog.replace_files(&replaced, outputs).await {
            Ok(files) => files,
            Err(ferrite_catalog::Error::Conflict(m)) => return Err(RoundError::Conflict(m)),
            Err(e) => return Err(RoundError::Retry(format!("committing: {e}"))),
        };
        let outcome = Outcome {
            rows_in,
            rows_out: outputs.iter().map(|f| f.params.row_count).sum(),
            bytes_in,
            bytes_out: outputs.iter().map(|f| f.params.file_size_bytes).sum(),
            outputs,
        };
        info!(
            database = %summary.database,
            table = %summary.table,
            partition = %summary.partition.key,
            level = round.level,
            files_in = round.inputs.len(),
            files_out = outcome.outputs.len(),
            rows_in = outcome.rows_in,
            rows_out = outcome.rows_out,
            bytes_in = outcome.bytes_in,
            bytes_out = outcome.bytes_out,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "compacted"
        );
        Ok(outcome)
    }
}

impl Executor {
    /// The columns every input is sorted by: the partition's sort key as the catalog holds
    /// it now. The inputs were listed before, and a file's tags join the key before the
    /// file is registered, so the key names every tag any input holds.
    async fn sort_key(
        &self,
        summary: &PartitionSummary,
        schema: &Schema,
    ) -> Result<Vec<String>, RoundError> {
        let partitions = self
            .catalog
            .table_partitions(summary.partition.table_id)
            .await
            .map_err(|e| RoundError::Retry(format!("reading the partition's sort key: {e}")))?;
        let partition = partitions
            .into_iter()
            .find(|p| p.id == summary.partition.id)
            .ok_or_else(|| RoundError::Conflict("the partition is gone".into()))?;
        Ok(ferrite_model::sort_key::sort_columns(
            partition.sort_key.as_deref(),
            schema,
        ))
    }
}

/// Rows per row group: [`ROW_GROUP_ROWS`] unless wide rows would make one hold more than
/// about [`ROW_GROUP_BYTES`] (from the inputs' bytes per row).
fn row_group_rows(rows: i64, bytes: i64) -> usize {
    let per_row = (bytes.max(1) as f64 / rows.max(1) as f64).max(1.0);
    ((ROW_GROUP_BYTES as f64 / per_row) as usize).clamp(8 * 1024, ROW_GROUP_ROWS)
}

fn writer_properties(
    schema: &Schema,
    sort_key: &[String],
    summary: &PartitionSummary,
    row_group_rows: usize,
) -> WriterProperties {
    ferrite_model::parquet_format::writer_properties(
        schema,
        summary.database_id,
        summary.partition.table_id,
        &summary.partition.key,
    )
    .set_max_row_group_row_count(Some(row_group_rows))
    .set_sorting_columns(Some(ferrite_model::parquet_format::sorting_columns(
        schema, sort_key,
    )))
    .build()
}

fn time_bounds(batch: &arrow::record_batch::RecordBatch) -> Option<(i64, i64)> {
    let time = batch
        .column_by_name(TIME_COLUMN)?
        .as_any()
        .downcast_ref::<TimestampNanosecondArray>()?;
    if time.null_count() == time.len() {
        return None;
    }
    Some((min(time)?, max(time)?))
}

/// A failed merge: the data itself (skip the partition) or something around it (retry).
fn classify(e: &DataFusionError) -> RoundError {
    let root = e.find_root();
    match root {
        DataFusionError::ResourcesExhausted(m) => {
            RoundError::Skip(format!("the merge exceeds the memory budget: {m}"))
        }
        DataFusionError::ParquetError(p) => RoundError::Skip(format!("a file cannot be read: {p}")),
        DataFusionError::ArrowError(a, _) => {
            RoundError::Skip(format!("a file cannot be read: {a}"))
        }
        DataFusionError::ObjectStore(o)
            if matches!(o.as_ref(), object_store::Error::NotFound { .. }) =>
        {
            RoundError::Skip(format!("a file's object is missing: {o}"))
        }
        _ => RoundError::Retry(e.to_string()),
    }
}
