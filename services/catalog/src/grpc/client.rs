//! The client side: [`GrpcCatalog`], the [`Catalog`] of every service but the catalog
//! service itself.
//!
//! ```text
//!  call ──► attempt (timeout 6 s) ──► ok ──► decode reply
//!              │ transport failure / UNAVAILABLE / timeout
//!              ▼
//!           backoff 50, 100, 200 ms … (+ jitter) ──► again, at most 5 attempts within 10 s
//!              │ out of attempts or time
//!              ▼
//!           Error::Rpc (a detailed error from the catalog: its exact variant at once)
//!
//!  watch() ──► background task: WatchVersion stream ──► watch::Sender<i64>
//!                    ▲ stream lost: backoff 50 ms … 1 s (+ jitter)│
//!                    └─────────────────────────────────────────────┘
//! ```
//!
//! The channel connects lazily and reconnects by itself, so a service starts while the
//! catalog service is down and recovers when it is back, without a restart.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use ferrite_model::{
    ColumnType, DatabaseId, DatabaseSchema, ParquetFileId, PartitionId, TableId, TableSchema,
};
use ferrite_proto::auth::{AuthChannel, ClientAuth};
use ferrite_proto::ferrite::catalog::v1 as proto;
use ferrite_retry::{Backoff, FailureLog};
use proto::catalog_service_client::CatalogServiceClient;
use tokio::sync::watch;
use tokio::time::Instant;
use tonic::transport::Endpoint;
use tonic::{Request, Response, Status};

use super::convert::{self, Invalid};
use super::{MAX_MESSAGE_BYTES, error_of, is_retryable};
use crate::{
    Catalog, Column, Database, Error, Lease, NewToken, ParquetFile, ParquetFileParams, Partition,
    PartitionSummary, PurgeReport, Result, Table, TokenRecord, TokenUpdate,
};

/// Longest wait for one attempt's reply. Above the catalog's own 5 s wait for a database
/// connection, so a catalog whose database is down answers `UNAVAILABLE` before we give up.
const CALL_TIMEOUT: Duration = Duration::from_secs(6);
/// Longest time one call spends, retries included.
const CALL_BUDGET: Duration = Duration::from_secs(10);
/// Attempts per call, the first included.
const MAX_ATTEMPTS: u32 = 5;
/// First pause between attempts; doubles each time, with jitter.
const RETRY_BACKOFF: Duration = Duration::from_millis(50);
/// Longest wait for a TCP connection to the catalog service.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// HTTP/2 pings find a dead catalog service (no FIN, no RST: a vanished pod) within
/// interval + timeout, even on a connection that only carries the watch stream.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause before resubscribing to the change feed: doubles (with jitter) from the first to
/// the last value.
const WATCH_BACKOFF_MIN: Duration = Duration::from_millis(50);
const WATCH_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// While the feed stays lost, one log line this often.
const WATCH_LOG_EVERY: Duration = Duration::from_secs(60);

/// The catalog over gRPC: a client of the catalog service that implements [`Catalog`] with
/// the same results and errors as the [`SqlCatalog`](crate::SqlCatalog) behind the service.
///
/// Cheap to clone; clones share one HTTP/2 connection and one change feed.
#[derive(Debug, Clone)]
pub struct GrpcCatalog {
    client: CatalogServiceClient<AuthChannel>,
    /// The catalog service's address, for messages.
    target: Arc<str>,
    versions: Arc<Versions>,
}

/// The change feed, started by the first [`GrpcCatalog::watch`].
#[derive(Debug)]
struct Versions {
    /// Keeps the channel open as long as a `GrpcCatalog` lives, and is cloned for callers.
    rx: watch::Receiver<i64>,
    /// The sender, until `watch` hands it to the task that follows the feed.
    tx: Mutex<Option<watch::Sender<i64>>>,
}

