//! Running the real `smtpd` binary for end-to-end tests: a daemon on a free loopback port with
//! its own spool, its log lines collected, and a minimal SMTP client that sends exact bytes.

#![allow(dead_code)]

pub mod refns;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const REAL_SMTPD: &str = "/usr/sbin/smtpd";

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

pub struct Daemon {
    child: Child,
    pub dir: Arc<tempfile::TempDir>,
    log: Arc<Mutex<Vec<String>>>,
    pub port: u16,
    /// How it was started, for `restart`.
    command: Vec<String>,
    resolver: Option<String>,
}

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
    pub fn launch(
        prefix: &[&str],
        bin: &str,
        config: &str,
        args: &[&str],
        resolver: Option<&str>,
    ) -> Daemon {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let text = config
            .replace("@PORT@", &port.to_string())
            .replace("@DIR@", dir.path().to_str().expect("utf-8 dir"));
        let conf = dir.path().join("smtpd.conf");
        std::fs::write(&conf, text).expect("write config");
        // -v: its last start-up line says the listeners are up, which is when tests may connect.
        let mut command: Vec<String> = prefix.iter().map(|s| s.to_string()).collect();
        if bin == REAL_SMTPD {
            // OpenSMTPD always uses /var/spool/smtpd: give each run a fresh one of its own, so
            // that no run sees what an earlier one left (it would retry and log it).
            command.extend(
                [
                    "unshare",
                    "-m",
                    "sh",
                    "-c",
                    "mount -t tmpfs -o mode=0711 tmpfs /var/spool/smtpd && exec \"$0\" \"$@\"",
                ]
                .iter()
                .map(|s| s.to_string()),
            );
        }
        command.push(bin.to_string());
        command.extend(["-d", "-v"].iter().map(|s| s.to_string()));
        command.extend(args.iter().map(|s| s.to_string()));
        command.push("-f".into());
        command.push(conf.to_string_lossy().into_owned());
        Self::spawn(Arc::new(dir), port, command, resolver.map(str::to_string))
    }

    fn spawn(
        dir: Arc<tempfile::TempDir>,
        port: u16,
        command: Vec<String>,
        resolver: Option<String>,
    ) -> Daemon {
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
            .expect("start smtpd");
        let log = Arc::new(Mutex::new(Vec::new()));
        if let Some(err) = child.stderr.take() {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(err).lines().map_while(Result::ok) {
                    if let Ok(mut l) = log.lock() {
                        l.push(line);
                    }
                }
            });
        }
        let d = Daemon {
            child,
            dir,
            log,
            port,
            command,
            resolver,
        };
        // Generous: OpenSMTPD's start waits on DNS when the DNS server is silent.
        d.wait_log_for(Duration::from_secs(60), |l| {
            l == "debug: smtpd: offline scanning done"
        });
        d
    }

    /// The same daemon started again on the same spool (after `stop`).
    pub fn restart(&self) -> Daemon {
        Self::spawn(
            self.dir.clone(),
            self.port,
            self.command.clone(),
            self.resolver.clone(),
        )
    }

    pub fn log(&self) -> Vec<String> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Waits (up to 10 s) for a log line, and returns it.
    pub fn wait_log(&self, pred: impl Fn(&str) -> bool) -> String {
        self.wait_log_for(Duration::from_secs(10), pred)
    }

    pub fn wait_log_for(&self, limit: Duration, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(l) = self.log().into_iter().find(|l| pred(l)) {
                return l;
            }
            if Instant::now() > deadline {
                panic!("log line not found; log:\n{}", self.log().join("\n"));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn spool(&self) -> PathBuf {
        self.dir.path().join("spool")
    }

    /// The daemon's process id. For the real OpenSMTPD (in a mount namespace of its own, see
    /// `launch`) `/proc/PID/root/var/spool/smtpd` is its spool.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, as a crash.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, and the exit status.
    pub fn stop(&mut self) -> Option<i32> {
        self.signal(nix::sys::signal::Signal::SIGTERM)
    }

    /// Sends a signal, waits (10 s) for the daemon to exit; its exit status (None: it did not
    /// exit, and was killed, or a signal ended it).
    pub fn signal(&mut self, sig: nix::sys::signal::Signal) -> Option<i32> {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), sig);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                std::thread::sleep(Duration::from_millis(50));
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        None
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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

/// One real OpenSMTPD at a time, across test processes too: it always uses /var/spool/smtpd and
/// /var/run/smtpd.sock. Hold the returned lock while it runs.
pub fn real_lock() -> RealLock {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open("/tmp/rsmtpd-real-smtpd.lock")
        .expect("lock file");
    // SAFETY: flock on a descriptor we own; released when the file is closed.
    unsafe {
        use std::os::fd::AsRawFd;
        libc::flock(f.as_raw_fd(), libc::LOCK_EX);
    }
    RealLock(f)
}

pub struct RealLock(#[allow(dead_code)] std::fs::File);

/// Whether the reference program can be run here (installed, and we are root as it requires).
pub fn real_available() -> bool {
    std::path::Path::new(REAL_SMTPD).exists() && nix::unistd::geteuid().is_root()
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
    let mut c = Command::new(&exe);
    c.args(args)
        .env("SMTPD_SOCKET", d.dir.path().join("smtpd.sock"))
        .env("SMTPD_SPOOL", d.spool())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(u) = uid {
        c.uid(u).gid(u);
    }
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
