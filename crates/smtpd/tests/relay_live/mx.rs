//! MX routing, the same cases through the real OpenSMTPD 6.8.0p2 and through us, each the
//! relaying client (`action "mx" relay`) in a network namespace of the test where unbound holds
//! the records and recording SMTP servers (`common/sink.rs`) stand for the MX hosts:
//!
//! - `pref.test`: MX 10 a host that refuses connections, MX 20 one that accepts, MX 30 one
//!   that must not be tried: delivered by the second, the first's route disabled;
//! - `temp.test`: its only MX answers RCPT with 451: retried;
//! - `perm.test`: its only MX answers RCPT with 550: bounced, the DSN to the sender's MX;
//! - `null.test`: a null MX (RFC 7505);
//! - `v6only.test`: no MX, only an AAAA record: the domain is its own MX, over IPv6.
//!
//! What each MX host received (EHLO name, MAIL/RCPT parameters and order, DATA bytes, QUIT
//! after the keep-alive), the `mta`/`smtp-out` log lines and each outcome must agree. 6.8's run
//! is kept in `tests/fixtures/relay/mx-*.txt`: re-recorded (and compared with the fixture) when
//! OpenSMTPD is installed and we are root, `RSMTPD_RERECORD=1` to write it anew.
//!
//! Where we differ on purpose (README, "deliberate differences"), the comparison maps 6.8's
//! text to ours and says so: the DSN's `Status:` carries the remote's enhanced code (6.8 writes
//! `5.0.0`), and a null MX is bounced at once (6.8 retries it until it expires).

use std::net::SocketAddr;
use std::time::Duration;

use crate::common::netns::{self, Netns};
use crate::common::*;
use crate::recorder::{self, wait_until, Answer, Recorder};

const RECORDS: &str = "
    local-data: \"mx.test. A 192.0.2.1\"
    local-data-ptr: \"192.0.2.1 mx.test\"
    local-data: \"down.test. A 192.0.2.20\"
    local-data-ptr: \"192.0.2.20 down.test\"
    local-data: \"good.test. A 192.0.2.30\"
    local-data-ptr: \"192.0.2.30 good.test\"
    local-data: \"tempmx.test. A 192.0.2.31\"
    local-data-ptr: \"192.0.2.31 tempmx.test\"
    local-data: \"permmx.test. A 192.0.2.32\"
    local-data-ptr: \"192.0.2.32 permmx.test\"
    local-data: \"bounces.test. A 192.0.2.33\"
    local-data-ptr: \"192.0.2.33 bounces.test\"
    local-data: \"bounces-null.test. A 192.0.2.34\"
    local-data-ptr: \"192.0.2.34 bounces-null.test\"
    local-data: \"unused.test. A 192.0.2.35\"
    local-data-ptr: \"192.0.2.35 unused.test\"
    local-data: \"pref.test. MX 10 down.test.\"
    local-data: \"pref.test. MX 20 good.test.\"
    local-data: \"pref.test. MX 30 unused.test.\"
    local-data: \"temp.test. MX 10 tempmx.test.\"
    local-data: \"perm.test. MX 10 permmx.test.\"
    local-data: \"null.test. MX 0 .\"
    local-data: \"v6only.test. AAAA 2001:db8::30\"
    local-data-ptr: \"2001:db8::30 v6only.test\"
    local-data: \"sender.test. MX 10 bounces.test.\"
    local-data: \"sender-null.test. MX 10 bounces-null.test.\"
";

const ADDRS: &[&str] = &[
    "192.0.2.1/32",
    "192.0.2.20/32",
    "192.0.2.30/32",
    "192.0.2.31/32",
    "192.0.2.32/32",
    "192.0.2.33/32",
    "192.0.2.34/32",
    "192.0.2.35/32",
    "2001:db8::1/128",
    "2001:db8::30/128",
];

const CONFIG: &str = "listen on 192.0.2.1 port @PORT@\n\
                      action \"mx\" relay\n\
                      match from any for any action \"mx\"\n";

/// The MX hosts: (name in the fixture, address, how it answers).
const HOSTS: &[(&str, &str, Answer)] = &[
    ("good.test", "192.0.2.30:25", Answer::Accept),
    ("tempmx.test", "192.0.2.31:25", Answer::TempRcpt),
    ("permmx.test", "192.0.2.32:25", Answer::PermRcpt),
    ("bounces.test", "192.0.2.33:25", Answer::Accept),
    ("bounces-null.test", "192.0.2.34:25", Answer::Accept),
    ("unused.test", "192.0.2.35:25", Answer::Accept),
    ("v6only.test", "[2001:db8::30]:25", Answer::Accept),
];

