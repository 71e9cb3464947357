//! TLS and authenticated submission, end to end: the real `smtpd` binary with certificates made
//! by the test, and real clients (openssl s_client, Python's smtplib, swaks) over loopback.
//! Replies and log lines are OpenSMTPD 6.8's, as recorded from the TLS-capable OpenSMTPD
//! (tests/tls_live.rs compares them live).

mod common;

use std::process::Command;
use std::time::Duration;

use common::certs::{s_client, unavailable, Certs};
use common::*;

/// `smtpctl encrypt alicepass`, printed by OpenSMTPD's smtpctl.
const ALICE_HASH: &str = "$6$cLAl6luxSVvmFNeQ$NknhQoE/jiQv9dL9c3k0p3caN3VZlWvnVUHbpbNoPVVLnmcaGU5EZfSF6YNv1bT0llGBDGKJNPPAbtFwHouyp0";
/// bcrypt of `bobpass`, by libxcrypt's mkpasswd: what an administrator brings from elsewhere.
const BOB_HASH: &str = "$2b$05$6s3w.KUxVYoZLlITIV07JOyENSGb83KfsqJzdU3Kz3iYZg3TfjNMi";

fn skip() -> bool {
    match unavailable() {
        Some(why) => {
            common::skip(why);
            true
        }
        None => false,
    }
}

/// The certificates of these tests: a CA, the server's (mx.example.org), another server's
/// (other.example.net, signed by an intermediate CA its certificate file carries), one for
/// several names (pki `multi`), client certificates signed by the CA and self-signed.
fn certs() -> Certs {
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
        .intermediate("inter", "ca", "Test Intermediate")
        .leaf(
            "other",
            Some("inter"),
            "other.example.net",
            &["other.example.net"],
            "serverAuth",
            false,
        )
        .leaf(
            "multi",
            Some("ca"),
            "multi",
            &["smtp.example.com", "*.wild.example.com"],
            "serverAuth",
            false,
        )
        .leaf(
            "client",
            Some("ca"),
            "client.example",
            &[],
            "clientAuth",
            false,
        )
        .leaf("selfclient", None, "self.example", &[], "clientAuth", false)
        .chain("other", "inter");
    std::fs::write(
        c.path("creds"),
        format!("alice {ALICE_HASH}\nbob {BOB_HASH}\n"),
    )
    .expect("creds");
    c
}

/// Ports by name, and the daemon.
struct Setup {
    d: Daemon,
    c: Certs,
    ports: Vec<(&'static str, u16)>,
    uid: u32,
}

impl Setup {
    fn port(&self, name: &str) -> u16 {
        self.ports
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, p)| *p)
            .expect("port name")
    }
}

const LISTENERS: &[(&str, &str)] = &[
    ("tls", "tls pki mx.example.org"),
    ("require", "tls-require pki mx.example.org"),
    ("verify", "tls-require verify pki mx.example.org ca clients"),
    ("smtps", "smtps pki mx.example.org auth <creds>"),
    (
        "submission",
        "tls pki mx.example.org auth <creds> senders <sendertab> received-auth",
    ),
    (
        "optional",
        "tls pki mx.example.org auth-optional <creds> received-auth",
    ),
    ("plain", ""),
];

fn setup() -> Setup {
    let c = certs();
    let uid = delivery_uid(2000);
    let mut conf = format!(
        "pki mx.example.org cert \"{mx}.crt\"\n\
         pki mx.example.org key \"{mx}.key\"\n\
         pki other.example.net cert \"{other}.crt\"\n\
         pki other.example.net key \"{other}.key\"\n\
         pki multi cert \"{multi}.crt\"\n\
         pki multi key \"{multi}.key\"\n\
         ca clients cert \"{ca}.crt\"\n\
         table creds file:{creds}\n\
         table sendertab {{ alice = \"alice@example.org\", bob = \"@example.org\" }}\n\
         table users {{ bob = \"{uid}:{uid}:@DIR@/bob\" }}\n",
        mx = c.p("mx"),
        other = c.p("other"),
        multi = c.p("multi"),
        ca = c.p("ca"),
        creds = c.p("creds"),
    );
    let mut ports = Vec::new();
    // The first is the daemon's @PORT@; the others all different (see free_ports).
    let mut free = free_ports(LISTENERS.len() - 1).into_iter();
    for (i, (name, opts)) in LISTENERS.iter().enumerate() {
        let port = if i == 0 {
            "@PORT@".to_string()
        } else {
            let p = free.next().unwrap_or(0);
            ports.push((*name, p));
            p.to_string()
        };
        conf.push_str(&format!("listen on 127.0.0.1 port {port} {opts}\n"));
    }
    conf.push_str(
        "action \"mail\" maildir \"@DIR@/bob/Maildir\" userbase <users>\n\
         match from any for domain \"example.org\" action \"mail\"\n",
    );
    let d = Daemon::start(&conf, &[]);
    ports.insert(0, ("tls", d.port));
    user_dir(&d, "bob", uid);
    Setup { d, c, ports, uid }
}

