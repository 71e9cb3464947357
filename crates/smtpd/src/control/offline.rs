//! Messages `sendmail` left in `<spool>/offline/` while the daemon was down (format:
//! `rsmtpd_control::offline`): at start, once the control socket listens, each is submitted again
//! by running `sendmail -S ARGS...` as the file's owner with the message on standard input (the
//! file itself, past its first line), then deleted (OpenSMTPD's `offline_scan`/`offline_enqueue`).

use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::os::unix::process::{CommandExt, ExitStatusExt};
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
/// socket at `socket`) and removes it once smtpctl succeeded. Blocking: call from
/// `spawn_blocking` after the control socket accepts connections. As OpenSMTPD's
/// `offline_scan`/`offline_enqueue`: links, special files, directories and files of another
/// group than the folder's are skipped; an empty file is removed; a file that is hard-linked,
/// whose owner is unknown, that does not start with a line of arguments, or that smtpctl could
/// not submit is left where it is, with a warning.
pub fn resubmit(spool: &Path, smtpctl: &Path, socket: &Path) {
    let dir_gid = fs::metadata(spool.join("offline")).ok().map(|m| m.gid());
    for path in offline_files(spool) {
        resubmit_one(&path, dir_gid, smtpctl, socket);
    }
}

/// The longest first line (sendmail's arguments) we read. OpenSMTPD's getline() has no limit,
/// in a child of its own; ours runs in the daemon, whose memory a file of gigabytes without a
/// newline must not fill.
const MAX_ARGS_LINE: usize = 1 << 20;

fn resubmit_one(path: &Path, dir_gid: Option<u32>, smtpctl: &Path, socket: &Path) {
    let p = path.display();
    // What fts(FTS_PHYSICAL) reports as a plain file, at depth 1, of the folder's group; the
    // rest is skipped silently, as offline_scan() does.
    let Ok(lmd) = fs::symlink_metadata(path) else {
        return;
    };
    if !lmd.file_type().is_file() || dir_gid.is_some_and(|g| g != lmd.gid()) {
        return;
    }
    if lmd.len() == 0 {
        if fs::remove_file(path).is_err() {
            log::warn(&format!("warn: smtpd: could not unlink {p}"));
        }
        return;
    }
    log::debug(&format!("debug: smtpd: enqueueing offline message {p}"));
    // OpenSMTPD does the rest in a child, whose every failure the parent reports alike.
    match enqueue(path, (lmd.uid(), lmd.gid()), smtpctl, socket) {
        Ok(()) => {
            let _ = fs::remove_file(path);
        }
        Err(cause) => log::warn(&format!(
            "warn: smtpd: couldn't enqueue offline message {p}; smtpctl {cause}"
        )),
    }
}

/// `offline_enqueue()`'s child: checks the file through one descriptor and runs smtpctl on it;
/// `Err` is how "smtpctl" ended, as the parent words it.
fn enqueue(path: &Path, seen: (u32, u32), smtpctl: &Path, socket: &Path) -> Result<(), String> {
    let p = path.display();
    let abnormal = || Err("exited abnormally".to_string());
    // Everything below reads through this descriptor: the name may be swapped for a link to
    // another file meanwhile, the descriptor stays the file that was checked.
    let mut file = match fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => f,
        Err(e) => {
            log::warn(&format!("warn: smtpd: open: {p}: {}", strerror(&e)));
            return abnormal();
        }
    };
    let md = match file.metadata() {
        Ok(md) => md,
        Err(e) => {
            log::warn(&format!("warn: smtpd: fstat: {p}: {}", strerror(&e)));
            return abnormal();
        }
    };
    if !md.is_file() {
        log::warn(&format!(
            "warn: smtpd: file {p} (uid {}) not regular",
            md.uid()
        ));
        return abnormal();
    }
    if md.nlink() != 1 {
        log::warn(&format!("warn: smtpd: file {p} is hard-link"));
        return abnormal();
    }
    if md.uid() != seen.0 {
        log::warn(&format!("warn: smtpd: file {p} has bad uid {}", md.uid()));
        return abnormal();
    }
    if md.gid() != seen.1 {
        log::warn(&format!("warn: smtpd: file {p} has bad gid {}", md.gid()));
        return abnormal();
    }
    let user = match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(md.uid())) {
        Ok(Some(u)) => u,
        _ => {
            log::warn(&format!(
                "warn: smtpd: getpwuid for uid {} failed",
                md.uid()
            ));
            return abnormal();
        }
    };
    // The first line, read a block at a time up to the cap; the message follows it.
    let mut head = Vec::new();
    let mut block = [0u8; 8192];
    let nl = loop {
        if let Some(i) = head.iter().position(|&b| b == b'\n') {
            break Some(i);
        }
        if head.len() > MAX_ARGS_LINE {
            break None;
        }
        match file.read(&mut block) {
            Ok(0) | Err(_) => break None,
            Ok(n) => head.extend_from_slice(&block[..n]),
        }
    };
    let parsed = nl.and_then(|i| {
        let (args, _) = rsmtpd_control::offline::read_offline(&head[..=i])?;
        Some((args, i as u64 + 1))
    });
    let Some((args, start)) = parsed else {
        return abnormal();
    };
    // The rest of the file is the message: smtpctl reads it from the same descriptor.
    if file.seek(SeekFrom::Start(start)).is_err() {
        return abnormal();
    }
    let mut cmd = Command::new(smtpctl);
    cmd.arg0("sendmail")
        .arg("-S")
        .args(&args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin:/usr/sbin:/sbin")
        .env("SMTPD_SOCKET", socket)
        .stdin(Stdio::from(file))
        .stdout(Stdio::null())
        .current_dir(if user.dir.is_dir() {
            user.dir.clone()
        } else {
            PathBuf::from("/")
        });
    if nix::unistd::Uid::effective().is_root() {
        cmd.uid(user.uid.as_raw()).gid(user.gid.as_raw());
    }
    match cmd.status() {
        Ok(st) if st.success() => Ok(()),
        Ok(st) => match st.signal() {
            Some(sig) => Err(format!("terminated; signal {sig}")),
            None => abnormal(),
        },
        Err(e) => {
            log::warn(&format!("warn: smtpd: exec {}: {e}", smtpctl.display()));
            abnormal()
        }
    }
}

/// strerror's words for an I/O error (log_warn's `: %s`).
fn strerror(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => nix::errno::Errno::from_raw(n).desc().to_string(),
        None => e.to_string(),
    }
}

/// The smtpctl that resubmits offline messages: the one installed beside us.
pub fn smtpctl_path() -> std::path::PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("smtpctl")))
        .filter(|p| p.exists())
        .unwrap_or_else(|| std::path::PathBuf::from("/usr/sbin/smtpctl"))
}
