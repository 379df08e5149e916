//! The catalog's behaviour, one suite run against every implementation: `SqlCatalog` on
//! SQLite (a temp file) and on a real PostgreSQL (a throwaway server from `ferrite-testkit`,
//! one per test binary, a fresh database per test), and `GrpcCatalog` talking to a real
//! tonic server in front of each of those. Plus what only the gRPC service does (`grpc`).
//!
//! PostgreSQL tests fail, never skip, when PostgreSQL is not installed.

use std::sync::Arc;

use ferrite_catalog::{CatalogRef, GrpcCatalog, SqlCatalog};
use ferrite_proto::auth::ClientAuth;
use ferrite_testkit::postgres::TestPostgres;

#[path = "catalog/behaviours.rs"]
mod behaviours;
#[path = "catalog/grpc.rs"]
mod grpc;
#[path = "catalog/lifecycle.rs"]
mod lifecycle;
#[path = "catalog/postgres_only.rs"]
mod postgres_only;
#[path = "catalog/sqlite_only.rs"]
mod sqlite_only;

/// A connected catalog on a fresh, empty database.
pub struct Fixture {
    pub catalog: CatalogRef,
    /// What the SQL catalog (behind the service, for gRPC) was connected with, to connect
    /// again.
    pub dsn: String,
    _dir: Option<tempfile::TempDir>,
    /// The catalog service `catalog` talks to, for gRPC fixtures.
    _server: Option<grpc::RunningServer>,
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
            _server: None,
        }
    }

    pub async fn postgres() -> Fixture {
        let dsn = postgres_database().await;
        let catalog = SqlCatalog::connect(&dsn)
            .await
            .expect("connect to PostgreSQL catalog");
        Fixture {
            catalog: Arc::new(catalog),
            dsn,
            _dir: None,
            _server: None,
        }
    }

    /// The same catalog, now behind a catalog service on 127.0.0.1 and reached through a
    /// [`GrpcCatalog`].
    pub async fn through_grpc(self) -> Fixture {
        let server = grpc::RunningServer::start(Arc::clone(&self.catalog)).await;
        let client = GrpcCatalog::connect_lazy(&server.url, &ClientAuth::none())
            .expect("catalog service address");
        Fixture {
            catalog: Arc::new(client),
            _server: Some(server),
            ..self
        }
    }
}

/// A fresh, empty database on the shared test PostgreSQL.
pub async fn postgres_database() -> String {
    tokio::task::spawn_blocking(|| TestPostgres::shared()?.fresh_database())
        .await
        .expect("join")
        .expect("a test PostgreSQL database")
}

/// One `#[tokio::test]` per behaviour and implementation: `sqlite::<name>`,
/// `postgres::<name>`, `grpc_sqlite::<name>` and `grpc_postgres::<name>`.
macro_rules! suite {
    ($($behaviour:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $behaviour() {
                    let fixture = crate::Fixture::sqlite().await;
                    crate::$behaviour(&fixture).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $behaviour() {
                    let fixture = crate::Fixture::postgres().await;
                    crate::$behaviour(&fixture).await;
                }
            )*
        }
        mod grpc_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $behaviour() {
                    let fixture = crate::Fixture::sqlite().await.through_grpc().await;
                    crate::$behaviour(&fixture).await;
                }
            )*
        }
        mod grpc_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $behaviour() {
                    let fixture = crate::Fixture::postgres().await.through_grpc().await;
                    crate::$behaviour(&fixture).await;
                }
            )*
        }
    };
}

suite!(
    create_database_is_idempotent,
    caches_are_listed_until_deleted_or_their_table_is,
    unknown_names_and_ids,
    concurrent_creates_agree_on_ids,
    concurrent_conflicting_upserts_change_nothing_for_the_losers,
    column_type_conflict_changes_nothing,
    tag_and_field_of_the_same_name_conflict,
    upsert_columns_adds_missing_and_keeps_input_order,
    schema_lists_every_table_and_column,
    partitions_are_created_once_per_table_and_key,
    partition_sort_keys_are_chosen_once_and_only_extended,
    parquet_files_register_and_list,
    unknown_column_type_code_is_corrupt,
    reconnect_keeps_data_and_skips_migrations,
    limits_refuse_tables_and_columns_beyond_them,
    deleted_databases_and_tables_are_invisible_and_come_back,
    tokens_are_stored_updated_and_revoked,
    a_lease_has_one_holder_until_it_expires_or_is_released,
    replacing_files_is_one_transaction,
    partition_summaries_count_files_by_level_and_show_skips,
    retention_marks_files_whose_rows_are_all_expired,
    deleted_tables_and_databases_are_purged_after_their_grace,
);

pub use behaviours::*;
pub use lifecycle::*;