fn has(log: &[String], text: &str) -> bool {
    log.iter().any(|l| l.contains(text))
}

#[test]
fn starttls_with_openssl_s_client_and_the_rfc_3207_rules() {
    if skip() {
        return;
    }
    let s = setup();
    let out = s_client(
        s.port("tls"),
        true,
        &[
            "-CAfile",
            &s.c.p("ca.crt"),
            "-verify_return_error",
            "-verify_hostname",
            "mx.example.org",
        ],
        "EHLO client.example\nSTARTTLS\nAUTH PLAIN AGFsaWNlAGFsaWNlcGFzcw==\nQUIT\n",
    );
    assert!(out.contains("Verify return code: 0 (ok)"), "{out}");
    // After the handshake: EHLO again, no STARTTLS offered, no AUTH on this listener.
    assert!(
        out.contains("250-DSN\r\n250 HELP\r\n") || out.contains("250-DSN\n250 HELP"),
        "{out}"
    );
    assert!(
        out.contains("503 5.5.1 Invalid command: Channel already secured"),
        "{out}"
    );
    assert!(
        out.contains("503 5.5.1 Invalid command: Command not supported"),
        "{out}"
    );
    s.d.wait_log(|l| l.ends_with("smtp disconnected reason=quit"));
    let log = s.d.log();
    assert!(
        has(&log, " smtp tls ciphers=TLSv1.3:TLS_AES_256_GCM_SHA384:256"),
        "{log:?}"
    );
    // The refused AUTH is logged without its credentials (6.8 logs them: fixed on purpose).
    assert!(has(&log, "command=\"AUTH PLAIN (...)\" result=\"503 5.5.1 Invalid command: Command not supported\""), "{log:?}");
    assert!(!has(&log, "AGFsaWNl"), "{log:?}");

    // TLS 1.2 with the suite names OpenSSL gives.
    let out = s_client(
        s.port("tls"),
        true,
        &["-tls1_2", "-CAfile", &s.c.p("ca.crt")],
        "QUIT\n",
    );
    assert!(out.contains("ECDHE-RSA-AES256-GCM-SHA384"), "{out}");
    s.d.wait_log(|l| l.contains("smtp tls ciphers=TLSv1.2:ECDHE-RSA-AES256-GCM-SHA384:256"));
}

#[test]
fn bytes_pipelined_after_starttls_never_run_inside_tls() {
    if skip() {
        return;
    }
    let s = setup();
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], s.port("tls")));
    let mut c = Client::connect(addr);
    c.reply();
    assert!(c.cmd("EHLO client.example").contains("250-STARTTLS"));
    // The injection of CVE-2011-0411: a command in the same write as STARTTLS.
    c.send(b"STARTTLS\r\nMAIL FROM:<a@b>\r\n");
    assert_eq!(
        c.reply(),
        "500 5.5.1 Invalid command: Pipelining not supported\r\n"
    );
    assert!(c.closed());
    s.d.wait_log(|l| {
        l.ends_with("smtp bad-input result=\"500 5.5.1 Invalid command: Pipelining not supported\"")
    });
    // Before EHLO, with an argument.
    let mut c = Client::connect(addr);
    c.reply();
    assert_eq!(
        c.cmd("STARTTLS"),
        "503 5.5.1 Invalid command: Command not allowed at this point.\r\n"
    );
    c.cmd("EHLO client.example");
    assert_eq!(
        c.cmd("STARTTLS now"),
        "501 5.5.4 Invalid command arguments: No parameters allowed\r\n"
    );
    // Plaintext after the 220 instead of a ClientHello.
    assert_eq!(c.cmd("starttls"), "220 2.0.0 Ready to start TLS\r\n");
    c.send(b"MAIL FROM:<a@b>\r\n");
    // Whatever comes back (a TLS alert at most) is no SMTP reply, and the connection ends.
    let mut rest = String::new();
    for _ in 0..5 {
        let r = c.reply();
        if r.is_empty() {
            break;
        }
        rest.push_str(&r);
    }
    assert!(!rest.contains("250"), "{rest:?}");
    s.d.wait_log(|l| {
        l.ends_with(
            "smtp disconnected reason=\"io-error: error:0A00010B:SSL routines::wrong version number\"",
        )
    });
    // A client that leaves after the 220.
    let mut c = Client::connect(addr);
    c.reply();
    c.cmd("EHLO client.example");
    c.cmd("STARTTLS");
    drop(c);
    s.d.wait_log(|l| {
        l.ends_with(
            "reason=\"io-error: error:0A000126:SSL routines::unexpected eof while reading\"",
        )
    });
    // A listener without tls does not offer it.
    let mut c = Client::connect(std::net::SocketAddr::from((
        [127, 0, 0, 1],
        s.port("plain"),
    )));
    c.reply();
    assert!(!c.cmd("EHLO client.example").contains("STARTTLS"));
    assert_eq!(
        c.cmd("STARTTLS"),
        "503 5.5.1 Invalid command: Command not supported\r\n"
    );
}

