#!/usr/bin/env bash
# Builtin filters benchmark: sessions per second (one message per connection) with the seed's
# step 7 filter chain (rdns/fcrdns junk at connect, trusted-src bypass and mail-from regex
# disconnect at MAIL FROM) vs the same config without filters, ours vs OpenSMTPD 6.8.0p2, all in
# one private network namespace with its own unbound answering PTR/A for the client's address.
# See README.md here.
#
# Environment:
#   BENCH_DIR    configs, spools, logs and results (default: new temp dir, kept)
#   RUNS         interleaved rounds (default 5, minimum 3)
#   SESS_MSGS    sessions (= messages) per measurement (default 500)
#   SESS_PAR     parallel smtp-source clients (default 5)
#   MSG_LEN      message body bytes (default 2048)
#   DNS_TTL      TTL of the PTR and A records (default 0: no resolver cache can answer, every
#                session asks unbound; ours (hickory) caches by TTL, OpenSMTPD's asr never does)
#   CLIENT_IP    the client's (and the listeners') address on the namespace's lo (192.0.2.10)
#   PORT_BASE    listeners on PORT_BASE..PORT_BASE+3 (default 3261)
#   OPENSMTPD    the reference binary (default /usr/sbin/smtpd)
#   OURS         our binary (default <repo>/target/release/smtpd; OURS_PREBUILT=1 skips cargo;
#                OURS_REV labels it in results.txt, default the repo's HEAD)
#   PERF=1       afterwards, `perf record -g` ours with filters under the same load, perf report
#                into $BENCH_DIR/perf-ours-filters.txt
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
RUNS="${RUNS:-5}"; [ "$RUNS" -ge 3 ] || RUNS=3
SESS_MSGS="${SESS_MSGS:-500}"
SESS_PAR="${SESS_PAR:-5}"
MSG_LEN="${MSG_LEN:-2048}"
DNS_TTL="${DNS_TTL:-0}"
CLIENT_IP="${CLIENT_IP:-192.0.2.10}"
PORT_BASE="${PORT_BASE:-3261}"
OPENSMTPD="${OPENSMTPD:-/usr/sbin/smtpd}"
OURS="${OURS:-$REPO/target/release/smtpd}"
SEED_CONF="${SEED_CONF:-$REPO/tests/fixtures/seed/configs/7-deliver.conf}"
LOCK=/tmp/rsmtpd-real-smtpd.lock
NS="rsfb$$"
HELPER="python3 $HERE/helper.py"

if [ -n "${BENCH_DIR:-}" ]; then mkdir -p "$BENCH_DIR"; else
    BENCH_DIR="$(mktemp -d "${TMPDIR:-/tmp}/rsmtpd-filters.XXXXXX")"; fi
BENCH_DIR="$(cd "$BENCH_DIR" && pwd)"
. "$REPO/bench/lib/common.sh"

[ "$(id -u)" = 0 ] || { echo "error: run as root (OpenSMTPD, ip netns)" >&2; exit 1; }
[ -x "$OPENSMTPD" ] || { echo "error: OpenSMTPD not found at $OPENSMTPD" >&2; exit 1; }
command -v unbound >/dev/null || { echo "error: unbound not installed" >&2; exit 1; }
[ -r "$SEED_CONF" ] || { echo "error: seed config $SEED_CONF not found" >&2; exit 1; }

smtp_source
build_ours

