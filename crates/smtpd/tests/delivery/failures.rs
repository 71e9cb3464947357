//! Deliveries that fail, through the real daemon: the mailbox's disk fills up (a tiny tmpfs the
//! test mounts), and an MDA that first asks to retry (exit 75), then refuses (exit 1). Each
//! time the message waits or bounces as OpenSMTPD's would, and nothing is lost or delivered
//! twice.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::common::*;

fn count(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

fn smtpctl(d: &Daemon, args: &[&str]) -> String {
    String::from_utf8_lossy(&ctl(d, "smtpctl", args, "", None).stdout).into_owned()
}

fn chown(p: &Path, uid: u32) {
    nix::unistd::chown(
        p,
        Some(nix::unistd::Uid::from_raw(uid)),
        Some(nix::unistd::Gid::from_raw(uid)),
    )
    .expect("chown");
}

fn send(d: &Daemon, rcpt: &str, body: &str) {
    let r = converse(
        "127.0.0.1",
        d.addr(),
        &[
            "HELO client",
            "MAIL FROM:<sender@example.org>",
            &format!("RCPT TO:<{rcpt}>"),
            "DATA",
            &format!("Subject: test\r\n\r\n{body}\r\n."),
            "QUIT",
        ],
    );
    assert!(r[5].starts_with("250 2.0.0 "), "{r:?}");
}

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str, uid: u32) -> Tmpfs {
        std::fs::create_dir_all(at).expect("mkdir");
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("size={size},mode=0700,uid={uid},gid={uid}"))
            .arg("tmpfs")
            .arg(at)
            .status()
            .expect("mount");
        assert!(st.success(), "mount tmpfs on {}", at.display());
        Tmpfs(at.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_keeps_the_message_queued_until_space_returns() {
    if !require(is_root(), "needs root to mount the small file system") {
        return;
    }
    let uid = 1000;
    let config = format!(
        "listen on 127.0.0.1 port @PORT@\n\
         table users {{ dave = \"{uid}:{uid}:@DIR@/dave\" }}\n\
         action \"mail\" maildir \"@DIR@/dave/Maildir\" userbase <users>\n\
         match from any for domain \"example.org\" action \"mail\"\n"
    );
    let d = Daemon::start(&config, &[]);
    let _ = std::fs::set_permissions(
        d.dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o711),
    );
    let home = d.dir.path().join("dave");
    let _fs = Tmpfs::mount(&home, "256k", uid);
    for sub in ["Maildir", "Maildir/new", "Maildir/cur", "Maildir/tmp"] {
        std::fs::create_dir_all(home.join(sub)).expect("mkdir");
        chown(&home.join(sub), uid);
    }
    // Fill the disk but for a few bytes.
    let filler = home.join("filler");
    let mut big = vec![b'x'; 1024];
    loop {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&filler)
            .expect("filler");
        if f.write_all(&big).is_err() || f.sync_all().is_err() {
            break;
        }
        big = vec![b'x'; 1024];
    }

    let body = "y".repeat(20_000);
    send(&d, "dave@example.org", &body);
    let line = d.wait_log_for(Duration::from_secs(20), |l| l.contains("result=TempFail"));
    assert!(line.contains("No space left on device"), "{line}");
    assert_eq!(count(&home.join("Maildir/new")), 0);
    // The half-written file does not stay behind in tmp/.
    assert_eq!(count(&home.join("Maildir/tmp")), 0);
    assert!(smtpctl(&d, &["show", "queue"]).contains("dave@example.org"));

    // Space returns; the administrator asks for a new attempt.
    std::fs::remove_file(&filler).expect("rm filler");
    assert_eq!(smtpctl(&d, &["schedule", "all"]), "1 envelope scheduled\n");
    d.wait_log_for(Duration::from_secs(20), |l| {
        l.ends_with("result=Ok stat=Delivered")
    });
    let got = mail_texts(&home.join("Maildir/new"));
    assert_eq!(got.len(), 1, "delivered exactly once");
    assert!(got[0].contains(&body));
    assert_eq!(smtpctl(&d, &["show", "queue"]), "");
}

