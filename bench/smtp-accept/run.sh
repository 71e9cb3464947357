#!/usr/bin/env bash
# SMTP accept benchmark: OpenSMTPD 6.8.0p2 vs rsmtpd, receiving 2 KB messages over SMTP on
# 127.0.0.1 with Postfix's smtp-source, plus memory with 5,000 idle sessions. See README.md here.
#
# Environment:
#   BENCH_DIR      where to write configs, spools, logs and results (default: new temp dir, kept)
#   RUNS           interleaved repetitions of the load tests (default 5, minimum 3)
#   IDLE_RUNS      repetitions of the idle-connections test (default 3)
#   SESS_MSGS      messages in test (a), one connection each (default 2000)
#   SESS_PAR       parallel clients in test (a) (default 5)
#   ACC_MSGS       messages in test (b) (default 5000)
#   ACC_PAR        concurrent persistent sessions in test (b) (default 20)
#   IDLE_CONNS     idle connections in test (d) (default 5000)
#   MSG_LEN        message body bytes (default 2048)
#   PORT_OURS      (default 2851)   PORT_REAL (default 2852)
#   OPENSMTPD      the reference binary (default /usr/sbin/smtpd; must run as root)
#   OURS           our binary (default <repo>/target/release/smtpd; OURS_PREBUILT=1 skips cargo)
#   UNSPLIT=1      an A/B of the privilege split instead: the second column is our same binary
#                  started as the queue user (no root parent, no sandbox), not OpenSMTPD; its mail
#                  goes to that user (an unprivileged daemon delivers to no one else)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
RUNS="${RUNS:-5}"; [ "$RUNS" -ge 3 ] || RUNS=3
IDLE_RUNS="${IDLE_RUNS:-3}"
SESS_MSGS="${SESS_MSGS:-2000}"
SESS_PAR="${SESS_PAR:-5}"
ACC_MSGS="${ACC_MSGS:-5000}"
ACC_PAR="${ACC_PAR:-20}"
IDLE_CONNS="${IDLE_CONNS:-5000}"
MSG_LEN="${MSG_LEN:-2048}"
PORT_OURS="${PORT_OURS:-2851}"
PORT_REAL="${PORT_REAL:-2852}"
OPENSMTPD="${OPENSMTPD:-/usr/sbin/smtpd}"
OURS="${OURS:-$REPO/target/release/smtpd}"
LOCK=/tmp/rsmtpd-real-smtpd.lock
HELPER="python3 $HERE/helper.py"

if [ -n "${BENCH_DIR:-}" ]; then mkdir -p "$BENCH_DIR"; else
    BENCH_DIR="$(mktemp -d "${TMPDIR:-/tmp}/rsmtpd-smtp-accept.XXXXXX")"; fi
BENCH_DIR="$(cd "$BENCH_DIR" && pwd)"
. "$REPO/bench/lib/common.sh"

[ "$(id -u)" = 0 ] || { echo "error: run as root (OpenSMTPD needs it)" >&2; exit 1; }
REF="OpenSMTPD"; UNSPLIT_USER=""
if [ "${UNSPLIT:-0}" = 1 ]; then
    REF="unsplit"
    UNSPLIT_USER="$(for u in opensmtpq _smtpq; do id -u "$u" >/dev/null 2>&1 && { echo "$u"; break; }; done)"
    [ -n "$UNSPLIT_USER" ] || { echo "error: UNSPLIT=1: no queue user (opensmtpq) to run as" >&2; exit 1; }
else
    [ -x "$OPENSMTPD" ] || { echo "error: OpenSMTPD not found at $OPENSMTPD" >&2; exit 1; }
fi
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
[ "$(ulimit -n)" -ge $((IDLE_CONNS + 500)) ] || { echo "error: ulimit -n $(ulimit -n) < IDLE_CONNS+500" >&2; exit 1; }

smtp_source
build_ours

for port in "$PORT_OURS" "$PORT_REAL"; do
    if $HELPER listening "$port"; then echo "error: port $port already in use" >&2; exit 1; fi
done

