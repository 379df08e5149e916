"""ferrite beside its peers — InfluxDB 1.x (`influxd`), QuestDB and VictoriaMetrics — on the
same TSBS data, loaded the same way, with every answer compared.

    .venv/bin/python services/testkit/python/bench/peers.py --ferrite PATH [--hosts 100] [--days 1]
        [--queries 100] [--warmup 5] [--seed 1] [--systems ferrite,ferrite-cluster,influxd,questdb,
        victoriametrics] [--keep-going] [--write-docs]

One system at a time, each on a fresh data directory in a temporary one, the peers first:

Load. TSBS cpu-only data (`--hosts` hosts, ten tags, ten integer usage_* fields as bounded
random walks, one row per host every 10 s for `--days` days from midnight UTC a week and more
ago), generated and posted as line protocol over HTTP by one loader, `ferrite-bench --load`
(the same seed, 4 concurrent keep-alive clients and 5,000-line batches for every system). The
rate counts until every row is queryable: after the loader's last acknowledgement, a count
query is polled until it sees every row, and that wait is part of the time. Bytes on disk
(allocated blocks, as `du`) per field value are measured once each system is at rest: influxd
compacted to one TSM file per shard, QuestDB stopped cleanly, VictoriaMetrics flushed, force-
merged and stopped, `ferrite serve` stopped (SIGTERM persists everything to Parquet); for the
cluster, whose files live in MinIO, the Parquet bytes `system.tables` reports once the
ingesters have persisted everything.

Queries. The TSBS devops query types below, each `--queries` random instances (random windows
and hosts from a seeded generator, so every system gets the identical list) after `--warmup`
untimed ones: InfluxQL as TSBS writes it for InfluxDB (influxql_tsbs.Queries) on ferrite and
influxd; SQL as TSBS writes it for TimescaleDB on ferrite (DataFusion: date_bin, DISTINCT ON)
and for QuestDB in QuestDB's SQL (SAMPLE BY … ALIGN TO CALENDAR, the same calendar buckets as
date_bin; LATEST ON). VictoriaMetrics speaks PromQL, so it is compared on load and size only.
ferrite runs both as `serve` and as the local cluster (router, 2 ingesters, querier, catalog,
PostgreSQL, MinIO), each twice: right after the load with the data still in the ingesters
(their persist age raised so nothing persists during the phase), and over Parquet files only
(`serve` restarted; the cluster after its ingesters persisted everything, in a second
cluster loaded the same way whose persist age is cut to a minute so the bench does not wait
out the default five). Every answer is compared with the first
system's answer to the same query — influxd's for InfluxQL, QuestDB's for SQL: InfluxQL with
influxql_corpus.differences, SQL row by row after normalising column names and timestamps;
floats within 1e-9 relative; order-insensitive only where the query defines no order (high-cpu,
and lastpoint, whose QuestDB form has none). A mismatch stops the run with the query and both
answers (`--keep-going`: counted per type, the first of each printed). A time runs from
sending the request to the last byte of the answer over a keep-alive connection, JSON decoding
excluded. No system caches query results (QuestDB caches compiled plans, ferrite Parquet
metadata, influxd keeps its TSM index in memory — each its default).

Prints a markdown report: the machine, versions and what each system guarantees when it
acknowledges a write, load and size, medians and p99s per query type, ferrite ÷ peer ratios
and the issue's targets. `--write-docs` puts it between the bench-peers markers of
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable
from urllib.parse import urlencode, urlsplit

import requests

# The testkit's modules first: its peers.py (the servers) before this file's directory.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ferrite_cluster import FerriteCluster, find_launcher  # noqa: E402
from ferrite_e2e import TOKEN, FerriteServer  # noqa: E402
from influxd import Answer, find_influxd  # noqa: E402
from influxql_corpus import CPU_FIELDS, NS, differences  # noqa: E402
from influxql_tsbs import (DB, HOUR, INTERVAL_S, QUERY_TYPES, Queries, RestingInfluxD, System,  # noqa: E402
                           percentile, rfc3339, rows as influxql_rows)
from peers import QuestDB, VictoriaMetrics, find_questdb_jar, find_victoriametrics, questdb_version  # noqa: E402

REPO = Path(__file__).resolve().parents[4]
DOCS = REPO / "docs" / "benchmarks.md"
BEGIN, END = "<!-- bench-peers:begin -->", "<!-- bench-peers:end -->"
SYSTEMS = ["influxd", "questdb", "victoriametrics", "ferrite", "ferrite-cluster"]  # the order they run in
LABEL = {"influxd": "influxd", "questdb": "QuestDB", "victoriametrics": "VictoriaMetrics", "ferrite": "ferrite serve",
         "ferrite-cluster": "ferrite cluster"}
CLIENTS, BATCH_LINES = 4, 5000
FERRITE_AUTH = {"Authorization": f"Token {TOKEN}"}
QUERYABLE_TIMEOUT_S = 900.0
PERSIST_TIMEOUT_S = 1200.0
PERSIST_AGE_INGESTERS_S = 86400  # the ingesters phase: nothing persists by age while it runs
# The files phase: everything persists by age, once, a minute after the load started (a load
# takes seconds), not after the default five minutes.
PERSIST_AGE_FILES_S = 60
FLOAT_REL = 1e-9
DVC_VALUES = 10_000  # the distinct-value cache lookup the issue sets a target for
MIN_TIMED = 10  # a type cut by --type-budget still has this many timed queries

TYPES = ["single-groupby-1-1-1", "single-groupby-5-1-12", "cpu-max-all-8", "double-groupby-1",
         "double-groupby-all", "high-cpu-1", "high-cpu-all", "lastpoint", "groupby-orderby-limit"]
# SQL answers compared as multisets: TSBS's high-cpu has no ORDER BY, QuestDB's lastpoint neither.
SQL_UNORDERED = {"high-cpu-1", "high-cpu-all", "lastpoint"}
TIME_COLUMNS = {"time", "minute", "hour"}

DURABILITY = {
    "ferrite serve": "acknowledges a write after its WAL fsync",
    "ferrite cluster": "the router acknowledges after the ingester's WAL fsync (replication 1)",
    "influxd": "acknowledges after its WAL fsync (`wal-fsync-delay = 0`, the default)",
    "QuestDB": "run with `cairo.commit.mode=sync` (its default, `nosync`, flushes nothing): acknowledges a "
               "request once it is committed to the table's WAL and the WAL files are flushed (msync); the "
               "rows become queryable later, when the WAL is applied to the table",
    "VictoriaMetrics": "acknowledges once the rows are in memory, not durable: it saves them to disk within "
                       "`-inmemoryDataFlushInterval` (5 s by default); a crash loses the last seconds",
}


# --- the SQL queries (TSBS devops.go: timescaledb for ferrite, QuestDB's own) --------------------

@dataclass(frozen=True)
class Sql:
    """One query instance in both dialects."""
    ferrite: str
    questdb: str


class SqlQueries(Queries):
    """The InfluxQL generator's random windows and hosts, written as SQL: TSBS's TimescaleDB
    shapes for ferrite (the hostname is a column, not a join), QuestDB's equivalents."""

    def hosts_in(self, n: int) -> str:
        names = self.rng.sample(range(self.hosts), min(n, self.hosts))
        return ", ".join(f"'host_{h}'" for h in names)

    def buckets(self, unit: str, aggs: str, where: str, order: str = "", tags: str = "") -> Sql:
        """`aggs` per (`tags`, bucket of one `unit`) of the rows matching `where` (`{time}`
        standing for the time column)."""
        interval, sample = {"minute": ("1 minute", "1m"), "hour": ("1 hour", "1h")}[unit]
        order = order or unit
        return Sql(
            f"SELECT date_bin(INTERVAL '{interval}', time) AS {unit}, {tags}{aggs} FROM cpu "
            f"WHERE {where.format(time='time')} GROUP BY {unit}{', ' + tags.rstrip(', ') if tags else ''} "
            f"ORDER BY {order}",
            f"SELECT timestamp AS {unit}, {tags}{aggs} FROM cpu WHERE {where.format(time='timestamp')} "
            f"SAMPLE BY {sample} ALIGN TO CALENDAR ORDER BY {order}")

    def group_by_time(self, hosts: int, metrics: int, seconds: int) -> Sql:
        lo, hi = self.window(seconds)
        aggs = ", ".join(f"max({m}) AS max_{m}" for m in CPU_FIELDS[:metrics])
        return self.buckets("minute", aggs, f"hostname IN ({self.hosts_in(hosts)}) AND {{time}} >= '{lo}' "
                                            f"AND {{time}} < '{hi}'")

    def max_all_cpu(self, hosts: int) -> Sql:
        lo, hi = self.window(8 * HOUR)
        aggs = ", ".join(f"max({m}) AS max_{m}" for m in CPU_FIELDS)
        return self.buckets("hour", aggs, f"hostname IN ({self.hosts_in(hosts)}) AND {{time}} >= '{lo}' "
                                          f"AND {{time}} < '{hi}'")

    def double_group_by(self, metrics: int) -> Sql:
        lo, hi = self.window(12 * HOUR)
        aggs = ", ".join(f"avg({m}) AS mean_{m}" for m in CPU_FIELDS[:metrics])
        return self.buckets("hour", aggs, f"{{time}} >= '{lo}' AND {{time}} < '{hi}'", order="hour, hostname",
                            tags="hostname, ")

    def high_cpu(self, hosts: int) -> Sql:
        lo, hi = self.window(12 * HOUR)
        where = f" AND hostname IN ({self.hosts_in(hosts)})" if hosts else ""
        return Sql(f"SELECT * FROM cpu WHERE usage_user > 90.0 AND time >= '{lo}' AND time < '{hi}'{where}",
                   f"SELECT * FROM cpu WHERE usage_user > 90.0 AND timestamp >= '{lo}' AND timestamp < '{hi}'"
                   f"{where}")

    def lastpoint(self) -> Sql:
        return Sql("SELECT DISTINCT ON (hostname) * FROM cpu ORDER BY hostname, time DESC",
                   "SELECT * FROM cpu LATEST ON timestamp PARTITION BY hostname")

    def groupby_orderby_limit(self) -> Sql:
        _, hi = self.window(HOUR)
        return self.buckets("minute", "max(usage_user) AS max_usage_user", f"{{time}} < '{hi}'",
                            order="minute DESC LIMIT 5")


