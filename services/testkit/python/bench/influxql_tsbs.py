"""The TSBS `influx` query types through InfluxQL, on ferrite and on a real InfluxDB 1.x
(`influxd`) loaded with the same data, side by side.

    .venv/bin/python services/testkit/python/bench/influxql_tsbs.py --ferrite PATH \
        [--influxd PATH] [--hosts 10] [--hours 24] [--queries 20] [--warmup 2] [--seed 1]

Both servers start in a temporary directory. The data is TSBS's `cpu-only` use case (the ten
tags and ten usage_* fields of influxql_corpus.cpu_lines, bounded random walks), one row per
host every 10 s from 2024-01-01T00:00:00Z; the same 5,000-line batches go to influxd's and
ferrite's v1 `/write`, one request at a time. Load rates are printed as context only.

Then both are brought to rest, so the queries read each one's on-disk format: ferrite is
restarted with SIGTERM (it persists everything to Parquet), influxd snapshots its cache to
TSM and compacts it fully once writes have been cold for 2 s (its defaults: 10 min and 4 h).

Each query type is generated as TSBS's `tsbs_generate_queries --use-case=devops
--format=influx` writes it (cmd/tsbs_generate_queries/databases/influx/devops.go): the same
InfluxQL text, a uniformly random window inside the loaded range (RFC 3339, whole seconds),
hosts drawn at random per query, from a seeded RNG so both systems get the identical list.
Every query is a GET of `/query` with `epoch=ns` over a keep-alive session per system. Per
type: `--warmup` queries on each, then `--queries` timed ones, the two systems alternating
which goes first. Every answer is compared (influxql_corpus.differences: series, tags,
columns, row order; floats within 1e-9 relative): a mismatch stops the run with the query.
Time is from sending the request to the last byte of the body, JSON decoding excluded.
Prints a markdown table of medians and p90s in milliseconds.
"""

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ferrite_e2e import TOKEN, FerriteServer, find_ferrite_bin  # noqa: E402
from influxd import Answer, InfluxD, find_influxd, json_documents, set_config, toml_str  # noqa: E402
from influxql_corpus import CPU_FIELDS, NS, T0, cpu_lines, differences  # noqa: E402

DB = "benchmark"
BATCH_LINES = 5000
INTERVAL_S = 10
FERRITE_AUTH = {"Authorization": f"Token {TOKEN}"}
SETTLE_TIMEOUT_S = 600.0
HOUR = 3600

# TSBS's devops durations (cmd/tsbs_generate_queries/uses/devops/common.go).
DOUBLE_GROUP_BY_S = 12 * HOUR
HIGH_CPU_S = 12 * HOUR
MAX_ALL_S = 8 * HOUR


# --- the data ----------------------------------------------------------------------------------

def batches(lines) -> list[bytes]:
    out, batch = [], []
    for line in lines:
        batch.append(line)
        if len(batch) == BATCH_LINES:
            out.append(("\n".join(batch) + "\n").encode())
            batch = []
    if batch:
        out.append(("\n".join(batch) + "\n").encode())
    return out


# --- the queries (TSBS devops.go, influx) ------------------------------------------------------

