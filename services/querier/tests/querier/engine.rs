//! The query engine over files and ingester data: dedup, pruning, schema evolution, SQL
//! surface.

use std::sync::Arc;

use arrow::datatypes::{DataType, TimeUnit};
use arrow::record_batch::RecordBatch;
use datafusion::common::ScalarValue;
use ferrite_ingester::api::TagIn;
use ferrite_model::ColumnType;
use ferrite_querier::{QuerierConfig, QueryError, QueryParams};
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use object_store::path::Path;
use serde_json::json;

use crate::harness::*;

const ALL: &str = "SELECT host, region, usage, load, time FROM cpu ORDER BY host, time";

#[tokio::test]
async fn later_writes_win_field_by_field_across_files_and_ingester() {
    let f = Fixture::new().await;
    let t = f.table("cpu", CPU).await;
    // Registered first but holding later writes: order comes from the sequence number.
    f.persist(
        &t,
        &cpu(&[
            json!(["a", "eu", 1.5, null, JAN1]),
            json!(["b", "eu", 7.0, 70, JAN1]),
        ]),
        20,
    )
    .await;
    f.persist(
        &t,
        &cpu(&[
            json!(["a", "eu", 1.0, 10, JAN1]),
            json!(["a", "eu", 2.0, 20, JAN1 + 1]),
        ]),
        10,
    )
    .await;
    // Newer than every file; null usage keeps the file's value.
    f.buffer(&t, cpu(&[json!(["a", "eu", null, 11, JAN1])]));

    assert_eq!(
        f.pretty(ALL).await,
        vec![
            "+------+--------+-------+------+-------------------------------+",
            "| host | region | usage | load | time                          |",
            "+------+--------+-------+------+-------------------------------+",
            "| a    | eu     | 1.5   | 11   | 2024-01-01T00:00:00           |",
            "| a    | eu     | 2.0   | 20   | 2024-01-01T00:00:00.000000001 |",
            "| b    | eu     | 7.0   | 70   | 2024-01-01T00:00:00           |",
            "+------+--------+-------+------+-------------------------------+",
        ]
    );
}

#[tokio::test]
async fn duplicate_keys_inside_ingester_batches_are_merged_in_write_order() {
    let f = Fixture::new().await;
    let t = f.table("cpu", CPU).await;
    f.buffer(
        &t,
        cpu(&[
            json!(["a", "eu", 1.0, 1, JAN1]),
            json!(["b", "eu", 5.0, 5, JAN1]),
            json!(["a", "eu", 2.0, null, JAN1]),
        ]),
    );
    f.buffer(
        &t,
        cpu(&[
            json!(["a", "eu", null, 3, JAN1]),
            json!(["a", "eu", 4.0, null, JAN1]),
        ]),
    );
    assert_eq!(
        f.pretty(ALL).await,
        vec![
            "+------+--------+-------+------+---------------------+",
            "| host | region | usage | load | time                |",
            "+------+--------+-------+------+---------------------+",
            "| a    | eu     | 4.0   | 3    | 2024-01-01T00:00:00 |",
            "| b    | eu     | 5.0   | 5    | 2024-01-01T00:00:00 |",
            "+------+--------+-------+------+---------------------+",
        ]
    );
}

#[tokio::test]
async fn rows_both_persisted_and_still_buffered_are_returned_once() {
    // The window of a persist: the file is registered, the ingester has not dropped the rows.
    let f = Fixture::new().await;
    let t = f.table("cpu", CPU).await;
    let rows = cpu(&[
        json!(["a", "eu", 1.0, 1, JAN1]),
        json!(["b", "us", 2.0, 2, JAN1 + 5]),
    ]);
    f.persist(&t, &rows, 1).await;
    f.buffer(&t, rows);
    let out = f
        .query("SELECT count(*) AS n, sum(usage) AS s FROM cpu")
        .await;
    assert_eq!(
        pretty_lines(&out),
        vec![
            "+---+-----+",
            "| n | s   |",
            "+---+-----+",
            "| 2 | 3.0 |",
            "+---+-----+"
        ]
    );
}

#[tokio::test]
async fn field_filters_apply_after_dedup() {
    // usage > 50 matches the old value only: the newer write must hide it, not resurrect it.
    let f = Fixture::new().await;
    let t = f.table("cpu", CPU).await;
    f.persist(&t, &cpu(&[json!(["a", "eu", 90.0, 1, JAN1])]), 1)
        .await;
    f.persist(&t, &cpu(&[json!(["a", "eu", 10.0, 1, JAN1])]), 2)
        .await;
    assert_eq!(
        f.query("SELECT * FROM cpu WHERE usage > 50")
            .await
            .iter()
            .map(|b| b.num_rows())
            .sum::<usize>(),
        0
    );
    // Nor may a TopK's dynamic filter reach below dedup.
    f.persist(&t, &cpu(&[json!(["b", "eu", 50.0, 1, JAN1])]), 3)
        .await;
    assert_eq!(
        f64_column(
            &f.query("SELECT usage FROM cpu ORDER BY usage DESC LIMIT 1")
                .await,
            "usage"
        ),
        vec![Some(50.0)]
    );
    f.buffer(&t, cpu(&[json!(["a", "eu", 95.0, null, JAN1])]));
    assert_eq!(
        f.pretty("SELECT host, usage, load FROM cpu WHERE usage > 50")
            .await,
        vec![
            "+------+-------+------+",
            "| host | usage | load |",
            "+------+-------+------+",
            "| a    | 95.0  | 1    |",
            "+------+-------+------+",
        ]
    );
}

