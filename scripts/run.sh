#!/usr/bin/env bash
# Builds smtpd and runs it on the sample configuration (etc/smtpd.conf.sample): no root needed,
# everything it writes goes under ./run. Until the daemon's sessions land (issue "Inbound SMTP"),
# running means checking: the config is parsed, validated and printed back in canonical form.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p rsmtpd
mkdir -p run/spool run/mail
export SMTPD_SPOOL="$PWD/run/spool" SMTPD_SOCKET="$PWD/run/smtpd.sock"
sed "s#@RUN@#$PWD/run#g" etc/smtpd.conf.sample > run/smtpd.conf
exec ./target/release/smtpd -n -v -f run/smtpd.conf
