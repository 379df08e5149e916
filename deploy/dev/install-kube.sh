#!/usr/bin/env bash
# Build the Kubernetes control-plane programs the k8s tests run for real
# (services/testkit/src/kube.rs): kube-apiserver, kube-controller-manager and kubectl, from
# the Go module proxy, at the version pinned in deploy/dev/kube/go.mod.
#
#   binaries: ${FERRITE_TOOLS_DIR:-$HOME/.cache/ferrite-tools}/bin/{kube-apiserver,kube-controller-manager,kubectl}
#   stamps:   .../bin/<binary>.version  ("k8s.io/kubernetes@<version> go.sum:<hash>", written
#             only after a good build)
#
# k8s.io/kubernetes cannot be `go install`ed (its go.mod replaces the k8s.io staging modules
# with ./staging), so deploy/dev/kube is a small wrapper module that requires it and replaces
# each staging module with its published version; its go.sum pins every dependency.
# The version is stamped into the binaries, or kubectl refuses to talk to the server.
# etcd, the storage, is Debian's etcd-server package (deploy/dev/setup.sh installs it).
#
# Idempotent: nothing is built when every binary and a stamp for the pinned version are there.
# Otherwise it builds the missing ones (first time ~15 minutes on a busy 2-core machine,
# kube-apiserver most of it; with the Go build cache in ~/.cache/go-build warm, seconds),
# through a temp dir so a failed build never leaves a broken binary behind, and fails loudly.
# Concurrent runs are serialised with flock.
#
# Needs Go >= 1.25 (PATH or /usr/local/go/bin). Run by deploy/dev/setup.sh.
set -euo pipefail

say() { printf 'install-kube: %s\n' "$*"; }
die() { printf 'install-kube: ERROR: %s\n' "$*" >&2; exit 1; }

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
MODULE_DIR="$REPO_ROOT/deploy/dev/kube"
BINARIES=(kube-apiserver kube-controller-manager kubectl)
GO_MIN_MINOR=25 # k8s.io/kubernetes v1.35's go.mod says `go 1.25.0`

TOOLS_DIR="${FERRITE_TOOLS_DIR:-$HOME/.cache/ferrite-tools}"
BIN_DIR="$TOOLS_DIR/bin"

# --- the pin: one place, the wrapper module's go.mod ----------------------------------------
[ -f "$MODULE_DIR/go.mod" ] && [ -f "$MODULE_DIR/go.sum" ] \
    || die "wrapper module not found: $MODULE_DIR/go.mod and go.sum"
KUBE_VERSION="$(sed -n 's/^require k8s\.io\/kubernetes \(v[0-9][0-9.]*\)$/\1/p' "$MODULE_DIR/go.mod")"
[ -n "$KUBE_VERSION" ] || die "no 'require k8s.io/kubernetes vX.Y.Z' line in $MODULE_DIR/go.mod"
# v1.35.4 -> 35 and v0.35.4, the version of the staging modules (k8s.io/api, ...).
KUBE_MINOR="$(printf '%s' "$KUBE_VERSION" | cut -d. -f2)"
STAGING_VERSION="v0.${KUBE_VERSION#v1.}"
# Every staging module must be replaced by the release that matches k8s.io/kubernetes.
stale="$(sed -n 's/^[[:space:]]*\(k8s\.io\/[^ ]*\) => k8s\.io\/[^ ]* \(v[^ ]*\)$/\1 \2/p' "$MODULE_DIR/go.mod" \
    | awk -v want="$STAGING_VERSION" '$2 != want { print $1 " " $2 }')"
[ -z "$stale" ] || die "$MODULE_DIR/go.mod replaces staging modules with versions other than $STAGING_VERSION: $stale"
# The stamp names the go.sum too: a bumped dependency rebuilds even at the same version.
WANT="k8s.io/kubernetes@$KUBE_VERSION go.sum:$(sha256sum "$MODULE_DIR/go.sum" | cut -c1-16)"

