//! One running filter process (`proc NAME "CMD"`, or the process of `filter NAME proc-exec`):
//! started as OpenSMTPD's `fork_filter_process` starts it, told the `config|` lines, read until
//! `register|ready`, then served by three tasks: a writer (requests and reports to its stdin),
//! a reader (its answers, handed to the session they name), and a stderr reader (each line to
//! the log as `NAME: LINE`). Sessions are multiplexed by session id, as lka_filter.c does: a
//! waiting session is a channel receiver, not a thread.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rsmtpd_config::Proc;
use rsmtpd_protocol::filter_protocol::{
    config_lines, parse_line, FilterMessage, LineReader, ReadLine, Register, Response,
    REPORT_EVENTS,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

use crate::sys::log;

/// OpenSMTPD's `PATH_LIBEXEC`: where a command not starting with `/` is looked up.
const LIBEXEC: &str = "/usr/libexec/opensmtpd";
/// How long a filter may take to send `register|ready` at a restart (at start we wait as
/// OpenSMTPD does, without limit, since nothing is served yet).
pub const RESTART_HANDSHAKE: Duration = Duration::from_secs(30);
/// Bytes queued for a filter's stdin above which sessions streaming a message to it stop
/// reading their clients, and below which they go on: a filter that stops reading makes
/// each of its sessions wait (and time out), never makes us buffer without bound.
pub const QUEUE_HIGH: usize = 1024 * 1024;
pub const QUEUE_LOW: usize = 256 * 1024;

/// What a filter process says to one session.
#[derive(Debug)]
pub enum ToSession {
    Result {
        /// [`Instance::serial`] of the process that answered.
        from: u64,
        token: u64,
        response: Response,
    },
    DataLine {
        from: u64,
        token: u64,
        line: Vec<u8>,
    },
    /// `report|...` from the filter: a `filter-report|proc|NAME|MSG` for the session's filters.
    Report { name: String, message: Vec<u8> },
    /// The process died or broke the protocol: whatever the session waited for will not come.
    Failed,
}

/// Who a filter process runs as.
#[derive(Clone, Debug)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
    pub chroot: Option<String>,
}

/// A running filter process.
pub struct Instance {
    pub name: String,
    /// Distinct per instance started: which process an answer came from.
    pub serial: u64,
    writer: mpsc::UnboundedSender<Vec<u8>>,
    /// Bytes handed to the writer and not yet written to the pipe.
    queued: AtomicUsize,
    /// Woken when `queued` falls below [`QUEUE_LOW`] (or the process dies).
    room: tokio::sync::Notify,
    sessions: Mutex<HashMap<u64, mpsc::UnboundedSender<ToSession>>>,
    /// Bit i: phase `PHASES[i]` registered.
    pub phases: u32,
    /// Bit i: report event `REPORT_EVENTS[i]` registered (smtp-in).
    pub reports: u32,
    /// The same for smtp-out (the sessions of relays with `filter`).
    pub reports_out: u32,
    dead: AtomicBool,
    /// Set by a session that saw the process break the protocol: the supervisor stops it.
    abort: tokio::sync::Notify,
    abort_reason: Mutex<Option<String>>,
}

impl Instance {
    /// Stops the process for breaking the protocol; `why` is logged as OpenSMTPD's fatal line.
    pub fn abort(&self, why: &str) {
        if let Ok(mut r) = self.abort_reason.lock() {
            r.get_or_insert_with(|| why.to_string());
        }
        self.abort.notify_one();
    }

    pub fn is_dead(&self) -> bool {
        self.dead.load(Ordering::Acquire)
    }

    pub fn hooks(&self, phase_index: usize) -> bool {
        self.phases & (1 << phase_index) != 0
    }

    pub fn wants_report(&self, event: &str) -> bool {
        REPORT_EVENTS
            .iter()
            .position(|e| *e == event)
            .is_some_and(|i| self.reports & (1 << i) != 0)
    }

    pub fn wants_report_out(&self, event: &str) -> bool {
        REPORT_EVENTS
            .iter()
            .position(|e| *e == event)
            .is_some_and(|i| self.reports_out & (1 << i) != 0)
    }

    /// Queues bytes for the filter's stdin. False once it is gone.
    pub fn write(&self, line: Vec<u8>) -> bool {
        if self.is_dead() {
            return false;
        }
        let n = line.len();
        self.queued.fetch_add(n, Ordering::AcqRel);
        if self.writer.send(line).is_err() {
            self.queued.fetch_sub(n, Ordering::AcqRel);
            return false;
        }
        true
    }

