"""The real clients authenticate with database tokens, on `ferrite serve` and on the cluster.

Each test gets a database of its own and three tokens created through the management API:
read-write, read-only and write-only. Every client must work with the token that has the
permission and be refused (401/403, or the client's own error for them) with one that lacks it.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import pyarrow.flight as flight
import pytest
import requests
from influxdb_client import InfluxDBClient
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.rest import ApiException
from influxdb_client_3 import InfluxDBClient3, InfluxDBError
from influxdb_client_3.exceptions import InfluxDB3ClientQueryError

from ferrite_e2e import AUTH, CREATED_SECRETS, flight_sql_command, unique_db

T0 = 1_700_000_000


@dataclass
class Tokens:
    db: str
    rw: str
    ro: str
    wo: str


def create_token(url: str, *permissions: tuple[str, str]) -> str:
    r = requests.post(url + "/api/v0/tokens", headers=AUTH, timeout=30, json={
        "description": "python client test",
        "permissions": [{"action": a, "resource": r} for a, r in permissions],
    })
    assert r.status_code == 201, r.text
    secret = r.json()["accessToken"]
    CREATED_SECRETS.append(secret)
    return secret


@pytest.fixture
def tokens(front_door, request) -> Tokens:
    db = unique_db(request.node.name.replace("test_", "", 1))
    r = requests.post(front_door.url + "/api/v0/databases", headers=AUTH, json={"name": db}, timeout=30)
    assert r.status_code == 201, r.text
    return Tokens(
        db=db,
        rw=create_token(front_door.url, ("read", db), ("write", db)),
        ro=create_token(front_door.url, ("read", db)),
        wo=create_token(front_door.url, ("write", db)),
    )


def test_influxdb3_python_with_a_database_token(front_door, tokens):
    with InfluxDBClient3(host=front_door.url, database=tokens.db, token=tokens.rw) as client:
        client.write(f"cpu,host=a usage=1.5 {T0}", write_precision="s")
        assert client.query("SELECT host, usage FROM cpu").to_pylist() == [{"host": "a", "usage": 1.5}]
    with InfluxDBClient3(host=front_door.url, database=tokens.db, token=tokens.ro) as client:
        assert client.query("SELECT count(*) AS n FROM cpu").to_pylist() == [{"n": 1}]
        with pytest.raises(InfluxDBError) as ei:
            client.write(f"cpu,host=b usage=2 {T0}", write_precision="s")
        assert ei.value.response.status == 403, ei.value
    with InfluxDBClient3(host=front_door.url, database=tokens.db, token=tokens.wo) as client:
        client.write(f"cpu,host=c usage=3 {T0}", write_precision="s")
        with pytest.raises(InfluxDB3ClientQueryError, match="PERMISSION_DENIED"):
            client.query("SELECT count(*) AS n FROM cpu")
    with InfluxDBClient3(host=front_door.url, database=tokens.db, token="apiv1_" + secrets.token_hex(8)) as client:
        with pytest.raises(InfluxDB3ClientQueryError, match="UNAUTHENTICATED"):
            client.query("SELECT 1")


def test_influxdb_client_v2_with_a_database_token(front_door, tokens):
    with InfluxDBClient(url=front_door.url, token=tokens.wo, org="any") as client:
        client.write_api(write_options=SYNCHRONOUS).write(bucket=tokens.db, record=f"mem,host=a used=1i {T0}000000000")
    with InfluxDBClient(url=front_door.url, token=tokens.ro, org="any") as client:
        with pytest.raises(ApiException) as ei:
            client.write_api(write_options=SYNCHRONOUS).write(bucket=tokens.db, record=f"mem,host=b used=2i {T0}")
        assert ei.value.status == 403
    with InfluxDBClient3(host=front_door.url, database=tokens.db, token=tokens.ro) as client:
        assert client.query("SELECT host, used FROM mem").to_pylist() == [{"host": "a", "used": 1}]


def test_influxdb_v1_client_with_a_database_token(front_door, tokens):
    """The legacy `influxdb` client sends Basic auth: the password is the token."""
    from influxdb import InfluxDBClient as V1Client
    from influxdb.exceptions import InfluxDBClientError
    point = [{"measurement": "disk", "tags": {"host": "a"}, "fields": {"free": 7}, "time": T0 * 10**9}]
    client = V1Client(host="127.0.0.1", port=front_door.port, username="telegraf", password=tokens.wo,
                      database=tokens.db)
    assert client.write_points(point)
    client = V1Client(host="127.0.0.1", port=front_door.port, username="telegraf", password=tokens.ro,
                      database=tokens.db)
    with pytest.raises(InfluxDBClientError) as ei:
        client.write_points(point)
    assert ei.value.code == 403
    with InfluxDBClient3(host=front_door.url, database=tokens.db, token=tokens.ro) as c3:
        assert c3.query("SELECT host, free FROM disk").to_pylist() == [{"host": "a", "free": 7}]


def flight_sql_count(front_door, db: str, headers: list[tuple[bytes, bytes]]) -> int:
    client = flight.FlightClient(front_door.flight_uri)
    try:
        opts = flight.FlightCallOptions(headers=[*headers, (b"database", db.encode())], timeout=60)
        info = client.get_flight_info(
            flight.FlightDescriptor.for_command(flight_sql_command("SELECT count(*) AS n FROM cpu")), opts)
        return client.do_get(info.endpoints[0].ticket, opts).read_all().to_pylist()[0]["n"]
    finally:
        client.close()


def test_pyarrow_flight_sql_with_a_database_token(front_door, tokens):
    with InfluxDBClient3(host=front_door.url, database=tokens.db, token=tokens.wo) as client:
        client.write(f"cpu,host=a usage=1 {T0}", write_precision="s")
    assert flight_sql_count(front_door, tokens.db, [(b"authorization", f"Bearer {tokens.ro}".encode())]) == 1
    # The Basic handshake hands the database token back as the bearer token.
    client = flight.FlightClient(front_door.flight_uri)
    try:
        header = client.authenticate_basic_token(b"reader", tokens.ro.encode())
        with pytest.raises(flight.FlightUnauthenticatedError):
            client.authenticate_basic_token(b"reader", b"apiv1_not_a_token")
    finally:
        client.close()
    assert flight_sql_count(front_door, tokens.db, [header]) == 1
    with pytest.raises(flight.FlightUnauthorizedError):
        flight_sql_count(front_door, tokens.db, [(b"authorization", f"Bearer {tokens.wo}".encode())])
    with pytest.raises(flight.FlightUnauthenticatedError):
        flight_sql_count(front_door, tokens.db, [])


def test_adbc_with_a_database_token(front_door, tokens):
    import adbc_driver_flightsql.dbapi as adbc_flightsql
    from adbc_driver_manager import Error
    with InfluxDBClient3(host=front_door.url, database=tokens.db, token=tokens.wo) as client:
        client.write(f"cpu,host=a usage=1 {T0}", write_precision="s")
    uri = f"grpc://127.0.0.1:{front_door.port}"
    db_header = {"adbc.flight.sql.rpc.call_header.database": tokens.db}
    for auth in ({"adbc.flight.sql.authorization_header": f"Bearer {tokens.ro}"},
                 {"username": "adbc", "password": tokens.ro}):
        with adbc_flightsql.connect(uri, db_kwargs={**db_header, **auth}) as conn, conn.cursor() as cur:
            cur.execute("SELECT count(*) AS n FROM cpu")
            assert cur.fetch_arrow_table().to_pylist() == [{"n": 1}]
    with adbc_flightsql.connect(uri, db_kwargs={**db_header, "adbc.flight.sql.authorization_header":
                                                f"Bearer {tokens.wo}"}) as conn, conn.cursor() as cur:
        with pytest.raises(Error) as ei:
            cur.execute("SELECT count(*) AS n FROM cpu")
        assert "permission" in str(ei.value).lower(), ei.value


def test_jdbc_with_a_database_token(front_door, tokens):
    from test_sql_clients import jdbc_client
    with InfluxDBClient3(host=front_door.url, database=tokens.db, token=tokens.wo) as client:
        client.write(f"cpu,host=a usage=1 {T0}", write_precision="s")
    rc, report, stderr = jdbc_client(front_door, tokens.db, "--token", tokens.ro,
                                     "--query", "n=SELECT count(*) AS n FROM cpu", "--no-metadata")
    assert rc == 0 and report.get("connected") is True, (report, stderr[-2000:])
    queries = {q["name"]: q for q in report["queries"]}
    assert queries["n"].get("error") is None and [tuple(r) for r in queries["n"]["rows"]] == [(1,)], queries
    rc, report, stderr = jdbc_client(front_door, tokens.db, "--token", tokens.wo,
                                     "--query", "n=SELECT count(*) AS n FROM cpu", "--no-metadata")
    queries = {q["name"]: q for q in report.get("queries", [])}
    failed = str(report.get("error") or (queries.get("n") or {}).get("error") or "")
    assert rc != 0 and "permission" in failed.lower(), (report, stderr[-2000:])
