//! Readiness: whether a process should get traffic, answered on `/ready` for Kubernetes'
//! readiness probe (and any load balancer).
//!
//! ```text
//!  bind ─► Starting (503: connecting, replaying the WAL) ─► Ready (200) ─► Draining (503) ─► exit
//!           │ /health, /ping, /ready answer from the first moment;
//!           │ every other request: 503 + Retry-After (gRPC: UNAVAILABLE) until the app is built
//! ```
//!
//! `/health` (liveness) stays 200 throughout: a process that is starting or draining is alive.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;
use tower::ServiceExt;
use tracing::info;

use crate::serve::{common_routes, serve_until};

const STARTING: u8 = 0;
const READY: u8 = 1;
const DRAINING: u8 = 2;

/// A process's readiness, shared by `/ready` and whoever changes it.
#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<AtomicU8>);

impl Readiness {
    /// Starting: not ready.
    pub fn new() -> Self {
        Self::default()
    }

    /// Ready, unless draining began meanwhile.
    fn set_ready(&self) {
        let _ = self
            .0
            .compare_exchange(STARTING, READY, Ordering::AcqRel, Ordering::Acquire);
    }

    /// Draining: not ready, for good.
    fn set_draining(&self) {
        self.0.store(DRAINING, Ordering::Release);
    }

    /// `/ready`'s answer: 200 `ready`, or 503 with the reason.
    pub fn response(&self) -> Response {
        match self.0.load(Ordering::Acquire) {
            READY => (StatusCode::OK, "ready").into_response(),
            DRAINING => not_ready("draining: shutting down"),
            _ => not_ready("starting"),
        }
    }
}

fn not_ready(why: &'static str) -> Response {
    let mut r = (StatusCode::SERVICE_UNAVAILABLE, why).into_response();
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    r
}

/// Work to do on SIGTERM while the port still serves (an ingester persisting everything).
pub type Drain = Pin<Box<dyn Future<Output = ()> + Send>>;

/// What a service's start-up builds.
pub struct Started {
    /// Every route of the service (behind authentication).
    pub app: axum::Router,
    /// Run on shutdown before connections close; `None`: nothing to drain.
    pub drain: Option<Drain>,
}

/// Serve `listener` from now on while `start` builds the service, which may take long (a
/// catalog database still coming up, a WAL replay). Until then `/health`, `/ping` and
/// `/ready` answer and everything else is refused as retryable. On `shutdown`, `/ready`
/// turns 503 and the drain runs before connections close.
pub async fn serve_while_starting(
    listener: TcpListener,
    start: impl Future<Output = anyhow::Result<Started>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> anyhow::Result<()> {
    let readiness = Readiness::new();
    let slot: Arc<OnceLock<axum::Router>> = Arc::new(OnceLock::new());
    let gate = {
        let slot = Arc::clone(&slot);
        tower::service_fn(move |request: Request| {
            let app = slot.get().cloned();
            async move {
                match app {
                    Some(app) => app.oneshot(request).await,
                    None => Ok(starting(&request)),
                }
            }
        })
    };
    let app = common_routes()
        .route(
            "/ready",
            axum::routing::get({
                let readiness = readiness.clone();
                move || async move { readiness.response() }
            }),
        )
        .fallback_service(gate);
    // Every request, probes included, is counted and traced.
    let app = ferrite_telemetry::layer::observe(app);

    let (drain_tx, drain_rx) = tokio::sync::oneshot::channel::<Drain>();
    // Set when shutdown begins, so a start-up still under way is abandoned.
    let (stopping_tx, mut stopping) = tokio::sync::watch::channel(false);
    let stop = {
        let readiness = readiness.clone();
        async move {
            shutdown.await;
            readiness.set_draining();
            let _ = stopping_tx.send(true);
            // Started: drain; start-up failed, was abandoned or has nothing to drain: the
            // sender is gone.
            if let Ok(drain) = drain_rx.await {
                drain.await;
            }
        }
    };
    let server = tokio::spawn(serve_until(listener, app, stop, grace, tls));
    let started = tokio::select! {
        started = start => started,
        _ = stopping.wait_for(|s| *s) => {
            info!("shutdown before the service was built: not waiting for it");
            drop(drain_tx);
            return server.await.context("server task")?;
        }
    };
    match started {
        Ok(started) => {
            let _ = slot.set(started.app);
            // Nothing to drain: dropping the sender lets shutdown go straight on.
            match started.drain {
                Some(drain) => {
                    let _ = drain_tx.send(drain);
                }
                None => drop(drain_tx),
            }
            readiness.set_ready();
            info!("ready");
        }
        Err(e) => {
            server.abort();
            return Err(e);
        }
    }
    server.await.context("server task")?
}

/// The answer to a request that arrives before the service is built: retryable.
fn starting(request: &Request) -> Response {
    let grpc = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/grpc"));
    if grpc {
        return tonic::Status::unavailable("starting: not ready yet, retry").into_http();
    }
    let mut r = (
        StatusCode::SERVICE_UNAVAILABLE,
        axum::Json(serde_json::json!({"error": "starting: not ready yet, retry"})),
    )
        .into_response();
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    r
}
