//! A delivery job (which native agent writes which message as whom) and the packets that carry
//! it between the daemon, the delivery process and its workers:
//!
//! ```text
//! daemon ──Job + message fd──▶ delivery process ──Job + message fd──▶ worker (as the user)
//! daemon ◀───────Done───────── delivery process ◀─────Finished─────── worker
//! ```
//!
//! One message per `SOCK_SEQPACKET` packet, so there is no framing to get wrong; the queued
//! message's file descriptor travels beside a `Job` as `SCM_RIGHTS` (the daemon opened it: the
//! user the worker runs as cannot read the queue). The bytes are `rsmtpd_control::wire`'s
//! encoding behind a tag byte; decoding refuses a packet of the wrong kind and never panics.

use std::fs::File;
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::socket::{self, ControlMessage, ControlMessageOwned, MsgFlags};
use rsmtpd_control::wire::{DecodeError, Reader, Writer};

use super::maildir::{self, Maildir};
use super::{command, headers, mbox, AgentError, Creds, ExitKind};

/// The largest packet: a job is a few paths and the two delivery header lines, a reply one
/// error line (cut to [`MAX_TEXT`]).
pub const MAX_PACKET: usize = 32 * 1024;

/// The longest error line a worker sends back (mda.c keeps 256 bytes of it after vis()).
pub const MAX_TEXT: usize = 4096;

const TAG_JOB: u8 = 1;
const TAG_DONE: u8 = 2;
const TAG_FINISHED: u8 = 3;

/// The native agents: our own code, run in a worker as the user (or on a blocking thread of
/// the daemon when it is not root).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Agent {
    Maildir(Maildir),
    /// mail.local into the system mailbox `path`; the delivery process first creates it, as
    /// root, owned by `owner` (uid, gid), when it is missing (`mda_mbox_init`).
    Mbox {
        path: PathBuf,
        from_line: String,
        owner: (u32, u32),
    },
    /// mail.mboxfile: a `/path` target of an alias or `.forward`.
    File {
        path: PathBuf,
        from_line: String,
    },
    /// An `mda` command or a `|command` target: `/bin/sh -c COMMAND` with OpenSMTPD's
    /// environment, in `home`, fed the delivery headers and the message (`forkmda()`).
    Mda {
        command: String,
        env: Vec<(String, String)>,
        home: String,
    },
}

impl Agent {
    /// Delivers the delivery headers `prefix` and then `message`, as whoever runs this (a
    /// worker already switched to the user, or the daemon when it is not root).
    pub fn deliver(&self, prefix: Vec<u8>, message: File, timeout: Duration) -> Finished {
        let input = |prefix, message| headers::stream(prefix, message);
        let written = match self {
            Agent::Maildir(m) => maildir::deliver(m, input(prefix, message)).map(|_| ()),
            Agent::Mbox {
                path, from_line, ..
            } => mbox::deliver(path, from_line, input(prefix, message)),
            Agent::File { path, from_line } => {
                mbox::deliver_file(path, from_line, input(prefix, message))
            }
            Agent::Mda { command, env, home } => {
                let run = command::Run {
                    command: command.clone(),
                    env: env.clone(),
                    home: home.clone(),
                    timeout,
                };
                return match command::run(&run, prefix, message) {
                    Ok(f) => Finished {
                        exit: f.exit,
                        text: f.last_line,
                        fully_written: f.fully_written,
                    },
                    Err(e) => Finished::failed(AgentError::new(
                        71,
                        format!("fork: {}", super::strerror(&e)),
                    )),
                };
            }
        };
        match written {
            Ok(()) => Finished {
                exit: ExitKind::Exited(0),
                text: None,
                fully_written: true,
            },
            Err(e) => Finished::failed(e),
        }
    }

    /// What must happen as root before the user's worker runs the agent.
    pub fn prepare_as_root(&self) -> Result<(), AgentError> {
        match self {
            Agent::Mbox { path, owner, .. } => mbox::init(path, owner.0, owner.1),
            _ => Ok(()),
        }
    }
}

/// One delivery for the delivery process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// Chosen by the daemon; the reply carries it back.
    pub id: u64,
    pub creds: Creds,
    /// The mda alarm: the worker is killed when the job runs longer.
    pub timeout: Duration,
    /// `Return-Path:` and `Delivered-To:`, written before the queued message.
    pub prefix: Vec<u8>,
    pub agent: Agent,
}

