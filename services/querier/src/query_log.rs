//! The query log: every query this querier runs, while it runs and for a while after, and
//! the query metrics of the observability contract.
//!
//! ```text
//!  QueryEngine::query ─► QueryLog::start ─► Tracker (running) ──► rows / bytes / peak memory
//!                                              │ finish(ok) | fail(error) | dropped (cancelled)
//!                                              ▼
//!                            QueryLog: running + the last `capacity` finished ─► system.queries
//! ```
//!
//! Invariants:
//! - a query is counted once in `ferrite_queries_total` and leaves `ferrite_queries_running`
//!   once, however it ends: the last clone of its [`Tracker`] to go records the outcome, so a
//!   client that hangs up mid-stream is a `cancelled` query, not a leak;
//! - the log holds every running query and at most `capacity` finished ones, oldest dropped
//!   first: its memory is bounded by the concurrency limit plus the capacity.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use datafusion::common::Result as DfResult;
use datafusion::execution::memory_pool::{MemoryLimit, MemoryPool, MemoryReservation};
use parking_lot::Mutex;

use crate::error::QueryError;

/// Finished queries kept by default.
pub const DEFAULT_QUERY_LOG_CAPACITY: usize = 1000;

/// The wire a query came in on (the `protocol` label and column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// A Flight SQL statement or prepared statement.
    FlightSql,
    /// A plain Flight `DoGet` with an IOx / InfluxDB 3 ticket.
    Flight,
    /// `/api/v3/query_sql`.
    Http,
    /// InfluxQL (any wire).
    InfluxQl,
}

impl Protocol {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FlightSql => "flight_sql",
            Self::Flight => "flight",
            Self::Http => "http",
            Self::InfluxQl => "influxql",
        }
    }
}

/// Where a query is, as `system.queries` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryStatus {
    /// Planning or streaming results.
    Running,
    /// Every result was handed to the client.
    Ok,
    /// Failed (planning, execution, a limit, a permission).
    Error,
    /// The client went away before the end.
    Cancelled,
}

impl QueryStatus {
    /// The column value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Ok => "ok",
            Self::Error => "error",
            Self::Cancelled => "cancelled",
        }
    }

    /// The inverse of [`Self::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "running" => Self::Running,
            "ok" => Self::Ok,
            "error" => Self::Error,
            "cancelled" => Self::Cancelled,
            _ => return None,
        })
    }
}

/// The `outcome` label of `ferrite_queries_total`: finer than the status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Ok,
    Error,
    Cancelled,
    Timeout,
    Rejected,
}

impl Outcome {
    fn of(error: &QueryError) -> Self {
        match error {
            QueryError::Timeout(_) => Self::Timeout,
            QueryError::TooManyQueries { .. } | QueryError::Auth(_) => Self::Rejected,
            QueryError::DatabaseNotFound(_)
            | QueryError::Plan(_)
            | QueryError::InvalidParams(_)
            | QueryError::InvalidRequest(_)
            | QueryError::Unsupported(_)
            | QueryError::Catalog(_)
            | QueryError::Ingester(_)
            | QueryError::Execution(_)
            | QueryError::MemoryLimit(_)
            | QueryError::Internal(_) => Self::Error,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Error => "error",
            Self::Cancelled => "cancelled",
            Self::Timeout => "timeout",
            Self::Rejected => "rejected",
        }
    }

    fn status(self) -> QueryStatus {
        match self {
            Self::Ok => QueryStatus::Ok,
            Self::Cancelled => QueryStatus::Cancelled,
            Self::Error | Self::Timeout | Self::Rejected => QueryStatus::Error,
        }
    }
}

