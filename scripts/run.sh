#!/usr/bin/env bash
# Quick start: builds rsmtpd and runs it in the foreground on the sample configuration
# (etc/smtpd.conf.sample): a mail server for example.org on 127.0.0.1:2525, logging to the
# terminal. No root needed: the spool, the control socket and the Maildirs are under ./run, and
# deliveries run as you. It prints a command that sends a test message and where it lands.
# Ctrl-C stops it cleanly; mail still queued then is delivered at the next run (the spool in
# ./run is reused).
set -euo pipefail
cd "$(dirname "$0")/.."
# The debug profile: it builds in a fraction of the release time and serves a try-out well.
cargo build --quiet -p rsmtpd -p rsmtpd-smtpctl
bin="${CARGO_TARGET_DIR:-$PWD/target}/debug"
# smtpctl is sendmail when called by that name, as OpenSMTPD's.
ln -sf smtpctl "$bin/sendmail"
run="$PWD/run"
mkdir -p "$run/mail"
export SMTPD_SPOOL="$run/spool" SMTPD_SOCKET="$run/smtpd.sock"
uid=$(id -u) gid=$(id -g)
if [ "$uid" = 0 ]; then
  # As root the daemon delivers as the table's user and never as root (as OpenSMTPD): the
  # Maildirs then belong to the user who ran sudo, else to nobody.
  uid=${SUDO_UID:-65534} gid=${SUDO_GID:-65534}
  chown "$uid:$gid" "$run/mail"
  chmod go+x "$PWD" "$run"
fi
sed -e "s#@RUN@#$run#g" -e "s#@UID@#$uid#g" -e "s#@GID@#$gid#g" \
  etc/smtpd.conf.sample > "$run/smtpd.conf"
"$bin/smtpd" -n -f "$run/smtpd.conf"
cat <<MSG

rsmtpd listens on 127.0.0.1:2525 (config: $run/smtpd.conf). From another terminal, send a test message:

  printf 'Subject: hello\n\nIt works.\n' | SMTPD_SOCKET=$run/smtpd.sock $bin/sendmail admin@example.org

It lands in $run/mail/admin/new/ . Ctrl-C stops the server.

MSG
exec "$bin/smtpd" -d -f "$run/smtpd.conf"
