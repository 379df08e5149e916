//! Persistence of one snapshot: sort by the partition's sort key, deduplicate, encode
//! Parquet, upload, then register the file in the catalog.
//!
//! ```text
//!  Snapshot ─► unify schemas ─► concat ─► tags by cardinality
//!           ─► catalog.create_partition (its sort key) ─► catalog.extend_sort_key (new tags)
//!           ─► sort_dedup_by(key) ─► Parquet (`parquet_format`)
//!           ─► object_store.put ─► catalog.add_parquet_file
//! ```
//!
//! Invariants: the object is uploaded before it is registered, and the caller drops the
//! snapshot's rows from memory only after registration returned. The file's tags are in
//! the partition's sort key before the file is registered (see `ferrite_model::sort_key`).
//! A snapshot is encoded once; retries repeat only the I/O, with the same object id.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, new_null_array};
use arrow::datatypes::{Field, Schema, SchemaRef};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use ferrite_catalog::{CatalogRef, ParquetFile, ParquetFileParams};
use ferrite_model::PartitionId;
use ferrite_model::dedup::sort_dedup_by;
use ferrite_model::sort_key;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::ArrowWriter;
use tracing::Instrument as _;

use crate::buffer::Snapshot;

/// Why a persist attempt failed. Every cause is retried by the caller; the rows stay in
/// memory and in the WAL meanwhile.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    /// Sorting, deduplicating or encoding failed.
    #[error("cannot encode partition {partition}: {source}")]
    Encode {
        /// Partition key.
        partition: String,
        /// Cause.
        source: ArrowError,
    },
    /// Parquet writer failure.
    #[error("cannot write parquet for partition {partition}: {source}")]
    Parquet {
        /// Partition key.
        partition: String,
        /// Cause.
        source: parquet::errors::ParquetError,
    },
    /// Upload failed.
    #[error("cannot upload {path}: {source}")]
    Upload {
        /// Object path.
        path: String,
        /// Cause.
        source: object_store::Error,
    },
    /// Catalog failure.
    #[error("catalog: {0}")]
    Catalog(#[from] ferrite_catalog::Error),
    /// The blocking task died.
    #[error("persist task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// A snapshot's rows, sorted, deduplicated and encoded as Parquet: made once, then uploaded
/// and registered as often as that takes. The object id is fixed here, so a retry after a
/// lost reply overwrites the same object and registers the same file (both idempotent).
#[derive(Debug)]
pub struct EncodedSnapshot {
    bytes: bytes::Bytes,
    partition_id: PartitionId,
    object_store_id: uuid::Uuid,
    min_time: i64,
    max_time: i64,
    row_count: i64,
}

/// A snapshot's rows in one batch, in write order, with its tags by cardinality.
struct Gathered {
    rows: RecordBatch,
    tags: Vec<String>,
}

/// Writes snapshots to the object store and registers them.
#[derive(Debug, Clone)]
pub struct Persister {
    catalog: CatalogRef,
    store: Arc<dyn ObjectStore>,
}

impl Persister {
    /// A persister writing into `store` and registering in `catalog`.
    pub fn new(catalog: CatalogRef, store: Arc<dyn ObjectStore>) -> Self {
        Self { catalog, store }
    }

    /// Encode `snapshot` on blocking threads, sorted by its partition's sort key: the
    /// partition is created, and its key chosen or extended, on the way.
    pub async fn encode(&self, snapshot: Arc<Snapshot>) -> Result<EncodedSnapshot, PersistError> {
        let span = tracing::debug_span!("gather rows", rows = snapshot.rows());
        let gather = Arc::clone(&snapshot);
        let gathered =
            tokio::task::spawn_blocking(move || span.in_scope(|| gather_rows(&gather))).await??;
        let mut partition = self
            .catalog
            .create_partition(snapshot.table_id, &snapshot.partition_key)
            .instrument(tracing::debug_span!("catalog: create partition"))
            .await?;
        if let Some(key) = &partition.sort_key
            && !sort_key::missing(key, &gathered.tags).is_empty()
        {
            partition = self
                .catalog
                .extend_sort_key(partition.id, &gathered.tags)
                .instrument(tracing::debug_span!("catalog: extend sort key"))
                .await?;
        }
        let span = tracing::debug_span!("sort, dedup and encode", rows = snapshot.rows());
        let bytes_and_rows = tokio::task::spawn_blocking(move || {
            span.in_scope(|| encode(&snapshot, &gathered.rows, partition.sort_key.as_deref()))
        })
        .await??;
        let (batch, bytes) = bytes_and_rows;
        Ok(EncodedSnapshot {
            bytes: bytes.into(),
            partition_id: partition.id,
            object_store_id: uuid::Uuid::new_v4(),
            min_time: time_bound(&batch, arrow::compute::min),
            max_time: time_bound(&batch, arrow::compute::max),
            row_count: batch.num_rows() as i64,
        })
    }

    /// One persist attempt: encode `snapshot` unless `encoded` holds it from an earlier
    /// attempt, then upload and register it. Safe to call again after a failure.
    pub async fn attempt(
        &self,
        snapshot: &Arc<Snapshot>,
        encoded: &mut Option<EncodedSnapshot>,
    ) -> Result<ParquetFile, PersistError> {
        let encoded = match encoded {
            Some(e) => e,
            None => encoded.insert(self.encode(Arc::clone(snapshot)).await?),
        };
        self.persist(snapshot, encoded).await
    }

    /// Upload `encoded` and register it as the file of `snapshot`; safe to call again after
    /// a failure. Returns the registered file.
    pub async fn persist(
        &self,
        snapshot: &Snapshot,
        encoded: &EncodedSnapshot,
    ) -> Result<ParquetFile, PersistError> {
        let params = ParquetFileParams {
            database_id: snapshot.database_id,
            table_id: snapshot.table_id,
            partition_id: encoded.partition_id,
            object_store_id: encoded.object_store_id,
            min_time: encoded.min_time,
            max_time: encoded.max_time,
            row_count: encoded.row_count,
            file_size_bytes: encoded.bytes.len() as i64,
            compaction_level: 0,
            max_sequence_number: snapshot.max_seq() as i64,
        };
        let path = params.object_path();
        self.store
            .put(&Path::from(path.as_str()), encoded.bytes.clone().into())
            .instrument(tracing::debug_span!("upload", bytes = encoded.bytes.len()))
            .await
            .map_err(|source| PersistError::Upload { path, source })?;
        Ok(self
            .catalog
            .add_parquet_file(params)
            .instrument(tracing::debug_span!("catalog: commit file"))
            .await?)
    }
}

fn time_bound(
    batch: &RecordBatch,
    f: fn(&arrow::array::TimestampNanosecondArray) -> Option<i64>,
) -> i64 {
    batch
        .column_by_name(ferrite_model::TIME_COLUMN)
        .and_then(|c| c.as_any().downcast_ref().and_then(f))
        .unwrap_or(0)
}

/// The snapshot's rows in one batch (batches are in sequence order and rows in line order,
/// so row order is write order) and its tags by cardinality.
fn gather_rows(snapshot: &Snapshot) -> Result<Gathered, PersistError> {
    let enc = |source| PersistError::Encode {
        partition: snapshot.partition_key.clone(),
        source,
    };
    let batches: Vec<&RecordBatch> = snapshot.batches.iter().map(|b| &b.batch).collect();
    let schema = unified_schema(&batches);
    let aligned = batches
        .iter()
        .map(|b| align(b, &schema))
        .collect::<Result<Vec<_>, _>>()
        .map_err(enc)?;
    let rows = arrow::compute::concat_batches(&schema, &aligned).map_err(enc)?;
    let tags = sort_key::by_cardinality(&rows);
    Ok(Gathered { rows, tags })
}

/// `all` (the snapshot's rows in write order) sorted by the partition's key `chosen`,
/// deduplicated, and their Parquet encoding.
fn encode(
    snapshot: &Snapshot,
    all: &RecordBatch,
    chosen: Option<&[String]>,
) -> Result<(RecordBatch, Vec<u8>), PersistError> {
    let partition = snapshot.partition_key.clone();
    let enc = |source| PersistError::Encode {
        partition: partition.clone(),
        source,
    };
    let schema = all.schema();
    let key = sort_key::sort_columns(chosen, &schema);
    let sorted = sort_dedup_by(all, &key, None).map_err(enc)?;

    let props = ferrite_model::parquet_format::writer_properties(
        &schema,
        snapshot.database_id,
        snapshot.table_id,
        &snapshot.partition_key,
    )
    .set_sorting_columns(Some(ferrite_model::parquet_format::sorting_columns(
        &schema, &key,
    )))
    .build();
    let par = |source| PersistError::Parquet {
        partition: partition.clone(),
        source,
    };
    let mut writer =
        ArrowWriter::try_new(Vec::new(), Arc::clone(&schema), Some(props)).map_err(par)?;
    writer.write(&sorted).map_err(par)?;
    let bytes = writer.into_inner().map_err(par)?;
    Ok((sorted, bytes))
}

/// The union of the batches' columns, sorted by name.
pub(crate) fn unified_schema(batches: &[&RecordBatch]) -> SchemaRef {
    let mut fields: BTreeMap<String, Field> = BTreeMap::new();
    for b in batches {
        for f in b.schema().fields() {
            fields
                .entry(f.name().clone())
                .or_insert_with(|| f.as_ref().clone());
        }
    }
    Arc::new(Schema::new(fields.into_values().collect::<Vec<_>>()))
}

/// `batch` with exactly the fields of `schema`: missing columns become nulls.
pub(crate) fn align(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch, ArrowError> {
    let columns = schema
        .fields()
        .iter()
        .map(|f| match batch.column_by_name(f.name()) {
            Some(c) if c.data_type() == f.data_type() => Ok(Arc::clone(c)),
            Some(c) => Err(ArrowError::SchemaError(format!(
                "column '{}' is {} in the buffer but {} was requested",
                f.name(),
                c.data_type(),
                f.data_type()
            ))),
            None => Ok(new_null_array(f.data_type(), batch.num_rows())),
        })
        .collect::<Result<Vec<ArrayRef>, _>>()?;
    RecordBatch::try_new(Arc::clone(schema), columns)
}
