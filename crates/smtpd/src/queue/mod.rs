//! The on-disk queue: OpenSMTPD's `fs` backend layout, so that a spool can
//! pass between OpenSMTPD and us, plus durable, group-committed commits.
//!
//! ```text
//! SPOOL/                 711 root:root
//!   incoming/MSGID/      messages being received: message + one file per envelope
//!   queue/XX/MSGID/      committed messages (XX = high byte of MSGID), same files
//!   temporary/           envelope rewrites before their rename
//!   purge/               whatever is being removed
//!   offline/             770 root:queue-group, sendmail's drop box while we are down
//! ```
//!
//! The session driver's sequence for one transaction:
//!
//! 1. `create_message()` at the first accepted RCPT (or at MAIL) → msgid;
//! 2. `create_envelope(msgid, &mut env)` per expanded recipient (sets `env.id`);
//! 3. `message_writer(msgid)` at DATA, then `write()` the message as queued;
//! 4. `commit(msgid, writer).await` after the final dot: `Ok` means durable,
//!    answer 250 and hand the envelopes to the scheduler; `Err` means the
//!    message is gone already, answer 4xx;
//! 5. `rollback(msgid)` instead of 4 on RSET, abort, disconnect, or a
//!    rejection; harmless when nothing is incoming under that id.
//!
//! At start: `Queue::open` (cleans `incoming/`), then `load()` for the
//! scheduler, before any session runs. Delivery: `message_path`,
//! `envelope_update` after a temporary failure, `envelope_delete` when done.
//!
//! Recycled inodes: the layout costs three inodes per message (directory,
//! `message`, envelope), created at RCPT/DATA and freed at delivery. On ext4
//! without a journal (this project's benchmark and CI machines) every inode
//! allocation skips the inodes freed in the last minutes (`recently_deleted`,
//! one inode-table lookup each), so create+delete churn made `open(O_CREAT)`
//! and `mkdir` half of the daemon's CPU under load. Finished message
//! directories and envelope files are therefore renamed into `purge/` and
//! renamed back in for the next message (see [`spares`]): steady traffic
//! allocates and frees no spool inode at all, on any file system.

pub mod codec;
pub mod commit;
pub mod commitlog;
pub mod envelope;
pub mod id;
pub mod layout;
mod spares;
mod writer;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};

use rustc_hash::FxHashMap;
use tokio::sync::oneshot;

use crate::sys::log;

pub use codec::{open_message_file, Codec, QueueKey};
pub use commit::CommitMode;
pub use envelope::{
    BounceInfo, BounceType, DeliveryType, DsnRet, Envelope, EnvelopeFlags, ParseError, SockAddr,
};
pub use id::{EvpId, MsgId};
pub use layout::Owner;
pub use writer::MessageWriter;

use commitlog::Sum;
use layout::{INCOMING, MESSAGE, PURGE, QUEUE, TEMPORARY};
use spares::Spares;

/// Envelope files are a few hundred bytes; OpenSMTPD refuses any larger
/// than its `struct envelope` (about 8 KB). Ours may hold longer strings.
const MAX_ENVELOPE_FILE: u64 = 64 * 1024;

/// What `smtpctl discover` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Discover {
    Message(MsgId),
    Envelope(EvpId),
}

/// What `Queue::open` may be told.
#[derive(Clone, Debug, Default)]
pub struct QueueOptions {
    pub commit_mode: CommitMode,
    /// The most a commit round waits for the sessions the last one answered
    /// (see `commit::gather`); `None`: the default, 2 ms.
    pub commit_linger: Option<std::time::Duration>,
    /// Who owns created files; `None` = [`Owner::detect`].
    pub owner: Option<Owner>,
    /// `queue compression`: message and envelope files are written
    /// gzip-compressed.
    pub compression: bool,
    /// `queue encryption`: message and envelope files are written encrypted
    /// with this key (after compression).
    pub encryption: Option<QueueKey>,
}

/// Counters for tests and `smtpctl show stats`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Successful commits.
    pub commits: u64,
    /// Committer rounds (each ends with the barrier its commits share).
    pub batches: u64,
    /// `fsync`/`syncfs` calls made for commits.
    pub syncs: u64,
}

/// Everything `load()` found under `queue/`.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Every readable envelope, in evpid order.
    pub envelopes: Vec<Envelope>,
    /// Envelope files left on disk that could not be used, and why
    /// (OpenSMTPD logs `warn: invalid envelope EVPID: REASON` and skips them).
    pub invalid: Vec<(EvpId, String)>,
}

