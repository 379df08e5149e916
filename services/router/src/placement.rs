//! Placement of writes on ingesters: rendezvous hashing of (database, table, partition) over
//! the healthy ingesters, `replication` copies, per-ingester circuit breakers, and bounded
//! retries on the next candidate.
//!
//! ```text
//!  WriteRequest ─► group tables by candidate order ─► per group: send to the first R healthy
//!                  score(ingester, key) = mix(hash(addr) ^ hash(key))      candidates at once
//!                  candidates sorted by score                 ─► failure? next candidate
//!                                                             ─► ack when ≥ 1 copy is durable
//! ```
//!
//! Every router computes the same candidate order for a key from the same member list, so a
//! partition's writes land on the same ingesters (and so its rows in the same WAL and files)
//! until membership or health changes. A write is acknowledged once at least one copy is
//! durable and every replica was attempted on a healthy candidate; when no candidate can take
//! a copy the write fails with a retryable error.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use ferrite_ingester::api::{Durability, IngesterWrite, TableWrite, WriteError, WriteRequest};
use ferrite_retry::Backoff;
use futures::stream::{FuturesUnordered, StreamExt};
use parking_lot::{Mutex, RwLock};
use tracing::{Instrument as _, warn};

/// Opens after this many consecutive failures.
const BREAKER_THRESHOLD: u32 = 3;
/// First open period; doubles (with jitter) on each failed probe up to [`BREAKER_MAX_OPEN`].
const BREAKER_OPEN: Duration = Duration::from_millis(500);
const BREAKER_MAX_OPEN: Duration = Duration::from_secs(10);

/// A consecutive-failure circuit breaker. While open, the ingester is skipped; after the open
/// period one request probes it (half-open). Open periods grow with jitter, so routers that
/// lost an ingester together do not probe it in step.
#[derive(Debug)]
struct Breaker {
    failures: u32,
    open_until: Option<Instant>,
    open_for: Backoff,
}

impl Breaker {
    fn new() -> Self {
        Self {
            failures: 0,
            open_until: None,
            open_for: Backoff::new(BREAKER_OPEN, BREAKER_MAX_OPEN),
        }
    }

    /// May a request go to this ingester now? Claims the half-open probe when due.
    fn allow(&mut self) -> bool {
        match self.open_until {
            None => true,
            Some(t) if Instant::now() >= t => {
                // Half-open: let this one request through; a failure re-opens for longer.
                self.open_until = Some(Instant::now() + self.open_for.next_delay());
                true
            }
            Some(_) => false,
        }
    }

    fn success(&mut self) {
        self.failures = 0;
        self.open_until = None;
        self.open_for.reset();
    }

    fn failure(&mut self) {
        self.failures += 1;
        if self.failures >= BREAKER_THRESHOLD && self.open_until.is_none() {
            self.open_until = Some(Instant::now() + self.open_for.next_delay());
        }
    }
}

/// One ingester the router can write to.
#[derive(Debug)]
pub struct Member {
    /// Its address; also its identity in the hash.
    pub addr: String,
    client: Arc<dyn IngesterWrite>,
    breaker: Mutex<Breaker>,
}

impl Member {
    /// A member reached through `client`.
    pub fn new(addr: impl Into<String>, client: Arc<dyn IngesterWrite>) -> Self {
        let addr = addr.into();
        // Its series exist from the start, so that rates and alerts see every ingester.
        for name in [
            "ferrite_router_ingester_writes_total",
            "ferrite_router_ingester_failures_total",
        ] {
            metrics::counter!(name, "ingester" => addr.clone()).increment(0);
        }
        metrics::gauge!("ferrite_router_ingester_breaker_open", "ingester" => addr.clone())
            .increment(0.0);
        Self {
            addr,
            client,
            breaker: Mutex::new(Breaker::new()),
        }
    }

    /// Count a write to this ingester and publish its breaker's state.
    fn record(&self, ok: bool) {
        let name = if ok {
            "ferrite_router_ingester_writes_total"
        } else {
            "ferrite_router_ingester_failures_total"
        };
        metrics::counter!(name, "ingester" => self.addr.clone()).increment(1);
        let open = self.breaker.lock().open_until.is_some();
        metrics::gauge!("ferrite_router_ingester_breaker_open", "ingester" => self.addr.clone())
            .set(if open { 1.0 } else { 0.0 });
    }
}

/// Places writes on a set of ingesters. Implements [`IngesterWrite`] itself, so the router's
/// write path does not know whether it writes to one in-process ingester or a cluster.
#[derive(Debug)]
pub struct Placement {
    members: RwLock<Vec<Arc<Member>>>,
    replication: usize,
}

impl Placement {
    /// Placement over `members` with `replication` copies of each write (at least 1).
    pub fn new(members: Vec<Member>, replication: usize) -> Self {
        Self {
            members: RwLock::new(members.into_iter().map(Arc::new).collect()),
            replication: replication.max(1),
        }
    }

