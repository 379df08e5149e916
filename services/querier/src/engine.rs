//! The query engine: one DataFusion session per query over a snapshot of the database's
//! tables.
//!
//! ```text
//!  sql(db, query, params)
//!    catalog: database_by_name ─► database_schema ─► SessionContext (public.iox.<table>)
//!    parse + plan (+ bind $params)                  ◄── errors here are the client's (400)
//!      └─ a database, table or column not found: catalog.refresh() ─► newer? plan again
//!    physical plan: QuerierTable::scan per table    ◄── ingesters, then catalog files
//!    execute: a stream of RecordBatches
//! ```
//!
//! Execution: DataFusion is CPU heavy. Its streams are ordinary futures and run wherever
//! they are polled; by default that is the caller's tokio runtime, which DataFusion shares
//! cooperatively (its operators yield between batches). With
//! [`QuerierConfig::execution_threads`] set, plans execute on a dedicated multi-threaded
//! runtime instead and batches cross to the caller through a small channel, so a heavy query
//! cannot starve the I/O threads that serve writes and health checks.

use std::num::NonZeroUsize;
use std::ops::ControlFlow;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::catalog::{CatalogProviderList, MemoryCatalogProviderList};
use datafusion::common::TableReference;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::SessionStateDefaults;
use datafusion::execution::TaskContext;
use datafusion::execution::context::{SQLOptions, SessionContext};
use datafusion::execution::memory_pool::{
    GreedyMemoryPool, MemoryConsumer, MemoryReservation, TrackConsumersPool,
};
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::session_state::{SessionState, SessionStateBuilder};
use datafusion::physical_plan::execute_stream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::prelude::{DataFrame, SessionConfig};
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::{Expr as SqlExpr, Value as SqlValue, visit_expressions_mut};
use ferrite_auth::Caller;
use ferrite_catalog::Catalog;
use ferrite_ingester::api::IngesterQuery;
use ferrite_model::DatabaseSchema;
use ferrite_model::cache::{CacheDefinition, CacheKind};
use futures::{SinkExt, Stream, StreamExt};
use object_store::ObjectStore;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tracing::Instrument;

use crate::cache_table::CacheFunction;
use crate::cluster::QuerierCluster;
use crate::error::{QueryError, Result, Stage};
use crate::file_cache::{DiskCacheConfig, FileCache};
use crate::file_list::FileLists;
use crate::params::QueryParams;
use crate::plan_cache::{PlanCache, PlanKey};
use crate::query_log::{DEFAULT_QUERY_LOG_CAPACITY, Protocol, QueryLog, Tracker};
use crate::system::{SYSTEM_SCHEMA, SystemSchema, SystemSources, reads_system_tables};
use crate::table::QuerierTable;

/// Catalog name user tables live in (the IOx convention clients rely on).
pub const CATALOG_NAME: &str = "public";
/// Schema name user tables live in.
pub const SCHEMA_NAME: &str = "iox";
/// The URL the object store is registered under in DataFusion; file paths are relative to it.
pub const OBJECT_STORE_URL: &str = "ferrite://store/";

/// Default size of the in-memory cache of Parquet files.
pub const DEFAULT_FILE_CACHE_BYTES: usize = 512 << 20;

/// Tuning of the query engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuerierConfig {
    /// Partitions DataFusion splits a plan into (parallelism). Default: available cores.
    pub target_partitions: usize,
    /// Rows per record batch. Default 8192.
    pub batch_size: usize,
    /// Worker threads of a dedicated query-execution runtime; `None` executes on the caller's
    /// runtime.
    pub execution_threads: Option<usize>,
    /// Queries that may run at once; more wait for a slot.
    pub max_concurrent_queries: usize,
    /// How long a query waits for a slot before it is refused as "too many queries"
    /// (retryable). Zero refuses at once.
    pub queue_timeout: Duration,
    /// Memory the running queries' operators (sorts, aggregations, joins, dedup) may hold
    /// together; a query that needs more than what is left fails. `None`: unbounded.
    pub memory_limit: Option<usize>,
    /// Longest a query may take from planning to its last batch. `None`: unbounded.
    pub query_timeout: Option<Duration>,
    /// Finished queries the query log (`system.queries`) keeps, besides the running ones.
    pub query_log_capacity: usize,
    /// Bytes of Parquet files kept whole in memory for later queries; 0 turns it off.
    pub file_cache_bytes: usize,
    /// More of them on the local disk, read into memory when used again (needs the memory
    /// cache). `None`: no disk tier.
    pub file_cache_disk: Option<DiskCacheConfig>,
}

