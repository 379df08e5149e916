//! A querier over a real SQLite catalog, a real local object store and an in-test ingester.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampNanosecondArray, UInt64Array, new_null_array,
};
use arrow::compute::kernels::cmp::{gt_eq, lt};
use arrow::compute::{and, filter_record_batch};
use arrow::datatypes::{Schema, SchemaRef};
use async_trait::async_trait;
use ferrite_catalog::{Catalog, ParquetFile, ParquetFileParams, SqlCatalog};
use ferrite_ingester::api::{
    IngesterQuery, PartitionData, QueryError, QueryRequest, QueryResponse,
};
use ferrite_model::{ColumnType, TableId, TableSchema, day_partition_key};
use ferrite_querier::{QuerierConfig, QueryEngine, QueryParams};
use futures::TryStreamExt;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use parking_lot::Mutex;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use serde_json::Value;

/// 2024-01-01T00:00:00Z in ns.
pub const JAN1: i64 = 1_704_067_200_000_000_000;
/// One hour in ns.
pub const HOUR: i64 = 3_600_000_000_000;
/// One day in ns.
pub const DAY: i64 = 24 * HOUR;

/// The standard test table: `cpu,host=…,region=… usage=<f64>,load=<i64>`.
pub const CPU: &[(&str, ColumnType)] = &[
    ("host", ColumnType::Tag),
    ("region", ColumnType::Tag),
    ("usage", ColumnType::F64),
    ("load", ColumnType::I64),
    ("time", ColumnType::Time),
];

pub struct Fixture {
    /// Holds the catalog file and the object store; removed on drop.
    _dir: tempfile::TempDir,
    pub catalog: Arc<SqlCatalog>,
    pub store: Arc<LocalFileSystem>,
    pub ingester: Arc<TestIngester>,
    pub engine: Arc<QueryEngine>,
    pub db: String,
}

impl Fixture {
    pub async fn new() -> Self {
        Self::with_config(QuerierConfig {
            target_partitions: 2,
            ..QuerierConfig::default()
        })
        .await
    }

    pub async fn with_config(config: QuerierConfig) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let dsn = format!("sqlite://{}/catalog.sqlite", dir.path().display());
        let catalog = Arc::new(SqlCatalog::connect(&dsn).await.unwrap());
        let objects = dir.path().join("objects");
        std::fs::create_dir_all(&objects).unwrap();
        let store = Arc::new(LocalFileSystem::new_with_prefix(&objects).unwrap());
        let ingester = Arc::new(TestIngester::default());
        let engine = Arc::new(
            QueryEngine::new(
                Arc::clone(&catalog) as Arc<dyn Catalog>,
                vec![Arc::clone(&ingester) as Arc<dyn IngesterQuery>],
                Arc::clone(&store) as Arc<dyn ObjectStore>,
                config,
            )
            .unwrap(),
        );
        let db = "testdb".to_string();
        catalog.create_database(&db).await.unwrap();
        Self {
            _dir: dir,
            catalog,
            store,
            ingester,
            engine,
            db,
        }
    }

    /// Create table `name` with `columns` in the catalog.
    pub async fn table(&self, name: &str, columns: &[(&str, ColumnType)]) -> TableSchema {
        let db = self
            .catalog
            .database_by_name(&self.db)
            .await
            .unwrap()
            .unwrap();
        let table = self.catalog.create_table(db.id, name).await.unwrap();
        self.catalog
            .upsert_columns(table.id, columns)
            .await
            .unwrap();
        self.catalog.table_schema(table.id).await.unwrap()
    }

    /// Persist `batch` as the ingester would: one partition, sorted by primary key and
    /// deduplicated, zstd, page statistics; then register it with `max_sequence_number`.
    pub async fn persist(&self, table: &TableSchema, batch: &RecordBatch, seq: i64) -> ParquetFile {
        let batch = ferrite_model::dedup::sort_dedup(batch, None).unwrap();
        let times = time_values(&batch);
        let (min_time, max_time) = (*times.iter().min().unwrap(), *times.iter().max().unwrap());
        let partition = self
            .catalog
            .create_partition(table.id, &day_partition_key(min_time))
            .await
            .unwrap();
        let db = self
            .catalog
            .database_by_name(&self.db)
            .await
            .unwrap()
            .unwrap();
        let bytes = parquet_bytes(&batch);
        let params = ParquetFileParams {
            database_id: db.id,
            table_id: table.id,
            partition_id: partition.id,
            object_store_id: uuid::Uuid::new_v4(),
            min_time,
            max_time,
            row_count: batch.num_rows() as i64,
            file_size_bytes: bytes.len() as i64,
            compaction_level: 0,
            max_sequence_number: seq,
        };
        self.store
            .put(&Path::from(params.object_path()), bytes.into())
            .await
            .unwrap();
        self.catalog.add_parquet_file(params).await.unwrap()
    }

    /// Buffer `batch` (unsorted, possibly repeating keys) in the test ingester.
    pub fn buffer(&self, table: &TableSchema, batch: RecordBatch) {
        self.ingester.buffer(table.id, batch);
    }

    /// Run `sql` and collect the batches.
    pub async fn query(&self, sql: &str) -> Vec<RecordBatch> {
        self.query_with(sql, QueryParams::new()).await.unwrap()
    }

    pub async fn query_with(
        &self,
        sql: &str,
        params: QueryParams,
    ) -> Result<Vec<RecordBatch>, ferrite_querier::QueryError> {
        let (_, stream) = self.engine.sql(&self.db, sql, params).await?;
        stream
            .try_collect()
            .await
            .map_err(ferrite_querier::QueryError::from_stream_error)
    }

    /// Run `sql` and render the result as a pretty table, one line per element.
    pub async fn pretty(&self, sql: &str) -> Vec<String> {
        pretty_lines(&self.query(sql).await)
    }
}

