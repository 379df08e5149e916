"""The Grafana dashboard `deploy/grafana/ferrite.json` is true: it is a well-formed dashboard
whose every panel queries the chosen Prometheus datasource, and every metric its PromQL names
is one that ferrite really exports on `GET /metrics` — from `ferrite serve`, and from the
services of a local cluster (the router's per-ingester metrics exist only there).

A metric must be declared (`# TYPE`) by a process that has one, whether or not its event has
happened yet: a dashboard panel whose metric appears only after the first compaction or the
first object-store error would look broken ("No data" for a wrong name) until then.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import requests

from ferrite_e2e import (assert_204, flight_sql_query, flight_ticket_query, free_port, lines,
                         query_json, write_v3)

REPO = Path(__file__).resolve().parents[4]
DASHBOARD = REPO / "deploy" / "grafana" / "ferrite.json"

# ---------------------------------------------------------------------------------------------
# PromQL: which metric names does an expression read?
# ---------------------------------------------------------------------------------------------

# Aggregation operators and functions (PromQL 2.x/3.x), and Grafana's variable-query helpers.
PROMQL_FUNCTIONS = frozenset("""
    sum min max avg group stddev stdvar count count_values bottomk topk quantile limitk limit_ratio
    abs absent absent_over_time ceil changes clamp clamp_max clamp_min day_of_month day_of_week
    day_of_year days_in_month delta deriv exp floor histogram_avg histogram_count
    histogram_fraction histogram_quantile histogram_stddev histogram_stdvar histogram_sum
    holt_winters double_exponential_smoothing hour idelta increase info irate label_join
    label_replace ln log2 log10 minute month predict_linear rate resets round scalar sgn sort
    sort_desc sort_by_label sort_by_label_desc sqrt time timestamp vector year avg_over_time
    min_over_time max_over_time sum_over_time count_over_time quantile_over_time
    stddev_over_time stdvar_over_time last_over_time present_over_time mad_over_time
    acos acosh asin asinh atan atanh cos cosh sin sinh tan tanh deg rad pi
    label_values label_names metrics query_result
""".split())
PROMQL_KEYWORDS = frozenset("""
    and or unless by without on ignoring group_left group_right bool offset start end inf nan
""".split())

HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"' r"|'(?:[^'\\]|\\.)*'" r"|`[^`]*`")
# Grafana variables: $name, ${name}, ${name:format}, $__rate_interval, [[name]].
_GRAFANA_VAR = re.compile(r"\$\{[^}]*\}|\$\w+|\[\[[^\]]*\]\]")
_BRACES = re.compile(r"\{[^{}]*\}")
_BRACKETS = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_IDENT = re.compile(r"(?<![\w:.])[A-Za-z_:][\w:]*")
_NAME_MATCHER = re.compile(r"__name__\s*=\s*\"([^\"]+)\"")


def _blank(m: re.Match) -> str:
    return " " * len(m.group(0))


def _mask(expr: str) -> str:
    """`expr` with strings, Grafana variables, label matchers, ranges and grouping clauses
    blanked out (same length, so positions still point into `expr`). Braces and quotes stay
    so a selector's `{...}` can still be found."""
    masked = _STRING.sub(lambda m: m.group(0)[0] + " " * (len(m.group(0)) - 2) + m.group(0)[-1], expr)
    masked = _GRAFANA_VAR.sub(_blank, masked)
    masked = _BRACES.sub(lambda m: "{" + " " * (len(m.group(0)) - 2) + "}", masked)
    masked = _BRACKETS.sub(_blank, masked)
    # Grouping clauses may follow each other (`on (a) group_left (b)`): repeat until stable.
    while True:
        again = _GROUPING.sub(_blank, masked)
        if again == masked:
            return masked
        masked = again


def selectors(expr: str) -> list[tuple[str, str]]:
    """Every vector selector of a PromQL expression: (metric name, its `{...}` matchers or "")."""
    masked = _mask(expr)
    out = []
    for m in _IDENT.finditer(masked):
        name = m.group(0)
        rest = masked[m.end():].lstrip()
        if rest.startswith("("):  # a function or aggregation call
            continue
        if name.lower() in PROMQL_KEYWORDS or name in PROMQL_FUNCTIONS:
            continue
        matchers = ""
        if rest.startswith("{"):
            start = masked.index("{", m.end())
            end = masked.index("}", start)
            matchers = expr[start:end + 1]
        out.append((name, matchers))
    for name in _NAME_MATCHER.findall(expr):
        out.append((name, ""))
    return out


