//! Local delivery agents: maildir, mbox, mda (a command), lmtp, and the file/pipe targets of
//! aliases and forwards. One call delivers one envelope:
//!
//! ```text
//! scheduler ──DeliveryRequest──▶ deliver() ──▶ Outcome { Ok | TempFail(stat) | PermFail(stat) }
//!              loop check, Return-Path/Delivered-To, %{...} expansion, run the agent as the user
//! ```
//!
//! The texts of `TempFail`/`PermFail` are what OpenSMTPD 6.8 logs after `stat=` (`Loop detected`,
//! `Error (temporary failure: "mail.maildir: No such file or directory")`, ...);
//! [`deliver_report`] also gives the envelope's `errorline` (the text without the `Error (…)`
//! wrapper, as the queue stores it).
//!
//! Privileges: when the daemon runs as root, every delivery runs in a process switched to the
//! user (`setgroups`, `setresgid`, `setresuid`, all three ids, so it cannot come back):
//! - maildir, mbox and mboxfile are our own code ([`job::Agent`]), run by a worker of the
//!   delivery process ([`process`]: a small helper started once, which keeps long-lived workers
//!   per user; [`client`] is the daemon's side). A worker reports an exit code and an error
//!   line, like OpenSMTPD's mail.* helpers, so the outcomes are the same as a forked agent's;
//! - mda commands and `|command` targets are `/bin/sh -c` started by such a worker (already
//!   the user), so the daemon itself never forks to deliver;
//! - lmtp needs no file system access, so it speaks to the server from the daemon itself.
//!
//! When not root, everything runs as our own user: agents on a blocking thread, commands as
//! plain children.

pub mod agent;
pub mod client;
pub mod command;
pub mod format;
pub mod headers;
pub mod job;
pub mod lmtp;
pub mod maildir;
pub mod mbox;
pub mod process;
mod worker;

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::Duration;

use rsmtpd_config::model::{Action, LocalDelivery, LocalMethod, Method};
use rsmtpd_protocol::address::Mailaddr;

use crate::routing::expand::Target;
use crate::routing::lookup::UserInfo;
use crate::sys::log;

use format::Values;
use headers::addr_text;
use job::{Agent, Job};

/// The result of one delivery attempt, with the `stat=` text OpenSMTPD logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    TempFail(String),
    PermFail(String),
}

impl Outcome {
    /// `Ok`, `TempFail` or `PermFail`, as in `result=`.
    pub fn result(&self) -> &'static str {
        match self {
            Outcome::Ok => "Ok",
            Outcome::TempFail(_) => "TempFail",
            Outcome::PermFail(_) => "PermFail",
        }
    }

    /// The `stat=` text (`Delivered` when Ok).
    pub fn stat(&self) -> &str {
        match self {
            Outcome::Ok => "Delivered",
            Outcome::TempFail(s) | Outcome::PermFail(s) => s,
        }
    }

    /// The delivery loop (`Delivered-To:` already present): OpenSMTPD logs it as a PermFail but
    /// the queue treats it apart (`IMSG_MDA_DELIVERY_LOOP`: class 4, delayed DSN with 4.4.6).
    pub fn is_loop(&self) -> bool {
        matches!(self, Outcome::PermFail(s) if s == LOOP)
    }
}

const LOOP: &str = "Loop detected";

/// The outcome and what the envelope keeps of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub outcome: Outcome,
    /// The envelope's `errorline`: `"last line"` quoted, or `exited abnormally`,
    /// `terminated; signal 9`... Empty when delivered.
    pub errorline: String,
}

/// Everything one delivery needs, as plain data.
#[derive(Debug, Clone)]
pub struct DeliveryRequest {
    pub sender: Mailaddr,
    /// The original RCPT (may be empty; then `Delivered-To:` names `dest`).
    pub rcpt: Mailaddr,
    pub dest: Mailaddr,
    /// `mda-subaddress` (the `+tag`, lowercased by the expansion).
    pub subaddress: String,
    /// What the envelope delivers to: the action's method, a file or a pipe.
    pub target: Target,
    /// The action (dispatcher) of the envelope.
    pub action: Action,
    /// The `mda wrapper` command named by the action, if any (resolved from the config).
    pub wrapper: Option<String>,
    /// The userbase entry of `mda-user`.
    pub user: UserInfo,
    /// The queued message (`Queue::message_path(msgid)`).
    pub message: PathBuf,
    /// How the queue encodes it (`queue compression`, `queue encryption`).
    pub codec: crate::queue::Codec,
    /// The name in maildir file names; `None` = `gethostname()` as mail.maildir does.
    pub hostname: Option<String>,
    /// Where system mailboxes live (`/var/mail`).
    pub mail_spool: PathBuf,
    /// The sub-address delimiter, for `%{...:strip}`.
    pub sub_addr_delim: char,
    /// The mda alarm (OpenSMTPD: 300 s).
    pub timeout: Duration,
}