    /// Whether so much waits for the pipe that a streaming session should stop reading.
    pub fn congested(&self) -> bool {
        !self.is_dead() && self.queued.load(Ordering::Acquire) >= QUEUE_HIGH
    }

    /// Returns once the queue is below [`QUEUE_LOW`] or the process is gone.
    pub async fn room(&self) {
        loop {
            // Created before the check: a wakeup between the check and the wait is not lost.
            let woken = self.room.notified();
            if self.is_dead() || self.queued.load(Ordering::Acquire) < QUEUE_LOW {
                return;
            }
            woken.await;
        }
    }

    fn written(&self, n: usize) {
        let left = self.queued.fetch_sub(n, Ordering::AcqRel).saturating_sub(n);
        if left < QUEUE_LOW {
            self.room.notify_waiters();
        }
    }

    pub fn attach(&self, sessid: u64, to: mpsc::UnboundedSender<ToSession>) {
        if let Ok(mut s) = self.sessions.lock() {
            s.insert(sessid, to);
        }
    }

    pub fn detach(&self, sessid: u64) {
        if let Ok(mut s) = self.sessions.lock() {
            s.remove(&sessid);
        }
    }

    fn deliver(&self, sessid: u64, msg: ToSession) {
        // An unknown session is ignored, as in lka_filter.c: it may have just ended.
        if let Ok(s) = self.sessions.lock() {
            if let Some(to) = s.get(&sessid) {
                let _ = to.send(msg);
            }
        }
    }

    /// Marks the process dead and tells every session attached to it.
    fn fail_all(&self) {
        self.dead.store(true, Ordering::Release);
        let sessions = self
            .sessions
            .lock()
            .map(|mut s| std::mem::take(&mut *s))
            .unwrap_or_default();
        for to in sessions.values() {
            let _ = to.send(ToSession::Failed);
        }
        self.room.notify_waiters();
    }
}

/// Why a start failed, in OpenSMTPD's words where it has them.
#[derive(Debug)]
pub struct StartError(pub String);

/// `exec CMD`, or `exec /usr/libexec/opensmtpd/CMD` for a relative command.
fn shell_command(command: &str) -> String {
    if command.starts_with('/') {
        format!("exec {command}")
    } else {
        format!("exec {LIBEXEC}/{command}")
    }
}

/// A started filter process: its pipes, and who can stop it.
struct Spawned {
    child: FilterChild,
    stdin: pipe::Sender,
    stdout: pipe::Receiver,
    stderr: pipe::Receiver,
}

/// Ours, or one the parent of a split daemon started for us (the engine may not exec).
enum FilterChild {
    Local(Child),
    Remote(u32),
}

impl FilterChild {
    /// Kills it and waits until it is gone.
    async fn stop(&mut self) {
        match self {
            FilterChild::Local(c) => {
                let _ = c.start_kill();
                let _ = c.wait().await;
            }
            FilterChild::Remote(pid) => {
                let pid = *pid;
                let _ = tokio::task::spawn_blocking(move || {
                    if let Some(client) = crate::privsep::engine() {
                        let _ = client
                            .control
                            .call(&crate::privsep::proto::Request::KillFilter { pid }, &[]);
                    }
                })
                .await;
            }
        }
    }
}

