#!/usr/bin/python3
# A proc-exec filter written by hand: records every line it receives into $REC (argv[1]),
# registers every report and the phases below, and decides by the parameter:
# "rej" in it -> reject, "junk" -> junk, "bye" -> disconnect, "rw" -> rewrite (rcpt-to).
import sys
rec = open(sys.argv[1], "a", buffering=1)
PHASES = ["connect", "helo", "ehlo", "mail-from", "rcpt-to", "data", "commit", "rset", "quit", "noop"]
for line in sys.stdin:
    line = line.rstrip("\n")
    rec.write(line + "\n")
    if line == "config|ready":
        out = ["register|report|smtp-in|*"] + ["register|filter|smtp-in|" + p for p in PHASES]
        out.append("register|ready")
        print("\n".join(out), flush=True)
        sys.stderr.write("recorder ready\n")
        sys.stderr.flush()
        continue
    f = line.split("|")
    if f[0] != "filter":
        continue
    phase, sess, tok, param = f[4], f[5], f[6], "|".join(f[7:])
    if "rej" in param:
        ans = "reject|550 go away"
    elif "bye" in param:
        ans = "disconnect|421 bye now"
    elif "junk" in param:
        ans = "junk"
    elif "rw" in param and phase == "rcpt-to":
        ans = "rewrite|<postmaster@localhost>"
    else:
        ans = "proceed"
    print("filter-result|%s|%s|%s" % (sess, tok, ans), flush=True)
