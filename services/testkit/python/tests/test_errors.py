"""Every bad input gets the documented status and a message naming the cause, and the data
stored before it is unchanged afterwards."""

from __future__ import annotations

import gzip
import json

import pyarrow as pa
import pyarrow.flight as flight
import pytest
import requests
from influxdb_client_3 import InfluxDBClient3
from influxdb_client_3.exceptions import InfluxDB3ClientQueryError

from ferrite_e2e import (AUTH, AUTH_HEADER, TOKEN, assert_204, flight_sql_command, flight_sql_query, flight_ticket_query,
                         lines, query_http, query_json, snapshot, table_exists, write_v1, write_v2, write_v3)

T0 = 1_700_000_000
SEED = lines(f"cpu,host=a usage=1.5,n=1i {T0}", f"cpu,host=b usage=2.5,n=2i {T0 + 1}")


@pytest.fixture
def seeded(server, db):
    """A database with two known rows; yields a checker that the rows are exactly these."""
    assert_204(write_v2(server, db, SEED, precision="s"))
    before = snapshot(server, db, "cpu")
    assert len(before) == 2

    def unchanged():
        assert snapshot(server, db, "cpu") == before, "stored data changed after a rejected write"

    return unchanged


def v2_error(r: requests.Response, status: int) -> dict:
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/json"), r.headers
    body = r.json()
    assert set(body) >= {"code", "message"}, body
    return body


def v3_error(r: requests.Response, status: int) -> dict:
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/json"), r.headers
    body = r.json()
    assert "error" in body and isinstance(body["error"], str), body
    return body


# --- malformed line protocol -------------------------------------------------------------------

BAD_BATCH = lines(f"cpu,host=c usage=3.5 {T0 + 2}", "cpu,host=d usage= 4", "not line protocol",
                  f"cpu,host=e usage=5.5 {T0 + 4}")


def test_v2_malformed_lines(server, db, seeded):
    body = v2_error(write_v2(server, db, BAD_BATCH, precision="s"), 400)
    assert body["code"] == "invalid"
    assert body["line"] == 2
    msg = body["message"]
    assert "line 2" in msg and "usage" in msg and "line 3" in msg, msg
    seeded()  # v2 is all-or-nothing: the good lines 1 and 4 are not stored


def test_v1_malformed_lines(server, db, seeded):
    body = v3_error(write_v1(server, db, BAD_BATCH, precision="s"), 400)
    assert [d["line_number"] for d in body["data"]] == [2, 3]
    assert body["data"][0]["original_line"] == "cpu,host=d usage= 4"
    seeded()


def test_v3_malformed_lines_accept_partial_default(server, db, seeded):
    body = v3_error(write_v3(server, db, BAD_BATCH, precision="second"), 400)
    assert "partial write" in body["error"]
    data = body["data"]
    assert [(d["line_number"], d["original_line"]) for d in data] == [
        (2, "cpu,host=d usage= 4"), (3, "not line protocol")]
    assert all(d["error_message"] for d in data)
    assert "usage" in data[0]["error_message"]
    # the good lines are stored
    hosts = [r["host"] for r in query_json(server, db, "SELECT host FROM cpu ORDER BY host")]
    assert hosts == ["a", "b", "c", "e"]


def test_v3_malformed_lines_accept_partial_false(server, db, seeded):
    body = v3_error(write_v3(server, db, BAD_BATCH, precision="second", accept_partial=False), 400)
    assert [d["line_number"] for d in body["data"]] == [2, 3]
    seeded()


def test_v3_accept_partial_true_explicit(server, db, seeded):
    body = v3_error(write_v3(server, db, lines(f"cpu,host=z usage=9 {T0 + 9}", "cpu,host=y usage=\"s\" 1"),
                             precision="second", accept_partial=True), 400)
    assert body["data"][0]["line_number"] == 2
    assert "usage" in body["data"][0]["error_message"]
    assert query_json(server, db, "SELECT usage FROM cpu WHERE host = 'z'") == [{"usage": 9.0}]


