//! A `250` after DATA only once the message is on stable storage, checked on the daemon's own
//! system calls: it runs under `strace -f -y`, several sessions send messages at once, and for
//! every message acknowledged the trace must show, before the `250 2.0.0 MSGID` is written,
//! each file of `incoming/MSGID/` and that directory synced, then the rename into
//! `queue/XX/MSGID`, then `queue/XX` synced (`SMTPD_COMMIT=fsync`), or a `syncfs` between the
//! data and the rename and another between the rename and the `250` (`syncfs`), or for each of
//! the two either of these (the default, which picks per round). The SIGKILL test
//! (crash_no_loss) shows that nothing acknowledged is lost when the process dies; this one shows
//! the order that makes the same hold when the machine loses power, which no test here can cut.

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
        "200",
        "-e",
        "trace=fsync,fdatasync,syncfs,rename,renameat,renameat2,write,writev,sendto,sendmsg",
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
    let is_sync = |c: &str| c.starts_with("fsync(") || c.starts_with("fdatasync(");
    for id in &ids {
        let acked = find(&calls, 0, |c| {
            c.starts_with("write") || c.starts_with("send")
        } && c.contains(&format!("250 2.0.0 {id} ")))
        .unwrap_or_else(|| panic!("{id}: no 250 in the trace"));
        let incoming = format!("/incoming/{id}");
        let queued = format!("/{}/{id}", &id[..2]);
        let rename = find(&calls, 0, |c| {
            c.starts_with("rename") && c.contains(&format!("{incoming}\", ")) && ok(c)
        })
        .unwrap_or_else(|| panic!("{id}: no rename out of incoming/"));
        assert!(
            calls[rename].contains(&format!("{queued}\"")),
            "{id}: {}",
            calls[rename]
        );
        assert!(rename < acked, "{id}: renamed after its 250");
        let before = &calls[..rename];
        let between = &calls[rename..acked];
        // A syncfs that completed after the message file was last written (the writes end
        // before the commit is queued) and before the rename.
        let last_write = before
            .iter()
            .rposition(|c| c.starts_with("write") && c.contains(&format!("{incoming}/message>")))
            .unwrap_or_else(|| panic!("{id}: message file never written"));
        let data_by_syncfs = before[last_write..]
            .iter()
            .any(|c| c.starts_with("syncfs(") && ok(c));
        let rename_by_syncfs = between.iter().any(|c| c.starts_with("syncfs(") && ok(c));
        // Or: the message file, both envelope files and the directory each synced before the
        // rename, and queue/XX synced after it.
        let synced_in = |suffix: &dyn Fn(&str) -> bool| {
            before.iter().filter(|c| is_sync(c) && ok(c)).any(|c| {
                c.split_once(incoming.as_str())
                    .is_some_and(|(_, rest)| suffix(rest))
            })
        };
        let envelopes = before
            .iter()
            .filter(|c| is_sync(c) && ok(c))
            .filter_map(|c| c.split_once(&format!("{incoming}/")).map(|x| x.1))
            .filter(|r| {
                r.len() > 17
                    && r.as_bytes()[16] == b'>'
                    && r[..16].bytes().all(|b| b.is_ascii_hexdigit())
            })
            .map(|r| &r[..16])
            .collect::<std::collections::HashSet<_>>();
        let data_by_fsync = synced_in(&|r| r.starts_with("/message>"))
            && synced_in(&|r| r.starts_with('>'))
            && envelopes.len() == 2;
        let bucket = format!("/queue/{}>", &id[..2]);
        let rename_by_fsync = between
            .iter()
            .any(|c| is_sync(c) && ok(c) && c.contains(&bucket));
        let (data, published) = match mode {
            Some("syncfs") => (data_by_syncfs, rename_by_syncfs),
            Some("fsync") => (data_by_fsync, rename_by_fsync),
            _ => (
                data_by_syncfs || data_by_fsync,
                rename_by_syncfs || rename_by_fsync,
            ),
        };
        assert!(
            data,
            "{id}: data not durable before the rename (fsyncs: message {}, dir {}, envelopes {envelopes:?}; syncfs {data_by_syncfs})",
            synced_in(&|r| r.starts_with("/message>")),
            synced_in(&|r| r.starts_with('>'))
        );
        assert!(
            published,
            "{id}: rename not durable before the 250 (queue/{} fsync {rename_by_fsync}, syncfs {rename_by_syncfs})",
            &id[..2]
        );
    }
    eprintln!(
        "durable order ({}): {} messages, every 250 after its data, rename and directory syncs",
        mode.unwrap_or("default"),
        ids.len()
    );
}

#[test]
fn acknowledged_only_after_the_data_and_the_rename_are_durable() {
    if !require(strace_available(), "strace is not installed") {
        return;
    }
    check_order(None);
}

#[test]
fn fsync_mode_acknowledges_only_after_data_rename_and_directories_synced() {
    if !require(strace_available(), "strace is not installed") {
        return;
    }
    check_order(Some("fsync"));
}

#[test]
fn syncfs_mode_acknowledges_only_after_two_barriers() {
    if !require(strace_available(), "strace is not installed") {
        return;
    }
    check_order(Some("syncfs"));
}
