#!/usr/bin/env bash
# Installs the package (scripts/deb.sh) into a throwaway Debian 12 root and uses it as an
# administrator would, as root in there: `smtpd -n` passes on the installed default config, the
# daemon starts through the unit's own ExecStart line, a message sent with the installed
# sendmail reaches a local user's ~/Maildir, `smtpctl show queue` runs; with the daemon down,
# sendmail by that ordinary user queues (exit 75) and the message is delivered at the next start.
#
# Why mmdebstrap from deb.debian.org rather than a mount namespace over a copy of this system: the
# package must bring what it needs by itself (its users and groups, the setgid smtpctl, the spool,
# its dependencies), and this machine already has Debian's opensmtpd with those users and
# directories, which would hide a missing step. A minbase bookworm root is ~100 MB and a minute
# to make; it runs in new mount, PID and network namespaces (its own loopback, so port 25 there
# is nobody else's), and is removed at the end.
#
# Usage: scripts/deb-test.sh PACKAGE.deb   (root; apt-get install mmdebstrap)
set -euo pipefail
deb=$(realpath "$1")
[ "$(id -u)" = 0 ] || { echo "deb-test: needs root" >&2; exit 2; }
command -v mmdebstrap > /dev/null || { echo "deb-test: needs mmdebstrap" >&2; exit 2; }
work=$(mktemp -d /tmp/rsmtpd-deb-test.XXXXXX)
cleanup() {
  # Nothing is mounted any more: the mounts lived in the namespace, which is gone.
  rm -rf "$work"
}
trap cleanup EXIT
root="$work/root"
mmdebstrap --quiet --variant=minbase --include=adduser bookworm "$root" \
  http://deb.debian.org/debian > "$work/mmdebstrap.log" 2>&1 \
  || { cat "$work/mmdebstrap.log" >&2; exit 1; }
cp "$deb" "$root/tmp/rsmtpd.deb"

cat > "$root/tmp/inside.sh" <<'INSIDE'
set -eu
step() { echo "deb-test: $*"; }
fail() { echo "deb-test: FAILED: $*" >&2; exit 1; }
# Poll for a condition, up to 30 s.
wait_for() {
  i=0
  while ! sh -c "$1"; do
    i=$((i + 1)); [ $i -lt 300 ] || fail "timed out waiting for: $1"; sleep 0.1
  done
}
# Our own daemon's processes, by id (this PID namespace holds nothing else).
daemon_pids() {
  for d in /proc/[0-9]*; do
    case "$(tr '\0' ' ' < "$d/cmdline" 2>/dev/null)" in
      "/usr/sbin/smtpd -f"*) echo "${d#/proc/}" ;;
    esac
  done
}
stop_daemon() {
  for p in $(daemon_pids); do kill -TERM "$p"; done
  wait_for '[ -z "$(for d in /proc/[0-9]*; do tr "\0" " " < $d/cmdline 2>/dev/null | grep -q "^/usr/sbin/smtpd -f" && echo x; done)" ]'
}
grep -q localhost /etc/hosts 2> /dev/null || printf '127.0.0.1 localhost\n::1 localhost\n' >> /etc/hosts
hostname deb-test.example 2> /dev/null || true

step "dpkg -i"
dpkg -i /tmp/rsmtpd.deb > /tmp/dpkg.log 2>&1 || { cat /tmp/dpkg.log; fail "dpkg -i"; }
for u in opensmtpd opensmtpq; do id "$u" > /dev/null || fail "no user $u"; done
[ "$(stat -c '%A %U %G' /usr/sbin/smtpctl)" = "-rwxr-sr-x root opensmtpq" ] \
  || fail "smtpctl is $(stat -c '%A %U %G' /usr/sbin/smtpctl)"
[ "$(stat -c '%a %U %G' /var/spool/smtpd/offline)" = "770 root opensmtpq" ] || fail "offline/ modes"
[ "$(readlink /usr/sbin/sendmail)" = smtpctl ] || fail "sendmail link"
/usr/sbin/smtpd -h 2>&1 | grep -q '^rsmtpd .*OpenSMTPD 6.8.0p2' || fail "smtpd -h"

step "smtpd -n on the installed /etc/smtpd.conf"
out=$(/usr/sbin/smtpd -n 2>&1) || fail "smtpd -n: $out"
[ "$out" = "configuration OK" ] || fail "smtpd -n said: $out"

useradd -m alice
unit=/lib/systemd/system/rsmtpd.service
pre=$(sed -n 's/^ExecStartPre=//p' "$unit")
start=$(sed -n 's/^ExecStart=//p' "$unit")
step "the unit's ExecStartPre and ExecStart: $pre; $start"
$pre 2> /dev/null || fail "$pre"
$start || fail "$start"
wait_for '[ -S /var/run/smtpd.sock ]'
printf 'Subject: installed\n\nfrom the package\n' | /usr/sbin/sendmail alice@localhost \
  || fail "sendmail while running"
wait_for 'ls /home/alice/Maildir/new/* > /dev/null 2>&1'
grep -q "from the package" /home/alice/Maildir/new/* || fail "message text"
[ "$(stat -c %U /home/alice/Maildir/new/*)" = alice ] || fail "Maildir owner"
step "smtpctl show queue"
/usr/sbin/smtpctl show queue > /tmp/queue.txt || fail "smtpctl show queue"
mailq > /dev/null || fail "mailq"

step "offline: sendmail by alice while the daemon is down"
stop_daemon
rc=0
printf 'Subject: offline\n\nwhile down\n' \
  | setpriv --reuid=alice --regid=alice --init-groups /usr/sbin/sendmail alice@localhost || rc=$?
[ "$rc" = 75 ] || fail "offline sendmail exit $rc (want 75)"
[ "$(ls /var/spool/smtpd/offline | wc -l)" = 1 ] || fail "nothing in offline/"
$start || fail "second start"
wait_for '[ "$(ls /home/alice/Maildir/new | wc -l)" = 2 ]'
grep -q "while down" /home/alice/Maildir/new/* || fail "offline message text"
[ "$(ls /var/spool/smtpd/offline | wc -l)" = 0 ] || fail "offline/ not emptied"
/usr/sbin/smtpctl show queue > /dev/null || fail "show queue after restart"
stop_daemon
step "all passed"
INSIDE

# A new PID namespace ends every process of the root with it; its own mounts and loopback.
unshare --mount --pid --net --uts --fork --mount-proc=/proc bash -c '
  set -e
  root=$1
  mount --make-rprivate /
  ip link set lo up 2> /dev/null || true
  mount -t proc proc "$root/proc"
  mount --rbind /dev "$root/dev"
  mount -t tmpfs tmpfs "$root/run"
  mkdir -p "$root/run/lock"
  chroot "$root" /bin/sh /tmp/inside.sh
' bash "$root"
