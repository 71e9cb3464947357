//! A `~/.forward` that is ignored or refused says why in the log, as OpenSMTPD's does: a file
//! others may write, owned by someone else, or a directory (`warn: smtpd: PATH: unsecure
//! file`), an empty one (`info: forward file is empty`: the user gets the mail), one that does
//! not parse (`info: parse error in forward file`). Each with the RCPT reply it gives.
//! OpenSMTPD 6.8.0p2's lines are the fixture tests/everyday/forward-logs.txt.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use crate::common::refns::{self, Transcript, Which};
use crate::common::*;

const CASES: &[&str] = &["groupw", "foreign", "dir", "empty", "unparsable"];

fn prepare(home: &Path, case: &str, uid: u32) {
    std::fs::create_dir_all(home).expect("home");
    std::os::unix::fs::chown(home, Some(uid), Some(uid)).expect("chown");
    std::fs::set_permissions(home, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let f = home.join(".forward");
    match case {
        "dir" => {
            std::fs::create_dir(&f).expect("mkdir");
            std::os::unix::fs::chown(&f, Some(uid), Some(uid)).expect("chown");
            return;
        }
        "empty" => std::fs::write(&f, "").expect("write"),
        "unparsable" => std::fs::write(&f, "\"unterminated, bob\n").expect("write"),
        _ => std::fs::write(&f, "someone@example.net\n").expect("write"),
    }
    let owner = if case == "foreign" { 0 } else { uid };
    std::os::unix::fs::chown(&f, Some(owner), Some(owner)).expect("chown");
    let mode = if case == "groupw" { 0o664 } else { 0o644 };
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

fn run(which: Which) -> String {
    let uid = 1000;
    let homes = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(homes.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let base = homes.path().to_str().expect("utf-8");
    let users: Vec<String> = CASES
        .iter()
        .map(|c| format!("{c} = \"{uid}:{uid}:{base}/{c}\""))
        .collect();
    for c in CASES {
        prepare(&homes.path().join(c), c, uid);
    }
    let conf = format!(
        "listen on 127.0.0.1 port @PORT@\n\
         table users {{ {} }}\n\
         action \"l\" maildir \"@DIR@/md\" userbase <users>\n\
         match from any for domain \"example.org\" action \"l\"\n",
        users.join(", ")
    );
    let d = refns::start(which, &conf, &[]);
    let mut t = Transcript::default();
    let mut c = Client::connect(d.addr());
    c.reply();
    c.cmd("HELO client");
    c.cmd("MAIL FROM:<bob@example.net>");
    for case in CASES {
        let from = d.log().len();
        let reply = c.cmd(&format!("RCPT TO:<{case}@example.org>"));
        std::thread::sleep(Duration::from_millis(300));
        t.note(&format!("{case}: {}", reply.trim_end()));
        for l in &d.log()[from..] {
            if l.contains("forward") {
                t.note(&format!("  {}", l.replace(base, "HOMES")));
            }
        }
    }
    c.cmd("QUIT");
    t.0
}

#[test]
fn ignored_forward_files_are_logged() {
    if !require(is_root(), "needs root (files of another user)") {
        return;
    }
    for which in refns::available() {
        let got = run(which);
        refns::check(which, "forward-logs.txt", &got);
    }
}
