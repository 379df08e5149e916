//! The compactor's catalog operations, on every backend: the lease, replacing files in one
//! transaction, partition summaries and skips, retention, purge and garbage collection.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ferrite_catalog::{Error, ParquetFileParams, PurgeReport};
use ferrite_model::{DatabaseId, DatabaseLimits, PartitionId, TableId};

use crate::Fixture;

const HOUR: i64 = 3_600_000_000_000;

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

fn file(
    db: DatabaseId,
    table: TableId,
    partition: PartitionId,
    (min_time, max_time): (i64, i64),
    level: i16,
) -> ParquetFileParams {
    ParquetFileParams {
        database_id: db,
        table_id: table,
        partition_id: partition,
        object_store_id: uuid::Uuid::new_v4(),
        min_time,
        max_time,
        row_count: 10,
        file_size_bytes: 1000,
        compaction_level: level,
        max_sequence_number: 1,
    }
}

async fn admin(f: &Fixture) -> ferrite_catalog::SqlCatalog {
    ferrite_catalog::SqlCatalog::connect(&f.dsn)
        .await
        .expect("open the catalog again")
}

pub async fn a_lease_has_one_holder_until_it_expires_or_is_released(f: &Fixture) {
    let c = &f.catalog;
    let ttl = 60 * 1_000_000_000;
    assert_eq!(c.lease("compactor").await.unwrap(), None, "never taken");
    let a = c.acquire_lease("compactor", "a", ttl).await.unwrap();
    assert!(a.acquired);
    assert_eq!(a.holder, "a");
    assert!(a.expires_at > now_ns() + ttl / 2);
    // Reading the lease neither takes nor renews it.
    let read = c.lease("compactor").await.unwrap().unwrap();
    assert_eq!((read.holder.as_str(), read.expires_at), ("a", a.expires_at));
    assert!(!read.acquired);

    let b = c.acquire_lease("compactor", "b", ttl).await.unwrap();
    assert!(!b.acquired, "{b:?}");
    assert_eq!(b.holder, "a");
    // Another lease name is independent.
    assert!(c.acquire_lease("other", "b", ttl).await.unwrap().acquired);

    let renewed = c.acquire_lease("compactor", "a", ttl).await.unwrap();
    assert!(renewed.acquired && renewed.expires_at >= a.expires_at);
    // Releasing someone else's lease changes nothing.
    c.release_lease("compactor", "b").await.unwrap();
    assert!(
        !c.acquire_lease("compactor", "b", ttl)
            .await
            .unwrap()
            .acquired
    );

    c.release_lease("compactor", "a").await.unwrap();
    let b = c.acquire_lease("compactor", "b", 1).await.unwrap();
    assert!(b.acquired && b.holder == "b");
    // b's lease lasted 1 ns: a takes it back once it has run out.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let a = c.acquire_lease("compactor", "a", ttl).await.unwrap();
    assert!(a.acquired, "{a:?}");
}

