"""The chart end to end on a real control plane, with real pods.

`helm install` puts the release into a control plane of this machine (etcd, kube-apiserver,
kube-controller-manager: `ferrite-test-kube --with-backing`, which also starts the
PostgreSQL and MinIO the release uses as external services). The Deployment and StatefulSet
controllers make the Pods; the stand-in kubelet of kubelet.py runs each as a real `ferrite`
process in a network namespace with the Pod's IP and reports its readiness, and proxies the
Services' cluster IPs.

Then, under a steady write load through the router Service's cluster IP and a query load
beside it: the ingester StatefulSet is scaled 2 -> 3 -> 1 -> 2, the querier and router
Deployments up and down, and every tier restarted with `kubectl rollout restart`. At the end
every acknowledged write is present exactly once, and no query got a non-retryable error.
The figures (writes refused, the longest pause between acknowledgements) are printed.
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
from conftest import CHART, ControlPlane, kubectl, kubectl_path

NAMESPACE = "e2e"
RELEASE = "e2e"
POD_TIMEOUT_S = 180


def _pytest_fail_without_root():
    if os.geteuid() != 0:
        pytest.fail(
            "the end-to-end test runs pods in network namespaces and needs root",
            pytrace=False,
        )


@pytest.fixture(scope="module")
def release(helm_bin, ferrite_bin):
    _pytest_fail_without_root()
    with ControlPlane(backing=True) as cp:
        api = standin.Api(cp["url"], cp["token"], cp["ca"])
        workdir = tempfile.mkdtemp(prefix="ferrite-kubelet-")
        node = standin.Kubelet(
            api, urlparse(cp["url"]).port, cp["service_cidr"], ferrite_bin, workdir,
            [NAMESPACE], host_ports=[cp["postgres"]["port"], cp["s3"]["port"]],
        )
        try:
            node.start()
            kubectl(cp, "create", "namespace", NAMESPACE)
            kubectl(cp, "label", "namespace", NAMESPACE,
                    "pod-security.kubernetes.io/enforce=restricted")
            values = Path(workdir) / "values.yaml"
            values.write_text(yaml.safe_dump(_values(cp)))
            out = _helm(helm_bin, cp, "install", RELEASE, str(CHART), "--namespace",
                        NAMESPACE, "-f", str(values))
            assert out.returncode == 0, f"helm install failed:\n{out.stderr}"
            yield Release(cp, node)
        finally:
            node.stop()
            if os.environ.get("FERRITE_E2E_KEEP"):
                print(f"\nkept the pods' logs and volumes in {workdir}")
            else:
                shutil.rmtree(workdir, ignore_errors=True)


def _helm(helm_bin, cp, *args):
    return subprocess.run(
        [str(helm_bin), "--kubeconfig", cp["kubeconfig"], *args],
        capture_output=True, text=True, timeout=300,
    )


def _values(cp):
    """The release: external PostgreSQL and MinIO at the Node's address, probes every
    second so the test does not wait on them, the tiers at their starting sizes."""
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
        **{tier: {"replicas": n} for tier, n in scenario.START_REPLICAS.items()},
    }


class Release(scenario.KubectlCluster):
    """The installed release, driven through kubectl as on a real cluster; `describe` adds
    the pods' logs and what the stand-in kubelet saw."""

    pod_timeout_s = POD_TIMEOUT_S

    def __init__(self, cp, node):
        super().__init__([str(kubectl_path()), "--kubeconfig", cp["kubeconfig"]], NAMESPACE,
                         RELEASE)
        self.cp, self.node = cp, node

    def describe(self):
        lines = [self.kubectl("get", "pods", "-o", "wide")]
        for tier in scenario.START_REPLICAS:
            for p in self.pods(tier):
                lines.append(self.node.log_of(p["metadata"]["name"])[-3000:])
        lines.append("stand-in kubelet errors:\n" + "\n".join(self.node.errors[-30:]))
        lines.append("and retries:\n" + "\n".join(self.node.warnings[-30:]))
        return "\n".join(lines)

    def front_door(self):
        svc = json.loads(self.kubectl("get", "service", f"{self.fullname}-router", "-o", "json"))
        return f"http://{svc['spec']['clusterIP']}:{svc['spec']['ports'][0]['port']}"


def test_scaling_and_rolling_restarts_under_load_keep_every_acknowledged_write_once(
    release, capsys
):
    def report(figures):
        with capsys.disabled():
            print(f"\nend to end on the stand-in kubelet: {figures}")

    url = release.front_door()
    scenario.run(release, lambda: url, release.token(), report)
    assert not release.node.errors, "stand-in kubelet errors:\n" + "\n".join(release.node.errors)
