"""InfluxQL through InfluxDB 3's wires: `/api/v3/query_influxql` in every format, Flight tickets
with `"query_type": "influxql"` (raw, and from influxdb3-python's `language="influxql"`), on
every front door. The rows are one table: `iox::measurement`, `time`, the GROUP BY tags, the
values.
"""

from __future__ import annotations

import io
import json

import pyarrow as pa
import pyarrow.flight as flight
import pyarrow.parquet as pq
import pytest
import requests
from influxdb_client_3 import InfluxDBClient3

from ferrite_e2e import TOKEN, assert_204, flight_client, lines, write_v2

T0 = 1_704_067_200
DATA = lines(
    f"cpu,host=a usage=0.5 {T0}000000000",
    f"cpu,host=a usage=1.5 {T0 + 60}000000000",
    f"cpu,host=b usage=4.0 {T0 + 30}000000000",
    f"mem,host=a used=7i {T0}000000000",
)
QUERY = "SELECT max(usage) FROM cpu GROUP BY host"
# (measurement, time in ns, host, max): a selector alone keeps its point's time.
EXPECTED = [
    ("cpu", (T0 + 60) * 10**9, "a", 1.5),
    ("cpu", (T0 + 30) * 10**9, "b", 4.0),
]


@pytest.fixture(scope="module")
def qdb(front_door):
    db = "influxql_v3"
    assert_204(write_v2(front_door, db, DATA))
    return db


def rows(table: pa.Table) -> list[tuple]:
    out = []
    for r in table.to_pylist():
        t = r["time"]
        ns = t.value if hasattr(t, "value") else int(t.timestamp()) * 10**9
        out.append((r["iox::measurement"], ns, r["host"], r["max"]))
    return sorted(out, key=lambda r: r[2])


def v3(front_door, params: dict, method: str = "GET", headers: dict | None = None) -> requests.Response:
    url = f"{front_door.url}/api/v3/query_influxql"
    all_headers = {"Authorization": f"Token {TOKEN}", **(headers or {})}
    if method == "GET":
        return requests.get(url, params=params, headers=all_headers, timeout=30)
    return requests.post(url, json=params, headers=all_headers, timeout=30)


def test_v3_json_jsonl_csv_and_parquet(front_door, qdb):
    r = v3(front_door, {"db": qdb, "q": QUERY, "format": "json"})
    assert r.status_code == 200, r.text
    got = sorted(
        ((x["iox::measurement"], x["time"], x["host"], x["max"]) for x in r.json()),
        key=lambda g: g[2],
    )
    assert [g[0] for g in got] == ["cpu", "cpu"]
    assert [(g[2], g[3]) for g in got] == [("a", 1.5), ("b", 4.0)]

    r = v3(front_door, {"db": qdb, "q": QUERY, "format": "jsonl"}, method="POST")
    assert r.status_code == 200, r.text
    assert len([json.loads(line) for line in r.text.splitlines()]) == 2

    r = v3(front_door, {"db": qdb, "q": QUERY, "format": "csv"})
    assert r.status_code == 200, r.text
    assert r.text.splitlines()[0] == "iox::measurement,time,host,max"

    r = v3(front_door, {"db": qdb, "q": QUERY, "format": "parquet"})
    assert r.status_code == 200, r.text
    assert rows(pq.read_table(io.BytesIO(r.content))) == EXPECTED


def test_v3_meta_statements_and_errors(front_door, qdb):
    r = v3(front_door, {"db": qdb, "q": "SHOW MEASUREMENTS", "format": "json"})
    assert r.status_code == 200, r.text
    assert [x["name"] for x in r.json()] == ["cpu", "mem"]

    r = v3(front_door, {"db": qdb, "q": "SELECT FROM cpu"})
    assert r.status_code == 400
    assert r.json()["error"].startswith("error parsing query: "), r.text

    r = v3(front_door, {"db": qdb, "q": "SELECT mean(usage), usage FROM cpu"})
    assert r.status_code == 400
    assert "mixing aggregate and non-aggregate" in r.json()["error"], r.text

    r = v3(front_door, {"db": qdb, "q": QUERY}, headers={"Authorization": "Token nope"})
    assert r.status_code == 401


def test_flight_ticket_with_influxql_query_type(front_door, qdb):
    ticket = {"database": qdb, "sql_query": QUERY, "query_type": "influxql"}
    client = flight_client(front_door)
    try:
        opts = flight.FlightCallOptions(headers=[(b"authorization", f"Bearer {TOKEN}".encode())], timeout=60)
        table = client.do_get(flight.Ticket(json.dumps(ticket).encode()), opts).read_all()
        assert table.schema.names == ["iox::measurement", "time", "host", "max"]
        assert rows(table) == EXPECTED

        bad = {"database": qdb, "sql_query": "SELECT nope( FROM cpu", "query_type": "influxql"}
        with pytest.raises(pa.ArrowInvalid, match="error parsing query"):
            client.do_get(flight.Ticket(json.dumps(bad).encode()), opts).read_all()
    finally:
        client.close()


def test_influxdb3_python_language_influxql(front_door, qdb):
    with InfluxDBClient3(host=front_door.url, database=qdb, token=TOKEN) as client:
        table = client.query(QUERY, language="influxql")
        assert rows(table) == EXPECTED
        keys = client.query("SHOW FIELD KEYS FROM mem", language="influxql")
        assert keys.to_pylist() == [
            {"iox::measurement": "mem", "fieldKey": "used", "fieldType": "integer"}
        ]
