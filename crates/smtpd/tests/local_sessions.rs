//! Sessions the daemon opens on itself log as OpenSMTPD's: a bounce (injected as bounce.c sends
//! it: the server's host name as the client's, `MAIL FROM: <>`, `RCPT TO: <...>`, `QUIT` even
//! after a refusal) and a `sendmail` submission through smtpctl; and so do control clients as
//! they go (`-v`). The session lines, the commands and replies of `-T smtp` and the control
//! lines, normalized, must be the real OpenSMTPD 6.8's, run on the same scenario when it can be
//! (installed, and we are root).

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use common::*;

const USER_UID: u32 = 1000;

fn config() -> String {
    format!(
        "listen on 127.0.0.1 port @PORT@\n\
         table users {{ bob = \"{USER_UID}:{USER_UID}:@DIR@/bob\", fail = \"{USER_UID}:{USER_UID}:@DIR@/bob\" }}\n\
         action \"broken\" mda \"echo no such mailbox; exit 1\" userbase <users>\n\
         action \"mail\" maildir \"@DIR@/bob/Maildir\" userbase <users>\n\
         match from any for rcpt-to \"fail@example.org\" action \"broken\"\n\
         match from any for domain \"example.org\" action \"mail\"\n"
    )
}

/// Bob's folder, which deliveries (as uid 1000) write into.
fn bob_dir(d: &Daemon) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(d.dir.path(), std::fs::Permissions::from_mode(0o711));
    let p = d.dir.path().join("bob");
    std::fs::create_dir_all(&p).expect("mkdir");
    nix::unistd::chown(
        &p,
        Some(nix::unistd::Uid::from_raw(USER_UID)),
        Some(nix::unistd::Gid::from_raw(USER_UID)),
    )
    .expect("chown");
}

/// A message from `from` to fail@, whose mda fails: it bounces to `from`.
fn doomed(d: &Daemon, from: &str) {
    let addr: SocketAddr = format!("127.0.0.1:{}", d.port).parse().expect("addr");
    let mail = format!("MAIL FROM:<{from}>");
    let r = converse(
        "127.0.0.1",
        addr,
        &[
            "HELO client",
            &mail,
            "RCPT TO:<fail@example.org>",
            "DATA",
            "Subject: doomed\r\n\r\nthis will bounce\r\n.",
            "QUIT",
        ],
    );
    assert!(r[5].starts_with("250 2.0.0 "), "{r:?}");
}

/// Waits until `n` sessions have ended with `QUIT`.
fn sessions_done(d: &Daemon, n: usize) {
    sessions_done_with(d, n, " smtp disconnected reason=quit");
}

/// Each session's lines, in the order the sessions started: its `smtp` log lines (ids, message
/// and envelope ids, and the size of bounces, whose MIME boundary is a random number, replaced)
/// then its `-T smtp` commands and replies (the session's pointer and queue ids replaced; the
/// message lines left out, they carry dates).
fn sessions(log: &[String]) -> Vec<Vec<String>> {
    let hex = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit());
    let mut order: Vec<String> = Vec::new();
    let mut lines: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let normalized = normalized_session_log(log);
    let ids = log.iter().filter(|l| {
        l.len() > 17
            && hex(&l[..16])
            && (l[17..].starts_with("smtp ") || l[17..].starts_with("filters "))
    });
    for (raw, line) in ids.zip(normalized) {
        let id = raw[..16].to_string();
        if !lines.contains_key(&id) {
            order.push(id.clone());
        }
        let line = line
            .split(' ')
            .map(|w| match w.strip_prefix("size=") {
                Some(_) if line.contains("msgid=") && raw.contains(" proto=ESMTP") => {
                    "size=SIZE".to_string()
                }
                _ => w.to_string(),
            })
            .collect::<Vec<_>>()
            .join(" ");
        lines.entry(id).or_default().push(line);
    }
    // "smtp: 0xPTR: <<< CMD" / ">>> REPLY": the pointer is the session id's low 48 bits in ours,
    // a heap address in OpenSMTPD, which malloc hands to the next session once one is freed:
    // sessions are matched by the order they connected instead.
    let mut by_ptr: BTreeMap<String, usize> = BTreeMap::new();
    let mut traces: Vec<Vec<String>> = Vec::new();
    for l in log {
        let Some(rest) = l.strip_prefix("smtp: 0x") else {
            continue;
        };
        let Some((ptr, what)) = rest.split_once(": ") else {
            continue;
        };
        if what.starts_with("connected to listener ") {
            by_ptr.insert(ptr.to_string(), traces.len());
            traces.push(Vec::new());
            continue;
        }
        if !(what.starts_with("<<< ") || what.starts_with(">>> ")) {
            continue;
        }
        let what = match what.strip_prefix(">>> 250 2.0.0 ") {
            Some(r) if r.ends_with(" Message accepted for delivery") => {
                ">>> 250 2.0.0 MSGID Message accepted for delivery".to_string()
            }
            _ => what.to_string(),
        };
        if let Some(t) = by_ptr.get(ptr).and_then(|&i| traces.get_mut(i)) {
            t.push(what);
        }
    }
    order
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let mut v = lines.remove(id).unwrap_or_default();
            if let Some(t) = traces.get_mut(i) {
                v.append(t);
            }
            v
        })
        .collect()
}

