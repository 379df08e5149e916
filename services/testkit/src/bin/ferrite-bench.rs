//! `ferrite-bench`: end-to-end ingest and query benchmarks against a real `ferrite serve`.
//!
//! ```text
//!  TSBS cpu-only batches (pre-generated, 5,000 lines) ─► N concurrent HTTP clients
//!      ─► POST /api/v2/write (durable: acknowledged after WAL fsync) ─► rows/s
//!  load up to --query-rows ─► SIGTERM (persist) ─► restart
//!      ─► "one host, last hour" SQL via /api/v3/query_sql ─► p50 / p95 / max latency
//! ```
//!
//! With `--url` (a running server, e.g. a cluster's router) it measures ingest and then the
//! same query over the data as it is, without the restart.
//!
//! `--compare-auth N` measures what token checking costs: N pairs of ingest runs, each on a
//! fresh `serve`, one `--without-auth` and one writing with a database token (write on
//! `bench`), in alternating order (ABBA) so drift over time falls on both sides alike.
//!
//! `--load URL` is the loader of `make bench-peers`: it sends the TSBS batches to any server
//! that takes line protocol over HTTP (`URL` + `--write-path`, with `--header`s) and prints
//! one JSON line, `{"rows", "bytes", "seconds", "first_ns", "last_ns"}`, so every system is
//! loaded by the same client with the same workers and batch size.
//!
//! `--compaction` measures the compactor: `--query-rows` rows loaded with compaction off,
//! the first million sent again (so level-0 files overlap), queries timed; then compaction
//! on until every partition is compacted (rows/s and MiB/s per core of the server's CPU
//! time), the same queries timed again, and the bytes per field value on disk.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use ferrite_testkit::server::{FerriteServer, client_with};
use ferrite_testkit::tsbs::{CpuOnly, TSBS_INTERVAL_NS};
use tokio::sync::Mutex;

#[derive(Debug)]
struct Args {
    ferrite: PathBuf,
    /// Measure ingest against a running server (a cluster's router) instead of starting one.
    url: Option<String>,
    /// Token for `--url` (default: `FERRITE_TOKEN`).
    token: Option<String>,
    clients: usize,
    batch_lines: usize,
    ingest_rows: usize,
    query_rows: usize,
    hosts: usize,
    query_runs: usize,
    /// Pairs of ingest runs with and without token checking; 0: the normal benchmark.
    compare_auth: usize,
    /// Measure compaction instead.
    compaction: bool,
    /// Only load the data into this server (any line-protocol endpoint) and print JSON.
    load: Option<String>,
    /// Path and query of the write endpoint for `--load`.
    write_path: String,
    /// Extra request headers for `--load` (`Name: value`).
    headers: Vec<(String, String)>,
    /// First timestamp of the data (default: TSBS's 2016-01-01).
    start_ns: Option<i64>,
    seed: u64,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut a = Args {
        ferrite: PathBuf::from("target/release/ferrite"),
        url: None,
        token: std::env::var("FERRITE_TOKEN").ok(),
        clients: 4,
        batch_lines: 5_000,
        ingest_rows: 2_000_000,
        query_rows: 10_000_000,
        hosts: 1_000,
        query_runs: 50,
        compare_auth: 0,
        compaction: false,
        load: None,
        write_path: "/api/v2/write?bucket=bench".into(),
        headers: Vec::new(),
        start_ns: None,
        seed: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--ferrite" => a.ferrite = PathBuf::from(value()?),
            "--url" => a.url = Some(value()?),
            "--token" => a.token = Some(value()?),
            "--clients" => a.clients = value()?.parse()?,
            "--batch-lines" => a.batch_lines = value()?.parse()?,
            "--ingest-rows" | "--rows" => a.ingest_rows = value()?.parse()?,
            "--query-rows" => a.query_rows = value()?.parse()?,
            "--hosts" => a.hosts = value()?.parse()?,
            "--query-runs" => a.query_runs = value()?.parse()?,
            "--compare-auth" => a.compare_auth = value()?.parse()?,
            "--compaction" => a.compaction = true,
            "--load" => a.load = Some(value()?),
            "--write-path" => a.write_path = value()?,
            "--header" => {
                let header = value()?;
                let (name, v) = header
                    .split_once(':')
                    .with_context(|| format!("--header {header}: expected `Name: value`"))?;
                a.headers.push((name.trim().into(), v.trim().into()));
            }
            "--start-ns" => a.start_ns = Some(value()?.parse()?),
            "--seed" => a.seed = value()?.parse()?,
            "--help" | "-h" => {
                println!(
                    "ferrite-bench [--ferrite PATH | --url URL [--token T]] [--clients 4] [--batch-lines 5000] [--ingest-rows 2000000] \
                     [--query-rows 10000000] [--hosts 1000] [--query-runs 50] [--compare-auth PAIRS] [--compaction]\n\
                     ferrite-bench --load URL [--write-path /api/v2/write?bucket=bench] [--header 'Name: value']... \
                     [--hosts 1000] [--rows 2000000] [--start-ns NS] [--seed 1] [--clients 4] [--batch-lines 5000]"
                );
                std::process::exit(0);
            }
            other => bail!("unknown flag {other}"),
        }
    }
    Ok(a)
}

