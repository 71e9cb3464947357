#!/usr/bin/env bash
# Builds the Debian package, target/debian/rsmtpd_VERSION_ARCH.deb, with plain dpkg-deb (no
# debhelper tree to keep up): the files where Debian's opensmtpd puts them (/usr/sbin/smtpd,
# /usr/sbin/smtpctl and its sendmail, newaliases and makemap links, /etc/smtpd.conf), mailq
# (/usr/bin/mailq), the systemd unit, man pages, and a postinst that creates Debian's users
# and groups (opensmtpd, opensmtpq), makes smtpctl setgid opensmtpq with dpkg-statoverride as
# Debian's does, and lays out the spool with the daemon's modes.
#
# Environment: RSMTPD_BIN=DIR packages the smtpd and smtpctl already built in DIR instead of
# building the release ones (the package test uses the binaries the test run built);
# RSMTPD_DEB_DIR=DIR writes the package there (default target/debian); RSMTPD_DEB_COMPRESS=gzip
# compresses it with gzip instead of xz (the test: ten times faster). Prints the .deb's path.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-$PWD/target}
if [ -n "${RSMTPD_BIN:-}" ]; then
  bin=$RSMTPD_BIN
else
  cargo build --quiet --release -p rsmtpd -p rsmtpd-smtpctl
  bin="$target/release"
fi
for b in smtpd smtpctl smtp; do
  [ -x "$bin/$b" ] || { echo "deb: $bin/$b is not built" >&2; exit 1; }
done
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
arch=$(dpkg --print-architecture)
out=${RSMTPD_DEB_DIR:-$target/debian}
root="$out/root"
rm -rf "$root"
mkdir -p "$root/DEBIAN"

install -D -m 0755 "$bin/smtpd" "$root/usr/sbin/smtpd"
# 0755 in the archive; postinst makes it 2755 root:opensmtpq once the group exists.
install -D -m 0755 "$bin/smtpctl" "$root/usr/sbin/smtpctl"
# smtp(1), OpenSMTPD's small client, where Debian's package has it.
install -D -m 0755 "$bin/smtp" "$root/usr/bin/smtp"
# As dh_strip: the debug information stays out of the package.
strip --strip-unneeded "$root/usr/sbin/smtpd" "$root/usr/sbin/smtpctl" "$root/usr/bin/smtp"
for name in sendmail newaliases makemap; do
  ln -s smtpctl "$root/usr/sbin/$name"
done
install -d "$root/usr/bin"
ln -s ../sbin/smtpctl "$root/usr/bin/mailq"
install -D -m 0644 etc/debian/smtpd.conf "$root/etc/smtpd.conf"
install -D -m 0644 etc/systemd/rsmtpd.service "$root/lib/systemd/system/rsmtpd.service"
install -d -m 0755 "$root/var/lib/opensmtpd/empty"
for page in etc/man/*.[0-9]; do
  sec=${page##*.}
  install -d "$root/usr/share/man/man$sec"
  gzip -9n < "$page" > "$root/usr/share/man/man$sec/$(basename "$page").gz"
done
echo ".so man8/smtpctl.8" | gzip -9n > "$root/usr/share/man/man8/mailq.8.gz"
echo ".so man8/makemap.8" | gzip -9n > "$root/usr/share/man/man8/newaliases.8.gz"
doc="$root/usr/share/doc/rsmtpd"
install -d "$doc"
cp LICENSE "$doc/copyright"
cp docs/compatibility.md README.md "$doc/"
for s in postinst prerm postrm; do
  install -m 0755 "etc/debian/$s" "$root/DEBIAN/$s"
done
echo /etc/smtpd.conf > "$root/DEBIAN/conffiles"
# The newest glibc symbol version the binaries use is the libc6 they need.
glibc=$(objdump -T "$bin/smtpd" "$bin/smtpctl" "$bin/smtp" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -V | tail -n 1)
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat > "$root/DEBIAN/control" <<CONTROL
Package: rsmtpd
Version: $version
Architecture: $arch
Maintainer: rsmtpd developers <postmaster@localhost>
Section: mail
Priority: optional
Installed-Size: $size
Depends: libc6 (>= $glibc), libgcc-s1, adduser
Provides: mail-transport-agent
Conflicts: mail-transport-agent, sendmail-base
Replaces: mail-transport-agent
Description: mail server compatible with OpenSMTPD 6.8
 rsmtpd is a drop-in replacement for OpenSMTPD 6.8.0p2 written in Rust: the same smtpd.conf,
 the same smtpd, smtpctl and sendmail command lines, the same SMTP replies and log lines.
 What it does not implement yet (external table backends, outbound TLS and AUTH) is refused
 at start with the file and line that use it.
CONTROL
deb="$out/rsmtpd_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Z"${RSMTPD_DEB_COMPRESS:-xz}" --build "$root" "$deb" > /dev/null
rm -rf "$root"
echo "$deb"
