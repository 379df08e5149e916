//! A real Kubernetes control plane for tests: etcd, kube-apiserver and, on request,
//! kube-controller-manager, on loopback ports, with everything in a temp dir. The upstream
//! binaries are built by `deploy/dev/install-kube.sh`; etcd is Debian's `etcd-server`
//! (both installed by `deploy/dev/setup.sh`, which `make test` runs). Nothing is mocked.
//!
//! ```text
//!  ControlPlane::start() / start_with_controllers()
//!    ├─ temp dir <tmp>/ferrite-kube-XXXX/
//!    │     pki/  (CA, apiserver certificate, service-account key pair, all made here)
//!    │     tokens.csv  admin.kubeconfig  controller-manager.kubeconfig  kubeconfigs/
//!    │     etcd/  <component>.log  <component>.pid
//!    ├─ watchdog: sh reading a pipe from this process ──► on EOF: kill -9 every pid in
//!    │                                                    *.pid, rm -rf the temp dir
//!    ├─ etcd                    127.0.0.1:<free port>          ready: GET /health
//!    ├─ kube-apiserver          https://127.0.0.1:<free port>  ready: GET /readyz
//!    │     (RBAC, token file with a system:masters admin, service-account tokens)
//!    └─ kube-controller-manager (Deployments, ReplicaSets, StatefulSets, EndpointSlices,
//!          namespaces, service accounts ...)   ready: the `default` ServiceAccount exists
//! ```
//!
//! There is no kubelet and no scheduler: Deployments and StatefulSets create Pod objects,
//! which stay Pending. Every control plane has its own temp dir and ports, so tests may start
//! several in parallel (5-10 s to start and ~450 MB of memory each).
//!
//! No orphans: `Drop` stops the processes (SIGTERM, then SIGKILL after a grace period) and
//! removes the directory. When `Drop` never runs (the test binary is killed), the watchdog
//! does it: the kernel closes its pipe when this process exits, however it exits.
//!
//! Missing binaries are an error, never a skip: the message names the script to run.
//!
//! The `kubectl*` and `service_account_kubeconfig` methods block (they run kubectl, a few
//! hundred ms each); call them from async tests directly or through `spawn_blocking`.

use crate::watchdog::Watchdog;
use std::ffi::OsString;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use rcgen::KeyPair;

use crate::tls::Pki;

/// The services' cluster IP range; the apiserver takes the first address for the
/// `kubernetes` Service. Traffic reaches these addresses only where a test makes them local
/// (k8s-tests' stand-in kubelet routes the range to its own proxy on this machine).
pub const SERVICE_CLUSTER_IP_RANGE: &str = "10.244.0.0/24";
/// The service-account token issuer, as in a default cluster.
const SERVICE_ACCOUNT_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
/// The user the controller-manager authenticates as; the bootstrap RBAC policy binds its role.
const CONTROLLER_MANAGER_USER: &str = "system:kube-controller-manager";
/// The user of [`ControlPlane::admin_kubeconfig`], in group `system:masters`.
const ADMIN_USER: &str = "ferrite-admin";
/// How long [`ControlPlane::service_account_kubeconfig`] tokens are valid: longer than any
/// test session that uses them.
const SERVICE_ACCOUNT_TOKEN_DURATION: &str = "24h";
/// The name of the cluster and context in the kubeconfigs written here.
const CLUSTER_NAME: &str = "ferrite-test";

/// Attempts with new ports when another process took one we picked.
const PORT_ATTEMPTS: usize = 5;
/// How long one component may take to become ready (the apiserver needs ~4 s when idle).
const START_TIMEOUT: Duration = Duration::from_secs(90);
/// How long the controller-manager may take to create the `default` ServiceAccount.
const CONTROLLERS_TIMEOUT: Duration = Duration::from_secs(60);
/// How long `Drop` waits after SIGTERM before it sends SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// Log lines quoted in a start failure.
const LOG_TAIL_LINES: usize = 40;

