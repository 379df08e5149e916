//! `/api/v3/query_sql` over real HTTP.

use std::net::SocketAddr;
use std::sync::Arc;

use arrow::datatypes::{DataType, TimeUnit};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::*;

async fn server() -> (Fixture, SocketAddr) {
    let f = Fixture::new().await;
    let t = f.table("cpu", CPU).await;
    f.persist(
        &t,
        &cpu(&[
            json!(["a", "eu", 1.5, 1, JAN1]),
            json!(["b", null, null, 2, JAN1 + 1]),
        ]),
        1,
    )
    .await;
    f.buffer(&t, cpu(&[json!(["a", "eu", 2.5, null, JAN1])]));
    let addr = serve_http(ferrite_querier::http_routes(Arc::clone(&f.engine))).await;
    (f, addr)
}

const Q: &str = "SELECT host, region, usage, load, time FROM cpu ORDER BY host";

async fn get(addr: SocketAddr, params: &[(&str, &str)]) -> reqwest::Response {
    reqwest::Client::new()
        .get(format!("http://{addr}/api/v3/query_sql"))
        .query(params)
        .send()
        .await
        .unwrap()
}

async fn post(addr: SocketAddr, body: Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("http://{addr}/api/v3/query_sql"))
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn content_type(r: &reqwest::Response) -> String {
    r.headers()["content-type"].to_str().unwrap().to_string()
}

#[tokio::test]
async fn json_is_the_default_format_an_array_of_row_objects() {
    let (f, addr) = server().await;
    let r = get(addr, &[("db", &f.db), ("q", Q)]).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(content_type(&r), "application/json");
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body,
        json!([
            {"host": "a", "region": "eu", "usage": 2.5, "load": 1, "time": "2024-01-01T00:00:00"},
            {"host": "b", "load": 2, "time": "2024-01-01T00:00:00.000000001"},
        ])
    );
    // Empty results are an empty array.
    let r = get(
        addr,
        &[
            ("db", &f.db),
            ("q", "SELECT * FROM cpu WHERE host = 'zz'"),
            ("format", "json"),
        ],
    )
    .await;
    assert_eq!(r.text().await.unwrap(), "[]");
}

#[tokio::test]
async fn jsonl_csv_and_pretty_formats() {
    let (f, addr) = server().await;
    let r = get(addr, &[("db", &f.db), ("q", Q), ("format", "jsonl")]).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(content_type(&r), "application/jsonl");
    let text = r.text().await.unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["usage"], json!(2.5));

    let r = get(addr, &[("db", &f.db), ("q", Q), ("format", "csv")]).await;
    assert_eq!(content_type(&r), "text/csv");
    assert_eq!(
        r.text().await.unwrap(),
        "host,region,usage,load,time\n\
         a,eu,2.5,1,2024-01-01T00:00:00\n\
         b,,,2,2024-01-01T00:00:00.000000001\n"
    );
    let r = get(
        addr,
        &[
            ("db", &f.db),
            ("q", "SELECT host FROM cpu WHERE host = 'zz'"),
            ("format", "csv"),
        ],
    )
    .await;
    assert_eq!(r.text().await.unwrap(), "host\n");

    let r = get(
        addr,
        &[
            ("db", &f.db),
            ("q", "SELECT host, usage FROM cpu ORDER BY host"),
            ("format", "pretty"),
        ],
    )
    .await;
    assert_eq!(content_type(&r), "text/plain; charset=utf-8");
    assert_eq!(
        r.text().await.unwrap(),
        "+------+-------+\n\
         | host | usage |\n\
         +------+-------+\n\
         | a    | 2.5   |\n\
         | b    |       |\n\
         +------+-------+\n"
    );
}

#[tokio::test]
async fn parquet_format_is_a_parquet_file_with_wire_types() {
    let (f, addr) = server().await;
    let r = get(addr, &[("db", &f.db), ("q", Q), ("format", "parquet")]).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(content_type(&r), "application/vnd.apache.parquet");
    let body = r.bytes().await.unwrap();
    let reader = ParquetRecordBatchReaderBuilder::try_new(body)
        .unwrap()
        .build()
        .unwrap();
    let batches: Vec<_> = reader.map(Result::unwrap).collect();
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 2);
    assert_eq!(column_type(&batches, "host"), DataType::Utf8);
    assert_eq!(
        column_type(&batches, "time"),
        DataType::Timestamp(TimeUnit::Nanosecond, None)
    );
}

