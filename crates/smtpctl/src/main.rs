//! smtpctl: talks to the daemon over the control socket (`SMTPD_SOCKET`, default
//! /var/run/smtpd.sock); reads the spool (`SMTPD_SPOOL`, default /var/spool/smtpd) directly for
//! `show envelope`, `show message` and `show queue` when the daemon is down.

// Nothing here needs unsafe code; keep it that way.
#![forbid(unsafe_code)]

use rsmtpd_control::text::time_to_text;
use std::io::{BufRead, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::exit;
use std::sync::OnceLock;

use rsmtpd_control::map::{self, MapKind};
use rsmtpd_control::*;
use rsmtpd_smtpctl::parser::{self, Param};
use rsmtpd_smtpctl::{encrypt, format, sendmail, usage, Personality};

const EX_SOFTWARE: i32 = 70;
const EX_TEMPFAIL: i32 = 75;
const EX_UNAVAILABLE: i32 = 69;

/// The name we were run as (`smtpctl`, `sendmail`, `mailq`...), for messages; set once in `main`.
static PROGNAME: OnceLock<String> = OnceLock::new();

fn progname() -> String {
    PROGNAME
        .get()
        .cloned()
        .unwrap_or_else(|| "smtpctl".to_string())
}

fn errx(code: i32, msg: &str) -> ! {
    eprintln!("{}: {}", progname(), msg);
    exit(code)
}

fn socket_path() -> PathBuf {
    std::env::var_os("SMTPD_SOCKET")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/var/run/smtpd.sock".into())
}

fn spool_path() -> PathBuf {
    std::env::var_os("SMTPD_SPOOL")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/var/spool/smtpd".into())
}

struct Conn(UnixStream);

impl Conn {
    fn connect() -> Option<Conn> {
        UnixStream::connect(socket_path()).ok().map(Conn)
    }
    fn must() -> Conn {
        Conn::connect().unwrap_or_else(|| errx(1, "smtpd doesn't seem to be running"))
    }
    fn call(&mut self, req: &Request) -> Response {
        if write_frame(&mut self.0, &req.encode()).is_err() {
            errx(1, "write error");
        }
        let payload = match read_frame(&mut self.0) {
            Ok(Some(p)) => p,
            Ok(None) => errx(1, "pipe closed"),
            Err(_) => errx(1, "imsg_read error"),
        };
        if payload_version(&payload) != Some(PROTOCOL_VERSION) {
            errx(1, "incompatible smtpctl and smtpd");
        }
        Response::decode(&payload).unwrap_or_else(|_| errx(1, "bad message type"))
    }
    fn count(&mut self, req: Request) -> u64 {
        match self.call(&req) {
            Response::Count(n) => n,
            Response::Fail(_) => 0,
            _ => errx(1, "bad message type"),
        }
    }
    /// Prints `command succeeded`/`command failed` and returns the exit code.
    fn check(&mut self, req: Request, verbose: bool) -> i32 {
        match self.call(&req) {
            Response::Ok => {
                if verbose {
                    println!("command succeeded");
                }
                0
            }
            Response::Fail(r) => {
                if verbose {
                    match r {
                        Some(r) => println!("command failed: {r}"),
                        None => println!("command failed"),
                    }
                }
                1
            }
            _ => errx(1, "bad message type"),
        }
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let argv0 = args.first().cloned().unwrap_or_else(|| "smtpctl".into());
    let name = argv0.rsplit('/').next().unwrap_or(&argv0).to_string();
    let _ = PROGNAME.set(name.clone());
    let rest = &args[args.len().min(1)..];
    let code = match rsmtpd_smtpctl::personality(&argv0) {
        Personality::Sendmail => {
            if sendmail::wants_newaliases(rest) {
                makemap_main(rest, true)
            } else {
                sendmail_main(rest)
            }
        }
        Personality::Makemap => makemap_main(rest, false),
        Personality::Newaliases => {
            let r = makemap_main(rest, true);
            if let Some(mut c) = Conn::connect() {
                c.check(Request::UpdateTable("aliases".into()), false);
            }
            r
        }
        Personality::Mailq => smtpctl_main(&["show".into(), "queue".into()]),
        Personality::Smtpctl => smtpctl_main(rest),
        Personality::Unsupported => errx(1, "unsupported mode"),
    };
    exit(code)
}

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

fn smtpctl_main(args: &[String]) -> i32 {
    let (pattern, params) = match parser::parse(args) {
        Ok(p) => p,
        Err(parser::ParseFailure(text)) => {
            eprint!("{text}");
            return 255;
        }
    };
    let privileged = nix::unistd::geteuid().is_root();
    if !privileged && !parser::unprivileged(pattern) {
        errx(1, "need root privileges");
    }
    let words: Vec<&str> = pattern.split_whitespace().collect();
    match words.as_slice() {
        ["encrypt", ..] => do_encrypt(params.first().map(|_| str_param(&params, 0))),
        ["spf", "walk"] => errx(1, "spf walk is not supported"),
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
        Err(e) => errx(1, &format!("fopen: {e}")),
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
        Err(e) => errx(1, &format!("gzcat: {e}")),
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

// ---------------------------------------------------------------- makemap / newaliases

fn makemap_main(args: &[String], newaliases: bool) -> i32 {
    let m = match rsmtpd_smtpctl::parse_makemap(args, newaliases) {
        Ok(m) => m,
        Err(e) if e == "usage" => {
            eprint!("{}", usage(Personality::Makemap, &progname(), newaliases));
            return 1;
        }
        Err(e) => errx(1, &e),
    };
    if m.newaliases && !nix::unistd::geteuid().is_root() {
        errx(1, "need root privileges");
    }
    let source = match (&m.source, m.newaliases) {
        (Some(s), _) => s.clone(),
        (None, _) => {
            let conf = m.config.clone().unwrap_or_else(|| {
                if std::path::Path::new("/etc/mail/smtpd.conf").exists() {
                    "/etc/mail/smtpd.conf".into()
                } else {
                    "/etc/smtpd.conf".into()
                }
            });
            rsmtpd_smtpctl::conf_aliases(&std::fs::read_to_string(&conf).unwrap_or_default())
        }
    };
    let kind = m.kind.unwrap_or(MapKind::Plain);
    if m.dump {
        let data =
            std::fs::read(&source).unwrap_or_else(|e| errx(1, &format!("dbopen: {source}: {e}")));
        let map = match map::read_map(&data) {
            Ok(map) => map,
            // A Berkeley DB file from OpenSMTPD's makemap: dumped as its dump_db() prints it,
            // each side up to its NUL.
            Err(e) => match rsmtpd_bdb::read(&data) {
                Ok(db) => {
                    let c_str = |b: &[u8]| b.split(|&c| c == 0).next().unwrap_or_default().to_vec();
                    let mut out = Vec::new();
                    for (k, v) in &db.entries {
                        out.extend(c_str(k));
                        out.push(b'\t');
                        out.extend(c_str(v));
                        out.push(b'\n');
                    }
                    let _ = std::io::stdout().write_all(&out);
                    return 0;
                }
                Err(_) => errx(1, &format!("dbopen: {source}: {e}")),
            },
        };
        for (k, v) in map.entries {
            let v = v.unwrap_or_else(|| "<set>".into());
            println!("{k}\t{v}");
        }
        return 0;
    }
    let output = m.output.clone().unwrap_or_else(|| format!("{source}.db"));
    let (text, meta) = if source == "-" {
        let mut s = String::new();
        let _ = std::io::stdin().read_to_string(&mut s);
        (s, None)
    } else {
        let meta = std::fs::metadata(&source)
            .unwrap_or_else(|e| errx(1, &format!("stat: {source}: {}", strerror(&e))));
        match std::fs::read(&source) {
            Ok(b) => (String::from_utf8_lossy(&b).into_owned(), Some(meta)),
            Err(e) => {
                eprintln!("{}: {source}: {}", progname(), strerror(&e));
                return 1;
            }
        }
    };
    let entries =
        match map::parse_source_checked(&text, kind, &rsmtpd::routing::alias::is_valid_node) {
            Ok(e) => e,
            Err(e) => {
                eprintln!("{}: {}", progname(), e.message(&source));
                return 1;
            }
        };
    let tmp = format!("{output}.{}", std::process::id());
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&tmp)?;
        if let Some(md) = &meta {
            use std::os::unix::fs::MetadataExt;
            f.set_permissions(std::fs::Permissions::from_mode(md.mode() & 0o7777))?;
            let _ = std::os::unix::fs::fchown(&f, Some(md.uid()), Some(md.gid()));
        }
        f.write_all(&map::write_map(kind, &entries))?;
        f.sync_all()?;
        std::fs::rename(&tmp, &output)
    };
    if let Err(e) = write() {
        let _ = std::fs::remove_file(&tmp);
        eprintln!("{}: {tmp}: {}", progname(), strerror(&e));
        return 1;
    }
    if m.newaliases {
        println!("{source}: {} aliases", entries.len());
    } else if entries.is_empty() {
        eprintln!("{}: warning: empty map created: {output}", progname());
    }
    0
}

fn strerror(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

// ---------------------------------------------------------------- sendmail

fn mailname() -> String {
    if let Ok(s) = std::fs::read_to_string("/etc/mailname") {
        if let Some(l) = s.lines().next() {
            let l = l.trim();
            if !l.is_empty() {
                return l.to_string();
            }
        }
    }
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into())
}

fn offline_file() -> (std::fs::File, PathBuf) {
    let dir = spool_path().join("offline");
    for _ in 0..100 {
        let salt = encrypt::random_salt().unwrap_or_default();
        let suffix: String = salt
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .take(10)
            .collect();
        let path = dir.join(format!("{}.{suffix:0<10}", now()));
        match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(f) => {
                // The folder's group, as a setgid smtpctl gives it (OpenSMTPD's smtpctl is
                // setgid to the queue group): the daemon submits only files of that group. Root
                // and members of the group may set it; anyone else could not write here.
                if let Ok(md) = std::fs::metadata(&dir) {
                    use std::os::unix::fs::MetadataExt;
                    let _ = std::os::unix::fs::fchown(&f, None, Some(md.gid()));
                }
                return (f, path);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => errx(
                EX_UNAVAILABLE,
                &format!(
                    "cannot create temporary file {}: {}",
                    path.display(),
                    strerror(&e)
                ),
            ),
        }
    }
    errx(EX_UNAVAILABLE, "cannot create temporary file")
}

fn sendmail_main(args: &[String]) -> i32 {
    let conn = Conn::connect();
    let mut offline = if conn.is_none() {
        Some(offline_file())
    } else {
        None
    };
    let fail_offline = |offline: &mut Option<(std::fs::File, PathBuf)>| {
        if let Some((_, p)) = offline.take() {
            let _ = std::fs::remove_file(p);
        }
    };
    let o = match sendmail::parse_args(args) {
        Ok(o) => o,
        Err(sendmail::OptError::Bad(m)) => {
            fail_offline(&mut offline);
            eprintln!("{}: {m}", progname());
            eprint!("{}", usage(Personality::Sendmail, &progname(), false));
            return 1;
        }
    };
    if o.queue_run {
        fail_offline(&mut offline);
        return EX_SOFTWARE;
    }
    let host = mailname();
    let ruid = nix::unistd::getuid();
    let pw = nix::unistd::User::from_uid(ruid).ok().flatten();
    let user = if o.no_getlogin {
        pw.as_ref()
            .map_or("anonymous".to_string(), |p| p.name.clone())
    } else {
        let login = std::env::var("LOGNAME").ok().filter(|s| !s.is_empty());
        match login.and_then(|l| nix::unistd::User::from_name(&l).ok().flatten()) {
            Some(p) if ruid.is_root() || p.uid == ruid => p.name,
            _ => pw
                .as_ref()
                .map_or("anonymous".to_string(), |p| p.name.clone()),
        }
    };
    let mut from = sendmail::envelope_from(o.from.as_deref(), &user, &host).unwrap_or_else(|e| {
        fail_offline(&mut offline);
        errx(1, &e.0)
    });
    let mut fromname = o.fromname.clone();
    if fromname.is_none() && o.from.is_none() {
        if let Some(p) = &pw {
            fromname = Some(sendmail::gecos_name(&p.gecos.to_string_lossy(), &p.name));
        }
    }
    let mut rcpts = Vec::new();
    for r in &o.recipients {
        sendmail::rcpt_add(&mut rcpts, r, &host);
    }
    let mut input = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut input);
    let msg = match sendmail::parse_message(&input, o.from.is_none(), o.tflag, &host) {
        Ok(m) => m,
        Err(e) => {
            fail_offline(&mut offline);
            errx(1, &e.0)
        }
    };
    if let Some(f) = &msg.from {
        from = f.clone();
    }
    rcpts.extend(msg.rcpts.iter().cloned());
    if rcpts.is_empty() {
        fail_offline(&mut offline);
        errx(EX_SOFTWARE, "no recipients");
    }
    if let Some((mut f, path)) = offline.take() {
        if let Some(bad) = offline::illegal_argument(args) {
            let _ = f.set_len(0);
            eprintln!("{}: {bad} contains illegal character", progname());
            let _ = path;
            return EX_SOFTWARE;
        }
        if f.write_all(&offline::write_offline(args, &msg.text))
            .is_err()
        {
            let _ = f.set_len(0);
            errx(EX_UNAVAILABLE, "write error");
        }
        return EX_TEMPFAIL;
    }
    let Some(mut conn) = conn else {
        return EX_TEMPFAIL;
    };
    match conn.call(&Request::Enqueue) {
        Response::Ok => {}
        Response::Fail(_) => errx(1, "server disallowed submission request"),
        _ => errx(1, "unexpected imsg reply type"),
    }
    let date = time_to_text(now());
    let ok = smtp_dialogue(conn.0, &o, &from, fromname.as_deref(), &rcpts, &msg, &date);
    if ok {
        0
    } else {
        if let Some(p) = &pw {
            save_dead_letter(&p.dir, &msg, &from, fromname.as_deref(), &date);
        }
        EX_SOFTWARE
    }
}

/// enqueue.c's dialogue with the local server, on the protocol crate's client: `EHLO
/// localhost`, MAIL and RCPT lines with enqueue.c's bytes (trailing spaces included), DATA, the
/// message, `.`, `QUIT`; with `-v`, `>>> ` and `<<< ` echoes of every command and reply line.
/// The first refusal ends it (`command failed: LINE`), as does a reply that is not one (`bad
/// response`). A server that closes before `QUIT` is answered is a failure (enqueue.c took EOF
/// for a positive reply and could report a message it never sent).
fn smtp_dialogue(
    stream: UnixStream,
    o: &sendmail::Options,
    from: &str,
    fromname: Option<&str>,
    rcpts: &[String],
    msg: &sendmail::Message,
    date: &str,
) -> bool {
    use rsmtpd_protocol::client::{
        Client, ClientConfig, Close, Event, Outcome, Recipient, ReplyParser, Transaction,
    };
    use std::time::Instant;

    let mut w = match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return false,
    };
    let mut r = stream;
    let verbose = o.verbose;
    let mut cfg = ClientConfig::new("localhost");
    cfg.pipelining = false;
    cfg.mail_parameters = false;
    cfg.helo_fallback = false;
    cfg.rset_after_failure = false;
    cfg.strict_recipients = true;
    let mut client = Client::new(cfg, Instant::now(), false);
    let line = |l: String| l.strip_suffix("\r\n").map(str::to_string).unwrap_or(l);
    let mut tx = Transaction::new(
        from.to_string(),
        rcpts.iter().map(|r| Recipient::new(r.clone())).collect(),
    );
    tx.mail_line = Some(line(sendmail::mail_from_line(from, o)));
    tx.rcpt_lines = Some(
        rcpts
            .iter()
            .map(|r| line(sendmail::rcpt_line(r, o)))
            .collect(),
    );
    let mut tx = Some(tx);
    // What -v shows: the replies' lines as they come, read by a parser of their own.
    let mut echo = ReplyParser::new();
    let mut sent = false;
    let mut buf = vec![0u8; 8192];
    let failed = |text: &str| {
        // warnx() adds a newline to the reply's own: enqueue.c prints a blank line after.
        eprintln!("{}: command failed: {text}\n", progname());
        false
    };
    loop {
        while let Some(ev) = client.poll_event() {
            let now = Instant::now();
            match ev {
                Event::Write(b) => {
                    if verbose {
                        print!(">>> {}", String::from_utf8_lossy(&b));
                    }
                    if w.write_all(&b).is_err() {
                        return false;
                    }
                }
                Event::Ready => match tx.take() {
                    Some(t) => client.send(now, t),
                    None if sent => client.quit(now),
                    None => return false,
                },
                Event::SendBody => {
                    let data = sendmail::data_section(msg, from, fromname, date);
                    // The final ".\r\n" is the client's, echoed with -v.
                    let body = data.strip_suffix(b".\r\n").unwrap_or(&data);
                    if w.write_all(body).is_err() {
                        return false;
                    }
                    client.body_end(Instant::now());
                }
                Event::Done(outcomes) => match outcomes.into_iter().next() {
                    Some(Outcome::Delivered(_)) => sent = true,
                    Some(Outcome::TempFail(t, r)) | Some(Outcome::PermFail(t, r)) => {
                        return failed(&r.map_or(t, |r| r.last_line()));
                    }
                    None => return false,
                },
                Event::StartTls => return false,
                Event::Closed(Close::Quit { .. }) => return sent,
                Event::Closed(Close::Error { reason, reply, .. }) => {
                    if let Some(r) = reply {
                        return failed(&r.last_line());
                    }
                    if reason.starts_with("Bad response") || reason == "Input too long" {
                        eprintln!("{}: bad response", progname());
                    }
                    return false;
                }
            }
        }
        let _ = r.set_read_timeout(client.poll_timeout().map(|d| {
            d.saturating_duration_since(Instant::now())
                .max(std::time::Duration::from_millis(1))
        }));
        match r.read(&mut buf) {
            Ok(0) => client.peer_closed(),
            Ok(n) => {
                if verbose {
                    echo.push(&buf[..n]);
                    while let Some(Ok(reply)) = echo.next_reply() {
                        let last = reply.lines.len() - 1;
                        for (i, l) in reply.lines.iter().enumerate() {
                            let sep = if i < last { '-' } else { ' ' };
                            println!("<<< {:03}{sep}{l}", reply.code);
                        }
                    }
                }
                client.receive(Instant::now(), &buf[..n]);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                client.handle_timeout(Instant::now())
            }
            Err(e) => {
                eprintln!("{}: getline: {}", progname(), strerror(&e));
                return false;
            }
        }
    }
}

fn save_dead_letter(
    home: &std::path::Path,
    msg: &sendmail::Message,
    from: &str,
    fromname: Option<&str>,
    date: &str,
) {
    let mut out = sendmail::added_headers(msg, from, fromname, date, "\n");
    if msg.noheader {
        out.push(b'\n');
    }
    out.extend_from_slice(&msg.text);
    out.push(b'\n');
    let _ = std::fs::write(home.join("dead.letter"), out);
}