#[test]
fn an_mda_asking_to_retry_then_refusing_bounces_once() {
    let uid = delivery_uid(1000);
    let config = format!(
        "listen on 127.0.0.1 port @PORT@\n\
         table users {{ erin = \"{uid}:{uid}:@DIR@/erin\", sender = \"{uid}:{uid}:@DIR@/sender\" }}\n\
         action \"picky\" mda \"@DIR@/erin/mda.sh\" userbase <users>\n\
         action \"mail\" maildir \"@DIR@/sender/Maildir\" userbase <users>\n\
         match from any for rcpt-to \"erin@example.org\" action \"picky\"\n\
         match from any for domain \"example.org\" action \"mail\"\n\
         match from local for local action \"mail\"\n"
    );
    let d = Daemon::start(&config, &[]);
    for who in ["erin", "sender"] {
        user_dir(&d, who, uid);
    }
    // First attempt: "try later" (EX_TEMPFAIL); every later one: a permanent refusal.
    let erin = d.dir.path().join("erin");
    let script = erin.join("mda.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\ncat > /dev/null\n\
             if [ -e {tried} ]; then echo mailbox closed for good; exit 1; fi\n\
             touch {tried}; echo mailbox busy, try later; exit 75\n",
            tried = erin.join("tried").display()
        ),
    )
    .expect("script");
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");

    send(&d, "erin@example.org", "please deliver");
    let t = d.wait_log_for(Duration::from_secs(20), |l| l.contains("result=TempFail"));
    assert!(
        t.contains("stat=Error (temporary failure: \"mailbox busy, try later\")"),
        "{t}"
    );
    let q = smtpctl(&d, &["show", "queue"]);
    assert!(q.contains("erin@example.org"), "{q}");
    assert!(q.contains("mailbox busy, try later"), "{q}");

    assert_eq!(smtpctl(&d, &["schedule", "all"]), "1 envelope scheduled\n");
    let p = d.wait_log_for(Duration::from_secs(20), |l| l.contains("result=PermFail"));
    assert!(p.contains("mailbox closed for good"), "{p}");
    d.wait_log_for(Duration::from_secs(20), |l| {
        l.contains("to=<sender@example.org>") && l.ends_with("result=Ok stat=Delivered")
    });
    let bounces = mail_texts(&d.dir.path().join("sender/Maildir/new"));
    assert_eq!(bounces.len(), 1, "one bounce");
    let b = &bounces[0];
    assert!(
        b.contains("Final-Recipient: rfc822; erin@example.org\nAction: failed\nStatus: 5."),
        "{b}"
    );
    assert!(b.contains("mailbox closed for good"), "{b}");
    assert!(b.contains("please deliver"), "{b}");
    // Nothing left: the envelope went with the bounce, and the bounce was delivered.
    assert_eq!(smtpctl(&d, &["show", "queue"]), "");
}

/// Not a failure, but the same path: with `queue compression` the spool holds gzip and the
/// mailbox, a bounce and `smtpctl show message` get the message as it was sent.
#[test]
fn a_compressed_queue_delivers_and_bounces_the_original_text() {
    let uid = delivery_uid(1000);
    let config = format!(
        "queue compression\n\
         listen on 127.0.0.1 port @PORT@\n\
         table users {{ frank = \"{uid}:{uid}:@DIR@/frank\", gone = \"{uid}:{uid}:@DIR@/frank\" }}\n\
         action \"broken\" mda \"exit 1\" userbase <users>\n\
         action \"mail\" maildir \"@DIR@/frank/Maildir\" userbase <users>\n\
         match from any for rcpt-to \"gone@example.org\" action \"broken\"\n\
         match from any for domain \"example.org\" action \"mail\"\n\
         match from local for local action \"mail\"\n"
    );
    let d = Daemon::start(&config, &[]);
    let frank = user_dir(&d, "frank", uid);
    let body = "compressible text, ".repeat(400);
    // Held: show message reads the spool while it waits.
    assert_eq!(smtpctl(&d, &["pause", "mda"]), "command succeeded\n");
    let r = converse(
        "127.0.0.1",
        d.addr(),
        &[
            "HELO client",
            "MAIL FROM:<frank@example.org>",
            "RCPT TO:<frank@example.org>",
            "RCPT TO:<gone@example.org>",
            "DATA",
            &format!("Subject: zipped\r\n\r\n{body}\r\n."),
            "QUIT",
        ],
    );
    assert!(r[6].starts_with("250 2.0.0 "), "{r:?}");
    let msgid = r[6].split_whitespace().nth(2).expect("msgid").to_string();
    let spooled = d
        .spool()
        .join("queue")
        .join(&msgid[..2])
        .join(&msgid)
        .join("message");
    let raw = std::fs::read(&spooled).expect("spooled");
    assert_eq!(&raw[..2], &[0x1f, 0x8b], "gzip on disk");
    let shown = smtpctl(&d, &["show", "message", &msgid]);
    assert!(shown.contains("Subject: zipped"), "{shown}");
    assert!(shown.contains(&body), "show message inflates");

    smtpctl(&d, &["resume", "mda"]);
    d.wait_log_for(Duration::from_secs(20), |l| {
        l.contains("to=<frank@example.org>") && l.contains("Ok stat=Delivered")
    });
    d.wait_log_for(Duration::from_secs(20), |l| l.contains("result=PermFail"));
    for _ in 0..200 {
        if count(&frank.join("Maildir/new")) == 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let got = mail_texts(&frank.join("Maildir/new"));
    assert_eq!(got.len(), 2, "the message and its bounce");
    assert!(got.iter().all(|m| m.contains(&body)), "both carry the text");
    assert!(got
        .iter()
        .any(|m| m.contains("Final-Recipient: rfc822; gone@example.org")));
}
