//! Arrow Flight `DoGet` (and the `ferrite.ingester.status` action): the server that streams an [`IngesterQuery`]'s unpersisted data and
//! the client that implements [`IngesterQuery`] by reading that stream back.
//!
//! Ticket: a prost `IngesterQueryRequest` (ids, the output schema as IPC bytes = projection,
//! time range and tag lists = predicates). Stream, per partition: a FlightData with a
//! `NONE` IPC header, no body and `IngesterQueryResponseMetadata` as `app_metadata`; the
//! schema message before the first batch of the stream; the partition's batches. With no
//! partition, the stream is one metadata message without a partition key.

use std::pin::Pin;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::datatypes::{Schema, SchemaRef};
use arrow::error::ArrowError;
use arrow::ipc::writer::IpcWriteOptions;
use arrow_flight::decode::{DecodedPayload, FlightDataDecoder};
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_client::FlightServiceClient;
use arrow_flight::flight_service_server::{FlightService, FlightServiceServer};
use arrow_flight::{
    Action, ActionType, Criteria, Empty, FlightData, FlightDescriptor, FlightInfo,
    HandshakeRequest, HandshakeResponse, IpcMessage, PollInfo, PutResult, SchemaAsIpc,
    SchemaResult, Ticket,
};
use async_trait::async_trait;
use bytes::Bytes;
use ferrite_model::cache::CacheDefinition;
use ferrite_model::{DatabaseId, TableId};
use ferrite_proto::auth::{AuthChannel, ClientAuth};
use ferrite_proto::ferrite::ingester::v1 as proto;
use futures::{Stream, StreamExt, TryStreamExt, stream};
use prost::Message;
use tonic::codec::CompressionEncoding;
use tonic::{Code, Request, Response, Status, Streaming};

use super::{InvalidAddress, MAX_MESSAGE_BYTES, lazy_channel};
use crate::api::{
    BufferStats, IngesterQuery, IngesterStatus, PartitionData, QueryError, QueryRequest,
    QueryResponse, TagIn,
};

/// The Flight `DoAction` type that answers an [`proto::IngesterStatus`].
pub const STATUS_ACTION: &str = "ferrite.ingester.status";

/// The Flight `DoAction` type that reads a last-value or distinct-value cache.
pub const CACHE_ACTION: &str = "ferrite.ingester.cache";

/// The longest a status call waits: `system.ingesters` lists a slow ingester as unhealthy
/// rather than holding the query up for a whole query timeout.
const STATUS_TIMEOUT: Duration = Duration::from_secs(5);

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// The Flight server to register on the ingester's gRPC port. Takes an `Arc<Ingester>` (or
/// any other [`IngesterQuery`]). Serves `DoGet` only.
pub fn flight_service(
    ingester: Arc<dyn IngesterQuery>,
) -> FlightServiceServer<IngesterFlightService> {
    FlightServiceServer::new(IngesterFlightService { ingester })
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
}

/// The ticket bytes of a query: a prost `IngesterQueryRequest`.
pub fn encode_ticket(request: &QueryRequest) -> Result<Bytes, ArrowError> {
    let schema = IpcMessage::try_from(SchemaAsIpc::new(
        &request.schema,
        &IpcWriteOptions::default(),
    ))?;
    let message = proto::IngesterQueryRequest {
        database_id: request.database_id.get(),
        table_id: request.table_id.get(),
        schema: schema.0.to_vec(),
        time_range: request
            .time_range
            .map(|(min, max)| proto::TimeRange { min, max }),
        tag_equals: Vec::new(),
        tag_in: request
            .tags
            .iter()
            .map(|t| proto::TagIn {
                column: t.column.clone(),
                values: t.values.clone(),
            })
            .collect(),
    };
    Ok(message.encode_to_vec().into())
}

