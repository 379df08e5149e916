//! End-to-end tests of the real `ferrite` binary over loopback HTTP: crashes, restarts and
//! the durability promise.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ferrite_testkit::server::FerriteServer;

#[path = "server/auth.rs"]
mod auth;
#[path = "server/caches.rs"]
mod caches;
#[path = "server/cluster.rs"]
mod cluster;
#[path = "server/compactor.rs"]
mod compactor;
#[path = "server/kube_discovery.rs"]
mod kube_discovery;
#[path = "server/lifecycle.rs"]
mod lifecycle;
#[path = "server/management_grpc.rs"]
mod management_grpc;
#[path = "server/object_store.rs"]
mod objstore;
#[path = "server/query_caches.rs"]
mod query_caches;
#[path = "server/read_your_writes.rs"]
mod read_your_writes;
#[path = "server/ready.rs"]
mod ready;
#[path = "server/system_tables.rs"]
mod system_tables;
#[path = "server/tls.rs"]
mod tls;

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_ferrite"))
}

/// The admin token every server and cluster of these tests trusts.
const ADMIN_TOKEN: &str = "ferrite-e2e-admin-token-0123456789abcdef";

/// An HTTP client that sends the admin token.
fn client() -> reqwest::Client {
    ferrite_testkit::server::client_with(Some(ADMIN_TOKEN))
}

/// A cluster that trusts [`ADMIN_TOKEN`].
fn cluster_options() -> ferrite_testkit::cluster::ClusterOptions {
    ferrite_testkit::cluster::ClusterOptions {
        admin_token: Some(ADMIN_TOKEN.to_string()),
        ..Default::default()
    }
}

async fn count(url: &str, db: &str, sql: &str) -> i64 {
    let r = crate::client()
        .get(format!("{url}/api/v3/query_sql"))
        .query(&[("db", db), ("q", sql)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let rows: serde_json::Value = r.json().await.unwrap();
    rows[0]["n"]
        .as_i64()
        .unwrap_or_else(|| panic!("no count in {rows}"))
}

/// Lines `ack,writer=w{w} seq={i}i {i}` for i in range: one unique key per row.
fn batch(writer: usize, range: std::ops::Range<i64>) -> String {
    let mut s = String::new();
    for i in range {
        s.push_str(&format!(
            "ack,writer=w{writer} seq={i}i,v={}.5 {i}\n",
            i % 7
        ));
    }
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_during_writes_loses_no_acknowledged_row_and_duplicates_none() {
    // Persist every second so the crash lands between persists, WAL and files overlapping.
    let mut server = FerriteServer::start(
        binary(),
        &["--persist-age-seconds", "1", "--admin-token", ADMIN_TOKEN],
    )
    .await
    .unwrap();
    let url = server.url();
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..4 {
        let (url, stop) = (url.clone(), Arc::clone(&stop));
        writers.push(tokio::spawn(async move {
            let client = crate::client();
            let mut acked = 0i64;
            while !stop.load(Ordering::SeqCst) {
                let body = batch(w, acked..acked + 500);
                match client
                    .post(format!("{url}/api/v2/write?bucket=crash"))
                    .body(body)
                    .send()
                    .await
                {
                    Ok(r) if r.status() == 204 => acked += 500,
                    Ok(r) => panic!("write refused: {} {}", r.status(), r.text().await.unwrap()),
                    Err(_) => break, // the server is gone
                }
            }
            acked
        }));
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    server.kill9().unwrap();
    stop.store(true, Ordering::SeqCst);
    let mut acked = Vec::new();
    for w in writers {
        acked.push(w.await.unwrap());
    }
    assert!(
        acked.iter().all(|&a| a > 0),
        "every writer got acknowledgements: {acked:?}"
    );

    server.restart().await.unwrap();
    for (w, &n) in acked.iter().enumerate() {
        let sql = format!("SELECT count(*) AS n FROM ack WHERE writer = 'w{w}' AND seq < {n}");
        assert_eq!(
            count(&url, "crash", &sql).await,
            n,
            "writer {w}: every acknowledged row exactly once"
        );
        // An in-flight, unacknowledged batch may or may not have landed, but never partly
        // or twice.
        let total = count(
            &url,
            "crash",
            &format!("SELECT count(*) AS n FROM ack WHERE writer = 'w{w}'"),
        )
        .await;
        assert!(
            total == n || total == n + 500,
            "writer {w}: {total} rows for {n} acknowledged"
        );
    }
    server.terminate().unwrap();
}

#[tokio::test]
async fn clean_shutdown_persists_to_parquet_and_restart_serves_it() {
    let mut server = FerriteServer::start(binary(), &["--admin-token", ADMIN_TOKEN])
        .await
        .unwrap();
    let url = server.url();
    let r = crate::client()
        .post(format!("{url}/api/v3/write_lp?db=clean&precision=second"))
        .body("m,t=a v=1i 1\nm,t=b v=2i 2\nm,t=a v=3i 1\n")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    server.terminate().unwrap();

    let wal: Vec<_> = std::fs::read_dir(server.data_dir().join("wal"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .filter(|&len| len > 0)
        .collect();
    assert!(
        wal.is_empty(),
        "nothing left to replay after a clean shutdown"
    );
    let parquet = walk(&server.data_dir().join("objects"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .count();
    assert_eq!(parquet, 1);

    server.restart().await.unwrap();
    assert_eq!(count(&url, "clean", "SELECT count(*) AS n FROM m").await, 2);
    assert_eq!(
        count(&url, "clean", "SELECT sum(v) AS n FROM m").await,
        5,
        "the later write of t=a won"
    );
    server.terminate().unwrap();
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
