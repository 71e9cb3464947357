//! Without `-d` the daemon logs to syslog, which is where an administrator's mail.log and their
//! fail2ban rules read it. Each server runs in a mount namespace of its own whose `/dev/log` is
//! a socket this test reads: the datagrams are glibc's (`<22>Nov 25 16:26:41 smtpd[PID]: ...`,
//! facility mail), with the same texts as the `-d` lines, for ours and for OpenSMTPD's.

use std::net::SocketAddr;
use std::os::unix::net::UnixDatagram;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::*;

struct Syslogged {
    child: Child,
    /// Every datagram so far. Read as they come: a syslog socket holds only a few unread
    /// datagrams (net.unix.max_dgram_qlen) before the sender blocks, as with a stuck syslogd.
    got: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
    port: u16,
}

impl Syslogged {
    /// `bin -F` (foreground, syslog) with private /dev, /run and /var/spool/smtpd.
    fn start(bin: &str, config: &str) -> Syslogged {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let conf = dir.path().join("smtpd.conf");
        std::fs::write(&conf, config.replace("@PORT@", &port.to_string())).expect("config");
        let log = dir.path().join("log");
        let sock = UnixDatagram::bind(&log).expect("bind the syslog socket");
        let got = Arc::new(Mutex::new(Vec::new()));
        let sink = got.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 8192];
            while let Ok(n) = sock.recv(&mut buf) {
                let line = String::from_utf8_lossy(&buf[..n]).into_owned();
                sink.lock().expect("lock").push(line);
            }
        });
        let script = "mount -t tmpfs -o mode=0711 tmpfs /var/spool/smtpd \
             && mount -t tmpfs tmpfs /run && mount -t tmpfs tmpfs /dev \
             && mknod -m 666 /dev/null c 1 3 && ln -s \"$1\" /dev/log && shift \
             && exec \"$@\"";
        let child = Command::new("unshare")
            .args(["-m", "sh", "-c", script, "sh"])
            .arg(&log)
            .arg(bin)
            .args(["-F", "-v", "-f"])
            .arg(&conf)
            .env("SMTPD_RESOLVER", "127.0.0.1:1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        let s = Syslogged {
            child,
            got,
            _dir: dir,
            port,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "{bin} did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        s
    }

    /// Every datagram until `until` matches one (or 10 s pass).
    fn read_until(&self, until: impl Fn(&str) -> bool) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let got = self.got.lock().expect("lock").clone();
            if got.iter().any(|l| until(l)) {
                return got;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.got.lock().expect("lock").clone()
    }
}

impl Drop for Syslogged {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
    }
}

/// `<PRI>Mmm dd hh:mm:ss smtpd[PID]: TEXT` → (PRI, TEXT), checking the rest of the header.
fn split(datagram: &str) -> (u32, String) {
    let rest = datagram.strip_prefix('<').expect("<PRI>");
    let (pri, rest) = rest.split_once('>').expect("<PRI>");
    let b = rest.as_bytes();
    assert!(rest.len() > 16, "{datagram}");
    assert!(
        b[3] == b' ' && b[6] == b' ' && b[9] == b':' && b[12] == b':' && b[15] == b' ',
        "timestamp as %h %e %T: {datagram}"
    );
    let tag = &rest[16..];
    let tag = tag.strip_prefix("smtpd[").expect("smtpd[PID]");
    let (pid, text) = tag.split_once("]: ").expect("]: ");
    assert!(pid.parse::<u32>().is_ok(), "{datagram}");
    (pri.parse().expect("PRI"), text.to_string())
}

fn session(port: u16) -> Vec<String> {
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    converse(
        "127.0.0.1",
        addr,
        &[
            "HELO client",
            "MAIL FROM:<a@example.net>",
            "RCPT TO:<nobody@example.com>",
            "QUIT",
        ],
    )
}

const CONFIG: &str = "listen on 127.0.0.1 port @PORT@\naction \"x\" mbox\nmatch from any for domain \"example.org\" action \"x\"\n";

/// The lines of the session that sent RCPT (not the readiness probe's), without the id.
fn session_lines(datagrams: &[String]) -> Vec<(u32, String)> {
    let texts: Vec<(u32, String)> = datagrams.iter().map(|d| split(d)).collect();
    let Some(id) = texts
        .iter()
        .find(|(_, t)| t.contains(" smtp failed-command "))
        .and_then(|(_, t)| t.split(' ').next())
        .map(str::to_string)
    else {
        return Vec::new();
    };
    texts
        .into_iter()
        .filter_map(|(p, t)| {
            t.strip_prefix(&format!("{id} "))
                .map(|rest| (p, rest.to_string()))
        })
        .collect()
}

#[test]
fn syslog_lines_are_glibc_s_with_opensmtpd_s_texts() {
    if !require(
        nix::unistd::geteuid().is_root(),
        "needs root: a private /dev/log needs a mount namespace",
    ) {
        return;
    }
    let ours = {
        let d = Syslogged::start(env!("CARGO_BIN_EXE_smtpd"), CONFIG);
        let replies = session(d.port);
        assert!(
            replies
                .get(3)
                .is_some_and(|r| r.starts_with("550 Invalid recipient")),
            "{replies:?}"
        );
        d.read_until(|l| l.ends_with("reason=quit"))
    };
    let texts: Vec<(u32, String)> = ours.iter().map(|d| split(d)).collect();
    assert!(
        texts.contains(&(22, "info: OpenSMTPD 6.8.0p2 starting".to_string())),
        "{ours:?}"
    );
    // -v: debug lines go to syslog too, at LOG_DEBUG.
    assert!(texts
        .iter()
        .any(|(p, t)| *p == 23 && t.starts_with("debug: ")));
    let lines = session_lines(&ours);
    assert_eq!(
        lines,
        vec![
            (
                22,
                "smtp connected address=127.0.0.1 host=localhost".to_string()
            ),
            (
                22,
                "smtp failed-command command=\"RCPT TO:<nobody@example.com>\" result=\"550 Invalid recipient: <nobody@example.com>\"".to_string()
            ),
            (22, "smtp disconnected reason=quit".to_string()),
        ],
        "{ours:?}"
    );

    if !require_real("the comparison with OpenSMTPD") {
        return;
    }
    let _lock = real_lock();
    let real = {
        let d = Syslogged::start(REAL_SMTPD, CONFIG);
        session(d.port);
        d.read_until(|l| l.ends_with("reason=quit"))
    };
    // The real one's session lines, from its smtp process: the same texts and priorities.
    assert_eq!(session_lines(&real), lines, "{real:?}");
}
