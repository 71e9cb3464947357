//! The DATA filter seam (`SessionConfig::filter_data`): stage A (dot-decoding, the size
//! count) hands the lines to a filter chain, whose lines come back through
//! `Session::filtered_line` / `filtered_end` to stage B (header processing, loop count)
//! and the commit. The expected values marked ✔ were recorded on the real OpenSMTPD
//! 6.8.0p2 (`-T smtp`, listener `hostname mx.test` on 127.0.0.1 with a builtin `filter`,
//! which sends every message through lka's data pipe, and the same listener without it).

use std::net::{IpAddr, Ipv4Addr};

use rsmtpd_protocol::received::PeerAddr;
use rsmtpd_protocol::server::*;

const DATE: &str = "Wed, 2 Dec 2026 00:21:58 +0000 (UTC)";

/// A filter chain: each line in gives the lines out.
type Chain = Box<dyn FnMut(&[u8]) -> Vec<Vec<u8>>>;

struct Run {
    s: Session,
    out: String,
    traces: Vec<String>,
    logs: Vec<String>,
    message: Vec<u8>,
    /// Lines the session gave the chain.
    to_chain: Vec<Vec<u8>>,
    rollbacks: Vec<u32>,
    committed: Vec<u64>,
    chain: Option<Chain>,
}

fn cfg(filter_data: bool) -> SessionConfig {
    SessionConfig {
        hostname: "mx.test".into(),
        add_missing_headers: true,
        filter_data,
        trace: true,
        ..SessionConfig::default()
    }
}

