//! A real `ferrite serve` process for end-to-end tests and benchmarks: started on a free
//! loopback port with its own data directory, stopped with SIGTERM (clean) or SIGKILL
//! (crash), restartable on the same data.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// A running (or stopped) `ferrite serve`.
#[derive(Debug)]
pub struct FerriteServer {
    binary: PathBuf,
    data_dir: PathBuf,
    extra_args: Vec<String>,
    port: u16,
    child: Option<Child>,
    _temp: Option<tempfile::TempDir>,
}

impl FerriteServer {
    /// Start `binary serve` with a fresh temporary data directory and `extra_args`.
    pub async fn start(binary: &Path, extra_args: &[&str]) -> anyhow::Result<Self> {
        let temp = tempfile::tempdir()?;
        let mut s = Self {
            binary: binary.to_path_buf(),
            data_dir: temp.path().to_path_buf(),
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            port: free_port()?,
            child: None,
            _temp: Some(temp),
        };
        s.spawn().await?;
        Ok(s)
    }

    /// Base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The data directory (catalog, WAL, objects).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    async fn spawn(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data_dir.join("server.log"))?;
        let child = Command::new(&self.binary)
            .arg("serve")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--bind")
            .arg(format!("127.0.0.1:{}", self.port))
            .args(&self.extra_args)
            .env("FERRITE_LOG", "info")
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| format!("starting {}", self.binary.display()))?;
        self.child = Some(child);
        self.wait_healthy(Duration::from_secs(60)).await
    }

    async fn wait_healthy(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                bail!("ferrite exited with {status} during start; log:\n{}", self.log());
            }
            if let Ok(r) = client.get(format!("{}/health", self.url())).send().await
                && r.status().is_success()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("ferrite did not become healthy in {timeout:?}; log:\n{}", self.log());
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

    /// SIGTERM and wait for a clean exit; fails if the process exits non-zero.
    pub fn terminate(&mut self) -> anyhow::Result<()> {
        if let Some(mut c) = self.child.take() {
            let status = Command::new("kill").arg("-TERM").arg(c.id().to_string()).status()?;
            if !status.success() {
                bail!("kill -TERM failed");
            }
            let status = c.wait()?;
            if !status.success() {
                bail!("ferrite exited with {status} after SIGTERM; log:\n{}", self.log());
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

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}
