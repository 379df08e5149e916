//! `ferrite-test-kube`: a real Kubernetes control plane (etcd, kube-apiserver,
//! kube-controller-manager; see `ferrite_testkit::kube`) for test suites outside Rust.
//!
//! Prints one JSON line `{"url": "https://127.0.0.1:PORT", "kubeconfig": PATH, "ca": PATH}`
//! when it is ready (the kubeconfig is an admin's, the CA the apiserver's, PEM), then runs
//! until its standard input closes (the parent exiting counts), SIGTERM or SIGINT, and stops
//! every process before it exits.

use std::io::Read;

use anyhow::{Context, bail};
use ferrite_testkit::kube::ControlPlane;
use tokio::signal::unix::{SignalKind, signal};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if let Some(arg) = std::env::args().nth(1) {
        bail!("unknown argument {arg}; usage: ferrite-test-kube (no arguments)");
    }
    // Handlers first: a SIGTERM during the start still stops what was started.
    let mut terminate = signal(SignalKind::terminate()).context("handling SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("handling SIGINT")?;
    let plane = tokio::select! {
        plane = ControlPlane::start_with_controllers() => plane?,
        _ = terminate.recv() => return Ok(()),
        _ = interrupt.recv() => return Ok(()),
    };
    println!(
        "{}",
        serde_json::json!({
            "url": plane.url(),
            "kubeconfig": plane.admin_kubeconfig(),
            "ca": plane.ca_file(),
        })
    );
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
    drop(plane);
    // The stdin thread may still be blocked in read: exit without waiting for it.
    std::process::exit(0);
}