def test_influxdb3_partial_write_error(server, db, seeded):
    from influxdb_client_3.exceptions import InfluxDBPartialWriteError
    with InfluxDBClient3(host=server.url, database=db, token=TOKEN, write_use_v2_api=False) as client:
        with pytest.raises(InfluxDBPartialWriteError) as ei:
            client.write(record=BAD_BATCH, write_precision="s")
    assert [e.line_number for e in ei.value.line_errors] == [2, 3]


@pytest.mark.parametrize("body", ["", "\n\n", "# only a comment\n"], ids=["empty", "newlines", "comment"])
def test_empty_write(server, db, body):
    assert write_v2(server, db, body).status_code == 400
    assert write_v3(server, db, body).status_code == 400


def test_non_utf8_body(server, db, seeded):
    bad = f"cpu,host=\xff usage=1 {T0}\n".encode("latin-1")
    body = v2_error(write_v2(server, db, bad, precision="s"), 400)
    assert "UTF-8" in body["message"]
    v3_error(write_v3(server, db, bad, precision="second"), 400)
    seeded()


def test_missing_database_parameter(server):
    r = requests.post(server.url + "/api/v2/write", params={"org": "x"}, data=b"m v=1", headers=AUTH)
    assert v2_error(r, 400)["message"]
    r = requests.post(server.url + "/write", data=b"m v=1", headers=AUTH)
    assert "db" in v3_error(r, 400)["error"]
    r = requests.post(server.url + "/api/v3/write_lp", data=b"m v=1", headers=AUTH)
    assert "db" in v3_error(r, 400)["error"]


@pytest.mark.parametrize("name", ["my db", "a.b", "ünï", "x" * 300, "db;drop"])
def test_invalid_database_name(server, name):
    body = v2_error(write_v2(server, name, "m v=1 1", precision="s"), 400)
    assert "database name" in body["message"]
    assert query_http(server, name, "SELECT 1").status_code == 404


# --- schema conflicts --------------------------------------------------------------------------

def test_type_conflict_v2(server, db, seeded):
    body = v2_error(write_v2(server, db, f"cpu,host=c usage=7i {T0 + 5}", precision="s"), 400)
    assert body["line"] == 1
    assert "column 'usage' is float in table 'cpu', got integer" in body["message"]
    seeded()


def test_type_conflict_v3(server, db, seeded):
    body = v3_error(write_v3(server, db, f'cpu,host=c n="text" {T0 + 5}', precision="second"), 400)
    d = body["data"][0]
    assert d["line_number"] == 1
    assert "'n'" in d["error_message"] and "integer" in d["error_message"] and "string" in d["error_message"]
    seeded()


def test_type_conflict_v1(server, db, seeded):
    body = v3_error(write_v1(server, db, f"cpu,host=c usage=true {T0 + 5}", precision="s"), 400)
    msg = body["data"][0]["error_message"]
    assert "usage" in msg and "float" in msg and "bool" in msg, msg
    seeded()


def test_type_conflict_every_pair(server, db):
    """Each field type against every other: rejected, message names both types."""
    spell = {"float": "1.5", "integer": "1i", "uinteger": "1u", "boolean": "true", "string": '"s"'}
    fields = ",".join(f"{k}={v}" for k, v in spell.items())
    assert_204(write_v2(server, db, f"types {fields} 1", precision="s"))
    before = snapshot(server, db, "types")
    for col in spell:
        for other, value in spell.items():
            if other == col:
                continue
            r = write_v2(server, db, f"types {col}={value} 2", precision="s")
            assert r.status_code == 400, (col, other, r.text)
            msg = r.json()["message"]
            assert f"'{col}'" in msg and "types" in msg, msg
    assert snapshot(server, db, "types") == before