fn spawned_here(proc_: &Proc, who: Option<&Identity>) -> std::io::Result<Spawned> {
    let mut child = spawn(proc_, who)?;
    let (Some(stdin), Some(stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err(std::io::Error::other("no pipes"));
    };
    Ok(Spawned {
        stdin: pipe::Sender::from_owned_fd(stdin.into_owned_fd()?)?,
        stdout: pipe::Receiver::from_owned_fd(stdout.into_owned_fd()?)?,
        stderr: pipe::Receiver::from_owned_fd(stderr.into_owned_fd()?)?,
        child: FilterChild::Local(child),
    })
}

/// The parent starts it (by name: the command is the parent's configuration's, never ours)
/// and hands over its three pipes.
async fn spawned_by_parent(
    client: &'static crate::privsep::Client,
    name: &str,
) -> Result<Spawned, String> {
    use crate::privsep::proto::{Reply, Request};
    let req = Request::SpawnFilter {
        name: name.to_string(),
    };
    let answer = tokio::task::spawn_blocking(move || client.control.call(&req, &[]))
        .await
        .map_err(|e| e.to_string())??;
    let (pid, fds) = match answer {
        (Reply::Done { pid }, fds) if fds.len() == 3 => (pid, fds),
        (Reply::Failed(why), _) => return Err(why),
        _ => return Err(format!("{name}: fork_filter_process: unexpected reply")),
    };
    let mut fds = fds.into_iter();
    let (Some(i), Some(o), Some(e)) = (fds.next(), fds.next(), fds.next()) else {
        return Err(format!("{name}: no pipes"));
    };
    let pipes = (|| -> std::io::Result<_> {
        Ok((
            pipe::Sender::from_owned_fd(i)?,
            pipe::Receiver::from_owned_fd(o)?,
            pipe::Receiver::from_owned_fd(e)?,
        ))
    })();
    match pipes {
        Ok((stdin, stdout, stderr)) => Ok(Spawned {
            child: FilterChild::Remote(pid),
            stdin,
            stdout,
            stderr,
        }),
        Err(e) => {
            let mut c = FilterChild::Remote(pid);
            c.stop().await;
            Err(format!("{name}: pipes: {e}"))
        }
    }
}

/// Starts the process of `proc_` as `who`, with its stdin, stdout and stderr piped to us. Also
/// what the parent of a split daemon runs for its engine. Forked on the process's spawn thread
/// ([`crate::sys::spawn`]), so that it dies with this process.
pub fn spawn_std(proc_: &Proc, who: Option<&Identity>) -> std::io::Result<std::process::Child> {
    let (command, who) = (proc_.command.clone(), who.cloned());
    crate::sys::spawn::on_spawn_thread(move || filter_command(&command, who).spawn())
}

/// The unsplit daemon's [`spawn_std`], as a tokio child (killed when dropped).
fn spawn(proc_: &Proc, who: Option<&Identity>) -> std::io::Result<Child> {
    let runtime = tokio::runtime::Handle::try_current().map_err(std::io::Error::other)?;
    let (command, who) = (proc_.command.clone(), who.cloned());
    crate::sys::spawn::on_spawn_thread(move || {
        // tokio cannot adopt a std child, and what uses this one (`wait().await`, `start_kill`,
        // `kill_on_drop`) is tokio's; its `spawn` registers the child for reaping with the
        // runtime it runs in, so the spawn thread, none of the runtime's, enters ours for it.
        let _in = runtime.enter();
        let mut cmd = Command::from(filter_command(&command, who));
        cmd.kill_on_drop(true);
        cmd.spawn()
    })
}

/// `sh -c "exec CMD"` with the three pipes, to be run as `who` (see [`drop_for_filter`]), by
/// this process.
fn filter_command(command: &str, who: Option<Identity>) -> std::process::Command {
    use std::os::unix::process::CommandExt;
    let parent = nix::unistd::getpid();
    let mut cmd = std::process::Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(shell_command(command))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: between fork and exec only async-signal-safe calls: chroot, chdir, setgroups,
    // setresgid, setresuid, prctl, getppid, setsid, on values prepared before the fork.
    unsafe {
        cmd.pre_exec(move || drop_for_filter(who.as_ref(), parent));
    }
    cmd
}

/// Between fork and exec of a filter: only async-signal-safe calls (chroot, chdir, setgroups,
/// setresgid, setresuid, prctl, getppid, setsid) on values prepared before the fork.
fn drop_for_filter(who: Option<&Identity>, parent: nix::unistd::Pid) -> std::io::Result<()> {
    if let Some(w) = who {
        if let Some(dir) = &w.chroot {
            nix::unistd::chroot(dir.as_str())?;
            nix::unistd::chdir("/")?;
        }
        let gid = nix::unistd::Gid::from_raw(w.gid);
        let uid = nix::unistd::Uid::from_raw(w.uid);
        nix::unistd::setgroups(&[gid])?;
        nix::unistd::setresgid(gid, gid, gid)?;
        nix::unistd::setresuid(uid, uid, uid)?;
    }
    // Die with whoever started us (the split daemon's root parent, or the unsplit daemon): a
    // filter that ignores the end of its stdin outlived a daemon killed by SIGKILL, as the
    // children of 6.8's fork_filter_process still do (ours on purpose: README, "Other
    // differences"). After the uid switch, which clears the setting.
    crate::sys::spawn::die_with(parent)?;
    // As fork_filter_process: a session of its own, so terminal signals meant for smtpd do
    // not reach it.
    let _ = nix::unistd::setsid();
    Ok(())
}

/// What the daemon does when an instance ends: called once, with the reason line to log.
pub type OnDeath = Box<dyn FnOnce(String) + Send>;

/// Starts the process and runs the handshake. `limit` bounds the wait for `register|ready`.
pub async fn start(
    proc_: &Proc,
    who: Option<&Identity>,
    config: String,
    limit: Option<Duration>,
    on_death: OnDeath,
) -> Result<Arc<Instance>, StartError> {
    let spawned = match crate::privsep::engine() {
        Some(client) => spawned_by_parent(client, &proc_.name)
            .await
            .map_err(StartError)?,
        None => spawned_here(proc_, who).map_err(|e| {
            StartError(format!(
                "{}: fork_filter_process: {}",
                proc_.name,
                rsmtpd_config::lexer::strerror(&e)
            ))
        })?,
    };
    let Spawned {
        mut child,
        mut stdin,
        mut stdout,
        stderr,
    } = spawned;
    let name = proc_.name.clone();
    tokio::spawn(stderr_lines(name.clone(), stderr));
    stdin
        .write_all(config.as_bytes())
        .await
        .map_err(|_| StartError(format!("warn: lost processor: {name} exited abnormally")))?;
    let mut reader = LineReader::new();
    let (mut phases, mut reports, mut reports_out) = (0u32, 0u32, 0u32);
    let handshake = async {
        let mut buf = vec![0u8; 4096];
        loop {
            while let Some(item) = reader.next_line() {
                let line = match item {
                    ReadLine::Line(l) => l,
                    ReadLine::TooLong => {
                        return Err(format!("lookup: {name}: line too long"));
                    }
                };
                match parse_line(&line, false) {
                    Ok(FilterMessage::Register(Register::Ready)) => return Ok(()),
                    Ok(FilterMessage::Register(Register::Filter(i))) => phases |= 1 << i,
                    Ok(FilterMessage::Register(Register::Report { smtp_out, event })) => {
                        let bits = match event {
                            None => u32::MAX,
                            Some(e) => REPORT_EVENTS
                                .iter()
                                .position(|x| *x == e)
                                .map_or(0, |i| 1 << i),
                        };
                        if smtp_out {
                            reports_out |= bits;
                        } else {
                            reports |= bits;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => return Err(format!("lookup: {e}")),
                }
            }
            match stdout.read(&mut buf).await {
                Ok(0) | Err(_) => {
                    return Err(format!("warn: lost processor: {name} exited abnormally"))
                }
                Ok(n) => reader.push(&buf[..n]),
            }
        }
    };
    let shaken = match limit {
        Some(l) => tokio::time::timeout(l, handshake)
            .await
            .unwrap_or_else(|_| Err(format!("warn: processor {name}: no register|ready"))),
        None => handshake.await,
    };
    if let Err(e) = shaken {
        child.stop().await;
        return Err(StartError(e));
    }
    let (wtx, wrx) = mpsc::unbounded_channel::<Vec<u8>>();
    static SERIAL: AtomicUsize = AtomicUsize::new(1);
    let inst = Arc::new(Instance {
        name: name.clone(),
        serial: SERIAL.fetch_add(1, Ordering::Relaxed) as u64,
        writer: wtx,
        queued: AtomicUsize::new(0),
        room: tokio::sync::Notify::new(),
        sessions: Mutex::new(HashMap::new()),
        phases,
        reports,
        reports_out,
        dead: AtomicBool::new(false),
        abort: tokio::sync::Notify::new(),
        abort_reason: Mutex::new(None),
    });
    tokio::spawn(supervise(
        inst.clone(),
        child,
        stdin,
        wrx,
        stdout,
        reader,
        on_death,
    ));
    Ok(inst)
}

/// The filter's stderr, a line at a time, to the log as lka_proc.c's processor_errfd.
async fn stderr_lines(name: String, mut err: pipe::Receiver) {
    let mut reader = LineReader::new();
    let mut buf = vec![0u8; 4096];
    loop {
        match err.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => reader.push(&buf[..n]),
        }
        while let Some(item) = reader.next_line() {
            match item {
                ReadLine::Line(l) => {
                    log::warn(&format!("{}: {}", name, String::from_utf8_lossy(&l)))
                }
                // A line without end is dropped rather than held forever.
                ReadLine::TooLong => {
                    reader = LineReader::new();
                    log::warn(&format!("{}: (line too long)", name));
                }
            }
        }
    }
}

/// Runs an instance until it dies or breaks the protocol, then fails its sessions and reports.
async fn supervise(
    inst: Arc<Instance>,
    mut child: FilterChild,
    mut stdin: pipe::Sender,
    mut wrx: mpsc::UnboundedReceiver<Vec<u8>>,
    mut stdout: pipe::Receiver,
    mut reader: LineReader,
    on_death: OnDeath,
) {
    let write_inst = inst.clone();
    let writer = async move {
        while let Some(first) = wrx.recv().await {
            // Gather what is queued into one write: reports come in bursts.
            let mut batch = first;
            while let Ok(more) = wrx.try_recv() {
                batch.extend_from_slice(&more);
                if batch.len() > 256 * 1024 {
                    break;
                }
            }
            if stdin.write_all(&batch).await.is_err() {
                return;
            }
            write_inst.written(batch.len());
        }
    };
    let read_inst = inst.clone();
    let reading = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            while let Some(item) = reader.next_line() {
                let line = match item {
                    ReadLine::Line(l) => l,
                    ReadLine::TooLong => {
                        return Some(format!("lookup: {}: filter line too long", read_inst.name))
                    }
                };
                match parse_line(&line, true) {
                    Ok(FilterMessage::Result {
                        sessid,
                        token,
                        response,
                    }) => read_inst.deliver(
                        sessid,
                        ToSession::Result {
                            from: read_inst.serial,
                            token,
                            response,
                        },
                    ),
                    Ok(FilterMessage::DataLine {
                        sessid,
                        token,
                        line,
                    }) => read_inst.deliver(
                        sessid,
                        ToSession::DataLine {
                            from: read_inst.serial,
                            token,
                            line,
                        },
                    ),
                    Ok(FilterMessage::Report { sessid, message }) => read_inst.deliver(
                        sessid,
                        ToSession::Report {
                            name: read_inst.name.clone(),
                            message,
                        },
                    ),
                    // register lines after ready: processor_register accepts them (and a late
                    // hook has no effect on built chains).
                    Ok(FilterMessage::Register(_)) => {}
                    Err(e) => return Some(format!("lookup: {e}")),
                }
            }
            match stdout.read(&mut buf).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => reader.push(&buf[..n]),
            }
        }
    };
    let abort_inst = inst.clone();
    let aborted = async move {
        abort_inst.abort.notified().await;
        abort_inst.abort_reason.lock().ok().and_then(|r| r.clone())
    };
    let broke = tokio::select! {
        r = reading => r,
        _ = writer => None,
        r = aborted => r,
    };
    // Stop it for good before anyone starts another.
    child.stop().await;
    inst.fail_all();
    let mut why = Vec::new();
    if let Some(b) = broke {
        why.push(b);
    }
    // fork_filter_process's child always ends with _exit(1) after system(): OpenSMTPD says
    // "exited abnormally" however the filter itself ended.
    why.push(format!(
        "warn: lost processor: {} exited abnormally",
        inst.name
    ));
    on_death(why.join("\n"));
}

