#!/usr/bin/env bash
# Install Jaeger (v2, the OpenTelemetry-Collector-based `jaeger` binary), the trace backend
# of the observability tests (services/testkit/python/tests/test_observability.py): an OTLP
# gRPC receiver plus the query API (`GET /api/traces/<id>`), traces kept in memory.
#
#   binary:  ${FERRITE_TOOLS_DIR:-$HOME/.cache/ferrite-tools}/bin/jaeger
#   stamp:   .../bin/jaeger.version  ("<module>/cmd/jaeger@<version>", written only after a good build)
#
# Built from the Go module proxy. Not `go install module@version` like the other tools
# (deploy/dev/go.sh): Jaeger's go.mod has a `replace` directive, which `go install` refuses,
# so the module is downloaded into the Go module cache and `go build` runs inside it, with
# Jaeger's own go.mod and go.sum — the same dependency set as an upstream release build.
#
# Idempotent: nothing happens when the binary and a stamp for the pinned version are there.
# Otherwise it builds (5 to 10 minutes on 2 cores with an empty Go build cache: 9 minutes
# measured while a cargo build shared the cores), installs through a temp dir so a failed
# build never leaves a broken binary behind, and fails loudly. Concurrent runs are
# serialised with flock.
#
# Needs Go >= 1.24 (PATH or /usr/local/go/bin). Run by deploy/dev/setup.sh.
set -euo pipefail

say() { printf 'install-jaeger: %s\n' "$*"; }
die() { printf 'install-jaeger: ERROR: %s\n' "$*" >&2; exit 1; }

# The pin. Jaeger tags each release twice on one commit, v1.x (the module version, since the
# module path has no /v2) and v2.x (the binary's): v1.76.0 is Jaeger v2.13.0.
JAEGER_MODULE="github.com/jaegertracing/jaeger"
JAEGER_VERSION="v1.76.0"
JAEGER_V2_VERSION="v2.13.0"
GO_MIN_MINOR=24 # jaeger's go.mod says `go 1.24.6`
WANT="$JAEGER_MODULE/cmd/jaeger@$JAEGER_VERSION"
# What Jaeger's Makefile stamps into a release build (`jaeger version` prints it).
LDFLAGS="-s -w -X $JAEGER_MODULE/internal/version.latestVersion=$JAEGER_V2_VERSION"

# shellcheck source=go.sh
. "$(dirname "${BASH_SOURCE[0]}")/go.sh"

TOOLS="${FERRITE_TOOLS_DIR:-$HOME/.cache/ferrite-tools}"
BIN_DIR="$TOOLS/bin"
BIN="$BIN_DIR/jaeger"
STAMP="$BIN_DIR/jaeger.version"

installed() {
    [ -x "$BIN" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] \
        && "$BIN" version >/dev/null 2>&1
}

if installed; then
    say "Jaeger present: $BIN ($WANT)"
    exit 0
fi
mkdir -p "$BIN_DIR" || die "cannot create $BIN_DIR"
if command -v flock >/dev/null 2>&1; then
    exec 9>"$TOOLS/.jaeger.lock"
    flock 9 || die "cannot lock $TOOLS/.jaeger.lock"
    # Another run may have installed it while we waited.
    if installed; then
        say "Jaeger present: $BIN ($WANT)"
        exit 0
    fi
fi

GO_BIN="$(pick_go "$GO_MIN_MINOR")" \
    || die "no Go >= 1.$GO_MIN_MINOR found (PATH, /usr/local/go/bin): install Go to build Jaeger"
say "building $WANT with $("$GO_BIN" env GOVERSION) (the first time takes minutes)"
start=$(date +%s)

# GOTOOLCHAIN=local: never download another Go toolchain (go.mod names a `toolchain` line).
SRC="$(env GOTOOLCHAIN=local GOFLAGS= "$GO_BIN" mod download -json "$JAEGER_MODULE@$JAEGER_VERSION" \
    | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')" \
    || die "go mod download $JAEGER_MODULE@$JAEGER_VERSION failed"
[ -n "$SRC" ] && [ -f "$SRC/go.mod" ] || die "go mod download gave no source directory for $JAEGER_MODULE@$JAEGER_VERSION"

tmp="$(mktemp -d "$TOOLS/.jaeger-build.XXXXXX")"
# CGO off: a static binary, no C toolchain needed (how Jaeger builds its releases).
# -mod=mod: the module cache is read-only and go.sum is complete, so nothing is written;
# -buildvcs=false: the module cache is no VCS checkout.
if ! (cd "$SRC" && env CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS="-buildvcs=false -mod=readonly" \
    "$GO_BIN" build -trimpath -ldflags "$LDFLAGS" -o "$tmp/jaeger" ./cmd/jaeger); then
    rm -rf "$tmp"
    die "go build $WANT failed (see the output above)"
fi
if ! "$tmp/jaeger" version >/dev/null 2>&1; then
    rm -rf "$tmp"
    die "go build $WANT produced no working jaeger binary"
fi
rm -f "$STAMP"
mv -f "$tmp/jaeger" "$BIN" || { rm -rf "$tmp"; die "cannot move jaeger to $BIN"; }
rm -rf "$tmp"
echo "$WANT" > "$STAMP"
say "installed $BIN ($WANT = Jaeger $JAEGER_V2_VERSION) in $(( $(date +%s) - start ))s"
