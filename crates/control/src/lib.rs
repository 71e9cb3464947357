//! The control protocol between `smtpctl` (and its `sendmail`, `mailq`, `newaliases`
//! personalities) and the daemon, over the unix control socket. Pure: no sockets, no tokio.
//!
//! # Framing (version 1)
//!
//! Every message, either way, is one frame:
//!
//! ```text
//! length: u32, big-endian, of what follows (at most MAX_FRAME)
//! version: u8 = PROTOCOL_VERSION
//! tag: u8        which Request or Response
//! body           the variant's fields: integers big-endian; strings and byte strings as a u32
//!                length then the bytes; lists as a u32 count then the items; options as a
//!                0/1 byte then the value
//! ```
//!
//! The client sends one request and reads one response, as many times as it likes on one
//! connection. A frame whose version is not ours is answered with `Response::Fail(None)` in our
//! own version, and the client, seeing a version not its own, says "incompatible smtpctl and
//! smtpd" (OpenSMTPD's words). The daemon checks the peer's credentials (SO_PEERCRED):
//! root may do everything, other users only what [`Request::allowed_for`] says, which is what
//! OpenSMTPD's control.c allows them: local submission ([`Request::Enqueue`]) only.
//!
//! # Submission
//!
//! After `Request::Enqueue` is answered with `Response::Ok`, the connection stops carrying frames
//! and carries an SMTP session instead, the daemon being the server (banner first) and the
//! session's client address `local`, as OpenSMTPD's enqueue gets a socket to the smtp process.
//! `Response::Fail` means the daemon refused (smtp paused): "server disallowed submission
//! request".
//!
//! Other modules: [`map`] is the `db:` file format our `makemap` writes, [`offline`] the files
//! `sendmail` leaves in the spool's `offline/` directory when the daemon is down.

// Every unsafe block says why it is sound, and unsafe fns do not make their bodies unsafe.
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

pub mod map;
pub mod offline;
pub mod text;
pub mod wire;

use std::io::{self, Read, Write};

pub use wire::DecodeError;
use wire::{Reader, Writer};

/// The version byte of every frame.
pub const PROTOCOL_VERSION: u8 = 1;

/// The largest frame either side accepts (the length field's value).
pub const MAX_FRAME: u32 = 16 * 1024 * 1024;

/// How many envelopes the daemon puts in one [`Response::Envelopes`] page.
pub const ENVELOPE_PAGE: usize = 1000;

/// What an envelope command applies to: `<evpid>`, `<msgid>` or `all`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    Envelope(u64),
    Message(u32),
    All,
}

impl Target {
    /// Whether an envelope id falls under this target.
    pub fn matches(self, evpid: u64) -> bool {
        match self {
            Target::Envelope(id) => id == evpid,
            Target::Message(m) => (evpid >> 32) as u32 == m,
            Target::All => true,
        }
    }
}

/// A subsystem that `pause`/`resume` stop and start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Subsystem {
    Mda,
    Mta,
    Smtp,
}

/// `log brief` / `log verbose`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LogLevel {
    Brief,
    Verbose,
}

/// One request of the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// Local submission; after `Ok` the connection carries SMTP (see the crate doc).
    Enqueue,
    /// A page of envelopes with id >= `from`, of one message or of all, in increasing id order.
    /// An empty page ends the listing. Answer: `Envelopes`.
    ListEnvelopes {
        msgid: Option<u32>,
        from: u64,
    },
    /// Answer: `Count` (envelopes scheduled now).
    Schedule(Target),
    /// Answer: `Count` (envelopes removed).
    Remove(Target),
    /// Answer: `Count` (envelopes suspended).
    PauseEnvelope(Target),
    /// Answer: `Count` (envelopes resumed).
    ResumeEnvelope(Target),
    /// Re-read envelopes from the disk into the scheduler. Only `Envelope` and `Message`.
    /// Answer: `Count`.
    Discover(Target),
    /// Answer: `Ok`/`Fail`.
    Pause(Subsystem),
    Resume(Subsystem),
    /// `resume route ID`: Ok/Fail.
    ResumeRoute(u64),
    /// `pause|resume mta from ADDR for DOMAIN`: Ok/Fail.
    MtaBlock {
        block: bool,
        addr: String,
        domain: String,
    },
    /// Answer: `Status`.
    ShowStatus,
    /// Answer: `Stats`.
    ShowStats,
    /// Answer: `Digest` (for `monitor`).
    GetDigest,
    /// `show hosts|relays|routes|hoststats|mta paused`: answer `Lines`.
    Show(ShowWhat),
    /// Answer: Ok.
    Log(LogLevel),
    /// `trace|untrace NAME` (names as `smtpd -T`, already checked by smtpctl). Ok/Fail.
    Trace {
        enable: bool,
        name: String,
    },
    /// `profile|unprofile NAME`. Ok/Fail.
    Profile {
        enable: bool,
        name: String,
    },
    /// `update table NAME`: Ok when the table was updated; Fail when there is no such table or
    /// its file could not be loaded (it then keeps its contents).
    UpdateTable(String),
}

