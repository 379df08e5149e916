//! `ferrite serve`: router, ingester, querier and catalog in one process, wired through the
//! same interfaces the cluster uses.
//!
//! ```text
//!  :8181 ─┬─ HTTP  /api/v2/write /write /api/v3/write_lp ─► Router ─► Ingester (WAL, buffer)
//!         ├─ HTTP  /api/v3/query_sql                      ─► QueryEngine ◄─ Ingester, catalog, files
//!         ├─ gRPC  arrow.flight.protocol.FlightService    ─► QueryEngine
//!         ├─ HTTP  /api/v0 (databases, tokens; admin)      ─► catalog
//!         │  compactor (background): files ─► merged files, retention, garbage collection
//!         └─ HTTP  /health /ping /ready (no token)
//!  every request but /health, /ping and /ready: token checked first (`ferrite_auth`)
//!  SIGTERM / Ctrl-C ─► stop accepting ─► drain connections ─► ingester persists all ─► exit
//! ```

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::serve::ListenerExt;
use ferrite_auth::management::{self, Management};
use ferrite_auth::{AuthMode, Authorizer, authenticate, hash_token};
use ferrite_catalog::grpc::CatalogGrpcService;
use ferrite_catalog::{CachedCatalog, CatalogRef, SqlCatalog};
use ferrite_compactor::Compactor;
use ferrite_ingester::api::{IngesterQuery, IngesterWrite};
use ferrite_ingester::{Ingester, IngesterConfig};
use ferrite_querier::{QuerierConfig, QueryEngine};
use ferrite_router::{Router, RouterConfig};
use tokio::net::TcpListener;
use tower::ServiceExt;
use tracing::info;

use crate::config::{QueryLimits, ServeConfig};
use crate::ready::{Started, serve_while_starting};

/// The version reported by `/ping` and `--version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// A running all-in-one server.
#[derive(Debug)]
pub struct Server {
    /// Address it listens on (useful with port 0).
    pub addr: std::net::SocketAddr,
    ingester: Arc<Ingester>,
    app: axum::Router,
    listener: TcpListener,
    grace: Duration,
    /// Serve TLS with this, when configured.
    tls: Option<Arc<rustls::ServerConfig>>,
    /// Polls the catalog version while the server lives.
    _feed: CatalogGrpcService,
    /// Compacts, enforces retention and collects garbage while the server runs.
    compactor: Arc<Compactor>,
}

impl Server {
    /// Open the catalog, object store and WAL, replay the WAL, and bind the port.
    pub async fn start(config: &ServeConfig) -> anyhow::Result<Self> {
        let data_dir = config.data_dir()?;
        std::fs::create_dir_all(&data_dir)
            .with_context(|| format!("creating {}", data_dir.display()))?;
        let dsn = match &config.catalog_dsn {
            Some(d) => d.clone(),
            None => format!("sqlite://{}", data_dir.join("catalog.sqlite").display()),
        };
        let sql = Arc::new(
            SqlCatalog::connect(&dsn)
                .await
                .with_context(|| format!("opening catalog {dsn}"))?,
        );
        let catalog: CatalogRef = Arc::clone(&sql) as CatalogRef;
        // The catalog version, polled like the catalog service does for its watchers: the
        // router drops cached schemas and the authorizer reloads tokens when it moves.
        let feed_service = CatalogGrpcService::new(Arc::clone(&catalog));
        let feed = feed_service.watch();
        let store = config.object_store.build(data_dir.join("objects"))?;

        let mut ic = IngesterConfig::new(data_dir.join("wal"));
        ic.persist_partition_bytes = config.persist_partition_bytes;
        ic.persist_age = config.persist_age();
        ic.buffer_bytes = config.buffer_bytes;
        ic.max_buffer_bytes = config.max_buffer_bytes;
        ic.drain_timeout = crate::config::drain_timeout(config.drain_timeout_seconds);
        let ingester = Ingester::start(ic, Arc::clone(&catalog), Arc::clone(&store))
            .context("starting the ingester")?;

        let router = Arc::new(
            Router::new(
                Arc::clone(&catalog),
                Arc::clone(&ingester) as Arc<dyn IngesterWrite>,
                RouterConfig {
                    max_request_bytes: config.max_request_bytes,
                },
            )
            .with_version_feed(feed.clone()),
        );
        // Schema reads for queries come from memory while the catalog version stands still;
        // every write of this process moves it before the write returns.
        let query_catalog: CatalogRef = Arc::new(CachedCatalog::new(
            Arc::clone(&catalog),
            sql.committed_versions(),
        ));
        let engine = Arc::new(
            QueryEngine::new(
                query_catalog,
                vec![Arc::clone(&ingester) as Arc<dyn IngesterQuery>],
                Arc::clone(&store),
                querier_config(&config.query_limits),
            )
            .context("starting the query engine")?,
        );

        let compactor = Arc::new(
            Compactor::new(
                config.compaction.config()?,
                Arc::clone(&catalog),
                Arc::clone(&store),
            )
            .context("starting the compactor")?,
        );
        let admin_token = config.auth.serve_token(&data_dir)?;
        let authorizer = admin_token.as_deref().map(|t| {
            let a = Authorizer::new(Arc::clone(&catalog), hash_token(t));
            a.follow(feed.clone());
            a
        });
        let management = Management::new(sql, authorizer.clone());
        let querier = Arc::clone(engine.cluster());
        let grpc = management::add_grpc_services(
            tonic::service::Routes::new(ferrite_querier::flight_service(Arc::clone(&engine))),
            management.clone(),
        )
        .into_axum_router();
        let http = axum::Router::new()
            .merge(ferrite_router::http_routes(router))
            .merge(ferrite_querier::http_routes(engine))
            .merge(management::http_routes(management));
        // Without a token (--without-auth, already logged) every request is let in.
        let mode = authorizer.map_or(AuthMode::Disabled, AuthMode::Tokens);
        let app = authenticate(one_port(http, grpc), mode);

        let listener = TcpListener::bind(config.bind)
            .await
            .with_context(|| format!("binding {}", config.bind))?;
        let addr = listener.local_addr()?;
        // What system.queries names this process's queries by.
        querier.set_name(addr.to_string());
        Ok(Self {
            addr,
            ingester,
            app,
            listener,
            grace: Duration::from_secs(config.shutdown_grace_seconds),
            tls: config.tls.files().server()?,
            _feed: feed_service,
            compactor,
        })
    }