/// A real control plane: etcd + kube-apiserver (+ kube-controller-manager), on loopback
/// ports, in a temp dir. Stopped and removed on drop.
#[derive(Debug)]
pub struct ControlPlane {
    binaries: Binaries,
    /// The temp dir: certificates, kubeconfigs, etcd data, logs and pid files.
    root: tempfile::TempDir,
    url: String,
    ca_pem: String,
    admin_token: String,
    admin_kubeconfig: PathBuf,
    /// The controller-manager's bearer token (in tokens.csv).
    controller_manager_token: String,
    /// Running components, in start order.
    processes: Vec<Process>,
    watchdog: Option<Watchdog>,
}

/// A running component.
#[derive(Debug)]
struct Process {
    name: &'static str,
    child: Child,
}

impl Process {
    /// SIGTERM, then SIGKILL after [`STOP_GRACE`]; true when the process is gone.
    fn stop(&mut self) -> bool {
        let running = |child: &mut Child| matches!(child.try_wait(), Ok(None));
        if !running(&mut self.child) {
            return true;
        }
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if !running(&mut self.child) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child.kill().is_ok() && self.child.wait().is_ok()
    }
}

/// The programs a control plane runs.
#[derive(Debug, Clone)]
struct Binaries {
    etcd: PathBuf,
    kube_apiserver: PathBuf,
    kube_controller_manager: PathBuf,
    kubectl: PathBuf,
}

/// How to tell that a freshly started component is up.
struct Probe {
    url: String,
    client: reqwest::Client,
}

impl ControlPlane {
    /// etcd and kube-apiserver only; ready when `/readyz` answers 200 (about 5 s).
    ///
    /// Without the controller-manager nothing acts on objects: no ServiceAccount `default`,
    /// no Pods from Deployments. Namespaces, RBAC and service-account tokens work.
    /// Fails — never skips — when a binary is missing, naming the script that installs it.
    pub async fn start() -> Result<Self> {
        let mut plane = Self::prepare()?;
        plane.start_etcd_and_apiserver().await?;
        Ok(plane)
    }

    /// Also kube-controller-manager (every controller but node lifecycle, which would mark
    /// hand-made Nodes NotReady); ready when the `default` ServiceAccount of namespace
    /// `default` exists, so Pods may be created.
    pub async fn start_with_controllers() -> Result<Self> {
        let mut plane = Self::prepare()?;
        plane.start_etcd_and_apiserver().await?;
        plane.start_controller_manager().await?;
        plane.wait_for_default_service_account().await?;
        Ok(plane)
    }

    /// `https://127.0.0.1:PORT`, the apiserver.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A kubeconfig whose user is in `system:masters` (may do anything), the CA embedded.
    pub fn admin_kubeconfig(&self) -> &Path {
        &self.admin_kubeconfig
    }

    /// The bearer token of [`Self::admin_kubeconfig`], for HTTP clients.
    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    /// The CA that signed the apiserver's certificate, PEM.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// [`Self::ca_pem`] as a file.
    pub fn ca_file(&self) -> PathBuf {
        self.pki().join("ca.crt")
    }

    /// The temp dir; `<component>.log` in it are the logs of etcd, kube-apiserver and
    /// kube-controller-manager.
    pub fn dir(&self) -> &Path {
        self.root.path()
    }

    /// Run kubectl with the admin kubeconfig; its stdout, or an error with its stderr on a
    /// non-zero exit.
    pub fn kubectl(&self, args: &[&str]) -> Result<String> {
        self.run_kubectl(&self.admin_kubeconfig, args, None)
    }

    /// [`Self::kubectl`] with `stdin` on kubectl's standard input (`apply -f -`).
    pub fn kubectl_stdin(&self, args: &[&str], stdin: &str) -> Result<String> {
        self.run_kubectl(&self.admin_kubeconfig, args, Some(stdin))
    }

    /// Run kubectl with another kubeconfig, e.g. one from
    /// [`Self::service_account_kubeconfig`].
    pub fn kubectl_as(&self, kubeconfig: &Path, args: &[&str]) -> Result<String> {
        self.run_kubectl(kubeconfig, args, None)
    }