impl GrpcCatalog {
    /// A client of the catalog service at `url` (`http://host:port`; a bare `host:port`
    /// means `http://`). Does not connect: the first call does, and every call reconnects
    /// if needed, so this succeeds while the catalog service is down. Needs a tokio
    /// runtime.
    /// Every call carries `auth`'s token, the cluster-internal one; an `https://` URL is
    /// verified with `auth`'s roots.
    pub fn connect_lazy(url: &str, auth: &ClientAuth) -> Result<Self> {
        let url = if url.contains("://") {
            url.to_owned()
        } else {
            format!("http://{url}")
        };
        let endpoint = Endpoint::from_shared(url.clone())
            .map_err(|e| Error::Rpc(format!("invalid catalog service address '{url}': {e}")))?
            .connect_timeout(CONNECT_TIMEOUT)
            .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
            .keep_alive_timeout(KEEPALIVE_TIMEOUT)
            .keep_alive_while_idle(true)
            .tcp_nodelay(true);
        let endpoint = auth
            .endpoint(endpoint)
            .map_err(|e| Error::Rpc(format!("TLS for the catalog service '{url}': {e}")))?;
        Ok(Self::with_channel(
            auth.channel(endpoint.connect_lazy()),
            &url,
        ))
    }

    /// A client over an existing channel (for example one with TLS); `target` names the
    /// service in error messages.
    pub fn with_channel(channel: AuthChannel, target: &str) -> Self {
        let (tx, rx) = watch::channel(0);
        Self {
            client: CatalogServiceClient::new(channel).max_decoding_message_size(MAX_MESSAGE_BYTES),
            target: target.into(),
            versions: Arc::new(Versions {
                rx,
                tx: Mutex::new(Some(tx)),
            }),
        }
    }

    /// The catalog version as the change feed reports it: a receiver that is notified
    /// whenever it changes, for caches to invalidate on. The first call starts a background
    /// task that subscribes to `WatchVersion` and resubscribes with backoff, forever, while
    /// this client or any receiver lives.
    ///
    /// The value is 0 until the feed's first message; after that, a change committed
    /// through any catalog service replica shows here within about 100 ms plus the network.
    /// After a lost connection the first message of the new stream is the current version,
    /// so whatever changed meanwhile is noticed too. Needs a tokio runtime.
    pub fn watch(&self) -> watch::Receiver<i64> {
        let sender = self
            .versions
            .tx
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(tx) = sender {
            tokio::spawn(follow_versions(
                self.client.clone(),
                tx,
                Arc::clone(&self.target),
            ));
        }
        let mut rx = self.versions.rx.clone();
        rx.mark_unchanged();
        rx
    }

    /// One call: attempts with a timeout each, retried with backoff while the failure is
    /// transient and the budget lasts. Every RPC of the catalog service is idempotent, so a
    /// retry after a lost reply is safe.
    async fn call<T, F, Fut>(&self, method: &str, attempt: F) -> Result<T>
    where
        F: Fn(CatalogServiceClient<AuthChannel>, Duration) -> Fut,
        Fut: Future<Output = Result<Response<T>, Status>>,
    {
        let deadline = Instant::now() + CALL_BUDGET;
        let mut backoff = Backoff::new(RETRY_BACKOFF, CALL_BUDGET / 4);
        let mut attempts = 0;
        loop {
            attempts += 1;
            let timeout = CALL_TIMEOUT.min(deadline.saturating_duration_since(Instant::now()));
            let status =
                match tokio::time::timeout(timeout, attempt(self.client.clone(), timeout)).await {
                    Ok(Ok(response)) => return Ok(response.into_inner()),
                    Ok(Err(status)) => status,
                    Err(_) => Status::deadline_exceeded(format!("no reply within {timeout:?}")),
                };
            let pause = backoff.next_delay();
            let retry = is_retryable(&status)
                && attempts < MAX_ATTEMPTS
                && Instant::now() + pause < deadline;
            if !retry {
                return Err(error_of(&status, &format!("{method} on {}", self.target)));
            }
            tracing::debug!(
                method,
                target = %self.target,
                attempts,
                code = ?status.code(),
                message = status.message(),
                "catalog call failed, retrying"
            );
            tokio::time::sleep(pause).await;
        }
    }
}

/// `message` with the attempt's deadline, which the server can honour too.
fn timed<T>(message: T, timeout: Duration) -> Request<T> {
    let mut request = Request::new(message);
    request.set_timeout(timeout);
    request
}

/// A reply this client cannot decode: corrupt, like a catalog row `SqlCatalog` cannot read.
/// A list of files as the server sent it, decoded.
fn files_reply(files: Vec<proto::ParquetFile>) -> Result<Vec<ParquetFile>> {
    reply(files.into_iter().map(convert::parquet_file).collect())
}