/// One query as the log shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryRecord {
    /// Unique id.
    pub query_id: uuid::Uuid,
    /// The SQL (or InfluxQL) text as sent.
    pub query_text: String,
    /// The database it ran against.
    pub database_name: String,
    /// The wire it came in on (see [`Protocol::as_str`]).
    pub protocol: String,
    /// When it arrived.
    pub start_time: DateTime<Utc>,
    /// How long it ran (so far, while running).
    pub duration: Duration,
    /// Rows returned to the client.
    pub rows: u64,
    /// The most memory its operators (and a collected result) held at once.
    pub peak_memory_bytes: u64,
    /// Where it is.
    pub status: QueryStatus,
    /// Why it failed.
    pub error: Option<String>,
}

/// Running queries and the most recent finished ones.
#[derive(Debug)]
pub struct QueryLog {
    capacity: usize,
    inner: Mutex<LogInner>,
}

#[derive(Debug, Default)]
struct LogInner {
    running: HashMap<uuid::Uuid, Arc<Entry>>,
    finished: VecDeque<QueryRecord>,
}

impl QueryLog {
    /// A log keeping up to `capacity` finished queries.
    pub fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Self {
            capacity,
            inner: Mutex::new(LogInner::default()),
        })
    }

    /// Register a query that starts now.
    pub fn start(
        self: &Arc<Self>,
        protocol: Protocol,
        database: &str,
        query_text: &str,
        memory: Arc<dyn MemoryPool>,
    ) -> Tracker {
        let entry = Arc::new(Entry {
            query_id: uuid::Uuid::new_v4(),
            query_text: query_text.to_string(),
            database_name: database.to_string(),
            protocol,
            start_time: Utc::now(),
            started: Instant::now(),
            rows: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            pool: QueryPool::new(memory),
            error: Mutex::new(None),
            end: Mutex::new(None),
            span: tracing::info_span!(
                "query",
                protocol = protocol.as_str(),
                database,
                rows = tracing::field::Empty,
                bytes = tracing::field::Empty,
            ),
        });
        metrics::gauge!("ferrite_queries_running").increment(1.0);
        self.inner
            .lock()
            .running
            .insert(entry.query_id, Arc::clone(&entry));
        Tracker(Arc::new(TrackerInner {
            entry,
            log: Arc::clone(self),
        }))
    }

    /// Every running query, then the finished ones, oldest first.
    pub fn snapshot(&self) -> Vec<QueryRecord> {
        let inner = self.inner.lock();
        let mut running: Vec<QueryRecord> = inner.running.values().map(|e| e.record()).collect();
        running.sort_by_key(|r| r.start_time);
        running.extend(inner.finished.iter().cloned());
        running
    }

    fn finish(&self, entry: &Entry, outcome: Outcome) {
        let record = {
            let mut end = entry.end.lock();
            if end.is_some() {
                return;
            }
            *end = Some(End {
                duration: entry.started.elapsed(),
                outcome,
            });
            drop(end);
            entry.record()
        };
        let protocol = entry.protocol.as_str();
        metrics::counter!("ferrite_queries_total", "protocol" => protocol, "outcome" => outcome.as_str())
            .increment(1);
        metrics::histogram!("ferrite_query_duration_seconds", "protocol" => protocol)
            .record(record.duration.as_secs_f64());
        metrics::gauge!("ferrite_queries_running").decrement(1.0);
        entry.span.record("rows", record.rows);
        entry
            .span
            .record("bytes", entry.bytes.load(Ordering::Relaxed));
        let mut inner = self.inner.lock();
        inner.running.remove(&entry.query_id);
        if self.capacity == 0 {
            return;
        }
        while inner.finished.len() >= self.capacity {
            inner.finished.pop_front();
        }
        inner.finished.push_back(record);
    }
}

/// What the log knows of one query.
#[derive(Debug)]
struct Entry {
    query_id: uuid::Uuid,
    query_text: String,
    database_name: String,
    protocol: Protocol,
    start_time: DateTime<Utc>,
    started: Instant,
    rows: AtomicU64,
    bytes: AtomicU64,
    pool: Arc<QueryPool>,
    error: Mutex<Option<String>>,
    end: Mutex<Option<End>>,
    span: tracing::Span,
}

#[derive(Debug, Clone)]
struct End {
    duration: Duration,
    outcome: Outcome,
}