    /// Replace the member list (discovery found ingesters added or removed). Members whose
    /// address stays keep their breaker state.
    pub fn set_members(&self, addrs: &[String], client: impl Fn(&str) -> Arc<dyn IngesterWrite>) {
        let mut members = self.members.write();
        let mut next = Vec::with_capacity(addrs.len());
        for a in addrs {
            match members.iter().find(|m| &m.addr == a) {
                Some(m) => next.push(Arc::clone(m)),
                None => next.push(Arc::new(Member::new(a.clone(), client(a)))),
            }
        }
        *members = next;
    }

    /// Current member addresses.
    pub fn member_addrs(&self) -> Vec<String> {
        self.members.read().iter().map(|m| m.addr.clone()).collect()
    }

    /// Members in rendezvous order for a partition: the first is its primary.
    pub fn candidates(
        &self,
        database_id: i64,
        table_id: i64,
        partition_key: &str,
    ) -> Vec<Arc<Member>> {
        let key = key_hash(database_id, table_id, partition_key);
        let mut scored: Vec<(u64, Arc<Member>)> = self
            .members
            .read()
            .iter()
            .map(|m| (mix(fnv1a(m.addr.as_bytes()) ^ key), Arc::clone(m)))
            .collect();
        scored.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.addr.cmp(&b.1.addr)));
        scored.into_iter().map(|(_, m)| m).collect()
    }

    /// Write one group to `replication` distinct healthy candidates, moving on to the next
    /// candidate on failure. Succeeds when at least one copy is durable.
    async fn replicate(
        &self,
        candidates: Vec<Arc<Member>>,
        request: WriteRequest,
        durability: Durability,
    ) -> Result<(), WriteError> {
        let mut untried = candidates
            .into_iter()
            .filter(|m| m.breaker.lock().allow())
            .collect::<Vec<_>>()
            .into_iter();
        let mut in_flight = FuturesUnordered::new();
        let send = |m: Arc<Member>, r: WriteRequest| async move {
            let span = tracing::debug_span!("ingester write", otel.kind = "client", peer = %m.addr);
            let result = m.client.write(r, durability).instrument(span).await;
            (m, result)
        };
        for _ in 0..self.replication {
            match untried.next() {
                Some(m) => in_flight.push(send(m, request.clone())),
                None => break,
            }
        }
        let (mut acks, mut last_error) = (0, None);
        while let Some((member, result)) = in_flight.next().await {
            match result {
                Ok(()) => {
                    member.breaker.lock().success();
                    member.record(true);
                    acks += 1;
                }
                Err(e) => {
                    warn!(ingester = %member.addr, error = %e, "ingester write failed; trying the next candidate");
                    member.breaker.lock().failure();
                    member.record(false);
                    last_error = Some(e);
                    if let Some(next) = untried.next() {
                        in_flight.push(send(next, request.clone()));
                    }
                }
            }
        }
        if acks > 0 {
            return Ok(());
        }
        Err(match last_error {
            // Overload anywhere means "slow down", which the client should hear as such.
            Some(e @ WriteError::Overloaded(_)) => e,
            Some(e) => {
                WriteError::Unavailable(format!("no ingester accepted the write; last error: {e}"))
            }
            None => WriteError::Unavailable("no healthy ingester".into()),
        })
    }
}

#[async_trait]
impl IngesterWrite for Placement {
    async fn write(&self, request: WriteRequest, durability: Durability) -> Result<(), WriteError> {
        // One RPC per distinct candidate order, not per table: a typical batch is one group.
        let mut groups: BTreeMap<Vec<String>, (Vec<Arc<Member>>, Vec<TableWrite>)> =
            BTreeMap::new();
        for t in request.tables {
            let candidates = self.candidates(
                request.database_id.get(),
                t.table_id.get(),
                &t.partition_key,
            );
            let order: Vec<String> = candidates.iter().map(|m| m.addr.clone()).collect();
            groups
                .entry(order)
                .or_insert_with(|| (candidates, Vec::new()))
                .1
                .push(t);
        }
        let database_id = request.database_id;
        let results =
            futures::future::join_all(groups.into_values().map(|(candidates, tables)| {
                self.replicate(
                    candidates,
                    WriteRequest {
                        database_id,
                        tables,
                    },
                    durability,
                )
            }))
            .await;
        results.into_iter().collect()
    }
}

fn key_hash(database_id: i64, table_id: i64, partition_key: &str) -> u64 {
    let mut bytes = Vec::with_capacity(16 + partition_key.len());
    bytes.extend_from_slice(&database_id.to_be_bytes());
    bytes.extend_from_slice(&table_id.to_be_bytes());
    bytes.extend_from_slice(partition_key.as_bytes());
    fnv1a(&bytes)
}

