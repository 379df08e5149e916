//! The Prometheus side: one recorder per process behind the `metrics` facade, every family
//! described up front (so `/metrics` lists them before their first sample), and the
//! `GET /metrics` handler.
//!
//! Labels stay bounded: outcomes, reasons, operations, endpoints, gRPC methods and ingester
//! addresses; never a database or table name.

use std::sync::OnceLock;
use std::time::Duration;

use anyhow::Context as _;
use axum::http::header;
use axum::response::IntoResponse;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Latency buckets in seconds, from a buffered write (sub-millisecond) to a long query.
const SECONDS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
static PROCESS: OnceLock<metrics_process::Collector> = OnceLock::new();

#[derive(Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// Which series of a family exist before its first event.
#[derive(Clone, Copy)]
enum Series {
    /// One series without labels, at zero.
    Plain,
    /// Every combination of these labels' values, at zero.
    Known(&'static [(&'static str, &'static [&'static str])]),
    /// Labels only known at run time (addresses, methods): nothing until the first event.
    Runtime,
}

/// A metric family: its name, type, help and which series it starts with.
struct Family {
    name: &'static str,
    kind: Kind,
    help: &'static str,
    series: Series,
}

const fn family(name: &'static str, kind: Kind, help: &'static str) -> Family {
    Family {
        name,
        kind,
        help,
        series: Series::Plain,
    }
}

const fn known(
    name: &'static str,
    kind: Kind,
    help: &'static str,
    labels: &'static [(&'static str, &'static [&'static str])],
) -> Family {
    Family {
        name,
        kind,
        help,
        series: Series::Known(labels),
    }
}

const fn runtime(name: &'static str, kind: Kind, help: &'static str) -> Family {
    Family {
        name,
        kind,
        help,
        series: Series::Runtime,
    }
}

use Kind::{Counter, Gauge, Histogram};

const OPERATIONS: &[&str] = &[
    "put",
    "put_multipart",
    "get",
    "head",
    "delete",
    "list",
    "copy",
    "rename",
];

const PROTOCOLS: &[&str] = &["flight_sql", "flight", "http", "influxql"];

