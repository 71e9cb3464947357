//! Other servers a test runs beside ours (Dovecot's LMTP, its submission service...): started in
//! a process group of their own, ready when they greet, stopped with all their children.

#![allow(dead_code)]

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

/// Waits until `addr` answers with a `220` greeting; panics with the server's log (`log`) when
/// `child` exits first or `limit` passes (`what` names the service in that message). The
/// deadline, for whatever else the caller waits for.
pub fn wait_greeting(
    child: &mut Child,
    addr: SocketAddr,
    limit: Duration,
    program: &str,
    what: &str,
    log: &Path,
) -> Instant {
    let deadline = Instant::now() + limit;
    let read_log = || std::fs::read_to_string(log).unwrap_or_default();
    loop {
        if let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let mut b = [0u8; 3];
            if s.read_exact(&mut b).is_ok() && &b == b"220" {
                return deadline;
            }
        }
        if let Ok(Some(st)) = child.try_wait() {
            panic!("{program} exited ({st}); log:\n{}", read_log());
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not greet in {} s; log:\n{}",
            limit.as_secs(),
            read_log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// SIGTERM to the child's process group (it was started with `process_group(0)`), up to 10 s for
/// it to exit, then SIGKILL to whatever is left of the group (a master's children exit with it).
pub fn stop_group(child: &mut Child) {
    use nix::sys::signal::{killpg, Signal};
    let group = nix::unistd::Pid::from_raw(child.id() as i32);
    let _ = killpg(group, Signal::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = killpg(group, Signal::SIGKILL);
    let _ = child.kill();
    let _ = child.wait();
}
