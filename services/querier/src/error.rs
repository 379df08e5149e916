//! Why a query failed, and the one place that turns a failure into an HTTP status or a gRPC
//! status. Every variant is matched exhaustively, so a new cause forces a decision on both
//! wires.

use axum::http::StatusCode;
use datafusion::error::DataFusionError;

/// Longest message sent in a gRPC status (IOx cuts at the same length).
const MAX_STATUS_MESSAGE: usize = 2000;

/// Why a query failed.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// No database with that name.
    #[error("database '{0}' not found")]
    DatabaseNotFound(String),
    /// The SQL text does not parse or does not plan (unknown table or column, type errors,
    /// unbound parameters, statements that are not queries).
    #[error("error while planning query: {0}")]
    Plan(#[source] DataFusionError),
    /// The query parameters are not a JSON object of scalars, or a value has no SQL type.
    #[error("invalid query parameters: {0}")]
    InvalidParams(String),
    /// The request itself is malformed: a missing `db` or `q`, an unknown format, a ticket that
    /// decodes as none of the accepted encodings, conflicting database headers.
    #[error("{0}")]
    InvalidRequest(String),
    /// A valid request for something not built yet (InfluxQL).
    #[error("{0}")]
    Unsupported(String),
    /// The catalog failed to answer.
    #[error("catalog error: {0}")]
    Catalog(#[from] ferrite_catalog::Error),
    /// An ingester failed to return its unpersisted data: answering without it would silently
    /// drop acknowledged writes, so the query fails.
    #[error("ingester query failed: {0}")]
    Ingester(#[from] ferrite_ingester::api::QueryError),
    /// The query failed while running.
    #[error("error while executing query: {0}")]
    Execution(#[source] DataFusionError),
    /// Every query slot stayed busy for the whole queue timeout (retryable).
    #[error(
        "too many queries: {running} are running and none finished within {waited:?}; \
         retry shortly, or raise FERRITE_MAX_CONCURRENT_QUERIES"
    )]
    TooManyQueries {
        /// The concurrency limit.
        running: usize,
        /// How long the query waited for a slot.
        waited: std::time::Duration,
    },
    /// The query needed more operator memory than the querier had left (final: the same
    /// query will need the same memory).
    #[error(
        "query exceeded the querier's memory limit (FERRITE_QUERY_MEMORY_BYTES, shared by \
         running queries): narrow its time range or the series and columns it reads. {0}"
    )]
    MemoryLimit(String),
    /// The query ran longer than the query timeout.
    #[error(
        "query exceeded the time limit of {0:?} (FERRITE_QUERY_TIMEOUT_SECONDS): narrow its \
         time range or the series it reads"
    )]
    Timeout(std::time::Duration),
    /// A bug or broken invariant inside the querier.
    #[error("internal error: {0}")]
    Internal(String),
    /// The caller's token is missing, bad, or lacks the permission.
    #[error(transparent)]
    Auth(#[from] ferrite_auth::AuthError),
}

/// Result of querier operations.
pub type Result<T, E = QueryError> = std::result::Result<T, E>;

/// Where a DataFusion error was raised: the same error class means different things before
/// and after the plan starts running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// Parsing, logical planning, parameter binding: everything here is caused by the input.
    Planning,
    /// Physical planning (which contacts ingesters and the catalog) and execution.
    Execution,
}

impl QueryError {
    /// Classify a DataFusion error raised at `stage`. Our own errors travel through DataFusion
    /// as `External(QueryError)` and come back out unchanged.
    pub(crate) fn from_datafusion(err: DataFusionError, stage: Stage) -> Self {
        let err = match err {
            DataFusionError::External(boxed) => match boxed.downcast::<Self>() {
                Ok(ours) => return *ours,
                Err(other) => DataFusionError::External(other),
            },
            other => other,
        };
        if let Some(ours) = find_query_error(&err) {
            // Wrapped inside context or shared errors: keep the class, lose ownership.
            return ours;
        }
        if let DataFusionError::ResourcesExhausted(message) = err.find_root() {
            return Self::MemoryLimit(message.clone());
        }
        let input_error = match err.find_root() {
            DataFusionError::SQL(..)
            | DataFusionError::Plan(_)
            | DataFusionError::SchemaError(..)
            | DataFusionError::NotImplemented(_) => true,
            DataFusionError::Internal(_) => {
                return Self::Internal(err.to_string());
            }
            _ => stage == Stage::Planning,
        };
        if input_error {
            Self::Plan(err)
        } else {
            Self::Execution(err)
        }
    }

