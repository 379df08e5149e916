//! The `system` schema: the cluster's state as SQL tables, in every database's session.
//!
//! ```text
//!  SELECT … FROM system.<table>    (admin token only; see QueryEngine::query)
//!    queries        ◄── this querier's QueryLog + every peer querier's (Flight DoAction)
//!    tables, partitions, parquet_files ◄── catalog: databases ─► tables ─► partitions, files
//!    ingesters      ◄── IngesterQuery::status of every ingester the querier reads from
//!    compactor      ◄── catalog: the compactor lease + skipped partitions
//!    tokens         ◄── catalog: tokens, never their secret or hash
//! ```
//!
//! Every table is read when a query scans it, so it is current at that moment; nothing is
//! cached. The catalog-backed tables list every database (not only the session's): they
//! describe the cluster, which is why only the admin may read them.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, Int64Builder, RecordBatch, StringBuilder,
    TimestampNanosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use async_trait::async_trait;
use datafusion::catalog::{SchemaProvider, Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;
use ferrite_catalog::{Catalog, ParquetFile, Partition, Permission, Resource, TokenRecord};
use ferrite_ingester::api::IngesterQuery;
use ferrite_model::cache::{CacheKind, CacheSpec};
use ferrite_model::{DatabaseId, TableSchema};
use futures::future::try_join_all;

use crate::cluster::QuerierCluster;
use crate::error::QueryError;
use crate::query_log::QueryLog;

/// The schema name, next to the user tables' `iox`.
pub const SYSTEM_SCHEMA: &str = "system";

/// The catalog lease the active compactor holds (`ferrite_compactor::LEASE`).
const COMPACTOR_LEASE: &str = "compactor";

/// What the system tables read.
#[derive(Debug, Clone)]
pub(crate) struct SystemSources {
    pub(crate) catalog: Arc<dyn Catalog>,
    pub(crate) ingesters: Arc<[Arc<dyn IngesterQuery>]>,
    pub(crate) log: Arc<QueryLog>,
    pub(crate) cluster: Arc<QuerierCluster>,
}

/// One system table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Queries,
    Tables,
    Partitions,
    ParquetFiles,
    Ingesters,
    Compactor,
    Tokens,
    LastCaches,
    DistinctCaches,
}

const KINDS: [Kind; 9] = [
    Kind::Queries,
    Kind::Tables,
    Kind::Partitions,
    Kind::ParquetFiles,
    Kind::Ingesters,
    Kind::Compactor,
    Kind::Tokens,
    Kind::LastCaches,
    Kind::DistinctCaches,
];

fn timestamp() -> DataType {
    DataType::Timestamp(TimeUnit::Nanosecond, None)
}

fn utf8(name: &str) -> Field {
    Field::new(name, DataType::Utf8, false)
}

fn int64(name: &str) -> Field {
    Field::new(name, DataType::Int64, false)
}

