//! `ferrite run <service>`: one service per process, talking gRPC to the others.
//!
//! ```text
//!  router ──gRPC write──► ingester ×N ──gRPC──► catalog ──► PostgreSQL
//!    │ └─proxy (HTTP, Flight)─► querier ──Flight──► ingesters
//!    └──────────gRPC────────────► catalog ◄──────── querier
//!                        object store (S3 / MinIO / dir) ◄── ingesters, queriers
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use ferrite_auth::management::{self, Management};
use ferrite_auth::{AuthMode, Authorizer, authenticate, hash_token};
use ferrite_catalog::grpc::{CatalogGrpcService, GrpcCatalog};
use ferrite_catalog::{CachedCatalog, CatalogRef, SqlCatalog};
use ferrite_compactor::Compactor;
use ferrite_ingester::api::{IngesterQuery, IngesterWrite};
use ferrite_ingester::grpc::{FlightIngesterQuery, GrpcIngesterWrite};
use ferrite_ingester::{Ingester, IngesterConfig};
use ferrite_proto::auth::{Bearer, ClientAuth};
use ferrite_querier::QueryEngine;
use ferrite_retry::{Backoff, FailureLog};
use ferrite_router::placement::Placement;
use ferrite_router::proxy::QueryProxy;
use ferrite_router::{Router, RouterConfig};
use tokio::net::TcpListener;
use tracing::{info, warn};

use crate::config::{
    AuthArgs, CompactionArgs, ObjectStoreConfig, QueryLimits, TlsArgs, drain_timeout,
};
use crate::discovery::{Endpoints, Peer, Peers, urls};
use crate::fanout::AllIngesters;
use crate::ready::{Started, serve_while_starting};
use crate::serve::{one_port, querier_config};
use crate::tls::PeerNames;

/// The services `ferrite run` can start.
#[derive(Debug, Subcommand)]
pub enum Service {
    /// The catalog service: the only user of PostgreSQL.
    Catalog(CatalogArgs),
    /// The front door: write APIs, placement on ingesters, queries proxied to queriers.
    Router(RouterArgs),
    /// Buffers writes behind a WAL and persists Parquet.
    Ingester(IngesterArgs),
    /// Runs queries over Parquet files and the ingesters' unpersisted data.
    Querier(QuerierArgs),
    /// Merges persisted files, enforces retention, collects garbage. Run one or more: one
    /// is active (a lease in the catalog), the others stand by.
    Compactor(CompactorArgs),
}

impl Service {
    /// The service's name: `router`, `ingester`, …
    pub fn name(&self) -> &'static str {
        match self {
            Service::Catalog(_) => "catalog",
            Service::Router(_) => "router",
            Service::Ingester(_) => "ingester",
            Service::Querier(_) => "querier",
            Service::Compactor(_) => "compactor",
        }
    }
}

/// Settings every service has.
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// Address for HTTP and gRPC (one port).
    #[arg(long, env = "FERRITE_BIND", default_value = "127.0.0.1:8181")]
    pub bind: SocketAddr,
    /// How long a shutdown waits for open connections.
    #[arg(long, env = "FERRITE_SHUTDOWN_GRACE_SECONDS", default_value_t = 10)]
    pub shutdown_grace_seconds: u64,
    #[command(flatten)]
    pub auth: AuthArgs,
    #[command(flatten)]
    pub tls: TlsArgs,
}

/// What a service needs to know about tokens and TLS.
struct Credentials {
    /// The admin token's hash; `None`: checking is off.
    admin_hash: Option<Arc<str>>,
    /// The token (and CA) for every call to another service over gRPC.
    client: ClientAuth,
    /// The same CA for HTTP/2 and HTTP/1.1 connections (the router's proxies).
    client_tls: rustls::ClientConfig,
    /// What `client_tls` checks discovered peers' certificates against.
    peer_names: PeerNames,
    /// What the service's own listener serves TLS with.
    server_tls: Option<Arc<rustls::ServerConfig>>,
}

impl Credentials {
    fn of(common: &CommonArgs) -> anyhow::Result<Self> {
        let token = common.auth.cluster_token()?;
        let bearer = Bearer::new(token.as_deref()).context("the admin token")?;
        let files = common.tls.files();
        let peer_names = PeerNames::default();
        Ok(Self {
            admin_hash: token.as_deref().map(|t| hash_token(t).into()),
            client: ClientAuth::new(bearer, common.tls.ca_pem()?),
            client_tls: crate::tls::client_config(files.ca.as_deref(), peer_names.clone())?,
            peer_names,
            server_tls: files.server()?,
        })
    }

