//! Dovecot reads what we deliver: (a) our maildir deliveries (one message a filter marked junk,
//! into `.Junk`, one clean, into `new`) are listed and fetched, headers and all, by `doveadm`;
//! (b) our `lmtp` action, over TCP and over a unix socket, hands messages to a Dovecot LMTP
//! server that stores them where `doveadm` finds them; (c) Dovecot's submission service relays
//! what its authenticated users send into us.
//!
//! Every Dovecot here is the test's own: its own config in a temporary folder (`base_dir`,
//! `state_dir`, log, Maildir), started as `dovecot -F -c CONF` in a process group of its own and
//! stopped at the end (SIGTERM to the group, then SIGKILL); no system config is read or touched.
//!
//! Needs root (our deliveries and Dovecot's setuid to the mail user) and Dovecot (packages
//! `dovecot-core` and `dovecot-lmtpd`; `dovecot-submissiond` for (c)). Without them the tests say they check nothing and pass;
//! with `RSMTPD_INSTALL_DOVECOT=1`, as root, a missing Dovecot is installed with apt-get.

use std::io::Read;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::common::peer;
use crate::common::*;

const DOVECOT: &str = "/usr/sbin/dovecot";
const DOVEADM: &str = "/usr/bin/doveadm";
/// Dovecot's LMTP server binary (dovecot-lmtpd).
const LMTPD: &str = "/usr/lib/dovecot/lmtp";
/// Dovecot's submission server (dovecot-submissiond).
const SUBMISSIOND: &str = "/usr/lib/dovecot/submission";
/// The mail user's uid and gid (no passwd entry needed: both userbases are static tables).
const UID: u32 = 2000;

fn dovecot_installed() -> bool {
    [DOVECOT, DOVEADM, LMTPD]
        .iter()
        .all(|p| Path::new(p).exists())
}

/// Runs a command with a time limit; (success, stdout + stderr).
fn run_limited(cmd: &mut Command, limit: Duration) -> (bool, String) {
    let mut child = match cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => return (false, format!("cannot run: {e}")),
    };
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let text = format!(
        "{}{}",
        t_out.join().unwrap_or_default(),
        t_err.join().unwrap_or_default()
    );
    match status {
        Some(st) => (st.success(), text),
        None => (false, format!("{text}\n(timed out after {limit:?})")),
    }
}

/// Whether the tests can run; installs Dovecot when asked to (once per test process).
fn dovecot_ready(test: &str) -> bool {
    static CHECK: Mutex<Option<bool>> = Mutex::new(None);
    let _ = test; // the skip names the test itself (its thread's name)
    if !require(
        nix::unistd::geteuid().is_root(),
        "not root (deliveries and Dovecot setuid to the mail user)",
    ) {
        return false;
    }
    let mut guard = CHECK.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(ok) = *guard {
        return require(
            ok,
            "Dovecot is not installed (RSMTPD_INSTALL_DOVECOT=1 installs it)",
        );
    }
    if !dovecot_installed() && std::env::var("RSMTPD_INSTALL_DOVECOT").as_deref() == Ok("1") {
        eprintln!("{test}: installing dovecot-core dovecot-lmtpd (RSMTPD_INSTALL_DOVECOT=1)");
        let install = || {
            run_limited(
                Command::new("apt-get")
                    .args([
                        "install",
                        "-y",
                        "dovecot-core",
                        "dovecot-lmtpd",
                        "dovecot-submissiond",
                    ])
                    .env("DEBIAN_FRONTEND", "noninteractive"),
                Duration::from_secs(600),
            )
        };
        let (ok, out) = install();
        if !ok {
            eprintln!("{test}: apt-get install failed, updating the lists first:\n{out}");
            let _ = run_limited(
                Command::new("apt-get").arg("update"),
                Duration::from_secs(600),
            );
            let (ok, out) = install();
            if !ok {
                eprintln!("{test}: apt-get install failed again:\n{out}");
            }
        }
    }
    let ok = dovecot_installed();
    *guard = Some(ok);
    require(
        ok,
        &format!(
            "Dovecot is not installed ({DOVECOT}, {DOVEADM}, {LMTPD}; \
             RSMTPD_INSTALL_DOVECOT=1 installs it)"
        ),
    )
}

/// A Dovecot of the test's own: LMTP on 127.0.0.1 and on a unix socket, one static user database
/// whose every user (`%Ln`: the address's local part) has uid/gid `UID` and the same Maildir.
struct Dovecot {
    child: Child,
    dir: tempfile::TempDir,
    conf: PathBuf,
    lmtp_port: u16,
}

