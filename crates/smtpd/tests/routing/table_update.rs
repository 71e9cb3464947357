//! `smtpctl update table` and `newaliases` on the running daemon: a `file:` table reloaded while
//! sessions run, a bad or missing file keeping the old contents, a `db:` table rebuilt by
//! makemap, an unknown name, a user who is not root. Each scenario gives a transcript (SMTP
//! replies, smtpctl's output and exit code, the daemon's table log lines) that must be the one
//! written here, and, where OpenSMTPD 6.8 can be run (installed, and we are root), the same
//! scenario run on it must give the same transcript.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::*;

/// The programs a scenario runs: ours, or OpenSMTPD's.
struct Programs {
    real: bool,
    /// Maps are written by OpenSMTPD's makemap (Berkeley DB) even for our daemon.
    bdb_maps: bool,
}

impl Programs {
    fn start(&self, config: &str) -> Daemon {
        self.start_traced(config, &[])
    }

    fn start_traced(&self, config: &str, args: &[&str]) -> Daemon {
        if self.real {
            Daemon::start_with(REAL_SMTPD, config, args)
        } else {
            Daemon::start(config, args)
        }
    }

    /// smtpctl (or one of its other names) as root, or as `uid`: `NAME ARGS: rc=N out err`.
    fn ctl(&self, d: &Daemon, data: &Path, name: &str, args: &[&str], uid: Option<u32>) -> String {
        let bin = if self.real {
            PathBuf::from(format!("/usr/sbin/{name}"))
        } else {
            smtpctl()
        };
        let out = ctl_with(&bin, d, name, args, "", uid);
        let text = |b: &[u8]| normalize(&String::from_utf8_lossy(b), data);
        let conf = d.dir.path().join("smtpd.conf");
        format!(
            "{} {}: rc={:?} out={:?} err={:?}",
            name,
            args.join(" ")
                .replace(conf.to_str().unwrap_or("\u{0}"), "CONF"),
            out.status.code(),
            text(&out.stdout),
            text(&out.stderr)
        )
    }

    fn makemap(&self, data: &Path) -> String {
        let bin = if self.real || self.bdb_maps {
            PathBuf::from("/usr/sbin/makemap")
        } else {
            smtpctl()
        };
        let link = data.join("makemap");
        if !link.exists() {
            std::os::unix::fs::symlink(&bin, &link).expect("symlink");
        }
        let out = std::process::Command::new(&link)
            .arg("-o")
            .arg(data.join("aliases.db"))
            .arg(data.join("aliases"))
            .output()
            .expect("makemap");
        format!(
            "makemap: rc={:?} err={:?}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        )
    }
}

/// Runs a scenario on ours, checks its transcript, and on OpenSMTPD too when it can.
fn check(scenario: fn(&Programs, &Path) -> Vec<String>, want: &[String]) {
    let data = data_dir();
    let ours = scenario(
        &Programs {
            real: false,
            bdb_maps: false,
        },
        data.path(),
    );
    assert_eq!(ours, want, "ours");
    if !require_real("compared with the transcript only, not with OpenSMTPD") {
        return;
    }
    let _lock = real_lock();
    let data = data_dir();
    let real = scenario(
        &Programs {
            real: true,
            bdb_maps: true,
        },
        data.path(),
    );
    assert_eq!(real, want, "OpenSMTPD");
}

/// A folder for the table files that OpenSMTPD's lookup process, which is not root, can read.
fn data_dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    d
}

fn normalize(s: &str, data: &Path) -> String {
    s.replace(data.to_str().unwrap_or("\u{0}"), "DATA")
}

fn write(data: &Path, name: &str, text: &str) {
    std::fs::write(data.join(name), text).expect("write");
}

fn config(data: &Path, table: &str) -> String {
    format!(
        "listen on 127.0.0.1 port @PORT@\n\
         table aliases {table}\n\
         table users {{ foo = \"1000:1000:{dir}\" }}\n\
         action \"l\" maildir alias <aliases> userbase <users>\n\
         match from any for domain \"example.org\" action \"l\"\n",
        dir = data.display()
    )
}

