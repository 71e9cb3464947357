//! Dialogue tests. Cases marked ✔ were replayed against the real
//! /usr/sbin/smtpd 6.8.0p2 (listener `hostname mx.test`, default limits,
//! rule `match from any for any action "l"`) with the same chunking, and the
//! expected bytes are what it answered.

use std::net::{IpAddr, Ipv4Addr};

use rsmtpd_protocol::received::{PeerAddr, PeerCert, TlsInfo};
use rsmtpd_protocol::server::*;
use rsmtpd_protocol::Mailaddr;

const DATE: &str = "Wed, 25 Nov 2026 11:36:08 +0000 (UTC)";

type FilterFn = Box<dyn FnMut(FilterPhase, &str) -> FilterDecision>;

struct Harness {
    s: Session,
    out: Vec<u8>,
    logs: Vec<String>,
    message: Vec<u8>,
    closed: Option<CloseReason>,
    requests: Vec<Request>,
    rollbacks: Vec<u32>,
    filter: FilterFn,
    auth: LookupResult,
    traces: Vec<String>,
    /// Lines the session gave the data filter chain, and whether it ended the message.
    filter_in: Vec<Vec<u8>>,
    filter_ended: bool,
}

fn cfg() -> SessionConfig {
    SessionConfig {
        hostname: "mx.test".into(),
        ..SessionConfig::default()
    }
}

