//! ferrite's time-series SQL functions, with InfluxDB 3's names and semantics.
//!
//! ```text
//!  install(SessionStateBuilder)
//!    ├─ aggregates   selector_first / selector_last / selector_min / selector_max
//!    ├─ scalars      date_bin_gapfill / locf / interpolate   (markers, never evaluated)
//!    │               database()                              (the user tables' schema)
//!    ├─ analyzer     GapFillRule: Aggregate(date_bin_gapfill) ─► GapFill(Aggregate(date_bin))
//!    └─ planner      GapFill ─► GapFillExec
//! ```
//!
//! - [`selector`]: aggregates returning `{value, time}` of the first, last, smallest or
//!   largest value of a group.
//! - [`gapfill`]: one row per series and time bin of the WHERE clause's range, with gaps
//!   left NULL, carried forward (`locf`) or interpolated (`interpolate`).
//!
//! Misuse (a gap-filling function outside its place, a missing time bound) fails while the
//! query is planned, with a DataFusion `Plan` error naming the fix.

mod database;
mod gapfill;
mod selector;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::error::Result;
use datafusion::execution::context::QueryPlanner;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_planner::{DefaultPhysicalPlanner, PhysicalPlanner};

/// Adds ferrite's time-series functions (selectors, date_bin_gapfill/locf/interpolate) to a
/// session being built. Call after `with_default_features()`, which would otherwise replace
/// same-named functions. Sets the session's query planner.
pub(crate) fn install(mut builder: SessionStateBuilder) -> SessionStateBuilder {
    builder
        .aggregate_functions()
        .get_or_insert_with(Vec::new)
        .extend(selector::udafs());
    builder
        .scalar_functions()
        .get_or_insert_with(Vec::new)
        .extend(gapfill::udfs().into_iter().chain([database::udf()]));
    builder
        .with_analyzer_rule(Arc::new(gapfill::GapFillRule))
        .with_query_planner(Arc::new(FerriteQueryPlanner))
}

/// DataFusion's planner, plus the physical form of ferrite's logical nodes.
#[derive(Debug)]
struct FerriteQueryPlanner;

#[async_trait]
impl QueryPlanner for FerriteQueryPlanner {
    async fn create_physical_plan(
        &self,
        logical_plan: &LogicalPlan,
        session: &dyn Session,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        DefaultPhysicalPlanner::with_extension_planners(vec![Arc::new(gapfill::GapFillPlanner)])
            .create_physical_plan(logical_plan, session)
            .await
    }
}
