//! smtp(1), OpenSMTPD 6.8's small client that Debian installs as /usr/bin/smtp, against our
//! daemon: in clear, with STARTTLS (checked, and not with -C), smtps, AUTH; and where Debian's
//! /usr/bin/smtp is installed, its lines and exit statuses compared with ours on the same cases.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};

use common::certs::{unavailable, Certs};
use common::*;

const REAL_SMTP: &str = "/usr/bin/smtp";

fn ours() -> PathBuf {
    smtpctl().with_file_name("smtp")
}

/// Runs a client: its stderr lines (message ids made `ID`) and exit status.
fn run(bin: &str, args: &[&str], input: &str) -> (Vec<String>, i32) {
    let mut child = Command::new(bin)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{bin}: {e}"));
    if let Some(mut i) = child.stdin.take() {
        use std::io::Write;
        let _ = i.write_all(input.as_bytes());
    }
    let out = child.wait_with_output().expect("wait");
    let lines = String::from_utf8_lossy(&out.stderr)
        .lines()
        .map(|l| {
            // `250 2.0.0 0e7c2efb Message accepted for delivery`
            let w: Vec<&str> = l.split(' ').collect();
            match w.iter().position(|x| *x == "Message") {
                Some(i) if i > 0 && w[i - 1].len() == 8 => {
                    let mut w = w.clone();
                    w[i - 1] = "ID";
                    w.join(" ")
                }
                _ => l.to_string(),
            }
        })
        .collect();
    (lines, out.status.code().unwrap_or(-1))
}

/// Mail for `bob@ok.test` into a Maildir of the test's folder (never a system mailbox).
fn config(listen: &str) -> String {
    let uid = delivery_uid(1000);
    format!(
        "{listen}table users {{ bob = \"{uid}:{uid}:@DIR@/bob\" }}\n\
         action \"a\" maildir \"@DIR@/bob/Maildir\" userbase <users>\n\
         match from any for domain \"ok.test\" action \"a\"\n\
         match from any for domain \"no.test\" reject\n"
    )
}

fn start(listen: &str) -> Daemon {
    let d = Daemon::start(&config(listen), &[]);
    user_dir(&d, "bob", delivery_uid(1000));
    d
}

const PLAIN: &str = "listen on 127.0.0.1 port @PORT@\n";

const MESSAGE: &str = "Subject: smtp(1)\r\n\r\nhello\r\n.leading dot\n";

#[test]
fn in_clear_as_debians_smtp() {
    let d = start(PLAIN);
    let s = format!("127.0.0.1:{}", d.port);
    let closed = format!("127.0.0.1:{}", free_port());
    let tls = format!("smtp+tls://{s}");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["-s", &s, "-F", "alice@ok.test", "bob@ok.test"],
            MESSAGE,
        ),
        (vec!["-s", &s, "nobody@no.test"], MESSAGE),
        (vec!["-n", "-s", &s], ""),
        (vec!["-n", "-s", &closed], ""),
        (vec!["-s", &closed, "bob@ok.test"], MESSAGE),
        (vec!["-n", "-s", &tls], ""),
        (vec!["-n", "-s", "foo://x"], ""),
        (vec!["-h"], ""),
    ];
    let mut got = Vec::new();
    for (args, input) in &cases {
        got.push(run(ours().to_str().expect("path"), args, input));
    }
    let want: Vec<(Vec<String>, i32)> = [
        (
            vec!["bob@ok.test: EOM: 250 2.0.0 ID Message accepted for delivery"],
            0,
        ),
        (
            vec!["nobody@no.test: RCPT: 550 Invalid recipient: <nobody@no.test>"],
            0,
        ),
        (vec![], 0),
        (vec!["connection error: Connection refused"], 0),
        (
            vec!["connection error: Connection refused", "smtp: no more host"],
            1,
        ),
        (vec!["missing feature: TLS not supported by remote host"], 0),
        (vec!["smtp: invalid url scheme foo"], 1),
        (
            vec!["usage: smtp [-Chnv] [-F from] [-H helo] [-s server] [-S name] rcpt ..."],
            1,
        ),
    ]
    .into_iter()
    .map(|(l, c)| (l.into_iter().map(String::from).collect(), c))
    .collect();
    assert_eq!(got, want);
    // The message as read: CRLF made LF, the leading dot kept (dot-stuffed on the wire).
    d.wait_log(|l| l.contains("from=<alice@ok.test>") && l.contains("result=Ok"));
    let texts = mail_texts(&d.dir.path().join("bob/Maildir/new"));
    assert_eq!(texts.len(), 1, "{texts:?}");
    assert!(
        texts[0].ends_with("\nhello\n.leading dot\n"),
        "{}",
        texts[0]
    );

    if require(
        std::path::Path::new(REAL_SMTP).exists(),
        "Debian's /usr/bin/smtp (opensmtpd) is not installed: ours is checked against the lines above",
    ) {
        for ((args, input), mine) in cases.iter().zip(&got) {
            assert_eq!(&run(REAL_SMTP, args, input), mine, "smtp {args:?}");
        }
    }
}

