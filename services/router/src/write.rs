//! The write pipeline, from a decoded body to an acknowledged ingester write.
//!
//! ```text
//!  WriteBody ─► SchemaCache.get(db) ─► validate (blocking thread) ─┬─► Ready ─► ingester.write
//!                     ▲                                            └─► NeedsSchema
//!                     └──────── catalog: create table, upsert columns ◄┘
//! ```

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ferrite_catalog::{CatalogRef, Error as CatalogError};
use ferrite_ingester::api::{
    Durability, IngesterWrite, TableWrite, WriteError as IngesterError, WriteRequest,
};
use ferrite_lineproto::Precision;
use ferrite_model::{DatabaseSchema, NameError, validate_database_name};
use parking_lot::RwLock;
use tokio::sync::watch;
use tracing::Instrument as _;

use crate::validate::{LineIssue, Rejections, SchemaChanges, Validated, validate};

/// Longest a write waits to re-read a schema the catalog may have changed; after it the
/// cached one is used.
const SCHEMA_REFRESH_TIMEOUT: Duration = Duration::from_secs(1);

/// A write as the HTTP layer hands it over.
#[derive(Debug)]
pub struct WriteBody {
    /// Target database (created on first write).
    pub database: String,
    /// Line protocol text.
    pub body: String,
    /// Timestamp unit.
    pub precision: Precision,
    /// Store the good lines when some are bad.
    pub accept_partial: bool,
    /// Acknowledge before the WAL is synced.
    pub no_sync: bool,
}

/// What happened to a write that was not refused as a whole.
#[derive(Debug, Default)]
pub struct WriteOutcome {
    /// Lines stored.
    pub accepted: usize,
    /// Lines rejected …
    pub rejected: usize,
    /// … with their reasons (at most 100) …
    pub issues: Vec<LineIssue>,
    /// … and all of them counted by reason.
    pub by_reason: Rejections,
}

