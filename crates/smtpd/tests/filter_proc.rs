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

/// A filter that completes the handshake and then never reads its stdin again, nor ends at its
/// end, and ignores SIGTERM and SIGHUP: only a SIGKILL ends it (a filter stuck in a lookup, a
/// careless script).
const STUBBORN: &str = r#"import signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
signal.signal(signal.SIGHUP, signal.SIG_IGN)
for line in sys.stdin:
    if line.strip() == 'config|ready':
        break
sys.stdout.write('register|ready\n')
sys.stdout.flush()
while True:
    time.sleep(60)
"#;

/// Kills what a failed test left running (an orphaned [`STUBBORN`] sleeps for ever).
struct KillLeft(String);

impl Drop for KillLeft {
    fn drop(&mut self) {
        common::procfs::kill_running(&self.0);
    }
}

/// A filter process that ignores the end of its stdin dies with the daemon that started it
/// when that is killed with SIGKILL: split (the root parent started it; the engine dies with
/// the parent too) or not (`SMTPD_USER=root`: the daemon started it). Without the parent-death
/// signal it was orphaned, one more at each restart of the daemon (6.8's are too).
fn a_stubborn_filter_dies_with_its_daemon_killed_by_sigkill(split: bool) {
    let how = if split { "split" } else { "unsplit" };
    let users = ["opensmtpq", "opensmtpd"]
        .iter()
        .all(|u| nix::unistd::User::from_name(u).ok().flatten().is_some());
    if !common::require(
        common::is_root() && users && std::path::Path::new("/usr/bin/python3").exists(),
        "needs root (the daemon's parent), the opensmtpq and opensmtpd users (Debian's \
         opensmtpd) and /usr/bin/python3 (the filter)",
    ) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    // The filter runs as the filter user, who must read the script.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let script = dir.path().join(format!("stubborn-{how}.py"));
    std::fs::write(&script, STUBBORN).expect("write the filter");
    let program = script.display().to_string();
    let _left = KillLeft(program.clone());
    let conf = format!(
        "filter stubborn proc-exec \"/usr/bin/python3 {program}\"\n\
         listen on 127.0.0.1 port @PORT@ filter stubborn\n\
         action \"l\" maildir \"@DIR@/md\"\n\
         match from any for any action \"l\"\n"
    );
    let prefix: &[&str] = if split {
        &[]
    } else {
        &["env", "SMTPD_USER=root"]
    };
    let d = Daemon::launch(prefix, env!("CARGO_BIN_EXE_smtpd"), &conf, &[], None);
    // Listening means every filter said register|ready.
    let filters = common::procfs::running(&program);
    assert_eq!(filters.len(), 1, "{how}: one filter process: {filters:?}");
    let filter = filters[0];
    assert_eq!(
        common::procfs::parent_of(filter),
        Some(d.pid()),
        "{how}: the daemon's child"
    );
    let engine = common::procfs::children(d.pid())
        .iter()
        .any(|p| p.cmdline.starts_with("smtpd: engine"));
    assert_eq!(engine, split, "{how}: an engine process");

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(d.pid() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("SIGKILL");
    let t0 = Instant::now();
    while !common::procfs::running(&program).is_empty() && t0.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        common::procfs::running(&program).is_empty(),
        "{how}: the filter {filter} outlived its daemon killed by SIGKILL (its parent now {:?})",
        common::procfs::parent_of(filter)
    );
    eprintln!(
        "{how}: the filter was gone {:?} after the SIGKILL",
        t0.elapsed()
    );
}

#[test]
fn a_filter_of_the_split_daemon_dies_with_its_parent_killed_by_sigkill() {
    a_stubborn_filter_dies_with_its_daemon_killed_by_sigkill(true);
}

#[test]
fn a_filter_of_the_unsplit_daemon_dies_with_it_killed_by_sigkill() {
    a_stubborn_filter_dies_with_its_daemon_killed_by_sigkill(false);
}
