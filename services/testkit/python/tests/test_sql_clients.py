"""SQL clients end to end: each connects, lists tables, lists a table's columns, and runs a
time-filtered, one-minute-binned aggregate whose exact values, string tags and Timestamp(ns)
times are checked; parameters and error statuses too.

  client                                   how it is driven
  Grafana Flight SQL datasource (Go)       ferrite-sql-go: arrow-go Flight SQL + the plugin's macros
  ADBC Flight SQL (Python DB-API)          adbc_driver_flightsql.dbapi, here
  Arrow Flight SQL JDBC driver (Java)      ferrite-sql-jdbc
  pyarrow Flight                           raw Flight SQL commands, here
  influxdb3-python                         InfluxDBClient3.query (JSON ticket), here

The Go and Java programs (services/testkit/clients/) are built by deploy/dev/install-clients.sh
(`make setup`); each runs a scripted scenario and prints one JSON document, asserted on here.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pyarrow as pa
import pyarrow.flight as flight
import pytest
from influxdb_client_3 import InfluxDBClient3

from ferrite_e2e import (TOKEN, assert_204, flight_sql_get, flight_sql_get_tables_command,
                         flight_sql_query, lines, write_v3)

# --- the data and what every client must see --------------------------------------------------

T0 = 1_704_067_200  # 2024-01-01T00:00:00Z
NS = 1_000_000_000
FROM, TO = "2024-01-01T00:00:00Z", "2024-01-01T00:02:00Z"
DATA = lines(
    f"cpu,host=b,region=us usage=1000 {T0 - 1}",  # before the window
    f"cpu,host=a,region=eu usage=1 {T0}",
    f"cpu,host=b,region=us usage=10 {T0 + 10}",
    f"cpu,host=a,region=eu usage=3 {T0 + 30}",
    f"cpu,host=a,region=eu usage=5 {T0 + 60}",
    f"cpu,host=b,region=us usage=20 {T0 + 70}",
    f"cpu,host=a,region=eu usage=7 {T0 + 90}",
    f"cpu,host=b,region=us usage=40 {T0 + 100}",
    f"cpu,host=a,region=eu usage=9 {T0 + 120}",  # at the window's end: only `<=` includes it
    f"mem,host=a used=1i {T0}",
)
USER_TABLES = ["cpu", "mem"]

AGG_SQL = ("SELECT date_bin(INTERVAL '1 minute', time) AS time, host, avg(usage) AS usage FROM cpu "
           f"WHERE time >= '{FROM}' AND time < '{TO}' GROUP BY 1, host ORDER BY 1, host")
# (time as int64 ns, host, avg(usage))
AGG_ROWS = [
    (T0 * NS, "a", 2.0), (T0 * NS, "b", 10.0),
    ((T0 + 60) * NS, "a", 6.0), ((T0 + 60) * NS, "b", 30.0),
]
AGG_SCHEMA = pa.schema([("time", pa.timestamp("ns")), ("host", pa.string()), ("usage", pa.float64())])

# One host's bins, the host given as a parameter ($1 positional, $host named).
PARAM_SQL = ("SELECT date_bin(INTERVAL '1 minute', time) AS time, avg(usage) AS usage FROM cpu "
             f"WHERE host = $1 AND time >= '{FROM}' AND time < '{TO}' GROUP BY 1 ORDER BY 1")
PARAM_ROWS_A = [(T0 * NS, 2.0), ((T0 + 60) * NS, 6.0)]

CPU_COLUMNS = {"host": pa.string(), "region": pa.string(), "usage": pa.float64(), "time": pa.timestamp("ns")}
CPU_COLUMN_KINDS = {"host": "iox::column_type::tag", "region": "iox::column_type::tag",
                    "usage": "iox::column_type::field::float", "time": "iox::column_type::timestamp"}

BAD_SQL = "SELEC host FROM cpu"
UNKNOWN_TABLE = "no_such_table_q7"
UNKNOWN_DB = "no_such_db_q7"


@pytest.fixture
def sdb(front_door, db):
    assert_204(write_v3(front_door, db, DATA, precision="second"))
    return db


def addr(front_door) -> str:
    return f"127.0.0.1:{front_door.port}"


def rows_as_dicts(result: dict) -> list[dict]:
    """A Go report's result ({schema, rows}) as a list of {column: value}."""
    names = [c["name"] for c in result["schema"]]
    return [dict(zip(names, row)) for row in result["rows"]]