def query_lists(generator, start_s: int, end_s: int, hosts: int, seed: int, n: int) -> dict[str, list]:
    """`n` instances of each type, from one seeded generator: the same list for every system."""
    gen = generator(start_s, end_s, hosts, random.Random(seed))
    makers = {kind: make for kind, make, _ in QUERY_TYPES}
    return {kind: [makers[kind](gen) for _ in range(n)] for kind in TYPES}


INFLUXQL_TIES_UNORDERED = {kind: ties for kind, _, ties in QUERY_TYPES}


# --- answers -----------------------------------------------------------------------------------

@dataclass
class SqlAnswer:
    """A SQL answer normalised: rows of {column: value}, timestamps as integer nanoseconds
    (QuestDB's designated `timestamp` named `time`), or what went wrong."""
    rows: list[dict] | None
    error: str | None = None

    def to_json(self) -> dict:
        return {"rows": self.rows, "error": self.error}


def parse_time(text: str) -> int:
    """ferrite's "2026-11-24T00:00:10[.123]" and QuestDB's "2026-11-24T00:00:10.000000Z" as ns."""
    text = text.rstrip("Z")
    whole, _, frac = text.partition(".")
    seconds = int(datetime.fromisoformat(whole).replace(tzinfo=timezone.utc).timestamp())
    return seconds * NS + int((frac + "000000000")[:9])


def ferrite_sql_answer(r: requests.Response) -> SqlAnswer:
    if r.status_code != 200:
        return SqlAnswer(None, f"{r.status_code} {r.text[:2000]}")
    return SqlAnswer([{k: parse_time(v) if k in TIME_COLUMNS and v is not None else v for k, v in row.items()}
                      for row in r.json()])


def questdb_sql_answer(r: requests.Response) -> SqlAnswer:
    body = r.json() if r.headers.get("Content-Type", "").startswith("application/json") else None
    if r.status_code != 200 or body is None or "error" in body:
        return SqlAnswer(None, f"{r.status_code} {r.text[:2000]}")
    columns = [("time" if c["name"] == "timestamp" else c["name"], c["type"] == "TIMESTAMP")
               for c in body["columns"]]
    return SqlAnswer([{name: parse_time(v) if is_time and v is not None else v
                       for (name, is_time), v in zip(columns, row)} for row in body["dataset"]])


def same_value(a, b) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return a == b or abs(a - b) <= FLOAT_REL * max(abs(a), abs(b))
    return a == b