    /// Could this error be the answer of a schema view that lags the catalog: a database
    /// not found, or a planning error (an unknown table or column)? Syntax errors cannot.
    pub(crate) fn may_be_stale_schema(&self) -> bool {
        match self {
            Self::DatabaseNotFound(_) => true,
            Self::Plan(e) => matches!(
                e.find_root(),
                DataFusionError::Plan(_) | DataFusionError::SchemaError(..)
            ),
            Self::InvalidParams(_)
            | Self::InvalidRequest(_)
            | Self::Unsupported(_)
            | Self::Catalog(_)
            | Self::Ingester(_)
            | Self::Execution(_)
            | Self::TooManyQueries { .. }
            | Self::MemoryLimit(_)
            | Self::Timeout(_)
            | Self::Internal(_)
            | Self::Auth(_) => false,
        }
    }

    /// Classify an error read from a result stream returned by
    /// [`crate::QueryEngine::sql`] (the query was valid; it failed while running).
    pub fn from_stream_error(err: DataFusionError) -> Self {
        Self::from_datafusion(err, Stage::Execution)
    }

    /// Wrap for transport through DataFusion (e.g. out of `TableProvider::scan`).
    pub(crate) fn into_datafusion(self) -> DataFusionError {
        DataFusionError::External(Box::new(self))
    }

