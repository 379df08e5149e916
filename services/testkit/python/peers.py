"""QuestDB and VictoriaMetrics as local servers for the peer benchmark (bench/peers.py), beside
`influxd.InfluxD` and `ferrite_e2e.FerriteServer`: each runs in a directory of its own on
loopback ports with its output in a log file, has the same `url` attribute, and stops with
SIGTERM.

    QuestDB:          $FERRITE_QUESTDB_JAR, else ~/.cache/ferrite-tools/questdb/questdb.jar
                      (deploy/dev/install-questdb.sh), run with `java` from PATH
    VictoriaMetrics:  $FERRITE_VICTORIAMETRICS, else ~/.cache/ferrite-tools/bin/victoria-metrics
                      (deploy/dev/install-victoriametrics.sh)
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import requests

from ferrite_e2e import free_port, stop_gracefully, wait_answering

TOOLS = Path(os.environ.get("FERRITE_TOOLS_DIR", Path.home() / ".cache" / "ferrite-tools"))
READY_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 120.0


def find_tool(env: str, default: Path, install: str) -> Path:
    path = Path(os.environ.get(env) or default)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run deploy/dev/{install} (or set {env})")
    return path


def log_tail(path: Path, name: str, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return f"(no {name} log)"
    return f"----- {name} log (tail) -----\n" + "\n".join(text[-lines:])


class Server:
    """One server process: `command()` run in `root`, ready once `ready_path` answers 200."""

    name = "server"
    ready_path = "/"

    def __init__(self, root: Path):
        self.root = Path(root)
        self.log_path = self.root / f"{self.name}.log"
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self):
        assert self.proc is None or self.proc.poll() is not None, f"{self.name} already running"
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        cmd = self.command()
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         cwd=self.root)
        wait_answering(self.proc, self.name, cmd, self.url + self.ready_path, 200, READY_TIMEOUT_S, self.log_tail)
        return self

    def stop(self) -> int:
        """SIGTERM (each of these shuts down cleanly on it) and return the exit code."""
        return stop_gracefully(self.proc, self.name, STOP_TIMEOUT_S, self.log_tail)

    def log_tail(self, lines: int = 40) -> str:
        return log_tail(self.log_path, self.name, lines)


class QuestDB(Server):
    """`java -p questdb.jar -m io.questdb/io.questdb.ServerMain -d <root>`: every listener on
    loopback, no telemetry, and commits that wait for the flush of the WAL files they wrote
    (`cairo.commit.mode=sync`; QuestDB's default, `nosync`, flushes nothing)."""

    name = "questdb"
    ready_path = "/exec?query=SELECT%201"

    def __init__(self, jar: Path, root: Path, java: str = "java"):
        super().__init__(root)
        self.jar = Path(jar)
        self.java = java

    @property
    def data_dir(self) -> Path:
        return self.root / "db"

    def command(self) -> list[str]:
        conf = self.root / "conf"
        conf.mkdir(exist_ok=True)
        # QuestDB takes every setting not named here from its defaults.
        (conf / "server.conf").write_text("\n".join([
            f"http.net.bind.to=127.0.0.1:{self.port}",
            f"http.min.net.bind.to=127.0.0.1:{free_port()}",
            f"pg.net.bind.to=127.0.0.1:{free_port()}",
            f"line.tcp.net.bind.to=127.0.0.1:{free_port()}",
            "line.udp.enabled=false",
            "telemetry.enabled=false",
            "cairo.commit.mode=sync",
        ]) + "\n")
        return [self.java, "-p", str(self.jar), "-m", "io.questdb/io.questdb.ServerMain", "-d", str(self.root)]

    def exec(self, session: requests.Session, sql: str, timeout: float = 600) -> requests.Response:
        """SQL through `/exec`: JSON {columns: [{name, type}], dataset: [[...]], count}."""
        return session.get(self.url + "/exec", params={"query": sql}, timeout=timeout)


def find_questdb_jar() -> Path:
    return find_tool("FERRITE_QUESTDB_JAR", TOOLS / "questdb" / "questdb.jar", "install-questdb.sh")


def questdb_version() -> str:
    """What deploy/dev/install-questdb.sh stamped: "org.questdb:questdb:<version>"."""
    stamp = find_questdb_jar().parent / "questdb.version"
    return stamp.read_text().strip().rsplit(":", 1)[-1] if stamp.exists() else "unknown"


class VictoriaMetrics(Server):
    """Single-node `victoria-metrics` with its data in `<root>/data`: loopback, 100 years of
    retention (the benchmark's data is days old), and no response cache."""

    name = "victoria-metrics"
    ready_path = "/health"

    def __init__(self, binary: Path, root: Path):
        super().__init__(root)
        self.binary = Path(binary)

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    def command(self) -> list[str]:
        return [str(self.binary), f"-storageDataPath={self.data_dir}", f"-httpListenAddr=127.0.0.1:{self.port}",
                "-retentionPeriod=100y", "-search.disableCache"]

    def version(self) -> str:
        return subprocess.run([str(self.binary), "-version"], capture_output=True, text=True,
                              timeout=30).stdout.strip()


def find_victoriametrics() -> Path:
    return find_tool("FERRITE_VICTORIAMETRICS", TOOLS / "bin" / "victoria-metrics",
                     "install-victoriametrics.sh")