fn reply<T>(decoded: Result<T, Invalid>) -> Result<T> {
    decoded.map_err(|e| Error::Corrupt(format!("catalog service reply: {e}")))
}

/// Follow the change feed into `tx` until every receiver is gone.
async fn follow_versions(
    client: CatalogServiceClient<AuthChannel>,
    tx: watch::Sender<i64>,
    target: Arc<str>,
) {
    let mut backoff = Backoff::new(WATCH_BACKOFF_MIN, WATCH_BACKOFF_MAX);
    // Warn when the feed is lost, then once a minute while it stays lost.
    let mut failures = FailureLog::new(WATCH_LOG_EVERY);
    loop {
        let mut live = false;
        let outcome = tokio::select! {
            () = tx.closed() => return,
            outcome = follow_once(client.clone(), &tx, &mut live) => outcome,
        };
        if live {
            backoff.reset();
            failures.success();
        }
        let reason = match outcome {
            Ok(()) => "stream ended".to_owned(),
            Err(status) => format!("{:?}: {}", status.code(), status.message()),
        };
        match failures.failure() {
            Some(n) if n == failures.streak() => {
                tracing::warn!(target = %target, reason, "catalog change feed lost, resubscribing");
            }
            Some(n) => tracing::warn!(
                target = %target,
                reason,
                failures = n,
                "catalog change feed still unavailable"
            ),
            None => {}
        }
        tokio::select! {
            () = tx.closed() => return,
            () = tokio::time::sleep(backoff.next_delay()) => {}
        }
    }
}

/// One `WatchVersion` stream, until it fails or ends. Sets `live` once a message arrived.
async fn follow_once(
    mut client: CatalogServiceClient<AuthChannel>,
    tx: &watch::Sender<i64>,
    live: &mut bool,
) -> Result<(), Status> {
    let after_version = *tx.borrow();
    let mut stream = client
        .watch_version(proto::WatchVersionRequest { after_version })
        .await?
        .into_inner();
    while let Some(update) = stream.message().await? {
        if !*live {
            tracing::debug!(version = update.version, "catalog change feed live");
            *live = true;
        }
        tx.send_if_modified(|version| {
            let changed = *version != update.version;
            *version = update.version;
            changed
        });
        metrics::gauge!("ferrite_catalog_version").set(update.version as f64);
    }
    Ok(())
}

#[async_trait]
impl Catalog for GrpcCatalog {
    async fn create_database(&self, name: &str) -> Result<Database> {
        let request = proto::CreateDatabaseRequest {
            name: name.to_owned(),
        };
        let response = self
            .call("CreateDatabase", |mut c, t| {
                let request = timed(request.clone(), t);
                async move { c.create_database(request).await }
            })
            .await?;
        Ok(reply(convert::required(response.database, "database"))?.into())
    }

    async fn database_by_name(&self, name: &str) -> Result<Option<Database>> {
        let request = proto::GetDatabaseByNameRequest {
            name: name.to_owned(),
        };
        let response = self
            .call("GetDatabaseByName", |mut c, t| {
                let request = timed(request.clone(), t);
                async move { c.get_database_by_name(request).await }
            })
            .await?;
        Ok(response.database.map(Into::into))
    }

    async fn list_databases(&self) -> Result<Vec<Database>> {
        let response = self
            .call("ListDatabases", |mut c, t| {
                let request = timed(proto::ListDatabasesRequest {}, t);
                async move { c.list_databases(request).await }
            })
            .await?;
        Ok(response.databases.into_iter().map(Into::into).collect())
    }

    async fn create_table(&self, database_id: DatabaseId, name: &str) -> Result<Table> {
        let request = proto::CreateTableRequest {
            database_id: database_id.get(),
            name: name.to_owned(),
        };
        let response = self
            .call("CreateTable", |mut c, t| {
                let request = timed(request.clone(), t);
                async move { c.create_table(request).await }
            })
            .await?;
        Ok(reply(convert::required(response.table, "table"))?.into())
    }

    async fn list_tables(&self, database_id: DatabaseId) -> Result<Vec<Table>> {
        let request = proto::ListTablesRequest {
            database_id: database_id.get(),
        };
        let response = self
            .call("ListTables", |mut c, t| {
                let request = timed(request, t);
                async move { c.list_tables(request).await }
            })
            .await?;
        Ok(response.tables.into_iter().map(Into::into).collect())
    }

