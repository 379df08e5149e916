//! `ferrite-test-kube [--with-backing]`: a real Kubernetes control plane (etcd,
//! kube-apiserver, kube-controller-manager; see `ferrite_testkit::kube`) for test suites
//! outside Rust.
//!
//! Prints one JSON line `{"url": "https://127.0.0.1:PORT", "kubeconfig": PATH, "ca": PATH,
//! "token": ADMIN_TOKEN, "service_cidr": CIDR}` when it is ready (the kubeconfig and token
//! are an admin's, the CA the apiserver's, PEM), then runs until its standard input closes
//! (the parent exiting counts), SIGTERM or SIGINT, and stops every process before it exits.
//!
//! `--with-backing` also starts what a ferrite release uses from outside the cluster: a
//! PostgreSQL (`"postgres": {"dsn", "port"}`, the DSN of an empty database `ferrite`) and a
//! MinIO (`"s3": {"endpoint", "port", "bucket", "access_key", "secret_key", "region"}`), both
//! on 127.0.0.1.

use std::io::Read;

use anyhow::{Context, bail};
use ferrite_testkit::kube::{ControlPlane, SERVICE_CLUSTER_IP_RANGE};
use ferrite_testkit::postgres::TestPostgres;
use ferrite_testkit::s3::TestS3;
use tokio::signal::unix::{SignalKind, signal};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut with_backing = false;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--with-backing" => with_backing = true,
            other => bail!("unknown argument {other}; usage: ferrite-test-kube [--with-backing]"),
        }
    }
    // Handlers first: a SIGTERM during the start still stops what was started.
    let mut terminate = signal(SignalKind::terminate()).context("handling SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("handling SIGINT")?;
    let plane = tokio::select! {
        plane = ControlPlane::start_with_controllers() => plane?,
        _ = terminate.recv() => return Ok(()),
        _ = interrupt.recv() => return Ok(()),
    };
    let mut ready = serde_json::json!({
        "url": plane.url(),
        "kubeconfig": plane.admin_kubeconfig(),
        "ca": plane.ca_file(),
        "token": plane.admin_token(),
        "service_cidr": SERVICE_CLUSTER_IP_RANGE,
    });
    // Kept alive until the end of main: dropping them stops the servers.
    let mut backing = None;
    if with_backing {
        let postgres = tokio::task::spawn_blocking(TestPostgres::start).await??;
        let dsn = postgres.create_database("ferrite")?;
        let s3 = TestS3::start().await?;
        ready["postgres"] = serde_json::json!({ "dsn": dsn, "port": postgres.port() });
        ready["s3"] = serde_json::json!({
            "endpoint": s3.endpoint(),
            "port": s3.port(),
            "bucket": s3.bucket(),
            "access_key": s3.access_key(),
            "secret_key": s3.secret_key(),
            "region": s3.region(),
        });
        backing = Some((postgres, s3));
    }
    println!("{ready}");
    // Until the parent closes our stdin (or dies): blocking read on a plain thread.
    let stdin_closed = tokio::task::spawn_blocking(|| {
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
    });
    tokio::select! {
        _ = stdin_closed => {}
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
    drop(backing);
    drop(plane);
    // The stdin thread may still be blocked in read: exit without waiting for it.
    std::process::exit(0);
}