# --- configs: same rules for both; one catch-all virtual user so smtp-source -N's numbered
# recipients (1root@, 2root@, ...) are all accepted; max-mails raised from its default of 100 per
# session so one persistent session can send ACC_MSGS/ACC_PAR messages. Delivery is paused in
# both (-P mda -P mta), so both only receive and queue.
conf() { # port [user] -> config text
    cat <<EOF
table vusers { "@bench.test" = "${2:-root}" }
smtp limit max-mails 100000
listen on 127.0.0.1 port $1
action "bench" maildir "$BENCH_DIR/maildir" virtual <vusers>
match from any for domain "bench.test" action "bench"
EOF
}
conf "$PORT_OURS" > "$BENCH_DIR/ours.conf"
printf 'nameserver 127.0.0.1\nlookup bind file\n' > "$BENCH_DIR/resolv.conf"
conf "$PORT_REAL" "${UNSPLIT_USER:-root}" > "$BENCH_DIR/real.conf"; chmod 644 "$BENCH_DIR/real.conf"
"$OURS" -n -f "$BENCH_DIR/ours.conf" >/dev/null 2>&1 || { echo "error: ours rejects the config" >&2; exit 1; }
if [ "$REF" = OpenSMTPD ]; then
    "$OPENSMTPD" -n -f "$BENCH_DIR/real.conf" >/dev/null 2>&1 || { echo "error: OpenSMTPD rejects the config" >&2; exit 1; }
fi

RAW="$BENCH_DIR/results.txt"
{
    echo "# smtp-accept benchmark raw results, $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "# host: $(uname -srm), $(nproc) cpus; runs=$RUNS idle_runs=$IDLE_RUNS msg_len=$MSG_LEN"
    echo "# sessions: $SESS_MSGS msgs, 1 per connection, $SESS_PAR parallel; accept: $ACC_MSGS msgs, $ACC_PAR persistent sessions; idle: $IDLE_CONNS"
    echo "# opensmtpd=$OPENSMTPD (-P mda -P mta, private spool $BENCH_DIR/real-spool-* over /var/spool/smtpd)"
    echo "# ours=$OURS (copied from target/release at $OURS_REV, spool $BENCH_DIR/ours-spool-*)"
    echo "# lines: server test run wall_s msgs_per_s cpu_s cpu_ms_per_msg accepted_msgs exit queued_in_spool"
    echo "#        server idle run alive banners failed rss_kb pss_kb nproc open_s"
} > "$RAW"

# --- servers ---------------------------------------------------------------------------------
PID=""; SERVER=""; RUNID=""; LOG=""

start() { # ours|real run
    SERVER="$1"; RUNID="$2"
    local port log
    if [ "$1" = ours ]; then
        port=$PORT_OURS; log="$BENCH_DIR/ours-$2.log"
        rm -rf "$BENCH_DIR/ours-spool-$2"
        SMTPD_SPOOL="$BENCH_DIR/ours-spool-$2" SMTPD_SOCKET="$BENCH_DIR/ours.sock" \
            SMTPD_RESOLVER=127.0.0.1:1 "$OURS" -d -P mda -P mta -f "$BENCH_DIR/ours.conf" >"$log" 2>&1 &
        PID=$!; LOG=$log
    elif [ "$REF" = unsplit ]; then
        port=$PORT_REAL; log="$BENCH_DIR/real-$2.log"
        rm -rf "$BENCH_DIR/real-spool-$2"; mkdir -p "$BENCH_DIR/real-spool-$2" "$BENCH_DIR/unsplit-run"
        chown "$UNSPLIT_USER" "$BENCH_DIR/real-spool-$2" "$BENCH_DIR/unsplit-run"
        chmod 711 "$BENCH_DIR" "$BENCH_DIR/real-spool-$2"
        setpriv --reuid="$UNSPLIT_USER" --regid="$(id -g "$UNSPLIT_USER")" --init-groups \
            env SMTPD_SPOOL="$BENCH_DIR/real-spool-$2" SMTPD_SOCKET="$BENCH_DIR/unsplit-run/smtpd.sock" \
            SMTPD_RESOLVER=127.0.0.1:1 "$OURS" -d -P mda -P mta -f "$BENCH_DIR/real.conf" >"$log" 2>&1 &
        PID=$!; LOG=$log
    else
        port=$PORT_REAL; log="$BENCH_DIR/real-$2.log"
        exec 9>"$LOCK"; flock 9     # one real OpenSMTPD on the machine at a time (control socket)
        # It runs in a private mount namespace with
        # - its own empty spool bind-mounted over /var/spool/smtpd (tests on this machine use and
        #   clean that folder; sharing it gave "queue-fs: mkdir: No such file or directory");
        # - the same DNS footing as ours (SMTPD_RESOLVER=127.0.0.1:1): a resolv.conf naming
        #   127.0.0.1 (nothing on port 53: instant refusal), then /etc/hosts. With the machine's
        #   resolver about 1 connection in 17 waited 5 s for a DNS timeout.
        # unshare and sh exec, so $! is smtpd itself.
        rm -rf "$BENCH_DIR/real-spool-$2"; mkdir -m 711 "$BENCH_DIR/real-spool-$2"
        unshare -m sh -c 'mount --bind "$1" /etc/resolv.conf && mount --bind "$2" /var/spool/smtpd && shift 2 && exec "$@"' sh \
            "$BENCH_DIR/resolv.conf" "$BENCH_DIR/real-spool-$2" \
            "$OPENSMTPD" -d -P mda -P mta -f "$BENCH_DIR/real.conf" >"$log" 2>&1 &
        PID=$!; LOG=$log
    fi
    for _ in $(seq 200); do
        if $HELPER listening "$port"; then
            return 0
        fi
        kill -0 "$PID" 2>/dev/null || break
        sleep 0.05
    done
    echo "error: $1 did not start listening on $port; log $log:" >&2; tail -20 "$log" >&2; exit 1
}

