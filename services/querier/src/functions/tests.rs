//! The functions as a user sees them: SQL over in-memory tables split into several
//! partitions and batches, in a session that plans aggregates in partial and final phases.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampNanosecondArray, UInt64Array,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::util::pretty::pretty_format_batches;
use datafusion::datasource::MemTable;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};

use super::install;

/// Nanoseconds of `2024-01-01T<hh:mm>:00Z`, with hour 24 meaning the next day's midnight.
fn at(hh_mm: &str) -> i64 {
    let (h, m) = hh_mm.split_once(':').unwrap();
    let minutes: i64 = h.parse::<i64>().unwrap() * 60 + m.parse::<i64>().unwrap();
    1_704_067_200_000_000_000 + minutes * 60_000_000_000
}

fn time_field() -> Field {
    Field::new(
        "time",
        DataType::Timestamp(TimeUnit::Nanosecond, None),
        false,
    )
}

/// A session with target_partitions = 4, so aggregates run as partial + final.
fn context() -> SessionContext {
    let config = SessionConfig::new()
        .with_target_partitions(4)
        .with_batch_size(4);
    let builder = SessionStateBuilder::new()
        .with_config(config)
        .with_default_features();
    SessionContext::new_with_state(install(builder).build())
}

fn register(
    ctx: &SessionContext,
    name: &str,
    schema: SchemaRef,
    partitions: Vec<Vec<RecordBatch>>,
) {
    let table = MemTable::try_new(schema, partitions).unwrap();
    ctx.register_table(name, Arc::new(table)).unwrap();
}

async fn query(ctx: &SessionContext, sql: &str) -> String {
    let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    pretty_format_batches(&batches).unwrap().to_string()
}

/// The error planning (or running) `sql` fails with.
async fn query_error(ctx: &SessionContext, sql: &str) -> String {
    let result = match ctx.sql(sql).await {
        Ok(df) => df.collect().await,
        Err(e) => Err(e),
    };
    match result {
        Ok(batches) => panic!(
            "expected an error, got\n{}",
            pretty_format_batches(&batches).unwrap()
        ),
        Err(e) => e.to_string(),
    }
}

fn assert_table(actual: &str, expected: &str) {
    let expected = expected
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(
        actual, expected,
        "\nactual:\n{actual}\nexpected:\n{expected}"
    );
}

// ─── selectors ──────────────────────────────────────────────────────────────────────────

/// `sel`: hosts a and b, one column per value type, spread over three partitions.
///
/// ```text
///  host time  f     i     u     s     b
///  a    00:00 1.0   5     7     x     true
///  a    00:01 NULL  9     3     NULL  false
///  a    00:02 3.0   5     NULL  z     true
///  a    00:03 NULL  1     9     y     NULL
///  b    00:00 4.0   2     2     m     NULL
///  b    00:01 4.0   NULL  8     n     true
///  b    00:02 2.0   7     8     NULL  false
/// ```
fn selector_context() -> SessionContext {
    let schema = Arc::new(Schema::new(vec![
        Field::new("host", DataType::Utf8, false),
        time_field(),
        Field::new("f", DataType::Float64, true),
        Field::new("i", DataType::Int64, true),
        Field::new("u", DataType::UInt64, true),
        Field::new("s", DataType::Utf8, true),
        Field::new("b", DataType::Boolean, true),
    ]));
    type Row<'a> = (
        &'a str,
        &'a str,
        Option<f64>,
        Option<i64>,
        Option<u64>,
        Option<&'a str>,
        Option<bool>,
    );
    let batch = |rows: &[Row<'_>]| {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
            Arc::new(TimestampNanosecondArray::from_iter_values(
                rows.iter().map(|r| at(r.1)),
            )),
            Arc::new(Float64Array::from_iter(rows.iter().map(|r| r.2))),
            Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.3))),
            Arc::new(UInt64Array::from_iter(rows.iter().map(|r| r.4))),
            Arc::new(StringArray::from_iter(rows.iter().map(|r| r.5))),
            Arc::new(BooleanArray::from_iter(rows.iter().map(|r| r.6))),
        ];
        RecordBatch::try_new(Arc::clone(&schema), columns).unwrap()
    };
    let ctx = context();
    register(
        &ctx,
        "sel",
        Arc::clone(&schema),
        vec![
            vec![
                batch(&[
                    (
                        "a",
                        "00:00",
                        Some(1.0),
                        Some(5),
                        Some(7),
                        Some("x"),
                        Some(true),
                    ),
                    ("a", "00:01", None, Some(9), Some(3), None, Some(false)),
                    ("b", "00:00", Some(4.0), Some(2), Some(2), Some("m"), None),
                ]),
                batch(&[(
                    "a",
                    "00:02",
                    Some(3.0),
                    Some(5),
                    None,
                    Some("z"),
                    Some(true),
                )]),
            ],
            vec![batch(&[
                ("a", "00:03", None, Some(1), Some(9), Some("y"), None),
                (
                    "b",
                    "00:01",
                    Some(4.0),
                    None,
                    Some(8),
                    Some("n"),
                    Some(true),
                ),
            ])],
            vec![batch(&[(
                "b",
                "00:02",
                Some(2.0),
                Some(7),
                Some(8),
                None,
                Some(false),
            )])],
        ],
    );
    ctx
}

