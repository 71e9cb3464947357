//! Privilege separation, end to end (issue 15, "the split"): the real binary started as root
//! with a TLS listener, a proc-exec filter and local delivery to a system user. The tests read
//! the processes from /proc (who is whose child, each one's uid, gids and capabilities), then
//! take the engine's very credentials in a forked probe (its uid, gid and groups as
//! /proc/ENGINE/status gives them) and show that it cannot open the private key, the user's
//! Maildir or /etc/shadow, while mail still flows: STARTTLS (signed by the parent, the engine
//! has no key), the filter (started by the parent, its pipes handed over), a Maildir delivery
//! owned by the user, `smtpctl show queue`.
//!
//! Then the sandbox (sys/sandbox.rs): from inside the running engine, a world-readable file
//! outside what Landlock allows cannot be opened and `/bin/sh` cannot be run (the engine's own
//! probe, `RSMTPD_SANDBOX_PROBE`, logs both); /proc shows its seccomp filters; a reload that
//! names a table in a directory outside the allowed set is refused by the kernel while one in
//! the configuration's directory is read; and under all that mail flows: a `proc:` table
//! (table-sqlite, started by the parent as opensmtpd), Maildir delivery, a relay to a sink,
//! `smtpctl show queue`.

mod common;

use std::ffi::CString;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::certs::{s_client, Certs};
use common::procfs::{children, read_proc};
use common::Daemon;

fn uid_of(name: &str) -> Option<(u32, u32)> {
    let u = nix::unistd::User::from_name(name).ok().flatten()?;
    Some((u.uid.as_raw(), u.gid.as_raw()))
}

/// A throwaway user of the system's passwd (removed when dropped): local delivery looks users
/// up there.
struct SystemUser(String);

