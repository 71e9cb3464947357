//! A message answered 250 is never lost: while concurrent clients send 2,000 messages, the
//! daemon is killed with SIGKILL at random moments and restarted on the same spool. At the end
//! every message that got its 250 is in the Maildir. Clients resend what was not acknowledged,
//! so duplicates can happen (a 250 lost on the wire); they are counted and reported, not failed.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::*;

const MESSAGES: usize = 2000;
const CLIENTS: usize = 20;

/// A Maildir for `foo@example.org`, delivered as `uid` (also used by crash_states).
pub(crate) fn config(uid: u32) -> String {
    format!(
        "listen on 127.0.0.1 port @PORT@\n\
         table users {{ foo = \"{uid}:{uid}:@DIR@\" }}\n\
         action \"mail\" maildir \"@DIR@/Maildir\" userbase <users>\n\
         match from any for domain \"example.org\" action \"mail\"\n"
    )
}

/// Sends message `n`; true once the server answered 250 to its final dot.
fn send(addr: SocketAddr, n: usize) -> bool {
    let Ok(stream) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut c = client_from(stream);
    if !c.reply().starts_with("220") {
        return false;
    }
    for (cmd, want) in [
        ("HELO load".to_string(), "250"),
        ("MAIL FROM:<load@example.net>".to_string(), "250"),
        ("RCPT TO:<foo@example.org>".to_string(), "250"),
        ("DATA".to_string(), "354"),
        (
            format!("Subject: token-{n:05}\r\n\r\nbody of token-{n:05}\r\n."),
            "250",
        ),
    ] {
        if !c.cmd(&cmd).starts_with(want) {
            return false;
        }
    }
    let _ = c.cmd("QUIT");
    true
}

#[test]
fn sigkill_during_load_loses_no_acknowledged_message() {
    let root = nix::unistd::geteuid().is_root();
    let uid = if root {
        1000
    } else {
        nix::unistd::geteuid().as_raw()
    };
    let mut d = Daemon::start(&config(uid), &[]);
    if root {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(d.dir.path(), std::fs::Permissions::from_mode(0o711));
        let md = d.dir.path().join("Maildir");
        let _ = std::fs::create_dir(&md);
        let _ = nix::unistd::chown(
            &md,
            Some(nix::unistd::Uid::from_raw(uid)),
            Some(nix::unistd::Gid::from_raw(uid)),
        );
    }
    let addr: SocketAddr = format!("127.0.0.1:{}", d.port).parse().expect("addr");
    let next = Arc::new(AtomicUsize::new(0));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let done = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (next, acked) = (next.clone(), acked.clone());
            std::thread::spawn(move || loop {
                let n = next.fetch_add(1, Ordering::SeqCst);
                if n >= MESSAGES {
                    return;
                }
                // Retry until acknowledged: the daemon may be down for a moment.
                let deadline = Instant::now() + Duration::from_secs(120);
                while !send(addr, n) {
                    if Instant::now() > deadline {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                if let Ok(mut a) = acked.lock() {
                    a.push(n);
                }
            })
        })
        .collect();
    // Three SIGKILLs at random moments of the load, each followed by a restart.
    let mut kills = 0;
    while kills < 3 {
        let sent = acked.lock().map(|a| a.len()).unwrap_or(0);
        if sent >= (kills + 1) * MESSAGES / 5 + rand_jitter() {
            d.kill9();
            kills += 1;
            d = d.restart();
        }
        if next.load(Ordering::SeqCst) >= MESSAGES + CLIENTS {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    for w in workers {
        let _ = w.join();
    }
    done.store(true, Ordering::SeqCst);
    let acked: Vec<usize> = acked.lock().map(|a| a.clone()).unwrap_or_default();
    assert_eq!(
        acked.len(),
        MESSAGES,
        "every message was eventually acknowledged"
    );
    assert_eq!(kills, 3, "the daemon was killed three times");

    // Wait for the queue to drain into the Maildir.
    let new = d.dir.path().join("Maildir").join("new");
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut counts: HashMap<usize, usize> = HashMap::new();
    loop {
        counts.clear();
        for e in std::fs::read_dir(&new).into_iter().flatten().flatten() {
            if let Ok(t) = std::fs::read_to_string(e.path()) {
                if let Some(i) = t.find("Subject: token-") {
                    if let Ok(n) = t[i + 15..i + 20].parse::<usize>() {
                        *counts.entry(n).or_default() += 1;
                    }
                }
            }
        }
        if acked.iter().all(|n| counts.contains_key(n)) || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let lost: Vec<&usize> = acked.iter().filter(|n| !counts.contains_key(n)).collect();
    let dups: usize = counts.values().filter(|c| **c > 1).map(|c| c - 1).sum();
    eprintln!(
        "crash test: {} acknowledged, {} delivered, {} lost, {} duplicates, 3 SIGKILLs",
        acked.len(),
        counts.len(),
        lost.len(),
        dups
    );
    assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
}

fn rand_jitter() -> usize {
    (std::process::id() as usize * 7919) % 97
}
