//! The catalog as a gRPC service (`ferrite.catalog.v1.CatalogService`): the server adapter
//! that the catalog service runs in front of its [`SqlCatalog`](crate::SqlCatalog), and the
//! client, [`GrpcCatalog`], that every other service uses in its place.
//!
//! ```text
//!  router / ingester / querier                    catalog service (M replicas)
//!  ┌────────────────────────────┐   unary RPCs    ┌──────────────────────────────┐
//!  │ GrpcCatalog: impl Catalog  │ ──────────────► │ CatalogGrpcService           │
//!  │  timeout, bounded retries  │                 │  └─► SqlCatalog ──► Postgres │
//!  │ watch(): Receiver<i64> ◄───┼─ WatchVersion ─ │ version feed: one poller     │
//!  │  (resubscribes forever)    │    (stream)     │  (100 ms) for all watchers   │
//!  └────────────────────────────┘                 └──────────────────────────────┘
//! ```
//!
//! Invariants:
//! - the client returns exactly the [`Error`] variant the server's catalog returned, for
//!   every variant a caller matches on (`ColumnTypeConflict`, `DatabaseNotFound`,
//!   `TableNotFound`, `Corrupt`); the rest arrive as [`Error::Rpc`]. The variant travels as a
//!   `ferrite.catalog.v1.ErrorDetail` inside the standard `google.rpc.Status` status details,
//!   the message as the status message, so both survive any gRPC proxy;
//! - every RPC is idempotent (create-or-get or a read), so the client retries any of them
//!   after a transport failure or `UNAVAILABLE`;
//! - a change committed through any replica reaches every watcher of every replica within
//!   one poll interval plus the network: the version row in the shared database is the
//!   source of truth, not anything a replica remembers.

mod client;
mod convert;
mod server;

pub use client::GrpcCatalog;
pub use server::{CatalogGrpcService, catalog_service};

/// A cache definition as `ferrite.catalog.v1.CacheDefinition` (also the ingesters' cache
/// reads carry it).
pub fn cache_to_proto(c: &ferrite_model::cache::CacheDefinition) -> proto::CacheDefinition {
    proto::CacheDefinition {
        id: c.id,
        database_id: c.database_id.get(),
        table_id: c.table_id.get(),
        table: c.table.clone(),
        name: c.name.clone(),
        spec_json: c.spec.to_json(),
    }
}

/// Inverse of [`cache_to_proto`]; the error names what is wrong with the spec.
pub fn cache_from_proto(
    c: proto::CacheDefinition,
) -> std::result::Result<ferrite_model::cache::CacheDefinition, String> {
    Ok(ferrite_model::cache::CacheDefinition {
        id: c.id,
        database_id: ferrite_model::DatabaseId(c.database_id),
        table_id: TableId(c.table_id),
        table: c.table,
        name: c.name,
        spec: ferrite_model::cache::CacheSpec::from_json(&c.spec_json)?,
    })
}

use ferrite_model::TableId;
use ferrite_proto::ferrite::catalog::v1 as proto;
use prost::Message;
use proto::error_detail::Error as Detail;
use tonic::{Code, Status};

use crate::Error;

/// Largest message either side accepts (a database schema with many thousands of columns;
/// tonic's default is 4 MiB).
const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// Type URL of [`proto::ErrorDetail`] inside `google.rpc.Status.details`.
const ERROR_DETAIL_TYPE_URL: &str = "type.googleapis.com/ferrite.catalog.v1.ErrorDetail";

/// `google.rpc.Status`, the standard payload of the `grpc-status-details-bin` trailer. Written
/// out here (three fields) rather than generated, so the proto crate needs no googleapis.
#[derive(Clone, PartialEq, Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
    #[prost(message, repeated, tag = "3")]
    details: Vec<prost_types::Any>,
}

/// `detail` wrapped as the standard status details payload.
fn encode_detail(code: Code, message: &str, detail: Detail) -> Vec<u8> {
    let detail = proto::ErrorDetail {
        error: Some(detail),
    };
    RpcStatus {
        code: code as i32,
        message: message.to_owned(),
        details: vec![prost_types::Any {
            type_url: ERROR_DETAIL_TYPE_URL.to_owned(),
            value: detail.encode_to_vec(),
        }],
    }
    .encode_to_vec()
}

