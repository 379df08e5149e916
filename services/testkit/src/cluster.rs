//! A whole ferrite cluster of real processes for end-to-end tests: a throwaway PostgreSQL,
//! a MinIO, one catalog service, ingesters, queriers, routers and compactors, each a
//! `ferrite run <service>` process on its own loopback port.
//!
//! ```text
//!  routers ──► ingesters (WAL in <tmp>/ingester-N) ──► MinIO bucket
//!     │  └──► queriers ──► ingesters, MinIO                ▲
//!     └──────► catalog ──► PostgreSQL                       │
//!  compactors (one active) ──► catalog ─────────────────────┘
//! ```

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::postgres::TestPostgres;
use crate::s3::TestS3;
use crate::server::{FerriteServer, free_port};

/// Shape of a test cluster.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Ingester processes.
    pub ingesters: usize,
    /// Router processes.
    pub routers: usize,
    /// Querier processes; every router proxies to all of them.
    pub queriers: usize,
    /// Copies of each write.
    pub replication: usize,
    /// Ingesters persist partitions older than this.
    pub persist_age_seconds: u64,
    /// The admin token every service trusts; a new random one when `None`.
    pub admin_token: Option<String>,
    /// Serve TLS on every port with these, and trust their CA between services.
    pub tls: Option<crate::tls::TestCerts>,
    /// More flags for every ingester (e.g. `--drain-timeout-seconds 3`).
    pub ingester_args: Vec<String>,
    /// Compactor processes (more can be added with [`TestCluster::add_compactor`]).
    pub compactors: usize,
    /// More flags for every compactor.
    pub compactor_args: Vec<String>,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        Self {
            ingesters: 2,
            routers: 1,
            queriers: 1,
            replication: 1,
            persist_age_seconds: 300,
            admin_token: None,
            tls: None,
            ingester_args: Vec::new(),
            compactors: 0,
            compactor_args: Vec::new(),
        }
    }
}

/// A running cluster. Dropping it stops every process.
#[derive(Debug)]
pub struct TestCluster {
    /// The catalog's database server.
    pub postgres: TestPostgres,
    /// The object store server.
    pub s3: TestS3,
    /// Bucket holding this cluster's Parquet files.
    pub bucket: String,
    /// DSN of the catalog database.
    pub catalog_dsn: String,
    /// `ferrite run catalog`.
    pub catalog: FerriteServer,
    /// `ferrite run ingester` ×N.
    pub ingesters: Vec<FerriteServer>,
    /// `ferrite run querier` ×N.
    pub queriers: Vec<FerriteServer>,
    /// `ferrite run router` ×N.
    pub routers: Vec<FerriteServer>,
    /// `ferrite run compactor` ×N.
    pub compactors: Vec<FerriteServer>,
    /// The admin token (also how the services authenticate to each other).
    pub admin_token: String,
    binary: PathBuf,
    /// What every compactor is started with: catalog, object store, token, TLS.
    compactor_args: Vec<String>,
    _dir: tempfile::TempDir,
}

impl TestCluster {
    /// Start PostgreSQL, MinIO and every service.
    pub async fn start(binary: &Path, opts: ClusterOptions) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let postgres = tokio::task::spawn_blocking(TestPostgres::start).await??;
        let catalog_dsn = postgres.dsn();
        let s3 = TestS3::start().await?;
        let bucket = s3.bucket().to_string();

        let admin_token = opts
            .admin_token
            .clone()
            .unwrap_or_else(ferrite_auth::generate_token);
        let token_file = dir.path().join("admin-token");
        std::fs::write(&token_file, format!("{admin_token}\n"))?;
        // Every service trusts the same admin token, as a Kubernetes Secret would give it.
        let mut auth = vec![
            "--admin-token-file".to_string(),
            token_file.display().to_string(),
        ];
        if let Some(certs) = &opts.tls {
            auth.extend(certs.ferrite_args());
        }
        let scheme = if opts.tls.is_some() { "https" } else { "http" };

        let catalog_port = free_port()?;
        let catalog_url = format!("{scheme}://127.0.0.1:{catalog_port}");
        let catalog = FerriteServer::run_service(
            binary,
            "catalog",
            catalog_port,
            &dir.path().join("catalog"),
            &[
                vec!["--catalog-dsn".to_string(), catalog_dsn.clone()],
                auth.clone(),
            ]
            .concat(),
        )
        .await
        .context("starting the catalog service")?;

