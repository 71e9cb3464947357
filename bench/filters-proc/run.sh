#!/usr/bin/env bash
# proc-exec filter benchmark: messages per second and CPU per message through one pass-through
# proc-exec filter (passthru.c: proceed to every phase, every data-line echoed), ours vs
# OpenSMTPD 6.8.0p2 with the same filter binary and config, and both without the filter. One
# message per connection (smtp-source), delivery paused (-P mda -P mta). See README.md here.
#
# Environment:
#   BENCH_DIR    configs, spools, logs and results (default: new temp dir, kept)
#   RUNS         interleaved rounds (default 5, minimum 3)
#   MSGS         messages (= sessions) per measurement (default 1000)
#   PAR          parallel smtp-source clients (default 10)
#   MSG_LEN      message body bytes (default 2048: about 30 data-lines per message)
#   PERSIST      1 (default): each client sends its messages over one connection (smtp-source
#                -d); 0: one message per connection, where OpenSMTPD's listen backlog of 5
#                drops SYNs under churn and 1-3 s retries dominate its rate (see README.md)
#   PORT_BASE    listeners on 127.0.0.1:PORT_BASE..PORT_BASE+3 (default 3271)
#   OPENSMTPD    the reference binary (default /usr/sbin/smtpd)
#   OURS         our binary (default <repo>/target/release/smtpd; OURS_PREBUILT=1 skips cargo)
#   REAL_LOCK=1  take /tmp/rsmtpd-real-smtpd.lock around each OpenSMTPD run (the test suites')
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
RUNS="${RUNS:-5}"; [ "$RUNS" -ge 3 ] || RUNS=3
MSGS="${MSGS:-1000}"
PAR="${PAR:-10}"
PERSIST="${PERSIST:-1}"
KEEP=""; [ "$PERSIST" = 1 ] && KEEP="-d"
MSG_LEN="${MSG_LEN:-2048}"
PORT_BASE="${PORT_BASE:-3271}"
OPENSMTPD="${OPENSMTPD:-/usr/sbin/smtpd}"
OURS="${OURS:-$REPO/target/release/smtpd}"
LOCK=/tmp/rsmtpd-real-smtpd.lock
HELPER="python3 $REPO/bench/filters/helper.py"

if [ -n "${BENCH_DIR:-}" ]; then mkdir -p "$BENCH_DIR"; else
    BENCH_DIR="$(mktemp -d "${TMPDIR:-/tmp}/rsmtpd-filters-proc.XXXXXX")"; fi
BENCH_DIR="$(cd "$BENCH_DIR" && pwd)"
. "$REPO/bench/lib/common.sh"

[ "$(id -u)" = 0 ] || { echo "error: run as root (OpenSMTPD)" >&2; exit 1; }
[ -x "$OPENSMTPD" ] || { echo "error: OpenSMTPD not found at $OPENSMTPD" >&2; exit 1; }

smtp_source
build_ours
# The filter runs as the filter user (opensmtpd): it must reach its binary.
chmod 755 "$BENCH_DIR"
FILTER="$BENCH_DIR/passthru"
printf 'nameserver 127.0.0.1\nlookup file bind\n' > "$BENCH_DIR/resolv.conf"
cc -O2 -Wall -o "$FILTER" "$HERE/passthru.c"

port_of() { case $1 in ours-proc) echo "$PORT_BASE";; ours-plain) echo $((PORT_BASE + 1));;
    real-proc) echo $((PORT_BASE + 2));; real-plain) echo $((PORT_BASE + 3));; esac; }
for s in ours-proc ours-plain real-proc real-plain; do
    f=""; case $s in *-proc) f=" filter pt";; esac
    {
        # Persistent clients send more than the default 100 messages per session.
        echo "smtp limit max-mails 1000000"
        case $s in *-proc) echo "filter pt proc-exec \"$FILTER\"";; esac
        echo "listen on 127.0.0.1 port $(port_of $s)$f"
        echo "action \"l\" maildir \"$BENCH_DIR/maildir\""
        echo "match from any for any action \"l\""
    } > "$BENCH_DIR/$s.conf"
    case $s in ours-*) b="$OURS";; *) b="$OPENSMTPD";; esac
    "$b" -n -f "$BENCH_DIR/$s.conf" >/dev/null 2>&1 || { echo "error: $b rejects $BENCH_DIR/$s.conf" >&2; exit 1; }
    if $HELPER listening "$(port_of $s)"; then echo "error: port $(port_of $s) in use" >&2; exit 1; fi
done