#[tokio::test]
async fn selector_first_and_last_pick_the_earliest_and_latest_non_null_value_per_group() {
    let ctx = selector_context();
    let actual = query(
        &ctx,
        "SELECT host, \
           selector_first(f, time)['value'] AS first, selector_first(f, time)['time'] AS first_time, \
           selector_last(f, time)['value'] AS last, selector_last(f, time)['time'] AS last_time \
         FROM sel GROUP BY host ORDER BY host",
    )
    .await;
    assert_table(
        &actual,
        "
        +------+-------+---------------------+------+---------------------+
        | host | first | first_time          | last | last_time           |
        +------+-------+---------------------+------+---------------------+
        | a    | 1.0   | 2024-01-01T00:00:00 | 3.0  | 2024-01-01T00:02:00 |
        | b    | 4.0   | 2024-01-01T00:00:00 | 2.0  | 2024-01-01T00:02:00 |
        +------+-------+---------------------+------+---------------------+
        ",
    );
}

#[tokio::test]
async fn selector_min_and_max_break_ties_by_the_earliest_time() {
    let ctx = selector_context();
    // b's f is 4.0 at 00:00 and 00:01; b's u is 8 at 00:01 and 00:02.
    let actual = query(
        &ctx,
        "SELECT host, \
           selector_min(f, time) AS min_f, selector_max(f, time) AS max_f, \
           selector_max(u, time) AS max_u \
         FROM sel GROUP BY host ORDER BY host",
    )
    .await;
    assert_table(
        &actual,
        "
        +------+-----------------------------------------+-----------------------------------------+---------------------------------------+
        | host | min_f                                   | max_f                                   | max_u                                 |
        +------+-----------------------------------------+-----------------------------------------+---------------------------------------+
        | a    | {value: 1.0, time: 2024-01-01T00:00:00} | {value: 3.0, time: 2024-01-01T00:02:00} | {value: 9, time: 2024-01-01T00:03:00} |
        | b    | {value: 2.0, time: 2024-01-01T00:02:00} | {value: 4.0, time: 2024-01-01T00:00:00} | {value: 8, time: 2024-01-01T00:01:00} |
        +------+-----------------------------------------+-----------------------------------------+---------------------------------------+
        ",
    );
}

#[tokio::test]
async fn selectors_work_on_integer_unsigned_string_and_boolean_values() {
    let ctx = selector_context();
    let actual = query(
        &ctx,
        "SELECT host, \
           selector_min(i, time)['value'] AS min_i, selector_max(i, time)['value'] AS max_i, \
           selector_first(u, time)['value'] AS first_u, selector_last(u, time)['value'] AS last_u, \
           selector_min(s, time)['value'] AS min_s, selector_max(s, time)['value'] AS max_s, \
           selector_last(s, time)['value'] AS last_s, \
           selector_min(b, time)['value'] AS min_b, selector_max(b, time)['time'] AS max_b_time, \
           selector_last(b, time)['value'] AS last_b \
         FROM sel GROUP BY host ORDER BY host",
    )
    .await;
    assert_table(
        &actual,
        "
        +------+-------+-------+---------+--------+-------+-------+--------+-------+---------------------+--------+
        | host | min_i | max_i | first_u | last_u | min_s | max_s | last_s | min_b | max_b_time          | last_b |
        +------+-------+-------+---------+--------+-------+-------+--------+-------+---------------------+--------+
        | a    | 1     | 9     | 7       | 9      | x     | z     | y      | false | 2024-01-01T00:00:00 | true   |
        | b    | 2     | 7     | 2       | 8      | m     | n     | n      | false | 2024-01-01T00:01:00 | false  |
        +------+-------+-------+---------+--------+-------+-------+--------+-------+---------------------+--------+
        ",
    );
}

#[tokio::test]
async fn value_types_without_a_groups_accumulator_still_select_per_group() {
    // Decimal values take the per-group accumulator under GROUP BY.
    let ctx = selector_context();
    let actual = query(
        &ctx,
        "SELECT host, selector_max(CAST(f AS DECIMAL(10, 2)), time) AS max_f \
         FROM sel GROUP BY host ORDER BY host",
    )
    .await;
    assert_table(
        &actual,
        "
        +------+------------------------------------------+
        | host | max_f                                    |
        +------+------------------------------------------+
        | a    | {value: 3.00, time: 2024-01-01T00:02:00} |
        | b    | {value: 4.00, time: 2024-01-01T00:00:00} |
        +------+------------------------------------------+
        ",
    );
}

