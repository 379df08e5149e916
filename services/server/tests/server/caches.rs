//! Last-value and distinct-value caches end to end: created through InfluxDB 3's configure
//! API and the management API, read with `last_cache()` / `distinct_cache()` over HTTP,
//! Flight and Flight SQL, and always equal to the same question asked in SQL of the table:
//! after writes, a kill -9, a clean restart (everything persisted, the WAL empty), on
//! `serve` and across a cluster's ingesters.

use std::time::Duration;

use arrow::array::RecordBatch;
use arrow_flight::Ticket;
use arrow_flight::sql::client::FlightSqlServiceClient;
use ferrite_testkit::cluster::{ClusterOptions, TestCluster};
use ferrite_testkit::server::FerriteServer;
use futures::TryStreamExt;
use serde_json::{Value, json};
use tonic::transport::Endpoint;

use super::{ADMIN_TOKEN, binary};

const HOUR: i64 = 3_600_000_000_000;

/// `count` rows of `cpu` from row `from` on: 40 hosts over 3 regions (every tenth host
/// without one), times spread over four days in no order, `idle` missing from every fifth
/// row, and every 13th row written again at the same time with a new `usage` and no `idle`
/// (a later write of a point merges into it).
fn lines(from: u64, count: u64) -> String {
    let mut out = String::new();
    let mut x = from
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    for i in from..from + count {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let host = (x >> 33) % 40;
        let time = 1_700_000_000_000_000_000 + ((x >> 20) % 96) as i64 * HOUR + i as i64;
        let region = if host.is_multiple_of(10) {
            String::new()
        } else {
            format!(",region=r{}", host % 3)
        };
        let usage = (x >> 40) % 1000;
        let idle = if i.is_multiple_of(5) {
            String::new()
        } else {
            format!(",idle={}i", (x >> 45) % 100)
        };
        out.push_str(&format!(
            "cpu{region},host=h{host} usage={usage}.5{idle} {time}\n"
        ));
        if i.is_multiple_of(13) {
            out.push_str(&format!(
                "cpu{region},host=h{host} usage={}.25 {time}\n",
                usage + 1
            ));
        }
    }
    out
}

