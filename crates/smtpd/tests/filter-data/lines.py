#!/usr/bin/python3
# A data-line filter written by hand (the protocol, no library): argv[1] is its name, argv[2]
# the file it records every line it receives into (prefixed "NAME "). It registers data-line
# and commit, and returns each message line changed by a few rules so that a test can see
# what came back from which filter of a chain:
#   the first line of a message  -> "X-Filter-NAME: seen" then the line
#   a line with "secret"         -> "[redacted by NAME]"
#   "drop-NAME"                  -> nothing
#   "split-NAME"                 -> "split-NAME-1", "split-NAME-2"
#   "dot-NAME"                   -> "..dot from NAME" (dot-stuffed, as on the wire)
#   "die-NAME"                   -> the filter exits (status 1) without answering
#   "hang-NAME"                  -> the filter stops answering (sleeps)
import sys, time
name, rec = sys.argv[1], open(sys.argv[2], "a", buffering=1)
started = set()
out = sys.stdout
for line in sys.stdin:
    line = line.rstrip("\n")
    rec.write(name + " " + line + "\n")
    if line == "config|ready":
        out.write("register|filter|smtp-in|data-line\nregister|filter|smtp-in|commit\n"
                  "register|report|smtp-in|link-disconnect\nregister|ready\n")
        out.flush()
        continue
    f = line.split("|")
    if f[0] != "filter":
        continue
    phase, sess, tok = f[4], f[5], f[6]
    if phase != "data-line":
        out.write("filter-result|%s|%s|proceed\n" % (sess, tok))
        out.flush()
        continue
    data = "|".join(f[7:])
    back = []
    if sess not in started:
        started.add(sess)
        back.append("X-Filter-%s: seen" % name)
    if data == ".":
        started.discard(sess)
        back.append(".")
    elif "secret" in data:
        back.append("[redacted by %s]" % name)
    elif data == "drop-" + name:
        pass
    elif data == "split-" + name:
        back += ["split-%s-1" % name, "split-%s-2" % name]
    elif data == "dot-" + name:
        back.append("..dot from " + name)
    elif data == "die-" + name:
        sys.exit(1)
    elif data == "hang-" + name:
        time.sleep(3600)
    else:
        back.append(data)
    for b in back:
        out.write("filter-dataline|%s|%s|%s\n" % (sess, tok, b))
    out.flush()
