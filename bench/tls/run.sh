#!/usr/bin/env bash
# TLS benchmark: rsmtpd vs the TLS-capable OpenSMTPD 6.8.0p2 vs Postfix 3.7 (with Dovecot's
# auth service for SASL), receiving 2 KB messages over STARTTLS on 127.0.0.1, with and without
# AUTH PLAIN, plus memory with idle sessions after STARTTLS. See README.md here.
#
# Environment:
#   BENCH_DIR      where to write configs, spools, logs and results (default: new temp dir, kept)
#   RUNS           interleaved repetitions of the load tests (default 5, minimum 3)
#   SESS_MSGS      sessions in test (a), one message each (default 1000)
#   SESS_PAR       parallel sessions in test (a) (default 10)
#   SUB_MSGS       submission sessions in test (e), STARTTLS + AUTH PLAIN + one message each
#                  (default 1000)
#   SUB_PAR        parallel sessions in test (e) (default 10)
#   ACC_MSGS       messages in test (b) (default 4000)
#   ACC_PAR        persistent TLS sessions in test (b) (default 20)
#   IDLE_CONNS     idle TLS sessions in test (d) (default 5000) for rsmtpd and OpenSMTPD
#   IDLE_POSTFIX   idle TLS sessions for Postfix (default 500: one smtpd process each; 5000 of
#                  them would take gigabytes on a shared machine)
#   MSG_LEN        message body bytes (default 2048)
#   OPENSMTPD      the TLS-capable reference (default /opt/opensmtpd-tls/sbin/smtpd, made by
#                  tests/tools/opensmtpd-tls.sh if missing)
#   OURS           our binary (default <repo>/target/release/smtpd; OURS_PREBUILT=1 skips cargo)
#   IDLE           0 skips test (d), the idle sessions
#   TLS_RESUME     0: the load client offers no session resumption (see tls_load.rs)
#   STRACE         1: each load runs with strace -f -c on the server's processes, counting
#                  syncs and renames into $BENCH_DIR/strace-SERVER-TEST-RUN.txt (slows them)
#   TLS_LOAD_STEPS 1: the load client writes how long each SMTP step waited to
#                  $BENCH_DIR/client.steps (its errors go there in any case)
#   SERVERS        which to run (default "ours real postfix"; add "oursfs" for ours again with
#                  SMTPD_COMMIT=syncfs, the commit mode before 2026-12-02 evening, or "oursb"
#                  for the binary OURSB (default: ours) with the environment OURSB_ENV
#                  (e.g. "SMTPD_COMMIT_LINGER=0"), for A/B runs, or "oursu" for ours started as
#                  the queue user instead of root (no privilege separation: the handshakes'
#                  signatures and AUTH's checks stay in the engine); the table shows ours only)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
RUNS="${RUNS:-5}"; [ "$RUNS" -ge 3 ] || RUNS=3
SESS_MSGS="${SESS_MSGS:-1000}"
SESS_PAR="${SESS_PAR:-10}"
SUB_MSGS="${SUB_MSGS:-1000}"
SUB_PAR="${SUB_PAR:-10}"
ACC_MSGS="${ACC_MSGS:-4000}"
ACC_PAR="${ACC_PAR:-20}"
IDLE_CONNS="${IDLE_CONNS:-5000}"
IDLE_POSTFIX="${IDLE_POSTFIX:-500}"
MSG_LEN="${MSG_LEN:-2048}"; export MSG_LEN
OPENSMTPD="${OPENSMTPD:-/opt/opensmtpd-tls/sbin/smtpd}"
OURS="${OURS:-$REPO/target/release/smtpd}"
SERVERS="${SERVERS:-ours real postfix}"
declare -A PORT=([ours]=2861 [real]=2862 [postfix]=2863 [oursfs]=2864 [oursb]=2865 [oursu]=2866)
# The submission listeners (tls-require + auth, as port 587 is run).
declare -A SUBPORT=([ours]=2871 [real]=2872 [postfix]=2873 [oursfs]=2874 [oursb]=2875 [oursu]=2876)
LOCK=/tmp/rsmtpd-real-smtpd.lock
CLIENT="python3 $HERE/client.py"
HELPER="python3 $REPO/bench/smtp-accept/helper.py"

