//! The in-memory buffer tree: (database, table) → partition → batches in sequence order.
//!
//! ```text
//!  PartitionBuffer ── batches: [(seq, batch)…]   ← new writes (append; no sort, no dedup)
//!                  └─ persisting: [Snapshot…]    ← taken for persistence, still queryable
//! ```
//!
//! Invariants:
//! - rows stay queryable from the moment they are inserted until their snapshot's file is
//!   registered in the catalog (a snapshot leaves `persisting` only after registration);
//! - within a partition, batches are kept ordered by sequence number, so "later in the list"
//!   means "later write".

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Array, TimestampNanosecondArray};
use arrow::record_batch::RecordBatch;
use ferrite_model::{DatabaseId, TIME_COLUMN, TableId};

/// One buffered batch with what persistence and queries need to know about it.
#[derive(Debug, Clone)]
pub struct Buffered {
    /// WAL sequence number of the write.
    pub seq: u64,
    /// The rows.
    pub batch: RecordBatch,
    /// Smallest time.
    pub min_time: i64,
    /// Largest time.
    pub max_time: i64,
}

impl Buffered {
    /// Wrap a batch, computing its time range. `None` for a batch with no rows.
    pub fn new(seq: u64, batch: RecordBatch) -> Option<Self> {
        let time = batch
            .column_by_name(TIME_COLUMN)?
            .as_any()
            .downcast_ref::<TimestampNanosecondArray>()?;
        let min_time = arrow::compute::min(time)?;
        let max_time = arrow::compute::max(time)?;
        Some(Self {
            seq,
            batch,
            min_time,
            max_time,
        })
    }
}

/// One partition's unpersisted batches, as a query reads them.
#[derive(Debug)]
pub struct PartitionRows {
    /// Partition key.
    pub partition_key: String,
    /// Batches in sequence order, those being persisted included.
    pub batches: Vec<Buffered>,
    /// When the partition's buffer last took a write (`None`: only rows being persisted).
    pub last_write: Option<Instant>,
}

/// Rows taken out of a partition's buffer for one persist operation.
#[derive(Debug)]
pub struct Snapshot {
    /// Unique within the process.
    pub id: u64,
    /// Database.
    pub database_id: DatabaseId,
    /// Table.
    pub table_id: TableId,
    /// Partition key.
    pub partition_key: String,
    /// Batches in sequence order.
    pub batches: Vec<Buffered>,
}

impl Snapshot {
    /// Rows in the snapshot.
    pub fn rows(&self) -> usize {
        self.batches.iter().map(|b| b.batch.num_rows()).sum()
    }

    /// Highest sequence number in the snapshot.
    pub fn max_seq(&self) -> u64 {
        self.batches.iter().map(|b| b.seq).max().unwrap_or(0)
    }
}

#[derive(Debug)]
struct PartitionBuffer {
    batches: Vec<Buffered>,
    bytes: usize,
    first_write: Option<Instant>,
    last_write: Option<Instant>,
    persisting: Vec<Arc<Snapshot>>,
}

impl PartitionBuffer {
    fn new() -> Self {
        Self {
            batches: Vec::new(),
            bytes: 0,
            first_write: None,
            last_write: None,
            persisting: Vec::new(),
        }
    }

    fn insert(&mut self, b: Buffered) {
        self.bytes += b.batch.get_array_memory_size();
        let now = Instant::now();
        self.first_write.get_or_insert(now);
        self.last_write = Some(now);
        // Writes almost always arrive in order; a sync write overtaken by a no_sync one
        // is put back in its place.
        let pos = self.batches.partition_point(|x| x.seq < b.seq);
        self.batches.insert(pos, b);
    }

    fn min_seq(&self) -> Option<u64> {
        let buffered = self.batches.first().map(|b| b.seq);
        let persisting = self
            .persisting
            .iter()
            .flat_map(|s| s.batches.first().map(|b| b.seq));
        buffered.into_iter().chain(persisting).min()
    }
}

/// Which partition to persist and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersistCandidate {
    /// Database.
    pub database_id: DatabaseId,
    /// Table.
    pub table_id: TableId,
    /// Partition key.
    pub partition_key: String,
    /// Why it is due.
    pub trigger: Trigger,
}

/// What made a partition due for persistence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// It holds the partition byte limit.
    Size,
    /// Its oldest unpersisted write reached the persist age.
    Age,
    /// The whole buffer is over its limit and this is among the largest partitions.
    Memory,
    /// Everything is persisted (shutdown).
    Shutdown,
}

impl Trigger {
    /// The `trigger` label of `ferrite_persist_total`.
    pub fn label(self) -> &'static str {
        match self {
            Trigger::Size => "size",
            Trigger::Age => "age",
            Trigger::Memory => "memory",
            Trigger::Shutdown => "shutdown",
        }
    }
}

type PartitionKey = (DatabaseId, TableId, String);

/// The whole buffer. Callers hold it behind one mutex; every operation is short.
#[derive(Debug, Default)]
pub struct BufferTree {
    tables: HashMap<(DatabaseId, TableId), BTreeMap<String, PartitionBuffer>>,
    bytes: usize,
    rows: usize,
    next_snapshot: u64,
}

impl BufferTree {
    /// Add a batch to a partition.
    pub fn insert(
        &mut self,
        database_id: DatabaseId,
        table_id: TableId,
        partition_key: &str,
        b: Buffered,
    ) {
        let partitions = self.tables.entry((database_id, table_id)).or_default();
        let p = match partitions.get_mut(partition_key) {
            Some(p) => p,
            None => partitions
                .entry(partition_key.to_string())
                .or_insert_with(PartitionBuffer::new),
        };
        let before = p.bytes;
        self.rows += b.batch.num_rows();
        p.insert(b);
        self.bytes += p.bytes - before;
    }

