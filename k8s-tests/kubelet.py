"""A stand-in kubelet and kube-proxy for one Node, so that the Pods a real control plane
makes run as real `ferrite` processes on this machine (there is no container runtime here).

What it does, as a kubelet would:

- registers the Node `standin` and binds every unscheduled Pod of the namespaces it serves
  to it (there is no scheduler either);
- runs each Pod's one container as a process inside a network namespace of its own, with
  the Pod's IP (10.244.1.x on the bridge `fkbr0`), in a mount namespace whose root is a
  fresh tmpfs holding the host's /usr and /etc (the "image"), the ferrite binary as the
  image's entrypoint, and the Pod's volumes at their mount paths: emptyDir, Secret,
  ConfigMap, projected ServiceAccount tokens (TokenRequest API, bound to the Pod) and
  PersistentVolumeClaims (a directory per claim that outlives the Pod, as a volume would);
- applies the container's securityContext: its user and group, no new privileges, no
  capabilities, a read-only root filesystem;
- gives it the environment a kubelet gives: `env` (values, Secret and ConfigMap keys,
  fields of the Pod), `envFrom`, `KUBERNETES_SERVICE_HOST/PORT` and the service links;
- reports the Pod's status (Running, its IP, Ready from the readiness probe) and restarts
  the container when it exits or its liveness probe fails;
- on deletion sends SIGTERM, then SIGKILL after the Pod's grace period, and removes the Pod.

And as kube-proxy would (in its old userspace mode): every Service's cluster IP (the range
10.244.0.0/24 is routed to this machine's loopback while it runs) forwards each new TCP
connection to one ready endpoint of its EndpointSlices; the `kubernetes` Service forwards to
the API server. Each Pod's /etc/hosts names every Service (`name`, `name.ns`,
`name.ns.svc`, `name.ns.svc.cluster.local`), standing in for cluster DNS. `host_ports`
forwards ports of the Node's address (10.244.1.1) to services on this machine's loopback
(PostgreSQL, MinIO), which a release reaches as external services.

No packet leaves the machine: pod addresses live on a bridge of this test, and the service
range is local. Needs root (network and mount namespaces, mounts, `ip`).
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import itertools
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import requests

from scenario import new_session

NODE = "standin"
BRIDGE = "fkbr0"
NODE_IP = "10.244.1.1"
POD_PREFIX = 24
POD_IPS = [f"10.244.1.{i}" for i in range(10, 250)]
NETNS_PREFIX = "fk-"
# How often the Pod and Service lists are read.
SYNC_PERIOD_S = 0.2
# The image deploy/Dockerfile builds, as far as running it goes.
IMAGE_ENTRYPOINT = ["ferrite"]
IMAGE_WORKDIR = "/var/lib/ferrite"
IMAGE_USER = (10001, 10001)
IMAGE_ENV = {
    "PATH": "/ferrite/bin:/usr/local/bin:/usr/bin:/bin",
    "HOME": "/var/lib/ferrite",
    "FERRITE_BIND": "0.0.0.0:8181",
}
# Where the binary is mounted in the Pod's root.
BINARY_DIR = "/ferrite/bin"
RESTART_BACKOFF_S = 1.0
TOKEN_SECONDS = 3600


def now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def run(*args, check=True):
    out = subprocess.run(list(args), capture_output=True, text=True, timeout=60)
    if check and out.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({out.returncode}): {out.stderr.strip()}")
    return out


class Api:
    """Just enough of the Kubernetes REST API, as an admin."""

    def __init__(self, url, token, ca):
        self.url = url.rstrip("/")
        self.session = new_session()
        self.session.headers["Authorization"] = f"Bearer {token}"
        self.session.verify = str(ca)

    def call(self, method, path, body=None, content_type="application/json", ok=(200, 201)):
        headers = {"Content-Type": content_type} if body is not None else {}
        data = json.dumps(body) if body is not None else None
        resp = self.session.request(
            method, self.url + path, data=data, headers=headers, timeout=30,
        )
        if resp.status_code not in ok:
            raise RuntimeError(f"{method} {path}: {resp.status_code} {resp.text[:500]}")
        return resp.json() if resp.content else None

    def get(self, path):
        return self.call("GET", path)


class Network:
    """The bridge, the local service range and one network namespace per Pod."""

    def __init__(self, service_cidr):
        self.service_cidr = service_cidr
        self.free = list(POD_IPS)
        self.lock = threading.Lock()

    def up(self):
        self.down()  # whatever a killed earlier run left
        run("ip", "link", "add", BRIDGE, "type", "bridge")
        run("ip", "addr", "add", f"{NODE_IP}/{POD_PREFIX}", "dev", BRIDGE)
        run("ip", "link", "set", BRIDGE, "up")
        run("ip", "route", "add", "local", self.service_cidr, "dev", "lo")

    def down(self):
        for name in run("ip", "netns", "list").stdout.split():
            if name.startswith(NETNS_PREFIX):
                # Processes of a run that was killed before it could stop its pods.
                for pid in run("ip", "netns", "pids", name, check=False).stdout.split():
                    try:
                        os.kill(int(pid), signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                run("ip", "netns", "del", name, check=False)
                shutil.rmtree(f"/etc/netns/{name}", ignore_errors=True)
        for line in run("ip", "-o", "link", "show").stdout.splitlines():
            name = line.split(":")[1].strip().split("@")[0]
            if name.startswith("fkv"):
                run("ip", "link", "del", name, check=False)
        run("ip", "link", "del", BRIDGE, check=False)
        run("ip", "route", "del", "local", self.service_cidr, "dev", "lo", check=False)

    def add(self, uid):
        """A namespace with a fresh pod IP; returns (namespace, ip). Names come from the
        Pod's uid, so a name is never reused while the kernel still tears down an old one."""
        with self.lock:
            ip = self.free.pop(0)
        netns, veth = NETNS_PREFIX + uid[:8], "fkv" + uid[:8]
        try:
            run("ip", "netns", "add", netns)
            run("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0",
                "netns", netns)
            run("ip", "link", "set", veth, "master", BRIDGE, "up")
            run("ip", "-n", netns, "addr", "add", f"{ip}/{POD_PREFIX}", "dev", "eth0")
            run("ip", "-n", netns, "link", "set", "eth0", "up")
            run("ip", "-n", netns, "link", "set", "lo", "up")
            run("ip", "-n", netns, "route", "add", "default", "via", NODE_IP)
        except Exception:
            self.remove(netns, ip)
            raise
        return netns, ip

    def remove(self, netns, ip):
        run("ip", "netns", "del", netns, check=False)  # takes the veth pair with it
        run("ip", "link", "del", "fkv" + netns[len(NETNS_PREFIX):], check=False)
        shutil.rmtree(f"/etc/netns/{netns}", ignore_errors=True)
        with self.lock:
            self.free.append(ip)