if [ -n "${BENCH_DIR:-}" ]; then mkdir -p "$BENCH_DIR"; else
    BENCH_DIR="$(mktemp -d "${TMPDIR:-/tmp}/rsmtpd-tls.XXXXXX")"; fi
BENCH_DIR="$(cd "$BENCH_DIR" && pwd)"
. "$REPO/bench/lib/common.sh"

[ "$(id -u)" = 0 ] || { echo "error: run as root (OpenSMTPD and Postfix need it)" >&2; exit 1; }
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
[ "$(ulimit -n)" -ge $((IDLE_CONNS + 500)) ] || { echo "error: ulimit -n $(ulimit -n) < IDLE_CONNS+500" >&2; exit 1; }
chmod 755 "$BENCH_DIR"

if [ ! -x "$OPENSMTPD" ]; then
    say "making the TLS-capable OpenSMTPD (tests/tools/opensmtpd-tls.sh)..."
    OPENSMTPD="$(bash "$REPO/tests/tools/opensmtpd-tls.sh")"
fi
smtp_source   # extracts Postfix's .deb into bench/.tools: its master and smtpd serve test (c)
PFX="$TOOLS"
build_ours
# The load client (crates/smtpd/examples/tls_load.rs), in Rust: Python's topped out near 130
# sessions/s whichever server it talked to. client.py remains for the idle sessions (d).
if [ -z "${OURS_PREBUILT:-}" ] || [ ! -x "$REPO/target/release/examples/tls_load" ]; then
    (cd "$REPO" && cargo build --release -q -p rsmtpd --example tls_load) >&2
fi
cp "$REPO/target/release/examples/tls_load" "$BENCH_DIR/bin/tls_load"
LOADER="$BENCH_DIR/bin/tls_load"

for s in $SERVERS; do
    for p in "${PORT[$s]}" "${SUBPORT[$s]}"; do
        if $HELPER listening "$p"; then echo "error: port $p already in use" >&2; exit 1; fi
    done
done

# --- the certificate: RSA 2048, as most certificates in service are -----------------------------
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$BENCH_DIR/key.pem" -out "$BENCH_DIR/cert.pem" \
    -days 7 -subj /CN=bench.test -addext subjectAltName=DNS:bench.test >/dev/null 2>&1
chmod 600 "$BENCH_DIR/key.pem"

# --- the submission user: bench / secret, a SHA-512-crypt hash (what `smtpctl encrypt` makes, and
# Dovecot's default scheme), checked on every AUTH by each server (no cache anywhere).
HASH="$(openssl passwd -6 -salt benchsalt secret)"
printf 'bench %s\n' "$HASH" > "$BENCH_DIR/creds"
printf 'bench:{SHA512-CRYPT}%s\n' "$HASH" > "$BENCH_DIR/dovecot-passwd"
chmod 644 "$BENCH_DIR/creds" "$BENCH_DIR/dovecot-passwd"