/// The catalog's error as a gRPC status: code by class, the error's message, and the
/// [`proto::ErrorDetail`] a client needs to rebuild it.
pub(crate) fn status_of(err: &Error) -> Status {
    // Exhaustive on purpose: a new variant must decide its code and how clients see it.
    let (code, detail) = match err {
        Error::ColumnTypeConflict {
            table,
            column,
            existing,
            requested,
        } => (
            Code::InvalidArgument,
            Detail::ColumnTypeConflict(proto::ColumnTypeConflict {
                table: table.clone(),
                column: column.clone(),
                existing: existing.code().into(),
                requested: requested.code().into(),
            }),
        ),
        Error::DatabaseNotFound(name) => (Code::NotFound, Detail::DatabaseNotFound(name.clone())),
        Error::TableNotFound(id) => (Code::NotFound, Detail::TableNotFound(id.get())),
        Error::TableLimit {
            database,
            table,
            count,
            limit,
        } => (
            Code::FailedPrecondition,
            Detail::TableLimit(proto::TableLimit {
                database: database.clone(),
                table: table.clone(),
                count: *count,
                limit: *limit,
            }),
        ),
        Error::ColumnLimit {
            table,
            count,
            adding,
            limit,
        } => (
            Code::FailedPrecondition,
            Detail::ColumnLimit(proto::ColumnLimit {
                table: table.clone(),
                count: *count,
                adding: *adding,
                limit: *limit,
            }),
        ),
        Error::Conflict(m) => (Code::AlreadyExists, Detail::Conflict(m.clone())),
        // Management errors: the management API runs next to the catalog database and never
        // sends these over gRPC; keep the class and the words.
        Error::NotFound(m) => (Code::NotFound, Detail::Internal(m.clone())),
        Error::Invalid(m) => (Code::InvalidArgument, Detail::InvalidRequest(m.clone())),
        Error::TokenNotFound(id) => (
            Code::NotFound,
            Detail::TokenNotFound(id.hyphenated().to_string()),
        ),
        Error::Unavailable(e) => (Code::Unavailable, Detail::Unavailable(e.to_string())),
        // A catalog service that is itself a client of another one (a proxy): still transient.
        Error::Rpc(m) => (Code::Unavailable, Detail::Unavailable(m.clone())),
        Error::Corrupt(m) => (Code::Internal, Detail::Corrupt(m.clone())),
        Error::Migration(_) | Error::InvalidDsn(_) => {
            (Code::Internal, Detail::Internal(err.to_string()))
        }
    };
    let message = err.to_string();
    let details = encode_detail(code, &message, detail);
    Status::with_details(code, message, details.into())
}

/// A request the server cannot decode: `INVALID_ARGUMENT` with an `invalid_request` detail.
pub(crate) fn invalid_request(message: String) -> Status {
    let details = encode_detail(
        Code::InvalidArgument,
        &message,
        Detail::InvalidRequest(message.clone()),
    );
    Status::with_details(Code::InvalidArgument, message, details.into())
}

/// The [`proto::ErrorDetail`] in a status, if the catalog service put one there.
pub(crate) fn detail_of(status: &Status) -> Option<Detail> {
    if status.details().is_empty() {
        return None;
    }
    let rpc = RpcStatus::decode(status.details()).ok()?;
    rpc.details
        .into_iter()
        .find(|any| any.type_url == ERROR_DETAIL_TYPE_URL)
        .and_then(|any| proto::ErrorDetail::decode(any.value.as_slice()).ok())
        .and_then(|d| d.error)
}

