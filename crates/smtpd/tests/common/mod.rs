//! Running the real `smtpd` binary for end-to-end tests: a daemon on a free loopback port with
//! its own spool, its log lines collected, and a minimal SMTP client that sends exact bytes.

#![allow(dead_code)]

pub mod certs;
pub mod netns;
pub mod peer;
pub mod procfs;
pub mod refns;
pub mod sink;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const REAL_SMTPD: &str = "/usr/sbin/smtpd";
/// The same OpenSMTPD with the OpenSSL 3 key fix preloaded (tests/tools/opensmtpd-tls.sh), for
/// TLS: Debian's binary fails every server-side handshake.
pub const TLS_SMTPD: &str = "/opt/opensmtpd-tls/sbin/smtpd";

#[path = "../../../../tests/support/skip.rs"]
mod skip;
#[allow(unused_imports)]
pub use skip::*;

/// The repository's `tests/fixtures/` (copies of what the tests need, so a clone is enough).
pub fn fixtures_dir() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

/// A file of the seed (`tests/fixtures/seed/configs/NAME`, copied from the seed document beside the project).
pub fn seed_config(name: &str) -> String {
    let p = fixtures_dir().join("seed/configs").join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// `n` ports nobody listens on right now, all different: held open together while they are
/// picked (one `free_port` after another may be given the same port twice, and a config with
/// it twice fails to start).
pub fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<TcpListener> = (0..n)
        .filter_map(|_| TcpListener::bind("127.0.0.1:0").ok())
        .collect();
    held.iter()
        .map(|l| l.local_addr().map(|a| a.port()).unwrap_or(0))
        .collect()
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

/// The host name the daemon will use (the same function it calls).
pub fn hostname() -> String {
    rsmtpd::sys::system::server_hostname().unwrap_or_else(|| "localhost".into())
}

fn set_mode(p: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode));
}

pub struct Daemon {
    /// Behind a mutex so that `wait_log_for(&self)` can see that it exited.
    child: Mutex<Child>,
    pub dir: Arc<tempfile::TempDir>,
    log: Arc<Mutex<Vec<String>>>,
    /// Set when its stderr ends: no more log lines can come.
    log_done: Arc<std::sync::atomic::AtomicBool>,
    pub port: u16,
    /// How it was started, for `restart`.
    command: Vec<String>,
    resolver: Option<String>,
}

/// Why a daemon did not come up.
#[derive(Debug)]
pub struct StartFailure {
    /// Its exit status, when it exited (else it did not log that it was ready in time).
    pub exited: Option<std::process::ExitStatus>,
    pub log: Vec<String>,
}

impl StartFailure {
    /// The port was taken between `free_port` and the daemon's bind: worth another port.
    pub fn port_taken(&self) -> bool {
        self.exited.is_some()
            && self
                .log
                .iter()
                .any(|l| l.contains("Address already in use"))
    }

    fn describe(&self, command: &[String]) -> String {
        let last = self
            .log
            .last()
            .map(String::as_str)
            .unwrap_or("(nothing logged)");
        match self.exited {
            Some(st) => format!(
                "the daemon exited at start ({st}); its last log line: {last}\n\
                 command: {}\nlog:\n{}",
                command.join(" "),
                self.log.join("\n")
            ),
            None => format!(
                "the daemon did not log that it was ready; its last log line: {last}\n\
                 command: {}\nlog:\n{}",
                command.join(" "),
                self.log.join("\n")
            ),
        }
    }
}

/// How many ports `launch` tries when the chosen one was taken before the daemon bound it.
const PORT_TRIES: usize = 8;

impl Daemon {
    /// Starts `smtpd -d` on `config`, in which `@PORT@` and `@DIR@` are replaced by a free port
    /// and the test's folder.
    pub fn start(config: &str, args: &[&str]) -> Daemon {
        Self::start_with(env!("CARGO_BIN_EXE_smtpd"), config, args)
    }

    pub fn start_with(bin: &str, config: &str, args: &[&str]) -> Daemon {
        Self::launch(&[], bin, config, args, Some("127.0.0.1:1"))
    }

