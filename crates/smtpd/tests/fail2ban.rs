//! fail2ban finds in our log the failures it finds in OpenSMTPD's, for the same sessions: the
//! filter of tests/fail2ban/ run by `fail2ban-regex` over both logs.

mod common;

use std::net::SocketAddr;
use std::process::Command;

use common::*;

const CONFIG: &str =
    "filter no_rdns phase connect match !rdns disconnect \"550 no rDNS please fix\"
listen on 127.0.0.1 port @PORT@ filter no_rdns
match from any reject
";

/// Failing sessions from several addresses; returns the daemon's log.
fn sessions(bin: &str) -> Vec<String> {
    let d = Daemon::start_with(bin, CONFIG, &[]);
    let addr: SocketAddr = format!("127.0.0.1:{}", d.port).parse().expect("addr");
    converse(
        "127.0.0.1",
        addr,
        &[
            "HELO a",
            "MAIL FROM:<a@b.c>",
            "RCPT TO:<root>",
            "FOO",
            "QUIT",
        ],
    );
    converse("127.0.0.2", addr, &["QUIT"]);
    converse("127.0.0.3", addr, &["QUIT"]);
    converse("127.0.0.1", addr, &["HELO a", "QUIT"]);
    d.wait_log(|_| {
        d.log()
            .iter()
            .filter(|l| l.contains("smtp disconnected"))
            .count()
            >= 4
    });
    d.log()
}

/// `fail2ban-regex -o <ip>` over a log: the address of each failure found.
fn banned(log: &[String]) -> Vec<String> {
    let dir = tempfile::tempdir().expect("tempdir");
    let filter = dir.path().join("opensmtpd.conf");
    std::fs::copy(
        format!(
            "{}/../../tests/fail2ban/opensmtpd.conf",
            env!("CARGO_MANIFEST_DIR")
        ),
        &filter,
    )
    .expect("filter");
    std::fs::copy(
        "/etc/fail2ban/filter.d/common.conf",
        dir.path().join("common.conf"),
    )
    .expect("fail2ban's common.conf (scripts/test-deps.sh installs fail2ban)");
    let logfile = dir.path().join("mail.log");
    std::fs::write(&logfile, log.join("\n") + "\n").expect("log");
    let out = Command::new("fail2ban-regex")
        .args(["-o", "<ip>"])
        .arg(&logfile)
        .arg(&filter)
        .output()
        .expect("fail2ban-regex");
    let mut ips: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    ips.sort();
    ips
}

#[test]
fn fail2ban_finds_the_same_failures_as_in_opensmtpd_logs() {
    let ours = banned(&sessions(env!("CARGO_BIN_EXE_smtpd")));
    // RCPT refused and an unknown command from .1, no reverse name for .2 and .3.
    assert_eq!(
        ours,
        vec!["127.0.0.1", "127.0.0.1", "127.0.0.2", "127.0.0.3"]
    );
    if require_real("the re-check against OpenSMTPD") {
        let _one = real_lock();
        let theirs = banned(&sessions(REAL_SMTPD));
        assert_eq!(theirs, ours);
    }
}

/// Failed AUTH attempts over STARTTLS, with Python's smtplib from several addresses; returns
/// the daemon's log.
fn auth_failures(bin: &str) -> Vec<String> {
    let c = common::certs::Certs::new();
    c.ca("ca", "Test CA").leaf(
        "mx",
        Some("ca"),
        "mx.example.org",
        &["mx.example.org"],
        "serverAuth",
        true,
    );
    // `smtpctl encrypt alicepass`.
    std::fs::write(
        c.path("creds"),
        "alice $6$cLAl6luxSVvmFNeQ$NknhQoE/jiQv9dL9c3k0p3caN3VZlWvnVUHbpbNoPVVLnmcaGU5EZfSF6YNv1bT0llGBDGKJNPPAbtFwHouyp0\n",
    )
    .expect("creds");
    let config = format!(
        "pki mx.example.org cert \"{mx}.crt\"\npki mx.example.org key \"{mx}.key\"\n\
         table creds file:{creds}\n\
         listen on 127.0.0.1 port @PORT@ tls pki mx.example.org auth <creds>\n\
         match from any reject\n",
        mx = c.p("mx"),
        creds = c.p("creds"),
    );
    let d = Daemon::start_with(bin, &config, &[]);
    let script = r#"
import smtplib, ssl, sys
port = int(sys.argv[1])
ctx = ssl.create_default_context(cafile=sys.argv[2]); ctx.check_hostname = False
for src, user, pw in [('127.0.0.4', 'alice', 'guess1'), ('127.0.0.4', 'root', 'guess2'),
                      ('127.0.0.5', 'alice', 'guess3'), ('127.0.0.6', 'alice', 'alicepass')]:
    s = smtplib.SMTP('127.0.0.1', port, local_hostname='client.example', source_address=(src, 0))
    s.starttls(context=ctx)
    try:
        s.login(user, pw)
    except smtplib.SMTPAuthenticationError:
        pass
    s.quit()
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
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    d.wait_log(|_| {
        d.log()
            .iter()
            .filter(|l| l.contains("smtp disconnected"))
            .count()
            >= 4
    });
    d.log()
}

#[test]
fn fail2ban_finds_failed_authentications() {
    if let Some(why) = common::certs::unavailable() {
        common::skip(why);
        return;
    }
    let log = auth_failures(env!("CARGO_BIN_EXE_smtpd"));
    assert!(log
        .iter()
        .any(|l| l.ends_with("smtp authentication user=root result=permfail")));
    // smtplib tries PLAIN, then LOGIN: two failures per wrong password, none for the right one.
    let ours = banned(&log);
    assert_eq!(
        ours,
        vec![
            "127.0.0.4",
            "127.0.0.4",
            "127.0.0.4",
            "127.0.0.4",
            "127.0.0.5",
            "127.0.0.5"
        ]
    );
    if std::path::Path::new(TLS_SMTPD).exists() {
        let _one = real_lock();
        assert_eq!(banned(&auth_failures(TLS_SMTPD)), ours);
    }
}
