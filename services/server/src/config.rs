//! Command-line and environment configuration. Every flag has a `FERRITE_*` environment
//! equivalent, so containers are configured with env vars.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, ValueEnum};
use object_store::ObjectStore;

/// Where Parquet files are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ObjectStoreKind {
    /// In memory: lost at exit (tests, experiments).
    Memory,
    /// A local directory (`<data-dir>/objects` unless `--object-store-dir` is given).
    File,
    /// An S3-compatible service (AWS S3, MinIO, …).
    S3,
}

/// Object store settings.
#[derive(Debug, Clone, Args)]
pub struct ObjectStoreConfig {
    /// Object store kind.
    #[arg(long, env = "FERRITE_OBJECT_STORE", value_enum, default_value = "file")]
    pub object_store: ObjectStoreKind,
    /// Directory of the `file` object store.
    #[arg(long, env = "FERRITE_OBJECT_STORE_DIR")]
    pub object_store_dir: Option<PathBuf>,
    /// S3 bucket.
    #[arg(long, env = "FERRITE_BUCKET")]
    pub bucket: Option<String>,
    /// S3 endpoint URL, for S3-compatible servers such as MinIO (`http://127.0.0.1:9000`).
    #[arg(long, env = "FERRITE_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    /// S3 region.
    #[arg(long, env = "FERRITE_S3_REGION", default_value = "us-east-1")]
    pub s3_region: String,
    /// S3 access key id.
    #[arg(long, env = "FERRITE_S3_ACCESS_KEY_ID")]
    pub s3_access_key_id: Option<String>,
    /// S3 secret access key.
    #[arg(long, env = "FERRITE_S3_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub s3_secret_access_key: Option<String>,
    /// Allow plain-HTTP endpoints (MinIO on a private network).
    #[arg(long, env = "FERRITE_S3_ALLOW_HTTP", default_value_t = false)]
    pub s3_allow_http: bool,
}

impl ObjectStoreConfig {
    /// Build the store. `default_dir` is used by `file` when no directory is configured.
    pub fn build(&self, default_dir: PathBuf) -> anyhow::Result<Arc<dyn ObjectStore>> {
        Ok(ferrite_telemetry::store::ObservedStore::wrap(
            self.build_plain(default_dir)?,
        ))
    }

    fn build_plain(&self, default_dir: PathBuf) -> anyhow::Result<Arc<dyn ObjectStore>> {
        Ok(match self.object_store {
            ObjectStoreKind::Memory => Arc::new(object_store::memory::InMemory::new()),
            ObjectStoreKind::File => {
                let dir = self.object_store_dir.clone().unwrap_or(default_dir);
                std::fs::create_dir_all(&dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
                Arc::new(
                    object_store::local::LocalFileSystem::new_with_prefix(&dir)
                        .with_context(|| format!("object store directory {}", dir.display()))?,
                )
            }
            ObjectStoreKind::S3 => {
                let bucket = self
                    .bucket
                    .as_deref()
                    .context("--object-store s3 needs --bucket (FERRITE_BUCKET)")?;
                let mut b = object_store::aws::AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .with_region(&self.s3_region)
                    .with_allow_http(self.s3_allow_http);
                if let Some(e) = &self.s3_endpoint {
                    b = b.with_endpoint(e);
                }
                if let Some(k) = &self.s3_access_key_id {
                    b = b.with_access_key_id(k);
                }
                if let Some(s) = &self.s3_secret_access_key {
                    b = b.with_secret_access_key(s);
                }
                Arc::new(b.build().context("configuring the S3 object store")?)
            }
        })
    }
}

/// TLS: what a process serves with, and the CA its own connections trust.
#[derive(Debug, Clone, Args)]
pub struct TlsArgs {
    /// Serve HTTP and gRPC over TLS with this certificate chain (PEM), on the same port.
    #[arg(long, env = "FERRITE_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, env = "FERRITE_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// A CA (PEM) trusted, besides the system's, when this process connects to `https://`
    /// peers (the catalog, ingesters, queriers).
    #[arg(long, env = "FERRITE_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
}

impl TlsArgs {
    /// The files, for [`crate::tls`].
    pub fn files(&self) -> crate::tls::TlsFiles {
        crate::tls::TlsFiles {
            cert: self.tls_cert.clone(),
            key: self.tls_key.clone(),
            ca: self.tls_ca.clone(),
        }
    }

