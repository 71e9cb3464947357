//! Alias `|command` and `/file` targets of a system alias table run, when the daemon is root,
//! as OpenSMTPD's unprivileged user (`opensmtpd` in Debian's build: `SMTPD_USER`), not as root
//! and not as a user the system lacks. With a userbase, that user is looked up there, and its
//! absence fails the mail as OpenSMTPD does. Both daemons side by side; OpenSMTPD 6.8.0p2's
//! outcome is the fixture tests/everyday/alias-*.txt.

mod common;

use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};

use common::refns::{self, Transcript, Which};
use common::*;

const ALIASES: &str =
    "pipe: \"|/bin/sh -c 'id -un > @DIR@/out/pipe.txt; cat >> @DIR@/out/pipe.txt'\"\n\
     file: @DIR@/out/file.mbox\n";

fn send(d: &Daemon, rcpt: &str) {
    let mut c = Client::connect(d.addr());
    c.reply();
    for (cmd, want) in [
        ("HELO client", "250 "),
        ("MAIL FROM:<bob@bounce.org>", "250 "),
        (&format!("RCPT TO:<{rcpt}>") as &str, "250 "),
        ("DATA", "354 "),
        ("Subject: alias target\r\n\r\nhi\r\n.", "250 "),
        ("QUIT", "221 "),
    ] {
        let r = c.cmd(cmd);
        assert!(r.starts_with(want), "{cmd}: {r}");
    }
}

/// The `mda delivery` line of `to`, reduced to what compares: user, result, stat.
fn delivery(d: &Daemon, to: &str) -> String {
    let needle = format!(" to=<{to}> ");
    let l = d.wait_log_for(Duration::from_secs(30), |l| {
        l.contains(" mda delivery ") && l.contains(&needle)
    });
    let mut out = Vec::new();
    for key in ["user=", "result="] {
        if let Some(w) = l.split(' ').find(|w| w.starts_with(key)) {
            out.push(w.to_string());
        }
    }
    if let Some(i) = l.find(" stat=") {
        out.push(l[i + 1..].to_string());
    }
    out.join(" ")
}

fn owner_and_text(path: &std::path::Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(m) = std::fs::metadata(path) {
            let user = nix::unistd::User::from_uid(m.uid().into())
                .ok()
                .flatten()
                .map(|u| u.name)
                .unwrap_or_default();
            let text = std::fs::read_to_string(path).unwrap_or_default();
            // An mbox's From line ends in the date: its first two words compare.
            let first = text
                .lines()
                .next()
                .unwrap_or("")
                .split(' ')
                .take(2)
                .collect::<Vec<_>>()
                .join(" ");
            let hi = text.contains("\nhi\n");
            return format!("owner {user}, first line {first:?}, body there {hi}");
        }
        if Instant::now() > deadline {
            return "missing".into();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The bounce's DSN fields, once it is in bob's Maildir.
fn bounce(files: &std::path::Path) -> String {
    let new = files.join("bounces/new");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let texts = mail_texts(&new);
        if let Some(text) = texts.first() {
            return text
                .lines()
                .filter(|l| {
                    l.starts_with("Status:")
                        || l.starts_with("Action:")
                        || l.starts_with("Diagnostic-Code:")
                        || l.contains("@example.org")
                })
                .collect::<Vec<_>>()
                .join("\n");
        }
        if Instant::now() > deadline {
            return "no bounce".into();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn run(which: Which, userbase: bool) -> String {
    use std::os::unix::fs::PermissionsExt;
    let files = tempfile::tempdir().expect("tempdir");
    let dir = files.path();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let out = dir.join("out");
    std::fs::create_dir_all(&out).expect("out");
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let bounces = dir.join("bounces");
    std::fs::create_dir_all(&bounces).expect("bounces");
    std::os::unix::fs::chown(&bounces, Some(1000), Some(1000)).expect("chown");
    let dir_text = dir.to_str().expect("utf-8");
    std::fs::write(dir.join("aliases"), ALIASES.replace("@DIR@", dir_text)).expect("aliases");
    let conf = format!(
        "listen on 127.0.0.1 port @PORT@\n\
         table aliases file:{dir_text}/aliases\n\
         table users {{ bob = \"1000:1000:{dir_text}\" }}\n\
         action \"a\" mbox alias <aliases>{}\n\
         action \"b\" maildir \"{dir_text}/bounces\" userbase <users>\n\
         match from any for domain \"example.org\" action \"a\"\n\
         match from any for domain \"bounce.org\" action \"b\"\n",
        if userbase { " userbase <users>" } else { "" }
    );
    let d = refns::start(which, &conf, &[]);
    let mut t = Transcript::default();
    send(&d, "pipe@example.org");
    t.note(&format!("pipe: {}", delivery(&d, "pipe@example.org")));
    if userbase {
        t.note(&format!("bounce: {}", bounce(dir)));
    } else {
        t.note(&format!(
            "pipe.txt: {}",
            owner_and_text(&out.join("pipe.txt"))
        ));
    }
    send(&d, "file@example.org");
    t.note(&format!("file: {}", delivery(&d, "file@example.org")));
    if !userbase {
        t.note(&format!(
            "file.mbox: {}",
            owner_and_text(&out.join("file.mbox"))
        ));
    }
    std::thread::sleep(Duration::from_millis(500));
    for l in d
        .log()
        .iter()
        .filter(|l| l.contains("privileges") || l.starts_with("warn: queue"))
    {
        t.note(l);
    }
    t.0
}

fn each(userbase: bool, fixture: &str) {
    if !require(is_root(), "needs root (deliveries switch users)") {
        return;
    }
    for which in refns::available() {
        let got = run(which, userbase);
        refns::check(which, fixture, &got);
    }
}

#[test]
fn alias_command_and_file_run_as_the_unprivileged_user() {
    each(false, "alias-targets.txt");
}

/// With a userbase, the unprivileged user is looked up in it: absent, the mail fails.
#[test]
fn alias_targets_with_a_userbase_lacking_that_user() {
    each(true, "alias-targets-userbase.txt");
}

/// A named unprivileged user that does not exist stops the start, with a line saying so, rather
/// than failing every alias command and file later (OpenSMTPD: `fatalx("unknown user ...")`).
#[test]
fn an_unknown_unprivileged_user_is_refused_at_start() {
    if !require(
        is_root(),
        "needs root (as another user, deliveries run as that user)",
    ) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("smtpd.conf");
    std::fs::write(
        &conf,
        "listen on 127.0.0.1 port 1\naction \"l\" mbox\nmatch for local action \"l\"\n",
    )
    .expect("config");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_smtpd"))
        .args(["-d", "-f"])
        .arg(&conf)
        .env("SMTPD_USER", "no-such-user-here")
        .env("SMTPD_SPOOL", dir.path().join("spool"))
        .env("SMTPD_SOCKET", dir.path().join("sock"))
        .output()
        .expect("smtpd");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "smtpd: unknown user no-such-user-here: create it (adduser --system \
         no-such-user-here), or name an existing one with SMTPD_USER\n"
    );
}
