//! smtpctl and sendmail against the running daemon, through its control socket: the seed's
//! step 0, the queue commands on envelopes that wait, submission while the daemon is down, and
//! what a user who is not root may do.

use std::process::Command;
use std::time::Duration;

use crate::common::*;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn step0_sendmail_root_is_refused() {
    let h = hostname();
    let d = Daemon::start(&seed_config("0-minimal.conf"), &[]);
    let out = ctl(&d, "sendmail", &["root"], "Wed Nov 25 2026\n", None);
    assert_eq!(
        text(&out.stderr),
        format!("sendmail: command failed: 550 Invalid recipient: <root@{h}>\n\n")
    );
    assert_eq!(out.status.code(), Some(70));
    d.wait_log(|l| l.ends_with("smtp disconnected reason=disconnect"));
    assert_eq!(
        normalized_session_log(&d.log()),
        vec![
            format!("smtp connected address=local host={h}"),
            format!(
                "smtp failed-command command=\"RCPT TO:<root@{h}> \" result=\"550 Invalid recipient: <root@{h}>\""
            ),
            "smtp disconnected reason=disconnect".to_string(),
        ]
    );
}

const WAITING: &str = "listen on 127.0.0.1 port @PORT@
table users { foo = \"@UID@:@UID@:@DIR@/home\" }
action \"later\" mda \"exit 75\" userbase <users>
action \"mail\" maildir \"@DIR@/Maildir\" userbase <users>
match from any for domain \"example.org\" action \"later\"
match from local for any action \"mail\"
";

/// The delivering config, for a user the deliveries can run as: as root, uid 1000 with its
/// Maildir made for it; otherwise ourselves.
fn start_waiting() -> Daemon {
    let root = nix::unistd::geteuid().is_root();
    let uid = if root {
        1000
    } else {
        nix::unistd::geteuid().as_raw()
    };
    let d = Daemon::start(&WAITING.replace("@UID@", &uid.to_string()), &[]);
    if root {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(d.dir.path(), std::fs::Permissions::from_mode(0o711));
        let md = d.dir.path().join("Maildir");
        let _ = std::fs::create_dir(&md);
        let _ = nix::unistd::chown(
            &md,
            Some(nix::unistd::Uid::from_raw(uid)),
            Some(nix::unistd::Gid::from_raw(uid)),
        );
    }
    d
}

#[test]
fn queue_commands_on_waiting_envelopes() {
    let d = start_waiting();
    let addr = format!("127.0.0.1:{}", d.port).parse().expect("addr");
    for _ in 0..2 {
        let r = converse(
            "127.0.0.1",
            addr,
            &[
                "HELO client",
                "MAIL FROM:<bob@example.net>",
                "RCPT TO:<foo@example.org>",
                "DATA",
                "Subject: waits\r\n\r\nhi\r\n.",
                "QUIT",
            ],
        );
        assert!(r[5].starts_with("250 2.0.0 "), "{r:?}");
    }
    // Both tried once and wait.
    d.wait_log_for(Duration::from_secs(20), |_| {
        d.log()
            .iter()
            .filter(|l| l.contains("result=TempFail"))
            .count()
            >= 2
    });
    let out = ctl(&d, "smtpctl", &["show", "queue"], "", None);
    let q = text(&out.stdout);
    let lines: Vec<&str> = q.lines().collect();
    assert_eq!(
        lines.len(),
        2,
        "{q}{}\nlog:\n{}",
        text(&out.stderr),
        d.log().join("\n")
    );
    for l in &lines {
        let f: Vec<&str> = l.split('|').collect();
        // RUNSTATE is `pending|SECONDS`, itself two fields.
        assert_eq!(f.len(), 14, "{l}");
        assert_eq!(f[0].len(), 16);
        assert_eq!(
            &f[1..7],
            &[
                "inet4",
                "mda",
                "",
                "bob@example.net",
                "foo@example.org",
                "foo@example.org"
            ],
            "{l}"
        );
        assert_eq!(f[10], "1", "one failed attempt: {l}");
        assert_eq!(f[11], "pending");
        assert!(f[12].parse::<u32>().is_ok(), "{l}");
        assert_eq!(f[13], "exited abnormally");
    }
    let stats = text(&ctl(&d, "smtpctl", &["show", "stats"], "", None).stdout);
    assert!(
        stats.lines().any(|l| l == "smtp.session.inet4=2"),
        "{stats}"
    );
    assert!(stats.lines().any(|l| l.starts_with("uptime=")), "{stats}");

    let first = lines[0].split('|').next().unwrap_or("").to_string();
    let out = ctl(&d, "smtpctl", &["schedule", &first], "", None);
    assert_eq!(text(&out.stdout), "1 envelope scheduled\n");
    let out = ctl(&d, "smtpctl", &["pause", "envelope", "all"], "", None);
    assert_eq!(text(&out.stdout), "2 envelopes paused\n");
    let out = ctl(&d, "smtpctl", &["resume", "envelope", "all"], "", None);
    assert_eq!(text(&out.stdout), "2 envelopes resumed\n");
    let out = ctl(&d, "smtpctl", &["pause", "mda"], "", None);
    assert_eq!(text(&out.stdout), "command succeeded\n");
    let out = ctl(&d, "smtpctl", &["show", "status"], "", None);
    assert!(
        text(&out.stdout).contains("MDA paused"),
        "{}",
        text(&out.stdout)
    );
    let out = ctl(&d, "smtpctl", &["resume", "mda"], "", None);
    assert_eq!(text(&out.stdout), "command succeeded\n");
    let out = ctl(&d, "smtpctl", &["remove", "all"], "", None);
    assert_eq!(text(&out.stdout), "2 envelopes removed\n");
    assert_eq!(
        text(&ctl(&d, "smtpctl", &["show", "queue"], "", None).stdout),
        ""
    );
}

#[test]
fn sendmail_delivers_and_a_user_cannot_remove() {
    let d = start_waiting();
    let out = ctl(
        &d,
        "sendmail",
        &["-t"],
        "To: foo\nSubject: cron\n\nhello from cron\n",
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    d.wait_log(|l| l.contains("result=Ok stat=Delivered"));
    let new = d.dir.path().join("Maildir/new");
    let files: Vec<_> = std::fs::read_dir(&new).expect("Maildir/new").collect();
    assert_eq!(files.len(), 1);
    if nix::unistd::geteuid().is_root() {
        // nobody may submit, but not steer the queue.
        let nobody = 65534;
        let out = ctl(&d, "smtpctl", &["remove", "all"], "", Some(nobody));
        assert!(!out.status.success());
        assert!(
            text(&out.stderr).contains("need root privileges"),
            "{}",
            text(&out.stderr)
        );
    }
}

#[test]
fn mail_submitted_while_the_daemon_is_down_is_delivered_at_start() {
    let mut d = start_waiting();
    assert_eq!(d.stop(), Some(0));
    let out = ctl(
        &d,
        "sendmail",
        &["foo"],
        "Subject: offline\n\nqueued while down\n",
        None,
    );
    // EX_TEMPFAIL, as enqueue.c's offline mode answers.
    assert_eq!(out.status.code(), Some(75), "{}", text(&out.stderr));
    let offline: Vec<_> = std::fs::read_dir(d.spool().join("offline"))
        .expect("offline dir")
        .collect();
    assert_eq!(offline.len(), 1, "the message waits in offline/");
    let d2 = Daemon::restart(&d);
    d2.wait_log_for(Duration::from_secs(20), |l| {
        l.contains("result=Ok stat=Delivered")
    });
    let new = d.dir.path().join("Maildir/new");
    let files: Vec<_> = std::fs::read_dir(&new)
        .expect("Maildir/new")
        .flatten()
        .collect();
    assert_eq!(files.len(), 1);
    let body = std::fs::read_to_string(files[0].path()).unwrap_or_default();
    assert!(body.contains("queued while down"), "{body}");
}

#[test]
fn a_db_table_made_by_makemap_serves_aliases() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("aliases");
    std::fs::write(&src, "abuse: postmaster\npostmaster: foo\n").expect("write");
    let makemap = dir.path().join("makemap");
    std::os::unix::fs::symlink(smtpctl(), &makemap).expect("symlink");
    let db = dir.path().join("aliases.db");
    let out = Command::new(&makemap)
        .arg("-o")
        .arg(&db)
        .arg(&src)
        .output()
        .expect("makemap");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let config = format!(
        "listen on 127.0.0.1 port @PORT@\n\
         table aliases db:{}\n\
         table users {{ foo = \"1000:1000:@DIR@\" }}\n\
         action \"l\" maildir alias <aliases> userbase <users>\n\
         match from any for domain \"example.org\" action \"l\"\n",
        db.display()
    );
    let d = Daemon::start(&config, &["-T", "expand"]);
    let addr = format!("127.0.0.1:{}", d.port).parse().expect("addr");
    let r = converse(
        "127.0.0.1",
        addr,
        &[
            "HELO x",
            "MAIL FROM:<>",
            "RCPT TO:<abuse@example.org>",
            "RCPT TO:<nobody@example.org>",
            "QUIT",
        ],
    );
    assert_eq!(
        r[3],
        "250 2.1.5 Destination address valid: Recipient ok\r\n"
    );
    assert_eq!(r[4], "550 Invalid recipient: <nobody@example.org>\r\n");
    d.wait_log(|l| l.contains("username: foo [depth=3"));
}

/// What scripts and cron do: `sendmail -f sender -F name rcpt` and a bare pipe without any
/// header. Both are delivered, with the headers sendmail adds (From with the full name, Date,
/// Message-ID) and the envelope sender given by -f; a user may submit but not change tracing.
#[test]
fn sendmail_from_scripts_and_cron_pipes() {
    let d = start_waiting();
    let out = ctl(
        &d,
        "sendmail",
        &["-f", "alice@example.org", "-F", "Alice Liddell", "foo"],
        "Subject: report\n\nnightly report\n",
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = ctl(
        &d,
        "sendmail",
        &["foo"],
        "no headers at all, as from date(1)\n",
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    for _ in 0..400 {
        if d.log()
            .iter()
            .filter(|l| l.contains("result=Ok stat=Delivered"))
            .count()
            == 2
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let new = d.dir.path().join("Maildir/new");
    let mut mails: Vec<String> = std::fs::read_dir(&new)
        .expect("Maildir/new")
        .flatten()
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect();
    mails.sort_by_key(|m| !m.contains("nightly report"));
    assert_eq!(mails.len(), 2, "{mails:?}");
    let (report, bare) = (&mails[0], &mails[1]);
    assert!(
        report.starts_with("Return-Path: <alice@example.org>\n"),
        "{report}"
    );
    assert!(
        report.contains("\nFrom: Alice Liddell <alice@example.org>\n"),
        "{report}"
    );
    assert!(report.contains("\nSubject: report\n"), "{report}");
    for m in [report, bare] {
        assert!(m.contains("\nDate: "), "{m}");
        assert!(m.contains("\nMessage-ID: <"), "{m}");
    }
    assert!(
        bare.contains("\n\nno headers at all, as from date(1)\n"),
        "{bare}"
    );
    if nix::unistd::geteuid().is_root() {
        let nobody = 65534;
        let out = ctl(&d, "smtpctl", &["trace", "expand"], "", Some(nobody));
        assert!(!out.status.success());
        assert!(text(&out.stderr).contains("need root privileges"));
        let out = ctl(&d, "smtpctl", &["log", "verbose"], "", Some(nobody));
        assert!(!out.status.success());
    }
}
