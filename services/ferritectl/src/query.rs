//! `query`: SQL over Arrow Flight SQL (InfluxQL over a Flight ticket), printed as a table,
//! JSON, JSON lines or CSV.
//!
//! ```text
//!  SQL ─► GetFlightInfo(CommandStatementQuery) ─► FlightInfo {schema, endpoints}
//!          headers: authorization: Bearer <token>, database: <db>
//!     ─► DoGet(ticket) for each endpoint ─► record batches ─► writer (stdout)
//! ```
//!
//! The Flight client is used at the gRPC level (not `FlightSqlServiceClient`) so that a
//! failure keeps its status code: "permission denied", "unauthenticated" and "not found"
//! then read as such instead of as a debug-printed status.

use std::io::{self, BufWriter, Read, Write};
use std::sync::Arc;
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_client::FlightServiceClient;
use arrow_flight::sql::{CommandStatementQuery, ProstMessageExt};
use arrow_flight::{FlightDescriptor, Ticket};
use futures::{StreamExt, TryStreamExt};
use prost::Message;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};
use tower::Layer;

use crate::api::{innermost, origin};
use crate::cli::QueryFormat;
use crate::config::Settings;

/// A query that failed.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// No connection.
    #[error("cannot reach ferrite at {url}: {reason}")]
    Unreachable {
        /// The server.
        url: String,
        /// Why.
        reason: String,
    },
    /// The server refused or failed the query.
    #[error("query failed: {what}: {message}{hint}")]
    Status {
        /// The status, in words.
        what: &'static str,
        /// The server's message.
        message: String,
        /// What to do about it.
        hint: &'static str,
    },
    /// Something ferritectl cannot send or understand.
    #[error("query: {0}")]
    Invalid(String),
    /// The query text cannot be read.
    #[error("cannot read the query from {from}: {source}")]
    ReadQuery {
        /// `standard input` or the file.
        from: String,
        /// Why.
        source: io::Error,
    },
    /// The result cannot be written.
    #[error("cannot print the result: {0}")]
    Output(String),
}

impl From<Status> for QueryError {
    fn from(status: Status) -> Self {
        let (what, hint) = match status.code() {
            Code::Unauthenticated => (
                "401 unauthenticated",
                " (the token is missing, unknown, revoked or expired: check --token, \
                 FERRITE_TOKEN or the profile's token)",
            ),
            // ferrite's message says which permission is missing.
            Code::PermissionDenied => ("403 forbidden", ""),
            Code::NotFound => ("not found", ""),
            Code::InvalidArgument => ("invalid query", ""),
            Code::Unavailable => ("unavailable", " (the server is busy or restarting: retry)"),
            Code::DeadlineExceeded => ("took too long", " (the server's query time limit)"),
            Code::ResourceExhausted => ("out of resources", " (the server's query memory limit)"),
            Code::Unimplemented => ("not supported by the server", ""),
            Code::Cancelled => ("cancelled", ""),
            Code::Internal => ("server error", ""),
            Code::Unknown
            | Code::Ok
            | Code::AlreadyExists
            | Code::FailedPrecondition
            | Code::Aborted
            | Code::OutOfRange
            | Code::DataLoss => ("error", ""),
        };
        Self::Status {
            what,
            message: status.message().to_string(),
            hint,
        }
    }
}

impl From<FlightError> for QueryError {
    fn from(e: FlightError) -> Self {
        match e {
            FlightError::Tonic(status) => (*status).into(),
            other => Self::Invalid(format!("unexpected answer from the server: {other}")),
        }
    }
}

/// Where the SQL comes from.
#[derive(Debug, Clone)]
pub enum QueryText {
    /// The argument.
    Text(String),
    /// `-`.
    Stdin,
    /// `--file`.
    File(std::path::PathBuf),
}

impl QueryText {
    /// The SQL, trimmed and non-empty.
    pub fn read(&self) -> Result<String, QueryError> {
        let text = match self {
            Self::Text(t) => t.clone(),
            Self::Stdin => {
                let mut t = String::new();
                io::stdin()
                    .read_to_string(&mut t)
                    .map_err(|source| QueryError::ReadQuery {
                        from: "standard input".to_string(),
                        source,
                    })?;
                t
            }
            Self::File(path) => {
                std::fs::read_to_string(path).map_err(|source| QueryError::ReadQuery {
                    from: path.display().to_string(),
                    source,
                })?
            }
        };
        let text = text.trim();
        if text.is_empty() {
            return Err(QueryError::Invalid("the query is empty".to_string()));
        }
        Ok(text.to_string())
    }
}