def test_in_batch_type_conflict(server, db):
    """A new column whose type changes inside one batch."""
    body = v2_error(write_v2(server, db, lines("nt v=1 1", "nt v=1i 2"), precision="s"), 400)
    assert body["line"] == 2 and "'v'" in body["message"]
    body = v3_error(write_v3(server, db, lines("nt2 v=1 1", "nt2 v=1i 2", "nt2 v=3 3"), precision="second"), 400)
    assert [d["line_number"] for d in body["data"]] == [2]
    assert [r["v"] for r in query_json(server, db, "SELECT v FROM nt2 ORDER BY time")] == [1.0, 3.0]


def test_tag_field_name_clash(server, db, seeded):
    body = v2_error(write_v2(server, db, f"cpu host=1 {T0 + 5}", precision="s"), 400)
    assert "host" in body["message"] and "tag" in body["message"]
    body = v2_error(write_v2(server, db, f"cpu,usage=x n=1i {T0 + 5}", precision="s"), 400)
    assert "usage" in body["message"]
    body = v2_error(write_v2(server, db, "other,k=1 k=1 1", precision="s"), 400)
    assert "'k'" in body["message"]
    seeded()


def test_time_as_column_name_rejected(server, db, seeded):
    v2_error(write_v2(server, db, "cpu,time=x usage=1 1", precision="s"), 400)
    v2_error(write_v2(server, db, "cpu time=1 1", precision="s"), 400)
    seeded()


@pytest.mark.parametrize("api", ["v2", "v1", "v3_no_partial"])
def test_rejected_write_leaves_no_schema(server, db, api):
    batch = lines("ghost v=1 1", "bad line")
    if api == "v2":
        r = write_v2(server, db, batch, precision="s")
    elif api == "v1":
        r = write_v1(server, db, batch, precision="s")
    else:
        r = write_v3(server, db, batch, precision="second", accept_partial=False)
    assert r.status_code == 400
    # nothing was accepted, so `ghost.v` has no type yet: an integer must be fine
    r = write_v2(server, db, "ghost v=1i 1", precision="s")
    assert r.status_code == 204, r.text


# --- precision, encoding, size ----------------------------------------------------------------

def test_bad_precision(server, db, seeded):
    body = v2_error(write_v2(server, db, f"cpu,host=c usage=1 {T0}", precision="minutes"), 400)
    assert "precision" in body["message"] and "minutes" in body["message"]
    body = v3_error(write_v3(server, db, f"cpu,host=c usage=1 {T0}", precision="hour"), 400)
    assert "precision" in body["error"] and "hour" in body["error"]
    body = v3_error(write_v1(server, db, f"cpu,host=c usage=1 {T0}", precision="h"), 400)
    assert "precision" in body["error"]
    seeded()


@pytest.mark.parametrize("api", ["v1", "v2", "v3"])
def test_corrupt_gzip(server, db, seeded, api):
    garbage = b"this is not gzip at all"
    truncated = gzip.compress(SEED.encode())[:-8]
    for payload in (garbage, truncated):
        h = {"Content-Encoding": "gzip"}
        if api == "v2":
            body = v2_error(write_v2(server, db, payload, headers=h, precision="s"), 400)
            msg = body["message"]
        elif api == "v1":
            msg = v3_error(write_v1(server, db, payload, headers=h, precision="s"), 400)["error"]
        else:
            msg = v3_error(write_v3(server, db, payload, headers=h, precision="second"), 400)["error"]
        assert "gzip" in msg, msg
    seeded()


@pytest.mark.parametrize("api", ["v1", "v2", "v3"])
@pytest.mark.parametrize("encoding", ["br", "deflate", "zstd"])
def test_unsupported_content_encoding(server, db, seeded, api, encoding):
    h = {"Content-Encoding": encoding}
    lp = f"cpu,host=z usage=1 {T0}"
    if api == "v2":
        body = v2_error(write_v2(server, db, lp, headers=h, precision="s"), 415)
        assert body["code"] == "unsupported media type"
        msg = body["message"]
    elif api == "v1":
        msg = v3_error(write_v1(server, db, lp, headers=h, precision="s"), 415)["error"]
    else:
        msg = v3_error(write_v3(server, db, lp, headers=h, precision="second"), 415)["error"]
    assert encoding in msg, msg
    seeded()


