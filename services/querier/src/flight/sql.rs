//! Flight SQL: statements, prepared statements, metadata commands and `GetSqlInfo`.
//!
//! ```text
//!  GetFlightInfo(CommandStatementQuery, header database)
//!  CreatePreparedStatement ─► handle ─► DoPut(params) ─► handle' ─► GetFlightInfo(prepared)
//!        └─► FlightInfo{schema, one endpoint: TicketStatementQuery{handle}} ─► DoGet ─► rows
//!
//!  GetFlightInfo(CommandGet{Catalogs,DbSchemas,Tables,TableTypes,SqlInfo,XdbcTypeInfo,..Keys})
//!        └─► FlightInfo{schema, one endpoint: ReadInfo{database, FLIGHT_SQL_MESSAGE, command}}
//!                                                     └─► DoGet ─► one metadata batch
//! ```
//!
//! Everything is stateless: a handle or ticket carries the database, the SQL and the bound
//! parameter values, so any querier behind the router can serve any call of a sequence, and
//! closing a prepared statement has nothing to free. A `DoPut` of parameters answers with a
//! new handle holding them (`DoPutPreparedStatementResult`).

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::ipc::writer::{IpcWriteOptions, StreamWriter};
use arrow::record_batch::RecordBatch;
use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::sql::metadata::GetCatalogsBuilder;
use arrow_flight::sql::server::{FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest,
    ActionCreatePreparedStatementResult, Command, CommandGetCatalogs, CommandGetCrossReference,
    CommandGetDbSchemas, CommandGetExportedKeys, CommandGetImportedKeys, CommandGetPrimaryKeys,
    CommandGetSqlInfo, CommandGetTableTypes, CommandGetTables, CommandGetXdbcTypeInfo,
    CommandPreparedStatementQuery, CommandPreparedStatementUpdate, CommandStatementQuery,
    CommandStatementUpdate, DoPutPreparedStatementResult, ProstMessageExt, SqlInfo,
    TicketStatementQuery,
};
use arrow_flight::{
    FlightData, FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse,
    IpcMessage, SchemaAsIpc, Ticket,
};
use datafusion::catalog::SchemaProvider;
use datafusion::catalog::information_schema::INFORMATION_SCHEMA;
use datafusion::common::TableReference;
use datafusion::datasource::TableType;
use datafusion::prelude::SessionContext;
use ferrite_proto::influxdata::iox::querier::v1::ReadInfo;
use ferrite_proto::influxdata::iox::querier::v1::read_info::QueryType;
use futures::TryStreamExt;
use prost::Message;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status, Streaming};

use super::keep_alive::{KEEP_ALIVE_INTERVAL, KeepAlive};
use super::sql_info::{SQL_INFO, XDBC_TYPE_INFO};
use ferrite_auth::{Caller, token_from_authorization};

use super::{BoxStream, database_from_metadata, wire_schema};
use crate::engine::{QueryEngine, QueryRequest, RunningQuery};
use crate::error::QueryError;
use crate::params::QueryParams;
use crate::query_log::{Protocol, Tracker};

/// The opaque handle of a statement or prepared statement.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct StatementHandle {
    #[prost(string, tag = "1")]
    pub(crate) database: String,
    #[prost(string, tag = "2")]
    pub(crate) sql: String,
    /// Bound parameter values: an Arrow IPC stream of one row, a column per placeholder
    /// named without `$`. Empty when nothing is bound.
    #[prost(bytes = "vec", tag = "3")]
    pub(crate) params: Vec<u8>,
}

impl StatementHandle {
    fn new(database: String, sql: String, params: &QueryParams) -> Result<Self, QueryError> {
        let params = if params.is_empty() {
            Vec::new()
        } else {
            let batch = params.to_batch()?;
            let mut bytes = Vec::new();
            let ipc = |e| QueryError::Internal(format!("encoding parameters: {e}"));
            let mut writer = StreamWriter::try_new(&mut bytes, &batch.schema()).map_err(ipc)?;
            writer.write(&batch).map_err(ipc)?;
            writer.finish().map_err(ipc)?;
            drop(writer);
            bytes
        };
        Ok(Self {
            database,
            sql,
            params,
        })
    }