/// A channel to the host: h2c for `http://`, TLS for `https://`.
///
/// TLS comes from [`crate::tls::connector`] (the profile's CA, or `insecure`), which tonic's
/// own TLS settings cannot express. tonic refuses an `https://` endpoint without its own TLS
/// configured, so the endpoint is given as `http://` and the connector, which only speaks
/// TLS, is handed the `https://` address.
pub async fn channel(settings: &Settings, timeout: Duration) -> Result<Channel, QueryError> {
    let url = settings.host.as_str().trim_end_matches('/').to_string();
    let tls = settings.host.scheme() == "https";
    let endpoint_url = if tls {
        url.replacen("https://", "http://", 1)
    } else {
        url.clone()
    };
    let endpoint = Endpoint::from_shared(endpoint_url)
        .map_err(|e| QueryError::Invalid(format!("host {url}: {e}")))?
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .timeout(timeout)
        .tcp_nodelay(true);
    let unreachable = |e: tonic::transport::Error| QueryError::Unreachable {
        url: origin(&settings.host),
        reason: innermost(&e),
    };
    if tls {
        let connector = crate::tls::connector(&settings.tls).map_err(QueryError::Invalid)?;
        let connector = tower::util::MapRequestLayer::new(|uri: http::Uri| {
            let mut parts = uri.into_parts();
            parts.scheme = Some(http::uri::Scheme::HTTPS);
            http::Uri::from_parts(parts).expect("the same URI with another scheme")
        })
        .layer(connector);
        endpoint
            .connect_with_connector(connector)
            .await
            .map_err(unreachable)
    } else {
        endpoint.connect().await.map_err(unreachable)
    }
}

fn request<T>(message: T, token: &str, database: &str) -> Result<tonic::Request<T>, QueryError> {
    let mut request = tonic::Request::new(message);
    let auth = MetadataValue::try_from(format!("Bearer {token}"))
        .map_err(|_| QueryError::Invalid("the token holds characters a header cannot".into()))?;
    let db = MetadataValue::try_from(database).map_err(|_| {
        QueryError::Invalid(format!(
            "the database name '{database}' holds characters a header cannot"
        ))
    })?;
    request.metadata_mut().insert("authorization", auth);
    request.metadata_mut().insert("database", db);
    Ok(request)
}

/// Run `sql` on `database` and write the result to standard output in `format`.
pub async fn run(
    channel: Channel,
    token: &str,
    database: &str,
    sql: String,
    format: QueryFormat,
) -> Result<(), QueryError> {
    let mut client = FlightServiceClient::new(channel);
    let command = CommandStatementQuery {
        query: sql,
        transaction_id: None,
    };
    let descriptor = FlightDescriptor::new_cmd(command.as_any().encode_to_vec());
    let info = client
        .get_flight_info(request(descriptor, token, database)?)
        .await?
        .into_inner();
    let schema: SchemaRef = info
        .clone()
        .try_decode_schema()
        .map_err(|e| QueryError::Invalid(format!("the result's schema does not decode: {e}")))?
        .into();
    let mut out = Output::new(format);
    for endpoint in info.endpoint {
        // ferrite answers with an empty location: fetch on this channel. (A location
        // elsewhere would need a channel of its own; ferrite sends none.)
        let ticket: Ticket = endpoint
            .ticket
            .ok_or_else(|| QueryError::Invalid("an endpoint without a ticket".to_string()))?;
        let data = client
            .do_get(request(ticket, token, database)?)
            .await?
            .into_inner()
            .map_err(FlightError::from);
        let mut batches = FlightRecordBatchStream::new_from_flight_data(data);
        while let Some(batch) = batches.next().await {
            if !out.write(&batch?)? {
                return Ok(());
            }
        }
    }
    out.finish(&schema)
}

/// Run InfluxQL statements on `database` (a Flight ticket with `"query_type": "influxql"`)
/// and write their series to standard output in `format`: one table with the columns
/// `iox::measurement`, `time`, the GROUP BY tags and the values.
pub async fn run_influxql(
    channel: Channel,
    token: &str,
    database: &str,
    query: String,
    format: QueryFormat,
) -> Result<(), QueryError> {
    let mut client = FlightServiceClient::new(channel);
    let ticket = serde_json::json!({
        "database": database,
        "sql_query": query,
        "query_type": "influxql",
    });
    let data = client
        .do_get(request(Ticket::new(ticket.to_string()), token, database)?)
        .await?
        .into_inner()
        .map_err(FlightError::from);
    let mut batches = FlightRecordBatchStream::new_from_flight_data(data);
    let mut out = Output::new(format);
    let mut schema: Option<SchemaRef> = None;
    while let Some(batch) = batches.next().await {
        let batch = batch?;
        schema.get_or_insert_with(|| batch.schema());
        if !out.write(&batch)? {
            return Ok(());
        }
    }
    let schema = schema
        .or_else(|| batches.schema().cloned())
        .unwrap_or_else(|| Arc::new(arrow::datatypes::Schema::empty()));
    out.finish(&schema)
}