def metric_families(expr: str) -> dict[str, bool]:
    """The metric families an expression reads: {family: read as a histogram (`_bucket`,
    `_sum` or `_count`)}."""
    out: dict[str, bool] = {}
    for name, _ in selectors(expr):
        family, histogram = name, False
        for suffix in HISTOGRAM_SUFFIXES:
            if name.endswith(suffix):
                family, histogram = name[: -len(suffix)], True
                break
        out[family] = out.get(family, False) or histogram
    return out


def variable_query_families(query: str) -> dict[str, bool]:
    """Metric families of a Grafana Prometheus variable query: `label_values(metric{..}, label)`,
    `label_values(label)`, `metrics(regex)`, `query_result(expr)`."""
    m = re.fullmatch(r"\s*label_values\((.*),\s*[A-Za-z_]\w*\s*\)\s*", query, re.S)
    if m:
        return metric_families(m.group(1))
    if re.fullmatch(r"\s*(?:label_values\(\s*\w+\s*\)|label_names\(.*\)|metrics\(.*\))\s*", query, re.S):
        return {}
    m = re.fullmatch(r"\s*query_result\((.*)\)\s*", query, re.S)
    return metric_families(m.group(1) if m else query)


class TestPromqlParsing:
    """The extraction the dashboard checks rely on."""

    def test_histogram_suffixes_grouping_clauses_strings_and_functions_are_not_metrics(self):
        expr = ('histogram_quantile(0.99, sum by (le, instance) (rate(a_seconds_bucket{job=~"$job", '
                'x="not_a_metric"}[$__rate_interval]))) / on (instance) group_left (version) '
                'max without (pod) (b_info{c=~"d|e"} offset 5m) * 1e3 + sum(c_total) by (le) '
                "or vector(0) > bool 2 unless d_bytes and on() e_count")
        assert metric_families(expr) == {"a_seconds": True, "b_info": False, "c_total": False,
                                          "d_bytes": False, "e": True}

    def test_selectors_carry_their_matchers(self):
        assert selectors('sum(rate(x_total{job=~"$job", status=~"5.."}[5m])) + y') == [
            ("x_total", '{job=~"$job", status=~"5.."}'), ("y", "")]

    def test_name_matcher_and_variable_queries(self):
        assert metric_families('{__name__="z_total", job="a"}') == {"z_total": False}
        assert variable_query_families('label_values(ferrite_build_info{job=~"$job"}, instance)') == {
            "ferrite_build_info": False}
        assert variable_query_families("label_values(job)") == {}


# ---------------------------------------------------------------------------------------------
# The dashboard JSON
# ---------------------------------------------------------------------------------------------

def load_dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def all_panels(dashboard: dict) -> list[dict]:
    """Every panel, including those inside collapsed rows."""
    out = []
    for p in dashboard.get("panels", []):
        out.append(p)
        out.extend(p.get("panels", []))
    return out


def query_panels(dashboard: dict) -> list[dict]:
    return [p for p in all_panels(dashboard) if p.get("type") != "row"]


def expressions(dashboard: dict) -> list[tuple[str, str]]:
    """(panel title, PromQL) of every target."""
    return [(p["title"], t["expr"]) for p in query_panels(dashboard) for t in p["targets"]]


def variable_query(var: dict) -> str:
    q = var.get("query")
    return q.get("query", "") if isinstance(q, dict) else (q or "")


def dashboard_families() -> dict[str, bool]:
    """Every metric family the dashboard reads (panels and template variables): {family:
    read as a histogram}."""
    d = load_dashboard()
    out: dict[str, bool] = {}
    found = [metric_families(e) for _, e in expressions(d)]
    found += [variable_query_families(variable_query(v)) for v in d["templating"]["list"]
              if v.get("type") == "query"]
    for fams in found:
        for name, histogram in fams.items():
            out[name] = out.get(name, False) or histogram
    return out


