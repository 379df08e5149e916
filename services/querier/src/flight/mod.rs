//! Arrow Flight: the IOx / InfluxDB 3 DoGet tickets, and Flight SQL (in [`sql`]).
//!
//! ```text
//!  DoGet(ticket) ─► Any(ReadInfo)? ─► Flight SQL command? ─► JSON? ─► raw ReadInfo? ─► run SQL
//!                          │                  └─► FlightSqlHandler (statements, metadata)
//!                          └─► ReadInfo{FLIGHT_SQL_MESSAGE}: a metadata command + database
//!  every other RPC ─► FlightSqlHandler (GetFlightInfo, DoPut, DoAction, Handshake)
//! ```
//!
//! [`FlightQueryService`] implements `FlightService` itself instead of through arrow-flight's
//! `FlightSqlService` blanket impl: that impl decodes every ticket as a protobuf `Any` first
//! and fails JSON tickets (what influxdb3-python sends) before any fallback can see them. It
//! tries the encodings in IOx's order, passes Flight SQL commands on to [`FlightSqlHandler`],
//! and forwards every other RPC to it unchanged.
//!
//! Results are encoded with arrow-flight's `FlightDataEncoder`, which hydrates dictionaries
//! to plain arrays, so tags are Utf8 on the wire.

use std::pin::Pin;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow_flight::flight_service_server::{FlightService, FlightServiceServer};
use arrow_flight::sql::{Any, Command, CommandStatementQuery};
use arrow_flight::{
    Action, ActionType, Criteria, Empty, FlightData, FlightDescriptor, FlightInfo,
    HandshakeRequest, HandshakeResponse, PollInfo, PutResult, SchemaResult, Ticket,
};
use ferrite_proto::influxdata::iox::querier::v1::ReadInfo;
use ferrite_proto::influxdata::iox::querier::v1::read_info::QueryType;
use futures::Stream;
use prost::Message;
use serde::Deserialize;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status, Streaming};

use self::sql::FlightSqlHandler;
use crate::engine::QueryEngine;
use crate::error::QueryError;
use crate::params::QueryParams;
use crate::query_log::Protocol;

mod keep_alive;
mod sql;
mod sql_info;

/// `type_url` of a `ReadInfo` wrapped in a protobuf `Any`.
const READ_INFO_TYPE_URL: &str = "type.googleapis.com/influxdata.iox.querier.v1.ReadInfo";

/// gRPC metadata keys naming the database, in order of preference.
const DATABASE_HEADERS: [&str; 4] = ["database", "bucket", "bucket-name", "iox-namespace-name"];

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// The Flight service to register on the gRPC server.
pub fn flight_service(engine: Arc<QueryEngine>) -> FlightServiceServer<FlightQueryService> {
    FlightServiceServer::new(FlightQueryService::new(engine))
        .accept_compressed(tonic::codec::CompressionEncoding::Gzip)
        .max_decoding_message_size(16 * 1024 * 1024)
}

/// The database a Flight SQL request names in its gRPC metadata: `database`, `bucket`,
/// `bucket-name` or `iox-namespace-name`. Several with different values, or none, is an
/// error.
pub fn database_from_metadata(metadata: &MetadataMap) -> Result<String, QueryError> {
    let mut found: Option<(&str, String)> = None;
    for key in DATABASE_HEADERS {
        for value in metadata.get_all(key) {
            let value = value.to_str().map_err(|_| {
                QueryError::InvalidRequest(format!("header '{key}' is not valid ASCII"))
            })?;
            match &found {
                None => found = Some((key, value.to_string())),
                Some((first_key, first)) if first != value => {
                    return Err(QueryError::InvalidRequest(format!(
                        "conflicting database names in headers: '{first_key}' is '{first}', \
                         '{key}' is '{value}'"
                    )));
                }
                Some(_) => {}
            }
        }
    }
    match found {
        Some((_, db)) if !db.is_empty() => Ok(db),
        _ => Err(QueryError::InvalidRequest("no 'database' header".into())),
    }
}

/// Flight: IOx tickets here, Flight SQL in the inner `FlightSqlHandler`.
#[derive(Debug, Clone)]
pub struct FlightQueryService {
    sql: FlightSqlHandler,
}

impl FlightQueryService {
    /// The service over `engine`.
    pub fn new(engine: Arc<QueryEngine>) -> Self {
        Self {
            sql: FlightSqlHandler { engine },
        }
    }
}

/// What a DoGet ticket asks for.
#[derive(Debug)]
enum TicketRequest {
    /// An IOx / InfluxDB 3 query ticket.
    Query(IoxQuery),
    /// A Flight SQL metadata command in a `ReadInfo` (our GetFlightInfo tickets), with the
    /// database it was asked for; empty when it named none.
    Metadata { database: String, command: Command },
    /// A Flight SQL ticket, for [`FlightSqlHandler`].
    FlightSql,
}

