#!/usr/bin/env bash
# Config-check benchmark: `smtpd -n -f CONF` on a config with a 1,000,000-entry alias table and a
# 100,000-entry domain table, OpenSMTPD vs rsmtpd. See README.md in this folder.
#
# Environment:
#   BENCH_DIR   where to generate the data and write results (default: a new temp dir, kept)
#   RUNS        timed runs per program (default 7, minimum 5), interleaved
#   ALIASES     alias table entries (default 1000000)
#   DOMAINS     domain table entries (default 100000)
#   OPENSMTPD   the reference binary (default /usr/sbin/smtpd)
#   OURS        our binary (default <repo>/target/release/smtpd, built if missing or stale)
#   GENERATE_ONLY=1  only write the data and the config into BENCH_DIR, then stop (daemon-rss.sh)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
RUNS="${RUNS:-7}"
ALIASES="${ALIASES:-1000000}"
DOMAINS="${DOMAINS:-100000}"
OPENSMTPD="${OPENSMTPD:-/usr/sbin/smtpd}"
OURS="${OURS:-$REPO/target/release/smtpd}"
[ "$RUNS" -ge 5 ] || RUNS=5

if [ -n "${BENCH_DIR:-}" ]; then
    mkdir -p "$BENCH_DIR"
else
    BENCH_DIR="$(mktemp -d "${TMPDIR:-/tmp}/rsmtpd-config-check.XXXXXX")"
fi
BENCH_DIR="$(cd "$BENCH_DIR" && pwd)"

# --- tools ---------------------------------------------------------------------------------------
if [ ! -x /usr/bin/time ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "installing GNU time..." >&2
        apt-get install -y time >/dev/null || { apt-get update >/dev/null && apt-get install -y time >/dev/null; }
    else
        echo "error: /usr/bin/time (GNU time) is missing; install the 'time' package" >&2
        exit 1
    fi
fi
[ -x "$OPENSMTPD" ] || { echo "error: OpenSMTPD not found at $OPENSMTPD" >&2; exit 1; }

if [ -z "${OURS_PREBUILT:-}" ] && [ -z "${GENERATE_ONLY:-}" ]; then
    echo "building rsmtpd (release)..." >&2
    (cd "$REPO" && cargo build --release -q -p rsmtpd) >&2
fi
[ -n "${GENERATE_ONLY:-}" ] || [ -x "$OURS" ] || { echo "error: our smtpd not found at $OURS" >&2; exit 1; }

# --- data ----------------------------------------------------------------------------------------
CONF="$BENCH_DIR/smtpd.conf"
ALIAS_FILE="$BENCH_DIR/aliases"
DOMAIN_FILE="$BENCH_DIR/domains"
STAMP="$BENCH_DIR/.generated-$ALIASES-$DOMAINS"

if [ ! -f "$STAMP" ]; then
    echo "generating $ALIASES aliases and $DOMAINS domains in $BENCH_DIR..." >&2
    # Aliases: mostly one local target, some several (local users, addresses, a few |pipes are
    # avoided to keep both parsers on the same ground), a comment every 10,000 lines.
    awk -v n="$ALIASES" 'BEGIN {
        srand(42)
        print "# generated alias table for the config-check benchmark"
        for (i = 0; i < n; i++) {
            if (i % 10000 == 0) printf "# block %d\n", i / 10000
            r = rand()
            if (r < 0.80) {
                printf "user%07d: target%07d\n", i, i
            } else if (r < 0.93) {
                printf "user%07d: target%07d, target%07d\n", i, i, int(rand() * n)
            } else if (r < 0.98) {
                printf "user%07d: target%07d, target%07d@mail%d.example.net, user%07d\n", \
                    i, i, int(rand() * n), int(rand() * 1000), int(rand() * n)
            } else {
                printf "user%07d: target%07d,target%07d,target%07d,target%07d@lists.example.org\n", \
                    i, i, int(rand() * n), int(rand() * n), int(rand() * n)
            }
        }
    }' > "$ALIAS_FILE"
    # Domains: one per line, ~5% `*.` wildcards, a few TLDs.
    awk -v n="$DOMAINS" 'BEGIN {
        srand(7)
        split("com net org io de fr example co.uk", tld, " ")
        for (i = 0; i < n; i++) {
            t = tld[1 + int(rand() * 8)]
            if (rand() < 0.05) printf "*.domain%06d.%s\n", i, t
            else printf "domain%06d.%s\n", i, t
        }
    }' > "$DOMAIN_FILE"
    cat > "$CONF" <<CONF