def is_datasource_variable(ds) -> bool:
    return ds in ("$datasource", "${datasource}") or (
        isinstance(ds, dict) and ds.get("uid") in ("$datasource", "${datasource}")
        and ds.get("type", "prometheus") == "prometheus")


class TestDashboardModel:
    def test_is_a_dashboard_json_model(self):
        d = load_dashboard()
        assert 36 <= d["schemaVersion"] <= 41
        assert d["title"] and d["uid"]
        assert d.get("id") is None, "an exported dashboard must not pin a database id"
        ids = [p["id"] for p in all_panels(d)]
        assert len(ids) == len(set(ids)), "panel ids must be unique"
        for p in all_panels(d):
            pos = p["gridPos"]
            assert 0 <= pos["x"] and pos["x"] + pos["w"] <= 24 and pos["h"] > 0, p["title"]

    def test_has_datasource_job_and_instance_variables(self):
        variables = {v["name"]: v for v in load_dashboard()["templating"]["list"]}
        ds = variables["datasource"]
        assert ds["type"] == "datasource" and ds["query"] == "prometheus"
        for name in ("job", "instance"):
            v = variables[name]
            assert v["type"] == "query"
            assert is_datasource_variable(v["datasource"])
            assert re.fullmatch(rf"label_values\(ferrite_build_info(\{{.*\}})?,\s*{name}\)",
                                variable_query(v)), variable_query(v)
        assert "$job" in variable_query(variables["instance"]), "instances follow the chosen jobs"

    def test_every_panel_queries_the_chosen_datasource(self):
        panels = query_panels(load_dashboard())
        assert len(panels) >= 30
        for p in panels:
            assert p["type"] in ("timeseries", "stat"), p["title"]
            assert is_datasource_variable(p.get("datasource")), f"{p['title']}: datasource {p.get('datasource')}"
            assert p.get("targets"), f"{p['title']}: no targets"
            ref_ids = [t["refId"] for t in p["targets"]]
            assert len(ref_ids) == len(set(ref_ids)), p["title"]
            for t in p["targets"]:
                assert t.get("expr", "").strip(), f"{p['title']}: empty expression"
                assert is_datasource_variable(t.get("datasource", p["datasource"])), p["title"]

    def test_every_selector_honours_the_job_and_instance_variables(self):
        """Every series a panel reads is one of the chosen jobs and instances; or, for a
        reference such as the catalog's own version, of the jobs a variable over
        ferrite_build_info names (e.g. `catalog_job`)."""
        d = load_dashboard()
        references = {v["name"] for v in d["templating"]["list"]
                      if v.get("type") == "query" and v["name"] not in ("job", "instance")
                      and re.fullmatch(r"label_values\(ferrite_build_info(\{.*\})?,\s*job\)",
                                       variable_query(v))}
        for title, expr in expressions(d):
            sels = selectors(expr)
            assert sels, f"{title}: no metric in {expr!r}"
            for name, matchers in sels:
                chosen = 'job=~"$job"' in matchers and 'instance=~"$instance"' in matchers
                reference = any(f'job=~"${r}"' in matchers for r in references)
                assert chosen or reference, (
                    f"{title}: {name} is not filtered by $job and $instance in {expr!r}")

    def test_quantiles_are_taken_over_buckets_by_le(self):
        for title, expr in expressions(load_dashboard()):
            if "histogram_quantile" not in expr:
                continue
            names = [n for n, _ in selectors(expr)]
            assert names and all(n.endswith("_bucket") for n in names), f"{title}: {expr!r}"
            assert re.search(r"\bby\s*\(\s*le\b|\bby\s*\([^)]*\ble\b", expr), f"{title}: {expr!r}"

    def test_rates_are_taken_over_counters(self):
        """rate() of a gauge is a wrong panel; ferrite's counters end in `_total` and its
        histograms are read through `_bucket`."""
        for title, expr in expressions(load_dashboard()):
            for name in re.findall(r"\b(?:rate|irate|increase)\(\s*([A-Za-z_:][\w:]*)", expr):
                assert name.endswith(("_total", "_bucket")), f"{title}: rate over {name}"

    def test_reads_only_ferrite_and_process_metrics(self):
        for name in dashboard_families():
            assert name.startswith(("ferrite_", "process_")), name


