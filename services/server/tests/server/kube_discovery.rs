//! Discovery through the Kubernetes API, on a real kube-apiserver: a real router and querier,
//! run as local processes with the ServiceAccount tokens the chart's own RBAC grants (not an
//! admin token), follow the EndpointSlices of the ingester and querier Services as they are
//! created, changed (ready → not ready) and removed, each change within 2 s. Routers follow
//! the ready endpoints; queriers every endpoint (a not-ready ingester may be draining).
//!
//! The endpoint addresses are never dialled: the router and querier connect to peers lazily
//! and no write or query is sent, so no traffic leaves loopback.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ferrite_testkit::kube::ControlPlane;
use ferrite_testkit::server::{FerriteServer, free_port};
use serde_json::json;

use super::{ADMIN_TOKEN, binary};

const NAMESPACE: &str = "ferrite";
/// The Helm release name the chart's objects are rendered with.
const RELEASE: &str = "t";

/// The chart's ServiceAccounts, Roles and RoleBindings, rendered by the real helm.
fn chart_rbac() -> String {
    let helm = ferrite_testkit::tools_bin_dir().unwrap().join("helm");
    let chart = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../helm/ferrite");
    let out = std::process::Command::new(&helm)
        .args(["template", RELEASE])
        .arg(&chart)
        .args([
            "--namespace",
            NAMESPACE,
            "--show-only",
            "templates/serviceaccounts.yaml",
            "--show-only",
            "templates/rbac.yaml",
        ])
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "running {} (deploy/dev/install-helm.sh): {e}",
                helm.display()
            )
        });
    assert!(
        out.status.success(),
        "helm template: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// An EndpointSlice of Service `service` with `(address, ready)` endpoints.
fn slice(name: &str, service: &str, endpoints: &[(&str, bool)]) -> String {
    json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "labels": {"kubernetes.io/service-name": service},
        },
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8181, "protocol": "TCP"}],
        "endpoints": endpoints
            .iter()
            .map(|(ip, ready)| json!({"addresses": [ip], "conditions": {"ready": ready}}))
            .collect::<Vec<_>>(),
    })
    .to_string()
}

/// A log line `<what> addrs=[…]` with exactly `urls`, as the processes log each membership.
fn membership(what: &str, urls: &[&str]) -> String {
    format!("{what} addrs={urls:?}")
}

