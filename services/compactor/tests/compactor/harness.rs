//! One in-process stack: catalog, object store, ingester, router, query engine, and
//! compactors built on demand with any configuration.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{AsArray, RecordBatch};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use ferrite_catalog::{CatalogRef, ParquetFile, SqlCatalog};
use ferrite_compactor::{Compactor, CompactorConfig};
use ferrite_ingester::api::{IngesterQuery, IngesterWrite};
use ferrite_ingester::{Ingester, IngesterConfig};
use ferrite_lineproto::Precision;
use ferrite_querier::{QuerierConfig, QueryEngine, QueryParams};
use ferrite_router::{Router, RouterConfig, WriteBody};
use futures::TryStreamExt;
use object_store::local::LocalFileSystem;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ParquetRecordBatchReaderBuilder};

pub const DB: &str = "lab";

pub struct Stack {
    pub sql: Arc<SqlCatalog>,
    pub catalog: CatalogRef,
    pub store: Arc<dyn ObjectStore>,
    pub ingester: Arc<Ingester>,
    router: Router,
    engine: QueryEngine,
    _dir: tempfile::TempDir,
}

impl Stack {
    pub async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let dsn = format!("sqlite://{}", dir.path().join("catalog.db").display());
        let sql = Arc::new(SqlCatalog::connect(&dsn).await.unwrap());
        let catalog: CatalogRef = Arc::clone(&sql) as CatalogRef;
        let objects = dir.path().join("objects");
        std::fs::create_dir_all(&objects).unwrap();
        let store: Arc<dyn ObjectStore> =
            Arc::new(LocalFileSystem::new_with_prefix(&objects).unwrap());
        let mut config = IngesterConfig::new(dir.path().join("wal"));
        // Persist only when the test says so.
        config.persist_age = Duration::from_secs(3600);
        config.persist_partition_bytes = 1 << 30;
        let ingester = Ingester::start(config, Arc::clone(&catalog), Arc::clone(&store)).unwrap();
        let router = Router::new(
            Arc::clone(&catalog),
            Arc::clone(&ingester) as Arc<dyn IngesterWrite>,
            RouterConfig {
                max_request_bytes: 64 << 20,
            },
        );
        let engine = QueryEngine::new(
            Arc::clone(&catalog),
            vec![Arc::clone(&ingester) as Arc<dyn IngesterQuery>],
            Arc::clone(&store),
            QuerierConfig::default(),
        )
        .unwrap();
        Self {
            sql,
            catalog,
            store,
            ingester,
            router,
            engine,
            _dir: dir,
        }
    }

    /// Write line protocol (ns timestamps) to [`DB`]; every line must be accepted.
    pub async fn write(&self, lines: &str) {
        let outcome = self
            .router
            .write(WriteBody {
                database: DB.into(),
                body: lines.to_string(),
                precision: Precision::Nanosecond,
                accept_partial: false,
                no_sync: true,
            })
            .await
            .unwrap();
        assert_eq!(outcome.rejected, 0, "{:?}", outcome.issues);
    }

    /// Persist everything buffered: one level-0 file per partition written to.
    pub async fn persist(&self) {
        self.ingester.persist_all().await;
    }

    pub async fn query(&self, sql: &str) -> Vec<RecordBatch> {
        let (_, stream) = self
            .engine
            .sql(DB, sql, QueryParams::default())
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        stream.try_collect().await.unwrap()
    }

    /// Every row of a query as `|`-joined cells, nulls empty.
    pub async fn rows(&self, sql: &str) -> Vec<String> {
        rows_of(&self.query(sql).await)
    }

    pub fn compactor(&self, config: CompactorConfig) -> Compactor {
        Compactor::new(config, Arc::clone(&self.catalog), Arc::clone(&self.store)).unwrap()
    }

    /// The live files of every table of [`DB`].
    pub async fn files(&self) -> Vec<ParquetFile> {
        let db = self.catalog.database_by_name(DB).await.unwrap().unwrap();
        let mut files = vec![];
        for t in self.catalog.list_tables(db.id).await.unwrap() {
            files.extend(self.catalog.parquet_files(t.id).await.unwrap());
        }
        files
    }

    /// Paths of every object in the store.
    pub async fn objects(&self) -> BTreeSet<String> {
        self.store
            .list(None)
            .map_ok(|m| m.location.to_string())
            .try_collect()
            .await
            .unwrap()
    }
}

