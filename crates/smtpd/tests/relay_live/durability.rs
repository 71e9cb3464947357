//! Durability under relay load: clients submit a few thousand messages while the daemon relays
//! them to a sink; the daemon is killed with SIGKILL in the middle, then started again on its
//! spool. Every message it answered `250` must reach the sink; a message may reach it twice
//! only if it was in flight at the kill (the sink had it, our queue had not yet forgotten it:
//! SMTP allows that duplicate). What the test measured is printed (`durability: ...`).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::*;

/// What the sink took: each message's number with the time its `250` was sent and the time
/// its connection was accepted.
type Taken = Arc<Mutex<Vec<(u32, Instant, Instant)>>>;

/// An SMTP sink that answers everything `250` and notes each whole message's number (its
/// `Message-ID: <N@load.test>`); a message cut before its final dot is not taken.
fn sink(shut: Arc<AtomicBool>, conns: Arc<AtomicUsize>) -> (u16, Taken) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind sink");
    let port = l.local_addr().expect("addr").port();
    let taken: Taken = Arc::default();
    let t = taken.clone();
    std::thread::spawn(move || {
        for s in l.incoming().map_while(Result::ok) {
            conns.fetch_add(1, Ordering::SeqCst);
            let (t, shut) = (t.clone(), shut.clone());
            std::thread::spawn(move || sink_session(s, t, shut));
        }
    });
    (port, taken)
}

fn sink_session(s: TcpStream, taken: Taken, shut: Arc<AtomicBool>) {
    let opened = Instant::now();
    let mut w = s.try_clone().expect("clone");
    let mut r = BufReader::new(s);
    let _ = w.write_all(b"220 sink.test ESMTP\r\n");
    let mut data = false;
    let mut id = None;
    let mut line = Vec::new();
    loop {
        line.clear();
        match r.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if data {
            if line == b".\r\n" {
                data = false;
                // While the gate is shut the remote holds its answers, so that a backlog
                // builds in our queue.
                while shut.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(5));
                }
                if let Some(n) = id.take() {
                    taken.lock().unwrap().push((n, Instant::now(), opened));
                }
                let _ = w.write_all(b"250 2.0.0 taken\r\n");
            } else if let Some(v) = line.strip_prefix(b"Message-ID: <") {
                id = std::str::from_utf8(v)
                    .ok()
                    .and_then(|v| v.split('@').next())
                    .and_then(|n| n.parse().ok());
            }
            continue;
        }
        let reply: &[u8] = match line.get(..4).map(|v| v.to_ascii_uppercase()) {
            Some(v) if v == b"EHLO" => b"250-sink.test\r\n250 8BITMIME\r\n",
            Some(v) if v == b"DATA" => {
                data = true;
                b"354 go\r\n"
            }
            Some(v) if v == b"QUIT" => {
                let _ = w.write_all(b"221 bye\r\n");
                return;
            }
            _ => b"250 ok\r\n",
        };
        let _ = w.write_all(reply);
    }
}

const TOTAL: u32 = 3000;
const CLIENTS: u32 = 8;
/// Messages per client session (OpenSMTPD's default `smtp limit max-mails` is 100).
const PER_SESSION: u32 = 50;

/// One client: its share of the messages in sessions of [`PER_SESSION`]; when the daemon goes
/// away (the kill) it connects again until it is back (a message without its `250` is not
/// sent again: it may be queued already). The numbers it got `250` for.
fn client(addr: std::net::SocketAddr, k: u32, count: Arc<AtomicUsize>) -> Vec<u32> {
    let mut accepted = Vec::new();
    let share = TOTAL / CLIENTS;
    let filler = "x".repeat(70);
    let mut i = 0;
    let mut last_ok = Instant::now();
    'sessions: while i < share {
        let Ok(s) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
            assert!(
                last_ok.elapsed() < Duration::from_secs(60),
                "client {k}: the daemon did not come back"
            );
            std::thread::sleep(Duration::from_millis(20));
            continue;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
        let mut c = client_from(s);
        let ok = |r: &str, code: &str| r.starts_with(code);
        if !ok(&c.reply(), "220") || !ok(&c.cmd("EHLO load.test"), "250") {
            continue;
        }
        for _ in 0..PER_SESSION {
            if i >= share {
                break;
            }
            let n = k * 100_000 + i;
            i += 1;
            let mut body = format!(
                "Subject: load {n}\r\nMessage-ID: <{n}@load.test>\r\n\
                 Date: Wed, 2 Dec 2026 17:00:00 +0000\r\n\r\n"
            );
            for _ in 0..12 {
                body.push_str(&filler);
                body.push_str("\r\n");
            }
            if !ok(&c.cmd("MAIL FROM:<load@src.test>"), "250")
                || !ok(&c.cmd("RCPT TO:<sink@dst.test>"), "250")
                || !ok(&c.cmd("DATA"), "354")
            {
                continue 'sessions;
            }
            c.send(body.as_bytes());
            if !ok(&c.cmd("."), "250") {
                continue 'sessions;
            }
            accepted.push(n);
            last_ok = Instant::now();
            count.fetch_add(1, Ordering::SeqCst);
        }
        c.cmd("QUIT");
    }
    accepted
}