impl Default for QuerierConfig {
    fn default() -> Self {
        Self {
            target_partitions: std::thread::available_parallelism().map_or(1, |n| n.get()),
            batch_size: 8192,
            execution_threads: None,
            max_concurrent_queries: 16,
            queue_timeout: Duration::from_secs(10),
            memory_limit: None,
            query_timeout: None,
            query_log_capacity: DEFAULT_QUERY_LOG_CAPACITY,
            file_cache_bytes: DEFAULT_FILE_CACHE_BYTES,
            file_cache_disk: None,
        }
    }
}

/// Runs SQL over the catalog's Parquet files and the ingesters' unpersisted rows.
#[derive(Debug)]
pub struct QueryEngine {
    catalog: Arc<dyn Catalog>,
    ingesters: Arc<[Arc<dyn IngesterQuery>]>,
    /// Tables' file lists, reused across queries while they cannot have changed.
    file_lists: Arc<FileLists>,
    /// Shared by every query: object store registry, memory pool, parquet metadata cache.
    runtime: Arc<RuntimeEnv>,
    store_url: ObjectStoreUrl,
    config: QuerierConfig,
    executor: Option<DedicatedRuntime>,
    /// One permit per running query; a query holds its permit until its stream ends.
    slots: Arc<Semaphore>,
    /// Running and recent queries (`system.queries`).
    log: Arc<QueryLog>,
    /// This querier's name and peers (`system.queries` across the cluster).
    cluster: Arc<QuerierCluster>,
    /// Plans made for Flight `GetFlightInfo`, waiting for their `DoGet`.
    plans: PlanCache,
    /// Every database's cache definitions, with the catalog version they were listed at.
    cache_definitions: parking_lot::Mutex<Option<(i64, Arc<Vec<CacheDefinition>>)>>,
    /// What every query's session starts from: configuration, functions and rules, on the
    /// engine's runtime, with no tables. Cloned per query, which costs a fraction of
    /// registering every function again.
    session_template: SessionState,
}

/// A query from a client, as [`QueryEngine::query`] takes it.
#[derive(Debug, Clone)]
pub struct QueryRequest<'a> {
    /// Who asks: the database's read permission is checked, and the admin's for `system.*`.
    pub caller: &'a Caller,
    /// The wire it came in on.
    pub protocol: Protocol,
    /// The database to run against.
    pub database: &'a str,
    /// The SQL text.
    pub sql: &'a str,
    /// Values of its `$name` placeholders.
    pub params: QueryParams,
}

/// A query whose results are streaming.
pub struct RunningQuery {
    /// The schema of every batch.
    pub schema: SchemaRef,
    /// The results; rows are counted as they are read.
    pub stream: SendableRecordBatchStream,
    /// Its entry in the query log: the caller adds the bytes it sends and says when the
    /// client has everything ([`Tracker::finish`]); dropped unfinished, it was cancelled.
    pub tracker: Tracker,
}

