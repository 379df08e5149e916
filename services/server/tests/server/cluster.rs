//! The cluster of real processes: PostgreSQL, MinIO, catalog, routers, ingesters, querier.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ferrite_testkit::cluster::{ClusterOptions, TestCluster};

use super::{binary, count};

async fn write(url: &str, db: &str, body: String) -> reqwest::Response {
    crate::client()
        .post(format!("{url}/api/v2/write?bucket={db}"))
        .body(body)
        .send()
        .await
        .unwrap()
}

/// `rows` lines of `table`, one per day starting at day 0, so they spread over partitions.
fn daily_lines(table: &str, rows: i64) -> String {
    (0..rows)
        .map(|d| {
            format!(
                "{table},host=h{} v={d}i {}\n",
                d % 3,
                d * 86_400_000_000_000 + 1
            )
        })
        .collect()
}

fn wal_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir.join("wal"))
        .map(|it| {
            it.flatten()
                .map(|e| e.metadata().map_or(0, |m| m.len()))
                .sum()
        })
        .unwrap_or(0)
}

/// Every Parquet file the catalog lists.
pub(crate) async fn catalog_files(dsn: &str) -> Vec<ferrite_catalog::ParquetFile> {
    let catalog = ferrite_catalog::SqlCatalog::connect(dsn).await.unwrap();
    let dbs = ferrite_catalog::Catalog::list_databases(&catalog)
        .await
        .unwrap();
    let mut files = Vec::new();
    for db in dbs {
        for t in ferrite_catalog::Catalog::list_tables(&catalog, db.id)
            .await
            .unwrap()
        {
            files.extend(
                ferrite_catalog::Catalog::parquet_files(&catalog, t.id)
                    .await
                    .unwrap(),
            );
        }
    }
    files
}

async fn catalog_file_count(dsn: &str) -> i64 {
    catalog_files(dsn).await.len() as i64
}

