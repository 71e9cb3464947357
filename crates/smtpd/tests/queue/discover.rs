//! `smtpctl discover MSGID`: a message directory copied into `queue/` by hand (from another
//! spool, a backup) is scheduled at once and delivered, as OpenSMTPD does; discovering it again
//! once delivered finds nothing (ours also removes the message's folder with its last
//! envelope, where OpenSMTPD's was still there half a second after the delivery).
//! OpenSMTPD 6.8.0p2's transcript is tests/everyday/discover.txt.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::refns::{self, Transcript, Which};
use crate::common::*;

fn config(uid: u32) -> String {
    format!(
        "listen on 127.0.0.1 port @PORT@\n\
         table users {{ foo = \"{uid}:{uid}:@DIR@\" }}\n\
         action \"l\" maildir \"@DIR@/md\" userbase <users>\n\
         match from any for domain \"example.org\" action \"l\"\n"
    )
}

/// Sends one message; its queue id.
fn send(d: &Daemon) -> String {
    let mut c = Client::connect(d.addr());
    c.reply();
    let mut msgid = String::new();
    for (cmd, want) in [
        ("HELO client", "250 "),
        ("MAIL FROM:<bob@example.net>", "250 "),
        ("RCPT TO:<foo@example.org>", "250 "),
        ("DATA", "354 "),
        ("Subject: discovered\r\n\r\nhi\r\n.", "250 "),
        ("QUIT", "221 "),
    ] {
        let r = c.cmd(cmd);
        assert!(r.starts_with(want), "{cmd}: {r}");
        if let Some(rest) = r.strip_prefix("250 2.0.0 ") {
            msgid = rest.chars().take(8).collect();
        }
    }
    assert_eq!(msgid.len(), 8);
    msgid
}

/// The daemon's `queue/` folder (the real one's is in its mount namespace).
fn queue_dir(which: Which, d: &Daemon) -> PathBuf {
    match which {
        Which::Ours => d.spool().join("queue"),
        Which::Real => PathBuf::from(format!("/proc/{}/root/var/spool/smtpd/queue", d.pid())),
    }
}

fn copy_tree(from: &Path, to: &Path, uid: u32, gid: u32) {
    std::fs::create_dir_all(to).expect("mkdir");
    std::os::unix::fs::chown(to, Some(uid), Some(gid)).expect("chown");
    for e in std::fs::read_dir(from).expect("read_dir").flatten() {
        let dest = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_tree(&e.path(), &dest, uid, gid);
        } else {
            std::fs::copy(e.path(), &dest).expect("copy");
            std::os::unix::fs::chown(&dest, Some(uid), Some(gid)).expect("chown");
        }
    }
}

fn delivered(d: &Daemon) -> usize {
    std::fs::read_dir(d.dir.path().join("md/new"))
        .map(|r| r.count())
        .unwrap_or(0)
}

fn run(which: Which) -> String {
    let uid = delivery_uid(1000);
    let held = tempfile::tempdir().expect("tempdir");
    // A message queued by a daemon whose deliveries are paused, kept aside.
    let mut d1 = refns::start(which, &config(uid), &["-P", "mda"]);
    let msgid = send(&d1);
    let bucket = &msgid[..2];
    let src = queue_dir(which, &d1).join(bucket).join(&msgid);
    copy_tree(&src, &held.path().join(&msgid), 0, 0);
    d1.stop();
    // Copied into the queue of a running daemon, which does not know it...
    let d2 = refns::start(which, &config(uid), &[]);
    user_dir(&d2, "md", uid);
    let queue = queue_dir(which, &d2);
    let owner = std::fs::metadata(&queue).expect("queue dir");
    let bucket_dir = queue.join(bucket);
    copy_tree(
        &held.path().join(&msgid),
        &bucket_dir.join(&msgid),
        owner.uid(),
        owner.gid(),
    );
    let mut t = Transcript::default();
    std::thread::sleep(Duration::from_millis(500));
    t.note(&format!("delivered before discover: {}", delivered(&d2)));
    // ...until discovered: then it is delivered at once.
    t.ctl(which, &d2, &["discover", &msgid]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while delivered(&d2) == 0 {
        assert!(Instant::now() < deadline, "{}", d2.log().join("\n"));
        std::thread::sleep(Duration::from_millis(50));
    }
    t.note(&format!("delivered after discover: {}", delivered(&d2)));
    t.0.push_str(
        &refns::smtpctl(which, &d2, &["discover", &msgid], "")
            .stdout
            .iter()
            .map(|&b| b as char)
            .collect::<String>(),
    );
    t.ctl(which, &d2, &["discover", "0123456789abcdef"]);
    t.0.replace(&msgid, "MSGID")
}

#[test]
fn a_copied_message_is_discovered_and_delivered() {
    if !require(is_root(), "needs root (the queue's owner)") {
        return;
    }
    for which in refns::available() {
        let got = run(which);
        refns::check(which, "discover.txt", &got);
    }
}