/// The committer threads of this process's queues, for [`finish_committers`].
static COMMITTERS: Mutex<Vec<std::thread::JoinHandle<()>>> = Mutex::new(Vec::new());

/// At an orderly stop, once every `Queue` is dropped: waits (up to `limit`)
/// for the committer threads to end, so that the last renames are made
/// durable and the commit log removed before the process exits (see
/// `commit::Log::close`). A committer still running at the limit is left:
/// its records stay for the next start.
pub fn finish_committers(limit: std::time::Duration) {
    let deadline = std::time::Instant::now() + limit;
    let mut threads = std::mem::take(&mut *COMMITTERS.lock().unwrap_or_else(|p| p.into_inner()));
    while !threads.is_empty() && std::time::Instant::now() < deadline {
        threads.retain(|t| !t.is_finished());
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// The queue; cheap to clone, shared by every session and the scheduler.
#[derive(Clone)]
pub struct Queue {
    shared: Arc<Shared>,
    /// `None` in [`CommitMode::Single`]. The committer thread ends when the
    /// last clone of the sender is dropped.
    committer: Option<mpsc::Sender<commit::Job>>,
    mode: CommitMode,
}

#[derive(Default)]
struct Stats {
    commits: AtomicU64,
    batches: AtomicU64,
    syncs: AtomicU64,
}

#[derive(Default)]
struct State {
    /// Messages being received, with the envelopes created so far and the
    /// sums of their files (for the commit log).
    incoming: FxHashMap<MsgId, Vec<(EvpId, Sum)>>,
    /// Committed messages and how many envelopes they still have: the last
    /// `envelope_delete` removes the message.
    queued: FxHashMap<MsgId, u32>,
    spares: Spares,
}

/// What the committer thread shares with the sessions.
struct Shared {
    spool: PathBuf,
    incoming: PathBuf,
    queue: PathBuf,
    temporary: PathBuf,
    purge: PathBuf,
    /// Open for `syncfs`, which takes any fd of the file system.
    spool_dir: File,
    owner: Owner,
    state: Mutex<State>,
    stats: Stats,
    /// Whether finished inodes are parked for reuse (the group modes).
    recycle: bool,
    /// Names spares uniquely in `purge/` (emptied at every start).
    spare_seq: AtomicU64,
    codec: Codec,
}

impl Shared {
    fn incoming_dir(&self, msgid: MsgId) -> PathBuf {
        self.incoming.join(msgid.to_string())
    }

    fn queued_dir(&self, msgid: MsgId) -> PathBuf {
        self.queue.join(msgid.bucket()).join(msgid.to_string())
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves maps that are still
        // consistent (every update is a single insert or remove).
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn committed(&self, msgid: MsgId, nevp: u32) {
        self.state().queued.insert(msgid, nevp);
    }

    /// Moves a directory into `purge/` (it vanishes in one step, so no
    /// reader ever sees half of it) and removes it there.
    fn remove_tree(&self, dir: &Path) {
        let target = self.purge.join(format!(
            "{}.{}",
            dir.file_name().and_then(|n| n.to_str()).unwrap_or("x"),
            rand::random::<u32>()
        ));
        match fs::rename(dir, &target) {
            Ok(()) => {
                let _ = fs::remove_dir_all(&target);
            }
            Err(_) => {
                let _ = fs::remove_dir_all(dir);
            }
        }
    }

    fn new_file(&self, path: &Path) -> io::Result<File> {
        let f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)?;
        self.owner.adopt_file(&f)?;
        Ok(f)
    }
}

impl Queue {
    /// Opens the spool with the default options. See [`Queue::open_with`].
    pub fn open(spool: &Path) -> io::Result<Queue> {
        Queue::open_with(spool, QueueOptions::default())
    }

    /// Creates or checks the spool layout (owners and modes as OpenSMTPD's
    /// when root), discards what a previous run left in `incoming/` and
    /// `temporary/` (never acknowledged, so garbage), and starts the
    /// committer. Call once per spool per process, before any session.
    pub fn open_with(spool: &Path, opts: QueueOptions) -> io::Result<Queue> {
        let owner = opts.owner.unwrap_or_else(Owner::detect);
        layout::setup(spool, &owner)?;
        let shared = Arc::new(Shared {
            spool: spool.to_path_buf(),
            incoming: spool.join(INCOMING),
            queue: spool.join(QUEUE),
            temporary: spool.join(TEMPORARY),
            purge: spool.join(PURGE),
            // For syncfs(): any descriptor on the spool's file system. queue/ rather than the
            // spool itself, which is root's and mode 0711 (the engine of a split daemon may
            // not open it); queue/ is on the same file system in OpenSMTPD's layout.
            spool_dir: File::open(spool.join(QUEUE))?,
            owner,
            state: Mutex::new(State::default()),
            stats: Stats::default(),
            recycle: opts.commit_mode != CommitMode::Single,
            spare_seq: AtomicU64::new(0),
            codec: Codec {
                compression: opts.compression,
                key: opts.encryption,
            },
        });
        let committer = match opts.commit_mode {
            CommitMode::Single => None,
            mode => {
                let (tx, rx) = mpsc::channel();
                let sh = Arc::clone(&shared);
                let linger = opts.commit_linger.unwrap_or(commit::LINGER_MAX);
                let log = commit::Log::create(&shared)?;
                let thread = std::thread::Builder::new()
                    .name("queue-commit".into())
                    .spawn(move || commit::run(sh, rx, mode, linger, log))?;
                COMMITTERS
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(thread);
                if mode != CommitMode::GroupSyncfs {
                    let weak = Arc::downgrade(&shared);
                    std::thread::Builder::new()
                        .name("queue-spares".into())
                        .spawn(move || commit::run_promoter(weak))?;
                }
                Some(tx)
            }
        };
        Ok(Queue {
            shared,
            committer,
            mode: opts.commit_mode,
        })
    }

    pub fn spool(&self) -> &Path {
        &self.shared.spool
    }

    pub fn stats(&self) -> QueueStats {
        let s = &self.shared.stats;
        QueueStats {
            commits: s.commits.load(Ordering::Relaxed),
            batches: s.batches.load(Ordering::Relaxed),
            syncs: s.syncs.load(Ordering::Relaxed),
        }
    }

    /// `queue_fs_message_create`: a fresh msgid, unused both in `incoming/`
    /// and `queue/` (the later rename must not collide), and its
    /// `incoming/MSGID/` directory.
    pub fn create_message(&self) -> io::Result<MsgId> {
        let sh = &self.shared;
        loop {
            let msgid = MsgId::random();
            match fs::symlink_metadata(sh.queued_dir(msgid)) {
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            let dir = sh.incoming_dir(msgid);
            match sh.reuse(true, &dir) {
                Ok(true) => {
                    // A recycled directory is already ours, mode and owner.
                    sh.state().incoming.insert(msgid, Vec::new());
                    return Ok(msgid);
                }
                Ok(false) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
            match fs::DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
            if let Err(e) = sh.owner.adopt(&dir) {
                let _ = fs::remove_dir(&dir);
                return Err(e);
            }
            sh.state().incoming.insert(msgid, Vec::new());
            return Ok(msgid);
        }
    }

    /// `queue_fs_envelope_create`: gives `env` a fresh evpid of `msgid`
    /// (`env.id`) and writes it. For a message being received the file goes
    /// to `incoming/MSGID/` unsynced (the commit syncs it); for a committed
    /// message (a bounce added to it) it is made durable at once.
    pub fn create_envelope(&self, msgid: MsgId, env: &mut Envelope) -> io::Result<EvpId> {
        let sh = &self.shared;
        if !sh.state().incoming.contains_key(&msgid) {
            return self.add_envelope(msgid, env);
        }
        let dir = sh.incoming_dir(msgid);
        // As OpenSMTPD: 20 draws, then give up (the caller tempfails).
        for _ in 0..20 {
            let evpid = EvpId::random(msgid);
            env.id = evpid;
            let path = dir.join(evpid.to_string());
            let opened = match sh.reuse(false, &path) {
                // Its old text goes: truncated, then rewritten.
                Ok(true) => OpenOptions::new().write(true).truncate(true).open(&path),
                Ok(false) => sh.new_file(&path),
                Err(e) => Err(e),
            };
            let mut f = match opened {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            };
            let written = sh
                .codec
                .encode_envelope(env.to_text().as_bytes())
                .and_then(|data| f.write_all(&data).map(|()| commitlog::sum(&data)));
            let sum = match written {
                Ok(sum) => sum,
                Err(e) => {
                    let _ = fs::remove_file(&path);
                    return Err(e);
                }
            };
            match sh.state().incoming.get_mut(&msgid) {
                Some(list) => list.push((evpid, sum)),
                // Rolled back meanwhile: the file went with the directory.
                None => return Err(io::Error::from(io::ErrorKind::NotFound)),
            }
            return Ok(evpid);
        }
        Err(io::Error::other("could not allocate evpid"))
    }

    /// A new envelope in an already committed message (bounces).
    fn add_envelope(&self, msgid: MsgId, env: &mut Envelope) -> io::Result<EvpId> {
        let sh = &self.shared;
        {
            // Counted first so that a concurrent delete of the message's last
            // other envelope does not remove the directory under us.
            let mut st = sh.state();
            match st.queued.get_mut(&msgid) {
                Some(n) => *n += 1,
                None => return Err(io::Error::from(io::ErrorKind::NotFound)),
            }
        }
        let r = (|| {
            for _ in 0..20 {
                let evpid = EvpId::random(msgid);
                env.id = evpid;
                let dest = sh.queued_dir(msgid).join(evpid.to_string());
                match self.write_durable(env, &dest, true) {
                    Ok(()) => return Ok(evpid),
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                    Err(e) => return Err(e),
                }
            }
            Err(io::Error::other("could not allocate evpid"))
        })();
        if r.is_err() {
            self.forget_envelope(msgid);
        }
        r
    }

    /// Writes `temporary/EVPID.RAND`, fsyncs it, renames it to `dest`
    /// (refusing an existing name when `exclusive`), and for a new name fsyncs the
    /// directory too: a bounce must not vanish in a crash while the deletion
    /// of the envelope it replaces survives.
    fn write_durable(&self, env: &Envelope, dest: &Path, exclusive: bool) -> io::Result<()> {
        let sh = &self.shared;
        let tmp = sh
            .temporary
            .join(format!("{}.{}", env.id, rand::random::<u32>()));
        let r = (|| {
            let data = sh.codec.encode_envelope(env.to_text().as_bytes())?;
            let mut f = sh.new_file(&tmp)?;
            f.write_all(&data)?;
            f.sync_all()?;
            drop(f);
            if exclusive {
                // link(2) refuses an existing name, where rename replaces.
                fs::hard_link(&tmp, dest)?;
                let _ = fs::remove_file(&tmp);
                if let Some(dir) = dest.parent() {
                    File::open(dir)?.sync_all()?;
                }
            } else {
                fs::rename(&tmp, dest)?;
            }
            Ok(())
        })();
        if r.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        r
    }

    /// Opens `incoming/MSGID/message` for the DATA phase.
    pub fn message_writer(&self, msgid: MsgId) -> io::Result<MessageWriter> {
        let sh = &self.shared;
        if !sh.state().incoming.contains_key(&msgid) {
            return Err(io::Error::from(io::ErrorKind::NotFound));
        }
        // A recycled directory brings its old `message`: truncate it. The
        // directory is this message's alone, so no exclusive create is needed.
        let f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(sh.incoming_dir(msgid).join(MESSAGE))?;
        sh.owner.adopt_file(&f)?;
        MessageWriter::new(msgid, f, &sh.codec)
    }

    /// Makes the message and its envelopes durable and moves them to
    /// `queue/`. `Ok` only once they are on stable storage for good: in
    /// `queue/` with the rename synced ([`CommitMode::Single`]), or in the
    /// group modes synced whole in `incoming/` with their commit record
    /// (`commitlog`) and renamed, the rename made durable by the next round
    /// or found again by `layout::recover_incoming` after a crash. On `Err` the message has
    /// been removed: answer 4xx. Either way the msgid is finished with; no
    /// `rollback` is needed.
    ///
    /// Do not drop this future before it completes: the commit goes on
    /// without its caller, and the message would then wait in `queue/`
    /// unknown to the scheduler until the next restart.
    pub async fn commit(&self, msgid: MsgId, writer: MessageWriter) -> io::Result<()> {
        let sh = &self.shared;
        let evps = sh.state().incoming.remove(&msgid);
        let Some(evps) = evps else {
            return Err(io::Error::from(io::ErrorKind::NotFound));
        };
        let file = match (writer.msgid() == msgid, evps.is_empty()) {
            (false, _) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "writer of another message",
            )),
            (true, true) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "message without envelopes",
            )),
            (true, false) => writer.finish(),
        };
        let (file, message) = match file {
            Ok(f) => f,
            Err(e) => {
                sh.remove_tree(&sh.incoming_dir(msgid));
                return Err(e);
            }
        };
        let (done, rx) = oneshot::channel();
        let job = commit::Job {
            msgid,
            file: Some(file),
            message,
            evps,
            done,
        };
        match &self.committer {
            Some(tx) => {
                if let Err(mpsc::SendError(job)) = tx.send(job) {
                    sh.remove_tree(&sh.incoming_dir(job.msgid));
                    return Err(io::Error::other("queue committer gone"));
                }
            }
            None => {
                let sh = Arc::clone(sh);
                tokio::task::spawn_blocking(move || commit::commit_fsync(&sh, vec![job]));
            }
        }
        match rx.await {
            Ok(r) => r,
            Err(_) => Err(io::Error::other("queue committer gone")),
        }
    }

    /// Forgets a message being received (`queue_message_delete` on an
    /// incoming message): RSET, abort, disconnect, refused transaction.
    pub fn rollback(&self, msgid: MsgId) {
        let sh = &self.shared;
        if sh.state().incoming.remove(&msgid).is_some() {
            sh.remove_tree(&sh.incoming_dir(msgid));
        }
    }

    /// `queue/XX/MSGID/message`, for delivery agents.
    pub fn message_path(&self, msgid: MsgId) -> PathBuf {
        self.shared.queued_dir(msgid).join(MESSAGE)
    }

    /// Whether message files are written compressed (`queue compression`).
    pub fn compression(&self) -> bool {
        self.shared.codec.compression
    }

    /// How queue files are encoded, for readers of message files.
    pub fn codec(&self) -> &Codec {
        &self.shared.codec
    }

    /// A committed message, readable as it was received (see
    /// [`open_message_file`]). Blocking.
    pub fn open_message(&self, msgid: MsgId) -> io::Result<File> {
        open_message_file(&self.message_path(msgid), &self.shared.codec)
    }

    /// `queue_fs_envelope_update`: the new text replaces the file atomically
    /// (written aside, fsynced, renamed over), so a crash leaves the old or
    /// the new envelope, never a torn one. Blocks for one fsync: call it
    /// from a blocking context (`spawn_blocking`) in async code.
    pub fn envelope_update(&self, env: &Envelope) -> io::Result<()> {
        let sh = &self.shared;
        let dir = sh.queued_dir(env.id.msgid());
        let dest = dir.join(env.id.to_string());
        // Renaming over a deleted envelope would bring it back.
        fs::symlink_metadata(&dest)?;
        self.write_durable(env, &dest, false)
    }

    /// `queue_fs_envelope_delete`: removes the envelope, and the message
    /// with its last one. Not synced, as in OpenSMTPD: after a crash a
    /// delivered envelope may come back and be delivered again, which beats
    /// a barrier per delivery.
    pub fn envelope_delete(&self, evpid: EvpId) -> io::Result<()> {
        let sh = &self.shared;
        let msgid = evpid.msgid();
        let dir = sh.queued_dir(msgid);
        let known = sh.state().queued.contains_key(&msgid);
        let path = dir.join(evpid.to_string());
        if !(known && sh.park(&path, false)) {
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        if known {
            self.forget_envelope(msgid);
        } else if !has_envelopes(&dir, msgid)? {
            // Not loaded (say, smtpctl on a stopped daemon): the directory
            // tells whether that was the last one.
            sh.remove_tree(&dir);
        }
        Ok(())
    }

    fn forget_envelope(&self, msgid: MsgId) {
        let sh = &self.shared;
        let last = {
            let mut st = sh.state();
            match st.queued.get_mut(&msgid) {
                Some(n) if *n > 1 => {
                    *n -= 1;
                    false
                }
                Some(_) => {
                    st.queued.remove(&msgid);
                    true
                }
                None => false,
            }
        };
        if last {
            sh.retire_dir(&sh.queued_dir(msgid));
        }
    }

    /// Reads one committed envelope.
    pub fn envelope_load(&self, evpid: EvpId) -> io::Result<Envelope> {
        let path = self
            .shared
            .queued_dir(evpid.msgid())
            .join(evpid.to_string());
        read_envelope(&path, evpid, &self.shared.codec)
    }

    /// `smtpctl discover`: the envelopes on disk of a message (or the one envelope) that an
    /// administrator may have put into `queue/` by hand, read as queue.c's walk reads them (an
    /// unreadable envelope is logged and skipped). Whether the scheduler knew them is its
    /// business. Messages it did not know are not in the delete bookkeeping; deleting their
    /// envelopes looks at the directory instead (see `envelope_delete`).
    pub fn discover(&self, target: Discover) -> Vec<Envelope> {
        let sh = &self.shared;
        let (msgid, only) = match target {
            Discover::Message(m) => (m, None),
            Discover::Envelope(e) => (e.msgid(), Some(e)),
        };
        let dir = sh.queued_dir(msgid);
        if !dir.join(MESSAGE).exists() {
            if let Some(e) = only {
                log::warn(&format!("queue: discover: failed to load envelope {e}"));
            }
            return Vec::new();
        }
        let mut ids: Vec<EvpId> = match only {
            Some(e) => vec![e],
            None => fs::read_dir(&dir)
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|f| f.file_name().to_str().and_then(EvpId::from_hex))
                .filter(|e| e.msgid() == msgid)
                .collect(),
        };
        ids.sort();
        let mut out = Vec::new();
        for evpid in ids {
            match read_envelope(&dir.join(evpid.to_string()), evpid, &sh.codec) {
                Ok(e) => out.push(e),
                Err(_) if only.is_some() => {
                    log::warn(&format!("queue: discover: failed to load envelope {evpid}"))
                }
                Err(e) => log::warn(&format!("warn: invalid envelope {evpid}: {e}")),
            }
        }
        out
    }

    /// Every committed envelope, for the scheduler at start (call before
    /// any session runs). Also removes message directories left without
    /// envelopes (a crash in the middle of the last delete). Files and
    /// directories that are not ours by name are left alone, as OpenSMTPD's
    /// walk does.
    pub fn load(&self) -> io::Result<Loaded> {
        let sh = &self.shared;
        let mut loaded = Loaded::default();
        let mut counts: FxHashMap<MsgId, u32> = FxHashMap::default();
        for bucket in fs::read_dir(&sh.queue)? {
            let bucket = bucket?;
            let name = bucket.file_name();
            let Some(bname) = name.to_str() else { continue };
            if bname.len() != 2 || !bucket.file_type()?.is_dir() {
                continue;
            }
            for msgdir in fs::read_dir(bucket.path())? {
                let msgdir = msgdir?;
                let name = msgdir.file_name();
                let Some(msgid) = name.to_str().and_then(MsgId::from_hex) else {
                    continue;
                };
                if !msgdir.file_type()?.is_dir() || msgid.bucket() != bname {
                    continue;
                }
                let mut n = 0;
                let mut has_message = false;
                let mut found = Vec::new();
                for f in fs::read_dir(msgdir.path())? {
                    let f = f?;
                    let name = f.file_name();
                    let Some(fname) = name.to_str() else { continue };
                    if fname == MESSAGE {
                        has_message = true;
                        continue;
                    }
                    let Some(evpid) = EvpId::from_hex(fname) else {
                        continue;
                    };
                    if evpid.msgid() != msgid || !f.file_type()?.is_file() {
                        continue;
                    }
                    n += 1;
                    found.push((evpid, f.path()));
                }
                if n == 0 {
                    sh.remove_tree(&msgdir.path());
                    continue;
                }
                counts.insert(msgid, n);
                for (evpid, path) in found {
                    if !has_message {
                        loaded
                            .invalid
                            .push((evpid, "message file missing".to_string()));
                        continue;
                    }
                    match read_envelope(&path, evpid, &sh.codec) {
                        Ok(e) => loaded.envelopes.push(e),
                        Err(e) => loaded.invalid.push((evpid, e.to_string())),
                    }
                }
            }
        }
        loaded.envelopes.sort_by_key(|e| e.id);
        loaded.invalid.sort();
        sh.state().queued = counts;
        Ok(loaded)
    }

    /// The commit mode in use.
    pub fn commit_mode(&self) -> CommitMode {
        self.mode
    }
}

fn has_envelopes(dir: &Path, msgid: MsgId) -> io::Result<bool> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    for f in rd {
        let f = f?;
        if let Some(evpid) = f.file_name().to_str().and_then(EvpId::from_hex) {
            if evpid.msgid() == msgid {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

fn read_envelope(path: &Path, evpid: EvpId, codec: &Codec) -> io::Result<Envelope> {
    let mut buf = Vec::new();
    File::open(path)?
        .take(MAX_ENVELOPE_FILE + 1)
        .read_to_end(&mut buf)?;
    if buf.len() as u64 > MAX_ENVELOPE_FILE {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "too large"));
    }
    let buf = codec.decode_envelope(buf, MAX_ENVELOPE_FILE)?;
    // OpenSMTPD copies 8-bit bytes (an error line, say) through; losing
    // them beats refusing the envelope.
    let text = String::from_utf8_lossy(&buf);
    let mut env =
        Envelope::parse(&text).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    env.id = evpid;
    Ok(env)
}
