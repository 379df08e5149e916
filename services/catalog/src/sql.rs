//! [`SqlCatalog`]: the catalog over PostgreSQL (cluster) or SQLite (embedded), one SQL
//! implementation for both through sqlx's `Any` driver.
//!
//! ```text
//!  connect(dsn) ──► parse DSN ──► pool (AnyPool) ──► migrations/postgres | migrations/sqlite
//!                                                      (PG: under sqlx's pg_advisory_lock)
//!  create_*  ──► fast path: SELECT ─┬─ found ──► return it
//!                                   └─ missing ─► write transaction:
//!                                        INSERT … ON CONFLICT DO NOTHING RETURNING id
//!                                        ├─ inserted ──► bump catalog_version
//!                                        └─ lost the race ──► SELECT the winner's row
//! ```
//!
//! Why one implementation: both dialects accept `$N` placeholders, `ON CONFLICT … DO
//! NOTHING`, `RETURNING` and partial indexes, so the statements are shared. The differences
//! are kept small and explicit in [`Backend`]: how a write transaction begins (SQLite takes
//! the write lock up front with `BEGIN IMMEDIATE`, so a read-then-write transaction cannot
//! fail with `SQLITE_BUSY` when another writer got in between) and how a UUID parameter is
//! written (`uuid` column in PostgreSQL, text in SQLite; `Any` only carries text).
//!
//! Invariants:
//! - every create is idempotent and safe under concurrency: the unique constraints decide
//!   the winner, losers read the winner's row;
//! - `catalog_version` is bumped in the same transaction as every database, table, column
//!   and parquet file that is actually created (not when an existing row is returned);
//! - `upsert_columns` inserts in name order (no lock cycles between concurrent upserts of
//!   overlapping column sets) and checks every type before committing, so a conflict
//!   changes nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use ferrite_model::{
    ColumnId, ColumnType, DatabaseId, DatabaseLimits, DatabaseSchema, ParquetFileId, PartitionId,
    PartitionTemplate, TableId, TableSchema,
};
use sqlx::any::AnyPoolOptions;
use sqlx::migrate::Migrator;
use sqlx::{Any, AnyPool, AssertSqlSafe, Transaction};
use tokio::sync::watch;

use crate::token::{decode_permissions, encode_permissions};
use crate::{
    Catalog, Column, Database, Error, Lease, NewToken, ParquetFile, ParquetFileParams, Partition,
    PartitionSummary, Result, Table, TokenRecord, TokenUpdate,
};

/// `SELECT <the columns of a ParquetFileRow> FROM parquet_files <rest>`, as a literal.
/// `CAST(… AS TEXT)` turns PostgreSQL's `uuid` into text (`Any` has no uuid type) and is a
/// no-op in SQLite.
macro_rules! select_parquet_files {
    ($rest:literal) => {
        concat!(
            "SELECT id, database_id, table_id, partition_id, CAST(object_store_id AS TEXT), \
             min_time, max_time, row_count, file_size_bytes, compaction_level, \
             max_sequence_number, created_at FROM parquet_files ",
            $rest
        )
    };
}

/// `SELECT <the columns of a TokenRow> FROM tokens`, as a literal.
macro_rules! select_tokens {
    () => {
        "SELECT id, description, token_hash, permissions, created_at, expires_at, revoked_at \
         FROM tokens"
    };
}
mod admin;
mod caches;
mod lifecycle;
pub use admin::{DatabaseInfo, LimitsUpdate, Status, TableInfo};
pub use lifecycle::PurgeReport;

static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");
static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");

/// Connections to PostgreSQL per catalog process.
const PG_MAX_CONNECTIONS: u32 = 10;
/// Connections to a SQLite file: readers run in parallel under WAL, writers queue on the
/// file's write lock.
const SQLITE_MAX_CONNECTIONS: u32 = 8;
/// How long an operation waits for a pooled connection before the catalog reports itself
/// unavailable. Also bounds the wait while PostgreSQL is down.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// Idle PostgreSQL connections are closed after this long.
const PG_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Rows per multi-row `INSERT` into `columns` (3 parameters each, far below either
/// backend's parameter limit).
const COLUMN_INSERT_CHUNK: usize = 500;

/// Which database server is behind the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Postgres,
    Sqlite,
}

/// What a DSN asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Postgres { url: String },
    SqliteFile { url: String, path: PathBuf },
    SqliteMemory { url: String },
}

/// The catalog over a SQL database: PostgreSQL for a cluster, SQLite embedded.
///
/// Cheap to share behind an `Arc`; all methods take `&self` and use a connection pool.
#[derive(Debug)]
pub struct SqlCatalog {
    pool: AnyPool,
    backend: Backend,
    /// The version after this process's last committed write: an exact, immediate feed for
    /// readers in the same process (`ferrite serve`'s query engine).
    committed: watch::Sender<i64>,
}

impl SqlCatalog {
    /// Connect to the catalog database and bring its schema up to date.
    ///
    /// `dsn` is `postgres://…` / `postgresql://…`, `sqlite://path` / `sqlite:path` (the file
    /// and its directory are created if missing) or `sqlite::memory:` (a private in-memory
    /// catalog that lives as long as this value).
    ///
    /// On PostgreSQL the migrations run under sqlx's session advisory lock
    /// (`pg_advisory_lock`, keyed on the database name) on a dedicated connection that is
    /// closed afterwards, so any number of replicas may start at once: one migrates, the
    /// others wait and then find nothing to do.
    pub async fn connect(dsn: &str) -> Result<Self> {
        let (pool, backend) = Self::open(dsn).await?;
        let catalog = Self {
            pool,
            backend,
            committed: watch::Sender::new(0),
        };
        let version = catalog.version().await?;
        catalog.committed.send_replace(version);
        Ok(catalog)
    }

