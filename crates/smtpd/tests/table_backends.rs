//! External table backends: Debian's `table-sqlite` (opensmtpd-extras 6.7.1) serving virtual
//! domains, aliases, a userbase, AUTH credentials and a `senders` check, over real TCP (and TLS
//! for the submission listener), side by side with OpenSMTPD 6.8.0p2 running the same config and
//! database: the replies, the `-T lookup` lines of each session, the session and delivery log
//! lines and the delivered Maildir must agree. Then what is ours on purpose: a backend killed
//! mid-run fails its lookups temporarily and is started again; and a missing program is refused
//! as OpenSMTPD refuses it.

mod common;

use common::certs::{unavailable, Certs};
use common::procfs::{arg0, parent_of, pids};
use common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const TABLE_SQLITE: &str = "/usr/libexec/opensmtpd/table-sqlite";
/// bcrypt of `bobpass` (libxcrypt's mkpasswd).
const BOB_HASH: &str = "$2b$05$6s3w.KUxVYoZLlITIV07JOyENSGb83KfsqJzdU3Kz3iYZg3TfjNMi";

/// Whether the backend and python3's sqlite3 (which makes the database) are here.
fn have_sqlite() -> bool {
    let py = Command::new("python3")
        .args(["-c", "import sqlite3"])
        .output()
        .is_ok_and(|o| o.status.success());
    require(
        Path::new(TABLE_SQLITE).exists() && py && is_root(),
        "needs root, /usr/libexec/opensmtpd/table-sqlite (opensmtpd-extras) and python3's sqlite3",
    )
}

/// A folder with the database and table-sqlite's configuration, readable by the backend's
/// user (`opensmtpd`: the test's own folders are root's alone).
struct Sql {
    dir: tempfile::TempDir,
}

impl Sql {
    fn new(uid: u32) -> Sql {
        let dir = tempfile::tempdir().expect("tempdir");
        let _ = std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755));
        let db = dir.path().join("db.sqlite");
        let home = dir.path().display().to_string();
        sqlite_db(
            &db,
            &format!(
                "
create table domains(domain text);
create table virtuals(email text, destination text);
create table credentials(email text, password text);
create table users(name text, uid int, gid int, home text);
create table senders(login text, addr text);
insert into domains values('example.com');
insert into domains values('example.net');
insert into virtuals values('abuse@example.com', 'bob@example.com');
insert into virtuals values('abuse@example.com', 'carol@example.net');
insert into virtuals values('bob@example.com', 'vmail');
insert into virtuals values('carol@example.net', 'vmail');
insert into users values('vmail', {uid}, {uid}, '{home}');
insert into senders values('bob', 'bob@example.com');
insert into credentials values('bob', '{BOB_HASH}');
"
            ),
        );
        std::fs::write(
            dir.path().join("sqlite.conf"),
            format!(
                "dbpath {}\n\
                 query_domain SELECT domain FROM domains WHERE domain=?;\n\
                 query_alias SELECT destination FROM virtuals WHERE email=?;\n\
                 query_credentials SELECT email, password FROM credentials WHERE email=?;\n\
                 query_userinfo SELECT uid, gid, home FROM users WHERE name=?;\n\
                 query_mailaddrmap SELECT addr FROM senders WHERE login=?;\n",
                db.display()
            ),
        )
        .expect("sqlite.conf");
        let _ = std::fs::set_permissions(
            dir.path().join("sqlite.conf"),
            std::fs::Permissions::from_mode(0o644),
        );
        Sql { dir }
    }

    fn conf(&self) -> String {
        self.dir.path().join("sqlite.conf").display().to_string()
    }
}

fn config(sql: &Sql, certs: &Certs, sub: u16) -> String {
    format!(
        "pki mx.example.org cert \"{mx}.crt\"\n\
         pki mx.example.org key \"{mx}.key\"\n\
         table domains sqlite:{c}\n\
         table virtuals sqlite:{c}\n\
         table users sqlite:{c}\n\
         table creds sqlite:{c}\n\
         table sendermap sqlite:{c}\n\
         listen on 127.0.0.1 port @PORT@\n\
         listen on 127.0.0.1 port {sub} tls pki mx.example.org auth <creds> senders <sendermap>\n\
         action \"v\" maildir \"@DIR@/mail/%{{user.username}}\" virtual <virtuals> userbase <users>\n\
         match from any for domain <domains> action \"v\"\n",
        mx = certs.p("mx"),
        c = sql.conf(),
    )
}

