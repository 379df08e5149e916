#!/usr/bin/env bash
# Build the SQL client programs the end-to-end tests drive
# (services/testkit/python/tests/test_sql_clients.py):
#
#   ferrite-sql-go    Go, arrow-go's Flight SQL client with the Grafana Flight SQL datasource's
#                     macros (services/testkit/clients/go; versions pinned in go.mod/go.sum)
#                       bin:   ${FERRITE_TOOLS_DIR:-$HOME/.cache/ferrite-tools}/bin/ferrite-sql-go
#                       stamp: .../bin/ferrite-sql-go.sha256  (hash of the sources + Go version)
#   ferrite-sql-jdbc  Java, the Arrow Flight SQL JDBC driver from Maven Central
#                     (services/testkit/clients/jdbc; driver version and sha256 pinned below)
#                       jar:   .../jdbc/flight-sql-jdbc-driver-<version>.jar
#                       bin:   .../bin/ferrite-sql-jdbc  (a wrapper running java on the jar)
#                       stamp: .../jdbc/classes.sha256  (hash of the source + jar + javac version)
#
# Idempotent: a program is rebuilt only when its stamp differs. Builds go through temp dirs,
# so a failed build never leaves a broken program behind; failures are loud. Concurrent
# runs are serialised with flock.
#
# Needs Go >= 1.26 (PATH or /usr/local/go/bin; the Go module proxy for the first build),
# a JDK >= 17 and Maven (Debian: default-jdk-headless, maven). Run by deploy/dev/setup.sh.
set -euo pipefail

say() { printf 'install-clients: %s\n' "$*"; }
die() { printf 'install-clients: ERROR: %s\n' "$*" >&2; exit 1; }

# The pins. The driver's sha256 was computed from the Maven Central artifact (whose published
# sha1 is a77be460b83b673e41c5e2d364e7189a223f4861); Maven checks the sha1 on download, we
# check the sha256 after.
JDBC_GROUP="org.apache.arrow"
JDBC_ARTIFACT="flight-sql-jdbc-driver"
JDBC_VERSION="18.3.0"
JDBC_SHA256="3f418b46c880e263558c5de669bdbede2c5d4375527ced116fb29f795b03704c"
MVN_DEPENDENCY_PLUGIN="org.apache.maven.plugins:maven-dependency-plugin:3.11.0"
GO_MIN_MINOR=26  # go.mod says `go 1.26.5` (grafana-plugin-sdk-go needs it)
JAVA_MIN=17

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
GO_SRC="$REPO_ROOT/services/testkit/clients/go"
JAVA_SRC="$REPO_ROOT/services/testkit/clients/jdbc/FerriteSqlJdbc.java"

TOOLS_DIR="${FERRITE_TOOLS_DIR:-$HOME/.cache/ferrite-tools}"
BIN_DIR="$TOOLS_DIR/bin"
JDBC_DIR="$TOOLS_DIR/jdbc"
GO_BIN_OUT="$BIN_DIR/ferrite-sql-go"
GO_STAMP="$BIN_DIR/ferrite-sql-go.sha256"
JAR="$JDBC_DIR/$JDBC_ARTIFACT-$JDBC_VERSION.jar"
CLASSES="$JDBC_DIR/classes"
JAVA_STAMP="$JDBC_DIR/classes.sha256"
JDBC_WRAPPER="$BIN_DIR/ferrite-sql-jdbc"

[ -d "$GO_SRC" ] || die "Go client sources not found: $GO_SRC"
[ -f "$JAVA_SRC" ] || die "JDBC client source not found: $JAVA_SRC"
mkdir -p "$BIN_DIR" "$JDBC_DIR" || die "cannot create $BIN_DIR and $JDBC_DIR"

if command -v flock >/dev/null 2>&1; then
    exec 9>"$TOOLS_DIR/.clients.lock"
    flock 9 || die "cannot lock $TOOLS_DIR/.clients.lock"
fi

sha256_of_file() { sha256sum "$1" | cut -d' ' -f1; }

# --- Go: ferrite-sql-go -------------------------------------------------------------------------
# shellcheck source=go.sh
. "$(dirname "${BASH_SOURCE[0]}")/go.sh"
GO_BIN="$(pick_go "$GO_MIN_MINOR")" || die "no Go >= 1.$GO_MIN_MINOR found (PATH, /usr/local/go/bin): install Go to build ferrite-sql-go"
GO_VERSION="$("$GO_BIN" env GOVERSION)"

go_stamp() {
    # Every source file (not tests), go.mod, go.sum, and the compiler version.
    {
        cd "$GO_SRC"
        find . -maxdepth 1 -type f \( -name '*.go' ! -name '*_test.go' -o -name go.mod -o -name go.sum \) \
            -print | LC_ALL=C sort | xargs sha256sum
        echo "go=$GO_VERSION"
    } | sha256sum | cut -d' ' -f1
}
GO_WANT="$(go_stamp)"

if [ -x "$GO_BIN_OUT" ] && [ -f "$GO_STAMP" ] && [ "$(cat "$GO_STAMP")" = "$GO_WANT" ]; then
    say "ferrite-sql-go up to date: $GO_BIN_OUT"
