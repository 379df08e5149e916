"""Shared fixtures of the chart tests: the helm and ferrite binaries, and renders of
helm/ferrite for each value set in k8s-tests/values/.

Nothing is skipped: a missing helm or ferrite binary fails the run with what to do.
"""

import json
import os
import re
import select
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
CHART = REPO / "helm" / "ferrite"
VALUES = Path(__file__).resolve().parent / "values"

# The value sets every test runs against: name -> values files (none: the chart's defaults).
VARIANTS = {
    "defaults": [],
    "dev": ["dev.yaml"],
    "tls": ["tls.yaml"],
    "existing-secrets": ["existing-secrets.yaml"],
    "hpa": ["hpa.yaml"],
    "extras": ["extras.yaml"],
    "file-store": ["file-store.yaml"],
}

# Every `ferrite run` service, each a workload of the chart.
TIERS = ("catalog", "router", "ingester", "querier", "compactor")
RELEASE = "t"
NAMESPACE = "ferrite-test"


def _helm_path():
    if os.environ.get("HELM_BIN"):
        return Path(os.environ["HELM_BIN"])
    tools = Path(os.environ.get("FERRITE_TOOLS_DIR", Path.home() / ".cache" / "ferrite-tools"))
    installed = tools / "bin" / "helm"
    if installed.exists():
        return installed
    found = shutil.which("helm")
    return Path(found) if found else installed


def _ferrite_path():
    if os.environ.get("FERRITE_BIN"):
        return Path(os.environ["FERRITE_BIN"])
    target = Path(os.environ.get("CARGO_TARGET_DIR", Path.home() / ".cache" / "ferrite-target"))
    return target / "debug" / "ferrite"


@pytest.fixture(scope="session")
def helm_bin():
    path = _helm_path()
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(
            f"helm not found at {path}: run deploy/dev/setup.sh (or deploy/dev/install-helm.sh), "
            "or point HELM_BIN at a helm 3 binary",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="session")
def ferrite_bin():
    path = _ferrite_path()
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(
            f"the ferrite binary is missing at {path}: build it with "
            "`cargo build -p ferrite-server --bin ferrite` (CARGO_TARGET_DIR as for the "
            "tests) or point FERRITE_BIN at it",
            pytrace=False,
        )
    return path