def assert_agg_table(table: pa.Table):
    """The aggregate as Arrow: exact schema (plain Utf8 tag, Timestamp(ns) without zone) and values."""
    for f in AGG_SCHEMA:
        got = table.schema.field(f.name).type
        assert not pa.types.is_dictionary(got), f"{f.name} is a dictionary: {got}"
        assert got == f.type, f"{f.name}: {got} != {f.type}"
    times = table.column("time").cast(pa.int64()).to_pylist()
    assert list(zip(times, table.column("host").to_pylist(), table.column("usage").to_pylist())) == AGG_ROWS


# --- the Go and Java programs ------------------------------------------------------------------

TOOLS_DIR = Path(os.environ.get("FERRITE_TOOLS_DIR") or Path.home() / ".cache" / "ferrite-tools")


def tool(env: str, name: str) -> Path:
    path = Path(os.environ.get(env) or TOOLS_DIR / "bin" / name)
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(f"{name} not found at {path}: run `make setup` (deploy/dev/install-clients.sh builds it) "
                    f"or set {env}", pytrace=False)
    return path


def run_client(env: str, name: str, args: list[str]) -> tuple[int, dict, str]:
    """Run a client program; returns (exit status, its JSON report, stderr)."""
    proc = subprocess.run([str(tool(env, name)), *args], capture_output=True, text=True, timeout=300)
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"{name} exited {proc.returncode} without a JSON report\nstdout: {proc.stdout[-2000:]}\n"
                    f"stderr: {proc.stderr[-4000:]}")
    return proc.returncode, report, proc.stderr


def go_client(front_door, db: str, *args: str) -> tuple[int, dict, str]:
    return run_client("FERRITE_SQL_GO", "ferrite-sql-go",
                      ["--addr", addr(front_door), "--database", db, "--from", FROM, "--to", TO,
                       "--interval", "1m", *args])


def jdbc_client(front_door, db: str, *args: str) -> tuple[int, dict, str]:
    return run_client("FERRITE_SQL_JDBC", "ferrite-sql-jdbc", ["--addr", addr(front_door), "--database", db, *args])


def no_error(step: dict, what: str) -> dict:
    assert step.get("error") is None, f"{what} failed: {step['error']}"
    return step


# --- (1) Grafana's Flight SQL datasource (Go) ---------------------------------------------------

GRAFANA_AGG = ("SELECT $__dateBin(time) AS time, host, avg(usage) AS usage FROM cpu "
               "WHERE $__timeFilter(time) GROUP BY 1, host ORDER BY 1, host")
GRAFANA_CAST = ("SELECT count(*) AS n FROM cpu WHERE time >= $__timeFrom() AND time < $__timeTo()")
GRAFANA_GROUP = ("SELECT $__timeGroupAlias(time, minute), avg(usage) AS usage FROM cpu WHERE host = 'b' "
                 "AND $__timeRange(time) GROUP BY $__timeGroup(time, minute) ORDER BY 1")