/// The query a ticket asks for; the error says what is wrong with it.
pub fn decode_ticket(ticket: &[u8]) -> Result<QueryRequest, String> {
    let message = proto::IngesterQueryRequest::decode(ticket)
        .map_err(|e| format!("ticket is not an IngesterQueryRequest: {e}"))?;
    if message.schema.is_empty() {
        return Err("ticket has no output schema".into());
    }
    let schema = Schema::try_from(IpcMessage(message.schema.into()))
        .map_err(|e| format!("ticket's output schema is not an Arrow IPC schema: {e}"))?;
    let equals = message.tag_equals.into_iter().map(|t| TagIn {
        column: t.column,
        values: vec![t.value],
    });
    let within = message.tag_in.into_iter().map(|t| TagIn {
        column: t.column,
        values: t.values,
    });
    Ok(QueryRequest {
        database_id: DatabaseId(message.database_id),
        table_id: TableId(message.table_id),
        schema: Arc::new(schema),
        time_range: message.time_range.map(|r| (r.min, r.max)),
        tags: equals.chain(within).collect(),
    })
}

/// Serves Flight `DoGet` from an [`IngesterQuery`].
#[derive(Debug)]
pub struct IngesterFlightService {
    ingester: Arc<dyn IngesterQuery>,
}

/// An IPC message header of type `NONE`: what carries `app_metadata` alone in a Flight stream.
static NONE_HEADER: LazyLock<Bytes> = LazyLock::new(|| {
    let mut fbb = flatbuffers::FlatBufferBuilder::new();
    let mut message = arrow::ipc::MessageBuilder::new(&mut fbb);
    message.add_version(arrow::ipc::MetadataVersion::V5);
    message.add_header_type(arrow::ipc::MessageHeader::NONE);
    message.add_bodyLength(0);
    let root = message.finish();
    fbb.finish(root, None);
    Bytes::copy_from_slice(fbb.finished_data())
});

fn metadata_message(metadata: &proto::IngesterQueryResponseMetadata) -> FlightData {
    FlightData::new()
        .with_data_header(NONE_HEADER.clone())
        .with_app_metadata(metadata.encode_to_vec())
}

/// The Flight stream of a response: see the module docs.
fn response_stream(response: QueryResponse, schema: SchemaRef) -> BoxStream<FlightData> {
    let ingester_uuid = response.ingester_uuid.to_string();
    let persist_count = response.persist_count;
    if response.partitions.is_empty() {
        let only = metadata_message(&proto::IngesterQueryResponseMetadata {
            ingester_uuid,
            persist_count,
            partition_key: None,
            min_time: 0,
            max_time: 0,
            deduplicated: false,
        });
        return stream::once(async move { Ok(only) }).boxed();
    }
    stream::iter(response.partitions.into_iter().enumerate())
        .flat_map(move |(i, p)| {
            let metadata = metadata_message(&proto::IngesterQueryResponseMetadata {
                ingester_uuid: ingester_uuid.clone(),
                persist_count,
                partition_key: Some(p.partition_key),
                min_time: p.min_time,
                max_time: p.max_time,
                deduplicated: p.deduplicated,
            });
            // One encoder per partition (it splits large batches and hydrates any
            // dictionary); its leading schema message is kept for the first partition only.
            let batches = FlightDataEncoderBuilder::new()
                .with_schema(Arc::clone(&schema))
                .build(stream::iter(p.batches.into_iter().map(Ok)))
                .skip(usize::from(i > 0))
                .map_err(|e| Status::internal(format!("cannot encode ingester data: {e}")));
            stream::once(async move { Ok(metadata) }).chain(batches)
        })
        .boxed()
}

#[tonic::async_trait]
impl FlightService for IngesterFlightService {
    type HandshakeStream = BoxStream<HandshakeResponse>;
    type ListFlightsStream = BoxStream<FlightInfo>;
    type DoGetStream = BoxStream<FlightData>;
    type DoPutStream = BoxStream<PutResult>;
    type DoExchangeStream = BoxStream<FlightData>;
    type DoActionStream = BoxStream<arrow_flight::Result>;
    type ListActionsStream = BoxStream<ActionType>;

