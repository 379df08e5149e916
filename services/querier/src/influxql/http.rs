//! InfluxQL over HTTP: InfluxDB 1.x's `/query` and InfluxDB 3's `/api/v3/query_influxql`.
//!
//! ```text
//!  GET|POST /query?db=…&q=…[&epoch=ms][&pretty=true][&chunked=true&chunk_size=N][&params={…}]
//!     (POST: the same parameters may come as a form body)
//!     ──► QueryEngine::influxql ──► {"results":[{"statement_id":0,"series":[…]}]}
//!                                   or CSV with Accept: application/csv
//!  GET|POST /api/v3/query_influxql  {db, q, format, params}  ──► json|jsonl|csv|pretty|parquet
//! ```
//!
//! A statement's error is in its result (`200`); a query that does not parse is `400
//! {"error": "error parsing query: …"}`, as in InfluxDB 1.x.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header::{ACCEPT, CONTENT_TYPE};
use axum::http::{Extensions, HeaderMap, HeaderValue, Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, SecondsFormat};
use serde_json::{Map, Value as Json, json};

use super::{InfluxqlRequest, Series, StatementResult, Value, to_batches};
use crate::engine::QueryEngine;
use crate::error::{QueryError, Result};
use crate::http::{Format, into_response};
use crate::params::QueryParams;

/// The InfluxQL routes.
pub fn routes(engine: Arc<QueryEngine>) -> Router {
    Router::new()
        .route("/query", get(v1_query).post(v1_query))
        .route("/api/v3/query_influxql", get(v3_query).post(v3_query))
        .with_state(engine)
}

/// The request's parameters: the query string, then (POST) a form body.
fn parameters(uri: &Uri, headers: &HeaderMap, body: &Bytes) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let form = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    if form {
        out.extend(url::form_urlencoded::parse(body).into_owned());
    }
    out
}

fn bind_params(text: Option<&String>) -> Result<QueryParams> {
    match text.map(String::as_str) {
        None | Some("") => Ok(QueryParams::new()),
        Some(t) => QueryParams::from_json_str(t),
    }
}

/// How `/query` prints times: RFC3339 or an integer in a unit.
#[derive(Debug, Clone, Copy)]
enum Epoch {
    Rfc3339,
    Divide(i64),
}

impl Epoch {
    fn parse(name: Option<&String>) -> Result<Self> {
        Ok(match name.map(String::as_str) {
            None | Some("") => Self::Rfc3339,
            Some("ns" | "n") => Self::Divide(1),
            Some("u" | "µ" | "us") => Self::Divide(1_000),
            Some("ms") => Self::Divide(1_000_000),
            Some("s") => Self::Divide(1_000_000_000),
            Some("m") => Self::Divide(60_000_000_000),
            Some("h") => Self::Divide(3_600_000_000_000),
            Some(other) => {
                return Err(QueryError::InvalidRequest(format!(
                    "invalid epoch '{other}': expected one of h, m, s, ms, u, ns"
                )));
            }
        })
    }

    fn time(self, t: i64, tz: Option<chrono_tz::Tz>) -> Json {
        match self {
            Self::Rfc3339 => Json::String(rfc3339(t, tz)),
            Self::Divide(unit) => Json::from(t.div_euclid(unit)),
        }
    }
}

/// Go's `time.RFC3339Nano`: trailing zeros of the fraction trimmed; in `tz`'s offset when
/// the statement set one, else UTC (`Z`).
fn rfc3339(t: i64, tz: Option<chrono_tz::Tz>) -> String {
    let utc = DateTime::from_timestamp_nanos(t);
    match tz {
        Some(tz) => utc
            .with_timezone(&tz)
            .to_rfc3339_opts(SecondsFormat::AutoSi, true),
        None => utc.to_rfc3339_opts(SecondsFormat::AutoSi, true),
    }
}

fn json_value(v: &Value, epoch: Epoch, tz: Option<chrono_tz::Tz>) -> Json {
    match v {
        Value::Null => Json::Null,
        // Go prints integral floats without a fraction.
        Value::Float(f) if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e15 => {
            Json::from(*f as i64)
        }
        Value::Float(f) => serde_json::Number::from_f64(*f).map_or(Json::Null, Json::Number),
        Value::Integer(i) => Json::from(*i),
        Value::Unsigned(u) => Json::from(*u),
        Value::String(s) => Json::String(s.clone()),
        Value::Boolean(b) => Json::Bool(*b),
        Value::Time(t) => epoch.time(*t, tz),
    }
}

