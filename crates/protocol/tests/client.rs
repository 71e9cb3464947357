//! The client core against our own server session, byte pumps in memory with a simulated clock
//! (as quinn-proto's `Pair`), and against scripted servers for what our server never says
//! (PIPELINING, LMTP, hostile replies).

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use rsmtpd_protocol::client::{
    dot_stuff, AuthCredentials, Client, ClientConfig, Close, Event as CEvent, Outcome, Recipient,
    Tls, Transaction,
};
use rsmtpd_protocol::received::PeerAddr;
use rsmtpd_protocol::server::{
    ConnectionInfo, Event as SEvent, LookupResult, MessageOpened, RecipientResult, Request,
    Session, SessionConfig,
};

/// A client and one of our server sessions, wired together.
struct Pair {
    c: Client,
    s: Session,
    now: Instant,
    to_server: Vec<u8>,
    to_client: Vec<u8>,
    body: Option<Vec<u8>>,
    stored: Vec<u8>,
    done: Vec<Vec<Outcome>>,
    closed: Option<Close>,
    server_closed: bool,
    ready: usize,
}

impl Pair {
    fn new(cfg: ClientConfig) -> Pair {
        let now = Instant::now();
        let s = Session::new(
            SessionConfig {
                hostname: "central.test".into(),
                ..SessionConfig::default()
            },
            ConnectionInfo {
                peer: PeerAddr::Inet(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2))),
                rdns: "machine1.test".into(),
                smtpname: None,
                local_enqueue: false,
            },
        );
        let mut p = Pair {
            c: Client::new(cfg, now, false),
            s,
            now,
            to_server: Vec::new(),
            to_client: Vec::new(),
            body: None,
            stored: Vec::new(),
            done: Vec::new(),
            closed: None,
            server_closed: false,
            ready: 0,
        };
        p.run();
        p
    }

    fn server_events(&mut self) {
        while let Some(ev) = self.s.poll_event() {
            match ev {
                SEvent::Reply(r) => self.to_client.extend_from_slice(&r.to_bytes()),
                SEvent::MessageData(d) => self.stored.extend_from_slice(&d),
                SEvent::Close(_) => self.server_closed = true,
                SEvent::Request(req) => {
                    let r = match req {
                        Request::Filter { .. } => self
                            .s
                            .filter_result(rsmtpd_protocol::server::FilterDecision::Proceed),
                        Request::CheckSender { .. } => self.s.sender_result(LookupResult::Ok),
                        Request::CreateMessage => self.s.message_created(Ok(0x1234abcd)),
                        Request::CheckRecipient { rcpt, .. } => {
                            self.s.recipient_result(match rcpt.rcpt.user.as_str() {
                                "nobody" => {
                                    RecipientResult::Refused("550 Invalid recipient".into())
                                }
                                "later" => RecipientResult::Refused("451 Temporary failure".into()),
                                _ => RecipientResult::Accepted,
                            })
                        }
                        Request::OpenMessage { .. } => self.s.message_opened(Ok(MessageOpened {
                            date: "Wed, 2 Dec 2026 00:00:00 +0000 (UTC)".into(),
                            message_id_uid: 1,
                        })),
                        Request::CommitMessage { .. } => self.s.commit_result(Ok(())),
                        Request::Authenticate { .. } => self.s.auth_result(LookupResult::PermFail),
                    };
                    r.expect("the server asked for it");
                }
                _ => {}
            }
        }
    }

    /// Moves bytes both ways until neither side has anything to say.
    fn run(&mut self) {
        loop {
            self.server_events();
            let mut moved = false;
            while let Some(ev) = self.c.poll_event() {
                match ev {
                    CEvent::Write(b) => self.to_server.extend_from_slice(&b),
                    CEvent::Ready => self.ready += 1,
                    CEvent::SendBody => {
                        let body = self.body.take().expect("a body to send");
                        self.c.body(self.now, dot_stuff(&body));
                        self.c.body_end(self.now);
                    }
                    CEvent::Done(o) => self.done.push(o),
                    CEvent::Closed(c) => self.closed = Some(c),
                    CEvent::StartTls => panic!("no STARTTLS offered"),
                }
                moved = true;
            }
            // The server reads one command per read, as the shell does (wants_read).
            if !self.to_server.is_empty() && self.s.wants_read() && !self.server_closed {
                let b = std::mem::take(&mut self.to_server);
                self.s.receive(&b);
                moved = true;
            }
            if !self.to_client.is_empty() {
                let b = std::mem::take(&mut self.to_client);
                self.c.receive(self.now, &b);
                moved = true;
            }
            if self.server_closed && self.to_client.is_empty() && self.closed.is_none() {
                self.c.peer_closed();
                moved = true;
            }
            if !moved {
                return;
            }
        }
    }

    fn send(&mut self, tx: Transaction, body: &[u8]) -> Vec<Outcome> {
        self.body = Some(body.to_vec());
        let before = self.done.len();
        self.c.send(self.now, tx);
        self.run();
        assert_eq!(self.done.len(), before + 1, "one Done per transaction");
        self.done.last().cloned().unwrap_or_default()
    }

    /// Advances the simulated clock to the client's next deadline and fires it.
    fn wait_for_timer(&mut self) -> Duration {
        let t = self.c.poll_timeout().expect("a timer");
        let waited = t - self.now;
        self.now = t;
        self.c.handle_timeout(self.now);
        self.run();
        waited
    }
}

