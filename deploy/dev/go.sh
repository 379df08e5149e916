# Sourced by the install scripts that build Go programs (install-minio.sh, install-clients.sh).
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
