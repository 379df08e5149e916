//! The ingester against a real SQLite catalog and a real local object store.

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Array, Float64Array, StringArray, TimestampNanosecondArray};
use arrow::datatypes::Schema;
use arrow::record_batch::RecordBatch;
use ferrite_catalog::{CatalogRef, SqlCatalog};
use ferrite_ingester::api::{
    Durability, IngesterQuery, IngesterWrite, QueryRequest, TableWrite, WriteRequest,
};
use ferrite_ingester::{Ingester, IngesterConfig};
use ferrite_model::{ColumnType, DatabaseId, TableId};
use futures::TryStreamExt;
use object_store::local::LocalFileSystem;
use object_store::{ObjectStore, ObjectStoreExt};

#[path = "ingester/grpc.rs"]
mod grpc;

struct Fixture {
    dir: tempfile::TempDir,
    catalog: CatalogRef,
    store: Arc<dyn ObjectStore>,
    db: DatabaseId,
    table: TableId,
}

impl Fixture {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let dsn = format!("sqlite://{}", dir.path().join("catalog.sqlite").display());
        let catalog: CatalogRef = Arc::new(SqlCatalog::connect(&dsn).await.unwrap());
        std::fs::create_dir_all(dir.path().join("objects")).unwrap();
        let store: Arc<dyn ObjectStore> =
            Arc::new(LocalFileSystem::new_with_prefix(dir.path().join("objects")).unwrap());
        let db = catalog.create_database("db").await.unwrap();
        let table = catalog.create_table(db.id, "cpu").await.unwrap();
        Self {
            dir,
            catalog,
            store,
            db: db.id,
            table: table.id,
        }
    }

    fn config(&self) -> IngesterConfig {
        let mut c = IngesterConfig::new(self.dir.path().join("wal"));
        // Only explicit persists in these tests.
        c.persist_age = Duration::from_secs(3600);
        c
    }

    fn start(&self) -> Arc<Ingester> {
        Ingester::start(
            self.config(),
            Arc::clone(&self.catalog),
            Arc::clone(&self.store),
        )
        .unwrap()
    }

    fn write(&self, hosts: &[&str], times: &[i64], usage: &[f64]) -> WriteRequest {
        WriteRequest {
            database_id: self.db,
            tables: vec![TableWrite {
                table_id: self.table,
                partition_key: "1970-01-01".into(),
                batch: batch(hosts, times, usage),
            }],
        }
    }

    async fn rows(&self, ingester: &Ingester) -> Vec<(String, i64, f64)> {
        let response = ingester
            .query(QueryRequest {
                database_id: self.db,
                table_id: self.table,
                schema: schema(),
                time_range: None,
                tags: Vec::new(),
            })
            .await
            .unwrap();
        response
            .partitions
            .iter()
            .flat_map(|p| p.batches.iter())
            .flat_map(rows_of)
            .collect()
    }
}

fn schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        ColumnType::Tag.arrow_field("host"),
        ColumnType::Time.arrow_field("time"),
        ColumnType::F64.arrow_field("usage"),
    ]))
}

fn batch(hosts: &[&str], times: &[i64], usage: &[f64]) -> RecordBatch {
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(StringArray::from(hosts.to_vec())),
            Arc::new(TimestampNanosecondArray::from(times.to_vec())),
            Arc::new(Float64Array::from(usage.to_vec())),
        ],
    )
    .unwrap()
}

fn rows_of(b: &RecordBatch) -> Vec<(String, i64, f64)> {
    let h = b
        .column_by_name("host")
        .unwrap()
        .as_any()
        .downcast_ref::<StringArray>()
        .unwrap();
    let t = b
        .column_by_name("time")
        .unwrap()
        .as_any()
        .downcast_ref::<TimestampNanosecondArray>()
        .unwrap();
    let u = b
        .column_by_name("usage")
        .unwrap()
        .as_any()
        .downcast_ref::<Float64Array>()
        .unwrap();
    (0..b.num_rows())
        .map(|i| (h.value(i).to_string(), t.value(i), u.value(i)))
        .collect()
}