fn rcpts(list: &[&str]) -> Vec<Recipient> {
    list.iter().map(|a| Recipient::new(*a)).collect()
}

fn delivered(o: &Outcome) -> bool {
    matches!(o, Outcome::Delivered(_))
}

#[test]
fn one_message_to_our_server_then_quit_after_the_keepalive() {
    let mut p = Pair::new(ClientConfig::new("machine1.test"));
    assert_eq!(p.ready, 1);
    assert!(p.c.extensions().dsn && p.c.extensions().eight_bit_mime);
    assert_eq!(p.c.extensions().size, Some(36_700_160));
    let mut tx = Transaction::new("root@machine1.test", rcpts(&["root@central.test"]));
    tx.size = Some(40);
    let o = p.send(tx, b"Subject: cron\n\n.hidden dot\nhi\n");
    assert_eq!(o.len(), 1);
    match &o[0] {
        Outcome::Delivered(r) => {
            assert_eq!(r.line(), "250 2.0.0 1234abcd Message accepted for delivery")
        }
        other => panic!("{other:?}"),
    }
    // The server stored the body unstuffed.
    let stored = String::from_utf8_lossy(&p.stored).into_owned();
    assert!(
        stored.ends_with("Subject: cron\n\n.hidden dot\nhi\n"),
        "{stored}"
    );
    // Idle: QUIT comes when the 10 s keep-alive runs out, not before.
    assert!(p.closed.is_none());
    assert_eq!(p.wait_for_timer(), Duration::from_secs(10));
    assert_eq!(p.closed, Some(Close::Quit { messages: 1 }));
}

#[test]
fn several_messages_on_one_session() {
    let mut p = Pair::new(ClientConfig::new("m"));
    for i in 0..3 {
        let o = p.send(
            Transaction::new("a@m", rcpts(&["x@central.test", "y@central.test"])),
            format!("Subject: {i}\n\nbody\n").as_bytes(),
        );
        assert!(o.iter().all(delivered), "{o:?}");
    }
    p.c.quit(p.now);
    p.run();
    assert_eq!(p.closed, Some(Close::Quit { messages: 3 }));
}

#[test]
fn partial_refusals_are_per_recipient() {
    let mut p = Pair::new(ClientConfig::new("m"));
    let o = p.send(
        Transaction::new("a@m", rcpts(&["nobody@c", "ok@c", "later@c"])),
        b"Subject: t\n\nhi\n",
    );
    assert!(
        matches!(&o[0], Outcome::PermFail(l, _) if l == "550 Invalid recipient: <nobody@c>"),
        "{o:?}"
    );
    assert!(delivered(&o[1]), "{o:?}");
    assert!(delivered(&o[1]));
    assert!(matches!(&o[2], Outcome::TempFail(l, _) if l == "451 Temporary failure: <later@c>"));
    // Every recipient refused: no DATA, RSET, and the session is usable again.
    let o = p.send(
        Transaction::new("a@m", rcpts(&["nobody@c"])),
        b"Subject: t\n\nhi\n",
    );
    assert!(matches!(&o[0], Outcome::PermFail(..)));
    assert_eq!(p.ready, 3);
    let o = p.send(
        Transaction::new("a@m", rcpts(&["ok@c"])),
        b"Subject: t\n\nhi\n",
    );
    assert!(delivered(&o[0]));
}