impl SystemUser {
    fn add(name: &str, uid: u32, home: &Path) -> SystemUser {
        let _ = Command::new("userdel").arg(name).output();
        let _ = Command::new("groupdel").arg(name).output();
        let id = uid.to_string();
        for (cmd, args) in [
            ("groupadd", vec!["-g", &id, name]),
            (
                "useradd",
                vec![
                    "-u",
                    &id,
                    "-g",
                    &id,
                    "-M",
                    "-d",
                    home.to_str().expect("utf-8 home"),
                    "-s",
                    "/usr/sbin/nologin",
                    name,
                ],
            ),
        ] {
            let out = Command::new(cmd).args(&args).output().expect(cmd);
            assert!(
                out.status.success(),
                "{cmd} {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::fs::create_dir_all(home).expect("home");
        nix::unistd::chown(
            home,
            Some(nix::unistd::Uid::from_raw(uid)),
            Some(nix::unistd::Gid::from_raw(uid)),
        )
        .expect("chown home");
        std::fs::set_permissions(home, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        SystemUser(name.to_string())
    }
}

impl Drop for SystemUser {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(&self.0).output();
        let _ = Command::new("groupdel").arg(&self.0).output();
    }
}

/// Opens each path read-only in a child switched to exactly these credentials (as the engine
/// switched: groups, gid, uid, nothing kept); per path, the errno of the failure or 0 when it
/// opened.
fn open_as(uid: u32, gid: u32, groups: &[u32], paths: &[&Path]) -> Vec<i32> {
    let cpaths: Vec<CString> = paths
        .iter()
        .map(|p| CString::new(p.as_os_str().as_encoded_bytes()).expect("path"))
        .collect();
    let gids: Vec<libc::gid_t> = groups.to_vec();
    let (r, w) = nix::unistd::pipe().expect("pipe");
    // SAFETY: the child only makes async-signal-safe calls (setgroups, setresgid, setresuid,
    // open, write, _exit) on values prepared before the fork.
    match unsafe { nix::unistd::fork() }.expect("fork") {
        nix::unistd::ForkResult::Child => {
            use std::os::fd::AsRawFd;
            // SAFETY: as above; every pointer is valid for the child's copy of the memory.
            unsafe {
                let fail = |code| libc::_exit(code);
                if libc::setgroups(gids.len(), gids.as_ptr()) != 0 {
                    fail(101);
                }
                if libc::setresgid(gid, gid, gid) != 0 {
                    fail(102);
                }
                if libc::setresuid(uid, uid, uid) != 0 {
                    fail(103);
                }
                for p in &cpaths {
                    let fd = libc::open(p.as_ptr(), libc::O_RDONLY);
                    let errno: i32 = if fd >= 0 {
                        0
                    } else {
                        *libc::__errno_location()
                    };
                    let b = errno.to_le_bytes();
                    libc::write(w.as_raw_fd(), b.as_ptr().cast(), 4);
                }
                libc::_exit(0);
            }
        }
        nix::unistd::ForkResult::Parent { child } => {
            drop(w);
            let status = nix::sys::wait::waitpid(child, None).expect("waitpid");
            assert!(
                matches!(status, nix::sys::wait::WaitStatus::Exited(_, 0)),
                "probe: {status:?}"
            );
            let data = {
                use std::io::Read;
                let mut f = std::fs::File::from(r);
                let mut v = Vec::new();
                f.read_to_end(&mut v).expect("read probe");
                v
            };
            data.chunks(4)
                .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        }
    }
}

/// A filter that lets everything through and says on stderr (which the daemon logs as
/// `NAME: LINE`) that it saw each connection.
const FILTER: &str = r#"import sys
for line in sys.stdin:
    if line.startswith("config|ready"):
        print("register|filter|smtp-in|connect")
        print("register|ready")
        sys.stdout.flush()
    elif line.startswith("filter|"):
        f = line.rstrip("\n").split("|")
        sys.stderr.write("privsep-filter: connect from " + f[8] + "\n")
        sys.stderr.flush()
        print("filter-result|%s|%s|proceed" % (f[5], f[6]))
        sys.stdout.flush()
"#;

fn skip_reason() -> Option<&'static str> {
    if let Some(why) = common::certs::unavailable() {
        return Some(why);
    }
    if uid_of("opensmtpq").is_none() && uid_of("_smtpq").is_none() {
        return Some(
            "no queue user (opensmtpq): install Debian's opensmtpd (scripts/test-deps.sh)",
        );
    }
    if !Path::new("/usr/bin/python3").exists() {
        return Some("python3 is not installed (the test's filter)");
    }
    if common::find_tool("useradd").is_none() {
        return Some("useradd is not installed");
    }
    None
}

const USER: &str = "ps-mail";
const USER_UID: u32 = 2361;

#[test]
fn the_engine_holds_nothing_worth_stealing_and_mail_still_flows() {
    if let Some(why) = skip_reason() {
        common::skip(why);
        return;
    }
    let c = Certs::new();
    c.ca("ca", "Test CA").leaf(
        "mx",
        Some("ca"),
        "mx.example.org",
        &["mx.example.org"],
        "serverAuth",
        true,
    );
    let homes = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(homes.path(), std::fs::Permissions::from_mode(0o711)).expect("chmod");
    let home = homes.path().join(USER);
    let _user = SystemUser::add(USER, USER_UID, &home);
    let filter = homes.path().join("filter.py");
    std::fs::write(&filter, FILTER).expect("filter");
    let conf = format!(
        "pki mx.example.org cert \"{mx}.crt\"\n\
         pki mx.example.org key \"{mx}.key\"\n\
         filter f proc-exec \"/usr/bin/python3 {filter}\"\n\
         listen on 127.0.0.1 port @PORT@ tls pki mx.example.org filter f\n\
         action \"local\" maildir\n\
         match from any for domain \"example.org\" action \"local\"\n",
        mx = c.p("mx"),
        filter = filter.display(),
    );
    let d = Daemon::start(&conf, &[]);

    // The split: the parent root, its engine the queue user without any capability.
    let parent = read_proc(d.pid()).expect("parent");
    assert_eq!(parent.uid, vec![0, 0, 0, 0], "{parent:?}");
    // As 6.8's parent: its command line as started (no title), the engine titled.
    assert!(parent.cmdline.contains(" -f "), "{parent:?}");
    let kids = children(parent.pid);
    let engine = kids
        .iter()
        .find(|p| p.comm == "smtpd: engine")
        .unwrap_or_else(|| panic!("no engine among {kids:#?}"))
        .clone();
    let (quid, qgid) = uid_of("opensmtpq")
        .or_else(|| uid_of("_smtpq"))
        .expect("queue user");
    let (_, smtpd_gid) = uid_of("opensmtpd")
        .or_else(|| uid_of("_smtpd"))
        .expect("smtpd user");
    assert_eq!(engine.uid, vec![quid; 4], "{engine:?}");
    assert_eq!(engine.gid, vec![qgid; 4], "{engine:?}");
    let mut groups = engine.groups.clone();
    groups.sort();
    let mut want = vec![qgid, smtpd_gid];
    want.sort();
    want.dedup();
    assert_eq!(groups, want, "{engine:?}");
    assert_eq!(engine.cap_eff, "0000000000000000", "{engine:?}");
    assert_eq!(engine.cap_prm, "0000000000000000", "{engine:?}");
    assert_eq!(engine.no_new_privs, "1", "{engine:?}");
    assert!(engine.cmdline.starts_with("smtpd: engine"), "{engine:?}");
    // The filter is the parent's child (the engine may not exec), as its user.
    let filter_proc = kids
        .iter()
        .find(|p| p.cmdline.contains("filter.py"))
        .unwrap_or_else(|| panic!("no filter process among {kids:#?}"));
    assert_ne!(filter_proc.uid[0], 0, "{filter_proc:?}");
    for p in &kids {
        eprintln!(
            "process {} {:?} uid {:?} gid {:?} groups {:?}",
            p.pid, p.cmdline, p.uid, p.gid, p.groups
        );
    }
    eprintln!(
        "process {} {:?} uid {:?} (parent)",
        parent.pid, parent.cmdline, parent.uid
    );

    // Mail: STARTTLS (the signature is the parent's), through the filter, into the Maildir.
    let out = s_client(
        d.port,
        true,
        &[
            "-CAfile",
            &c.p("ca.crt"),
            "-verify_return_error",
            "-verify_hostname",
            "mx.example.org",
        ],
        &format!(
            "EHLO client.example\nMAIL FROM:<alice@example.net>\nRCPT TO:<{USER}@example.org>\n\
             DATA\nSubject: privsep\n\nover TLS, signed by the parent\n.\nQUIT\n"
        ),
    );
    assert!(out.contains("Verify return code: 0 (ok)"), "{out}");
    assert!(out.contains("250 2.0.0 "), "{out}");
    d.wait_log_for(Duration::from_secs(30), |l| {
        l.contains("delivery") && l.contains("result=Ok")
    });
    let log = d.log();
    assert!(
        log.iter().any(|l| l.contains(" smtp tls ciphers=TLSv1.3")),
        "{log:#?}"
    );
    assert!(
        log.iter()
            .any(|l| l.contains("f: privsep-filter: connect from 127.0.0.1")),
        "{log:#?}"
    );
    let new = home.join("Maildir/new");
    let deadline = Instant::now() + Duration::from_secs(10);
    let delivered: PathBuf = loop {
        let found = std::fs::read_dir(&new)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .next();
        if let Some(f) = found {
            break f;
        }
        assert!(Instant::now() < deadline, "nothing in {}", new.display());
        std::thread::sleep(Duration::from_millis(50));
    };
    let md = std::fs::metadata(&delivered).expect("delivered");
    assert_eq!((md.uid(), md.gid()), (USER_UID, USER_UID), "{delivered:?}");
    let text = std::fs::read_to_string(&delivered).expect("read");
    assert!(text.contains("over TLS, signed by the parent"), "{text}");

    // smtpctl over the control socket the parent bound and the engine serves.
    let out = Command::new(smtpctl())
        .args(["show", "queue"])
        .env("SMTPD_SOCKET", d.dir.path().join("smtpd.sock"))
        .output()
        .expect("smtpctl");
    assert!(
        out.status.success(),
        "smtpctl show queue: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // With the engine's credentials: not the key, not the user's Maildir, not /etc/shadow.
    let key = c.path("mx.key");
    let maildir = home.join("Maildir/new");
    let shadow = Path::new("/etc/shadow");
    let got = open_as(
        engine.uid[0],
        engine.gid[0],
        &engine.groups,
        &[&key, &maildir, &delivered, shadow],
    );
    assert_eq!(
        got,
        vec![libc::EACCES; 4],
        "open() as the engine of {key:?}, {maildir:?}, {delivered:?}, /etc/shadow"
    );
    // And the probe itself is no fake: as root the same opens work.
    assert_eq!(open_as(0, 0, &[0], &[&key, shadow]), vec![0, 0]);
    // The engine's memory holds no key: its maps name no key file, and only the parent's
    // threads sign (the engine asks, see the ca lines).
    let maps = std::fs::read_to_string(format!("/proc/{}/maps", engine.pid)).unwrap_or_default();
    assert!(!maps.contains("mx.key"), "{maps}");
}

fn smtpctl() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_BIN_EXE_smtpd"));
    here.parent()
        .map(|d| d.join("smtpctl"))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("/usr/sbin/smtpctl"))
}

