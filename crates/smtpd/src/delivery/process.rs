//! The delivery process (`smtpd: delivery` in `ps`): when the daemon runs as root, this small
//! process writes maildir, mbox and file deliveries as their users, through long-lived workers.
//!
//! ```text
//! smtpd (root, tokio, ~40 MB)
//!   └─ smtpd: delivery (root, one thread, no config)     started once: exec of our own binary
//!        ├─ smtpd: worker (uid 2000)   ─┐ fork()ed from this small process, privileges dropped
//!        ├─ smtpd: worker (uid 2000)    │ for good; each loops: job in, agent run, result out;
//!        └─ smtpd: worker (uid 2001)   ─┘ gone after IDLE without work
//! ```
//!
//! Why: forking the daemon itself for every message (to switch to the user) copied its page
//! tables, tore them down again when the child exited, and left copy-on-write faults in the
//! daemon afterwards: about 2 ms of CPU per delivered message (bench/delivery: 3.2 ms per 2 KB
//! message before, 1.1 ms with the workers). A fork of this process is cheap,
//! and a worker serves many messages of its user.
//!
//! The daemon starts it as `/proc/self/exe` with `RSMTPD_DELIVERY_FD=N` (one end of a
//! `SOCK_SEQPACKET` socket pair) and nothing else; `main()` checks for that first. A job
//! (`job::Job`, with the queued message's descriptor) goes to an idle worker of the same
//! credentials, else to a new one. Mailboxes are created here, as root (`mbox::init`), before
//! the worker appends to them.
//!
//! Failures keep today's outcomes: a job past its timeout gets its worker killed and is reported
//! as `terminated; timeout`; a worker that dies is reported with its signal or status, and the
//! next job of that user gets a new worker. When the daemon goes away (EOF), this process stops
//! its workers and exits; if it is killed, its workers die with it (`PR_SET_PDEATHSIG`). Either
//! way no delivery goes on that nobody would record: the daemon retries what was in flight.

use std::ffi::CStr;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, Signal};
use nix::sys::socket::{socketpair, AddressFamily, MsgFlags, SockFlag, SockType};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};

use super::job::{self, Agent, Done, Finished, Job, Packet};
use super::{worker, Creds, ExitKind};

/// The environment variable that makes `smtpd` the delivery process, naming its socket.
pub const ENV_FD: &str = "RSMTPD_DELIVERY_FD";

/// Its name in `ps` (argv[0], and the 15-byte `comm`).
pub const NAME: &CStr = c"smtpd: delivery";

/// How long a worker waits for another job before it is let go.
pub const IDLE: Duration = Duration::from_secs(5);

const EX_SOFTWARE: i32 = 70;
const EX_OSERR: i32 = 71;
const EX_TEMPFAIL: i32 = 75;

/// Called first thing by `main()`: when this process was started as the delivery process, runs
/// it and returns its exit status.
pub fn run_if_requested() -> Option<u8> {
    let value = std::env::var_os(ENV_FD)?;
    let fd: Option<RawFd> = value.to_str().and_then(|s| s.parse().ok());
    // SAFETY: fcntl(F_GETFD) only asks whether the number is an open descriptor.
    let Some(fd) = fd.filter(|&fd| fd > 2 && unsafe { libc::fcntl(fd, libc::F_GETFD) } != -1)
    else {
        eprintln!("smtpd: {ENV_FD}: not a descriptor");
        return Some(1);
    };
    // SAFETY: the daemon passed this descriptor to us alone; we checked it is open.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let _ = nix::sys::prctl::set_name(NAME);
    // `systemctl stop` signals the whole cgroup, Ctrl-C with `-d` the whole process group: the
    // daemon acts on those; we leave when it closes our socket, after stopping the workers
    // (which inherit this), so that a stop is neither a crash of ours nor a half-written file.
    for sig in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        // SAFETY: SIG_IGN installs no handler code.
        let _ = unsafe { nix::sys::signal::signal(sig, nix::sys::signal::SigHandler::SigIgn) };
    }
    Some(
        Process {
            daemon: sock,
            workers: Vec::new(),
            retired: Vec::new(),
        }
        .run(),
    )
}