const FAMILIES: &[Family] = &[
    runtime(
        "ferrite_build_info",
        Gauge,
        "Always 1; labels say the version and which service runs.",
    ),
    // Requests, every service.
    runtime(
        "ferrite_http_requests_total",
        Counter,
        "HTTP requests answered, by endpoint class and status code.",
    ),
    runtime(
        "ferrite_http_request_duration_seconds",
        Histogram,
        "Time from an HTTP request to its response headers, by endpoint class.",
    ),
    runtime(
        "ferrite_grpc_requests_total",
        Counter,
        "gRPC calls answered, by method.",
    ),
    runtime(
        "ferrite_grpc_request_duration_seconds",
        Histogram,
        "Time from a gRPC call to its response headers, by method.",
    ),
    // Writes.
    known(
        "ferrite_write_requests_total",
        Counter,
        "Write requests, by outcome (ok, partial, rejected, error).",
        &[("outcome", &["ok", "partial", "rejected", "error"])],
    ),
    family(
        "ferrite_write_lines_total",
        Counter,
        "Line-protocol lines received.",
    ),
    family(
        "ferrite_write_rows_total",
        Counter,
        "Rows accepted and acknowledged.",
    ),
    family(
        "ferrite_write_bytes_total",
        Counter,
        "Write request bodies, in bytes after decompression.",
    ),
    known(
        "ferrite_write_rejected_total",
        Counter,
        "Write requests refused, by reason.",
        &[(
            "reason",
            &[
                "parse",
                "schema",
                "limit",
                "retention",
                "too_large",
                "unauthorized",
                "unavailable",
                "other",
            ],
        )],
    ),
    family(
        "ferrite_write_duration_seconds",
        Histogram,
        "Time to answer a write request.",
    ),
    // Placement.
    runtime(
        "ferrite_router_ingester_writes_total",
        Counter,
        "Writes the router sent to each ingester.",
    ),
    runtime(
        "ferrite_router_ingester_failures_total",
        Counter,
        "Writes to each ingester that failed.",
    ),
    runtime(
        "ferrite_router_ingester_breaker_open",
        Gauge,
        "1 while the router skips an ingester after failures.",
    ),
    // Ingester.
    family(
        "ferrite_ingester_rows_total",
        Counter,
        "Rows buffered by this ingester.",
    ),
    family(
        "ferrite_wal_appends_total",
        Counter,
        "Write-ahead log appends.",
    ),
    family(
        "ferrite_wal_bytes_total",
        Counter,
        "Bytes appended to the write-ahead log.",
    ),
    family(
        "ferrite_wal_fsync_duration_seconds",
        Histogram,
        "Time to fsync the write-ahead log.",
    ),
    family(
        "ferrite_wal_segments",
        Gauge,
        "Write-ahead log segments on disk.",
    ),
    family(
        "ferrite_buffer_bytes",
        Gauge,
        "Bytes of unpersisted data buffered in memory.",
    ),
    family(
        "ferrite_buffer_rows",
        Gauge,
        "Rows of unpersisted data buffered in memory.",
    ),
    family(
        "ferrite_ingester_query_cache_bytes",
        Gauge,
        "Bytes of deduplicated copies of quiet partitions kept for queries.",
    ),
    known(
        "ferrite_persist_total",
        Counter,
        "Partitions persisted, by what triggered it.",
        &[("trigger", &["size", "age", "memory", "shutdown"])],
    ),
    family(
        "ferrite_persist_duration_seconds",
        Histogram,
        "Time to persist one partition: sort, encode, upload, commit.",
    ),
    family(
        "ferrite_persist_files_total",
        Counter,
        "Parquet files written by persists.",
    ),
    family(
        "ferrite_persist_bytes_total",
        Counter,
        "Parquet bytes written by persists.",
    ),
    family(
        "ferrite_persist_rows_total",
        Counter,
        "Rows written to Parquet by persists.",
    ),
    family(
        "ferrite_persist_errors_total",
        Counter,
        "Persist attempts that failed (retried).",
    ),
    // Queries.
    known(
        "ferrite_queries_total",
        Counter,
        "Queries, by protocol and outcome.",
        &[
            ("protocol", PROTOCOLS),
            (
                "outcome",
                &["ok", "error", "cancelled", "timeout", "rejected"],
            ),
        ],
    ),
    known(
        "ferrite_query_duration_seconds",
        Histogram,
        "Time to run a query to its last row, by protocol.",
        &[("protocol", PROTOCOLS)],
    ),
    family(
        "ferrite_query_rows_total",
        Counter,
        "Rows returned to query clients.",
    ),
    family(
        "ferrite_query_bytes_total",
        Counter,
        "Bytes (Arrow) returned to query clients.",
    ),
    family("ferrite_queries_running", Gauge, "Queries running now."),
    family(
        "ferrite_query_slots_waiting",
        Gauge,
        "Queries waiting for a slot.",
    ),
    family(
        "ferrite_query_memory_pool_bytes",
        Gauge,
        "Bytes reserved in the query memory pool.",
    ),
    known(
        "ferrite_query_file_list_requests_total",
        Counter,
        "Table file lists a query needed, by whether a cached list served it.",
        &[("result", &["hit", "miss"])],
    ),
    known(
        "ferrite_query_plan_cache_requests_total",
        Counter,
        "Flight DoGet queries that found the plan their GetFlightInfo made, by whether it \
         was still good (the catalog version unmoved, under 10 s old).",
        &[("result", &["hit", "stale"])],
    ),
    known(
        "ferrite_query_file_cache_requests_total",
        Counter,
        "Parquet file reads through the querier's file cache, by result.",
        &[("result", &["hit", "miss"])],
    ),
    // Catalog.
    known(
        "ferrite_catalog_cache_requests_total",
        Counter,
        "Catalog cache lookups, by result.",
        &[("result", &["hit", "miss"])],
    ),
    family(
        "ferrite_catalog_version",
        Gauge,
        "The catalog version: the catalog service's own, or the last one this process was told of (the difference is the change feed's lag).",
    ),
    // Object store.
    known(
        "ferrite_object_store_requests_total",
        Counter,
        "Object store requests, by operation.",
        &[("operation", OPERATIONS)],
    ),
    known(
        "ferrite_object_store_errors_total",
        Counter,
        "Object store requests that failed, by operation.",
        &[("operation", OPERATIONS)],
    ),
    known(
        "ferrite_object_store_request_duration_seconds",
        Histogram,
        "Object store request latency, by operation.",
        &[("operation", OPERATIONS)],
    ),
    known(
        "ferrite_object_store_bytes_total",
        Counter,
        "Bytes read from and written to the object store.",
        &[("direction", &["read", "write"])],
    ),
    // Compactor.
    family(
        "ferrite_compactor_active",
        Gauge,
        "1 while this compactor holds the lease.",
    ),
    known(
        "ferrite_compactor_rounds_total",
        Counter,
        "Compaction rounds, by outcome.",
        &[("outcome", &["ok", "conflict", "error", "skipped"])],
    ),
    family(
        "ferrite_compactor_files_in_total",
        Counter,
        "Files merged by compaction rounds.",
    ),
    family(
        "ferrite_compactor_files_out_total",
        Counter,
        "Files written by compaction rounds.",
    ),
    family(
        "ferrite_compactor_bytes_in_total",
        Counter,
        "Bytes read by compaction rounds.",
    ),
    family(
        "ferrite_compactor_bytes_out_total",
        Counter,
        "Bytes written by compaction rounds.",
    ),
    family(
        "ferrite_compactor_skipped_partitions",
        Gauge,
        "Partitions the compactor skips (too large or failing).",
    ),
    family(
        "ferrite_compactor_deleted_files_total",
        Counter,
        "Objects deleted by retention and garbage collection.",
    ),
];

