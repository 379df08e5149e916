//! A real `ferrite serve` process for end-to-end tests and benchmarks: started on a free
//! loopback port with its own data directory, stopped with SIGTERM (clean) or SIGKILL
//! (crash), restartable on the same data.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// A running (or stopped) `ferrite` process: `ferrite serve` or one `ferrite run <service>`.
#[derive(Debug)]
pub struct FerriteServer {
    binary: PathBuf,
    data_dir: PathBuf,
    args: Vec<String>,
    /// Environment variables set for the process, besides `FERRITE_LOG`.
    env: Vec<(String, String)>,
    port: u16,
    child: Option<Child>,
    /// The admin token the process trusts, once known.
    admin_token: Option<String>,
    _temp: Option<tempfile::TempDir>,
}

impl FerriteServer {
    /// Start `binary serve` with a fresh temporary data directory and `extra_args`.
    pub async fn start(binary: &Path, extra_args: &[&str]) -> anyhow::Result<Self> {
        let temp = tempfile::tempdir()?;
        let port = free_port()?;
        let mut args = vec![
            "serve".to_string(),
            "--data-dir".to_string(),
            temp.path().display().to_string(),
            "--bind".to_string(),
            format!("127.0.0.1:{port}"),
        ];
        args.extend(extra_args.iter().map(|s| s.to_string()));
        let mut s = Self {
            binary: binary.to_path_buf(),
            data_dir: temp.path().to_path_buf(),
            args,
            env: Vec::new(),
            port,
            child: None,
            admin_token: None,
            _temp: Some(temp),
        };
        s.spawn().await?;
        Ok(s)
    }

    /// Start `binary run <service> --bind 127.0.0.1:<port> <args>` with its log in `dir`
    /// (which the caller keeps) and wait until it is ready. `port` is reserved with
    /// [`free_port`] so peers can be told the address before the process starts.
    pub async fn run_service(
        binary: &Path,
        service: &str,
        port: u16,
        dir: &Path,
        args: &[String],
    ) -> anyhow::Result<Self> {
        Self::run_service_env(binary, service, port, dir, args, &[]).await
    }

    /// Like [`Self::run_service`], with environment variables (`KUBECONFIG`, say).
    pub async fn run_service_env(
        binary: &Path,
        service: &str,
        port: u16,
        dir: &Path,
        args: &[String],
        env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let mut s = Self::service(binary, service, port, dir, args)?;
        s.env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        s.spawn().await?;
        Ok(s)
    }

    /// Like [`Self::run_service`], but wait only until the port answers `/health`: for a
    /// service that cannot become ready yet (its catalog database is down, say).
    pub async fn run_service_alive(
        binary: &Path,
        service: &str,
        port: u16,
        dir: &Path,
        args: &[String],
    ) -> anyhow::Result<Self> {
        let mut s = Self::service(binary, service, port, dir, args)?;
        s.launch()?;
        s.wait_for("/health", Duration::from_secs(60)).await?;
        Ok(s)
    }

    fn service(
        binary: &Path,
        service: &str,
        port: u16,
        dir: &Path,
        args: &[String],
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let mut all = vec![
            "run".to_string(),
            service.to_string(),
            "--bind".to_string(),
            format!("127.0.0.1:{port}"),
        ];
        all.extend(args.iter().cloned());
        Ok(Self {
            binary: binary.to_path_buf(),
            data_dir: dir.to_path_buf(),
            args: all,
            env: Vec::new(),
            port,
            child: None,
            admin_token: None,
            _temp: None,
        })
    }

    /// Base URL, `http://127.0.0.1:PORT` (`https://` when it serves TLS).
    pub fn url(&self) -> String {
        let scheme = if self.arg("--tls-cert").is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// The value of flag `name`, if the process was started with it.
    fn arg(&self, name: &str) -> Option<&str> {
        let i = self.args.iter().position(|a| a == name)?;
        self.args.get(i + 1).map(String::as_str)
    }

    /// The admin token: `--admin-token-file`'s, or `serve`'s `<data-dir>/admin-token`.
    /// `None` when the process runs `--without-auth`.
    pub fn admin_token(&self) -> Option<&str> {
        self.admin_token.as_deref()
    }

    /// An HTTP client that sends the admin token on every request (and trusts `--tls-ca`).
    pub fn client(&self) -> reqwest::Client {
        client_trusting(self.admin_token(), self.arg("--tls-ca").map(Path::new))
    }

    /// The process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// CPU time (user + system) the running process has used so far, from `/proc`.
    pub fn cpu_time(&self) -> anyhow::Result<Duration> {
        let pid = self.pid().context("the server is not running")?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
        // Fields after the command name, which is in parentheses and may hold spaces.
        let rest = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest)
            .context("unexpected /proc/<pid>/stat")?;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after ')'.
        let ticks: u64 = fields
            .get(11..13)
            .context("short /proc/<pid>/stat")?
            .iter()
            .map(|f| f.parse::<u64>())
            .sum::<Result<u64, _>>()?;
        let per_second: u64 =
            String::from_utf8(Command::new("getconf").arg("CLK_TCK").output()?.stdout)?
                .trim()
                .parse()
                .context("getconf CLK_TCK")?;
        Ok(Duration::from_secs_f64(ticks as f64 / per_second as f64))
    }