# ---------------------------------------------------------------------------------------------
# Against the real binary
# ---------------------------------------------------------------------------------------------

# Exported only where routers place writes on ingesters: in a cluster, not by `ferrite serve`.
CLUSTER_ONLY = ("ferrite_router_",)
# The test cluster runs no compactor; `ferrite serve` runs one in-process.
COMPACTOR = ("ferrite_compactor_",)


class Exposition:
    """A parsed Prometheus text exposition: declared types and sample names."""

    def __init__(self, text: str):
        self.types: dict[str, str] = {}
        self.samples: set[str] = set()
        for line in text.splitlines():
            m = re.match(r"#\s*TYPE\s+(\S+)\s+(\S+)", line)
            if m:
                self.types[m.group(1)] = m.group(2)
                continue
            m = re.match(r"([A-Za-z_:][\w:]*)(?:\{|\s)", line)
            if m:
                self.samples.add(m.group(1))

    def problem(self, family: str, histogram: bool) -> str | None:
        """None when `family` is exported as the dashboard reads it, else what is wrong."""
        declared = self.types.get(family)
        if declared is None and family.endswith("_total"):
            # OpenMetrics-style declaration of a counter: `# TYPE x counter`, samples `x_total`.
            if self.types.get(family[: -len("_total")]) == "counter":
                declared = "counter"
        if histogram:
            if declared == "histogram" or f"{family}_bucket" in self.samples:
                return None
            if declared is not None:
                return f"{family}: declared as {declared}, not a histogram (no {family}_bucket series)"
            return f"{family}: not exported (no `# TYPE {family} histogram`)"
        if declared is None:
            return f"{family}: not exported (no `# TYPE {family}`)"
        if family.endswith("_total") and declared != "counter":
            return f"{family}: declared as {declared}, not a counter"
        return None


def scrape(url: str, verify=True) -> Exposition:
    """GET /metrics, without a token."""
    r = requests.get(url + "/metrics", timeout=30, verify=verify)
    assert r.status_code == 200, f"GET {url}/metrics: {r.status_code} {r.text[:300]!r}"
    assert r.headers.get("content-type", "").startswith("text/plain"), r.headers.get("content-type")
    return Exposition(r.text)


def problems(expositions: list[Exposition], families: dict[str, bool]) -> list[str]:
    """What is wrong with each family in the best of `expositions` (none when one exports it)."""
    assert expositions, "nothing scraped"
    out = []
    for family, histogram in sorted(families.items()):
        found = [e.problem(family, histogram) for e in expositions]
        if all(found):
            out.append(found[0])
    return out


def write_and_query(front_door, db: str) -> None:
    assert_204(write_v3(front_door, db, lines(
        "cpu,host=a usage=1.5,count=3i 1700000000000000000",
        "cpu,host=b usage=2.5,count=4i 1700000000000000000")))
    assert query_json(front_door, db, "SELECT count(*) AS n FROM cpu") == [{"n": 2}]
    _, table = flight_sql_query(front_door, db, "SELECT host FROM cpu ORDER BY host")
    assert table.column("host").to_pylist() == ["a", "b"]
    assert flight_ticket_query(front_door, db, "SELECT usage FROM cpu").num_rows == 2


def test_serve_exports_every_metric_the_dashboard_reads(server, db):
    write_and_query(server, db)
    wanted = {f: h for f, h in dashboard_families().items() if not f.startswith(CLUSTER_ONLY)}
    missing = problems([scrape(server.url)], wanted)
    assert not missing, ("`ferrite serve` does not export metrics the dashboard reads:\n  "
                         + "\n  ".join(missing))


def cluster_services(cluster) -> dict[str, list[str]]:
    """{service: [url, ...]} of the cluster's ferrite processes: the launcher's children
    running `ferrite run <service> --bind ADDR`."""
    out: dict[str, list[str]] = {}
    launcher = cluster.proc.pid
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        argv = [a.decode(errors="replace") for a in argv if a]
        if ppid != launcher or len(argv) < 3 or argv[1] != "run" or "--bind" not in argv:
            continue
        addr = argv[argv.index("--bind") + 1]
        scheme = "https" if "--tls-cert" in argv else "http"
        out.setdefault(argv[2], []).append(f"{scheme}://{addr}")
    return out


