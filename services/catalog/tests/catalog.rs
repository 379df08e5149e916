//! The catalog's behaviour, one suite run against every backend: SQLite (a temp file) and a
//! real PostgreSQL (a throwaway server from `ferrite-testkit`, one per test binary, a fresh
//! database per test).
//!
//! PostgreSQL tests fail, never skip, when PostgreSQL is not installed.

use std::sync::Arc;

use ferrite_catalog::SqlCatalog;
use ferrite_testkit::postgres::TestPostgres;

#[path = "catalog/behaviours.rs"]
mod behaviours;
#[path = "catalog/postgres_only.rs"]
mod postgres_only;
#[path = "catalog/sqlite_only.rs"]
mod sqlite_only;

/// A connected catalog on a fresh, empty database.
pub struct Fixture {
    pub catalog: Arc<SqlCatalog>,
    /// What `catalog` was connected with, to connect again.
    pub dsn: String,
    _dir: Option<tempfile::TempDir>,
}

impl Fixture {
    pub async fn sqlite() -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        let dsn = format!("sqlite://{}", dir.path().join("catalog.db").display());
        let catalog = SqlCatalog::connect(&dsn)
            .await
            .expect("open SQLite catalog");
        Fixture {
            catalog: Arc::new(catalog),
            dsn,
            _dir: Some(dir),
        }
    }

    pub async fn postgres() -> Fixture {
        let dsn = tokio::task::spawn_blocking(|| TestPostgres::shared()?.fresh_database())
            .await
            .expect("join")
            .expect("a test PostgreSQL database");
        let catalog = SqlCatalog::connect(&dsn)
            .await
            .expect("connect to PostgreSQL catalog");
        Fixture {
            catalog: Arc::new(catalog),
            dsn,
            _dir: None,
        }
    }
}

/// One `#[tokio::test]` per behaviour and backend: `sqlite::<name>` and `postgres::<name>`.
macro_rules! suite {
    ($($behaviour:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $behaviour() {
                    let fixture = crate::Fixture::sqlite().await;
                    crate::behaviours::$behaviour(&fixture).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $behaviour() {
                    let fixture = crate::Fixture::postgres().await;
                    crate::behaviours::$behaviour(&fixture).await;
                }
            )*
        }
    };
}

suite!(
    create_database_is_idempotent,
    unknown_names_and_ids,
    concurrent_creates_agree_on_ids,
    concurrent_conflicting_upserts_change_nothing_for_the_losers,
    column_type_conflict_changes_nothing,
    tag_and_field_of_the_same_name_conflict,
    upsert_columns_adds_missing_and_keeps_input_order,
    schema_lists_every_table_and_column,
    partitions_are_created_once_per_table_and_key,
    parquet_files_register_and_list,
    unknown_column_type_code_is_corrupt,
    reconnect_keeps_data_and_skips_migrations,
);
