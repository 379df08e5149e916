//! Joins yield to the scheduler, so a cancelled query stops.
//!
//! A query is stopped by dropping its stream: the task polling the plan notices at its next
//! yield to tokio. DataFusion's sources spend tokio's cooperative budget once per batch they
//! read, which is enough for every operator that reads more than it writes. A join is the
//! exception: from one batch of its input it can emit batches without end (a cross join of
//! a million rows with itself emits a million batches per input batch), and an aggregate
//! above it turns none of them into output. Such a plan never yields, so a client that hung
//! up, or a deadline that passed, leaves it running on the query runtime's threads and
//! starves every query after it.
//!
//! ```text
//!  AggregateExec                      AggregateExec
//!    NestedLoopJoinExec       ──►       CooperativeExec     one budget unit per join batch
//!      …                                  NestedLoopJoinExec
//! ```

use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::error::Result;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::coop::CooperativeExec;
use datafusion::physical_plan::joins::{
    CrossJoinExec, HashJoinExec, NestedLoopJoinExec, SortMergeJoinExec, SymmetricHashJoinExec,
};

/// Wraps every join in a [`CooperativeExec`], which spends one unit of tokio's task budget
/// per batch the join emits. Runs after DataFusion's own rules.
#[derive(Debug, Default)]
pub(crate) struct JoinsYield;

impl JoinsYield {
    fn is_join(plan: &dyn ExecutionPlan) -> bool {
        plan.is::<NestedLoopJoinExec>()
            || plan.is::<CrossJoinExec>()
            || plan.is::<HashJoinExec>()
            || plan.is::<SortMergeJoinExec>()
            || plan.is::<SymmetricHashJoinExec>()
    }
}

impl PhysicalOptimizerRule for JoinsYield {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            if Self::is_join(node.as_ref()) {
                Ok(Transformed::yes(
                    Arc::new(CooperativeExec::new(node)) as Arc<dyn ExecutionPlan>
                ))
            } else {
                Ok(Transformed::no(node))
            }
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "JoinsYield"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use datafusion::execution::session_state::SessionStateBuilder;
    use datafusion::physical_plan::{displayable, execute_stream};
    use datafusion::prelude::{SessionConfig, SessionContext};
    use futures::StreamExt;

    use super::*;

    /// Minutes of work without this rule: a filtered cross join of two million-row series.
    const ENDLESS: &str = "SELECT count(*) FROM generate_series(1, 1000000) a \
        CROSS JOIN generate_series(1, 1000000) b WHERE a.value <> b.value";

    fn context() -> SessionContext {
        let state = SessionStateBuilder::new()
            .with_config(SessionConfig::new().with_target_partitions(2))
            .with_default_features()
            .with_physical_optimizer_rule(Arc::new(JoinsYield))
            .build();
        SessionContext::new_with_state(state)
    }

    #[tokio::test]
    async fn a_join_is_wrapped() {
        let plan = context()
            .sql(ENDLESS)
            .await
            .unwrap()
            .create_physical_plan()
            .await
            .unwrap();
        let text = displayable(plan.as_ref()).indent(false).to_string();
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        let join = lines
            .iter()
            .position(|l| l.starts_with("NestedLoopJoinExec"))
            .unwrap_or_else(|| panic!("{text}"));
        assert_eq!(lines[join - 1], "CooperativeExec", "{text}");
    }

    #[test]
    fn a_dropped_join_stops() {
        // On a runtime of its own, as the engine runs plans.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let ctx = context();
        let plan = runtime
            .block_on(async { ctx.sql(ENDLESS).await?.create_physical_plan().await })
            .unwrap();
        let task_ctx = ctx.task_ctx();
        let endless = runtime.spawn(async move {
            let mut stream = execute_stream(plan, task_ctx).unwrap();
            stream.next().await
        });
        // Running: the query task and the tasks feeding its partitions.
        std::thread::sleep(Duration::from_millis(300));
        assert!(runtime.metrics().num_alive_tasks() > 1);
        endless.abort();
        // Each task ends at its next yield; without one, they would run for minutes.
        let deadline = Instant::now() + Duration::from_secs(60);
        while runtime.metrics().num_alive_tasks() > 0 {
            if Instant::now() > deadline {
                // Dropping a runtime waits for its running tasks: leave the thread to it.
                std::mem::forget(runtime);
                panic!("the join kept running");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        runtime.shutdown_background();
    }
}
