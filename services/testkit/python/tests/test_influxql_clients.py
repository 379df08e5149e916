"""InfluxQL through the clients people point at InfluxDB 1.x, each run unchanged against
ferrite (every front door) and against a real influxd (the `influxd` fixture), which must
answer alike:

- the legacy `influxdb` Python client (create_database, write_points, query, get_points, the
  get_list_* helpers); influxd answers it in MessagePack (the client asks for it), ferrite may
  answer JSON: the client's decoded results are compared;
- Grafana's InfluxDB data source in InfluxQL mode: its exact request (GET /query?db&epoch=ms&q,
  or POST with a form body `q=`; Basic auth from the data source's user and password),
  with the macros already expanded the way Grafana expands them;
- Telegraf's `outputs.influxdb`: POST /query with the form body `q=CREATE DATABASE "telegraf"`,
  then a gzip'd POST /write?db=telegraf.

influxd runs without authentication and ignores the credentials every client sends.
"""

from __future__ import annotations

import base64
import gzip
import json
from urllib.parse import urlencode

import pytest
import requests
from influxdb import InfluxDBClient
from influxdb.exceptions import InfluxDBClientError

from ferrite_e2e import TOKEN, lines, unique_db
from influxd import Answer, query_url
from influxql_corpus import T0, cpu_lines, differences

NS = 10**9


