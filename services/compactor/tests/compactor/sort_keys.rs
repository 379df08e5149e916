//! Files follow their partition's sort key: tags by cardinality, chosen by the first
//! persist, extended by tags that come later; the compactor merges by that key without
//! sorting again, and its outputs keep it.

use arrow::array::{ArrayRef, RecordBatch};
use arrow::compute::{SortColumn, SortOptions, concat_batches, lexsort_to_indices};
use ferrite_catalog::ParquetFile;
use object_store::ObjectStoreExt;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::harness::{DB, Stack, eager, levels};

/// 2024-01-01T00:00:00Z.
const BASE: i64 = 1_704_067_200_000_000_000;
const MINUTE: i64 = 60_000_000_000;

/// `hosts` hosts over two regions, one point a minute for `minutes`, `suffix` after the tags.
fn lines(hosts: usize, minutes: i64, suffix: &str, value: i64) -> String {
    let mut out = String::new();
    for m in 0..minutes {
        for h in 0..hosts {
            let region = ["us", "eu"][h % 2];
            let time = BASE + m * MINUTE;
            out.push_str(&format!(
                "m,host=h{h:02},region={region}{suffix} v={value}i {time}\n"
            ));
        }
    }
    out
}

/// The partition's sort key as the catalog holds it.
async fn sort_key(stack: &Stack) -> Option<Vec<String>> {
    let db = stack.catalog.database_by_name(DB).await.unwrap().unwrap();
    let table = stack.catalog.list_tables(db.id).await.unwrap().remove(0);
    let partitions = stack.catalog.table_partitions(table.id).await.unwrap();
    assert_eq!(partitions.len(), 1);
    partitions[0].sort_key.clone()
}

/// `file`'s rows are in `key` order (the columns it has), strictly (no key twice), and its
/// Parquet metadata says so.
async fn assert_sorted_by(stack: &Stack, file: &ParquetFile, key: &[&str]) {
    let path = object_store::path::Path::from(file.params.object_path());
    let bytes = stack.store.get(&path).await.unwrap().bytes().await.unwrap();
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).unwrap();
    let parquet_schema = builder.metadata().file_metadata().schema_descr_ptr();
    let declared: Vec<String> = builder.metadata().row_groups()[0]
        .sorting_columns()
        .expect("sorting columns recorded")
        .iter()
        .map(|c| {
            parquet_schema
                .column(c.column_idx as usize)
                .name()
                .to_string()
        })
        .collect();
    let schema = std::sync::Arc::clone(builder.schema());
    let batches: Vec<RecordBatch> = builder.build().unwrap().map(Result::unwrap).collect();
    let rows = concat_batches(&schema, &batches).unwrap();
    let present: Vec<&str> = key
        .iter()
        .copied()
        .filter(|c| rows.column_by_name(c).is_some())
        .collect();
    assert_eq!(declared, present, "file {}", file.id);
    let columns: Vec<SortColumn> = present
        .iter()
        .map(|c| SortColumn {
            values: ArrayRef::clone(rows.column_by_name(c).unwrap()),
            options: Some(SortOptions {
                descending: false,
                nulls_first: true,
            }),
        })
        .collect();
    let order = lexsort_to_indices(&columns, None).unwrap();
    let show = |r: usize| -> String {
        let cells = present.iter().map(|c| {
            arrow::util::display::array_value_to_string(rows.column_by_name(c).unwrap(), r).unwrap()
        });
        cells.collect::<Vec<_>>().join("|")
    };
    if let Some(i) = (0..order.len()).find(|&i| order.value(i) as usize != i) {
        panic!(
            "file {} is not sorted by {present:?}: row {i} is {}, but row {} sorts there",
            file.id,
            show(i),
            order.value(i)
        );
    }
    let keys = arrow::compute::partition(
        &columns
            .iter()
            .map(|c| ArrayRef::clone(&c.values))
            .collect::<Vec<_>>(),
    )
    .unwrap();
    assert_eq!(keys.len(), rows.num_rows(), "file {}: a key twice", file.id);
    assert!(rows.num_rows() > 0, "file {} is empty", file.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_follow_the_partitions_sort_key_through_compaction() {
    let stack = Stack::new().await;
    // 12 hosts over 2 regions: fewest distinct values first puts region before host, where
    // name order would not.
    stack.write(&lines(12, 30, "", 1)).await;
    stack.persist().await;
    assert_eq!(
        sort_key(&stack).await,
        Some(vec!["region".to_string(), "host".to_string()])
    );

    // A tag that arrives later goes last, whatever its cardinality (one value here): the
    // first file is still sorted by the longer key, as it holds only nulls there. Half the
    // rows repeat keys of the first file with a new value; half are new series.
    let mut second = lines(12, 30, "", 2);
    second.truncate(second.len() / 2);
    second.push_str(&lines(12, 30, ",arch=x86", 3));
    stack.write(&second).await;
    stack.persist().await;
    let key = ["region", "host", "arch", "time"];
    assert_eq!(
        sort_key(&stack).await,
        Some(key[..3].iter().map(|t| t.to_string()).collect())
    );
    let files = stack.files().await;
    assert_eq!(levels(&files), [2, 0, 0]);
    for file in &files {
        assert_sorted_by(&stack, file, &key).await;
    }

    let all = "SELECT region, host, arch, CAST(time AS BIGINT) AS t, v FROM m \
               ORDER BY region, host, arch, t";
    let before = stack.rows(all).await;
    assert_eq!(before.len(), 12 * 30 * 2, "one row per key");
    let updated = before.iter().filter(|r| r.ends_with("|2")).count();
    assert_eq!(
        updated,
        12 * 30 / 2,
        "the second write won where it repeated a key"
    );

    assert!(stack.compactor(eager()).run_once().await.unwrap());
    let files = stack.files().await;
    assert_eq!(levels(&files)[0], 0, "{files:#?}");
    for file in &files {
        assert_sorted_by(&stack, file, &key).await;
    }
    assert_eq!(stack.rows(all).await, before);
}