impl QueryEngine {
    /// An engine reading files from `object_store` and unpersisted rows from every one of
    /// `ingesters`.
    pub fn new(
        catalog: Arc<dyn Catalog>,
        ingesters: Vec<Arc<dyn IngesterQuery>>,
        object_store: Arc<dyn ObjectStore>,
        config: QuerierConfig,
    ) -> Result<Self> {
        let store_url = ObjectStoreUrl::parse(OBJECT_STORE_URL)
            .map_err(|e| QueryError::Internal(format!("object store url: {e}")))?;
        let mut runtime = RuntimeEnvBuilder::new();
        if let Some(limit) = config.memory_limit {
            // Greedy: first come, first served, as IOx does; the tracking wrapper names the
            // largest consumers in the error.
            let pool = GreedyMemoryPool::new(limit);
            let tracked = TrackConsumersPool::new(pool, NonZeroUsize::new(3).expect("3 > 0"));
            runtime = runtime.with_memory_pool(Arc::new(tracked));
        }
        let runtime = runtime
            .build_arc()
            .map_err(|e| QueryError::Internal(format!("datafusion runtime: {e}")))?;
        let object_store: Arc<dyn ObjectStore> = match config.file_cache_bytes {
            0 => object_store,
            bytes => Arc::new(
                FileCache::with_disk(object_store, bytes as u64, config.file_cache_disk.as_ref())
                    .map_err(|e| {
                    let dir = config.file_cache_disk.as_ref().map(|d| d.dir.display());
                    QueryError::Internal(format!(
                        "cannot open the disk file cache in {}: {e}",
                        dir.expect("only the disk tier does I/O")
                    ))
                })?,
            ),
        };
        runtime.register_object_store(store_url.as_ref(), object_store);
        let executor = config
            .execution_threads
            .map(DedicatedRuntime::new)
            .transpose()?;
        let slots = Arc::new(Semaphore::new(config.max_concurrent_queries.max(1)));
        let log = QueryLog::new(config.query_log_capacity);
        let session_template = session_template(&config, Arc::clone(&runtime));
        Ok(Self {
            catalog,
            ingesters: ingesters.into(),
            file_lists: Arc::default(),
            runtime,
            store_url,
            config,
            executor,
            slots,
            log,
            cluster: QuerierCluster::new("local"),
            cache_definitions: parking_lot::Mutex::default(),
            plans: PlanCache::default(),
            session_template,
        })
    }

    /// This querier's name and peers, for the server to set.
    pub fn cluster(&self) -> &Arc<QuerierCluster> {
        &self.cluster
    }

    /// The running and recent queries.
    pub fn query_log(&self) -> &Arc<QueryLog> {
        &self.log
    }

    /// Run a client's query: its permissions checked, logged in the query log (and so in
    /// `system.queries` and the query metrics), planned and executed in its `query` span.
    pub async fn query(&self, request: QueryRequest<'_>) -> Result<RunningQuery> {
        let tracker = self.log.start(
            request.protocol,
            request.database,
            request.sql,
            Arc::clone(&self.runtime.memory_pool),
        );
        let span = tracker.span().clone();
        let started = async {
            request
                .caller
                .require(ferrite_catalog::Action::Read, request.database)
                .await?;
            // The engine's runtime, with the pool counting this query's memory on its way
            // to the shared one.
            let runtime = Arc::new(RuntimeEnv {
                memory_pool: tracker.memory_pool(),
                ..(*self.runtime).clone()
            });
            self.run(
                request.database,
                request.sql,
                request.params,
                runtime,
                Some(request.caller),
            )
            .await
        }
        .instrument(span.clone())
        .await;
        match started {
            Ok((schema, stream)) => {
                let tracked = TrackedStream {
                    inner: stream,
                    tracker: tracker.clone(),
                    span,
                };
                Ok(RunningQuery {
                    schema: Arc::clone(&schema),
                    stream: Box::pin(RecordBatchStreamAdapter::new(schema, tracked)),
                    tracker,
                })
            }
            Err(e) => {
                tracker.fail(&e);
                Err(e)
            }
        }
    }

    /// Run `query` against `database` with `params` bound to its `$name` placeholders, with
    /// every permission and outside the query log: for code embedding the engine (tests,
    /// benchmarks). Clients' queries go through [`Self::query`]. The schema is that of
    /// every batch in the stream (also when there are none).
    pub async fn sql(
        &self,
        database: &str,
        query: &str,
        params: QueryParams,
    ) -> Result<(SchemaRef, SendableRecordBatchStream)> {
        self.run(database, query, params, Arc::clone(&self.runtime), None)
            .await
    }

