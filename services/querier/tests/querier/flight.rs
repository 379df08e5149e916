//! Flight and Flight SQL over real gRPC.

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, TimeUnit};
use arrow::record_batch::RecordBatch;
use arrow_flight::error::FlightError;
use arrow_flight::sql::client::FlightSqlServiceClient;
use arrow_flight::sql::{
    Any, CommandGetDbSchemas, CommandGetPrimaryKeys, CommandGetTables, CommandGetXdbcTypeInfo,
    CommandStatementQuery, ProstMessageExt, SqlInfo,
};
use arrow_flight::{FlightClient, FlightDescriptor, FlightInfo, Ticket};
use ferrite_proto::influxdata::iox::querier::v1::query_param_value::Value as ProtoValue;
use ferrite_proto::influxdata::iox::querier::v1::read_info::QueryType;
use ferrite_proto::influxdata::iox::querier::v1::{QueryParamValue, ReadInfo};
use futures::TryStreamExt;
use prost::Message;
use serde_json::json;
use tonic::transport::Channel;

use crate::harness::*;

const Q: &str = "SELECT host, region, usage, time FROM cpu ORDER BY host";

const EXPECTED: &[&str] = &[
    "+------+--------+-------+---------------------+",
    "| host | region | usage | time                |",
    "+------+--------+-------+---------------------+",
    "| a    | eu     | 2.5   | 2024-01-01T00:00:00 |",
    "| b    | us     | 3.0   | 2024-01-01T00:00:00 |",
    "+------+--------+-------+---------------------+",
];

async fn server() -> (Fixture, Channel) {
    let f = Fixture::new().await;
    let t = f.table("cpu", CPU).await;
    f.persist(
        &t,
        &cpu(&[
            json!(["a", "eu", 1.5, 1, JAN1]),
            json!(["b", "us", 3.0, 2, JAN1]),
        ]),
        1,
    )
    .await;
    f.buffer(&t, cpu(&[json!(["a", "eu", 2.5, null, JAN1])]));
    let channel = serve_flight(std::sync::Arc::clone(&f.engine)).await;
    (f, channel)
}

/// DoGet as influxdb3-python does it: a bearer token header and the ticket bytes.
async fn do_get(channel: &Channel, ticket: Vec<u8>) -> Result<Vec<RecordBatch>, FlightError> {
    let mut client = FlightClient::new(channel.clone());
    client.add_header("authorization", "Bearer some-token")?;
    let stream = client.do_get(Ticket::new(ticket)).await?;
    stream.try_collect().await
}

fn assert_wire_types(batches: &[RecordBatch]) {
    assert_eq!(column_type(batches, "host"), DataType::Utf8);
    assert_eq!(column_type(batches, "region"), DataType::Utf8);
    assert_eq!(
        column_type(batches, "time"),
        DataType::Timestamp(TimeUnit::Nanosecond, None)
    );
}

fn status(e: FlightError) -> tonic::Status {
    match e {
        FlightError::Tonic(s) => *s,
        other => panic!("not a gRPC status: {other}"),
    }
}

#[tokio::test]
async fn do_get_with_a_json_ticket() {
    let (f, channel) = server().await;
    let ticket = json!({"database": f.db, "sql_query": Q, "query_type": "sql"});
    let out = do_get(&channel, ticket.to_string().into_bytes())
        .await
        .unwrap();
    assert_eq!(pretty_lines(&out), EXPECTED);
    assert_wire_types(&out);

    // The bucket alias and params, as the Python client sends them.
    let ticket = json!({"bucket": f.db, "sql_query": "SELECT host FROM cpu WHERE usage > $u", "params": {"u": 2.9}});
    let out = do_get(&channel, ticket.to_string().into_bytes())
        .await
        .unwrap();
    assert_eq!(
        pretty_lines(&out),
        vec!["+------+", "| host |", "+------+", "| b    |", "+------+"]
    );
}

