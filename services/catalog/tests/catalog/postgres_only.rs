//! What only the PostgreSQL catalog has to do: many replicas migrating one database at once,
//! and riding out a server restart.

use std::time::{Duration, Instant};

use ferrite_catalog::{Catalog, Error, SqlCatalog};
use ferrite_testkit::postgres::TestPostgres;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_connects_to_a_fresh_database_all_succeed() {
    const REPLICAS: usize = 8;
    let dsn = tokio::task::spawn_blocking(|| TestPostgres::shared()?.fresh_database())
        .await
        .unwrap()
        .expect("a test PostgreSQL database");

    let connects: Vec<_> = (0..REPLICAS)
        .map(|_| {
            let dsn = dsn.clone();
            tokio::spawn(async move { SqlCatalog::connect(&dsn).await })
        })
        .collect();
    let mut catalogs = Vec::new();
    for connect in connects {
        catalogs.push(connect.await.unwrap().expect("every replica connects"));
    }

    // Each migration ran exactly once and the schema works from every replica.
    sqlx::any::install_default_drivers();
    let raw = sqlx::AnyPool::connect(&dsn).await.unwrap();
    let applied: Vec<(i64, bool)> =
        sqlx::query_as("SELECT version, success FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&raw)
            .await
            .unwrap();
    raw.close().await;
    assert!(!applied.is_empty());
    assert!(applied.iter().all(|(_, success)| *success));
    let migration_files =
        std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres"))
            .unwrap()
            .count();
    assert_eq!(applied.len(), migration_files);

    let db = catalogs[0].create_database("shared").await.unwrap();
    for catalog in &catalogs {
        assert_eq!(
            catalog.database_by_name("shared").await.unwrap(),
            Some(db.clone())
        );
        assert_eq!(catalog.version().await.unwrap(), 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_reports_unavailable_while_postgres_is_down_and_recovers() {
    // Its own server: this test stops it.
    let pg = tokio::task::spawn_blocking(TestPostgres::start)
        .await
        .unwrap()
        .expect("start PostgreSQL");
    let catalog = SqlCatalog::connect(&pg.dsn()).await.unwrap();
    let db = catalog.create_database("before").await.unwrap();

    let pg = tokio::task::spawn_blocking(move || pg.stop().map(|()| pg))
        .await
        .unwrap()
        .expect("stop PostgreSQL");
    let started = Instant::now();
    let err = tokio::time::timeout(Duration::from_secs(30), catalog.list_databases())
        .await
        .expect("a down catalog fails within the acquire timeout, it does not hang")
        .unwrap_err();
    assert!(matches!(err, Error::Unavailable(_)), "{err}");
    assert!(started.elapsed() < Duration::from_secs(20));

    let pg = tokio::task::spawn_blocking(move || pg.start_again().map(|()| pg))
        .await
        .unwrap()
        .expect("start PostgreSQL again");
    // The pool replaces the connections the restart broke; no reconnect by the caller.
    assert_eq!(
        catalog.database_by_name("before").await.unwrap(),
        Some(db.clone())
    );
    catalog.create_database("after").await.unwrap();
    assert_eq!(catalog.list_databases().await.unwrap().len(), 2);

    let pg = tokio::task::spawn_blocking(move || pg.restart().map(|()| pg))
        .await
        .unwrap()
        .expect("restart PostgreSQL");
    assert_eq!(catalog.version().await.unwrap(), 2);
    catalog.close().await;
    drop(pg);
}
