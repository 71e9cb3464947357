#!/usr/bin/env bash
# Installs the package (scripts/deb.sh) into a throwaway Debian root and uses it as an
# administrator would, as root in there: dpkg refuses it beside Debian's opensmtpd (Conflicts);
# once that is purged, with its users, groups and spool, `dpkg -i` creates them again (modes and
# owners checked), `smtpd -n` passes on the installed /etc/smtpd.conf, the daemon starts through
# the unit's own ExecStartPre and ExecStart lines, mail that an ordinary user sends with the
# installed sendmail reaches their ~/Maildir (directly and through /etc/aliases), the unit's
# ExecReload lines put a new alias in service without stopping the daemon, `smtpctl show
# queue` and `mailq` run (listing mail for another domain, which Debian's default config relays),
# SIGTERM stops it; with the daemon down, sendmail by that user
# queues the message offline (exit 75) and the next start delivers it; `dpkg --purge` removes
# the files and the setgid override and leaves the users and the spool, as Debian's does.
#
# The throwaway root is this very system under a copy-on-write overlay (tmpfs upper layer) in
# new mount, PID, network, UTS and IPC namespaces, rather than a debootstrap/mmdebstrap root: no
# download and no minute of bootstrapping in CI (this takes seconds), and it is the Debian 12
# that CI runs on. What the host already has (Debian's opensmtpd from scripts/test-deps.sh, its
# users, groups, statoverride and /etc/aliases) is purged in the overlay first, so that nothing
# the package should bring itself is there already. Every write lands in the tmpfs, every
# process dies with the PID namespace, the network namespace has only its own loopback (port
# 25 there is nobody else's), and nothing of it outlives the script.
#
# Usage: scripts/deb-test.sh PACKAGE.deb   (as root; needs unshare and overlayfs)
# Prints `deb-test: STEP` lines and ends with `deb-test: all passed`, or `deb-test: FAILED: ...`
# (with the daemon's log) and status 1.
set -euo pipefail

if [ "${1:-}" != --inside ]; then
  deb=$(realpath "$1")
  [ "$(id -u)" = 0 ] || { echo "deb-test: needs root" >&2; exit 2; }
  work=$(mktemp -d /tmp/rsmtpd-deb-test.XXXXXX)
  # Only the empty mount point stays behind: the tmpfs on it lived in the namespace.
  trap 'rmdir "$work"' EXIT
  unshare --mount --pid --net --uts --ipc --fork --kill-child bash -c '
    set -e
    work=$1 deb=$2 self=$3
    mount --make-rprivate /
    mount -t tmpfs -o mode=0700 tmpfs "$work"
    mkdir "$work/upper" "$work/work" "$work/root"
    root=$work/root
    mount -t overlay overlay -o "lowerdir=/,upperdir=$work/upper,workdir=$work/work" "$root"
    mount -t proc proc "$root/proc"
    # A /dev of its own (the host'"'"'s nodes bound in), so that the syslog socket made at
    # /dev/log is in the throwaway root only.
    mount -t tmpfs -o mode=0755 tmpfs "$root/dev"
    for n in null zero full random urandom tty; do
      touch "$root/dev/$n"; mount --bind "/dev/$n" "$root/dev/$n"
    done
    mkdir "$root/dev/pts" "$root/dev/shm"
    mount -t tmpfs -o mode=0755 tmpfs "$root/run"
    mkdir "$root/run/lock"
    mount -t tmpfs -o mode=1777 tmpfs "$root/tmp"
    cp "$deb" "$root/tmp/rsmtpd.deb"
    cp "$self" "$root/tmp/deb-test.sh"
    ip link set lo up
    hostname deb-test.example
    exec chroot "$root" /bin/bash /tmp/deb-test.sh --inside
  ' bash "$work" "$deb" "$(realpath "$0")"
  exit 0
fi

