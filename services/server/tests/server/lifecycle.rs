//! Databases and tables over their life, through the management API: retention (writes
//! refused, queries never return older rows, persisted or not), max tables and max columns,
//! soft delete, undelete and rename, and tokens bound to the database, not its name.

use std::time::{Duration, Instant};

use ferrite_testkit::cluster::TestCluster;
use ferrite_testkit::server::{FerriteServer, client_with};
use serde_json::{Value, json};

use super::{binary, walk};

const HOUR_NS: i64 = 3_600_000_000_000;

/// Longer than the change feed's poll interval plus a reload, well under the second a
/// management change may take to reach every router and querier.
pub(crate) const SETTLE: Duration = Duration::from_millis(400);

/// A front door driven with the admin token.
struct Admin {
    url: String,
    http: reqwest::Client,
}

impl Admin {
    fn new(url: String, token: &str) -> Self {
        Self {
            url,
            http: client_with(Some(token)),
        }
    }

    /// A management call. A change reaches every router and querier through the catalog's
    /// change feed (polled every 100 ms), so after one the test waits for it to spread.
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let changes = method != reqwest::Method::GET;
        let mut request = self.http.request(method, format!("{}{path}", self.url));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let r = request.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        if changes {
            tokio::time::sleep(SETTLE).await;
        }
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn create_database(&self, body: Value) -> Value {
        let (status, body) = self
            .call(reqwest::Method::POST, "/api/v0/databases", Some(body))
            .await;
        assert_eq!(status, 201, "{body}");
        body
    }

