"""Every value and type round-trips: written as line protocol, read back exactly over Flight
(influxdb3-python and Flight SQL), with the right Arrow types on the wire."""

from __future__ import annotations

import math
from datetime import datetime

import pyarrow as pa
import pytest
from influxdb_client_3 import InfluxDBClient3

from ferrite_e2e import (TOKEN, assert_204, flight_sql_query, flight_ticket_query, lines, query_json,
                         write_v1, write_v2, write_v3)

I64_MIN = -9223372036854775808
I64_MAX = 9223372036854775807
U64_MAX = 18446744073709551615


def one_row(server, db, sql):
    t = flight_ticket_query(server, db, sql)
    assert t.num_rows == 1, t.to_pylist()
    return t.schema, t.to_pylist()[0]


def test_integer_extremes(server, db):
    assert_204(write_v2(server, db, lines(
        f"ints,k=min i={I64_MIN}i,u=0u 1",
        f"ints,k=max i={I64_MAX}i,u={U64_MAX}u 2",
        "ints,k=zero i=0i,u=1u 3",
        "ints,k=neg i=-42i,u=42u 4",
    ), precision="s"))
    for table in (flight_ticket_query(server, db, "SELECT k, i, u FROM ints ORDER BY time"),
                  flight_sql_query(server, db, "SELECT k, i, u FROM ints ORDER BY time")[1]):
        assert table.schema.field("i").type == pa.int64()
        assert table.schema.field("u").type == pa.uint64()
        assert table.to_pylist() == [
            {"k": "min", "i": I64_MIN, "u": 0},
            {"k": "max", "i": I64_MAX, "u": U64_MAX},
            {"k": "zero", "i": 0, "u": 1},
            {"k": "neg", "i": -42, "u": 42},
        ]
    # JSON keeps all 64 bits too (Python's json reads big integers exactly)
    assert query_json(server, db, "SELECT i, u FROM ints WHERE k = 'max'") == [{"i": I64_MAX, "u": U64_MAX}]
    assert query_json(server, db, "SELECT i FROM ints WHERE k = 'min'") == [{"i": I64_MIN}]


def test_integer_out_of_range_rejected(server, db):
    for bad in (f"ints i={I64_MAX + 1}i 1", f"ints i={I64_MIN - 1}i 1", f"ints u={U64_MAX + 1}u 1",
                "ints u=-1u 1"):
        r = write_v2(server, db, bad, precision="s")
        assert r.status_code == 400, (bad, r.status_code, r.text)
        assert r.json()["line"] == 1


FLOATS = {
    "neg": ("-1.5", -1.5),
    "exp": ("1.5e-10", 1.5e-10),
    "EXP": ("-1E3", -1000.0),
    "int_like": ("3", 3.0),
    "big": ("1.7976931348623157e308", 1.7976931348623157e308),
    "tiny": ("5e-324", 5e-324),
    "pos_exp": ("2.5e+3", 2500.0),
    "zero": ("0.0", 0.0),
    "no_frac": ("7e2", 700.0),
}


def test_floats(server, db):
    fields = ",".join(f"{k}={lp}" for k, (lp, _) in FLOATS.items())
    assert_204(write_v2(server, db, f"fl {fields} 1", precision="s"))
    schema, row = one_row(server, db, "SELECT * FROM fl")
    for k, (_, want) in FLOATS.items():
        assert schema.field(k).type == pa.float64(), k
        assert row[k] == want and math.copysign(1, row[k]) == math.copysign(1, want), (k, row[k], want)


def test_float_negative_zero(server, db):
    assert_204(write_v2(server, db, "nz v=-0.0 1", precision="s"))
    _, row = one_row(server, db, "SELECT v FROM nz")
    assert row["v"] == 0.0 and math.copysign(1, row["v"]) == -1.0


BOOLS_TRUE = ["t", "T", "true", "True", "TRUE"]
BOOLS_FALSE = ["f", "F", "false", "False", "FALSE"]


def test_booleans_every_spelling(server, db):
    fields = ",".join([f"t{i}={s}" for i, s in enumerate(BOOLS_TRUE)]
                      + [f"f{i}={s}" for i, s in enumerate(BOOLS_FALSE)])
    assert_204(write_v3(server, db, f"bools {fields} 1", precision="second"))
    schema, row = one_row(server, db, "SELECT * FROM bools")
    for i in range(5):
        assert schema.field(f"t{i}").type == pa.bool_()
        assert row[f"t{i}"] is True, (BOOLS_TRUE[i], row)
        assert row[f"f{i}"] is False, (BOOLS_FALSE[i], row)


@pytest.mark.parametrize("bad", ["tRUE", "yes", "truee", "Fa"])
def test_bad_boolean_spellings_rejected(server, db, bad):
    r = write_v2(server, db, f"bools v={bad} 1", precision="s")
    assert r.status_code == 400, (bad, r.text)


