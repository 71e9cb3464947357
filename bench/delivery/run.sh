#!/usr/bin/env bash
# End-to-end delivery benchmark: OpenSMTPD 6.8.0p2 vs rsmtpd, messages per second from the
# first byte sent (Postfix's smtp-source, 20 persistent sessions on 127.0.0.1) to the last
# message in the Maildir, 2 KB and 100 KB messages; CPU per message, peak memory, and the
# disk's fsync rate as a ceiling. See README.md here.
#
# Environment:
#   BENCH_DIR     where configs, Maildirs, spools, logs and results go (default: new temp dir, kept)
#   RUNS          interleaved repetitions (default 5, minimum 3)
#   N_SMALL       2 KB messages per run (default 2000)     N_BIG  100 KB messages (default 1000)
#   LEN_SMALL     (default 2048)                           LEN_BIG (default 102400)
#   PAR           concurrent persistent sessions (default 20)
#   BENCH_UID     the userbase user's uid and gid (default 2000; the Maildir is chowned to it)
#   STALL         seconds without a new file before a run counts as stalled (default 30)
#   FSYNC_SECS    length of each fsync probe (default 3)
#   PORT_OURS     (default 3151)   PORT_REAL (default 3152)
#   OPENSMTPD     the reference binary (default /usr/sbin/smtpd; must run as root)
#   OURS          our binary (default <repo>/target/release/smtpd; OURS_PREBUILT=1 skips cargo)
#   AGENT         maildir (default) or mda: delivery through a command writing into the Maildir
#   UNSPLIT=1     an A/B of the privilege split instead: the second column is our same binary,
#                 also started as root but with SMTPD_USER=root, which keeps it in one process
#                 (no engine, no sandbox; the same delivery process and workers), not OpenSMTPD
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
RUNS="${RUNS:-5}"; [ "$RUNS" -ge 3 ] || RUNS=3
N_SMALL="${N_SMALL:-2000}"; N_BIG="${N_BIG:-1000}"
LEN_SMALL="${LEN_SMALL:-2048}"; LEN_BIG="${LEN_BIG:-102400}"
PAR="${PAR:-20}"
BENCH_UID="${BENCH_UID:-2000}"
STALL="${STALL:-30}"
FSYNC_SECS="${FSYNC_SECS:-3}"
PORT_OURS="${PORT_OURS:-3151}"
PORT_REAL="${PORT_REAL:-3152}"
OPENSMTPD="${OPENSMTPD:-/usr/sbin/smtpd}"
OURS="${OURS:-$REPO/target/release/smtpd}"
LOCK=/tmp/rsmtpd-real-smtpd.lock
HELPER="python3 $HERE/helper.py"

if [ -n "${BENCH_DIR:-}" ]; then mkdir -p "$BENCH_DIR"; else
    BENCH_DIR="$(mktemp -d "${TMPDIR:-/tmp}/rsmtpd-delivery.XXXXXX")"; fi
BENCH_DIR="$(cd "$BENCH_DIR" && pwd)"
chmod 711 "$BENCH_DIR"   # the delivery user must reach its Maildir below
. "$REPO/bench/lib/common.sh"

[ "$(id -u)" = 0 ] || { echo "error: run as root (OpenSMTPD and setuid deliveries need it)" >&2; exit 1; }
REF="OpenSMTPD"
if [ "${UNSPLIT:-0}" = 1 ]; then
    REF="unsplit"
    id -u opensmtpq >/dev/null 2>&1 || id -u _smtpq >/dev/null 2>&1 \
        || { echo "error: UNSPLIT=1: no queue user (opensmtpq): ours would not split either" >&2; exit 1; }
else
    [ -x "$OPENSMTPD" ] || { echo "error: OpenSMTPD not found at $OPENSMTPD" >&2; exit 1; }
fi

smtp_source
build_ours

for port in "$PORT_OURS" "$PORT_REAL"; do
    if $HELPER listening "$port"; then echo "error: port $port already in use" >&2; exit 1; fi
done

# --- CPU accounting: one cpuacct cgroup (v1) per server run; every process the server forks
# (OpenSMTPD's 7 processes, mail.maildir children; our delivery children) inherits it.
CGROOT=/sys/fs/cgroup/cpuacct
CGBASE=""
if [ -w "$CGROOT" ] && mkdir "$CGROOT/rsmtpd-delivery-$$" 2>/dev/null; then
    CGBASE="$CGROOT/rsmtpd-delivery-$$"
else
    say "note: no writable cpuacct cgroup; CPU comes from /proc only"
fi