    /// Starts `bin` behind a command prefix (`ip netns exec NS`), with the test resolver or, when
    /// `resolver` is None, the system's (/etc/netns/NS/resolv.conf inside a namespace).
    /// Fails the test at once, with the daemon's last log line, when it exits at start; picks
    /// another port when the chosen one was taken meanwhile.
    pub fn launch(
        prefix: &[&str],
        bin: &str,
        config: &str,
        args: &[&str],
        resolver: Option<&str>,
    ) -> Daemon {
        match Self::try_launch(prefix, bin, config, args, resolver) {
            Ok(d) => d,
            Err((f, command)) => panic!("{}", f.describe(&command)),
        }
    }

    /// [`Daemon::launch`] that returns why it did not start instead of failing the test.
    pub fn try_launch(
        prefix: &[&str],
        bin: &str,
        config: &str,
        args: &[&str],
        resolver: Option<&str>,
    ) -> Result<Daemon, (StartFailure, Vec<String>)> {
        let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
        // Started as root, our daemon's engine runs as the queue user: as with OpenSMTPD's
        // unprivileged processes, the spool, tables and scripts in here must be reachable by
        // it (files are 0644 by the umask; tempdir's 0700 would shut it out).
        set_mode(dir.path(), 0o711);
        let mut tries = 0;
        loop {
            tries += 1;
            let port = free_port();
            let text = config
                .replace("@PORT@", &port.to_string())
                .replace("@DIR@", dir.path().to_str().expect("utf-8 dir"));
            let conf = dir.path().join("smtpd.conf");
            std::fs::write(&conf, text).expect("write config");
            // -v: its last start-up line says the listeners are up, which is when tests may connect.
            let mut command: Vec<String> = prefix.iter().map(|s| s.to_string()).collect();
            if bin == REAL_SMTPD || bin == TLS_SMTPD {
                command.extend(real_private_namespace());
            }
            command.push(bin.to_string());
            command.extend(["-d", "-v"].iter().map(|s| s.to_string()));
            command.extend(args.iter().map(|s| s.to_string()));
            command.push("-f".into());
            command.push(conf.to_string_lossy().into_owned());
            match Self::try_spawn(
                dir.clone(),
                port,
                command.clone(),
                resolver.map(str::to_string),
            ) {
                Ok(d) => return Ok(d),
                Err(f) if f.port_taken() && config.contains("@PORT@") && tries < PORT_TRIES => {
                    continue
                }
                Err(f) => return Err((f, command)),
            }
        }
    }

    fn try_spawn(
        dir: Arc<tempfile::TempDir>,
        port: u16,
        command: Vec<String>,
        resolver: Option<String>,
    ) -> Result<Daemon, StartFailure> {
        let spool = dir.path().join("spool");
        let mut cmd = Command::new(&command[0]);
        cmd.args(&command[1..])
            .env("SMTPD_SPOOL", &spool)
            .env("SMTPD_SOCKET", dir.path().join("smtpd.sock"));
        match &resolver {
            Some(r) => cmd.env("SMTPD_RESOLVER", r),
            None => cmd.env_remove("SMTPD_RESOLVER"),
        };
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", command[0]));
        let log = Arc::new(Mutex::new(Vec::new()));
        let log_done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        if let Some(err) = child.stderr.take() {
            let (log, done) = (log.clone(), log_done.clone());
            std::thread::spawn(move || {
                for line in BufReader::new(err).lines().map_while(Result::ok) {
                    if let Ok(mut l) = log.lock() {
                        l.push(line);
                    }
                }
                done.store(true, std::sync::atomic::Ordering::SeqCst);
            });
        }
        let d = Daemon {
            child: Mutex::new(child),
            dir,
            log,
            log_done,
            port,
            command,
            resolver,
        };
        // Generous: OpenSMTPD's start waits on DNS when the DNS server is silent; but a daemon
        // that exits is reported at once.
        match d.try_wait_log_for(Duration::from_secs(60), |l| {
            l == "debug: smtpd: offline scanning done"
        }) {
            Ok(_) => Ok(d),
            Err(exited) => Err(StartFailure {
                exited,
                log: d.log(),
            }),
        }
    }

