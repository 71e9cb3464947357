//! TLS and AUTH dialogues compared with OpenSMTPD 6.8.0p2: each scenario below is played over
//! a real socket (STARTTLS and smtps through rustls' client), and its transcript (what the client
//! sent, every reply line, the handshakes, the close, and the session's log lines) is compared
//! with `tests/tls-dialogues/NAME.txt`, recorded from the TLS-capable OpenSMTPD
//! (tests/tools/opensmtpd-tls.sh). When that program is installed and we are root, the
//! scenarios are also played against it and the recordings re-checked; `RECORD_TLS=1`
//! rewrites them from it.
//!
//! Where we differ on purpose, the scenario says how (`ours`: a line of the recording and what
//! we write instead), and the README says why.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::certs::{unavailable, Certs};
use common::*;

const ALICE_HASH: &str = "$6$cLAl6luxSVvmFNeQ$NknhQoE/jiQv9dL9c3k0p3caN3VZlWvnVUHbpbNoPVVLnmcaGU5EZfSF6YNv1bT0llGBDGKJNPPAbtFwHouyp0";
const BOB_HASH: &str = "$2b$05$6s3w.KUxVYoZLlITIV07JOyENSGb83KfsqJzdU3Kz3iYZg3TfjNMi";

/// The listeners, by name, as in the probes of the recording.
const LISTENERS: &[(&str, &str)] = &[
    ("plain", ""),
    ("tls", "tls pki mx.example.org"),
    ("require", "tls-require pki mx.example.org"),
    ("verify", "tls-require verify pki mx.example.org"),
    (
        "verifyca",
        "tls-require verify pki mx.example.org ca testca",
    ),
    ("smtps", "smtps pki mx.example.org auth <creds>"),
    (
        "submission",
        "tls pki mx.example.org auth <creds> senders <sendertab>",
    ),
    ("optional", "tls pki mx.example.org auth-optional <creds>"),
];

