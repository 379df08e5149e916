//! The server side: `ferrite.catalog.v1.CatalogService` over any [`Catalog`].
//!
//! Each unary RPC decodes its request, calls the catalog and encodes the answer; errors go
//! through [`status_of`](super::status_of). The change feed:
//!
//! ```text
//!  catalog DB ◄── poll version every 100 ms ── poller task (one per service, only while
//!                                                │          someone watches)
//!                                                ▼
//!                                   tokio watch channel (latest version)
//!                                     │          │          │
//!                              WatchVersion  WatchVersion  …   each: current version first,
//!                                stream        stream          then every change
//! ```
//!
//! The version row lives in the shared catalog database and is bumped in the transaction of
//! every create, so polling it sees changes made through any replica; one poll per replica
//! serves all of its watchers.

use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::time::Duration;

use ferrite_model::{ColumnType, DatabaseId, ParquetFileId, PartitionId, TableId};
use ferrite_proto::ferrite::catalog::v1 as proto;
use ferrite_retry::{Backoff, FailureLog};
use futures::Stream;
use proto::catalog_service_server::{CatalogService, CatalogServiceServer};
use tokio::sync::watch;
use tonic::{Request, Response, Status};

use super::convert;
use super::{invalid_request, status_of};
use crate::Catalog;

/// How often a serving replica reads the catalog version while anyone watches it.
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// While the catalog database is down, the poll backs off up to this pause.
const POLL_FAILURE_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// While it stays down, one log line this often.
const POLL_FAILURE_LOG_EVERY: Duration = Duration::from_secs(60);

/// The gRPC service for `catalog`, ready to add to a tonic (or axum) router.
///
/// Shorthand for `CatalogGrpcService::new(catalog).into_server()`; keep a
/// [`CatalogGrpcService`] instead when shutdown should end the watch streams.
pub fn catalog_service(catalog: Arc<dyn Catalog>) -> CatalogServiceServer<CatalogGrpcService> {
    CatalogGrpcService::new(catalog).into_server()
}

/// `ferrite.catalog.v1.CatalogService` over a [`Catalog`] (in the catalog service: the
/// [`SqlCatalog`](crate::SqlCatalog)). Cheap to clone; clones share the version feed.
#[derive(Debug, Clone)]
pub struct CatalogGrpcService {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    catalog: Arc<dyn Catalog>,
    /// The latest version the poller read. Watch streams hold its receivers; the poller
    /// reads the database only while there are some.
    feed: watch::Sender<i64>,
    /// Set once the poller task runs.
    poller: std::sync::OnceLock<()>,
    /// `true` once [`CatalogGrpcService::close_watchers`] was called.
    closing: watch::Sender<bool>,
}

impl CatalogGrpcService {
    /// Serve `catalog`. Spawns nothing until the first `WatchVersion` call, which must come
    /// from within a tokio runtime (it always does under tonic).
    pub fn new(catalog: Arc<dyn Catalog>) -> Self {
        Self {
            inner: Arc::new(Inner {
                catalog,
                feed: watch::Sender::new(0),
                poller: std::sync::OnceLock::new(),
                closing: watch::Sender::new(false),
            }),
        }
    }

    /// The tonic service.
    pub fn into_server(self) -> CatalogServiceServer<Self> {
        CatalogServiceServer::new(self).max_decoding_message_size(super::MAX_MESSAGE_BYTES)
    }

    /// End every `WatchVersion` stream, now and later (later calls get `UNAVAILABLE`).
    /// Call it when the server begins a graceful shutdown: watch streams never end on their
    /// own, so a server waiting for its connections to finish would wait forever. Clients
    /// reconnect, to another replica if there is one.
    pub fn close_watchers(&self) {
        self.inner.closing.send_replace(true);
    }

    /// The catalog version as this service's poller reads it, for the process that hosts
    /// the catalog itself (`ferrite serve`): the same feed `WatchVersion` streams, kept
    /// while this service (or a clone) lives.
    pub fn watch(&self) -> watch::Receiver<i64> {
        let feed = self.inner.feed.subscribe();
        self.ensure_poller();
        feed
    }