    /// The CA file's contents, if one is given.
    pub fn ca_pem(&self) -> anyhow::Result<Option<Vec<u8>>> {
        self.tls_ca
            .as_ref()
            .map(|ca| {
                std::fs::read(ca).with_context(|| format!("reading the TLS CA {}", ca.display()))
            })
            .transpose()
    }
}

/// How a process checks tokens, and the admin token it trusts.
#[derive(Debug, Clone, Args)]
pub struct AuthArgs {
    /// Accept every request without a token: anyone who reaches the port may write, query and
    /// manage. For local experiments only; the log says so at every start.
    #[arg(long, env = "FERRITE_WITHOUT_AUTH", default_value_t = false)]
    pub without_auth: bool,
    /// File holding the admin token, which may do everything and which the cluster's
    /// services also use to authenticate to each other (mount a Kubernetes Secret here).
    /// `ferrite serve` defaults to `<data-dir>/admin-token`, created on the first start.
    #[arg(long, env = "FERRITE_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// The admin token itself, when no file is given. Prefer the variable to the flag: a
    /// flag is visible in process listings.
    #[arg(long, env = "FERRITE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
}

impl AuthArgs {
    /// The admin token of a cluster service; `None` with `--without-auth`.
    pub fn cluster_token(&self) -> anyhow::Result<Option<String>> {
        if self.without_auth {
            tracing::warn!(
                "authentication is OFF (--without-auth): anyone who reaches this port may \
                 write, query and manage"
            );
            return Ok(None);
        }
        if let Some(token) = &self.admin_token {
            return ferrite_auth::admin::checked(token.trim(), "FERRITE_ADMIN_TOKEN").map(Some);
        }
        match &self.admin_token_file {
            Some(path) => ferrite_auth::admin::read_token_file(path).map(Some),
            None => anyhow::bail!(
                "no admin token: set FERRITE_ADMIN_TOKEN_FILE (--admin-token-file) or \
                 FERRITE_ADMIN_TOKEN, the same for every service of the cluster, or pass \
                 --without-auth to turn checking off"
            ),
        }
    }

    /// The admin token of `ferrite serve`: the configured one, else `<data-dir>/admin-token`,
    /// created (and printed, this once) on the first start. `None` with `--without-auth`.
    pub fn serve_token(&self, data_dir: &std::path::Path) -> anyhow::Result<Option<String>> {
        if self.without_auth || self.admin_token.is_some() || self.admin_token_file.is_some() {
            return self.cluster_token();
        }
        let path = data_dir.join("admin-token");
        let (token, created) = ferrite_auth::admin::load_or_create(&path)?;
        if created {
            // Straight to the terminal, not through the log: shown once, at creation.
            println!(
                "ferrite: created the admin token (saved in {}, mode 0600):\n\n    {token}\n\n\
                 Send it as 'Authorization: Bearer <token>', or create database tokens with it: \
                 POST /api/v0/tokens.",
                path.display()
            );
        }
        tracing::info!(file = %path.display(), "admin token loaded");
        Ok(Some(token))
    }
}

/// Query limits of a querier (`ferrite serve` has one too).
#[derive(Debug, Clone, Args)]
pub struct QueryLimits {
    /// Queries that may run at once; more wait for a slot.
    #[arg(long, env = "FERRITE_MAX_CONCURRENT_QUERIES", default_value_t = 16)]
    pub max_concurrent_queries: usize,
    /// Seconds a query waits for a slot before it is refused (HTTP 503 with Retry-After,
    /// gRPC UNAVAILABLE). 0 refuses at once.
    #[arg(
        long,
        env = "FERRITE_QUERY_QUEUE_TIMEOUT_SECONDS",
        default_value_t = 10
    )]
    pub query_queue_timeout_seconds: u64,
    /// Bytes of memory that running queries' sorts, aggregations, joins and deduplication may
    /// hold together; a query needing more fails (HTTP 422, gRPC RESOURCE_EXHAUSTED).
    #[arg(long, env = "FERRITE_QUERY_MEMORY_BYTES", default_value_t = 4 << 30)]
    pub query_memory_bytes: usize,
    /// Longest a query may run, in seconds (HTTP 504, gRPC DEADLINE_EXCEEDED). 0: no limit.
    #[arg(long, env = "FERRITE_QUERY_TIMEOUT_SECONDS", default_value_t = 600)]
    pub query_timeout_seconds: u64,
    /// Finished queries kept in the query log (`system.queries`), besides the running ones.
    #[arg(
        long,
        env = "FERRITE_QUERY_LOG_SIZE",
        default_value_t = ferrite_querier::DEFAULT_QUERY_LOG_CAPACITY
    )]
    pub query_log_size: usize,
    /// Bytes of Parquet files a querier keeps whole in memory, so later queries do not
    /// fetch them from the object store again (files never change). 0 turns the cache off.
    #[arg(
        long,
        env = "FERRITE_QUERY_FILE_CACHE_BYTES",
        default_value_t = ferrite_querier::DEFAULT_FILE_CACHE_BYTES
    )]
    pub query_file_cache_bytes: usize,
    /// A directory of the querier's own where it also keeps Parquet files, up to
    /// --query-file-cache-disk-bytes, so files outlive the memory cache and a restart
    /// (a local SSD or a Kubernetes emptyDir). Unset: memory only.
    #[arg(long, env = "FERRITE_QUERY_FILE_CACHE_DIR")]
    pub query_file_cache_dir: Option<std::path::PathBuf>,
    /// Bytes of Parquet files kept in --query-file-cache-dir, least recently used out first.
    #[arg(
        long,
        env = "FERRITE_QUERY_FILE_CACHE_DISK_BYTES",
        default_value_t = 10 << 30
    )]
    pub query_file_cache_disk_bytes: u64,
}