#[tokio::test]
async fn tag_and_time_filters_with_projection() {
    let f = Fixture::new().await;
    let t = f.table("cpu", CPU).await;
    f.persist(
        &t,
        &cpu(&[
            json!(["a", "eu", 1.0, 1, JAN1]),
            json!(["b", "eu", 2.0, 2, JAN1]),
            json!(["b", "eu", 3.0, 3, JAN1 + HOUR]),
        ]),
        1,
    )
    .await;
    f.buffer(&t, cpu(&[json!(["b", "eu", 2.5, null, JAN1])]));
    assert_eq!(
        f.pretty("SELECT usage, load FROM cpu WHERE host = 'b' AND time < '2024-01-01T00:30:00Z'")
            .await,
        vec![
            "+-------+------+",
            "| usage | load |",
            "+-------+------+",
            "| 2.5   | 2    |",
            "+-------+------+",
        ]
    );
    // Every ingester request carries the primary key, whatever the projection.
    let request = f.ingester.requests().pop().unwrap();
    let names: Vec<&str> = request
        .schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    assert_eq!(names, vec!["host", "load", "region", "time", "usage"]);
    assert_eq!(request.time_range, Some((i64::MIN, JAN1 + HOUR / 2)));
    // The tag filter goes to the ingester too (this one ignores it: the querier filters again).
    assert_eq!(request.tags, vec![tag_in("host", &["b"])]);

    // Lists and ORs of one tag are sent as lists; a field filter is not sent.
    assert_eq!(
        f.pretty(
            "SELECT usage FROM cpu WHERE host IN ('a', 'b') AND (region = 'eu' OR region = 'us') \
             AND usage > 2 ORDER BY usage"
        )
        .await,
        vec![
            "+-------+",
            "| usage |",
            "+-------+",
            "| 2.5   |",
            "| 3.0   |",
            "+-------+",
        ]
    );
    let mut tags = f.ingester.requests().pop().unwrap().tags;
    tags.sort_by(|a, b| a.column.cmp(&b.column));
    assert_eq!(
        tags,
        vec![tag_in("host", &["a", "b"]), tag_in("region", &["eu", "us"])]
    );
}

fn tag_in(column: &str, values: &[&str]) -> TagIn {
    TagIn {
        column: column.into(),
        values: values.iter().map(|v| v.to_string()).collect(),
    }
}

#[tokio::test]
async fn overlapping_chunks_are_deduplicated_and_others_are_not() {
    let f = Fixture::new().await;
    let t = f.table("cpu", CPU).await;
    f.persist(&t, &cpu(&[json!(["a", "eu", 1.0, 1, JAN1])]), 1)
        .await;
    f.persist(&t, &cpu(&[json!(["a", "eu", 2.0, 2, JAN1 + DAY])]), 2)
        .await;
    let plan = explain(&f, "SELECT * FROM cpu").await;
    assert!(!plan.contains("DedupExec"), "{plan}");
    assert!(plan.contains("DataSourceExec"), "{plan}");

    f.persist(&t, &cpu(&[json!(["a", "eu", 3.0, 3, JAN1 + DAY])]), 3)
        .await;
    let plan = explain(&f, "SELECT * FROM cpu").await;
    assert_eq!(plan.matches("DedupExec").count(), 1, "{plan}");
    assert_eq!(
        f64_column(
            &f.query("SELECT usage FROM cpu ORDER BY time").await,
            "usage"
        ),
        vec![Some(1.0), Some(3.0)]
    );
}

