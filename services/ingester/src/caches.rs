//! The ingester's last-value and distinct-value caches: kept up to date by every write, in
//! the same step as the write enters the buffer, so a query sees a write in the cache as soon
//! as it sees it in the buffer.
//!
//! ```text
//!  catalog version changes ─► list_caches ─► sync: new definition ─► empty cache, filled from
//!                                                   the buffer (the WAL's replay after a restart)
//!                                         └─► definition gone ─► cache dropped
//!  write ─► buffer lock ─► Caches::update(table's caches) + buffer insert
//!  querier: cache(definition) ─► ensure (a definition not synced yet is built the same way)
//!                             ─► the cache's rows
//! ```
//!
//! Lock order: the buffer, then the caches. A cache is filled from the buffer under both
//! locks, so no write can fall between the fill and the first update.
//!
//! Restarts: before every WAL truncation the caches' rows are written to `<wal dir>/caches`
//! (one Arrow IPC file per cache). At the next start a cache is built from its file, then
//! from the buffer the WAL replay restored: together they hold every write the cache had
//! seen, whether the stop was clean (everything persisted, the WAL empty) or a kill. Rows
//! restored from a file count their TTL or max age from the restart.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use arrow::record_batch::RecordBatch;
use ferrite_model::cache::{Cache, CacheDefinition};
use ferrite_model::{DatabaseId, TableId};
use tracing::{info, warn};

use crate::buffer::BufferTree;

/// The caches of every table that has any.
#[derive(Debug, Default)]
pub(crate) struct Caches {
    tables: HashMap<(DatabaseId, TableId), Vec<(CacheDefinition, Cache)>>,
    /// Rows saved before the last stop, by cache id, until the cache is built again.
    restored: HashMap<i64, Vec<RecordBatch>>,
}

impl Caches {
    /// No caches yet; the rows saved in `dir` wait for their definitions.
    pub(crate) fn restore(dir: &Path) -> Self {
        Self {
            tables: HashMap::new(),
            restored: load_snapshots(dir),
        }
    }

    /// Every cache's rows now, and the ids whose saved rows still wait for a definition.
    pub(crate) fn snapshot(&self) -> Snapshot {
        let now = Instant::now();
        let mut caches = Vec::new();
        for (definition, cache) in self.tables.values().flatten() {
            match cache.batch(now) {
                Ok(batch) => caches.push((definition.id, batch)),
                Err(e) => warn!(cache = %definition.name, error = %e, "cache cannot be saved"),
            }
        }
        Snapshot {
            caches,
            waiting: self.restored.keys().copied().collect(),
        }
    }

    /// True when some table has a cache: writes skip the lookup otherwise.
    pub(crate) fn is_empty(&self) -> bool {
        self.tables.is_empty()
    }

    /// Take rows written to `table` into its caches.
    pub(crate) fn update(
        &mut self,
        database_id: DatabaseId,
        table_id: TableId,
        batch: &RecordBatch,
        now: Instant,
    ) {
        let Some(caches) = self.tables.get_mut(&(database_id, table_id)) else {
            return;
        };
        for (definition, cache) in caches {
            if let Err(e) = cache.update(batch, now) {
                // The write itself is safe in the WAL and the buffer; only the cache misses it.
                warn!(cache = %definition.name, table = %definition.table, error = %e,
                      "a write could not be taken into a cache");
            }
        }
    }

    /// Match the catalog's `definitions`: build the new ones from what `buffer` holds and
    /// drop those the catalog no longer lists.
    pub(crate) fn sync(&mut self, definitions: &[CacheDefinition], buffer: &BufferTree) {
        let live: std::collections::HashSet<i64> = definitions.iter().map(|d| d.id).collect();
        self.tables.retain(|_, caches| {
            caches.retain(|(d, _)| {
                let keep = live.contains(&d.id);
                if !keep {
                    info!(cache = %d.name, table = %d.table, "cache dropped");
                }
                keep
            });
            !caches.is_empty()
        });
        for d in definitions {
            self.ensure(d, buffer);
        }
        // Saved rows of caches deleted while the ingester was down.
        self.restored.retain(|id, _| live.contains(id));
    }

