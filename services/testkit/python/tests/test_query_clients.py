"""Read back through influxdb3-python (Flight DoGet, JSON ticket), pyarrow Flight SQL
(GetFlightInfo + DoGet) and the HTTP query API in every format."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime

import pyarrow as pa
import pyarrow.flight as flight
import pyarrow.parquet as pq
import pytest
from influxdb_client_3 import InfluxDBClient3

from ferrite_e2e import (AUTH_HEADER, TOKEN, assert_204, flight_sql_query, flight_ticket_query, lines, query_http,
                         write_v2)

T0 = 1_700_000_000
DATA = lines(
    f'cpu,host=a,region=eu usage=1.5,n=1i,u=10u,ok=true,note="first" {T0}',
    f'cpu,host=b,region=us usage=2.5,n=2i,u=20u,ok=false,note="second" {T0 + 1}',
    f'cpu,host=c,region=us usage=-3.5,n=-3i,u=30u,ok=true,note="third, with comma" {T0 + 2}',
)
SQL = "SELECT host, region, usage, n, u, ok, note, time FROM cpu ORDER BY time"
EXPECTED_SCHEMA = pa.schema([
    ("host", pa.string()), ("region", pa.string()), ("usage", pa.float64()), ("n", pa.int64()),
    ("u", pa.uint64()), ("ok", pa.bool_()), ("note", pa.string()), ("time", pa.timestamp("ns")),
])
EXPECTED_ROWS = [
    {"host": "a", "region": "eu", "usage": 1.5, "n": 1, "u": 10, "ok": True, "note": "first",
     "time": datetime(2023, 11, 14, 22, 13, 20)},
    {"host": "b", "region": "us", "usage": 2.5, "n": 2, "u": 20, "ok": False, "note": "second",
     "time": datetime(2023, 11, 14, 22, 13, 21)},
    {"host": "c", "region": "us", "usage": -3.5, "n": -3, "u": 30, "ok": True, "note": "third, with comma",
     "time": datetime(2023, 11, 14, 22, 13, 22)},
]
# JSON renderings of the same rows (time as the server prints it: RFC 3339 without zone)
EXPECTED_JSON = [dict(r, time=r["time"].isoformat()) for r in EXPECTED_ROWS]


@pytest.fixture
def qdb(server, db):
    assert_204(write_v2(server, db, DATA, precision="s"))
    return db


def assert_wire_schema(schema: pa.Schema):
    """Arrow types on the Flight wire: plain Utf8 tags (never dictionaries), Timestamp(ns)."""
    for f in EXPECTED_SCHEMA:
        got = schema.field(f.name).type
        assert not pa.types.is_dictionary(got), f"{f.name} is a dictionary: {got}"
        assert got == f.type, f"{f.name}: {got} != {f.type}"
    assert schema.field("time").type.tz is None


# --- influxdb3-python (Flight DoGet with a JSON ticket) ---------------------------------------

def test_influxdb3_query_table(server, qdb):
    with InfluxDBClient3(host=server.url, database=qdb, token=TOKEN) as client:
        table = client.query(SQL, language="sql")
    assert isinstance(table, pa.Table)
    assert table.schema.names == EXPECTED_SCHEMA.names
    assert_wire_schema(table.schema)
    assert table.to_pylist() == EXPECTED_ROWS


def test_influxdb3_query_column_metadata(server, qdb):
    """IOx tags each column with `iox::column::type`."""
    with InfluxDBClient3(host=server.url, database=qdb, token=TOKEN) as client:
        schema = client.query("SELECT * FROM cpu", mode="schema")
    meta = {f.name: (f.metadata or {}).get(b"iox::column::type", b"").decode() for f in schema}
    assert meta == {
        "host": "iox::column_type::tag", "region": "iox::column_type::tag",
        "time": "iox::column_type::timestamp",
        "usage": "iox::column_type::field::float", "n": "iox::column_type::field::integer",
        "u": "iox::column_type::field::uinteger", "ok": "iox::column_type::field::boolean",
        "note": "iox::column_type::field::string",
    }


def test_influxdb3_query_modes_and_params(server, qdb):
    with InfluxDBClient3(host=server.url, database=qdb, token=TOKEN) as client:
        reader = client.query(SQL, mode="reader")
        assert reader.read_all().to_pylist() == EXPECTED_ROWS
        chunks = list(client.query(SQL, mode="chunk"))
        assert sum(c.data.num_rows for c in chunks) == 3
        got = client.query("SELECT host, n FROM cpu WHERE region = $region AND n > $min ORDER BY host",
                           query_parameters={"region": "us", "min": -10})
        assert got.to_pylist() == [{"host": "b", "n": 2}, {"host": "c", "n": -3}]
        empty = client.query("SELECT * FROM cpu WHERE host = 'nobody'")
        assert empty.num_rows == 0 and "host" in empty.schema.names


def test_influxdb3_query_pandas(server, qdb):
    import pandas as pd
    with InfluxDBClient3(host=server.url, database=qdb, token=TOKEN) as client:
        df = client.query(SQL, mode="pandas")
    assert isinstance(df, pd.DataFrame)
    assert list(df["host"]) == ["a", "b", "c"]


def test_influxdb3_get_server_version(server):
    with InfluxDBClient3(host=server.url, database="unused", token=TOKEN) as client:
        version = client.get_server_version()
    assert version and version[0].isdigit(), version


def test_ping_headers(server):
    import requests
    r = requests.get(server.url + "/ping", timeout=10)
    assert r.status_code in (200, 204)
    assert r.headers.get("X-Influxdb-Version")
    assert r.headers.get("X-Influxdb-Build")
    h = requests.get(server.url + "/health", timeout=10)
    assert h.status_code == 200 and h.text.strip() == "OK"


def test_json_ticket_variants(server, qdb):
    t = flight_ticket_query(server, qdb, "SELECT count(*) AS c FROM cpu WHERE host = $h", params={"h": "a"})
    assert t.to_pylist() == [{"c": 1}]
    client = flight.FlightClient(server.flight_uri)
    try:
        for key in ("bucket", "namespace_name"):  # aliases of `database` that IOx accepts
            ticket = json.dumps({key: qdb, "sql_query": "SELECT count(*) AS c FROM cpu"}).encode()
            opts = flight.FlightCallOptions(headers=[AUTH_HEADER])
            assert client.do_get(flight.Ticket(ticket), opts).read_all().to_pylist() == [{"c": 3}], key
    finally:
        client.close()


# --- Flight SQL ------------------------------------------------------------------------------

def test_flight_sql_statement(server, qdb):
    info_schema, table = flight_sql_query(server, qdb, SQL)
    assert_wire_schema(table.schema)
    assert info_schema.names == EXPECTED_SCHEMA.names
    assert_wire_schema(info_schema)
    assert table.to_pylist() == EXPECTED_ROWS


def test_flight_sql_information_schema(server, qdb):
    _, table = flight_sql_query(server, qdb, "SELECT table_catalog, table_schema, table_name "
                                             "FROM information_schema.tables WHERE table_schema = 'iox'")
    assert table.to_pylist() == [{"table_catalog": "public", "table_schema": "iox", "table_name": "cpu"}]
    _, cols = flight_sql_query(server, qdb, "SELECT column_name, data_type FROM information_schema.columns "
                                            "WHERE table_name = 'cpu' ORDER BY column_name")
    assert [r["column_name"] for r in cols.to_pylist()] == sorted(EXPECTED_SCHEMA.names)


def test_flight_sql_aggregate(server, qdb):
    _, table = flight_sql_query(server, qdb, "SELECT region, count(*) AS c, sum(usage) AS s, max(u) AS m "
                                             "FROM cpu GROUP BY region ORDER BY region")
    assert table.to_pylist() == [{"region": "eu", "c": 1, "s": 1.5, "m": 10},
                                 {"region": "us", "c": 2, "s": -1.0, "m": 30}]


# --- HTTP formats ------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["GET", "POST"])
def test_http_json(server, qdb, method):
    r = query_http(server, qdb, SQL, "json", method=method)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert r.json() == EXPECTED_JSON


def test_http_jsonl(server, qdb):
    r = query_http(server, qdb, SQL, "jsonl")
    assert r.status_code == 200, r.text
    assert "jsonl" in r.headers["content-type"] or "ndjson" in r.headers["content-type"]
    got = [json.loads(line) for line in r.text.splitlines() if line.strip()]
    assert got == EXPECTED_JSON


def test_http_csv(server, qdb):
    r = query_http(server, qdb, SQL, "csv")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    got = list(csv.DictReader(io.StringIO(r.text)))
    assert [list(g.keys()) for g in got][0] == EXPECTED_SCHEMA.names
    assert got == [{k: ("true" if v is True else "false" if v is False else str(v)) for k, v in e.items()}
                   for e in EXPECTED_JSON]


def test_http_pretty(server, qdb):
    r = query_http(server, qdb, SQL, "pretty")
    assert r.status_code == 200, r.text
    text = r.text
    body = [ln for ln in text.splitlines() if ln.startswith("|")]
    header = [c.strip() for c in body[0].strip("|").split("|")]
    assert header == EXPECTED_SCHEMA.names
    assert len(body) == 1 + 3
    assert "third, with comma" in text and "2023-11-14T22:13:22" in text


def test_http_parquet(server, qdb):
    r = query_http(server, qdb, SQL, "parquet")
    assert r.status_code == 200, r.text
    assert r.content[:4] == b"PAR1" and r.content[-4:] == b"PAR1"
    table = pq.read_table(io.BytesIO(r.content))
    assert table.schema.names == EXPECTED_SCHEMA.names
    for f in EXPECTED_SCHEMA:
        got = table.schema.field(f.name).type
        assert got == f.type or (pa.types.is_dictionary(got) and got.value_type == f.type), (f.name, got)
    assert table.to_pylist() == EXPECTED_ROWS


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_http_params(server, qdb, method):
    r = query_http(server, qdb, "SELECT host FROM cpu WHERE usage > $x AND ok = $b ORDER BY host", "json",
                   method=method, params={"x": 0.0, "b": True})
    assert r.status_code == 200, r.text
    assert r.json() == [{"host": "a"}]


def test_http_empty_result(server, qdb):
    r = query_http(server, qdb, "SELECT * FROM cpu WHERE host = 'nobody'", "json")
    assert r.status_code == 200 and r.json() == []
    r = query_http(server, qdb, "SELECT * FROM cpu WHERE host = 'nobody'", "parquet")
    assert r.status_code == 200 and pq.read_table(io.BytesIO(r.content)).num_rows == 0


def test_show_tables_and_columns_http(server, qdb):
    r = query_http(server, qdb, "SHOW TABLES", "json")
    assert r.status_code == 200, r.text
    assert {"table_catalog": "public", "table_schema": "iox", "table_name": "cpu",
            "table_type": "BASE TABLE"} in r.json()
    r = query_http(server, qdb, "SHOW COLUMNS FROM cpu", "json")
    assert r.status_code == 200, r.text
    assert {row["column_name"] for row in r.json()} == set(EXPECTED_SCHEMA.names)


def test_large_result_streams(server, db):
    """100k rows over several days: many record batches, every row once, plain Utf8 tags."""
    n = 100_000
    body = "".join(f"big,host=h{i % 50},dc=d{i % 3} v={i}i {T0 * 10**9 + i * 10**10}\n" for i in range(n))
    assert_204(write_v2(server, db, body, gz=True))
    with InfluxDBClient3(host=server.url, database=db, token=TOKEN) as client:
        table = client.query("SELECT host, dc, v, time FROM big")
    assert table.num_rows == n
    assert table.schema.field("host").type == pa.string()
    assert sorted(table.column("v").to_pylist()) == list(range(n))
    _, t2 = flight_sql_query(server, db, "SELECT count(*) AS c, count(DISTINCT v) AS d, "
                                         "min(time) AS lo, max(time) AS hi FROM big")
    row = t2.to_pylist()[0]
    assert (row["c"], row["d"]) == (n, n)
    r = query_http(server, db, "SELECT v FROM big ORDER BY v", "jsonl")
    assert r.status_code == 200
    assert sum(1 for ln in r.text.splitlines() if ln.strip()) == n


def test_flight_handshake_returns_bearer(server):
    """Flight Handshake (what pyarrow's basic-token auth and JDBC/ADBC send) returns a bearer token."""
    client = flight.FlightClient(server.flight_uri)
    try:
        key, value = client.authenticate_basic_token(b"user", TOKEN.encode())
    finally:
        client.close()
    assert key.lower() == b"authorization"
    assert value == f"Bearer {TOKEN}".encode()
