//! The `smtpctl` personality (smtpctl.c): the command line parsed, the request sent to the
//! daemon, or the spool read when it is down.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use rsmtpd_control::*;
use rsmtpd_smtpctl::parser::{self, Param};
use rsmtpd_smtpctl::{encrypt, format};

use super::{errx, now, progname, spool_path, strerror, Conn};

fn target(params: &[Param], all: bool) -> Target {
    match params.first() {
        Some(Param::EvpId(id)) => Target::Envelope(*id),
        Some(Param::MsgId(id)) => Target::Message(*id),
        _ if all => Target::All,
        _ => Target::All,
    }
}

fn str_param(params: &[Param], i: usize) -> String {
    match params.get(i) {
        Some(Param::Str(s)) | Some(Param::Addr(s)) => s.clone(),
        _ => String::new(),
    }
}

fn check_trace(name: &str) {
    const OK: &[&str] = &[
        "imsg",
        "io",
        "smtp",
        "filters",
        "mta",
        "bounce",
        "scheduler",
        "lookup",
        "stat",
        "rules",
        "mproc",
        "expand",
        "all",
    ];
    if !OK.contains(&name) {
        errx(1, &format!("invalid trace keyword: {name}"));
    }
}

fn check_profile(name: &str) {
    if name != "imsg" && name != "queue" {
        errx(1, &format!("invalid profile keyword: {name}"));
    }
}

/// Whether the control socket belongs to us: a daemon started by the user running smtpctl.
fn own_daemon() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(super::socket_path())
        .is_ok_and(|m| m.uid() == nix::unistd::geteuid().as_raw())
}