/// A `config|` block for a process.
pub fn config_for(smtp_in: bool, smtp_out: bool, admd: &str) -> String {
    config_lines(
        "6.8.0p2",
        rsmtpd_protocol::server::SESSION_TIMEOUT.as_secs(),
        smtp_in,
        smtp_out,
        admd,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sleeper() -> Proc {
        Proc {
            name: "sleeper".into(),
            command: "/bin/sleep 30".into(),
            user: None,
            group: None,
            chroot: None,
            from_filter: true,
            at: Default::default(),
        }
    }

    /// A filter dies with the *thread* that forked it (`PR_SET_PDEATHSIG`): one started for a
    /// thread that then ends (the parent's control thread, a tokio worker leaving the pool)
    /// lives on, because the spawn thread forked it.
    #[test]
    fn a_filter_outlives_the_thread_that_asked_for_it() {
        let mut child = std::thread::spawn(|| spawn_std(&sleeper(), None))
            .join()
            .expect("the asking thread")
            .expect("started");
        // Time for a parent-death signal to arrive, were there one.
        std::thread::sleep(Duration::from_millis(500));
        let alive = child.try_wait().map(|s| s.is_none());
        let _ = child.kill();
        let _ = child.wait();
        assert!(matches!(alive, Ok(true)), "{alive:?}");
    }

    /// The same for the unsplit daemon's tokio child, which the runtime still reaps.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_tokio_filter_outlives_the_thread_that_asked_for_it() {
        let runtime = tokio::runtime::Handle::current();
        let mut child = std::thread::spawn(move || {
            let _in = runtime.enter();
            spawn(&sleeper(), None)
        })
        .join()
        .expect("the asking thread")
        .expect("started");
        tokio::time::sleep(Duration::from_millis(500)).await;
        let alive = child.try_wait().map(|s| s.is_none());
        let _ = child.start_kill();
        let ended = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
        assert!(matches!(alive, Ok(true)), "{alive:?}");
        assert!(matches!(ended, Ok(Ok(_))), "reaped: {ended:?}");
    }
}