/// The informational lists of the relay side.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ShowWhat {
    Hosts,
    Relays,
    Routes,
    Hoststats,
    MtaBlock,
}

/// Where the envelope's message came from (the `ss` family).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    Local,
    Inet4,
    Inet6,
    Unknown,
}

/// Which agent delivers the envelope.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Agent {
    Mda,
    Mta,
    Bounce,
    Unknown,
}

/// The scheduler's state of an envelope.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RunState {
    /// Waiting; next attempt at this time (epoch seconds).
    Pending { nexttry: i64 },
    /// Being delivered (since `lasttry`).
    Inflight,
    /// Neither (OpenSMTPD prints `invalid|`).
    Invalid,
}

/// `flags` bits as `show queue` prints them, in its order.
pub mod flags {
    pub const BOUNCE: u32 = 0x01;
    pub const AUTH: u32 = 0x02;
    pub const INTERNAL: u32 = 0x04;
    pub const SUSPEND: u32 = 0x08;
    pub const HOLD: u32 = 0x10;
    /// Names in `show queue`'s order.
    pub const NAMES: [(u32, &str); 5] = [
        (BOUNCE, "bounce"),
        (AUTH, "auth"),
        (INTERNAL, "internal"),
        (SUSPEND, "suspend"),
        (HOLD, "hold"),
    ];
}

/// What `show queue` needs of one envelope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvelopeInfo {
    pub id: u64,
    pub source: Source,
    pub agent: Agent,
    /// [`flags`] bits.
    pub flags: u32,
    /// `user@domain` each (OpenSMTPD prints `@` even when both are empty).
    pub sender: String,
    pub rcpt: String,
    pub dest: String,
    pub creation: i64,
    /// Printed as creation + ttl.
    pub ttl: i64,
    pub lasttry: i64,
    pub retry: u32,
    pub state: RunState,
    pub errorline: String,
}

/// `show status`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Status {
    pub mda_paused: bool,
    pub mta_paused: bool,
    pub smtp_paused: bool,
}

/// One `show stats` value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StatValue {
    Counter(i64),
    Timestamp(i64),
}

/// `monitor`'s counters (OpenSMTPD's `struct stat_digest`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Digest {
    pub clt_connect: u64,
    pub clt_disconnect: u64,
    pub evp_enqueued: u64,
    pub evp_dequeued: u64,
    pub evp_expired: u64,
    pub evp_removed: u64,
    pub evp_bounce: u64,
    pub dlv_ok: u64,
    pub dlv_permfail: u64,
    pub dlv_tempfail: u64,
    pub dlv_loop: u64,
}

/// One answer of the daemon.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    Ok,
    /// With an optional reason (smtpctl prints `command failed: REASON`).
    Fail(Option<String>),
    Count(u64),
    Envelopes(Vec<EnvelopeInfo>),
    Status(Status),
    /// `started` is the daemon's start time (epoch seconds): smtpctl prints `uptime` from it.
    /// `entries` in any order; smtpctl sorts.
    Stats {
        started: i64,
        entries: Vec<(String, StatValue)>,
    },
    Digest(Digest),
    Lines(Vec<String>),
}

