#!/bin/bash
# postfix.sh: Debian's Postfix, extracted from its .deb (it conflicts with opensmtpd as a
# package), for the interoperability tests and the relay benchmark; prints its prefix.
#
#   tests/tools/postfix.sh [--prefix DIR]     (default /opt/postfix)
#
# Idempotent. As the package's postinst does, it makes the `postfix` user (mail_owner) and the
# `postdrop` group (setgid_group) when missing: Postfix refuses to run its daemons as root.
# Instances are made by tests/tools/postfix-instance.sh. Needs root.
set -euo pipefail
PREFIX=/opt/postfix
[ "${1:-}" = --prefix ] && PREFIX=$2
log() { echo "postfix.sh: $*" >&2; }
[ "$(id -u)" = 0 ] || { log "must run as root"; exit 1; }
if [ ! -x "$PREFIX/usr/lib/postfix/sbin/master" ]; then
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    log "apt-get download postfix"
    (cd "$tmp" && { apt-get download postfix >/dev/null 2>&1 \
        || { apt-get update >/dev/null && apt-get download postfix >/dev/null; }; })
    mkdir -p "$PREFIX"
    dpkg-deb -x "$tmp"/postfix_*.deb "$PREFIX"
fi
# What the postinst copies into /etc/postfix (meta_directory of every instance).
[ -e "$PREFIX/etc/postfix/dynamicmaps.cf" ] || cp "$PREFIX/usr/share/postfix/dynamicmaps.cf" "$PREFIX/etc/postfix/"
getent group postdrop >/dev/null || groupadd --system postdrop
getent group postfix >/dev/null || groupadd --system postfix
getent passwd postfix >/dev/null \
    || useradd --system --gid postfix --home-dir /nonexistent --shell /usr/sbin/nologin postfix
if LD_LIBRARY_PATH="$PREFIX/usr/lib/postfix" ldd "$PREFIX/usr/lib/postfix/sbin/master" | grep -q "not found"; then
    log "missing libraries:"; LD_LIBRARY_PATH="$PREFIX/usr/lib/postfix" ldd "$PREFIX/usr/lib/postfix/sbin/master" >&2
    exit 1
fi
echo "$PREFIX"
