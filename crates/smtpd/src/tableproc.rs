//! External table backends (`table NAME sqlite:/etc/mail/sqlite.conf`): the `table-BACKEND`
//! programs of opensmtpd-extras, started and asked as OpenSMTPD 6.8's `table_proc.c` does,
//! over the protocol of `rsmtpd_protocol::table_protocol`.
//!
//! Started at daemon start, one process per table (as 6.8's lookup process does when it gets
//! its configuration): a socketpair, the child's stdin is its end, `argv[0]` the table's name
//! and `argv[1]` what follows the colon; it runs as OpenSMTPD's user (`opensmtpd` on Debian:
//! 6.8's lookup process has dropped to it before it forks backends), with our environment and
//! stderr (the extras log there as `NAME[PID]: ...`). In a split daemon the root parent starts
//! it for the engine ([`spawn_by_parent`]): the sandboxed engine cannot exec, and the user
//! switch needs root. A backend that cannot be started or
//! opened stops the daemon at start, as in 6.8. Every backend dies with the process that
//! started it (`PR_SET_PDEATHSIG`), so none outlives a daemon killed by SIGKILL: all are forked
//! by the one thread that lives as long as that process ([`crate::sys::spawn`]).
//!
//! Requests: the backend answers one at a time, in order, so each [`Backend`] has one
//! connection behind a mutex, and a lookup is one blocking round trip under it. Callers run
//! lookups from async sessions inside `routing::lookup::blocking` (`block_in_place`): the
//! worker thread hands its other tasks to another thread while it waits, so the runtime is not
//! stalled, and lookups to one backend queue on its mutex as 6.8's requests queue on its single
//! lookup process. A round trip has a time limit ([`ANSWER_LIMIT`], or `SMTPD_TABLE_TIMEOUT`
//! seconds; 6.8 has none and waits forever).
//!
//! Failures (on purpose unlike 6.8, which exits with `table-proc: exiting` when a backend dies
//! or breaks the protocol): the lookup that met it fails temporarily (mail is deferred: `451`/
//! `421`-class answers, never misrouted), the backend is killed and its death logged with 6.8's
//! `warn: table-proc: ...` line (in a split daemon the parent kills it, by the handle it gave
//! for it: [`ForEngine`]), and the next lookup starts it again, after a wait that doubles
//! from 1 s to 60 s while it keeps failing. Lookups in between fail temporarily at once. An
//! answer of type `PROC_TABLE_FAIL` (which no extras backend sends) fails that lookup only.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use rsmtpd_protocol::table_protocol::{self as proto, Answer, Frame, Service};

use crate::sys::log;

/// How long a backend may take to answer one request before it is taken for dead.
pub const ANSWER_LIMIT: Duration = Duration::from_secs(60);
/// How long a backend whose socket we closed may take to leave before it is killed.
const LEAVE_LIMIT: Duration = Duration::from_secs(5);
/// How long the `OPEN` handshake may take (the backend reads its configuration and connects to
/// its database first).
const OPEN_LIMIT: Duration = Duration::from_secs(60);
/// First and longest wait before starting a failed backend again.
const BACKOFF_FIRST: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// A backend that served this long is healthy again: its next failure waits [`BACKOFF_FIRST`].
const HEALTHY_AFTER: Duration = Duration::from_secs(60);

/// OpenSMTPD's `SMTPD_USER`: `opensmtpd` on Debian, `_smtpd` elsewhere.
const SMTPD_USERS: &[&str] = &["opensmtpd", "_smtpd"];

/// Who a backend runs as: the user's ids and groups (read before the fork: nothing after it may
/// read /etc/group).
#[derive(Debug, Clone)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

/// What starts one backend: everything 6.8's `fork_proc_backend()` takes.
#[derive(Debug, Clone)]
pub struct Spec {
    /// The table's name: the process's `argv[0]` and the name in `OPEN`.
    pub table: String,
    /// `sqlite` of `sqlite:/etc/mail/sqlite.conf`.
    pub backend: String,
    /// What follows the colon: `argv[1]`, absent when the config had none.
    pub arg: Option<String>,
    pub program: PathBuf,
    pub who: Option<Identity>,
}