/// The plain listener: aliases through two levels, an unknown user, a foreign domain, a key
/// in capitals (the lookup lower-cases it).
fn plain_dialogue(d: &Daemon) -> Vec<String> {
    let mut c = Client::connect(d.addr());
    let mut out = vec![c.reply()];
    for cmd in [
        "EHLO client.example",
        "MAIL FROM:<sender@remote.test>",
        "RCPT TO:<abuse@example.com>",
        "RCPT TO:<nobody@example.com>",
        "RCPT TO:<x@other.org>",
        "RCPT TO:<BOB@Example.COM>",
        "DATA",
        "Subject: one\r\n\r\nhello\r\n.",
        "QUIT",
    ] {
        out.push(c.cmd(cmd));
    }
    out
}

/// The submission listener over STARTTLS: a wrong password, then bob's, a sender he may not
/// use, then his own.
fn submission_dialogue(port: u16, ca: &str) -> Vec<String> {
    let script = r#"
import smtplib, ssl, sys, base64
port, ca = int(sys.argv[1]), sys.argv[2]
ctx = ssl.create_default_context(cafile=ca); ctx.check_hostname = False
def plain(u, p):
    return base64.b64encode(b'\0' + u.encode() + b'\0' + p.encode()).decode()
def show(r):
    print('%d %s' % (r[0], r[1].decode().replace('\n', ' / ')))
for pw, cmds in [('wrong', []), ('bobpass', [
        'MAIL FROM:<eve@example.com>', 'RSET', 'MAIL FROM:<bob@example.com>',
        'RCPT TO:<carol@example.net>', 'DATA'])]:
    s = smtplib.SMTP('127.0.0.1', port, local_hostname='client.example')
    s.starttls(context=ctx)
    s.ehlo('client.example')
    show(s.docmd('AUTH', 'PLAIN ' + plain('bob', pw)))
    for c in cmds:
        show(s.docmd(c))
    if cmds:
        s.send(b'Subject: two\r\n\r\nhi\r\n.\r\n')
        show(s.getreply())
    show(s.docmd('QUIT'))
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(port.to_string())
        .arg(ca)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

fn wait_mails(dir: &Path, n: usize) -> Vec<String> {
    let t0 = Instant::now();
    loop {
        let m = mail_texts(&dir.join("mail/vmail/new"));
        if m.len() >= n || t0.elapsed() > Duration::from_secs(30) {
            return m;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The `lookup:` lines logged while each session was open, until its message was queued
/// (deliveries are waited for between sessions, so their lookups, whose number is the
/// delivery agent's business, fall outside).
fn session_lookups(log: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut open = false;
    for l in log {
        if l.ends_with(" smtp connected address=127.0.0.1 host=localhost") {
            open = true;
            out.push("--- session".to_string());
        } else if l.contains(" smtp disconnected reason=") || l.contains(" smtp message msgid=") {
            // Once a message is in the queue its delivery may begin while the session lasts.
            open = false;
        } else if open && l.starts_with("lookup: ") {
            out.push(l.clone());
        }
    }
    out
}

/// `mda delivery` lines without their ids and delays.
fn deliveries(log: &[String]) -> Vec<String> {
    let mut v: Vec<String> = log
        .iter()
        .filter(|l| l.contains(" mda delivery "))
        .map(|l| {
            l.split(' ')
                .filter(|w| {
                    ["from=", "to=", "rcpt=", "user=", "result=", "stat="]
                        .iter()
                        .any(|p| w.starts_with(p))
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    v.sort();
    v
}

/// What one daemon did, to compare.
#[derive(Debug, PartialEq)]
struct Run {
    plain: Vec<String>,
    submission: Vec<String>,
    lookups: Vec<String>,
    sessions: Vec<String>,
    deliveries: Vec<String>,
    mails: usize,
}

fn run(bin: &str, sql: &Sql, certs: &Certs, uid: u32) -> Run {
    let sub = free_port();
    let mut d = Daemon::start_with(bin, &config(sql, certs, sub), &["-T", "lookup"]);
    user_dir(&d, "mail", uid);
    let plain = normalized_replies(&plain_dialogue(&d));
    let first = wait_mails(d.dir.path(), 3);
    let submission = normalized_replies(&submission_dialogue(sub, &certs.p("ca.crt")));
    let all = wait_mails(d.dir.path(), first.len() + 1);
    std::thread::sleep(Duration::from_millis(300));
    d.stop();
    let log = d.log();
    Run {
        plain,
        submission,
        lookups: session_lookups(&log),
        sessions: normalized_session_log(&log),
        deliveries: deliveries(&log),
        mails: all.len(),
    }
}

#[test]
fn sqlite_tables_serve_virtual_domains_users_auth_and_senders_as_opensmtpd() {
    if !have_sqlite() {
        return;
    }
    if let Some(why) = unavailable() {
        skip(why);
        return;
    }
    let certs = Certs::new();
    certs.ca("ca", "Test CA").leaf(
        "mx",
        Some("ca"),
        "mx.example.org",
        &["mx.example.org"],
        "serverAuth",
        true,
    );
    let uid = delivery_uid(2000);
    let sql = Sql::new(uid);
    let ours = run(env!("CARGO_BIN_EXE_smtpd"), &sql, &certs, uid);
    let p = ours.plain.join("\n");
    assert!(ours.plain[3].starts_with("250 2.1.5"), "{p}");
    assert!(ours.plain[4].starts_with("524 5.2.4"), "{p}");
    assert!(ours.plain[5].starts_with("550 Invalid recipient"), "{p}");
    assert!(ours.plain[6].starts_with("250 2.1.5"), "{p}");
    let s = ours.submission.join("\n");
    assert!(ours.submission[0].starts_with("535"), "{s}");
    assert!(ours.submission[2].starts_with("235"), "{s}");
    assert!(
        ours.submission[3].starts_with("530 Sender rejected"),
        "senders: {s}"
    );
    assert!(ours.submission[5].starts_with("250"), "{s}");
    assert_eq!(ours.mails, 4, "{:?}", ours);
    assert!(
        ours.lookups
            .iter()
            .any(|l| l == "lookup: match \"example.com\" as DOMAIN in table proc:domains -> true"),
        "{:?}",
        ours.lookups
    );
    if std::path::Path::new(TLS_SMTPD).exists() {
        let _lock = real_lock();
        let real = run(TLS_SMTPD, &sql, &certs, uid);
        assert_eq!(
            ours.plain, real.plain,
            "plain replies differ from OpenSMTPD's"
        );
        assert_eq!(
            ours.submission, real.submission,
            "submission replies differ from OpenSMTPD's"
        );
        assert_eq!(ours.lookups, real.lookups, "lookup lines differ");
        assert_eq!(ours.sessions, real.sessions, "session log lines differ");
        assert_eq!(ours.deliveries, real.deliveries, "mda lines differ");
        assert_eq!(ours.mails, real.mails, "delivered mails differ");
    } else {
        skip(&format!(
            "OpenSMTPD not compared: {TLS_SMTPD} missing (tests/tools/opensmtpd-tls.sh)"
        ));
    }
}

/// The backends of a daemon, by table name: processes whose parent it is and whose `argv[0]`
/// is the table's name.
fn backend_pid(daemon: u32, table: &str) -> Option<u32> {
    pids().into_iter().find(|&pid| {
        parent_of(pid).is_some_and(|p| p == daemon || parent_of(p) == Some(daemon))
            && arg0(pid) == table.as_bytes()
    })
}

/// Ours on purpose (6.8 exits with `table-proc: exiting`): the lookup that finds the backend
/// dead fails temporarily, the next ones after a short wait start it again and succeed; the
/// daemon keeps serving throughout. `smtpctl update table` asks the backend to reload.
#[test]
fn a_killed_backend_fails_its_lookup_temporarily_and_is_started_again() {
    if !have_sqlite() {
        return;
    }
    let uid = delivery_uid(2000);
    let sql = Sql::new(uid);
    let conf = format!(
        "table domains sqlite:{c}\ntable virtuals sqlite:{c}\ntable users sqlite:{c}\n\
         listen on 127.0.0.1 port @PORT@\n\
         action \"v\" maildir \"@DIR@/mail/%{{user.username}}\" virtual <virtuals> userbase <users>\n\
         match from any for domain <domains> action \"v\"\n",
        c = sql.conf()
    );
    let mut d = Daemon::start(&conf, &[]);
    let before = backend_pid(d.pid(), "virtuals").expect("the virtuals backend runs");
    // It runs as OpenSMTPD's user, as 6.8's lookup process and its children do; in a split
    // daemon the root parent starts it for the sandboxed engine (which cannot exec): its child.
    let status = std::fs::read_to_string(format!("/proc/{before}/status")).unwrap_or_default();
    assert_eq!(parent_of(before), Some(d.pid()), "{status}");
    let want_uid = nix::unistd::User::from_name("opensmtpd")
        .ok()
        .flatten()
        .map(|u| u.uid.as_raw())
        .filter(|_| is_root());
    if let Some(u) = want_uid {
        assert!(
            status
                .lines()
                .any(|l| l.starts_with("Uid:")
                    && l.split_whitespace().nth(1) == Some(&u.to_string())),
            "{status}"
        );
    }
    let mut c = Client::connect(d.addr());
    c.reply();
    c.cmd("EHLO client.example");
    c.cmd("MAIL FROM:<sender@remote.test>");
    assert!(c.cmd("RCPT TO:<abuse@example.com>").starts_with("250"));
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(before as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
    std::thread::sleep(Duration::from_millis(200));
    let r = c.cmd("RCPT TO:<bob@example.com>");
    assert!(
        r.starts_with('4'),
        "a temporary failure: {r}\n{}",
        d.log().join("\n")
    );
    d.wait_log(|l| {
        l.starts_with("warn: table-proc: table \"virtuals\": backend \"sqlite\" is down")
    });
    std::thread::sleep(Duration::from_millis(1300));
    let r = c.cmd("RCPT TO:<bob@example.com>");
    assert!(
        r.starts_with("250"),
        "after the restart: {r}\n{}",
        d.log().join("\n")
    );
    d.wait_log(|l| l == "info: table-proc: table \"virtuals\": backend \"sqlite\" restarted");
    let after = backend_pid(d.pid(), "virtuals").expect("a new backend");
    assert_ne!(before, after);
    c.cmd("QUIT");
    let o = ctl(&d, "smtpctl", &["update", "table", "virtuals"], "", None);
    assert!(o.status.success(), "{o:?}");
    let o = ctl(&d, "smtpctl", &["update", "table", "nosuch"], "", None);
    assert!(!o.status.success(), "{o:?}");
    d.stop();
}

/// A backend whose program is not installed: `smtpd -n` and the daemon refuse the config with
/// OpenSMTPD's line.
#[test]
fn a_missing_backend_program_is_refused_as_opensmtpd_refuses_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("c.conf");
    std::fs::write(
        &conf,
        "table t nosuchbackend:/etc/mail/x.conf\nlisten on 127.0.0.1 port 2525\n",
    )
    .expect("write");
    let want = "smtpd: table_create: backend \"nosuchbackend\" does not exist\n";
    let run = |bin: &str, args: &[&str]| {
        let o = Command::new(bin)
            .args(args)
            .arg("-f")
            .arg(&conf)
            .env("SMTPD_SPOOL", dir.path().join("spool"))
            .env("SMTPD_SOCKET", dir.path().join("s.sock"))
            .output()
            .expect("run");
        (
            String::from_utf8_lossy(&o.stderr).into_owned(),
            o.status.code(),
        )
    };
    let ours = env!("CARGO_BIN_EXE_smtpd");
    assert_eq!(run(ours, &["-n"]), (want.to_string(), Some(1)));
    assert_eq!(run(ours, &["-d"]), (want.to_string(), Some(1)));
    if require_real("OpenSMTPD's -n on a missing backend") {
        assert_eq!(run(REAL_SMTPD, &["-n"]), (want.to_string(), Some(1)));
    }
}

/// Debian's `table-passwd`: a userbase from a passwd(5) file, as OpenSMTPD uses it (replies,
/// lookup lines, deliveries).
#[test]
fn a_passwd_table_is_a_userbase_as_in_opensmtpd() {
    if !require(
        Path::new("/usr/libexec/opensmtpd/table-passwd").exists() && is_root(),
        "needs root and /usr/libexec/opensmtpd/table-passwd (opensmtpd-extras)",
    ) {
        return;
    }
    let uid = delivery_uid(2000);
    let dir = tempfile::tempdir().expect("tempdir");
    let _ = std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755));
    let pw = dir.path().join("passwd");
    std::fs::write(
        &pw,
        format!(
            "alice:*:{uid}:{uid}:Alice:{home}:/sbin/nologin\n",
            home = dir.path().display()
        ),
    )
    .expect("passwd");
    let _ = std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o644));
    let conf = format!(
        "table pw passwd:{}\nlisten on 127.0.0.1 port @PORT@\n\
         action \"l\" maildir \"@DIR@/mail/%{{user.username}}\" userbase <pw>\n\
         match from any for domain \"example.org\" action \"l\"\n",
        pw.display()
    );
    let run = |bin: &str| {
        let mut d = Daemon::start_with(bin, &conf, &["-T", "lookup"]);
        user_dir(&d, "mail", uid);
        let mut c = Client::connect(d.addr());
        let mut out = vec![c.reply()];
        for cmd in [
            "EHLO client.example",
            "MAIL FROM:<sender@remote.test>",
            "RCPT TO:<Alice@example.org>",
            "RCPT TO:<nobody@example.org>",
            "DATA",
            "Subject: pw\r\n\r\nhello\r\n.",
            "QUIT",
        ] {
            out.push(c.cmd(cmd));
        }
        let t0 = Instant::now();
        while mail_texts(&d.dir.path().join("mail/alice/new")).is_empty()
            && t0.elapsed() < Duration::from_secs(30)
        {
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(Duration::from_millis(300));
        d.stop();
        let log = d.log();
        (
            normalized_replies(&out),
            session_lookups(&log),
            deliveries(&log),
        )
    };
    let ours = run(env!("CARGO_BIN_EXE_smtpd"));
    assert!(ours.0[3].starts_with("250 2.1.5"), "{:?}", ours);
    assert_eq!(ours.2.len(), 1, "{:?}", ours);
    if require_real("the table-passwd comparison with OpenSMTPD") {
        let _lock = real_lock();
        let real = run(REAL_SMTPD);
        assert_eq!(ours, real, "differs from OpenSMTPD's");
    }
}

/// A backend that cannot open its table (here table-passwd refusing a bad line) stops the
/// start, with 6.8's lines.
#[test]
fn a_backend_that_fails_to_open_stops_the_start_as_in_opensmtpd() {
    if !require(
        Path::new("/usr/libexec/opensmtpd/table-passwd").exists() && is_root(),
        "needs root and /usr/libexec/opensmtpd/table-passwd (opensmtpd-extras)",
    ) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let _ = std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755));
    let pw = dir.path().join("passwd");
    std::fs::write(&pw, "broken:*:x\n").expect("passwd");
    let _ = std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o644));
    let conf = format!(
        "table pw passwd:{}\nlisten on 127.0.0.1 port @PORT@\n\
         action \"l\" maildir userbase <pw>\nmatch from any for local action \"l\"\n",
        pw.display()
    );
    let fails = |bin: &str| {
        let Err((f, _)) = Daemon::try_launch(&[], bin, &conf, &[], Some("127.0.0.1:1")) else {
            panic!("{bin} started");
        };
        assert!(f.exited.is_some_and(|s| !s.success()), "{f:?}");
        let mut want: Vec<String> = f
            .log
            .into_iter()
            .filter(|l| l.contains("table-proc: exiting") || l.contains("error parsing config"))
            .collect();
        // The backend's own line names its pid.
        for l in &mut want {
            if let Some(i) = l.find("]: ") {
                *l = l[i..].to_string();
            }
        }
        want
    };
    let ours = fails(env!("CARGO_BIN_EXE_smtpd"));
    assert_eq!(
        ours,
        [
            "]: fatal: error parsing config file",
            "lookup: table-proc: exiting"
        ]
    );
    if require_real("the failed open compared with OpenSMTPD") {
        let _lock = real_lock();
        assert_eq!(ours, fails(REAL_SMTPD));
    }
}

/// A minimal SMTP server that takes one message and says who connected and how it greeted.
fn sink() -> (u16, std::sync::mpsc::Receiver<(String, String)>) {
    use std::io::{BufRead, BufReader, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let peer = s
                .peer_addr()
                .map(|a| a.ip().to_string())
                .unwrap_or_default();
            let mut w = s.try_clone().expect("clone");
            let mut r = BufReader::new(s);
            let _ = w.write_all(b"220 sink.test ESMTP\r\n");
            let mut ehlo = String::new();
            let mut data = false;
            let mut line = String::new();
            while r.read_line(&mut line).is_ok_and(|n| n > 0) {
                let t = line.trim_end().to_string();
                line.clear();
                if data {
                    if t == "." {
                        data = false;
                        let _ = w.write_all(b"250 2.0.0 queued\r\n");
                        let _ = tx.send((peer.clone(), ehlo.clone()));
                    }
                    continue;
                }
                let up = t.to_ascii_uppercase();
                let reply: &[u8] = if up.starts_with("EHLO") || up.starts_with("HELO") {
                    ehlo = t.clone();
                    b"250 sink.test\r\n"
                } else if up == "DATA" {
                    data = true;
                    b"354 go\r\n"
                } else if up == "QUIT" {
                    let _ = w.write_all(b"221 bye\r\n");
                    break;
                } else {
                    b"250 ok\r\n"
                };
                let _ = w.write_all(reply);
            }
        }
    });
    (port, rx)
}