impl Request {
    /// Whether a peer with this effective uid may make the request (OpenSMTPD's control.c: only
    /// `IMSG_CTL_SMTP_SESSION` is open to everybody).
    pub fn allowed_for(&self, uid: u32) -> bool {
        uid == 0 || matches!(self, Request::Enqueue)
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut w = frame_start();
        match self {
            Request::Enqueue => w.u8(1),
            Request::ListEnvelopes { msgid, from } => {
                w.u8(2);
                match msgid {
                    None => w.u8(0),
                    Some(m) => {
                        w.u8(1);
                        w.u32(*m);
                    }
                }
                w.u64(*from);
            }
            Request::Schedule(t) => target(&mut w, 3, *t),
            Request::Remove(t) => target(&mut w, 4, *t),
            Request::PauseEnvelope(t) => target(&mut w, 5, *t),
            Request::ResumeEnvelope(t) => target(&mut w, 6, *t),
            Request::Discover(t) => target(&mut w, 7, *t),
            Request::Pause(s) => {
                w.u8(8);
                w.u8(subsystem_tag(*s));
            }
            Request::Resume(s) => {
                w.u8(9);
                w.u8(subsystem_tag(*s));
            }
            Request::ResumeRoute(id) => {
                w.u8(10);
                w.u64(*id);
            }
            Request::MtaBlock {
                block,
                addr,
                domain,
            } => {
                w.u8(11);
                w.bool(*block);
                w.str(addr);
                w.str(domain);
            }
            Request::ShowStatus => w.u8(12),
            Request::ShowStats => w.u8(13),
            Request::GetDigest => w.u8(14),
            Request::Show(s) => {
                w.u8(15);
                w.u8(match s {
                    ShowWhat::Hosts => 0,
                    ShowWhat::Relays => 1,
                    ShowWhat::Routes => 2,
                    ShowWhat::Hoststats => 3,
                    ShowWhat::MtaBlock => 4,
                });
            }
            Request::Log(l) => {
                w.u8(16);
                w.bool(*l == LogLevel::Verbose);
            }
            Request::Trace { enable, name } => {
                w.u8(17);
                w.bool(*enable);
                w.str(name);
            }
            Request::Profile { enable, name } => {
                w.u8(18);
                w.bool(*enable);
                w.str(name);
            }
            Request::UpdateTable(name) => {
                w.u8(19);
                w.str(name);
            }
        }
        frame_finish(w)
    }

    /// Decodes a frame's payload (what follows the length).
    pub fn decode(payload: &[u8]) -> Result<Request, DecodeError> {
        let mut r = payload_start(payload)?;
        let req = match r.u8()? {
            1 => Request::Enqueue,
            2 => {
                let msgid = if r.bool()? { Some(r.u32()?) } else { None };
                Request::ListEnvelopes {
                    msgid,
                    from: r.u64()?,
                }
            }
            3 => Request::Schedule(read_target(&mut r)?),
            4 => Request::Remove(read_target(&mut r)?),
            5 => Request::PauseEnvelope(read_target(&mut r)?),
            6 => Request::ResumeEnvelope(read_target(&mut r)?),
            7 => Request::Discover(read_target(&mut r)?),
            8 => Request::Pause(read_subsystem(&mut r)?),
            9 => Request::Resume(read_subsystem(&mut r)?),
            10 => Request::ResumeRoute(r.u64()?),
            11 => Request::MtaBlock {
                block: r.bool()?,
                addr: r.str()?,
                domain: r.str()?,
            },
            12 => Request::ShowStatus,
            13 => Request::ShowStats,
            14 => Request::GetDigest,
            15 => Request::Show(match r.u8()? {
                0 => ShowWhat::Hosts,
                1 => ShowWhat::Relays,
                2 => ShowWhat::Routes,
                3 => ShowWhat::Hoststats,
                4 => ShowWhat::MtaBlock,
                t => return Err(DecodeError::BadTag(t)),
            }),
            16 => Request::Log(if r.bool()? {
                LogLevel::Verbose
            } else {
                LogLevel::Brief
            }),
            17 => Request::Trace {
                enable: r.bool()?,
                name: r.str()?,
            },
            18 => Request::Profile {
                enable: r.bool()?,
                name: r.str()?,
            },
            19 => Request::UpdateTable(r.str()?),
            t => return Err(DecodeError::BadTag(t)),
        };
        r.end()?;
        Ok(req)
    }
}