#[test]
fn dsn_parameters_go_to_a_server_that_offers_dsn() {
    let mut p = Pair::new(ClientConfig::new("m"));
    let mut tx = Transaction::new(
        "a@m",
        vec![Recipient {
            address: "ok@c".into(),
            notify: Some("SUCCESS,FAILURE".into()),
            orcpt: Some("orig@c".into()),
        }],
    );
    tx.ret = Some("HDRS".into());
    tx.envid = Some("ENV1".into());
    tx.size = Some(3);
    tx.eight_bit = true;
    let o = p.send(tx, b"Subject: t\n\nhi\n");
    assert!(delivered(&o[0]), "{o:?}");
    let sent = p.s.mail_from().cloned();
    assert!(sent.is_none() || format!("{sent:?}").contains("ENV1"));
}

// ----------------------------------------------------------------------
// Scripted servers
// ----------------------------------------------------------------------

/// Drives a client against a list of (expected client bytes, server answer).
struct Scripted {
    c: Client,
    now: Instant,
    written: Vec<u8>,
    events: Vec<CEvent>,
}

impl Scripted {
    fn new(cfg: ClientConfig) -> Scripted {
        let now = Instant::now();
        Scripted {
            c: Client::new(cfg, now, false),
            now,
            written: Vec::new(),
            events: Vec::new(),
        }
    }
    fn drain(&mut self) {
        while let Some(e) = self.c.poll_event() {
            match e {
                CEvent::Write(b) => self.written.extend_from_slice(&b),
                e => self.events.push(e),
            }
        }
    }
    /// Server says `s`; returns what the client wrote in answer.
    fn say(&mut self, s: &str) -> String {
        self.c.receive(self.now, s.as_bytes());
        self.drain();
        String::from_utf8_lossy(&std::mem::take(&mut self.written)).into_owned()
    }
    fn take_events(&mut self) -> Vec<CEvent> {
        std::mem::take(&mut self.events)
    }
}

const EHLO_PIPE: &str =
    "250-mx hi\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250-8BITMIME\r\n250 DSN\r\n";

#[test]
fn pipelining_sends_mail_rcpts_and_data_together() {
    let mut s = Scripted::new(ClientConfig::new("me.test"));
    assert_eq!(s.say("220 mx ESMTP\r\n"), "EHLO me.test\r\n");
    assert_eq!(s.say(EHLO_PIPE), "");
    assert_eq!(s.take_events(), vec![CEvent::Ready]);
    let mut tx = Transaction::new("a@me.test", rcpts(&["x@d", "y@d"]));
    tx.size = Some(10);
    tx.eight_bit = true;
    s.c.send(s.now, tx);
    s.drain();
    assert_eq!(
        String::from_utf8_lossy(&std::mem::take(&mut s.written)),
        "MAIL FROM:<a@me.test> SIZE=10 BODY=8BITMIME\r\nRCPT TO:<x@d>\r\nRCPT TO:<y@d>\r\nDATA\r\n"
    );
    // All replies in one read.
    assert_eq!(
        s.say("250 ok\r\n250 ok\r\n550 5.1.1 no such user\r\n354 go\r\n"),
        ""
    );
    assert_eq!(s.take_events(), vec![CEvent::SendBody]);
    s.c.body(s.now, dot_stuff(b"hi\n"));
    s.c.body_end(s.now);
    s.drain();
    assert_eq!(
        String::from_utf8_lossy(&std::mem::take(&mut s.written)),
        "hi\r\n.\r\n"
    );
    assert_eq!(s.say("250 2.0.0 queued\r\n"), "");
    let ev = s.take_events();
    let CEvent::Done(o) = &ev[0] else {
        panic!("{ev:?}")
    };
    assert!(matches!(&o[0], Outcome::Delivered(_)));
    assert!(
        matches!(&o[1], Outcome::PermFail(l, Some(r)) if l == "550 5.1.1 no such user" && r.enhanced() == Some((5, 1, 1)))
    );
    assert_eq!(ev[1], CEvent::Ready);
}

