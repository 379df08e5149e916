"""Writes through real clients (influxdb3-python, influxdb-client-python) and plain HTTP
(v1, v2, v3, gzip), each read back over the HTTP query API."""

from __future__ import annotations

import base64
import contextlib
from datetime import datetime, timezone

import pytest
import urllib3
from influxdb_client import InfluxDBClient, Point as V2Point, WritePrecision as V2Precision
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.rest import ApiException
from influxdb_client_3 import (InfluxDBClient3, InfluxDBError, Point, WriteOptions, WritePrecision,
                               write_client_options)
from influxdb_client_3.exceptions import InfluxDBPartialWriteError
from influxdb_client_3.write_client.client.write_api import WriteType

from ferrite_e2e import (TOKEN, assert_204, lines, query_json, write_v1, write_v2, write_v3)

T0 = 1_700_000_000  # 2023-11-14T22:13:20Z
T0_ISO = "2023-11-14T22:13:20"


@contextlib.contextmanager
def record_requests(monkeypatch):
    """Record (method, url, headers) of every urllib3 request (both Influx clients use urllib3)."""
    seen: list[tuple[str, str, dict]] = []
    orig = urllib3.PoolManager.urlopen

    def urlopen(self, method, url, *args, **kwargs):
        seen.append((method, url, dict(kwargs.get("headers") or {})))
        return orig(self, method, url, *args, **kwargs)

    monkeypatch.setattr(urllib3.PoolManager, "urlopen", urlopen)
    yield seen


def rows(server, db, sql):
    return query_json(server, db, sql)


# --- influxdb3-python ------------------------------------------------------------------------

def test_influxdb3_default_v2_path(server, db, monkeypatch):
    with record_requests(monkeypatch) as seen, \
            InfluxDBClient3(host=server.url, database=db, token=TOKEN) as client:
        client.write(record=f"cpu,host=a usage=1.5,n=3i {T0 * 10**9}")
        client.write(record=[f"cpu,host=b usage=2.5,n=4i {T0}"], write_precision=WritePrecision.S)
        client.write(record=Point("cpu").tag("host", "c").field("usage", 3.5).field("n", 5)
                     .time(T0 * 1000, WritePrecision.MS))
    writes = [u for m, u, _ in seen if m == "POST"]
    assert len(writes) == 3 and all("/api/v2/write?" in u for u in writes), writes
    assert "precision=s" in writes[1] and "precision=ms" in writes[2], writes
    got = rows(server, db, "SELECT host, usage, n, time FROM cpu ORDER BY host")
    assert got == [
        {"host": "a", "usage": 1.5, "n": 3, "time": T0_ISO},
        {"host": "b", "usage": 2.5, "n": 4, "time": T0_ISO},
        {"host": "c", "usage": 3.5, "n": 5, "time": T0_ISO},
    ]


def test_influxdb3_v3_path_with_no_sync(server, db, monkeypatch):
    opts = WriteOptions(write_type=WriteType.synchronous, use_v2_api=False, no_sync=True,
                        write_precision=WritePrecision.S)
    with record_requests(monkeypatch) as seen, \
            InfluxDBClient3(host=server.url, database=db, token=TOKEN,
                            write_client_options=write_client_options(write_options=opts)) as client:
        client.write(record=lines(f"mem,host=a used=10i {T0}", f"mem,host=b used=20i {T0 + 1}"))
    posts = [u for m, u, _ in seen if m == "POST"]
    assert len(posts) == 1 and "/api/v3/write_lp?" in posts[0], posts
    assert "no_sync=true" in posts[0] and "precision=second" in posts[0], posts
    assert rows(server, db, "SELECT host, used FROM mem ORDER BY host") == [
        {"host": "a", "used": 10}, {"host": "b", "used": 20}]


def test_influxdb3_v3_path_kwargs_and_partial_error(server, db):
    """`write_use_v2_api=False`: v3 errors come back as InfluxDBPartialWriteError with line details."""
    with InfluxDBClient3(host=server.url, database=db, token=TOKEN, write_use_v2_api=False,
                         write_accept_partial=False) as client:
        client.write(record=f"disk,host=a free=1u {T0}", write_precision="s")
        with pytest.raises(InfluxDBPartialWriteError) as ei:
            client.write(record=lines(f"disk,host=b free=2u {T0}", "disk,host=c free= 3"),
                         write_precision="s")
    err = ei.value
    assert err.response.status == 400
    assert [(e.line_number, e.original_line) for e in err.line_errors] == [(2, "disk,host=c free= 3")]
    assert "free" in err.line_errors[0].error_message
    # accept_partial=false: the good line of the failed batch is not stored either
    assert rows(server, db, "SELECT host, free FROM disk") == [{"host": "a", "free": 1}]


