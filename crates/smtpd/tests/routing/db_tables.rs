//! `db:` tables in Berkeley DB format, as OpenSMTPD's makemap writes them, through the real
//! daemon: an alias found in one expands at RCPT and its members get the mail.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::common::*;
use rsmtpd::routing::lookup::{HostInfo, Lookup, Tables, UserInfo, Users};
use rsmtpd_config::{parse_file, ParseOptions, StaticEnvironment};

const MAKEMAP: &str = "/usr/sbin/makemap";

fn count_files(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |r| r.flatten().count())
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../bdb/tests/fixtures")
        .join(name)
}

struct NoUsers;

impl Users for NoUsers {
    fn getpwnam(&self, _: &str) -> Lookup<UserInfo> {
        Lookup::NotFound
    }
}

/// Lookups answer as table_db.c does on the same files: keys found case-insensitively without
/// their NUL, values as C strings, a set's values its `<set>` marker.
#[test]
fn lookups_in_makemap_files() {
    let aliases = fixture("makemap-aliases.db");
    let set = fixture("makemap-set.db");
    let text = format!(
        "table a db:{}\ntable s db:{}\naction l mbox alias <a>\n\
         match from any for domain <s> action l\n",
        aliases.display(),
        set.display()
    );
    let mut env = StaticEnvironment::typical().with_file("/etc/smtpd.conf", &text);
    for p in [&aliases, &set] {
        let data = std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        env.files.push((p.display().to_string(), data));
    }
    let out = parse_file("/etc/smtpd.conf", &env, &ParseOptions::default());
    let Some(conf) = out.config else {
        panic!("config refused: {:?}", out.messages);
    };
    let host = HostInfo {
        hostname: "mx.example.org".into(),
        local_addrs: vec![],
    };
    let t = Tables::new(&conf, &host, Box::new(NoUsers));
    let found = |v: &str| Lookup::Found(v.to_string());
    assert_eq!(t.alias("a", "ROOT"), found("jules, bob"));
    assert_eq!(t.alias("a", "tabbed"), found("bob"));
    assert_eq!(
        t.alias("a", "érik"),
        found("erik@example.org, /var/mail/erik")
    );
    assert_eq!(t.alias("a", "nobody"), Lookup::NotFound);
    assert_eq!(t.match_domain("s", "Example.NET"), Ok(true));
    assert_eq!(t.match_domain("s", "example.com"), Ok(false));
    assert_eq!(t.alias("s", "example.org"), found("<set>"));
}

/// A daemon whose `aliases` table is `db:DB`, delivering to Maildirs of the userbase's users.
fn daemon(db: &Path, users: &[&str], uid: u32) -> Daemon {
    let users: Vec<String> = users
        .iter()
        .map(|u| format!("{u} = \"{uid}:{uid}:@DIR@/home\""))
        .collect();
    let conf = format!(
        "table aliases db:{}\n\
         table users {{ {} }}\n\
         listen on 127.0.0.1 port @PORT@\n\
         action \"local_mail\" maildir \"@DIR@/vmail/%{{user.username}}\" userbase <users> alias <aliases>\n\
         match from any for domain \"example.org\" action \"local_mail\"\n",
        db.display(),
        users.join(", ")
    );
    let d = Daemon::start(&conf, &["-T", "expand"]);
    user_dir(&d, "vmail", uid);
    user_dir(&d, "home", uid);
    d
}

fn send(d: &Daemon, rcpts: &[&str]) -> Vec<String> {
    let mut cmds = vec!["HELO test".to_string(), "MAIL FROM:<>".to_string()];
    cmds.extend(rcpts.iter().map(|r| format!("RCPT TO:<{r}>")));
    cmds.push("DATA".into());
    cmds.push("Subject: db aliases\r\n\r\nhello\r\n.".into());
    cmds.push("QUIT".into());
    let cmds: Vec<&str> = cmds.iter().map(String::as_str).collect();
    converse("127.0.0.1", d.addr(), &cmds)
}

fn wait_delivered(d: &Daemon, n: usize) {
    d.wait_log_for(Duration::from_secs(20), |_| {
        d.log()
            .iter()
            .filter(|l| l.contains("result=Ok stat=Delivered"))
            .count()
            >= n
    });
}

#[test]
fn makemap_alias_expands_at_rcpt_and_delivers_to_its_members() {
    // Written by OpenSMTPD's makemap from "Root: jules, bob\npostmaster: root\n..."
    // (crates/bdb/tests/fixtures/generate.sh).
    let db = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bdb/tests/fixtures/makemap-aliases.db");
    let uid = delivery_uid(2000);
    let d = daemon(&db, &["jules", "bob"], uid);
    let r = send(&d, &["postmaster@example.org", "nobody@example.org"]);
    // The greeting, HELO, MAIL, the two RCPTs, DATA, the message.
    assert_eq!(r[3].get(..3), Some("250"), "{r:?}");
    assert!(r[4].starts_with("550 Invalid recipient"), "{r:?}");
    assert!(r[6].starts_with("250 2.0.0 "), "{r:?}");
    let log = d.log();
    for want in [
        "expand: lka_expand: username: postmaster [depth=1, sameuser=0]",
        "expand: lka_expand: username: root [depth=2, sameuser=0]",
        "expand: lka_expand: username: jules [depth=3, sameuser=0]",
        "expand: lka_expand: username: bob [depth=3, sameuser=0]",
    ] {
        assert!(log.iter().any(|l| l == want), "no {want:?} in {log:#?}");
    }
    wait_delivered(&d, 2);
    for user in ["jules", "bob"] {
        let new = d.dir.path().join(format!("vmail/{user}/new"));
        assert_eq!(count_files(&new), 1, "{}", new.display());
    }
}

/// A map built here by the real makemap: a key looked up with its case folded, and an alias list
/// long enough to be stored on overflow pages.
#[test]
fn fresh_makemap_map_with_a_long_alias_list() {
    if !require_tool(MAKEMAP) {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let members: Vec<String> = (0..300).map(|i| format!("member{i}")).collect();
    let mut source = format!("Team: {}\n", members.join(", "));
    for i in 0..2000 {
        source.push_str(&format!("other{i}: member{}\n", i % 300));
    }
    let src = tmp.path().join("aliases");
    std::fs::write(&src, source).expect("write source");
    let status = Command::new(MAKEMAP)
        .args(["-t", "aliases"])
        .arg(&src)
        .status()
        .expect("run makemap");
    assert!(status.success());
    let db = tmp.path().join("aliases.db");
    let uid = delivery_uid(2000);
    let names: Vec<&str> = members.iter().map(String::as_str).collect();
    let d = daemon(&db, &names, uid);
    let r = send(&d, &["TEAM@example.org", "other1999@example.org"]);
    assert_eq!(r[3].get(..3), Some("250"), "{r:?}");
    assert_eq!(r[4].get(..3), Some("250"), "{r:?}");
    assert!(r[6].starts_with("250 2.0.0 "), "{r:?}");
    // Each RCPT is expanded on its own: member199, reached through team and through other1999,
    // gets two copies.
    wait_delivered(&d, 301);
    for (m, n) in [("member0", 1), ("member199", 2), ("member299", 1)] {
        assert_eq!(
            count_files(&d.dir.path().join(format!("vmail/{m}/new"))),
            n,
            "{m}"
        );
    }
}
