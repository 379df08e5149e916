"""Helpers for ferrite's end-to-end tests with real InfluxDB client libraries.

A `FerriteServer` runs `ferrite serve` on a free loopback port with its own data directory;
the functions below write and query it over HTTP (v1, v2, v3), Arrow Flight (the JSON ticket
influxdb3-python sends) and Flight SQL (CommandStatementQuery, hand-encoded protobuf).
"""

from __future__ import annotations

import gzip
import io
import json
import secrets
import os
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any, Iterable, Sequence

import pyarrow as pa
import pyarrow.flight as flight
import pyarrow.parquet as pq
import requests

# The admin token of every server and cluster the suite starts (written to a serve's
# `<data-dir>/admin-token` before its first start; given to the cluster launcher). Random per
# run, so that a test that finds it in a log finds a leak, not a constant.
TOKEN = "e2e-admin-" + secrets.token_hex(24)
# Every database token the suite creates: no log line of the run may contain one (checked
# when the cluster and the session end, see conftest.py).
CREATED_SECRETS: list[str] = []


def assert_no_secret_in(paths) -> None:
    """No file in `paths` holds a secret the suite created."""
    for path in paths:
        path = Path(path)
        if not path.is_file():
            continue
        text = path.read_text(errors="replace")
        for secret in CREATED_SECRETS:
            assert secret not in text, f"a token secret is in {path}"


# The admin token as an HTTP header, and as a gRPC (Flight) header pair.
AUTH = {"Authorization": f"Bearer {TOKEN}"}
AUTH_HEADER = (b"authorization", f"Bearer {TOKEN}".encode())
HEALTH_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 60.0


# --- the binary -------------------------------------------------------------------------------

class FerriteBinaryMissing(RuntimeError):
    pass