    async fn open(dsn: &str) -> Result<(AnyPool, Backend)> {
        sqlx::any::install_default_drivers();
        match parse_dsn(dsn)? {
            Target::Postgres { url } => {
                // Its own one-connection pool, closed afterwards: closing ends the session,
                // which also frees the advisory lock if a migration failed half-way and the
                // migrator never unlocked.
                let migrations = AnyPoolOptions::new()
                    .max_connections(1)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .connect(&url)
                    .await?;
                let migrated = migrate(&POSTGRES_MIGRATIONS, &migrations).await;
                migrations.close().await;
                migrated?;
                let pool = AnyPoolOptions::new()
                    .max_connections(PG_MAX_CONNECTIONS)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .idle_timeout(PG_IDLE_TIMEOUT)
                    // A connection broken by a server restart is noticed here and replaced
                    // instead of failing the caller's statement.
                    .test_before_acquire(true)
                    .connect(&url)
                    .await?;
                tracing::info!("catalog connected to PostgreSQL");
                Ok((pool, Backend::Postgres))
            }
            Target::SqliteFile { url, path } => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|e| {
                        Error::Unavailable(sqlx::Error::Io(std::io::Error::new(
                            e.kind(),
                            format!("cannot create {}: {e}", dir.display()),
                        )))
                    })?;
                }
                let pool = AnyPoolOptions::new()
                    .max_connections(SQLITE_MAX_CONNECTIONS)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .connect(&url)
                    .await?;
                // WAL lets readers run while one task writes. The mode is stored in the file,
                // so setting it once covers every connection. (sqlx already sets
                // busy_timeout = 5 s and foreign_keys = ON on each connection.)
                sqlx::query("PRAGMA journal_mode = WAL")
                    .execute(&pool)
                    .await?;
                migrate(&SQLITE_MIGRATIONS, &pool).await?;
                tracing::info!(path = %path.display(), "catalog opened SQLite file");
                Ok((pool, Backend::Sqlite))
            }
            Target::SqliteMemory { url } => {
                // One connection that is never closed: an in-memory database lives exactly
                // as long as its last connection.
                let pool = AnyPoolOptions::new()
                    .max_connections(1)
                    .min_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .connect(&url)
                    .await?;
                migrate(&SQLITE_MIGRATIONS, &pool).await?;
                Ok((pool, Backend::Sqlite))
            }
        }
    }

    /// The catalog version: bumped in the same transaction as every database, table, column
    /// and parquet file created, so a changed version means something was added.
    pub async fn version(&self) -> Result<i64> {
        Ok(
            sqlx::query_scalar::<_, i64>("SELECT version FROM catalog_version WHERE id = 1")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// Close every pooled connection; later calls fail. Waits for checked-out connections
    /// to come back.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// A transaction that will write. SQLite takes the write lock at `BEGIN IMMEDIATE`
    /// (waiting up to the busy timeout) rather than at the first write, where a stale read
    /// snapshot would fail at once with `SQLITE_BUSY`.
    /// The catalog version after each write this process commits, starting at the version
    /// found on connecting. It moves before the write's call returns, so a reader that
    /// caches by it ([`crate::CachedCatalog`]) sees its own process's writes at once;
    /// other processes' writes reach it only through the polled feed.
    pub fn committed_versions(&self) -> watch::Receiver<i64> {
        self.committed.subscribe()
    }

    /// Commit a write transaction, then publish the version it left.
    async fn commit(&self, tx: Transaction<'static, Any>) -> Result<()> {
        tx.commit().await?;
        if self.committed.receiver_count() > 0 {
            // The write is committed whatever happens here: a failed read only delays the
            // news to the next write or the polled feed, it does not fail the write.
            match self.version().await {
                Ok(v) => {
                    self.committed.send_if_modified(|current| {
                        let newer = v > *current;
                        if newer {
                            *current = v;
                        }
                        newer
                    });
                }
                Err(e) => tracing::warn!(error = %e, "reading the catalog version after a commit"),
            }
        }
        Ok(())
    }

    async fn begin_write(&self) -> Result<Transaction<'static, Any>> {
        Ok(match self.backend {
            Backend::Postgres => self.pool.begin().await?,
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
        })
    }

    /// The statement inserting a parquet file row: the object id needs a cast to `uuid`
    /// in PostgreSQL and is stored as text in SQLite.
    fn insert_parquet_file_sql(&self) -> &'static str {
        match self.backend {
            Backend::Postgres => {
                "INSERT INTO parquet_files (database_id, table_id, partition_id, object_store_id, \
                 min_time, max_time, row_count, file_size_bytes, compaction_level, \
                 max_sequence_number, created_at) \
                 VALUES ($1, $2, $3, CAST($4 AS uuid), $5, $6, $7, $8, $9, $10, $11) \
                 ON CONFLICT (object_store_id) DO NOTHING RETURNING id"
            }
            Backend::Sqlite => {
                "INSERT INTO parquet_files (database_id, table_id, partition_id, object_store_id, \
                 min_time, max_time, row_count, file_size_bytes, compaction_level, \
                 max_sequence_number, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                 ON CONFLICT (object_store_id) DO NOTHING RETURNING id"
            }
        }
    }

    fn parquet_file_by_object_id_sql(&self) -> &'static str {
        match self.backend {
            Backend::Postgres => {
                select_parquet_files!("WHERE object_store_id = CAST($1 AS uuid)")
            }
            Backend::Sqlite => select_parquet_files!("WHERE object_store_id = $1"),
        }
    }

    /// Create the table if it does not exist (return it either way), partitioned by
    /// `template` or, without one, by its database's template.
    async fn create_table_with(
        &self,
        database_id: DatabaseId,
        name: &str,
        template: Option<&PartitionTemplate>,
    ) -> Result<Table> {
        if let Some(table) = self.table_by_name(database_id, name).await? {
            return Ok(table);
        }
        let mut tx = self.begin_write().await?;
        // The limit is checked in the write transaction, so concurrent creators cannot
        // overshoot it together.
        let db: Option<(String, i32)> = sqlx::query_as(
            "SELECT name, max_tables FROM databases WHERE id = $1 AND deleted_at IS NULL",
        )
        .bind(database_id.get())
        .fetch_optional(&mut *tx)
        .await?;
        let (database, limit) =
            db.ok_or_else(|| Error::DatabaseNotFound(database_id.to_string()))?;
        let count: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM tables WHERE database_id = $1 AND deleted_at IS NULL",
        )
        .bind(database_id.get())
        .fetch_one(&mut *tx)
        .await?;
        let exists: Option<i64> =
            sqlx::query_scalar("SELECT id FROM tables WHERE database_id = $1 AND name = $2")
                .bind(database_id.get())
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?;
        if exists.is_none() && count >= i64::from(limit) {
            tx.rollback().await?;
            return Err(Error::TableLimit {
                database,
                table: name.to_owned(),
                count,
                limit: limit.into(),
            });
        }
        // Its own template, else its database's, fixed from now on.
        let inserted: Result<Option<i64>> = sqlx::query_scalar(
            "INSERT INTO tables (database_id, name, partition_template) VALUES ($1, $2, \
             COALESCE($3, (SELECT partition_template FROM databases WHERE id = $1))) \
             ON CONFLICT (database_id, name) DO NOTHING RETURNING id",
        )
        .bind(database_id.get())
        .bind(name)
        .bind(template.map(admin::template_text))
        .fetch_optional(&mut *tx)
        .await
        .map_err(Error::from);
        let id = match inserted {
            Ok(Some(id)) => {
                bump_version(&mut tx).await?;
                id
            }
            Ok(None) => {
                sqlx::query_scalar("SELECT id FROM tables WHERE database_id = $1 AND name = $2")
                    .bind(database_id.get())
                    .bind(name)
                    .fetch_one(&mut *tx)
                    .await?
            }
            Err(e) if is_foreign_key_violation(&e) => {
                return Err(Error::DatabaseNotFound(database_id.to_string()));
            }
            Err(e) => return Err(e),
        };
        self.commit(tx).await?;
        Ok(Table {
            id: TableId(id),
            database_id,
            name: name.to_owned(),
        })
    }

    /// Insert a parquet file row in `tx`: `Some(id)` when inserted, `None` when a row with
    /// its object id exists already. Does not bump the version.
    async fn insert_parquet_file(
        &self,
        tx: &mut Transaction<'static, Any>,
        params: &ParquetFileParams,
    ) -> Result<Option<i64>> {
        Ok(sqlx::query_scalar(self.insert_parquet_file_sql())
            .bind(params.database_id.get())
            .bind(params.table_id.get())
            .bind(params.partition_id.get())
            .bind(params.object_store_id.hyphenated().to_string())
            .bind(params.min_time)
            .bind(params.max_time)
            .bind(params.row_count)
            .bind(params.file_size_bytes)
            .bind(params.compaction_level)
            .bind(params.max_sequence_number)
            .bind(now_ns())
            .fetch_optional(&mut **tx)
            .await?)
    }

    async fn database_by_id(&self, id: DatabaseId) -> Result<Option<Database>> {
        let row: Option<(i64, String)> =
            sqlx::query_as("SELECT id, name FROM databases WHERE id = $1")
                .bind(id.get())
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|(id, name)| Database {
            id: DatabaseId(id),
            name,
        }))
    }

    /// A database's retention and limits.
    async fn limits_of(&self, id: DatabaseId) -> Result<DatabaseLimits> {
        let row: Option<(i64, i32, i32)> = sqlx::query_as(
            "SELECT retention_period_ns, max_tables, max_columns_per_table FROM databases \
             WHERE id = $1",
        )
        .bind(id.get())
        .fetch_optional(&self.pool)
        .await?;
        let (retention_period_ns, max_tables, max_columns_per_table) =
            row.ok_or_else(|| Error::DatabaseNotFound(id.to_string()))?;
        Ok(DatabaseLimits {
            retention_period_ns,
            max_tables,
            max_columns_per_table,
        })
    }

    async fn database_exists(&self, id: DatabaseId) -> Result<bool> {
        Ok(self.database_by_id(id).await?.is_some())
    }

    async fn table_by_id(&self, id: TableId) -> Result<Option<Table>> {
        let row: Option<(i64, i64, String)> =
            sqlx::query_as("SELECT id, database_id, name FROM tables WHERE id = $1")
                .bind(id.get())
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|(id, database_id, name)| Table {
            id: TableId(id),
            database_id: DatabaseId(database_id),
            name,
        }))
    }

    async fn table_by_name(&self, database_id: DatabaseId, name: &str) -> Result<Option<Table>> {
        let id: Option<i64> =
            sqlx::query_scalar("SELECT id FROM tables WHERE database_id = $1 AND name = $2")
                .bind(database_id.get())
                .bind(name)
                .fetch_optional(&self.pool)
                .await?;
        Ok(id.map(|id| Table {
            id: TableId(id),
            database_id,
            name: name.to_owned(),
        }))
    }

    async fn partition_by_key(&self, table_id: TableId, key: &str) -> Result<Option<Partition>> {
        let row: Option<(i64, Option<String>)> = sqlx::query_as(
            "SELECT id, sort_key FROM partitions WHERE table_id = $1 AND partition_key = $2",
        )
        .bind(table_id.get())
        .bind(key)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|(id, sort_key)| partition(id, table_id.get(), key.to_owned(), sort_key))
            .transpose()
    }
}

