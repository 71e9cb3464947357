//! Messages `sendmail` left in `<spool>/offline/` while the daemon was down (format:
//! `rsmtpd_control::offline`): at start, once the control socket listens, each is submitted again
//! by running `sendmail -S ARGS...` as the file's owner with the message on standard input, then
//! deleted (OpenSMTPD's `offline_scan`/`offline_enqueue`).

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::sys::log;

/// The offline files, oldest name first.
pub fn offline_files(spool: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = match fs::read_dir(spool.join("offline")) {
        Ok(rd) => rd.flatten().map(|e| e.path()).collect(),
        Err(_) => return Vec::new(),
    };
    v.sort();
    v
}

/// Submits every offline file again through `smtpctl` (run as `sendmail`, talking to the control
/// socket at `socket`) and removes it. Blocking: call from `spawn_blocking` after the control
/// socket accepts connections. Files that are not regular, hard-linked, or whose owner is
/// unknown are left alone with a warning, as OpenSMTPD does.
pub fn resubmit(spool: &Path, smtpctl: &Path, socket: &Path) {
    for path in offline_files(spool) {
        resubmit_one(&path, smtpctl, socket);
    }
}

fn resubmit_one(path: &Path, smtpctl: &Path, socket: &Path) {
    let p = path.display();
    let md = match fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .and_then(|f| f.metadata())
    {
        Ok(md) => md,
        Err(e) => {
            log::warn(&format!("warn: smtpd: open: {p}: {e}"));
            return;
        }
    };
    if !md.is_file() {
        log::warn(&format!(
            "warn: smtpd: file {p} (uid {}) not regular",
            md.uid()
        ));
        return;
    }
    if md.nlink() != 1 {
        log::warn(&format!("warn: smtpd: file {p} is hard-link"));
        return;
    }
    let user = match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(md.uid())) {
        Ok(Some(u)) => u,
        _ => {
            log::warn(&format!(
                "warn: smtpd: getpwuid for uid {} failed",
                md.uid()
            ));
            return;
        }
    };
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(_) => return,
    };
    if let Some((args, message)) = rsmtpd_control::offline::read_offline(&bytes) {
        let mut cmd = Command::new(smtpctl);
        cmd.arg0("sendmail")
            .arg("-S")
            .args(&args)
            .env_clear()
            .env("PATH", "/usr/bin:/bin:/usr/sbin:/sbin")
            .env("SMTPD_SOCKET", socket)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .current_dir(if user.dir.is_dir() {
                user.dir.clone()
            } else {
                PathBuf::from("/")
            });
        if nix::unistd::Uid::effective().is_root() {
            cmd.uid(user.uid.as_raw()).gid(user.gid.as_raw());
        }
        match cmd.spawn() {
            Ok(mut child) => {
                if let Some(mut stdin) = child.stdin.take() {
                    let _ = stdin.write_all(message);
                }
                let _ = child.wait();
            }
            Err(e) => log::warn(&format!("warn: smtpd: exec {}: {e}", smtpctl.display())),
        }
    }
    let _ = fs::remove_file(path);
}