/// Two bounces (one to a sender the rules accept, one to a sender they refuse) and a sendmail
/// submission, on `bin`.
fn scenario(bin: &str, smtpctl: PathBuf) -> Vec<Vec<String>> {
    let d = if bin == REAL_SMTPD {
        Daemon::start_with(bin, &config(), &["-T", "smtp"])
    } else {
        Daemon::start(&config(), &["-T", "smtp"])
    };
    bob_dir(&d);
    doomed(&d, "bob@example.org");
    sessions_done(&d, 2);
    doomed(&d, "nobody@example.org");
    sessions_done(&d, 4);
    let out = ctl_with(
        &smtpctl,
        &d,
        "sendmail",
        &["-F", "Bob", "-f", "bob@example.org", "bob@example.org"],
        "Subject: hi\n\nhello\n",
        None,
    );
    assert!(out.status.success(), "{out:?}");
    sessions_done(&d, 5);
    for args in [&["show", "stats"][..], &["show", "queue"][..]] {
        let out = ctl_with(&smtpctl, &d, "smtpctl", args, "", None);
        assert!(out.status.success(), "{args:?}: {out:?}");
    }
    // The end of each control connection (sendmail's, then the two commands'), fd numbers
    // replaced: theirs are their control process's, ours our daemon's.
    let control = |log: &[String]| -> Vec<String> {
        log.iter()
            .filter(|l| l.starts_with("debug: control -> ") || l.starts_with("debug: clearing p="))
            .map(|l| match l.split_once(", fd=") {
                Some((head, tail)) => {
                    let pid = tail.split_once(',').map_or("", |(_, p)| p);
                    format!("{head}, fd=FD,{pid}")
                }
                None => l.clone(),
            })
            .collect()
    };
    d.wait_log(|_| control(&d.log()).len() >= 6);
    std::thread::sleep(Duration::from_millis(200));
    let mut out = sessions(&d.log());
    out.push(control(&d.log()));
    out
}

#[test]
fn bounce_and_sendmail_sessions_log_as_opensmtpd() {
    if !require(
        nix::unistd::geteuid().is_root(),
        "deliveries as another user need root",
    ) {
        return;
    }
    let ours = scenario(env!("CARGO_BIN_EXE_smtpd"), smtpctl());
    let bounce = &ours[1];
    let want_bounce: Vec<String> = [
        "smtp connected address=local host=HOST",
        "smtp message msgid=MSGID size=SIZE nrcpt=1 proto=ESMTP",
        "smtp envelope evpid=EVPID from=<> to=<bob@example.org>",
        "smtp disconnected reason=quit",
        ">>> 220 HOST ESMTP OpenSMTPD",
        "<<< EHLO HOST",
        ">>> 250-HOST Hello HOST [local], pleased to meet you",
        ">>> 250-8BITMIME",
        ">>> 250-ENHANCEDSTATUSCODES",
        ">>> 250-SIZE 36700160",
        ">>> 250 HELP",
        "<<< MAIL FROM: <>",
        ">>> 250 2.0.0 Ok",
        "<<< RCPT TO: <bob@example.org>",
        ">>> 250 2.1.5 Destination address valid: Recipient ok",
        "<<< DATA",
        ">>> 354 Enter mail, end with \".\" on a line by itself",
        ">>> 250 2.0.0 MSGID Message accepted for delivery",
        "<<< QUIT",
        ">>> 221 2.0.0 Bye",
    ]
    .iter()
    .map(|l| l.replace("HOST", &hostname()))
    .collect();
    assert_eq!(bounce, &want_bounce, "ours: {ours:#?}");
    let want_control: Vec<String> = (0..3)
        .flat_map(|_| {
            [
                "debug: control -> client: pipe closed",
                "debug: clearing p=client, fd=FD, pid=0",
            ]
        })
        .map(String::from)
        .collect();
    assert_eq!(ours[5], want_control);
    let refused = &ours[3];
    assert!(
        refused.contains(
            &"smtp failed-command command=\"RCPT TO: <nobody@example.org>\" result=\"550 Invalid recipient: <nobody@example.org>\""
                .to_string()
        ) && refused.contains(&"smtp disconnected reason=quit".to_string()),
        "{refused:#?}"
    );
    if !require_real("compared with the expected bounce session only, not with OpenSMTPD") {
        return;
    }
    let _lock = real_lock();
    let real = scenario(REAL_SMTPD, PathBuf::from("/usr/sbin/smtpctl"));
    assert_eq!(ours, real);
}