class Proxy:
    """Userspace TCP forwarding from (ip, port) listeners to backends, on its own loop."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.servers = {}  # (ip, port) -> asyncio.Server
        self.backends = {}  # (ip, port) -> [(host, port)]
        self.turn = itertools.count()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def sync(self, routes):
        """routes: {(ip, port): [(host, port), ...]}; listeners follow it."""
        asyncio.run_coroutine_threadsafe(self._sync(dict(routes)), self.loop).result(30)

    async def _sync(self, routes):
        self.backends = routes
        for key in list(self.servers):
            if key not in routes:
                self.servers.pop(key).close()
        for key in routes:
            if key not in self.servers:
                self.servers[key] = await asyncio.start_server(
                    lambda r, w, key=key: self._forward(key, r, w), key[0], key[1],
                    reuse_address=True,
                )

    async def _forward(self, key, reader, writer):
        try:
            await self._pipe_to_backend(key, reader, writer)
        except asyncio.CancelledError:
            pass  # the proxy is stopping
        finally:
            writer.close()

    async def _pipe_to_backend(self, key, reader, writer):
        backends = self.backends.get(key) or []
        if not backends:
            return  # no ready endpoint: refused, as a Service without endpoints
        host, port = backends[next(self.turn) % len(backends)]
        try:
            up_reader, up_writer = await asyncio.open_connection(host, port)
        except OSError:
            return

        async def pipe(src, dst):
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
                if dst.can_write_eof():
                    dst.write_eof()
            except (OSError, RuntimeError):
                pass

        # Until the backend closes: then the client's connection closes too, as it would
        # have seen the backend's own FIN through kube-proxy's address translation.
        to_backend = asyncio.ensure_future(pipe(reader, up_writer))
        try:
            await pipe(up_reader, writer)
        finally:
            to_backend.cancel()
            up_writer.close()

    def stop(self):
        async def close_all():
            for server in self.servers.values():
                server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(close_all(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


class Kubelet:
    """Runs the Pods of `namespaces` and proxies every Service; see the module's doc."""

    def __init__(self, api, api_port, service_cidr, binary, workdir, namespaces, host_ports=()):
        self.api = api
        self.api_port = api_port
        self.service_cidr = service_cidr
        self.binary = Path(binary)
        self.workdir = Path(workdir)
        self.namespaces = list(namespaces)
        self.host_ports = list(host_ports)
        self.network = None
        self.proxy = None
        self.pods = {}  # uid -> PodRunner
        self.services = []
        self.stopping = threading.Event()
        self.thread = None
        # What went wrong (a test fails on any) and what was retried (reported only).
        self.errors = []
        self.warnings = []

    # --- lifecycle -----------------------------------------------------------------------

    def start(self):
        self.network = Network(self.service_cidr)
        self.network.up()
        for sub in ("pods", "volumes", "logs"):
            (self.workdir / sub).mkdir(parents=True, exist_ok=True)
        # Processes run as the image's user: every directory on the way must be traversable.
        self.workdir.chmod(0o755)
        self.proxy = Proxy()
        self.register_node()
        self.sync()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        self.stopping.set()
        if self.thread:
            self.thread.join(30)
        for runner in list(self.pods.values()):
            runner.kill()
        if self.proxy:
            self.proxy.stop()
        if self.network:
            self.network.down()

    def register_node(self):
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": NODE, "labels": {"kubernetes.io/hostname": NODE}},
        }
        self.api.call("POST", "/api/v1/nodes", node, ok=(201, 409))
        status = {
            "status": {
                "addresses": [
                    {"type": "InternalIP", "address": NODE_IP},
                    {"type": "Hostname", "address": NODE},
                ],
                "capacity": {"cpu": "64", "memory": "256Gi", "pods": "200"},
                "allocatable": {"cpu": "64", "memory": "256Gi", "pods": "200"},
                "conditions": [{
                    "type": "Ready", "status": "True", "reason": "KubeletReady",
                    "message": "stand-in kubelet", "lastHeartbeatTime": now(),
                    "lastTransitionTime": now(),
                }],
            }
        }
        self.api.call(
            "PATCH", f"/api/v1/nodes/{NODE}/status", status,
            content_type="application/merge-patch+json",
        )

    def _loop(self):
        while not self.stopping.wait(SYNC_PERIOD_S):
            try:
                self.sync()
            except Exception as e:  # noqa: BLE001 - keep serving; the test reports errors
                self.errors.append(f"{now()} sync: {e}")
                time.sleep(1)

    def log_of(self, pod_name):
        """Every log of a Pod name (all its incarnations), oldest first."""
        files = sorted(self.workdir.glob(f"logs/*_{pod_name}_*.log"), key=os.path.getmtime)
        return "\n".join(f"--- {f.name}\n{f.read_text(errors='replace')}" for f in files)

    def pod_logs(self, namespace, prefix):
        """pod name -> log_of(name), for every Pod of `namespace` whose name starts with
        `prefix` that ran on this Node, running or gone (logs are kept until the test ends,
        as `kubectl logs` cannot give a deleted Pod's)."""
        names = {f.name.split("_")[1] for f in self.workdir.glob(f"logs/{namespace}_{prefix}*.log")}
        return {name: self.log_of(name) for name in sorted(names)}

    # --- one round ----------------------------------------------------------------------

    def sync(self):
        self.services = self.api.get("/api/v1/services")["items"]
        slices = self.api.get("/apis/discovery.k8s.io/v1/endpointslices")["items"]
        self.proxy.sync(self.routes(slices))
        seen = set()
        for ns in self.namespaces:
            for pod in self.api.get(f"/api/v1/namespaces/{ns}/pods")["items"]:
                uid = pod["metadata"]["uid"]
                seen.add(uid)
                self.sync_pod(pod)
        for uid in list(self.pods):
            if uid not in seen:  # deleted behind our back (force delete)
                self.pods.pop(uid).kill()

    def sync_pod(self, pod):
        meta, spec = pod["metadata"], pod["spec"]
        uid = meta["uid"]
        deleting = meta.get("deletionTimestamp") is not None
        if not spec.get("nodeName"):
            if not deleting:
                self.bind(pod)
            return
        if spec["nodeName"] != NODE:
            return
        runner = self.pods.get(uid)
        if runner is None:
            if deleting:
                self.delete_pod(pod)
                return
            runner = PodRunner(self, pod)
            self.pods[uid] = runner
            runner.start()
        elif deleting:
            runner.terminate(meta.get("deletionGracePeriodSeconds", 30))
        if runner.finished.is_set():
            self.pods.pop(uid, None)

    def bind(self, pod):
        meta = pod["metadata"]
        binding = {
            "apiVersion": "v1", "kind": "Binding",
            "metadata": {"name": meta["name"]},
            "target": {"apiVersion": "v1", "kind": "Node", "name": NODE},
        }
        self.api.call(
            "POST", f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/binding",
            binding, ok=(201, 409),
        )

    def delete_pod(self, pod):
        meta = pod["metadata"]
        body = {
            "apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0,
            "preconditions": {"uid": meta["uid"]},
        }
        self.api.call(
            "DELETE", f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}", body,
            ok=(200, 202, 404, 409),
        )

    def routes(self, slices):
        """Every Service port's listener and its ready backends."""
        routes = {}
        for svc in self.services:
            meta, spec = svc["metadata"], svc["spec"]
            ip = spec.get("clusterIP")
            if not ip or ip == "None":
                continue
            for port in spec.get("ports", []):
                if port.get("protocol", "TCP") != "TCP":
                    continue
                key = (ip, port["port"])
                if meta["namespace"] == "default" and meta["name"] == "kubernetes":
                    routes[key] = [("127.0.0.1", self.api_port)]
                    continue
                routes[key] = [
                    (address, slice_port["port"])
                    for s in slices
                    if s["metadata"]["namespace"] == meta["namespace"]
                    and s["metadata"].get("labels", {}).get("kubernetes.io/service-name")
                    == meta["name"]
                    for slice_port in s.get("ports") or []
                    if slice_port.get("name", "") == port.get("name", "")
                    for endpoint in s.get("endpoints") or []
                    if endpoint.get("conditions", {}).get("ready", True)
                    for address in endpoint["addresses"][:1]
                ]
        for port in self.host_ports:
            routes[(NODE_IP, port)] = [("127.0.0.1", port)]
        return routes

    def hosts_file(self, pod_name, pod_ip, namespace):
        lines = ["127.0.0.1 localhost", f"{pod_ip} {pod_name}"]
        for svc in self.services:
            meta, ip = svc["metadata"], svc["spec"].get("clusterIP")
            if not ip or ip == "None":
                continue
            name, ns = meta["name"], meta["namespace"]
            names = [f"{name}.{ns}.svc.cluster.local", f"{name}.{ns}.svc", f"{name}.{ns}"]
            if ns == namespace:
                names.append(name)
            lines.append(f"{ip} {' '.join(names)}")
        return "\n".join(lines) + "\n"