#[tokio::test]
async fn selectors_run_in_partial_and_final_phases() {
    let ctx = selector_context();
    let plan = query(
        &ctx,
        "EXPLAIN SELECT host, selector_last(f, time) FROM sel GROUP BY host",
    )
    .await;
    assert!(plan.contains("mode=Partial"), "{plan}");
    assert!(plan.contains("mode=FinalPartitioned"), "{plan}");
}

#[tokio::test]
async fn a_group_without_non_null_values_selects_null() {
    let ctx = selector_context();
    let actual = query(
        &ctx,
        "SELECT selector_first(f, time) AS first, selector_max(s, time)['value'] AS max_s, \
           arrow_typeof(selector_first(f, time)) AS type \
         FROM sel WHERE f IS NULL",
    )
    .await;
    assert_table(
        &actual,
        "
        +-------+-------+-------------------------------------------------+
        | first | max_s | type                                            |
        +-------+-------+-------------------------------------------------+
        |       | y     | Struct(\"value\": Float64, \"time\": Timestamp(ns)) |
        +-------+-------+-------------------------------------------------+
        ",
    );
}

#[tokio::test]
async fn selectors_need_a_value_and_a_timestamp() {
    let ctx = selector_context();
    let error = query_error(&ctx, "SELECT selector_first(f, host) FROM sel").await;
    assert!(
        error.contains(
            "selector_first's second argument must be a timestamp (the time column), got Utf8"
        ),
        "{error}"
    );
    let error = query_error(&ctx, "SELECT selector_last(f) FROM sel").await;
    assert!(
        error.contains("selector_last takes two arguments, a value and the time column"),
        "{error}"
    );
}

/// Many groups, rows in random order over partitions and batches, compared with the same
/// selection computed in plain Rust. Times are unique within a group, so the answer does not
/// depend on which partition's state merges first.
mod many_groups {
    use std::cmp::Ordering;

    use arrow::array::{Array, AsArray};
    use datafusion::common::ScalarValue;

    use super::*;

    const GROUPS: i64 = 1_000;
    const ROWS_PER_GROUP: i64 = 12;

    struct Row {
        g: i64,
        time: Option<i64>,
        f: Option<f64>,
        i: Option<i64>,
        u: Option<u64>,
        s: Option<String>,
        b: Option<bool>,
    }

    /// xorshift, so the rows are the same on every run.
    struct Random(u64);

    impl Random {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        /// `None` one time in five, else `value(random)`.
        fn maybe<T>(&mut self, value: impl FnOnce(u64) -> T) -> Option<T> {
            let r = self.next();
            (!r.is_multiple_of(5)).then(|| value(r >> 8))
        }
    }

    /// Group 0 has only NULL values and group 1 only NULL times; values repeat often within
    /// a group, so min/max ties are broken by time.
    fn generate() -> Vec<Row> {
        let mut random = Random(0x9e37_79b9_7f4a_7c15);
        let mut rows = Vec::new();
        for g in 0..GROUPS {
            for k in 0..ROWS_PER_GROUP {
                let mut row = Row {
                    g,
                    time: Some(1_000 * k + g % 7),
                    f: random.maybe(|r| (r % 20) as f64 / 2.0 - 3.0),
                    i: random.maybe(|r| (r % 15) as i64 - 7),
                    u: random.maybe(|r| r % 12),
                    s: random.maybe(|r| format!("s{:02}", r % 9)),
                    b: random.maybe(|r| r.is_multiple_of(2)),
                };
                if g == 0 {
                    (row.f, row.i, row.u, row.s, row.b) = (None, None, None, None, None);
                }
                if g == 1 {
                    row.time = None;
                }
                rows.push(row);
            }
        }
        for n in (1..rows.len()).rev() {
            let m = (random.next() % (n as u64 + 1)) as usize;
            rows.swap(n, m);
        }
        rows
    }

    /// `skip_partial_aggregation`: the partial phase passes every row on as its own state
    /// (`convert_to_state`) from the first batch, as DataFusion does when grouping barely
    /// reduces the rows.
    fn context(rows: &[Row], skip_partial_aggregation: bool) -> SessionContext {
        let schema = Arc::new(Schema::new(vec![
            Field::new("g", DataType::Int64, false),
            Field::new(
                "time",
                DataType::Timestamp(TimeUnit::Nanosecond, None),
                true,
            ),
            Field::new("f", DataType::Float64, true),
            Field::new("i", DataType::Int64, true),
            Field::new("u", DataType::UInt64, true),
            Field::new("s", DataType::Utf8, true),
            Field::new("b", DataType::Boolean, true),
        ]));
        let batch = |rows: &[Row]| {
            let columns: Vec<ArrayRef> = vec![
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.g))),
                Arc::new(TimestampNanosecondArray::from_iter(
                    rows.iter().map(|r| r.time),
                )),
                Arc::new(Float64Array::from_iter(rows.iter().map(|r| r.f))),
                Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.i))),
                Arc::new(UInt64Array::from_iter(rows.iter().map(|r| r.u))),
                Arc::new(StringArray::from_iter(rows.iter().map(|r| r.s.as_deref()))),
                Arc::new(BooleanArray::from_iter(rows.iter().map(|r| r.b))),
            ];
            RecordBatch::try_new(Arc::clone(&schema), columns).unwrap()
        };
        let mut partitions = vec![Vec::new(); 3];
        for (n, chunk) in rows.chunks(500).enumerate() {
            partitions[n % 3].push(batch(chunk));
        }
        let mut config = SessionConfig::new()
            .with_target_partitions(4)
            .with_batch_size(256);
        if skip_partial_aggregation {
            let execution = &mut config.options_mut().execution;
            execution.skip_partial_aggregation_probe_rows_threshold = 1;
            execution.skip_partial_aggregation_probe_ratio_threshold = 0.0;
        }
        let builder = SessionStateBuilder::new()
            .with_config(config)
            .with_default_features();
        let ctx = SessionContext::new_with_state(install(builder).build());
        register(&ctx, "many", schema, partitions);
        ctx
    }

    type Selected = Option<(ScalarValue, i64)>;

    /// Per group, the row `selection` picks among the rows `usable` accepts, in plain Rust.
    fn reference<T>(
        rows: &[Row],
        selection: &str,
        value: impl Fn(&Row) -> Option<T>,
        order: impl Fn(&T, &T) -> Ordering,
        scalar: impl Fn(T) -> ScalarValue,
        usable: impl Fn(&Row) -> bool,
    ) -> Vec<Selected> {
        let mut best: Vec<Option<(T, i64)>> = (0..GROUPS).map(|_| None).collect();
        for row in rows.iter().filter(|r| usable(r)) {
            let (Some(v), Some(t)) = (value(row), row.time) else {
                continue;
            };
            let slot = &mut best[row.g as usize];
            let wins = match slot {
                None => true,
                Some((bv, bt)) => match selection {
                    "first" => t < *bt,
                    "last" => t > *bt,
                    "min" => order(&v, bv).then(t.cmp(bt)).is_lt(),
                    "max" => order(&v, bv).reverse().then(t.cmp(bt)).is_lt(),
                    other => panic!("{other}"),
                },
            };
            if wins {
                *slot = Some((v, t));
            }
        }
        best.into_iter()
            .map(|b| b.map(|(v, t)| (scalar(v), t)))
            .collect()
    }

    /// Runs `SELECT g, <aggregate> ... GROUP BY g ORDER BY g` and returns the selector's
    /// `(value, time)` per group, `None` for a NULL struct.
    async fn selected(ctx: &SessionContext, aggregate: &str) -> Vec<Selected> {
        let sql = format!("SELECT g, {aggregate} AS sel FROM many GROUP BY g ORDER BY g");
        let batches = ctx.sql(&sql).await.unwrap().collect().await.unwrap();
        let mut out = Vec::new();
        for batch in batches {
            let sel = batch.column(1).as_struct();
            let times = sel
                .column(1)
                .as_primitive::<arrow::datatypes::TimestampNanosecondType>();
            for row in 0..batch.num_rows() {
                out.push(sel.is_valid(row).then(|| {
                    (
                        ScalarValue::try_from_array(sel.column(0), row).unwrap(),
                        times.value(row),
                    )
                }));
            }
        }
        assert_eq!(out.len(), GROUPS as usize, "{sql}");
        out
    }

    async fn check<T>(
        ctx: &SessionContext,
        rows: &[Row],
        column: &str,
        value: impl Fn(&Row) -> Option<T> + Copy,
        order: impl Fn(&T, &T) -> Ordering + Copy,
        scalar: impl Fn(T) -> ScalarValue + Copy,
    ) {
        for selection in ["first", "last", "min", "max"] {
            let aggregate = format!("selector_{selection}({column}, time)");
            let expected = reference(rows, selection, value, order, scalar, |_| true);
            let actual = selected(ctx, &aggregate).await;
            assert!(expected[0].is_none() && expected[1].is_none());
            for (g, (a, e)) in actual.iter().zip(&expected).enumerate() {
                assert_eq!(a, e, "{aggregate}, group {g}");
            }
        }
    }

    #[tokio::test]
    async fn selectors_over_a_thousand_groups_match_a_plain_rust_reference() {
        let rows = generate();
        check_all(&context(&rows, false), &rows).await;
    }

    /// Every selector on every value column against the reference.
    async fn check_all(ctx: &SessionContext, rows: &[Row]) {
        check(
            ctx,
            rows,
            "f",
            |r| r.f,
            f64::total_cmp,
            |v| ScalarValue::Float64(Some(v)),
        )
        .await;
        check(
            ctx,
            rows,
            "i",
            |r| r.i,
            i64::cmp,
            |v| ScalarValue::Int64(Some(v)),
        )
        .await;
        check(
            ctx,
            rows,
            "u",
            |r| r.u,
            u64::cmp,
            |v| ScalarValue::UInt64(Some(v)),
        )
        .await;
        check(
            ctx,
            rows,
            "s",
            |r| r.s.clone(),
            String::cmp,
            |v| ScalarValue::Utf8(Some(v)),
        )
        .await;
        check(
            ctx,
            rows,
            "b",
            |r| r.b,
            bool::cmp,
            |v| ScalarValue::Boolean(Some(v)),
        )
        .await;
    }

    #[tokio::test]
    async fn a_filter_clause_limits_the_rows_a_selector_considers() {
        let rows = generate();
        check_filter(&context(&rows, false), &rows).await;
    }

    #[tokio::test]
    async fn selectors_match_the_reference_when_partial_aggregation_is_skipped() {
        let rows = generate();
        let ctx = context(&rows, true);
        let plan = query(
            &ctx,
            "EXPLAIN ANALYZE SELECT g, selector_last(f, time) FROM many GROUP BY g",
        )
        .await;
        assert!(
            plan.contains("skipped_aggregation_rows=")
                && !plan.contains("skipped_aggregation_rows=0,"),
            "{plan}"
        );
        check_all(&ctx, &rows).await;
        check_filter(&ctx, &rows).await;
    }

    async fn check_filter(ctx: &SessionContext, rows: &[Row]) {
        // `u > 5` is NULL where u is NULL: those rows are skipped too.
        let usable = |r: &Row| r.u.is_some_and(|u| u > 5);
        for selection in ["last", "max"] {
            let aggregate = format!("selector_{selection}(i, time) FILTER (WHERE u > 5)");
            let expected = reference(
                rows,
                selection,
                |r| r.i,
                i64::cmp,
                |v| ScalarValue::Int64(Some(v)),
                usable,
            );
            let unfiltered = reference(
                rows,
                selection,
                |r| r.i,
                i64::cmp,
                |v| ScalarValue::Int64(Some(v)),
                |_| true,
            );
            assert_ne!(expected, unfiltered, "the filter must matter");
            assert_eq!(selected(ctx, &aggregate).await, expected, "{aggregate}");
        }
    }
}