def check_grafana_report(report: dict):
    no_error(report["health"], "health check `select 1`")
    assert report["health"]["rows"] == [[1]]

    tables = no_error(report["tables"], "GetTables(table_types=[BASE TABLE, table])")
    assert tables["endpoints"] == 1
    assert rows_as_dicts(tables) == [
        {"catalog_name": "public", "db_schema_name": "iox", "table_name": t, "table_type": "BASE TABLE"}
        for t in USER_TABLES
    ]

    cols = no_error(report["columns"], "GetTables(cpu, include_schema)")["columns"]
    assert {c["name"]: c["type"] for c in cols} == {
        "host": "utf8", "region": "utf8", "usage": "float64", "time": "timestamp[ns]"}
    assert {c["name"]: c["metadata"].get("iox::column::type") for c in cols} == CPU_COLUMN_KINDS

    queries = {q["name"]: q for q in report["queries"]}
    agg = no_error(queries["agg"], "the $__dateBin/$__timeFilter aggregate")
    assert agg["sql"] == (
        "SELECT date_bin(interval '60 second', time, timestamp '1970-01-01T00:00:00Z') AS time, host, "
        f"avg(usage) AS usage FROM cpu WHERE time >= '{FROM}' AND time <= '{TO}' GROUP BY 1, host ORDER BY 1, host")
    assert agg["endpoints"] == 1
    assert [(c["name"], c["type"]) for c in agg["schema"]] == [
        ("time", "timestamp[ns]"), ("host", "utf8"), ("usage", "float64")]
    assert agg["grafana_unsupported"] == [], "columns Grafana would show empty"
    # $__timeFilter's upper bound is inclusive: the sample at exactly TO is in.
    assert [tuple(r) for r in agg["rows"]] == AGG_ROWS + [((T0 + 120) * NS, "a", 9.0)]

    cast = no_error(queries["cast"], "$__timeFrom()/$__timeTo()")
    assert cast["sql"] == ("SELECT count(*) AS n FROM cpu WHERE time >= cast('2024-01-01T00:00:00Z' as timestamp) "
                           "AND time < cast('2024-01-01T00:02:00Z' as timestamp)")
    assert cast["rows"] == [[7]]

    group = no_error(queries["group"], "$__timeGroup/$__timeGroupAlias")
    assert [c["name"] for c in group["schema"]] == [
        "time_minute", "time_hour", "time_day", "time_month", "time_year", "usage"]
    assert group["rows"] == [[0, 0, 1, 1, 2024, 10.0], [1, 0, 1, 1, 2024, 30.0]]


def test_grafana_flightsql_token(front_door, sdb):
    rc, report, stderr = go_client(
        front_door, sdb, "--token", TOKEN, "--table", "cpu",
        "--query", f"agg={GRAFANA_AGG}", "--query", f"cast={GRAFANA_CAST}", "--query", f"group={GRAFANA_GROUP}")
    assert report["handshake"] is None  # with a token the plugin does no Handshake
    check_grafana_report(report)
    sql_info = no_error(report["sql_info"], "GetSqlInfo([]) (all)")
    info_names = {row[0] for row in sql_info["rows"]}
    assert 0 in info_names, "no FLIGHT_SQL_SERVER_NAME (0) in GetSqlInfo"
    assert rc == 0, (report["failures"], stderr[-2000:])


def test_grafana_flightsql_username_password(front_door, sdb):
    """Username/password: Handshake with Basic auth; the server's `authorization: Bearer`
    answer (the password) goes on every later call."""
    rc, report, stderr = go_client(
        front_door, sdb, "--user", "grafana", "--password", TOKEN, "--table", "cpu",
        "--query", f"agg={GRAFANA_AGG}", "--query", f"cast={GRAFANA_CAST}", "--query", f"group={GRAFANA_GROUP}")
    assert report["handshake"] == {"authorization": f"Bearer {TOKEN}"}, report["failures"]
    check_grafana_report(report)
    assert rc == 0, (report["failures"], stderr[-2000:])


def test_grafana_flightsql_database_header_bucket_name(front_door, sdb):
    """Users of the plugin often enter `bucket-name=<db>` as the metadata pair."""
    rc, report, stderr = go_client(front_door, sdb, "--token", TOKEN, "--database-header", "bucket-name",
                                   "--no-metadata", "--query", f"agg={GRAFANA_AGG}")
    agg = no_error(report["queries"][0], "aggregate with bucket-name")
    assert [tuple(r) for r in agg["rows"]] == AGG_ROWS + [((T0 + 120) * NS, "a", 9.0)]
    assert rc == 0, (report["failures"], stderr[-2000:])


