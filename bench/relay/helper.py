"""What bench/relay/run.sh measures of a server's process tree (bench/lib/proctree.py):

  helper.py cpu PID          CPU seconds of PID's tree (reaped children included)
  helper.py peak PID OUT     samples the tree's memory every 50 ms until PID exits or SIGTERM;
                             writes the peaks (kB) to OUT after each new one: "PSS RSS", PSS
                             summed (each shared page counted once over the tree: fair to
                             Postfix's ~20 processes of the same binaries), RSS summed
  helper.py listening PORT   exit 0 when something listens on PORT
"""
import os
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from proctree import cpu, listening, rss, tree  # noqa: E402


def pss(root):
    """Summed Pss (kB) of the tree (smaps_rollup)."""
    total = 0
    for p in tree(root):
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            continue
    return total


def peak(pid, out):
    best_pss = best_rss = 0
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    with open(out, "w") as f:
        f.write("0 0\n")
    while not stop:
        try:
            os.kill(pid, 0)
        except OSError:
            break
        p = pss(pid)
        r, _ = rss(pid)
        if p > best_pss or r > best_rss:
            best_pss, best_rss = max(p, best_pss), max(r, best_rss)
            with open(out, "w") as f:
                f.write(f"{best_pss} {best_rss}\n")
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