# config-check benchmark: $ALIASES aliases, $DOMAINS domains
table aliases file:$ALIAS_FILE
table domains file:$DOMAIN_FILE

action "local" maildir alias <aliases>

match from any for domain <domains> action "local"
CONF
    rm -f "$BENCH_DIR"/.generated-*
    touch "$STAMP"
fi

[ -z "${GENERATE_ONLY:-}" ] || exit 0

# --- validity: both must accept the config -------------------------------------------------------
for prog in "$OPENSMTPD" "$OURS"; do
    out="$("$prog" -n -f "$CONF" 2>&1)" || { echo "error: $prog -n failed:" >&2; echo "$out" >&2; exit 1; }
    case "$out" in
        *"configuration OK"*) echo "$prog: configuration OK" >&2 ;;
        *) echo "error: $prog -n did not print 'configuration OK':" >&2; echo "$out" >&2; exit 1 ;;
    esac
done

# --- timed runs ----------------------------------------------------------------------------------
RAW="$BENCH_DIR/results.txt"
{
    echo "# config-check benchmark raw results, $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "# host: $(uname -srm), $(nproc) cpus; aliases=$ALIASES domains=$DOMAINS runs=$RUNS"
    echo "# opensmtpd=$OPENSMTPD ours=$OURS"
    echo "# program run wall_s maxrss_kb user_s sys_s"
} > "$RAW"

one_run() { # label prog run
    local tf="$BENCH_DIR/.time.$$"
    /usr/bin/time -o "$tf" -f '%e %M %U %S' "$2" -n -f "$CONF" >/dev/null 2>&1 \
        || { echo "error: $2 -n failed during timing" >&2; exit 1; }
    echo "$1 $3 $(cat "$tf")" >> "$RAW"
    rm -f "$tf"
}

echo "warm-up..." >&2
"$OPENSMTPD" -n -f "$CONF" >/dev/null 2>&1
"$OURS" -n -f "$CONF" >/dev/null 2>&1
for i in $(seq 1 "$RUNS"); do
    echo "run $i/$RUNS" >&2
    # Alternate which program goes first so drifting load hits both alike.
    if [ $((i % 2)) = 1 ]; then
        one_run opensmtpd "$OPENSMTPD" "$i"; one_run rsmtpd "$OURS" "$i"
    else
        one_run rsmtpd "$OURS" "$i"; one_run opensmtpd "$OPENSMTPD" "$i"
    fi
done

# --- summary -------------------------------------------------------------------------------------
median() { # label column
    awk -v p="$1" -v c="$2" '!/^#/ && $1 == p { print $c }' "$RAW" | sort -g \
        | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
cpu_median() { # label: median of user+sys per run
    awk -v p="$1" '!/^#/ && $1 == p { print $5 + $6 }' "$RAW" | sort -g \
        | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
ow=$(median opensmtpd 3); rw=$(median rsmtpd 3)
om=$(median opensmtpd 4); rm_=$(median rsmtpd 4)
oc=$(cpu_median opensmtpd); rc=$(cpu_median rsmtpd)

SUMMARY="$(awk -v ow="$ow" -v rw="$rw" -v om="$om" -v rm="$rm_" -v oc="$oc" -v rc="$rc" \
    -v runs="$RUNS" -v a="$ALIASES" -v d="$DOMAINS" 'function ratio(x, y) { return y > 0 ? sprintf("%.2fx", x / y) : "n/a" }
BEGIN {
    printf "smtpd -n: %d aliases, %d domains; median of %d interleaved runs each\n", a, d, runs
    printf "%-22s %12s %12s %16s\n", "", "OpenSMTPD", "rsmtpd", "ratio (Open/ours)"
    printf "%-22s %12.2f %12.2f %16s\n", "wall time (s)", ow, rw, ratio(ow, rw)
    printf "%-22s %12.2f %12.2f %16s\n", "CPU user+sys (s)", oc, rc, ratio(oc, rc)
    printf "%-22s %12.1f %12.1f %16s\n", "peak RSS (MiB)", om / 1024, rm / 1024, ratio(om, rm)
}')"
{ echo "#"; echo "$SUMMARY" | sed 's/^/# /'; } >> "$RAW"
echo "$SUMMARY"
echo
if awk -v ow="$ow" -v rw="$rw" 'BEGIN { exit !(rw < ow && rw < 1.0) }'; then
    echo "target met: faster than OpenSMTPD and under 1 s"
else
    echo "target NOT met (want rsmtpd faster than OpenSMTPD and under 1 s)"
fi
echo "raw results: $RAW"
