//! `smtpd -n` agrees with OpenSMTPD 6.8.0p2 on every config of `tests/config-corpus`.
//!
//! Each `X.conf` has `X.expected`: what the real OpenSMTPD printed and its exit status. Where we
//! differ on purpose (checks OpenSMTPD leaves to run time), `X.rsmtpd` holds what we print, and
//! the README of the corpus says why. When the real program is installed and we run as root, it is
//! run too, so that the recorded verdicts are re-checked against it.
//!
//! One test per config (a `harness = false` binary on libtest-mimic), so that a failure names its
//! file and `cargo test --test config_corpus -- invalid/listen` runs a few:
//! `rsmtpd/valid/NAME` checks ours, `opensmtpd/valid/NAME` re-checks the recording against the
//! real program (reported ignored, with its reason, where it cannot run; a failure under
//! `RSMTPD_CI=1`).

#[path = "../../../tests/support/skip.rs"]
mod skip;

use libtest_mimic::{Arguments, Completion, Failed, Trial};
use std::sync::Arc;

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
    // Our `-n` adds a `warn:` line for each use of what this build refuses to run (see
    // support::NOT_YET) and for each action whose delivery user does not exist (startup.rs); the
    // corpus checks OpenSMTPD's own lines, and tests/refusals.rs and operational_errors.rs the
    // added ones. Only the real OpenSMTPD's output is compared unfiltered.
    let stderr: String = stderr
        .lines()
        .filter(|l| {
            !(l.starts_with("warn: ")
                && (l.ends_with(" is not supported by rsmtpd yet")
                    || l.ends_with(" or name an existing user")))
        })
        .map(|l| format!("{l}\n"))
        .collect();
    format!("{}exit: {}\n", stderr, out.status.code().unwrap_or(-1))
}

/// A skip that CI does not accept: ignored here, a failure under `RSMTPD_CI=1`.
fn skipped(reason: String) -> Result<Completion, Failed> {
    if skip::in_ci() {
        return Err(format!("SKIPPED under RSMTPD_CI=1: {reason}").into());
    }
    Ok(Completion::ignored_with(reason))
}

fn main() {
    let args = Arguments::from_args();
    let tmp = tempfile::tempdir().expect("tempdir");
    prepare(tmp.path());
    let tmp_path: Arc<PathBuf> = Arc::new(tmp.path().to_path_buf());
    let root = skip::is_root_user();
    let real = root && Path::new(REAL_SMTPD).exists();
    let mut trials = Vec::new();
    for sub in ["valid", "invalid"] {
        let mut files: Vec<PathBuf> = fs::read_dir(tmp.path().join(sub))
            .expect("read_dir")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|x| x == "conf"))
            .collect();
        files.sort();
        let count = files.len();
        trials.push(Trial::test(
            format!("corpus/{sub}_is_complete"),
            move || {
                if count < 150 {
                    return Err(format!("{sub} has only {count} configs").into());
                }
                Ok(())
            },
        ));
        for conf in files {
            let stem = conf
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("")
                .to_string();
            let src = corpus_dir().join(sub);
            let text = fs::read_to_string(&conf).unwrap_or_default();
            // pki files must belong to root, as OpenSMTPD demands: only root can run those.
            let needs_root = text.contains(".pem");
            let expected_path = src.join(format!("{stem}.expected"));
            let ours_path = src.join(format!("{stem}.rsmtpd"));
            {
                let (conf, tmp, expected_path) =
                    (conf.clone(), tmp_path.clone(), expected_path.clone());
                trials.push(Trial::ignorable_test(
                    format!("rsmtpd/{sub}/{stem}"),
                    move || {
                        if needs_root && !root {
                            return skipped("its pki files must belong to root: needs root".into());
                        }
                        let expected = fs::read_to_string(&expected_path)
                            .map_err(|e| format!("{}: {e}", expected_path.display()))?;
                        let want = fs::read_to_string(&ours_path).unwrap_or(expected);
                        let got = run(env!("CARGO_BIN_EXE_smtpd"), &conf, &tmp);
                        if got != want {
                            return Err(format!("--- expected\n{want}--- got\n{got}").into());
                        }
                        Ok(Completion::Completed)
                    },
                ));
            }
            let tmp = tmp_path.clone();
            trials.push(Trial::ignorable_test(
                format!("opensmtpd/{sub}/{stem}"),
                move || {
                    if !real {
                        return skipped(format!(
                            "the re-check against OpenSMTPD needs root and {REAL_SMTPD}"
                        ));
                    }
                    let expected = fs::read_to_string(&expected_path)
                        .map_err(|e| format!("{}: {e}", expected_path.display()))?;
                    let theirs = run(REAL_SMTPD, &conf, &tmp);
                    if theirs != expected {
                        return Err(format!(
                            "the real OpenSMTPD no longer prints the recorded output:\n\
                             --- recorded\n{expected}--- now\n{theirs}"
                        )
                        .into());
                    }
                    Ok(Completion::Completed)
                },
            ));
        }
    }
    let conclusion = libtest_mimic::run(&args, trials);
    drop(tmp);
    conclusion.exit();
}
