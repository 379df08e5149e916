//! The object store under a real `ferrite serve`: one behaviour run on a local directory and
//! on a real S3 server (MinIO, installed by `deploy/dev/install-minio.sh`, started by
//! `ferrite_testkit::s3::TestS3`), and an S3 outage in the middle of a run.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrite_testkit::s3::TestS3;
use ferrite_testkit::server::FerriteServer;
use futures::TryStreamExt;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};
use serde_json::{Value, json};

fn ferrite() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_ferrite"))
}

/// Where `ferrite serve` puts Parquet files, and a client of the same store to look at them.
struct Backend {
    name: &'static str,
    args: Vec<String>,
    store: Arc<dyn ObjectStore>,
    _dir: Option<tempfile::TempDir>,
}

impl Backend {
    fn local_dir() -> Backend {
        let dir = tempfile::tempdir().unwrap();
        let store = object_store::local::LocalFileSystem::new_with_prefix(dir.path()).unwrap();
        Backend {
            name: "local directory",
            args: vec![
                "--object-store".into(),
                "file".into(),
                "--object-store-dir".into(),
                dir.path().display().to_string(),
            ],
            store: Arc::new(store),
            _dir: Some(dir),
        }
    }

    async fn s3(s3: &TestS3) -> Backend {
        let bucket = s3.fresh_bucket().await.unwrap();
        Backend {
            name: "S3 (MinIO)",
            args: s3.ferrite_args(&bucket),
            store: s3.object_store_for(&bucket).unwrap(),
            _dir: None,
        }
    }
}

async fn start_ferrite(args: &[String]) -> FerriteServer {
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
    args.extend(["--admin-token", crate::ADMIN_TOKEN]);
    FerriteServer::start(ferrite(), &args).await.unwrap()
}

async fn write(url: &str, db: &str, body: String) {
    let r = crate::client()
        .post(format!("{url}/api/v3/write_lp?db={db}&precision=second"))
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    assert_eq!(status, 204, "write refused: {}", r.text().await.unwrap());
}

async fn query(url: &str, db: &str, sql: &str) -> Value {
    let r = crate::client()
        .get(format!("{url}/api/v3/query_sql"))
        .query(&[("db", db), ("q", sql), ("format", "json")])
        .send()
        .await
        .unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    assert_eq!(status, 200, "{sql}: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{sql}: {e}: {text}"))
}

/// Every `.parquet` object in the store, sorted by path.
async fn parquet_objects(store: &dyn ObjectStore) -> Vec<ObjectMeta> {
    let mut objects: Vec<ObjectMeta> = store.list(None).try_collect().await.unwrap();
    objects.retain(|o| o.location.as_ref().ends_with(".parquet"));
    objects.sort_by(|a, b| a.location.cmp(&b.location));
    objects
}

