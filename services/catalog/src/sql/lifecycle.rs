//! The compactor's catalog operations on a [`SqlCatalog`] (see [`crate::lifecycle`]): the
//! lease, partition summaries, replacing files in one transaction, skipped partitions,
//! retention, purging deleted tables and databases, and what garbage collection may remove.
//!
//! Times (`now`, lease expiry, `to_delete`) are the catalog process's clock, so a cluster's
//! processes never compare each other's clocks.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;

use ferrite_model::{DatabaseId, ParquetFileId, PartitionId};
use sqlx::{Any, AssertSqlSafe, Transaction};

use super::{Backend, ParquetFileRow, SqlCatalog, bump_version, now_ns, parquet_file};
use crate::lifecycle::{Lease, LevelStats, MAX_LEVEL, PartitionSummary, SkippedCompaction};
use crate::{Error, ParquetFile, ParquetFileParams, Result};

/// Ids per `IN (…)` list: far below either backend's parameter limit.
const IN_CHUNK: usize = 500;

/// What [`SqlCatalog::purge_deleted`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PurgeReport {
    /// Live files of purged tables and databases, now marked for deletion.
    pub files_marked: u64,
    /// Table rows removed (with their columns and partitions): their files were all gone.
    pub tables_removed: u64,
    /// Database rows removed: their tables and files were all gone.
    pub databases_removed: u64,
}

/// `$first, $first+1, …` for `n` values, each wrapped by `wrap` (`CAST(… AS uuid)`).
fn placeholders(first: usize, n: usize, wrap: impl Fn(String) -> String) -> String {
    (first..first + n)
        .map(|i| wrap(format!("${i}")))
        .collect::<Vec<_>>()
        .join(", ")
}

type SummaryRow = (
    i64,
    i64,
    String,
    Option<String>,
    i64,
    String,
    String,
    i16,
    i64,
    i64,
    i64,
    i64,
    Option<String>,
    Option<i64>,
);

