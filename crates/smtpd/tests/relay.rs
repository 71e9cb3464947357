//! Relaying, as OpenSMTPD 6.8 does it, observed on the real program: both daemons relay the
//! same messages to the recording SMTP server of `common/sink.rs` (`relay host smtp://...`), and
//! what the recorder receives (commands, DATA bytes, QUIT after the 10 s keep-alive) and what
//! the daemons log (`mta connecting/connected/delivery/disconnected`) must agree, up to ids and
//! dates. 6.8's transcript is kept in `tests/fixtures/relay/`; when the real program is
//! installed (and we are root), it is recorded again and checked against the fixture.
//!
//! Where we differ on purpose it is asserted as a difference: the DSN of a 5xx carries the
//! remote's enhanced code (`Status: 5.1.1`, 6.8 writes `5.0.0`).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::sink::{Conn, Script, Sink};
use common::*;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// EHLO answered with DSN and 8BITMIME only (what the fixture was recorded with).
    Plain,
    /// A 421 greeting.
    Busy,
    /// EHLO refused with 502: the client must fall back to HELO.
    NoEhlo,
    /// PIPELINING and SIZE offered; the MAIL reply comes 300 ms late, so that a pipelining
    /// client's RCPT and DATA are seen before it.
    Pipelining,
    /// Never answers the final dot until `set_hang(false)` (a remote stuck mid-delivery).
    Hang,
    /// Offers STARTTLS, answers it 220, then sends plaintext instead of a handshake.
    BrokenTls,
}

/// The recorder (the common sink) of these tests: it refuses recipients `bad@` (550) and
/// `later@` (451), and behaves as `mode` says.
fn recorder(mode: Mode) -> Sink {
    let base = Script {
        rcpt: Arc::new(|l: &str| {
            if l.contains("bad@") {
                "550 5.1.1 no such user".to_string()
            } else if l.contains("later@") {
                "451 4.2.0 later".to_string()
            } else {
                "250 2.1.5 ok".to_string()
            }
        }),
        ..Script::recorder()
    };
    Sink::start(match mode {
        Mode::Plain => base,
        Mode::Busy => Script { busy: true, ..base },
        Mode::NoEhlo => Script {
            ehlo: "502 5.5.1 no EHLO here\r\n",
            ..base
        },
        Mode::Pipelining => Script {
            ehlo: "250-rec.test\r\n250-PIPELINING\r\n250-SIZE 100000\r\n250 8BITMIME\r\n",
            probe_pipelining: true,
            ..base
        },
        Mode::Hang => Script { hang: true, ..base },
        Mode::BrokenTls => Script {
            ehlo: "250-rec.test\r\n250-STARTTLS\r\n250 8BITMIME\r\n",
            broken_starttls: true,
            ..base
        },
    })
}

fn config(relay_port: u16) -> String {
    format!(
        "listen on 127.0.0.1 port @PORT@\n\
         action \"r\" relay host smtp://127.0.0.1:{relay_port}\n\
         match from any for any action \"r\"\n"
    )
}

fn submit(d: &Daemon, from: &str, rcpts: &[&str], body: &str) {
    let mut c = Client::connect(d.addr());
    assert!(c.reply().starts_with("220"));
    assert!(c.cmd("EHLO client.test").starts_with("250"));
    assert!(c.cmd(&format!("MAIL FROM:<{from}>")).starts_with("250"));
    for r in rcpts {
        assert!(c.cmd(&format!("RCPT TO:<{r}>")).starts_with("250"));
    }
    assert!(c.cmd("DATA").starts_with("354"));
    let reply = c.cmd(&format!("{body}."));
    assert!(reply.starts_with("250"), "{reply}");
    c.cmd("QUIT");
}

/// As submitted (dot-stuffed): the queue holds `.dot line`, the relay stuffs it again.
const BODY1: &str = "Subject: hi\r\n\r\n..dot line\r\nbody\u{e9}\r\n";
const BODY2: &str = "Subject: two\r\n\r\nsecond\r\n";

