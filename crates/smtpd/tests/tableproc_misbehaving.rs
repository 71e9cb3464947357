//! A backend that breaks the protocol, played by a small Python program on the same socket the
//! real ones get (stdin): a `PROC_TABLE_FAIL` answer fails that lookup only; an over-long frame,
//! a value without its NUL or a backend that exits are each a lost backend (its lookup fails,
//! the next one starts it again once its wait is over), never a panic or an unbounded read.
//! Then, in the daemon split as root, a backend that hangs and ignores SIGTERM and the end of
//! its socket: the parent kills it at the engine's request, after a lookup's time limit and
//! after a reload.

mod common;

use common::procfs::{cmdline, parent_of, pids};
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

#[test]
fn a_misbehaving_backend_is_dropped_and_started_again() {
    let have_python = std::process::Command::new("python3")
        .arg("-c")
        .arg("pass")
        .output()
        .is_ok_and(|o| o.status.success());
    if !require(have_python, "needs python3 (the fake backend)") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let prog = dir.path().join("table-fake");
    std::fs::write(&prog, format!("#!/usr/bin/env python3\n{FAKE}")).expect("write");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let spec = Spec {
        table: "fake".into(),
        backend: "fake".into(),
        arg: None,
        program: prog,
        who: None,
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
        let _ = std::fs::remove_file(&self.program);
        if self.made_dir {
            // Only if empty: another test may have put its own program there meanwhile.
            let _ = std::fs::remove_dir(OUR_LIBEXEC);
        }
    }
}

/// The processes running `program` (a script: its command line is the interpreter's, with the
/// script's path after it in place of the table's name).
fn running(program: &str) -> Vec<u32> {
    pids()
        .into_iter()
        .filter(|&p| cmdline(p).is_some_and(|c| c.contains(program)))
        .collect()
}

/// Issue 15: in the split daemon the root parent starts the backends (the sandboxed engine
/// cannot exec), so the engine cannot kill one itself. A backend that stops answering is killed
/// by the parent at the engine's request (`KillTable`, by the handle `SpawnTable` gave): its
/// lookup tempfails after the engine's time limit as before, the hung process is gone from
/// /proc, and the next lookup gets a fresh backend. Without this the hung one lived on, one more
/// per restart.
#[test]
fn a_hung_backend_of_the_split_daemon_is_killed_by_the_parent_and_replaced() {
    let users = ["opensmtpq", "opensmtpd"]
        .iter()
        .all(|u| nix::unistd::User::from_name(u).ok().flatten().is_some());
    if !require(
        is_root() && users && std::path::Path::new("/usr/bin/python3").exists(),
        "needs root (the split daemon), the opensmtpq and opensmtpd users (Debian's opensmtpd) \
         and /usr/bin/python3 (the fake backend)",
    ) {
        return;
    }
    let backend = format!("hangtest-{}", std::process::id());
    let installed = Installed::new(&backend, HANGS);
    let program = installed.program.display().to_string();
    let table = "hangs";
    let conf = format!(
        "table {table} {backend}:/dev/null\n\
         listen on 127.0.0.1 port @PORT@\n\
         action \"out\" relay host smtp://127.0.0.1:1\n\
         match from any for domain <{table}> action \"out\"\n"
    );
    let mut d = Daemon::launch(
        &["env", "SMTPD_TABLE_TIMEOUT=2"],
        env!("CARGO_BIN_EXE_smtpd"),
        &conf,
        &[],
        Some("127.0.0.1:1"),
    );
    let first = running(&program);
    assert_eq!(first.len(), 1, "one backend: {first:?}");
    let first = first[0];
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
    let mut c = Client::connect(d.addr());
    c.reply();
    c.cmd("EHLO client.example");
    c.cmd("MAIL FROM:<sender@remote.test>");
    c.send(b"RCPT TO:<dave@hang.test>\r\n");
    std::thread::sleep(Duration::from_millis(300));
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
