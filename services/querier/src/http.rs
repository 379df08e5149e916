//! The InfluxDB 3 HTTP query API: `/api/v3/query_sql`.
//!
//! ```text
//!  GET  /api/v3/query_sql?db=…&q=…&format=…&params={json}
//!  POST /api/v3/query_sql   {"db": …, "q": …, "format": …, "params": {…}}
//!     ──► QueryEngine::sql ──► collect ──► json | jsonl | csv | pretty | parquet
//! ```
//!
//! Without `format`, the `Accept` header picks one as InfluxDB 3 Core does
//! (`application/vnd.apache.parquet`, `text/csv`, `text/plain`, `application/json`), and
//! anything else means JSON. Errors are `{"error": "…"}` with the status from
//! [`QueryError::http_status`].

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::header::{ACCEPT, CONTENT_TYPE};
use axum::http::{Extensions, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::TryStreamExt;
use serde::Deserialize;

use crate::engine::{QueryEngine, QueryRequest, RunningQuery};
use crate::error::{QueryError, Result};
use crate::params::QueryParams;
use crate::query_log::Protocol;

/// The query routes, ready to merge into the server's router.
pub fn http_routes(engine: Arc<QueryEngine>) -> Router {
    Router::new()
        .route("/api/v3/query_sql", get(query_sql_get).post(query_sql_post))
        .with_state(Arc::clone(&engine))
        .merge(crate::influxql::http::routes(engine))
}

/// `GET` query-string parameters; all optional here so a missing one gets our message.
#[derive(Debug, Deserialize)]
struct GetRequest {
    db: Option<String>,
    q: Option<String>,
    format: Option<String>,
    /// JSON text of an object of parameter values.
    params: Option<String>,
}

/// `POST` JSON body.
#[derive(Debug, Deserialize)]
struct PostRequest {
    db: Option<String>,
    q: Option<String>,
    format: Option<String>,
    params: Option<serde_json::Value>,
}

async fn query_sql_get(
    State(engine): State<Arc<QueryEngine>>,
    extensions: Extensions,
    headers: HeaderMap,
    query: Result<Query<GetRequest>, QueryRejection>,
) -> Response {
    let result = async {
        let Query(request) =
            query.map_err(|e| QueryError::InvalidRequest(format!("invalid query string: {e}")))?;
        let params = match request.params.as_deref() {
            None | Some("") => QueryParams::new(),
            Some(text) => QueryParams::from_json_str(text)?,
        };
        run_query(
            &engine,
            &extensions,
            &headers,
            request.db,
            request.q,
            request.format,
            params,
        )
        .await
    }
    .await;
    into_response(result)
}

async fn query_sql_post(
    State(engine): State<Arc<QueryEngine>>,
    extensions: Extensions,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let result = async {
        let request: PostRequest = serde_json::from_slice(&body)
            .map_err(|e| QueryError::InvalidRequest(format!("invalid JSON request body: {e}")))?;
        let params = match &request.params {
            None => QueryParams::new(),
            Some(value) => QueryParams::from_json(value)?,
        };
        run_query(
            &engine,
            &extensions,
            &headers,
            request.db,
            request.q,
            request.format,
            params,
        )
        .await
    }
    .await;
    into_response(result)
}

async fn run_query(
    engine: &QueryEngine,
    extensions: &Extensions,
    headers: &HeaderMap,
    db: Option<String>,
    q: Option<String>,
    format: Option<String>,
    params: QueryParams,
) -> Result<Response> {
    let db = db.filter(|s| !s.is_empty());
    let q = q.filter(|s| !s.trim().is_empty());
    let (db, q) = match (db, q) {
        (Some(db), Some(q)) => (db, q),
        (None, None) => {
            return Err(QueryError::InvalidRequest(
                "missing query parameters 'db' and 'q'".into(),
            ));
        }
        (None, Some(_)) => {
            return Err(QueryError::InvalidRequest(
                "missing query parameter 'db'".into(),
            ));
        }
        (Some(_), None) => {
            return Err(QueryError::InvalidRequest(
                "missing query parameter 'q'".into(),
            ));
        }
    };
    let caller = ferrite_auth::caller_of(extensions)?;
    let format = match format {
        Some(name) => Format::from_name(&name)?,
        None => Format::from_accept(headers),
    };
    let running = engine
        .query(QueryRequest {
            caller: &caller,
            protocol: Protocol::Http,
            database: &db,
            sql: &q,
            params,
        })
        .await?;
    let tracker = running.tracker.clone();
    match respond(running, format).await {
        Ok(body) => {
            tracker.add_bytes(body.len());
            tracker.finish();
            Ok((
                [(
                    CONTENT_TYPE,
                    HeaderValue::from_static(format.content_type()),
                )],
                body,
            )
                .into_response())
        }
        Err(e) => {
            tracker.fail(&e);
            Err(e)
        }
    }
}

/// Collect a query's whole result and encode it as the response body.
async fn respond(running: RunningQuery, format: Format) -> Result<Vec<u8>> {
    let RunningQuery {
        schema,
        mut stream,
        tracker,
    } = running;
    // The whole result is held to answer with one status and body: it counts against the
    // query memory pool like any operator, so a huge result is refused, not an OOM.
    let reservation = tracker.reservation("HTTP query result");
    let mut batches: Vec<RecordBatch> = Vec::new();
    while let Some(batch) = stream
        .try_next()
        .await
        .map_err(QueryError::from_stream_error)?
    {
        reservation
            .try_grow(batch.get_array_memory_size())
            .map_err(QueryError::from_stream_error)?;
        batches.push(batch);
    }
    // Serialising a large result is CPU work: keep it off the I/O threads.
    let body = tokio::task::spawn_blocking(move || format.encode(&schema, &batches))
        .await
        .map_err(|e| QueryError::Internal(format!("result encoder failed: {e}")))??;
    drop(reservation);
    Ok(body)
}

pub(crate) fn into_response(result: Result<Response>) -> Response {
    match result {
        Ok(response) => response,
        Err(err) => {
            let status = err.http_status();
            if status.is_server_error() {
                tracing::warn!(error = %err, "query failed");
            }
            let mut response = (
                status,
                axum::Json(serde_json::json!({ "error": err.to_string() })),
            )
                .into_response();
            if let Some(seconds) = err.retry_after() {
                response
                    .headers_mut()
                    .insert(axum::http::header::RETRY_AFTER, HeaderValue::from(seconds));
            }
            response
        }
    }
}

/// An output format of the query API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Json,
    JsonLines,
    Csv,
    Pretty,
    Parquet,
}