def row_key(row: dict) -> tuple:
    return tuple((k, round(v, 6) if isinstance(v, float) else v) for k, v in sorted(row.items()))


def sql_differences(want: SqlAnswer, got: SqlAnswer, ordered: bool) -> list[str]:
    """What differs between two SQL answers (a null and a missing column are the same)."""
    if want.error or got.error:
        return [f"error: reference {want.error!r}, this one {got.error!r}"] if want.error != got.error else []
    if len(want.rows) != len(got.rows):
        return [f"{len(want.rows)} rows, this one {len(got.rows)}"]
    pairs = zip(want.rows, got.rows) if ordered else zip(sorted(want.rows, key=row_key),
                                                         sorted(got.rows, key=row_key))
    out = []
    for i, (w, g) in enumerate(pairs):
        for column in sorted(set(w) | set(g)):
            if not same_value(w.get(column), g.get(column)):
                out.append(f"row {i} {column}: reference {w.get(column)!r}, this one {g.get(column)!r}")
        if len(out) >= 5:
            break
    return out


class References:
    """The first answer to each query instance (influxd's, QuestDB's, else ferrite's first),
    kept on disk; every later answer to it is compared with it."""

    def __init__(self, root: Path):
        self.root = root
        self.owner: dict[str, str] = {}

    def check(self, system: str, lang: str, kind: str, i: int, q: str, answer) -> tuple[list[str], str]:
        """(differences from the reference, the reference's text); empty when this is it."""
        path = self.root / lang / kind / f"{i}.json"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            if lang == "influxql":
                fail = influxql_failure(answer)
                if fail:
                    raise SystemExit(f"{system} failed {kind}: {q}\n  {fail}")
                path.write_text(json.dumps({"status": answer.status, "content_type": answer.content_type,
                                            "documents": answer.documents, "text": answer.text[:2000]}))
            else:
                if answer.error:
                    raise SystemExit(f"{system} failed {kind}: {q}\n  {answer.error}")
                path.write_text(json.dumps(answer.to_json()))
            self.owner.setdefault(lang, system)
            return [], ""
        stored = json.loads(path.read_text())
        if lang == "influxql":
            want = Answer(**stored)
            return differences(want, answer, ties_unordered=INFLUXQL_TIES_UNORDERED[kind]), stored["text"]
        want = SqlAnswer(stored["rows"], stored["error"])
        return sql_differences(want, answer, kind not in SQL_UNORDERED), json.dumps(stored)[:2000]


def influxql_failure(answer: Answer) -> str:
    errors = [res["error"] for d in answer.documents or [] for res in d.get("results", []) if "error" in res]
    if answer.status != 200 or answer.documents is None or errors:
        return f"{answer.status} {answer.text[:1000]}"
    return ""


# --- clients -----------------------------------------------------------------------------------

class SqlSystem:
    """A keep-alive session to ferrite's `/api/v3/query_sql` or QuestDB's `/exec`."""

    def __init__(self, url: str, dialect: str, headers: dict):
        self.url, self.dialect = url, dialect
        self.session = requests.Session()
        self.session.headers.update(headers)

    def query(self, q: Sql) -> tuple[float, SqlAnswer]:
        start = time.perf_counter()
        if self.dialect == "ferrite":
            r = self.session.get(self.url + "/api/v3/query_sql", params={"db": DB, "q": q.ferrite, "format": "json"},
                                 timeout=600)
        else:
            r = self.session.get(self.url + "/exec", params={"query": q.questdb}, timeout=600)
        elapsed = (time.perf_counter() - start) * 1000
        return elapsed, (ferrite_sql_answer if self.dialect == "ferrite" else questdb_sql_answer)(r)

    def rows(self, sql: str) -> list[dict]:
        """A helper query's rows (ferrite's dialect); [] when the database does not exist yet."""
        r = self.session.get(self.url + "/api/v3/query_sql", params={"db": DB, "q": sql, "format": "json"},
                             timeout=600)
        if r.status_code == 404:
            return []
        r.raise_for_status()
        return r.json()


def sql_text(q) -> str:
    return q.ferrite if isinstance(q, Sql) else q


def answer_rows(answer) -> int:
    return influxql_rows(answer) if isinstance(answer, Answer) else len(answer.rows or [])


# --- the bench ---------------------------------------------------------------------------------

@dataclass
class Load:
    rows: int
    request_bytes: int
    acked_s: float  # the loader: first request to last acknowledgement
    wait_s: float  # then until a count sees every row

    @property
    def rate(self) -> float:
        return self.rows / (self.acked_s + self.wait_s)


@dataclass
class Size:
    bytes: int
    what: str


@dataclass
class Timings:
    samples: list[float]
    rows: float
    mismatches: int

    @property
    def median(self) -> float:
        return statistics.median(self.samples)


