"""What bench/relay/run.sh measures of a server's process tree (bench/lib/proctree.py):

  helper.py cpu PID          CPU seconds of PID's tree (reaped children included)
  helper.py peak PID OUT     samples the tree's summed VmRSS every 50 ms until PID exits or
                             SIGTERM; writes the peak (kB) to OUT after each new peak
  helper.py listening PORT   exit 0 when something listens on PORT
"""
import os
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from proctree import cpu, listening, rss  # noqa: E402


def peak(pid, out):
    best = 0
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    with open(out, "w") as f:
        f.write("0\n")
    while not stop:
        try:
            os.kill(pid, 0)
        except OSError:
            break
        kb, _ = rss(pid)
        if kb > best:
            best = kb
            with open(out, "w") as f:
                f.write(f"{best}\n")
        time.sleep(0.05)


def main():
    cmd = sys.argv[1]
    if cmd == "cpu":
        print(f"{cpu(int(sys.argv[2])):.2f}")
    elif cmd == "peak":
        peak(int(sys.argv[2]), sys.argv[3])
    elif cmd == "listening":
        sys.exit(0 if listening(int(sys.argv[2])) else 1)
    else:
        sys.exit(f"unknown command {cmd}")


main()