#[derive(Clone, Copy)]
enum Step {
    /// A command line; one reply awaited.
    C(&'static str),
    /// Raw bytes in one write; replies read until the server is quiet or closes.
    Raw(&'static str),
    /// The client's handshake (after a 220, or at connect on smtps).
    Tls,
    /// The client's handshake presenting the client certificate NAME (of the world's certs).
    TlsAs(&'static str),
    /// Wait for the server to close.
    Closed,
}

use Step::*;

struct Scenario {
    name: &'static str,
    listener: &'static str,
    steps: &'static [Step],
    /// Lines of the recording we write differently, on purpose: (theirs, ours).
    ours: &'static [(&'static str, &'static str)],
}

const PLAIN_ALICE: &str = "AUTH PLAIN AGFsaWNlAGFsaWNlcGFzcw==";

const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "starttls-basic",
        listener: "tls",
        steps: &[
            C("EHLO client.example"),
            C("STARTTLS"),
            Tls,
            C("EHLO client.example"),
            C("STARTTLS"),
            C(PLAIN_ALICE),
            C("QUIT"),
            Closed,
        ],
        // 6.8 logs the credentials of a refused AUTH.
        ours: &[(
            "LOG: smtp failed-command command=\"AUTH PLAIN AGFsaWNlAGFsaWNlcGFzcw==\" result=\"503 5.5.1 Invalid command: Command not supported\"",
            "LOG: smtp failed-command command=\"AUTH PLAIN (...)\" result=\"503 5.5.1 Invalid command: Command not supported\"",
        )],
    },
    Scenario {
        name: "starttls-rules",
        listener: "tls",
        steps: &[
            C("STARTTLS"),
            C("EHLO client.example"),
            C("STARTTLS now"),
            C("starttls"),
            Tls,
            C("MAIL FROM:<a@example.org>"),
            C("STARTTLS"),
            C("HELO client.example"),
            C("STARTTLS"),
            C("QUIT"),
            Closed,
        ],
        ours: &[],
    },
    Scenario {
        name: "starttls-not-offered",
        listener: "plain",
        steps: &[C("EHLO client.example"), C("STARTTLS"), C("QUIT"), Closed],
        ours: &[],
    },
    Scenario {
        name: "starttls-pipelined",
        listener: "tls",
        steps: &[
            C("EHLO client.example"),
            Raw("STARTTLS\r\nMAIL FROM:<a@b>\r\n"),
            Closed,
        ],
        ours: &[],
    },
    Scenario {
        name: "ehlo-starttls-pipelined",
        listener: "tls",
        steps: &[Raw("EHLO client.example\r\nSTARTTLS\r\n"), Closed],
        ours: &[],
    },
    Scenario {
        name: "pipelined-inside-tls",
        listener: "tls",
        steps: &[
            C("EHLO client.example"),
            C("STARTTLS"),
            Tls,
            Raw("EHLO client.example\r\nNOOP\r\n"),
            Closed,
        ],
        ours: &[],
    },
    Scenario {
        name: "plaintext-after-220",
        listener: "tls",
        steps: &[
            C("EHLO client.example"),
            C("STARTTLS"),
            Raw("MAIL FROM:<a@b>\r\n"),
            Closed,
        ],
        ours: &[],
    },
    Scenario {
        name: "tls-require",
        listener: "require",
        steps: &[
            C("EHLO client.example"),
            C("MAIL FROM:<a@example.org>"),
            C("RCPT TO:<foo@example.org>"),
            C("NOOP"),
            C("RSET"),
            C("VRFY foo"),
            C("STARTTLS"),
            Tls,
            C("EHLO client.example"),
            C("MAIL FROM:<a@example.org>"),
            C("QUIT"),
            Closed,
        ],
        ours: &[],
    },
    Scenario {
        name: "verify-no-client-cert",
        listener: "verify",
        steps: &[C("EHLO client.example"), C("STARTTLS"), Tls, Closed],
        ours: &[],
    },
    // Signed by the listener's ca: the session goes on.
    Scenario {
        name: "verify-client-cert",
        listener: "verifyca",
        steps: &[
            C("EHLO client.example"),
            C("STARTTLS"),
            TlsAs("client"),
            C("EHLO client.example"),
            C("QUIT"),
            Closed,
        ],
        ours: &[],
    },
    // Signed by another CA: the session ends after the handshake.
    Scenario {
        name: "verify-other-ca",
        listener: "verifyca",
        steps: &[
            C("EHLO client.example"),
            C("STARTTLS"),
            TlsAs("stranger"),
            C("EHLO client.example"),
            Closed,
        ],
        ours: &[],
    },
    Scenario {
        name: "smtps-auth",
        listener: "smtps",
        steps: &[
            Tls,
            C("EHLO client.example"),
            C("STARTTLS"),
            C(PLAIN_ALICE),
            C("EHLO client.example"),
            C("QUIT"),
            Closed,
        ],
        ours: &[],
    },
    Scenario {
        name: "auth-before-tls-and-mail-before-auth",
        listener: "submission",
        steps: &[
            C("EHLO client.example"),
            C(PLAIN_ALICE),
            C("MAIL FROM:<alice@example.org>"),
            C("RCPT TO:<foo@example.org>"),
            C("STARTTLS"),
            Tls,
            C("AUTH PLAIN"),
            C("EHLO client.example"),
            C("MAIL FROM:<alice@example.org>"),
            C("QUIT"),
            Closed,
        ],
        ours: &[(
            "LOG: smtp failed-command command=\"AUTH PLAIN AGFsaWNlAGFsaWNlcGFzcw==\" result=\"503 5.5.1 Invalid command: Command not supported\"",
            "LOG: smtp failed-command command=\"AUTH PLAIN (...)\" result=\"503 5.5.1 Invalid command: Command not supported\"",
        )],
    },
    Scenario {
        name: "auth-plain",
        listener: "submission",
        steps: &[
            C("EHLO client.example"),
            C("STARTTLS"),
            Tls,
            C("EHLO client.example"),
            C("AUTH"),
            C("AUTH CRAM-MD5"),
            C("AUTH XOAUTH2 abc"),
            C("AUTH PLAIN AGFsaWNlAHdyb25n"),
            C("AUTH PLAIN AG5vYm9keQBhbGljZXBhc3M="),
            C("AUTH PLAIN"),
            C("*"),
            C("AUTH PLAIN !!!!"),
            C("AUTH PLAIN YWxpY2UAYWxpY2VwYXNz"),
            C("auth plain emlkAGFsaWNlAGFsaWNlcGFzcw=="),
            C(PLAIN_ALICE),
            C("EHLO client.example"),
            C("RSET"),
            C("MAIL FROM:<other@example.org>"),
            C("MAIL FROM:<>"),
            C("MAIL FROM:<Alice@Example.org>"),
            C("QUIT"),
            Closed,
        ],
        ours: &[
            (
                "LOG: smtp failed-command command=\"AUTH PLAIN AGFsaWNlAGFsaWNlcGFzcw==\" result=\"503 5.5.1 Invalid command: Already authenticated\"",
                "LOG: smtp failed-command command=\"AUTH PLAIN (...)\" result=\"503 5.5.1 Invalid command: Already authenticated\"",
            ),
            // The initial response of a mechanism we do not offer may be a credential too (an
            // XOAUTH2 bearer token).
            (
                "LOG: smtp failed-command command=\"AUTH XOAUTH2 abc\" result=\"504 5.7.4 Security features not supported: AUTH method \"XOAUTH2\" not supported\"",
                "LOG: smtp failed-command command=\"AUTH XOAUTH2 (...)\" result=\"504 5.7.4 Security features not supported: AUTH method \"XOAUTH2\" not supported\"",
            ),
        ],
    },
    Scenario {
        name: "auth-login-bcrypt",
        listener: "submission",
        steps: &[
            C("EHLO client.example"),
            C("STARTTLS"),
            Tls,
            C("EHLO client.example"),
            C("AUTH LOGIN"),
            C("*"),
            C("AUTH LOGIN YWxpY2U="),
            C("*"),
            C("AUTH LOGIN"),
            C("YWxpY2U="),
            C("d3Jvbmc="),
            C("AUTH LOGIN Ym9i"),
            C("Ym9icGFzcw=="),
            C("MAIL FROM:<anything@example.org>"),
            C("RSET"),
            C("MAIL FROM:<bob@example.net>"),
            C("QUIT"),
            Closed,
        ],
        ours: &[],
    },
    Scenario {
        name: "auth-optional",
        listener: "optional",
        steps: &[
            C("EHLO client.example"),
            C("MAIL FROM:<a@example.org>"),
            C("RSET"),
            C("STARTTLS"),
            Tls,
            C("EHLO client.example"),
            C("MAIL FROM:<a@example.org>"),
            C("QUIT"),
            Closed,
        ],
        ours: &[],
    },
];

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/tls-dialogues")
}