/// `ferrite serve`: every service in one process on embedded defaults.
#[derive(Debug, Clone, Args)]
pub struct ServeConfig {
    /// Address for HTTP and gRPC (one port).
    #[arg(long, env = "FERRITE_BIND", default_value = "127.0.0.1:8181")]
    pub bind: SocketAddr,
    /// Directory for the catalog, WAL and (with `--object-store file`) Parquet files.
    /// Default: `~/.ferrite`.
    #[arg(long, env = "FERRITE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Catalog DSN (`sqlite://…` or `postgres://…`). Default: SQLite in the data directory.
    #[arg(long, env = "FERRITE_CATALOG_DSN")]
    pub catalog_dsn: Option<String>,
    #[command(flatten)]
    pub object_store: ObjectStoreConfig,
    /// Largest accepted write body in bytes (before and after gunzip).
    #[arg(long, env = "FERRITE_MAX_REQUEST_BYTES", default_value_t = 10 << 20)]
    pub max_request_bytes: usize,
    /// Persist a partition once it buffers this many bytes.
    #[arg(long, env = "FERRITE_PERSIST_PARTITION_BYTES", default_value_t = 256 << 20)]
    pub persist_partition_bytes: usize,
    /// Persist a partition once its oldest unpersisted write is this many seconds old.
    #[arg(long, env = "FERRITE_PERSIST_AGE_SECONDS", default_value_t = 300)]
    pub persist_age_seconds: u64,
    /// Persist the largest partitions while the buffer exceeds this many bytes.
    #[arg(long, env = "FERRITE_BUFFER_BYTES", default_value_t = 1 << 30)]
    pub buffer_bytes: usize,
    /// Refuse writes with 503 while the buffer exceeds this many bytes.
    #[arg(long, env = "FERRITE_MAX_BUFFER_BYTES", default_value_t = 4 << 30)]
    pub max_buffer_bytes: usize,
    /// How long a clean shutdown waits for open connections before persisting.
    #[arg(long, env = "FERRITE_SHUTDOWN_GRACE_SECONDS", default_value_t = 10)]
    pub shutdown_grace_seconds: u64,
    /// At shutdown, wait at most this many seconds for everything to persist; what is left
    /// stays in the WAL and is replayed at the next start. 0: wait as long as it takes.
    #[arg(long, env = "FERRITE_DRAIN_TIMEOUT_SECONDS", default_value_t = 60)]
    pub drain_timeout_seconds: u64,
    #[command(flatten)]
    pub query_limits: QueryLimits,
    #[command(flatten)]
    pub compaction: CompactionArgs,
    #[command(flatten)]
    pub auth: AuthArgs,
    #[command(flatten)]
    pub tls: TlsArgs,
}