/// The schema of `system.queries`.
pub(crate) fn queries_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        utf8("query_id"),
        utf8("query_text"),
        utf8("database_name"),
        utf8("protocol"),
        Field::new("start_time", timestamp(), false),
        Field::new("duration_seconds", DataType::Float64, false),
        int64("rows"),
        int64("peak_memory_bytes"),
        utf8("status"),
        Field::new("error", DataType::Utf8, true),
        utf8("querier"),
    ]))
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Self::Queries => "queries",
            Self::Tables => "tables",
            Self::Partitions => "partitions",
            Self::ParquetFiles => "parquet_files",
            Self::Ingesters => "ingesters",
            Self::Compactor => "compactor",
            Self::Tokens => "tokens",
            Self::LastCaches => "last_caches",
            Self::DistinctCaches => "distinct_caches",
        }
    }

    fn schema(self) -> SchemaRef {
        let fields = match self {
            Self::Queries => return queries_schema(),
            Self::Tables => vec![
                utf8("database_name"),
                utf8("table_name"),
                int64("column_count"),
                int64("partitions"),
                int64("files"),
                int64("rows"),
                int64("bytes"),
            ],
            Self::Partitions => vec![
                utf8("database_name"),
                utf8("table_name"),
                int64("partition_id"),
                utf8("partition_key"),
                int64("level"),
                int64("files"),
                int64("rows"),
                int64("bytes"),
                Field::new("min_time", timestamp(), true),
                Field::new("max_time", timestamp(), true),
                Field::new("skipped", DataType::Boolean, false),
            ],
            Self::ParquetFiles => vec![
                utf8("database_name"),
                utf8("table_name"),
                int64("partition_id"),
                utf8("partition_key"),
                int64("file_id"),
                utf8("path"),
                int64("level"),
                int64("rows"),
                int64("bytes"),
                Field::new("min_time", timestamp(), false),
                Field::new("max_time", timestamp(), false),
            ],
            Self::Ingesters => vec![
                utf8("address"),
                Field::new("healthy", DataType::Boolean, false),
                Field::new("error", DataType::Utf8, true),
                Field::new("buffered_bytes", DataType::Int64, true),
                Field::new("buffered_rows", DataType::Int64, true),
            ],
            Self::Compactor => vec![
                Field::new("holder", DataType::Utf8, true),
                Field::new("lease_expires_at", timestamp(), true),
                int64("skipped_partitions"),
            ],
            Self::Tokens => vec![
                utf8("token_id"),
                utf8("description"),
                utf8("permissions"),
                Field::new("created_at", timestamp(), false),
                Field::new("expires_at", timestamp(), true),
            ],
            Self::LastCaches => vec![
                utf8("database_name"),
                utf8("table_name"),
                utf8("name"),
                utf8("key_column_names"),
                utf8("value_column_names"),
                int64("count"),
                int64("ttl_seconds"),
            ],
            Self::DistinctCaches => vec![
                utf8("database_name"),
                utf8("table_name"),
                utf8("name"),
                utf8("column_names"),
                int64("max_cardinality"),
                int64("max_age_seconds"),
            ],
        };
        Arc::new(Schema::new(fields))
    }
}

/// The `system` schema of one query's session.
#[derive(Debug)]
pub(crate) struct SystemSchema {
    sources: SystemSources,
    /// Whether listings (`information_schema`, `SHOW TABLES`) show the tables: only to
    /// those who may read them. They resolve by name either way, so a query naming one
    /// gets a permission error rather than "not found".
    listed: bool,
}

impl SystemSchema {
    pub(crate) fn new(sources: SystemSources, listed: bool) -> Self {
        Self { sources, listed }
    }
}

#[async_trait]
impl SchemaProvider for SystemSchema {
    fn table_names(&self) -> Vec<String> {
        if !self.listed {
            return Vec::new();
        }
        KINDS.iter().map(|k| k.name().to_string()).collect()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        Ok(KINDS.iter().find(|k| k.name() == name).map(|&kind| {
            Arc::new(SystemTable {
                kind,
                schema: kind.schema(),
                sources: self.sources.clone(),
            }) as Arc<dyn TableProvider>
        }))
    }

    fn table_exist(&self, name: &str) -> bool {
        KINDS.iter().any(|k| k.name() == name)
    }
}

/// One system table: read in full when scanned.
#[derive(Debug)]
struct SystemTable {
    kind: Kind,
    schema: SchemaRef,
    sources: SystemSources,
}

#[async_trait]
impl TableProvider for SystemTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let batch = self
            .read()
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let exec = MemorySourceConfig::try_new_exec(
            &[vec![batch]],
            Arc::clone(&self.schema),
            projection.cloned(),
        )?;
        Ok(exec)
    }
}

