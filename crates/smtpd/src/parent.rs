//! The root parent of a split daemon (OpenSMTPD's `[priv]`; `ps` shows its command line, as
//! 6.8's): OpenSMTPD's parent and `ca` processes in one small process that never reads the
//! network.
//!
//! ```text
//! smtpd -f ...       root: binds, keys and signatures, ~/.forward, PAM, starts processes
//!   ├─ smtpd: engine   queue user, no capability: sessions, filters' pipes, DNS, tables,
//!   │                  queue, scheduler, relay, control socket
//!   ├─ smtpd: delivery root, as before (started on the engine's request, socket handed over)
//!   ├─ /bin/sh -c FILTER  the filter's user (started on the engine's request, pipes handed over)
//!   └─ table-BACKEND  opensmtpd (started on the engine's request, socket handed over)
//! ```
//!
//! [`split`] binds what needs root, checks the spool, forks the engine and switches it to the
//! queue user (crate::privsep::creds), all before any key is read: the private keys are loaded
//! after the fork, in the parent only, so no copy of them is ever in the engine's memory. The
//! parent then answers the engine on its channels (crate::privsep::client says which), one
//! thread per channel, each request on its own and checked: the engine names a pki, a proc, a
//! user, a pid or handle of a process the parent itself started, never a command or a path to
//! open as root other than a user's `.forward`, read with OpenSMTPD's checks.
//!
//! Signals: SIGTERM/SIGINT/SIGHUP/SIGUSR1/SIGUSR2 are passed to the engine, which stops (or not)
//! as it did alone; when the engine is gone the parent stops the filters and table backends it
//! started, removes the control socket (the engine may not) and exits with the engine's status.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use nix::sys::signal::{SigSet, Signal};
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};
use rsmtpd_config::Config;
use zeroize::Zeroize;

use crate::privsep::creds::EngineCreds;
use crate::privsep::proto::{Forward, Reply, Request};
use crate::privsep::{client, wire};
use crate::sys::log;
use crate::tls::store::PkiStore;

/// How many handshakes the engine may have signed at once: one per core of this small machine
/// class, as many as the engine's runtime signed in parallel when it held the keys.
const CA_CHANNELS: usize = 2;
/// How many `~/.forward` reads may be in flight at once. One per RCPT of a user with a home:
/// with all sessions' RCPTs queued on one channel, each waited for the parent's one thread to be
/// woken and scheduled in turn, and under load that wait, not the read, was the split's cost in
/// the delivery benchmark (bench/delivery/README.md). Unsplit, every session read its own.
const FORWARD_CHANNELS: usize = 4;

/// The engine's name in `ps`, as 6.8's children are named (`smtpd: queue`, `smtpd: lookup`...:
/// config.c's setproctitle(proc_title()). The parent keeps its command line, as 6.8's does,
/// which never sets a title for itself (`[priv]` is only its name in traces), so that init
/// scripts and `pgrep -f /usr/sbin/smtpd` find it as before.
pub const ENGINE_TITLE: &str = "smtpd: engine";

/// What the parent bound for the engine.
pub struct Prebound {
    pub control: std::os::unix::net::UnixListener,
    pub tcp: Vec<(SocketAddr, std::net::TcpListener)>,
}

/// What [`split`] made of this process.
pub enum Role {
    /// No split (no queue user on this system): serve as root, as before.
    Unsplit,
    /// This is the engine, already switched to the queue user.
    Engine(Prebound),
    /// This is the parent: run it.
    Parent(Box<Parent>),
}

/// The signals passed on to the engine.
const FORWARDED: [Signal; 5] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

fn parent_signals() -> SigSet {
    let mut set = SigSet::empty();
    for s in FORWARDED {
        set.add(s);
    }
    set.add(Signal::SIGCHLD);
    set
}

/// Where the spool and the control socket are.
pub struct Paths {
    pub spool: PathBuf,
    pub socket: PathBuf,
}

