//! The three write APIs: `/api/v2/write`, `/write` (v1) and `/api/v3/write_lp`.
//!
//! Each handler turns its parameters into a [`WriteBody`], and its errors into the body shape
//! its clients parse: v2 `{"code","message","line"}`, v1 and v3
//! `{"error","data":[{original_line,line_number,error_message}]}`. Status codes are decided
//! once, in [`status_of`].

use std::io::Read;
use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{Extensions, HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use ferrite_auth::{AuthError, caller_of};
use ferrite_catalog::Action;
use ferrite_ingester::api::WriteError as IngesterError;
use ferrite_lineproto::{InvalidPrecision, Precision};
use http_body_util::BodyExt;
use serde::Deserialize;
use serde_json::json;

use crate::write::{Router, WriteBody, WriteError, WriteOutcome};

/// Seconds a client should wait before retrying a 503.
const RETRY_AFTER_SECS: &str = "1";

/// Routes of the write APIs.
pub fn http_routes(router: Arc<Router>) -> axum::Router {
    axum::Router::new()
        .route("/api/v2/write", post(write_v2))
        .route("/write", post(write_v1))
        .route("/api/v3/write_lp", post(write_v3))
        .with_state(router)
}

/// Which API a request came through: decides parameter names and error shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    V1,
    V2,
    V3,
}

