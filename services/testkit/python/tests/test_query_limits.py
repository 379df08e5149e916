"""Query limits through the real clients: a query over the memory limit is refused with a
final status and a message that says what to change, on HTTP and on Flight."""

from __future__ import annotations

import pyarrow as pa
import requests
import pytest

from ferrite_cluster import FerriteCluster, find_launcher
from ferrite_e2e import TOKEN, assert_204, flight_sql_query, lines, query_http, write_v2

HOSTS = 20_000
SQL = "SELECT host, avg(usage) AS usage FROM cpu GROUP BY host ORDER BY host DESC"


@pytest.fixture(params=["serve", "cluster"])
def small_memory(request, make_server, ferrite_bin, tmp_path, db):
    """A deployment whose querier has 64 KiB of query memory: `ferrite serve`, or a cluster
    (the statuses must come through the router unchanged)."""
    if request.param == "serve":
        srv = make_server("--query-memory-bytes", "65536")
    else:
        srv = FerriteCluster(find_launcher(ferrite_bin), ferrite_bin, tmp_path / "cluster.log",
                             env={"FERRITE_QUERY_MEMORY_BYTES": "65536"}).start()
        request.addfinalizer(lambda: srv.stop())
    body = lines(*(f"cpu,host=h{i:05} usage={i} 1700000000000000000" for i in range(HOSTS)))
    assert_204(write_v2(srv, db, body))
    return srv


def test_http_query_over_the_memory_limit_is_422(small_memory, db):
    r = query_http(small_memory, db, SQL)
    assert r.status_code == 422, r.text
    assert "memory limit" in r.json()["error"]
    assert "Retry-After" not in r.headers
    # A query that fits (no sort or aggregation buffers) still runs on the same server.
    r = query_http(small_memory, db, "SELECT 1 AS one")
    assert r.status_code == 200, r.text
    assert r.json() == [{"one": 1}]


def test_flight_query_over_the_memory_limit_is_resource_exhausted(small_memory, db):
    # pyarrow raises ArrowInvalid for RESOURCE_EXHAUSTED and names the code in the message.
    with pytest.raises(pa.ArrowException) as err:
        flight_sql_query(small_memory, db, SQL)
    message = str(err.value)
    assert "gRPC returned resource exhausted error" in message, message
    assert "memory limit" in message, message


def test_influxql_query_over_the_memory_limit_is_422(small_memory, db):
    # The rows an InfluxQL statement reads count against the same limit.
    url = f"{small_memory.url}/query"
    r = requests.get(url, params={"db": db, "q": "SELECT mean(usage) FROM cpu GROUP BY host"},
                     headers={"Authorization": f"Token {TOKEN}"}, timeout=60)
    assert r.status_code == 422, r.text
    assert "memory limit" in r.json()["error"]
    r = requests.get(url, params={"db": db, "q": "SHOW MEASUREMENTS"},
                     headers={"Authorization": f"Token {TOKEN}"}, timeout=60)
    assert r.status_code == 200, r.text