    /// Plan and start `query` under the engine's limits. `caller`, when given, must be the
    /// admin to read `system` tables.
    async fn run(
        &self,
        database: &str,
        query: &str,
        params: QueryParams,
        runtime: Arc<RuntimeEnv>,
        caller: Option<&Caller>,
    ) -> Result<(SchemaRef, SendableRecordBatchStream)> {
        let deadline = self.config.query_timeout.map(|t| (Instant::now() + t, t));
        let slot = self.slot().await?;
        let start = async {
            // Only the admin sees the system tables listed; others may still name one, to
            // be told they may not read it.
            let list_system = caller.is_none_or(Caller::is_admin);
            let planned = self.planned(database, query, &params, list_system);
            let (ctx, df) = match planned {
                Some(planned) => planned,
                None => {
                    self.plan(database, query, params, list_system)
                        .instrument(tracing::info_span!("plan"))
                        .await?
                }
            };
            if let Some(caller) = caller
                && reads_system_tables(df.logical_plan())
            {
                caller.require_admin("reading system tables")?;
            }
            let plan = df
                .create_physical_plan()
                .await
                .map_err(|e| QueryError::from_datafusion(e, Stage::Execution))?;
            let schema = plan.schema();
            // Sessions are planned on the engine's runtime: this query's memory pool goes in
            // here.
            let task_ctx = {
                let state = ctx.state_ref();
                let state = state.read();
                Arc::new(TaskContext::from(&*state).with_runtime(runtime))
            };
            let stream = match &self.executor {
                None => execute_stream(plan, task_ctx)
                    .map_err(|e| QueryError::from_datafusion(e, Stage::Execution))?,
                Some(executor) => executor.execute(plan, task_ctx, Arc::clone(&schema)),
            };
            Ok::<_, QueryError>((schema, stream))
        };
        let (schema, stream) = match deadline {
            None => start.await?,
            Some((at, limit)) => tokio::time::timeout_at(at, start)
                .await
                .map_err(|_| QueryError::Timeout(limit))??,
        };
        let limited = LimitedStream {
            inner: stream,
            deadline: deadline.map(|(at, limit)| (Box::pin(tokio::time::sleep_until(at)), limit)),
            _slot: slot,
        };
        Ok((
            Arc::clone(&schema),
            Box::pin(RecordBatchStreamAdapter::new(schema, limited)),
        ))
    }

    /// A reservation in the query memory pool, for memory a query holds outside DataFusion's
    /// operators (a result collected for an HTTP response).
    pub fn reservation(&self, name: &str) -> MemoryReservation {
        MemoryConsumer::new(name).register(&self.runtime.memory_pool)
    }

    /// Bytes the running queries' operators hold in the memory pool now.
    pub fn memory_reserved(&self) -> usize {
        self.runtime.memory_pool.reserved()
    }

    /// A permit to run one query, waiting up to the queue timeout for one to free up.
    pub(crate) async fn slot(&self) -> Result<OwnedSemaphorePermit> {
        // `timeout` polls the acquisition before its timer, so a zero wait still takes a
        // free slot.
        let acquire = Arc::clone(&self.slots).acquire_owned();
        let _waiting = Waiting::new();
        let permit = tokio::time::timeout(self.config.queue_timeout, acquire)
            .await
            .ok()
            .and_then(Result::ok);
        permit.ok_or(QueryError::TooManyQueries {
            running: self.config.max_concurrent_queries.max(1),
            waited: self.config.queue_timeout,
        })
    }

    /// The schema `query` would return, without running it (Flight's GetFlightInfo), for a
    /// caller who sees the system tables listed or not. The plan is kept a few seconds for
    /// the `DoGet` that runs the query.
    pub async fn sql_schema(
        &self,
        database: &str,
        query: &str,
        params: QueryParams,
        list_system: bool,
    ) -> Result<SchemaRef> {
        let key = PlanKey {
            database: database.to_string(),
            sql: query.to_string(),
            params: params.clone(),
            list_system,
        };
        let version = self.catalog.known_version();
        let (ctx, df) = self.plan(database, query, params, list_system).await?;
        if let Some(version) = version {
            self.plans.put(key, version, ctx, df.clone());
        }
        output_schema(df)
    }

