//! The ingester's two contracts: writes in, unpersisted data out. In `ferrite serve` they are
//! called in-process; in the cluster the same types travel over gRPC / Flight.

use arrow::datatypes::SchemaRef;
pub use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use ferrite_model::{DatabaseId, TableId};

/// Rows of one table and one partition, as built by the router. The batch's schema uses
/// [`ferrite_model::ColumnType::arrow_field`] for every column and always has `time`.
#[derive(Debug, Clone)]
pub struct TableWrite {
    /// Table the rows belong to.
    pub table_id: TableId,
    /// Partition key every row maps to.
    pub partition_key: String,
    /// The rows, in line order: a later row of the same key wins.
    pub batch: RecordBatch,
}

/// One write: rows of any number of tables of one database.
#[derive(Debug, Clone)]
pub struct WriteRequest {
    /// Target database.
    pub database_id: DatabaseId,
    /// The rows, grouped by table and partition.
    pub tables: Vec<TableWrite>,
}

/// When a write may be acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// After the WAL entry is fsynced.
    Sync,
    /// As soon as the entry is buffered (the v3 API's `no_sync=true`).
    NoSync,
}

/// Why an ingester refused a write.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The WAL could not be written or synced: nothing was acknowledged.
    #[error("write-ahead log failed: {0}")]
    Wal(String),
    /// The ingester holds too much unpersisted data; retry later.
    #[error("ingester is overloaded: {0}")]
    Overloaded(String),
    /// The ingester is draining for shutdown; retry on another ingester.
    #[error("ingester is shutting down")]
    ShuttingDown,
    /// The ingester cannot be reached (cluster only).
    #[error("ingester unavailable: {0}")]
    Unavailable(String),
}

/// The write side of an ingester.
#[async_trait]
pub trait IngesterWrite: std::fmt::Debug + Send + Sync + 'static {
    /// Make the rows durable per `durability` and queryable, then return.
    async fn write(&self, request: WriteRequest, durability: Durability) -> Result<(), WriteError>;
}

/// What a querier asks an ingester for.
#[derive(Debug, Clone)]
pub struct QueryRequest {
    /// Database of the table.
    pub database_id: DatabaseId,
    /// Table to read.
    pub table_id: TableId,
    /// The output schema: every returned batch has exactly these fields, columns the
    /// ingester does not hold are filled with nulls.
    pub schema: SchemaRef,
    /// Only rows with `min <= time < max`, if given.
    pub time_range: Option<(i64, i64)>,
    /// Only rows whose tag holds one of the values, for every entry. Each column must be a
    /// Utf8 tag of `schema`. Tags are in the primary key, so filtering before
    /// deduplication keeps every row that shares a key with a kept row.
    pub tags: Vec<TagIn>,
}

/// `column IN (values…)` on a tag column (SQL semantics: a null tag is in no list).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagIn {
    /// Tag column name.
    pub column: String,
    /// The values the tag may hold.
    pub values: Vec<String>,
}

/// One partition's unpersisted rows.
#[derive(Debug, Clone)]
pub struct PartitionData {
    /// Partition key.
    pub partition_key: String,
    /// Rows in write order (later batches hold later writes; within a batch later rows are
    /// later writes). Not sorted, not deduplicated, unless `deduplicated`.
    pub batches: Vec<RecordBatch>,
    /// Smallest time among the rows.
    pub min_time: i64,
    /// Largest time among the rows.
    pub max_time: i64,
    /// The rows hold at most one row per key (ordered by time, not by key): they need no
    /// deduplication among themselves.
    pub deduplicated: bool,
}

/// An ingester's answer.
#[derive(Debug, Clone)]
pub struct QueryResponse {
    /// Identity of this ingester process (changes on restart).
    pub ingester_uuid: uuid::Uuid,
    /// Number of persist operations completed since start: when it changes, the catalog holds
    /// new files for this ingester's data.
    pub persist_count: u64,
    /// Partitions with unpersisted rows in the range.
    pub partitions: Vec<PartitionData>,
}

/// Why an ingester query failed.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The request's schema does not fit the buffered data.
    #[error("invalid ingester query: {0}")]
    Invalid(String),
    /// The ingester cannot be reached (cluster only).
    #[error("ingester unavailable: {0}")]
    Unavailable(String),
}

/// What an ingester holds that is not persisted yet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BufferStats {
    /// Bytes of Arrow data buffered or being persisted.
    pub bytes: u64,
    /// Rows buffered or being persisted.
    pub rows: u64,
}

/// One ingester as a status call found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngesterStatus {
    /// How it is reached (`in-process` for the ingester of `ferrite serve`).
    pub address: String,
    /// What it buffers, or why it did not answer.
    pub buffered: Result<BufferStats, String>,
}

/// The query side of an ingester: unpersisted data for queriers.
#[async_trait]
pub trait IngesterQuery: std::fmt::Debug + Send + Sync + 'static {
    /// The table's unpersisted rows, snapshot at call time.
    async fn query(&self, request: QueryRequest) -> Result<QueryResponse, QueryError>;

    /// The rows of a last-value or distinct-value cache: one batch per ingester behind this
    /// client (the querier merges them). An ingester that does not have the cache yet builds
    /// it from `definition` and its buffer first.
    async fn cache(
        &self,
        definition: &ferrite_model::cache::CacheDefinition,
    ) -> Result<Vec<arrow::record_batch::RecordBatch>, QueryError>;

    /// Every ingester behind this client and what each buffers; one that cannot be reached
    /// is listed with the error, never left out.
    async fn status(&self) -> Vec<IngesterStatus>;
}
