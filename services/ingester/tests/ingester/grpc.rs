//! The ingester over the network: the write RPC and Flight `DoGet` served by tonic on
//! loopback, read and written through the clients the router and querier use.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Array, Float64Array, StringArray, TimestampNanosecondArray};
use arrow::datatypes::Schema;
use arrow::record_batch::RecordBatch;
use arrow_flight::decode::{DecodedPayload, FlightDataDecoder};
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_client::FlightServiceClient;
use arrow_flight::{Empty, Ticket};
use async_trait::async_trait;
use ferrite_ingester::Ingester;
use ferrite_ingester::api::{
    Durability, IngesterQuery, IngesterWrite, QueryError, QueryRequest, QueryResponse, TableWrite,
    TagIn, WriteError, WriteRequest,
};
use ferrite_ingester::grpc::{
    FlightIngesterQuery, GrpcIngesterWrite, decode_ticket, encode_ticket, flight_service, routes,
    write_service,
};
use ferrite_model::{COLUMN_TYPE_METADATA_KEY, ColumnType};
use ferrite_proto::auth::ClientAuth;
use ferrite_proto::ferrite::ingester::v1 as proto;
use ferrite_proto::ferrite::ingester::v1::write_service_client::WriteServiceClient;
use futures::{StreamExt, TryStreamExt};
use prost::Message;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::Code;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;

use super::{Fixture, batch, rows_of, schema};

const TIMEOUT: Duration = Duration::from_secs(5);

/// A tonic server on an ephemeral loopback port.
struct Serving {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Serving {
    async fn start(routes: tonic::service::Routes) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            Server::builder()
                .add_routes(routes)
                .serve_with_incoming_shutdown(TcpIncoming::from(listener), async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        Self {
            addr,
            stop: Some(stop),
            task,
        }
    }

    async fn ingester(ingester: &Arc<Ingester>) -> Self {
        Self::start(routes(Arc::clone(ingester))).await
    }

    fn writer(&self) -> GrpcIngesterWrite {
        GrpcIngesterWrite::connect_lazy(&self.addr.to_string(), TIMEOUT, &ClientAuth::none())
            .unwrap()
    }

    fn reader(&self) -> FlightIngesterQuery {
        FlightIngesterQuery::connect_lazy(
            &format!("http://{}", self.addr),
            TIMEOUT,
            &ClientAuth::none(),
        )
        .unwrap()
    }

    async fn flight(&self) -> FlightServiceClient<tonic::transport::Channel> {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect()
            .await
            .unwrap();
        FlightServiceClient::new(channel)
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("server stops")
            .unwrap();
    }
}

impl Fixture {
    fn request(&self, schema: Arc<Schema>, time_range: Option<(i64, i64)>) -> QueryRequest {
        QueryRequest {
            database_id: self.db,
            table_id: self.table,
            schema,
            time_range,
            tags: Vec::new(),
        }
    }

