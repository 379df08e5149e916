//! The `last_cache()` and `distinct_cache()` table functions: the rows of a last-value or
//! distinct-value cache, read from the ingesters that keep them and merged here.
//!
//! ```text
//!  SELECT … FROM last_cache('cpu'[, 'name'])
//!    call: the database's definitions (listed at session start) ─► the one named, or the
//!          table's only one of that kind ─► CacheTable (schema from the definition)
//!    scan: every ingester's rows (IngesterQuery::cache) ─► merged in a fresh cache:
//!          the newest `count` per key overall (last), the union (distinct) ─► MemoryExec
//! ```
//!
//! Filters, projections and aggregates run in DataFusion over the merged rows.

use std::sync::Arc;
use std::time::Instant;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::{ScalarValue, plan_err};
use datafusion::datasource::TableType;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;
use ferrite_ingester::api::IngesterQuery;
use ferrite_model::DatabaseId;
use ferrite_model::cache::{CacheDefinition, CacheKind};

/// `last_cache` or `distinct_cache` over one database's caches.
#[derive(Debug)]
pub(crate) struct CacheFunction {
    kind: CacheKind,
    database_id: DatabaseId,
    definitions: Arc<Vec<CacheDefinition>>,
    ingesters: Arc<[Arc<dyn IngesterQuery>]>,
}

impl CacheFunction {
    /// The function for caches of `kind` among `definitions` (every database's).
    pub(crate) fn new(
        kind: CacheKind,
        database_id: DatabaseId,
        definitions: Arc<Vec<CacheDefinition>>,
        ingesters: Arc<[Arc<dyn IngesterQuery>]>,
    ) -> Self {
        Self {
            kind,
            database_id,
            definitions,
            ingesters,
        }
    }
}

fn string_argument(function: &str, args: &[Expr], at: usize, what: &str) -> Result<Option<String>> {
    match args.get(at) {
        None => Ok(None),
        Some(Expr::Literal(ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)), _)) => {
            Ok(Some(s.clone()))
        }
        Some(other) => plan_err!("{function}(): the {what} must be a string literal, got {other}"),
    }
}

impl TableFunctionImpl for CacheFunction {
    fn call_with_args(&self, args: TableFunctionArgs<'_, '_>) -> Result<Arc<dyn TableProvider>> {
        let function = self.kind.function();
        let exprs = args.exprs();
        if exprs.is_empty() || exprs.len() > 2 {
            return plan_err!(
                "{function}() takes the table name and, optionally, the cache name: \
                 {function}('cpu') or {function}('cpu', 'cpu_host_{function}')"
            );
        }
        let table = string_argument(function, exprs, 0, "table name")?.unwrap_or_default();
        let name = string_argument(function, exprs, 1, "cache name")?;
        let candidates: Vec<&CacheDefinition> = self
            .definitions
            .iter()
            .filter(|d| {
                d.database_id == self.database_id && d.table == table && d.spec.kind() == self.kind
            })
            .collect();
        let kind = self.kind.name();
        let definition = match (name, candidates.as_slice()) {
            (Some(name), _) => match candidates.iter().find(|d| d.name == name) {
                Some(d) => *d,
                None => return plan_err!("table '{table}' has no {kind} cache named '{name}'"),
            },
            (None, [only]) => *only,
            (None, []) => return plan_err!("table '{table}' has no {kind} cache"),
            (None, many) => {
                let names: Vec<&str> = many.iter().map(|d| d.name.as_str()).collect();
                return plan_err!(
                    "table '{table}' has {} {kind} caches ({}): name one, as in \
                     {function}('{table}', '{}')",
                    many.len(),
                    names.join(", "),
                    names[0]
                );
            }
        };
        Ok(Arc::new(CacheTable {
            definition: definition.clone(),
            schema: definition.spec.schema(),
            ingesters: Arc::clone(&self.ingesters),
        }))
    }
}

/// One cache's rows as a table.
#[derive(Debug)]
struct CacheTable {
    definition: CacheDefinition,
    schema: SchemaRef,
    ingesters: Arc<[Arc<dyn IngesterQuery>]>,
}

impl CacheTable {
    /// Every ingester's rows, merged.
    async fn rows(&self) -> Result<RecordBatch> {
        let answers =
            futures::future::join_all(self.ingesters.iter().map(|i| i.cache(&self.definition)))
                .await;
        let mut batches = Vec::new();
        for answer in answers {
            batches.extend(answer.map_err(|e| DataFusionError::External(Box::new(e)))?);
        }
        // Most often one ingester holds the table's rows (a day's partition lives on one):
        // its answer needs no merge.
        batches.retain(|b| b.num_rows() > 0);
        match batches.as_slice() {
            [] => return Ok(RecordBatch::new_empty(Arc::clone(&self.schema))),
            [one] => return Ok(one.clone()),
            _ => {}
        }
        let mut merged = self.definition.merge_cache()?;
        let now = Instant::now();
        for b in &batches {
            merged.update(b, now)?;
        }
        Ok(merged.batch(now)?)
    }
}

#[async_trait]
impl TableProvider for CacheTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let rows = self.rows().await?;
        let batch = RecordBatch::try_new(Arc::clone(&self.schema), rows.columns().to_vec())?;
        Ok(MemorySourceConfig::try_new_exec(
            &[vec![batch]],
            Arc::clone(&self.schema),
            projection.cloned(),
        )?)
    }
}