/// Binds, checks the spool, forks. Err: the lines the start is refused with.
pub fn split(conf: &Config, paths: &Paths, smtpd_user: &str) -> Result<Role, String> {
    let Some(creds) = crate::privsep::creds::engine_creds(smtpd_user) else {
        // engine_creds also refuses when the unprivileged user is root (`SMTPD_USER=root`, what
        // bench/delivery's UNSPLIT=1 runs): say which.
        let root_user = nix::unistd::User::from_name(smtpd_user)
            .ok()
            .flatten()
            .is_some_and(|u| u.uid.is_root());
        log::warn(&if root_user {
            format!(
                "warn: smtpd: the unprivileged user ({smtpd_user}) has uid 0: not separating \
                 privileges, everything runs as root"
            )
        } else {
            format!(
                "warn: smtpd: no queue user ({} or {}): not separating privileges, everything \
                 runs as root",
                crate::privsep::creds::QUEUE_USERS[0],
                crate::privsep::creds::QUEUE_USERS[1]
            )
        });
        return Ok(Role::Unsplit);
    };
    let control = crate::listener::bind_control_std(&paths.socket)?;
    // From here on the socket file is ours: a start that fails removes it.
    let socket_file = SocketFile(paths.socket.clone());
    // setup_spool(): as root, owners and modes (the engine then checks the modes only).
    let owner = crate::queue::Owner::detect();
    crate::queue::layout::setup(&paths.spool, &owner).map_err(|e| {
        format!(
            "smtpd: queue: {}",
            crate::server::spool_error(&paths.spool, &e)
        )
    })?;
    let mut tcp = Vec::new();
    for l in &conf.listeners {
        for ip in &l.addrs {
            let addr = SocketAddr::new(*ip, l.port);
            if tcp.iter().any(|(a, _)| *a == addr) {
                continue;
            }
            let bound = crate::listener::bind_tcp_std(addr)
                .map_err(|e| format!("smtpd: {}", crate::startup::bind_failure(&addr, &e)))?;
            tcp.push((addr, bound));
        }
    }
    let pair = || {
        socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .map_err(|e| format!("smtpd: socketpair: {}", e.desc()))
    };
    let (ctl_p, ctl_e) = pair()?;
    let (auth_p, auth_e) = pair()?;
    let mut ca_p = Vec::new();
    let mut ca_e = Vec::new();
    for _ in 0..CA_CHANNELS {
        let (p, e) = pair()?;
        ca_p.push(p);
        ca_e.push(e);
    }
    let mut fwd_p = Vec::new();
    let mut fwd_e = Vec::new();
    for _ in 0..FORWARD_CHANNELS {
        let (p, e) = pair()?;
        fwd_p.push(p);
        fwd_e.push(e);
    }
    // Blocked before the fork, so that an engine that dies at once is still seen (a SIGCHLD
    // that is not blocked is discarded); the engine unblocks them first thing.
    let signals = parent_signals();
    signals
        .thread_block()
        .map_err(|e| format!("smtpd: sigprocmask: {}", e.desc()))?;
    let parent_pid = nix::unistd::getpid();
    // SAFETY: no thread exists yet (the runtime is built by the engine after this, the parent
    // starts its threads after it), so the child has a consistent copy of the whole process.
    match unsafe { fork() }.map_err(|e| format!("smtpd: fork: {}", e.desc()))? {
        ForkResult::Child => {
            drop((ctl_p, auth_p, ca_p, fwd_p));
            std::mem::forget(socket_file);
            let _ = signals.thread_unblock();
            become_engine(&creds, parent_pid)?;
            crate::privsep::become_engine(crate::privsep::Client {
                control: client::Channel::new(ctl_e),
                auth: client::Channel::new(auth_e),
                ca: ca_e.into_iter().map(client::Channel::new).collect(),
                forward: fwd_e.into_iter().map(client::Channel::new).collect(),
            });
            Ok(Role::Engine(Prebound { control, tcp }))
        }
        ForkResult::Parent { child } => {
            drop((ctl_e, auth_e, ca_e, fwd_e, control, tcp));
            Ok(Role::Parent(Box::new(Parent {
                engine: child,
                socket_file,
                spool: paths.spool.clone(),
                socket: paths.socket.clone(),
                control: ctl_p,
                auth: auth_p,
                ca: ca_p,
                forward: fwd_p,
                signals,
            })))
        }
    }
}

