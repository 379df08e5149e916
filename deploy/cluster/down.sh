#!/usr/bin/env bash
# `make cluster-down`: stop what deploy/cluster/up.sh started. Ingesters get SIGTERM and
# persist their buffers before they exit. CLEAN=1 also deletes the cluster's data.
set -euo pipefail
cd "$(dirname "$0")/../.."
STATE="$(pwd)/.cluster"
say() { printf 'cluster: %s\n' "$*"; }

stop() { # name
    local f="$STATE/pids/$1.pid"
    [ -f "$f" ] || return 0
    local pid; pid=$(cat "$f")
    if kill -0 "$pid" 2>/dev/null; then
        say "stopping $1 ($pid)"
        kill -TERM "$pid"
        for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && { say "$1 did not stop in 30 s; killing"; kill -KILL "$pid"; }
    fi
    rm -f "$f"
}

for s in router querier compactor ingester1 ingester2 catalog minio; do stop "$s"; done
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
if [ -n "$PGBIN" ] && [ -f "$STATE/pg/PG_VERSION" ]; then
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$PGBIN/pg_ctl" -D "$STATE/pg" -m fast stop >/dev/null 2>&1 || true
    else "$PGBIN/pg_ctl" -D "$STATE/pg" -m fast stop >/dev/null 2>&1 || true; fi
    say "PostgreSQL stopped"
fi
if [ "${CLEAN:-0}" = 1 ]; then rm -rf "$STATE"; say "removed $STATE"; fi
say "down"
