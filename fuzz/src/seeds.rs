//! Seed inputs for each target, taken from the repository's own tests: the SMTP dialogue corpus,
//! the config corpus and the seed's configs, the bdb fixtures, the corpus's table files; and a
//! few made here where the tests hold none as files (envelopes, control frames, command lines).

use std::path::{Path, PathBuf};

use rsmtpd_control::{Request, Response, Subsystem, Target as Tgt};

/// The repository's root (this crate is `fuzz/` in it).
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Named seed inputs of `target`.
pub fn for_target(target: &str) -> Vec<(String, Vec<u8>)> {
    match target {
        "command" => dialogues()
            .into_iter()
            .map(|d| (d.name, d.commands))
            .collect(),
        "address" => dialogues()
            .into_iter()
            .flat_map(|d| {
                let name = d.name;
                d.paths
                    .into_iter()
                    .enumerate()
                    .map(move |(i, p)| (format!("{name}-{i}"), p))
            })
            .collect(),
        "session" => dialogues()
            .into_iter()
            .flat_map(|d| {
                // Plain, then filtered with STARTTLS and AUTH offered; 256-byte chunks; every
                // answer a success.
                [(0u8, "plain"), (0b111, "filtered-tls-auth")].map(|(flags, tag)| {
                    let mut v = vec![flags, 0, 255, 255, 255, 255, 0, 0, 0, 0];
                    v.extend_from_slice(&d.stream);
                    (format!("{}-{tag}", d.name), v)
                })
            })
            .collect(),
        "data" => dialogues()
            .into_iter()
            .filter(|d| !d.data.is_empty())
            .map(|d| {
                let mut v = vec![0, 63, 1];
                v.extend_from_slice(&d.data);
                (d.name, v)
            })
            .collect(),
        "config" => {
            let mut v = files(&repo().join("tests/config-corpus/valid"), "conf");
            v.extend(files(&repo().join("tests/config-corpus/invalid"), "conf"));
            v.extend(files(&repo().join("tests/smtp-dialogues/configs"), "conf"));
            v.extend(files(&repo().join("tests/fixtures/seed/configs"), "conf"));
            v
        }
        "envelope" => envelopes(),
        "control" => control(),
        "bdb" => {
            let mut v = files(&repo().join("crates/bdb/tests/fixtures"), "db");
            v.extend(files(&repo().join("tests/config-corpus/data"), "db"));
            v.extend(table_files());
            v
        }
        "alias" => table_files(),
        "smtpctl" => smtpctl(),
        "filter" => filter(),
        "reply" => replies(),
        "table" => table_frames(),
        "proxy" => proxy_headers(),
        "credentials" => credentials(),
        "pki" => pki_files(),
        "bytes" => {
            let mut v: Vec<(String, Vec<u8>)> = dialogues()
                .into_iter()
                .map(|d| (d.name, d.stream))
                .collect();
            v.extend(envelopes());
            v.extend(control());
            v
        }
        _ => Vec::new(),
    }
}

/// Files of `dir` whose name ends in `.ext`, sorted.
fn files(dir: &Path, ext: &str) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .filter_map(|p| {
            let name = p.file_name()?.to_string_lossy().into_owned();
            Some((name, std::fs::read(&p).ok()?))
        })
        .collect();
    v.sort();
    v
}

/// The corpus's text tables (aliases, domains, credentials...): everything in its data folder
/// that is neither a config, a db file nor a key.
fn table_files() -> Vec<(String, Vec<u8>)> {
    let dir = repo().join("tests/config-corpus/data");
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && !p
                    .extension()
                    .is_some_and(|x| x == "conf" || x == "db" || x == "pem")
        })
        .filter_map(|p| {
            let name = p.file_name()?.to_string_lossy().into_owned();
            Some((name, std::fs::read(&p).ok()?))
        })
        .collect();
    v.sort();
    v
}

/// What a dialogue gives the targets.
pub struct Dialogue {
    pub name: String,
    /// The client's whole stream (`C:`/`D:` lines with CRLF, `C!:`/`D!:` raw).
    pub stream: Vec<u8>,
    /// The `C:` lines, one per line.
    pub commands: Vec<u8>,
    /// MAIL FROM / RCPT TO arguments (after the colon).
    pub paths: Vec<Vec<u8>>,
    /// The message body: the `D:`/`D!:` bytes.
    pub data: Vec<u8>,
}

