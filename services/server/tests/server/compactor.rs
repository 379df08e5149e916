//! The compactor as processes of a cluster (PostgreSQL, MinIO): kill -9 at different points
//! of its rounds leaves the catalog consistent and every answer unchanged, the next one
//! finishes the work and collects what the killed ones left; a standby takes over from a
//! killed active compactor within the lease.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use ferrite_catalog::ParquetFile;
use ferrite_testkit::cluster::{ClusterOptions, TestCluster};

use crate::binary;
use crate::cluster::catalog_files;

const DB: &str = "compaction";
/// 2024-01-01T00:00:00Z, in ns.
const DAY0: i64 = 1_704_067_200_000_000_000;

/// 400 lines over two days of minutes; keys repeat across waves, so a later wave's values
/// must win.
fn wave(w: i64) -> String {
    (0..400)
        .map(|i| {
            let minute = (i * 7919 + w * 104_729) % 2880;
            format!(
                "m,host=h{} v={}i,w={w}i {}\n",
                i % 8,
                i * 10 + w,
                DAY0 + minute * 60_000_000_000
            )
        })
        .collect()
}

async fn answers(url: &str) -> String {
    let sql = "SELECT host, count(*) AS n, sum(v) AS s, max(w) AS mw, min(w) AS lw \
               FROM m GROUP BY host ORDER BY host";
    let r = crate::client()
        .get(format!("{url}/api/v3/query_sql"))
        .query(&[("db", DB), ("q", sql)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.text().await.unwrap()
}

/// Write a wave and wait until the ingester has persisted it.
async fn write_persisted(c: &TestCluster, w: i64) {
    let before = catalog_files(&c.catalog_dsn).await;
    let r = crate::client()
        .post(format!("{}/api/v2/write?bucket={DB}", c.url()))
        .body(wave(w))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let known: BTreeSet<i64> = before.iter().map(|f| f.id.get()).collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let new: Vec<ParquetFile> = catalog_files(&c.catalog_dsn)
            .await
            .into_iter()
            .filter(|f| f.params.compaction_level == 0 && !known.contains(&f.id.get()))
            .collect();
        // The wave touches both days: two level-0 files.
        if new.len() >= 2 {
            return;
        }
        assert!(Instant::now() < deadline, "wave {w} was not persisted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn assert_consistent(files: &[ParquetFile]) {
    let mut compacted: Vec<&ParquetFile> = files
        .iter()
        .filter(|f| f.params.compaction_level > 0)
        .collect();
    compacted.sort_by_key(|f| (f.params.partition_id, f.params.min_time));
    for w in compacted.windows(2) {
        if w[0].params.partition_id == w[1].params.partition_id {
            assert!(
                w[0].params.max_time < w[1].params.min_time,
                "compacted files overlap: {:?} and {:?}",
                w[0],
                w[1]
            );
        }
    }
}

async fn wait_for_log(c: &TestCluster, i: usize, text: &str, within: Duration) -> Duration {
    let start = Instant::now();
    while !c.compactors[i].log().contains(text) {
        assert!(
            start.elapsed() < within,
            "compactor {i} never logged '{text}':\n{}",
            c.compactors[i].log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    start.elapsed()
}

/// The last step of a round the log shows.
fn last_step(log: &str) -> &'static str {
    [
        ("compactor active", "active, before a round"),
        ("compaction output uploaded", "after an upload"),
        ("compaction committing", "during the commit"),
        ("compacted", "after a commit"),
    ]
    .into_iter()
    .filter_map(|(marker, step)| log.rfind(marker).map(|at| (at, step)))
    .max()
    .map_or("starting", |(_, step)| step)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_compactors_leave_answers_unchanged_and_a_standby_takes_over() {
    let opts = ClusterOptions {
        ingesters: 1,
        persist_age_seconds: 1,
        compactor_args: [
            "--compaction-interval-seconds=0.2",
            "--compactor-lease-seconds=2",
            "--compaction-l0-trigger-files=1",
            "--compaction-cold-seconds=0",
            "--compaction-target-file-bytes=16384",
            "--gc-grace-seconds=2",
            "--gc-orphan-scan-seconds=1",
        ]
        .map(String::from)
        .to_vec(),
        ..crate::cluster_options()
    };
    let mut c = TestCluster::start(binary(), opts).await.unwrap();
    let url = c.url();
    for w in 0..4 {
        write_persisted(&c, w).await;
    }

    // kill -9 a few ms to a few hundred ms into its work, with new files in between.
    let mut steps = vec![];
    for (k, delay_ms) in [150u64, 300, 450, 600, 800].into_iter().enumerate() {
        let expected = answers(&url).await;
        let i = c.add_compactor(&[]).await.unwrap();
        wait_for_log(&c, i, "compactor active", Duration::from_secs(20)).await;
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        c.compactors[i].kill9().unwrap();
        steps.push(last_step(&c.compactors[i].log()));
        assert_consistent(&catalog_files(&c.catalog_dsn).await);
        assert_eq!(answers(&url).await, expected, "after kill {k}");
        write_persisted(&c, 10 + k as i64).await;
    }
    println!("compactors killed at: {steps:?}");

    // An active compactor and a standby; kill -9 the active one.
    let expected = answers(&url).await;
    let a = c.add_compactor(&[]).await.unwrap();
    wait_for_log(&c, a, "compactor active", Duration::from_secs(20)).await;
    let b = c.add_compactor(&[]).await.unwrap();
    wait_for_log(&c, b, "standing by", Duration::from_secs(10)).await;
    c.compactors[a].kill9().unwrap();
    let took = wait_for_log(&c, b, "compactor active", Duration::from_secs(10)).await;
    println!("standby took over {took:?} after the kill (lease 2 s)");

    // The standby finishes the work: no level-0 file left, nothing overlapping.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let files = catalog_files(&c.catalog_dsn).await;
        if files.iter().all(|f| f.params.compaction_level > 0) {
            assert_consistent(&files);
            break;
        }
        assert!(Instant::now() < deadline, "level-0 files left: {files:#?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(answers(&url).await, expected);

    // What the killed ones uploaded but never registered, and the replaced files, are
    // collected once the grace period has passed: the bucket holds the live files only.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let live: BTreeSet<String> = catalog_files(&c.catalog_dsn)
            .await
            .iter()
            .map(|f| f.params.object_path())
            .collect();
        let stored: BTreeSet<String> =
            c.s3.list(&c.bucket)
                .await
                .unwrap()
                .iter()
                .map(|o| o.location.to_string())
                .collect();
        if stored == live {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not collected: {:?}; missing: {:?}",
            stored.difference(&live).collect::<Vec<_>>(),
            live.difference(&stored).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(answers(&url).await, expected);

    // A catalog that stops answering (SIGSTOP: requests hang, nothing fails fast): the
    // active compactor stops working within its lease, before anyone else could take it,
    // and takes the lease again once the catalog answers.
    let catalog_pid = c.catalog.pid().unwrap().to_string();
    let signal = |sig: &str| {
        let status = std::process::Command::new("kill")
            .args([sig, &catalog_pid])
            .status()
            .unwrap();
        assert!(status.success());
    };
    let active_before = c.compactors[b].log().matches("compactor active").count();
    signal("-STOP");
    let lapsed = wait_for_log(&c, b, "compactor lease lapsed", Duration::from_secs(5)).await;
    signal("-CONT");
    println!("the compactor stopped {lapsed:?} after the catalog did (lease 2 s)");
    let deadline = Instant::now() + Duration::from_secs(20);
    while c.compactors[b].log().matches("compactor active").count() == active_before {
        assert!(Instant::now() < deadline, "{}", c.compactors[b].log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(answers(&url).await, expected);

    // Every partition holds a bounded number of files: about one per target size of data
    // (16 KiB here; at least half full once merged) and at most one small file next to each
    // full one, as cold partitions merge every run of small files.
    let mut per_partition: std::collections::BTreeMap<i64, (usize, i64)> = Default::default();
    for f in catalog_files(&c.catalog_dsn).await {
        let e = per_partition
            .entry(f.params.partition_id.get())
            .or_default();
        e.0 += 1;
        e.1 += f.params.file_size_bytes;
    }
    for (partition, (files, bytes)) in per_partition {
        let full = 2 * (bytes as usize).div_ceil(16384);
        let bound = 2 * full + 1;
        println!("partition {partition}: {files} files, {bytes} bytes (bound {bound})");
        assert!(
            files <= bound,
            "partition {partition}: {files} files for {bytes} bytes"
        );
    }
}