/// A started backend process: our end of its socket, and how to stop it.
pub struct Spawned {
    pub sock: UnixStream,
    pub process: Process,
}

/// A backend process, as whoever started it knows it.
pub enum Process {
    /// We forked it.
    Local(Child),
    /// The parent of a split daemon started it for us (the engine may not exec, and may not
    /// signal a process of another user): it kills it when asked by this handle.
    Parent { handle: u64, pid: u32 },
}

impl Process {
    fn pid(&self) -> u32 {
        match self {
            Process::Local(c) => c.id(),
            Process::Parent { pid, .. } => *pid,
        }
    }
}

/// `SMTPD_TABLE_TIMEOUT=SECONDS` (tests make a hung backend fail in seconds, not a minute), else
/// [`ANSWER_LIMIT`].
fn answer_limit() -> Duration {
    static LIMIT: OnceLock<Duration> = OnceLock::new();
    *LIMIT.get_or_init(|| {
        std::env::var("SMTPD_TABLE_TIMEOUT")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|&s| s > 0)
            .map_or(ANSWER_LIMIT, Duration::from_secs)
    })
}

/// Starts backends. The default forks here; a daemon that may not exec once it serves (the
/// privilege-separated engine) installs one that asks its parent, with [`set_spawner`].
pub type Spawner = Box<dyn Fn(&Spec) -> std::io::Result<Spawned> + Send + Sync>;

static SPAWNER: OnceLock<Spawner> = OnceLock::new();

/// Installs how backends are started (once, before the first start).
pub fn set_spawner(s: Spawner) -> bool {
    SPAWNER.set(s).is_ok()
}

/// `PATH_LIBEXEC/table-BACKEND`, as `table_create()` stat()s it (our own libexec directory
/// second, as the parser looks there too).
pub fn program(backend: &str) -> Option<PathBuf> {
    crate::sys::system::LIBEXEC_DIRS
        .iter()
        .map(|d| std::path::Path::new(d).join(format!("table-{backend}")))
        .find(|p| std::fs::metadata(p).is_ok())
}

/// Who backends run as when we are root: OpenSMTPD's user. Not root: as we are.
pub fn identity() -> Result<Option<Identity>, String> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(None);
    }
    let Some(user) = SMTPD_USERS
        .iter()
        .find_map(|u| nix::unistd::User::from_name(u).ok().flatten())
    else {
        return Err(format!("unknown user {}", SMTPD_USERS[0]));
    };
    let name = std::ffi::CString::new(user.name.clone()).map_err(|e| e.to_string())?;
    let groups = nix::unistd::getgrouplist(&name, user.gid)
        .map(|g| g.into_iter().map(|g| g.as_raw()).collect())
        .unwrap_or_else(|_| vec![user.gid.as_raw()]);
    Ok(Some(Identity {
        uid: user.uid.as_raw(),
        gid: user.gid.as_raw(),
        groups,
    }))
}

/// `fork_proc_backend()`: the program with the socket as its stdin, forked on the process's
/// spawn thread ([`crate::sys::spawn`]), so that it dies with this process.
pub fn spawn_here(spec: &Spec) -> std::io::Result<Spawned> {
    let spec = spec.clone();
    crate::sys::spawn::on_spawn_thread(move || fork_backend(&spec))
}

/// The fork and exec of one backend, on the spawn thread.
fn fork_backend(spec: &Spec) -> std::io::Result<Spawned> {
    let parent = nix::unistd::getpid();
    let (ours, theirs) = UnixStream::pair()?;
    let mut cmd = Command::new(&spec.program);
    cmd.arg0(&spec.table);
    if let Some(a) = &spec.arg {
        cmd.arg(a);
    }
    cmd.stdin(Stdio::from(std::os::fd::OwnedFd::from(theirs)))
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit());
    // Built before the fork: the child of a threaded process may not allocate.
    let who = spec.who.as_ref().map(|w| {
        let groups: Vec<nix::unistd::Gid> = w
            .groups
            .iter()
            .map(|&g| nix::unistd::Gid::from_raw(g))
            .collect();
        (
            groups,
            nix::unistd::Gid::from_raw(w.gid),
            nix::unistd::Uid::from_raw(w.uid),
        )
    });
    // SAFETY: between fork and exec only setgroups, setresgid, setresuid, prctl and getppid,
    // async-signal-safe system calls on values prepared before the fork.
    unsafe {
        cmd.pre_exec(move || {
            if let Some((groups, gid, uid)) = &who {
                nix::unistd::setgroups(groups)?;
                nix::unistd::setresgid(*gid, *gid, *gid)?;
                nix::unistd::setresuid(*uid, *uid, *uid)?;
            }
            // Die with whoever started us (the split daemon's root parent, or the unsplit
            // daemon): a backend hung in a lookup never sees its socket close, and outlived a
            // parent killed by SIGKILL, one more orphan at each restart of the daemon (6.8's
            // too).
            crate::sys::spawn::die_with(parent)
        });
    }
    let child = cmd.spawn()?;
    Ok(Spawned {
        sock: ours,
        process: Process::Local(child),
    })
}