    fn from_bytes(bytes: &[u8]) -> Result<Self, QueryError> {
        Self::decode(bytes).map_err(|e| {
            QueryError::InvalidRequest(format!(
                "invalid statement handle (not issued by ferrite?): {e}"
            ))
        })
    }

    fn query_params(&self) -> Result<QueryParams, QueryError> {
        if self.params.is_empty() {
            return Ok(QueryParams::new());
        }
        let invalid = |e| QueryError::InvalidRequest(format!("invalid statement handle: {e}"));
        let reader = arrow::ipc::reader::StreamReader::try_new(self.params.as_slice(), None)
            .map_err(invalid)?;
        let batches = reader.collect::<Result<Vec<_>, _>>().map_err(invalid)?;
        match batches.as_slice() {
            [batch] => QueryParams::from_batch(batch),
            _ => Err(QueryError::InvalidRequest(
                "invalid statement handle: expected one parameter batch".into(),
            )),
        }
    }

    fn ticket(&self) -> Ticket {
        let ticket = TicketStatementQuery {
            statement_handle: self.encode_to_vec().into(),
        };
        Ticket::new(ticket.as_any().encode_to_vec())
    }
}

/// IPC-encapsulated schema bytes, as Flight SQL carries schemas inside messages.
fn schema_bytes(schema: &Schema) -> Result<bytes::Bytes, Status> {
    let message: Result<IpcMessage, _> =
        SchemaAsIpc::new(schema, &IpcWriteOptions::default()).try_into();
    message
        .map(|IpcMessage(bytes)| bytes)
        .map_err(|e| Status::internal(format!("encoding schema: {e}")))
}

/// One FlightInfo with exactly one endpoint (Grafana refuses any other count) whose empty
/// location means "this same server".
fn flight_info(
    schema: &Schema,
    ticket: Ticket,
    descriptor: FlightDescriptor,
) -> Result<Response<FlightInfo>, Status> {
    let info = FlightInfo::new()
        .try_with_schema(schema)
        .map_err(|e| Status::internal(format!("encoding schema: {e}")))?
        .with_endpoint(FlightEndpoint::new().with_ticket(ticket))
        .with_descriptor(descriptor);
    Ok(Response::new(info))
}

/// Primary, imported and exported keys and cross references: ferrite has no keys, so these
/// are always empty, with the schemas the Flight SQL spec gives them.
fn primary_keys_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("catalog_name", DataType::Utf8, true),
        Field::new("db_schema_name", DataType::Utf8, true),
        Field::new("table_name", DataType::Utf8, false),
        Field::new("column_name", DataType::Utf8, false),
        Field::new("key_name", DataType::Utf8, true),
        Field::new("key_sequence", DataType::Int32, false),
    ]))
}

fn foreign_keys_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("pk_catalog_name", DataType::Utf8, true),
        Field::new("pk_db_schema_name", DataType::Utf8, true),
        Field::new("pk_table_name", DataType::Utf8, false),
        Field::new("pk_column_name", DataType::Utf8, false),
        Field::new("fk_catalog_name", DataType::Utf8, true),
        Field::new("fk_db_schema_name", DataType::Utf8, true),
        Field::new("fk_table_name", DataType::Utf8, false),
        Field::new("fk_column_name", DataType::Utf8, false),
        Field::new("key_sequence", DataType::Int32, false),
        Field::new("fk_key_name", DataType::Utf8, true),
        Field::new("pk_key_name", DataType::Utf8, true),
        Field::new("update_rule", DataType::UInt8, false),
        Field::new("delete_rule", DataType::UInt8, false),
    ]))
}

/// The Flight SQL table type of a DataFusion table.
fn table_type_name(table_type: TableType) -> &'static str {
    match table_type {
        TableType::Base => "BASE TABLE",
        TableType::View => "VIEW",
        TableType::Temporary => "LOCAL TEMPORARY",
    }
}

