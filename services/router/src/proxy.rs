//! The router's query side: every query API request is forwarded to a querier, so clients
//! use the router's one address for writes, SQL over HTTP, Flight and Flight SQL.
//!
//! ```text
//!  GET|POST /api/v3/query_sql, /api/v3/query_influxql, /query (InfluxQL)
//!                             ──► HTTP/1.1 client ──► querier (round robin)
//!  content-type: application/grpc* ──► HTTP/2 (h2c) client ──► querier, streamed both ways
//! ```
//!
//! Bodies and gRPC trailers are streamed, not buffered. A querier that cannot be reached is
//! answered with 503 + Retry-After (HTTP) or UNAVAILABLE (gRPC), both retryable.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use parking_lot::RwLock;
use tracing::{Instrument as _, warn};

/// Forwards query traffic to a set of queriers (or management calls to the catalog service).
#[derive(Debug)]
pub struct QueryProxy {
    /// What the targets are, for messages: "querier", "catalog service".
    target: &'static str,
    queriers: RwLock<Vec<String>>,
    next: AtomicUsize,
    http: Client<HttpsConnector<HttpConnector>, Body>,
    grpc: Client<HttpsConnector<HttpConnector>, Body>,
}

impl QueryProxy {
    /// A proxy over querier base URLs (`http://host:port`, or `https://host:port` verified
    /// with `tls`).
    /// `target` names them in messages.
    pub fn new(target: &'static str, queriers: Vec<String>, tls: rustls::ClientConfig) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_secs(2)));
        connector.set_nodelay(true);
        connector.enforce_http(false);
        // The connector offers ALPN itself (http/1.1 for one client, h2 for the other).
        let mut tls = tls;
        tls.alpn_protocols.clear();
        let http = HttpsConnectorBuilder::new()
            .with_tls_config(tls.clone())
            .https_or_http()
            .enable_http1()
            .wrap_connector(connector.clone());
        let grpc = HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http2()
            .wrap_connector(connector);
        Self {
            target,
            queriers: RwLock::new(queriers),
            next: AtomicUsize::new(0),
            http: Client::builder(TokioExecutor::new()).build(http),
            grpc: Client::builder(TokioExecutor::new())
                .http2_only(true)
                .build(grpc),
        }
    }

    /// Replace the querier list (discovery).
    pub fn set_queriers(&self, queriers: Vec<String>) {
        *self.queriers.write() = queriers;
    }

    fn pick(&self) -> Option<String> {
        let q = self.queriers.read();
        if q.is_empty() {
            return None;
        }
        Some(q[self.next.fetch_add(1, Ordering::Relaxed) % q.len()].clone())
    }

    /// Forward one request and stream the answer back.
    pub async fn forward(&self, request: Request) -> Response {
        let grpc = is_grpc(&request);
        let Some(base) = self.pick() else {
            return unavailable(grpc, &format!("no {} is configured", self.target));
        };
        let (mut parts, body) = request.into_parts();
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        parts.uri = match format!("{base}{path}").parse::<Uri>() {
            Ok(u) => u,
            Err(e) => {
                return unavailable(grpc, &format!("bad {} address {base}: {e}", self.target));
            }
        };
        parts.headers.remove(header::HOST);
        // The client's HTTP version toward the router (h2 over TLS, say) is not the one the
        // proxy speaks to the querier: HTTP/1.1 for HTTP, HTTP/2 for gRPC.
        parts.version = if grpc {
            http::Version::HTTP_2
        } else {
            http::Version::HTTP_11
        };
        let client = if grpc { &self.grpc } else { &self.http };
        let span = tracing::debug_span!("proxy", otel.name = %format!("forward to {}", self.target), peer = %base);
        // The querier's spans hang under this one (without trace export the client's own
        // traceparent goes through untouched).
        span.in_scope(|| ferrite_telemetry::propagation::inject(&mut parts.headers));
        match client
            .request(Request::from_parts(parts, body))
            .instrument(span)
            .await
        {
            Ok(response) => response.map(Body::new),
            Err(e) => {
                warn!(peer = self.target, address = %base, error = %e, "unreachable");
                unavailable(grpc, &format!("{} {base} unavailable: {e}", self.target))
            }
        }
    }
}

fn is_grpc(request: &Request) -> bool {
    request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/grpc"))
}

fn unavailable(grpc: bool, message: &str) -> Response {
    if grpc {
        // A trailers-only gRPC response: status 200 with grpc-status in the headers.
        let mut r = Response::new(Body::empty());
        let h = r.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc"),
        );
        h.insert("grpc-status", HeaderValue::from(tonic_code_unavailable()));
        if let Ok(v) = HeaderValue::from_str(&message.replace(['\r', '\n'], " ")) {
            h.insert("grpc-message", v);
        }
        return r;
    }
    let mut r = (
        StatusCode::SERVICE_UNAVAILABLE,
        axum::Json(serde_json::json!({"error": message})),
    )
        .into_response();
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    r
}

/// gRPC's UNAVAILABLE code.
const fn tonic_code_unavailable() -> u16 {
    14
}

/// Routes that send the HTTP query APIs to queriers.
pub fn http_routes(proxy: Arc<QueryProxy>) -> axum::Router {
    let forward =
        |State(p): State<Arc<QueryProxy>>, req: Request| async move { p.forward(req).await };
    axum::Router::new()
        .route(
            "/api/v3/query_sql",
            axum::routing::get(forward).post(forward),
        )
        .route(
            "/api/v3/query_influxql",
            axum::routing::get(forward).post(forward),
        )
        .route("/query", axum::routing::get(forward).post(forward))
        .with_state(proxy)
}

/// Forward a management call to the catalog service (`proxy`) if the caller holds the admin
/// token. The catalog service lets only the admin token in, and cannot tell a database token
/// (no permission: 403) from no token at all: decide here.
async fn to_catalog(State(proxy): State<Arc<QueryProxy>>, req: Request) -> Response {
    let admin = ferrite_auth::caller_of(req.extensions())
        .and_then(|caller| caller.require_admin("the management API"));
    match admin {
        Ok(()) => proxy.forward(req).await,
        Err(e) if is_grpc(&req) => e.to_status().into_http::<Body>(),
        Err(e) => ferrite_auth::layer::error_response(req.uri().path(), &e),
    }
}

/// Routes that send the HTTP management API (`/api/v0`, and InfluxDB 3's `/api/v3/configure`
/// cache calls) to the catalog service, where the
/// catalog database is: `catalog` holds the catalog service's address.
pub fn management_routes(catalog: Arc<QueryProxy>) -> axum::Router {
    axum::Router::new()
        .route("/api/v0/{*path}", axum::routing::any(to_catalog))
        .route("/api/v3/configure/{*path}", axum::routing::any(to_catalog))
        .with_state(catalog)
}

/// The management API's gRPC services.
const MANAGEMENT_SERVICES: &[&str] = &[
    "/ferrite.management.v1.DatabaseService/{method}",
    "/ferrite.management.v1.TableService/{method}",
    "/ferrite.management.v1.TokenService/{method}",
];

/// The gRPC side of a router: the management services to the catalog service (`catalog`),
/// everything else (Flight, Flight SQL) to the queriers.
pub fn grpc_forwarder(queriers: Arc<QueryProxy>, catalog: Arc<QueryProxy>) -> axum::Router {
    MANAGEMENT_SERVICES
        .iter()
        .fold(axum::Router::new(), |router, path| {
            router.route(path, axum::routing::post(to_catalog))
        })
        .with_state(catalog)
        .fallback(move |req: Request| {
            let p = Arc::clone(&queriers);
            async move { p.forward(req).await }
        })
}