#[test]
fn pipelined_mail_refused_consumes_every_reply_then_rset() {
    let mut s = Scripted::new(ClientConfig::new("me"));
    s.say("220 mx\r\n");
    s.say(EHLO_PIPE);
    s.take_events();
    s.c.send(s.now, Transaction::new("a@me", rcpts(&["x@d"])));
    s.drain();
    s.written.clear();
    assert_eq!(
        s.say("451 4.3.0 try later\r\n503 no mail\r\n503 no rcpt\r\n"),
        "RSET\r\n"
    );
    let ev = s.take_events();
    assert!(
        matches!(&ev[0], CEvent::Done(o) if matches!(&o[0], Outcome::TempFail(l, _) if l == "451 4.3.0 try later"))
    );
    assert_eq!(s.say("250 ok\r\n"), "");
    assert_eq!(s.take_events(), vec![CEvent::Ready]);
}

#[test]
fn a_message_over_the_servers_size_is_refused_before_mail() {
    let mut s = Scripted::new(ClientConfig::new("me"));
    s.say("220 mx\r\n");
    s.say(EHLO_PIPE);
    s.take_events();
    let mut tx = Transaction::new("a@me", rcpts(&["x@d"]));
    tx.size = Some(1001);
    s.c.send(s.now, tx);
    s.drain();
    assert!(s.written.is_empty());
    let ev = s.take_events();
    assert!(
        matches!(&ev[0], CEvent::Done(o) if matches!(&o[0], Outcome::PermFail(l, None) if l.starts_with("552 5.3.4")))
    );
}

#[test]
fn helo_after_a_refused_ehlo_and_no_parameters_without_extensions() {
    let mut s = Scripted::new(ClientConfig::new("me"));
    s.say("220 old\r\n");
    assert_eq!(s.say("502 what\r\n"), "HELO me\r\n");
    assert_eq!(s.say("250 old\r\n"), "");
    s.take_events();
    let mut tx = Transaction::new(
        "a@me",
        vec![Recipient {
            address: "x@d".into(),
            notify: Some("SUCCESS".into()),
            orcpt: None,
        }],
    );
    tx.size = Some(10);
    tx.eight_bit = true;
    tx.ret = Some("FULL".into());
    s.c.send(s.now, tx);
    s.drain();
    assert_eq!(
        String::from_utf8_lossy(&std::mem::take(&mut s.written)),
        "MAIL FROM:<a@me>\r\n"
    );
    assert_eq!(s.say("250 ok\r\n"), "RCPT TO:<x@d>\r\n");
    assert_eq!(s.say("250 ok\r\n"), "DATA\r\n");
    assert_eq!(s.say("554 no\r\n"), "RSET\r\n");
}

#[test]
fn lmtp_replies_per_recipient_even_when_they_arrive_together() {
    let mut cfg = ClientConfig::new("me");
    cfg.lmtp = true;
    let mut s = Scripted::new(cfg);
    assert_eq!(s.say("220 lmtp\r\n"), "LHLO me\r\n");
    s.say("250-lmtp\r\n250 PIPELINING\r\n");
    s.take_events();
    s.c.send(
        s.now,
        Transaction::new("a@me", rcpts(&["x@d", "y@d", "z@d"])),
    );
    s.drain();
    assert_eq!(
        String::from_utf8_lossy(&std::mem::take(&mut s.written)),
        "MAIL FROM:<a@me>\r\n"
    );
    s.say("250 ok\r\n");
    s.say("250 ok\r\n");
    s.say("550 no\r\n");
    assert_eq!(s.say("250 ok\r\n"), "DATA\r\n");
    s.say("354 go\r\n");
    s.take_events();
    s.c.body(s.now, dot_stuff(b"hi"));
    s.c.body_end(s.now);
    s.drain();
    s.written.clear();
    s.say("250 2.0.0 x ok\r\n452 4.2.2 z full\r\n");
    let ev = s.take_events();
    let CEvent::Done(o) = &ev[0] else {
        panic!("{ev:?}")
    };
    assert!(matches!(&o[0], Outcome::Delivered(_)));
    assert!(matches!(&o[1], Outcome::PermFail(..)));
    assert!(matches!(&o[2], Outcome::TempFail(l, _) if l == "452 4.2.2 z full"));
}

