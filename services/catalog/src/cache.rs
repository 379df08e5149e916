//! A read-through cache over any [`Catalog`], kept coherent by the catalog version (the
//! change feed): every cached answer is tagged with the version it was read at and is used
//! only while no newer version is known.
//!
//! ```text
//!  reader ─► CachedCatalog ─ entries' version current? ─ yes ─► cached answer
//!                                   │ no
//!                                   └─► inner catalog ─► cache (tagged with the version)
//!  WatchVersion stream ─► watch::Receiver<i64> ─► a newer version drops every entry
//!  reader's miss ─► refresh(): one GetVersion (coalesced, timed) ─► newer? drop, read again
//! ```
//!
//! The feed lags a commit by up to its poll interval plus the network, so a client that
//! writes a new table through one router and queries it through another may reach a querier
//! whose view is older than its own write. A miss is therefore never final: the reader calls
//! [`Catalog::refresh`], which asks the catalog for its current version once (concurrent
//! misses share one request) and drops the entries if the catalog is ahead.
//!
//! Invariants:
//! - the known version only moves forward with the feed (a refresh may run ahead of a
//!   lagging feed; the feed catching up to it keeps the entries);
//! - an answer is stored only under the version that was current when it was read, so an
//!   answer read before a refresh never lands in the entries after it;
//! - schema reads are cached; the parquet file list is not: a querier must see a file the
//!   moment its rows leave an ingester (read-your-writes across a persist).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use ferrite_model::{
    ColumnType, DatabaseId, DatabaseSchema, ParquetFileId, PartitionId, TableId, TableSchema,
};
use parking_lot::Mutex;
use tokio::sync::watch;

use crate::{
    Catalog, CatalogRef, Column, Database, Error, Lease, NewToken, ParquetFile, ParquetFileParams,
    Partition, PartitionSummary, PurgeReport, Result, Table, TokenRecord, TokenUpdate,
};

/// Longest a refresh waits for the catalog's version. A miss then fails as unavailable
/// rather than answering "not found" from a view that may be stale.
const REFRESH_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, Default)]
struct Entries {
    version: i64,
    by_name: HashMap<String, Option<Database>>,
    schemas: HashMap<DatabaseId, DatabaseSchema>,
    tables: HashMap<TableId, TableSchema>,
}

impl Entries {
    /// Forget every answer; they were read before `version`.
    fn reset(&mut self, version: i64) {
        *self = Self {
            version,
            ..Self::default()
        };
    }
}

/// Refreshes asked for and done, so that concurrent misses share one catalog round trip.
#[derive(Debug, Default)]
struct Refreshes {
    /// Tickets handed out: one per caller of `refresh`.
    requested: AtomicU64,
    /// Every ticket up to this one was covered by a version read that started after it was
    /// handed out. Held across the read, which serializes refreshes.
    covered: tokio::sync::Mutex<u64>,
    /// Version reads done: at most one per group of concurrent misses.
    reads: AtomicU64,
}

/// A catalog whose schema reads are served from memory until the catalog version changes.
#[derive(Debug)]
pub struct CachedCatalog {
    inner: CatalogRef,
    version: watch::Receiver<i64>,
    entries: Mutex<Entries>,
    refreshes: Refreshes,
}

impl CachedCatalog {
    /// Cache `inner`, invalidated whenever `version` moves forward. A version of 0 (feed not
    /// yet connected) disables caching.
    pub fn new(inner: CatalogRef, version: watch::Receiver<i64>) -> Self {
        Self {
            inner,
            version,
            entries: Mutex::new(Entries::default()),
            refreshes: Refreshes::default(),
        }
    }

    /// How many times a miss made this cache read the catalog's version (concurrent misses
    /// share one read).
    pub fn refresh_reads(&self) -> u64 {
        self.refreshes.reads.load(Ordering::Relaxed)
    }

    /// The version the entries hold, dropping them first if the feed is ahead. `None`: the
    /// feed is not connected, do not cache.
    fn current(&self) -> Option<i64> {
        let feed = *self.version.borrow();
        if feed == 0 {
            return None;
        }
        let mut e = self.entries.lock();
        if feed > e.version {
            e.reset(feed);
        }
        Some(e.version)
    }

    fn store(&self, version: Option<i64>, f: impl FnOnce(&mut Entries)) {
        let mut e = self.entries.lock();
        if version.is_some_and(|v| v == e.version) {
            f(&mut e);
        }
    }