/// Rebuild the catalog error a status carries. A status without a detail did not come from
/// the catalog service (a transport failure, a proxy) and becomes [`Error::Rpc`], as do the
/// details that have no variant of their own.
pub(crate) fn error_of(status: &Status, target: &str) -> Error {
    let rpc = || {
        Error::Rpc(format!(
            "{target}: {}: {}",
            code_name(status.code()),
            status.message()
        ))
    };
    let Some(detail) = detail_of(status) else {
        return rpc();
    };
    match detail {
        Detail::ColumnTypeConflict(c) => {
            match (
                convert::column_type(c.existing),
                convert::column_type(c.requested),
            ) {
                (Ok(existing), Ok(requested)) => Error::ColumnTypeConflict {
                    table: c.table,
                    column: c.column,
                    existing,
                    requested,
                },
                // A type this client does not know: keep the server's words.
                _ => Error::Rpc(status.message().to_owned()),
            }
        }
        Detail::DatabaseNotFound(name) => Error::DatabaseNotFound(name),
        Detail::TableNotFound(id) => Error::TableNotFound(TableId(id)),
        Detail::TableLimit(l) => Error::TableLimit {
            database: l.database,
            table: l.table,
            count: l.count,
            limit: l.limit,
        },
        Detail::ColumnLimit(l) => Error::ColumnLimit {
            table: l.table,
            count: l.count,
            adding: l.adding,
            limit: l.limit,
        },
        Detail::TokenNotFound(id) => match uuid::Uuid::parse_str(&id) {
            Ok(id) => Error::TokenNotFound(id),
            Err(_) => rpc(),
        },
        Detail::Corrupt(m) => Error::Corrupt(m),
        Detail::Conflict(m) => Error::Conflict(m),
        Detail::Unavailable(_) | Detail::InvalidRequest(_) | Detail::Internal(_) => rpc(),
    }
}

/// Worth another attempt: the catalog database was unreachable (a detail says so), or the
/// call never reached a catalog service (no detail: connection refused or reset, timeout).
pub(crate) fn is_retryable(status: &Status) -> bool {
    match detail_of(status) {
        Some(Detail::Unavailable(_)) => true,
        Some(
            Detail::ColumnTypeConflict(_)
            | Detail::DatabaseNotFound(_)
            | Detail::TableNotFound(_)
            | Detail::TokenNotFound(_)
            | Detail::TableLimit(_)
            | Detail::ColumnLimit(_)
            | Detail::Corrupt(_)
            | Detail::Conflict(_)
            | Detail::InvalidRequest(_)
            | Detail::Internal(_),
        ) => false,
        None => matches!(
            status.code(),
            Code::Unavailable
                | Code::Unknown
                | Code::DeadlineExceeded
                | Code::Cancelled
                | Code::Aborted
                | Code::Internal
        ),
    }
}

/// The canonical gRPC name of a code, for messages.
fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use ferrite_model::ColumnType;

    use super::*;

    #[test]
    fn every_matched_variant_survives_a_status() {
        let errors = [
            Error::ColumnTypeConflict {
                table: "cpu".into(),
                column: "usage".into(),
                existing: ColumnType::F64,
                requested: ColumnType::I64,
            },
            Error::DatabaseNotFound("telegraf".into()),
            Error::TableNotFound(TableId(42)),
            Error::Corrupt("column 'weird' has unknown type code 99".into()),
        ];
        for err in errors {
            let status = status_of(&err);
            assert!(!is_retryable(&status), "{err}");
            let back = error_of(&status, "http://catalog");
            assert_eq!(back.to_string(), err.to_string());
            assert_eq!(std::mem::discriminant(&back), std::mem::discriminant(&err));
        }
    }

    #[test]
    fn codes_follow_the_error_class() {
        let conflict = Error::ColumnTypeConflict {
            table: "cpu".into(),
            column: "host".into(),
            existing: ColumnType::Tag,
            requested: ColumnType::String,
        };
        assert_eq!(status_of(&conflict).code(), Code::InvalidArgument);
        assert_eq!(
            status_of(&Error::DatabaseNotFound("x".into())).code(),
            Code::NotFound
        );
        assert_eq!(
            status_of(&Error::TableNotFound(TableId(1))).code(),
            Code::NotFound
        );
        let down = status_of(&Error::Unavailable(sqlx::Error::PoolTimedOut));
        assert_eq!(down.code(), Code::Unavailable);
        assert!(is_retryable(&down));
        assert!(matches!(error_of(&down, "x"), Error::Rpc(_)));
        assert_eq!(
            status_of(&Error::Corrupt("x".into())).code(),
            Code::Internal
        );
        assert_eq!(
            status_of(&Error::InvalidDsn("x".into())).code(),
            Code::Internal
        );
    }

    #[test]
    fn statuses_without_a_detail_are_transport_failures() {
        let refused = Status::unavailable("tcp connect error");
        assert!(is_retryable(&refused));
        let err = error_of(&refused, "http://127.0.0.1:1");
        assert_eq!(
            err.to_string(),
            "catalog service error: http://127.0.0.1:1: UNAVAILABLE: tcp connect error"
        );
        assert!(!is_retryable(&Status::unimplemented("no such method")));
        assert!(!is_retryable(&invalid_request("bad uuid".into())));
    }
}