    /// For a service only other services call (catalog, ingester).
    fn internal_only(&self) -> AuthMode {
        self.admin_hash
            .clone()
            .map_or(AuthMode::Disabled, AuthMode::InternalOnly)
    }

    /// For a front-door service: tokens checked against `catalog`, reloaded as `feed` moves.
    fn tokens(&self, catalog: CatalogRef, feed: tokio::sync::watch::Receiver<i64>) -> AuthMode {
        match &self.admin_hash {
            None => AuthMode::Disabled,
            Some(hash) => {
                let authorizer = Authorizer::new(catalog, hash.to_string());
                authorizer.follow(feed);
                AuthMode::Tokens(authorizer)
            }
        }
    }
}

/// `ferrite run catalog`.
#[derive(Debug, Clone, Args)]
pub struct CatalogArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// PostgreSQL (or SQLite) DSN.
    #[arg(long, env = "FERRITE_CATALOG_DSN")]
    pub catalog_dsn: String,
}

/// `ferrite run router`.
#[derive(Debug, Clone, Args)]
pub struct RouterArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Catalog service URL.
    #[arg(long, env = "FERRITE_CATALOG_URL")]
    pub catalog: String,
    /// Ingesters: comma-separated `http(s)://host:port`, `dns+http(s)://name:port` (every
    /// address the name resolves to) or `k8s+http(s)://service[.namespace]:port` (the ready
    /// endpoints of a Kubernetes Service, watched through the API server).
    #[arg(long, env = "FERRITE_INGESTERS")]
    pub ingesters: String,
    /// Queriers, same forms.
    #[arg(long, env = "FERRITE_QUERIERS")]
    pub queriers: String,
    /// Namespace of `k8s+` peers that name none (default: the service account's).
    #[arg(long, env = "FERRITE_K8S_NAMESPACE")]
    pub k8s_namespace: Option<String>,
    /// Copies of each write on distinct ingesters.
    #[arg(long, env = "FERRITE_REPLICATION", default_value_t = 1)]
    pub replication: usize,
    /// Largest accepted write body in bytes (before and after gunzip).
    #[arg(long, env = "FERRITE_MAX_REQUEST_BYTES", default_value_t = 10 << 20)]
    pub max_request_bytes: usize,
}

/// `ferrite run ingester`.
#[derive(Debug, Clone, Args)]
pub struct IngesterArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Catalog service URL.
    #[arg(long, env = "FERRITE_CATALOG_URL")]
    pub catalog: String,
    /// Directory of the write-ahead log (a persistent volume in Kubernetes).
    #[arg(long, env = "FERRITE_WAL_DIR")]
    pub wal_dir: PathBuf,
    #[command(flatten)]
    pub object_store: ObjectStoreConfig,
    /// Persist a partition once it buffers this many bytes.
    #[arg(long, env = "FERRITE_PERSIST_PARTITION_BYTES", default_value_t = 256 << 20)]
    pub persist_partition_bytes: usize,
    /// Persist a partition once its oldest unpersisted write is this many seconds old.
    #[arg(long, env = "FERRITE_PERSIST_AGE_SECONDS", default_value_t = 300)]
    pub persist_age_seconds: u64,
    /// Persist the largest partitions while the buffer exceeds this many bytes.
    #[arg(long, env = "FERRITE_BUFFER_BYTES", default_value_t = 1 << 30)]
    pub buffer_bytes: usize,
    /// Refuse writes (retryable) while the buffer exceeds this many bytes.
    #[arg(long, env = "FERRITE_MAX_BUFFER_BYTES", default_value_t = 4 << 30)]
    pub max_buffer_bytes: usize,
    /// On SIGTERM, wait at most this many seconds for everything to persist; what is left
    /// stays in the WAL and is replayed at the next start. 0: wait as long as it takes.
    #[arg(long, env = "FERRITE_DRAIN_TIMEOUT_SECONDS", default_value_t = 60)]
    pub drain_timeout_seconds: u64,
}