/// (sender, recipient) of each case's message.
const CASES: &[(&str, &str)] = &[
    ("alice@sender.test", "bob@pref.test"),
    ("alice@sender.test", "bob@temp.test"),
    ("alice@sender.test", "bob@perm.test"),
    ("alice@sender-null.test", "bob@null.test"),
    ("alice@sender.test", "bob@v6only.test"),
];

struct Run {
    /// Per MX host, its connections as normalized lines.
    dialogue: Vec<String>,
    log: Vec<String>,
}

fn submit(ns: &Netns, port: u16) {
    ns.enter(move || {
        let addr: SocketAddr = format!("192.0.2.1:{port}").parse().unwrap();
        let mut c = Client::connect(addr);
        assert!(c.reply().starts_with("220"));
        assert!(c.cmd("EHLO client.test").starts_with("250"));
        for (i, (from, to)) in CASES.iter().enumerate() {
            assert!(c.cmd(&format!("MAIL FROM:<{from}>")).starts_with("250"));
            assert!(c.cmd(&format!("RCPT TO:<{to}>")).starts_with("250"));
            assert!(c.cmd("DATA").starts_with("354"));
            // 7-bit, with its own Date and Message-ID: nothing either daemon adds but its
            // Received line.
            let body = format!(
                "From: <{from}>\r\nTo: <{to}>\r\nSubject: case {i}\r\n\
                 Date: Wed, 2 Dec 2026 17:00:00 +0000\r\nMessage-ID: <case{i}@client.test>\r\n\
                 \r\nline one\r\n..a dot\r\n.\r\n"
            );
            let r = c.cmd(body.trim_end_matches("\r\n"));
            assert!(r.starts_with("250"), "{r}");
        }
        c.cmd("QUIT");
    });
}

fn run(ns: &Netns, recorders: &[Recorder], bin: &str) -> Run {
    for r in recorders {
        r.clear();
    }
    let real = bin == REAL_SMTPD;
    let d = ns.daemon_with(bin, CONFIG);
    submit(ns, d.port);
    let by_name = |n: &str| &recorders[HOSTS.iter().position(|h| h.0 == n).unwrap()];
    let limit = Duration::from_secs(60);
    wait_until(limit, "pref.test delivered to good.test", || {
        by_name("good.test").dots() >= 1
    });
    wait_until(limit, "v6only.test delivered", || {
        by_name("v6only.test").dots() >= 1
    });
    wait_until(limit, "the DSN of perm.test", || {
        by_name("bounces.test").dots() >= 1
    });
    if !real {
        wait_until(limit, "the DSN of null.test", || {
            by_name("bounces-null.test").dots() >= 1
        });
    }
    for rcpt in ["bob@temp.test", "bob@null.test"] {
        d.wait_log_for(limit, |l| {
            l.contains("mta delivery") && l.contains(&format!("to=<{rcpt}>"))
        });
    }
    // Every session ends with QUIT after the 10 s keep-alive.
    wait_until(limit, "every relay session closed", || {
        recorders.iter().all(Recorder::all_closed)
    });
    d.wait_log(|l| l.contains("mta disconnected") && l.contains("messages=1"));
    std::thread::sleep(Duration::from_millis(500));
    let host = hostname();
    let mut dialogue = Vec::new();
    for (r, (name, _, _)) in recorders.iter().zip(HOSTS) {
        dialogue.push(format!("== {name}"));
        dialogue.extend(normalize(&r.conns(), &host));
    }
    Run {
        dialogue,
        log: normalize_mta(&d.log()),
    }
}

/// One host's connections, with what differs between runs replaced: the host name, dates,
/// Message-ID and MIME boundaries of the DSN; Received lines (queue ids) dropped.
fn normalize(conns: &[crate::recorder::Conn], host: &str) -> Vec<String> {
    let boundary = regex::Regex::new(r"[ 0-9]{16,}/").unwrap();
    let mut out = Vec::new();
    for (i, c) in conns.iter().enumerate() {
        out.push(format!("connection {i}"));
        let mut in_data = false;
        let mut in_received = false;
        let mut last_dot = 0.0;
        for (t, l) in &c.lines {
            let l = l.trim_end_matches("\r\n").replace(host, "@HOST@");
            if in_data {
                if l == "." {
                    in_data = false;
                    last_dot = *t;
                    out.push(".".into());
                    continue;
                }
                if l.starts_with("Received:") || (in_received && l.starts_with('\t')) {
                    in_received = true;
                    continue;
                }
                in_received = false;
                let l = boundary.replace_all(&l, "@BOUNDARY@/").to_string();
                let l = match l.split_once(": ") {
                    Some(("Date" | "Arrival-Date", _)) => {
                        format!("{}: @DATE@", &l[..l.find(':').unwrap()])
                    }
                    Some(("Message-ID", v)) if !v.contains("client.test") => {
                        "Message-ID: @MSGID@".into()
                    }
                    _ => l,
                };
                out.push(l);
                continue;
            }
            if l == "DATA" {
                in_data = true;
            }
            if l == "QUIT" {
                let idle = t - last_dot;
                out.push(format!(
                    "QUIT after the keep-alive: {}",
                    (9.0..13.0).contains(&idle)
                ));
                continue;
            }
            out.push(l);
        }
        if !c.closed {
            out.push("(still open)".into());
        }
    }
    out
}

