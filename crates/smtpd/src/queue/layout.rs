//! The spool's directories, their owners and modes (`queue_backend.c:
//! queue_init`, `queue_fs.c:queue_fs_init`, `util.c:ckdir`), and the start-up
//! clean-up of what a previous run left half done.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::unistd::{chown, Gid, Group, Uid, User};

use super::commitlog::{self, Record, Summer, LOG_FILES};
use super::id::MsgId;

pub const INCOMING: &str = "incoming";
pub const QUEUE: &str = "queue";
pub const OFFLINE: &str = "offline";
pub const PURGE: &str = "purge";
pub const TEMPORARY: &str = "temporary";
pub const MESSAGE: &str = "message";

/// Who owns what we create. OpenSMTPD's queue process runs as the queue
/// user (`opensmtpq` on Debian, `_smtpq` upstream) and owns every message;
/// when we are root we give our files to that user so that a queue process
/// which drops to it later, or an OpenSMTPD started on this spool, can use
/// them. When not root everything is simply ours.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Owner {
    pub uid: Uid,
    pub gid: Gid,
    /// True when we are root and must chown what we create.
    pub chown: bool,
}

impl Owner {
    /// The queue user when we are root and it exists, else ourselves.
    pub fn detect() -> Owner {
        if Uid::effective().is_root() {
            for name in ["opensmtpq", "_smtpq"] {
                if let Ok(Some(u)) = User::from_name(name) {
                    let gid = match Group::from_name(name) {
                        Ok(Some(g)) => g.gid,
                        _ => u.gid,
                    };
                    return Owner {
                        uid: u.uid,
                        gid,
                        chown: true,
                    };
                }
            }
        }
        Owner {
            uid: Uid::effective(),
            gid: Gid::effective(),
            chown: false,
        }
    }

    /// Gives a file or directory we just created to the queue user.
    pub fn adopt(&self, path: &Path) -> io::Result<()> {
        if self.chown {
            chown(path, Some(self.uid), Some(self.gid)).map_err(io::Error::from)?;
        }
        Ok(())
    }

    /// Same for an open file (one syscall, no path lookup).
    pub fn adopt_file(&self, f: &fs::File) -> io::Result<()> {
        if self.chown {
            std::os::unix::fs::fchown(f, Some(self.uid.as_raw()), Some(self.gid.as_raw()))?;
        }
        Ok(())
    }
}

