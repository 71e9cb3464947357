//! What this build does not implement is refused at start, never pretended (issue 10): `smtpd`
//! exits 1 with one line per use naming file, line and feature, before it binds anything;
//! `smtpd -n` keeps OpenSMTPD's verdict and lines (checked against the real one when it is
//! installed) and then prints the same lines as warnings.
//!
//! When a feature lands, its case here changes to prove the feature works (or moves to that
//! feature's own test) in the same change that removes it from `support::NOT_YET`.

use std::path::Path;
use std::process::{Command, Output};

const REAL_SMTPD: &str = "/usr/sbin/smtpd";

fn run(bin: &str, dir: &Path, args: &[&str]) -> Output {
    Command::new(bin)
        .args(args)
        .current_dir(dir)
        .env("SMTPD_SPOOL", dir.join("spool"))
        .env("SMTPD_SOCKET", dir.join("smtpd.sock"))
        .output()
        .expect("run smtpd")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A key and self-signed certificate, so that OpenSMTPD's `-n` (which loads them) accepts the
/// pki lines.
fn write_pki(dir: &Path) {
    let st = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=mx.test",
            "-keyout",
            "mx.key",
            "-out",
            "mx.crt",
        ])
        .current_dir(dir)
        .output()
        .expect("openssl");
    assert!(st.status.success(), "openssl: {}", stderr(&st));
}

const PKI: &str = "pki mx.test cert \"mx.crt\"\npki mx.test key \"mx.key\"\n";

/// What used to be refused, in one config: relaying with `srs` and an outbound `filter`,
/// `proxy-v2` and `hostnames` listeners, an external table backend. Nothing of it is refused
/// any more (NOT_YET is empty): `-n` says only what OpenSMTPD's says. The lines a refusal would
/// print (file and line of each use, an include's by its own name) are checked by the unit
/// test `support::tests::refusals_name_file_and_line`.
const ONCE_REFUSED: &str = "srs key \"secret\"\ntable v sqlite:/etc/mail/sqlite.conf\n\
    filter f phase connect match rdns junk\n\
    listen on 127.0.0.1 port 2525 proxy-v2 hostnames { 127.0.0.1 = mx.test }\n\
    action \"out\" relay host smtps://192.0.2.1:465 tls srs filter f\n\
    match from any for any action \"out\"\n";

#[test]
fn what_was_refused_is_checked_as_opensmtpd_checks_it() {
    let ours = env!("CARGO_BIN_EXE_smtpd");
    let real = Path::new(REAL_SMTPD).exists() && nix::unistd::geteuid().is_root();
    if !real {
        println!(
            "SKIPPED (part): OpenSMTPD's -n not compared: {} missing or not root",
            REAL_SMTPD
        );
    }
    let dir = tempfile::tempdir().expect("tempdir");
    write_pki(dir.path());
    std::fs::create_dir(dir.path().join("spool")).expect("spool");
    std::fs::write(dir.path().join("sqlite.conf"), "").expect("write");
    let text = format!("{}{}", PKI, ONCE_REFUSED).replace(
        "/etc/mail/sqlite.conf",
        &dir.path().join("sqlite.conf").display().to_string(),
    );
    std::fs::write(dir.path().join("c.conf"), &text).expect("write");
    let o = run(ours, dir.path(), &["-n", "-f", "c.conf"]);
    assert_eq!(
        (stderr(&o), o.status.code()),
        ("configuration OK\n".to_string(), Some(0))
    );
    if real {
        let r = run(REAL_SMTPD, dir.path(), &["-n", "-f", "c.conf"]);
        assert_eq!(
            (stderr(&r), r.status.code()),
            ("configuration OK\n".to_string(), Some(0)),
            "OpenSMTPD's -n"
        );
    }
}

#[test]
fn a_config_using_only_what_is_implemented_starts() {
    // The sample config, the quick start's: nothing refused.
    let ours = env!("CARGO_BIN_EXE_smtpd");
    let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/../../etc/smtpd.conf.sample");
    let dir = tempfile::tempdir().expect("tempdir");
    // As scripts/run.sh fills it in.
    let text = std::fs::read_to_string(sample)
        .expect("sample")
        .replace("@RUN@", &dir.path().display().to_string())
        .replace("@UID@", "1000")
        .replace("@GID@", "1000");
    std::fs::write(dir.path().join("smtpd.conf"), text).expect("write");
    let o = run(ours, dir.path(), &["-n", "-f", "smtpd.conf"]);
    assert_eq!(
        (stderr(&o), o.status.code()),
        ("configuration OK\n".into(), Some(0))
    );
}

/// `proc`, `filter ... proc` and `filter ... proc-exec` are implemented (tests/filter_proc.rs):
/// a config using them is no longer refused, and `-n` prints no warning for them.
#[test]
fn proc_filters_are_not_refused() {
    let ours = env!("CARGO_BIN_EXE_smtpd");
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("c.conf"),
        "proc \"p\" \"/bin/cat\"\nfilter \"f\" proc \"p\"\n\
         filter \"spam\" proc-exec \"/bin/cat\"\nfilter \"both\" chain { \"f\", \"spam\" }\n\
         listen on 127.0.0.1 port 2525 filter \"both\"\naction \"l\" maildir\n\
         match from any for local action \"l\"\n",
    )
    .expect("write");
    let o = run(ours, dir.path(), &["-n", "-f", "c.conf"]);
    assert_eq!(
        (stderr(&o), o.status.code()),
        ("configuration OK\n".into(), Some(0))
    );
}