    async fn do_get(
        &self,
        request: Request<Ticket>,
    ) -> Result<Response<Self::DoGetStream>, Status> {
        let query = decode_ticket(&request.get_ref().ticket).map_err(Status::invalid_argument)?;
        let schema = Arc::clone(&query.schema);
        let response = self.ingester.query(query).await.map_err(|e| {
            let message = e.to_string();
            match e {
                QueryError::Invalid(_) => Status::invalid_argument(message),
                QueryError::Unavailable(_) => Status::unavailable(message),
            }
        })?;
        Ok(Response::new(response_stream(response, schema)))
    }

    async fn handshake(
        &self,
        _request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Self::HandshakeStream>, Status> {
        Err(unimplemented("Handshake"))
    }

    async fn list_flights(
        &self,
        _request: Request<Criteria>,
    ) -> Result<Response<Self::ListFlightsStream>, Status> {
        Err(unimplemented("ListFlights"))
    }

    async fn get_flight_info(
        &self,
        _request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        Err(unimplemented("GetFlightInfo"))
    }

    async fn poll_flight_info(
        &self,
        _request: Request<FlightDescriptor>,
    ) -> Result<Response<PollInfo>, Status> {
        Err(unimplemented("PollFlightInfo"))
    }

    async fn get_schema(
        &self,
        _request: Request<FlightDescriptor>,
    ) -> Result<Response<SchemaResult>, Status> {
        Err(unimplemented("GetSchema"))
    }

    async fn do_put(
        &self,
        _request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoPutStream>, Status> {
        Err(unimplemented("DoPut"))
    }

    async fn do_exchange(
        &self,
        _request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoExchangeStream>, Status> {
        Err(unimplemented("DoExchange"))
    }

    async fn do_action(
        &self,
        request: Request<Action>,
    ) -> Result<Response<Self::DoActionStream>, Status> {
        let action = request.into_inner();
        if action.r#type == CACHE_ACTION {
            let definition =
                decode_cache_request(&action.body).map_err(Status::invalid_argument)?;
            let batches = self
                .ingester
                .cache(&definition)
                .await
                .map_err(|e| match e {
                    QueryError::Invalid(m) => Status::invalid_argument(m),
                    QueryError::Unavailable(m) => Status::unavailable(m),
                })?;
            let body = encode_ipc(&batches, &definition.spec.schema())
                .map_err(|e| Status::internal(format!("encoding the cache's rows: {e}")))?;
            let result = arrow_flight::Result { body: body.into() };
            return Ok(Response::new(
                stream::once(async move { Ok(result) }).boxed(),
            ));
        }
        if action.r#type != STATUS_ACTION {
            return Err(Status::unimplemented(format!(
                "the ingester has no action '{}', only '{STATUS_ACTION}' and '{CACHE_ACTION}'",
                action.r#type
            )));
        }
        // The served ingester is one process: its own status is the first and only entry.
        let stats = match self.ingester.status().await.into_iter().next() {
            Some(IngesterStatus {
                buffered: Ok(stats),
                ..
            }) => stats,
            Some(IngesterStatus {
                buffered: Err(e), ..
            }) => return Err(Status::unavailable(e)),
            None => return Err(Status::internal("the ingester reported no status")),
        };
        let body = proto::IngesterStatus {
            buffered_bytes: stats.bytes,
            buffered_rows: stats.rows,
        }
        .encode_to_vec();
        let result = arrow_flight::Result { body: body.into() };
        Ok(Response::new(
            stream::once(async move { Ok(result) }).boxed(),
        ))
    }

    async fn list_actions(
        &self,
        _request: Request<Empty>,
    ) -> Result<Response<Self::ListActionsStream>, Status> {
        Err(unimplemented("ListActions"))
    }
}

/// The body of a [`CACHE_ACTION`].
pub fn encode_cache_request(definition: &CacheDefinition) -> Bytes {
    proto::IngesterCacheRequest {
        definition: Some(ferrite_catalog::grpc::cache_to_proto(definition)),
    }
    .encode_to_vec()
    .into()
}

fn decode_cache_request(body: &[u8]) -> Result<CacheDefinition, String> {
    let definition = proto::IngesterCacheRequest::decode(body)
        .map_err(|e| format!("invalid cache request: {e}"))?
        .definition
        .ok_or("invalid cache request: no definition")?;
    ferrite_catalog::grpc::cache_from_proto(definition)
}

fn encode_ipc(batches: &[RecordBatch], schema: &SchemaRef) -> Result<Vec<u8>, ArrowError> {
    let mut bytes = Vec::new();
    let mut writer = arrow::ipc::writer::StreamWriter::try_new(&mut bytes, schema)?;
    for b in batches {
        writer.write(b)?;
    }
    writer.finish()?;
    drop(writer);
    Ok(bytes)
}

fn unimplemented(rpc: &str) -> Status {
    Status::unimplemented(format!("the ingester serves Flight DoGet only, not {rpc}"))
}

/// [`IngesterQuery`] over Arrow Flight: one ingester at `addr`. Never retries.
#[derive(Debug, Clone)]
pub struct FlightIngesterQuery {
    addr: String,
    timeout: Duration,
    client: FlightServiceClient<AuthChannel>,
}

impl FlightIngesterQuery {
    /// A client for the ingester at `addr` (`host:port` or `http://host:port`) whose queries,
    /// stream included, give up after `timeout`. Connects on first use, so this fails only
    /// for an address that is not a valid URI.
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

