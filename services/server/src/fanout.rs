//! A querier's view of all ingesters as one [`IngesterQuery`]: asks every current ingester
//! in parallel and merges their partitions. An ingester that cannot be reached is skipped
//! with a warning (its replicas, if any, still answer): a query should not fail because one
//! ingester restarts.

use std::sync::Arc;

use async_trait::async_trait;
use ferrite_ingester::api::{IngesterQuery, QueryError, QueryRequest, QueryResponse};
use parking_lot::RwLock;
use tracing::warn;

/// Every ingester, as one.
#[derive(Debug)]
pub struct AllIngesters {
    members: RwLock<Vec<(String, Arc<dyn IngesterQuery>)>>,
}

impl AllIngesters {
    /// No members yet; see [`Self::set_members`].
    pub fn new() -> Self {
        Self {
            members: RwLock::new(Vec::new()),
        }
    }

    /// Replace the member list, keeping clients of addresses that stay.
    pub fn set_members(&self, addrs: &[String], client: impl Fn(&str) -> Arc<dyn IngesterQuery>) {
        let mut members = self.members.write();
        let next = addrs
            .iter()
            .map(|a| match members.iter().find(|(m, _)| m == a) {
                Some((m, c)) => (m.clone(), Arc::clone(c)),
                None => (a.clone(), client(a)),
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
        let members = self.members.read().clone();
        let answers = futures::future::join_all(members.iter().map(|(addr, c)| {
            let r = request.clone();
            async move { (addr, c.query(r).await) }
        }))
        .await;
        let mut merged = QueryResponse {
            ingester_uuid: uuid::Uuid::nil(),
            persist_count: 0,
            partitions: Vec::new(),
        };
        for (addr, answer) in answers {
            match answer {
                Ok(r) => {
                    merged.persist_count += r.persist_count;
                    merged.partitions.extend(r.partitions);
                }
                Err(QueryError::Unavailable(e)) => {
                    warn!(ingester = %addr, error = %e, "ingester unavailable; querying without its unpersisted data");
                }
                Err(e @ QueryError::Invalid(_)) => return Err(e),
            }
        }
        Ok(merged)
    }
}