type Stdout = BufWriter<io::Stdout>;

/// A result writer on standard output; `Ok(false)` once the reader went away (`| head`).
struct Output {
    format: QueryFormat,
    /// The table format holds every batch to size its columns.
    table: Vec<RecordBatch>,
    json: Option<arrow::json::ArrayWriter<Stdout>>,
    jsonl: Option<arrow::json::LineDelimitedWriter<Stdout>>,
    csv: Option<arrow::csv::Writer<Stdout>>,
    rows: usize,
    closed: bool,
}

fn closed_pipe(e: &ArrowError) -> bool {
    matches!(e, ArrowError::IoError(_, io) if io.kind() == io::ErrorKind::BrokenPipe)
}

impl Output {
    fn new(format: QueryFormat) -> Self {
        let out = BufWriter::new(io::stdout());
        let mut o = Self {
            format,
            table: Vec::new(),
            json: None,
            jsonl: None,
            csv: None,
            rows: 0,
            closed: false,
        };
        match format {
            QueryFormat::Table => {}
            QueryFormat::Json => o.json = Some(arrow::json::ArrayWriter::new(out)),
            QueryFormat::Jsonl => o.jsonl = Some(arrow::json::LineDelimitedWriter::new(out)),
            QueryFormat::Csv => {
                o.csv = Some(
                    arrow::csv::WriterBuilder::new()
                        .with_header(true)
                        .build(out),
                );
            }
        }
        o
    }

    fn check(&mut self, result: Result<(), ArrowError>) -> Result<bool, QueryError> {
        match result {
            Ok(()) => Ok(true),
            Err(e) if closed_pipe(&e) => {
                self.closed = true;
                Ok(false)
            }
            Err(e) => Err(QueryError::Output(e.to_string())),
        }
    }

    fn write(&mut self, batch: &RecordBatch) -> Result<bool, QueryError> {
        // Keep-alive batches (an empty batch every 5 s of silence) carry nothing.
        if batch.num_rows() == 0 {
            return Ok(true);
        }
        self.rows += batch.num_rows();
        let result = match self.format {
            QueryFormat::Table => {
                self.table.push(batch.clone());
                Ok(())
            }
            QueryFormat::Json => self.json.as_mut().map_or(Ok(()), |w| w.write(batch)),
            QueryFormat::Jsonl => self.jsonl.as_mut().map_or(Ok(()), |w| w.write(batch)),
            QueryFormat::Csv => self.csv.as_mut().map_or(Ok(()), |w| w.write(batch)),
        };
        self.check(result)
    }

    fn finish(mut self, schema: &SchemaRef) -> Result<(), QueryError> {
        if self.closed {
            return Ok(());
        }
        let empty = RecordBatch::new_empty(Arc::clone(schema));
        let result = match self.format {
            QueryFormat::Table => {
                let batches = if self.table.is_empty() {
                    vec![empty]
                } else {
                    std::mem::take(&mut self.table)
                };
                arrow::util::pretty::pretty_format_batches(&batches).and_then(|t| {
                    let mut out = io::stdout().lock();
                    writeln!(out, "{t}")?;
                    out.flush()?;
                    Ok(())
                })
            }
            QueryFormat::Json => self.json.take().map_or(Ok(()), |mut w| {
                w.finish()?;
                let mut out = w.into_inner();
                writeln!(out)?;
                out.flush()?;
                Ok(())
            }),
            QueryFormat::Jsonl => self.jsonl.take().map_or(Ok(()), |mut w| {
                w.finish()?;
                w.into_inner().flush()?;
                Ok(())
            }),
            QueryFormat::Csv => self.csv.take().map_or(Ok(()), |mut w| {
                // The header comes with the first batch: an empty result still gets one.
                if self.rows == 0 {
                    w.write(&empty)?;
                }
                w.into_inner().flush()?;
                Ok(())
            }),
        };
        self.check(result).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_read_as_what_they_mean() {
        let e = QueryError::from(Status::permission_denied(
            "the token does not grant read on database 'x'",
        ))
        .to_string();
        assert!(e.contains("403 forbidden"), "{e}");
        assert!(e.contains("database 'x'"), "{e}");
        let e = QueryError::from(Status::unauthenticated("unknown token")).to_string();
        assert!(e.contains("401 unauthenticated"), "{e}");
    }
}