# --- configs: rsmtpd and OpenSMTPD get the same one; delivery paused (-P mda -P mta), so both
# only receive and queue. Postfix: smtpd and cleanup, no qmgr, so messages stay queued in
# incoming/, the same work. All three fsync each message before its 250.
conf() { # port subport [key [virtual user]] -> config text
    cat <<EOF
pki bench.test cert "$BENCH_DIR/cert.pem"
pki bench.test key "${3:-$BENCH_DIR/key.pem}"
table vusers { "@bench.test" = "${4:-root}" }
table creds file:$BENCH_DIR/creds
smtp limit max-mails 100000
listen on 127.0.0.1 port $1 tls pki bench.test
listen on 127.0.0.1 port $2 tls-require pki bench.test auth <creds>
action "bench" maildir "$BENCH_DIR/maildir" virtual <vusers>
match from any for domain "bench.test" action "bench"
EOF
}
conf "${PORT[ours]}" "${SUBPORT[ours]}" > "$BENCH_DIR/ours.conf"
conf "${PORT[real]}" "${SUBPORT[real]}" > "$BENCH_DIR/real.conf"
conf "${PORT[oursfs]}" "${SUBPORT[oursfs]}" > "$BENCH_DIR/oursfs.conf"
conf "${PORT[oursb]}" "${SUBPORT[oursb]}" > "$BENCH_DIR/oursb.conf"
# oursu: ours started as the queue user rather than root, so that nothing splits (no root
# parent: handshakes sign in the process that runs them): the cost of the signing hop.
UNSPLIT_USER="$(for u in opensmtpq _smtpq; do id -u "$u" >/dev/null 2>&1 && { echo "$u"; break; }; done)"
if [ -n "$UNSPLIT_USER" ]; then
    cp "$BENCH_DIR/key.pem" "$BENCH_DIR/key-unsplit.pem"
    chown "$UNSPLIT_USER" "$BENCH_DIR/key-unsplit.pem"; chmod 600 "$BENCH_DIR/key-unsplit.pem"
fi
# (Its mail goes to its own user: an unprivileged daemon delivers to no one else.)
conf "${PORT[oursu]}" "${SUBPORT[oursu]}" "$BENCH_DIR/key-unsplit.pem" "${UNSPLIT_USER:-root}" > "$BENCH_DIR/oursu.conf"
printf 'nameserver 127.0.0.1\nlookup bind file\n' > "$BENCH_DIR/resolv.conf"
"$OURS" -n -f "$BENCH_DIR/ours.conf" >/dev/null 2>&1 || { echo "error: ours rejects the config" >&2; exit 1; }
"$OPENSMTPD" -n -f "$BENCH_DIR/real.conf" >/dev/null 2>&1 || { echo "error: OpenSMTPD rejects the config" >&2; exit 1; }