#[tokio::test]
async fn do_get_with_protobuf_tickets_bare_and_in_any() {
    let (f, channel) = server().await;
    let info = ReadInfo {
        database: f.db.clone(),
        sql_query: "SELECT host, region, usage, time FROM cpu WHERE host <> $skip ORDER BY host"
            .into(),
        query_type: QueryType::Sql.into(),
        params: [(
            "skip".to_string(),
            QueryParamValue {
                value: Some(ProtoValue::String("zz".into())),
            },
        )]
        .into(),
        ..Default::default()
    };
    let out = do_get(&channel, info.encode_to_vec()).await.unwrap();
    assert_eq!(pretty_lines(&out), EXPECTED);
    let any = Any {
        type_url: "type.googleapis.com/influxdata.iox.querier.v1.ReadInfo".into(),
        value: info.encode_to_vec().into(),
    };
    let out = do_get(&channel, any.encode_to_vec()).await.unwrap();
    assert_eq!(pretty_lines(&out), EXPECTED);
    assert_wire_types(&out);
}

#[tokio::test]
async fn do_get_errors_map_to_grpc_codes() {
    let (f, channel) = server().await;
    let cases = [
        (
            json!({"database": "nope", "sql_query": "SELECT 1"}).to_string(),
            tonic::Code::NotFound,
            "database 'nope' not found",
        ),
        (
            json!({"database": f.db, "sql_query": "SELEKT"}).to_string(),
            tonic::Code::InvalidArgument,
            "error while planning query",
        ),
        (
            json!({"database": f.db, "sql_query": "SHOW MEASURE", "query_type": "influxql"})
                .to_string(),
            tonic::Code::InvalidArgument,
            "error parsing query: found MEASURE",
        ),
        (
            "garbage".to_string(),
            tonic::Code::InvalidArgument,
            "invalid ticket",
        ),
        (
            json!({"sql_query": "SELECT 1"}).to_string(),
            tonic::Code::InvalidArgument,
            "invalid JSON ticket",
        ),
    ];
    for (ticket, code, message) in cases {
        let s = status(
            do_get(&channel, ticket.clone().into_bytes())
                .await
                .unwrap_err(),
        );
        assert_eq!(s.code(), code, "{ticket}: {s:?}");
        assert!(s.message().contains(message), "{ticket}: {s:?}");
    }
    f.ingester.set_mode(IngesterMode::Invalid);
    let ticket = json!({"database": f.db, "sql_query": Q}).to_string();
    let s = status(do_get(&channel, ticket.into_bytes()).await.unwrap_err());
    assert_eq!(s.code(), tonic::Code::Internal, "{s:?}");
}

#[tokio::test]
async fn flight_sql_statement_with_the_database_header() {
    let (f, channel) = server().await;
    let mut client = FlightSqlServiceClient::new(channel.clone());
    client.set_header("database", f.db.clone());
    let info = client.execute(Q.to_string(), None).await.unwrap();
    assert_eq!(info.endpoint.len(), 1);
    let endpoint = &info.endpoint[0];
    assert!(endpoint.location.is_empty());
    let schema = info.clone().try_decode_schema().unwrap();
    assert_eq!(
        schema.field_with_name("host").unwrap().data_type(),
        &DataType::Utf8
    );
    assert_eq!(
        schema.field_with_name("time").unwrap().data_type(),
        &DataType::Timestamp(TimeUnit::Nanosecond, None)
    );
    let ticket = endpoint.ticket.clone().unwrap();
    let out: Vec<RecordBatch> = client
        .do_get(ticket)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(pretty_lines(&out), EXPECTED);
    assert_wire_types(&out);
    assert_eq!(out[0].schema().fields().len(), schema.fields().len());

    // The other header names work too; the ticket alone carries the database to DoGet.
    for header in ["bucket", "bucket-name", "iox-namespace-name"] {
        let mut client = FlightSqlServiceClient::new(channel.clone());
        client.set_header(header, f.db.clone());
        let info = client
            .execute("SELECT 1 AS one".into(), None)
            .await
            .unwrap();
        let ticket = info.endpoint[0].ticket.clone().unwrap();
        let out: Vec<RecordBatch> = FlightSqlServiceClient::new(channel.clone())
            .do_get(ticket)
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        assert_eq!(
            out.iter().map(|b| b.num_rows()).sum::<usize>(),
            1,
            "{header}"
        );
    }
}

