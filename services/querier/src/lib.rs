//! ferrite's querier: SQL over persisted Parquet files and the ingesters' unpersisted rows,
//! served over HTTP (`/api/v3/query_sql`) and Arrow Flight (IOx tickets and Flight SQL).
//!
//! ```text
//!  HTTP /api/v3/query_sql ──┐                      ┌─► ingesters: unpersisted rows (FIRST)
//!  Flight DoGet(ticket) ────┼─► QueryEngine::sql ──┤
//!  Flight SQL statement ────┘   (DataFusion)       └─► catalog: parquet files (SECOND)
//!                                    │                    └─► object store: Parquet
//!                                    ▼
//!          QuerierTable::scan: time pruning ─► lone files: parquet scan
//!                                          └─► overlapping chunks: Sort ─► DedupExec
//! ```
//!
//! Invariants:
//! - ingesters are asked before the catalog, so a persist racing a query is seen at least
//!   once, and dedup makes "at least once" exactly once;
//! - a later write of a primary key (tags + time) wins field by field, as in ingester
//!   persistence (both use [`ferrite_model::dedup::sort_dedup`]);
//! - user tables live in catalog `public`, schema `iox`, with `information_schema` enabled;
//!   tags leave as plain Utf8 and `time` as Timestamp(ns) on every wire;
//! - SQL has InfluxDB 3's time-series functions (selectors, `date_bin_gapfill`, `locf`,
//!   `interpolate`), installed in every query session by one call (`functions::install`);
//! - every query runs under the engine's limits: it holds a concurrency slot until its stream
//!   ends, its operators (and an HTTP result being collected) draw on one shared memory pool,
//!   and its plan is stopped at the deadline or when its stream is dropped (joins yield to the
//!   scheduler, so even a join that emits without end notices);
//! - Flight SQL handles and tickets are self-contained (database, SQL, bound parameters), so
//!   no call depends on state kept by an earlier one;
//! - every client query is in the query log from arrival to its last batch (running, then
//!   ok / error / cancelled), which feeds `system.queries` and the query metrics;
//! - the `system` schema (cluster state as tables) is in every session, and only the admin
//!   may read it;
//! - errors map to HTTP and gRPC status in one place ([`QueryError::http_status`],
//!   [`QueryError::grpc_code`]), with no catch-all arm.

mod cache_table;
mod cluster;
mod cooperate;
mod dedup;
mod engine;
mod error;
mod file_cache;
mod file_list;
mod flight;
mod functions;
mod http;
pub mod influxql;
pub mod merge;
mod params;
mod plan_cache;
mod query_log;
mod system;
mod table;
mod time_range;

pub use cluster::{QUERIES_ACTION, QuerierCluster};
pub use engine::{
    CATALOG_NAME, DEFAULT_FILE_CACHE_BYTES, OBJECT_STORE_URL, QuerierConfig, QueryEngine,
    QueryRequest, RunningQuery, SCHEMA_NAME,
};
pub use error::{QueryError, Result};
pub use file_cache::DiskCacheConfig;
pub use flight::{FlightQueryService, database_from_metadata, flight_service};
pub use http::http_routes;
pub use params::QueryParams;
pub use query_log::{
    DEFAULT_QUERY_LOG_CAPACITY, Protocol, QueryLog, QueryRecord, QueryStatus, Tracker,
};
pub use system::SYSTEM_SCHEMA;
pub use time_range::TimeRange;

/// Adds ferrite's SQL functions to a DataFusion session being built, as every query session
/// gets them. Public only for the benchmarks (`benches/selectors.rs`), which cannot reach the
/// crate-private `functions::install`.
#[doc(hidden)]
pub fn install_functions(
    builder: datafusion::execution::session_state::SessionStateBuilder,
) -> datafusion::execution::session_state::SessionStateBuilder {
    functions::install(builder)
}