# What `<binary> --version` (kubectl: `version --client`) prints when the build stamped it.
reports_version() {
    local out
    case "$(basename "$1")" in
        kubectl) out="$("$1" version --client 2>/dev/null)" || return 1 ;;
        *) out="$("$1" --version 2>/dev/null)" || return 1 ;;
    esac
    [[ "$out" == *"$KUBE_VERSION"* ]]
}

installed() {
    local bin="$BIN_DIR/$1"
    [ -x "$bin" ] && [ -f "$bin.version" ] && [ "$(cat "$bin.version")" = "$WANT" ] \
        && reports_version "$bin"
}

missing() {
    local name
    for name in "${BINARIES[@]}"; do
        installed "$name" || printf '%s\n' "$name"
    done
}

todo="$(missing)"
if [ -z "$todo" ]; then
    say "Kubernetes $KUBE_VERSION present: ${BINARIES[*]} in $BIN_DIR"
    exit 0
fi

mkdir -p "$BIN_DIR" || die "cannot create $BIN_DIR"
if command -v flock >/dev/null 2>&1; then
    exec 9>"$TOOLS_DIR/.kube.lock"
    flock 9 || die "cannot lock $TOOLS_DIR/.kube.lock"
    # Another run may have built some while we waited.
    todo="$(missing)"
    if [ -z "$todo" ]; then
        say "Kubernetes $KUBE_VERSION present: ${BINARIES[*]} in $BIN_DIR"
        exit 0
    fi
fi

# --- Go -----------------------------------------------------------------------------------------
# shellcheck source=go.sh
. "$(dirname "${BASH_SOURCE[0]}")/go.sh"
GO_BIN="$(pick_go "$GO_MIN_MINOR")" || die "no Go >= 1.$GO_MIN_MINOR found (PATH, /usr/local/go/bin): install Go to build Kubernetes $KUBE_VERSION"

# --- build --------------------------------------------------------------------------------------
# The version the binaries report; kubectl checks the server's (an unstamped build says
# v0.0.0-master+$Format:%H$, which kubectl cannot parse). -s -w: no symbols, ~30% smaller.
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$KUBE_MINOR"
    ldflags+=" -X $pkg.gitTreeState=clean"
done

TMP_BIN="$(mktemp -d "$TOOLS_DIR/.kube-build.XXXXXX")"
trap 'rm -rf "$TMP_BIN"' EXIT
say "building Kubernetes $KUBE_VERSION ($(echo "$todo" | tr '\n' ' ' | sed 's/ $//')) with $("$GO_BIN" env GOVERSION) (cold Go build cache: ~15 minutes on 2 cores; warm: seconds)"
total_start=$(date +%s)
for name in $todo; do
    start=$(date +%s)
    # -mod=readonly: go.mod/go.sum are the pins, a build never changes them.
    # GOTOOLCHAIN=local: never download another Go toolchain. CGO off: static binaries, no C
    # toolchain needed (Kubernetes releases build these the same way). GOCACHE under ~/.cache
    # keeps the compiled packages for the next build (the three binaries share most of them).
    if ! (cd "$MODULE_DIR" && env CGO_ENABLED=0 GOTOOLCHAIN=local \
        GOFLAGS="-mod=readonly -buildvcs=false" GOCACHE="${GOCACHE:-$HOME/.cache/go-build}" \
        "$GO_BIN" build -ldflags "$ldflags" -o "$TMP_BIN/$name" "k8s.io/kubernetes/cmd/$name"); then
        die "go build k8s.io/kubernetes/cmd/$name@$KUBE_VERSION failed (see the output above)"
    fi
    [ -x "$TMP_BIN/$name" ] || die "go build produced no $name binary"
    reports_version "$TMP_BIN/$name" \
        || die "the freshly built $name does not run or does not report version $KUBE_VERSION"
    rm -f "$BIN_DIR/$name.version"
    mv -f "$TMP_BIN/$name" "$BIN_DIR/$name" || die "cannot move $name to $BIN_DIR/$name"
    echo "$WANT" > "$BIN_DIR/$name.version"
    say "installed $BIN_DIR/$name ($KUBE_VERSION) in $(( $(date +%s) - start ))s"
done
say "Kubernetes $KUBE_VERSION ready in $BIN_DIR after $(( $(date +%s) - total_start ))s"
