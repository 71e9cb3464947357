//! The whole server session: a listener's settings, then the client's bytes in chunks, with the
//! shell's answers to each request chosen by the input (the harness of protocol/tests/props.rs
//! `drive()`, with the answers fuzzed too).
//!
//! Input: 2 bytes of settings, 4 chunk sizes, 4 answer choices (0 = success), then the client's
//! stream. This is the only file that knows the session's API: keep it thin.

use rsmtpd_protocol::received::{PeerAddr, PeerCert, TlsInfo};
use rsmtpd_protocol::server::*;

use crate::input::Input;

/// What each request gets, cycling through the input's choices.
struct Shell {
    answers: [u8; 4],
    next: usize,
}

impl Shell {
    fn choice(&mut self, n: u8) -> u8 {
        let c = self.answers[self.next % 4] % n;
        self.next += 1;
        c
    }
}

pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let (a, b) = (input.byte(), input.byte());
    let bit = |v: u8, i: u32| v & (1 << i) != 0;
    let cfg = SessionConfig {
        hostname: "mx.test".into(),
        filtered: bit(a, 0),
        starttls: bit(a, 1),
        auth: bit(a, 2),
        auth_required: bit(a, 3),
        tls_required: bit(a, 4),
        smtps: bit(a, 5),
        check_senders: bit(a, 6),
        masquerade: bit(a, 7),
        dsn: !bit(b, 0),
        mask_source: bit(b, 1),
        received_auth: bit(b, 2),
        add_missing_headers: bit(b, 3),
        max_message_size: if bit(b, 4) { 64 } else { 36_700_160 },
        max_recipients: if bit(b, 5) { 2 } else { 1000 },
        max_mails: if bit(b, 5) { 2 } else { 100 },
        filter_data: bit(a, 0) && bit(b, 7),
        trace: bit(b, 2),
    };
    let conn = ConnectionInfo {
        peer: if bit(b, 6) {
            PeerAddr::Local
        } else {
            PeerAddr::Inet([192, 0, 2, 1].into())
        },
        rdns: "client.test".into(),
        smtpname: None,
        local_enqueue: bit(b, 6),
    };
    let sizes: Vec<usize> = input.take(4).iter().map(|&s| s as usize + 1).collect();
    let mut shell = Shell {
        answers: [input.byte(), input.byte(), input.byte(), input.byte()],
        next: 0,
    };
    let stream = input.rest();
    let mut s = Session::new(cfg, conn);
    let mut pos = 0;
    let mut i = 0;
    drive(&mut s, &mut shell);
    while pos < stream.len() && s.wants_read() {
        let n = sizes.get(i % sizes.len().max(1)).copied().unwrap_or(256);
        let end = (pos + n).min(stream.len());
        s.receive(&stream[pos..end]);
        pos = end;
        i += 1;
        drive(&mut s, &mut shell);
    }
    if s.wants_read() {
        if bit(b, 7) {
            s.timed_out();
        } else {
            s.peer_closed();
        }
        drive(&mut s, &mut shell);
    }
}

fn drive(s: &mut Session, shell: &mut Shell) {
    let mut n = 0;
    while let Some(ev) = s.poll_event() {
        n += 1;
        assert!(n < 100_000, "the session does not stop producing events");
        match ev {
            Event::StartTls => {
                let r = if shell.choice(2) == 0 {
                    s.tls_established(TlsInfo {
                        version: "TLSv1.3".into(),
                        cipher: "TLS_AES_256_GCM_SHA384".into(),
                        bits: 256,
                        peer_cert: PeerCert::None,
                    })
                } else {
                    s.tls_failed(CloseReason::Quit)
                };
                assert!(r.is_ok(), "StartTls answer refused");
            }
            // The data filter chain: the shell hands each line back (or drops it) and ends.
            Event::FilterData(l) => {
                let r = if shell.choice(4) == 3 {
                    Ok(())
                } else {
                    s.filtered_line(&l)
                };
                assert!(r.is_ok(), "a filtered line refused");
            }
            Event::FilterDataEnd => assert!(s.filtered_end().is_ok(), "filtered end refused"),
            Event::Request(r) => {
                let res = match r {
                    Request::Filter { .. } => s.filter_result(match shell.choice(5) {
                        0 => FilterDecision::Proceed,
                        1 => FilterDecision::Junk,
                        2 => FilterDecision::Rewrite("<rewritten@mx.test>".into()),
                        3 => FilterDecision::Reject("550 filtered".into()),
                        _ => FilterDecision::Disconnect("421 bye".into()),
                    }),
                    Request::CheckSender { .. } => s.sender_result(lookup(shell.choice(3))),
                    Request::CreateMessage => s.message_created(match shell.choice(2) {
                        0 => Ok(7),
                        _ => Err(()),
                    }),
                    Request::CheckRecipient { .. } => s.recipient_result(match shell.choice(3) {
                        0 => RecipientResult::Accepted,
                        1 => RecipientResult::Refused("550 Invalid recipient".into()),
                        _ => RecipientResult::EnvelopeFailed,
                    }),
                    Request::OpenMessage { .. } => s.message_opened(match shell.choice(2) {
                        0 => Ok(MessageOpened {
                            date: "Wed, 2 Dec 2026 00:00:00 +0000 (UTC)".into(),
                            message_id_uid: 1,
                        }),
                        _ => Err(()),
                    }),
                    Request::CommitMessage { .. } => s.commit_result(match shell.choice(2) {
                        0 => Ok(()),
                        _ => Err(()),
                    }),
                    Request::Authenticate { .. } => s.auth_result(lookup(shell.choice(3))),
                };
                assert!(
                    res.is_ok(),
                    "an answer to the session's own request was refused"
                );
            }
            _ => {}
        }
    }
}

fn lookup(c: u8) -> LookupResult {
    match c {
        0 => LookupResult::Ok,
        1 => LookupResult::PermFail,
        _ => LookupResult::TempFail,
    }
}
