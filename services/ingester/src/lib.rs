//! The ingester: makes writes durable in a WAL, keeps them queryable in memory, and persists
//! them as sorted, deduplicated Parquet files registered in the catalog.
//!
//! ```text
//!  write(request) ─► encode (protobuf + Arrow IPC) ─► WAL append ─► fsync (group commit)
//!                 ─► BufferTree[db, table, partition] += batch ─► ack
//!  persist loop: partitions over size / age (or shutdown) ─► snapshot ─► Persister
//!                 ─► file registered in catalog ─► snapshot dropped ─► WAL truncated
//!  query(table) ◄─ snapshot of buffered + persisting batches, projected and time-filtered
//! ```
//!
//! Invariants:
//! - a `Durability::Sync` write returns only after its WAL record is fsynced;
//! - rows are queryable from the buffer until the catalog lists the file holding them;
//! - a WAL segment is deleted only when all its writes are in registered files;
//! - the hot write path does no sorting, no dedup and no catalog call.

pub mod api;
pub mod buffer;
mod caches;
pub mod codec;
pub mod grpc;
pub mod persist;
mod query_cache;
mod tag_filter;
pub mod wal;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use arrow::array::{Array, BooleanArray, TimestampNanosecondArray};
use async_trait::async_trait;
use ferrite_catalog::CatalogRef;
use ferrite_model::TIME_COLUMN;
use ferrite_model::cache::CacheDefinition;
use ferrite_retry::{Backoff, FailureLog};
use object_store::ObjectStore;
use parking_lot::Mutex;
use prost::Message;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinHandle;
use tracing::{Instrument as _, error, info, warn};

use crate::api::{
    BufferStats, Durability, IngesterQuery, IngesterStatus, IngesterWrite, PartitionData,
    QueryError, QueryRequest, QueryResponse, WriteError, WriteRequest,
};
use crate::buffer::{BufferTree, Buffered, PersistCandidate, Snapshot, Trigger};
use crate::caches::Caches;
use crate::persist::Persister;
use crate::query_cache::QueryCache;
use crate::tag_filter::TagFilter;
use crate::wal::{Wal, WalError};

/// A failed persist is retried after this long, doubling (with jitter) up to the max: an
/// ingester whose catalog or object store is down waits instead of spinning.
const PERSIST_BACKOFF_MIN: Duration = Duration::from_millis(100);
const PERSIST_BACKOFF_MAX: Duration = Duration::from_secs(10);
/// At most one persist-failure log line this often, whatever the number of partitions.
const FAILURE_LOG_EVERY: Duration = Duration::from_secs(30);

/// Ingester settings.
#[derive(Debug, Clone)]
pub struct IngesterConfig {
    /// Directory of the WAL segments.
    pub wal_dir: PathBuf,
    /// Rotate a WAL segment after this many bytes.
    pub wal_segment_bytes: u64,
    /// Persist a partition once its buffer holds this many bytes.
    pub persist_partition_bytes: usize,
    /// Persist a partition once its oldest unpersisted write is this old.
    pub persist_age: Duration,
    /// Persist the largest partitions while the whole buffer is over this size.
    pub buffer_bytes: usize,
    /// Refuse writes (retryable) while the buffer is over this size.
    pub max_buffer_bytes: usize,
    /// Persist operations running at once.
    pub persist_concurrency: usize,
    /// How often the persist loop checks sizes and ages.
    pub persist_check_interval: Duration,
    /// Longest a shutdown waits for everything to persist; `None` waits for as long as it
    /// takes. What is not persisted by then stays in the WAL and is replayed at the next start.
    pub drain_timeout: Option<Duration>,
    /// A partition without writes for this long is sorted and deduplicated once for the
    /// queries that follow, instead of by every query.
    pub query_cache_quiet: Duration,
    /// How often the catalog version is checked for created or deleted last-value and
    /// distinct-value caches.
    pub cache_sync_interval: Duration,
}