/// The certificates and the configuration both programs run with.
struct World {
    certs: Certs,
    ports: Vec<(&'static str, u16)>,
    config: String,
}

fn world() -> World {
    let c = Certs::new();
    c.ca("ca", "Test CA")
        .leaf(
            "mx",
            Some("ca"),
            "mx.example.org",
            &["mx.example.org"],
            "serverAuth",
            true,
        )
        .leaf(
            "client",
            Some("ca"),
            "client.example",
            &[],
            "clientAuth",
            false,
        )
        .ca("otherca", "Other CA")
        .leaf(
            "stranger",
            Some("otherca"),
            "stranger.example",
            &[],
            "clientAuth",
            false,
        );
    std::fs::write(
        c.path("creds"),
        format!("alice {ALICE_HASH}\nbob {BOB_HASH}\n"),
    )
    .expect("creds");
    let mut config = format!(
        "pki mx.example.org cert \"{mx}.crt\"\n\
         pki mx.example.org key \"{mx}.key\"\n\
         ca testca cert \"{ca}.crt\"\n\
         table creds file:{creds}\n\
         table sendertab {{ alice = \"alice@example.org\", bob = \"@example.org\" }}\n",
        mx = c.p("mx"),
        ca = c.p("ca"),
        creds = c.p("creds"),
    );
    let mut ports = Vec::new();
    for (name, opts) in LISTENERS {
        let p = free_port();
        ports.push((*name, p));
        config.push_str(&format!("listen on 127.0.0.1 port {p} {opts}\n"));
    }
    config.push_str("action \"local\" mbox\nmatch from any for local action \"local\"\n");
    World {
        certs: c,
        ports,
        config,
    }
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
    Gone,
}

impl Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
            Stream::Gone => Ok(0),
        }
    }
    fn write(&mut self, data: &[u8]) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.write_all(data).and_then(|_| s.flush()),
            Stream::Tls(s) => s.write_all(data).and_then(|_| s.flush()),
            Stream::Gone => Ok(()),
        }
    }
}

/// One client connection that records its transcript.
struct Conn {
    s: Stream,
    buf: Vec<u8>,
    eof: bool,
    out: Vec<String>,
    tls: Arc<rustls::ClientConfig>,
}