    /// The cache of `definition`, built and filled from `buffer` if this ingester does not
    /// have it yet.
    pub(crate) fn ensure(
        &mut self,
        definition: &CacheDefinition,
        buffer: &BufferTree,
    ) -> Option<&mut Cache> {
        let key = (definition.database_id, definition.table_id);
        let known = self
            .tables
            .get(&key)
            .and_then(|caches| caches.iter().position(|(d, _)| d.id == definition.id));
        let caches = match known {
            Some(_) => self.tables.get_mut(&key)?,
            None => {
                let saved = self.restored.remove(&definition.id).unwrap_or_default();
                let cache = match build(definition, &saved, buffer) {
                    Ok(c) => c,
                    Err(e) => {
                        warn!(cache = %definition.name, error = %e, "cache cannot be built");
                        return None;
                    }
                };
                let caches = self.tables.entry(key).or_default();
                caches.push((definition.clone(), cache));
                caches
            }
        };
        let at = known.unwrap_or(caches.len() - 1);
        Some(&mut caches[at].1)
    }
}

/// A new cache for `definition`, holding its `saved` rows and what `buffer` has of its table.
fn build(
    definition: &CacheDefinition,
    saved: &[RecordBatch],
    buffer: &BufferTree,
) -> Result<Cache, arrow::error::ArrowError> {
    let mut cache = definition.new_cache()?;
    let now = Instant::now();
    for batch in saved {
        cache.update(batch, now)?;
    }
    // In the order the writes arrived, across partitions: which of two same-time rows wins,
    // and which tuples are the least recently seen, depend on it.
    let mut batches: Vec<_> = buffer
        .table_data(definition.database_id, definition.table_id)
        .into_iter()
        .flat_map(|p| p.batches)
        .collect();
    batches.sort_by_key(|b| b.seq);
    for b in &batches {
        cache.update(&b.batch, now)?;
    }
    info!(cache = %definition.name, table = %definition.table, entries = cache.len(),
          "cache built from the buffer");
    Ok(cache)
}

/// The caches' rows at one moment, to be written by [`Snapshot::write`] outside the locks.
#[derive(Debug)]
pub(crate) struct Snapshot {
    caches: Vec<(i64, RecordBatch)>,
    /// Saved files to keep although no cache has the id yet.
    waiting: Vec<i64>,
}

impl Snapshot {
    /// Replace the files in `dir` with these rows: one file per cache, written aside and
    /// renamed into place, so a crash leaves the old file or the new one.
    pub(crate) fn write(&self, dir: &Path) -> std::io::Result<()> {
        if self.caches.is_empty() && !dir.exists() {
            return Ok(());
        }
        fs::create_dir_all(dir)?;
        for (id, batch) in &self.caches {
            let path = snapshot_path(dir, *id);
            let tmp = path.with_extension("arrow.tmp");
            let file = fs::File::create(&tmp)?;
            let mut writer = arrow::ipc::writer::FileWriter::try_new(file, &batch.schema())
                .map_err(std::io::Error::other)?;
            writer.write(batch).map_err(std::io::Error::other)?;
            writer.finish().map_err(std::io::Error::other)?;
            writer
                .into_inner()
                .map_err(std::io::Error::other)?
                .sync_all()?;
            fs::rename(&tmp, &path)?;
        }
        for (id, path) in snapshot_files(dir)? {
            let kept = self.caches.iter().any(|(c, _)| *c == id) || self.waiting.contains(&id);
            if !kept {
                fs::remove_file(path)?;
            }
        }
        Ok(())
    }
}

fn snapshot_path(dir: &Path, id: i64) -> PathBuf {
    dir.join(format!("{id}.arrow"))
}

fn snapshot_files(dir: &Path) -> std::io::Result<Vec<(i64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let id = entry
            .file_name()
            .to_str()
            .and_then(|n| n.strip_suffix(".arrow"))
            .and_then(|n| n.parse::<i64>().ok());
        if let Some(id) = id {
            out.push((id, entry.path()));
        }
    }
    Ok(out)
}

/// The rows saved in `dir`, by cache id; a file that cannot be read is skipped with a
/// warning (the cache then holds what the WAL gives it).
fn load_snapshots(dir: &Path) -> HashMap<i64, Vec<RecordBatch>> {
    let mut out = HashMap::new();
    let Ok(files) = snapshot_files(dir) else {
        return out;
    };
    for (id, path) in files {
        let read = fs::File::open(&path)
            .map_err(|e| e.to_string())
            .and_then(|f| {
                arrow::ipc::reader::FileReader::try_new(f, None).map_err(|e| e.to_string())
            })
            .and_then(|r| r.collect::<Result<Vec<_>, _>>().map_err(|e| e.to_string()));
        match read {
            Ok(batches) => {
                out.insert(id, batches);
            }
            Err(e) => warn!(file = %path.display(), error = %e, "saved cache rows cannot be read"),
        }
    }
    out
}
