//! The seed's steps, replayed against the real `smtpd` binary over TCP as the blog's author did
//! with telnet: every reply byte for byte, and the session log lines.
//!
//! The seed listens on ::1 port 2525 and tells clients apart by their IPv6 addresses; here the
//! daemon listens on 127.0.0.1 and clients come from 127.0.0.1 (reverse name `localhost` in
//! /etc/hosts) or 127.0.0.2 (no reverse name). Each case states OpenSMTPD's answers as the seed's
//! README gives them; when the real OpenSMTPD is installed (CI installs it), the same dialogue is
//! also run against it and both transcripts and logs must agree.

mod common;

use std::net::SocketAddr;

use common::*;

fn seed(name: &str) -> String {
    seed_config(name)
}

/// A seed config on 127.0.0.1, its mail under the test's folder.
fn local(name: &str) -> String {
    seed(name)
        .replace("listen on ::1 port 2525", "listen on 127.0.0.1 port @PORT@")
        .replace("/opt/vmail", "@DIR@/vmail")
}

fn ehlo(host: &str, helo: &str, peer: &str) -> String {
    format!(
        "250-{host} Hello {helo} [{peer}], pleased to meet you\r\n250-8BITMIME\r\n\
         250-ENHANCEDSTATUSCODES\r\n250-SIZE 36700160\r\n250-DSN\r\n250 HELP\r\n"
    )
}

const OK: &str = "250 2.0.0 Ok\r\n";
const RCPT_OK: &str = "250 2.1.5 Destination address valid: Recipient ok\r\n";
const BYE: &str = "221 2.0.0 Bye\r\n";

fn invalid(addr: &str) -> String {
    format!("550 Invalid recipient: <{addr}>\r\n")
}

/// Runs one dialogue against ours, checks it, and against the real program when it can.
fn check(config: &str, src: &str, cmds: &[&str], expected: &[String], expected_log: &[String]) {
    let ours = run(env!("CARGO_BIN_EXE_smtpd"), config, src, cmds);
    assert_eq!(ours.0, expected, "replies of rsmtpd");
    assert_eq!(ours.1, expected_log, "log of rsmtpd");
    if require_real("the re-check against OpenSMTPD") {
        let _one = real_lock();
        let theirs = run(REAL_SMTPD, config, src, cmds);
        assert_eq!(theirs, ours, "OpenSMTPD and rsmtpd differ");
    }
}

fn run(bin: &str, config: &str, src: &str, cmds: &[&str]) -> (Vec<String>, Vec<String>) {
    let d = Daemon::start_with(bin, config, &[]);
    let addr: SocketAddr = format!("127.0.0.1:{}", d.port)
        .parse()
        .unwrap_or_else(|e| panic!("{e}"));
    let replies = normalized_replies(&converse(src, addr, cmds));
    d.wait_log(|l| l.contains("smtp disconnected"));
    (replies, normalized_session_log(&d.log()))
}

fn connected(addr: &str, host: &str) -> String {
    format!("smtp connected address={addr} host={host}")
}

fn failed(cmd: &str, result: &str) -> String {
    format!("smtp failed-command command=\"{cmd}\" result=\"{result}\"")
}

const QUIT: &str = "smtp disconnected reason=quit";

#[test]
fn step1_everything_refused() {
    let h = hostname();
    check(
        &local("1-listen.conf"),
        "127.0.0.1",
        &["EHLO localhost", "MAIL FROM:<>", "RCPT TO:<root>", "quit"],
        &[
            format!("220 {h} ESMTP OpenSMTPD\r\n"),
            ehlo(&h, "localhost", "127.0.0.1"),
            OK.into(),
            invalid(&format!("root@{h}")),
            BYE.into(),
        ],
        &[
            connected("127.0.0.1", "localhost"),
            failed(
                "RCPT TO:<root>",
                &format!("550 Invalid recipient: <root@{h}>"),
            ),
            QUIT.into(),
        ],
    );
}

#[test]
fn step2_no_rdns_is_disconnected_at_connect() {
    check(
        &local("2-dns-filters.conf"),
        "127.0.0.2",
        &[],
        &["550 no rDNS please fix\r\n".into()],
        &[
            connected("127.0.0.2", "<unknown>"),
            failed("", "550 no rDNS please fix"),
            QUIT.into(),
        ],
    );
    let h = hostname();
    check(
        &local("2-dns-filters.conf"),
        "127.0.0.1",
        &["QUIT"],
        &[format!("220 {h} ESMTP OpenSMTPD\r\n"), BYE.into()],
        &[connected("127.0.0.1", "localhost"), QUIT.into()],
    );
}

