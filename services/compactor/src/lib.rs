//! ferrite's compactor: merges each partition's small, overlapping files into sorted,
//! deduplicated, non-overlapping larger ones, enforces retention and collects garbage.
//! Exactly one is active at a time, by a lease in the catalog.
//!
//! ```text
//!  loop:
//!    lease "compactor" (renewed every ttl/3 by a keeper task) ── not ours ─► stand by
//!    expire_files (retention) ─ purge_deleted (soft-deleted past grace)
//!    partition_summaries ─► per partition: plan ─► Round ─► Executor::run ─► replace_files
//!                                           └─ TooLarge / unreadable ─► skip_partition(reason)
//!    collect marked files past grace; every orphan interval, unreferenced objects past grace
//!    sleep interval
//! ```
//!
//! Invariants:
//! - correctness never depends on the lease: a round commits only if all its inputs are
//!   still live, in one transaction, so two compactors at once waste work but never corrupt;
//!   the lease keeps it to one, and a standby takes over within a TTL of the holder's death;
//! - a partition that fails for reasons of its own is recorded once and skipped until an
//!   operator clears it; failures of the object store or catalog are retried next cycle.

pub mod gc;
pub mod plan;
pub mod round;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use datafusion::execution::TaskContext;
use datafusion::execution::memory_pool::GreedyMemoryPool;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::SessionConfig;
use ferrite_catalog::{CatalogRef, PartitionSummary};
use object_store::ObjectStore;
use tracing::{Instrument as _, info, warn};

use crate::gc::nanos;
use crate::plan::{Limits, Plan};
use crate::round::{Executor, RoundError};

/// The catalog lease the active compactor holds.
pub const LEASE: &str = "compactor";

/// How the compactor works.
#[derive(Debug, Clone)]
pub struct CompactorConfig {
    /// Pause between cycles.
    pub interval: Duration,
    /// Outputs are split to about this size.
    pub target_file_bytes: u64,
    /// Largest estimated memory of one merge; the merge's own buffers are also held to it.
    pub memory_budget_bytes: u64,
    /// Compact a partition's level-0 files once it has this many...
    pub l0_trigger_files: usize,
    /// Merge a partition's small compacted files (under half the target) into level 2 once
    /// this many are adjacent in time...
    pub l1_trigger_files: usize,
    /// ...or either once the partition has had no new file for this long (cold).
    pub cold_after: Duration,
    /// Marked files and unreferenced objects are deleted only after this long.
    pub gc_grace: Duration,
    /// How often the object store is listed for unreferenced objects.
    pub orphan_scan_interval: Duration,
    /// The lease lasts this long unless renewed (every third of it).
    pub lease_ttl: Duration,
    /// Who this compactor is, in the lease: unique per process.
    pub holder: String,
}

impl Default for CompactorConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(10),
            target_file_bytes: 100 << 20,
            memory_budget_bytes: 1 << 30,
            l0_trigger_files: 10,
            l1_trigger_files: 5,
            cold_after: Duration::from_secs(600),
            gc_grace: Duration::from_secs(6 * 3600),
            orphan_scan_interval: Duration::from_secs(3600),
            lease_ttl: Duration::from_secs(15),
            holder: default_holder(),
        }
    }
}

/// `<hostname>-<pid>-<random>`: tells compactors apart in the lease and in logs.
pub fn default_holder() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "compactor".into());
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}-{}-{}", std::process::id(), &random[..8])
}

/// The compactor service.
#[derive(Debug)]
pub struct Compactor {
    config: CompactorConfig,
    executor: Executor,
    /// True while this process holds the lease (set by the keeper task).
    leased: Arc<AtomicBool>,
}