    /// The same daemon started again on the same spool (after `stop`).
    pub fn restart(&self) -> Daemon {
        Self::try_spawn(
            self.dir.clone(),
            self.port,
            self.command.clone(),
            self.resolver.clone(),
        )
        .unwrap_or_else(|f| panic!("restart: {}", f.describe(&self.command)))
    }

    pub fn log(&self) -> Vec<String> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Waits (up to 10 s) for a log line, and returns it.
    pub fn wait_log(&self, pred: impl Fn(&str) -> bool) -> String {
        self.wait_log_for(Duration::from_secs(10), pred)
    }

    /// Waits up to `limit` for a log line; fails as soon as the daemon has exited without
    /// logging it.
    pub fn wait_log_for(&self, limit: Duration, pred: impl Fn(&str) -> bool) -> String {
        match self.try_wait_log_for(limit, pred) {
            Ok(l) => l,
            Err(Some(st)) => panic!(
                "log line not found: the daemon exited ({st}); log:\n{}",
                self.log().join("\n")
            ),
            Err(None) => panic!(
                "log line not found in {limit:?}; log:\n{}",
                self.log().join("\n")
            ),
        }
    }

    /// The line, or why not: `Err(Some(status))` when the daemon exited without logging it,
    /// `Err(None)` when `limit` passed.
    fn try_wait_log_for(
        &self,
        limit: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Result<String, Option<std::process::ExitStatus>> {
        let deadline = Instant::now() + limit;
        let mut exited: Option<(std::process::ExitStatus, Instant)> = None;
        loop {
            if let Some(l) = self.log().into_iter().find(|l| pred(l)) {
                return Ok(l);
            }
            if let Some((st, at)) = exited {
                // Its stderr ended (or its children, which may hold it, had a moment to go):
                // nothing more will come.
                if self.log_done.load(std::sync::atomic::Ordering::SeqCst)
                    || at.elapsed() > Duration::from_secs(1)
                {
                    return Err(Some(st));
                }
            } else if let Some(st) = self.exit_status() {
                exited = Some((st, Instant::now()));
                continue;
            }
            if Instant::now() > deadline {
                return Err(None);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Its exit status once it has exited.
    pub fn exit_status(&self) -> Option<std::process::ExitStatus> {
        self.child
            .lock()
            .ok()
            .and_then(|mut c| c.try_wait().ok().flatten())
    }

    pub fn spool(&self) -> PathBuf {
        self.dir.path().join("spool")
    }

    /// The daemon's process id. For the real OpenSMTPD (in a mount namespace of its own, see
    /// `launch`) `/proc/PID/root/var/spool/smtpd` is its spool.
    pub fn pid(&self) -> u32 {
        self.child.lock().map(|c| c.id()).unwrap_or(0)
    }

    /// Whether this is the real OpenSMTPD (in its private mount namespace).
    pub fn is_real(&self) -> bool {
        self.command
            .iter()
            .any(|c| c == REAL_SMTPD || c == TLS_SMTPD)
    }

    /// The prefix that runs a command where the daemon sees its files: for the real OpenSMTPD,
    /// `nsenter` into its mount namespace (its spool, and its control socket
    /// /var/run/smtpd.sock, which its smtpctl always uses); for ours, nothing.
    pub fn ns_prefix(&self) -> Vec<String> {
        if !self.is_real() {
            return vec![];
        }
        vec![
            "nsenter".into(),
            "-t".into(),
            self.pid().to_string(),
            "-m".into(),
            "--".into(),
        ]
    }

    /// SIGKILL, as a crash.
    /// SIGKILL to the daemon, then waits (10 s) until its processes are gone: started as root it
    /// is a parent and an engine, and the engine (which holds the listeners and the control
    /// socket) dies a moment after its parent, by its parent-death signal.
    pub fn kill9(&mut self) {
        let pid = self.pid();
        let children = descendants(pid);
        if let Ok(c) = self.child.get_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while children
            .iter()
            .any(|c| std::path::Path::new(&format!("/proc/{c}")).exists())
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGTERM, and the exit status.
    pub fn stop(&mut self) -> Option<i32> {
        self.signal(nix::sys::signal::Signal::SIGTERM)
    }

    /// Sends a signal, waits (10 s) for the daemon to exit; its exit status (None: it did not
    /// exit, and was killed, or a signal ended it).
    pub fn signal(&mut self, sig: nix::sys::signal::Signal) -> Option<i32> {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid() as i32), sig);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(st) = self.exit_status() {
                std::thread::sleep(Duration::from_millis(50));
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.kill9();
        None
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The command prefix that gives the real OpenSMTPD a private spool and control socket: a mount
/// namespace with a fresh tmpfs on /var/spool/smtpd (it always uses that spool; no run sees what
/// an earlier one left, nor the machine's, whatever its modes) and on /run (its control socket
/// /var/run/smtpd.sock), so that any number of them run at once beside the machine's own. The
/// mount point is made first: Debian's package does not ship it (smtpd makes it on first start),
/// so a machine where OpenSMTPD never ran has none.
pub fn real_private_namespace() -> Vec<String> {
    [
        "unshare",
        "-m",
        "sh",
        "-c",
        "mkdir -p /var/spool/smtpd && mount -t tmpfs -o mode=0711 tmpfs /var/spool/smtpd && \
         mount -t tmpfs -o mode=0755 tmpfs /run && exec \"$0\" \"$@\"",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// A client on an already connected stream.
pub fn client_from(stream: TcpStream) -> Client {
    let reader = BufReader::new(stream.try_clone().expect("clone"));
    Client { stream, reader }
}

/// An SMTP client that sends exactly what it is given.
pub struct Client {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let reader = BufReader::new(stream.try_clone().expect("clone"));
        Client { stream, reader }
    }

    /// One whole reply (all its lines), CRLFs included.
    pub fn reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let mut line = Vec::new();
            match self.reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => return all,
                Ok(_) => {}
            }
            let text = String::from_utf8_lossy(&line).into_owned();
            let more = text.as_bytes().get(3) == Some(&b'-');
            all.push_str(&text);
            if !more {
                return all;
            }
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
    }

    /// Sends a command line (CRLF added) and returns the reply.
    pub fn cmd(&mut self, line: &str) -> String {
        self.send(format!("{}\r\n", line).as_bytes());
        self.reply()
    }

    /// How long `reply` waits (10 s unless changed).
    pub fn set_read_timeout(&self, limit: Duration) {
        let _ = self.stream.set_read_timeout(Some(limit));
    }

    /// Whether the server closed the connection.
    pub fn closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(self.reader.read(&mut b), Ok(0))
    }
}

/// Connects from a chosen loopback source address (127.0.0.x).
pub fn connect_from(src: &str, addr: SocketAddr) -> Client {
    let src_ip: std::net::IpAddr = src.parse().expect("source address");
    bind_connect(src_ip, addr)
}

/// Binds a TCP socket to `src` then connects (std has no bind-before-connect; nix does).
fn bind_connect(src: std::net::IpAddr, dst: SocketAddr) -> Client {
    use nix::sys::socket::{
        bind, connect, socket, AddressFamily, SockFlag, SockType, SockaddrIn, SockaddrIn6,
    };
    use std::os::fd::{FromRawFd, IntoRawFd};
    let family = if src.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    let fd = socket(family, SockType::Stream, SockFlag::empty(), None).expect("socket");
    let raw = fd.into_raw_fd();
    match (src, dst) {
        (std::net::IpAddr::V4(s), SocketAddr::V4(d)) => {
            bind(raw, &SockaddrIn::from(std::net::SocketAddrV4::new(s, 0))).expect("bind");
            connect(raw, &SockaddrIn::from(d)).expect("connect");
        }
        (std::net::IpAddr::V6(s), SocketAddr::V6(d)) => {
            bind(
                raw,
                &SockaddrIn6::from(std::net::SocketAddrV6::new(s, 0, 0, 0)),
            )
            .expect("bind");
            connect(raw, &SockaddrIn6::from(d)).expect("connect");
        }
        _ => panic!("address families differ"),
    }
    // SAFETY: raw is a connected socket we own and hand over to TcpStream.
    let stream = unsafe { TcpStream::from_raw_fd(raw) };
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let reader = BufReader::new(stream.try_clone().expect("clone"));
    Client { stream, reader }
}

/// One client session: the banner, then each command's reply; stops when the server closes.
pub fn converse(src: &str, addr: SocketAddr, cmds: &[&str]) -> Vec<String> {
    let mut c = connect_from(src, addr);
    let mut out = vec![c.reply()];
    for cmd in cmds {
        if out.last().is_some_and(|r| r.is_empty()) {
            break;
        }
        out.push(c.cmd(cmd));
    }
    out
}

/// Session log lines (`smtp ...`, `filters ...`) with their ids and queue ids replaced, so two
/// runs compare. Deliveries are left out: they run after the session, on their own clock.
pub fn normalized_session_log(log: &[String]) -> Vec<String> {
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    log.iter()
        .filter(|l| l.len() > 17 && l.as_bytes()[16] == b' ' && hex(&l[..16], 16))
        .filter(|l| l[17..].starts_with("smtp ") || l[17..].starts_with("filters "))
        .map(|l| {
            l[17..]
                .split(' ')
                .map(|w| {
                    if let Some(v) = w.strip_prefix("msgid=") {
                        if hex(v, 8) {
                            return "msgid=MSGID".to_string();
                        }
                    }
                    if let Some(v) = w.strip_prefix("evpid=") {
                        if hex(v, 16) {
                            return "evpid=EVPID".to_string();
                        }
                    }
                    w.to_string()
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

/// Replies with the queue id in `250 2.0.0 XXXXXXXX Message accepted` replaced.
pub fn normalized_replies(replies: &[String]) -> Vec<String> {
    replies
        .iter()
        .map(|r| match r.strip_prefix("250 2.0.0 ") {
            Some(rest) if rest.len() > 9 && rest.as_bytes()[8] == b' ' => {
                format!("250 2.0.0 MSGID{}", &rest[8..])
            }
            _ => r.clone(),
        })
        .collect()
}

/// One real OpenSMTPD at a time, across test processes too. Those started by `Daemon` have a
/// private spool and control socket (`real_private_namespace`) and need it no more; it stays for
/// tests that run OpenSMTPD's programs on the machine's own paths, and to limit the load.
pub fn real_lock() -> RealLock {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open("/tmp/rsmtpd-real-smtpd.lock")
        .expect("lock file");
    // Released when the file is closed.
    match nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive) {
        Ok(l) => RealLock(Some(l)),
        Err(_) => RealLock(None),
    }
}

pub struct RealLock(#[allow(dead_code)] Option<nix::fcntl::Flock<std::fs::File>>);

/// Whether the reference program can be run here (installed, and we are root as it requires).
pub fn real_available() -> bool {
    std::path::Path::new(REAL_SMTPD).exists() && nix::unistd::geteuid().is_root()
}

/// [`real_available`], or the skip of `what` reported (`SKIPPED: test: what: ...`, a failure
/// under `RSMTPD_CI=1`): `if require_real("the re-check against OpenSMTPD") { ... }`.
pub fn require_real(what: &str) -> bool {
    require(
        real_available(),
        &format!("{what}: needs root and {REAL_SMTPD} (the opensmtpd package)"),
    )
}

/// The smtpctl binary of this build (another package of the workspace, built beside us).
pub fn smtpctl() -> PathBuf {
    let exe = std::env::current_exe().expect("test exe");
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target dir")
        .to_path_buf();
    let p = dir.join("smtpctl");
    assert!(
        p.exists(),
        "{} not built (cargo test --workspace builds it)",
        p.display()
    );
    p
}

/// Runs smtpctl under a name (`sendmail`, `mailq`...), as the daemon's client.
pub fn ctl(d: &Daemon, name: &str, args: &[&str], stdin: &str, uid: Option<u32>) -> Output {
    ctl_with(&smtpctl(), d, name, args, stdin, uid)
}

/// Runs `bin` under a name: itself when that is its name, else through a link in the daemon's
/// folder. OpenSMTPD's smtpctl ignores `SMTPD_SOCKET` and `SMTPD_SPOOL`.
pub fn ctl_with(
    bin: &std::path::Path,
    d: &Daemon,
    name: &str,
    args: &[&str],
    stdin: &str,
    uid: Option<u32>,
) -> Output {
    let exe = if bin.file_name().is_some_and(|n| n == name) {
        bin.to_path_buf()
    } else {
        let link = d.dir.path().join(name);
        if !link.exists() {
            std::os::unix::fs::symlink(bin, &link).expect("symlink");
        }
        link
    };
    // The real daemon's control socket is in its own mount namespace: enter it (as root, then
    // becoming `uid` there).
    let prefix = d.ns_prefix();
    let mut c = match prefix.split_first() {
        Some((nsenter, rest)) => {
            let mut c = Command::new(nsenter);
            let (opts, dashdash) = rest.split_at(rest.len() - 1);
            c.args(opts);
            if let Some(u) = uid {
                c.args(["-S", &u.to_string(), "-G", &u.to_string()]);
            }
            c.args(dashdash).arg(&exe);
            c
        }
        None => {
            let mut c = Command::new(&exe);
            if let Some(u) = uid {
                c.uid(u).gid(u);
            }
            c
        }
    };
    c.args(args)
        .env("SMTPD_SOCKET", d.dir.path().join("smtpd.sock"))
        .env("SMTPD_SPOOL", d.spool())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("smtpctl");
    if let Some(mut i) = child.stdin.take() {
        use std::io::Write;
        let _ = i.write_all(stdin.as_bytes());
    }
    child.wait_with_output().expect("smtpctl output")
}

// --- deliveries -----------------------------------------------------------------------------

/// Whether the tests run as root: deliveries then run as another user, and the real OpenSMTPD
/// can be started.
/// For tests whose recorded dialogues send to root@localhost: true if they can run here, else
/// reports the skip.
pub fn root_recipient_ok() -> bool {
    require(
        is_root(),
        "RCPT TO:<root@localhost> needs a daemon run as root: an unprivileged one cannot read /root/.forward and answers 524, as OpenSMTPD does",
    )
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// The uid deliveries run as: as root an ordinary user whose folders the test makes, else us.
pub fn delivery_uid(root_uid: u32) -> u32 {
    if is_root() {
        root_uid
    } else {
        nix::unistd::geteuid().as_raw()
    }
}

/// A folder under the test's folder that the delivery user `uid` owns (when root; otherwise it
/// is ours anyway), with the test's folder made traversable for that user.
pub fn user_dir(d: &Daemon, rel: &str, uid: u32) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(d.dir.path(), std::fs::Permissions::from_mode(0o711));
    let p = d.dir.path().join(rel);
    std::fs::create_dir_all(&p).expect("mkdir");
    if is_root() {
        std::os::unix::fs::chown(&p, Some(uid), Some(uid)).expect("chown");
    }
    p
}

/// The texts of the files in `dir` (a Maildir's `new/`), sorted.
pub fn mail_texts(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .collect();
    v.sort();
    v
}

impl Daemon {
    /// Where it listens (`127.0.0.1:PORT`).
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }
}

/// Every process below `pid`, from the parent pids in /proc/*/stat.
fn descendants(pid: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(p) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        // The command name is in parentheses and may hold spaces: the fields follow the last ')'.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|f| f.parse::<u32>().ok());
        if let Some(ppid) = ppid {
            parents.push((p, ppid));
        }
    }
    let mut out = Vec::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        for &(c, pp) in &parents {
            if pp == p && !out.contains(&c) {
                out.push(c);
                todo.push(c);
            }
        }
    }
    out
}

/// An SQLite database at `db` made by Python's sqlite3 from `sql` (a script of statements),
/// readable by all (table-sqlite runs as another user): the tables of the `proc:` tests.
pub fn sqlite_db(db: &std::path::Path, sql: &str) {
    use std::os::unix::fs::PermissionsExt;
    let out = Command::new("python3")
        .arg("-c")
        .arg("import sqlite3, sys\nc = sqlite3.connect(sys.argv[1])\nc.executescript(sys.argv[2])\nc.commit()\n")
        .arg(db)
        .arg(sql)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::set_permissions(db, std::fs::Permissions::from_mode(0o644));
}
