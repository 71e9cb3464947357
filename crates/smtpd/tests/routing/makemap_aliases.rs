//! `makemap -t aliases` and `newaliases` refuse an alias file with a line OpenSMTPD's makemap
//! refuses (`makemap: FILE:N: invalid entry`, exit 1, no map written), as make_aliases() does:
//! each comma-separated recipient must be a valid alias node. OpenSMTPD 6.8.0p2's answers are
//! the fixture tests/everyday/makemap-aliases.txt, re-checked with its makemap when installed.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::refns::{self, Which};
use crate::common::*;

const CASES: &[(&str, &str)] = &[
    (
        "valid",
        "root: alice, bob@example.org, |/bin/true, /var/mail/x, :include:/etc/x\n",
    ),
    ("no colon", "root: alice\nbad line without colon\n"),
    ("empty recipient", "root: alice,,bob\n"),
    ("no value", "root:\n"),
    ("relative file", "root: :include:etc/x\n"),
    (
        "error code",
        "root: error:550 gone\nother: error:250 fine\n",
    ),
];

fn makemap_bin(which: Which) -> PathBuf {
    match which {
        Which::Real => PathBuf::from("/usr/sbin/makemap"),
        Which::Ours => smtpctl(),
    }
}

/// Runs `makemap -t aliases FILE` (ours: smtpctl under the name makemap) in `dir`.
fn makemap(which: Which, dir: &Path, file: &str) -> String {
    makemap_args(which, dir, &["-t", "aliases", file], file)
}

fn makemap_args(which: Which, dir: &Path, args: &[&str], file: &str) -> String {
    let bin = makemap_bin(which);
    let exe = if which == Which::Ours {
        let link = dir.join("makemap");
        if !link.exists() {
            std::os::unix::fs::symlink(&bin, &link).expect("symlink");
        }
        link
    } else {
        bin
    };
    let out = Command::new(&exe)
        .args(args)
        .current_dir(dir)
        .output()
        .expect("makemap");
    format!(
        "{}{}exit {}, map written {}\n",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr).replace(&format!("{}: ", exe.display()), "makemap: "),
        out.status.code().unwrap_or(-1),
        dir.join(format!("{file}.db")).exists()
    )
}

fn run(which: Which) -> String {
    let mut t = String::new();
    for (i, (name, text)) in CASES.iter().enumerate() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = format!("aliases{i}");
        std::fs::write(dir.path().join(&file), text).expect("write");
        t.push_str(&format!("# {name}\n"));
        t.push_str(&makemap(which, dir.path(), &file));
    }
    let dir = tempfile::tempdir().expect("tempdir");
    t.push_str("# dump of a missing map\n");
    t.push_str(&makemap_args(
        which,
        dir.path(),
        &["-U", "missing.db"],
        "missing.db",
    ));
    t
}

#[test]
fn invalid_alias_lines_are_refused() {
    let mut which = vec![Which::Ours];
    if require(
        Path::new("/usr/sbin/makemap").exists() && is_root(),
        "the OpenSMTPD half: needs root and /usr/sbin/makemap; checked against the fixture only",
    ) {
        which.insert(0, Which::Real);
    }
    for w in which {
        refns::check(w, "makemap-aliases.txt", &run(w));
    }
}

/// newaliases reads the same file through the configuration's `table aliases` and refuses it
/// the same way, before telling any daemon to reload it.
#[test]
fn newaliases_refuses_the_same_line() {
    if !require(is_root(), "newaliases needs root") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let aliases = dir.path().join("aliases");
    std::fs::write(&aliases, "root: alice\nbad line without colon\n").expect("write");
    let conf = dir.path().join("smtpd.conf");
    std::fs::write(&conf, format!("table aliases file:{}\n", aliases.display())).expect("write");
    let link = dir.path().join("newaliases");
    std::os::unix::fs::symlink(smtpctl(), &link).expect("symlink");
    let out = Command::new(&link)
        .arg("-f")
        .arg(&conf)
        .env("SMTPD_SOCKET", dir.path().join("no.sock"))
        .output()
        .expect("newaliases");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!("newaliases: {}:2: invalid entry\n", aliases.display())
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(!dir.path().join("aliases.db").exists());
}