#[tokio::test]
async fn acknowledged_writes_are_queryable_and_survive_a_crash() {
    let f = Fixture::new().await;
    {
        let ingester = f.start();
        ingester
            .write(f.write(&["a", "b"], &[1, 2], &[1.0, 2.0]), Durability::Sync)
            .await
            .unwrap();
        ingester
            .write(f.write(&["a"], &[1], &[3.0]), Durability::Sync)
            .await
            .unwrap();
        assert_eq!(
            f.rows(&ingester).await,
            vec![
                ("a".into(), 1, 1.0),
                ("b".into(), 2, 2.0),
                ("a".into(), 1, 3.0)
            ]
        );
        // No shutdown: the process "dies" with everything in the WAL only.
    }
    let ingester = f.start();
    assert_eq!(
        f.rows(&ingester).await,
        vec![
            ("a".into(), 1, 1.0),
            ("b".into(), 2, 2.0),
            ("a".into(), 1, 3.0)
        ],
        "WAL replay restores every acknowledged write in order"
    );
}

#[tokio::test]
async fn persist_writes_sorted_deduplicated_parquet_and_registers_it() {
    let f = Fixture::new().await;
    let ingester = f.start();
    ingester
        .write(f.write(&["b", "a"], &[2, 1], &[2.0, 1.0]), Durability::Sync)
        .await
        .unwrap();
    ingester
        .write(f.write(&["a"], &[1], &[9.0]), Durability::NoSync)
        .await
        .unwrap();
    ingester.persist_all().await;
    assert_eq!(ingester.persist_count(), 1);
    assert!(
        f.rows(&ingester).await.is_empty(),
        "persisted rows leave the buffer"
    );

    let files = f.catalog.parquet_files(f.table).await.unwrap();
    assert_eq!(files.len(), 1);
    let file = &files[0].params;
    assert_eq!((file.row_count, file.min_time, file.max_time), (2, 1, 2));
    assert!(
        file.max_sequence_number > 0,
        "the WAL sequence of the newest write"
    );

    let path = object_store::path::Path::from(file.object_path());
    let bytes = f.store.get(&path).await.unwrap().bytes().await.unwrap();
    assert_eq!(bytes.len() as i64, file.file_size_bytes);
    let reader =
        parquet::arrow::arrow_reader::ParquetRecordBatchReader::try_new(bytes, 1024).unwrap();
    let rows: Vec<_> = reader
        .map(|b| rows_of(&b.unwrap()))
        .collect::<Vec<_>>()
        .concat();
    assert_eq!(
        rows,
        vec![("a".into(), 1, 9.0), ("b".into(), 2, 2.0)],
        "sorted by key, later write won"
    );
}

#[tokio::test]
async fn shutdown_persists_everything_and_leaves_nothing_to_replay() {
    let f = Fixture::new().await;
    let ingester = f.start();
    ingester
        .write(f.write(&["a"], &[1], &[1.0]), Durability::Sync)
        .await
        .unwrap();
    ingester.shutdown().await;
    assert!(matches!(
        ingester
            .write(f.write(&["a"], &[2], &[1.0]), Durability::Sync)
            .await,
        Err(ferrite_ingester::api::WriteError::ShuttingDown)
    ));
    drop(ingester);
    assert_eq!(f.catalog.parquet_files(f.table).await.unwrap().len(), 1);
    let restarted = f.start();
    assert!(
        f.rows(&restarted).await.is_empty(),
        "WAL segments of persisted data are gone"
    );
    let objects: Vec<_> = f.store.list(None).try_collect().await.unwrap();
    assert_eq!(objects.len(), 1);
}