    /// Read the catalog's version and drop the entries if it differs from theirs (a
    /// different version that is lower means the catalog was rebuilt). `true` if dropped.
    async fn catch_up(&self) -> Result<bool> {
        self.refreshes.reads.fetch_add(1, Ordering::Relaxed);
        let latest = tokio::time::timeout(REFRESH_TIMEOUT, self.inner.version())
            .await
            .map_err(|_| {
                Error::Rpc(format!(
                    "the catalog did not report its version within {REFRESH_TIMEOUT:?}"
                ))
            })??;
        let mut e = self.entries.lock();
        if latest == e.version {
            return Ok(false);
        }
        e.reset(latest);
        Ok(true)
    }
}

#[async_trait]
impl Catalog for CachedCatalog {
    async fn create_database(&self, name: &str) -> Result<Database> {
        self.inner.create_database(name).await
    }

    async fn database_by_name(&self, name: &str) -> Result<Option<Database>> {
        let v = self.current();
        if let Some(hit) = v.and_then(|_| self.entries.lock().by_name.get(name).cloned()) {
            hit_or_miss(true);
            return Ok(hit);
        }
        hit_or_miss(false);
        let db = self.inner.database_by_name(name).await?;
        self.store(v, |e| {
            e.by_name.insert(name.to_string(), db.clone());
        });
        Ok(db)
    }

    async fn list_databases(&self) -> Result<Vec<Database>> {
        self.inner.list_databases().await
    }

    async fn create_table(&self, database_id: DatabaseId, name: &str) -> Result<Table> {
        self.inner.create_table(database_id, name).await
    }

    async fn list_tables(&self, database_id: DatabaseId) -> Result<Vec<Table>> {
        self.inner.list_tables(database_id).await
    }

    async fn upsert_columns(
        &self,
        table_id: TableId,
        columns: &[(&str, ColumnType)],
    ) -> Result<Vec<Column>> {
        self.inner.upsert_columns(table_id, columns).await
    }

    async fn list_columns(&self, table_id: TableId) -> Result<Vec<Column>> {
        self.inner.list_columns(table_id).await
    }

    async fn database_schema(&self, database_id: DatabaseId) -> Result<DatabaseSchema> {
        let v = self.current();
        if let Some(hit) = v.and_then(|_| self.entries.lock().schemas.get(&database_id).cloned()) {
            hit_or_miss(true);
            return Ok(hit);
        }
        hit_or_miss(false);
        let schema = self.inner.database_schema(database_id).await?;
        self.store(v, |e| {
            e.schemas.insert(database_id, schema.clone());
        });
        Ok(schema)
    }

    async fn table_schema(&self, table_id: TableId) -> Result<TableSchema> {
        let v = self.current();
        if let Some(hit) = v.and_then(|_| self.entries.lock().tables.get(&table_id).cloned()) {
            hit_or_miss(true);
            return Ok(hit);
        }
        hit_or_miss(false);
        let schema = self.inner.table_schema(table_id).await?;
        self.store(v, |e| {
            e.tables.insert(table_id, schema.clone());
        });
        Ok(schema)
    }

    async fn create_partition(&self, table_id: TableId, key: &str) -> Result<Partition> {
        self.inner.create_partition(table_id, key).await
    }

    async fn add_parquet_file(&self, params: ParquetFileParams) -> Result<ParquetFile> {
        self.inner.add_parquet_file(params).await
    }

    async fn parquet_files(&self, table_id: TableId) -> Result<Vec<ParquetFile>> {
        self.inner.parquet_files(table_id).await
    }

    async fn table_partitions(&self, table_id: TableId) -> Result<Vec<Partition>> {
        self.inner.table_partitions(table_id).await
    }

    async fn extend_sort_key(
        &self,
        partition_id: PartitionId,
        tags: &[String],
    ) -> Result<Partition> {
        self.inner.extend_sort_key(partition_id, tags).await
    }

    async fn acquire_lease(&self, name: &str, holder: &str, ttl_ns: i64) -> Result<Lease> {
        self.inner.acquire_lease(name, holder, ttl_ns).await
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        self.inner.release_lease(name, holder).await
    }

    async fn lease(&self, name: &str) -> Result<Option<Lease>> {
        self.inner.lease(name).await
    }

    async fn partition_summaries(&self) -> Result<Vec<PartitionSummary>> {
        self.inner.partition_summaries().await
    }

