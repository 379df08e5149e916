//! A querier's view of all ingesters as one [`IngesterQuery`]: asks every current ingester
//! in parallel and merges their partitions. An ingester that cannot be reached is skipped
//! with a warning (its replicas, if any, still answer): a query should not fail because one
//! ingester restarts.
//!
//! The members include ingesters that are not ready: a draining one still holds rows it
//! has not persisted, and a starting one is known before routers send it anything. A
//! not-ready member that fails to answer (still starting, or its pod's node is gone) is
//! left out of the queries that follow for a backoff (5 s, doubling to 60 s; longer than a
//! connect timeout, so one query's table scans pay it at most once), so an unreachable
//! address does not cost every query a connect timeout; a ready member is always asked. Warnings are logged at most once a minute per ingester.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use ferrite_ingester::api::{
    IngesterQuery, IngesterStatus, QueryError, QueryRequest, QueryResponse,
};
use ferrite_retry::{Backoff, FailureLog};
use parking_lot::{Mutex, RwLock};
use tracing::{info, warn};

/// How often an ingester that keeps failing to answer is logged.
const LOG_EVERY: Duration = Duration::from_secs(60);
/// How long a not-ready ingester that failed to answer is left out, first and at most.
const SKIP_MIN: Duration = Duration::from_secs(5);
const SKIP_MAX: Duration = Duration::from_secs(60);

/// One ingester: its address, client, readiness and recent failures.
#[derive(Debug, Clone)]
struct Member {
    addr: String,
    ready: bool,
    client: Arc<dyn IngesterQuery>,
    health: Arc<Mutex<Health>>,
}

/// What recent queries learnt of one ingester.
#[derive(Debug)]
struct Health {
    failures: FailureLog,
    /// A not-ready member is not asked before this.
    skip_until: Option<Instant>,
    backoff: Backoff,
}

impl Health {
    fn new() -> Self {
        Self {
            failures: FailureLog::new(LOG_EVERY),
            skip_until: None,
            backoff: Backoff::new(SKIP_MIN, SKIP_MAX),
        }
    }
}

impl Member {
    /// Whether this query asks it: ready members always, others unless backing off.
    fn asked(&self) -> bool {
        self.ready
            || self
                .health
                .lock()
                .skip_until
                .is_none_or(|t| Instant::now() >= t)
    }
}

/// Every ingester, as one.
#[derive(Debug)]
pub struct AllIngesters {
    members: RwLock<Vec<Member>>,
}

impl AllIngesters {
    /// No members yet; see [`Self::set_members`].
    pub fn new() -> Self {
        Self {
            members: RwLock::new(Vec::new()),
        }
    }

    /// Replace the member list, `(address, ready)`, keeping the clients of addresses that
    /// stay.
    pub fn set_members(
        &self,
        addrs: &[(String, bool)],
        client: impl Fn(&str) -> Arc<dyn IngesterQuery>,
    ) {
        let mut members = self.members.write();
        let next = addrs
            .iter()
            .map(|(a, ready)| match members.iter().find(|m| &m.addr == a) {
                Some(m) => Member {
                    ready: *ready,
                    ..m.clone()
                },
                None => Member {
                    addr: a.clone(),
                    ready: *ready,
                    client: client(a),
                    health: Arc::new(Mutex::new(Health::new())),
                },
            })
            .collect();
        *members = next;
    }
}

impl Default for AllIngesters {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl IngesterQuery for AllIngesters {
    async fn query(&self, request: QueryRequest) -> Result<QueryResponse, QueryError> {
        let members: Vec<Member> = self
            .members
            .read()
            .iter()
            .filter(|m| m.asked())
            .cloned()
            .collect();
        let answers = futures::future::join_all(members.iter().map(|m| {
            let r = request.clone();
            async move { (m, m.client.query(r).await) }
        }))
        .await;
        let mut merged = QueryResponse {
            ingester_uuid: uuid::Uuid::nil(),
            persist_count: 0,
            partitions: Vec::new(),
        };
        for (member, answer) in answers {
            match answer {
                Ok(r) => {
                    let mut health = member.health.lock();
                    health.skip_until = None;
                    health.backoff.reset();
                    if let Some(n) = health.failures.success() {
                        info!(ingester = %member.addr, queries = n, "ingester answers again");
                    }
                    merged.persist_count += r.persist_count;
                    merged.partitions.extend(r.partitions);
                }
                Err(QueryError::Unavailable(e)) => {
                    let mut health = member.health.lock();
                    if !member.ready {
                        health.skip_until = Some(Instant::now() + health.backoff.next_delay());
                    }
                    if let Some(n) = health.failures.failure() {
                        warn!(ingester = %member.addr, error = %e, queries = n, "ingester unavailable (starting, draining or down); querying without its unpersisted data");
                    }
                }
                Err(e @ QueryError::Invalid(_)) => return Err(e),
            }
        }
        Ok(merged)
    }

