//! One barrier per message: after a crash, what the disk may hold of a message that was being
//! committed, and what the next start makes of it.
//!
//! The group committer answers `250` once a message is durable *in `incoming/`* with a commit
//! record (its id and the SHA-256 of each of its files), renames it into `queue/` and leaves that
//! rename to the next round's barrier. So after a crash a message that was answered may still be
//! in `incoming/`, and one that was not may have reached the disk in any part. These tests make
//! each such state with the real queue's files (a real commit, then the writes a crash could lose
//! taken back: the rename, the message's bytes, an envelope's bytes, the record) and start again:
//! a message whose files all match its record is moved into the queue and delivered, anything
//! else is discarded, as OpenSMTPD discards `incoming/`.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rsmtpd::queue::{CommitMode, DeliveryType, Envelope, MsgId, Queue, QueueOptions, SockAddr};
use rsmtpd_protocol::Mailaddr;

use crate::common::*;
use crate::crash_no_loss::config;

fn envelope(rcpt: &str) -> Envelope {
    Envelope {
        dispatcher: "local".into(),
        kind: DeliveryType::Mda,
        smtpname: "vm".into(),
        helo: "client.test".into(),
        hostname: "localhost".into(),
        sockaddr: SockAddr::Ip("127.0.0.1".parse().expect("ip")),
        sender: Mailaddr::new("alice", "vm"),
        rcpt: Mailaddr::new(rcpt, "vm"),
        dest: Mailaddr::new(rcpt, "vm"),
        ctime: 1795609943,
        mda_user: rcpt.into(),
        ..Envelope::default()
    }
}

fn open(spool: &Path, mode: CommitMode) -> Queue {
    Queue::open_with(
        spool,
        QueueOptions {
            commit_mode: mode,
            ..QueueOptions::default()
        },
    )
    .expect("open queue")
}

fn queued(spool: &Path, msgid: MsgId) -> PathBuf {
    spool
        .join("queue")
        .join(msgid.bucket())
        .join(msgid.to_string())
}

fn incoming(spool: &Path, msgid: MsgId) -> PathBuf {
    spool.join("incoming").join(msgid.to_string())
}

/// Commits one message with two envelopes through the real queue, then "crashes": the queue is
/// dropped, and once its orderly stop has removed the commit log the log is put back as it was
/// while the daemon ran. Returns the id and the commit log as it was before that commit (what the
/// disk holds if the record never got there).
fn commit_one(spool: &Path, mode: CommitMode, body: &[u8]) -> (MsgId, Vec<(PathBuf, Vec<u8>)>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let q = open(spool, mode);
    // One message first, so that the log files hold an older round's record as well.
    let log_before = rt.block_on(async {
        let id = q.create_message().expect("create");
        q.create_envelope(id, &mut envelope("earlier"))
            .expect("envelope");
        let mut w = q.message_writer(id).expect("writer");
        w.write(b"Subject: earlier\r\n\r\nearlier\r\n")
            .expect("write");
        q.commit(id, w).await.expect("commit");
        log_files(spool)
    });
    let msgid = rt.block_on(async {
        let id = q.create_message().expect("create");
        for r in ["bob", "carol"] {
            q.create_envelope(id, &mut envelope(r)).expect("envelope");
        }
        let mut w = q.message_writer(id).expect("writer");
        w.write(body).expect("write");
        q.commit(id, w).await.expect("commit");
        id
    });
    let log_running = log_files(spool);
    drop(q);
    let deadline = Instant::now() + Duration::from_secs(10);
    while spool.join("incoming/commit.0").exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        !spool.join("incoming/commit.0").exists(),
        "an orderly stop removes the commit log"
    );
    for (p, data) in &log_running {
        fs::write(p, data).expect("the log as the crash left it");
    }
    (msgid, log_before)
}

fn log_files(spool: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    ["commit.0", "commit.1"]
        .iter()
        .map(|n| {
            let p = spool.join("incoming").join(n);
            let data = fs::read(&p).unwrap_or_default();
            (p, data)
        })
        .collect()
}

fn envelope_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .expect("read dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().is_some_and(|n| n != "message"))
        .collect();
    v.sort();
    v
}

/// What the start after the crash made of the message: its recipients in the loaded queue.
fn after_restart(spool: &Path, mode: CommitMode, msgid: MsgId) -> Vec<String> {
    let q = open(spool, mode);
    let loaded = q.load().expect("load");
    let mut rcpts: Vec<String> = loaded
        .envelopes
        .iter()
        .filter(|e| e.id.msgid() == msgid)
        .map(|e| e.rcpt.user.clone())
        .collect();
    rcpts.sort();
    assert!(
        !incoming(spool, msgid).exists(),
        "incoming/ is purged at start"
    );
    rcpts
}

const BODY: &[u8] = b"Subject: crash\r\n\r\nthe body of the message that was answered\r\n";