/// Every metadata command: whether it needs a database, and its result schema.
fn metadata_schema(command: &Command) -> Option<(bool, SchemaRef)> {
    Some(match command {
        Command::CommandGetSqlInfo(cmd) => (false, cmd.clone().into_builder(&SQL_INFO).schema()),
        Command::CommandGetXdbcTypeInfo(cmd) => {
            (false, (*cmd).into_builder(&XDBC_TYPE_INFO).schema())
        }
        Command::CommandGetTableTypes(cmd) => (false, (*cmd).into_builder().schema()),
        Command::CommandGetCatalogs(_) => (true, GetCatalogsBuilder::new().schema()),
        Command::CommandGetDbSchemas(cmd) => (true, cmd.clone().into_builder().schema()),
        Command::CommandGetTables(cmd) => (true, cmd.clone().into_builder().schema()),
        Command::CommandGetPrimaryKeys(_) => (false, primary_keys_schema()),
        Command::CommandGetImportedKeys(_)
        | Command::CommandGetExportedKeys(_)
        | Command::CommandGetCrossReference(_) => (false, foreign_keys_schema()),
        _ => return None,
    })
}

/// The Flight SQL half of [`super::FlightQueryService`].
#[derive(Debug, Clone)]
pub(crate) struct FlightSqlHandler {
    pub(crate) engine: Arc<QueryEngine>,
}

impl FlightSqlHandler {
    /// Run `sql` and stream its result as Flight data, with keep-alives while it is silent.
    pub(crate) async fn run(
        &self,
        caller: &Caller,
        protocol: Protocol,
        database: &str,
        sql: &str,
        params: QueryParams,
    ) -> Result<Response<BoxStream<FlightData>>, Status> {
        let RunningQuery {
            schema,
            stream,
            tracker,
        } = self
            .engine
            .query(QueryRequest {
                caller,
                protocol,
                database,
                sql,
                params,
            })
            .await?;
        let batches = stream.map_err(|e| {
            FlightError::Tonic(Box::new(QueryError::from_stream_error(e).to_status()))
        });
        let flight = FlightDataEncoderBuilder::new()
            .with_schema(Arc::clone(&schema))
            .build(batches)
            .map_err(|e| match e {
                FlightError::Tonic(status) => *status,
                other => Status::internal(format!("encoding flight data: {other}")),
            });
        let flight = tracked(Box::pin(flight), tracker);
        let keep_alive = KeepAlive::new(flight, &wire_schema(&schema), KEEP_ALIVE_INTERVAL)?;
        Ok(Response::new(Box::pin(keep_alive)))
    }

    /// Run InfluxQL statements and send their series as one Flight stream (InfluxDB 3's
    /// shape: `iox::measurement`, `time`, tags, values). A failed statement fails the call.
    pub(crate) async fn run_influxql(
        &self,
        caller: &Caller,
        database: &str,
        query: &str,
        params: QueryParams,
    ) -> Result<Response<BoxStream<FlightData>>, Status> {
        let results = self
            .engine
            .influxql(crate::influxql::InfluxqlRequest {
                caller,
                database: Some(database),
                retention_policy: None,
                query,
                params,
            })
            .await?;
        let mut series = Vec::new();
        for r in results {
            match r.outcome {
                Ok(s) => series.extend(s),
                Err(e) => return Err(Status::invalid_argument(e)),
            }
        }
        let (schema, batches) = crate::influxql::to_batches(&series)?;
        let flight = FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .build(futures::stream::iter(batches.into_iter().map(Ok)))
            .map_err(|e| Status::internal(format!("encoding flight data: {e}")));
        Ok(Response::new(Box::pin(flight)))
    }

    /// Run the statement a handle (from [`StatementHandle::ticket`]) carries.
    async fn run_handle(
        &self,
        caller: &Caller,
        handle: &[u8],
    ) -> Result<Response<BoxStream<FlightData>>, Status> {
        let handle = StatementHandle::from_bytes(handle)?;
        let params = handle.query_params()?;
        self.run(
            caller,
            Protocol::FlightSql,
            &handle.database,
            &handle.sql,
            params,
        )
        .await
    }

    /// GetFlightInfo of a metadata command: its fixed schema, and a ticket carrying the
    /// command and the database.
    fn metadata_flight_info(
        &self,
        command: Command,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let Some((needs_database, schema)) = metadata_schema(&command) else {
            return Err(Status::unimplemented(format!(
                "Flight SQL command {} is not supported",
                command.type_url()
            )));
        };
        let database = metadata_database(request.metadata(), needs_database)?;
        let ticket = ReadInfo {
            database,
            query_type: QueryType::FlightSqlMessage.into(),
            flightsql_command: command.into_any().encode_to_vec(),
            ..Default::default()
        };
        // Wrapped in `Any`, so that a ticket without a database still decodes as ours.
        let ticket = arrow_flight::sql::Any {
            type_url: super::READ_INFO_TYPE_URL.into(),
            value: ticket.encode_to_vec().into(),
        };
        flight_info(
            &schema,
            Ticket::new(ticket.encode_to_vec()),
            request.into_inner(),
        )
    }