STRINGS = [
    # (line-protocol spelling inside the quotes, stored value)
    (r'say \"hi\"', 'say "hi"'),
    (r'back\\slash', 'back\\slash'),
    (r'ends with backslash\\', 'ends with backslash\\'),
    (r'lone \ backslash and \n stay', 'lone \\ backslash and \\n stay'),
    ('commas, spaces and = equals', 'commas, spaces and = equals'),
    ('unicode: ünïcödé – 日本語 – 😀', 'unicode: ünïcödé – 日本語 – 😀'),
    ('', ''),
    ('  leading and trailing  ', '  leading and trailing  '),
    ("it's", "it's"),
    ('tab\there', 'tab\there'),
]


def test_strings(server, db):
    body = lines(*[f'str,i={i:02d} s="{lp}" {i}' for i, (lp, _) in enumerate(STRINGS)])
    assert_204(write_v2(server, db, body, precision="s"))
    with InfluxDBClient3(host=server.url, database=db, token=TOKEN) as client:
        table = client.query("SELECT i, s FROM str ORDER BY i")
    assert table.schema.field("s").type == pa.string()
    assert [r["s"] for r in table.to_pylist()] == [want for _, want in STRINGS]
    # and the HTTP JSON rendering agrees
    assert [r["s"] for r in query_json(server, db, "SELECT s FROM str ORDER BY i")] == [w for _, w in STRINGS]


def test_string_with_newline(server, db):
    assert_204(write_v2(server, db, 'nl s="line one\nline two" 1\nnl,x=2 s="after" 2\n', precision="s"))
    assert [r["s"] for r in query_json(server, db, "SELECT s FROM nl ORDER BY time")] == [
        "line one\nline two", "after"]


def test_escaped_identifiers(server, db):
    """Measurement escapes comma and space; tag keys/values and field keys also escape '='."""
    lp = r'my\ meas\,ure=ment,tag\ k\,e\=y=v\ a\,l\=ue,plain=ünï field\ k\,e\=y=1i,other="x" 1'
    assert_204(write_v2(server, db, lp, precision="s"))
    tables = query_json(server, db, "SELECT table_name FROM information_schema.tables "
                                    "WHERE table_schema = 'iox'")
    assert tables == [{"table_name": "my meas,ure=ment"}]
    _, table = flight_sql_query(server, db, 'SELECT * FROM "my meas,ure=ment"')
    assert table.to_pylist() == [{
        "tag k,e=y": "v a,l=ue", "plain": "ünï", "field k,e=y": 1, "other": "x",
        "time": datetime(1970, 1, 1, 0, 0, 1),
    }]
    assert table.schema.field("tag k,e=y").type == pa.string()
    assert table.schema.field("field k,e=y").type == pa.int64()


def test_flight_wire_types(server, db):
    assert_204(write_v2(server, db, 'wire,tag=a i=1i,u=1u,f=1.0,b=true,s="x" 1', precision="s"))
    want = {"tag": pa.string(), "time": pa.timestamp("ns"), "i": pa.int64(), "u": pa.uint64(),
            "f": pa.float64(), "b": pa.bool_(), "s": pa.string()}
    with InfluxDBClient3(host=server.url, database=db, token=TOKEN) as client:
        via_client = client.query("SELECT * FROM wire").schema
    info_schema, via_flight_sql = flight_sql_query(server, db, "SELECT * FROM wire")
    for schema in (via_client, info_schema, via_flight_sql.schema):
        assert {f.name: f.type for f in schema} == want
        assert not any(pa.types.is_dictionary(f.type) for f in schema)
        assert not schema.field("time").nullable


# --- timestamps and precision ---------------------------------------------------------------

NS = 1_700_000_000_123_456_789  # 2023-11-14T22:13:20.123456789Z


