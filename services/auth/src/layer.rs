//! Authentication in front of every route of a process: HTTP and gRPC alike.
//!
//! ```text
//!  request ─► /health, /ping ─────────────────────────────────────► handler (open)
//!     │
//!     └─► authorization header (or v1 ?p=) ─► AuthMode ─► Caller in the request extensions ─► handler
//!                                     │ refused: 401 / 403 / 503 in the shape the API uses
//! ```
//!
//! Handlers then ask the [`Caller`] for the permission they need (the database is only known
//! once the request is parsed). A handler that finds no `Caller` refuses the request: a route
//! cannot be left open by forgetting the layer.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::authorizer::{AuthError, Authorizer, Caller};
use crate::secret::{hash_token, token_from_authorization};

/// How a process checks its callers.
#[derive(Debug, Clone)]
pub enum AuthMode {
    /// Everyone may do everything (`--without-auth`).
    Disabled,
    /// Database tokens and the admin token (routers, queriers, `serve`).
    Tokens(Arc<Authorizer>),
    /// Only the cluster-internal (admin) token: the catalog and ingester services, which
    /// only other ferrite services call. Holds the token's hash.
    InternalOnly(Arc<str>),
}

/// Paths that answer without a token (probes).
const OPEN_PATHS: &[&str] = &["/health", "/ping"];

/// `app` behind authentication.
pub fn authenticate(app: axum::Router, mode: AuthMode) -> axum::Router {
    app.layer(axum::middleware::from_fn_with_state(mode, check))
}

/// The caller a request was authenticated as. Fails closed: no `Caller` means no layer ran,
/// which is refused like a request without a token.
pub fn caller_of(extensions: &http::Extensions) -> Result<Caller, AuthError> {
    extensions
        .get::<Caller>()
        .cloned()
        .ok_or(AuthError::Missing)
}

/// The caller a gRPC request was authenticated as (`UNAUTHENTICATED` when none).
pub fn grpc_caller<T>(request: &tonic::Request<T>) -> Result<Caller, tonic::Status> {
    request
        .extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| AuthError::Missing.to_status())
}

async fn check(State(mode): State<AuthMode>, mut request: Request, next: Next) -> Response {
    if OPEN_PATHS.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    let caller = match &mode {
        AuthMode::Disabled => Ok(Caller::unrestricted()),
        AuthMode::Tokens(authorizer) => match secret_of(&request) {
            Ok(secret) => authorizer.authenticate(&secret).await,
            Err(e) => Err(e),
        },
        AuthMode::InternalOnly(hash) => secret_of(&request).and_then(|secret| {
            if hash_token(&secret) == **hash {
                Ok(Caller::admin())
            } else {
                Err(AuthError::Unknown)
            }
        }),
    };
    match caller {
        Ok(caller) => {
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(e) => {
            tracing::debug!(path = %request.uri().path(), error = %e, "request refused");
            refusal(&request, &e)
        }
    }
}

/// The secret a request carries: the `authorization` header, else (v1 `/write`, `/query`)
/// the `p` query parameter.
fn secret_of(request: &Request) -> Result<String, AuthError> {
    if let Some(value) = request.headers().get(header::AUTHORIZATION) {
        return value
            .to_str()
            .ok()
            .and_then(token_from_authorization)
            .ok_or(AuthError::Malformed);
    }
    let path = request.uri().path();
    if (path == "/write" || path == "/query")
        && let Some(query) = request.uri().query()
        && let Some((_, p)) = url::form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == "p")
        && !p.is_empty()
    {
        return Ok(p.into_owned());
    }
    Err(AuthError::Missing)
}

/// A refusal in the shape the request's API uses: a gRPC status, `{"code","message"}` for
/// `/api/v2` (text code) and `/api/v0` (numeric code), `{"error"}` elsewhere.
fn refusal(request: &Request, e: &AuthError) -> Response {
    let is_grpc = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/grpc"));
    if is_grpc {
        return e.to_status().into_http::<axum::body::Body>();
    }
    error_response(request.uri().path(), e)
}

/// `e` as an HTTP response for a request to `path`.
pub fn error_response(path: &str, e: &AuthError) -> Response {
    let status = e.http_status();
    let message = e.to_string();
    let body = if path.starts_with("/api/v2/") {
        json!({"code": v2_code(status), "message": message})
    } else if path.starts_with("/api/v0/") {
        json!({"code": status.as_u16(), "message": message})
    } else {
        json!({"error": message})
    };
    let mut response = (status, axum::Json(body)).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"ferrite\""),
        );
    }
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

fn v2_code(status: StatusCode) -> &'static str {
    match status {
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        _ => "unavailable",
    }
}
