//! Throwaway S3-compatible servers for tests: a real MinIO, built by
//! `deploy/dev/install-minio.sh` (which `make test` runs through `deploy/dev/setup.sh`).
//!
//! ```text
//!  TestS3::start()
//!    ├─ temp dir <tmp>/ferrite-s3-XXXX/ : data/  certs/  minio.log  minio.pid
//!    ├─ watchdog: sh reading a pipe from this process ──► on EOF: kill -9 the MinIO whose pid
//!    │                                                    is in minio.pid, rm -rf the temp dir
//!    ├─ minio server --address 127.0.0.1:<random free port> <tmp>/data
//!    │     (fixed test credentials, no console, no update checks)
//!    ├─ wait for GET /minio/health/ready
//!    └─ CreateBucket "ferrite-test" (a SigV4-signed PUT /<bucket>)
//! ```
//!
//! Every server has its own temp dir and port, so tests may start servers in parallel.
//! [`TestS3::shared`] gives one server per test binary for tests that only need a fresh
//! bucket each ([`TestS3::fresh_bucket`]).
//!
//! Outages: [`TestS3::kill`] (SIGKILL) and [`TestS3::stop`] (SIGTERM) keep the data and the
//! port; [`TestS3::start_again`] brings the same server back on them.
//!
//! No orphans: `Drop` kills MinIO and removes the directory. A server whose `Drop` never runs
//! (the shared one lives in a `static`, or the test binary is killed) is cleaned up by its
//! watchdog: the kernel closes the pipe when this process exits, however it exits.
//!
//! A missing MinIO binary is an error, never a skip: the message says how to install it.

use crate::watchdog::Watchdog;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use futures::TryStreamExt;
use object_store::aws::{AmazonS3Builder, AwsAuthorizer, AwsCredential};
use object_store::client::{HttpRequest, HttpRequestBody};
use object_store::{ObjectMeta, ObjectStore};

/// The access key id of every test server.
pub const ACCESS_KEY: &str = "ferrite-test";
/// The secret access key of every test server (MinIO wants at least 8 characters).
pub const SECRET_KEY: &str = "ferrite-test-secret";
/// The region requests are signed for.
pub const REGION: &str = "us-east-1";
/// The bucket [`TestS3::start`] creates.
pub const DEFAULT_BUCKET: &str = "ferrite-test";

/// Overrides the MinIO binary (a path).
pub const MINIO_ENV: &str = "FERRITE_MINIO";

/// Attempts with a new port when another process took the one we picked.
const PORT_ATTEMPTS: usize = 5;
/// How long MinIO may take to become ready.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A MinIO server in a temp dir, killed and removed on drop.
#[derive(Debug)]
pub struct TestS3 {
    binary: PathBuf,
    /// The temp dir: `data/`, `certs/`, `minio.log`, `minio.pid`.
    root: tempfile::TempDir,
    port: Mutex<u16>,
    child: Mutex<Option<Child>>,
    watchdog: Mutex<Option<Watchdog>>,
    next_bucket: AtomicUsize,
}

impl TestS3 {
    /// Start a new server and create [`DEFAULT_BUCKET`] (about a second).
    ///
    /// Fails — never skips — if MinIO is not installed, saying how to install it.
    pub async fn start() -> Result<TestS3> {
        let binary = minio_binary()?;
        let root = tempfile::Builder::new()
            .prefix("ferrite-s3-")
            .tempdir()
            .context("creating a temp dir for MinIO")?;
        for dir in ["data", "certs"] {
            std::fs::create_dir(root.path().join(dir))
                .with_context(|| format!("creating {dir}/ in {}", root.path().display()))?;
        }
        let server = TestS3 {
            binary,
            root,
            port: Mutex::new(0),
            child: Mutex::new(None),
            watchdog: Mutex::new(None),
            next_bucket: AtomicUsize::new(0),
        };
        // The watchdog first: from here on MinIO and the directory are cleaned up however
        // we exit.
        server.spawn_watchdog()?;

        let mut last_error = None;
        for _ in 0..PORT_ATTEMPTS {
            *lock(&server.port) = free_port()?;
            match server.start_again().await {
                Ok(()) => {
                    server.create_bucket(DEFAULT_BUCKET).await?;
                    return Ok(server);
                }
                Err(e) if server.log().contains("already in use") => last_error = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow!("MinIO did not start")))
    }