/// Ingester rows the ingester deduplicated are scanned as they are when nothing overlaps
/// them, and deduplicated against the files they overlap otherwise; the answers are those
/// of raw buffered rows.
#[tokio::test]
async fn deduplicated_ingester_rows_skip_dedup_unless_they_overlap_files() {
    let f = Fixture::new().await;
    let t = f.table("cpu", CPU).await;
    f.persist(&t, &cpu(&[json!(["a", "eu", 1.0, 1, JAN1])]), 1)
        .await;
    f.buffer(
        &t,
        cpu(&[
            json!(["b", "eu", 2.0, 2, JAN1 + DAY]),
            json!(["a", "eu", 3.0, 3, JAN1 + DAY]),
            json!(["b", "eu", 4.0, null, JAN1 + DAY]),
        ]),
    );
    let sql = "SELECT host, usage, load FROM cpu ORDER BY time, host";
    let raw = f.pretty(sql).await;
    f.ingester.set_mode(IngesterMode::Deduplicated);
    assert_eq!(f.pretty(sql).await, raw);
    let plan = explain(&f, "SELECT * FROM cpu").await;
    assert!(!plan.contains("DedupExec"), "{plan}");
    assert!(plan.contains("DataSourceExec"), "{plan}");

    // A file of the same day overlaps the ingester's rows: one dedup over both, the
    // ingester's rows winning as the later writes.
    f.persist(&t, &cpu(&[json!(["a", "eu", 9.0, 9, JAN1 + DAY])]), 2)
        .await;
    let plan = explain(&f, "SELECT * FROM cpu").await;
    assert_eq!(plan.matches("DedupExec").count(), 1, "{plan}");
    assert_eq!(f.pretty(sql).await, raw);
    assert_eq!(
        f64_column(
            &f.query("SELECT usage FROM cpu WHERE host = 'a' ORDER BY time")
                .await,
            "usage"
        ),
        vec![Some(1.0), Some(3.0)]
    );
}

async fn explain(f: &Fixture, sql: &str) -> String {
    let out = f.query(&format!("EXPLAIN {sql}")).await;
    pretty_lines(&out).join("\n")
}

#[tokio::test]
async fn files_outside_the_time_range_are_not_read() {
    let f = Fixture::new().await;
    let t = f.table("cpu", CPU).await;
    f.persist(&t, &cpu(&[json!(["a", "eu", 1.0, 1, JAN1])]), 1)
        .await;
    let old = f
        .persist(&t, &cpu(&[json!(["a", "eu", 2.0, 2, JAN1 - DAY])]), 2)
        .await;
    // Corrupt the out-of-range file: reading it would fail the query.
    f.store
        .put(
            &Path::from(old.params.object_path()),
            b"garbage".to_vec().into(),
        )
        .await
        .unwrap();

    let out = f
        .query("SELECT usage FROM cpu WHERE time >= '2024-01-01T00:00:00Z'")
        .await;
    assert_eq!(f64_column(&out, "usage"), vec![Some(1.0)]);
    let out = f
        .query("SELECT usage FROM cpu WHERE time BETWEEN '2024-01-01T00:00:00Z' AND '2024-01-01T01:00:00Z'")
        .await;
    assert_eq!(f64_column(&out, "usage"), vec![Some(1.0)]);

    // Without a time filter the corrupt file is read, and the query fails.
    let err = f
        .query_with("SELECT usage FROM cpu", QueryParams::new())
        .await;
    let err = match err {
        Ok(_) => panic!("reading the corrupt file should fail"),
        Err(e) => e,
    };
    assert_eq!(err.http_status(), 500, "{err}");
}

#[tokio::test]
async fn relative_time_filters_prune_old_files() {
    let f = Fixture::new().await;
    let t = f.table("cpu", CPU).await;
    let now = chrono::Utc::now().timestamp_nanos_opt().unwrap();
    f.persist(
        &t,
        &cpu(&[json!(["a", "eu", 1.0, 1, now - 10 * 60 * 1_000_000_000])]),
        1,
    )
    .await;
    let old = f
        .persist(&t, &cpu(&[json!(["a", "eu", 2.0, 2, now - 3 * HOUR])]), 2)
        .await;
    f.store
        .delete(&Path::from(old.params.object_path()))
        .await
        .unwrap();
    let out = f
        .query("SELECT usage FROM cpu WHERE time >= now() - interval '1 hour'")
        .await;
    assert_eq!(f64_column(&out, "usage"), vec![Some(1.0)]);
}

#[tokio::test]
async fn columns_missing_from_older_files_read_as_nulls() {
    let f = Fixture::new().await;
    let t = f.table("cpu", CPU).await;
    // Written before `region` and `load` existed.
    let old = batch(
        &[
            ("host", ColumnType::Tag),
            ("usage", ColumnType::F64),
            ("time", ColumnType::Time),
        ],
        &[json!(["a", 1.0, JAN1]), json!(["b", 2.0, JAN1])],
    );
    f.persist(&t, &old, 1).await;
    f.persist(&t, &cpu(&[json!(["c", "eu", 3.0, 3, JAN1 + DAY])]), 2)
        .await;
    // Lone files, no dedup: the old file's missing columns are nulls.
    assert_eq!(
        f.pretty("SELECT host, region, load FROM cpu ORDER BY host")
            .await,
        vec![
            "+------+--------+------+",
            "| host | region | load |",
            "+------+--------+------+",
            "| a    |        |      |",
            "| b    |        |      |",
            "| c    | eu     | 3    |",
            "+------+--------+------+",
        ]
    );
    // An overlapping file with the new columns, so the old file is read on the dedup path.
    // `host=a` and `host=a,region=eu` are different series: a missing tag is part of the key.
    f.persist(&t, &cpu(&[json!(["a", "eu", null, 9, JAN1])]), 3)
        .await;
    assert_eq!(
        f.pretty("SELECT host, region, usage, load, time FROM cpu ORDER BY host, region NULLS FIRST, time")
            .await,
        vec![
            "+------+--------+-------+------+---------------------+",
            "| host | region | usage | load | time                |",
            "+------+--------+-------+------+---------------------+",
            "| a    |        | 1.0   |      | 2024-01-01T00:00:00 |",
            "| a    | eu     |       | 9    | 2024-01-01T00:00:00 |",
            "| b    |        | 2.0   |      | 2024-01-01T00:00:00 |",
            "| c    | eu     | 3.0   | 3    | 2024-01-02T00:00:00 |",
            "+------+--------+-------+------+---------------------+",
        ]
    );
}