/// Install the process's recorder (once; later calls keep the first) and describe every
/// family for `service`.
pub(crate) fn install(service: &str) -> anyhow::Result<()> {
    if HANDLE.get().is_some() {
        return Ok(());
    }
    let handle = PrometheusBuilder::new()
        .set_buckets(SECONDS)
        .context("histogram buckets")?
        .install_recorder()
        .context("installing the metrics recorder")?;
    let _ = HANDLE.set(handle.clone());
    // Histogram samples pile up between scrapes; fold them in even when nobody scrapes.
    std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || {
            loop {
                std::thread::sleep(Duration::from_secs(5));
                handle.run_upkeep();
            }
        })
        .context("starting the metrics upkeep thread")?;
    describe();
    let process = PROCESS.get_or_init(metrics_process::Collector::default);
    process.describe();
    process.collect();
    metrics::gauge!("ferrite_build_info", "version" => env!("CARGO_PKG_VERSION"), "service" => service.to_owned())
        .set(1.0);
    Ok(())
}

fn describe() {
    for f in FAMILIES {
        match f.kind {
            Counter => metrics::describe_counter!(f.name, f.help),
            Gauge => metrics::describe_gauge!(f.name, f.help),
            Histogram => metrics::describe_histogram!(f.name, f.help),
        }
        let dims: &[(&str, &[&str])] = match f.series {
            Series::Runtime => continue,
            Series::Plain => &[],
            Series::Known(dims) => dims,
        };
        for labels in combinations(dims) {
            match f.kind {
                Counter => metrics::counter!(f.name, &labels).increment(0),
                Gauge => metrics::gauge!(f.name, &labels).increment(0.0),
                Histogram => {
                    let _ = metrics::histogram!(f.name, &labels);
                }
            }
        }
    }
}

/// Every combination of the dimensions' values (one empty set for no dimensions).
fn combinations(
    dims: &[(&'static str, &'static [&'static str])],
) -> Vec<Vec<(&'static str, &'static str)>> {
    dims.iter().fold(vec![Vec::new()], |sets, (label, values)| {
        sets.iter()
            .flat_map(|set| {
                values.iter().map(move |v| {
                    let mut next = set.clone();
                    next.push((*label, *v));
                    next
                })
            })
            .collect()
    })
}

/// The Prometheus text exposition of everything recorded in this process.
pub fn render() -> String {
    if let Some(p) = PROCESS.get() {
        p.collect();
    }
    HANDLE
        .get()
        .map(PrometheusHandle::render)
        .unwrap_or_default()
}

/// `GET /metrics`.
pub async fn handler() -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        render(),
    )
}

/// Every family's name (for tests and docs).
pub fn family_names() -> impl Iterator<Item = &'static str> {
    FAMILIES.iter().map(|f| f.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_combinations_cover_every_pair() {
        let sets = combinations(&[("a", &["1", "2"]), ("b", &["x", "y", "z"])]);
        assert_eq!(sets.len(), 6);
        assert!(sets.contains(&vec![("a", "2"), ("b", "z")]));
        assert_eq!(combinations(&[]), vec![Vec::new()]);
    }

    #[test]
    fn family_names_follow_prometheus_conventions() {
        for f in FAMILIES {
            assert!(f.name.starts_with("ferrite_"), "{}", f.name);
            match f.kind {
                Counter => assert!(f.name.ends_with("_total"), "{}", f.name),
                Histogram => assert!(f.name.ends_with("_seconds"), "{}", f.name),
                Gauge => assert!(!f.name.ends_with("_total"), "{}", f.name),
            }
        }
    }
}
