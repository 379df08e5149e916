"""The load-and-scale check of a ferrite release on Kubernetes, shared by test_e2e.py (a
control plane of this machine and the stand-in kubelet) and e2e.sh (a real cluster).

Under a steady write load through the front door and a query load beside it: the ingester
StatefulSet is scaled 2 -> 3 -> 1 -> 2, the querier and router Deployments up and down, the
compactor Deployment 1 -> 2 (a standby), every tier restarted with `kubectl rollout
restart`, and the compactors scaled back to 1 by removing the active one. At the end every
acknowledged write must be present exactly once, no query may have failed with a
non-retryable error, the compactor must have compacted, and its pods' logs must show one
holder of the lease at a time, handed over as each step should. The release must start
with 1 catalog, 2 ingesters, 1 querier, 2 routers and 1 compactor, with compaction settings
fast enough to compact within the run (`release_values()`; e2e.sh and test_e2e.py install
it so).

Run against a real cluster (what e2e.sh does after `helm install -f` the values that
`--print-values` prints):

    python3 k8s-tests/scenario.py --namespace NS --release NAME [--url URL]

Without --url it reaches the router Service through `kubectl port-forward`, restarted
whenever the pod behind it goes away (writes in that gap count as refused and retried).
"""

from __future__ import annotations

import argparse
import base64
import collections
import datetime
import json
import re
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
START_REPLICAS = {"catalog": 1, "ingester": 2, "querier": 1, "router": 2, "compactor": 1}


def release_values():
    """The values a release needs for this check, besides its image and its database and
    bucket: the tiers at their starting sizes, ingesters persisting every 10 s (not only when
    they stop) and a compactor fast enough to compact, collect garbage and hand its lease
    over several times within the run."""
    values = {tier: {"replicas": n} for tier, n in START_REPLICAS.items()}
    values["ingester"]["persistAgeSeconds"] = 10
    values["compactor"]["config"] = {
        "compactionIntervalSeconds": 1,
        "compactionTargetFileBytes": 1 << 20,
        "compactionL0TriggerFiles": 2,
        "compactionL1TriggerFiles": 2,
        "compactionColdSeconds": 5,
        "gcGraceSeconds": 5,
        "gcOrphanScanSeconds": 10,
        "compactorLeaseSeconds": 3,
    }
    return values


