//! The spool on disk: layout, modes, the message lifecycle, crash leftovers,
//! group commit, and write errors.

#[path = "../../../tests/support/skip.rs"]
mod skip;
use skip::*;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use nix::unistd::{Group, User};
use rsmtpd::queue::{
    Codec, CommitMode, DeliveryType, Envelope, EvpId, MsgId, Queue, QueueKey, QueueOptions,
    SockAddr,
};
use rsmtpd_protocol::Mailaddr;

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn spool() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    (dir, spool)
}

fn envelope(rcpt: &str) -> Envelope {
    Envelope {
        dispatcher: "local".into(),
        kind: DeliveryType::Mda,
        smtpname: "vm".into(),
        helo: "client.test".into(),
        hostname: "localhost".into(),
        sockaddr: SockAddr::Ip("127.0.0.1".parse().unwrap()),
        sender: Mailaddr::new("alice", "vm"),
        rcpt: Mailaddr::new(rcpt, "vm"),
        dest: Mailaddr::new(rcpt, "vm"),
        ctime: 1795609943,
        mda_user: rcpt.into(),
        ..Envelope::default()
    }
}

fn owner_names(p: &Path) -> (String, String, u32) {
    let md = fs::symlink_metadata(p).unwrap();
    let user = User::from_uid(md.uid().into()).unwrap().unwrap().name;
    let group = Group::from_gid(md.gid().into()).unwrap().unwrap().name;
    (user, group, md.mode() & 0o7777)
}

fn queue_user() -> Option<String> {
    ["opensmtpq", "_smtpq"]
        .into_iter()
        .find(|n| User::from_name(n).ok().flatten().is_some())
        .map(String::from)
}

/// Sends one message with `rcpts` envelopes through the whole lifecycle.
async fn send(q: &Queue, rcpts: &[&str], body: &[u8]) -> std::io::Result<(MsgId, Vec<Envelope>)> {
    let msgid = q.create_message()?;
    let mut envs = Vec::new();
    for r in rcpts {
        let mut e = envelope(r);
        q.create_envelope(msgid, &mut e)?;
        envs.push(e);
    }
    let mut w = q.message_writer(msgid)?;
    w.write(body)?;
    q.commit(msgid, w).await?;
    Ok((msgid, envs))
}

fn queued_dir(spool: &Path, msgid: MsgId) -> PathBuf {
    spool
        .join("queue")
        .join(msgid.bucket())
        .join(msgid.to_string())
}

fn count_entries(p: &Path) -> usize {
    fs::read_dir(p).map(|d| d.count()).unwrap_or(0)
}

/// Entries of `incoming/` but the commit log's two files (the group modes keep them there).
fn incoming_messages(spool: &Path) -> usize {
    fs::read_dir(spool.join("incoming"))
        .map(|d| {
            d.flatten()
                .filter(|e| {
                    !rsmtpd::queue::commitlog::LOG_FILES
                        .iter()
                        .any(|n| e.file_name() == *n)
                })
                .count()
        })
        .unwrap_or(0)
}

/// Entries of `purge/` other than the inodes parked for reuse.
fn count_garbage(purge: &Path) -> usize {
    fs::read_dir(purge)
        .map(|d| {
            d.filter(|e| {
                let name = e.as_ref().unwrap().file_name();
                !name.to_str().unwrap().starts_with("spare.")
            })
            .count()
        })
        .unwrap_or(0)
}

fn inode(p: &Path) -> u64 {
    fs::metadata(p).unwrap().ino()
}

#[test]
fn ids_print_as_opensmtpd() {
    let m = MsgId(0x42b9051a);
    assert_eq!(m.to_string(), "42b9051a");
    assert_eq!(m.bucket(), "42");
    assert_eq!(MsgId(0x0300_0001).to_string(), "03000001");
    let e = EvpId(0x898840a88eb2b16e);
    assert_eq!(e.to_string(), "898840a88eb2b16e");
    assert_eq!(e.msgid(), MsgId(0x898840a8));
    assert_eq!(EvpId::from_hex("898840a88eb2b16e"), Some(e));
    assert_eq!(EvpId::from_hex("898840a88eb2b16"), None);
    assert_eq!(EvpId::from_hex("+98840a88eb2b16e"), None);
    for _ in 0..1000 {
        let m = MsgId::random();
        assert_ne!(m.0, 0);
        let e = EvpId::random(m);
        assert_eq!(e.msgid(), m);
        assert_ne!(e.0 as u32, 0);
    }
}