    /// A plan [`Self::sql_schema`] kept for this query, if one is still good.
    fn planned(
        &self,
        database: &str,
        query: &str,
        params: &QueryParams,
        list_system: bool,
    ) -> Option<(SessionContext, DataFrame)> {
        if self.plans.is_empty() {
            return None;
        }
        let key = PlanKey {
            database: database.to_string(),
            sql: query.to_string(),
            params: params.clone(),
            list_system,
        };
        self.plans.take(&key, self.catalog.known_version()?)
    }

    /// Plan `query` without values for its placeholders (a Flight SQL prepared statement):
    /// the result schema and one field per placeholder, named `$1`, `$name`..., typed where
    /// the query's context fixes the type and `Null` where it does not.
    pub async fn prepare(&self, database: &str, query: &str) -> Result<(SchemaRef, SchemaRef)> {
        let (_, df) = self
            .plan_unbound(database, query, QueryParams::new(), true)
            .await?;
        let placeholders = df
            .logical_plan()
            .get_parameter_types()
            .map_err(|e| QueryError::from_datafusion(e, Stage::Planning))?;
        let mut names: Vec<&String> = placeholders.keys().collect();
        // `$1, $2, ..., $10` in number order, then named placeholders by name.
        names.sort_by_key(|name| {
            let number = name.strip_prefix('$').and_then(|n| n.parse::<u64>().ok());
            (number.is_none(), number, (*name).clone())
        });
        let fields: Vec<arrow::datatypes::Field> = names
            .into_iter()
            .map(|name| {
                let data_type = placeholders[name]
                    .clone()
                    .unwrap_or(arrow::datatypes::DataType::Null);
                arrow::datatypes::Field::new(name, data_type, true)
            })
            .collect();
        let parameters = Arc::new(arrow::datatypes::Schema::new(fields));
        // Analysis needs placeholder types; when it cannot run yet, the planner's schema is
        // the best guess the protocol asks for.
        let dataset = output_schema(df.clone()).unwrap_or_else(|_| Arc::clone(df.schema().inner()));
        Ok((dataset, parameters))
    }

    async fn plan(
        &self,
        database: &str,
        query: &str,
        params: QueryParams,
        list_system: bool,
    ) -> Result<(SessionContext, DataFrame)> {
        let (ctx, df) = self
            .plan_unbound(database, query, params, list_system)
            .await?;
        // A placeholder left without a value is the caller's mistake; say so before
        // execution would fail with an internal-looking error.
        let unbound = df
            .logical_plan()
            .get_parameter_types()
            .map_err(|e| QueryError::from_datafusion(e, Stage::Planning))?;
        if let Some(name) = unbound.keys().min() {
            return Err(QueryError::InvalidParams(format!(
                "no value given for query parameter '{name}'"
            )));
        }
        Ok((ctx, df))
    }

    /// Parse and plan `query`, binding `params`; placeholders without a value stay in the plan.
    ///
    /// A database, table or column the cached schema lacks may have been created by a write
    /// the feed has not reported yet: such a miss is planned again once the catalog view has
    /// caught up, and only then reported.
    async fn plan_unbound(
        &self,
        database: &str,
        query: &str,
        params: QueryParams,
        list_system: bool,
    ) -> Result<(SessionContext, DataFrame)> {
        match self
            .try_plan(database, query, params.clone(), list_system)
            .await
        {
            Err(e) if e.may_be_stale_schema() && self.catalog.refresh().await? => {
                self.try_plan(database, query, params, list_system).await
            }
            planned => planned,
        }
    }

