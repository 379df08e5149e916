//! Selector aggregates with many groups: TSBS's "lastpoint" shape,
//! `SELECT host, selector_last(usage, time) FROM t GROUP BY host`.
//!
//! `make bench-selectors` (which reuses the release DataFusion of `make bench-e2e`; see
//! docs/benchmarks.md) runs, over one in-memory table of
//! 1,000,000 rows (10,000 hosts × 100 times, time-ordered with the hosts interleaved as TSBS
//! writes them; two partitions of 8,192-row batches, so the aggregate runs in partial and
//! final phases on both cores):
//! * `selector_last` and `selector_max` of a Float64 field per host;
//! * `last_value(usage ORDER BY time)` per host: DataFusion's own aggregate, as a baseline.

use std::hint::black_box;
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, RecordBatch, StringArray, TimestampNanosecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use criterion::{Criterion, criterion_group, criterion_main};
use datafusion::datasource::MemTable;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};
use tokio::runtime::Runtime;

const HOSTS: usize = 10_000;
const TIMES: usize = 100;
const BATCH_ROWS: usize = 8_192;
const PARTITIONS: usize = 2;

/// The table `t(host, time, usage)`; usage is pseudo-random so max and last differ.
fn table() -> MemTable {
    let schema = Arc::new(Schema::new(vec![
        Field::new("host", DataType::Utf8, false),
        Field::new(
            "time",
            DataType::Timestamp(TimeUnit::Nanosecond, None),
            false,
        ),
        Field::new("usage", DataType::Float64, true),
    ]));
    let rows = HOSTS * TIMES;
    let names: Vec<String> = (0..HOSTS).map(|h| format!("host_{h}")).collect();
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut usage = move || {
        // xorshift: cheap, deterministic, no dependency.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % 10_000) as f64 / 100.0
    };
    let mut partitions = vec![Vec::new(); PARTITIONS];
    for (i, start) in (0..rows).step_by(BATCH_ROWS).enumerate() {
        let end = (start + BATCH_ROWS).min(rows);
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(
                (start..end).map(|r| &names[r % HOSTS]),
            )),
            Arc::new(TimestampNanosecondArray::from_iter_values(
                (start..end)
                    .map(|r| 1_700_000_000_000_000_000 + (r / HOSTS) as i64 * 10_000_000_000),
            )),
            Arc::new(Float64Array::from_iter_values(
                (start..end).map(|_| usage()),
            )),
        ];
        let batch = RecordBatch::try_new(Arc::clone(&schema), columns).unwrap();
        partitions[i % PARTITIONS].push(batch);
    }
    MemTable::try_new(schema, partitions).unwrap()
}

fn context() -> SessionContext {
    let config = SessionConfig::new()
        .with_target_partitions(PARTITIONS)
        .with_batch_size(BATCH_ROWS);
    let builder = SessionStateBuilder::new()
        .with_config(config)
        .with_default_features();
    let ctx = SessionContext::new_with_state(ferrite_querier::install_functions(builder).build());
    ctx.register_table("t", Arc::new(table())).unwrap();
    ctx
}

fn lastpoint(c: &mut Criterion) {
    let rt = Runtime::new().unwrap();
    let ctx = context();
    let mut group = c.benchmark_group("lastpoint-10k-hosts-1M-rows");
    group.sample_size(10);
    for (name, aggregate) in [
        ("selector_last", "selector_last(usage, time)"),
        ("selector_max", "selector_max(usage, time)"),
        (
            "last_value-order-by-time",
            "last_value(usage ORDER BY time)",
        ),
    ] {
        let sql = format!("SELECT host, {aggregate} FROM t GROUP BY host");
        // Once outside the clock: the answer has one row per host.
        let rows: usize = rt
            .block_on(async { ctx.sql(&sql).await?.collect().await })
            .unwrap()
            .iter()
            .map(RecordBatch::num_rows)
            .sum();
        assert_eq!(rows, HOSTS, "{sql}");
        group.bench_function(name, |b| {
            b.iter(|| {
                rt.block_on(async { ctx.sql(&sql).await?.collect().await })
                    .map(black_box)
                    .unwrap()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, lastpoint);
criterion_main!(benches);