    /// A kubeconfig for ServiceAccount `name` in `namespace` (both created if missing), with
    /// a token from the TokenRequest API: whoever uses it has exactly that account's RBAC
    /// rights. Its context's namespace is `namespace`.
    pub fn service_account_kubeconfig(&self, namespace: &str, name: &str) -> Result<PathBuf> {
        self.create_if_missing(&["create", "namespace", namespace])?;
        self.create_if_missing(&["create", "serviceaccount", name, "-n", namespace])?;
        let token = self
            .kubectl(&[
                "create",
                "token",
                name,
                "-n",
                namespace,
                "--duration",
                SERVICE_ACCOUNT_TOKEN_DURATION,
            ])
            .with_context(|| format!("requesting a token for ServiceAccount {namespace}/{name}"))?;
        let dir = self.root.path().join("kubeconfigs");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(format!("{namespace}.{name}.kubeconfig"));
        let user = format!("system:serviceaccount:{namespace}:{name}");
        write_kubeconfig(
            &path,
            &self.url,
            &self.ca_pem,
            &user,
            token.trim(),
            Some(namespace),
        )?;
        Ok(path)
    }

    /// Binaries, temp dir, certificates, tokens and the watchdog; nothing runs yet.
    fn prepare() -> Result<Self> {
        let binaries = Binaries::find()?;
        let root = tempfile::Builder::new()
            .prefix("ferrite-kube-")
            .tempdir()
            .context("creating a temp dir for the Kubernetes control plane")?;
        let pki = root.path().join("pki");
        let ca_pem = write_pki(&pki)?;
        let admin_token = random_token()?;
        let controller_manager_token = random_token()?;
        // token,user,uid,"groups"
        let tokens = format!(
            "{admin_token},{ADMIN_USER},{ADMIN_USER},\"system:masters\"\n\
             {controller_manager_token},{CONTROLLER_MANAGER_USER},{CONTROLLER_MANAGER_USER}\n"
        );
        std::fs::write(root.path().join("tokens.csv"), tokens).context("writing tokens.csv")?;
        let mut plane = Self {
            binaries,
            admin_kubeconfig: root.path().join("admin.kubeconfig"),
            root,
            url: String::new(),
            ca_pem,
            admin_token,
            controller_manager_token,
            processes: Vec::new(),
            watchdog: None,
        };
        // The watchdog before any process: from here on they and the directory are cleaned
        // up however we exit.
        plane.watchdog = Some(plane.spawn_watchdog()?);
        Ok(plane)
    }

