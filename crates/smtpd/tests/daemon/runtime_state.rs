//! What the command line sets at start and smtpctl at run time is one state, and reads back
//! the same through smtpctl, as in OpenSMTPD 6.8.0p2.
//!
//! `smtpd -P mda|mta|smtp` and `smtpctl pause|resume`. Started paused, `show status`
//! says so, `pause` again fails, `resume` succeeds and what waited goes through (mail queued
//! while deliveries were paused is delivered; a client that connected while smtp was paused
//! gets its banner). The transcripts are OpenSMTPD 6.8.0p2's (tests/everyday/pause-*.txt),
//! re-checked live against it when it can run here.

use std::time::{Duration, Instant};

use crate::common::refns::{self, Transcript, Which};
use crate::common::*;

fn config(uid: u32) -> String {
    format!(
        "listen on 127.0.0.1 port @PORT@\n\
         table users {{ foo = \"{uid}:{uid}:@DIR@\" }}\n\
         action \"l\" maildir \"@DIR@/md\" userbase <users>\n\
         match from any for domain \"example.org\" action \"l\"\n"
    )
}

fn send(c: &mut Client) {
    for (cmd, want) in [
        ("HELO client", "250 "),
        ("MAIL FROM:<bob@example.net>", "250 "),
        ("RCPT TO:<foo@example.org>", "250 "),
        ("DATA", "354 "),
        ("Subject: paused\r\n\r\nhi\r\n.", "250 "),
        ("QUIT", "221 "),
    ] {
        let r = c.cmd(cmd);
        assert!(r.starts_with(want), "{cmd}: {r}");
    }
}

fn delivered(d: &Daemon) -> usize {
    std::fs::read_dir(d.dir.path().join("md/new"))
        .map(|r| r.count())
        .unwrap_or(0)
}