def find_ferrite_bin() -> Path:
    """FERRITE_BIN, else $CARGO_TARGET_DIR/debug/ferrite, else ~/.cache/ferrite-target/debug/ferrite."""
    env = os.environ.get("FERRITE_BIN")
    if env:
        p = Path(env)
        if p.is_file() and os.access(p, os.X_OK):
            return p
        raise FerriteBinaryMissing(f"FERRITE_BIN={env!r} is not an executable file")
    candidates = []
    if os.environ.get("CARGO_TARGET_DIR"):
        candidates.append(Path(os.environ["CARGO_TARGET_DIR"]) / "debug" / "ferrite")
    candidates.append(Path.home() / ".cache" / "ferrite-target" / "debug" / "ferrite")
    for p in candidates:
        if p.is_file() and os.access(p, os.X_OK):
            return p
    raise FerriteBinaryMissing(
        "ferrite binary not found (looked at: "
        + ", ".join(str(c) for c in candidates)
        + "). Build it with `CARGO_TARGET_DIR=$HOME/.cache/ferrite-target cargo build -p ferrite-server` "
        "or set FERRITE_BIN."
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- the server -------------------------------------------------------------------------------

def wait_answering(proc: subprocess.Popen, name: str, cmd, url: str, status: int, timeout: float,
                   log_tail, verify=True) -> None:
    """Poll `url` until it answers `status`; fail (killing `proc`) if the process exits first
    or the time runs out, with the end of its log."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode} while starting: "
                               f"{' '.join(cmd)}\n{log_tail()}")
        try:
            r = requests.get(url, timeout=1, verify=verify)
            if r.status_code == status:
                return
            last = f"{r.status_code} {r.text!r}"
        except requests.RequestException as e:  # not listening yet
            last = repr(e)
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    raise RuntimeError(f"{name} not answering {url} within {timeout}s (last: {last})\n{log_tail()}")


def stop_gracefully(proc: subprocess.Popen | None, name: str, timeout: float, log_tail) -> int:
    """SIGTERM and return the exit code (0 if it was not running)."""
    if proc is None or proc.poll() is not None:
        return proc.returncode if proc else 0
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise RuntimeError(f"{name} did not exit within {timeout}s of SIGTERM\n{log_tail()}")


class FerriteServer:
    """One `ferrite serve` process. `start()` may be called again after `stop()`/`kill()`
    (same data directory, a new port)."""

    def __init__(self, binary: Path, data_dir: Path, log_path: Path, args: Sequence[str] = (),
                 tls_ca: str | None = None):
        """`tls_ca`: the CA of the `--tls-cert` in `args`, when the server speaks TLS."""
        self.tls_ca = tls_ca
        self.binary = Path(binary)
        self.data_dir = Path(data_dir)
        self.log_path = Path(log_path)
        self.args = list(args)
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None
        self.starts = 0

    # addresses
    @property
    def url(self) -> str:
        scheme = "https" if self.tls_ca else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    @property
    def flight_uri(self) -> str:
        scheme = "grpc+tls" if self.tls_ca else "grpc+tcp"
        return f"{scheme}://127.0.0.1:{self.port}"

    def start(self) -> "FerriteServer":
        assert self.proc is None or self.proc.poll() is not None, "server already running"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.starts += 1
        log = open(self.log_path, "ab")
        log.write(f"\n===== start #{self.starts} on port {self.port} =====\n".encode())
        log.flush()
        token_file = self.data_dir / "admin-token"
        if "--without-auth" not in self.args and not token_file.exists():
            token_file.write_text(TOKEN + "\n")
            token_file.chmod(0o600)
        cmd = [str(self.binary), "serve", "--data-dir", str(self.data_dir),
               "--bind", f"127.0.0.1:{self.port}", *self.args]
        env = dict(os.environ)
        env.setdefault("RUST_LOG", "info")
        env["NO_COLOR"] = "1"
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env=env)
        log.close()
        self._wait_healthy(cmd)
        return self

    def _wait_healthy(self, cmd) -> None:
        wait_answering(self.proc, "ferrite", cmd, self.url + "/health", 200, HEALTH_TIMEOUT_S,
                       self.log_tail, verify=self.tls_ca or True)

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM (persist everything, exit) and return the exit code."""
        return stop_gracefully(self.proc, "ferrite", timeout, self.log_tail)

    def kill(self) -> int:
        """SIGKILL: a crash. Whatever was acknowledged must come back from the WAL."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        return self.proc.wait(timeout=STOP_TIMEOUT_S)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "----- ferrite log (tail) -----\n" + "\n".join(text[-lines:])


# --- names ------------------------------------------------------------------------------------

def unique_db(prefix: str = "db") -> str:
    safe = "".join(c if c.isalnum() else "_" for c in prefix)[:40].strip("_") or "db"
    return f"{safe}_{uuid.uuid4().hex[:8]}"


# --- HTTP writes ------------------------------------------------------------------------------

def _body(lp: str | bytes) -> bytes:
    return lp.encode("utf-8") if isinstance(lp, str) else lp


def _headers(extra: dict | None, gz: bool) -> dict:
    h = {"Authorization": f"Token {TOKEN}", "Content-Type": "text/plain; charset=utf-8"}
    if gz:
        h["Content-Encoding"] = "gzip"
    h.update(extra or {})
    return h


def write_v2(srv: FerriteServer, db: str, lp: str | bytes, precision: str | None = None,
             gz: bool = False, headers: dict | None = None, org: str = "any-org") -> requests.Response:
    params = {"bucket": db, "org": org}
    if precision is not None:
        params["precision"] = precision
    body = _body(lp)
    if gz:
        body = gzip.compress(body)
    return requests.post(srv.url + "/api/v2/write", params=params, data=body,
                         headers=_headers(headers, gz), timeout=30)


def write_v1(srv: FerriteServer, db: str, lp: str | bytes, precision: str | None = None,
             rp: str | None = None, gz: bool = False, headers: dict | None = None) -> requests.Response:
    params = {"db": db}
    if rp is not None:
        params["rp"] = rp
    if precision is not None:
        params["precision"] = precision
    body = _body(lp)
    if gz:
        body = gzip.compress(body)
    return requests.post(srv.url + "/write", params=params, data=body, headers=_headers(headers, gz), timeout=30)


def write_v3(srv: FerriteServer, db: str, lp: str | bytes, precision: str | None = None,
             accept_partial: bool | None = None, no_sync: bool | None = None, gz: bool = False,
             headers: dict | None = None) -> requests.Response:
    params: dict[str, Any] = {"db": db}
    if precision is not None:
        params["precision"] = precision
    if accept_partial is not None:
        params["accept_partial"] = "true" if accept_partial else "false"
    if no_sync is not None:
        params["no_sync"] = "true" if no_sync else "false"
    body = _body(lp)
    if gz:
        body = gzip.compress(body)
    return requests.post(srv.url + "/api/v3/write_lp", params=params, data=body,
                         headers=_headers(headers, gz), timeout=30)


def assert_204(r: requests.Response) -> None:
    assert r.status_code == 204, f"expected 204, got {r.status_code}: {r.text!r}"
    assert r.content == b"", f"204 with a body: {r.content!r}"


# --- HTTP queries -----------------------------------------------------------------------------

def query_http(srv: FerriteServer, db: str, sql: str, fmt: str = "json", method: str = "GET",
               params: dict | None = None) -> requests.Response:
    if method == "GET":
        p: dict[str, Any] = {"db": db, "q": sql, "format": fmt}
        if params is not None:
            p["params"] = json.dumps(params)
        return requests.get(srv.url + "/api/v3/query_sql", params=p,
                            headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)
    body: dict[str, Any] = {"db": db, "q": sql, "format": fmt}
    if params is not None:
        body["params"] = params
    return requests.post(srv.url + "/api/v3/query_sql", json=body,
                         headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)


def query_json(srv: FerriteServer, db: str, sql: str, params: dict | None = None) -> list[dict]:
    r = query_http(srv, db, sql, "json", params=params)
    assert r.status_code == 200, f"query {sql!r} on {db}: {r.status_code} {r.text}"
    return r.json()


def query_parquet(srv: FerriteServer, db: str, sql: str) -> pa.Table:
    r = query_http(srv, db, sql, "parquet")
    assert r.status_code == 200, f"query {sql!r} on {db}: {r.status_code} {r.text}"
    return pq.read_table(io.BytesIO(r.content))


def snapshot(srv: FerriteServer, db: str, table: str) -> list[dict]:
    """Every row of a table in a stable order (via Flight: exact types, no JSON rounding)."""
    t = flight_ticket_query(srv, db, f'SELECT * FROM "{table}"')
    rows = t.to_pylist()
    return sorted(rows, key=lambda r: json.dumps(r, sort_keys=True, default=str))


def table_exists(srv: FerriteServer, db: str, table: str) -> bool:
    r = query_http(srv, db, "SELECT table_name FROM information_schema.tables "
                            "WHERE table_schema = 'iox'")
    if r.status_code == 404:
        return False
    assert r.status_code == 200, r.text
    return table in {row["table_name"] for row in r.json()}


# --- Arrow Flight -----------------------------------------------------------------------------

def flight_client(srv: FerriteServer) -> flight.FlightClient:
    return flight.FlightClient(srv.flight_uri)


def flight_ticket_query(srv: FerriteServer, db: str, sql: str, params: dict | None = None) -> pa.Table:
    """DoGet with the JSON ticket influxdb3-python sends."""
    ticket: dict[str, Any] = {"database": db, "sql_query": sql, "query_type": "sql"}
    if params is not None:
        ticket["params"] = params
    client = flight_client(srv)
    try:
        opts = flight.FlightCallOptions(headers=[(b"authorization", f"Bearer {TOKEN}".encode())], timeout=60)
        return client.do_get(flight.Ticket(json.dumps(ticket).encode()), opts).read_all()
    finally:
        client.close()


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _len_field(field_number: int, payload: bytes) -> bytes:
    """A protobuf length-delimited field (wire type 2)."""
    return _varint((field_number << 3) | 2) + _varint(len(payload)) + payload


FLIGHT_SQL_STATEMENT_QUERY = "type.googleapis.com/arrow.flight.protocol.sql.CommandStatementQuery"


def flight_sql_command(sql: str) -> bytes:
    """google.protobuf.Any{type_url, value=CommandStatementQuery{query=1: sql}}."""
    inner = _len_field(1, sql.encode("utf-8"))
    return _len_field(1, FLIGHT_SQL_STATEMENT_QUERY.encode()) + _len_field(2, inner)


def flight_sql_query(srv: FerriteServer, db: str | None, sql: str) -> tuple[pa.Schema, pa.Table]:
    """Flight SQL: GetFlightInfo(CommandStatementQuery) with header `database`, then DoGet of the
    single endpoint's ticket. Returns (FlightInfo schema, table)."""
    headers = [(b"authorization", f"Bearer {TOKEN}".encode())]
    if db is not None:
        headers.append((b"database", db.encode()))
    opts = flight.FlightCallOptions(headers=headers, timeout=60)
    client = flight_client(srv)
    try:
        info = client.get_flight_info(flight.FlightDescriptor.for_command(flight_sql_command(sql)), opts)
        assert len(info.endpoints) == 1, f"expected exactly one endpoint, got {len(info.endpoints)}"
        table = client.do_get(info.endpoints[0].ticket, opts).read_all()
        return info.schema, table
    finally:
        client.close()


# --- misc -------------------------------------------------------------------------------------

def lines(*ls: str) -> str:
    return "\n".join(ls) + "\n"


def sorted_rows(rows: Iterable[dict], *keys: str) -> list[dict]:
    return sorted(rows, key=lambda r: tuple(str(r.get(k)) for k in keys))


# --- Flight SQL metadata commands (hand-encoded protobuf) -------------------------------------

FLIGHT_SQL_TYPE_PREFIX = "type.googleapis.com/arrow.flight.protocol.sql."


def _bool_field(field_number: int, value: bool) -> bytes:
    """A protobuf varint field (wire type 0) holding a bool."""
    return _varint(field_number << 3) + _varint(1 if value else 0)


def flight_sql_any(message: str, payload: bytes = b"") -> bytes:
    """google.protobuf.Any{type_url=<Flight SQL message>, value=payload}."""
    return _len_field(1, (FLIGHT_SQL_TYPE_PREFIX + message).encode()) + _len_field(2, payload)


def flight_sql_get_tables_command(catalog: str | None = None, db_schema_filter_pattern: str | None = None,
                                  table_name_filter_pattern: str | None = None,
                                  table_types: Sequence[str] = (), include_schema: bool = False) -> bytes:
    """CommandGetTables{catalog=1, db_schema_filter_pattern=2, table_name_filter_pattern=3,
    table_types=4 (repeated), include_schema=5}, wrapped in Any."""
    inner = b""
    if catalog is not None:
        inner += _len_field(1, catalog.encode())
    if db_schema_filter_pattern is not None:
        inner += _len_field(2, db_schema_filter_pattern.encode())
    if table_name_filter_pattern is not None:
        inner += _len_field(3, table_name_filter_pattern.encode())
    for t in table_types:
        inner += _len_field(4, t.encode())
    if include_schema:
        inner += _bool_field(5, True)
    return flight_sql_any("CommandGetTables", inner)


def flight_sql_get(srv: FerriteServer, db: str | None, command: bytes,
                   headers: Sequence[tuple[bytes, bytes]] | None = None) -> tuple[flight.FlightInfo, pa.Table]:
    """Any Flight SQL command: GetFlightInfo with header `database` (and a bearer token unless
    `headers` replaces them), then DoGet of the single endpoint. Returns (FlightInfo, table)."""
    if headers is None:
        headers = [(b"authorization", f"Bearer {TOKEN}".encode())]
        if db is not None:
            headers.append((b"database", db.encode()))
    opts = flight.FlightCallOptions(headers=list(headers), timeout=60)
    client = flight_client(srv)
    try:
        info = client.get_flight_info(flight.FlightDescriptor.for_command(command), opts)
        assert len(info.endpoints) == 1, f"expected exactly one endpoint, got {len(info.endpoints)}"
        return info, client.do_get(info.endpoints[0].ticket, opts).read_all()
    finally:
        client.close()
