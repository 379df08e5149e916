#!/usr/bin/env bash
# Install influxd, InfluxDB 1.x itself: the reference the InfluxQL differential tests and the
# peer benchmarks compare ferrite with. Built from the Go module proxy.
#
#   binary:  ${FERRITE_TOOLS_DIR:-$HOME/.cache/ferrite-tools}/bin/influxd
#   stamp:   .../bin/influxd.version  ("<module>@<version>", written only after a good install)
#
# influxd links Flux's Rust library (libflux) through cgo and pkg-config, so a plain
# `go install` fails ("Package flux was not found"). InfluxData's pkg-config wrapper builds
# libflux with cargo on demand: it is installed first and handed to the build as PKG_CONFIG.
# Flux pins a Rust toolchain that cannot be downloaded here; RUSTUP_TOOLCHAIN=stable uses the
# installed one. CARGO_TARGET_DIR is unset for the build: the wrapper looks for libflux.a in
# the flux module's own target/ directory.
#
# Idempotent (a working binary stamped with the pin is kept), atomic (built in a temp dir),
# serialised with flock. Needs Go >= 1.22, cargo, and a C compiler (cgo).
set -euo pipefail

say() { printf 'install-influxd: %s\n' "$*"; }
die() { printf 'install-influxd: ERROR: %s\n' "$*" >&2; exit 1; }

MODULE="github.com/influxdata/influxdb/cmd/influxd"
VERSION="v1.13.2"
PKG_CONFIG_WRAPPER="github.com/influxdata/pkg-config@v0.3.0"
GO_MIN_MINOR=22
want="$MODULE@$VERSION"

# shellcheck source=go.sh
. "$(dirname "${BASH_SOURCE[0]}")/go.sh"

tools="${FERRITE_TOOLS_DIR:-$HOME/.cache/ferrite-tools}"
bin_dir="$tools/bin"
bin="$bin_dir/influxd"
stamp="$bin_dir/influxd.version"
installed() { [ -x "$bin" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && "$bin" version >/dev/null 2>&1; }

if installed; then
    say "influxd present: $bin ($want)"
    exit 0
fi
mkdir -p "$bin_dir"
exec 9>"$tools/.influxd.lock"
flock 9 || die "cannot lock $tools/.influxd.lock"
if installed; then
    say "influxd present: $bin ($want)"
    exit 0
fi
go_bin="$(pick_go "$GO_MIN_MINOR")" || die "no Go >= 1.$GO_MIN_MINOR found: install Go to build influxd"
command -v cargo >/dev/null 2>&1 || die "cargo is needed to build Flux's libflux"
command -v cc >/dev/null 2>&1 || die "a C compiler (cc) is needed: influxd is built with cgo"

tmp="$(mktemp -d "$tools/.influxd-build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
start=$(date +%s)
say "building $want with $("$go_bin" env GOVERSION) (about 5 minutes the first time)"
env GOBIN="$tmp" GOTOOLCHAIN=local GOFLAGS=-buildvcs=false "$go_bin" install "$PKG_CONFIG_WRAPPER" \
    || die "go install $PKG_CONFIG_WRAPPER failed"
env -u CARGO_TARGET_DIR GOBIN="$tmp" GOTOOLCHAIN=local GOFLAGS=-buildvcs=false \
    PKG_CONFIG="$tmp/pkg-config" RUSTUP_TOOLCHAIN=stable CGO_ENABLED=1 \
    "$go_bin" install "$want" || die "go install $want failed (see the output above)"
"$tmp/influxd" version >/dev/null 2>&1 || die "the build produced no working influxd"
rm -f "$stamp"
mv -f "$tmp/influxd" "$bin"
echo "$want" > "$stamp"
say "installed $bin ($want) in $(( $(date +%s) - start ))s"