# The compactor's lease term in this check (seconds).
LEASE_S = release_values()["compactor"]["config"]["compactorLeaseSeconds"]
# The compactor's log lines that mark its lease (ferrite_compactor's messages).
LEASE_TAKEN = "compactor active"
LEASE_LOST = "compactor lease taken over"
LEASE_LAPSED = "compactor lease lapsed"
STANDING_BY = "compactor standing by"
STOPPING = "compactor stopping"
COMPACTED = "compacted"


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
    """The whole check. `cluster` has `kubectl(*args)`, `pods(tier)`, `wait_tier(tier,
    replicas)`, `follow_logs(tier)` and `tier_logs(tier)` (every pod's log since
    `follow_logs`, also of pods gone since) and `describe()`; `url()` gives the front door's
    current URL and `session()` a requests session to reach it with. Raises AssertionError
    with what failed; reports its figures through `report` either way."""
    for tier, n in START_REPLICAS.items():
        cluster.wait_tier(tier, n)
    cluster.follow_logs("compactor")
    release = cluster.fullname
    writer = Writer(url, token, session)
    writer.start()
    if not writer.first_ack.wait(60):
        raise AssertionError(
            f"no write acknowledged in 60 s: {dict(writer.reasons)}\n{cluster.describe()}")
    querier = Querier(url, token, session, writer)
    querier.start()

    steps = []  # Step, in order
    replicas = dict(START_REPLICAS)

    def step(what, *kubectl_args, tier, n=None, expect=None):
        """One change, waited for; the tier's pods before and after it are kept, and what
        the compactor's lease should do in it (LeaseTerms.problems)."""
        before = {p["metadata"]["name"] for p in cluster.pods(tier)}
        started, started_at = time.monotonic(), time.time()
        cluster.kubectl(*kubectl_args)
        if kubectl_args[0] == "rollout":
            cluster.kubectl("rollout", "status", kubectl_args[2],
                            f"--timeout={cluster.pod_timeout_s}s")
        if n is not None:
            replicas[tier] = n
        cluster.wait_tier(tier, replicas[tier])
        took = time.monotonic() - started
        after = {p["metadata"]["name"] for p in cluster.pods(tier)}
        time.sleep(SETTLE_S)
        steps.append(Step(what, tier, took, started, time.monotonic(), started_at,
                          time.time(), before, after, expect))

    sts = f"statefulset/{release}-ingester"
    compactors = f"deployment/{release}-compactor"
    try:
        time.sleep(SETTLE_S)
        for n in (3, 1, 2):
            step(f"ingesters -> {n}", "scale", sts, f"--replicas={n}", tier="ingester", n=n)
        for n in (2, 1):
            step(f"queriers -> {n}", "scale", f"deployment/{release}-querier",
                 f"--replicas={n}", tier="querier", n=n)
        for n in (3, 1, 2):
            step(f"routers -> {n}", "scale", f"deployment/{release}-router",
                 f"--replicas={n}", tier="router", n=n)
        step("compactors -> 2", "scale", compactors, "--replicas=2", tier="compactor", n=2,
             expect=STANDBY_ADDED)
        for tier, kind in [("catalog", "deployment"), ("ingester", "statefulset"),
                           ("querier", "deployment"), ("router", "deployment"),
                           ("compactor", "deployment")]:
            # Two compactors stand by and contend through the others' restarts; Recreate
            # replaces both at once, and the new ones race for the lease.
            step(f"rolling restart of the {tier}s", "rollout", "restart",
                 f"{kind}/{release}-{tier}", tier=tier,
                 expect=NEW_HOLDER if tier == "compactor" else None)
        # The scale-down removes the active pod (the lowest deletion cost goes first): the
        # standby must take the lease it gives up.
        active = LeaseTerms(cluster.tier_logs("compactor")).holder()
        if active is None:
            raise AssertionError("no compactor holds the lease\n" + cluster.describe())
        cluster.kubectl("annotate", "pod", active, f"{DELETION_COST}=-1000", "--overwrite")
        step("compactors -> 1, the active one removed", "scale", compactors, "--replicas=1",
             tier="compactor", n=1, expect=STANDBY_TAKES_OVER)
    finally:
        writer.stop.set()
        querier.stop.set()
        writer.join(60)
        querier.join(60)

    stored = collections.Counter(query_all_seq(url, token, session))
    acked = writer.acked
    missing = [s for s in acked if stored[s] == 0]
    twice = {s: c for s, c in stored.items() if c > 1}
    levels = files_per_level(url, token, session)
    compactor_logs = cluster.tier_logs("compactor")
    terms = LeaseTerms(compactor_logs)
    compactor_problems = terms.problems(steps)
    rounds = [line for text in compactor_logs.values() for line in text.splitlines()
              if _message(line).startswith(COMPACTED)]

    def during(t):
        return next((s.what for s in steps if s.started <= t <= s.ended), "between steps")

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
        f"acknowledged rows; compactor: {len(rounds)} rounds committed, files now at level "
        f"0/1/2: {'/'.join(str(levels.get(level, 0)) for level in (0, 1, 2))}, "
        f"{len(terms.terms)} lease terms over {len(compactor_logs)} pods\n  "
        + "\n  ".join(f"{s.what}: {s.took:.1f} s{terms.describe_handover(s)}" for s in steps)
    )
    if missing:
        raise AssertionError(f"{len(missing)} acknowledged rows missing, e.g. seq "
                             f"{missing[:10]}\n{cluster.describe()}")
    if twice:
        raise AssertionError(
            f"rows stored more than once (seq: count): {dict(list(twice.items())[:10])}")
    if querier.fatal:
        raise AssertionError(f"queries failed with non-retryable errors: {querier.fatal[:5]}")
    if compactor_problems:
        raise AssertionError("the compactor's lease:\n  " + "\n  ".join(compactor_problems)
                             + "\n" + terms.describe())
    if not rounds or not levels.get(1, 0) + levels.get(2, 0):
        raise AssertionError(f"the compactor compacted nothing: {len(rounds)} rounds logged, "
                             f"files per level {levels}")