class Queries:
    """TSBS's devops query generator for InfluxDB over [start, end) seconds and `hosts` hosts."""

    def __init__(self, start: int, end: int, hosts: int, rng: random.Random):
        self.start, self.end, self.hosts, self.rng = start, end, hosts, rng

    def window(self, seconds: int) -> tuple[str, str]:
        """TimeInterval.MustRandWindow: a uniformly random start, formatted to whole seconds.
        A window longer than the data (short --hours) is clipped to it."""
        seconds = min(seconds, self.end - self.start)
        upper = self.end - seconds
        start_ns = self.start * NS + (self.rng.randrange((upper - self.start) * NS) if upper > self.start else 0)
        start = start_ns // NS
        return rfc3339(start), rfc3339(start + seconds)

    def where_hosts(self, n: int) -> str:
        """GetRandomHosts: n distinct hosts, OR'ed."""
        names = self.rng.sample(range(self.hosts), min(n, self.hosts))
        return "(" + " or ".join(f"hostname = 'host_{h}'" for h in names) + ")"

    def group_by_time(self, hosts: int, metrics: int, seconds: int) -> str:
        lo, hi = self.window(seconds)
        select = ", ".join(f"max({m})" for m in CPU_FIELDS[:metrics])
        return (f"SELECT {select} from cpu where {self.where_hosts(hosts)} and time >= '{lo}' "
                f"and time < '{hi}' group by time(1m)")

    def max_all_cpu(self, hosts: int) -> str:
        # TSBS writes `group by time(1m)` here for InfluxDB (its other databases group by hour).
        lo, hi = self.window(MAX_ALL_S)
        select = ",".join(f"max({m})" for m in CPU_FIELDS)
        return (f"SELECT {select} from cpu where {self.where_hosts(hosts)} and time >= '{lo}' "
                f"and time < '{hi}' group by time(1m)")

    def double_group_by(self, metrics: int) -> str:
        lo, hi = self.window(DOUBLE_GROUP_BY_S)
        select = ", ".join(f"mean({m})" for m in CPU_FIELDS[:metrics])
        return f"SELECT {select} from cpu where time >= '{lo}' and time < '{hi}' group by time(1h),hostname"

    def high_cpu(self, hosts: int) -> str:
        lo, hi = self.window(HIGH_CPU_S)
        where = f"and {self.where_hosts(hosts)}" if hosts else ""
        return f"SELECT * from cpu where usage_user > 90.0 {where} and time >= '{lo}' and time < '{hi}'"

    def lastpoint(self) -> str:
        return 'SELECT * from cpu group by "hostname" order by time desc limit 1'

    def groupby_orderby_limit(self) -> str:
        # TSBS draws a one-hour window and uses its end; the InfluxQL it writes has no ORDER BY.
        _, hi = self.window(HOUR)
        return f"SELECT max(usage_user) from cpu WHERE time < '{hi}' group by time(1m) limit 5"


