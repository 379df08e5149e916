//! What every request passes through, HTTP and gRPC alike (they share one port): the caller's
//! `traceparent` continued in a `request` span, the request counted and timed, one debug line
//! per request and one warning per server error, with its trace id.

use std::time::Instant;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// `app` observed: wrap a process's whole router with this.
pub fn observe(app: axum::Router) -> axum::Router {
    app.layer(axum::middleware::from_fn(request))
}

/// gRPC status code for "no such method": such calls are counted as `other`, so that made-up
/// method names cannot grow the label set.
const UNIMPLEMENTED: &str = "12";

async fn request(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let grpc = request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/grpc"));
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let parent = crate::propagation::extract(request.headers());
    // Probes and scrapes come every few seconds from every kubelet and Prometheus: counted,
    // never traced.
    let quiet = !grpc && matches!(endpoint(&path), "probe" | "metrics");
    let span = if quiet {
        tracing::Span::none()
    } else {
        request_span(grpc, &method, &path)
    };
    if parent_is_remote(&parent) {
        let _ = span.set_parent(parent.clone());
    }
    let response = next.run(request).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    let status = response.status();
    span.record("http.status", status.as_u16());

    let grpc_status = response
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok());
    if grpc {
        let method = if grpc_status == Some(UNIMPLEMENTED) {
            "other".to_owned()
        } else {
            path.clone()
        };
        metrics::counter!("ferrite_grpc_requests_total", "method" => method.clone()).increment(1);
        metrics::histogram!("ferrite_grpc_request_duration_seconds", "method" => method)
            .record(elapsed.as_secs_f64());
    } else {
        let endpoint = endpoint(&path);
        metrics::counter!(
            "ferrite_http_requests_total",
            "endpoint" => endpoint,
            "status" => status.as_str().to_owned()
        )
        .increment(1);
        metrics::histogram!("ferrite_http_request_duration_seconds", "endpoint" => endpoint)
            .record(elapsed.as_secs_f64());
    }

    // A gRPC error that fits in the headers (trailers-only) shows here; one that ends a
    // stream is logged where it happens.
    let failed = status.is_server_error() || grpc_status.is_some_and(is_server_grpc_error);
    if failed {
        let trace_id = crate::propagation::trace_id(&span, &parent).unwrap_or_default();
        tracing::warn!(
            %method, %path, status = status.as_u16(), grpc_status, %trace_id,
            elapsed_ms = elapsed.as_millis() as u64, "request failed"
        );
    } else if tracing::enabled!(tracing::Level::DEBUG) {
        let trace_id = crate::propagation::trace_id(&span, &parent).unwrap_or_default();
        tracing::debug!(
            %method, %path, status = status.as_u16(), grpc_status, %trace_id,
            elapsed_ms = elapsed.as_millis() as u64, "request"
        );
    }
    response
}

fn request_span(grpc: bool, method: &http::Method, path: &str) -> tracing::Span {
    let span = tracing::debug_span!(
        "request",
        otel.name = tracing::field::Empty,
        otel.kind = "server",
        http.method = %method,
        http.path = %path,
        http.status = tracing::field::Empty,
    );
    // Named only when someone listens: no allocation per request otherwise.
    if !span.is_disabled() {
        if grpc {
            span.record("otel.name", path);
        } else {
            span.record("otel.name", format!("{method} {path}"));
        }
    }
    span
}

fn parent_is_remote(cx: &opentelemetry::Context) -> bool {
    use opentelemetry::trace::TraceContextExt as _;
    cx.span().span_context().is_remote()
}

/// gRPC codes that mean the server failed rather than the caller: UNKNOWN, INTERNAL,
/// UNAVAILABLE and DATA_LOSS.
fn is_server_grpc_error(code: &str) -> bool {
    matches!(code, "2" | "13" | "14" | "15")
}

/// The endpoint class of an HTTP path: a short fixed set, whatever paths clients send.
pub fn endpoint(path: &str) -> &'static str {
    match path {
        "/api/v2/write" | "/write" | "/api/v3/write_lp" => "write",
        "/api/v3/query_sql" | "/api/v3/query_influxql" | "/query" | "/api/v2/query" => "query",
        "/health" | "/ping" | "/ready" => "probe",
        "/metrics" => "metrics",
        p if p.starts_with("/api/v0/") || p == "/api/v0" => "management",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_a_fixed_set_of_endpoints() {
        assert_eq!(endpoint("/api/v2/write"), "write");
        assert_eq!(endpoint("/api/v3/query_sql"), "query");
        assert_eq!(endpoint("/api/v0/databases/mydb"), "management");
        assert_eq!(endpoint("/ready"), "probe");
        assert_eq!(endpoint("/no/such/thing/42"), "other");
    }
}
