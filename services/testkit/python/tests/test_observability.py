"""Observability end to end (docs/observability.md): a real Jaeger receives the cluster's
OTLP traces, a real Prometheus scrapes every service's /metrics.

  what                                   checked against
  a client's `traceparent` on a write    Jaeger: router, ingester and catalog spans in the
                                         client's trace, the router's root span a child of
                                         the client's span
  ... on an HTTP SQL query               Jaeger: router, querier and ingester spans
  ... on a Flight SQL query (gRPC)       Jaeger: router and querier spans
  ... on a write to `ferrite serve`      Jaeger: spans of service `ferrite` (--traces-endpoint)
  GET /metrics on every service          Prometheus: every target up, writes and queries
                                         counted; promtool check metrics: no problem

Jaeger (v2, memory storage) is built by deploy/dev/install-jaeger.sh into
~/.cache/ferrite-tools/bin (FERRITE_JAEGER overrides the path); Prometheus and promtool come
from Debian's prometheus package (deploy/dev/install-prometheus.sh). Both run on free loopback
ports with their state in the test's temp dir. The cluster (PostgreSQL, MinIO, catalog, 2 ingesters, querier, router) is
this module's own, started with FERRITE_TRACES_ENDPOINT pointing at Jaeger.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow.flight as flight
import pytest
import requests

from ferrite_cluster import FerriteCluster, find_launcher
from ferrite_e2e import (TOKEN, assert_204, flight_sql_command, free_port, lines, query_json,
                         unique_db, write_v2)

TRACE_TIMEOUT_S = 30.0  # the services export spans in batches, every few seconds
SCRAPE_INTERVAL_S = 1
T0 = 1_704_067_200  # 2024-01-01T00:00:00Z

ROUTER, INGESTER, QUERIER, CATALOG = ("ferrite-router", "ferrite-ingester", "ferrite-querier",
                                      "ferrite-catalog")
SERVE = "ferrite"  # `ferrite serve`


# --- the programs -----------------------------------------------------------------------------

def tools_bin(name: str) -> Path:
    return Path(os.environ.get("FERRITE_TOOLS_DIR") or Path.home() / ".cache" / "ferrite-tools") / "bin" / name


def require_program(path: Path | str | None, what: str, script: str) -> Path:
    """The program, or a test failure that says which install script provides it."""
    if path is not None and Path(path).is_file() and os.access(path, os.X_OK):
        return Path(path)
    pytest.fail(f"{what} not found{f' at {path}' if path else ''}: run `bash {script}` "
                "(deploy/dev/setup.sh, which `make test` runs, does)", pytrace=False)


def wait_port(port: int, proc: subprocess.Popen, what: str, log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} while starting\n{tail(log)}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on port {port} within {timeout}s\n{tail(log)}")


def tail(path: Path, n: int = 40) -> str:
    try:
        return f"----- {path} (tail) -----\n" + "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return f"(no log at {path})"


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --- Jaeger -----------------------------------------------------------------------------------

JAEGER_CONFIG = """\
service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: info
extensions:
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 100000
  jaeger_query:
    storage:
      traces: memstore
    # Jaeger traces its own queries by default, to localhost:4317, and on exit waits for
    # that export to time out.
    enable_tracing: false
    http:
      endpoint: 127.0.0.1:{query_port}
    grpc:
      endpoint: 127.0.0.1:{query_grpc_port}
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:{otlp_port}
processors:
  batch:
    timeout: 100ms
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
"""


@dataclass
class Jaeger:
    otlp_endpoint: str  # OTLP over gRPC
    query_url: str  # the query service's HTTP API (/api/traces/<id>)
    log: Path

    def trace(self, trace_id: str) -> dict | None:
        """The trace in Jaeger's v1 JSON (spans + processes), or None while it has none."""
        r = requests.get(f"{self.query_url}/api/traces/{trace_id}", timeout=10)
        if r.status_code == 404:
            return None
        assert r.status_code == 200, f"jaeger /api/traces/{trace_id}: {r.status_code} {r.text}"
        data = r.json().get("data") or []
        return data[0] if data else None


