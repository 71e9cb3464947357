#!/usr/bin/env python3
# TCP ping-pong on loopback between two processes: what one hop costs on this machine
# (bench/tls/README.md). `rtt.py` back to back; `rtt.py pause` with 1 ms between round trips.
import socket, time, os, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1", 2999)); s.listen(1)
if os.fork() == 0:
    c, _ = s.accept()
    while True:
        d = c.recv(100)
        if not d: break
        c.sendall(d)
    os._exit(0)
c = socket.create_connection(("127.0.0.1", 2999)); c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
ts = []
for i in range(2000):
    t = time.perf_counter(); c.sendall(b"x"*20); c.recv(100); ts.append(time.perf_counter() - t)
    if len(sys.argv) > 1: time.sleep(0.001)
ts.sort(); print("p50 %.0f us p90 %.0f us" % (ts[1000]*1e6, ts[1800]*1e6))
