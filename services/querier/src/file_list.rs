//! Each table's Parquet file list, reused while nothing can have added or removed a file.
//!
//! ```text
//!  scan ─► ingesters answer (uuid, persist count) ─► entry for the table with the same
//!          catalog version and the same ingester identities? ─ yes ─► its files
//!                                    │ no
//!                                    └─► catalog.parquet_files ─► entry (version, identities)
//! ```
//!
//! Why that is enough:
//! - every file registered, replaced or expired moves the catalog version, which the
//!   catalog handle follows ([`Catalog::known_version`]); a handle that follows nothing
//!   turns the reuse off;
//! - the version feed may lag a persist, so the ingesters' identities are part of the key:
//!   an ingester counts a persist in the same step as its rows leave its memory, after the
//!   file is registered, so a query sees either the rows or a new count, and a new count
//!   reads the list again. A restarted ingester has a new uuid;
//! - a compaction or expiry the feed has not reported yet leaves the replaced files in the
//!   list: they are kept in the object store for the grace period and hold the same rows.

use std::collections::HashMap;
use std::sync::Arc;

use ferrite_catalog::{Catalog, ParquetFile};
use ferrite_model::TableId;
use parking_lot::Mutex;

/// What a file list was read after: the catalog version and the ingesters that answered.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    version: i64,
    /// (uuid, persist count) of each ingester, sorted.
    ingesters: Vec<(uuid::Uuid, u64)>,
}

/// A table's files and what they were read after.
#[derive(Debug)]
struct Entry {
    seen: Seen,
    files: Arc<[ParquetFile]>,
}

/// The file lists of an engine's tables. See the module docs.
#[derive(Debug, Default)]
pub(crate) struct FileLists {
    entries: Mutex<HashMap<TableId, Entry>>,
}

impl FileLists {
    /// The live files of `table`, given the ingesters' identities this query saw (read
    /// before this call, as the table provider does).
    pub(crate) async fn files(
        &self,
        catalog: &dyn Catalog,
        table: TableId,
        mut ingesters: Vec<(uuid::Uuid, u64)>,
    ) -> ferrite_catalog::Result<Arc<[ParquetFile]>> {
        let Some(version) = catalog.known_version() else {
            return Ok(catalog.parquet_files(table).await?.into());
        };
        ingesters.sort_unstable();
        let seen = Seen { version, ingesters };
        if let Some(entry) = self.entries.lock().get(&table)
            && entry.seen == seen
        {
            metrics::counter!("ferrite_query_file_list_requests_total", "result" => "hit")
                .increment(1);
            return Ok(Arc::clone(&entry.files));
        }
        metrics::counter!("ferrite_query_file_list_requests_total", "result" => "miss")
            .increment(1);
        let files: Arc<[ParquetFile]> = catalog.parquet_files(table).await?.into();
        self.entries.lock().insert(
            table,
            Entry {
                seen,
                files: Arc::clone(&files),
            },
        );
        Ok(files)
    }
}

#[cfg(test)]
mod tests {
    use ferrite_catalog::{CachedCatalog, CatalogRef, ParquetFileParams, SqlCatalog};

    use super::*;

    #[tokio::test]
    async fn a_list_is_reused_until_the_version_or_an_ingester_moves() {
        let sql = Arc::new(SqlCatalog::connect("sqlite::memory:").await.unwrap());
        let catalog = CachedCatalog::new(Arc::clone(&sql) as CatalogRef, sql.committed_versions());
        let db = sql.create_database("telegraf").await.unwrap();
        let table = sql.create_table(db.id, "cpu").await.unwrap();
        let partition = sql.create_partition(table.id, "2024-01-01").await.unwrap();
        let add = || {
            sql.add_parquet_file(ParquetFileParams {
                database_id: db.id,
                table_id: table.id,
                partition_id: partition.id,
                object_store_id: uuid::Uuid::new_v4(),
                min_time: 0,
                max_time: 1,
                row_count: 1,
                file_size_bytes: 100,
                compaction_level: 0,
                max_sequence_number: 1,
            })
        };
        add().await.unwrap();
        let lists = FileLists::default();
        let ingester = uuid::Uuid::new_v4();
        let first = lists
            .files(&catalog, table.id, vec![(ingester, 0)])
            .await
            .unwrap();
        assert_eq!(first.len(), 1);
        let again = lists
            .files(&catalog, table.id, vec![(ingester, 0)])
            .await
            .unwrap();
        assert!(Arc::ptr_eq(&first, &again), "nothing moved: the same list");

        // The ingester persisted: read again, though the version says nothing changed.
        let counted = lists
            .files(&catalog, table.id, vec![(ingester, 1)])
            .await
            .unwrap();
        assert!(!Arc::ptr_eq(&first, &counted));
        // A registered file moves the version.
        add().await.unwrap();
        let grown = lists
            .files(&catalog, table.id, vec![(ingester, 1)])
            .await
            .unwrap();
        assert_eq!(grown.len(), 2);

        // A catalog handle that follows no feed is read every time.
        let plain = lists
            .files(sql.as_ref(), table.id, vec![(ingester, 1)])
            .await
            .unwrap();
        let plain_again = lists
            .files(sql.as_ref(), table.id, vec![(ingester, 1)])
            .await
            .unwrap();
        assert!(!Arc::ptr_eq(&plain, &plain_again));
    }
}
