//! Throwaway PostgreSQL servers for tests, run from Debian's PostgreSQL binaries.
//!
//! ```text
//!  TestPostgres::start()
//!    ├─ initdb  → <tmp>/ferrite-pg-XXXX/data        (trust auth, no fsync, C locale)
//!    ├─ watchdog: sh reading a pipe from this process ──► on EOF: pg_ctl stop -m immediate,
//!    │                                                    rm -rf the temp dir
//!    └─ pg_ctl start -w → postgres on 127.0.0.1:<random free port>, socket in the temp dir
//! ```
//!
//! Every server has its own temp dir and port, so tests in one binary may start servers in
//! parallel. [`TestPostgres::shared`] gives one server per test binary for tests that only
//! need a fresh database each ([`TestPostgres::fresh_database`]); that is much cheaper than
//! an `initdb` per test.
//!
//! No orphans: `Drop` stops the server and removes the directory. A server whose `Drop` never
//! runs (the shared one lives in a `static`, or the test binary is killed) is cleaned up by
//! its watchdog: the kernel closes the pipe when this process exits, however it exits.
//!
//! Running as root (CI containers): PostgreSQL refuses to run as root, so `initdb`, `pg_ctl`
//! and the watchdog run as the `postgres` OS user (created by Debian's `postgresql` package)
//! through `runuser`, and the temp dir is handed to that user.
//!
//! Missing binaries are an error, never a skip: a test that needs PostgreSQL fails with a
//! message saying how to install it.
//!
//! All functions block (they run processes and wait for them); call them from async tests
//! directly (a few hundred ms per call) or through `spawn_blocking`.

use crate::watchdog::Watchdog;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use anyhow::{Context, Result, anyhow, bail};

/// Attempts with a new port when another process took the one we picked.
const PORT_ATTEMPTS: usize = 5;
/// How long `pg_ctl` waits for the server to accept connections.
const START_TIMEOUT_SECS: u32 = 60;
/// The OS user PostgreSQL runs as when the tests run as root.
const PG_USER: &str = "postgres";

const HOW_TO_INSTALL: &str = "PostgreSQL server binaries (initdb, pg_ctl, postgres) were not \
     found under /usr/lib/postgresql/*/bin or on PATH. These tests need a real PostgreSQL and \
     never skip: run `make test` (which installs it) or `apt-get install -y postgresql`.";

/// Settings for a disposable, fast server. Durability is off on purpose: the data dies with
/// the test.
const SERVER_CONFIG: &str = "
# ferrite TestPostgres
listen_addresses = '127.0.0.1'
max_connections = 200
shared_buffers = 16MB
fsync = off
synchronous_commit = off
full_page_writes = off
log_min_messages = warning
";

/// A PostgreSQL server in a temp dir, stopped and removed on drop.
#[derive(Debug)]
pub struct TestPostgres {
    bin: PgBin,
    /// Run server tools as the `postgres` user (we are root).
    as_pg_user: bool,
    /// The temp dir: `data/`, `postgres.log` and the unix socket.
    root: tempfile::TempDir,
    port: Mutex<u16>,
    watchdog: Mutex<Option<Watchdog>>,
    next_database: AtomicUsize,
}

/// Where the PostgreSQL programs are.
#[derive(Debug, Clone)]
struct PgBin {
    initdb: PathBuf,
    pg_ctl: PathBuf,
    psql: PathBuf,
}

