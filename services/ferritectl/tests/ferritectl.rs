//! ferritectl end to end: the real `ferritectl` binary, run as a subprocess, against a real
//! `ferrite serve` (and, once, a cluster's router). Every command runs with a throwaway
//! HOME, so no real config file or admin token is read.
//!
//! The server binary is `$CARGO_TARGET_DIR/debug/ferrite` (next to this test's `deps/`
//! directory), or `FERRITE_BIN`. `cargo test --workspace` builds it; `cargo test -p
//! ferritectl` alone does not, so build it first (`cargo build -p ferrite-server --bin
//! ferrite`) when testing this crate by itself.
//!
//! Management endpoints newer than the server under test (database update, delete, rename,
//! undelete; tables) are checked when the server has them and skipped with a note when it
//! answers "no such endpoint".

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use ferrite_testkit::cluster::{ClusterOptions, TestCluster};
use ferrite_testkit::server::FerriteServer;
use serde_json::Value;

fn ferrite_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("FERRITE_BIN") {
        return PathBuf::from(path);
    }
    // <target>/debug/deps/ferritectl-<hash> → <target>/debug/ferrite
    let exe = std::env::current_exe().expect("the test's own path");
    let path = exe
        .parent()
        .and_then(Path::parent)
        .map(|debug| debug.join("ferrite"))
        .expect("the test binary lives in <target>/debug/deps");
    assert!(
        path.exists(),
        "the ferrite server binary is not at {}: build it with `cargo build -p ferrite-server \
         --bin ferrite`, or name it with FERRITE_BIN",
        path.display()
    );
    path
}

async fn serve() -> FerriteServer {
    FerriteServer::start(&ferrite_binary(), &[])
        .await
        .expect("ferrite serve starts")
}

/// Runs `ferritectl` against one server with one token, with a private HOME.
struct Ctl {
    host: String,
    token: Option<String>,
    home: tempfile::TempDir,
}

/// What a run printed and how it ended.
#[derive(Debug)]
struct Run {
    ok: bool,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Self {
            ok: o.status.success(),
            code: o.status.code(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.stdout))
    }

    /// The server lacks an endpoint (or setting) this run needed.
    fn endpoint_missing(&self) -> bool {
        !self.ok
            && (self.stderr.contains("does not offer this API yet")
                || self.stderr.contains("does not know this setting yet"))
    }
}

impl Ctl {
    fn new(server_url: &str, token: Option<&str>) -> Self {
        Self {
            host: server_url.to_string(),
            token: token.map(str::to_string),
            home: tempfile::tempdir().unwrap(),
        }
    }

    fn for_server(server: &FerriteServer) -> Self {
        Self::new(&server.url(), server.admin_token())
    }

    /// The same server with another token.
    fn with_token(&self, token: &str) -> Self {
        Self::new(&self.host, Some(token))
    }

    /// `ferritectl --host H [--token T] <args>` with HOME and XDG_CONFIG_HOME private.
    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_ferritectl"));
        for var in [
            "FERRITE_HOST",
            "FERRITE_TOKEN",
            "FERRITECTL_PROFILE",
            "FERRITECTL_CONFIG",
        ] {
            c.env_remove(var);
        }
        c.env("HOME", self.home.path())
            .env("XDG_CONFIG_HOME", self.home.path().join(".config"))
            .arg("--host")
            .arg(&self.host);
        if let Some(token) = &self.token {
            c.arg("--token").arg(token);
        }
        c.args(args);
        c
    }

    fn run(&self, args: &[&str]) -> Run {
        self.run_with_stdin(args, None)
    }

    fn run_with_stdin(&self, args: &[&str], stdin: Option<&[u8]>) -> Run {
        let mut c = self.command(args);
        c.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = c.spawn().expect("ferritectl starts");
        if let Some(input) = stdin {
            let mut pipe = child.stdin.take().unwrap();
            let input = input.to_vec();
            // A writer thread, so a large input cannot deadlock against unread output.
            std::thread::spawn(move || pipe.write_all(&input));
        }
        child.wait_with_output().unwrap().into()
    }

    /// Run and require success; the output.
    fn ok(&self, args: &[&str]) -> Run {
        let run = self.run(args);
        assert!(run.ok, "ferritectl {args:?} failed: {run:#?}");
        run
    }

    /// Run and require failure; the output.
    fn fails(&self, args: &[&str]) -> Run {
        let run = self.run(args);
        assert!(!run.ok, "ferritectl {args:?} succeeded: {run:#?}");
        assert_eq!(run.code, Some(1), "{run:#?}");
        run
    }

    /// `SELECT count(*)` of a table, through ferritectl.
    fn count(&self, database: &str, table: &str) -> u64 {
        let run = self.ok(&[
            "query",
            "--database",
            database,
            "--format",
            "json",
            &format!("SELECT count(*) AS n FROM {table}"),
        ]);
        run.json()[0]["n"].as_u64().expect("a count")
    }
}

fn skip(what: &str, run: &Run) {
    println!(
        "NOTE: skipping {what}: the server does not offer it yet ({})",
        run.stderr.trim()
    );
}

