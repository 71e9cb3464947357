//! The real OpenSMTPD 6.8.0p2 in a namespace of the test (`real-smtpd-ns.sh`: its own spool and
//! control socket, so that several can run at once and none sees another's queue), and the
//! smtpctl commands a test runs against either daemon, recorded as a transcript that compares
//! with OpenSMTPD's, kept as a fixture beside the test.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use super::{ctl, require, require_real, Daemon};

/// Which daemon a test runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Which {
    Ours,
    Real,
}

pub fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/common/real-smtpd-ns.sh")
}

/// Starts ours, or the real one in its namespace, on `config` (see [`Daemon::start`]).
pub fn start(which: Which, config: &str, args: &[&str]) -> Daemon {
    match which {
        Which::Ours => Daemon::start(config, args),
        Which::Real => Daemon::launch(
            &[],
            script().to_str().expect("utf-8 path"),
            config,
            args,
            None,
        ),
    }
}

/// The daemons this machine can run: ours, and the real one when installed and we are root.
pub fn available() -> Vec<Which> {
    if require_real("the OpenSMTPD half (ours is checked against its fixture)")
        && require(
            Path::new("/usr/bin/nsenter").exists(),
            "the OpenSMTPD half: needs nsenter (util-linux)",
        )
    {
        vec![Which::Real, Which::Ours]
    } else {
        vec![Which::Ours]
    }
}

/// `smtpctl ARGS` (as root) against the daemon: ours through `SMTPD_SOCKET`, the real one's
/// inside its namespace.
pub fn smtpctl(which: Which, d: &Daemon, args: &[&str], stdin: &str) -> Output {
    match which {
        Which::Ours => ctl(d, "smtpctl", args, stdin, None),
        Which::Real => {
            let mut child = Command::new("nsenter")
                .args(["-t", &d.pid().to_string(), "-m", "/usr/sbin/smtpctl"])
                .args(args)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("nsenter smtpctl");
            if let Some(mut i) = child.stdin.take() {
                use std::io::Write;
                let _ = i.write_all(stdin.as_bytes());
            }
            child.wait_with_output().expect("smtpctl output")
        }
    }
}

/// What a sequence of smtpctl commands printed, as text: `$ smtpctl ARGS`, its stdout and
/// stderr lines, `exit N`.
#[derive(Default)]
pub struct Transcript(pub String);

impl Transcript {
    pub fn ctl(&mut self, which: Which, d: &Daemon, args: &[&str]) -> Output {
        let out = smtpctl(which, d, args, "");
        self.0.push_str(&format!("$ smtpctl {}\n", args.join(" ")));
        self.0.push_str(&String::from_utf8_lossy(&out.stdout));
        self.0.push_str(&String::from_utf8_lossy(&out.stderr));
        self.0
            .push_str(&format!("exit {}\n", out.status.code().unwrap_or(-1)));
        out
    }

    pub fn note(&mut self, text: &str) {
        self.0.push_str(text);
        self.0.push('\n');
    }
}

/// The fixture `tests/everyday/NAME` of the repository.
pub fn fixture_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/everyday")
        .join(name)
}

/// Compares a transcript with the fixture OpenSMTPD's run recorded: the real one's run
/// rewrites it when `RECORD=1`, and otherwise must agree with it (OpenSMTPD did not change);
/// ours must agree with it.
pub fn check(which: Which, name: &str, got: &str) {
    let path = fixture_path(name);
    if which == Which::Real && std::env::var_os("RECORD").is_some() {
        std::fs::write(&path, got).expect("write fixture");
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (RECORD=1 records it)", path.display()));
    assert_eq!(
        got,
        want,
        "{which:?} differs from {} (OpenSMTPD's)",
        path.display()
    );
}
