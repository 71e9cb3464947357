#!/usr/bin/env python3
"""Generator for tests/config-corpus (valid/*.conf, invalid/*.conf, data/*).

The generated files are committed; this script only exists to make the corpus
easy to extend.  Run it, then ./record.sh to regenerate the .expected files.
It deletes and rewrites every valid/*.conf and invalid/*.conf.
"""
import os, glob, subprocess, shutil

HERE = os.path.dirname(os.path.abspath(__file__))
D = "@DIR@/data"          # absolute data dir after substitution

# --------------------------------------------------------------------------
# data files
DATA = {
    "aliases": "# aliases table (hash)\nroot: admin@example.org\npostmaster root\nabuse   root, admin@example.org\n",
    "virtual": "postmaster@example.org  root\n@example.org  bob@example.net\nalice@example.com alice\n",
    "userbase": "root 0:0:/root\nvmail 65534:65534:/var/vmail\n",
    "userbase-bad": "bob notauid\nalice 1:2\n",
    "domains": "example.org\nexample.com\n*.example.net\n",
    "netaddr": "127.0.0.1\n192.0.2.0/24\n2001:db8::/32\n",
    "netaddr-bad": "127.0.0.1\n300.1.2.3/99\nnot-an-address\n",
    "regex": "^[a-z]+@example\\.org$\n.*\\.example\\.com$\n",
    "regex-bad": "([a-z\n",
    "mailaddrs": "alice@example.org\n@example.com\nbob\n",
    "creds": "alice $2b$08$ANGFKBL.BnDLL0bUdL3bhOHsq3Y5PBzcD7d.a7aFWv1SDWNqXRUj6\n",
    "relay-creds": "label1 alice:secret\n",
    "hostnames": "127.0.0.1 mx.example.org\n::1 mx6.example.org\n",
    "senders": "alice alice@example.org, alice@example.com\nbob bob@example.org\n",
    "helo-src": "127.0.0.1 mx.example.org\n",
    "forced-list": "# @list\nexample.org  with-space\nsecond\n",
    "empty": "",
    "comments-only": "# nothing here\n\n# still nothing\n",
    "bad-map": "key value\nlonelykey\n",
    "relayhosts": "smtp+tls://label1@mx.example.org:587\nsmtps://mx2.example.org\n",
    "domain-relays": "example.org smtp://mx.example.org\nexample.com lmtp://127.0.0.1:24\n",
    "relayhosts-list": "# @list\nsmtp+tls://label1@mx.example.org:587\nsmtps://mx2.example.org\n",
    "tags": "TAG1\nTAG2\n",
    # Bytes 24 and 26 of a Berkeley DB metadata page are its encryption and checksum flags: here
    # ":" and "s", both set, so libdb asks 100 times for a key it was not given, then gives up.
    "long-text": "# not a Berkeley DB file: see how libdb reads it\n" + "# padding\n" * 60,
    # include files (relative includes resolve against the cwd of smtpd)
    "inc-tables.conf": "# included: tables\ntable inc_domains { example.org, example.com }\n",
    "inc-action.conf": "# included: action\naction \"inc_local\" mbox\n",
    "inc-rules.conf": "match from any for domain <inc_domains> action \"inc_local\"\nmatch from any for any reject\n",
    "inc-nested.conf": "include \"../data/inc-tables.conf\"\ninclude \"../data/inc-action.conf\"\n",
    "inc-macros.conf": "incdom = \"example.org\"\nincact = \"inc_m\"\n",
    "inc-abs.conf": "table absdom file:" + D + "/domains\n",
    "inc-error.conf": "# included file with an error on line 3\n\nlisten on socket bogus\nmatch from any for any reject\n",
    "inc-noeol.conf": "action \"noeol\" mbox",
    "inc-noeol-bad.conf": "action \"noeol\" mbox frobnicate",
    "loop-a.conf": "include \"../data/loop-b.conf\"\n",
    "loop-b.conf": "include \"../data/loop-a.conf\"\n",
    "self-loop.conf": "include \"../data/self-loop.conf\"\n",
    "inc-missing.conf": "include \"../data/does-not-exist.conf\"\n",
}