impl Job {
    /// Runs the agent on the message, in a worker.
    pub fn run(&self, message: File) -> Finished {
        self.agent
            .deliver(self.prefix.clone(), message, self.timeout)
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.u8(TAG_JOB);
        w.u64(self.id);
        w.u32(self.creds.uid);
        w.u32(self.creds.gid);
        w.u32(self.creds.groups.len() as u32);
        for g in &self.creds.groups {
            w.u32(*g);
        }
        w.u64(self.timeout.as_millis().min(u64::MAX as u128) as u64);
        w.bytes(&self.prefix);
        match &self.agent {
            Agent::Maildir(m) => {
                w.u8(1);
                w.opt_str(&m.dir);
                w.str(&m.home);
                w.bool(m.junk);
                w.str(&m.extension);
                w.str(&m.hostname);
                w.i64(m.now);
                w.u32(m.random);
            }
            Agent::Mbox {
                path,
                from_line,
                owner,
            } => {
                w.u8(2);
                w.bytes(path.as_os_str().as_bytes());
                w.str(from_line);
                w.u32(owner.0);
                w.u32(owner.1);
            }
            Agent::File { path, from_line } => {
                w.u8(3);
                w.bytes(path.as_os_str().as_bytes());
                w.str(from_line);
            }
            Agent::Mda { command, env, home } => {
                w.u8(4);
                w.str(command);
                w.u32(env.len() as u32);
                for (k, v) in env {
                    w.str(k);
                    w.str(v);
                }
                w.str(home);
            }
        }
        w.buf
    }

    pub fn decode(data: &[u8]) -> Result<Job, DecodeError> {
        let mut r = Reader::new(data);
        tag(&mut r, TAG_JOB)?;
        let id = r.u64()?;
        let uid = r.u32()?;
        let gid = r.u32()?;
        let n = r.count(4)?;
        let mut groups = Vec::with_capacity(n);
        for _ in 0..n {
            groups.push(r.u32()?);
        }
        let timeout = Duration::from_millis(r.u64()?);
        let prefix = r.bytes()?.to_vec();
        let agent = match r.u8()? {
            1 => Agent::Maildir(Maildir {
                dir: r.opt_str()?,
                home: r.str()?,
                junk: r.bool()?,
                extension: r.str()?,
                hostname: r.str()?,
                now: r.i64()?,
                random: r.u32()?,
            }),
            2 => Agent::Mbox {
                path: path(&mut r)?,
                from_line: r.str()?,
                owner: (r.u32()?, r.u32()?),
            },
            3 => Agent::File {
                path: path(&mut r)?,
                from_line: r.str()?,
            },
            4 => {
                let command = r.str()?;
                let n = r.count(8)?;
                let mut env = Vec::with_capacity(n);
                for _ in 0..n {
                    env.push((r.str()?, r.str()?));
                }
                Agent::Mda {
                    command,
                    env,
                    home: r.str()?,
                }
            }
            t => return Err(DecodeError::BadTag(t)),
        };
        r.end()?;
        Ok(Job {
            id,
            creds: Creds { uid, gid, groups },
            timeout,
            prefix,
            agent,
        })
    }
}

/// The delivery process's answer to a job: how the agent ended, as a forked agent's exit
/// status and last line of output, so that `map_exit` gives the same outcome texts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Done {
    pub id: u64,
    pub exit: ExitKind,
    /// The agent's error line, if it printed one.
    pub text: Option<Vec<u8>>,
    /// Whether the whole message went in (an mda may exit before reading it all).
    pub fully_written: bool,
    /// The worker that ran it (0: none did, the job failed before).
    pub worker: u32,
    /// Whether that worker was started for this job (the daemon logs it at debug level).
    pub new_worker: bool,
}

impl Done {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.u8(TAG_DONE);
        w.u64(self.id);
        write_exit(&mut w, self.exit);
        opt_bytes(&mut w, self.text.as_deref());
        w.bool(self.fully_written);
        w.u32(self.worker);
        w.bool(self.new_worker);
        w.buf
    }

    pub fn decode(data: &[u8]) -> Result<Done, DecodeError> {
        let mut r = Reader::new(data);
        tag(&mut r, TAG_DONE)?;
        let id = r.u64()?;
        let exit = read_exit(&mut r)?;
        let text = read_opt_bytes(&mut r)?;
        let fully_written = r.bool()?;
        let worker = r.u32()?;
        let new_worker = r.bool()?;
        r.end()?;
        Ok(Done {
            id,
            exit,
            text,
            fully_written,
            worker,
            new_worker,
        })
    }
}

/// A worker's answer: how the agent ended, as a forked agent's exit status and last line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    pub exit: ExitKind,
    pub text: Option<Vec<u8>>,
    pub fully_written: bool,
}