    /// Bytes of unpersisted batches not yet taken for persistence.
    pub fn buffered_bytes(&self) -> usize {
        self.bytes
    }

    /// Rows of unpersisted batches not yet taken for persistence.
    pub fn buffered_rows(&self) -> usize {
        self.rows
    }

    /// Bytes and rows not persisted yet: buffered, and taken for a persist still running.
    pub fn unpersisted(&self) -> (u64, u64) {
        let batches = self
            .tables
            .values()
            .flat_map(|ps| ps.values())
            .flat_map(|p| {
                p.persisting
                    .iter()
                    .flat_map(|s| s.batches.iter())
                    .chain(p.batches.iter())
            });
        batches.fold((0, 0), |(bytes, rows), b| {
            (
                bytes + b.batch.get_array_memory_size() as u64,
                rows + b.batch.num_rows() as u64,
            )
        })
    }

    /// Partitions due for persistence: over `max_bytes`, older than `max_age`, or — while the
    /// whole buffer is over `total_bytes` — the largest ones until it would fit.
    pub fn due(
        &self,
        max_bytes: usize,
        max_age: Duration,
        total_bytes: usize,
    ) -> Vec<PersistCandidate> {
        let mut out = Vec::new();
        let mut rest: Vec<(usize, PersistCandidate)> = Vec::new();
        let mut remaining = self.bytes;
        for ((db, table), partitions) in &self.tables {
            for (key, p) in partitions {
                if p.batches.is_empty() {
                    continue;
                }
                let mut c = PersistCandidate {
                    database_id: *db,
                    table_id: *table,
                    partition_key: key.clone(),
                    trigger: Trigger::Memory,
                };
                let old = p.first_write.is_some_and(|t| t.elapsed() >= max_age);
                if p.bytes >= max_bytes || old {
                    c.trigger = if p.bytes >= max_bytes {
                        Trigger::Size
                    } else {
                        Trigger::Age
                    };
                    remaining -= p.bytes;
                    out.push(c);
                } else {
                    rest.push((p.bytes, c));
                }
            }
        }
        rest.sort_by_key(|(bytes, _)| std::cmp::Reverse(*bytes));
        for (bytes, c) in rest {
            if remaining <= total_bytes {
                break;
            }
            remaining -= bytes;
            out.push(c);
        }
        out
    }

    /// Every partition with buffered rows (for shutdown).
    pub fn all(&self) -> Vec<PersistCandidate> {
        let mut all = self.due(0, Duration::ZERO, 0);
        for c in &mut all {
            c.trigger = Trigger::Shutdown;
        }
        all
    }

    /// Move a partition's buffered batches into a new snapshot (still queryable).
    pub fn snapshot(&mut self, c: &PersistCandidate) -> Option<Arc<Snapshot>> {
        let p = self
            .tables
            .get_mut(&(c.database_id, c.table_id))?
            .get_mut(&c.partition_key)?;
        if p.batches.is_empty() {
            return None;
        }
        self.next_snapshot += 1;
        let snapshot = Arc::new(Snapshot {
            id: self.next_snapshot,
            database_id: c.database_id,
            table_id: c.table_id,
            partition_key: c.partition_key.clone(),
            batches: std::mem::take(&mut p.batches),
        });
        self.bytes -= p.bytes;
        self.rows -= snapshot.rows();
        p.bytes = 0;
        p.first_write = None;
        p.persisting.push(Arc::clone(&snapshot));
        Some(snapshot)
    }

    /// The snapshot's file is registered: its rows are now served from the catalog.
    pub fn persisted(&mut self, s: &Snapshot) {
        let key = (s.database_id, s.table_id);
        let Some(partitions) = self.tables.get_mut(&key) else {
            return;
        };
        if let Some(p) = partitions.get_mut(&s.partition_key) {
            p.persisting.retain(|x| x.id != s.id);
            if p.batches.is_empty() && p.persisting.is_empty() {
                partitions.remove(&s.partition_key);
            }
        }
        if partitions.is_empty() {
            self.tables.remove(&key);
        }
    }

    /// Smallest sequence number not yet persisted; `None` when everything is persisted.
    pub fn min_unpersisted_seq(&self) -> Option<u64> {
        self.tables
            .values()
            .flat_map(|ps| ps.values())
            .filter_map(PartitionBuffer::min_seq)
            .min()
    }

    /// A table's unpersisted batches, every partition and all of its batches (those being
    /// persisted too), in sequence order.
    pub fn table_data(&self, database_id: DatabaseId, table_id: TableId) -> Vec<PartitionRows> {
        let Some(partitions) = self.tables.get(&(database_id, table_id)) else {
            return Vec::new();
        };
        partitions
            .iter()
            .filter_map(|(key, p)| {
                let mut batches: Vec<Buffered> = p
                    .persisting
                    .iter()
                    .flat_map(|s| s.batches.iter())
                    .chain(p.batches.iter())
                    .cloned()
                    .collect();
                batches.sort_by_key(|b| b.seq);
                (!batches.is_empty()).then(|| PartitionRows {
                    partition_key: key.clone(),
                    batches,
                    last_write: p.last_write,
                })
            })
            .collect()
    }

    /// Partition keys currently buffered (for tests and metrics).
    pub fn partition_keys(&self) -> Vec<PartitionKey> {
        self.tables
            .iter()
            .flat_map(|((d, t), ps)| ps.keys().map(move |k| (*d, *t, k.clone())))
            .collect()
    }
}