#[test]
fn every_phase_has_its_deadline() {
    let mut s = Scripted::new(ClientConfig::new("me"));
    let t0 = s.now;
    assert_eq!(s.c.poll_timeout(), Some(t0 + Duration::from_secs(300)));
    s.say("220 mx\r\n");
    s.say("250 mx\r\n");
    s.take_events();
    assert_eq!(s.c.poll_timeout(), Some(t0 + Duration::from_secs(10)));
    s.c.send(s.now, Transaction::new("a@me", rcpts(&["x@d"])));
    s.say("250 ok\r\n");
    s.say("250 ok\r\n");
    // DATA initiation: 2 minutes.
    assert_eq!(s.c.poll_timeout(), Some(t0 + Duration::from_secs(120)));
    s.say("354 go\r\n");
    assert_eq!(s.c.poll_timeout(), Some(t0 + Duration::from_secs(180)));
    s.c.body_end(s.now);
    assert_eq!(s.c.poll_timeout(), Some(t0 + Duration::from_secs(600)));
    s.drain();
    s.take_events();
    // A spurious early call does nothing; the real one fails the recipient, temporarily.
    s.c.handle_timeout(t0 + Duration::from_secs(599));
    s.drain();
    assert!(s.take_events().is_empty());
    s.c.handle_timeout(t0 + Duration::from_secs(600));
    s.drain();
    let ev = s.take_events();
    assert!(
        matches!(&ev[0], CEvent::Done(o) if matches!(&o[0], Outcome::TempFail(l, None) if l == "Connection timeout"))
    );
    assert!(
        matches!(&ev[1], CEvent::Closed(Close::Error { reason, .. }) if reason == "Connection timeout")
    );
    assert_eq!(s.c.poll_timeout(), None);
}

#[test]
fn hostile_servers_end_the_session_without_growing_it() {
    // A line that never ends.
    let mut s = Scripted::new(ClientConfig::new("me"));
    for _ in 0..1000 {
        s.c.receive(s.now, &[b'2'; 1000]);
    }
    s.drain();
    assert!(
        matches!(&s.take_events()[..], [CEvent::Closed(Close::Error { reason, .. })] if reason == "Input too long")
    );
    // A reply that never ends.
    let mut s = Scripted::new(ClientConfig::new("me"));
    for _ in 0..10_000 {
        s.c.receive(s.now, b"220-more\r\n");
    }
    s.drain();
    assert!(
        matches!(&s.take_events()[..], [CEvent::Closed(Close::Error { reason, .. })] if reason == "Bad response: too many lines")
    );
    // Talking unasked.
    let mut s = Scripted::new(ClientConfig::new("me"));
    s.say("220 mx\r\n250 extra\r\n");
    assert!(
        matches!(&s.take_events()[..], [CEvent::Closed(Close::Error { reason, .. })] if reason == "Remote host sent too much data")
    );
    // A 421 banner is reported as such (the relay disables the route).
    let mut s = Scripted::new(ClientConfig::new("me"));
    s.say("421 busy\r\n");
    assert!(
        matches!(&s.take_events()[..], [CEvent::Closed(Close::Error { reason, reply: Some(b), .. })] if reason == "BANNER rejected: 421 busy" && b.code == 421)
    );
}

#[test]
fn opportunistic_and_required_starttls() {
    let ehlo = "250-mx\r\n250 STARTTLS\r\n";
    let mut cfg = ClientConfig::new("me");
    cfg.tls = Tls::Opportunistic;
    let mut s = Scripted::new(cfg.clone());
    s.say("220 mx\r\n");
    assert_eq!(s.say(ehlo), "STARTTLS\r\n");
    s.say("220 go\r\n");
    assert_eq!(s.take_events(), vec![CEvent::StartTls]);
    s.c.tls_established(s.now);
    s.drain();
    assert_eq!(
        String::from_utf8_lossy(&std::mem::take(&mut s.written)),
        "EHLO me\r\n"
    );
    s.say("250 mx\r\n");
    assert_eq!(s.take_events(), vec![CEvent::Ready]);
    assert!(s.c.is_secure());
    // 454: on in clear.
    let mut s = Scripted::new(cfg.clone());
    s.say("220 mx\r\n");
    s.say(ehlo);
    s.say("454 no tls now\r\n");
    assert_eq!(s.take_events(), vec![CEvent::Ready]);
    // Required and not offered: no mail.
    cfg.tls = Tls::Required;
    let mut s = Scripted::new(cfg);
    s.say("220 mx\r\n");
    s.say("250 mx\r\n");
    assert!(
        matches!(&s.take_events()[..], [CEvent::Closed(Close::Error { reason, .. })] if reason == "TLS required but not supported by remote host")
    );
}

