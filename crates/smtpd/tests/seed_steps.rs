//! The seed's steps, replayed against the real `smtpd` binary over TCP, as the blog's author did
//! with telnet: every reply byte for byte, and the log lines.

mod common;

use common::*;

fn seed(name: &str) -> String {
    let p = format!(
        "{}/../../../shared/seed/configs/{}",
        env!("CARGO_MANIFEST_DIR"),
        name
    );
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

/// The seed listens on ::1 port 2525; we listen on a free port, on ::1 or 127.0.0.1.
fn on(config: &str, addr: &str) -> String {
    config.replace(
        "listen on ::1 port 2525",
        &format!("listen on {addr} port @PORT@"),
    )
}

fn ehlo_reply(host: &str, helo: &str, peer: &str) -> String {
    format!(
        "250-{host} Hello {helo} [{peer}], pleased to meet you\r\n250-8BITMIME\r\n\
         250-ENHANCEDSTATUSCODES\r\n250-SIZE 36700160\r\n250-DSN\r\n250 HELP\r\n"
    )
}

/// Log lines of one session without its id (ids are random).
fn session_lines(log: &[String]) -> Vec<String> {
    log.iter()
        .filter(|l| {
            l.len() > 17
                && l.as_bytes()[16] == b' '
                && l[..16].bytes().all(|b| b.is_ascii_hexdigit())
        })
        .map(|l| l[17..].to_string())
        .collect()
}

#[test]
fn step1_listen_and_refuse_everything() {
    let host = hostname();
    for (addr, peer, sock) in [
        ("127.0.0.1", "127.0.0.1", "127.0.0.1"),
        ("::1", "::1", "[::1]"),
    ] {
        let d = Daemon::start(&on(&seed("1-listen.conf"), addr), &[]);
        let sa: std::net::SocketAddr = format!("{}:{}", sock, d.port)
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        d.wait_log(|l| {
            l == format!(
                "debug: smtp: listen on {} port {} flags 0x400 pki \"\" ca \"\"",
                sock, d.port
            )
        });
        let mut c = Client::connect(sa);
        assert_eq!(c.reply(), format!("220 {host} ESMTP OpenSMTPD\r\n"));
        assert_eq!(
            c.cmd("EHLO localhost"),
            ehlo_reply(&host, "localhost", peer)
        );
        assert_eq!(c.cmd("MAIL FROM:<>"), "250 2.0.0 Ok\r\n");
        assert_eq!(
            c.cmd("RCPT TO:<root>"),
            format!("550 Invalid recipient: <root@{host}>\r\n")
        );
        assert_eq!(c.cmd("quit"), "221 2.0.0 Bye\r\n");
        assert!(c.closed());
        d.wait_log(|l| l.ends_with("smtp disconnected reason=quit"));
        let lines = session_lines(&d.log());
        let rdns = if addr == "127.0.0.1" {
            "localhost"
        } else {
            "<unknown>"
        };
        assert_eq!(
            lines,
            vec![
                format!("smtp connected address={} host={}", if addr == "::1" { "[::1]" } else { addr }, rdns),
                format!(
                    "smtp failed-command command=\"RCPT TO:<root>\" result=\"550 Invalid recipient: <root@{host}>\""
                ),
                "smtp disconnected reason=quit".to_string(),
            ],
            "log:\n{}",
            d.log().join("\n")
        );
    }
}

#[test]
fn sigterm_stops_cleanly() {
    let mut d = Daemon::start(&on(&seed("1-listen.conf"), "127.0.0.1"), &[]);
    assert_eq!(d.stop(), Some(0));
    assert_eq!(d.log().last().map(String::as_str), Some("Exiting"));
}