#[test]
fn tls_require_refuses_mail_before_starttls() {
    if skip() {
        return;
    }
    let s = setup();
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], s.port("require")));
    let r = converse(
        "127.0.0.1",
        addr,
        &[
            "EHLO client.example",
            "MAIL FROM:<a@example.org>",
            "RCPT TO:<bob@example.org>",
            "NOOP",
            "QUIT",
        ],
    );
    assert_eq!(
        r[2],
        "530 5.5.1 Invalid command: Must issue a STARTTLS command first\r\n"
    );
    assert_eq!(
        r[3],
        "503 5.5.1 Invalid command: Command not allowed at this point.\r\n"
    );
    assert_eq!(r[4], "250 2.0.0 Ok\r\n");
}

/// smtplib's starttls(), login() and SMTP_SSL: the mail is delivered with `ESMTPSA` and the TLS
/// details in its Received header.
#[test]
fn python_smtplib_starttls_login_and_smtp_ssl() {
    if skip() {
        return;
    }
    let s = setup();
    let script = r#"
import smtplib, ssl, sys
ca, port, ssl_port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
ctx = ssl.create_default_context(cafile=ca)
ctx.check_hostname = False   # connected by address; the chain is still checked
s = smtplib.SMTP('127.0.0.1', port, local_hostname='client.example')
s.ehlo()
assert not s.has_extn('auth'), 'AUTH offered before TLS'
s.starttls(context=ctx)
s.ehlo()
assert s.has_extn('auth'), 'no AUTH after TLS'
try:
    s.login('alice', 'wrong')
    sys.exit('wrong password accepted')
except smtplib.SMTPAuthenticationError as e:
    print('refused', e.smtp_code, e.smtp_error.decode())
s.login('alice', 'alicepass')
try:
    s.sendmail('someone@example.org', ['bob@example.org'], 'Subject: x\r\n\r\nx\r\n')
    sys.exit('foreign sender accepted')
except smtplib.SMTPSenderRefused as e:
    print('sender', e.smtp_code, e.smtp_error.decode())
s.sendmail('alice@example.org', ['bob@example.org'], 'Subject: starttls\r\n\r\nhello\r\n')
s.quit()
s = smtplib.SMTP_SSL('127.0.0.1', ssl_port, local_hostname='client.example', context=ctx)
s.login('bob', 'bobpass')
s.sendmail('bob@example.org', ['bob@example.org'], 'Subject: smtps\r\n\r\nhello\r\n')
s.quit()
print('ok')
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(s.c.p("ca.crt"))
        .arg(s.port("submission").to_string())
        .arg(s.port("smtps").to_string())
        .output()
        .expect("python3");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}\n{}", s.d.log().join("\n"));
    assert!(text.contains("refused 535 Authentication failed"), "{text}");
    assert!(text.contains("sender 530 Sender rejected"), "{text}");
    let log = s.d.log();
    assert!(
        has(&log, "smtp authentication user=alice result=permfail"),
        "{log:?}"
    );
    assert!(
        has(&log, "smtp authentication user=alice result=ok"),
        "{log:?}"
    );
    assert!(
        has(&log, "smtp authentication user=bob result=ok"),
        "{log:?}"
    );
    assert!(has(&log, "smtp failed-command command=\"mail FROM:<someone@example.org> size=17\" result=\"530 Sender rejected\""), "{log:?}");
    let new = s.d.dir.path().join("bob/Maildir/new");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while mail_texts(&new).len() < 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let mails = mail_texts(&new);
    assert_eq!(mails.len(), 2, "{}", s.d.log().join("\n"));
    let starttls = mails
        .iter()
        .find(|m| m.contains("Subject: starttls"))
        .expect("starttls mail");
    assert!(
        starttls.contains("with ESMTPSA id ")
            && starttls.contains(" (TLSv1.3:TLS_AES_256_GCM_SHA384:256:NO) auth=yes user=alice\n"),
        "{starttls}"
    );
    let smtps = mails
        .iter()
        .find(|m| m.contains("Subject: smtps"))
        .expect("smtps mail");
    assert!(
        smtps.contains("with ESMTPSA id ") && smtps.contains(":256:NO)\n"),
        "{smtps}"
    );
    let _ = s.uid;
}

/// Beyond OpenSMTPD (which sets SSL_OP_NO_TICKET): a TLS 1.3 session ticket lets a client that
/// comes back resume, without a certificate or a signature; the session is logged as any other.
#[test]
fn a_returning_client_resumes_with_a_session_ticket() {
    if skip() {
        return;
    }
    let s = setup();
    let script = r#"
import socket, ssl, sys
ca, port = sys.argv[1], int(sys.argv[2])
ctx = ssl.create_default_context(cafile=ca)
ctx.check_hostname = False
def session(sess=None):
    t = ctx.wrap_socket(socket.create_connection(('127.0.0.1', port)),
                        server_hostname='mx.example.org', session=sess)
    f = t.makefile('rb')
    assert f.readline().startswith(b'220 '), 'banner'
    # The tickets come after the handshake: the banner's read has taken them in.
    t.sendall(b'QUIT\r\n')
    assert f.readline().startswith(b'221 '), 'quit'
    out = (t.session, t.session_reused, t.version())
    t.close()
    return out
first, reused1, v = session()
_, reused2, _ = session(first)
print('first', reused1, 'second', reused2, v)
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(s.c.p("ca.crt"))
        .arg(s.port("smtps").to_string())
        .output()
        .expect("python3");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}\n{}", s.d.log().join("\n"));
    assert!(text.contains("first False second True TLSv1.3"), "{text}");
    // Both sessions logged alike: the resumed one is no different in the log.
    let tls_lines = || {
        s.d.log()
            .iter()
            .filter(|l| l.contains("smtp tls ciphers=TLSv1.3:TLS_AES_256_GCM_SHA384:256"))
            .count()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while tls_lines() < 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(tls_lines(), 2, "{}", s.d.log().join("\n"));
}

