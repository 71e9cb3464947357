#!/bin/sh
# The real OpenSMTPD in a mount namespace of its own: fresh tmpfs on /var/spool (its spool,
# /var/spool/smtpd, is made by smtpd itself) and on /run (its control socket, /run/smtpd.sock),
# so that it sees nothing another run left and no other run sees its socket. unshare(1) without
# --fork execs smtpd in the same process: its pid is this script's, which `nsenter -t PID -m`
# uses to run the real smtpctl beside it.
exec unshare -m sh -c 'mount -t tmpfs -o mode=0755 tmpfs /var/spool &&
  mount -t tmpfs -o mode=0755 tmpfs /run && exec /usr/sbin/smtpd "$@"' smtpd "$@"
