//! Report events of a filtered session: the order and fields OpenSMTPD 6.8.0p2 sends them to
//! its `proc-exec` filters. `refused_recipients_and_rset` is what the real smtpd sent a recording
//! filter (`register|report|smtp-in|*`) for the same dialogue, with the time, the session id and
//! the events only the shell knows (link-connect, tx-envelope, link-disconnect) left out; the
//! others follow smtp_session.c and are compared live end to end in crates/smtpd/tests.

use std::net::{IpAddr, Ipv4Addr};

use rsmtpd_protocol::received::PeerAddr;
use rsmtpd_protocol::server::*;

fn session() -> Session {
    let cfg = SessionConfig {
        hostname: "vm".into(),
        filtered: true,
        ..SessionConfig::default()
    };
    let conn = ConnectionInfo {
        peer: PeerAddr::Inet(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        rdns: "localhost".into(),
        smtpname: None,
        local_enqueue: false,
    };
    Session::new(cfg, conn)
}

/// Drives the session, answering every request, and returns the reports as `event|params`.
fn pump(
    s: &mut Session,
    reports: &mut Vec<String>,
    decide: &dyn Fn(FilterPhase, &str) -> FilterDecision,
) {
    while let Some(ev) = s.poll_event() {
        match ev {
            Event::Report(r) => reports.push(format!(
                "{}|{}",
                r.event,
                String::from_utf8_lossy(&r.params)
            )),
            Event::Request(req) => {
                let r = match req {
                    Request::Filter { phase, param } => s.filter_result(decide(phase, &param)),
                    Request::CheckSender { .. } => s.sender_result(LookupResult::Ok),
                    Request::CreateMessage => s.message_created(Ok(0x4b6c5863)),
                    Request::CheckRecipient { rcpt, .. } => {
                        s.recipient_result(if rcpt.rcpt.user == "bad" {
                            RecipientResult::Refused("550 Invalid recipient".into())
                        } else {
                            RecipientResult::Accepted
                        })
                    }
                    Request::OpenMessage { .. } => s.message_opened(Ok(MessageOpened {
                        date: "Wed, 25 Nov 2026 11:36:08 +0000 (UTC)".into(),
                        message_id_uid: 1,
                    })),
                    Request::CommitMessage { .. } => s.commit_result(Ok(())),
                    Request::Authenticate { .. } => s.auth_result(LookupResult::PermFail),
                };
                r.expect("answer accepted");
            }
            _ => {}
        }
    }
}

fn run(lines: &[&str], decide: &dyn Fn(FilterPhase, &str) -> FilterDecision) -> Vec<String> {
    let mut s = session();
    let mut reports = Vec::new();
    pump(&mut s, &mut reports, decide);
    for l in lines {
        s.receive(format!("{l}\r\n").as_bytes());
        pump(&mut s, &mut reports, decide);
    }
    reports
}

fn proceed(_: FilterPhase, _: &str) -> FilterDecision {
    FilterDecision::Proceed
}

#[test]
fn refused_recipients_and_rset() {
    let got = run(
        &[
            "ehlo client.test",
            "mail FROM:<a@x.org> size=37",
            "rcpt TO:<bad@y.org>",
            "rset",
        ],
        &proceed,
    );
    let want = [
        "filter-response|connected|proceed",
        "protocol-server|220 vm ESMTP OpenSMTPD",
        "link-greeting|vm",
        "protocol-client|ehlo client.test",
        "filter-response|ehlo|proceed",
        "link-identify|EHLO|client.test",
        "protocol-server|250-vm Hello client.test [127.0.0.1], pleased to meet you",
        "protocol-server|250-8BITMIME",
        "protocol-server|250-ENHANCEDSTATUSCODES",
        "protocol-server|250-SIZE 36700160",
        "protocol-server|250-DSN",
        "protocol-server|250 HELP",
        "protocol-client|mail FROM:<a@x.org> size=37",
        "filter-response|mail-from|proceed",
        "protocol-server|250 2.0.0 Ok",
        "tx-begin|4b6c5863",
        "tx-mail|4b6c5863|ok|a@x.org",
        "protocol-client|rcpt TO:<bad@y.org>",
        "filter-response|rcpt-to|proceed",
        "protocol-server|550 Invalid recipient: <bad@y.org>",
        "tx-rcpt|4b6c5863|permfail|bad@y.org",
        "protocol-client|rset",
        "filter-response|rset|proceed",
        "protocol-server|250 2.0.0 Reset state",
        "tx-rollback|4b6c5863",
        "tx-reset|4b6c5863",
    ];
    assert_eq!(got, want);
}

#[test]
fn message_commit_and_filter_decisions() {
    let decide = |p: FilterPhase, param: &str| match p {
        FilterPhase::RcptTo if param.contains("rw") => FilterDecision::Rewrite("<b@y.org>".into()),
        FilterPhase::Commit => FilterDecision::Reject("550 no thanks".into()),
        _ => FilterDecision::Proceed,
    };
    let got = run(
        &[
            "helo c",
            "mail from:<a@x.org>",
            "rcpt to:<rw@y.org>",
            "data",
            "hi",
            ".",
        ],
        &decide,
    );
    let tail: Vec<&str> = got
        .iter()
        .map(String::as_str)
        .skip_while(|l| !l.starts_with("protocol-client|rcpt"))
        .collect();
    assert_eq!(
        tail,
        [
            "protocol-client|rcpt to:<rw@y.org>",
            "filter-response|rcpt-to|rewrite|<b@y.org>",
            "protocol-server|250 2.1.5 Destination address valid: Recipient ok",
            "tx-rcpt|4b6c5863|ok|rw@y.org",
            "protocol-client|data",
            "filter-response|data|proceed",
            "protocol-server|354 Enter mail, end with \".\" on a line by itself",
            "tx-data|4b6c5863|ok",
            "protocol-client|.",
            "filter-response|commit|reject|550 no thanks",
            "protocol-server|550 no thanks",
            "tx-data|4b6c5863|permfail",
            "tx-rollback|4b6c5863",
            "tx-reset|4b6c5863",
        ]
    );
}

#[test]
fn committed_message_and_masked_auth() {
    let got = run(
        &[
            "helo c",
            "mail from:<>",
            "rcpt to:<b@y.org>",
            "data",
            ".",
            "AUTH PLAIN AGEAYg==",
        ],
        &proceed,
    );
    assert!(
        got.contains(&"tx-mail|4b6c5863|ok|".to_string()),
        "{got:#?}"
    );
    let i = got
        .iter()
        .position(|l| l.starts_with("protocol-server|250 2.0.0 4b6c5863"))
        .expect("accepted");
    assert!(got[i + 1].starts_with("tx-commit|4b6c5863|"), "{got:#?}");
    assert_eq!(got[i + 2], "tx-reset|4b6c5863");
    assert!(
        got.contains(&"protocol-client|AUTH PLAIN ********".to_string()),
        "{got:#?}"
    );
}

#[test]
fn no_reports_without_filters() {
    let mut s = Session::new(
        SessionConfig::default(),
        ConnectionInfo {
            peer: PeerAddr::Local,
            rdns: "localhost".into(),
            smtpname: None,
            local_enqueue: true,
        },
    );
    let mut reports = Vec::new();
    pump(&mut s, &mut reports, &proceed);
    s.receive(b"helo x\r\n");
    pump(&mut s, &mut reports, &proceed);
    assert!(reports.is_empty());
}

/// smtp_session.c reports `link-auth|USER|pass|fail|error` after its `smtp authentication`
/// log line and before the reply (the shell reports `link-tls` itself, before the client
/// certificate check, as IO_TLSREADY does).
#[test]
fn link_auth_after_each_attempt() {
    use rsmtpd_protocol::received::{PeerCert, TlsInfo};
    let cfg = SessionConfig {
        hostname: "vm".into(),
        filtered: true,
        starttls: true,
        auth: true,
        ..SessionConfig::default()
    };
    let conn = ConnectionInfo {
        peer: PeerAddr::Inet(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        rdns: "localhost".into(),
        smtpname: None,
        local_enqueue: false,
    };
    let mut s = Session::new(cfg, conn);
    let mut reports = Vec::new();
    let mut answers = vec![
        LookupResult::PermFail,
        LookupResult::TempFail,
        LookupResult::Ok,
    ];
    let mut step = |s: &mut Session, reports: &mut Vec<String>| {
        while let Some(ev) = s.poll_event() {
            match ev {
                Event::Report(r) => reports.push(format!(
                    "{}|{}",
                    r.event,
                    String::from_utf8_lossy(&r.params)
                )),
                Event::StartTls => s
                    .tls_established(TlsInfo {
                        version: "TLSv1.3".into(),
                        cipher: "TLS_AES_256_GCM_SHA384".into(),
                        bits: 256,
                        peer_cert: PeerCert::None,
                    })
                    .expect("tls expected"),
                Event::Request(Request::Filter { .. }) => s
                    .filter_result(FilterDecision::Proceed)
                    .expect("filter expected"),
                Event::Request(Request::Authenticate { .. }) => {
                    s.auth_result(answers.remove(0)).expect("auth expected")
                }
                _ => {}
            }
        }
    };
    step(&mut s, &mut reports);
    for l in [
        "ehlo c",
        "starttls",
        "ehlo c",
        "AUTH PLAIN AGZvbwBiYXI=",
        "AUTH PLAIN AGZvbwBiYXI=",
        "AUTH PLAIN AGZvbwBiYXI=",
    ] {
        s.receive(format!("{l}\r\n").as_bytes());
        step(&mut s, &mut reports);
    }
    let auth: Vec<&String> = reports
        .iter()
        .filter(|r| r.starts_with("link-auth|"))
        .collect();
    assert_eq!(
        auth,
        [
            "link-auth|foo|fail",
            "link-auth|foo|error",
            "link-auth|foo|pass"
        ]
    );
    let i = reports
        .iter()
        .position(|r| r == "link-auth|foo|pass")
        .expect("pass reported");
    assert_eq!(
        reports[i + 1],
        "protocol-server|235 2.0.0 Authentication succeeded"
    );
}