pub async fn replacing_files_is_one_transaction(f: &Fixture) {
    let c = &f.catalog;
    let db = c.create_database("lc").await.unwrap();
    let t = c.create_table(db.id, "cpu").await.unwrap();
    let p = c.create_partition(t.id, "2024-03-05").await.unwrap();
    let f1 = c
        .add_parquet_file(file(db.id, t.id, p.id, (0, 10), 0))
        .await
        .unwrap();
    let f2 = c
        .add_parquet_file(file(db.id, t.id, p.id, (5, 20), 0))
        .await
        .unwrap();
    let version = c.version().await.unwrap();

    let out = file(db.id, t.id, p.id, (0, 20), 1);
    let added = c
        .replace_files(&[f1.id, f2.id], vec![out.clone()])
        .await
        .unwrap();
    assert_eq!(added.len(), 1);
    assert_eq!(added[0].params, out);
    assert!(c.version().await.unwrap() > version, "readers must notice");
    assert_eq!(c.parquet_files(t.id).await.unwrap(), added);
    assert_eq!(c.partition_files(p.id).await.unwrap(), added);

    // A second replacement of f1 (a compactor that lost its lease, say) changes nothing.
    let late = file(db.id, t.id, p.id, (0, 10), 1);
    match c
        .replace_files(&[added[0].id, f1.id], vec![late.clone()])
        .await
    {
        Err(Error::Conflict(m)) => assert!(m.contains("no longer live"), "{m}"),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(c.parquet_files(t.id).await.unwrap(), added);
    assert!(
        c.referenced_objects(&[late.object_store_id])
            .await
            .unwrap()
            .is_empty(),
        "the refused file must not be registered"
    );

    // The replaced files wait for garbage collection; live files are never collected.
    assert!(c.files_to_collect(HOUR, 100).await.unwrap().is_empty());
    tokio::time::sleep(Duration::from_millis(5)).await;
    let collectable = c.files_to_collect(1_000_000, 100).await.unwrap();
    let mut ids: Vec<_> = collectable.iter().map(|f| f.id).collect();
    ids.sort();
    assert_eq!(ids, vec![f1.id, f2.id]);
    assert_eq!(c.files_to_collect(1_000_000, 1).await.unwrap().len(), 1);
    let referenced = c
        .referenced_objects(&[
            f1.params.object_store_id,
            added[0].params.object_store_id,
            uuid::Uuid::new_v4(),
        ])
        .await
        .unwrap();
    assert_eq!(referenced.len(), 2, "marked and live rows both reference");

    assert_eq!(c.delete_files(&[f1.id, added[0].id]).await.unwrap(), 1);
    assert_eq!(
        c.parquet_files(t.id).await.unwrap(),
        added,
        "live file kept"
    );
    assert!(
        c.referenced_objects(&[f1.params.object_store_id])
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn partition_summaries_count_files_by_level_and_show_skips(f: &Fixture) {
    let c = &f.catalog;
    assert!(c.partition_summaries().await.unwrap().is_empty());
    let db = c.create_database("lc").await.unwrap();
    let t = c.create_table(db.id, "cpu").await.unwrap();
    let p1 = c.create_partition(t.id, "2024-03-05").await.unwrap();
    let p2 = c.create_partition(t.id, "2024-03-06").await.unwrap();
    let _empty = c.create_partition(t.id, "2024-03-07").await.unwrap();
    for level in [0, 0, 1, 2] {
        c.add_parquet_file(file(db.id, t.id, p1.id, (0, 10), level))
            .await
            .unwrap();
    }
    let l2 = c
        .add_parquet_file(file(db.id, t.id, p2.id, (0, 10), 2))
        .await
        .unwrap();

    let summaries = c.partition_summaries().await.unwrap();
    assert_eq!(
        summaries.len(),
        2,
        "partitions without live files are left out"
    );
    let s1 = &summaries[0];
    assert_eq!(s1.partition, p1);
    assert_eq!((s1.database.as_str(), s1.table.as_str()), ("lc", "cpu"));
    assert_eq!(s1.database_id, db.id);
    let files: Vec<i64> = s1.levels.iter().map(|l| l.files).collect();
    assert_eq!(files, vec![2, 1, 1]);
    assert_eq!(s1.levels[0].rows, 20);
    assert_eq!(s1.levels[0].bytes, 2000);
    assert_eq!(s1.files(), 4);
    assert!(s1.newest_l0_at.is_some());
    assert_eq!(summaries[1].newest_l0_at, None);
    assert_eq!(summaries[1].skipped, None);

    c.skip_partition(p2.id, "too large for the memory budget")
        .await
        .unwrap();
    c.skip_partition(p2.id, "file 7 cannot be read")
        .await
        .unwrap();
    let skipped = c.partition_summaries().await.unwrap()[1].skipped.clone();
    assert_eq!(skipped.unwrap().reason, "file 7 cannot be read");
    assert!(c.unskip_partition(p2.id).await.unwrap());
    assert!(!c.unskip_partition(p2.id).await.unwrap());
    assert_eq!(c.partition_summaries().await.unwrap()[1].skipped, None);

    // A partition whose files are all replaced leaves the list.
    c.replace_files(&[l2.id], vec![]).await.unwrap();
    assert_eq!(c.partition_summaries().await.unwrap().len(), 1);
}

pub async fn retention_marks_files_whose_rows_are_all_expired(f: &Fixture) {
    let limits = DatabaseLimits {
        retention_period_ns: HOUR,
        ..DatabaseLimits::default()
    };
    admin(f)
        .await
        .create_database_with("short", limits, &Default::default())
        .await
        .unwrap();
    let c = &f.catalog;
    let short = c.database_by_name("short").await.unwrap().unwrap();
    let forever = c.create_database("forever").await.unwrap();
    let now = now_ns();
    let mut tables = vec![];
    for db in [short.id, forever.id] {
        let t = c.create_table(db, "cpu").await.unwrap();
        let p = c.create_partition(t.id, "p").await.unwrap();
        for range in [
            (now - 3 * HOUR, now - 2 * HOUR),
            (now - 2 * HOUR, now),
            (now, now),
        ] {
            c.add_parquet_file(file(db, t.id, p.id, range, 0))
                .await
                .unwrap();
        }
        tables.push(t.id);
    }
    let version = c.version().await.unwrap();
    assert_eq!(c.expire_files().await.unwrap(), 1);
    assert!(c.version().await.unwrap() > version);
    assert_eq!(c.expire_files().await.unwrap(), 0);
    let left: Vec<i64> = c
        .parquet_files(tables[0])
        .await
        .unwrap()
        .iter()
        .map(|f| f.params.max_time)
        .collect();
    assert_eq!(left, vec![now, now], "the straddling file stays");
    assert_eq!(c.parquet_files(tables[1]).await.unwrap().len(), 3);
}

pub async fn deleted_tables_and_databases_are_purged_after_their_grace(f: &Fixture) {
    let c = &f.catalog;
    let db = c.create_database("gone").await.unwrap();
    let keep = c.create_database("kept").await.unwrap();
    let t = c.create_table(db.id, "cpu").await.unwrap();
    let k = c.create_table(keep.id, "cpu").await.unwrap();
    let p = c.create_partition(t.id, "p").await.unwrap();
    let kp = c.create_partition(k.id, "p").await.unwrap();
    let doomed = c
        .add_parquet_file(file(db.id, t.id, p.id, (0, 1), 0))
        .await
        .unwrap();
    c.add_parquet_file(file(keep.id, k.id, kp.id, (0, 1), 0))
        .await
        .unwrap();
    admin(f).await.delete_database("gone").await.unwrap();

    // Within the grace period nothing happens: it may still be undeleted.
    assert_eq!(c.purge_deleted(HOUR).await.unwrap(), PurgeReport::default());
    tokio::time::sleep(Duration::from_millis(5)).await;
    let report = c.purge_deleted(1_000_000).await.unwrap();
    assert_eq!(
        report,
        PurgeReport {
            files_marked: 1,
            ..PurgeReport::default()
        }
    );
    // Its rows go once its files are collected.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let collect = c.files_to_collect(1_000_000, 10).await.unwrap();
    assert_eq!(
        collect.iter().map(|f| f.id).collect::<Vec<_>>(),
        vec![doomed.id]
    );
    c.delete_files(&[doomed.id]).await.unwrap();
    let report = c.purge_deleted(1_000_000).await.unwrap();
    assert_eq!(
        report,
        PurgeReport {
            files_marked: 0,
            tables_removed: 1,
            databases_removed: 1,
        }
    );
    let admin = admin(f).await;
    let all = admin.databases(ferrite_catalog::Status::All).await.unwrap();
    assert_eq!(
        all.iter().map(|d| d.name.as_str()).collect::<Vec<_>>(),
        vec!["kept"]
    );
    assert_eq!(c.parquet_files(k.id).await.unwrap().len(), 1);
}
