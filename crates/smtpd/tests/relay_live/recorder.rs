//! A small SMTP server that records what a relaying client sends (every line, with the time
//! since the connection was accepted), and answers as the case needs: everything accepted,
//! or every RCPT refused with a 4xx or a 5xx.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone, Debug, Default)]
pub struct Conn {
    pub lines: Vec<(f64, String)>,
    pub closed: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// EHLO offers DSN and 8BITMIME; every command accepted.
    Accept,
    /// Every RCPT answered `451 4.7.1 greylisted, try again later`.
    TempRcpt,
    /// Every RCPT answered `550 5.7.1 relaying denied`.
    PermRcpt,
}

pub struct Recorder {
    conns: Arc<Mutex<Vec<Conn>>>,
}

impl Recorder {
    /// Listens on `addr` (in the network namespace of the calling thread).
    pub fn bind(addr: SocketAddr, answer: Answer) -> Recorder {
        let l = TcpListener::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"));
        let conns: Arc<Mutex<Vec<Conn>>> = Arc::default();
        let c = conns.clone();
        std::thread::spawn(move || {
            for s in l.incoming().map_while(Result::ok) {
                let idx = {
                    let mut v = c.lock().unwrap();
                    v.push(Conn::default());
                    v.len() - 1
                };
                let c = c.clone();
                std::thread::spawn(move || serve(s, answer, c, idx));
            }
        });
        Recorder { conns }
    }

    pub fn conns(&self) -> Vec<Conn> {
        self.conns.lock().unwrap().clone()
    }

    /// Forgets what was recorded (between the two daemons' runs).
    pub fn clear(&self) {
        self.conns.lock().unwrap().clear();
    }

    /// How many messages were sent to the end (their final dot).
    pub fn dots(&self) -> usize {
        self.conns()
            .iter()
            .flat_map(|c| &c.lines)
            .filter(|(_, l)| l == ".\r\n")
            .count()
    }

    pub fn all_closed(&self) -> bool {
        self.conns().iter().all(|c| c.closed)
    }
}

/// Waits until `cond` holds; fails with `what` after `limit`.
pub fn wait_until(limit: Duration, what: &str, cond: impl Fn() -> bool) {
    let end = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < end, "not in {limit:?}: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn serve(s: TcpStream, answer: Answer, conns: Arc<Mutex<Vec<Conn>>>, idx: usize) {
    let t0 = Instant::now();
    let mut w = s.try_clone().expect("clone");
    let mut r = BufReader::new(s);
    let mut say = |t: &str| {
        let _ = w.write_all(t.as_bytes());
    };
    say("220 rec.test ESMTP\r\n");
    let mut data = false;
    loop {
        let mut line = Vec::new();
        match r.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&line).into_owned();
        conns.lock().unwrap()[idx]
            .lines
            .push((t0.elapsed().as_secs_f64(), text.clone()));
        if data {
            if text == ".\r\n" {
                data = false;
                say("250 2.0.0 queued as X\r\n");
            }
            continue;
        }
        let u = text.to_ascii_uppercase();
        if u.starts_with("EHLO") {
            say("250-rec.test\r\n250-DSN\r\n250 8BITMIME\r\n");
        } else if u.starts_with("HELO") || u.starts_with("MAIL") || u.starts_with("RSET") {
            say("250 2.1.0 ok\r\n");
        } else if u.starts_with("RCPT") {
            match answer {
                Answer::Accept => say("250 2.1.5 ok\r\n"),
                Answer::TempRcpt => say("451 4.7.1 greylisted, try again later\r\n"),
                Answer::PermRcpt => say("550 5.7.1 relaying denied\r\n"),
            }
        } else if u.starts_with("DATA") {
            data = true;
            say("354 go\r\n");
        } else if u.starts_with("QUIT") {
            say("221 2.0.0 bye\r\n");
            break;
        } else {
            say("500 what\r\n");
        }
    }
    conns.lock().unwrap()[idx].closed = true;
}
