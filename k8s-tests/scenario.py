"""The load-and-scale check of a ferrite release on Kubernetes, shared by test_e2e.py (a
control plane of this machine and the stand-in kubelet) and e2e.sh (a real cluster).

Under a steady write load through the front door and a query load beside it: the ingester
StatefulSet is scaled 2 -> 3 -> 1 -> 2, the querier and router Deployments up and down, and
every tier restarted with `kubectl rollout restart`. At the end every acknowledged write
must be present exactly once, and no query may have failed with a non-retryable error. The
release must start with 1 catalog, 2 ingesters, 1 querier and 2 routers.

Run against a real cluster (what e2e.sh does after `helm install`):

    python3 k8s-tests/scenario.py --namespace NS --release NAME [--url URL]

Without --url it reaches the router Service through `kubectl port-forward`, restarted
whenever the pod behind it goes away (writes in that gap count as refused and retried).
"""

from __future__ import annotations

import argparse
import base64
import collections
import json
import socket
import subprocess
import sys
import threading
import time

import requests
import requests.adapters

DATABASE = "e2e"
# Rows go to several tables, so that their partitions spread over the ingesters and each
# write request is split between them.
TABLES = [f"load{i}" for i in range(6)]
ALL_ROWS = " UNION ALL ".join(f"SELECT seq FROM {t}" for t in TABLES)
# Rows per write request, and the pause between requests of the writer.
BATCH = 50
WRITE_INTERVAL_S = 0.05
QUERY_INTERVAL_S = 0.3
# HTTP statuses a client retries (the request may be sent again as it is).
RETRYABLE = {502, 503, 504}
# Time under load between steps, so writes and queries cross every change.
SETTLE_S = 3
START_REPLICAS = {"catalog": 1, "ingester": 2, "querier": 1, "router": 2}


def new_session():
    """A requests session that ignores the environment (REQUESTS_CA_BUNDLE would override
    a CA it is given; a proxy variable would send the test's traffic elsewhere)."""
    session = requests.Session()
    session.trust_env = False
    return session


class _NamedHostAdapter(requests.adapters.HTTPAdapter):
    """Sends `name` as the TLS server name and checks the certificate against it, whatever
    address is dialled (a Service's cluster IP, as a client inside the cluster would reach
    it by its DNS name)."""

    def __init__(self, name):
        self.name = name
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        kwargs["server_hostname"] = self.name
        kwargs["assert_hostname"] = self.name
        super().init_poolmanager(*args, **kwargs)


def tls_session(ca, name):
    """A session trusting `ca` (a PEM file) that checks certificates against `name`."""
    session = new_session()
    session.verify = str(ca)
    session.mount("https://", _NamedHostAdapter(name))
    return session


class Writer(threading.Thread):
    """One client writing BATCH rows per request, each with its own `seq`; a refused request
    is sent again until it is acknowledged, as the InfluxDB clients' retry does."""

    def __init__(self, url, token, session):
        super().__init__(daemon=True)
        self.url, self.token, self.session = url, token, session
        self.stop = threading.Event()
        self.acked = []
        self.refused = 0
        self.reasons = collections.Counter()
        self.longest_pause = 0.0
        self.longest_pause_ended = 0.0  # time.monotonic() of its end
        self.first_ack = threading.Event()
        self.base_ns = time.time_ns()

    def run(self):
        session = self.session()
        seq, last_ack = 0, time.monotonic()
        while not self.stop.is_set():
            body = "\n".join(
                f"{TABLES[n % len(TABLES)]},writer=w{n % 4} seq={n}i "
                f"{self.base_ns + n * 1_000_000}"
                for n in range(seq, seq + BATCH)
            )
            while not self.stop.is_set():
                try:
                    r = session.post(
                        self.url() + "/api/v2/write",
                        params={"bucket": DATABASE, "precision": "ns"}, data=body,
                        headers={"Authorization": f"Token {self.token}"}, timeout=30,
                    )
                    if r.status_code == 204:
                        break
                    self.reasons[f"{r.status_code} {r.text[:120]}"] += 1
                except requests.RequestException as e:
                    self.reasons[type(e).__name__] += 1
                self.refused += 1
                time.sleep(0.05)
            else:
                break  # stopped before this batch was acknowledged: it does not count
            now = time.monotonic()
            if now - last_ack > self.longest_pause:
                self.longest_pause, self.longest_pause_ended = now - last_ack, now
            last_ack = now
            self.acked.extend(range(seq, seq + BATCH))
            self.first_ack.set()
            seq += BATCH
            time.sleep(WRITE_INTERVAL_S)


