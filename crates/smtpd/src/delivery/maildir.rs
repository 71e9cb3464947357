//! Maildir delivery, as `mail.maildir [-j] [DIR]` does it, plus durability: the file is fsynced
//! in `tmp/`, renamed into `new/`, and `new/` is fsynced before we say "Delivered".
//!
//! Runs synchronously, as the recipient (in a worker of the delivery process when the daemon is
//! root).

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufWriter, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::headers::{c_line, next_line};
use super::AgentError;

const EX_TEMPFAIL: i32 = 75;

/// mail.maildir.c's own `MAILADDR_ESCAPE`, for the sub-address folder: smtpd.h's set (the one
/// of `%{...}` expansion) plus `/` and `^`, so that `user+/new` names the folder `.:new`, never
/// `Maildir/./new`.
const SUBDIR_ESCAPE: &[u8] = b"!#$%&'*/?^`{|}~";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Maildir {
    /// The expanded path, or `None` for `$HOME/Maildir`.
    pub dir: Option<String>,
    pub home: String,
    pub junk: bool,
    /// `EXTENSION`: the envelope's sub-address.
    pub extension: String,
    pub hostname: String,
    pub now: i64,
    pub random: u32,
}

fn fail(code: i32, e: &std::io::Error) -> AgentError {
    AgentError::new(code, format!("mail.maildir: {}", super::strerror(e)))
}

fn fsync_dir(p: &Path) -> std::io::Result<()> {
    File::open(p)?.sync_all()
}

/// `mkdirs()`: every component, mode 0700 (plus u+wx); then chmod the last one. Its result is
/// ignored by mail.maildir (it checks for -1, mkdirs returns 0), so is ours; we only note whether
/// we created anything, to fsync the parents.
fn mkdirs(path: &str, created: &mut Vec<PathBuf>) {
    if !path.starts_with('/') {
        return;
    }
    let mut cur = PathBuf::from("/");
    for comp in path.split('/').filter(|c| !c.is_empty()) {
        cur.push(comp);
        match fs::metadata(&cur) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if fs::DirBuilder::new().mode(0o700).create(&cur).is_err() {
                    return;
                }
                created.push(cur.clone());
            }
            Err(_) => return,
        }
    }
    let _ = fs::set_permissions(path, fs::Permissions::from_mode(0o700));
}

