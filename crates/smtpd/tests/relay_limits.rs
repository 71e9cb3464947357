//! The mta limits that act on time and on failures, and `smtpctl pause|resume mta from ADDR for
//! DOMAIN` with `show mta paused`, each against the real OpenSMTPD 6.8 where it is installed (and
//! we are root), with the SMTP sink of `common/sink.rs`, which timestamps what it sees:
//! `session-transaction-delay` (the wait between two transactions of a session),
//! `reconn-delay-route` (the wait after a route's session ended before the next connects),
//! `max-failures-per-session` (refused recipients in a row that end a session). And ours,
//! beyond 6.8: `destination-rate-delay` (one delivery at a time to a domain, a pause between
//! them), MX-routed in a network namespace of the test.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::sink::{Conn, Script, Sink};
use common::*;

/// The smarthost of these tests (the common sink): it refuses the recipients whose address
/// starts with `bad` (`550 5.1.1`), accepts the rest, refuses DATA when none was accepted,
/// offers PIPELINING when asked to; `hold` (connection index, time): that connection's final
/// replies wait.
fn script(pipelining: bool, hold: Option<(usize, Duration)>) -> Script {
    Script {
        ehlo: if pipelining {
            "250-sink.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
        } else {
            "250-sink.test\r\n250 8BITMIME\r\n"
        },
        rcpt: Arc::new(|l: &str| {
            if l.to_ascii_uppercase().starts_with("RCPT TO:<BAD") {
                "550 5.1.1 no such user".to_string()
            } else {
                "250 2.0.0 ok".to_string()
            }
        }),
        data_needs_rcpt: true,
        hold_conn: hold,
        ..Script::sink()
    }
}

fn sink(pipelining: bool) -> Sink {
    Sink::start(script(pipelining, None))
}

fn ctl_bin(bin: &str) -> std::path::PathBuf {
    if bin == REAL_SMTPD {
        std::path::PathBuf::from("/usr/sbin/smtpctl")
    } else {
        smtpctl()
    }
}