/// A partition from its row; `sort_key` as stored (see the partition_sort_keys migration).
pub(crate) fn partition(
    id: i64,
    table_id: i64,
    key: String,
    sort_key: Option<String>,
) -> Result<Partition> {
    let sort_key = sort_key
        .map(|text| {
            ferrite_model::sort_key::from_json(&text)
                .map_err(|e| Error::Corrupt(format!("partition {id} has sort key {text:?}: {e}")))
        })
        .transpose()?;
    Ok(Partition {
        id: PartitionId(id),
        table_id: TableId(table_id),
        key,
        sort_key,
    })
}

/// Apply the pending migrations through `pool`.
async fn migrate(migrator: &Migrator, pool: &AnyPool) -> Result<()> {
    migrator.run(pool).await?;
    Ok(())
}

/// Raise the catalog version inside the caller's transaction.
async fn bump_version(tx: &mut Transaction<'static, Any>) -> Result<()> {
    sqlx::query("UPDATE catalog_version SET version = version + 1 WHERE id = 1")
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Rows of `columns` as stored: (id, name, type code).
type ColumnRow = (i64, String, i16);

async fn columns_of<'e, E>(executor: E, table_id: TableId) -> Result<Vec<Column>>
where
    E: sqlx::Executor<'e, Database = Any>,
{
    let rows: Vec<ColumnRow> = sqlx::query_as(
        "SELECT id, name, column_type FROM columns WHERE table_id = $1 ORDER BY name",
    )
    .bind(table_id.get())
    .fetch_all(executor)
    .await?;
    rows.into_iter()
        .map(|(id, name, code)| {
            Ok(Column {
                id: ColumnId(id),
                table_id,
                column_type: column_type(code, &name)?,
                name,
            })
        })
        .collect()
}

fn column_type(code: i16, column: &str) -> Result<ColumnType> {
    ColumnType::from_code(code)
        .ok_or_else(|| Error::Corrupt(format!("column '{column}' has unknown type code {code}")))
}

/// A requested column stored with another type: (name, existing, requested).
type Mismatch<'a> = (&'a str, ColumnType, ColumnType);

