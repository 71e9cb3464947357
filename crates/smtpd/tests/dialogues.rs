//! The SMTP dialogue corpus (`tests/smtp-dialogues/`, format in its README): every dialogue is
//! replayed against our `smtpd` and its replies compared byte for byte with what the real
//! OpenSMTPD 6.8.0p2 answered when the dialogue was recorded. When `/usr/sbin/smtpd` exists and
//! we are root, every dialogue is also replayed against the real program (one instance at a
//! time), so the recorded answers are re-checked.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Silence that ends the read after a `C!:` chunk (and the final read of a dialogue).
const QUIET: Duration = Duration::from_millis(300);
/// How long to wait for the reply to a `C:` line.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// Dialogues replayed at once against our daemon.
const PARALLEL: usize = 8;

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/smtp-dialogues")
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Greeting,
    /// `C:` text + CRLF, then one reply.
    Cmd,
    /// `C!:` raw bytes, then whatever comes until 300 ms of quiet.
    Raw,
    /// `D:` text + CRLF, no reply awaited.
    Data,
    /// `D!:` raw bytes, no reply awaited.
    DataRaw,
}

#[derive(Debug, Clone)]
struct Step {
    kind: Kind,
    text: String,
    /// Expected reply lines (`S:`), as written in the file.
    expect: Vec<String>,
    /// `S+rsmtpd:` lines, keyed by the index of the `S:` line they follow (-1: before any).
    ours: BTreeMap<isize, Vec<String>>,
}

#[derive(Debug, Clone)]
struct Dialogue {
    name: String,
    config: String,
    steps: Vec<Step>,
}

fn parse(name: &str, text: &str) -> Result<Dialogue, String> {
    let mut config = None;
    let mut steps = vec![Step {
        kind: Kind::Greeting,
        text: String::new(),
        expect: vec![],
        ours: BTreeMap::new(),
    }];
    for (n, line) in text.split('\n').enumerate() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(c) = line.strip_prefix("config: ") {
            config = Some(c.trim().to_string());
            continue;
        }
        let (tag, rest) = line
            .split_once(':')
            .ok_or_else(|| format!("{name}:{}: bad line {line:?}", n + 1))?;
        let rest = rest.strip_prefix(' ').unwrap_or(rest).to_string();
        let kind = match tag {
            "C" => Some(Kind::Cmd),
            "C!" => Some(Kind::Raw),
            "D" => Some(Kind::Data),
            "D!" => Some(Kind::DataRaw),
            "S" | "S+rsmtpd" => None,
            _ => return Err(format!("{name}:{}: bad line {line:?}", n + 1)),
        };
        match kind {
            Some(kind) => steps.push(Step {
                kind,
                text: rest,
                expect: vec![],
                ours: BTreeMap::new(),
            }),
            None => {
                let last = steps.last_mut().expect("greeting step");
                if tag == "S" {
                    last.expect.push(rest);
                } else {
                    let idx = last.expect.len() as isize - 1;
                    last.ours.entry(idx).or_default().push(rest);
                }
            }
        }
    }
    Ok(Dialogue {
        name: name.to_string(),
        config: config.ok_or_else(|| format!("{name}: no config: line"))?,
        steps,
    })
}