    /// One server for the whole test binary, started on first use. Its `Drop` never runs;
    /// the watchdog kills it and removes its directory when the test binary exits.
    ///
    /// Use [`Self::fresh_bucket`] for isolation; do not stop or kill it.
    pub async fn shared() -> Result<&'static TestS3> {
        static SHARED: tokio::sync::OnceCell<Result<TestS3, String>> =
            tokio::sync::OnceCell::const_new();
        SHARED
            .get_or_init(|| async { Self::start().await.map_err(|e| format!("{e:#}")) })
            .await
            .as_ref()
            .map_err(|e| anyhow!("starting the shared test MinIO failed: {e}"))
    }

    /// `http://127.0.0.1:PORT`; the same across [`Self::start_again`].
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port())
    }

    /// TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        *lock(&self.port)
    }

    /// The bucket [`Self::start`] created, [`DEFAULT_BUCKET`].
    pub fn bucket(&self) -> &str {
        DEFAULT_BUCKET
    }

    /// The access key id, [`ACCESS_KEY`].
    pub fn access_key(&self) -> &str {
        ACCESS_KEY
    }

    /// The secret access key, [`SECRET_KEY`].
    pub fn secret_key(&self) -> &str {
        SECRET_KEY
    }

    /// The region, [`REGION`].
    pub fn region(&self) -> &str {
        REGION
    }

    /// MinIO's data directory (one subdirectory per bucket).
    pub fn data_dir(&self) -> PathBuf {
        self.root.path().join("data")
    }

    /// The `ferrite serve` / `ferrite run` flags that put Parquet files in `bucket` here.
    pub fn ferrite_args(&self, bucket: &str) -> Vec<String> {
        [
            "--object-store",
            "s3",
            "--bucket",
            bucket,
            "--s3-endpoint",
            &self.endpoint(),
            "--s3-region",
            REGION,
            "--s3-access-key-id",
            ACCESS_KEY,
            "--s3-secret-access-key",
            SECRET_KEY,
            "--s3-allow-http",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    /// An object store on [`Self::bucket`].
    pub fn object_store(&self) -> Result<Arc<dyn ObjectStore>> {
        self.object_store_for(DEFAULT_BUCKET)
    }

    /// An object store on `bucket` of this server (path-style requests, plain HTTP).
    pub fn object_store_for(&self, bucket: &str) -> Result<Arc<dyn ObjectStore>> {
        let store = AmazonS3Builder::new()
            .with_endpoint(self.endpoint())
            .with_bucket_name(bucket)
            .with_region(REGION)
            .with_access_key_id(ACCESS_KEY)
            .with_secret_access_key(SECRET_KEY)
            .with_allow_http(true)
            .build()
            .with_context(|| {
                format!("object store for bucket '{bucket}' at {}", self.endpoint())
            })?;
        Ok(Arc::new(store))
    }

    /// Every object in `bucket` (all prefixes), sorted by path.
    pub async fn list(&self, bucket: &str) -> Result<Vec<ObjectMeta>> {
        let store = self.object_store_for(bucket)?;
        let mut objects: Vec<ObjectMeta> = store
            .list(None)
            .try_collect()
            .await
            .with_context(|| format!("listing bucket '{bucket}'"))?;
        objects.sort_by(|a, b| a.location.cmp(&b.location));
        Ok(objects)
    }

    /// Create `bucket` (S3 CreateBucket). Creating one that exists is not an error.
    pub async fn create_bucket(&self, bucket: &str) -> Result<()> {
        create_bucket(&self.endpoint(), bucket, ACCESS_KEY, SECRET_KEY).await
    }

    /// Create a bucket with a name no other call on this server returned; return the name.
    pub async fn fresh_bucket(&self) -> Result<String> {
        let n = self.next_bucket.fetch_add(1, Ordering::Relaxed);
        let name = format!("test-{n}");
        self.create_bucket(&name).await?;
        Ok(name)
    }

    /// SIGKILL MinIO, as a crash or an outage would; data and port are kept.
    pub fn kill(&self) -> Result<()> {
        if let Some(mut child) = lock(&self.child).take() {
            child.kill().context("killing MinIO")?;
            child.wait().context("waiting for MinIO")?;
        }
        Ok(())
    }

    /// SIGTERM MinIO and wait for it to exit; data and port are kept.
    pub fn stop(&self) -> Result<()> {
        if let Some(mut child) = lock(&self.child).take() {
            let status = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status()
                .context("running kill -TERM")?;
            if !status.success() {
                bail!("kill -TERM {} failed", child.id());
            }
            child.wait().context("waiting for MinIO")?;
        }
        Ok(())
    }

    /// Start a stopped or killed server again on the same port and data, and wait until it
    /// is ready.
    pub async fn start_again(&self) -> Result<()> {
        if let Some(child) = lock(&self.child).as_mut()
            && child.try_wait()?.is_none()
        {
            bail!("MinIO is still running");
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .context("opening minio.log")?;
        let child = Command::new(&self.binary)
            .arg("server")
            .arg("--address")
            .arg(format!("127.0.0.1:{}", self.port()))
            .arg("--certs-dir")
            .arg(self.root.path().join("certs"))
            .arg("--quiet")
            .arg(self.data_dir())
            .env("MINIO_ROOT_USER", ACCESS_KEY)
            .env("MINIO_ROOT_PASSWORD", SECRET_KEY)
            .env("MINIO_BROWSER", "off")
            .env("MINIO_UPDATE", "off")
            .env_remove("MINIO_VOLUMES")
            .env_remove("MINIO_OPTS")
            .env_remove("MINIO_CONFIG_ENV_FILE")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| format!("starting {}", self.binary.display()))?;
        // The watchdog kills whatever pid is here when this process dies.
        std::fs::write(self.pid_path(), child.id().to_string()).context("writing minio.pid")?;
        *lock(&self.child) = Some(child);
        self.wait_ready().await
    }

    /// MinIO's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        self.root.path().join("minio.log")
    }

    fn pid_path(&self) -> PathBuf {
        self.root.path().join("minio.pid")
    }

    async fn wait_ready(&self) -> Result<()> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()?;
        let url = format!("{}/minio/health/ready", self.endpoint());
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let exited = lock(&self.child)
                .as_mut()
                .map(|c| c.try_wait())
                .transpose()?
                .flatten();
            if let Some(status) = exited {
                lock(&self.child).take();
                bail!(
                    "MinIO exited with {status} during start on port {}; log:\n{}",
                    self.port(),
                    self.log()
                );
            }
            if let Ok(r) = client.get(&url).send().await
                && r.status().is_success()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "MinIO did not become ready on port {} in {START_TIMEOUT:?}; log:\n{}",
                    self.port(),
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Start the watchdog: it blocks reading its stdin; EOF means this process is gone (or
    /// the server was dropped), so it kills MinIO and removes the temp dir. The pid is
    /// killed only if that process's command line names our temp dir (no stray kills after
    /// pid reuse).
    fn spawn_watchdog(&self) -> Result<()> {
        let script = r#"
            read -r msg
            if [ "$msg" != stopped ] && [ -f "$1/minio.pid" ]; then
                pid=$(cat "$1/minio.pid")
                if tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -qF "$1/"; then
                    kill -9 "$pid" 2>/dev/null
                fi
            fi
            rm -rf "$1"
        "#;
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("ferrite-s3-watchdog")
            .arg(self.root.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("spawning the MinIO watchdog")?;
        let stdin = child.stdin.take();
        *lock(&self.watchdog) = Some(Watchdog { child, stdin });
        Ok(())
    }
}

impl Drop for TestS3 {
    fn drop(&mut self) {
        let stopped = self.kill().is_ok();
        let watchdog = self
            .watchdog
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(watchdog) = watchdog {
            watchdog.finish(stopped);
        }
    }
}

/// Create `bucket` on the S3-compatible server at `endpoint` (a SigV4-signed CreateBucket).
/// Creating one that exists is not an error.
/// Names: 3–63 lower-case letters, digits, `-` and `.`.
pub async fn create_bucket(
    endpoint: &str,
    bucket: &str,
    access_key: &str,
    secret_key: &str,
) -> Result<()> {
    let valid = (3..=63).contains(&bucket.len())
        && bucket
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
    if !valid {
        bail!("bucket name '{bucket}': use 3-63 lower-case letters, digits, '-' and '.'");
    }
    let credential = AwsCredential {
        key_id: access_key.to_string(),
        secret_key: secret_key.to_string(),
        token: None,
    };
    let url = format!("{}/{bucket}", endpoint.trim_end_matches('/'));
    let client = reqwest::Client::new();
    // MinIO may still be initialising just after it reports ready: retry 5xx briefly.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut request = HttpRequest::new(HttpRequestBody::empty());
        *request.method_mut() = reqwest::Method::PUT;
        *request.uri_mut() = url.parse().context("bucket URL")?;
        AwsAuthorizer::new(&credential, "s3", REGION).authorize(&mut request, None);
        let mut builder = client.put(&url);
        for (name, value) in request.headers() {
            builder = builder.header(name, value);
        }
        let response = builder
            .send()
            .await
            .with_context(|| format!("CreateBucket {url}"))?;
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        if status.is_success() || body.contains("BucketAlreadyOwnedByYou") {
            return Ok(());
        }
        if !status.is_server_error() || Instant::now() > deadline {
            bail!("CreateBucket {url}: {status}: {body}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The MinIO binary: `$FERRITE_MINIO`, else `${FERRITE_TOOLS_DIR:-$HOME/.cache/ferrite-tools}/bin/minio`
/// (where `deploy/dev/install-minio.sh` puts it).
pub fn minio_binary() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os(MINIO_ENV).filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        if path.is_file() {
            return Ok(path);
        }
        bail!("${MINIO_ENV} is {} but no such file exists", path.display());
    }
    let tools = crate::tools_bin_dir()?;
    let binary = tools.join("minio");
    if binary.is_file() {
        return Ok(binary);
    }
    bail!(
        "MinIO was not found at {}. The S3 tests need a real S3-compatible server and never \
         skip: run `make test` or `bash deploy/dev/setup.sh` (it builds MinIO with `go install`), \
         or point ${MINIO_ENV} at a minio binary.",
        binary.display()
    )
}

/// A port that was free a moment ago. Another process may take it before MinIO binds;
/// [`TestS3::start`] retries with a new one then.
fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free TCP port")?;
    Ok(listener.local_addr()?.port())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