#[test]
fn a_filter_that_dies_is_restarted_by_the_parent() {
    if let Some(why) = skip_reason() {
        common::skip(why);
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711)).expect("chmod");
    let filter = dir.path().join("filter.py");
    std::fs::write(&filter, FILTER).expect("filter");
    let conf = format!(
        "filter f proc-exec \"/usr/bin/python3 {}\"\n\
         listen on 127.0.0.1 port @PORT@ filter f\n\
         action \"local\" maildir\n\
         match from any for local action \"local\"\n",
        filter.display()
    );
    let d = Daemon::start(&conf, &[]);
    let first = children(d.pid())
        .into_iter()
        .find(|p| p.cmdline.contains("filter.py"))
        .expect("filter process");
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(first.pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
    d.wait_log(|l| l.contains("lost processor: f exited abnormally"));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let again = children(d.pid())
            .into_iter()
            .find(|p| p.cmdline.contains("filter.py") && p.pid != first.pid);
        if again.is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "not restarted: {:#?}", d.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    // The dead one was reaped by the parent: no zombie left behind.
    assert!(read_proc(first.pid).is_none(), "{:?}", read_proc(first.pid));
}

/// A one-connection-at-a-time SMTP sink: accepts everything, keeps each message's DATA.
struct Sink {
    port: u16,
    messages: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Sink {
    fn start() -> Sink {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind sink");
        let port = l.local_addr().expect("addr").port();
        let messages: std::sync::Arc<std::sync::Mutex<Vec<String>>> = Default::default();
        let m = messages.clone();
        std::thread::spawn(move || {
            for s in l.incoming().map_while(Result::ok) {
                let mut w = s.try_clone().expect("clone");
                let mut r = BufReader::new(s);
                let _ = w.write_all(b"220 sink.test ESMTP\r\n");
                let (mut data, mut text) = (false, String::new());
                loop {
                    let mut line = String::new();
                    match r.read_line(&mut line) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    }
                    if data {
                        if line == ".\r\n" {
                            data = false;
                            m.lock().expect("sink").push(std::mem::take(&mut text));
                            let _ = w.write_all(b"250 2.0.0 queued\r\n");
                        } else {
                            text.push_str(&line);
                        }
                        continue;
                    }
                    let u = line.to_ascii_uppercase();
                    let answer: &[u8] = if u.starts_with("EHLO") {
                        b"250-sink.test\r\n250 8BITMIME\r\n"
                    } else if u.starts_with("DATA") {
                        data = true;
                        b"354 go\r\n"
                    } else if u.starts_with("QUIT") {
                        let _ = w.write_all(b"221 bye\r\n");
                        break;
                    } else {
                        b"250 ok\r\n"
                    };
                    let _ = w.write_all(answer);
                }
            }
        });
        Sink { port, messages }
    }

