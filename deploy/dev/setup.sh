#!/usr/bin/env bash
# Idempotent developer / CI machine set-up. `make test` runs this first.
#
#  1. Debian packages the build and the tests need (postgresql, mold, clang, python3-venv,
#     default-jdk-headless, maven, etcd-server — the storage of the Kubernetes tests' control
#     plane; its own service is not used, the tests start /usr/bin/etcd themselves):
#     only the missing ones are installed, and `apt-get update` runs only if one is missing.
#  2. MinIO, the S3-compatible server of the object-store tests, built with `go install` into
#     ~/.cache/ferrite-tools/bin (deploy/dev/install-minio.sh; skipped when the pinned version
#     is there already); Helm, which the chart tests (k8s-tests/) lint and render
#     helm/ferrite with, built the same way (deploy/dev/install-helm.sh); kube-apiserver,
#     kube-controller-manager and kubectl, the real Kubernetes control plane of the k8s tests,
#     built from the Go module proxy into the same directory (deploy/dev/install-kube.sh;
#     skipped likewise); and the SQL client programs the end-to-end tests drive: the Go
#     Flight SQL client with Grafana's macros and the Arrow Flight SQL JDBC driver with a
#     small Java program (deploy/dev/install-clients.sh; rebuilt only when their sources
#     change); Jaeger, the trace backend of the observability tests, built the same way
#     (deploy/dev/install-jaeger.sh); influxd, InfluxDB 1.x itself, the reference the InfluxQL
#     differential tests compare ferrite's /query with, built the same way
#     (deploy/dev/install-influxd.sh; skipped when the pinned version is there already); and
#     Debian's prometheus package, the Prometheus and promtool the observability tests run
#     (deploy/dev/install-prometheus.sh; its service left stopped).
#  3. A Python virtualenv at <repo>/.venv with services/testkit/python/requirements.txt,
#     re-installed only when the requirements file (or the interpreter) changed: a hash stamp
#     is kept inside .venv.
#
# `setup.sh --build-only` (what `make run` uses) stops after the Debian packages the build
# itself needs (mold, clang): no test servers, clients or virtualenv.
#
# Safe to run any number of times. Exits non-zero with a clear message on failure.
set -euo pipefail

BUILD_ONLY=0
case "${1:-}" in
    --build-only) BUILD_ONLY=1 ;;
    "") ;;
    *) printf 'setup: unknown argument %s (expected --build-only or nothing)\n' "$1" >&2; exit 2 ;;
esac

say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: ERROR: %s\n' "$*" >&2; exit 1; }

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${FERRITE_VENV:-$REPO_ROOT/.venv}"
REQS="$REPO_ROOT/services/testkit/python/requirements.txt"
APT_PACKAGES=(postgresql mold clang python3-venv default-jdk-headless maven etcd-server)
if [ "$BUILD_ONLY" -eq 1 ]; then
    APT_PACKAGES=(mold clang)
fi

# Root runs commands as they are; anyone else goes through sudo when it exists.
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO=(sudo)
    fi
fi