    async fn upsert_columns(
        &self,
        table_id: TableId,
        columns: &[(&str, ColumnType)],
    ) -> Result<Vec<Column>> {
        if columns.is_empty() {
            return Ok(Vec::new());
        }
        let request = proto::UpsertColumnsRequest {
            table_id: table_id.get(),
            columns: columns
                .iter()
                .map(|&(name, column_type)| proto::ColumnRequest {
                    name: name.to_owned(),
                    column_type: column_type.code().into(),
                })
                .collect(),
        };
        let response = self
            .call("UpsertColumns", |mut c, t| {
                let request = timed(request.clone(), t);
                async move { c.upsert_columns(request).await }
            })
            .await?;
        if response.columns.len() != columns.len() {
            return Err(Error::Corrupt(format!(
                "catalog service reply: {} columns for {} requested",
                response.columns.len(),
                columns.len()
            )));
        }
        reply(response.columns.into_iter().map(convert::column).collect())
    }

    async fn list_columns(&self, table_id: TableId) -> Result<Vec<Column>> {
        let request = proto::ListColumnsRequest {
            table_id: table_id.get(),
        };
        let response = self
            .call("ListColumns", |mut c, t| {
                let request = timed(request, t);
                async move { c.list_columns(request).await }
            })
            .await?;
        reply(response.columns.into_iter().map(convert::column).collect())
    }

    async fn database_schema(&self, database_id: DatabaseId) -> Result<DatabaseSchema> {
        let request = proto::GetDatabaseSchemaRequest {
            database_id: database_id.get(),
        };
        let response = self
            .call("GetDatabaseSchema", |mut c, t| {
                let request = timed(request, t);
                async move { c.get_database_schema(request).await }
            })
            .await?;
        reply(convert::required(response.schema, "schema").and_then(convert::database_schema))
    }

    async fn table_schema(&self, table_id: TableId) -> Result<TableSchema> {
        let request = proto::GetTableSchemaRequest {
            table_id: table_id.get(),
        };
        let response = self
            .call("GetTableSchema", |mut c, t| {
                let request = timed(request, t);
                async move { c.get_table_schema(request).await }
            })
            .await?;
        reply(convert::required(response.schema, "schema").and_then(convert::table_schema))
    }

    async fn create_partition(&self, table_id: TableId, key: &str) -> Result<Partition> {
        let request = proto::CreatePartitionRequest {
            table_id: table_id.get(),
            key: key.to_owned(),
        };
        let response = self
            .call("CreatePartition", |mut c, t| {
                let request = timed(request.clone(), t);
                async move { c.create_partition(request).await }
            })
            .await?;
        Ok(reply(convert::required(response.partition, "partition"))?.into())
    }

    async fn extend_sort_key(
        &self,
        partition_id: PartitionId,
        tags: &[String],
    ) -> Result<Partition> {
        let request = proto::ExtendSortKeyRequest {
            partition_id: partition_id.get(),
            tags: tags.to_vec(),
        };
        let response = self
            .call("ExtendSortKey", |mut c, t| {
                let request = timed(request.clone(), t);
                async move { c.extend_sort_key(request).await }
            })
            .await?;
        Ok(reply(convert::required(response.partition, "partition"))?.into())
    }

    async fn table_partitions(&self, table_id: TableId) -> Result<Vec<Partition>> {
        let request = proto::ListPartitionsRequest {
            table_id: table_id.get(),
        };
        let response = self
            .call("ListPartitions", |mut c, t| {
                let request = timed(request, t);
                async move { c.list_partitions(request).await }
            })
            .await?;
        Ok(response.partitions.into_iter().map(Into::into).collect())
    }

    async fn add_parquet_file(&self, params: ParquetFileParams) -> Result<ParquetFile> {
        let request = proto::AddParquetFileRequest {
            params: Some(params.into()),
        };
        let response = self
            .call("AddParquetFile", |mut c, t| {
                let request = timed(request.clone(), t);
                async move { c.add_parquet_file(request).await }
            })
            .await?;
        reply(convert::required(response.file, "file").and_then(convert::parquet_file))
    }