    /// Serve until `shutdown` resolves, then drain and persist everything.
    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        info!(addr = %self.addr, version = VERSION, "ferrite serving HTTP and gRPC");
        // Built already: /ready answers 200 at once, and 503 once shutdown begins.
        let app = self.app;
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let compactor = tokio::spawn(Arc::clone(&self.compactor).run(async move {
            let mut stop = stop_rx;
            let _ = stop.wait_for(|s| *s).await;
        }));
        let started = async move { Ok(Started { app, drain: None }) };
        serve_while_starting(self.listener, started, shutdown, self.grace, self.tls).await?;
        let _ = stop_tx.send(true);
        let _ = compactor.await;
        self.ingester.shutdown().await;
        Ok(())
    }
}

/// Serve `app` until `shutdown` resolves, then stop accepting connections and give open ones
/// `grace` to finish. Long-lived idle connections (Flight clients) would otherwise keep a
/// graceful drain open forever.
pub async fn serve_until(
    listener: TcpListener,
    app: axum::Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    grace: Duration,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> anyhow::Result<()> {
    if let Some(tls) = tls {
        info!(addr = %listener.local_addr()?, "listening for HTTPS and gRPC over TLS");
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let server = tokio::spawn(crate::tls::serve(listener, app, tls, stop_rx, grace));
        shutdown.await;
        let _ = stop_tx.send(true);
        return server.await.context("server task")?;
    }
    info!(addr = %listener.local_addr()?, "listening for HTTP and gRPC");
    // Replies go out at once: with Nagle's algorithm on, a small HTTP/2 frame (a gRPC
    // reply's trailers) waits for the peer's delayed ACK, about 40 ms on Linux.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY on an accepted connection");
        }
    });
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
        let mut rx = stop_rx;
        let _ = rx.wait_for(|s| *s).await;
    });
    let server = tokio::spawn(async move { serve.await });
    shutdown.await;
    info!("shutting down: no new connections; draining");
    let _ = stop_tx.send(true);
    match tokio::time::timeout(grace, server).await {
        Ok(r) => r.context("server task")?.context("serving")?,
        Err(_) => info!("grace period over; closing remaining connections"),
    }
    Ok(())
}

/// HTTP and gRPC on one port: a request whose `content-type` is `application/grpc…` goes to
/// the gRPC services, everything else to the HTTP API (where unknown paths are a JSON 404).
pub fn one_port(http: axum::Router, grpc: axum::Router) -> axum::Router {
    let http = http.fallback(|uri: axum::http::Uri| async move {
        (
            StatusCode::NOT_FOUND,
            axum::Json(serde_json::json!({"error": format!("no such endpoint: {}", uri.path())})),
        )
    });
    let dispatch = tower::service_fn(move |req: axum::extract::Request| {
        let is_grpc = req
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("application/grpc"));
        let target = if is_grpc { grpc.clone() } else { http.clone() };
        async move { target.oneshot(req).await }
    });
    axum::Router::new().fallback_service(dispatch)
}

/// Query engine settings: DataFusion runs on its own runtime so that CPU-heavy plans never
/// block the threads serving HTTP and gRPC.
pub fn querier_config(limits: &QueryLimits) -> QuerierConfig {
    QuerierConfig {
        execution_threads: Some(std::thread::available_parallelism().map_or(1, |n| n.get())),
        max_concurrent_queries: limits.max_concurrent_queries,
        queue_timeout: Duration::from_secs(limits.query_queue_timeout_seconds),
        memory_limit: Some(limits.query_memory_bytes),
        query_timeout: (limits.query_timeout_seconds > 0)
            .then(|| Duration::from_secs(limits.query_timeout_seconds)),
        query_log_capacity: limits.query_log_size,
        file_cache_bytes: limits.query_file_cache_bytes,
        file_cache_disk: limits.query_file_cache_dir.as_ref().map(|dir| {
            ferrite_querier::DiskCacheConfig {
                dir: dir.clone(),
                capacity: limits.query_file_cache_disk_bytes,
            }
        }),
        ..QuerierConfig::default()
    }
}

/// `/health`, `/ping` and `/metrics`, served by every process without a token (with
/// `/ready`, see [`crate::ready`]).
pub fn common_routes() -> axum::Router {
    axum::Router::new()
        .route("/health", get(|| async { "OK" }))
        .route("/ping", get(ping).head(ping))
        .route("/metrics", get(ferrite_telemetry::prom::handler))
}

async fn ping() -> Response {
    let mut r = (
        StatusCode::OK,
        axum::Json(serde_json::json!({"version": VERSION, "revision": "", "product": "ferrite"})),
    )
        .into_response();
    let h = r.headers_mut();
    h.insert("X-Influxdb-Version", HeaderValue::from_static(VERSION));
    h.insert("X-Influxdb-Build", HeaderValue::from_static("ferrite"));
    r
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