/// `ferrite run querier`.
#[derive(Debug, Clone, Args)]
pub struct QuerierArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Catalog service URL.
    #[arg(long, env = "FERRITE_CATALOG_URL")]
    pub catalog: String,
    /// Ingesters: comma-separated `http(s)://host:port`, `dns+http(s)://name:port` or
    /// `k8s+http(s)://service[.namespace]:port` (see `ferrite run router --help`).
    #[arg(long, env = "FERRITE_INGESTERS")]
    pub ingesters: String,
    /// Every querier of the cluster (this one may be included), same forms as
    /// `--ingesters`: `system.queries` shows the queries of all of them. Without it, only
    /// this querier's.
    #[arg(long, env = "FERRITE_QUERIERS")]
    pub queriers: Option<String>,
    /// Namespace of `k8s+` peers that name none (default: the service account's).
    #[arg(long, env = "FERRITE_K8S_NAMESPACE")]
    pub k8s_namespace: Option<String>,
    #[command(flatten)]
    pub object_store: ObjectStoreConfig,
    #[command(flatten)]
    pub query_limits: QueryLimits,
}

/// `ferrite run compactor`.
#[derive(Debug, Clone, Args)]
pub struct CompactorArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Catalog service URL.
    #[arg(long, env = "FERRITE_CATALOG_URL")]
    pub catalog: String,
    #[command(flatten)]
    pub object_store: ObjectStoreConfig,
    #[command(flatten)]
    pub compaction: CompactionArgs,
}

/// Run one service until SIGTERM / Ctrl-C. The port is bound first and answers `/health`
/// and `/ready` (503 until the service is built: a catalog database still coming up, a WAL
/// replay) from the first moment.
pub async fn run(
    service: Service,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let common = match &service {
        Service::Catalog(a) => &a.common,
        Service::Router(a) => &a.common,
        Service::Ingester(a) => &a.common,
        Service::Querier(a) => &a.common,
        Service::Compactor(a) => &a.common,
    };
    let credentials = Credentials::of(common)?;
    let listener = bind(common).await?;
    let grace = grace(common);
    let tls = credentials.server_tls.clone();
    let start = async move {
        match service {
            Service::Catalog(a) => start_catalog(a, &credentials).await,
            Service::Router(a) => start_router(a, &credentials),
            Service::Ingester(a) => start_ingester(a, &credentials).await,
            Service::Querier(a) => start_querier(a, &credentials),
            Service::Compactor(a) => start_compactor(a, &credentials),
        }
    };
    serve_while_starting(listener, start, shutdown, grace, tls).await
}