@dataclass
class Bench:
    args: argparse.Namespace
    loader: Path
    tmp: Path
    rows: int
    start_ns: int
    queries: dict[str, dict[str, list]]  # lang -> type -> instances
    refs: References
    loads: dict[str, list[Load]] = field(default_factory=dict)
    sizes: dict[str, Size] = field(default_factory=dict)
    timings: dict[tuple[str, str, str], Timings] = field(default_factory=dict)  # (state, lang, type)
    cache_timings: dict[tuple[str, str], Timings] = field(default_factory=dict)  # (state, cache query)
    notes: list[str] = field(default_factory=list)
    short: dict[tuple[str, str, str], int] = field(default_factory=dict)  # types cut by the time budget

    def say(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    # load ------------------------------------------------------------------------------------

    def load(self, system: str, url: str, path: str, headers: dict, count: Callable[[], int]) -> Load:
        """Run the loader against `url + path`, then poll `count` until it sees every row."""
        cmd = [str(self.loader), "--load", url, "--write-path", path,
               *[a for name, value in headers.items() for a in ("--header", f"{name}: {value}")],
               "--hosts", str(self.args.hosts), "--rows", str(self.rows), "--start-ns", str(self.start_ns),
               "--seed", str(self.args.seed), "--clients", str(CLIENTS), "--batch-lines", str(BATCH_LINES)]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"the loader failed on {system} ({out.returncode}): {out.stderr[-3000:]}")
        report = json.loads(out.stdout.strip().splitlines()[-1])
        assert report["rows"] == self.rows, report
        # Queryable when a count sent then sees every row (its own run time is not counted).
        acked = time.perf_counter()
        while True:
            sent = time.perf_counter()
            seen = count()
            if seen == self.rows:
                break
            if seen > self.rows:
                raise RuntimeError(f"{system} counts {seen} rows, {self.rows} were written")
            if sent - acked > QUERYABLE_TIMEOUT_S:
                raise RuntimeError(f"{system}: {seen} of {self.rows} rows queryable after {QUERYABLE_TIMEOUT_S:.0f}s")
            time.sleep(0.05)
        load = Load(self.rows, report["bytes"], report["seconds"], sent - acked)
        self.loads.setdefault(system, []).append(load)
        self.say(f"{system}: loaded {load.rows:,} rows ({load.request_bytes / 2**20:.0f} MiB) in {load.acked_s:.1f} s "
                 f"to the last acknowledgement ({load.rows / load.acked_s:,.0f} rows/s), all queryable "
                 f"{load.wait_s:.2f} s later: {load.rate:,.0f} rows/s")
        return load

    def size(self, system: str, size: Size) -> None:
        self.sizes[system] = size
        self.say(f"{system}: {size.bytes / 2**20:.1f} MiB on disk ({size.what}), "
                 f"{size.bytes / (self.rows * len(CPU_FIELDS)):.2f} bytes per value")

    # queries ---------------------------------------------------------------------------------

    def run(self, state: str, lang: str, system) -> None:
        """Every type's warm-up and timed queries on one system, each answer checked."""
        warmup = self.args.warmup
        for kind in TYPES:
            samples, total_rows, mismatches = [], 0, 0
            started = time.perf_counter()
            for i, q in enumerate(self.queries[lang][kind]):
                if len(samples) >= MIN_TIMED and time.perf_counter() - started > self.args.type_budget:
                    break  # a slow type: the samples so far, and the report says how many
                ms, answer = system.query(q)
                diffs, reference = self.refs.check(state, lang, kind, i, sql_text(q), answer)
                if diffs:
                    mismatches += 1
                    report = (f"{state} ({lang}) differs from {self.refs.owner[lang]} on {kind}\n  q: {sql_text(q)}\n"
                              + (f"  questdb q: {q.questdb}\n" if isinstance(q, Sql) else "")
                              + "\n".join(f"  - {d}" for d in diffs)
                              + f"\n  {self.refs.owner[lang]}: {reference}\n  {state}: "
                              + (answer.text[:2000] if isinstance(answer, Answer) else json.dumps(answer.to_json())[:2000]))
                    if not self.args.keep_going:
                        raise SystemExit(report)
                    if mismatches == 1:
                        self.say(report)
                if i >= warmup:
                    samples.append(ms)
                    total_rows += answer_rows(answer)
            t = Timings(samples, total_rows / len(samples), mismatches)
            self.timings[(state, lang, kind)] = t
            if len(samples) < self.args.queries:
                self.short[(state, lang, kind)] = len(samples)
            self.say(f"  {state} {lang} {kind}: median {t.median:.1f} ms, p99 {percentile(samples, 0.99):.1f} ms, "
                     f"{t.rows:,.0f} rows per answer" + (f", {mismatches} MISMATCHES" if mismatches else ""))

    # the systems -----------------------------------------------------------------------------

    def influxd(self) -> None:
        srv = RestingInfluxD(find_influxd(), self.tmp / "influxd")
        try:
            srv.start()
            client = System("influxd", srv.url, {})
            client.session.post(srv.url + "/query", data={"q": f'CREATE DATABASE "{DB}"'}, timeout=60).raise_for_status()
            self.load("influxd", srv.url, f"/write?db={DB}", {}, lambda: influxql_count(client))
            srv.wait_at_rest()
            self.size("influxd", Size(disk_bytes(srv.base_dir / d for d in ("data", "wal", "meta")),
                                      "data, wal and meta, compacted to one TSM file per shard"))
            self.run("influxd", "influxql", client)
        except BaseException:
            self.say(srv.log_tail())
            raise
        finally:
            srv.stop()

    def questdb(self) -> None:
        srv = QuestDB(find_questdb_jar(), self.tmp / "questdb")
        try:
            srv.start()
            client = SqlSystem(srv.url, "questdb", {})
            self.load("QuestDB", srv.url, "/write", {}, lambda: questdb_count(srv, client.session))
            self.run("QuestDB", "sql", client)
        except BaseException:
            self.say(srv.log_tail())
            raise
        finally:
            srv.stop()
        # Its WAL segments stay on disk, applied, until a purge job removes them: not counted.
        wal = disk_bytes(srv.data_dir.glob("*/wal*"))
        self.size("QuestDB", Size(disk_bytes([srv.data_dir]) - wal, f"db/ after a clean shutdown, less "
                                                                    f"{wal / 2**20:.0f} MiB of applied WAL segments"))

    def victoriametrics(self) -> None:
        srv = VictoriaMetrics(find_victoriametrics(), self.tmp / "victoriametrics")
        try:
            srv.start()
            session = requests.Session()
            self.load("VictoriaMetrics", srv.url, "/write", {}, lambda: vm_count(srv.url, session, self))
            vm_settle(srv.url, session)
        except BaseException:
            self.say(srv.log_tail())
            raise
        finally:
            srv.stop()
        self.size("VictoriaMetrics", Size(disk_bytes([srv.data_dir]), "after force_flush, force_merge and a clean "
                                                                   "shutdown"))

    def ferrite_serve(self) -> None:
        data = self.tmp / "ferrite"
        srv = FerriteServer(self.args.ferrite, data, self.tmp / "ferrite.log",
                            args=["--persist-age-seconds", str(PERSIST_AGE_INGESTERS_S)])
        try:
            srv.start()
            sql = SqlSystem(srv.url, "ferrite", FERRITE_AUTH)
            self.load("ferrite serve", srv.url, f"/api/v2/write?bucket={DB}", FERRITE_AUTH, lambda: ferrite_count(sql))
            self.ferrite_phase("ferrite serve (ingesters)", srv.url, sql)
            srv.stop()
            self.size("ferrite serve", Size(disk_bytes([data]), "the data directory after SIGTERM persisted "
                                                                "everything"))
            srv.start()
            self.ferrite_phase("ferrite serve (files)", srv.url, SqlSystem(srv.url, "ferrite", FERRITE_AUTH))
        except BaseException:
            self.say(srv.log_tail())
            raise
        finally:
            srv.stop()

    def ferrite_cluster(self) -> None:
        launcher = find_launcher(self.args.ferrite)
        # Ingesters phase: a cluster whose ingesters persist nothing by age during the phase;
        # files phase: one whose ingesters persist everything soon after the load.
        binaries = []
        for name, age in (("ferrite-persist-late", PERSIST_AGE_INGESTERS_S),
                          ("ferrite-persist-soon", PERSIST_AGE_FILES_S)):
            wrapper = self.tmp / name
            wrapper.write_text(PERSIST_AGE_WRAPPER.format(age=age, ferrite=self.args.ferrite.resolve()))
            wrapper.chmod(0o755)
            binaries.append(wrapper)
        for i, (state, binary) in enumerate((("ferrite cluster (ingesters)", binaries[0]),
                                             ("ferrite cluster (files)", binaries[1]))):
            cluster = FerriteCluster(launcher, binary, self.tmp / f"cluster-{i}.log")
            try:
                cluster.start()
                sql = SqlSystem(cluster.url, "ferrite", FERRITE_AUTH)
                self.load("ferrite cluster", cluster.url, f"/api/v2/write?bucket={DB}", FERRITE_AUTH,
                          lambda: ferrite_count(sql))
                if state.endswith("(files)"):
                    persisted = wait_persisted(sql, self.rows)
                    self.say(f"ferrite cluster: every row persisted {persisted:.0f} s after the load (the ingesters' "
                             f"persist age: {PERSIST_AGE_FILES_S} s)")
                    self.size("ferrite cluster", Size(parquet_bytes(sql), "Parquet files in MinIO (system.tables)"))
                self.ferrite_phase(state, cluster.url, sql)
            except BaseException:
                self.say(cluster.log_tail())
                raise
            finally:
                cluster.stop()

    def ferrite_phase(self, state: str, url: str, sql: SqlSystem) -> None:
        """Both languages on one ferrite state, with where its rows are before and after."""
        before = where_rows(sql)
        self.run(state, "sql", sql)
        self.run(state, "influxql", System(state, url, FERRITE_AUTH))
        after = where_rows(sql)
        self.say(f"{state}: rows in the ingesters / in Parquet files: {before[0]:,} / {before[1]:,} before the "
                 f"queries, {after[0]:,} / {after[1]:,} after")
        expected = (self.rows, 0) if state.endswith("(ingesters)") else (0, self.rows)
        if before != expected or after != expected:
            self.notes.append(f"{state}: rows in the ingesters / in files were {before} before the queries and "
                              f"{after} after, not {expected}")
        # After the checks above: the distinct-value cache's table adds rows of its own.
        if state == "ferrite serve (ingesters)":
            self.caches(state, url, sql, last=True, distinct=False)
        elif state == "ferrite serve (files)":
            self.caches(state, url, sql, last=False, distinct=True)
        elif state == "ferrite cluster (ingesters)":
            self.caches(state, url, sql, last=True, distinct=True)


    def caches(self, state: str, url: str, sql: SqlSystem, last: bool, distinct: bool) -> None:
        """lastpoint through a last-value cache on `cpu` and a lookup of a 10,000-value
        distinct-value cache, each timed like the query types.

        A cache holds the rows still in the ingesters when it is created, so each is created
        where its rows are still there: the last-value cache right after the load (`serve`
        keeps it over its restart, from the rows it saves at stop, but the size measured at
        that stop includes them: 100 rows); the distinct-value cache's 10,000 hosts written
        to their own table just before (in `serve`'s files phase, after the size is measured).
        """
        fast = KeepAlive(url, FERRITE_AUTH)
        created = []
        if last:
            created.append(("last_cache", {"table": "cpu", "name": "lastpoint", "key_columns": ["hostname"],
                                           "count": 1}))
        if distinct:
            lines = "".join(f"dvc,host=host_{i:05} v=1i {self.start_ns + i}\n" for i in range(DVC_VALUES))
            r = sql.session.post(url + "/api/v2/write", params={"bucket": DB, "precision": "ns"}, data=lines)
            r.raise_for_status()
            created.append(("distinct_cache", {"table": "dvc", "name": "hosts", "columns": ["host"],
                                               "max_cardinality": DVC_VALUES}))
        for path, body in created:
            r = sql.session.post(url + "/api/v3/configure/" + path, json={"db": DB, **body})
            if r.status_code != 201:
                raise RuntimeError(f"{state}: creating the {path}: {r.status_code} {r.text}")
        timed = []
        if last or state == "ferrite serve (files)":
            # The cache's lastpoint must equal the table's (checked against QuestDB above).
            fields = ", ".join(CPU_FIELDS)
            want = sql.rows(f"SELECT DISTINCT ON (hostname) hostname, {fields}, time FROM cpu "
                            "ORDER BY hostname, time DESC")
            got = sql.rows(f"SELECT hostname, {fields}, time FROM last_cache('cpu', 'lastpoint') ORDER BY hostname")
            if want != got:
                raise SystemExit(f"{state}: last_cache('cpu') differs from lastpoint over the table: "
                                 f"{len(got)} rows, {len(want)} expected; first: {got[:1]} vs {want[:1]}")
            timed.append(("lastpoint via last_cache()", "SELECT * FROM last_cache('cpu', 'lastpoint')",
                          self.args.hosts))
        if distinct:
            timed.append((f"{DVC_VALUES:,}-value distinct_cache()", "SELECT host FROM distinct_cache('dvc')",
                          DVC_VALUES))
        for name, q, rows in timed:
            samples = []
            for i in range(self.args.warmup + self.args.queries):
                ms, body = fast.get("/api/v3/query_sql", {"db": DB, "q": q, "format": "json"})
                if i == 0 and len(json.loads(body)) != rows:
                    raise SystemExit(f"{state}: {q} returned {len(json.loads(body))} rows, not {rows}")
                if i >= self.args.warmup:
                    samples.append(ms)
            t = Timings(samples, rows, 0)
            self.cache_timings[(state, name)] = t
            self.say(f"  {state} {name}: median {t.median:.2f} ms, p99 {percentile(samples, 0.99):.2f} ms")