/// `sendmail -R`/`-N` on the socket listener OpenSMTPD makes when the config has no `listen on
/// socket`: it offers no DSN, so it refuses their parameters; what smtpctl prints, and the
/// session's lines.
fn dsn_refused(bin: &str, smtpctl: PathBuf) -> Vec<String> {
    let config = "listen on 127.0.0.1 port @PORT@\n\
                  action \"mail\" maildir \"@DIR@/%{user.username}\"\n\
                  match from local for local action \"mail\"\n";
    let d = if bin == REAL_SMTPD {
        Daemon::start_with(bin, config, &[])
    } else {
        Daemon::start(config, &[])
    };
    let mut v = Vec::new();
    for args in [&["-R", "hdrs", "root"][..], &["-N", "never", "root"][..]] {
        let out = ctl_with(&smtpctl, &d, "sendmail", args, "Subject: x\n\nhi\n", None);
        v.push(format!(
            "{args:?}: rc={:?} err={:?}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    sessions_done_with(&d, 2, "reason=disconnect");
    v.extend(normalized_session_log(&d.log()));
    v
}

/// Waits until `n` sessions have ended with a line ending in `reason`.
fn sessions_done_with(d: &Daemon, n: usize, reason: &str) {
    d.wait_log_for(Duration::from_secs(30), |_| {
        d.log().iter().filter(|l| l.ends_with(reason)).count() >= n
    });
}

#[test]
fn the_default_socket_listener_refuses_dsn_parameters() {
    let ours = dsn_refused(env!("CARGO_BIN_EXE_smtpd"), smtpctl());
    let h = hostname();
    // sendmail's sender is whoever runs it: root in CI, the user in a run by hand.
    let me = nix::unistd::User::from_uid(nix::unistd::geteuid())
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| "root".into());
    let want: Vec<String> = [
        "[\"-R\", \"hdrs\", \"root\"]: rc=Some(70) err=\"sendmail: command failed: 503 5.5.4 Invalid command arguments: Unsupported option RET=hdrs\\n\\n\"".to_string(),
        "[\"-N\", \"never\", \"root\"]: rc=Some(70) err=\"sendmail: command failed: 503 Unsupported option NOTIFY=never\\n\\n\"".to_string(),
        format!("smtp connected address=local host={h}"),
        format!("smtp failed-command command=\"MAIL FROM:<{me}@{h}> RET=hdrs \" result=\"503 5.5.4 Invalid command arguments: Unsupported option RET=hdrs\""),
        "smtp disconnected reason=disconnect".to_string(),
        format!("smtp connected address=local host={h}"),
        format!("smtp failed-command command=\"RCPT TO:<root@{h}> NOTIFY=never\" result=\"503 Unsupported option NOTIFY=never\""),
        "smtp disconnected reason=disconnect".to_string(),
    ]
    .to_vec();
    assert_eq!(ours, want);
    if !require_real("the comparison with OpenSMTPD") {
        return;
    }
    let _lock = real_lock();
    let real = dsn_refused(REAL_SMTPD, PathBuf::from("/usr/sbin/smtpctl"));
    assert_eq!(real, want, "OpenSMTPD");
}