# ---- inside the throwaway root, as its root ----
PATH=/usr/sbin:/usr/bin:/sbin:/bin
step() { echo "deb-test: $*"; }
fail() {
  echo "deb-test: FAILED: $*" >&2
  if [ -s /var/log/mail.log ]; then
    echo "deb-test: the daemon's log:" >&2
    sed 's/^/  /' /var/log/mail.log >&2
  fi
  exit 1
}
# Polls a shell condition for up to 30 s.
wait_for() {
  local i=0
  until eval "$1"; do
    i=$((i + 1))
    [ $i -lt 300 ] || fail "timed out waiting for: $1"
    sleep 0.1
  done
}
mode_of() { stat -c '%a %U %G' "$1"; }
expect_mode() {
  local got
  got=$(mode_of "$1") || fail "$1 is missing"
  [ "$got" = "$2" ] || fail "$1 is '$got', want '$2'"
}
# The daemon's processes: smtpd and its helpers (this PID namespace holds nothing else of it).
daemon_running() {
  local d
  for d in /proc/[0-9]*; do
    case "$(tr '\0' ' ' 2> /dev/null < "$d/cmdline")" in
      /usr/sbin/smtpd*|smtpd:*) return 0 ;;
    esac
  done
  return 1
}
# The main process, as systemd's $MAINPID: the one started by the unit's ExecStart line.
main_pid() {
  local d
  for d in /proc/[0-9]*; do
    case "$(tr '\0' ' ' 2> /dev/null < "$d/cmdline")" in
      "$start "|"$start") echo "${d#/proc/}"; return ;;
    esac
  done
}
# As `systemctl stop` does: SIGTERM to the main process (6.8's smtpctl has no `stop`).
stop_daemon() {
  local d
  for d in /proc/[0-9]*; do
    case "$(tr '\0' ' ' 2> /dev/null < "$d/cmdline")" in
      "$start "|"$start") kill -TERM "${d#/proc/}" ;;
    esac
  done
  wait_for '! daemon_running'
}
count() { find "$1" -mindepth 1 -maxdepth 1 | wc -l; }

# The daemon logs to syslog: a catcher on /dev/log keeps its lines for a failure report.
python3 -c '
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("/dev/log")
os.chmod("/dev/log", 0o666)
out = open("/var/log/mail.log", "ab", buffering=0)
if os.fork():
    os._exit(0)
while True:
    out.write(s.recv(65536) + b"\n")
' < /dev/null > /dev/null 2>&1
grep -q '^127.0.0.1[[:space:]].*localhost' /etc/hosts \
  || printf '127.0.0.1 localhost\n::1 localhost\n' >> /etc/hosts
echo deb-test.example > /etc/mailname

if dpkg -s opensmtpd > /dev/null 2>&1; then
  step "dpkg -i beside Debian's opensmtpd is refused (Conflicts: mail-transport-agent)"
  if dpkg -i /tmp/rsmtpd.deb > /tmp/dpkg.log 2>&1; then
    fail "rsmtpd installed beside Debian's opensmtpd"
  fi
  grep -q 'conflict' /tmp/dpkg.log || { cat /tmp/dpkg.log >&2; fail "no conflict named"; }
  # With what depends on it (opensmtpd-extras, where installed).
  pkgs=$(dpkg-query -W -f '${db:Status-Abbrev} ${Package}\n' 'opensmtpd*' | awk '/^ii/ {print $2}')
  # shellcheck disable=SC2086
  dpkg --purge $pkgs > /tmp/dpkg.log 2>&1 || { cat /tmp/dpkg.log >&2; fail "purge $pkgs"; }
fi
step "a system without an MTA: no opensmtpd users, groups, override, spool or aliases"
for name in opensmtpd opensmtpq; do
  if id "$name" > /dev/null 2>&1; then userdel "$name"; fi
  if getent group "$name" > /dev/null; then groupdel "$name"; fi
done
if dpkg-statoverride --list /usr/sbin/smtpctl > /dev/null; then
  dpkg-statoverride --remove /usr/sbin/smtpctl
fi
rm -rf /var/spool/smtpd /var/lib/opensmtpd /etc/aliases /etc/smtpd.conf

step "dpkg -i"
dpkg -i /tmp/rsmtpd.deb > /tmp/dpkg.log 2>&1 || { cat /tmp/dpkg.log >&2; fail "dpkg -i"; }
[ "$(dpkg-query -W -f '${Status}' rsmtpd)" = "install ok installed" ] || fail "not installed"
[ "$(dpkg-query -W -f '${Provides}' rsmtpd)" = "mail-transport-agent" ] || fail "Provides"
for name in opensmtpd opensmtpq; do
  entry=$(getent passwd "$name") || fail "no user $name"
  IFS=: read -r _ _ uid gid _ home shell <<< "$entry"
  [ "$uid" -lt 1000 ] || fail "$name is not a system user (uid $uid)"
  [ "$(getent group "$gid" | cut -d: -f1)" = "$name" ] || fail "$name's group is not $name"
  [ "$home" = /var/lib/opensmtpd/empty ] || fail "$name's home is $home"
  [ "$shell" = /usr/sbin/nologin ] || fail "$name's shell is $shell"
done
expect_mode /usr/sbin/smtpd "755 root root"
expect_mode /usr/sbin/smtpctl "2755 root opensmtpq"
[ "$(dpkg-statoverride --list /usr/sbin/smtpctl)" = "root opensmtpq 2755 /usr/sbin/smtpctl" ] \
  || fail "no dpkg-statoverride for smtpctl"
for link in /usr/sbin/sendmail /usr/sbin/newaliases /usr/sbin/makemap; do
  [ "$(readlink "$link")" = smtpctl ] || fail "$link is not a link to smtpctl"