def test_grafana_flightsql_errors(front_door, sdb):
    rc, report, stderr = go_client(
        front_door, sdb, "--token", TOKEN, "--no-metadata",
        "--error-query", f"bad_sql={BAD_SQL}",
        "--error-query", f"unknown_table=SELECT * FROM {UNKNOWN_TABLE} WHERE $__timeFilter(time)",
        "--error-query", "unknown_db=SELECT 1", "--database-of", f"unknown_db={UNKNOWN_DB}")
    errors = {q["name"]: q["error"] for q in report["queries"]}
    assert errors["bad_sql"]["code"] == "InvalidArgument", errors["bad_sql"]
    assert "SELEC" in errors["bad_sql"]["message"]
    assert errors["unknown_table"]["code"] == "InvalidArgument", errors["unknown_table"]
    assert UNKNOWN_TABLE in errors["unknown_table"]["message"]
    assert errors["unknown_db"]["code"] == "NotFound", errors["unknown_db"]
    assert UNKNOWN_DB in errors["unknown_db"]["message"]
    assert rc == 0, (report["failures"], stderr[-2000:])


# --- (2) ADBC Flight SQL, DB-API -----------------------------------------------------------------

def adbc_connect(front_door, db: str, **auth):
    import adbc_driver_flightsql.dbapi as adbc_flightsql
    kwargs = {"adbc.flight.sql.rpc.call_header.database": db}
    if auth:
        kwargs.update(auth)
    else:
        kwargs["adbc.flight.sql.authorization_header"] = f"Bearer {TOKEN}"
    return adbc_flightsql.connect(f"grpc://{addr(front_door)}", db_kwargs=kwargs)


def test_adbc_metadata(front_door, sdb):
    with adbc_connect(front_door, sdb) as conn:
        assert "BASE TABLE" in conn.adbc_get_table_types()
        objects = conn.adbc_get_objects(depth="all", catalog_filter="public", db_schema_filter="iox").read_all()
        catalogs = objects.to_pylist()
        assert [c["catalog_name"] for c in catalogs] == ["public"]
        schemas = {s["db_schema_name"]: s for s in catalogs[0]["catalog_db_schemas"]}
        assert list(schemas) == ["iox"]
        tables = {t["table_name"]: t for t in schemas["iox"]["db_schema_tables"]}
        assert sorted(tables) == USER_TABLES
        assert {t["table_type"] for t in tables.values()} == {"BASE TABLE"}
        assert sorted(c["column_name"] for c in tables["cpu"]["table_columns"]) == sorted(CPU_COLUMNS)

        schema = conn.adbc_get_table_schema("cpu", catalog_filter="public", db_schema_filter="iox")
        assert {f.name: f.type for f in schema} == CPU_COLUMNS


def test_adbc_query_and_parameters(front_door, sdb):
    with adbc_connect(front_door, sdb) as conn:
        with conn.cursor() as cur:
            cur.execute(AGG_SQL)
            assert_agg_table(cur.fetch_arrow_table())

            cur.execute(PARAM_SQL, ("a",))
            table = cur.fetch_arrow_table()
            assert table.schema.field("time").type == pa.timestamp("ns")
            times = table.column("time").cast(pa.int64()).to_pylist()
            assert list(zip(times, table.column("usage").to_pylist())) == PARAM_ROWS_A

            cur.execute(PARAM_SQL, ("b",))
            assert cur.fetch_arrow_table().column("usage").to_pylist() == [10.0, 30.0]


def test_adbc_username_password(front_door, sdb):
    """username/password: the driver does a Basic Handshake and then sends the bearer token
    the server answers with."""
    with adbc_connect(front_door, sdb, username="adbc", password=TOKEN) as conn:
        with conn.cursor() as cur:
            cur.execute(AGG_SQL)
            assert_agg_table(cur.fetch_arrow_table())


def test_adbc_errors(front_door, sdb):
    from adbc_driver_manager import AdbcStatusCode, Error
    with adbc_connect(front_door, sdb) as conn:
        with conn.cursor() as cur:
            with pytest.raises(Error) as ei:
                cur.execute(BAD_SQL)
            assert ei.value.status_code == AdbcStatusCode.INVALID_ARGUMENT, ei.value
            assert "SELEC" in str(ei.value)
            with pytest.raises(Error) as ei:
                cur.execute(f"SELECT * FROM {UNKNOWN_TABLE}")
            assert ei.value.status_code == AdbcStatusCode.INVALID_ARGUMENT, ei.value
            assert UNKNOWN_TABLE in str(ei.value)
    with adbc_connect(front_door, UNKNOWN_DB) as conn:
        with conn.cursor() as cur:
            with pytest.raises(Error) as ei:
                cur.execute("SELECT 1")
            assert ei.value.status_code == AdbcStatusCode.NOT_FOUND, ei.value
            assert UNKNOWN_DB in str(ei.value)