/// AUTH as 6.8's mta: after the TLS EHLO, PLAIN with an initial response when offered, else
/// LOGIN; never in clear; a refusal ends the session with `AUTH rejected: REPLY`.
#[test]
fn auth_plain_then_login_only_over_tls() {
    let mut cfg = ClientConfig::new("me");
    cfg.tls = Tls::Required;
    cfg.auth = Some(AuthCredentials {
        username: "alice".into(),
        password: "alicepass".into(),
    });
    let tls_session = |cfg: &ClientConfig, ehlo: &str| {
        let mut s = Scripted::new(cfg.clone());
        s.say("220 mx\r\n");
        s.say("250-mx\r\n250 STARTTLS\r\n");
        s.say("220 go\r\n");
        s.take_events();
        s.c.tls_established(s.now);
        s.drain();
        s.written.clear();
        let out = s.say(ehlo);
        (s, out)
    };
    // PLAIN: base64("\0alice\0alicepass").
    let (mut s, out) = tls_session(&cfg, "250-mx\r\n250 AUTH LOGIN PLAIN\r\n");
    assert_eq!(out, "AUTH PLAIN AGFsaWNlAGFsaWNlcGFzcw==\r\n");
    s.say("235 2.0.0 ok\r\n");
    assert_eq!(s.take_events(), vec![CEvent::Ready]);
    // LOGIN only.
    let (mut s, out) = tls_session(&cfg, "250-mx\r\n250 AUTH LOGIN\r\n");
    assert_eq!(out, "AUTH LOGIN\r\n");
    assert_eq!(s.say("334 VXNlcm5hbWU6\r\n"), "YWxpY2U=\r\n");
    assert_eq!(s.say("334 UGFzc3dvcmQ6\r\n"), "YWxpY2VwYXNz\r\n");
    s.say("235 2.0.0 ok\r\n");
    assert_eq!(s.take_events(), vec![CEvent::Ready]);
    // Refused.
    let (mut s, _) = tls_session(&cfg, "250-mx\r\n250 AUTH PLAIN\r\n");
    s.say("535 5.7.8 bad credentials\r\n");
    assert!(
        matches!(&s.take_events()[..], [CEvent::Closed(Close::Error { reason, .. })] if reason == "AUTH rejected: 535 5.7.8 bad credentials"),
    );
    // Not offered, or no mechanism we know.
    let (mut s, _) = tls_session(&cfg, "250 mx\r\n");
    assert!(
        matches!(&s.take_events()[..], [CEvent::Closed(Close::Error { reason, .. })] if reason == "AUTH not advertised"),
    );
    let (mut s, _) = tls_session(&cfg, "250-mx\r\n250 AUTH CRAM-MD5\r\n");
    assert!(
        matches!(&s.take_events()[..], [CEvent::Closed(Close::Error { reason, .. })] if reason == "no supported AUTH method"),
    );
    // Never in clear, even when offered there.
    cfg.tls = Tls::Opportunistic;
    let mut s = Scripted::new(cfg);
    s.say("220 mx\r\n");
    assert_eq!(s.say("250-mx\r\n250 AUTH PLAIN\r\n"), "");
    assert!(
        matches!(&s.take_events()[..], [CEvent::Closed(Close::Error { reason, .. })] if reason == "Refuse to AUTH over unsecure channel"),
    );
}

#[test]
fn a_server_that_closes_mid_transaction_tempfails_it() {
    let mut s = Scripted::new(ClientConfig::new("me"));
    s.say("220 mx\r\n");
    s.say("250 mx\r\n");
    s.take_events();
    s.c.send(s.now, Transaction::new("a@me", rcpts(&["x@d"])));
    s.say("250 ok\r\n");
    s.c.peer_closed();
    s.drain();
    let ev = s.take_events();
    assert!(
        matches!(&ev[0], CEvent::Done(o) if matches!(&o[0], Outcome::TempFail(l, _) if l == "Connection closed unexpectedly"))
    );
}