/// Why a write failed as a whole.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The database name is not acceptable.
    #[error(transparent)]
    DatabaseName(#[from] NameError),
    /// Bad lines and nothing stored (or partial writes off).
    #[error("{} of the lines were rejected", .0.rejected)]
    Lines(WriteOutcome),
    /// The body holds no line at all.
    #[error("request body contains no line protocol")]
    Empty,
    /// A catalog change raced with another writer and lost twice; retry.
    #[error("schema of database '{0}' changed concurrently; retry the write")]
    SchemaRace(String),
    /// The write needs more tables or columns than the database's limits allow; nothing
    /// was written.
    #[error("{0}")]
    Limit(String),
    /// The catalog is unreachable (only writes needing new schema fail this way).
    #[error("catalog unavailable: {0}")]
    Catalog(CatalogError),
    /// The ingester refused.
    #[error(transparent)]
    Ingester(#[from] IngesterError),
    /// Building batches failed (a bug).
    #[error("internal error: {0}")]
    Internal(String),
}

/// Databases' schemas as last read from the catalog, each with the catalog version it was
/// read at.
#[derive(Debug, Default)]
pub struct SchemaCache {
    databases: RwLock<HashMap<String, (i64, Arc<DatabaseSchema>)>>,
}

impl SchemaCache {
    /// The cached schema, and whether it is as new as catalog version `current`.
    fn get(&self, name: &str, current: i64) -> Option<(Arc<DatabaseSchema>, bool)> {
        self.databases
            .read()
            .get(name)
            .map(|(read_at, s)| (Arc::clone(s), *read_at >= current))
    }

    fn put(&self, schema: DatabaseSchema, read_at: i64) -> Arc<DatabaseSchema> {
        let schema = Arc::new(schema);
        self.databases
            .write()
            .insert(schema.name.clone(), (read_at, Arc::clone(&schema)));
        schema
    }

    /// Keep `name`'s schema as if read at `current` (the catalog could not be asked).
    fn keep(&self, name: &str, current: i64) {
        if let Some(entry) = self.databases.write().get_mut(name) {
            entry.0 = current;
        }
    }

    fn forget(&self, name: &str) {
        self.databases.write().remove(name);
    }
}

/// Router settings.
#[derive(Debug, Clone)]
pub struct RouterConfig {
    /// Largest accepted request body, before and after gunzip.
    pub max_request_bytes: usize,
}

impl Default for RouterConfig {
    fn default() -> Self {
        Self {
            max_request_bytes: 10 << 20,
        }
    }
}

/// The write side of the front door.
#[derive(Debug)]
pub struct Router {
    catalog: CatalogRef,
    ingester: Arc<dyn IngesterWrite>,
    schemas: SchemaCache,
    /// The catalog version feed; cached schemas are dropped when it moves.
    versions: Option<watch::Receiver<i64>>,
    config: RouterConfig,
}

impl Router {
    /// A router writing through `ingester`, with schema from `catalog`.
    pub fn new(
        catalog: CatalogRef,
        ingester: Arc<dyn IngesterWrite>,
        config: RouterConfig,
    ) -> Self {
        Self {
            catalog,
            ingester,
            schemas: SchemaCache::default(),
            versions: None,
            config,
        }
    }

    /// Drop cached schemas whenever `versions` (the catalog's change feed) moves, so that a
    /// deleted, renamed or reconfigured database is noticed. Without a feed the cache only
    /// grows, which is right only while databases and tables are never deleted.
    pub fn with_version_feed(mut self, versions: watch::Receiver<i64>) -> Self {
        self.versions = Some(versions);
        self
    }

    /// Settings.
    pub fn config(&self) -> &RouterConfig {
        &self.config
    }

    /// Validate, extend the schema as needed, and write.
    pub async fn write(&self, w: WriteBody) -> Result<WriteOutcome, WriteError> {
        validate_database_name(&w.database)?;
        let default_time = now_nanos();
        let body = Arc::new(w.body);
        let mut schema = self.cached_schema(&w.database).await?;
        let mut races = 0;
        let (rows, outcome) = loop {
            let b = Arc::clone(&body);
            let s = schema.clone();
            let precision = w.precision;
            let validated = tokio::task::spawn_blocking(move || {
                validate(&b, precision, default_time, s.as_deref())
            })
            .instrument(tracing::debug_span!("parse and validate"))
            .await
            .map_err(|e| WriteError::Internal(e.to_string()))?
            .map_err(|e| WriteError::Internal(e.to_string()))?;
            match validated {
                Validated::Ready {
                    rows,
                    accepted,
                    issues,
                    rejected,
                    by_reason,
                } => {
                    break (
                        rows,
                        WriteOutcome {
                            accepted,
                            rejected,
                            issues,
                            by_reason,
                        },
                    );
                }
                Validated::NeedsSchema {
                    changes,
                    accepted,
                    issues,
                    rejected,
                    by_reason,
                } => {
                    let outcome = WriteOutcome {
                        accepted,
                        rejected,
                        issues,
                        by_reason,
                    };
                    // A request that will be rejected must not leave schema behind.
                    if rejected > 0 && (!w.accept_partial || accepted == 0) {
                        return Err(WriteError::Lines(outcome));
                    }
                    let applied = self
                        .apply(&w.database, &changes)
                        .instrument(tracing::debug_span!("catalog: create schema"))
                        .await;
                    match applied {
                        Ok(s) => schema = Some(s),
                        Err(CatalogError::ColumnTypeConflict { .. }) if races < 2 => {
                            // Another writer created the column with another type first: reload,
                            // and the lines become type conflicts of their own.
                            races += 1;
                            schema = Some(
                                self.reload(&w.database)
                                    .await
                                    .map_err(WriteError::Catalog)?,
                            );
                        }
                        Err(CatalogError::ColumnTypeConflict { .. }) => {
                            return Err(WriteError::SchemaRace(w.database));
                        }
                        Err(
                            e
                            @ (CatalogError::TableLimit { .. } | CatalogError::ColumnLimit { .. }),
                        ) => return Err(WriteError::Limit(e.to_string())),
                        Err(e) => return Err(WriteError::Catalog(e)),
                    }
                }
            }
        };
        if outcome.accepted == 0 && outcome.rejected == 0 {
            return Err(WriteError::Empty);
        }
        if outcome.rejected > 0 && (!w.accept_partial || outcome.accepted == 0) {
            return Err(WriteError::Lines(outcome));
        }
        let schema = schema.ok_or_else(|| WriteError::Internal("rows without a schema".into()))?;
        let tables = rows
            .into_iter()
            .map(|r| {
                let table = schema.tables.get(&r.table).ok_or_else(|| {
                    WriteError::Internal(format!("table '{}' missing from schema", r.table))
                })?;
                Ok(TableWrite {
                    table_id: table.id,
                    partition_key: r.partition_key,
                    batch: r.batch,
                })
            })
            .collect::<Result<Vec<_>, WriteError>>()?;
        let durability = if w.no_sync {
            Durability::NoSync
        } else {
            Durability::Sync
        };
        self.ingester
            .write(
                WriteRequest {
                    database_id: schema.id,
                    tables,
                },
                durability,
            )
            .await?;
        Ok(outcome)
    }

    /// The catalog version the feed reports now (0 without a feed: nothing goes stale).
    fn version(&self) -> i64 {
        self.versions.as_ref().map_or(0, |v| *v.borrow())
    }

    /// The cached schema of `database`, read again when the catalog has changed since (the
    /// database or a table may have been deleted, renamed or reconfigured). While the
    /// catalog cannot be reached the stale schema is used: writes to known tables and
    /// columns keep flowing through a catalog outage.
    async fn cached_schema(
        &self,
        database: &str,
    ) -> Result<Option<Arc<DatabaseSchema>>, WriteError> {
        let current = self.version();
        let cached = self.schemas.get(database, current);
        let result = if matches!(cached, Some((_, true))) {
            "hit"
        } else {
            "miss"
        };
        metrics::counter!("ferrite_catalog_cache_requests_total", "result" => result).increment(1);
        let stale = match cached {
            None => return Ok(None),
            Some((schema, true)) => return Ok(Some(schema)),
            Some((schema, false)) => schema,
        };
        let fresh = async {
            match self.catalog.database_by_name(database).await? {
                Some(db) => Ok(Some(self.catalog.database_schema(db.id).await?)),
                None => Ok(None),
            }
        };
        match tokio::time::timeout(SCHEMA_REFRESH_TIMEOUT, fresh).await {
            Ok(Ok(Some(schema))) => Ok(Some(self.schemas.put(schema, current))),
            Ok(Ok(None)) => {
                // Deleted (or renamed): the write goes to whatever has the name now.
                self.schemas.forget(database);
                Ok(None)
            }
            Ok(Err(CatalogError::Unavailable(_) | CatalogError::Rpc(_))) | Err(_) => {
                // Not asked again until the version moves (the feed comes back with the
                // catalog), so an outage costs one slow write, not every write.
                self.schemas.keep(database, current);
                Ok(Some(stale))
            }
            Ok(Err(e)) => Err(WriteError::Catalog(e)),
        }
    }

    /// Create the database, tables and columns, then cache the fresh schema.
    async fn apply(
        &self,
        database: &str,
        changes: &SchemaChanges,
    ) -> Result<Arc<DatabaseSchema>, CatalogError> {
        let db = self.catalog.create_database(database).await?;
        for (table, columns) in changes {
            let t = self.catalog.create_table(db.id, table).await?;
            let cols: Vec<(&str, _)> = columns.iter().map(|(n, t)| (n.as_str(), *t)).collect();
            self.catalog.upsert_columns(t.id, &cols).await?;
        }
        self.reload(database).await
    }

    async fn reload(&self, database: &str) -> Result<Arc<DatabaseSchema>, CatalogError> {
        // The version before the read: a change during it makes the entry stale, not lost.
        let version = self.version();
        let db = self.catalog.create_database(database).await?;
        let schema = self.catalog.database_schema(db.id).await?;
        Ok(self.schemas.put(schema, version))
    }
}

fn now_nanos() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX)
}
