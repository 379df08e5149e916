//! The `system` tables end to end: after a known workload each one shows it, on `ferrite
//! serve` and on a cluster; a running query shows up in `system.queries` asked through
//! another querier; database tokens are refused.

use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use arrow_flight::sql::client::FlightSqlServiceClient;
use ferrite_testkit::cluster::{ClusterOptions, TestCluster};
use ferrite_testkit::server::{FerriteServer, client_with};
use futures::TryStreamExt;
use serde_json::{Value, json};
use tonic::transport::Endpoint;

use super::{ADMIN_TOKEN, binary};

const DAY: i64 = 86_400_000_000_000;

/// `SELECT` on `url` as `client`: the JSON rows, or the status and body of a refusal.
pub(crate) async fn query_as(
    client: &reqwest::Client,
    url: &str,
    db: &str,
    sql: &str,
) -> Result<Vec<Value>, (u16, String)> {
    let r = client
        .get(format!("{url}/api/v3/query_sql"))
        .query(&[("db", db), ("q", sql)])
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    if status != 200 {
        return Err((status, text));
    }
    match serde_json::from_str::<Value>(&text).unwrap() {
        Value::Array(rows) => Ok(rows),
        other => panic!("not rows: {other}"),
    }
}

/// `SELECT` on `url` with the admin token; panics on a refusal.
async fn rows(url: &str, db: &str, sql: &str) -> Vec<Value> {
    query_as(&crate::client(), url, db, sql)
        .await
        .unwrap_or_else(|(status, text)| panic!("{sql}: HTTP {status}: {text}"))
}

async fn write(url: &str, db: &str, body: &str) {
    let r = crate::client()
        .post(format!("{url}/api/v2/write?bucket={db}"))
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204, "{}", r.text().await.unwrap());
}