/// The first requested column, in input order, whose stored type differs.
fn first_mismatch<'a>(
    stored: &BTreeMap<&str, &Column>,
    requested: &[(&'a str, ColumnType)],
) -> Option<Mismatch<'a>> {
    requested.iter().find_map(|&(name, requested)| {
        let existing = stored.get(name)?.column_type;
        (existing != requested).then_some((name, existing, requested))
    })
}

fn conflict(table: &str, (column, existing, requested): Mismatch<'_>) -> Error {
    Error::ColumnTypeConflict {
        table: table.to_owned(),
        column: column.to_owned(),
        existing,
        requested,
    }
}

/// `columns` in input order, from the stored rows. Every requested name must be stored.
fn in_input_order(
    stored: &BTreeMap<&str, &Column>,
    requested: &[(&str, ColumnType)],
) -> Result<Vec<Column>> {
    requested
        .iter()
        .map(|&(name, _)| {
            stored.get(name).map(|c| (*c).clone()).ok_or_else(|| {
                Error::Corrupt(format!("column '{name}' missing right after its insert"))
            })
        })
        .collect()
}

fn by_name(columns: &[Column]) -> BTreeMap<&str, &Column> {
    columns.iter().map(|c| (c.name.as_str(), c)).collect()
}

fn is_foreign_key_violation(e: &Error) -> bool {
    matches!(e, Error::Unavailable(sqlx::Error::Database(db)) if db.is_foreign_key_violation())
}

/// Rows of `parquet_files` as selected by `select_parquet_files!`.
type ParquetFileRow = (
    i64,
    i64,
    i64,
    i64,
    String,
    i64,
    i64,
    i64,
    i64,
    i16,
    i64,
    i64,
);

fn parquet_file(row: ParquetFileRow) -> Result<ParquetFile> {
    let (
        id,
        database_id,
        table_id,
        partition_id,
        object_store_id,
        min_time,
        max_time,
        row_count,
        file_size_bytes,
        compaction_level,
        max_sequence_number,
        created_at,
    ) = row;
    let object_store_id = uuid::Uuid::parse_str(&object_store_id).map_err(|e| {
        Error::Corrupt(format!(
            "parquet file {id} has object store id '{object_store_id}': {e}"
        ))
    })?;
    Ok(ParquetFile {
        id: ParquetFileId(id),
        params: ParquetFileParams {
            database_id: DatabaseId(database_id),
            table_id: TableId(table_id),
            partition_id: PartitionId(partition_id),
            object_store_id,
            min_time,
            max_time,
            row_count,
            file_size_bytes,
            compaction_level,
            max_sequence_number,
        },
        created_at,
    })
}