impl Dovecot {
    fn start() -> Dovecot {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        // Dovecot's unprivileged processes (dovecot, dovenull) and the mail user go through it.
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o711)).expect("chmod");
        let home = d.join("home");
        std::fs::create_dir(&home).expect("mkdir home");
        nix::unistd::chown(
            &home,
            Some(nix::unistd::Uid::from_raw(UID)),
            Some(nix::unistd::Gid::from_raw(UID)),
        )
        .expect("chown home");
        let lmtp_port = free_port();
        let p = d.to_str().expect("utf-8 dir");
        let conf = d.join("dovecot.conf");
        std::fs::write(
            &conf,
            format!(
                "base_dir = {p}/run\n\
                 state_dir = {p}/state\n\
                 instance_name = rsmtpd-test-{lmtp_port}\n\
                 log_path = {p}/dovecot.log\n\
                 info_log_path = {p}/dovecot.log\n\
                 protocols = lmtp\n\
                 listen = 127.0.0.1\n\
                 ssl = no\n\
                 mail_location = maildir:{p}/home/Maildir\n\
                 auth_username_format = %Ln\n\
                 passdb {{\n  driver = static\n  args = nopassword=y\n}}\n\
                 userdb {{\n  driver = static\n  args = uid={UID} gid={UID} home={p}/home\n}}\n\
                 service lmtp {{\n\
                   inet_listener lmtp {{\n    address = 127.0.0.1\n    port = {lmtp_port}\n  }}\n\
                   unix_listener lmtp {{\n    mode = 0666\n  }}\n\
                 }}\n"
            ),
        )
        .expect("write dovecot.conf");
        let child = Command::new(DOVECOT)
            .arg("-F")
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start dovecot");
        let mut dc = Dovecot {
            child,
            dir,
            conf,
            lmtp_port,
        };
        // Ready when the LMTP listener greets.
        let addr: SocketAddr = format!("127.0.0.1:{lmtp_port}").parse().expect("addr");
        let log = dc.dir.path().join("dovecot.log");
        let deadline = peer::wait_greeting(
            &mut dc.child,
            addr,
            Duration::from_secs(30),
            "dovecot",
            "dovecot's LMTP",
            &log,
        );
        // The unix socket as well.
        while !dc.lmtp_socket().exists() {
            assert!(Instant::now() < deadline, "no {:?}", dc.lmtp_socket());
            std::thread::sleep(Duration::from_millis(50));
        }
        dc
    }

    fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    fn lmtp_socket(&self) -> PathBuf {
        self.dir.path().join("run/lmtp")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dovecot.log")).unwrap_or_default()
    }

    /// `doveadm -c CONF ARGS...` (30 s at most); its output, or a panic with Dovecot's log.
    fn doveadm(&self, args: &[&str]) -> String {
        let (ok, out) = run_limited(
            Command::new(DOVEADM).arg("-c").arg(&self.conf).args(args),
            Duration::from_secs(30),
        );
        assert!(
            ok,
            "doveadm {args:?} failed:\n{out}\ndovecot log:\n{}",
            self.log()
        );
        out
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        peer::stop_group(&mut self.child);
    }
}

fn addr(d: &Daemon) -> SocketAddr {
    format!("127.0.0.1:{}", d.port).parse().expect("addr")
}

fn send(d: &Daemon, src: &str, rcpt: &str, message: &str) {
    let rcpt_cmd = format!("RCPT TO:<{rcpt}>");
    let r = converse(
        src,
        addr(d),
        &[
            "HELO client",
            "MAIL FROM:<sender@example.net>",
            &rcpt_cmd,
            "DATA",
            message,
            "QUIT",
        ],
    );
    assert!(
        r.get(5).is_some_and(|l| l.starts_with("250 2.0.0 ")),
        "{r:?}"
    );
}

fn wait_delivered(d: &Daemon, n: usize) {
    d.wait_log_for(Duration::from_secs(30), |_| {
        d.log()
            .iter()
            .filter(|l| l.contains("result=Ok stat=Delivered"))
            .count()
            >= n
    });
}