class Querier(threading.Thread):
    """`SELECT count(*)` through the front door, over and over; sorts every failure into
    retryable (transport errors, 502/503/504) or not, and counts answers that missed rows
    acknowledged before the query was sent."""

    def __init__(self, url, token, session, writer):
        super().__init__(daemon=True)
        self.url, self.token, self.session, self.writer = url, token, session, writer
        self.stop = threading.Event()
        self.ok = self.retryable = 0
        self.fatal = []
        self.behind = 0
        self.seconds = []  # of each answered query
        self.ended = []  # time.monotonic() when each answered query ended

    def run(self):
        session = self.session()
        while not self.stop.is_set():
            acked_before = len(self.writer.acked)
            started = time.monotonic()
            try:
                r = session.get(
                    self.url() + "/api/v3/query_sql",
                    params={"db": DATABASE, "q": f"SELECT count(*) AS n FROM ({ALL_ROWS})",
                            "format": "json"},
                    headers={"Authorization": f"Bearer {self.token}"}, timeout=60,
                )
                if r.status_code == 200:
                    self.ok += 1
                    self.seconds.append(time.monotonic() - started)
                    self.ended.append(time.monotonic())
                    if r.json()[0]["n"] < acked_before:
                        self.behind += 1
                elif r.status_code in RETRYABLE:
                    self.retryable += 1
                else:
                    self.fatal.append(f"{r.status_code} {r.text[:300]}")
            except requests.RequestException:
                self.retryable += 1
            time.sleep(QUERY_INTERVAL_S)


def query_all_seq(url, token, session):
    """Every `seq` stored, retrying what a client would retry."""
    deadline = time.monotonic() + 60
    session = session()
    while True:
        try:
            r = session.get(
                url() + "/api/v3/query_sql",
                params={"db": DATABASE, "q": ALL_ROWS, "format": "json"},
                headers={"Authorization": f"Bearer {token}"}, timeout=120,
            )
            if r.status_code == 200:
                return [row["seq"] for row in r.json()]
            if r.status_code not in RETRYABLE:
                raise AssertionError(f"final query: {r.status_code} {r.text[:500]}")
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise AssertionError("the final query kept failing for 60 s")
        time.sleep(0.5)


def run(cluster, url, token, report=print, session=new_session):
    """The whole check. `cluster` has `kubectl(*args)`, `wait_tier(tier, replicas)` and
    `describe()`; `url()` gives the front door's current URL and `session()` a requests
    session to reach it with. Raises AssertionError with what failed; reports its figures
    through `report` either way."""
    for tier, n in START_REPLICAS.items():
        cluster.wait_tier(tier, n)
    release = cluster.fullname
    writer = Writer(url, token, session)
    writer.start()
    if not writer.first_ack.wait(60):
        raise AssertionError(
            f"no write acknowledged in 60 s: {dict(writer.reasons)}\n{cluster.describe()}")
    querier = Querier(url, token, session, writer)
    querier.start()

    steps = []
    spans = []  # (what, started, ended)

    def step(what, *kubectl_args, tier, replicas):
        started = time.monotonic()
        cluster.kubectl(*kubectl_args)
        if kubectl_args[0] == "rollout":
            cluster.kubectl("rollout", "status", kubectl_args[2],
                            f"--timeout={cluster.pod_timeout_s}s")
        cluster.wait_tier(tier, replicas)
        steps.append(f"{what}: {time.monotonic() - started:.1f} s")
        time.sleep(SETTLE_S)
        spans.append((what, started, time.monotonic()))

    sts = f"statefulset/{release}-ingester"
    try:
        time.sleep(SETTLE_S)
        for n in (3, 1, 2):
            step(f"ingesters -> {n}", "scale", sts, f"--replicas={n}",
                 tier="ingester", replicas=n)
        for n in (2, 1):
            step(f"queriers -> {n}", "scale", f"deployment/{release}-querier",
                 f"--replicas={n}", tier="querier", replicas=n)
        for n in (3, 1, 2):
            step(f"routers -> {n}", "scale", f"deployment/{release}-router",
                 f"--replicas={n}", tier="router", replicas=n)
        for tier, kind in [("catalog", "deployment"), ("ingester", "statefulset"),
                           ("querier", "deployment"), ("router", "deployment")]:
            step(f"rolling restart of the {tier}s", "rollout", "restart",
                 f"{kind}/{release}-{tier}", tier=tier, replicas=START_REPLICAS[tier])
    finally:
        writer.stop.set()
        querier.stop.set()
        writer.join(60)
        querier.join(60)

    stored = collections.Counter(query_all_seq(url, token, session))
    acked = writer.acked
    missing = [s for s in acked if stored[s] == 0]
    twice = {s: c for s, c in stored.items() if c > 1}
    def during(t):
        return next((what for what, a, b in spans if a <= t <= b), "between steps")

    slowest = max(range(len(querier.seconds)), key=querier.seconds.__getitem__, default=None)
    report(
        f"{len(acked)} rows acknowledged in {len(acked) // BATCH} requests; "
        f"{writer.refused} requests refused and sent again ({dict(writer.reasons)}); "
        f"longest pause between acknowledgements {writer.longest_pause:.2f} s "
        f"({during(writer.longest_pause_ended)}); "
        f"queries: "
        f"{querier.ok} answered (median {_median(querier.seconds):.3f} s, longest "
        f"{max(querier.seconds, default=0):.3f} s"
        f"{f' ({during(querier.ended[slowest])})' if slowest is not None else ''}), "
        f"{querier.retryable} retryable failures, "
        f"{len(querier.fatal)} other failures, {querier.behind} answers missing "
        f"acknowledged rows\n  " + "\n  ".join(steps)
    )
    if missing:
        raise AssertionError(f"{len(missing)} acknowledged rows missing, e.g. seq "
                             f"{missing[:10]}\n{cluster.describe()}")
    if twice:
        raise AssertionError(
            f"rows stored more than once (seq: count): {dict(list(twice.items())[:10])}")
    if querier.fatal:
        raise AssertionError(f"queries failed with non-retryable errors: {querier.fatal[:5]}")


