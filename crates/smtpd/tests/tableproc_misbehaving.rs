//! A backend that breaks the protocol, played by a small Python program on the same socket the
//! real ones get (stdin): a `PROC_TABLE_FAIL` answer fails that lookup only; an over-long frame,
//! a value without its NUL or a backend that exits are each a lost backend (its lookup fails,
//! the next one starts it again once its wait is over), never a panic or an unbounded read.
//! Then, in the daemon split as root, a backend that hangs and ignores SIGTERM and the end of
//! its socket: the parent kills it at the engine's request, after a lookup's time limit and
//! after a reload.

mod common;

use common::procfs::{cmdline, kill_running, parent_of, running};
use common::*;
use rsmtpd::tableproc::{Backend, Down, Spec};
use rsmtpd_protocol::table_protocol::{Answer, Service};
use std::time::Duration;

/// Answers OPEN, then for each request the behaviour its key names.
const FAKE: &str = r#"
import os, struct, sys
fd = 0
def read(n):
    b = b''
    while len(b) < n:
        c = os.read(fd, n - len(b))
        if not c:
            sys.exit(0)
        b += c
    return b
def send(t, data, length=None):
    l = 16 + len(data) if length is None else length
    os.write(fd, struct.pack('=IHHII', t, l, 0, 0, os.getpid()) + data)
while True:
    t, l, _, _, _ = struct.unpack('=IHHII', read(16))
    data = read(l - 16)
    if t == 2:
        send(0, b'')
        continue
    key = data[12:-1].decode()
    if key == 'fail':
        send(1, b'')
    elif key == 'huge':
        send(0, b'', length=65535)
    elif key == 'unterminated':
        send(0, struct.pack('=i', 1) + b'abc')
    elif key == 'exit':
        sys.exit(0)
    else:
        send(0, struct.pack('=i', 1) + ('value of ' + key).encode() + b'\0')
"#;

/// [`FAKE`] as a backend's program in `dir`; None (skipped) without python3.
fn fake(dir: &std::path::Path) -> Option<Spec> {
    let have_python = std::process::Command::new("python3")
        .arg("-c")
        .arg("pass")
        .output()
        .is_ok_and(|o| o.status.success());
    if !require(have_python, "needs python3 (the fake backend)") {
        return None;
    }
    let prog = dir.join("table-fake");
    std::fs::write(&prog, format!("#!/usr/bin/env python3\n{FAKE}")).expect("write");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    Some(Spec {
        table: "fake".into(),
        backend: "fake".into(),
        arg: None,
        program: prog,
        who: None,
    })
}

#[test]
fn a_misbehaving_backend_is_dropped_and_started_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(spec) = fake(dir.path()) else {
        return;
    };
    let b = Backend::start(spec).expect("started");
    let found = |k: &str| Ok(Answer::Yes(Some(format!("value of {k}"))));
    assert_eq!(b.lookup(Service::Alias, "bob"), found("bob"));
    // FAIL: this lookup fails, the stream is still in step.
    assert_eq!(b.lookup(Service::Alias, "fail"), Ok(Answer::Failed(-1)));
    assert_eq!(b.lookup(Service::Alias, "carol"), found("carol"));
    for bad in ["huge", "unterminated", "exit"] {
        let first = b.pid();
        assert_eq!(b.lookup(Service::Alias, bad), Err(Down::Lost), "{bad}");
        // Within its wait: at once, without asking.
        assert_eq!(b.lookup(Service::Alias, "dave"), Err(Down::NotRunning));
        std::thread::sleep(Duration::from_millis(1100));
        // The waits double (1 s, 2 s, 4 s): wait until it is started again.
        let t0 = std::time::Instant::now();
        loop {
            match b.lookup(Service::Alias, "dave") {
                Ok(a) => {
                    assert_eq!(Ok(a), found("dave"));
                    break;
                }
                Err(Down::NotRunning) if t0.elapsed() < Duration::from_secs(10) => {
                    std::thread::sleep(Duration::from_millis(200))
                }
                Err(e) => panic!("{bad}: not restarted: {e:?}"),
            }
        }
        assert_ne!(first, b.pid(), "{bad}: a new process");
    }
    // Keys 6.8 would not send are refused before asking.
    assert_eq!(b.check(Service::Domain, "a\0b"), Err(Down::BadKey));
    assert_eq!(
        b.check(Service::Domain, &"x".repeat(2000)),
        Err(Down::BadKey)
    );
}

