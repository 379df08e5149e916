//! A read-through cache over any [`Catalog`], kept coherent by the catalog version (the
//! change feed): every cached answer is tagged with the version it was read at and is used
//! only while the feed still reports that version.
//!
//! ```text
//!  reader ─► CachedCatalog ─ version == entry's version? ─ yes ─► cached answer
//!                                   │ no
//!                                   └─► inner catalog ─► cache (tagged with the version)
//!  WatchVersion stream ─► watch::Receiver<i64> (current version)
//! ```
//!
//! Schema reads are cached; the parquet file list is not: a querier must see a file the
//! moment its rows leave an ingester (read-your-writes across a persist), and the feed lags
//! by up to its poll interval.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use ferrite_model::{ColumnType, DatabaseId, DatabaseSchema, TableId, TableSchema};
use parking_lot::Mutex;
use tokio::sync::watch;

use crate::{
    Catalog, CatalogRef, Column, Database, ParquetFile, ParquetFileParams, Partition, Result, Table,
};

#[derive(Debug, Default)]
struct Entries {
    version: i64,
    by_name: HashMap<String, Option<Database>>,
    schemas: HashMap<DatabaseId, DatabaseSchema>,
    tables: HashMap<TableId, TableSchema>,
}

/// A catalog whose schema reads are served from memory until the catalog version changes.
#[derive(Debug)]
pub struct CachedCatalog {
    inner: CatalogRef,
    version: watch::Receiver<i64>,
    entries: Mutex<Entries>,
}

impl CachedCatalog {
    /// Cache `inner`, invalidated whenever `version` changes. A version of 0 (feed not yet
    /// connected) disables caching.
    pub fn new(inner: CatalogRef, version: watch::Receiver<i64>) -> Self {
        Self {
            inner,
            version,
            entries: Mutex::new(Entries::default()),
        }
    }

    /// The current version, dropping every entry read at another one. `None`: do not cache.
    fn current(&self) -> Option<i64> {
        let v = *self.version.borrow();
        let mut e = self.entries.lock();
        if e.version != v {
            *e = Entries {
                version: v,
                ..Entries::default()
            };
        }
        (v != 0).then_some(v)
    }

    fn store(&self, version: Option<i64>, f: impl FnOnce(&mut Entries)) {
        let mut e = self.entries.lock();
        if version.is_some_and(|v| v == e.version) {
            f(&mut e);
        }
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
            return Ok(hit);
        }
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
            return Ok(hit);
        }
        let schema = self.inner.database_schema(database_id).await?;
        self.store(v, |e| {
            e.schemas.insert(database_id, schema.clone());
        });
        Ok(schema)
    }

    async fn table_schema(&self, table_id: TableId) -> Result<TableSchema> {
        let v = self.current();
        if let Some(hit) = v.and_then(|_| self.entries.lock().tables.get(&table_id).cloned()) {
            return Ok(hit);
        }
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

    async fn version(&self) -> Result<i64> {
        self.inner.version().await
    }
}

/// Shorthand: a [`CachedCatalog`] behind an `Arc`.
pub fn cached(inner: CatalogRef, version: watch::Receiver<i64>) -> Arc<CachedCatalog> {
    Arc::new(CachedCatalog::new(inner, version))
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
}