impl Compactor {
    /// A compactor over `catalog` and `store`.
    pub fn new(
        config: CompactorConfig,
        catalog: CatalogRef,
        store: Arc<dyn ObjectStore>,
    ) -> datafusion::error::Result<Self> {
        let store_url = ObjectStoreUrl::parse(ferrite_querier::OBJECT_STORE_URL)?;
        let budget = usize::try_from(config.memory_budget_bytes).unwrap_or(usize::MAX);
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::new(GreedyMemoryPool::new(budget)))
            .build_arc()?;
        runtime.register_object_store(store_url.as_ref(), Arc::clone(&store));
        let task = TaskContext::default()
            .with_session_config(SessionConfig::new())
            .with_runtime(runtime);
        Ok(Self {
            config,
            executor: Executor {
                catalog,
                store,
                store_url,
                task: Arc::new(task),
            },
            leased: Arc::new(AtomicBool::new(false)),
        })
    }

    /// True while this compactor holds the lease.
    pub fn is_active(&self) -> bool {
        self.leased.load(Ordering::Acquire)
    }

    /// Run until `shutdown` resolves; then give the lease up so a standby takes over at
    /// once.
    pub async fn run(self: Arc<Self>, shutdown: impl std::future::Future<Output = ()>) {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let keeper = tokio::spawn(keep_lease(
            Arc::clone(&self.executor.catalog),
            self.config.clone(),
            Arc::clone(&self.leased),
            stop_rx.clone(),
        ));
        let work = Arc::clone(&self);
        let worker = tokio::spawn(async move { work.work(stop_rx).await });
        shutdown.await;
        info!("compactor stopping");
        let _ = stop_tx.send(true);
        // A round cut short commits nothing; its uploads are collected as garbage.
        worker.abort();
        let _ = worker.await;
        let _ = keeper.await;
    }

    async fn work(&self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut last_orphan_scan: Option<Instant> = None;
        loop {
            if self.is_active() {
                let scan_orphans = last_orphan_scan
                    .is_none_or(|t| t.elapsed() >= self.config.orphan_scan_interval);
                if scan_orphans {
                    last_orphan_scan = Some(Instant::now());
                }
                self.cycle(scan_orphans, &stop).await;
            }
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                _ = tokio::time::sleep(self.config.interval) => {}
            }
        }
    }

    /// Take (or renew) the lease once and, if held, run one full cycle with an orphan scan:
    /// for tests and operators who want the work done now. `Ok(false)`: another compactor
    /// holds the lease.
    pub async fn run_once(&self) -> ferrite_catalog::Result<bool> {
        let lease = self
            .executor
            .catalog
            .acquire_lease(LEASE, &self.config.holder, nanos(self.config.lease_ttl))
            .await?;
        self.leased.store(lease.acquired, Ordering::Release);
        if lease.acquired {
            let (_stop_tx, stop) = tokio::sync::watch::channel(false);
            self.cycle(true, &stop).await;
        }
        Ok(lease.acquired)
    }

    /// One pass over everything: retention, purge, compaction, garbage collection.
    pub async fn cycle(&self, scan_orphans: bool, stop: &tokio::sync::watch::Receiver<bool>) {
        let catalog = &self.executor.catalog;
        let grace_ns = nanos(self.config.gc_grace);
        match catalog.expire_files().await {
            Ok(0) => {}
            Ok(n) => info!(
                files = n,
                "retention: files past their database's retention marked"
            ),
            Err(e) => warn!(error = %e, "retention check failed; retrying next cycle"),
        }
        match catalog.purge_deleted(grace_ns).await {
            Ok(r) if r == Default::default() => {}
            Ok(r) => info!(
                files_marked = r.files_marked,
                tables_removed = r.tables_removed,
                databases_removed = r.databases_removed,
                "purged deleted tables and databases past their grace period"
            ),
            Err(e) => warn!(error = %e, "purging deleted tables failed; retrying next cycle"),
        }
        self.compact_all(stop).await;
        let store = &self.executor.store;
        match gc::collect_marked(catalog, store, self.config.gc_grace).await {
            Ok(0) => {}
            Ok(n) => {
                metrics::counter!("ferrite_compactor_deleted_files_total").increment(n);
                info!(
                    files = n,
                    "garbage collection: objects of marked files deleted"
                )
            }
            Err(e) => warn!(error = %e, "garbage collection failed; retrying next cycle"),
        }
        if scan_orphans {
            match gc::collect_orphans(catalog, store, self.config.gc_grace).await {
                Ok(0) => {}
                Ok(n) => {
                    metrics::counter!("ferrite_compactor_deleted_files_total").increment(n);
                    info!(
                        objects = n,
                        "garbage collection: unreferenced objects deleted"
                    )
                }
                Err(e) => warn!(error = %e, "orphan scan failed; retrying next interval"),
            }
        }
    }

    /// Every partition's rounds, until each is idle (or the lease is lost, or a stop).
    async fn compact_all(&self, stop: &tokio::sync::watch::Receiver<bool>) {
        let catalog = &self.executor.catalog;
        let summaries = match catalog.partition_summaries().await {
            Ok(s) => s,
            Err(e) => {
                warn!(error = %e, "cannot list partitions; retrying next cycle");
                return;
            }
        };
        metrics::gauge!("ferrite_compactor_skipped_partitions")
            .set(summaries.iter().filter(|s| s.skipped.is_some()).count() as f64);
        let limits = self.limits();
        // Rounds of one partition per cycle are bounded: each takes inputs away for good,
        // but a partition written faster than it is compacted must not starve the others.
        let mut rounds: HashMap<i64, usize> = HashMap::new();
        for summary in summaries.iter().filter(|s| s.skipped.is_none()) {
            loop {
                if *stop.borrow() || !self.is_active() {
                    return;
                }
                let done = rounds.entry(summary.partition.id.get()).or_default();
                if *done >= MAX_ROUNDS_PER_CYCLE {
                    break;
                }
                *done += 1;
                if !self.round(summary, &limits).await {
                    break;
                }
            }
        }
    }

    /// Plan and run one round of `summary`'s partition: `true` if it compacted something
    /// (another round may follow).
    async fn round(&self, summary: &PartitionSummary, limits: &Limits) -> bool {
        let catalog = &self.executor.catalog;
        let files = match catalog.partition_files(summary.partition.id).await {
            Ok(f) => f,
            Err(e) => {
                warn!(error = %e, partition = summary.partition.id.get(), "cannot list files");
                return false;
            }
        };
        let round = match plan::plan(&files, now_ns(), limits) {
            Plan::Idle => return false,
            Plan::Round(r) => r,
            Plan::TooLarge(why) => {
                self.skip(summary, &why).await;
                return false;
            }
        };
        let span = tracing::debug_span!(
            "compaction round",
            partition = %summary.partition.key,
            files_in = round.inputs.len(),
        );
        let result = self
            .executor
            .run(summary, &round, &self.leased)
            .instrument(span)
            .await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(RoundError::Skip(_)) => "skipped",
            Err(RoundError::Conflict(_)) => "conflict",
            Err(_) => "error",
        };
        metrics::counter!("ferrite_compactor_rounds_total", "outcome" => outcome).increment(1);
        match result {
            Ok(done) => {
                metrics::counter!("ferrite_compactor_files_in_total")
                    .increment(round.inputs.len() as u64);
                metrics::counter!("ferrite_compactor_files_out_total")
                    .increment(done.outputs.len() as u64);
                metrics::counter!("ferrite_compactor_bytes_in_total")
                    .increment(done.bytes_in.max(0) as u64);
                metrics::counter!("ferrite_compactor_bytes_out_total")
                    .increment(done.bytes_out.max(0) as u64);
                true
            }
            Err(RoundError::Skip(why)) => {
                self.skip(summary, &why).await;
                false
            }
            Err(e @ (RoundError::Retry(_) | RoundError::LostLease | RoundError::Conflict(_))) => {
                warn!(
                    database = %summary.database,
                    table = %summary.table,
                    partition = %summary.partition.key,
                    error = %e,
                    "compaction round not committed; its uploads are collected as garbage"
                );
                false
            }
        }
    }

    async fn skip(&self, summary: &PartitionSummary, why: &str) {
        warn!(
            database = %summary.database,
            table = %summary.table,
            partition = %summary.partition.key,
            reason = why,
            "skipping a partition the compactor cannot compact; clear it with \
             `ferritectl partition unskip` once resolved"
        );
        if let Err(e) = self
            .executor
            .catalog
            .skip_partition(summary.partition.id, why)
            .await
        {
            warn!(error = %e, "cannot record the skipped partition");
        }
    }

    fn limits(&self) -> Limits {
        Limits {
            target_file_bytes: self.config.target_file_bytes,
            memory_budget_bytes: self.config.memory_budget_bytes,
            l0_trigger_files: self.config.l0_trigger_files.max(1),
            l1_trigger_files: self.config.l1_trigger_files.max(2),
            cold_after_ns: nanos(self.config.cold_after),
        }
    }
}