impl Conn {
    /// Reads lines until a final reply line, EOF, or `quiet` without data. Only lines that look
    /// like SMTP replies are recorded (a TLS alert on a plaintext socket is not one).
    fn replies(&mut self, quiet: Option<Duration>) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            while let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                let text = String::from_utf8_lossy(&line).into_owned();
                let text = text.trim_end_matches(['\r', '\n']).to_string();
                let is_reply =
                    text.len() >= 3 && text.as_bytes()[..3].iter().all(u8::is_ascii_digit);
                if is_reply {
                    self.out.push(format!("S: {text}"));
                    if quiet.is_none() && text.as_bytes().get(3) != Some(&b'-') {
                        return;
                    }
                }
            }
            if self.eof || Instant::now() > deadline {
                return;
            }
            if let Stream::Plain(s) = &self.s {
                let _ = s.set_read_timeout(Some(quiet.unwrap_or(Duration::from_secs(10))));
            }
            if let Stream::Tls(s) = &self.s {
                let _ = s
                    .sock
                    .set_read_timeout(Some(quiet.unwrap_or(Duration::from_secs(10))));
            }
            let mut b = [0u8; 4096];
            match self.s.read(&mut b) {
                Ok(0) => self.eof = true,
                Ok(n) => self.buf.extend_from_slice(&b[..n]),
                Err(e)
                    if quiet.is_some()
                        && matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) =>
                {
                    return
                }
                Err(_) => self.eof = true,
            }
        }
    }

    fn handshake(&mut self) {
        let sock = match std::mem::replace(&mut self.s, Stream::Gone) {
            Stream::Plain(s) => s,
            other => {
                self.s = other;
                self.out
                    .push("-- TLS: not on a plaintext connection".into());
                return;
            }
        };
        let _ = sock.set_read_timeout(Some(Duration::from_secs(10)));
        let name = rustls::pki_types::ServerName::try_from("mx.example.org").expect("name");
        let conn = rustls::ClientConnection::new(self.tls.clone(), name).expect("client");
        let mut tls = rustls::StreamOwned::new(conn, sock);
        while tls.conn.is_handshaking() {
            if let Err(e) = tls.conn.complete_io(&mut tls.sock) {
                self.out.push(format!("-- TLS failed: {}", e.kind() as u8));
                self.eof = true;
                return;
            }
        }
        let suite = tls
            .conn
            .negotiated_cipher_suite()
            .map(|s| format!("{:?}", s.suite()))
            .unwrap_or_default();
        self.out.push(format!("-- TLS {suite}"));
        self.s = Stream::Tls(Box::new(tls));
    }
}

/// The session's log lines, with the varying parts replaced.
fn normalize_log(lines: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for l in normalized_session_log(lines) {
        // The first 16 characters became a placeholder; msgids and evpids too.
        out.push(format!("LOG: {l}"));
    }
    out
}

/// A client configuration that trusts `ca` and presents `dir/NAME.crt` with its key when asked.
fn client_with_cert(ca: &str, dir: &Path, name: &str) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).expect("ca file") {
        roots.add(c.expect("ca cert")).expect("ca added");
    }
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(dir.join(format!("{name}.crt")))
            .expect("client cert file")
            .map(|c| c.expect("client cert"))
            .collect();
    let key = PrivateKeyDer::from_pem_file(dir.join(format!("{name}.key"))).expect("client key");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .expect("client certificate");
    Arc::new(cfg)
}

/// Plays one scenario against the daemon on `ports`; returns the transcript.
fn play(d: &Daemon, ports: &[(&str, u16)], ca: &str, dir: &Path, sc: &Scenario) -> Vec<String> {
    let port = ports
        .iter()
        .find(|(n, _)| *n == sc.listener)
        .map(|(_, p)| *p)
        .expect("listener");
    let roots = rsmtpd::tls::client::ServerCheck::Anchors(ca);
    let tls = Arc::new(rsmtpd::tls::client::config(roots, None));
    let before = d.log().len();
    let disconnects = |d: &Daemon| {
        d.log()
            .iter()
            .filter(|l| l.contains(" smtp disconnected"))
            .count()
    };
    let seen = disconnects(d);
    let sock = TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port))).expect("connect");
    let mut c = Conn {
        s: Stream::Plain(sock),
        buf: Vec::new(),
        eof: false,
        out: Vec::new(),
        tls,
    };
    let mut steps = sc.steps.iter().peekable();
    if matches!(steps.peek(), Some(Tls)) {
        steps.next();
        c.handshake();
    }
    c.replies(None);
    for step in steps {
        match step {
            C(line) => {
                c.out.push(format!("C: {line}"));
                let _ = c.s.write(format!("{line}\r\n").as_bytes());
                c.replies(None);
            }
            Raw(bytes) => {
                for l in bytes.split_terminator("\r\n") {
                    c.out.push(format!("C: {l}"));
                }
                c.out.push("C: (one write)".into());
                let _ = c.s.write(bytes.as_bytes());
                c.replies(Some(Duration::from_millis(500)));
            }
            Tls => c.handshake(),
            TlsAs(name) => {
                c.out.push(format!("-- client certificate {name}"));
                c.tls = client_with_cert(ca, dir, name);
                c.handshake();
            }
            Closed => {
                c.replies(Some(Duration::from_secs(5)));
                c.out
                    .push(if c.eof { "[closed]" } else { "[still open]" }.into());
            }
        }
    }
    drop(c.s);
    let deadline = Instant::now() + Duration::from_secs(10);
    while disconnects(d) <= seen && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(100));
    let log = d.log();
    let mut out = c.out;
    out.extend(normalize_log(&log[before.min(log.len())..]));
    out
}

