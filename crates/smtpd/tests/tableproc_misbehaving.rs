//! A backend that breaks the protocol, played by a small Python program on the same socket the
//! real ones get (stdin): a `PROC_TABLE_FAIL` answer fails that lookup only; an over-long frame,
//! a value without its NUL or a backend that exits are each a lost backend (its lookup fails,
//! the next one starts it again once its wait is over), never a panic or an unbounded read.

mod common;

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
