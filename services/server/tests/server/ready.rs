//! `/ready`, Kubernetes' readiness probe: 503 while a service is starting (its catalog
//! database still down) and while it drains, 200 in between; `/health` (liveness) stays 200
//! throughout. A drain whose object store is down ends at its deadline with the WAL kept,
//! and the next start replays it.

use std::time::{Duration, Instant};

use ferrite_testkit::cluster::{ClusterOptions, TestCluster};
use ferrite_testkit::postgres::TestPostgres;
use ferrite_testkit::server::{FerriteServer, client_with, free_port};

use super::{ADMIN_TOKEN, binary};

/// (status, body) of `GET url path`, without a token: probes need none.
async fn probe(url: &str, path: &str) -> (u16, String) {
    let r = client_with(None)
        .get(format!("{url}{path}"))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn wait_ready(url: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let (status, body) = probe(url, "/ready").await;
        if status == 200 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not ready in {within:?}: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catalog_waiting_for_its_database_is_alive_but_not_ready_until_it_connects() {
    let pg = tokio::task::spawn_blocking(TestPostgres::start)
        .await
        .unwrap()
        .unwrap();
    let dsn = pg.create_database("ready").unwrap();
    tokio::task::block_in_place(|| pg.stop()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let catalog = FerriteServer::run_service_alive(
        binary(),
        "catalog",
        free_port().unwrap(),
        dir.path(),
        &[
            "--catalog-dsn".into(),
            dsn,
            "--admin-token".into(),
            ADMIN_TOKEN.into(),
        ],
    )
    .await
    .unwrap();
    let url = catalog.url();

    assert_eq!(probe(&url, "/health").await.0, 200);
    let (status, body) = probe(&url, "/ready").await;
    assert_eq!((status, body.as_str()), (503, "starting"));
    // Everything else is refused as retryable, over HTTP and gRPC alike.
    let r = client_with(Some(ADMIN_TOKEN))
        .get(format!("{url}/api/v0/databases"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    let r = client_with(Some(ADMIN_TOKEN))
        .post(format!(
            "{url}/ferrite.management.v1.DatabaseService/ListDatabases"
        ))
        .header("content-type", "application/grpc")
        .body(vec![0u8, 0, 0, 0, 0])
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["grpc-status"], "14", "UNAVAILABLE");

    tokio::task::block_in_place(|| pg.start_again()).unwrap();
    // The catalog retries with a backoff capped at 5 s.
    wait_ready(&url, Duration::from_secs(20)).await;
    let r = client_with(Some(ADMIN_TOKEN))
        .get(format!("{url}/api/v0/databases"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
}

#[tokio::test]
async fn sigterm_while_starting_stops_at_once_and_a_router_without_drain_exits_promptly() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on this port: the catalog keeps waiting for its database.
    let dsn = format!("postgres://u:p@127.0.0.1:{}/db", free_port().unwrap());
    let mut catalog = FerriteServer::run_service_alive(
        binary(),
        "catalog",
        free_port().unwrap(),
        &dir.path().join("catalog"),
        &[
            "--catalog-dsn".into(),
            dsn,
            "--admin-token".into(),
            ADMIN_TOKEN.into(),
        ],
    )
    .await
    .unwrap();
    assert_eq!(probe(&catalog.url(), "/ready").await.0, 503);
    catalog.sigterm().unwrap();
    let status = catalog.wait_exit(Duration::from_secs(5)).await.unwrap();
    assert!(status.success(), "{status}: {}", catalog.log());

    // A router has nothing to drain: SIGTERM, and it is gone.
    let mut router = FerriteServer::run_service(
        binary(),
        "router",
        free_port().unwrap(),
        &dir.path().join("router"),
        &[
            "--catalog".into(),
            format!("http://127.0.0.1:{}", free_port().unwrap()),
            "--ingesters".into(),
            "http://127.0.0.1:1".into(),
            "--queriers".into(),
            "http://127.0.0.1:1".into(),
            "--admin-token".into(),
            ADMIN_TOKEN.into(),
        ],
    )
    .await
    .unwrap();
    router.sigterm().unwrap();
    let status = router.wait_exit(Duration::from_secs(5)).await.unwrap();
    assert!(status.success(), "{status}: {}", router.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_draining_ingester_is_not_ready_and_keeps_its_wal_when_the_object_store_is_down() {
    let opts = ClusterOptions {
        ingesters: 1,
        ingester_args: vec!["--drain-timeout-seconds".into(), "3".into()],
        ..crate::cluster_options()
    };
    let mut c = TestCluster::start(binary(), opts).await.unwrap();
    for s in c
        .routers
        .iter()
        .chain(&c.queriers)
        .chain(&c.ingesters)
        .chain([&c.catalog])
    {
        assert_eq!(probe(&s.url(), "/ready").await, (200, "ready".into()));
    }
    let url = c.url();
    let write = |lines: &'static str| {
        let url = url.clone();
        async move {
            crate::client()
                .post(format!("{url}/api/v2/write?bucket=drain"))
                .body(lines)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(write("m,t=a v=1 1\nm,t=b v=2 2\n").await, 204);

    // The object store goes away; the ingester gets SIGTERM and cannot persist.
    c.s3.stop().unwrap();
    let ingester = &mut c.ingesters[0];
    let ingester_url = ingester.url();
    ingester.sigterm().unwrap();
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let (status, body) = probe(&ingester_url, "/ready").await;
        if status == 503 {
            assert!(body.starts_with("draining"), "{body}");
            break;
        }
        assert!(Instant::now() < deadline, "still ready while draining");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        probe(&ingester_url, "/health").await.0,
        200,
        "alive while draining"
    );

    // Bounded: it gives up at the drain deadline (3 s) and exits cleanly, the WAL kept.
    let status = ingester
        .wait_exit(Duration::from_secs(3 + 10 + 5))
        .await
        .unwrap();
    assert!(status.success(), "{status}");
    let log = ingester.log();
    assert!(
        log.contains("the rest stays in the WAL"),
        "the log says what was left in the WAL: {log}"
    );

    // The same ordinal comes back with the object store: the WAL is replayed, nothing lost.
    c.s3.start_again().await.unwrap();
    ingester.restart().await.unwrap();
    let r = crate::client()
        .get(format!("{url}/api/v3/query_sql"))
        .query(&[("db", "drain"), ("q", "SELECT count(*) AS n FROM m")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let rows: serde_json::Value = r.json().await.unwrap();
    assert_eq!(rows[0]["n"], 2, "{rows}");
}