#[test]
fn doveadm_reads_our_maildir_deliveries_junk_and_clean() {
    if !dovecot_ready("doveadm_reads_our_maildir_deliveries_junk_and_clean") {
        return;
    }
    let dc = Dovecot::start();
    let home = dc.home();
    let h = home.to_str().expect("utf-8");
    // 127.0.0.2 has no reverse name (resolver refused, /etc/hosts has none): junk.
    let config = format!(
        "filter check_rdns phase connect match !rdns junk\n\
         listen on 127.0.0.1 port @PORT@ filter check_rdns\n\
         table users {{ bench = \"{UID}:{UID}:{h}\" }}\n\
         action \"mail\" maildir \"{h}/Maildir\" junk userbase <users>\n\
         match from any for domain \"example.org\" action \"mail\"\n"
    );
    let d = Daemon::start(&config, &[]);
    send(
        &d,
        "127.0.0.2",
        "bench@example.org",
        "Subject: junk one\r\nX-Test: first\r\n\r\nbuy now\r\n.",
    );
    send(
        &d,
        "127.0.0.1",
        "bench@example.org",
        "Subject: clean one\r\nX-Test: second\r\n\r\nhello dovecot\r\n.",
    );
    wait_delivered(&d, 2);
    assert_eq!(
        std::fs::read_dir(home.join("Maildir/.Junk/new"))
            .map(|r| r.count())
            .unwrap_or(0),
        1,
        "junk in .Junk/new"
    );

    let list = dc.doveadm(&["mailbox", "list", "-u", "bench"]);
    let boxes: Vec<&str> = list.lines().map(str::trim).collect();
    assert!(
        boxes.contains(&"INBOX") && boxes.contains(&"Junk"),
        "{list}"
    );
    let count = dc.doveadm(&[
        "mailbox", "status", "-u", "bench", "messages", "INBOX", "Junk",
    ]);
    assert!(
        count.contains("INBOX messages=1") && count.contains("Junk messages=1"),
        "{count}"
    );

    let inbox = dc.doveadm(&[
        "fetch", "-u", "bench", "hdr body", "mailbox", "INBOX", "all",
    ]);
    for want in [
        "Delivered-To: bench@example.org",
        "Received: from client (localhost [127.0.0.1])",
        "Subject: clean one",
        "X-Test: second",
        "Message-ID: <",
        "hello dovecot",
    ] {
        assert!(inbox.contains(want), "INBOX lacks {want:?}:\n{inbox}");
    }
    assert!(!inbox.contains("X-Spam"), "{inbox}");

    let junk = dc.doveadm(&["fetch", "-u", "bench", "hdr body", "mailbox", "Junk", "all"]);
    for want in [
        "Delivered-To: bench@example.org",
        "X-Spam: Yes",
        "Received: from client (<unknown> [127.0.0.2])",
        "Subject: junk one",
        "X-Test: first",
        "buy now",
    ] {
        assert!(junk.contains(want), "Junk lacks {want:?}:\n{junk}");
    }

    // Dovecot's search finds them by header too.
    let found = dc.doveadm(&[
        "search", "-u", "bench", "mailbox", "*", "header", "X-Test", "second",
    ]);
    assert_eq!(found.lines().count(), 1, "{found}");
}