#[test]
fn layout_and_modes() {
    let (_t, spool) = spool();
    let _q = Queue::open(&spool).unwrap();
    let expect = [
        ("", "root", "root", 0o711),
        ("incoming", "Q", "root", 0o700),
        ("queue", "Q", "root", 0o700),
        ("offline", "root", "Q", 0o770),
        ("purge", "Q", "root", 0o700),
        ("temporary", "Q", "root", 0o700),
    ];
    for (sub, user, group, mode) in expect {
        let p = spool.join(sub);
        let (u, g, m) = owner_names(&p);
        assert_eq!(m, mode, "{sub}");
        if let (true, Some(qu)) = (is_root(), queue_user()) {
            let want = |s: &str| if s == "Q" { qu.clone() } else { s.to_string() };
            assert_eq!((u, g), (want(user), want(group)), "{sub}");
        }
    }
    // A second open accepts what the first made.
    drop(_q);
    Queue::open(&spool).unwrap();
    // OpenSMTPD's ckdir refuses a spool with the wrong mode.
    fs::set_permissions(&spool, fs::Permissions::from_mode(0o755)).unwrap();
    let err = Queue::open(&spool).err().unwrap().to_string();
    assert!(
        err.contains("spool must be rwx--x--x (711): fix it: "),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_publishes_rollback_discards() {
    let (_t, spool) = spool();
    let q = Queue::open(&spool).unwrap();
    let body = b"Received: from client.test\nSubject: x\n\nhello\n";
    let (msgid, envs) = send(&q, &["bob", "carol"], body).await.unwrap();
    let dir = queued_dir(&spool, msgid);
    assert_eq!(fs::read(dir.join("message")).unwrap(), body);
    assert_eq!(q.message_path(msgid), dir.join("message"));
    for e in &envs {
        assert_eq!(e.id.msgid(), msgid);
        let text = fs::read_to_string(dir.join(e.id.to_string())).unwrap();
        assert_eq!(text, e.to_text());
        assert_eq!(q.envelope_load(e.id).unwrap(), *e);
    }
    assert_eq!(count_entries(&dir), 3);
    assert_eq!(incoming_messages(&spool), 0);
    let modes = [
        (dir.clone(), 0o700),
        (dir.parent().unwrap().to_path_buf(), 0o700),
        (dir.join("message"), 0o600),
        (dir.join(envs[0].id.to_string()), 0o600),
    ];
    for (p, mode) in modes {
        let (u, g, m) = owner_names(&p);
        assert_eq!(m, mode, "{}", p.display());
        if let (true, Some(qu)) = (is_root(), queue_user()) {
            assert_eq!((u, g), (qu.clone(), qu.clone()), "{}", p.display());
        }
    }
    assert_eq!(q.stats().commits, 1);

    // Rollback after envelopes and part of the data.
    let m2 = q.create_message().unwrap();
    let mut e = envelope("dave");
    q.create_envelope(m2, &mut e).unwrap();
    let mut w = q.message_writer(m2).unwrap();
    w.write(b"partial").unwrap();
    assert!(spool.join("incoming").join(m2.to_string()).exists());
    drop(w);
    q.rollback(m2);
    q.rollback(m2); // idempotent
    assert_eq!(incoming_messages(&spool), 0);
    assert!(!queued_dir(&spool, m2).exists());
    assert!(q.message_writer(m2).is_err());

    // A message without recipients is refused and removed.
    let m3 = q.create_message().unwrap();
    let w = q.message_writer(m3).unwrap();
    assert!(q.commit(m3, w).await.is_err());
    assert_eq!(incoming_messages(&spool), 0);
    assert!(!queued_dir(&spool, m3).exists());
    assert_eq!(count_entries(&spool.join("purge")), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_delete_and_bounce_envelopes() {
    let (_t, spool) = spool();
    let q = Queue::open(&spool).unwrap();
    let (msgid, mut envs) = send(&q, &["a", "b"], b"x\n").await.unwrap();
    let dir = queued_dir(&spool, msgid);

    envs[0].retry = 3;
    envs[0].errorline = "\"last line for exit 75\"".into();
    envs[0].esc_class = 4;
    envs[0].esc_code = 30;
    q.envelope_update(&envs[0]).unwrap();
    assert_eq!(q.envelope_load(envs[0].id).unwrap(), envs[0]);
    assert_eq!(count_entries(&spool.join("temporary")), 0);

    // A bounce added to the committed message keeps it alive.
    let mut b = envs[1].clone();
    b.kind = DeliveryType::Bounce;
    // Agent fields of another type are not saved (as in OpenSMTPD).
    b.mda_user.clear();
    let bid = q.create_envelope(msgid, &mut b).unwrap();
    assert_eq!(bid.msgid(), msgid);
    assert_eq!(q.envelope_load(bid).unwrap(), b);

    q.envelope_delete(envs[0].id).unwrap();
    q.envelope_delete(envs[1].id).unwrap();
    assert!(dir.join("message").exists());
    // Updating a deleted envelope does not resurrect it.
    assert!(q.envelope_update(&envs[1]).is_err());
    assert!(!dir.join(envs[1].id.to_string()).exists());
    q.envelope_delete(bid).unwrap();
    assert!(!dir.exists());
    // The bucket stays, as OpenSMTPD's.
    assert!(dir.parent().unwrap().is_dir());
    assert_eq!(count_garbage(&spool.join("purge")), 0);
    assert!(q.create_envelope(msgid, &mut b).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_after_restart_and_crash_leftovers() {
    let (_t, spool) = spool();
    let mut all = Vec::new();
    let kept;
    {
        let q = Queue::open(&spool).unwrap();
        for i in 0..5 {
            let (_, envs) = send(&q, &[&format!("u{i}"), "v"], b"m\n").await.unwrap();
            all.extend(envs);
        }
        // Crash in the middle of receiving: incoming/ holds a partial message.
        let m = q.create_message().unwrap();
        let mut e = envelope("lost");
        q.create_envelope(m, &mut e).unwrap();
        q.message_writer(m).unwrap().write(b"half").unwrap();
        kept = m;
    }
    // Other leftovers of a kill -9: a temporary envelope rewrite, a message
    // whose last envelope was deleted but not the message, junk names, a
    // corrupt envelope, envelopes whose message file is gone.
    fs::write(spool.join("temporary/0123456789abcdef.1"), "version: 3\n").unwrap();
    let orphan = MsgId(0x7f000001);
    let od = queued_dir(&spool, orphan);
    fs::create_dir_all(&od).unwrap();
    fs::write(od.join("message"), "x").unwrap();
    fs::write(spool.join("queue/README"), "junk").unwrap();
    fs::create_dir_all(spool.join("queue/zzz")).unwrap();
    let victim = all.pop().unwrap();
    let vpath = queued_dir(&spool, victim.id.msgid()).join(victim.id.to_string());
    fs::write(&vpath, "version: 3\nttl: soon\n").unwrap();
    fs::write(
        vpath.with_file_name(format!("{}.tmp", victim.id)),
        "not an envelope",
    )
    .unwrap();
    let nomsg = MsgId(0x7e000002);
    let nd = queued_dir(&spool, nomsg);
    fs::create_dir_all(&nd).unwrap();
    let nomsg_evp = EvpId(((nomsg.0 as u64) << 32) | 5);
    fs::write(nd.join(nomsg_evp.to_string()), envelope("z").to_text()).unwrap();

    let q = Queue::open(&spool).unwrap();
    assert_eq!(incoming_messages(&spool), 0);
    assert_eq!(count_entries(&spool.join("temporary")), 0);
    assert_eq!(count_entries(&spool.join("purge")), 0);
    assert!(!spool.join("incoming").join(kept.to_string()).exists());
    let loaded = q.load().unwrap();
    all.sort_by_key(|e| e.id);
    assert_eq!(loaded.envelopes, all);
    let reasons: Vec<_> = loaded
        .invalid
        .iter()
        .map(|(id, r)| (*id, r.as_str()))
        .collect();
    let mut expected = vec![
        (nomsg_evp, "message file missing"),
        (victim.id, "envelope: invalid field \"ttl\""),
    ];
    expected.sort();
    assert_eq!(reasons, expected);
    assert!(!od.exists(), "message without envelopes removed");
    assert!(spool.join("queue/README").exists());

    // The counts were rebuilt: deleting the last envelope removes the message. (Not the
    // victim's message: its unreadable envelope file stays, so its folder does too.)
    let m = all
        .iter()
        .map(|e| e.id.msgid())
        .find(|m| *m != victim.id.msgid())
        .unwrap();
    for e in all.iter().filter(|e| e.id.msgid() == m) {
        q.envelope_delete(e.id).unwrap();
    }
    assert!(!queued_dir(&spool, m).exists());
}

async fn burst(q: &Queue, tasks: usize, per_task: usize, body: Arc<Vec<u8>>) -> usize {
    let mut handles = Vec::new();
    for i in 0..tasks {
        let q = q.clone();
        let body = Arc::clone(&body);
        handles.push(tokio::spawn(async move {
            for j in 0..per_task {
                send(&q, &[&format!("r{i}x{j}")], &body).await.unwrap();
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    tasks * per_task
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_concurrent_commits_share_barriers() {
    for mode in [
        CommitMode::GroupSyncfs,
        CommitMode::GroupFsync,
        CommitMode::GroupAuto,
    ] {
        let (_t, spool) = spool();
        let q = Queue::open_with(
            &spool,
            QueueOptions {
                commit_mode: mode,
                ..QueueOptions::default()
            },
        )
        .unwrap();
        let body = Arc::new(vec![b'x'; 2048]);
        let n = burst(&q, 200, 1, body).await;
        let st = q.stats();
        assert_eq!(st.commits, n as u64, "{mode:?}");
        assert!(st.batches < n as u64, "{mode:?}: {st:?}");
        if mode == CommitMode::GroupSyncfs {
            assert!(st.syncs < n as u64, "{mode:?}: {st:?}");
        }
        eprintln!("{mode:?}: {st:?}");
        assert_eq!(q.load().unwrap().envelopes.len(), n);
        assert_eq!(incoming_messages(&spool), 0);
    }
}

/// Unmounts the tmpfs even when the test fails.
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_full_fails_cleanly() {
    if !require(is_root(), "needs root to mount a small tmpfs") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let mnt = t.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=512k,mode=755", "tmpfs"])
        .arg(&mnt)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !require(ok, "cannot mount a tmpfs here") {
        return;
    }
    let _m = Mount(mnt.clone());
    let spool = mnt.join("spool");
    for mode in [
        CommitMode::GroupSyncfs,
        CommitMode::GroupFsync,
        CommitMode::GroupAuto,
        CommitMode::Single,
    ] {
        let q = Queue::open_with(
            &spool,
            QueueOptions {
                commit_mode: mode,
                ..QueueOptions::default()
            },
        )
        .unwrap();
        let big = vec![b'y'; 2 * 1024 * 1024];
        let msgid = q.create_message().unwrap();
        let mut e = envelope("big");
        q.create_envelope(msgid, &mut e).unwrap();
        let mut w = q.message_writer(msgid).unwrap();
        // The error may come from a write or only when the buffer is flushed.
        let mut write_failed = false;
        for chunk in big.chunks(4096) {
            write_failed |= w.write(chunk).is_err();
        }
        let r = q.commit(msgid, w).await;
        assert!(r.is_err(), "{mode:?}: commit of 2 MB on 512 KB succeeded");
        eprintln!("{mode:?}: write_failed={write_failed} commit={r:?}");
        assert!(!queued_dir(&spool, msgid).exists());
        assert_eq!(incoming_messages(&spool), 0);
        // The space is back and the queue still works.
        let (m2, _) = send(&q, &["small"], b"ok\n").await.unwrap();
        assert!(queued_dir(&spool, m2).join("message").exists());
        assert_eq!(q.load().unwrap().envelopes.len(), 1);
        q.envelope_delete(q.load().unwrap().envelopes[0].id)
            .unwrap();
        drop(q);
    }
}

/// Measurements for the report, not a check:
/// `cargo test --release -p rsmtpd --test queue_store -- --ignored --nocapture`
/// (`SPOOL_DIR` picks the file system to measure, default a temp dir).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore]
async fn measure_commit_rates() {
    let base = std::env::var_os("SPOOL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let t = tempfile::tempdir_in(&base).unwrap();

    // Raw barrier rates of this disk: write 2 KB + fsync, one thread.
    let p = t.path().join("probe");
    let f = fs::File::create(&p).unwrap();
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed().as_secs_f64() < 2.0 {
        use std::io::Write;
        (&f).write_all(&[b'z'; 2048]).unwrap();
        f.sync_all().unwrap();
        n += 1;
    }
    eprintln!(
        "write 2KB + fsync: {:.0}/s",
        n as f64 / start.elapsed().as_secs_f64()
    );
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed().as_secs_f64() < 2.0 {
        use std::io::Write;
        (&f).write_all(&[b'z'; 2048]).unwrap();
        nix::unistd::syncfs(&f).unwrap();
        n += 1;
    }
    eprintln!(
        "write 2KB + syncfs: {:.0}/s",
        n as f64 / start.elapsed().as_secs_f64()
    );

    for mode in [
        CommitMode::Single,
        CommitMode::GroupFsync,
        CommitMode::GroupAuto,
        CommitMode::GroupSyncfs,
    ] {
        let spool = t.path().join(format!("{mode:?}"));
        let q = Queue::open_with(
            &spool,
            QueueOptions {
                commit_mode: mode,
                ..QueueOptions::default()
            },
        )
        .unwrap();
        let body = Arc::new(vec![b'x'; 2048]);
        let start = Instant::now();
        let n = burst(&q, 20, 100, body).await;
        let secs = start.elapsed().as_secs_f64();
        let st = q.stats();
        eprintln!(
            "{mode:?}: 20 committers, {n} commits of 2 KB in {secs:.2}s = {:.0} commits/s; \
             {} rounds, {} fsync/syncfs calls",
            n as f64 / secs,
            st.batches,
            st.syncs
        );
    }
}

/// Finished messages give their inodes to later ones, but only after a
/// commit barrier: until their removal is on disk, a crash could bring their
/// old names back pointing at new content.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_inodes_are_reused_after_a_barrier_with_no_stale_content() {
    let (_t, spool) = spool();
    // The syncfs committer, whose every round is the barrier; the default's background
    // promotion has a test of its own below.
    let syncfs = || QueueOptions {
        commit_mode: CommitMode::GroupSyncfs,
        ..QueueOptions::default()
    };
    let q = Queue::open_with(&spool, syncfs()).unwrap();
    let (m1, e1) = send(&q, &["old"], b"old message, longer than the next one\n")
        .await
        .unwrap();
    let d1 = queued_dir(&spool, m1);
    let (dir_ino, msg_ino, env_ino) = (
        inode(&d1),
        inode(&d1.join("message")),
        inode(&d1.join(e1[0].id.to_string())),
    );
    q.envelope_delete(e1[0].id).unwrap();
    assert!(!d1.exists());
    let purge = spool.join("purge");
    assert_eq!(
        count_entries(&purge),
        2,
        "parked: the directory and the envelope"
    );

    // No barrier since they were parked: a new message gets fresh inodes.
    let (m2, e2) = send(&q, &["second"], b"second\n").await.unwrap();
    let d2 = queued_dir(&spool, m2);
    assert_ne!(inode(&d2), dir_ino);
    assert_ne!(inode(&d2.join(e2[0].id.to_string())), env_ino);

    // That commit's syncfs made the parked ones reusable.
    let (m3, e3) = send(&q, &["third", "fourth"], b"new\n").await.unwrap();
    let d3 = queued_dir(&spool, m3);
    assert_eq!(inode(&d3), dir_ino);
    assert_eq!(inode(&d3.join("message")), msg_ino);
    let env_inodes: Vec<u64> = e3
        .iter()
        .map(|e| inode(&d3.join(e.id.to_string())))
        .collect();
    assert!(env_inodes.contains(&env_ino));
    // Nothing of the old message survives in the reused inodes.
    assert_eq!(fs::read(d3.join("message")).unwrap(), b"new\n");
    for e in &e3 {
        assert_eq!(&q.envelope_load(e.id).unwrap(), e);
    }
    let names: Vec<String> = fs::read_dir(&d3)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 3, "message and two envelopes: {names:?}");
    assert_eq!(count_entries(&purge), 0);

    // A restart forgets the parked inodes with the rest of purge/.
    for e in e2.iter().chain(&e3) {
        q.envelope_delete(e.id).unwrap();
    }
    assert!(count_entries(&purge) > 0);
    drop(q);
    let q = Queue::open_with(&spool, syncfs()).unwrap();
    assert_eq!(count_entries(&purge), 0);
    assert!(q.load().unwrap().envelopes.is_empty());
}

/// With the default committer, whose small rounds sync files one by one, the parked inodes
/// become reusable through a `syncfs` made apart from the commits (within a few tenths of a
/// second), and the reused ones carry nothing of the old message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_committer_reuses_inodes_after_its_background_barrier() {
    let (_t, spool) = spool();
    let q = Queue::open(&spool).unwrap();
    assert_eq!(q.commit_mode(), CommitMode::GroupAuto);
    let (m1, e1) = send(&q, &["old"], b"old message, longer than the next one\n")
        .await
        .unwrap();
    let d1 = queued_dir(&spool, m1);
    let (dir_ino, msg_ino) = (inode(&d1), inode(&d1.join("message")));
    q.envelope_delete(e1[0].id).unwrap();
    assert_eq!(count_entries(&spool.join("purge")), 2);
    let mut reused = false;
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let (m2, e2) = send(&q, &["new"], b"new\n").await.unwrap();
        let d2 = queued_dir(&spool, m2);
        if inode(&d2) == dir_ino {
            assert_eq!(inode(&d2.join("message")), msg_ino);
            assert_eq!(fs::read(d2.join("message")).unwrap(), b"new\n");
            assert_eq!(&q.envelope_load(e2[0].id).unwrap(), &e2[0]);
            reused = true;
            break;
        }
    }
    assert!(reused, "the parked directory was never reused");
}

/// A directory holding anything besides its message is removed, not parked:
/// the stray file would be carried into the next message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_with_strays_is_not_reused() {
    let (_t, spool) = spool();
    let q = Queue::open(&spool).unwrap();
    let (m1, e1) = send(&q, &["a"], b"m\n").await.unwrap();
    let d1 = queued_dir(&spool, m1);
    fs::write(d1.join("stray"), b"x").unwrap();
    q.envelope_delete(e1[0].id).unwrap();
    assert!(!d1.exists());
    let parked: Vec<String> = fs::read_dir(spool.join("purge"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(parked.len(), 1, "only the envelope: {parked:?}");
    assert!(parked[0].starts_with("spare.e."));
}

/// `queue compression`: the file on disk is gzip, readers get the message as
/// received; a message queued before the option was turned on reads as it is,
/// and without the option nothing is inflated, not even a message that starts
/// with gzip's magic bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_messages_read_back_as_received() {
    use std::io::Read;
    let (_t, spool) = spool();
    let body: Vec<u8> = b"Subject: compress me\r\n\r\n"
        .iter()
        .copied()
        .chain(b"the same line again and again\r\n".repeat(500))
        .collect();
    let opts = QueueOptions {
        compression: true,
        ..QueueOptions::default()
    };
    let q = Queue::open_with(&spool, opts).unwrap();
    let (m, _) = send(&q, &["a"], &body).await.unwrap();
    let on_disk = fs::read(q.message_path(m)).unwrap();
    assert_eq!(&on_disk[..2], &[0x1f, 0x8b]);
    assert!(on_disk.len() * 10 < body.len(), "{} bytes", on_disk.len());
    let mut back = Vec::new();
    q.open_message(m).unwrap().read_to_end(&mut back).unwrap();
    assert_eq!(back, body);

    // Written before compression was on.
    let plain = Queue::open(&spool).unwrap();
    let (m2, _) = send(&plain, &["b"], b"plain\r\n").await.unwrap();
    drop(plain);
    let mut back = Vec::new();
    rsmtpd::queue::open_message_file(&q.message_path(m2), q.codec())
        .unwrap()
        .read_to_end(&mut back)
        .unwrap();
    assert_eq!(back, b"plain\r\n");

    // Without the option, gzip-looking content is delivered untouched.
    let mut back = Vec::new();
    rsmtpd::queue::open_message_file(&q.message_path(m), &Codec::default())
        .unwrap()
        .read_to_end(&mut back)
        .unwrap();
    assert_eq!(back, on_disk);
}

const KEY: &[u8; 32] = b"Z8pV3xQ1mK7tR4wY9bN2cF6hJ0sL5dG3";

fn encrypted(compression: bool) -> QueueOptions {
    QueueOptions {
        compression,
        encryption: QueueKey::new(KEY),
        ..QueueOptions::default()
    }
}

/// Every file under `dir`, with its content.
fn all_files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if e.file_type().unwrap().is_dir() {
            out.extend(all_files(&p));
        } else {
            out.push((p.clone(), fs::read(&p).unwrap()));
        }
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn read_all(mut f: fs::File) -> Vec<u8> {
    let mut v = Vec::new();
    std::io::Read::read_to_end(&mut f, &mut v).unwrap();
    v
}

fn big_body(marker: &str, lines: usize) -> Vec<u8> {
    let mut body = format!("Subject: {marker}\r\n\r\n").into_bytes();
    for i in 0..lines {
        body.extend_from_slice(format!("{marker} line {i} of the secret text\r\n").as_bytes());
    }
    body
}

/// `queue encryption`: nothing of the message or its envelopes is on disk in
/// clear; the files have crypto.c's layout; they read back, after a restart
/// too; a wrong key or no key reads nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_spool_holds_no_plaintext() {
    let (_t, spool) = spool();
    let body = big_body("BODYMARKER-7f3a", 20000);
    let q = Queue::open_with(&spool, encrypted(false)).unwrap();
    let (m, envs) = send(&q, &["secretrcpt", "otherrcpt"], &body).await.unwrap();
    // A rewritten envelope (a temporary failure) stays encrypted.
    let mut e0 = q.envelope_load(envs[0].id).unwrap();
    e0.errorline = "421 secretrcpt mailbox busy".into();
    q.envelope_update(&e0).unwrap();

    let files = all_files(&spool);
    // The message, two envelopes and the commit log's two files (sums and ids only).
    assert_eq!(files.len(), 5, "{files:?}");
    for (path, data) in &files {
        for needle in [
            &b"secretrcpt"[..],
            b"otherrcpt",
            b"BODYMARKER",
            b"alice",
            b"Subject",
        ] {
            assert!(
                !contains(data, needle),
                "{} holds {:?}",
                path.display(),
                needle
            );
        }
        let log = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("commit."));
        if !log {
            assert_eq!(data.first(), Some(&1), "{}", path.display());
        }
    }
    let on_disk = fs::read(q.message_path(m)).unwrap();
    assert_eq!(on_disk.len(), body.len() + rsmtpd_queuecrypt::OVERHEAD);
    let key = QueueKey::new(KEY).unwrap();
    assert_eq!(
        rsmtpd_queuecrypt::decrypt_buffer(&key, &on_disk).unwrap(),
        body
    );
    assert_eq!(read_all(q.open_message(m).unwrap()), body);
    drop(q);

    // After a restart.
    let q = Queue::open_with(&spool, encrypted(false)).unwrap();
    let loaded = q.load().unwrap();
    assert!(loaded.invalid.is_empty(), "{:?}", loaded.invalid);
    let mut rcpts: Vec<String> = loaded
        .envelopes
        .iter()
        .map(|e| e.rcpt.user.clone())
        .collect();
    rcpts.sort();
    assert_eq!(rcpts, ["otherrcpt", "secretrcpt"]);
    let e0 = loaded
        .envelopes
        .iter()
        .find(|e| e.id == envs[0].id)
        .unwrap();
    assert_eq!(e0.errorline, "421 secretrcpt mailbox busy");
    assert_eq!(read_all(q.open_message(m).unwrap()), body);
    drop(q);

    // Another key, or none: nothing readable, nothing taken for plain text.
    for opts in [
        QueueOptions {
            encryption: QueueKey::new(b"Z8pV3xQ1mK7tR4wY9bN2cF6hJ0sL5dG4"),
            ..QueueOptions::default()
        },
        QueueOptions::default(),
    ] {
        let codec = Codec {
            compression: false,
            key: opts.encryption.clone(),
        };
        let q = Queue::open_with(&spool, opts).unwrap();
        let loaded = q.load().unwrap();
        assert!(loaded.envelopes.is_empty());
        assert_eq!(loaded.invalid.len(), 2);
        if codec.key.is_some() {
            assert!(q.open_message(m).is_err());
        }
    }
    // The failed decryption left nothing beside the message.
    assert_eq!(count_entries(&queued_dir(&spool, m)), 3);
}

/// `queue compression` with `queue encryption`: compressed, then encrypted,
/// messages and envelopes alike (OpenSMTPD's order); read back through both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_and_encrypted_read_back() {
    let (_t, spool) = spool();
    let body = big_body("BODYMARKER-c0de", 50000);
    let q = Queue::open_with(&spool, encrypted(true)).unwrap();
    let (m, envs) = send(&q, &["secretrcpt"], &body).await.unwrap();
    let key = QueueKey::new(KEY).unwrap();
    let on_disk = fs::read(q.message_path(m)).unwrap();
    assert!(on_disk.len() * 10 < body.len(), "{} bytes", on_disk.len());
    let inner = rsmtpd_queuecrypt::decrypt_buffer(&key, &on_disk).unwrap();
    assert_eq!(&inner[..2], &[0x1f, 0x8b]);
    let evp = fs::read(queued_dir(&spool, m).join(envs[0].id.to_string())).unwrap();
    let inner = rsmtpd_queuecrypt::decrypt_buffer(&key, &evp).unwrap();
    assert_eq!(&inner[..2], &[0x1f, 0x8b]);
    for (path, data) in all_files(&spool) {
        assert!(!contains(&data, b"secretrcpt"), "{}", path.display());
        assert!(!contains(&data, b"BODYMARKER"), "{}", path.display());
    }
    assert_eq!(read_all(q.open_message(m).unwrap()), body);
    drop(q);
    let q = Queue::open_with(&spool, encrypted(true)).unwrap();
    let loaded = q.load().unwrap();
    assert_eq!(loaded.envelopes.len(), 1, "{:?}", loaded.invalid);
    assert_eq!(loaded.envelopes[0].rcpt.user, "secretrcpt");
    assert_eq!(read_all(q.open_message(m).unwrap()), body);
}

/// A message altered on disk does not verify: an error, not altered text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_encrypted_message_is_refused() {
    let (_t, spool) = spool();
    let q = Queue::open_with(&spool, encrypted(false)).unwrap();
    let (m, _) = send(&q, &["a"], &big_body("X", 100)).await.unwrap();
    let path = q.message_path(m);
    let mut data = fs::read(&path).unwrap();
    let mid = data.len() / 2;
    data[mid] ^= 1;
    fs::write(&path, &data).unwrap();
    let e = q.open_message(m).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidData, "{e}");
    assert_eq!(count_entries(&queued_dir(&spool, m)), 2);
}

/// Turning encryption on with messages in the queue: they are read as they
/// are (OpenSMTPD would fail them), and new ones are encrypted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clear_messages_from_before_encryption_still_read() {
    let (_t, spool) = spool();
    let plain = Queue::open(&spool).unwrap();
    let (m, _) = send(&plain, &["a"], b"Received: x\r\n\r\nclear\r\n")
        .await
        .unwrap();
    drop(plain);
    let q = Queue::open_with(&spool, encrypted(false)).unwrap();
    assert_eq!(q.load().unwrap().envelopes.len(), 1);
    assert_eq!(
        read_all(q.open_message(m).unwrap()),
        b"Received: x\r\n\r\nclear\r\n"
    );
}