    async fn start_etcd_and_apiserver(&mut self) -> Result<()> {
        let root = self.root.path().to_path_buf();
        let plain = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .context("building an HTTP client")?;
        let etcd = self.binaries.etcd.clone();
        let ports = self
            .launch(
                "etcd",
                &etcd,
                2,
                |p| {
                    let client = format!("http://127.0.0.1:{}", p[0]);
                    let peer = format!("http://127.0.0.1:{}", p[1]);
                    os_args([
                        "--name=ferrite-test".into(),
                        format!("--data-dir={}", root.join("etcd").display()),
                        format!("--listen-client-urls={client}"),
                        format!("--advertise-client-urls={client}"),
                        format!("--listen-peer-urls={peer}"),
                        format!("--initial-advertise-peer-urls={peer}"),
                        format!("--initial-cluster=ferrite-test={peer}"),
                        "--logger=zap".into(),
                        "--log-outputs=stderr".into(),
                        "--log-level=warn".into(),
                    ])
                },
                |p| Probe {
                    url: format!("http://127.0.0.1:{}/health", p[0]),
                    client: plain.clone(),
                },
            )
            .await?;
        let etcd_url = format!("http://127.0.0.1:{}", ports[0]);

        let pki = self.pki();
        let trusting = self.api_client()?;
        let apiserver = self.binaries.kube_apiserver.clone();
        let ports = self
            .launch(
                "kube-apiserver",
                &apiserver,
                1,
                |p| {
                    os_args([
                        format!("--etcd-servers={etcd_url}"),
                        "--bind-address=127.0.0.1".into(),
                        "--advertise-address=127.0.0.1".into(),
                        format!("--secure-port={}", p[0]),
                        // The `kubernetes` Service's endpoints may not be loopback addresses:
                        // without this the apiserver logs errors in a loop.
                        "--endpoint-reconciler-type=none".into(),
                        format!("--cert-dir={}", pki.display()),
                        format!("--tls-cert-file={}", pki.join("apiserver.crt").display()),
                        format!(
                            "--tls-private-key-file={}",
                            pki.join("apiserver.key").display()
                        ),
                        format!("--client-ca-file={}", pki.join("ca.crt").display()),
                        format!("--token-auth-file={}", root.join("tokens.csv").display()),
                        "--authorization-mode=RBAC".into(),
                        format!("--service-account-issuer={SERVICE_ACCOUNT_ISSUER}"),
                        format!(
                            "--service-account-key-file={}",
                            pki.join("sa.pub").display()
                        ),
                        format!(
                            "--service-account-signing-key-file={}",
                            pki.join("sa.key").display()
                        ),
                        format!("--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}"),
                        "--profiling=false".into(),
                    ])
                },
                |p| Probe {
                    url: format!("https://127.0.0.1:{}/readyz", p[0]),
                    client: trusting.clone(),
                },
            )
            .await?;
        self.url = format!("https://127.0.0.1:{}", ports[0]);
        write_kubeconfig(
            &self.admin_kubeconfig,
            &self.url,
            &self.ca_pem,
            ADMIN_USER,
            &self.admin_token,
            None,
        )
    }

    async fn start_controller_manager(&mut self) -> Result<()> {
        let root = self.root.path().to_path_buf();
        let pki = self.pki();
        let kubeconfig = root.join("controller-manager.kubeconfig");
        write_kubeconfig(
            &kubeconfig,
            &self.url,
            &self.ca_pem,
            CONTROLLER_MANAGER_USER,
            &self.controller_manager_token,
            None,
        )?;
        // Its serving certificate is self-signed, and with no authentication/authorization
        // kubeconfig it serves only the always-allowed paths: /healthz is a liveness probe.
        let insecure = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .danger_accept_invalid_certs(true)
            .build()
            .context("building an HTTP client")?;
        let program = self.binaries.kube_controller_manager.clone();
        self.launch(
            "kube-controller-manager",
            &program,
            1,
            |p| {
                os_args([
                    format!("--kubeconfig={}", kubeconfig.display()),
                    // Each controller acts as its own ServiceAccount with its bootstrap role,
                    // as in a kubeadm cluster.
                    "--use-service-account-credentials=true".into(),
                    "--leader-elect=false".into(),
                    "--bind-address=127.0.0.1".into(),
                    format!("--secure-port={}", p[0]),
                    format!("--cert-dir={}", root.join("controller-manager").display()),
                    // Without a kubelet, Nodes made by hand would turn NotReady after ~50 s
                    // and take their Pods' Ready condition with them.
                    "--controllers=*,-node-lifecycle-controller".into(),
                    format!(
                        "--service-account-private-key-file={}",
                        pki.join("sa.key").display()
                    ),
                    format!("--root-ca-file={}", pki.join("ca.crt").display()),
                    format!(
                        "--cluster-signing-cert-file={}",
                        pki.join("ca.crt").display()
                    ),
                    format!(
                        "--cluster-signing-key-file={}",
                        pki.join("ca.key").display()
                    ),
                    format!("--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}"),
                    // The default is under /usr/libexec.
                    format!(
                        "--flex-volume-plugin-dir={}",
                        root.join("flexvolume").display()
                    ),
                    "--profiling=false".into(),
                ])
            },
            |p| Probe {
                url: format!("https://127.0.0.1:{}/healthz", p[0]),
                client: insecure.clone(),
            },
        )
        .await?;
        Ok(())
    }

