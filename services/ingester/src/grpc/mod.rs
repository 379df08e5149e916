//! The ingester's two contracts over the network: the write RPC (router → ingester) and Arrow
//! Flight `DoGet` (querier → ingester), with clients that implement the same traits as the
//! in-process [`Ingester`](crate::Ingester), so router and querier code does not change.
//!
//! ```text
//!  router ── GrpcIngesterWrite ── WriteService/Write(WriteRequest) ──► write_service ─► IngesterWrite
//!  querier ─ FlightIngesterQuery ─ Flight DoGet(IngesterQueryRequest) ─► flight_service ─► IngesterQuery
//!            ◄── per partition: NONE + app_metadata, [schema once], record batches ──┘
//! ```
//!
//! The wire formats are `proto/protos/ferrite/ingester/v1/{write,query}.proto`. Clients
//! connect lazily, never retry (the router moves on to the next ingester itself) and bound
//! every call by a timeout; every error names the ingester's address.

mod query;
mod write;

use std::time::Duration;

use ferrite_proto::auth::ClientAuth;
use tonic::transport::{Channel, Endpoint};

pub use query::{
    FlightIngesterQuery, IngesterFlightService, STATUS_ACTION, decode_ticket, encode_ticket,
    flight_service,
};
pub use write::{GrpcIngesterWrite, IngesterWriteService, write_service};

/// Largest gRPC message either side accepts: a write of ~10 MiB of line protocol is bigger
/// as Arrow IPC, and a single Flight message may hold one large batch slice.
pub const MAX_MESSAGE_BYTES: usize = 256 << 20;

/// Both ingester services on one gRPC router (they share a port in the cluster).
pub fn routes(ingester: std::sync::Arc<crate::Ingester>) -> tonic::service::Routes {
    tonic::service::Routes::new(write_service(std::sync::Arc::clone(&ingester) as _))
        .add_service(flight_service(ingester as _))
}

/// An ingester address that cannot be turned into a gRPC endpoint.
#[derive(Debug, thiserror::Error)]
#[error("invalid ingester address '{addr}': {reason}")]
pub struct InvalidAddress {
    /// The address as given.
    pub addr: String,
    /// Why it was refused.
    pub reason: String,
}

/// The longest a connection to an ingester may take to open, whatever the call's deadline:
/// on a cluster network a live peer accepts within milliseconds (this leaves room for one
/// lost SYN, resent after 1 s); one that has not by then is gone (its pod deleted, its node
/// down), and waiting longer only holds up the write or the query.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// A lazily connected channel to `addr` (`host:port` or `http://host:port`): no I/O happens
/// here, the connection is made by the first call and re-made after a failure. Returns the
/// channel and the normalised address for error messages.
pub fn lazy_channel(
    addr: &str,
    timeout: Duration,
    auth: &ClientAuth,
) -> Result<(Channel, String), InvalidAddress> {
    let addr = addr.trim();
    let uri = if addr.contains("://") {
        addr.to_string()
    } else {
        format!("http://{addr}")
    };
    let endpoint = Endpoint::from_shared(uri.clone()).map_err(|e| InvalidAddress {
        addr: addr.to_string(),
        reason: e.to_string(),
    })?;
    if endpoint.uri().host().is_none() {
        return Err(InvalidAddress {
            addr: addr.to_string(),
            reason: "no host".into(),
        });
    }
    let endpoint = auth.endpoint(endpoint).map_err(|e| InvalidAddress {
        addr: addr.to_string(),
        reason: format!("TLS: {e}"),
    })?;
    let channel = endpoint
        .connect_timeout(timeout.min(CONNECT_TIMEOUT))
        .timeout(timeout)
        .tcp_nodelay(true)
        // Notice a peer that vanished without closing the connection (node loss).
        .http2_keep_alive_interval(Duration::from_secs(20))
        .keep_alive_timeout(Duration::from_secs(10))
        .connect_lazy();
    Ok((channel, uri))
}
