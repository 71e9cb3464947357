#!/usr/bin/env python3
"""Measurement helpers for bench/smtp-accept/run.sh (see README.md there).

  helper.py cpu PID             CPU seconds (user+sys, plus reaped children) of PID and all its
                                descendants, from /proc/PID/stat
  helper.py mem PID             "RSS_KB PSS_KB NPROC" summed over PID and all its descendants
  helper.py listening PORT      exit 0 when something listens on 127.0.0.1:PORT (/proc/net/tcp)
  helper.py idle PORT N PID     open N TCP connections to 127.0.0.1:PORT, wait for every banner,
                                let the server settle, then print
                                "OPENED BANNERS FAILED RSS_KB PSS_KB NPROC SECONDS_TO_OPEN"
                                (memory of PID's process tree while the N sessions are idle)
"""
import asyncio
import os
import resource
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from proctree import cpu, listening, tree  # noqa: E402


def mem(root):
    rss = pss = n = 0
    for p in tree(root):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        rss += int(line.split()[1])
            n += 1
        except OSError:
            continue
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        pss += int(line.split()[1])
        except OSError:
            pass
    return rss, pss, n


async def idle(port, n, root):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n + 100:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 1000), hard))
    conns = []
    failed = 0
    banners = 0
    # At most IDLE_INFLIGHT (default 4) connects+banners in flight: OpenSMTPD listens with a
    # backlog of 5, so a flood of SYNs only buys SYN retransmissions (1 s, 3 s, 7 s...) and the
    # first sessions then hit its 5-minute idle timeout before the last ones are open.
    sem = asyncio.Semaphore(int(os.environ.get("IDLE_INFLIGHT", "4")))
    t0 = time.monotonic()

    async def one():
        nonlocal failed, banners
        async with sem:
            for attempt in range(5):
                try:
                    r, w = await asyncio.wait_for(
                        asyncio.open_connection("127.0.0.1", port), timeout=10)
                except (OSError, asyncio.TimeoutError):
                    await asyncio.sleep(0.2)
                    continue
                try:
                    line = await asyncio.wait_for(r.readline(), timeout=60)
                except (OSError, asyncio.TimeoutError):
                    line = b""
                if line.startswith(b"220"):
                    banners += 1
                    conns.append((r, w))
                    return
                w.close()
                failed += 1
                return
            failed += 1

    await asyncio.gather(*(one() for _ in range(n)))
    opened = time.monotonic() - t0
    await asyncio.sleep(2)  # let the server settle (lookups, buffers)
    rss, pss, nproc = mem(root)
    # Check the sessions are still there: nothing should have been said after the banner.
    alive = sum(1 for r, w in conns if not r.at_eof())
    print(f"{alive} {banners} {failed} {rss} {pss} {nproc} {opened:.2f}")
    sys.stdout.flush()
    for r, w in conns:
        w.close()
    await asyncio.sleep(0.5)


def main():
    cmd = sys.argv[1]
    if cmd == "cpu":
        print(f"{cpu(sys.argv[2]):.2f}")
    elif cmd == "mem":
        print(*mem(sys.argv[2]))
    elif cmd == "listening":
        sys.exit(0 if listening(int(sys.argv[2])) else 1)
    elif cmd == "idle":
        asyncio.run(idle(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]))
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