/// The transcript with what differs between runs replaced: the host name, Received/Date/
/// Message-ID values, MIME boundaries; RCPTs of one transaction sorted (neither daemon
/// promises an order). Bounce bodies are reduced to their recipient and Status lines.
fn normalize(conns: &[Conn], host: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, c) in conns.iter().enumerate() {
        out.push(format!("connection {i}"));
        let mut rcpts = Vec::new();
        let mut in_data = false;
        let mut bounce = false;
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
                let keep = if bounce {
                    l.starts_with("Status:") || l.contains(": 550 ")
                } else {
                    !(l.starts_with("Received:") || l.starts_with('\t'))
                };
                if keep {
                    let l = if l.starts_with("Date:") {
                        "Date: @DATE@".to_string()
                    } else if l.starts_with("Message-ID:") {
                        "Message-ID: @MSGID@".to_string()
                    } else {
                        l
                    };
                    out.push(l);
                }
                continue;
            }
            if l.starts_with("RCPT") {
                rcpts.push(l);
                continue;
            }
            if !rcpts.is_empty() {
                rcpts.sort();
                out.append(&mut rcpts);
            }
            if l == "DATA" {
                in_data = true;
            }
            if l.starts_with("MAIL FROM:<>") {
                bounce = true;
            } else if l.starts_with("MAIL") {
                bounce = false;
            }
            if l == "QUIT" {
                // The keep-alive: 10 s after the last message.
                let idle = t - last_dot;
                out.push(format!(
                    "QUIT after the keep-alive: {}",
                    (9.0..13.0).contains(&idle)
                ));
                continue;
            }
            out.push(l);
        }
    }
    out
}

/// The daemon's mta lines with ids, the port and delays replaced, deliveries sorted.
fn mta_lines(log: &[String], relay_port: u16) -> Vec<String> {
    let re_id = regex::Regex::new(r"^[0-9a-f]{16} ").unwrap();
    let re_evp = regex::Regex::new(r"evpid=[0-9a-f]{16}").unwrap();
    let re_delay = regex::Regex::new(r" delay=[0-9dhms]+ ").unwrap();
    let mut head = Vec::new();
    let mut deliveries = Vec::new();
    for l in log {
        if !l.contains(" mta ") && !l.starts_with("smtp-out:") {
            continue;
        }
        let l = re_id.replace(l, "SESSION ").to_string();
        let l = re_evp.replace(&l, "evpid=EVPID").to_string();
        let l = re_delay.replace(&l, " delay=D ").to_string();
        let l = l.replace(&format!(":{relay_port} "), ":PORT ");
        if l.contains("mta delivery") {
            deliveries.push(l);
        } else {
            head.push(l);
        }
    }
    deliveries.sort();
    head.extend(deliveries);
    head
}

/// Runs the scenario on `bin`: two messages (the second once the first is relayed), the
/// bounce of the refused recipient, the keep-alive, QUIT.
fn scenario(bin: &str) -> (Vec<String>, Vec<String>) {
    let rec = recorder(Mode::Plain);
    let d = Daemon::start_with(bin, &config(rec.port), &[]);
    submit(
        &d,
        "alice@src.test",
        &[
            "bob@dst.test",
            "bad@dst.test",
            "carol@dst.test",
            "later@dst.test",
        ],
        BODY1,
    );
    d.wait_log(|l| l.contains("mta delivery") && l.contains("to=<bad@dst.test>"));
    submit(&d, "alice@src.test", &["bob@dst.test"], BODY2);
    // Both messages and the bounce, then QUIT after the keep-alive.
    let conns = rec.wait(Duration::from_secs(60), "the relay sessions", |c| {
        c.iter().all(|c| c.closed)
            && c.iter()
                .flat_map(|c| &c.lines)
                .filter(|(_, l)| l == ".\r\n")
                .count()
                >= 3
    });
    d.wait_log(|l| l.contains("mta disconnected"));
    let host = hostname();
    (normalize(&conns, &host), mta_lines(&d.log(), rec.port))
}

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/relay/host-dialogue.txt"
);
const FIXTURE_LOG: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/relay/host-log.txt"
);