#[tokio::test]
async fn databases_are_created_listed_and_managed() {
    let server = serve().await;
    let ctl = Ctl::for_server(&server);
    let created = ctl.ok(&["database", "create", "sensors"]);
    assert!(
        created.stdout.contains("database 'sensors' created"),
        "{created:?}"
    );

    let listed = ctl.ok(&["database", "list", "--format", "json"]).json();
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["sensors"]);
    assert!(listed[0]["id"].is_i64());
    let table = ctl.ok(&["database", "list"]);
    assert!(table.stdout.starts_with("ID  NAME"), "{table:?}");
    assert!(table.stdout.contains("sensors"), "{table:?}");

    let again = ctl.fails(&["database", "create", "sensors"]);
    assert!(
        again.stderr.contains("409") && again.stderr.contains("already exists"),
        "{again:?}"
    );

    // What the other engineer's endpoints add: limits, update, delete, rename, undelete.
    let run = ctl.run(&[
        "database",
        "create",
        "--retention-period",
        "30d",
        "--max-tables",
        "7",
        "--max-columns",
        "9",
        "limited",
    ]);
    if run.endpoint_missing() {
        skip("database limits", &run);
    } else {
        assert!(run.ok, "{run:?}");
        let dbs = ctl.ok(&["database", "list", "--format", "json"]).json();
        let limited = dbs
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["name"] == "limited")
            .unwrap()
            .clone();
        assert_eq!(limited["retentionPeriod"], 30 * 86_400 * 1_000_000_000_u64);
        assert_eq!(limited["maxTables"], 7);
        assert_eq!(limited["maxColumnsPerTable"], 9);
        let table = ctl.ok(&["database", "list"]);
        assert!(table.stdout.contains("30d"), "{table:?}");
    }

    let run = ctl.run(&[
        "database",
        "update",
        "--retention-period",
        "infinite",
        "sensors",
    ]);
    if run.endpoint_missing() {
        skip("database update", &run);
    } else {
        assert!(run.ok, "{run:?}");
        let dbs = ctl.ok(&["database", "list", "--format", "json"]).json();
        let sensors = dbs
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["name"] == "sensors")
            .unwrap()
            .clone();
        assert_eq!(sensors["retentionPeriod"], 0);
    }

    // Without --force and without a terminal, nothing is deleted.
    let refused = ctl.fails(&["database", "delete", "sensors"]);
    assert!(refused.stderr.contains("--force"), "{refused:?}");

    let run = ctl.run(&["database", "delete", "--force", "sensors"]);
    if run.endpoint_missing() {
        skip("database delete, undelete and rename", &run);
        return;
    }
    assert!(run.ok, "{run:?}");
    let active = ctl.ok(&["database", "list", "--format", "json"]).json();
    assert!(
        !active
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["name"] == "sensors"),
        "{active}"
    );
    let deleted = ctl
        .ok(&[
            "database",
            "list",
            "--filter-status",
            "deleted",
            "--format",
            "json",
        ])
        .json();
    let deleted = deleted.as_array().unwrap();
    assert!(
        deleted
            .iter()
            .any(|d| d["name"] == "sensors" && d["deletedAt"].is_string()),
        "{deleted:?}"
    );

    ctl.ok(&["database", "undelete", "sensors"]);
    ctl.ok(&["database", "rename", "sensors", "sensors_v1"]);
    let names: BTreeSet<String> = ctl
        .ok(&["database", "list", "--format", "json"])
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap().to_string())
        .collect();
    assert!(
        names.contains("sensors_v1") && !names.contains("sensors"),
        "{names:?}"
    );
    let missing = ctl.fails(&["database", "undelete", "never-existed"]);
    assert!(
        missing.stderr.contains("no deleted database named"),
        "{missing:?}"
    );
}

#[tokio::test]
async fn tables_are_created_listed_and_managed() {
    let server = serve().await;
    let ctl = Ctl::for_server(&server);
    ctl.ok(&["database", "create", "plant"]);
    let run = ctl.run(&["table", "create", "plant", "boilers"]);
    if run.endpoint_missing() {
        skip("the table commands", &run);
        return;
    }
    assert!(run.ok, "{run:?}");
    ctl.ok(&["write", "--database", "plant", "pumps,id=1 rpm=1200i 1"]);
    let names = |status: &str| -> BTreeSet<String> {
        ctl.ok(&[
            "table",
            "list",
            "--filter-status",
            status,
            "--format",
            "json",
            "plant",
        ])
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect()
    };
    assert_eq!(
        names("active"),
        ["boilers", "pumps"].map(String::from).into()
    );

    let refused = ctl.fails(&["table", "delete", "plant", "pumps"]);
    assert!(refused.stderr.contains("--force"), "{refused:?}");
    ctl.ok(&["table", "delete", "--force", "plant", "pumps"]);
    assert_eq!(names("active"), ["boilers"].map(String::from).into());
    assert_eq!(names("deleted"), ["pumps"].map(String::from).into());
    ctl.ok(&["table", "undelete", "plant", "pumps"]);
    ctl.ok(&["table", "rename", "plant", "boilers", "kettles"]);
    assert_eq!(
        names("active"),
        ["kettles", "pumps"].map(String::from).into()
    );
    assert_eq!(
        ctl.count("plant", "pumps"),
        1,
        "an undeleted table keeps its rows"
    );
}

#[tokio::test]
async fn caches_are_created_listed_queried_and_deleted() {
    let server = serve().await;
    let ctl = Ctl::for_server(&server);
    ctl.ok(&[
        "write",
        "--database",
        "fleet",
        "cpu,host=a,region=eu usage=1 1\ncpu,host=a,region=eu usage=2 2\ncpu,host=b usage=3 3",
    ]);
    ctl.ok(&[
        "cache",
        "create-last",
        "--key-columns",
        "host",
        "--value-columns",
        "usage",
        "--ttl",
        "1h",
        "fleet",
        "cpu",
    ]);
    ctl.ok(&[
        "cache",
        "create-distinct",
        "--columns",
        "region,host",
        "--name",
        "hosts",
        "fleet",
        "cpu",
    ]);
    let refused = ctl.fails(&[
        "cache",
        "create-last",
        "--key-columns",
        "usage",
        "fleet",
        "cpu",
    ]);
    assert!(
        refused.stderr.contains("key columns must be tags"),
        "{refused:?}"
    );
    let refused = ctl.fails(&[
        "cache",
        "create-distinct",
        "--columns",
        "host",
        "--name",
        "hosts",
        "fleet",
        "cpu",
    ]);
    assert!(
        refused
            .stderr
            .contains("already has a distinct cache named 'hosts'"),
        "{refused:?}"
    );

    let listed = ctl.ok(&["cache", "list", "fleet"]);
    assert!(listed.stdout.contains("cpu_host_last_cache"), "{listed:?}");
    assert!(listed.stdout.contains("host -> usage,time"), "{listed:?}");
    assert!(listed.stdout.contains("count 1, ttl 3600s"), "{listed:?}");
    let listed = ctl
        .ok(&["cache", "list", "--format", "json", "fleet"])
        .json();
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    let last = ctl.ok(&[
        "query",
        "--database",
        "fleet",
        "--format",
        "csv",
        "SELECT host, usage FROM last_cache('cpu') ORDER BY host",
    ]);
    assert_eq!(last.stdout, "host,usage\na,2.0\nb,3.0\n");

    ctl.ok(&["cache", "delete", "fleet", "cpu", "distinct", "hosts"]);
    let refused = ctl.fails(&["cache", "delete", "fleet", "cpu", "distinct", "hosts"]);
    assert!(
        refused
            .stderr
            .contains("has no distinct cache named 'hosts'"),
        "{refused:?}"
    );
    let listed = ctl
        .ok(&["cache", "list", "--format", "json", "fleet"])
        .json();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
}

/// `token create` with `permissions` (as flags), returning (id, secret).
fn create_token(ctl: &Ctl, flags: &[&str], description: &str) -> (String, String) {
    let mut args = vec!["token", "create", "--format", "json"];
    args.extend_from_slice(flags);
    args.push(description);
    let created = ctl.ok(&args).json();
    let secret = created["accessToken"].as_str().unwrap().to_string();
    assert!(secret.starts_with("apiv1_"), "{created}");
    (created["id"].as_str().unwrap().to_string(), secret)
}