def test_identity_content_encoding_accepted(server, db):
    assert_204(write_v2(server, db, "ident v=1 1", precision="s", headers={"Content-Encoding": "identity"}))


def test_oversized_body_default_limit(server, db, seeded):
    """The default limit is 10 MiB."""
    line = f"cpu,host=big usage=1 {T0}\n".encode()
    payload = line * (10 * 1024 * 1024 // len(line) + 2)
    assert len(payload) > 10 * 1024 * 1024
    body = v2_error(write_v2(server, db, payload, precision="s"), 413)
    assert body["code"] == "request too large"
    assert "10485760" in body["message"]
    seeded()


@pytest.fixture(scope="module")
def small_limit_server(ferrite_bin, tmp_path_factory):
    from ferrite_e2e import FerriteServer
    base = tmp_path_factory.mktemp("ferrite-small-limit")
    srv = FerriteServer(ferrite_bin, base / "data", base / "ferrite.log", ["--max-request-bytes", "4096"])
    srv.start()
    yield srv
    assert srv.stop() == 0, srv.log_tail()


@pytest.mark.parametrize("api", ["v1", "v2", "v3"])
def test_oversized_body_small_limit(small_limit_server, db, api):
    srv = small_limit_server
    writer = {"v1": write_v1, "v2": write_v2, "v3": write_v3}[api]
    assert_204(writer(srv, db, SEED, precision="s"))
    before = snapshot(srv, db, "cpu")

    def fits(n_lines):
        return "".join(f"cpu,host=h{i:04d} usage={i} {T0}\n" for i in range(n_lines)).encode()

    under = fits(60)
    assert len(under) <= 4096
    over = fits(200)
    assert len(over) > 4096
    bomb = gzip.compress(over)  # small on the wire, too big once unzipped
    assert len(bomb) <= 4096

    for payload, gz in ((over, False), (bomb, True)):
        h = {"Content-Encoding": "gzip"} if gz else None
        r = writer(srv, db, payload, precision="s", headers=h)
        assert r.status_code == 413, (gz, r.status_code, r.text)
        text = r.text
        assert "4096" in text, text
    assert snapshot(srv, db, "cpu") == before
    # just under the limit still works, also gzipped
    assert_204(writer(srv, db, under, precision="s"))
    assert_204(writer(srv, db, gzip.compress(under), precision="s", headers={"Content-Encoding": "gzip"}))
    assert query_json(srv, db, "SELECT count(*) AS c FROM cpu") == [{"c": 62}]


# --- HTTP query errors -------------------------------------------------------------------------

def test_query_unknown_database(server):
    for fmt in ("json", "csv", "parquet"):
        body = v3_error(query_http(server, "no_such_db_xyz", "SELECT 1", fmt), 404)
        assert "no_such_db_xyz" in body["error"] and "not found" in body["error"]


def test_query_bad_sql(server, db, seeded):
    body = v3_error(query_http(server, db, "SELEC * FROM cpu"), 400)
    assert "SELEC" in body["error"]
    body = v3_error(query_http(server, db, "SELECT * FROM no_such_table"), 400)
    assert "no_such_table" in body["error"]
    body = v3_error(query_http(server, db, "SELECT no_such_col FROM cpu"), 400)
    assert "no_such_col" in body["error"]
    body = v3_error(query_http(server, db, "SELECT * FROM cpu", fmt="xml"), 400)
    assert "xml" in body["error"]
    r = requests.get(server.url + "/api/v3/query_sql", params={"db": db}, headers=AUTH)
    assert "q" in v3_error(r, 400)["error"]
    r = requests.get(server.url + "/api/v3/query_sql", params={"db": db, "q": "SELECT 1", "params": "{bad"},
                     headers=AUTH)
    assert "params" in v3_error(r, 400)["error"]
    seeded()


def test_query_missing_placeholder_value(server, db, seeded):
    r = query_http(server, db, "SELECT * FROM cpu WHERE host = $h")
    assert r.status_code == 400, (r.status_code, r.text)
    assert "no value given for query parameter '$h'" in r.json()["error"]
    with pytest.raises(pa.ArrowInvalid):
        flight_ticket_query(server, db, "SELECT * FROM cpu WHERE host = $h")


def test_unknown_http_path_is_404(server):
    r = requests.get(server.url + "/definitely/not/a/route", headers=AUTH, timeout=10)
    assert r.status_code == 404, (r.status_code, dict(r.headers))


def test_wrong_method(server):
    r = requests.get(server.url + "/api/v2/write", params={"bucket": "x"}, headers=AUTH, timeout=10)
    assert r.status_code == 405


# --- Flight errors -----------------------------------------------------------------------------

def test_flight_unknown_database(server):
    with pytest.raises(pa.ArrowKeyError) as ei:  # pyarrow maps gRPC NOT_FOUND to ArrowKeyError
        flight_ticket_query(server, "no_such_db_xyz", "SELECT 1")
    assert "not found" in str(ei.value) and "no_such_db_xyz" in str(ei.value)
    with pytest.raises(pa.ArrowKeyError):
        flight_sql_query(server, "no_such_db_xyz", "SELECT 1")
    with InfluxDBClient3(host=server.url, database="no_such_db_xyz", token=TOKEN) as client:
        with pytest.raises(InfluxDB3ClientQueryError) as ei:
            client.query("SELECT 1")
    assert "not found" in str(ei.value)


def test_flight_sql_missing_database_header(server, db, seeded):
    with pytest.raises(pa.ArrowInvalid) as ei:  # gRPC INVALID_ARGUMENT
        flight_sql_query(server, None, "SELECT * FROM cpu")
    assert "database" in str(ei.value)


def test_flight_sql_database_header_aliases(server, db, seeded):
    client = flight.FlightClient(server.flight_uri)
    try:
        desc = flight.FlightDescriptor.for_command(flight_sql_command("SELECT count(*) AS c FROM cpu"))
        for key in (b"bucket", b"bucket-name", b"iox-namespace-name"):
            opts = flight.FlightCallOptions(headers=[AUTH_HEADER, (key, db.encode())])
            info = client.get_flight_info(desc, opts)
            assert client.do_get(info.endpoints[0].ticket, opts).read_all().to_pylist() == [{"c": 2}], key
        conflicting = flight.FlightCallOptions(
            headers=[AUTH_HEADER, (b"database", db.encode()), (b"bucket", b"other")])
        with pytest.raises(pa.ArrowInvalid):
            client.get_flight_info(desc, conflicting)
    finally:
        client.close()


def test_flight_bad_sql_and_bad_tickets(server, db, seeded):
    with pytest.raises(pa.ArrowInvalid) as ei:
        flight_sql_query(server, db, "SELEC 1")
    assert "SELEC" in str(ei.value)
    with pytest.raises(pa.ArrowInvalid):
        flight_ticket_query(server, db, "SELECT * FROM no_such_table")
    client = flight.FlightClient(server.flight_uri)
    try:
        for ticket in (b"not a ticket", json.dumps({"sql_query": "SELECT 1"}).encode(),
                       json.dumps({"database": db, "sql_query": "SELECT 1", "query_type": "bogus"}).encode()):
            with pytest.raises(pa.ArrowInvalid):
                client.do_get(flight.Ticket(ticket), flight.FlightCallOptions(headers=[AUTH_HEADER])).read_all()
        with pytest.raises(pa.ArrowInvalid):
            client.get_flight_info(flight.FlightDescriptor.for_command(b"garbage"),
                                   flight.FlightCallOptions(headers=[AUTH_HEADER, (b"database", db.encode())]))
    finally:
        client.close()
    seeded()
