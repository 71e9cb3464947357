//! proc-exec filters end to end: a filter written here in Python (tests/filter-proc/recorder.py,
//! the protocol by hand) records every line smtpd sends it for a set of sessions (plain
//! multi-recipient, junk, reject at mail-from and rcpt-to, rewrite, RSET, NOOP, disconnect at
//! EHLO, a client gone mid-DATA). The same sessions run through our smtpd and, when it can run
//! here, the real OpenSMTPD 6.8.0p2 with the same filter; the transcripts must be equal apart
//! from times, ids, ports and sizes (OpenSMTPD counts its Received line twice in a filtered
//! message's size, see README). Both are kept in tests/filter-proc/ (re-recorded live).

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{Client, Daemon, REAL_SMTPD};

const CONFIG: &str = "filter rec proc-exec \"/usr/bin/python3 @DIR@/recorder.py @DIR@/rec.log\"\n\
listen on 127.0.0.1 port @PORT@ hostname mx.test filter rec\n\
action \"l\" maildir \"@DIR@/md\"\n\
match from any for any action \"l\"\n";

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/filter-proc")
        .join(name)
}

fn sessions(addr: SocketAddr) -> Vec<String> {
    let mut replies = Vec::new();
    let mut run = |cmds: &[&str], close_mid_data: bool| {
        let mut c = Client::connect(addr);
        replies.push(c.reply());
        for cmd in cmds {
            if *cmd == "." || !cmd.is_empty() && cmd.starts_with("Subject") {
                c.send(format!("{cmd}\r\n").as_bytes());
                if *cmd == "." {
                    replies.push(c.reply());
                }
                continue;
            }
            let r = c.cmd(cmd);
            let done = r.starts_with("421") || r.starts_with("221");
            replies.push(r);
            if done {
                break;
            }
        }
        if close_mid_data {
            c.send(b"Subject: cut\r\n");
            drop(c);
            std::thread::sleep(Duration::from_millis(300));
        }
    };
    run(
        &[
            "EHLO client.test",
            "MAIL FROM:<alice@x.org>",
            "RCPT TO:<root@localhost>",
            "RCPT TO:<nobody1@localhost>",
            "RCPT TO:<root@localhost>",
            "DATA",
            "Subject: hello",
            ".",
            "QUIT",
        ],
        false,
    );
    run(
        &[
            "HELO client.test",
            "MAIL FROM:<rej@x.org>",
            "MAIL FROM:<bob@x.org>",
            "RCPT TO:<rej@localhost>",
            "RCPT TO:<rw@localhost>",
            "RSET",
            "NOOP",
            "QUIT",
        ],
        false,
    );
    run(
        &[
            "HELO junk.test",
            "MAIL FROM:<carol@x.org>",
            "RCPT TO:<root@localhost>",
            "DATA",
            "Subject: spam",
            ".",
            "QUIT",
        ],
        false,
    );
    run(&["EHLO bye.test"], false);
    run(
        &[
            "EHLO client.test",
            "MAIL FROM:<dave@x.org>",
            "RCPT TO:<root@localhost>",
            "DATA",
        ],
        true,
    );
    replies
}

/// The recorder's lines without what differs run to run.
fn normalize(text: &str) -> Vec<String> {
    let mut sessions: Vec<String> = Vec::new();
    let mut ids: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for line in text.lines() {
        let mut f: Vec<String> = line.split('|').map(str::to_string).collect();
        if f.len() > 5 && (f[0] == "report" || f[0] == "filter") {
            f[2] = "TIME".into();
            let s = f[5].clone();
            let n = sessions.iter().position(|x| *x == s).unwrap_or_else(|| {
                sessions.push(s.clone());
                sessions.len() - 1
            });
            f[5] = format!("SESSION{n}");
            if f[0] == "filter" && f.len() > 6 {
                f[6] = "TOKEN".into();
            }
            if f[0] == "report" {
                match f[4].as_str() {
                    "link-connect" if f.len() > 9 => {
                        f[8] = "127.0.0.1:PORT".into();
                        f[9] = "127.0.0.1:PORT".into();
                    }
                    "tx-reset" | "tx-begin" | "tx-mail" | "tx-rcpt" | "tx-envelope" | "tx-data"
                    | "tx-commit" | "tx-rollback"
                        if f.len() > 6 =>
                    {
                        let m = f[6].clone();
                        let k = ids.iter().position(|x| *x == m).unwrap_or_else(|| {
                            ids.push(m.clone());
                            ids.len() - 1
                        });
                        f[6] = format!("MSG{k}");
                        if f[4] == "tx-envelope" && f.len() > 7 {
                            f[7] = "EVPID".into();
                        }
                        if f[4] == "tx-commit" && f.len() > 7 {
                            f[7] = "SIZE".into();
                        }
                    }
                    "protocol-server"
                        if f.len() > 6
                            && f[6].starts_with("250 2.0.0 ")
                            && f[6].ends_with("Message accepted for delivery") =>
                    {
                        f[6] = "250 2.0.0 MSGID Message accepted for delivery".into();
                    }
                    _ => {}
                }
            }
        }
        out.push(f.join("|"));
    }
    out
}

