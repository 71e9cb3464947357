"""What the benchmarks measure of a server: its whole process tree (OpenSMTPD runs 7 processes
plus delivery children; ours forks delivery children), read from /proc, and whether a port
listens yet. Shared by every bench/*/helper.py."""
import os

TICK = os.sysconf("SC_CLK_TCK")


def stat_fields(pid):
    with open(f"/proc/{pid}/stat") as f:
        s = f.read()
    # the command name may hold spaces: fields start after the last ')'
    return s[s.rindex(")") + 2:].split()  # rest[0] is field 3 (state)


def tree(root):
    """root and all its descendants (pids)."""
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


def cpu(*roots):
    """CPU seconds of the trees under roots, reaped children included."""
    total = 0
    for root in roots:
        for p in tree(root):
            try:
                f = stat_fields(p)
            except OSError:
                continue
            # utime stime cutime cstime are fields 14..17 (1-based), rest[0] is field 3
            total += sum(int(x) for x in f[11:15])
    return total / TICK


def rss(root):
    """Summed VmRSS (kB) and the number of processes of the tree."""
    total = n = 0
    for p in tree(root):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            n += 1
        except OSError:
            continue
    return total, n


def listening(port):
    want = f":{port:04X}"
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                for line in f.readlines()[1:]:
                    p = line.split()
                    if len(p) > 3 and p[1].endswith(want) and p[3] == "0A":
                        return True
        except OSError:
            pass
    return False