/// In the child: the title, then the credentials, for good.
fn become_engine(creds: &EngineCreds, parent: Pid) -> Result<(), String> {
    crate::privsep::title::set(ENGINE_TITLE);
    crate::privsep::creds::drop_to(creds)?;
    // After the switch (a credential change clears it): if the parent dies, so do we, at once.
    // Not SIGTERM: a graceful drain kept the listeners and the control socket open for seconds
    // after a `kill -9` of the parent, so the restart that follows was refused ("control socket
    // already listening"). Without its parent the engine can neither sign a handshake nor deliver,
    // and nothing it answered 250 is lost by dying (the answer comes after the commit), which is
    // what 6.8's processes do too: `fatalx("lost connection to parent")`.
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
    if nix::unistd::getppid() != parent {
        return Err("smtpd: the parent process is gone".into());
    }
    Ok(())
}

/// The parent, once the engine runs.
pub struct Parent {
    engine: Pid,
    socket_file: SocketFile,
    spool: PathBuf,
    socket: PathBuf,
    control: OwnedFd,
    auth: OwnedFd,
    ca: Vec<OwnedFd>,
    forward: Vec<OwnedFd>,
    signals: SigSet,
}

/// The control socket file, removed when the parent ends (the engine may not remove it).
struct SocketFile(PathBuf);

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// What the request threads share.
struct State {
    /// The pkis, loaded after the fork; or the lines that refuse the start.
    store: Result<PkiStore, Vec<String>>,
    conf: Config,
    spool: PathBuf,
    socket: PathBuf,
    /// Filter processes started for the engine and not reaped yet, by pid.
    filters: Mutex<HashMap<u32, std::process::Child>>,
    /// Table backends started for the engine, by handle.
    tables: crate::tableproc::ForEngine,
    /// The threads that reap delivery processes and say how they ended.
    reapers: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

impl Parent {
    /// Serves the engine until it exits; its exit status.
    pub fn run(self, conf: Config) -> u8 {
        crate::delivery::client::set_program(PathBuf::from("/proc/self/exe"));
        let store = PkiStore::load(&conf);
        let state = Arc::new(State {
            store,
            conf,
            spool: self.spool.clone(),
            socket: self.socket.clone(),
            filters: Mutex::new(HashMap::new()),
            tables: crate::tableproc::ForEngine::default(),
            reapers: Mutex::new(Vec::new()),
        });
        let mut channels: Vec<(OwnedFd, Kind)> =
            vec![(self.control, Kind::Control), (self.auth, Kind::Auth)];
        channels.extend(self.ca.into_iter().map(|c| (c, Kind::Ca)));
        channels.extend(self.forward.into_iter().map(|c| (c, Kind::Forward)));
        let (mut ca, mut fwd) = (0, 0);
        for (fd, kind) in channels {
            let state = state.clone();
            let name = match kind {
                Kind::Ca => {
                    ca += 1;
                    format!("klondike-{}", ca - 1)
                }
                Kind::Forward => {
                    fwd += 1;
                    format!("forward-{}", fwd - 1)
                }
                Kind::Auth => "auth".into(),
                Kind::Control => "priv".into(),
            };
            if let Err(e) = std::thread::Builder::new()
                .name(name)
                .spawn(move || serve(fd, kind, &state))
            {
                log::warn(&format!("warn: smtpd: thread: {e}"));
            }
        }
        let status = wait_engine(self.engine, &self.signals);
        // What the engine started dies with it (its pipes are closed; this makes it sure).
        if let Ok(mut f) = state.filters.lock() {
            for (_, mut c) in f.drain() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        state.tables.kill_all();
        // As 6.8's parent_shutdown(): every process is gone, and has said how, before the last
        // line; the delivery processes leave once the engine's end closed their channels.
        let reapers = state
            .reapers
            .lock()
            .map(|mut r| std::mem::take(&mut *r))
            .unwrap_or_default();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        for r in reapers {
            while !r.is_finished() && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            if r.is_finished() {
                let _ = r.join();
            }
        }
        drop(self.socket_file);
        if status == 0 {
            log::info("Exiting");
        }
        status
    }
}

/// Passes signals on; returns the engine's exit status once it is gone.
fn wait_engine(engine: Pid, signals: &SigSet) -> u8 {
    loop {
        match waitpid(engine, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, code)) => return u8::try_from(code).unwrap_or(1),
            Ok(WaitStatus::Signaled(_, sig, _)) => {
                log::line(
                    log::Level::Crit,
                    &format!("smtpd: engine terminated by signal {}", sig as i32),
                );
                return 1;
            }
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return 1,
        }
        let timeout = libc::timespec {
            tv_sec: 1,
            tv_nsec: 0,
        };
        // SAFETY: sigtimedwait reads the set and the timeout, both valid for the call; the
        // siginfo pointer may be null.
        let sig = unsafe { libc::sigtimedwait(signals.as_ref(), std::ptr::null_mut(), &timeout) };
        if let Ok(s) = Signal::try_from(sig) {
            if FORWARDED.contains(&s) {
                let _ = nix::sys::signal::kill(engine, s);
            }
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Control,
    Auth,
    Ca,
    /// `Forward` requests only.
    Forward,
}

/// One channel: a request, its answer, until the engine closes it.
fn serve(fd: OwnedFd, kind: Kind, state: &State) {
    let mut buf = vec![0u8; crate::privsep::proto::MAX_PACKET];
    loop {
        let n = match wire::recv_into(fd.as_fd(), &mut buf) {
            // Descriptors from the engine are never wanted: closed here.
            Ok(Some((n, _fds))) => n.min(buf.len()),
            Ok(None) => return,
            Err(nix::errno::Errno::EMSGSIZE) => {
                let _ = wire::send(
                    fd.as_fd(),
                    &Reply::Failed("bad request".into()).encode(),
                    &[],
                );
                continue;
            }
            Err(_) => return,
        };
        let decoded = Request::decode(buf.get(..n).unwrap_or_default());
        if kind == Kind::Auth {
            // The password: not left in the buffer until the next request.
            buf.get_mut(..n).unwrap_or_default().zeroize();
        }
        let (reply, fds) = match decoded {
            Ok(req) => handle(req, kind, state),
            Err(e) => (Reply::Failed(format!("bad request: {e}")), Vec::new()),
        };
        let raw: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
        if wire::send(fd.as_fd(), &reply.encode(), &raw).is_err() {
            return;
        }
        // Our copies of what was handed over close here.
        drop(fds);
    }
}

fn handle(req: Request, kind: Kind, state: &State) -> (Reply, Vec<OwnedFd>) {
    let none = |r: Reply| (r, Vec::new());
    match (kind, req) {
        (
            Kind::Ca,
            Request::Sign {
                pki,
                generation,
                scheme,
                message,
            },
        ) => none(sign(state, &pki, generation, scheme, &message)),
        (Kind::Auth, Request::Auth { user, mut password }) => {
            let r = crate::auth::pam::check_here(&user, &password);
            password.zeroize();
            none(Reply::Auth(match r {
                rsmtpd_protocol::server::LookupResult::Ok => 0,
                rsmtpd_protocol::server::LookupResult::PermFail => 1,
                rsmtpd_protocol::server::LookupResult::TempFail => 2,
            }))
        }
        (Kind::Control, Request::Hello) => none(match &state.store {
            Ok(store) => Reply::Pkis(store.iter().filter_map(|p| p.export()).collect()),
            Err(lines) => Reply::Refused(lines.clone()),
        }),
        (Kind::Control, Request::PollPki) => none(match &state.store {
            Ok(store) => {
                let (lines, reloaded) = store.poll_reloads();
                Reply::PkiChanges {
                    lines,
                    reloaded: reloaded.iter().filter_map(|p| p.export()).collect(),
                }
            }
            Err(_) => Reply::PkiChanges {
                lines: Vec::new(),
                reloaded: Vec::new(),
            },
        }),
        (
            Kind::Forward,
            Request::Forward {
                user,
                uid,
                gid,
                directory,
            },
        ) => {
            let info = crate::routing::lookup::UserInfo {
                username: user,
                uid,
                gid,
                directory,
            };
            use crate::routing::forward::ForwardFile;
            none(Reply::Forward(
                match crate::routing::forward::read_forward(&info) {
                    ForwardFile::Missing => Forward::Missing,
                    ForwardFile::Content(c) => Forward::Content(c),
                    ForwardFile::PermFail => Forward::PermFail,
                    ForwardFile::TempFail => Forward::TempFail,
                },
            ))
        }
        (Kind::Control, Request::SpawnFilter { name }) => spawn_filter(state, &name),
        (Kind::Control, Request::KillFilter { pid }) => {
            let child = state.filters.lock().ok().and_then(|mut f| f.remove(&pid));
            none(match child {
                Some(mut c) => {
                    let _ = c.kill();
                    let _ = c.wait();
                    Reply::Done { pid }
                }
                None => Reply::Failed(format!("no filter process {pid}")),
            })
        }
        (Kind::Control, Request::DeliveryProcess) => match crate::delivery::client::spawn_process()
        {
            Ok((sock, child)) => {
                let pid = child.id();
                log::debug(&format!("debug: delivery: process started, pid {pid}"));
                // Reaped as it ends, with the line that says how (the engine fails and
                // retries what it had in flight when it sees the end on its socket).
                if let Ok(h) = std::thread::Builder::new()
                    .name("delivery-reaper".into())
                    .spawn(move || crate::delivery::client::reap(child))
                {
                    if let Ok(mut r) = state.reapers.lock() {
                        r.push(h);
                    }
                }
                (Reply::Done { pid }, vec![sock])
            }
            Err(e) => none(Reply::Failed(format!(
                "fork: {}",
                crate::sys::compat::strerror(&e)
            ))),
        },
        (
            Kind::Control,
            Request::SpawnTable {
                table,
                backend,
                arg,
            },
        ) => match state.tables.spawn(&table, &backend, arg.as_deref()) {
            Ok((handle, pid, sock)) => (Reply::Table { handle, pid }, vec![sock]),
            Err(line) => none(Reply::Failed(line)),
        },
        (Kind::Control, Request::KillTable { handle }) => none(match state.tables.kill(handle) {
            Some(pid) => Reply::Done { pid },
            None => Reply::Failed(format!("no table process {handle}")),
        }),
        (Kind::Control, Request::Offline) => {
            let (spool, socket) = (state.spool.clone(), state.socket.clone());
            // smtpctl runs as each file's owner: only root can start it so.
            let _ = std::thread::Builder::new()
                .name("offline".into())
                .spawn(move || {
                    crate::control::offline::resubmit(
                        &spool,
                        &crate::control::offline::smtpctl_path(),
                        &socket,
                    )
                });
            none(Reply::Done { pid: 0 })
        }
        (_, other) => none(Reply::Failed(format!(
            "request {other:?} refused on this channel"
        ))),
    }
}

/// The `ca`: a signature with the key of that pki and generation, if it is one we hold.
fn sign(state: &State, pki: &str, generation: u64, scheme: u16, message: &[u8]) -> Reply {
    let Ok(store) = &state.store else {
        return Reply::Failed("ca: no keys".into());
    };
    let Some(key) = store.get(pki).and_then(|p| p.key_of(generation)) else {
        return Reply::Failed(format!("ca: no key for pki {pki} generation {generation}"));
    };
    let Some(signer) = key.choose_scheme(&[rustls::SignatureScheme::from(scheme)]) else {
        return Reply::Failed(format!("ca: pki {pki}: scheme {scheme:#06x} not supported"));
    };
    match signer.sign(message) {
        Ok(s) => Reply::Signature(s),
        Err(e) => Reply::Failed(format!("ca: pki {pki}: {e}")),
    }
}

/// `fork_filter_process()` for the engine: the proc of that name in our configuration, as its
/// user; the engine gets the three pipes.
fn spawn_filter(state: &State, name: &str) -> (Reply, Vec<OwnedFd>) {
    let Some(p) = state.conf.procs.iter().find(|p| p.name == name) else {
        return (Reply::Failed(format!("{name}: no such proc")), Vec::new());
    };
    let who = match crate::procfilter::identity(p) {
        Ok(w) => w,
        Err(line) => return (Reply::Failed(line), Vec::new()),
    };
    let mut child = match crate::procfilter::process::spawn_std(p, who.as_ref()) {
        Ok(c) => c,
        Err(e) => {
            return (
                Reply::Failed(format!(
                    "{name}: fork_filter_process: {}",
                    rsmtpd_config::lexer::strerror(&e)
                )),
                Vec::new(),
            )
        }
    };
    let pipes = (child.stdin.take(), child.stdout.take(), child.stderr.take());
    let pid = child.id();
    let (Some(i), Some(o), Some(e)) = pipes else {
        let _ = child.kill();
        let _ = child.wait();
        return (Reply::Failed(format!("{name}: no pipes")), Vec::new());
    };
    if let Ok(mut f) = state.filters.lock() {
        f.insert(pid, child);
    }
    (
        Reply::Done { pid },
        vec![OwnedFd::from(i), OwnedFd::from(o), OwnedFd::from(e)],
    )
}
