//! The daemon's side of the delivery process (see `process.rs`): starting it, sending it jobs
//! with their message descriptors, and matching its replies to the deliveries waiting for them.
//!
//! Sends are non-blocking from the delivery's task; replies are read by one plain thread
//! ("delivery-replies") and handed over through oneshot channels, so that this works from any
//! tokio runtime (tests run one per test) and costs no tokio reactor registration. When the
//! delivery process dies, the thread fails every job it had (TempFail: the scheduler retries
//! them) and reaps it; the next delivery starts a new one.

use std::collections::HashMap;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::{socketpair, AddressFamily, MsgFlags, SockFlag, SockType};
use tokio::sync::oneshot;

use super::job::{self, Done, Job, Packet, MAX_PACKET};
use super::process::{ENV_FD, NAME};
use super::ExitKind;
use crate::sys::log;

const EX_OSERR: i32 = 71;
const EX_TEMPFAIL: i32 = 75;

/// How much longer than a job's own timeout we wait for its reply before giving up on it (the
/// delivery process kills the worker at the timeout; this only covers a wedged process).
const REPLY_GRACE: Duration = Duration::from_secs(30);

static PROGRAM: OnceLock<PathBuf> = OnceLock::new();
static CONNECTION: Mutex<Option<Arc<Connection>>> = Mutex::new(None);
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The binary started as the delivery process: `smtpd` itself. The daemon names
/// `/proc/self/exe` (see [`start`]); a test program, which is not `smtpd`, names the real one.
/// Never defaulted: started in a test binary, the "delivery process" would run the tests again.
pub fn set_program(path: PathBuf) {
    let _ = PROGRAM.set(path);
}

/// Starts the delivery process now, from our own binary: `/proc/self/exe` is the very file the
/// daemon runs even if a package upgrade replaced it since (the two must speak the same
/// protocol). The daemon calls it at start, while it is still small and single-threaded.
pub fn start() -> std::io::Result<()> {
    set_program(PathBuf::from("/proc/self/exe"));
    connection().map(|_| ())
}

struct Connection {
    sock: OwnedFd,
    /// Jobs sent and not answered yet; `None` once the delivery process is gone.
    pending: Mutex<Option<HashMap<u64, oneshot::Sender<Done>>>>,
}

impl Connection {
    fn alive(&self) -> bool {
        self.pending.lock().map(|p| p.is_some()).unwrap_or(false)
    }

    /// Registers a job; `false` if the delivery process is gone.
    fn expect(&self, id: u64, tx: oneshot::Sender<Done>) -> bool {
        match self.pending.lock() {
            Ok(mut p) => match p.as_mut() {
                Some(map) => {
                    map.insert(id, tx);
                    true
                }
                None => false,
            },
            Err(_) => false,
        }
    }

    fn take(&self, id: u64) -> Option<oneshot::Sender<Done>> {
        self.pending.lock().ok()?.as_mut()?.remove(&id)
    }

    /// Marks it gone; every waiting delivery gets its failure (their senders are dropped).
    fn close(&self) {
        if let Ok(mut p) = self.pending.lock() {
            p.take();
        }
    }
}

/// The running delivery process, started if there is none (or the last one died).
fn connection() -> std::io::Result<Arc<Connection>> {
    let mut slot = CONNECTION
        .lock()
        .map_err(|_| std::io::Error::other("delivery process lock poisoned"))?;
    if let Some(c) = slot.as_ref().filter(|c| c.alive()) {
        return Ok(c.clone());
    }
    let c = spawn()?;
    *slot = Some(c.clone());
    Ok(c)
}

fn spawn() -> std::io::Result<Arc<Connection>> {
    let (sock, child) = match crate::privsep::engine() {
        // The engine cannot start a root process: its parent does, and hands over the socket.
        Some(client) => (from_parent(client)?, None),
        None => {
            let (sock, child) = spawn_process()?;
            (sock, Some(child))
        }
    };
    let conn = Arc::new(Connection {
        sock,
        pending: Mutex::new(Some(HashMap::new())),
    });
    let reader = conn.clone();
    let pid = child.as_ref().map(|c| c.id());
    let spawned = std::thread::Builder::new()
        .name("delivery-replies".into())
        .spawn(move || read_replies(reader, child));
    if let Err(e) = spawned {
        // The thread owned the child: it is dropped with the closure; the socket's EOF ends it.
        conn.close();
        return Err(e);
    }
    if let Some(pid) = pid {
        log::debug(&format!("debug: delivery: process started, pid {pid}"));
    }
    Ok(conn)
}

/// A delivery process started by the parent of a split daemon: our end of its socket.
fn from_parent(client: &crate::privsep::Client) -> std::io::Result<OwnedFd> {
    use crate::privsep::proto::{Reply, Request};
    match client.control.call(&Request::DeliveryProcess, &[]) {
        Ok((Reply::Done { .. }, mut fds)) if fds.len() == 1 => fds
            .pop()
            .ok_or_else(|| std::io::Error::other("no delivery socket")),
        Ok((Reply::Failed(why), _)) => Err(std::io::Error::other(why)),
        Ok(_) => Err(std::io::Error::other("delivery process: unexpected reply")),
        Err(e) => Err(std::io::Error::other(e)),
    }
}