impl IngesterConfig {
    /// Defaults with the WAL in `wal_dir`.
    pub fn new(wal_dir: PathBuf) -> Self {
        Self {
            wal_dir,
            wal_segment_bytes: 64 << 20,
            persist_partition_bytes: 256 << 20,
            persist_age: Duration::from_secs(300),
            buffer_bytes: 1 << 30,
            max_buffer_bytes: 4 << 30,
            persist_concurrency: 2,
            persist_check_interval: Duration::from_secs(1),
            drain_timeout: Some(Duration::from_secs(60)),
            query_cache_quiet: Duration::from_secs(1),
            cache_sync_interval: Duration::from_secs(1),
        }
    }
}

/// Why the ingester could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The WAL could not be opened.
    #[error(transparent)]
    Wal(#[from] WalError),
    /// A WAL record could not be decoded.
    #[error("WAL record {seq} cannot be decoded: {reason}")]
    Replay {
        /// Sequence number.
        seq: u64,
        /// Cause.
        reason: String,
    },
}

/// An ingester. Create with [`Ingester::start`]; stop with [`Ingester::shutdown`].
#[derive(Debug)]
pub struct Ingester {
    inner: Arc<Inner>,
    persist_loop: Mutex<Option<JoinHandle<()>>>,
    cache_loop: Mutex<Option<JoinHandle<()>>>,
}

#[derive(Debug)]
struct Inner {
    uuid: uuid::Uuid,
    config: IngesterConfig,
    wal: Wal,
    buffer: Mutex<BufferTree>,
    persister: Persister,
    persist_permits: Semaphore,
    persist_count: AtomicU64,
    query_cache: Arc<QueryCache>,
    /// Last-value and distinct-value caches; locked after `buffer`, never before.
    caches: Mutex<Caches>,
    catalog: CatalogRef,
    /// Shared by every partition's retry loop: one line per interval for all of them.
    persist_failures: Mutex<FailureLog>,
    shutting_down: AtomicBool,
    wake: Notify,
}

impl Ingester {
    /// Open the WAL, replay it into the buffer and start the persist loop.
    pub fn start(
        config: IngesterConfig,
        catalog: CatalogRef,
        store: Arc<dyn ObjectStore>,
    ) -> Result<Arc<Self>, StartError> {
        let (wal, replayed) = Wal::open(&config.wal_dir, config.wal_segment_bytes)?;
        let mut buffer = BufferTree::default();
        let replayed_count = replayed.len();
        for r in replayed {
            let seq = r.op.sequence_number;
            let write = r.op.write.unwrap_or_default();
            let request = codec::decode_write(write).map_err(|e| StartError::Replay {
                seq,
                reason: e.to_string(),
            })?;
            insert(&mut buffer, seq, request);
        }
        if replayed_count > 0 {
            info!(writes = replayed_count, "buffer restored from WAL");
        }
        let caches = Caches::restore(&config.wal_dir.join(CACHE_DIR));
        let inner = Arc::new(Inner {
            uuid: uuid::Uuid::new_v4(),
            persist_permits: Semaphore::new(config.persist_concurrency.max(1)),
            config,
            wal,
            buffer: Mutex::new(buffer),
            persister: Persister::new(Arc::clone(&catalog), store),
            caches: Mutex::new(caches),
            catalog,
            persist_count: AtomicU64::new(0),
            query_cache: Arc::default(),
            persist_failures: Mutex::new(FailureLog::new(FAILURE_LOG_EVERY)),
            shutting_down: AtomicBool::new(false),
            wake: Notify::new(),
        });
        let persist_loop = tokio::spawn(persist_loop(Arc::clone(&inner)));
        let cache_loop = tokio::spawn(cache_loop(Arc::clone(&inner)));
        Ok(Arc::new(Self {
            inner,
            persist_loop: Mutex::new(Some(persist_loop)),
            cache_loop: Mutex::new(Some(cache_loop)),
        }))
    }