    /// DoGet of a metadata command sent as the ticket itself (not through our FlightInfo):
    /// the database comes from this request's headers.
    async fn metadata_for_request(
        &self,
        request: &Request<Ticket>,
        command: Command,
    ) -> Result<Response<BoxStream<FlightData>>, Status> {
        let needs_database = metadata_schema(&command).is_some_and(|(needs, _)| needs);
        let database = metadata_database(request.metadata(), needs_database)?;
        self.metadata(&caller(request)?, &database, command).await
    }

    /// DoGet of a metadata command for `database` (empty when the request named none).
    pub(crate) async fn metadata(
        &self,
        caller: &Caller,
        database: &str,
        command: Command,
    ) -> Result<Response<BoxStream<FlightData>>, Status> {
        if !database.is_empty() {
            may_read(caller, database).await?;
        }
        let batch = self
            .metadata_batch(database, command, caller.is_admin())
            .await?;
        let flight = FlightDataEncoderBuilder::new()
            .with_schema(batch.schema())
            .build(futures::stream::iter([Ok(batch)]))
            .map_err(|e| Status::internal(format!("encoding flight data: {e}")));
        Ok(Response::new(Box::pin(flight)))
    }

    async fn metadata_batch(
        &self,
        database: &str,
        command: Command,
        list_system: bool,
    ) -> Result<RecordBatch, Status> {
        let Some((needs_database, schema)) = metadata_schema(&command) else {
            return Err(Status::unimplemented(format!(
                "Flight SQL command {} is not supported",
                command.type_url()
            )));
        };
        if needs_database && database.is_empty() {
            return Err(QueryError::InvalidRequest("no 'database' header".into()).into());
        }
        let build = |e: FlightError| Status::internal(format!("building {e}"));
        match command {
            Command::CommandGetSqlInfo(cmd) => cmd.into_builder(&SQL_INFO).build().map_err(build),
            Command::CommandGetXdbcTypeInfo(cmd) => {
                cmd.into_builder(&XDBC_TYPE_INFO).build().map_err(build)
            }
            Command::CommandGetTableTypes(cmd) => {
                let mut builder = cmd.into_builder();
                for table_type in [TableType::Base, TableType::View] {
                    builder.append(table_type_name(table_type));
                }
                builder.build().map_err(build)
            }
            Command::CommandGetCatalogs(_) => {
                let ctx = self.engine.session(database, list_system).await?;
                let mut builder = GetCatalogsBuilder::new();
                for catalog in ctx.catalog_names() {
                    builder.append(catalog);
                }
                builder.build().map_err(build)
            }
            Command::CommandGetDbSchemas(cmd) => {
                let ctx = self.engine.session(database, list_system).await?;
                let mut builder = cmd.into_builder();
                for (catalog, schema) in schema_names(&ctx, list_system) {
                    builder.append(catalog, schema);
                }
                builder.build().map_err(build)
            }
            Command::CommandGetTables(cmd) => {
                // Right after a write, the new table must be listed: read a current view.
                let ctx = self.engine.current_session(database, list_system).await?;
                let mut builder = cmd.into_builder();
                for (catalog, schema_name) in schema_names(&ctx, list_system) {
                    let Some(schema) = schema_provider(&ctx, &catalog, &schema_name) else {
                        continue;
                    };
                    let mut tables = schema.table_names();
                    tables.sort();
                    for name in tables {
                        let table = schema.table(&name).await.map_err(|e| {
                            Status::internal(format!("reading table '{name}': {e}"))
                        })?;
                        let Some(table) = table else { continue };
                        builder
                            .append(
                                &catalog,
                                &schema_name,
                                &name,
                                table_type_name(table.table_type()),
                                &wire_schema(&table.schema()),
                            )
                            .map_err(build)?;
                    }
                }
                builder.build().map_err(build)
            }
            _ => Ok(RecordBatch::new_empty(schema)),
        }
    }
}

pub(crate) use ferrite_auth::grpc_caller as caller;

