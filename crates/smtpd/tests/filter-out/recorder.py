#!/usr/bin/python3
# A proc-exec filter for the relay's sessions: registers every smtp-out report and records
# every line it receives into argv[1].
import sys
rec = open(sys.argv[1], "a", buffering=1)
for line in sys.stdin:
    line = line.rstrip("\n")
    rec.write(line + "\n")
    if line == "config|ready":
        print("register|report|smtp-out|*\nregister|ready", flush=True)
