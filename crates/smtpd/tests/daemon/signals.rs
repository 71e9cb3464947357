//! Signals other than SIGTERM and SIGINT. OpenSMTPD 6.8.0p2 ends on SIGHUP with `smtpd: smtpd:
//! unexpected signal` and status 1 (its outcome is the fixture tests/everyday/sighup.txt, checked
//! live when it is installed); ours reloads its configuration instead, on purpose (reload.rs,
//! docs/compatibility.md). SIGUSR1 and SIGUSR2 end ours with that line: never silently.

use std::time::Duration;

use crate::common::refns::{self, Transcript, Which};
use nix::sys::signal::Signal;

const CONFIG: &str = "listen on 127.0.0.1 port @PORT@\n\
     action \"l\" mbox\n\
     match for local action \"l\"\n";

fn hup(which: Which, sig: Signal) -> String {
    let mut d = refns::start(which, CONFIG, &[]);
    let mut t = Transcript::default();
    let status = d.signal(sig);
    std::thread::sleep(Duration::from_millis(200));
    t.note(&format!("{sig}: exit status {status:?}"));
    let log = d.log();
    let tail: Vec<&String> = log
        .iter()
        .filter(|l| !l.starts_with("debug: ") && !l.starts_with("setup_"))
        // OpenSMTPD's process setup, which we do not have.
        .filter(|l| *l != "smtpd: setup done")
        .filter(|l| !l.contains(" -> ") && !l.contains(" agent exiting"))
        // OpenSMTPD's queue process races its own spool set-up: when the signal comes early its
        // purge task may not find purge/ yet (seen under load); not about the signal.
        .filter(|l| !l.starts_with("warn: purge_task: opendir"))
        .skip_while(|l| !l.contains("starting"))
        .skip(1)
        .collect();
    t.note(&format!("logged after start: {tail:?}"));
    if which == Which::Ours {
        assert!(
            !d.dir.path().join("smtpd.sock").exists(),
            "the control socket is left behind"
        );
    }
    t.0
}

/// 6.8's outcome stays recorded; ours differs on purpose: it reloads and goes on serving.
#[test]
fn sighup_ends_opensmtpd_but_reloads_ours() {
    for which in refns::available() {
        if which == Which::Real {
            let got = hup(which, Signal::SIGHUP);
            refns::check(which, "sighup.txt", &got);
            continue;
        }
        let mut d = refns::start(which, CONFIG, &[]);
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(d.pid() as i32), Signal::SIGHUP);
        d.wait_log(|l| l.starts_with("info: smtpd: configuration reloaded from "));
        assert!(d.exit_status().is_none(), "ended on SIGHUP: {:?}", d.log());
        assert!(!d.log().iter().any(|l| l.contains("unexpected signal")));
        assert_eq!(d.stop(), Some(0));
    }
}

/// SIGUSR1 and SIGUSR2 end OpenSMTPD without a word; ours says why, as for SIGHUP.
#[test]
fn sigusr1_is_not_a_silent_death() {
    let got = hup(Which::Ours, Signal::SIGUSR1);
    assert_eq!(
        got,
        "SIGUSR1: exit status Some(1)\n\
         logged after start: [\"smtpd: smtpd: unexpected signal\"]\n"
    );
}

/// The unit restarts a daemon that failed (its reload is tested in reload.rs).
#[test]
fn the_systemd_unit_restarts_on_failure() {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../etc/systemd/rsmtpd.service"
    ))
    .expect("unit");
    assert!(unit.lines().any(|l| l == "Restart=on-failure"), "{unit}");
}
