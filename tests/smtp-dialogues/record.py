#!/usr/bin/env python3
"""Record SMTP dialogues against the REAL OpenSMTPD (/usr/sbin/smtpd).

    python3 tests/smtp-dialogues/record.py            # every NNN-*.dlg
    python3 tests/smtp-dialogues/record.py 012 foo.dlg  # some (by number prefix or file name)
    python3 tests/smtp-dialogues/record.py --check    # replay, report differences, write nothing

For each dialogue: start `/usr/sbin/smtpd -d -f CONF` (config from configs/NAME.conf with @PORT@
and @DIR@ replaced), replay the client steps, stop it, and rewrite the file's `S:` lines with what
the server answered (`S+rsmtpd:` override lines are carried over to the same reply line).
Needs root; only one real instance runs at a time. See README.md for the format.
"""
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REAL = os.environ.get("REAL_SMTPD", "/usr/sbin/smtpd")
QUIET = 0.3  # seconds of silence that end a C!: read
REPLY_TIMEOUT = 5.0  # seconds to wait for a reply to C:


def unescape(text):
    out = bytearray()
    i = 0
    b = text.encode("utf-8")
    while i < len(b):
        c = b[i]
        if c == 0x5C and i + 1 < len(b):  # backslash
            n = chr(b[i + 1])
            if n == "r":
                out += b"\r"; i += 2; continue
            if n == "n":
                out += b"\n"; i += 2; continue
            if n == "t":
                out += b"\t"; i += 2; continue
            if n == "\\":
                out += b"\\"; i += 2; continue
            if n == "x" and i + 3 < len(b) and re.match(rb"[0-9a-fA-F]{2}", b[i + 2:i + 4]):
                out.append(int(b[i + 2:i + 4], 16)); i += 4; continue
        out.append(c)
        i += 1
    return bytes(out)


def escape(data):
    """A received line (without its CRLF) as S: text."""
    out = []
    for c in data:
        if c == 0x5C:
            out.append("\\\\")
        elif c == 0x0D:
            out.append("\\r")
        elif c == 0x0A:
            out.append("\\n")
        elif c == 0x09:
            out.append("\\t")
        elif c < 0x20 or c >= 0x7F:
            out.append("\\x%02x" % c)
        else:
            out.append(chr(c))
    return "".join(out)


def parse(path):
    """(comment lines/header lines, config name, steps). A step is [kind, text, [S lines], {idx: [overrides]}]."""
    header = []
    config = None
    steps = []
    greeting = ["", "", [], {}]  # pseudo-step: the banner
    steps.append(greeting)
    with open(path, encoding="utf-8") as f:
        for raw in f.read().split("\n"):
            line = raw
            if not line:
                continue
            if line.startswith("#"):
                if config is None:
                    header.append(line)
                continue
            if line.startswith("config: "):
                config = line[len("config: "):].strip()
                continue
            m = re.match(r"^(C|C!|D|D!|S|S\+rsmtpd): ?(.*)$", line)
            if not m:
                raise SystemExit("%s: bad line: %r" % (path, line))
            kind, text = m.group(1), m.group(2)
            if kind in ("C", "C!", "D", "D!"):
                steps.append([kind, text, [], {}])
            elif kind == "S":
                steps[-1][2].append(text)
            else:
                idx = len(steps[-1][2]) - 1
                steps[-1][3].setdefault(idx, []).append(text)
    if config is None:
        raise SystemExit("%s: no config: line" % path)
    return header, config, steps


def render(header, config, steps):
    out = list(header)
    out.append("config: " + config)
    for kind, text, slines, over in steps:
        if kind:
            out.append("%s: %s" % (kind, text))
        for o in over.get(-1, []):
            out.append("S+rsmtpd: " + o)
        for i, s in enumerate(slines):
            out.append("S: " + s)
            for o in over.get(i, []):
                out.append("S+rsmtpd: " + o)
    return "\n".join(out) + "\n"


class Conn:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.buf = b""
        self.closed = False

    def _fill(self, timeout):
        if self.closed:
            return False
        self.sock.settimeout(timeout)
        try:
            d = self.sock.recv(65536)
        except socket.timeout:
            return None
        except OSError:
            d = b""
        if not d:
            self.closed = True
            return False
        self.buf += d
        return True

    def line(self, timeout):
        """One line (without CRLF), or None on timeout, or False on close."""
        deadline = time.time() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.time()
            if left <= 0:
                return None
            r = self._fill(left)
            if r is None:
                return None
            if r is False:
                if self.buf:  # an unterminated last line
                    l, self.buf = self.buf, b""
                    return l
                return False
        l, self.buf = self.buf.split(b"\n", 1)
        if l.endswith(b"\r"):
            l = l[:-1]
        else:
            l += b"\\n-without-CR"  # cannot happen with a sane server; made visible
        return l

    def reply(self):
        """Lines of one complete reply; [b'<closed>'] etc. for events."""
        lines = []
        while True:
            l = self.line(REPLY_TIMEOUT)
            if l is None:
                lines.append(None)  # timeout
                return lines
            if l is False:
                lines.append(False)
                return lines
            lines.append(l)
            if not (len(l) >= 4 and l[3:4] == b"-"):
                return lines

    def quiet(self):
        lines = []
        while True:
            l = self.line(QUIET)
            if l is None:
                return lines
            if l is False:
                lines.append(False)
                return lines
            lines.append(l)

    def send(self, data):
        if self.closed:
            return
        try:
            self.sock.sendall(data)
        except OSError:
            pass