def test_influxdb3_v2_path_error_message(server, db):
    with InfluxDBClient3(host=server.url, database=db, token=TOKEN) as client:
        client.write(record=f"cpu usage=1.0 {T0}", write_precision="s")
        with pytest.raises(InfluxDBError) as ei:
            client.write(record=f"cpu usage=1i {T0}", write_precision="s")
    assert ei.value.response.status == 400
    msg = ei.value.message
    assert msg.startswith("invalid: "), msg
    assert "usage" in msg and "float" in msg and "integer" in msg, msg


def test_influxdb3_gzip(server, db, monkeypatch):
    with record_requests(monkeypatch) as seen, \
            InfluxDBClient3(host=server.url, database=db, token=TOKEN, enable_gzip=True) as client:
        client.write(record=[f"gz,k=v{i} x={i}i {T0 + i}" for i in range(500)], write_precision="s")
    post_headers = [h for m, _, h in seen if m == "POST"]
    assert post_headers and post_headers[0].get("Content-Encoding") == "gzip", post_headers
    assert rows(server, db, "SELECT count(*) AS c, sum(x) AS s FROM gz") == [
        {"c": 500, "s": sum(range(500))}]


# --- influxdb-client-python (v2 client) -------------------------------------------------------

@pytest.mark.parametrize("gzip", [False, True], ids=["plain", "gzip"])
def test_influxdb_client_v2(server, db, gzip, monkeypatch):
    with record_requests(monkeypatch) as seen, \
            InfluxDBClient(url=server.url, token=TOKEN, org="my-org", enable_gzip=gzip) as client:
        w = client.write_api(write_options=SYNCHRONOUS)
        w.write(bucket=db, record=f"net,iface=eth0 rx=100i,tx=5.5 {T0 * 10**9}")
        w.write(bucket=db, record=V2Point("net").tag("iface", "eth1").field("rx", 200).field("tx", 6.5)
                .time(datetime.fromtimestamp(T0, timezone.utc), V2Precision.US), write_precision=V2Precision.US)
        w.write(bucket=db, org="ignored-org", record=[f"net,iface=eth2 rx=300i,tx=7.5 {T0}"],
                write_precision=V2Precision.S)
    posts = [(u, h) for m, u, h in seen if m == "POST"]
    assert len(posts) == 3 and all("/api/v2/write?" in u for u, _ in posts), posts
    if gzip:
        assert all(h.get("Content-Encoding") == "gzip" for _, h in posts), posts
    assert rows(server, db, "SELECT iface, rx, tx, time FROM net ORDER BY iface") == [
        {"iface": "eth0", "rx": 100, "tx": 5.5, "time": T0_ISO},
        {"iface": "eth1", "rx": 200, "tx": 6.5, "time": T0_ISO},
        {"iface": "eth2", "rx": 300, "tx": 7.5, "time": T0_ISO},
    ]


def test_influxdb_client_v2_error(server, db):
    with InfluxDBClient(url=server.url, token=TOKEN, org="my-org") as client:
        w = client.write_api(write_options=SYNCHRONOUS)
        w.write(bucket=db, record=f"net rx=1i {T0}", write_precision=V2Precision.S)
        with pytest.raises(ApiException) as ei:
            w.write(bucket=db, record=f"net rx=1.5 {T0 + 1}", write_precision=V2Precision.S)
    assert ei.value.status == 400
    assert "rx" in ei.value.message and "integer" in ei.value.message and "float" in ei.value.message
    assert rows(server, db, "SELECT rx FROM net") == [{"rx": 1}]


def test_influxdb_client_ping(server):
    with InfluxDBClient(url=server.url, token=TOKEN, org="my-org") as client:
        assert client.ping() is True


# --- plain HTTP -------------------------------------------------------------------------------

def test_http_v1_write(server, db):
    assert_204(write_v1(server, db, f"v1m,t=a f=1 {T0}", precision="s"))
    assert_204(write_v1(server, db, f"v1m,t=b f=2 {T0 * 1000}", precision="ms", rp="autogen"))
    assert_204(write_v1(server, db, f"v1m,t=c f=3 {T0 * 10**6}", precision="u", rp=""))
    assert_204(write_v1(server, db, f"v1m,t=d f=4 {T0 * 10**9}", precision="n", gz=True))
    assert_204(write_v1(server, db, f"v1m,t=e f=5 {T0 * 10**9}"))
    got = rows(server, db, "SELECT t, f, time FROM v1m ORDER BY t")
    assert got == [{"t": t, "f": float(i + 1), "time": T0_ISO} for i, t in enumerate("abcde")]


def test_http_v1_write_named_rp_goes_to_db_slash_rp(server, db):
    assert_204(write_v1(server, db, f"rpm f=1 {T0}", precision="s", rp="weekly"))
    assert rows(server, f"{db}/weekly", "SELECT f FROM rpm") == [{"f": 1.0}]