# --- the network namespace: lo up, the client's address on lo, resolv.conf, unbound on :53 ----
# Everything (unbound, both servers, smtp-source) runs in it. The servers listen on CLIENT_IP and
# smtp-source connects to it, so the kernel picks CLIENT_IP as the source address too: the client
# is not loopback, and both servers take their ordinary DNS path (ours: hickory asking
# SMTPD_RESOLVER=127.0.0.1:53; OpenSMTPD: asr reading /etc/resolv.conf, which `ip netns exec`
# bind-mounts from /etc/netns/NS/resolv.conf).
UNBOUND_PID=""; PID=""; SERVER=""; LOG=""; SPOOL=""
cleanup() {
    stop
    [ -n "$UNBOUND_PID" ] && { kill "$UNBOUND_PID" 2>/dev/null || true; wait "$UNBOUND_PID" 2>/dev/null || true; }
    ip netns del "$NS" 2>/dev/null || true
    rm -rf "/etc/netns/$NS"
    empty_trash
}
trap cleanup EXIT
ip netns add "$NS"
ip -n "$NS" link set lo up
ip -n "$NS" addr add "$CLIENT_IP/32" dev lo
mkdir -p "/etc/netns/$NS"
printf 'nameserver 127.0.0.1\nlookup bind file\n' > "/etc/netns/$NS/resolv.conf"
IN() { ip netns exec "$NS" "$@"; }

rev4() { echo "$1" | awk -F. '{ print $4 "." $3 "." $2 "." $1 ".in-addr.arpa." }'; }
zone4() { echo "$1" | awk -F. '{ print $3 "." $2 "." $1 ".in-addr.arpa." }'; }
cat > "$BENCH_DIR/unbound.conf" <<EOF
server:
    username: ""
    chroot: ""
    directory: "$BENCH_DIR"
    pidfile: "$BENCH_DIR/unbound.pid"
    logfile: ""
    use-syslog: no
    verbosity: 0
    # one line per query: run.sh counts them, queries per session for each server
    log-queries: yes
    interface: 127.0.0.1
    port: 53
    do-ip6: no
    num-threads: 1
    access-control: 127.0.0.0/8 allow
    access-control: $CLIENT_IP/32 allow
    module-config: "iterator"
    # no recursion: anything not below is NXDOMAIN at once (then /etc/hosts, for both servers)
    local-zone: "." static
    local-zone: "bench.test." static
    local-data: "client.bench.test. $DNS_TTL IN A $CLIENT_IP"
    local-zone: "$(zone4 "$CLIENT_IP")" static
    local-data: "$(rev4 "$CLIENT_IP") $DNS_TTL IN PTR client.bench.test."
remote-control:
    control-enable: no
EOF
unbound-checkconf "$BENCH_DIR/unbound.conf" >/dev/null
ip netns exec "$NS" unbound -d -c "$BENCH_DIR/unbound.conf" >"$BENCH_DIR/unbound.log" 2>&1 &
UNBOUND_PID=$!
for _ in $(seq 100); do IN $HELPER listening 53 && break; sleep 0.05; done
name=$(IN getent hosts "$CLIENT_IP" | awk '{ print $2 }')
[ "$name" = client.bench.test ] || { echo "error: PTR of $CLIENT_IP in the namespace is '$name'" >&2; exit 1; }

# --- configs: the seed's step 7 verbatim but for the listen line (our address and port, with or
# without `filter filters`) and the maildir root (delivery is paused anyway) ----------------------
# name -> port
port_of() { case $1 in ours-filters) echo "$PORT_BASE";; ours-plain) echo $((PORT_BASE + 1));;
    real-filters) echo $((PORT_BASE + 2));; real-plain) echo $((PORT_BASE + 3));; esac; }
for s in ours-filters ours-plain real-filters real-plain; do
    f=""; case $s in *-filters) f=" filter filters";; esac
    sed -e "s|^listen on .*|listen on $CLIENT_IP port $(port_of $s)$f|" \
        -e "s|/opt/vmail|$BENCH_DIR/maildir|" "$SEED_CONF" > "$BENCH_DIR/$s.conf"
    case $s in ours-*) b="$OURS";; *) b="$OPENSMTPD";; esac
    "$b" -n -f "$BENCH_DIR/$s.conf" >/dev/null 2>&1 || { echo "error: $b rejects $BENCH_DIR/$s.conf" >&2; exit 1; }
    if IN $HELPER listening "$(port_of $s)"; then echo "error: port $(port_of $s) in use" >&2; exit 1; fi
