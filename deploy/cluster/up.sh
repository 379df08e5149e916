#!/usr/bin/env bash
# `make cluster`: a local ferrite cluster of real processes —
#   PostgreSQL (Debian's), MinIO (deploy/dev/install-minio.sh), one catalog service, one
#   router (the front door on 127.0.0.1:8181), two ingesters, one querier and one compactor.
# State, logs and pid files live in .cluster/ at the repo root; `make cluster-down` stops
# everything (data is kept; `make cluster-down CLEAN=1` removes it).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
STATE="$ROOT/.cluster"
TARGET="${CARGO_TARGET_DIR:-$HOME/.cache/ferrite-target}"
FERRITE="${FERRITE_BIN:-$TARGET/debug/ferrite}"
MINIO="${FERRITE_MINIO:-${FERRITE_TOOLS_DIR:-$HOME/.cache/ferrite-tools}/bin/minio}"
PG_PORT="${FERRITE_CLUSTER_PG_PORT:-15432}"
S3_PORT="${FERRITE_CLUSTER_S3_PORT:-19000}"
CATALOG_PORT=8190 INGESTER1_PORT=8191 INGESTER2_PORT=8192 QUERIER_PORT=8193 ROUTER_PORT=8181
COMPACTOR_PORT=8194
S3_KEY=ferrite-dev S3_SECRET=ferrite-dev-secret BUCKET=ferrite

say() { printf 'cluster: %s\n' "$*"; }
die() { printf 'cluster: ERROR: %s\n' "$*" >&2; exit 1; }

mkdir -p "$STATE/logs" "$STATE/pids"
if [ -z "${FERRITE_BIN:-}" ]; then
    say "building ferrite"
    cargo test --workspace --no-run
fi
[ -x "$MINIO" ] || die "MinIO missing at $MINIO: run deploy/dev/setup.sh"

running() { [ -f "$STATE/pids/$1.pid" ] && kill -0 "$(cat "$STATE/pids/$1.pid")" 2>/dev/null; }

wait_http() { # name url
    for _ in $(seq 1 300); do
        curl -sf -o /dev/null "$2" && return 0
        running "$1" || { tail -20 "$STATE/logs/$1.log" >&2; die "$1 exited"; }
        sleep 0.1
    done
    tail -20 "$STATE/logs/$1.log" >&2
    die "$1 did not become ready at $2"
}

start() { # name command...
    local name=$1; shift
    if running "$name"; then say "$name already running"; return; fi
    nohup "$@" >>"$STATE/logs/$name.log" 2>&1 &
    echo $! >"$STATE/pids/$name.pid"
}

# --- PostgreSQL -------------------------------------------------------------------------
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -n "$PGBIN" ] || die "PostgreSQL not installed: run deploy/dev/setup.sh"
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
if [ ! -f "$STATE/pg/PG_VERSION" ]; then
    say "initdb $STATE/pg"
    mkdir -p "$STATE/pg"
    [ "$(id -u)" = 0 ] && chown -R postgres:postgres "$STATE/pg"
    as_pg "$PGBIN/initdb" -D "$STATE/pg" -A trust -U postgres --no-sync >"$STATE/logs/initdb.log"
fi
if ! as_pg "$PGBIN/pg_ctl" -D "$STATE/pg" status >/dev/null 2>&1; then
    say "starting PostgreSQL on 127.0.0.1:$PG_PORT"
    [ "$(id -u)" = 0 ] && chown postgres:postgres "$STATE/logs" && touch "$STATE/logs/postgres.log" && chown postgres "$STATE/logs/postgres.log"
    as_pg "$PGBIN/pg_ctl" -D "$STATE/pg" -w -l "$STATE/logs/postgres.log" \
        -o "-p $PG_PORT -c listen_addresses=127.0.0.1 -c unix_socket_directories=$STATE/pg" start >/dev/null
fi
DSN="postgres://postgres@127.0.0.1:$PG_PORT/postgres"

# --- MinIO ------------------------------------------------------------------------------
mkdir -p "$STATE/minio"
MINIO_ROOT_USER=$S3_KEY MINIO_ROOT_PASSWORD=$S3_SECRET MINIO_BROWSER=off MINIO_UPDATE=off \
    start minio "$MINIO" server --quiet --address "127.0.0.1:$S3_PORT" "$STATE/minio"
wait_http minio "http://127.0.0.1:$S3_PORT/minio/health/ready"
cargo run -q -p ferrite-testkit --bin ferrite-s3-bucket -- --endpoint "http://127.0.0.1:$S3_PORT" --bucket "$BUCKET" \
    --access-key "$S3_KEY" --secret-key "$S3_SECRET"
S3_ARGS=(--object-store s3 --bucket "$BUCKET" --s3-endpoint "http://127.0.0.1:$S3_PORT"
         --s3-access-key-id "$S3_KEY" --s3-secret-access-key "$S3_SECRET" --s3-allow-http)

# --- the admin token ----------------------------------------------------------------------
# Every service trusts it, and uses it to call the others (a Kubernetes Secret in a real
# deployment). Generated once; kept across restarts.
TOKEN_FILE="$STATE/admin-token"
if [ ! -s "$TOKEN_FILE" ]; then
    (umask 077 && printf 'apiv1_%s\n' "$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')" >"$TOKEN_FILE")
    say "created the admin token in $TOKEN_FILE"
fi
export FERRITE_ADMIN_TOKEN_FILE="$TOKEN_FILE"

# --- ferrite services ---------------------------------------------------------------------
CATALOG="http://127.0.0.1:$CATALOG_PORT"
INGESTERS="http://127.0.0.1:$INGESTER1_PORT,http://127.0.0.1:$INGESTER2_PORT"
start catalog "$FERRITE" run catalog --bind "127.0.0.1:$CATALOG_PORT" --catalog-dsn "$DSN"
wait_http catalog "$CATALOG/health"
for i in 1 2; do
    port_var="INGESTER${i}_PORT"
    start "ingester$i" "$FERRITE" run ingester --bind "127.0.0.1:${!port_var}" --catalog "$CATALOG" \
        --wal-dir "$STATE/ingester$i/wal" "${S3_ARGS[@]}"
done
wait_http ingester1 "http://127.0.0.1:$INGESTER1_PORT/health"
wait_http ingester2 "http://127.0.0.1:$INGESTER2_PORT/health"
# --queriers: every querier of the cluster, so system.queries shows all their queries.
start querier "$FERRITE" run querier --bind "127.0.0.1:$QUERIER_PORT" --catalog "$CATALOG" \
    --ingesters "$INGESTERS" --queriers "http://127.0.0.1:$QUERIER_PORT" "${S3_ARGS[@]}"
wait_http querier "http://127.0.0.1:$QUERIER_PORT/health"
start router "$FERRITE" run router --bind "127.0.0.1:$ROUTER_PORT" --catalog "$CATALOG" \
    --ingesters "$INGESTERS" --queriers "http://127.0.0.1:$QUERIER_PORT"
wait_http router "http://127.0.0.1:$ROUTER_PORT/health"
start compactor "$FERRITE" run compactor --bind "127.0.0.1:$COMPACTOR_PORT" --catalog "$CATALOG" \
    "${S3_ARGS[@]}"
wait_http compactor "http://127.0.0.1:$COMPACTOR_PORT/health"

say "up: front door http://127.0.0.1:$ROUTER_PORT (HTTP, Flight, Flight SQL); logs in $STATE/logs"
say "admin token: $TOKEN_FILE (send it as 'Authorization: Bearer <token>')"