fn maildir_mkdirs(dir: &str, created: &mut Vec<PathBuf>) -> Result<(), AgentError> {
    // A relative path makes mkdirs() fail with EINVAL, which mail.maildir ignores.
    mkdirs(dir, created);
    for sub in ["cur", "tmp", "new"] {
        let p = format!("{dir}/{sub}");
        match fs::DirBuilder::new().mode(0o700).create(&p) {
            Ok(()) => created.push(PathBuf::from(p)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(fail(EX_TEMPFAIL, &e)),
        }
    }
    Ok(())
}

/// Whether expanding the action's maildir path `raw` into `expanded` made `.` or `..` path
/// components that neither the format's own text nor the user's home directory (`~/`,
/// `%{user.directory}`) has: values from an envelope climbing out of the intended folder.
/// From SMTP a local part cannot hold `..` (an empty atom), but a `.forward` or alias may name
/// `../../x@domain`, and OpenSMTPD then writes wherever that leads. We refuse on purpose.
pub fn dots_added(raw: &str, home: &str, expanded: &str) -> bool {
    let dots = |s: &str| s.split('/').filter(|c| *c == "." || *c == "..").count();
    dots(expanded) > dots(raw) + dots(home)
}

/// Delivers `input` (delivery headers + message). The file name is `TIME.RANDOM.HOSTNAME`.
/// Returns the path of the delivered file.
pub fn deliver(m: &Maildir, mut input: impl BufRead) -> Result<PathBuf, AgentError> {
    let root = match &m.dir {
        Some(d) => d.clone(),
        None => format!("{}/Maildir", m.home),
    };
    let mut dirname = root.clone();
    let mut created = Vec::new();
    maildir_mkdirs(&dirname, &mut created)?;
    let junkpath = format!("{root}/.Junk");
    if m.junk {
        maildir_mkdirs(&junkpath, &mut created)?;
    }
    if !m.extension.is_empty() {
        let sub: String = m
            .extension
            .chars()
            .map(|c| {
                if c.is_ascii() && SUBDIR_ESCAPE.contains(&(c as u8)) {
                    ':'
                } else {
                    c
                }
            })
            .collect();
        let ext = format!("{root}/.{sub}");
        if fs::metadata(&ext).is_ok() {
            dirname = ext;
            maildir_mkdirs(&dirname, &mut created)?;
        }
    }
    let filename = format!("{}.{:08x}.{}", m.now, m.random, m.hostname);
    let tmp = format!("{dirname}/tmp/{filename}");
    let f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| fail(EX_TEMPFAIL, &e))?;
    let mut w = BufWriter::with_capacity(64 * 1024, f);
    let mut in_hdr = true;
    let mut is_junk = false;
    let mut buf = Vec::new();
    let result = (|| -> std::io::Result<()> {
        while next_line(&mut input, &mut buf)? {
            let line = c_line(&buf);
            if line.is_empty() {
                in_hdr = false;
            }
            if m.junk
                && in_hdr
                && (line.eq_ignore_ascii_case(b"x-spam: yes")
                    || line.eq_ignore_ascii_case(b"x-spam-flag: yes"))
            {
                is_junk = true;
            }
            w.write_all(line)?;
            w.write_all(b"\n")?;
        }
        let f = w.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
        Ok(())
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(fail(EX_TEMPFAIL, &e));
    }
    let newdir = if is_junk { junkpath } else { dirname };
    let new = PathBuf::from(format!("{newdir}/new/{filename}"));
    if let Err(e) = fs::rename(&tmp, &new) {
        let _ = fs::remove_file(&tmp);
        return Err(fail(EX_TEMPFAIL, &e));
    }
    // Durability: the new name, and any directory we had to create, reach the disk.
    let mut dirs: Vec<PathBuf> = vec![PathBuf::from(format!("{newdir}/new"))];
    for c in &created {
        if let Some(p) = c.parent() {
            if !dirs.iter().any(|d| d == p) {
                dirs.push(p.to_path_buf());
            }
        }
    }
    for d in dirs {
        if let Err(e) = fsync_dir(&d) {
            return Err(fail(EX_TEMPFAIL, &e));
        }
    }
    Ok(new)
}

#[cfg(test)]
mod tests {
    use super::dots_added;

    #[test]
    fn dots_from_values_are_noticed() {
        let home = "/home/alice";
        assert!(!dots_added(
            "/var/vmail/%{dest.user}",
            home,
            "/var/vmail/bob"
        ));
        assert!(!dots_added(
            "/var/vmail/%{dest.user}",
            home,
            "/var/vmail/a/b"
        ));
        assert!(!dots_added(
            "/var/vmail/%{dest.user}",
            home,
            "/var/vmail/.hidden"
        ));
        assert!(dots_added(
            "/var/vmail/%{dest.user}",
            home,
            "/var/vmail/../x"
        ));
        assert!(dots_added("/var/vmail/%{dest.user}", home, "/var/vmail/."));
        assert!(dots_added(
            "/var/vmail/%{dest.user}",
            home,
            "/var/vmail/a/./b"
        ));
        // Dots the admin wrote, or the home has, are theirs.
        assert!(!dots_added(
            "/srv/mail/../vmail/%{dest.user}",
            home,
            "/srv/mail/../vmail/bob"
        ));
        assert!(!dots_added(
            "~/Maildir",
            "/home/../home/alice",
            "/home/../home/alice/Maildir"
        ));
    }
}