# Postfix, run from the extracted package: its users (created once, as the package would), a
# configuration and a queue of its own, logs through a syslog socket of ours.
getent group postdrop >/dev/null || groupadd --system postdrop
id postfix >/dev/null 2>&1 || useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin postfix
postfix_conf() { # dir
    mkdir -p "$1/etc"
    cat > "$1/etc/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $1/spool
command_directory = $PFX/usr/sbin
daemon_directory = $PFX/usr/lib/postfix/sbin
data_directory = $1/data
shlib_directory = $PFX/usr/lib/postfix
meta_directory = $PFX/etc/postfix
mail_owner = postfix
setgid_group = postdrop
import_environment = MAIL_CONFIG MAIL_DEBUG MAIL_LOGTAG TZ LANG=C LD_LIBRARY_PATH
maillog_file = $1/maillog
maillog_file_prefixes = $1
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = bench.test
mydestination = bench.test
mynetworks = 127.0.0.0/8
local_recipient_maps =
smtpd_relay_restrictions = permit_mynetworks, reject
smtpd_peername_lookup = no
smtpd_tls_cert_file = $BENCH_DIR/cert.pem
smtpd_tls_key_file = $BENCH_DIR/key.pem
smtpd_tls_security_level = may
default_process_limit = $((IDLE_POSTFIX + 200))
smtpd_client_connection_count_limit = 0
smtpd_client_connection_rate_limit = 0
smtpd_client_message_rate_limit = 0
# No qmgr runs (messages stay in incoming/, as the other two keep theirs queued), so no
# tokens come back through the flow pipe: without this, every message waits in_flow_delay (1 s).
in_flow_delay = 0s
EOF
    cat > "$1/etc/master.cf" <<EOF
127.0.0.1:${PORT[postfix]} inet n - n - - smtpd
127.0.0.1:${SUBPORT[postfix]} inet n - n - - smtpd
  -o smtpd_tls_security_level=encrypt
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_sasl_type=dovecot
  -o smtpd_sasl_path=$1/dovecot/auth
  -o smtpd_client_restrictions=permit_sasl_authenticated,reject
cleanup unix n - n - 0 cleanup
rewrite unix - - n - - trivial-rewrite
tlsmgr unix - - n 1000? 1 tlsmgr
anvil unix - - n - 1 anvil
postlog unix-dgram n - n - 1 postlogd
EOF
    local d
    for d in active bounce corrupt defer deferred flush hold incoming private saved trace maildrop public pid; do
        mkdir -p "$1/spool/$d"
    done
    mkdir -p "$1/data"
    chown postfix "$1"/spool/* "$1/data"; chown root "$1/spool/pid"
    chgrp postdrop "$1/spool/maildrop" "$1/spool/public"
    chmod 730 "$1/spool/maildrop"; chmod 710 "$1/spool/public"; chmod 700 "$1/spool/private"
    # Postfix has no password checks of its own: Debian's submission setups hand SASL to
    # Dovecot's auth service, run here with only that (no IMAP/POP), SHA-512-crypt, no cache.
    mkdir -p "$1/dovecot"
    cat > "$1/dovecot/dovecot.conf" <<EOF
base_dir = $1/dovecot/run
state_dir = $1/dovecot/state
log_path = $1/dovecot/dovecot.log
protocols = none
listen = 127.0.0.1
ssl = no
auth_mechanisms = plain login
auth_cache_size = 0
passdb {
  driver = passwd-file
  args = scheme=SHA512-CRYPT $BENCH_DIR/dovecot-passwd
}
userdb {
  driver = static
  args = uid=nobody gid=nogroup home=/nonexistent
}
service auth {
  unix_listener $1/dovecot/auth {
    mode = 0666
  }
}
EOF
}

RAW="$BENCH_DIR/results.txt"
{
    echo "# tls benchmark raw results, $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "# host: $(uname -srm), $(nproc) cpus; runs=$RUNS msg_len=$MSG_LEN"
    echo "# (a) sessions: $SESS_MSGS STARTTLS sessions of one message, $SESS_PAR parallel; (b) $ACC_MSGS msgs over $ACC_PAR persistent TLS sessions; (e) submission: $SUB_MSGS STARTTLS+AUTH PLAIN sessions of one message, $SUB_PAR parallel; (d) idle: $IDLE_CONNS ($IDLE_POSTFIX for postfix)"
    echo "# load: $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min) at start"
    echo "# ours=$OURS ($OURS_REV); real=$OPENSMTPD; postfix=$PFX/usr/lib/postfix/sbin (Debian's 3.7 package, extracted)"
    echo "# lines: server test run wall_s msgs_per_s cpu_s cpu_ms_per_msg done failed retries resumed client_cpu_ms_per_msg load1"
    echo "#        server idle run alive opened failed rss_kb pss_kb nproc open_s"
} > "$RAW"

# --- servers ---------------------------------------------------------------------------------
PID=""; SERVER=""; SINK=""; DOVECOT=""

start() { # server run
    SERVER="$1"
    local log="$BENCH_DIR/$1-$2.log"
    case "$1" in
    ours)
        rm -rf "$BENCH_DIR/ours-spool-$2"
        SMTPD_SPOOL="$BENCH_DIR/ours-spool-$2" SMTPD_SOCKET="$BENCH_DIR/ours.sock" \
            SMTPD_RESOLVER=127.0.0.1:1 "$OURS" -d -P mda -P mta -f "$BENCH_DIR/ours.conf" >"$log" 2>&1 &
        PID=$! ;;
    oursfs)
        rm -rf "$BENCH_DIR/oursfs-spool-$2"
        SMTPD_COMMIT=syncfs SMTPD_SPOOL="$BENCH_DIR/oursfs-spool-$2" SMTPD_SOCKET="$BENCH_DIR/oursfs.sock" \
            SMTPD_RESOLVER=127.0.0.1:1 "$OURS" -d -P mda -P mta -f "$BENCH_DIR/oursfs.conf" >"$log" 2>&1 &
        PID=$! ;;
    oursb)
        rm -rf "$BENCH_DIR/oursb-spool-$2"
        env ${OURSB_ENV:-} SMTPD_SPOOL="$BENCH_DIR/oursb-spool-$2" SMTPD_SOCKET="$BENCH_DIR/oursb.sock" \
            SMTPD_RESOLVER=127.0.0.1:1 "${OURSB:-$OURS}" -d -P mda -P mta -f "$BENCH_DIR/oursb.conf" >"$log" 2>&1 &
        PID=$! ;;
    oursu)
        [ -n "$UNSPLIT_USER" ] || { echo "error: oursu: no queue user to run as" >&2; exit 1; }
        rm -rf "$BENCH_DIR/oursu-spool-$2"; mkdir -p "$BENCH_DIR/oursu-spool-$2" "$BENCH_DIR/oursu-run"
        chown "$UNSPLIT_USER" "$BENCH_DIR/oursu-spool-$2" "$BENCH_DIR/oursu-run"; chmod 711 "$BENCH_DIR/oursu-spool-$2"
        setpriv --reuid="$UNSPLIT_USER" --regid="$(id -g "$UNSPLIT_USER")" --init-groups \
            env SMTPD_SPOOL="$BENCH_DIR/oursu-spool-$2" SMTPD_SOCKET="$BENCH_DIR/oursu-run/smtpd.sock" \
            SMTPD_RESOLVER=127.0.0.1:1 "$OURS" -d -P mda -P mta -f "$BENCH_DIR/oursu.conf" >"$log" 2>&1 &
        PID=$! ;;
    real)
        exec 9>"$LOCK"; flock 9
        rm -rf "$BENCH_DIR/real-spool-$2"; mkdir -m 711 "$BENCH_DIR/real-spool-$2"
        unshare -m sh -c 'mount --bind "$1" /etc/resolv.conf && mount --bind "$2" /var/spool/smtpd && shift 2 && exec "$@"' sh \
            "$BENCH_DIR/resolv.conf" "$BENCH_DIR/real-spool-$2" \
            "$OPENSMTPD" -d -P mda -P mta -f "$BENCH_DIR/real.conf" >"$log" 2>&1 &
        PID=$! ;;
    postfix)
        local dir="$BENCH_DIR/postfix-$2"
        rm -rf "$dir"; postfix_conf "$dir"
        python3 -c '
import os, socket, sys
p = sys.argv[1]; s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.bind(p); os.chmod(p, 0o666)
out = open(sys.argv[2], "a")
while True:
    out.write(s.recv(65536).decode("utf-8", "replace") + "\n"); out.flush()' "$dir/log.sock" "$log" &
        SINK=$!
        dovecot -c "$dir/dovecot/dovecot.conf" -F >>"$dir/dovecot/dovecot.log" 2>&1 &
        DOVECOT=$!
        LD_LIBRARY_PATH="$PFX/usr/lib/postfix" unshare -m sh -c 'mount -t tmpfs tmpfs /dev && mknod -m 666 /dev/null c 1 3 && mknod -m 666 /dev/urandom c 1 9 && mknod -m 666 /dev/random c 1 8 && ln -s "$1" /dev/log && shift && exec "$@"' sh \
            "$dir/log.sock" "$PFX/usr/lib/postfix/sbin/master" -c "$dir/etc" -d >>"$log" 2>&1 &
        PID=$! ;;
    esac
    for _ in $(seq 200); do
        if $HELPER listening "${PORT[$1]}" && $HELPER listening "${SUBPORT[$1]}" \
            && { [ -z "$DOVECOT" ] || [ -S "$BENCH_DIR/postfix-$2/dovecot/auth" ]; }; then return 0; fi
        kill -0 "$PID" 2>/dev/null || break
        sleep 0.05
    done
    echo "error: $1 did not start listening on ${PORT[$1]}; log $log:" >&2; tail -20 "$log" >&2; exit 1
}

stop() {
    [ -n "$PID" ] || return 0
    end_server "$PID"
    PID=""
    if [ -n "$SINK" ]; then kill "$SINK" 2>/dev/null || true; wait "$SINK" 2>/dev/null || true; SINK=""; fi
    if [ -n "$DOVECOT" ]; then end_server "$DOVECOT"; DOVECOT=""; fi
    [ "$SERVER" = real ] && exec 9>&-
    set_aside "$BENCH_DIR"/*-spool-* "$BENCH_DIR"/postfix-*/spool
}
trap 'stop; empty_trash' EXIT