struct Running {
    id: u64,
    deadline: Instant,
    /// We killed it for running past its deadline.
    timed_out: bool,
    /// The worker was started for this job.
    new_worker: bool,
}

struct Worker {
    pid: Pid,
    sock: OwnedFd,
    creds: Creds,
    job: Option<Running>,
    idle_since: Instant,
}

struct Process {
    daemon: OwnedFd,
    workers: Vec<Worker>,
    /// Workers let go (socket closed), not yet reaped.
    retired: Vec<Pid>,
}

impl Process {
    fn run(mut self) -> u8 {
        loop {
            self.reap_retired();
            let timeout = self.next_wakeup(Instant::now());
            let ready: Vec<bool> = {
                let mut fds: Vec<PollFd<'_>> = std::iter::once(self.daemon.as_fd())
                    .chain(self.workers.iter().map(|w| w.sock.as_fd()))
                    .map(|fd| PollFd::new(fd, PollFlags::POLLIN))
                    .collect();
                match poll(&mut fds, timeout) {
                    Ok(_) => {}
                    Err(Errno::EINTR) => continue,
                    Err(e) => {
                        eprintln!("smtpd: delivery: poll: {}", e.desc());
                        return 1;
                    }
                }
                fds.iter()
                    .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
                    .collect()
            };
            // Results first: a worker that just finished can take the next job of its user.
            let pids: Vec<Pid> = self
                .workers
                .iter()
                .zip(ready.iter().skip(1))
                .filter(|(_, &r)| r)
                .map(|(w, _)| w.pid)
                .collect();
            for pid in pids {
                self.read_worker(pid);
            }
            if ready.first() == Some(&true) && !self.read_daemon() {
                self.shut_down();
                return 0;
            }
            self.enforce_deadlines();
            self.let_idle_go();
        }
    }

    /// The daemon is gone: nobody will record what the workers deliver now (it will be retried
    /// at the next start), so they stop at once; we leave when they are reaped.
    fn shut_down(&mut self) {
        for w in self.workers.drain(..) {
            if w.job.is_some() {
                let _ = kill(w.pid, Signal::SIGKILL);
            }
            drop(w.sock);
            self.retired.push(w.pid);
        }
        for pid in self.retired.drain(..) {
            while let Err(Errno::EINTR) = waitpid(pid, None) {}
        }
    }

    /// When poll must return even if nothing arrives: a job's deadline, an idle worker's end,
    /// or a retired worker to reap.
    fn next_wakeup(&self, now: Instant) -> PollTimeout {
        let mut next: Option<Instant> = None;
        for w in &self.workers {
            let t = match &w.job {
                Some(r) if !r.timed_out => r.deadline,
                Some(_) => continue,
                None => w.idle_since + IDLE,
            };
            next = Some(next.map_or(t, |n| n.min(t)));
        }
        let mut wait = next.map(|t| t.saturating_duration_since(now) + Duration::from_millis(1));
        if !self.retired.is_empty() {
            let reap = Duration::from_millis(100);
            wait = Some(wait.map_or(reap, |w| w.min(reap)));
        }
        match wait {
            None => PollTimeout::NONE,
            Some(d) => PollTimeout::try_from(d).unwrap_or(PollTimeout::MAX),
        }
    }

    fn reap_retired(&mut self) {
        self.retired.retain(|&pid| {
            matches!(
                waitpid(pid, Some(WaitPidFlag::WNOHANG)),
                Ok(WaitStatus::StillAlive)
            )
        });
    }

