//! Retention, garbage collection, skipped partitions and a day of ingest with the compactor
//! running in the background.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ferrite_catalog::{LimitsUpdate, ParquetFileParams};
use ferrite_compactor::CompactorConfig;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};

use crate::harness::{DB, Stack, assert_compacted_files_do_not_overlap, eager, levels};

const HOUR: i64 = 3_600_000_000_000;

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

/// The object paths of every live file.
async fn live_objects(stack: &Stack) -> BTreeSet<String> {
    stack
        .files()
        .await
        .iter()
        .map(|f| f.params.object_path())
        .collect()
}

async fn count(stack: &Stack) -> String {
    stack.rows("SELECT count(*) FROM cpu").await.concat()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_hides_rows_at_once_then_drops_their_files_and_objects() {
    let stack = Stack::new().await;
    let now = now_ns();
    stack
        .write(&format!(
            "cpu,host=a v=1 {}\ncpu,host=b v=2 {}",
            now - 3 * HOUR,
            now - 3 * HOUR + 1
        ))
        .await;
    stack.persist().await;
    stack.write(&format!("cpu,host=a v=3 {now}")).await;
    stack.persist().await;
    assert_eq!(count(&stack).await, "3");
    let before = live_objects(&stack).await;
    assert_eq!(before.len(), 2);

    stack
        .sql
        .update_database(
            DB,
            LimitsUpdate {
                retention_period_ns: Some(HOUR),
                ..LimitsUpdate::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        count(&stack).await,
        "1",
        "rows past retention are invisible at once"
    );

    let compactor = stack.compactor(CompactorConfig {
        gc_grace: Duration::from_millis(500),
        // Leave the files as they are: this test is about retention.
        l0_trigger_files: 100,
        cold_after: Duration::from_secs(3600),
        ..eager()
    });
    assert!(compactor.run_once().await.unwrap());
    let live = live_objects(&stack).await;
    assert_eq!(
        live.len(),
        1,
        "the expired file is dropped from the catalog"
    );
    assert_eq!(
        stack.objects().await,
        before,
        "its object waits out the grace period"
    );
    assert_eq!(count(&stack).await, "1");

    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(compactor.run_once().await.unwrap());
    assert_eq!(
        stack.objects().await,
        live,
        "collected after the grace period"
    );
    assert!(
        stack
            .catalog
            .files_to_collect(0, 10)
            .await
            .unwrap()
            .is_empty(),
        "and its row is gone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_collection_spares_young_and_referenced_objects() {
    let stack = Stack::new().await;
    stack
        .write("cpu,host=a v=1 1000\ncpu,host=b v=2 2000")
        .await;
    stack.persist().await;
    let file = stack.files().await.remove(0);
    let at = |id: uuid::Uuid| ParquetFileParams {
        object_store_id: id,
        ..file.params.clone()
    };
    let bytes = stack
        .store
        .get(&Path::from(file.params.object_path()))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    // A crashed upload, and a persist in flight: both uploaded, neither registered yet.
    let crashed = at(uuid::Uuid::new_v4());
    let in_flight = at(uuid::Uuid::new_v4());
    let foreign = Path::from("dbs/README.txt");
    for p in [&crashed, &in_flight] {
        stack
            .store
            .put(
                &Path::from(p.object_path()),
                PutPayload::from(bytes.clone()),
            )
            .await
            .unwrap();
    }
    stack
        .store
        .put(&foreign, PutPayload::from_static(b"not ferrite's"))
        .await
        .unwrap();

    let compactor = stack.compactor(CompactorConfig {
        gc_grace: Duration::from_secs(1),
        l0_trigger_files: 100,
        cold_after: Duration::from_secs(3600),
        ..eager()
    });
    let all = stack.objects().await;
    assert!(compactor.run_once().await.unwrap());
    assert_eq!(
        stack.objects().await,
        all,
        "nothing younger than the grace period goes"
    );

    // The persist in flight registers its file; then the grace period passes.
    stack
        .catalog
        .add_parquet_file(in_flight.clone())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(compactor.run_once().await.unwrap());
    let left = stack.objects().await;
    assert!(
        !left.contains(&crashed.object_path()),
        "the orphan is collected"
    );
    assert!(
        left.contains(&in_flight.object_path()),
        "a referenced object stays"
    );
    assert!(left.contains(&file.params.object_path()));
    assert!(
        left.contains(foreign.as_ref()),
        "objects ferrite did not write stay"
    );
    // Both registered files hold the same two rows: dedup makes them one.
    assert_eq!(count(&stack).await, "2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collection_racing_persists_never_loses_a_file() {
    let stack = Arc::new(Stack::new().await);
    let compactor = Arc::new(stack.compactor(CompactorConfig {
        gc_grace: Duration::from_millis(300),
        target_file_bytes: 8 * 1024,
        ..eager()
    }));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let collector = {
        let compactor = Arc::clone(&compactor);
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            while !*stop.borrow() {
                compactor.run_once().await.unwrap();
                tokio::select! {
                    _ = stop.changed() => {}
                    _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                }
            }
        })
    };
    let mut written = 0;
    for round in 0..40 {
        let lines: Vec<String> = (0..50)
            .map(|i| format!("cpu,host=h{} v={round} {}", i % 7, round * 1000 + i))
            .collect();
        stack.write(&lines.join("\n")).await;
        written += 50;
        stack.persist().await;
    }
    let _ = stop_tx.send(true);
    collector.await.unwrap();
    // Every live file's object exists (the queries read them all) and nothing is lost.
    let objects = stack.objects().await;
    for path in live_objects(&stack).await {
        assert!(objects.contains(&path), "{path} was collected while live");
    }
    assert_eq!(count(&stack).await, written.to_string());
    // Once the grace period has passed, only live files' objects are left.
    let collect_only = stack.compactor(CompactorConfig {
        gc_grace: Duration::from_millis(300),
        l0_trigger_files: 1000,
        l1_trigger_files: 1000,
        cold_after: Duration::from_secs(3600),
        ..eager()
    });
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert!(collect_only.run_once().await.unwrap());
    assert_eq!(stack.objects().await, live_objects(&stack).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_that_cannot_be_compacted_is_skipped_with_its_reason() {
    let stack = Stack::new().await;
    for i in 0..2 {
        stack.write(&format!("cpu,host=a v={i} 1000")).await;
        stack.persist().await;
    }
    let files = stack.files().await;
    let broken = Path::from(files[1].params.object_path());
    let original = stack
        .store
        .get(&broken)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    stack
        .store
        .put(
            &broken,
            PutPayload::from_static(b"PAR1 this is not parquet PAR1"),
        )
        .await
        .unwrap();

    let compactor = stack.compactor(eager());
    assert!(compactor.run_once().await.unwrap());
    let summary = stack.catalog.partition_summaries().await.unwrap().remove(0);
    let skipped = summary.skipped.expect("skipped");
    assert!(
        skipped.reason.contains("cannot be read"),
        "{}",
        skipped.reason
    );
    assert_eq!(stack.files().await, files, "nothing changed");

    // Not tried again: the record stays as it was.
    assert!(compactor.run_once().await.unwrap());
    let again = stack.catalog.partition_summaries().await.unwrap().remove(0);
    assert_eq!(again.skipped.unwrap().skipped_at, skipped.skipped_at);

    // Repaired and cleared by an operator: compacted.
    stack.store.put(&broken, original.into()).await.unwrap();
    assert!(
        stack
            .catalog
            .unskip_partition(summary.partition.id)
            .await
            .unwrap()
    );
    assert!(compactor.run_once().await.unwrap());
    assert_eq!(levels(&stack.files().await), [0, 1, 0]);
    assert_eq!(stack.rows("SELECT v FROM cpu").await, vec!["1.0"]);

    // Too large for the memory budget: skipped with that reason, before any work.
    stack.write("cpu,host=a v=7 1000").await;
    stack.persist().await;
    let tiny = stack.compactor(CompactorConfig {
        memory_budget_bytes: 1 << 20,
        ..eager()
    });
    assert!(tiny.run_once().await.unwrap());
    let summary = stack.catalog.partition_summaries().await.unwrap().remove(0);
    let reason = summary.skipped.expect("skipped").reason;
    assert!(reason.contains("memory budget of 1 MiB"), "{reason}");
    assert_eq!(stack.rows("SELECT v FROM cpu").await, vec!["7.0"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_of_ingest_leaves_a_bounded_number_of_files_per_partition() {
    let stack = Arc::new(Stack::new().await);
    let target = 16 * 1024;
    let trigger = 4;
    let l1_trigger = 3;
    let compactor = Arc::new(stack.compactor(CompactorConfig {
        interval: Duration::from_millis(100),
        l0_trigger_files: trigger,
        l1_trigger_files: l1_trigger,
        cold_after: Duration::from_secs(3600),
        target_file_bytes: target,
        ..eager()
    }));
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let running = tokio::spawn(Arc::clone(&compactor).run(async move {
        let _ = stop_rx.wait_for(|s| *s).await;
    }));
    // 2024-01-01, hour by hour: 6 persists an hour, 100 rows each, over 10 hosts.
    let day = 1_704_067_200_000_000_000i64;
    let mut rows = 0;
    for hour in 0..24 {
        for part in 0..6 {
            let lines: Vec<String> = (0..100)
                .map(|i| {
                    let t = day + hour * HOUR + (part * 100 + i) * 6_000_000_000;
                    format!("cpu,host=h{} v={i},w={part}i {t}", i % 10)
                })
                .collect();
            stack.write(&lines.join("\n")).await;
            rows += 100;
            stack.persist().await;
        }
    }
    // Let the compactor catch up with the last persists.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let files = stack.files().await;
        if levels(&files)[0] < trigger {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{:?}",
            levels(&files)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = stop_tx.send(true);
    running.await.unwrap();

    let files = stack.files().await;
    let [l0, l1, l2] = levels(&files);
    let bytes: i64 = files.iter().map(|f| f.params.file_size_bytes).sum();
    // The bound: fewer L0 files than their trigger; compacted files at least half the
    // target size each, plus fewer small ones in a row than their trigger (at most one such
    // run next to each large file, and one more at the end).
    let large = 2 * (bytes as u64).div_ceil(target) as usize;
    let bound = large + (large + 1) * (l1_trigger - 1);
    assert!(l0 < trigger, "{l0} level-0 files");
    assert!(
        l1 + l2 <= bound,
        "{l1} + {l2} compacted files for {bytes} bytes, bound {bound}"
    );
    assert!(l1 + l2 >= 2, "the day was split: {l1} + {l2}");
    assert_compacted_files_do_not_overlap(&files);
    assert_eq!(count(&stack).await, rows.to_string());
    // 144 persists became a handful of files.
    println!("a day of 144 persists: {l0} L0, {l1} L1, {l2} L2 files, {bytes} bytes");
}
