"""Logs: `--log-format json` writes one JSON object per line; at debug every request gets a
line, and a server error gets a warning carrying the request's trace id (the client's, when
traces are not exported)."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time

import requests

from ferrite_e2e import free_port, unique_db

QUIET_DEPENDENCIES = "debug,h2=info,hyper=info,hyper_util=info,tower=info,tonic=info,sqlx=info"


def traceparent() -> tuple[str, str]:
    trace_id = secrets.token_hex(16)
    return trace_id, f"00-{trace_id}-{secrets.token_hex(8)}-01"


def json_lines(path) -> list[dict]:
    """Every line the process wrote after the harness's banner, each parsed as JSON."""
    out = []
    for line in path.read_text().splitlines():
        if not line.strip() or line.startswith("====="):
            continue
        out.append(json.loads(line))  # a line that is not JSON fails the test here
    return out


def wait_for(predicate, what: str, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"not logged within {timeout}s: {what}")


def test_json_logs_have_one_debug_line_per_request_with_the_clients_trace_id(make_server, monkeypatch):
    monkeypatch.setenv("FERRITE_LOG", QUIET_DEPENDENCIES)
    srv = make_server("--without-auth", "--log-format", "json")
    db = unique_db("logs")
    trace_id, parent = traceparent()
    r = requests.post(f"{srv.url}/api/v2/write", params={"bucket": db},
                      data=b"cpu,host=a usage=1 1\n", headers={"traceparent": parent}, timeout=10)
    assert r.status_code == 204, r.text

    def request_line():
        return [line for line in json_lines(srv.log_path)
                if line.get("message") == "request" and line.get("path") == "/api/v2/write"]

    [line] = wait_for(request_line, "a request line for the write")
    assert line["level"] == "DEBUG"
    assert line["method"] == "POST"
    assert line["status"] == 204
    assert line["trace_id"] == trace_id
    assert isinstance(line["elapsed_ms"], int)
    assert line["target"].startswith("ferrite_telemetry")
    # Startup lines are JSON too, with the fields a log collector indexes.
    started = [line for line in json_lines(srv.log_path) if line.get("message") == "ferrite serving HTTP and gRPC"]
    assert started and {"timestamp", "level", "target"} <= started[0].keys()


def test_a_server_error_is_a_warning_with_the_trace_id(ferrite_bin, tmp_path):
    """A router whose querier cannot be reached answers 503: one warning, with the trace id
    the client sent, at the default level."""
    port = free_port()
    dead = f"http://127.0.0.1:{free_port()}"
    log_path = tmp_path / "router.log"
    env = dict(os.environ, NO_COLOR="1")
    env.pop("FERRITE_LOG", None)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [str(ferrite_bin), "run", "router", "--bind", f"127.0.0.1:{port}", "--without-auth",
             "--log-format", "text", "--catalog", dead, "--ingesters", dead, "--queriers", dead],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: _ok(f"{url}/health"), "router healthy")
        trace_id, parent = traceparent()
        r = requests.get(f"{url}/api/v3/query_sql", params={"db": "x", "q": "select 1"},
                         headers={"traceparent": parent}, timeout=10)
        assert r.status_code == 503, r.text
        line = wait_for(lambda: [l for l in log_path.read_text().splitlines()
                                 if "request failed" in l and trace_id in l], "the warning")[0]
        assert " WARN " in line and "status=503" in line and "/api/v3/query_sql" in line, line
        # Successful requests stay out of the log at the default level.
        assert not [l for l in log_path.read_text().splitlines() if "path=/health" in l]
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def _ok(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.RequestException:
        return False