queued() { # messages in the running server's queue (both: queue/XX/MSGID/)
    find "$BENCH_DIR/$SERVER-spool-$RUNID/queue" -mindepth 2 -maxdepth 2 -type d 2>/dev/null | wc -l
}
accepted() { # messages the running server logged as accepted ("smtp message msgid=...")
    grep -c " smtp message msgid=" "$LOG" || true
}

stop() {
    [ -n "$PID" ] || return 0
    end_server "$PID"
    PID=""
    [ "$SERVER" = real ] && [ "$REF" = OpenSMTPD ] && exec 9>&-
    set_aside "$BENCH_DIR/$SERVER-spool-$RUNID"
}
trap 'stop; empty_trash' EXIT

# --- load tests --------------------------------------------------------------------------------
load() { # test-name run n-msgs smtp-source-args...
    local test=$1 run=$2 n=$3; shift 3
    local port=$PORT_OURS; [ "$SERVER" = real ] && port=$PORT_REAL
    local a0 q0 c0 t0 t1 c1 q1 a1 rc=0 out="$BENCH_DIR/$SERVER-$test-$run.out"
    a0=$(accepted); q0=$(queued); c0=$($HELPER cpu "$PID"); t0=$(date +%s.%N)
    "$SRC" "$@" -m "$n" -l "$MSG_LEN" -N -M client.test -f sender@client.test -t root@bench.test \
        "127.0.0.1:$port" >"$out" 2>&1 || rc=$?
    t1=$(date +%s.%N); c1=$($HELPER cpu "$PID"); q1=$(queued); a1=$(accepted)
    local got=$((a1 - a0)) inq=$((q1 - q0))
    awk -v s="$SERVER" -v t="$test" -v r="$run" -v t0="$t0" -v t1="$t1" -v c0="$c0" -v c1="$c1" \
        -v n="$n" -v q="$got" -v rc="$rc" -v inq="$inq" 'BEGIN {
        w = t1 - t0; printf "%s %s %d %.3f %.1f %.2f %.3f %d %d %d\n", s, t, r, w, q / w, c1 - c0,
            (q > 0 ? 1000 * (c1 - c0) / q : 0), q, rc, inq }' >> "$RAW"
    if [ "$rc" != 0 ] || [ "$got" != "$n" ] || [ "$inq" != "$n" ]; then
        say "WARNING: $SERVER $test run $run: smtp-source exit $rc, $got of $n accepted, $inq in the queue; see $out and $LOG"
        tail -3 "$out" >&2
    fi
}

one_round() { # server run
    start "$1" "$2"
    load sessions "$2" "$SESS_MSGS" -s "$SESS_PAR" -C 5
    load accept "$2" "$ACC_MSGS" -s "$ACC_PAR" -d
    stop
}

idle_round() { # server run
    start "$1" "idle-$2"
    local res
    res=$($HELPER idle "$([ "$1" = ours ] && echo "$PORT_OURS" || echo "$PORT_REAL")" "$IDLE_CONNS" "$PID")
    echo "$1 idle $2 $res" >> "$RAW"
    stop
}

