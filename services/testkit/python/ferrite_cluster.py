"""A local ferrite cluster for the end-to-end tests: `ferrite-test-cluster` (a testkit binary)
starts a throwaway PostgreSQL, MinIO, catalog, two ingesters, a querier and a router, prints
the router's address and stops everything when its standard input closes.

`FerriteCluster` has the same address attributes as `ferrite_e2e.FerriteServer`, so every
helper that takes a server works against the cluster's front door unchanged.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from urllib.parse import urlparse

from ferrite_e2e import TOKEN

START_TIMEOUT_S = 180.0


class FerriteCluster:
    def __init__(self, launcher: Path, ferrite_bin: Path, log_path: Path, env: dict | None = None):
        """`env`: extra environment for every service (e.g. `FERRITE_QUERY_MEMORY_BYTES`)."""
        self.launcher = Path(launcher)
        self.ferrite_bin = Path(ferrite_bin)
        self.log_path = Path(log_path)
        self.env = dict(env or {})
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None
        self.service_logs: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def flight_uri(self) -> str:
        return f"grpc+tcp://127.0.0.1:{self.port}"

    def start(self) -> "FerriteCluster":
        log = open(self.log_path, "ab")
        env = dict(os.environ, NO_COLOR="1", **self.env)
        env.setdefault("RUST_LOG", "info")
        self.proc = subprocess.Popen(
            [str(self.launcher), "--ferrite", str(self.ferrite_bin), "--admin-token", TOKEN],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, env=env)
        log.close()
        line = self.proc.stdout.readline()  # one JSON line once every service is healthy
        if not line:
            code = self.proc.wait(timeout=START_TIMEOUT_S)
            raise RuntimeError(f"ferrite-test-cluster exited with {code} while starting\n{self.log_tail()}")
        ready = json.loads(line)
        self.port = urlparse(ready["url"]).port
        self.service_logs = ready["logs"]
        return self

    def stop(self) -> int:
        """Close the launcher's stdin: it stops every service and exits."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.stdin.close()
        try:
            return self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        out = []
        for path in [str(self.log_path), *self.service_logs]:
            try:
                text = Path(path).read_text(errors="replace").splitlines()
            except OSError:
                continue
            out.append(f"----- {path} (tail) -----\n" + "\n".join(text[-lines:]))
        return "\n".join(out) or "(no logs)"


def find_launcher(ferrite_bin: Path) -> Path:
    """`ferrite-test-cluster` next to the ferrite binary (both are built by
    `cargo test --workspace --no-run`), or FERRITE_TEST_CLUSTER."""
    env = os.environ.get("FERRITE_TEST_CLUSTER")
    path = Path(env) if env else Path(ferrite_bin).parent / "ferrite-test-cluster"
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise FileNotFoundError(
            f"{path} not found: build it with `cargo test --workspace --no-run` (make test does)")
    return path
