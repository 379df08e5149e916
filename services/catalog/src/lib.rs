//! The catalog: databases, tables, typed columns, partitions and parquet files.
//!
//! ```text
//!  router ──(create db/table, upsert columns)──►┐
//!  ingester ──(create partition, add file)─────►├─► Catalog ──► SqlCatalog ──► PostgreSQL | SQLite
//!  querier ──(schema, files of a table)────────►┘      │
//!                                                      └─► GrpcCatalog ══ gRPC ══► catalog service
//!                                                          (ferrite.catalog.v1)    └─► SqlCatalog
//! ```
//!
//! In one process (`ferrite serve`) services use a [`SqlCatalog`] directly; in a cluster they
//! use a [`GrpcCatalog`] talking to the catalog service ([`grpc::catalog_service`]), the only
//! process that opens the catalog database. Both implement [`Catalog`] with the same
//! behaviour and the same errors.
//!
//! Invariants:
//! - every create is an idempotent create-or-get: concurrent callers get the same row;
//! - a column's type never changes: upserting a column with another type is
//!   [`Error::ColumnTypeConflict`] and changes nothing;
//! - a parquet file is visible to readers only once `add_parquet_file` has returned, and it
//!   is registered before its rows leave an ingester's memory.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use ferrite_model::{
    ColumnId, ColumnType, DatabaseId, DatabaseSchema, ParquetFileId, PartitionId, TableId,
    TableSchema,
};

pub mod cache;
pub mod grpc;
pub mod lifecycle;
mod sql;
pub mod token;

pub use cache::CachedCatalog;
pub use grpc::GrpcCatalog;
pub use lifecycle::{Lease, LevelStats, PartitionSummary, SkippedCompaction};
pub use sql::{DatabaseInfo, LimitsUpdate, PurgeReport, SqlCatalog, Status, TableInfo};
pub use token::{Action, NewToken, Permission, Resource, TokenRecord, TokenUpdate};

/// Result of catalog operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a catalog operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A column exists with another type.
    #[error("column '{column}' is {existing} in table '{table}', got {requested}")]
    ColumnTypeConflict {
        /// Table name.
        table: String,
        /// Column name.
        column: String,
        /// Type in the catalog.
        existing: ColumnType,
        /// Type asked for.
        requested: ColumnType,
    },
    /// No database with that name or id.
    #[error("database '{0}' not found")]
    DatabaseNotFound(String),
    /// No table with that id.
    #[error("table {0} not found")]
    TableNotFound(TableId),
    /// No token with that id.
    #[error("token {0} not found")]
    TokenNotFound(uuid::Uuid),
    /// Creating the table would exceed the database's max tables. Nothing was changed.
    #[error(
        "database '{database}' has {count} tables, its limit (max tables {limit}): table \
         '{table}' cannot be created"
    )]
    TableLimit {
        /// Database name.
        database: String,
        /// The table that was refused.
        table: String,
        /// Live tables now.
        count: i64,
        /// The database's max tables.
        limit: i64,
    },
    /// Adding the columns would exceed the database's max columns per table. Nothing was
    /// changed.
    #[error(
        "table '{table}' has {count} columns; adding {adding} would exceed its limit (max \
         columns per table {limit})"
    )]
    ColumnLimit {
        /// Table name.
        table: String,
        /// Columns now.
        count: i64,
        /// Columns asked for that do not exist.
        adding: i64,
        /// The database's max columns per table.
        limit: i64,
    },
    /// The name is taken by a live database or table (create, rename, undelete), or the
    /// object is not in the state the operation needs.
    #[error("{0}")]
    Conflict(String),
    /// A management request named something that does not exist (a table by name).
    #[error("{0}")]
    NotFound(String),
    /// A management request with a bad name or setting.
    #[error("{0}")]
    Invalid(String),
    /// The catalog database cannot be reached or failed the statement.
    #[error("catalog unavailable: {0}")]
    Unavailable(#[from] sqlx::Error),
    /// Migrations failed at start.
    #[error("catalog migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// The DSN names no supported backend.
    #[error("unsupported catalog DSN '{0}': expected postgres://… or sqlite://…")]
    InvalidDsn(String),
    /// A stored row cannot be read back (for example an unknown column type code).
    #[error("corrupt catalog row: {0}")]
    Corrupt(String),
    /// The catalog service ([`grpc::GrpcCatalog`]) could not be reached, timed out, or failed
    /// the call in a way that has no variant of its own (its catalog database is down, say),
    /// after bounded retries. The caller may retry later: HTTP 503, gRPC `UNAVAILABLE`.
    #[error("catalog service error: {0}")]
    Rpc(String),
}

/// A database (namespace).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Database {
    /// Catalog id.
    pub id: DatabaseId,
    /// Unique name.
    pub name: String,
}