fn assert_denied(run: &Run, what: &str) {
    assert!(!run.ok, "{what} should be refused: {run:#?}");
    assert!(
        run.stderr.contains("403") && run.stderr.contains("permission"),
        "{what}: the error names the refusal: {run:#?}"
    );
}

#[tokio::test]
async fn tokens_grant_exactly_their_permissions() {
    let server = serve().await;
    let admin = Ctl::for_server(&server);
    admin.ok(&["database", "create", "metrics"]);
    admin.ok(&["database", "create", "other"]);

    let (rw_id, rw) = create_token(
        &admin,
        &["--read-database", "metrics", "--write-database", "metrics"],
        "read and write metrics",
    );
    let (_, ro) = create_token(&admin, &["--read-database", "metrics"], "read only");
    let (_, wo) = create_token(&admin, &["--write-database", "metrics"], "write only");
    let (_, star) = create_token(
        &admin,
        &["--read-database", "*", "--write-database", "*"],
        "everything",
    );
    let line = "cpu,host=a usage=1 1";
    let query = "SELECT count(*) AS n FROM cpu";

    let rw_ctl = admin.with_token(&rw);
    rw_ctl.ok(&["write", "--database", "metrics", line]);
    rw_ctl.ok(&["query", "--database", "metrics", query]);
    assert_denied(
        &rw_ctl.run(&["write", "--database", "other", line]),
        "a write to another database",
    );
    assert_denied(
        &rw_ctl.run(&["database", "list"]),
        "management with a database token",
    );

    let ro_ctl = admin.with_token(&ro);
    ro_ctl.ok(&["query", "--database", "metrics", query]);
    assert_denied(
        &ro_ctl.run(&["write", "--database", "metrics", line]),
        "a write with a read-only token",
    );

    let wo_ctl = admin.with_token(&wo);
    wo_ctl.ok(&["write", "--database", "metrics", "cpu,host=b usage=2 2"]);
    assert_denied(
        &wo_ctl.run(&["query", "--database", "metrics", query]),
        "a query with a write-only token",
    );

    // `*` covers every database, even one its writes create.
    let star_ctl = admin.with_token(&star);
    star_ctl.ok(&["write", "--database", "brand_new", line]);
    assert_eq!(star_ctl.count("brand_new", "cpu"), 1);
    assert_eq!(star_ctl.count("metrics", "cpu"), 2);

    // get, list, update
    let got = admin
        .ok(&["token", "get", "--format", "json", &rw_id])
        .json();
    assert_eq!(got["description"], "read and write metrics");
    assert!(
        got.get("accessToken").is_none(),
        "the secret is shown once only"
    );
    let listed = admin
        .ok(&["token", "list", "--format", "json", "--sort", "description"])
        .json();
    let descriptions: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["description"].as_str().unwrap())
        .collect();
    assert_eq!(
        descriptions,
        [
            "everything",
            "read and write metrics",
            "read only",
            "write only"
        ]
    );
    let updated = admin
        .ok(&[
            "token",
            "update",
            "--format",
            "json",
            "--read-database",
            "other",
            "--description",
            "now reads other",
            &rw_id,
        ])
        .json();
    assert_eq!(updated["description"], "now reads other");
    assert_eq!(
        updated["permissions"],
        serde_json::json!([{"action": "read", "resource": "other"}]),
        "permissions given to update replace the old ones"
    );
    assert_denied(
        &rw_ctl.run(&["write", "--database", "metrics", line]),
        "a write after the write permission was taken away",
    );
    rw_ctl.ok(&["query", "--database", "other", "SELECT 1"]);

    // revoke: refused without --force off a terminal, then done; the token stops working.
    let refused = admin.fails(&["token", "revoke", &rw_id]);
    assert!(refused.stderr.contains("--force"), "{refused:?}");
    admin.ok(&["token", "revoke", "--force", &rw_id]);
    let after = rw_ctl.fails(&["query", "--database", "other", "SELECT 1"]);
    assert!(after.stderr.contains("401"), "{after:?}");
    let active = admin.ok(&["token", "list", "--format", "json"]).json();
    assert_eq!(active.as_array().unwrap().len(), 3);
    let all = admin
        .ok(&["token", "list", "--format", "json", "--include-revoked"])
        .json();
    let revoked: Vec<&Value> = all
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["revokedAt"].is_string())
        .collect();
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0]["id"], rw_id.as_str());

    let table = admin.ok(&["token", "list"]);
    assert!(table.stdout.contains("read:metrics"), "{table:?}");
    let human = admin.ok(&["token", "create", "--read-database", "metrics", "human"]);
    assert!(
        human.stdout.contains("shown only this once") && human.stdout.contains("apiv1_"),
        "{human:?}"
    );
    let none = admin.fails(&["token", "create", "no permissions"]);
    assert!(none.stderr.contains("--read-database"), "{none:?}");
}