impl Response {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = frame_start();
        match self {
            Response::Ok => w.u8(1),
            Response::Fail(reason) => {
                w.u8(2);
                w.opt_str(reason);
            }
            Response::Count(n) => {
                w.u8(3);
                w.u64(*n);
            }
            Response::Envelopes(list) => {
                w.u8(4);
                w.u32(list.len() as u32);
                for e in list {
                    write_envelope(&mut w, e);
                }
            }
            Response::Status(s) => {
                w.u8(5);
                w.bool(s.mda_paused);
                w.bool(s.mta_paused);
                w.bool(s.smtp_paused);
            }
            Response::Stats { started, entries } => {
                w.u8(6);
                w.i64(*started);
                w.u32(entries.len() as u32);
                for (k, v) in entries {
                    w.str(k);
                    match v {
                        StatValue::Counter(n) => {
                            w.u8(0);
                            w.i64(*n);
                        }
                        StatValue::Timestamp(n) => {
                            w.u8(1);
                            w.i64(*n);
                        }
                    }
                }
            }
            Response::Digest(d) => {
                w.u8(7);
                for v in digest_fields(d) {
                    w.u64(v);
                }
            }
            Response::Lines(lines) => {
                w.u8(8);
                w.u32(lines.len() as u32);
                for l in lines {
                    w.str(l);
                }
            }
        }
        frame_finish(w)
    }

    pub fn decode(payload: &[u8]) -> Result<Response, DecodeError> {
        let mut r = payload_start(payload)?;
        let resp = match r.u8()? {
            1 => Response::Ok,
            2 => Response::Fail(r.opt_str()?),
            3 => Response::Count(r.u64()?),
            4 => {
                let n = r.count(60)?;
                let mut list = Vec::with_capacity(n);
                for _ in 0..n {
                    list.push(read_envelope(&mut r)?);
                }
                Response::Envelopes(list)
            }
            5 => Response::Status(Status {
                mda_paused: r.bool()?,
                mta_paused: r.bool()?,
                smtp_paused: r.bool()?,
            }),
            6 => {
                let started = r.i64()?;
                let n = r.count(13)?;
                let mut entries = Vec::with_capacity(n);
                for _ in 0..n {
                    let k = r.str()?;
                    let v = match r.u8()? {
                        0 => StatValue::Counter(r.i64()?),
                        1 => StatValue::Timestamp(r.i64()?),
                        t => return Err(DecodeError::BadTag(t)),
                    };
                    entries.push((k, v));
                }
                Response::Stats { started, entries }
            }
            7 => {
                let mut v = [0u64; 11];
                for x in v.iter_mut() {
                    *x = r.u64()?;
                }
                Response::Digest(Digest {
                    clt_connect: v[0],
                    clt_disconnect: v[1],
                    evp_enqueued: v[2],
                    evp_dequeued: v[3],
                    evp_expired: v[4],
                    evp_removed: v[5],
                    evp_bounce: v[6],
                    dlv_ok: v[7],
                    dlv_permfail: v[8],
                    dlv_tempfail: v[9],
                    dlv_loop: v[10],
                })
            }
            8 => {
                let n = r.count(4)?;
                let mut lines = Vec::with_capacity(n);
                for _ in 0..n {
                    lines.push(r.str()?);
                }
                Response::Lines(lines)
            }
            t => return Err(DecodeError::BadTag(t)),
        };
        r.end()?;
        Ok(resp)
    }
}

fn digest_fields(d: &Digest) -> [u64; 11] {
    [
        d.clt_connect,
        d.clt_disconnect,
        d.evp_enqueued,
        d.evp_dequeued,
        d.evp_expired,
        d.evp_removed,
        d.evp_bounce,
        d.dlv_ok,
        d.dlv_permfail,
        d.dlv_tempfail,
        d.dlv_loop,
    ]
}

fn frame_start() -> Writer {
    let mut w = Writer::default();
    w.u32(0);
    w.u8(PROTOCOL_VERSION);
    w
}

fn frame_finish(mut w: Writer) -> Vec<u8> {
    let len = (w.buf.len() - 4) as u32;
    w.buf[..4].copy_from_slice(&len.to_be_bytes());
    w.buf
}

fn payload_start(payload: &[u8]) -> Result<Reader<'_>, DecodeError> {
    let mut r = Reader::new(payload);
    let v = r.u8()?;
    if v != PROTOCOL_VERSION {
        return Err(DecodeError::Version(v));
    }
    Ok(r)
}

fn target(w: &mut Writer, tag: u8, t: Target) {
    w.u8(tag);
    match t {
        Target::Envelope(id) => {
            w.u8(0);
            w.u64(id);
        }
        Target::Message(id) => {
            w.u8(1);
            w.u32(id);
        }
        Target::All => w.u8(2),
    }
}