impl TestPostgres {
    /// Start a new server (blocking: `initdb` plus start-up, about a second or two).
    ///
    /// Fails — never skips — if PostgreSQL is not installed, naming the package to install.
    pub fn start() -> Result<TestPostgres> {
        let bin = PgBin::find()?;
        let as_pg_user = running_as_root()?;
        if as_pg_user {
            run(Command::new("id").arg("-u").arg(PG_USER)).with_context(|| {
                format!(
                    "running as root, so PostgreSQL must run as the '{PG_USER}' OS user, which \
                     does not exist; install Debian's `postgresql` package (it creates the user)"
                )
            })?;
        }

        let root = tempfile::Builder::new()
            .prefix("ferrite-pg-")
            .tempdir()
            .context("creating a temp dir for PostgreSQL")?;
        if as_pg_user {
            run(Command::new("chown")
                .arg("-R")
                .arg(format!("{PG_USER}:{PG_USER}"))
                .arg(root.path()))?;
        }

        let server = TestPostgres {
            bin,
            as_pg_user,
            root,
            port: Mutex::new(0),
            watchdog: Mutex::new(None),
            next_database: AtomicUsize::new(0),
        };
        // The watchdog first: from here on the directory is cleaned up however we exit.
        server.spawn_watchdog()?;
        server.initdb()?;

        let mut last_error = None;
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port()?;
            *lock(&server.port) = port;
            match server.pg_ctl_start() {
                Ok(()) => return Ok(server),
                Err(e) if server.log().contains("could not bind") => last_error = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow!("PostgreSQL did not start")))
    }

    /// One server for the whole test binary, started on first use. Its `Drop` never runs;
    /// the watchdog stops it and removes its directory when the test binary exits.
    ///
    /// Use [`Self::fresh_database`] for isolation; do not stop or restart it.
    pub fn shared() -> Result<&'static TestPostgres> {
        static SHARED: OnceLock<Result<TestPostgres, String>> = OnceLock::new();
        SHARED
            .get_or_init(|| Self::start().map_err(|e| format!("{e:#}")))
            .as_ref()
            .map_err(|e| anyhow!("starting the shared test PostgreSQL failed: {e}"))
    }

    /// DSN of the default `postgres` database.
    pub fn dsn(&self) -> String {
        self.dsn_for("postgres")
    }

    /// DSN of `database` on this server (which need not exist).
    pub fn dsn_for(&self, database: &str) -> String {
        format!("postgres://{PG_USER}@127.0.0.1:{}/{database}", self.port())
    }

    /// TCP port on 127.0.0.1; the same across [`Self::restart`].
    pub fn port(&self) -> u16 {
        *lock(&self.port)
    }

    /// Create an empty database and return its DSN. `name`: lower-case letters, digits, `_`.
    pub fn create_database(&self, name: &str) -> Result<String> {
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid {
            bail!("database name '{name}': use lower-case letters, digits and '_'");
        }
        run(Command::new(&self.bin.psql)
            .env("PGCONNECT_TIMEOUT", "10")
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1"])
            .args(["-h", "127.0.0.1", "-U", PG_USER, "-d", "postgres"])
            .arg("-p")
            .arg(self.port().to_string())
            .arg("-c")
            .arg(format!("CREATE DATABASE \"{name}\"")))
        .with_context(|| format!("creating database '{name}'"))?;
        Ok(self.dsn_for(name))
    }

    /// Create a database with a name no other call on this server returned; return its DSN.
    pub fn fresh_database(&self) -> Result<String> {
        let n = self.next_database.fetch_add(1, Ordering::Relaxed);
        self.create_database(&format!("test_{n}"))
    }

    /// Stop the server cleanly (`pg_ctl stop -m fast`), keeping its data and port.
    pub fn stop(&self) -> Result<()> {
        self.pg_ctl_stop("fast")
    }

    /// Stop the server as a crash would (`pg_ctl stop -m immediate`): no checkpoint, crash
    /// recovery on the next start. Data and port are kept.
    pub fn crash(&self) -> Result<()> {
        self.pg_ctl_stop("immediate")
    }

    /// Start a stopped server again on the same port and data dir.
    pub fn start_again(&self) -> Result<()> {
        self.pg_ctl_start()
    }

    /// [`Self::stop`] then [`Self::start_again`].
    pub fn restart(&self) -> Result<()> {
        self.stop()?;
        self.start_again()
    }

    /// The server log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn data_dir(&self) -> PathBuf {
        self.root.path().join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.root.path().join("postgres.log")
    }

    /// A command for a server tool, as the `postgres` user when we are root.
    fn server_command(&self, program: &Path) -> Command {
        if self.as_pg_user {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", PG_USER, "--"]).arg(program);
            cmd
        } else {
            Command::new(program)
        }
    }

    fn initdb(&self) -> Result<()> {
        run(self
            .server_command(&self.bin.initdb)
            .arg("-D")
            .arg(self.data_dir())
            .args([
                "-A",
                "trust",
                "-U",
                PG_USER,
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ]))
        .context("initdb failed")?;
        let conf = self.data_dir().join("postgresql.conf");
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&conf)
            .with_context(|| format!("opening {}", conf.display()))?;
        // The socket lives in our temp dir: /var/run/postgresql may not exist or be shared.
        let socket_dir = self.root.path().display();
        writeln!(
            file,
            "{SERVER_CONFIG}unix_socket_directories = '{socket_dir}'"
        )
        .with_context(|| format!("writing {}", conf.display()))?;
        Ok(())
    }

    /// Start the watchdog: it blocks reading its stdin; EOF means this process is gone (or
    /// the server was dropped), so it stops postgres hard and removes the temp dir.
    fn spawn_watchdog(&self) -> Result<()> {
        // EOF: this process died, perhaps during a `pg_ctl start` that goes on without us,
        // so stop twice, a second apart. "stopped": `Drop` has stopped the server already.
        let script = r#"
            read -r msg
            if [ "$msg" != stopped ]; then
                "$0" stop -D "$1/data" -m immediate -w >/dev/null 2>&1
                sleep 1
                "$0" stop -D "$1/data" -m immediate -w >/dev/null 2>&1
            fi
            rm -rf "$1"
        "#;
        let mut child = self
            .server_command(Path::new("sh"))
            .arg("-c")
            .arg(script)
            .arg(&self.bin.pg_ctl)
            .arg(self.root.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("spawning the PostgreSQL watchdog")?;
        let stdin = child.stdin.take();
        *lock(&self.watchdog) = Some(Watchdog { child, stdin });
        Ok(())
    }

    fn pg_ctl_start(&self) -> Result<()> {
        let output = self
            .server_command(&self.bin.pg_ctl)
            .arg("start")
            .arg("-D")
            .arg(self.data_dir())
            .arg("-l")
            .arg(self.log_path())
            .arg("-o")
            .arg(format!("-p {}", self.port()))
            .args(["-w", "-t", &START_TIMEOUT_SECS.to_string()])
            .stdin(Stdio::null())
            .output()
            .context("running pg_ctl start")?;
        if !output.status.success() {
            bail!(
                "PostgreSQL did not start on port {} ({}):\n{}\n--- server log ---\n{}",
                self.port(),
                output.status,
                String::from_utf8_lossy(&output.stderr).trim(),
                self.log()
            );
        }
        Ok(())
    }

    fn pg_ctl_stop(&self, mode: &str) -> Result<()> {
        run(self
            .server_command(&self.bin.pg_ctl)
            .arg("stop")
            .arg("-D")
            .arg(self.data_dir())
            .args(["-m", mode, "-w"]))
        .with_context(|| format!("pg_ctl stop -m {mode}"))?;
        Ok(())
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        // Fails when the server is stopped already; the pid file tells which.
        let stopped = self.pg_ctl_stop("immediate").is_ok()
            || !self.data_dir().join("postmaster.pid").exists();
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

impl PgBin {
    /// The newest `/usr/lib/postgresql/<version>/bin` that has the server tools, else PATH.
    fn find() -> Result<PgBin> {
        let mut versions: Vec<(Vec<u32>, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| {
                let name = entry.file_name().to_string_lossy().into_owned();
                let version: Option<Vec<u32>> = name.split('.').map(|p| p.parse().ok()).collect();
                let bin = entry.path().join("bin");
                let complete = ["initdb", "pg_ctl", "postgres"]
                    .iter()
                    .all(|tool| bin.join(tool).is_file());
                Some((version?, bin)).filter(|_| complete)
            })
            .collect();
        versions.sort();
        if let Some((_, dir)) = versions.pop() {
            let psql = Some(dir.join("psql"))
                .filter(|p| p.is_file())
                .or_else(|| on_path("psql"))
                .ok_or_else(|| anyhow!("psql not found in {} or on PATH", dir.display()))?;
            return Ok(PgBin {
                initdb: dir.join("initdb"),
                pg_ctl: dir.join("pg_ctl"),
                psql,
            });
        }
        match (
            on_path("initdb"),
            on_path("pg_ctl"),
            on_path("postgres"),
            on_path("psql"),
        ) {
            (Some(initdb), Some(pg_ctl), Some(_), Some(psql)) => Ok(PgBin {
                initdb,
                pg_ctl,
                psql,
            }),
            _ => Err(anyhow!(HOW_TO_INSTALL)),
        }
    }
}

fn on_path(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

fn running_as_root() -> Result<bool> {
    let out = run(Command::new("id").arg("-u"))?;
    Ok(String::from_utf8_lossy(&out.stdout).trim() == "0")
}

/// A port that was free a moment ago. Another process may take it before postgres binds;
/// [`TestPostgres::start`] retries with a new one then.
fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free TCP port")?;
    Ok(listener.local_addr()?.port())
}

/// Run to completion; an error carrying the command's output if it fails.
fn run(cmd: &mut Command) -> Result<Output> {
    let output = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {cmd:?}"))?;
    if !output.status.success() {
        bail!(
            "{cmd:?} failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(output)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
