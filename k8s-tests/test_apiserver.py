"""The chart against a real Kubernetes control plane: etcd, kube-apiserver and
kube-controller-manager v1.35 (built by deploy/dev/install-kube.sh, started by the testkit's
`ferrite-test-kube`). Every object of every value set is created with server-side apply and
strict field validation, so the API server checks it against its OpenAPI schema; each value
set goes to its own namespace, which enforces the `restricted` Pod Security Standard, and the
controllers must then create every workload's Pods (a Pod that breaks the standard is
refused). There is no kubelet: the Pods stay Pending.
"""

import json
import time

import pytest
import yaml

from conftest import CHART, RELEASE, VARIANTS, ControlPlane, kubectl

# Custom resources whose definitions a bare control plane does not have.
NEEDS_CRD = {"ServiceMonitor"}


@pytest.fixture(scope="module")
def control_plane():
    with ControlPlane() as info:
        yield info


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_the_api_server_accepts_every_object_and_the_controllers_make_the_pods(
    helm, control_plane, variant
):
    namespace = f"chart-{variant}"
    args = ["template", RELEASE, str(CHART), "--namespace", namespace, *helm.values_args(variant)]
    rendered = helm.run(*args)
    assert rendered.returncode == 0, rendered.stderr
    docs = [d for d in yaml.safe_load_all(rendered.stdout) if d]
    kept = [d for d in docs if d["kind"] not in NEEDS_CRD]
    assert kept, "nothing rendered"

    kubectl(control_plane, "create", "namespace", namespace)
    kubectl(
        control_plane, "label", "namespace", namespace,
        "pod-security.kubernetes.io/enforce=restricted",
    )
    kubectl(
        control_plane, "apply", "--server-side", "--field-manager=ferrite-chart-test",
        "--validate=strict", "-f", "-",
        stdin=yaml.safe_dump_all(kept),
    )
    for doc in kept:
        kind, name = doc["kind"], doc["metadata"]["name"]
        got = json.loads(kubectl(control_plane, "get", kind, name, "-n", namespace, "-o", "json"))
        assert got["metadata"]["name"] == name

    # Every Deployment and StatefulSet gets its first Pod: its template passed the API
    # server's validation and the namespace's `restricted` Pod Security admission.
    workloads = [d for d in kept if d["kind"] in ("Deployment", "StatefulSet")]
    assert workloads
    deadline = time.monotonic() + 60
    missing = workloads
    while missing and time.monotonic() < deadline:
        pods = json.loads(kubectl(control_plane, "get", "pods", "-n", namespace, "-o", "json"))
        owners = {
            ref["name"]
            for pod in pods["items"]
            for ref in pod["metadata"].get("ownerReferences", [])
        }
        # A Deployment's Pods belong to its ReplicaSet, named <deployment>-<hash>.
        missing = [
            w for w in workloads
            if not any(o == w["metadata"]["name"] or o.startswith(w["metadata"]["name"] + "-")
                       for o in owners)
        ]
        if missing:
            time.sleep(0.5)
    if missing:
        events = kubectl(control_plane, "get", "events", "-n", namespace)
        pytest.fail(
            f"no Pod for {[w['metadata']['name'] for w in missing]} in 60 s; events:\n{events}"
        )