fn start_compactor(a: CompactorArgs, credentials: &Credentials) -> anyhow::Result<Started> {
    let catalog: CatalogRef = Arc::new(GrpcCatalog::connect_lazy(&a.catalog, &credentials.client)?);
    let store = a.object_store.build(PathBuf::from("objects"))?;
    let compactor = Arc::new(
        Compactor::new(a.compaction.config()?, catalog, store).context("starting the compactor")?,
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let running = tokio::spawn(Arc::clone(&compactor).run(async move {
        let mut stop = stop_rx;
        let _ = stop.wait_for(|s| *s).await;
    }));
    Ok(Started {
        // No API of its own: /health, /ready and /ping only (added for every service).
        app: authenticate(
            one_port(axum::Router::new(), axum::Router::new()),
            credentials.internal_only(),
        ),
        // Stop work and give the lease up, so a standby takes over at once.
        drain: Some(Box::pin(async move {
            let _ = stop_tx.send(true);
            let _ = running.await;
        })),
    })
}

async fn start_catalog(a: CatalogArgs, credentials: &Credentials) -> anyhow::Result<Started> {
    let sql = Arc::new(connect_with_retry(&a.catalog_dsn).await);
    let service = CatalogGrpcService::new(Arc::clone(&sql) as CatalogRef);
    // Changes made here (the management API) reach watchers at once, not at the next poll.
    service.follow_commits(sql.committed_versions());
    // The management API runs here, next to the catalog database; routers forward /api/v0
    // and ferrite.management.v1 to it. Only the admin token gets in, which is what
    // management needs.
    let management = Management::new(sql, None);
    let grpc = management::add_grpc_services(
        tonic::service::Routes::new(service.clone().into_server()),
        management.clone(),
    )
    .into_axum_router();
    let http = management::http_routes(management);
    Ok(Started {
        app: authenticate(one_port(http, grpc), credentials.internal_only()),
        // Version watch streams never end by themselves; close them so the drain can.
        drain: Some(Box::pin(async move { service.close_watchers() })),
    })
}

fn start_router(a: RouterArgs, credentials: &Credentials) -> anyhow::Result<Started> {
    let remote = GrpcCatalog::connect_lazy(&a.catalog, &credentials.client)?;
    let feed = remote.watch();
    let mode = credentials.tokens(Arc::new(remote.clone()), feed.clone());
    let catalog: CatalogRef = Arc::new(remote);
    let management = Arc::new(QueryProxy::new(
        "catalog service",
        vec![a.catalog.clone()],
        credentials.client_tls.clone(),
    ));
    let placement = Arc::new(Placement::new(Vec::new(), a.replication));
    let client = credentials.client.clone();
    let ingesters = Peers::start(&a.ingesters, a.k8s_namespace.as_deref())?;
    {
        let (placement, mut rx) = (Arc::clone(&placement), ingesters.subscribe());
        tokio::spawn(async move {
            loop {
                let peers = rx.borrow_and_update().clone();
                let addrs = urls(&peers);
                info!(?addrs, "ingesters");
                placement.set_members(&addrs, |a| write_client(a, &peer_auth(&client, &peers, a)));
                if rx.changed().await.is_err() {
                    return;
                }
            }
        });
    }
    let queriers = Peers::start(&a.queriers, a.k8s_namespace.as_deref())?;
    let names = credentials.peer_names.clone();
    names.set(&queriers.current());
    let proxy = Arc::new(QueryProxy::new(
        "querier",
        urls(&queriers.current()),
        credentials.client_tls.clone(),
    ));
    {
        let (proxy, mut rx) = (Arc::clone(&proxy), queriers.subscribe());
        tokio::spawn(async move {
            while rx.changed().await.is_ok() {
                let peers = rx.borrow_and_update().clone();
                let addrs = urls(&peers);
                info!(?addrs, "queriers");
                names.set(&peers);
                proxy.set_queriers(addrs);
            }
        });
    }
    let router = Arc::new(
        Router::new(
            catalog,
            placement as Arc<dyn IngesterWrite>,
            RouterConfig {
                max_request_bytes: a.max_request_bytes,
            },
        )
        .with_version_feed(feed),
    );
    let http = axum::Router::new()
        .merge(ferrite_router::http_routes(router))
        .merge(ferrite_router::proxy::http_routes(Arc::clone(&proxy)))
        .merge(ferrite_router::proxy::management_routes(Arc::clone(
            &management,
        )));
    let grpc = ferrite_router::proxy::grpc_forwarder(proxy, management);
    Ok(Started {
        app: authenticate(one_port(http, grpc), mode),
        drain: None,
    })
}

async fn start_ingester(a: IngesterArgs, credentials: &Credentials) -> anyhow::Result<Started> {
    let catalog: CatalogRef = Arc::new(GrpcCatalog::connect_lazy(&a.catalog, &credentials.client)?);
    let store = a.object_store.build(a.wal_dir.join("objects"))?;
    let mut ic = IngesterConfig::new(a.wal_dir.clone());
    ic.persist_partition_bytes = a.persist_partition_bytes;
    ic.persist_age = Duration::from_secs(a.persist_age_seconds);
    ic.buffer_bytes = a.buffer_bytes;
    ic.max_buffer_bytes = a.max_buffer_bytes;
    ic.drain_timeout = drain_timeout(a.drain_timeout_seconds);
    // The WAL replay reads and decodes every segment: off the threads that answer probes.
    let ingester = tokio::task::spawn_blocking(move || Ingester::start(ic, catalog, store))
        .await
        .context("the ingester's start-up task")?
        .context("starting the ingester")?;
    let grpc = ferrite_ingester::grpc::routes(Arc::clone(&ingester)).into_axum_router();
    Ok(Started {
        app: authenticate(
            one_port(axum::Router::new(), grpc),
            credentials.internal_only(),
        ),
        // SIGTERM: refuse writes (routers move to other ingesters), persist, then exit.
        drain: Some(Box::pin(async move {
            info!("draining: refusing writes and persisting everything");
            ingester.shutdown().await;
        })),
    })
}

fn start_querier(a: QuerierArgs, credentials: &Credentials) -> anyhow::Result<Started> {
    let remote = GrpcCatalog::connect_lazy(&a.catalog, &credentials.client)?;
    let version = remote.watch();
    let mode = credentials.tokens(Arc::new(remote.clone()), version.clone());
    let catalog: CatalogRef = Arc::new(CachedCatalog::new(Arc::new(remote), version));
    let client = credentials.client.clone();
    let store = a.object_store.build(PathBuf::from("objects"))?;
    let all = Arc::new(AllIngesters::new());
    // Not only the ready ingesters: a draining one still holds rows it has not persisted,
    // and a starting one may already hold rows routers placed on it the moment it turned
    // ready. The fan-out skips an ingester that cannot answer.
    let ingesters = Peers::start_with(&a.ingesters, a.k8s_namespace.as_deref(), Endpoints::All)?;
    {
        let (all, mut rx) = (Arc::clone(&all), ingesters.subscribe());
        tokio::spawn(async move {
            loop {
                let peers = rx.borrow_and_update().clone();
                let addrs = urls(&peers);
                info!(?addrs, "ingesters");
                let members: Vec<(String, bool)> =
                    peers.iter().map(|p| (p.url.clone(), p.ready)).collect();
                all.set_members(&members, |a| {
                    query_client(a, &peer_auth(&client, &peers, a))
                });
                if rx.changed().await.is_err() {
                    return;
                }
            }
        });
    }
    let engine = Arc::new(
        QueryEngine::new(
            catalog,
            vec![all as Arc<dyn IngesterQuery>],
            store,
            querier_config(&a.query_limits),
        )
        .context("starting the query engine")?,
    );
    engine.cluster().set_name(own_name(a.common.bind));
    if let Some(spec) = &a.queriers {
        let queriers = Peers::start(spec, a.k8s_namespace.as_deref())?;
        let (cluster, mut rx) = (Arc::clone(engine.cluster()), queriers.subscribe());
        let client = credentials.client.clone();
        tokio::spawn(async move {
            loop {
                let peers = rx.borrow_and_update().clone();
                let addrs = urls(&peers);
                info!(?addrs, "querier peers");
                cluster.set_peers(&addrs, |a| peer_auth(&client, &peers, a));
                if rx.changed().await.is_err() {
                    return;
                }
            }
        });
    }
    let grpc = tonic::service::Routes::new(ferrite_querier::flight_service(Arc::clone(&engine)))
        .into_axum_router();
    let http = ferrite_querier::http_routes(engine);
    Ok(Started {
        app: authenticate(one_port(http, grpc), mode),
        drain: None,
    })
}

/// How a querier names itself in `system.queries` until a peer list shows the address
/// others reach it by: its bind address, with the host name for an unspecified IP.
fn own_name(bind: SocketAddr) -> String {
    if !bind.ip().is_unspecified() {
        return bind.to_string();
    }
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| bind.ip().to_string());
    format!("{host}:{}", bind.port())
}