    /// A client over an existing channel (e.g. one shared with [`super::GrpcIngesterWrite`]).
    pub fn with_channel(channel: AuthChannel, addr: impl Into<String>, timeout: Duration) -> Self {
        Self {
            addr: addr.into(),
            timeout,
            client: FlightServiceClient::new(channel).max_decoding_message_size(MAX_MESSAGE_BYTES),
        }
    }

    /// The ingester's address.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    async fn fetch_query(&self, request: QueryRequest) -> Result<QueryResponse, QueryError> {
        let ticket = encode_ticket(&request)
            .map_err(|e| QueryError::Invalid(format!("cannot encode the output schema: {e}")))?;
        match tokio::time::timeout(self.timeout, self.fetch(ticket, request.schema)).await {
            Ok(result) => result,
            Err(_) => Err(QueryError::Unavailable(format!(
                "ingester {} did not answer within {:?}",
                self.addr, self.timeout
            ))),
        }
    }

    async fn fetch(&self, ticket: Bytes, schema: SchemaRef) -> Result<QueryResponse, QueryError> {
        let mut client = self.client.clone();
        let stream = client
            .do_get(Ticket { ticket })
            .await
            .map_err(|s| self.status_error(&s))?
            .into_inner()
            .map_err(|s| FlightError::Tonic(Box::new(s)));
        let mut decoder = FlightDataDecoder::new(stream);
        let mut identity: Option<(uuid::Uuid, u64)> = None;
        let mut partitions: Vec<PartitionData> = Vec::new();
        while let Some(data) = decoder.next().await {
            let data = data.map_err(|e| match e {
                FlightError::Tonic(s) => self.status_error(&s),
                e => self.protocol_error(e),
            })?;
            match data.payload {
                DecodedPayload::None => {
                    let metadata =
                        proto::IngesterQueryResponseMetadata::decode(data.inner.app_metadata)
                            .map_err(|e| {
                                self.protocol_error(format!("bad partition metadata: {e}"))
                            })?;
                    let uuid = uuid::Uuid::parse_str(&metadata.ingester_uuid)
                        .map_err(|e| self.protocol_error(format!("bad ingester uuid: {e}")))?;
                    match identity {
                        None => identity = Some((uuid, metadata.persist_count)),
                        Some(seen) if seen != (uuid, metadata.persist_count) => {
                            return Err(self
                                .protocol_error("ingester identity changed within one response"));
                        }
                        Some(_) => {}
                    }
                    if let Some(partition_key) = metadata.partition_key {
                        partitions.push(PartitionData {
                            partition_key,
                            batches: Vec::new(),
                            min_time: metadata.min_time,
                            max_time: metadata.max_time,
                            deduplicated: metadata.deduplicated,
                        });
                    }
                }
                DecodedPayload::Schema(_) => {}
                DecodedPayload::RecordBatch(batch) => {
                    let partition = partitions.last_mut().ok_or_else(|| {
                        self.protocol_error("record batch before any partition metadata")
                    })?;
                    // Same fields as requested; hand out the caller's own schema.
                    let batch = batch.with_schema(Arc::clone(&schema)).map_err(|e| {
                        self.protocol_error(format!(
                            "batch does not have the requested schema: {e}"
                        ))
                    })?;
                    partition.batches.push(batch);
                }
            }
        }
        let (ingester_uuid, persist_count) =
            identity.ok_or_else(|| self.protocol_error("response has no ingester metadata"))?;
        Ok(QueryResponse {
            ingester_uuid,
            persist_count,
            partitions,
        })
    }

