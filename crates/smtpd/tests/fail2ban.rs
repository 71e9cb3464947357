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
