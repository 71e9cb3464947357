//! Making messages durable before their `250`, many at a time.
//!
//! A message is committed when its directory moves from `incoming/` to
//! `queue/<xx>/`: nothing under `queue/` is ever partial, because the move
//! happens only once the message file, its envelopes and the directory
//! listing are on stable storage, and the move itself is made durable before
//! the client hears `250`. That costs two barriers per message: one before
//! the rename (data) and one after it (the rename). Done per message, a disk
//! that flushes in 0.2 ms caps us near 2,500 commits/s, a real disk near 50.
//!
//! Group commit shares the barriers: one committer thread takes every commit
//! waiting when it comes round, and with [`CommitMode::GroupSyncfs`] one
//! `syncfs(2)` per round serves two batches at once: it publishes (makes the
//! renames of) the batch whose data the previous round synced, and syncs the
//! data of the batch that arrived meanwhile. Steady state: one `syncfs` per
//! round, however many sessions wait in it.
//!
//! Why `syncfs` and not an `fsync` per file: on ext4 each `fsync` of a file
//! with unwritten metadata forces its own journal commit and cache flush, so
//! a batch of n messages with k recipients costs n·(k+2) flushes unless they
//! happen to merge; `syncfs` writes back every dirty inode of the file system
//! and ends with one journal commit and one flush. Its cost: it also writes
//! back unrelated dirty data of the same file system, so the spool should
//! live on a file system of its own where mail deliveries or logs write a
//! lot. [`CommitMode::GroupFsync`] (fsync per file, directories once per
//! batch) is the choice when it cannot. Since Linux 5.8 `syncfs` reports
//! write-back errors of the file system, which we need: a failed round fails
//! all of its commits.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::Arc;

use rustc_hash::FxHashSet;
use tokio::sync::oneshot;

use super::id::{EvpId, MsgId};
use super::layout::MESSAGE;
use super::Shared;

/// How commits reach stable storage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum CommitMode {
    /// One committer thread, one `syncfs` per round (see the module text).
    #[default]
    GroupSyncfs,
    /// One committer thread; per batch: `fsync` every file and incoming
    /// directory, rename, then `fsync` each affected `queue/<xx>` once.
    GroupFsync,
    /// No sharing: each commit does its own `fsync`s on a blocking-pool
    /// thread. The baseline the group modes are measured against.
    Single,
}

pub(super) struct Job {
    pub msgid: MsgId,
    /// The message file, open: `fsync` needs no path lookup. Dropped early
    /// when the mode does not fsync files, to save an fd per waiting session.
    pub file: Option<File>,
    pub evps: Vec<EvpId>,
    pub done: oneshot::Sender<io::Result<()>>,
}

/// The committer thread's loop; returns when every `Queue` is dropped.
pub(super) fn run(shared: Arc<Shared>, rx: mpsc::Receiver<Job>, mode: CommitMode) {
    match mode {
        CommitMode::GroupSyncfs => run_syncfs(&shared, rx),
        CommitMode::GroupFsync | CommitMode::Single => run_fsync(&shared, rx),
    }
}

fn run_syncfs(shared: &Shared, rx: mpsc::Receiver<Job>) {
    // Jobs whose data the last syncfs made durable, waiting to be renamed.
    let mut staged: Vec<Job> = Vec::new();
    loop {
        let mut fresh = Vec::new();
        if staged.is_empty() {
            match rx.recv() {
                Ok(job) => fresh.push(job),
                Err(_) => return,
            }
        }
        while let Ok(job) = rx.try_recv() {
            fresh.push(job);
        }
        for job in &mut fresh {
            job.file = None;
        }
        let mut published = Vec::with_capacity(staged.len());
        for job in staged.drain(..) {
            match publish(shared, job.msgid) {
                Ok(_) => published.push(job),
                Err(e) => fail(shared, job, e, false),
            }
        }
        let promotion = shared.barrier_begins();
        let synced = nix::unistd::syncfs(&shared.spool_dir).map_err(io::Error::from);
        shared.stats.syncs.fetch_add(1, Ordering::Relaxed);
        shared.stats.batches.fetch_add(1, Ordering::Relaxed);
        match synced {
            Ok(()) => {
                shared.barrier_done(promotion);
                for job in published {
                    succeed(shared, job);
                }
                staged = fresh;
            }
            Err(e) => {
                for job in published {
                    fail(shared, job, clone_err(&e), true);
                }
                for job in fresh {
                    fail(shared, job, clone_err(&e), false);
                }
            }
        }
    }
}

fn run_fsync(shared: &Shared, rx: mpsc::Receiver<Job>) {
    loop {
        let mut batch = match rx.recv() {
            Ok(job) => vec![job],
            Err(_) => return,
        };
        while let Ok(job) = rx.try_recv() {
            batch.push(job);
        }
        commit_fsync(shared, batch);
    }
}