impl SystemTable {
    async fn read(&self) -> Result<RecordBatch, QueryError> {
        let s = &self.sources;
        let columns = match self.kind {
            Kind::Queries => return s.cluster.queries(&s.log).await,
            Kind::Tables => tables(&CatalogView::read(&*s.catalog).await?),
            Kind::Partitions => {
                partitions(&*s.catalog, &CatalogView::read(&*s.catalog).await?).await?
            }
            Kind::ParquetFiles => parquet_files(&CatalogView::read(&*s.catalog).await?),
            Kind::Ingesters => ingesters(&s.ingesters).await,
            Kind::Compactor => compactor(&*s.catalog).await?,
            Kind::Tokens => tokens(&*s.catalog).await?,
            Kind::LastCaches => caches(&*s.catalog, CacheKind::Last).await?,
            Kind::DistinctCaches => caches(&*s.catalog, CacheKind::Distinct).await?,
        };
        RecordBatch::try_new(Arc::clone(&self.schema), columns)
            .map_err(|e| QueryError::Internal(format!("building system.{}: {e}", self.kind.name())))
    }
}

/// One table of the catalog with what the system tables show of it.
struct TableView {
    database: String,
    table: TableSchema,
    partitions: Vec<Partition>,
    files: Vec<ParquetFile>,
}

/// Every live table of every database, with its partitions and live files.
struct CatalogView {
    tables: Vec<TableView>,
}

impl CatalogView {
    async fn read(catalog: &dyn Catalog) -> Result<Self, QueryError> {
        let databases = catalog.list_databases().await?;
        let schemas =
            try_join_all(databases.iter().map(|db| catalog.database_schema(db.id))).await?;
        let tables: Vec<(String, TableSchema)> = schemas
            .into_iter()
            .flat_map(|schema| {
                let name = schema.name.clone();
                schema.tables.into_values().map(move |t| (name.clone(), t))
            })
            .collect();
        let read = tables.into_iter().map(|(database, table)| async move {
            let (partitions, files) = futures::try_join!(
                catalog.table_partitions(table.id),
                catalog.parquet_files(table.id)
            )?;
            Ok::<_, QueryError>(TableView {
                database,
                table,
                partitions,
                files,
            })
        });
        Ok(Self {
            tables: try_join_all(read).await?,
        })
    }
}

/// Files, rows and bytes of some files.
#[derive(Debug, Default, Clone, Copy)]
struct Totals {
    files: i64,
    rows: i64,
    bytes: i64,
    level: i64,
    min_time: Option<i64>,
    max_time: Option<i64>,
}

impl Totals {
    fn add(&mut self, f: &ParquetFile) {
        self.files += 1;
        self.rows += f.params.row_count;
        self.bytes += f.params.file_size_bytes;
        self.level = self.level.max(i64::from(f.params.compaction_level));
        self.min_time = Some(
            self.min_time
                .map_or(f.params.min_time, |t| t.min(f.params.min_time)),
        );
        self.max_time = Some(
            self.max_time
                .map_or(f.params.max_time, |t| t.max(f.params.max_time)),
        );
    }
}

fn tables(view: &CatalogView) -> Vec<ArrayRef> {
    let mut database = StringBuilder::new();
    let mut table = StringBuilder::new();
    let mut column_count = Int64Builder::new();
    let mut partitions = Int64Builder::new();
    let mut files = Int64Builder::new();
    let mut rows = Int64Builder::new();
    let mut bytes = Int64Builder::new();
    for t in &view.tables {
        let mut totals = Totals::default();
        t.files.iter().for_each(|f| totals.add(f));
        database.append_value(&t.database);
        table.append_value(&t.table.name);
        column_count.append_value(t.table.columns.len() as i64);
        partitions.append_value(t.partitions.len() as i64);
        files.append_value(totals.files);
        rows.append_value(totals.rows);
        bytes.append_value(totals.bytes);
    }
    vec![
        Arc::new(database.finish()),
        Arc::new(table.finish()),
        Arc::new(column_count.finish()),
        Arc::new(partitions.finish()),
        Arc::new(files.finish()),
        Arc::new(rows.finish()),
        Arc::new(bytes.finish()),
    ]
}