/// Every live cache, in creation order.
fn concat_caches_order() -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(format!("{} ORDER BY c.id", caches::SELECT_CACHES))
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Work out the backend and the URL sqlx should open.
fn parse_dsn(dsn: &str) -> Result<Target> {
    if dsn.starts_with("postgres://") || dsn.starts_with("postgresql://") {
        return Ok(Target::Postgres {
            url: dsn.to_owned(),
        });
    }
    let Some(rest) = dsn
        .strip_prefix("sqlite://")
        .or_else(|| dsn.strip_prefix("sqlite:"))
    else {
        return Err(Error::InvalidDsn(dsn.to_owned()));
    };
    let (path, params) = rest.split_once('?').unwrap_or((rest, ""));
    if path == ":memory:" || (path.is_empty() && params.contains("mode=memory")) {
        // sqlx names `:memory:` databases per connection attempt, and `Any` re-parses the
        // URL for every connection; a name of our own keeps the pool on one database.
        return Ok(Target::SqliteMemory {
            url: format!(
                "sqlite:file:ferrite-catalog-{}?mode=memory",
                uuid::Uuid::new_v4()
            ),
        });
    }
    if path.is_empty() {
        return Err(Error::InvalidDsn(dsn.to_owned()));
    }
    let path = PathBuf::from(path);
    let mut url = format!("sqlite://{}", encode_path(&path));
    if params.is_empty() {
        url.push_str("?mode=rwc");
    } else {
        url.push('?');
        url.push_str(params);
        if !params.split('&').any(|p| p.starts_with("mode=")) {
            url.push_str("&mode=rwc");
        }
    }
    Ok(Target::SqliteFile { url, path })
}