impl DeliveryRequest {
    /// A request with OpenSMTPD's defaults for the rest.
    pub fn new(
        action: Action,
        user: UserInfo,
        message: PathBuf,
        sender: Mailaddr,
        rcpt: Mailaddr,
        dest: Mailaddr,
    ) -> DeliveryRequest {
        DeliveryRequest {
            sender,
            rcpt,
            dest,
            subaddress: String::new(),
            target: Target::Action,
            action,
            wrapper: None,
            user,
            message,
            codec: crate::queue::Codec::default(),
            hostname: None,
            mail_spool: PathBuf::from("/var/mail"),
            sub_addr_delim: '+',
            timeout: Duration::from_secs(300),
        }
    }
}

/// Delivers one envelope.
pub async fn deliver(req: &DeliveryRequest) -> Outcome {
    deliver_report(req).await.outcome
}

/// An agent's failure: its exit status and the line it printed (mail.maildir's `err()`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentError {
    pub code: i32,
    pub text: String,
}

impl AgentError {
    pub fn new(code: i32, text: String) -> AgentError {
        AgentError { code, text }
    }
}

/// How a delivery process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitKind {
    Exited(i32),
    Signaled(i32),
}

/// The credentials a delivery worker takes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Creds {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

impl Creds {
    /// Drops to these ids with raw system calls (safe between fork and exec: no allocation,
    /// no locks). Only for a process with one thread (a worker, a child about to exec): the
    /// raw calls change the calling thread's credentials, which are then the process's.
    pub fn drop_raw(&self) -> std::io::Result<()> {
        // SAFETY: plain system calls with a valid pointer and length.
        unsafe {
            if libc::syscall(
                libc::SYS_setgroups,
                self.groups.len() as libc::c_long,
                self.groups.as_ptr(),
            ) == -1
                || libc::syscall(libc::SYS_setresgid, self.gid, self.gid, self.gid) == -1
                || libc::syscall(libc::SYS_setresuid, self.uid, self.uid, self.uid) == -1
            {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(())
    }
}

pub use crate::sys::compat::strerror;

/// `strnvis(VIS_SAFE|VIS_CSTYLE|VIS_NL)` as OpenBSD's vis(3) encodes.
pub fn vis(s: &[u8]) -> String {
    let mut out = String::new();
    for (i, &c) in s.iter().enumerate() {
        let next_digit = s.get(i + 1).is_some_and(|n| (b'0'..=b'7').contains(n));
        let enc = match c {
            b'\\' => "\\\\".to_string(),
            b'\t' | b'\x08' | b'\x07' | b'\r' => (c as char).to_string(),
            0x21..=0x7e | b' ' => (c as char).to_string(),
            b'\n' => "\\n".into(),
            0x0b => "\\v".into(),
            0x0c => "\\f".into(),
            0 if next_digit => "\\000".into(),
            0 => "\\0".into(),
            _ => {
                let mut e = String::from("\\");
                if (c & 0x7f) == b' ' {
                    e = format!("\\{:03o}", c);
                    e
                } else {
                    let mut c7 = c;
                    if c7 & 0x80 != 0 {
                        c7 &= 0x7f;
                        e.push('M');
                    }
                    if c7 < 0x20 || c7 == 0x7f {
                        e.push('^');
                        e.push(if c7 == 0x7f { '?' } else { (c7 + b'@') as char });
                    } else {
                        e.push('-');
                        e.push(c7 as char);
                    }
                    e
                }
            }
        };
        // strnvis into mda.c's 256-byte buffer: 253 characters at most, whole encodings only.
        if out.len() + enc.len() > 253 {
            break;
        }
        out.push_str(&enc);
    }
    out
}

fn sysexit_text(code: i32) -> Option<&'static str> {
    Some(match code {
        64 => "command line usage error",
        65 => "data format error",
        66 => "cannot open input",
        67 => "user unknown",
        68 => "host name unknown",
        69 => "service unavailable",
        70 => "internal software error",
        71 => "system resource problem",
        72 => "critical OS file missing",
        73 => "can't create user output file",
        74 => "input/output error",
        75 => "temporary failure",
        76 => "remote error in protocol",
        77 => "permission denied",
        78 => "local configuration error",
        _ => return None,
    })
}

const EX_NOUSER: i32 = 67;
const EX_NOPERM: i32 = 77;
const EX_TEMPFAIL: i32 = 75;

fn failed(temp: bool, sysexit: i32, error: String) -> Report {
    let stat = match sysexit_text(sysexit) {
        Some(s) => format!("Error ({s}: {error})"),
        None => format!("Error ({error})"),
    };
    Report {
        outcome: if temp {
            Outcome::TempFail(stat)
        } else {
            Outcome::PermFail(stat)
        },
        errorline: error,
    }
}

/// A failure decided before anything ran (mda.c's fixed strings: no `Error (…)` wrapper).
fn plain(temp: bool, text: &str) -> Report {
    Report {
        outcome: if temp {
            Outcome::TempFail(text.into())
        } else {
            Outcome::PermFail(text.into())
        },
        errorline: text.into(),
    }
}

/// smtpd.c's SIGCHLD handler and mda.c's IMSG_MDA_DONE: exit status + output → outcome.
pub fn map_exit(exit: ExitKind, last: Option<&[u8]>, fully_written: bool) -> Report {
    let out = last.map(|l| format!("\"{}\"", vis(l)));
    match exit {
        ExitKind::Exited(0) if fully_written => Report {
            outcome: Outcome::Ok,
            errorline: String::new(),
        },
        ExitKind::Exited(0) => failed(true, 0, "mda exited prematurely".into()),
        ExitKind::Exited(n) => failed(
            n == 71 || n == 75,
            n,
            out.unwrap_or_else(|| "exited abnormally".into()),
        ),
        ExitKind::Signaled(sig) => {
            let cause = if sig == libc::SIGALRM {
                "terminated; timeout".to_string()
            } else {
                format!("terminated; signal {sig}")
            };
            failed(true, 0, out.unwrap_or(cause))
        }
    }
}

/// The user a delivery runs as (forkmda's `pw_*`).
struct RunAs {
    name: String,
    uid: u32,
    gid: u32,
    dir: String,
}

/// Deliveries switch users when we are root or the engine of a root parent (the "root" of
/// the code below: the delivery process does it).
fn is_root() -> bool {
    crate::privsep::delivers_as_users()
}

/// Runs an agent (native, or an mda command) on the message: as root, in a worker of the
/// delivery process switched to `creds`; otherwise on a blocking thread, as ourselves.
async fn run_native(
    creds: Option<Creds>,
    timeout: Duration,
    agent: Agent,
    prefix: Vec<u8>,
    message: File,
) -> Report {
    let Some(creds) = creds else {
        let r = tokio::task::spawn_blocking(move || agent.deliver(prefix, message, timeout)).await;
        return match r {
            Ok(f) => map_exit(f.exit, last_line(f.text).as_deref(), f.fully_written),
            Err(_) => plain(true, "Error (internal error)"),
        };
    };
    let uid = creds.uid;
    let job = Job {
        id: 0,
        creds,
        timeout,
        prefix,
        agent,
    };
    let done = client::deliver(job, message).await;
    if done.new_worker {
        log::debug(&format!(
            "debug: delivery: worker {} started for uid {uid}",
            done.worker
        ));
    }
    map_exit(
        done.exit,
        last_line(done.text).as_deref(),
        done.fully_written,
    )
}

/// The last line of an agent's output (it prints one error line; mda.c keeps the last).
fn last_line(text: Option<Vec<u8>>) -> Option<Vec<u8>> {
    let mut out = text?;
    if out.last() == Some(&b'\n') {
        out.pop();
    }
    let start = out.iter().rposition(|&c| c == b'\n').map_or(0, |p| p + 1);
    Some(out.split_off(start))
}

/// Delivers one envelope and says what the queue should remember: who it runs as, the message
/// with its loop check and delivery headers, then the agent its target and action name.
pub async fn deliver_report(req: &DeliveryRequest) -> Report {
    let Method::Local(local) = &req.action.method else {
        return plain(false, "Error (not a local action)");
    };
    if matches!(req.target, Target::Relay) {
        return plain(false, "Error (not a local delivery)");
    }
    let root = is_root();
    let pw = match run_as(req, local, root) {
        Ok(pw) => pw,
        Err(r) => return r,
    };
    let (message, prefix) = match open_message(req).await {
        Ok(m) => m,
        Err(r) => return r,
    };
    if req.wrapper.is_some() {
        return failed(
            true,
            EX_TEMPFAIL,
            "\"mda wrappers are not supported\"".into(),
        );
    }

    let values = Values {
        sender: Some(&req.sender),
        rcpt: Some(&req.rcpt),
        dest: Some(&req.dest),
        username: &req.user.username,
        directory: &req.user.directory,
        mda: None,
        delim: req.sub_addr_delim,
    };
    let expand = |raw: &str| format::expand(raw, &values).map_err(|_| not_expanded());
    let creds = |extra_group: Option<u32>| root.then(|| creds(&pw, extra_group));
    let env = agent_env(req, &pw);

    match command_line(req, local, &expand) {
        Err(r) => return r,
        Ok(Some(command)) => {
            let agent = Agent::Mda {
                command,
                env,
                home: pw.dir.clone(),
            };
            return run_native(creds(None), req.timeout, agent, prefix, message).await;
        }
        Ok(None) => {}
    }

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let from = match expand("%{mbox.from}") {
        Ok(f) => f,
        Err(r) => return r,
    };
    match (&req.target, &local.method) {
        (Target::File(path), _) => {
            let path = PathBuf::from(path);
            let from_line = mbox::from_line(&from, now);
            let agent = Agent::File { path, from_line };
            run_native(creds(None), req.timeout, agent, prefix, message).await
        }
        (_, LocalMethod::Mbox) => {
            let username = match expand("%{user.username}") {
                Ok(u) => u,
                Err(r) => return r,
            };
            let path = req.mail_spool.join(username);
            let from_line = mbox::from_line(&from, now);
            let spool_gid = std::fs::metadata(&req.mail_spool).ok().map(|m| m.gid());
            let agent = Agent::Mbox {
                path,
                from_line,
                owner: (req.user.uid, req.user.gid),
            };
            run_native(creds(spool_gid), req.timeout, agent, prefix, message).await
        }
        (_, LocalMethod::Maildir { path, junk }) => {
            let dir = match path.as_ref().map(|p| expand(&p.raw)).transpose() {
                Ok(d) => d,
                Err(r) => return r,
            };
            // Values that climb out of the folder (`..` from a .forward address): refused on
            // purpose, see maildir::dots_added.
            if let (Some(p), Some(d)) = (path, &dir) {
                if maildir::dots_added(&p.raw, &req.user.directory, d) {
                    return failed(
                        false,
                        EX_NOPERM,
                        format!("\"mail.maildir: {d}: expanded path escapes its folder\""),
                    );
                }
            }
            let agent = Agent::Maildir(maildir_of(req, &pw, dir, *junk, now));
            run_native(creds(None), req.timeout, agent, prefix, message).await
        }
        (
            _,
            LocalMethod::Lmtp {
                destination,
                rcpt_to,
            },
        ) => {
            let dest = match expand(&destination.raw) {
                Ok(d) => d,
                Err(r) => return r,
            };
            let l = lmtp::Lmtp {
                destination: dest,
                lhlo: "localhost".into(),
                mail_from: env
                    .iter()
                    .find(|(k, _)| k == "SENDER")
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default(),
                rcpt_to: if *rcpt_to {
                    format!("{}@{}", req.dest.user, req.dest.domain)
                } else {
                    pw.name.clone()
                },
            };
            deliver_lmtp(&l, req.timeout, prefix, message).await
        }
        _ => plain(false, "Error (no delivery method)"),
    }
}

/// forkmda(): who the delivery runs as: the recipient's user, or the action's `user`; never
/// root for a command or a file (then the recipient's user again), and as root only for mbox.
fn run_as(req: &DeliveryRequest, local: &LocalDelivery, root: bool) -> Result<RunAs, Report> {
    let is_mbox = matches!(local.method, LocalMethod::Mbox);
    let has_exec = matches!(req.target, Target::File(_) | Target::Pipe(_));
    let recipient = || RunAs {
        name: req.user.username.clone(),
        uid: req.user.uid,
        gid: req.user.gid,
        dir: req.user.directory.clone(),
    };
    let mut pw = recipient();
    if let Some(u) = &local.user {
        match nix::unistd::User::from_name(u) {
            Ok(Some(p)) => {
                pw = RunAs {
                    name: p.name,
                    uid: p.uid.as_raw(),
                    gid: p.gid.as_raw(),
                    dir: p.dir.to_string_lossy().into_owned(),
                }
            }
            _ => {
                return Err(failed(
                    false,
                    EX_NOUSER,
                    format!("delivery user '{u}' does not exist"),
                ))
            }
        }
    }
    if pw.uid == 0 && has_exec {
        pw = recipient();
    }
    if root && pw.uid == 0 && !is_mbox {
        return Err(failed(
            false,
            EX_NOPERM,
            format!("not allowed to deliver to: {}", req.user.username),
        ));
    }
    Ok(pw)
}

/// The message opened (decrypted, inflated), checked for a loop (a `Delivered-To:` of this
/// recipient), and the delivery headers to write before it.
async fn open_message(req: &DeliveryRequest) -> Result<(File, Vec<u8>), Report> {
    let path = req.message.clone();
    let codec = req.codec.clone();
    let dest_text = addr_text(&req.dest);
    let opened = tokio::task::spawn_blocking(move || -> std::io::Result<(File, bool)> {
        let mut f = crate::queue::open_message_file(&path, &codec)?;
        let looped = headers::check_loop(&mut f, &dest_text)?;
        Ok((f, looped))
    })
    .await;
    let (message, looped) = match opened {
        Ok(Ok(x)) => x,
        _ => return Err(plain(true, "Cannot get message fd")),
    };
    if looped {
        return Err(plain(false, LOOP));
    }
    let prefix = headers::delivery_headers(&req.sender, &req.rcpt, &req.dest);
    Ok((message, prefix))
}

/// What OpenSMTPD reports when a `%{...}` format of the delivery cannot be expanded.
fn not_expanded() -> Report {
    failed(
        false,
        1,
        "\"smtpd: mda command line could not be expanded\"".into(),
    )
}

/// The credentials of a delivery as root: the user's, with `extra_group` (the mail spool's,
/// for mbox) among its groups.
fn creds(pw: &RunAs, extra_group: Option<u32>) -> Creds {
    let mut groups = vec![pw.gid];
    if let Some(g) = extra_group {
        if g != pw.gid {
            groups.push(g);
        }
    }
    Creds {
        uid: pw.uid,
        gid: pw.gid,
        groups,
    }
}

/// The environment of an mda command or `|command` target, as mda.c sets it.
fn agent_env(req: &DeliveryRequest, pw: &RunAs) -> Vec<(String, String)> {
    let mut env = vec![
        ("PATH".to_string(), "/usr/bin:/bin".to_string()),
        ("DOMAIN".into(), req.rcpt.domain.clone()),
        ("HOME".into(), pw.dir.clone()),
        (
            "RECIPIENT".into(),
            format!("{}@{}", req.dest.user, req.dest.domain),
        ),
        ("SHELL".into(), "/bin/sh".into()),
        ("LOCAL".into(), req.rcpt.user.clone()),
        ("LOGNAME".into(), pw.name.clone()),
        ("USER".into(), pw.name.clone()),
        (
            "SENDER".into(),
            if req.sender.user.is_empty() {
                String::new()
            } else {
                format!("{}@{}", req.sender.user, req.sender.domain)
            },
        ),
    ];
    if !req.subaddress.is_empty() {
        env.push(("EXTENSION".into(), req.subaddress.clone()));
    }
    env
}

/// The command a delivery runs, if it runs one: a `|command` target, or `mda "CMD"`.
fn command_line(
    req: &DeliveryRequest,
    local: &LocalDelivery,
    expand: &dyn Fn(&str) -> Result<String, Report>,
) -> Result<Option<String>, Report> {
    Ok(match (&req.target, &local.method) {
        (Target::Pipe(cmd), _) => Some(expand(cmd)?),
        // mail.mda "CMD": the outer shell reads CMD inside double quotes, mail.mda's
        // system() runs the result with sh -c again.
        (Target::Action, LocalMethod::Mda { command }) => {
            Some(format!("exec /bin/sh -c \"{}\"", expand(&command.raw)?))
        }
        _ => None,
    })
}

/// The maildir agent: `dir` (expanded) or ~/Maildir, the host name of its file names.
fn maildir_of(
    req: &DeliveryRequest,
    pw: &RunAs,
    dir: Option<String>,
    junk: bool,
    now: i64,
) -> maildir::Maildir {
    let hostname = req.hostname.clone().unwrap_or_else(|| {
        nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "localhost".into())
    });
    maildir::Maildir {
        dir,
        home: pw.dir.clone(),
        junk,
        extension: req.subaddress.clone(),
        hostname,
        now,
        random: rand::random(),
    }
}

/// LMTP from the daemon itself (no file system access needed), within the delivery timeout.
async fn deliver_lmtp(l: &lmtp::Lmtp, timeout: Duration, prefix: Vec<u8>, message: File) -> Report {
    match tokio::time::timeout(timeout, lmtp::deliver(l, prefix, message)).await {
        Ok(Ok(())) => map_exit(ExitKind::Exited(0), None, true),
        Ok(Err(e)) => map_exit(ExitKind::Exited(e.code), Some(e.text.as_bytes()), true),
        Err(_) => map_exit(ExitKind::Signaled(libc::SIGALRM), None, true),
    }
}