/// A backend dies with the process that started it (`PR_SET_PDEATHSIG`), which the kernel takes
/// to be the thread that forked it: one started on behalf of a thread that then ends (a tokio
/// worker leaving the pool, a reload's blocking thread) goes on serving.
#[test]
fn a_backend_outlives_the_thread_that_asked_for_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(spec) = fake(dir.path()) else {
        return;
    };
    let b = std::thread::spawn(move || Backend::start(spec).expect("started"))
        .join()
        .expect("the starting thread");
    let pid = b.pid().expect("running");
    // Time for a parent-death signal to arrive, were there one.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        b.lookup(Service::Alias, "bob"),
        Ok(Answer::Yes(Some("value of bob".into())))
    );
    assert_eq!(b.pid(), Some(pid), "the same backend, not a restarted one");
}

/// A backend that answers OPEN and every CHECK with "found", except for a key that names
/// `hang`: then it never answers again. It ignores SIGTERM and the end of its socket (a
/// table-sqlite stuck on a lock, a hostile script): only SIGKILL ends it.
const HANGS: &str = r#"
import os, signal, struct, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
fd = 0
def read(n):
    b = b''
    while len(b) < n:
        c = os.read(fd, n - len(b))
        if not c:
            while True:
                time.sleep(3600)
        b += c
    return b
def send(t, data):
    os.write(fd, struct.pack('=IHHII', t, 16 + len(data), 0, 0, os.getpid()) + data)
while True:
    t, l, _, _, _ = struct.unpack('=IHHII', read(16))
    data = read(l - 16)
    if t == 2:
        send(0, b'')
    elif b'hang' in data:
        while True:
            time.sleep(3600)
    else:
        send(0, struct.pack('=i', 1))
"#;

/// Where the daemon looks for `table-NAME` programs besides opensmtpd-extras' directory; the
/// fake backend is put there for the test under a name of its own, and removed after.
const OUR_LIBEXEC: &str = "/usr/libexec/rsmtpd";

struct Installed {
    program: std::path::PathBuf,
    made_dir: bool,
}

impl Installed {
    fn new(name: &str, script: &str) -> Installed {
        let dir = std::path::Path::new(OUR_LIBEXEC);
        let made_dir = !dir.exists();
        std::fs::create_dir_all(dir).expect("libexec dir");
        let program = dir.join(format!("table-{name}"));
        std::fs::write(&program, format!("#!/usr/bin/python3\n{script}")).expect("write");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        Installed { program, made_dir }
    }
}

impl Drop for Installed {
    fn drop(&mut self) {
        // A backend a failed test left behind (one orphaned by a parent killed with SIGKILL
        // hangs for ever).
        kill_running(&self.program.display().to_string());
        let _ = std::fs::remove_file(&self.program);
        if self.made_dir {
            // Only if empty: another test may have put its own program there meanwhile.
            let _ = std::fs::remove_dir(OUR_LIBEXEC);
        }
    }
}

/// The processes running `program` (a script: its command line is the interpreter's, with the
/// script's path after it in place of the table's name).
/// The daemon, as root behind `prefix`, with table `hangs` served by [`HANGS`] (installed as
/// `table-TAG-PID`) and one backend running it; None (skipped) where that cannot run.
struct Hanging {
    d: Daemon,
    /// The backend's name in the configuration.
    backend: String,
    program: String,
    /// The backend's.
    pid: u32,
    /// To be dropped after the daemon: what it left running is killed, the program removed.
    installed: Installed,
}