def _median(values):
    ordered = sorted(values)
    return ordered[len(ordered) // 2] if ordered else 0.0


# --- a real cluster, through kubectl ---------------------------------------------------------


class KubectlCluster:
    """A release on the cluster of kubectl's current context."""

    pod_timeout_s = 300

    def __init__(self, kubectl, namespace, release):
        """`kubectl`: the command and its global flags, e.g. ["kubectl", "--context", "kind"]."""
        self.kubectl_argv, self.namespace, self.release = list(kubectl), namespace, release
        # The chart's `ferrite.fullname` (without overrides).
        self.fullname = release if "ferrite" in release else f"{release}-ferrite"

    def kubectl(self, *args):
        out = subprocess.run([*self.kubectl_argv, "-n", self.namespace, *args],
                             capture_output=True, text=True, timeout=self.pod_timeout_s + 60)
        if out.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed:\n{out.stderr}")
        return out.stdout

    def pods(self, tier):
        got = self.kubectl("get", "pods", "-o", "json", "-l",
                           f"app.kubernetes.io/instance={self.release},"
                           f"app.kubernetes.io/component={tier}")
        return json.loads(got)["items"]

    def wait_tier(self, tier, replicas):
        deadline = time.monotonic() + self.pod_timeout_s
        while time.monotonic() < deadline:
            pods = self.pods(tier)
            if len(pods) == replicas and all(
                ready(p) and not p["metadata"].get("deletionTimestamp") for p in pods
            ):
                return
            time.sleep(0.5)
        raise AssertionError(f"{tier}: not {replicas} ready pods in {self.pod_timeout_s} s\n"
                             f"{self.describe()}")

    def describe(self):
        return self.kubectl("get", "pods", "-o", "wide")

    def token(self):
        secret = json.loads(self.kubectl("get", "secret", f"{self.fullname}-admin-token",
                                         "-o", "json"))
        return base64.b64decode(secret["data"]["admin-token"]).decode()


def ready(pod):
    return any(c["type"] == "Ready" and c["status"] == "True"
               for c in pod.get("status", {}).get("conditions") or [])


class PortForward:
    """`kubectl port-forward svc/<router>` on a local port, started again whenever it exits
    (it does when the pod behind it goes away)."""

    def __init__(self, cluster, scheme="http"):
        self.cluster, self.scheme = cluster, scheme
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.stop = threading.Event()
        self.proc = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def url(self):
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def _run(self):
        while not self.stop.is_set():
            self.proc = subprocess.Popen(
                [*self.cluster.kubectl_argv, "-n", self.cluster.namespace, "port-forward",
                 f"svc/{self.cluster.fullname}-router", f"{self.port}:8181"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            self.proc.wait()
            time.sleep(0.2)

    def close(self):
        self.stop.set()
        if self.proc:
            self.proc.terminate()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--release", required=True)
    parser.add_argument("--kubectl", default="kubectl")
    parser.add_argument("--url", help="the front door, when reachable without port-forward")
    parser.add_argument("--ca", help="the CA (PEM) of a release with tls.enabled")
    args = parser.parse_args()
    cluster = KubectlCluster([args.kubectl], args.namespace, args.release)
    forward = None
    if args.url:
        url = lambda: args.url.rstrip("/")  # noqa: E731
    else:
        forward = PortForward(cluster, "https" if args.ca else "http")
        url = forward.url
    session = new_session
    if args.ca:
        # Through port-forward the host is 127.0.0.1; the certificate is the router Service's.
        name = f"{cluster.fullname}-router.{args.namespace}.svc"
        session = lambda: tls_session(args.ca, name)  # noqa: E731
    try:
        run(cluster, url, cluster.token(), session=session)
    except AssertionError as e:
        print(f"FAILED: {e}", file=sys.stderr)
        return 1
    finally:
        if forward:
            forward.close()
    print("passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