async fn partitions(
    catalog: &dyn Catalog,
    view: &CatalogView,
) -> Result<Vec<ArrayRef>, QueryError> {
    let skipped: std::collections::HashSet<i64> = catalog
        .partition_summaries()
        .await?
        .into_iter()
        .filter(|s| s.skipped.is_some())
        .map(|s| s.partition.id.get())
        .collect();
    let mut database = StringBuilder::new();
    let mut table = StringBuilder::new();
    let mut partition_id = Int64Builder::new();
    let mut partition_key = StringBuilder::new();
    let mut level = Int64Builder::new();
    let mut files = Int64Builder::new();
    let mut rows = Int64Builder::new();
    let mut bytes = Int64Builder::new();
    let mut min_time = TimestampNanosecondBuilder::new();
    let mut max_time = TimestampNanosecondBuilder::new();
    let mut is_skipped = BooleanBuilder::new();
    for t in &view.tables {
        let mut per_partition: HashMap<i64, Totals> = HashMap::new();
        for f in &t.files {
            per_partition
                .entry(f.params.partition_id.get())
                .or_default()
                .add(f);
        }
        for p in &t.partitions {
            let id = p.id.get();
            let totals = per_partition.get(&id).copied().unwrap_or_default();
            database.append_value(&t.database);
            table.append_value(&t.table.name);
            partition_id.append_value(id);
            partition_key.append_value(&p.key);
            level.append_value(totals.level);
            files.append_value(totals.files);
            rows.append_value(totals.rows);
            bytes.append_value(totals.bytes);
            min_time.append_option(totals.min_time);
            max_time.append_option(totals.max_time);
            is_skipped.append_value(skipped.contains(&id));
        }
    }
    Ok(vec![
        Arc::new(database.finish()),
        Arc::new(table.finish()),
        Arc::new(partition_id.finish()),
        Arc::new(partition_key.finish()),
        Arc::new(level.finish()),
        Arc::new(files.finish()),
        Arc::new(rows.finish()),
        Arc::new(bytes.finish()),
        Arc::new(min_time.finish()),
        Arc::new(max_time.finish()),
        Arc::new(is_skipped.finish()),
    ])
}

fn parquet_files(view: &CatalogView) -> Vec<ArrayRef> {
    let mut database = StringBuilder::new();
    let mut table = StringBuilder::new();
    let mut partition_id = Int64Builder::new();
    let mut partition_key = StringBuilder::new();
    let mut file_id = Int64Builder::new();
    let mut path = StringBuilder::new();
    let mut level = Int64Builder::new();
    let mut rows = Int64Builder::new();
    let mut bytes = Int64Builder::new();
    let mut min_time = TimestampNanosecondBuilder::new();
    let mut max_time = TimestampNanosecondBuilder::new();
    for t in &view.tables {
        let keys: HashMap<i64, &str> = t
            .partitions
            .iter()
            .map(|p| (p.id.get(), p.key.as_str()))
            .collect();
        for f in &t.files {
            let p = &f.params;
            database.append_value(&t.database);
            table.append_value(&t.table.name);
            partition_id.append_value(p.partition_id.get());
            partition_key.append_value(keys.get(&p.partition_id.get()).copied().unwrap_or(""));
            file_id.append_value(f.id.get());
            path.append_value(p.object_path());
            level.append_value(i64::from(p.compaction_level));
            rows.append_value(p.row_count);
            bytes.append_value(p.file_size_bytes);
            min_time.append_value(p.min_time);
            max_time.append_value(p.max_time);
        }
    }
    vec![
        Arc::new(database.finish()),
        Arc::new(table.finish()),
        Arc::new(partition_id.finish()),
        Arc::new(partition_key.finish()),
        Arc::new(file_id.finish()),
        Arc::new(path.finish()),
        Arc::new(level.finish()),
        Arc::new(rows.finish()),
        Arc::new(bytes.finish()),
        Arc::new(min_time.finish()),
        Arc::new(max_time.finish()),
    ]
}