fn wait_delivered(d: &Daemon, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while delivered(d) < n {
        assert!(
            Instant::now() < deadline,
            "not delivered; log:\n{}",
            d.log().join("\n")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts with `-P what`, checks it reads back as paused, lets something wait on it, resumes.
fn run(which: Which, what: &str) -> String {
    let uid = delivery_uid(1000);
    let d = refns::start(which, &config(uid), &["-P", what]);
    user_dir(&d, "md", uid);
    let mut t = Transcript::default();
    t.ctl(which, &d, &["show", "status"]);
    t.ctl(which, &d, &["pause", what]);
    match what {
        "mda" => {
            let mut c = Client::connect(d.addr());
            c.reply();
            send(&mut c);
            // Queued and held: nothing may be delivered while paused.
            std::thread::sleep(Duration::from_millis(1500));
            t.note(&format!("delivered while paused: {}", delivered(&d)));
            t.ctl(which, &d, &["resume", what]);
            wait_delivered(&d, 1);
            t.note("delivered after resume: 1");
        }
        "smtp" => {
            // The listening socket exists, so the connection is made, but nobody accepts it.
            let mut c = Client::connect(d.addr());
            c.set_read_timeout(Duration::from_millis(1500));
            t.note(&format!("banner while paused: {:?}", c.reply()));
            t.ctl(which, &d, &["resume", what]);
            c.set_read_timeout(Duration::from_secs(20));
            let banner = c.reply();
            t.note(&format!(
                "banner after resume: {}",
                banner.starts_with("220 ")
            ));
            send(&mut c);
            wait_delivered(&d, 1);
            t.note("delivered after resume: 1");
        }
        _ => {
            t.ctl(which, &d, &["resume", what]);
        }
    }
    t.ctl(which, &d, &["resume", what]);
    t.ctl(which, &d, &["show", "status"]);
    // Paused again at run time, then resumed: the same state both ways.
    t.ctl(which, &d, &["pause", what]);
    t.ctl(which, &d, &["show", "status"]);
    t.ctl(which, &d, &["resume", what]);
    let resumed = format!("info: {what} resumed");
    // smtpctl's answer can come before the daemon has logged the resume: wait for both resumes
    // (and, for smtp, both 'resuming listening sockets' lines) to be in the log.
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let log = d.log();
        let n = |p: &str| log.iter().filter(|l| l.as_str() == p).count();
        if n(&resumed) >= 2 && (what != "smtp" || n("debug: smtp: resuming listening sockets") >= 2)
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = d.log();
    t.note(&format!(
        "logged: {:?}",
        log.iter()
            .filter(|l| l.starts_with("info: ")
                && (l.ends_with(" paused") || l.ends_with(" resumed"))
                || l.contains("listening sockets"))
            .collect::<Vec<_>>()
    ));
    assert!(log.contains(&resumed), "{}", log.join("\n"));
    t.0
}

fn each(what: &str) {
    for which in refns::available() {
        let got = run(which, what);
        refns::check(which, &format!("pause-{what}.txt"), &got);
    }
}

#[test]
fn started_with_mda_paused() {
    each("mda");
}

#[test]
fn started_with_mta_paused() {
    each("mta");
}

#[test]
fn started_with_smtp_paused() {
    each("smtp");
}

/// The lines logged since `from`: whether any was a debug line, and whether any was a `-T smtp`
/// trace, after one SMTP session and one smtpctl command.
fn probe(which: Which, d: &Daemon, t: &mut Transcript, step: &str) {
    let from = d.log().len();
    let mut c = Client::connect(d.addr());
    c.reply();
    c.cmd("QUIT");
    assert!(c.closed());
    refns::smtpctl(which, d, &["show", "status"], "");
    // The session's last line, then the control client's: both are in when these are.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !d.log()[from..]
        .iter()
        .any(|l| l.contains("smtp disconnected reason=quit"))
    {
        assert!(Instant::now() < deadline, "{}", d.log().join("\n"));
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    let log = d.log();
    let new = log.get(from..).unwrap_or(&[]);
    t.note(&format!(
        "{step}: debug lines {}, smtp traces {}",
        new.iter().any(|l| l.starts_with("debug: ")),
        new.iter().any(|l| l.starts_with("smtp: "))
    ));
}

fn log_run(which: Which) -> String {
    let d = refns::start(which, &config(delivery_uid(1000)), &["-T", "smtp"]);
    let mut t = Transcript::default();
    probe(which, &d, &mut t, "-v -T smtp");
    t.ctl(which, &d, &["untrace", "smtp"]);
    probe(which, &d, &mut t, "untrace smtp");
    t.ctl(which, &d, &["trace", "smtp"]);
    probe(which, &d, &mut t, "trace smtp");
    t.ctl(which, &d, &["log", "brief"]);
    probe(which, &d, &mut t, "log brief");
    t.ctl(which, &d, &["trace", "smtp"]);
    probe(which, &d, &mut t, "trace smtp");
    t.ctl(which, &d, &["log", "verbose"]);
    probe(which, &d, &mut t, "log verbose");
    t.ctl(which, &d, &["trace", "all"]);
    probe(which, &d, &mut t, "trace all");
    t.ctl(which, &d, &["untrace", "all"]);
    probe(which, &d, &mut t, "untrace all");
    t.ctl(which, &d, &["trace", "nosuch"]);
    t.ctl(which, &d, &["profile", "imsg"]);
    t.ctl(which, &d, &["unprofile", "queue"]);
    t.ctl(which, &d, &["profile", "nosuch"]);
    t.0
}

/// `-v` and `-T` at start, `log brief|verbose`, `trace`, `untrace`, `profile` at run time: the
/// debug lines and traces that follow each, as OpenSMTPD's (whose `log brief|verbose` also
/// turns the traces off: one word holds both).
#[test]
fn log_level_and_traces() {
    for which in refns::available() {
        let got = log_run(which);
        refns::check(which, "log-traces.txt", &got);
    }
}

/// `show stats` without what cannot compare: the uptime, and OpenSMTPD's counters of its
/// envelope cache and scheduler lists, which we do not have (see sys/stat.rs).
fn stats(which: Which, d: &Daemon, t: &mut Transcript, moment: &str) {
    let out = refns::smtpctl(which, d, &["show", "stats"], "");
    t.note(&format!("$ smtpctl show stats ({moment})"));
    for l in String::from_utf8_lossy(&out.stdout).lines() {
        if l.starts_with("uptime")
            || l.starts_with("queue.evpcache.")
            || l.starts_with("scheduler.ramqueue.")
        {
            continue;
        }
        t.note(l);
    }
}

fn wait_line(d: &Daemon, pred: impl Fn(&str) -> bool) {
    d.wait_log_for(Duration::from_secs(30), pred);
    // OpenSMTPD's processes send their counter changes to its control process as messages.
    std::thread::sleep(Duration::from_millis(1000));
}

fn send_to(d: &Daemon, from: &str, rcpt: &str) {
    let mut c = Client::connect(d.addr());
    c.reply();
    for (cmd, want) in [
        ("HELO client".to_string(), "250 "),
        (format!("MAIL FROM:<{from}>"), "250 "),
        (format!("RCPT TO:<{rcpt}>"), "250 "),
        ("DATA".to_string(), "354 "),
        ("Subject: stats\r\n\r\nhi\r\n.".to_string(), "250 "),
        ("QUIT".to_string(), "221 "),
    ] {
        let r = c.cmd(&cmd);
        assert!(r.starts_with(want), "{cmd}: {r}");
    }
}

fn stats_run(which: Which) -> String {
    let uid = delivery_uid(1000);
    let conf = format!(
        "listen on 127.0.0.1 port @PORT@\n\
         table users {{ foo = \"{uid}:{uid}:@DIR@\", bob = \"{uid}:{uid}:@DIR@\" }}\n\
         action \"l\" maildir \"@DIR@/md\" userbase <users>\n\
         action \"t\" mda \"exit 75\" userbase <users>\n\
         action \"p\" mda \"exit 1\" userbase <users>\n\
         match from any for domain \"example.org\" action \"l\"\n\
         match from any for domain \"temp.org\" action \"t\"\n\
         match from any for domain \"perm.org\" action \"p\"\n"
    );
    let d = refns::start(which, &conf, &[]);
    user_dir(&d, "md", uid);
    let mut t = Transcript::default();
    stats(which, &d, &mut t, "at start");
    send_to(&d, "bob@example.net", "foo@example.org");
    wait_delivered(&d, 1);
    wait_line(&d, |l| l.contains("result=Ok"));
    stats(which, &d, &mut t, "one message delivered");
    send_to(&d, "bob@example.net", "foo@temp.org");
    wait_line(&d, |l| l.contains("result=TempFail"));
    stats(which, &d, &mut t, "one delivery failed temporarily");
    send_to(&d, "bob@example.org", "foo@perm.org");
    wait_delivered(&d, 2);
    wait_line(&d, |l| l.contains("result=PermFail"));
    stats(
        which,
        &d,
        &mut t,
        "one failed for good, its bounce delivered",
    );
    t.0
}

/// `show stats` at start and after a delivery, a temporary failure and a bounce: the counters
/// OpenSMTPD shows at those moments (only those set so far, and `control.session`).
#[test]
fn show_stats_counters() {
    for which in refns::available() {
        let got = stats_run(which);
        refns::check(which, "show-stats.txt", &got);
    }
}

/// `show queue` (`mailq`'s machine form) of a message being delivered: the last try is the
/// attempt under way and `inflight|N` counts the seconds since it began, as OpenSMTPD prints.
fn inflight_run(which: Which) -> String {
    let uid = delivery_uid(1000);
    let conf = format!(
        "listen on 127.0.0.1 port @PORT@\n\
         table users {{ foo = \"{uid}:{uid}:@DIR@\" }}\n\
         action \"slow\" mda \"sleep 4; cat >/dev/null\" userbase <users>\n\
         match from any for domain \"example.org\" action \"slow\"\n"
    );
    let d = refns::start(which, &conf, &[]);
    send_to(&d, "bob@example.net", "foo@example.org");
    std::thread::sleep(Duration::from_millis(2500));
    let out = refns::smtpctl(which, &d, &["show", "queue"], "");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let mut t = Transcript::default();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let f: Vec<&str> = line.split('|').collect();
        if f.len() < 13 {
            t.note(line);
            continue;
        }
        let num = |i: usize| f[i].parse::<i64>().unwrap_or(-1);
        let (ctime, expire, lasttry, since) = (num(7), num(8), num(9), num(12));
        t.note(&format!(
            "src={} agent={} flags={:?} from={} rcpt={} dest={} ttl={} retry={} state={} \
             began 2-3 s ago: {}, lasttry+since is now: {} error={:?}",
            f[1],
            f[2],
            f[3],
            f[4],
            f[5],
            f[6],
            expire - ctime,
            f[10],
            f[11],
            (2..=3).contains(&since),
            (lasttry + since - now).abs() <= 1,
            f.get(13).copied().unwrap_or("")
        ));
    }
    t.0
}

#[test]
fn show_queue_of_a_delivery_in_flight() {
    for which in refns::available() {
        let got = inflight_run(which);
        refns::check(which, "show-queue-inflight.txt", &got);
    }
}

/// Small answers: `resume route N` succeeds (the order goes to the relay process), and a
/// message or envelope that is not there is `fopen: No such file or directory`, in libc's words.
fn small_answers_run(which: Which) -> String {
    let d = refns::start(which, &config(delivery_uid(1000)), &[]);
    let mut t = Transcript::default();
    t.ctl(which, &d, &["resume", "route", "1"]);
    t.ctl(which, &d, &["show", "message", "0123456789abcdef"]);
    t.ctl(which, &d, &["show", "envelope", "0123456789abcdef"]);
    t.0
}

#[test]
fn small_answers() {
    for which in refns::available() {
        let got = small_answers_run(which);
        refns::check(which, "small-answers.txt", &got);
    }
}