/// A table (measurement).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    /// Catalog id.
    pub id: TableId,
    /// Owning database.
    pub database_id: DatabaseId,
    /// Name, unique within the database.
    pub name: String,
}

/// A typed column of a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// Catalog id.
    pub id: ColumnId,
    /// Owning table.
    pub table_id: TableId,
    /// Name, unique within the table.
    pub name: String,
    /// Fixed at creation.
    pub column_type: ColumnType,
}

/// A partition of a table: by default one UTC day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    /// Catalog id.
    pub id: PartitionId,
    /// Owning table.
    pub table_id: TableId,
    /// Partition key, e.g. `2024-03-05`.
    pub key: String,
    /// The tags its files are sorted by, in order, before `time` (see
    /// [`ferrite_model::sort_key`]): empty until the first persist chooses them, then only
    /// ever extended. `None` for a partition from before keys were recorded: its files are
    /// sorted by every tag in name order.
    pub sort_key: Option<Vec<String>>,
}

/// What an ingester (or later the compactor) registers for a new parquet file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParquetFileParams {
    /// Database of the table.
    pub database_id: DatabaseId,
    /// Table the rows belong to.
    pub table_id: TableId,
    /// Partition the rows belong to.
    pub partition_id: PartitionId,
    /// Unique object id; the object path is derived from it.
    pub object_store_id: uuid::Uuid,
    /// Smallest `time` in the file, ns.
    pub min_time: i64,
    /// Largest `time` in the file, ns.
    pub max_time: i64,
    /// Rows in the file.
    pub row_count: i64,
    /// Size of the object.
    pub file_size_bytes: i64,
    /// 0 for ingester output; compaction raises it.
    pub compaction_level: i16,
    /// Orders overlapping files: a file with a higher value holds later writes. Ingesters use
    /// their highest WAL sequence number in the file.
    pub max_sequence_number: i64,
}

/// A registered parquet file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParquetFile {
    /// Catalog id.
    pub id: ParquetFileId,
    /// What was registered.
    pub params: ParquetFileParams,
    /// Registration time, ns since the epoch.
    pub created_at: i64,
}

