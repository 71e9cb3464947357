//! A `250` after DATA only once the message is on stable storage, checked on the daemon's own
//! system calls: it runs under `strace -f -y`, several sessions send messages at once, and for
//! every message acknowledged the trace must show, before the `250 2.0.0 MSGID` is written, its
//! commit record written to `incoming/commit.N`, then one barrier after its last write and the
//! record (a `syncfs`, or fsyncs of the message file, both envelope files, `incoming/MSGID`,
//! `incoming/` and the record's file: `SMTPD_COMMIT=fsync`; the default picks per round), then
//! the rename into `queue/XX/MSGID`; and the record's file not written again before a barrier
//! after the rename (`syncfs`, or `queue/XX` synced). `SMTPD_COMMIT=single` keeps two barriers:
//! the files and directory synced, the rename, `queue/XX` synced, the 250. The SIGKILL test
//! (crash_no_loss) shows that nothing acknowledged is lost when the process dies, crash_states
//! what a start makes of each state a power cut can leave; this one shows the order of writes and
//! barriers that makes those states the only ones possible.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use crate::common::*;

const SESSIONS: usize = 4;
const PER_SESSION: usize = 5;

fn strace_available() -> bool {
    Command::new("strace")
        .arg("-V")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// One session sending `PER_SESSION` messages; the msgids of their 250s.
fn send_all(addr: SocketAddr, s: usize) -> Vec<String> {
    let mut c = Client::connect(addr);
    c.set_read_timeout(Duration::from_secs(60));
    assert!(c.reply().starts_with("220"));
    assert!(c.cmd("EHLO order.test").starts_with("250"));
    let mut ids = Vec::new();
    for m in 0..PER_SESSION {
        assert!(c.cmd("MAIL FROM:<a@example.net>").starts_with("250"));
        assert!(c.cmd("RCPT TO:<foo@example.org>").starts_with("250"));
        assert!(c.cmd("RCPT TO:<bar@example.org>").starts_with("250"));
        assert!(c.cmd("DATA").starts_with("354"));
        let r = c.cmd(&format!("Subject: {s}-{m}\r\n\r\nbody {s}-{m}\r\n."));
        // "250 2.0.0 MSGID Message accepted for delivery"
        let id = r.split_whitespace().nth(2).unwrap_or("").to_string();
        assert!(r.starts_with("250 2.0.0 ") && id.len() == 8, "{r}");
        ids.push(id);
    }
    let _ = c.cmd("QUIT");
    ids
}

/// The trace as one completed call per line: strace -f splits a call that another thread's
/// call interrupted into `<unfinished ...>` and `<... NAME resumed>`; they are joined here, at
/// the place of the completion (what happened after a call returned comes after its line).
fn completed_calls(trace: &str) -> Vec<String> {
    let mut open: HashMap<String, String> = HashMap::new();
    let mut out = Vec::new();
    for line in trace.lines() {
        let (pid, rest) = line.split_once(' ').unwrap_or(("", line));
        let rest = rest.trim_start();
        if let Some(head) = rest.strip_suffix("<unfinished ...>") {
            open.insert(pid.to_string(), head.to_string());
        } else if rest.starts_with("<... ") {
            let tail = rest.split_once("resumed>").map(|x| x.1).unwrap_or("");
            let head = open.remove(pid).unwrap_or_default();
            out.push(format!("{head}{tail}"));
        } else {
            out.push(rest.to_string());
        }
    }
    out
}

fn ok(call: &str) -> bool {
    call.trim_end().ends_with("= 0")
}

/// Index of the first line at or after `from` that satisfies `pred`.
fn find(calls: &[String], from: usize, pred: impl Fn(&str) -> bool) -> Option<usize> {
    calls[from..].iter().position(|c| pred(c)).map(|i| i + from)
}

fn check_order(mode: Option<&str>) {
    let trace_file = tempfile::NamedTempFile::new().expect("trace file");
    let trace_path = trace_file.path().to_str().expect("utf-8").to_string();
    let mut prefix = vec![
        "strace",
        "-f",
        "-y",
        "-s",
        "2000",
        "-e",
        "trace=fsync,fdatasync,syncfs,rename,renameat,renameat2,write,writev,pwrite64,sendto,sendmsg",
        "-o",
        &trace_path,
    ];
    let env;
    if let Some(m) = mode {
        env = format!("SMTPD_COMMIT={m}");
        prefix.extend(["-E", &env]);
    }
    let uid = nix::unistd::geteuid().as_raw();
    let config = format!(
        "listen on 127.0.0.1 port @PORT@\n\
         table users {{ foo = \"{uid}:{uid}:@DIR@\", bar = \"{uid}:{uid}:@DIR@\" }}\n\
         action \"mail\" maildir \"@DIR@/Maildir\" userbase <users>\n\
         match from any for domain \"example.org\" action \"mail\"\n"
    );
    let mut d = Daemon::launch(
        &prefix,
        env!("CARGO_BIN_EXE_smtpd"),
        &config,
        &["-P", "mda"],
        Some("127.0.0.1:1"),
    );
    let addr: SocketAddr = format!("127.0.0.1:{}", d.port).parse().expect("addr");
    let senders: Vec<_> = (0..SESSIONS)
        .map(|s| std::thread::spawn(move || send_all(addr, s)))
        .collect();
    let ids: Vec<String> = senders
        .into_iter()
        .flat_map(|t| t.join().expect("sender"))
        .collect();
    // strace 6.1 detaches on SIGTERM and leaves its tracee running: end smtpd itself first.
    let children = format!("/proc/{0}/task/{0}/children", d.pid());
    for pid in std::fs::read_to_string(children)
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse::<i32>().ok())
    {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    d.stop();
    let trace = std::fs::read_to_string(trace_file.path()).expect("read trace");
    let calls = completed_calls(&trace);
    for id in &ids {
        match mode {
            Some("single") => check_two_barriers(&calls, id),
            _ => check_one_barrier(&calls, id, mode),
        }
    }
    eprintln!(
        "durable order ({}): {} messages, every 250 after its barrier",
        mode.unwrap_or("default"),
        ids.len()
    );
}

fn is_sync(c: &str) -> bool {
    (c.starts_with("fsync(") || c.starts_with("fdatasync(")) && ok(c)
}

fn is_syncfs(c: &str) -> bool {
    c.starts_with("syncfs(") && ok(c)
}

/// The fd's path as `strace -y` prints it in the call's first argument.
fn fd_path(call: &str) -> &str {
    call.split_once('<')
        .and_then(|(_, rest)| rest.split_once('>'))
        .map_or("", |(p, _)| p)
}

fn positions(calls: &[String], id: &str) -> (usize, usize, usize) {
    let acked = find(calls, 0, |c| {
        (c.starts_with("write") || c.starts_with("send")) && c.contains(&format!("250 2.0.0 {id} "))
    })
    .unwrap_or_else(|| panic!("{id}: no 250 in the trace"));
    let incoming = format!("/incoming/{id}");
    let rename = find(calls, 0, |c| {
        c.starts_with("rename") && c.contains(&format!("{incoming}\", ")) && ok(c)
    })
    .unwrap_or_else(|| panic!("{id}: no rename out of incoming/"));
    assert!(
        calls[rename].contains(&format!("/{}/{id}\"", &id[..2])),
        "{id}: {}",
        calls[rename]
    );
    assert!(rename < acked, "{id}: renamed after its 250");
    // The writes end before the commit is queued.
    let last_write = calls[..rename]
        .iter()
        .rposition(|c| c.starts_with("write") && c.contains(&format!("{incoming}/message>")))
        .unwrap_or_else(|| panic!("{id}: message file never written"));
    (last_write, rename, acked)
}

/// Whether `calls` synced the path that ends with `suffix` + `>` (an fd path of `strace -y`).
fn synced(calls: &[String], path_end: &str) -> bool {
    calls
        .iter()
        .any(|c| is_sync(c) && fd_path(c).ends_with(path_end))
}

/// The envelope files of `incoming/ID` synced in `calls`.
fn envelopes_synced(calls: &[String], id: &str) -> usize {
    let dir = format!("/incoming/{id}/");
    calls
        .iter()
        .filter(|c| is_sync(c))
        .filter_map(|c| fd_path(c).split_once(dir.as_str()).map(|x| x.1))
        .filter(|name| name.len() == 16 && name.bytes().all(|b| b.is_ascii_hexdigit()))
        .collect::<std::collections::HashSet<_>>()
        .len()
}

/// The group committer: the message's commit record is written, then one barrier covers the
/// message file, its envelopes, its directory, `incoming/` and the record, then the rename, then
/// the 250; and the record is not written over before a barrier has made the rename durable.
fn check_one_barrier(calls: &[String], id: &str, mode: Option<&str>) {
    let (last_write, rename, _) = positions(calls, id);
    let record = find(calls, 0, |c| {
        c.starts_with("pwrite64(")
            && fd_path(c).contains("/incoming/commit.")
            && c.contains(&format!("rsmtpd-commit-1 {id} "))
            && !c.contains("= -1")
    })
    .unwrap_or_else(|| panic!("{id}: no commit record written"));
    assert!(record < rename, "{id}: record written after the rename");
    let log = fd_path(&calls[record]).to_string();
    let barrier = &calls[last_write.max(record)..rename];
    let by_syncfs = barrier.iter().any(|c| is_syncfs(c));
    let incoming = format!("/incoming/{id}");
    let by_fsync = synced(barrier, &format!("{incoming}/message"))
        && envelopes_synced(barrier, id) == 2
        && synced(barrier, &incoming)
        && synced(barrier, "/incoming")
        && synced(barrier, &log);
    let durable = match mode {
        Some("syncfs") => by_syncfs,
        Some("fsync") => by_fsync,
        _ => by_syncfs || by_fsync,
    };
    assert!(
        durable,
        "{id}: no barrier between its last write and record and its rename (syncfs {by_syncfs}, \
         fsyncs: message {}, envelopes {}, dir {}, incoming {}, record {})",
        synced(barrier, &format!("{incoming}/message")),
        envelopes_synced(barrier, id),
        synced(barrier, &incoming),
        synced(barrier, "/incoming"),
        synced(barrier, &log)
    );
    if let Some(next) = find(calls, record + 1, |c| {
        c.starts_with("pwrite64(") && fd_path(c) == log
    }) {
        assert!(
            next > rename,
            "{id}: its record written over before its rename"
        );
        let between = &calls[rename..next];
        let bucket = format!("/queue/{}", &id[..2]);
        assert!(
            between.iter().any(|c| is_syncfs(c)) || synced(between, &bucket),
            "{id}: its record written over before its rename was durable"
        );
    }
}

/// `SMTPD_COMMIT=single`: each file of `incoming/MSGID/` and that directory synced, then the
/// rename, then `queue/XX` synced, then the 250.
fn check_two_barriers(calls: &[String], id: &str) {
    let (last_write, rename, acked) = positions(calls, id);
    let before = &calls[last_write..rename];
    let incoming = format!("/incoming/{id}");
    assert!(
        synced(before, &format!("{incoming}/message"))
            && envelopes_synced(before, id) == 2
            && synced(before, &incoming),
        "{id}: data not durable before the rename"
    );
    assert!(
        synced(&calls[rename..acked], &format!("/queue/{}", &id[..2])),
        "{id}: rename not durable before the 250"
    );
}

#[test]
fn acknowledged_only_after_one_barrier_covers_the_message_and_its_commit_record() {
    if !require(strace_available(), "strace is not installed") {
        return;
    }
    check_order(None);
}

#[test]
fn fsync_mode_syncs_the_files_directories_and_record_before_the_rename_and_250() {
    if !require(strace_available(), "strace is not installed") {
        return;
    }
    check_order(Some("fsync"));
}

#[test]
fn syncfs_mode_acknowledges_after_one_syncfs_and_keeps_the_record_until_the_rename_is_durable() {
    if !require(strace_available(), "strace is not installed") {
        return;
    }
    check_order(Some("syncfs"));
}

#[test]
fn single_mode_acknowledges_only_after_the_data_and_the_rename_are_synced() {
    if !require(strace_available(), "strace is not installed") {
        return;
    }
    check_order(Some("single"));
}