fn hanging(tag: &str, prefix: &[&str]) -> Option<Hanging> {
    let users = ["opensmtpq", "opensmtpd"]
        .iter()
        .all(|u| nix::unistd::User::from_name(u).ok().flatten().is_some());
    if !require(
        is_root() && users && std::path::Path::new("/usr/bin/python3").exists(),
        "needs root (the daemon's parent), the opensmtpq and opensmtpd users (Debian's \
         opensmtpd) and /usr/bin/python3 (the fake backend)",
    ) {
        return None;
    }
    let backend = format!("{tag}-{}", std::process::id());
    let installed = Installed::new(&backend, HANGS);
    let program = installed.program.display().to_string();
    let conf = format!(
        "table hangs {backend}:/dev/null\n\
         listen on 127.0.0.1 port @PORT@\n\
         action \"out\" relay host smtp://127.0.0.1:1\n\
         match from any for domain <hangs> action \"out\"\n"
    );
    let d = Daemon::launch(
        prefix,
        env!("CARGO_BIN_EXE_smtpd"),
        &conf,
        &[],
        Some("127.0.0.1:1"),
    );
    let pids = running(&program);
    assert_eq!(pids.len(), 1, "one backend: {pids:?}");
    Some(Hanging {
        d,
        backend,
        program,
        pid: pids[0],
        installed,
    })
}

/// A session whose RCPT's lookup the backend never answers (the client, to be kept open).
fn hang_a_lookup(d: &Daemon) -> Client {
    let mut c = Client::connect(d.addr());
    c.reply();
    c.cmd("EHLO client.example");
    c.cmd("MAIL FROM:<sender@remote.test>");
    c.send(b"RCPT TO:<dave@hang.test>\r\n");
    std::thread::sleep(Duration::from_millis(300));
    c
}

/// Issue 15: in the split daemon the root parent starts the backends (the sandboxed engine
/// cannot exec), so the engine cannot kill one itself. A backend that stops answering is killed
/// by the parent at the engine's request (`KillTable`, by the handle `SpawnTable` gave): its
/// lookup tempfails after the engine's time limit as before, the hung process is gone from
/// /proc, and the next lookup gets a fresh backend. Without this the hung one lived on, one more
/// per restart.
#[test]
fn a_hung_backend_of_the_split_daemon_is_killed_by_the_parent_and_replaced() {
    let table = "hangs";
    // `_installed` first: dropped last, after the daemon.
    let Some(Hanging {
        installed: _installed,
        mut d,
        backend,
        program,
        pid: first,
    }) = hanging("hangtest", &["env", "SMTPD_TABLE_TIMEOUT=2"])
    else {
        return;
    };
    assert_eq!(parent_of(first), Some(d.pid()), "the parent's child");

    let mut c = Client::connect(d.addr());
    c.reply();
    c.cmd("EHLO client.example");
    c.cmd("MAIL FROM:<sender@remote.test>");
    let r = c.cmd("RCPT TO:<bob@ok.test>");
    assert!(r.starts_with("250"), "{r}\n{}", d.log().join("\n"));
    let t0 = std::time::Instant::now();
    let r = c.cmd("RCPT TO:<bob@hang.test>");
    let waited = t0.elapsed();
    assert!(
        r.starts_with('4'),
        "a temporary failure: {r}\n{}",
        d.log().join("\n")
    );
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_secs(30),
        "after the time limit: {waited:?}"
    );
    // The lines were written before the 4xx, but reach the log through a pipe of their own.
    let down = format!("warn: table-proc: table \"{table}\": backend \"{backend}\" is down");
    let killed = format!(
        "debug: table-proc: table \"{table}\": backend process {first} killed for the engine"
    );
    d.wait_log_for(Duration::from_secs(5), |l| l.starts_with(&down));
    let log = d.log();
    for want in ["warn: table-proc: no answer in 2s", killed.as_str()] {
        assert!(log.iter().any(|l| l == want), "no {want:?} in {log:#?}");
    }
    // The parent reaped it before it answered the engine, which was before the 4xx.
    assert!(
        cmdline(first).is_none_or(|l| !l.contains(&program)),
        "the hung backend {first} still runs: {:?}",
        std::fs::read_to_string(format!("/proc/{first}/status"))
    );
    assert!(running(&program).is_empty(), "{:?}", running(&program));

    // Its wait (1 s) over, the next lookup starts a fresh backend and is answered.
    std::thread::sleep(Duration::from_millis(1100));
    let t0 = std::time::Instant::now();
    loop {
        let r = c.cmd("RCPT TO:<carol@ok.test>");
        if r.starts_with("250") {
            break;
        }
        assert!(
            r.starts_with('4') && t0.elapsed() < Duration::from_secs(10),
            "not started again: {r}\n{}",
            d.log().join("\n")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    d.wait_log(|l| {
        l == format!("info: table-proc: table \"{table}\": backend \"{backend}\" restarted")
    });
    let second = running(&program);
    assert_eq!(second.len(), 1, "{second:?}");
    assert_ne!(second[0], first);
    assert_eq!(parent_of(second[0]), Some(d.pid()));
    c.cmd("QUIT");
    drop(c);

    // A reload starts new backends and closes the old ones' sockets; one that does not leave
    // then (this one ignores it) is killed by the parent once its time to leave is over.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(d.pid() as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .expect("SIGHUP");
    d.wait_log(|l| l.contains("info: smtpd: configuration reloaded from"));
    let killed = format!(
        "debug: table-proc: table \"{table}\": backend process {} killed for the engine",
        second[0]
    );
    d.wait_log_for(Duration::from_secs(20), |l| l == killed);
    assert!(
        cmdline(second[0]).is_none(),
        "the old backend {} still runs",
        second[0]
    );
    let third = running(&program);
    assert_eq!(third.len(), 1, "the reloaded table's backend: {third:?}");
    assert_ne!(third[0], second[0]);
    let second = third;

    // Hung again when the daemon stops: it does not outlive the daemon (killed at the time
    // limit, or by the parent when the engine is gone).
    let _c = hang_a_lookup(&d);
    d.stop();
    let t0 = std::time::Instant::now();
    while cmdline(second[0]).is_some() && t0.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        cmdline(second[0]).is_none(),
        "the backend outlived the daemon: {:?}",
        std::fs::read_to_string(format!("/proc/{}/status", second[0]))
    );
}