/// A query from an IOx ticket (JSON or `ReadInfo`).
#[derive(Debug, PartialEq)]
struct IoxQuery {
    database: String,
    sql: String,
    params: QueryParams,
    /// `query_type` InfluxQL: `sql` holds InfluxQL statements.
    influxql: bool,
}

/// The JSON ticket of influxdb3-python and the IOx clients.
#[derive(Debug, Deserialize)]
struct JsonTicket {
    #[serde(alias = "namespace_name", alias = "bucket", alias = "bucket-name")]
    database: String,
    sql_query: String,
    #[serde(default)]
    query_type: Option<String>,
    #[serde(default)]
    params: Option<serde_json::Value>,
}

impl IoxQuery {
    fn from_read_info(info: ReadInfo) -> Result<TicketRequest, QueryError> {
        let params = QueryParams::from_proto(&info.params)?;
        let sql = match QueryType::try_from(info.query_type) {
            Ok(QueryType::Unspecified | QueryType::Sql) => info.sql_query,
            Ok(QueryType::InfluxQl) => {
                return Self::checked(info.database, info.sql_query, params, true)
                    .map(TicketRequest::Query);
            }
            Ok(QueryType::FlightSqlMessage) => match flight_sql_command(&info.flightsql_command)? {
                Command::CommandStatementQuery(CommandStatementQuery { query, .. }) => query,
                command => {
                    return Ok(TicketRequest::Metadata {
                        database: info.database,
                        command,
                    });
                }
            },
            Err(_) => {
                return Err(QueryError::InvalidRequest(format!(
                    "unknown query_type {} in ticket",
                    info.query_type
                )));
            }
        };
        Self::checked(info.database, sql, params, false).map(TicketRequest::Query)
    }

    fn from_json(ticket: JsonTicket) -> Result<Self, QueryError> {
        let influxql = match ticket
            .query_type
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("sql") => false,
            Some("influxql") => true,
            Some(other) => {
                return Err(QueryError::InvalidRequest(format!(
                    "unknown query_type '{other}' in ticket: expected 'sql' or 'influxql'"
                )));
            }
        };
        let params = match &ticket.params {
            None => QueryParams::new(),
            Some(value) => QueryParams::from_json(value)?,
        };
        Self::checked(ticket.database, ticket.sql_query, params, influxql)
    }

    fn checked(
        database: String,
        sql: String,
        params: QueryParams,
        influxql: bool,
    ) -> Result<Self, QueryError> {
        if database.is_empty() {
            return Err(QueryError::InvalidRequest(
                "ticket names no database".into(),
            ));
        }
        Ok(Self {
            database,
            sql,
            params,
            influxql,
        })
    }
}

/// The Flight SQL command carried inside a `ReadInfo`.
fn flight_sql_command(command: &[u8]) -> Result<Command, QueryError> {
    let any = Any::decode(command).map_err(|e| {
        QueryError::InvalidRequest(format!("invalid Flight SQL command in ticket: {e}"))
    })?;
    match Command::try_from(any) {
        Ok(Command::Unknown(any)) => Err(QueryError::InvalidRequest(format!(
            "unknown Flight SQL command {} in ticket",
            any.type_url
        ))),
        Ok(command) => Ok(command),
        Err(e) => Err(QueryError::InvalidRequest(format!(
            "invalid Flight SQL command in ticket: {e}"
        ))),
    }
}