async fn ingesters(clients: &[Arc<dyn IngesterQuery>]) -> Vec<ArrayRef> {
    let answers = futures::future::join_all(clients.iter().map(|c| c.status())).await;
    let mut address = StringBuilder::new();
    let mut healthy = BooleanBuilder::new();
    let mut error = StringBuilder::new();
    let mut buffered_bytes = Int64Builder::new();
    let mut buffered_rows = Int64Builder::new();
    for status in answers.into_iter().flatten() {
        address.append_value(&status.address);
        match status.buffered {
            Ok(stats) => {
                healthy.append_value(true);
                error.append_null();
                buffered_bytes.append_value(stats.bytes as i64);
                buffered_rows.append_value(stats.rows as i64);
            }
            Err(e) => {
                healthy.append_value(false);
                error.append_value(e);
                buffered_bytes.append_null();
                buffered_rows.append_null();
            }
        }
    }
    vec![
        Arc::new(address.finish()),
        Arc::new(healthy.finish()),
        Arc::new(error.finish()),
        Arc::new(buffered_bytes.finish()),
        Arc::new(buffered_rows.finish()),
    ]
}

async fn compactor(catalog: &dyn Catalog) -> Result<Vec<ArrayRef>, QueryError> {
    let (lease, summaries) = futures::try_join!(
        catalog.lease(COMPACTOR_LEASE),
        catalog.partition_summaries()
    )?;
    // An expired lease (or one given up, which expires it at once) has no holder. Both times
    // are the catalog's clock; comparing with ours is good enough for a status display.
    let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX);
    let held = lease.filter(|l| l.expires_at > now);
    let skipped = summaries.iter().filter(|s| s.skipped.is_some()).count() as i64;
    let mut holder = StringBuilder::new();
    let mut expires = TimestampNanosecondBuilder::new();
    holder.append_option(held.as_ref().map(|l| l.holder.as_str()));
    expires.append_option(held.as_ref().map(|l| l.expires_at));
    let mut skipped_partitions = Int64Builder::new();
    skipped_partitions.append_value(skipped);
    Ok(vec![
        Arc::new(holder.finish()),
        Arc::new(expires.finish()),
        Arc::new(skipped_partitions.finish()),
    ])
}

/// A permission as people write it: `read:<database>`, `write:*`.
fn permission_text(p: &Permission, names: &HashMap<DatabaseId, String>) -> String {
    let resource = match p.resource {
        Resource::AllDatabases => "*".to_string(),
        Resource::Database(id) => names
            .get(&id)
            .cloned()
            // A database deleted since the token was made.
            .unwrap_or_else(|| format!("#{}", id.get())),
    };
    format!("{}:{resource}", p.action)
}

async fn tokens(catalog: &dyn Catalog) -> Result<Vec<ArrayRef>, QueryError> {
    let (tokens, databases) = futures::try_join!(catalog.list_tokens(), catalog.list_databases())?;
    let names: HashMap<DatabaseId, String> =
        databases.into_iter().map(|d| (d.id, d.name)).collect();
    let mut token_id = StringBuilder::new();
    let mut description = StringBuilder::new();
    let mut permissions = StringBuilder::new();
    let mut created_at = TimestampNanosecondBuilder::new();
    let mut expires_at = TimestampNanosecondBuilder::new();
    // Revoked tokens open nothing any more; they stay in the catalog for the record only.
    let live = tokens
        .iter()
        .filter(|t: &&TokenRecord| t.revoked_at.is_none());
    for t in live {
        token_id.append_value(t.id.to_string());
        description.append_value(&t.description);
        let text: Vec<String> = t
            .permissions
            .iter()
            .map(|p| permission_text(p, &names))
            .collect();
        permissions.append_value(text.join(","));
        created_at.append_value(t.created_at);
        expires_at.append_option(t.expires_at);
    }
    Ok(vec![
        Arc::new(token_id.finish()),
        Arc::new(description.finish()),
        Arc::new(permissions.finish()),
        Arc::new(created_at.finish()),
        Arc::new(expires_at.finish()),
    ])
}