    fn request_tags(&self, schema: Arc<Schema>, tags: Vec<TagIn>) -> QueryRequest {
        QueryRequest {
            tags,
            ..self.request(schema, None)
        }
    }
}

fn wire_rows(response: &QueryResponse) -> Vec<(String, i64, f64)> {
    response
        .partitions
        .iter()
        .flat_map(|p| p.batches.iter())
        .flat_map(rows_of)
        .collect()
}

#[tokio::test]
async fn writes_over_grpc_read_back_over_flight() {
    let f = Fixture::new().await;
    let ingester = f.start();
    let server = Serving::ingester(&ingester).await;
    let writer = server.writer();
    let reader = server.reader();
    assert!(format!("{writer:?}").contains(&server.addr.to_string()));

    writer
        .write(
            f.write(&["a", "b"], &[10, 20], &[1.0, 2.0]),
            Durability::Sync,
        )
        .await
        .unwrap();
    writer
        .write(f.write(&["a"], &[30], &[3.0]), Durability::NoSync)
        .await
        .unwrap();

    let over_wire = reader.query(f.request(schema(), None)).await.unwrap();
    let in_process = ingester.query(f.request(schema(), None)).await.unwrap();
    assert_eq!(
        wire_rows(&over_wire),
        vec![
            ("a".into(), 10, 1.0),
            ("b".into(), 20, 2.0),
            ("a".into(), 30, 3.0)
        ]
    );
    assert_eq!(over_wire.ingester_uuid, in_process.ingester_uuid);
    assert!(!over_wire.ingester_uuid.is_nil());
    assert_eq!(over_wire.persist_count, 0);
    assert_eq!(over_wire.partitions.len(), 1);
    let (wire, local) = (&over_wire.partitions[0], &in_process.partitions[0]);
    assert_eq!(wire.partition_key, "1970-01-01");
    assert_eq!((wire.min_time, wire.max_time), (10, 30));
    assert_eq!(
        wire.batches, local.batches,
        "identical batches, schema metadata included"
    );
    for b in &wire.batches {
        assert_eq!(b.schema(), schema());
        let host = b.schema().field_with_name("host").unwrap().clone();
        assert_eq!(
            host.metadata()
                .get(COLUMN_TYPE_METADATA_KEY)
                .map(String::as_str),
            Some(ColumnType::Tag.iox_metadata())
        );
    }

    // The time range is pushed down: [15, 30) keeps only t=20.
    let ranged = reader
        .query(f.request(schema(), Some((15, 30))))
        .await
        .unwrap();
    assert_eq!(wire_rows(&ranged), vec![("b".into(), 20, 2.0)]);
    assert_eq!(
        (ranged.partitions[0].min_time, ranged.partitions[0].max_time),
        (20, 20)
    );

    // Persisting empties the buffer; the answer still names the ingester and its new count.
    ingester.persist_all().await;
    let after = reader.query(f.request(schema(), None)).await.unwrap();
    assert!(after.partitions.is_empty());
    assert_eq!(after.ingester_uuid, in_process.ingester_uuid);
    assert_eq!(after.persist_count, 1);
    assert_eq!(f.catalog.parquet_files(f.table).await.unwrap().len(), 1);
    server.stop().await;
}

#[tokio::test]
async fn flight_stream_carries_partitions_projection_and_nulls() {
    let f = Fixture::new().await;
    let ingester = f.start();
    let server = Serving::ingester(&ingester).await;
    let writer = server.writer();
    let day = ferrite_model::NANOS_PER_DAY;
    writer
        .write(
            WriteRequest {
                database_id: f.db,
                tables: vec![
                    TableWrite {
                        table_id: f.table,
                        partition_key: "1970-01-01".into(),
                        batch: batch(&["a"], &[1], &[1.0]),
                    },
                    TableWrite {
                        table_id: f.table,
                        partition_key: "1970-01-02".into(),
                        batch: batch(&["b", "c"], &[day, day + 1], &[2.0, 3.0]),
                    },
                ],
            },
            Durability::Sync,
        )
        .await
        .unwrap();

    // Projection: `usage` is left out, `extra` is unknown to the ingester (nulls).
    let projected = Arc::new(Schema::new(vec![
        ColumnType::Time.arrow_field("time"),
        ColumnType::I64.arrow_field("extra"),
        ColumnType::Tag.arrow_field("host"),
    ]));
    let response = server
        .reader()
        .query(f.request(Arc::clone(&projected), None))
        .await
        .unwrap();
    let mut keys: Vec<_> = response
        .partitions
        .iter()
        .map(|p| {
            (
                p.partition_key.clone(),
                p.min_time,
                p.max_time,
                p.batches.iter().map(|b| b.num_rows()).sum::<usize>(),
            )
        })
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        vec![
            ("1970-01-01".into(), 1, 1, 1),
            ("1970-01-02".into(), day, day + 1, 2)
        ]
    );
    for b in response.partitions.iter().flat_map(|p| &p.batches) {
        assert_eq!(b.schema(), projected);
        assert_eq!(b.column(1).null_count(), b.num_rows());
    }