def replay(port, steps, host):
    """Runs the steps; returns the observed S lines per step (as text, placeholders applied)."""
    c = Conn(port)
    observed = []
    closed_reported = False

    def conv(lines):
        nonlocal closed_reported
        out = []
        for l in lines:
            if l is None:
                out.append("<timeout>")
            elif l is False:
                if not closed_reported:
                    out.append("<closed>")
                    closed_reported = True
            else:
                out.append(placeholders(escape(l), host))
        return out

    for i, (kind, text, _, _) in enumerate(steps):
        if i == 0:
            observed.append(conv(c.reply()))
            continue
        data = unescape(text.replace("@HOST@", host))
        if kind in ("C", "D"):
            data += b"\r\n"
        if c.closed:
            observed.append(conv([False]))
            continue
        c.send(data)
        if kind == "C":
            observed.append(conv(c.reply()))
        elif kind == "C!":
            observed.append(conv(c.quiet()))
        else:
            observed.append([])
    # At the end: did the server close (or say more)?
    tail = conv(c.quiet()) if not c.closed else conv([False])
    observed[-1].extend(tail)
    c.sock.close()
    return observed


def placeholders(text, host):
    text = re.sub(r"^250 2\.0\.0 [0-9a-f]{8} Message accepted", "250 2.0.0 @MSGID@ Message accepted", text)
    if host:
        text = re.sub(r"(?<![A-Za-z0-9_.])" + re.escape(host) + r"(?![A-Za-z0-9_-])", "@HOST@", text)
    return text


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def server_host():
    try:
        with open("/etc/mailname") as f:
            first = f.readline().strip()
            if first:
                return first
    except OSError:
        pass
    h = socket.gethostname()
    try:
        return socket.getaddrinfo(h, None, flags=socket.AI_CANONNAME)[0][3] or h
    except OSError:
        return h


class Real:
    def __init__(self, config_text):
        self.dir = tempfile.mkdtemp(prefix="dlg-")
        os.chmod(self.dir, 0o755)
        self.port = free_port()
        text = config_text.replace("@PORT@", str(self.port)).replace("@DIR@", self.dir)
        conf = os.path.join(self.dir, "smtpd.conf")
        with open(conf, "w") as f:
            f.write(text)
        self.log = open(os.path.join(self.dir, "log"), "w")
        self.proc = subprocess.Popen([REAL, "-d", "-f", conf], stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 10
        while True:
            if self.proc.poll() is not None:
                self.log.close()
                raise RealExited(open(os.path.join(self.dir, "log")).read())
            # wait for the listener without opening a session: it logs nothing we can rely on
            # without -v, so probe with a connect that we close at once.
            if self._listening():
                break
            if time.time() > deadline:
                self.stop()
                raise SystemExit("real smtpd did not listen")
            time.sleep(0.05)

    def _listening(self):
        try:
            with open("/proc/net/tcp") as f:
                hexport = ":%04X" % self.port
                for l in f.readlines()[1:]:
                    parts = l.split()
                    if parts[1].endswith(hexport) and parts[3] == "0A":
                        return True
        except OSError:
            pass
        return False

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def start_real(conf):
    """Only one real smtpd may run on a machine: if it exits at once (another instance holds the
    control socket), wait for the other one to go, up to 120 s."""
    deadline = time.time() + 120
    while True:
        try:
            return Real(conf)
        except RealExited:
            if time.time() > deadline:
                raise SystemExit("real smtpd keeps exiting (another instance running?)")
            time.sleep(0.5)


class RealExited(Exception):
    pass


def dialogue_files(args):
    names = sorted(f for f in os.listdir(HERE) if re.match(r"^\d{3}-.*\.dlg$", f))
    if not args:
        return names
    sel = []
    for a in args:
        a = os.path.basename(a)
        sel += [n for n in names if n == a or n.startswith(a + "-") or n.startswith(a)]
    return sorted(set(sel))


def main():
    args = sys.argv[1:]
    check = "--check" in args
    args = [a for a in args if a != "--check"]
    host = server_host()
    differ = 0
    files = dialogue_files(args)
    for name in files:
        path = os.path.join(HERE, name)
        header, config, steps = parse(path)
        with open(os.path.join(HERE, "configs", config + ".conf")) as f:
            conf = f.read()
        real = start_real(conf)
        try:
            obs = replay(real.port, steps, host)
        finally:
            real.stop()
        new_steps = []
        for (kind, text, slines, over), o in zip(steps, obs):
            keep = {i: v for i, v in over.items() if i < len(o)}
            new_steps.append([kind, text, o, keep])
        old = render(header, config, steps)
        new = render(header, config, new_steps)
        if old != new:
            differ += 1
            if check:
                print("DIFFER", name)
                for a, b in zip(old.split("\n"), new.split("\n")):
                    if a != b:
                        print("  recorded: " + a)
                        print("  observed: " + b)
                        break
            else:
                with open(path, "w", encoding="utf-8") as f:
                    f.write(new)
                print("recorded", name)
        else:
            print("same    ", name)
    print("dialogues: %d, %d %s" % (len(files), differ, "differ" if check else "rewritten"))
    return 1 if (check and differ) else 0


if __name__ == "__main__":
    sys.exit(main())