    /// Persist every partition now and wait for it (tests, admin).
    pub async fn persist_all(&self) {
        self.inner.persist_all().await;
    }

    /// Stop taking writes, persist everything (for at most the drain timeout), close the WAL.
    pub async fn shutdown(&self) {
        self.inner.shutting_down.store(true, Ordering::SeqCst);
        if let Some(h) = self.persist_loop.lock().take() {
            h.abort();
        }
        if let Some(h) = self.cache_loop.lock().take() {
            h.abort();
        }
        let drained = match self.inner.config.drain_timeout {
            None => {
                self.inner.persist_all().await;
                true
            }
            Some(limit) => tokio::time::timeout(limit, self.inner.persist_all())
                .await
                .is_ok(),
        };
        self.inner.truncate_wal();
        self.inner.wal.close();
        if drained {
            info!("ingester shut down; everything persisted");
        } else {
            // Acknowledged writes are safe: the WAL keeps every one not in a registered file.
            warn!(
                limit = ?self.inner.config.drain_timeout,
                "ingester shut down before everything persisted (catalog or object store \
                 unavailable?); the rest stays in the WAL and is replayed at the next start"
            );
        }
    }

    /// Number of completed persist operations since start.
    pub fn persist_count(&self) -> u64 {
        self.inner.persist_count.load(Ordering::SeqCst)
    }

    /// Bytes buffered and not yet taken for persistence.
    pub fn buffered_bytes(&self) -> usize {
        self.inner.buffer.lock().buffered_bytes()
    }

    /// What this ingester holds that is not persisted yet.
    pub fn buffer_stats(&self) -> BufferStats {
        let (bytes, rows) = self.inner.buffer.lock().unpersisted();
        BufferStats { bytes, rows }
    }

    /// Identity of this process (changes on restart).
    pub fn uuid(&self) -> uuid::Uuid {
        self.inner.uuid
    }
}

fn insert(buffer: &mut BufferTree, seq: u64, request: WriteRequest) {
    for t in request.tables {
        if let Some(b) = Buffered::new(seq, t.batch) {
            buffer.insert(request.database_id, t.table_id, &t.partition_key, b);
        }
    }
}

#[async_trait]
impl IngesterWrite for Ingester {
    async fn write(&self, request: WriteRequest, durability: Durability) -> Result<(), WriteError> {
        let inner = &self.inner;
        if inner.shutting_down.load(Ordering::SeqCst) {
            return Err(WriteError::ShuttingDown);
        }
        let buffered = inner.buffer.lock().buffered_bytes();
        if buffered > inner.config.max_buffer_bytes {
            inner.wake.notify_one();
            return Err(WriteError::Overloaded(format!(
                "{buffered} bytes wait for persistence (limit {})",
                inner.config.max_buffer_bytes
            )));
        }
        let no_sync = durability == Durability::NoSync;
        let bytes = codec::encode_write(&request, no_sync)
            .map_err(|e| WriteError::Wal(format!("cannot encode write: {e}")))?
            .encode_to_vec();
        let span = tracing::debug_span!("wal append", bytes = bytes.len(), sync = !no_sync);
        let (seq, waiter) = span
            .in_scope(|| inner.wal.append(&bytes, !no_sync))
            .map_err(|e| WriteError::Wal(e.to_string()))?;
        if let Some(waiter) = waiter {
            let synced = match waiter.instrument(span).await {
                Ok(r) => r,
                Err(_) => Err("WAL thread stopped".to_string()),
            };
            if let Err(e) = synced {
                inner.wal.buffered(seq);
                return Err(WriteError::Wal(e));
            }
        }
        let rows: usize = request.tables.iter().map(|t| t.batch.num_rows()).sum();
        {
            let _insert = tracing::debug_span!("buffer insert", rows).entered();
            let mut buffer = inner.buffer.lock();
            let mut caches = inner.caches.lock();
            if !caches.is_empty() {
                let now = std::time::Instant::now();
                for t in &request.tables {
                    caches.update(request.database_id, t.table_id, &t.batch, now);
                }
            }
            drop(caches);
            insert(&mut buffer, seq, request);
            publish(&buffer);
        }
        metrics::counter!("ferrite_ingester_rows_total").increment(rows as u64);
        inner.wal.buffered(seq);
        Ok(())
    }
}

