#!/usr/bin/env python3
"""Measurement helpers for bench/delivery/run.sh (see README.md there).

  helper.py listening PORT      exit 0 when something listens on 127.0.0.1:PORT (/proc/net/tcp)
  helper.py fsync DIR SECONDS   how many "write 2 KB + fsync" a second the disk under DIR allows:
                                prints "SAME_FILE_PER_S NEW_FILE_PER_S" (rewrite one file at offset
                                0 + fdatasync...; new file each time: create, write, fsync, close,
                                as a Maildir delivery does before its rename)
  helper.py run PID CGROUP NEWDIR N TIMEOUT -- SMTP-SOURCE ARGS...
                                starts smtp-source, counts files in NEWDIR (Maildir/new) every
                                20 ms until N are there (or nothing moved for TIMEOUT s), samples
                                the summed RSS of PID's process tree every 100 ms, and prints
                                "ACCEPT_S DELIVER_S FILES CPU_CG_S CPU_PROC_S PEAK_RSS_KB RC"
                                ACCEPT_S: first byte to smtp-source's exit (all 250s received);
                                DELIVER_S: first byte to the Nth file in NEWDIR;
                                CPU_CG_S: cpuacct.usage delta of CGROUP (every process of the
                                server and its delivery children); CPU_PROC_S: user+sys+reaped
                                children over PID's /proc tree (a cross-check)
  helper.py check NEWDIR        "FILES UNIQUE_MESSAGE_IDS" of the delivered files
"""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from proctree import cpu, listening, rss  # noqa: E402


def cpu_cg(cg):
    try:
        with open(os.path.join(cg, "cpuacct.usage")) as f:
            return int(f.read()) / 1e9
    except OSError:
        return 0.0


def count(d):
    try:
        return sum(1 for _ in os.scandir(d))
    except OSError:
        return 0


def run(pid, cg, newdir, n, timeout, cmd):
    c0, p0 = cpu_cg(cg), cpu(pid)
    peak = rss(pid)[0]
    t0 = time.monotonic()
    src = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=sys.stderr)
    t_acc = t_del = None
    last, last_move, last_rss = 0, t0, t0
    c1 = p1 = None
    while True:
        now = time.monotonic()
        if t_acc is None and src.poll() is not None:
            t_acc = now - t0
        k = count(newdir)
        if k != last:
            last, last_move = k, now
        if k >= n and t_del is None:
            t_del = now - t0
            c1, p1 = cpu_cg(cg), cpu(pid)
        if now - last_rss >= 0.1:
            peak = max(peak, rss(pid)[0])
            last_rss = now
        if t_del is not None and t_acc is not None:
            break
        if now - last_move > timeout and (t_acc is not None or now - t0 > 10 * timeout):
            break  # stalled
        time.sleep(0.02)
    if t_acc is None:
        src.kill()
        t_acc = -1
    rc = src.wait()
    if c1 is None:
        c1, p1 = cpu_cg(cg), cpu(pid)
    print(f"{t_acc:.3f} {(t_del if t_del is not None else -1):.3f} {count(newdir)} "
          f"{c1 - c0:.3f} {p1 - p0:.3f} {peak} {rc}")


def check(newdir):
    files = ids = 0
    seen = set()
    for e in os.scandir(newdir):
        files += 1
        with open(e.path, "rb") as f:
            head = f.read(4096)
        for line in head.split(b"\n"):
            if line.lower().startswith(b"message-id:"):
                seen.add(line.split(b":", 1)[1].strip())
                break
            if not line.strip():
                break
    print(files, len(seen))


def fsync_rate(d, seconds):
    data = b"x" * 2048
    path = os.path.join(d, "fsync-probe")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    n, t0 = 0, time.monotonic()
    while time.monotonic() - t0 < seconds:
        os.pwrite(fd, data, 0)
        os.fsync(fd)
        n += 1
    same = n / (time.monotonic() - t0)
    os.close(fd)
    os.unlink(path)
    n, t0 = 0, time.monotonic()
    while time.monotonic() - t0 < seconds:
        p = os.path.join(d, f"fsync-probe-{n}")
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, data)
        os.fsync(fd)
        os.close(fd)
        n += 1
    new = n / (time.monotonic() - t0)
    for i in range(n):
        os.unlink(os.path.join(d, f"fsync-probe-{i}"))
    print(f"{same:.1f} {new:.1f}")


def main():
    cmd = sys.argv[1]
    if cmd == "listening":
        sys.exit(0 if listening(int(sys.argv[2])) else 1)
    elif cmd == "fsync":
        fsync_rate(sys.argv[2], float(sys.argv[3]))
    elif cmd == "run":
        a = sys.argv[2:]
        sep = a.index("--")
        pid, cg, newdir, n, timeout = a[:sep]
        run(pid, cg, newdir, int(n), float(timeout), a[sep + 1:])
    elif cmd == "check":
        check(sys.argv[2])
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