# --- configs: same rules for both; one userbase user whose Maildir exists and belongs to it --
# AGENT=mda delivers through a command instead (a script that writes the message into the
# Maildir as cat does, without fsync), the way setups with dovecot-lda or procmail work.
AGENT="${AGENT:-maildir}"
cat > "$BENCH_DIR/deliver.sh" <<'EOF'
#!/bin/sh
f=$(mktemp "$1/tmp/m.XXXXXXXXXX") && cat > "$f" && mv "$f" "$1/new/"
EOF
chmod 755 "$BENCH_DIR/deliver.sh"
conf() { # server port -> config text
    local action="maildir \"$BENCH_DIR/$1-home/Maildir\""
    [ "$AGENT" = mda ] && action="mda \"$BENCH_DIR/deliver.sh $BENCH_DIR/$1-home/Maildir\""
    cat <<EOF
table users { bench = "$BENCH_UID:$BENCH_UID:$BENCH_DIR/$1-home" }
smtp limit max-mails 100000
listen on 127.0.0.1 port $2
action "bench" $action userbase <users>
match from any for domain "bench.test" action "bench"
EOF
}
conf ours "$PORT_OURS" > "$BENCH_DIR/ours.conf"
conf real "$PORT_REAL" > "$BENCH_DIR/real.conf"
printf 'nameserver 127.0.0.1\nlookup bind file\n' > "$BENCH_DIR/resolv.conf"
"$OURS" -n -f "$BENCH_DIR/ours.conf" >/dev/null 2>&1 || { echo "error: ours rejects the config" >&2; exit 1; }
if [ "$REF" = OpenSMTPD ]; then
    "$OPENSMTPD" -n -f "$BENCH_DIR/real.conf" >/dev/null 2>&1 || { echo "error: OpenSMTPD rejects the config" >&2; exit 1; }
fi

RAW="$BENCH_DIR/results.txt"
{
    echo "# delivery benchmark raw results, $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "# host: $(uname -srm), $(nproc) cpus; runs=$RUNS par=$PAR small=${N_SMALL}x${LEN_SMALL} big=${N_BIG}x${LEN_BIG}"
    if [ "$REF" = OpenSMTPD ]; then
        echo "# opensmtpd=$OPENSMTPD (private spool over /var/spool/smtpd); ours=$OURS ($OURS_REV)"
    else
        echo "# UNSPLIT=1: 'real' lines are ours too, SMTPD_USER=root (not split); ours=$OURS ($OURS_REV)"
    fi
    echo "# load average at the start: $(cut -d' ' -f1-3 /proc/loadavg); RSMTPD_SANDBOX=${RSMTPD_SANDBOX:-on} (the engine's Landlock+seccomp)"
    echo "# cpu: ${CGBASE:+cpuacct cgroup per server run, }/proc tree (utime+stime+cutime+cstime) cross-check"
    echo "# lines: server size run accept_s deliver_s files cpu_cg_s cpu_proc_s peak_rss_kb src_rc unique_ids logged_ok logged_fail msgs_per_s cpu_ms_per_msg"
    echo "#        fsync when same_file_per_s new_file_per_s"
} > "$RAW"

# --- servers -----------------------------------------------------------------------------------
PID=""; SERVER=""; RUNID=""; LOG=""; CG=""

