//! Making messages durable before their `250`, many at a time.
//!
//! A message is committed when it is on stable storage for good. With
//! [`CommitMode::Single`] that is the classic order: the message file, its
//! envelopes and the directory listing synced, the directory moved from
//! `incoming/` to `queue/<xx>/`, the move synced: two barriers per message,
//! because without a journal a rename can reach the disk before the data it
//! names. The group modes need one: each message gets a commit record
//! (`commitlog`: its id and the SHA-256 of each of its files) before the
//! barrier, so that after a crash a message found whole in `incoming/` with
//! a matching record is known to have been answered and is moved into
//! `queue/` at start (`layout::recover_incoming`), and anything else there
//! is known not to have been. After the barrier the message is renamed and
//! answered at once; the next round's barrier makes the rename durable, and
//! only then may the record be written over.
//!
//! Group commit shares the barrier: one committer thread takes every commit
//! waiting when it comes round, writes their records into the log file the
//! last barrier freed, and makes them durable together with the renames of
//! the round before. One barrier per round, however many sessions wait in
//! it; a message waits for the round under way, then its own.
//!
//! The barrier, by [`CommitMode`]:
//! - [`CommitMode::GroupFsync`]: one wave of concurrent `fsync`s: each
//!   fresh message file, its envelope files and its incoming directory,
//!   `incoming/` itself, the record's file, and each `queue/<xx>` that
//!   received a rename since the last barrier. Concurrent fsyncs share the
//!   device's cache flushes, and they write back only our own files.
//! - [`CommitMode::GroupSyncfs`]: one `syncfs(2)`, which writes each dirty
//!   block once and ends with one flush, but writes back every dirty inode
//!   of the file system, other programs' too: on a disk shared with busy
//!   writers a round waits for their megabytes. Since Linux 5.8 `syncfs`
//!   reports write-back errors of the file system, which we need: a failed
//!   round fails all of its commits.
//! - [`CommitMode::GroupAuto`] (the default): one syncfs, unless other
//!   programs have dirty data waiting (the kernel's `Dirty` and `Writeback`
//!   in `/proc/meminfo`, all file systems, above [`AUTO_DIRTY_MAX_KB`]) and
//!   the round has few files: then the fsync wave, which does not wait for
//!   their megabytes. A syncfs with nothing foreign to write took 0.4-0.6 ms
//!   for 1 to 4 messages where the wave took 0.6-1.5 ms, and it costs a
//!   quarter less CPU per message (no thread wake-ups); with 500 KB of other
//!   dirty data it took 0.8-1.2 ms, with a build's hundreds of megabytes
//!   far longer (bench/tls/README.md). A round with many files takes syncfs
//!   whatever is dirty: a wave's per-file writes and wake-ups cost more
//!   than the flush they share.
//! - [`CommitMode::Single`]: no sharing, no record, two barriers: the
//!   baseline.
//!
//! Whatever the barrier, a round waits a little for the sessions the last
//! round answered (`gather`) when they come back within a fraction of a
//! barrier: a round that starts without them costs each of them a whole
//! barrier more.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustc_hash::FxHashSet;
use tokio::sync::oneshot;

use super::commitlog::{Record, Sum, LOG_FILES};
use super::id::{EvpId, MsgId};
use super::layout::MESSAGE;
use super::Shared;

/// How commits reach stable storage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum CommitMode {
    /// One committer thread, one `syncfs` per round (see the module text).
    GroupSyncfs,
    /// One committer thread, one wave of concurrent `fsync`s per round:
    /// the fresh messages' files and incoming directories, and the
    /// `queue/<xx>` directories of the renames (see the module text).
    GroupFsync,
    /// One `syncfs` per round, but the fsync wave of
    /// [`CommitMode::GroupFsync`] for rounds with few files (at most
    /// `AUTO_WAVE_MAX`) while other programs have much dirty data.
    #[default]
    GroupAuto,
    /// No sharing: each commit does its own `fsync`s on a blocking-pool
    /// thread. The baseline the group modes are measured against.
    Single,
}

