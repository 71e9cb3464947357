//! A network namespace of the test's own with Debian's unbound answering for `test.` from the
//! records the test gives, and extra addresses on its loopback device (TEST-NET and
//! documentation addresses, so that routes and reverse names are not loopback special cases).
//! Daemons run inside with `ip netns exec`; the test's own servers and clients run inside
//! through [`Netns::enter`], which moves one thread into the namespace (a socket keeps the
//! namespace it was made in, whatever thread uses it afterwards).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::Daemon;

pub struct Netns {
    pub name: String,
    children: Vec<Child>,
    dir: tempfile::TempDir,
}

fn ip(args: &[&str]) {
    let st = Command::new("ip").args(args).status().expect("ip");
    assert!(st.success(), "ip {}", args.join(" "));
}

/// Whether the namespace can be made here: root, `ip` and unbound.
pub fn unavailable() -> Option<&'static str> {
    if !super::is_root() {
        return Some("needs root (network namespaces)");
    }
    if Command::new("unbound").arg("-h").output().is_err() {
        return Some("unbound is not installed (scripts/test-deps.sh)");
    }
    None
}

impl Netns {
    /// `records`: unbound `local-data`/`local-data-ptr` lines; `addrs`: addresses (with their
    /// prefix, `192.0.2.30/32`, `2001:db8::30/128`) put on `lo`; `probe`: a name unbound must
    /// answer before the namespace is handed out.
    pub fn new(tag: &str, records: &str, addrs: &[&str], probe: &str) -> Netns {
        let name = format!("rsmtpd-{tag}-{}", std::process::id());
        let _ = Command::new("ip")
            .args(["netns", "del", &name])
            .stderr(Stdio::null())
            .status();
        ip(&["netns", "add", &name]);
        ip(&["-n", &name, "link", "set", "lo", "up"]);
        for a in addrs {
            // nodad: no duplicate address detection, the address is usable at once.
            if a.contains(':') {
                ip(&["-n", &name, "addr", "add", a, "dev", "lo", "nodad"]);
            } else {
                ip(&["-n", &name, "addr", "add", a, "dev", "lo"]);
            }
        }
        let etc = format!("/etc/netns/{name}");
        std::fs::create_dir_all(&etc).expect("/etc/netns");
        // `lookup file bind`: OpenSMTPD's resolver (libasr) reads this line; glibc ignores it.
        std::fs::write(
            format!("{etc}/resolv.conf"),
            "nameserver 127.0.0.1\nlookup file bind\n",
        )
        .expect("resolv");
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().display();
        let conf = format!(
            "server:\n    interface: 127.0.0.1\n    port: 53\n    username: \"\"\n    chroot: \"\"\n    \
             directory: \"{d}\"\n    pidfile: \"{d}/unbound.pid\"\n    use-syslog: no\n    \
             access-control: 127.0.0.0/8 allow\n    do-not-query-localhost: no\n    \
             module-config: \"iterator\"\n    local-zone: \"test.\" static\n    \
             local-zone: \"2.0.192.in-addr.arpa.\" static\n    \
             local-zone: \"8.b.d.0.1.0.0.2.ip6.arpa.\" static\n{records}"
        );
        let path = dir.path().join("unbound.conf");
        std::fs::write(&path, conf).expect("unbound.conf");
        let child = Command::new("ip")
            .args(["netns", "exec", &name, "unbound", "-d", "-c"])
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("unbound (scripts/test-deps.sh installs it)");
        let ns = Netns {
            name,
            children: vec![child],
            dir,
        };
        for _ in 0..100 {
            let out = Command::new("ip")
                .args(["netns", "exec", &ns.name, "getent", "hosts", probe])
                .output();
            if out.is_ok_and(|o| o.status.success() && !o.stdout.is_empty()) {
                return ns;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("unbound did not start in {}", ns.name);
    }

    /// `bin` (ours or the real OpenSMTPD) inside the namespace, with unbound as its resolver.
    pub fn daemon_with(&self, bin: &str, config: &str) -> Daemon {
        let _ = &self.dir;
        Daemon::launch(
            &["ip", "netns", "exec", &self.name],
            bin,
            config,
            &[],
            Some("127.0.0.1:53"),
        )
    }

    /// Runs `f` on a thread inside the namespace and returns what it returns.
    pub fn enter<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/run/netns/{}", self.name);
        std::thread::spawn(move || {
            use std::os::fd::AsRawFd;
            let ns = std::fs::File::open(&path).expect("/run/netns/NAME");
            // SAFETY: setns on an open namespace file; it changes only this thread's
            // network namespace, which ends with the thread.
            let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .expect("thread in the namespace")
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
        let _ = std::fs::remove_dir_all(format!("/etc/netns/{}", self.name));
    }
}
