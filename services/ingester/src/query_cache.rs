//! Sorted, deduplicated copies of quiet partitions' buffered rows, for queries.
//!
//! ```text
//!  query ─► partition's batches (seqs) ─ entry built from exactly these seqs? ─ yes ─► its rows,
//!                                              │ no                               deduplicated
//!                                              ▼
//!          the batches as they are (the querier sorts and deduplicates them)
//!          + quiet for `quiet`? ─► build an entry in the background (dedup once, by time)
//! ```
//!
//! Buffered rows are neither sorted nor deduplicated, so every query of them makes the
//! querier sort all their rows by the primary key and keep each key's last write. A
//! partition that has stopped receiving writes gets that done once: queries that find the
//! same batches hand out the entry's rows marked deduplicated, which a querier scans as
//! they are.
//!
//! Invariants:
//! - an entry is handed out only while its partition holds exactly the batches (sequence
//!   numbers) it was built from: any write or persist in between makes it stale for good;
//! - an entry is built from the same batches, in the same order, with the same
//!   [`sort_dedup`] as a persist, so it holds exactly the rows a file of them would;
//! - entries of partitions that are no longer buffered are dropped at the table's next query.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{Array, TimestampNanosecondArray};
use arrow::record_batch::RecordBatch;
use ferrite_model::dedup::sort_dedup;
use ferrite_model::{DatabaseId, TIME_COLUMN, TableId};
use parking_lot::Mutex;

use crate::buffer::Buffered;
use crate::persist::{align, unified_schema};

/// (database, table, partition key).
type Key = (DatabaseId, TableId, String);

/// One partition's buffered rows with one row per key, ordered by time (so a query's time
/// range is a slice of them).
#[derive(Debug)]
pub(crate) struct Deduplicated {
    /// Sequence numbers of the batches it was built from, in order.
    seqs: Vec<u64>,
    /// The rows, in the batches' unified schema.
    pub batch: RecordBatch,
}

#[derive(Debug)]
enum Entry {
    /// Being built from these batches.
    Building(Vec<u64>),
    Ready(Arc<Deduplicated>),
}

/// See the module docs.
#[derive(Debug, Default)]
pub(crate) struct QueryCache {
    entries: Mutex<HashMap<Key, Entry>>,
}

impl QueryCache {
    /// The deduplicated rows of a partition, if they were built from exactly `batches`.
    pub fn get(&self, key: &Key, batches: &[Buffered]) -> Option<Arc<Deduplicated>> {
        match self.entries.lock().get(key) {
            Some(Entry::Ready(d)) if same_batches(&d.seqs, batches) => Some(Arc::clone(d)),
            _ => None,
        }
    }

    /// Sort and deduplicate `batches` on a blocking thread, unless that is done or under way.
    pub fn build_later(self: &Arc<Self>, key: Key, batches: Vec<Buffered>) {
        let seqs: Vec<u64> = batches.iter().map(|b| b.seq).collect();
        {
            let mut entries = self.entries.lock();
            match entries.get(&key) {
                Some(Entry::Ready(d)) if d.seqs == seqs => return,
                Some(Entry::Building(_)) => return,
                _ => {}
            }
            if let Some(Entry::Ready(stale)) =
                entries.insert(key.clone(), Entry::Building(seqs.clone()))
            {
                forget(&stale);
            }
        }
        let cache = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let built = deduplicate(&batches);
            let mut entries = cache.entries.lock();
            match (built, entries.get(&key)) {
                (Some(batch), Some(Entry::Building(s))) if *s == seqs => {
                    metrics::gauge!("ferrite_ingester_query_cache_bytes")
                        .increment(batch.get_array_memory_size() as f64);
                    let d = Deduplicated { seqs, batch };
                    entries.insert(key, Entry::Ready(Arc::new(d)));
                }
                // Failed (a column's type differs between batches: queries report that) or
                // dropped meanwhile: nothing to keep.
                (None, Some(Entry::Building(s))) if *s == seqs => {
                    entries.remove(&key);
                }
                _ => {}
            }
        });
    }

    /// Drop the entries of a table's partitions other than `live`.
    pub fn retain(&self, database_id: DatabaseId, table_id: TableId, live: &HashSet<&str>) {
        self.entries.lock().retain(|(d, t, partition), entry| {
            let keep = *d != database_id || *t != table_id || live.contains(partition.as_str());
            if !keep && let Entry::Ready(r) = entry {
                forget(r);
            }
            keep
        });
    }
}

/// Count an entry's memory out of the gauge.
fn forget(entry: &Deduplicated) {
    metrics::gauge!("ferrite_ingester_query_cache_bytes")
        .decrement(entry.batch.get_array_memory_size() as f64);
}

fn same_batches(seqs: &[u64], batches: &[Buffered]) -> bool {
    seqs.len() == batches.len() && seqs.iter().zip(batches).all(|(s, b)| *s == b.seq)
}

/// The batches' rows deduplicated as a persist does, then ordered by time.
fn deduplicate(batches: &[Buffered]) -> Option<RecordBatch> {
    let refs: Vec<&RecordBatch> = batches.iter().map(|b| &b.batch).collect();
    let schema = unified_schema(&refs);
    let aligned = refs
        .iter()
        .map(|b| align(b, &schema))
        .collect::<Result<Vec<_>, _>>()
        .ok()?;
    let all = arrow::compute::concat_batches(&schema, &aligned).ok()?;
    let deduplicated = sort_dedup(&all, None).ok()?;
    let time = deduplicated.column_by_name(TIME_COLUMN)?;
    let order = arrow::compute::sort_to_indices(time, None, None).ok()?;
    arrow::compute::take_record_batch(&deduplicated, &order).ok()
}

/// The rows of a batch ordered by time with `lo <= time < hi`: a slice, no copy. `None`
/// when none is.
pub(crate) fn time_slice(batch: &RecordBatch, lo: i64, hi: i64) -> Option<Buffered> {
    let time = batch
        .column_by_name(TIME_COLUMN)?
        .as_any()
        .downcast_ref::<TimestampNanosecondArray>()?
        .values();
    let start = time.partition_point(|t| *t < lo);
    let end = time.partition_point(|t| *t < hi);
    (start < end).then(|| Buffered {
        seq: 0,
        batch: batch.slice(start, end - start),
        min_time: time[start],
        max_time: time[end - 1],
    })
}