/// Per-call deadline for router → ingester writes (an fsync under load stays far below it).
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Per-call deadline for querier → ingester reads, including streaming the data.
const QUERY_TIMEOUT: Duration = Duration::from_secs(60);

/// How to reach the peer at `addr`: checked against its discovered name, if it has one.
fn peer_auth(client: &ClientAuth, peers: &[Peer], addr: &str) -> ClientAuth {
    match peers
        .iter()
        .find(|p| p.url == addr)
        .and_then(|p| p.tls_name.as_deref())
    {
        Some(name) => client.verifying_as(name),
        None => client.clone(),
    }
}

fn write_client(addr: &str, client: &ClientAuth) -> Arc<dyn IngesterWrite> {
    Arc::new(
        GrpcIngesterWrite::connect_lazy(addr, WRITE_TIMEOUT, client)
            .expect("peer URLs are validated by discovery"),
    )
}

fn query_client(addr: &str, client: &ClientAuth) -> Arc<dyn IngesterQuery> {
    Arc::new(
        FlightIngesterQuery::connect_lazy(addr, QUERY_TIMEOUT, client)
            .expect("peer URLs are validated by discovery"),
    )
}

async fn bind(c: &CommonArgs) -> anyhow::Result<TcpListener> {
    TcpListener::bind(c.bind)
        .await
        .with_context(|| format!("binding {}", c.bind))
}

fn grace(c: &CommonArgs) -> Duration {
    Duration::from_secs(c.shutdown_grace_seconds)
}

/// The catalog service starts even while PostgreSQL is still coming up.
async fn connect_with_retry(dsn: &str) -> SqlCatalog {
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    let mut failures = FailureLog::new(Duration::from_secs(30));
    loop {
        match SqlCatalog::connect(dsn).await {
            Ok(c) => return c,
            Err(e) => {
                let retry_in = backoff.next_delay();
                if let Some(failures) = failures.failure() {
                    warn!(error = %e, failures, ?retry_in, "catalog database not ready");
                }
                tokio::time::sleep(retry_in).await;
            }
        }
    }
}
