#!/usr/bin/env bash
# Re-record the .expected files of the config corpus with the REAL OpenSMTPD.
#
#   tests/config-corpus/record.sh                 # every valid/*.conf and invalid/*.conf
#   tests/config-corpus/record.sh valid/001-x.conf invalid/005-y.conf ...
#
# For each X.conf this writes X.expected = exact stderr of
#   (cd <dir of X.conf> && /usr/sbin/smtpd -n -f X.conf </dev/null)
# followed by one line "exit: N".  See README.md for the rules (@DIR@, modes).
set -euo pipefail

SMTPD=${SMTPD:-/usr/sbin/smtpd}
if [ ! -x "$SMTPD" ]; then
    echo "record.sh: $SMTPD not found; install opensmtpd (Debian 6.8.0p2) first" >&2
    exit 2
fi
if [ "$(id -u)" != 0 ]; then
    echo "record.sh: must run as root (pki key files must be owned by uid 0)" >&2
    exit 2
fi

CORPUS=$(cd "$(dirname "$0")" && pwd)
TMP=$(mktemp -d /tmp/rsmtpd-corpus.XXXXXX)
trap 'rm -rf "$TMP"' EXIT

# 1. copy the corpus and substitute @DIR@ in every *.conf file (any folder)
cp -a "$CORPUS/valid" "$CORPUS/invalid" "$CORPUS/data" "$TMP/"
find "$TMP" -type f -name '*.conf' -print0 | xargs -0 sed -i "s|@DIR@|$TMP|g"

# 2. file modes and ownership that git cannot carry
chown -R 0:0 "$TMP"
chmod 600 "$TMP"/data/*key*.pem
chmod 644 "$TMP"/data/insecure-key.pem

# 3. which files
if [ $# -gt 0 ]; then
    files=()
    for f in "$@"; do
        f=${f#"$CORPUS/"}; f=${f#tests/config-corpus/}
        files+=("$f")
    done
else
    files=()
    for f in "$CORPUS"/valid/*.conf "$CORPUS"/invalid/*.conf; do
        files+=("${f#"$CORPUS/"}")
    done
fi

# 4. run and record
for rel in "${files[@]}"; do
    dir=$(dirname "$rel"); base=$(basename "$rel"); stem=${base%.conf}
    set +e
    (cd "$TMP/$dir" && timeout 20 "$SMTPD" -n -f "$base" </dev/null \
        >"$TMP/stdout" 2>"$TMP/stderr")
    rc=$?
    set -e
    if [ -s "$TMP/stdout" ]; then
        echo "record.sh: WARNING: $rel wrote to stdout (not recorded)" >&2
    fi
    out="$CORPUS/$dir/$stem.expected"
    { sed "s|$TMP|@DIR@|g" "$TMP/stderr"; echo "exit: $rc"; } >"$out"
    case "$dir:$rc" in
        valid:0|invalid:[1-9]*) ;;
        *) echo "record.sh: WARNING: $rel exited $rc" >&2 ;;
    esac
done
echo "recorded ${#files[@]} file(s)" >&2
