#!/bin/bash
# Relay benchmark: messages per second relayed by one instance to Postfix's smtp-sink on
# loopback, rsmtpd vs OpenSMTPD 6.8.0p2 vs Postfix, side by side in the same run, the same
# route (`relay host smtp://127.0.0.1:SINK`; Postfix: `relayhost = [127.0.0.1]:SINK`). Time:
# from smtp-source's start to smtp-sink's exit after it received N messages (`smtp-sink -M N`),
# so every message was accepted, queued (fsync) and relayed. Also the server's CPU time per
# message (its whole process tree) and its peak RSS (summed over the tree). See README.md.
#
#   sudo bench/relay/run.sh [BENCH_DIR]     (RUNS, N_SMALL, N_BIG, PAR to change the load;
#                                            TUNED=1: OpenSMTPD's mta connection delays off;
#                                            SERVERS="real ours postfix" to choose;
#                                            LOOPFS=4G: BENCH_DIR on an ext4 file system
#                                            of its own, see README)
set -euo pipefail

REPO="$(cd "$(dirname "$0")/../.." && pwd)"
BENCH_DIR="${1:-$(mktemp -d /var/tmp/rsmtpd-relay-bench.XXXXXX)}"
mkdir -p "$BENCH_DIR"; BENCH_DIR="$(cd "$BENCH_DIR" && pwd)"
# The spools on a file system of their own (a loop-mounted ext4 image beside BENCH_DIR), as a
# mail server's spool should be: a sync then waits for the spool's own writes only, not for
# whatever else the machine writes (builds, logs) to the same file system. Same for all three.
if [ -n "${LOOPFS:-}" ]; then
    if ! mountpoint -q "$BENCH_DIR"; then
        rm -f "$BENCH_DIR.img"; truncate -s "$LOOPFS" "$BENCH_DIR.img"
        mkfs.ext4 -q -F "$BENCH_DIR.img"
        mount -o loop "$BENCH_DIR.img" "$BENCH_DIR"
    fi
    trap 'umount "$BENCH_DIR" 2>/dev/null || true' EXIT
fi
# Started as root our daemon's engine runs as opensmtpq and must reach its spool below (6.8's
# queue process chroots into its spool first, so it does not need this).
chmod 711 "$BENCH_DIR"
OURS="${OURS:-$REPO/target/release/smtpd}"
OPENSMTPD="${OPENSMTPD:-/usr/sbin/smtpd}"
RUNS="${RUNS:-3}" PAR="${PAR:-20}"
N_SMALL="${N_SMALL:-2000}" LEN_SMALL=2048 N_BIG="${N_BIG:-500}" LEN_BIG=102400
PORT_OURS="${PORT_OURS:-12525}" PORT_REAL="${PORT_REAL:-12526}" PORT_SINK="${PORT_SINK:-12527}"
PORT_PF="${PORT_PF:-12528}"
SERVERS="${SERVERS:-real ours postfix}"
HELPER="python3 $REPO/bench/relay/helper.py"
LOCK=/tmp/rsmtpd-real-smtpd.lock
. "$REPO/bench/lib/common.sh"

[ "$(id -u)" = 0 ] || { echo "error: run as root (OpenSMTPD needs it)" >&2; exit 1; }
smtp_source
SINK="$TOOLS/usr/sbin/smtp-sink"
# The whole Postfix of the extracted .deb as the third relaying server: its user and group and
# what its postinst would copy (tests/tools/postfix.sh), an instance of its own per run
# (tests/tools/postfix-instance.sh).
bash "$REPO/tests/tools/postfix.sh" --prefix "$TOOLS" >/dev/null
build_ours

conf() { # port
    if [ "${TUNED:-0}" = 1 ]; then
        printf 'mta limit conn-delay-route 0\nmta limit conn-delay-relay 0\nmta limit session-mail-max 100000\n'
    fi
    cat <<EOF
smtp limit max-mails 100000
listen on 127.0.0.1 port $1
action "out" relay host smtp://127.0.0.1:$PORT_SINK
match from any for any action "out"
EOF
}
conf "$PORT_OURS" > "$BENCH_DIR/ours.conf"
conf "$PORT_REAL" > "$BENCH_DIR/real.conf"
printf 'nameserver 127.0.0.1\nlookup file bind\n' > "$BENCH_DIR/resolv.conf"

