#!/bin/bash
# postfix-instance.sh: runs a Postfix instance of its own, in the foreground, from the tree
# tests/tools/postfix.sh extracted (as root: Postfix's master needs it; its daemons run as
# the `postfix` user). Everything it has is in DIR: main.cf, master.cf, queue, data, its log
# (DIR/maillog). Nothing of the machine's (no /etc/postfix, no syslog, no DNS: relayhosts
# are given in brackets with their address).
#
#   tests/tools/postfix-instance.sh DIR LISTEN [MAIN_CF_LINE...]
#
# LISTEN: where its smtpd listens (`127.0.0.1:2525`), or `-` for none. MAIN_CF_LINE: extra
# main.cf settings (`relayhost = [127.0.0.1]:2526`, `virtual_mailbox_domains = dst.test`,
# `smtpd_tls_cert_file = ...`); later lines win. POSTFIX (default /opt/postfix) is the tree.
# Stopped by SIGTERM (master's own handling: its children go with it).
set -euo pipefail
DIR=$1; LISTEN=$2; shift 2
P="${POSTFIX:-/opt/postfix}"
mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd)"
LIB="$P/usr/lib/postfix"
export LD_LIBRARY_PATH="$LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
host="$(hostname)"
{
cat <<EOC
compatibility_level = 3.6
config_directory = $DIR
queue_directory = $DIR/queue
data_directory = $DIR/data
daemon_directory = $LIB/sbin
command_directory = $P/usr/sbin
shlib_directory = $LIB
meta_directory = $P/etc/postfix
sendmail_path = $P/usr/sbin/sendmail
newaliases_path = $P/usr/bin/newaliases
mailq_path = $P/usr/bin/mailq
mail_owner = postfix
setgid_group = postdrop
maillog_file_prefixes = $DIR
maillog_file = $DIR/maillog
import_environment = MAIL_CONFIG MAIL_DEBUG MAIL_LOGTAG TZ LANG=C LD_LIBRARY_PATH=$LIB
myhostname = postfix.test
mydomain = postfix.test
myorigin = postfix.test
mydestination =
mynetworks = 127.0.0.0/8 [::1]/128
inet_interfaces = loopback-only
inet_protocols = ipv4
alias_maps =
alias_database =
local_recipient_maps =
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtp_dns_support_level = disabled
smtp_host_lookup = native
biff = no
smtputf8_enable = no
EOC
for l in "$@"; do echo "$l"; done
} > "$DIR/main.cf"
{
if [ "$LISTEN" != - ]; then
    echo "$LISTEN inet n - n - - smtpd"
fi
cat <<'EOC'
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
EOC
} > "$DIR/master.cf"
touch "$DIR/maillog"
mkdir -p "$DIR/queue" "$DIR/data"
chown postfix "$DIR/data"
# The queue's folders with their owners and modes, as postfix-files has them (what
# `postfix start` would make from the package's /etc/postfix).
for q in active bounce corrupt defer deferred flush hold incoming private saved trace; do
    install -d -o postfix -m 0700 "$DIR/queue/$q"
done
install -d -o postfix -g postdrop -m 0730 "$DIR/queue/maildrop"
install -d -o postfix -g postdrop -m 0710 "$DIR/queue/public"
install -d -o root -m 0755 "$DIR/queue/pid"
exec "$LIB/sbin/master" -c "$DIR" -d
