//! The delivery process through the real daemon, as root (without root there is none: these
//! tests return at once): deliveries written as their users by a few reused workers, a worker
//! killed mid-delivery, the delivery process itself killed mid-delivery. Real sockets, real
//! Maildirs and mailboxes, real process ids from /proc.

use std::collections::BTreeSet;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::*;

/// `(pid, comm)` of the processes whose parent is `parent`.
fn children(parent: u32) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // "PID (COMM) STATE PPID ...": COMM may hold spaces and parentheses.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = stat[open + 1..close].to_string();
        let mut rest = stat[close + 1..].split_whitespace();
        let state = rest.next().unwrap_or("");
        let ppid: u32 = rest.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        if ppid == parent && state != "Z" {
            out.push((pid, comm));
        }
    }
    out
}

fn delivery_process(d: &Daemon) -> Option<u32> {
    children(d.pid())
        .into_iter()
        .find(|(_, c)| c == "smtpd: delivery")
        .map(|(p, _)| p)
}

fn workers_of(helper: u32) -> Vec<u32> {
    children(helper)
        .into_iter()
        .filter(|(_, c)| c == "smtpd: worker")
        .map(|(p, _)| p)
        .collect()
}

fn wait_for<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A line of /proc/PID/status, e.g. `Uid:`, without its name.
fn status_line(pid: u32, name: &str) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()))
}

/// One SMTP session that sends one message per recipient.
fn send(d: &Daemon, rcpts: &[&str]) {
    let mut c = Client::connect(d.addr());
    assert!(c.reply().starts_with("220 "));
    assert!(c.cmd("EHLO client").starts_with("250"));
    for (i, rcpt) in rcpts.iter().enumerate() {
        assert!(c.cmd("MAIL FROM:<sender@example.net>").starts_with("250"));
        let r = c.cmd(&format!("RCPT TO:<{rcpt}>"));
        assert!(r.starts_with("250"), "{rcpt}: {r}");
        assert!(c.cmd("DATA").starts_with("354"));
        let r = c.cmd(&format!("Subject: message {i}\r\n\r\nbody {i}\r\n."));
        assert!(r.starts_with("250"), "{r}");
    }
    c.cmd("QUIT");
}

fn count(d: &Daemon, pred: impl Fn(&str) -> bool) -> usize {
    d.log().iter().filter(|l| pred(l)).count()
}

fn delivered(d: &Daemon) -> usize {
    count(d, |l| l.ends_with("result=Ok stat=Delivered"))
}

fn smtpctl_schedule_all(d: &Daemon) {
    let out = ctl(d, "smtpctl", &["schedule", "all"], "", None);
    assert!(out.status.success(), "{out:?}");
}

fn files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect()
}

#[test]
fn deliveries_run_as_their_users_in_a_few_reused_workers() {
    if !require_root() {
        return;
    }
    let config = "listen on 127.0.0.1 port @PORT@\n\
         table users { alice = \"2001:2001:@DIR@/alice\", bob = \"2002:2002:@DIR@/bob\" }\n\
         action \"mail\" maildir userbase <users>\n\
         match from any for domain \"example.org\" action \"mail\"\n";
    let d = Daemon::start(config, &[]);
    let alice = user_dir(&d, "alice", 2001);
    let bob = user_dir(&d, "bob", 2002);

    // Started with the daemon, under its name, as root.
    let helper = wait_for(Duration::from_secs(5), || delivery_process(&d));
    let cmdline = std::fs::read(format!("/proc/{helper}/cmdline")).unwrap_or_default();
    assert_eq!(cmdline, b"smtpd: delivery\0");
    assert_eq!(status_line(helper, "Uid:").as_deref(), Some("0\t0\t0\t0"));

    let rcpts: Vec<&str> = (0..50)
        .map(|i| {
            if i % 2 == 0 {
                "alice@example.org"
            } else {
                "bob@example.org"
            }
        })
        .collect();
    send(&d, &rcpts);
    d.wait_log_for(Duration::from_secs(60), |_| delivered(&d) >= 50);
    assert_eq!(delivered(&d), 50);

    for (dir, uid) in [(&alice, 2001), (&bob, 2002)] {
        let new = files(&dir.join("Maildir/new"));
        assert_eq!(new.len(), 25, "{}", dir.display());
        for f in new {
            let md = std::fs::metadata(&f).expect("stat");
            assert_eq!((md.uid(), md.gid()), (uid, uid), "{}", f.display());
            assert_eq!(md.mode() & 0o777, 0o600);
        }
    }

    // Few workers, each started for one uid and reused.
    let mut started: Vec<(u32, u32)> = Vec::new();
    for l in d.log() {
        if let Some(rest) = l.strip_prefix("debug: delivery: worker ") {
            let mut w = rest.split(' ');
            let pid = w.next().and_then(|p| p.parse().ok()).expect("pid");
            let uid = w.next_back().and_then(|u| u.parse().ok()).expect("uid");
            started.push((pid, uid));
        }
    }
    let pids: BTreeSet<u32> = started.iter().map(|w| w.0).collect();
    eprintln!("50 deliveries, {} workers: {started:?}", pids.len());
    assert_eq!(pids.len(), started.len(), "a pid started twice");
    assert!(
        started.iter().all(|w| w.1 == 2001 || w.1 == 2002),
        "{started:?}"
    );
    // The scheduler runs at most 7 deliveries per user at once.
    assert!(pids.len() <= 14, "{started:?}");

    // The idle ones are still there, named, as their users for good (real, effective, saved,
    // fs ids).
    for (pid, uid) in &started {
        if let Some(ids) = status_line(*pid, "Uid:") {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            assert!(cmdline.starts_with(b"smtpd: worker\0"), "{cmdline:?}");
            assert_eq!(ids, format!("{uid}\t{uid}\t{uid}\t{uid}"));
            assert_eq!(
                status_line(*pid, "Gid:"),
                Some(format!("{uid}\t{uid}\t{uid}\t{uid}"))
            );
            assert_eq!(status_line(*pid, "Groups:"), Some(uid.to_string()));
        }
    }
    // ...until they have been idle for a few seconds.
    wait_for(Duration::from_secs(15), || {
        workers_of(helper).is_empty().then_some(())
    });
}