else
    say "building ferrite-sql-go with $GO_VERSION (first time: a few minutes)"
    tmp="$(mktemp -d "$TOOLS_DIR/.sql-go-build.XXXXXX")"
    start=$(date +%s)
    # -mod=readonly: go.mod/go.sum are the pins, a build never changes them.
    # GOTOOLCHAIN=local: never download another Go toolchain. CGO off: no C toolchain needed.
    if ! (cd "$GO_SRC" && env CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS="-mod=readonly -buildvcs=false" \
        "$GO_BIN" build -trimpath -o "$tmp/ferrite-sql-go" .); then
        rm -rf "$tmp"
        die "go build of $GO_SRC failed (see the output above)"
    fi
    # It runs: --help prints the usage (and exits 2).
    usage="$("$tmp/ferrite-sql-go" --help 2>&1 || true)"
    if [[ "$usage" != *-addr* ]]; then
        rm -rf "$tmp"
        die "the freshly built ferrite-sql-go does not run"
    fi
    rm -f "$GO_STAMP"
    mv -f "$tmp/ferrite-sql-go" "$GO_BIN_OUT" || { rm -rf "$tmp"; die "cannot move ferrite-sql-go to $GO_BIN_OUT"; }
    rm -rf "$tmp"
    echo "$GO_WANT" > "$GO_STAMP"
    say "installed $GO_BIN_OUT in $(( $(date +%s) - start ))s"
fi

# --- Java: the JDBC driver and ferrite-sql-jdbc -------------------------------------------------
command -v javac >/dev/null 2>&1 || die "javac not found: install a JDK >= $JAVA_MIN (Debian: default-jdk-headless)"
command -v java >/dev/null 2>&1 || die "java not found: install a JDK >= $JAVA_MIN (Debian: default-jdk-headless)"
JAVAC_VERSION="$(javac -version 2>&1)"
java_major="$(printf '%s\n' "$JAVAC_VERSION" | sed -n 's/^javac \([0-9][0-9]*\).*/\1/p')"
[ -n "$java_major" ] && [ "$java_major" -ge "$JAVA_MIN" ] \
    || die "need a JDK >= $JAVA_MIN, found '$JAVAC_VERSION'"
JAVA_BIN="$(command -v java)"

if [ -f "$JAR" ] && [ "$(sha256_of_file "$JAR")" = "$JDBC_SHA256" ]; then
    say "JDBC driver present: $JAR"
else
    command -v mvn >/dev/null 2>&1 || die "mvn not found: install Maven (Debian: maven) to fetch $JDBC_ARTIFACT"
    say "fetching $JDBC_GROUP:$JDBC_ARTIFACT:$JDBC_VERSION from Maven Central"
    tmp="$(mktemp -d "$TOOLS_DIR/.jdbc-fetch.XXXXXX")"
    # --strict-checksums: fail when the downloaded file does not match Central's checksum.
    if ! (cd "$tmp" && mvn -B -q --strict-checksums "$MVN_DEPENDENCY_PLUGIN:copy" \
        -Dartifact="$JDBC_GROUP:$JDBC_ARTIFACT:$JDBC_VERSION:jar" -DoutputDirectory="$tmp/out"); then
        rm -rf "$tmp"
        die "mvn could not fetch $JDBC_GROUP:$JDBC_ARTIFACT:$JDBC_VERSION (see the output above)"
    fi
    got="$(sha256_of_file "$tmp/out/$JDBC_ARTIFACT-$JDBC_VERSION.jar")"
    if [ "$got" != "$JDBC_SHA256" ]; then
        rm -rf "$tmp"
        die "$JDBC_ARTIFACT-$JDBC_VERSION.jar has sha256 $got, expected $JDBC_SHA256"
    fi
    mv -f "$tmp/out/$JDBC_ARTIFACT-$JDBC_VERSION.jar" "$JAR" || { rm -rf "$tmp"; die "cannot move the driver to $JAR"; }
    rm -rf "$tmp"
    say "installed $JAR"
fi

JAVA_WANT="$({ sha256_of_file "$JAVA_SRC"; echo "jar=$JDBC_SHA256"; echo "$JAVAC_VERSION"; echo "java=$JAVA_BIN"; } \
    | sha256sum | cut -d' ' -f1)"
if [ -x "$JDBC_WRAPPER" ] && [ -d "$CLASSES" ] && [ -f "$JAVA_STAMP" ] && [ "$(cat "$JAVA_STAMP")" = "$JAVA_WANT" ]; then
    say "ferrite-sql-jdbc up to date: $JDBC_WRAPPER"
else
    say "compiling ferrite-sql-jdbc with $JAVAC_VERSION"
    tmp="$(mktemp -d "$TOOLS_DIR/.jdbc-build.XXXXXX")"
    if ! javac --release "$JAVA_MIN" -cp "$JAR" -d "$tmp/classes" "$JAVA_SRC"; then
        rm -rf "$tmp"
        die "javac $JAVA_SRC failed (see the output above)"
    fi
    # The driver needs java.nio opened to it on Java >= 17; UTC makes its zone-less
    # Timestamps carry the stored instant.
    cat > "$tmp/ferrite-sql-jdbc" <<EOF
#!/bin/sh
# Written by deploy/dev/install-clients.sh: runs services/testkit/clients/jdbc/FerriteSqlJdbc.java.
exec "$JAVA_BIN" --add-opens=java.base/java.nio=ALL-UNNAMED -Duser.timezone=UTC \\
    -cp "$JAR:$CLASSES" FerriteSqlJdbc "\$@"
EOF
    chmod +x "$tmp/ferrite-sql-jdbc"
    rm -f "$JAVA_STAMP"
    rm -rf "$CLASSES"
    mv "$tmp/classes" "$CLASSES" && mv -f "$tmp/ferrite-sql-jdbc" "$JDBC_WRAPPER" \
        || { rm -rf "$tmp"; die "cannot install ferrite-sql-jdbc into $CLASSES and $JDBC_WRAPPER"; }
    rm -rf "$tmp"
    echo "$JAVA_WANT" > "$JAVA_STAMP"
    say "installed $JDBC_WRAPPER"
fi