#[async_trait]
impl IngesterQuery for Ingester {
    async fn query(&self, request: QueryRequest) -> Result<QueryResponse, QueryError> {
        let tags = TagFilter::new(&request.schema, &request.tags).map_err(QueryError::Invalid)?;
        // The persist count and the data under one lock (a persist counts itself under it
        // as its rows leave): a querier that cached the file list sees the rows or a count
        // telling it to list files again, never neither.
        let (persist_count, data) = {
            let buffer = self.inner.buffer.lock();
            let count = self.inner.persist_count.load(Ordering::SeqCst);
            (
                count,
                buffer.table_data(request.database_id, request.table_id),
            )
        };
        let cache = &self.inner.query_cache;
        let live = data.iter().map(|p| p.partition_key.as_str()).collect();
        cache.retain(request.database_id, request.table_id, &live);
        let mut partitions = Vec::with_capacity(data.len());
        for rows in data {
            let key = (
                request.database_id,
                request.table_id,
                rows.partition_key.clone(),
            );
            if let Some(d) = cache.get(&key, &rows.batches) {
                let (lo, hi) = request.time_range.unwrap_or((i64::MIN, i64::MAX));
                let batches = query_cache::time_slice(&d.batch, lo, hi)
                    .into_iter()
                    .collect();
                partitions.extend(partition_data(
                    rows.partition_key,
                    batches,
                    &request,
                    &tags,
                    true,
                )?);
                continue;
            }
            let quiet = rows
                .last_write
                .is_none_or(|t| t.elapsed() >= self.inner.config.query_cache_quiet);
            if quiet {
                cache.build_later(key, rows.batches.clone());
            }
            partitions.extend(partition_data(
                rows.partition_key,
                rows.batches,
                &request,
                &tags,
                false,
            )?);
        }
        Ok(QueryResponse {
            ingester_uuid: self.inner.uuid,
            persist_count,
            partitions,
        })
    }

    async fn cache(
        &self,
        definition: &CacheDefinition,
    ) -> Result<Vec<arrow::record_batch::RecordBatch>, QueryError> {
        let buffer = self.inner.buffer.lock();
        let mut caches = self.inner.caches.lock();
        let cache = caches.ensure(definition, &buffer).ok_or_else(|| {
            QueryError::Invalid(format!("cache '{}' cannot be built", definition.name))
        })?;
        drop(buffer);
        let now = std::time::Instant::now();
        cache.prune(now);
        let batch = cache.batch(now).map_err(|e| {
            QueryError::Invalid(format!("reading cache '{}': {e}", definition.name))
        })?;
        Ok(vec![batch])
    }

    async fn status(&self) -> Vec<IngesterStatus> {
        vec![IngesterStatus {
            address: IN_PROCESS.to_string(),
            buffered: Ok(self.buffer_stats()),
        }]
    }
}

/// Where, under the WAL directory, the caches' rows are saved for restarts.
const CACHE_DIR: &str = "caches";

/// The address `system.ingesters` shows for an ingester in the querier's own process.
pub const IN_PROCESS: &str = "in-process";