/// Rounds of one partition per cycle.
const MAX_ROUNDS_PER_CYCLE: usize = 8;

/// Take the lease and keep renewing it every third of its TTL; `leased` says whether it is
/// held. The lease is held until the moment a request that renewed it was sent plus the
/// TTL: no later than the catalog's own expiry, which counts from when the request arrived.
/// A renewal that fails or is still unanswered by then (catalog down or restarting) lets the
/// lease lapse here first, so two compactors never both believe they hold it.
async fn keep_lease(
    catalog: CatalogRef,
    config: CompactorConfig,
    leased: Arc<AtomicBool>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let ttl_ns = nanos(config.lease_ttl);
    let renew_every = config.lease_ttl / 3;
    // Stop this much before the lease's end, for scheduling delays.
    let margin = config.lease_ttl / 10;
    let mut held_until: Option<Instant> = None;
    let mut standing_by_for: Option<String> = None;
    let lapse = |why: &str| {
        if leased.swap(false, Ordering::AcqRel) {
            metrics::gauge!("ferrite_compactor_active").set(0.0);
            warn!(
                reason = why,
                "compactor lease lapsed: pausing until it is held again"
            );
        }
    };
    loop {
        let asked = Instant::now();
        // While held, wait for the answer only until the lease would end.
        let answer = match held_until {
            Some(until) => {
                let deadline = until.checked_sub(margin).unwrap_or(until);
                match tokio::time::timeout_at(
                    deadline.into(),
                    catalog.acquire_lease(LEASE, &config.holder, ttl_ns),
                )
                .await
                {
                    Ok(answer) => answer,
                    Err(_) => {
                        lapse("the catalog did not answer the renewal in time");
                        held_until = None;
                        continue;
                    }
                }
            }
            None => catalog.acquire_lease(LEASE, &config.holder, ttl_ns).await,
        };
        match answer {
            Ok(lease) if lease.acquired => {
                if !leased.swap(true, Ordering::AcqRel) {
                    info!(holder = %config.holder, "compactor active: holds the lease");
                    metrics::gauge!("ferrite_compactor_active").set(1.0);
                }
                standing_by_for = None;
                held_until = Some(asked + config.lease_ttl);
            }
            Ok(lease) => {
                if leased.swap(false, Ordering::AcqRel) {
                    warn!(holder = %lease.holder, "compactor lease taken over; standing by");
                    metrics::gauge!("ferrite_compactor_active").set(0.0);
                }
                held_until = None;
                if standing_by_for.as_deref() != Some(lease.holder.as_str()) {
                    info!(active = %lease.holder, "compactor standing by: another one holds the lease");
                    standing_by_for = Some(lease.holder);
                }
            }
            Err(e) => {
                warn!(error = %e, "cannot renew the compactor lease");
                if held_until.is_some_and(|t| Instant::now() + renew_every + margin >= t) {
                    lapse("the renewal failed and the lease ends before the next one");
                    held_until = None;
                }
            }
        }
        tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            _ = tokio::time::sleep(renew_every) => {}
        }
    }
    metrics::gauge!("ferrite_compactor_active").set(0.0);
    if leased.swap(false, Ordering::AcqRel)
        && let Err(e) = catalog.release_lease(LEASE, &config.holder).await
    {
        warn!(error = %e, "cannot release the compactor lease; it lapses at its expiry");
    }
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}
