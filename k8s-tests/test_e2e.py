"""The chart end to end on a real control plane, with real pods.

`helm install` puts the release into a control plane of this machine (etcd, kube-apiserver,
kube-controller-manager: `ferrite-test-kube --with-backing`, which also starts the
PostgreSQL and MinIO the release uses as external services). The Deployment and StatefulSet
controllers make the Pods; the stand-in kubelet of kubelet.py runs each as a real `ferrite`
process in a network namespace with the Pod's IP and reports its readiness, and proxies the
Services' cluster IPs.

Then, under a steady write load through the router Service's cluster IP and a query load
beside it: the ingester StatefulSet is scaled 2 -> 3 -> 1 -> 2, the querier and router
Deployments up and down, the compactor given a standby, every tier restarted with `kubectl
rollout restart`, and the active compactor scaled away, while the compactor merges the files
the ingesters persist. At the end every acknowledged write is present exactly once, no query
got a non-retryable error, the compactor compacted, and its pods' logs show one lease holder
at a time. The figures (writes refused, the longest pause between acknowledgements, the
compactor's rounds and handovers) are printed.
"""

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

import kubelet as standin
import scenario
from conftest import CHART, ControlPlane, kubectl, kubectl_path, find_testkit_bin

RELEASE = "e2e"
FULLNAME = "e2e-ferrite"
POD_TIMEOUT_S = 180
TLS_SECRET = "ferrite-tls"


def _fail_without_root():
    if os.geteuid() != 0:
        pytest.fail(
            "the end-to-end test runs pods in network namespaces and needs root",
            pytrace=False,
        )


@pytest.fixture(scope="module", params=["plain", "tls"])
def release(request, helm_bin, ferrite_bin):
    """The release in a control plane of its own: plain, or with TLS on every port from a
    certificate for the Services' names only (peers found by discovery are dialled at pod
    addresses the certificate does not list)."""
    _fail_without_root()
    tls = request.param == "tls"
    namespace = "e2e-tls" if tls else "e2e"
    with ControlPlane(backing=True) as cp:
        api = standin.Api(cp["url"], cp["token"], cp["ca"])
        workdir = Path(tempfile.mkdtemp(prefix="ferrite-kubelet-"))
        node = standin.Kubelet(
            api, urlparse(cp["url"]).port, cp["service_cidr"], ferrite_bin, workdir,
            [namespace], host_ports=[cp["postgres"]["port"], cp["s3"]["port"]],
        )
        try:
            node.start()
            kubectl(cp, "create", "namespace", namespace)
            kubectl(cp, "label", "namespace", namespace,
                    "pod-security.kubernetes.io/enforce=restricted")
            values = _values(cp)
            ca = None
            if tls:
                ca = _tls_secret(cp, namespace, workdir / "certs")
                values["tls"] = {"enabled": True, "existingSecret": TLS_SECRET}
            (workdir / "values.yaml").write_text(yaml.safe_dump(values))
            out = _helm(helm_bin, cp, "install", RELEASE, str(CHART), "--namespace",
                        namespace, "-f", str(workdir / "values.yaml"))
            assert out.returncode == 0, f"helm install failed:\n{out.stderr}"
            yield Release(cp, node, namespace, ca)
        finally:
            node.stop()
            if os.environ.get("FERRITE_E2E_KEEP"):
                print(f"\nkept the pods' logs and volumes in {workdir}")
            else:
                shutil.rmtree(workdir, ignore_errors=True)