cpu() { # the server's CPU seconds: its process tree, plus Dovecot's for Postfix
    local c; c=$($HELPER cpu "$PID")
    if [ -n "$DOVECOT" ]; then c=$(echo "$c $($HELPER cpu "$DOVECOT")" | awk '{ print $1 + $2 }'); fi
    echo "$c"
}

load() { # test run n par
    local test=$1 run=$2 n=$3 par=$4 c0 c1 res port="${PORT[$SERVER]}"
    [ "$test" = submission ] && port="${SUBPORT[$SERVER]}"
    c0=$(cpu)
    echo "== $SERVER $test $run" >> "$BENCH_DIR/client.steps"
    local tracer=""
    if [ "${STRACE:-0}" = 1 ]; then
        # Every process of the server's tree (and Dovecot's), threads and children to come.
        local pids; pids=$(python3 -c 'import sys; sys.path.insert(0, sys.argv[1])
from proctree import tree
print(" ".join("-p %d" % p for r in sys.argv[2:] for p in tree(r)))' "$REPO/bench/lib" "$PID" $DOVECOT)
        strace -f -c -e trace=fsync,fdatasync,syncfs,sync_file_range,rename,renameat,renameat2 \
            -o "$BENCH_DIR/strace-$SERVER-$test-$run.txt" $pids 2>/dev/null &
        tracer=$!
        sleep 1
    fi
    # The client's own CPU (user+sys) and the load average, so that a reader can tell whether
    # the client or the other builders on the machine bounded the rate.
    res=$(/usr/bin/time -f '%U %S' -o "$BENCH_DIR/client.time" $LOADER "$test" "$port" "$n" "$par" 2>>"$BENCH_DIR/client.steps")
    c1=$(cpu)
    if [ -n "$tracer" ]; then kill -INT "$tracer" 2>/dev/null || true; wait "$tracer" 2>/dev/null || true; fi
    local ccpu la; ccpu=$(tail -1 "$BENCH_DIR/client.time" | awk '{ print $1 + $2 }'); la=$(cut -d' ' -f1 /proc/loadavg)
    echo "$res" | awk -v s="$SERVER" -v t="$test" -v r="$run" -v c0="$c0" -v c1="$c1" -v cc="$ccpu" -v la="$la" '{
        printf "%s %s %d %.3f %.1f %.2f %.3f %d %d %d %d %.3f %s\n", s, t, r, $3, $1 / $3, c1 - c0,
            ($1 > 0 ? 1000 * (c1 - c0) / $1 : 0), $1, $2, $4, $5, ($1 > 0 ? 1000 * cc / $1 : 0), la }' >> "$RAW"
    local failed; failed=$(echo "$res" | awk '{ print $2 }')
    [ "$failed" = 0 ] || say "WARNING: $SERVER $test run $run: $failed failed"
}