fn series_json(s: &Series, rows: &[Vec<Value>], epoch: Epoch, partial: bool) -> Json {
    let mut m = Map::new();
    if !s.name.is_empty() {
        m.insert("name".into(), Json::String(s.name.clone()));
    }
    if !s.tags.is_empty() {
        m.insert("tags".into(), json!(s.tags));
    }
    m.insert("columns".into(), json!(s.columns));
    m.insert(
        "values".into(),
        Json::Array(
            rows.iter()
                .map(|r| Json::Array(r.iter().map(|v| json_value(v, epoch, s.timezone)).collect()))
                .collect(),
        ),
    );
    if partial {
        m.insert("partial".into(), Json::Bool(true));
    }
    Json::Object(m)
}

fn result_json(id: usize, series: Option<Vec<Json>>, error: Option<&str>, partial: bool) -> Json {
    let mut m = Map::new();
    m.insert("statement_id".into(), Json::from(id));
    if let Some(series) = series
        && !series.is_empty()
    {
        m.insert("series".into(), Json::Array(series));
    }
    if let Some(e) = error {
        m.insert("error".into(), Json::String(e.to_string()));
    }
    if partial {
        m.insert("partial".into(), Json::Bool(true));
    }
    Json::Object(m)
}

async fn v1_query(
    State(engine): State<Arc<QueryEngine>>,
    uri: Uri,
    extensions: Extensions,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params = parameters(&uri, &headers, &body);
    let result = async {
        let q = params
            .get("q")
            .filter(|q| !q.trim().is_empty())
            .ok_or_else(|| QueryError::InvalidRequest("missing required parameter \"q\"".into()))?;
        let epoch = Epoch::parse(params.get("epoch"))?;
        let caller = ferrite_auth::caller_of(&extensions)?;
        let results = engine
            .influxql(InfluxqlRequest {
                caller: &caller,
                database: params.get("db").map(String::as_str),
                retention_policy: params.get("rp").map(String::as_str),
                query: q,
                params: bind_params(params.get("params"))?,
            })
            .await?;
        let csv = headers
            .get(ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("application/csv") || a.contains("text/csv"));
        if csv {
            return Ok(respond("text/csv", to_csv(&results, epoch)));
        }
        let pretty = params.get("pretty").is_some_and(|p| p == "true");
        let chunked = params.get("chunked").is_some_and(|p| p == "true");
        if chunked {
            let size = params
                .get("chunk_size")
                .and_then(|s| s.parse::<usize>().ok())
                .filter(|n| *n > 0)
                .unwrap_or(10_000);
            let mut body = String::new();
            for doc in chunks(&results, epoch, size) {
                body.push_str(&encode(&doc, pretty));
                body.push('\n');
            }
            return Ok(respond("application/json", body));
        }
        let doc = json!({
            "results": results
                .iter()
                .map(|r| match &r.outcome {
                    Ok(series) => result_json(
                        r.statement_id,
                        Some(series.iter().map(|s| series_json(s, &s.values, epoch, false)).collect()),
                        None,
                        false,
                    ),
                    Err(e) => result_json(r.statement_id, None, Some(e), false),
                })
                .collect::<Vec<_>>()
        });
        let mut text = encode(&doc, pretty);
        text.push('\n');
        Ok(respond("application/json", text))
    }
    .await;
    match result {
        Ok(r) => r,
        Err(e) => v1_error(e),
    }
}

fn respond(content_type: &'static str, body: String) -> Response {
    (
        [(CONTENT_TYPE, HeaderValue::from_static(content_type))],
        Body::from(body),
    )
        .into_response()
}

/// `{"error": …}` with the error's status (a query that does not parse is 400).
fn v1_error(e: QueryError) -> Response {
    into_response(Err(e))
}

fn encode(doc: &Json, pretty: bool) -> String {
    if pretty {
        serde_json::to_string_pretty(doc).unwrap_or_default()
    } else {
        doc.to_string()
    }
}