/// Relay `src <t>` and `helo-src <t>` from table-sqlite: the source is `table_fetch(K_SOURCE)`
/// (`fetch_source`), the HELO name a `K_ADDRNAME` lookup (`query_addrname`), as 6.8 asks them.
#[test]
fn relay_src_and_helo_src_come_from_a_sqlite_table_as_in_opensmtpd() {
    if !have_sqlite() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let _ = std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755));
    let db = dir.path().join("relay.sqlite");
    sqlite_db(
        &db,
        "create table sources(addr text); create table helos(addr text, name text);\
         insert into sources values('127.0.0.3'); insert into helos values('127.0.0.3', 'three.test');",
    );
    let sc = dir.path().join("relay.conf");
    std::fs::write(
        &sc,
        format!(
            "dbpath {}\nfetch_source SELECT addr FROM sources;\n\
             query_addrname SELECT name FROM helos WHERE addr=?;\n",
            db.display()
        ),
    )
    .expect("conf");
    let _ = std::fs::set_permissions(&sc, std::fs::Permissions::from_mode(0o644));
    let run = |bin: &str| {
        let (port, got) = sink();
        let conf = format!(
            "table srcs sqlite:{c}\ntable helos sqlite:{c}\nlisten on 127.0.0.1 port @PORT@\n\
             action \"r\" relay host smtp://127.0.0.1:{port} src <srcs> helo-src <helos>\n\
             match from any for any action \"r\"\n",
            c = sc.display()
        );
        let mut d = Daemon::start_with(bin, &conf, &["-T", "lookup"]);
        let mut c = Client::connect(d.addr());
        c.reply();
        for cmd in [
            "EHLO client.example",
            "MAIL FROM:<alice@src.test>",
            "RCPT TO:<bob@dst.test>",
            "DATA",
            "Subject: relayed\r\n\r\nhi\r\n.",
            "QUIT",
        ] {
            c.cmd(cmd);
        }
        let seen = got.recv_timeout(Duration::from_secs(30));
        d.wait_log(|l| l.contains("mta delivery") && l.contains("result=\"Ok\""));
        d.stop();
        let fetches: Vec<String> = d
            .log()
            .into_iter()
            .filter(|l| l.starts_with("lookup: fetch ") || l.contains(" as ADDRNAME "))
            .map(|l| l.replace(&format!(":{port}\""), ":PORT\""))
            .collect();
        (seen.ok(), fetches)
    };
    let ours = run(env!("CARGO_BIN_EXE_smtpd"));
    assert_eq!(
        ours.0,
        Some(("127.0.0.3".to_string(), "EHLO three.test".to_string())),
        "{ours:?}"
    );
    assert!(
        ours.1
            .iter()
            .any(|l| l == "lookup: fetch SOURCE from table proc:srcs -> \"127.0.0.3\""),
        "{ours:?}"
    );
    if require_real("relay src/helo-src from sqlite compared with OpenSMTPD") {
        let _lock = real_lock();
        assert_eq!(ours, run(REAL_SMTPD));
    }
}