say "warm-up..."
for s in $SERVERS; do
    start "$s" 0
    $LOADER sessions "${PORT[$s]}" 50 5 >/dev/null
    res=$($LOADER submission "${SUBPORT[$s]}" 20 5)
    [ "$(echo "$res" | awk '{ print $2 }')" = 0 ] || { echo "error: $s: submission warm-up failed ($res); logs in $BENCH_DIR" >&2; exit 1; }
    stop
done

for i in $(seq 1 "$RUNS"); do
    say "load run $i/$RUNS"
    order="$SERVERS"; [ $((i % 2)) = 0 ] && order="$(echo "$SERVERS" | tr ' ' '\n' | tac | tr '\n' ' ')"
    for s in $order; do
        start "$s" "$i"
        load sessions "$i" "$SESS_MSGS" "$SESS_PAR"
        load persistent "$i" "$ACC_MSGS" "$ACC_PAR"
        load submission "$i" "$SUB_MSGS" "$SUB_PAR"
        stop
    done
done
[ "${IDLE:-1}" = 0 ] && SERVERS_IDLE="" || SERVERS_IDLE="$SERVERS"
for s in $SERVERS_IDLE; do
    case "$s" in oursfs|oursb|oursu) continue ;; esac  # variants of ours: idle sessions are the same
    say "idle: $s"
    start "$s" idle
    n=$IDLE_CONNS; [ "$s" = postfix ] && n=$IDLE_POSTFIX
    echo "$s idle 1 $($CLIENT idle "${PORT[$s]}" "$n" "$PID")" >> "$RAW"
    stop