impl SqlCatalog {
    /// Take or renew the lease `name` for `holder` for `ttl_ns`: granted when nobody holds
    /// it, `holder` already does, or the holder's time has run out.
    pub(super) async fn acquire_lease_sql(
        &self,
        name: &str,
        holder: &str,
        ttl_ns: i64,
    ) -> Result<Lease> {
        let now = now_ns();
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
             expires_at = excluded.expires_at \
             WHERE leases.holder = excluded.holder OR leases.expires_at < $4",
        )
        .bind(name)
        .bind(holder)
        .bind(now.saturating_add(ttl_ns))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let (current, expires_at): (String, i64) =
            sqlx::query_as("SELECT holder, expires_at FROM leases WHERE name = $1")
                .bind(name)
                .fetch_one(&mut *tx)
                .await?;
        self.commit(tx).await?;
        Ok(Lease {
            acquired: current == holder,
            holder: current,
            expires_at,
        })
    }

    /// Give the lease up at once (a clean shutdown), if `holder` has it.
    pub(super) async fn release_lease_sql(&self, name: &str, holder: &str) -> Result<()> {
        sqlx::query("UPDATE leases SET expires_at = 0 WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(holder)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The lease `name` as it stands, without touching it.
    pub(super) async fn lease_sql(&self, name: &str) -> Result<Option<Lease>> {
        let row: Option<(String, i64)> =
            sqlx::query_as("SELECT holder, expires_at FROM leases WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|(holder, expires_at)| Lease {
            holder,
            expires_at,
            acquired: false,
        }))
    }

    /// Every partition of a live table with live files: files, rows and bytes per level.
    pub(super) async fn partition_summaries_sql(&self) -> Result<Vec<PartitionSummary>> {
        let rows: Vec<SummaryRow> = sqlx::query_as(
            "SELECT p.id, p.table_id, p.partition_key, p.sort_key, t.database_id, d.name, t.name, \
             f.compaction_level, CAST(COUNT(*) AS BIGINT), CAST(SUM(f.row_count) AS BIGINT), \
             CAST(SUM(f.file_size_bytes) AS BIGINT), CAST(MAX(f.created_at) AS BIGINT), \
             s.reason, s.skipped_at \
             FROM parquet_files f \
             JOIN partitions p ON p.id = f.partition_id \
             JOIN tables t ON t.id = p.table_id \
             JOIN databases d ON d.id = t.database_id \
             LEFT JOIN skipped_compactions s ON s.partition_id = p.id \
             WHERE f.to_delete IS NULL AND t.deleted_at IS NULL AND d.deleted_at IS NULL \
             GROUP BY p.id, p.table_id, p.partition_key, p.sort_key, t.database_id, d.name, t.name, \
             f.compaction_level, s.reason, s.skipped_at \
             ORDER BY p.id, f.compaction_level",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut out: BTreeMap<i64, PartitionSummary> = BTreeMap::new();
        for row in rows {
            let (id, table_id, key, sort_key, database_id, database, table, level, files) = (
                row.0, row.1, row.2, row.3, row.4, row.5, row.6, row.7, row.8,
            );
            let (rows, bytes, newest, reason, skipped_at) = (row.9, row.10, row.11, row.12, row.13);
            if !(0..=MAX_LEVEL).contains(&level) {
                return Err(Error::Corrupt(format!(
                    "partition {id} has files at compaction level {level}"
                )));
            }
            let summary = match out.entry(id) {
                Entry::Occupied(e) => e.into_mut(),
                Entry::Vacant(e) => e.insert(PartitionSummary {
                    partition: super::partition(id, table_id, key, sort_key)?,
                    database_id: DatabaseId(database_id),
                    database,
                    table,
                    levels: [LevelStats::default(); 3],
                    newest_l0_at: None,
                    skipped: reason.map(|reason| SkippedCompaction {
                        reason,
                        skipped_at: skipped_at.unwrap_or_default(),
                    }),
                }),
            };
            summary.levels[level as usize] = LevelStats { files, rows, bytes };
            if level == 0 {
                summary.newest_l0_at = Some(newest);
            }
        }
        Ok(out.into_values().collect())
    }

    /// The live files of a partition, ordered by id.
    pub(super) async fn partition_files_sql(
        &self,
        partition_id: PartitionId,
    ) -> Result<Vec<ParquetFile>> {
        let rows: Vec<ParquetFileRow> = sqlx::query_as(select_parquet_files!(
            "WHERE partition_id = $1 AND to_delete IS NULL ORDER BY id"
        ))
        .bind(partition_id.get())
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(parquet_file).collect()
    }

    /// In one transaction: mark every file of `replaced` and register every file of `added`.
    /// [`Error::Conflict`], changing nothing, if any of `replaced` is no longer live.
    pub(super) async fn replace_files_sql(
        &self,
        replaced: &[ParquetFileId],
        added: Vec<ParquetFileParams>,
    ) -> Result<Vec<ParquetFile>> {
        let now = now_ns();
        let mut tx = self.begin_write().await?;
        for chunk in replaced.chunks(IN_CHUNK) {
            let sql = format!(
                "UPDATE parquet_files SET to_delete = $1 WHERE to_delete IS NULL AND id IN ({})",
                placeholders(2, chunk.len(), |p| p)
            );
            let mut update = sqlx::query(AssertSqlSafe(sql)).bind(now);
            for id in chunk {
                update = update.bind(id.get());
            }
            let marked = update.execute(&mut *tx).await?.rows_affected();
            if marked != chunk.len() as u64 {
                tx.rollback().await?;
                return Err(Error::Conflict(format!(
                    "{} of the {} files to replace are no longer live (compacted, expired or \
                     deleted meanwhile); nothing was changed",
                    chunk.len() as u64 - marked,
                    replaced.len()
                )));
            }
        }
        let mut ids = Vec::with_capacity(added.len());
        for params in &added {
            match self.insert_parquet_file(&mut tx, params).await? {
                Some(id) => ids.push(id),
                None => {
                    tx.rollback().await?;
                    return Err(Error::Conflict(format!(
                        "object {} is registered already",
                        params.object_store_id
                    )));
                }
            }
        }
        bump_version(&mut tx).await?;
        let files = files_by_id(&mut tx, &ids).await?;
        self.commit(tx).await?;
        Ok(files)
    }

    /// Record that the compactor skips `partition_id` and why (replacing an older reason).
    pub(super) async fn skip_partition_sql(
        &self,
        partition_id: PartitionId,
        reason: &str,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO skipped_compactions (partition_id, reason, skipped_at) \
             VALUES ($1, $2, $3) ON CONFLICT (partition_id) DO UPDATE \
             SET reason = excluded.reason, skipped_at = excluded.skipped_at",
        )
        .bind(partition_id.get())
        .bind(reason)
        .bind(now_ns())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Let the compactor try `partition_id` again; `false` if it was not skipped.
    pub(super) async fn unskip_partition_sql(&self, partition_id: PartitionId) -> Result<bool> {
        let removed = sqlx::query("DELETE FROM skipped_compactions WHERE partition_id = $1")
            .bind(partition_id.get())
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(removed > 0)
    }

    /// Mark every live file whose rows are all older than its database's retention period.
    pub(super) async fn expire_files_sql(&self) -> Result<u64> {
        let now = now_ns();
        let mut tx = self.begin_write().await?;
        let marked = sqlx::query(
            "UPDATE parquet_files SET to_delete = $1 WHERE to_delete IS NULL AND max_time < \
             $1 - (SELECT d.retention_period_ns FROM databases d \
                   WHERE d.id = parquet_files.database_id AND d.retention_period_ns > 0)",
        )
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if marked > 0 {
            bump_version(&mut tx).await?;
        }
        self.commit(tx).await?;
        Ok(marked)
    }

    /// Purge tables and databases soft-deleted more than `grace_ns` ago: mark their live
    /// files, then remove the rows of those whose files are all gone (collected).
    pub(super) async fn purge_deleted_sql(&self, grace_ns: i64) -> Result<PurgeReport> {
        let now = now_ns();
        let cutoff = now.saturating_sub(grace_ns);
        let mut tx = self.begin_write().await?;
        let files_marked = sqlx::query(
            "UPDATE parquet_files SET to_delete = $1 WHERE to_delete IS NULL AND (\
             table_id IN (SELECT id FROM tables WHERE deleted_at < $2) OR \
             database_id IN (SELECT id FROM databases WHERE deleted_at < $2))",
        )
        .bind(now)
        .bind(cutoff)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        // Columns, partitions and skipped compactions go with their table (ON DELETE CASCADE).
        let tables_removed = sqlx::query(
            "DELETE FROM tables WHERE (deleted_at < $1 OR database_id IN \
             (SELECT id FROM databases WHERE deleted_at < $1)) \
             AND NOT EXISTS (SELECT 1 FROM parquet_files f WHERE f.table_id = tables.id)",
        )
        .bind(cutoff)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let databases_removed = sqlx::query(
            "DELETE FROM databases WHERE deleted_at < $1 \
             AND NOT EXISTS (SELECT 1 FROM tables t WHERE t.database_id = databases.id) \
             AND NOT EXISTS (SELECT 1 FROM parquet_files f WHERE f.database_id = databases.id)",
        )
        .bind(cutoff)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if files_marked + tables_removed + databases_removed > 0 {
            bump_version(&mut tx).await?;
        }
        self.commit(tx).await?;
        Ok(PurgeReport {
            files_marked,
            tables_removed,
            databases_removed,
        })
    }

    /// Up to `limit` files marked more than `grace_ns` ago, oldest mark first.
    pub(super) async fn files_to_collect_sql(
        &self,
        grace_ns: i64,
        limit: i64,
    ) -> Result<Vec<ParquetFile>> {
        let rows: Vec<ParquetFileRow> = sqlx::query_as(select_parquet_files!(
            "WHERE to_delete IS NOT NULL AND to_delete < $1 ORDER BY to_delete, id LIMIT $2"
        ))
        .bind(now_ns().saturating_sub(grace_ns))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(parquet_file).collect()
    }

    /// Remove the rows of marked files (their objects are gone). Live files are never
    /// removed: they are skipped.
    pub(super) async fn delete_files_sql(&self, ids: &[ParquetFileId]) -> Result<u64> {
        let mut removed = 0;
        for chunk in ids.chunks(IN_CHUNK) {
            let sql = format!(
                "DELETE FROM parquet_files WHERE to_delete IS NOT NULL AND id IN ({})",
                placeholders(1, chunk.len(), |p| p)
            );
            let mut delete = sqlx::query(AssertSqlSafe(sql));
            for id in chunk {
                delete = delete.bind(id.get());
            }
            removed += delete.execute(&self.pool).await?.rows_affected();
        }
        Ok(removed)
    }

    /// Which of `ids` a parquet file row (live or marked) references.
    pub(super) async fn referenced_objects_sql(
        &self,
        ids: &[uuid::Uuid],
    ) -> Result<Vec<uuid::Uuid>> {
        let mut found = Vec::new();
        for chunk in ids.chunks(IN_CHUNK) {
            let list = match self.backend {
                Backend::Postgres => placeholders(1, chunk.len(), |p| format!("CAST({p} AS uuid)")),
                Backend::Sqlite => placeholders(1, chunk.len(), |p| p),
            };
            let sql = format!(
                "SELECT CAST(object_store_id AS TEXT) FROM parquet_files \
                 WHERE object_store_id IN ({list})"
            );
            let mut select = sqlx::query_scalar::<_, String>(AssertSqlSafe(sql));
            for id in chunk {
                select = select.bind(id.hyphenated().to_string());
            }
            for text in select.fetch_all(&self.pool).await? {
                found.push(
                    text.parse()
                        .map_err(|e| Error::Corrupt(format!("object store id '{text}': {e}")))?,
                );
            }
        }
        Ok(found)
    }
}

/// The rows of `ids`, in that order.
async fn files_by_id(tx: &mut Transaction<'static, Any>, ids: &[i64]) -> Result<Vec<ParquetFile>> {
    let mut files = Vec::with_capacity(ids.len());
    for id in ids {
        let row: ParquetFileRow = sqlx::query_as(select_parquet_files!("WHERE id = $1"))
            .bind(id)
            .fetch_one(&mut **tx)
            .await?;
        files.push(parquet_file(row)?);
    }
    Ok(files)
}