fn conn() -> ConnectionInfo {
    ConnectionInfo {
        peer: PeerAddr::Inet(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        rdns: "localhost".into(),
        smtpname: None,
        local_enqueue: false,
    }
}

impl Harness {
    fn new(cfg: SessionConfig) -> Harness {
        Harness::with(cfg, conn())
    }
    fn with(cfg: SessionConfig, conn: ConnectionInfo) -> Harness {
        let mut h = Harness {
            s: Session::new(cfg, conn),
            out: Vec::new(),
            logs: Vec::new(),
            message: Vec::new(),
            closed: None,
            requests: Vec::new(),
            rollbacks: Vec::new(),
            filter: Box::new(|_, _| FilterDecision::Proceed),
            auth: LookupResult::Ok,
            traces: Vec::new(),
            filter_in: Vec::new(),
            filter_ended: false,
        };
        h.pump();
        h
    }

    fn pump(&mut self) {
        while let Some(ev) = self.s.poll_event() {
            match ev {
                Event::Reply(r) => self.out.extend_from_slice(&r.to_bytes()),
                Event::Log(l) => self.logs.push(l.line(0x0213f7f2d603b6db)),
                Event::MessageData(d) => self.message.extend_from_slice(&d),
                Event::Rollback { msgid } => self.rollbacks.push(msgid),
                Event::Close(r) => self.closed = Some(r),
                // Report events are checked in tests/reports.rs.
                Event::Report(_) => {}
                Event::Trace(t) => self.traces.push(t.line("PTR")),
                Event::FilterData(l) => self.filter_in.push(l),
                Event::FilterDataEnd => self.filter_ended = true,
                Event::StartTls => {
                    let info = TlsInfo {
                        version: "TLSv1.3".into(),
                        cipher: "TLS_AES_256_GCM_SHA384".into(),
                        bits: 256,
                        peer_cert: PeerCert::None,
                    };
                    self.s.tls_established(info).expect("tls expected");
                }
                Event::Request(req) => {
                    self.requests.push(req.clone());
                    let r = match req {
                        Request::Filter { phase, param } => {
                            let d = (self.filter)(phase, &param);
                            self.s.filter_result(d)
                        }
                        Request::CheckSender { .. } => self.s.sender_result(LookupResult::Ok),
                        Request::CreateMessage => self.s.message_created(Ok(0x14f8ba55)),
                        Request::CheckRecipient { rcpt, .. } => {
                            let res = match rcpt.rcpt.user.as_str() {
                                "bad" => RecipientResult::Refused("550 Invalid recipient".into()),
                                "loop" => RecipientResult::Refused(
                                    "524 5.2.4 Mailing list expansion problem".into(),
                                ),
                                "envfail" => RecipientResult::EnvelopeFailed,
                                _ => RecipientResult::Accepted,
                            };
                            self.s.recipient_result(res)
                        }
                        Request::OpenMessage { .. } => self.s.message_opened(Ok(MessageOpened {
                            date: DATE.into(),
                            message_id_uid: 0xf1550c1610795978,
                        })),
                        Request::CommitMessage { .. } => self.s.commit_result(Ok(())),
                        Request::Authenticate { .. } => self.s.auth_result(self.auth),
                    };
                    r.expect("answer accepted");
                }
            }
        }
    }

    fn send(&mut self, b: &[u8]) -> String {
        let start = self.out.len();
        if self.s.wants_read() {
            self.s.receive(b);
        }
        self.pump();
        String::from_utf8_lossy(&self.out[start..]).into_owned()
    }
}

const BANNER: &str = "220 mx.test ESMTP OpenSMTPD\r\n";
const HELO_A: &str = "250 mx.test Hello a [127.0.0.1], pleased to meet you\r\n";

/// (chunks, expected replies after the banner, closed?)
fn dialogues() -> Vec<(Vec<&'static [u8]>, String, bool)> {
    let na = "503 5.5.1 Invalid command: Command not allowed at this point.\r\n";
    let unrec = "500 5.5.1 Invalid command: Command unrecognized\r\n";
    let noargs = "500 5.5.4 Invalid command arguments: command does not accept arguments.\r\n";
    let bad_dom = "501 5.5.4 Invalid command arguments: Invalid domain name\r\n";
    let pipe = "500 5.5.1 Invalid command: Pipelining not supported\r\n";
    let ok = "250 2.0.0 Ok\r\n";
    let rok = "250 2.1.5 Destination address valid: Recipient ok\r\n";
    let s = |x: &str| x.to_string();
    vec![
        (vec![b"HELO a\r\n"], s(HELO_A), false),                                         // ✔
        (vec![b"HELO a\\bc\r\n"], s("250 mx.test Hello a\\bc [127.0.0.1], pleased to meet you\r\n"), false), // ✔
        (vec![b"HELO -a\r\n"], s(bad_dom), false),                                      // ✔
        (vec![b"HELO foo \r\n"], s(bad_dom), false),                                    // ✔
        (vec![b"HELO   foo\r\n"], s("250 mx.test Hello foo [127.0.0.1], pleased to meet you\r\n"), false), // ✔
        (vec![b"HELO\tfoo\r\n"], s(unrec), false),                                      // ✔
        (vec![b"HELO \r\n"], s(bad_dom), false),                                        // ✔
        (vec![b"HELO\r\n"], s("501 5.5.1 Invalid command: HELO requires domain name\r\n"), false), // ✔
        (vec![b"EHLO\r\n"], s("501 5.5.1 Invalid command: EHLO requires domain name\r\n"), false),
        (vec![b"HELO foo\x00bar\r\n"], s("250 mx.test Hello foo [127.0.0.1], pleased to meet you\r\n"), false), // ✔
        (vec![b"NOOP \r\n"], s(noargs), false),                                         // ✔
        (vec![b"NOOP\x00 x\r\n"], s(ok), false),                                        // ✔
        (vec![b"EHLO foo\r\r\n"], s(bad_dom), false),                                   // ✔
        (
            vec![b"EHLO foo\n"],
            s("250-mx.test Hello foo [127.0.0.1], pleased to meet you\r\n250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250-SIZE 36700160\r\n250-DSN\r\n250 HELP\r\n"),
            false,
        ), // ✔
        (vec![b"WIZ\r\n"], s("500 5.5.1 Invalid command: this feature is not supported yet ;-)\r\n"), false), // ✔
        (
            vec![b"HELP\r\n"],
            s("214-2.0.0 This is OpenSMTPD\r\n214-2.0.0 To report bugs in the implementation, please contact bugs@openbsd.org\r\n214-2.0.0 with full details\r\n214 2.0.0 End of HELP info\r\n"),
            false,
        ), // ✔
        (vec![b"HELP me\r\n"], s(noargs), false), // ✔
        (vec![b".\r\n"], s(unrec), false),        // ✔
        (vec![b"RSET\r\n"], s(na), false),        // ✔
        (vec![b"QUIT\r\n"], s("221 2.0.0 Bye\r\n"), true), // ✔
        (vec![b"MAIL FROM:<a@b>\r\n"], s(na), false), // ✔
        (vec![b"STARTTLS\r\n"], s(na), false),    // ✔
        (vec![b"AUTH PLAIN\r\n"], s(na), false),  // ✔
        (vec![b"HELO a\r\n", b"STARTTLS\r\n"], format!("{HELO_A}503 5.5.1 Invalid command: Command not supported\r\n"), false), // ✔
        (vec![b"HELO a\r\n", b"STARTTLS x\r\n"], format!("{HELO_A}503 5.5.1 Invalid command: Command not supported\r\n"), false), // ✔
        (vec![b"HELO a\r\n", b"AUTH PLAIN\r\n"], format!("{HELO_A}503 5.5.1 Invalid command: Command not supported\r\n"), false), // ✔
        (vec![b"HELO a\r\n", b"AUTH\r\n"], format!("{HELO_A}503 5.5.1 Invalid command: Command not supported\r\n"), false), // ✔
        (vec![b"HELO a\r\n", b"HELO b\r\n"], format!("{HELO_A}503 5.5.1 Invalid command: Already identified\r\n"), false), // ✔
        (vec![b"HELO a\r\n", b"MAIL FROM:<>\r\n"], format!("{HELO_A}{ok}"), false), // ✔
        (vec![b"HELO a\r\n", b"MAIL FROM :<a@b>\r\n"], format!("{HELO_A}{unrec}"), false), // ✔
        (vec![b"HELO a\r\n", b"MAIL FROM:a@b\r\n"], format!("{HELO_A}553 5.1.0 Sender address syntax error\r\n"), false), // ✔
        (
            vec![b"HELO a\r\n", b"MAIL FROM:<a@b>x\r\n"],
            format!("{HELO_A}503 5.5.4 Invalid command arguments: Unsupported option x\r\n"),
            false,
        ), // ✔
        (vec![b"HELO a\r\n", b"MAIL FROM:<a@b>\r\n", b"MAIL FROM:<a@b>\r\n"], format!("{HELO_A}{ok}{na}"), false), // ✔
        (
            vec![b"HELO a\r\n", b"MAIL FROM:<a@b>\r\n", b"RCPT TO:<root>\r\n", b"RCPT TO:<root@mx.test> NOTIFY=NEVER\r\n", b"RCPT TO:<root@mx.test> NOTIFY=SUCCESS\r\n"],
            format!("{HELO_A}{ok}{rok}{rok}553 NOTIFY option NEVER cannot be combined with other options\r\n"),
            false,
        ), // ✔ (sticky NOTIFY)
        (
            vec![b"HELO a\r\n", b"MAIL FROM:<a@b>\r\n", b"RCPT TO:<foo@mx.test> ORCPT=bad..x@y\r\n", b"RCPT TO:<foo@mx.test> XX=1\r\n", b"RCPT TO:<>\r\n", b"RCPT TO:<bad@mx.test>\r\n", b"RCPT TO:<loop>\r\n"],
            format!("{HELO_A}{ok}553 ORCPT address syntax error\r\n503 Unsupported option XX=1\r\n501 5.1.3 Recipient address syntax error\r\n550 Invalid recipient: <bad@mx.test>\r\n524 5.2.4 Mailing list expansion problem: <loop@mx.test>\r\n"),
            false,
        ), // ✔
        (
            vec![b"HELO a\r\n", b"MAIL FROM:<a@b>\r\n", b"DATA\r\n", b"DATA x\r\n", b"RSET x\r\n"],
            format!("{HELO_A}{ok}503 5.5.4 Invalid command arguments: No recipient specified\r\n{noargs}{noargs}"),
            false,
        ), // ✔
        (
            vec![b"HELO a\r\n", b"MAIL FROM:<a@b>\r\n", b"RCPT TO:<root>\r\n", b"DATA\r\n", b"Subject: x\r\n\r\nhi\r\n.\r\n", b"QUIT\r\n"],
            format!("{HELO_A}{ok}{rok}354 Enter mail, end with \".\" on a line by itself\r\n250 2.0.0 14f8ba55 Message accepted for delivery\r\n221 2.0.0 Bye\r\n"),
            true,
        ), // ✔
        (
            vec![b"HELO a\r\n", b"MAIL FROM:<a@b>\r\n", b"RCPT TO:<root>\r\n", b"DATA\r\n", b"Subject: x\r\n\r\nhi\r\n.\r\nNOOP\r\n"],
            format!("{HELO_A}{ok}{rok}354 Enter mail, end with \".\" on a line by itself\r\n{pipe}"),
            true,
        ), // ✔ shape: binary gives the same pipelining refusal after the dot
        (
            vec![b"HELO a\r\n", b"MAIL FROM:<a@b>\r\n", b"RCPT TO:<root>\r\n", b"DATA\r\n", b"hello no header\r\n.\r\n"],
            format!("{HELO_A}{ok}{rok}354 Enter mail, end with \".\" on a line by itself\r\n550 5.7.1 Delivery not authorized, message refused: Message is not RFC 2822 compliant\r\n"),
            false,
        ),
        (vec![b"EHLO a\r\nNOOP\r\n"], s(pipe), true), // ✔
        (vec![b"NOOP\r\nNOOP\r\n"], s(pipe), true),   // ✔
        (vec![b"NOOP\r\nNO"], s(pipe), true),         // ✔
        (vec![b"NOOP\r"], s(""), false),              // ✔
        (vec![b"HELO a\r\n", b"MAIL FROM:<a@b>\r\n", b"RSET\r\n", b"RCPT TO:<foo>\r\n"], format!("{HELO_A}{ok}250 2.0.0 Reset state\r\n{na}"), false), // ✔
        (vec![b"X\r\n"], s(unrec), false),
        (vec![b"VRFY root\r\n"], s(unrec), false),
        (vec![b"EXPN root\r\n"], s(unrec), false),
    ]
}

#[test]
fn dialogue_table() {
    for (chunks, want, closes) in dialogues() {
        let mut h = Harness::new(cfg());
        assert_eq!(String::from_utf8_lossy(&h.out), BANNER);
        let mut got = String::new();
        for c in &chunks {
            got.push_str(&h.send(c));
        }
        assert_eq!(got, want, "{chunks:?}");
        assert_eq!(h.closed.is_some(), closes, "{chunks:?}");
    }
}

#[test]
fn command_line_limits() {
    // ✔ 2047 chars pass the length check, 2048 do not (CR excluded).
    let mut h = Harness::new(cfg());
    let line = format!("NOOP {}\r\n", "x".repeat(2042));
    assert_eq!(
        h.send(line.as_bytes()),
        "500 5.5.4 Invalid command arguments: command does not accept arguments.\r\n"
    );
    let line = format!("NOOP {}\r\n", "x".repeat(2043));
    assert_eq!(
        h.send(line.as_bytes()),
        "500 5.0.0 Command line too long\r\n"
    );
    assert_eq!(h.closed, Some(CloseReason::Quit));
    assert!(h
        .logs
        .last()
        .is_some_and(|l| l.ends_with("smtp bad-input result=\"500 5.0.0 Command line too long\"")));

    let mut h = Harness::new(cfg());
    let long = vec![b'a'; 70000];
    assert_eq!(h.send(&long), "500 5.0.0 Line too long\r\n");
    assert_eq!(h.closed, Some(CloseReason::Quit));
}

#[test]
fn full_message_content() {
    let mut h = Harness::new(cfg());
    h.send(b"EHLO client.test\r\n");
    h.send(b"MAIL FROM:<a@b>\r\n");
    h.send(b"RCPT TO:<alice@localhost>\r\n");
    assert!(h.send(b"DATA\r\n").starts_with("354 "));
    let r = h.send(b"From: x\r\nTo: bob, \"Carol, X\" <carol>\r\nBcc: secret\r\n folded\r\n\r\n..dot\r\nbare\rcr\r\n.\r\n");
    assert_eq!(r, "250 2.0.0 14f8ba55 Message accepted for delivery\r\n");
    let want = format!(
        "Received: from client.test (localhost [127.0.0.1])\n\tby mx.test (OpenSMTPD) with ESMTP id 14f8ba55\n\tfor <alice@localhost>;\n\t{DATE}\n\
         From: x@mx.test\nTo: bob@mx.test, \"Carol, X\" <carol@mx.test>\n\n.dot\nbare\rcr\n"
    );
    assert_eq!(String::from_utf8_lossy(&h.message), want);
    let msg_log = h
        .logs
        .iter()
        .find(|l| l.contains("smtp message"))
        .expect("message log");
    assert_eq!(
        msg_log,
        &format!(
            "0213f7f2d603b6db smtp message msgid=14f8ba55 size={} nrcpt=1 proto=ESMTP",
            want.len()
        )
    );
    assert_eq!(
        envelope_log_line(
            1,
            0x14f8ba5553b2bad6,
            &Mailaddr::new("a", "b"),
            &Mailaddr::new("alice", "localhost")
        ),
        "0000000000000001 smtp envelope evpid=14f8ba5553b2bad6 from=<a@b> to=<alice@localhost>"
    );
    // A second transaction works and the mail count goes up.
    h.send(b"MAIL FROM:<>\r\n");
    h.send(b"RCPT TO:<x>\r\n");
    h.send(b"RCPT TO:<y>\r\n");
    h.message.clear();
    h.send(b"DATA\r\n");
    h.send(b"\r\nbody\r\n.\r\n");
    assert!(String::from_utf8_lossy(&h.message).contains("id 14f8ba55;\n\t"));
}

#[test]
fn smuggling_through_session() {
    let mut h = Harness::new(cfg());
    h.send(b"HELO a\r\n");
    h.send(b"MAIL FROM:<a@b>\r\n");
    h.send(b"RCPT TO:<root>\r\n");
    h.send(b"DATA\r\n");
    // OpenSMTPD would end the message at `\n.\r\n` and then refuse the rest
    // as pipelining; here it stays content, nothing is answered yet.
    assert_eq!(
        h.send(b"Subject: x\r\n\r\nhi\n.\r\nMAIL FROM:<evil@x>\r\nRCPT TO:<victim>\r\nDATA\r\n"),
        ""
    );
    assert_eq!(
        h.send(b"\r\n.\r\n"),
        "250 2.0.0 14f8ba55 Message accepted for delivery\r\n"
    );
    assert!(String::from_utf8_lossy(&h.message)
        .contains("hi\n.\nMAIL FROM:<evil@x>\nRCPT TO:<victim>\nDATA\n\n"));
    assert_eq!(
        h.requests
            .iter()
            .filter(|r| matches!(r, Request::CreateMessage))
            .count(),
        1
    );
}

#[test]
fn message_too_big() {
    let mut h = Harness::new(SessionConfig {
        max_message_size: 10,
        ..cfg()
    });
    for c in [
        &b"HELO a\r\n"[..],
        b"MAIL FROM:<a@b>\r\n",
        b"RCPT TO:<r>\r\n",
        b"DATA\r\n",
    ] {
        h.send(c);
    }
    let r = h.send(b"A: 12345\r\n\r\nmore\r\n.\r\n");
    assert_eq!(
        r,
        "554 5.3.4 Message too big for system: Transaction failed, message too big\r\n"
    ); // ✔ text
    assert_eq!(h.rollbacks, vec![0x14f8ba55]);
    assert!(h.logs.iter().any(|l| l.ends_with("failed-command command=\"DATA\" result=\"554 5.3.4 Message too big for system: Transaction failed, message too big\"")));
    // Back to "after HELO".
    assert_eq!(h.send(b"MAIL FROM:<a@b>\r\n"), "250 2.0.0 Ok\r\n");
}

#[test]
fn failed_command_log_escaping() {
    // ✔ the exact line the binary logged for these bytes.
    let mut h = Harness::new(cfg());
    h.send(b"XYZ\tx\x01\xe9\\ \"q\"\r\x7f\x00\x0b\r\n");
    assert_eq!(
        h.logs,
        vec!["0213f7f2d603b6db smtp failed-command command=\"XYZ\tx\\^A\\M-i\\\\ \"q\"\r\\^?\" result=\"500 5.5.1 Invalid command: Command unrecognized\"".to_string()]
    );
}

#[test]
fn limits() {
    let mut h = Harness::new(SessionConfig {
        max_recipients: 2,
        max_mails: 1,
        ..cfg()
    });
    h.send(b"HELO a\r\n");
    h.send(b"MAIL FROM:<a@b>\r\n");
    h.send(b"RCPT TO:<r1>\r\n");
    h.send(b"RCPT TO:<r2>\r\n");
    assert_eq!(
        h.send(b"RCPT TO:<r3>\r\n"),
        "451 4.5.3 Too many recipients: Too many recipients\r\n"
    );
    h.send(b"DATA\r\n");
    h.send(b".\r\n");
    assert_eq!(
        h.send(b"MAIL FROM:<a@b>\r\n"),
        "452 4.5.3 Too many recipients: Too many messages sent\r\n"
    );
}

#[test]
fn recipient_failures() {
    let mut h = Harness::new(cfg());
    h.send(b"HELO a\r\n");
    h.send(b"MAIL FROM:<a@b>\r\n");
    assert_eq!(
        h.send(b"RCPT TO:<envfail>\r\n"),
        "421 4.3.0 Temporary failure\r\n"
    );
    assert_eq!(h.closed, Some(CloseReason::Quit));
    assert_eq!(h.rollbacks, vec![0x14f8ba55]);
}

#[test]
fn filters() {
    let mut h = Harness::new(SessionConfig {
        filtered: true,
        ..cfg()
    });
    assert!(
        matches!(h.requests.first(), Some(Request::Filter { phase: FilterPhase::Connect, param }) if param == "127.0.0.1")
    );
    h.filter = Box::new(|phase, param| match (phase, param) {
        (FilterPhase::MailFrom, p) if p.contains("spam") => {
            FilterDecision::Reject("550 go away".into())
        }
        (FilterPhase::RcptTo, p) if p.contains("junk") => FilterDecision::Junk,
        (FilterPhase::RcptTo, p) if p.contains("rewrite") => {
            FilterDecision::Rewrite("<other@x.test>".into())
        }
        (FilterPhase::Noop, _) => FilterDecision::Reject("bogus".into()),
        _ => FilterDecision::Proceed,
    });
    assert_eq!(h.send(b"HELO a\r\n"), HELO_A);
    assert_eq!(h.send(b"MAIL FROM:<spam@x>\r\n"), "550 go away\r\n");
    assert_eq!(h.send(b"MAIL FROM:<a@b>\r\n"), "250 2.0.0 Ok\r\n");
    h.send(b"RCPT TO:<junk@x>\r\n");
    h.send(b"RCPT TO:<rewrite@x>\r\n");
    assert_eq!(
        h.s.recipients(),
        &[Mailaddr::new("junk", "x"), Mailaddr::new("other", "x.test")]
    );
    h.send(b"DATA\r\n");
    assert!(String::from_utf8_lossy(&h.message).starts_with("X-Spam: Yes\nReceived: "));
    h.send(b".\r\n");
    assert_eq!(h.send(b"NOOP\r\n"), "421 Internal server error\r\n");
    assert_eq!(h.closed, Some(CloseReason::Quit));

    // Connect-phase rejection: no banner, HELO refused as "not allowed".
    let mut h2 = Harness {
        filter: Box::new(|_, _| FilterDecision::Reject("550 not you".into())),
        ..Harness::new_pending(SessionConfig {
            filtered: true,
            ..cfg()
        })
    };
    h2.pump();
    assert_eq!(String::from_utf8_lossy(&h2.out), "550 not you\r\n");
    h2.filter = Box::new(|_, _| FilterDecision::Proceed);
    assert_eq!(
        h2.send(b"HELO a\r\n"),
        "503 5.5.1 Invalid command: Command not allowed at this point.\r\n"
    );
}

impl Harness {
    /// A harness whose first events are not answered yet.
    fn new_pending(cfg: SessionConfig) -> Harness {
        Harness {
            s: Session::new(cfg, conn()),
            out: Vec::new(),
            logs: Vec::new(),
            message: Vec::new(),
            closed: None,
            requests: Vec::new(),
            rollbacks: Vec::new(),
            filter: Box::new(|_, _| FilterDecision::Proceed),
            auth: LookupResult::Ok,
            traces: Vec::new(),
            filter_in: Vec::new(),
            filter_ended: false,
        }
    }
}

#[test]
fn starttls_and_auth() {
    let tls_cfg = SessionConfig {
        starttls: true,
        auth: true,
        auth_required: true,
        ..cfg()
    };
    let mut h = Harness::new(tls_cfg.clone());
    let ehlo = h.send(b"EHLO a\r\n");
    assert!(ehlo.contains("250-STARTTLS\r\n") && !ehlo.contains("AUTH"));
    assert_eq!(
        h.send(b"MAIL FROM:<a@b>\r\n"),
        "530 5.5.1 Invalid command: Must issue an AUTH command first\r\n"
    );
    assert_eq!(
        h.send(b"AUTH PLAIN\r\n"),
        "503 5.5.1 Invalid command: Command not supported\r\n"
    ); // ✔
       // Pipelined bytes after STARTTLS are refused (the classic injection).
    let mut p = Harness::new(tls_cfg.clone());
    p.send(b"EHLO a\r\n");
    assert_eq!(
        p.send(b"STARTTLS\r\nMAIL FROM:<x@y>\r\n"),
        "500 5.5.1 Invalid command: Pipelining not supported\r\n"
    );

    assert_eq!(h.send(b"STARTTLS\r\n"), "220 2.0.0 Ready to start TLS\r\n");
    // HELO was cleared by the handshake.
    assert_eq!(
        h.send(b"MAIL FROM:<a@b>\r\n"),
        "503 5.5.1 Invalid command: Command not allowed at this point.\r\n"
    );
    let ehlo = h.send(b"EHLO a\r\n");
    assert!(!ehlo.contains("STARTTLS") && ehlo.contains("250-AUTH PLAIN LOGIN\r\n"));
    assert_eq!(
        h.send(b"STARTTLS\r\n"),
        "503 5.5.1 Invalid command: Channel already secured\r\n"
    );
    assert_eq!(
        h.send(b"AUTH\r\n"),
        "501 5.5.4 Invalid command arguments: No parameters given\r\n"
    );
    assert_eq!(
        h.send(b"AUTH CRAM-MD5\r\n"),
        "504 5.7.4 Security features not supported: AUTH method \"CRAM-MD5\" not supported\r\n"
    );
    assert_eq!(h.send(b"AUTH PLAIN\r\n"), "334 \r\n");
    assert_eq!(h.send(b"*\r\n"), "501 5.5.2 Syntax error: Syntax error\r\n");
    assert!(h
        .logs
        .last()
        .is_some_and(|l| l.contains("command=\"AUTH PLAIN (...)\"")));
    h.auth = LookupResult::PermFail;
    assert_eq!(
        h.send(b"AUTH PLAIN AGZvbwBiYXI=\r\n"),
        "535 Authentication failed\r\n"
    );
    assert!(h.requests.contains(&Request::Authenticate {
        username: b"foo".to_vec(),
        password: Secret::new(b"bar".to_vec())
    }));
    h.auth = LookupResult::Ok;
    assert_eq!(h.send(b"AUTH LOGIN\r\n"), "334 VXNlcm5hbWU6\r\n");
    assert_eq!(h.send(b"Zm9v\r\n"), "334 UGFzc3dvcmQ6\r\n");
    assert_eq!(
        h.send(b"YmFy\r\n"),
        "235 2.0.0 Authentication succeeded\r\n"
    );
    assert!(h
        .logs
        .iter()
        .any(|l| l.ends_with("smtp authentication user=foo result=ok")));
    assert_eq!(
        h.send(b"AUTH PLAIN AGZvbwBiYXI=\r\n"),
        "503 5.5.1 Invalid command: Already authenticated\r\n"
    );
    assert_eq!(h.send(b"MAIL FROM:<a@b>\r\n"), "250 2.0.0 Ok\r\n");
    h.send(b"RCPT TO:<r>\r\n");
    h.send(b"DATA\r\n");
    let m = String::from_utf8_lossy(&h.message).into_owned();
    assert!(
        m.contains(
            "with ESMTPSA id 14f8ba55 (TLSv1.3:TLS_AES_256_GCM_SHA384:256:NO)\n\tfor <r@mx.test>;"
        ),
        "{m}"
    );
}

#[test]
fn smtps_banner_after_handshake() {
    let h = Harness::new(SessionConfig {
        smtps: true,
        ..cfg()
    });
    assert_eq!(String::from_utf8_lossy(&h.out), BANNER);
    assert!(h.s.is_secure());
}

#[test]
fn timeout_and_disconnect() {
    let mut h = Harness::new(cfg());
    assert_eq!(h.s.timeout(), Some(SESSION_TIMEOUT));
    h.send(b"HELO a\r\n");
    h.send(b"MAIL FROM:<a@b>\r\n");
    h.s.timed_out();
    h.pump();
    assert_eq!(h.closed, Some(CloseReason::Timeout));
    assert_eq!(h.rollbacks, vec![0x14f8ba55]);
    assert!(!h.s.wants_read());
    assert_eq!(
        CloseReason::CertCheck("no-client-cert".into()).log_line(1),
        "0000000000000001 smtp disconnected  reason=no-client-cert"
    );
    assert_eq!(
        CloseReason::IoError("x".into()).log_line(1),
        "0000000000000001 smtp disconnected reason=\"io-error: x\""
    );
}

#[test]
fn unexpected_answers_are_refused() {
    let mut h = Harness::new(cfg());
    assert!(h.s.commit_result(Ok(())).is_err());
    assert!(h.s.recipient_result(RecipientResult::Accepted).is_err());
    assert!(h.s.filter_result(FilterDecision::Proceed).is_err());
    assert!(h
        .s
        .tls_established(TlsInfo {
            version: String::new(),
            cipher: String::new(),
            bits: 0,
            peer_cert: PeerCert::None
        })
        .is_err());
}

#[test]
fn ipv6_and_local_enqueue() {
    let c = ConnectionInfo {
        peer: PeerAddr::Inet("::1".parse().expect("v6")),
        rdns: "localhost".into(),
        smtpname: Some("cun.bsdsx.fr".into()),
        local_enqueue: true,
    };
    let mut h = Harness::with(cfg(), c);
    let r = h.send(b"EHLO localhost\r\n");
    assert!(r.starts_with("250-cun.bsdsx.fr Hello localhost [::1], pleased to meet you\r\n")); // ✔ spec
    assert!(h.s.is_authenticated());
}

fn traced(cfg: SessionConfig) -> Harness {
    Harness::new(SessionConfig { trace: true, ..cfg })
}

/// `-T smtp` lines come from the machine, where `smtp_command`, `smtp_reply` and
/// `smtp_tx_dataline` write them. ✔ on 6.8.0p2: a reply's trace line comes before its
/// `failed-command` log line, and pipelined commands are refused without being traced.
#[test]
fn traces_come_from_the_machine() {
    let mut h = traced(cfg());
    assert_eq!(h.traces, ["smtp: PTR: >>> 220 mx.test ESMTP OpenSMTPD"]);
    h.send(b"HELO a\r\n");
    h.send(b"RCPT TO:<x@y>\r\n");
    assert_eq!(
        &h.traces[1..],
        [
            "smtp: PTR: <<< HELO a",
            "smtp: PTR: >>> 250 mx.test Hello a [127.0.0.1], pleased to meet you",
            "smtp: PTR: <<< RCPT TO:<x@y>",
            "smtp: PTR: >>> 503 5.5.1 Invalid command: Command not allowed at this point.",
        ]
    );
    let mut p = traced(cfg());
    p.send(b"EHLO a\r\nNOOP\r\n");
    assert_eq!(
        &p.traces[1..],
        ["smtp: PTR: >>> 500 5.5.1 Invalid command: Pipelining not supported"]
    );
    // No trace events unless asked for.
    let mut quiet = Harness::new(cfg());
    quiet.send(b"HELO a\r\n");
    assert!(quiet.traces.is_empty());
}

/// The review's case (§5.3.3): `body\n.\n` does not end the message here (only CRLF.CRLF
/// does), so the trace shows a message line `.` with no `[EOM]`, and the lines after it
/// stay message lines until the real end.
#[test]
fn trace_follows_the_machine_in_data() {
    let mut h = traced(cfg());
    h.send(b"HELO a\r\n");
    h.send(b"MAIL FROM:<a@b>\r\n");
    h.send(b"RCPT TO:<c@d>\r\n");
    h.send(b"DATA\r\n");
    let start = h.traces.len();
    assert_eq!(h.send(b"\r\nbody\n.\nRSET\r\n"), "");
    assert_eq!(
        &h.traces[start..],
        [
            "<<< [MSG] ",
            "<<< [MSG] body",
            "<<< [MSG] .",
            "<<< [MSG] RSET"
        ]
    );
    assert!(h.send(b".\r\n").starts_with("250 2.0.0 "));
    assert_eq!(
        &h.traces[start + 4..start + 6],
        ["<<< [MSG] .", "<<< [EOM]"]
    );
}

/// Three AUTH bugs of 6.8 that we fix on purpose (README, "Where we differ on purpose").
#[test]
fn auth_bugs_of_6_8_fixed() {
    let tls_cfg = SessionConfig {
        starttls: true,
        auth: true,
        received_auth: true,
        ..cfg()
    };
    let mut h = Harness::new(tls_cfg);
    h.send(b"EHLO a\r\n");
    // 1. AUTH refused before STARTTLS: 6.8 logs the base64 credentials; we mask them.
    assert_eq!(
        h.send(b"AUTH PLAIN AGZvbwBiYXI=\r\n"),
        "503 5.5.1 Invalid command: Command not supported\r\n"
    );
    assert!(
        h.logs.last().is_some_and(
            |l| l.contains("command=\"AUTH PLAIN (...)\"") && !l.contains("AGZvbwBiYXI")
        ),
        "{:?}",
        h.logs
    );
    assert_eq!(h.send(b"STARTTLS\r\n"), "220 2.0.0 Ready to start TLS\r\n");
    h.send(b"EHLO a\r\n");
    // 2. A one-character password is a password (6.8: 501 syntax error).
    h.auth = LookupResult::PermFail;
    assert_eq!(
        h.send(b"AUTH PLAIN AGZvbwBi\r\n"),
        "535 Authentication failed\r\n"
    );
    assert!(h.requests.contains(&Request::Authenticate {
        username: b"foo".to_vec(),
        password: Secret::new(b"b".to_vec())
    }));
    // An empty one is still refused as 6.8 does.
    assert_eq!(
        h.send(b"AUTH PLAIN AGZvbwA=\r\n"),
        "501 5.5.2 Syntax error: Syntax error\r\n"
    );
    // 3. After a failed AUTH, received-auth says auth=no (6.8: auth=yes user=foo).
    assert_eq!(h.send(b"MAIL FROM:<a@b>\r\n"), "250 2.0.0 Ok\r\n");
    h.send(b"RCPT TO:<r>\r\n");
    h.send(b"DATA\r\n");
    let m = String::from_utf8_lossy(&h.message).into_owned();
    assert!(
        m.contains(":NO) auth=no\n") && !m.contains("auth=yes"),
        "{m}"
    );
}