/// `max-failures-per-session`: refused recipients in a row, across transactions, until the
/// limit; then the transaction's others fail temporarily (accepted ones too), and QUIT.
#[test]
fn max_failures_per_session_gives_up_and_quits() {
    use rsmtpd_protocol::client::TOO_MANY_FAILURES;
    let mut cfg = ClientConfig::new("me");
    cfg.max_failures = 3;
    let mut s = Scripted::new(cfg);
    s.say("220 mx\r\n");
    s.say("250 mx\r\n");
    s.take_events();
    // One refused recipient, the transaction reset: one failure counted.
    s.c.send(s.now, Transaction::new("a@me", rcpts(&["bad0@d"])));
    s.drain();
    s.written.clear();
    assert_eq!(s.say("250 ok\r\n"), "RCPT TO:<bad0@d>\r\n");
    assert_eq!(s.say("550 no\r\n"), "RSET\r\n");
    s.say("250 ok\r\n");
    s.take_events();
    // Then ok, bad1, bad2, bad3, last: an accepted one resets the count; the third refusal
    // in a row is the limit, and nothing more is sent but QUIT.
    s.c.send(
        s.now,
        Transaction::new(
            "a@me",
            rcpts(&["bad@d", "ok@d", "b1@d", "b2@d", "b3@d", "z@d"]),
        ),
    );
    s.drain();
    s.written.clear();
    s.say("250 ok\r\n");
    assert_eq!(s.say("550 no\r\n"), "RCPT TO:<ok@d>\r\n");
    s.say("250 ok\r\n");
    s.say("550 no\r\n");
    s.say("550 no\r\n");
    assert_eq!(s.say("550 no\r\n"), "QUIT\r\n");
    let ev = s.take_events();
    let CEvent::Done(o) = &ev[0] else {
        panic!("{ev:?}")
    };
    let too_many = |o: &Outcome| matches!(o, Outcome::TempFail(t, None) if t == TOO_MANY_FAILURES);
    assert!(matches!(&o[0], Outcome::PermFail(..)));
    assert!(too_many(&o[1]), "{o:?}");
    assert!(
        o[2..5].iter().all(|o| matches!(o, Outcome::PermFail(..))),
        "{o:?}"
    );
    assert!(too_many(&o[5]), "{o:?}");
    s.say("221 bye\r\n");
    assert!(matches!(
        s.take_events().as_slice(),
        [CEvent::Closed(Close::Quit { messages: 0 })]
    ));
}

/// The same under PIPELINING: the replies to what was sent are read; a refused DATA is
/// followed by QUIT, an accepted one by closing without the final dot (the message must not
/// go to the accepted recipients).
#[test]
fn max_failures_per_session_under_pipelining() {
    use rsmtpd_protocol::client::TOO_MANY_FAILURES;
    for (data_reply, quits) in [("554 no valid recipients\r\n", true), ("354 go\r\n", false)] {
        let mut cfg = ClientConfig::new("me");
        cfg.max_failures = 2;
        let mut s = Scripted::new(cfg);
        s.say("220 mx\r\n");
        s.say(EHLO_PIPE);
        s.take_events();
        s.c.send(
            s.now,
            Transaction::new("a@me", rcpts(&["ok@d", "b1@d", "b2@d", "z@d"])),
        );
        s.drain();
        s.written.clear();
        let out = s.say(&format!(
            "250 ok\r\n250 ok\r\n550 no\r\n550 no\r\n250 ok\r\n{data_reply}"
        ));
        let ev = s.take_events();
        let CEvent::Done(o) = &ev[0] else {
            panic!("{ev:?}")
        };
        assert!(matches!(&o[0], Outcome::TempFail(t, None) if t == TOO_MANY_FAILURES));
        assert!(matches!(&o[3], Outcome::TempFail(t, None) if t == TOO_MANY_FAILURES));
        if quits {
            assert_eq!(out, "QUIT\r\n");
        } else {
            assert_eq!(out, "");
            assert!(
                matches!(&ev[1], CEvent::Closed(Close::Error { reason, .. }) if reason == TOO_MANY_FAILURES),
                "{ev:?}"
            );
        }
    }
}