/// swaks with STARTTLS (`--tls`) and implicit TLS (`--tlsc`), AUTH PLAIN and LOGIN.
#[test]
fn swaks_tls_tlsc_auth_plain_and_login() {
    if skip() {
        return;
    }
    if Command::new("swaks").arg("--version").output().is_err() {
        common::skip("swaks is not installed (scripts/test-deps.sh installs it)");
        return;
    }
    let s = setup();
    let swaks = |port: u16, mode: &str, auth: &str, user: &str, pass: &str| {
        let out = Command::new("swaks")
            .args(["--server", &format!("127.0.0.1:{port}"), mode])
            .args(["--auth", auth, "--auth-user", user, "--auth-password", pass])
            .args([
                "--from",
                &format!("{user}@example.org"),
                "--to",
                "bob@example.org",
            ])
            .args(["--ehlo", "client.example", "--timeout", "20"])
            .output()
            .expect("swaks");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (ok, out) = swaks(s.port("submission"), "--tls", "PLAIN", "alice", "alicepass");
    assert!(ok, "{out}");
    assert!(out.contains("235 2.0.0 Authentication succeeded"), "{out}");
    let (ok, out) = swaks(s.port("smtps"), "--tlsc", "LOGIN", "bob", "bobpass");
    assert!(ok, "{out}");
    assert!(
        out.contains("334 UGFzc3dvcmQ6") && out.contains("235 2.0.0"),
        "{out}"
    );
    let (ok, out) = swaks(s.port("smtps"), "--tlsc", "LOGIN", "bob", "nope");
    assert!(!ok && out.contains("535 Authentication failed"), "{out}");
    s.d.wait_log(|l| {
        l.ends_with("command=\"AUTH LOGIN (password)\" result=\"535 Authentication failed\"")
    });
    // AUTH on a listener that offers it only after STARTTLS, tried before.
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], s.port("submission")));
    let r = converse(
        "127.0.0.1",
        addr,
        &[
            "EHLO client.example",
            "AUTH PLAIN AGFsaWNlAGFsaWNlcGFzcw==",
            "MAIL FROM:<alice@example.org>",
            "QUIT",
        ],
    );
    assert!(!r[1].contains("AUTH"), "{r:?}");
    assert_eq!(r[2], "503 5.5.1 Invalid command: Command not supported\r\n");
    assert_eq!(
        r[3],
        "530 5.5.1 Invalid command: Must issue an AUTH command first\r\n"
    );
}

#[test]
fn client_certificates_on_a_verify_listener() {
    if skip() {
        return;
    }
    let s = setup();
    let port = s.port("verify");
    let ca = s.c.p("ca.crt");
    // Signed by the listener's ca: accepted, and the Received header would say YES.
    let out = s_client(
        port,
        true,
        &[
            "-CAfile",
            &ca,
            "-cert",
            &s.c.p("client.crt"),
            "-key",
            &s.c.p("client.key"),
        ],
        "EHLO client.example\nQUIT\n",
    );
    assert!(out.contains("221 2.0.0 Bye"), "{out}");
    s.d.wait_log(|l| l.ends_with("smtp client-cert-check result=\"success\""));
    // None: the handshake completes, then the session ends without a reply.
    let out = s_client(port, true, &["-CAfile", &ca], "EHLO client.example\nQUIT\n");
    assert!(!out.contains("221 2.0.0 Bye"), "{out}");
    s.d.wait_log(|l| l.ends_with("smtp disconnected  reason=no-client-cert"));
    // Self-signed: invalid.
    let out = s_client(
        port,
        true,
        &[
            "-CAfile",
            &ca,
            "-cert",
            &s.c.p("selfclient.crt"),
            "-key",
            &s.c.p("selfclient.key"),
        ],
        "EHLO client.example\nQUIT\n",
    );
    assert!(!out.contains("221 2.0.0 Bye"), "{out}");
    s.d.wait_log(|l| l.ends_with("smtp disconnected  reason=cert-invalid"));
    // A listener without verify never asks.
    let out = s_client(
        s.port("tls"),
        true,
        &[
            "-CAfile",
            &ca,
            "-cert",
            &s.c.p("client.crt"),
            "-key",
            &s.c.p("client.key"),
        ],
        "QUIT\n",
    );
    assert!(out.contains("221 2.0.0 Bye"), "{out}");
    assert_eq!(
        s.d.log()
            .iter()
            .filter(|l| l.contains("client-cert-check"))
            .count(),
        1
    );
}