    fn status_error(&self, status: &Status) -> QueryError {
        let addr = &self.addr;
        let message = status.message();
        match status.code() {
            Code::InvalidArgument => QueryError::Invalid(format!("ingester {addr}: {message}")),
            code => QueryError::Unavailable(format!("ingester {addr}: {code:?}: {message}")),
        }
    }

    fn protocol_error(&self, e: impl std::fmt::Display) -> QueryError {
        QueryError::Unavailable(format!(
            "ingester {} sent an invalid Flight response: {e}",
            self.addr
        ))
    }
}

#[async_trait]
impl IngesterQuery for FlightIngesterQuery {
    async fn query(&self, request: QueryRequest) -> Result<QueryResponse, QueryError> {
        self.fetch_query(request).await
    }

    async fn cache(&self, definition: &CacheDefinition) -> Result<Vec<RecordBatch>, QueryError> {
        let ask = async {
            let mut client = self.client.clone();
            let action = Action {
                r#type: CACHE_ACTION.to_string(),
                body: encode_cache_request(definition),
            };
            let mut results = client
                .do_action(action)
                .await
                .map_err(|s| self.status_error(&s))?
                .into_inner();
            let mut body = Vec::new();
            while let Some(result) = results.message().await.map_err(|s| self.status_error(&s))? {
                body.extend_from_slice(&result.body);
            }
            let reader = arrow::ipc::reader::StreamReader::try_new(body.as_slice(), None)
                .map_err(|e| self.protocol_error(format!("invalid cache rows: {e}")))?;
            reader
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| self.protocol_error(format!("invalid cache rows: {e}")))
        };
        match tokio::time::timeout(self.timeout, ask).await {
            Ok(result) => result,
            Err(_) => Err(QueryError::Unavailable(format!(
                "ingester {} did not answer within {:?}",
                self.addr, self.timeout
            ))),
        }
    }

    async fn status(&self) -> Vec<IngesterStatus> {
        let ask = async {
            let mut client = self.client.clone();
            let action = Action {
                r#type: STATUS_ACTION.to_string(),
                body: Bytes::new(),
            };
            let mut results = client
                .do_action(action)
                .await
                .map_err(|s| format!("{:?}: {}", s.code(), s.message()))?
                .into_inner();
            let result = results
                .message()
                .await
                .map_err(|s| format!("{:?}: {}", s.code(), s.message()))?
                .ok_or("empty status answer")?;
            let status = proto::IngesterStatus::decode(result.body)
                .map_err(|e| format!("invalid status answer: {e}"))?;
            Ok::<_, String>(BufferStats {
                bytes: status.buffered_bytes,
                rows: status.buffered_rows,
            })
        };
        let timeout = self.timeout.min(STATUS_TIMEOUT);
        let buffered = match tokio::time::timeout(timeout, ask).await {
            Ok(answer) => answer,
            Err(_) => Err(format!("no answer within {timeout:?}")),
        };
        vec![IngesterStatus {
            address: self.addr.clone(),
            buffered,
        }]
    }
}