pub(super) struct Job {
    pub msgid: MsgId,
    /// The message file, open: `fsync` needs no path lookup. Dropped early
    /// when the mode does not fsync files, to save an fd per waiting session.
    pub file: Option<File>,
    /// The sum of the message file's bytes, for its commit record.
    pub message: Sum,
    pub evps: Vec<(EvpId, Sum)>,
    pub done: oneshot::Sender<io::Result<()>>,
}

impl Job {
    fn record(&self) -> Record {
        Record {
            msgid: self.msgid,
            message: self.message,
            envelopes: self.evps.clone(),
        }
    }
}

/// The committer thread's loop; returns when every `Queue` is dropped.
pub(super) fn run(
    shared: Arc<Shared>,
    rx: mpsc::Receiver<Job>,
    mode: CommitMode,
    linger: Duration,
    log: Log,
) {
    let pacer = Pacer::new(linger);
    let wave_max = match mode {
        CommitMode::GroupSyncfs => 0,
        CommitMode::GroupAuto => AUTO_WAVE_MAX,
        CommitMode::GroupFsync | CommitMode::Single => usize::MAX,
    };
    run_rounds(&shared, rx, wave_max, pacer, log);
}

/// The two files of the commit log in `incoming/` (see `commitlog`): each
/// round writes its records over the older one, whose messages' renames the
/// last barrier has made durable.
pub(super) struct Log {
    files: [Arc<File>; 2],
    /// The region whose records may still be needed: its messages were
    /// answered, their renames not yet known durable.
    protected: Option<usize>,
    text: String,
}

impl Log {
    pub(super) fn create(shared: &Shared) -> io::Result<Log> {
        let open = |name: &str| -> io::Result<Arc<File>> {
            use std::os::unix::fs::OpenOptionsExt;
            let f = fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(shared.incoming.join(name))?;
            shared.owner.adopt_file(&f)?;
            Ok(Arc::new(f))
        };
        Ok(Log {
            files: [open(LOG_FILES[0])?, open(LOG_FILES[1])?],
            protected: None,
            text: String::new(),
        })
    }