/// A config where mail to `arch@example.org` is appended to `@DIR@/bob/archive` (an alias
/// file target, run as the unprivileged `opensmtpd` user, looked up in the userbase: uid 2002)
/// and other mail goes to bob's Maildir.
const ARCHIVE: &str = "listen on 127.0.0.1 port @PORT@\n\
     table users { bob = \"2002:2002:@DIR@/bob\", opensmtpd = \"2002:2002:@DIR@/bob\" }\n\
     table aliases { arch = \"@DIR@/bob/archive\" }\n\
     action \"file\" mbox alias <aliases> userbase <users>\n\
     action \"mail\" maildir userbase <users>\n\
     match from any for rcpt-to \"arch@example.org\" action \"file\"\n\
     match from any for domain \"example.org\" action \"mail\"\n";

/// The archive file, with a write lock held by this test: mail.mboxfile waits for it, which
/// keeps its delivery in the middle of running.
fn locked_archive(d: &Daemon) -> (PathBuf, std::fs::File) {
    let bob = user_dir(d, "bob", 2002);
    let path = bob.join("archive");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .expect("archive");
    std::os::unix::fs::chown(&path, Some(2002), Some(2002)).expect("chown");
    // SAFETY: a zeroed flock struct is valid; fcntl reads the fields we set.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as _;
    fl.l_whence = libc::SEEK_SET as _;
    // SAFETY: a plain syscall on our descriptor.
    assert_ne!(
        unsafe { libc::fcntl(f.as_raw_fd(), libc::F_SETLK, &fl) },
        -1
    );
    (path, f)
}

fn copies_in(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .matches("\nSubject: message 0\n")
        .count()
}

/// A delivery in the middle of its work: the archive is locked, one message for it was sent,
/// and the worker started for it exists.
struct Busy {
    archive: PathBuf,
    lock: std::fs::File,
    helper: u32,
    worker: u32,
}

fn busy_with_archive(d: &Daemon) -> Busy {
    let (archive, lock) = locked_archive(d);
    let helper = wait_for(Duration::from_secs(5), || delivery_process(d));
    send(d, &["arch@example.org"]);
    // The worker is started for this job: once it exists, it is in the middle of it.
    let worker = wait_for(Duration::from_secs(20), || {
        workers_of(helper).first().copied()
    });
    std::thread::sleep(Duration::from_millis(200));
    Busy {
        archive,
        lock,
        helper,
        worker,
    }
}

fn sigkill(pid: u32) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill");
}