RAW="$BENCH_DIR/results.txt"
{
    echo "# relay benchmark raw results, $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "# host: $(uname -srm), $(nproc) cpus; runs=$RUNS par=$PAR small=${N_SMALL}x${LEN_SMALL} big=${N_BIG}x${LEN_BIG}"
    echo "# opensmtpd=$OPENSMTPD; ours=$OURS ($OURS_REV); sink: smtp-sink -M N (PIPELINING offered); TUNED=${TUNED:-0}"
    echo "# spools on: $(df --output=source,fstype "$BENCH_DIR" | tail -1)${LOOPFS:+ (LOOPFS=$LOOPFS)}"
    echo "# postfix: $TOOLS (postfix-instance.sh, relayhost = [127.0.0.1]:SINK, defaults otherwise)"
    echo "# lines: server size run seconds src_rc sink_rc logged_ok logged_fail msgs_per_s cpu_s cpu_ms_per_msg peak_pss_kb peak_rss_kb"
} > "$RAW"

PID=""; SERVER=""
port_of() { case $1 in ours) echo "$PORT_OURS" ;; real) echo "$PORT_REAL" ;; postfix) echo "$PORT_PF" ;; esac; }
start() { # ours|real|postfix run
    SERVER="$1"
    LOG="$BENCH_DIR/$1-$2.log"
    if [ "$1" = postfix ]; then
        rm -rf "$BENCH_DIR/postfix-spool"
        POSTFIX="$TOOLS" bash "$REPO/tests/tools/postfix-instance.sh" "$BENCH_DIR/postfix-spool" \
            "127.0.0.1:$PORT_PF" "relayhost = [127.0.0.1]:$PORT_SINK" >"$LOG.out" 2>&1 &
        PID=$!; port=$PORT_PF
        # Its log is its maillog, in the instance's folder (set aside after the run).
        ln -sf "$BENCH_DIR/postfix-spool/maillog" "$LOG"
    elif [ "$1" = ours ]; then
        rm -rf "$BENCH_DIR/ours-spool"
        SMTPD_SPOOL="$BENCH_DIR/ours-spool" SMTPD_SOCKET="$BENCH_DIR/ours.sock" SMTPD_RESOLVER=127.0.0.1:1 \
            "$OURS" -d -f "$BENCH_DIR/ours.conf" >"$LOG" 2>&1 &
        PID=$!; port=$PORT_OURS
    else
        exec 9>"$LOCK"; flock 9
        rm -rf "$BENCH_DIR/real-spool" "$BENCH_DIR/real-run"
        mkdir -m 711 "$BENCH_DIR/real-spool"; mkdir -m 755 "$BENCH_DIR/real-run"
        unshare -m sh -c 'mount --bind "$1" /etc/resolv.conf && mount --bind "$2" /var/spool/smtpd && mount --bind "$3" /run && shift 3 && exec "$@"' sh \
            "$BENCH_DIR/resolv.conf" "$BENCH_DIR/real-spool" "$BENCH_DIR/real-run" \
            "$OPENSMTPD" -d -f "$BENCH_DIR/real.conf" >"$LOG" 2>&1 &
        PID=$!; port=$PORT_REAL
    fi
    for _ in $(seq 200); do
        $HELPER listening "$port" && return 0
        kill -0 "$PID" 2>/dev/null || break
        sleep 0.05
    done
    echo "error: $1 did not start; log $LOG:" >&2; tail -20 "$LOG" >&2; exit 1
}
stop() {
    [ -n "$PID" ] || return 0
    end_server "$PID"; PID=""
    [ "$SERVER" = real ] && exec 9>&-
    if [ "$SERVER" = postfix ]; then
        # What the run logged stays readable beside the others.
        rm -f "$LOG"; cp "$BENCH_DIR/postfix-spool/maillog" "$LOG" 2>/dev/null || true
    fi
    set_aside "$BENCH_DIR/$SERVER-spool" "$BENCH_DIR/$SERVER-run"
}
cleanup() {
    stop; empty_trash
    if [ -n "${LOOPFS:-}" ]; then
        cp "$RAW" "$BENCH_DIR.results.txt" 2>/dev/null || true
        cd /; umount "$BENCH_DIR" 2>/dev/null || true; rm -f "$BENCH_DIR.img"
    fi
}
trap cleanup EXIT