/// The rows of `batches` in the request's time range and schema, as one partition's
/// answer; `None` when no row is in the range.
fn partition_data(
    partition_key: String,
    batches: Vec<Buffered>,
    request: &QueryRequest,
    tags: &TagFilter,
    deduplicated: bool,
) -> Result<Option<PartitionData>, QueryError> {
    let mut out = Vec::with_capacity(batches.len());
    let (mut min_time, mut max_time) = (i64::MAX, i64::MIN);
    for b in batches {
        let batch = match request.time_range {
            Some((lo, hi)) if b.max_time < lo || b.min_time >= hi => continue,
            Some((lo, hi)) if b.min_time < lo || b.max_time >= hi => filter_time(&b.batch, lo, hi)?,
            _ => b.batch,
        };
        let batch = tags
            .apply(&batch)
            .map_err(|e| QueryError::Invalid(e.to_string()))?;
        if batch.num_rows() == 0 {
            continue;
        }
        if let Some(t) = Buffered::new(0, batch.clone()) {
            min_time = min_time.min(t.min_time);
            max_time = max_time.max(t.max_time);
        }
        out.push(
            persist::align(&batch, &request.schema)
                .map_err(|e| QueryError::Invalid(e.to_string()))?,
        );
    }
    Ok((!out.is_empty()).then_some(PartitionData {
        partition_key,
        batches: out,
        min_time,
        max_time,
        deduplicated,
    }))
}

fn filter_time(
    batch: &arrow::record_batch::RecordBatch,
    lo: i64,
    hi: i64,
) -> Result<arrow::record_batch::RecordBatch, QueryError> {
    let time = batch
        .column_by_name(TIME_COLUMN)
        .and_then(|c| c.as_any().downcast_ref::<TimestampNanosecondArray>())
        .ok_or_else(|| QueryError::Invalid("buffered batch has no time column".into()))?;
    let keep: BooleanArray = time
        .iter()
        .map(|t| Some(t.is_some_and(|t| t >= lo && t < hi)))
        .collect();
    arrow::compute::filter_record_batch(batch, &keep)
        .map_err(|e| QueryError::Invalid(e.to_string()))
}

impl Inner {
    async fn persist_all(self: &Arc<Self>) {
        loop {
            let candidates = self.buffer.lock().all();
            if candidates.is_empty() {
                break;
            }
            let jobs: Vec<_> = candidates
                .iter()
                .filter_map(|c| self.snapshot(c))
                .map(|(s, trigger)| {
                    let inner = Arc::clone(self);
                    tokio::spawn(async move { inner.persist_snapshot(s, trigger).await })
                })
                .collect();
            for j in jobs {
                if let Err(e) = j.await {
                    error!(error = %e, "persist task failed");
                }
            }
        }
        // Wait for persists started by the loop before we were called.
        let _all = self
            .persist_permits
            .acquire_many(self.config.persist_concurrency.max(1) as u32)
            .await;
    }

    /// Take `c`'s buffered batches for persistence.
    fn snapshot(&self, c: &PersistCandidate) -> Option<(Arc<Snapshot>, Trigger)> {
        let mut buffer = self.buffer.lock();
        let s = buffer.snapshot(c)?;
        publish(&buffer);
        Some((s, c.trigger))
    }

    async fn persist_snapshot(self: Arc<Self>, snapshot: Arc<Snapshot>, trigger: Trigger) {
        let span = tracing::debug_span!(
            "persist",
            trigger = trigger.label(),
            partition = %snapshot.partition_key,
            rows = snapshot.rows(),
        );
        self.persist_traced(snapshot, trigger)
            .instrument(span)
            .await
    }

