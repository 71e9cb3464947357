//! SIGHUP reloads the configuration (ours on purpose: OpenSMTPD 6.8 ends on it, see signals.rs
//! and docs/compatibility.md). Against the real binary: a changed rule applies to the next
//! session while one opened before keeps its own rules, a broken file or one that changes a
//! listener keeps the running configuration and says why with its file:line, a reload that
//! would strand queued mail is refused, and the systemd unit's own ExecReload lines work.

use std::process::Command;
use std::time::Duration;

use crate::common::*;
use nix::sys::signal::Signal;

fn hup(d: &Daemon) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(d.pid() as i32), Signal::SIGHUP);
}

/// Rewrites the daemon's smtpd.conf, with `@PORT@` and `@DIR@` as at start.
fn rewrite(d: &Daemon, config: &str) {
    let text = config
        .replace("@PORT@", &d.port.to_string())
        .replace("@DIR@", d.dir.path().to_str().expect("utf-8 dir"));
    std::fs::write(d.dir.path().join("smtpd.conf"), text).expect("rewrite config");
}

/// How many lines of the log satisfy `pred`.
fn logged(d: &Daemon, pred: impl Fn(&str) -> bool) -> usize {
    d.log().iter().filter(|l| pred(l)).count()
}

/// Waits for the `n`th reload outcome (reloaded or not) and returns the log then.
fn wait_reload(d: &Daemon, n: usize) -> Vec<String> {
    let done = |l: &str| {
        l.starts_with("info: smtpd: configuration reloaded from ")
            || l.starts_with("warn: smtpd: configuration not reloaded: ")
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while logged(d, done) < n {
        assert!(
            std::time::Instant::now() < deadline && d.exit_status().is_none(),
            "no reload outcome {n}; log:\n{}",
            d.log().join("\n")
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    d.log()
}

fn users(uid: u32) -> String {
    format!("table users {{ bob = \"{uid}:{uid}:@DIR@/bob\" }}\n")
}

fn v1(uid: u32) -> String {
    format!(
        "listen on 127.0.0.1 port @PORT@\n{}\
         action \"a\" maildir \"@DIR@/bob/a\" userbase <users>\n\
         match from any for any action \"a\"\n",
        users(uid)
    )
}

/// The second configuration: mail goes to another Maildir, and one domain is refused.
fn v2(uid: u32) -> String {
    format!(
        "listen on 127.0.0.1 port @PORT@\n{}\
         action \"a\" maildir \"@DIR@/bob/a\" userbase <users>\n\
         action \"b\" maildir \"@DIR@/bob/b\" userbase <users>\n\
         match from any for domain \"blocked.test\" reject\n\
         match from any for any action \"b\"\n",
        users(uid)
    )
}

fn send(c: &mut Client, rcpt: &str, text: &str) -> Vec<String> {
    vec![
        c.cmd("MAIL FROM:<alice@example.org>"),
        c.cmd(&format!("RCPT TO:<{rcpt}>")),
        c.cmd("DATA"),
        c.cmd(&format!("Subject: {text}\r\n\r\n{text}\r\n.")),
    ]
}

fn wait_delivered(d: &Daemon, n: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while logged(d, |l| l.ends_with("result=Ok stat=Delivered")) < n {
        assert!(
            std::time::Instant::now() < deadline,
            "{n} deliveries not logged:\n{}",
            d.log().join("\n")
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn new_sessions_follow_the_new_rules_and_an_open_one_keeps_its_own() {
    let uid = delivery_uid(1000);
    let d = Daemon::start(&v1(uid), &[]);
    user_dir(&d, "bob", uid);
    // Opened on the first configuration.
    let mut before = Client::connect(d.addr());
    assert!(before.reply().starts_with("220 "));
    assert!(before.cmd("EHLO before").starts_with("250"));

    rewrite(&d, &v2(uid));
    hup(&d);
    let log = wait_reload(&d, 1);
    let path = d.dir.path().join("smtpd.conf");
    assert!(
        log.contains(&format!(
            "info: smtpd: configuration reloaded from {} (generation 1)",
            path.display()
        )),
        "{log:?}"
    );

    // A new session: the new rules.
    let mut after = Client::connect(d.addr());
    assert!(after.reply().starts_with("220 "));
    assert!(after.cmd("EHLO after").starts_with("250"));
    assert!(after
        .cmd("MAIL FROM:<alice@example.org>")
        .starts_with("250"));
    let refused = after.cmd("RCPT TO:<bob@blocked.test>");
    assert!(refused.starts_with("550 "), "{refused}");
    assert!(after.cmd("RSET").starts_with("250"));
    let r = send(&mut after, "bob@example.org", "after the reload");
    assert!(r[3].starts_with("250 2.0.0 "), "{r:?}");
    after.cmd("QUIT");

    // The session opened before: its own rules to its end (the domain refused now is not
    // refused there, and its mail goes to the first Maildir), and its mail is delivered.
    let r = send(&mut before, "bob@blocked.test", "before the reload");
    assert!(r[1].starts_with("250 "), "{r:?}");
    assert!(r[3].starts_with("250 2.0.0 "), "{r:?}");
    before.cmd("QUIT");

    wait_delivered(&d, 2);
    let a = mail_texts(&d.dir.path().join("bob/a/new"));
    let b = mail_texts(&d.dir.path().join("bob/b/new"));
    assert_eq!(a.len(), 1, "{a:?}");
    assert!(a[0].contains("before the reload"), "{}", a[0]);
    assert_eq!(b.len(), 1, "{b:?}");
    assert!(b[0].contains("after the reload"), "{}", b[0]);
    assert!(d.exit_status().is_none(), "the daemon ended");
}

#[test]
fn a_broken_config_keeps_the_running_one_and_says_where() {
    let uid = delivery_uid(1000);
    let d = Daemon::start(&v1(uid), &[]);
    user_dir(&d, "bob", uid);
    let path = d.dir.path().join("smtpd.conf");
    let path = path.display();

    // A syntax error.
    rewrite(&d, &format!("{}match for any actoin \"b\"\n", v2(uid)));
    hup(&d);
    let log = wait_reload(&d, 1);
    assert!(
        log.contains(&format!("warn: smtpd: reload: {path}:7: syntax error")),
        "{log:?}"
    );
    assert!(
        log.contains(&format!(
            "warn: smtpd: configuration not reloaded: {path} has 1 problem, the previous \
             configuration stays in service"
        )),
        "{log:?}"
    );

    // What the start refuses, a reload refuses too: a table backend with no program.
    rewrite(
        &d,
        &format!("table ext nosuch:/etc/mail/nosuch.conf\n{}", v2(uid)),
    );
    hup(&d);
    let log = wait_reload(&d, 2);
    assert!(
        log.iter().any(|l| l.starts_with("warn: smtpd: reload: ")
            && l.contains("backend \"nosuch\" does not exist")),
        "{log:?}"
    );

    // A changed listener needs a restart: nothing of the file is applied.
    rewrite(
        &d,
        &v2(uid).replace("port @PORT@", &format!("port {}", free_port())),
    );
    hup(&d);
    let log = wait_reload(&d, 3);
    assert!(
        log.iter().any(|l| l.starts_with(&format!(
            "warn: smtpd: reload: {path}:1: listener on 127.0.0.1 port "
        )) && l.ends_with("added or changed: needs a restart")),
        "{log:?}"
    );

    // Still serving, on the first configuration.
    let mut c = Client::connect(d.addr());
    assert!(c.reply().starts_with("220 "));
    c.cmd("EHLO client");
    let r = send(&mut c, "bob@blocked.test", "still the first");
    assert!(r[3].starts_with("250 2.0.0 "), "{r:?}");
    c.cmd("QUIT");
    wait_delivered(&d, 1);
    assert_eq!(mail_texts(&d.dir.path().join("bob/a/new")).len(), 1);
    assert_eq!(
        logged(&d, |l| l.starts_with("info: smtpd: configuration reloaded")),
        0
    );
}

#[test]
fn a_reload_that_would_strand_queued_mail_is_refused() {
    let uid = delivery_uid(1000);
    // Deliveries paused: the message waits in the queue for action "a".
    let d = Daemon::start(&v1(uid), &["-P", "mda"]);
    user_dir(&d, "bob", uid);
    let mut c = Client::connect(d.addr());
    assert!(c.reply().starts_with("220 "));
    c.cmd("EHLO client");
    let r = send(&mut c, "bob@example.org", "queued");
    assert!(r[3].starts_with("250 2.0.0 "), "{r:?}");
    c.cmd("QUIT");

    let without_a = v2(uid).replace(
        "action \"a\" maildir \"@DIR@/bob/a\" userbase <users>\n",
        "",
    );
    rewrite(&d, &without_a);
    hup(&d);
    let log = wait_reload(&d, 1);
    let path = d.dir.path().join("smtpd.conf");
    assert!(
        log.contains(&format!(
            "warn: smtpd: reload: {}: action \"a\" is gone, but 1 envelope in the queue waits \
             for it (let them be delivered, or remove them with smtpctl, first)",
            path.display()
        )),
        "{log:?}"
    );
    // Once it is delivered, the same file reloads.
    let out = ctl(&d, "smtpctl", &["resume", "mda"], "", None);
    assert!(out.status.success(), "{out:?}");
    wait_delivered(&d, 1);
    std::thread::sleep(Duration::from_millis(200));
    hup(&d);
    let log = wait_reload(&d, 2);
    assert!(
        log.iter()
            .any(|l| l.starts_with("info: smtpd: configuration reloaded from ")),
        "{log:?}"
    );
    assert_eq!(mail_texts(&d.dir.path().join("bob/a/new")).len(), 1);
}

/// The unit's ExecReload lines, read from the unit file as the package test reads them, run as
/// systemd runs them (each in turn; a failing one fails the reload and the next does not run),
/// with our binary and the test's file in place of /usr/sbin/smtpd and /etc/smtpd.conf.
#[test]
fn the_units_reload_command_reloads() {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../etc/systemd/rsmtpd.service"
    ))
    .expect("unit");
    let lines: Vec<&str> = unit
        .lines()
        .filter_map(|l| l.strip_prefix("ExecReload="))
        .collect();
    assert_eq!(
        lines,
        [
            "/usr/sbin/smtpd -n -f /etc/smtpd.conf",
            "/bin/kill -HUP $MAINPID"
        ],
        "{unit}"
    );
    let uid = delivery_uid(1000);
    let d = Daemon::start(&v1(uid), &[]);
    user_dir(&d, "bob", uid);
    let conf = d.dir.path().join("smtpd.conf");
    let reload = || -> bool {
        for line in &lines {
            let words: Vec<String> = line
                .split_whitespace()
                .map(|w| match w {
                    "/usr/sbin/smtpd" => env!("CARGO_BIN_EXE_smtpd").to_string(),
                    "/etc/smtpd.conf" => conf.to_string_lossy().into_owned(),
                    "$MAINPID" => d.pid().to_string(),
                    w => w.to_string(),
                })
                .collect();
            let st = Command::new(&words[0])
                .args(&words[1..])
                .output()
                .expect("run ExecReload");
            if !st.status.success() {
                return false;
            }
        }
        true
    };
    // A file that does not parse: `smtpd -n` fails the reload, no signal is sent.
    rewrite(&d, &format!("{}bogus\n", v2(uid)));
    assert!(!reload(), "a broken config reloaded");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(logged(&d, |l| l.contains("reloading")), 0, "{:?}", d.log());

    rewrite(&d, &v2(uid));
    assert!(reload());
    wait_reload(&d, 1);
    let mut c = Client::connect(d.addr());
    assert!(c.reply().starts_with("220 "));
    c.cmd("EHLO client");
    assert!(c.cmd("MAIL FROM:<alice@example.org>").starts_with("250"));
    assert!(c.cmd("RCPT TO:<bob@blocked.test>").starts_with("550 "));
    c.cmd("QUIT");
    assert!(d.exit_status().is_none());
}