def test_cluster_services_export_every_metric_the_dashboard_reads(cluster, db):
    write_and_query(cluster, db)
    services = cluster_services(cluster)
    assert {"router", "ingester", "querier", "catalog"} <= services.keys(), services
    scraped = {(svc, url): scrape(url) for svc, urls in services.items() for url in urls}
    failures = []

    # Every process: the variables' ferrite_build_info, process and request metrics.
    everywhere = {f: h for f, h in dashboard_families().items()
                  if f == "ferrite_build_info" or f.startswith(("process_", "ferrite_http_"))}
    for (svc, url), exp in scraped.items():
        failures += [f"{svc} {url}: {p}" for p in problems([exp], everywhere)]

    # The router's placement metrics, on the router.
    routers = [exp for (svc, _), exp in scraped.items() if svc == "router"]
    placement = {f: h for f, h in dashboard_families().items() if f.startswith(CLUSTER_ONLY)}
    failures += [f"router: {p}" for p in problems(routers, placement)]

    # Everything else (but the compactor's, which this cluster does not run) by some service.
    rest = {f: h for f, h in dashboard_families().items() if not f.startswith(COMPACTOR + CLUSTER_ONLY)}
    failures += [f"no service: {p}" for p in problems(list(scraped.values()), rest)]
    assert not failures, "the cluster does not export metrics the dashboard reads:\n  " + "\n  ".join(failures)


# ---------------------------------------------------------------------------------------------
# Through a real Prometheus, as Grafana would ask it
# ---------------------------------------------------------------------------------------------

SCRAPE_INTERVAL_S = 1
RATE_INTERVAL = "10s"  # Grafana's $__rate_interval for a 1 s scrape is 4 s; leave room
# Panels that may rightly show nothing after a clean write and query: what they count has not
# happened (their series appear with the first event of their label values).
NOTHING_TO_SHOW = {
    "HTTP 5xx by endpoint": "no request failed with a server error",
    "Failures per ingester": "no write to an ingester failed",
}


def prometheus_binary() -> Path:
    path = Path(shutil.which("prometheus") or "/usr/bin/prometheus")
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(f"prometheus not found at {path}: run `bash deploy/dev/install-prometheus.sh` "
                    "(deploy/dev/setup.sh, which `make test` runs, does)", pytrace=False)
    return path


def promql_regex(values: list[str]) -> str:
    """A multi-value variable as Grafana interpolates it into `=~"..."`: the values, regex-
    escaped (the escapes doubled for the PromQL string), as an alternation."""
    escaped = [re.sub(r"([\\.^$*+?()\[\]{}|])", r"\\\\\1", v) for v in values]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


def interpolate(expr: str, variables: dict[str, str]) -> str:
    """Grafana's `$name` and `${name}`, for the variables given (others stay)."""
    def value(m: re.Match) -> str:
        return variables.get(m.group(1) or m.group(2), m.group(0))
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", value, expr)


class PrometheusServer:
    def __init__(self, url: str, log: Path):
        self.url, self.log = url, log

    def get(self, path: str, **params) -> dict:
        r = requests.get(self.url + path, params=params, timeout=10)
        body = r.json() if r.headers.get("content-type", "").startswith("application/json") else {}
        assert r.status_code == 200 and body.get("status") == "success", (
            f"prometheus {path} {params}: {r.status_code} {r.text[:500]}")
        return body["data"]

    def query(self, expr: str) -> list[dict]:
        return self.get("/api/v1/query", query=expr)["result"]

    def log_tail(self, n: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])


