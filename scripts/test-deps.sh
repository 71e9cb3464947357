#!/usr/bin/env bash
# Installs what the test suite needs on a Debian machine: the real OpenSMTPD 6.8.0p2 (its config
# verdicts, replies and logs are re-checked against ours), netbase (/etc/services, for
# `port smtp`), the SMTP clients the tests drive (swaks, curl, python3), unbound and iproute2
# (DNS tests in network namespaces of their own), fail2ban (fail2ban-regex reads our logs),
# Debian's OpenSMTPD filters (dkimsign, rspamd with rspamd itself) and dkimpy to verify signatures,
# Dovecot (it reads our Maildirs, takes our LMTP and relays its submissions into us), binutils (strip and objdump for the
# Debian package, scripts/deb.sh), and the Rust components for fmt and clippy. Run as root; as another user it only checks and warns.
set -euo pipefail
pkgs=(opensmtpd netbase swaks curl python3 unbound iproute2 fail2ban dovecot-core dovecot-lmtpd dovecot-submissiond openssl libnet-ssleay-perl libio-socket-ssl-perl binutils
  opensmtpd-filter-dkimsign python3-dkim opensmtpd-filter-rspamd rspamd)
missing=()
for p in "${pkgs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # opensmtpd's post-install tries to start the service; there is no init here, so that
    # step may fail without harm: the binary is what we need.
    apt-get install -y -qq "${missing[@]}" >/dev/null || true
    # Make sure no packaged daemon keeps running and holding ports.
    pkill -x smtpd 2>/dev/null || true
    # The unbound package starts a resolver on :53 where it can; the tests run their own.
    pkill -x unbound 2>/dev/null || true
    pkill -f fail2ban-server 2>/dev/null || true
    pkill -x dovecot 2>/dev/null || true
    # rspamd's package starts it where it can; the tests start their own on ports of their own.
    pkill -x rspamd 2>/dev/null || true
  else
    echo "warning: not root, cannot install: ${missing[*]} (tests that need them are skipped)" >&2
  fi
fi
# The tests give every real OpenSMTPD a tmpfs on /var/spool/smtpd in a mount namespace of its own;
# the package does not create that folder (smtpd makes it at its first start), so make the mount
# point here, as that first start would.
if [ "$(id -u)" -eq 0 ]; then
  mkdir -p -m 0711 /var/spool/smtpd
fi
rustup component add rustfmt clippy >/dev/null 2>&1 || true
# A TLS-capable OpenSMTPD 6.8.0p2 (Debian's fails every server-side handshake under OpenSSL 3):
# the packaged binary with a small preloaded fix, for the live TLS and AUTH comparisons.
if [ "$(id -u)" -eq 0 ]; then
  bash "$(dirname "$0")/../tests/tools/opensmtpd-tls.sh" >/dev/null \
    || echo "warning: no TLS-capable OpenSMTPD (live TLS comparisons are skipped)" >&2
fi
# Postfix, extracted from its .deb (it conflicts with opensmtpd as a package), as a relay peer of
# the interoperability tests (tests/tools/postfix.sh: /opt/postfix, the postfix user and group).
if [ "$(id -u)" -eq 0 ]; then
  bash "$(dirname "$0")/../tests/tools/postfix.sh" >/dev/null \
    || echo "warning: no extracted Postfix (the Postfix interoperability tests are skipped)" >&2
fi