impl Entry {
    fn record(&self) -> QueryRecord {
        let end = self.end.lock().clone();
        let (duration, status) = match &end {
            Some(end) => (end.duration, end.outcome.status()),
            None => (self.started.elapsed(), QueryStatus::Running),
        };
        QueryRecord {
            query_id: self.query_id,
            query_text: self.query_text.clone(),
            database_name: self.database_name.clone(),
            protocol: self.protocol.as_str().to_string(),
            start_time: self.start_time,
            duration,
            rows: self.rows.load(Ordering::Relaxed),
            peak_memory_bytes: self.pool.peak() as u64,
            status,
            error: self.error.lock().clone(),
        }
    }
}

/// A running query's handle: counts what it returns and records how it ends. Clones share
/// one query; when the last is dropped without [`Tracker::finish`] or [`Tracker::fail`], the
/// query was cancelled.
#[derive(Debug, Clone)]
pub struct Tracker(Arc<TrackerInner>);

#[derive(Debug)]
struct TrackerInner {
    entry: Arc<Entry>,
    log: Arc<QueryLog>,
}

impl Drop for TrackerInner {
    fn drop(&mut self) {
        self.log.finish(&self.entry, Outcome::Cancelled);
    }
}

impl Tracker {
    /// The query's id.
    pub fn query_id(&self) -> uuid::Uuid {
        self.0.entry.query_id
    }

    /// The `query` span: planning and execution run inside it.
    pub fn span(&self) -> &tracing::Span {
        &self.0.entry.span
    }

    /// The memory pool the query's operators draw on: the engine's, counted per query.
    pub(crate) fn memory_pool(&self) -> Arc<dyn MemoryPool> {
        Arc::clone(&self.0.entry.pool) as Arc<dyn MemoryPool>
    }

    /// A reservation in the query's memory pool, for memory it holds outside DataFusion's
    /// operators (a result collected for an HTTP response).
    pub fn reservation(&self, name: &str) -> MemoryReservation {
        datafusion::execution::memory_pool::MemoryConsumer::new(name).register(&self.memory_pool())
    }

    /// Rows handed to the client.
    pub fn add_rows(&self, rows: usize) {
        self.0.entry.rows.fetch_add(rows as u64, Ordering::Relaxed);
        metrics::counter!("ferrite_query_rows_total").increment(rows as u64);
    }

    /// Bytes sent to the client.
    pub fn add_bytes(&self, bytes: usize) {
        self.0
            .entry
            .bytes
            .fetch_add(bytes as u64, Ordering::Relaxed);
        metrics::counter!("ferrite_query_bytes_total").increment(bytes as u64);
    }

    /// The client has every result.
    pub fn finish(&self) {
        self.0.log.finish(&self.0.entry, Outcome::Ok);
    }

    /// The query failed with `error`.
    pub fn fail(&self, error: &QueryError) {
        let mut slot = self.0.entry.error.lock();
        if slot.is_none() && self.0.entry.end.lock().is_none() {
            *slot = Some(error.to_string());
        }
        drop(slot);
        self.0.log.finish(&self.0.entry, Outcome::of(error));
    }
}

/// The engine's memory pool as one query sees it: every reservation passes through to the
/// shared pool (whose limit applies to all queries together), and this query's share and its
/// peak are counted on the way.
#[derive(Debug)]
pub(crate) struct QueryPool {
    inner: Arc<dyn MemoryPool>,
    reserved: AtomicUsize,
    peak: AtomicUsize,
}

impl QueryPool {
    fn new(inner: Arc<dyn MemoryPool>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            reserved: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
        })
    }

    fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }

    fn grown(&self, additional: usize) {
        let now = self.reserved.fetch_add(additional, Ordering::Relaxed) + additional;
        self.peak.fetch_max(now, Ordering::Relaxed);
        self.publish();
    }

    fn publish(&self) {
        metrics::gauge!("ferrite_query_memory_pool_bytes").set(self.inner.reserved() as f64);
    }
}

