//! The SMTP server that relay tests send to: it records what a relaying client says on each
//! connection (every line with its time, the commands apart from the message, when each final
//! reply went out, when the connection closed) and answers as its [`Script`] says, the one
//! thing the tests vary: the texts (a daemon logs the remote's replies, and the fixtures hold
//! those lines), which recipients are refused, what EHLO offers, and how the server
//! misbehaves (busy, no EHLO, a broken STARTTLS, a final reply held or never sent).

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The reply to one `RCPT` line (as received, without its CRLF).
pub type RcptReply = Arc<dyn Fn(&str) -> String + Send + Sync>;

/// How the server answers.
#[derive(Clone)]
pub struct Script {
    /// The greeting, without its CRLF.
    pub banner: &'static str,
    /// `421 4.3.2 busy` instead of the greeting, then the connection closed unread.
    pub busy: bool,
    /// The whole reply to EHLO, CRLF-terminated lines.
    pub ehlo: &'static str,
    /// STARTTLS answered 220, then plaintext where the handshake should be.
    pub broken_starttls: bool,
    /// MAIL answered 300 ms late, with a note (a line `(more commands before the MAIL reply:
    /// BOOL)` at time 0) of whether the next commands were already there: pipelining seen.
    pub probe_pipelining: bool,
    /// The reply to MAIL, HELO and RSET.
    pub ok: &'static str,
    /// The reply to a command this server does not know.
    pub other: &'static str,
    pub rcpt: RcptReply,
    /// DATA refused (`554 5.5.1 no valid recipients`) unless a RCPT since MAIL was accepted.
    pub data_needs_rcpt: bool,
    /// The reply to the final dot.
    pub queued: &'static str,
    /// How long each final reply waits.
    pub hold: Duration,
    /// (connection index, time): that connection's final replies wait, instead.
    pub hold_conn: Option<(usize, Duration)>,
    /// Final replies wait while the sink's [`Sink::set_hang`] is on (a remote stuck
    /// mid-delivery); this is its first value.
    pub hang: bool,
}

impl Script {
    /// `rec.test`: EHLO offers DSN and 8BITMIME, MAIL/HELO/RSET `250 2.1.0 ok`, unknown
    /// commands `500 what`, every RCPT `250 2.1.5 ok`, `250 2.0.0 queued as X`.
    pub fn recorder() -> Script {
        Script {
            banner: "220 rec.test ESMTP",
            busy: false,
            ehlo: "250-rec.test\r\n250-DSN\r\n250 8BITMIME\r\n",
            broken_starttls: false,
            probe_pipelining: false,
            ok: "250 2.1.0 ok",
            other: "500 what",
            rcpt: Arc::new(|_| "250 2.1.5 ok".to_string()),
            data_needs_rcpt: false,
            queued: "250 2.0.0 queued as X",
            hold: Duration::ZERO,
            hold_conn: None,
            hang: false,
        }
    }

    /// `sink.test`: EHLO offers 8BITMIME, every other command `250 2.0.0 ok`, `250 2.0.0
    /// queued`.
    pub fn sink() -> Script {
        Script {
            banner: "220 sink.test ESMTP",
            ehlo: "250-sink.test\r\n250 8BITMIME\r\n",
            ok: "250 2.0.0 ok",
            other: "250 2.0.0 ok",
            rcpt: Arc::new(|_| "250 2.0.0 ok".to_string()),
            queued: "250 2.0.0 queued",
            ..Script::recorder()
        }
    }
}

/// What the sink saw on one connection.
#[derive(Clone, Debug)]
pub struct Conn {
    /// The client's address.
    pub peer: String,
    pub accepted: Instant,
    /// Every line the client sent, message lines included, as received (CRLF kept), with the
    /// seconds since the connection was accepted.
    pub lines: Vec<(f64, String)>,
    /// The commands, and the message's final `.`, without their CRLF, with when each came.
    pub commands: Vec<(Instant, String)>,
    /// When each final reply was sent.
    pub done: Vec<Instant>,
    pub closed: bool,
    pub closed_at: Option<Instant>,
}

#[derive(Default)]
struct State {
    /// Each connection's record, shared with its thread: one cleared away goes on being
    /// written to, unseen.
    conns: Vec<Arc<Mutex<Conn>>>,
    open: usize,
    max_open: usize,
}