fn smtpctl_out(bin: &str, d: &Daemon, args: &[&str]) -> Vec<String> {
    let out = ctl_with(&ctl_bin(bin), d, "smtpctl", args, "", None);
    assert!(out.status.success(), "{bin} smtpctl {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// One message, accepted.
fn send(d: &Daemon, rcpts: &[&str]) {
    send_to(d.addr(), rcpts)
}

fn send_to(addr: SocketAddr, rcpts: &[&str]) {
    let mut c = connect_from("127.0.0.2", addr);
    assert!(c.reply().starts_with("220"));
    assert!(c.cmd("EHLO client.test").starts_with("250"));
    assert!(c.cmd("MAIL FROM:<a@src.test>").starts_with("250"));
    for r in rcpts {
        assert!(c.cmd(&format!("RCPT TO:<{r}>")).starts_with("250"));
    }
    assert!(c.cmd("DATA").starts_with("354"));
    assert!(c
        .cmd("Subject: limits\r\n\r\nhello\r\n.")
        .starts_with("250"));
    c.cmd("QUIT");
}

/// The daemon with `limits` (6.8's connection delays set to 0 for the real program, where
/// they would add their own waits), relaying everything to the sink.
fn daemon(bin: &str, limits: &str, extra: &str, sink: &Sink) -> Daemon {
    let delays = if bin == REAL_SMTPD {
        "mta limit conn-delay-route 0 conn-delay-relay 0\n"
    } else {
        ""
    };
    let conf = format!(
        "{delays}{limits}{extra}listen on 127.0.0.1 port @PORT@\n\
         action \"out\" relay host smtp://127.0.0.1:{}\n\
         match from any for any action \"out\"\n",
        sink.port
    );
    Daemon::start_with(bin, &conf, &[])
}

/// Messages queued while the mta is paused, then released together.
fn send_batch(bin: &str, d: &Daemon, n: usize) {
    smtpctl_out(bin, d, &["pause", "mta"]);
    for i in 0..n {
        send(d, &[&format!("rcpt{i}@dst.test")]);
    }
    smtpctl_out(bin, d, &["resume", "mta"]);
}

fn real(what: &str) -> bool {
    std::env::var_os("RSMTPD_SKIP_REAL").is_none() && require_real(what)
}

/// `session-transaction-delay N`: two messages on one session (one connection allowed), the
/// second MAIL N seconds after the first's final reply; without it, at once. As 6.8 does.
#[test]
fn session_transaction_delay_waits_between_transactions() {
    let run = |bin: &str, delay: &str| {
        let sink = sink(false);
        let limits = format!("mta limit max-conn-per-host 1 session-mail-max 10{delay}\n");
        let d = daemon(bin, &limits, "", &sink);
        send_batch(bin, &d, 2);
        let c = sink.wait(Duration::from_secs(60), "2 messages", |c| {
            c.iter().map(|c| c.done.len()).sum::<usize>() >= 2
        });
        assert_eq!(c.len(), 1, "{bin}: one session: {c:#?}");
        let second_mail = c[0]
            .commands
            .iter()
            .filter(|(_, l)| l.starts_with("MAIL"))
            .nth(1)
            .map(|(t, _)| *t)
            .expect("second MAIL");
        second_mail.duration_since(c[0].done[0])
    };
    let mut gaps = Vec::new();
    if real("session-transaction-delay of 6.8") {
        let _lock = real_lock();
        let gap = run(REAL_SMTPD, " session-transaction-delay 2");
        gaps.push(("6.8", gap));
        assert!(gap >= Duration::from_millis(1900), "6.8: {gap:?}");
    }
    let bin = env!("CARGO_BIN_EXE_smtpd");
    let gap = run(bin, " session-transaction-delay 2");
    gaps.push(("ours", gap));
    assert!(
        gap >= Duration::from_millis(1990) && gap < Duration::from_secs(3),
        "ours: {gap:?}"
    );
    let gap = run(bin, "");
    assert!(gap < Duration::from_millis(900), "ours without: {gap:?}");
    eprintln!("gaps between transactions: {gaps:?}");
}

/// `reconn-delay-route N`: two connections per route, one message per session, three
/// messages; the second session is held by the sink (6.8 forgets a route no session uses,
/// and its delay with it): the third session connects N seconds after the first one
/// closed; without it (our default, where 6.8 waits 3 s), at once. 6.8 counts in whole
/// seconds, so it may connect up to 1 s early.
#[test]
fn reconn_delay_route_waits_after_a_session_ends() {
    let run = |bin: &str, delay: &str| {
        let sink = Sink::start(script(false, Some((1, Duration::from_secs(7)))));
        let limits = format!("mta limit max-conn-per-route 2 session-mail-max 1{delay}\n");
        let d = daemon(bin, &limits, "", &sink);
        send_batch(bin, &d, 3);
        let c = sink.wait(Duration::from_secs(60), "3 sessions", |c| {
            c.len() >= 3 && c.iter().map(|c| c.done.len()).sum::<usize>() >= 3
        });
        assert!(c.iter().all(|c| c.done.len() == 1), "{bin}: {c:#?}");
        let closed = c[0].closed_at.expect("first session closed");
        // The first session's end was seen before the third connected.
        c[2].accepted.saturating_duration_since(closed)
    };
    let mut gaps = Vec::new();
    if real("reconn-delay-route of 6.8") {
        let _lock = real_lock();
        let gap = run(REAL_SMTPD, " reconn-delay-route 4");
        gaps.push(("6.8", gap));
        assert!(gap >= Duration::from_millis(2900), "6.8: {gap:?}");
    }
    let bin = env!("CARGO_BIN_EXE_smtpd");
    let gap = run(bin, " reconn-delay-route 4");
    gaps.push(("ours", gap));
    assert!(
        gap >= Duration::from_millis(3900) && gap < Duration::from_secs(6),
        "ours: {gap:?}"
    );
    let gap = run(bin, "");
    assert!(gap < Duration::from_millis(900), "ours without: {gap:?}");
    eprintln!("gaps between sessions: {gaps:?}");
}

/// The `mta delivery` results of the log, as `to=<ADDR> result stat`, sorted.
fn results(d: &Daemon) -> Vec<String> {
    let re =
        regex::Regex::new(r#"mta delivery .* to=<([^>]*)> .* result="([^"]*)" stat="([^"]*)""#)
            .unwrap();
    let mut v: Vec<String> = d
        .log()
        .iter()
        .filter_map(|l| re.captures(l))
        .map(|c| format!("{} {} {}", &c[2], &c[3], &c[1]))
        .collect();
    v.sort();
    v
}

/// `max-failures-per-session N`: a message to three refused recipients, N = 2: the first two
/// are bounced with the remote's reply, the session gives up on the third (temporary failure,
/// `Too many consecutive errors, closing connection`) and QUITs without DATA; with 6.8's
/// default (25) all three are refused and the session goes on. As 6.8 does, also the commands
/// the sink sees. Under PIPELINING (ours only: 6.8 does not pipeline) the same results.
#[test]
fn max_failures_per_session_gives_up_and_quits() {
    let rcpts = ["bad1@dst.test", "bad2@dst.test", "bad3@dst.test"];
    let run = |bin: &str, limit: &str, pipelining: bool| {
        let sink = sink(pipelining);
        let d = daemon(bin, limit, "", &sink);
        send(&d, &rcpts);
        d.wait_log_for(Duration::from_secs(30), |l| {
            l.contains("mta delivery") && l.contains("bad3@dst.test")
        });
        let _ = d.wait_log_for(Duration::from_secs(15), |l| l.contains("mta disconnected"));
        std::thread::sleep(Duration::from_millis(300));
        let c = sink.conns();
        let cmds: Vec<String> = c
            .first()
            .map(|c| {
                c.commands
                    .iter()
                    .map(|(_, l)| l.split(':').next().unwrap_or("").to_string())
                    .collect()
            })
            .unwrap_or_default();
        (results(&d), cmds)
    };
    let given_up = |r: &[String]| {
        assert_eq!(r.len(), 3, "{r:?}");
        assert_eq!(
            r.iter()
                .filter(|l| l.starts_with("PermFail 550 5.1.1 no such user"))
                .count(),
            2,
            "{r:?}"
        );
        assert_eq!(
            r.iter()
                .filter(
                    |l| l.starts_with("TempFail Too many consecutive errors, closing connection")
                )
                .count(),
            1,
            "{r:?}"
        );
    };
    let limited = "mta limit max-failures-per-session 2\n";
    let want_cmds = ["EHLO sink", "MAIL FROM", "RCPT TO", "RCPT TO", "QUIT"];
    if real("max-failures-per-session of 6.8") {
        let _lock = real_lock();
        let (r, cmds) = run(REAL_SMTPD, limited, false);
        given_up(&r);
        assert_eq!(cmds.len(), want_cmds.len(), "6.8: {cmds:?}");
        assert!(
            cmds[1..].iter().zip(&want_cmds[1..]).all(|(a, b)| a == b),
            "6.8: {cmds:?}"
        );
    }
    let bin = env!("CARGO_BIN_EXE_smtpd");
    let (r, cmds) = run(bin, limited, false);
    given_up(&r);
    assert_eq!(cmds.len(), want_cmds.len(), "ours: {cmds:?}");
    assert!(
        cmds[1..].iter().zip(&want_cmds[1..]).all(|(a, b)| a == b),
        "ours: {cmds:?}"
    );
    let (r, cmds) = run(bin, limited, true);
    given_up(&r);
    assert_eq!(
        cmds.last().map(String::as_str),
        Some("QUIT"),
        "pipelined: {cmds:?}"
    );
    assert!(!cmds.iter().any(|c| c == "."), "pipelined: {cmds:?}");
    // 6.8's default, 25: each refused, the session carries on (RSET, then QUIT at the end of
    // its keep-alive).
    let (r, _) = run(bin, "", false);
    assert_eq!(
        r.iter().filter(|l| l.starts_with("PermFail")).count(),
        3,
        "default: {r:?}"
    );
}

/// `smtpctl pause mta from ADDR for DOMAIN`, `show mta paused`, `resume mta from ...`: a relay
/// with `src <t>` does not connect from a blocked source to that domain (its message waits,
/// `All routes to destination blocked`); `show mta paused` lists `SOURCE -> DOMAIN`; once
/// resumed, `schedule all` sends it. As 6.8's smtpctl prints it and its mta does it (6.8
/// orders the lines of different sources by their address in memory: compared sorted).
#[test]
fn pause_mta_from_source_for_domain_and_show_mta_paused() {
    let run = |bin: &str| {
        let sink = sink(false);
        let src = "table srcs { 127.0.0.1 }\n";
        let conf = format!(
            "{src}listen on 127.0.0.1 port @PORT@\n\
             action \"out\" relay host smtp://127.0.0.1:{} src <srcs>\n\
             match from any for any action \"out\"\n",
            sink.port
        );
        let d = Daemon::start_with(bin, &conf, &[]);
        let mut out = Vec::new();
        for (a, dom) in [
            ("127.0.0.1", "127.0.0.1"),
            ("127.0.0.1", "Other.test"),
            ("::1", "other.test"),
            // Again, another case: the same block.
            ("127.0.0.1", "other.TEST"),
        ] {
            out.extend(smtpctl_out(
                bin,
                &d,
                &["pause", "mta", "from", a, "for", dom],
            ));
        }
        let mut shown = smtpctl_out(bin, &d, &["show", "mta", "paused"]);
        shown.sort();
        out.push("shown:".into());
        out.extend(shown);
        send(&d, &["rcpt@dst.test"]);
        d.wait_log_for(Duration::from_secs(60), |l| l.contains("mta delivery"));
        let mut r = results(&d);
        r.dedup();
        out.extend(r);
        out.extend(smtpctl_out(
            bin,
            &d,
            &["resume", "mta", "from", "127.0.0.1", "for", "127.0.0.1"],
        ));
        let mut shown = smtpctl_out(bin, &d, &["show", "mta", "paused"]);
        shown.sort();
        out.push("shown:".into());
        out.extend(shown);
        smtpctl_out(bin, &d, &["schedule", "all"]);
        let end = Instant::now() + Duration::from_secs(60);
        while sink.messages() < 1 && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(50));
        }
        out.push(format!("sent: {}", sink.messages()));
        out
    };
    let want = [
        "command succeeded",
        "command succeeded",
        "command succeeded",
        "command succeeded",
        "shown:",
        "127.0.0.1 -> 127.0.0.1",
        "127.0.0.1 -> Other.test",
        "[::1] -> other.test",
        "TempFail All routes to destination blocked rcpt@dst.test",
        "command succeeded",
        "shown:",
        "127.0.0.1 -> Other.test",
        "[::1] -> other.test",
        "sent: 1",
    ];
    if real("pause mta from, show mta paused of 6.8") {
        let _lock = real_lock();
        assert_eq!(run(REAL_SMTPD), want);
    }
    assert_eq!(run(env!("CARGO_BIN_EXE_smtpd")), want);
}

const PACE_RECORDS: &str = "
    local-data: \"slow.test. MX 10 mx-slow.test.\"
    local-data: \"mx-slow.test. A 192.0.2.41\"
    local-data: \"fast.test. MX 10 mx-fast.test.\"
    local-data: \"mx-fast.test. A 192.0.2.42\"
";

/// The pacing tests' network: a namespace (tagged `tag`) whose unbound serves [`PACE_RECORDS`],
/// the daemon's address 192.0.2.40, and a sink as each MX. Taken apart as `{ ns, slow, fast }`,
/// so that the sinks go before their namespace.
struct PaceWorld {
    ns: common::netns::Netns,
    slow: Sink,
    fast: Sink,
}

fn pace_world(tag: &str) -> PaceWorld {
    let ns = common::netns::Netns::new(
        tag,
        PACE_RECORDS,
        &["192.0.2.40/32", "192.0.2.41/32", "192.0.2.42/32"],
        "mx-slow.test",
    );
    let slow = ns.enter(|| Sink::bind("192.0.2.41:25".parse().expect("addr"), script(false, None)));
    let fast = ns.enter(|| Sink::bind("192.0.2.42:25".parse().expect("addr"), script(false, None)));
    PaceWorld { ns, slow, fast }
}

/// The transactions a sink saw, from all its connections, in the order they began: (its
/// MAIL's arrival, its final reply).
fn transactions(conns: &[Conn]) -> Vec<(Instant, Instant)> {
    let mut v: Vec<(Instant, Instant)> = conns
        .iter()
        .flat_map(|c| {
            let mails = c
                .commands
                .iter()
                .filter(|(_, l)| l.starts_with("MAIL"))
                .map(|(t, _)| *t);
            mails.zip(c.done.iter().copied()).collect::<Vec<_>>()
        })
        .collect();
    v.sort();
    v
}

/// `mta limit for domain slow.test destination-rate-delay 2` (ours: OpenSMTPD 6.8 refuses the
/// key, checked on its `smtpd -n` when installed): five messages to slow.test and five to
/// fast.test, queued together and released at once, both MX-routed. slow.test's MX sees one
/// transaction at a time, each MAIL 2 s or more after the previous final reply (so also after
/// the previous MAIL); fast.test's go at once, all done before slow.test's last begins; the
/// waits are not failures (every delivery `result="Ok"`, no TempFail line). Only lower bounds
/// on the pacing and a generous upper one (10 s per gap), for a loaded machine.
#[test]
fn destination_rate_delay_paces_one_domain_and_not_the_others() {
    if let Some(why) = common::netns::unavailable() {
        skip(why);
        return;
    }
    let delay = Duration::from_secs(2);
    let limits = "mta limit for domain slow.test destination-rate-delay 2\n";
    if real_available() {
        let dir = tempfile::tempdir().expect("tempdir");
        let conf = dir.path().join("smtpd.conf");
        std::fs::write(
            &conf,
            format!("{limits}action \"mx\" relay\nmatch from any for any action \"mx\"\n"),
        )
        .expect("write");
        let out = std::process::Command::new(REAL_SMTPD)
            .arg("-n")
            .arg("-f")
            .arg(&conf)
            .output()
            .expect("6.8's smtpd -n");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success()
                && err.contains("invalid mta limit keyword: destination-rate-delay"),
            "6.8 was expected to refuse the key: {out:?}"
        );
    }
    let PaceWorld { ns, slow, fast } = pace_world("pace");
    let bin = env!("CARGO_BIN_EXE_smtpd");
    let run = |limits: &str| {
        slow.clear();
        fast.clear();
        let conf = format!(
            "{limits}listen on 192.0.2.40 port @PORT@\n\
             action \"mx\" relay\n\
             match from any for any action \"mx\"\n"
        );
        let d = ns.daemon_with(bin, &conf);
        let addr: SocketAddr = format!("192.0.2.40:{}", d.port).parse().expect("addr");
        smtpctl_out(bin, &d, &["pause", "mta"]);
        ns.enter(move || {
            for i in 0..5 {
                send_to(addr, &[&format!("s{i}@slow.test")]);
                send_to(addr, &[&format!("f{i}@fast.test")]);
            }
        });
        smtpctl_out(bin, &d, &["resume", "mta"]);
        let slow_conns = slow.wait(Duration::from_secs(60), "5 messages to slow.test", |c| {
            c.iter().map(|c| c.done.len()).sum::<usize>() >= 5
        });
        let fast_conns = fast.wait(Duration::from_secs(60), "5 messages to fast.test", |c| {
            c.iter().map(|c| c.done.len()).sum::<usize>() >= 5
        });
        let s = transactions(&slow_conns);
        let f = transactions(&fast_conns);
        assert_eq!(
            (s.len(), f.len()),
            (5, 5),
            "{slow_conns:#?} {fast_conns:#?}"
        );
        // The daemon logs each delivery once the sink's reply is in.
        let end = Instant::now() + Duration::from_secs(30);
        let deliveries = |d: &Daemon| {
            d.log()
                .iter()
                .filter(|l| l.contains("mta delivery"))
                .count()
        };
        while deliveries(&d) < 10 && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(50));
        }
        (s, f, d.log(), slow_conns.len())
    };
    // Without the key, slow.test is not paced: some transaction begins within the delay of
    // the one before it (under 6.8's limits, five sessions at once).
    let (s, _, _, _) = run("");
    assert!(
        s.windows(2)
            .any(|w| w[1].0.saturating_duration_since(w[0].1) < delay),
        "unpaced: {s:?}"
    );

    let (s, f, log, slow_sessions) = run(limits);
    let mut gaps = Vec::new();
    for w in s.windows(2) {
        let ((mail0, done0), (mail1, _)) = (w[0], w[1]);
        let after_end = mail1.saturating_duration_since(done0);
        gaps.push(after_end);
        assert!(
            mail1 > done0 && after_end >= delay,
            "slow.test: a MAIL {after_end:?} after the previous final reply: {s:?}"
        );
        assert!(mail1.duration_since(mail0) >= delay);
        assert!(after_end < delay + Duration::from_secs(8), "{gaps:?}");
    }
    let (last_slow_mail, _) = s[4];
    let fast_done = f.iter().map(|(_, done)| *done).max().expect("fast");
    assert!(
        fast_done < last_slow_mail,
        "fast.test was held: done {:?} after slow.test's last MAIL",
        fast_done.duration_since(last_slow_mail)
    );
    // Every delivery a success at its first try: the waits were not failures.
    let deliveries: Vec<&String> = log.iter().filter(|l| l.contains("mta delivery")).collect();
    assert_eq!(deliveries.len(), 10, "{deliveries:#?}");
    assert!(
        deliveries.iter().all(|l| l.contains("result=\"Ok\"")),
        "{deliveries:#?}"
    );
    let fast_span = f[4].0.saturating_duration_since(f[0].0);
    eprintln!(
        "slow.test: gaps from a final reply to the next MAIL {gaps:?} on {slow_sessions} connection(s); fast.test: 5 MAILs within {fast_span:?}"
    );
}