// ─── gap filling ────────────────────────────────────────────────────────────────────────

/// `cpu`: hosts a and b between 23:55 the day before and 01:05, over two partitions.
///
/// ```text
///  10-minute bin   00:00  00:10     00:20  00:30  00:40  00:50
///  a  usage        -      10, 20    -      30     NULL   -
///  b  usage        1      -         5      -      -      8
///  b  reqs         10     -         15     -      -      16
/// ```
/// plus rows outside the hour (a at 23:55, b at 01:05) that the WHERE clauses exclude.
fn cpu_context() -> SessionContext {
    let schema = Arc::new(Schema::new(vec![
        Field::new("host", DataType::Utf8, false),
        time_field(),
        Field::new("usage", DataType::Float64, true),
        Field::new("reqs", DataType::Int64, true),
    ]));
    let batch = |rows: &[(&str, i64, Option<f64>, Option<i64>)]| {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
            Arc::new(TimestampNanosecondArray::from_iter_values(
                rows.iter().map(|r| r.1),
            )),
            Arc::new(Float64Array::from_iter(rows.iter().map(|r| r.2))),
            Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.3))),
        ];
        RecordBatch::try_new(Arc::clone(&schema), columns).unwrap()
    };
    let ctx = context();
    register(
        &ctx,
        "cpu",
        Arc::clone(&schema),
        vec![
            vec![
                batch(&[
                    ("a", at("00:12"), Some(10.0), Some(1)),
                    ("b", at("00:00"), Some(1.0), Some(10)),
                    (
                        "a",
                        at("23:55") - 24 * 3_600_000_000_000,
                        Some(99.0),
                        Some(1),
                    ),
                ]),
                batch(&[
                    ("a", at("00:41"), None, Some(1)),
                    ("b", at("00:50"), Some(8.0), Some(16)),
                ]),
            ],
            vec![
                batch(&[
                    ("a", at("00:15"), Some(20.0), Some(1)),
                    ("b", at("00:20"), Some(5.0), Some(15)),
                ]),
                batch(&[
                    ("a", at("00:31"), Some(30.0), Some(1)),
                    ("b", at("01:05"), Some(99.0), Some(99)),
                ]),
            ],
        ],
    );
    ctx
}