def _help(ferrite_bin, *args):
    out = subprocess.run(
        [str(ferrite_bin), *args, "--help"], capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, f"ferrite {' '.join(args)} --help failed:\n{out.stderr}"
    return out.stdout


def parse_run_help(text):
    """(every FERRITE_* variable the command reads, the variables of its required flags),
    from clap's --help: `[env: FERRITE_X=]` under each option, required flags in `Usage:`."""
    env = set(re.findall(r"\[env: (FERRITE_[A-Z0-9_]+)", text))
    env_of_flag = {}
    # One block per option: a line that starts (after indentation) with `--flag` or `-h, --help`.
    for block in re.split(r"\n(?=[ ]{2,8}(?:-[A-Za-z], )?--[a-z])", text):
        flag = re.match(r"\s*(?:-[A-Za-z], )?--([a-z0-9-]+)", block)
        var = re.search(r"\[env: (FERRITE_[A-Z0-9_]+)", block)
        if flag and var:
            env_of_flag[flag.group(1)] = var.group(1)
    usage = re.search(r"^Usage: .*$", text, re.M)
    assert usage, "no Usage: line in the help"
    required = set()
    for flag in re.findall(r"--([a-z0-9-]+) <", usage.group(0)):
        assert flag in env_of_flag, f"required flag --{flag} has no [env: ...] in the help"
        required.add(env_of_flag[flag])
    return env, required


@pytest.fixture(scope="session")
def run_commands(ferrite_bin):
    """The services `ferrite run` knows, from the Commands: list of its --help."""
    text = _help(ferrite_bin, "run")
    section = text.split("Commands:", 1)[1].split("\n\n", 1)[0]
    names = set(re.findall(r"^  ([a-z][a-z0-9-]*)\s", section, re.M)) - {"help"}
    assert names, f"no commands found in `ferrite run --help`:\n{text}"
    return names


def parse_run_defaults(text):
    """FERRITE_* variable -> its flag's default, as `--help` shows it (`[default: 10]`), for
    the flags that have one."""
    defaults = {}
    for block in re.split(r"\n(?=[ ]{2,8}(?:-[A-Za-z], )?--[a-z])", text):
        var = re.search(r"\[env: (FERRITE_[A-Z0-9_]+)", block)
        default = re.search(r"\[default: ([^\]]*)\]", block)
        if var and default:
            defaults[var.group(1)] = default.group(1)
    return defaults


@pytest.fixture(scope="session")
def tier_help(ferrite_bin):
    """tier -> the text of `ferrite run <tier> --help`."""
    return {tier: _help(ferrite_bin, "run", tier) for tier in TIERS}


@pytest.fixture(scope="session")
def tier_cli(tier_help):
    """tier -> (every FERRITE_* variable `ferrite run <tier>` reads, those it requires)."""
    cli = {}
    for tier in TIERS:
        env, required = parse_run_help(tier_help[tier])
        assert env, f"no [env: FERRITE_...] lines in `ferrite run {tier} --help`"
        cli[tier] = (env, required)
    return cli


class Helm:
    """Runs helm against the chart; renders are cached per argument list."""

    def __init__(self, path):
        self.path = path
        self._cache = {}

    def run(self, *args):
        return subprocess.run(
            [str(self.path), *args], capture_output=True, text=True, timeout=120,
        )

    def values_args(self, variant):
        args = []
        for name in VARIANTS[variant]:
            args += ["-f", str(VALUES / name)]
        return args

    def template(self, *args, chart=CHART):
        """`helm template` with extra args; returns the parsed documents (fails on error)."""
        key = (str(chart), args)
        if key not in self._cache:
            out = self.run("template", RELEASE, str(chart), "--namespace", NAMESPACE, *args)
            assert out.returncode == 0, f"helm template {' '.join(args)} failed:\n{out.stderr}"
            self._cache[key] = [d for d in yaml.safe_load_all(out.stdout) if d]
        return self._cache[key]

    def render(self, variant, *extra):
        return self.template(*self.values_args(variant), *extra)


@pytest.fixture(scope="session")
def helm(helm_bin):
    return Helm(helm_bin)


@pytest.fixture(params=list(VARIANTS))
def variant(request):
    return request.param


# --- a real control plane ---------------------------------------------------------------


def find_testkit_bin(name):
    """A testkit binary (`cargo build -p ferrite-testkit --bins`); fails the test if missing."""
    target = Path(os.environ.get("CARGO_TARGET_DIR", Path.home() / ".cache" / "ferrite-target"))
    exe = target / "debug" / name
    if not exe.is_file():
        pytest.fail(
            f"{exe} is missing: `cargo build -p ferrite-testkit --bins` (make test-k8s does)",
            pytrace=False,
        )
    return exe


def kubectl_path():
    tools = Path(os.environ.get("FERRITE_TOOLS_DIR", Path.home() / ".cache" / "ferrite-tools"))
    return tools / "bin" / "kubectl"


class ControlPlane:
    """`ferrite-test-kube` (a testkit binary): etcd, kube-apiserver and
    kube-controller-manager, and with `backing=True` a PostgreSQL and a MinIO too. The
    context value is its JSON line: url, kubeconfig, ca, token, service_cidr (postgres, s3).
    Everything stops when the context exits (the launcher's stdin closes)."""

    def __init__(self, backing=False):
        self.args = ["--with-backing"] if backing else []
        self.proc = None

    def __enter__(self):
        exe = find_testkit_bin("ferrite-test-kube")
        self.proc = subprocess.Popen(
            [str(exe), *self.args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
        )
        ready, _, _ = select.select([self.proc.stdout], [], [], 180)
        line = self.proc.stdout.readline() if ready else ""
        if not line:
            self.proc.kill()
            pytest.fail(f"ferrite-test-kube did not start:\n{self.proc.stderr.read()}",
                        pytrace=False)
        return json.loads(line)

    def __exit__(self, *exc):
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def kubectl(cp, *args, stdin=None):
    """kubectl as the control plane's admin; fails the test on an error."""
    out = subprocess.run(
        [str(kubectl_path()), "--kubeconfig", cp["kubeconfig"], *args],
        input=stdin, capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, f"kubectl {' '.join(args)} failed:\n{out.stderr}"
    return out.stdout
