//! The SMTP dialogue corpus (`tests/smtp-dialogues/`, format in its README): every dialogue is
//! replayed against our `smtpd` and its replies compared byte for byte with what the real
//! OpenSMTPD 6.8.0p2 answered when the dialogue was recorded. When `/usr/sbin/smtpd` exists and
//! we are root, every dialogue is also replayed against the real program (each instance in a
//! mount namespace with its own spool and control socket), so the recorded answers are
//! re-checked. One test per dialogue and program: see `main`.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
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
                let mut end = 120;
                while !t.is_char_boundary(end) {
                    end -= 1;
                }
                t.truncate(end);
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

fn run_ours(d: &Dialogue, host: &str) -> Result<(), String> {
    run_on(env!("CARGO_BIN_EXE_smtpd"), d, host)
}

/// The real OpenSMTPD, started as `common::Daemon` starts it: in a mount namespace of its own,
/// with a private spool and control socket, so that several run at once and none depends on the
/// machine's /var/spool/smtpd.
fn run_real(d: &Dialogue, host: &str) -> Result<(), String> {
    run_on(REAL_SMTPD, d, host)
}

fn run_on(bin: &str, d: &Dialogue, host: &str) -> Result<(), String> {
    let conf = config_text(d);
    let ours = bin != REAL_SMTPD;
    let mut daemon =
        Daemon::try_launch(&[], bin, &conf, &[], Some("127.0.0.1:1")).map_err(|(f, command)| {
            format!(
                "{}: the daemon did not start on config {}: {}",
                d.name,
                d.config,
                describe(&f, &command)
            )
        })?;
    let r = replay(daemon.port, d, host);
    daemon.stop();
    match r {
        Ok(obs) => compare(d, &obs, ours).map_or(Ok(()), Err),
        Err(e) => Err(format!("{}: {e}\n{}\n", d.name, daemon.log().join("\n"))),
    }
}

fn describe(f: &StartFailure, command: &[String]) -> String {
    format!(
        "{}; its last log line: {}\ncommand: {}\nlog:\n{}",
        match f.exited {
            Some(st) => format!("it exited ({st})"),
            None => "it did not log that it was ready".to_string(),
        },
        f.log
            .last()
            .map(String::as_str)
            .unwrap_or("(nothing logged)"),
        command.join(" "),
        f.log.join("\n")
    )
}

fn corpus_is_well_formed(all: &[Dialogue]) -> Result<(), String> {
    if std::env::var_os("DIALOGUES").is_none() && all.len() < 110 {
        return Err(format!("only {} dialogues", all.len()));
    }
    for d in all {
        let _ = config_text(d);
        if !d.steps.iter().any(|s| !s.expect.is_empty()) {
            return Err(format!("{}: never recorded (run record.py)", d.name));
        }
    }
    // The placeholders are what record.py writes.
    let checks = [
        (placeholders("250-vm Hello x", "vm"), "250-@HOST@ Hello x"),
        (
            placeholders("550 Invalid recipient: <vmail@vm>", "vm"),
            "550 Invalid recipient: <vmail@@HOST@>",
        ),
        (
            placeholders("250 2.0.0 0a1b2c3d Message accepted for delivery", "vm"),
            "250 2.0.0 @MSGID@ Message accepted for delivery",
        ),
        (escape(b"a\r\n\x00\\\xc3"), "a\\r\\n\\x00\\\\\\xc3"),
    ];
    for (got, want) in checks {
        if got != want {
            return Err(format!("{got:?} != {want:?}"));
        }
    }
    if unescape("a\\r\\n\\x00\\\\") != b"a\r\n\x00\\" {
        return Err("unescape".into());
    }
    Ok(())
}

/// One test per dialogue (a `harness = false` binary on libtest-mimic), so that a failure names
/// its file: `rsmtpd/NNN-name.dlg` replays it against ours, `opensmtpd/NNN-name.dlg` against the
/// real program (reported ignored, with its reason, where it cannot run; a failure under
/// `RSMTPD_CI=1`). `cargo test --test dialogues -- 163` runs those whose name contains 163.
/// They run `PARALLEL` at a time unless `--test-threads` says otherwise.
fn main() {
    let mut args = libtest_mimic::Arguments::from_args();
    if args.test_threads.is_none() {
        args.test_threads = Some(PARALLEL);
    }
    let all = load();
    let host = hostname();
    let real = real_available();
    let mut trials = Vec::new();
    let shared = std::sync::Arc::new(all);
    {
        let all = shared.clone();
        trials.push(libtest_mimic::Trial::test(
            "corpus/is_well_formed",
            move || corpus_is_well_formed(&all).map_err(Into::into),
        ));
    }
    for i in 0..shared.len() {
        let name = shared[i].name.clone();
        let (all, h) = (shared.clone(), host.clone());
        trials.push(libtest_mimic::Trial::test(
            format!("rsmtpd/{name}"),
            move || run_ours(&all[i], &h).map_err(Into::into),
        ));
        let (all, h) = (shared.clone(), host.clone());
        trials.push(libtest_mimic::Trial::ignorable_test(
            format!("opensmtpd/{name}"),
            move || {
                if !real {
                    let reason =
                        format!("the re-check against OpenSMTPD needs root and {REAL_SMTPD}");
                    if in_ci() {
                        return Err(format!("SKIPPED under RSMTPD_CI=1: {reason}").into());
                    }
                    return Ok(libtest_mimic::Completion::ignored_with(reason));
                }
                run_real(&all[i], &h)
                    .map(|()| libtest_mimic::Completion::Completed)
                    .map_err(Into::into)
            },
        ));
    }
    libtest_mimic::run(&args, trials).exit();
}