done
[ "$(readlink -f /usr/bin/mailq)" = /usr/sbin/smtpctl ] || fail "/usr/bin/mailq"
expect_mode /var/spool/smtpd "711 root root"
expect_mode /var/spool/smtpd/offline "770 root opensmtpq"
for d in incoming purge queue temporary; do
  expect_mode "/var/spool/smtpd/$d" "700 opensmtpq root"
done
expect_mode /var/lib/opensmtpd/empty "755 root root"
expect_mode /etc/smtpd.conf "644 root root"
grep -q '^postmaster:' /etc/aliases || fail "no /etc/aliases written"
dpkg-query --control-show rsmtpd conffiles | grep -qx /etc/smtpd.conf || fail "conffile"
for page in man8/smtpd.8 man8/smtpctl.8 man8/sendmail.8 man8/makemap.8 man8/mailq.8 \
  man8/newaliases.8 man5/smtpd.conf.5 man5/aliases.5 man5/forward.5 man5/table.5 man1/smtp.1; do
  zcat "/usr/share/man/$page.gz" | grep -q '^\.\(TH\|so\) ' || fail "man page $page"
  # Rendered as man(1) renders it, groff's warnings on: none may come.
  if command -v man > /dev/null; then
    warn=$(cd /usr/share/man && MANWIDTH=80 man --warnings -l "$page.gz" 2>&1 > /dev/null) \
      || fail "man -l $page failed: $warn"
    [ -z "$warn" ] || fail "man -l $page warns: $warn"
  fi
done
expect_mode /usr/bin/smtp "755 root root"
unit=/lib/systemd/system/rsmtpd.service
expect_mode $unit "644 root root"
pre=$(sed -n 's/^ExecStartPre=//p' $unit)
start=$(sed -n 's/^ExecStart=//p' $unit)
reload=$(sed -n 's/^ExecReload=//p' $unit)
[ "$reload" = "/usr/sbin/smtpd -n -f /etc/smtpd.conf
/bin/kill -HUP \$MAINPID" ] || fail "ExecReload=$reload"
[ "$pre" = "/usr/sbin/smtpd -n -f /etc/smtpd.conf" ] || fail "ExecStartPre=$pre"
grep -qx 'Restart=on-failure' $unit || fail "no Restart=on-failure"
# systemd's own reading of the unit (offline: no systemd runs here), where it is installed.
if command -v systemd-analyze > /dev/null; then
  systemd-analyze verify $unit > /tmp/verify.log 2>&1 || { cat /tmp/verify.log >&2; fail "systemd-analyze verify"; }
fi
# As OpenSMTPD's, -h prints the version and the usage and exits 1.
out=$(/usr/sbin/smtpd -h 2>&1) || true
grep -q '^rsmtpd .*OpenSMTPD 6\.8\.0p2' <<< "$out" || fail "smtpd -h said: $out"

step "smtpd -n on the installed /etc/smtpd.conf"
out=$(/usr/sbin/smtpd -n 2>&1) || fail "smtpd -n: $out"
[ "$out" = "configuration OK" ] || fail "smtpd -n said: $out"

useradd -m -s /bin/sh alice
# An alias as an administrator adds one (root itself takes no Maildir delivery, as in 6.8).
echo "info: alice" >> /etc/aliases
# From here on the log holds the daemon's lines only.
: > /var/log/mail.log
step "the unit's ExecStartPre and ExecStart: $pre; $start"
$pre 2> /dev/null || fail "$pre"
$start || fail "$start"
# Type=forking: the command exits once the daemon serves, so the socket is there already.
[ -S /var/run/smtpd.sock ] || fail "$start exited before the daemon served"
step "privilege separation: a root parent, its engine as opensmtpq without capabilities"
engine_seen=
for d in /proc/[0-9]*; do
  case "$(tr '\0' ' ' 2> /dev/null < "$d/cmdline")" in
    "smtpd: engine"*)
      engine_seen=1
      uid=$(awk '/^Uid:/ {print $2}' "$d/status")
      [ "$uid" = "$(id -u opensmtpq)" ] || fail "the engine runs as uid $uid"
      caps=$(awk '/^CapEff:/ {print $2}' "$d/status")
      [ "$caps" = 0000000000000000 ] || fail "the engine has capabilities $caps"
      ;;
  esac
done
[ -n "$engine_seen" ] || fail "no smtpd: engine process"
step "a second start is refused, with the line on its stderr (systemd shows it)"
rc=0
err=$($start 2>&1) || rc=$?
[ "$rc" = 1 ] || fail "second $start: exit $rc"
case "$err" in
  "smtpd: control socket already listening: another smtpd runs with /var/run/smtpd.sock"*) ;;
  *) fail "second $start said: $err" ;;
