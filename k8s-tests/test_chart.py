"""Static tests of the Helm chart helm/ferrite: `helm lint` and `helm template` of each value
set in k8s-tests/values/ (see conftest.VARIANTS), the rendered objects checked against each
other and against the ferrite binary's own `--help`.
"""

import base64
import json
import re
import shutil
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

from conftest import CHART, NAMESPACE, REPO, TIERS, VALUES, VARIANTS, parse_run_defaults

WORKLOAD_KINDS = ("Deployment", "StatefulSet")
TIER_LABEL = "app.kubernetes.io/component"

# FERRITE_* variables ferrite reads that are not `ferrite run` flags, and where it reads them.
NOT_FLAGS = {"FERRITE_LOG": REPO / "services" / "telemetry" / "src" / "lib.rs"}

# Secrets the value sets name but the chart does not make (an operator creates them).
EXTERNAL_SECRETS = {
    "tls": {"ferrite-tls": {"tls.crt", "tls.key", "ca.crt"}},
    "existing-secrets": {
        "ferrite-admin": {"token"},
        "ferrite-postgres": {"url"},
        "ferrite-s3": {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"},
    },
}

# The variants that configure a database and an object store (the defaults leave both to
# the user, and NOTES says so).
CONFIGURED = [v for v in VARIANTS if v != "defaults"]

# Tiers without a PodDisruptionBudget: one compactor works at a time, and a budget for one
# pod either protects nothing or blocks node drains.
WITHOUT_PDB = {"compactor"}
# The tiers that read and write the object store.
OBJECT_STORE_TIERS = ("ingester", "querier", "compactor")


# --- helpers ------------------------------------------------------------------------------


def of_kind(docs, *kinds):
    return [d for d in docs if d["kind"] in kinds]


def named(docs, kind, name):
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def tier_of(doc):
    return doc["metadata"]["labels"].get(TIER_LABEL)


def ferrite_workloads(docs, tiers=TIERS):
    """tier -> its workload (the dev bundle's PostgreSQL and MinIO are not tiers)."""
    found = {}
    for w in of_kind(docs, *WORKLOAD_KINDS):
        if tier_of(w) in TIERS:
            assert tier_of(w) not in found, f"two workloads for tier {tier_of(w)}"
            found[tier_of(w)] = w
    assert set(found) == set(tiers), f"workloads found for {sorted(found)}, want {tiers}"
    return found


def pod_spec(workload):
    return workload["spec"]["template"]["spec"]


def containers(workload):
    spec = pod_spec(workload)
    return spec.get("initContainers", []) + spec["containers"]


def env_of(container):
    return {e["name"]: e for e in container.get("env", [])}


def env_value(container, name):
    entry = env_of(container).get(name)
    assert entry is not None, f"{container['name']} has no {name}"
    assert "value" in entry, f"{container['name']}: {name} is not a literal value"
    return entry["value"]


def selects(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def is_tls(docs):
    router = ferrite_workloads(docs)["router"]
    return "FERRITE_TLS_CERT" in env_of(pod_spec(router)["containers"][0])


def secret_keys(secret):
    return set(secret.get("data") or {}) | set(secret.get("stringData") or {})


def secret_value(secret, key):
    if key in (secret.get("stringData") or {}):
        return secret["stringData"][key]
    return base64.b64decode(secret["data"][key]).decode()


# --- lint ---------------------------------------------------------------------------------


@pytest.mark.parametrize("strict", [False, True], ids=["lint", "lint-strict"])
def test_helm_lint_passes(helm, variant, strict):
    args = ["lint", str(CHART), "--namespace", NAMESPACE, *helm.values_args(variant)]
    out = helm.run(*(args + (["--strict"] if strict else [])))
    assert out.returncode == 0, f"{' '.join(args)}:\n{out.stdout}{out.stderr}"
    assert "0 chart(s) failed" in out.stdout, out.stdout


# --- workloads ----------------------------------------------------------------------------


def test_every_workload_runs_an_existing_ferrite_command(helm, variant, run_commands):
    """One workload per `ferrite run` service, none for a command the binary lacks, and
    none of its services left out (a new `ferrite run` command needs its tier here)."""
    assert run_commands == set(TIERS), f"`ferrite run` has {sorted(run_commands)}, the chart {TIERS}"
    docs = helm.render(variant)
    for tier, w in ferrite_workloads(docs).items():
        (c,) = pod_spec(w)["containers"]
        assert c["args"] == ["run", tier], f"{w['metadata']['name']}: args {c['args']}"
        assert tier in run_commands, f"`ferrite run {tier}` does not exist"
    for w in of_kind(docs, *WORKLOAD_KINDS):
        for c in containers(w):
            args = c.get("args") or []
            if args[:1] == ["run"]:
                assert args[1] in run_commands, f"{w['metadata']['name']} runs `ferrite run {args[1]}`"


def test_every_container_is_probed_bounded_and_locked_down(helm, variant):
    docs = helm.render(variant)
    workloads = of_kind(docs, *WORKLOAD_KINDS)
    assert workloads
    for w in workloads:
        spec = pod_spec(w)
        pod_sc = spec.get("securityContext", {})
        for c in containers(w):
            where = f"{w['kind']} {w['metadata']['name']} container {c['name']}"
            assert c.get("readinessProbe"), f"{where}: no readinessProbe"
            assert c.get("livenessProbe"), f"{where}: no livenessProbe"
            res = c.get("resources", {})
            for bound in ("requests", "limits"):
                for r in ("cpu", "memory"):
                    assert res.get(bound, {}).get(r), f"{where}: no resources.{bound}.{r}"
            sc = {**pod_sc, **c.get("securityContext", {})}
            assert sc.get("runAsNonRoot") is True, f"{where}: runAsNonRoot is not true"
            assert isinstance(sc.get("runAsUser"), int) and sc["runAsUser"] > 0, f"{where}: no fixed non-root runAsUser"
            assert isinstance(sc.get("runAsGroup"), int) and sc["runAsGroup"] > 0, f"{where}: no fixed non-root runAsGroup"
            assert sc.get("readOnlyRootFilesystem") is True, f"{where}: root filesystem is writable"
            assert sc.get("allowPrivilegeEscalation") is False, f"{where}: privilege escalation allowed"
            assert sc.get("privileged") in (None, False), f"{where}: privileged"
            caps = sc.get("capabilities", {})
            assert "ALL" in caps.get("drop", []), f"{where}: capabilities not dropped"
            assert not caps.get("add"), f"{where}: adds capabilities {caps.get('add')}"
            assert sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", f"{where}: no RuntimeDefault seccomp profile"
            # A read-only root needs a writable /tmp.
            tmp = [m for m in c.get("volumeMounts", []) if m["mountPath"] == "/tmp"]
            assert tmp, f"{where}: no /tmp mount"
            vol = {v["name"]: v for v in spec.get("volumes", [])}[tmp[0]["name"]]
            assert "emptyDir" in vol, f"{where}: /tmp is not an emptyDir"


def test_ferrite_probes_use_ready_and_health(helm, variant):
    docs = helm.render(variant)
    scheme = "HTTPS" if is_tls(docs) else "HTTP"
    for tier, w in ferrite_workloads(docs).items():
        (c,) = pod_spec(w)["containers"]
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        for probe, path in (("readinessProbe", "/ready"), ("livenessProbe", "/health")):
            get = c[probe]["httpGet"]
            assert get["path"] == path, f"{tier} {probe} path {get['path']}"
            assert get["scheme"] == scheme, f"{tier} {probe} scheme {get['scheme']}"
            assert get["port"] in ports or get["port"] in ports.values(), f"{tier} {probe} port {get['port']}"


def test_ferrite_pods_run_as_the_image_user(helm, variant):
    """The chart's uid/gid are the ones deploy/Dockerfile creates and switches to."""
    dockerfile = (REPO / "deploy" / "Dockerfile").read_text()
    users = re.findall(r"^USER (\d+):(\d+)\s*$", dockerfile, re.M)
    assert len(users) == 1, "deploy/Dockerfile should end in one USER uid:gid"
    uid, gid = map(int, users[0])
    for tier, w in ferrite_workloads(helm.render(variant)).items():
        spec = pod_spec(w)
        sc = {**spec["securityContext"], **spec["containers"][0]["securityContext"]}
        assert (sc["runAsUser"], sc["runAsGroup"]) == (uid, gid), f"{tier} runs as {sc['runAsUser']}:{sc['runAsGroup']}"
        assert spec["securityContext"].get("fsGroup") == gid, f"{tier}: fsGroup is not {gid}"


def test_pods_get_no_service_link_variables(helm, variant):
    """A release named `ferrite` has Services `ferrite-router`, `ferrite-catalog`, ...: their
    service links (FERRITE_ROUTER_PORT=tcp://...) would land among ferrite's own variables."""
    for tier, w in ferrite_workloads(helm.render(variant)).items():
        assert pod_spec(w).get("enableServiceLinks") is False, f"{tier} gets service links"


def test_image_defaults_to_the_app_version(helm):
    app_version = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    for w in ferrite_workloads(helm.render("defaults")).values():
        assert pod_spec(w)["containers"][0]["image"] == f"ferrite:{app_version}"
    for w in ferrite_workloads(helm.render("defaults", "--set", "image.tag=x1", "--set", "image.repository=r.example/f")).values():
        assert pod_spec(w)["containers"][0]["image"] == "r.example/f:x1"


# --- env: every variable is a real flag ---------------------------------------------------


def test_every_ferrite_variable_is_a_flag_of_its_tier(helm, variant, tier_cli):
    """Each FERRITE_* variable a tier's container gets is one `ferrite run <tier> --help`
    lists (so a renamed or misspelt flag fails here, not in a pod)."""
    problems = []
    for tier, w in ferrite_workloads(helm.render(variant)).items():
        (c,) = pod_spec(w)["containers"]
        names = [e["name"] for e in c.get("env", [])]
        assert len(names) == len(set(names)), f"{tier}: duplicate env entries {names}"
        flags, _ = tier_cli[tier]
        unknown = sorted(n for n in names if n.startswith("FERRITE_") and n not in flags and n not in NOT_FLAGS)
        if unknown:
            problems.append(f"ferrite run {tier} has no flag for {', '.join(unknown)}")
    assert not problems, "; ".join(problems)


def test_variables_that_are_not_flags_are_read_by_ferrite():
    for name, source in NOT_FLAGS.items():
        assert name in source.read_text(), f"{name} is no longer read in {source}"


@pytest.mark.parametrize("variant", CONFIGURED)
def test_every_required_flag_is_set(helm, variant, tier_cli):
    for tier, w in ferrite_workloads(helm.render(variant)).items():
        (c,) = pod_spec(w)["containers"]
        _, required = tier_cli[tier]
        missing = sorted(required - set(env_of(c)))
        assert not missing, f"ferrite run {tier} requires {', '.join(missing)}"


def test_the_defaults_leave_database_and_bucket_unset(helm, tier_cli):
    """Without configuration the chart sets no empty DSN or bucket: the processes then say
    what is missing, and NOTES (test below) tells the user what to set."""
    workloads = ferrite_workloads(helm.render("defaults"))
    assert "FERRITE_CATALOG_DSN" not in env_of(pod_spec(workloads["catalog"])["containers"][0])
    for tier in OBJECT_STORE_TIERS:
        assert "FERRITE_BUCKET" not in env_of(pod_spec(workloads[tier])["containers"][0])


# --- RBAC ---------------------------------------------------------------------------------


def test_rbac_grants_only_endpointslice_reads_to_routers_and_queriers(helm, variant):
    docs = helm.render(variant)
    assert not of_kind(docs, "ClusterRole", "ClusterRoleBinding"), "no cluster-wide RBAC"
    roles = {r["metadata"]["name"]: r for r in of_kind(docs, "Role")}
    assert roles
    for name, role in roles.items():
        for rule in role["rules"]:
            for field in ("apiGroups", "resources", "verbs", "resourceNames", "nonResourceURLs"):
                values = rule.get(field, [])
                assert not any("*" in v for v in values), f"Role {name}: wildcard in {field}: {values}"
            assert "secrets" not in rule.get("resources", []), f"Role {name} reaches secrets"
            assert rule.get("apiGroups") == ["discovery.k8s.io"], f"Role {name}: apiGroups {rule.get('apiGroups')}"
            assert rule.get("resources") == ["endpointslices"], f"Role {name}: resources {rule.get('resources')}"
            assert sorted(rule.get("verbs")) == ["get", "list", "watch"], f"Role {name}: verbs {rule.get('verbs')}"

    workloads = ferrite_workloads(docs)
    sa_of = {tier: pod_spec(w)["serviceAccountName"] for tier, w in workloads.items()}
    bound = set()
    for rb in of_kind(docs, "RoleBinding"):
        assert rb["roleRef"]["kind"] == "Role" and rb["roleRef"]["name"] in roles, f"RoleBinding {rb['metadata']['name']} binds {rb['roleRef']}"
        for subject in rb["subjects"]:
            assert subject["kind"] == "ServiceAccount" and subject["namespace"] == NAMESPACE
            tiers = [t for t, sa in sa_of.items() if sa == subject["name"]]
            assert tiers, f"RoleBinding {rb['metadata']['name']} binds an account no pod uses: {subject['name']}"
            bound.update(tiers)
    assert bound == {"router", "querier"}, f"API access granted to {sorted(bound)}"

    accounts = {sa["metadata"]["name"]: sa for sa in of_kind(docs, "ServiceAccount")}
    for tier, w in workloads.items():
        needs_api = tier in ("router", "querier")
        assert sa_of[tier] in accounts, f"{tier} uses ServiceAccount {sa_of[tier]}, not rendered"
        assert len({sa_of[t] for t in TIERS}) == len(TIERS), "tiers share a ServiceAccount"
        assert pod_spec(w)["automountServiceAccountToken"] is needs_api, f"{tier}: automountServiceAccountToken"
        assert accounts[sa_of[tier]]["automountServiceAccountToken"] is needs_api, f"{tier}'s ServiceAccount automount"
    for w in of_kind(docs, *WORKLOAD_KINDS):
        if tier_of(w) not in TIERS:
            assert pod_spec(w).get("automountServiceAccountToken") is False, f"{w['metadata']['name']} mounts an API token"


def test_discovery_namespace_comes_from_the_pod(helm, variant):
    for tier, w in ferrite_workloads(helm.render(variant)).items():
        env = env_of(pod_spec(w)["containers"][0])
        if tier in ("router", "querier"):
            ref = env["FERRITE_K8S_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"]
            assert ref == "metadata.namespace"
        else:
            assert "FERRITE_K8S_NAMESPACE" not in env


# --- shutdown -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "settings",
    [
        [],
        ["ingester.drainTimeoutSeconds=600", "ingester.shutdownGraceSeconds=45"],
        ["ingester.drainTimeoutSeconds=1", "ingester.shutdownGraceSeconds=0", "terminationGraceMarginSeconds=1"],
    ],
    ids=["defaults", "long-drain", "minimal"],
)
def test_ingesters_outlive_their_drain(helm, settings):
    """The kubelet waits longer than an ingester's drain plus its connection grace."""
    args = [a for s in settings for a in ("--set", s)]
    docs = helm.render("defaults", *args)
    for tier, w in ferrite_workloads(docs).items():
        c = pod_spec(w)["containers"][0]
        budget = int(env_value(c, "FERRITE_SHUTDOWN_GRACE_SECONDS"))
        if tier == "ingester":
            budget += int(env_value(c, "FERRITE_DRAIN_TIMEOUT_SECONDS"))
        grace = pod_spec(w)["terminationGracePeriodSeconds"]
        assert grace > budget, f"{tier}: terminationGracePeriodSeconds {grace} <= {budget}"


def test_ingesters_keep_their_wal_on_a_volume(helm, variant):
    ingester = ferrite_workloads(helm.render(variant))["ingester"]
    assert ingester["kind"] == "StatefulSet"
    wal_dir = env_value(pod_spec(ingester)["containers"][0], "FERRITE_WAL_DIR")
    mounts = {m["mountPath"]: m["name"] for m in pod_spec(ingester)["containers"][0]["volumeMounts"]}
    assert wal_dir in mounts, "the WAL directory is not a mounted volume"
    claims = [t["metadata"]["name"] for t in ingester["spec"].get("volumeClaimTemplates", [])]
    assert mounts[wal_dir] in claims, "the WAL volume is not a volumeClaimTemplate"


# --- Services, selectors, peers -----------------------------------------------------------


def test_services_select_their_pods(helm, variant):
    docs = helm.render(variant)
    workloads = of_kind(docs, *WORKLOAD_KINDS)
    for w in workloads:
        labels = w["spec"]["template"]["metadata"]["labels"]
        assert selects(w["spec"]["selector"]["matchLabels"], labels), f"{w['metadata']['name']} does not select its own pods"

    services = of_kind(docs, "Service")
    by_tier = {}
    for svc in services:
        name = svc["metadata"]["name"]
        chosen = [w for w in workloads if selects(svc["spec"]["selector"], w["spec"]["template"]["metadata"]["labels"])]
        assert len(chosen) == 1, f"Service {name} selects {len(chosen)} workloads"
        (w,) = chosen
        assert tier_of(svc) == tier_of(w), f"Service {name} selects the {tier_of(w)} pods"
        port_names = {p["name"] for c in pod_spec(w)["containers"] for p in c.get("ports", [])}
        for port in svc["spec"]["ports"]:
            assert port["targetPort"] in port_names, f"Service {name} targets port {port['targetPort']}, not on the pods"
        by_tier[tier_of(svc)] = svc
    assert set(TIERS) <= set(by_tier), f"no Service for {set(TIERS) - set(by_tier)}"

    ingesters = ferrite_workloads(docs)["ingester"]
    headless = by_tier["ingester"]
    assert headless["spec"]["clusterIP"] == "None", "the ingester Service is not headless"
    assert headless["spec"]["publishNotReadyAddresses"] is False
    assert ingesters["spec"]["serviceName"] == headless["metadata"]["name"]
    # Nothing calls the compactor: its Service is there for the ServiceMonitor, with no
    # cluster IP to send traffic to.
    assert by_tier["compactor"]["spec"]["clusterIP"] == "None", "the compactor Service has a cluster IP"

    # The router's one port carries HTTP and gRPC.
    (front,) = by_tier["router"]["spec"]["ports"]
    assert front["name"] == "http"


def test_peers_are_the_tiers_services(helm, variant):
    """FERRITE_CATALOG_URL, FERRITE_INGESTERS and FERRITE_QUERIERS name the Service of the
    right tier, on the port its pods listen on, with https under TLS."""
    docs = helm.render(variant)
    workloads = ferrite_workloads(docs)
    services = {s["metadata"]["name"]: s for s in of_kind(docs, "Service")}
    scheme = "https" if is_tls(docs) else "http"
    container_port = {t: pod_spec(w)["containers"][0]["ports"][0]["containerPort"] for t, w in workloads.items()}
    bind_port = {t: int(env_value(pod_spec(w)["containers"][0], "FERRITE_BIND").rsplit(":", 1)[1]) for t, w in workloads.items()}
    assert bind_port == container_port, "FERRITE_BIND and containerPort disagree"

    wanted = {
        "router": {"FERRITE_CATALOG_URL": "catalog", "FERRITE_INGESTERS": "ingester", "FERRITE_QUERIERS": "querier"},
        "querier": {"FERRITE_CATALOG_URL": "catalog", "FERRITE_INGESTERS": "ingester", "FERRITE_QUERIERS": "querier"},
        "ingester": {"FERRITE_CATALOG_URL": "catalog"},
        "compactor": {"FERRITE_CATALOG_URL": "catalog"},
        "catalog": {},
    }
    for tier, peers in wanted.items():
        c = pod_spec(workloads[tier])["containers"][0]
        for var, peer in peers.items():
            url = urlparse(env_value(c, var))
            want_scheme = scheme if var == "FERRITE_CATALOG_URL" else f"k8s+{scheme}"
            assert url.scheme == want_scheme, f"{tier} {var}: scheme {url.scheme}, want {want_scheme}"
            svc = services.get(url.hostname)
            assert svc is not None, f"{tier} {var}: no Service {url.hostname}"
            assert tier_of(svc) == peer, f"{tier} {var}: Service {url.hostname} is the {tier_of(svc)}'s"
            (port,) = svc["spec"]["ports"]
            assert url.port == port["port"] == container_port[peer], f"{tier} {var}: port {url.port}"


def test_disruption_budgets_autoscalers_and_policies_match_their_pods(helm, variant):
    docs = helm.render(variant)
    workloads = of_kind(docs, *WORKLOAD_KINDS)
    pod_labels = {w["metadata"]["name"]: w["spec"]["template"]["metadata"]["labels"] for w in workloads}

    pdbs = of_kind(docs, "PodDisruptionBudget")
    assert {tier_of(p) for p in pdbs} == set(TIERS) - WITHOUT_PDB, "a PodDisruptionBudget per tier but the compactor"
    for pdb in pdbs:
        chosen = [n for n, l in pod_labels.items() if selects(pdb["spec"]["selector"]["matchLabels"], l)]
        assert len(chosen) == 1, f"PDB {pdb['metadata']['name']} selects {chosen}"
        assert ("minAvailable" in pdb["spec"]) != ("maxUnavailable" in pdb["spec"])

    for hpa in of_kind(docs, "HorizontalPodAutoscaler"):
        target = named(docs, hpa["spec"]["scaleTargetRef"]["kind"], hpa["spec"]["scaleTargetRef"]["name"])
        assert tier_of(target) in ("router", "querier"), "only stateless tiers autoscale"
        assert "replicas" not in target["spec"], f"{target['metadata']['name']} sets replicas under an HPA"
        assert hpa["spec"]["metrics"], "an HPA without metrics"

    for np in of_kind(docs, "NetworkPolicy"):
        chosen = [n for n, l in pod_labels.items() if selects(np["spec"]["podSelector"]["matchLabels"], l)]
        assert len(chosen) == 1, f"NetworkPolicy {np['metadata']['name']} selects {chosen}"
        for rule in np["spec"]["ingress"]:
            for peer in rule.get("from", []):
                if "podSelector" in peer and "namespaceSelector" not in peer:
                    sel = peer["podSelector"]["matchLabels"]
                    assert any(selects(sel, l) for l in pod_labels.values()), f"NetworkPolicy {np['metadata']['name']} admits pods that do not exist: {sel}"

    services = of_kind(docs, "Service")
    for sm in of_kind(docs, "ServiceMonitor"):
        sel = sm["spec"]["selector"]
        chosen = {
            tier_of(s) for s in services
            if selects(sel["matchLabels"], s["metadata"]["labels"])
            and all(s["metadata"]["labels"].get(e["key"]) in e["values"] for e in sel.get("matchExpressions", []))
        }
        assert chosen == set(TIERS), f"the ServiceMonitor scrapes {sorted(chosen)}"
        assert sm["spec"]["endpoints"][0]["port"] == "http"

    for ing in of_kind(docs, "Ingress"):
        for rule in ing["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                svc = named(docs, "Service", path["backend"]["service"]["name"])
                assert tier_of(svc) == "router", "Ingresses lead to the routers"
                assert path["backend"]["service"]["port"]["name"] in {p["name"] for p in svc["spec"]["ports"]}


def test_optional_objects_follow_their_switches(helm):
    defaults = {d["kind"] for d in helm.render("defaults")}
    for kind in ("HorizontalPodAutoscaler", "ServiceMonitor", "NetworkPolicy", "Ingress", "PersistentVolumeClaim"):
        assert kind not in defaults, f"{kind} rendered by default"
    extras = helm.render("extras")
    assert len(of_kind(extras, "Ingress")) == 2, "an HTTP and a gRPC Ingress"
    grpc = named(extras, "Ingress", "t-ferrite-grpc")
    assert grpc["metadata"]["annotations"]["nginx.ingress.kubernetes.io/backend-protocol"] == "GRPC"
    assert {np["metadata"]["name"] for np in of_kind(extras, "NetworkPolicy")} >= {f"t-ferrite-{t}" for t in TIERS}
    assert len(of_kind(helm.render("hpa"), "HorizontalPodAutoscaler")) == 2
    no_pdb = helm.render("defaults", *[a for t in set(TIERS) - WITHOUT_PDB for a in ("--set", f"{t}.pdb.enabled=false")])
    assert not of_kind(no_pdb, "PodDisruptionBudget")


PEER_URLS = ("FERRITE_CATALOG_URL", "FERRITE_INGESTERS", "FERRITE_QUERIERS", "FERRITE_S3_ENDPOINT")


def test_network_policies_admit_each_tier_s_callers_and_no_one_else(helm):
    """With NetworkPolicies on, the pods each tier (and the dev bundle's PostgreSQL and
    MinIO) admit are exactly those configured to call it (peer URLs, the S3 endpoint, the
    DSN), plus networkPolicy.extraFrom; the compactor, which nothing calls, admits no pod."""
    for extra in ([], ["--set", "compactor.enabled=false"]):
        docs = helm.render("extras", *extra)
        workloads = {w["metadata"]["name"]: w for w in of_kind(docs, *WORKLOAD_KINDS)}
        labels = {n: w["spec"]["template"]["metadata"]["labels"] for n, w in workloads.items()}
        services = {s["metadata"]["name"]: s for s in of_kind(docs, "Service")}
        secrets = {s["metadata"]["name"]: s for s in of_kind(docs, "Secret")}

        def served_by(host):
            (target,) = [n for n in workloads if selects(services[host]["spec"]["selector"], labels[n])]
            return target

        callers = {n: set() for n in workloads}
        for name, w in workloads.items():
            for e in pod_spec(w)["containers"][0].get("env", []):
                if e["name"] in PEER_URLS:
                    callers[served_by(urlparse(e["value"]).hostname)].add(name)
                elif e["name"] == "FERRITE_CATALOG_DSN":
                    ref = e["valueFrom"]["secretKeyRef"]
                    host = urlparse(secret_value(secrets[ref["name"]], ref["key"])).hostname
                    callers[served_by(host)].add(name)
        compactor = "t-ferrite-compactor"
        if not extra:
            assert compactor in callers["t-ferrite-catalog"] and compactor in callers["t-ferrite-dev-minio"]

        policies = of_kind(docs, "NetworkPolicy")
        assert {tier_of(np) for np in policies} == {tier_of(w) for w in workloads.values()}, "a NetworkPolicy per workload"
        for np in policies:
            (target,) = [n for n in workloads if selects(np["spec"]["podSelector"]["matchLabels"], labels[n])]
            admitted = set()
            for rule in np["spec"]["ingress"]:
                assert rule.get("from"), f"NetworkPolicy {np['metadata']['name']}: a rule admitting everyone"
                for peer in rule["from"]:
                    if "podSelector" in peer and "namespaceSelector" not in peer:
                        admitted |= {n for n in workloads if selects(peer["podSelector"]["matchLabels"], labels[n])}
            assert admitted == callers[target], f"NetworkPolicy {np['metadata']['name']} admits {sorted(admitted)}, its callers are {sorted(callers[target])}"
        if not extra:
            # Only networkPolicy.extraFrom (monitoring) reaches the compactor.
            extra_from = yaml.safe_load((VALUES / "extras.yaml").read_text())["networkPolicy"]["extraFrom"]
            policy = named(docs, "NetworkPolicy", compactor)
            assert [r["from"] for r in policy["spec"]["ingress"]] == [extra_from]
    alone = named(helm.render("extras", "--set", "networkPolicy.extraFrom=null"), "NetworkPolicy", "t-ferrite-compactor")
    assert alone["spec"]["ingress"] == [], "with no extraFrom the compactor admits nothing"


# --- the compactor ------------------------------------------------------------------------


def _snake(key):
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", key).upper()


def test_the_compactor_is_one_recreated_deployment(helm, variant):
    """A Deployment of one pod by default, replaced with Recreate (the old pod is gone
    before the new one starts), without a budget, API token or Role."""
    docs = helm.render(variant)
    w = ferrite_workloads(docs)["compactor"]
    assert w["kind"] == "Deployment"
    assert w["spec"]["strategy"] == {"type": "Recreate"}, w["spec"].get("strategy")
    assert w["spec"]["replicas"] == 1
    assert pod_spec(w)["automountServiceAccountToken"] is False
    assert not [p for p in of_kind(docs, "PodDisruptionBudget") if tier_of(p) == "compactor"]
    assert not [r for r in of_kind(docs, "Role", "RoleBinding") if tier_of(r) == "compactor"]
    standby = ferrite_workloads(helm.render(variant, "--set", "compactor.replicas=2"))["compactor"]
    assert standby["spec"]["replicas"] == 2 and standby["spec"]["strategy"]["type"] == "Recreate"


def test_every_compactor_setting_is_its_flag_with_ferrite_s_default(helm, tier_help):
    """compactor.config.<camelCase> sets FERRITE_<SNAKE_CASE>, a flag of `ferrite run
    compactor`; every compaction, GC and lease flag it has is there; the defaults in
    values.yaml are the binary's."""
    config = yaml.safe_load((CHART / "values.yaml").read_text())["compactor"]["config"]
    defaults = parse_run_defaults(tier_help["compactor"])
    own = {v for v in re.findall(r"\[env: (FERRITE_[A-Z0-9_]+)", tier_help["compactor"])
           if re.match(r"FERRITE_(COMPACTION|COMPACTOR|GC)_", v)}
    assert {f"FERRITE_{_snake(k)}" for k in config} == own, "compactor.config and the binary's compaction flags differ"
    (c,) = pod_spec(ferrite_workloads(helm.render("defaults"))["compactor"])["containers"]
    for key, value in config.items():
        var = f"FERRITE_{_snake(key)}"
        assert float(defaults[var]) == value, f"compactor.config.{key}: {value}, ferrite's default {defaults[var]}"
        assert float(env_value(c, var)) == value, f"{var} renders as {env_value(c, var)}"


@pytest.mark.parametrize(
    "flag, setting, want",
    [
        ("--set-json", "compactor.config.compactorLeaseSeconds=2.5", "2.5"),  # a values file's float
        ("--set", "compactor.config.compactorLeaseSeconds=0.25", "0.25"),  # --set: the string "0.25"
        ("--set-json", "compactor.config.gcGraceSeconds=86400000", "86400000"),  # not 8.64e+07
        ("--set-json", "compactor.config.compactionColdSeconds=0", "0"),
        ("--set-json", "compactor.config.compactionTargetFileBytes=17179869184", "17179869184"),
        ("--set", "compactor.config.compactionMemoryBytes=4294967296", "4294967296"),
    ],
)
def test_compactor_settings_render_as_ferrite_reads_them(helm, flag, setting, want):
    """Whole numbers without an exponent (values files make every number a float) and
    fractions as given, whichever way they were set."""
    key, _, _ = setting.partition("=")
    (c,) = pod_spec(ferrite_workloads(helm.render("defaults", flag, setting))["compactor"])["containers"]
    assert env_value(c, f"FERRITE_{_snake(key.rsplit('.', 1)[1])}") == want


def test_the_compactor_reaches_the_catalog_and_objects_as_the_querier_does(helm, variant):
    """Same catalog, object store (and its Secrets and shared volume), token and TLS files."""
    workloads = ferrite_workloads(helm.render(variant))
    querier, compactor = (pod_spec(workloads[t]) for t in ("querier", "compactor"))
    shared = re.compile(r"FERRITE_(CATALOG_URL|OBJECT_STORE.*|BUCKET|S3_.*|ADMIN_TOKEN_FILE|WITHOUT_AUTH|TLS_.*|LOG|BIND)$")
    q_env = {n: e for n, e in env_of(querier["containers"][0]).items() if shared.match(n)}
    c_env = {n: e for n, e in env_of(compactor["containers"][0]).items() if shared.match(n)}
    assert c_env == q_env
    assert compactor["containers"][0]["volumeMounts"] == querier["containers"][0]["volumeMounts"]
    assert compactor["volumes"] == querier["volumes"]


@pytest.mark.parametrize("variant", ["defaults", "extras", "file-store"])
def test_compactor_enabled_false_renders_no_compactor(helm, variant):
    docs = helm.render(variant, "--set", "compactor.enabled=false")
    ferrite_workloads(docs, tiers=tuple(t for t in TIERS if t != "compactor"))
    assert not [d for d in docs if tier_of(d) == "compactor" or "compactor" in d["metadata"]["name"]]
    for np in of_kind(docs, "NetworkPolicy"):
        for rule in np["spec"]["ingress"]:
            for peer in rule.get("from", []):
                assert peer.get("podSelector", {}).get("matchLabels", {}).get(TIER_LABEL) != "compactor", np["metadata"]["name"]


# --- Secrets ------------------------------------------------------------------------------


def test_every_secret_reference_resolves(helm, variant):
    """Each secretKeyRef and Secret volume names a Secret the chart renders (with that key)
    or one the value set says exists outside the chart."""
    docs = helm.render(variant)
    rendered = {s["metadata"]["name"]: secret_keys(s) for s in of_kind(docs, "Secret")}
    known = {**EXTERNAL_SECRETS.get(variant, {}), **rendered}
    for w in of_kind(docs, *WORKLOAD_KINDS):
        where = w["metadata"]["name"]
        for c in containers(w):
            for e in c.get("env", []):
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["name"] in known, f"{where} {e['name']}: no Secret {ref['name']}"
                    assert ref["key"] in known[ref["name"]], f"{where} {e['name']}: Secret {ref['name']} has no key {ref['key']}"
        for v in pod_spec(w).get("volumes", []):
            if "secret" in v:
                name = v["secret"]["secretName"]
                assert name in known, f"{where} volume {v['name']}: no Secret {name}"
                for item in v["secret"].get("items", []):
                    assert item["key"] in known[name], f"{where} volume {v['name']}: Secret {name} has no key {item['key']}"
    if variant == "existing-secrets":
        assert not of_kind(docs, "Secret"), "existing Secrets are used, none made"


def test_the_generated_admin_token_is_long_and_random(helm):
    docs = helm.render("defaults")
    token = secret_value(named(docs, "Secret", "t-ferrite-admin-token"), "admin-token")
    assert re.fullmatch(r"[A-Za-z0-9]{64}", token), "64 random letters and digits"
    again = helm.render("defaults", "--set-string", "commonLabels.render=again")
    assert secret_value(named(again, "Secret", "t-ferrite-admin-token"), "admin-token") != token
    # Every tier reads the same file from the same Secret.
    for tier, w in ferrite_workloads(docs).items():
        (c,) = pod_spec(w)["containers"]
        path = env_value(c, "FERRITE_ADMIN_TOKEN_FILE")
        mount = [m for m in c["volumeMounts"] if path.startswith(m["mountPath"] + "/")]
        assert len(mount) == 1, f"{tier}: {path} is not on a mounted volume"
        vol = {v["name"]: v for v in pod_spec(w)["volumes"]}[mount[0]["name"]]
        assert vol["secret"]["secretName"] == "t-ferrite-admin-token"


def test_auth_off_is_explicit(helm):
    for w in ferrite_workloads(helm.render("defaults", "--set", "auth.enabled=false")).values():
        env = env_of(pod_spec(w)["containers"][0])
        assert env["FERRITE_WITHOUT_AUTH"]["value"] == "true"
        assert "FERRITE_ADMIN_TOKEN_FILE" not in env


def test_the_dev_bundle_is_wired_to_the_catalog_and_object_store(helm):
    docs = helm.render("dev")
    workloads = ferrite_workloads(docs)
    dev_secret = named(docs, "Secret", "t-ferrite-dev")

    catalog = pod_spec(workloads["catalog"])["containers"][0]
    ref = env_of(catalog)["FERRITE_CATALOG_DSN"]["valueFrom"]["secretKeyRef"]
    dsn = urlparse(secret_value(named(docs, "Secret", ref["name"]), ref["key"]))
    pg = named(docs, "Service", dsn.hostname)
    assert tier_of(pg) == "dev-postgresql"
    assert dsn.port == pg["spec"]["ports"][0]["port"]
    pg_pod = pod_spec(named(docs, "Deployment", "t-ferrite-dev-postgresql"))["containers"][0]
    pg_env = env_of(pg_pod)
    assert dsn.username == pg_env["POSTGRES_USER"]["value"] and dsn.path == "/" + pg_env["POSTGRES_DB"]["value"]
    pw_ref = pg_env["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert dsn.password == secret_value(named(docs, "Secret", pw_ref["name"]), pw_ref["key"])

    minio = pod_spec(named(docs, "Deployment", "t-ferrite-dev-minio"))["containers"][0]
    for tier in OBJECT_STORE_TIERS:
        c = pod_spec(workloads[tier])["containers"][0]
        endpoint = urlparse(env_value(c, "FERRITE_S3_ENDPOINT"))
        s3 = named(docs, "Service", endpoint.hostname)
        assert tier_of(s3) == "dev-minio" and endpoint.port == s3["spec"]["ports"][0]["port"]
        assert env_value(c, "FERRITE_S3_ALLOW_HTTP") == "true"
        bucket = env_value(c, "FERRITE_BUCKET")
        assert f"mkdir -p /data/{bucket} " in minio["args"][0], "MinIO does not create the bucket"
        for var, minio_var in (("FERRITE_S3_ACCESS_KEY_ID", "MINIO_ROOT_USER"), ("FERRITE_S3_SECRET_ACCESS_KEY", "MINIO_ROOT_PASSWORD")):
            assert env_of(c)[var]["valueFrom"] == env_of(minio)[minio_var]["valueFrom"], f"{tier} {var}"
    assert dev_secret["metadata"]["name"] == "t-ferrite-dev"

    for variant in ("defaults", "tls", "existing-secrets", "hpa"):
        assert not [d for d in helm.render(variant) if "dev" in d["metadata"]["name"]], f"dev objects in {variant}"


# --- the schema ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "setting, field",
    [
        ("router.replicas=two", "/router/replicas"),  # wrong type
        ("bogus=1", "'bogus'"),  # unknown top-level key
        ("router.replicaz=3", "'replicaz'"),  # unknown key in a tier block
        ("ingester.replicas=-1", "/ingester/replicas"),  # negative replica count
        ("objectStore.type=gcs", "/objectStore/type"),  # unknown enum
        ("router.service.type=Ingress", "/router/service/type"),
        ("image.pullPolicy=Sometimes", "/image/pullPolicy"),
        ("tls.enabled=true", "/tls/existingSecret"),  # TLS needs its Secret
        ("ingester.drainTimeoutSeconds=0", "/ingester/drainTimeoutSeconds"),
        ("postgresql.dsn=mysql://db/ferrite", "/postgresql/dsn"),
        ("objectStore.s3.accessKeyId=AKIA", "/objectStore/s3/secretAccessKey"),  # keys go in pairs
        ("dev.minio.bucket=Not_A_Bucket", "/dev/minio/bucket"),
        ("objectStore.type=file", "/objectStore/file/existingClaim"),  # file needs its volume
        ("router.autoscaling.enabled=true,router.autoscaling.targetCPUUtilizationPercentage=null", "/router/autoscaling"),
        ("compactor.enabled=yes", "/compactor/enabled"),
        ("compactor.replicas=0", "/compactor/replicas"),  # none: compactor.enabled=false
        ("compactor.pdb.enabled=true", "'pdb'"),  # the compactor has no budget
        ("compactor.config.leaseSeconds=3", "'leaseSeconds'"),  # unknown setting
        ("compactor.config.compactionIntervalSeconds=0", "/compactor/config/compactionIntervalSeconds"),
        ("compactor.config.compactorLeaseSeconds=-1", "/compactor/config/compactorLeaseSeconds"),
        ("compactor.config.gcOrphanScanSeconds=0.0", "/compactor/config/gcOrphanScanSeconds"),  # --set: a string
        ("compactor.config.gcGraceSeconds=-5", "/compactor/config/gcGraceSeconds"),
        ("compactor.config.compactionColdSeconds=soon", "/compactor/config/compactionColdSeconds"),
        ("compactor.config.compactionL0TriggerFiles=0", "/compactor/config/compactionL0TriggerFiles"),
        ("compactor.config.compactionL1TriggerFiles=1", "/compactor/config/compactionL1TriggerFiles"),
        ("compactor.config.compactionTargetFileBytes=0", "/compactor/config/compactionTargetFileBytes"),
        ("compactor.config.compactionMemoryBytes=1.5", "/compactor/config/compactionMemoryBytes"),
    ],
)
def test_the_schema_rejects_bad_values_naming_the_field(helm, setting, field):
    out = helm.run("template", "t", str(CHART), "--set", setting)
    assert out.returncode != 0, f"--set {setting} was accepted"
    assert "don't meet the specifications of the schema" in out.stderr, out.stderr
    assert field in out.stderr, f"the error does not name {field}:\n{out.stderr}"


def test_the_schema_closes_the_top_level_and_the_tier_blocks():
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert schema["additionalProperties"] is False
    for tier in TIERS:
        assert schema["properties"][tier]["additionalProperties"] is False, tier
    assert schema["properties"]["compactor"]["properties"]["config"]["additionalProperties"] is False
    # Every default value has a schema entry (closed objects would reject it otherwise,
    # but this names the key).
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert set(values) == set(schema["properties"]), set(values) ^ set(schema["properties"])


@pytest.mark.parametrize(
    "settings, message",
    [
        (["router.replication=4"], "router.replication (4) exceeds ingester.replicas (3)"),
        (["router.replication=2", "ingester.replicas=1"], "router.replication (2) exceeds ingester.replicas (1)"),
        (["querier.autoscaling.enabled=true", "querier.autoscaling.minReplicas=5", "querier.autoscaling.maxReplicas=3"], "querier.autoscaling.minReplicas (5) exceeds"),
    ],
)
def test_inconsistent_values_fail_with_a_message(helm, settings, message):
    args = [a for s in settings for a in ("--set", s)]
    out = helm.run("template", "t", str(CHART), *args)
    assert out.returncode != 0, f"{settings} accepted"
    assert message in out.stderr, out.stderr


# --- NOTES --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def notes_chart(tmp_path_factory):
    """A copy of the chart whose NOTES.txt renders as a manifest, so `helm template` (which
    never prints NOTES) shows it."""
    copy = tmp_path_factory.mktemp("notes") / "ferrite"
    shutil.copytree(CHART, copy)
    notes = (copy / "templates" / "NOTES.txt").read_text()
    (copy / "templates" / "NOTES.txt").unlink()
    (copy / "templates" / "_notes.tpl").write_text('{{- define "test.notes" }}' + notes + "{{- end }}\n")
    (copy / "templates" / "zz-notes.yaml").write_text('kind: Notes\nnotes: {{ include "test.notes" . | toJson }}\n')
    return copy


def render_notes(helm, notes_chart, variant, *extra):
    docs = helm.template(*helm.values_args(variant), *extra, chart=notes_chart)
    (doc,) = [d for d in docs if d["kind"] == "Notes"]
    return doc["notes"]


def test_notes_show_the_front_door_and_the_admin_token(helm, notes_chart, variant):
    notes = render_notes(helm, notes_chart, variant)
    scheme = "https" if variant == "tls" else "http"
    assert f"kubectl -n {NAMESPACE} port-forward service/t-ferrite-router 8181:8181" in notes
    assert f"{scheme}://t-ferrite-router.{NAMESPACE}.svc:8181" in notes
    secret, key = ("ferrite-admin", "token") if variant == "existing-secrets" else ("t-ferrite-admin-token", "admin-token")
    assert f"get secret {secret}" in notes and f"{{.data['{key}']}}" in notes, notes
    assert ("WARNING" in notes) == (variant == "defaults"), notes


def test_notes_warn_what_is_missing(helm, notes_chart):
    notes = render_notes(helm, notes_chart, "defaults")
    assert "postgresql.dsn" in notes and "objectStore.s3.bucket" in notes
    assert "1 compactor(s) (one active, any others standing by)" in notes
    assert "compactor(s)" not in render_notes(helm, notes_chart, "defaults", "--set", "compactor.enabled=false")
    off = render_notes(helm, notes_chart, "defaults", "--set", "auth.enabled=false")
    assert "FERRITE_WITHOUT_AUTH" in off and "get secret" not in off


# --- documentation ------------------------------------------------------------------------

# Values documented as a whole block rather than key by key.
DOCUMENTED_AS_BLOCKS = {"resources", "podSecurityContext", "containerSecurityContext", "hosts", "annotations"}


def _value_paths(values, prefix=""):
    for key, value in values.items():
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict) and value and key not in DOCUMENTED_AS_BLOCKS:
            yield from _value_paths(value, path)
        else:
            yield path


def test_the_readme_documents_every_value():
    readme = (CHART / "README.md").read_text()
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    missing = []
    for path in _value_paths(values):
        head, _, rest = path.partition(".")
        generic = f"<tier>.{rest}" if head in TIERS else None
        if f"`{path}`" not in readme and (generic is None or f"`{generic}`" not in readme):
            missing.append(path)
    assert not missing, f"helm/ferrite/README.md does not document: {', '.join(missing)}"