fn host_placeholder(lines: Vec<String>) -> Vec<String> {
    let host = hostname();
    lines
        .into_iter()
        .map(|l| l.replace(&host, "@HOST@"))
        .collect()
}

fn read_fixture(name: &str) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(fixtures().join(format!("{name}.txt"))).ok()?;
    Some(
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .map(str::to_string)
            .collect(),
    )
}

fn ours_expected(sc: &Scenario, theirs: &[String]) -> Vec<String> {
    theirs
        .iter()
        .map(|l| {
            sc.ours
                .iter()
                .find(|(t, _)| t == l)
                .map(|(_, o)| o.to_string())
                .unwrap_or_else(|| l.clone())
        })
        .collect()
}

fn diff(name: &str, want: &[String], got: &[String]) -> Option<String> {
    if want == got {
        return None;
    }
    let mut s = format!("{name}: differs\n");
    let n = want.len().max(got.len());
    for i in 0..n {
        let w = want.get(i).map(String::as_str).unwrap_or("<none>");
        let g = got.get(i).map(String::as_str).unwrap_or("<none>");
        let mark = if w == g { "  " } else { "! " };
        s.push_str(&format!("{mark}{w:<70} | {g}\n"));
    }
    Some(s)
}

fn run_all(bin: &str) -> Vec<(&'static str, Vec<String>)> {
    let w = world();
    let d = Daemon::start_with(bin, &w.config, &[]);
    let ca = w.certs.p("ca.crt");
    let mut out = Vec::new();
    for sc in SCENARIOS {
        let dir = w.certs.path("");
        out.push((sc.name, host_placeholder(play(&d, &w.ports, &ca, &dir, sc))));
    }
    out
}

#[test]
fn tls_dialogues_against_rsmtpd() {
    if let Some(why) = unavailable() {
        common::skip(why);
        return;
    }
    let mut diffs = Vec::new();
    for (name, got) in run_all(env!("CARGO_BIN_EXE_smtpd")) {
        let sc = SCENARIOS.iter().find(|s| s.name == name).expect("scenario");
        let Some(theirs) = read_fixture(name) else {
            diffs.push(format!(
                "{name}: never recorded (RECORD_TLS=1 with the TLS-capable OpenSMTPD)"
            ));
            continue;
        };
        if let Some(d) = diff(name, &ours_expected(sc, &theirs), &got) {
            diffs.push(d);
        }
    }
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
}

#[test]
fn tls_dialogues_against_opensmtpd() {
    if !(Path::new(TLS_SMTPD).exists() && is_root()) {
        common::skip(&format!(
            "{TLS_SMTPD} is not installed (scripts/test-deps.sh installs it) or not root"
        ));
        return;
    }
    let _one = real_lock();
    let record = std::env::var("RECORD_TLS").is_ok_and(|v| v == "1");
    let mut diffs = Vec::new();
    for (name, got) in run_all(TLS_SMTPD) {
        if record {
            let mut text = format!(
                "# {name}: recorded from OpenSMTPD 6.8.0p2 ({TLS_SMTPD}); C: sent, S: replies, -- TLS: handshake, LOG: its log\n"
            );
            for l in &got {
                text.push_str(l);
                text.push('\n');
            }
            std::fs::create_dir_all(fixtures()).expect("mkdir");
            std::fs::write(fixtures().join(format!("{name}.txt")), text).expect("write");
            continue;
        }
        match read_fixture(name) {
            Some(want) => {
                if let Some(d) = diff(name, &want, &got) {
                    diffs.push(d);
                }
            }
            None => diffs.push(format!("{name}: never recorded")),
        }
    }
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
}