#[tokio::test]
async fn output_types_are_utf8_tags_and_nanosecond_time() {
    let f = Fixture::new().await;
    let t = f.table("cpu", CPU).await;
    f.persist(&t, &cpu(&[json!(["a", "eu", 1.0, 1, JAN1])]), 1)
        .await;
    f.buffer(&t, cpu(&[json!(["a", "eu", 2.0, 1, JAN1])]));
    let out = f.query("SELECT * FROM cpu").await;
    assert_eq!(column_type(&out, "host"), DataType::Utf8);
    assert_eq!(column_type(&out, "region"), DataType::Utf8);
    assert_eq!(
        column_type(&out, "time"),
        DataType::Timestamp(TimeUnit::Nanosecond, None)
    );
}

#[tokio::test]
async fn aggregates_count_deduplicated_rows() {
    let f = Fixture::new().await;
    let t = f.table("cpu", CPU).await;
    for seq in 0..3 {
        f.persist(
            &t,
            &cpu(&[
                json!(["a", "eu", seq as f64, seq, JAN1]),
                json!(["b", "eu", 1.0, 1, JAN1 + seq]),
            ]),
            seq,
        )
        .await;
    }
    f.persist(&t, &cpu(&[json!(["z", "us", 1.0, 1, JAN1 + 5 * DAY])]), 9)
        .await;
    assert_eq!(
        f.pretty("SELECT count(*) AS n, count(DISTINCT host) AS hosts FROM cpu")
            .await,
        vec![
            "+---+-------+",
            "| n | hosts |",
            "+---+-------+",
            "| 5 | 3     |",
            "+---+-------+",
        ]
    );
}

#[tokio::test]
async fn show_tables_and_information_schema_list_user_tables() {
    let f = Fixture::new().await;
    f.table("cpu", CPU).await;
    f.table(
        "mem",
        &[
            ("host", ColumnType::Tag),
            ("free", ColumnType::U64),
            ("time", ColumnType::Time),
        ],
    )
    .await;
    let out = f
        .pretty("SELECT table_catalog, table_schema, table_name FROM information_schema.tables WHERE table_schema = 'iox' ORDER BY table_name")
        .await;
    assert_eq!(
        out,
        vec![
            "+---------------+--------------+------------+",
            "| table_catalog | table_schema | table_name |",
            "+---------------+--------------+------------+",
            "| public        | iox          | cpu        |",
            "| public        | iox          | mem        |",
            "+---------------+--------------+------------+",
        ]
    );
    let show = pretty_lines(&f.query("SHOW TABLES").await).join("\n");
    assert!(
        show.contains("| public        | iox                | cpu             | BASE TABLE |"),
        "{show}"
    );
    assert_eq!(
        f.pretty("SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'mem' ORDER BY column_name").await,
        vec![
            "+-------------+---------------+",
            "| column_name | data_type     |",
            "+-------------+---------------+",
            "| free        | UInt64        |",
            "| host        | Utf8          |",
            "| time        | Timestamp(ns) |",
            "+-------------+---------------+",
        ]
    );
    // Fully qualified names work too.
    assert!(
        f.query("SELECT * FROM public.iox.cpu")
            .await
            .iter()
            .all(|b| b.num_rows() == 0)
    );
}