RAW="$BENCH_DIR/results.txt"
{
    echo "# proc-exec filter benchmark raw results, $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "# host: $(uname -srm), $(nproc) cpus, load $(cut -d' ' -f1-3 /proc/loadavg); runs=$RUNS msgs=$MSGS par=$PAR msg_len=$MSG_LEN persist=$PERSIST"
    echo "# opensmtpd=$OPENSMTPD -P mda -P mta; ours=$OURS -P mda -P mta (copied at $OURS_REV); filter=$FILTER (passthru.c)"
    echo "# lines: server run wall_s msgs_per_s server_cpu_s (tree, filter included) server_cpu_ms_per_msg filter_cpu_ms_per_msg filter_busy accepted exit queued"
} > "$RAW"

PID=""; SERVER=""; LOG=""; SPOOL=""
cleanup() { stop; empty_trash; }
trap cleanup EXIT
start() { # server-name run
    SERVER="$1"; local port; port=$(port_of "$1")
    LOG="$BENCH_DIR/$1-$2.log"; SPOOL="$BENCH_DIR/spool-$1-$2"
    rm -rf "$SPOOL"
    case $1 in
    ours-*)
        mkdir -m 711 "$SPOOL"
        SMTPD_SPOOL="$SPOOL" SMTPD_SOCKET="$BENCH_DIR/ours.sock" \
            "$OURS" -d -P mda -P mta -f "$BENCH_DIR/$1.conf" >"$LOG" 2>&1 &
        PID=$! ;;
    real-*)
        # Its /run is its own (below), so no lock on /var/run/smtpd.sock is needed; REAL_LOCK=1
        # takes the test suites' lock anyway (one real OpenSMTPD at a time on the machine).
        if [ -n "${REAL_LOCK:-}" ]; then exec 9>"$LOCK"; flock 9; fi
        mkdir -m 711 "$SPOOL"; rm -rf "$BENCH_DIR/run-dir"; mkdir -m 755 "$BENCH_DIR/run-dir"
        # Its own spool over /var/spool/smtpd, its own /run (its control socket), and a
        # resolv.conf that looks in /etc/hosts first (127.0.0.1 is localhost there, as ours
        # resolves loopback): no DNS server is reachable here, and asr's default
        # `lookup bind file` would wait for its timeouts at every connection.
        unshare -m sh -c 'mount --bind "$1" /var/spool/smtpd && mount --bind "$2" /run && mount --bind "$3" /etc/resolv.conf && shift 3 && exec "$@"' sh "$SPOOL" "$BENCH_DIR/run-dir" "$BENCH_DIR/resolv.conf" \
            "$OPENSMTPD" -d -P mda -P mta -f "$BENCH_DIR/$1.conf" >"$LOG" 2>&1 &
        PID=$! ;;
    esac
    for _ in $(seq 200); do
        $HELPER listening "$port" && return 0
        kill -0 "$PID" 2>/dev/null || break
        sleep 0.05
    done
    echo "error: $1 did not start listening on $port; log $LOG:" >&2; tail -20 "$LOG" >&2; exit 1
}
stop() {
    [ -n "$PID" ] || return 0
    end_server "$PID"
    PID=""
    case $SERVER in real-*) [ -z "${REAL_LOCK:-}" ] || exec 9>&- ;; esac
    set_aside "$SPOOL"
}
# The filter process of the running server: the one whose executable is $FILTER, in its tree.
filter_pid() {
    python3 - "$PID" "$FILTER" "$REPO/bench/lib" <<'EOF'
import os, sys
sys.path.insert(0, sys.argv[3])
from proctree import tree
for p in tree(sys.argv[1]):
    try:
        if os.readlink(f"/proc/{p}/exe") == sys.argv[2]:
            print(p); break
    except OSError:
        pass
EOF
}
queued() { { find "$SPOOL/queue" -mindepth 2 -maxdepth 2 -type d 2>/dev/null || true; } | wc -l; }
count() { grep -c "$1" "$LOG" || true; }