#[test]
fn our_lmtp_action_delivers_into_dovecot_over_tcp_and_unix_socket() {
    if !dovecot_ready("our_lmtp_action_delivers_into_dovecot_over_tcp_and_unix_socket") {
        return;
    }
    let dc = Dovecot::start();
    let h = dc.home();
    let h = h.to_str().expect("utf-8");
    let sock = dc.lmtp_socket();
    let config = format!(
        "listen on 127.0.0.1 port @PORT@\n\
         table users {{ bench = \"{UID}:{UID}:{h}\", sock = \"{UID}:{UID}:{h}\" }}\n\
         action \"tcp\" lmtp \"127.0.0.1:{port}\" rcpt-to userbase <users>\n\
         action \"unix\" lmtp \"{sock}\" rcpt-to userbase <users>\n\
         match from any for rcpt-to \"sock@example.org\" action \"unix\"\n\
         match from any for domain \"example.org\" action \"tcp\"\n",
        port = dc.lmtp_port,
        sock = sock.display()
    );
    let d = Daemon::start(&config, &[]);
    send(
        &d,
        "127.0.0.1",
        "bench@example.org",
        "Subject: via tcp\r\nX-Test: lmtp-tcp\r\n\r\nover the wire\r\n.",
    );
    send(
        &d,
        "127.0.0.1",
        "sock@example.org",
        "Subject: via unix\r\nX-Test: lmtp-unix\r\n\r\nover the socket\r\n.",
    );
    wait_delivered(&d, 2);
    // Dovecot logged both as saved, each for the user it was addressed to.
    let deadline = Instant::now() + Duration::from_secs(10);
    while dc.log().matches("saved mail to INBOX").count() < 2 {
        assert!(Instant::now() < deadline, "dovecot log:\n{}", dc.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = dc.log();
    assert!(log.contains("lmtp(bench)"), "{log}");
    assert!(log.contains("lmtp(sock)"), "{log}");

    // Both users share one Maildir (static userdb): both messages are in its INBOX.
    let inbox = dc.doveadm(&[
        "fetch", "-u", "bench", "hdr body", "mailbox", "INBOX", "all",
    ]);
    for want in [
        "Subject: via tcp",
        "X-Test: lmtp-tcp",
        "over the wire",
        "Subject: via unix",
        "X-Test: lmtp-unix",
        "over the socket",
        "Received: from client (localhost [127.0.0.1])",
        // Dovecot's own, on what it stored: it did the saving.
        "Delivered-To: bench@example.org",
        "Delivered-To: sock@example.org",
    ] {
        assert!(inbox.contains(want), "INBOX lacks {want:?}:\n{inbox}");
    }
    let found = dc.doveadm(&[
        "search", "-u", "bench", "mailbox", "INBOX", "header", "X-Test", "lmtp",
    ]);
    assert_eq!(found.lines().count(), 2, "{found}");
    assert!(d
        .log()
        .iter()
        .any(|l| l.contains("lmtp delivery") || l.contains("delivery evpid=")));
}

/// Relaying into Dovecot's LMTP (`relay host lmtp://127.0.0.1:PORT`): the relay client speaks
/// LHLO, gets one reply per recipient after the data, and logs an `mta delivery` per envelope.
#[test]
fn relay_to_an_lmtp_url_delivers_into_dovecot() {
    if !dovecot_ready("relay_to_an_lmtp_url_delivers_into_dovecot") {
        return;
    }
    let dc = Dovecot::start();
    let config = format!(
        "listen on 127.0.0.1 port @PORT@\n\
         action \"lmtp\" relay host lmtp://127.0.0.1:{port}\n\
         match from any for domain \"example.org\" action \"lmtp\"\n",
        port = dc.lmtp_port,
    );
    let d = Daemon::start(&config, &[]);
    send(
        &d,
        "127.0.0.1",
        "bench@example.org",
        "Subject: relayed over lmtp\r\nX-Test: relay-lmtp\r\n\r\nby the relay client\r\n.",
    );
    let l = d.wait_log(|l| l.contains("mta delivery"));
    assert!(
        l.contains("to=<bench@example.org>") && l.contains("result=\"Ok\""),
        "{l}"
    );
    assert!(d.log().iter().any(|l| l.contains(&format!(
        "mta connecting address=lmtp://127.0.0.1:{}",
        dc.lmtp_port
    ))));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !dc.log().contains("saved mail to INBOX") {
        assert!(Instant::now() < deadline, "dovecot log:\n{}", dc.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let inbox = dc.doveadm(&[
        "fetch", "-u", "bench", "hdr body", "mailbox", "INBOX", "all",
    ]);
    for want in [
        "Subject: relayed over lmtp",
        "X-Test: relay-lmtp",
        "by the relay client",
    ] {
        assert!(inbox.contains(want), "INBOX lacks {want:?}:\n{inbox}");
    }
}

/// A Dovecot of the test's own with only its submission service on 127.0.0.1:`port`, relaying
/// to `relay_port` (`submission_relay_host`), its users any name with any password (a static
/// passdb), PLAIN allowed in clear (loopback, `ssl = no`). Ready when it greets.
struct Submission {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl Submission {
    fn start(relay_port: u16) -> Submission {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o711)).expect("chmod");
        let port = free_port();
        let p = d.to_str().expect("utf-8 dir");
        let conf = d.join("dovecot.conf");
        std::fs::write(
            &conf,
            format!(
                "base_dir = {p}/run\n\
                 state_dir = {p}/state\n\
                 instance_name = rsmtpd-submission-{port}\n\
                 log_path = {p}/dovecot.log\n\
                 info_log_path = {p}/dovecot.log\n\
                 protocols = submission\n\
                 listen = 127.0.0.1\n\
                 ssl = no\n\
                 disable_plaintext_auth = no\n\
                 auth_mechanisms = plain\n\
                 hostname = submission.test\n\
                 mail_location = maildir:{p}/home/Maildir\n\
                 submission_relay_host = 127.0.0.1\n\
                 submission_relay_port = {relay_port}\n\
                 submission_relay_ssl = no\n\
                 passdb {{\n  driver = static\n  args = nopassword=y\n}}\n\
                 userdb {{\n  driver = static\n  args = uid={UID} gid={UID} home={p}/home\n}}\n\
                 service submission-login {{\n\
                   inet_listener submission {{\n    address = 127.0.0.1\n    port = {port}\n  }}\n\
                 }}\n"
            ),
        )
        .expect("write dovecot.conf");
        let child = Command::new(DOVECOT)
            .arg("-F")
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start dovecot");
        let mut sub = Submission { child, dir, port };
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        let log = sub.dir.path().join("dovecot.log");
        peer::wait_greeting(
            &mut sub.child,
            addr,
            Duration::from_secs(30),
            "dovecot",
            "dovecot's submission",
            &log,
        );
        sub
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dovecot.log")).unwrap_or_default()
    }
}

impl Drop for Submission {
    fn drop(&mut self) {
        peer::stop_group(&mut self.child);
    }
}

/// Receiving from Dovecot: a user authenticates to Dovecot's submission service and sends a
/// message to two recipients; Dovecot relays it into us (its own EHLO, MAIL FROM the user's
/// address, one RCPT per recipient, the body with its Received line) and we deliver it to
/// the Maildir of each.
#[test]
fn dovecot_submission_relays_into_us() {
    if !dovecot_ready("dovecot_submission_relays_into_us") {
        return;
    }
    if !require(
        Path::new(SUBMISSIOND).exists(),
        &format!("{SUBMISSIOND} is not installed (package dovecot-submissiond)"),
    ) {
        return;
    }
    let home = tempfile::tempdir().expect("tempdir");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        nix::unistd::chown(
            home.path(),
            Some(nix::unistd::Uid::from_raw(UID)),
            Some(nix::unistd::Gid::from_raw(UID)),
        )
        .expect("chown home");
    }
    let h = home.path().to_str().expect("utf-8");
    let config = format!(
        "listen on 127.0.0.1 port @PORT@\n\
         table users {{ bench = \"{UID}:{UID}:{h}\", other = \"{UID}:{UID}:{h}\" }}\n\
         action \"mail\" maildir \"{h}/Maildir\" userbase <users>\n\
         match from any for domain \"example.org\" action \"mail\"\n"
    );
    let d = Daemon::start(&config, &[]);
    let sub = Submission::start(d.port);
    let mut c = Client::connect(format!("127.0.0.1:{}", sub.port).parse().expect("addr"));
    let banner = c.reply();
    assert!(banner.starts_with("220"), "{banner}");
    let ehlo = c.cmd("EHLO client.test");
    assert!(ehlo.starts_with("250"), "{ehlo}");
    // PLAIN: "\0bench@example.net\0secret".
    let auth = c.cmd("AUTH PLAIN AGJlbmNoQGV4YW1wbGUubmV0AHNlY3JldA==");
    assert!(auth.starts_with("235"), "{auth}\n{}", sub.log());
    for (cmd, want) in [
        ("MAIL FROM:<bench@example.net>", "250"),
        ("RCPT TO:<bench@example.org>", "250"),
        ("RCPT TO:<other@example.org>", "250"),
        ("DATA", "354"),
        (
            "Subject: via dovecot submission\r\nX-Test: submission\r\n\r\nrelayed by dovecot\r\n.",
            "250",
        ),
    ] {
        let r = c.cmd(cmd);
        assert!(
            r.starts_with(want),
            "{cmd}: {r}\ndovecot log:\n{}\nour log:\n{}",
            sub.log(),
            d.log().join("\n")
        );
    }
    c.cmd("QUIT");
    wait_delivered(&d, 2);
    let log = d.log();
    assert!(
        log.iter()
            .any(|l| l.contains("smtp connected address=127.0.0.1")),
        "{log:?}"
    );
    for rcpt in ["bench@example.org", "other@example.org"] {
        assert!(
            log.iter().any(|l| l.contains("smtp envelope")
                && l.contains("from=<bench@example.net>")
                && l.contains(&format!("to=<{rcpt}>"))),
            "{rcpt}: {log:?}"
        );
    }
    let new = home.path().join("Maildir/new");
    let texts: Vec<String> = std::fs::read_dir(&new)
        .map(|r| {
            r.filter_map(Result::ok)
                .filter_map(|e| std::fs::read_to_string(e.path()).ok())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(texts.len(), 2, "{texts:?}");
    for t in &texts {
        for want in [
            "Subject: via dovecot submission",
            "X-Test: submission",
            "relayed by dovecot",
            // Our Received line names Dovecot's EHLO.
            "Received: from submission.test (localhost [127.0.0.1])",
        ] {
            assert!(t.contains(want), "lacks {want:?}:\n{t}");
        }
    }
}