#[tokio::test]
async fn named_parameters_are_bound() {
    let f = Fixture::new().await;
    let t = f.table("cpu", CPU).await;
    f.buffer(
        &t,
        cpu(&[
            json!(["a", "eu", 1.0, 1, JAN1]),
            json!(["b", "eu", 5.0, 5, JAN1]),
            json!(["b", "us", 9.0, 9, JAN1]),
        ]),
    );
    let params = QueryParams::from_json(&json!({"host": "b", "min": 6, "$max": 100.5})).unwrap();
    let out = f
        .query_with(
            "SELECT region FROM cpu WHERE host = $host AND load >= $min AND usage < $max",
            params,
        )
        .await
        .unwrap();
    assert_eq!(
        pretty_lines(&out),
        vec![
            "+--------+",
            "| region |",
            "+--------+",
            "| us     |",
            "+--------+"
        ]
    );
    let params = QueryParams::new().with("h", ScalarValue::Utf8(Some("a".into())));
    assert!(
        f.query_with("SELECT * FROM cpu WHERE host = $missing", params)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn bad_input_is_a_client_error() {
    let f = Fixture::new().await;
    f.table("cpu", CPU).await;
    let e = err(&f, "SELEKT 1").await;
    assert!(matches!(e, QueryError::Plan(_)), "{e}");
    let e = err(&f, "SELECT nope FROM cpu").await;
    assert_eq!(e.http_status(), 400, "{e}");
    let e = err(&f, "SELECT * FROM nope").await;
    assert_eq!(e.http_status(), 400, "{e}");
    let e = err(&f, "CREATE TABLE x (a INT)").await;
    assert_eq!(e.http_status(), 400, "{e}");
    let e = err(&f, "INSERT INTO cpu (host) VALUES ('x')").await;
    assert_eq!(e.http_status(), 400, "{e}");

    let e = f
        .engine
        .sql("nope", "SELECT 1", QueryParams::new())
        .await
        .err()
        .unwrap();
    assert!(matches!(e, QueryError::DatabaseNotFound(ref d) if d == "nope"));
    assert_eq!(e.to_string(), "database 'nope' not found");
    assert_eq!(e.http_status(), 404);
}

async fn err(f: &Fixture, sql: &str) -> QueryError {
    match f.engine.sql(&f.db, sql, QueryParams::new()).await {
        Ok(_) => panic!("{sql} should fail"),
        Err(e) => e,
    }
}

#[tokio::test]
async fn a_failing_ingester_fails_the_query() {
    let f = Fixture::new().await;
    let t = f.table("cpu", CPU).await;
    f.persist(&t, &cpu(&[json!(["a", "eu", 1.0, 1, JAN1])]), 1)
        .await;
    f.ingester.set_mode(IngesterMode::Unavailable);
    let e = f
        .engine
        .sql(&f.db, "SELECT * FROM cpu", QueryParams::new())
        .await
        .err()
        .unwrap();
    assert!(matches!(e, QueryError::Ingester(_)), "{e}");
    assert_eq!(e.http_status(), 503);
    assert_eq!(e.grpc_code(), tonic::Code::Unavailable);
}

#[tokio::test]
async fn queries_can_run_on_a_dedicated_runtime() {
    let f = Fixture::with_config(QuerierConfig {
        target_partitions: 2,
        execution_threads: Some(1),
        ..QuerierConfig::default()
    })
    .await;
    let t = f.table("cpu", CPU).await;
    f.persist(&t, &cpu(&[json!(["a", "eu", 1.0, 1, JAN1])]), 1)
        .await;
    f.buffer(
        &t,
        cpu(&[
            json!(["a", "eu", 2.0, null, JAN1]),
            json!(["b", "eu", 3.0, 3, JAN1]),
        ]),
    );
    assert_eq!(
        f.pretty("SELECT host, usage, load FROM cpu ORDER BY host")
            .await,
        vec![
            "+------+-------+------+",
            "| host | usage | load |",
            "+------+-------+------+",
            "| a    | 2.0   | 1    |",
            "| b    | 3.0   | 3    |",
            "+------+-------+------+",
        ]
    );
}

#[tokio::test]
async fn many_rows_across_files_and_ingester_dedup_exactly() {
    // Enough rows for several batches and row groups, with every key written three times.
    let f = Fixture::new().await;
    let t = f.table("cpu", CPU).await;
    let rows = |v: f64| {
        (0..5000)
            .map(|i| json!([format!("h{}", i % 50), "eu", v, i, JAN1 + (i / 50) as i64]))
            .collect::<Vec<_>>()
    };
    f.persist(&t, &cpu(&rows(1.0)), 1).await;
    f.persist(&t, &cpu(&rows(2.0)), 2).await;
    f.buffer(&t, cpu(&rows(3.0)));
    assert_eq!(
        f.pretty("SELECT count(*) AS n, min(usage) AS lo, max(usage) AS hi FROM cpu")
            .await,
        vec![
            "+------+-----+-----+",
            "| n    | lo  | hi  |",
            "+------+-----+-----+",
            "| 5000 | 3.0 | 3.0 |",
            "+------+-----+-----+",
        ]
    );
    assert_eq!(
        f.pretty("SELECT count(*) AS n FROM cpu WHERE host = 'h7' AND time < '2024-01-01T00:00:00.000000010Z'").await,
        vec!["+----+", "| n  |", "+----+", "| 10 |", "+----+"]
    );
}

#[tokio::test]
async fn tables_without_data_or_columns_are_empty() {
    let f = Fixture::new().await;
    f.table("cpu", CPU).await;
    f.table("bare", &[]).await;
    for sql in [
        "SELECT * FROM cpu",
        "SELECT * FROM bare",
        "SELECT count(*) AS n FROM cpu",
    ] {
        let rows: usize = f.query(sql).await.iter().map(|b| b.num_rows()).sum();
        assert!(rows <= 1, "{sql}");
    }
    assert_eq!(
        f.pretty("SELECT count(*) AS n FROM cpu").await,
        vec!["+---+", "| n |", "+---+", "| 0 |", "+---+"]
    );
}

#[tokio::test]
async fn row_groups_and_files_are_pruned_by_statistics() {
    let f = Fixture::new().await;
    let t = f.table("cpu", CPU).await;
    // 50 hosts x 100 times in one sorted file: row groups of 1024 rows hold few hosts each.
    let rows: Vec<_> = (0..5000)
        .map(|i| {
            json!([
                format!("h{:02}", i % 50),
                "eu",
                1.0,
                i,
                JAN1 + (i / 50) as i64
            ])
        })
        .collect();
    f.persist(&t, &cpu(&rows), 1).await;
    let out = f
        .query("EXPLAIN ANALYZE SELECT count(*) FROM cpu WHERE host = 'h07'")
        .await;
    let plan = pretty_lines(&out).join("\n");
    let pruned = plan
        .split("row_groups_pruned_statistics=")
        .nth(1)
        .unwrap_or_else(|| panic!("no pruning metrics in {plan}"));
    // "5 total → 1 matched" (DataFusion's rendering): only one row group is read.
    assert!(pruned.starts_with("5 total \u{2192} 1 matched"), "{plan}");
}

/// A fixture whose cpu table has `n` hosts, one row each, in the ingester's buffer.
async fn limited(config: QuerierConfig, hosts: usize) -> Fixture {
    let f = Fixture::with_config(config).await;
    let t = f.table("cpu", CPU).await;
    let rows: Vec<_> = (0..hosts)
        .map(|i| json!([format!("host-{i:05}"), "eu", i as f64, i, JAN1]))
        .collect();
    f.buffer(&t, cpu(&rows));
    f
}

#[tokio::test]
async fn a_query_over_the_concurrency_limit_is_refused_as_retryable() {
    let f = limited(
        QuerierConfig {
            max_concurrent_queries: 1,
            queue_timeout: std::time::Duration::ZERO,
            ..QuerierConfig::default()
        },
        2,
    )
    .await;
    // The first query holds its slot until its stream is finished or dropped.
    let (_, running) = f
        .engine
        .sql(&f.db, "SELECT * FROM cpu", QueryParams::new())
        .await
        .unwrap();
    let e = f
        .engine
        .sql(&f.db, "SELECT 1", QueryParams::new())
        .await
        .err()
        .unwrap();
    assert!(matches!(e, QueryError::TooManyQueries { .. }), "{e}");
    assert_eq!(e.http_status(), 503);
    assert_eq!(e.retry_after(), Some(1));
    assert_eq!(e.grpc_code(), tonic::Code::Unavailable);
    assert!(e.to_string().contains("too many queries"), "{e}");
    drop(running);
    f.engine
        .sql(&f.db, "SELECT 1", QueryParams::new())
        .await
        .expect("the slot is free again once the first stream is dropped");
}

#[tokio::test]
async fn a_waiting_query_gets_the_slot_a_finished_query_frees() {
    let f = limited(
        QuerierConfig {
            max_concurrent_queries: 1,
            queue_timeout: std::time::Duration::from_secs(60),
            ..QuerierConfig::default()
        },
        2,
    )
    .await;
    let (_, running) = f
        .engine
        .sql(&f.db, "SELECT * FROM cpu", QueryParams::new())
        .await
        .unwrap();
    let engine = Arc::clone(&f.engine);
    let db = f.db.clone();
    let waiting = tokio::spawn(async move {
        let (_, stream) = engine
            .sql(&db, "SELECT count(*) AS n FROM cpu", QueryParams::new())
            .await?;
        stream
            .try_collect::<Vec<_>>()
            .await
            .map_err(QueryError::from_stream_error)
    });
    let first: Vec<RecordBatch> = running.try_collect().await.unwrap();
    assert_eq!(first.iter().map(|b| b.num_rows()).sum::<usize>(), 2);
    let second = waiting.await.unwrap().unwrap();
    assert_eq!(pretty_lines(&second)[3], "| 2 |");
}

#[tokio::test]
async fn a_query_over_the_memory_limit_fails_with_a_final_status() {
    // A sort of 20 000 distinct hosts needs far more than 64 KiB of sort buffers.
    let f = limited(
        QuerierConfig {
            memory_limit: Some(64 * 1024),
            ..QuerierConfig::default()
        },
        20_000,
    )
    .await;
    let e = match f
        .engine
        .sql(
            &f.db,
            "SELECT host, avg(usage) FROM cpu GROUP BY host ORDER BY host DESC",
            QueryParams::new(),
        )
        .await
    {
        Err(e) => e,
        Ok((_, stream)) => stream
            .try_collect::<Vec<_>>()
            .await
            .map_err(QueryError::from_stream_error)
            .expect_err("the query must not fit in 64 KiB"),
    };
    assert!(matches!(e, QueryError::MemoryLimit(_)), "{e}");
    assert_eq!(e.http_status(), 422);
    assert_eq!(e.grpc_code(), tonic::Code::ResourceExhausted);
    assert_eq!(e.retry_after(), None);
    assert!(e.to_string().contains("memory limit"), "{e}");
}

#[tokio::test]
async fn a_query_past_its_deadline_fails_with_a_timeout() {
    let f = limited(
        QuerierConfig {
            query_timeout: Some(std::time::Duration::from_millis(200)),
            ..QuerierConfig::default()
        },
        2,
    )
    .await;
    // Either planning already took too long, or the stream reports the deadline when it is
    // read after it passed: the outcome is the same error.
    let e = match f
        .engine
        .sql(&f.db, "SELECT * FROM cpu", QueryParams::new())
        .await
    {
        Err(e) => e,
        Ok((_, stream)) => {
            tokio::time::sleep(std::time::Duration::from_millis(400)).await;
            stream
                .try_collect::<Vec<_>>()
                .await
                .map_err(QueryError::from_stream_error)
                .expect_err("the deadline has passed")
        }
    };
    assert!(matches!(e, QueryError::Timeout(_)), "{e}");
    assert_eq!(e.http_status(), 504);
    assert_eq!(e.grpc_code(), tonic::Code::DeadlineExceeded);
}

#[tokio::test]
async fn question_mark_placeholders_are_numbered_in_order() {
    let f = Fixture::new().await;
    let t = f.table("cpu", CPU).await;
    f.buffer(
        &t,
        cpu(&[
            json!(["a", "eu", 1.0, 1, JAN1]),
            json!(["b", "us", 2.0, 2, JAN1]),
        ]),
    );
    let params = QueryParams::new()
        .with("1", ScalarValue::Utf8(Some("us".into())))
        .with("2", ScalarValue::Float64(Some(1.5)));
    let (_, stream) = f
        .engine
        .sql(
            &f.db,
            "SELECT host FROM cpu WHERE region = ? AND usage > ?",
            params,
        )
        .await
        .unwrap();
    let out: Vec<RecordBatch> = stream.try_collect().await.unwrap();
    assert_eq!(
        pretty_lines(&out),
        ["+------+", "| host |", "+------+", "| b    |", "+------+"]
    );
    let (_, parameters) = f
        .engine
        .prepare(&f.db, "SELECT host FROM cpu WHERE region = ? AND usage > ?")
        .await
        .unwrap();
    let names: Vec<&str> = parameters
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    assert_eq!(names, ["$1", "$2"]);
}

#[tokio::test]
async fn time_series_functions_run_over_files_and_ingester_data() {
    let f = Fixture::new().await;
    let t = f.table("cpu", CPU).await;
    let minute = 60_000_000_000;
    f.persist(&t, &cpu(&[json!(["a", "eu", 1.0, 1, JAN1])]), 1)
        .await;
    f.buffer(
        &t,
        cpu(&[
            json!(["a", "eu", 3.0, 3, JAN1 + 20 * minute]),
            json!(["b", "eu", 5.0, 5, JAN1 + 10 * minute]),
        ]),
    );

    assert_eq!(
        f.pretty(
            "SELECT host, selector_last(usage, time)['value'] AS last, \
               selector_min(usage, time)['time'] AS min_time \
             FROM cpu GROUP BY host ORDER BY host"
        )
        .await,
        vec![
            "+------+------+---------------------+",
            "| host | last | min_time            |",
            "+------+------+---------------------+",
            "| a    | 3.0  | 2024-01-01T00:00:00 |",
            "| b    | 5.0  | 2024-01-01T00:10:00 |",
            "+------+------+---------------------+",
        ]
    );
    assert_eq!(
        f.pretty(
            "SELECT host, date_bin_gapfill(INTERVAL '10 minutes', time) AS t, \
               locf(avg(usage)) AS usage \
             FROM cpu WHERE time >= '2024-01-01T00:00:00Z' AND time < '2024-01-01T00:30:00Z' \
             GROUP BY host, t ORDER BY host, t"
        )
        .await,
        vec![
            "+------+---------------------+-------+",
            "| host | t                   | usage |",
            "+------+---------------------+-------+",
            "| a    | 2024-01-01T00:00:00 | 1.0   |",
            "| a    | 2024-01-01T00:10:00 | 1.0   |",
            "| a    | 2024-01-01T00:20:00 | 3.0   |",
            "| b    | 2024-01-01T00:00:00 |       |",
            "| b    | 2024-01-01T00:10:00 | 5.0   |",
            "| b    | 2024-01-01T00:20:00 | 5.0   |",
            "+------+---------------------+-------+",
        ]
    );

    let e = err(
        &f,
        "SELECT date_bin_gapfill(INTERVAL '10 minutes', time) AS t, avg(usage) FROM cpu GROUP BY t",
    )
    .await;
    assert!(matches!(e, QueryError::Plan(_)), "{e}");
    assert_eq!(e.http_status(), 400, "{e}");
    assert!(
        e.to_string()
            .contains("requires a WHERE clause with a lower and an upper bound"),
        "{e}"
    );
}

#[tokio::test]
async fn the_announced_schema_is_the_schema_of_the_batches_for_gap_filling() {
    let f = Fixture::new().await;
    let t = f.table("cpu", CPU).await;
    f.buffer(&t, cpu(&[json!(["a", "eu", 1.0, 1, JAN1])]));
    let sql = "SELECT date_bin_gapfill(INTERVAL '1 hour', time) AS time, count(*) AS n, \
               locf(avg(usage)) AS usage FROM cpu \
               WHERE time >= '2024-01-01T00:00:00Z' AND time < '2024-01-01T03:00:00Z' GROUP BY 1";
    let announced = f
        .engine
        .sql_schema(&f.db, sql, QueryParams::new(), true)
        .await
        .unwrap();
    let (schema, stream) = f.engine.sql(&f.db, sql, QueryParams::new()).await.unwrap();
    let batches: Vec<RecordBatch> = stream.try_collect().await.unwrap();
    assert_eq!(announced, schema);
    assert_eq!(batches[0].schema(), schema);
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 3);
}

#[tokio::test]
async fn a_timeout_stops_a_plan_running_on_the_dedicated_runtime() {
    let f = limited(
        QuerierConfig {
            execution_threads: Some(1),
            query_timeout: Some(std::time::Duration::from_secs(2)),
            ..QuerierConfig::default()
        },
        2,
    )
    .await;
    // A grouping of a billion rows: minutes of work, with a hash table in the memory pool.
    let sql = "SELECT value % 10000000 AS k, count(*) FROM generate_series(1, 1000000000) \
               GROUP BY 1";
    let wait_until = |done: &'static str, check: Box<dyn Fn() -> bool + Send>| async move {
        let poll = async {
            while !check() {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(60), poll)
            .await
            .unwrap_or_else(|_| panic!("{done}"));
    };
    let (_, stream) = f.engine.sql(&f.db, sql, QueryParams::new()).await.unwrap();
    let engine = Arc::clone(&f.engine);
    wait_until(
        "the plan never reserved memory",
        Box::new(move || engine.memory_reserved() > 0),
    )
    .await;
    let e = stream
        .try_collect::<Vec<_>>()
        .await
        .map_err(QueryError::from_stream_error)
        .expect_err("the query cannot finish within its deadline");
    assert!(matches!(e, QueryError::Timeout(_)), "{e}");
    // Released when the plan is dropped at the deadline, not when it would have finished.
    let engine = Arc::clone(&f.engine);
    wait_until(
        "the timed-out plan keeps running and holding memory",
        Box::new(move || engine.memory_reserved() == 0),
    )
    .await;
}

#[tokio::test]
async fn grafanas_schema_browser_queries_list_user_tables_and_columns() {
    // The SQL Grafana's built-in InfluxDB datasource (SQL mode) sends to browse the schema.
    let f = Fixture::new().await;
    let t = f.table("cpu", CPU).await;
    f.buffer(&t, cpu(&[json!(["a", "eu", 1.0, 1, JAN1])]));
    assert_eq!(
        f.pretty(
            "SELECT DISTINCT TABLE_SCHEMA from information_schema.TABLES \
             where TABLE_TYPE != 'SYSTEM VIEW' ORDER BY TABLE_SCHEMA"
        )
        .await,
        [
            "+--------------------+",
            "| table_schema       |",
            "+--------------------+",
            "| information_schema |",
            "| iox                |",
            "| system             |",
            "+--------------------+",
        ]
    );
    // Without a chosen schema it compares with database(): the user tables' schema.
    assert_eq!(
        f.pretty(
            "SELECT table_name FROM information_schema.tables \
             WHERE table_schema = database() ORDER BY table_name"
        )
        .await,
        [
            "+------------+",
            "| table_name |",
            "+------------+",
            "| cpu        |",
            "+------------+",
        ]
    );
    assert_eq!(
        f.pretty(
            "SELECT column_name FROM information_schema.columns \
             WHERE table_schema = 'iox' AND table_name = 'cpu' ORDER BY column_name"
        )
        .await,
        [
            "+-------------+",
            "| column_name |",
            "+-------------+",
            "| host        |",
            "| load        |",
            "| region      |",
            "| time        |",
            "| usage       |",
            "+-------------+",
        ]
    );
}