/// `mta` and `smtp-out` lines, each session's lines together in their order (sessions sorted
/// by their lines, each followed by `--`), ids and delays replaced.
fn normalize_mta(log: &[String]) -> Vec<String> {
    let re_evp = regex::Regex::new(r"evpid=[0-9a-f]{16}").unwrap();
    let re_delay = regex::Regex::new(r" delay=[0-9dhms]+ ").unwrap();
    let re_sess = regex::Regex::new(r"[0-9a-f]{16}").unwrap();
    let mut sessions: Vec<(String, Vec<String>)> = Vec::new();
    for l in log {
        if !(l.contains(" mta ") || l.starts_with("smtp-out:")) {
            continue;
        }
        let id = l
            .split(' ')
            .find(|w| w.len() == 16 && w.chars().all(|c| c.is_ascii_hexdigit()))
            .unwrap_or("")
            .to_string();
        let l = re_evp.replace_all(l, "evpid=EVPID").to_string();
        let l = re_delay.replace_all(&l, " delay=D ").to_string();
        let l = re_sess.replace_all(&l, "SESSION").to_string();
        match sessions
            .iter_mut()
            .find(|(i, _)| *i == id && !id.is_empty())
        {
            Some((_, v)) => v.push(l),
            None => sessions.push((id, vec![l])),
        }
    }
    sessions.sort_by(|a, b| a.1.cmp(&b.1));
    let mut out = Vec::new();
    for (_, v) in sessions {
        out.extend(v);
        out.push("--".into());
    }
    out
}

/// The sessions of normalized lines (as [`normalize_mta`] separates them) that have no line
/// containing `word`.
fn sessions_without(log: &[String], word: &str) -> Vec<Vec<String>> {
    log.split(|l| l == "--")
        .filter(|s| !s.is_empty() && !s.iter().any(|l| l.contains(word)))
        .map(<[String]>::to_vec)
        .collect()
}

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/relay/mx-dialogue.txt"
);
const FIXTURE_LOG: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/relay/mx-log.txt"
);

fn read_lines(p: &str) -> Vec<String> {
    std::fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("{p}: {e} (RSMTPD_RERECORD=1 records it)"))
        .lines()
        .map(str::to_string)
        .collect()
}

/// The lines of one host's section of a dialogue (`== NAME` to the next `==`).
fn section<'a>(d: &'a [String], name: &str) -> &'a [String] {
    let head = format!("== {name}");
    let start = d.iter().position(|l| *l == head).map_or(d.len(), |i| i + 1);
    let len = d[start..]
        .iter()
        .position(|l| l.starts_with("== "))
        .unwrap_or(d.len() - start);
    &d[start..start + len]
}

/// A DSN as a list of fields: `header NAME: VALUE` for the message's headers, then per MIME
/// part `part N NAME: VALUE` for its headers and `part N | LINE` for its text (the
/// delivery-status part's fields are lines of its text), so that a difference names the
/// field it is in.
fn dsn_fields(lines: &[String]) -> Vec<String> {
    let data = lines
        .iter()
        .position(|l| l == "DATA")
        .map_or(&[][..], |i| &lines[i + 1..]);
    let end = data.iter().position(|l| l == ".").unwrap_or(data.len());
    let mut out = Vec::new();
    let mut part = 0;
    let mut in_headers = true;
    for l in &data[..end] {
        if l.starts_with("--@BOUNDARY@/") {
            part += 1;
            in_headers = true;
            continue;
        }
        if l.is_empty() && in_headers {
            in_headers = false;
            continue;
        }
        let place = if part == 0 {
            "header".to_string()
        } else {
            format!("part {part}")
        };
        if in_headers {
            out.push(format!("{place} {l}"));
        } else {
            out.push(format!("{place} | {l}"));
        }
    }
    out
}

/// Field by field, with the name of the first field that differs.
fn assert_dsn_eq(ours: &[String], want: &[String], what: &str) {
    for (i, (o, w)) in ours.iter().zip(want).enumerate() {
        assert_eq!(o, w, "{what}: field {i} differs (ours: {ours:#?})");
    }
    assert_eq!(ours.len(), want.len(), "{what}: {ours:#?} vs {want:#?}");
}