/// A backlog to a paced domain does not hold the others: with `scheduler limit max-inflight
/// 15` and 30 messages to slow.test (paced at 1 s) queued first and released together, five
/// to fast.test queued after them are delivered at once, long before slow.test's backlog drains (all of it would
/// otherwise wait in flight, filling the 15 slots: the relay keeps a few in line and gives the
/// rest back to the scheduler untried, not as failures). slow.test stays paced.
#[test]
fn a_paced_backlog_does_not_hold_the_other_domains() {
    if let Some(why) = common::netns::unavailable() {
        skip(why);
        return;
    }
    let PaceWorld { ns, slow, fast } = pace_world("pacebl");
    let bin = env!("CARGO_BIN_EXE_smtpd");
    let conf = "scheduler limit max-inflight 15\n\
                mta limit for domain slow.test destination-rate-delay 1\n\
                listen on 192.0.2.40 port @PORT@\n\
                action \"mx\" relay\n\
                match from any for any action \"mx\"\n";
    let d = ns.daemon_with(bin, conf);
    let addr: SocketAddr = format!("192.0.2.40:{}", d.port).parse().expect("addr");
    // Released together: the relay gets them all at once.
    smtpctl_out(bin, &d, &["pause", "mta"]);
    ns.enter(move || {
        for i in 0..30 {
            send_to(addr, &[&format!("s{i}@slow.test")]);
        }
    });
    smtpctl_out(bin, &d, &["resume", "mta"]);
    let queued = Instant::now();
    ns.enter(move || {
        for i in 0..5 {
            send_to(addr, &[&format!("f{i}@fast.test")]);
        }
    });
    let fast_conns = fast.wait(Duration::from_secs(60), "5 messages to fast.test", |c| {
        c.iter().map(|c| c.done.len()).sum::<usize>() >= 5
    });
    let fast_done = transactions(&fast_conns)
        .iter()
        .map(|(_, done)| *done)
        .max()
        .expect("fast");
    let slow_conns = slow.wait(Duration::from_secs(60), "slow.test under way", |c| {
        c.iter().map(|c| c.done.len()).sum::<usize>() >= 3
    });
    let s = transactions(&slow_conns);
    // Held behind the backlog, fast.test would have waited for 15 or more of slow.test's
    // transactions, one a second; a generous bound: fewer than 10.
    let before = s.iter().filter(|(mail, _)| *mail < fast_done).count();
    assert!(
        before < 10,
        "fast.test was held: {before} of slow.test's transactions began first"
    );
    for w in s.windows(2) {
        assert!(
            w[1].0.saturating_duration_since(w[0].1) >= Duration::from_secs(1),
            "{s:?}"
        );
    }
    let log = d.log();
    assert!(
        !log.iter()
            .any(|l| l.contains("mta delivery") && !l.contains("result=\"Ok\"")),
        "{log:#?}"
    );
    eprintln!(
        "fast.test done {:?} after it was queued, {before} of slow.test's 30 begun",
        fast_done.saturating_duration_since(queued)
    );
}