    // The raw stream: partition metadata, one schema for the whole stream, batches.
    let request = f.request(Arc::clone(&projected), None);
    let ticket = encode_ticket(&request).unwrap();
    let stream = server
        .flight()
        .await
        .do_get(Ticket { ticket })
        .await
        .unwrap()
        .into_inner()
        .map_err(|s| FlightError::Tonic(Box::new(s)));
    let kinds: Vec<String> = FlightDataDecoder::new(stream)
        .map(|d| {
            let d = d.unwrap();
            match d.payload {
                DecodedPayload::None => {
                    let m =
                        proto::IngesterQueryResponseMetadata::decode(d.inner.app_metadata).unwrap();
                    assert_eq!(m.persist_count, 0);
                    format!("meta {}", m.partition_key.unwrap())
                }
                DecodedPayload::Schema(s) => {
                    assert_eq!(s, projected);
                    "schema".into()
                }
                DecodedPayload::RecordBatch(b) => format!("batch {}", b.num_rows()),
            }
        })
        .collect()
        .await;
    let expected = |first: &str, first_rows: usize, second: &str, second_rows: usize| {
        vec![
            format!("meta {first}"),
            "schema".into(),
            format!("batch {first_rows}"),
            format!("meta {second}"),
            format!("batch {second_rows}"),
        ]
    };
    assert!(
        kinds == expected("1970-01-01", 1, "1970-01-02", 2)
            || kinds == expected("1970-01-02", 2, "1970-01-01", 1),
        "{kinds:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn tag_lists_are_pushed_down_exactly() {
    let f = Fixture::new().await;
    let ingester = f.start();
    let server = Serving::ingester(&ingester).await;
    let writer = server.writer();
    writer
        .write(
            f.write(&["a", "b", "a"], &[1, 2, 3], &[1.0, 2.0, 3.0]),
            Durability::Sync,
        )
        .await
        .unwrap();
    writer
        .write(f.write(&["b"], &[4], &[4.0]), Durability::Sync)
        .await
        .unwrap();
    let reader = server.reader();
    let tag = |column: &str, value: &str| TagIn {
        column: column.into(),
        values: vec![value.into()],
    };

    let a = reader
        .query(f.request_tags(schema(), vec![tag("host", "a")]))
        .await
        .unwrap();
    assert_eq!(
        wire_rows(&a),
        vec![("a".into(), 1, 1.0), ("a".into(), 3, 3.0)]
    );
    assert_eq!((a.partitions[0].min_time, a.partitions[0].max_time), (1, 3));
    assert_eq!(
        a.partitions[0].batches.len(),
        1,
        "the batch without host=a is not sent"
    );

    let none = reader
        .query(f.request_tags(schema(), vec![tag("host", "z")]))
        .await
        .unwrap();
    assert!(none.partitions.is_empty());
    assert_eq!(none.ingester_uuid, a.ingester_uuid);

    // A ticket with the older `tag_equals` asks for what a one-value list asks for.
    let mut message =
        proto::IngesterQueryRequest::decode(encode_ticket(&f.request(schema(), None)).unwrap())
            .unwrap();
    message.tag_equals = vec![proto::TagEquals {
        column: "host".into(),
        value: "a".into(),
    }];
    let decoded = decode_ticket(&message.encode_to_vec()).unwrap();
    assert_eq!(decoded.tags, vec![tag("host", "a")]);

    // A list: `host IN ('b', 'z')`.
    let in_list = TagIn {
        column: "host".into(),
        values: vec!["b".into(), "z".into()],
    };
    let b = reader
        .query(f.request_tags(schema(), vec![in_list]))
        .await
        .unwrap();
    assert_eq!(
        wire_rows(&b),
        vec![("b".into(), 2, 2.0), ("b".into(), 4, 4.0)]
    );

    // A tag the ingester has never seen is null everywhere: nothing can match.
    let mut fields: Vec<_> = schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(ColumnType::Tag.arrow_field("region"));
    let with_region = Arc::new(Schema::new(fields));
    let unknown = reader
        .query(f.request_tags(with_region, vec![tag("region", "")]))
        .await
        .unwrap();
    assert!(unknown.partitions.is_empty());

    // Fields and unprojected columns are refused: filtering them before dedup is unsafe.
    for bad in [tag("usage", "1"), tag("nope", "x")] {
        let err = reader
            .query(f.request_tags(schema(), vec![bad]))
            .await
            .unwrap_err();
        assert!(matches!(err, QueryError::Invalid(_)), "{err}");
    }
    server.stop().await;
}

#[tokio::test]
async fn write_to_a_shut_down_ingester_is_unavailable() {
    let f = Fixture::new().await;
    let ingester = f.start();
    let server = Serving::ingester(&ingester).await;
    ingester.shutdown().await;

    let err = server
        .writer()
        .write(f.write(&["a"], &[1], &[1.0]), Durability::Sync)
        .await
        .unwrap_err();
    match &err {
        WriteError::Unavailable(m) => {
            assert!(m.contains("shutting down"), "{m}");
            assert!(m.contains(&server.addr.to_string()), "{m}");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }

    let mut raw = WriteServiceClient::connect(format!("http://{}", server.addr))
        .await
        .unwrap();
    let message =
        ferrite_ingester::codec::encode_write(&f.write(&["a"], &[1], &[1.0]), false).unwrap();
    assert_eq!(
        raw.write(message).await.unwrap_err().code(),
        Code::Unavailable
    );
    server.stop().await;
}

#[tokio::test]
async fn bad_write_payloads_are_invalid_argument_and_change_nothing() {
    let f = Fixture::new().await;
    let ingester = f.start();
    let server = Serving::ingester(&ingester).await;
    let mut raw = WriteServiceClient::connect(format!("http://{}", server.addr))
        .await
        .unwrap();

    let garbage = proto::WriteRequest {
        database_id: f.db.get(),
        tables: vec![proto::TableBatch {
            table_id: f.table.get(),
            partition_key: "1970-01-01".into(),
            arrow_ipc: b"not arrow".to_vec(),
        }],
        no_sync: false,
    };
    let status = raw.write(garbage).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");

    let no_time = RecordBatch::try_new(
        Arc::new(Schema::new(vec![ColumnType::Tag.arrow_field("host")])),
        vec![Arc::new(StringArray::from(vec!["a"]))],
    )
    .unwrap();
    let message = proto::WriteRequest {
        database_id: f.db.get(),
        tables: vec![proto::TableBatch {
            table_id: f.table.get(),
            partition_key: "1970-01-01".into(),
            arrow_ipc: ferrite_ingester::codec::encode_batch(&no_time).unwrap(),
        }],
        no_sync: false,
    };
    let status = raw.write(message).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("time"), "{status:?}");

    assert!(f.rows(&ingester).await.is_empty());
    server.stop().await;
}

/// An ingester stand-in that refuses everything with one error.
#[derive(Debug, Clone, Copy)]
struct Refusing {
    write: fn() -> WriteError,
    query: fn() -> QueryError,
}

#[async_trait]
impl IngesterWrite for Refusing {
    async fn write(&self, _r: WriteRequest, _d: Durability) -> Result<(), WriteError> {
        Err((self.write)())
    }
}

#[async_trait]
impl IngesterQuery for Refusing {
    async fn query(&self, _r: QueryRequest) -> Result<QueryResponse, QueryError> {
        Err((self.query)())
    }

