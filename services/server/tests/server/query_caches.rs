//! What queries reuse (the file list, Parquet bytes and metadata, the schema) never hides a
//! change: a write, a persist, a compaction round and
//! a deleted table each show in the very next query. Every query while the change happens is
//! checked too: a stale file list would miss persisted rows or count compacted ones twice.

use std::time::{Duration, Instant};

use ferrite_testkit::cluster::{ClusterOptions, TestCluster};
use ferrite_testkit::server::FerriteServer;
use serde_json::Value;

use super::{ADMIN_TOKEN, binary};

const DB: &str = "stale";

async fn write(url: &str, body: &str) {
    let r = crate::client()
        .post(format!("{url}/api/v2/write?bucket={DB}&precision=ns"))
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204, "{}", r.text().await.unwrap());
}

/// (rows, sum of v) of `m`.
async fn answer(url: &str) -> (i64, i64) {
    let rows = super::system_tables::query_as(
        &crate::client(),
        url,
        DB,
        "SELECT count(*) AS n, sum(v) AS s FROM m",
    )
    .await
    .unwrap_or_else(|(s, e)| panic!("{s} {e}"));
    (
        rows[0]["n"].as_i64().unwrap(),
        rows[0]["s"].as_i64().unwrap_or(0),
    )
}

/// `m`'s files per compaction level (from the management API).
async fn levels(url: &str) -> Vec<i64> {
    let partitions: Vec<Value> = crate::client()
        .get(format!("{url}/api/v0/partitions?db={DB}&table=m"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut files = vec![0; 3];
    for p in &partitions {
        for l in p["levels"].as_array().unwrap() {
            files[l["level"].as_u64().unwrap() as usize] += l["files"].as_i64().unwrap();
        }
    }
    files
}

/// Query until `done`, every answer meanwhile `expected`.
async fn querying_until(url: &str, expected: (i64, i64), what: &str, done: impl AsyncFn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert_eq!(answer(url).await, expected, "while waiting for {what}");
        if done().await {
            break;
        }
        assert!(Instant::now() < deadline, "{what} did not happen");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(answer(url).await, expected, "right after {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn serve_shows_a_write_a_persist_a_compaction_and_a_deleted_table_in_the_next_query() {
    let server = FerriteServer::start(
        binary(),
        &[
            "--admin-token",
            ADMIN_TOKEN,
            "--persist-age-seconds",
            "1",
            "--compaction-interval-seconds",
            "1",
            "--compaction-l0-trigger-files",
            "2",
            "--gc-grace-seconds",
            "1",
        ],
    )
    .await
    .unwrap();
    changes_show_in_the_next_query(&server.url(), Duration::ZERO).await;
}

/// In a cluster the querier learns of catalog changes through the change feed, a moment
/// later: a persist must still show at once, through the ingester's persist count.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cluster_shows_a_write_a_persist_a_compaction_and_a_deleted_table_in_the_next_query() {
    let cluster = TestCluster::start(
        binary(),
        ClusterOptions {
            ingesters: 1,
            persist_age_seconds: 1,
            compactors: 1,
            compactor_args: [
                "--compaction-interval-seconds=0.5",
                "--compaction-l0-trigger-files=2",
                "--gc-grace-seconds=1",
            ]
            .map(String::from)
            .to_vec(),
            ..crate::cluster_options()
        },
    )
    .await
    .unwrap();
    changes_show_in_the_next_query(&cluster.url(), Duration::from_secs(1)).await;
}

/// The changes, each checked in the next query; a deleted table within `feed_lag`.
async fn changes_show_in_the_next_query(url: &str, feed_lag: Duration) {
    let url = url.to_string();
    let buffered = || async {
        let rows = super::system_tables::query_as(
            &crate::client(),
            &url,
            DB,
            "SELECT sum(buffered_rows) AS n FROM system.ingesters",
        )
        .await
        .unwrap();
        rows[0]["n"].as_i64().unwrap_or(0)
    };

    // A write, then one replacing a point, each in the next query. (The ingester's
    // deduplicated copy of a quiet partition has its own test in the ingester's suite.)
    write(&url, "m,k=a v=1i 1\nm,k=b v=2i 2").await;
    assert_eq!(answer(&url).await, (2, 3));
    write(&url, "m,k=a v=10i 1\nm,k=c v=5i 3").await;
    assert_eq!(answer(&url).await, (3, 17));

    // The persist: the rows leave the buffer for a file, and no query misses them.
    querying_until(&url, (3, 17), "the persist", async || {
        buffered().await == 0 && levels(&url).await[0] == 1
    })
    .await;

    // A second file for the same partition, then the compaction round that merges both
    // (and the garbage collection that deletes their objects a second later).
    write(&url, "m,k=b v=20i 2").await;
    assert_eq!(answer(&url).await, (3, 35));
    querying_until(&url, (3, 35), "the compaction round", async || {
        let files = levels(&url).await;
        files[0] == 0 && files[1] + files[2] >= 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        answer(&url).await,
        (3, 35),
        "after the old files' objects are gone"
    );

    // A deleted table is gone (at once in `serve`; a cluster's querier and router learn of it
    // through the catalog's change feed, which pushes the catalog service's own commits at
    // once); a new table of the same name starts empty.
    let r = crate::client()
        .delete(format!("{url}/api/v0/databases/{DB}/tables/m"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let deadline = Instant::now() + feed_lag;
    let body = loop {
        match super::system_tables::query_as(&crate::client(), &url, DB, "SELECT * FROM m").await {
            Err((400, body)) => break body,
            Err((status, body)) => panic!("{status} {body}"),
            Ok(rows) => assert!(
                Instant::now() < deadline,
                "the deleted table still answers: {rows:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert!(body.contains("not found"), "{body}");
    write(&url, "m,k=z v=7i 9").await;
    assert_eq!(answer(&url).await, (1, 7));
}

/// The disk tier of the Parquet file cache outlives a restart: after one, the querier reads
/// the files it cached from its local disk, not the object store. The store's copies are
/// damaged while the server is down, so a right answer can only come from the disk tier.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restarted_serve_reads_cached_files_from_its_disk_tier() {
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = cache_dir.path().join("files");
    let mut server = FerriteServer::start(
        binary(),
        &[
            "--admin-token",
            ADMIN_TOKEN,
            "--query-file-cache-dir",
            cache.to_str().unwrap(),
        ],
    )
    .await
    .unwrap();
    let url = server.url();
    write(&url, "m,k=a v=1i 1000\nm,k=b v=2i 2000\n").await;
    // SIGTERM persists everything; the restarted server's first query reads the file once.
    server.terminate().unwrap();
    server.restart().await.unwrap();
    assert_eq!(answer(&url).await, (2, 3));
    let cached: Vec<_> = std::fs::read_dir(&cache).unwrap().collect();
    assert_eq!(cached.len(), 1, "one file cached: {cached:?}");

    server.terminate().unwrap();
    let objects = server.data_dir().join("objects");
    let mut damaged = 0;
    for entry in walk(&objects) {
        if entry.extension().is_some_and(|e| e == "parquet") {
            std::fs::write(&entry, b"PAR1 not parquet PAR1").unwrap();
            damaged += 1;
        }
    }
    assert_eq!(damaged, 1);
    server.restart().await.unwrap();
    assert_eq!(answer(&url).await, (2, 3));
    let metrics = crate::client()
        .get(format!("{url}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.lines().any(
            |l| l.starts_with("ferrite_query_file_cache_requests_total{")
                && l.contains("result=\"disk\"")
        ),
        "{metrics}"
    );
}

/// Every file under `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![];
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