# --- 1. Debian packages ---------------------------------------------------------------------
is_installed() {
    [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" = "install ok installed" ]
}

if command -v dpkg-query >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    missing=()
    for pkg in "${APT_PACKAGES[@]}"; do
        is_installed "$pkg" || missing+=("$pkg")
    done
    if [ "${#missing[@]}" -eq 0 ]; then
        say "Debian packages present: ${APT_PACKAGES[*]}"
    else
        if [ "$(id -u)" -ne 0 ] && [ "${#SUDO[@]}" -eq 0 ]; then
            die "missing Debian packages (${missing[*]}) and not root without sudo: install them by hand"
        fi
        say "installing missing Debian packages: ${missing[*]}"
        "${SUDO[@]}" apt-get update -q || die "apt-get update failed"
        DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -q --no-install-recommends \
            "${missing[@]}" || die "apt-get install ${missing[*]} failed"
    fi
else
    say "not a Debian/apt system: skipping Debian packages (${APT_PACKAGES[*]})"
fi

if [ "$BUILD_ONLY" -eq 1 ]; then
    exit 0
fi

# --- 2. MinIO (S3-compatible server for the tests) ---------------------------------------------
bash "$REPO_ROOT/deploy/dev/install-minio.sh" || die "installing MinIO failed"
bash "$REPO_ROOT/deploy/dev/install-helm.sh" || die "installing Helm failed"
bash "$REPO_ROOT/deploy/dev/install-kube.sh" || die "building the Kubernetes control plane (kube-apiserver, kube-controller-manager, kubectl) failed"
bash "$REPO_ROOT/deploy/dev/install-clients.sh" || die "building the SQL client programs (ferrite-sql-go, ferrite-sql-jdbc) failed"
bash "$REPO_ROOT/deploy/dev/install-jaeger.sh" || die "building Jaeger (the observability tests' trace backend) failed"
bash "$REPO_ROOT/deploy/dev/install-influxd.sh" || die "building influxd (InfluxDB 1.x, the reference of the InfluxQL differential tests) failed"
bash "$REPO_ROOT/deploy/dev/install-prometheus.sh" || die "installing Prometheus and promtool (Debian's prometheus package) failed"

# --- 3. Python virtualenv ---------------------------------------------------------------------
[ -f "$REQS" ] || die "requirements file not found: $REQS"

# The interpreter that builds the venv: $PYTHON, else python3 (here a pyenv 3.11), else the
# Debian one. It must be >= 3.9 and have a working venv module (with ensurepip).
pick_python() {
    local cand
    for cand in "${PYTHON:-}" python3 /usr/bin/python3; do
        [ -n "$cand" ] || continue
        command -v "$cand" >/dev/null 2>&1 || continue
        if "$cand" -c 'import sys, venv, ensurepip; sys.exit(0 if sys.version_info >= (3, 9) else 1)' \
            >/dev/null 2>&1; then
            command -v "$cand"
            return 0
        fi
    done
    return 1
}
PY="$(pick_python)" || die "no python3 (>= 3.9) with a working venv/ensurepip module found; install python3-venv"
PY_VERSION="$("$PY" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')"

stamp_of() {
    # Requirements content + interpreter version: either changing re-installs.
    { cat "$REQS"; echo "python=$PY_VERSION"; } | sha256sum | cut -d' ' -f1
}
WANT="$(stamp_of)"
STAMP="$VENV/.ferrite-requirements.sha256"

# A usable venv runs, has pip, and was made from the same interpreter version.
venv_ok() {
    [ -x "$VENV/bin/python" ] \
        && [ "$("$VENV/bin/python" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])' 2>/dev/null)" = "$PY_VERSION" ] \
        && "$VENV/bin/python" -m pip --version >/dev/null 2>&1
}

if venv_ok && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ]; then
    say "venv up to date: $VENV (python $PY_VERSION)"
    exit 0
fi

if ! venv_ok; then
    say "creating venv $VENV with $PY (python $PY_VERSION)"
    rm -rf "$VENV"
    "$PY" -m venv "$VENV" || die "'$PY -m venv $VENV' failed (is python3-venv / ensurepip available?)"
elif [ -f "$STAMP" ]; then
    say "requirements or interpreter changed: updating venv $VENV"
else
    say "venv $VENV has no stamp: installing requirements"
fi

rm -f "$STAMP"
say "pip install -r ${REQS#"$REPO_ROOT"/}"
"$VENV/bin/python" -m pip install --disable-pip-version-check -q -r "$REQS" \
    || die "pip install -r $REQS failed"
"$VENV/bin/python" -c 'import influxdb_client_3, influxdb_client, pyarrow.flight, pytest, requests' \
    || die "venv $VENV is missing a test dependency after pip install"
echo "$WANT" > "$STAMP"
say "venv ready: $VENV"