# --- (3) Arrow Flight SQL JDBC -----------------------------------------------------------------

def check_jdbc_report(report: dict):
    assert report.get("connected") is True, report.get("error")
    md = report["metadata"]
    for key, value in md.items():
        assert not (isinstance(value, dict) and "error" in value), f"DatabaseMetaData {key} failed: {value['error']}"
    assert md["product_name"], "getDatabaseProductName() is empty (GetSqlInfo FLIGHT_SQL_SERVER_NAME)"
    assert {"TABLE_CAT": "public"} in md["catalogs"]
    assert {"TABLE_SCHEM": "iox", "TABLE_CATALOG": "public"} in md["schemas"]
    assert {"TABLE_TYPE": "BASE TABLE"} in md["table_types"]
    user_tables = [t for t in md["tables"] if t["TABLE_SCHEM"] == "iox"]
    assert user_tables == [{"TABLE_CAT": "public", "TABLE_SCHEM": "iox", "TABLE_NAME": t, "TABLE_TYPE": "BASE TABLE"}
                           for t in USER_TABLES]
    # java.sql.Types: VARCHAR 12, DOUBLE 8, TIMESTAMP 93
    assert {c["COLUMN_NAME"]: c["DATA_TYPE"] for c in md["columns"]} == {
        "host": 12, "region": 12, "usage": 8, "time": 93}
    assert md["primary_keys"] == []
    # md["type_info"]: the driver (18.3.0) answers getTypeInfo() itself, empty, without a call.

    queries = {q["name"]: q for q in report["queries"]}
    agg = no_error(queries["agg"], "Statement.executeQuery(aggregate)")
    assert [(c["name"], c["sql_type"]) for c in agg["columns"]] == [
        ("time", "TIMESTAMP"), ("host", "VARCHAR"), ("usage", "DOUBLE")]
    assert [tuple(r) for r in agg["rows"]] == AGG_ROWS

    prepared = no_error(queries["param_a"], "PreparedStatement(host = $1) with setString(1, \"a\")")
    assert [(c["name"], c["sql_type"]) for c in prepared["columns"]] == [("time", "TIMESTAMP"), ("usage", "DOUBLE")]
    assert [tuple(r) for r in prepared["rows"]] == PARAM_ROWS_A
    # The JDBC way of writing a positional parameter: `?` is numbered like `$1`.
    question = no_error(queries["param_q"], "PreparedStatement(host = ?) with setString(1, \"a\")")
    assert [tuple(r) for r in question["rows"]] == PARAM_ROWS_A


def jdbc_scenario_args() -> list[str]:
    return ["--table", "cpu", "--query", f"agg={AGG_SQL}",
            "--prepared", f"param_a={PARAM_SQL}", "--bind", "param_a=str:a",
            "--prepared", f"param_q={PARAM_SQL.replace('$1', '?')}", "--bind", "param_q=str:a"]


def test_jdbc_token(front_door, sdb):
    rc, report, stderr = jdbc_client(front_door, sdb, "--token", TOKEN, *jdbc_scenario_args())
    check_jdbc_report(report)
    assert rc == 0, (report["failures"], stderr[-2000:])


def test_jdbc_user_password(front_door, sdb):
    rc, report, stderr = jdbc_client(front_door, sdb, "--user", "jdbc", "--password", TOKEN, *jdbc_scenario_args())
    check_jdbc_report(report)
    assert rc == 0, (report["failures"], stderr[-2000:])


def test_jdbc_errors(front_door, sdb):
    rc, report, stderr = jdbc_client(
        front_door, sdb, "--token", TOKEN, "--no-metadata", "--error-query", f"bad_sql={BAD_SQL}",
        "--error-query", f"unknown_table=SELECT * FROM {UNKNOWN_TABLE}", "--unknown-database", UNKNOWN_DB)
    assert report.get("connected") is True, report.get("error")
    errors = {q["name"]: q["error"] for q in report["queries"]}
    assert errors["bad_sql"]["flight_status"] == "INVALID_ARGUMENT", errors["bad_sql"]
    assert "SELEC" in errors["bad_sql"]["message"], "the SQLException should carry the server's message"
    assert errors["unknown_table"]["flight_status"] == "INVALID_ARGUMENT", errors["unknown_table"]
    assert UNKNOWN_TABLE in errors["unknown_table"]["message"]
    unknown_db = report["unknown_database"]["error"]
    assert unknown_db["flight_status"] == "NOT_FOUND", unknown_db
    assert UNKNOWN_DB in unknown_db["message"]
    assert rc == 0, (report["failures"], stderr[-2000:])