fn read_target(r: &mut Reader<'_>) -> Result<Target, DecodeError> {
    match r.u8()? {
        0 => Ok(Target::Envelope(r.u64()?)),
        1 => Ok(Target::Message(r.u32()?)),
        2 => Ok(Target::All),
        t => Err(DecodeError::BadTag(t)),
    }
}

fn subsystem_tag(s: Subsystem) -> u8 {
    match s {
        Subsystem::Mda => 0,
        Subsystem::Mta => 1,
        Subsystem::Smtp => 2,
    }
}

fn read_subsystem(r: &mut Reader<'_>) -> Result<Subsystem, DecodeError> {
    match r.u8()? {
        0 => Ok(Subsystem::Mda),
        1 => Ok(Subsystem::Mta),
        2 => Ok(Subsystem::Smtp),
        t => Err(DecodeError::BadTag(t)),
    }
}

fn write_envelope(w: &mut Writer, e: &EnvelopeInfo) {
    w.u64(e.id);
    w.u8(match e.source {
        Source::Local => 0,
        Source::Inet4 => 1,
        Source::Inet6 => 2,
        Source::Unknown => 3,
    });
    w.u8(match e.agent {
        Agent::Mda => 0,
        Agent::Mta => 1,
        Agent::Bounce => 2,
        Agent::Unknown => 3,
    });
    w.u32(e.flags);
    w.str(&e.sender);
    w.str(&e.rcpt);
    w.str(&e.dest);
    w.i64(e.creation);
    w.i64(e.ttl);
    w.i64(e.lasttry);
    w.u32(e.retry);
    match e.state {
        RunState::Pending { nexttry } => {
            w.u8(0);
            w.i64(nexttry);
        }
        RunState::Inflight => w.u8(1),
        RunState::Invalid => w.u8(2),
    }
    w.str(&e.errorline);
}

fn read_envelope(r: &mut Reader<'_>) -> Result<EnvelopeInfo, DecodeError> {
    Ok(EnvelopeInfo {
        id: r.u64()?,
        source: match r.u8()? {
            0 => Source::Local,
            1 => Source::Inet4,
            2 => Source::Inet6,
            3 => Source::Unknown,
            t => return Err(DecodeError::BadTag(t)),
        },
        agent: match r.u8()? {
            0 => Agent::Mda,
            1 => Agent::Mta,
            2 => Agent::Bounce,
            3 => Agent::Unknown,
            t => return Err(DecodeError::BadTag(t)),
        },
        flags: r.u32()?,
        sender: r.str()?,
        rcpt: r.str()?,
        dest: r.str()?,
        creation: r.i64()?,
        ttl: r.i64()?,
        lasttry: r.i64()?,
        retry: r.u32()?,
        state: match r.u8()? {
            0 => RunState::Pending { nexttry: r.i64()? },
            1 => RunState::Inflight,
            2 => RunState::Invalid,
            t => return Err(DecodeError::BadTag(t)),
        },
        errorline: r.str()?,
    })
}

/// Checks a frame's length field: the payload length, or why the frame is refused.
pub fn frame_len(header: [u8; 4]) -> Result<usize, DecodeError> {
    let n = u32::from_be_bytes(header);
    if n > MAX_FRAME {
        return Err(DecodeError::TooLong(n));
    }
    Ok(n as usize)
}

/// Reads one frame's payload from a blocking stream. `Ok(None)` at a clean end of stream.
/// Reads exactly the frame and nothing more, so that after `Enqueue` the stream is untouched.
pub fn read_frame<R: Read>(r: &mut R) -> io::Result<Option<Vec<u8>>> {
    let mut hdr = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match r.read(&mut hdr[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let n = frame_len(hdr).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    let mut payload = vec![0u8; n];
    r.read_exact(&mut payload)?;
    Ok(Some(payload))
}

/// Writes an encoded frame (from `Request::encode`/`Response::encode`).
pub fn write_frame<W: Write>(w: &mut W, frame: &[u8]) -> io::Result<()> {
    w.write_all(frame)?;
    w.flush()
}

/// The version byte of a payload, if any (the client checks it to tell an incompatible daemon).
pub fn payload_version(payload: &[u8]) -> Option<u8> {
    payload.first().copied()
}