/// Where ours differs on purpose: 6.8's client stops at a refused recipient and sends the
/// message to none (exit 0, nothing said of the others); ours sends it to the accepted ones.
#[test]
fn a_refused_recipient_does_not_drop_the_others() {
    let d = start(PLAIN);
    let s = format!("127.0.0.1:{}", d.port);
    let (lines, code) = run(
        ours().to_str().expect("path"),
        &["-s", &s, "bob@ok.test", "nobody@no.test"],
        MESSAGE,
    );
    assert_eq!(
        lines,
        [
            "bob@ok.test: EOM: 250 2.0.0 ID Message accepted for delivery",
            "nobody@no.test: RCPT: 550 Invalid recipient: <nobody@no.test>"
        ]
    );
    assert_eq!(code, 0);
}

#[test]
fn starttls_smtps_and_auth() {
    if let Some(why) = unavailable() {
        skip(why);
        return;
    }
    let c = Certs::new();
    c.ca("ca", "Test CA").leaf(
        "mx",
        Some("ca"),
        "mx.example.org",
        &["mx.example.org"],
        "serverAuth",
        false,
    );
    let enc = Command::new(smtpctl())
        .args(["encrypt", "secret"])
        .output()
        .expect("smtpctl encrypt");
    let hash = String::from_utf8_lossy(&enc.stdout).trim().to_string();
    std::fs::write(c.path("creds"), format!("alice {hash}\n")).expect("creds");
    let smtps_port = free_port();
    let listen = format!(
        "pki mx.example.org cert \"{mx}.crt\"\n\
         pki mx.example.org key \"{mx}.key\"\n\
         table creds file:{creds}\n\
         listen on 127.0.0.1 port @PORT@ tls pki mx.example.org auth-optional <creds>\n\
         listen on 127.0.0.1 port {smtps_port} smtps pki mx.example.org auth <creds>\n",
        mx = c.p("mx"),
        creds = c.p("creds"),
    );
    let d = start(&listen);
    let bin = ours();
    let bin = bin.to_str().expect("path");
    let starttls = format!("smtp+tls://127.0.0.1:{}", d.port);
    // Our CA is in no system bundle: the certificate does not verify, as 6.8 says.
    assert_eq!(
        run(bin, &["-n", "-s", &starttls], ""),
        (
            vec!["connection error: Invalid server certificate".to_string()],
            0
        )
    );
    let ok = |l: &str| l == "bob@ok.test: EOM: 250 2.0.0 ID Message accepted for delivery";
    let (lines, code) = run(bin, &["-C", "-s", &starttls, "bob@ok.test"], MESSAGE);
    assert!(lines.iter().any(|l| ok(l)) && code == 0, "{lines:?}");
    d.wait_log(|l| l.contains(" smtp tls ciphers="));
    let smtps = format!("smtps://alice:secret@127.0.0.1:{smtps_port}");
    let (lines, code) = run(bin, &["-C", "-s", &smtps, "bob@ok.test"], MESSAGE);
    assert!(lines.iter().any(|l| ok(l)) && code == 0, "{lines:?}");
    d.wait_log(|l| l.contains(" smtp authentication user=alice result=ok"));
    let bad = format!("smtps://alice:wrong@127.0.0.1:{smtps_port}");
    let (lines, code) = run(bin, &["-C", "-s", &bad, "bob@ok.test"], MESSAGE);
    assert_eq!(
        (lines, code),
        (
            vec![
                "rejected by server: 535 Authentication failed".to_string(),
                "smtp: no more host".to_string()
            ],
            1
        )
    );
}
