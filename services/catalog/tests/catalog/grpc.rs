//! What only the gRPC catalog has to do: keep its wire contract, carry errors exactly, feed
//! version changes from any replica to every watcher, and ride out a catalog service that
//! is down, crashes or restarts.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrite_catalog::grpc::CatalogGrpcService;
use ferrite_catalog::{Catalog, Error, GrpcCatalog, ParquetFileParams, SqlCatalog};
use ferrite_model::ColumnType;
use ferrite_proto::auth::ClientAuth;
use ferrite_proto::ferrite::catalog::v1 as proto;
use prost::Message;
use proto::catalog_service_client::CatalogServiceClient;
use tokio::sync::watch;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;

/// A catalog service on 127.0.0.1 in the test's runtime; stopped when dropped.
pub struct RunningServer {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// The service, to close its watchers.
    pub service: CatalogGrpcService,
    task: tokio::task::JoinHandle<()>,
}

impl RunningServer {
    pub async fn start(catalog: Arc<dyn Catalog>) -> RunningServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let service = CatalogGrpcService::new(catalog);
        let serve = Server::builder()
            .add_service(service.clone().into_server())
            .serve_with_incoming(TcpIncoming::from(listener));
        let task = tokio::spawn(async move { serve.await.expect("catalog service") });
        RunningServer { url, service, task }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A catalog service over a SQL catalog of its own, in a runtime of its own: `stop` drops
/// the runtime, which closes every socket and connection at once, as a crash would.
struct IsolatedServer {
    runtime: Option<tokio::runtime::Runtime>,
}

impl IsolatedServer {
    async fn start(dsn: &str, addr: SocketAddr) -> IsolatedServer {
        let dsn = dsn.to_owned();
        tokio::task::spawn_blocking(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("server runtime");
            let (catalog, listener) = runtime.block_on(async {
                let catalog = SqlCatalog::connect(&dsn).await.expect("open catalog");
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .expect("bind the server's address");
                (catalog, listener)
            });
            runtime.spawn(
                Server::builder()
                    .add_service(ferrite_catalog::grpc::catalog_service(Arc::new(catalog)))
                    .serve_with_incoming(TcpIncoming::from(listener)),
            );
            IsolatedServer {
                runtime: Some(runtime),
            }
        })
        .await
        .expect("join")
    }