#[tokio::test]
async fn accept_header_chooses_the_format_when_none_is_given() {
    let (f, addr) = server().await;
    let r = reqwest::Client::new()
        .get(format!("http://{addr}/api/v3/query_sql"))
        .query(&[
            ("db", f.db.as_str()),
            ("q", "SELECT host FROM cpu ORDER BY host"),
        ])
        .header("accept", "text/csv")
        .send()
        .await
        .unwrap();
    assert_eq!(content_type(&r), "text/csv");
    assert_eq!(r.text().await.unwrap(), "host\na\nb\n");
}

#[tokio::test]
async fn post_takes_a_json_body_with_params() {
    let (f, addr) = server().await;
    let r = post(
        addr,
        json!({"db": f.db, "q": "SELECT host, usage FROM cpu WHERE host = $h", "params": {"h": "a"}, "format": "json"}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!([{"host": "a", "usage": 2.5}])
    );
}

#[tokio::test]
async fn get_takes_params_as_json_text() {
    let (f, addr) = server().await;
    let r = get(
        addr,
        &[
            ("db", &f.db),
            ("q", "SELECT host FROM cpu WHERE load >= $min AND time > $t"),
            ("params", r#"{"min": 2, "t": "2024-01-01T00:00:00Z"}"#),
        ],
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap(), json!([{"host": "b"}]));
}

async fn error_body(r: reqwest::Response) -> (StatusCode, String) {
    let status = r.status();
    assert_eq!(content_type(&r), "application/json");
    let body: Value = r.json().await.unwrap();
    (
        status,
        body["error"].as_str().expect("error message").to_string(),
    )
}

#[tokio::test]
async fn client_errors_are_400_with_a_json_error() {
    let (f, addr) = server().await;
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (vec![("q", "SELECT 1")], "missing query parameter 'db'"),
        (vec![("db", &f.db)], "missing query parameter 'q'"),
        (vec![], "missing query parameters 'db' and 'q'"),
        (
            vec![("db", &f.db), ("q", "SELEKT")],
            "error while planning query",
        ),
        (vec![("db", &f.db), ("q", "SELECT nope FROM cpu")], "nope"),
        (
            vec![("db", &f.db), ("q", "SELECT 1"), ("format", "xml")],
            "invalid format 'xml'",
        ),
        (
            vec![("db", &f.db), ("q", "SELECT 1"), ("params", "{bad")],
            "invalid query parameters",
        ),
        (
            vec![("db", &f.db), ("q", "SELECT 1"), ("params", "[1]")],
            "invalid query parameters",
        ),
        (
            vec![("db", &f.db), ("q", "DROP TABLE cpu")],
            "error while planning query",
        ),
    ];
    for (params, message) in cases {
        let (status, error) = error_body(get(addr, &params).await).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{params:?}: {error}");
        assert!(error.contains(message), "{params:?}: {error}");
    }
    let r = reqwest::Client::new()
        .post(format!("http://{addr}/api/v3/query_sql"))
        .body("not json")
        .send()
        .await
        .unwrap();
    let (status, error) = error_body(r).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error.contains("invalid JSON request body"), "{error}");
    let (status, _) = error_body(
        post(
            addr,
            json!({"db": f.db, "q": "SELECT 1", "params": {"a": {"b": 1}}}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn unknown_database_is_404() {
    let (_f, addr) = server().await;
    let (status, error) = error_body(get(addr, &[("db", "nope"), ("q", "SELECT 1")]).await).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error, "database 'nope' not found");
}

#[tokio::test]
async fn server_failures_are_5xx() {
    let (f, addr) = server().await;
    f.ingester.set_mode(IngesterMode::Invalid);
    let (status, error) = error_body(get(addr, &[("db", &f.db), ("q", Q)]).await).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(error.contains("test ingester refuses"), "{error}");
    f.ingester.set_mode(IngesterMode::Unavailable);
    let (status, _) = error_body(get(addr, &[("db", &f.db), ("q", Q)]).await).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn a_result_too_big_for_the_memory_pool_is_422_not_an_out_of_memory() {
    let f = Fixture::with_config(ferrite_querier::QuerierConfig {
        memory_limit: Some(1 << 20),
        ..ferrite_querier::QuerierConfig::default()
    })
    .await;
    f.table("cpu", CPU).await;
    let addr = serve_http(ferrite_querier::http_routes(Arc::clone(&f.engine))).await;
    // No operator buffers anything here; only the collected 8 MB result is over the limit.
    let r = get(
        addr,
        &[
            ("db", &f.db),
            ("q", "SELECT value FROM generate_series(1, 1000000)"),
        ],
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("memory limit"),
        "{body}"
    );
    assert_eq!(f.engine.memory_reserved(), 0);
    let r = get(
        addr,
        &[
            ("db", &f.db),
            ("q", "SELECT value FROM generate_series(1, 1000)"),
        ],
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
}