# --- (4) pyarrow Flight with Flight SQL commands -------------------------------------------------

def test_pyarrow_flight_sql(front_door, sdb):
    client = flight.FlightClient(front_door.flight_uri)
    try:
        # Handshake with Basic auth: the password comes back as a bearer token.
        assert client.authenticate_basic_token(b"pyarrow", TOKEN.encode()) == (
            b"authorization", f"Bearer {TOKEN}".encode())
    finally:
        client.close()

    _, tables = flight_sql_get(front_door, sdb, flight_sql_get_tables_command(table_types=["BASE TABLE"]))
    assert tables.select(["catalog_name", "db_schema_name", "table_name", "table_type"]).to_pylist() == [
        {"catalog_name": "public", "db_schema_name": "iox", "table_name": t, "table_type": "BASE TABLE"}
        for t in USER_TABLES
    ]

    _, cpu = flight_sql_get(front_door, sdb, flight_sql_get_tables_command(
        db_schema_filter_pattern="iox", table_name_filter_pattern="cpu", include_schema=True))
    assert cpu.column("table_name").to_pylist() == ["cpu"]
    schema = pa.ipc.read_schema(pa.py_buffer(cpu.column("table_schema")[0].as_py()))
    assert {f.name: f.type for f in schema} == CPU_COLUMNS
    assert {f.name: (f.metadata or {}).get(b"iox::column::type", b"").decode() for f in schema} == CPU_COLUMN_KINDS

    info_schema, table = flight_sql_query(front_door, sdb, AGG_SQL)
    assert info_schema == table.schema
    assert_agg_table(table)


def test_pyarrow_flight_sql_errors(front_door, sdb):
    with pytest.raises(pa.ArrowInvalid) as ei:  # gRPC INVALID_ARGUMENT
        flight_sql_query(front_door, sdb, BAD_SQL)
    assert "SELEC" in str(ei.value)
    with pytest.raises(pa.ArrowInvalid) as ei:
        flight_sql_query(front_door, sdb, f"SELECT * FROM {UNKNOWN_TABLE}")
    assert UNKNOWN_TABLE in str(ei.value)
    with pytest.raises(pa.ArrowKeyError) as ei:  # gRPC NOT_FOUND
        flight_sql_query(front_door, UNKNOWN_DB, "SELECT 1")
    assert UNKNOWN_DB in str(ei.value)
    with pytest.raises(pa.ArrowKeyError) as ei:
        flight_sql_get(front_door, UNKNOWN_DB, flight_sql_get_tables_command())
    assert UNKNOWN_DB in str(ei.value)


# --- (5) influxdb3-python -------------------------------------------------------------------------

def test_influxdb3_python(front_door, sdb):
    with InfluxDBClient3(host=front_door.url, database=sdb, token=TOKEN) as client:
        shown = client.query("SHOW TABLES").to_pylist()  # in no particular order
        assert sorted((t["table_catalog"], t["table_name"], t["table_type"]) for t in shown
                      if t["table_schema"] == "iox") == [("public", t, "BASE TABLE") for t in USER_TABLES]
        listed = client.query("SELECT table_name FROM information_schema.tables "
                              "WHERE table_schema = 'iox' ORDER BY table_name")
        assert listed.column("table_name").to_pylist() == USER_TABLES

        columns = client.query("SELECT column_name, data_type FROM information_schema.columns "
                               "WHERE table_schema = 'iox' AND table_name = $t ORDER BY column_name",
                               query_parameters={"t": "cpu"}).to_pylist()
        types = {c["column_name"]: c["data_type"] for c in columns}
        assert types.pop("time") in ("Timestamp(ns)", "Timestamp(Nanosecond, None)")
        assert types == {"host": "Utf8", "region": "Utf8", "usage": "Float64"}

        assert_agg_table(client.query(AGG_SQL))
        got = client.query(
            "SELECT date_bin(INTERVAL '1 minute', time) AS time, avg(usage) AS usage FROM cpu "
            "WHERE host = $host AND time >= $from AND time < $to GROUP BY 1 ORDER BY 1",
            query_parameters={"host": "a", "from": FROM, "to": TO})
        assert got.schema.field("time").type == pa.timestamp("ns")
        times = got.column("time").cast(pa.int64()).to_pylist()
        assert list(zip(times, got.column("usage").to_pylist())) == PARAM_ROWS_A


