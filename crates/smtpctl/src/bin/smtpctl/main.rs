//! smtpctl: talks to the daemon over the control socket (`SMTPD_SOCKET`, default
//! /var/run/smtpd.sock); reads the spool (`SMTPD_SPOOL`, default /var/spool/smtpd) directly for
//! `show envelope`, `show message` and `show queue` when the daemon is down.
//!
//! One binary, several programs by the name it is run under, as OpenSMTPD's: `smtpctl`
//! and `mailq` ([`ctl`], smtpctl.c; its `spf walk` in [`spf`], spfwalk.c), `sendmail` and
//! `send-mail` ([`enqueue`], enqueue.c), `makemap` and `newaliases` ([`makemap`], makemap.c).

#![forbid(unsafe_code)]

mod ctl;
mod enqueue;
mod makemap;
mod spf;

use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::exit;

use rsmtpd_control::*;
use rsmtpd_smtpctl::{sendmail, Personality};

const EX_SOFTWARE: i32 = 70;
const EX_TEMPFAIL: i32 = 75;
const EX_UNAVAILABLE: i32 = 69;

/// The name we were run under (argv[0]'s last part), set once at start: the prefix of errors.
static PROGNAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();

fn progname() -> String {
    PROGNAME.get().map_or("smtpctl", String::as_str).to_string()
}

fn errx(code: i32, msg: &str) -> ! {
    eprintln!("{}: {}", progname(), msg);
    exit(code)
}

/// Whether we run with a group we were not given: installed setgid `opensmtpq` (as Debian's
/// smtpctl, so that `sendmail` can write to the spool's `offline/` while the daemon is down).
/// Until the group is dropped, the environment must not choose where we write, as glibc's
/// secure mode ignores it for the same reason.
fn setgid_run() -> bool {
    nix::unistd::getegid() != nix::unistd::getgid()
}

/// Drops the group of a setgid install (OpenSMTPD's `setresgid(gid, gid, gid)`): only
/// `sendmail` keeps it, and only until its offline file is open.
fn drop_setgid() {
    if setgid_run() {
        let gid = nix::unistd::getgid();
        if nix::unistd::setresgid(gid, gid, gid).is_err() {
            errx(1, "setresgid");
        }
    }
}

/// Our variable for the daemon's paths (tests, trying it out), unless running setgid.
fn path_var(name: &str) -> Option<PathBuf> {
    if setgid_run() {
        return None;
    }
    std::env::var_os(name).map(PathBuf::from)
}

fn socket_path() -> PathBuf {
    path_var("SMTPD_SOCKET").unwrap_or_else(|| "/var/run/smtpd.sock".into())
}

fn spool_path() -> PathBuf {
    path_var("SMTPD_SPOOL").unwrap_or_else(|| "/var/spool/smtpd".into())
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
    let _ = PROGNAME.set(name);
    let rest = &args[args.len().min(1)..];
    let personality = rsmtpd_smtpctl::personality(&argv0);
    if !matches!(personality, Personality::Sendmail) || sendmail::wants_newaliases(rest) {
        drop_setgid();
    }
    let code = match personality {
        Personality::Sendmail => {
            if sendmail::wants_newaliases(rest) {
                makemap::makemap_main(rest, true)
            } else {
                enqueue::sendmail_main(rest)
            }
        }
        Personality::Makemap => makemap::makemap_main(rest, false),
        Personality::Newaliases => {
            let r = makemap::makemap_main(rest, true);
            if let Some(mut c) = Conn::connect() {
                c.check(Request::UpdateTable("aliases".into()), false);
            }
            r
        }
        Personality::Mailq => ctl::smtpctl_main(&["show".into(), "queue".into()]),
        Personality::Smtpctl => ctl::smtpctl_main(rest),
        Personality::Unsupported => errx(1, "unsupported mode"),
    };
    exit(code)
}

fn strerror(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}
