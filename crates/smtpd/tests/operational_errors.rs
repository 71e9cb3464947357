//! Operational errors an administrator can act on (issue 10, item 5): a port already in use, a
//! control socket another daemon holds, a spool with the wrong modes, an action's delivery user
//! that does not exist, a config include that cannot be read: each gives one line that says
//! what is wrong and what to do, exit 1, and nothing half-started (no control socket left
//! behind, no spool made when the config did not parse, the other daemon untouched). A full
//! spool file system: a warning at start, and the temporary failure of each message says why.
//! (A missing unprivileged user: alias_privileges.rs.)

mod common;

use common::*;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const LOCAL: &str = "action \"l\" maildir\nmatch from any for local action \"l\"\n";

/// `smtpd -d` on `config` in `dir` (spool `dir/spool`, socket `dir/smtpd.sock` unless given),
/// expected to exit by itself within 30 s.
fn start_fails(dir: &Path, config: &str, socket: Option<&Path>) -> (i32, Vec<String>) {
    start_fails_as(dir, config, socket, false)
}

/// The uid of an ordinary user when we are root (nobody), else None: ourselves.
fn ordinary(dir: &Path) -> Option<u32> {
    if !is_root() {
        return None;
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    Some(65534)
}

/// [`start_fails`], as an ordinary user when `ordinary_user` (nobody when we are root).
fn start_fails_as(
    dir: &Path,
    config: &str,
    socket: Option<&Path>,
    ordinary_user: bool,
) -> (i32, Vec<String>) {
    let conf = dir.join("smtpd.conf");
    std::fs::write(&conf, config).expect("config");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_smtpd"));
    if ordinary_user {
        if let Some(uid) = ordinary(dir) {
            cmd.uid(uid).gid(uid);
        }
    }
    let mut child = cmd
        .arg("-d")
        .arg("-f")
        .arg(&conf)
        .env("SMTPD_SPOOL", dir.join("spool"))
        .env(
            "SMTPD_SOCKET",
            socket.map_or_else(|| dir.join("smtpd.sock"), Path::to_path_buf),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("smtpd");
    let t0 = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if t0.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("smtpd started on {config}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out: Output = child.wait_with_output().expect("output");
    let lines = String::from_utf8_lossy(&out.stderr)
        .lines()
        .map(str::to_string)
        .collect();
    (out.status.code().unwrap_or(-1), lines)
}

/// The lines after OpenSMTPD's `starting` line (the daemon says it starts, then why it cannot).
fn after_start(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .filter(|l| !l.starts_with("info: OpenSMTPD 6.8.0p2 starting"))
        .cloned()
        .collect()
}

#[test]
fn a_port_in_use_is_named_with_what_to_do() {
    let dir = tempfile::tempdir().expect("tempdir");
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let (code, lines) = start_fails(
        dir.path(),
        &format!("listen on 127.0.0.1 port {port}\n{LOCAL}"),
        None,
    );
    assert_eq!(code, 1, "{lines:?}");
    assert_eq!(
        after_start(&lines),
        vec![format!(
            "smtpd: bind: 127.0.0.1:{port}: Address already in use: another program listens on \
             port {port} (ss -ltnp 'sport = :{port}' names it): stop it (systemctl stop \
             opensmtpd postfix exim4...) or change the port of this listen on"
        )]
    );
    assert!(
        !dir.path().join("smtpd.sock").exists(),
        "the control socket is left behind"
    );
}

/// As an ordinary user (nobody, when the tests run as root).
#[test]
fn a_port_below_1024_without_root_says_it_needs_root() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (code, lines) = start_fails_as(
        dir.path(),
        &format!("listen on 127.0.0.1 port 26\n{LOCAL}"),
        None,
        true,
    );
    assert_eq!(code, 1, "{lines:?}");
    assert_eq!(
        after_start(&lines),
        vec![
            "smtpd: bind: 127.0.0.1:26: Permission denied: port 26 needs root: start smtpd as \
             root, or listen on a port above 1023"
                .to_string()
        ]
    );
    assert!(
        !dir.path().join("smtpd.sock").exists(),
        "socket left behind"
    );
}

#[test]
fn a_control_socket_held_by_another_daemon_is_refused_and_left_alone() {
    let mut first = Daemon::start(&format!("listen on 127.0.0.1 port @PORT@\n{LOCAL}"), &[]);
    let socket = first.dir.path().join("smtpd.sock");
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let (code, lines) = start_fails(
        dir.path(),
        &format!("listen on 127.0.0.1 port {port}\n{LOCAL}"),
        Some(&socket),
    );
    assert_eq!(code, 1, "{lines:?}");
    assert_eq!(
        after_start(&lines),
        vec![format!(
            "smtpd: control socket already listening: another smtpd runs with {} (smtpctl show \
             status): stop it first, or give this one its own socket and spool (SMTPD_SOCKET, \
             SMTPD_SPOOL)",
            socket.display()
        )]
    );
    // The first daemon still has its socket and answers on it.
    assert!(socket.exists(), "the other daemon's socket was removed");
    let out = ctl(&first, "smtpctl", &["show", "status"], "", None);
    assert!(out.status.success(), "{out:?}");
    // And nothing listens on the second one's port.
    assert!(
        TcpListener::bind(("127.0.0.1", port)).is_ok(),
        "port {port} is held"
    );
    assert_eq!(first.stop(), Some(0));
}

#[test]
fn a_spool_with_the_wrong_mode_says_how_to_fix_it_and_the_fix_works() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spool = dir.path().join("spool");
    std::fs::create_dir(&spool).expect("mkdir");
    std::fs::set_permissions(&spool, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let port = free_port();
    let config = format!("listen on 127.0.0.1 port {port}\n{LOCAL}");
    let (code, lines) = start_fails(dir.path(), &config, None);
    assert_eq!(code, 1, "{lines:?}");
    let lines = after_start(&lines);
    let p = spool.display();
    let fix = if is_root() {
        format!("chown 0:0 {p} && chmod 711 {p}")
    } else {
        format!("chmod 711 {p}")
    };
    assert_eq!(
        lines,
        vec![format!(
            "smtpd: queue: {p} must be rwx--x--x (711): fix it: {fix}"
        )]
    );
    assert!(
        !dir.path().join("smtpd.sock").exists(),
        "socket left behind"
    );
    // What the line says to run is enough.
    let out = Command::new("sh").args(["-c", &fix]).output().expect("sh");
    assert!(out.status.success(), "{out:?}");
    let conf = dir.path().join("smtpd.conf");
    let mut child = Command::new(env!("CARGO_BIN_EXE_smtpd"))
        .args(["-d", "-v", "-f"])
        .arg(&conf)
        .env("SMTPD_SPOOL", &spool)
        .env("SMTPD_SOCKET", dir.path().join("smtpd.sock"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("smtpd");
    let t0 = Instant::now();
    let mut up = false;
    while t0.elapsed() < Duration::from_secs(30) {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            up = true;
            break;
        }
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid")),
        nix::sys::signal::Signal::SIGTERM,
    );
    let status = child.wait().expect("wait");
    assert!(up, "smtpd did not start after the fix ({status})");
}

#[test]
fn a_delivery_user_that_does_not_exist_is_refused_at_start_and_warned_by_n() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let config = format!(
        "listen on 127.0.0.1 port {port}\naction \"l\" maildir user no-such-user-rsmtpd\n\
         match from any for local action \"l\"\n"
    );
    let conf = dir.path().join("smtpd.conf");
    let line = format!(
        "{}:2: action \"l\": delivery user \"no-such-user-rsmtpd\" does not exist: create it \
         (adduser --system no-such-user-rsmtpd) or name an existing user",
        conf.display()
    );
    let (code, lines) = start_fails(dir.path(), &config, None);
    assert_eq!(code, 1, "{lines:?}");
    assert_eq!(lines, vec![format!("smtpd: {line}")]);
    assert!(!dir.path().join("spool").exists(), "a spool was made");
    // -n keeps OpenSMTPD's verdict and tells.
    let out = Command::new(env!("CARGO_BIN_EXE_smtpd"))
        .arg("-n")
        .arg("-f")
        .arg(&conf)
        .output()
        .expect("smtpd -n");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!("configuration OK\nwarn: {line}\n")
    );
}

#[test]
fn a_missing_include_is_named_and_nothing_starts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing: PathBuf = dir.path().join("tables.conf");
    let conf = dir.path().join("smtpd.conf");
    let (code, lines) = start_fails(
        dir.path(),
        &format!(
            "include \"{}\"\nlisten on 127.0.0.1 port {}\n{LOCAL}",
            missing.display(),
            free_port()
        ),
        None,
    );
    assert_eq!(code, 1, "{lines:?}");
    // OpenSMTPD's own two lines, unchanged (smtpd -n prints them too).
    assert_eq!(
        lines,
        vec![
            format!("pushfile: {}: No such file or directory", missing.display()),
            format!(
                "{}:1: failed to include file {}",
                conf.display(),
                missing.display()
            ),
        ]
    );
    assert!(!dir.path().join("spool").exists(), "a spool was made");
    assert!(!dir.path().join("smtpd.sock").exists(), "a socket was made");
}

