//! `ferrite.ingester.v1.WriteService`: the server over any [`IngesterWrite`] and the client
//! that implements [`IngesterWrite`] over the network.

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Array, TimestampNanosecondArray};
use async_trait::async_trait;
use ferrite_model::TIME_COLUMN;
use ferrite_proto::auth::{AuthChannel, ClientAuth};
use ferrite_proto::ferrite::ingester::v1 as proto;
use proto::write_service_client::WriteServiceClient;
use proto::write_service_server::{WriteService, WriteServiceServer};
use tonic::codec::CompressionEncoding;
use tonic::{Code, Request, Response, Status};
use tracing::warn;

use super::{InvalidAddress, MAX_MESSAGE_BYTES, lazy_channel};
use crate::api::{Durability, IngesterWrite, WriteError, WriteRequest};
use crate::codec;

/// The write RPC server to register on the ingester's gRPC port. Takes an
/// `Arc<Ingester>` (or any other [`IngesterWrite`]).
pub fn write_service(ingester: Arc<dyn IngesterWrite>) -> WriteServiceServer<IngesterWriteService> {
    WriteServiceServer::new(IngesterWriteService { ingester })
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
}

/// Serves `WriteService/Write` from an [`IngesterWrite`].
#[derive(Debug)]
pub struct IngesterWriteService {
    ingester: Arc<dyn IngesterWrite>,
}

#[tonic::async_trait]
impl WriteService for IngesterWriteService {
    async fn write(
        &self,
        request: Request<proto::WriteRequest>,
    ) -> Result<Response<proto::WriteResponse>, Status> {
        let message = request.into_inner();
        let durability = if message.no_sync {
            Durability::NoSync
        } else {
            Durability::Sync
        };
        let write =
            codec::decode_write(message).map_err(|e| Status::invalid_argument(e.to_string()))?;
        validate(&write).map_err(Status::invalid_argument)?;
        self.ingester.write(write, durability).await.map_err(|e| {
            let status = write_status(e);
            if status.code() == Code::Internal {
                warn!(error = %status.message(), "write failed");
            }
            status
        })?;
        Ok(Response::new(proto::WriteResponse {}))
    }
}

/// The gRPC status a refused write travels as.
fn write_status(e: WriteError) -> Status {
    let message = e.to_string();
    match e {
        WriteError::Overloaded(_) => Status::resource_exhausted(message),
        WriteError::ShuttingDown => Status::unavailable(message),
        WriteError::Wal(_) => Status::internal(message),
        WriteError::Unavailable(_) => Status::unavailable(message),
    }
}

/// What the in-process router guarantees and the buffer relies on: every batch has a
/// non-null nanosecond `time` column. A batch breaking it would be logged in the WAL and then
/// silently dropped, so it is refused here.
fn validate(write: &WriteRequest) -> Result<(), String> {
    for t in &write.tables {
        let time = t
            .batch
            .column_by_name(TIME_COLUMN)
            .ok_or_else(|| format!("table {}: batch has no '{TIME_COLUMN}' column", t.table_id))?;
        let time = time
            .as_any()
            .downcast_ref::<TimestampNanosecondArray>()
            .ok_or_else(|| {
                format!(
                    "table {}: '{TIME_COLUMN}' is {}, not Timestamp(ns)",
                    t.table_id,
                    time.data_type()
                )
            })?;
        if time.null_count() > 0 {
            return Err(format!("table {}: '{TIME_COLUMN}' has nulls", t.table_id));
        }
    }
    Ok(())
}

/// [`IngesterWrite`] over gRPC: one ingester at `addr`. Never retries: a failed write comes
/// back as [`WriteError::Unavailable`] (or `Overloaded`) for the router to place elsewhere.
#[derive(Debug, Clone)]
pub struct GrpcIngesterWrite {
    addr: String,
    timeout: Duration,
    client: WriteServiceClient<AuthChannel>,
}

impl GrpcIngesterWrite {
    /// A client for the ingester at `addr` (`host:port` or `http://host:port`) whose calls
    /// give up after `timeout`. Connects on first use, so this fails only for an address that
    /// is not a valid URI.
    /// Every call carries `auth`'s token, the cluster-internal one; an `https://` address is
    /// verified with `auth`'s roots.
    pub fn connect_lazy(
        addr: &str,
        timeout: Duration,
        auth: &ClientAuth,
    ) -> Result<Self, InvalidAddress> {
        let (channel, addr) = lazy_channel(addr, timeout, auth)?;
        Ok(Self::with_channel(auth.channel(channel), addr, timeout))
    }

    /// A client over an existing channel (e.g. one shared with [`super::FlightIngesterQuery`]).
    pub fn with_channel(channel: AuthChannel, addr: impl Into<String>, timeout: Duration) -> Self {
        Self {
            addr: addr.into(),
            timeout,
            client: WriteServiceClient::new(channel)
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
        }
    }

    /// The ingester's address.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    fn error(&self, status: &Status) -> WriteError {
        let addr = &self.addr;
        let message = status.message();
        match status.code() {
            Code::ResourceExhausted => {
                WriteError::Overloaded(format!("ingester {addr}: {message}"))
            }
            // The ingester failed or refused the payload itself: another one would not do better.
            Code::Internal | Code::InvalidArgument | Code::DataLoss => {
                WriteError::Wal(format!("ingester {addr} refused the write: {message}"))
            }
            code => WriteError::Unavailable(format!("ingester {addr}: {code:?}: {message}")),
        }
    }
}

#[async_trait]
impl IngesterWrite for GrpcIngesterWrite {
    async fn write(&self, request: WriteRequest, durability: Durability) -> Result<(), WriteError> {
        let message =
            codec::encode_write(&request, durability == Durability::NoSync).map_err(|e| {
                WriteError::Wal(format!(
                    "cannot encode write for ingester {}: {e}",
                    self.addr
                ))
            })?;
        let mut client = self.client.clone();
        match tokio::time::timeout(self.timeout, client.write(message)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(status)) => Err(self.error(&status)),
            Err(_) => Err(WriteError::Unavailable(format!(
                "ingester {} did not answer within {:?}",
                self.addr, self.timeout
            ))),
        }
    }
}