/// Poll the store until it holds at least `n` Parquet objects.
async fn wait_for_parquet(
    store: &dyn ObjectStore,
    n: usize,
    timeout: Duration,
    log: impl Fn() -> String,
) {
    let deadline = Instant::now() + timeout;
    loop {
        let found = parquet_objects(store).await.len();
        if found >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{found} Parquet objects after {timeout:?}, expected {n}; ferrite log:\n{}",
            log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `dbs/<db id>/tables/<table id>/partitions/<partition id>/<uuid>.parquet` → the three ids.
fn parse_object_path(path: &str) -> Option<(i64, i64, i64)> {
    let parts: Vec<&str> = path.split('/').collect();
    let [dbs, db, tables, table, partitions, partition, file] = parts[..] else {
        return None;
    };
    if (dbs, tables, partitions) != ("dbs", "tables", "partitions") {
        return None;
    }
    let uuid = file.strip_suffix(".parquet")?;
    let groups: Vec<usize> = uuid.split('-').map(str::len).collect();
    let is_uuid =
        groups == [8, 4, 4, 4, 12] && uuid.chars().all(|c| c == '-' || c.is_ascii_hexdigit());
    is_uuid.then_some(())?;
    Some((
        db.parse().ok()?,
        table.parse().ok()?,
        partition.parse().ok()?,
    ))
}

fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn non_empty_wal_segments(server: &FerriteServer) -> usize {
    files_under(&server.data_dir().join("wal"))
        .iter()
        .filter(|p| p.metadata().is_ok_and(|m| m.len() > 0))
        .count()
}

/// The behaviour every object store must have: a clean shutdown persists everything as
/// Parquet objects at the catalog's paths, and after a restart (nothing left in the WAL) the
/// rows are served from those objects, each exactly once.
async fn persist_restart_query(backend: Backend) {
    let name = backend.name;
    let mut server = start_ferrite(&backend.args).await;
    let url = server.url();
    // Two days of `cpu` (two partitions) and one of `mem`; 1700000000 is 2023-11-14.
    write(
        &url,
        "objstore",
        "cpu,host=a usage=1.5,n=1i 1700000000\n\
         cpu,host=b usage=2.5,n=2i 1700000000\n\
         cpu,host=a usage=3.5,n=3i 1700000010\n\
         cpu,host=a usage=9.5,n=9i 1700086400\n\
         mem,host=a free=100i 1700000000\n"
            .into(),
    )
    .await;
    // A later write of the same key (host=b at the same time) wins.
    write(
        &url,
        "objstore",
        "cpu,host=b usage=4.5,n=4i 1700000000\n".into(),
    )
    .await;
    server.terminate().unwrap();

    assert_eq!(
        non_empty_wal_segments(&server),
        0,
        "{name}: nothing left to replay"
    );
    let local_parquet = files_under(server.data_dir())
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .count();
    assert_eq!(
        local_parquet, 0,
        "{name}: no Parquet in ferrite's data dir, only in the store"
    );

    let objects = parquet_objects(backend.store.as_ref()).await;
    let ids: Vec<(i64, i64, i64)> = objects
        .iter()
        .map(|o| {
            parse_object_path(o.location.as_ref())
                .unwrap_or_else(|| panic!("{name}: unexpected object path {}", o.location))
        })
        .collect();
    assert_eq!(
        ids.len(),
        3,
        "{name}: one file per (table, day): {objects:?}"
    );
    let mut dbs: Vec<i64> = ids.iter().map(|i| i.0).collect();
    dbs.dedup();
    assert_eq!(dbs.len(), 1, "{name}: one database: {ids:?}");
    let mut tables: Vec<i64> = ids.iter().map(|i| i.1).collect();
    tables.sort();
    tables.dedup();
    assert_eq!(tables.len(), 2, "{name}: cpu and mem: {ids:?}");
    let mut partitions: Vec<i64> = ids.iter().map(|i| i.2).collect();
    partitions.sort();
    partitions.dedup();
    assert_eq!(partitions.len(), 3, "{name}: three partitions: {ids:?}");
    for o in &objects {
        let bytes = backend
            .store
            .get(&o.location)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(bytes.len() as u64, o.size, "{name}: {}", o.location);
        assert!(
            bytes.starts_with(b"PAR1") && bytes.ends_with(b"PAR1"),
            "{name}: {} is not a Parquet file",
            o.location
        );
    }

    server.restart().await.unwrap();
    let rows = query(
        &url,
        "objstore",
        "SELECT host, usage, n FROM cpu ORDER BY time, host",
    )
    .await;
    assert_eq!(
        rows,
        json!([
            {"host": "a", "usage": 1.5, "n": 1},
            {"host": "b", "usage": 4.5, "n": 4},
            {"host": "a", "usage": 3.5, "n": 3},
            {"host": "a", "usage": 9.5, "n": 9},
        ]),
        "{name}: every row exactly once, the later write of host=b winning"
    );
    let mem = query(&url, "objstore", "SELECT host, free FROM mem").await;
    assert_eq!(mem, json!([{"host": "a", "free": 100}]), "{name}");
    server.terminate().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_directory_store_persists_on_shutdown_and_serves_after_restart() {
    persist_restart_query(Backend::local_dir()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_store_persists_on_shutdown_and_serves_after_restart() {
    let s3 = TestS3::shared().await.unwrap();
    persist_restart_query(Backend::s3(s3).await).await;
}

/// What the ingester logs when a persist failed and it will try again.
const INGESTER_RETRY: &str = "persist failed; retrying";

/// Lines `outage,writer=w seq={i}i {i}` for i in `range`: one key per row.
fn outage_rows(range: std::ops::Range<i64>) -> String {
    range
        .map(|i| format!("outage,writer=w seq={i}i {}\n", 1_700_000_000 + i))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_outage_mid_run_delays_persist_and_loses_nothing_acknowledged() {
    let s3 = TestS3::start().await.unwrap();
    let mut args = s3.ferrite_args(s3.bucket());
    args.extend(["--persist-age-seconds".to_string(), "1".to_string()]);
    let mut server = start_ferrite(&args).await;
    let url = server.url();
    let store = s3.object_store().unwrap();

    // Persisted by age while S3 is up.
    write(&url, "outage", outage_rows(0..100)).await;
    wait_for_parquet(store.as_ref(), 1, Duration::from_secs(30), || server.log()).await;
    assert_eq!(parquet_objects(store.as_ref()).await.len(), 1);

    // S3 goes away. Writes are still acknowledged (the WAL holds them), but their persist
    // fails: object_store retries the upload (10 times, a few seconds in all), then gives up
    // and the ingester's persist loop takes over, retrying with its own backoff. S3 stays
    // down until that loop has gone round at least once.
    s3.kill().unwrap();
    write(&url, "outage", outage_rows(100..200)).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    while !server.log().contains(INGESTER_RETRY) {
        assert!(
            Instant::now() < deadline,
            "no '{INGESTER_RETRY}' in 120 s while S3 was down; ferrite log:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // S3 comes back on the same port and data: the retry persists the rows after all,
    // without a shutdown to force it.
    s3.start_again().await.unwrap();
    wait_for_parquet(store.as_ref(), 2, Duration::from_secs(120), || server.log()).await;
    let objects = parquet_objects(store.as_ref()).await;
    assert_eq!(objects.len(), 2, "{objects:?}");
    assert!(
        objects
            .iter()
            .all(|o| parse_object_path(o.location.as_ref()).is_some()),
        "{objects:?}"
    );

    // Everything acknowledged is in the bucket and the catalog: after a clean restart with
    // an empty WAL, every row is served from S3 exactly once.
    server.terminate().unwrap();
    assert_eq!(non_empty_wal_segments(&server), 0, "nothing left to replay");
    assert_eq!(
        parquet_objects(store.as_ref()).await.len(),
        2,
        "the shutdown had nothing left to persist"
    );
    server.restart().await.unwrap();
    let stats = query(
        &url,
        "outage",
        "SELECT count(*) AS n, count(DISTINCT seq) AS d, sum(seq) AS s FROM outage",
    )
    .await;
    assert_eq!(stats, json!([{"n": 200, "d": 200, "s": 19900}]));
    server.terminate().unwrap();
    let log = server.log();
    let persists: Vec<&str> = log
        .lines()
        .filter(|l| {
            l.contains(INGESTER_RETRY) || l.contains("transport error") || l.contains("persisted")
        })
        .collect();
    eprintln!("persist attempts:\n{}", persists.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_s3_is_down_exits_after_the_drain_timeout_and_loses_nothing() {
    let s3 = TestS3::start().await.unwrap();
    let mut args = s3.ferrite_args(s3.bucket());
    args.extend(
        [
            "--drain-timeout-seconds",
            "3",
            "--shutdown-grace-seconds",
            "1",
        ]
        .map(String::from),
    );
    let mut server = start_ferrite(&args).await;
    let url = server.url();
    write(&url, "drain", outage_rows(0..100)).await;

    s3.kill().unwrap();
    let started = Instant::now();
    tokio::task::block_in_place(|| server.terminate()).unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "SIGTERM took {:?} with S3 down",
        started.elapsed()
    );
    assert!(
        server.log().contains("stays in the WAL"),
        "{}",
        server.log()
    );
    assert!(
        non_empty_wal_segments(&server) > 0,
        "the rows wait in the WAL"
    );

    // Back with S3: the WAL is replayed and every acknowledged row is there, once.
    s3.start_again().await.unwrap();
    server.restart().await.unwrap();
    let stats = query(
        &url,
        "drain",
        "SELECT count(*) AS n, count(DISTINCT seq) AS d FROM outage",
    )
    .await;
    assert_eq!(stats, json!([{"n": 100, "d": 100}]));
    tokio::task::block_in_place(|| server.terminate()).unwrap();
    assert_eq!(
        non_empty_wal_segments(&server),
        0,
        "persisted at the second shutdown"
    );
}