impl Format {
    pub(crate) fn from_name(name: &str) -> Result<Self> {
        match name.to_ascii_lowercase().as_str() {
            "json" => Ok(Self::Json),
            "jsonl" | "json_lines" => Ok(Self::JsonLines),
            "csv" => Ok(Self::Csv),
            "pretty" => Ok(Self::Pretty),
            "parquet" => Ok(Self::Parquet),
            _ => Err(QueryError::InvalidRequest(format!(
                "invalid format '{name}': expected one of json, jsonl, csv, pretty, parquet"
            ))),
        }
    }

    pub(crate) fn from_accept(headers: &HeaderMap) -> Self {
        let accept = headers
            .get(ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        // The first media type we know wins; anything else gets the default, JSON.
        accept
            .split(',')
            .map(|part| part.split(';').next().unwrap_or("").trim())
            .find_map(|media| match media {
                "application/vnd.apache.parquet" => Some(Self::Parquet),
                "text/csv" => Some(Self::Csv),
                "text/plain" => Some(Self::Pretty),
                "application/jsonl" => Some(Self::JsonLines),
                "application/json" => Some(Self::Json),
                _ => None,
            })
            .unwrap_or(Self::Json)
    }

    pub(crate) fn content_type(self) -> &'static str {
        match self {
            Self::Json => "application/json",
            Self::JsonLines => "application/jsonl",
            Self::Csv => "text/csv",
            Self::Pretty => "text/plain; charset=utf-8",
            Self::Parquet => "application/vnd.apache.parquet",
        }
    }

    pub(crate) fn encode(self, schema: &SchemaRef, batches: &[RecordBatch]) -> Result<Vec<u8>> {
        let encoding = |e: &dyn std::fmt::Display| {
            QueryError::Internal(format!("encoding results as {self:?}: {e}"))
        };
        match self {
            Self::Json => {
                let mut writer = arrow::json::ArrayWriter::new(Vec::new());
                for batch in batches {
                    writer.write(batch).map_err(|e| encoding(&e))?;
                }
                writer.finish().map_err(|e| encoding(&e))?;
                Ok(writer.into_inner())
            }
            Self::JsonLines => {
                let mut writer = arrow::json::LineDelimitedWriter::new(Vec::new());
                for batch in batches {
                    writer.write(batch).map_err(|e| encoding(&e))?;
                }
                writer.finish().map_err(|e| encoding(&e))?;
                Ok(writer.into_inner())
            }
            Self::Csv => {
                let mut writer = arrow::csv::WriterBuilder::new()
                    .with_header(true)
                    .build(Vec::new());
                if batches.is_empty() {
                    // Still write the header line.
                    writer
                        .write(&RecordBatch::new_empty(Arc::clone(schema)))
                        .map_err(|e| encoding(&e))?;
                }
                for batch in batches {
                    writer.write(batch).map_err(|e| encoding(&e))?;
                }
                Ok(writer.into_inner())
            }
            Self::Pretty => {
                let table = arrow::util::pretty::pretty_format_batches(batches)
                    .map_err(|e| encoding(&e))?;
                Ok(format!("{table}\n").into_bytes())
            }
            Self::Parquet => {
                let mut out = Vec::new();
                let mut writer =
                    parquet::arrow::ArrowWriter::try_new(&mut out, Arc::clone(schema), None)
                        .map_err(|e| encoding(&e))?;
                for batch in batches {
                    writer.write(batch).map_err(|e| encoding(&e))?;
                }
                writer.close().map_err(|e| encoding(&e))?;
                Ok(out)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_header_picks_the_format() {
        let with = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(ACCEPT, HeaderValue::from_static(v));
            Format::from_accept(&h)
        };
        assert_eq!(Format::from_accept(&HeaderMap::new()), Format::Json);
        assert_eq!(with("text/csv"), Format::Csv);
        assert_eq!(with("text/plain; q=0.5"), Format::Pretty);
        assert_eq!(with("application/vnd.apache.parquet"), Format::Parquet);
        assert_eq!(with("text/html, text/csv"), Format::Csv);
        assert_eq!(with("*/*"), Format::Json);
    }

    #[test]
    fn format_names_are_checked() {
        assert_eq!(Format::from_name("JSONL").unwrap(), Format::JsonLines);
        assert!(matches!(
            Format::from_name("xml"),
            Err(QueryError::InvalidRequest(m)) if m.contains("'xml'")
        ));
    }
}
