#!/usr/bin/env python3
"""Measurement helpers for bench/filters/run.sh (see README.md there).

  helper.py cpu PID...        CPU seconds (user+sys, plus reaped children) of each PID and all its
                              descendants, summed, from /proc/PID/stat
  helper.py listening PORT    exit 0 when something listens on PORT (/proc/net/tcp of the
                              network namespace this runs in: run it with `ip netns exec`)
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from proctree import cpu, listening  # noqa: E402


if __name__ == "__main__":
    if sys.argv[1] == "cpu":
        print(f"{cpu(*sys.argv[2:]):.2f}")
    elif sys.argv[1] == "listening":
        sys.exit(0 if listening(int(sys.argv[2])) else 1)
    else:
        sys.exit(f"unknown command {sys.argv[1]}")