/// SNI as 6.8 (the pki named as asked, else the listener's), and beyond: the pki whose
/// certificate covers the name.
#[test]
fn sni_chooses_the_certificate() {
    if skip() {
        return;
    }
    let s = setup();
    let port = s.port("tls");
    let subject = |name: Option<&str>| {
        let mut extra = vec!["-CAfile".to_string(), s.c.p("ca.crt")];
        match name {
            Some(n) => extra.extend(["-servername".to_string(), n.to_string()]),
            None => extra.push("-noservername".to_string()),
        }
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        let out = s_client(port, true, &extra, "QUIT\n");
        out.lines()
            .find(|l| l.starts_with("subject="))
            .map(str::to_string)
            .unwrap_or_else(|| panic!("no subject: {out}"))
    };
    assert!(subject(None).contains("CN = mx.example.org"));
    assert!(subject(Some("mx.example.org")).contains("CN = mx.example.org"));
    assert!(subject(Some("other.example.net")).contains("CN = other.example.net"));
    assert!(subject(Some("unknown.example")).contains("CN = mx.example.org"));
    // Beyond 6.8: no pki is named so, but `multi` covers these names.
    assert!(subject(Some("smtp.example.com")).contains("CN = multi"));
    assert!(subject(Some("a.wild.example.com")).contains("CN = multi"));
    assert!(subject(Some("a.b.wild.example.com")).contains("CN = mx.example.org"));
    // The chain served for each name verifies against the test CA alone, for that name; the
    // intermediate of other.example.net comes from its pki's certificate file.
    for name in [
        "mx.example.org",
        "other.example.net",
        "smtp.example.com",
        "a.wild.example.com",
    ] {
        let out = s_client(
            port,
            true,
            &[
                "-CAfile",
                &s.c.p("ca.crt"),
                "-servername",
                name,
                "-verify_hostname",
                name,
                "-verify_return_error",
                "-showcerts",
            ],
            "QUIT\n",
        );
        assert!(out.contains("Verify return code: 0 (ok)"), "{name}: {out}");
        assert!(out.contains("221 2.0.0 Bye"), "{name}: {out}");
        assert_eq!(
            out.contains("s:CN = Test Intermediate"),
            name == "other.example.net",
            "{name}: {out}"
        );
    }
}

/// A certificate replaced on disk is served to the next connection; a broken one is logged and
/// the previous stays in service.
#[test]
fn renewed_certificates_are_served_without_a_restart() {
    if skip() {
        return;
    }
    let s = setup();
    let port = s.port("tls");
    let ca = s.c.p("ca.crt");
    let serial = || {
        let out = s_client(
            port,
            true,
            &[
                "-CAfile",
                &ca,
                "-servername",
                "mx.example.org",
                "-showcerts",
            ],
            "QUIT\n",
        );
        let pem_start = out.find("-----BEGIN CERTIFICATE-----").expect("cert");
        let pem_end = out[pem_start..]
            .find("-----END CERTIFICATE-----")
            .expect("end")
            + pem_start
            + 25;
        let pem = &out[pem_start..pem_end];
        let mut child = Command::new("openssl")
            .args(["x509", "-noout", "-serial"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("openssl x509");
        use std::io::Write;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(pem.as_bytes())
            .expect("write");
        String::from_utf8_lossy(&child.wait_with_output().expect("out").stdout).into_owned()
    };
    let first = serial();
    // An open session keeps its certificate; the renewal (a new key too, as certbot does) is
    // written beside and moved over the old files.
    let renewed = Certs::new();
    std::fs::copy(s.c.path("ca.crt"), renewed.path("ca.crt")).expect("ca");
    std::fs::copy(s.c.path("ca.key"), renewed.path("ca.key")).expect("ca key");
    std::fs::copy(s.c.path("ca.srl"), renewed.path("ca.srl")).expect("ca serial");
    renewed.leaf(
        "mx",
        Some("ca"),
        "mx.example.org",
        &["mx.example.org"],
        "serverAuth",
        true,
    );
    std::fs::rename(renewed.path("mx.key"), s.c.path("mx.key")).expect("key");
    std::fs::rename(renewed.path("mx.crt"), s.c.path("mx.crt")).expect("cert");
    s.d.wait_log(|l| l.starts_with("info: pki mx.example.org: reloaded certificate"));
    let second = serial();
    assert_ne!(first, second);
    // A broken file: logged, the renewed pair stays.
    std::fs::write(s.c.path("mx.crt"), "not a certificate\n").expect("break");
    s.d.wait_log(|l| {
        l.contains("pki mx.example.org: new certificate or key not loaded, the previous one stays in service")
    });
    assert_eq!(serial(), second);
}

#[test]
fn a_key_that_does_not_match_its_certificate_is_refused_at_start() {
    if skip() {
        return;
    }
    let c = certs();
    let conf_path = c.path("smtpd.conf");
    std::fs::write(
        &conf_path,
        format!(
            "pki mx.example.org cert \"{}\"\npki mx.example.org key \"{}\"\nlisten on 127.0.0.1 port {} tls pki mx.example.org\naction \"l\" mbox\nmatch from any for local action \"l\"\n",
            c.p("mx.crt"),
            c.p("other.key"),
            free_port()
        ),
    )
    .expect("conf");
    let spool = c.path("spool");
    let out = Command::new(env!("CARGO_BIN_EXE_smtpd"))
        .args(["-d", "-f"])
        .arg(&conf_path)
        .env("SMTPD_SPOOL", &spool)
        .env("SMTPD_SOCKET", c.path("sock"))
        .output()
        .expect("smtpd");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "warn:  {}: key does not match the certificate {} (pki mx.example.org)",
            c.p("other.key"),
            c.p("mx.crt")
        )),
        "{err}"
    );
    assert!(
        err.contains("smtpd: ssl_ctx_create: invalid private key"),
        "{err}"
    );
    // -n does not look inside the files, as OpenSMTPD's.
    let out = Command::new(env!("CARGO_BIN_EXE_smtpd"))
        .args(["-n", "-f"])
        .arg(&conf_path)
        .output()
        .expect("smtpd -n");
    assert!(out.status.success());
}

