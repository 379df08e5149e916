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

# shellcheck source=go.sh
. "$(dirname "${BASH_SOURCE[0]}")/go.sh"
go_install_tool MinIO minio "$MINIO_MODULE@$MINIO_VERSION" "$GO_MIN_MINOR" "" --version