    async fn parquet_files(&self, table_id: TableId) -> Result<Vec<ParquetFile>> {
        let request = proto::ListParquetFilesRequest {
            table_id: table_id.get(),
        };
        let response = self
            .call("ListParquetFiles", |mut c, t| {
                let request = timed(request, t);
                async move { c.list_parquet_files(request).await }
            })
            .await?;
        files_reply(response.files)
    }

    async fn acquire_lease(&self, name: &str, holder: &str, ttl_ns: i64) -> Result<Lease> {
        let request = proto::AcquireLeaseRequest {
            name: name.to_owned(),
            holder: holder.to_owned(),
            ttl_ns,
        };
        let response = self
            .call("AcquireLease", |mut c, t| {
                let request = timed(request.clone(), t);
                async move { c.acquire_lease(request).await }
            })
            .await?;
        Ok(Lease {
            holder: response.holder,
            expires_at: response.expires_at,
            acquired: response.acquired,
        })
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        let request = proto::ReleaseLeaseRequest {
            name: name.to_owned(),
            holder: holder.to_owned(),
        };
        self.call("ReleaseLease", |mut c, t| {
            let request = timed(request.clone(), t);
            async move { c.release_lease(request).await }
        })
        .await?;
        Ok(())
    }

    async fn lease(&self, name: &str) -> Result<Option<Lease>> {
        let request = proto::GetLeaseRequest {
            name: name.to_owned(),
        };
        let response = self
            .call("GetLease", |mut c, t| {
                let request = timed(request.clone(), t);
                async move { c.get_lease(request).await }
            })
            .await?;
        Ok(response.lease.map(|lease| Lease {
            holder: lease.holder,
            expires_at: lease.expires_at,
            acquired: false,
        }))
    }

    async fn partition_summaries(&self) -> Result<Vec<PartitionSummary>> {
        let response = self
            .call("ListPartitionSummaries", |mut c, t| {
                let request = timed(proto::ListPartitionSummariesRequest {}, t);
                async move { c.list_partition_summaries(request).await }
            })
            .await?;
        reply(
            response
                .partitions
                .into_iter()
                .map(convert::partition_summary)
                .collect(),
        )
    }

    async fn partition_files(&self, partition_id: PartitionId) -> Result<Vec<ParquetFile>> {
        let request = proto::ListPartitionFilesRequest {
            partition_id: partition_id.get(),
        };
        let response = self
            .call("ListPartitionFiles", |mut c, t| {
                let request = timed(request, t);
                async move { c.list_partition_files(request).await }
            })
            .await?;
        files_reply(response.files)
    }

    async fn replace_files(
        &self,
        replaced: &[ParquetFileId],
        added: Vec<ParquetFileParams>,
    ) -> Result<Vec<ParquetFile>> {
        let request = proto::ReplaceFilesRequest {
            replaced: replaced.iter().map(|id| id.get()).collect(),
            added: added.into_iter().map(Into::into).collect(),
        };
        let response = self
            .call("ReplaceFiles", |mut c, t| {
                let request = timed(request.clone(), t);
                async move { c.replace_files(request).await }
            })
            .await?;
        files_reply(response.files)
    }

    async fn skip_partition(&self, partition_id: PartitionId, reason: &str) -> Result<()> {
        let request = proto::SkipPartitionRequest {
            partition_id: partition_id.get(),
            reason: reason.to_owned(),
        };
        self.call("SkipPartition", |mut c, t| {
            let request = timed(request.clone(), t);
            async move { c.skip_partition(request).await }
        })
        .await?;
        Ok(())
    }

    async fn unskip_partition(&self, partition_id: PartitionId) -> Result<bool> {
        let request = proto::UnskipPartitionRequest {
            partition_id: partition_id.get(),
        };
        let response = self
            .call("UnskipPartition", |mut c, t| {
                let request = timed(request, t);
                async move { c.unskip_partition(request).await }
            })
            .await?;
        Ok(response.removed)
    }

    async fn expire_files(&self) -> Result<u64> {
        let response = self
            .call("ExpireFiles", |mut c, t| {
                let request = timed(proto::ExpireFilesRequest {}, t);
                async move { c.expire_files(request).await }
            })
            .await?;
        Ok(response.marked)
    }