def host_port(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


def assert_same(want: Answer, got: Answer, what: str) -> None:
    diffs = differences(want, got)
    assert not diffs, f"{what}: ferrite differs from influxd\n" + "\n".join(diffs) + \
        f"\ninfluxd: {want.text[:800]}\nferrite: {got.text[:800]}"


# --- the legacy `influxdb` client (InfluxDB 1.x, influxdb==5.3.2) ------------------------------

def legacy_session(url: str, db: str) -> dict:
    """Everything an application does with the client, as the client decodes it."""
    host, port = host_port(url)
    client = InfluxDBClient(host, port, username="ferrite", password=TOKEN, database=db)
    out: dict = {}
    client.create_database(db)
    assert client.write_points([
        {"measurement": "room", "tags": {"room": "kitchen", "floor": "1"},
         "fields": {"temp": 20.5, "people": 2, "note": "window open", "heating": True},
         "time": T0 * 1000},
        {"measurement": "room", "tags": {"room": "kitchen", "floor": "1"},
         "fields": {"temp": 21.5, "people": 3, "heating": False}, "time": T0 * 1000 + 60_000},
        {"measurement": "room", "tags": {"room": "hall", "floor": "0"},
         "fields": {"temp": 18.25, "people": 0, "note": "door", "heating": True}, "time": T0 * 1000 + 30_000},
    ], time_precision="ms")
    # global tags, second precision
    assert client.write_points([
        {"measurement": "switch", "fields": {"on": True, "watts": 7.5}, "time": T0},
        {"measurement": "switch", "fields": {"on": False, "watts": 0.0}, "time": T0 + 90},
    ], tags={"site": "lab"}, time_precision="s")

    out["raw"] = list(client.query('SELECT * FROM "room"', epoch="ms").get_points())
    out["rfc3339"] = list(client.query('SELECT "temp" FROM "room"').get_points())
    grouped = client.query(
        f'SELECT mean("temp"), sum("people") FROM "room" WHERE time >= {T0 * 1000}ms '
        f'AND time < {T0 * 1000 + 300_000}ms GROUP BY time(1m), "room" fill(none)', epoch="ms")
    out["grouped_keys"] = sorted(str(k) for k in grouped.keys())
    out["kitchen"] = list(grouped.get_points(tags={"room": "kitchen"}))
    out["switch"] = list(client.query('SELECT * FROM "switch"', epoch="ms").get_points(measurement="switch"))
    out["bound"] = list(client.query('SELECT "temp" FROM "room" WHERE "room" = $r', epoch="ms",
                                     bind_params={"r": "hall"}).get_points())
    multi = client.query('SELECT count("temp") FROM "room"; SELECT last("watts") FROM "switch"', epoch="ms")
    out["multi"] = [list(r.get_points()) for r in multi]
    out["measurements"] = client.get_list_measurements()
    out["databases"] = [d for d in client.get_list_database() if d["name"] == db]
    with pytest.raises(InfluxDBClientError) as ei:
        client.query('SELECT * FORM "room"')
    out["parse_error"] = (ei.value.code, json.loads(ei.value.content))
    client.close()
    return out


def test_legacy_influxdb_client(front_door, influxd, db):
    want = legacy_session(influxd.url, db)
    got = legacy_session(front_door.url, db)
    assert got == want
    # and what influxd said is what an application expects
    assert want["raw"] == [
        {"time": T0 * 1000, "floor": "1", "heating": True, "note": "window open", "people": 2,
         "room": "kitchen", "temp": 20.5},
        {"time": T0 * 1000 + 30_000, "floor": "0", "heating": True, "note": "door", "people": 0,
         "room": "hall", "temp": 18.25},
        {"time": T0 * 1000 + 60_000, "floor": "1", "heating": False, "note": None, "people": 3,
         "room": "kitchen", "temp": 21.5},
    ]
    assert want["kitchen"] == [{"time": T0 * 1000, "mean": 20.5, "sum": 2},
                               {"time": T0 * 1000 + 60_000, "mean": 21.5, "sum": 3}]
    assert want["switch"] == [{"time": T0 * 1000, "on": True, "site": "lab", "watts": 7.5},
                              {"time": T0 * 1000 + 90_000, "on": False, "site": "lab", "watts": 0.0}]
    assert want["measurements"] == [{"name": "room"}, {"name": "switch"}]
    assert want["databases"] == [{"name": db}]
    assert want["parse_error"][0] == 400


# --- Grafana's InfluxDB data source, InfluxQL mode ---------------------------------------------

GRAFANA_USER_AGENT = "Grafana/11.3.0"
# The dashboard's time range (00:00–01:00 on 2024-01-01) and $__interval for it
GRAFANA_FROM_MS = T0 * 1000
GRAFANA_TO_MS = (T0 + 3600) * 1000
TIME_FILTER = f"time >= {GRAFANA_FROM_MS}ms and time <= {GRAFANA_TO_MS}ms"  # $timeFilter
INTERVAL = "10s"  # $__interval


def grafana_query(url: str, db: str, q: str, http_mode: str, auth: tuple[str, str]) -> Answer:
    """The request Grafana's InfluxQL backend sends (pkg/tsdb/influxdb/influxql createRequest):
    `db` and `epoch=ms` in the URL; `q` in the URL (GET) or a form body (POST); Basic auth from
    the data source's User and Password."""
    basic = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
    headers = {"Authorization": f"Basic {basic}", "User-Agent": GRAFANA_USER_AGENT}
    return query_url(url, q, db=db, epoch="ms", method=http_mode, headers=headers)


def grafana_frames(doc: dict) -> list[tuple]:
    """What Grafana's time-series parser makes of an answer: one frame per series and value
    column, (name, tags, column, [(time ms, value)]). It needs `columns[0] == "time"` and epoch
    milliseconds as integers; rows whose time it cannot parse are dropped, so check for them."""
    frames = []
    result = doc["results"][0]
    assert "error" not in result, result
    for series in result.get("series", []):
        columns = series["columns"]
        assert columns[0] == "time", columns
        for c in range(1, len(columns)):
            points = []
            for row in series["values"]:
                assert isinstance(row[0], int) and not isinstance(row[0], bool), row
                assert row[c] is None or isinstance(row[c], (int, float)), row
                points.append((row[0], row[c]))
            frames.append((series["name"], series.get("tags", {}), columns[c], points))
    return frames


@pytest.fixture(scope="module")
def grafana_db(front_door, influxd):
    """The TSBS-shaped cpu data in a database of its own on both sides."""
    db = unique_db("grafana")
    status, body = influxd.query(None, f'CREATE DATABASE "{db}"', method="POST")
    assert status == 200, body
    data = lines(*cpu_lines())
    influxd.write(db, data)
    r = requests.post(front_door.url + "/write", params={"db": db}, data=data.encode(),
                      headers={"Authorization": f"Token {TOKEN}"}, timeout=60)
    assert r.status_code == 204, r.text
    return db


def grafana_pair(front_door, influxd, db: str, q: str, http_mode: str) -> tuple[Answer, Answer]:
    want = grafana_query(influxd.url, db, q, http_mode, ("grafana", "unused"))
    got = grafana_query(front_door.url, db, q, http_mode, ("grafana", TOKEN))
    assert_same(want, got, q)
    return want, got


@pytest.mark.parametrize("http_mode", ["GET", "POST"])
def test_grafana_time_series_panel(front_door, influxd, grafana_db, http_mode):
    q = (f'SELECT mean("usage_user") FROM "cpu" WHERE ("hostname" = \'host_0\') AND {TIME_FILTER} '
         f'GROUP BY time({INTERVAL}), "hostname" fill(null)')
    _, got = grafana_pair(front_door, influxd, grafana_db, q, http_mode)
    frames = grafana_frames(got.documents[0])
    assert [(n, t, c) for n, t, c, _ in frames] == [("cpu", {"hostname": "host_0"}, "mean")]
    points = frames[0][3]
    # `time <= to` is inclusive: 360 ten-second buckets and the one starting at `to`
    assert [t for t, _ in points] == list(range(GRAFANA_FROM_MS, GRAFANA_TO_MS + 1, 10_000))
    assert all(v is not None for _, v in points[:-1])


@pytest.mark.parametrize("http_mode", ["GET", "POST"])
def test_grafana_multi_series_panel(front_door, influxd, grafana_db, http_mode):
    """Several hosts and fields by $__interval; a table panel's `last()` by host."""
    q = (f'SELECT max("usage_system"), min("usage_idle") FROM "cpu" WHERE "hostname" =~ /^host_[0-2]$/ '
         f'AND {TIME_FILTER} GROUP BY time(1m), "hostname" fill(none)')
    _, got = grafana_pair(front_door, influxd, grafana_db, q, http_mode)
    frames = grafana_frames(got.documents[0])
    assert [(t["hostname"], c) for _, t, c, _ in frames] == [
        (f"host_{h}", c) for h in range(3) for c in ("max", "min")]
    table = f'SELECT last("usage_user") FROM "cpu" WHERE {TIME_FILTER} GROUP BY "hostname"'
    _, got = grafana_pair(front_door, influxd, grafana_db, table, http_mode)
    assert len(grafana_frames(got.documents[0])) == 5


def test_grafana_template_variable_queries(front_door, influxd, grafana_db):
    """Dashboard variables and the query editor's pickers: SHOW … answers whose first (or,
    for tag values, second) column Grafana reads."""
    _, got = grafana_pair(front_door, influxd, grafana_db, 'SHOW TAG VALUES WITH KEY = "hostname"', "GET")
    series = got.documents[0]["results"][0]["series"]
    assert [s["columns"] for s in series] == [["key", "value"]]
    assert [row[1] for row in series[0]["values"]] == [f"host_{h}" for h in range(5)]

    _, got = grafana_pair(front_door, influxd, grafana_db, "SHOW MEASUREMENTS LIMIT 100", "GET")
    assert got.documents[0]["results"][0]["series"] == [
        {"name": "measurements", "columns": ["name"], "values": [["cpu"]]}]

    for q in ['SHOW TAG KEYS FROM "cpu"', 'SHOW FIELD KEYS FROM "cpu"',
              "SHOW TAG VALUES FROM \"cpu\" WITH KEY = \"region\" WHERE \"hostname\" =~ /^host_[0-2]$/"]:
        grafana_pair(front_door, influxd, grafana_db, q, "GET")


# --- Telegraf's outputs.influxdb (v1) -----------------------------------------------------------

TELEGRAF_DB = "telegraf"  # Telegraf's default database
TELEGRAF_USER_AGENT = "Telegraf/1.33.0 Go/1.23.4"


def telegraf_headers(password: str, content_type: str) -> dict:
    basic = base64.b64encode(f"telegraf:{password}".encode()).decode()
    return {"Authorization": f"Basic {basic}", "User-Agent": TELEGRAF_USER_AGENT, "Content-Type": content_type}


def telegraf_create_database(url: str, password: str) -> requests.Response:
    """httpClient.CreateDatabase: POST /query, no URL parameters, form body q=CREATE DATABASE "…"."""
    body = urlencode({"q": f'CREATE DATABASE "{TELEGRAF_DB}"'})
    return requests.post(url + "/query", data=body,
                         headers=telegraf_headers(password, "application/x-www-form-urlencoded"), timeout=30)


def telegraf_write(url: str, password: str, body: str) -> requests.Response:
    """httpClient.writeBatch with content_encoding = "gzip"."""
    headers = telegraf_headers(password, "text/plain; charset=utf-8")
    headers["Content-Encoding"] = "gzip"
    return requests.post(url + "/write", params={"db": TELEGRAF_DB}, data=gzip.compress(body.encode()),
                         headers=headers, timeout=30)


def telegraf_metrics() -> str:
    """A flush as Telegraf's serializer writes it: sorted tags, nanosecond timestamps."""
    out = []
    for i in range(6):
        t = (T0 + i * 10) * NS
        out += [
            f"cpu,cpu=cpu-total,host=tg-host usage_idle={97.5 - i},usage_system={1.25 + i / 4},"
            f"usage_user={1.5 + i} {t}",
            f"mem,host=tg-host available={8_000_000_000 - i * 1_000_000}i,used_percent={40.5 + i / 2} {t}",
            f'system,host=tg-host load1={0.5 + i / 10},n_cpus=8i,uptime={3600 + i * 10}i,'
            f'uptime_format="1:00" {t}',
        ]
    return lines(*out)


def test_telegraf_v1_output(front_door, influxd):
    want = telegraf_create_database(influxd.url, "unused")
    got = telegraf_create_database(front_door.url, TOKEN)
    assert (want.status_code, want.json()) == (200, {"results": [{"statement_id": 0}]})
    assert (got.status_code, got.json()) == (want.status_code, want.json())

    body = telegraf_metrics()
    assert telegraf_write(influxd.url, "unused", body).status_code == 204
    r = telegraf_write(front_door.url, TOKEN, body)
    assert r.status_code == 204, r.text

    # Telegraf asks again after a "database not found": creating it twice is fine
    assert telegraf_create_database(front_door.url, TOKEN).json() == {"results": [{"statement_id": 0}]}

    auth = {"Authorization": f"Token {TOKEN}"}
    for q in ["SELECT * FROM \"cpu\" WHERE \"host\" = 'tg-host'",
              "SELECT last(\"available\"), max(\"used_percent\") FROM \"mem\" WHERE \"host\" = 'tg-host'",
              "SELECT \"uptime\", \"uptime_format\" FROM \"system\" WHERE \"host\" = 'tg-host'",
              'SHOW FIELD KEYS FROM "system"']:
        assert_same(query_url(influxd.url, q, db=TELEGRAF_DB, epoch="ns"),
                    query_url(front_door.url, q, db=TELEGRAF_DB, epoch="ns", headers=auth), q)