/// The dialogue corpus (tests/smtp-dialogues, format in its README).
pub fn dialogues() -> Vec<Dialogue> {
    files(&repo().join("tests/smtp-dialogues"), "dlg")
        .into_iter()
        .map(|(name, text)| {
            let text = String::from_utf8_lossy(&text);
            let mut d = Dialogue {
                name,
                stream: Vec::new(),
                commands: Vec::new(),
                paths: Vec::new(),
                data: Vec::new(),
            };
            for line in text.lines() {
                let Some((tag, rest)) = line.split_once(':') else {
                    continue;
                };
                let rest = rest.strip_prefix(' ').unwrap_or(rest);
                let bytes = unescape(&rest.replace("@HOST@", "mx.test"));
                match tag {
                    "C" => {
                        let upper = bytes.to_ascii_uppercase();
                        if upper.starts_with(b"MAIL FROM:") || upper.starts_with(b"RCPT TO:") {
                            if let Some(p) = bytes.iter().position(|&b| b == b':') {
                                d.paths.push(bytes[p + 1..].to_vec());
                            }
                        }
                        d.commands.extend_from_slice(&bytes);
                        d.commands.extend_from_slice(b"\r\n");
                        d.stream.extend_from_slice(&bytes);
                        d.stream.extend_from_slice(b"\r\n");
                    }
                    "D" => {
                        d.data.extend_from_slice(&bytes);
                        d.data.extend_from_slice(b"\r\n");
                        d.stream.extend_from_slice(&bytes);
                        d.stream.extend_from_slice(b"\r\n");
                    }
                    "C!" => d.stream.extend_from_slice(&bytes),
                    "D!" => {
                        d.data.extend_from_slice(&bytes);
                        d.stream.extend_from_slice(&bytes);
                    }
                    _ => {}
                }
            }
            d
        })
        .collect()
}

