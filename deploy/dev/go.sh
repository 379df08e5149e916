# Sourced by the install scripts that build Go programs (install-minio.sh, install-helm.sh,
# install-kube.sh, install-clients.sh).
#
# pick_go MIN_MINOR: print the path of a Go toolchain >= 1.MIN_MINOR — $GO, then PATH, then
# the usual install locations — or return 1 when there is none.
pick_go() {
    local want=$1 cand minor
    for cand in "${GO:-}" go /usr/local/go/bin/go /usr/lib/go/bin/go; do
        [ -n "$cand" ] || continue
        command -v "$cand" >/dev/null 2>&1 || continue
        # go1.26.8 -> 26
        minor="$("$cand" env GOVERSION 2>/dev/null | sed -n 's/^go1\.\([0-9][0-9]*\).*/\1/p')"
        if [ -n "$minor" ] && [ "$minor" -ge "$want" ]; then
            command -v "$cand"
            return 0
        fi
    done
    return 1
}

# go_install_tool LABEL NAME MODULE@VERSION MIN_MINOR LDFLAGS CHECK_ARG...
#
# Install the program MODULE@VERSION as ${FERRITE_TOOLS_DIR:-$HOME/.cache/ferrite-tools}/bin/NAME
# with `go install`, stamped with MODULE@VERSION in NAME.version (written only after a good
# install). `NAME CHECK_ARG...` must succeed for a binary to count as working.
#
# Idempotent: nothing happens when a working binary and a stamp for the pin are there.
# Otherwise it builds with Go >= 1.MIN_MINOR, installs through a temp dir so a failed build
# never leaves a broken binary behind, and fails loudly (through the caller's `say`/`die`).
# Concurrent runs are serialised with flock.
go_install_tool() {
    local label=$1 name=$2 want=$3 min_minor=$4 ldflags=$5
    shift 5
    local tools="${FERRITE_TOOLS_DIR:-$HOME/.cache/ferrite-tools}"
    local bin_dir="$tools/bin"
    local bin="$bin_dir/$name" stamp="$bin_dir/$name.version"
    # A working binary stamped with the pin.
    _tool_installed() {
        [ -x "$bin" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] \
            && "$bin" "$@" >/dev/null 2>&1
    }
    if _tool_installed "$@"; then
        say "$label present: $bin ($want)"
        return 0
    fi
    mkdir -p "$bin_dir" || die "cannot create $bin_dir"
    if command -v flock >/dev/null 2>&1; then
        exec 9>"$tools/.$name.lock"
        flock 9 || die "cannot lock $tools/.$name.lock"
        # Another run may have installed it while we waited.
        if _tool_installed "$@"; then
            say "$label present: $bin ($want)"
            return 0
        fi
    fi

    local go_bin
    go_bin="$(pick_go "$min_minor")" \
        || die "no Go >= 1.$min_minor found (PATH, /usr/local/go/bin): install Go to build $label"
    say "building $want with $("$go_bin" env GOVERSION) (the first time takes minutes)"
    local tmp start
    tmp="$(mktemp -d "$tools/.$name-build.XXXXXX")"
    start=$(date +%s)
    # CGO off: a static binary, no C toolchain needed (how these projects build releases).
    # GOTOOLCHAIN=local: never download another Go toolchain; GOFLAGS: no VCS stamping.
    if ! env GOBIN="$tmp" CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-buildvcs=false \
        "$go_bin" install -ldflags "$ldflags" "$want"; then
        rm -rf "$tmp"
        die "go install $want failed (see the output above)"
    fi
    if ! [ -x "$tmp/$name" ] || ! "$tmp/$name" "$@" >/dev/null 2>&1; then
        rm -rf "$tmp"
        die "go install $want produced no working $name binary"
    fi
    rm -f "$stamp"
    mv -f "$tmp/$name" "$bin" || { rm -rf "$tmp"; die "cannot move $name to $bin"; }
    rm -rf "$tmp"
    echo "$want" > "$stamp"
    say "installed $bin ($want) in $(( $(date +%s) - start ))s"
}