esac
step "sendmail by alice (setgid smtpctl, through the socket)"
printf 'Subject: installed\n\nfrom the package\n' \
  | setpriv --reuid=alice --regid=alice --init-groups /usr/sbin/sendmail alice@localhost \
  || fail "sendmail while running"
wait_for '[ "$(count /home/alice/Maildir/new 2> /dev/null)" = 1 ]'
grep -q "from the package" /home/alice/Maildir/new/* || fail "message text"
[ "$(stat -c %U /home/alice/Maildir/new/*)" = alice ] || fail "Maildir owner"
printf 'Subject: to info\n\nthrough the aliases\n' \
  | setpriv --reuid=alice --regid=alice --init-groups /usr/sbin/sendmail info \
  || fail "sendmail to info"
wait_for '[ "$(count /home/alice/Maildir/new)" = 2 ]'
grep -q "through the aliases" /home/alice/Maildir/new/* || fail "info's message text"
q=$(/usr/sbin/smtpctl show queue) || fail "smtpctl show queue"
[ -z "$q" ] || fail "the queue is not empty: $q"
step "systemctl reload: the unit's ExecReload lines apply a new alias"
echo "sales: alice" >> /etc/aliases
main=$(main_pid)
[ -n "$main" ] || fail "no main process for \$MAINPID"
while IFS= read -r cmd; do
  cmd=${cmd//\$MAINPID/$main}
  $cmd > /dev/null 2>&1 || fail "ExecReload=$cmd"
done <<< "$reload"
wait_for 'grep -q "configuration reloaded from /etc/smtpd.conf" /var/log/mail.log'
[ "$(main_pid)" = "$main" ] || fail "the daemon did not survive the reload"
printf 'Subject: to sales\n\nafter the reload\n' \
  | setpriv --reuid=alice --regid=alice --init-groups /usr/sbin/sendmail sales \
  || fail "sendmail to sales"
wait_for '[ "$(count /home/alice/Maildir/new)" = 3 ]'
grep -q "after the reload" /home/alice/Maildir/new/* || fail "sales's message text"
step "smtp(1) (/usr/bin/smtp, as Debian's) to alice"
out=$(printf 'Subject: smtp\n\nby smtp(1)\n' | /usr/bin/smtp -s smtp+notls://localhost alice@localhost 2>&1) \
  || fail "smtp: $out"
case "$out" in
  "alice@localhost: EOM: 250 2.0.0 "*" Message accepted for delivery") ;;
  *) fail "smtp said: $out" ;;
esac
wait_for '[ "$(count /home/alice/Maildir/new)" = 4 ]'
step "mail to another domain goes to Debian's relay action (and waits: no network here)"
printf 'Subject: out\n\nto the world\n' \
  | setpriv --reuid=alice --regid=alice --init-groups /usr/sbin/sendmail bob@remote.example \
  || fail "sendmail to bob@remote.example"
step "smtpctl show queue, mailq"
wait_for '/usr/sbin/smtpctl show queue | grep -q "|bob@remote.example|"'
mailq | grep -q 'bob@remote.example' || fail "mailq does not list the relayed message"
mailq > /dev/null || fail "mailq"

step "SIGTERM stops it"
stop_daemon
[ ! -e /var/run/smtpd.sock ] || fail "the control socket is left behind"

step "offline: sendmail by alice while the daemon is down"
rc=0
printf 'Subject: offline\n\nwhile down\n' \
  | setpriv --reuid=alice --regid=alice --init-groups /usr/sbin/sendmail alice@localhost || rc=$?
[ "$rc" = 75 ] || fail "offline sendmail exit $rc (want 75)"
[ "$(count /var/spool/smtpd/offline)" = 1 ] || fail "nothing in offline/"
[ "$(stat -c %U /var/spool/smtpd/offline/*)" = alice ] || fail "the offline file is not alice's"
step "next start delivers it"
$start || fail "second start"
wait_for '[ "$(count /home/alice/Maildir/new)" = 5 ]'
grep -q "while down" /home/alice/Maildir/new/* || fail "offline message text"
wait_for '[ "$(count /var/spool/smtpd/offline)" = 0 ]'
stop_daemon

step "dpkg --purge rsmtpd: files and override gone, users and spool stay"
dpkg --purge rsmtpd > /tmp/dpkg.log 2>&1 || { cat /tmp/dpkg.log >&2; fail "dpkg --purge"; }
for f in /usr/sbin/smtpd /usr/sbin/smtpctl /usr/sbin/sendmail /usr/bin/mailq /etc/smtpd.conf \
  $unit; do
  [ ! -e "$f" ] && [ ! -L "$f" ] || fail "$f left after purge"
done
[ -z "$(dpkg-statoverride --list /usr/sbin/smtpctl)" ] || fail "override left after purge"
id opensmtpq > /dev/null || fail "user opensmtpq removed"
[ -d /var/spool/smtpd/queue ] || fail "spool removed"
step "all passed"
