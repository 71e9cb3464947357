//! The listener options the daemon honours without TLS or AUTH, over real TCP against the real
//! `smtpd`, side by side with OpenSMTPD 6.8.0p2 when it is installed (same config, same
//! dialogue): `hostname` (banner and Received), `no-dsn` (EHLO, MAIL parameters), `tag` (rules
//! match it), `mask-src` (Received without the client), `received-auth`, and `smtp limit
//! max-mails`; and `listen on socket tag T mask-src` for local submission.

mod common;

use common::*;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const CONFIG: &str = "smtp limit max-mails 2
listen on 127.0.0.1 port @PORT@ hostname mx.example.test tag \"in\" mask-src no-dsn received-auth
listen on socket tag \"local\" mask-src
table users { foo = \"UID:UID:@DIR@/mail\" }
action \"l\" maildir \"@DIR@/mail/%{user.username}\" userbase <users>
match from any tag \"in\" for domain \"example.org\" action \"l\"
match from any reject
";

/// The dialogue: banner, EHLO, a DSN parameter refused, two messages, a third refused.
fn dialogue(d: &Daemon) -> Vec<String> {
    let mut c = Client::connect(d.addr());
    let mut out = vec![c.reply()];
    out.push(c.cmd("EHLO client.example"));
    out.push(c.cmd("MAIL FROM:<alice@example.com> RET=HDRS"));
    for i in 0..3 {
        let r = c.cmd("MAIL FROM:<alice@example.com>");
        out.push(r.clone());
        if !r.starts_with("250") {
            break;
        }
        out.push(c.cmd("RCPT TO:<foo@example.org>"));
        out.push(c.cmd("DATA"));
        out.push(c.cmd(&format!("Subject: {}\r\n\r\nbody {}\r\n.", i, i)));
    }
    out.push(c.cmd("QUIT"));
    out
}

fn delivered(dir: &std::path::Path, n: usize) -> Vec<String> {
    let new = dir.join("mail/foo/new");
    let t0 = Instant::now();
    loop {
        let m = mail_texts(&new);
        if m.len() >= n || t0.elapsed() > Duration::from_secs(60) {
            return m;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The Received header of a delivered message, without its id and date.
fn received(text: &str) -> String {
    let mut lines = text.lines().skip_while(|l| !l.starts_with("Received:"));
    let mut out = String::new();
    if let Some(first) = lines.next() {
        out.push_str(first);
        for l in lines.take_while(|l| l.starts_with(['\t', ' '])) {
            out.push('\n');
            out.push_str(l);
        }
    }
    match out.find(" id ") {
        Some(i) => out[..i].to_string(),
        None => out,
    }
}

fn run(bin: &str) -> (Vec<String>, Vec<String>) {
    let uid = delivery_uid(1000);
    let conf = CONFIG.replace("UID", &uid.to_string());
    let mut d = Daemon::start_with(bin, &conf, &[]);
    user_dir(&d, "mail", uid);
    let replies = normalized_replies(&dialogue(&d));
    let mails = delivered(d.dir.path(), 2);
    d.stop();
    (replies, mails.iter().map(|m| received(m)).collect())
}

#[test]
fn listener_options_act_as_in_opensmtpd() {
    let (replies, received) = run(env!("CARGO_BIN_EXE_smtpd"));
    let joined = replies.join("\n");
    assert!(
        replies[0].starts_with("220 mx.example.test ESMTP"),
        "{}",
        joined
    );
    assert!(!replies[1].contains("DSN"), "no-dsn: {}", joined);
    assert!(
        replies[2].starts_with("5"),
        "RET= refused without DSN: {}",
        joined
    );
    // Two messages accepted (the tag rule matched), the third refused by max-mails.
    assert_eq!(
        replies
            .iter()
            .filter(|r| r.starts_with("250 2.0.0 MSGID"))
            .count(),
        2,
        "{}",
        joined
    );
    assert!(
        replies[replies.len() - 2].starts_with("452"),
        "max-mails: {}",
        joined
    );
    assert_eq!(received.len(), 2, "delivered: {:?}", received);
    for r in &received {
        // mask-src: no `from HELO (NAME [ADDR])` clause; hostname: the listener's name.
        assert!(r.starts_with("Received: \n\tby mx.example.test"), "{:?}", r);
        assert!(!r.contains("127.0.0.1"), "{}", r);
    }
    if real_available() {
        let _lock = real_lock();
        let (real_replies, real_received) = run(REAL_SMTPD);
        assert_eq!(replies, real_replies, "replies differ from OpenSMTPD's");
        assert_eq!(
            received, real_received,
            "Received lines differ from OpenSMTPD's"
        );
    } else {
        println!("SKIPPED (part): OpenSMTPD not compared (not installed or not root)");
    }
}

/// `hostnames <table>`: the banner, EHLO and Received name of a listener comes from the table,
/// looked up by the listener's own address; a listener whose address is not in it keeps the
/// `hostname`.
const HOSTNAMES: &str = "table names { \"127.0.0.1\" = \"mx.names.test\" }
listen on 127.0.0.1 port @PORT@ hostname fallback.test hostnames <names>
listen on 127.0.0.2 port @PORT@ hostname fallback.test hostnames <names>
table users { foo = \"UID:UID:@DIR@/mail\" }
action \"l\" maildir \"@DIR@/mail/%{user.username}\" userbase <users>
match from any for domain \"example.org\" action \"l\"
";

fn hostnames_run(bin: &str) -> (Vec<String>, Vec<String>) {
    let uid = delivery_uid(1000);
    let conf = HOSTNAMES.replace("UID", &uid.to_string());
    let mut d = Daemon::start_with(bin, &conf, &[]);
    user_dir(&d, "mail", uid);
    let mut out = Vec::new();
    let mut c = Client::connect(d.addr());
    out.push(c.reply());
    out.push(c.cmd("EHLO client.example"));
    c.cmd("MAIL FROM:<alice@example.com>");
    c.cmd("RCPT TO:<foo@example.org>");
    c.cmd("DATA");
    out.push(c.cmd("Subject: names\r\n\r\nbody\r\n."));
    c.cmd("QUIT");
    let mut other = connect_from("127.0.0.1", SocketAddr::new([127, 0, 0, 2].into(), d.port));
    out.push(other.reply());
    other.cmd("QUIT");
    let mails = delivered(d.dir.path(), 1);
    d.stop();
    (
        normalized_replies(&out),
        mails.iter().map(|m| received(m)).collect(),
    )
}

#[test]
fn hostnames_table_names_the_banner_per_listener_address() {
    let (replies, received) = hostnames_run(env!("CARGO_BIN_EXE_smtpd"));
    let joined = replies.join("");
    assert!(
        replies[0].starts_with("220 mx.names.test ESMTP"),
        "{}",
        joined
    );
    assert!(
        replies[1].starts_with("250-mx.names.test Hello"),
        "{}",
        joined
    );
    assert!(
        replies[3].starts_with("220 fallback.test ESMTP"),
        "{}",
        joined
    );
    assert_eq!(received.len(), 1, "{:?}", received);
    assert!(received[0].contains("by mx.names.test"), "{:?}", received);
    if require_real("the hostnames comparison with OpenSMTPD") {
        let _lock = real_lock();
        let (real_replies, real_received) = hostnames_run(REAL_SMTPD);
        assert_eq!(replies, real_replies, "replies differ from OpenSMTPD's");
        assert_eq!(received, real_received, "Received differs from OpenSMTPD's");
    }
}

/// `proxy-v2`: the PROXY header names the client; the session, its rules and its Received line
/// see that address; a bad header closes the connection with OpenSMTPD's line.
const PROXY: &str = "listen on 127.0.0.1 port @PORT@ hostname mx.example.test proxy-v2
table users { foo = \"UID:UID:@DIR@/mail\" }
action \"l\" maildir \"@DIR@/mail/%{user.username}\" userbase <users>
match from src 127.0.0.9 for domain \"example.org\" action \"l\"
match from any reject
";

fn proxy_header(src: [u8; 4], sport: u16) -> Vec<u8> {
    let mut h = vec![
        0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A, 0x21, 0x11,
    ];
    // Addresses (12 bytes) and one NOOP TLV (type 4, length 2), which is skipped.
    h.extend_from_slice(&17u16.to_be_bytes());
    h.extend_from_slice(&src);
    h.extend_from_slice(&[127, 0, 0, 1]);
    h.extend_from_slice(&sport.to_be_bytes());
    h.extend_from_slice(&25u16.to_be_bytes());
    h.extend_from_slice(&[0x04, 0x00, 0x02, 0xAA, 0xBB]);
    h
}

/// Lines about the proxy and the session's connection, with ids and pointers replaced.
fn proxy_lines(log: &[String]) -> Vec<String> {
    log.iter()
        .filter(|l| {
            l.contains("event=proxy")
                || l.contains(" event=closed ")
                || l.contains("smtp connected")
        })
        .map(|l| {
            let l = match l.find(" smtp ") {
                Some(16) => format!("ID{}", &l[16..]),
                _ => l.clone(),
            };
            match l.strip_prefix("proxy 0x") {
                Some(rest) => format!("proxy PTR{}", &rest[rest.find(' ').unwrap_or(0)..]),
                None => l,
            }
        })
        .map(|l| match l.find(" host=") {
            // The reverse name depends on the resolver each daemon has.
            Some(i) => l[..i].to_string(),
            None => l,
        })
        .collect()
}

fn proxy_run(bin: &str) -> (Vec<String>, Vec<String>, Vec<String>) {
    let uid = delivery_uid(1000);
    let conf = PROXY.replace("UID", &uid.to_string());
    let mut d = Daemon::start_with(bin, &conf, &[]);
    user_dir(&d, "mail", uid);
    let mut out = Vec::new();
    let mut c = Client::connect(d.addr());
    c.send(&proxy_header([127, 0, 0, 9], 50000));
    // The session starts after the reverse lookup of the proxied address.
    c.set_read_timeout(Duration::from_secs(60));
    out.push(c.reply());
    out.push(c.cmd("HELO client.example"));
    out.push(c.cmd("MAIL FROM:<alice@example.com>"));
    out.push(c.cmd("RCPT TO:<foo@example.org>"));
    out.push(c.cmd("DATA"));
    out.push(c.cmd("Subject: proxied\r\n\r\nbody\r\n."));
    out.push(c.cmd("QUIT"));
    // A client that is not a proxy: its SMTP is not a PROXY signature.
    let mut bad = Client::connect(d.addr());
    bad.send(b"EHLO not-a-proxy.example\r\n");
    // Dropped without a banner (a reset, as the unread line is thrown away).
    out.push(format!("after a bad header: {:?}", bad.reply()));
    let mails = delivered(d.dir.path(), 1);
    d.wait_log(|l| l.contains("event=closed"));
    d.stop();
    (
        normalized_replies(&out),
        mails.iter().map(|m| received(m)).collect(),
        proxy_lines(&d.log()),
    )
}

#[test]
fn proxy_v2_header_names_the_client() {
    let (replies, received, lines) = proxy_run(env!("CARGO_BIN_EXE_smtpd"));
    let joined = replies.join("");
    assert!(
        replies[0].starts_with("220 mx.example.test ESMTP"),
        "{}",
        joined
    );
    assert!(
        replies[3].starts_with("250 "),
        "from src 127.0.0.9 matched: {}",
        joined
    );
    assert!(replies[5].starts_with("250 2.0.0 MSGID"), "{}", joined);
    assert_eq!(replies[7], "after a bad header: \"\"", "{}", joined);
    assert_eq!(received.len(), 1, "{:?}", received);
    assert!(received[0].contains("[127.0.0.9]"), "{:?}", received);
    assert!(
        lines.contains(&"ID smtp connected address=127.0.0.9".to_string()),
        "{:?}",
        lines
    );
    assert!(
        lines.contains(
            &"proxy PTR event=closed address=127.0.0.1 reason=\"protocol error (invalid signature)\""
                .to_string()
        ),
        "{:?}",
        lines
    );
    if require_real("the proxy-v2 comparison with OpenSMTPD") {
        let _lock = real_lock();
        let (real_replies, real_received, real_lines) = proxy_run(REAL_SMTPD);
        assert_eq!(replies, real_replies, "replies differ from OpenSMTPD's");
        assert_eq!(received, real_received, "Received differs from OpenSMTPD's");
        assert_eq!(lines, real_lines, "log lines differ from OpenSMTPD's");
    }
}