const HOUR: &str = "time >= '2024-01-01T00:00:00Z' AND time < '2024-01-01T01:00:00Z'";

#[tokio::test]
async fn date_bin_gapfill_returns_every_bin_of_the_range_per_series_with_null_gaps() {
    let ctx = cpu_context();
    let actual = query(
        &ctx,
        &format!(
            "SELECT date_bin_gapfill(INTERVAL '10 minutes', time) AS minute, host, \
               avg(usage) AS usage, count(*) AS n \
             FROM cpu WHERE {HOUR} GROUP BY 1, host ORDER BY host, minute"
        ),
    )
    .await;
    // Gaps at the start (a 00:00), in the middle (a 00:20, b 00:10) and at the end
    // (a 00:50, b 00:30-00:40); a's 00:40 row exists with a NULL average.
    assert_table(
        &actual,
        "
        +---------------------+------+-------+---+
        | minute              | host | usage | n |
        +---------------------+------+-------+---+
        | 2024-01-01T00:00:00 | a    |       |   |
        | 2024-01-01T00:10:00 | a    | 15.0  | 2 |
        | 2024-01-01T00:20:00 | a    |       |   |
        | 2024-01-01T00:30:00 | a    | 30.0  | 1 |
        | 2024-01-01T00:40:00 | a    |       | 1 |
        | 2024-01-01T00:50:00 | a    |       |   |
        | 2024-01-01T00:00:00 | b    | 1.0   | 1 |
        | 2024-01-01T00:10:00 | b    |       |   |
        | 2024-01-01T00:20:00 | b    | 5.0   | 1 |
        | 2024-01-01T00:30:00 | b    |       |   |
        | 2024-01-01T00:40:00 | b    |       |   |
        | 2024-01-01T00:50:00 | b    | 8.0   | 1 |
        +---------------------+------+-------+---+
        ",
    );
}

