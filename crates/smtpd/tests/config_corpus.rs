//! `smtpd -n` agrees with OpenSMTPD 6.8.0p2 on every config of `tests/config-corpus`.
//!
//! Each `X.conf` has `X.expected`: what the real OpenSMTPD printed and its exit status. Where we
//! differ on purpose (checks OpenSMTPD leaves to run time), `X.rsmtpd` holds what we print, and
//! the README of the corpus says why. When the real program is installed and we run as root, it is
//! run too, so that the recorded verdicts are re-checked against it.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const REAL_SMTPD: &str = "/usr/sbin/smtpd";

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/config-corpus")
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("mkdir");
    for e in fs::read_dir(from).expect("read_dir") {
        let e = e.expect("entry");
        let dst = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_tree(&e.path(), &dst);
        } else {
            fs::copy(e.path(), &dst).expect("copy");
        }
    }
}

/// The corpus laid out as its README says: @DIR@ replaced, keys with their permissions.
fn prepare(tmp: &Path) {
    for sub in ["valid", "invalid", "data"] {
        copy_tree(&corpus_dir().join(sub), &tmp.join(sub));
    }
    let dir = tmp.to_str().expect("utf-8 temp dir");
    for sub in ["valid", "invalid", "data"] {
        for e in fs::read_dir(tmp.join(sub)).expect("read_dir") {
            let p = e.expect("entry").path();
            if p.extension().is_some_and(|x| x == "conf") {
                let text = fs::read_to_string(&p).expect("read conf");
                fs::write(&p, text.replace("@DIR@", dir)).expect("write conf");
            }
        }
    }
    use std::os::unix::fs::PermissionsExt;
    for e in fs::read_dir(tmp.join("data")).expect("read_dir") {
        let p = e.expect("entry").path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.contains("key") && name.ends_with(".pem") {
            let mode = if name == "insecure-key.pem" {
                0o644
            } else {
                0o600
            };
            fs::set_permissions(&p, fs::Permissions::from_mode(mode)).expect("chmod");
        }
    }
}

fn run(bin: &str, conf: &Path, tmp: &Path) -> String {
    let out = Command::new(bin)
        .arg("-n")
        .arg("-f")
        .arg(conf.file_name().expect("name"))
        .current_dir(conf.parent().expect("dir"))
        .stdin(Stdio::null())
        .output()
        .expect("run smtpd");
    let stderr = String::from_utf8_lossy(&out.stderr).replace(tmp.to_str().unwrap_or(""), "@DIR@");
    format!("{}exit: {}\n", stderr, out.status.code().unwrap_or(-1))
}

#[test]
fn corpus_verdicts_match_opensmtpd() {
    let tmp = tempfile::tempdir().expect("tempdir");
    prepare(tmp.path());
    let root = nix::unistd::geteuid().is_root();
    let real = root && Path::new(REAL_SMTPD).exists();
    let ours = env!("CARGO_BIN_EXE_smtpd");
    let (mut passed, mut failed, mut skipped, mut real_checked) = (0, Vec::new(), 0, 0);
    for sub in ["valid", "invalid"] {
        let mut files: Vec<PathBuf> = fs::read_dir(tmp.path().join(sub))
            .expect("read_dir")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|x| x == "conf"))
            .collect();
        files.sort();
        assert!(
            files.len() >= 150,
            "{} has only {} configs",
            sub,
            files.len()
        );
        for conf in files {
            let stem = conf
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("")
                .to_string();
            let src = corpus_dir().join(sub);
            let text = fs::read_to_string(&conf).unwrap_or_default();
            // pki files must belong to root, as OpenSMTPD demands: only root can run those.
            if !root && text.contains(".pem") {
                skipped += 1;
                continue;
            }
            let expected = fs::read_to_string(src.join(format!("{}.expected", stem)))
                .expect("every config has its .expected");
            let ours_expected = fs::read_to_string(src.join(format!("{}.rsmtpd", stem)))
                .unwrap_or_else(|_| expected.clone());
            let got = run(ours, &conf, tmp.path());
            if got == ours_expected {
                passed += 1;
            } else {
                failed.push(format!(
                    "{}/{}:\n--- expected\n{}--- got\n{}",
                    sub, stem, ours_expected, got
                ));
            }
            if real {
                let theirs = run(REAL_SMTPD, &conf, tmp.path());
                real_checked += 1;
                if theirs != expected {
                    failed.push(format!(
                        "{}/{}: the real OpenSMTPD no longer prints the recorded output:\n{}",
                        sub, stem, theirs
                    ));
                }
            }
        }
    }
    eprintln!(
        "config corpus: {} agree, {} differ, {} skipped (not root), {} re-checked against {}",
        passed,
        failed.len(),
        skipped,
        real_checked,
        REAL_SMTPD
    );
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}