pub fn pretty_lines(batches: &[RecordBatch]) -> Vec<String> {
    arrow::util::pretty::pretty_format_batches(batches)
        .unwrap()
        .to_string()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Serve `router` on a loopback port, with token checking off (the server's tests cover
/// authentication).
pub async fn serve_http(router: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = ferrite_auth::authenticate(router, ferrite_auth::AuthMode::Disabled);
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

/// Serve the Flight service on a loopback port and connect a channel to it.
pub async fn serve_flight(engine: Arc<QueryEngine>) -> tonic::transport::Channel {
    let service = ferrite_querier::flight_service(engine);
    let addr = serve_http(tonic::service::Routes::new(service).into_axum_router()).await;
    tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// A record batch with `columns` (name and type, in this order) from JSON rows.
pub fn batch(columns: &[(&str, ColumnType)], rows: &[Value]) -> RecordBatch {
    let schema = Arc::new(Schema::new(
        columns
            .iter()
            .map(|(name, t)| t.arrow_field(name))
            .collect::<Vec<_>>(),
    ));
    let arrays: Vec<ArrayRef> = columns
        .iter()
        .enumerate()
        .map(|(i, (_, t))| {
            let cells = rows
                .iter()
                .map(|r| &r.as_array().expect("row is an array")[i]);
            let array: ArrayRef = match t {
                ColumnType::Tag | ColumnType::String => {
                    Arc::new(StringArray::from_iter(cells.map(|v| v.as_str())))
                }
                ColumnType::F64 => Arc::new(Float64Array::from_iter(cells.map(|v| v.as_f64()))),
                ColumnType::I64 => Arc::new(Int64Array::from_iter(cells.map(|v| v.as_i64()))),
                ColumnType::U64 => Arc::new(UInt64Array::from_iter(cells.map(|v| v.as_u64()))),
                ColumnType::Bool => Arc::new(BooleanArray::from_iter(cells.map(|v| v.as_bool()))),
                ColumnType::Time => Arc::new(TimestampNanosecondArray::from_iter_values(
                    cells.map(|v| v.as_i64().expect("time is an integer")),
                )),
            };
            array
        })
        .collect();
    RecordBatch::try_new(schema, arrays).unwrap()
}

/// Rows of the standard `cpu` table: `[host, region, usage, load, time]`.
pub fn cpu(rows: &[Value]) -> RecordBatch {
    batch(CPU, rows)
}

fn time_values(batch: &RecordBatch) -> Vec<i64> {
    let time = batch
        .column(batch.schema().index_of("time").unwrap())
        .as_any()
        .downcast_ref::<TimestampNanosecondArray>()
        .unwrap();
    time.values().to_vec()
}

pub fn parquet_bytes(batch: &RecordBatch) -> Vec<u8> {
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(1024))
        .build();
    let mut out = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut out, batch.schema(), Some(props)).unwrap();
    writer.write(batch).unwrap();
    writer.close().unwrap();
    out
}

/// How the test ingester answers.
#[derive(Debug, Clone, Default)]
pub enum IngesterMode {
    #[default]
    Serve,
    /// Each partition's rows sorted and deduplicated, marked so, as an ingester serves a
    /// quiet partition.
    Deduplicated,
    Unavailable,
    Invalid,
}

/// An ingester holding batches handed to it, answering honestly: rows filtered by the time
/// range, columns projected to the request's schema (missing ones as nulls).
#[derive(Debug, Default)]
pub struct TestIngester {
    partitions: Mutex<BTreeMap<(TableId, String), Vec<RecordBatch>>>,
    requests: Mutex<Vec<QueryRequest>>,
    mode: Mutex<IngesterMode>,
}

impl TestIngester {
    pub fn buffer(&self, table: TableId, batch: RecordBatch) {
        // Split by day so every buffered batch belongs to one partition, as writes do.
        let times = time_values(&batch);
        let mut keys: Vec<String> = times.iter().map(|t| day_partition_key(*t)).collect();
        keys.dedup();
        let mut partitions = self.partitions.lock();
        for key in keys {
            let mask =
                BooleanArray::from_iter(times.iter().map(|t| Some(day_partition_key(*t) == key)));
            let part = filter_record_batch(&batch, &mask).unwrap();
            partitions.entry((table, key)).or_default().push(part);
        }
    }

    pub fn set_mode(&self, mode: IngesterMode) {
        *self.mode.lock() = mode;
    }

    pub fn requests(&self) -> Vec<QueryRequest> {
        self.requests.lock().clone()
    }
}

#[async_trait]
impl IngesterQuery for TestIngester {
    /// Built on each call from everything the stand-in holds of the table.
    async fn cache(
        &self,
        definition: &ferrite_model::cache::CacheDefinition,
    ) -> Result<Vec<arrow::record_batch::RecordBatch>, QueryError> {
        if matches!(*self.mode.lock(), IngesterMode::Unavailable) {
            return Err(QueryError::Unavailable("test ingester is down".into()));
        }
        let mut cache = definition.new_cache().unwrap();
        let now = std::time::Instant::now();
        for ((table, _), batches) in self.partitions.lock().iter() {
            if *table == definition.table_id {
                for b in batches {
                    cache.update(b, now).unwrap();
                }
            }
        }
        Ok(vec![cache.batch(now).unwrap()])
    }

    async fn query(&self, request: QueryRequest) -> Result<QueryResponse, QueryError> {
        self.requests.lock().push(request.clone());
        let mode = self.mode.lock().clone();
        match mode {
            IngesterMode::Serve | IngesterMode::Deduplicated => {}
            IngesterMode::Unavailable => {
                return Err(QueryError::Unavailable("test ingester is down".into()));
            }
            IngesterMode::Invalid => {
                return Err(QueryError::Invalid("test ingester refuses".into()));
            }
        }
        let mut partitions = vec![];
        for ((table, key), batches) in self.partitions.lock().iter() {
            if *table != request.table_id {
                continue;
            }
            let mut out = vec![];
            for batch in batches {
                let batch = match request.time_range {
                    None => batch.clone(),
                    Some((min, max)) => {
                        let time = batch.column(batch.schema().index_of("time").unwrap());
                        let min = TimestampNanosecondArray::new_scalar(min);
                        let max = TimestampNanosecondArray::new_scalar(max);
                        let mask =
                            and(&gt_eq(time, &min).unwrap(), &lt(time, &max).unwrap()).unwrap();
                        filter_record_batch(batch, &mask).unwrap()
                    }
                };
                if batch.num_rows() > 0 {
                    out.push(project(&batch, &request.schema));
                }
            }
            let deduplicated = matches!(mode, IngesterMode::Deduplicated) && !out.is_empty();
            if deduplicated {
                let all = arrow::compute::concat_batches(&request.schema, &out).unwrap();
                out = vec![ferrite_model::dedup::sort_dedup(&all, None).unwrap()];
            }
            let times: Vec<i64> = out.iter().flat_map(time_values).collect();
            if let (Some(min_time), Some(max_time)) = (times.iter().min(), times.iter().max()) {
                partitions.push(PartitionData {
                    partition_key: key.clone(),
                    batches: out,
                    min_time: *min_time,
                    max_time: *max_time,
                    deduplicated,
                });
            }
        }
        Ok(QueryResponse {
            ingester_uuid: uuid::Uuid::nil(),
            persist_count: 0,
            partitions,
        })
    }

    async fn status(&self) -> Vec<ferrite_ingester::api::IngesterStatus> {
        let rows = self
            .partitions
            .lock()
            .values()
            .flatten()
            .map(|b| b.num_rows() as u64)
            .sum();
        let buffered = match self.mode.lock().clone() {
            IngesterMode::Unavailable => Err("test ingester is down".to_string()),
            IngesterMode::Serve | IngesterMode::Deduplicated | IngesterMode::Invalid => {
                Ok(ferrite_ingester::api::BufferStats { bytes: 0, rows })
            }
        };
        vec![ferrite_ingester::api::IngesterStatus {
            address: "test".into(),
            buffered,
        }]
    }
}

fn project(batch: &RecordBatch, schema: &SchemaRef) -> RecordBatch {
    let columns = schema
        .fields()
        .iter()
        .map(|f| match batch.schema().index_of(f.name()) {
            Ok(i) => Arc::clone(batch.column(i)),
            Err(_) => new_null_array(f.data_type(), batch.num_rows()),
        })
        .collect();
    RecordBatch::try_new(Arc::clone(schema), columns).unwrap()
}

/// The arrow type of column `name` in `batches`' schema.
pub fn column_type(batches: &[RecordBatch], name: &str) -> arrow::datatypes::DataType {
    let schema = batches[0].schema();
    schema.field_with_name(name).unwrap().data_type().clone()
}

/// Values of a Float64 column across batches.
pub fn f64_column(batches: &[RecordBatch], name: &str) -> Vec<Option<f64>> {
    batches
        .iter()
        .flat_map(|b| {
            let a = b
                .column(b.schema().index_of(name).unwrap())
                .as_any()
                .downcast_ref::<Float64Array>()
                .unwrap()
                .clone();
            (0..a.len())
                .map(|i| a.is_valid(i).then(|| a.value(i)))
                .collect::<Vec<_>>()
        })
        .collect()
}