#[tokio::test]
async fn without_other_group_columns_or_aggregates_every_bin_is_listed_once() {
    let ctx = cpu_context();
    let actual = query(
        &ctx,
        &format!(
            "SELECT date_bin_gapfill(INTERVAL '10 minutes', time) AS minute \
             FROM cpu WHERE {HOUR} GROUP BY minute ORDER BY minute"
        ),
    )
    .await;
    assert_table(
        &actual,
        "
        +---------------------+
        | minute              |
        +---------------------+
        | 2024-01-01T00:00:00 |
        | 2024-01-01T00:10:00 |
        | 2024-01-01T00:20:00 |
        | 2024-01-01T00:30:00 |
        | 2024-01-01T00:40:00 |
        | 2024-01-01T00:50:00 |
        +---------------------+
        ",
    );
}

#[tokio::test]
async fn gap_filled_time_stays_a_nanosecond_timestamp() {
    let ctx = cpu_context();
    let df = ctx
        .sql(&format!(
            "SELECT date_bin_gapfill(INTERVAL '10 minutes', time) AS minute, avg(usage) \
             FROM cpu WHERE {HOUR} GROUP BY 1"
        ))
        .await
        .unwrap();
    let batches = df.collect().await.unwrap();
    assert_eq!(
        batches[0].schema().field(0).data_type(),
        &DataType::Timestamp(TimeUnit::Nanosecond, None)
    );
}

#[tokio::test]
async fn locf_carries_the_last_value_of_the_same_series_forward() {
    let ctx = cpu_context();
    let actual = query(
        &ctx,
        &format!(
            "SELECT host, date_bin_gapfill(INTERVAL '10 minutes', time) AS minute, \
               locf(avg(usage)) AS usage, locf(selector_last(usage, time))['time'] AS seen \
             FROM cpu WHERE {HOUR} GROUP BY host, minute ORDER BY host, minute"
        ),
    )
    .await;
    // The leading gap of a stays NULL; a's NULL average at 00:40 is replaced too; b never
    // takes a's values.
    assert_table(
        &actual,
        "
        +------+---------------------+-------+---------------------+
        | host | minute              | usage | seen                |
        +------+---------------------+-------+---------------------+
        | a    | 2024-01-01T00:00:00 |       |                     |
        | a    | 2024-01-01T00:10:00 | 15.0  | 2024-01-01T00:15:00 |
        | a    | 2024-01-01T00:20:00 | 15.0  | 2024-01-01T00:15:00 |
        | a    | 2024-01-01T00:30:00 | 30.0  | 2024-01-01T00:31:00 |
        | a    | 2024-01-01T00:40:00 | 30.0  | 2024-01-01T00:31:00 |
        | a    | 2024-01-01T00:50:00 | 30.0  | 2024-01-01T00:31:00 |
        | b    | 2024-01-01T00:00:00 | 1.0   | 2024-01-01T00:00:00 |
        | b    | 2024-01-01T00:10:00 | 1.0   | 2024-01-01T00:00:00 |
        | b    | 2024-01-01T00:20:00 | 5.0   | 2024-01-01T00:20:00 |
        | b    | 2024-01-01T00:30:00 | 5.0   | 2024-01-01T00:20:00 |
        | b    | 2024-01-01T00:40:00 | 5.0   | 2024-01-01T00:20:00 |
        | b    | 2024-01-01T00:50:00 | 8.0   | 2024-01-01T00:50:00 |
        +------+---------------------+-------+---------------------+
        ",
    );
}