/// `DIALOGUES=163,seed` runs only the dialogues whose file name starts with one of those;
/// `DIALOGUES_SHOW=1` prints every observed transcript.
fn load() -> Vec<Dialogue> {
    let dir = corpus_dir();
    let only: Vec<String> = std::env::var("DIALOGUES")
        .map(|v| {
            v.split(',')
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| {
            n.ends_with(".dlg") && n.len() > 4 && n.as_bytes()[..3].iter().all(u8::is_ascii_digit)
        })
        .collect();
    names.sort();
    names.retain(|n| only.is_empty() || only.iter().any(|o| n.starts_with(o.as_str())));
    names
        .iter()
        .map(|n| {
            let text = std::fs::read_to_string(dir.join(n)).unwrap_or_else(|e| panic!("{n}: {e}"));
            parse(n, &text).unwrap_or_else(|e| panic!("{e}"))
        })
        .collect()
}

fn unescape(text: &str) -> Vec<u8> {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() {
            match b[i + 1] {
                b'r' => {
                    out.push(b'\r');
                    i += 2;
                    continue;
                }
                b'n' => {
                    out.push(b'\n');
                    i += 2;
                    continue;
                }
                b't' => {
                    out.push(b'\t');
                    i += 2;
                    continue;
                }
                b'\\' => {
                    out.push(b'\\');
                    i += 2;
                    continue;
                }
                b'x' if i + 3 < b.len()
                    && b[i + 2].is_ascii_hexdigit()
                    && b[i + 3].is_ascii_hexdigit() =>
                {
                    let h = std::str::from_utf8(&b[i + 2..i + 4]).unwrap_or("00");
                    out.push(u8::from_str_radix(h, 16).unwrap_or(0));
                    i += 4;
                    continue;
                }
                _ => {}
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

fn escape(data: &[u8]) -> String {
    let mut s = String::new();
    for &c in data {
        match c {
            b'\\' => s.push_str("\\\\"),
            b'\r' => s.push_str("\\r"),
            b'\n' => s.push_str("\\n"),
            b'\t' => s.push_str("\\t"),
            0x20..=0x7e => s.push(c as char),
            _ => s.push_str(&format!("\\x{c:02x}")),
        }
    }
    s
}

fn is_host_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// The recorder's placeholders: the msgid of `250 2.0.0 XXXXXXXX Message accepted` and the host
/// name as a whole word.
fn placeholders(text: &str, host: &str) -> String {
    let mut t = text.to_string();
    if let Some(rest) = t.strip_prefix("250 2.0.0 ") {
        let id = rest.as_bytes();
        if id.len() >= 8
            && id[..8]
                .iter()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
            && rest[8..].starts_with(" Message accepted")
        {
            t = format!("250 2.0.0 @MSGID@{}", &rest[8..]);
        }
    }
    if host.is_empty() {
        return t;
    }
    let mut out = String::new();
    let b = t.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if t[i..].starts_with(host)
            && (i == 0 || !(is_host_char(b[i - 1]) || b[i - 1] == b'.'))
            && b.get(i + host.len())
                .is_none_or(|&c| !(is_host_char(c) || c == b'-'))
        {
            out.push_str("@HOST@");
            i += host.len();
        } else {
            let ch = t[i..].chars().next().unwrap_or(' ');
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

enum Line {
    Text(Vec<u8>),
    Timeout,
    Closed,
}

struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    closed: bool,
}

impl Conn {
    fn connect(port: u16) -> std::io::Result<Conn> {
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        Ok(Conn {
            stream,
            buf: Vec::new(),
            closed: false,
        })
    }

    fn fill(&mut self, timeout: Duration) -> Option<bool> {
        if self.closed {
            return Some(false);
        }
        let _ = self
            .stream
            .set_read_timeout(Some(timeout.max(Duration::from_millis(1))));
        let mut b = [0u8; 65536];
        match self.stream.read(&mut b) {
            Ok(0) => {
                self.closed = true;
                Some(false)
            }
            Ok(n) => {
                self.buf.extend_from_slice(&b[..n]);
                Some(true)
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                None
            }
            Err(_) => {
                self.closed = true;
                Some(false)
            }
        }
    }

    fn line(&mut self, timeout: Duration) -> Line {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(p) = self.buf.iter().position(|&c| c == b'\n') {
                let mut l: Vec<u8> = self.buf.drain(..=p).collect();
                l.pop();
                if l.last() == Some(&b'\r') {
                    l.pop();
                } else {
                    l.extend_from_slice(b"\\n-without-CR");
                }
                return Line::Text(l);
            }
            let now = Instant::now();
            if now >= deadline {
                return Line::Timeout;
            }
            match self.fill(deadline - now) {
                None => return Line::Timeout,
                Some(false) => {
                    if !self.buf.is_empty() {
                        return Line::Text(std::mem::take(&mut self.buf));
                    }
                    return Line::Closed;
                }
                Some(true) => {}
            }
        }
    }

    fn reply(&mut self) -> Vec<Line> {
        let mut lines = vec![];
        loop {
            match self.line(REPLY_TIMEOUT) {
                Line::Text(l) => {
                    let more = l.get(3) == Some(&b'-');
                    lines.push(Line::Text(l));
                    if !more {
                        return lines;
                    }
                }
                other => {
                    lines.push(other);
                    return lines;
                }
            }
        }
    }

    fn quiet(&mut self) -> Vec<Line> {
        let mut lines = vec![];
        loop {
            match self.line(QUIET) {
                Line::Timeout => return lines,
                Line::Closed => {
                    lines.push(Line::Closed);
                    return lines;
                }
                t => lines.push(t),
            }
        }
    }

    fn send(&mut self, data: &[u8]) {
        if !self.closed {
            let _ = self.stream.write_all(data);
        }
    }
}

/// Replays a dialogue on `port`: the observed `S:` lines of each step, placeholders applied.
fn replay(port: u16, d: &Dialogue, host: &str) -> Result<Vec<Vec<String>>, String> {
    let mut c = Conn::connect(port).map_err(|e| format!("connect: {e}"))?;
    let mut closed_reported = false;
    let mut conv = |lines: Vec<Line>| -> Vec<String> {
        let mut out = vec![];
        for l in lines {
            match l {
                Line::Text(t) => out.push(placeholders(&escape(&t), host)),
                Line::Timeout => out.push("<timeout>".into()),
                Line::Closed => {
                    if !closed_reported {
                        out.push("<closed>".into());
                        closed_reported = true;
                    }
                }
            }
        }
        out
    };
    let mut observed = vec![];
    for step in &d.steps {
        if step.kind == Kind::Greeting {
            observed.push(conv(c.reply()));
            continue;
        }
        let mut data = unescape(&step.text.replace("@HOST@", host));
        if matches!(step.kind, Kind::Cmd | Kind::Data) {
            data.extend_from_slice(b"\r\n");
        }
        if c.closed {
            observed.push(conv(vec![Line::Closed]));
            continue;
        }
        c.send(&data);
        observed.push(match step.kind {
            Kind::Cmd => conv(c.reply()),
            Kind::Raw => conv(c.quiet()),
            _ => vec![],
        });
    }
    let tail = if c.closed {
        conv(vec![Line::Closed])
    } else {
        conv(c.quiet())
    };
    if let Some(last) = observed.last_mut() {
        last.extend(tail);
    }
    Ok(observed)
}

/// What a step should show: the `S:` lines, with `S+rsmtpd:` overrides applied for ours.
fn expected(step: &Step, ours: bool) -> Vec<String> {
    if !ours || step.ours.is_empty() {
        return step.expect.clone();
    }
    let keep = |v: &Vec<String>| {
        v.iter()
            .filter(|l| *l != "<none>")
            .cloned()
            .collect::<Vec<_>>()
    };
    let mut out = step.ours.get(&-1).map(keep).unwrap_or_default();
    for (i, l) in step.expect.iter().enumerate() {
        match step.ours.get(&(i as isize)) {
            Some(v) => out.extend(keep(v)),
            None => out.push(l.clone()),
        }
    }
    out
}

fn transcript(d: &Dialogue, replies: &[Vec<String>]) -> Vec<String> {
    let mut out = vec![];
    for (step, r) in d.steps.iter().zip(replies) {
        let tag = match step.kind {
            Kind::Greeting => None,
            Kind::Cmd => Some("C"),
            Kind::Raw => Some("C!"),
            Kind::Data => Some("D"),
            Kind::DataRaw => Some("D!"),
        };
        if let Some(tag) = tag {
            let mut t = step.text.clone();
            if t.len() > 120 {
                t.truncate(t.floor_char_boundary(120));
                t.push_str("...");
            }
            out.push(format!("{tag}: {t}"));
        }
        out.extend(r.iter().map(|l| format!("S: {l}")));
    }
    out
}

/// `None` when the dialogue agrees, else a description of the first difference.
fn compare(d: &Dialogue, observed: &[Vec<String>], ours: bool) -> Option<String> {
    let want: Vec<Vec<String>> = d.steps.iter().map(|s| expected(s, ours)).collect();
    let a = transcript(d, &want);
    let b = transcript(d, observed);
    if std::env::var_os("DIALOGUES_SHOW").is_some() {
        println!(
            "== {} ({})\n{}",
            d.name,
            if ours { "rsmtpd" } else { "OpenSMTPD" },
            b.join("\n")
        );
    }
    if a == b {
        return None;
    }
    let i = a
        .iter()
        .zip(&b)
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(b.len()));
    let ctx = i.saturating_sub(2);
    let mut s = format!("{} (line {} of the transcript):\n", d.name, i + 1);
    for l in &a[ctx..i] {
        s.push_str(&format!("      {l}\n"));
    }
    s.push_str(&format!(
        "    - {}\n    + {}\n",
        a.get(i).map(String::as_str).unwrap_or("<end>"),
        b.get(i).map(String::as_str).unwrap_or("<end>")
    ));
    Some(s)
}

fn config_text(d: &Dialogue) -> String {
    let p = corpus_dir()
        .join("configs")
        .join(format!("{}.conf", d.config));
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn run_ours(d: &Dialogue, host: &str) -> Option<String> {
    let conf = config_text(d);
    let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut daemon = Daemon::start(&conf, &[]);
        let r = replay(daemon.port, d, host);
        daemon.stop();
        (r, daemon.log())
    }));
    match res {
        Ok((Ok(obs), _)) => compare(d, &obs, true),
        Ok((Err(e), log)) => Some(format!("{}: {e}\n{}\n", d.name, log.join("\n"))),
        Err(_) => Some(format!(
            "{}: our daemon did not start on config {}\n",
            d.name, d.config
        )),
    }
}

/// The real OpenSMTPD on a free port, started the way record.py does.
struct Real {
    child: Child,
    _dir: tempfile::TempDir,
    port: u16,
}

fn listening(port: u16) -> bool {
    let want = format!(":{port:04X}");
    std::fs::read_to_string("/proc/net/tcp")
        .map(|t| {
            t.lines().skip(1).any(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                f.len() > 3 && f[1].ends_with(&want) && f[3] == "0A"
            })
        })
        .unwrap_or(false)
}

