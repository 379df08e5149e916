//! TLS on every listener: `ferrite serve` and a cluster whose services all serve TLS and
//! reach each other over it, HTTP and gRPC on one port; plaintext to a TLS port is told so.

use arrow_flight::sql::client::FlightSqlServiceClient;
use ferrite_testkit::cluster::{ClusterOptions, TestCluster};
use ferrite_testkit::server::FerriteServer;
use ferrite_testkit::tls::TestCerts;
use futures::TryStreamExt;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};

use super::binary;

/// Write one row over HTTPS and read it back over HTTPS and Flight SQL over TLS.
async fn round_trip(url: &str, http: &reqwest::Client, token: &str, certs: &TestCerts) {
    assert!(url.starts_with("https://"), "{url}");
    let r = http
        .post(format!("{url}/api/v3/write_lp?db=tls&precision=second"))
        .body("cpu,host=a usage=1 1\n")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204, "{}", r.text().await.unwrap());
    let r = http
        .get(format!("{url}/api/v3/query_sql"))
        .query(&[("db", "tls"), ("q", "SELECT count(*) AS n FROM cpu")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), r#"[{"n":1}]"#);

    let ca = Certificate::from_pem(std::fs::read(&certs.ca).unwrap());
    let channel = Endpoint::from_shared(url.to_string())
        .unwrap()
        .tls_config(ClientTlsConfig::new().ca_certificate(ca))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = FlightSqlServiceClient::new(channel);
    client.set_token(token.to_string());
    client.set_header("database", "tls");
    let info = client
        .execute("SELECT count(*) AS n FROM cpu".into(), None)
        .await
        .unwrap();
    let batches: Vec<_> = client
        .do_get(info.endpoint[0].ticket.clone().unwrap())
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 1);
}

#[tokio::test]
async fn serve_speaks_https_and_grpc_over_tls_on_one_port() {
    let dir = tempfile::tempdir().unwrap();
    let certs = TestCerts::generate(dir.path()).unwrap();
    let args = certs.ferrite_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = FerriteServer::start(binary(), &args).await.unwrap();
    let token = server.admin_token().unwrap().to_string();
    round_trip(&server.url(), &server.client(), &token, &certs).await;

    // Plaintext HTTP to the TLS port is answered, clearly.
    let plain = server.url().replace("https://", "http://");
    let r = reqwest::Client::new()
        .get(format!("{plain}/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("this port serves TLS: use https://"),
        "a plaintext request is told to use TLS"
    );
    // A client that does not trust the CA refuses the server.
    let err = reqwest::Client::new()
        .get(format!("{}/health", server.url()))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_connect(), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cluster_serves_and_talks_tls_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let certs = TestCerts::generate(dir.path()).unwrap();
    let c = TestCluster::start(
        binary(),
        ClusterOptions {
            tls: Some(certs.clone()),
            ..crate::cluster_options()
        },
    )
    .await
    .unwrap();
    for s in c.ingesters.iter().chain(&c.queriers).chain([&c.catalog]) {
        assert!(s.url().starts_with("https://"), "{}", s.url());
    }
    // Through the router: writes go to the ingesters and the query to the querier (which
    // reads the ingesters and the catalog), all over TLS.
    round_trip(&c.url(), &c.client(), &c.admin_token, &certs).await;
    // The management API, forwarded to the catalog service over TLS.
    let r = c
        .client()
        .get(format!("{}/api/v0/databases", c.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("\"tls\""));
}