#[tokio::test]
async fn interpolate_fills_gaps_linearly_between_values_of_the_same_series() {
    let ctx = cpu_context();
    let actual = query(
        &ctx,
        &format!(
            "SELECT host, date_bin_gapfill(INTERVAL '10 minutes', time) AS minute, \
               interpolate(avg(usage)) AS usage, interpolate(sum(reqs)) AS reqs \
             FROM cpu WHERE {HOUR} GROUP BY host, minute ORDER BY host, minute"
        ),
    )
    .await;
    // Leading and trailing gaps stay NULL; a's NULL average at 00:40 is trailing. Integers
    // round halves away from zero: b's reqs at 00:10 is 12.5 → 13.
    assert_table(
        &actual,
        "
        +------+---------------------+-------+------+
        | host | minute              | usage | reqs |
        +------+---------------------+-------+------+
        | a    | 2024-01-01T00:00:00 |       |      |
        | a    | 2024-01-01T00:10:00 | 15.0  | 2    |
        | a    | 2024-01-01T00:20:00 | 22.5  | 2    |
        | a    | 2024-01-01T00:30:00 | 30.0  | 1    |
        | a    | 2024-01-01T00:40:00 |       | 1    |
        | a    | 2024-01-01T00:50:00 |       |      |
        | b    | 2024-01-01T00:00:00 | 1.0   | 10   |
        | b    | 2024-01-01T00:10:00 | 3.0   | 13   |
        | b    | 2024-01-01T00:20:00 | 5.0   | 15   |
        | b    | 2024-01-01T00:30:00 | 6.0   | 15   |
        | b    | 2024-01-01T00:40:00 | 7.0   | 16   |
        | b    | 2024-01-01T00:50:00 | 8.0   | 16   |
        +------+---------------------+-------+------+
        ",
    );
}

#[tokio::test]
async fn bounds_may_be_timestamp_literals_with_between_and_an_origin_shifts_the_bins() {
    let ctx = cpu_context();
    let actual = query(
        &ctx,
        "SELECT date_bin_gapfill(INTERVAL '20 minutes', time, TIMESTAMP '2024-01-01T00:05:00') AS bin, \
           count(usage) AS n \
         FROM cpu \
         WHERE host = 'b' AND time BETWEEN TIMESTAMP '2024-01-01T00:00:00' AND TIMESTAMP '2024-01-01T00:59:59' \
         GROUP BY bin ORDER BY bin",
    )
    .await;
    // The first bin holds the lower bound, so it starts before it.
    assert_table(
        &actual,
        "
        +---------------------+---+
        | bin                 | n |
        +---------------------+---+
        | 2023-12-31T23:45:00 | 1 |
        | 2024-01-01T00:05:00 | 1 |
        | 2024-01-01T00:25:00 |   |
        | 2024-01-01T00:45:00 | 1 |
        +---------------------+---+
        ",
    );
}

#[tokio::test]
async fn exclusive_and_inclusive_bounds_decide_the_last_bin() {
    let ctx = cpu_context();
    // `time <= 00:50` includes the 00:50 bin; `time > 00:00` still holds the 00:00 bin's
    // later nanoseconds, so that bin is there too.
    let actual = query(
        &ctx,
        "SELECT date_bin_gapfill(INTERVAL '10 minutes', time) AS minute, avg(usage) AS usage \
         FROM cpu \
         WHERE host = 'b' AND time > '2024-01-01T00:00:00Z' AND '2024-01-01T00:50:00Z' >= time \
         GROUP BY minute ORDER BY minute",
    )
    .await;
    assert_table(
        &actual,
        "
        +---------------------+-------+
        | minute              | usage |
        +---------------------+-------+
        | 2024-01-01T00:00:00 |       |
        | 2024-01-01T00:10:00 |       |
        | 2024-01-01T00:20:00 | 5.0   |
        | 2024-01-01T00:30:00 |       |
        | 2024-01-01T00:40:00 |       |
        | 2024-01-01T00:50:00 | 8.0   |
        +---------------------+-------+
        ",
    );
}

#[tokio::test]
async fn now_relative_bounds_are_evaluated_when_the_query_is_planned() {
    let ctx = context();
    let schema = Arc::new(Schema::new(vec![
        Field::new("host", DataType::Utf8, false),
        time_field(),
        Field::new("usage", DataType::Float64, true),
    ]));
    let half_hour_ago = chrono::Utc::now().timestamp_nanos_opt().unwrap() - 1_800_000_000_000;
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            Arc::new(StringArray::from(vec!["a"])),
            Arc::new(TimestampNanosecondArray::from(vec![half_hour_ago])),
            Arc::new(Float64Array::from(vec![1.0])),
        ],
    )
    .unwrap();
    register(&ctx, "recent", schema, vec![vec![batch]]);
    let actual = query(
        &ctx,
        "SELECT count(*) AS bins, count(usage) AS with_data FROM ( \
           SELECT date_bin_gapfill(INTERVAL '10 minutes', time) AS minute, avg(usage) AS usage \
           FROM recent WHERE time >= now() - INTERVAL '1 hour' AND time < now() GROUP BY minute)",
    )
    .await;
    // Six bins when the hour starts on a bin boundary, seven otherwise.
    let six = "
        +------+-----------+
        | bins | with_data |
        +------+-----------+
        | 6    | 1         |
        +------+-----------+
    ";
    if actual.contains("| 7    |") {
        assert_table(&actual, &six.replace("| 6    |", "| 7    |"));
    } else {
        assert_table(&actual, six);
    }
}

