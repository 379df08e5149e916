#!/usr/bin/env bash
# Install MinIO, the S3-compatible server the object-store tests run against
# (services/testkit/src/s3.rs), from the Go module proxy with `go install`.
#
#   binary:  ${FERRITE_TOOLS_DIR:-$HOME/.cache/ferrite-tools}/bin/minio
#   stamp:   .../bin/minio.version  ("<module>@<version>", written only after a good install)
#
# Idempotent: nothing happens when the binary and a stamp for the pinned version are there.
# Otherwise it builds (a few minutes on 2 cores the first time; the Go module cache makes
# later builds faster), installs through a temp dir so a failed build never leaves a broken
# binary behind, and fails loudly. Concurrent runs are serialised with flock.
#
# Needs Go >= 1.24 (PATH or /usr/local/go/bin). Run by deploy/dev/setup.sh.
set -euo pipefail

say() { printf 'install-minio: %s\n' "$*"; }
die() { printf 'install-minio: ERROR: %s\n' "$*" >&2; exit 1; }

# The pin. MinIO tags releases as RELEASE.<date>, which are not module versions, so the pin
# is the pseudo-version of a commit: the head of minio/minio master on 2026-02-12.
MINIO_MODULE="github.com/minio/minio"
MINIO_VERSION="v0.0.0-20260212201848-7aac2a2c5b7c"
GO_MIN_MINOR=24 # minio's go.mod says `go 1.24.0`

TOOLS_DIR="${FERRITE_TOOLS_DIR:-$HOME/.cache/ferrite-tools}"
BIN_DIR="$TOOLS_DIR/bin"
BIN="$BIN_DIR/minio"
STAMP="$BIN_DIR/minio.version"
WANT="$MINIO_MODULE@$MINIO_VERSION"

installed() {
    [ -x "$BIN" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] \
        && "$BIN" --version >/dev/null 2>&1
}

if installed; then
    say "MinIO present: $BIN ($WANT)"
    exit 0
fi

mkdir -p "$BIN_DIR" || die "cannot create $BIN_DIR"
if command -v flock >/dev/null 2>&1; then
    exec 9>"$TOOLS_DIR/.minio.lock"
    flock 9 || die "cannot lock $TOOLS_DIR/.minio.lock"
    # Another run may have installed it while we waited.
    if installed; then
        say "MinIO present: $BIN ($WANT)"
        exit 0
    fi
fi

# --- Go -----------------------------------------------------------------------------------------
# shellcheck source=go.sh
. "$(dirname "${BASH_SOURCE[0]}")/go.sh"
GO_BIN="$(pick_go "$GO_MIN_MINOR")" || die "no Go >= 1.$GO_MIN_MINOR found (PATH, /usr/local/go/bin): install Go to build MinIO"

# --- build --------------------------------------------------------------------------------------
say "building $WANT with $("$GO_BIN" env GOVERSION) (first time: several minutes)"
TMP_BIN="$(mktemp -d "$TOOLS_DIR/.minio-build.XXXXXX")"
trap 'rm -rf "$TMP_BIN"' EXIT
start=$(date +%s)
# CGO off: a static binary, no C toolchain needed (MinIO's releases are built this way).
# GOTOOLCHAIN=local: never download another Go toolchain; GOFLAGS: no VCS stamping.
if ! env GOBIN="$TMP_BIN" CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-buildvcs=false \
    "$GO_BIN" install "$WANT"; then
    die "go install $WANT failed (see the output above)"
fi
[ -x "$TMP_BIN/minio" ] || die "go install $WANT produced no minio binary"
"$TMP_BIN/minio" --version >/dev/null 2>&1 || die "the freshly built minio does not run"

rm -f "$STAMP"
mv -f "$TMP_BIN/minio" "$BIN" || die "cannot move minio to $BIN"
echo "$WANT" > "$STAMP"
say "installed $BIN ($WANT) in $(( $(date +%s) - start ))s"