start() { # ours|real runid
    SERVER="$1"; RUNID="$2"
    local port home="$BENCH_DIR/$1-home"
    rm -rf "$home"; mkdir -p "$home/Maildir/new" "$home/Maildir/cur" "$home/Maildir/tmp"
    chown -R "$BENCH_UID:$BENCH_UID" "$home"; chmod -R 700 "$home"
    CG=""
    if [ -n "$CGBASE" ]; then CG="$CGBASE/$1-$2"; mkdir -p "$CG"; fi
    LOG="$BENCH_DIR/$1-$2.log"
    if [ "$1" = ours ]; then
        port=$PORT_OURS
        rm -rf "$BENCH_DIR/ours-spool"
        SMTPD_SPOOL="$BENCH_DIR/ours-spool" SMTPD_SOCKET="$BENCH_DIR/ours.sock" \
            SMTPD_RESOLVER=127.0.0.1:1 sh -c '[ -z "$1" ] || echo $$ > "$1/cgroup.procs"; shift; exec "$@"' sh "$CG" \
            "$OURS" -d -f "$BENCH_DIR/ours.conf" >"$LOG" 2>&1 &
        PID=$!
    elif [ "$REF" = unsplit ]; then
        # The same binary, root, the same environment but SMTPD_USER=root: with root as the
        # unprivileged user there is nothing to split off (privsep::creds::engine_creds), so it
        # runs as the daemon did before the split: one process as root, with its delivery process.
        port=$PORT_REAL
        rm -rf "$BENCH_DIR/real-spool"
        SMTPD_USER=root SMTPD_SPOOL="$BENCH_DIR/real-spool" SMTPD_SOCKET="$BENCH_DIR/real.sock" \
            SMTPD_RESOLVER=127.0.0.1:1 sh -c '[ -z "$1" ] || echo $$ > "$1/cgroup.procs"; shift; exec "$@"' sh "$CG" \
            "$OURS" -d -f "$BENCH_DIR/real.conf" >"$LOG" 2>&1 &
        PID=$!
    else
        port=$PORT_REAL
        exec 9>"$LOCK"; flock 9     # one real OpenSMTPD on the machine at a time (control socket)
        # Private mount namespace: its own empty spool over /var/spool/smtpd, and a resolv.conf
        # naming 127.0.0.1 (nothing on port 53) as ours gets SMTPD_RESOLVER=127.0.0.1:1.
        # And a private /run, so its control socket (/var/run/smtpd.sock) cannot meet another
        # OpenSMTPD's: a test of another checkout that does not take the lock made it exit with
        # "control socket already listening".
        rm -rf "$BENCH_DIR/real-spool" "$BENCH_DIR/real-run"
        mkdir -m 711 "$BENCH_DIR/real-spool"; mkdir -m 755 "$BENCH_DIR/real-run"
        unshare -m sh -c '[ -z "$3" ] || echo $$ > "$3/cgroup.procs"; mount --bind "$1" /etc/resolv.conf && mount --bind "$2" /var/spool/smtpd && mount --bind "$4" /run && shift 4 && exec "$@"' sh \
            "$BENCH_DIR/resolv.conf" "$BENCH_DIR/real-spool" "$CG" "$BENCH_DIR/real-run" \
            "$OPENSMTPD" -d -f "$BENCH_DIR/real.conf" >"$LOG" 2>&1 &
        PID=$!
    fi
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
    [ "$SERVER" = real ] && [ "$REF" = OpenSMTPD ] && exec 9>&-
    set_aside "$BENCH_DIR/$SERVER-spool" "$BENCH_DIR/$SERVER-home" "$BENCH_DIR/$SERVER-run"
    if [ -n "$CG" ]; then
        for _ in $(seq 100); do rmdir "$CG" 2>/dev/null && break; sleep 0.05; done
    fi
}
cleanup() { stop; empty_trash; [ -z "$CGBASE" ] || rmdir "$CGBASE" 2>/dev/null || true; }
trap cleanup EXIT

round() { # server size(small|big) run
    local n len port
    if [ "$2" = small ]; then n=$N_SMALL; len=$LEN_SMALL; else n=$N_BIG; len=$LEN_BIG; fi
    port=$PORT_OURS; [ "$1" = real ] && port=$PORT_REAL
    start "$1" "$2-$3"
    local newdir="$BENCH_DIR/$1-home/Maildir/new" out="$BENCH_DIR/$1-$2-$3.out" res
    res=$($HELPER run "$PID" "${CG:-/nonexistent}" "$newdir" "$n" "$STALL" -- \
        "$SRC" -s "$PAR" -d -m "$n" -l "$len" -M client.test -f sender@client.test \
        -t bench@bench.test "127.0.0.1:$port" 2>"$out")
    sleep 2   # late duplicates would show up here
    local chk ok fail
    chk=$($HELPER check "$newdir")
    ok=$(grep -c "mda delivery.*result=Ok" "$LOG" || true)
    fail=$(grep -cE "result=(TempFail|PermFail|Loop)" "$LOG" || true)
    stop
    set -- "$1" "$2" "$3" $res $chk "$ok" "$fail"
    # $4 accept_s $5 deliver_s $6 files $7 cpu_cg $8 cpu_proc $9 rss ${10} rc ${11} files ${12} uniq
    local cpu=$7; [ -n "$CGBASE" ] || cpu=$8
    awk -v l="$1 $2 $3 $4 $5 $6 $7 $8 $9 ${10} ${12} $ok $fail" -v n="$n" -v d="$5" -v c="$cpu" \
        'BEGIN { printf "%s %.1f %.3f\n", l, (d > 0 ? n / d : 0), 1000 * c / n }' >> "$RAW"
    if [ "${10}" != 0 ] || [ "$5" = "-1.000" ] || [ "${11}" != "$n" ] || [ "${12}" != "$n" ] \
        || [ "$ok" != "$n" ] || [ "$fail" != 0 ]; then
        say "WARNING: $1 $2 run $3: smtp-source exit ${10}, $6 files at the deadline, ${11} after 2 s, ${12} unique Message-Ids, $ok deliveries logged ok, $fail failed (want $n); see $out and $LOG"
    fi
}

fsync_probe() {
    echo "fsync $1 $($HELPER fsync "$BENCH_DIR" "$FSYNC_SECS")" >> "$RAW"
}