    /// Also publish the versions `commits` announces (the catalog database's own process
    /// committing, e.g. the management API in the catalog service) the moment they are
    /// committed, instead of at the next poll: watchers learn of a deleted table within
    /// milliseconds.
    pub fn follow_commits(&self, mut commits: watch::Receiver<i64>) {
        let inner = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            while commits.changed().await.is_ok() {
                let version = *commits.borrow_and_update();
                let Some(inner) = inner.upgrade() else {
                    return;
                };
                inner.feed.send_if_modified(|current| {
                    let newer = version > *current;
                    *current = (*current).max(version);
                    newer
                });
            }
        });
    }

    fn catalog(&self) -> &dyn Catalog {
        self.inner.catalog.as_ref()
    }

    /// Start the poller once. It stops when the service is dropped or closing.
    fn ensure_poller(&self) {
        self.inner.poller.get_or_init(|| {
            tokio::spawn(poll_versions(Arc::downgrade(&self.inner)));
        });
    }
}

/// Keep `feed` at the catalog's version while anyone watches.
async fn poll_versions(inner: Weak<Inner>) {
    let mut tick = tokio::time::interval(POLL_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Log a failure when it starts, then once a minute while it lasts; poll less often
    // while the database is down.
    let mut failures = FailureLog::new(POLL_FAILURE_LOG_EVERY);
    let mut backoff = Backoff::new(POLL_INTERVAL, POLL_FAILURE_BACKOFF_MAX);
    loop {
        tick.tick().await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        if *inner.closing.borrow() {
            return;
        }
        if inner.feed.receiver_count() == 0 {
            continue;
        }
        match inner.catalog.version().await {
            Ok(version) => {
                if let Some(failures) = failures.success() {
                    tracing::info!(version, failures, "catalog version readable again");
                    backoff.reset();
                }
                // Only forward: a commit followed above may have published a newer one.
                inner.feed.send_if_modified(|current| {
                    let newer = version > *current;
                    *current = (*current).max(version);
                    newer
                });
                metrics::gauge!("ferrite_catalog_version").set(version as f64);
            }
            Err(e) => {
                if let Some(failures) = failures.failure() {
                    tracing::warn!(
                        error = %e,
                        failures,
                        "cannot read the catalog version for watchers"
                    );
                }
                drop(inner); // a service dropped meanwhile ends the loop at the next tick
                tokio::time::sleep(backoff.next_delay()).await;
            }
        }
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<proto::VersionUpdate, Status>> + Send>>;

/// A decoded request or `INVALID_ARGUMENT`.
fn decoded<T>(r: Result<T, convert::Invalid>) -> Result<T, Status> {
    r.map_err(invalid_request)
}

#[tonic::async_trait]
impl CatalogService for CatalogGrpcService {
    async fn create_database(
        &self,
        request: Request<proto::CreateDatabaseRequest>,
    ) -> Result<Response<proto::CreateDatabaseResponse>, Status> {
        let name = request.into_inner().name;
        let db = self
            .catalog()
            .create_database(&name)
            .await
            .map_err(|e| status_of(&e))?;
        Ok(Response::new(proto::CreateDatabaseResponse {
            database: Some(db.into()),
        }))
    }

    async fn get_database_by_name(
        &self,
        request: Request<proto::GetDatabaseByNameRequest>,
    ) -> Result<Response<proto::GetDatabaseByNameResponse>, Status> {
        let name = request.into_inner().name;
        let db = self
            .catalog()
            .database_by_name(&name)
            .await
            .map_err(|e| status_of(&e))?;
        Ok(Response::new(proto::GetDatabaseByNameResponse {
            database: db.map(Into::into),
        }))
    }

    async fn list_databases(
        &self,
        _request: Request<proto::ListDatabasesRequest>,
    ) -> Result<Response<proto::ListDatabasesResponse>, Status> {
        let dbs = self
            .catalog()
            .list_databases()
            .await
            .map_err(|e| status_of(&e))?;
        Ok(Response::new(proto::ListDatabasesResponse {
            databases: dbs.into_iter().map(Into::into).collect(),
        }))
    }

    async fn create_table(
        &self,
        request: Request<proto::CreateTableRequest>,
    ) -> Result<Response<proto::CreateTableResponse>, Status> {
        let req = request.into_inner();
        let table = self
            .catalog()
            .create_table(DatabaseId(req.database_id), &req.name)
            .await
            .map_err(|e| status_of(&e))?;
        Ok(Response::new(proto::CreateTableResponse {
            table: Some(table.into()),
        }))
    }

    async fn list_tables(
        &self,
        request: Request<proto::ListTablesRequest>,
    ) -> Result<Response<proto::ListTablesResponse>, Status> {
        let req = request.into_inner();
        let tables = self
            .catalog()
            .list_tables(DatabaseId(req.database_id))
            .await
            .map_err(|e| status_of(&e))?;
        Ok(Response::new(proto::ListTablesResponse {
            tables: tables.into_iter().map(Into::into).collect(),
        }))
    }

    async fn upsert_columns(
        &self,
        request: Request<proto::UpsertColumnsRequest>,
    ) -> Result<Response<proto::UpsertColumnsResponse>, Status> {
        let req = request.into_inner();
        let types = req
            .columns
            .iter()
            .map(|c| {
                convert::column_type(c.column_type).map_err(|e| format!("column '{}': {e}", c.name))
            })
            .collect::<Result<Vec<ColumnType>, _>>();
        let types = decoded(types)?;
        let columns: Vec<(&str, ColumnType)> = req
            .columns
            .iter()
            .zip(types)
            .map(|(c, t)| (c.name.as_str(), t))
            .collect();
        let stored = self
            .catalog()
            .upsert_columns(TableId(req.table_id), &columns)
            .await
            .map_err(|e| status_of(&e))?;
        Ok(Response::new(proto::UpsertColumnsResponse {
            columns: stored.into_iter().map(Into::into).collect(),
        }))
    }

    async fn list_columns(
        &self,
        request: Request<proto::ListColumnsRequest>,
    ) -> Result<Response<proto::ListColumnsResponse>, Status> {
        let req = request.into_inner();
        let columns = self
            .catalog()
            .list_columns(TableId(req.table_id))
            .await
            .map_err(|e| status_of(&e))?;
        Ok(Response::new(proto::ListColumnsResponse {
            columns: columns.into_iter().map(Into::into).collect(),
        }))
    }

    async fn get_database_schema(
        &self,
        request: Request<proto::GetDatabaseSchemaRequest>,
    ) -> Result<Response<proto::GetDatabaseSchemaResponse>, Status> {
        let req = request.into_inner();
        let schema = self
            .catalog()
            .database_schema(DatabaseId(req.database_id))
            .await
            .map_err(|e| status_of(&e))?;
        Ok(Response::new(proto::GetDatabaseSchemaResponse {
            schema: Some(convert::database_schema_message(schema)),
        }))
    }

    async fn get_table_schema(
        &self,
        request: Request<proto::GetTableSchemaRequest>,
    ) -> Result<Response<proto::GetTableSchemaResponse>, Status> {
        let req = request.into_inner();
        let schema = self
            .catalog()
            .table_schema(TableId(req.table_id))
            .await
            .map_err(|e| status_of(&e))?;
        Ok(Response::new(proto::GetTableSchemaResponse {
            schema: Some(convert::table_schema_message(schema)),
        }))
    }

    async fn create_partition(
        &self,
        request: Request<proto::CreatePartitionRequest>,
    ) -> Result<Response<proto::CreatePartitionResponse>, Status> {
        let req = request.into_inner();
        let partition = self
            .catalog()
            .create_partition(TableId(req.table_id), &req.key)
            .await
            .map_err(|e| status_of(&e))?;
        Ok(Response::new(proto::CreatePartitionResponse {
            partition: Some(partition.into()),
        }))
    }

    async fn extend_sort_key(
        &self,
        request: Request<proto::ExtendSortKeyRequest>,
    ) -> Result<Response<proto::ExtendSortKeyResponse>, Status> {
        let req = request.into_inner();
        let partition = self
            .catalog()
            .extend_sort_key(PartitionId(req.partition_id), &req.tags)
            .await
            .map_err(|e| status_of(&e))?;
        Ok(Response::new(proto::ExtendSortKeyResponse {
            partition: Some(partition.into()),
        }))
    }

    async fn list_partitions(
        &self,
        request: Request<proto::ListPartitionsRequest>,
    ) -> Result<Response<proto::ListPartitionsResponse>, Status> {
        let partitions = self
            .catalog()
            .table_partitions(TableId(request.into_inner().table_id))
            .await
            .map_err(|e| status_of(&e))?;
        Ok(Response::new(proto::ListPartitionsResponse {
            partitions: partitions.into_iter().map(Into::into).collect(),
        }))
    }

    async fn add_parquet_file(
        &self,
        request: Request<proto::AddParquetFileRequest>,
    ) -> Result<Response<proto::AddParquetFileResponse>, Status> {
        let req = request.into_inner();
        let params = decoded(
            convert::required(req.params, "params").and_then(convert::parquet_file_params),
        )?;
        let file = self
            .catalog()
            .add_parquet_file(params)
            .await
            .map_err(|e| status_of(&e))?;
        Ok(Response::new(proto::AddParquetFileResponse {
            file: Some(file.into()),
        }))
    }

    async fn list_parquet_files(
        &self,
        request: Request<proto::ListParquetFilesRequest>,
    ) -> Result<Response<proto::ListParquetFilesResponse>, Status> {
        let req = request.into_inner();
        let files = self
            .catalog()
            .parquet_files(TableId(req.table_id))
            .await
            .map_err(|e| status_of(&e))?;
        Ok(Response::new(proto::ListParquetFilesResponse {
            files: files.into_iter().map(Into::into).collect(),
        }))
    }

    async fn acquire_lease(
        &self,
        request: Request<proto::AcquireLeaseRequest>,
    ) -> Result<Response<proto::AcquireLeaseResponse>, Status> {
        let req = request.into_inner();
        let lease = self
            .catalog()
            .acquire_lease(&req.name, &req.holder, req.ttl_ns)
            .await
            .map_err(|e| status_of(&e))?;
        Ok(Response::new(proto::AcquireLeaseResponse {
            holder: lease.holder,
            expires_at: lease.expires_at,
            acquired: lease.acquired,
        }))
    }

    async fn release_lease(
        &self,
        request: Request<proto::ReleaseLeaseRequest>,
    ) -> Result<Response<proto::ReleaseLeaseResponse>, Status> {
        let req = request.into_inner();
        self.catalog()
            .release_lease(&req.name, &req.holder)
            .await
            .map_err(|e| status_of(&e))?;
        Ok(Response::new(proto::ReleaseLeaseResponse {}))
    }

    async fn get_lease(
        &self,
        request: Request<proto::GetLeaseRequest>,
    ) -> Result<Response<proto::GetLeaseResponse>, Status> {
        let req = request.into_inner();
        let lease = self
            .catalog()
            .lease(&req.name)
            .await
            .map_err(|e| status_of(&e))?;
        Ok(Response::new(proto::GetLeaseResponse {
            lease: lease.map(|lease| proto::AcquireLeaseResponse {
                holder: lease.holder,
                expires_at: lease.expires_at,
                acquired: lease.acquired,
            }),
        }))
    }

    async fn list_partition_summaries(
        &self,
        _request: Request<proto::ListPartitionSummariesRequest>,
    ) -> Result<Response<proto::ListPartitionSummariesResponse>, Status> {
        let partitions = self
            .catalog()
            .partition_summaries()
            .await
            .map_err(|e| status_of(&e))?;
        Ok(Response::new(proto::ListPartitionSummariesResponse {
            partitions: partitions.into_iter().map(Into::into).collect(),
        }))
    }

    async fn list_partition_files(
        &self,
        request: Request<proto::ListPartitionFilesRequest>,
    ) -> Result<Response<proto::ListPartitionFilesResponse>, Status> {
        let files = self
            .catalog()
            .partition_files(PartitionId(request.into_inner().partition_id))
            .await
            .map_err(|e| status_of(&e))?;
        Ok(Response::new(proto::ListPartitionFilesResponse {
            files: files.into_iter().map(Into::into).collect(),
        }))
    }

    async fn replace_files(
        &self,
        request: Request<proto::ReplaceFilesRequest>,
    ) -> Result<Response<proto::ReplaceFilesResponse>, Status> {
        let req = request.into_inner();
        let replaced: Vec<ParquetFileId> = req.replaced.into_iter().map(ParquetFileId).collect();
        let added = decoded(
            req.added
                .into_iter()
                .map(convert::parquet_file_params)
                .collect::<Result<Vec<_>, _>>(),
        )?;
        let files = self
            .catalog()
            .replace_files(&replaced, added)
            .await
            .map_err(|e| status_of(&e))?;
        Ok(Response::new(proto::ReplaceFilesResponse {
            files: files.into_iter().map(Into::into).collect(),
        }))
    }

    async fn skip_partition(
        &self,
        request: Request<proto::SkipPartitionRequest>,
    ) -> Result<Response<proto::SkipPartitionResponse>, Status> {
        let req = request.into_inner();
        self.catalog()
            .skip_partition(PartitionId(req.partition_id), &req.reason)
            .await
            .map_err(|e| status_of(&e))?;
        Ok(Response::new(proto::SkipPartitionResponse {}))
    }

    async fn unskip_partition(
        &self,
        request: Request<proto::UnskipPartitionRequest>,
    ) -> Result<Response<proto::UnskipPartitionResponse>, Status> {
        let removed = self
            .catalog()
            .unskip_partition(PartitionId(request.into_inner().partition_id))
            .await
            .map_err(|e| status_of(&e))?;
        Ok(Response::new(proto::UnskipPartitionResponse { removed }))
    }

    async fn expire_files(
        &self,
        _request: Request<proto::ExpireFilesRequest>,
    ) -> Result<Response<proto::ExpireFilesResponse>, Status> {
        let marked = self
            .catalog()
            .expire_files()
            .await
            .map_err(|e| status_of(&e))?;
        Ok(Response::new(proto::ExpireFilesResponse { marked }))
    }

    async fn purge_deleted(
        &self,
        request: Request<proto::PurgeDeletedRequest>,
    ) -> Result<Response<proto::PurgeDeletedResponse>, Status> {
        let report = self
            .catalog()
            .purge_deleted(request.into_inner().grace_ns)
            .await
            .map_err(|e| status_of(&e))?;
        Ok(Response::new(proto::PurgeDeletedResponse {
            files_marked: report.files_marked,
            tables_removed: report.tables_removed,
            databases_removed: report.databases_removed,
        }))
    }

    async fn list_files_to_collect(
        &self,
        request: Request<proto::ListFilesToCollectRequest>,
    ) -> Result<Response<proto::ListFilesToCollectResponse>, Status> {
        let req = request.into_inner();
        let files = self
            .catalog()
            .files_to_collect(req.grace_ns, req.limit)
            .await
            .map_err(|e| status_of(&e))?;
        Ok(Response::new(proto::ListFilesToCollectResponse {
            files: files.into_iter().map(Into::into).collect(),
        }))
    }

    async fn delete_files(
        &self,
        request: Request<proto::DeleteFilesRequest>,
    ) -> Result<Response<proto::DeleteFilesResponse>, Status> {
        let ids: Vec<ParquetFileId> = request
            .into_inner()
            .ids
            .into_iter()
            .map(ParquetFileId)
            .collect();
        let removed = self
            .catalog()
            .delete_files(&ids)
            .await
            .map_err(|e| status_of(&e))?;
        Ok(Response::new(proto::DeleteFilesResponse { removed }))
    }

    async fn referenced_objects(
        &self,
        request: Request<proto::ReferencedObjectsRequest>,
    ) -> Result<Response<proto::ReferencedObjectsResponse>, Status> {
        let ids = decoded(convert::object_ids(request.into_inner().object_store_ids))?;
        let found = self
            .catalog()
            .referenced_objects(&ids)
            .await
            .map_err(|e| status_of(&e))?;
        Ok(Response::new(proto::ReferencedObjectsResponse {
            object_store_ids: found.iter().map(|id| id.hyphenated().to_string()).collect(),
        }))
    }

    async fn create_token(
        &self,
        request: Request<proto::CreateTokenRequest>,
    ) -> Result<Response<proto::CreateTokenResponse>, Status> {
        let token = convert::required(request.into_inner().token, "token")
            .and_then(convert::new_token)
            .map_err(invalid_request)?;
        let token = self
            .catalog()
            .create_token(token)
            .await
            .map_err(|e| status_of(&e))?;
        Ok(Response::new(proto::CreateTokenResponse {
            token: Some(token.into()),
        }))
    }

    async fn list_tokens(
        &self,
        _request: Request<proto::ListTokensRequest>,
    ) -> Result<Response<proto::ListTokensResponse>, Status> {
        let tokens = self
            .catalog()
            .list_tokens()
            .await
            .map_err(|e| status_of(&e))?;
        Ok(Response::new(proto::ListTokensResponse {
            tokens: tokens.into_iter().map(Into::into).collect(),
        }))
    }

    async fn list_caches(
        &self,
        _request: Request<proto::ListCachesRequest>,
    ) -> Result<Response<proto::ListCachesResponse>, Status> {
        let caches = self
            .catalog()
            .list_caches()
            .await
            .map_err(|e| status_of(&e))?;
        Ok(Response::new(proto::ListCachesResponse {
            caches: caches
                .into_iter()
                .map(|c| super::cache_to_proto(&c))
                .collect(),
        }))
    }

    async fn update_token(
        &self,
        request: Request<proto::UpdateTokenRequest>,
    ) -> Result<Response<proto::UpdateTokenResponse>, Status> {
        let req = request.into_inner();
        let id = convert::token_id(&req.id).map_err(invalid_request)?;
        let permissions = if req.replace_permissions {
            Some(convert::permissions(&req.permissions).map_err(invalid_request)?)
        } else {
            None
        };
        let update = crate::TokenUpdate {
            description: req.description,
            permissions,
        };
        let token = self
            .catalog()
            .update_token(id, update)
            .await
            .map_err(|e| status_of(&e))?;
        Ok(Response::new(proto::UpdateTokenResponse {
            token: Some(token.into()),
        }))
    }

    async fn revoke_token(
        &self,
        request: Request<proto::RevokeTokenRequest>,
    ) -> Result<Response<proto::RevokeTokenResponse>, Status> {
        let id = convert::token_id(&request.into_inner().id).map_err(invalid_request)?;
        let token = self
            .catalog()
            .revoke_token(id)
            .await
            .map_err(|e| status_of(&e))?;
        Ok(Response::new(proto::RevokeTokenResponse {
            token: Some(token.into()),
        }))
    }

    async fn get_version(
        &self,
        _request: Request<proto::GetVersionRequest>,
    ) -> Result<Response<proto::GetVersionResponse>, Status> {
        let version = self.catalog().version().await.map_err(|e| status_of(&e))?;
        Ok(Response::new(proto::GetVersionResponse { version }))
    }

    type WatchVersionStream = WatchStream;

    async fn watch_version(
        &self,
        request: Request<proto::WatchVersionRequest>,
    ) -> Result<Response<Self::WatchVersionStream>, Status> {
        let after_version = request.into_inner().after_version;
        let mut closing = self.inner.closing.subscribe();
        if *closing.borrow_and_update() {
            return Err(Status::unavailable("catalog service is shutting down"));
        }
        // Subscribe before reading the version, so no change after the read is missed.
        let feed = self.inner.feed.subscribe();
        self.ensure_poller();
        let current = self.catalog().version().await.map_err(|e| status_of(&e))?;
        if current < after_version {
            tracing::warn!(
                current,
                after_version,
                "a watcher has seen a later catalog version than the catalog has: \
                 was the catalog database restored from a backup?"
            );
        }
        Ok(Response::new(Box::pin(version_updates(
            current, feed, closing,
        ))))
    }
}

/// `first`, then every value of `feed` that differs from the last one sent, until the
/// service closes its watchers or goes away.
fn version_updates(
    first: i64,
    feed: watch::Receiver<i64>,
    closing: watch::Receiver<bool>,
) -> impl Stream<Item = Result<proto::VersionUpdate, Status>> + Send {
    struct State {
        last: i64,
        sent_first: bool,
        feed: watch::Receiver<i64>,
        closing: watch::Receiver<bool>,
    }
    let state = State {
        last: first,
        sent_first: false,
        feed,
        closing,
    };
    futures::stream::unfold(state, |mut s| async move {
        if !s.sent_first {
            s.sent_first = true;
            let update = proto::VersionUpdate { version: s.last };
            return Some((Ok(update), s));
        }
        loop {
            tokio::select! {
                changed = s.feed.changed() => {
                    // An error: the service is gone.
                    changed.ok()?;
                    let version = *s.feed.borrow_and_update();
                    if version != s.last {
                        s.last = version;
                        return Some((Ok(proto::VersionUpdate { version }), s));
                    }
                }
                () = closed(&mut s.closing) => return None,
            }
        }
    })
}

/// Resolves once `closing` is `true` or its service is gone.
async fn closed(closing: &mut watch::Receiver<bool>) {
    // Either outcome ends the wait; the guard is dropped here, before any other await.
    let _ = closing.wait_for(|closing| *closing).await;
}