async fn write(url: &str, db: &str, body: String) {
    let r = crate::client()
        .post(format!("{url}/api/v2/write?bucket={db}&precision=ns"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204, "{}", r.text().await.unwrap());
}

async fn query(url: &str, db: &str, sql: &str) -> Result<Vec<Value>, (u16, String)> {
    super::system_tables::query_as(&crate::client(), url, db, sql).await
}

async fn rows(url: &str, db: &str, sql: &str) -> Vec<Value> {
    query(url, db, sql)
        .await
        .unwrap_or_else(|(s, e)| panic!("{sql}: {s} {e}"))
}

/// POST `body` to `path`: the status and the JSON answer.
async fn post(url: &str, path: &str, body: Value) -> (u16, Value) {
    let r = crate::client()
        .post(format!("{url}{path}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn delete(url: &str, path: &str) -> u16 {
    let r = crate::client()
        .delete(format!("{url}{path}"))
        .send()
        .await
        .unwrap();
    r.status().as_u16()
}

const LAST: &str = "SELECT region, host, usage, idle, time FROM last_cache('cpu', 'lvc') \
                    ORDER BY region, host, time DESC";
const LAST_SQL: &str = "SELECT region, host, usage, idle, time FROM (SELECT region, host, usage, \
                        idle, time, row_number() OVER (PARTITION BY region, host ORDER BY time \
                        DESC) AS rn FROM cpu) WHERE rn <= 3 ORDER BY region, host, time DESC";
const DISTINCT: &str =
    "SELECT region, host FROM distinct_cache('cpu', 'dvc') ORDER BY region, host";
const DISTINCT_SQL: &str = "SELECT DISTINCT region, host FROM cpu ORDER BY region, host";

/// Both caches hold what SQL over the table says, for every key.
async fn assert_caches_match(url: &str, db: &str, when: &str) {
    let (cached, table) = (rows(url, db, LAST).await, rows(url, db, LAST_SQL).await);
    assert!(cached.len() > 40, "{when}: {} cached rows", cached.len());
    assert_eq!(
        cached, table,
        "{when}: last_cache() equals SQL over the table"
    );
    let (cached, table) = (
        rows(url, db, DISTINCT).await,
        rows(url, db, DISTINCT_SQL).await,
    );
    assert_eq!(cached.len(), 40, "{when}: every host once");
    assert_eq!(
        cached, table,
        "{when}: distinct_cache() equals SELECT DISTINCT"
    );
}

/// Create `lvc` (keys region, host; 3 rows each) through `/api/v3/configure` and `dvc`
/// (region, host) through `/api/v0`.
async fn create_caches(url: &str, db: &str) {
    let (status, body) = post(
        url,
        "/api/v3/configure/last_cache",
        json!({"db": db, "table": "cpu", "name": "lvc", "key_columns": ["region", "host"],
               "value_columns": ["usage", "idle"], "count": 3}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["value_columns"], json!(["usage", "idle", "time"]));
    let (status, body) = post(
        url,
        &format!("/api/v0/databases/{db}/tables/cpu/caches"),
        json!({"kind": "distinct", "name": "dvc", "columns": ["region", "host"]}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["maxCardinality"], 100_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn caches_equal_sql_over_the_table_through_writes_kills_and_clean_restarts() {
    let mut server = FerriteServer::start(binary(), &["--admin-token", ADMIN_TOKEN])
        .await
        .unwrap();
    let url = server.url();
    let db = "lvc";
    // Rows written before the caches exist are in them too (from the buffer).
    write(&url, db, lines(0, 500)).await;
    create_caches(&url, db).await;
    write(&url, db, lines(500, 2000)).await;
    assert_caches_match(&url, db, "after writes").await;
    // Every key saw more than 3 rows: the cache kept the newest 3 (eviction at count).
    let per_key = rows(
        &url,
        db,
        "SELECT count(*) AS n FROM last_cache('cpu', 'lvc') GROUP BY region, host",
    )
    .await;
    assert!(per_key.iter().all(|r| r["n"] == 3), "{per_key:?}");

    // Flight SQL and IOx Flight tickets reach the same table functions.
    let channel = Endpoint::from_shared(url.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut flight_sql = FlightSqlServiceClient::new(channel.clone());
    flight_sql.set_token(ADMIN_TOKEN.to_string());
    flight_sql.set_header("database", db);
    let info = flight_sql
        .execute("SELECT * FROM distinct_cache('cpu')".to_string(), None)
        .await
        .unwrap();
    let ticket = info.endpoint[0].ticket.clone().unwrap();
    let batches: Vec<RecordBatch> = flight_sql
        .do_get(ticket)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(batches.iter().map(RecordBatch::num_rows).sum::<usize>(), 40);
    let mut flight = arrow_flight::flight_service_client::FlightServiceClient::new(channel);
    let mut request = tonic::Request::new(Ticket {
        ticket: json!({"database": db, "sql_query": "SELECT count(*) FROM last_cache('cpu')"})
            .to_string()
            .into(),
    });
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {ADMIN_TOKEN}").parse().unwrap(),
    );
    let stream = flight.do_get(request).await.unwrap().into_inner();
    let batches: Vec<RecordBatch> =
        arrow_flight::decode::FlightRecordBatchStream::new_from_flight_data(
            stream.map_err(arrow_flight::error::FlightError::from),
        )
        .try_collect()
        .await
        .unwrap();
    assert_eq!(batches.iter().map(RecordBatch::num_rows).sum::<usize>(), 1);

    // A crash: the caches come back from the WAL.
    server.kill9().unwrap();
    server.restart().await.unwrap();
    assert_caches_match(&url, db, "after kill -9").await;
    // A clean stop persists everything and empties the WAL: the saved rows bring them back.
    server.terminate().unwrap();
    server.restart().await.unwrap();
    assert_caches_match(&url, db, "after a clean restart").await;
    write(&url, db, lines(2500, 500)).await;
    assert_caches_match(&url, db, "after a clean restart and more writes").await;

    // TTL: a row not replaced for longer than the TTL is gone.
    let (status, body) = post(
        &url,
        "/api/v3/configure/last_cache",
        json!({"db": db, "table": "cpu", "name": "short", "key_columns": ["host"], "ttl": 1}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    write(&url, db, "cpu,host=ttl usage=1 1\n".to_string()).await;
    let short = "SELECT host FROM last_cache('cpu', 'short') WHERE host = 'ttl'";
    assert_eq!(rows(&url, db, short).await.len(), 1);
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert_eq!(
        rows(&url, db, short).await.len(),
        0,
        "expired after the TTL"
    );

    // Max cardinality: the least recently seen tuples go first.
    let (status, body) = post(
        &url,
        "/api/v3/configure/distinct_cache",
        json!({"db": db, "table": "cpu", "name": "few", "columns": ["host"],
               "max_cardinality": 5}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    for h in 0..8 {
        write(&url, db, format!("cpu,host=new{h} usage=1 {h}\n")).await;
    }
    let few = rows(&url, db, "SELECT host FROM distinct_cache('cpu', 'few')").await;
    assert_eq!(
        few,
        (3..8)
            .map(|h| json!({"host": format!("new{h}")}))
            .collect::<Vec<_>>()
    );

    // Deleted: the name is gone at once, and free again.
    assert_eq!(
        delete(
            &url,
            &format!("/api/v3/configure/last_cache?db={db}&table=cpu&name=short")
        )
        .await,
        200
    );
    let (status, body) = query(&url, db, short).await.unwrap_err();
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("table 'cpu' has no last cache named 'short'"),
        "{body}"
    );
    assert_eq!(
        delete(
            &url,
            &format!("/api/v0/databases/{db}/tables/cpu/caches/distinct/few")
        )
        .await,
        204
    );
    let listed = crate::client()
        .get(format!("{url}/api/v0/databases/{db}/caches"))
        .send()
        .await
        .unwrap()
        .json::<Vec<Value>>()
        .await
        .unwrap();
    let names: Vec<&str> = listed.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["dvc", "lvc"]);
    // And in the system tables, as in InfluxDB 3 Core.
    assert_eq!(
        rows(
            &url,
            db,
            "SELECT table_name, name, key_column_names, value_column_names, count, ttl_seconds \
             FROM system.last_caches"
        )
        .await,
        [
            json!({"table_name": "cpu", "name": "lvc", "key_column_names": "region,host",
                "value_column_names": "usage,idle,time", "count": 3, "ttl_seconds": 14400})
        ]
    );
    assert_eq!(
        rows(
            &url,
            db,
            "SELECT name, column_names, max_cardinality FROM system.distinct_caches"
        )
        .await,
        [json!({"name": "dvc", "column_names": "region,host", "max_cardinality": 100000})]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_cache_definitions_are_refused_with_the_reason() {
    let server = FerriteServer::start(binary(), &["--admin-token", ADMIN_TOKEN])
        .await
        .unwrap();
    let url = server.url();
    write(&url, "bad", lines(0, 50)).await;
    let last = |extra: Value| {
        let mut body = json!({"db": "bad", "table": "cpu"});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };
    let cases = [
        (
            last(json!({"key_columns": ["nope"]})),
            400,
            "column 'nope' not found in table 'cpu'",
        ),
        (
            last(json!({"key_columns": ["usage"]})),
            400,
            "column 'usage' is a float field in table 'cpu': key columns must be tags",
        ),
        (
            last(json!({"value_columns": ["host"], "key_columns": ["host"]})),
            400,
            "column 'host' is a key column",
        ),
        (
            last(json!({"count": 11})),
            400,
            "count must be between 1 and 10, got 11",
        ),
        (
            json!({"db": "bad", "table": "nope"}),
            404,
            "table 'nope' not found in database 'bad'",
        ),
        (json!({"db": "nope", "table": "cpu"}), 404, "nope"),
        (
            last(json!({"colour": "red"})),
            400,
            "unknown field `colour`",
        ),
    ];
    for (body, status, message) in cases {
        let (got, answer) = post(&url, "/api/v3/configure/last_cache", body.clone()).await;
        assert_eq!(got, status, "{body} → {answer}");
        assert!(
            answer["message"].as_str().unwrap().contains(message),
            "{body} → {answer}"
        );
    }
    let (got, answer) = post(
        &url,
        "/api/v3/configure/distinct_cache",
        json!({"db": "bad", "table": "cpu", "columns": ["idle"]}),
    )
    .await;
    assert_eq!(got, 400, "{answer}");
    assert!(
        answer["message"].as_str().unwrap().contains(
            "column 'idle' is an integer field in table 'cpu': distinct cache columns must be tags"
        ),
        "{answer}"
    );
    // A duplicate name is a conflict; the same name for the other kind is not.
    let (got, _) = post(
        &url,
        "/api/v3/configure/last_cache",
        last(json!({"name": "c"})),
    )
    .await;
    assert_eq!(got, 201);
    let (got, answer) = post(
        &url,
        "/api/v3/configure/last_cache",
        last(json!({"name": "c"})),
    )
    .await;
    assert_eq!(got, 409, "{answer}");
    assert_eq!(
        answer["message"],
        "table 'cpu' already has a last cache named 'c'"
    );
    let (got, _) = post(
        &url,
        "/api/v3/configure/distinct_cache",
        json!({"db": "bad", "table": "cpu", "name": "c", "columns": ["host"]}),
    )
    .await;
    assert_eq!(got, 201);
    assert_eq!(
        delete(
            &url,
            "/api/v3/configure/last_cache?db=bad&table=cpu&name=nope"
        )
        .await,
        404
    );
    // Only the admin manages caches.
    let r = ferrite_testkit::server::client_with(None)
        .post(format!("{url}/api/v3/configure/last_cache"))
        .json(&last(json!({})))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cluster_merges_every_ingesters_cache_and_rebuilds_one_after_a_restart() {
    let mut c = TestCluster::start(
        binary(),
        ClusterOptions {
            ingesters: 2,
            ..crate::cluster_options()
        },
    )
    .await
    .unwrap();
    let url = c.url();
    let db = "lvc";
    write(&url, db, lines(0, 300)).await;
    // Through the router, as a user's client would.
    create_caches(&url, db).await;
    // Four days of data: both ingesters hold rows of the same keys.
    write(&url, db, lines(300, 2000)).await;
    assert_caches_match(&url, db, "cluster, after writes").await;
    c.ingesters[0].terminate().unwrap();
    c.ingesters[0].restart().await.unwrap();
    assert_caches_match(&url, db, "cluster, after an ingester's clean restart").await;
    c.ingesters[1].kill9().unwrap();
    c.ingesters[1].restart().await.unwrap();
    assert_caches_match(&url, db, "cluster, after an ingester's kill -9").await;
}