/// The engine of a split daemon: the parent starts the backend (the engine may not exec) by
/// the table's backend name and argument; the program and the user are the parent's choice
/// (`table-BACKEND` of the libexec directories, OpenSMTPD's user), never a path of ours.
pub fn spawn_by_parent(spec: &Spec) -> std::io::Result<Spawned> {
    use crate::privsep::proto::{Reply, Request};
    let Some(client) = crate::privsep::engine() else {
        return spawn_here(spec);
    };
    let req = Request::SpawnTable {
        table: spec.table.clone(),
        backend: spec.backend.clone(),
        arg: spec.arg.clone(),
    };
    match client.control.call(&req, &[]) {
        Ok((Reply::Table { handle, pid }, mut fds)) if fds.len() == 1 => match fds.pop() {
            Some(fd) => Ok(Spawned {
                sock: UnixStream::from(fd),
                process: Process::Parent { handle, pid },
            }),
            None => Err(std::io::Error::other("no backend socket")),
        },
        Ok((Reply::Failed(why), _)) => Err(std::io::Error::other(why)),
        Ok(_) => Err(std::io::Error::other("unexpected reply")),
        Err(e) => Err(std::io::Error::other(e)),
    }
}

/// Asks the parent to kill the backend of that handle (it reaps it before it answers). A failed
/// call needs nothing more: the parent is gone, and the engine dies with it (PR_SET_PDEATHSIG).
fn kill_by_parent(handle: u64) {
    if let Some(client) = crate::privsep::engine() {
        let _ = client
            .control
            .call(&crate::privsep::proto::Request::KillTable { handle }, &[]);
    }
}

/// The parent's side of [`spawn_by_parent`]: the backends it started for the engine, by handle.
///
/// Why handles: the engine is less trusted than the parent, so it may only have a process killed
/// that the parent started for it and that still runs. A pid would not say that (once reaped, its
/// number may be another process's), a handle from a counter is never given twice, and an entry
/// is removed before its child is reaped, so the pid of every entry is still that backend's. The
/// `KillTable` that names a handle already gone (the backend left by itself) is refused.
#[derive(Default)]
pub struct ForEngine {
    next: AtomicU64,
    live: Arc<Mutex<HashMap<u64, (String, Child)>>>,
}

impl ForEngine {
    /// `SpawnTable`: checks the name, starts the backend as OpenSMTPD's user, and reaps it when
    /// it ends by itself (it ends when the engine closes its socket). Its handle, pid and socket.
    pub fn spawn(
        &self,
        table: &str,
        backend: &str,
        arg: Option<&str>,
    ) -> Result<(u64, u32, std::os::fd::OwnedFd), String> {
        let plain = !backend.is_empty()
            && !backend.starts_with('.')
            && backend
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
        if !plain {
            return Err(format!(
                "table_create: backend \"{backend}\" does not exist"
            ));
        }
        let Some(program) = program(backend) else {
            return Err(format!(
                "table_create: backend \"{backend}\" does not exist"
            ));
        };
        let spec = Spec {
            table: table.to_string(),
            backend: backend.to_string(),
            arg: arg.map(str::to_string),
            program,
            who: identity()?,
        };
        let s = spawn_here(&spec).map_err(|e| format!("fork: {e}"))?;
        let Process::Local(child) = s.process else {
            return Err("fork: no child".into());
        };
        let pid = child.id();
        let handle = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        if let Ok(mut live) = self.live.lock() {
            live.insert(handle, (spec.table.clone(), child));
        }
        let live = self.live.clone();
        // If the thread cannot start, the backend is reaped by `kill` or `kill_all`.
        let _ = std::thread::Builder::new()
            .name("table-reap".into())
            .spawn(move || reap_when_gone(&live, handle, pid));
        Ok((handle, pid, std::os::fd::OwnedFd::from(s.sock)))
    }

