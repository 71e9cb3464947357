#!/usr/bin/env python3
"""Load client for bench/tls/run.sh (see README.md there): SMTP with STARTTLS, the same bytes
to every server.

  client.py sessions PORT N PAR        N sessions, PAR at a time, each: EHLO, STARTTLS, EHLO,
                                       one 2 KB message, QUIT. Prints "DONE FAILED SECONDS".
  client.py persistent PORT N PAR      PAR sessions, each STARTTLS once, then N/PAR messages
                                       one after another. Prints "DONE FAILED SECONDS".
  client.py idle PORT N PID            N sessions left idle after STARTTLS and a second EHLO;
                                       prints "ALIVE OPENED FAILED RSS_KB PSS_KB NPROC SECONDS"
                                       (memory of PID's process tree while they are idle).

The client does not check the server's certificate (the servers are ours, and a chain check
would only add client CPU to every handshake); it speaks TLS 1.3, as today's clients do.
MSG_LEN (default 2048) sets the body size.
"""
import asyncio
import os
import resource
import ssl
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "smtp-accept"))
from helper import mem  # noqa: E402

MSG_LEN = int(os.environ.get("MSG_LEN", "2048"))
BODY = (b"Subject: bench\r\n\r\n" + (b"x" * 76 + b"\r\n") * (MSG_LEN // 78 + 1))[:MSG_LEN] + b"\r\n.\r\n"


def context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


CTX = context()


class Failed(Exception):
    pass


async def reply(r):
    while True:
        line = await r.readline()
        if not line:
            raise Failed("closed")
        if line[3:4] != b"-":
            if not line[:1] in (b"2", b"3"):
                raise Failed(line.decode(errors="replace").strip())
            return line


async def cmd(r, w, line):
    w.write(line)
    return await reply(r)


async def open_tls(port):
    r, w = await asyncio.open_connection("127.0.0.1", port)
    await reply(r)
    await cmd(r, w, b"EHLO client.bench\r\n")
    await cmd(r, w, b"STARTTLS\r\n")
    await w.start_tls(CTX, server_hostname="bench.test")
    await cmd(r, w, b"EHLO client.bench\r\n")
    return r, w


async def message(r, w):
    await cmd(r, w, b"MAIL FROM:<sender@client.bench>\r\n")
    await cmd(r, w, b"RCPT TO:<root@bench.test>\r\n")
    await cmd(r, w, b"DATA\r\n")
    w.write(BODY)
    await reply(r)


async def sessions(port, n, par):
    sem = asyncio.Semaphore(par)
    done = failed = 0

    async def one():
        nonlocal done, failed
        async with sem:
            try:
                r, w = await open_tls(port)
                await message(r, w)
                await cmd(r, w, b"QUIT\r\n")
                w.close()
                done += 1
            except (OSError, Failed, ssl.SSLError, asyncio.IncompleteReadError):
                failed += 1

    t0 = time.monotonic()
    await asyncio.gather(*(one() for _ in range(n)))
    print(f"{done} {failed} {time.monotonic() - t0:.3f}")


async def persistent(port, n, par):
    done = failed = 0
    per = n // par

    async def one():
        nonlocal done, failed
        try:
            r, w = await open_tls(port)
        except (OSError, Failed, ssl.SSLError):
            failed += per
            return
        for _ in range(per):
            try:
                await message(r, w)
                done += 1
            except (OSError, Failed, ssl.SSLError, asyncio.IncompleteReadError):
                failed += 1
                return
        try:
            await cmd(r, w, b"QUIT\r\n")
        except (OSError, Failed, ssl.SSLError):
            pass
        w.close()

    t0 = time.monotonic()
    await asyncio.gather(*(one() for _ in range(par)))
    print(f"{done} {failed} {time.monotonic() - t0:.3f}")


async def idle(port, n, root):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n + 100:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 1000), hard))
    sem = asyncio.Semaphore(int(os.environ.get("IDLE_INFLIGHT", "8")))
    conns = []
    failed = 0
    t0 = time.monotonic()

    async def one():
        nonlocal failed
        async with sem:
            try:
                conns.append(await asyncio.wait_for(open_tls(port), timeout=60))
            except (OSError, Failed, ssl.SSLError, asyncio.TimeoutError):
                failed += 1

    await asyncio.gather(*(one() for _ in range(n)))
    opened = time.monotonic() - t0
    await asyncio.sleep(2)
    rss, pss, nproc = mem(root)
    alive = sum(1 for r, w in conns if not r.at_eof())
    print(f"{alive} {len(conns)} {failed} {rss} {pss} {nproc} {opened:.2f}")
    sys.stdout.flush()
    for r, w in conns:
        w.close()
    await asyncio.sleep(0.5)


def main():
    what, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    if what == "sessions":
        asyncio.run(sessions(port, n, int(sys.argv[4])))
    elif what == "persistent":
        asyncio.run(persistent(port, n, int(sys.argv[4])))
    elif what == "idle":
        asyncio.run(idle(port, n, sys.argv[4]))
    else:
        sys.exit(f"unknown test {what}")


if __name__ == "__main__":
    main()