    async fn try_plan(
        &self,
        database: &str,
        query: &str,
        params: QueryParams,
        list_system: bool,
    ) -> Result<(SessionContext, DataFrame)> {
        // The caller's one retry covers a missing database too.
        let ctx = self.try_session(database, list_system).await?;
        // Queries only: no DDL, DML or SET. SHOW TABLES / SHOW COLUMNS plan as queries over
        // information_schema and stay allowed.
        let options = SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false);
        let planning = |e| QueryError::from_datafusion(e, Stage::Planning);
        let state = ctx.state();
        let dialect = state.config().options().sql_parser.dialect;
        let mut statement = state.sql_to_statement(query, &dialect).map_err(planning)?;
        number_question_marks(&mut statement);
        let plan = state.statement_to_plan(statement).await.map_err(planning)?;
        options.verify_plan(&plan).map_err(planning)?;
        let mut df = ctx.execute_logical_plan(plan).await.map_err(planning)?;
        if !params.is_empty() {
            df = df
                .with_param_values(params.to_param_values())
                .map_err(planning)?;
        }
        Ok((ctx, df))
    }

    /// A session whose default catalog and schema are `public.iox`, holding every table of
    /// `database` as the catalog knows it now (a database missing from the cached view is
    /// looked up again once the view has caught up).
    pub(crate) async fn session(
        &self,
        database: &str,
        list_system: bool,
    ) -> Result<SessionContext> {
        match self.try_session(database, list_system).await {
            Err(e) if e.may_be_stale_schema() && self.catalog.refresh().await? => {
                self.try_session(database, list_system).await
            }
            session => session,
        }
    }

    /// [`Self::session`] after bringing the catalog view up to date: for listings (Flight
    /// SQL `GetTables`), where a table missing from a stale view would go unnoticed.
    pub(crate) async fn current_session(
        &self,
        database: &str,
        list_system: bool,
    ) -> Result<SessionContext> {
        self.catalog.refresh().await?;
        self.try_session(database, list_system).await
    }

    /// A session over `database` on the engine's runtime (a query's own memory pool goes
    /// into its task context at execution). The `system` tables are always there;
    /// `list_system` lists them in `information_schema` and `SHOW TABLES` too.
    async fn try_session(&self, database: &str, list_system: bool) -> Result<SessionContext> {
        Ok(self.try_session_and_schema(database, list_system).await?.0)
    }

    /// The engine's shared DataFusion runtime.
    pub(crate) fn runtime_env(&self) -> &Arc<RuntimeEnv> {
        &self.runtime
    }

    /// The longest a query may run, if limited.
    pub(crate) fn query_timeout(&self) -> Option<Duration> {
        self.config.query_timeout
    }

    /// [`Self::session`] (without system tables listed), and the database schema it holds.
    pub(crate) async fn session_and_schema(
        &self,
        database: &str,
    ) -> Result<(SessionContext, DatabaseSchema)> {
        match self.try_session_and_schema(database, false).await {
            Err(e) if e.may_be_stale_schema() && self.catalog.refresh().await? => {
                self.try_session_and_schema(database, false).await
            }
            session => session,
        }
    }

    /// Every database's last-value and distinct-value caches, listed again only when the
    /// catalog version has moved (every time, for a catalog that does not follow it).
    async fn cache_definitions(&self) -> Result<Arc<Vec<CacheDefinition>>> {
        let version = self.catalog.known_version();
        if let (Some(v), Some((at, definitions))) = (version, &*self.cache_definitions.lock())
            && v == *at
        {
            return Ok(Arc::clone(definitions));
        }
        let definitions = Arc::new(self.catalog.list_caches().await?);
        if let Some(v) = version {
            *self.cache_definitions.lock() = Some((v, Arc::clone(&definitions)));
        }
        Ok(definitions)
    }

    /// The catalog the engine reads.
    pub(crate) fn catalog(&self) -> &Arc<dyn Catalog> {
        &self.catalog
    }

    async fn try_session_and_schema(
        &self,
        database: &str,
        list_system: bool,
    ) -> Result<(SessionContext, DatabaseSchema)> {
        let db = self
            .catalog
            .database_by_name(database)
            .await?
            .ok_or_else(|| QueryError::DatabaseNotFound(database.to_string()))?;
        let schema = self.catalog.database_schema(db.id).await?;

        // The template's functions and rules, with catalogs of this query's own.
        let mut state = self.session_template.clone();
        let catalogs = Arc::new(MemoryCatalogProviderList::new());
        catalogs.register_catalog(
            CATALOG_NAME.to_string(),
            Arc::new(SessionStateDefaults::default_catalog(
                state.config(),
                state.table_factories(),
                state.runtime_env(),
            )),
        );
        state.register_catalog_list(catalogs);
        let ctx = SessionContext::new_with_state(state);
        let definitions = self.cache_definitions().await?;
        for kind in [CacheKind::Last, CacheKind::Distinct] {
            let function = CacheFunction::new(
                kind,
                db.id,
                Arc::clone(&definitions),
                Arc::clone(&self.ingesters),
            );
            ctx.register_udtf(kind.function(), Arc::new(function));
        }
        for (name, table) in schema.tables.clone() {
            let provider = QuerierTable::new(
                db.id,
                schema.limits,
                table,
                Arc::clone(&self.catalog),
                Arc::clone(&self.file_lists),
                Arc::clone(&self.ingesters),
                self.store_url.clone(),
            );
            // `bare`: a table name is never parsed, so names with dots or quotes work.
            ctx.register_table(TableReference::bare(name), Arc::new(provider))
                .map_err(|e| QueryError::Internal(format!("registering table: {e}")))?;
        }
        let system = SystemSchema::new(
            SystemSources {
                catalog: Arc::clone(&self.catalog),
                ingesters: Arc::clone(&self.ingesters),
                log: Arc::clone(&self.log),
                cluster: Arc::clone(&self.cluster),
            },
            list_system,
        );
        ctx.catalog(CATALOG_NAME)
            .ok_or_else(|| QueryError::Internal("no default catalog".into()))?
            .register_schema(SYSTEM_SCHEMA, Arc::new(system))
            .map_err(|e| QueryError::Internal(format!("registering system tables: {e}")))?;
        Ok((ctx, schema))
    }
}