/// A read token on `db`; returns its (id, secret).
async fn read_token(url: &str, db: &str) -> (String, String) {
    let body = json!({
        "description": "system tables test",
        "permissions": [{ "action": "read", "resource": db }],
    });
    let r = crate::client()
        .post(format!("{url}/api/v0/tokens"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let created: Value = r.json().await.unwrap();
    (
        created["id"].as_str().unwrap().to_string(),
        created["accessToken"].as_str().unwrap().to_string(),
    )
}

/// The column names of a JSON row, sorted.
fn keys(row: &Value) -> Vec<String> {
    let mut keys: Vec<String> = row.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    keys
}

fn sorted(names: &[&str]) -> Vec<String> {
    let mut names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    names.sort();
    names
}

/// A database token may read its database but no system table, and is told why.
async fn database_tokens_are_refused(url: &str, db: &str, secret: &str) {
    let reader = client_with(Some(secret));
    if let Err((status, text)) = query_as(&reader, url, db, "SELECT count(*) AS n FROM cpu").await {
        panic!("the token reads its database: HTTP {status}: {text}");
    }
    for table in ["queries", "tables", "tokens", "ingesters"] {
        let sql = format!("SELECT * FROM system.{table}");
        let (status, text) = query_as(&reader, url, db, &sql)
            .await
            .expect_err("a database token reads no system table");
        assert_eq!(status, 403, "{text}");
        assert!(text.contains("needs the admin token"), "{text}");
    }
    // Nor does it see them listed.
    let listed = query_as(
        &reader,
        url,
        db,
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'system'",
    )
    .await
    .unwrap();
    assert!(listed.is_empty(), "{listed:?}");
}

#[tokio::test]
async fn serve_system_tables_show_the_workload() {
    let mut server = FerriteServer::start(binary(), &["--admin-token", ADMIN_TOKEN])
        .await
        .unwrap();
    let url = server.url();
    // Three rows on two days, persisted by a clean restart: two partitions, two files.
    write(
        &url,
        "sys",
        &format!(
            "cpu,host=a usage=1 1\ncpu,host=b usage=2 2\ncpu,host=a usage=3 {}\n",
            DAY + 1
        ),
    )
    .await;
    server.terminate().unwrap();
    server.restart().await.unwrap();
    // Two more, buffered in the ingester.
    write(
        &url,
        "sys",
        &format!("cpu,host=c usage=4 3\ncpu,host=c usage=5 {}\n", DAY + 2),
    )
    .await;
    let (token_id, secret) = read_token(&url, "sys").await;

    let tables = rows(
        &url,
        "sys",
        "SELECT * FROM system.tables WHERE database_name = 'sys'",
    )
    .await;
    assert_eq!(
        tables,
        vec![json!({
            "database_name": "sys", "table_name": "cpu", "column_count": 3,
            "partitions": 2, "files": 2, "rows": 3, "bytes": tables[0]["bytes"],
        })]
    );
    assert!(tables[0]["bytes"].as_i64().unwrap() > 0);

    let partitions = rows(
        &url,
        "sys",
        "SELECT partition_key, level, files, rows, min_time, max_time, skipped \
         FROM system.partitions WHERE database_name = 'sys' ORDER BY partition_key",
    )
    .await;
    assert_eq!(
        partitions,
        vec![
            json!({"partition_key": "1970-01-01", "level": 0, "files": 1, "rows": 2,
                   "min_time": "1970-01-01T00:00:00.000000001",
                   "max_time": "1970-01-01T00:00:00.000000002", "skipped": false}),
            json!({"partition_key": "1970-01-02", "level": 0, "files": 1, "rows": 1,
                   "min_time": "1970-01-02T00:00:00.000000001",
                   "max_time": "1970-01-02T00:00:00.000000001", "skipped": false}),
        ]
    );

    let files = rows(
        &url,
        "sys",
        "SELECT * FROM system.parquet_files WHERE database_name = 'sys' ORDER BY partition_key",
    )
    .await;
    assert_eq!(files.len(), 2, "{files:?}");
    assert_eq!(
        keys(&files[0]),
        sorted(&[
            "database_name",
            "table_name",
            "partition_id",
            "partition_key",
            "file_id",
            "path",
            "level",
            "rows",
            "bytes",
            "min_time",
            "max_time",
        ])
    );
    for (file, rows) in files.iter().zip([2, 1]) {
        assert_eq!(file["rows"], rows);
        let path = file["path"].as_str().unwrap();
        assert!(
            path.starts_with("dbs/") && path.ends_with(".parquet"),
            "{path}"
        );
        assert!(
            server.data_dir().join("objects").join(path).exists(),
            "{path} is the object's path in the store"
        );
    }

    let ingesters = rows(&url, "sys", "SELECT * FROM system.ingesters").await;
    assert_eq!(ingesters.len(), 1, "{ingesters:?}");
    assert_eq!(ingesters[0]["address"], "in-process");
    assert_eq!(ingesters[0]["healthy"], true);
    assert_eq!(ingesters[0]["buffered_rows"], 2, "the two unpersisted rows");
    assert!(ingesters[0]["buffered_bytes"].as_i64().unwrap() > 0);

    let compactor = rows(&url, "sys", "SELECT * FROM system.compactor").await;
    assert_eq!(compactor.len(), 1, "{compactor:?}");
    assert_eq!(compactor[0]["skipped_partitions"], 0);

    let tokens = rows(&url, "sys", "SELECT * FROM system.tokens").await;
    let token = tokens
        .iter()
        .find(|t| t["token_id"] == token_id.as_str())
        .unwrap_or_else(|| panic!("{token_id} not in {tokens:?}"));
    assert_eq!(token["permissions"], "read:sys");
    assert_eq!(token["description"], "system tables test");
    assert_eq!(
        keys(token),
        sorted(&["token_id", "description", "permissions", "created_at"]),
        "no secret, no hash (and a null expiry is left out of JSON)"
    );
    let everything = serde_json::to_string(&tokens).unwrap();
    assert!(!everything.contains(&secret[6..]), "the secret leaked");

    // Queries: one that succeeds over HTTP, one over Flight SQL, one that fails.
    let marker = "SELECT count(*) AS n FROM cpu WHERE host <> 'log-marker'";
    assert_eq!(rows(&url, "sys", marker).await, vec![json!({"n": 5})]);
    let channel = Endpoint::from_shared(url.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut flight = FlightSqlServiceClient::new(channel);
    flight.set_token(ADMIN_TOKEN.to_string());
    flight.set_header("database", "sys");
    let flight_sql = "SELECT host FROM cpu WHERE host = 'c' ORDER BY time";
    let info = flight.execute(flight_sql.to_string(), None).await.unwrap();
    let ticket = info.endpoint[0].ticket.clone().unwrap();
    let batches: Vec<RecordBatch> = flight
        .do_get(ticket)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(batches.iter().map(RecordBatch::num_rows).sum::<usize>(), 2);
    let failing = "SELECT no_such_column FROM cpu";
    assert!(
        query_as(&crate::client(), &url, "sys", failing)
            .await
            .is_err()
    );

    let log = rows(
        &url,
        "sys",
        "SELECT query_text, database_name, protocol, rows, status, error, querier, \
         duration_seconds, peak_memory_bytes FROM system.queries",
    )
    .await;
    let find = |text: &str| {
        log.iter()
            .find(|q| q["query_text"] == text)
            .unwrap_or_else(|| panic!("{text} not in {log:#?}"))
            .clone()
    };
    let addr = url.trim_start_matches("http://");
    let http = find(marker);
    assert_eq!(
        (
            &http["protocol"],
            &http["status"],
            &http["rows"],
            &http["querier"]
        ),
        (&json!("http"), &json!("ok"), &json!(1), &json!(addr))
    );
    assert_eq!(http["database_name"], "sys");
    assert!(http.get("error").is_none(), "{http}");
    assert!(http["duration_seconds"].as_f64().unwrap() > 0.0);
    let flight_row = find(flight_sql);
    assert_eq!(
        (
            &flight_row["protocol"],
            &flight_row["status"],
            &flight_row["rows"]
        ),
        (&json!("flight_sql"), &json!("ok"), &json!(2))
    );
    // The sort held memory.
    assert!(
        flight_row["peak_memory_bytes"].as_i64().unwrap() > 0,
        "{flight_row}"
    );
    let failed = find(failing);
    assert_eq!(failed["status"], "error");
    assert!(
        failed["error"].as_str().unwrap().contains("no_such_column"),
        "{failed}"
    );
    // The query reading the log is running while it does.
    let reading = log
        .iter()
        .find(|q| {
            q["query_text"]
                .as_str()
                .unwrap()
                .contains("FROM system.queries")
        })
        .unwrap();
    assert_eq!(reading["status"], "running");

    database_tokens_are_refused(&url, "sys", &secret).await;
    server.terminate().unwrap();
}

/// A query that runs for minutes: a filtered cross join the planner cannot answer from
/// statistics.
const LONG_QUERY: &str = "SELECT count(*) AS n FROM generate_series(1, 1000000) a \
     CROSS JOIN generate_series(1, 1000000) b WHERE a.value <> b.value";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cluster_shows_its_state_and_every_queriers_queries() {
    let mut c = TestCluster::start(
        binary(),
        ClusterOptions {
            queriers: 2,
            compactors: 1,
            ..crate::cluster_options()
        },
    )
    .await
    .unwrap();
    let url = c.url();
    let lines: String = (0..10)
        .map(|d| format!("cpu,host=h{} usage={d} {}\n", d % 3, d * DAY + 1))
        .collect();
    write(&url, "sys", &lines).await;
    let (_, secret) = read_token(&url, "sys").await;
    let (q0, q1) = (c.queriers[0].url(), c.queriers[1].url());

    // Every ingester, healthy, holding the ten rows between them.
    let ingesters = rows(
        &q1,
        "sys",
        "SELECT * FROM system.ingesters ORDER BY address",
    )
    .await;
    let mut addresses: Vec<String> = c.ingesters.iter().map(FerriteServer::url).collect();
    addresses.sort();
    assert_eq!(
        ingesters
            .iter()
            .map(|i| i["address"].as_str().unwrap().to_string())
            .collect::<Vec<_>>(),
        addresses
    );
    assert!(
        ingesters.iter().all(|i| i["healthy"] == true),
        "{ingesters:?}"
    );
    let buffered: i64 = ingesters
        .iter()
        .map(|i| i["buffered_rows"].as_i64().unwrap())
        .sum();
    assert_eq!(buffered, 10);

    let tables = rows(
        &url,
        "sys",
        "SELECT * FROM system.tables WHERE database_name = 'sys'",
    )
    .await;
    assert_eq!(tables.len(), 1, "{tables:?}");
    assert_eq!(
        (
            &tables[0]["table_name"],
            &tables[0]["column_count"],
            &tables[0]["files"]
        ),
        (&json!("cpu"), &json!(3), &json!(0)),
        "nothing persisted yet"
    );

    // The compactor takes its lease at start.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let compactor = rows(&q0, "sys", "SELECT * FROM system.compactor").await;
        assert_eq!(compactor.len(), 1);
        if compactor[0]["holder"].is_string() {
            assert!(
                compactor[0]["lease_expires_at"].is_string(),
                "{compactor:?}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no compactor lease: {compactor:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // A long query on querier 0 is seen running through querier 1.
    let long = tokio::spawn({
        let q0 = q0.clone();
        async move { query_as(&crate::client(), &q0, "sys", LONG_QUERY).await }
    });
    let seen = |status: &'static str| {
        let (q1, q0) = (q1.clone(), q0.clone());
        async move {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let log = rows(
                    &q1,
                    "sys",
                    "SELECT query_text, status, querier FROM system.queries",
                )
                .await;
                if let Some(row) = log.iter().find(|q| q["query_text"] == LONG_QUERY) {
                    assert_eq!(row["querier"], q0.as_str(), "{row}");
                    if row["status"] == status {
                        return;
                    }
                }
                assert!(
                    Instant::now() < deadline,
                    "the long query is not {status}: {log:#?}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    seen("running").await;
    // The client hangs up: the query is cancelled, and still listed.
    long.abort();
    let _ = long.await;
    seen("cancelled").await;

    database_tokens_are_refused(&url, "sys", &secret).await;

    // An ingester that is gone is listed as such.
    c.ingesters[1].kill9().unwrap();
    let gone = c.ingesters[1].url();
    let ingesters = rows(&q0, "sys", "SELECT * FROM system.ingesters").await;
    let row = ingesters
        .iter()
        .find(|i| i["address"] == gone.as_str())
        .unwrap_or_else(|| panic!("{gone} not in {ingesters:?}"));
    assert_eq!(row["healthy"], false, "{row}");
    assert!(row["error"].is_string(), "{row}");
    assert!(row.get("buffered_rows").is_none(), "{row}");
}
