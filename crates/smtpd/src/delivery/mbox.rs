//! mbox delivery as `mail.local -f FROM -- USER` writes it into `/var/mail/USER`, and the
//! `mail.mboxfile -f FROM PATH` variant used for `/path` targets of aliases and forwards.
//!
//! Format: a `From FROM CTIME` separator, the message with `>` before `From ` lines (mail.local:
//! only a `From ` line that starts a paragraph; mail.mboxfile: every one), then an empty line.
//!
//! Locking, so that other readers and writers (mail.local, mutt, Dovecot, procmail) agree: the
//! `USER.lock` dot-lock of mail.local/lockspool, plus an `fcntl` write lock and a `flock` on the
//! mailbox itself. The append is truncated away on error and fsynced before success.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufWriter, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use super::headers::{c_line, next_line};
use super::{strerror, AgentError};

const EX_OSERR: i32 = 71;
const EX_CANTCREAT: i32 = 73;
const EX_TEMPFAIL: i32 = 75;

/// How long we wait for a dot-lock, and when an existing one is considered stale.
const LOCK_WAIT: Duration = Duration::from_secs(30);
const LOCK_STALE: Duration = Duration::from_secs(300);

/// `From SENDER Wed Nov 25 11:39:20 2026\n` (ctime in local time), computed by the daemon: the
/// delivery process has no environment (no `TZ`), and the line comes with the job.
pub fn from_line(from: &str, now: i64) -> String {
    let ct = rsmtpd_control::text::ctime_text(now);
    let ct = if ct.is_empty() { "?\n".to_string() } else { ct };
    format!("From {from} {ct}")
}

/// `mda_mbox_init()`: as root, create the mailbox owned by the user, mode 0600, if missing.
pub fn init(path: &Path, uid: u32, gid: u32) -> Result<(), AgentError> {
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o0)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
    {
        Ok(f) => {
            if let Err(e) = std::os::unix::fs::fchown(&f, Some(uid), Some(gid))
                .and_then(|()| f.set_permissions(std::fs::Permissions::from_mode(0o600)))
            {
                return Err(AgentError::new(
                    EX_TEMPFAIL,
                    format!("mail.local: {}", strerror(&e)),
                ));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(AgentError::new(
            EX_TEMPFAIL,
            format!("mail.local: open: {}", strerror(&e)),
        )),
    }
}

struct DotLock(Option<PathBuf>);

impl Drop for DotLock {
    fn drop(&mut self) {
        if let Some(p) = &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn dotlock(mbox: &Path) -> Result<DotLock, AgentError> {
    let mut lpath = mbox.as_os_str().to_owned();
    lpath.push(".lock");
    let lpath = PathBuf::from(lpath);
    let start = Instant::now();
    let mut pause = Duration::from_millis(50);
    loop {
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&lpath)
        {
            Ok(_) => return Ok(DotLock(Some(lpath))),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let stale = std::fs::symlink_metadata(&lpath)
                    .ok()
                    .and_then(|m| m.modified().ok())
                    .and_then(|t| SystemTime::now().duration_since(t).ok())
                    .is_some_and(|age| age > LOCK_STALE);
                if stale {
                    let _ = std::fs::remove_file(&lpath);
                    continue;
                }
                if start.elapsed() > LOCK_WAIT {
                    return Err(AgentError::new(
                        EX_OSERR,
                        "mail.local: lockspool: unable to get lock".into(),
                    ));
                }
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_secs(2));
            }
            // A spool we may not write to (not root, not in its group): rely on the kernel
            // locks below rather than fail.
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => return Ok(DotLock(None)),
            Err(e) => {
                return Err(AgentError::new(
                    EX_OSERR,
                    format!("mail.local: {}: {}", lpath.display(), strerror(&e)),
                ))
            }
        }
    }
}

/// An `fcntl` write lock on the whole file (waiting for it), then a `flock`: mail.local takes
/// both, and readers use one or the other. Both are released when the file is closed.
fn kernel_locks(f: &File) -> std::io::Result<()> {
    let whole_file = libc::flock {
        l_type: libc::F_WRLCK as _,
        l_whence: libc::SEEK_SET as _,
        l_start: 0,
        l_len: 0,
        l_pid: 0,
    };
    nix::fcntl::fcntl(f, nix::fcntl::FcntlArg::F_SETLKW(&whole_file))?;
    f.lock()
}

