//! The Debian package (issue 10, item 4; issue 17.3): scripts/deb.sh builds it from the binaries
//! this test run built, and scripts/deb-test.sh installs it into a throwaway root (this system
//! under a copy-on-write overlay in namespaces of its own, Debian's opensmtpd and its users
//! purged there first; the script says why) and uses it as an administrator would: the users,
//! groups, setgid smtpctl, links, spool modes, man pages and unit; `smtpd -n` on the installed
//! config, the daemon started by the unit's own lines, mail from an ordinary user's sendmail in
//! their Maildir, `smtpctl show queue`; sendmail by that user with the daemon down queues offline
//! (exit 75) and the next start delivers it; `dpkg --purge` removes it. A few seconds in all.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn text(out: &std::process::Output) -> String {
    format!(
        "status {}\n--- stdout\n{}--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Builds the package; returns its path.
fn build(dir: &Path) -> PathBuf {
    let bin = Path::new(env!("CARGO_BIN_EXE_smtpd"))
        .parent()
        .expect("bin dir")
        .to_path_buf();
    assert_eq!(
        smtpctl().parent(),
        Some(bin.as_path()),
        "smtpctl beside smtpd"
    );
    assert!(bin.join("smtp").is_file(), "smtp(1) beside smtpd");
    let out = Command::new("bash")
        .arg(repo().join("scripts/deb.sh"))
        .env("RSMTPD_BIN", &bin)
        .env("RSMTPD_DEB_DIR", dir)
        .env("RSMTPD_DEB_COMPRESS", "gzip")
        .output()
        .expect("run scripts/deb.sh");
    assert!(out.status.success(), "scripts/deb.sh: {}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let deb = PathBuf::from(stdout.trim().lines().last().unwrap_or_default());
    assert!(deb.is_file(), "no package: {}", text(&out));
    deb
}

fn field(deb: &Path, name: &str) -> String {
    let out = Command::new("dpkg-deb")
        .arg("-f")
        .arg(deb)
        .arg(name)
        .output()
        .expect("dpkg-deb -f");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn the_package_installs_like_debians_opensmtpd_and_serves_mail() {
    if !require_root() {
        return;
    }
    for tool in [
        "dpkg-deb", "dpkg", "unshare", "chroot", "strip", "objdump", "python3",
    ] {
        if !require_tool(tool) {
            return;
        }
    }
    let overlay = std::fs::read_to_string("/proc/filesystems")
        .is_ok_and(|f| f.lines().any(|l| l.ends_with("\toverlay")));
    if !require(overlay, "the kernel has no overlayfs") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let deb = build(dir.path());

    // What the archive declares, as Debian's opensmtpd 6.8.0p2-4 does.
    assert_eq!(field(&deb, "Package"), "rsmtpd");
    assert_eq!(field(&deb, "Provides"), "mail-transport-agent");
    assert_eq!(
        field(&deb, "Conflicts"),
        "mail-transport-agent, sendmail-base"
    );
    assert_eq!(field(&deb, "Replaces"), "mail-transport-agent");
    assert!(field(&deb, "Depends").contains("adduser"));
    let listing = Command::new("dpkg-deb")
        .arg("-c")
        .arg(&deb)
        .output()
        .expect("dpkg-deb -c");
    let listing = String::from_utf8_lossy(&listing.stdout);
    for line in listing.lines() {
        assert!(line.contains(" root/root "), "not root's: {line}");
    }
    for path in [
        "./usr/sbin/smtpd",
        "./usr/sbin/smtpctl",
        "./usr/sbin/sendmail -> smtpctl",
        "./usr/sbin/newaliases -> smtpctl",
        "./usr/sbin/makemap -> smtpctl",
        "./usr/bin/mailq -> ../sbin/smtpctl",
        "./etc/smtpd.conf",
        "./lib/systemd/system/rsmtpd.service",
        "./usr/bin/smtp",
        "./usr/share/man/man8/smtpd.8.gz",
        "./usr/share/man/man5/smtpd.conf.5.gz",
        "./usr/share/man/man5/aliases.5.gz",
        "./usr/share/man/man5/forward.5.gz",
        "./usr/share/man/man5/table.5.gz",
        "./usr/share/man/man1/smtp.1.gz",
    ] {
        assert!(
            listing.lines().any(|l| l.ends_with(path)),
            "{path} not in the package:\n{listing}"
        );
    }

    let t0 = std::time::Instant::now();
    let out = Command::new("bash")
        .arg(repo().join("scripts/deb-test.sh"))
        .arg(&deb)
        .output()
        .expect("run scripts/deb-test.sh");
    let report = text(&out);
    eprintln!("{report}");
    assert!(
        out.status.success() && report.contains("deb-test: all passed"),
        "scripts/deb-test.sh failed"
    );
    eprintln!("installed and used in {:?}", t0.elapsed());
}