/// Decode a DoGet ticket in IOx's order: `Any(ReadInfo)` (or a Flight SQL command), then
/// JSON, then a bare `ReadInfo`. JSON is tried before the bare protobuf when the ticket
/// looks like JSON, since protobuf is lenient enough to half-parse text.
fn decode_ticket(bytes: &[u8]) -> Result<TicketRequest, QueryError> {
    if let Ok(any) = Any::decode(bytes) {
        if any.type_url == READ_INFO_TYPE_URL {
            let info = ReadInfo::decode(any.value).map_err(|e| {
                QueryError::InvalidRequest(format!("invalid ReadInfo in ticket: {e}"))
            })?;
            return IoxQuery::from_read_info(info);
        }
        if matches!(Command::try_from(any), Ok(cmd) if !matches!(cmd, Command::Unknown(_))) {
            return Ok(TicketRequest::FlightSql);
        }
    }
    let looks_like_json = bytes
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{');
    let json = || {
        serde_json::from_slice::<JsonTicket>(bytes)
            .map_err(|e| QueryError::InvalidRequest(format!("invalid JSON ticket: {e}")))
            .and_then(IoxQuery::from_json)
            .map(TicketRequest::Query)
    };
    if looks_like_json {
        return json();
    }
    match ReadInfo::decode(bytes) {
        Ok(info) if !info.database.is_empty() || !info.sql_query.is_empty() => {
            IoxQuery::from_read_info(info)
        }
        _ => Err(QueryError::InvalidRequest(
            "invalid ticket: expected a Flight SQL ticket, a JSON ticket \
             {\"database\", \"sql_query\", \"query_type\", \"params\"} or an IOx ReadInfo"
                .into(),
        )),
    }
}

/// Tags can leave DataFusion as dictionaries: the wire schema has their plain value type,
/// as the encoder's dictionary hydration produces.
fn wire_schema(schema: &Schema) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Dictionary(_, value) => f.as_ref().clone().with_data_type(*value.clone()),
            _ => f.as_ref().clone(),
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

#[tonic::async_trait]
impl FlightService for FlightQueryService {
    type HandshakeStream = BoxStream<HandshakeResponse>;
    type ListFlightsStream = BoxStream<FlightInfo>;
    type DoGetStream = BoxStream<FlightData>;
    type DoPutStream = BoxStream<PutResult>;
    type DoExchangeStream = BoxStream<FlightData>;
    type DoActionStream = BoxStream<arrow_flight::Result>;
    type ListActionsStream = BoxStream<ActionType>;

    async fn handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Self::HandshakeStream>, Status> {
        FlightService::handshake(&self.sql, request).await
    }

    async fn list_flights(
        &self,
        request: Request<Criteria>,
    ) -> Result<Response<Self::ListFlightsStream>, Status> {
        FlightService::list_flights(&self.sql, request).await
    }

    async fn get_flight_info(
        &self,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        FlightService::get_flight_info(&self.sql, request).await
    }

    async fn poll_flight_info(
        &self,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<PollInfo>, Status> {
        FlightService::poll_flight_info(&self.sql, request).await
    }

    async fn get_schema(
        &self,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<SchemaResult>, Status> {
        FlightService::get_schema(&self.sql, request).await
    }

    async fn do_get(
        &self,
        request: Request<Ticket>,
    ) -> Result<Response<Self::DoGetStream>, Status> {
        match decode_ticket(&request.get_ref().ticket)? {
            TicketRequest::Query(query) if query.influxql => {
                self.sql
                    .run_influxql(
                        &sql::caller(&request)?,
                        &query.database,
                        &query.sql,
                        query.params,
                    )
                    .await
            }
            TicketRequest::Query(query) => {
                self.sql
                    .run(
                        &sql::caller(&request)?,
                        Protocol::Flight,
                        &query.database,
                        &query.sql,
                        query.params,
                    )
                    .await
            }
            TicketRequest::Metadata { database, command } => {
                self.sql
                    .metadata(&sql::caller(&request)?, &database, command)
                    .await
            }
            TicketRequest::FlightSql => FlightService::do_get(&self.sql, request).await,
        }
    }

    async fn do_put(
        &self,
        request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoPutStream>, Status> {
        FlightService::do_put(&self.sql, request).await
    }

    async fn do_exchange(
        &self,
        request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoExchangeStream>, Status> {
        FlightService::do_exchange(&self.sql, request).await
    }

    async fn do_action(
        &self,
        request: Request<Action>,
    ) -> Result<Response<Self::DoActionStream>, Status> {
        if request.get_ref().r#type != crate::cluster::QUERIES_ACTION {
            return FlightService::do_action(&self.sql, request).await;
        }
        // A peer querier asking for this querier's log (system.queries): admin only, as the
        // table is; peers call with the cluster-internal token.
        sql::caller(&request)?
            .require_admin("reading system tables")
            .map_err(|e| e.to_status())?;
        let engine = &self.sql.engine;
        let body = engine.cluster().encode_local(engine.query_log())?;
        let result = arrow_flight::Result { body: body.into() };
        Ok(Response::new(Box::pin(futures::stream::once(async move {
            Ok(result)
        }))))
    }

    async fn list_actions(
        &self,
        request: Request<Empty>,
    ) -> Result<Response<Self::ListActionsStream>, Status> {
        FlightService::list_actions(&self.sql, request).await
    }
}

#[cfg(test)]
mod tests {
    use arrow_flight::sql::{CommandGetTables, ProstMessageExt, TicketStatementQuery};
    use datafusion::common::ScalarValue;
    use ferrite_proto::influxdata::iox::querier::v1::QueryParamValue;
    use ferrite_proto::influxdata::iox::querier::v1::query_param_value::Value as ProtoValue;
    use tonic::metadata::MetadataValue;

    use super::*;

    fn query(bytes: &[u8]) -> Result<IoxQuery, QueryError> {
        match decode_ticket(bytes)? {
            TicketRequest::Query(q) => Ok(q),
            other => panic!("decoded as {other:?}"),
        }
    }

    fn expected(params: QueryParams) -> IoxQuery {
        IoxQuery {
            database: "db".into(),
            sql: "SELECT 1".into(),
            params,
            influxql: false,
        }
    }

    #[test]
    fn json_tickets_with_every_database_alias_decode() {
        for key in ["database", "namespace_name", "bucket", "bucket-name"] {
            let ticket =
                format!(r#"{{"{key}": "db", "sql_query": "SELECT 1", "query_type": "sql"}}"#);
            assert_eq!(
                query(ticket.as_bytes()).unwrap(),
                expected(QueryParams::new())
            );
        }
        let with_params = br#" {"database":"db","sql_query":"SELECT 1","params":{"x":1}}"#;
        assert_eq!(
            query(with_params).unwrap(),
            expected(QueryParams::new().with("x", ScalarValue::Int64(Some(1))))
        );
    }

    #[test]
    fn protobuf_tickets_decode_bare_and_wrapped_in_any() {
        let info = ReadInfo {
            database: "db".into(),
            sql_query: "SELECT 1".into(),
            query_type: QueryType::Sql.into(),
            params: [(
                "x".to_string(),
                QueryParamValue {
                    value: Some(ProtoValue::Boolean(true)),
                },
            )]
            .into(),
            ..Default::default()
        };
        let want = expected(QueryParams::new().with("x", ScalarValue::Boolean(Some(true))));
        assert_eq!(query(&info.encode_to_vec()).unwrap(), want);
        let any = Any {
            type_url: READ_INFO_TYPE_URL.into(),
            value: info.encode_to_vec().into(),
        };
        assert_eq!(query(&any.encode_to_vec()).unwrap(), want);
    }

    #[test]
    fn flight_sql_tickets_go_to_flight_sql() {
        let ticket = TicketStatementQuery {
            statement_handle: b"x".to_vec().into(),
        };
        assert!(matches!(
            decode_ticket(&ticket.as_any().encode_to_vec()),
            Ok(TicketRequest::FlightSql)
        ));
    }

    #[test]
    fn read_info_tickets_carry_metadata_commands_with_their_database() {
        let command = CommandGetTables {
            include_schema: true,
            ..Default::default()
        };
        let info = ReadInfo {
            database: "db".into(),
            query_type: QueryType::FlightSqlMessage.into(),
            flightsql_command: command.as_any().encode_to_vec(),
            ..Default::default()
        };
        match decode_ticket(&info.encode_to_vec()).unwrap() {
            TicketRequest::Metadata {
                database,
                command: Command::CommandGetTables(got),
            } => {
                assert_eq!(database, "db");
                assert_eq!(got, command);
            }
            other => panic!("decoded as {other:?}"),
        }
        let statement = ReadInfo {
            database: "db".into(),
            query_type: QueryType::FlightSqlMessage.into(),
            flightsql_command: CommandStatementQuery {
                query: "SELECT 1".into(),
                transaction_id: None,
            }
            .as_any()
            .encode_to_vec(),
            ..Default::default()
        };
        assert_eq!(
            query(&statement.encode_to_vec()).unwrap(),
            expected(QueryParams::new())
        );
    }

    #[test]
    fn bad_tickets_are_invalid_arguments() {
        for bad in [&b"not a ticket"[..], b"{\"sql_query\": \"x\"}", b""] {
            let err = decode_ticket(bad).unwrap_err();
            assert_eq!(err.grpc_code(), tonic::Code::InvalidArgument, "{err}");
        }
        let influxql =
            br#"{"database":"db","sql_query":"SHOW MEASUREMENTS","query_type":"influxql"}"#;
        assert!(query(influxql).unwrap().influxql);
        let unknown = br#"{"database":"db","sql_query":"x","query_type":"flux"}"#;
        let err = decode_ticket(unknown).unwrap_err();
        assert_eq!(err.grpc_code(), tonic::Code::InvalidArgument);
    }

    #[test]
    fn database_headers_are_resolved() {
        let mut md = MetadataMap::new();
        assert_eq!(
            database_from_metadata(&md).unwrap_err().to_string(),
            "no 'database' header"
        );
        md.insert("bucket", MetadataValue::from_static("a"));
        assert_eq!(database_from_metadata(&md).unwrap(), "a");
        md.insert("database", MetadataValue::from_static("a"));
        assert_eq!(database_from_metadata(&md).unwrap(), "a");
        md.insert("iox-namespace-name", MetadataValue::from_static("b"));
        let err = database_from_metadata(&md).unwrap_err();
        assert_eq!(err.grpc_code(), tonic::Code::InvalidArgument);
        assert!(err.to_string().contains("conflicting"), "{err}");
    }
}