#[tokio::test]
async fn queries_print_in_every_format_from_every_source() {
    let server = serve().await;
    let ctl = Ctl::for_server(&server);
    ctl.ok(&[
        "write",
        "--database",
        "q",
        "--precision",
        "s",
        "cpu,host=a usage=0.5 1700000000\ncpu,host=b usage=1.5 1700000001",
    ]);
    let sql = "SELECT host, usage FROM cpu ORDER BY host";

    let table = ctl.ok(&["query", "--database", "q", sql]).stdout;
    assert!(table.contains("| host | usage |"), "{table}");
    assert!(table.contains("| a    | 0.5   |"), "{table}");

    let json = ctl
        .ok(&["query", "--database", "q", "--format", "json", sql])
        .json();
    assert_eq!(
        json,
        serde_json::json!([{"host": "a", "usage": 0.5}, {"host": "b", "usage": 1.5}])
    );

    let jsonl = ctl
        .ok(&["query", "--database", "q", "--format", "jsonl", sql])
        .stdout;
    let rows: Vec<Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows, json.as_array().unwrap().clone());

    let csv = ctl
        .ok(&["query", "--database", "q", "--format", "csv", sql])
        .stdout;
    assert_eq!(csv, "host,usage\na,0.5\nb,1.5\n");

    let empty = ctl
        .ok(&[
            "query",
            "--database",
            "q",
            "--format",
            "csv",
            "SELECT host FROM cpu WHERE false",
        ])
        .stdout;
    assert_eq!(empty, "host\n", "an empty result still has its header");
    let empty = ctl
        .ok(&[
            "query",
            "--database",
            "q",
            "--format",
            "json",
            "SELECT host FROM cpu WHERE false",
        ])
        .json();
    assert_eq!(empty, serde_json::json!([]));

    let count = "SELECT count(*) AS n FROM cpu";
    let from_stdin = ctl.run_with_stdin(
        &["query", "--database", "q", "--format", "json", "-"],
        Some(count.as_bytes()),
    );
    assert!(from_stdin.ok, "{from_stdin:?}");
    assert_eq!(from_stdin.json()[0]["n"], 2);
    let file = ctl.home.path().join("count.sql");
    std::fs::write(&file, format!("-- how many\n{count}\n")).unwrap();
    let from_file = ctl.ok(&[
        "query",
        "--database",
        "q",
        "--format",
        "json",
        "--file",
        file.to_str().unwrap(),
    ]);
    assert_eq!(from_file.json()[0]["n"], 2);

    let bad = ctl.fails(&["query", "--database", "q", "SELEC nonsense"]);
    assert!(bad.stderr.contains("invalid query"), "{bad:?}");
    let unknown = ctl.fails(&["query", "--database", "nope", count]);
    assert!(unknown.stderr.contains("not found"), "{unknown:?}");
    let influxql = ctl
        .ok(&[
            "query",
            "--database",
            "q",
            "--language",
            "influxql",
            "--format",
            "csv",
            "SELECT max(usage) FROM cpu GROUP BY host",
        ])
        .stdout;
    let mut lines: Vec<&str> = influxql.lines().collect();
    assert_eq!(lines.remove(0), "iox::measurement,time,host,max");
    lines.sort();
    assert_eq!(lines.len(), 2, "{influxql}");
    assert!(
        lines[0].starts_with("cpu,") && lines[0].ends_with(",a,0.5"),
        "{influxql}"
    );
    assert!(lines[1].ends_with(",b,1.5"), "{influxql}");
    let bad = ctl.fails(&[
        "query",
        "--database",
        "q",
        "--language",
        "influxql",
        "SELECT FROM cpu",
    ]);
    assert!(bad.stderr.contains("error parsing query"), "{bad:?}");
}

#[tokio::test]
async fn writes_come_from_arguments_stdin_and_files_gzipped_or_not() {
    let server = serve().await;
    let ctl = Ctl::for_server(&server);
    let lines = |from: u64, n: u64| -> String {
        (from..from + n)
            .map(|i| format!("m,src=x v={i} {i}\n"))
            .collect()
    };

    let arg = ctl.ok(&["write", "--database", "w", &lines(0, 3)]);
    assert!(arg.stdout.starts_with("wrote 3 of 3 lines"), "{arg:?}");

    let stdin = ctl.run_with_stdin(
        &["write", "--database", "w", "--no-gzip", "-"],
        Some(lines(100, 5).as_bytes()),
    );
    assert!(stdin.ok, "{stdin:?}");
    assert!(stdin.stdout.starts_with("wrote 5 of 5 lines"), "{stdin:?}");

    let file = ctl.home.path().join("data.lp");
    std::fs::write(&file, lines(1000, 250)).unwrap();
    let path = file.to_str().unwrap();
    // Small batches: several requests, some in flight together.
    ctl.ok(&[
        "write",
        "--database",
        "w",
        "--batch-size",
        "7",
        "--file",
        path,
    ]);
    std::fs::write(&file, lines(2000, 250)).unwrap();
    ctl.ok(&[
        "write",
        "--database",
        "w",
        "--batch-size",
        "7",
        "--no-gzip",
        "--file",
        path,
    ]);
    let from_stdin_file = ctl.run_with_stdin(
        &["write", "--database", "w", "--file", "-"],
        Some(lines(3000, 10).as_bytes()),
    );
    assert!(from_stdin_file.ok, "{from_stdin_file:?}");
    assert_eq!(ctl.count("w", "m"), 3 + 5 + 250 + 250 + 10);

    let empty = ctl.fails(&["write", "--database", "w", "# only a comment\n\n"]);
    assert!(empty.stderr.contains("nothing to write"), "{empty:?}");
    let no_db = ctl.fails(&["write", "m v=1"]);
    assert!(no_db.stderr.contains("--database"), "{no_db:?}");
}

#[tokio::test]
async fn rejected_lines_are_reported_by_their_input_line_number() {
    let server = serve().await;
    let ctl = Ctl::for_server(&server);
    // Bad lines on both sides of batch boundaries (batches of 4 physical lines), blank and
    // comment lines counted, a multi-line string kept whole, and no final newline.
    let input = [
        "t,k=a v=1 1",         // 1
        "t,k=a v=oops 2",      // 2 bad: value
        "",                    // 3
        "# comment",           // 4
        "t,k=a v=5 5",         // 5
        "t,k=a",               // 6 bad: no field
        "t,k=a v=7 7",         // 7
        "t,k=a v=8i 8",        // 8 bad: integer into a float column
        "t,k=a s=\"two",       // 9  one point over lines 9 and 10
        "lines\",v=9 9",       // 10
        "t,k=a v=11 11",       // 11
        "t,k=a v=12 notatime", // 12 bad: timestamp
    ]
    .join("\n");
    let file = ctl.home.path().join("bad.lp");
    std::fs::write(&file, &input).unwrap();
    let run = ctl.run(&[
        "write",
        "--database",
        "r",
        "--batch-size",
        "4",
        "--file",
        file.to_str().unwrap(),
    ]);
    assert_eq!(run.code, Some(1), "rejected lines fail the run: {run:#?}");
    let reported: Vec<u64> = run
        .stderr
        .lines()
        .filter_map(|l| l.strip_prefix("line "))
        .filter_map(|l| l.split(':').next()?.parse().ok())
        .collect();
    assert_eq!(reported, [2, 6, 8, 12], "{}", run.stderr);
    assert!(run.stderr.contains("    t,k=a v=oops 2"), "{}", run.stderr);
    assert!(
        run.stdout.starts_with("wrote 5 of 9 lines") && run.stdout.contains("; 4 rejected"),
        "{}",
        run.stdout
    );
    assert_eq!(ctl.count("r", "t"), 5);
}