class KeepAlive:
    """One keep-alive HTTP/1.1 connection timed from the request to the last byte (the
    `requests` session adds about a millisecond of its own, too much for sub-millisecond
    answers)."""

    def __init__(self, url: str, headers: dict):
        u = urlsplit(url)
        self.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=600)
        self.headers = headers

    def get(self, path: str, params: dict) -> tuple[float, bytes]:
        start = time.perf_counter()
        self.conn.request("GET", f"{path}?{urlencode(params)}", headers=self.headers)
        r = self.conn.getresponse()
        body = r.read()
        elapsed = (time.perf_counter() - start) * 1000
        if r.status != 200:
            raise RuntimeError(f"{path} {params}: {r.status} {body[:500]!r}")
        return elapsed, body


PERSIST_AGE_WRAPPER = """#!/usr/bin/env bash
# ferrite with the ingesters' --persist-age-seconds set to {age}, for ferrite-test-cluster
# (which passes its own): the bench decides when its cluster persists.
args=()
prev=
for a in "$@"; do
    if [ "$prev" = --persist-age-seconds ]; then a={age}; fi
    args+=("$a")
    prev=$a
done
exec {ferrite} "${{args[@]}}"
"""


# --- per-system helpers ------------------------------------------------------------------------

def influxql_count(client: System) -> int:
    _, answer = client.query("SELECT count(usage_user) FROM cpu")
    series = [s for d in answer.documents or [] for res in d.get("results", []) for s in res.get("series", [])]
    return series[0]["values"][0][1] if series else 0