#[test]
fn mx_cases_as_opensmtpd_6_8() {
    if let Some(why) = netns::unavailable() {
        skip(why);
        return;
    }
    let ns = Netns::new("relaymx", RECORDS, ADDRS, "good.test");
    let recorders: Vec<Recorder> = HOSTS
        .iter()
        .map(|(_, a, answer)| {
            let (a, answer): (SocketAddr, Answer) = (a.parse().unwrap(), *answer);
            ns.enter(move || recorder::bind(a, answer))
        })
        .collect();

    if std::env::var_os("RSMTPD_SKIP_REAL").is_none()
        && require_real("re-recording OpenSMTPD's MX transcripts")
    {
        let _lock = real_lock();
        let theirs = run(&ns, &recorders, REAL_SMTPD);
        if std::env::var_os("RSMTPD_RERECORD").is_some() {
            std::fs::write(FIXTURE, theirs.dialogue.join("\n") + "\n").unwrap();
            std::fs::write(FIXTURE_LOG, theirs.log.join("\n") + "\n").unwrap();
        }
        assert_eq!(
            theirs.dialogue,
            read_lines(FIXTURE),
            "6.8 changed: RSMTPD_RERECORD=1 to record"
        );
        assert_eq!(
            theirs.log,
            read_lines(FIXTURE_LOG),
            "6.8 changed: RSMTPD_RERECORD=1 to record"
        );
    }
    let theirs_dialogue = read_lines(FIXTURE);
    let theirs_log = read_lines(FIXTURE_LOG);
    let ours = run(&ns, &recorders, env!("CARGO_BIN_EXE_smtpd"));

    // What every host but the null MX's sender received, up to the DSN's Status.
    for (name, _, _) in HOSTS.iter().filter(|h| h.0 != "bounces-null.test") {
        let want: Vec<String> = section(&theirs_dialogue, name)
            .iter()
            .map(|l| {
                if l == "part 2 | Status: 5.0.0" || l == "Status: 5.0.0" {
                    "Status: 5.7.1".to_string()
                } else {
                    l.clone()
                }
            })
            .collect();
        assert_eq!(section(&ours.dialogue, name), want, "what {name} received");
    }

    // The DSN of the 550, field by field.
    let theirs_dsn = dsn_fields(section(&theirs_dialogue, "bounces.test"));
    let ours_dsn = dsn_fields(section(&ours.dialogue, "bounces.test"));
    assert!(
        theirs_dsn.iter().any(|f| f == "part 2 | Status: 5.0.0"),
        "{theirs_dsn:#?}"
    );
    let want: Vec<String> = theirs_dsn
        .iter()
        .map(|f| {
            if f == "part 2 | Status: 5.0.0" {
                "part 2 | Status: 5.7.1".into()
            } else {
                f.clone()
            }
        })
        .collect();
    assert_dsn_eq(&ours_dsn, &want, "the DSN of the 550");

    // The null MX: 6.8 keeps it queued (its outcome is in the fixture); we bounce it at once,
    // with a DSN that is 6.8's for the 550 but for the sender, recipient and error (its
    // Status stays 5.0.0: no remote gave a code; RFC 7505's 5.1.10 does not fit OpenSMTPD's
    // two-digit enhanced codes).
    let null_theirs: Vec<&String> = theirs_log
        .iter()
        .filter(|l| l.contains("to=<bob@null.test>"))
        .collect();
    assert!(
        null_theirs
            .iter()
            .all(|l| l.contains("result=\"TempFail\"")),
        "{null_theirs:#?}"
    );
    let null_ours: Vec<&String> = ours
        .log
        .iter()
        .filter(|l| l.contains("to=<bob@null.test>"))
        .collect();
    assert_eq!(null_ours.len(), 1, "{:#?}", ours.log);
    assert!(
        null_ours[0].contains("result=\"PermFail\" stat=\"Domain does not accept mail (null MX)\""),
        "{null_ours:#?}"
    );
    let null_dsn = dsn_fields(section(&ours.dialogue, "bounces-null.test"));
    let want: Vec<String> = theirs_dsn
        .iter()
        .map(|f| {
            f.replace("alice@sender.test", "alice@sender-null.test")
                .replace("bob@perm.test", "bob@null.test")
                .replace("case 2", "case 3")
                .replace("case2@", "case3@")
                .replace(
                    "550 5.7.1 relaying denied",
                    "Domain does not accept mail (null MX)",
                )
        })
        .collect();
    assert_dsn_eq(&null_dsn, &want, "the DSN of the null MX");

    // The log: the same sessions but for the null MX's (and its DSN's).
    assert_eq!(
        sessions_without(&ours.log, "null.test"),
        sessions_without(&theirs_log, "null.test"),
        "the mta lines"
    );
}
