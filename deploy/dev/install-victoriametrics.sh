#!/usr/bin/env bash
# Install VictoriaMetrics (single-node `victoria-metrics`), one of the peers `make bench-peers`
# loads with the same line protocol as ferrite, from the Go module proxy with `go install`.
#
#   binary:  ${FERRITE_TOOLS_DIR:-$HOME/.cache/ferrite-tools}/bin/victoria-metrics
#   stamp:   .../bin/victoria-metrics.version  ("<module>@<version>", written only after a good install)
#
# Idempotent: nothing happens when the binary and a stamp for the pinned version are there.
# Otherwise it builds (a few minutes on 2 cores the first time), installs through a temp dir
# so a failed build never leaves a broken binary behind, and fails loudly. Concurrent runs
# are serialised with flock (go.sh's go_install_tool).
#
# Needs Go >= 1.24 (PATH or /usr/local/go/bin). Run by `make bench-peers`, not by setup.sh.
set -euo pipefail

say() { printf 'install-victoriametrics: %s\n' "$*"; }
die() { printf 'install-victoriametrics: ERROR: %s\n' "$*" >&2; exit 1; }

MODULE="github.com/VictoriaMetrics/VictoriaMetrics"
VERSION="v1.151.0"
GO_MIN_MINOR=24
# What `victoria-metrics -version` prints (its release builds set the same variable).
LDFLAGS="-X $MODULE/lib/buildinfo.Version=victoria-metrics-$VERSION"

# shellcheck source=go.sh
. "$(dirname "${BASH_SOURCE[0]}")/go.sh"
go_install_tool VictoriaMetrics victoria-metrics "$MODULE/app/victoria-metrics@$VERSION" \
    "$GO_MIN_MINOR" "$LDFLAGS" -version