/// How the compactor merges files, enforces retention and collects garbage. Durations in
/// seconds; fractions are allowed.
#[derive(Debug, Clone, Args)]
pub struct CompactionArgs {
    /// Pause between compaction cycles.
    #[arg(
        long,
        env = "FERRITE_COMPACTION_INTERVAL_SECONDS",
        default_value_t = 10.0
    )]
    pub compaction_interval_seconds: f64,
    /// Compacted files are split to about this size.
    #[arg(long, env = "FERRITE_COMPACTION_TARGET_FILE_BYTES", default_value_t = 100 << 20)]
    pub compaction_target_file_bytes: u64,
    /// Memory one merge may use (estimated before it starts, enforced while it runs); a
    /// partition that cannot fit is skipped with its reason.
    #[arg(long, env = "FERRITE_COMPACTION_MEMORY_BYTES", default_value_t = 1 << 30)]
    pub compaction_memory_bytes: u64,
    /// Compact a partition's newly persisted (level-0) files once it has this many.
    #[arg(
        long,
        env = "FERRITE_COMPACTION_L0_TRIGGER_FILES",
        default_value_t = 10
    )]
    pub compaction_l0_trigger_files: usize,
    /// Merge small compacted files of a partition once this many are adjacent in time.
    #[arg(long, env = "FERRITE_COMPACTION_L1_TRIGGER_FILES", default_value_t = 5)]
    pub compaction_l1_trigger_files: usize,
    /// A partition with no new file for this long is cold: compacted whatever its file
    /// counts.
    #[arg(long, env = "FERRITE_COMPACTION_COLD_SECONDS", default_value_t = 600.0)]
    pub compaction_cold_seconds: f64,
    /// Objects of replaced, expired or purged files, unreferenced objects, and deleted
    /// databases and tables are removed only after this long.
    #[arg(long, env = "FERRITE_GC_GRACE_SECONDS", default_value_t = 21600.0)]
    pub gc_grace_seconds: f64,
    /// How often the object store is listed for objects no file references.
    #[arg(long, env = "FERRITE_GC_ORPHAN_SCAN_SECONDS", default_value_t = 3600.0)]
    pub gc_orphan_scan_seconds: f64,
    /// The compactor lease lasts this long unless renewed: a standby compactor takes over
    /// this long after the active one dies.
    #[arg(long, env = "FERRITE_COMPACTOR_LEASE_SECONDS", default_value_t = 15.0)]
    pub compactor_lease_seconds: f64,
}

impl CompactionArgs {
    /// The compactor's configuration.
    pub fn config(&self) -> anyhow::Result<ferrite_compactor::CompactorConfig> {
        Ok(ferrite_compactor::CompactorConfig {
            interval: positive(
                "--compaction-interval-seconds",
                self.compaction_interval_seconds,
            )?,
            target_file_bytes: self.compaction_target_file_bytes.max(1),
            memory_budget_bytes: self.compaction_memory_bytes,
            l0_trigger_files: self.compaction_l0_trigger_files,
            l1_trigger_files: self.compaction_l1_trigger_files,
            cold_after: seconds("--compaction-cold-seconds", self.compaction_cold_seconds)?,
            gc_grace: seconds("--gc-grace-seconds", self.gc_grace_seconds)?,
            orphan_scan_interval: positive(
                "--gc-orphan-scan-seconds",
                self.gc_orphan_scan_seconds,
            )?,
            lease_ttl: positive("--compactor-lease-seconds", self.compactor_lease_seconds)?,
            ..ferrite_compactor::CompactorConfig::default()
        })
    }
}

/// A duration flag in seconds: zero or more.
fn seconds(flag: &str, value: f64) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(value)
        .with_context(|| format!("{flag} must be a number of seconds ≥ 0, got {value}"))
}

/// A duration flag in seconds: more than zero.
fn positive(flag: &str, value: f64) -> anyhow::Result<Duration> {
    seconds(flag, value)
        .ok()
        .filter(|d| !d.is_zero())
        .with_context(|| format!("{flag} must be a number of seconds > 0, got {value}"))
}

impl ServeConfig {
    /// The data directory, `~/.ferrite` by default.
    pub fn data_dir(&self) -> anyhow::Result<PathBuf> {
        match &self.data_dir {
            Some(d) => Ok(d.clone()),
            None => Ok(dirs::home_dir()
                .context("no home directory: pass --data-dir")?
                .join(".ferrite")),
        }
    }

    /// Persist age as a duration.
    pub fn persist_age(&self) -> Duration {
        Duration::from_secs(self.persist_age_seconds)
    }
}

/// A drain timeout flag: 0 means no limit.
pub fn drain_timeout(seconds: u64) -> Option<Duration> {
    (seconds > 0).then(|| Duration::from_secs(seconds))
}