    /// HTTP status of this error on the query APIs.
    pub fn http_status(&self) -> StatusCode {
        match self {
            Self::DatabaseNotFound(_) => StatusCode::NOT_FOUND,
            Self::Plan(_) | Self::InvalidParams(_) | Self::InvalidRequest(_) => {
                StatusCode::BAD_REQUEST
            }
            Self::Unsupported(_) => StatusCode::BAD_REQUEST,
            Self::Ingester(ferrite_ingester::api::QueryError::Unavailable(_)) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Ingester(ferrite_ingester::api::QueryError::Invalid(_)) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            Self::TooManyQueries { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::MemoryLimit(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            Self::Catalog(e) if catalog_unavailable(e) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Catalog(_) | Self::Execution(_) | Self::Internal(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            Self::Auth(e) => e.http_status(),
        }
    }

    /// Seconds a client should wait before retrying, for errors worth retrying as they are.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Self::TooManyQueries { .. }
            | Self::Ingester(ferrite_ingester::api::QueryError::Unavailable(_)) => Some(1),
            Self::Catalog(e) if catalog_unavailable(e) => Some(1),
            Self::Auth(ferrite_auth::AuthError::Unavailable(_)) => Some(1),
            _ => None,
        }
    }

    /// gRPC code of this error on Flight.
    pub fn grpc_code(&self) -> tonic::Code {
        match self {
            Self::DatabaseNotFound(_) => tonic::Code::NotFound,
            Self::Plan(_) | Self::InvalidParams(_) | Self::InvalidRequest(_) => {
                tonic::Code::InvalidArgument
            }
            Self::Unsupported(_) => tonic::Code::InvalidArgument,
            Self::Ingester(ferrite_ingester::api::QueryError::Unavailable(_)) => {
                tonic::Code::Unavailable
            }
            Self::Ingester(ferrite_ingester::api::QueryError::Invalid(_)) => tonic::Code::Internal,
            Self::TooManyQueries { .. } => tonic::Code::Unavailable,
            Self::MemoryLimit(_) => tonic::Code::ResourceExhausted,
            Self::Timeout(_) => tonic::Code::DeadlineExceeded,
            Self::Catalog(e) if catalog_unavailable(e) => tonic::Code::Unavailable,
            Self::Catalog(_) | Self::Execution(_) | Self::Internal(_) => tonic::Code::Internal,
            Self::Auth(e) => e.to_status().code(),
        }
    }

    /// This error as a gRPC status, the message cut to 2000 characters.
    pub fn to_status(&self) -> tonic::Status {
        let mut message = self.to_string();
        if message.len() > MAX_STATUS_MESSAGE {
            let mut end = MAX_STATUS_MESSAGE;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
        }
        tonic::Status::new(self.grpc_code(), message)
    }
}

/// A catalog that could not be reached (or whose database could not): worth a retry, as
/// opposed to a catalog that answered with something broken.
fn catalog_unavailable(err: &ferrite_catalog::Error) -> bool {
    use ferrite_catalog::Error;
    match err {
        Error::Unavailable(_) | Error::Rpc(_) => true,
        Error::ColumnTypeConflict { .. }
        | Error::DatabaseNotFound(_)
        | Error::TableNotFound(_)
        | Error::TokenNotFound(_)
        | Error::TableLimit { .. }
        | Error::ColumnLimit { .. }
        | Error::Conflict(_)
        | Error::NotFound(_)
        | Error::Invalid(_)
        | Error::Migration(_)
        | Error::InvalidDsn(_)
        | Error::Corrupt(_) => false,
    }
}

impl From<QueryError> for tonic::Status {
    fn from(err: QueryError) -> Self {
        err.to_status()
    }
}

/// A [`QueryError`] nested anywhere inside `err` (context, shared or external wrappers),
/// rebuilt with its class and message.
fn find_query_error(err: &DataFusionError) -> Option<QueryError> {
    match err {
        DataFusionError::External(inner) => inner
            .downcast_ref::<QueryError>()
            .map(QueryError::shallow_copy),
        DataFusionError::Context(_, inner) => find_query_error(inner),
        DataFusionError::Shared(inner) => find_query_error(inner),
        _ => None,
    }
}

impl QueryError {
    /// Same class and message, for errors reached only by reference.
    fn shallow_copy(&self) -> Self {
        match self {
            Self::DatabaseNotFound(db) => Self::DatabaseNotFound(db.clone()),
            Self::Plan(e) => Self::Plan(DataFusionError::Plan(e.to_string())),
            Self::InvalidParams(m) => Self::InvalidParams(m.clone()),
            Self::InvalidRequest(m) => Self::InvalidRequest(m.clone()),
            Self::Unsupported(m) => Self::Unsupported(m.clone()),
            Self::Catalog(e) => Self::Internal(format!("catalog error: {e}")),
            Self::Ingester(ferrite_ingester::api::QueryError::Unavailable(m)) => {
                Self::Ingester(ferrite_ingester::api::QueryError::Unavailable(m.clone()))
            }
            Self::Ingester(ferrite_ingester::api::QueryError::Invalid(m)) => {
                Self::Ingester(ferrite_ingester::api::QueryError::Invalid(m.clone()))
            }
            Self::TooManyQueries { running, waited } => Self::TooManyQueries {
                running: *running,
                waited: *waited,
            },
            Self::MemoryLimit(m) => Self::MemoryLimit(m.clone()),
            Self::Timeout(t) => Self::Timeout(*t),
            Self::Execution(e) => Self::Execution(DataFusionError::Execution(e.to_string())),
            Self::Internal(m) => Self::Internal(m.clone()),
            Self::Auth(e) => Self::Auth(e.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_errors_survive_a_trip_through_datafusion() {
        let err = QueryError::DatabaseNotFound("x".into()).into_datafusion();
        let err = DataFusionError::Context("scan".into(), Box::new(err));
        let back = QueryError::from_datafusion(err, Stage::Execution);
        assert!(matches!(back, QueryError::DatabaseNotFound(ref d) if d == "x"));
        assert_eq!(back.http_status(), StatusCode::NOT_FOUND);
        assert_eq!(back.grpc_code(), tonic::Code::NotFound);
    }

    #[test]
    fn planning_errors_are_bad_input_and_execution_errors_are_internal() {
        let plan = QueryError::from_datafusion(
            DataFusionError::Execution("cast failed".into()),
            Stage::Planning,
        );
        assert_eq!(plan.http_status(), StatusCode::BAD_REQUEST);
        let exec = QueryError::from_datafusion(
            DataFusionError::Execution("disk full".into()),
            Stage::Execution,
        );
        assert_eq!(exec.http_status(), StatusCode::INTERNAL_SERVER_ERROR);
        let plan_late = QueryError::from_datafusion(
            DataFusionError::Plan("no such column".into()),
            Stage::Execution,
        );
        assert_eq!(plan_late.grpc_code(), tonic::Code::InvalidArgument);
    }

    #[test]
    fn an_unreachable_catalog_is_retryable_and_a_broken_one_is_not() {
        let down = QueryError::Catalog(ferrite_catalog::Error::Rpc("connection refused".into()));
        assert_eq!(down.http_status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(down.grpc_code(), tonic::Code::Unavailable);
        assert_eq!(down.retry_after(), Some(1));
        let broken = QueryError::Catalog(ferrite_catalog::Error::Corrupt("bad row".into()));
        assert_eq!(broken.http_status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(broken.grpc_code(), tonic::Code::Internal);
    }

    #[test]
    fn long_messages_are_cut_for_grpc() {
        let status = QueryError::InvalidRequest("é".repeat(3000)).to_status();
        assert!(status.message().len() <= MAX_STATUS_MESSAGE);
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
    }
}