/// As an ordinary user (nobody, when the tests run as root: root reads any file).
#[test]
fn an_unreadable_config_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("smtpd.conf");
    std::fs::write(&conf, LOCAL).expect("config");
    std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o000)).expect("chmod");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_smtpd"));
    if let Some(uid) = ordinary(dir.path()) {
        cmd.uid(uid).gid(uid);
    }
    let out = cmd
        .arg("-d")
        .arg("-f")
        .arg(&conf)
        .env("SMTPD_SPOOL", dir.path().join("spool"))
        .env("SMTPD_SOCKET", dir.path().join("smtpd.sock"))
        .output()
        .expect("smtpd");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!("pushfile: {}: Permission denied\n", conf.display())
    );
    assert!(!dir.path().join("spool").exists(), "a spool was made");
}

/// A spool on a full file system (a 256 KiB tmpfs filled up, in a mount namespace of the
/// daemon's own): a warning at start, and each refused recipient's line says why.
#[test]
fn a_full_spool_file_system_is_said_at_start_and_on_each_message() {
    if !require_root() || !require_tool("unshare") {
        return;
    }
    let prefix = [
        "unshare",
        "-m",
        "sh",
        "-c",
        "mount --make-rprivate / && mkdir -p \"$SMTPD_SPOOL\" && \
         mount -t tmpfs -o size=256k,mode=0711 tmpfs \"$SMTPD_SPOOL\" && \
         { head -c 1048576 /dev/zero > \"$SMTPD_SPOOL/filler\" 2> /dev/null; \
         exec \"$0\" \"$@\"; }",
    ];
    let mut d = Daemon::launch(
        &prefix,
        env!("CARGO_BIN_EXE_smtpd"),
        &format!("listen on 127.0.0.1 port @PORT@\n{LOCAL}"),
        &[],
        Some("127.0.0.1:1"),
    );
    let warning = d.wait_log(|l| l.contains("the file system is full"));
    assert!(
        warning.starts_with(&format!(
            "warn: queue: {}: the file system is full (0 bytes, ",
            d.spool().display()
        )),
        "{warning}"
    );
    let mut c = Client::connect(d.addr());
    assert!(c.reply().starts_with("220 "));
    assert!(c.cmd("EHLO client.example").starts_with("250"));
    assert!(c.cmd("MAIL FROM:<a@client.example>").starts_with("250"));
    let r = c.cmd("RCPT TO:<root@localhost>");
    assert!(r.starts_with("421 4.3.0 "), "{r}");
    let line = d.wait_log(|l| l.contains("cannot create envelope"));
    assert_eq!(
        line,
        "warn: queue: cannot create envelope: No space left on device: the spool's file system \
         is full: free space there"
    );
    assert_eq!(d.stop(), Some(0));
}