done

# --- summary -------------------------------------------------------------------------------------
med() { # server test column
    awk -v s="$1" -v t="$2" -v c="$3" '!/^#/ && $1 == s && $2 == t { print $c }' "$RAW" | sort -g \
        | awk '{ v[NR] = $1 } END { if (NR == 0) print 0; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
SUMMARY="$(
    for s in ours real postfix; do
        printf '%s %s %s %s %s %s %s %s %s %s\n' "$s" "$(med "$s" sessions 5)" "$(med "$s" persistent 5)" \
            "$(med "$s" sessions 7)" "$(med "$s" persistent 7)" "$(med "$s" idle 7)" "$(med "$s" idle 8)" "$(med "$s" idle 4)" \
            "$(med "$s" submission 5)" "$(med "$s" submission 7)"
    done | awk -v runs="$RUNS" '
    { s[$1] = $2; p[$1] = $3; cs[$1] = $4; cp[$1] = $5; rss[$1] = $6; pss[$1] = $7; n[$1] = $8; e[$1] = $9; ce[$1] = $10 }
    function r(x, y) { return y > 0 ? sprintf("%.2fx", x / y) : "n/a" }
    END {
        printf "tls: medians of %d interleaved runs, 2 KB messages over STARTTLS (TLS 1.3, RSA 2048)\n", runs
        printf "%-36s %10s %10s %10s %9s %9s\n", "", "rsmtpd", "OpenSMTPD", "Postfix", "vs Osmtpd", "vs Pfx"
        printf "%-36s %10.1f %10.1f %10.1f %9s %9s\n", "(a) STARTTLS sessions/s, 1 msg each", s["ours"], s["real"], s["postfix"], r(s["ours"], s["real"]), r(s["ours"], s["postfix"])
        printf "%-36s %10.1f %10.1f %10.1f %9s %9s\n", "(b) msgs/s, 20 persistent TLS sess.", p["ours"], p["real"], p["postfix"], r(p["ours"], p["real"]), r(p["ours"], p["postfix"])
        printf "%-36s %10.1f %10.1f %10.1f %9s %9s\n", "(e) submission sessions/s, AUTH+1 msg", e["ours"], e["real"], e["postfix"], r(e["ours"], e["real"]), r(e["ours"], e["postfix"])
        printf "%-36s %10.3f %10.3f %10.3f %9s %9s\n", "(c) CPU ms per session (a)", cs["ours"], cs["real"], cs["postfix"], r(cs["real"], cs["ours"]), r(cs["postfix"], cs["ours"])
        printf "%-36s %10.3f %10.3f %10.3f %9s %9s\n", "(c) CPU ms per msg (b)", cp["ours"], cp["real"], cp["postfix"], r(cp["real"], cp["ours"]), r(cp["postfix"], cp["ours"])
        printf "%-36s %10.3f %10.3f %10.3f %9s %9s\n", "(c) CPU ms per submission (e)", ce["ours"], ce["real"], ce["postfix"], r(ce["real"], ce["ours"]), r(ce["postfix"], ce["ours"])
        printf "%-36s %10.1f %10.1f %10.1f\n", "(d) RSS MB, idle TLS sessions", rss["ours"] / 1024, rss["real"] / 1024, rss["postfix"] / 1024
        printf "%-36s %10.1f %10.1f %10.1f\n", "(d) PSS MB, idle TLS sessions", pss["ours"] / 1024, pss["real"] / 1024, pss["postfix"] / 1024
        printf "%-36s %10d %10d %10d\n", "(d) idle sessions alive at measure", n["ours"], n["real"], n["postfix"]
        printf "%-36s %10.1f %10.1f %10.1f\n", "(d) PSS KB per idle session", (n["ours"] ? pss["ours"] / n["ours"] : 0), (n["real"] ? pss["real"] / n["real"] : 0), (n["postfix"] ? pss["postfix"] / n["postfix"] : 0)
        print "ratios: ours/theirs for rates, theirs/ours for CPU (above 1 = we win)"
        printf "targets: 2x Postfix rates (a, b, e): %s; half its CPU per msg (b): %s; < 200 MB for 5,000 TLS sessions: %s\n",
            (s["postfix"] == 0) ? "n/a (no Postfix run)" : (s["ours"] >= 2 * s["postfix"] && p["ours"] >= 2 * p["postfix"] && e["ours"] >= 2 * e["postfix"]) ? "met" : "NOT met",
            (cp["postfix"] == 0) ? "n/a" : (cp["ours"] > 0 && cp["ours"] * 2 <= cp["postfix"]) ? "met" : "NOT met",
            (rss["ours"] > 0 && rss["ours"] < 200 * 1024 && n["ours"] >= 5000) ? "met" : "NOT met"
    }'
)"
SUMMARY="$SUMMARY
$(for s in $SERVERS; do printf '%s %s %s %s ' "$s" "$(med "$s" sessions 12)" "$(med "$s" persistent 12)" "$(med "$s" submission 12)"; done \
    | awk '{ printf "load client CPU ms per session/msg (a)/(b)/(e):"; for (i = 1; i <= NF; i += 4) printf " %s %.3f/%.3f/%.3f", $i, $(i+1), $(i+2), $(i+3); print "" }')