#[test]
fn kill_9_under_relay_load_loses_nothing_answered_250() {
    let shut = Arc::new(AtomicBool::new(false));
    let conns = Arc::new(AtomicUsize::new(0));
    let (sink_port, taken) = sink(shut.clone(), conns.clone());
    let mut d = Daemon::start(
        &format!(
            "listen on 127.0.0.1 port @PORT@\n\
             action \"r\" relay host smtp://127.0.0.1:{sink_port}\n\
             match from any for any action \"r\"\n"
        ),
        &[],
    );
    let t0 = Instant::now();
    let count = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|k| {
            let (addr, count) = (d.addr(), count.clone());
            std::thread::spawn(move || client(addr, k, count))
        })
        .collect();
    // Relaying at full speed; then the remote holds its answers while the clients go on, until
    // a few hundred messages wait in our queue; then it answers again, and the kill comes
    // while that backlog is being relayed (accepting and relaying both under way).
    let end = Instant::now() + Duration::from_secs(120);
    let taken_n = || taken.lock().unwrap().len();
    let wait = |what: &str, cond: &dyn Fn() -> bool| {
        while !cond() {
            assert!(Instant::now() < end, "{what}: the sink took {}", taken_n());
            std::thread::sleep(Duration::from_millis(2));
        }
    };
    wait("300 relayed", &|| taken_n() >= 300);
    shut.store(true, Ordering::SeqCst);
    let held = taken_n();
    wait("a backlog", &|| count.load(Ordering::SeqCst) >= held + 500);
    shut.store(false, Ordering::SeqCst);
    wait("relaying the backlog", &|| taken_n() >= held + 150);
    d.kill9();
    let killed_at = Instant::now();
    let taken_before = taken.lock().unwrap().len();
    let conns_before = conns.load(Ordering::SeqCst);
    let answered_before = count.load(Ordering::SeqCst);
    let d2 = d.restart();
    // The clients carry on with the restarted daemon.
    let accepted: Vec<u32> = clients
        .into_iter()
        .flat_map(|c| c.join().expect("client"))
        .collect();
    // Every message answered 250 reaches the sink.
    let end = Instant::now() + Duration::from_secs(120);
    let missing = loop {
        let got: std::collections::HashSet<u32> =
            taken.lock().unwrap().iter().map(|(n, _, _)| *n).collect();
        let missing: Vec<u32> = accepted
            .iter()
            .copied()
            .filter(|n| !got.contains(n))
            .collect();
        if missing.is_empty() || Instant::now() > end {
            break missing;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        missing.is_empty(),
        "{} of {} messages answered 250 never reached the sink: {:?}\nlog after the restart:\n{}",
        missing.len(),
        accepted.len(),
        &missing[..missing.len().min(20)],
        d2.log().join("\n")
    );
    // Nothing more is coming: the restarted daemon has nothing left to relay.
    std::thread::sleep(Duration::from_secs(2));
    let taken = taken.lock().unwrap().clone();
    let mut first: HashMap<u32, (Instant, Instant)> = HashMap::new();
    let mut dups = Vec::new();
    for (n, at, opened) in &taken {
        match first.get(n) {
            Some(f) => dups.push((*n, f.0, f.1, *opened)),
            None => {
                first.insert(*n, (*at, *opened));
            }
        }
    }
    // A duplicate is a message the killed daemon sent and the restarted one sent again: one
    // that was in flight at the kill (its data sent, the remote's 250 not yet received or our
    // delete not yet on disk), so taken just before the kill (or just after: the sink may read
    // what the killed daemon had written a moment later).
    for (n, at, opened, again) in &dups {
        assert!(
            *opened < killed_at && *again > killed_at,
            "message {n} sent twice by the same daemon"
        );
        assert!(
            // Generous for a loaded machine: here the oldest was 50-125 ms old.
            killed_at.saturating_duration_since(*at) < Duration::from_secs(5),
            "message {n} taken {:?} before the kill and again after: it was not in flight",
            killed_at.duration_since(*at)
        );
    }
    let oldest = dups
        .iter()
        .map(|(_, at, _, _)| killed_at.saturating_duration_since(*at))
        .max()
        .unwrap_or_default();
    let taken_in_window = first
        .values()
        .filter(|(at, _)| *at <= killed_at && killed_at.duration_since(*at) <= oldest)
        .count();
    let extra = taken.len() - first.len();
    assert_eq!(extra, dups.len());
    // Nothing that was not submitted, nothing taken three times.
    assert!(first.keys().all(|n| n % 100_000 < TOTAL / CLIENTS));
    eprintln!(
        "durability: {} answered 250 (killed {:.1} s in, {} answered then, the sink had {}), \
         all {} reached the sink; {} duplicates (in flight at the kill); \
         {} taken in all over {} connections opened by the killed daemon; the oldest duplicate was taken {} ms before the kill, when the sink \
         took {} in those last {} ms",
        accepted.len(),
        killed_at.duration_since(t0).as_secs_f64(),
        answered_before,
        taken_before,
        accepted.len(),
        dups.len(),
        taken.len(),
        conns_before,
        oldest.as_millis(),
        taken_in_window,
        oldest.as_millis()
    );
}