/// Everything that can go wrong with a write request.
#[derive(Debug, thiserror::Error)]
enum RequestError {
    #[error("{0}")]
    MissingDatabase(&'static str),
    #[error(transparent)]
    Precision(#[from] InvalidPrecision),
    #[error("invalid value '{value}' for parameter '{name}': expected true or false")]
    BadFlag { name: &'static str, value: String },
    #[error("unsupported Content-Encoding '{0}': only gzip and identity are accepted")]
    Encoding(String),
    #[error("max request size ({0} bytes) exceeded")]
    TooLarge(usize),
    #[error("cannot read request body: {0}")]
    Body(String),
    #[error("invalid gzip body: {0}")]
    Gzip(std::io::Error),
    #[error("request body is not valid UTF-8: invalid byte at offset {offset} (line {line})")]
    NotUtf8 { offset: usize, line: usize },
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error(transparent)]
    Auth(#[from] AuthError),
}

fn status_of(e: &RequestError) -> StatusCode {
    match e {
        RequestError::MissingDatabase(_)
        | RequestError::Precision(_)
        | RequestError::BadFlag { .. }
        | RequestError::Body(_)
        | RequestError::Gzip(_)
        | RequestError::NotUtf8 { .. } => StatusCode::BAD_REQUEST,
        RequestError::Encoding(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        RequestError::Auth(a) => a.http_status(),
        RequestError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        RequestError::Write(w) => match w {
            WriteError::DatabaseName(_) | WriteError::Lines(_) | WriteError::Empty => {
                StatusCode::BAD_REQUEST
            }
            WriteError::SchemaRace(_) | WriteError::Catalog(_) => StatusCode::SERVICE_UNAVAILABLE,
            WriteError::Limit(_) => StatusCode::UNPROCESSABLE_ENTITY,
            WriteError::Ingester(i) => match i {
                IngesterError::Overloaded(_)
                | IngesterError::ShuttingDown
                | IngesterError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
                IngesterError::Wal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            },
            WriteError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        },
    }
}

/// The v2 error `code` text for a status, as InfluxDB sends it.
fn code_text(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "invalid",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not found",
        413 => "request too large",
        415 => "unsupported media type",
        422 => "unprocessable entity",
        429 => "too many requests",
        503 => "unavailable",
        _ => "internal error",
    }
}

#[derive(Debug, Deserialize)]
struct V2Params {
    bucket: Option<String>,
    precision: Option<String>,
}

#[derive(Debug, Deserialize)]
struct V1Params {
    db: Option<String>,
    rp: Option<String>,
    precision: Option<String>,
}

#[derive(Debug, Deserialize)]
struct V3Params {
    db: Option<String>,
    precision: Option<String>,
    accept_partial: Option<String>,
    no_sync: Option<String>,
}

async fn write_v2(
    State(r): State<Arc<Router>>,
    Query(p): Query<V2Params>,
    extensions: Extensions,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = async {
        let database = p
            .bucket
            .filter(|b| !b.is_empty())
            .ok_or(RequestError::MissingDatabase("missing bucket value"))?;
        let precision = Precision::parse(p.precision.as_deref().unwrap_or("ns"))?;
        run(
            &r,
            &extensions,
            &headers,
            body,
            database,
            precision,
            false,
            false,
        )
        .await
    }
    .await;
    respond(Api::V2, result)
}

async fn write_v1(
    State(r): State<Arc<Router>>,
    Query(p): Query<V1Params>,
    extensions: Extensions,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = async {
        let db =
            p.db.filter(|b| !b.is_empty())
                .ok_or(RequestError::MissingDatabase(
                    "missing query parameter 'db'",
                ))?;
        // InfluxDB 3 maps a named retention policy to the database "db/rp".
        let database = match p.rp.as_deref() {
            None | Some("" | "''" | "autogen" | "default") => db,
            Some(rp) => format!("{db}/{rp}"),
        };
        let precision = Precision::parse(p.precision.as_deref().unwrap_or("ns"))?;
        run(
            &r,
            &extensions,
            &headers,
            body,
            database,
            precision,
            false,
            false,
        )
        .await
    }
    .await;
    respond(Api::V1, result)
}

async fn write_v3(
    State(r): State<Arc<Router>>,
    Query(p): Query<V3Params>,
    extensions: Extensions,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = async {
        let database =
            p.db.filter(|b| !b.is_empty())
                .ok_or(RequestError::MissingDatabase(
                    "missing query parameter 'db'",
                ))?;
        let precision = Precision::parse(p.precision.as_deref().unwrap_or("auto"))?;
        let accept_partial = flag("accept_partial", p.accept_partial, true)?;
        let no_sync = flag("no_sync", p.no_sync, false)?;
        run(
            &r,
            &extensions,
            &headers,
            body,
            database,
            precision,
            accept_partial,
            no_sync,
        )
        .await
    }
    .await;
    respond(Api::V3, result)
}

fn flag(name: &'static str, value: Option<String>, default: bool) -> Result<bool, RequestError> {
    match value.as_deref() {
        None => Ok(default),
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(other) => Err(RequestError::BadFlag {
            name,
            value: other.to_string(),
        }),
    }
}

#[allow(clippy::too_many_arguments)]
async fn run(
    r: &Router,
    extensions: &Extensions,
    headers: &HeaderMap,
    body: Body,
    database: String,
    precision: Precision,
    accept_partial: bool,
    no_sync: bool,
) -> Result<WriteOutcome, RequestError> {
    let started = Instant::now();
    let result = async {
        caller_of(extensions)?
            .require(Action::Write, &database)
            .await?;
        let body = read_body(headers, body, r.config().max_request_bytes).await?;
        metrics::counter!("ferrite_write_bytes_total").increment(body.len() as u64);
        Ok(r.write(WriteBody {
            database,
            body,
            precision,
            accept_partial,
            no_sync,
        })
        .await?)
    }
    .await;
    record(&result, started);
    result
}

/// The write metrics of one request.
fn record(result: &Result<WriteOutcome, RequestError>, started: Instant) {
    metrics::histogram!("ferrite_write_duration_seconds").record(started.elapsed().as_secs_f64());
    let (outcome, lines) = match result {
        Ok(o) if o.rejected == 0 => ("ok", Some(o)),
        Ok(o) => ("partial", Some(o)),
        Err(RequestError::Write(WriteError::Lines(o))) => ("rejected", Some(o)),
        Err(e) => {
            let reason = match e {
                RequestError::TooLarge(_) => "too_large",
                RequestError::Auth(_) => "unauthorized",
                RequestError::Write(WriteError::Limit(_)) => "limit",
                RequestError::Write(WriteError::SchemaRace(_) | WriteError::Catalog(_))
                | RequestError::Write(WriteError::Ingester(_)) => "unavailable",
                RequestError::Write(WriteError::Internal(_)) => "other",
                _ => "parse",
            };
            metrics::counter!("ferrite_write_rejected_total", "reason" => reason).increment(1);
            let outcome = if status_of(e).is_server_error() {
                "error"
            } else {
                "rejected"
            };
            (outcome, None)
        }
    };
    metrics::counter!("ferrite_write_requests_total", "outcome" => outcome).increment(1);
    if let Some(o) = lines {
        let r = o.by_reason;
        for (reason, n) in [
            ("parse", r.parse),
            ("schema", r.schema),
            ("retention", r.retention),
        ] {
            if n > 0 {
                metrics::counter!("ferrite_write_rejected_total", "reason" => reason)
                    .increment(n as u64);
            }
        }
        metrics::counter!("ferrite_write_lines_total").increment((o.accepted + o.rejected) as u64);
        if outcome != "rejected" {
            metrics::counter!("ferrite_write_rows_total").increment(o.accepted as u64);
        }
    }
}

/// The body as text: size-limited before and after gunzip, UTF-8 checked.
async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<String, RequestError> {
    let gzip = match headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?").trim())
    {
        None | Some("" | "identity") => false,
        Some(e) if e.eq_ignore_ascii_case("gzip") => true,
        Some(other) => return Err(RequestError::Encoding(other.to_string())),
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(RequestError::TooLarge(limit));
    }
    let raw: Bytes = http_body_util::Limited::new(body, limit)
        .collect()
        .await
        .map_err(|e| {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                RequestError::TooLarge(limit)
            } else {
                RequestError::Body(e.to_string())
            }
        })?
        .to_bytes();
    let bytes = if gzip {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(raw.as_ref())
            .take(limit as u64 + 1)
            .read_to_end(&mut out)
            .map_err(RequestError::Gzip)?;
        if out.len() > limit {
            return Err(RequestError::TooLarge(limit));
        }
        out
    } else {
        raw.to_vec()
    };
    String::from_utf8(bytes).map_err(|e| {
        let offset = e.utf8_error().valid_up_to();
        let line = 1 + e.as_bytes()[..offset]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        RequestError::NotUtf8 { offset, line }
    })
}

fn respond(api: Api, result: Result<WriteOutcome, RequestError>) -> Response {
    let e = match result {
        Ok(outcome) if outcome.rejected == 0 => return StatusCode::NO_CONTENT.into_response(),
        // Partial write: the good lines are stored, the bad ones reported.
        Ok(outcome) => return lines_response(api, &outcome, true),
        Err(e) => e,
    };
    let status = status_of(&e);
    if let RequestError::Write(WriteError::Lines(outcome)) = &e {
        return lines_response(api, outcome, false);
    }
    let body = match api {
        Api::V2 => json!({"code": code_text(status), "message": e.to_string()}),
        Api::V1 | Api::V3 => json!({"error": e.to_string()}),
    };
    let mut response = (status, axum::Json(body)).into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from_static(RETRY_AFTER_SECS),
        );
    }
    response
}