fn read_lines(p: &str) -> Vec<String> {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// What we send where we differ from 6.8 on purpose: the DSN's Status carries the remote's
/// enhanced code (6.8: 5.0.0), and MAIL says `BODY=8BITMIME` to a server that offers it when
/// the message has 8-bit bytes (the first message and its bounce, not the second; 6.8 sends
/// 8-bit bodies unannounced).
fn ours_from_theirs(lines: &[String]) -> Vec<String> {
    let mut mails = 0;
    lines
        .iter()
        .map(|l| {
            if l == "Status: 5.0.0" {
                "Status: 5.1.1".to_string()
            } else if l.starts_with("MAIL FROM:") {
                mails += 1;
                if mails == 2 {
                    l.clone()
                } else {
                    format!("{l} BODY=8BITMIME")
                }
            } else {
                l.clone()
            }
        })
        .collect()
}

#[test]
fn relay_host_speaks_and_logs_as_opensmtpd() {
    if std::env::var_os("RSMTPD_SKIP_REAL").is_none()
        && require_real("re-recording OpenSMTPD's transcript")
    {
        let _lock = real_lock();
        let (dialogue, log) = scenario(REAL_SMTPD);
        if std::env::var_os("RSMTPD_RERECORD").is_some() {
            std::fs::write(FIXTURE, dialogue.join("\n") + "\n").unwrap();
            std::fs::write(FIXTURE_LOG, log.join("\n") + "\n").unwrap();
        }
        assert_eq!(
            dialogue,
            read_lines(FIXTURE),
            "6.8 changed: RSMTPD_RERECORD=1 to record"
        );
        assert_eq!(
            log,
            read_lines(FIXTURE_LOG),
            "6.8 changed: RSMTPD_RERECORD=1 to record"
        );
    }
    let (dialogue, log) = scenario(env!("CARGO_BIN_EXE_smtpd"));
    assert_eq!(dialogue, ours_from_theirs(&read_lines(FIXTURE)));
    assert_eq!(log, read_lines(FIXTURE_LOG));
}

#[test]
fn refused_connections_and_a_421_greeting_disable_the_route_and_retry() {
    // Nobody listens on this port.
    let port = free_port();
    let d = Daemon::start(&config(port), &[]);
    submit(&d, "alice@src.test", &["bob@dst.test"], BODY2);
    d.wait_log(|l| l.ends_with("mta error reason=IO Error: Connection refused"));
    d.wait_log(|l| l == "smtp-out: Disabling route [] <-> 127.0.0.1 (localhost) for 15s");
    let l = d.wait_log(|l| l.contains("mta delivery"));
    assert!(
        l.contains("result=\"TempFail\" stat=\"Network error on destination MXs\""),
        "{l}"
    );
    // Still queued for the next try.
    let show = ctl(&d, "smtpctl", &["show", "queue"], "", None);
    let text = String::from_utf8_lossy(&show.stdout);
    assert!(text.contains("bob@dst.test"), "{text}");

    let rec = recorder(Mode::Busy);
    let d = Daemon::start(&config(rec.port), &[]);
    submit(&d, "alice@src.test", &["bob@dst.test"], BODY2);
    d.wait_log(|l| l.ends_with("mta error reason=BANNER rejected: 421 4.3.2 busy"));
    d.wait_log(|l| l == "smtp-out: Disabling route [] <-> 127.0.0.1 (localhost) for 15s");
}

/// Interoperability: our relay client delivering into Debian's OpenSMTPD 6.8 (its session
/// accepts our dialogue, its mda gets the message as we queued it).
#[test]
fn relaying_into_the_real_opensmtpd() {
    if !require_real("relaying into the real OpenSMTPD") {
        return;
    }
    let _lock = real_lock();
    use std::os::unix::fs::PermissionsExt;
    let drop = tempfile::tempdir().unwrap();
    std::fs::set_permissions(drop.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let theirs = Daemon::start_with(
        REAL_SMTPD,
        &format!(
            "listen on 127.0.0.1 port @PORT@\n\
             action \"l\" mda \"cat > {}/got\" user nobody\n\
             match from any for any action \"l\"\n",
            drop.path().display()
        ),
        &[],
    );
    let ours = Daemon::start(
        &format!(
            "listen on 127.0.0.1 port @PORT@\n\
             action \"r\" relay host smtp://127.0.0.1:{}\n\
             match from any for any action \"r\"\n",
            theirs.port
        ),
        &[],
    );
    // A system user, as their local action needs one.
    submit(&ours, "alice@src.test", &["root@dst.test"], BODY1);
    let l = ours.wait_log(|l| l.contains("mta delivery"));
    assert!(
        l.contains("result=\"Ok\" stat=\"250 2.0.0 ")
            && l.ends_with(" Message accepted for delivery\""),
        "{l}"
    );
    theirs.wait_log(|l| l.contains("mda delivery") && l.contains("result=Ok"));
    let got = std::fs::read_to_string(drop.path().join("got")).unwrap_or_default();
    assert!(got.contains("Subject: hi\n"), "{got}");
    assert!(got.contains("\n.dot line\nbody\u{e9}\n"), "{got}");
    // Their Received line names our EHLO.
    assert!(
        got.contains(&format!(
            "Received: from {} (localhost [127.0.0.1])",
            hostname()
        )),
        "{got}"
    );
    ours.wait_log(|l| l.contains("mta disconnected reason=quit messages=1"));
}

/// After a refused EHLO, HELO with the same name, then the same transaction: as 6.8 does
/// (checked live when it is installed).
#[test]
fn helo_after_a_refused_ehlo_as_opensmtpd() {
    let run = |bin: &str| {
        let rec = recorder(Mode::NoEhlo);
        let d = Daemon::start_with(bin, &config(rec.port), &[]);
        submit(&d, "alice@src.test", &["bob@dst.test"], BODY2);
        let c = rec.wait(Duration::from_secs(30), "a message", |c| {
            c.iter().flat_map(|c| &c.lines).any(|(_, l)| l == ".\r\n")
        });
        d.wait_log(|l| l.contains("mta delivery") && l.contains("result=\"Ok\""));
        let cmds: Vec<String> = c[0]
            .lines
            .iter()
            .map(|(_, l)| l.trim_end().replace(&hostname(), "@HOST@"))
            .take(5)
            .collect();
        cmds
    };
    let want = [
        "EHLO @HOST@",
        "HELO @HOST@",
        "MAIL FROM:<alice@src.test>",
        "RCPT TO:<bob@dst.test>",
        "DATA",
    ];
    if std::env::var_os("RSMTPD_SKIP_REAL").is_none() && require_real("the HELO fallback of 6.8") {
        let _lock = real_lock();
        assert_eq!(run(REAL_SMTPD), want);
    }
    assert_eq!(run(env!("CARGO_BIN_EXE_smtpd")), want);
}

/// `src <t>` binds the connection to the table's address and `helo-src <t>` names it in EHLO,
/// as 6.8 does (checked live when it is installed): from 127.0.0.3 with `EHLO three.test`,
/// the `mta delivery` line with `source="127.0.0.3"`. A source table with no address of the
/// destination's family leaves no route (6.8: `Address family mismatch on destination MXs`,
/// retried).
#[test]
fn src_and_helo_src_bind_the_source_and_name_it() {
    let run = |bin: &str| {
        let rec = recorder(Mode::Plain);
        let conf = format!(
            "table srcs {{ 127.0.0.3 }}\n\
             table helos {{ 127.0.0.3 = three.test }}\n\
             table six {{ ::1 }}\n\
             listen on 127.0.0.1 port @PORT@\n\
             action \"r\" relay host smtp://127.0.0.1:{p} src <srcs> helo-src <helos>\n\
             action \"r6\" relay host smtp://127.0.0.1:{p} src <six>\n\
             match from any for domain six.test action \"r6\"\n\
             match from any for any action \"r\"\n",
            p = rec.port
        );
        let d = Daemon::start_with(bin, &conf, &[]);
        submit(&d, "alice@src.test", &["bob@dst.test"], BODY2);
        let c = rec.wait(Duration::from_secs(30), "a message", |c| {
            c.iter().flat_map(|c| &c.lines).any(|(_, l)| l == ".\r\n")
        });
        let l = d.wait_log(|l| l.contains("mta delivery") && l.contains("bob@dst.test"));
        assert!(l.contains("source=\"127.0.0.3\""), "{bin}: {l}");
        assert!(l.contains("result=\"Ok\""), "{bin}: {l}");
        submit(&d, "alice@src.test", &["carol@six.test"], BODY2);
        let l = d.wait_log(|l| l.contains("mta delivery") && l.contains("carol@six.test"));
        assert!(l.contains("result=\"TempFail\""), "{bin}: {l}");
        assert!(
            l.contains("relay=\"127.0.0.1\"")
                && l.contains("stat=\"Address family mismatch on destination MXs\""),
            "{bin}: {l}"
        );
        (c[0].peer.clone(), c[0].lines[0].1.trim_end().to_string())
    };
    let want = ("127.0.0.3".to_string(), "EHLO three.test".to_string());
    if std::env::var_os("RSMTPD_SKIP_REAL").is_none() && require_real("src and helo-src of 6.8") {
        let _lock = real_lock();
        assert_eq!(run(REAL_SMTPD), want);
    }
    assert_eq!(run(env!("CARGO_BIN_EXE_smtpd")), want);
}

/// Opportunistic STARTTLS whose handshake breaks: 6.8 logs `opportunistic TLS failed,
/// downgrading to plain` and connects again with `smtp+notls://` under the same session id,
/// without STARTTLS; so do we (checked live when it is installed).
#[test]
fn a_broken_opportunistic_handshake_downgrades_to_plain() {
    let run = |bin: &str| {
        let rec = recorder(Mode::BrokenTls);
        let d = Daemon::start_with(bin, &config(rec.port), &[]);
        submit(&d, "alice@src.test", &["bob@dst.test"], BODY2);
        let c = rec.wait(Duration::from_secs(60), "the relay sessions", |c| {
            c.iter().flat_map(|c| &c.lines).any(|(_, l)| l == ".\r\n")
        });
        d.wait_log(|l| l.contains("mta delivery") && l.contains("result=\"Ok\""));
        let cmds: Vec<Vec<String>> = c
            .iter()
            .map(|c| {
                c.lines
                    .iter()
                    .map(|(_, l)| l.trim_end().replace(&hostname(), "@HOST@"))
                    .take(3)
                    .collect()
            })
            .collect();
        let re = regex::Regex::new(r"[0-9a-f]{16}").unwrap();
        let log: Vec<String> = d
            .log()
            .iter()
            .filter(|l| {
                l.contains("mta connect") || l.contains("opportunistic") || l.contains("mta error")
            })
            .map(|l| {
                re.replace_all(l, "ID")
                    .replace(&format!(":{} ", rec.port), ":PORT ")
            })
            .collect();
        (cmds, log)
    };
    let want_cmds = vec![
        vec!["EHLO @HOST@".to_string(), "STARTTLS".to_string()],
        vec![
            "EHLO @HOST@".to_string(),
            "MAIL FROM:<alice@src.test>".to_string(),
            "RCPT TO:<bob@dst.test>".to_string(),
        ],
    ];
    let want_log = vec![
        "ID mta connecting address=smtp://127.0.0.1:PORT host=localhost".to_string(),
        "ID mta connected".to_string(),
        "smtp-out: Error on session ID: opportunistic TLS failed, downgrading to plain".to_string(),
        "ID mta connecting address=smtp+notls://127.0.0.1:PORT host=localhost".to_string(),
        "ID mta connected".to_string(),
    ];
    if std::env::var_os("RSMTPD_SKIP_REAL").is_none() && require_real("the TLS downgrade of 6.8") {
        let _lock = real_lock();
        assert_eq!(run(REAL_SMTPD), (want_cmds.clone(), want_log.clone()));
    }
    assert_eq!(run(env!("CARGO_BIN_EXE_smtpd")), (want_cmds, want_log));
}

/// `smtpctl show hoststats`: each destination domain's last result, `DOMAIN|TIME|TEXT`, as
/// 6.8 prints it (checked live when it is installed): the refused recipient's reply for a
/// domain whose last recipient was refused, the accepted message's for the other.
#[test]
fn show_hoststats_as_opensmtpd() {
    let run = |bin: &str| {
        let rec = recorder(Mode::Plain);
        let d = Daemon::start_with(bin, &config(rec.port), &[]);
        submit(&d, "alice@src.test", &["bob@dst.test"], BODY2);
        d.wait_log(|l| l.contains("mta delivery") && l.contains("bob@dst.test"));
        submit(&d, "alice@src.test", &["bad@other.test"], BODY2);
        d.wait_log(|l| l.contains("mta delivery") && l.contains("bad@other.test"));
        let ctl_bin = if bin == REAL_SMTPD {
            std::path::PathBuf::from("/usr/sbin/smtpctl")
        } else {
            smtpctl()
        };
        let out = ctl_with(&ctl_bin, &d, "smtpctl", &["show", "hoststats"], "", None);
        assert!(out.status.success(), "{bin}: {out:?}");
        let re = regex::Regex::new(r"\|[0-9]{10}\|").unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| re.replace(l, "|TIME|").to_string())
            .collect::<Vec<_>>()
    };
    let want = [
        "dst.test|TIME|250 2.0.0 queued as X",
        "other.test|TIME|550 5.1.1 no such user",
    ];
    if std::env::var_os("RSMTPD_SKIP_REAL").is_none() && require_real("show hoststats of 6.8") {
        let _lock = real_lock();
        assert_eq!(run(REAL_SMTPD), want);
    }
    assert_eq!(run(env!("CARGO_BIN_EXE_smtpd")), want);
}

/// `smtpctl show routes` and `resume route` after a `421` greeting disabled the route, as 6.8
/// prints and logs them (checked live when it is installed).
#[test]
fn show_routes_and_resume_route_as_opensmtpd() {
    let run = |bin: &str| {
        let rec = recorder(Mode::Busy);
        let d = Daemon::start_with(bin, &config(rec.port), &[]);
        submit(&d, "alice@src.test", &["bob@dst.test"], BODY2);
        d.wait_log(|l| l.starts_with("smtp-out: Disabling route [] <-> 127.0.0.1"));
        let ctl_bin = if bin == REAL_SMTPD {
            std::path::PathBuf::from("/usr/sbin/smtpctl")
        } else {
            smtpctl()
        };
        let show = || {
            let out = ctl_with(&ctl_bin, &d, "smtpctl", &["show", "routes"], "", None);
            assert!(out.status.success(), "{bin}: {out:?}");
            let re = regex::Regex::new(r"timeout=[0-9]+s").unwrap();
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(|l| re.replace(l, "timeout=Ts").to_string())
                .collect::<Vec<_>>()
        };
        let disabled = show();
        let id = disabled
            .first()
            .and_then(|l| l.split('.').next())
            .unwrap_or("0")
            .to_string();
        let out = ctl_with(&ctl_bin, &d, "smtpctl", &["resume", "route", &id], "", None);
        assert!(out.status.success(), "{bin}: {out:?}");
        let l = d.wait_log(|l| l.contains("per admin request"));
        (disabled, l)
    };
    let want = (
        vec![
            "1. [] <-> 127.0.0.1 (localhost) ND-- nconn=0 nerror=0 penalty=1 timeout=Ts"
                .to_string(),
        ],
        "smtp-out: Enabling route [] <-> 127.0.0.1 (localhost) per admin request".to_string(),
    );
    if std::env::var_os("RSMTPD_SKIP_REAL").is_none() && require_real("show routes of 6.8") {
        let _lock = real_lock();
        assert_eq!(run(REAL_SMTPD), want);
    }
    assert_eq!(run(env!("CARGO_BIN_EXE_smtpd")), want);
}

/// Beyond 6.8, on purpose: to a server that offers PIPELINING, MAIL, RCPT and DATA go in one
/// write (seen before the late MAIL reply), and MAIL carries SIZE= and BODY=8BITMIME.
#[test]
fn pipelining_size_and_8bitmime_when_offered() {
    let rec = recorder(Mode::Pipelining);
    let d = Daemon::start(&config(rec.port), &[]);
    submit(
        &d,
        "alice@src.test",
        &["bob@dst.test", "carol@dst.test"],
        BODY1,
    );
    let l = d.wait_log(|l| l.contains("mta delivery") && l.contains("carol"));
    assert!(l.contains("result=\"Ok\""), "{l}");
    let c = rec.conns();
    let lines = &c[0].lines;
    let at = |p: &str| {
        lines
            .iter()
            .find(|(_, l)| l.starts_with(p))
            .map(|(t, l)| (*t, l.clone()))
            .unwrap_or_else(|| panic!("no {p}: {lines:?}"))
    };
    let (_, mail) = at("MAIL");
    assert!(
        mail.starts_with("MAIL FROM:<alice@src.test> SIZE=")
            && mail.ends_with(" BODY=8BITMIME\r\n"),
        "{mail}"
    );
    // RCPT and DATA had arrived before the MAIL reply went out.
    at("(more commands before the MAIL reply: true)");
}

/// Nothing answered 250 is lost if the daemon is killed mid-relay: the message in flight is
/// sent again after the restart (a duplicate for the remote that had it, as SMTP allows).
#[test]
fn a_kill_mid_relay_loses_nothing() {
    let rec = recorder(Mode::Hang);
    let mut d = Daemon::start(&config(rec.port), &[]);
    submit(&d, "alice@src.test", &["bob@dst.test"], BODY2);
    // The remote has the data and has not answered the dot.
    rec.wait(Duration::from_secs(30), "a message", |c| {
        c.iter().flat_map(|c| &c.lines).any(|(_, l)| l == ".\r\n")
    });
    d.kill9();
    rec.set_hang(false);
    let d2 = d.restart();
    let l = d2.wait_log(|l| l.contains("mta delivery"));
    assert!(
        l.contains("to=<bob@dst.test>") && l.contains("result=\"Ok\""),
        "{l}"
    );
    let dots = rec
        .conns()
        .iter()
        .flat_map(|c| c.lines.clone())
        .filter(|(_, l)| l == ".\r\n")
        .count();
    assert_eq!(dots, 2, "sent once before the kill, once after");
}