    async fn purge_deleted(&self, grace_ns: i64) -> Result<PurgeReport> {
        let request = proto::PurgeDeletedRequest { grace_ns };
        let response = self
            .call("PurgeDeleted", |mut c, t| {
                let request = timed(request, t);
                async move { c.purge_deleted(request).await }
            })
            .await?;
        Ok(PurgeReport {
            files_marked: response.files_marked,
            tables_removed: response.tables_removed,
            databases_removed: response.databases_removed,
        })
    }

    async fn files_to_collect(&self, grace_ns: i64, limit: i64) -> Result<Vec<ParquetFile>> {
        let request = proto::ListFilesToCollectRequest { grace_ns, limit };
        let response = self
            .call("ListFilesToCollect", |mut c, t| {
                let request = timed(request, t);
                async move { c.list_files_to_collect(request).await }
            })
            .await?;
        files_reply(response.files)
    }

    async fn delete_files(&self, ids: &[ParquetFileId]) -> Result<u64> {
        let request = proto::DeleteFilesRequest {
            ids: ids.iter().map(|id| id.get()).collect(),
        };
        let response = self
            .call("DeleteFiles", |mut c, t| {
                let request = timed(request.clone(), t);
                async move { c.delete_files(request).await }
            })
            .await?;
        Ok(response.removed)
    }

    async fn referenced_objects(&self, ids: &[uuid::Uuid]) -> Result<Vec<uuid::Uuid>> {
        let request = proto::ReferencedObjectsRequest {
            object_store_ids: ids.iter().map(|id| id.hyphenated().to_string()).collect(),
        };
        let response = self
            .call("ReferencedObjects", |mut c, t| {
                let request = timed(request.clone(), t);
                async move { c.referenced_objects(request).await }
            })
            .await?;
        reply(convert::object_ids(response.object_store_ids))
    }

    async fn create_token(&self, token: NewToken) -> Result<TokenRecord> {
        let request = proto::CreateTokenRequest {
            token: Some(token.into()),
        };
        let response = self
            .call("CreateToken", |mut c, t| {
                let request = timed(request.clone(), t);
                async move { c.create_token(request).await }
            })
            .await?;
        reply(convert::required(response.token, "token").and_then(convert::token_record))
    }

    async fn list_tokens(&self) -> Result<Vec<TokenRecord>> {
        let response = self
            .call("ListTokens", |mut c, t| {
                let request = timed(proto::ListTokensRequest {}, t);
                async move { c.list_tokens(request).await }
            })
            .await?;
        response
            .tokens
            .into_iter()
            .map(|t| reply(convert::token_record(t)))
            .collect()
    }

    async fn list_caches(&self) -> Result<Vec<ferrite_model::cache::CacheDefinition>> {
        let response = self
            .call("ListCaches", |mut c, t| {
                let request = timed(proto::ListCachesRequest {}, t);
                async move { c.list_caches(request).await }
            })
            .await?;
        response
            .caches
            .into_iter()
            .map(|c| super::cache_from_proto(c).map_err(Error::Corrupt))
            .collect()
    }

    async fn update_token(&self, id: uuid::Uuid, update: TokenUpdate) -> Result<TokenRecord> {
        let request = proto::UpdateTokenRequest {
            id: id.hyphenated().to_string(),
            description: update.description,
            replace_permissions: update.permissions.is_some(),
            permissions: update
                .permissions
                .unwrap_or_default()
                .into_iter()
                .map(Into::into)
                .collect(),
        };
        let response = self
            .call("UpdateToken", |mut c, t| {
                let request = timed(request.clone(), t);
                async move { c.update_token(request).await }
            })
            .await?;
        reply(convert::required(response.token, "token").and_then(convert::token_record))
    }

    async fn revoke_token(&self, id: uuid::Uuid) -> Result<TokenRecord> {
        let request = proto::RevokeTokenRequest {
            id: id.hyphenated().to_string(),
        };
        let response = self
            .call("RevokeToken", |mut c, t| {
                let request = timed(request.clone(), t);
                async move { c.revoke_token(request).await }
            })
            .await?;
        reply(convert::required(response.token, "token").and_then(convert::token_record))
    }

    async fn version(&self) -> Result<i64> {
        let response = self
            .call("GetVersion", |mut c, t| {
                let request = timed(proto::GetVersionRequest {}, t);
                async move { c.get_version(request).await }
            })
            .await?;
        Ok(response.version)
    }
}