/// `session-transaction-delay`: after each transaction the session waits, then is ready
/// for what is left of the keep-alive.
#[test]
fn session_transaction_delay_pauses_between_transactions() {
    let mut cfg = ClientConfig::new("me");
    cfg.transaction_delay = Duration::from_secs(3);
    let mut s = Scripted::new(cfg);
    s.say("220 mx\r\n");
    s.say("250 mx\r\n");
    assert_eq!(s.take_events(), vec![CEvent::Ready]);
    s.c.send(s.now, Transaction::new("a@me", rcpts(&["x@d"])));
    s.say("250 ok\r\n");
    s.say("250 ok\r\n");
    s.say("354 go\r\n");
    s.c.body_end(s.now);
    s.drain();
    s.take_events();
    s.say("250 queued\r\n");
    let ev = s.take_events();
    assert!(matches!(ev.as_slice(), [CEvent::Done(_)]), "{ev:?}");
    assert!(s.c.is_pausing() && !s.c.is_idle());
    assert_eq!(s.c.poll_timeout(), Some(s.now + Duration::from_secs(3)));
    s.c.handle_timeout(s.now + Duration::from_secs(3));
    s.drain();
    assert_eq!(s.take_events(), vec![CEvent::Ready]);
    assert!(s.c.is_idle());
    // 10 s of keep-alive, 3 of them spent in the pause.
    assert_eq!(s.c.poll_timeout(), Some(s.now + Duration::from_secs(10)));
}

/// Under PIPELINING the next transaction's MAIL, RCPT and DATA follow the final dot in the same
/// group (RFC 2920): one round trip per message. The outcomes come in order, and no Ready comes
/// between the two transactions.
#[test]
fn the_next_transaction_follows_the_final_dot() {
    let mut s = Scripted::new(ClientConfig::new("me"));
    s.say("220 mx\r\n");
    s.say(EHLO_PIPE);
    s.take_events();
    assert!(!s.c.can_send_next());
    s.c.send(s.now, Transaction::new("a@me", rcpts(&["x@d"])));
    s.drain();
    s.written.clear();
    assert!(!s.c.can_send_next());
    s.say("250 ok\r\n250 ok\r\n354 go\r\n");
    assert_eq!(s.take_events(), vec![CEvent::SendBody]);
    s.c.body(s.now, dot_stuff(b"one\n"));
    s.c.body_end(s.now);
    assert!(s.c.can_send_next());
    s.c.send_next(Transaction::new("b@me", rcpts(&["y@d", "bad@d"])))
        .expect("queued");
    assert!(!s.c.can_send_next());
    s.drain();
    assert_eq!(
        String::from_utf8_lossy(&std::mem::take(&mut s.written)),
        "one\r\n.\r\nMAIL FROM:<b@me>\r\nRCPT TO:<y@d>\r\nRCPT TO:<bad@d>\r\nDATA\r\n"
    );
    // The first's final reply and the second's replies together.
    assert_eq!(
        s.say("250 2.0.0 first\r\n250 ok\r\n250 ok\r\n550 no\r\n354 go\r\n"),
        ""
    );
    let ev = s.take_events();
    assert!(
        matches!(&ev[..], [CEvent::Done(a), CEvent::SendBody] if matches!(&a[0], Outcome::Delivered(r) if r.line() == "250 2.0.0 first")),
        "{ev:?}"
    );
    s.c.body(s.now, dot_stuff(b"two\n"));
    s.c.body_end(s.now);
    s.drain();
    s.written.clear();
    s.say("250 2.0.0 second\r\n");
    let ev = s.take_events();
    assert!(
        matches!(&ev[..], [CEvent::Done(b), CEvent::Ready]
            if matches!(&b[0], Outcome::Delivered(r) if r.line() == "250 2.0.0 second")
            && matches!(&b[1], Outcome::PermFail(..))),
        "{ev:?}"
    );
    assert_eq!(s.c.messages(), 2);
    // A connection lost with both out: both fail temporarily, in order.
    s.c.send(s.now, Transaction::new("c@me", rcpts(&["x@d"])));
    s.say("250 ok\r\n250 ok\r\n354 go\r\n");
    s.take_events();
    s.c.body_end(s.now);
    s.c.send_next(Transaction::new("d@me", rcpts(&["x@d", "z@d"])))
        .expect("queued");
    s.c.peer_closed();
    s.drain();
    let ev = s.take_events();
    assert!(
        matches!(&ev[..], [CEvent::Done(a), CEvent::Done(b), CEvent::Closed(_)] if a.len() == 1 && b.len() == 2),
        "{ev:?}"
    );
}
