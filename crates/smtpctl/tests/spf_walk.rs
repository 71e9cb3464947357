//! `smtpctl spf walk` against a real DNS server: Debian's unbound, authoritative for the zones
//! of tests/fixtures/spf-walk/, on ::1 port 53 of a network namespace of the test (its own
//! /etc/netns/NAME/resolv.conf; nothing of the machine's resolver is touched). What OpenSMTPD
//! 6.8.0p2's smtpctl prints for each walk is the fixture tests/everyday/spf-walk.txt, re-checked
//! live when it is installed (`RECORD=1` rewrites it); ours must print the same, plus the
//! `ip6:` networks that Debian's build drops (see `spfwalk.rs`: glibc's inet_net_pton knows
//! no AF_INET6).
//!
//! The lines of a walk are compared sorted: both walks ask DNS for everything at once and print
//! the answers in the order they come.

#[path = "../../../tests/support/skip.rs"]
mod skip;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const REAL_SMTPCTL: &str = "/usr/sbin/smtpctl";

/// The walks: a name, and what standard input holds.
const WALKS: &[(&str, &[u8])] = &[
    ("every kind of term", b"example.org\n"),
    ("the SPF record of a CNAME", b"cname.example.org\n"),
    (
        "two domains, blank lines, trailing white space",
        b"one.example.org\n\n  \ntwo.example.org \t\n",
    ),
    (
        "a record of 4095 bytes, one of 4096",
        b"long.example.org\ntoolong.example.org\n",
    ),
    (
        "a macro, a name that does not exist",
        b"%{i}.example.org\nnx.example.org",
    ),
];

/// The `ip6:` networks of the records, which only ours prints, with the walk that has them.
const IP6_NETWORKS: &[(usize, &str)] = &[(0, "2001:db8::/32"), (0, "2001:db8:1::/48"), (0, "::1")];

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/spf-walk")
}

fn transcript_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/everyday/spf-walk.txt")
}

/// A network namespace with unbound serving the fixture zones on ::1.
struct Netns {
    name: String,
    unbound: Option<Child>,
    _dir: tempfile::TempDir,
}

fn ip(args: &[&str]) {
    let st = Command::new("ip").args(args).status().expect("ip");
    assert!(st.success(), "ip {}", args.join(" "));
}

impl Netns {
    fn new() -> Netns {
        let name = format!("rsmtpd-spf-{}", std::process::id());
        let _ = Command::new("ip")
            .args(["netns", "del", &name])
            .stderr(Stdio::null())
            .status();
        ip(&["netns", "add", &name]);
        let etc = format!("/etc/netns/{name}");
        std::fs::create_dir_all(&etc).expect("/etc/netns");
        std::fs::write(format!("{etc}/resolv.conf"), "nameserver ::1\n").expect("resolv.conf");
        let dir = tempfile::tempdir().expect("tempdir");
        let mut ns = Netns {
            name,
            unbound: None,
            _dir: dir,
        };
        ip(&["-n", &ns.name, "link", "set", "lo", "up"]);
        let d = ns._dir.path().display().to_string();
        let mut conf = format!(
            "server:\n    interface: ::1\n    port: 53\n    username: \"\"\n    chroot: \"\"\n    \
             directory: \"{d}\"\n    pidfile: \"{d}/unbound.pid\"\n    use-syslog: no\n    \
             access-control: ::1/128 allow\n    module-config: \"iterator\"\n"
        );
        for zone in ["example.org", "example.net"] {
            let file = ns._dir.path().join(format!("{zone}.zone"));
            std::fs::copy(fixtures().join(format!("{zone}.zone")), &file).expect("zone file");
            conf.push_str(&format!(
                "auth-zone:\n    name: \"{zone}.\"\n    zonefile: \"{}\"\n    \
                 for-downstream: yes\n    for-upstream: no\n",
                file.display()
            ));
        }
        let path = ns._dir.path().join("unbound.conf");
        std::fs::write(&path, conf).expect("unbound.conf");
        let child = Command::new("ip")
            .args(["netns", "exec", &ns.name, "unbound", "-d", "-c"])
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("unbound");
        ns.unbound = Some(child);
        for _ in 0..100 {
            let out = Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &ns.name,
                    "getent",
                    "hosts",
                    "ns.example.org",
                ])
                .output();
            if out.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("192.0.2.53")) {
                return ns;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("unbound did not start in {}", ns.name);
    }

    /// `smtpctl spf walk` (`bin`) in the namespace, `input` on its standard input.
    fn walk(&self, bin: &Path, input: &[u8]) -> std::process::Output {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.name])
            .arg(bin)
            .args(["spf", "walk"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("smtpctl");
        if let Some(mut i) = child.stdin.take() {
            let _ = i.write_all(input);
        }
        child.wait_with_output().expect("smtpctl output")
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Some(c) = &mut self.unbound {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
        let _ = std::fs::remove_dir_all(format!("/etc/netns/{}", self.name));
    }
}

/// One walk as text: its input, its lines sorted, what it said on standard error, its status.
/// `drop` are lines left out (and which must be there).
fn walk_text(ns: &Netns, bin: &Path, name: &str, input: &[u8], drop: &[&str]) -> String {
    let out = ns.walk(bin, input);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut lines: Vec<&str> = stdout.lines().collect();
    for d in drop {
        let n = lines.iter().filter(|l| *l == d).count();
        assert_eq!(n, 1, "{name}: ours prints the ip6: network {d} once");
        lines.retain(|l| l != d);
    }
    lines.sort_unstable();
    let mut t = format!(
        "# {name}\n$ printf '{}' | smtpctl spf walk\n",
        String::from_utf8_lossy(input).escape_default()
    );
    for l in lines {
        t.push_str(l);
        t.push('\n');
    }
    t.push_str(
        &String::from_utf8_lossy(&out.stderr).replace(&format!("{}: ", bin.display()), "smtpctl: "),
    );
    t.push_str(&format!("exit {}\n", out.status.code().unwrap_or(-1)));
    t
}

fn run(ns: &Netns, bin: &Path, ours: bool) -> String {
    let mut t = String::new();
    for (i, (name, input)) in WALKS.iter().enumerate() {
        let drop: Vec<&str> = IP6_NETWORKS
            .iter()
            .filter(|(w, _)| ours && *w == i)
            .map(|(_, n)| *n)
            .collect();
        t.push_str(&walk_text(ns, bin, name, input, &drop));
    }
    t
}

#[test]
fn spf_walk_as_opensmtpd() {
    if !skip::require_root() || !skip::require_tool("unbound") || !skip::require_tool("ip") {
        return;
    }
    let ns = Netns::new();
    let path = transcript_path();
    if skip::require(
        Path::new(REAL_SMTPCTL).exists(),
        "the OpenSMTPD half: /usr/sbin/smtpctl (the opensmtpd package) is not installed; \
         checked against the fixture only",
    ) {
        let real = run(&ns, Path::new(REAL_SMTPCTL), false);
        if std::env::var_os("RECORD").is_some() {
            std::fs::write(&path, &real).expect("write fixture");
        }
        let want = std::fs::read_to_string(&path).expect("fixture (RECORD=1 records it)");
        assert_eq!(real, want, "OpenSMTPD differs from {}", path.display());
    }
    let want = std::fs::read_to_string(&path).expect("fixture (RECORD=1 records it)");
    let ours = run(&ns, Path::new(env!("CARGO_BIN_EXE_smtpctl")), true);
    assert_eq!(
        ours,
        want,
        "ours differs from {} (OpenSMTPD's)",
        path.display()
    );
}
