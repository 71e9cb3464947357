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

/// The engine's memory of homes the parent found without a `.forward`.
///
/// Why: in the split daemon each local recipient costs a synchronous round trip to the root
/// parent (6.8's `IMSG_LKA_OPEN_FORWARD`). On a busy machine that hop waits for the parent's
/// thread to be scheduled and then for ours: bench/tls measured RCPT at 2.8 ms against 1.2 ms
/// unsplit, a quarter of the persistent-session rate. Almost no home has a `.forward`, and the
/// engine may `stat` a home (it needs no right on the home itself): any entry made, removed or
/// renamed in a directory moves its ctime, which nobody can set back. So a home whose device,
/// inode and ctime are those it had when the parent last found no `.forward` still has none, and
/// the parent is not asked again. Only "no file" is remembered: a file's content can change
/// without its directory changing, and every other answer is the parent's to give each time.
struct NoForwards {
    seen: std::sync::Mutex<rustc_hash::FxHashMap<String, NoForward>>,
}

/// One home without a `.forward`, as the engine saw it just before asking the parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DirStamp {
    pub dev: u64,
    pub ino: u64,
    /// The ctime, in nanoseconds since the epoch.
    pub ctime: i128,
}

#[derive(Debug, Clone, Copy)]
struct NoForward {
    stamp: DirStamp,
    since: i128,
}

/// A ctime this close to the moment we looked may still be shared by an entry made just after
/// (file systems stamp with a coarse clock, a tick of several milliseconds): such a home is not
/// remembered, as git's "racy" index entries are not trusted.
const RACY_NS: i128 = 1_000_000_000;
/// However still a home looks, the parent is asked again after this (a clock set backwards).
const REMEMBER_NS: i128 = 60 * 1_000_000_000;
/// More homes than this and the memory starts again (a userbase of many users).
const REMEMBER_MAX: usize = 10_000;

/// Whether a "no `.forward`" seen at `now_ns` for a home stamped `stamp` may be remembered.
pub(crate) fn rememberable(stamp: &DirStamp, now_ns: i128) -> bool {
    stamp.ctime <= now_ns - RACY_NS
}

/// Whether a home remembered as `was` (since `since`) is known, at `now_ns` with stamp `now`,
/// to have no `.forward` still.
pub(crate) fn still_none(was: &DirStamp, since: i128, now: &DirStamp, now_ns: i128) -> bool {
    was == now && now_ns >= since && now_ns - since < REMEMBER_NS
}

fn dir_stamp(dir: &str) -> Option<(DirStamp, i128)> {
    use std::os::unix::fs::MetadataExt;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_nanos();
    let m = std::fs::metadata(dir).ok()?;
    let stamp = DirStamp {
        dev: m.dev(),
        ino: m.ino(),
        ctime: i128::from(m.ctime()) * 1_000_000_000 + i128::from(m.ctime_nsec()),
    };
    Some((stamp, i128::try_from(now).ok()?))
}

static NO_FORWARDS: std::sync::OnceLock<NoForwards> = std::sync::OnceLock::new();

fn forward_from_parent(client: &crate::privsep::Client, user: &UserInfo) -> ForwardFile {
    let memory = NO_FORWARDS.get_or_init(|| NoForwards {
        seen: std::sync::Mutex::new(rustc_hash::FxHashMap::default()),
    });
    // Stamped before the question: an entry made while the parent looks moves the ctime past it.
    let stamp = dir_stamp(&user.directory);
    if let Some((now_stamp, now)) = stamp {
        let seen = memory.seen.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = seen.get(&user.directory) {
            if still_none(&n.stamp, n.since, &now_stamp, now) {
                return ForwardFile::Missing;
            }
        }
    }
    let answer = ask_parent(client, user);
    let mut seen = memory.seen.lock().unwrap_or_else(|p| p.into_inner());
    match (&answer, stamp) {
        (ForwardFile::Missing, Some((stamp, now))) if rememberable(&stamp, now) => {
            if seen.len() >= REMEMBER_MAX {
                seen.clear();
            }
            seen.insert(user.directory.clone(), NoForward { stamp, since: now });
        }
        _ => {
            seen.remove(&user.directory);
        }
    }
    answer
}

fn ask_parent(client: &crate::privsep::Client, user: &UserInfo) -> ForwardFile {
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

#[cfg(test)]
mod tests {
    use super::*;

    const S: i128 = 1_000_000_000;

    fn home(ctime: i128) -> DirStamp {
        DirStamp {
            dev: 8,
            ino: 42,
            ctime,
        }
    }

    #[test]
    fn a_home_changed_within_the_clock_s_tick_is_not_remembered() {
        let now = 1_000 * S;
        assert!(!rememberable(&home(now), now));
        assert!(!rememberable(&home(now - S / 2), now));
        assert!(rememberable(&home(now - S), now));
    }

    #[test]
    fn any_change_of_the_home_or_a_minute_asks_the_parent_again() {
        let t = 1_000 * S;
        let was = home(t - 5 * S);
        assert!(still_none(&was, t, &was, t + S));
        // A `.forward` made (or anything else in the home): its ctime moved.
        assert!(!still_none(&was, t, &home(t + 1), t + S));
        // Another directory at the same path (a home re-created, another mount).
        assert!(!still_none(&was, t, &DirStamp { ino: 43, ..was }, t + S));
        assert!(!still_none(&was, t, &DirStamp { dev: 9, ..was }, t + S));
        assert!(!still_none(&was, t, &was, t + 60 * S));
        // A clock set backwards.
        assert!(!still_none(&was, t, &was, t - S));
    }

    proptest::proptest! {
        #[test]
        fn remembered_only_while_every_part_of_the_stamp_is_unchanged(
            dev in 0u64..3, ino in 0u64..3, ctime in 0i128..3, age in 0i128..(120 * S)
        ) {
            let was = home(1);
            let now = DirStamp { dev: dev + 7, ino: ino + 41, ctime };
            let t = 1_000 * S;
            let kept = still_none(&was, t, &now, t + age);
            proptest::prop_assert_eq!(kept, now == was && age < 60 * S);
        }
    }
}