async fn flight_info_status(channel: &Channel, headers: &[(&str, &str)]) -> tonic::Status {
    let mut client = FlightClient::new(channel.clone());
    for (k, v) in headers {
        client.add_header(k, v).unwrap();
    }
    let cmd = CommandStatementQuery {
        query: "SELECT 1".into(),
        transaction_id: None,
    };
    let descriptor = FlightDescriptor::new_cmd(cmd.as_any().encode_to_vec());
    status(client.get_flight_info(descriptor).await.unwrap_err())
}

#[tokio::test]
async fn flight_sql_database_header_errors() {
    let (f, channel) = server().await;
    let s = flight_info_status(&channel, &[]).await;
    assert_eq!(s.code(), tonic::Code::InvalidArgument);
    assert_eq!(s.message(), "no 'database' header");
    let s = flight_info_status(&channel, &[("database", &f.db), ("bucket", "other")]).await;
    assert_eq!(s.code(), tonic::Code::InvalidArgument);
    assert!(s.message().contains("conflicting"), "{s:?}");
    let s = flight_info_status(&channel, &[("database", "nope")]).await;
    assert_eq!(s.code(), tonic::Code::NotFound);
}

#[tokio::test]
async fn handshake_hands_the_password_back_as_a_bearer_token() {
    let (_f, channel) = server().await;
    let mut client = FlightSqlServiceClient::new(channel);
    client.handshake("user", "secret-token").await.unwrap();
    assert_eq!(client.token().map(String::as_str), Some("secret-token"));
}

/// The rows of every batch of a Flight SQL DoGet of `info`'s single endpoint.
async fn fetch(client: &mut FlightSqlServiceClient<Channel>, info: FlightInfo) -> Vec<RecordBatch> {
    assert_eq!(info.endpoint.len(), 1, "exactly one endpoint");
    let ticket = info.endpoint[0].ticket.clone().unwrap();
    client
        .do_get(ticket)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap()
}

fn strings(batches: &[RecordBatch], column: &str) -> Vec<String> {
    batches
        .iter()
        .flat_map(|b| {
            let col = b.column_by_name(column).unwrap();
            let col = arrow::compute::cast(col, &DataType::Utf8).unwrap();
            let col = col.as_string::<i32>().clone();
            (0..col.len())
                .map(|i| col.value(i).to_string())
                .collect::<Vec<_>>()
        })
        .collect()
}