/// Every query session's starting point: the engine's configuration, DataFusion's and
/// ferrite's functions, joins that yield, on `runtime`; no catalogs.
fn session_template(config: &QuerierConfig, runtime: Arc<RuntimeEnv>) -> SessionState {
    let config = SessionConfig::new()
        .with_information_schema(true)
        .with_default_catalog_and_schema(CATALOG_NAME, SCHEMA_NAME)
        .with_create_default_catalog_and_schema(false)
        .with_target_partitions(config.target_partitions.max(1))
        .with_batch_size(config.batch_size.max(1))
        // Late materialization: decode the filter columns first and only the rows that
        // pass for the rest. Files are sorted by every tag in name order, so page
        // statistics alone prune little for a single-host query. Only tag and time
        // predicates reach a scan that feeds dedup, so this never drops a row dedup needs.
        .set_bool("datafusion.execution.parquet.pushdown_filters", true)
        .set_bool("datafusion.execution.parquet.reorder_filters", true);
    let builder = SessionStateBuilder::new()
        .with_config(config)
        .with_runtime_env(runtime)
        .with_default_features()
        .with_physical_optimizer_rule(Arc::new(crate::cooperate::JoinsYield));
    crate::functions::install(builder).build()
}

/// The schema a query's batches will have: after analysis and optimization, which may
/// rewrite the plan (gap filling makes its aggregate columns nullable).
fn output_schema(df: DataFrame) -> Result<SchemaRef> {
    let plan = df
        .into_optimized_plan()
        .map_err(|e| QueryError::from_datafusion(e, Stage::Planning))?;
    Ok(Arc::clone(plan.schema().inner()))
}

/// JDBC and ODBC tools write positional parameters as `?`; DataFusion numbers only `$1, $2…`.
/// Each `?` becomes the next `$n`, in the order the statement's expressions are visited
/// (source order).
fn number_question_marks(statement: &mut DFStatement) {
    let DFStatement::Statement(statement) = statement else {
        return;
    };
    let mut next = 0;
    let _ = visit_expressions_mut(statement.as_mut(), |expr| {
        if let SqlExpr::Value(value) = expr
            && let SqlValue::Placeholder(name) = &mut value.value
            && name == "?"
        {
            next += 1;
            *name = format!("${next}");
        }
        ControlFlow::<()>::Continue(())
    });
}

/// A query's result stream under its limits: it holds the query's slot until it ends or is
/// dropped, and fails with [`QueryError::Timeout`] once the deadline passes.
struct LimitedStream {
    inner: SendableRecordBatchStream,
    deadline: Option<(Pin<Box<Sleep>>, Duration)>,
    _slot: OwnedSemaphorePermit,
}

