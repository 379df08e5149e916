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

/// `ferrite serve`'s query engine caches schemas by the versions its own catalog commits:
/// every schema change is visible to the next read, with no poll in between.
#[tokio::test]
async fn a_cache_fed_by_committed_versions_sees_each_write_at_once() {
    let sql = Arc::new(SqlCatalog::connect("sqlite::memory:").await.unwrap());
    let cached = ferrite_catalog::CachedCatalog::new(
        Arc::clone(&sql) as ferrite_catalog::CatalogRef,
        sql.committed_versions(),
    );
    let db = sql.create_database("telegraf").await.unwrap();
    assert_eq!(
        cached.database_by_name("telegraf").await.unwrap(),
        Some(db.clone())
    );
    let table = sql.create_table(db.id, "cpu").await.unwrap();
    let columns = |schema: ferrite_model::DatabaseSchema| -> Vec<String> {
        schema.tables["cpu"].columns.keys().cloned().collect()
    };
    sql.upsert_columns(table.id, &[("usage", ferrite_model::ColumnType::F64)])
        .await
        .unwrap();
    assert_eq!(
        columns(cached.database_schema(db.id).await.unwrap()),
        ["usage"]
    );
    assert_eq!(
        *sql.committed_versions().borrow(),
        sql.version().await.unwrap()
    );

    sql.upsert_columns(table.id, &[("idle", ferrite_model::ColumnType::F64)])
        .await
        .unwrap();
    assert_eq!(
        columns(cached.database_schema(db.id).await.unwrap()),
        ["idle", "usage"]
    );
    assert_eq!(
        cached.refresh_reads(),
        0,
        "no miss had to ask for the version"
    );
}

/// A partition from before sort keys were recorded (the migration leaves its key NULL)
/// keeps none: its files are sorted by every tag in name order, whatever tags come later.
#[tokio::test]
async fn a_partition_from_before_sort_keys_keeps_none() {
    let dir = tempfile::tempdir().unwrap();
    let dsn = format!("sqlite://{}", dir.path().join("catalog.db").display());
    let catalog = SqlCatalog::connect(&dsn).await.unwrap();
    let db = catalog.create_database("telegraf").await.unwrap();
    let cpu = catalog.create_table(db.id, "cpu").await.unwrap();
    let p = catalog
        .create_partition(cpu.id, "2024-03-05")
        .await
        .unwrap();

    sqlx::any::install_default_drivers();
    let raw = sqlx::AnyPool::connect(&dsn).await.unwrap();
    sqlx::query("UPDATE partitions SET sort_key = NULL")
        .execute(&raw)
        .await
        .unwrap();
    raw.close().await;

    let old = catalog
        .create_partition(cpu.id, "2024-03-05")
        .await
        .unwrap();
    assert_eq!(old.sort_key, None);
    let after = catalog
        .extend_sort_key(p.id, &["region".to_string()])
        .await
        .unwrap();
    assert_eq!(after, old);
}