pub struct Sink {
    pub port: u16,
    state: Arc<Mutex<State>>,
    hang: Arc<AtomicBool>,
    up: Arc<AtomicBool>,
}

impl Sink {
    /// On a free port of 127.0.0.1.
    pub fn start(script: Script) -> Sink {
        Sink::bind("127.0.0.1:0".parse().expect("addr"), script)
    }

    /// On `addr` (in the network namespace of the calling thread).
    pub fn bind(addr: SocketAddr, script: Script) -> Sink {
        let l = TcpListener::bind(addr).unwrap_or_else(|e| panic!("bind sink {addr}: {e}"));
        let port = l.local_addr().expect("addr").port();
        let sink = Sink::new(port, &script);
        let (state, hang) = (sink.state.clone(), sink.hang.clone());
        std::thread::spawn(move || {
            for s in l.incoming().map_while(Result::ok) {
                accepted(s, &script, &state, &hang);
            }
        });
        sink
    }

    /// On 127.0.0.1:`port`, which [`Sink::set_up`] can close (connections refused) and open
    /// again.
    pub fn switchable(port: u16, script: Script) -> Sink {
        let sink = Sink::new(port, &script);
        let (state, hang, up) = (sink.state.clone(), sink.hang.clone(), sink.up.clone());
        std::thread::spawn(move || {
            let mut listener: Option<TcpListener> = None;
            loop {
                if !up.load(Ordering::SeqCst) {
                    listener = None;
                } else if listener.is_none() {
                    let l = TcpListener::bind(("127.0.0.1", port)).expect("bind switch sink");
                    l.set_nonblocking(true).expect("nonblocking");
                    listener = Some(l);
                }
                match listener.as_ref().map(|l| l.accept()) {
                    Some(Ok((s, _))) => {
                        let _ = s.set_nonblocking(false);
                        accepted(s, &script, &state, &hang);
                    }
                    _ => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        sink
    }

    fn new(port: u16, script: &Script) -> Sink {
        Sink {
            port,
            state: Arc::default(),
            hang: Arc::new(AtomicBool::new(script.hang)),
            up: Arc::new(AtomicBool::new(true)),
        }
    }

    pub fn conns(&self) -> Vec<Conn> {
        let st = self.state.lock().unwrap();
        st.conns.iter().map(|c| c.lock().unwrap().clone()).collect()
    }

    /// Forgets what was recorded (between two daemons' runs).
    pub fn clear(&self) {
        self.state.lock().unwrap().conns.clear();
    }

    /// The most connections seen open at once.
    pub fn max_open(&self) -> usize {
        self.state.lock().unwrap().max_open
    }

    /// Messages sent to the end (their final reply sent).
    pub fn messages(&self) -> usize {
        self.conns().iter().map(|c| c.done.len()).sum()
    }

    /// Final dots received.
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

    pub fn set_hang(&self, on: bool) {
        self.hang.store(on, Ordering::SeqCst);
    }

    /// Closes or opens a [`Sink::switchable`] listener (and lets it happen).
    pub fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(100));
    }

    /// Waits until `pred` holds for what was recorded, at most `limit`; fails naming `what`.
    pub fn wait(&self, limit: Duration, what: &str, pred: impl Fn(&[Conn]) -> bool) -> Vec<Conn> {
        let end = Instant::now() + limit;
        loop {
            let c = self.conns();
            if pred(&c) {
                return c;
            }
            assert!(Instant::now() < end, "sink, waiting for {what}: {c:#?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn accepted(s: TcpStream, script: &Script, state: &Arc<Mutex<State>>, hang: &Arc<AtomicBool>) {
    let (idx, conn) = {
        let mut st = state.lock().unwrap();
        let conn = Arc::new(Mutex::new(Conn {
            peer: s
                .peer_addr()
                .map(|a| a.ip().to_string())
                .unwrap_or_default(),
            accepted: Instant::now(),
            lines: Vec::new(),
            commands: Vec::new(),
            done: Vec::new(),
            closed: false,
            closed_at: None,
        }));
        st.conns.push(conn.clone());
        st.open += 1;
        st.max_open = st.max_open.max(st.open);
        (st.conns.len() - 1, conn)
    };
    let (script, state, hang) = (script.clone(), state.clone(), hang.clone());
    std::thread::spawn(move || {
        serve(s, &script, &conn, idx, &hang);
        {
            let mut c = conn.lock().unwrap();
            c.closed = true;
            c.closed_at = Some(Instant::now());
        }
        state.lock().unwrap().open -= 1;
    });
}

/// One connection; `idx`: its place among the sink's connections (for `hold_conn`).
fn serve(s: TcpStream, script: &Script, conn: &Mutex<Conn>, idx: usize, hang: &AtomicBool) {
    let t0 = Instant::now();
    let mut w = s.try_clone().expect("clone");
    let mut r = BufReader::new(s);
    let say = |w: &mut TcpStream, t: &str| {
        let _ = w.write_all(t.as_bytes());
    };
    let with = |f: &mut dyn FnMut(&mut Conn)| f(&mut conn.lock().unwrap());
    if script.busy {
        say(&mut w, "421 4.3.2 busy\r\n");
        return;
    }
    say(&mut w, &format!("{}\r\n", script.banner));
    let hold = match script.hold_conn {
        Some((i, d)) if i == idx => d,
        Some(_) => Duration::ZERO,
        None => script.hold,
    };
    let mut data = false;
    let mut accepted_rcpt = false;
    loop {
        let mut line = Vec::new();
        match r.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let raw = String::from_utf8_lossy(&line).into_owned();
        let text = raw.trim_end_matches("\r\n").to_string();
        let now = Instant::now();
        with(&mut |c| c.lines.push((t0.elapsed().as_secs_f64(), raw.clone())));
        if data {
            if raw == ".\r\n" {
                data = false;
                with(&mut |c| c.commands.push((now, text.clone())));
                if !hold.is_zero() {
                    std::thread::sleep(hold);
                }
                while hang.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(50));
                }
                say(&mut w, &format!("{}\r\n", script.queued));
                with(&mut |c| c.done.push(Instant::now()));
            }
            continue;
        }
        with(&mut |c| c.commands.push((now, text.clone())));
        let u = raw.to_ascii_uppercase();
        if u.starts_with("EHLO") {
            say(&mut w, script.ehlo);
        } else if u.starts_with("STARTTLS") && script.broken_starttls {
            say(&mut w, "220 2.0.0 go ahead\r\n");
            // The ClientHello first (closing with it unread would reset the connection, an
            // EOF rather than a broken handshake), then plaintext where its answer should be.
            let _ = r.get_mut().set_read_timeout(Some(Duration::from_secs(5)));
            let _ = std::io::Read::read(&mut r, &mut [0u8; 4096]);
            say(&mut w, "this is not a TLS record\r\n");
            std::thread::sleep(Duration::from_millis(300));
            break;
        } else if u.starts_with("MAIL") && script.probe_pipelining {
            accepted_rcpt = false;
            // Whether the next commands are already here before MAIL is answered.
            std::thread::sleep(Duration::from_millis(300));
            let mut b = [0u8; 1];
            let _ = w.set_nonblocking(true);
            let waiting = !r.buffer().is_empty() || w.peek(&mut b).is_ok_and(|n| n > 0);
            let _ = w.set_nonblocking(false);
            let note = format!("(more commands before the MAIL reply: {waiting})");
            with(&mut |c| c.lines.push((0.0, note.clone())));
            say(&mut w, &format!("{}\r\n", script.ok));
        } else if u.starts_with("HELO") || u.starts_with("MAIL") || u.starts_with("RSET") {
            if u.starts_with("MAIL") {
                accepted_rcpt = false;
            }
            say(&mut w, &format!("{}\r\n", script.ok));
        } else if u.starts_with("RCPT") {
            let reply = (script.rcpt)(&text);
            accepted_rcpt |= reply.starts_with('2');
            say(&mut w, &format!("{reply}\r\n"));
        } else if u.starts_with("DATA") {
            if script.data_needs_rcpt && !accepted_rcpt {
                say(&mut w, "554 5.5.1 no valid recipients\r\n");
            } else {
                data = true;
                say(&mut w, "354 go\r\n");
            }
        } else if u.starts_with("QUIT") {
            say(&mut w, "221 2.0.0 bye\r\n");
            break;
        } else {
            say(&mut w, &format!("{}\r\n", script.other));
        }
    }
}