    async fn partition_files(&self, partition_id: PartitionId) -> Result<Vec<ParquetFile>> {
        self.inner.partition_files(partition_id).await
    }

    async fn replace_files(
        &self,
        replaced: &[ParquetFileId],
        added: Vec<ParquetFileParams>,
    ) -> Result<Vec<ParquetFile>> {
        self.inner.replace_files(replaced, added).await
    }

    async fn skip_partition(&self, partition_id: PartitionId, reason: &str) -> Result<()> {
        self.inner.skip_partition(partition_id, reason).await
    }

    async fn unskip_partition(&self, partition_id: PartitionId) -> Result<bool> {
        self.inner.unskip_partition(partition_id).await
    }

    async fn expire_files(&self) -> Result<u64> {
        self.inner.expire_files().await
    }

    async fn purge_deleted(&self, grace_ns: i64) -> Result<PurgeReport> {
        self.inner.purge_deleted(grace_ns).await
    }

    async fn files_to_collect(&self, grace_ns: i64, limit: i64) -> Result<Vec<ParquetFile>> {
        self.inner.files_to_collect(grace_ns, limit).await
    }

    async fn delete_files(&self, ids: &[ParquetFileId]) -> Result<u64> {
        self.inner.delete_files(ids).await
    }

    async fn referenced_objects(&self, ids: &[uuid::Uuid]) -> Result<Vec<uuid::Uuid>> {
        self.inner.referenced_objects(ids).await
    }

    async fn create_token(&self, token: NewToken) -> Result<TokenRecord> {
        self.inner.create_token(token).await
    }

    async fn list_tokens(&self) -> Result<Vec<TokenRecord>> {
        self.inner.list_tokens().await
    }

    async fn list_caches(&self) -> Result<Vec<ferrite_model::cache::CacheDefinition>> {
        self.inner.list_caches().await
    }

    async fn update_token(&self, id: uuid::Uuid, update: TokenUpdate) -> Result<TokenRecord> {
        self.inner.update_token(id, update).await
    }

    async fn revoke_token(&self, id: uuid::Uuid) -> Result<TokenRecord> {
        self.inner.revoke_token(id).await
    }

    async fn version(&self) -> Result<i64> {
        self.inner.version().await
    }

    async fn refresh(&self) -> Result<bool> {
        if *self.version.borrow() == 0 {
            return Ok(false); // nothing is cached: every answer was read live
        }
        let ticket = self.refreshes.requested.fetch_add(1, Ordering::SeqCst) + 1;
        let mut covered = self.refreshes.covered.lock().await;
        if *covered >= ticket {
            // A read that started after this miss has run; what it found is in the entries,
            // so reading again sees it.
            return Ok(true);
        }
        // Every ticket handed out so far was handed out before this read starts.
        let upto = self.refreshes.requested.load(Ordering::SeqCst);
        let changed = self.catch_up().await?;
        *covered = upto;
        Ok(changed)
    }

    fn known_version(&self) -> Option<i64> {
        self.current()
    }
}

/// Shorthand: a [`CachedCatalog`] behind an `Arc`.
pub fn cached(inner: CatalogRef, version: watch::Receiver<i64>) -> Arc<CachedCatalog> {
    Arc::new(CachedCatalog::new(inner, version))
}