@pytest.fixture(scope="module")
def jaeger(tmp_path_factory):
    binary = require_program(Path(os.environ["FERRITE_JAEGER"]) if os.environ.get("FERRITE_JAEGER")
                             else tools_bin("jaeger"), "Jaeger", "deploy/dev/install-jaeger.sh")
    base = tmp_path_factory.mktemp("jaeger")
    otlp_port, query_port, query_grpc_port = free_port(), free_port(), free_port()
    config = base / "jaeger.yaml"
    config.write_text(JAEGER_CONFIG.format(otlp_port=otlp_port, query_port=query_port,
                                           query_grpc_port=query_grpc_port))
    log = base / "jaeger.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen([str(binary), "--config", f"file:{config}"], stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        wait_port(otlp_port, proc, "jaeger (OTLP receiver)", log)
        wait_port(query_port, proc, "jaeger (query API)", log)
        j = Jaeger(f"http://127.0.0.1:{otlp_port}", f"http://127.0.0.1:{query_port}", log)
        r = requests.get(j.query_url + "/api/services", timeout=10)
        assert r.status_code == 200, f"jaeger query API: {r.status_code} {r.text}\n{tail(log)}"
        yield j
    finally:
        stop(proc)


# --- the cluster ------------------------------------------------------------------------------

@dataclass
class Service:
    name: str  # router | ingester | querier | catalog | compactor
    url: str