/// Send every batch to `write_url` with `clients` concurrent connections; returns the
/// elapsed time.
async fn ingest(
    client: &reqwest::Client,
    write_url: &str,
    batches: Vec<String>,
    clients: usize,
) -> anyhow::Result<Duration> {
    let queue = Arc::new(Mutex::new(batches));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (queue, client, url) = (Arc::clone(&queue), client.clone(), write_url.to_string());
        tasks.push(tokio::spawn(async move {
            loop {
                let Some(body) = queue.lock().await.pop() else {
                    return anyhow::Ok(());
                };
                loop {
                    let r = client.post(&url).body(body.clone()).send().await?;
                    match r.status().as_u16() {
                        200..=299 => break,
                        // Backpressure: honour it like the InfluxDB clients do.
                        503 | 429 => tokio::time::sleep(Duration::from_millis(200)).await,
                        s => bail!("write failed: {s} {}", r.text().await?),
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(start.elapsed())
}

/// The write endpoint of the `bench` database on a ferrite at `url`.
fn bench_writes(url: &str) -> String {
    format!("{url}/api/v2/write?bucket=bench")
}

fn generate(generator: &mut CpuOnly, rows: usize, batch_lines: usize) -> Vec<String> {
    let mut out = Vec::with_capacity(rows / batch_lines + 1);
    let mut left = rows;
    while left > 0 {
        let n = left.min(batch_lines);
        out.push(generator.lines(n));
        left -= n;
    }
    out.reverse(); // popped from the back: send in time order
    out
}

async fn query_ms(
    client: &reqwest::Client,
    url: &str,
    db: &str,
    sql: &str,
) -> anyhow::Result<(f64, usize)> {
    let start = Instant::now();
    let r = client
        .get(format!("{url}/api/v3/query_sql"))
        .query(&[("db", db), ("q", sql), ("format", "json")])
        .send()
        .await?;
    if !r.status().is_success() {
        bail!("query failed: {} {}", r.status(), r.text().await?);
    }
    let rows: serde_json::Value = r.json().await?;
    Ok((
        start.elapsed().as_secs_f64() * 1e3,
        rows.as_array().map_or(0, Vec::len),
    ))
}

/// Latency of a query run many times: rows returned and percentiles.
struct Latency {
    rows: usize,
    /// Milliseconds, sorted.
    times: Vec<f64>,
}

impl std::fmt::Display for Latency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pct = |p: f64| self.times[((self.times.len() - 1) as f64 * p) as usize];
        write!(
            f,
            "p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms over {} runs",
            pct(0.5),
            pct(0.95),
            self.times[self.times.len() - 1],
            self.times.len()
        )
    }
}

/// TSBS's "one host, last hour" ending at `last` (ns), after one warm-up run.
async fn one_host_last_hour(
    client: &reqwest::Client,
    url: &str,
    last: i64,
    runs: usize,
) -> anyhow::Result<Latency> {
    let hour_start = last - 3_600_000_000_000;
    let sql = format!(
        "SELECT * FROM cpu WHERE hostname = 'host_42' AND time > to_timestamp_nanos({hour_start}) ORDER BY time"
    );
    let (_, rows) = query_ms(client, url, "bench", &sql).await?; // warm-up
    let mut times = Vec::with_capacity(runs.max(1));
    for _ in 0..runs.max(1) {
        times.push(query_ms(client, url, "bench", &sql).await?.0);
    }
    times.sort_by(f64::total_cmp);
    Ok(Latency { rows, times })
}

/// Live files, rows and bytes per compaction level over every partition of `bench`.
async fn levels(client: &reqwest::Client, url: &str) -> anyhow::Result<[(i64, i64, i64); 3]> {
    let r = client
        .get(format!("{url}/api/v0/partitions"))
        .query(&[("db", "bench")])
        .send()
        .await?;
    if !r.status().is_success() {
        bail!("listing partitions: {} {}", r.status(), r.text().await?);
    }
    let partitions: serde_json::Value = r.json().await?;
    let mut out = [(0, 0, 0); 3];
    for p in partitions.as_array().context("partitions")? {
        for (i, l) in p["levels"].as_array().context("levels")?.iter().enumerate() {
            let n = |k: &str| l[k].as_i64().unwrap_or(0);
            out[i].0 += n("files");
            out[i].1 += n("rows");
            out[i].2 += n("bytes");
        }
    }
    Ok(out)
}

/// Median of `runs` runs of `sql`, in ms.
async fn median_ms(
    client: &reqwest::Client,
    url: &str,
    sql: &str,
    runs: usize,
) -> anyhow::Result<f64> {
    query_ms(client, url, "bench", sql).await?; // warm-up
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs.max(1) {
        times.push(query_ms(client, url, "bench", sql).await?.0);
    }
    Ok(median(&mut times))
}

/// TSBS cpu-only rows carry ten fields.
const FIELDS_PER_ROW: f64 = 10.0;

async fn compaction(a: &Args) -> anyhow::Result<()> {
    let mut server = FerriteServer::start(&a.ferrite, &[]).await?;
    let (url, client) = (server.url(), server.client());
    // Load with compaction off.
    server.set_env("FERRITE_COMPACTION_L0_TRIGGER_FILES", "1000000");
    server.set_env("FERRITE_COMPACTION_L1_TRIGGER_FILES", "1000000");
    server.set_env("FERRITE_COMPACTION_COLD_SECONDS", "1000000000");
    server.terminate()?;
    server.restart().await?;
    let mut generator = CpuOnly::new(a.hosts, 1);
    let mut loaded = 0;
    while loaded < a.query_rows {
        let n = (a.query_rows - loaded).min(1_000_000);
        ingest(
            &client,
            &bench_writes(&url),
            generate(&mut generator, n, a.batch_lines),
            a.clients,
        )
        .await?;
        loaded += n;
    }
    // The first million rows again, identical: later files overlap the first ones.
    let again = a.query_rows.min(1_000_000);
    let mut replay = CpuOnly::new(a.hosts, 1);
    ingest(
        &client,
        &bench_writes(&url),
        generate(&mut replay, again, a.batch_lines),
        a.clients,
    )
    .await?;
    let last = generator.next_timestamp_ns() - TSBS_INTERVAL_NS;
    server.terminate()?;
    server.restart().await?;

    let before = levels(&client, &url).await?;
    let count_sql = "SELECT count(*) FROM cpu";
    let count_before = median_ms(&client, &url, count_sql, 5).await?;
    let host_before = one_host_last_hour(&client, &url, last, a.query_runs).await?;
    println!(
        "before compaction: {} level-0 files, {} rows, {:.1} MiB; count(*) median {count_before:.1} ms; \
         one host's last hour: {host_before}",
        before[0].0,
        before[0].1,
        before[0].2 as f64 / (1 << 20) as f64
    );

    // Compaction on, eagerly; wait until it is done (nothing at level 0, no change).
    server.set_env("FERRITE_COMPACTION_L0_TRIGGER_FILES", "1");
    server.set_env("FERRITE_COMPACTION_L1_TRIGGER_FILES", "2");
    server.set_env("FERRITE_COMPACTION_COLD_SECONDS", "0");
    server.set_env("FERRITE_COMPACTION_INTERVAL_SECONDS", "0.5");
    server.terminate()?;
    server.restart().await?;
    let cpu_start = server.cpu_time()?;
    let start = Instant::now();
    let mut previous = levels(&client, &url).await?;
    let after = loop {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let now = levels(&client, &url).await?;
        if now[0].0 == 0 && now == previous {
            break now;
        }
        previous = now;
    };
    // The last second polled only confirmed it was done.
    let took = start.elapsed().as_secs_f64() - 1.0;
    let cpu = (server.cpu_time()? - cpu_start).as_secs_f64();
    let rows_in = before[0].1 as f64;
    let mib_in = before[0].2 as f64 / (1 << 20) as f64;
    let rows_after: i64 = after.iter().map(|l| l.1).sum();
    let bytes_after: i64 = after.iter().map(|l| l.2).sum();
    println!(
        "compaction: {rows_in} rows, {mib_in:.1} MiB in {took:.1} s ({cpu:.1} s of CPU): \
         {:.0} rows/s and {:.1} MiB/s per core of CPU time; files now L0 {} / L1 {} / L2 {}",
        rows_in / cpu,
        mib_in / cpu,
        after[0].0,
        after[1].0,
        after[2].0
    );
    let count_after = median_ms(&client, &url, count_sql, 5).await?;
    let host_after = one_host_last_hour(&client, &url, last, a.query_runs).await?;
    println!(
        "after compaction: {rows_after} rows, {:.1} MiB, {:.2} bytes per field value; count(*) \
         median {count_after:.1} ms; one host's last hour: {host_after}",
        bytes_after as f64 / (1 << 20) as f64,
        bytes_after as f64 / (rows_after as f64 * FIELDS_PER_ROW)
    );
    server.terminate()?;
    Ok(())
}

/// Ingest rows/s into a fresh `serve`: with `auth`, through a database token that holds
/// write on `bench`; without, on `--without-auth`. The database is made first either way.
async fn ingest_once(a: &Args, auth: bool) -> anyhow::Result<f64> {
    let args: &[&str] = if auth { &[] } else { &["--without-auth"] };
    let mut server = FerriteServer::start(&a.ferrite, args).await?;
    let url = server.url();
    let admin = server.client();
    let r = admin
        .post(format!("{url}/api/v0/databases"))
        .json(&serde_json::json!({"name": "bench"}))
        .send()
        .await?;
    if r.status() != 201 {
        bail!("creating the database: {} {}", r.status(), r.text().await?);
    }
    let client = if auth {
        let r = admin
            .post(format!("{url}/api/v0/tokens"))
            .json(&serde_json::json!({
                "description": "ferrite-bench",
                "permissions": [{"action": "write", "resource": "bench"}],
            }))
            .send()
            .await?;
        if r.status() != 201 {
            bail!("creating the token: {} {}", r.status(), r.text().await?);
        }
        let body: serde_json::Value = r.json().await?;
        let secret = body["accessToken"]
            .as_str()
            .context("no accessToken in the answer")?;
        client_with(Some(secret))
    } else {
        admin
    };
    let batches = generate(&mut CpuOnly::new(a.hosts, 1), a.ingest_rows, a.batch_lines);
    let took = ingest(&client, &bench_writes(&url), batches, a.clients).await?;
    server.terminate()?;
    Ok(a.ingest_rows as f64 / took.as_secs_f64())
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// `pairs` pairs of runs, ABBA order; prints every run and the medians.
async fn compare_auth(a: &Args, pairs: usize) -> anyhow::Result<()> {
    let (mut without, mut with, mut change) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..pairs {
        let order = if i % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        let mut pair = [0.0; 2];
        for auth in order {
            let rate = ingest_once(a, auth).await?;
            println!(
                "pair {}: {:<13} {rate:>9.0} rows/s",
                i + 1,
                if auth { "token" } else { "without-auth" }
            );
            pair[usize::from(auth)] = rate;
        }
        without.push(pair[0]);
        with.push(pair[1]);
        change.push((pair[1] / pair[0] - 1.0) * 100.0);
    }
    let spread = |v: &[f64]| {
        let (lo, hi) = v
            .iter()
            .fold((f64::MAX, f64::MIN), |(lo, hi), x| (lo.min(*x), hi.max(*x)));
        format!("{lo:.0}–{hi:.0}")
    };
    let (ws, ts, cs) = (spread(&without), spread(&with), spread(&change));
    println!(
        "without auth: median {:.0} rows/s ({ws}); with a database token: median {:.0} rows/s \
         ({ts}); change per pair: median {:+.1} % ({cs} %)",
        median(&mut without),
        median(&mut with),
        median(&mut change)
    );
    Ok(())
}

/// `--load`: send the data to `url` and print one JSON line about it.
async fn load(a: &Args, url: &str) -> anyhow::Result<()> {
    let mut headers = reqwest::header::HeaderMap::new();
    for (name, value) in &a.headers {
        headers.insert(
            reqwest::header::HeaderName::from_bytes(name.as_bytes())?,
            value.parse()?,
        );
    }
    let client = reqwest::Client::builder()
        .default_headers(headers)
        .build()?;
    let mut generator = CpuOnly::new(a.hosts, a.seed);
    if let Some(start) = a.start_ns {
        generator = generator.start_ns(start);
    }
    let first_ns = generator.next_timestamp_ns();
    let batches = generate(&mut generator, a.ingest_rows, a.batch_lines);
    let bytes: usize = batches.iter().map(String::len).sum();
    let took = ingest(
        &client,
        &format!("{url}{}", a.write_path),
        batches,
        a.clients,
    )
    .await?;
    let steps = a.ingest_rows.saturating_sub(1) / a.hosts.max(1);
    let last_ns = first_ns + steps as i64 * TSBS_INTERVAL_NS;
    println!(
        "{}",
        serde_json::json!({
            "rows": a.ingest_rows,
            "bytes": bytes,
            "seconds": took.as_secs_f64(),
            "first_ns": first_ns,
            "last_ns": last_ns,
        })
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = parse_args()?;
    if let Some(url) = &a.load {
        return load(&a, url).await;
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "ferrite-bench: {cores} cores, {} clients, {}-line batches",
        a.clients, a.batch_lines
    );

    if a.compare_auth > 0 {
        return compare_auth(&a, a.compare_auth).await;
    }
    if a.compaction {
        return compaction(&a).await;
    }

    // 1. Durable ingest throughput.
    if let Some(url) = &a.url {
        let client = client_with(a.token.as_deref());
        let mut generator = CpuOnly::new(a.hosts, 1);
        let batches = generate(&mut generator, a.ingest_rows, a.batch_lines);
        let took = ingest(&client, &bench_writes(url), batches, a.clients).await?;
        println!(
            "ingest at {url}: {} rows in {:.2} s = {:.0} rows/s, acknowledged after fsync",
            a.ingest_rows,
            took.as_secs_f64(),
            a.ingest_rows as f64 / took.as_secs_f64()
        );
        let last = generator.next_timestamp_ns() - TSBS_INTERVAL_NS;
        let latency = one_host_last_hour(&client, url, last, a.query_runs).await?;
        println!(
            "query at {url}: one host's last hour ({} rows) out of {} rows as they are (mostly unpersisted): {latency}",
            latency.rows, a.ingest_rows
        );
        return Ok(());
    }
    let mut server = FerriteServer::start(&a.ferrite, &[]).await?;
    let url = server.url();
    let client = server.client();
    let mut generator = CpuOnly::new(a.hosts, 1);
    let batches = generate(&mut generator, a.ingest_rows, a.batch_lines);
    let bytes: usize = batches.iter().map(String::len).sum();
    let took = ingest(&client, &bench_writes(&url), batches, a.clients).await?;
    let rows_per_s = a.ingest_rows as f64 / took.as_secs_f64();
    println!(
        "ingest: {} rows ({:.0} MiB) in {:.2} s = {:.0} rows/s ({:.1} MiB/s), acknowledged after fsync",
        a.ingest_rows,
        bytes as f64 / (1 << 20) as f64,
        took.as_secs_f64(),
        rows_per_s,
        bytes as f64 / (1 << 20) as f64 / took.as_secs_f64()
    );

    // 2. Load up to query_rows, persist with a clean restart, then query one host's last hour.
    let mut loaded = a.ingest_rows;
    while loaded < a.query_rows {
        let n = (a.query_rows - loaded).min(1_000_000);
        let batches = generate(&mut generator, n, a.batch_lines);
        ingest(&client, &bench_writes(&url), batches, a.clients).await?;
        loaded += n;
    }
    let last = generator.next_timestamp_ns() - TSBS_INTERVAL_NS;
    server.terminate()?;
    server.restart().await?;
    let latency = one_host_last_hour(&client, &url, last, a.query_runs).await?;
    println!(
        "query: one host's last hour ({} rows) out of {loaded} rows, persisted: {latency}",
        latency.rows
    );
    let (ms, n) = query_ms(&client, &url, "bench", "SELECT count(*) FROM cpu").await?;
    println!("query: count(*) over all rows ({n} row result): {ms:.1} ms");
    server.terminate()?;
    Ok(())
}
