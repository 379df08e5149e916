"""A real InfluxDB 1.x (`influxd`) for the test session: the reference the InfluxQL tests
compare ferrite's `/query` with.

`InfluxD` writes a config made by `influxd config` with its own directories, loopback ports and
no phoning home, runs `influxd run -config …` with its output in a log file, and waits for
`/ping` to answer 204. It has the same `url`/`port` attributes as `ferrite_e2e.FerriteServer`,
so a test talks to both the same way.

    binary:  $FERRITE_INFLUXD, else ~/.cache/ferrite-tools/bin/influxd
             (deploy/dev/install-influxd.sh builds it)
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from ferrite_e2e import free_port, stop_gracefully, wait_answering

READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 60.0
QUERY_TIMEOUT_S = 120.0


# --- /query, the InfluxDB 1.x query API (influxd's and ferrite's alike) ----------------------------

@dataclass
class Answer:
    """One `/query` response. `documents`: the JSON documents of the body in order — one, or
    one per chunk with `chunked=true` — or None when the body is not JSON."""
    status: int
    content_type: str
    documents: list | None
    text: str


def json_documents(text: str) -> list | None:
    """The JSON documents of a body, in order (a chunked answer is several in a row)."""
    decoder = json.JSONDecoder()
    docs, pos = [], 0
    try:
        while True:
            while pos < len(text) and text[pos].isspace():
                pos += 1
            if pos == len(text):
                return docs or None
            doc, pos = decoder.raw_decode(text, pos)
            docs.append(doc)
    except json.JSONDecodeError:
        return None


def query_url(base_url: str, q: str, db: str | None = None, epoch: str | None = None,
              method: str = "GET", params: dict | None = None, headers: dict | None = None) -> Answer:
    """`/query` as InfluxDB 1.x clients send it: GET with `q` in the URL, or POST with `q` in a
    form body (the other parameters stay in the URL)."""
    url_params: dict[str, str] = dict(params or {})
    if db is not None:
        url_params["db"] = db
    if epoch is not None:
        url_params["epoch"] = epoch
    if method == "GET":
        r = requests.get(base_url + "/query", params={**url_params, "q": q}, headers=headers,
                         timeout=QUERY_TIMEOUT_S)
    else:
        r = requests.post(base_url + "/query", params=url_params, data={"q": q}, headers=headers,
                          timeout=QUERY_TIMEOUT_S)
    content_type = r.headers.get("Content-Type", "").split(";")[0].strip()
    return Answer(r.status_code, content_type, json_documents(r.text), r.text)


class InfluxDMissing(RuntimeError):
    pass


def find_influxd() -> Path:
    """FERRITE_INFLUXD, else ~/.cache/ferrite-tools/bin/influxd."""
    env = os.environ.get("FERRITE_INFLUXD")
    path = Path(env) if env else Path.home() / ".cache" / "ferrite-tools" / "bin" / "influxd"
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise InfluxDMissing(
            f"influxd (InfluxDB 1.x) not found at {path}: run deploy/dev/install-influxd.sh "
            "(or set FERRITE_INFLUXD to an influxd 1.x binary)")
    return path


def set_config(text: str, settings: dict[tuple[str, str], str]) -> str:
    """Replace `key = value` lines of a TOML config made by `influxd config`.

    `settings` maps (section, key) to the new value, already in TOML syntax; section "" is the
    top level (before the first header). Every setting must match a line: a key renamed in a
    new influxd fails here rather than being silently ignored."""
    out, section, done = [], "", set()
    for line in text.splitlines():
        header = re.match(r"\s*\[\[?([^\]]+)\]\]?\s*$", line)
        if header:
            section = header.group(1).strip()
        else:
            m = re.match(r"(\s*)([A-Za-z0-9_-]+)\s*=", line)
            if m and (section, m.group(2)) in settings:
                key = (section, m.group(2))
                line = f"{m.group(1)}{key[1]} = {settings[key]}"
                done.add(key)
        out.append(line)
    missing = set(settings) - done
    assert not missing, f"influxd config has no line for {sorted(missing)}"
    return "\n".join(out) + "\n"


def toml_str(value: Any) -> str:
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


class InfluxD:
    """One `influxd run` process with all its state under `base_dir` (no auth)."""

    def __init__(self, binary: Path, base_dir: Path):
        self.binary = Path(binary)
        self.base_dir = Path(base_dir)
        self.log_path = self.base_dir / "influxd.log"
        self.config_path = self.base_dir / "influxd.conf"
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def version(self) -> str:
        out = subprocess.run([str(self.binary), "version"], capture_output=True, text=True, timeout=30)
        return out.stdout.strip()

    def write_config(self) -> None:
        default = subprocess.run([str(self.binary), "config"], capture_output=True, text=True,
                                 timeout=30, check=True).stdout
        self.port = free_port()
        rpc_port = free_port()
        text = set_config(default, {
            ("", "reporting-disabled"): "true",
            # The RPC service (backup/restore): a port of its own, so parallel runs never meet.
            ("", "bind-address"): toml_str(f"127.0.0.1:{rpc_port}"),
            ("meta", "dir"): toml_str(self.base_dir / "meta"),
            ("data", "dir"): toml_str(self.base_dir / "data"),
            ("data", "wal-dir"): toml_str(self.base_dir / "wal"),
            # No `_internal` database: SHOW DATABASES lists only what the tests create.
            ("monitor", "store-enabled"): "false",
            ("http", "bind-address"): toml_str(f"127.0.0.1:{self.port}"),
            ("http", "pprof-enabled"): "false",
            ("logging", "format"): toml_str("logfmt"),
            ("logging", "suppress-logo"): "true",
        })
        self.config_path.write_text(text)

    def start(self) -> "InfluxD":
        assert self.proc is None or self.proc.poll() is not None, "influxd already running"
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.write_config()
        cmd = [str(self.binary), "run", "-config", str(self.config_path)]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        self._wait_ready(cmd)
        return self

    def _wait_ready(self, cmd) -> None:
        wait_answering(self.proc, "influxd", cmd, self.url + "/ping", 204, READY_TIMEOUT_S, self.log_tail)

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM and return the exit code."""
        return stop_gracefully(self.proc, "influxd", timeout, self.log_tail)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "----- influxd log (tail) -----\n" + "\n".join(text[-lines:])

    # --- HTTP ---------------------------------------------------------------------------------

    def query(self, db: str | None, q: str, epoch: str | None = None,
              method: str = "GET") -> tuple[int, Any]:
        """`/query` with `q` (GET: in the URL; POST: as a form body). Returns (status, JSON)."""
        answer = query_url(self.url, q, db=db, epoch=epoch, method=method)
        assert answer.documents and len(answer.documents) == 1, \
            f"influxd /query {q!r}: {answer.status} {answer.text[:500]!r}"
        return answer.status, answer.documents[0]

    def write(self, db: str, lp: str | bytes, precision: str = "ns") -> None:
        """`/write` (v1); the database must exist. Raises unless influxd answers 204."""
        body = lp.encode() if isinstance(lp, str) else lp
        r = requests.post(self.url + "/write", params={"db": db, "precision": precision},
                          data=body, timeout=60)
        assert r.status_code == 204, f"influxd /write: {r.status_code} {r.text}"