/// The server lists at most 100 rejected lines per request: past that, ferritectl says
/// "at least" where the count is unknown, and stays exact where it is not.
#[tokio::test]
async fn more_rejected_lines_than_the_server_lists_are_reported_honestly() {
    let server = serve().await;
    let ctl = Ctl::for_server(&server);
    // 300 lines, every other one bad: one request, some lines stored, 150 rejected.
    let mixed: String = (1..=300)
        .map(|n| {
            if n % 2 == 0 {
                format!("h,k=a v= {n}\n")
            } else {
                format!("h,k=a v={n} {n}\n")
            }
        })
        .collect();
    let run = ctl.run(&["write", "--database", "many", &mixed]);
    assert_eq!(run.code, Some(1), "{run:#?}");
    assert!(
        run.stdout.starts_with("wrote at most 200 of 300 lines")
            && run.stdout.contains("at least 100 rejected")
            && run.stdout.contains("input lines 1–300"),
        "{}",
        run.stdout
    );
    assert_eq!(ctl.count("many", "h"), 150);

    // 200 bad lines and nothing else: nothing stored, so every line is known rejected.
    let bad: String = (1..=200).map(|n| format!("h,k=b v= {n}\n")).collect();
    let run = ctl.run(&["write", "--database", "many", &bad]);
    assert_eq!(run.code, Some(1), "{run:#?}");
    assert!(
        run.stdout.starts_with("wrote 0 of 200 lines") && run.stdout.contains("; 200 rejected"),
        "{}",
        run.stdout
    );
    assert!(
        run.stderr
            .contains("lines 1–200: 100 more rejected lines that the server did not list"),
        "{}",
        run.stderr
    );
}

/// A server with a small request limit answers 413: the batch is split until it fits, and
/// a single point over the limit is reported as a rejected line.
#[tokio::test]
async fn batches_too_large_for_the_server_are_split() {
    let server = FerriteServer::start(&ferrite_binary(), &["--max-request-bytes", "4096"])
        .await
        .expect("ferrite serve starts");
    let ctl = Ctl::for_server(&server);
    let mut lines: String = (0..1000)
        .map(|i| format!("s,host=h{:02} v={i} {i}\n", i % 10))
        .collect();
    assert!(lines.len() > 4 * 4096);
    let run = ctl.run(&["write", "--database", "split", "--no-gzip", &lines]);
    assert!(run.ok, "{run:#?}");
    assert!(
        run.stdout.starts_with("wrote 1,000 of 1,000 lines"),
        "{run:?}"
    );
    assert_eq!(ctl.count("split", "s"), 1000);

    lines.push_str(&format!("s,host=big note=\"{}\" 1000\n", "x".repeat(5000)));
    lines.push_str("s,host=h00 v=0 1001\n");
    // The rows of the first 1,000 lines are written again, unchanged; line 1,002 is new.
    let run = ctl.run(&["write", "--database", "split", "--no-gzip", &lines]);
    assert_eq!(run.code, Some(1), "{run:#?}");
    assert!(
        run.stderr
            .contains("line 1001: the only point of input lines")
            && run.stderr.contains("larger than the server accepts"),
        "{}",
        run.stderr
    );
    assert_eq!(ctl.count("split", "s"), 1001);
}

/// A stand-in server that answers each `write_lp` request with the next of `answers`
/// (status line and headers), and counts the requests.
fn fake_server(answers: Vec<&'static str>) -> (String, std::sync::Arc<std::sync::Mutex<usize>>) {
    use std::io::{BufRead, BufReader, Read};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = std::sync::Arc::new(std::sync::Mutex::new(0));
    let counter = std::sync::Arc::clone(&seen);
    std::thread::spawn(move || {
        let mut answers = answers.into_iter();
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut writer = stream;
            loop {
                let mut length = 0;
                let mut line = String::new();
                loop {
                    line.clear();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        break;
                    }
                    if line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap();
                    }
                }
                if line != "\r\n" {
                    break;
                }
                let mut body = vec![0; length];
                reader.read_exact(&mut body).unwrap();
                *counter.lock().unwrap() += 1;
                let head = answers.next().unwrap_or("HTTP/1.1 204 No Content\r\n");
                let _ = writer.write_all(format!("{head}content-length: 0\r\n\r\n").as_bytes());
            }
        }
    });
    (url, seen)
}

#[test]
fn busy_answers_are_retried_as_retry_after_asks() {
    let (url, seen) = fake_server(vec![
        "HTTP/1.1 503 Service Unavailable\r\nretry-after: 0\r\n",
        "HTTP/1.1 429 Too Many Requests\r\nretry-after: 0\r\n",
    ]);
    let run = Ctl::new(&url, Some("t")).run(&["write", "--database", "d", "m v=1 1"]);
    assert!(run.ok, "{run:#?}");
    assert_eq!(*seen.lock().unwrap(), 3, "two busy answers, then stored");

    let (url, seen) = fake_server(vec!["HTTP/1.1 500 Internal Server Error\r\n"]);
    let run = Ctl::new(&url, Some("t")).run(&["write", "--database", "d", "m v=1 1"]);
    assert_eq!(run.code, Some(1), "{run:#?}");
    assert!(
        run.stderr.contains("lines 1–1 not written") && run.stderr.contains("500"),
        "{run:#?}"
    );
    assert_eq!(*seen.lock().unwrap(), 1, "other failures are not retried");
}

#[tokio::test]
async fn the_cli_explains_itself_and_its_errors() {
    let server = serve().await;

    let completions = Ctl::new(&server.url(), None).ok(&["completions", "bash"]);
    assert!(
        completions.stdout.contains("_ferritectl()") && completions.stdout.contains("complete "),
        "{}",
        &completions.stdout[..completions.stdout.len().min(500)]
    );
    let help = Ctl::new(&server.url(), None).ok(&["write", "--help"]);
    assert!(help.stdout.contains("Examples:"), "{}", help.stdout);

    // No token anywhere (a private HOME, a host that is not local): say where we looked.
    let remote = Ctl::new("http://ferrite.invalid:8181", None);
    let run = remote.fails(&["database", "list"]);
    assert!(
        run.stderr.contains("no token")
            && run.stderr.contains("FERRITE_TOKEN")
            && run.stderr.contains("--token"),
        "{run:#?}"
    );
    // A local host without ~/.ferrite/admin-token: that place is named too.
    let local = Ctl::new(&server.url(), None);
    let run = local.fails(&["token", "list"]);
    assert!(run.stderr.contains(".ferrite/admin-token"), "{run:#?}");
    // … and with one, it is used.
    let dir = local.home.path().join(".ferrite");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("admin-token"), server.admin_token().unwrap()).unwrap();
    local.ok(&["token", "list"]);

    // A wrong token and an unreachable server are named as such.
    let wrong = Ctl::new(&server.url(), Some("apiv1_not-a-token"));
    let run = wrong.fails(&["database", "list"]);
    assert!(run.stderr.contains("401"), "{run:#?}");
    let port = ferrite_testkit::server::free_port().unwrap();
    let closed = Ctl::new(&format!("http://127.0.0.1:{port}"), Some("t"));
    let run = closed.fails(&["database", "list"]);
    assert!(run.stderr.contains("cannot reach ferrite at"), "{run:#?}");
    let run = closed.fails(&["query", "--database", "x", "SELECT 1"]);
    assert!(run.stderr.contains("cannot reach ferrite at"), "{run:#?}");
}