def rfc3339(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# name, generator, ties_unordered (rows of several series merged into one answer series,
# whose order among equal times InfluxDB leaves to its plan).
QUERY_TYPES = [
    ("single-groupby-1-1-1", lambda g: g.group_by_time(1, 1, HOUR), False),
    ("single-groupby-1-1-12", lambda g: g.group_by_time(1, 1, 12 * HOUR), False),
    ("single-groupby-1-8-1", lambda g: g.group_by_time(8, 1, HOUR), False),
    ("single-groupby-5-1-1", lambda g: g.group_by_time(1, 5, HOUR), False),
    ("single-groupby-5-1-12", lambda g: g.group_by_time(1, 5, 12 * HOUR), False),
    ("single-groupby-5-8-1", lambda g: g.group_by_time(8, 5, HOUR), False),
    ("cpu-max-all-1", lambda g: g.max_all_cpu(1), False),
    ("cpu-max-all-8", lambda g: g.max_all_cpu(8), False),
    ("double-groupby-1", lambda g: g.double_group_by(1), False),
    ("double-groupby-5", lambda g: g.double_group_by(5), False),
    ("double-groupby-all", lambda g: g.double_group_by(10), False),
    ("high-cpu-1", lambda g: g.high_cpu(1), False),
    ("high-cpu-all", lambda g: g.high_cpu(0), True),
    ("lastpoint", lambda g: g.lastpoint(), False),
    ("groupby-orderby-limit", lambda g: g.groupby_orderby_limit(), False),
]


# --- the servers -------------------------------------------------------------------------------

class RestingInfluxD(InfluxD):
    """influxd that snapshots its cache to TSM and compacts fully once writes are cold for 2 s."""

    def write_config(self) -> None:
        super().write_config()
        self.config_path.write_text(set_config(self.config_path.read_text(), {
            ("data", "cache-snapshot-write-cold-duration"): toml_str("2s"),
            ("data", "compact-full-write-cold-duration"): toml_str("2s"),
        }))

    def wait_at_rest(self) -> None:
        """Wait until the WAL is empty and every shard is one TSM file."""
        started = time.monotonic()
        while True:
            wal = sum(size(p) for p in (self.base_dir / "wal").rglob("*.wal"))
            shards = {}
            for p in (self.base_dir / "data" / DB).rglob("*"):
                if p.is_file() and p.suffix in (".tsm", ".tmp"):
                    shards.setdefault(p.parent, []).append(p.name)
            if wal == 0 and shards and all(len(f) == 1 and f[0].endswith(".tsm") for f in shards.values()):
                return
            if time.monotonic() - started > SETTLE_TIMEOUT_S:
                raise RuntimeError(f"influxd not at rest after {SETTLE_TIMEOUT_S:.0f}s: WAL {wal} bytes, "
                                   f"files {dict((str(k), v) for k, v in shards.items())}")
            time.sleep(0.5)


def size(path: Path) -> int:
    """A file's size; 0 once influxd has removed it (a WAL segment after a snapshot)."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


class System:
    """One side: a keep-alive session to its `/query` and `/write`."""

    def __init__(self, name: str, url: str, headers: dict):
        self.name = name
        self.url = url
        self.session = requests.Session()
        self.session.headers.update(headers)

    def write(self, body: bytes) -> None:
        r = self.session.post(self.url + "/write", params={"db": DB}, data=body, timeout=120)
        if r.status_code != 204:
            raise RuntimeError(f"{self.name} /write: {r.status_code} {r.text[:500]}")

    def load(self, bodies: list[bytes]) -> float:
        start = time.perf_counter()
        for body in bodies:
            self.write(body)
        return time.perf_counter() - start

    def query(self, q: str) -> tuple[float, Answer]:
        """The query and the milliseconds to the last byte of its answer."""
        start = time.perf_counter()
        r = self.session.get(self.url + "/query", params={"db": DB, "q": q, "epoch": "ns"}, timeout=600)
        elapsed = (time.perf_counter() - start) * 1000
        content_type = r.headers.get("Content-Type", "").split(";")[0].strip()
        return elapsed, Answer(r.status_code, content_type, json_documents(r.text), r.text)


def rows(answer: Answer) -> int:
    return sum(len(s.get("values", [])) for d in answer.documents or [] for res in d.get("results", [])
               for s in res.get("series", []))


def check(kind: str, q: str, want: Answer, got: Answer, ties_unordered: bool) -> None:
    """Both answers agree, and influxd's is a real one (200, no error)."""
    errors = [res["error"] for d in want.documents or [] for res in d.get("results", []) if "error" in res]
    if want.status != 200 or want.documents is None or errors:
        raise SystemExit(f"influxd failed {kind}: {q}\n  {want.status} {want.text[:1000]}")
    diffs = differences(want, got, ties_unordered=ties_unordered)
    if diffs:
        raise SystemExit(f"ferrite's answer differs from influxd's on {kind} (influxd's != ferrite's)\n  q: {q}\n"
                         + "\n".join(f"  - {d}" for d in diffs)
                         + f"\n  influxd: {want.status} {want.text[:1000]}\n  ferrite: {got.status} {got.text[:1000]}")


def percentile(samples: list[float], p: float) -> float:
    samples = sorted(samples)
    return samples[round((len(samples) - 1) * p)]


def run_type(kind, make, ties_unordered, gen, ferrite: System, influxd: System, warmup: int, runs: int):
    """(ferrite ms, influxd ms, rows per answer) over `runs` timed queries."""
    times = {ferrite.name: [], influxd.name: []}
    total_rows = 0
    for i in range(warmup + runs):
        q = make(gen)
        order = (ferrite, influxd) if i % 2 == 0 else (influxd, ferrite)
        answers = {}
        for system in order:
            ms, answers[system.name] = system.query(q)
            if i >= warmup:
                times[system.name].append(ms)
        check(kind, q, answers[influxd.name], answers[ferrite.name], ties_unordered)
        if i >= warmup:
            total_rows += rows(answers[influxd.name])
    return times[ferrite.name], times[influxd.name], total_rows / runs


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ferrite", type=Path, default=None, help="the ferrite binary (default: FERRITE_BIN, "
                        "else the debug build)")
    parser.add_argument("--influxd", type=Path, default=None, help="influxd 1.x (default: FERRITE_INFLUXD, else "
                        "~/.cache/ferrite-tools/bin/influxd)")
    parser.add_argument("--hosts", type=int, default=10, help="TSBS scale: hosts (default 10)")
    parser.add_argument("--hours", type=float, default=24, help="hours of data, one row per host every 10 s "
                        "(default 24)")
    parser.add_argument("--queries", type=int, default=20, help="timed queries per type and system (default 20)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed queries per type first (default 2)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the data and of the query list")
    args = parser.parse_args()

    ferrite_bin = args.ferrite or find_ferrite_bin()
    influxd_bin = args.influxd or find_influxd()
    bodies = batches(cpu_lines(args.hosts, args.hours, args.seed))
    n_rows = args.hosts * (int(args.hours * HOUR) // INTERVAL_S)
    print(f"data: TSBS cpu-only, {args.hosts} hosts, {args.hours:g} h every {INTERVAL_S} s: {n_rows:,} rows, "
          f"{n_rows * len(CPU_FIELDS):,} values, {len(bodies)} batches of {BATCH_LINES} lines, "
          f"{sum(map(len, bodies)) / 2**20:.1f} MiB")
    stamp = Path(influxd_bin).parent / "influxd.version"  # written by deploy/dev/install-influxd.sh
    print(f"ferrite: {ferrite_bin}\ninfluxd: {influxd_bin} "
          f"({stamp.read_text().strip() if stamp.exists() else 'version unknown'})")
    print(f"machine: {os.cpu_count()} CPUs, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")

    with tempfile.TemporaryDirectory(prefix="influxql-tsbs-") as tmp:
        tmp = Path(tmp)
        ref = RestingInfluxD(influxd_bin, tmp / "influxd")
        srv = FerriteServer(ferrite_bin, tmp / "ferrite", tmp / "ferrite.log")
        try:
            ref.start()
            srv.start()
            influxd = System("influxd", ref.url, {})
            r = influxd.session.post(ref.url + "/query", data={"q": f'CREATE DATABASE "{DB}"'}, timeout=60)
            r.raise_for_status()
            # ferrite first: influxd starts compacting 2 s after its last write.
            ferrite_load = System("ferrite", srv.url, FERRITE_AUTH).load(bodies)
            influxd_load = influxd.load(bodies)
            loaded = time.perf_counter()
            print(f"load (one client, context only): ferrite {n_rows / ferrite_load:,.0f} rows/s "
                  f"({ferrite_load:.1f} s), influxd {n_rows / influxd_load:,.0f} rows/s ({influxd_load:.1f} s)")

            srv.stop()
            srv.start()
            restart = time.perf_counter() - loaded
            ref.wait_at_rest()
            settled = time.perf_counter() - loaded
            print(f"at rest: ferrite restarted in {restart:.1f} s (everything in Parquet); influxd in one TSM "
                  f"file per shard, WAL empty, {settled:.1f} s after the load")
            ferrite = System("ferrite", srv.url, FERRITE_AUTH)

            gen = Queries(T0, T0 + int(args.hours * HOUR), args.hosts, random.Random(args.seed))
            results = []
            started = time.perf_counter()
            for kind, make, ties_unordered in QUERY_TYPES:
                f, i, per_answer = run_type(kind, make, ties_unordered, gen, ferrite, influxd,
                                            args.warmup, args.queries)
                results.append((kind, per_answer, f, i))
                print(f"  {kind}: ferrite {statistics.median(f):.1f} ms, influxd {statistics.median(i):.1f} ms",
                      file=sys.stderr, flush=True)
            elapsed = time.perf_counter() - started
        except Exception:
            for s in (ref, srv):
                print(s.log_tail(), file=sys.stderr)
            raise
        finally:
            srv.stop()
            ref.stop()

    print(f"\n{args.queries} timed queries per type and system after {args.warmup} warm-up, alternating; "
          f"every answer identical on both ({elapsed:.0f} s)\n")
    print("| Query type | Rows per answer | ferrite median (p90) ms | influxd median (p90) ms | ferrite / influxd |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for kind, per_answer, f, i in results:
        fm, im = statistics.median(f), statistics.median(i)
        print(f"| {kind} | {per_answer:,.0f} | {fm:.1f} ({percentile(f, 0.9):.1f}) | "
              f"{im:.1f} ({percentile(i, 0.9):.1f}) | {fm / im:.2f} |")


if __name__ == "__main__":
    main()
