#!/usr/bin/env bash
# Install Prometheus and promtool, which the observability tests
# (services/testkit/python/tests/test_observability.py) run against ferrite's /metrics:
# Debian's `prometheus` package (/usr/bin/prometheus, /usr/bin/promtool).
#
# The tests start their own Prometheus on a free port with a temp storage dir, so the
# package's system service is not wanted: it is kept from starting during the install (a
# policy-rc.d that denies, unless the machine already has one) and disabled where systemd
# runs, so nothing holds port 9090.
#
# Idempotent: nothing happens (well under a second) when both programs are installed and
# run. Otherwise `apt-get update` + install: about 20 seconds. Run by deploy/dev/setup.sh.
set -euo pipefail

say() { printf 'install-prometheus: %s\n' "$*"; }
die() { printf 'install-prometheus: ERROR: %s\n' "$*" >&2; exit 1; }

installed() {
    [ "$(dpkg-query -W -f='${Status}' prometheus 2>/dev/null || true)" = "install ok installed" ] \
        && /usr/bin/prometheus --version >/dev/null 2>&1 \
        && /usr/bin/promtool --version >/dev/null 2>&1
}

if installed; then
    say "Prometheus present: $(/usr/bin/prometheus --version 2>&1 | head -1)"
    exit 0
fi
command -v apt-get >/dev/null 2>&1 || die "no apt-get: install Debian's prometheus package (prometheus, promtool) by hand"

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "not root and no sudo: run 'apt-get install prometheus' as root"
    SUDO=(sudo)
fi

# Keep the package's service from starting (and taking port 9090) during the install.
POLICY=/usr/sbin/policy-rc.d
OUR_POLICY=0
if [ ! -e "$POLICY" ]; then
    printf '#!/bin/sh\n# deploy/dev/install-prometheus.sh: no service starts during this install\nexit 101\n' \
        | "${SUDO[@]}" tee "$POLICY" >/dev/null
    "${SUDO[@]}" chmod 755 "$POLICY"
    OUR_POLICY=1
fi
cleanup() { if [ "$OUR_POLICY" -eq 1 ]; then "${SUDO[@]}" rm -f "$POLICY"; fi; }
trap cleanup EXIT

start=$(date +%s)
say "installing Debian's prometheus package"
"${SUDO[@]}" apt-get update -q || die "apt-get update failed"
# No recommends: prometheus-node-exporter is not needed.
DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -q --no-install-recommends prometheus \
    || die "apt-get install prometheus failed"

# Where systemd runs the machine, the unit was enabled by the package: disable and stop it.
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    "${SUDO[@]}" systemctl disable --now prometheus.service >/dev/null 2>&1 || true
fi

installed || die "prometheus/promtool do not run after the install"
say "installed $(/usr/bin/prometheus --version 2>&1 | head -1) in $(( $(date +%s) - start ))s"