say "warm-up..."
start ours 0; "$SRC" -s 2 -m 50 -d -l "$MSG_LEN" -N -f s@c.test -t root@bench.test "127.0.0.1:$PORT_OURS" >/dev/null 2>&1 || true; stop
start real 0; "$SRC" -s 2 -m 50 -d -l "$MSG_LEN" -N -f s@c.test -t root@bench.test "127.0.0.1:$PORT_REAL" >/dev/null 2>&1 || true; stop

for i in $(seq 1 "$RUNS"); do
    say "load run $i/$RUNS"
    if [ $((i % 2)) = 1 ]; then one_round real "$i"; one_round ours "$i"
    else one_round ours "$i"; one_round real "$i"; fi
done
for i in $(seq 1 "$IDLE_RUNS"); do
    say "idle run $i/$IDLE_RUNS ($IDLE_CONNS connections each)"
    if [ $((i % 2)) = 1 ]; then idle_round ours "$i"; idle_round real "$i"
    else idle_round real "$i"; idle_round ours "$i"; fi
done

# --- summary -------------------------------------------------------------------------------------
med() { # server test column
    awk -v s="$1" -v t="$2" -v c="$3" '!/^#/ && $1 == s && $2 == t { print $c }' "$RAW" | sort -g \
        | awk '{ v[NR] = $1 } END { if (NR == 0) print 0; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
SUMMARY="$(
    rs=$(med ours sessions 5); os=$(med real sessions 5)
    ra=$(med ours accept 5); oa=$(med real accept 5)
    rcs=$(med ours sessions 7); ocs=$(med real sessions 7)
    rca=$(med ours accept 7); oca=$(med real accept 7)
    rm_=$(med ours idle 7); om=$(med real idle 7); rp=$(med ours idle 8); op=$(med real idle 8)
    ral=$(med ours idle 4); oal=$(med real idle 4)
    awk -v rs="$rs" -v os="$os" -v ra="$ra" -v oa="$oa" -v rcs="$rcs" -v ocs="$ocs" -v rca="$rca" \
        -v oca="$oca" -v rm="$rm_" -v om="$om" -v rp="$rp" -v op="$op" -v ral="$ral" -v oal="$oal" \
        -v runs="$RUNS" -v n="$IDLE_CONNS" -v ir="$IDLE_RUNS" -v ref="$REF" '
    function r(x, y) { return y > 0 ? sprintf("%.2fx", x / y) : "n/a" }
    BEGIN {
        printf "smtp-accept: medians of %d interleaved runs (idle: %d), 2 KB messages\n", runs, ir
        printf "%-38s %11s %11s %9s\n", "", "rsmtpd", ref, "ratio"
        printf "%-38s %11.1f %11.1f %9s\n", "(b) msgs/s, persistent sessions", ra, oa, r(ra, oa)
        printf "%-38s %11.1f %11.1f %9s\n", "(a) sessions/s, 1 msg per connection", rs, os, r(rs, os)
        printf "%-38s %11.3f %11.3f %9s\n", "(c) CPU ms/msg, persistent (b)", rca, oca, r(oca, rca)
        printf "%-38s %11.3f %11.3f %9s\n", "(c) CPU ms/msg, 1 per connection (a)", rcs, ocs, r(ocs, rcs)
        printf "%-38s %11.1f %11.1f %9s\n", "(d) RSS MB, idle sessions (sum)", rm / 1024, om / 1024, r(om, rm)
        printf "%-38s %11.1f %11.1f %9s\n", "(d) PSS MB, idle sessions (sum)", rp / 1024, op / 1024, r(op, rp)
        printf "%-38s %11d %11d\n", sprintf("(d) of %d sessions alive at measure", n), ral, oal
        print "ratios: ours/" ref " for rates, " ref "/ours for CPU and memory (above 1 = we win)"
        if (ref == "OpenSMTPD")
            printf "target 2x accept rate: %s;  target RSS < 100 MB at %d idle: %s\n",
                (oa > 0 && ra >= 2 * oa) ? "met" : "NOT met", n, (rm > 0 && rm < 100 * 1024 && ral == n) ? "met" : "NOT met"
        else
            printf "target: the split costs at most 5 %% of the rates: (b) %s, (a) %s\n",
                (oa > 0 && ra >= 0.95 * oa) ? "met" : "NOT met", (os > 0 && rs >= 0.95 * os) ? "met" : "NOT met"
    }'
)"
{ echo "#"; echo "$SUMMARY" | sed 's/^/# /'; } >> "$RAW"
echo "$SUMMARY"
echo "raw results: $RAW"
