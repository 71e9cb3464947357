#!/usr/bin/env bash
# Installs rsmtpd in OpenSMTPD's places: smtpd and smtpctl in /usr/sbin, smtpctl's sendmail,
# send-mail, mailq, newaliases and makemap personalities as links, the systemd unit, and a
# default /etc/smtpd.conf if there is none (Debian: use scripts/deb.sh's package instead). Run as root after `cargo build --release`.
# DESTDIR=/some/root installs into a staging tree (packaging, tests).
set -euo pipefail
cd "$(dirname "$0")/.."
dest="${DESTDIR:-}"
bin=target/release
for b in smtpd smtpctl; do
  [ -x "$bin/$b" ] || { echo "install: $bin/$b missing: run cargo build --release" >&2; exit 1; }
done
install -d "$dest/usr/sbin" "$dest/usr/bin" "$dest/etc" "$dest/lib/systemd/system" \
  "$dest/var/spool/smtpd"
install -m 0755 "$bin/smtpd" "$dest/usr/sbin/smtpd"
install -m 0755 "$bin/smtpctl" "$dest/usr/sbin/smtpctl"
for name in sendmail send-mail mailq newaliases makemap; do
  ln -sf smtpctl "$dest/usr/sbin/$name"
done
ln -sf ../sbin/smtpctl "$dest/usr/bin/mailq"
chmod 0711 "$dest/var/spool/smtpd"
install -m 0644 etc/systemd/rsmtpd.service "$dest/lib/systemd/system/rsmtpd.service"
if [ ! -e "$dest/etc/smtpd.conf" ]; then
  cat > "$dest/etc/smtpd.conf" <<'CONF'
# Deliver local mail to users' mbox, accept nothing from outside.
table aliases file:/etc/aliases
listen on localhost
action "local" mbox alias <aliases>
match from local for local action "local"
CONF
  [ -e "$dest/etc/aliases" ] || echo "# name: user" > "$dest/etc/aliases"
fi
echo "installed into ${dest:-/}; check with: ${dest}/usr/sbin/smtpd -n -f ${dest}/etc/smtpd.conf"