#[tokio::test]
async fn a_profile_in_a_config_file_is_honoured() {
    let server = serve().await;
    let ctl = Ctl::new(&server.url(), None);
    let token_file = ctl.home.path().join("token");
    std::fs::write(&token_file, format!("{}\n", server.admin_token().unwrap())).unwrap();
    let config = ctl.home.path().join("ferritectl.toml");
    std::fs::write(
        &config,
        format!(
            "[[profile]]\nname = \"default\"\nhost = \"http://127.0.0.1:1\"\ntoken = \"wrong\"\n\n\
             [[profile]]\nname = \"test\"\nhost = \"{}\"\ntoken_file = \"token\"\n\
             database = \"fromprofile\"\n",
            server.url()
        ),
    )
    .unwrap();
    let run = |args: &[&str], profile_env: Option<&str>| -> Run {
        let mut c = Command::new(env!("CARGO_BIN_EXE_ferritectl"));
        for var in ["FERRITE_HOST", "FERRITE_TOKEN", "FERRITECTL_PROFILE"] {
            c.env_remove(var);
        }
        if let Some(p) = profile_env {
            c.env("FERRITECTL_PROFILE", p);
        }
        c.env("HOME", ctl.home.path())
            .env("XDG_CONFIG_HOME", ctl.home.path().join(".config"))
            .arg("--config")
            .arg(&config)
            .args(args)
            .stdin(Stdio::null());
        c.output().unwrap().into()
    };

    // The profile's host, token file and database: no --host, --token or --database.
    let wrote = run(&["--profile", "test", "write", "p v=1 1"], None);
    assert!(wrote.ok, "{wrote:#?}");
    let counted = run(
        &["query", "--format", "json", "SELECT count(*) AS n FROM p"],
        Some("test"),
    );
    assert!(counted.ok, "{counted:#?}");
    assert_eq!(counted.json()[0]["n"], 1);
    let shown = run(&["--profile", "test", "config", "show"], None);
    assert!(
        shown.stdout.contains("fromprofile") && shown.stdout.contains("token_file"),
        "{shown:#?}"
    );
    assert!(
        !shown.stdout.contains(server.admin_token().unwrap()),
        "config show never prints the token"
    );

    // The default profile is used without --profile; a flag overrides it.
    let default = run(&["database", "list"], None);
    assert!(
        default
            .stderr
            .contains("cannot reach ferrite at http://127.0.0.1:1"),
        "{default:#?}"
    );
    let overridden = run(
        &[
            "--host",
            &server.url(),
            "--token",
            server.admin_token().unwrap(),
            "database",
            "list",
        ],
        None,
    );
    assert!(overridden.ok, "{overridden:#?}");
    let unknown = run(&["--profile", "staging", "database", "list"], None);
    assert!(
        unknown.stderr.contains("no profile 'staging'") && unknown.stderr.contains("default, test"),
        "{unknown:#?}"
    );

    // config init adds a profile that works.
    let init = run(
        &[
            "--profile",
            "added",
            "--host",
            &server.url(),
            "config",
            "init",
            "--token-file",
            token_file.to_str().unwrap(),
            "--database",
            "fromprofile",
        ],
        None,
    );
    assert!(init.ok, "{init:#?}");
    let counted = run(
        &[
            "--profile",
            "added",
            "query",
            "--format",
            "csv",
            "SELECT count(*) AS n FROM p",
        ],
        None,
    );
    assert_eq!(counted.stdout, "n\n1\n", "{counted:#?}");
    let twice = run(&["--profile", "added", "config", "init"], None);
    assert!(twice.stderr.contains("already has a profile"), "{twice:#?}");
}

/// The page docs/ferritectl.md is ferritectl's own help; rewrite it with FERRITECTL_BLESS=1.
#[test]
fn reference_page_is_current() {
    let page = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/ferritectl.md");
    let rendered = Command::new(env!("CARGO_BIN_EXE_ferritectl"))
        .arg("markdown-help")
        .output()
        .unwrap();
    assert!(rendered.status.success());
    let rendered = String::from_utf8(rendered.stdout).unwrap();
    if std::env::var_os("FERRITECTL_BLESS").is_some() {
        std::fs::write(&page, &rendered).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&page).unwrap_or_default();
    assert!(
        committed == rendered,
        "docs/ferritectl.md is stale: the CLI's help changed. Regenerate it with\n    {}\n",
        ferritectl::reference::REGENERATE
    );
}

/// About 100 MB of line protocol: every good line arrives, every bad one is reported by
/// its number.
#[tokio::test]
async fn a_large_file_loses_no_good_line() {
    const LINES: u64 = 1_000_000;
    let bad: BTreeSet<u64> = [1, 9_999, 10_000, 10_001, 333_333, 500_000, 999_999, LINES].into();
    let comments: BTreeSet<u64> = [2, 10_002, 750_000].into();
    let server = serve().await;
    let ctl = Ctl::for_server(&server);
    let file = ctl.home.path().join("big.lp");
    {
        let mut out = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
        for n in 1..=LINES {
            if bad.contains(&n) {
                // Odd: malformed. Even: an integer where good lines (also earlier in the
                // same request) made the column a float.
                if n % 2 == 0 {
                    write!(out, "big,host=h{:04} usage=7i,load=1i {n}", n % 3000).unwrap();
                } else {
                    write!(out, "big,host=h{:04} usage=", n % 3000).unwrap();
                }
            } else if comments.contains(&n) {
                write!(out, "# line {n} is a comment").unwrap();
            } else {
                write!(
                    out,
                    "big,host=host-{:04},region=eu-west-1,rack=r{:02} usage={}.{},load={}i,\
                     status=\"ok\" {}",
                    n % 3000,
                    n % 17,
                    n % 100,
                    n % 10,
                    n % 7,
                    1_700_000_000_000_000_000 + n
                )
                .unwrap();
            }
            if n < LINES {
                out.write_all(b"\n").unwrap();
            }
        }
        out.flush().unwrap();
    }
    let size = std::fs::metadata(&file).unwrap().len();
    assert!(size > 90_000_000, "{size} bytes");

    let run = ctl.run(&[
        "write",
        "--database",
        "large",
        "--file",
        file.to_str().unwrap(),
    ]);
    assert_eq!(run.code, Some(1), "{}\n{}", run.stdout, run.stderr);
    let reported: BTreeSet<u64> = run
        .stderr
        .lines()
        .filter_map(|l| l.strip_prefix("line "))
        .filter_map(|l| l.split(':').next()?.parse().ok())
        .collect();
    assert_eq!(reported, bad, "{}", run.stderr);
    let good = LINES - bad.len() as u64 - comments.len() as u64;
    let summary = format!(
        "wrote {} of {} lines",
        group(good),
        group(LINES - comments.len() as u64)
    );
    assert!(run.stdout.starts_with(&summary), "{}", run.stdout);
    assert_eq!(ctl.count("large", "big"), good);
}

