//! Compaction never changes an answer: random writes with overlapping time ranges,
//! duplicate keys and single-field updates, persisted as many level-0 files, give the same
//! rows as a model of last-write-wins before compaction, after L0 → L1 and after L1 → L2,
//! with unpersisted ingester rows on top.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{ArrayRef, BooleanArray, Float64Array, Int64Array};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::harness::{
    Stack, assert_compacted_files_do_not_overlap, assert_tag_filters_admit_their_values, eager,
    levels,
};

/// 2024-01-01T00:00:00Z.
const BASE: i64 = 1_704_067_200_000_000_000;
const TEN_MINUTES: i64 = 600_000_000_000;
/// Two days of ten-minute steps: two partitions.
const STEPS: i64 = 288;

type Key = (String, String, i64);

#[derive(Debug, Default, Clone)]
struct Fields {
    a: Option<f64>,
    b: Option<i64>,
    c: Option<String>,
    d: Option<bool>,
}

#[derive(Default)]
struct Model {
    rows: BTreeMap<Key, Fields>,
}

impl Model {
    /// Random lines: each sets one to four fields of a random key; applied to the model
    /// in line order, as the database must.
    fn lines(&mut self, rng: &mut StdRng, n: usize) -> String {
        let mut out = String::new();
        for _ in 0..n {
            let host = format!("h{}", rng.random_range(0..4));
            let region = format!("r{}", rng.random_range(0..2));
            let time = BASE + rng.random_range(0..STEPS) * TEN_MINUTES;
            let row = self
                .rows
                .entry((host.clone(), region.clone(), time))
                .or_default();
            let mut fields = vec![];
            while fields.is_empty() {
                if rng.random_bool(0.5) {
                    let v = rng.random_range(-400..400) as f64 / 4.0;
                    row.a = Some(v);
                    fields.push(format!("a={v:?}"));
                }
                if rng.random_bool(0.4) {
                    let v: i64 = rng.random_range(-1000..1000);
                    row.b = Some(v);
                    fields.push(format!("b={v}i"));
                }
                if rng.random_bool(0.3) {
                    let v = format!("s{}", rng.random_range(0..50));
                    fields.push(format!("c=\"{v}\""));
                    row.c = Some(v);
                }
                if rng.random_bool(0.2) {
                    let v = rng.random_bool(0.5);
                    row.d = Some(v);
                    fields.push(format!("d={v}"));
                }
            }
            out.push_str(&format!(
                "m,host={host},region={region} {} {time}\n",
                fields.join(",")
            ));
        }
        out
    }

    /// The rows `SELECT_ALL` must return, formatted as the harness formats them.
    fn expected(&self) -> Vec<String> {
        let options = FormatOptions::default().with_null("");
        let cell = |array: ArrayRef| {
            ArrayFormatter::try_new(array.as_ref(), &options)
                .unwrap()
                .value(0)
                .to_string()
        };
        self.rows
            .iter()
            .map(|((host, region, time), f)| {
                [
                    host.clone(),
                    region.clone(),
                    time.to_string(),
                    cell(Arc::new(Float64Array::from(vec![f.a]))),
                    cell(Arc::new(Int64Array::from(vec![f.b]))),
                    f.c.clone().unwrap_or_default(),
                    cell(Arc::new(BooleanArray::from(vec![f.d]))),
                ]
                .join("|")
            })
            .collect()
    }
}

const SELECT_ALL: &str = "SELECT host, region, CAST(time AS BIGINT) AS t, a, b, c, d FROM m \
                          ORDER BY host, region, t";
const AGGREGATES: &str = "SELECT host, count(*), sum(b), max(a), min(a), count(c), \
                          count(d) FROM m GROUP BY host ORDER BY host";
const SELECTIVE: &str = "SELECT region, count(*), sum(a) FROM m WHERE host = 'h2' AND \
                         time >= '2024-01-01T20:00:00Z' AND time < '2024-01-02T04:00:00Z' \
                         GROUP BY region ORDER BY region";