done

RAW="$BENCH_DIR/results.txt"
{
    echo "# filters benchmark raw results, $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "# host: $(uname -srm), $(nproc) cpus, load $(cut -d' ' -f1-3 /proc/loadavg); runs=$RUNS sessions=$SESS_MSGS par=$SESS_PAR msg_len=$MSG_LEN dns_ttl=$DNS_TTL client=$CLIENT_IP"
    echo "# opensmtpd=$OPENSMTPD -P mda -P mta; ours=$OURS -P mda -P mta (copied at $OURS_REV)"
    echo "# lines: server run wall_s sessions_per_s server_cpu_s server_cpu_ms_per_session unbound_cpu_ms_per_session accepted named_connects exit queued x_spam dns_queries_per_session"
} > "$RAW"

# --- servers ---------------------------------------------------------------------------------
start() { # server-name run
    SERVER="$1"; local port; port=$(port_of "$1")
    LOG="$BENCH_DIR/$1-$2.log"; SPOOL="$BENCH_DIR/spool-$1-$2"
    rm -rf "$SPOOL"
    case $1 in
    ours-*)
        ip netns exec "$NS" env SMTPD_SPOOL="$SPOOL" SMTPD_SOCKET="$BENCH_DIR/ours.sock" SMTPD_RESOLVER=127.0.0.1:53 \
            "$OURS" -d -P mda -P mta -f "$BENCH_DIR/$1.conf" >"$LOG" 2>&1 &
        PID=$! ;;
    real-*)
        exec 9>"$LOCK"; flock 9     # one real OpenSMTPD at a time (shared /var/run/smtpd.sock)
        mkdir -m 711 "$SPOOL"; rm -rf "$BENCH_DIR/run-dir"; mkdir -m 755 "$BENCH_DIR/run-dir"
        # ip netns exec, unshare and sh all exec: $! is smtpd itself. Own spool over
        # /var/spool/smtpd (the test suites on this machine use and clean that folder), own /run
        # (so its control socket /var/run/smtpd.sock cannot meet one of the OpenSMTPDs the test
        # suites start without the lock: "control socket already listening").
        ip netns exec "$NS" unshare -m sh -c 'mount --bind "$1" /var/spool/smtpd && mount --bind "$2" /run && shift 2 && exec "$@"' sh "$SPOOL" "$BENCH_DIR/run-dir" \
            "$OPENSMTPD" -d -P mda -P mta -f "$BENCH_DIR/$1.conf" >"$LOG" 2>&1 &
        PID=$! ;;
    esac
    for _ in $(seq 200); do
        IN $HELPER listening "$port" && return 0
        kill -0 "$PID" 2>/dev/null || break
        sleep 0.05
    done
    echo "error: $1 did not start listening on $port; log $LOG:" >&2; tail -20 "$LOG" >&2; exit 1
}
stop() {
    [ -n "$PID" ] || return 0
    end_server "$PID"
    PID=""
    case $SERVER in real-*) exec 9>&- ;; esac
    set_aside "$SPOOL"
}
queued() { { find "$SPOOL/queue" -mindepth 2 -maxdepth 2 -type d 2>/dev/null || true; } | wc -l; }
xspam() { { grep -rl "^X-Spam" "$SPOOL/queue" 2>/dev/null || true; } | wc -l; }
count() { grep -c "$1" "$LOG" || true; }
qcount() { grep -c " info: 127.0.0.1 " "$BENCH_DIR/unbound.log" || true; }