fn group(n: u64) -> String {
    ferritectl::write::grouped(n)
}

/// Through a cluster's router: management, write and query go where they should.
#[tokio::test]
async fn commands_work_through_a_cluster_router() {
    let cluster = TestCluster::start(&ferrite_binary(), ClusterOptions::default())
        .await
        .expect("the cluster starts");
    let admin = Ctl::new(&cluster.url(), Some(&cluster.admin_token));
    admin.ok(&["database", "create", "routed"]);
    let (_, secret) = create_token(
        &admin,
        &["--read-database", "routed", "--write-database", "routed"],
        "through the router",
    );
    let user = admin.with_token(&secret);
    let lines: String = (0..500)
        .map(|i| format!("r,host=h{} v={i} {i}\n", i % 13))
        .collect();
    user.ok(&[
        "write",
        "--database",
        "routed",
        "--batch-size",
        "50",
        &lines,
    ]);
    assert_eq!(user.count("routed", "r"), 500);
    assert_denied(
        &user.run(&["write", "--database", "elsewhere", "r v=1 1"]),
        "a write outside the token's database",
    );
}

#[tokio::test]
async fn a_tls_server_is_reached_with_the_profiles_ca() {
    let dir = tempfile::tempdir().unwrap();
    let certs = ferrite_testkit::tls::TestCerts::generate(dir.path()).unwrap();
    let args = certs.ferrite_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = FerriteServer::start(&ferrite_binary(), &args)
        .await
        .expect("ferrite serve starts with TLS");
    assert!(server.url().starts_with("https://"));
    let ctl = Ctl::for_server(&server);
    let config = ctl.home.path().join("tls.toml");
    std::fs::write(
        &config,
        format!(
            "[[profile]]\nname = \"default\"\nhost = \"{}\"\n[profile.tls]\nca = \"{}\"\n",
            server.url(),
            certs.ca.display()
        ),
    )
    .unwrap();
    // Without the CA the server is not trusted.
    let refused = ctl.run(&["database", "list"]);
    assert!(!refused.ok, "{refused:#?}");
    // With it: management over HTTPS, writes and Flight SQL over TLS.
    let with_ca = |args: &[&str]| -> Run {
        let mut all = vec!["--config", config.to_str().unwrap()];
        all.extend_from_slice(args);
        ctl.run(&all)
    };
    assert!(with_ca(&["database", "create", "tlsdb"]).ok);
    let wrote = with_ca(&["write", "--database", "tlsdb", "cpu v=1 1"]);
    assert!(wrote.ok, "{wrote:#?}");
    let queried = with_ca(&[
        "query",
        "--database",
        "tlsdb",
        "--format",
        "json",
        "SELECT count(*) AS n FROM cpu",
    ]);
    assert!(queried.ok, "{queried:#?}");
    assert_eq!(queried.json()[0]["n"], 1);
}