@pytest.mark.parametrize("precision,value,want_ns", [
    ("ns", NS, NS),
    ("us", NS // 1000, NS // 1000 * 1000),
    ("ms", NS // 10**6, NS // 10**6 * 10**6),
    ("s", NS // 10**9, NS // 10**9 * 10**9),
])
def test_v2_precision(server, db, precision, value, want_ns):
    assert_204(write_v2(server, db, f"prec v=1 {value}", precision=precision))
    assert query_json(server, db, "SELECT CAST(time AS BIGINT) AS t FROM prec") == [{"t": want_ns}]


@pytest.mark.parametrize("precision,value,want_ns", [
    ("n", NS, NS),
    ("ns", NS, NS),
    ("u", NS // 1000, NS // 1000 * 1000),
    ("us", NS // 1000, NS // 1000 * 1000),
    ("ms", NS // 10**6, NS // 10**6 * 10**6),
    ("s", NS // 10**9, NS // 10**9 * 10**9),
])
def test_v1_precision(server, db, precision, value, want_ns):
    assert_204(write_v1(server, db, f"prec v=1 {value}", precision=precision))
    assert query_json(server, db, "SELECT CAST(time AS BIGINT) AS t FROM prec") == [{"t": want_ns}]


@pytest.mark.parametrize("precision,value,want_ns", [
    ("nanosecond", NS, NS),
    ("microsecond", NS // 1000, NS // 1000 * 1000),
    ("millisecond", NS // 10**6, NS // 10**6 * 10**6),
    ("second", NS // 10**9, NS // 10**9 * 10**9),
    # auto guesses the unit from the magnitude
    ("auto", NS, NS),
    ("auto", NS // 1000, NS // 1000 * 1000),
    ("auto", NS // 10**6, NS // 10**6 * 10**6),
    ("auto", NS // 10**9, NS // 10**9 * 10**9),
    (None, NS // 10**9, NS // 10**9 * 10**9),  # v3 default is auto
])
def test_v3_precision(server, db, precision, value, want_ns):
    assert_204(write_v3(server, db, f"prec v=1 {value}", precision=precision))
    assert query_json(server, db, "SELECT CAST(time AS BIGINT) AS t FROM prec") == [{"t": want_ns}]


def test_v2_default_precision_is_ns(server, db):
    assert_204(write_v2(server, db, f"prec v=1 {NS}"))
    assert query_json(server, db, "SELECT CAST(time AS BIGINT) AS t FROM prec") == [{"t": NS}]


def test_timestamp_extremes(server, db):
    assert_204(write_v2(server, db, lines("ext,k=neg v=1 -1", "ext,k=zero v=2 0", f"ext,k=max v=3 {I64_MAX}",
                                          "ext,k=old v=4 -5000000000000000000"), precision="ns"))
    got = query_json(server, db, "SELECT k, CAST(time AS BIGINT) AS t FROM ext ORDER BY time")
    assert got == [{"k": "old", "t": -5000000000000000000}, {"k": "neg", "t": -1},
                   {"k": "zero", "t": 0}, {"k": "max", "t": I64_MAX}]
    # nanoseconds survive the Flight wire exactly
    t = flight_ticket_query(server, db, "SELECT k, time FROM ext WHERE k = 'neg'")
    assert t.column("time").cast(pa.int64()).to_pylist() == [-1]


def test_timestamp_near_i64_min(server, db):
    """InfluxDB's smallest valid time is -9223372036854775806: store it, or reject it with a 400,
    never a 500."""
    r = write_v2(server, db, "oldest v=1 -9223372036854775806", precision="ns")
    assert r.status_code in (204, 400), (r.status_code, r.text)
    if r.status_code == 204:
        got = query_json(server, db, "SELECT CAST(time AS BIGINT) AS t FROM oldest")
        assert got == [{"t": -9223372036854775806}]
    else:
        assert "timestamp" in r.json()["message"]
    # and the write path still works afterwards
    assert_204(write_v2(server, db, "oldest v=2 0", precision="ns"))


def test_influxdb3_client_point_types(server, db):
    """Types written by the client's own Point serializer."""
    from influxdb_client_3 import Point, WritePrecision
    p = (Point("pt").tag("host", "h1").field("f", 1.25).field("i", -7).field("b", True)
         .field("s", 'a "quoted", value').time(NS, WritePrecision.NS))
    with InfluxDBClient3(host=server.url, database=db, token=TOKEN) as client:
        client.write(record=p)
        t = client.query("SELECT host, f, i, b, s, time FROM pt")
    assert {f.name: f.type for f in t.schema} == {
        "host": pa.string(), "f": pa.float64(), "i": pa.int64(), "b": pa.bool_(), "s": pa.string(),
        "time": pa.timestamp("ns")}
    row = t.drop_columns(["time"]).to_pylist()[0]
    assert (row["host"], row["f"], row["i"], row["b"], row["s"]) == ("h1", 1.25, -7, True, 'a "quoted", value')
    assert t.column("time").cast(pa.int64()).to_pylist() == [NS]


def test_sparse_columns_are_null(server, db):
    assert_204(write_v2(server, db, lines("sp,a=1 x=1i 1", "sp,b=2 y=2.0 2", 'sp z="s" 3'), precision="s"))
    t = flight_ticket_query(server, db, "SELECT a, b, x, y, z FROM sp ORDER BY time")
    assert t.to_pylist() == [
        {"a": "1", "b": None, "x": 1, "y": None, "z": None},
        {"a": None, "b": "2", "x": None, "y": 2.0, "z": None},
        {"a": None, "b": None, "x": None, "y": None, "z": "s"},
    ]