fn record(bin: &str) -> (Vec<String>, Vec<String>, Vec<String>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let script = dir.path().join("recorder.py");
    std::fs::copy(fixture("recorder.py"), &script).expect("copy recorder");
    // The filter runs as the unprivileged filter user: it must be able to write its log.
    let _ = std::process::Command::new("chmod")
        .args(["0777", dir.path().to_str().unwrap_or("/")])
        .status();
    let config = CONFIG.replace("@DIR@", dir.path().to_str().expect("utf-8"));
    let d = if bin == REAL_SMTPD {
        Daemon::start_with(REAL_SMTPD, &config, &["-T", "filters"])
    } else {
        Daemon::start_with(bin, &config, &["-T", "filters"])
    };
    let replies = sessions(SocketAddr::from(([127, 0, 0, 1], d.port)));
    let deadline = Instant::now() + Duration::from_secs(10);
    let rec = dir.path().join("rec.log");
    let mut text = String::new();
    while Instant::now() < deadline {
        text = std::fs::read_to_string(&rec).unwrap_or_default();
        if text.matches("link-disconnect").count() >= 5 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = d.log();
    (normalize(&text), common::normalized_replies(&replies), log)
}

#[test]
fn recorded_lines_and_replies_match_opensmtpd() {
    if !common::root_recipient_ok() {
        return;
    }
    let (ours, our_replies, our_log) = record(env!("CARGO_BIN_EXE_smtpd"));
    assert!(
        our_log.iter().any(|l| l == "rec: recorder ready"),
        "the filter's stderr is logged as NAME: LINE\n{}",
        our_log.join("\n")
    );
    // The trace of a deferred phase and its resume, as OpenSMTPD prints them.
    assert!(
        our_log
            .iter()
            .any(|l| l
                .ends_with("filters protocol phase=ehlo, resume=n, action=deferred, filter=rec"))
    );
    assert!(our_log
        .iter()
        .any(|l| l.ends_with("filters protocol phase=connect, resume=y, action=proceed")));
    let ours_text = ours.join("\n") + "\n";
    let replies_text = our_replies.join("");
    if common::real_available() && std::env::var_os("RSMTPD_NO_REAL").is_none() {
        let _lock = common::real_lock();
        if !std::path::Path::new("/var/spool/smtpd").exists() {
            let _ = std::fs::create_dir_all("/var/spool/smtpd");
        }
        let (theirs, their_replies, _) = record(REAL_SMTPD);
        let theirs_text = theirs.join("\n") + "\n";
        let _ = std::fs::write(fixture("opensmtpd.transcript"), &theirs_text);
        let _ = std::fs::write(fixture("opensmtpd.replies"), their_replies.join(""));
        assert_eq!(
            replies_text,
            their_replies.join(""),
            "client-visible replies"
        );
        assert_eq!(ours_text, theirs_text, "filter transcripts");
    } else {
        println!("SKIPPED: live OpenSMTPD comparison (not root or not installed); using fixtures");
        let theirs_text =
            std::fs::read_to_string(fixture("opensmtpd.transcript")).unwrap_or_default();
        let their_replies =
            std::fs::read_to_string(fixture("opensmtpd.replies")).unwrap_or_default();
        assert_eq!(replies_text, their_replies, "client-visible replies");
        assert_eq!(ours_text, theirs_text, "filter transcripts");
    }
    let _ = std::fs::write(fixture("rsmtpd.transcript"), &ours_text);
}