def _median(values):
    ordered = sorted(values)
    return ordered[len(ordered) // 2] if ordered else 0.0


def files_per_level(url, token, session):
    """Files of the test's database per compaction level, from the management API
    (`GET /api/v0/partitions`, which routers forward to the catalog)."""
    deadline = time.monotonic() + 60
    session = session()
    while True:
        try:
            r = session.get(url() + "/api/v0/partitions", params={"db": DATABASE},
                            headers={"Authorization": f"Bearer {token}"}, timeout=30)
            if r.status_code == 200:
                counts = collections.Counter()
                for partition in r.json():
                    for level in partition["levels"]:
                        counts[level["level"]] += level["files"]
                return counts
            if r.status_code not in RETRYABLE:
                raise AssertionError(f"GET /api/v0/partitions: {r.status_code} {r.text[:500]}")
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise AssertionError("GET /api/v0/partitions kept failing for 60 s")
        time.sleep(0.5)


# --- the compactor's lease, from its pods' logs -----------------------------------------------


class Step(collections.namedtuple(
        "Step", "what tier took started ended started_at ended_at before after expect")):
    """One change of the scenario: monotonic `started`/`ended` (with its settling time),
    wall-clock `started_at`/`ended_at` (to place log lines), the tier's pods before and after
    it, and what the compactor's lease should do in it (STANDBY_ADDED, NEW_HOLDER,
    STANDBY_TAKES_OVER or None)."""


# What a compactor step should do to the lease: the added pod stands by; a new pod takes it;
# the pod left standing takes it from the removed holder within the lease's term.
STANDBY_ADDED, NEW_HOLDER, STANDBY_TAKES_OVER = "standby added", "new holder", "standby takes over"
# The annotation that makes a ReplicaSet scale a given pod away first (lowest first).
DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"


_LOG_LINE = re.compile(
    r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?Z\s+[A-Z]+\s+[\w:]+: (.*)$")


def _parse(line):
    """(seconds since the epoch, message) of a ferrite log line, or None."""
    m = _LOG_LINE.match(line.strip())
    if not m:
        return None
    t = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S")
    t = t.replace(tzinfo=datetime.timezone.utc).timestamp() + float("0" + (m.group(2) or ""))
    return t, m.group(3)


def _message(line):
    parsed = _parse(line)
    return parsed[1] if parsed else ""


class LeaseTerms:
    """When each compactor pod held the lease, from its log: from "compactor active" to
    "compactor stopping", "compactor lease taken over" or "compactor lease lapsed" (it could
    not renew in time and stopped working), or open (end None) when its log
    ends without either (it holds it still, or stopped without giving it up)."""

    def __init__(self, logs):
        self.terms = []  # [pod, start, end or None], by start
        self.first_event = {}  # pod -> its first lease message: LEASE_TAKEN or STANDING_BY
        self.stopped = set()  # pods that logged STOPPING
        self.restarted = set()  # pods whose container the stand-in kubelet restarted
        for pod, text in logs.items():
            term, t = None, None
            for line in text.splitlines():
                if line.startswith("=== ") and " start #" in line and not line.endswith("#0"):
                    # The process before ended without a word: its term ends at its last line.
                    self.restarted.add(pod)
                    if term is not None:
                        term[2], term = t, None
                    continue
                parsed = _parse(line)
                if not parsed:
                    continue
                t, message = parsed
                for event in (LEASE_TAKEN, STANDING_BY):
                    if message.startswith(event):
                        self.first_event.setdefault(pod, event)
                if message.startswith(LEASE_TAKEN) and term is None:
                    term = [pod, t, None]
                    self.terms.append(term)
                elif message.startswith((LEASE_LOST, LEASE_LAPSED, STOPPING)):
                    if message.startswith(STOPPING):
                        self.stopped.add(pod)
                    if term is not None:
                        term[2] = t
                        term = None
        self.terms.sort(key=lambda term: term[1])

    def holder(self):
        """The pod holding the lease now, if one does."""
        open_terms = [pod for pod, _, end in self.terms if end is None]
        return open_terms[-1] if open_terms else None

    def overlaps(self):
        found = []
        for i, (pod, start, end) in enumerate(self.terms):
            for other, o_start, o_end in self.terms[i + 1:]:
                if end is None or o_start < end:
                    found.append(f"{other} took the lease at {_at(o_start)} while {pod} held it "
                                 f"(from {_at(start)} to {_at(end) if end else 'its end'})")
        return found

    def handover(self, step):
        """(the pod that took the lease in `step` from a pod that stopped, how long after);
        None when the lease did not move so."""
        for i, (pod, start, _) in enumerate(self.terms):
            if i and step.started_at <= start <= step.ended_at:
                _, _, ended = self.terms[i - 1]
                if ended is not None:
                    return pod, start - ended
        return None

    def describe_handover(self, step):
        moved = self.handover(step)
        if moved is None:
            return ""
        pod, gap = moved
        who = "the standby" if pod in step.before else "a new pod"
        return f" (lease taken over by {who} {gap:.2f} s after its holder stopped)"

    def problems(self, steps):
        """What is wrong with the lease's history in this scenario, as messages."""
        found = self.overlaps()
        if not self.terms:
            return found + ["no compactor pod ever held the lease"]
        if self.holder() is None:
            found.append("no compactor holds the lease at the end")
        for pod in sorted(self.restarted):
            found.append(f"{pod}: its container exited and was restarted")
        for s in steps:
            if s.tier != "compactor":
                continue
            for pod in s.before - s.after:
                if pod not in self.stopped:
                    found.append(f"{s.what}: {pod} went without logging '{STOPPING}'")
            new = s.after - s.before
            taken = [pod for pod, start, _ in self.terms
                     if s.started_at <= start <= s.ended_at]
            if s.expect == STANDBY_ADDED:
                for pod in new:
                    if self.first_event.get(pod) != STANDING_BY:
                        found.append(f"{s.what}: the added {pod} did not stand by first "
                                     f"(its first lease message: {self.first_event.get(pod)})")
            elif s.expect == NEW_HOLDER:
                if not [pod for pod in taken if pod in new]:
                    found.append(f"{s.what}: no new pod took the lease (taken by "
                                 f"{taken or 'no one'})")
            elif s.expect == STANDBY_TAKES_OVER:
                # A lease given up at SIGTERM goes to whoever asks next: the standby asks
                # every third of the term.
                moved = self.handover(s)
                if moved is None or moved[0] not in s.before & s.after:
                    found.append(f"{s.what}: the standby did not take the lease over (taken "
                                 f"by {taken or 'no one'})")
                elif moved[1] > LEASE_S:
                    found.append(f"{s.what}: the standby took the lease {moved[1]:.2f} s after "
                                 f"its holder gave it up, more than its {LEASE_S} s term")
        return found

    def describe(self):
        return "lease terms:\n" + "\n".join(
            f"  {pod}: {_at(start)} .. {_at(end) if end else 'open'}"
            for pod, start, end in self.terms)


def _at(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%H:%M:%S.%f")


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

    def follow_logs(self, tier):
        """Keep the log of every pod of `tier` from now on: a cluster forgets a pod's log
        with the pod."""
        self._followers = getattr(self, "_followers", {})
        if tier not in self._followers:
            self._followers[tier] = LogFollower(self, tier)

    def tier_logs(self, tier):
        """pod name -> its log, for every pod of `tier` seen since follow_logs(tier)."""
        return self._followers[tier].logs()

    def token(self):
        secret = json.loads(self.kubectl("get", "secret", f"{self.fullname}-admin-token",
                                         "-o", "json"))
        return base64.b64decode(secret["data"]["admin-token"]).decode()


def ready(pod):
    return any(c["type"] == "Ready" and c["status"] == "True"
               for c in pod.get("status", {}).get("conditions") or [])


class LogFollower:
    """`kubectl logs -f` of each pod of a tier, started as soon as its container runs."""

    def __init__(self, cluster, tier):
        self.cluster, self.tier = cluster, tier
        self.lines = {}  # pod -> [line]
        self.lock = threading.Lock()
        threading.Thread(target=self._watch, daemon=True).start()

    def logs(self):
        with self.lock:
            return {pod: "\n".join(lines) for pod, lines in self.lines.items()}

    def _watch(self):
        while True:
            try:
                pods = self.cluster.pods(self.tier)
            except (AssertionError, subprocess.TimeoutExpired):
                pods = []
            for pod in pods:
                name = pod["metadata"]["name"]
                running = any("running" in (c.get("state") or {}) for c in
                              (pod.get("status") or {}).get("containerStatuses") or [])
                with self.lock:
                    if name in self.lines or not running:
                        continue
                    self.lines[name] = []
                threading.Thread(target=self._follow, args=(name,), daemon=True).start()
            time.sleep(0.5)

    def _follow(self, name):
        proc = subprocess.Popen(
            [*self.cluster.kubectl_argv, "-n", self.cluster.namespace, "logs", "-f", name],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        for line in proc.stdout:
            with self.lock:
                self.lines[name].append(line.rstrip("\n"))
        proc.wait()


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
    parser.add_argument("--print-values", action="store_true",
                        help="print the values to install the release with (JSON) and exit")
    parser.add_argument("--namespace")
    parser.add_argument("--release")
    parser.add_argument("--kubectl", default="kubectl")
    parser.add_argument("--url", help="the front door, when reachable without port-forward")
    parser.add_argument("--ca", help="the CA (PEM) of a release with tls.enabled")
    args = parser.parse_args()
    if args.print_values:
        print(json.dumps(release_values(), indent=2))
        return 0
    if not (args.namespace and args.release):
        parser.error("--namespace and --release are required")
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