    /// Every member, in parallel, ready or not and whatever its backoff. Unlike a query, a
    /// cache read fails when one of them does not answer: without its rows the merge could
    /// return a value older than the newest for a key.
    async fn cache(
        &self,
        definition: &ferrite_model::cache::CacheDefinition,
    ) -> Result<Vec<ferrite_ingester::api::RecordBatch>, QueryError> {
        let members: Vec<Member> = self.members.read().clone();
        let answers =
            futures::future::join_all(members.iter().map(|m| m.client.cache(definition))).await;
        let mut batches = Vec::new();
        for answer in answers {
            batches.extend(answer?);
        }
        Ok(batches)
    }

    /// Every member, asked in parallel, ready or not and whatever its backoff: the status
    /// is for people looking for the one that does not answer.
    async fn status(&self) -> Vec<IngesterStatus> {
        let members: Vec<Member> = self.members.read().clone();
        let answers = futures::future::join_all(members.iter().map(|m| m.client.status())).await;
        members
            .iter()
            .zip(answers)
            .flat_map(|(member, answer)| {
                answer.into_iter().map(|status| IngesterStatus {
                    // The address as discovered, whatever the client calls itself.
                    address: member.addr.clone(),
                    buffered: status.buffered,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use arrow::datatypes::Schema;
    use ferrite_model::{DatabaseId, TableId};

    use super::*;

    /// An ingester that cannot be reached, counting the calls it gets.
    #[derive(Debug, Default)]
    struct Unreachable(AtomicUsize);

    #[async_trait]
    impl IngesterQuery for Unreachable {
        async fn query(&self, _: QueryRequest) -> Result<QueryResponse, QueryError> {
            self.0.fetch_add(1, Ordering::Relaxed);
            Err(QueryError::Unavailable("tcp connect error".into()))
        }

        async fn cache(
            &self,
            _: &ferrite_model::cache::CacheDefinition,
        ) -> Result<Vec<ferrite_ingester::api::RecordBatch>, QueryError> {
            Err(QueryError::Unavailable("tcp connect error".into()))
        }

        async fn status(&self) -> Vec<IngesterStatus> {
            vec![IngesterStatus {
                address: "unreachable".into(),
                buffered: Err("tcp connect error".into()),
            }]
        }
    }

    fn request() -> QueryRequest {
        QueryRequest {
            database_id: DatabaseId(1),
            table_id: TableId(1),
            schema: Arc::new(Schema::empty()),
            time_range: None,
            tags: Vec::new(),
        }
    }

    #[tokio::test]
    async fn a_not_ready_ingester_that_fails_is_left_out_for_a_while_a_ready_one_never() {
        let (gone, restarting) = (
            Arc::new(Unreachable::default()),
            Arc::new(Unreachable::default()),
        );
        let all = AllIngesters::new();
        let clients = |a: &str| -> Arc<dyn IngesterQuery> {
            if a == "gone" {
                Arc::clone(&gone) as _
            } else {
                Arc::clone(&restarting) as _
            }
        };
        all.set_members(
            &[("gone".into(), false), ("restarting".into(), true)],
            clients,
        );
        for _ in 0..3 {
            // Both unreachable: the query still answers, without their rows.
            assert!(all.query(request()).await.unwrap().partitions.is_empty());
        }
        assert_eq!(
            gone.0.load(Ordering::Relaxed),
            1,
            "asked again while backing off"
        );
        assert_eq!(
            restarting.0.load(Ordering::Relaxed),
            3,
            "a ready ingester is always asked"
        );

        // Turning ready ends the backoff at once.
        all.set_members(
            &[("gone".into(), true), ("restarting".into(), true)],
            clients,
        );
        all.query(request()).await.unwrap();
        assert_eq!(gone.0.load(Ordering::Relaxed), 2);
    }
}