/// The chunked form: per statement, series cut into `size` rows; every document but the
/// last of a statement is `partial`, and so is every chunk but the last of a series.
fn chunks(results: &[StatementResult], epoch: Epoch, size: usize) -> Vec<Json> {
    let mut docs = Vec::new();
    for r in results {
        match &r.outcome {
            Err(e) => {
                docs.push(json!({"results": [result_json(r.statement_id, None, Some(e), false)]}))
            }
            Ok(series) if series.is_empty() => {
                docs.push(json!({"results": [result_json(r.statement_id, None, None, false)]}))
            }
            Ok(series) => {
                for (si, s) in series.iter().enumerate() {
                    let pieces: Vec<&[Vec<Value>]> = s.values.chunks(size).collect();
                    for (pi, rows) in pieces.iter().enumerate() {
                        let series_partial = pi + 1 < pieces.len();
                        let result_partial = series_partial || si + 1 < series.len();
                        docs.push(json!({"results": [result_json(
                            r.statement_id,
                            Some(vec![series_json(s, rows, epoch, series_partial)]),
                            None,
                            result_partial,
                        )]}));
                    }
                }
            }
        }
    }
    docs
}

/// InfluxDB 1.x's CSV: `name,tags,time,…` with a header whenever the columns change; times
/// are integers (ns unless `epoch` says otherwise).
fn to_csv(results: &[StatementResult], epoch: Epoch) -> String {
    let epoch = match epoch {
        Epoch::Rfc3339 => Epoch::Divide(1),
        e => e,
    };
    let mut out = String::new();
    let mut header: Option<Vec<String>> = None;
    for r in results {
        let Ok(series) = &r.outcome else { continue };
        for s in series {
            if header.as_ref() != Some(&s.columns) {
                if header.is_some() {
                    out.push('\n');
                }
                let _ = writeln!(out, "name,tags,{}", s.columns.join(","));
                header = Some(s.columns.clone());
            }
            let tags: Vec<String> = s.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
            for row in &s.values {
                let cells: Vec<String> = row
                    .iter()
                    .map(|v| match json_value(v, epoch, None) {
                        Json::Null => String::new(),
                        Json::String(s) => csv_cell(&s),
                        other => other.to_string(),
                    })
                    .collect();
                let _ = writeln!(
                    out,
                    "{},{},{}",
                    csv_cell(&s.name),
                    csv_cell(&tags.join(",")),
                    cells.join(",")
                );
            }
        }
    }
    out
}

fn csv_cell(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// `/api/v3/query_influxql`: the statements' series as one table in the asked format.
async fn v3_query(
    State(engine): State<Arc<QueryEngine>>,
    method: Method,
    uri: Uri,
    extensions: Extensions,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let result = async {
        let (db, q, format, params) = if method == Method::POST {
            let request: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
                QueryError::InvalidRequest(format!("invalid JSON request body: {e}"))
            })?;
            let text = |k: &str| request.get(k).and_then(|v| v.as_str()).map(str::to_string);
            let params = match request.get("params") {
                None => QueryParams::new(),
                Some(value) => QueryParams::from_json(value)?,
            };
            (text("db"), text("q"), text("format"), params)
        } else {
            let p = parameters(&uri, &headers, &body);
            (
                p.get("db").cloned(),
                p.get("q").cloned(),
                p.get("format").cloned(),
                bind_params(p.get("params"))?,
            )
        };
        let db = db.filter(|d| !d.is_empty());
        let q = q
            .filter(|q| !q.trim().is_empty())
            .ok_or_else(|| QueryError::InvalidRequest("missing query parameter 'q'".into()))?;
        let format = match format {
            Some(name) => Format::from_name(&name)?,
            None => Format::from_accept(&headers),
        };
        let caller = ferrite_auth::caller_of(&extensions)?;
        let results = engine
            .influxql(InfluxqlRequest {
                caller: &caller,
                database: db.as_deref(),
                retention_policy: None,
                query: &q,
                params,
            })
            .await?;
        let mut all = Vec::new();
        for r in results {
            match r.outcome {
                Ok(series) => all.extend(series),
                Err(e) => return Err(QueryError::InvalidRequest(e)),
            }
        }
        let (schema, batches) = to_batches(&all)?;
        let body = tokio::task::spawn_blocking(move || format.encode(&schema, &batches))
            .await
            .map_err(|e| QueryError::Internal(format!("result encoder failed: {e}")))??;
        Ok((
            [(
                CONTENT_TYPE,
                HeaderValue::from_static(format.content_type()),
            )],
            body,
        )
            .into_response())
    }
    .await;
    into_response(result)
}