#[tokio::test]
async fn a_range_without_rows_returns_no_rows() {
    let ctx = cpu_context();
    let actual = query(
        &ctx,
        "SELECT date_bin_gapfill(INTERVAL '10 minutes', time) AS minute, host, avg(usage) \
         FROM cpu WHERE time >= '2024-02-01T00:00:00Z' AND time < '2024-02-01T01:00:00Z' \
         GROUP BY 1, 2",
    )
    .await;
    assert_table(&actual, "++\n++");
}

#[tokio::test]
async fn date_bin_gapfill_without_both_time_bounds_is_a_planning_error() {
    let ctx = cpu_context();
    for filter in [
        "",
        "WHERE time >= '2024-01-01T00:00:00Z'",
        "WHERE time < '2024-01-01T00:00:00Z' AND host = 'a'",
        "WHERE time >= '2024-01-01T00:00:00Z' OR time < '2024-01-01T01:00:00Z'",
    ] {
        let error = query_error(
            &ctx,
            &format!(
                "SELECT date_bin_gapfill(INTERVAL '10 minutes', time) AS minute, avg(usage) \
                 FROM cpu {filter} GROUP BY minute"
            ),
        )
        .await;
        assert!(
            error.contains(
                "date_bin_gapfill requires a WHERE clause with a lower and an upper bound on time"
            ),
            "{filter}: {error}"
        );
    }
}

#[tokio::test]
async fn locf_and_interpolate_without_date_bin_gapfill_are_planning_errors() {
    let ctx = cpu_context();
    let error = query_error(
        &ctx,
        &format!("SELECT host, locf(avg(usage)) FROM cpu WHERE {HOUR} GROUP BY host"),
    )
    .await;
    assert!(
        error.contains(
            "locf may only be used in the SELECT list of a query grouped by date_bin_gapfill"
        ),
        "{error}"
    );
    let error = query_error(
        &ctx,
        &format!(
            "SELECT date_bin(INTERVAL '10 minutes', time) AS minute, interpolate(avg(usage)) \
             FROM cpu WHERE {HOUR} GROUP BY minute"
        ),
    )
    .await;
    assert!(error.contains("interpolate may only be used"), "{error}");
}

#[tokio::test]
async fn misplaced_gap_filling_functions_are_planning_errors() {
    let ctx = cpu_context();
    let cases = [
        (
            format!("SELECT date_bin_gapfill(INTERVAL '10 minutes', time) FROM cpu WHERE {HOUR}"),
            "date_bin_gapfill may only be used as a GROUP BY expression",
        ),
        (
            format!(
                "SELECT date_bin_gapfill(INTERVAL '10 minutes', time) AS minute, \
                   interpolate(max(host)) FROM cpu WHERE {HOUR} GROUP BY minute"
            ),
            "interpolate needs a numeric aggregate",
        ),
        (
            format!(
                "SELECT date_bin_gapfill(INTERVAL '10 minutes', time) AS minute, \
                   locf(avg(usage) + 1) FROM cpu WHERE {HOUR} GROUP BY minute"
            ),
            "locf must be applied to an aggregate function directly",
        ),
        (
            format!(
                "SELECT date_bin_gapfill(INTERVAL '1 month', time) AS minute, avg(usage) \
                 FROM cpu WHERE {HOUR} GROUP BY minute"
            ),
            "stride must be a positive fixed duration",
        ),
        (
            format!(
                "SELECT date_bin_gapfill(INTERVAL '10 minutes', time) AS minute, \
                   locf(avg(usage)) FROM cpu WHERE {HOUR} GROUP BY minute HAVING avg(usage) > 2"
            ),
            "locf cannot be combined with HAVING",
        ),
        (
            format!(
                "SELECT date_bin_gapfill(INTERVAL '10 minutes', time) AS minute, \
                   avg(usage), locf(avg(usage)) FROM cpu WHERE {HOUR} GROUP BY minute"
            ),
            "avg(cpu.usage) is used with different fills in one query (no fill and locf)",
        ),
    ];
    for (sql, expected) in cases {
        let error = query_error(&ctx, &sql).await;
        assert!(error.contains(expected), "{sql}: {error}");
    }
}