$(awk '!/^#/ && NF >= 13 { if (min == "" || $13 < min) min = $13; if ($13 > max) max = $13 } END { printf "load average (1 min) at the end of each measurement: %s to %s\n", min, max }' "$RAW")"
for v in oursb oursu; do
    echo " $SERVERS " | grep -q " $v " || continue
    case "$v" in oursb) what="OURSB_ENV=\"${OURSB_ENV:-}\"${OURSB:+ OURSB=$OURSB}" ;; oursu) what="unsplit, as $UNSPLIT_USER" ;; esac
    SUMMARY="$SUMMARY
$(printf '%s ' "$(med ours sessions 5)" "$(med "$v" sessions 5)" "$(med ours persistent 5)" "$(med "$v" persistent 5)" \
        "$(med ours submission 5)" "$(med "$v" submission 5)" "$(med ours sessions 7)" "$(med "$v" sessions 7)" \
        "$(med ours persistent 7)" "$(med "$v" persistent 7)" "$(med ours submission 7)" "$(med "$v" submission 7)" \
      | awk -v v="$v" -v w="$what" '{ printf "ours vs %s (%s): (a) %.1f vs %.1f sessions/s, (b) %.1f vs %.1f msgs/s, (e) %.1f vs %.1f; CPU ms (a) %.3f vs %.3f, (b) %.3f vs %.3f, (e) %.3f vs %.3f\n", v, w, $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12 }')"
done
if echo " $SERVERS " | grep -q " oursfs "; then
    SUMMARY="$SUMMARY
$(printf '%s %s %s %s %s %s %s\n' "$(med ours sessions 5)" "$(med oursfs sessions 5)" "$(med ours persistent 5)" \
        "$(med oursfs persistent 5)" "$(med ours submission 5)" "$(med oursfs submission 5)" "$(med oursfs persistent 7)" \
      | awk '{ printf "commit modes, same binary: SMTPD_COMMIT=fsync (default) vs syncfs: (a) %.1f vs %.1f sessions/s, (b) %.1f vs %.1f msgs/s, (e) %.1f vs %.1f; syncfs CPU ms/msg (b) %.3f\n", $1, $2, $3, $4, $5, $6, $7 }')"
fi
{ echo "#"; echo "$SUMMARY" | sed 's/^/# /'; } >> "$RAW"
echo "$SUMMARY"
echo "raw results: $RAW"