    /// The data directory (catalog, WAL, objects).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    async fn spawn(&mut self) -> anyhow::Result<()> {
        self.launch()?;
        self.wait_for("/ready", Duration::from_secs(60)).await?;
        self.admin_token = self.read_admin_token()?;
        Ok(())
    }

    fn launch(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data_dir.join("server.log"))?;
        let child = Command::new(&self.binary)
            .args(&self.args)
            .env("FERRITE_LOG", "info")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| format!("starting {}", self.binary.display()))?;
        self.child = Some(child);
        Ok(())
    }

    fn read_admin_token(&self) -> anyhow::Result<Option<String>> {
        if self.args.iter().any(|a| a == "--without-auth") {
            return Ok(None);
        }
        if let Some(token) = self.arg("--admin-token") {
            return Ok(Some(token.to_string()));
        }
        let file = match self.arg("--admin-token-file") {
            Some(f) => PathBuf::from(f),
            None => self.data_dir.join("admin-token"),
        };
        if !file.exists() {
            return Ok(None);
        }
        Ok(Some(std::fs::read_to_string(&file)?.trim().to_string()))
    }

    /// Wait until `path` answers 200: `/health` once the port is bound, `/ready` once the
    /// service is built too (catalog connected, WAL replayed).
    async fn wait_for(&mut self, path: &str, timeout: Duration) -> anyhow::Result<()> {
        let client = client_trusting(None, self.arg("--tls-ca").map(Path::new));
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                bail!(
                    "ferrite exited with {status} during start; log:\n{}",
                    self.log()
                );
            }
            if let Ok(r) = client.get(format!("{}{path}", self.url())).send().await
                && r.status().is_success()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "ferrite did not answer {path} in {timeout:?}; log:\n{}",
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("server.log")).unwrap_or_default()
    }

    /// SIGKILL: a crash, nothing gets to run.
    pub fn kill9(&mut self) -> anyhow::Result<()> {
        if let Some(mut c) = self.child.take() {
            c.kill()?;
            c.wait()?;
        }
        Ok(())
    }

    /// SIGTERM without waiting: the process drains while the test watches.
    pub fn sigterm(&self) -> anyhow::Result<()> {
        let child = self.child.as_ref().context("the process is not running")?;
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()?;
        if !status.success() {
            bail!("kill -TERM failed");
        }
        Ok(())
    }

    /// Wait up to `timeout` for the process to exit; its exit status.
    pub async fn wait_exit(
        &mut self,
        timeout: Duration,
    ) -> anyhow::Result<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            let child = self.child.as_mut().context("the process is not running")?;
            if let Some(status) = child.try_wait()? {
                self.child = None;
                return Ok(status);
            }
            if Instant::now() > deadline {
                bail!("ferrite still runs after {timeout:?}; log:\n{}", self.log());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM and wait for a clean exit; fails if the process exits non-zero.
    /// Set an environment variable for the next start (a `FERRITE_*` setting, say): takes
    /// effect at [`Self::restart`].
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_string(), value.to_string()));
    }

    pub fn terminate(&mut self) -> anyhow::Result<()> {
        if let Some(mut c) = self.child.take() {
            let status = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status()?;
            if !status.success() {
                bail!("kill -TERM failed");
            }
            let status = c.wait()?;
            if !status.success() {
                bail!(
                    "ferrite exited with {status} after SIGTERM; log:\n{}",
                    self.log()
                );
            }
        }
        Ok(())
    }

    /// Start again on the same data directory and port.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        if self.child.is_some() {
            bail!("server is still running");
        }
        self.spawn().await
    }
}

impl Drop for FerriteServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// An HTTP client that sends `Authorization: Bearer <token>` on every request (nothing
/// without a token).
pub fn client_with(token: Option<&str>) -> reqwest::Client {
    client_trusting(token, None)
}

/// [`client_with`], also trusting the CA in the PEM file `ca` (for TLS servers).
pub fn client_trusting(token: Option<&str>, ca: Option<&Path>) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(token) = token
        && let Ok(value) = format!("Bearer {token}").parse()
    {
        headers.insert(reqwest::header::AUTHORIZATION, value);
    }
    let mut builder = reqwest::Client::builder().default_headers(headers);
    if let Some(ca) = ca {
        let pem = std::fs::read(ca).expect("the test CA file");
        builder =
            builder.add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("a PEM CA"));
    }
    builder.build().expect("a client with default headers")
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}