/// The pids of the daemons whose command line names `conf`.
fn daemons_of(conf: &Path) -> Vec<i32> {
    let want = conf.to_string_lossy().into_owned();
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        if cmdline.split(|&b| b == 0).any(|a| a == want.as_bytes()) {
            out.push(pid);
        }
    }
    out
}

/// Started detached (as systemd's `Type=forking` unit does), the command exits only once the
/// daemon serves (exit 0: the port answers at once) or could not start (exit 1, the line on
/// its stderr, not only in the mail log).
#[test]
fn a_detached_start_reports_its_outcome_to_the_command() {
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("smtpd.conf");
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    std::fs::write(&conf, format!("listen on 127.0.0.1 port {port}\n{LOCAL}")).expect("config");
    let detached = || {
        Command::new(env!("CARGO_BIN_EXE_smtpd"))
            .arg("-f")
            .arg(&conf)
            .env("SMTPD_SPOOL", dir.path().join("spool"))
            .env("SMTPD_SOCKET", dir.path().join("smtpd.sock"))
            .stdin(Stdio::null())
            .output()
            .expect("smtpd")
    };
    let out = detached();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with(&format!(
            "smtpd: bind: 127.0.0.1:{port}: Address already in use: another program"
        )) && err.lines().count() == 1,
        "{err}"
    );
    // The daemon reported, then ends (a moment after the command).
    wait_gone(&conf);
    assert!(
        !dir.path().join("smtpd.sock").exists(),
        "socket left behind"
    );

    drop(taken);
    let out = detached();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(out.stderr.is_empty(), "{out:?}");
    let answered = std::net::TcpStream::connect(("127.0.0.1", port));
    let pids = daemons_of(&conf);
    for &pid in &pids {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    assert!(answered.is_ok(), "not serving when the command exited");
    assert_eq!(pids.len(), 1, "{pids:?}");
    wait_gone(&conf);
}