#[test]
fn an_answered_message_whose_rename_never_reached_the_disk_is_queued_at_the_next_start() {
    for mode in [
        CommitMode::GroupAuto,
        CommitMode::GroupSyncfs,
        CommitMode::GroupFsync,
    ] {
        let t = tempfile::tempdir().expect("tempdir");
        let spool = t.path().join("spool");
        let (msgid, _) = commit_one(&spool, mode, BODY);
        // The crash took the rename back: the message is where the barrier left it.
        fs::rename(queued(&spool, msgid), incoming(&spool, msgid)).expect("undo rename");
        assert_eq!(
            after_restart(&spool, mode, msgid),
            ["bob", "carol"],
            "{mode:?}"
        );
        assert_eq!(
            fs::read(queued(&spool, msgid).join("message")).expect("message"),
            BODY,
            "{mode:?}: the message as received"
        );
    }
}

/// Every combination of the writes a crash during the barrier can lose: only when all reached the
/// disk (the barrier completed, so the client may have had its 250) is the message kept.
#[test]
fn a_message_is_kept_only_when_every_write_of_its_barrier_reached_the_disk() {
    let writes = ["message bytes", "first envelope bytes", "record"];
    for lost in 0u32..(1 << writes.len()) {
        let t = tempfile::tempdir().expect("tempdir");
        let spool = t.path().join("spool");
        let (msgid, log_before) = commit_one(&spool, CommitMode::GroupAuto, BODY);
        let dir = incoming(&spool, msgid);
        fs::rename(queued(&spool, msgid), &dir).expect("undo rename");
        // A file whose data never reached the disk reads back empty (its size was never
        // written either) or as its old content: both are tried below.
        if lost & 1 != 0 {
            fs::write(dir.join("message"), b"").expect("lose message");
        }
        if lost & 2 != 0 {
            fs::write(&envelope_files(&dir)[0], b"").expect("lose envelope");
        }
        if lost & 4 != 0 {
            for (p, data) in &log_before {
                fs::write(p, data).expect("lose record");
            }
        }
        let names: Vec<&str> = (0..writes.len())
            .filter(|i| lost & (1 << i) != 0)
            .map(|i| writes[i])
            .collect();
        let want: &[&str] = if lost == 0 { &["bob", "carol"] } else { &[] };
        assert_eq!(
            after_restart(&spool, CommitMode::GroupAuto, msgid),
            want,
            "lost: {names:?}"
        );
        assert_eq!(queued(&spool, msgid).exists(), lost == 0, "lost: {names:?}");
    }
}

/// Part of a write, stale content of a recycled inode, an envelope too many or missing, a torn
/// record: none of them passes for the message that was answered.
#[test]
fn torn_stale_or_incomplete_files_are_discarded() {
    type Damage = fn(&Path, &[(PathBuf, Vec<u8>)]);
    let cases: [(&str, Damage); 9] = [
        ("half of the message", |d, _| {
            let m = d.join("message");
            let data = fs::read(&m).expect("read");
            fs::write(&m, &data[..data.len() / 2]).expect("write");
        }),
        ("one byte of the message changed", |d, _| {
            let m = d.join("message");
            let mut data = fs::read(&m).expect("read");
            data[5] ^= 0x20;
            fs::write(&m, data).expect("write");
        }),
        ("an older message's bytes in the file", |d, _| {
            fs::write(d.join("message"), b"Subject: earlier\r\n\r\nearlier\r\n").expect("write")
        }),
        ("an envelope missing", |d, _| {
            fs::remove_file(&envelope_files(d)[1]).expect("remove")
        }),
        ("an envelope's bytes cut short", |d, _| {
            let e = &envelope_files(d)[0];
            let data = fs::read(e).expect("read");
            fs::write(e, &data[..data.len() - 1]).expect("write");
        }),
        ("an envelope the record does not name", |d, _| {
            let e = &envelope_files(d)[0];
            let name = e.file_name().and_then(|n| n.to_str()).expect("name");
            let other = format!("{}{:08x}", &name[..8], 0x1234_5678u32);
            fs::copy(e, d.join(other)).expect("copy");
        }),
        ("the record torn", |_, log| {
            for (p, _) in log {
                let data = fs::read(p).expect("read");
                // Cut inside the newest line (the second region written holds it).
                if !data.is_empty() {
                    fs::write(p, &data[..data.len() - 20]).expect("write");
                }
            }
        }),
        (
            "the message file a link to the same bytes elsewhere",
            |d, _| {
                // The start reads these as root in a directory the queue user writes: no link is
                // followed, whatever it points to.
                let m = d.join("message");
                let aside = d.parent().expect("incoming").join("aside");
                fs::rename(&m, &aside).expect("move");
                std::os::unix::fs::symlink(&aside, &m).expect("symlink");
            },
        ),
        ("no commit log at all", |_, log| {
            for (p, _) in log {
                fs::remove_file(p).expect("remove");
            }
        }),
    ];
    for (what, damage) in cases {
        let t = tempfile::tempdir().expect("tempdir");
        let spool = t.path().join("spool");
        let (msgid, _) = commit_one(&spool, CommitMode::GroupAuto, BODY);
        let dir = incoming(&spool, msgid);
        fs::rename(queued(&spool, msgid), &dir).expect("undo rename");
        damage(&dir, &log_files(&spool));
        assert!(
            after_restart(&spool, CommitMode::GroupAuto, msgid).is_empty(),
            "{what}: discarded"
        );
        assert!(!queued(&spool, msgid).exists(), "{what}: not queued");
    }
}