/// Starts a delivery process from [`set_program`]'s binary: our end of its socket, and the
/// process (whoever keeps it reaps it). The parent of a split daemon calls this for its engine.
pub fn spawn_process() -> std::io::Result<(OwnedFd, Child)> {
    let (ours, theirs) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )?;
    let fd = theirs.as_raw_fd();
    let Some(program) = PROGRAM.get() else {
        return Err(std::io::Error::other("no delivery program"));
    };
    let mut cmd = Command::new(program);
    // Nothing but the socket: a fresh, small process with no configuration, no tables, no
    // runtime; everything a job needs comes with the job.
    cmd.arg0(NAME.to_string_lossy().as_ref())
        .env_clear()
        .env(ENV_FD, fd.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    // SAFETY: between fork and exec, fcntl is async-signal-safe; it keeps this one
    // descriptor (close-on-exec like all of ours) open across the exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::fcntl(fd, libc::F_SETFD, 0) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn()?;
    drop(theirs);
    Ok((ours, child))
}

/// The reply thread: hands each `Done` to its waiting delivery. At EOF (the delivery process
/// exited) fails the rest and reaps it.
fn read_replies(conn: Arc<Connection>, child: Option<Child>) {
    loop {
        match job::recv(conn.sock.as_fd(), MsgFlags::empty()) {
            Ok(Packet::Data(data, _)) => match Done::decode(&data) {
                Ok(done) => {
                    if let Some(tx) = conn.take(done.id) {
                        let _ = tx.send(done);
                    }
                }
                Err(e) => log::warn(&format!("warn: delivery: bad reply: {e}")),
            },
            Err(Errno::EMSGSIZE) => log::warn("warn: delivery: reply too long"),
            Ok(Packet::Eof) | Err(_) => break,
        }
    }
    conn.close();
    // The parent of a split daemon reaps its delivery processes, and says how they ended.
    if let Some(child) = child {
        reap(child);
    }
}

/// Waits for a delivery process that ended and says how. Status 0 is its orderly end: it saw
/// the daemon close its channel (a stop, or the engine gone), with nothing left to retry, so
/// it says nothing (a stop's last line is `Exiting`, as 6.8's); anything else is a warning.
pub fn reap(mut child: Child) {
    match child.wait() {
        Ok(st) if st.success() => {}
        other => {
            let how = match other {
                Ok(st) => st.to_string(),
                Err(e) => e.to_string(),
            };
            log::warn(&format!(
                "warn: delivery process {} exited ({how}); in-flight deliveries will be retried",
                child.id()
            ))
        }
    }
}

fn failure(exit: ExitKind, text: Option<&str>) -> Done {
    Done {
        id: 0,
        exit,
        text: text.map(|t| t.as_bytes().to_vec()),
        fully_written: true,
        worker: 0,
        new_worker: false,
    }
}

/// Runs `job` on `message` in a worker of its credentials and returns how it ended.
pub async fn deliver(mut job: Job, message: File) -> Done {
    job.id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let data = job.encode();
    if data.len() > MAX_PACKET {
        return failure(
            ExitKind::Exited(EX_TEMPFAIL),
            Some("delivery request too large"),
        );
    }
    let now = Instant::now();
    let deadline = now
        .checked_add(job.timeout.saturating_add(REPLY_GRACE))
        .unwrap_or(now + Duration::from_secs(365 * 86400));
    // A second try only when the first found the delivery process dead before it took the job
    // (then nothing ran): the new one gets it.
    for _ in 0..2 {
        let conn = match connection() {
            Ok(c) => c,
            Err(e) => {
                return failure(
                    ExitKind::Exited(EX_OSERR),
                    Some(&format!("fork: {}", super::strerror(&e))),
                )
            }
        };
        let (tx, rx) = oneshot::channel();
        if !conn.expect(job.id, tx) {
            continue;
        }
        match send(&conn, &data, &message, deadline).await {
            Ok(()) => {}
            // It is gone (its reply thread will reap it): the next try starts a new one.
            Err(Errno::EPIPE | Errno::ECONNRESET | Errno::ENOTCONN) => {
                conn.take(job.id);
                conn.close();
                continue;
            }
            // Anything else (still full at the deadline): this job fails, the process stays.
            Err(e) => {
                conn.take(job.id);
                return failure(
                    ExitKind::Exited(EX_OSERR),
                    Some(&format!("sendmsg: {}", e.desc())),
                );
            }
        }
        drop(message);
        return match tokio::time::timeout_at(deadline.into(), rx).await {
            Ok(Ok(done)) => done,
            Ok(Err(_)) => failure(
                ExitKind::Exited(EX_TEMPFAIL),
                Some("delivery process exited"),
            ),
            Err(_) => {
                conn.take(job.id);
                failure(ExitKind::Signaled(libc::SIGALRM), None)
            }
        };
    }
    failure(
        ExitKind::Exited(EX_TEMPFAIL),
        Some("delivery process unavailable"),
    )
}

/// Sends without blocking the runtime's thread: a full socket (the delivery process is busy
/// forking) is retried shortly, until the deadline.
async fn send(
    conn: &Connection,
    data: &[u8],
    message: &File,
    deadline: Instant,
) -> Result<(), Errno> {
    loop {
        match job::send(
            conn.sock.as_fd(),
            data,
            Some(message.as_raw_fd()),
            MsgFlags::MSG_DONTWAIT,
        ) {
            Err(Errno::EAGAIN) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            other => return other,
        }
    }
}