impl Run {
    fn new(cfg: SessionConfig, chain: Option<Chain>) -> Run {
        let conn = ConnectionInfo {
            peer: PeerAddr::Inet(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            rdns: "localhost".into(),
            smtpname: None,
            local_enqueue: false,
        };
        let mut r = Run {
            s: Session::new(cfg, conn),
            out: String::new(),
            traces: Vec::new(),
            logs: Vec::new(),
            message: Vec::new(),
            to_chain: Vec::new(),
            rollbacks: Vec::new(),
            committed: Vec::new(),
            chain,
        };
        r.pump();
        r
    }

    fn pump(&mut self) {
        while let Some(ev) = self.s.poll_event() {
            match ev {
                Event::Reply(r) => self.out.push_str(&String::from_utf8_lossy(&r.to_bytes())),
                Event::Trace(t) => self.traces.push(t.line("PTR")),
                Event::Log(l) => self.logs.push(l.line(1)),
                Event::MessageData(d) => self.message.extend_from_slice(&d),
                Event::FilterData(line) => {
                    self.to_chain.push(line.clone());
                    let chain = self.chain.as_mut().expect("a chain");
                    for l in chain(&line) {
                        self.s.filtered_line(&l).expect("line taken");
                    }
                }
                Event::FilterDataEnd => self.s.filtered_end().expect("end taken"),
                Event::Rollback { msgid } => self.rollbacks.push(msgid),
                Event::Close(_) | Event::StartTls | Event::Report(_) => {}
                Event::Request(req) => {
                    let r = match req {
                        Request::Filter { .. } => self.s.filter_result(FilterDecision::Proceed),
                        Request::CheckSender { .. } => self.s.sender_result(LookupResult::Ok),
                        Request::CreateMessage => self.s.message_created(Ok(0xf2e6237c)),
                        Request::CheckRecipient { .. } => {
                            self.s.recipient_result(RecipientResult::Accepted)
                        }
                        Request::OpenMessage { .. } => self.s.message_opened(Ok(MessageOpened {
                            date: DATE.into(),
                            message_id_uid: 0x503548e2da3acebe,
                        })),
                        Request::CommitMessage { size, .. } => {
                            self.committed.push(size);
                            self.s.commit_result(Ok(()))
                        }
                        Request::Authenticate { .. } => self.s.auth_result(LookupResult::PermFail),
                    };
                    r.expect("answer accepted");
                }
            }
        }
    }

    fn send(&mut self, b: &[u8]) -> String {
        let start = self.out.len();
        assert!(self.s.wants_read(), "the session reads");
        self.s.receive(b);
        self.pump();
        self.out[start..].to_string()
    }

    /// EHLO, MAIL, RCPT, DATA; returns the reply to DATA.
    fn open(&mut self) -> String {
        self.send(b"EHLO a\r\n");
        assert_eq!(self.send(b"MAIL FROM:<a@b.test>\r\n"), "250 2.0.0 Ok\r\n");
        self.send(b"RCPT TO:<root@mx.test>\r\n");
        self.send(b"DATA\r\n")
    }

    /// The `[MSG]`/`[EOM]` trace lines.
    fn message_traces(&self) -> Vec<String> {
        self.traces
            .iter()
            .filter(|t| t.starts_with("<<< ["))
            .cloned()
            .collect()
    }
}

fn passthrough() -> Chain {
    Box::new(|l: &[u8]| vec![l.to_vec()])
}

const RECEIVED: &str = "Received: from a (localhost [127.0.0.1])\n\
                        \tby mx.test (OpenSMTPD) with ESMTP id f2e6237c\n\
                        \tfor <root@mx.test>;\n\
                        \tWed, 2 Dec 2026 00:21:58 +0000 (UTC)\n";
const BODY: &[u8] = b"Subject: x\r\n\r\nbody\r\n..dot\r\n.\r\n";

/// ✔ The same message with and without the chain: the same file, but with the chain the
/// session's Received header goes through it (so it is traced as a message line), and the
/// size counts it twice (398 against 251, as OpenSMTPD logs).
#[test]
fn passthrough_chain_is_opensmtpd_data_pipe() {
    let expected_file = format!(
        "{RECEIVED}Subject: x\nDate: {DATE}\nMessage-ID: <503548e2da3acebe@mx.test>\n\nbody\n.dot\n"
    );

    let mut plain = Run::new(cfg(false), None);
    assert!(plain.open().starts_with("354 "));
    assert_eq!(
        plain.send(BODY),
        "250 2.0.0 f2e6237c Message accepted for delivery\r\n"
    );
    assert_eq!(String::from_utf8_lossy(&plain.message), expected_file);
    assert_eq!(plain.committed, vec![251]);
    assert!(plain.logs.contains(
        &"0000000000000001 smtp message msgid=f2e6237c size=251 nrcpt=1 proto=ESMTP".to_string()
    ));
    assert_eq!(
        plain.message_traces(),
        ["Subject: x", "", "body", "..dot", "."]
            .iter()
            .map(|l| format!("<<< [MSG] {l}"))
            .chain(["<<< [EOM]".to_string()])
            .collect::<Vec<_>>()
    );

    let mut filtered = Run::new(cfg(true), Some(passthrough()));
    assert!(filtered.open().starts_with("354 "));
    assert_eq!(
        filtered.send(BODY),
        "250 2.0.0 f2e6237c Message accepted for delivery\r\n"
    );
    assert_eq!(String::from_utf8_lossy(&filtered.message), expected_file);
    assert_eq!(filtered.committed, vec![398]);
    assert!(filtered.logs.contains(
        &"0000000000000001 smtp message msgid=f2e6237c size=398 nrcpt=1 proto=ESMTP".to_string()
    ));
    let recorded = [
        "<<< [MSG] Received: from a (localhost [127.0.0.1])",
        "<<< [MSG] \tby mx.test (OpenSMTPD) with ESMTP id f2e6237c",
        "<<< [MSG] \tfor <root@mx.test>;",
        "<<< [MSG] \tWed, 2 Dec 2026 00:21:58 +0000 (UTC)",
        "<<< [MSG] Subject: x",
        "<<< [MSG] ",
        "<<< [MSG] body",
        "<<< [MSG] ..dot",
        "<<< [MSG] .",
        "<<< [EOM]",
    ];
    assert_eq!(filtered.message_traces(), recorded);
    // The chain got decoded lines: our headers first, then the client's, unstuffed.
    let to_chain: Vec<String> = filtered
        .to_chain
        .iter()
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect();
    assert_eq!(
        to_chain,
        [
            "Received: from a (localhost [127.0.0.1])",
            "\tby mx.test (OpenSMTPD) with ESMTP id f2e6237c",
            "\tfor <root@mx.test>;",
            "\tWed, 2 Dec 2026 00:21:58 +0000 (UTC)",
            "Subject: x",
            "",
            "body",
            ".dot",
        ]
    );
}

/// A chain that rewrites a header and adds one: what it gives back is what stage B
/// processes (Bcc dropped, Date/Message-ID added after the chain's headers).
#[test]
fn chain_rewrites_and_adds_a_header() {
    let chain: Chain = Box::new(|l: &[u8]| {
        if l == b"Subject: x" {
            vec![b"X-Filtered: yes".to_vec(), b"Subject: [ok] x".to_vec()]
        } else if l.starts_with(b"Bcc:") {
            vec![l.to_vec()]
        } else if l == b"body" {
            vec![b".leading dot".to_vec()]
        } else {
            vec![l.to_vec()]
        }
    });
    let mut r = Run::new(cfg(true), Some(chain));
    assert!(r.open().starts_with("354 "));
    assert_eq!(
        r.send(b"Subject: x\r\nBcc: hidden@x\r\n\r\nbody\r\n.\r\n"),
        "250 2.0.0 f2e6237c Message accepted for delivery\r\n"
    );
    let file = String::from_utf8_lossy(&r.message).into_owned();
    assert_eq!(
        file,
        format!(
            "{RECEIVED}X-Filtered: yes\nSubject: [ok] x\nDate: {DATE}\n\
             Message-ID: <503548e2da3acebe@mx.test>\n\n.leading dot\n"
        )
    );
    assert_eq!(r.committed, vec![file.len() as u64 + RECEIVED.len() as u64]);
    // The chain's line is traced dot-stuffed, as it would be on the pipe.
    assert!(r
        .message_traces()
        .contains(&"<<< [MSG] ..leading dot".to_string()));
}

/// `message too large`: once over the limit, stage A stops feeding the chain (but still
/// ends the message), and the refusal comes after the chain's end, as in
/// `smtp_tx_filtered_dataline` / `smtp_message_end`.
#[test]
fn too_large_stops_feeding_the_chain() {
    let mut c = cfg(true);
    c.max_message_size = 20;
    let mut r = Run::new(c, Some(passthrough()));
    assert!(r.open().starts_with("354 "));
    let replies = r.send(b"Subject: x\r\n\r\n0123456789\r\nmore\r\n.\r\n");
    assert_eq!(
        replies,
        "554 5.3.4 Message too big for system: Transaction failed, message too big\r\n"
    );
    let client_lines: Vec<&[u8]> = r.to_chain.iter().skip(4).map(Vec::as_slice).collect();
    // 11 + 1 bytes fit; "0123456789" makes 23 > 20, so it and what follows stay out.
    assert_eq!(client_lines, [b"Subject: x".as_slice(), b""]);
    assert_eq!(r.rollbacks, vec![0xf2e6237c]);
    assert!(r.committed.is_empty());
    assert!(r.s.wants_read());
    assert_eq!(r.send(b"RSET\r\n"), "250 2.0.0 Reset state\r\n");
}

/// The session's Received header comes back through the chain and counts as a hop: 99
/// Received lines from the client make a loop with a chain, not without.
#[test]
fn own_received_counts_as_a_hop_through_the_chain() {
    let mut body = Vec::new();
    for _ in 0..99 {
        body.extend_from_slice(b"Received: from x\r\n");
    }
    body.extend_from_slice(b"\r\nhi\r\n.\r\n");
    let mut plain = Run::new(cfg(false), None);
    plain.open();
    assert!(plain.send(&body).starts_with("250 2.0.0 "));
    let mut filtered = Run::new(cfg(true), Some(passthrough()));
    filtered.open();
    assert_eq!(
        filtered.send(&body),
        "500 5.4.6 Routing loop detected: Loop detected\r\n"
    );
    assert!(filtered.logs.contains(&"warn: loop detected".to_string()));
}

/// Answers out of turn are refused, and the session waits for the chain after the dot.
#[test]
fn seam_answers_in_turn_only() {
    let mut plain = Run::new(cfg(false), None);
    plain.open();
    assert_eq!(plain.s.filtered_line(b"x"), Err(UnexpectedAnswer));
    assert_eq!(plain.s.filtered_end(), Err(UnexpectedAnswer));

    // A chain that holds everything back until the end.
    let held = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let h = held.clone();
    let chain: Chain = Box::new(move |l: &[u8]| {
        h.borrow_mut().push(l.to_vec());
        Vec::new()
    });
    let mut r = Run::new(cfg(true), Some(chain));
    r.open();
    r.s.receive(b"Subject: x\r\n\r\nhello\r\n");
    r.pump();
    assert_eq!(r.s.filtered_end(), Err(UnexpectedAnswer));
    r.s.receive(b".\r\n");
    // Drain without letting the harness answer the end.
    let mut ended = false;
    while let Some(ev) = r.s.poll_event() {
        match ev {
            Event::FilterDataEnd => ended = true,
            Event::FilterData(l) => held.borrow_mut().push(l),
            _ => {}
        }
    }
    assert!(ended);
    assert_eq!(r.s.wants(), Wants::FilteredData);
    assert!(!r.s.wants_read());
    for l in held.borrow().iter() {
        r.s.filtered_line(l).expect("line taken");
    }
    r.s.filtered_end().expect("end taken");
    r.pump();
    assert!(
        r.out
            .ends_with("250 2.0.0 f2e6237c Message accepted for delivery\r\n"),
        "{}",
        r.out
    );
    assert!(r.message.ends_with(b"\nhello\n"));
    assert_eq!(r.s.filtered_line(b"late"), Err(UnexpectedAnswer));
}

/// A chain that dies mid-message: the shell calls `fail_temporarily`; the client gets the 421
/// at once, the message is rolled back (never committed) and the session ends.
#[test]
fn a_chain_that_fails_mid_message_rolls_back_with_421() {
    let mut r = Run::new(cfg(true), Some(Box::new(|_: &[u8]| Vec::new())));
    assert!(r.open().starts_with("354 "));
    r.send(b"Subject: x\r\n\r\nhalf\r\n");
    let start = r.out.len();
    r.s.fail_temporarily();
    r.pump();
    assert_eq!(&r.out[start..], "421 4.3.0 Temporary failure\r\n");
    assert_eq!(r.rollbacks, vec![0xf2e6237c]);
    assert!(r.committed.is_empty());
    assert!(r.s.is_closed());
    assert!(
        r.s.filtered_line(b"late").is_err(),
        "late chain lines are refused"
    );
}