say "results in $BENCH_DIR"
say "fsync probe..."
fsync_probe before
say "warm-up..."
for s in ours real; do
    start "$s" warm
    "$SRC" -s 2 -m 50 -d -l "$LEN_SMALL" -f s@c.test -t bench@bench.test \
        "127.0.0.1:$([ $s = ours ] && echo "$PORT_OURS" || echo "$PORT_REAL")" >/dev/null 2>&1 || true
    sleep 2; stop
done
for i in $(seq 1 "$RUNS"); do
    say "run $i/$RUNS"
    for size in small big; do
        k=0; [ "$size" = big ] && k=1
        if [ $(((i + k) % 2)) = 1 ]; then round real "$size" "$i"; round ours "$size" "$i"
        else round ours "$size" "$i"; round real "$size" "$i"; fi
    done
done
fsync_probe after

# --- summary -------------------------------------------------------------------------------------
med() { # server size column
    awk -v s="$1" -v z="$2" -v c="$3" '!/^#/ && $1 == s && $2 == z { print $c }' "$RAW" | sort -g \
        | awk '{ v[NR] = $1 } END { if (NR == 0) print 0; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
fs_same=$(awk '$1 == "fsync" { s += $3; n++ } END { printf "%.1f", n ? s / n : 0 }' "$RAW")
fs_new=$(awk '$1 == "fsync" { s += $4; n++ } END { printf "%.1f", n ? s / n : 0 }' "$RAW")
SUMMARY="$(
    for z in small big; do
        echo "$z $(med ours $z 14) $(med real $z 14) $(med ours $z 15) $(med real $z 15) $(med ours $z 9) $(med real $z 9) $(med ours $z 4) $(med real $z 4)"
    done | awk -v runs="$RUNS" -v par="$PAR" -v ns="$N_SMALL" -v nb="$N_BIG" -v ls="$LEN_SMALL" -v lb="$LEN_BIG" \
        -v fs="$fs_same" -v fn="$fs_new" -v ref="$REF" -v load="$(cut -d' ' -f1-3 /proc/loadavg)" '
    function r(x, y) { return y > 0 ? sprintf("%.2fx", x / y) : "n/a" }
    { rate_o[$1] = $2; rate_r[$1] = $3; cpu_o[$1] = $4; cpu_r[$1] = $5; mem_o[$1] = $6; mem_r[$1] = $7
      acc_o[$1] = $8; acc_r[$1] = $9 }
    END {
        printf "delivery: medians of %d interleaved runs, %d sessions, Maildir of a userbase user\n", runs, par
        printf "%-52s %10s %10s %8s\n", "", "rsmtpd", ref, "ratio"
        split("small big", zs, " ")
        for (i = 1; i <= 2; i++) {
            z = zs[i]; lab = (z == "small") ? sprintf("%d x %d B", ns, ls) : sprintf("%d x %d B", nb, lb)
            printf "%-52s %10.1f %10.1f %8s\n", "msgs/s first byte->last in Maildir, " lab, rate_o[z], rate_r[z], r(rate_o[z], rate_r[z])
            printf "%-52s %10.3f %10.3f %8s\n", "  CPU ms/msg (all processes + children)", cpu_o[z], cpu_r[z], r(cpu_r[z], cpu_o[z])
            printf "%-52s %10.1f %10.1f %8s\n", "  peak RSS MB (sum over process tree)", mem_o[z] / 1024, mem_r[z] / 1024, r(mem_r[z], mem_o[z])
            printf "%-52s %10.2f %10.2f\n", "  seconds until the last 250 (accept)", acc_o[z], acc_r[z]
        }
        printf "fsync ceiling: %.0f/s rewriting one file, %.0f/s new file each time (2 KB + fsync)\n", fs, fn
        printf "ours 2 KB msgs/s as a share of new-file fsyncs/s: %.0f%%; 100 KB: %.0f%%\n", 100 * rate_o["small"] / fn, 100 * rate_o["big"] / fn
        print "ratios: ours/" ref " for rates, " ref "/ours for CPU and memory (above 1 = we win)"
        if (ref == "OpenSMTPD")
            printf "target 2x end-to-end rate: 2 KB %s, 100 KB %s\n", (rate_o["small"] >= 2 * rate_r["small"]) ? "met" : "NOT met", (rate_o["big"] >= 2 * rate_r["big"]) ? "met" : "NOT met"
        else
            printf "target: the split costs at most 5 %% of the rate: 2 KB %s, 100 KB %s\n", (rate_o["small"] >= 0.95 * rate_r["small"]) ? "met" : "NOT met", (rate_o["big"] >= 0.95 * rate_r["big"]) ? "met" : "NOT met"
        printf "load average at the end: %s\n", load
    }'
)"
{ echo "#"; echo "$SUMMARY" | sed 's/^/# /'; } >> "$RAW"
echo "$SUMMARY"
echo "raw results: $RAW"