load() { # run
    local run=$1 port; port=$(port_of "$SERVER")
    local out="$BENCH_DIR/$SERVER-$run.out" rc=0 c0 t0 t1 c1 fp f0=0 f1=0
    fp=$(filter_pid); echo "filter pid: ${fp:-none}" > "$out.filter"
    c0=$($HELPER cpu "$PID"); [ -n "$fp" ] && f0=$($HELPER cpu "$fp"); t0=$(date +%s.%N)
    "$SRC" $KEEP -s "$PAR" -m "$MSGS" -l "$MSG_LEN" -M client.test \
        -f sender@client.test -t root@localhost "127.0.0.1:$port" >"$out" 2>&1 || rc=$?
    t1=$(date +%s.%N); c1=$($HELPER cpu "$PID"); [ -n "$fp" ] && f1=$($HELPER cpu "$fp")
    sleep 0.2
    local got q
    got=$(count " smtp message msgid="); q=$(queued)
    awk -v s="$SERVER" -v r="$run" -v t0="$t0" -v t1="$t1" -v c0="$c0" -v c1="$c1" -v f0="$f0" \
        -v f1="$f1" -v q="$got" -v rc="$rc" -v inq="$q" 'BEGIN {
        w = t1 - t0; printf "%s %d %.3f %.1f %.2f %.3f %.3f %.2f %d %d %d\n", s, r, w, q / w,
            c1 - c0, (q > 0 ? 1000 * (c1 - c0) / q : 0), (q > 0 ? 1000 * (f1 - f0) / q : 0),
            (f1 - f0) / w, q, rc, inq }' >> "$RAW"
    if [ "$rc" != 0 ] || [ "$got" != "$MSGS" ] || [ "$q" != "$MSGS" ]; then
        say "WARNING: $SERVER run $run: smtp-source exit $rc, $got of $MSGS accepted, $q queued; see $out and $LOG"
        tail -3 "$out" >&2
    fi
}

say "checks and warm-up (bench dir $BENCH_DIR)..."
for s in ours-proc real-proc ours-plain real-plain; do
    start "$s" 0
    case $s in *-proc) [ -n "$(filter_pid)" ] || { echo "error: $s runs no filter process" >&2; exit 1; };; esac
    "$SRC" -s 2 -m 50 -l "$MSG_LEN" -f sender@client.test -t root@localhost "127.0.0.1:$(port_of "$s")" >/dev/null 2>&1 || true
    stop
done

ORDER=(ours-proc real-proc ours-plain real-plain)
for i in $(seq 1 "$RUNS"); do
    say "run $i/$RUNS"
    for k in 0 1 2 3; do
        s=${ORDER[$(( (k + i) % 4 ))]}
        start "$s" "$i"; load "$i"; stop
    done
done

med() { # server column
    awk -v s="$1" -v c="$2" '!/^#/ && $1 == s { print $c }' "$RAW" | sort -g \
        | awk '{ v[NR] = $1 } END { if (NR == 0) print 0; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
SUMMARY="$(
    of=$(med ours-proc 4); op=$(med ours-plain 4); rf=$(med real-proc 4); rp=$(med real-plain 4)
    cof=$(med ours-proc 6); cop=$(med ours-plain 6); crf=$(med real-proc 6); crp=$(med real-plain 6)
    fof=$(med ours-proc 7); frf=$(med real-proc 7); bof=$(med ours-proc 8); brf=$(med real-proc 8)
    awk -v of="$of" -v op="$op" -v rf="$rf" -v rp="$rp" -v cof="$cof" -v cop="$cop" -v crf="$crf" \
        -v crp="$crp" -v fof="$fof" -v frf="$frf" -v bof="$bof" -v brf="$brf" -v runs="$RUNS" \
        -v n="$MSGS" -v par="$PAR" -v len="$MSG_LEN" -v persist="$PERSIST" '
    function r(x, y) { return y > 0 ? sprintf("%.2fx", x / y) : "n/a" }
    BEGIN {
        printf "proc-exec filter: medians of %d interleaved runs, %d messages of %d bytes, %d parallel clients, %s\n", runs, n, len, par, (persist == 1 ? "persistent sessions" : "1 message per connection")
        printf "%-36s %10s %10s %10s %10s\n", "", "ours+proc", "ours", "OSMTPD+proc", "OSMTPD"
        printf "%-36s %10.1f %10.1f %10.1f %10.1f\n", "messages/s", of, op, rf, rp
        printf "%-36s %10.3f %10.3f %10.3f %10.3f\n", "server CPU ms/msg (filter included)", cof, cop, crf, crp
        printf "%-36s %10.3f %10s %10.3f %10s\n", "filter process CPU ms/msg", fof, "-", frf, "-"
        printf "%-36s %10.2f %10s %10.2f %10s\n", "filter busy (CPU s per wall s)", bof, "-", brf, "-"
        printf "ours/OpenSMTPD through the filter: %s messages/s, %s less CPU/msg\n", r(of, rf), r(crf, cof)
        printf "filter cost, ours: %s of the rate without; OpenSMTPD: %s\n", r(of, op), r(rf, rp)
        printf "target at least 2x OpenSMTPD through the filter: %s\n", (of >= 2 * rf) ? "met" : "NOT met"
    }'
)"
{ echo "#"; echo "$SUMMARY" | sed 's/^/# /'; } >> "$RAW"
echo "$SUMMARY"
echo "raw results: $RAW"