@pytest.fixture
def prometheus(tmp_path):
    """`start({job: [url, ...]})`: a Prometheus scraping those targets every second."""
    procs = []

    def start(targets: dict[str, list[str]]) -> PrometheusServer:
        jobs = "\n".join(
            f"  - job_name: {job}\n    static_configs:\n      - targets: {json.dumps([u.split('://')[1] for u in urls])}"
            for job, urls in targets.items())
        config = tmp_path / "prometheus.yml"
        config.write_text(f"global:\n  scrape_interval: {SCRAPE_INTERVAL_S}s\n"
                          f"  scrape_timeout: {SCRAPE_INTERVAL_S}s\nscrape_configs:\n{jobs}\n")
        port = free_port()
        log = tmp_path / "prometheus.log"
        with open(log, "ab") as out:
            procs.append(subprocess.Popen(
                [str(prometheus_binary()), f"--config.file={config}",
                 f"--storage.tsdb.path={tmp_path / 'prometheus-data'}",
                 f"--web.listen-address=127.0.0.1:{port}"],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL))
        prom = PrometheusServer(f"http://127.0.0.1:{port}", log)
        deadline = time.monotonic() + 30
        while True:
            assert procs[-1].poll() is None, f"prometheus exited\n{prom.log_tail()}"
            try:
                if requests.get(prom.url + "/-/ready", timeout=2).status_code == 200:
                    return prom
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, f"prometheus not ready\n{prom.log_tail()}"
            time.sleep(0.2)

    yield start
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_every_panel_shows_data_through_prometheus(server, cluster, prometheus, db):
    """A Prometheus scrapes `ferrite serve` (job ferrite) and each cluster service (one job
    per tier, as the Helm chart's ServiceMonitor makes them). Each variable query lists what
    it should, every expression — after Grafana's interpolation of all jobs and instances —
    is valid PromQL, and every panel has a series (but those in NOTHING_TO_SHOW)."""
    write_and_query(server, db)
    write_and_query(cluster, db)
    targets = {"ferrite": [server.url]}
    for svc, urls in cluster_services(cluster).items():
        targets[f"ferrite-{svc}"] = urls
    prom = prometheus(targets)
    n_targets = sum(len(urls) for urls in targets.values())

    # Enough scrapes of every target for a rate over RATE_INTERVAL.
    deadline = time.monotonic() + 60
    while True:
        ready = prom.query(f"min(count_over_time(ferrite_build_info[{RATE_INTERVAL}])) >= 4 "
                           f"and count(ferrite_build_info) == {n_targets}")
        if ready:
            break
        assert time.monotonic() < deadline, (
            f"prometheus has not scraped all {n_targets} targets 4 times: "
            f"{prom.query('up')}\n{prom.log_tail()}")
        time.sleep(0.5)

    # The variables, as Grafana queries them (label values of ferrite_build_info), each
    # set to All.
    d = load_dashboard()
    values = {"__rate_interval": RATE_INTERVAL}
    found = {}
    for v in d["templating"]["list"]:
        if v.get("type") != "query":
            continue
        m = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", variable_query(v))
        assert m, f"variable {v['name']}: {variable_query(v)!r}"
        found[v["name"]] = prom.get(f"/api/v1/label/{m.group(2)}/values",
                                    **{"match[]": interpolate(m.group(1), values)})
        assert found[v["name"]], f"variable {v['name']} has no values: {variable_query(v)!r}"
        values[v["name"]] = promql_regex(sorted(found[v["name"]]))
    assert sorted(found["job"]) == sorted(targets)
    assert sorted(found["instance"]) == sorted(u.split("://")[1] for urls in targets.values() for u in urls)
    assert found.get("catalog_job", ["ferrite-catalog"]) == ["ferrite-catalog"], found

    invalid, empty = [], []
    for p in query_panels(d):
        series = 0
        for t in p["targets"]:
            expr = interpolate(t["expr"], values)
            r = requests.get(prom.url + "/api/v1/query", params={"query": expr}, timeout=10)
            if r.status_code != 200 or r.json().get("status") != "success":
                invalid.append(f"{p['title']}: {t['expr']!r}: {r.text[:300]}")
                continue
            series += len(r.json()["data"]["result"])
        if series == 0 and p["title"] not in NOTHING_TO_SHOW:
            empty.append(f"{p['title']}: " + " | ".join(t["expr"] for t in p["targets"]))
    assert not invalid, "expressions Prometheus refuses:\n  " + "\n  ".join(invalid)
    assert not empty, "panels without data after a write and a query:\n  " + "\n  ".join(empty)
