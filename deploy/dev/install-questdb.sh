#!/usr/bin/env bash
# Install QuestDB, one of the peers `make bench-peers` compares ferrite with: the server jar
# from Maven Central (it carries its native libraries), run with the machine's Java.
#
#   jar:    ${FERRITE_TOOLS_DIR:-$HOME/.cache/ferrite-tools}/questdb/questdb.jar
#   stamp:  .../questdb/questdb.version  ("<group>:<artifact>:<version>", written only after a good install)
#   run:    java -p questdb.jar -m io.questdb/io.questdb.ServerMain -d <root dir>
#
# Idempotent: nothing happens when the jar has the pinned sha256 and the stamp names the pin.
# Otherwise Maven fetches it (checking Central's sha1), the sha256 is checked, and the jar is
# moved into place from a temp dir, so a failed fetch never leaves a broken jar behind.
# Concurrent runs are serialised with flock.
#
# Needs a JDK >= 17 and Maven (Debian: default-jdk-headless, maven; deploy/dev/setup.sh
# installs both). Run by `make bench-peers`, not by setup.sh.
set -euo pipefail

say() { printf 'install-questdb: %s\n' "$*"; }
die() { printf 'install-questdb: ERROR: %s\n' "$*" >&2; exit 1; }

# The pin. The sha256 was computed from the Maven Central artifact; Maven checks Central's
# sha1 on download, we check the sha256 after.
GROUP="org.questdb"
ARTIFACT="questdb"
VERSION="9.3.4"
SHA256="939bc53ab22f93dbaa6545143a6e7c536d4904c07b7f2d381e8eef10436be062"
MVN_DEPENDENCY_PLUGIN="org.apache.maven.plugins:maven-dependency-plugin:3.11.0"
JAVA_MIN=17
want="$GROUP:$ARTIFACT:$VERSION"

tools="${FERRITE_TOOLS_DIR:-$HOME/.cache/ferrite-tools}"
dir="$tools/questdb"
jar="$dir/questdb.jar"
stamp="$dir/questdb.version"
installed() {
    [ -f "$jar" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] \
        && [ "$(sha256sum "$jar" | cut -d' ' -f1)" = "$SHA256" ]
}

command -v java >/dev/null 2>&1 || die "java not found: install a JDK >= $JAVA_MIN (Debian: default-jdk-headless)"
java_major="$(java -version 2>&1 | sed -n 's/.*version "\([0-9][0-9]*\).*/\1/p' | head -n 1)"
[ -n "$java_major" ] && [ "$java_major" -ge "$JAVA_MIN" ] \
    || die "QuestDB $VERSION needs Java >= $JAVA_MIN, found '$(java -version 2>&1 | head -n 1)'"

if installed; then
    say "QuestDB present: $jar ($want)"
    exit 0
fi
mkdir -p "$dir" || die "cannot create $dir"
exec 9>"$tools/.questdb.lock"
flock 9 || die "cannot lock $tools/.questdb.lock"
if installed; then
    say "QuestDB present: $jar ($want)"
    exit 0
fi
command -v mvn >/dev/null 2>&1 || die "mvn not found: install Maven (Debian: maven) to fetch $want"

tmp="$(mktemp -d "$tools/.questdb-fetch.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
say "fetching $want from Maven Central"
# --strict-checksums: fail when the downloaded file does not match Central's checksum.
(cd "$tmp" && mvn -B -q --strict-checksums "$MVN_DEPENDENCY_PLUGIN:copy" \
    -Dartifact="$want:jar" -DoutputDirectory="$tmp/out") \
    || die "mvn could not fetch $want (see the output above)"
got="$(sha256sum "$tmp/out/$ARTIFACT-$VERSION.jar" | cut -d' ' -f1)"
[ "$got" = "$SHA256" ] || die "$ARTIFACT-$VERSION.jar has sha256 $got, expected $SHA256"
rm -f "$stamp"
mv -f "$tmp/out/$ARTIFACT-$VERSION.jar" "$jar" || die "cannot move the jar to $jar"
echo "$want" > "$stamp"
say "installed $jar ($want)"