/// A backend hung in a lookup (it ignores SIGTERM and the end of its socket) dies with the
/// daemon that started it when that is killed with SIGKILL, split (the root parent started it;
/// the engine dies with the parent too) or not (`SMTPD_USER=root`: the daemon started it).
/// Without the parent-death signal it was orphaned, one more at each restart of the daemon.
fn a_hung_backend_dies_with_its_daemon_killed_by_sigkill(split: bool) {
    let how = if split { "split" } else { "unsplit" };
    let prefix: &[&str] = if split {
        &[]
    } else {
        &["env", "SMTPD_USER=root"]
    };
    let Some(Hanging {
        installed: _installed,
        d,
        program,
        pid: hung,
        ..
    }) = hanging(&format!("hangkill{how}"), prefix)
    else {
        return;
    };
    let engine = common::procfs::children(d.pid())
        .iter()
        .any(|p| p.cmdline.starts_with("smtpd: engine"));
    assert_eq!(engine, split, "{how}: an engine process");
    assert_eq!(parent_of(hung), Some(d.pid()), "the daemon's child");

    // 60 s before the engine gives up on it.
    let _c = hang_a_lookup(&d);
    assert!(running(&program) == [hung], "{:?}", running(&program));

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(d.pid() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("SIGKILL");
    let t0 = std::time::Instant::now();
    while cmdline(hung).is_some_and(|l| l.contains(&program))
        && t0.elapsed() < Duration::from_secs(5)
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        running(&program).is_empty(),
        "{how}: the hung backend {hung} outlived its daemon killed by SIGKILL (its parent now \
         {:?})",
        parent_of(hung)
    );
    eprintln!(
        "{how}: the backend was gone {:?} after the SIGKILL",
        t0.elapsed()
    );
}

#[test]
fn a_hung_backend_of_the_split_daemon_dies_with_its_parent_killed_by_sigkill() {
    a_hung_backend_dies_with_its_daemon_killed_by_sigkill(true);
}

#[test]
fn a_hung_backend_of_the_unsplit_daemon_dies_with_it_killed_by_sigkill() {
    a_hung_backend_dies_with_its_daemon_killed_by_sigkill(false);
}