/// A query's Flight data as it leaves: the bytes counted in the query log, and the query
/// finished when the last message is out (a failure was recorded where it happened).
fn tracked(mut flight: BoxStream<FlightData>, tracker: Tracker) -> BoxStream<FlightData> {
    use futures::StreamExt;
    use std::task::Poll;
    Box::pin(futures::stream::poll_fn(move |cx| {
        let next = flight.poll_next_unpin(cx);
        match &next {
            Poll::Ready(Some(Ok(data))) => tracker
                .add_bytes(data.data_header.len() + data.data_body.len() + data.app_metadata.len()),
            Poll::Ready(Some(Err(status))) => tracker.fail(&QueryError::Internal(format!(
                "sending results: {}",
                status.message()
            ))),
            Poll::Ready(None) => tracker.finish(),
            Poll::Pending => {}
        }
        next
    }))
}

/// Fail unless `caller` may read `database`.
async fn may_read(caller: &Caller, database: &str) -> Result<(), Status> {
    caller
        .require(ferrite_catalog::Action::Read, database)
        .await
        .map_err(|e| e.to_status())
}

/// The database a metadata command is asked for, from the request headers. The commands
/// that read no database accept a request without one (then: empty).
fn metadata_database(metadata: &MetadataMap, needs_database: bool) -> Result<String, Status> {
    match database_from_metadata(metadata) {
        Ok(database) => Ok(database),
        Err(_) if !needs_database => Ok(String::new()),
        Err(e) => Err(e.into()),
    }
}

/// Every (catalog, schema) pair of a session, sorted, `information_schema` included
/// (DataFusion resolves it by name but does not list it).
/// Every `(catalog, schema)` of `ctx`; `system` only when `list_system`.
fn schema_names(ctx: &SessionContext, list_system: bool) -> Vec<(String, String)> {
    let mut names = Vec::new();
    for catalog in ctx.catalog_names() {
        if let Some(provider) = ctx.catalog(&catalog) {
            for schema in provider.schema_names() {
                if schema == crate::system::SYSTEM_SCHEMA && !list_system {
                    continue;
                }
                names.push((catalog.clone(), schema));
            }
            names.push((catalog.clone(), INFORMATION_SCHEMA.to_string()));
        }
    }
    names.sort();
    names.dedup();
    names
}

/// The schema provider of `catalog.schema` in `ctx`, `information_schema` included.
fn schema_provider(
    ctx: &SessionContext,
    catalog: &str,
    schema: &str,
) -> Option<Arc<dyn SchemaProvider>> {
    // The table part of the reference is not used to find the schema.
    ctx.state()
        .schema_for_ref(TableReference::full(catalog, schema, ""))
        .ok()
}

fn read_only() -> Status {
    Status::unimplemented(
        "ferrite's SQL is read-only: write data as line protocol to /api/v2/write or \
         /api/v3/write_lp",
    )
}

#[tonic::async_trait]
impl FlightSqlService for FlightSqlHandler {
    type FlightService = Self;