/// The catalog operations every service uses. [`SqlCatalog`] implements it over sqlx; the
/// cluster's catalog service client implements it over gRPC.
#[async_trait]
pub trait Catalog: Debug + Send + Sync + 'static {
    /// Create the database if it does not exist; return it either way.
    async fn create_database(&self, name: &str) -> Result<Database>;
    /// The database with this name, if any.
    async fn database_by_name(&self, name: &str) -> Result<Option<Database>>;
    /// All databases, ordered by name.
    async fn list_databases(&self) -> Result<Vec<Database>>;

    /// Create the table if it does not exist; return it either way.
    async fn create_table(&self, database_id: DatabaseId, name: &str) -> Result<Table>;
    /// All tables of a database, ordered by name.
    async fn list_tables(&self, database_id: DatabaseId) -> Result<Vec<Table>>;

    /// Add the columns that do not exist yet and return all of `columns` (in input order).
    /// Fails with [`Error::ColumnTypeConflict`], changing nothing, if any exists with another
    /// type.
    async fn upsert_columns(
        &self,
        table_id: TableId,
        columns: &[(&str, ColumnType)],
    ) -> Result<Vec<Column>>;
    /// All columns of a table, ordered by name.
    async fn list_columns(&self, table_id: TableId) -> Result<Vec<Column>>;
    /// One database with every table and column.
    async fn database_schema(&self, database_id: DatabaseId) -> Result<DatabaseSchema>;
    /// One table's schema.
    async fn table_schema(&self, table_id: TableId) -> Result<TableSchema>;

    /// Create the partition if it does not exist; return it either way.
    async fn create_partition(&self, table_id: TableId, key: &str) -> Result<Partition>;
    /// Every partition of a table, ordered by id.
    async fn table_partitions(&self, table_id: TableId) -> Result<Vec<Partition>>;
    /// Append to the partition's sort key the `tags` it lacks, in the order given, in one
    /// step however many callers race; a partition without a key keeps none. Returns the
    /// partition as it then is. Called before a file with those tags is registered, so a
    /// reader listing files first and the key second finds every file's tags in the key.
    async fn extend_sort_key(
        &self,
        partition_id: PartitionId,
        tags: &[String],
    ) -> Result<Partition>;

    /// Register a persisted parquet file.
    async fn add_parquet_file(&self, params: ParquetFileParams) -> Result<ParquetFile>;
    /// The live (not deleted) parquet files of a table, ordered by id.
    async fn parquet_files(&self, table_id: TableId) -> Result<Vec<ParquetFile>>;

    /// Take or renew the lease `name` for `holder` for `ttl_ns` nanoseconds: granted when
    /// nobody holds it, `holder` already does, or the holder let it expire. The answer says
    /// who holds it now.
    async fn acquire_lease(&self, name: &str, holder: &str, ttl_ns: i64) -> Result<Lease>;
    /// Give the lease up at once, if `holder` has it (a clean shutdown).
    async fn release_lease(&self, name: &str, holder: &str) -> Result<()>;
    /// Who holds the lease `name` and until when, without taking it (`acquired` is false);
    /// `None` if it was never taken. An expired or released lease is returned as it is.
    async fn lease(&self, name: &str) -> Result<Option<Lease>>;
    /// Every partition of a live table that has live files, with files, rows and bytes per
    /// compaction level and the compactor's skip record. Ordered by partition id.
    async fn partition_summaries(&self) -> Result<Vec<PartitionSummary>>;
    /// The live files of one partition, ordered by id.
    async fn partition_files(&self, partition_id: PartitionId) -> Result<Vec<ParquetFile>>;
    /// In one transaction: mark `replaced` (no longer part of the table; objects kept for
    /// garbage collection) and register `added`. [`Error::Conflict`], changing nothing, if
    /// any of `replaced` is not live any more. Returns the added files.
    async fn replace_files(
        &self,
        replaced: &[ParquetFileId],
        added: Vec<ParquetFileParams>,
    ) -> Result<Vec<ParquetFile>>;
    /// Record that the compactor skips a partition, and why.
    async fn skip_partition(&self, partition_id: PartitionId, reason: &str) -> Result<()>;
    /// Let the compactor try a skipped partition again; `false` if it was not skipped.
    async fn unskip_partition(&self, partition_id: PartitionId) -> Result<bool>;
    /// Mark every live file whose rows are all older than its database's retention period.
    /// Returns how many.
    async fn expire_files(&self) -> Result<u64>;
    /// Purge tables and databases soft-deleted more than `grace_ns` ago: mark their files,
    /// and remove the rows of those whose files are all collected.
    async fn purge_deleted(&self, grace_ns: i64) -> Result<PurgeReport>;
    /// Up to `limit` files marked more than `grace_ns` ago, oldest first: their objects may
    /// be deleted, then their rows with [`Catalog::delete_files`].
    async fn files_to_collect(&self, grace_ns: i64, limit: i64) -> Result<Vec<ParquetFile>>;
    /// Remove the rows of marked files whose objects are gone; live files are left alone.
    async fn delete_files(&self, ids: &[ParquetFileId]) -> Result<u64>;
    /// Which of these object ids a file row (live or marked) references.
    async fn referenced_objects(&self, ids: &[uuid::Uuid]) -> Result<Vec<uuid::Uuid>>;

    /// Register a token. Its id and hash must be new.
    async fn create_token(&self, token: NewToken) -> Result<TokenRecord>;
    /// Every token, revoked and expired ones included, ordered by creation.
    async fn list_tokens(&self) -> Result<Vec<TokenRecord>>;
    /// Change a token's description or replace its permissions.
    /// [`Error::TokenNotFound`] if there is no such token.
    async fn update_token(&self, id: uuid::Uuid, update: TokenUpdate) -> Result<TokenRecord>;
    /// Revoke a token for good; revoking it again changes nothing.
    /// [`Error::TokenNotFound`] if there is no such token.
    async fn revoke_token(&self, id: uuid::Uuid) -> Result<TokenRecord>;

    /// Every last-value and distinct-value cache of the live tables of live databases.
    async fn list_caches(&self) -> Result<Vec<ferrite_model::cache::CacheDefinition>>;

    /// The catalog version: a counter bumped with every database, table, column, parquet
    /// file created, every database or table deleted, restored, renamed or reconfigured, every
    /// cache created or deleted, and every token change (and only then). A changed version means
    /// something changed, so caches keyed on it stay coherent.
    async fn version(&self) -> Result<i64>;

    /// Bring cached answers up to the catalog's current version, for a reader that found
    /// something missing (a database, table or column) and must not answer "not found" from
    /// a view that lags the catalog. `true`: answers may have changed, read again; `false`:
    /// nothing newer exists, the miss is real. A catalog that caches nothing is always
    /// current and answers `false`.
    async fn refresh(&self) -> Result<bool> {
        Ok(false)
    }

    /// The catalog version this handle knows without asking, when it follows the catalog's
    /// change feed (a [`CachedCatalog`]): answers read while it stands still may be reused.
    /// `None`: nothing is followed, every read must ask.
    fn known_version(&self) -> Option<i64> {
        None
    }
}

/// Shared handle to a catalog.
pub type CatalogRef = Arc<dyn Catalog>;

impl ParquetFileParams {
    /// Where the file lives in the object store, relative to the store's root.
    pub fn object_path(&self) -> String {
        format!(
            "dbs/{}/tables/{}/partitions/{}/{}.parquet",
            self.database_id, self.table_id, self.partition_id, self.object_store_id
        )
    }
}