/// A compactor that compacts whatever it finds, at once, and never waits for anything. All
/// share one lease holder name, so a test may swap one for another.
pub fn eager() -> CompactorConfig {
    CompactorConfig {
        holder: "test-compactor".into(),
        interval: Duration::from_millis(50),
        l0_trigger_files: 1,
        cold_after: Duration::ZERO,
        lease_ttl: Duration::from_secs(5),
        ..CompactorConfig::default()
    }
}

pub fn rows_of(batches: &[RecordBatch]) -> Vec<String> {
    let options = FormatOptions::default().with_null("");
    let mut out = vec![];
    for b in batches {
        let formatters: Vec<_> = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap())
            .collect();
        for row in 0..b.num_rows() {
            out.push(
                formatters
                    .iter()
                    .map(|f| f.value(row).to_string())
                    .collect::<Vec<_>>()
                    .join("|"),
            );
        }
    }
    out
}

/// No two level-1/2 files of one partition overlap in time.
pub fn assert_compacted_files_do_not_overlap(files: &[ParquetFile]) {
    let mut by_partition: std::collections::BTreeMap<i64, Vec<&ParquetFile>> = Default::default();
    for f in files.iter().filter(|f| f.params.compaction_level > 0) {
        by_partition
            .entry(f.params.partition_id.get())
            .or_default()
            .push(f);
    }
    for (partition, mut files) in by_partition {
        files.sort_by_key(|f| f.params.min_time);
        for w in files.windows(2) {
            assert!(
                w[0].params.max_time < w[1].params.min_time,
                "partition {partition}: files {} [{}, {}] and {} [{}, {}] overlap",
                w[0].id,
                w[0].params.min_time,
                w[0].params.max_time,
                w[1].id,
                w[1].params.min_time,
                w[1].params.max_time
            );
        }
    }
}

/// Files per compaction level.
pub fn levels(files: &[ParquetFile]) -> [usize; 3] {
    let mut n = [0; 3];
    for f in files {
        n[f.params.compaction_level as usize] += 1;
    }
    n
}

/// Every row group of `file` has a bloom filter per tag in `tags` that admits each value the
/// row group holds: a filter may let a row group through in vain, never skip one a query
/// needs.
pub async fn assert_tag_filters_admit_their_values(
    stack: &Stack,
    file: &ParquetFile,
    tags: &[&str],
) {
    let path = object_store::path::Path::from(file.params.object_path());
    let bytes = stack.store.get(&path).await.unwrap().bytes().await.unwrap();
    let metadata = ArrowReaderMetadata::load(&bytes, Default::default()).unwrap();
    let reader = |groups| {
        ParquetRecordBatchReaderBuilder::new_with_metadata(bytes.clone(), metadata.clone())
            .with_row_groups(groups)
    };
    let columns = metadata.metadata().file_metadata().schema_descr().columns();
    for g in 0..metadata.metadata().num_row_groups() {
        let group = reader(vec![g]);
        let rows: Vec<RecordBatch> = reader(vec![g])
            .build()
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        for tag in tags {
            let index = columns.iter().position(|c| c.name() == *tag).unwrap();
            let filter = group
                .get_row_group_column_bloom_filter(g, index)
                .unwrap()
                .unwrap_or_else(|| panic!("file {}, row group {g}: no filter on {tag}", file.id));
            let values = rows.iter().flat_map(|b| {
                b.column_by_name(tag)
                    .unwrap()
                    .as_string::<i32>()
                    .iter()
                    .flatten()
            });
            for value in values {
                assert!(
                    filter.check(value),
                    "file {}, row group {g}: the {tag} filter rules out {value}, which it holds",
                    file.id
                );
            }
        }
    }
}