#[test]
fn step3_users_and_aliases() {
    let h = hostname();
    let mut cmds = vec!["EHLO localhost", "MAIL FROM:<>"];
    let valid = ["abuse", "postmaster", "root", "foo", "bar"];
    let rcpts: Vec<String> = valid
        .iter()
        .flat_map(|u| [format!("RCPT TO:<{u}>"), format!("RCPT TO:<{u}@{h}>")])
        .chain(
            ["nobody", "_smtpd", "vmail", "foo@example.org"]
                .iter()
                .map(|u| format!("RCPT TO:<{u}>")),
        )
        .collect();
    cmds.extend(rcpts.iter().map(String::as_str));
    cmds.push("RCTP TO:<foo>");
    cmds.push("QUIT");
    let mut expected = vec![
        format!("220 {h} ESMTP OpenSMTPD\r\n"),
        ehlo(&h, "localhost", "127.0.0.1"),
        OK.into(),
    ];
    expected.extend((0..valid.len() * 2).map(|_| RCPT_OK.to_string()));
    let mut log = vec![connected("127.0.0.1", "localhost")];
    for u in ["nobody", "_smtpd", "vmail"] {
        expected.push(invalid(&format!("{u}@{h}")));
        log.push(failed(
            &format!("RCPT TO:<{u}>"),
            &format!("550 Invalid recipient: <{u}@{h}>"),
        ));
    }
    expected.push(invalid("foo@example.org"));
    log.push(failed(
        "RCPT TO:<foo@example.org>",
        "550 Invalid recipient: <foo@example.org>",
    ));
    expected.push("500 5.5.1 Invalid command: Command unrecognized\r\n".into());
    log.push(failed(
        "RCTP TO:<foo>",
        "500 5.5.1 Invalid command: Command unrecognized",
    ));
    expected.push(BYE.into());
    log.push(QUIT.into());
    check(
        &local("3-users-fixed.conf"),
        "127.0.0.1",
        &cmds,
        &expected,
        &log,
    );
}

#[test]
fn step4_one_domain() {
    let h = hostname();
    check(
        &local("4-domain-fixed.conf"),
        "127.0.0.1",
        &[
            "HELO localhost",
            "MAIL FROM:<>",
            "RCPT TO:<foo@bsdsx.fr>",
            "RCPT TO:<abuse@bsdsx.fr>",
            "RCPT TO:<foo>",
            &format!("RCPT TO:<foo@{h}>"),
            "QUIT",
        ],
        &[
            format!("220 {h} ESMTP OpenSMTPD\r\n"),
            format!("250 {h} Hello localhost [127.0.0.1], pleased to meet you\r\n"),
            OK.into(),
            RCPT_OK.into(),
            RCPT_OK.into(),
            invalid(&format!("foo@{h}")),
            invalid(&format!("foo@{h}")),
            BYE.into(),
        ],
        &[
            connected("127.0.0.1", "localhost"),
            failed(
                "RCPT TO:<foo>",
                &format!("550 Invalid recipient: <foo@{h}>"),
            ),
            failed(
                &format!("RCPT TO:<foo@{h}>"),
                &format!("550 Invalid recipient: <foo@{h}>"),
            ),
            QUIT.into(),
        ],
    );
}

#[test]
fn step5_domain_wildcards_are_strict() {
    let h = hostname();
    let cmds = [
        "EHLO localhost",
        "MAIL FROM:<>",
        "RCPT TO:<foo@bsdsx.fr>",
        "RCPT TO:<foo@cun.bsdsx.fr>",
        "RCPT TO:<foo@BSDSX.FR>",
        "RCPT TO:<foo@absdsx.fr>",
        "RCPT TO:<foo@bsdsxafr>",
        "RCPT TO:<foo@bsdsx.fr.fr>",
        "RCPT TO:<foo@b.a.bsdsx.fr>",
        "QUIT",
    ];
    let mut expected = vec![
        format!("220 {h} ESMTP OpenSMTPD\r\n"),
        ehlo(&h, "localhost", "127.0.0.1"),
        OK.into(),
        RCPT_OK.into(),
        RCPT_OK.into(),
        RCPT_OK.into(),
    ];
    let mut log = vec![connected("127.0.0.1", "localhost")];
    // `*.bsdsx.fr` stands for exactly one more label (checked on OpenSMTPD 6.8.0p2).
    for d in ["absdsx.fr", "bsdsxafr", "bsdsx.fr.fr", "b.a.bsdsx.fr"] {
        expected.push(invalid(&format!("foo@{d}")));
        log.push(failed(
            &format!("RCPT TO:<foo@{d}>"),
            &format!("550 Invalid recipient: <foo@{d}>"),
        ));
    }
    expected.push(BYE.into());
    log.push(QUIT.into());
    check(
        &local("5-domains-table.conf"),
        "127.0.0.1",
        &cmds,
        &expected,
        &log,
    );
}

