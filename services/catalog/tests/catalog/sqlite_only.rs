//! What only the SQLite catalog has to do: WAL on a file, in-memory catalogs, DSN handling.

use std::sync::Arc;

use ferrite_catalog::{Catalog, Error, SqlCatalog};

#[tokio::test]
async fn file_catalog_creates_its_directory_and_runs_in_wal_mode() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("not").join("yet").join("catalog.db");
    let dsn = format!("sqlite://{}", path.display());
    let catalog = SqlCatalog::connect(&dsn).await.unwrap();
    catalog.create_database("telegraf").await.unwrap();
    assert!(path.is_file());

    sqlx::any::install_default_drivers();
    let raw = sqlx::AnyPool::connect(&dsn).await.unwrap();
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&raw)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    raw.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_catalog_is_one_database_for_all_its_tasks() {
    let catalog = Arc::new(SqlCatalog::connect("sqlite::memory:").await.unwrap());
    let db = catalog.create_database("telegraf").await.unwrap();
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let catalog = Arc::clone(&catalog);
            tokio::spawn(async move { catalog.create_table(db.id, &format!("t{i}")).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(catalog.list_tables(db.id).await.unwrap().len(), 10);

    // Another in-memory catalog is another database.
    let other = SqlCatalog::connect("sqlite::memory:").await.unwrap();
    assert!(other.list_databases().await.unwrap().is_empty());
}

#[tokio::test]
async fn unsupported_dsn_is_rejected() {
    for dsn in ["mysql://localhost/db", "catalog.db", "sqlite://"] {
        let err = SqlCatalog::connect(dsn).await.unwrap_err();
        assert!(matches!(err, Error::InvalidDsn(_)), "{dsn}: {err}");
    }
}