    /// `KillTable`: kills and reaps the backend of that handle, if it still runs; its pid.
    pub fn kill(&self, handle: u64) -> Option<u32> {
        let entry = self.live.lock().ok()?.remove(&handle);
        let (table, mut child) = entry?;
        let pid = child.id();
        let _ = child.kill();
        let _ = child.wait();
        log::debug(&format!(
            "debug: table-proc: table \"{table}\": backend process {pid} killed for the engine"
        ));
        Some(pid)
    }

    /// At the engine's end: every backend still there (a hung one would not see its socket
    /// close).
    pub fn kill_all(&self) {
        let all: Vec<(String, Child)> = match self.live.lock() {
            Ok(mut live) => live.drain().map(|(_, e)| e).collect(),
            Err(_) => return,
        };
        for (_, mut child) in all {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Waits, without reaping, until the backend has exited, then reaps it unless `kill` took it
/// first. Not reaping while waiting is what keeps the pid ours as long as its entry exists.
fn reap_when_gone(live: &Mutex<HashMap<u64, (String, Child)>>, handle: u64, pid: u32) {
    use nix::sys::wait::{waitid, Id, WaitPidFlag};
    let Ok(raw) = i32::try_from(pid) else {
        return;
    };
    // ECHILD: `kill` reaped it already; any other error: there is nothing to wait for either.
    while let Err(nix::errno::Errno::EINTR) = waitid(
        Id::Pid(nix::unistd::Pid::from_raw(raw)),
        WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT,
    ) {}
    let entry = live.lock().ok().and_then(|mut l| l.remove(&handle));
    if let Some((_, mut child)) = entry {
        let _ = child.wait();
    }
}

fn spawn(spec: &Spec) -> std::io::Result<Spawned> {
    match SPAWNER.get() {
        Some(s) => s(spec),
        None => spawn_here(spec),
    }
}

/// Why a request got no answer from the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Down {
    /// The backend is not running (it failed, and waits to be started again).
    NotRunning,
    /// It died or broke the protocol during this request (logged; it will be started again).
    Lost,
    /// The key cannot be sent (a NUL, or longer than 6.8's 1023 bytes).
    BadKey,
}

/// One table's backend.
pub struct Backend {
    spec: Spec,
    state: Mutex<State>,
}

struct State {
    conn: Option<Conn>,
    /// Not before this may a failed backend be started again.
    retry_at: Option<Instant>,
    backoff: Duration,
}

struct Conn {
    sock: UnixStream,
    /// None once killed through the parent (nothing is left to stop).
    process: Option<Process>,
    decoder: proto::Decoder,
    since: Instant,
}

impl Drop for Conn {
    fn drop(&mut self) {
        // Closing our end is what makes it leave (`warn: table-api: pipe closed`, as when 6.8's
        // lookup process exits); it is reaped out of the way so that no zombie stays, and killed
        // if it has not left within LEAVE_LIMIT.
        match self.process.take() {
            Some(Process::Local(mut child)) => {
                let _ = self.sock.shutdown(std::net::Shutdown::Both);
                let _ = std::thread::Builder::new()
                    .name("table-reap".into())
                    .spawn(move || {
                        let deadline = Instant::now() + LEAVE_LIMIT;
                        while Instant::now() < deadline {
                            if !matches!(child.try_wait(), Ok(None)) {
                                return;
                            }
                            std::thread::sleep(Duration::from_millis(50));
                        }
                        let _ = child.kill();
                        let _ = child.wait();
                    });
            }
            Some(Process::Parent { handle, .. }) => {
                // The parent reaps it; that it left shows here as the end of its socket (the
                // backend holds the only other end), so only one that stays is killed.
                let _ = self.sock.shutdown(std::net::Shutdown::Write);
                let Ok(sock) = self.sock.try_clone() else {
                    kill_by_parent(handle);
                    return;
                };
                let _ = std::thread::Builder::new()
                    .name("table-reap".into())
                    .spawn(move || {
                        if !leaves_within(sock, LEAVE_LIMIT) {
                            kill_by_parent(handle);
                        }
                    });
            }
            None => {
                let _ = self.sock.shutdown(std::net::Shutdown::Both);
            }
        }
    }
}

/// Whether the other end of `sock` closes within `limit` (what it still sends is dropped).
fn leaves_within(mut sock: UnixStream, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    let mut buf = [0u8; 512];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || sock.set_read_timeout(Some(left)).is_err() {
            return false;
        }
        match sock.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if read_again(&e) => {}
            // ECONNRESET and the like: its end is closed too.
            Err(_) => return true,
        }
    }
}