/// Detached, the daemon works in `/`; a relative `include` still names the file beside the
/// directory it was started in when SIGHUP reloads (it named nothing there before).
#[test]
fn a_detached_daemon_reloads_its_relative_includes() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Started as root the engine reads the files as opensmtpq.
    let _ = std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755));
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    // Relative and unique, so that its command line finds this daemon and no other.
    let name = format!("smtpd-{port}.conf");
    let rules = |domain: &str| {
        format!(
            "action \"r\" relay host smtp://127.0.0.1:1\nmatch from any for domain \"{domain}\" action \"r\"\n"
        )
    };
    std::fs::write(dir.path().join("rules.conf"), rules("a.test")).expect("rules");
    std::fs::write(
        dir.path().join(&name),
        format!("listen on 127.0.0.1 port {port}\ninclude \"rules.conf\"\n"),
    )
    .expect("config");
    let out = Command::new(env!("CARGO_BIN_EXE_smtpd"))
        .arg("-f")
        .arg(&name)
        .current_dir(dir.path())
        .env("SMTPD_SPOOL", dir.path().join("spool"))
        .env("SMTPD_SOCKET", dir.path().join("smtpd.sock"))
        .stdin(Stdio::null())
        .output()
        .expect("smtpd");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let pids = daemons_of(Path::new(&name));
    let rcpt = |to: &str| -> String {
        let mut c = Client::connect(format!("127.0.0.1:{port}").parse().expect("addr"));
        c.reply();
        c.cmd("EHLO client.example");
        c.cmd("MAIL FROM:<a@client.example>");
        let r = c.cmd(&format!("RCPT TO:<{to}>"));
        c.cmd("QUIT");
        r
    };
    let before = (rcpt("u@a.test"), rcpt("u@b.test"));
    std::fs::write(dir.path().join("rules.conf"), rules("b.test")).expect("rules");
    for &pid in &pids {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGHUP,
        );
    }
    let t0 = Instant::now();
    while !rcpt("u@b.test").starts_with("250") && t0.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let after = (rcpt("u@a.test"), rcpt("u@b.test"));
    for &pid in &pids {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    wait_gone(Path::new(&name));
    assert_eq!(pids.len(), 1, "{pids:?}");
    assert!(
        before.0.starts_with("250") && before.1.starts_with("550"),
        "{before:?}"
    );
    assert!(
        after.0.starts_with("550") && after.1.starts_with("250"),
        "not reloaded: {after:?}"
    );
}

fn wait_gone(conf: &Path) {
    let t0 = Instant::now();
    while !daemons_of(conf).is_empty() && t0.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(daemons_of(conf).is_empty(), "a daemon is left running");
}