impl Real {
    /// Starts the real smtpd; when it exits at once (another instance holds its control socket
    /// and queue: only one may run on a machine), waits for that one to go, up to 120 s.
    fn start(config: &str) -> Result<Real, String> {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            match Self::start_once(config) {
                Err(e) if e.starts_with("real smtpd exited") && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(500));
                }
                r => return r,
            }
        }
    }

    fn start_once(config: &str) -> Result<Real, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let port = free_port();
        let text = config
            .replace("@PORT@", &port.to_string())
            .replace("@DIR@", dir.path().to_str().unwrap_or("/nonexistent"));
        let conf = dir.path().join("smtpd.conf");
        std::fs::write(&conf, text).map_err(|e| e.to_string())?;
        let child = Command::new(REAL_SMTPD)
            .arg("-d")
            .arg("-f")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| e.to_string())?;
        let mut r = Real {
            child,
            _dir: dir,
            port,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !listening(port) {
            if let Ok(Some(st)) = r.child.try_wait() {
                return Err(format!(
                    "real smtpd exited: {st} (is another instance running?)"
                ));
            }
            if Instant::now() > deadline {
                return Err("real smtpd did not listen".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(r)
    }
}

impl Drop for Real {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run_real(d: &Dialogue, host: &str) -> Option<String> {
    let real = match Real::start(&config_text(d)) {
        Ok(r) => r,
        Err(e) => return Some(format!("{}: {e}\n", d.name)),
    };
    let r = replay(real.port, d, host);
    drop(real); // one real instance at a time: stopped before the next starts
    match r {
        Ok(obs) => compare(d, &obs, false),
        Err(e) => Some(format!("{}: {e}\n", d.name)),
    }
}

/// The summary line: shown by `cargo test -- --nocapture` (or `--show-output`), and in the failure
/// message when something differs.
fn say(line: &str) {
    eprintln!("{line}");
}

fn report(what: &str, total: usize, diffs: &[String]) {
    println!(
        "dialogues: {} agree, {} differ ({what})",
        total - diffs.len(),
        diffs.len()
    );
    if !diffs.is_empty() {
        panic!(
            "dialogues: {} agree, {} differ ({what}):\n{}",
            total - diffs.len(),
            diffs.len(),
            diffs.join("")
        );
    }
}

#[test]
fn corpus_is_well_formed() {
    let all = load();
    if std::env::var_os("DIALOGUES").is_none() {
        assert!(all.len() >= 110, "only {} dialogues", all.len());
    }
    for d in &all {
        let _ = config_text(d);
        assert!(
            d.steps.iter().any(|s| !s.expect.is_empty()),
            "{}: never recorded (run record.py)",
            d.name
        );
    }
    // The placeholders are what record.py writes.
    assert_eq!(placeholders("250-vm Hello x", "vm"), "250-@HOST@ Hello x");
    assert_eq!(
        placeholders("550 Invalid recipient: <vmail@vm>", "vm"),
        "550 Invalid recipient: <vmail@@HOST@>"
    );
    assert_eq!(
        placeholders("250 2.0.0 0a1b2c3d Message accepted for delivery", "vm"),
        "250 2.0.0 @MSGID@ Message accepted for delivery"
    );
    assert_eq!(unescape("a\\r\\n\\x00\\\\"), b"a\r\n\x00\\");
    assert_eq!(escape(b"a\r\n\x00\\\xc3"), "a\\r\\n\\x00\\\\\\xc3");
}

#[test]
fn dialogues_against_rsmtpd() {
    let all = load();
    let host = hostname();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let diffs = std::sync::Mutex::new(Vec::<(usize, String)>::new());
    std::thread::scope(|s| {
        for _ in 0..PARALLEL {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(d) = all.get(i) else { break };
                if let Some(diff) = run_ours(d, &host) {
                    if let Ok(mut v) = diffs.lock() {
                        v.push((i, diff));
                    }
                }
            });
        }
    });
    let mut diffs = diffs.into_inner().unwrap_or_default();
    diffs.sort();
    let diffs: Vec<String> = diffs.into_iter().map(|(_, d)| d).collect();
    report("rsmtpd", all.len(), &diffs);
}

#[test]
fn dialogues_against_opensmtpd() {
    if !Path::new(REAL_SMTPD).exists() || !nix::unistd::geteuid().is_root() {
        say(&format!(
            "dialogues: real OpenSMTPD not available (needs {REAL_SMTPD} and root): not re-checked"
        ));
        return;
    }
    let all = load();
    let host = hostname();
    let diffs: Vec<String> = all.iter().filter_map(|d| run_real(d, &host)).collect();
    report("OpenSMTPD", all.len(), &diffs);
}