/// Copies the stream into `f` at its end in mbox format; truncates back on error.
fn append(
    f: &mut File,
    from_line: &str,
    mut input: impl BufRead,
    quote_all: bool,
    who: &str,
    path: &Path,
) -> Result<(), AgentError> {
    let curoff = f
        .seek(SeekFrom::End(0))
        .map_err(|e| AgentError::new(EX_TEMPFAIL, format!("{who}: {}", strerror(&e))))?;
    let res = (|| -> std::io::Result<()> {
        let mut w = BufWriter::with_capacity(64 * 1024, &mut *f);
        w.write_all(from_line.as_bytes())?;
        let mut buf = Vec::new();
        let mut eline = true;
        while next_line(&mut input, &mut buf)? {
            let line = c_line(&buf);
            if quote_all {
                if line.starts_with(b"From ") {
                    w.write_all(b">")?;
                }
            } else if line.is_empty() {
                eline = true;
            } else {
                if eline && line.starts_with(b"From ") {
                    w.write_all(b">")?;
                }
                eline = false;
            }
            w.write_all(line)?;
            w.write_all(b"\n")?;
        }
        w.write_all(b"\n")?;
        w.flush()?;
        drop(w);
        f.sync_all()?;
        Ok(())
    })();
    if let Err(e) = res {
        let _ = f.set_len(curoff);
        let _ = f.sync_all();
        return Err(AgentError::new(
            EX_TEMPFAIL,
            format!("{who}: {}: {}", path.display(), strerror(&e)),
        ));
    }
    Ok(())
}

/// mail.local: append to the system mailbox `path` (refusing links and special files).
pub fn deliver(path: &Path, from_line: &str, input: impl BufRead) -> Result<(), AgentError> {
    let _lock = dotlock(path)?;
    let mut created = false;
    let mut f = loop {
        match std::fs::symlink_metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                match OpenOptions::new()
                    .append(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)
                {
                    Ok(f) => {
                        created = true;
                        break f;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                    Err(e) => {
                        return Err(AgentError::new(
                            EX_CANTCREAT,
                            format!("mail.local: {}: {}", path.display(), strerror(&e)),
                        ))
                    }
                }
            }
            Err(e) => {
                return Err(AgentError::new(
                    EX_OSERR,
                    format!("mail.local: {}: {}", path.display(), strerror(&e)),
                ))
            }
            Ok(sb) => {
                if sb.nlink() != 1 || !sb.file_type().is_file() {
                    return Err(AgentError::new(
                        EX_OSERR,
                        format!("mail.local: {}: linked or special file", path.display()),
                    ));
                }
                let f = OpenOptions::new()
                    .append(true)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(path)
                    .map_err(|e| {
                        AgentError::new(
                            EX_OSERR,
                            format!("mail.local: {}: {}", path.display(), strerror(&e)),
                        )
                    })?;
                let fsb = f.metadata().map_err(|e| {
                    AgentError::new(
                        EX_OSERR,
                        format!("mail.local: {}: {}", path.display(), strerror(&e)),
                    )
                })?;
                if fsb.dev() != sb.dev() || fsb.ino() != sb.ino() {
                    return Err(AgentError::new(
                        EX_OSERR,
                        format!("mail.local: {}: changed after open", path.display()),
                    ));
                }
                break f;
            }
        }
    };
    kernel_locks(&f).map_err(|e| {
        AgentError::new(
            EX_OSERR,
            format!("mail.local: {}: {}", path.display(), strerror(&e)),
        )
    })?;
    append(&mut f, from_line, input, false, "mail.local", path)?;
    if created {
        if let Some(dir) = path.parent() {
            if let Err(e) = File::open(dir).and_then(|d| d.sync_all()) {
                return Err(AgentError::new(
                    EX_TEMPFAIL,
                    format!("mail.local: {}", strerror(&e)),
                ));
            }
        }
    }
    Ok(())
}

/// mail.mboxfile: append to `path` (created 0600), every `From ` line quoted.
pub fn deliver_file(path: &Path, from_line: &str, input: impl BufRead) -> Result<(), AgentError> {
    let existed = path.exists();
    let mut f = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| AgentError::new(EX_TEMPFAIL, format!("mail.mboxfile: {}", strerror(&e))))?;
    kernel_locks(&f)
        .map_err(|e| AgentError::new(EX_TEMPFAIL, format!("mail.mboxfile: {}", strerror(&e))))?;
    append(&mut f, from_line, input, true, "mail.mboxfile", path)?;
    if !existed {
        if let Some(dir) = path.parent() {
            let _ = File::open(dir).and_then(|d| d.sync_all());
        }
    }
    Ok(())
}