    async fn cache(
        &self,
        _d: &ferrite_model::cache::CacheDefinition,
    ) -> Result<Vec<arrow::record_batch::RecordBatch>, QueryError> {
        Err((self.query)())
    }

    async fn status(&self) -> Vec<ferrite_ingester::api::IngesterStatus> {
        vec![ferrite_ingester::api::IngesterStatus {
            address: "refusing".into(),
            buffered: Err((self.query)().to_string()),
        }]
    }
}

#[tokio::test]
async fn ingester_errors_keep_their_meaning_over_the_wire() {
    let f = Fixture::new().await;
    let cases = [
        Refusing {
            write: || WriteError::Overloaded("too much".into()),
            query: || QueryError::Invalid("bad schema".into()),
        },
        Refusing {
            write: || WriteError::Wal("disk full".into()),
            query: || QueryError::Unavailable("gone".into()),
        },
        Refusing {
            write: || WriteError::Unavailable("elsewhere".into()),
            query: || QueryError::Invalid("x".into()),
        },
    ];
    for case in cases {
        let (write_error, query_error) = (case.write, case.query);
        let stub = Arc::new(case);
        let server = Serving::start(
            tonic::service::Routes::new(write_service(Arc::clone(&stub) as _))
                .add_service(flight_service(stub as _)),
        )
        .await;
        let got = server
            .writer()
            .write(f.write(&["a"], &[1], &[1.0]), Durability::Sync)
            .await
            .unwrap_err();
        let addr = server.addr.to_string();
        match (write_error(), &got) {
            (WriteError::Overloaded(_), WriteError::Overloaded(m))
            | (WriteError::Wal(_), WriteError::Wal(m))
            | (WriteError::Unavailable(_), WriteError::Unavailable(m)) => {
                assert!(m.contains(&addr), "{m}")
            }
            (want, got) => panic!("{want:?} came back as {got:?}"),
        }
        let got = server
            .reader()
            .query(f.request(schema(), None))
            .await
            .unwrap_err();
        match (query_error(), &got) {
            (QueryError::Invalid(_), QueryError::Invalid(m))
            | (QueryError::Unavailable(_), QueryError::Unavailable(m)) => {
                assert!(m.contains(&addr), "{m}")
            }
            (want, got) => panic!("{want:?} came back as {got:?}"),
        }
        server.stop().await;
    }
}

#[tokio::test]
async fn query_schema_conflict_is_invalid() {
    let f = Fixture::new().await;
    let ingester = f.start();
    let server = Serving::ingester(&ingester).await;
    server
        .writer()
        .write(f.write(&["a"], &[1], &[1.0]), Durability::Sync)
        .await
        .unwrap();
    let wrong = Arc::new(Schema::new(vec![
        ColumnType::Time.arrow_field("time"),
        ColumnType::I64.arrow_field("usage"),
    ]));
    let err = server
        .reader()
        .query(f.request(wrong, None))
        .await
        .unwrap_err();
    assert!(matches!(err, QueryError::Invalid(_)), "{err}");
    server.stop().await;
}

#[tokio::test]
async fn malformed_tickets_are_invalid_argument_and_other_rpcs_unimplemented() {
    let f = Fixture::new().await;
    let ingester = f.start();
    let server = Serving::ingester(&ingester).await;
    let mut flight = server.flight().await;

    for ticket in [
        b"\xff\xff not a protobuf".to_vec(),
        Vec::new(),
        proto::IngesterQueryRequest {
            database_id: f.db.get(),
            table_id: f.table.get(),
            schema: b"not an ipc schema".to_vec(),
            time_range: None,
            ..Default::default()
        }
        .encode_to_vec(),
    ] {
        let status = flight
            .do_get(Ticket {
                ticket: ticket.into(),
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    }
    let status = flight.list_actions(Empty {}).await.unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented);
    server.stop().await;
}

#[tokio::test]
async fn a_stopped_or_missing_ingester_is_unavailable_quickly() {
    let f = Fixture::new().await;
    let ingester = f.start();
    let server = Serving::ingester(&ingester).await;
    let (writer, reader) = (server.writer(), server.reader());
    writer
        .write(f.write(&["a"], &[1], &[1.0]), Durability::Sync)
        .await
        .unwrap();
    assert_eq!(
        wire_rows(&reader.query(f.request(schema(), None)).await.unwrap()).len(),
        1
    );
    server.stop().await;

    let started = Instant::now();
    let err = writer
        .write(f.write(&["a"], &[2], &[1.0]), Durability::Sync)
        .await
        .unwrap_err();
    assert!(matches!(err, WriteError::Unavailable(_)), "{err:?}");
    let err = reader.query(f.request(schema(), None)).await.unwrap_err();
    assert!(matches!(err, QueryError::Unavailable(_)), "{err:?}");
    assert!(
        started.elapsed() < TIMEOUT,
        "refused connections fail fast: {:?}",
        started.elapsed()
    );

    // An address nobody ever listened on: construction succeeds, calls fail fast.
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let started = Instant::now();
    let err = GrpcIngesterWrite::connect_lazy(&free.to_string(), TIMEOUT, &ClientAuth::none())
        .unwrap()
        .write(f.write(&["a"], &[2], &[1.0]), Durability::Sync)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, WriteError::Unavailable(m) if m.contains(&free.to_string())),
        "{err:?}"
    );
    let err = FlightIngesterQuery::connect_lazy(&free.to_string(), TIMEOUT, &ClientAuth::none())
        .unwrap()
        .query(f.request(schema(), None))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, QueryError::Unavailable(m) if m.contains(&free.to_string())),
        "{err:?}"
    );
    assert!(started.elapsed() < TIMEOUT, "{:?}", started.elapsed());

    assert!(GrpcIngesterWrite::connect_lazy("not a uri", TIMEOUT, &ClientAuth::none()).is_err());
}