    /// Reads what the daemon sent. `false`: the daemon is gone.
    fn read_daemon(&mut self) -> bool {
        loop {
            match job::recv(self.daemon.as_fd(), MsgFlags::MSG_DONTWAIT) {
                Ok(Packet::Data(data, fd)) => self.job(data, fd),
                Ok(Packet::Eof) => return false,
                Err(Errno::EAGAIN) => return true,
                // One bad packet (too long, too many descriptors): nothing to answer.
                Err(Errno::EMSGSIZE) => continue,
                Err(_) => return false,
            }
        }
    }

    fn reply(&self, done: Done) {
        // Blocking: the daemon reads replies on a thread of its own. An error means it is gone,
        // which poll will tell us.
        let _ = job::send(self.daemon.as_fd(), &done.encode(), None, MsgFlags::empty());
    }

    fn fail(&self, id: u64, code: i32, text: String) {
        self.reply(Done {
            id,
            exit: ExitKind::Exited(code),
            text: Some(text.into_bytes()),
            fully_written: true,
            worker: 0,
            new_worker: false,
        });
    }

    /// A job from the daemon: prepare it as root, then give it to a worker of its user.
    fn job(&mut self, data: Vec<u8>, message: Option<OwnedFd>) {
        let job = match Job::decode(&data) {
            Ok(j) => j,
            Err(e) => {
                match job::peek_id(&data) {
                    Some(id) => self.fail(id, EX_SOFTWARE, format!("bad delivery request: {e}")),
                    None => eprintln!("smtpd: delivery: bad request: {e}"),
                }
                return;
            }
        };
        let Some(message) = message else {
            self.fail(job.id, EX_TEMPFAIL, "Cannot get message fd".into());
            return;
        };
        if let Err(e) = job.agent.prepare_as_root() {
            self.fail(job.id, e.code, e.text);
            return;
        }
        // At least a second, as the alarm(2) of a forked agent was; a timeout from the wire
        // could overflow an Instant: then, in effect, none.
        let now = Instant::now();
        // An mda command has an alarm of its own (set between fork and exec, as forkmda()
        // does), which kills it at the timeout and is reported by its worker as a timeout; the
        // worker is killed only if that did not happen a little later.
        let slack = if matches!(job.agent, Agent::Mda { .. }) {
            Duration::from_secs(5)
        } else {
            Duration::ZERO
        };
        let deadline = now
            .checked_add(job.timeout.max(Duration::from_secs(1)) + slack)
            .unwrap_or(now + Duration::from_secs(365 * 86400));
        let running = |new_worker| Running {
            id: job.id,
            deadline,
            timed_out: false,
            new_worker,
        };
        while let Some(i) = self
            .workers
            .iter()
            .position(|w| w.job.is_none() && w.creds == job.creds)
        {
            let w = &mut self.workers[i];
            // The packet as it came: the worker decodes the same job.
            match job::send(
                w.sock.as_fd(),
                &data,
                Some(message.as_raw_fd()),
                MsgFlags::MSG_DONTWAIT,
            ) {
                Ok(()) => {
                    w.job = Some(running(false));
                    return;
                }
                // It died while idle: let it go, try another.
                Err(_) => {
                    let w = self.workers.swap_remove(i);
                    self.retired.push(w.pid);
                }
            }
        }
        let r = running(true);
        self.start_worker(job, message, r);
    }

