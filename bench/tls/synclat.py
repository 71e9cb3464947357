#!/usr/bin/env python3
"""What a commit barrier costs on this disk: syncfs vs concurrent fsyncs of k messages (a 2 KB
message file, a 300-byte envelope and their directory each), medians. Usage: synclat.py DIR REPS"""
import os, sys, time, ctypes, threading, statistics
from concurrent.futures import ThreadPoolExecutor
libc = ctypes.CDLL("libc.so.6", use_errno=True)
d = sys.argv[1]; reps = int(sys.argv[2])
os.makedirs(d, exist_ok=True)
dfd = os.open(d, os.O_RDONLY)
data = b"x" * 2048
pool = ThreadPoolExecutor(16)
seq = [0]
def batch(k):
    fds = []
    for j in range(k):
        seq[0] += 1
        sub = os.path.join(d, "m%d" % seq[0]); os.mkdir(sub)
        fd = os.open(os.path.join(sub, "message"), os.O_WRONLY | os.O_CREAT, 0o600); os.write(fd, data); fds.append(fd)
        fd = os.open(os.path.join(sub, "e"), os.O_WRONLY | os.O_CREAT, 0o600); os.write(fd, b"y" * 300); fds.append(fd)
        fds.append(os.open(sub, os.O_RDONLY))
    return fds
for k in (1, 4, 10):
    res = {}
    for mode in ("syncfs", "fsync16", "fsync4"):
        lat = []
        for r in range(reps):
            fds = batch(k)
            t = time.perf_counter()
            if mode == "syncfs": libc.syncfs(dfd)
            elif mode == "fsync16": list(pool.map(os.fsync, fds))
            else:
                with ThreadPoolExecutor(4) as p4: list(p4.map(os.fsync, fds))
            lat.append(time.perf_counter() - t)
            [os.close(f) for f in fds]
        res[mode] = "%.1f" % (1000 * statistics.median(lat))
    print("batch of %d msgs (%d fds):" % (k, 3 * k), res, "ms median", flush=True)