/// A session after `MAIL FROM`.
fn session(d: &Daemon) -> Client {
    let addr: SocketAddr = format!("127.0.0.1:{}", d.port).parse().expect("addr");
    let mut c = Client::connect(addr);
    c.reply();
    c.cmd("HELO client");
    c.cmd("MAIL FROM:<>");
    c
}

fn rcpt(c: &mut Client, who: &str, user: &str) -> String {
    format!(
        "{who} RCPT {user}: {}",
        c.cmd(&format!("RCPT TO:<{user}@example.org>")).trim_end()
    )
}

/// The daemon's lines about table updates, once `last` has been logged.
fn table_log(d: &Daemon, data: &Path, last: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let is_table_line = |l: &str| {
        l.starts_with("info: Table ")
            || l.starts_with("info: Failed to update table ")
            || l.starts_with("warn: Lookup table not found: ")
            || l.contains(": fopen: ")
            || l.contains(": getline: ")
            || l.contains(": invalid map entry line ")
    };
    loop {
        let lines: Vec<String> = d
            .log()
            .iter()
            .filter(|l| is_table_line(l))
            .map(|l| normalize(l, data))
            .collect();
        if lines.last().is_some_and(|l| l == last) || Instant::now() > deadline {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

const NOBODY: u32 = 65534;

fn file_table(p: &Programs, data: &Path) -> Vec<String> {
    write(data, "aliases", "abuse: foo\n");
    let d = p.start(&config(data, &format!("file:{}/aliases", data.display())));
    let mut t = Vec::new();
    let mut old = session(&d);
    t.push(rcpt(&mut old, "old", "neu"));
    write(data, "aliases", "abuse: foo\nneu: foo\n");
    t.push(p.ctl(&d, data, "smtpctl", &["update", "table", "aliases"], None));
    // A session open before the update sees the new table at its next RCPT, as in OpenSMTPD,
    // where every lookup asks the lookup process.
    t.push(rcpt(&mut old, "old", "neu"));
    let mut new = session(&d);
    t.push(rcpt(&mut new, "new", "neu"));
    // A hash table reloaded from a line without a value: the update fails, the table stays.
    write(data, "aliases", "abuse: foo\nbad\n");
    t.push(p.ctl(&d, data, "smtpctl", &["update", "table", "aliases"], None));
    t.push(rcpt(&mut new, "new", "neu"));
    std::fs::remove_file(data.join("aliases")).expect("rm");
    t.push(p.ctl(&d, data, "smtpctl", &["update", "table", "aliases"], None));
    t.push(rcpt(&mut new, "new", "neu"));
    write(data, "aliases", "abuse: foo\n");
    t.push(p.ctl(&d, data, "smtpctl", &["update", "table", "aliases"], None));
    t.push(rcpt(&mut new, "new", "neu"));
    t.push(rcpt(&mut old, "old", "abuse"));
    t.push(format!("old QUIT: {}", old.cmd("QUIT").trim_end()));
    // Tables without a file: nothing to read, "updated" all the same.
    t.push(p.ctl(&d, data, "smtpctl", &["update", "table", "users"], None));
    t.push(p.ctl(
        &d,
        data,
        "smtpctl",
        &["update", "table", "<localhost>"],
        None,
    ));
    t.push(p.ctl(
        &d,
        data,
        "smtpctl",
        &["update", "table", "<getpwnam>"],
        None,
    ));
    t.push(p.ctl(&d, data, "smtpctl", &["update", "table", "nosuch"], None));
    if nix::unistd::geteuid().is_root() {
        t.push(p.ctl(
            &d,
            data,
            "smtpctl",
            &["update", "table", "aliases"],
            Some(NOBODY),
        ));
    } else {
        t.push("smtpctl update table aliases: rc=Some(1) out=\"\" err=\"smtpctl: need root privileges\\n\"".into());
    }
    t.extend(table_log(
        &d,
        data,
        "warn: Lookup table not found: \"nosuch\"",
    ));
    t
}

#[test]
fn update_table_reloads_a_file_table() {
    let ok = "smtpctl update table aliases: rc=Some(0) out=\"command succeeded\\n\" err=\"\"";
    let failed = "smtpctl update table aliases: rc=Some(1) out=\"command failed\\n\" err=\"\"";
    let want: Vec<String> = [
        "old RCPT neu: 550 Invalid recipient: <neu@example.org>",
        ok,
        "old RCPT neu: 250 2.1.5 Destination address valid: Recipient ok",
        "new RCPT neu: 250 2.1.5 Destination address valid: Recipient ok",
        failed,
        "new RCPT neu: 250 2.1.5 Destination address valid: Recipient ok",
        failed,
        "new RCPT neu: 250 2.1.5 Destination address valid: Recipient ok",
        ok,
        "new RCPT neu: 550 Invalid recipient: <neu@example.org>",
        "old RCPT abuse: 250 2.1.5 Destination address valid: Recipient ok",
        "old QUIT: 221 2.0.0 Bye",
        "smtpctl update table users: rc=Some(0) out=\"command succeeded\\n\" err=\"\"",
        "smtpctl update table <localhost>: rc=Some(0) out=\"command succeeded\\n\" err=\"\"",
        "smtpctl update table <getpwnam>: rc=Some(0) out=\"command succeeded\\n\" err=\"\"",
        "smtpctl update table nosuch: rc=Some(1) out=\"command failed\\n\" err=\"\"",
        "smtpctl update table aliases: rc=Some(1) out=\"\" err=\"smtpctl: need root privileges\\n\"",
        "info: Table \"aliases\" successfully updated",
        "DATA/aliases: invalid map entry line 2",
        "info: Failed to update table \"aliases\"",
        "DATA/aliases: fopen: No such file or directory",
        "info: Failed to update table \"aliases\"",
        "info: Table \"aliases\" successfully updated",
        "info: Table \"users\" successfully updated",
        "info: Table \"<localhost>\" successfully updated",
        "warn: Lookup table not found: \"nosuch\"",
    ]
    .map(String::from)
    .to_vec();
    check(file_table, &want);
}

fn db_table(p: &Programs, data: &Path) -> Vec<String> {
    let mut t = Vec::new();
    write(data, "aliases", "abuse: foo\n");
    t.push(p.makemap(data));
    let d = p.start(&config(data, &format!("db:{}/aliases.db", data.display())));
    let mut s = session(&d);
    t.push(rcpt(&mut s, "s", "neu"));
    write(data, "aliases", "abuse: foo\nneu: foo\n");
    t.push(p.makemap(data));
    t.push(p.ctl(&d, data, "smtpctl", &["update", "table", "aliases"], None));
    t.push(rcpt(&mut s, "s", "neu"));
    // OpenSMTPD's lookups of a db: table whose file is gone fail until it is back; only the
    // update's answer is compared here.
    std::fs::remove_file(data.join("aliases.db")).expect("rm");
    t.push(p.ctl(&d, data, "smtpctl", &["update", "table", "aliases"], None));
    // db: updates log nothing; this line closes the log.
    t.push(p.ctl(&d, data, "smtpctl", &["update", "table", "nosuch"], None));
    t.extend(table_log(
        &d,
        data,
        "warn: Lookup table not found: \"nosuch\"",
    ));
    t
}

#[test]
fn update_table_reopens_a_db_table_rebuilt_by_makemap() {
    let want: Vec<String> = [
        "makemap: rc=Some(0) err=\"\"",
        "s RCPT neu: 550 Invalid recipient: <neu@example.org>",
        "makemap: rc=Some(0) err=\"\"",
        "smtpctl update table aliases: rc=Some(0) out=\"command succeeded\\n\" err=\"\"",
        "s RCPT neu: 250 2.1.5 Destination address valid: Recipient ok",
        "smtpctl update table aliases: rc=Some(1) out=\"command failed\\n\" err=\"\"",
        "smtpctl update table nosuch: rc=Some(1) out=\"command failed\\n\" err=\"\"",
        "warn: Lookup table not found: \"nosuch\"",
    ]
    .map(String::from)
    .to_vec();
    check(db_table, &want);
}

fn newaliases(p: &Programs, data: &Path) -> Vec<String> {
    let mut t = Vec::new();
    write(data, "aliases", "abuse: foo\n");
    let d = p.start(&config(data, &format!("file:{}/aliases", data.display())));
    let mut s = session(&d);
    t.push(rcpt(&mut s, "s", "neu"));
    write(data, "aliases", "abuse: foo\nneu: foo\n");
    let conf = d.dir.path().join("smtpd.conf");
    let conf = conf.to_str().unwrap_or("");
    t.push(p.ctl(&d, data, "newaliases", &["-f", conf], None));
    t.push(rcpt(&mut s, "s", "neu"));
    t.extend(table_log(
        &d,
        data,
        "info: Table \"aliases\" successfully updated",
    ));
    t
}

#[test]
fn newaliases_updates_the_aliases_table() {
    if !require(nix::unistd::geteuid().is_root(), "newaliases needs root") {
        return;
    }
    let want: Vec<String> = [
        "s RCPT neu: 550 Invalid recipient: <neu@example.org>",
        "newaliases -f CONF: rc=Some(0) out=\"DATA/aliases: 2 aliases\\n\" err=\"\"",
        "s RCPT neu: 250 2.1.5 Destination address valid: Recipient ok",
        "info: Table \"aliases\" successfully updated",
    ]
    .map(String::from)
    .to_vec();
    check(newaliases, &want);
}

/// Sleeps into the next second of the clock: OpenSMTPD notices a changed `db:` file by its
/// modification time in whole seconds, so a change in the second the file was last opened would
/// go unnoticed by it (not by us: see lookup.rs, `Stamp`).
fn next_second() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let left =
        Duration::from_secs(1).saturating_sub(Duration::from_nanos(now.subsec_nanos().into()));
    std::thread::sleep(left + Duration::from_millis(20));
}

/// A `db:` alias map changed under the running daemon, with no `update table`: rebuilt by
/// makemap, moved away and back, overwritten with what libdb refuses, rebuilt again. The
/// transcript has the RCPT replies and the daemon's lines about it: `-T lookup` on the map,
/// libdb's complaints, the failed commands.
fn db_follow(p: &Programs, data: &Path) -> Vec<String> {
    let mut t = Vec::new();
    let db = data.join("aliases.db");
    write(data, "aliases", "abuse: foo\n");
    t.push(p.makemap(data));
    let conf = config(data, &format!("db:{}", db.display()));
    let d = p.start_traced(&conf, &["-T", "lookup"]);
    let start = d.log().len();
    let mut s = session(&d);
    t.push(rcpt(&mut s, "s", "neu"));
    next_second();
    write(data, "aliases", "abuse: foo\nneu: foo\n");
    t.push(p.makemap(data));
    t.push(rcpt(&mut s, "s", "neu"));
    // While the file is missing, every lookup in it fails: 424 at RCPT, mail waits.
    let away = data.join("away.db");
    std::fs::rename(&db, &away).expect("mv");
    t.push(rcpt(&mut s, "s", "neu"));
    t.push(rcpt(&mut s, "s", "abuse"));
    std::fs::rename(&away, &db).expect("mv");
    t.push(rcpt(&mut s, "s", "neu"));
    // A changed file libdb refuses: each lookup says why and answers from the old contents.
    next_second();
    write(data, "aliases.db", "not a map\n");
    t.push(rcpt(&mut s, "s", "neu"));
    next_second();
    write(data, "aliases", "abuse: foo\nthird: foo\n");
    t.push(p.makemap(data));
    t.push(rcpt(&mut s, "s", "neu"));
    t.push(rcpt(&mut s, "s", "third"));
    t.push(format!("s QUIT: {}", s.cmd("QUIT").trim_end()));
    d.wait_log(|l| l.ends_with("smtp disconnected reason=quit"));
    let hex = |w: &str| w.len() == 16 && w.bytes().all(|b| b.is_ascii_hexdigit());
    t.extend(d.log()[start..].iter().filter_map(|l| {
        let l = normalize(l, data);
        let about_map = l.starts_with("lookup: ") && l.contains(" in table db:aliases ");
        if about_map || l.starts_with("BDB") {
            return Some(l);
        }
        let (id, rest) = l.split_once(' ')?;
        (hex(id) && rest.starts_with("smtp failed-command ")).then(|| format!("ID {rest}"))
    }));
    t
}

#[test]
fn a_db_table_follows_its_file_without_update() {
    let want: Vec<String> = [
        "makemap: rc=Some(0) err=\"\"",
        "s RCPT neu: 550 Invalid recipient: <neu@example.org>",
        "makemap: rc=Some(0) err=\"\"",
        "s RCPT neu: 250 2.1.5 Destination address valid: Recipient ok",
        "s RCPT neu: 424 4.2.4 Mailing list expansion problem: <neu@example.org>",
        "s RCPT abuse: 424 4.2.4 Mailing list expansion problem: <abuse@example.org>",
        "s RCPT neu: 250 2.1.5 Destination address valid: Recipient ok",
        "s RCPT neu: 250 2.1.5 Destination address valid: Recipient ok",
        "makemap: rc=Some(0) err=\"\"",
        "s RCPT neu: 550 Invalid recipient: <neu@example.org>",
        "s RCPT third: 250 2.1.5 Destination address valid: Recipient ok",
        "s QUIT: 221 2.0.0 Bye",
        "lookup: lookup \"neu\" as ALIAS in table db:aliases -> none",
        "ID smtp failed-command command=\"RCPT TO:<neu@example.org>\" result=\"550 Invalid recipient: <neu@example.org>\"",
        "lookup: lookup \"neu\" as ALIAS in table db:aliases -> \"foo\"",
        "lookup: lookup \"foo\" as ALIAS in table db:aliases -> none",
        "lookup: lookup \"neu\" as ALIAS in table db:aliases -> error: No such file or directory",
        "ID smtp failed-command command=\"RCPT TO:<neu@example.org>\" result=\"424 4.2.4 Mailing list expansion problem: <neu@example.org>\"",
        "lookup: lookup \"abuse\" as ALIAS in table db:aliases -> error: No such file or directory",
        "ID smtp failed-command command=\"RCPT TO:<abuse@example.org>\" result=\"424 4.2.4 Mailing list expansion problem: <abuse@example.org>\"",
        "lookup: lookup \"neu\" as ALIAS in table db:aliases -> \"foo\"",
        "lookup: lookup \"foo\" as ALIAS in table db:aliases -> none",
        "BDB0004 fop_read_meta: DATA/aliases.db: unexpected file type or format",
        "lookup: lookup \"neu\" as ALIAS in table db:aliases -> \"foo\"",
        "BDB0004 fop_read_meta: DATA/aliases.db: unexpected file type or format",
        "lookup: lookup \"foo\" as ALIAS in table db:aliases -> none",
        "lookup: lookup \"neu\" as ALIAS in table db:aliases -> none",
        "ID smtp failed-command command=\"RCPT TO:<neu@example.org>\" result=\"550 Invalid recipient: <neu@example.org>\"",
        "lookup: lookup \"third\" as ALIAS in table db:aliases -> \"foo\"",
        "lookup: lookup \"foo\" as ALIAS in table db:aliases -> none",
    ]
    .map(String::from)
    .to_vec();
    check(db_follow, &want);
    // Our daemon reads OpenSMTPD's makemap's Berkeley DB files as well as ours.
    if require_tool("/usr/sbin/makemap") {
        let data = data_dir();
        let p = Programs {
            real: false,
            bdb_maps: true,
        };
        assert_eq!(db_follow(&p, data.path()), want, "ours, Berkeley DB maps");
    }
}