/// After `smtpctl schedule all`, the archive's message is delivered, and exactly once.
fn retried_and_delivered_once(d: &Daemon, archive: &Path) {
    smtpctl_schedule_all(d);
    d.wait_log_for(Duration::from_secs(20), |l| {
        l.contains("to=<arch@example.org>") && l.ends_with("result=Ok stat=Delivered")
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(copies_in(archive), 1);
}

#[test]
fn a_killed_worker_s_delivery_is_retried_and_delivered_once() {
    if !require_root() {
        return;
    }
    let d = Daemon::start(ARCHIVE, &[]);
    let Busy {
        archive,
        lock,
        helper,
        worker,
    } = busy_with_archive(&d);
    sigkill(worker);
    d.wait_log_for(Duration::from_secs(20), |l| {
        l.contains("to=<arch@example.org>")
            && l.ends_with("result=TempFail stat=Error (terminated; signal 9)")
    });
    // The delivery process lives on; other deliveries go on, in a new worker.
    send(&d, &["bob@example.org"]);
    d.wait_log_for(Duration::from_secs(20), |l| {
        l.contains("to=<bob@example.org>") && l.ends_with("result=Ok stat=Delivered")
    });
    assert_eq!(delivery_process(&d), Some(helper));
    assert!(!workers_of(helper).contains(&worker));
    assert_eq!(copies_in(&archive), 0);

    // The lock is released and the envelope retried: delivered, once.
    drop(lock);
    retried_and_delivered_once(&d, &archive);
    assert_eq!(delivered(&d), 2);
}

#[test]
fn a_killed_delivery_process_is_started_again() {
    if !require_root() {
        return;
    }
    let d = Daemon::start(ARCHIVE, &[]);
    let Busy {
        archive,
        lock,
        helper,
        worker,
    } = busy_with_archive(&d);
    sigkill(helper);
    // Its delivery in flight fails for now, and its worker does not go on writing.
    d.wait_log_for(Duration::from_secs(20), |l| {
        l.contains("to=<arch@example.org>")
            && l.contains("result=TempFail")
            && l.contains("delivery process exited")
    });
    d.wait_log(|l| l.starts_with(&format!("warn: delivery process {helper} exited")));
    wait_for(Duration::from_secs(5), || gone(worker).then_some(()));
    drop(lock);
    assert_eq!(copies_in(&archive), 0);

    // The next delivery starts a new delivery process.
    send(&d, &["bob@example.org"]);
    d.wait_log_for(Duration::from_secs(20), |l| {
        l.contains("to=<bob@example.org>") && l.ends_with("result=Ok stat=Delivered")
    });
    let again = delivery_process(&d).expect("a new delivery process");
    assert_ne!(again, helper);

    // And the failed one, retried, is delivered once.
    retried_and_delivered_once(&d, &archive);
}

fn gone(pid: u32) -> bool {
    status_line(pid, "State:").is_none_or(|s| s.starts_with('Z'))
}

#[test]
fn the_daemon_s_end_ends_the_delivery_process_and_its_workers() {
    if !require_root() {
        return;
    }
    let mut d = Daemon::start(ARCHIVE, &[]);
    // A worker busy with the archive (locked).
    let Busy {
        archive,
        lock,
        helper,
        worker,
    } = busy_with_archive(&d);
    // A crash: no goodbye, only the socket's EOF.
    d.kill9();
    wait_for(Duration::from_secs(10), || {
        (gone(helper) && gone(worker)).then_some(())
    });
    drop(lock);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        copies_in(&archive),
        0,
        "a worker went on after the daemon died"
    );
}

/// `systemctl stop` sends SIGTERM to every process of the service, Ctrl-C on `smtpd -d` SIGINT
/// to the whole process group: the daemon stops cleanly, its delivery process and workers leave
/// with it, and the stop is not reported as a crash of the delivery process.
#[test]
fn a_stop_signal_to_every_process_is_a_clean_stop() {
    if !require_root() {
        return;
    }
    let config = "listen on 127.0.0.1 port @PORT@\n\
         table users { alice = \"2001:2001:@DIR@/alice\" }\n\
         action \"mail\" maildir userbase <users>\n\
         match from any for domain \"example.org\" action \"mail\"\n";
    for sig in [
        nix::sys::signal::Signal::SIGTERM,
        nix::sys::signal::Signal::SIGINT,
    ] {
        let mut d = Daemon::start(config, &[]);
        user_dir(&d, "alice", 2001);
        let helper = wait_for(Duration::from_secs(5), || delivery_process(&d));
        send(&d, &["alice@example.org"]);
        wait_for(Duration::from_secs(20), || {
            (delivered(&d) == 1).then_some(())
        });
        let mut all = vec![helper];
        all.extend(workers_of(helper));
        all.push(d.pid());
        for pid in &all {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(*pid as i32), sig);
        }
        assert_eq!(d.stop(), Some(0), "{sig}");
        wait_for(Duration::from_secs(10), || {
            all.iter().all(|&p| gone(p)).then_some(())
        });
        let log = d.log();
        assert!(log.iter().any(|l| l == "Exiting"), "{log:?}");
        assert!(
            !log.iter().any(|l| l.contains("delivery process")),
            "{sig}: {log:?}"
        );
    }
}