fn lines_response(api: Api, outcome: &WriteOutcome, partial: bool) -> Response {
    let status = StatusCode::BAD_REQUEST;
    let body = match api {
        Api::V2 => {
            let mut message =
                String::from("failed to parse line protocol:\nerrors encountered on line(s):");
            for i in &outcome.issues {
                message.push_str(&format!(
                    "\nerror parsing line {} (1-based): {}",
                    i.line_number, i.message
                ));
            }
            if outcome.rejected > outcome.issues.len() {
                message.push_str(&format!(
                    "\n… and {} more",
                    outcome.rejected - outcome.issues.len()
                ));
            }
            if partial {
                message.push_str(&format!("\n{} lines were written", outcome.accepted));
            }
            json!({
                "code": code_text(status),
                "message": message,
                "line": outcome.issues.first().map(|i| i.line_number),
            })
        }
        Api::V1 | Api::V3 => {
            let error = if partial {
                "partial write of line protocol occurred"
            } else {
                "parsing failed for write_lp endpoint"
            };
            let data: Vec<_> = outcome
                .issues
                .iter()
                .map(|i| {
                    json!({
                        "original_line": i.original_line,
                        "line_number": i.line_number,
                        "error_message": i.message,
                    })
                })
                .collect();
            json!({"error": error, "data": data})
        }
    };
    (status, axum::Json(body)).into_response()
}