    /// Every `Queue` is gone (an orderly stop): once a barrier has made the
    /// last renames durable, the records are needed no more, and a stopped
    /// daemon leaves `incoming/` empty. Without that barrier they stay, for
    /// the next start to read.
    fn close(&mut self, shared: &Shared) {
        if self.protected.is_some() && nix::unistd::syncfs(&shared.spool_dir).is_err() {
            return;
        }
        use std::os::unix::fs::MetadataExt;
        for (name, file) in LOG_FILES.iter().zip(&self.files) {
            // Only our own: a queue opened again on this spool (tests do) has its own.
            let path = shared.incoming.join(name);
            let ours = match (file.metadata(), fs::symlink_metadata(&path)) {
                (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
                _ => false,
            };
            if ours {
                let _ = fs::remove_file(path);
            }
        }
    }

    /// Writes the records of `jobs` (not synced) into the region nothing
    /// needs; returns it. No truncation: a longer older round's tail stays
    /// behind the new lines, which end it, and its torn lines never parse.
    fn write(&mut self, jobs: &[Job]) -> io::Result<usize> {
        use std::os::unix::fs::FileExt;
        let region = match self.protected {
            Some(0) => 1,
            _ => 0,
        };
        self.text.clear();
        for job in jobs {
            self.text.push_str(&job.record().encode());
        }
        self.files[region].write_all_at(self.text.as_bytes(), 0)?;
        Ok(region)
    }
}

/// With [`CommitMode::GroupFsync`], no commit barrier writes back the
/// renames that park spare inodes (see `spares`), so this thread makes them
/// durable apart from the commits: a `syncfs` now and then while spares
/// wait, whose slowness on a busy file system delays only their reuse, never
/// a `250`. It ends once the queue is dropped.
pub(super) fn run_promoter(shared: std::sync::Weak<Shared>) {
    loop {
        std::thread::sleep(std::time::Duration::from_millis(100));
        let Some(shared) = shared.upgrade() else {
            return;
        };
        if !shared.spares_pending() {
            continue;
        }
        let promotion = shared.barrier_begins();
        // A failed barrier drops its spares: `purge/` is emptied at start.
        if nix::unistd::syncfs(&shared.spool_dir).is_ok() {
            shared.barrier_done(promotion);
        }
    }
}

/// What the next round takes: every job waiting (blocking for one); None
/// once every `Queue` is dropped.
///
/// The linger: when the sessions the last round answered come back within a
/// fraction of a barrier, a round started the instant the first of them is
/// back leaves the others to arrive just after it began, and each waits that
/// whole round out: two barriers per message instead of one. So a round
/// starts only once as many jobs are waiting as the last round answered, or
/// [`Pacer::linger`] after the last round ended.
///
/// Sessions that end after their message (one message per connection) do
/// not come back so soon: a linger that keeps catching less than half of the
/// jobs it waits for stops, and is tried again after [`LINGER_RETRY`] rounds.
fn gather(rx: &mpsc::Receiver<Job>, pacer: &mut Pacer) -> Option<Vec<Job>> {
    let mut fresh = vec![rx.recv().ok()?];
    while let Ok(job) = rx.try_recv() {
        fresh.push(job);
    }
    if fresh.len() < pacer.answered && pacer.lingers() {
        let before = fresh.len();
        let deadline = pacer.ended + pacer.linger();
        while fresh.len() < pacer.answered {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match rx.recv_timeout(left) {
                Ok(job) => fresh.push(job),
                Err(mpsc::RecvTimeoutError::Timeout) => break,
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        pacer.caught(fresh.len() - before, pacer.answered - before);
    }
    Some(fresh)
}

/// What the linger of [`gather`] goes by: the last round's answers, how long
/// its barrier took and when it ended.
struct Pacer {
    answered: usize,
    barrier: Duration,
    ended: Instant,
    /// The most it waits ([`LINGER_MAX`] unless the queue was told otherwise).
    max: Duration,
    /// Above 0: lingers. Set high by a linger that paid, lowered by each one
    /// that did not; at 0, rounds without a linger are counted in `skipped`.
    trust: u32,
    skipped: u32,
}

/// Rounds without a linger before a linger that did not pay is tried again.
const LINGER_RETRY: u32 = 32;

/// The most a round waits for the sessions the last one answered: against a
/// barrier of several milliseconds, a client's turn-around on a busy machine.
pub(super) const LINGER_MAX: Duration = Duration::from_millis(2);

impl Pacer {
    fn new(max: Duration) -> Pacer {
        Pacer {
            answered: 0,
            barrier: Duration::ZERO,
            ended: Instant::now(),
            max,
            trust: 2,
            skipped: 0,
        }
    }

    /// Whether this round may linger (see [`gather`]).
    fn lingers(&mut self) -> bool {
        if self.max.is_zero() {
            return false;
        }
        if self.trust > 0 {
            return true;
        }
        self.skipped += 1;
        if self.skipped >= LINGER_RETRY {
            self.skipped = 0;
            self.trust = 1;
        }
        false
    }

    /// A linger waited for `wanted` jobs and `got` came.
    fn caught(&mut self, got: usize, wanted: usize) {
        if got * 2 >= wanted {
            self.trust = 3;
        } else {
            self.trust = self.trust.saturating_sub(1);
        }
    }

    /// At most a quarter of the last barrier: the staged jobs pay the wait,
    /// the jobs it catches each save a whole barrier.
    fn linger(&self) -> Duration {
        (self.barrier / 4).min(self.max)
    }

    fn round(&mut self, answered: usize, began: Instant) {
        self.answered = answered;
        self.ended = Instant::now();
        self.barrier = self.ended.saturating_duration_since(began);
    }
}

/// The committer's rounds. Each takes the jobs waiting, writes their commit
/// records, and makes one barrier: their files, incoming directories and
/// records, and the renames of the previous round's jobs, reach the disk.
/// Then it renames its jobs into `queue/` and answers them: one barrier per
/// message (see `commitlog` for why that is enough).
///
/// The barrier: one `syncfs`, or (`wave_max` above 0) a wave of concurrent
/// `fsync`s over exactly those files and directories, unless the round has
/// more than `wave_max` of them or nobody else has dirty data waiting
/// ([`CommitMode::GroupAuto`]; `usize::MAX`: always the wave).
///
/// A round whose barrier fails fails its jobs (4xx) and keeps the older
/// region protected: the renames it should have made durable are synced
/// again by the next round, which writes over the failed round's records.
fn run_rounds(
    shared: &Shared,
    rx: mpsc::Receiver<Job>,
    wave_max: usize,
    mut pacer: Pacer,
    mut log: Log,
) {
    let pool = (wave_max > 0).then(|| SyncPool::new(SYNC_THREADS));
    let mut dirty = DirtyGauge::open();
    // Where the jobs answered since the last barrier were renamed to.
    let mut buckets: FxHashSet<String> = FxHashSet::default();
    let mut new_bucket = false;
    loop {
        let Some(mut fresh) = gather(&rx, &mut pacer) else {
            log.close(shared);
            return;
        };
        shared.stats.batches.fetch_add(1, Ordering::Relaxed);
        let region = match log.write(&fresh) {
            Ok(r) => r,
            Err(e) => {
                fresh
                    .into_iter()
                    .for_each(|job| fail(shared, job, clone_err(&e), false));
                continue;
            }
        };
        let mut targets: Vec<SyncTarget> = buckets
            .iter()
            .map(|b| SyncTarget::Path(shared.queue.join(b)))
            .collect();
        if new_bucket {
            targets.push(SyncTarget::Path(shared.queue.clone()));
        }
        // The entries of the fresh directories (and the removal of the
        // renamed ones), and the records.
        targets.push(SyncTarget::Path(shared.incoming.clone()));
        targets.push(SyncTarget::Shared(Arc::clone(&log.files[region])));
        for job in &mut fresh {
            let dir = shared.incoming_dir(job.msgid);
            targets.push(match job.file.take() {
                Some(f) => SyncTarget::File(f),
                None => SyncTarget::Path(dir.join(MESSAGE)),
            });
            targets.extend(
                job.evps
                    .iter()
                    .map(|(e, _)| SyncTarget::Path(dir.join(e.to_string()))),
            );
            targets.push(SyncTarget::Path(dir));
        }
        let began = Instant::now();
        let syncfs = match &pool {
            None => true,
            Some(_) => {
                targets.len() > wave_max
                    || (wave_max != usize::MAX && !dirty.others_writing(targets.len()))
            }
        };
        let result = match (&pool, syncfs) {
            (Some(pool), false) => {
                shared
                    .stats
                    .syncs
                    .fetch_add(targets.len() as u64, Ordering::Relaxed);
                pool.sync(targets)
                    .into_iter()
                    .find_map(|r| r.err())
                    .map_or(Ok(()), Err)
            }
            _ => {
                // One syncfs makes every file, directory and rename of the
                // round durable, whatever they are.
                // Spares parked before it began are durably out of
                // `queue/` once it completes (a wave syncs only the round's
                // own files: `run_promoter` promotes them then); a failed
                // one drops them, `purge/` is emptied at start.
                drop(targets);
                let promotion = shared.barrier_begins();
                shared.stats.syncs.fetch_add(1, Ordering::Relaxed);
                let r = nix::unistd::syncfs(&shared.spool_dir).map_err(io::Error::from);
                if r.is_ok() {
                    shared.barrier_done(promotion);
                }
                r
            }
        };
        pacer.round(fresh.len(), began);
        if let Err(e) = result {
            // The buckets stay in the set, to be synced again next round.
            fresh
                .into_iter()
                .for_each(|job| fail(shared, job, clone_err(&e), false));
            continue;
        }
        log.protected = Some(region);
        buckets.clear();
        new_bucket = false;
        for job in fresh {
            match publish(shared, job.msgid) {
                Ok(created) => {
                    new_bucket |= created;
                    buckets.insert(job.msgid.bucket());
                    succeed(shared, job);
                }
                Err(e) => fail(shared, job, e, false),
            }
        }
    }
}

/// Concurrent fsyncs on one file system share the device's cache flushes
/// (the block layer merges the flushes that wait while one is in flight;
/// with a journal, jbd2 joins them into one commit), where one thread's
/// fsyncs would each wait for their own: so a wave's fsyncs are spread over
/// this many threads.
const SYNC_THREADS: usize = 16;

/// Where [`CommitMode::GroupAuto`] turns from a wave of fsyncs to one
/// `syncfs`. Measured on this project's machine (ext4 without a journal,
/// a virtual disk, builds writing beside): 3 files synced by concurrent
/// fsyncs took 1.7 ms against 3.9 ms for a syncfs, 12 files 4.1 against
/// 5.4, 30 files 8.7 against 4.9; each fsync writes its inode's block and
/// costs a thread's wake-up, where syncfs writes each dirty block once.
const AUTO_WAVE_MAX: usize = 16;

/// Dirty data of other programs (kB, `Dirty` + `Writeback`) up to which a
/// syncfs costs no more than a wave of a few fsyncs: with half a megabyte a
/// syncfs took 0.8 ms for one message against the wave's 0.6, and 1.2 ms
/// for four against 1.5 (bench/tls/synclat.py, load 4).
pub(super) const AUTO_DIRTY_MAX_KB: u64 = 512;

/// About what one target of a round leaves dirty itself (a page of data, an
/// inode, a directory block), so that our own round is not counted as
/// another program's writing.
const KB_PER_TARGET: u64 = 8;

/// `/proc/meminfo`, kept open (the engine's sandbox opens nothing new in
/// `/proc`) and read again from its start each round: procfs makes it anew.
struct DirtyGauge {
    file: Option<File>,
    buf: Vec<u8>,
}

impl DirtyGauge {
    fn open() -> DirtyGauge {
        DirtyGauge {
            file: File::open("/proc/meminfo").ok(),
            buf: vec![0; 8192],
        }
    }

    /// Whether other programs have more dirty data than a syncfs should wait
    /// for. Without `/proc/meminfo` (another kernel, a sandbox), true: the
    /// wave never waits for anyone else, so it is the safe guess.
    fn others_writing(&mut self, targets: usize) -> bool {
        use std::os::unix::fs::FileExt;
        let Some(f) = &self.file else { return true };
        let n = match f.read_at(&mut self.buf, 0) {
            Ok(n) => n,
            Err(_) => return true,
        };
        let text = std::str::from_utf8(self.buf.get(..n).unwrap_or_default()).unwrap_or("");
        match dirty_kb(text) {
            Some(kb) => kb > AUTO_DIRTY_MAX_KB + KB_PER_TARGET * targets as u64,
            None => true,
        }
    }
}

/// `Dirty:` plus `Writeback:` of a `/proc/meminfo` text, in kB.
pub(super) fn dirty_kb(meminfo: &str) -> Option<u64> {
    let field = |name: &str| -> Option<u64> {
        let line = meminfo.lines().find(|l| l.starts_with(name))?;
        line.get(name.len()..)?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    Some(field("Dirty:")? + field("Writeback:")?)
}

enum SyncTarget {
    /// The message file, still open from its writer: no path lookup.
    File(File),
    /// A commit log file, kept open by the committer.
    Shared(Arc<File>),
    Path(PathBuf),
}

impl SyncTarget {
    fn sync(&self) -> io::Result<()> {
        match self {
            SyncTarget::File(f) => f.sync_all(),
            SyncTarget::Shared(f) => f.sync_all(),
            SyncTarget::Path(p) => File::open(p)?.sync_all(),
        }
    }
}

type SyncWork = (usize, SyncTarget, mpsc::Sender<(usize, io::Result<()>)>);

/// Threads that live as long as the committer, so that a round does not pay
/// for spawning its own.
struct SyncPool {
    tx: Option<mpsc::Sender<SyncWork>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl SyncPool {
    fn new(n: usize) -> SyncPool {
        let (tx, rx) = mpsc::channel::<SyncWork>();
        let rx = Arc::new(Mutex::new(rx));
        let threads = (0..n)
            .filter_map(|i| {
                let rx = Arc::clone(&rx);
                std::thread::Builder::new()
                    .name(format!("queue-fsync-{i}"))
                    .spawn(move || loop {
                        // The lock is held only while waiting for work.
                        let work = rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
                        let Ok((i, target, done)) = work else { return };
                        let _ = done.send((i, target.sync()));
                    })
                    .ok()
            })
            .collect();
        SyncPool {
            tx: Some(tx),
            threads,
        }
    }

    /// Syncs every target concurrently; the results in the targets' order.
    fn sync(&self, targets: Vec<SyncTarget>) -> Vec<io::Result<()>> {
        let n = targets.len();
        let mut out: Vec<Option<io::Result<()>>> = (0..n).map(|_| None).collect();
        let (done_tx, done_rx) = mpsc::channel();
        let mut inline = Vec::new();
        for (i, t) in targets.into_iter().enumerate() {
            let sent = match (&self.tx, self.threads.is_empty()) {
                (Some(tx), false) => tx.send((i, t, done_tx.clone())).map_err(|e| e.0),
                (_, _) => Err((i, t, done_tx.clone())),
            };
            // No thread could be made (or they are gone): sync here.
            if let Err((i, t, _)) = sent {
                inline.push((i, t));
            }
        }
        drop(done_tx);
        for (i, t) in inline {
            out[i] = Some(t.sync());
        }
        for (i, r) in done_rx {
            out[i] = Some(r);
        }
        out.into_iter()
            .map(|r| r.unwrap_or_else(|| Err(io::Error::other("fsync thread gone"))))
            .collect()
    }
}

impl Drop for SyncPool {
    fn drop(&mut self) {
        self.tx = None;
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
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
    for (evp, _) in &job.evps {
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
    let created = super::layout::make_bucket(&shared.queue, msgid, &shared.owner)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn dirty_data_is_read_off_meminfo() {
        let m = "MemTotal:       24554876 kB\nDirty:               560 kB\n\
                 Writeback:            40 kB\nAnonPages:  1 kB\n";
        assert_eq!(dirty_kb(m), Some(600));
        assert_eq!(dirty_kb("Dirty: 5 kB\n"), None, "no Writeback line");
        assert_eq!(dirty_kb("Dirty: x kB\nWriteback: 0 kB\n"), None);
        assert_eq!(dirty_kb(""), None);
    }

    #[test]
    fn a_linger_that_does_not_pay_stops_and_is_tried_again() {
        let mut p = Pacer::new(LINGER_MAX);
        assert!(p.lingers());
        p.caught(0, 10);
        assert!(p.lingers());
        p.caught(1, 10);
        let off = (0..LINGER_RETRY - 1).filter(|_| p.lingers()).count();
        assert_eq!(off, 0, "stopped after two misses");
        assert!(!p.lingers(), "the 32nd skip re-arms it");
        assert!(p.lingers());
        p.caught(6, 10);
        p.caught(0, 10);
        p.caught(0, 10);
        assert!(p.lingers(), "a linger that paid is trusted longer");
        assert!(!Pacer::new(Duration::ZERO).lingers());
    }

    #[test]
    fn the_linger_is_a_quarter_of_the_last_barrier_at_most_its_cap() {
        let mut p = Pacer::new(LINGER_MAX);
        let began = Instant::now() - 4 * MS;
        p.round(5, began);
        assert!(p.linger() >= MS && p.linger() <= LINGER_MAX);
        p.round(5, Instant::now() - 100 * MS);
        assert_eq!(p.linger(), LINGER_MAX);
    }
}