/// Whether a failed read of a backend's socket is to be tried again: a signal came, or the
/// socket's read timeout ran out (Linux says WouldBlock, other systems TimedOut); both callers
/// then check their own deadline.
fn read_again(e: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        e.kind(),
        ErrorKind::Interrupted | ErrorKind::WouldBlock | ErrorKind::TimedOut
    )
}

/// A protocol failure: 6.8's line for it.
struct Broken(String);

impl Conn {
    fn open(spec: &Spec) -> Result<Conn, String> {
        let s = spawn(spec).map_err(|e| format!("warn: table-proc: fork: {e}"))?;
        let mut c = Conn {
            sock: s.sock,
            process: Some(s.process),
            decoder: proto::Decoder::new(),
            since: Instant::now(),
        };
        let f = c
            .round_trip(&proto::open(&spec.table, std::process::id()), OPEN_LIMIT)
            .map_err(|b| b.0)?;
        proto::parse_open(&f).map_err(|e| e.log_line().to_string())?;
        Ok(c)
    }

    fn round_trip(&mut self, req: &[u8], limit: Duration) -> Result<Frame, Broken> {
        let deadline = Instant::now() + limit;
        let _ = self.sock.set_write_timeout(Some(limit));
        self.sock
            .write_all(req)
            .map_err(|e| Broken(format!("warn: table-proc: imsg_flush: {}", strerror(&e))))?;
        let mut buf = [0u8; 4096];
        loop {
            match self.decoder.next_frame() {
                Ok(Some(f)) => return Ok(f),
                Ok(None) => {}
                Err(e) => return Err(Broken(e.log_line().to_string())),
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Broken(format!(
                    "warn: table-proc: no answer in {}s",
                    limit.as_secs()
                )));
            }
            let _ = self.sock.set_read_timeout(Some(left));
            let want = self.decoder.wanted().min(buf.len());
            match self.sock.read(&mut buf[..want]) {
                Ok(0) => return Err(Broken("warn: table-proc: pipe closed".into())),
                Ok(n) => self.decoder.feed(&buf[..n]),
                Err(e) if read_again(&e) => {}
                Err(e) => {
                    return Err(Broken(format!(
                        "warn: table-proc: imsg_read: {}",
                        strerror(&e)
                    )))
                }
            }
        }
    }

    /// Kills a backend that is hung or out of step (closing would do for one that died). One
    /// of ours is reaped by the drop that follows; the parent reaps its own before it answers.
    fn kill(&mut self) {
        match &mut self.process {
            Some(Process::Local(c)) => {
                let _ = c.kill();
            }
            Some(Process::Parent { handle, .. }) => {
                kill_by_parent(*handle);
                self.process = None;
            }
            None => {}
        }
    }
}

fn strerror(e: &std::io::Error) -> String {
    rsmtpd_config::lexer::strerror(e)
}

impl Backend {
    /// `table_proc_open()` at daemon start: starts the backend and opens it. A failure is
    /// logged as 6.8 logs it (`warn: table-proc: imsg_read: ...`), and the error is 6.8's fatal
    /// line, with which the daemon stops.
    pub fn start(spec: Spec) -> Result<Backend, Vec<String>> {
        let conn = Conn::open(&spec).map_err(|l| {
            log::warn(&l);
            vec!["lookup: table-proc: exiting".to_string()]
        })?;
        Ok(Backend {
            spec,
            state: Mutex::new(State {
                conn: Some(conn),
                retry_at: None,
                backoff: BACKOFF_FIRST,
            }),
        })
    }