    /// Forks a worker for the credentials of `job`, which it runs first.
    fn start_worker(&mut self, job: Job, message: OwnedFd, running: Running) {
        let (mine, theirs) = match socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        ) {
            Ok(p) => p,
            Err(e) => {
                self.fail(job.id, EX_OSERR, format!("socketpair: {}", e.desc()));
                return;
            }
        };
        let parent = nix::unistd::getpid();
        // SAFETY: this process has a single thread, so the child may allocate and take locks.
        match unsafe { fork() } {
            Err(e) => self.fail(job.id, EX_OSERR, format!("fork: {}", e.desc())),
            Ok(ForkResult::Child) => {
                // The worker keeps only its own socket and its message: not the daemon's socket
                // (the daemon must see EOF when this process dies), not the other workers'.
                // SAFETY: closing descriptors this copy of the process owns; it never returns
                // to code that would use or close them again (worker::run ends in _exit).
                unsafe {
                    libc::close(self.daemon.as_raw_fd());
                    for w in &self.workers {
                        libc::close(w.sock.as_raw_fd());
                    }
                    libc::close(mine.as_raw_fd());
                }
                let code = worker::run(theirs, job, message, parent);
                // SAFETY: leave without running destructors of the parent's state.
                unsafe { libc::_exit(code) }
            }
            Ok(ForkResult::Parent { child }) => {
                drop(theirs);
                drop(message);
                self.workers.push(Worker {
                    pid: child,
                    sock: mine,
                    creds: job.creds,
                    job: Some(running),
                    idle_since: Instant::now(),
                });
            }
        }
    }

    /// A worker's socket is readable: its result, or its end.
    fn read_worker(&mut self, pid: Pid) {
        let Some(i) = self.workers.iter().position(|w| w.pid == pid) else {
            return;
        };
        match job::recv(self.workers[i].sock.as_fd(), MsgFlags::MSG_DONTWAIT) {
            Err(Errno::EAGAIN) => {}
            Ok(Packet::Data(data, _)) => {
                let w = &mut self.workers[i];
                w.idle_since = Instant::now();
                let Some(run) = w.job.take() else {
                    return;
                };
                let f = Finished::decode(&data).unwrap_or_else(|e| Finished {
                    exit: ExitKind::Exited(EX_SOFTWARE),
                    text: Some(format!("bad reply from delivery worker: {e}").into_bytes()),
                    fully_written: true,
                });
                let done = Done {
                    id: run.id,
                    exit: f.exit,
                    text: f.text,
                    fully_written: f.fully_written,
                    worker: pid.as_raw() as u32,
                    new_worker: run.new_worker,
                };
                self.reply(done);
            }
            // EOF: it exited or was killed.
            _ => {
                let w = self.workers.swap_remove(i);
                drop(w.sock);
                let status = loop {
                    match waitpid(pid, None) {
                        Err(Errno::EINTR) => continue,
                        other => break other,
                    }
                };
                let Some(run) = w.job else {
                    return;
                };
                let exit = match status {
                    _ if run.timed_out => ExitKind::Signaled(libc::SIGALRM),
                    Ok(WaitStatus::Signaled(_, sig, _)) => ExitKind::Signaled(sig as i32),
                    // It left without a report: never a success.
                    Ok(WaitStatus::Exited(_, 0)) => ExitKind::Exited(EX_TEMPFAIL),
                    Ok(WaitStatus::Exited(_, c)) => ExitKind::Exited(c),
                    _ => ExitKind::Exited(EX_OSERR),
                };
                self.reply(Done {
                    id: run.id,
                    exit,
                    text: None,
                    fully_written: true,
                    worker: pid.as_raw() as u32,
                    new_worker: run.new_worker,
                });
            }
        }
    }

    /// The mda alarm: a job past its time has its worker killed (reported as a timeout when
    /// its end is read).
    fn enforce_deadlines(&mut self) {
        let now = Instant::now();
        for w in &mut self.workers {
            if let Some(r) = &mut w.job {
                if !r.timed_out && now >= r.deadline {
                    let _ = kill(w.pid, Signal::SIGKILL);
                    r.timed_out = true;
                }
            }
        }
    }

    /// Workers idle for IDLE: closing their socket makes them exit.
    fn let_idle_go(&mut self) {
        let now = Instant::now();
        let mut i = 0;
        while i < self.workers.len() {
            let w = &self.workers[i];
            if w.job.is_none() && now.duration_since(w.idle_since) >= IDLE {
                let w = self.workers.swap_remove(i);
                self.retired.push(w.pid);
            } else {
                i += 1;
            }
        }
    }
}