pub fn smtpctl_main(args: &[String]) -> i32 {
    let (pattern, params) = match parser::parse(args) {
        Ok(p) => p,
        Err(parser::ParseFailure(text)) => {
            eprint!("{text}");
            return 255;
        }
    };
    // As smtpctl.c, only root may do more than the unprivileged commands; but a daemon run by
    // this very user (the quick start, the tests: its control socket is ours) lets its own user
    // do what root may, so the check is its to make.
    let privileged = nix::unistd::geteuid().is_root() || own_daemon();
    if !privileged && !parser::unprivileged(pattern) {
        errx(1, "need root privileges");
    }
    let words: Vec<&str> = pattern.split_whitespace().collect();
    match words.as_slice() {
        ["encrypt", ..] => do_encrypt(params.first().map(|_| str_param(&params, 0))),
        ["spf", "walk"] => super::spf::spf_walk(),
        ["show", "queue", ..] => show_queue(&params),
        ["show", "envelope", _] => {
            let Some(Param::EvpId(id)) = params.first() else {
                return 1;
            };
            let msgid = (*id >> 32) as u32;
            display(
                spool_path()
                    .join("queue")
                    .join(format!("{:02x}", msgid >> 24))
                    .join(format!("{msgid:08x}"))
                    .join(format!("{id:016x}")),
            )
        }
        ["show", "message", _] => {
            let msgid = match params.first() {
                Some(Param::EvpId(id)) => (*id >> 32) as u32,
                Some(Param::MsgId(m)) => *m,
                _ => return 1,
            };
            display(
                spool_path()
                    .join("queue")
                    .join(format!("{:02x}", msgid >> 24))
                    .join(format!("{msgid:08x}"))
                    .join("message"),
            )
        }
        ["show", "stats"] => {
            let mut c = Conn::must();
            match c.call(&Request::ShowStats) {
                Response::Stats { started, entries } => {
                    print!("{}", format::stats(started, &entries, now()));
                    0
                }
                _ => errx(1, "bad message type"),
            }
        }
        ["show", "status"] => {
            let mut c = Conn::must();
            match c.call(&Request::ShowStatus) {
                Response::Status(s) => {
                    print!("{}", format::status(&s));
                    0
                }
                _ => errx(1, "bad message type"),
            }
        }
        ["show", what] | ["show", "mta", what] => {
            let w = match *what {
                "hosts" => ShowWhat::Hosts,
                "relays" => ShowWhat::Relays,
                "routes" => ShowWhat::Routes,
                "hoststats" => ShowWhat::Hoststats,
                _ => ShowWhat::MtaBlock,
            };
            let mut c = Conn::must();
            if let Response::Lines(lines) = c.call(&Request::Show(w)) {
                for l in lines {
                    println!("{l}");
                }
            }
            0
        }
        ["schedule", _] | ["remove", _] | ["pause", "envelope", _] | ["resume", "envelope", _] => {
            let t = target(&params, true);
            let (req, verb) = match words[0] {
                "schedule" => (Request::Schedule(t), "scheduled"),
                "remove" => (Request::Remove(t), "removed"),
                "pause" => (Request::PauseEnvelope(t), "paused"),
                _ => (Request::ResumeEnvelope(t), "resumed"),
            };
            let n = Conn::must().count(req);
            print!("{}", format::envelopes_done(n, verb));
            0
        }
        ["discover", _] => {
            let mut c = Conn::must();
            if let Response::Count(n) = c.call(&Request::Discover(target(&params, false))) {
                print!("{}", format::envelopes_discovered(n));
            }
            0
        }
        [verb @ ("pause" | "resume"), "mta", "from", _, "for", _] => Conn::must().check(
            Request::MtaBlock {
                block: *verb == "pause",
                addr: str_param(&params, 0),
                domain: str_param(&params, 1),
            },
            true,
        ),
        ["resume", "route", _] => {
            let id = match params.first() {
                Some(Param::RouteId(r)) => *r,
                _ => 0,
            };
            Conn::must().check(Request::ResumeRoute(id), true)
        }
        [verb @ ("pause" | "resume"), sub] => {
            let s = match *sub {
                "mda" => Subsystem::Mda,
                "mta" => Subsystem::Mta,
                _ => Subsystem::Smtp,
            };
            let req = if *verb == "pause" {
                Request::Pause(s)
            } else {
                Request::Resume(s)
            };
            Conn::must().check(req, true)
        }
        ["log", level] => Conn::must().check(
            Request::Log(if *level == "verbose" {
                LogLevel::Verbose
            } else {
                LogLevel::Brief
            }),
            true,
        ),
        [verb @ ("trace" | "untrace"), _] => {
            let name = str_param(&params, 0);
            check_trace(&name);
            Conn::must().check(
                Request::Trace {
                    enable: *verb == "trace",
                    name,
                },
                true,
            )
        }
        [verb @ ("profile" | "unprofile"), _] => {
            let name = str_param(&params, 0);
            check_profile(&name);
            Conn::must().check(
                Request::Profile {
                    enable: *verb == "profile",
                    name,
                },
                true,
            )
        }
        ["update", "table", _] => {
            Conn::must().check(Request::UpdateTable(str_param(&params, 0)), true)
        }
        ["monitor"] => monitor(),
        _ => 1,
    }
}

/// smtpctl.c's `display()`: the file as it is; decrypted first when it is encrypted (`queue
/// encryption`, recognized by its first byte as `is_encrypted_fp()` does), with the key asked
/// as `key> ` (terminal, else stdin) up to three times until it has 32 bytes; then inflated when
/// it is gzip (`queue compression`), recognized by its magic bytes as `is_gzip_fp()` does.
fn display(path: PathBuf) -> i32 {
    let data = match std::fs::read(&path) {
        Ok(d) => d,
        Err(e) => errx(1, &format!("fopen: {}", strerror(&e))),
    };
    let data = if rsmtpd_queuecrypt::is_encrypted(&data) {
        let mut key = None;
        for _ in 0..3 {
            let answer = rsmtpd_queuecrypt::getpass("key> ").unwrap_or_default();
            key = rsmtpd_queuecrypt::Key::new(&answer);
            if key.is_some() {
                break;
            }
        }
        let Some(key) = key else {
            errx(1, "crypto-setup: invalid key");
        };
        match rsmtpd_queuecrypt::decrypt_buffer(&key, &data) {
            Ok(d) => d,
            Err(_) => {
                // OpenSMTPD prints the key it was given after the colon; a secret does not
                // belong on stdout.
                println!("object is encrypted");
                return 1;
            }
        }
    } else {
        data
    };
    let inflated = if data.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&data[..]), &mut out)
            .map(|_| out)
    } else {
        Ok(data)
    };
    match inflated {
        Ok(data) => {
            let _ = std::io::stdout().write_all(&data);
            0
        }
        Err(e) => errx(1, &format!("gzcat: {}", strerror(&e))),
    }
}

