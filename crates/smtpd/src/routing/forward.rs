//! `~/.forward` and `:include:` files: the only I/O of recipient expansion, behind [`Forwards`]
//! so that expansion stays a pure function (tests give it fake files).

use crate::routing::lookup::UserInfo;
use crate::sys::log;

/// forward.c's `MAX_FORWARD_SIZE`: a larger `.forward` is a temporary failure.
pub const MAX_FORWARD_SIZE: usize = 4 * 1024;

/// What reading a user's `~/.forward` gave (the parent process's `parent_forward_open()`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForwardFile {
    /// No file (ENOENT, including a home directory that does not exist): deliver to the user.
    Missing,
    Content(Vec<u8>),
    /// Unsafe file, symlink, other open error: `524`.
    PermFail,
    /// Sticky home directory, EMFILE/ENFILE/EIO: `424`.
    TempFail,
}

/// The files expansion reads.
pub trait Forwards {
    fn forward(&self, user: &UserInfo) -> ForwardFile;
    /// An alias's `:include:` file; None when it cannot be opened (then it counts for nothing).
    fn include(&self, path: &str) -> Option<Vec<u8>>;
}

/// Reads the files as OpenSMTPD's parent process does (`parent_forward_open()` and
/// `secure_file()`): no symbolic link, no named pipe or other special file (opened without
/// blocking, then refused), a regular file owned by the user and not group/other-writable, in
/// a home directory owned by root or the user and not group/other-writable.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemForwards;

impl Forwards for SystemForwards {
    /// In the engine of a split daemon the parent opens the file (as OpenSMTPD's parent does:
    /// the engine may not read users' homes); otherwise we do, here.
    fn forward(&self, user: &UserInfo) -> ForwardFile {
        match crate::privsep::engine() {
            Some(client) => forward_from_parent(client, user),
            None => read_forward(user),
        }
    }

    fn include(&self, path: &str) -> Option<Vec<u8>> {
        // As the lka's fopen(): by the engine, with its own rights.
        std::fs::read(path).ok()
    }
}

fn forward_from_parent(client: &crate::privsep::Client, user: &UserInfo) -> ForwardFile {
    use crate::privsep::proto::{Forward, Reply, Request};
    let req = Request::Forward {
        user: user.username.clone(),
        uid: user.uid,
        gid: user.gid,
        directory: user.directory.clone(),
    };
    match client.forward(&req) {
        Ok(Reply::Forward(f)) => match f {
            Forward::Missing => ForwardFile::Missing,
            Forward::Content(c) => ForwardFile::Content(c),
            Forward::PermFail => ForwardFile::PermFail,
            Forward::TempFail => ForwardFile::TempFail,
        },
        Ok(_) => ForwardFile::TempFail,
        Err(e) => {
            log::warn(&format!("warn: smtpd: forward: {e}"));
            ForwardFile::TempFail
        }
    }
}

/// `parent_forward_open()`: reads `~/.forward` with its checks, with the lines it logs when
/// it ignores or cannot open the file. Done by whoever may read users' homes: the daemon
/// without split, else its root parent.
pub fn read_forward(user: &UserInfo) -> ForwardFile {
    {
        use std::io::ErrorKind;
        use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
        let strerror = rsmtpd_config::lexer::strerror;
        let dir = std::path::Path::new(&user.directory);
        let meta = match std::fs::metadata(dir) {
            Ok(m) => m,
            Err(e) => {
                log::warn(&format!(
                    "warn: smtpd: parent_forward_open: {}: {}",
                    dir.display(),
                    strerror(&e)
                ));
                return if e.kind() == ErrorKind::NotFound {
                    ForwardFile::Missing
                } else {
                    ForwardFile::PermFail
                };
            }
        };
        if meta.permissions().mode() & 0o1000 != 0 {
            log::warn(&format!(
                "warn: smtpd: parent_forward_open: {} is sticky",
                dir.display()
            ));
            return ForwardFile::TempFail;
        }
        let path = dir.join(".forward");
        // O_NONBLOCK as OpenSMTPD: opening a named pipe nobody writes to would otherwise wait
        // forever, holding the session (and its worker thread) for as long as the user likes.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc_o_nofollow() | nix::fcntl::OFlag::O_NONBLOCK.bits())
            .open(&path);
        let mut file = match file {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => return ForwardFile::Missing,
            Err(e) if matches!(e.raw_os_error(), Some(24) | Some(23) | Some(5)) => {
                return ForwardFile::TempFail
            }
            Err(e) => {
                log::warn(&if e.raw_os_error() == Some(libc::ELOOP) {
                    format!(
                        "warn: smtpd: parent_forward_open: {}: cannot follow symbolic links",
                        path.display()
                    )
                } else {
                    format!(
                        "warn: smtpd: parent_forward_open: {}: {}",
                        path.display(),
                        strerror(&e)
                    )
                });
                return ForwardFile::PermFail;
            }
        };
        let Ok(m) = file.metadata() else {
            return ForwardFile::TempFail;
        };
        // secure_file(): a regular file of the user's, writable by nobody else, in a home only
        // root or the user may write to.
        if !m.is_file()
            || m.uid() != user.uid
            || m.mode() & 0o022 != 0
            || !secure_dirs(&path, dir, user.uid)
        {
            log::warn(&format!("warn: smtpd: {}: unsecure file", path.display()));
            return ForwardFile::PermFail;
        }
        let mut data = Vec::new();
        use std::io::Read;
        // Read one byte past the limit: enough to know the file is too large.
        match (&mut file)
            .take(MAX_FORWARD_SIZE as u64 + 1)
            .read_to_end(&mut data)
        {
            Ok(_) => ForwardFile::Content(data),
            Err(_) => ForwardFile::TempFail,
        }
    }
}

fn libc_o_nofollow() -> i32 {
    nix::fcntl::OFlag::O_NOFOLLOW.bits()
}

/// The directory walk of `secure_file()`: from the file's canonical folder up to the user's
/// home (or `/`), each folder owned by root or the user and writable by nobody else, so that
/// nobody else could have put the file there or renamed another in its place.
fn secure_dirs(path: &std::path::Path, home: &std::path::Path, uid: u32) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(real) = std::fs::canonicalize(path) else {
        return false;
    };
    let home = std::fs::canonicalize(home).ok();
    let mut cur = real.as_path();
    while let Some(parent) = cur.parent() {
        let Ok(m) = std::fs::metadata(parent) else {
            return false;
        };
        if (m.uid() != 0 && m.uid() != uid) || m.mode() & 0o022 != 0 {
            return false;
        }
        if home.as_deref() == Some(parent) {
            break;
        }
        cur = parent;
    }
    true
}