    fn wait(&self, limit: Duration) -> Vec<String> {
        let end = Instant::now() + limit;
        loop {
            let m = self.messages.lock().expect("sink").clone();
            if !m.is_empty() || Instant::now() > end {
                return m;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

const TABLE_SQLITE: &str = "/usr/libexec/opensmtpd/table-sqlite";

/// Whether this kernel has Landlock and seccomp filters (the sandbox degrades without them,
/// which `the_engine_says_in_one_line_when_it_is_not_confined`-style checks would see).
fn sandbox_skip_reason() -> Option<&'static str> {
    if !nix::unistd::geteuid().is_root() {
        return Some("needs root: only the engine of a split daemon is sandboxed");
    }
    if let Some(why) = skip_reason() {
        return Some(why);
    }
    // SAFETY: landlock_create_ruleset with a null attribute, size 0 and the VERSION flag only
    // returns the ABI version.
    let abi = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            1u32,
        )
    };
    if abi < 1 {
        return Some("this kernel has no Landlock (the sandbox degrades; nothing to prove)");
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    if !status.contains("Seccomp_filters:") {
        return Some("this kernel has no seccomp filters");
    }
    if !Path::new(TABLE_SQLITE).exists() {
        return Some("no table-sqlite (opensmtpd-extras) for the proc: table");
    }
    let py = Command::new("python3")
        .args(["-c", "import sqlite3"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !py {
        return Some("python3 has no sqlite3 (it makes the table's database)");
    }
    None
}

const SB_USER: &str = "sb-mail";
const SB_UID: u32 = 2362;

#[test]
fn the_sandboxed_engine_opens_and_runs_nothing_outside_its_set_and_mail_still_flows() {
    if let Some(why) = sandbox_skip_reason() {
        common::skip(why);
        return;
    }
    // World-readable, in a directory the configuration never names: only Landlock keeps the
    // engine out (the credentials probe below opens it).
    let outside = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(outside.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod");
    let secret = outside.path().join("domains");
    std::fs::write(&secret, "outside.test\n").expect("secret");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).expect("chmod");

    let homes = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(homes.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let home = homes.path().join(SB_USER);
    let _user = SystemUser::add(SB_USER, SB_UID, &home);
    // The proc: table's database and configuration, readable by table-sqlite's user.
    let db = homes.path().join("db.sqlite");
    common::sqlite_db(
        &db,
        "create table domains(domain text); insert into domains values('example.org');",
    );
    let sqlconf = homes.path().join("sqlite.conf");
    std::fs::write(
        &sqlconf,
        format!(
            "dbpath {}\nquery_domain SELECT domain FROM domains WHERE domain=?;\n",
            db.display()
        ),
    )
    .expect("sqlite.conf");
    std::fs::set_permissions(&sqlconf, std::fs::Permissions::from_mode(0o644)).expect("chmod");

    let sink = Sink::start();
    let conf = format!(
        "table domains sqlite:{sqlconf}\n\
         listen on 127.0.0.1 port @PORT@\n\
         action \"local\" maildir\n\
         action \"out\" relay host smtp://127.0.0.1:{sink}\n\
         match from any for domain <domains> action \"local\"\n\
         match from any for domain \"relay.test\" action \"out\"\n",
        sqlconf = sqlconf.display(),
        sink = sink.port,
    );
    let probe = format!("{}={}", rsmtpd::sys::sandbox::ENV_PROBE, secret.display());
    let d = Daemon::launch(
        &["env", &probe],
        env!("CARGO_BIN_EXE_smtpd"),
        &conf,
        &[],
        Some("127.0.0.1:1"),
    );

    let kids = children(d.pid());
    let engine = kids
        .iter()
        .find(|p| p.comm == "smtpd: engine")
        .unwrap_or_else(|| panic!("no engine among {kids:#?}"))
        .clone();
    // From inside the confined engine: the open and the exec, refused.
    let log = d.log();
    let line = format!(
        "info: smtpd: sandbox probe: open {}: Permission denied; exec /bin/sh: Operation not \
         permitted",
        secret.display()
    );
    assert!(log.iter().any(|l| l == &line), "no {line:?} in {log:#?}");
    assert!(
        log.iter()
            .any(|l| l.starts_with("debug: smtpd: sandbox: engine confined")),
        "{log:#?}"
    );
    // Not the file's mode: with the engine's credentials alone it opens.
    assert_eq!(
        open_as(engine.uid[0], engine.gid[0], &engine.groups, &[&secret]),
        vec![0]
    );
    let status = std::fs::read_to_string(format!("/proc/{}/status", engine.pid)).expect("status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
            .unwrap_or("")
            .to_string()
    };
    assert_eq!(field("Seccomp:"), "2", "{status}");
    assert_eq!(field("Seccomp_filters:"), "2", "{status}");
    assert_eq!(field("NoNewPrivs:"), "1", "{status}");
    // The parent is not confined (it must exec filters, deliveries, backends).
    let parent = std::fs::read_to_string(format!("/proc/{}/status", d.pid())).expect("status");
    assert!(parent.contains("Seccomp:\t0"), "{parent}");
    // The proc: table's backend is the parent's child, as OpenSMTPD's user, not the engine's.
    let backend = kids
        .iter()
        .find(|p| p.cmdline.starts_with("domains"))
        .unwrap_or_else(|| panic!("no table-sqlite among {kids:#?}"));
    let (smtpd_uid, _) = uid_of("opensmtpd")
        .or_else(|| uid_of("_smtpd"))
        .expect("smtpd user");
    assert_eq!(backend.uid[0], smtpd_uid, "{backend:?}");
    assert!(
        children(engine.pid).is_empty(),
        "{:#?}",
        children(engine.pid)
    );

    // Mail: a domain of the proc: table into the user's Maildir, another relayed to the sink.
    let mut c = common::Client::connect(d.addr());
    let mut replies = vec![c.reply()];
    for cmd in [
        "EHLO client.example",
        "MAIL FROM:<alice@example.net>",
        &format!("RCPT TO:<{SB_USER}@example.org>"),
        "RCPT TO:<bob@relay.test>",
        "DATA",
        "Subject: sandbox\r\n\r\nthrough the sandbox\r\n.",
        "QUIT",
    ] {
        replies.push(c.cmd(cmd));
    }
    assert!(
        replies.iter().any(|r| r.starts_with("250 2.0.0 ")),
        "{replies:#?}"
    );
    let relayed = sink.wait(Duration::from_secs(30));
    assert!(
        relayed.iter().any(|m| m.contains("through the sandbox")),
        "{relayed:#?}\n{:#?}",
        d.log()
    );
    let new = home.join("Maildir/new");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::fs::read_dir(&new).map_or(true, |mut r| r.next().is_none()) {
        assert!(
            Instant::now() < deadline,
            "nothing in {new:?}: {:#?}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = Command::new(smtpctl())
        .args(["show", "queue"])
        .env("SMTPD_SOCKET", d.dir.path().join("smtpd.sock"))
        .output()
        .expect("smtpctl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(smtpctl())
        .args(["update", "table", "domains"])
        .env("SMTPD_SOCKET", d.dir.path().join("smtpd.sock"))
        .output()
        .expect("smtpctl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // SIGHUP: the configuration and a new table in its own directory are read again...
    let path = d.dir.path().join("smtpd.conf");
    let running = std::fs::read_to_string(&path).expect("conf");
    let extra = d.dir.path().join("extra");
    std::fs::write(&extra, "extra.test\n").expect("extra");
    std::fs::write(
        &path,
        format!("table extra file:{}\n{running}", extra.display()),
    )
    .expect("conf");
    let hup = || {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(d.pid() as i32),
            nix::sys::signal::Signal::SIGHUP,
        )
        .expect("SIGHUP")
    };
    hup();
    d.wait_log(|l| l.contains("info: smtpd: configuration reloaded from"));
    // ...one that names a file outside the allowed set is refused by the kernel, whatever the
    // file's mode, and the running configuration stays.
    std::fs::write(
        &path,
        format!("table outside file:{}\n{running}", secret.display()),
    )
    .expect("conf");
    hup();
    d.wait_log(|l| l.contains("warn: smtpd: configuration not reloaded"));
    let log = d.log();
    assert!(
        log.iter().any(|l| l.contains("warn: smtpd: reload:")
            && l.contains(&format!("{}: fopen: Permission denied", secret.display()))),
        "{log:#?}"
    );
    let mut c = common::Client::connect(d.addr());
    c.reply();
    assert!(c.cmd("EHLO again.example").starts_with("250"));
}

#[test]
fn the_sandbox_can_be_turned_off_for_debugging_with_one_line() {
    if let Some(why) = sandbox_skip_reason() {
        common::skip(why);
        return;
    }
    let switch = format!("{}=off", rsmtpd::sys::sandbox::ENV_SWITCH);
    let d = Daemon::launch(
        &["env", &switch],
        env!("CARGO_BIN_EXE_smtpd"),
        "listen on 127.0.0.1 port @PORT@\naction \"local\" maildir\n\
         match from any for local action \"local\"\n",
        &[],
        Some("127.0.0.1:1"),
    );
    let log = d.log();
    let lines: Vec<&String> = log
        .iter()
        .filter(|l| l.contains("smtpd: sandbox"))
        .collect();
    assert_eq!(
        lines,
        vec!["warn: smtpd: sandbox: off (RSMTPD_SANDBOX=off): the engine is not confined"],
        "{log:#?}"
    );
    let engine = children(d.pid())
        .into_iter()
        .find(|p| p.comm == "smtpd: engine")
        .expect("engine");
    let status = std::fs::read_to_string(format!("/proc/{}/status", engine.pid)).expect("status");
    assert!(status.contains("Seccomp:\t0"), "{status}");
}
