//! Access control end to end: the permission matrix over HTTP and Flight SQL, on `ferrite
//! serve` and on a cluster (two routers, a querier, ingesters and a catalog that refuse
//! outsiders), token revocation seen cluster-wide within a second, and no secret in any log.

use std::time::{Duration, Instant};

use arrow_flight::sql::client::FlightSqlServiceClient;
use ferrite_proto::ferrite::catalog::v1 as catalog_proto;
use ferrite_proto::ferrite::ingester::v1 as ingester_proto;
use ferrite_testkit::cluster::{ClusterOptions, TestCluster};
use ferrite_testkit::server::{FerriteServer, client_with};
use futures::TryStreamExt;
use serde_json::{Value, json};
use tonic::transport::{Channel, Endpoint};

use super::binary;

/// A front door and what the tests created on it.
struct Door {
    url: String,
    admin: reqwest::Client,
    /// Every secret created here, to look for in the logs afterwards.
    secrets: Vec<String>,
}

impl Door {
    fn new(url: String, admin_token: &str) -> Self {
        Self {
            url,
            admin: client_with(Some(admin_token)),
            secrets: Vec::new(),
        }
    }

    async fn create_database(&self, name: &str) {
        let r = self
            .admin
            .post(format!("{}/api/v0/databases", self.url))
            .json(&json!({ "name": name }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    }

    /// Create a token with `permissions` (`(action, database)` pairs); returns (id, secret).
    async fn create_token(
        &mut self,
        permissions: &[(&str, &str)],
        expires_at: Option<String>,
    ) -> (String, String) {
        let permissions: Vec<Value> = permissions
            .iter()
            .map(|(action, resource)| json!({ "action": action, "resource": resource }))
            .collect();
        let mut body = json!({ "description": "auth test", "permissions": permissions });
        if let Some(at) = expires_at {
            body["expiresAt"] = json!(at);
        }
        let r = self
            .admin
            .post(format!("{}/api/v0/tokens", self.url))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
        let created: Value = r.json().await.unwrap();
        let secret = created["accessToken"].as_str().unwrap().to_string();
        assert!(
            secret.starts_with("apiv1_") && secret.len() >= 49,
            "{secret}"
        );
        self.secrets.push(secret.clone());
        (created["id"].as_str().unwrap().to_string(), secret)
    }
}

/// `POST /api/v2/write` with `auth` as the `authorization` header (none when `None`).
async fn write(url: &str, auth: Option<&str>, db: &str) -> (u16, String) {
    let mut request = reqwest::Client::new()
        .post(format!("{url}/api/v2/write?bucket={db}"))
        .body("cpu,host=a usage=1 1\n");
    if let Some(auth) = auth {
        request = request.header("authorization", auth);
    }
    let r = request.send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// `GET /api/v3/query_sql` with `auth` as the `authorization` header.
async fn query(url: &str, auth: Option<&str>, db: &str) -> (u16, String) {
    let mut request = reqwest::Client::new()
        .get(format!("{url}/api/v3/query_sql"))
        .query(&[("db", db), ("q", "SELECT count(*) AS n FROM cpu")]);
    if let Some(auth) = auth {
        request = request.header("authorization", auth);
    }
    let r = request.send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

fn bearer(secret: &str) -> Option<String> {
    Some(format!("Bearer {secret}"))
}

/// A Flight SQL query; `Err` holds the gRPC code's name as tonic prints it.
async fn flight_sql(url: &str, token: Option<&str>, db: &str) -> Result<(), String> {
    let channel: Channel = Endpoint::from_shared(url.to_string())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = FlightSqlServiceClient::new(channel);
    if let Some(t) = token {
        client.set_token(t.to_string());
    }
    client.set_header("database", db);
    let info = client
        .execute("SELECT count(*) AS n FROM cpu".into(), None)
        .await
        .map_err(|e| e.to_string())?;
    let ticket = info.endpoint[0].ticket.clone().unwrap();
    let _: Vec<_> = client
        .do_get(ticket)
        .await
        .map_err(|e| e.to_string())?
        .try_collect()
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// Flight Handshake with Basic auth, as JDBC and ADBC do it: the bearer token comes back.
async fn handshake(url: &str, password: &str) -> Result<(), String> {
    let channel = Endpoint::from_shared(url.to_string())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = FlightSqlServiceClient::new(channel);
    client
        .handshake("user", password)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// How tonic describes the codes in an error's text.
const UNAUTHENTICATED: &str = "does not have valid authentication credentials";
const PERMISSION_DENIED: &str = "does not have permission";

fn assert_code(result: Result<(), String>, code: &str, what: &str) {
    match result {
        Err(e) => assert!(e.contains(code), "{what}: expected {code}, got {e}"),
        Ok(()) => panic!("{what}: expected {code}, got OK"),
    }
}

/// The whole permission matrix through `door` (writes through `door.url`, reads through
/// `read_url`).
async fn permission_matrix(door: &mut Door, read_url: &str) {
    let url = door.url.clone();
    door.create_database("authdb").await;
    door.create_database("otherdb").await;
    assert_eq!(
        door.admin
            .post(format!("{url}/api/v0/databases"))
            .json(&json!({ "name": "authdb" }))
            .send()
            .await
            .unwrap()
            .status(),
        409,
        "a database that exists"
    );
    let (_, rw) = door
        .create_token(&[("read", "authdb"), ("write", "authdb")], None)
        .await;
    let (_, ro) = door.create_token(&[("read", "authdb")], None).await;
    let (_, wo) = door.create_token(&[("write", "authdb")], None).await;
    let (_, other) = door
        .create_token(&[("read", "otherdb"), ("write", "otherdb")], None)
        .await;
    let (_, star) = door
        .create_token(&[("read", "*"), ("write", "*")], None)
        .await;
    let soon = chrono_in(Duration::from_secs(2));
    let (_, expiring) = door.create_token(&[("read", "authdb")], Some(soon)).await;

    // A token naming a database that does not exist is refused at creation.
    let r = door
        .admin
        .post(format!("{url}/api/v0/tokens"))
        .json(&json!({ "permissions": [{ "action": "read", "resource": "nope" }] }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    // Writes.
    assert_eq!(write(&url, None, "authdb").await.0, 401, "no token");
    let (status, body) = write(&url, Some("Digest abc"), "authdb").await;
    assert_eq!(status, 401, "malformed header: {body}");
    assert!(body.contains("\"code\":\"unauthorized\""), "{body}");
    assert_eq!(
        write(&url, bearer("apiv1_unknown").as_deref(), "authdb")
            .await
            .0,
        401
    );
    assert_eq!(
        write(&url, bearer(&rw).as_deref(), "authdb").await.0,
        204,
        "read-write"
    );
    let (status, body) = write(&url, bearer(&ro).as_deref(), "authdb").await;
    assert_eq!(status, 403, "read-only token writing: {body}");
    assert!(body.contains("write on database 'authdb'"), "{body}");
    assert!(!body.contains(&ro), "the secret is never echoed");
    assert_eq!(
        write(&url, bearer(&wo).as_deref(), "authdb").await.0,
        204,
        "write-only"
    );
    assert_eq!(
        write(&url, bearer(&other).as_deref(), "authdb").await.0,
        403,
        "wrong database"
    );
    assert_eq!(
        write(&url, bearer(&rw).as_deref(), "brand_new").await.0,
        403,
        "only * creates"
    );
    assert_eq!(
        write(&url, bearer(&star).as_deref(), "brand_new").await.0,
        204,
        "* creates"
    );
    assert_eq!(
        write(&url, Some(&format!("Token {rw}")), "authdb").await.0,
        204,
        "Token scheme"
    );
    let basic = format!("Basic {}", base64_of(&format!("anyone:{rw}")));
    assert_eq!(
        write(&url, Some(&basic), "authdb").await.0,
        204,
        "Basic, password part"
    );
    let v1 = reqwest::Client::new()
        .post(format!("{url}/write?db=authdb&p={wo}"))
        .body("cpu,host=b usage=2 2\n")
        .send()
        .await
        .unwrap();
    assert_eq!(v1.status(), 204, "v1 p= parameter");
    let v1 = reqwest::Client::new()
        .post(format!("{url}/write?db=authdb&u=x&p=wrong"))
        .body("cpu,host=b usage=2 2\n")
        .send()
        .await
        .unwrap();
    assert_eq!(v1.status(), 401, "v1 with a wrong p");

    // Queries (HTTP).
    assert_eq!(query(read_url, None, "authdb").await.0, 401, "no token");
    assert_eq!(
        query(read_url, bearer("apiv1_unknown").as_deref(), "authdb")
            .await
            .0,
        401
    );
    let (status, body) = query(read_url, bearer(&ro).as_deref(), "authdb").await;
    // Every write above was the same row (deduplicated) but the v1 one.
    assert_eq!(
        (status, body.as_str()),
        (200, r#"[{"n":2}]"#),
        "read-only reading"
    );
    assert_eq!(
        query(read_url, bearer(&rw).as_deref(), "authdb").await.0,
        200
    );
    assert_eq!(
        query(read_url, bearer(&wo).as_deref(), "authdb").await.0,
        403,
        "write-only reading"
    );
    assert_eq!(
        query(read_url, bearer(&other).as_deref(), "authdb").await.0,
        403,
        "wrong database"
    );
    assert_eq!(
        query(read_url, bearer(&star).as_deref(), "authdb").await.0,
        200,
        "*"
    );
    assert_eq!(
        query(read_url, bearer(&star).as_deref(), "brand_new")
            .await
            .0,
        200,
        "*"
    );

    // Flight SQL, and the Handshake JDBC and ADBC do.
    flight_sql(read_url, Some(&ro), "authdb").await.unwrap();
    flight_sql(read_url, Some(&star), "authdb").await.unwrap();
    assert_code(
        flight_sql(read_url, None, "authdb").await,
        UNAUTHENTICATED,
        "no token",
    );
    assert_code(
        flight_sql(read_url, Some("apiv1_unknown"), "authdb").await,
        UNAUTHENTICATED,
        "unknown token",
    );
    assert_code(
        flight_sql(read_url, Some(&wo), "authdb").await,
        PERMISSION_DENIED,
        "write-only token reading",
    );
    assert_code(
        flight_sql(read_url, Some(&other), "authdb").await,
        PERMISSION_DENIED,
        "wrong database",
    );
    handshake(read_url, &ro).await.unwrap();
    assert_code(
        handshake(read_url, "apiv1_unknown").await,
        UNAUTHENTICATED,
        "handshake",
    );

    // The management API is the admin's.
    let r = reqwest::Client::new()
        .get(format!("{url}/api/v0/tokens"))
        .bearer_auth(&star)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "a database token managing");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], 403, "{body}");
    let r = reqwest::Client::new()
        .get(format!("{url}/api/v0/tokens"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // Probes stay open.
    for path in ["/health", "/ping"] {
        let r = reqwest::Client::new()
            .get(format!("{url}{path}"))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
    }

    // Expiry.
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let (status, body) = query(read_url, bearer(&expiring).as_deref(), "authdb").await;
    assert_eq!(status, 401, "expired: {body}");
    assert!(body.contains("expired"), "{body}");
    assert_code(
        flight_sql(read_url, Some(&expiring), "authdb").await,
        UNAUTHENTICATED,
        "expired",
    );
}

/// Revoke `id` through `door`, then how long until `url` refuses `secret`.
async fn revoke_and_time(door: &Door, id: &str, secret: &str, urls: &[String]) -> Duration {
    assert_eq!(
        query(&urls[0], bearer(secret).as_deref(), "authdb").await.0,
        200
    );
    let r = door
        .admin
        .delete(format!("{}/api/v0/tokens/{id}", door.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let start = Instant::now();
    for url in urls {
        loop {
            let (status, body) = query(url, bearer(secret).as_deref(), "authdb").await;
            if status == 401 {
                assert!(body.contains("revoked"), "{body}");
                break;
            }
            assert_eq!(status, 200, "{body}");
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "{url} still accepts it"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    start.elapsed()
}

fn assert_no_secret_in(logs: &[String], secrets: &[String]) {
    for log in logs {
        for secret in secrets {
            assert!(
                !log.contains(secret.as_str()),
                "a token secret is in a log:\n{log}"
            );
        }
    }
}

#[tokio::test]
async fn serve_enforces_the_permission_matrix() {
    let server = FerriteServer::start(binary(), &[]).await.unwrap();
    let token_file = server.data_dir().join("admin-token");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&token_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the admin token file is private");
    }
    let admin = server
        .admin_token()
        .expect("serve created an admin token")
        .to_string();
    let mut door = Door::new(server.url(), &admin);
    permission_matrix(&mut door, &server.url()).await;

    let (id, secret) = door.create_token(&[("read", "authdb")], None).await;
    let took = revoke_and_time(&door, &id, &secret, &[server.url()]).await;
    assert!(took < Duration::from_secs(1), "revocation took {took:?}");
    // Listing shows it as revoked only when asked.
    let listed: Value = door
        .admin
        .get(format!(
            "{}/api/v0/tokens?includeRevoked=true",
            server.url()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let revoked = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id.as_str())
        .expect("a revoked token is listed with includeRevoked");
    assert!(revoked["revokedAt"].is_string(), "{revoked}");
    assert!(
        revoked.get("accessToken").is_none(),
        "a listing never shows a secret"
    );
    assert_no_secret_in(&[server.log()], &door.secrets);
}

#[tokio::test]
async fn without_auth_serve_accepts_everyone_and_says_so() {
    let server = FerriteServer::start(binary(), &["--without-auth"])
        .await
        .unwrap();
    assert_eq!(write(&server.url(), None, "open").await.0, 204);
    assert_eq!(query(&server.url(), None, "open").await.0, 200);
    assert!(
        server.log().contains("authentication is OFF"),
        "{}",
        server.log()
    );
    assert!(!server.data_dir().join("admin-token").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cluster_enforces_tokens_everywhere_and_revocation_spreads_within_a_second() {
    let c = TestCluster::start(
        binary(),
        ClusterOptions {
            routers: 2,
            ..ClusterOptions::default()
        },
    )
    .await
    .unwrap();
    let mut door = Door::new(c.routers[0].url(), &c.admin_token);
    // Writes through router 0, reads through router 1: a token created through one router
    // works at once through the other.
    permission_matrix(&mut door, &c.routers[1].url()).await;

    let (id, secret) = door.create_token(&[("read", "authdb")], None).await;
    let urls = [c.routers[1].url(), c.queriers[0].url()];
    let took = revoke_and_time(&door, &id, &secret, &urls).await;
    assert!(
        took < Duration::from_secs(1),
        "revocation reached the second router and the querier after {took:?}"
    );

    // Outsiders who reach the internal ports get nowhere.
    let ingester = Endpoint::from_shared(c.ingesters[0].url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let err = ingester_proto::write_service_client::WriteServiceClient::new(ingester)
        .write(ingester_proto::WriteRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated, "{err:?}");
    let catalog = Endpoint::from_shared(c.catalog.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut catalog = catalog_proto::catalog_service_client::CatalogServiceClient::new(catalog);
    let err = catalog
        .list_tokens(catalog_proto::ListTokensRequest {})
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated, "{err:?}");
    let mut request = tonic::Request::new(catalog_proto::ListTokensRequest {});
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", door.secrets[4]).parse().unwrap(),
    );
    let err = catalog.list_tokens(request).await.unwrap_err();
    assert_eq!(
        err.code(),
        tonic::Code::Unauthenticated,
        "a database token is no internal token: {err:?}"
    );

    let logs: Vec<String> = c
        .routers
        .iter()
        .chain(&c.queriers)
        .chain(&c.ingesters)
        .chain([&c.catalog])
        .map(FerriteServer::log)
        .collect();
    assert_no_secret_in(&logs, &door.secrets);
}

/// RFC 3339 for now + `d`.
fn chrono_in(d: Duration) -> String {
    (chrono::Utc::now() + d).to_rfc3339()
}

fn base64_of(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}