round() { # server size run
    local n len port
    if [ "$2" = small ]; then n=$N_SMALL; len=$LEN_SMALL; else n=$N_BIG; len=$LEN_BIG; fi
    start "$1" "$2-$3"
    port=$(port_of "$1")
    "$SINK" -u nobody -M "$n" "127.0.0.1:$PORT_SINK" 256 >/dev/null 2>&1 &
    local sink=$!
    sleep 0.3
    local t0 t1 c0 c1 src_rc=0 sink_rc=0 peakf="$BENCH_DIR/$1-$2-$3.peak"
    $HELPER peak "$PID" "$peakf" &
    local sampler=$!
    c0=$($HELPER cpu "$PID")
    t0=$(date +%s.%N)
    "$SRC" -s "$PAR" -d -m "$n" -l "$len" -M client.test -f sender@client.test \
        -t rcpt@dest.test "127.0.0.1:$port" >"$BENCH_DIR/$1-$2-$3.out" 2>&1 || src_rc=$?
    # smtp-sink exits after the Nth message; 600 s at most.
    for _ in $(seq 6000); do kill -0 "$sink" 2>/dev/null || break; sleep 0.1; done
    t1=$(date +%s.%N)
    c1=$($HELPER cpu "$PID")
    kill "$sampler" 2>/dev/null || true; wait "$sampler" 2>/dev/null || true
    if kill -0 "$sink" 2>/dev/null; then kill "$sink"; sink_rc=124; fi
    wait "$sink" 2>/dev/null || true
    sleep 1
    local ok fail peak
    peak=$(cat "$peakf" 2>/dev/null || echo 0 0)
    if [ "$1" = postfix ]; then
        ok=$(grep -c ' status=sent ' "$LOG" || true)
        fail=$(grep -cE ' status=(deferred|bounced) ' "$LOG" || true)
    else
        ok=$(grep -c 'mta delivery.*result="Ok"' "$LOG" || true)
        fail=$(grep -cE 'mta delivery.*result="(TempFail|PermFail)"' "$LOG" || true)
    fi
    stop
    awk -v l="$1 $2 $3" -v a="$t0" -v b="$t1" -v n="$n" -v r="$src_rc $sink_rc $ok $fail" \
        -v c0="$c0" -v c1="$c1" -v pk="$peak" \
        'BEGIN { d = b - a; printf "%s %.3f %s %.1f %.2f %.3f %s\n", l, d, r, n / d, c1 - c0, 1000 * (c1 - c0) / n, pk }' >> "$RAW"
    if [ "$src_rc" != 0 ] || [ "$sink_rc" != 0 ] || [ "$ok" != "$n" ] || [ "$fail" != 0 ]; then
        say "WARNING: $1 $2 run $3: smtp-source $src_rc, sink $sink_rc, $ok relayed ok, $fail failed (want $n); see $LOG"
    fi
}

say "results in $BENCH_DIR"
for i in $(seq 1 "$RUNS"); do
    say "run $i/$RUNS"
    # The order turns each run, so that no server always goes first.
    set -- $SERVERS
    for _ in $(seq 2 "$i"); do set -- "${@:2}" "$1"; done
    for size in small big; do
        for s in "$@"; do round "$s" "$size" "$i"; done
    done
done

med() { # server size column
    awk -v s="$1" -v z="$2" -v c="$3" '!/^#/ && $1 == s && $2 == z { print $c }' "$RAW" | sort -g \
        | awk '{ v[NR] = $1 } END { if (NR == 0) print 0; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
SUMMARY="$(
    for z in small big; do
        o=$(med ours $z 9); r=$(med real $z 9); p=$(med postfix $z 9)
        oc=$(med ours $z 11); rc=$(med real $z 11); pc=$(med postfix $z 11)
        om=$(med ours $z 12); rm=$(med real $z 12); pm=$(med postfix $z 12)
        awk -v z="$z" -v o="$o" -v r="$r" -v p="$p" -v oc="$oc" -v rc="$rc" -v pc="$pc" \
            -v om="$om" -v rm="$rm" -v pm="$pm" -v ns="$N_SMALL" -v nb="$N_BIG" 'BEGIN {
            lab = (z == "small") ? ns " x 2 KB" : nb " x 100 KB"
            best = (r > p) ? r : p
            printf "%-14s msgs/s      rsmtpd %8.1f  OpenSMTPD %8.1f  Postfix %8.1f  ours/faster %s\n", lab, o, r, p, (best > 0 ? sprintf("%.2fx", o / best) : "n/a")
            printf "%-14s CPU ms/msg  rsmtpd %8.3f  OpenSMTPD %8.3f  Postfix %8.3f\n", lab, oc, rc, pc
            printf "%-14s peak PSS MB rsmtpd %8.1f  OpenSMTPD %8.1f  Postfix %8.1f\n", lab, om / 1024, rm / 1024, pm / 1024 }'
    done
    echo "medians of $RUNS runs (order turned each run), $PAR sessions in, one instance relaying to smtp-sink on loopback; CPU and memory (PSS: shared pages counted once) of the server's whole process tree"
)"
{ echo "#"; echo "$SUMMARY" | sed 's/^/# /'; } >> "$RAW"
echo "$SUMMARY"
if [ -n "${LOOPFS:-}" ]; then echo "raw results: $BENCH_DIR.results.txt"; else echo "raw results: $RAW"; fi
