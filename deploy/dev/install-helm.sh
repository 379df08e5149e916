#!/usr/bin/env bash
# Install Helm, which the chart tests (k8s-tests/) use to lint and render helm/ferrite, from
# the Go module proxy with `go install`.
#
#   binary:  ${FERRITE_TOOLS_DIR:-$HOME/.cache/ferrite-tools}/bin/helm
#   stamp:   .../bin/helm.version  ("<module>@<version>", written only after a good install)
#
# Idempotent: nothing happens when the binary and a stamp for the pinned version are there.
# Otherwise it builds (about two minutes on 2 cores the first time; the Go module cache makes
# later builds faster), installs through a temp dir so a failed build never leaves a broken
# binary behind, and fails loudly. Concurrent runs are serialised with flock.
#
# Needs Go >= 1.26 (PATH or /usr/local/go/bin). Run by deploy/dev/setup.sh.
set -euo pipefail

say() { printf 'install-helm: %s\n' "$*"; }
die() { printf 'install-helm: ERROR: %s\n' "$*" >&2; exit 1; }

# The pin.
HELM_MODULE="helm.sh/helm/v3/cmd/helm"
HELM_VERSION="v3.22.0"
GO_MIN_MINOR=26 # helm v3.22.0's go.mod says `go 1.26.0`
# What Helm's own Makefile stamps into a release build, which `go install` alone leaves at
# the source defaults: the version `helm version` prints, and the Kubernetes version that
# `helm template` and `helm lint` assume without a cluster (Helm derives it from the
# k8s.io/client-go it is built with: v0.37.0 -> 1.37; the source default is 1.20).
K8S_MAJOR=1
K8S_MINOR=37
LDFLAGS="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
for pkg in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
    LDFLAGS="$LDFLAGS -X $pkg.k8sVersionMajor=$K8S_MAJOR -X $pkg.k8sVersionMinor=$K8S_MINOR"
done

TOOLS_DIR="${FERRITE_TOOLS_DIR:-$HOME/.cache/ferrite-tools}"
BIN_DIR="$TOOLS_DIR/bin"
BIN="$BIN_DIR/helm"
STAMP="$BIN_DIR/helm.version"
WANT="$HELM_MODULE@$HELM_VERSION"

installed() {
    [ -x "$BIN" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] \
        && "$BIN" version --short >/dev/null 2>&1
}

if installed; then
    say "Helm present: $BIN ($WANT)"
    exit 0
fi

mkdir -p "$BIN_DIR" || die "cannot create $BIN_DIR"
if command -v flock >/dev/null 2>&1; then
    exec 9>"$TOOLS_DIR/.helm.lock"
    flock 9 || die "cannot lock $TOOLS_DIR/.helm.lock"
    # Another run may have installed it while we waited.
    if installed; then
        say "Helm present: $BIN ($WANT)"
        exit 0
    fi
fi

# --- Go -----------------------------------------------------------------------------------------
# shellcheck source=go.sh
. "$(dirname "${BASH_SOURCE[0]}")/go.sh"
GO_BIN="$(pick_go "$GO_MIN_MINOR")" || die "no Go >= 1.$GO_MIN_MINOR found (PATH, /usr/local/go/bin): install Go to build Helm"

# --- build --------------------------------------------------------------------------------------
say "building $WANT with $("$GO_BIN" env GOVERSION) (first time: about two minutes)"
TMP_BIN="$(mktemp -d "$TOOLS_DIR/.helm-build.XXXXXX")"
trap 'rm -rf "$TMP_BIN"' EXIT
start=$(date +%s)
# CGO off: a static binary, no C toolchain needed (Helm's releases are built this way).
# GOTOOLCHAIN=local: never download another Go toolchain; GOFLAGS: no VCS stamping.
if ! env GOBIN="$TMP_BIN" CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-buildvcs=false \
    "$GO_BIN" install -ldflags "$LDFLAGS" "$WANT"; then
    die "go install $WANT failed (see the output above)"
fi
[ -x "$TMP_BIN/helm" ] || die "go install $WANT produced no helm binary"
"$TMP_BIN/helm" version --short >/dev/null 2>&1 || die "the freshly built helm does not run"

rm -f "$STAMP"
mv -f "$TMP_BIN/helm" "$BIN" || die "cannot move helm to $BIN"
echo "$WANT" > "$STAMP"
say "installed $BIN ($WANT) in $(( $(date +%s) - start ))s"