/// `ckdir`: create `path` with `mode` and owner if missing, then insist on
/// them, with OpenSMTPD's messages. When not root only the type and mode are
/// checked: the owner is whoever runs us.
fn ckdir(path: &Path, mode: u32, uid: Uid, gid: Gid, root: bool) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            // Created with mode 0 and chmod-ed afterwards, so the umask has no say.
            fs::DirBuilder::new().mode(0o000).create(path)?;
            if root {
                chown(path, Some(uid), Some(gid)).map_err(io::Error::from)?;
            }
            fs::set_permissions(path, fs::Permissions::from_mode(mode))?;
        }
        Err(e) => return Err(e),
    }
    let md = fs::symlink_metadata(path)?;
    let mut problems = Vec::new();
    if !md.is_dir() {
        problems.push(format!("{} is not a directory", path.display()));
    }
    if root && md.uid() != uid.as_raw() {
        problems.push(format!("{} is not owned by uid {}", path.display(), uid));
    }
    if root && md.gid() != gid.as_raw() {
        problems.push(format!("{} is not owned by gid {}", path.display(), gid));
    }
    if md.mode() & 0o7777 != mode {
        problems.push(format!(
            "{} must be {} ({:o})",
            path.display(),
            mode_string(mode),
            mode
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else if !md.is_dir() {
        Err(io::Error::other(format!(
            "{}: move it away (smtpd then creates the directory)",
            problems.join("; ")
        )))
    } else {
        Err(io::Error::other(format!(
            "{}: {}",
            problems.join("; "),
            crate::startup::ckdir_remedy(path, mode, uid.as_raw(), gid.as_raw(), root)
        )))
    }
}

/// `strmode` without the type letter: `rwx--x--x`.
fn mode_string(mode: u32) -> String {
    let mut s = String::with_capacity(9);
    for shift in [6, 3, 0] {
        let bits = (mode >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    s
}

/// Creates or checks the spool, and moves away what a previous run left in
/// `incoming/` (messages never acknowledged) and `temporary/`, as OpenSMTPD
/// does at start.
pub fn setup(spool: &Path, owner: &Owner) -> io::Result<()> {
    let root = owner.chown;
    let r = Uid::from_raw(0);
    let rg = Gid::from_raw(0);
    ckdir(spool, 0o711, r, rg, root)?;
    ckdir(&spool.join(OFFLINE), 0o770, r, owner.gid, root)?;
    ckdir(&spool.join(PURGE), 0o700, owner.uid, rg, root)?;
    // Renaming them away writes the spool's own directory, which is root's: the parent of a
    // split daemon did it before its engine started (as 6.8's parent does in setup_spool).
    let engine = crate::privsep::engine().is_some();
    if !engine {
        mvpurge(&spool.join(TEMPORARY), &spool.join(PURGE))?;
    }
    ckdir(&spool.join(TEMPORARY), 0o700, owner.uid, rg, root)?;
    ckdir(&spool.join(QUEUE), 0o700, owner.uid, rg, root)?;
    if !engine {
        for msgid in recover_incoming(spool, owner)? {
            crate::sys::log::warn(&format!(
                "warn: queue: message {msgid} was acknowledged before a crash: moved from incoming to the queue"
            ));
        }
        mvpurge(&spool.join(INCOMING), &spool.join(PURGE))?;
    }
    ckdir(&spool.join(INCOMING), 0o700, owner.uid, rg, root)?;
    empty_purge(&spool.join(PURGE));
    Ok(())
}

/// The messages of `incoming/` that were answered `250` before a crash
/// stopped their rename into `queue/` (see `commitlog`): each one whose
/// files match a commit record exactly is moved into `queue/` now, and the
/// moves are made durable before `incoming/` is purged. The ids moved.
///
/// A log or a message that cannot be read (an I/O error after the crash) is
/// logged and left to the purge: what cannot be checked cannot be trusted,
/// and one bad file must not keep the daemon from starting. A move that
/// fails is an error: the start stops with `incoming/` as it was.
pub fn recover_incoming(spool: &Path, owner: &Owner) -> io::Result<Vec<MsgId>> {
    use crate::sys::log;
    let incoming = spool.join(INCOMING);
    let mut records: Vec<Record> = Vec::new();
    for name in LOG_FILES {
        let path = incoming.join(name);
        let read = open_plain(&path).and_then(|f| {
            let mut data = Vec::new();
            if let Some(f) = f {
                use std::io::Read;
                f.take(MAX_LOG).read_to_end(&mut data)?;
            }
            Ok(data)
        });
        match read {
            Ok(data) => records.extend(commitlog::parse(&data)),
            Err(e) => log::warn(&format!(
                "warn: queue: {}: {}: commits recorded there are not recovered",
                path.display(),
                crate::sys::compat::strerror(&e)
            )),
        }
    }
    if records.is_empty() {
        return Ok(Vec::new());
    }
    let queue = spool.join(QUEUE);
    let mut moved = Vec::new();
    for rec in &records {
        let dir = incoming.join(rec.msgid.to_string());
        if moved.contains(&rec.msgid) {
            continue;
        }
        match matches_record(&dir, rec) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                log::warn(&format!(
                    "warn: queue: message {} acknowledged before a crash cannot be read: {}: discarded",
                    rec.msgid,
                    crate::sys::compat::strerror(&e)
                ));
                continue;
            }
        }
        make_bucket(&queue, rec.msgid, owner)?;
        use nix::fcntl::{renameat2, RenameFlags, AT_FDCWD};
        let to = queue.join(rec.msgid.bucket()).join(rec.msgid.to_string());
        match renameat2(AT_FDCWD, &dir, AT_FDCWD, &to, RenameFlags::RENAME_NOREPLACE) {
            Ok(()) => moved.push(rec.msgid),
            // Already in `queue/` too (a half-written rename that fsck left
            // with both names): the queue's copy stands.
            Err(Errno::EEXIST) => {}
            Err(e) => return Err(e.into()),
        }
    }
    if !moved.is_empty() {
        nix::unistd::syncfs(fs::File::open(&queue)?)?;
    }
    Ok(moved)
}

/// `queue/XX` for `msgid`, made (mode 0700, the queue user's) on first use;
/// buckets are never removed, as in OpenSMTPD. True if it is new.
pub(super) fn make_bucket(queue: &Path, msgid: MsgId, owner: &Owner) -> io::Result<bool> {
    let bucket = queue.join(msgid.bucket());
    match fs::DirBuilder::new().create(&bucket) {
        Ok(()) => {
            // Explicit chmod: the umask must not decide the bucket's mode.
            fs::set_permissions(&bucket, fs::Permissions::from_mode(0o700))?;
            owner.adopt(&bucket)?;
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

/// The most of a log file that is read: a round's records, even of
/// thousands of recipients, are far less.
const MAX_LOG: u64 = 64 << 20;

/// Opens a regular file that is not a link (the parent of a split daemon
/// reads these as root, in a directory the engine writes: a link to another
/// file, a FIFO or a device there is not ours); None for anything else.
fn open_plain(path: &Path) -> io::Result<Option<fs::File>> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = match fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(Errno::ELOOP as i32) => return Ok(None),
        Err(e) => return Err(e),
    };
    Ok(f.metadata()?.is_file().then_some(f))
}

/// Whether `dir` holds exactly the record's files (`message` and its
/// envelopes, nothing else) with exactly its sums.
fn matches_record(dir: &Path, rec: &Record) -> io::Result<bool> {
    match fs::symlink_metadata(dir) {
        Ok(md) if md.is_dir() => {}
        Ok(_) => return Ok(false),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    }
    let mut names = Vec::new();
    for entry in fs::read_dir(dir)? {
        names.push(entry?.file_name());
    }
    if names.len() != rec.envelopes.len() + 1 {
        return Ok(false);
    }
    let mut wanted: Vec<(String, commitlog::Sum)> = vec![(MESSAGE.to_string(), rec.message)];
    wanted.extend(rec.envelopes.iter().map(|(e, s)| (e.to_string(), *s)));
    for (name, want) in wanted {
        if !names.iter().any(|n| n.to_str() == Some(name.as_str())) {
            return Ok(false);
        }
        match file_sum(&dir.join(&name))? {
            Some(got) if got == want => {}
            _ => return Ok(false),
        }
    }
    Ok(true)
}

/// A regular file's SHA-256; None for anything else or a file gone.
fn file_sum(path: &Path) -> io::Result<Option<commitlog::Sum>> {
    use std::io::Read;
    let Some(mut f) = open_plain(path)? else {
        return Ok(None);
    };
    let mut sum = Summer::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(Some(sum.finish()));
        }
        sum.update(buf.get(..n).unwrap_or_default());
    }
}

/// Renames `from` into `to/<random>` so that it vanishes in one step; the
/// slow removal happens afterwards, in `purge/`.
pub fn mvpurge(from: &Path, to: &Path) -> io::Result<()> {
    for _ in 0..20 {
        let dest = to.join(rand::random::<u32>().to_string());
        match fs::rename(from, &dest) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            // The random name exists already: draw another.
            Err(e)
                if [
                    Errno::ENOTEMPTY,
                    Errno::EISDIR,
                    Errno::ENOTDIR,
                    Errno::EEXIST,
                ]
                .iter()
                .any(|n| e.raw_os_error() == Some(*n as i32)) =>
            {
                continue
            }
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other(format!(
        "cannot move {} to {}",
        from.display(),
        to.display()
    )))
}

/// OpenSMTPD forks a purge task for this; at our start-up nothing else runs
/// yet, and what is left here is garbage even if removing it fails.
fn empty_purge(purge: &Path) {
    if let Ok(rd) = fs::read_dir(purge) {
        for entry in rd.flatten() {
            let p: PathBuf = entry.path();
            let _ = match entry.file_type() {
                Ok(t) if t.is_dir() => fs::remove_dir_all(&p),
                _ => fs::remove_file(&p),
            };
        }
    }
}