impl Stream for LimitedStream {
    type Item = datafusion::error::Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Some((sleep, limit)) = &mut self.deadline
            && sleep.as_mut().poll(cx).is_ready()
        {
            let limit = *limit;
            self.deadline = None;
            // End the plan now (dropping it stops its tasks) and report the timeout once.
            self.inner = Box::pin(RecordBatchStreamAdapter::new(
                self.inner.schema(),
                futures::stream::empty(),
            ));
            return Poll::Ready(Some(Err(QueryError::Timeout(limit).into_datafusion())));
        }
        self.inner.as_mut().poll_next(cx)
    }
}

impl std::fmt::Debug for RunningQuery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningQuery")
            .field("schema", &self.schema)
            .field("tracker", &self.tracker)
            .finish_non_exhaustive()
    }
}

/// A query's result stream as the client reads it: its rows counted in the query log, its
/// failure recorded there, and its operators polled inside the query's span.
struct TrackedStream {
    inner: SendableRecordBatchStream,
    tracker: Tracker,
    span: tracing::Span,
}

impl Stream for TrackedStream {
    type Item = datafusion::error::Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let span = self.span.clone();
        let _entered = span.enter();
        match self.inner.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(batch))) => {
                self.tracker.add_rows(batch.num_rows());
                Poll::Ready(Some(Ok(batch)))
            }
            Poll::Ready(Some(Err(e))) => {
                let error = QueryError::from_stream_error(e);
                self.tracker.fail(&error);
                Poll::Ready(Some(Err(error.into_datafusion())))
            }
            other => other,
        }
    }
}

/// Counts a query in `ferrite_query_slots_waiting` while it waits for a slot, however the
/// wait ends.
struct Waiting;

impl Waiting {
    fn new() -> Self {
        metrics::gauge!("ferrite_query_slots_waiting").increment(1.0);
        Self
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        metrics::gauge!("ferrite_query_slots_waiting").decrement(1.0);
    }
}

/// A tokio runtime that only executes query plans.
struct DedicatedRuntime {
    runtime: Option<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for DedicatedRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DedicatedRuntime").finish_non_exhaustive()
    }
}

impl DedicatedRuntime {
    fn new(threads: usize) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name("ferrite-query")
            .enable_all()
            .build()
            .map_err(|e| QueryError::Internal(format!("query runtime: {e}")))?;
        Ok(Self {
            runtime: Some(runtime),
        })
    }

    /// Poll `plan` on this runtime; the returned stream only receives its batches. Dropping
    /// the returned stream stops the plan at its next batch.
    fn execute(
        &self,
        plan: Arc<dyn datafusion::physical_plan::ExecutionPlan>,
        task_ctx: Arc<datafusion::execution::TaskContext>,
        schema: SchemaRef,
    ) -> SendableRecordBatchStream {
        let (mut tx, rx) = futures::channel::mpsc::channel(2);
        // Dropped with the returned stream: the plan stops at once, even in the middle of an
        // aggregation that has not produced a batch yet (a timeout, a client that went away).
        let (cancel, cancelled) = futures::channel::oneshot::channel::<()>();
        if let Some(runtime) = &self.runtime {
            // The plan's work belongs to the query's span, on whichever runtime it runs.
            let span = tracing::Span::current();
            runtime.spawn(
                async move {
                    let pump = async move {
                        let mut stream = match execute_stream(plan, task_ctx) {
                            Ok(stream) => stream,
                            Err(e) => {
                                let _ = tx.send(Err(e)).await;
                                return;
                            }
                        };
                        while let Some(item) = stream.next().await {
                            if tx.send(item).await.is_err() {
                                return; // the consumer went away
                            }
                        }
                    };
                    futures::pin_mut!(pump);
                    futures::future::select(pump, cancelled).await;
                }
                .instrument(span),
            );
        }
        let batches = rx.map(move |item| {
            let _alive = &cancel;
            item
        });
        Box::pin(RecordBatchStreamAdapter::new(schema, batches))
    }
}

impl Drop for DedicatedRuntime {
    fn drop(&mut self) {
        // Dropping a runtime blocks; shutting down in the background is allowed anywhere,
        // including inside another runtime.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
