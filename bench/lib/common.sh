# Sourced by bench/*/run.sh: what every benchmark does before it measures. Expects REPO,
# BENCH_DIR and OURS to be set.

say() { echo "[$(date +%H:%M:%S)] $*" >&2; }

# set_aside PATH...: moves what a run left (spools, Maildirs) into $BENCH_DIR/trash instead of
# deleting it; empty_trash removes it all after the last run. On ext4 without a journal every
# file created skips the inodes freed in the last minutes, one lookup each, so deleting a run's
# thousands of files between runs would slow the next run's server, whichever it is (see
# bench/delivery/README.md).
set_aside() {
    mkdir -p "$BENCH_DIR/trash"
    local p
    for p in "$@"; do
        if [ -e "$p" ]; then mv "$p" "$(mktemp -u "$BENCH_DIR/trash/$(basename "$p").XXXXXX")"; fi
    done
}
empty_trash() { rm -rf "$BENCH_DIR/trash"; }

# end_server PID: SIGTERM, up to 10 s to exit cleanly, then SIGKILL; reaps it.
end_server() {
    kill -TERM "$1" 2>/dev/null || true
    for _ in $(seq 200); do kill -0 "$1" 2>/dev/null || break; sleep 0.05; done
    kill -KILL "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

# smtp_source: Postfix's smtp-source, the load tool. Debian's postfix conflicts with opensmtpd as
# a package, so its .deb is downloaded and extracted into bench/.tools (git-ignored), once for
# all benchmarks. Sets SRC and LD_LIBRARY_PATH.
smtp_source() {
    TOOLS="$REPO/bench/.tools"
    SRC="$TOOLS/usr/sbin/smtp-source"
    export LD_LIBRARY_PATH="$TOOLS/usr/lib/postfix${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    if [ ! -x "$SRC" ]; then
        say "fetching postfix (apt-get download) for smtp-source..."
        mkdir -p "$TOOLS/deb"
        (cd "$TOOLS/deb" && { apt-get download postfix >/dev/null 2>&1 \
            || { apt-get update >/dev/null && apt-get download postfix >/dev/null; }; })
        dpkg-deb -x "$TOOLS"/deb/postfix_*.deb "$TOOLS"
    fi
    if ldd "$SRC" | grep -q "not found"; then
        echo "error: $SRC misses libraries:" >&2; ldd "$SRC" >&2; exit 1
    fi
}

# build_ours: builds the release binaries (unless OURS_PREBUILT) and copies smtpd and smtpctl to
# $BENCH_DIR/bin, because target/ is shared and a rebuild in the middle of a run must not swap
# binaries. Sets OURS, SMTPCTL and OURS_REV (unless given).
build_ours() {
    if [ -z "${OURS_PREBUILT:-}" ]; then
        say "building rsmtpd (release)..."
        (cd "$REPO" && cargo build --release -q -p rsmtpd -p rsmtpd-smtpctl) >&2
    fi
    [ -x "$OURS" ] || { echo "error: our smtpd not found at $OURS" >&2; exit 1; }
    mkdir -p "$BENCH_DIR/bin"
    cp "$OURS" "$BENCH_DIR/bin/smtpd"
    if [ -x "$(dirname "$OURS")/smtpctl" ]; then cp "$(dirname "$OURS")/smtpctl" "$BENCH_DIR/bin/smtpctl"; fi
    OURS_REV="${OURS_REV:-$(cd "$REPO" && git rev-parse --short HEAD 2>/dev/null || echo unknown)}"
    OURS="$BENCH_DIR/bin/smtpd"; SMTPCTL="$BENCH_DIR/bin/smtpctl"
}