fn show_queue(params: &[Param]) -> i32 {
    let now = now();
    let Some(mut c) = Conn::connect() else {
        return show_queue_offline(now);
    };
    let msgid = match params.first() {
        Some(Param::MsgId(m)) => Some(*m),
        _ => None,
    };
    let mut from = msgid.map_or(0, |m| (m as u64) << 32);
    let out = std::io::stdout();
    let mut out = out.lock();
    loop {
        let page = match c.call(&Request::ListEnvelopes { msgid, from }) {
            Response::Envelopes(p) => p,
            _ => errx(1, "bad message type"),
        };
        let Some(last) = page.last() else { break };
        let next = last.id.wrapping_add(1);
        for e in &page {
            let _ = out.write_all(format::queue_line(e, now, true).as_bytes());
        }
        if next == 0 {
            break;
        }
        from = next;
    }
    0
}

fn show_queue_offline(now: i64) -> i32 {
    let _ = now;
    let queue = spool_path().join("queue");
    let mut files = Vec::new();
    let Ok(buckets) = std::fs::read_dir(&queue) else {
        errx(1, &format!("{}", spool_path().display()));
    };
    for b in buckets.flatten() {
        for m in std::fs::read_dir(b.path()).into_iter().flatten().flatten() {
            for f in std::fs::read_dir(m.path()).into_iter().flatten().flatten() {
                let name = f.file_name().to_string_lossy().into_owned();
                if let Ok(id) = u64::from_str_radix(&name, 16) {
                    files.push((id, f.path()));
                }
            }
        }
    }
    for (id, path) in files {
        let Ok(data) = std::fs::read(&path) else {
            continue;
        };
        // show_offline_envelope() reads neither, and says so.
        if rsmtpd_queuecrypt::is_encrypted(&data) {
            eprintln!(
                "{}: offline encrypted queue is not supported yet",
                progname()
            );
            continue;
        }
        if data.starts_with(&[0x1f, 0x8b]) {
            eprintln!(
                "{}: offline compressed queue is not supported yet",
                progname()
            );
            continue;
        }
        if let Ok(text) = String::from_utf8(data) {
            if let Some(e) = format::offline_envelope(id, &text) {
                print!("{}", format::queue_line(&e, now, false));
            }
        }
    }
    0
}

fn monitor() -> i32 {
    let mut c = Conn::must();
    let mut last = Digest::default();
    let mut count = 0u64;
    loop {
        let d = match c.call(&Request::GetDigest) {
            Response::Digest(d) => d,
            _ => errx(1, "bad message type"),
        };
        if count == 0 || count == 25 {
            if count == 25 {
                count = 0;
                println!();
            }
            print!("{}", format::MONITOR_HEADER);
        }
        print!("{}", format::monitor_line(&d, &last));
        let _ = std::io::stdout().flush();
        last = d;
        count += 1;
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}

fn do_encrypt(word: Option<String>) -> i32 {
    let hash = |w: &[u8]| encrypt::encrypt(w).unwrap_or_else(|e| errx(1, &format!("{e}")));
    match word {
        Some(w) => println!("{}", hash(w.as_bytes())),
        None => {
            let stdin = std::io::stdin();
            for line in stdin.lock().split(b'\n').map_while(Result::ok) {
                println!("{}", hash(&line));
            }
        }
    }
    0
}