/// Count a cache lookup in `ferrite_catalog_cache_requests_total`.
fn hit_or_miss(hit: bool) {
    let result = if hit { "hit" } else { "miss" };
    metrics::counter!("ferrite_catalog_cache_requests_total", "result" => result).increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SqlCatalog;

    #[tokio::test]
    async fn answers_are_reused_until_the_version_changes() {
        let inner: CatalogRef = Arc::new(SqlCatalog::connect("sqlite::memory:").await.unwrap());
        let (tx, rx) = watch::channel(1);
        let cached = CachedCatalog::new(Arc::clone(&inner), rx);
        assert_eq!(cached.database_by_name("db").await.unwrap(), None);
        let db = inner.create_database("db").await.unwrap();
        assert_eq!(
            cached.database_by_name("db").await.unwrap(),
            None,
            "served from the cache"
        );
        tx.send(2).unwrap();
        assert_eq!(
            cached.database_by_name("db").await.unwrap(),
            Some(db.clone()),
            "refetched after the feed moved"
        );
        let t = inner.create_table(db.id, "cpu").await.unwrap();
        tx.send(3).unwrap();
        assert!(
            cached
                .database_schema(db.id)
                .await
                .unwrap()
                .tables
                .contains_key("cpu")
        );
        inner
            .upsert_columns(t.id, &[("v", ColumnType::F64)])
            .await
            .unwrap();
        assert!(
            cached
                .table_schema(t.id)
                .await
                .unwrap()
                .columns
                .contains_key("v"),
            "first read at version 3"
        );
    }

    #[tokio::test]
    async fn version_zero_means_no_feed_yet_and_no_caching() {
        let inner: CatalogRef = Arc::new(SqlCatalog::connect("sqlite::memory:").await.unwrap());
        let (_tx, rx) = watch::channel(0);
        let cached = CachedCatalog::new(Arc::clone(&inner), rx);
        assert_eq!(cached.database_by_name("db").await.unwrap(), None);
        inner.create_database("db").await.unwrap();
        assert!(cached.database_by_name("db").await.unwrap().is_some());
    }

    async fn has_table(cached: &CachedCatalog, db: DatabaseId, table: &str) -> bool {
        let schema = cached.database_schema(db).await.unwrap();
        schema.tables.contains_key(table)
    }

    #[tokio::test]
    async fn a_miss_is_refreshed_from_the_catalog_before_the_feed_reports_it() {
        let inner: CatalogRef = Arc::new(SqlCatalog::connect("sqlite::memory:").await.unwrap());
        let db = inner.create_database("db").await.unwrap();
        let feed = inner.version().await.unwrap();
        let (tx, rx) = watch::channel(feed);
        let cached = CachedCatalog::new(Arc::clone(&inner), rx);
        assert!(!has_table(&cached, db.id, "cpu").await);
        assert!(
            !cached.refresh().await.unwrap(),
            "nothing newer: the miss is real"
        );

        inner.create_table(db.id, "cpu").await.unwrap();
        assert!(cached.refresh().await.unwrap(), "the catalog is ahead");
        assert!(
            has_table(&cached, db.id, "cpu").await,
            "read again after the refresh, with the feed still behind"
        );
        // The feed catching up to the refreshed version keeps the entries; a later version
        // drops them.
        let now = inner.version().await.unwrap();
        tx.send(now).unwrap();
        inner.create_table(db.id, "mem").await.unwrap();
        assert!(
            !has_table(&cached, db.id, "mem").await,
            "served from the cache at the refreshed version"
        );
        tx.send(feed).unwrap();
        assert!(
            !has_table(&cached, db.id, "mem").await,
            "a lagging feed does not move the view back"
        );
        tx.send(now + 1).unwrap();
        assert!(has_table(&cached, db.id, "mem").await);
    }

    #[tokio::test]
    async fn concurrent_misses_share_one_version_read() {
        let inner: CatalogRef = Arc::new(SqlCatalog::connect("sqlite::memory:").await.unwrap());
        inner.create_database("db").await.unwrap();
        let (_tx, rx) = watch::channel(inner.version().await.unwrap());
        let cached = Arc::new(CachedCatalog::new(Arc::clone(&inner), rx));
        assert_eq!(cached.database_by_name("new").await.unwrap(), None);
        inner.create_database("new").await.unwrap();
        // Hold the refresh lock so every miss queues behind it, as behind a slow read.
        let gate = cached.refreshes.covered.lock().await;
        let misses: Vec<_> = (0..20)
            .map(|_| {
                let cached = Arc::clone(&cached);
                tokio::spawn(async move { cached.refresh().await.unwrap() })
            })
            .collect();
        while cached.refreshes.requested.load(Ordering::SeqCst) < 20 {
            tokio::task::yield_now().await;
        }
        drop(gate);
        for miss in misses {
            assert!(miss.await.unwrap(), "every miss reads again");
        }
        assert_eq!(cached.refresh_reads(), 1, "one read covered all twenty");
        assert!(cached.database_by_name("new").await.unwrap().is_some());
    }

    #[tokio::test]
    async fn without_a_feed_nothing_is_cached_and_a_refresh_is_free() {
        let inner: CatalogRef = Arc::new(SqlCatalog::connect("sqlite::memory:").await.unwrap());
        let (_tx, rx) = watch::channel(0);
        let cached = CachedCatalog::new(Arc::clone(&inner), rx);
        assert!(!cached.refresh().await.unwrap());
        assert_eq!(cached.refresh_reads(), 0);
    }
}