/// Wait until `server`'s log after byte `from` holds `needle`, at most `within` after
/// `start`; how long after `start` it came.
async fn logged(
    server: &FerriteServer,
    from: usize,
    needle: &str,
    start: Instant,
    within: Duration,
) -> Duration {
    loop {
        let log = server.log();
        if log.get(from..).is_some_and(|l| l.contains(needle)) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "'{needle}' not logged within {within:?}; log:\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Apply `change`, then wait for every `(server, needle)` to be logged within 2 s.
async fn expect_within_2s(
    cp: &ControlPlane,
    change: &[&str],
    stdin: Option<&str>,
    expect: &[(&FerriteServer, String)],
) {
    let marks: Vec<usize> = expect.iter().map(|(s, _)| s.log().len()).collect();
    let start = Instant::now();
    let changed = tokio::task::block_in_place(|| match stdin {
        Some(input) => cp.kubectl_stdin(change, input),
        None => cp.kubectl(change),
    });
    changed.unwrap();
    for ((server, needle), from) in expect.iter().zip(marks) {
        let took = logged(server, from, needle, start, Duration::from_secs(2)).await;
        eprintln!("'{needle}' {took:?} after kubectl started");
    }
}

async fn start(
    service: &str,
    dir: &Path,
    kubeconfig: &Path,
    peers: &[(&str, String)],
) -> FerriteServer {
    let mut args = vec![
        "--catalog".to_string(),
        // Never reached: the processes need no catalog to follow their peers.
        format!("http://127.0.0.1:{}", free_port().unwrap()),
        "--admin-token".into(),
        ADMIN_TOKEN.into(),
    ];
    for (flag, value) in peers {
        args.push(flag.to_string());
        args.push(value.clone());
    }
    if service == "querier" {
        args.extend(["--object-store".into(), "memory".into()]);
    }
    FerriteServer::run_service_env(
        binary(),
        service,
        free_port().unwrap(),
        &dir.join(service),
        &args,
        &[("KUBECONFIG", &kubeconfig.display().to_string())],
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn routers_and_queriers_follow_endpoint_slices_within_two_seconds() {
    let cp = ControlPlane::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (router_config, querier_config): (PathBuf, PathBuf) = tokio::task::block_in_place(|| {
        cp.kubectl(&["create", "namespace", NAMESPACE]).unwrap();
        cp.kubectl_stdin(&["apply", "-f", "-"], &chart_rbac())
            .unwrap();
        (
            cp.service_account_kubeconfig(NAMESPACE, &format!("{RELEASE}-ferrite-router"))
                .unwrap(),
            cp.service_account_kubeconfig(NAMESPACE, &format!("{RELEASE}-ferrite-querier"))
                .unwrap(),
        )
    });
    // The chart's accounts may read EndpointSlices and nothing else. `kubectl auth can-i`
    // answers "no" with exit status 1.
    tokio::task::block_in_place(|| {
        let can = |verb: &str, what: &str| match cp.kubectl_as(
            &router_config,
            &["auth", "can-i", verb, what, "-n", NAMESPACE],
        ) {
            Ok(out) => out.trim() == "yes",
            Err(e) if e.to_string().contains("exit status: 1") => false,
            Err(e) => panic!("kubectl auth can-i: {e}"),
        };
        assert!(can("watch", "endpointslices.discovery.k8s.io"));
        assert!(!can("list", "secrets"));
        assert!(!can("list", "pods"));
    });

    let ingesters = format!("k8s+http://{RELEASE}-ferrite-ingester:8181");
    let queriers = format!("k8s+http://{RELEASE}-ferrite-querier:8181");
    let router = start(
        "router",
        dir.path(),
        &router_config,
        &[("--ingesters", ingesters.clone()), ("--queriers", queriers)],
    )
    .await;
    let querier = start(
        "querier",
        dir.path(),
        &querier_config,
        &[("--ingesters", ingesters)],
    )
    .await;

    let ingester_service = format!("{RELEASE}-ferrite-ingester");
    let (a, b) = ("http://10.244.0.10:8181", "http://10.244.0.11:8181");
    // Created: two ready ingesters.
    expect_within_2s(
        &cp,
        &["apply", "-f", "-"],
        Some(&slice(
            "ingester-1",
            &ingester_service,
            &[("10.244.0.10", true), ("10.244.0.11", true)],
        )),
        &[
            (&router, membership("ingesters", &[a, b])),
            (&querier, membership("ingesters", &[a, b])),
        ],
    )
    .await;
    // Changed: one turns not ready (a pod draining). Routers stop writing to it; queriers
    // keep asking it for the rows it has not persisted yet.
    expect_within_2s(
        &cp,
        &["apply", "-f", "-"],
        Some(&slice(
            "ingester-1",
            &ingester_service,
            &[("10.244.0.10", true), ("10.244.0.11", false)],
        )),
        &[(&router, membership("ingesters", &[a]))],
    )
    .await;
    // A second slice of the same Service adds to the first.
    let c = "http://10.244.0.12:8181";
    expect_within_2s(
        &cp,
        &["apply", "-f", "-"],
        Some(&slice(
            "ingester-2",
            &ingester_service,
            &[("10.244.0.12", true)],
        )),
        &[
            (&router, membership("ingesters", &[a, c])),
            (&querier, membership("ingesters", &[a, b, c])),
        ],
    )
    .await;
    // Removed.
    expect_within_2s(
        &cp,
        &[
            "delete",
            "endpointslices",
            "ingester-1",
            "ingester-2",
            "-n",
            NAMESPACE,
        ],
        None,
        &[
            (&router, membership("ingesters", &[])),
            (&querier, membership("ingesters", &[])),
        ],
    )
    .await;
    // The router follows the queriers' Service the same way; other Services do not count.
    expect_within_2s(
        &cp,
        &["apply", "-f", "-"],
        Some(&format!(
            "{}\n---\n{}",
            slice(
                "querier-1",
                &format!("{RELEASE}-ferrite-querier"),
                &[("10.244.1.5", true)]
            ),
            slice("other-1", "other", &[("10.244.9.9", true)])
        )),
        &[(&router, membership("queriers", &["http://10.244.1.5:8181"]))],
    )
    .await;
    assert!(
        !router.log().contains("10.244.9.9"),
        "another Service's endpoints"
    );
}