/// Equal rows, or a short report of the first difference (the full lists are long).
fn same(actual: &[String], expected: &[String], context: &str) {
    if actual == expected {
        return;
    }
    let first = actual
        .iter()
        .zip(expected)
        .position(|(a, e)| a != e)
        .unwrap_or(actual.len().min(expected.len()));
    panic!(
        "{context}: {} rows, expected {}; first difference at row {first}: got {:?}, expected {:?}",
        actual.len(),
        expected.len(),
        actual.get(first),
        expected.get(first)
    );
}

fn same_answers(actual: &[Vec<String>], expected: &[Vec<String>], context: &str) {
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        same(a, e, &format!("{context}, query {i}"));
    }
}

async fn answers(stack: &Stack) -> Vec<Vec<String>> {
    let mut out = vec![];
    for q in [SELECT_ALL, AGGREGATES, SELECTIVE] {
        out.push(stack.rows(q).await);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_at_every_level_keeps_every_answer() {
    for seed in 0..3u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let stack = Stack::new().await;
        let mut model = Model::default();
        for _ in 0..8 {
            stack.write(&model.lines(&mut rng, 150)).await;
            stack.persist().await;
        }
        // Rows still in the ingester, overlapping everything persisted.
        stack.write(&model.lines(&mut rng, 60)).await;
        let before = answers(&stack).await;
        same(
            &before[0],
            &model.expected(),
            &format!("seed {seed}: before compaction"),
        );
        let files = stack.files().await;
        assert_eq!(levels(&files), [16, 0, 0], "seed {seed}: 8 files × 2 days");

        // L0 → L1 only (nothing is cold yet), split into small files.
        let l1_only = stack.compactor(ferrite_compactor::CompactorConfig {
            cold_after: Duration::from_secs(3600),
            target_file_bytes: 6 * 1024,
            ..eager()
        });
        assert!(l1_only.run_once().await.unwrap());
        let files = stack.files().await;
        let [l0, l1, l2] = levels(&files);
        assert_eq!((l0, l2), (0, 0), "seed {seed}: {files:#?}");
        assert!(l1 > 2, "seed {seed}: outputs split by size: {l1} files");
        assert_compacted_files_do_not_overlap(&files);
        same_answers(
            &answers(&stack).await,
            &before,
            &format!("seed {seed}: after L0 → L1"),
        );

        // New level-0 files over the L1 files, then L0 → L1 again.
        for _ in 0..3 {
            stack.write(&model.lines(&mut rng, 100)).await;
            stack.persist().await;
        }
        let with_new_l0 = answers(&stack).await;
        same(
            &with_new_l0[0],
            &model.expected(),
            &format!("seed {seed}: new L0 over L1"),
        );
        assert!(l1_only.run_once().await.unwrap());
        assert_eq!(levels(&stack.files().await)[0], 0);
        assert_compacted_files_do_not_overlap(&stack.files().await);
        same_answers(
            &answers(&stack).await,
            &with_new_l0,
            &format!("seed {seed}: L0 → L1 again"),
        );

        // Cold: L1 → L2, into files of the default target.
        let cold = stack.compactor(eager());
        assert!(cold.run_once().await.unwrap());
        let files = stack.files().await;
        assert_eq!(
            levels(&files),
            [0, 0, 2],
            "seed {seed}: one L2 file per day"
        );
        assert_compacted_files_do_not_overlap(&files);
        for file in &files {
            assert_tag_filters_admit_their_values(&stack, file, &["host", "region"]).await;
        }
        same_answers(
            &answers(&stack).await,
            &with_new_l0,
            &format!("seed {seed}: after L1 → L2"),
        );

        // Everything persisted and compacted once more: the model still holds.
        stack.persist().await;
        assert!(cold.run_once().await.unwrap());
        same(
            &stack.rows(SELECT_ALL).await,
            &model.expected(),
            &format!("seed {seed}: at the end"),
        );
        assert_eq!(levels(&stack.files().await), [0, 0, 2]);
    }
}