/// FNV-1a: stable across processes, builds and platforms (unlike std's `DefaultHasher`), which
/// rendezvous hashing needs so that every router agrees.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// splitmix64 finalizer: spreads FNV's weak low bits so scores are well mixed.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use ferrite_model::{DatabaseId, TableId};

    /// An ingester stand-in that counts writes and can be switched off. The real gRPC client
    /// and ingester are exercised by the cluster tests; here the placement logic is under test.
    #[derive(Debug, Default)]
    struct Counting {
        writes: AtomicUsize,
        down: std::sync::atomic::AtomicBool,
    }

    #[async_trait]
    impl IngesterWrite for Counting {
        async fn write(&self, _r: WriteRequest, _d: Durability) -> Result<(), WriteError> {
            if self.down.load(Ordering::SeqCst) {
                return Err(WriteError::Unavailable("down".into()));
            }
            self.writes.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }

    fn setup(n: usize, replication: usize) -> (Placement, Vec<Arc<Counting>>) {
        let backends: Vec<Arc<Counting>> = (0..n).map(|_| Arc::new(Counting::default())).collect();
        let members = backends
            .iter()
            .enumerate()
            .map(|(i, b)| {
                Member::new(
                    format!("http://ingester-{i}:8181"),
                    Arc::clone(b) as Arc<dyn IngesterWrite>,
                )
            })
            .collect();
        (Placement::new(members, replication), backends)
    }

    fn request(partition: &str) -> WriteRequest {
        let schema = Arc::new(arrow::datatypes::Schema::empty());
        WriteRequest {
            database_id: DatabaseId(1),
            tables: vec![TableWrite {
                table_id: TableId(7),
                partition_key: partition.into(),
                batch: arrow::record_batch::RecordBatch::new_empty(schema),
            }],
        }
    }

    #[test]
    fn candidate_order_is_deterministic_and_spreads_partitions() {
        let (p, _) = setup(3, 1);
        let (q, _) = setup(3, 1);
        let mut primaries = std::collections::HashMap::new();
        for day in 0..300 {
            let key = format!("2024-01-{day}");
            let a: Vec<_> = p
                .candidates(1, 7, &key)
                .iter()
                .map(|m| m.addr.clone())
                .collect();
            let b: Vec<_> = q
                .candidates(1, 7, &key)
                .iter()
                .map(|m| m.addr.clone())
                .collect();
            assert_eq!(a, b, "two routers agree");
            *primaries.entry(a[0].clone()).or_insert(0) += 1;
        }
        assert_eq!(primaries.len(), 3);
        assert!(primaries.values().all(|&n| n > 60), "{primaries:?}");
    }

    #[test]
    fn removing_a_member_only_moves_its_own_partitions() {
        let (p, _) = setup(3, 1);
        let before: Vec<String> = (0..200)
            .map(|d| p.candidates(1, 7, &d.to_string())[0].addr.clone())
            .collect();
        let remaining = vec![
            "http://ingester-0:8181".to_string(),
            "http://ingester-1:8181".to_string(),
        ];
        p.set_members(&remaining, |_| unreachable_client());
        for (d, old) in before.iter().enumerate() {
            let new = &p.candidates(1, 7, &d.to_string())[0].addr;
            if old != "http://ingester-2:8181" {
                assert_eq!(new, old);
            }
        }
    }

    fn unreachable_client() -> Arc<dyn IngesterWrite> {
        Arc::new(Counting {
            writes: AtomicUsize::new(0),
            down: std::sync::atomic::AtomicBool::new(true),
        })
    }

    #[tokio::test]
    async fn replication_writes_distinct_copies_and_survives_one_failure() {
        let (p, backends) = setup(2, 2);
        p.write(request("a"), Durability::Sync).await.unwrap();
        assert_eq!(
            backends
                .iter()
                .map(|b| b.writes.load(Ordering::SeqCst))
                .sum::<usize>(),
            2
        );
        assert!(
            backends
                .iter()
                .all(|b| b.writes.load(Ordering::SeqCst) == 1)
        );
        backends[0].down.store(true, Ordering::SeqCst);
        p.write(request("a"), Durability::Sync).await.unwrap();
        assert_eq!(backends[1].writes.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn failed_primary_moves_writes_to_the_next_candidate_and_opens_its_breaker() {
        let (p, backends) = setup(2, 1);
        let primary = p.candidates(1, 7, "a")[0].addr.clone();
        let (down, up) = if primary.ends_with("0:8181") {
            (0, 1)
        } else {
            (1, 0)
        };
        backends[down].down.store(true, Ordering::SeqCst);
        for _ in 0..10 {
            p.write(request("a"), Durability::Sync).await.unwrap();
        }
        assert_eq!(backends[up].writes.load(Ordering::SeqCst), 10);
        let members = p.members.read();
        let m = members.iter().find(|m| m.addr == primary).unwrap();
        assert!(
            !m.breaker.lock().allow(),
            "breaker open after repeated failures"
        );
    }

    #[tokio::test]
    async fn no_healthy_ingester_is_a_retryable_error() {
        let (p, backends) = setup(2, 1);
        for b in &backends {
            b.down.store(true, Ordering::SeqCst);
        }
        assert!(matches!(
            p.write(request("a"), Durability::Sync).await,
            Err(WriteError::Unavailable(_))
        ));
    }
}