    fn stop(mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Drop for IsolatedServer {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// A local address nothing listens on (yet).
fn free_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// Wait until `versions` reaches `version`, at most `within`.
async fn seen(versions: &mut watch::Receiver<i64>, version: i64, within: Duration) {
    let reached = tokio::time::timeout(within, versions.wait_for(|v| *v >= version))
        .await
        .map(|r| r.map(|v| *v));
    match reached {
        Ok(Ok(v)) => assert_eq!(v, version, "the feed skipped past {version}"),
        Ok(Err(_)) => panic!("the change feed closed"),
        Err(_) => panic!(
            "version {version} not seen within {within:?}; feed at {}",
            *versions.borrow()
        ),
    }
}

/// `google.rpc.Status`, decoded here from the bytes on the wire, independently of the
/// crate's own codec: what a client in another language sees.
#[derive(Clone, PartialEq, Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
    #[prost(message, repeated, tag = "3")]
    details: Vec<prost_types::Any>,
}

fn error_detail(status: &tonic::Status) -> proto::error_detail::Error {
    let rpc = RpcStatus::decode(status.details()).expect("google.rpc.Status in the details");
    assert_eq!(rpc.code, status.code() as i32);
    assert_eq!(rpc.message, status.message());
    let [any] = rpc.details.as_slice() else {
        panic!("one detail, got {:?}", rpc.details);
    };
    assert_eq!(
        any.type_url,
        "type.googleapis.com/ferrite.catalog.v1.ErrorDetail"
    );
    proto::ErrorDetail::decode(any.value.as_slice())
        .unwrap()
        .error
        .expect("an error in the detail")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_carry_their_code_message_and_detail_on_the_wire() {
    let catalog = Arc::new(SqlCatalog::connect("sqlite::memory:").await.unwrap());
    let server = RunningServer::start(catalog).await;
    let mut raw = CatalogServiceClient::connect(server.url.clone())
        .await
        .unwrap();

    let db = raw
        .create_database(proto::CreateDatabaseRequest {
            name: "telegraf".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .database
        .unwrap();
    let table = raw
        .create_table(proto::CreateTableRequest {
            database_id: db.id,
            name: "cpu".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .table
        .unwrap();
    let column = |name: &str, t: ColumnType| proto::ColumnRequest {
        name: name.into(),
        column_type: t.code().into(),
    };
    raw.upsert_columns(proto::UpsertColumnsRequest {
        table_id: table.id,
        columns: vec![column("usage", ColumnType::F64)],
    })
    .await
    .unwrap();

    let conflict = raw
        .upsert_columns(proto::UpsertColumnsRequest {
            table_id: table.id,
            columns: vec![column("usage", ColumnType::I64)],
        })
        .await
        .unwrap_err();
    assert_eq!(conflict.code(), tonic::Code::InvalidArgument);
    assert_eq!(
        conflict.message(),
        "column 'usage' is float in table 'cpu', got integer"
    );
    assert_eq!(
        error_detail(&conflict),
        proto::error_detail::Error::ColumnTypeConflict(proto::ColumnTypeConflict {
            table: "cpu".into(),
            column: "usage".into(),
            existing: 3,
            requested: 1,
        })
    );

    let missing = raw
        .get_table_schema(proto::GetTableSchemaRequest { table_id: 424242 })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);
    assert_eq!(
        error_detail(&missing),
        proto::error_detail::Error::TableNotFound(424242)
    );
    let missing = raw
        .get_database_schema(proto::GetDatabaseSchemaRequest { database_id: 7777 })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);
    assert_eq!(
        error_detail(&missing),
        proto::error_detail::Error::DatabaseNotFound("7777".into())
    );

    // Malformed requests are refused before they reach the catalog.
    let bad_type = raw
        .upsert_columns(proto::UpsertColumnsRequest {
            table_id: table.id,
            columns: vec![proto::ColumnRequest {
                name: "weird".into(),
                column_type: 99,
            }],
        })
        .await
        .unwrap_err();
    assert_eq!(bad_type.code(), tonic::Code::InvalidArgument);
    assert_eq!(
        bad_type.message(),
        "column 'weird': unknown column type code 99"
    );
    assert!(matches!(
        error_detail(&bad_type),
        proto::error_detail::Error::InvalidRequest(_)
    ));
    let bad_file = raw
        .add_parquet_file(proto::AddParquetFileRequest { params: None })
        .await
        .unwrap_err();
    assert_eq!(bad_file.code(), tonic::Code::InvalidArgument);
    let version = raw
        .get_version(proto::GetVersionRequest {})
        .await
        .unwrap()
        .into_inner()
        .version;
    assert_eq!(version, 3, "database, table, one column; nothing else");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_column_type_conflict_arrives_as_the_exact_variant() {
    let fixture = crate::Fixture::sqlite().await.through_grpc().await;
    let c = &fixture.catalog;
    let db = c.create_database("telegraf").await.unwrap();
    let table = c.create_table(db.id, "cpu").await.unwrap();
    c.upsert_columns(table.id, &[("host", ColumnType::Tag)])
        .await
        .unwrap();

    let err = c
        .upsert_columns(table.id, &[("host", ColumnType::U64)])
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "column 'host' is tag in table 'cpu', got unsigned integer"
    );
    match err {
        Error::ColumnTypeConflict {
            table,
            column,
            existing,
            requested,
        } => {
            assert_eq!(table, "cpu");
            assert_eq!(column, "host");
            assert_eq!(existing, ColumnType::Tag);
            assert_eq!(requested, ColumnType::U64);
        }
        other => panic!("expected ColumnTypeConflict, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watchers_see_changes_made_through_another_replica_within_a_second() {
    // Two catalog service replicas over one PostgreSQL database, a client on each.
    let dsn = crate::postgres_database().await;
    let replica_a = RunningServer::start(Arc::new(SqlCatalog::connect(&dsn).await.unwrap())).await;
    let replica_b = RunningServer::start(Arc::new(SqlCatalog::connect(&dsn).await.unwrap())).await;
    let watcher = GrpcCatalog::connect_lazy(&replica_a.url, &ClientAuth::none()).unwrap();
    let writer = GrpcCatalog::connect_lazy(&replica_b.url, &ClientAuth::none()).unwrap();
    let mut versions = watcher.watch();
    assert_eq!(*versions.borrow(), 0);

    // Every kind of change, each made through replica B and seen through replica A.
    let db = writer.create_database("telegraf").await.unwrap();
    seen(&mut versions, 1, Duration::from_secs(1)).await;
    let table = writer.create_table(db.id, "cpu").await.unwrap();
    seen(&mut versions, 2, Duration::from_secs(1)).await;
    writer
        .upsert_columns(
            table.id,
            &[("host", ColumnType::Tag), ("time", ColumnType::Time)],
        )
        .await
        .unwrap();
    seen(&mut versions, 3, Duration::from_secs(1)).await;
    let partition = writer
        .create_partition(table.id, "2024-03-05")
        .await
        .unwrap();
    writer
        .add_parquet_file(ParquetFileParams {
            database_id: db.id,
            table_id: table.id,
            partition_id: partition.id,
            object_store_id: uuid::Uuid::new_v4(),
            min_time: 0,
            max_time: 1,
            row_count: 1,
            file_size_bytes: 1,
            compaction_level: 0,
            max_sequence_number: 1,
        })
        .await
        .unwrap();
    seen(&mut versions, 4, Duration::from_secs(1)).await;

    // A get of something that exists changes nothing, and nothing is announced.
    writer.create_database("telegraf").await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!versions.has_changed().unwrap());
    assert_eq!(watcher.version().await.unwrap(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_starts_before_its_server_and_recovers_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let dsn = format!("sqlite://{}", dir.path().join("catalog.db").display());
    let addr = free_addr();
    // Nothing listens yet: the client is still made, and fails calls cleanly.
    let client = GrpcCatalog::connect_lazy(&addr.to_string(), &ClientAuth::none()).unwrap();
    let mut versions = client.watch();
    let started = Instant::now();
    let err = client.list_databases().await.unwrap_err();
    assert!(matches!(err, Error::Rpc(_)), "{err}");
    assert!(
        err.to_string().contains("ListDatabases"),
        "names the call: {err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "bounded retries"
    );

    let server = IsolatedServer::start(&dsn, addr).await;
    let db = client.create_database("telegraf").await.unwrap();
    // The feed subscribed by itself once the server came up.
    seen(&mut versions, 1, Duration::from_secs(3)).await;

    server.stop();
    let err = client.database_by_name("telegraf").await.unwrap_err();
    assert!(matches!(err, Error::Rpc(_)), "{err}");
    let err = client.create_database("refused").await.unwrap_err();
    assert!(matches!(err, Error::Rpc(_)), "{err}");
    // Changed behind the service's back while it is down: noticed after the reconnect.
    let direct = SqlCatalog::connect(&dsn).await.unwrap();
    direct.create_database("while_down").await.unwrap();
    direct.close().await;

    let _server = IsolatedServer::start(&dsn, addr).await;
    assert_eq!(client.database_by_name("telegraf").await.unwrap(), Some(db));
    seen(&mut versions, 2, Duration::from_secs(3)).await;
    // And the resubscribed feed is live.
    client.create_database("after").await.unwrap();
    seen(&mut versions, 3, Duration::from_secs(1)).await;
    let names: Vec<String> = client
        .list_databases()
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.name)
        .collect();
    assert_eq!(names, ["after", "telegraf", "while_down"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_watchers_ends_their_streams_for_a_graceful_shutdown() {
    let catalog = Arc::new(SqlCatalog::connect("sqlite::memory:").await.unwrap());
    catalog.create_database("telegraf").await.unwrap();
    let server = RunningServer::start(catalog).await;
    let mut raw = CatalogServiceClient::connect(server.url.clone())
        .await
        .unwrap();
    let mut stream = raw
        .watch_version(proto::WatchVersionRequest { after_version: 0 })
        .await
        .unwrap()
        .into_inner();
    // The current version comes first, at once.
    let first = stream.message().await.unwrap().unwrap();
    assert_eq!(first.version, 1);

    server.service.close_watchers();
    let end = tokio::time::timeout(Duration::from_secs(5), stream.message())
        .await
        .expect("the stream ends");
    assert!(matches!(end, Ok(None)), "{end:?}");
    let refused = raw
        .watch_version(proto::WatchVersionRequest { after_version: 1 })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unavailable);
    // Unary calls still work until the server stops.
    raw.get_version(proto::GetVersionRequest {}).await.unwrap();
}