/// Commits a batch with `fsync`s: data first, then renames, then each
/// affected directory once. Also the whole of [`CommitMode::Single`], with a
/// batch of one.
pub(super) fn commit_fsync(shared: &Shared, batch: Vec<Job>) {
    shared.stats.batches.fetch_add(1, Ordering::Relaxed);
    let mut published = Vec::with_capacity(batch.len());
    let mut buckets = FxHashSet::default();
    let mut new_bucket = false;
    let synced = sync_all_incoming(shared, &batch);
    for (job, r) in batch.into_iter().zip(synced) {
        let r = r.and_then(|()| publish(shared, job.msgid));
        match r {
            Ok(created) => {
                new_bucket |= created;
                buckets.insert(job.msgid.0 >> 24);
                published.push(job);
            }
            Err(e) => fail(shared, job, e, false),
        }
    }
    let mut dirs: Vec<_> = buckets
        .iter()
        .map(|b| shared.queue.join(format!("{b:02x}")))
        .collect();
    if new_bucket {
        dirs.push(shared.queue.clone());
    }
    let mut r = Ok(());
    for d in &dirs {
        r = r.and_then(|()| fsync_path(shared, d));
    }
    match r {
        Ok(()) => published.into_iter().for_each(|job| succeed(shared, job)),
        Err(e) => published
            .into_iter()
            .for_each(|job| fail(shared, job, clone_err(&e), true)),
    }
}

/// Concurrent fsyncs on one file system share journal commits (jbd2 joins
/// them into one transaction), where a single thread's fsyncs queue up one
/// behind the other: so the files of a batch are synced from a few threads.
fn sync_all_incoming(shared: &Shared, batch: &[Job]) -> Vec<io::Result<()>> {
    const THREADS: usize = 16;
    if batch.len() == 1 {
        return vec![sync_incoming(shared, &batch[0])];
    }
    let per = batch.len().div_ceil(THREADS);
    std::thread::scope(|s| {
        let handles: Vec<_> = batch
            .chunks(per)
            .map(|chunk| {
                let h = s.spawn(move || {
                    chunk
                        .iter()
                        .map(|job| sync_incoming(shared, job))
                        .collect::<Vec<_>>()
                });
                (chunk.len(), h)
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|(n, h)| match h.join() {
                Ok(v) => v,
                Err(_) => (0..n)
                    .map(|_| Err(io::Error::other("fsync thread panicked")))
                    .collect(),
            })
            .collect()
    })
}

/// Message file, envelope files, then the directory naming them.
fn sync_incoming(shared: &Shared, job: &Job) -> io::Result<()> {
    let dir = shared.incoming_dir(job.msgid);
    match &job.file {
        Some(f) => {
            shared.stats.syncs.fetch_add(1, Ordering::Relaxed);
            f.sync_all()?
        }
        None => fsync_path(shared, &dir.join(MESSAGE))?,
    }
    for evp in &job.evps {
        fsync_path(shared, &dir.join(evp.to_string()))?;
    }
    fsync_path(shared, &dir)
}

fn fsync_path(shared: &Shared, p: &Path) -> io::Result<()> {
    shared.stats.syncs.fetch_add(1, Ordering::Relaxed);
    File::open(p)?.sync_all()
}

/// `incoming/MSGID` → `queue/XX/MSGID`, creating the bucket on first use
/// (buckets are never removed, as in OpenSMTPD). True if the bucket is new.
fn publish(shared: &Shared, msgid: MsgId) -> io::Result<bool> {
    let from = shared.incoming_dir(msgid);
    let to = shared.queued_dir(msgid);
    match fs::rename(&from, &to) {
        Ok(()) => return Ok(false),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let bucket = shared.queue.join(msgid.bucket());
    let created = match fs::DirBuilder::new().create(&bucket) {
        Ok(()) => {
            // Explicit chmod: the umask must not decide the bucket's mode.
            fs::set_permissions(&bucket, fs::Permissions::from_mode(0o700))?;
            shared.owner.adopt(&bucket)?;
            true
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
        Err(e) => return Err(e),
    };
    fs::rename(&from, &to)?;
    Ok(created)
}

fn succeed(shared: &Shared, job: Job) {
    shared.committed(job.msgid, job.evps.len() as u32);
    shared.stats.commits.fetch_add(1, Ordering::Relaxed);
    let _ = job.done.send(Ok(()));
}

/// Removes every trace of the message, wherever it got to, so that a failed
/// commit leaves nothing under `queue/` for a restart to deliver: the client
/// was told 4xx and will send it again.
fn fail(shared: &Shared, job: Job, e: io::Error, published: bool) {
    let dir = if published {
        shared.queued_dir(job.msgid)
    } else {
        shared.incoming_dir(job.msgid)
    };
    shared.remove_tree(&dir);
    let _ = job.done.send(Err(e));
}

fn clone_err(e: &io::Error) -> io::Error {
    match e.raw_os_error() {
        Some(n) => io::Error::from_raw_os_error(n),
        None => io::Error::new(e.kind(), e.to_string()),
    }
}