/// `etc/smtpd-submission.conf.sample`, with the test's certificate and folders: mail submitted
/// on 587 (STARTTLS) and 465 (smtps) with AUTH is delivered, with who authenticated in its
/// Received header; a user cannot send as another.
#[test]
fn the_submission_sample_config_works() {
    if skip() {
        return;
    }
    if Command::new("swaks").arg("--version").output().is_err() {
        common::skip("swaks is not installed (scripts/test-deps.sh installs it)");
        return;
    }
    let c = certs();
    std::fs::write(c.path("credentials"), format!("foo {ALICE_HASH}\n")).expect("credentials");
    std::fs::write(c.path("sendermap"), "foo foo@bsdsx.fr, abuse@bsdsx.fr\n").expect("sendermap");
    let sample = std::fs::read_to_string(format!(
        "{}/../../etc/smtpd-submission.conf.sample",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("sample");
    let uid = delivery_uid(2000);
    let (p465, p587) = (free_port(), free_port());
    let conf = sample
        .replace(
            "/etc/letsencrypt/live/mail.bsdsx.fr/fullchain.pem",
            &c.p("mx.crt"),
        )
        .replace(
            "/etc/letsencrypt/live/mail.bsdsx.fr/privkey.pem",
            &c.p("mx.key"),
        )
        .replace("/etc/mail/credentials", &c.p("credentials"))
        .replace("/etc/mail/sendermap", &c.p("sendermap"))
        .replace("/opt/vmail", "@DIR@/vmail")
        .replace("2000:2000", &format!("{uid}:{uid}"))
        .replace("0.0.0.0 port 25 ", "127.0.0.1 port @PORT@ ")
        .replace("0.0.0.0 port 465 ", &format!("127.0.0.1 port {p465} "))
        .replace("0.0.0.0 port 587 ", &format!("127.0.0.1 port {p587} "));
    let d = Daemon::start(&conf, &[]);
    user_dir(&d, "vmail/foo", uid);
    let swaks = |port: u16, mode: &str, from: &str, subject: &str| {
        let out = Command::new("swaks")
            .args(["--server", &format!("127.0.0.1:{port}"), mode])
            .args([
                "--auth",
                "PLAIN",
                "--auth-user",
                "foo",
                "--auth-password",
                "alicepass",
            ])
            .args([
                "--from",
                from,
                "--to",
                "abuse@bsdsx.fr",
                "--header",
                &format!("Subject: {subject}"),
            ])
            .args(["--ehlo", "laptop.example", "--timeout", "20"])
            .output()
            .expect("swaks");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (ok, out) = swaks(p587, "--tls", "foo@bsdsx.fr", "via 587");
    assert!(ok, "{out}");
    let (ok, out) = swaks(p465, "--tlsc", "foo@bsdsx.fr", "via 465");
    assert!(ok, "{out}");
    let (ok, out) = swaks(p465, "--tlsc", "bar@bsdsx.fr", "as bar");
    assert!(!ok && out.contains("530 Sender rejected"), "{out}");
    // No AUTH in the clear, on either port.
    let r = converse(
        "127.0.0.1",
        std::net::SocketAddr::from(([127, 0, 0, 1], p587)),
        &[
            "EHLO laptop.example",
            "AUTH PLAIN AGZvbwBhbGljZXBhc3M=",
            "MAIL FROM:<foo@bsdsx.fr>",
            "QUIT",
        ],
    );
    assert!(!r[1].contains("AUTH"), "{r:?}");
    assert_eq!(r[2], "503 5.5.1 Invalid command: Command not supported\r\n");
    assert_eq!(
        r[3],
        "530 5.5.1 Invalid command: Must issue a STARTTLS command first\r\n"
    );
    let new = d.dir.path().join("vmail/foo/new");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while mail_texts(&new).len() < 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let mails = mail_texts(&new);
    assert_eq!(mails.len(), 2, "{}", d.log().join("\n"));
    for m in &mails {
        assert!(
            m.contains("with ESMTPSA id ") && m.contains(":NO) auth=yes user=foo\n"),
            "{m}"
        );
    }
}

/// `auth` without a table: the system's users through PAM (service `smtpd`, which falls back
/// to `other`, pam_unix), with a user of our own in a private /etc/passwd and /etc/shadow;
/// the same answers and log lines from the TLS-capable OpenSMTPD when it is installed.
#[test]
fn system_users_through_pam() {
    if skip() {
        return;
    }
    if Command::new("swaks").arg("--version").output().is_err() {
        common::skip("swaks is not installed (scripts/test-deps.sh installs it)");
        return;
    }
    let c = certs();
    let passwd = std::fs::read_to_string("/etc/passwd").expect("passwd")
        + "sysuser:x:2345:2345:test:/nonexistent:/usr/sbin/nologin\n";
    let shadow = std::fs::read_to_string("/etc/shadow").unwrap_or_default()
        + &format!("sysuser:{ALICE_HASH}:19000:0:99999:7:::\n");
    std::fs::write(c.path("passwd"), passwd).expect("passwd");
    std::fs::write(c.path("shadow"), shadow).expect("shadow");
    let conf = format!(
        "pki mx.example.org cert \"{mx}.crt\"\npki mx.example.org key \"{mx}.key\"\n\
         listen on 127.0.0.1 port @PORT@ smtps pki mx.example.org auth\n\
         action \"l\" mbox\nmatch from any for local action \"l\"\n",
        mx = c.p("mx"),
    );
    let script = format!(
        "mount --bind {} /etc/passwd && mount --bind {} /etc/shadow && exec \"$0\" \"$@\"",
        c.p("passwd"),
        c.p("shadow")
    );
    let prefix = ["unshare", "-m", "sh", "-c", script.as_str()];
    let run = |bin: &str| {
        let d = Daemon::launch(&prefix, bin, &conf, &[], Some("127.0.0.1:1"));
        let swaks = |pass: &str| {
            let out = Command::new("swaks")
                .args(["--server", &format!("127.0.0.1:{}", d.port), "--tlsc"])
                .args([
                    "--auth",
                    "PLAIN",
                    "--auth-user",
                    "sysuser",
                    "--auth-password",
                    pass,
                ])
                .args([
                    "--quit-after",
                    "AUTH",
                    "--ehlo",
                    "client.example",
                    "--timeout",
                    "20",
                ])
                .output()
                .expect("swaks");
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        let ok = swaks("alicepass");
        let bad = swaks("wrong");
        d.wait_log(|l| l.ends_with("smtp authentication user=sysuser result=permfail"));
        // The second session's end is logged a moment after swaks has exited.
        let t0 = std::time::Instant::now();
        while d
            .log()
            .iter()
            .filter(|l| l.ends_with("smtp disconnected reason=quit"))
            .count()
            < 2
            && t0.elapsed() < Duration::from_secs(10)
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        (ok, bad, normalized_session_log(&d.log()))
    };
    let (ok, bad, log) = run(env!("CARGO_BIN_EXE_smtpd"));
    assert!(ok.contains("235 2.0.0 Authentication succeeded"), "{ok}");
    assert!(bad.contains("535 Authentication failed"), "{bad}");
    assert!(
        log.iter()
            .any(|l| l == "smtp authentication user=sysuser result=ok"),
        "{log:?}"
    );
    if std::path::Path::new(TLS_SMTPD).exists() {
        let _one = real_lock();
        let (rok, rbad, rlog) = run(TLS_SMTPD);
        assert!(rok.contains("235 2.0.0 Authentication succeeded"), "{rok}");
        assert!(rbad.contains("535 Authentication failed"), "{rbad}");
        assert_eq!(rlog, log);
    }
}

/// `match from auth <t>`, `match auth`, `match !auth`, `masquerade`, `mask-src` and
/// `received-auth`, on mail submitted with smtplib.
#[test]
fn rules_on_auth_and_masquerade() {
    if skip() {
        return;
    }
    let c = certs();
    let uid = delivery_uid(2000);
    let conf = format!(
        "pki mx.example.org cert \"{mx}.crt\"\npki mx.example.org key \"{mx}.key\"\n\
         table creds file:{creds}\n\
         table sendertab {{ alice = \"alice@example.org\", bob = \"@example.org\" }}\n\
         table authusers {{ alice }}\n\
         table users {{ bob = \"{uid}:{uid}:@DIR@/bob\" }}\n\
         listen on 127.0.0.1 port @PORT@ tls pki mx.example.org auth-optional <creds> senders <sendertab> masquerade mask-src received-auth\n\
         action \"mail\" maildir \"@DIR@/bob/Maildir\" userbase <users>\n\
         action \"other\" maildir \"@DIR@/bob/Other\" userbase <users>\n\
         action \"anon\" maildir \"@DIR@/bob/Anon\" userbase <users>\n\
         match from auth <authusers> for domain \"example.org\" action \"mail\"\n\
         match auth for domain \"example.org\" action \"other\"\n\
         match !auth for domain \"example.org\" action \"anon\"\n",
        mx = c.p("mx"),
        creds = c.p("creds"),
    );
    let d = Daemon::start(&conf, &[]);
    user_dir(&d, "bob", uid);
    let script = r#"
import smtplib, ssl, sys
port, ca = int(sys.argv[1]), sys.argv[2]
ctx = ssl.create_default_context(cafile=ca); ctx.check_hostname = False
def send(user, pw, sender, subject):
    s = smtplib.SMTP('127.0.0.1', port, local_hostname='client.example')
    s.starttls(context=ctx)
    if user:
        s.login(user, pw)
    s.sendmail(sender, ['bob@example.org'],
               'From: Someone Else <someone@elsewhere.test>\r\nSubject: %s\r\n\r\nhi\r\n' % subject)
    s.quit()
send('alice', 'alicepass', 'alice@example.org', 'from alice')
send('bob', 'bobpass', 'bob@example.org', 'from bob')
send(None, None, 'anyone@example.net', 'anonymous')
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(d.port.to_string())
        .arg(c.p("ca.crt"))
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        d.log().join("\n")
    );
    let wait = |dir: &str| {
        let new = d.dir.path().join(format!("bob/{dir}/new"));
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while mail_texts(&new).is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let m = mail_texts(&new);
        assert_eq!(m.len(), 1, "{dir}: {}", d.log().join("\n"));
        m[0].clone()
    };
    let alice = wait("Maildir");
    assert!(alice.contains("Subject: from alice"), "{alice}");
    // masquerade: the From: address is the authenticated sender's, the display name kept.
    assert!(
        alice.contains("From: Someone Else <alice@example.org>"),
        "{alice}"
    );
    // mask-src: the client's address is not in the Received line.
    assert!(!alice.contains("127.0.0.1"), "{alice}");
    assert!(alice.contains(" auth=yes user=alice\n"), "{alice}");
    let bob = wait("Other");
    assert!(
        bob.contains("Subject: from bob") && bob.contains("From: Someone Else <bob@example.org>"),
        "{bob}"
    );
    let anon = wait("Anon");
    assert!(anon.contains("Subject: anonymous"), "{anon}");
    // Not authenticated: no masquerade, and received-auth says so.
    assert!(
        anon.contains("From: Someone Else <someone@elsewhere.test>"),
        "{anon}"
    );
    assert!(
        anon.contains("with ESMTPS id ") && anon.contains(":NO) auth=no\n"),
        "{anon}"
    );
}

/// `smtp ciphers`: TLS 1.2 takes the suites named; TLS 1.3 keeps its own, as with OpenSSL; a
/// suite rustls does not have is refused at start.
#[test]
fn smtp_ciphers_choose_tls_1_2_suites() {
    if skip() {
        return;
    }
    let c = certs();
    let conf = format!(
        "pki mx.example.org cert \"{mx}.crt\"\npki mx.example.org key \"{mx}.key\"\n\
         smtp ciphers \"ECDHE-RSA-AES128-GCM-SHA256\"\n\
         listen on 127.0.0.1 port @PORT@ tls pki mx.example.org\n\
         action \"l\" mbox\nmatch from any for local action \"l\"\n",
        mx = c.p("mx"),
    );
    let d = Daemon::start(&conf, &[]);
    let out = s_client(
        d.port,
        true,
        &["-tls1_2", "-CAfile", &c.p("ca.crt")],
        "QUIT\n",
    );
    assert!(out.contains("ECDHE-RSA-AES128-GCM-SHA256"), "{out}");
    d.wait_log(|l| l.ends_with("smtp tls ciphers=TLSv1.2:ECDHE-RSA-AES128-GCM-SHA256:128"));
    let out = s_client(
        d.port,
        true,
        &["-tls1_3", "-CAfile", &c.p("ca.crt")],
        "QUIT\n",
    );
    assert!(out.contains("TLS_AES_256_GCM_SHA384"), "{out}");
    drop(d);

    let path = c.path("ciphers.conf");
    std::fs::write(
        &path,
        conf.replace("ECDHE-RSA-AES128-GCM-SHA256", "AES256-SHA")
            .replace("@PORT@", &free_port().to_string()),
    )
    .expect("conf");
    let out = Command::new(env!("CARGO_BIN_EXE_smtpd"))
        .args(["-d", "-f"])
        .arg(&path)
        .env("SMTPD_SPOOL", c.path("spool"))
        .env("SMTPD_SOCKET", c.path("sock"))
        .output()
        .expect("smtpd");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("smtpd: smtp ciphers \"AES256-SHA\": \"AES256-SHA\" cannot be honoured: the TLS 1.2 suites available are ECDHE-ECDSA-AES256-GCM-SHA384:"), "{err}");
}