/// The dialogue files' escapes: `\r \n \t \\ \xHH`.
fn unescape(text: &str) -> Vec<u8> {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() {
            let esc = match b[i + 1] {
                b'r' => Some((b'\r', 2)),
                b'n' => Some((b'\n', 2)),
                b't' => Some((b'\t', 2)),
                b'\\' => Some((b'\\', 2)),
                b'x' => b
                    .get(i + 2..i + 4)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .map(|v| (v, 4)),
                _ => None,
            };
            if let Some((v, n)) = esc {
                out.push(v);
                i += n;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// Envelope files as the spool holds them (the sample of crates/smtpd/tests/queue/envelope.rs,
/// a bounce, and the same gzip-compressed and encrypted the way the queue writes them).
fn envelopes() -> Vec<(String, Vec<u8>)> {
    let mda = "version: 3\ndispatcher: scr\ntype: mda\nsmtpname: vm\nhelo: client.test\n\
               hostname: localhost\nerrorline: \"last line for exit 75\"\nsockaddr: 127.0.0.1\n\
               sender: bl@vm\nrcpt: x75@vm\ndest: x75@vm\nctime: 1795609943\nlast-try: 0\n\
               last-bounce: 1795610003\nttl: 0\nretry: 3\ndsn-notify: 6\nesc-class: 4\n\
               esc-code: 30\nmda-user: x75\n";
    let bounce = "version: 3\ntype: bounce\nsender: @\nrcpt: @\ndest: @\nctime: 0\nlast-try: 0\n\
                  sockaddr: [IPv6:::1]:25\ndsn-ret: HDRS\ndsn-envid: abc\n";
    let mut v = vec![
        ("mda".to_string(), mda.as_bytes().to_vec()),
        ("bounce".to_string(), bounce.as_bytes().to_vec()),
    ];
    for (key, tag) in [
        (None, "gzip"),
        (rsmtpd::queue::QueueKey::new(&[7u8; 32]), "gzip-aes"),
    ] {
        let codec = rsmtpd::queue::Codec {
            compression: true,
            key,
        };
        if let Ok(data) = codec.encode_envelope(mda.as_bytes()) {
            v.push((format!("mda-{tag}"), data));
        }
    }
    use rsmtpd::queue::commitlog::{sum, Record};
    use rsmtpd::queue::{EvpId, MsgId};
    let record = Record {
        msgid: MsgId(0x0a1b2c3d),
        message: sum(b"message"),
        envelopes: vec![(EvpId(0x0a1b2c3d00000001), sum(mda.as_bytes()))],
    };
    v.push(("commit-log".to_string(), record.encode().into_bytes()));
    v
}

/// Control frames as smtpctl sends them and the daemon answers, one per file, and all in one
/// stream.
fn control() -> Vec<(String, Vec<u8>)> {
    let requests = [
        Request::Enqueue,
        Request::ListEnvelopes {
            msgid: Some(0x0a1b2c3d),
            from: 0,
        },
        Request::Schedule(Tgt::All),
        Request::Remove(Tgt::Envelope(0x0a1b2c3d00000001)),
        Request::Pause(Subsystem::Mda),
        Request::MtaBlock {
            block: true,
            addr: "192.0.2.1".into(),
            domain: "example.org".into(),
        },
        Request::ShowStats,
        Request::Trace {
            enable: true,
            name: "smtp".into(),
        },
        Request::UpdateTable("aliases".into()),
    ];
    let responses = [
        Response::Ok,
        Response::Fail(Some("no such table".into())),
        Response::Count(3),
        Response::Lines(vec!["a".into(), "b".into()]),
    ];
    let mut v = Vec::new();
    let mut stream = Vec::new();
    for (i, f) in requests
        .iter()
        .map(Request::encode)
        .chain(responses.iter().map(Response::encode))
        .enumerate()
    {
        stream.extend_from_slice(&f);
        v.push((format!("frame-{i}"), f.clone()));
        v.push((
            format!("payload-{i}"),
            f.get(4..).unwrap_or_default().to_vec(),
        ));
    }
    v.push(("stream".into(), stream));
    v.push((
        "offline".into(),
        rsmtpd_control::offline::write_offline(
            &["-f".into(), "bob@example.org".into(), "root".into()],
            b"Subject: hi\n\nhello\n",
        ),
    ));
    v
}

/// smtpctl/sendmail command lines (NUL-separated, after a flags byte and their length) and a
/// message on stdin.
fn smtpctl() -> Vec<(String, Vec<u8>)> {
    let lines: [&[&str]; 8] = [
        &["show", "queue"],
        &["show", "message", "0a1b2c3d"],
        &["schedule", "all"],
        &["pause", "envelope", "0a1b2c3d00000001"],
        &["trace", "smtp"],
        &["-t", "-F", "Bob", "-f", "bob@example.org"],
        &["-R", "hdrs", "-N", "success,delay", "root"],
        &["-o", "/etc/mail/aliases.db", "/etc/mail/aliases"],
    ];
    let message =
        b"From: Bob <bob>\nTo: root, alice@example.org\nCc: carol\nSubject: hi\n\nhello\n";
    let mut seeds: Vec<(String, Vec<u8>)> = lines
        .iter()
        .enumerate()
        .map(|(i, args)| {
            let joined = args.join("\0");
            let mut v = vec![(i % 8) as u8, joined.len().min(255) as u8];
            v.extend_from_slice(&joined.as_bytes()[..joined.len().min(255)]);
            v.extend_from_slice(message);
            (format!("args-{i}"), v)
        })
        .collect();
    // spf walk: domains as arguments, an SPF record as the message (as in spf_walk.rs).
    let domains = "example.org\x00%{d}.example.org\x0010/8\x002001:db8::/32";
    let record = b"v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 a mx:mx.example.net/28/96 \
        a:host.example.net//64 include:_spf.example.net redirect=other.example.org \
        exists:ex.example.net include:%{d}.example.net ~all";
    let mut v = vec![0, domains.len() as u8];
    v.extend_from_slice(domains.as_bytes());
    v.extend_from_slice(record);
    seeds.push(("spf-walk".into(), v));
    seeds
}

/// A filter's side of the protocol: what filters answer (registration, results, data lines,
/// reports, and broken lines of each kind), then what smtpd sends them (the recorded transcripts
/// of tests/filter_proc.rs), each behind a chunk size and the ready flag.
fn filter() -> Vec<(String, Vec<u8>)> {
    let answers: &[(&str, &str)] = &[
        (
            "register",
            "register|filter|smtp-in|connect\nregister|filter|smtp-in|helo\n\
             register|report|smtp-in|*\nregister|report|smtp-out|link-connect\nregister|ready\n",
        ),
        (
            "results",
            "register|ready\nfilter-result|0123456789abcdef|fedcba9876543210|proceed\n\
             filter-result|1|2|junk\nfilter-result|1|2|reject|550 no\n\
             filter-result|1|2|disconnect|421 bye\nfilter-result|1|2|rewrite|x@y\n",
        ),
        (
            "data-lines",
            "register|ready\nfilter-dataline|1|2|Subject: x\nfilter-dataline|1|2|\n\
             filter-dataline|1|2|..dot\nfilter-dataline|1|2|.\n",
        ),
        (
            "reports",
            "register|ready\nreport|1600000000.123456|smtp-in|1|hello\nreport|1.1|smtp-in|1|x\n",
        ),
        (
            "broken",
            "filter-result|1|2|proceed\nregister|filter|SMTP-IN|helo\nregister|filter|smtp-in|nope\n\
             register|ready\nfilter-result|xyz|2|proceed\nfilter-result|1|2|proceed|extra\n\
             filter-result|1|2|reject\nfilter-result|1|2\nbogus|line\nregister|ready\0\n\
             report|nan|smtp-in|1|x\n",
        ),
    ];
    let mut v: Vec<(String, Vec<u8>)> = answers
        .iter()
        .flat_map(|(name, text)| {
            [(1u8, 0u8), (7, 0), (255, 1)].map(|(chunk, ready)| {
                let mut d = vec![chunk, ready];
                d.extend_from_slice(text.as_bytes());
                (format!("{name}-{chunk}"), d)
            })
        })
        .collect();
    for (name, text) in files(&repo().join("crates/smtpd/tests/filter-proc"), "transcript") {
        let mut d = vec![64, 1];
        d.extend_from_slice(&text);
        v.push((name, d));
    }
    v
}

/// What servers answer: the `S:` lines of the dialogue corpus (one stream per dialogue), and
/// replies the corpus does not hold (EHLO lists, enhanced codes, broken and oversized lines),
/// each behind a chunk size.
fn replies() -> Vec<(String, Vec<u8>)> {
    let mut v = Vec::new();
    for f in files(&repo().join("tests/smtp-dialogues"), "dlg") {
        let text = String::from_utf8_lossy(&f.1);
        let mut stream = vec![7u8];
        for line in text.lines() {
            if let Some(r) = line.strip_prefix("S: ") {
                if !r.starts_with('<') {
                    stream.extend_from_slice(r.replace("@HOST@", "mx.test").as_bytes());
                    stream.extend_from_slice(b"\r\n");
                }
            }
        }
        v.push((f.0, stream));
    }
    let made: &[(&str, &[u8])] = &[
        (
            "ehlo",
            b"250-mx.example Hello\r\n250-8BITMIME\r\n250-PIPELINING\r\n250-SIZE 36700160\r\n\
              250-STARTTLS\r\n250-AUTH PLAIN LOGIN\r\n250 ENHANCEDSTATUSCODES\r\n",
        ),
        (
            "enhanced",
            b"550-5.1.1 no such user\r\n550 5.1.1 <x@y>: rejected\r\n",
        ),
        ("lf-only", b"220 mx ESMTP\n250 ok\n354 go\n"),
        ("mismatch", b"250-a\r\n251 b\r\n"),
        ("short", b"25\r\n"),
        ("out-of-range", b"650 no\r\n199 no\r\n"),
        ("controls", b"421 4.4.2 \x1b[31mbye\x00\x7f\r\n"),
        ("utf8", b"250 \xc3\xa9t\xc3\xa9 \xff\xfe\r\n"),
    ];
    for (name, r) in made {
        for chunk in [1u8, 5, 255] {
            let mut d = vec![chunk];
            d.extend_from_slice(r);
            v.push((format!("{name}-{chunk}"), d));
        }
    }
    let mut long = vec![64u8];
    long.extend_from_slice(b"250 ");
    long.extend(std::iter::repeat_n(b'x', 2100));
    v.push(("too-long".into(), long));
    let mut many = vec![255u8];
    for _ in 0..130 {
        many.extend_from_slice(b"250-x\r\n");
    }
    v.push(("too-many-lines".into(), many));
    v
}

/// One frame of the table protocol as a backend writes it (host byte order, as imsg).
fn table_frame(msg_type: u32, pid: u32, data: &[u8]) -> Vec<u8> {
    let len = u16::try_from(16 + data.len()).unwrap_or(u16::MAX);
    let mut out = Vec::new();
    out.extend_from_slice(&msg_type.to_ne_bytes());
    out.extend_from_slice(&len.to_ne_bytes());
    out.extend_from_slice(&0u16.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes());
    out.extend_from_slice(&pid.to_ne_bytes());
    out.extend_from_slice(data);
    out
}

/// A backend's answers: OPEN's version, CHECK's `r`, LOOKUP's `r` and value, a FAIL, and broken
/// frames (bad length, value without NUL, bytes after `r`), behind a chunk size and a service.
fn table_frames() -> Vec<(String, Vec<u8>)> {
    let r = |n: i32| n.to_ne_bytes().to_vec();
    let value = |n: i32, v: &[u8]| {
        let mut d = r(n);
        d.extend_from_slice(v);
        d
    };
    let answers: Vec<(&str, Vec<u8>)> = vec![
        ("open", table_frame(0, 1, &2u32.to_ne_bytes())),
        ("check-yes", table_frame(0, 1, &r(1))),
        ("check-no", table_frame(0, 1, &r(0))),
        ("check-fail", table_frame(0, 1, &r(-1))),
        ("lookup", table_frame(0, 1, &value(1, b"bob@example.org\0"))),
        (
            "lookup-creds",
            table_frame(0, 1, &value(1, b"bob:$6$salt$hash\0")),
        ),
        ("lookup-no-nul", table_frame(0, 1, &value(1, b"bob"))),
        ("lookup-extra", table_frame(0, 1, &value(0, b"x"))),
        ("fail", table_frame(1, 1, &[])),
        ("empty", table_frame(0, 1, &[])),
        ("bad-length", {
            let mut f = table_frame(0, 1, &r(1));
            f[4] = 3;
            f[5] = 0;
            f
        }),
    ];
    let mut v = Vec::new();
    for (name, f) in &answers {
        for (chunk, service) in [(1u8, 0u8), (16, 2), (255, 4)] {
            let mut d = vec![chunk, service];
            d.extend_from_slice(f);
            // Two frames in a row: the decoder must keep the second.
            d.extend_from_slice(&table_frame(0, 1, &r(1)));
            v.push((format!("{name}-{chunk}"), d));
        }
    }
    v
}

/// PROXY v2 headers: PROXY over IPv4 and IPv6 (with a TLV), LOCAL, UNSPEC, a Unix source, and
/// broken ones (signature, version, short addresses).
fn proxy_headers() -> Vec<(String, Vec<u8>)> {
    const SIG: [u8; 12] = [
        0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,
    ];
    let header = |ver_cmd: u8, fam: u8, rest: &[u8]| {
        let mut h = SIG.to_vec();
        h.push(ver_cmd);
        h.push(fam);
        h.extend_from_slice(&u16::try_from(rest.len()).unwrap_or(0).to_be_bytes());
        h.extend_from_slice(rest);
        h.extend_from_slice(b"EHLO client\r\n");
        h
    };
    let v4 = [192, 0, 2, 1, 198, 51, 100, 2, 0x30, 0x39, 0, 25];
    let mut v6 = vec![0u8; 36];
    v6[15] = 1;
    v6[31] = 2;
    v6[32] = 0x30;
    v6[35] = 25;
    let mut v6_tlv = v6.clone();
    v6_tlv.extend_from_slice(&[0x03, 0, 4, 1, 2, 3, 4]);
    let mut mapped = vec![0u8; 36];
    mapped[10] = 0xff;
    mapped[11] = 0xff;
    mapped[12] = 203;
    mapped[13] = 0;
    mapped[14] = 113;
    mapped[15] = 9;
    vec![
        ("inet".into(), header(0x21, 0x11, &v4)),
        ("inet6".into(), header(0x21, 0x21, &v6)),
        ("inet6-tlv".into(), header(0x21, 0x21, &v6_tlv)),
        ("inet6-mapped".into(), header(0x21, 0x21, &mapped)),
        ("local".into(), header(0x20, 0x00, &[])),
        ("unspec".into(), header(0x21, 0x00, &[])),
        ("unix".into(), header(0x21, 0x31, &[0u8; 216])),
        ("short-inet".into(), header(0x21, 0x11, &v4[..6])),
        ("version-1".into(), header(0x11, 0x11, &v4)),
        ("udp".into(), header(0x21, 0x12, &v4)),
        ("bad-signature".into(), {
            let mut h = header(0x21, 0x11, &v4);
            h[0] = b'P';
            h
        }),
    ]
}

/// Credential table lines (the corpus's files), hashes of both schemes, passwords.
fn credentials() -> Vec<(String, Vec<u8>)> {
    let mut v = Vec::new();
    let join =
        |key: &str, line: &str, password: &str| format!("{key}\0{line}\0{password}").into_bytes();
    for name in ["creds", "relay-creds"] {
        let text =
            std::fs::read(repo().join("tests/config-corpus/data").join(name)).unwrap_or_default();
        for (i, line) in String::from_utf8_lossy(&text).lines().enumerate() {
            let mut it = line.split_whitespace();
            let (Some(k), Some(val)) = (it.next(), it.next()) else {
                continue;
            };
            v.push((format!("{name}-{i}"), join(k, val, "password")));
        }
    }
    let made = rsmtpd::auth::crypt::sha512_crypt(b"secret", "$6$saltsalt$").unwrap_or_default();
    v.push(("sha512".into(), join("bob", &made, "secret")));
    v.push((
        "sha512-line".into(),
        join("bob", &format!("bob:{made}"), "secret"),
    ));
    v.push((
        "sha512-rounds".into(),
        join("bob", "$6$rounds=1000$abc$", "x"),
    ));
    v.push((
        "sha512-rounds-low".into(),
        join("bob", "$6$rounds=10$abc$", "x"),
    ));
    v.push((
        "sha512-long-salt".into(),
        join("bob", "$6$0123456789abcdefXYZ$", "x"),
    ));
    v.push((
        "bcrypt".into(),
        join(
            "bob",
            "$2b$04$0123456789abcdefghijkuS6vOWfQ1xw5M7ZDQhoOLZ3RTbXnv7gq",
            "secret",
        ),
    ));
    v.push(("bcrypt-short".into(), join("bob", "$2b$04$x", "secret")));
    v.push(("colon-first".into(), join("bob", ":x", "x")));
    v.push(("colon-last".into(), join("bob", "x:", "x")));
    v.push(("other-scheme".into(), join("bob", "$1$abc$def", "x")));
    v
}

/// The corpus's pki files, each pairing of certificate and key, behind the cut between them.
fn pki_files() -> Vec<(String, Vec<u8>)> {
    let dir = repo().join("tests/config-corpus/data");
    let read = |n: &str| std::fs::read(dir.join(n)).unwrap_or_default();
    let mut v = Vec::new();
    for (cert, key) in [
        ("cert.pem", "key.pem"),
        ("cert.pem", "cert-as-key.pem"),
        ("ca.pem", "key.pem"),
        ("cert.pem", "insecure-key.pem"),
    ] {
        let c = read(cert);
        let k = read(key);
        let cut = u16::try_from(c.len()).unwrap_or(u16::MAX);
        let mut d = cut.to_le_bytes().to_vec();
        d.extend_from_slice(&c);
        d.extend_from_slice(&k);
        v.push((format!("{cert}+{key}"), d));
    }
    v
}