/// Percent-encode the few characters that would change the meaning of a SQLite URL (sqlx
/// percent-decodes the path).
fn encode_path(path: &Path) -> String {
    let mut out = String::new();
    for c in path.to_string_lossy().chars() {
        match c {
            '%' | '?' | '#' | ' ' => out.push_str(&format!("%{:02X}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// `INSERT` of `n` columns for one table: `$1` is the table id, then name and type code
/// per row. Built from placeholders only, never from input.
fn insert_columns_sql(n: usize) -> String {
    let mut sql = String::from("INSERT INTO columns (table_id, name, column_type) VALUES ");
    for i in 0..n {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!("($1, ${}, ${})", 2 * i + 2, 2 * i + 3));
    }
    sql.push_str(" ON CONFLICT (table_id, name) DO NOTHING RETURNING id");
    sql
}

#[async_trait]
impl Catalog for SqlCatalog {
    async fn create_database(&self, name: &str) -> Result<Database> {
        if let Some(db) = self.database_by_name(name).await? {
            return Ok(db);
        }
        let mut tx = self.begin_write().await?;
        let inserted: Option<i64> = sqlx::query_scalar(
            "INSERT INTO databases (name, created_at) VALUES ($1, $2) \
             ON CONFLICT (name) DO NOTHING RETURNING id",
        )
        .bind(name)
        .bind(now_ns())
        .fetch_optional(&mut *tx)
        .await?;
        let id = match inserted {
            Some(id) => {
                bump_version(&mut tx).await?;
                id
            }
            None => {
                sqlx::query_scalar("SELECT id FROM databases WHERE name = $1")
                    .bind(name)
                    .fetch_one(&mut *tx)
                    .await?
            }
        };
        self.commit(tx).await?;
        Ok(Database {
            id: DatabaseId(id),
            name: name.to_owned(),
        })
    }

    async fn database_by_name(&self, name: &str) -> Result<Option<Database>> {
        let id: Option<i64> = sqlx::query_scalar("SELECT id FROM databases WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(id.map(|id| Database {
            id: DatabaseId(id),
            name: name.to_owned(),
        }))
    }

    async fn list_databases(&self) -> Result<Vec<Database>> {
        let rows: Vec<(i64, String)> =
            sqlx::query_as("SELECT id, name FROM databases WHERE deleted_at IS NULL ORDER BY name")
                .fetch_all(&self.pool)
                .await?;
        Ok(rows
            .into_iter()
            .map(|(id, name)| Database {
                id: DatabaseId(id),
                name,
            })
            .collect())
    }

    async fn create_table(&self, database_id: DatabaseId, name: &str) -> Result<Table> {
        self.create_table_with(database_id, name, None).await
    }

    async fn list_tables(&self, database_id: DatabaseId) -> Result<Vec<Table>> {
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "SELECT id, name FROM tables WHERE database_id = $1 AND deleted_at IS NULL \
                 ORDER BY name",
        )
        .bind(database_id.get())
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, name)| Table {
                id: TableId(id),
                database_id,
                name,
            })
            .collect())
    }

    async fn upsert_columns(
        &self,
        table_id: TableId,
        columns: &[(&str, ColumnType)],
    ) -> Result<Vec<Column>> {
        if columns.is_empty() {
            return Ok(Vec::new());
        }

        // Fast path, no write lock: every column already there (the common case once a
        // table's schema has settled) or a conflict, which is final because types never
        // change.
        let stored = columns_of(&self.pool, table_id).await?;
        let stored_by_name = by_name(&stored);
        if let Some(mismatch) = first_mismatch(&stored_by_name, columns) {
            let table = self
                .table_by_id(table_id)
                .await?
                .ok_or(Error::TableNotFound(table_id))?;
            return Err(conflict(&table.name, mismatch));
        }
        let missing: BTreeMap<&str, ColumnType> = columns
            .iter()
            .rev() // so that the first occurrence of a repeated name wins
            .filter(|(name, _)| !stored_by_name.contains_key(name))
            .map(|&(name, t)| (name, t))
            .collect();
        if missing.is_empty() {
            return in_input_order(&stored_by_name, columns);
        }

        let mut tx = self.begin_write().await?;
        let table: Option<(String, i32)> = sqlx::query_as(
            "SELECT t.name, d.max_columns_per_table FROM tables t \
             JOIN databases d ON d.id = t.database_id WHERE t.id = $1",
        )
        .bind(table_id.get())
        .fetch_optional(&mut *tx)
        .await?;
        let (table, limit) = table.ok_or(Error::TableNotFound(table_id))?;

        // Name order (the BTreeMap's) in every transaction: two upserts of overlapping sets
        // take the unique-index locks in the same order and cannot deadlock.
        let missing: Vec<(&str, ColumnType)> = missing.into_iter().collect();
        let mut inserted = 0;
        for chunk in missing.chunks(COLUMN_INSERT_CHUNK) {
            let sql = insert_columns_sql(chunk.len());
            let mut insert = sqlx::query_scalar::<_, i64>(AssertSqlSafe(sql)).bind(table_id.get());
            for &(name, t) in chunk {
                insert = insert.bind(name).bind(t.code());
            }
            inserted += insert.fetch_all(&mut *tx).await?.len();
        }
        if inserted > 0 {
            bump_version(&mut tx).await?;
        }

        let stored = columns_of(&mut *tx, table_id).await?;
        if inserted > 0 && stored.len() > limit as usize {
            tx.rollback().await?;
            return Err(Error::ColumnLimit {
                table,
                count: (stored.len() - inserted) as i64,
                adding: inserted as i64,
                limit: limit.into(),
            });
        }
        let stored_by_name = by_name(&stored);
        if let Some(mismatch) = first_mismatch(&stored_by_name, columns) {
            // Undo the columns inserted above: a conflict changes nothing.
            tx.rollback().await?;
            return Err(conflict(&table, mismatch));
        }
        let result = in_input_order(&stored_by_name, columns)?;
        self.commit(tx).await?;
        Ok(result)
    }

    async fn list_columns(&self, table_id: TableId) -> Result<Vec<Column>> {
        columns_of(&self.pool, table_id).await
    }

    async fn database_schema(&self, database_id: DatabaseId) -> Result<DatabaseSchema> {
        let db = self
            .database_by_id(database_id)
            .await?
            .ok_or_else(|| Error::DatabaseNotFound(database_id.to_string()))?;
        // One statement, so tables and their columns come from one snapshot.
        type Row = (
            i64,
            String,
            Option<i64>,
            Option<String>,
            Option<i16>,
            String,
        );
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT t.id, t.name, c.id, c.name, c.column_type, t.partition_template \
             FROM tables t LEFT JOIN columns c ON c.table_id = t.id \
             WHERE t.database_id = $1 AND t.deleted_at IS NULL",
        )
        .bind(database_id.get())
        .fetch_all(&self.pool)
        .await?;
        let mut tables: BTreeMap<String, TableSchema> = BTreeMap::new();
        for (table_id, table_name, column_id, column_name, code, template) in rows {
            if !tables.contains_key(&table_name) {
                let schema = TableSchema {
                    id: TableId(table_id),
                    name: table_name.clone(),
                    columns: BTreeMap::new(),
                    partition_template: admin::stored_template(&template)?,
                };
                tables.insert(table_name.clone(), schema);
            }
            let table = tables.get_mut(&table_name).expect("inserted above");
            if let (Some(id), Some(name), Some(code)) = (column_id, column_name, code) {
                let t = column_type(code, &name)?;
                table.columns.insert(name, (ColumnId(id), t));
            }
        }
        Ok(DatabaseSchema {
            id: db.id,
            name: db.name,
            limits: self.limits_of(database_id).await?,
            tables,
        })
    }

    async fn table_schema(&self, table_id: TableId) -> Result<TableSchema> {
        let table = self
            .table_by_id(table_id)
            .await?
            .ok_or(Error::TableNotFound(table_id))?;
        let columns = columns_of(&self.pool, table_id).await?;
        let template: String =
            sqlx::query_scalar("SELECT partition_template FROM tables WHERE id = $1")
                .bind(table_id.get())
                .fetch_one(&self.pool)
                .await?;
        Ok(TableSchema {
            id: table.id,
            name: table.name,
            columns: columns
                .into_iter()
                .map(|c| (c.name, (c.id, c.column_type)))
                .collect(),
            partition_template: admin::stored_template(&template)?,
        })
    }

    async fn create_partition(&self, table_id: TableId, key: &str) -> Result<Partition> {
        if let Some(partition) = self.partition_by_key(table_id, key).await? {
            return Ok(partition);
        }
        // A single statement: nothing else to keep in step, so no explicit transaction.
        let inserted: Result<Option<i64>> = sqlx::query_scalar(
            "INSERT INTO partitions (table_id, partition_key, sort_key) VALUES ($1, $2, '[]') \
             ON CONFLICT (table_id, partition_key) DO NOTHING RETURNING id",
        )
        .bind(table_id.get())
        .bind(key)
        .fetch_optional(&self.pool)
        .await
        .map_err(Error::from);
        match inserted {
            Ok(Some(id)) => Ok(Partition {
                id: PartitionId(id),
                table_id,
                key: key.to_owned(),
                sort_key: Some(vec![]),
            }),
            Ok(None) => self
                .partition_by_key(table_id, key)
                .await?
                .ok_or_else(|| Error::Corrupt(format!("partition '{key}' vanished"))),
            Err(e) if is_foreign_key_violation(&e) => Err(Error::TableNotFound(table_id)),
            Err(e) => Err(e),
        }
    }

    async fn table_partitions(&self, table_id: TableId) -> Result<Vec<Partition>> {
        let rows: Vec<(i64, String, Option<String>)> = sqlx::query_as(
            "SELECT id, partition_key, sort_key FROM partitions WHERE table_id = $1 ORDER BY id",
        )
        .bind(table_id.get())
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(id, key, sort_key)| partition(id, table_id.get(), key, sort_key))
            .collect()
    }

    async fn extend_sort_key(
        &self,
        partition_id: PartitionId,
        tags: &[String],
    ) -> Result<Partition> {
        // A write transaction from the read on: PostgreSQL locks the row, SQLite the database.
        let mut tx = self.begin_write().await?;
        let select = match self.backend {
            Backend::Postgres => {
                "SELECT table_id, partition_key, sort_key FROM partitions WHERE id = $1 FOR UPDATE"
            }
            Backend::Sqlite => {
                "SELECT table_id, partition_key, sort_key FROM partitions WHERE id = $1"
            }
        };
        let row: Option<(i64, String, Option<String>)> = sqlx::query_as(select)
            .bind(partition_id.get())
            .fetch_optional(&mut *tx)
            .await?;
        let Some((table_id, key, stored)) = row else {
            return Err(Error::NotFound(format!("partition {partition_id}")));
        };
        let mut current = partition(partition_id.get(), table_id, key, stored)?;
        if let Some(sort_key) = &mut current.sort_key {
            let missing: Vec<String> = ferrite_model::sort_key::missing(sort_key, tags)
                .into_iter()
                .cloned()
                .collect();
            if !missing.is_empty() {
                sort_key.extend(missing);
                sqlx::query("UPDATE partitions SET sort_key = $1 WHERE id = $2")
                    .bind(ferrite_model::sort_key::to_json(sort_key))
                    .bind(partition_id.get())
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(current)
    }

    async fn add_parquet_file(&self, params: ParquetFileParams) -> Result<ParquetFile> {
        let object_store_id = params.object_store_id.hyphenated().to_string();
        let mut tx = self.begin_write().await?;
        let inserted = self.insert_parquet_file(&mut tx, &params).await;
        match inserted {
            Ok(Some(_)) => bump_version(&mut tx).await?,
            // Registered before (an ingester retrying after a lost reply): return that row.
            Ok(None) => {}
            Err(e) if is_foreign_key_violation(&e) => {
                tx.rollback().await?;
                return Err(if self.database_exists(params.database_id).await? {
                    Error::TableNotFound(params.table_id)
                } else {
                    Error::DatabaseNotFound(params.database_id.to_string())
                });
            }
            Err(e) => return Err(e),
        }
        let row: ParquetFileRow = sqlx::query_as(self.parquet_file_by_object_id_sql())
            .bind(&object_store_id)
            .fetch_one(&mut *tx)
            .await?;
        self.commit(tx).await?;
        parquet_file(row)
    }

    async fn parquet_files(&self, table_id: TableId) -> Result<Vec<ParquetFile>> {
        let rows: Vec<ParquetFileRow> = sqlx::query_as(select_parquet_files!(
            "WHERE table_id = $1 AND to_delete IS NULL ORDER BY id"
        ))
        .bind(table_id.get())
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(parquet_file).collect()
    }

    async fn acquire_lease(&self, name: &str, holder: &str, ttl_ns: i64) -> Result<Lease> {
        self.acquire_lease_sql(name, holder, ttl_ns).await
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        self.release_lease_sql(name, holder).await
    }

    async fn lease(&self, name: &str) -> Result<Option<Lease>> {
        self.lease_sql(name).await
    }

    async fn partition_summaries(&self) -> Result<Vec<PartitionSummary>> {
        self.partition_summaries_sql().await
    }

    async fn partition_files(&self, partition_id: PartitionId) -> Result<Vec<ParquetFile>> {
        self.partition_files_sql(partition_id).await
    }

    async fn replace_files(
        &self,
        replaced: &[ParquetFileId],
        added: Vec<ParquetFileParams>,
    ) -> Result<Vec<ParquetFile>> {
        self.replace_files_sql(replaced, added).await
    }

    async fn skip_partition(&self, partition_id: PartitionId, reason: &str) -> Result<()> {
        self.skip_partition_sql(partition_id, reason).await
    }

    async fn unskip_partition(&self, partition_id: PartitionId) -> Result<bool> {
        self.unskip_partition_sql(partition_id).await
    }

    async fn expire_files(&self) -> Result<u64> {
        self.expire_files_sql().await
    }

    async fn purge_deleted(&self, grace_ns: i64) -> Result<PurgeReport> {
        self.purge_deleted_sql(grace_ns).await
    }

    async fn files_to_collect(&self, grace_ns: i64, limit: i64) -> Result<Vec<ParquetFile>> {
        self.files_to_collect_sql(grace_ns, limit).await
    }

    async fn delete_files(&self, ids: &[ParquetFileId]) -> Result<u64> {
        self.delete_files_sql(ids).await
    }

    async fn referenced_objects(&self, ids: &[uuid::Uuid]) -> Result<Vec<uuid::Uuid>> {
        self.referenced_objects_sql(ids).await
    }

    async fn create_token(&self, token: NewToken) -> Result<TokenRecord> {
        let mut tx = self.begin_write().await?;
        // Idempotent on the id, so a client may retry after a lost reply.
        let inserted = sqlx::query(
            "INSERT INTO tokens (id, description, token_hash, permissions, created_at, \
             expires_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING",
        )
        .bind(token.id.hyphenated().to_string())
        .bind(&token.description)
        .bind(&token.hash)
        .bind(encode_permissions(&token.permissions))
        .bind(now_ns())
        .bind(token.expires_at)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted > 0 {
            bump_version(&mut tx).await?;
        }
        let record = token_by_id(&mut tx, token.id).await?;
        self.commit(tx).await?;
        Ok(record)
    }

    async fn list_caches(&self) -> Result<Vec<ferrite_model::cache::CacheDefinition>> {
        let rows: Vec<caches::CacheRow> = sqlx::query_as(concat_caches_order())
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(caches::cache_definition).collect()
    }

    async fn list_tokens(&self) -> Result<Vec<TokenRecord>> {
        let rows: Vec<TokenRow> =
            sqlx::query_as(concat!(select_tokens!(), " ORDER BY created_at, id"))
                .fetch_all(&self.pool)
                .await?;
        rows.into_iter().map(token_record).collect()
    }

    async fn update_token(&self, id: uuid::Uuid, update: TokenUpdate) -> Result<TokenRecord> {
        let mut tx = self.begin_write().await?;
        let changed = sqlx::query(
            "UPDATE tokens SET description = COALESCE($2, description), \
             permissions = COALESCE($3, permissions) WHERE id = $1",
        )
        .bind(id.hyphenated().to_string())
        .bind(update.description)
        .bind(update.permissions.as_deref().map(encode_permissions))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed == 0 {
            return Err(Error::TokenNotFound(id));
        }
        bump_version(&mut tx).await?;
        let record = token_by_id(&mut tx, id).await?;
        self.commit(tx).await?;
        Ok(record)
    }

    async fn revoke_token(&self, id: uuid::Uuid) -> Result<TokenRecord> {
        let mut tx = self.begin_write().await?;
        let changed =
            sqlx::query("UPDATE tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
                .bind(id.hyphenated().to_string())
                .bind(now_ns())
                .execute(&mut *tx)
                .await?
                .rows_affected();
        if changed > 0 {
            bump_version(&mut tx).await?;
        }
        let record = token_by_id(&mut tx, id).await?;
        self.commit(tx).await?;
        Ok(record)
    }

    async fn version(&self) -> Result<i64> {
        SqlCatalog::version(self).await
    }
}

/// A row of `tokens` as stored.
type TokenRow = (
    String,
    String,
    String,
    String,
    i64,
    Option<i64>,
    Option<i64>,
);

fn token_record(row: TokenRow) -> Result<TokenRecord> {
    let (id, description, hash, permissions, created_at, expires_at, revoked_at) = row;
    Ok(TokenRecord {
        id: id
            .parse()
            .map_err(|e| Error::Corrupt(format!("token id '{id}': {e}")))?,
        description,
        hash,
        permissions: decode_permissions(&permissions)
            .map_err(|e| Error::Corrupt(format!("token {id}: {e}")))?,
        created_at,
        expires_at,
        revoked_at,
    })
}

async fn token_by_id(tx: &mut Transaction<'static, Any>, id: uuid::Uuid) -> Result<TokenRecord> {
    let row: Option<TokenRow> = sqlx::query_as(concat!(select_tokens!(), " WHERE id = $1"))
        .bind(id.hyphenated().to_string())
        .fetch_optional(&mut **tx)
        .await?;
    token_record(row.ok_or(Error::TokenNotFound(id))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dsn_selects_the_backend() {
        assert_eq!(
            parse_dsn("postgres://u@h/db").unwrap(),
            Target::Postgres {
                url: "postgres://u@h/db".into()
            }
        );
        assert!(matches!(
            parse_dsn("postgresql://h/db").unwrap(),
            Target::Postgres { .. }
        ));
        assert_eq!(
            parse_dsn("sqlite:///var/lib/ferrite/catalog.db").unwrap(),
            Target::SqliteFile {
                url: "sqlite:///var/lib/ferrite/catalog.db?mode=rwc".into(),
                path: "/var/lib/ferrite/catalog.db".into(),
            }
        );
        assert_eq!(
            parse_dsn("sqlite:data/my catalog.db").unwrap(),
            Target::SqliteFile {
                url: "sqlite://data/my%20catalog.db?mode=rwc".into(),
                path: "data/my catalog.db".into(),
            }
        );
        assert!(matches!(
            parse_dsn("sqlite::memory:").unwrap(),
            Target::SqliteMemory { .. }
        ));
        assert!(matches!(
            parse_dsn("sqlite://:memory:").unwrap(),
            Target::SqliteMemory { .. }
        ));
        assert!(matches!(
            parse_dsn("mysql://h/db"),
            Err(Error::InvalidDsn(_))
        ));
        assert!(matches!(parse_dsn("sqlite://"), Err(Error::InvalidDsn(_))));
    }

    #[test]
    fn column_insert_binds_the_table_once() {
        assert_eq!(
            insert_columns_sql(2),
            "INSERT INTO columns (table_id, name, column_type) VALUES ($1, $2, $3), ($1, $4, $5) \
             ON CONFLICT (table_id, name) DO NOTHING RETURNING id"
        );
    }
}
