//! Plans made for a Flight `GetFlightInfo`, kept a few seconds for the `DoGet` that follows,
//! so a Flight SQL query (Grafana, ADBC, JDBC) is parsed and planned once, not twice.
//!
//! ```text
//!  GetFlightInfo(sql) ─► plan ─► schema to the client; (database, sql, params, listing) ─► kept
//!  DoGet(ticket)      ─► the kept logical plan, taken once, if the catalog version has not
//!                        moved and it is under PLAN_TTL old ─► physical plan ─► execute
//!                     └► otherwise planned again, as before
//! ```
//!
//! Only the logical plan is reused: files and ingester rows are read when the physical plan
//! is made, at `DoGet`, so the answer is as fresh as without the cache. A plan is taken at
//! most once and only while the catalog version it was made at stands, so a table deleted
//! or a column added in between is planned again.

use std::time::{Duration, Instant};

use datafusion::dataframe::DataFrame;
use datafusion::prelude::SessionContext;
use parking_lot::Mutex;

use crate::params::QueryParams;

/// How long a plan waits for its `DoGet`.
const PLAN_TTL: Duration = Duration::from_secs(10);
/// Plans kept at once; the oldest goes first.
const MAX_PLANS: usize = 64;

/// What a plan answers: the same query in the same database, for a caller who sees the
/// same system tables listed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PlanKey {
    pub(crate) database: String,
    pub(crate) sql: String,
    pub(crate) params: QueryParams,
    pub(crate) list_system: bool,
}

struct Planned {
    key: PlanKey,
    version: i64,
    at: Instant,
    ctx: SessionContext,
    df: DataFrame,
}

/// The plans waiting for their `DoGet`.
#[derive(Default)]
pub(crate) struct PlanCache {
    plans: Mutex<Vec<Planned>>,
}

impl std::fmt::Debug for PlanCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlanCache")
            .field("plans", &self.plans.lock().len())
            .finish()
    }
}

impl PlanCache {
    /// Keep a plan made at catalog `version`.
    pub(crate) fn put(&self, key: PlanKey, version: i64, ctx: SessionContext, df: DataFrame) {
        let mut plans = self.plans.lock();
        let now = Instant::now();
        plans.retain(|p| now.duration_since(p.at) < PLAN_TTL && p.key != key);
        if plans.len() >= MAX_PLANS {
            plans.remove(0);
        }
        plans.push(Planned {
            key,
            version,
            at: now,
            ctx,
            df,
        });
    }

    /// True when no plan waits (the common case, checked before building a key).
    pub(crate) fn is_empty(&self) -> bool {
        self.plans.lock().is_empty()
    }

    /// The plan for `key`, removed, if one was made at catalog `version` within the TTL.
    pub(crate) fn take(&self, key: &PlanKey, version: i64) -> Option<(SessionContext, DataFrame)> {
        let mut plans = self.plans.lock();
        let at = plans.iter().position(|p| &p.key == key)?;
        let p = plans.remove(at);
        let fresh = p.version == version && p.at.elapsed() < PLAN_TTL;
        metrics::counter!("ferrite_query_plan_cache_requests_total",
                          "result" => if fresh { "hit" } else { "stale" })
        .increment(1);
        fresh.then_some((p.ctx, p.df))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(sql: &str) -> PlanKey {
        PlanKey {
            database: "db".into(),
            sql: sql.into(),
            params: QueryParams::default(),
            list_system: false,
        }
    }

    #[tokio::test]
    async fn a_plan_is_taken_once_and_only_at_the_version_it_was_made_at() {
        let ctx = SessionContext::new();
        let df = ctx.sql("SELECT 1").await.unwrap();
        let cache = PlanCache::default();
        cache.put(key("SELECT 1"), 7, ctx.clone(), df.clone());
        assert!(cache.take(&key("SELECT 2"), 7).is_none(), "another query");
        assert!(cache.take(&key("SELECT 1"), 7).is_some());
        assert!(cache.take(&key("SELECT 1"), 7).is_none(), "taken once");
        assert!(cache.is_empty());

        cache.put(key("SELECT 1"), 7, ctx.clone(), df.clone());
        assert!(
            cache.take(&key("SELECT 1"), 8).is_none(),
            "the catalog moved"
        );
        assert!(cache.is_empty(), "a stale plan is dropped");

        for i in 0..MAX_PLANS + 5 {
            cache.put(key(&format!("SELECT {i}")), 7, ctx.clone(), df.clone());
        }
        assert_eq!(cache.plans.lock().len(), MAX_PLANS);
        assert!(
            cache.take(&key("SELECT 0"), 7).is_none(),
            "the oldest went first"
        );
    }
}
