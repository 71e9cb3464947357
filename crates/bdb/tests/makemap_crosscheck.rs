//! Big maps written by the real OpenSMTPD makemap, read back entry by entry. Reported SKIPPED
//! where /usr/sbin/makemap is not installed; CI installs it (and fails if it is missing).

#[path = "../../../tests/support/skip.rs"]
mod skip;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use rsmtpd_bdb::{read, Kind};

const MAKEMAP: &str = "/usr/sbin/makemap";

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("rsmtpd-bdb-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn have_makemap() -> bool {
    skip::require_tool(MAKEMAP)
}

/// Runs makemap on `source` and returns what the reader finds in the result.
fn makemap(dir: &Path, args: &[&str], source: &str) -> rsmtpd_bdb::Database {
    let src = dir.join("source");
    let out = dir.join("out.db");
    std::fs::write(&src, source).unwrap_or_else(|e| panic!("{e}"));
    let status = Command::new(MAKEMAP)
        .args(args)
        .arg("-o")
        .arg(&out)
        .arg(&src)
        .status()
        .unwrap_or_else(|e| panic!("{MAKEMAP}: {e}"));
    assert!(status.success(), "makemap {args:?} failed");
    let data = std::fs::read(&out).unwrap_or_else(|e| panic!("{e}"));
    read(&data).unwrap_or_else(|e| panic!("makemap {args:?}: {e}"))
}

fn z(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

/// An aliases source of `n` entries, and what makemap stores for it: keys lower-cased, both
/// sides NUL-terminated. Some keys are upper-case or UTF-8, every 997th value is a list long
/// enough for overflow pages.
fn aliases(n: usize) -> (String, BTreeMap<Vec<u8>, Vec<u8>>) {
    let mut text = String::from("# generated\n\n");
    let mut want = BTreeMap::new();
    for i in 0..n {
        let key = match i % 3 {
            0 => format!("user{i}"),
            1 => format!("User.Name{i}"),
            _ => format!("prénom{i}"),
        };
        let value = if i % 997 == 0 {
            (0..400)
                .map(|j| format!("member{j}@example.org"))
                .collect::<Vec<_>>()
                .join(", ")
        } else {
            format!("u{i}@example.org, /var/mail/u{i}")
        };
        text.push_str(&format!("{key}:\t{value}\n"));
        want.insert(z(&key.to_ascii_lowercase()), z(&value));
    }
    (text, want)
}

fn check(db: &rsmtpd_bdb::Database, want: &BTreeMap<Vec<u8>, Vec<u8>>) {
    assert_eq!(db.entries.len(), want.len());
    let got: BTreeMap<_, _> = db.entries.iter().cloned().collect();
    assert_eq!(got.len(), want.len(), "duplicate keys read");
    for (k, v) in want {
        assert_eq!(got.get(k), Some(v), "key {:?}", String::from_utf8_lossy(k));
    }
}

#[test]
fn fifty_thousand_aliases_hash() {
    if !have_makemap() {
        return;
    }
    let dir = TempDir::new("hash");
    let (text, want) = aliases(50_000);
    let db = makemap(&dir.0, &["-t", "aliases"], &text);
    assert_eq!(db.kind, Kind::Hash);
    check(&db, &want);
}

#[test]
fn twenty_thousand_aliases_btree() {
    if !have_makemap() {
        return;
    }
    let dir = TempDir::new("btree");
    let (text, want) = aliases(20_000);
    let db = makemap(&dir.0, &["-d", "btree", "-t", "aliases"], &text);
    assert_eq!(db.kind, Kind::Btree);
    check(&db, &want);
    assert!(db.entries.windows(2).all(|w| w[0].0 < w[1].0));
}

#[test]
fn empty_and_set_maps() {
    if !have_makemap() {
        return;
    }
    let dir = TempDir::new("small");
    assert!(makemap(&dir.0, &[], "").entries.is_empty());
    assert!(makemap(&dir.0, &["-d", "btree"], "").entries.is_empty());
    let set = makemap(&dir.0, &["-t", "set"], "Example.ORG\nexample.net\n");
    let want: BTreeMap<_, _> = [
        (z("example.org"), z("<set>")),
        (z("example.net"), z("<set>")),
    ]
    .into_iter()
    .collect();
    check(&set, &want);
}