/// `system.last_caches` or `system.distinct_caches`: every cache of that kind, column names
/// comma-separated, durations in seconds.
async fn caches(catalog: &dyn Catalog, kind: CacheKind) -> Result<Vec<ArrayRef>, QueryError> {
    let (caches, databases) = futures::try_join!(catalog.list_caches(), catalog.list_databases())?;
    let names: HashMap<DatabaseId, String> =
        databases.into_iter().map(|d| (d.id, d.name)).collect();
    let mut database = StringBuilder::new();
    let mut table = StringBuilder::new();
    let mut name = StringBuilder::new();
    let mut columns = [StringBuilder::new(), StringBuilder::new()];
    let mut numbers = [Int64Builder::new(), Int64Builder::new()];
    for c in caches.iter().filter(|c| c.spec.kind() == kind) {
        let Some(db) = names.get(&c.database_id) else {
            continue;
        };
        database.append_value(db);
        table.append_value(&c.table);
        name.append_value(&c.name);
        match &c.spec {
            CacheSpec::Last {
                key_columns,
                value_columns,
                count,
                ttl_seconds,
            } => {
                columns[0].append_value(key_columns.join(","));
                let values: Vec<&str> = value_columns.iter().map(|v| v.name.as_str()).collect();
                columns[1].append_value(values.join(","));
                numbers[0].append_value(*count as i64);
                numbers[1].append_value(*ttl_seconds as i64);
            }
            CacheSpec::Distinct {
                columns: names,
                max_cardinality,
                max_age_seconds,
            } => {
                columns[0].append_value(names.join(","));
                numbers[0].append_value(i64::try_from(*max_cardinality).unwrap_or(i64::MAX));
                numbers[1].append_value(*max_age_seconds as i64);
            }
        }
    }
    let [mut first, mut second] = columns;
    let [mut n1, mut n2] = numbers;
    let mut out: Vec<ArrayRef> = vec![
        Arc::new(database.finish()),
        Arc::new(table.finish()),
        Arc::new(name.finish()),
        Arc::new(first.finish()),
    ];
    if kind == CacheKind::Last {
        out.push(Arc::new(second.finish()));
    }
    out.push(Arc::new(n1.finish()));
    out.push(Arc::new(n2.finish()));
    Ok(out)
}

/// `system.queries` rows for `records`, every one run by `querier`.
pub(crate) fn queries_batch(
    records: &[crate::query_log::QueryRecord],
    querier: &str,
) -> Result<RecordBatch, QueryError> {
    let mut query_id = StringBuilder::new();
    let mut query_text = StringBuilder::new();
    let mut database = StringBuilder::new();
    let mut protocol = StringBuilder::new();
    let mut start_time = TimestampNanosecondBuilder::new();
    let mut duration = Float64Builder::new();
    let mut rows = Int64Builder::new();
    let mut peak = Int64Builder::new();
    let mut status = StringBuilder::new();
    let mut error = StringBuilder::new();
    let mut querier_column = StringBuilder::new();
    for r in records {
        query_id.append_value(r.query_id.to_string());
        query_text.append_value(&r.query_text);
        database.append_value(&r.database_name);
        protocol.append_value(&r.protocol);
        start_time.append_value(r.start_time.timestamp_nanos_opt().unwrap_or(i64::MAX));
        duration.append_value(r.duration.as_secs_f64());
        rows.append_value(r.rows as i64);
        peak.append_value(r.peak_memory_bytes as i64);
        status.append_value(r.status.as_str());
        error.append_option(r.error.as_deref());
        querier_column.append_value(querier);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(query_id.finish()),
        Arc::new(query_text.finish()),
        Arc::new(database.finish()),
        Arc::new(protocol.finish()),
        Arc::new(start_time.finish()),
        Arc::new(duration.finish()),
        Arc::new(rows.finish()),
        Arc::new(peak.finish()),
        Arc::new(status.finish()),
        Arc::new(error.finish()),
        Arc::new(querier_column.finish()),
    ];
    RecordBatch::try_new(queries_schema(), columns)
        .map_err(|e| QueryError::Internal(format!("building system.queries: {e}")))
}

/// Whether `plan` reads a table of the `system` schema (in any subquery).
pub(crate) fn reads_system_tables(plan: &datafusion::logical_expr::LogicalPlan) -> bool {
    use datafusion::common::tree_node::TreeNodeRecursion;
    use datafusion::logical_expr::LogicalPlan;
    let mut found = false;
    let _ = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node
            && scan.table_name.schema() == Some(SYSTEM_SCHEMA)
        {
            found = true;
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    found
}