/// The earlier message of `commit_one` was renamed and its rename made durable by the next
/// round: its record, still in the log, names nothing in `incoming/` and changes nothing.
#[test]
fn records_of_messages_already_queued_change_nothing() {
    let t = tempfile::tempdir().expect("tempdir");
    let spool = t.path().join("spool");
    let (msgid, _) = commit_one(&spool, CommitMode::GroupAuto, BODY);
    let q = open(&spool, CommitMode::GroupAuto);
    let loaded = q.load().expect("load");
    assert_eq!(loaded.envelopes.len(), 3, "both messages, once each");
    assert!(loaded.invalid.is_empty());
    assert!(queued(&spool, msgid).exists());
}

fn send(d: &Daemon, token: &str) {
    let mut c = Client::connect(d.addr());
    assert!(c.reply().starts_with("220"));
    for (cmd, want) in [
        ("HELO client.test".to_string(), "250"),
        ("MAIL FROM:<alice@example.net>".to_string(), "250"),
        ("RCPT TO:<foo@example.org>".to_string(), "250"),
        ("DATA".to_string(), "354"),
        (
            format!("Subject: {token}\r\n\r\nbody of {token}\r\n."),
            "250",
        ),
    ] {
        let r = c.cmd(&cmd);
        assert!(r.starts_with(want), "{cmd}: {r}");
    }
    let _ = c.cmd("QUIT");
}

fn queued_ids(spool: &Path) -> Vec<MsgId> {
    let mut ids = Vec::new();
    for b in fs::read_dir(spool.join("queue"))
        .into_iter()
        .flatten()
        .flatten()
    {
        for m in fs::read_dir(b.path()).into_iter().flatten().flatten() {
            if let Some(id) = m.file_name().to_str().and_then(MsgId::from_hex) {
                ids.push(id);
            }
        }
    }
    ids
}

/// The daemon end to end: two messages answered 250 while deliveries are paused, the daemon
/// killed, and the disk put back as a crash could leave it: one message whole in `incoming/`
/// (its rename lost), the other with half its bytes (as if its barrier had never completed,
/// though here it had). The next start logs and delivers the first, and discards the second.
#[test]
fn after_a_crash_the_daemon_delivers_the_answered_message_left_in_incoming() {
    let uid = delivery_uid(1000);
    let mut d = Daemon::start(&config(uid), &["-P", "mda"]);
    let maildir = user_dir(&d, "Maildir", uid);
    send(&d, "token-whole");
    let first = queued_ids(&d.spool());
    send(&d, "token-torn");
    let both = queued_ids(&d.spool());
    assert_eq!((first.len(), both.len()), (1, 2), "both queued");
    let whole = first[0];
    let torn = both.into_iter().find(|id| *id != whole).expect("second");
    d.kill9();
    let spool = d.spool();
    fs::rename(queued(&spool, whole), incoming(&spool, whole)).expect("undo rename");
    fs::rename(queued(&spool, torn), incoming(&spool, torn)).expect("undo rename");
    let m = incoming(&spool, torn).join("message");
    let data = fs::read(&m).expect("read");
    fs::write(&m, &data[..data.len() / 2]).expect("tear");

    let d = d.restart();
    let line = d.wait_log(|l| l.contains("acknowledged before a crash"));
    assert!(line.contains(&whole.to_string()), "{line}");
    assert!(
        !d.log()
            .iter()
            .any(|l| l.contains("acknowledged before a crash") && l.contains(&torn.to_string())),
        "the torn message is not recovered"
    );
    let out = ctl(&d, "smtpctl", &["resume", "mda"], "", None);
    assert!(out.status.success(), "smtpctl resume mda: {out:?}");
    let new = maildir.join("new");
    let deadline = Instant::now() + Duration::from_secs(20);
    while mail_texts(&new).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let texts = mail_texts(&new);
    assert_eq!(texts.len(), 1, "one message delivered: {texts:?}");
    assert!(texts[0].contains("body of token-whole"), "{}", texts[0]);
    assert_eq!(
        queued_ids(&spool),
        Vec::<MsgId>::new(),
        "nothing left queued"
    );
}