#[tokio::test]
async fn status_over_flight_counts_unpersisted_rows_and_names_an_unreachable_ingester() {
    let f = Fixture::new().await;
    let ingester = f.start();
    let server = Serving::ingester(&ingester).await;
    let (writer, reader) = (server.writer(), server.reader());
    writer
        .write(
            f.write(&["a", "b", "c"], &[1, 2, 3], &[1.0, 2.0, 3.0]),
            Durability::Sync,
        )
        .await
        .unwrap();
    let status = reader.status().await;
    assert_eq!(status.len(), 1);
    assert_eq!(status[0].address, format!("http://{}", server.addr));
    let stats = status[0].buffered.clone().unwrap();
    assert_eq!(stats.rows, 3);
    assert!(stats.bytes > 0);
    assert_eq!(
        ingester.status().await[0].buffered,
        Ok(stats),
        "same as in-process"
    );

    ingester.persist_all().await;
    let persisted = reader.status().await[0].buffered.clone().unwrap();
    assert_eq!(
        (persisted.rows, persisted.bytes),
        (0, 0),
        "nothing left unpersisted"
    );
    server.stop().await;

    let gone = reader.status().await;
    assert!(gone[0].buffered.is_err(), "{gone:?}");
}

#[tokio::test]
async fn a_hung_ingester_times_out() {
    let f = Fixture::new().await;
    // Accepts TCP connections (the kernel does) but never speaks HTTP/2.
    let hung = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = hung.local_addr().unwrap().to_string();
    let timeout = Duration::from_millis(300);

    let started = Instant::now();
    let err = GrpcIngesterWrite::connect_lazy(&addr, timeout, &ClientAuth::none())
        .unwrap()
        .write(f.write(&["a"], &[1], &[1.0]), Durability::Sync)
        .await
        .unwrap_err();
    assert!(matches!(err, WriteError::Unavailable(_)), "{err:?}");
    let err = FlightIngesterQuery::connect_lazy(&addr, timeout, &ClientAuth::none())
        .unwrap()
        .query(f.request(schema(), None))
        .await
        .unwrap_err();
    assert!(matches!(err, QueryError::Unavailable(_)), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    drop(hung);
}

#[tokio::test]
async fn large_writes_and_results_cross_the_wire() {
    let f = Fixture::new().await;
    let ingester = f.start();
    let server = Serving::ingester(&ingester).await;
    // ~100k rows with 64-byte tags (~8 MiB): well over the 4 MiB gRPC default and the 2 MiB Flight
    // message target, so both the decoding limit and batch splitting are exercised.
    let n = 100_000usize;
    let host = "h".repeat(64);
    let hosts: Vec<&str> = vec![host.as_str(); n];
    let times: Vec<i64> = (0..n as i64).collect();
    let usage: Vec<f64> = (0..n).map(|i| i as f64).collect();
    server
        .writer()
        .write(f.write(&hosts, &times, &usage), Durability::NoSync)
        .await
        .unwrap();
    let response = server
        .reader()
        .query(f.request(schema(), None))
        .await
        .unwrap();
    let p = &response.partitions[0];
    assert!(p.batches.len() > 1, "split into several messages");
    let total: usize = p.batches.iter().map(|b| b.num_rows()).sum();
    assert_eq!(total, n);
    let last = p.batches.last().unwrap();
    let t = last
        .column_by_name("time")
        .unwrap()
        .as_any()
        .downcast_ref::<TimestampNanosecondArray>()
        .unwrap();
    let u = last
        .column_by_name("usage")
        .unwrap()
        .as_any()
        .downcast_ref::<Float64Array>()
        .unwrap();
    assert_eq!(
        (t.value(t.len() - 1), u.value(u.len() - 1)),
        (n as i64 - 1, (n - 1) as f64)
    );
    server.stop().await;
}