#[tokio::test]
async fn flight_sql_metadata_lists_catalogs_schemas_tables_and_table_schemas() {
    let (f, channel) = server().await;
    let mut client = FlightSqlServiceClient::new(channel);
    client.set_header("database", f.db.clone());

    let info = client.get_catalogs().await.unwrap();
    let catalogs = fetch(&mut client, info).await;
    assert_eq!(strings(&catalogs, "catalog_name"), ["public"]);

    let info = client
        .get_db_schemas(CommandGetDbSchemas {
            catalog: None,
            db_schema_filter_pattern: None,
        })
        .await
        .unwrap();
    let schemas = fetch(&mut client, info).await;
    // The system tables are listed to the admin (and when auth is off, as here).
    assert_eq!(
        strings(&schemas, "db_schema_name"),
        ["information_schema", "iox", "system"]
    );

    let info = client
        .get_tables(CommandGetTables::default())
        .await
        .unwrap();
    let all = fetch(&mut client, info).await;
    // information_schema's views first (sorted by schema, then name), then user tables.
    assert_eq!(
        strings(&all, "table_name"),
        [
            "columns",
            "df_settings",
            "parameters",
            "routines",
            "schemata",
            "tables",
            "views",
            "cpu",
            "compactor",
            "distinct_caches",
            "ingesters",
            "last_caches",
            "parquet_files",
            "partitions",
            "queries",
            "tables",
            "tokens"
        ]
    );
    // What Grafana's plugin asks: user tables only, then one table with its schema.
    let info = client
        .get_tables(CommandGetTables {
            table_types: vec!["BASE TABLE".into(), "table".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    let tables = fetch(&mut client, info).await;
    assert_eq!(strings(&tables, "table_name"), ["cpu"]);
    assert_eq!(strings(&tables, "db_schema_name"), ["iox"]);

    let info = client
        .get_tables(CommandGetTables {
            table_name_filter_pattern: Some("cp_".into()),
            include_schema: true,
            ..Default::default()
        })
        .await
        .unwrap();
    let tables = fetch(&mut client, info).await;
    assert_eq!(strings(&tables, "table_name"), ["cpu"]);
    let ipc = tables[0]
        .column_by_name("table_schema")
        .unwrap()
        .as_binary::<i32>()
        .value(0)
        .to_vec();
    let schema = arrow::ipc::convert::try_schema_from_ipc_buffer(&ipc).unwrap();
    assert_eq!(
        schema.field_with_name("host").unwrap().data_type(),
        &DataType::Utf8
    );
    assert_eq!(
        schema.field_with_name("time").unwrap().data_type(),
        &DataType::Timestamp(TimeUnit::Nanosecond, None)
    );

    let info = client.get_table_types().await.unwrap();
    let types = fetch(&mut client, info).await;
    assert_eq!(strings(&types, "table_type"), ["BASE TABLE", "VIEW"]);

    let info = client
        .get_primary_keys(CommandGetPrimaryKeys {
            catalog: None,
            db_schema: None,
            table: "cpu".into(),
        })
        .await
        .unwrap();
    let keys = fetch(&mut client, info).await;
    assert_eq!(keys.iter().map(|b| b.num_rows()).sum::<usize>(), 0);

    let info = client
        .get_xdbc_type_info(CommandGetXdbcTypeInfo { data_type: None })
        .await
        .unwrap();
    let types = fetch(&mut client, info).await;
    assert!(strings(&types, "type_name").contains(&"TIMESTAMP".to_string()));
}

#[tokio::test]
async fn flight_sql_info_has_the_standard_schema_and_needs_no_database() {
    let (_f, channel) = server().await;
    let mut client = FlightSqlServiceClient::new(channel);
    let info = client
        .get_sql_info(vec![
            SqlInfo::FlightSqlServerName,
            SqlInfo::FlightSqlServerReadOnly,
        ])
        .await
        .unwrap();
    let batches = fetch(&mut client, info).await;
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, 2);
    assert_eq!(
        batches[0].schema().field(0).data_type(),
        &DataType::UInt32,
        "info_name"
    );
}

#[tokio::test]
async fn flight_sql_metadata_of_an_unknown_database_is_not_found() {
    let (_f, channel) = server().await;
    let mut client = FlightSqlServiceClient::new(channel);
    client.set_header("database", "nope");
    let info = client
        .get_tables(CommandGetTables::default())
        .await
        .unwrap();
    let ticket = info.endpoint[0].ticket.clone().unwrap();
    let err = match client.do_get(ticket).await {
        Ok(stream) => stream.try_collect::<Vec<_>>().await.unwrap_err(),
        Err(e) => e,
    };
    let message = err.to_string();
    assert!(message.contains("database 'nope' not found"), "{message}");
}

#[tokio::test]
async fn prepared_statements_bind_parameters_and_report_schemas() {
    let (f, channel) = server().await;
    let mut client = FlightSqlServiceClient::new(channel);
    client.set_header("database", f.db.clone());
    let mut statement = client
        .prepare(
            "SELECT host, usage, time FROM cpu WHERE host = $1 ORDER BY time".into(),
            None,
        )
        .await
        .unwrap();
    let dataset = statement.dataset_schema().unwrap().clone();
    assert_eq!(
        dataset
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect::<Vec<_>>(),
        ["host", "usage", "time"]
    );
    let parameters = statement.parameter_schema().unwrap().clone();
    assert_eq!(parameters.field(0).name(), "$1");
    assert_eq!(parameters.field(0).data_type(), &DataType::Utf8);

    let bound = RecordBatch::try_new(
        std::sync::Arc::new(parameters),
        vec![std::sync::Arc::new(arrow::array::StringArray::from(vec![
            "b",
        ]))],
    )
    .unwrap();
    statement.set_parameters(bound).unwrap();
    let info = statement.execute().await.unwrap();
    let out = fetch(&mut client, info).await;
    assert_eq!(strings(&out, "host"), ["b"]);
    assert_eq!(strings(&out, "usage"), ["3.0"]);
    statement.close().await.unwrap();

    // Without a value for $1 the statement cannot run: a clear InvalidArgument.
    let mut statement = client
        .prepare("SELECT host FROM cpu WHERE host = $1".into(), None)
        .await
        .unwrap();
    let s = statement.execute().await.unwrap_err().to_string();
    assert!(s.contains("no value given for query parameter '$1'"), "{s}");
}

#[tokio::test]
async fn flight_sql_is_read_only() {
    let (f, channel) = server().await;
    let mut client = FlightSqlServiceClient::new(channel);
    client.set_header("database", f.db.clone());
    let err = client
        .execute_update("DELETE FROM cpu".into(), None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("read-only"), "{err}");
}

/// A Flight SQL query's GetFlightInfo plans it and its DoGet reuses the plan while the
/// catalog version stands; the rows are read at DoGet either way.
#[tokio::test]
async fn a_flight_sql_plan_serves_its_do_get_with_fresh_rows_until_the_catalog_moves() {
    use ferrite_catalog::{CachedCatalog, Catalog};
    use ferrite_ingester::api::IngesterQuery;
    use ferrite_querier::{QuerierConfig, QueryEngine};

    let f = Fixture::new().await;
    let t = f.table("cpu", CPU).await;
    f.buffer(&t, cpu(&[json!(["a", "eu", 1.0, 1, JAN1])]));
    // A catalog that follows its version, as in `serve` and a cluster's querier.
    let catalog = CachedCatalog::new(
        std::sync::Arc::clone(&f.catalog) as std::sync::Arc<dyn Catalog>,
        f.catalog.committed_versions(),
    );
    // The feed carries the versions of commits made while someone subscribes (as `serve`
    // does from its start): one more commit here, and it knows the current one.
    f.table("other", CPU).await;
    let engine = QueryEngine::new(
        std::sync::Arc::new(catalog),
        vec![std::sync::Arc::clone(&f.ingester) as std::sync::Arc<dyn IngesterQuery>],
        std::sync::Arc::clone(&f.store) as std::sync::Arc<dyn object_store::ObjectStore>,
        QuerierConfig::default(),
    )
    .unwrap();
    let channel = serve_flight(std::sync::Arc::new(engine)).await;
    let mut client = FlightSqlServiceClient::new(channel.clone());
    client.set_header("database", f.db.clone());
    let fetch = async |info: FlightInfo| -> Vec<RecordBatch> {
        let ticket = info.endpoint[0].ticket.clone().unwrap();
        let mut client = FlightSqlServiceClient::new(channel.clone());
        client.set_header("database", f.db.clone());
        client
            .do_get(ticket)
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap()
    };

    // A row buffered between GetFlightInfo and DoGet is in the answer.
    let info = client
        .execute("SELECT count(*) AS n FROM cpu".into(), None)
        .await
        .unwrap();
    f.buffer(&t, cpu(&[json!(["b", "us", 2.0, 2, JAN1])]));
    let out = fetch(info).await;
    assert_eq!(
        pretty_lines(&out),
        ["+---+", "| n |", "+---+", "| 2 |", "+---+"]
    );

    // A column added in between moves the catalog version: DoGet plans again and sees it.
    let info = client
        .execute("SELECT * FROM cpu".into(), None)
        .await
        .unwrap();
    f.catalog
        .upsert_columns(t.id, &[("extra", ferrite_model::ColumnType::F64)])
        .await
        .unwrap();
    let out = fetch(info).await;
    assert!(
        out[0].schema().field_with_name("extra").is_ok(),
        "{:?}",
        out[0].schema()
    );
}