impl Finished {
    /// A native agent's failure: its exit code and error line.
    pub fn failed(e: AgentError) -> Finished {
        Finished {
            exit: ExitKind::Exited(e.code),
            text: Some(e.text.into_bytes()),
            fully_written: true,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.u8(TAG_FINISHED);
        write_exit(&mut w, self.exit);
        opt_bytes(&mut w, self.text.as_deref());
        w.bool(self.fully_written);
        w.buf
    }

    pub fn decode(data: &[u8]) -> Result<Finished, DecodeError> {
        let mut r = Reader::new(data);
        tag(&mut r, TAG_FINISHED)?;
        let exit = read_exit(&mut r)?;
        let text = read_opt_bytes(&mut r)?;
        let fully_written = r.bool()?;
        r.end()?;
        Ok(Finished {
            exit,
            text,
            fully_written,
        })
    }
}

fn write_exit(w: &mut Writer, exit: ExitKind) {
    let (kind, n) = match exit {
        ExitKind::Exited(c) => (0, c),
        ExitKind::Signaled(s) => (1, s),
    };
    w.u8(kind);
    w.u32(n as u32);
}

fn read_exit(r: &mut Reader<'_>) -> Result<ExitKind, DecodeError> {
    Ok(match r.u8()? {
        0 => ExitKind::Exited(r.u32()? as i32),
        1 => ExitKind::Signaled(r.u32()? as i32),
        t => return Err(DecodeError::BadTag(t)),
    })
}

/// The id of a job packet that does not decode, to answer it with an error.
pub fn peek_id(data: &[u8]) -> Option<u64> {
    let mut r = Reader::new(data);
    tag(&mut r, TAG_JOB).ok()?;
    r.u64().ok()
}

/// An error line cut to [`MAX_TEXT`] bytes (its end is what counts: the last line).
pub fn cut_text(mut t: Vec<u8>) -> Vec<u8> {
    if t.len() > MAX_TEXT {
        t.drain(..t.len() - MAX_TEXT);
    }
    t
}

fn tag(r: &mut Reader<'_>, want: u8) -> Result<(), DecodeError> {
    match r.u8()? {
        t if t == want => Ok(()),
        t => Err(DecodeError::BadTag(t)),
    }
}

fn path(r: &mut Reader<'_>) -> Result<PathBuf, DecodeError> {
    Ok(PathBuf::from(std::ffi::OsString::from_vec(
        r.bytes()?.to_vec(),
    )))
}

fn opt_bytes(w: &mut Writer, v: Option<&[u8]>) {
    match v {
        None => w.u8(0),
        Some(b) => {
            w.u8(1);
            w.bytes(b);
        }
    }
}

fn read_opt_bytes(r: &mut Reader<'_>) -> Result<Option<Vec<u8>>, DecodeError> {
    Ok(if r.bool()? {
        Some(r.bytes()?.to_vec())
    } else {
        None
    })
}

/// What one receive gave.
#[derive(Debug)]
pub enum Packet {
    /// A packet, and the descriptor that came with it, if any.
    Data(Vec<u8>, Option<OwnedFd>),
    /// The other end is closed (its process exited).
    Eof,
}

/// Sends one packet, with `fd` attached when given. `MSG_NOSIGNAL`: a peer that died is an
/// `EPIPE` error, not a signal.
pub fn send(
    sock: BorrowedFd<'_>,
    data: &[u8],
    fd: Option<RawFd>,
    flags: MsgFlags,
) -> nix::Result<()> {
    let iov = [IoSlice::new(data)];
    let fds;
    let cmsgs: &[ControlMessage<'_>] = match fd {
        Some(f) => {
            fds = [f];
            &[ControlMessage::ScmRights(&fds)]
        }
        None => &[],
    };
    loop {
        match socket::sendmsg::<()>(
            sock.as_raw_fd(),
            &iov,
            cmsgs,
            flags | MsgFlags::MSG_NOSIGNAL,
            None,
        ) {
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
            Ok(n) if n == data.len() => return Ok(()),
            // A seqpacket send is all or nothing; anything else is a broken peer.
            Ok(_) => return Err(Errno::EMSGSIZE),
        }
    }
}

/// Receives one packet. Descriptors are received close-on-exec; a packet cut short (bigger than
/// [`MAX_PACKET`]) or carrying more than one descriptor is an error (the extra ones are closed).
pub fn recv(sock: BorrowedFd<'_>, flags: MsgFlags) -> nix::Result<Packet> {
    let mut buf = vec![0u8; MAX_PACKET];
    let mut cmsg = nix::cmsg_space!([RawFd; 1]);
    loop {
        let mut iov = [IoSliceMut::new(&mut buf)];
        let r = socket::recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            flags | MsgFlags::MSG_CMSG_CLOEXEC,
        );
        let msg = match r {
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
            Ok(m) => m,
        };
        let mut fds: Vec<OwnedFd> = Vec::new();
        if let Ok(cmsgs) = msg.cmsgs() {
            for c in cmsgs {
                if let ControlMessageOwned::ScmRights(v) = c {
                    for f in v {
                        // SAFETY: the kernel just installed this descriptor for us; nobody
                        // else owns it.
                        fds.push(unsafe { OwnedFd::from_raw_fd(f) });
                    }
                }
            }
        }
        let truncated = msg
            .flags
            .intersects(MsgFlags::MSG_TRUNC | MsgFlags::MSG_CTRUNC);
        let n = msg.bytes;
        if truncated || fds.len() > 1 {
            return Err(Errno::EMSGSIZE);
        }
        if n == 0 && fds.is_empty() {
            return Ok(Packet::Eof);
        }
        buf.truncate(n);
        return Ok(Packet::Data(buf, fds.pop()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn maildir_job() -> Job {
        Job {
            id: 7,
            creds: Creds {
                uid: 2000,
                gid: 2000,
                groups: vec![2000, 8],
            },
            timeout: Duration::from_secs(300),
            prefix: b"Return-Path: <a@b>\nDelivered-To: c@d\n".to_vec(),
            agent: Agent::Maildir(Maildir {
                dir: Some("/home/c/Maildir".into()),
                home: "/home/c".into(),
                junk: true,
                extension: "tag".into(),
                hostname: "vm".into(),
                now: 1_700_000_000,
                random: 0xdead_beef,
            }),
        }
    }

    #[test]
    fn round_trips() {
        let mut jobs = vec![maildir_job()];
        let mut j = maildir_job();
        j.agent = Agent::Mbox {
            path: PathBuf::from(std::ffi::OsString::from_vec(b"/var/mail/\xffx".to_vec())),
            from_line: "From a@b Wed Nov 25 11:39:20 2026\n".into(),
            owner: (2000, 2000),
        };
        jobs.push(j.clone());
        j.agent = Agent::File {
            path: "/tmp/f".into(),
            from_line: "From x\n".into(),
        };
        jobs.push(j.clone());
        j.agent = Agent::Mda {
            command: "exec /bin/sh -c \"procmail\"".into(),
            env: vec![
                ("HOME".into(), "/home/u".into()),
                ("USER".into(), "u".into()),
            ],
            home: "/home/u".into(),
        };
        jobs.push(j);
        for j in jobs {
            assert_eq!(Job::decode(&j.encode()), Ok(j));
        }
        let d = Done {
            id: 9,
            exit: ExitKind::Signaled(14),
            text: Some(b"mail.maildir: x".to_vec()),
            fully_written: true,
            worker: 1234,
            new_worker: true,
        };
        assert_eq!(Done::decode(&d.encode()), Ok(d));
        let f = Finished {
            exit: ExitKind::Exited(-1),
            text: None,
            fully_written: false,
        };
        assert_eq!(Finished::decode(&f.encode()), Ok(f));
    }

    #[test]
    fn garbage_is_refused_without_panic() {
        let full = maildir_job().encode();
        for n in 0..full.len() {
            assert!(Job::decode(&full[..n]).is_err(), "prefix of {n} bytes");
        }
        let mut extra = full.clone();
        extra.push(0);
        assert_eq!(Job::decode(&extra), Err(DecodeError::Trailing));
        // A packet of the wrong kind.
        assert!(Done::decode(&full).is_err());
        assert!(Finished::decode(&full).is_err());
        // A forged group count cannot make us allocate.
        let mut forged = vec![TAG_JOB];
        forged.extend_from_slice(&[0; 16]);
        forged.extend_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(Job::decode(&forged), Err(DecodeError::Truncated));
        // Every byte flipped, one at a time: errors or other jobs, never a panic.
        for i in 0..full.len() {
            let mut b = full.clone();
            b[i] ^= 0xff;
            let _ = Job::decode(&b);
        }
    }

    #[test]
    fn packets_carry_a_descriptor() {
        use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
        use std::io::{Read, Write};
        use std::os::fd::AsFd;
        let (a, b) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let mut f = tempfile_with(b"hello");
        let _ = f.flush();
        send(a.as_fd(), b"job", Some(f.as_raw_fd()), MsgFlags::empty())
            .unwrap_or_else(|e| panic!("{e}"));
        drop(f);
        match recv(b.as_fd(), MsgFlags::empty()) {
            Ok(Packet::Data(d, Some(fd))) => {
                assert_eq!(d, b"job");
                let mut s = String::new();
                let _ = File::from(fd).read_to_string(&mut s);
                assert_eq!(s, "hello");
            }
            other => panic!("{other:?}"),
        }
        drop(a);
        assert!(matches!(
            recv(b.as_fd(), MsgFlags::empty()),
            Ok(Packet::Eof)
        ));
    }

    fn tempfile_with(data: &[u8]) -> File {
        use std::io::{Seek, Write};
        let mut f = super::super::command::capture_file().unwrap_or_else(|e| panic!("{e}"));
        let _ = f.write_all(data);
        let _ = f.seek(std::io::SeekFrom::Start(0));
        f
    }
}
