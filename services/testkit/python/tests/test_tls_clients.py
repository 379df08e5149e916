"""The real clients over TLS: `ferrite serve --tls-cert/--tls-key` with a throwaway CA
(`ferrite-test-certs`), HTTPS and gRPC over TLS on one port. Plain HTTP to the TLS port is
refused with a message that says why."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pyarrow.flight as flight
import pytest
import requests
from influxdb_client_3 import InfluxDBClient3

from ferrite_e2e import AUTH, TOKEN, flight_sql_command, unique_db

T0 = 1_700_000_000


@pytest.fixture(scope="module")
def certs(ferrite_bin, tmp_path_factory) -> dict:
    tool = Path(ferrite_bin).parent / "ferrite-test-certs"
    if not tool.is_file():
        pytest.fail(f"{tool} not found: build it with `cargo build -p ferrite-testkit --bins` (make test does)")
    out = subprocess.run([str(tool), str(tmp_path_factory.mktemp("certs"))], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def tls_server(ferrite_bin, certs, tmp_path_factory):
    from ferrite_e2e import FerriteServer
    base = tmp_path_factory.mktemp("ferrite-tls")
    srv = FerriteServer(ferrite_bin, base / "data", base / "ferrite.log",
                        ["--tls-cert", certs["cert"], "--tls-key", certs["key"]], tls_ca=certs["ca"])
    srv.start()
    yield srv
    assert srv.stop() == 0, srv.log_tail()


def test_influxdb3_python_over_tls(tls_server, certs):
    db = unique_db("tls3")
    with InfluxDBClient3(host=tls_server.url, database=db, token=TOKEN, ssl_ca_cert=certs["ca"]) as client:
        client.write(f"cpu,host=a usage=1.5 {T0}", write_precision="s")
        assert client.query("SELECT host, usage FROM cpu").to_pylist() == [{"host": "a", "usage": 1.5}]


def test_requests_and_pyarrow_flight_sql_over_tls(tls_server, certs):
    db = unique_db("tlsfl")
    r = requests.post(tls_server.url + "/api/v3/write_lp", params={"db": db, "precision": "second"},
                      data=f"cpu,host=a usage=2 {T0}\n", headers=AUTH, verify=certs["ca"], timeout=30)
    assert r.status_code == 204, r.text
    with open(certs["ca"], "rb") as f:
        client = flight.FlightClient(f"grpc+tls://127.0.0.1:{tls_server.port}", tls_root_certs=f.read())
    try:
        opts = flight.FlightCallOptions(headers=[(b"authorization", f"Bearer {TOKEN}".encode()),
                                                 (b"database", db.encode())], timeout=60)
        info = client.get_flight_info(
            flight.FlightDescriptor.for_command(flight_sql_command("SELECT count(*) AS n FROM cpu")), opts)
        assert client.do_get(info.endpoints[0].ticket, opts).read_all().to_pylist() == [{"n": 1}]
    finally:
        client.close()


def test_adbc_over_tls(tls_server, certs):
    import adbc_driver_flightsql.dbapi as adbc_flightsql
    db = unique_db("tlsadbc")
    r = requests.post(tls_server.url + "/api/v3/write_lp", params={"db": db, "precision": "second"},
                      data=f"cpu,host=a usage=3 {T0}\n", headers=AUTH, verify=certs["ca"], timeout=30)
    assert r.status_code == 204, r.text
    with open(certs["ca"]) as f:
        ca = f.read()
    kwargs = {"adbc.flight.sql.rpc.call_header.database": db,
              "adbc.flight.sql.authorization_header": f"Bearer {TOKEN}",
              "adbc.flight.sql.client_option.tls_root_certs": ca}
    with adbc_flightsql.connect(f"grpc+tls://127.0.0.1:{tls_server.port}", db_kwargs=kwargs) as conn:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) AS n FROM cpu")
            assert cur.fetch_arrow_table().to_pylist() == [{"n": 1}]


def test_plain_http_to_a_tls_port_fails_clearly(tls_server):
    r = requests.get(f"http://127.0.0.1:{tls_server.port}/health", timeout=10)
    assert r.status_code == 400
    assert "this port serves TLS: use https://" in r.text
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(tls_server.url + "/health", timeout=10)  # without the test CA