load() { # run
    local run=$1 port; port=$(port_of "$SERVER")
    local out="$BENCH_DIR/$SERVER-$run.out" rc=0 c0 u0 t0 t1 c1 u1
    local q0; q0=$(qcount)
    c0=$($HELPER cpu "$PID"); u0=$($HELPER cpu "$UNBOUND_PID"); t0=$(date +%s.%N)
    IN "$SRC" -s "$SESS_PAR" -m "$SESS_MSGS" -l "$MSG_LEN" -M client.test \
        -f sender@client.test -t root@bsdsx.fr "$CLIENT_IP:$port" >"$out" 2>&1 || rc=$?
    t1=$(date +%s.%N); c1=$($HELPER cpu "$PID"); u1=$($HELPER cpu "$UNBOUND_PID")
    sleep 0.2
    local nq; nq=$(( $(qcount) - q0 ))   # OpenSMTPD's log line may trail the client's QUIT
    local got named q xs
    got=$(count " smtp message msgid="); named=$(count " smtp connected address=$CLIENT_IP host=client.bench.test")
    q=$(queued); xs=$(xspam)
    awk -v s="$SERVER" -v r="$run" -v t0="$t0" -v t1="$t1" -v c0="$c0" -v c1="$c1" -v u0="$u0" \
        -v u1="$u1" -v nq="$nq" -v q="$got" -v nm="$named" -v rc="$rc" -v inq="$q" -v xs="$xs" 'BEGIN {
        w = t1 - t0; printf "%s %d %.3f %.1f %.2f %.3f %.3f %d %d %d %d %d %.2f\n", s, r, w, q / w,
            c1 - c0, (q > 0 ? 1000 * (c1 - c0) / q : 0), (q > 0 ? 1000 * (u1 - u0) / q : 0),
            q, nm, rc, inq, xs, (q > 0 ? nq / q : 0) }' >> "$RAW"
    if [ "$rc" != 0 ] || [ "$got" != "$SESS_MSGS" ] || [ "$named" != "$SESS_MSGS" ] \
        || [ "$q" != "$SESS_MSGS" ] || [ "$xs" != 0 ]; then
        say "WARNING: $SERVER run $run: smtp-source exit $rc, $got of $SESS_MSGS accepted, $named connects named client.bench.test, $q queued, $xs marked X-Spam; see $out and $LOG"
        tail -3 "$out" >&2
    fi
}

# The chain really runs: a sender matching the regex is disconnected with 550 on both servers.
check_disconnect() {
    local port; port=$(port_of "$SERVER")
    local out; out=$(IN "$SRC" -m 1 -f sender@bsdsx.fr -t root@bsdsx.fr "$CLIENT_IP:$port" 2>&1 || true)
    if echo "$out" | grep -q "550 invalid mail from"; then :
    else echo "error: $SERVER did not answer 550 invalid mail from to a bsdsx.fr sender" >&2; exit 1; fi
}

say "checks and warm-up (bench dir $BENCH_DIR)..."
for s in ours-filters real-filters ours-plain real-plain; do
    start "$s" 0
    case $s in *-filters) check_disconnect;; esac
    IN "$SRC" -s 2 -m 50 -l "$MSG_LEN" -f sender@client.test -t root@bsdsx.fr "$CLIENT_IP:$(port_of "$s")" >/dev/null 2>&1 || true
    stop
done

ORDER=(ours-filters real-filters ours-plain real-plain)
for i in $(seq 1 "$RUNS"); do
    say "run $i/$RUNS"
    # rotate which server goes first
    for k in 0 1 2 3; do
        s=${ORDER[$(( (k + i) % 4 ))]}
        start "$s" "$i"; load "$i"; stop
    done
done