# --- time-series SQL through the clients ---------------------------------------------------------

GAPFILL_SQL = ("SELECT date_bin_gapfill(INTERVAL '30 seconds', time) AS time, host, "
               "avg(usage) AS usage, locf(max(usage)) AS locf, interpolate(min(usage)) AS interp "
               f"FROM cpu WHERE time >= '{FROM}' AND time < '2024-01-01T00:02:30Z' "
               "GROUP BY 1, host ORDER BY host, 1")
# (time ns, host, avg, locf(max), interpolate(min)): every 30 s of [FROM, FROM + 150 s) for each
# host. Host a has a sample in every bin; host b misses T0+30 (interpolated between 10 and 20)
# and T0+120 (a trailing gap: carried forward by locf, left empty by interpolate).
GAPFILL_ROWS = [(T0 * NS + k * 30 * NS, "a", v, v, v) for k, v in enumerate([1.0, 3.0, 5.0, 7.0, 9.0])] + [
    (T0 * NS, "b", 10.0, 10.0, 10.0),
    ((T0 + 30) * NS, "b", None, 10.0, 15.0),
    ((T0 + 60) * NS, "b", 20.0, 20.0, 20.0),
    ((T0 + 90) * NS, "b", 40.0, 40.0, 40.0),
    ((T0 + 120) * NS, "b", None, 40.0, None),
]
SELECTOR_SQL = ("SELECT host, selector_last(usage, time)['value'] AS last, "
                "selector_last(usage, time)['time'] AS last_time, "
                "selector_max(usage, time)['value'] AS max "
                f"FROM cpu WHERE time >= '{FROM}' AND time < '{TO}' GROUP BY host ORDER BY host")
SELECTOR_ROWS = [("a", 7.0, (T0 + 90) * NS, 7.0), ("b", 40.0, (T0 + 100) * NS, 40.0)]


def gapfill_rows(table: pa.Table) -> list[tuple]:
    assert table.schema.field("time").type == pa.timestamp("ns")
    assert table.schema.field("host").type == pa.string()
    times = table.column("time").cast(pa.int64()).to_pylist()
    cols = [table.column(c).to_pylist() for c in ("host", "usage", "locf", "interp")]
    return [(t, *rest) for t, *rest in zip(times, *cols)]


def selector_rows(table: pa.Table) -> list[tuple]:
    assert table.schema.field("last_time").type == pa.timestamp("ns")
    times = table.column("last_time").cast(pa.int64()).to_pylist()
    return list(zip(table.column("host").to_pylist(), table.column("last").to_pylist(), times,
                    table.column("max").to_pylist()))


def test_time_series_functions_with_influxdb3_python(front_door, sdb):
    with InfluxDBClient3(host=front_door.url, database=sdb, token=TOKEN) as client:
        assert gapfill_rows(client.query(GAPFILL_SQL)) == GAPFILL_ROWS
        assert selector_rows(client.query(SELECTOR_SQL)) == SELECTOR_ROWS


def test_time_series_functions_with_adbc(front_door, sdb):
    """Flight SQL prepared statements: the announced schema must match the gap-filled batches."""
    with adbc_connect(front_door, sdb) as conn:
        with conn.cursor() as cur:
            cur.execute(GAPFILL_SQL)
            assert gapfill_rows(cur.fetch_arrow_table()) == GAPFILL_ROWS
            cur.execute(SELECTOR_SQL)
            assert selector_rows(cur.fetch_arrow_table()) == SELECTOR_ROWS
