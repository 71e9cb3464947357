//! `sendmail` never loses a message silently (issue 17.3): with the daemon down it queues the
//! message in the spool's `offline/` (exit 75, delivered at the next start: control_e2e.rs and,
//! installed setgid as Debian's, the package test debian_package.rs), or, when it cannot,
//! says that the message was not queued (exit 69), so that the caller keeps it.

mod common;

use common::*;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

#[test]
fn an_ordinary_user_who_cannot_queue_offline_is_told_so() {
    if !require_root() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let spool = dir.path().join("spool");
    std::fs::create_dir_all(spool.join("offline")).expect("mkdir");
    std::fs::set_permissions(
        spool.join("offline"),
        std::fs::Permissions::from_mode(0o770),
    )
    .expect("chmod");
    let sendmail = dir.path().join("sendmail");
    std::os::unix::fs::symlink(smtpctl(), &sendmail).expect("symlink");
    let mut child = Command::new(&sendmail)
        .arg("bob")
        .env("SMTPD_SPOOL", &spool)
        .env("SMTPD_SOCKET", dir.path().join("none.sock"))
        .uid(65534)
        .gid(65534)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sendmail");
    if let Some(mut i) = child.stdin.take() {
        use std::io::Write;
        let _ = i.write_all(b"Subject: x\n\nkept by the caller\n");
    }
    let out = child.wait_with_output().expect("wait");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(69), "{}", err);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{}", err);
    // OpenSMTPD's line, then ours.
    assert!(
        lines[0].starts_with("sendmail: cannot create temporary file "),
        "{}",
        err
    );
    assert!(lines[0].ends_with(": Permission denied"), "{}", err);
    assert!(
        lines[1].starts_with(&format!(
            "sendmail: message not queued: the server is not running and {} is not writable",
            spool.join("offline").display()
        )),
        "{}",
        err
    );
    assert_eq!(
        std::fs::read_dir(spool.join("offline"))
            .expect("dir")
            .count(),
        0
    );
}