    /// The controller-manager creates the ServiceAccount `default` in every namespace; Pods
    /// cannot be created in a namespace before it exists.
    async fn wait_for_default_service_account(&mut self) -> Result<()> {
        let client = self.api_client()?;
        let url = format!(
            "{}/api/v1/namespaces/default/serviceaccounts/default",
            self.url
        );
        let deadline = Instant::now() + CONTROLLERS_TIMEOUT;
        loop {
            self.check_running()?;
            let response = client.get(&url).bearer_auth(&self.admin_token).send().await;
            if let Ok(r) = response
                && r.status().is_success()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "kube-controller-manager did not create ServiceAccount default/default in \
                     {CONTROLLERS_TIMEOUT:?}; last lines of {}:\n{}",
                    self.log_path("kube-controller-manager").display(),
                    tail(&self.log_path("kube-controller-manager"))
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Start `name` on fresh ports (`ports` of them) until none is taken by another process,
    /// and wait until its probe answers 2xx. Returns the ports.
    async fn launch(
        &mut self,
        name: &'static str,
        program: &Path,
        ports: usize,
        args: impl Fn(&[u16]) -> Vec<OsString>,
        probe: impl Fn(&[u16]) -> Probe,
    ) -> Result<Vec<u16>> {
        let log_path = self.log_path(name);
        for attempt in 1..=PORT_ATTEMPTS {
            let picked = free_ports(ports)?;
            // A fresh log per attempt: an "address already in use" in it is this attempt's.
            let log = std::fs::File::create(&log_path)
                .with_context(|| format!("creating {}", log_path.display()))?;
            let mut command = Command::new(program);
            command
                .args(args(&picked))
                .stdin(Stdio::null())
                .stdout(Stdio::from(log.try_clone()?))
                .stderr(Stdio::from(log));
            // etcd reads its flags from ETCD_* variables too; only ours count.
            for (key, _) in std::env::vars_os() {
                if key.to_string_lossy().starts_with("ETCD_") {
                    command.env_remove(key);
                }
            }
            let child = command
                .spawn()
                .with_context(|| format!("starting {}", program.display()))?;
            // The watchdog kills whatever pid is here when this process dies.
            let pid_path = self.root.path().join(format!("{name}.pid"));
            std::fs::write(&pid_path, child.id().to_string())
                .with_context(|| format!("writing {}", pid_path.display()))?;
            self.processes.push(Process { name, child });
            let probe = probe(&picked);
            match self.wait_ready(&probe).await {
                Ok(()) => return Ok(picked),
                Err(e) => {
                    if let Some(mut failed) = self.processes.pop() {
                        let _ = failed.child.kill();
                        let _ = failed.child.wait();
                    }
                    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                    if !log.contains("address already in use") || attempt == PORT_ATTEMPTS {
                        return Err(e);
                    }
                }
            }
        }
        Err(anyhow!("{name} did not start in {PORT_ATTEMPTS} attempts"))
    }

    /// Poll `probe` until it answers 2xx; fail when the newest process exits or the time is up.
    async fn wait_ready(&mut self, probe: &Probe) -> Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            self.check_running()?;
            if let Ok(r) = probe.client.get(&probe.url).send().await
                && r.status().is_success()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                let name = self.processes.last().map_or("?", |p| p.name);
                bail!(
                    "{name} did not become ready ({} did not answer 2xx) in {START_TIMEOUT:?}; \
                     last lines of {}:\n{}",
                    probe.url,
                    self.log_path(name).display(),
                    tail(&self.log_path(name))
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// An error with the log's tail when a component has exited.
    fn check_running(&mut self) -> Result<()> {
        for process in &mut self.processes {
            if let Some(status) = process.child.try_wait()? {
                let log = self.root.path().join(format!("{}.log", process.name));
                bail!(
                    "{} exited with {status}; last lines of {}:\n{}",
                    process.name,
                    log.display(),
                    tail(&log)
                );
            }
        }
        Ok(())
    }

    /// An HTTP client that trusts the apiserver's CA.
    fn api_client(&self) -> Result<reqwest::Client> {
        let ca = reqwest::Certificate::from_pem(self.ca_pem.as_bytes())
            .context("parsing the control plane's CA certificate")?;
        reqwest::Client::builder()
            .add_root_certificate(ca)
            .timeout(Duration::from_secs(2))
            .build()
            .context("building an HTTP client for the apiserver")
    }

    fn run_kubectl(&self, kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> Result<String> {
        let mut command = Command::new(&self.binaries.kubectl);
        command
            .arg("--kubeconfig")
            .arg(kubeconfig)
            // Discovery cache in the temp dir, not ~/.kube.
            .arg("--cache-dir")
            .arg(self.root.path().join("kubectl-cache"))
            .args(args)
            .env_remove("KUBECONFIG")
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let what = format!("kubectl {}", args.join(" "));
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {}", self.binaries.kubectl.display()))?;
        // Written from a thread: kubectl may fill its stdout pipe before it reads all input.
        let writer = match (stdin, child.stdin.take()) {
            (Some(input), Some(mut pipe)) => {
                let input = input.to_string();
                Some(std::thread::spawn(move || pipe.write_all(input.as_bytes())))
            }
            _ => None,
        };
        let output = child
            .wait_with_output()
            .with_context(|| format!("waiting for {what}"))?;
        if let Some(writer) = writer {
            writer
                .join()
                .map_err(|_| anyhow!("the thread writing stdin of {what} panicked"))?
                .with_context(|| format!("writing stdin of {what}"))?;
        }
        if !output.status.success() {
            bail!(
                "{what} failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        String::from_utf8(output.stdout).with_context(|| format!("{what} printed non-UTF-8"))
    }

    /// `kubectl create ...`, where an object that exists already is fine.
    fn create_if_missing(&self, args: &[&str]) -> Result<()> {
        match self.kubectl(args) {
            Ok(_) => Ok(()),
            // kubectl says "AlreadyExists" or "already exists", depending on the command.
            Err(e)
                if format!("{e}")
                    .to_lowercase()
                    .replace(' ', "")
                    .contains("alreadyexists") =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Start the watchdog: it blocks reading its stdin; EOF means this process is gone (or
    /// `Drop` ran), so it kills every component whose pid is in a `*.pid` file and removes
    /// the temp dir. A pid is killed only if that process's command line names our temp dir
    /// (no stray kills after pid reuse); all of ours do, in a path flag.
    fn spawn_watchdog(&self) -> Result<Watchdog> {
        let script = r#"
            read -r msg
            if [ "$msg" != stopped ]; then
                pids=
                for f in "$1"/*.pid; do
                    [ -f "$f" ] || continue
                    pid=$(cat "$f")
                    if tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -qF "$1/"; then
                        kill -9 "$pid" 2>/dev/null && pids="$pids $pid"
                    fi
                done
                # Dead before the directory goes, so nothing writes into it afterwards.
                for _ in 1 2 3 4 5 6 7 8 9 10; do
                    alive=
                    for pid in $pids; do [ -d "/proc/$pid" ] && alive=1; done
                    [ -z "$alive" ] && break
                    sleep 0.2
                done
            fi
            rm -rf "$1"
        "#;
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("ferrite-kube-watchdog")
            .arg(self.root.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("spawning the Kubernetes control plane watchdog")?;
        let stdin = child.stdin.take();
        Ok(Watchdog { child, stdin })
    }

    /// Stop the components in reverse start order, each with SIGTERM and, if it still runs
    /// after [`STOP_GRACE`], SIGKILL. One by one: the apiserver stops in about a second while
    /// etcd is up, but keeps retrying for many seconds when etcd went first. True when all
    /// are gone.
    fn stop_all(&mut self) -> bool {
        let mut stopped = true;
        while let Some(mut process) = self.processes.pop() {
            stopped &= process.stop();
        }
        stopped
    }

    fn pki(&self) -> PathBuf {
        self.root.path().join("pki")
    }

    fn log_path(&self, name: &str) -> PathBuf {
        self.root.path().join(format!("{name}.log"))
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        let stopped = self.stop_all();
        if let Some(watchdog) = self.watchdog.take() {
            watchdog.finish(stopped);
        }
    }
}

impl Binaries {
    /// kube-apiserver, kube-controller-manager and kubectl from
    /// `${FERRITE_TOOLS_DIR:-$HOME/.cache/ferrite-tools}/bin` (install-kube.sh puts them
    /// there); etcd from PATH or /usr/bin (Debian's etcd-server).
    fn find() -> Result<Self> {
        let tools = crate::tools_bin_dir()?;
        let tool = |name: &str| -> Result<PathBuf> {
            let path = tools.join(name);
            if path.is_file() {
                return Ok(path);
            }
            bail!(
                "{name} was not found at {}. The Kubernetes tests need a real control plane and \
                 never skip: run `bash deploy/dev/install-kube.sh` (or `make test`, which runs it \
                 through deploy/dev/setup.sh) to build it from the Go module proxy.",
                path.display()
            )
        };
        let etcd = on_path("etcd")
            .or_else(|| Some(PathBuf::from("/usr/bin/etcd")).filter(|p| p.is_file()))
            .context(
                "etcd was not found on PATH or at /usr/bin/etcd. The Kubernetes tests need it as \
                 the apiserver's storage and never skip: run `bash deploy/dev/setup.sh` (it \
                 installs Debian's etcd-server) or `apt-get install -y etcd-server`.",
            )?;
        Ok(Self {
            etcd,
            kube_apiserver: tool("kube-apiserver")?,
            kube_controller_manager: tool("kube-controller-manager")?,
            kubectl: tool("kubectl")?,
        })
    }
}

/// Write into `dir`: `ca.crt`/`ca.key`, `apiserver.crt`/`apiserver.key` (signed by the CA,
/// for 127.0.0.1 and the in-cluster names) and the service-account token key pair
/// `sa.key`/`sa.pub`. Returns the CA certificate, PEM.
fn write_pki(dir: &Path) -> Result<String> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    // 10.244.0.1: the `kubernetes` Service's cluster IP (the first of
    // SERVICE_CLUSTER_IP_RANGE), which in-cluster clients use.
    let names = [
        "127.0.0.1",
        "10.244.0.1",
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
    ];
    let pki = Pki::issue(
        "ferrite test kubernetes CA",
        "kube-apiserver",
        &names.map(String::from),
    )?;

    let sa_key = KeyPair::generate()?;
    let files = [
        ("ca.crt", pki.ca_pem.clone()),
        ("ca.key", pki.ca_key_pem),
        ("apiserver.crt", pki.cert_pem),
        ("apiserver.key", pki.key_pem),
        ("sa.key", sa_key.serialize_pem()),
        ("sa.pub", sa_key.public_key_pem()),
    ];
    for (name, pem) in files {
        std::fs::write(dir.join(name), pem)
            .with_context(|| format!("writing {}", dir.join(name).display()))?;
    }
    Ok(pki.ca_pem)
}

/// A kubeconfig (JSON, which kubectl and client libraries read as YAML) for `user` with a
/// bearer token, the CA embedded.
fn write_kubeconfig(
    path: &Path,
    server: &str,
    ca_pem: &str,
    user: &str,
    token: &str,
    namespace: Option<&str>,
) -> Result<()> {
    let mut context = serde_json::json!({ "cluster": CLUSTER_NAME, "user": user });
    if let Some(namespace) = namespace {
        context["namespace"] = namespace.into();
    }
    let config = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{
            "name": CLUSTER_NAME,
            "cluster": {
                "server": server,
                "certificate-authority-data":
                    base64::engine::general_purpose::STANDARD.encode(ca_pem),
            },
        }],
        "users": [{ "name": user, "user": { "token": token } }],
        "contexts": [{ "name": CLUSTER_NAME, "context": context }],
        "current-context": CLUSTER_NAME,
    });
    let text = serde_json::to_string_pretty(&config)?;
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// 128 random bits, hex: a bearer token for tokens.csv.
fn random_token() -> Result<String> {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("reading /dev/urandom for a token")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// `n` distinct ports that were free a moment ago. Another process may take one before the
/// component binds it; [`ControlPlane::launch`] retries with new ones then.
fn free_ports(n: usize) -> Result<Vec<u16>> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").context("finding a free TCP port"))
        .collect::<Result<Vec<_>>>()?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect()
}

/// The last [`LOG_TAIL_LINES`] lines of a log file.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
}

fn os_args<const N: usize>(args: [String; N]) -> Vec<OsString> {
    args.into_iter().map(OsString::from).collect()
}

fn on_path(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Poll `check` every 200 ms until it returns `Some`, for at most `timeout`.
    async fn eventually<T>(
        what: &str,
        timeout: Duration,
        mut check: impl FnMut() -> Result<Option<T>>,
    ) -> Result<T> {
        let deadline = Instant::now() + timeout;
        let mut last = String::new();
        loop {
            match check() {
                Ok(Some(value)) => return Ok(value),
                Ok(None) => {}
                Err(e) => last = format!("{e:#}"),
            }
            if Instant::now() > deadline {
                bail!("{what} did not happen in {timeout:?}; last error: {last}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    #[tokio::test]
    async fn controllers_create_pods_and_rbac_limits_a_service_account() -> Result<()> {
        let plane = ControlPlane::start_with_controllers().await?;
        assert!(plane.url().starts_with("https://127.0.0.1:"));
        assert!(plane.ca_pem().starts_with("-----BEGIN CERTIFICATE-----"));

        // The Deployment controller makes a ReplicaSet, the ReplicaSet controller its Pods;
        // without a kubelet they stay Pending.
        plane.kubectl(&["create", "namespace", "app"])?;
        plane.kubectl(&[
            "create",
            "deployment",
            "web",
            "--image=registry.invalid/web:1",
            "--replicas=2",
            "-n",
            "app",
        ])?;
        let phases = eventually("2 Pods of Deployment web", Duration::from_secs(20), || {
            let out = plane.kubectl(&[
                "get",
                "pods",
                "-n",
                "app",
                "-l",
                "app=web",
                "-o",
                "jsonpath={.items[*].status.phase}",
            ])?;
            let phases: Vec<String> = out.split_whitespace().map(String::from).collect();
            Ok((phases.len() == 2).then_some(phases))
        })
        .await?;
        assert_eq!(phases, ["Pending", "Pending"]);

        // A ServiceAccount has no rights until a binding grants some.
        let reader = plane.service_account_kubeconfig("app", "reader")?;
        let denied = plane
            .kubectl_as(&reader, &["get", "pods"])
            .expect_err("a ServiceAccount without bindings listed pods");
        assert!(format!("{denied}").contains("Forbidden"), "{denied}");

        plane.kubectl(&[
            "create",
            "role",
            "endpointslice-reader",
            "-n",
            "app",
            "--verb=get,list,watch",
            "--resource=endpointslices.discovery.k8s.io",
        ])?;
        plane.kubectl(&[
            "create",
            "rolebinding",
            "reader",
            "-n",
            "app",
            "--role=endpointslice-reader",
            "--serviceaccount=app:reader",
        ])?;
        // The authorizer sees the binding through an informer: allow it a moment.
        eventually(
            "listing EndpointSlices as app:reader",
            Duration::from_secs(10),
            || {
                plane
                    .kubectl_as(&reader, &["get", "endpointslices", "-n", "app"])
                    .map(Some)
            },
        )
        .await?;
        let denied = plane
            .kubectl_as(&reader, &["get", "secrets", "-n", "app"])
            .expect_err("the EndpointSlice reader listed secrets");
        assert!(format!("{denied}").contains("Forbidden"), "{denied}");
        Ok(())
    }
}