/// `partition list` as JSON, polled until `done` holds (the ingester persists and the
/// compactor compacts in the background).
fn partitions_until(ctl: &Ctl, args: &[&str], done: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let list = ctl
            .ok(&[&["partition", "list", "--format", "json"], args].concat())
            .json();
        if done(&list) {
            return list;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "gave up waiting: {list:#}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Files at `level` of the partitions in a `partition list` answer.
fn files_at(list: &Value, level: usize) -> i64 {
    list.as_array()
        .unwrap()
        .iter()
        .map(|p| p["levels"][level]["files"].as_i64().unwrap())
        .sum()
}

#[tokio::test]
async fn partitions_show_files_by_level_and_skips_can_be_cleared() {
    let server = FerriteServer::start(
        &ferrite_binary(),
        &[
            "--persist-age-seconds",
            "1",
            "--compaction-interval-seconds",
            "0.2",
            "--compaction-l0-trigger-files",
            "2",
            "--compaction-cold-seconds",
            "3600",
        ],
    )
    .await
    .expect("ferrite serve starts");
    let ctl = Ctl::for_server(&server);
    let pumps = ["--database", "plant", "--table", "pumps"];
    ctl.ok(&["write", "--database", "plant", "pumps,id=1 rpm=1i 1000"]);
    partitions_until(&ctl, &pumps, |l| files_at(l, 0) == 1);
    ctl.ok(&["write", "--database", "plant", "pumps,id=1 rpm=2i 2000"]);
    // Two level-0 files reach the trigger: compacted into one level-1 file.
    let list = partitions_until(&ctl, &pumps, |l| files_at(l, 0) == 0 && files_at(l, 1) == 1);
    assert_eq!(list[0]["rows"], 2, "{list:#}");
    assert_eq!(list[0]["key"], "1970-01-01");
    assert_eq!(list[0]["sortKey"], serde_json::json!(["id"]), "{list:#}");
    assert_eq!(ctl.count("plant", "pumps"), 2);

    // A level-0 file whose object is damaged: the compactor skips its partition and says why.
    let valves = ["--database", "plant", "--table", "valves"];
    ctl.ok(&["write", "--database", "plant", "valves,id=1 open=true 1000"]);
    let list = partitions_until(&ctl, &valves, |l| files_at(l, 0) == 1);
    let id = list[0]["id"].as_i64().unwrap();
    let damaged = find_parquet_of_partition(&server.data_dir().join("objects"), id);
    std::fs::write(&damaged, b"PAR1 damaged PAR1").unwrap();
    ctl.ok(&[
        "write",
        "--database",
        "plant",
        "valves,id=1 open=false 2000",
    ]);
    let skipped = partitions_until(&ctl, &["--skipped"], |l| !l.as_array().unwrap().is_empty());
    assert_eq!(skipped[0]["table"], "valves", "{skipped:#}");
    let reason = skipped[0]["skipped"]["reason"].as_str().unwrap();
    assert!(reason.contains("cannot be read"), "{reason}");
    let table = ctl.ok(&["partition", "list", "--skipped"]).stdout;
    assert!(
        table.contains("SKIPPED") && table.contains("cannot be read"),
        "{table}"
    );

    let cleared = ctl.ok(&["partition", "unskip", &id.to_string()]);
    assert!(cleared.stderr.contains("try it again"), "{cleared:?}");
    let missing = ctl.fails(&["partition", "unskip", "999999"]);
    assert!(missing.stderr.contains("not skipped"), "{missing:?}");
    let usage = ctl.run(&["partition", "list", "--table", "pumps"]);
    assert!(
        !usage.ok && usage.stderr.contains("--database"),
        "{usage:?}"
    );
    let unknown = ctl.fails(&["partition", "list", "--database", "nope"]);
    assert!(unknown.stderr.contains("not found"), "{unknown:?}");
}

/// The one Parquet object of a partition under a local object store directory.
fn find_parquet_of_partition(objects: &std::path::Path, partition: i64) -> PathBuf {
    let mut found = vec![];
    let mut stack = vec![objects.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.parent().and_then(|p| p.file_name())
                == Some(std::ffi::OsStr::new(&partition.to_string()))
            {
                found.push(path);
            }
        }
    }
    assert_eq!(found.len(), 1, "{found:?}");
    found.remove(0)
}

#[tokio::test]
async fn partition_templates_place_rows_by_tag_and_queries_prune_the_others() {
    let server = FerriteServer::start(&ferrite_binary(), &["--persist-age-seconds", "1"])
        .await
        .expect("ferrite serve starts");
    let ctl = Ctl::for_server(&server);
    ctl.ok(&[
        "database",
        "create",
        "--template-tag",
        "region",
        "--template-tag-bucket",
        "host,4",
        "--template-timeformat",
        "%Y-%m",
        "fleet",
    ]);
    let dbs = ctl.ok(&["database", "list"]).stdout;
    assert!(
        dbs.contains("PARTITIONED BY") && dbs.contains("tag region | bucket host/4 | time %Y-%m"),
        "{dbs}"
    );
    // A table's own template replaces the database's.
    ctl.ok(&[
        "table",
        "create",
        "--template-timeformat",
        "%Y",
        "fleet",
        "yearly",
    ]);
    let bad = ctl.fails(&[
        "table",
        "create",
        "--template-tag-bucket",
        "host,0",
        "fleet",
        "x",
    ]);
    assert!(bad.stderr.contains("1 to 1000"), "{bad:?}");
    let usage = ctl.run(&[
        "table",
        "create",
        "--template-tag-bucket",
        "host",
        "fleet",
        "x",
    ]);
    assert!(!usage.ok && usage.stderr.contains("TAG,N"), "{usage:?}");

    // 2024-03-05 and 2024-03-20: one month.
    let (t1, t2) = (1_709_632_800_000_000_000i64, 1_710_936_000_000_000_000i64);
    let lines = format!(
        "cpu,region=eu,host=a v=1 {t1}\ncpu,region=eu,host=a v=2 {t2}\ncpu,region=us,host=b v=3 {t1}\n\
         cpu,host=c v=4 {t1}\nyearly,x=1 v=1 {t1}"
    );
    ctl.ok(&["write", "--database", "fleet", &lines]);
    let cpu = partitions_until(&ctl, &["--database", "fleet", "--table", "cpu"], |l| {
        l.as_array().unwrap().len() == 3
    });
    let mut keys: Vec<Vec<String>> = cpu
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            p["key"]
                .as_str()
                .unwrap()
                .split('|')
                .map(String::from)
                .collect()
        })
        .collect();
    keys.sort();
    let regions: Vec<&str> = keys.iter().map(|k| k[0].as_str()).collect();
    assert_eq!(
        regions,
        vec!["!", "eu", "us"],
        "a row without the tag gets '!'"
    );
    for k in &keys {
        assert_eq!(k.len(), 3, "{keys:?}");
        assert!(k[1].parse::<u32>().unwrap() < 4, "{keys:?}");
        assert_eq!(k[2], "2024-03");
    }
    let yearly = partitions_until(&ctl, &["--database", "fleet", "--table", "yearly"], |l| {
        l.as_array().unwrap().len() == 1
    });
    assert_eq!(yearly[0]["key"], "2024");
    let tables = ctl.ok(&["table", "list", "fleet"]).stdout;
    assert!(
        tables.contains("time %Y\n") || tables.contains("time %Y "),
        "{tables}"
    );

    // The plan reads only the partitions a tag predicate allows.
    let partition_of = |region: &str| -> (i64, String) {
        let p = cpu
            .as_array()
            .unwrap()
            .iter()
            .find(|p| {
                p["key"]
                    .as_str()
                    .unwrap()
                    .starts_with(&format!("{region}|"))
            })
            .unwrap();
        let key = p["key"].as_str().unwrap().to_string();
        (
            p["id"].as_i64().unwrap(),
            key.split('|').nth(1).unwrap().to_string(),
        )
    };
    let plan = |sql: &str| -> String {
        ctl.ok(&["query", "--database", "fleet", "--format", "json", sql])
            .json()
            .as_array()
            .unwrap()
            .iter()
            .map(|row| row["plan"].as_str().unwrap_or_default().to_string())
            .collect::<Vec<_>>()
            .join("\n")
    };
    let reads = |plan: &str, id: i64| plan.contains(&format!("/partitions/{id}/"));
    let (eu, _) = partition_of("eu");
    let (us, us_bucket) = partition_of("us");
    let (none, _) = partition_of("!");
    let explained = plan("EXPLAIN SELECT count(*) FROM cpu WHERE region = 'eu'");
    assert!(reads(&explained, eu), "{explained}");
    assert!(
        !reads(&explained, us) && !reads(&explained, none),
        "{explained}"
    );
    let explained = plan("EXPLAIN SELECT v FROM cpu WHERE region IN ('us', 'asia')");
    assert!(
        reads(&explained, us) && !reads(&explained, eu),
        "{explained}"
    );
    // By bucket: host b's bucket; another partition is read only if it shares the bucket.
    let explained = plan("EXPLAIN SELECT v FROM cpu WHERE host = 'b'");
    for region in ["eu", "us", "!"] {
        let (id, bucket) = partition_of(region);
        assert_eq!(
            reads(&explained, id),
            bucket == us_bucket,
            "{region}: {explained}"
        );
    }
    // And the answers are right.
    let rows = ctl
        .ok(&[
            "query",
            "--database",
            "fleet",
            "--format",
            "json",
            "SELECT region, count(*) AS n FROM cpu WHERE region = 'eu' OR host = 'c' \
             GROUP BY region ORDER BY region",
        ])
        .json();
    assert_eq!(
        rows,
        serde_json::json!([{"region": "eu", "n": 2}, {"n": 1}]),
        "{rows}"
    );
    assert_eq!(ctl.count("fleet", "cpu"), 4);
}