def cluster_services(cluster: FerriteCluster) -> list[Service]:
    """Every `ferrite run <service> --bind ADDR` process the cluster launcher started (its
    children), read from /proc: the launcher announces only the router's address."""
    assert cluster.proc is not None
    services = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # "pid (comm) state ppid ...": comm may hold spaces, so split after the last ')'
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            if ppid != cluster.proc.pid:
                continue
            argv = (stat.parent / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except (OSError, IndexError, ValueError):
            continue  # gone in the meantime
        if len(argv) > 2 and argv[1] == "run" and "--bind" in argv:
            services.append(Service(argv[2], "http://" + argv[argv.index("--bind") + 1]))
    return sorted(services, key=lambda s: (s.name, s.url))


@pytest.fixture(scope="module")
def with_tracing(ferrite_bin):
    """The ferrite binary, which must know the tracing flags."""
    help_text = subprocess.run([str(ferrite_bin), "serve", "--help"], capture_output=True, text=True,
                               timeout=60).stdout
    if "--traces-endpoint" not in help_text:
        pytest.fail(f"{ferrite_bin} has no --traces-endpoint flag (`ferrite serve --help`): "
                    "it predates the tracing of issue 11", pytrace=False)
    return ferrite_bin


@pytest.fixture(scope="module")
def traced_cluster(with_tracing, jaeger, tmp_path_factory):
    """A local cluster whose every service sends all its spans to Jaeger."""
    ferrite_bin = with_tracing
    try:
        launcher = find_launcher(ferrite_bin)
    except FileNotFoundError as e:
        pytest.fail(str(e), pytrace=False)
    base = tmp_path_factory.mktemp("ferrite-traced-cluster")
    c = FerriteCluster(launcher, ferrite_bin, base / "launcher.log", env={
        "FERRITE_TRACES_ENDPOINT": jaeger.otlp_endpoint,
        "FERRITE_TRACES_SAMPLING_RATIO": "1",
    })
    c.start()
    yield c
    code = c.stop()
    assert code == 0, f"ferrite-test-cluster exited {code}\n{c.log_tail()}"


# --- traces -----------------------------------------------------------------------------------

def new_trace() -> tuple[str, str]:
    """A client's trace id (32 hex) and span id (16 hex)."""
    return secrets.token_hex(16), secrets.token_hex(8)


def traceparent(trace_id: str, span_id: str) -> str:
    return f"00-{trace_id}-{span_id}-01"


def trace_summary(trace: dict | None) -> str:
    if not trace:
        return "(no trace in Jaeger)"
    procs = trace["processes"]
    out = []
    for s in sorted(trace["spans"], key=lambda s: s["startTime"]):
        refs = ",".join(f"{r['refType']}:{r['spanID']}" for r in s.get("references") or [])
        out.append(f"  {procs[s['processID']]['serviceName']:<18} {s['operationName']:<50} "
                   f"span={s['spanID']} refs=[{refs}]")
    return "\n".join(out)


def check_trace(trace: dict | None, client_spans: set[str], services: set[str], front: str = ROUTER) -> list[str]:
    """What is still wrong with the trace (empty when it is complete): every wanted service
    has spans in it; every span whose parent is not in the trace (a root of the part ferrite
    exported) is a span of the `front` service (the one the client called) and a CHILD_OF one
    of the client's spans."""
    if not trace:
        return ["no trace"]
    procs = trace["processes"]
    service_of = {s["spanID"]: procs[s["processID"]]["serviceName"] for s in trace["spans"]}
    problems = []
    missing = services - set(service_of.values())
    if missing:
        problems.append(f"no span from {sorted(missing)} (services: {sorted(set(service_of.values()))})")
    roots = 0
    for s in trace["spans"]:
        parents = [r["spanID"] for r in s.get("references") or [] if r["refType"] == "CHILD_OF"]
        if any(p in service_of for p in parents):
            continue
        roots += 1
        who = f"{service_of[s['spanID']]} span {s['operationName']!r} ({s['spanID']})"
        if service_of[s["spanID"]] != front:
            problems.append(f"{who} has no parent in the trace (parents: {parents})")
        elif not set(parents) & client_spans:
            problems.append(f"{who} is a root but not a child of the client's span {sorted(client_spans)} "
                            f"(parents: {parents})")
    if not roots:
        problems.append("no span is a child of the client's span")
    return problems


def await_trace(jaeger: Jaeger, trace_id: str, client_spans: set[str], services: set[str],
                cluster, front: str = ROUTER) -> dict:
    """Poll Jaeger until the trace passes `check_trace` (spans arrive in batches, from several
    processes, in any order); fail with what is missing after TRACE_TIMEOUT_S. `cluster`: the
    FerriteCluster or FerriteServer whose logs go into the failure message."""
    deadline = time.monotonic() + TRACE_TIMEOUT_S
    while True:
        trace = jaeger.trace(trace_id)
        problems = check_trace(trace, client_spans, services, front)
        if not problems:
            return trace
        if time.monotonic() > deadline:
            pytest.fail(f"trace {trace_id} in Jaeger after {TRACE_TIMEOUT_S}s:\n- " + "\n- ".join(problems)
                        + f"\nspans:\n{trace_summary(trace)}\n{tail(jaeger.log, 15)}\n{cluster.log_tail(15)}",
                        pytrace=False)
        time.sleep(0.5)


def test_http_write_traced_through_router_ingester_and_catalog(traced_cluster, jaeger):
    db, table = unique_db("obs_write"), f"new_table_{secrets.token_hex(4)}"
    trace_id, span_id = new_trace()
    r = write_v2(traced_cluster, db, lines(f"{table},host=a usage=1 {T0}", f"{table},host=b usage=2 {T0}"),
                 precision="s", headers={"traceparent": traceparent(trace_id, span_id)})
    assert_204(r)
    trace = await_trace(jaeger, trace_id, {span_id}, {ROUTER, INGESTER, CATALOG}, traced_cluster)
    assert all(s["traceID"].rjust(32, "0") == trace_id for s in trace["spans"])


def test_http_query_traced_through_router_querier_and_ingester(traced_cluster, jaeger):
    db = unique_db("obs_query")
    assert_204(write_v2(traced_cluster, db, lines(*[f"cpu,host=h{i} usage={i} {T0 + i}" for i in range(10)]),
                        precision="s"))
    trace_id, span_id = new_trace()
    r = requests.get(traced_cluster.url + "/api/v3/query_sql",
                     params={"db": db, "q": "SELECT count(*) AS n FROM cpu", "format": "json"},
                     headers={"Authorization": f"Bearer {TOKEN}", "traceparent": traceparent(trace_id, span_id)},
                     timeout=60)
    assert r.status_code == 200, r.text
    assert r.json() == [{"n": 10}], "the rows, buffered in the ingesters, must come back"
    await_trace(jaeger, trace_id, {span_id}, {ROUTER, QUERIER, INGESTER}, traced_cluster)


def test_flight_sql_query_traced_through_router_and_querier(traced_cluster, jaeger):
    db = unique_db("obs_flight")
    assert_204(write_v2(traced_cluster, db, f"cpu,host=a usage=1 {T0}", precision="s"))
    trace_id = secrets.token_hex(16)
    info_span, get_span = secrets.token_hex(8), secrets.token_hex(8)  # one client span per call

    def opts(span_id: str) -> flight.FlightCallOptions:
        return flight.FlightCallOptions(timeout=60, headers=[
            (b"authorization", f"Bearer {TOKEN}".encode()), (b"database", db.encode()),
            (b"traceparent", traceparent(trace_id, span_id).encode())])

    client = flight.FlightClient(traced_cluster.flight_uri)
    try:
        info = client.get_flight_info(
            flight.FlightDescriptor.for_command(flight_sql_command("SELECT host, usage FROM cpu")), opts(info_span))
        table = client.do_get(info.endpoints[0].ticket, opts(get_span)).read_all()
    finally:
        client.close()
    assert table.to_pylist() == [{"host": "a", "usage": 1.0}]
    await_trace(jaeger, trace_id, {info_span, get_span}, {ROUTER, QUERIER}, traced_cluster)


def test_serve_traces_with_the_flag_under_its_own_service_name(with_tracing, make_server, jaeger, db):
    """`ferrite serve --traces-endpoint URL` (the flag, where the cluster above uses the
    environment): one process, service.name `ferrite`, still a child of the client's span."""
    srv = make_server("--traces-endpoint", jaeger.otlp_endpoint)
    trace_id, span_id = new_trace()
    assert_204(write_v2(srv, db, f"cpu,host=a usage=1 {T0}", precision="s",
                        headers={"traceparent": traceparent(trace_id, span_id)}))
    await_trace(jaeger, trace_id, {span_id}, {SERVE}, srv, front=SERVE)


# --- metrics ----------------------------------------------------------------------------------

class Prometheus:
    def __init__(self, url: str, log: Path, services: list[Service]):
        self.url, self.log = url, log
        self.services = services  # its targets

    def query(self, expr: str) -> list[dict]:
        r = requests.get(self.url + "/api/v1/query", params={"query": expr}, timeout=10)
        assert r.status_code == 200, f"prometheus {expr!r}: {r.status_code} {r.text}"
        body = r.json()
        assert body["status"] == "success", body
        return body["data"]["result"]

    def value(self, expr: str) -> float:
        """The value of an expression with at most one series (0 when it has none)."""
        result = self.query(expr)
        assert len(result) <= 1, f"{expr!r} gave {len(result)} series: {result}"
        return float(result[0]["value"][1]) if result else 0.0


def find_prometheus_tool(name: str) -> Path:
    return require_program(shutil.which(name) or f"/usr/bin/{name}", f"{name} (Debian's prometheus package)",
                           "deploy/dev/install-prometheus.sh")


@pytest.fixture(scope="module")
def prometheus(traced_cluster, tmp_path_factory):
    """A Prometheus scraping /metrics of every service of the cluster every second; each
    target is labelled `tier` with its service (router, ingester, ...): not `service`, which
    ferrite_build_info carries itself."""
    binary = find_prometheus_tool("prometheus")
    services = cluster_services(traced_cluster)
    assert {s.name for s in services} >= {"router", "ingester", "querier", "catalog"}, services
    base = tmp_path_factory.mktemp("prometheus")
    scrape = "\n".join(
        f"      - targets: ['{s.url.removeprefix('http://')}']\n        labels: {{tier: {s.name}}}"
        for s in services)
    config = base / "prometheus.yml"
    config.write_text(f"""\
global:
  scrape_interval: {SCRAPE_INTERVAL_S}s
  scrape_timeout: {SCRAPE_INTERVAL_S}s
  evaluation_interval: {SCRAPE_INTERVAL_S}s
scrape_configs:
  - job_name: ferrite
    metrics_path: /metrics
    static_configs:
{scrape}
""")
    port = free_port()
    log = base / "prometheus.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [str(binary), f"--config.file={config}", f"--storage.tsdb.path={base / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        wait_port(port, proc, "prometheus", log)
        prom = Prometheus(f"http://127.0.0.1:{port}", log, services)
        deadline = time.monotonic() + 30
        while requests.get(prom.url + "/-/ready", timeout=5).status_code != 200:
            assert time.monotonic() < deadline, f"prometheus not ready\n{tail(log)}"
            time.sleep(0.2)
        yield prom
    finally:
        stop(proc)


def test_prometheus_scrapes_every_service_and_counts_writes_and_queries(traced_cluster, prometheus):
    services = prometheus.services
    # every target is scraped successfully
    deadline = time.monotonic() + 20
    while True:
        up = {r["metric"]["instance"]: r["value"][1] for r in prometheus.query('up{job="ferrite"}')}
        if len(up) == len(services) and set(up.values()) == {"1"}:
            break
        assert time.monotonic() < deadline, (f"up{{job=\"ferrite\"}} = {up}, want 1 for each of {services}\n"
                                             f"{tail(prometheus.log)}")
        time.sleep(0.5)

    # Load in rounds, a scrape apart, until Prometheus has seen the counters grow: a labelled
    # counter exists only from its first increment, so increase() needs a later one too.
    db = unique_db("obs_metrics")
    rounds = rows = 0
    write_rate = 'sum(increase(ferrite_write_rows_total{tier="router"}[15s]))'
    query_rate = 'sum(increase(ferrite_queries_total{tier="querier",outcome="ok"}[15s]))'
    deadline = time.monotonic() + 20
    while True:
        assert_204(write_v2(traced_cluster, db, lines(*[f"m,host=h{i} v={i} {T0 + rows + i}" for i in range(5)]),
                            precision="s"))
        rows += 5
        assert query_json(traced_cluster, db, "SELECT count(*) AS n FROM m") == [{"n": rows}]
        rounds += 1
        time.sleep(SCRAPE_INTERVAL_S * 1.5)
        if (prometheus.value(write_rate) > 0 and prometheus.value(query_rate) > 0) or time.monotonic() > deadline:
            break

    time.sleep(SCRAPE_INTERVAL_S * 1.5)  # one more scrape: the last round is in every counter
    # (expression, lower bound): the rates, and absolute counters that hold at least this load
    want = [
        (write_rate, 1),
        (query_rate, 1),
        ('sum(ferrite_write_rows_total{tier="router"})', rows),
        ('sum(ferrite_write_requests_total{tier="router",outcome="ok"})', rounds),
        ('sum(ferrite_ingester_rows_total{tier="ingester"})', rows),
        ('sum(ferrite_queries_total{tier="querier",protocol="http",outcome="ok"})', rounds),
    ]
    problems = [f"{expr} = {v:g}, want >= {bound}" for expr, bound in want
                if (v := prometheus.value(expr)) < bound]
    # every service says what it is
    build = prometheus.query('ferrite_build_info{job="ferrite"}')
    if len(build) != len(services) or not all(
            r["value"][1] == "1" and r["metric"].get("version") and r["metric"].get("service") for r in build):
        problems.append(f"ferrite_build_info: {[(r['metric'], r['value'][1]) for r in build]}, "
                        f"want one = 1 with version and service for each of {len(services)} targets")
    if problems:
        served = [f"{r['metric']['tier']} {r['metric']['endpoint']} {r['metric']['status']}: {r['value'][1]}" for r in
                  prometheus.query('ferrite_http_requests_total{endpoint=~"write|query"} > 0')]
        pytest.fail(f"after {rounds} rounds of 5 rows written and 1 HTTP query:\n- " + "\n- ".join(problems)
                    + f"\n(ferrite_http_requests_total by tier, endpoint, status: {served})", pytrace=False)


def test_promtool_finds_no_problem_in_any_services_metrics(traced_cluster, prometheus):
    """`promtool check metrics` lints the exposition of every service (after some traffic, so
    the labelled series exist too): exit 0 and not a word of output."""
    promtool = find_prometheus_tool("promtool")
    db = unique_db("obs_promtool")
    assert_204(write_v2(traced_cluster, db, f"m,host=a v=1 {T0}", precision="s"))
    assert query_json(traced_cluster, db, "SELECT count(*) AS n FROM m") == [{"n": 1}]
    for s in prometheus.services:
        r = requests.get(s.url + "/metrics", timeout=10)  # no token: /metrics is open
        assert r.status_code == 200, f"{s.name} {s.url}/metrics: {r.status_code} {r.text[:200]}"
        assert r.headers["content-type"].startswith("text/plain"), (s.name, r.headers["content-type"])
        assert "version=0.0.4" in r.headers["content-type"], (s.name, r.headers["content-type"])
        check = subprocess.run([str(promtool), "check", "metrics"], input=r.content, capture_output=True,
                               timeout=60)
        report = (check.stdout + check.stderr).decode(errors="replace")
        assert check.returncode == 0 and not report.strip(), \
            f"promtool check metrics on {s.name} ({s.url}/metrics) exited {check.returncode}:\n{report}"