#[test]
fn step6_spoofed_senders_are_cut_off() {
    let h = hostname();
    check(
        &local("6-mail-from.conf"),
        "127.0.0.1",
        &[
            "EHLO localhost",
            "MAIL FROM:<root@example.com>",
            "RSET",
            "MAIL FROM:<root@bsdsx.fr>",
            "QUIT",
        ],
        &[
            format!("220 {h} ESMTP OpenSMTPD\r\n"),
            ehlo(&h, "localhost", "127.0.0.1"),
            OK.into(),
            "250 2.0.0 Reset state\r\n".into(),
            "550 invalid mail from\r\n".into(),
            String::new(),
        ],
        &[
            connected("127.0.0.1", "localhost"),
            failed("MAIL FROM:<root@bsdsx.fr>", "550 invalid mail from"),
            QUIT.into(),
        ],
    );
}

#[test]
fn step7_mail_without_rdns_is_accepted_as_junk() {
    let h = hostname();
    let config = local("7-deliver.conf");
    let cmds = [
        "HELO cun",
        "MAIL FROM:<>",
        "RCPT TO:<foo>",
        "DATA",
        "Subject: test\r\n\r\nhello\r\n.",
        "QUIT",
    ];
    let d = Daemon::start(&config, &[]);
    let addr: SocketAddr = format!("127.0.0.1:{}", d.port)
        .parse()
        .unwrap_or_else(|e| panic!("{e}"));
    let replies = normalized_replies(&converse("127.0.0.2", addr, &cmds));
    // `foo` is foo@HOST: valid only where the host name is under bsdsx.fr, as the seed's is.
    let accepted = h.ends_with(".bsdsx.fr") && h.matches('.').count() == 2;
    if !accepted {
        assert_eq!(replies[3], invalid(&format!("foo@{h}")));
        return;
    }
    assert_eq!(
        replies[4],
        "354 Enter mail, end with \".\" on a line by itself\r\n"
    );
    assert_eq!(
        replies[5],
        "250 2.0.0 MSGID Message accepted for delivery\r\n"
    );
}

#[test]
fn step7_junk_marks_the_queued_message() {
    // The seed's step 7 with a domain any host name has, so the message is accepted here.
    let config = local("7-deliver.conf");
    let d = Daemon::start(&config, &[]);
    let addr: SocketAddr = format!("127.0.0.1:{}", d.port)
        .parse()
        .unwrap_or_else(|e| panic!("{e}"));
    let replies = converse(
        "127.0.0.2",
        addr,
        &[
            "HELO cun",
            "MAIL FROM:<>",
            "RCPT TO:<foo@bsdsx.fr>",
            "DATA",
            "Subject: test\r\n\r\nhello\r\n.",
            "QUIT",
        ],
    );
    assert_eq!(
        normalized_replies(&replies)[5],
        "250 2.0.0 MSGID Message accepted for delivery\r\n"
    );
    let msgid = &replies[5][10..18];
    let path = d
        .spool()
        .join("queue")
        .join(&msgid[..2])
        .join(msgid)
        .join("message");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    // OpenSMTPD writes the junk mark first, before its Received line.
    assert!(
        text.starts_with("X-Spam: Yes\nReceived: from cun (<unknown> [127.0.0.2])\n"),
        "{text}"
    );
}

#[test]
fn sigterm_stops_cleanly() {
    let mut d = Daemon::start(&local("1-listen.conf"), &[]);
    assert_eq!(d.stop(), Some(0));
    assert_eq!(d.log().last().map(String::as_str), Some("Exiting"));
}

/// A daemon that cannot start (its port is taken) fails the test at once with its last log
/// line, ours and the real one alike, instead of a wait for a log line that never comes.
#[test]
fn a_daemon_whose_port_is_taken_is_reported_at_once() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let config = local("1-listen.conf").replace("@PORT@", &port.to_string());
    let mut bins = vec![env!("CARGO_BIN_EXE_smtpd")];
    if require_real("the same check on OpenSMTPD") {
        bins.push(REAL_SMTPD);
    }
    for bin in bins {
        let t = std::time::Instant::now();
        let Err((failure, _command)) = Daemon::try_launch(&[], bin, &config, &[], None) else {
            panic!("{bin} started on a taken port");
        };
        assert!(
            t.elapsed() < std::time::Duration::from_secs(20),
            "{bin}: {:?}",
            t.elapsed()
        );
        assert!(failure.exited.is_some(), "{bin}: {failure:?}");
        assert!(failure.port_taken(), "{bin}: {failure:?}");
    }
}
