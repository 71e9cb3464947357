//! `smtpctl monitor`: its header, its column layout, and the counters it shows for two messages,
//! one that fails temporarily and one that fails for good and bounces (the bounce itself being
//! refused). Compared live with OpenSMTPD 6.8 when it can be run here.

use std::io::Read;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

const HEADER: &str =
    "--- client ---  -- envelope --   ---- relay/delivery --- ------- misc -------\n\
curr conn disc  curr  enq  deq   ok tmpfail prmfail loop expire remove bounce\n";

/// The mda runs as this user; uid 1000 as root (OpenSMTPD will not run it as root).
fn config() -> String {
    let uid = if nix::unistd::geteuid().is_root() {
        1000
    } else {
        nix::unistd::geteuid().as_raw()
    };
    format!(
        "listen on 127.0.0.1 port @PORT@\n\
         table users {{ foo = \"{uid}:{uid}:/\" }}\n\
         action \"t\" mda \"exit 75\" userbase <users>\n\
         action \"p\" mda \"exit 1\" userbase <users>\n\
         match from any for domain \"temp.org\" action \"t\"\n\
         match from any for domain \"perm.org\" action \"p\"\n"
    )
}

fn send(d: &Daemon, rcpt: &str) {
    let addr: SocketAddr = format!("127.0.0.1:{}", d.port).parse().expect("addr");
    let mut c = Client::connect(addr);
    c.reply();
    for cmd in [
        "HELO client",
        "MAIL FROM:<bob@example.net>",
        &format!("RCPT TO:<{rcpt}>"),
        "DATA",
        "Subject: monitor\r\n\r\nhi\r\n.",
        "QUIT",
    ] {
        c.cmd(cmd);
    }
}

/// What `monitor` printed: its text (a terminal's CRLFs made LFs) and, from its lines, the sum of
/// each column but the `curr` ones, which are taken from the last line.
struct Seen {
    text: String,
    totals: [u64; 13],
}

fn parse(text: &str) -> Seen {
    let mut totals = [0u64; 13];
    for line in text.lines() {
        let v: Vec<u64> = line
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        if v.len() != 13 {
            continue;
        }
        for (i, x) in v.iter().enumerate() {
            if i == 0 || i == 3 {
                totals[i] = *x;
            } else {
                totals[i] += x;
            }
        }
    }
    Seen {
        text: text.to_string(),
        totals,
    }
}

/// Runs `monitor` under `script` (OpenSMTPD's smtpctl buffers its output when it is not a
/// terminal) while the two messages go through, until the counters show `want` or 30 s pass.
fn watch(d: &Daemon, smtpctl: &Path, want: [u64; 13]) -> Seen {
    let out = d.dir.path().join("monitor.out");
    let mut child = Command::new("script")
        .args([
            "-qfc",
            &format!("{} {} monitor", d.ns_prefix().join(" "), smtpctl.display()),
        ])
        .arg(&out)
        .env("SMTPD_SOCKET", d.dir.path().join("smtpd.sock"))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("script");
    std::thread::sleep(Duration::from_millis(1500));
    send(d, "foo@temp.org");
    send(d, "foo@perm.org");
    let deadline = Instant::now() + Duration::from_secs(30);
    let seen = loop {
        let mut text = String::new();
        if let Ok(mut f) = std::fs::File::open(&out) {
            let _ = f.read_to_string(&mut text);
        }
        // script(1) writes a line of its own first.
        let text = text.replace("\r\n", "\n");
        let seen = parse(text.find("--- client").map_or("", |i| &text[i..]));
        if seen.totals == want || Instant::now() > deadline {
            break seen;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let _ = child.kill();
    let _ = child.wait();
    seen
}

#[test]
fn monitor_header_layout_and_counters() {
    if !require_tool("script") {
        return;
    }
    // Two SMTP sessions and the bounce's local one; the two envelopes and the bounce's; one
    // temporary failure (it waits), the permanent one and the refused bounce.
    let want = [0, 3, 3, 1, 3, 2, 0, 1, 2, 0, 0, 0, 1];
    let d = Daemon::start(&config(), &[]);
    let ours = watch(&d, &smtpctl(), want);
    assert!(ours.text.starts_with(HEADER), "{}", ours.text);
    // "%4zu %4zu %4zu  %4zu %4zu %4zu %4zu    %4zu    %4zu %4zu   %4zu   %4zu   %4zu": as wide as
    // the header's second line, each number right-aligned under its column name.
    let names = HEADER.lines().nth(1).unwrap_or("");
    for line in ours.text.lines().skip(2) {
        if line.is_empty() || line.starts_with("Script") {
            continue;
        }
        assert_eq!(line.len(), names.len(), "{line:?}");
        for (i, c) in names.char_indices() {
            let end_of_name = c != ' ' && names.as_bytes().get(i + 1).is_none_or(|&b| b == b' ');
            if end_of_name {
                assert!(line.as_bytes()[i].is_ascii_digit(), "{line:?} at {i}");
            }
        }
    }
    assert_eq!(ours.totals, want, "{}", ours.text);
    drop(d);
    if !require_real("compared with the expected counters only, not with OpenSMTPD") {
        return;
    }
    let _lock = real_lock();
    let d = Daemon::start_with(REAL_SMTPD, &config(), &[]);
    let real = watch(&d, Path::new("/usr/sbin/smtpctl"), want);
    assert!(real.text.starts_with(HEADER), "{}", real.text);
    assert_eq!(real.totals, want, "OpenSMTPD:\n{}", real.text);
}