class PodRunner:
    """One Pod on the Node: its network, volumes, container process, probes and status."""

    def __init__(self, kubelet, pod):
        self.kubelet = kubelet
        self.api = kubelet.api
        self.pod = pod
        meta = pod["metadata"]
        self.name, self.namespace, self.uid = meta["name"], meta["namespace"], meta["uid"]
        containers = pod["spec"]["containers"]
        if len(containers) != 1 or pod["spec"].get("initContainers"):
            raise RuntimeError(f"{self.name}: the stand-in kubelet runs one container per Pod")
        self.container = containers[0]
        self.dir = kubelet.workdir / "pods" / self.uid
        self.netns = None
        self.ip = None
        self.proc = None
        self.restarts = 0
        self.ready = False
        self.started_at = None
        self.start_time = now()
        self.grace = None  # set when the Pod is being deleted
        self.lock = threading.Lock()
        self.finished = threading.Event()
        self.probes = new_session()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self.thread.start()

    def terminate(self, grace_seconds):
        with self.lock:
            if self.grace is None:
                self.grace = grace_seconds

    def kill(self):
        """Stop at once (the test is over): SIGKILL, network removed."""
        with self.lock:
            self.grace = 0
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.thread.join(15)

    def _log(self, message):
        self.kubelet.errors.append(f"{now()} {self.namespace}/{self.name}: {message}")

    # --- the Pod's life ------------------------------------------------------------------

    def _run(self):
        try:
            for attempt in range(3):  # a kubelet retries a sandbox it failed to make
                try:
                    self.netns, self.ip = self.kubelet.network.add(self.uid)
                    break
                except RuntimeError as e:
                    self.kubelet.warnings.append(
                        f"{now()} {self.name}: network, attempt {attempt + 1}: {e}")
                    time.sleep(1)
            else:
                raise RuntimeError("no network namespace after 3 attempts")
            self._life()
        except Exception as e:  # noqa: BLE001 - reported through kubelet.errors
            self._log(f"failed: {e}")
            self._set_status(ready=False, waiting=str(e))
            while self.grace is None:
                time.sleep(0.2)
        finally:
            if self.proc and self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(10)
            if self.netns:
                self.kubelet.network.remove(self.netns, self.ip)
            if not self.kubelet.stopping.is_set():
                try:
                    self.kubelet.delete_pod(self.pod)
                except Exception as e:  # noqa: BLE001
                    self._log(f"deleting: {e}")
            self.finished.set()

    def _life(self):
        self._prepare_volumes()
        netns_etc = Path("/etc/netns") / self.netns
        netns_etc.mkdir(parents=True, exist_ok=True)
        (netns_etc / "hosts").write_text(
            self.kubelet.hosts_file(self.name, self.ip, self.namespace))
        (netns_etc / "hostname").write_text(self.name + "\n")
        env = self._env()
        while self.grace is None:
            self._launch(env)
            self._set_status(ready=False)
            self._watch()
            if self.grace is not None:
                break
            # The container exited, or failed its liveness probe: restart it (Always).
            self.restarts += 1
            self.ready = False
            self._set_status(ready=False, waiting="CrashLoopBackOff")
            time.sleep(RESTART_BACKOFF_S)
        self._stop(self.grace)

    def _launch(self, env):
        log = self.kubelet.workdir / "logs" / f"{self.namespace}_{self.name}_{self.uid[:8]}.log"
        out = open(log, "ab")
        out.write(f"=== {now()} start #{self.restarts}\n".encode())
        out.flush()
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", self.netns, "/bin/sh", "-ec", self._script(), "sh",
             *self._argv()],
            stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )
        out.close()
        self.started_at = now()

    def _watch(self):
        """Probe until the process exits, fails liveness, or the Pod is being deleted."""
        readiness = self.container.get("readinessProbe")
        liveness = self.container.get("livenessProbe")
        next_ready = time.monotonic() + (readiness or {}).get("initialDelaySeconds", 0)
        next_live = time.monotonic() + (liveness or {}).get("initialDelaySeconds", 0)
        live_failures = ready_failures = 0
        while self.grace is None and self.proc.poll() is None:
            t = time.monotonic()
            if readiness and t >= next_ready:
                next_ready = t + readiness.get("periodSeconds", 10)
                if self._probe(readiness):
                    ready_failures = 0
                    self._set_ready(True)
                else:
                    ready_failures += 1
                    if ready_failures >= readiness.get("failureThreshold", 3) or not self.ready:
                        self._set_ready(False)
            elif not readiness and not self.ready:
                self._set_ready(True)
            if liveness and t >= next_live:
                next_live = t + liveness.get("periodSeconds", 10)
                live_failures = 0 if self._probe(liveness) else live_failures + 1
                if live_failures >= liveness.get("failureThreshold", 3):
                    self._log("liveness probe failed: restarting the container")
                    self._signal_and_wait(self.pod["spec"].get("terminationGracePeriodSeconds", 30))
                    return
            time.sleep(0.05)

    def _probe(self, probe):
        get = probe.get("httpGet")
        if get is None:
            raise RuntimeError(f"{self.name}: only httpGet probes are supported")
        port = get["port"]
        if isinstance(port, str):
            port = next(p["containerPort"] for p in self.container["ports"] if p["name"] == port)
        url = f"{get.get('scheme', 'HTTP').lower()}://{self.ip}:{port}{get.get('path', '/')}"
        try:
            resp = self.probes.get(url, timeout=probe.get("timeoutSeconds", 1), verify=False)
            return 200 <= resp.status_code < 400
        except requests.RequestException:
            return False

    def _set_ready(self, ready):
        if ready != self.ready:
            self.ready = ready
            self._set_status(ready=ready)

    def _stop(self, grace):
        self.ready = False
        self._set_status(ready=False)
        self._signal_and_wait(grace)

    def _signal_and_wait(self, grace):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=max(grace, 0))
        except subprocess.TimeoutExpired:
            self._log(f"still running {grace} s after SIGTERM: SIGKILL")
            self.proc.kill()
            self.proc.wait(10)

    # --- status --------------------------------------------------------------------------

    def _set_status(self, ready, waiting=None):
        flag = "True" if ready else "False"
        t = now()
        container = {
            "name": self.container["name"], "image": self.container.get("image", ""),
            "imageID": "", "ready": ready, "restartCount": self.restarts,
            "started": waiting is None,
        }
        if waiting is None:
            container["containerID"] = f"standin://{self.proc.pid if self.proc else 0}"
            container["state"] = {"running": {"startedAt": self.started_at or t}}
        else:
            container["state"] = {"waiting": {"reason": "Error", "message": waiting[:1000]}}
        status = {
            "phase": "Running" if waiting is None else "Pending",
            "hostIP": NODE_IP, "hostIPs": [{"ip": NODE_IP}],
            "startTime": self.start_time,
            "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": t},
                {"type": "Initialized", "status": "True", "lastTransitionTime": t},
                {"type": "ContainersReady", "status": flag, "lastTransitionTime": t},
                {"type": "Ready", "status": flag, "lastTransitionTime": t},
            ],
            "containerStatuses": [container],
        }
        if self.ip:
            status["podIP"] = self.ip
            status["podIPs"] = [{"ip": self.ip}]
        try:
            self.api.call(
                "PATCH", f"/api/v1/namespaces/{self.namespace}/pods/{self.name}/status",
                {"metadata": {"uid": self.uid}, "status": status},
                content_type="application/merge-patch+json", ok=(200, 404, 409),
            )
        except Exception as e:  # noqa: BLE001
            self._log(f"status: {e}")

    # --- environment ---------------------------------------------------------------------

    def _env(self):
        env = dict(IMAGE_ENV)
        env["HOSTNAME"] = self.name
        env.update(self._service_env())
        for source in self.container.get("envFrom") or []:
            prefix = source.get("prefix", "")
            if "secretRef" in source:
                data = self._secret(source["secretRef"]["name"])
            else:
                data = self._config_map(source["configMapRef"]["name"])
            env.update({prefix + k: v for k, v in data.items()})
        for var in self.container.get("env") or []:
            if "value" in var:
                env[var["name"]] = var["value"]
                continue
            ref = var["valueFrom"]
            if "secretKeyRef" in ref:
                env[var["name"]] = self._secret(ref["secretKeyRef"]["name"])[ref["secretKeyRef"]["key"]]
            elif "configMapKeyRef" in ref:
                key = ref["configMapKeyRef"]
                env[var["name"]] = self._config_map(key["name"])[key["key"]]
            elif "fieldRef" in ref:
                env[var["name"]] = self._field(ref["fieldRef"]["fieldPath"])
            else:
                raise RuntimeError(f"{self.name}: env {var['name']}: unsupported valueFrom {ref}")
        return env

    def _service_env(self):
        """KUBERNETES_SERVICE_* always; every Service's links unless enableServiceLinks=false."""
        env = {}
        links = self.pod["spec"].get("enableServiceLinks", True)
        for svc in self.kubelet.services:
            meta, spec = svc["metadata"], svc["spec"]
            ip = spec.get("clusterIP")
            is_api = meta["namespace"] == "default" and meta["name"] == "kubernetes"
            if not ip or ip == "None" or not (is_api or (links and meta["namespace"] == self.namespace)):
                continue
            name = meta["name"].upper().replace("-", "_")
            ports = spec.get("ports", [])
            first = ports[0]
            env[f"{name}_SERVICE_HOST"] = ip
            env[f"{name}_SERVICE_PORT"] = str(first["port"])
            env[f"{name}_PORT"] = f"tcp://{ip}:{first['port']}"
            for port in ports:
                if port.get("name"):
                    env[f"{name}_SERVICE_PORT_{port['name'].upper().replace('-', '_')}"] = str(port["port"])
                proto = port.get("protocol", "TCP")
                base = f"{name}_PORT_{port['port']}_{proto}"
                env[base] = f"{proto.lower()}://{ip}:{port['port']}"
                env[base + "_PROTO"] = proto.lower()
                env[base + "_PORT"] = str(port["port"])
                env[base + "_ADDR"] = ip
        return env

    def _field(self, path):
        meta, spec = self.pod["metadata"], self.pod["spec"]
        fields = {
            "metadata.name": meta["name"], "metadata.namespace": meta["namespace"],
            "metadata.uid": meta["uid"], "spec.nodeName": NODE,
            "spec.serviceAccountName": spec.get("serviceAccountName", "default"),
            "status.podIP": self.ip, "status.hostIP": NODE_IP,
        }
        if path.startswith("metadata.labels['"):
            return meta.get("labels", {})[path[len("metadata.labels['"):-2]]
        if path not in fields:
            raise RuntimeError(f"{self.name}: unsupported fieldRef {path}")
        return fields[path]

    def _secret(self, name):
        got = self.api.get(f"/api/v1/namespaces/{self.namespace}/secrets/{name}")
        return {k: base64.b64decode(v).decode() for k, v in (got.get("data") or {}).items()}

    def _config_map(self, name):
        got = self.api.get(f"/api/v1/namespaces/{self.namespace}/configmaps/{name}")
        return dict(got.get("data") or {})

    # --- volumes and the root filesystem ----------------------------------------------------

    def _prepare_volumes(self):
        """A host directory per volume, filled as the kubelet fills it."""
        psc = self.pod["spec"].get("securityContext") or {}
        self.fs_group = psc.get("fsGroup")
        self.volume_dirs = {}
        for volume in self.pod["spec"].get("volumes") or []:
            name = volume["name"]
            if "persistentVolumeClaim" in volume:
                claim = volume["persistentVolumeClaim"]["claimName"]
                path = self.kubelet.workdir / "volumes" / self.namespace / claim
            else:
                path = self.dir / "volumes" / name
            path.mkdir(parents=True, exist_ok=True)
            self.volume_dirs[name] = path
            if "secret" in volume:
                src = volume["secret"]
                self._fill(path, self._secret(src["secretName"]), src.get("items"),
                           src.get("defaultMode", 0o644))
            elif "configMap" in volume:
                src = volume["configMap"]
                self._fill(path, self._config_map(src["name"]), src.get("items"),
                           src.get("defaultMode", 0o644))
            elif "projected" in volume:
                self._projected(path, volume["projected"])
            elif "emptyDir" in volume or "persistentVolumeClaim" in volume:
                os.chmod(path, 0o2777 if self.fs_group is None else 0o2770)
                if self.fs_group is not None:
                    os.chown(path, -1, self.fs_group)
            else:
                raise RuntimeError(f"{self.name}: unsupported volume {volume}")

    def _fill(self, path, data, items, mode):
        chosen = [(i["key"], i["path"], i.get("mode", mode)) for i in items] if items else \
            [(k, k, mode) for k in data]
        for key, rel, file_mode in chosen:
            target = path / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(data[key])
            os.chmod(target, file_mode | (0o040 if self.fs_group is not None else 0))
            if self.fs_group is not None:
                os.chown(target, -1, self.fs_group)
        os.chmod(path, 0o755)

    def _projected(self, path, projected):
        mode = projected.get("defaultMode", 0o644)
        for source in projected["sources"]:
            if "serviceAccountToken" in source:
                src = source["serviceAccountToken"]
                sa = self.pod["spec"].get("serviceAccountName", "default")
                request = {"spec": {
                    "audiences": [src["audience"]] if src.get("audience") else [],
                    "expirationSeconds": max(src.get("expirationSeconds", TOKEN_SECONDS), TOKEN_SECONDS),
                    "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": self.name,
                                       "uid": self.uid},
                }}
                got = self.api.call(
                    "POST", f"/api/v1/namespaces/{self.namespace}/serviceaccounts/{sa}/token",
                    request)
                self._fill(path, {"token": got["status"]["token"]},
                           [{"key": "token", "path": src["path"]}], mode)
            elif "configMap" in source:
                src = source["configMap"]
                self._fill(path, self._config_map(src["name"]), src.get("items"), mode)
            elif "secret" in source:
                src = source["secret"]
                self._fill(path, self._secret(src["name"]), src.get("items"), mode)
            elif "downwardAPI" in source:
                items = source["downwardAPI"]["items"]
                data = {i["path"]: self._field(i["fieldRef"]["fieldPath"]) for i in items}
                self._fill(path, data, None, mode)
            else:
                raise RuntimeError(f"{self.name}: unsupported projected source {source}")

    def _user(self):
        psc = self.pod["spec"].get("securityContext") or {}
        csc = self.container.get("securityContext") or {}
        uid = csc.get("runAsUser", psc.get("runAsUser", IMAGE_USER[0]))
        gid = csc.get("runAsGroup", psc.get("runAsGroup", IMAGE_USER[1]))
        groups = [g for g in [psc.get("fsGroup"), *psc.get("supplementalGroups", [])] if g is not None]
        return uid, gid, groups, csc

    def _argv(self):
        command = self.container.get("command") or IMAGE_ENTRYPOINT
        args = self.container.get("args") if self.container.get("command") is None or \
            self.container.get("args") is not None else []
        return [*command, *(args or [])]

    def _script(self):
        """The shell that builds the container's root and execs its process (inside `ip netns
        exec`, which gave it a mount namespace of its own)."""
        root = self.dir / "rootfs"
        root.mkdir(parents=True, exist_ok=True)
        uid, gid, groups, csc = self._user()
        q = _quote
        lines = [
            f"R={q(root)}",
            'mount -t tmpfs -o mode=0755 rootfs "$R"',
            'for d in usr etc proc dev sys; do mkdir "$R/$d"; mount --rbind "/$d" "$R/$d"; done',
            'for l in bin lib lib64 sbin; do [ -L "/$l" ] && ln -s "$(readlink "/$l")" "$R/$l"; done',
            f'mkdir -p "$R{BINARY_DIR}" && touch "$R{BINARY_DIR}/ferrite"',
            f'mount --bind {q(self.kubelet.binary)} "$R{BINARY_DIR}/ferrite"',
            f'mkdir -p "$R{IMAGE_WORKDIR}" && chown {IMAGE_USER[0]}:{IMAGE_USER[1]} "$R{IMAGE_WORKDIR}"',
        ]
        for mount in self.container.get("volumeMounts") or []:
            source = self.volume_dirs[mount["name"]]
            if mount.get("subPath"):
                source = source / mount["subPath"]
            target = f'"$R"{q(mount["mountPath"])}'
            lines.append(f"mkdir -p {target}")
            lines.append(f"mount --bind {q(source)} {target}")
            if mount.get("readOnly"):
                lines.append(f"mount -o remount,bind,ro {target}")
        if csc.get("readOnlyRootFilesystem"):
            lines.append('mount -o remount,ro "$R"')
        privs = [f"--reuid={uid}", f"--regid={gid}"]
        privs.append(f"--groups={','.join(map(str, groups))}" if groups else "--clear-groups")
        if csc.get("allowPrivilegeEscalation") is False:
            privs.append("--no-new-privs")
        if "ALL" in ((csc.get("capabilities") or {}).get("drop") or []):
            privs += ["--bounding-set=-all", "--inh-caps=-all"]
        workdir = self.container.get("workingDir") or IMAGE_WORKDIR
        lines.append(
            f'exec unshare --root="$R" --wd={q(workdir)} /usr/bin/setpriv {" ".join(privs)} -- "$@"'
        )
        return "\n".join(lines)


def _quote(value):
    return "'" + str(value).replace("'", "'\\''") + "'"


