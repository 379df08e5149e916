//! `ferrite-test-cluster --ferrite PATH [--ingesters N] [--admin-token T]`: a throwaway cluster (PostgreSQL,
//! MinIO, catalog, ingesters, querier, router) for test suites outside Rust — the Python
//! client tests start one next to `ferrite serve` to run the same checks through the router.
//!
//! Prints one JSON line `{"url": "http://127.0.0.1:PORT", "logs": [...]}` when the cluster is
//! ready, then runs until its standard input closes (the parent exiting counts), and stops
//! every process before it exits.

use std::io::Read;
use std::path::PathBuf;

use anyhow::{Context, bail};
use ferrite_testkit::cluster::{ClusterOptions, TestCluster};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut ferrite = std::env::var_os("FERRITE_BIN").map(PathBuf::from);
    let mut options = ClusterOptions::default();
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--ferrite" => ferrite = Some(PathBuf::from(value)),
            "--ingesters" => options.ingesters = value.parse().context("--ingesters")?,
            "--admin-token" => options.admin_token = Some(value),
            other => bail!("unknown flag {other}"),
        }
    }
    let Some(ferrite) = ferrite else {
        bail!(
            "usage: ferrite-test-cluster --ferrite PATH [--ingesters N] [--admin-token T] \
             (or FERRITE_BIN)"
        );
    };
    let cluster = TestCluster::start(&ferrite, options).await?;
    let logs: Vec<String> = cluster
        .routers
        .iter()
        .chain(&cluster.ingesters)
        .chain(&cluster.queriers)
        .chain([&cluster.catalog])
        .map(|s| s.data_dir().join("server.log").display().to_string())
        .collect();
    println!(
        "{}",
        serde_json::json!({ "url": cluster.url(), "logs": logs })
    );
    // Until the parent closes our stdin (or dies): blocking read on a plain thread.
    tokio::task::spawn_blocking(|| {
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
    })
    .await?;
    drop(cluster);
    Ok(())
}