    /// A write through v3 with partial writes: (status, body).
    async fn write(&self, db: &str, lines: &str) -> (u16, String) {
        let r = self
            .http
            .post(format!("{}/api/v3/write_lp?db={db}", self.url))
            .body(lines.to_string())
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    async fn query(&self, db: &str, sql: &str) -> (u16, String) {
        query_as(&self.http, &self.url, db, sql).await
    }

    async fn count(&self, db: &str, table: &str) -> i64 {
        let (status, body) = self
            .query(db, &format!("SELECT count(*) AS n FROM \"{table}\""))
            .await;
        assert_eq!(status, 200, "{body}");
        serde_json::from_str::<Value>(&body).unwrap()[0]["n"]
            .as_i64()
            .unwrap()
    }

    async fn token(&self, permissions: Value) -> String {
        let (status, body) = self
            .call(
                reqwest::Method::POST,
                "/api/v0/tokens",
                Some(json!({ "description": "lifecycle", "permissions": permissions })),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["accessToken"].as_str().unwrap().to_string()
    }
}

async fn query_as(http: &reqwest::Client, url: &str, db: &str, sql: &str) -> (u16, String) {
    let r = http
        .get(format!("{url}/api/v3/query_sql"))
        .query(&[("db", db), ("q", sql)])
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

fn now_ns() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap()
}

/// Wait until `dir` holds a parquet file (the ingester persisted).
async fn wait_for_parquet(dir: &std::path::Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let found = walk(dir)
            .iter()
            .any(|p| p.extension().is_some_and(|e| e == "parquet"));
        if found {
            return;
        }
        assert!(Instant::now() < deadline, "nothing persisted in 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn retention_refuses_old_points_and_queries_never_return_older_rows() {
    let server = FerriteServer::start(binary(), &["--persist-age-seconds", "1"])
        .await
        .unwrap();
    let admin = Admin::new(server.url(), server.admin_token().unwrap());
    let created = admin
        .create_database(json!({ "name": "ret", "retentionPeriod": 2 * HOUR_NS }))
        .await;
    assert_eq!(created["retentionPeriod"], 2 * HOUR_NS);
    assert_eq!(created["maxTables"], 500, "defaults: {created}");
    assert_eq!(created["maxColumnsPerTable"], 250);

    let now = now_ns();
    let lines = format!(
        "m,h=new v=1 {}\nm,h=old v=2 {}\nm,h=mid v=3 {}\n",
        now,
        now - 3 * HOUR_NS,
        now - HOUR_NS
    );
    let (status, body) = admin.write("ret", &lines).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("\"line_number\":2")
            && body.contains("retention period of database 'ret' (2h)"),
        "{body}"
    );
    assert_eq!(
        admin.count("ret", "m").await,
        2,
        "the good lines are stored"
    );
    // v2 writes are all or nothing: one old point refuses the request.
    let r = admin
        .http
        .post(format!("{}/api/v2/write?bucket=ret", admin.url))
        .body(format!("m,h=x v=1 {}\n", now - 5 * HOUR_NS))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // Persisted rows too: shorten the retention below the `mid` row's age.
    wait_for_parquet(&server.data_dir().join("objects")).await;
    let (status, body) = admin
        .call(
            reqwest::Method::PATCH,
            "/api/v0/databases/ret",
            Some(json!({ "retentionPeriod": HOUR_NS / 2 })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["retentionPeriod"], HOUR_NS / 2);
    let (status, body) = admin.query("ret", "SELECT h FROM m ORDER BY h").await;
    assert_eq!((status, body.as_str()), (200, r#"[{"h":"new"}]"#));
    // Unpersisted rows the same way.
    assert_eq!(
        admin
            .write(
                "ret",
                &format!("n,h=a v=1 {}\nn,h=b v=1 {}\n", now, now - HOUR_NS / 4)
            )
            .await
            .0,
        204
    );
    admin
        .call(
            reqwest::Method::PATCH,
            "/api/v0/databases/ret",
            Some(json!({ "retentionPeriod": HOUR_NS / 8 })),
        )
        .await;
    assert_eq!(admin.count("ret", "n").await, 1);
    // Back to forever: nothing was deleted, the rows come back.
    admin
        .call(
            reqwest::Method::PATCH,
            "/api/v0/databases/ret",
            Some(json!({ "retentionPeriod": 0 })),
        )
        .await;
    assert_eq!(admin.count("ret", "n").await, 2);
    assert_eq!(admin.count("ret", "m").await, 2);
}

#[tokio::test]
async fn max_tables_and_max_columns_refuse_the_write_that_would_exceed_them() {
    let server = FerriteServer::start(binary(), &[]).await.unwrap();
    let admin = Admin::new(server.url(), server.admin_token().unwrap());
    admin
        .create_database(json!({ "name": "lim", "maxTables": 2, "maxColumnsPerTable": 4 }))
        .await;
    assert_eq!(admin.write("lim", "a,t=x v=1 1\nb v=1 1\n").await.0, 204);
    let (status, body) = admin.write("lim", "c v=1 1\n").await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body.contains("has 2 tables") && body.contains("max tables 2") && body.contains("'c'"),
        "{body}"
    );
    // time, t, v: one more column fits, two do not.
    let (status, body) = admin.write("lim", "a,t=x v=1,w=2,z=3 2\n").await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body.contains("table 'a' has 3 columns") && body.contains("max columns per table 4"),
        "{body}"
    );
    assert_eq!(admin.write("lim", "a,t=x v=1,w=2 2\n").await.0, 204);
    let (status, body) = admin.query("lim", "SELECT * FROM a ORDER BY time").await;
    assert_eq!(status, 200, "{body}");
    assert!(
        !body.contains("\"z\""),
        "a refused write leaves no column behind: {body}"
    );
    // Raising the limit lets the table in.
    let (status, _) = admin
        .call(
            reqwest::Method::PATCH,
            "/api/v0/databases/lim",
            Some(json!({ "maxTables": 3 })),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(admin.write("lim", "c v=1 1\n").await.0, 204);
}

/// Soft delete, undelete and rename of databases and tables, against any front door.
async fn lifecycle(admin: &Admin) {
    admin.create_database(json!({ "name": "life" })).await;
    assert_eq!(
        admin
            .write("life", "cpu,h=a v=1 1\ncpu,h=b v=2 2\ndisk,h=a u=1i 1\n")
            .await
            .0,
        204
    );
    let reader = client_with(Some(
        &admin
            .token(json!([{ "action": "read", "resource": "life" }]))
            .await,
    ));
    assert_eq!(
        query_as(&reader, &admin.url, "life", "SELECT * FROM cpu")
            .await
            .0,
        200
    );

    // Delete: invisible to queries and listings, kept for undelete.
    let (status, body) = admin
        .call(reqwest::Method::DELETE, "/api/v0/databases/life", None)
        .await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(admin.query("life", "SELECT * FROM cpu").await.0, 404);
    let (_, listed) = admin
        .call(reqwest::Method::GET, "/api/v0/databases", None)
        .await;
    assert!(!listed.to_string().contains("\"life\""), "{listed}");
    let (_, deleted) = admin
        .call(
            reqwest::Method::GET,
            "/api/v0/databases?status=deleted",
            None,
        )
        .await;
    let old = deleted
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "life")
        .unwrap_or_else(|| panic!("a deleted database is listed as deleted: {deleted}"))
        .clone();
    assert!(old["deletedAt"].is_string(), "{old}");

    // A new database of the same name: empty, and the old database's token does not open it.
    assert_eq!(admin.write("life", "cpu,h=z v=9 9\n").await.0, 204);
    assert_eq!(admin.count("life", "cpu").await, 1);
    let (status, body) = query_as(&reader, &admin.url, "life", "SELECT * FROM cpu").await;
    assert_eq!(
        status, 403,
        "the old token on the re-created database: {body}"
    );

    // Undelete needs the name free: rename the new one, then the old comes back whole.
    let path = format!("/api/v0/databases/{}/undelete", old["id"]);
    let (status, body) = admin.call(reqwest::Method::PUT, &path, None).await;
    assert_eq!(status, 409, "{body}");
    let (status, body) = admin
        .call(
            reqwest::Method::PUT,
            "/api/v0/databases/life/rename",
            Some(json!({ "name": "life2" })),
        )
        .await;
    assert_eq!(
        (status, body["name"].as_str()),
        (200, Some("life2")),
        "{body}"
    );
    let (status, body) = admin.call(reqwest::Method::PUT, &path, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(admin.count("life", "cpu").await, 2);
    assert_eq!(admin.count("life2", "cpu").await, 1);
    assert_eq!(
        query_as(&reader, &admin.url, "life", "SELECT * FROM cpu")
            .await
            .0,
        200
    );

    // A renamed database keeps its tokens: they name the database, not the name.
    admin
        .call(
            reqwest::Method::PUT,
            "/api/v0/databases/life/rename",
            Some(json!({ "name": "life3" })),
        )
        .await;
    let (status, body) = query_as(
        &reader,
        &admin.url,
        "life3",
        "SELECT count(*) AS n FROM cpu",
    )
    .await;
    assert_eq!((status, body.as_str()), (200, r#"[{"n":2}]"#));

    // Tables: delete, undelete, rename, create.
    let (status, _) = admin
        .call(
            reqwest::Method::DELETE,
            "/api/v0/databases/life3/tables/disk",
            None,
        )
        .await;
    assert_eq!(status, 204);
    assert_eq!(admin.query("life3", "SELECT * FROM disk").await.0, 400);
    let (_, tables) = admin
        .call(reqwest::Method::GET, "/api/v0/databases/life3/tables", None)
        .await;
    assert_eq!(tables.as_array().unwrap().len(), 1, "{tables}");
    assert_eq!(
        admin.write("life3", "disk,h=new u=5i 5\n").await.0,
        204,
        "the name is free"
    );
    assert_eq!(admin.count("life3", "disk").await, 1);
    let (_, deleted) = admin
        .call(
            reqwest::Method::GET,
            "/api/v0/databases/life3/tables?status=deleted",
            None,
        )
        .await;
    let disk_id = deleted[0]["id"].clone();
    let undelete = format!("/api/v0/databases/life3/tables/{disk_id}/undelete");
    assert_eq!(
        admin.call(reqwest::Method::PUT, &undelete, None).await.0,
        409
    );
    admin
        .call(
            reqwest::Method::PUT,
            "/api/v0/databases/life3/tables/disk/rename",
            Some(json!({ "name": "disk_new" })),
        )
        .await;
    let (status, body) = admin.call(reqwest::Method::PUT, &undelete, None).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = admin.query("life3", "SELECT h, u FROM disk").await;
    assert_eq!(
        (status, body.as_str()),
        (200, r#"[{"h":"a","u":1}]"#),
        "the old table, whole"
    );
    assert_eq!(admin.count("life3", "disk_new").await, 1);
    let (status, body) = admin
        .call(
            reqwest::Method::POST,
            "/api/v0/databases/life3/tables",
            Some(json!({ "name": "empty" })),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, _) = admin
        .call(
            reqwest::Method::POST,
            "/api/v0/databases/life3/tables",
            Some(json!({ "name": "empty" })),
        )
        .await;
    assert_eq!(status, 409);
}

#[tokio::test]
async fn serve_soft_deletes_undeletes_and_renames_databases_and_tables() {
    let server = FerriteServer::start(binary(), &[]).await.unwrap();
    lifecycle(&Admin::new(server.url(), server.admin_token().unwrap())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cluster_serves_the_management_api_through_its_routers() {
    let c = TestCluster::start(binary(), crate::cluster_options())
        .await
        .unwrap();
    lifecycle(&Admin::new(c.url(), &c.admin_token)).await;
}