        let mut ingesters = Vec::new();
        for i in 0..opts.ingesters {
            let port = free_port()?;
            let wal: PathBuf = dir.path().join(format!("ingester-{i}"));
            let mut args = vec![
                "--catalog".to_string(),
                catalog_url.clone(),
                "--wal-dir".to_string(),
                wal.join("wal").display().to_string(),
                "--persist-age-seconds".to_string(),
                opts.persist_age_seconds.to_string(),
            ];
            args.extend(auth.iter().cloned());
            args.extend(s3.ferrite_args(&bucket));
            args.extend(opts.ingester_args.iter().cloned());
            ingesters.push(
                FerriteServer::run_service(binary, "ingester", port, &wal, &args)
                    .await
                    .with_context(|| format!("starting ingester {i}"))?,
            );
        }
        let ingester_list = ingesters
            .iter()
            .map(FerriteServer::url)
            .collect::<Vec<_>>()
            .join(",");

        // Every querier knows every querier (itself included), for system.queries: their
        // ports are chosen before the first starts.
        let querier_ports = (0..opts.queriers.max(1))
            .map(|_| free_port())
            .collect::<Result<Vec<_>, _>>()?;
        let querier_peers = querier_ports
            .iter()
            .map(|port| format!("{scheme}://127.0.0.1:{port}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut queriers = Vec::new();
        for (i, port) in querier_ports.into_iter().enumerate() {
            let mut args = vec![
                "--catalog".to_string(),
                catalog_url.clone(),
                "--ingesters".to_string(),
                ingester_list.clone(),
                "--queriers".to_string(),
                querier_peers.clone(),
            ];
            args.extend(auth.iter().cloned());
            args.extend(s3.ferrite_args(&bucket));
            queriers.push(
                FerriteServer::run_service(
                    binary,
                    "querier",
                    port,
                    &dir.path().join(format!("querier-{i}")),
                    &args,
                )
                .await
                .with_context(|| format!("starting querier {i}"))?,
            );
        }
        let querier_list = queriers
            .iter()
            .map(FerriteServer::url)
            .collect::<Vec<_>>()
            .join(",");

        let mut routers = Vec::new();
        for i in 0..opts.routers {
            let port = free_port()?;
            let mut args = vec![
                "--catalog".to_string(),
                catalog_url.clone(),
                "--ingesters".to_string(),
                ingester_list.clone(),
                "--queriers".to_string(),
                querier_list.clone(),
                "--replication".to_string(),
                opts.replication.to_string(),
            ];
            args.extend(auth.iter().cloned());
            routers.push(
                FerriteServer::run_service(
                    binary,
                    "router",
                    port,
                    &dir.path().join(format!("router-{i}")),
                    &args,
                )
                .await
                .with_context(|| format!("starting router {i}"))?,
            );
        }
        let mut compactor_args = vec!["--catalog".to_string(), catalog_url.clone()];
        compactor_args.extend(auth.iter().cloned());
        compactor_args.extend(s3.ferrite_args(&bucket));
        compactor_args.extend(opts.compactor_args.iter().cloned());
        let mut cluster = Self {
            postgres,
            s3,
            bucket,
            catalog_dsn,
            catalog,
            ingesters,
            queriers,
            routers,
            compactors: Vec::new(),
            admin_token,
            binary: binary.to_path_buf(),
            compactor_args,
            _dir: dir,
        };
        for _ in 0..opts.compactors {
            cluster.add_compactor(&[]).await?;
        }
        Ok(cluster)
    }

    /// Start one more compactor with the cluster's settings and `extra` flags; returns its
    /// index in [`Self::compactors`].
    pub async fn add_compactor(&mut self, extra: &[String]) -> anyhow::Result<usize> {
        let i = self.compactors.len();
        let args = [self.compactor_args.clone(), extra.to_vec()].concat();
        // Debug lines of the compactor say which step of a round it is in.
        let compactor = FerriteServer::run_service_env(
            &self.binary,
            "compactor",
            free_port()?,
            &self._dir.path().join(format!("compactor-{i}")),
            &args,
            &[("FERRITE_LOG", "info,ferrite_compactor=debug")],
        )
        .await
        .with_context(|| format!("starting compactor {i}"))?;
        self.compactors.push(compactor);
        Ok(i)
    }

    /// An HTTP client that sends the admin token on every request (and trusts the test CA).
    pub fn client(&self) -> reqwest::Client {
        self.routers[0].client()
    }

    /// The front door: router 0.
    pub fn url(&self) -> String {
        self.routers[0].url()
    }
}