/// Rows in the catalog's files (each row is in one file unless a test writes a key twice).
async fn catalog_persisted_rows(dsn: &str) -> i64 {
    catalog_files(dsn)
        .await
        .iter()
        .map(|f| f.params.row_count)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_spread_over_ingesters_and_queries_see_buffered_and_persisted_rows() {
    let mut c = TestCluster::start(binary(), crate::cluster_options())
        .await
        .unwrap();
    let url = c.url();
    let r = write(&url, "spread", daily_lines("m", 60)).await;
    assert_eq!(r.status(), 204, "{}", r.text().await.unwrap());
    for (i, ing) in c.ingesters.iter().enumerate() {
        assert!(
            wal_bytes(ing.data_dir()) > 0,
            "ingester {i} got a share of the 60 daily partitions"
        );
    }
    assert_eq!(
        count(&url, "spread", "SELECT count(*) AS n FROM m").await,
        60
    );

    // Ingester 0 drains: its partitions become Parquet in MinIO and rows in PostgreSQL.
    c.ingesters[0].terminate().unwrap();
    let objects = c.s3.list(&c.bucket).await.unwrap();
    assert!(
        objects
            .iter()
            .any(|o| o.location.as_ref().ends_with(".parquet")),
        "{objects:?}"
    );
    assert_eq!(
        catalog_file_count(&c.catalog_dsn).await as usize,
        objects.len()
    );
    c.ingesters[0].restart().await.unwrap();
    // Persisted (ingester 0) and buffered (ingester 1) rows together, each once.
    assert_eq!(
        count(&url, "spread", "SELECT count(*) AS n FROM m").await,
        60
    );
    assert_eq!(
        count(&url, "spread", "SELECT sum(v) AS n FROM m").await,
        (0..60).sum::<i64>()
    );
    // Read-your-writes right after a write, through the router's proxy.
    let r = write(&url, "spread", "m,host=new v=1000i 5\n".to_string()).await;
    assert_eq!(r.status(), 204);
    assert_eq!(
        count(&url, "spread", "SELECT count(*) AS n FROM m").await,
        61
    );
}

/// Writers post 200-line batches with unique keys until stopped; returns (acknowledged rows,
/// refused requests and their statuses).
async fn steady_writes(url: String, db: &'static str, stop: Arc<AtomicBool>) -> (i64, Vec<u16>) {
    let client = crate::client();
    let (mut acked, mut refused) = (0i64, Vec::new());
    while !stop.load(Ordering::SeqCst) {
        let body: String = (acked..acked + 200)
            .map(|i| format!("load,writer=a seq={i}i {}\n", i * 1_000_000_000))
            .collect();
        match client
            .post(format!("{url}/api/v2/write?bucket={db}"))
            .body(body)
            .send()
            .await
        {
            Ok(r) if r.status() == 204 => acked += 200,
            Ok(r) => {
                refused.push(r.status().as_u16());
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("router unreachable: {e}"),
        }
    }
    (acked, refused)
}

async fn kill_one_ingester_under_load(replication: usize) -> (i64, Vec<u16>, TestCluster) {
    let opts = ClusterOptions {
        replication,
        ..crate::cluster_options()
    };
    let mut c = TestCluster::start(binary(), opts).await.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn(steady_writes(c.url(), "load", Arc::clone(&stop)));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    c.ingesters[0].kill9().unwrap();
    tokio::time::sleep(Duration::from_millis(2000)).await;
    stop.store(true, Ordering::SeqCst);
    let (acked, refused) = writer.await.unwrap();
    c.ingesters[0].restart().await.unwrap();
    (acked, refused, c)
}

/// Every acknowledged row (seq below `acked`) is there, and nothing else is.
async fn assert_every_acked_row_once(c: &TestCluster, acked: i64, what: &str) {
    let url = c.url();
    assert_eq!(
        count(
            &url,
            "load",
            &format!("SELECT count(*) AS n FROM load WHERE seq < {acked}")
        )
        .await,
        acked
    );
    assert_eq!(
        count(&url, "load", "SELECT count(*) AS n FROM load").await,
        acked,
        "{what}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_of_an_ingester_with_replication_2_loses_no_write() {
    let (acked, refused, c) = kill_one_ingester_under_load(2).await;
    assert!(
        refused.is_empty(),
        "with a second replica every write succeeds: {refused:?}"
    );
    assert_every_acked_row_once(&c, acked, "exactly once").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_of_an_ingester_with_replication_1_moves_writes_after_few_retryable_failures() {
    let (acked, refused, c) = kill_one_ingester_under_load(1).await;
    assert!(
        refused.len() <= 3,
        "at most a few failed requests: {refused:?}"
    );
    assert!(
        refused.iter().all(|&s| s == 503),
        "each failure is retryable: {refused:?}"
    );
    assert_every_acked_row_once(&c, acked, "exactly once after WAL replay").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn catalog_and_postgres_outages_keep_known_writes_and_recover() {
    let mut c = TestCluster::start(binary(), crate::cluster_options())
        .await
        .unwrap();
    let url = c.url();
    assert_eq!(
        write(&url, "outage", "cpu,host=a v=1 1\n".into())
            .await
            .status(),
        204
    );

    // The catalog service goes away.
    c.catalog.kill9().unwrap();
    assert_eq!(
        write(&url, "outage", "cpu,host=b v=2 2\n".into())
            .await
            .status(),
        204,
        "known schema needs no catalog"
    );
    let r = write(&url, "outage", "cpu,host=c v=3,new_field=1i 3\n".into()).await;
    assert_eq!(
        r.status(),
        503,
        "new schema is retryable while the catalog is down"
    );
    assert!(r.headers().contains_key("retry-after"));
    c.catalog.restart().await.unwrap();
    eventually(|| async {
        write(&url, "outage", "cpu,host=c v=3,new_field=1i 3\n".into())
            .await
            .status()
            == 204
    })
    .await;

    // PostgreSQL goes away under the catalog service.
    let pg = &c.postgres;
    tokio::task::block_in_place(|| pg.stop()).unwrap();
    assert_eq!(
        write(&url, "outage", "cpu,host=d v=4 4\n".into())
            .await
            .status(),
        204
    );
    assert_eq!(
        write(&url, "outage", "disk,host=d used=1i 4\n".into())
            .await
            .status(),
        503
    );
    tokio::task::block_in_place(|| pg.start_again()).unwrap();
    eventually(|| async {
        write(&url, "outage", "disk,host=d used=1i 4\n".into())
            .await
            .status()
            == 204
    })
    .await;
    assert_eq!(
        count(&url, "outage", "SELECT count(*) AS n FROM cpu").await,
        4
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn schema_created_through_one_router_is_usable_through_another_within_a_second() {
    let opts = ClusterOptions {
        routers: 2,
        ..crate::cluster_options()
    };
    let c = TestCluster::start(binary(), opts).await.unwrap();
    let (a, b) = (c.routers[0].url(), c.routers[1].url());
    // Router b caches the database first, then a adds a column.
    assert_eq!(
        write(&b, "shared", "cpu,host=x v=1 1\n".into())
            .await
            .status(),
        204
    );
    assert_eq!(
        write(&a, "shared", "cpu,host=x v=1,extra=2i 2\n".into())
            .await
            .status(),
        204
    );
    let started = Instant::now();
    assert_eq!(
        write(&b, "shared", "cpu,host=y extra=3i 3\n".into())
            .await
            .status(),
        204
    );
    assert!(started.elapsed() < Duration::from_secs(1));
    // A conflicting type through the other router is refused with the catalog's type.
    let r = write(&b, "shared", "cpu,host=y extra=3.5 4\n".into()).await;
    assert_eq!(r.status(), 400);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("column 'extra' is integer in table 'cpu', got float")
    );
    assert_eq!(
        count(&a, "shared", "SELECT count(extra) AS n FROM cpu").await,
        2
    );
}

async fn eventually<F, Fut>(check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    eventually_within(Duration::from_secs(30), check).await;
}

async fn eventually_within<F, Fut>(limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(
            Instant::now() < deadline,
            "condition not reached in {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Rows written while the catalog database and object store are down.
const LATE_ROWS: i64 = 200_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_ingester_whose_catalog_database_and_object_store_are_down_backs_off_and_recovers() {
    let opts = ClusterOptions {
        ingesters: 1,
        persist_age_seconds: 1,
        ..crate::cluster_options()
    };
    let c = TestCluster::start(binary(), opts).await.unwrap();
    let url = c.url();
    assert_eq!(
        write(&url, "idle", daily_lines("m", 20)).await.status(),
        204
    );
    let every_column = "m,host=h0 v=0i,u=0.5,w=\"0\" 2592000000000000\n"; // day 30
    assert_eq!(write(&url, "idle", every_column.into()).await.status(), 204);
    eventually(|| async { catalog_file_count(&c.catalog_dsn).await == 21 }).await;

    // Both go away; the schema is known, so writes are still taken, and the partitions they
    // fill fail to persist from then on.
    let (pg, s3) = (&c.postgres, &c.s3);
    tokio::task::block_in_place(|| {
        pg.stop()?;
        s3.stop()
    })
    .unwrap();
    // Two big partitions: re-encoding them on every attempt would show in the CPU use.
    for chunk in 0..(LATE_ROWS / 10_000) {
        let lines: String = (chunk * 10_000..(chunk + 1) * 10_000)
            .map(|i| {
                let day = i % 2;
                format!(
                    "m,host=late{} v={i}i,u={}.5,w=\"{}\" {}\n",
                    i % 1000,
                    i % 97,
                    i % 13,
                    day * 86_400_000_000_000 + i * 1000
                )
            })
            .collect();
        assert_eq!(write(&url, "idle", lines).await.status(), 204);
    }

    let ingester = &c.ingesters[0];
    // Long enough for each partition's one encoding to be done before the measurement.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let before = ingester.cpu_time().unwrap();
    tokio::time::sleep(Duration::from_secs(20)).await;
    let used = ingester.cpu_time().unwrap() - before;
    assert!(
        used < Duration::from_secs(1),
        "retrying persistence for 20 s used {used:?} of CPU (limit: 5 % of a core)"
    );
    let log = ingester.log();
    assert!(
        log.contains("persist failed"),
        "the ingester was retrying: {log}"
    );
    let lines = log.lines().filter(|l| l.contains("persist failed")).count();
    assert!(
        lines <= 2,
        "repeated failures are logged at a bounded rate, got {lines} lines"
    );

    tokio::task::block_in_place(|| pg.start_again()).unwrap();
    s3.start_again().await.unwrap();
    // The longest pause between attempts is 10 s before jitter (object_store's own S3
    // retries add theirs): recovery takes seconds, not a restart.
    let recovery = Duration::from_secs(90);
    eventually_within(recovery, || async {
        ingester.log().contains("persisting works again")
    })
    .await;
    // Everything persisted, in however many files the retries' snapshots made (at least one
    // per partition: more when writes were still arriving as the first attempts began).
    eventually_within(recovery, || async {
        catalog_persisted_rows(&c.catalog_dsn).await == 21 + LATE_ROWS
    })
    .await;
    assert!(catalog_file_count(&c.catalog_dsn).await >= 23);
    assert_eq!(
        count(&url, "idle", "SELECT count(*) AS n FROM m").await,
        21 + LATE_ROWS
    );
}