#[tokio::test]
async fn queries_filter_by_time_and_fill_missing_columns_with_nulls() {
    let f = Fixture::new().await;
    let ingester = f.start();
    ingester
        .write(
            f.write(&["a", "a", "a"], &[10, 20, 30], &[1.0, 2.0, 3.0]),
            Durability::Sync,
        )
        .await
        .unwrap();
    let mut fields = schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect::<Vec<_>>();
    fields.push(ColumnType::I64.arrow_field("extra"));
    let response = ingester
        .query(QueryRequest {
            database_id: f.db,
            table_id: f.table,
            schema: Arc::new(Schema::new(fields)),
            time_range: Some((15, 30)),
            tags: Vec::new(),
        })
        .await
        .unwrap();
    assert_eq!(response.partitions.len(), 1);
    let p = &response.partitions[0];
    assert_eq!((p.min_time, p.max_time), (20, 20));
    let b = &p.batches[0];
    assert_eq!(rows_of(b), vec![("a".into(), 20, 2.0)]);
    assert_eq!(b.column_by_name("extra").unwrap().null_count(), 1);
}

#[tokio::test]
async fn many_concurrent_sync_writes_are_all_replayed() {
    let f = Fixture::new().await;
    {
        let ingester = f.start();
        let mut tasks = Vec::new();
        for i in 0..50 {
            let ingester = Arc::clone(&ingester);
            let w = f.write(&["h"], &[i], &[i as f64]);
            tasks.push(tokio::spawn(async move {
                ingester.write(w, Durability::Sync).await
            }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
    }
    let ingester = f.start();
    let mut times: Vec<i64> = f.rows(&ingester).await.into_iter().map(|r| r.1).collect();
    times.sort();
    assert_eq!(times, (0..50).collect::<Vec<_>>());
}

/// A partition without writes is sorted and deduplicated once, in the background, and then
/// handed out marked deduplicated; the next write makes the ingester hand out the batches as
/// they are again, the new row among them.
#[tokio::test]
async fn quiet_partitions_are_deduplicated_once_for_queries() {
    let f = Fixture::new().await;
    let mut config = f.config();
    config.query_cache_quiet = Duration::ZERO;
    let ingester = Ingester::start(config, Arc::clone(&f.catalog), Arc::clone(&f.store)).unwrap();
    let write = |hosts: &[&str], times: &[i64], usage: &[f64]| {
        let request = f.write(hosts, times, usage);
        let ingester = Arc::clone(&ingester);
        async move { ingester.write(request, Durability::Sync).await.unwrap() }
    };
    write(&["b", "a", "b"], &[20, 10, 20], &[1.0, 2.0, 3.0]).await;
    write(&["a"], &[10], &[4.0]).await;
    let query = |time_range| {
        ingester.query(QueryRequest {
            database_id: f.db,
            table_id: f.table,
            schema: schema(),
            time_range,
            tags: Vec::new(),
        })
    };
    // The first query finds the partition quiet and starts deduplicating it.
    let first = query(None).await.unwrap();
    assert!(!first.partitions[0].deduplicated);
    assert_eq!(
        first.partitions[0]
            .batches
            .iter()
            .map(|b| b.num_rows())
            .sum::<usize>(),
        4
    );
    let deduplicated = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let r = query(None).await.unwrap();
            if r.partitions[0].deduplicated {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the partition is deduplicated in the background");
    let rows: Vec<_> = deduplicated.partitions[0]
        .batches
        .iter()
        .flat_map(rows_of)
        .collect();
    // Ordered by time, the last write of each key kept.
    assert_eq!(rows, vec![("a".into(), 10, 4.0), ("b".into(), 20, 3.0)]);
    // Time ranges apply to the deduplicated rows too.
    let later = query(Some((15, 30))).await.unwrap();
    assert!(later.partitions[0].deduplicated);
    assert_eq!(
        later.partitions[0]
            .batches
            .iter()
            .flat_map(rows_of)
            .collect::<Vec<_>>(),
        vec![("b".into(), 20, 3.0)]
    );
    assert_eq!(
        (later.partitions[0].min_time, later.partitions[0].max_time),
        (20, 20)
    );

    write(&["c"], &[5], &[5.0]).await;
    let after = query(None).await.unwrap();
    assert!(
        !after.partitions[0].deduplicated,
        "a write makes the copy stale"
    );
    assert_eq!(
        after.partitions[0]
            .batches
            .iter()
            .map(|b| b.num_rows())
            .sum::<usize>(),
        5
    );
}