if [ -n "${PERF:-}" ] && command -v perf >/dev/null; then
    say "perf record of ours-filters under load..."
    start ours-filters perf
    perf record -g -o "$BENCH_DIR/perf-ours-filters.data" -p "$PID" >/dev/null 2>&1 &
    PP=$!; sleep 0.5
    IN "$SRC" -s "$SESS_PAR" -m "$SESS_MSGS" -l "$MSG_LEN" -M client.test -f sender@client.test \
        -t root@bsdsx.fr "$CLIENT_IP:$(port_of ours-filters)" >/dev/null 2>&1 || true
    kill -INT "$PP"; wait "$PP" 2>/dev/null || true
    stop
    perf report -i "$BENCH_DIR/perf-ours-filters.data" --no-children --percent-limit 1 --stdio \
        > "$BENCH_DIR/perf-ours-filters.txt" 2>/dev/null || true
    perf report -i "$BENCH_DIR/perf-ours-filters.data" --children --percent-limit 3 --stdio -g none \
        > "$BENCH_DIR/perf-ours-filters-children.txt" 2>/dev/null || true
fi

# --- summary -------------------------------------------------------------------------------------
med() { # server column
    awk -v s="$1" -v c="$2" '!/^#/ && $1 == s { print $c }' "$RAW" | sort -g \
        | awk '{ v[NR] = $1 } END { if (NR == 0) print 0; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
SUMMARY="$(
    of=$(med ours-filters 4); op=$(med ours-plain 4); rf=$(med real-filters 4); rp=$(med real-plain 4)
    cof=$(med ours-filters 6); cop=$(med ours-plain 6); crf=$(med real-filters 6); crp=$(med real-plain 6)
    uof=$(med ours-filters 7); uop=$(med ours-plain 7); urf=$(med real-filters 7); urp=$(med real-plain 7)
    qof=$(med ours-filters 13); qop=$(med ours-plain 13); qrf=$(med real-filters 13); qrp=$(med real-plain 13)
    awk -v qof="$qof" -v qop="$qop" -v qrf="$qrf" -v qrp="$qrp" -v of="$of" -v op="$op" -v rf="$rf" -v rp="$rp" -v cof="$cof" -v cop="$cop" -v crf="$crf" \
        -v crp="$crp" -v uof="$uof" -v uop="$uop" -v urf="$urf" -v urp="$urp" -v runs="$RUNS" \
        -v n="$SESS_MSGS" -v par="$SESS_PAR" -v ttl="$DNS_TTL" '
    function r(x, y) { return y > 0 ? sprintf("%.2fx", x / y) : "n/a" }
    BEGIN {
        printf "filters: medians of %d interleaved runs, %d sessions of 1 msg, %d parallel, DNS TTL %d\n", runs, n, par, ttl
        printf "%-34s %10s %10s %10s %10s\n", "", "ours+filt", "ours", "OSMTPD+filt", "OSMTPD"
        printf "%-34s %10.1f %10.1f %10.1f %10.1f\n", "sessions/s", of, op, rf, rp
        printf "%-34s %10.3f %10.3f %10.3f %10.3f\n", "server CPU ms/session", cof, cop, crf, crp
        printf "%-34s %10.3f %10.3f %10.3f %10.3f\n", "unbound CPU ms/session", uof, uop, urf, urp
        printf "%-34s %10.2f %10.2f %10.2f %10.2f\n", "DNS queries/session (unbound log)", qof, qop, qrf, qrp
        cost = op > 0 ? 100 * (1 - of / op) : 0
        printf "filter cost, ours: %.1f%% of the rate (%s), %+.3f ms CPU/session\n", cost, r(of, op), cof - cop
        printf "filter cost, OpenSMTPD: %.1f%% of the rate (%s), %+.3f ms CPU/session\n", (rp > 0 ? 100 * (1 - rf / rp) : 0), r(rf, rp), crf - crp
        printf "ours/OpenSMTPD with filters: %s sessions/s, %s less CPU/session\n", r(of, rf), r(crf, cof)
        printf "target filter cost < 10%%: %s;  target ahead of OpenSMTPD with filters: %s\n",
            (cost < 10) ? "met" : "NOT met", (of > rf) ? "met" : "NOT met"
    }'
)"
{ echo "#"; echo "$SUMMARY" | sed 's/^/# /'; } >> "$RAW"
echo "$SUMMARY"
echo "raw results: $RAW"
