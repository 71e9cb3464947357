#!/usr/bin/env python3
"""Load client for bench/tls/run.sh (see README.md there): SMTP with STARTTLS, the same bytes
to every server.

  client.py sessions PORT N PAR        N sessions, PAR at a time, each: EHLO, STARTTLS, EHLO,
                                       one 2 KB message, QUIT. Prints "DONE FAILED SECONDS".
  client.py submission PORT N PAR      N sessions, PAR at a time, each: EHLO, STARTTLS, EHLO,
                                       AUTH PLAIN (bench/secret), one 2 KB message, QUIT.
                                       Prints "DONE FAILED SECONDS".
  client.py persistent PORT N PAR      PAR sessions, each STARTTLS once (all opened before the
                                       clock starts), then N/PAR messages one after another.
                                       Prints "DONE FAILED SECONDS".
  client.py idle PORT N PID            N sessions left idle after STARTTLS and a second EHLO;
                                       prints "ALIVE OPENED FAILED RSS_KB PSS_KB NPROC SECONDS"
                                       (memory of PID's process tree while they are idle).

The client does not check the server's certificate (the servers are ours, and a chain check
would only add client CPU to every handshake); it speaks TLS 1.3, as today's clients do.
MSG_LEN (default 2048) sets the body size. sessions, submission and persistent print a fourth
field, RETRIES: connections given up for want of a banner within 3 s and made again.
"""
import asyncio
import base64
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


RETRIES = 0


async def connect(port):
    """A connection and its banner. A server whose accept queue is full (OpenSMTPD listens with
    a backlog of 5) can leave a connection the client believes open but the server never
    accepts: no banner within 3 s means connect again (counted in RETRIES)."""
    global RETRIES
    for attempt in range(5):
        if attempt:
            RETRIES += 1
        try:
            r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout=5)
        except (OSError, asyncio.TimeoutError):
            continue
        try:
            await asyncio.wait_for(reply(r), timeout=3)
            return r, w
        except asyncio.TimeoutError:
            w.close()
    raise Failed("no banner")


async def open_tls(port):
    r, w = await connect(port)
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


AUTH_PLAIN = b"AUTH PLAIN " + base64.b64encode(b"\0bench\0secret") + b"\r\n"


async def sessions(port, n, par, auth=False):
    sem = asyncio.Semaphore(par)
    done = failed = 0

    async def one():
        nonlocal done, failed
        async with sem:
            try:
                r, w = await asyncio.wait_for(open_tls(port), timeout=60)
                if auth:
                    line = await cmd(r, w, AUTH_PLAIN)
                    if not line.startswith(b"235"):
                        raise Failed(line.decode(errors="replace").strip())
                await message(r, w)
                await cmd(r, w, b"QUIT\r\n")
                w.close()
                done += 1
            except (OSError, Failed, ssl.SSLError, asyncio.IncompleteReadError,
                    asyncio.TimeoutError):
                failed += 1

    t0 = time.monotonic()
    await asyncio.gather(*(one() for _ in range(n)))
    print(f"{done} {failed} {time.monotonic() - t0:.3f} {RETRIES}")


async def persistent(port, n, par):
    """The PAR sessions are opened first (4 handshakes at a time, untimed), then the clock runs
    while each sends its share of the N messages."""
    done = failed = 0
    per = n // par
    sem = asyncio.Semaphore(4)

    async def opened():
        async with sem:
            try:
                return await asyncio.wait_for(open_tls(port), timeout=60)
            except (OSError, Failed, ssl.SSLError, asyncio.IncompleteReadError,
                    asyncio.TimeoutError):
                return None

    conns = await asyncio.gather(*(opened() for _ in range(par)))

    async def one(conn):
        nonlocal done, failed
        if conn is None:
            failed += per
            return
        r, w = conn
        for _ in range(per):
            try:
                await asyncio.wait_for(message(r, w), timeout=60)
                done += 1
            except (OSError, Failed, ssl.SSLError, asyncio.IncompleteReadError,
                    asyncio.TimeoutError):
                failed += 1
                return
        try:
            await asyncio.wait_for(cmd(r, w, b"QUIT\r\n"), timeout=10)
        except (OSError, Failed, ssl.SSLError, asyncio.IncompleteReadError,
                asyncio.TimeoutError):
            pass
        w.close()

    t0 = time.monotonic()
    await asyncio.gather(*(one(c) for c in conns))
    print(f"{done} {failed} {time.monotonic() - t0:.3f} {RETRIES}")


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
            except (OSError, Failed, ssl.SSLError, asyncio.TimeoutError,
                    asyncio.IncompleteReadError):
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
    elif what == "submission":
        asyncio.run(sessions(port, n, int(sys.argv[4]), auth=True))
    elif what == "persistent":
        asyncio.run(persistent(port, n, int(sys.argv[4])))
    elif what == "idle":
        asyncio.run(idle(port, n, sys.argv[4]))
    else:
        sys.exit(f"unknown test {what}")


if __name__ == "__main__":
    main()