    async fn persist_traced(self: Arc<Self>, snapshot: Arc<Snapshot>, trigger: Trigger) {
        let _permit = self.persist_permits.acquire().await;
        let started = std::time::Instant::now();
        // Encoding is the costly part and its result does not change: done once, unless it
        // fails, and then retried at the same pace as the I/O.
        let mut backoff = Backoff::new(PERSIST_BACKOFF_MIN, PERSIST_BACKOFF_MAX);
        let mut encoded = None;
        loop {
            match self.persister.attempt(&snapshot, &mut encoded).await {
                Ok(file) => {
                    if let Some(failures) = self.persist_failures.lock().success() {
                        info!(failures, "persisting works again");
                    }
                    metrics::counter!("ferrite_persist_total", "trigger" => trigger.label())
                        .increment(1);
                    metrics::histogram!("ferrite_persist_duration_seconds")
                        .record(started.elapsed().as_secs_f64());
                    metrics::counter!("ferrite_persist_files_total").increment(1);
                    metrics::counter!("ferrite_persist_bytes_total")
                        .increment(file.params.file_size_bytes.max(0) as u64);
                    metrics::counter!("ferrite_persist_rows_total")
                        .increment(file.params.row_count.max(0) as u64);
                    info!(
                        table_id = %snapshot.table_id,
                        partition = %snapshot.partition_key,
                        rows = file.params.row_count,
                        bytes = file.params.file_size_bytes,
                        "persisted"
                    );
                    break;
                }
                Err(e) => {
                    metrics::counter!("ferrite_persist_errors_total").increment(1);
                    let retry_in = backoff.next_delay();
                    if let Some(failures) = self.persist_failures.lock().failure() {
                        warn!(
                            error = %e,
                            partition = %snapshot.partition_key,
                            failures,
                            ?retry_in,
                            "persist failed; retrying (rows stay in memory and the WAL)"
                        );
                    }
                    tokio::time::sleep(retry_in).await;
                }
            }
        }
        {
            // Under the buffer lock, as queries read the count with the data: a query sees
            // the rows, or the new count that tells it to list files again, never neither.
            let mut buffer = self.buffer.lock();
            buffer.persisted(&snapshot);
            self.persist_count.fetch_add(1, Ordering::SeqCst);
        }
        self.truncate_wal();
    }

    fn truncate_wal(&self) {
        // The caches first: the records about to go are in them, and a restart rebuilds them
        // from this file and what stays in the WAL.
        let snapshot = self.caches.lock().snapshot();
        if let Err(e) = snapshot.write(&self.config.wal_dir.join(CACHE_DIR)) {
            warn!(error = %e, "cannot save the caches' rows; after a restart they hold only \
                               what the WAL still has");
        }
        let watermark = self
            .wal
            .watermark(|| self.buffer.lock().min_unpersisted_seq());
        self.wal.truncate(watermark);
    }

    fn due(&self) -> Vec<PersistCandidate> {
        let c = &self.config;
        self.buffer
            .lock()
            .due(c.persist_partition_bytes, c.persist_age, c.buffer_bytes)
    }
}

/// Follow the catalog's cache definitions: whenever its version moves, list them again and
/// build or drop caches to match. The first round, right after start, rebuilds every cache
/// from the buffer the WAL replay restored.
async fn cache_loop(inner: Arc<Inner>) {
    let mut synced = None;
    loop {
        let version = match inner.catalog.known_version() {
            Some(v) => Ok(v),
            None => inner.catalog.version().await,
        };
        match version {
            Ok(v) if synced != Some(v) => match inner.catalog.list_caches().await {
                Ok(definitions) => {
                    let buffer = inner.buffer.lock();
                    inner.caches.lock().sync(&definitions, &buffer);
                    synced = Some(v);
                }
                Err(e) => warn!(error = %e, "cannot list caches; retrying"),
            },
            Ok(_) => {}
            Err(e) => warn!(error = %e, "cannot read the catalog version to follow caches"),
        }
        tokio::time::sleep(inner.config.cache_sync_interval).await;
    }
}

async fn persist_loop(inner: Arc<Inner>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(inner.config.persist_check_interval) => {}
            _ = inner.wake.notified() => {}
        }
        for c in inner.due() {
            if let Some((s, trigger)) = inner.snapshot(&c) {
                tokio::spawn(Arc::clone(&inner).persist_snapshot(s, trigger));
            }
        }
    }
}

/// The buffer gauges, after every change to the buffer.
fn publish(buffer: &BufferTree) {
    metrics::gauge!("ferrite_buffer_bytes").set(buffer.buffered_bytes() as f64);
    metrics::gauge!("ferrite_buffer_rows").set(buffer.buffered_rows() as f64);
}