def ferrite_count(sql: SqlSystem) -> int:
    rows = sql.rows("SELECT count(*) AS n FROM cpu")
    return rows[0]["n"] if rows else 0


def questdb_count(srv: QuestDB, session: requests.Session) -> int:
    r = srv.exec(session, "SELECT count() FROM cpu")
    body = r.json()
    return body["dataset"][0][0] if r.status_code == 200 and "dataset" in body else 0  # no table yet


def vm_count(url: str, session: requests.Session, bench: Bench) -> int:
    """Samples of every cpu_* series in the loaded range, divided by the ten fields."""
    first, last = bench.start_ns // NS, bench.start_ns // NS + (bench.rows // bench.args.hosts - 1) * INTERVAL_S
    r = session.get(url + "/api/v1/query", params={
        "query": f'sum(count_over_time({{__name__=~"cpu_.*"}}[{last - first + INTERVAL_S}s]))',
        "time": str(last), "nocache": "1"}, timeout=600)
    r.raise_for_status()
    result = r.json()["data"]["result"]
    samples = int(result[0]["value"][1]) if result else 0
    return samples // len(CPU_FIELDS) if samples % len(CPU_FIELDS) == 0 else -1


def vm_settle(url: str, session: requests.Session) -> None:
    """Flush the in-memory parts, merge everything, and wait until no merge runs."""
    session.get(url + "/internal/force_flush", timeout=600).raise_for_status()
    session.get(url + "/internal/force_merge", timeout=600).raise_for_status()
    deadline = time.monotonic() + PERSIST_TIMEOUT_S
    while time.monotonic() < deadline:
        metrics = session.get(url + "/metrics", timeout=60).text
        active = sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
                     if line.startswith(("vm_active_merges", "vm_active_force_merges")))
        if active == 0:
            return
        time.sleep(0.5)
    raise RuntimeError("VictoriaMetrics still merging after force_merge")


def where_rows(sql: SqlSystem) -> tuple[int, int]:
    """(rows buffered in the ingesters, rows in Parquet files) of the benchmark database."""
    buffered = sql.rows("SELECT sum(buffered_rows) AS n FROM system.ingesters")
    files = sql.rows(f"SELECT rows FROM system.tables WHERE database_name = '{DB}' AND table_name = 'cpu'")
    return (buffered[0]["n"] or 0) if buffered else 0, files[0]["rows"] if files else 0


def wait_persisted(sql: SqlSystem, rows: int) -> float:
    started = time.perf_counter()
    while where_rows(sql) != (0, rows):
        if time.perf_counter() - started > PERSIST_TIMEOUT_S:
            raise RuntimeError(f"the cluster has not persisted every row after {PERSIST_TIMEOUT_S:.0f}s: "
                               f"{where_rows(sql)}")
        time.sleep(1)
    return time.perf_counter() - started


def parquet_bytes(sql: SqlSystem) -> int:
    return sql.rows(f"SELECT bytes FROM system.tables WHERE database_name = '{DB}' AND table_name = 'cpu'")[0]["bytes"]


def disk_bytes(paths) -> int:
    """Allocated bytes of every file under `paths`, as `du` counts them."""
    total = 0
    for root in paths:
        for dirpath, _, files in os.walk(root):
            for name in files:
                try:
                    total += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
                except FileNotFoundError:
                    pass
    return total


# --- the machine and the versions --------------------------------------------------------------

