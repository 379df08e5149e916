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