    /// No authentication yet: accept the handshake and hand back the caller's token (the
    /// password of a Basic header) as a bearer token, as IOx does, so JDBC and ADBC clients
    /// that authenticate by username/password connect.
    async fn do_handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<BoxStream<HandshakeResponse>>, Status> {
        let token = match request.metadata().get("authorization") {
            None => None,
            Some(value) => {
                let token = value.to_str().ok().and_then(token_from_authorization);
                if token.is_none() {
                    return Err(Status::unauthenticated(
                        "malformed authorization header: expected 'Bearer <token>', \
                         'Token <token>' or 'Basic base64(user:token)'",
                    ));
                }
                token
            }
        };
        let mut incoming = request.into_inner();
        let payload = match incoming.message().await? {
            Some(first) => first.payload,
            None => Default::default(),
        };
        let reply = HandshakeResponse {
            protocol_version: 0,
            payload,
        };
        let mut response: Response<BoxStream<HandshakeResponse>> =
            Response::new(Box::pin(futures::stream::iter([Ok(reply)])));
        if let Some(token) = token
            && let Ok(value) = format!("Bearer {token}").parse()
        {
            response.metadata_mut().insert("authorization", value);
        }
        Ok(response)
    }

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let database = database_from_metadata(request.metadata())?;
        let caller = caller(&request)?;
        may_read(&caller, &database).await?;
        let params = QueryParams::new();
        let schema = self
            .engine
            .sql_schema(&database, &query.query, params.clone(), caller.is_admin())
            .await?;
        let handle = StatementHandle::new(database, query.query, &params)?;
        flight_info(&wire_schema(&schema), handle.ticket(), request.into_inner())
    }

    async fn get_flight_info_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let handle = StatementHandle::from_bytes(&query.prepared_statement_handle)?;
        let caller = caller(&request)?;
        may_read(&caller, &handle.database).await?;
        let schema = self
            .engine
            .sql_schema(
                &handle.database,
                &handle.sql,
                handle.query_params()?,
                caller.is_admin(),
            )
            .await?;
        flight_info(&wire_schema(&schema), handle.ticket(), request.into_inner())
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.metadata_flight_info(Command::CommandGetCatalogs(query), request)
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.metadata_flight_info(Command::CommandGetDbSchemas(query), request)
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.metadata_flight_info(Command::CommandGetTables(query), request)
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.metadata_flight_info(Command::CommandGetTableTypes(query), request)
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.metadata_flight_info(Command::CommandGetSqlInfo(query), request)
    }

    async fn get_flight_info_primary_keys(
        &self,
        query: CommandGetPrimaryKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.metadata_flight_info(Command::CommandGetPrimaryKeys(query), request)
    }

    async fn get_flight_info_exported_keys(
        &self,
        query: CommandGetExportedKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.metadata_flight_info(Command::CommandGetExportedKeys(query), request)
    }

    async fn get_flight_info_imported_keys(
        &self,
        query: CommandGetImportedKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.metadata_flight_info(Command::CommandGetImportedKeys(query), request)
    }

    async fn get_flight_info_cross_reference(
        &self,
        query: CommandGetCrossReference,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.metadata_flight_info(Command::CommandGetCrossReference(query), request)
    }

    async fn get_flight_info_xdbc_type_info(
        &self,
        query: CommandGetXdbcTypeInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.metadata_flight_info(Command::CommandGetXdbcTypeInfo(query), request)
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<BoxStream<FlightData>>, Status> {
        self.run_handle(&caller(&request)?, &ticket.statement_handle)
            .await
    }

    async fn do_get_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<BoxStream<FlightData>>, Status> {
        self.run_handle(&caller(&request)?, &query.prepared_statement_handle)
            .await
    }

    /// Any other Flight SQL command sent as a ticket.
    async fn do_get_fallback(
        &self,
        request: Request<Ticket>,
        message: arrow_flight::sql::Any,
    ) -> Result<Response<BoxStream<FlightData>>, Status> {
        let command = Command::try_from(message)
            .map_err(|e| QueryError::InvalidRequest(format!("invalid Flight SQL ticket: {e}")))?;
        self.metadata_for_request(&request, command).await
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<Ticket>,
    ) -> Result<Response<BoxStream<FlightData>>, Status> {
        self.metadata_for_request(&request, Command::CommandGetCatalogs(query))
            .await
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<Ticket>,
    ) -> Result<Response<BoxStream<FlightData>>, Status> {
        self.metadata_for_request(&request, Command::CommandGetDbSchemas(query))
            .await
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        request: Request<Ticket>,
    ) -> Result<Response<BoxStream<FlightData>>, Status> {
        self.metadata_for_request(&request, Command::CommandGetTables(query))
            .await
    }

    async fn do_get_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<Ticket>,
    ) -> Result<Response<BoxStream<FlightData>>, Status> {
        self.metadata_for_request(&request, Command::CommandGetTableTypes(query))
            .await
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<Ticket>,
    ) -> Result<Response<BoxStream<FlightData>>, Status> {
        self.metadata_for_request(&request, Command::CommandGetSqlInfo(query))
            .await
    }

    async fn do_get_primary_keys(
        &self,
        query: CommandGetPrimaryKeys,
        request: Request<Ticket>,
    ) -> Result<Response<BoxStream<FlightData>>, Status> {
        self.metadata_for_request(&request, Command::CommandGetPrimaryKeys(query))
            .await
    }

    async fn do_get_exported_keys(
        &self,
        query: CommandGetExportedKeys,
        request: Request<Ticket>,
    ) -> Result<Response<BoxStream<FlightData>>, Status> {
        self.metadata_for_request(&request, Command::CommandGetExportedKeys(query))
            .await
    }

    async fn do_get_imported_keys(
        &self,
        query: CommandGetImportedKeys,
        request: Request<Ticket>,
    ) -> Result<Response<BoxStream<FlightData>>, Status> {
        self.metadata_for_request(&request, Command::CommandGetImportedKeys(query))
            .await
    }

    async fn do_get_cross_reference(
        &self,
        query: CommandGetCrossReference,
        request: Request<Ticket>,
    ) -> Result<Response<BoxStream<FlightData>>, Status> {
        self.metadata_for_request(&request, Command::CommandGetCrossReference(query))
            .await
    }

    async fn do_get_xdbc_type_info(
        &self,
        query: CommandGetXdbcTypeInfo,
        request: Request<Ticket>,
    ) -> Result<Response<BoxStream<FlightData>>, Status> {
        self.metadata_for_request(&request, Command::CommandGetXdbcTypeInfo(query))
            .await
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<arrow_flight::Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        let database = database_from_metadata(request.metadata())?;
        may_read(&caller(&request)?, &database).await?;
        let (dataset, parameters) = self.engine.prepare(&database, &query.query).await?;
        let handle = StatementHandle::new(database, query.query, &QueryParams::new())?;
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: handle.encode_to_vec().into(),
            dataset_schema: schema_bytes(&wire_schema(&dataset))?,
            parameter_schema: schema_bytes(&parameters)?,
        })
    }

    /// Nothing to free: handles are self-contained.
    async fn do_action_close_prepared_statement(
        &self,
        query: ActionClosePreparedStatementRequest,
        _request: Request<arrow_flight::Action>,
    ) -> Result<(), Status> {
        StatementHandle::from_bytes(&query.prepared_statement_handle)?;
        Ok(())
    }

    /// Bind parameter values: the first (only) row of the uploaded batches. The new handle
    /// carries them.
    async fn do_put_prepared_statement_query(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        let mut handle = StatementHandle::from_bytes(&query.prepared_statement_handle)?;
        let batches: Vec<RecordBatch> = FlightRecordBatchStream::new_from_flight_data(
            request.into_inner().map_err(FlightError::from),
        )
        .try_collect()
        .await
        .map_err(|e| {
            QueryError::InvalidRequest(format!("reading bound parameters: {e}")).to_status()
        })?;
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        let params = match rows {
            0 => QueryParams::new(),
            1 => {
                let batch = batches
                    .iter()
                    .find(|b| b.num_rows() == 1)
                    .expect("one batch holds the row");
                QueryParams::from_bound_row(batch, 0)?
            }
            n => {
                return Err(QueryError::InvalidParams(format!(
                    "{n} parameter rows were bound; a query runs with one row of parameters"
                ))
                .into());
            }
        };
        handle = StatementHandle::new(handle.database, handle.sql, &params)?;
        Ok(DoPutPreparedStatementResult {
            prepared_statement_handle: Some(handle.encode_to_vec().into()),
        })
    }

    async fn do_put_statement_update(
        &self,
        _query: CommandStatementUpdate,
        _request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        Err(read_only())
    }

    async fn do_put_prepared_statement_update(
        &self,
        _query: CommandPreparedStatementUpdate,
        _request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        Err(read_only())
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_round_trip_with_and_without_parameters() {
        let none =
            StatementHandle::new("db".into(), "SELECT 1".into(), &QueryParams::new()).unwrap();
        let back = StatementHandle::from_bytes(&none.encode_to_vec()).unwrap();
        assert_eq!(back, none);
        assert!(back.query_params().unwrap().is_empty());

        let params = QueryParams::new()
            .with("1", datafusion::common::ScalarValue::Utf8(Some("a".into())))
            .with(
                "t",
                datafusion::common::ScalarValue::TimestampNanosecond(Some(5), None),
            );
        let some = StatementHandle::new("db".into(), "SELECT $1, $t".into(), &params).unwrap();
        let back = StatementHandle::from_bytes(&some.encode_to_vec()).unwrap();
        assert_eq!(back.query_params().unwrap(), params);
    }

    #[test]
    fn foreign_bytes_are_not_a_handle() {
        let err = StatementHandle::from_bytes(&[0xff, 0xff, 0xff]).unwrap_err();
        assert_eq!(err.grpc_code(), tonic::Code::InvalidArgument);
    }
}