impl std::fmt::Display for QueryPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (this query: {} bytes)",
            self.inner,
            self.reserved.load(Ordering::Relaxed)
        )
    }
}

impl MemoryPool for QueryPool {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn register(&self, consumer: &datafusion::execution::memory_pool::MemoryConsumer) {
        self.inner.register(consumer);
    }

    fn unregister(&self, consumer: &datafusion::execution::memory_pool::MemoryConsumer) {
        self.inner.unregister(consumer);
    }

    fn grow(&self, reservation: &MemoryReservation, additional: usize) {
        self.inner.grow(reservation, additional);
        self.grown(additional);
    }

    fn shrink(&self, reservation: &MemoryReservation, shrink: usize) {
        self.inner.shrink(reservation, shrink);
        self.reserved.fetch_sub(shrink, Ordering::Relaxed);
        self.publish();
    }

    fn try_grow(&self, reservation: &MemoryReservation, additional: usize) -> DfResult<()> {
        self.inner.try_grow(reservation, additional)?;
        self.grown(additional);
        Ok(())
    }

    fn reserved(&self) -> usize {
        self.inner.reserved()
    }

    fn memory_limit(&self) -> MemoryLimit {
        self.inner.memory_limit()
    }
}

#[cfg(test)]
mod tests {
    use datafusion::execution::memory_pool::{MemoryConsumer, UnboundedMemoryPool};

    use super::*;

    fn pool() -> Arc<dyn MemoryPool> {
        Arc::new(UnboundedMemoryPool::default())
    }

    #[test]
    fn the_log_keeps_every_running_query_and_only_the_last_finished_ones() {
        let log = QueryLog::new(3);
        let running = log.start(Protocol::Http, "db", "SELECT 'still running'", pool());
        for i in 0..5 {
            let t = log.start(Protocol::FlightSql, "db", &format!("SELECT {i}"), pool());
            t.add_rows(i);
            t.finish();
        }
        let texts: Vec<(String, QueryStatus)> = log
            .snapshot()
            .into_iter()
            .map(|r| (r.query_text, r.status))
            .collect();
        assert_eq!(
            texts,
            vec![
                ("SELECT 'still running'".to_string(), QueryStatus::Running),
                ("SELECT 2".to_string(), QueryStatus::Ok),
                ("SELECT 3".to_string(), QueryStatus::Ok),
                ("SELECT 4".to_string(), QueryStatus::Ok),
            ]
        );
        drop(running);
        let last = log.snapshot().pop().unwrap();
        assert_eq!(last.query_text, "SELECT 'still running'");
        assert_eq!(last.status, QueryStatus::Cancelled, "dropped unfinished");
        assert_eq!(log.snapshot().len(), 3, "still bounded");
    }

    #[test]
    fn a_query_ends_once_with_its_first_outcome() {
        let log = QueryLog::new(10);
        let t = log.start(Protocol::Flight, "db", "SELECT 1", pool());
        let clone = t.clone();
        t.add_rows(2);
        clone.add_rows(3);
        t.fail(&QueryError::Internal("boom".into()));
        clone.finish();
        drop((t, clone));
        let records = log.snapshot();
        assert_eq!(records.len(), 1);
        let r = &records[0];
        assert_eq!(r.status, QueryStatus::Error);
        assert_eq!(r.error.as_deref(), Some("internal error: boom"));
        assert_eq!(r.rows, 5);
        assert_eq!(r.protocol, "flight");
    }

    #[test]
    fn peak_memory_is_the_most_the_query_held_at_once() {
        let log = QueryLog::new(10);
        let t = log.start(Protocol::Http, "db", "SELECT 1", pool());
        let reservation = MemoryConsumer::new("test").register(&t.memory_pool());
        reservation.try_grow(100).unwrap();
        reservation.shrink(60);
        reservation.try_grow(30).unwrap();
        drop(reservation);
        t.finish();
        assert_eq!(log.snapshot()[0].peak_memory_bytes, 100);
    }
}