def test_http_v2_write(server, db):
    assert_204(write_v2(server, db, f"v2m,t=a f=1 {T0 * 10**9}"))
    assert_204(write_v2(server, db, f"v2m,t=b f=2 {T0 * 10**9}", precision="ns"))
    assert_204(write_v2(server, db, f"v2m,t=c f=3 {T0 * 10**6}", precision="us"))
    assert_204(write_v2(server, db, f"v2m,t=d f=4 {T0 * 1000}", precision="ms"))
    assert_204(write_v2(server, db, f"v2m,t=e f=5 {T0}", precision="s", gz=True))
    got = rows(server, db, "SELECT t, f, time FROM v2m ORDER BY t")
    assert got == [{"t": t, "f": float(i + 1), "time": T0_ISO} for i, t in enumerate("abcde")]


def test_http_v3_write(server, db):
    assert_204(write_v3(server, db, f"v3m,t=a f=1 {T0 * 10**9}"))
    assert_204(write_v3(server, db, f"v3m,t=b f=2 {T0}", precision="second", no_sync=True))
    assert_204(write_v3(server, db, f"v3m,t=c f=3 {T0 * 1000}", precision="millisecond", accept_partial=False))
    assert_204(write_v3(server, db, f"v3m,t=d f=4 {T0 * 10**6}", precision="microsecond", gz=True))
    assert_204(write_v3(server, db, f"v3m,t=e f=5 {T0 * 10**9}", precision="nanosecond", gz=True, no_sync=True))
    got = rows(server, db, "SELECT t, f, time FROM v3m ORDER BY t")
    assert got == [{"t": t, "f": float(i + 1), "time": T0_ISO} for i, t in enumerate("abcde")]


def test_http_auth_schemes_accepted(server, db):
    """Every client's Authorization shape carries the token: Token, Bearer, and Basic with the
    token as the password (the user is ignored); a wrong Basic password is refused."""
    basic = base64.b64encode(f"any-user:{TOKEN}".encode()).decode()
    for i, auth in enumerate([f"Token {TOKEN}", f"Bearer {TOKEN}", f"Basic {basic}"]):
        assert_204(write_v2(server, db, f"auth n={i}i {T0 + i}", precision="s",
                            headers={"Authorization": auth}))
    r = write_v2(server, db, f"auth n=9i {T0}", precision="s", headers={"Authorization": "Basic dXNlcjp0b2tlbg=="})
    assert r.status_code == 401, r.text
    assert rows(server, db, "SELECT count(*) AS c FROM auth") == [{"c": 3}]


def test_write_without_timestamp_uses_server_time(server, db):
    before = datetime.now(timezone.utc).replace(tzinfo=None)
    assert_204(write_v2(server, db, "nots v=1"))
    got = rows(server, db, "SELECT time FROM nots")
    t = datetime.fromisoformat(got[0]["time"].rstrip("Z")[:26])
    assert abs((t - before).total_seconds()) < 60, (got, before)


def test_multi_table_batch_and_upsert(server, db):
    """One body with several tables; a later write of the same key wins field by field."""
    assert_204(write_v2(server, db, lines(
        f"a,h=x f=1,g=10i {T0}",
        f"b,h=y s=\"one\" {T0}",
        f"a,h=x f=2 {T0}",          # same key as line 1: f replaced, g kept
    ), precision="s"))
    assert_204(write_v3(server, db, f"a,h=x g=20i {T0}", precision="second"))
    assert rows(server, db, "SELECT h, f, g FROM a") == [{"h": "x", "f": 2.0, "g": 20}]
    assert rows(server, db, "SELECT h, s FROM b") == [{"h": "y", "s": "one"}]


def test_influxdb3_batching_mode_flushes_on_close(server, db):
    """The client's batching writer (its WriteOptions default) sends every point by close()."""
    opts = WriteOptions(batch_size=250, flush_interval=200, write_precision=WritePrecision.S)
    with InfluxDBClient3(host=server.url, database=db, token=TOKEN,
                         write_client_options=write_client_options(write_options=opts)) as client:
        for i in range(1000):
            client.write(record=f"batched,k=k{i % 7} v={i}i {T0 + i}")
    assert rows(server, db, "SELECT count(*) AS c, sum(v) AS s FROM batched") == [
        {"c": 1000, "s": sum(range(1000))}]


def test_concurrent_writers(server, db):
    """8 writers over three APIs into one table at once: every row exactly once."""
    from concurrent.futures import ThreadPoolExecutor

    def writer(w):
        api = (write_v1, write_v2, write_v3)[w % 3]
        for b in range(10):
            body = lines(*[f"conc,w=w{w} v={b * 100 + i}i {T0 + b * 100 + i}" for i in range(100)])
            r = api(server, db, body, precision="s")
            assert r.status_code == 204, r.text

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(writer, range(8)))
    got = rows(server, db, "SELECT w, count(*) AS c, count(DISTINCT v) AS d FROM conc GROUP BY w ORDER BY w")
    assert got == [{"w": f"w{w}", "c": 1000, "d": 1000} for w in range(8)]