def _tls_secret(cp, namespace, certs_dir):
    """A CA and a certificate for every tier's Service names (no addresses), as the
    kubernetes.io/tls-style Secret the chart takes; returns the CA's path."""
    names = [
        f"{FULLNAME}-{tier}{suffix}"
        for tier in scenario.START_REPLICAS
        for suffix in ("", f".{namespace}", f".{namespace}.svc", f".{namespace}.svc.cluster.local")
    ]
    out = subprocess.run([str(find_testkit_bin("ferrite-test-certs")), str(certs_dir), *names],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    files = json.loads(out.stdout)
    kubectl(cp, "-n", namespace, "create", "secret", "generic", TLS_SECRET,
            f"--from-file=tls.crt={files['cert']}", f"--from-file=tls.key={files['key']}",
            f"--from-file=ca.crt={files['ca']}")
    return files["ca"]


def _helm(helm_bin, cp, *args):
    return subprocess.run(
        [str(helm_bin), "--kubeconfig", cp["kubeconfig"], *args],
        capture_output=True, text=True, timeout=300,
    )


def _values(cp):
    """The release: external PostgreSQL and MinIO at the Node's address, probes every
    second so the test does not wait on them, and what the scenario needs (the tiers at
    their starting sizes, fast persisting and compaction)."""
    pg, s3 = cp["postgres"], cp["s3"]
    dsn = pg["dsn"].replace("127.0.0.1", standin.NODE_IP)
    return {
        "image": {"repository": "ferrite", "tag": "e2e"},
        "probes": {"readiness": {"periodSeconds": 1, "timeoutSeconds": 1, "failureThreshold": 1}},
        "postgresql": {"dsn": dsn},
        "objectStore": {"type": "s3", "s3": {
            "bucket": s3["bucket"], "endpoint": f"http://{standin.NODE_IP}:{s3['port']}",
            "region": s3["region"], "allowHttp": True,
            "accessKeyId": s3["access_key"], "secretAccessKey": s3["secret_key"],
        }},
        **scenario.release_values(),
    }


class Release(scenario.KubectlCluster):
    """The installed release, driven through kubectl as on a real cluster; `describe` adds
    the pods' logs and what the stand-in kubelet saw."""

    pod_timeout_s = POD_TIMEOUT_S

    def __init__(self, cp, node, namespace, ca):
        super().__init__([str(kubectl_path()), "--kubeconfig", cp["kubeconfig"]], namespace,
                         RELEASE)
        self.cp, self.node, self.ca = cp, node, ca

    def describe(self):
        lines = [self.kubectl("get", "pods", "-o", "wide")]
        for tier in scenario.START_REPLICAS:
            for p in self.pods(tier):
                lines.append(self.node.log_of(p["metadata"]["name"])[-3000:])
        lines.append("stand-in kubelet errors:\n" + "\n".join(self.node.errors[-30:]))
        lines.append("and retries:\n" + "\n".join(self.node.warnings[-30:]))
        return "\n".join(lines)

    def follow_logs(self, tier):
        """Nothing to do: the stand-in kubelet keeps every pod's log until the test ends."""

    def tier_logs(self, tier):
        return self.node.pod_logs(self.namespace, f"{self.fullname}-{tier}-")

    def front_door(self):
        """The router Service's cluster IP, and sessions that reach it: under TLS they
        check the certificate against the Service's DNS name, as a client in the cluster
        that dials that name would."""
        svc = json.loads(self.kubectl("get", "service", f"{self.fullname}-router", "-o", "json"))
        scheme = "https" if self.ca else "http"
        url = f"{scheme}://{svc['spec']['clusterIP']}:{svc['spec']['ports'][0]['port']}"
        if not self.ca:
            return url, scenario.new_session
        name = f"{self.fullname}-router.{self.namespace}.svc"
        return url, lambda: scenario.tls_session(self.ca, name)


def test_scaling_and_rolling_restarts_under_load_keep_every_acknowledged_write_once(
    release, capsys
):
    def report(figures):
        with capsys.disabled():
            print(f"\nend to end on the stand-in kubelet ({release.namespace}): {figures}")

    url, session = release.front_door()
    scenario.run(release, lambda: url, release.token(), report, session)
    assert not release.node.errors, "stand-in kubelet errors:\n" + "\n".join(release.node.errors)