# --------------------------------------------------------------------------
VALID, INVALID = [], []

def V(name, desc, body):
    VALID.append((name, desc, body))

def I(name, desc, body):
    INVALID.append((name, desc, body))

M = 'action "a" mbox\nmatch from any for any action "a"\n'
PKI = f'pki mail.example.org cert "{D}/cert.pem"\npki mail.example.org key "{D}/key.pem"\n'
CA = f'ca mail.example.org cert "{D}/ca.pem"\n'

from corpus_valid import define as define_valid      # noqa: E402
from corpus_invalid import define as define_invalid  # noqa: E402


def main():
    import sys
    sys.path.insert(0, HERE)
    ctx = dict(V=V, I=I, M=M, PKI=PKI, CA=CA, D=D)
    define_valid(ctx)
    define_invalid(ctx)
    data = os.path.join(HERE, "data")
    os.makedirs(data, exist_ok=True)
    for name, text in DATA.items():
        with open(os.path.join(data, name), "w") as f:
            f.write(text)
    # insecure key: same key, recorded with mode 0644 by record.sh
    shutil.copy(os.path.join(data, "key.pem"), os.path.join(data, "insecure-key.pem"))
    shutil.copy(os.path.join(data, "cert.pem"), os.path.join(data, "cert-as-key.pem"))
    # Berkeley DB map made by makemap(8); committed as a binary.
    if shutil.which("makemap") and not os.path.exists(os.path.join(data, "aliases.db")):
        subprocess.run(["makemap", "-o", os.path.join(data, "aliases.db"),
                        os.path.join(data, "aliases")], check=True)
        subprocess.run(["makemap", "-o", os.path.join(data, "domains.db"), "-t", "set",
                        os.path.join(data, "domains")], check=True)
    if shutil.which("makemap") and not os.path.exists(os.path.join(data, "aliases-btree.db")):
        subprocess.run(["makemap", "-d", "btree", "-o", os.path.join(data, "aliases-btree.db"),
                        os.path.join(data, "aliases")], check=True)
        subprocess.run(["makemap", "-o", os.path.join(data, "empty.db"),
                        os.path.join(data, "empty")], check=True)
    db_load = shutil.which("db5.3_load") or shutil.which("db_load")
    if db_load and not os.path.exists(os.path.join(data, "aliases-be.db")):
        # what makemap stores: keys lower-cased, both sides NUL-terminated (\\00 for db_load -T)
        pairs = "".join(f"{k}\\00\n{v}\\00\n" for k, v in
                        [("root", "admin@example.org"), ("postmaster", "root")])
        subprocess.run([db_load, "-T", "-t", "hash", "-c", "db_lorder=4321",
                        os.path.join(data, "aliases-be.db")], input=pairs.encode(), check=True)
    with open(os.path.join(data, "zeros.db"), "wb") as f:
        f.write(bytes(4096))
    for sub, items in (("valid", VALID), ("invalid", INVALID)):
        d = os.path.join(HERE, sub)
        os.makedirs(d, exist_ok=True)
        for f in glob.glob(os.path.join(d, "*.conf")):
            os.unlink(f)
        seen = set()
        for i, (name, desc, body) in enumerate(items, 1):
            assert name not in seen, name
            seen.add(name)
            assert "\n" not in desc
            fn = os.path.join(d, "%03d-%s.conf" % (i, name))
            with open(fn, "w") as f:
                f.write("# " + desc + "\n" + body)
        # drop stale .expected
        stems = {"%03d-%s" % (i, n) for i, (n, _, _) in enumerate(items, 1)}
        for f in glob.glob(os.path.join(d, "*.expected")):
            if os.path.basename(f)[:-9] not in stems:
                os.unlink(f)
        print(sub, len(items))


if __name__ == "__main__":
    main()