def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), "unknown CPU")
    mem_kib = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal"))
    return (f"{os.cpu_count()} CPUs (`nproc`), {model}, {mem_kib / 2**20:.0f} GiB RAM, Linux {platform.release()}, "
            f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC")


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def versions(args) -> dict[str, str]:
    def out(cmd) -> str:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        return (r.stdout + r.stderr).strip().splitlines()[0]

    found = {"ferrite": out([str(args.ferrite), "--version"])}
    if "influxd" in args.systems:
        stamp = find_influxd().parent / "influxd.version"  # written by deploy/dev/install-influxd.sh
        found["influxd"] = "InfluxDB " + stamp.read_text().strip().rsplit("@", 1)[-1]
    if "questdb" in args.systems:
        found["QuestDB"] = f"QuestDB {questdb_version()} on {out(['java', '-version'])}"
    if "victoriametrics" in args.systems:
        found["VictoriaMetrics"] = VictoriaMetrics(find_victoriametrics(), Path(".")).version()
    return found


# --- the report --------------------------------------------------------------------------------

STATES = ["ferrite serve (ingesters)", "ferrite serve (files)", "ferrite cluster (ingesters)",
          "ferrite cluster (files)"]
PEER = {"sql": "QuestDB", "influxql": "influxd"}


def md_table(header: list[str], rows: list[list[str]], align: str = "") -> str:
    """`align`: "l" or "r" per column (default: the first left, the others right)."""
    align = align or "l" + "r" * (len(header) - 1)
    lines = ["| " + " | ".join(header) + " |", "|" + "".join(" --- |" if a == "l" else " ---: |" for a in align)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}" if a is not None and b else "—"


def report(bench: Bench, header: str) -> str:
    t = bench.timings
    per_value = bench.rows * len(CPU_FIELDS)
    out = [header]

    load_rows = []
    for system in ["ferrite serve", "ferrite cluster", "influxd", "QuestDB", "VictoriaMetrics"]:
        loads = bench.loads.get(system)
        if not loads:
            continue
        size = bench.sizes.get(system)
        load = loads[0]
        load_rows.append([system, f"{load.rows / load.acked_s:,.0f}", f"{load.wait_s:.2f}", f"**{load.rate:,.0f}**"
                          + (f" (again: {', '.join(f'{x.rate:,.0f}' for x in loads[1:])})" if loads[1:] else ""),
                          f"{size.bytes / 2**20:,.1f}" if size else "—",
                          f"**{size.bytes / per_value:.2f}**" if size else "—", size.what if size else ""])
    out += ["### Load and size", "", md_table(
        ["System", "rows/s to the last ack", "then until all queryable (s)", "rows/s until queryable",
         "MiB on disk", "bytes per value", "size measured"], load_rows, "lrrrrrl"), ""]

    def cell(state, lang, kind) -> str:
        x = t.get((state, lang, kind))
        if x is None:
            return "—"
        return f"{x.median:.1f} ({percentile(x.samples, 0.99):.1f})" + (f" ✗{x.mismatches}" if x.mismatches else "")

    def median(state, lang, kind) -> float | None:
        x = t.get((state, lang, kind))
        return x.median if x else None

    for lang, title in (("sql", "SQL: ferrite and QuestDB"), ("influxql", "InfluxQL: ferrite and influxd")):
        peer = PEER[lang]
        rows = []
        for kind in TYPES:
            per_answer = next((x.rows for (s, l, k), x in t.items() if l == lang and k == kind), None)
            if per_answer is None:
                continue
            rows.append([kind, f"{per_answer:,.0f}", *[cell(s, lang, kind) for s in STATES], cell(peer, lang, kind),
                         *[ratio(median(s, lang, kind), median(peer, lang, kind)) for s in STATES]])
        if rows:
            short = ["serve ingesters", "serve files", "cluster ingesters", "cluster files"]
            out += [f"### {title}: median (p99) ms", "", md_table(
                ["Query type", "rows per answer", *[f"ferrite {s}" for s in short], peer,
                 *[f"{s} ÷ {peer}" for s in short]], rows), ""]

    # ferrite ÷ the best peer, both languages.
    best_rows = []
    for kind in TYPES:
        peers = [(median(p, lang, kind), p) for lang, p in PEER.items() if median(p, lang, kind) is not None]
        if not peers:
            continue
        best, who = min(peers)
        best_rows.append([kind, f"{best:.1f} ({who})", *[
            f"{ratio(median(s, 'sql', kind), best)} / {ratio(median(s, 'influxql', kind), best)}" for s in STATES]])
    if best_rows:
        out += ["### ferrite ÷ the best peer (median; SQL / InfluxQL)", "", md_table(
            ["Query type", "best peer ms", "serve ingesters", "serve files", "cluster ingesters", "cluster files"],
            best_rows), ""]

    if bench.cache_timings:
        cache_rows = [[state, name, f"{x.median:.2f}", f"{percentile(x.samples, 0.99):.2f}"]
                      for (state, name), x in bench.cache_timings.items()]
        out += ["### Caches: median and p99 ms over HTTP (JSON), request to last byte", "",
                md_table(["ferrite", "query", "median", "p99"], cache_rows, "llrr"), ""]
    if bench.short:
        bench.notes.append(f"--type-budget {bench.args.type_budget:g} s cut these to fewer than {bench.args.queries} "
                           "timed queries: " + ", ".join(f"{s} {l} {k} ({n})" for (s, l, k), n in bench.short.items()))
    out += ["### The issue's targets", "", targets(bench), ""]
    if bench.notes:
        out += ["Notes:", "", *[f"- {n}" for n in bench.notes], ""]
    return "\n".join(out)


def targets(bench: Bench) -> str:
    t = bench.timings
    per_value = bench.rows * len(CPU_FIELDS)
    rows = []

    def reached(ok: bool) -> str:
        return "reached" if ok else "**missed**"

    peer_rates = {s: bench.loads[s][0].rate for s in ("influxd", "QuestDB", "VictoriaMetrics") if s in bench.loads}
    durable_rates = {s: r for s, r in peer_rates.items() if s != "VictoriaMetrics"}
    for system in ("ferrite serve", "ferrite cluster"):
        if system in bench.loads and peer_rates:
            rate = bench.loads[system][0].rate
            fastest = max(peer_rates, key=peer_rates.get)
            for label, rates in (("fastest peer", peer_rates), ("fastest durable peer", durable_rates)):
                # The second row only when the fastest peer is not durable.
                if rates and (label == "fastest peer" or fastest not in durable_rates):
                    who = max(rates, key=rates.get)
                    x = rate / rates[who]
                    rows.append([f"durable ingest ≥ 2× the {label}'s rows/s", system,
                                 f"{rate:,.0f} vs {who} {rates[who]:,.0f}: {x:.2f}×", reached(x >= 2)])
    peer_sizes = {s: bench.sizes[s].bytes / per_value for s in ("influxd", "QuestDB", "VictoriaMetrics")
                  if s in bench.sizes}
    for system in ("ferrite serve", "ferrite cluster"):
        if system in bench.sizes and peer_sizes:
            mine = bench.sizes[system].bytes / per_value
            who = min(peer_sizes, key=peer_sizes.get)
            rows.append(["bytes per value ≤ the most compact peer's", system,
                         f"{mine:.2f} vs {who} {peer_sizes[who]:.2f}: {mine / peer_sizes[who]:.2f}×",
                         reached(mine <= peer_sizes[who])])
    for state in STATES:
        for lang in ("sql", "influxql"):
            misses, total = [], 0
            for kind in TYPES:
                mine = t.get((state, lang, kind))
                peers = [t[(p, l, kind)].median for l, p in PEER.items() if (p, l, kind) in t]
                if mine is None or not peers:
                    continue
                total += 1
                if mine.median > min(peers):
                    misses.append(f"{kind} {mine.median / min(peers):.2f}×")
            if total:
                rows.append([f"every query type's median ≤ the best peer's", f"{state}, {lang}",
                             f"{total - len(misses)} of {total}" + (f"; over: {', '.join(misses)}" if misses else ""),
                             reached(not misses)])
    for state in STATES:
        for lang in ("sql", "influxql"):
            x = t.get((state, lang, "single-groupby-1-1-1"))
            if x:
                rows.append(["single-groupby-1-1-1 ≤ 1 ms", f"{state}, {lang}", f"{x.median:.2f} ms",
                             reached(x.median <= 1)])
    for where in ("ingesters", "files"):
        for lang in ("sql", "influxql"):
            pairs = [(kind, t[(f"ferrite cluster ({where})", lang, kind)].median / t[(f"ferrite serve ({where})", lang,
                                                                                    kind)].median)
                     for kind in TYPES if (f"ferrite cluster ({where})", lang, kind) in t
                     and (f"ferrite serve ({where})", lang, kind) in t]
            if pairs:
                worst = max(pairs, key=lambda p: p[1])
                over = [k for k, r in pairs if r > 1.5]
                rows.append(["cluster medians within 1.5× serve's", f"{where}, {lang}",
                             f"{len(pairs) - len(over)} of {len(pairs)}; worst {worst[0]} {worst[1]:.2f}×",
                             reached(not over)])
    for (state, name), x in bench.cache_timings.items():
        limit = 0.5 if name.startswith("lastpoint") else 5.0
        rows.append([f"{name} ≤ {limit:g} ms", state, f"{x.median:.2f} ms", reached(x.median <= limit)])
    return md_table(["Target", "ferrite", "measured", ""], rows, "llll")


def header(bench: Bench, found: dict[str, str], load_start: str) -> str:
    args = bench.args
    days = bench.rows // args.hosts * INTERVAL_S / 86400
    lines = [
        f"Machine: {machine()}; load average {load_start} at the start, {loadavg()} at the end "
        f"(1, 5, 15 min; other work included).",
        "",
        "Versions: " + "; ".join(f"{k} `{v}`" for k, v in found.items()) + ".",
        "",
        f"Data: TSBS cpu-only, {args.hosts} hosts, {days:g} day(s) from {rfc3339(bench.start_ns // NS)}, one row per "
        f"host every {INTERVAL_S} s: {bench.rows:,} rows, {bench.rows * len(CPU_FIELDS):,} field values (integers). "
        f"Loaded by `ferrite-bench --load` with {CLIENTS} clients × {BATCH_LINES:,}-line batches, seed {args.seed}.",
        "",
        f"Queries: per type and system {args.warmup} warm-up queries (untimed, answers checked), then "
        f"{args.queries} timed ones (fewer where {args.type_budget:g} s of them ran out first, at least {MIN_TIMED}; "
        f"the notes list them); median (p99) in ms, from the request to the last byte. No system caches "
        f"results (QuestDB caches compiled plans, ferrite Parquet metadata: their defaults).",
        "",
        "What an acknowledged write means:",
        "",
        *[f"- {LABEL[s]}: {DURABILITY[LABEL[s]]}" for s in SYSTEMS if s in args.systems],
        "",
    ]
    return "\n".join(lines)


def write_docs(text: str) -> None:
    doc = DOCS.read_text()
    if BEGIN not in doc or END not in doc:
        raise SystemExit(f"{DOCS} has no {BEGIN} … {END} markers")
    head, rest = doc.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    DOCS.write_text(f"{head}{BEGIN}\n{text.rstrip()}\n{END}{tail}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ferrite", type=Path, required=True, help="the ferrite binary (release); "
                        "ferrite-bench and ferrite-test-cluster are taken from its directory")
    parser.add_argument("--hosts", type=int, default=100, help="TSBS scale: hosts (default 100)")
    parser.add_argument("--days", type=float, default=1, help="days of data (default 1)")
    parser.add_argument("--queries", type=int, default=100, help="timed queries per type and system (default 100)")
    parser.add_argument("--type-budget", type=float, default=15, help="seconds of timed queries per type and "
                        f"system; a slower type stops there (after at least {MIN_TIMED}) and the report says so "
                        "(default 15)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed queries per type and system first (default 5)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the data and of the query lists")
    parser.add_argument("--systems", default=",".join(["ferrite", "ferrite-cluster", "influxd", "questdb",
                                                       "victoriametrics"]),
                        help="comma-separated subset of ferrite,ferrite-cluster,influxd,questdb,victoriametrics")
    parser.add_argument("--loader", type=Path, default=None, help="the loader (default: ferrite-bench beside --ferrite)")
    parser.add_argument("--keep-going", action="store_true", help="count mismatching answers instead of stopping "
                        "at the first")
    parser.add_argument("--write-docs", action="store_true", help="write the report into docs/benchmarks.md")
    args = parser.parse_args()
    args.systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = set(args.systems) - set(SYSTEMS)
    if args.queries < 1:
        parser.error("--queries must be at least 1")
    if unknown:
        parser.error(f"unknown systems {sorted(unknown)}; choose from {SYSTEMS}")

    load_start = loadavg()
    found = versions(args)
    rows = args.hosts * int(args.days * 86400 / INTERVAL_S)
    today = int(time.time()) // 86400 * 86400
    start_s = today - (math.ceil(args.days) + 7) * 86400
    end_s = start_s + rows // args.hosts * INTERVAL_S
    n = args.warmup + args.queries
    print(f"bench-peers: {args.hosts} hosts × {args.days:g} days = {rows:,} rows; systems {', '.join(args.systems)}; "
          f"load average {load_start}", file=sys.stderr)

    with tempfile.TemporaryDirectory(prefix="bench-peers-") as tmp:
        bench = Bench(args, args.loader or args.ferrite.parent / "ferrite-bench", Path(tmp), rows, start_s * NS,
                      {"influxql": query_lists(Queries, start_s, end_s, args.hosts, args.seed, n),
                       "sql": query_lists(SqlQueries, start_s, end_s, args.hosts, args.seed, n)},
                      References(Path(tmp) / "answers"))
        started = time.perf_counter()
        runners = {"influxd": bench.influxd, "questdb": bench.questdb, "victoriametrics": bench.victoriametrics,
                   "ferrite": bench.ferrite_serve, "ferrite-cluster": bench.ferrite_cluster}
        for system in SYSTEMS:
            if system in args.systems:
                runners[system]()
                shutil.rmtree(Path(tmp) / system, ignore_errors=True)
        bench.say(f"done in {time.perf_counter() - started:.0f} s")
        text = report(bench, header(bench, found, load_start))
    print(text)
    if args.write_docs:
        write_docs(text)
        print(f"\nwritten to {DOCS}", file=sys.stderr)


if __name__ == "__main__":
    main()