    pub fn table(&self) -> &str {
        &self.spec.table
    }

    /// One request and its answer, starting the backend again first if it failed before and
    /// its wait is over.
    fn call(
        &self,
        req: &[u8],
        parse: fn(&Frame) -> Result<Answer, proto::Error>,
    ) -> Result<Answer, Down> {
        // A poisoned lock only means a caller panicked mid-request: the connection is then
        // dropped below if it was left out of step.
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if st.conn.is_none() {
            if st.retry_at.is_some_and(|t| Instant::now() < t) {
                return Err(Down::NotRunning);
            }
            match Conn::open(&self.spec) {
                Ok(c) => {
                    log::info(&format!(
                        "info: table-proc: table \"{}\": backend \"{}\" restarted",
                        self.spec.table, self.spec.backend
                    ));
                    st.conn = Some(c);
                }
                Err(line) => {
                    log::warn(&line);
                    self.failed(&mut st);
                    return Err(Down::NotRunning);
                }
            }
        }
        let Some(conn) = st.conn.as_mut() else {
            return Err(Down::NotRunning);
        };
        let outcome = conn.round_trip(req, answer_limit()).map(|f| parse(&f));
        match outcome {
            Ok(Ok(a)) => Ok(a),
            // The stream is still in step: only this lookup failed.
            Ok(Err(proto::Error::BadResponse(t))) if t == proto::MsgType::Fail as u32 => {
                Ok(Answer::Failed(-1))
            }
            Ok(Err(e)) => {
                log::warn(e.log_line());
                self.lost(&mut st);
                Err(Down::Lost)
            }
            Err(Broken(line)) => {
                log::warn(&line);
                self.lost(&mut st);
                Err(Down::Lost)
            }
        }
    }

    /// The backend failed during a request: killed, and started again by a later lookup.
    fn lost(&self, st: &mut State) {
        if let Some(mut c) = st.conn.take() {
            if c.since.elapsed() >= HEALTHY_AFTER {
                st.backoff = BACKOFF_FIRST;
            }
            c.kill();
        }
        self.failed(st);
    }

    fn failed(&self, st: &mut State) {
        let wait = st.backoff;
        st.backoff = (wait * 2).min(BACKOFF_MAX);
        st.retry_at = Some(Instant::now() + wait);
        log::warn(&format!(
            "warn: table-proc: table \"{}\": backend \"{}\" is down, its lookups fail \
             temporarily; starting it again in {}s",
            self.spec.table,
            self.spec.backend,
            wait.as_secs()
        ));
    }

    /// `PROC_TABLE_CHECK` (`table_match()`): the key is lower-cased by the caller.
    pub fn check(&self, service: Service, key: &str) -> Result<Answer, Down> {
        let req = proto::check(service, key, std::process::id()).map_err(|_| Down::BadKey)?;
        self.call(&req, proto::parse_check)
    }

    /// `PROC_TABLE_LOOKUP`: the value when found.
    pub fn lookup(&self, service: Service, key: &str) -> Result<Answer, Down> {
        let req = proto::lookup(service, key, std::process::id()).map_err(|_| Down::BadKey)?;
        self.call(&req, proto::parse_lookup)
    }

    /// `PROC_TABLE_FETCH` (`table_fetch()`): the backend's next entry for the service.
    pub fn fetch(&self, service: Service) -> Result<Answer, Down> {
        self.call(
            &proto::fetch(service, std::process::id()),
            proto::parse_lookup,
        )
    }

    /// `PROC_TABLE_UPDATE` (`smtpctl update table`): whether the backend reloaded.
    pub fn update(&self) -> Result<Answer, Down> {
        self.call(&proto::update(std::process::id()), proto::parse_check)
    }

    /// The backend's pid (for tests and `ps`).
    pub fn pid(&self) -> Option<u32> {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.conn
            .as_ref()
            .and_then(|c| c.process.as_ref().map(Process::pid))
    }
}
