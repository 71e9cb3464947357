#!/usr/bin/env python3
"""Measurement helpers for bench/filters/run.sh (see README.md there).

  helper.py cpu PID...        CPU seconds (user+sys, plus reaped children) of each PID and all its
                              descendants, summed, from /proc/PID/stat
  helper.py listening PORT    exit 0 when something listens on PORT (/proc/net/tcp of the
                              network namespace this runs in: run it with `ip netns exec`)
"""
import os
import sys

TICK = os.sysconf("SC_CLK_TCK")


def stat_fields(pid):
    with open(f"/proc/{pid}/stat") as f:
        s = f.read()
    return s[s.rindex(")") + 2:].split()  # rest[0] is field 3 (state)


def tree(root):
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            ppid = int(stat_fields(d)[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [int(root)]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu(roots):
    total = 0
    for root in roots:
        for p in tree(root):
            try:
                f = stat_fields(p)
            except OSError:
                continue
            total += sum(int(x) for x in f[11:15])  # utime stime cutime cstime
    return total / TICK


def listening(port):
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    if parts[3] == "0A" and int(parts[1].rsplit(":", 1)[1], 16) == port:
                        return True
        except OSError:
            pass
    return False


if __name__ == "__main__":
    if sys.argv[1] == "cpu":
        print(f"{cpu(sys.argv[2:]):.2f}")
    elif sys.argv[1] == "listening":
        sys.exit(0 if listening(int(sys.argv[2])) else 1)
    else:
        sys.exit(f"unknown command {sys.argv[1]}")
