//! What the engine asks the root parent, and the answers: small typed messages, one per
//! `SOCK_SEQPACKET` packet, with descriptors beside them (`wire.rs`).
//!
//! The parent trusts nothing it decodes: every length is checked against what is left, every
//! string must be UTF-8, and a packet with bytes left over is refused. The engine is as careful
//! with the answers (a parent does not lie, but a truncated packet must not panic it).

use std::fmt;

/// The longest packet either side sends (a certificate chain is the largest: a few KB; a
/// `.forward` at most `MAX_FORWARD_SIZE`). Below the default socket buffer, which bounds a
/// seqpacket datagram.
pub const MAX_PACKET: usize = 128 * 1024;

/// A pki's certificate as the engine serves it: the chain, and what the handshakes must know of
/// the key that stays in the parent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PkiCert {
    pub name: String,
    pub cert_path: String,
    pub key_path: String,
    /// Which key of that pki signs: a reload makes a new one, so that a handshake that began
    /// with the old certificate is never signed with the new key.
    pub generation: u64,
    /// DER certificates, end entity first.
    pub chain: Vec<Vec<u8>>,
    /// rustls' `SignatureAlgorithm` as its wire value (RSA 1, ECDSA 3, Ed25519 7, ...).
    pub algorithm: u8,
    /// The schemes the key can sign with, in the key's order of preference (wire values).
    pub schemes: Vec<u16>,
    /// The key's SubjectPublicKeyInfo, when the key type gives one.
    pub spki: Option<Vec<u8>>,
}

/// The outcome of opening a user's `~/.forward` (routing::forward::ForwardFile on the wire).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Forward {
    Missing,
    Content(Vec<u8>),
    PermFail,
    TempFail,
}

/// What the engine asks.
#[derive(Clone, PartialEq, Eq)]
pub enum Request {
    /// At start: the certificates of every pki (the parent has loaded them, and the keys).
    Hello,
    /// Sign `message` with `scheme` using the key of that pki and generation (the `ca`).
    Sign {
        pki: String,
        generation: u64,
        scheme: u16,
        message: Vec<u8>,
    },
    /// Look at the pki files; reload those that changed.
    PollPki,
    /// `parent_forward_open()`: the user's `~/.forward`, read with its checks.
    Forward {
        user: String,
        uid: u32,
        gid: u32,
        directory: String,
    },
    /// Start the configured filter process of that `proc` name; its pipes come back.
    SpawnFilter { name: String },
    /// Stop a filter process the parent started (and reap it) before it is restarted.
    KillFilter { pid: u32 },
    /// A new delivery process; the engine's end of its socket comes back.
    DeliveryProcess,
    /// `auth` of a system user through PAM (`parent_auth_user()`).
    Auth { user: Vec<u8>, password: Vec<u8> },
    /// The engine serves: resubmit what sendmail left in `offline/` meanwhile.
    Offline,
    /// Start the `table-BACKEND` program of an external table (6.8's `fork_proc_backend()`,
    /// which its lookup process runs); our end of its socket comes back, with a handle.
    SpawnTable {
        table: String,
        backend: String,
        arg: Option<String>,
    },
    /// Kill (and reap) the backend process of that `SpawnTable` handle, one that stopped
    /// answering: a handle, never a pid, so that nothing but a backend started for the engine,
    /// and still running, can be named.
    KillTable { handle: u64 },
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // Never the password.
            Request::Auth { user, .. } => f
                .debug_struct("Auth")
                .field("user", &String::from_utf8_lossy(user))
                .finish_non_exhaustive(),
            Request::Sign {
                pki,
                generation,
                scheme,
                ..
            } => f
                .debug_struct("Sign")
                .field("pki", pki)
                .field("generation", generation)
                .field("scheme", scheme)
                .finish_non_exhaustive(),
            Request::Hello => f.write_str("Hello"),
            Request::PollPki => f.write_str("PollPki"),
            Request::Forward { user, .. } => f
                .debug_struct("Forward")
                .field("user", user)
                .finish_non_exhaustive(),
            Request::SpawnFilter { name } => {
                f.debug_struct("SpawnFilter").field("name", name).finish()
            }
            Request::KillFilter { pid } => f.debug_struct("KillFilter").field("pid", pid).finish(),
            Request::DeliveryProcess => f.write_str("DeliveryProcess"),
            Request::Offline => f.write_str("Offline"),
            Request::SpawnTable {
                table,
                backend,
                arg,
            } => f
                .debug_struct("SpawnTable")
                .field("table", table)
                .field("backend", backend)
                .field("arg", arg)
                .finish(),
            Request::KillTable { handle } => {
                f.debug_struct("KillTable").field("handle", handle).finish()
            }
        }
    }
}

/// The parent's answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// Done; for `SpawnFilter` the descriptors are stdin, stdout, stderr, for
    /// `DeliveryProcess` the socket. `pid` is the process started, if any.
    Done {
        pid: u32,
    },
    /// It could not be done: the line to log (or to refuse the start with).
    Failed(String),
    /// `Hello`: every pki's certificate; or the lines the start is refused with.
    Pkis(Vec<PkiCert>),
    Refused(Vec<String>),
    /// `PollPki`: the lines to log, and the pkis reloaded.
    PkiChanges {
        lines: Vec<String>,
        reloaded: Vec<PkiCert>,
    },
    Signature(Vec<u8>),
    Forward(Forward),
    /// `Auth`: 0 accepted, 1 refused, 2 temporary failure.
    Auth(u8),
    /// `SpawnTable`: the backend's socket is beside it; `handle` names it for `KillTable` (the
    /// parent never hands out the same one twice), `pid` is for the logs.
    Table {
        handle: u64,
        pid: u32,
    },
}

/// A packet that does not decode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError(pub &'static str);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// Appends fields in the one encoding both sides use: integers little-endian, byte strings and
/// lists with a u32 length first.
#[derive(Default)]
struct Writer(Vec<u8>);

impl Writer {
    fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }
    fn u16(&mut self, v: u16) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn bytes(&mut self, b: &[u8]) -> &mut Self {
        // Packets are bounded by MAX_PACKET, far below u32::MAX.
        self.u32(u32::try_from(b.len()).unwrap_or(u32::MAX));
        self.0.extend_from_slice(b);
        self
    }
    fn str(&mut self, s: &str) -> &mut Self {
        self.bytes(s.as_bytes())
    }
    fn strs(&mut self, v: &[String]) -> &mut Self {
        self.u32(u32::try_from(v.len()).unwrap_or(u32::MAX));
        for s in v {
            self.str(s);
        }
        self
    }
    fn pki(&mut self, p: &PkiCert) -> &mut Self {
        self.str(&p.name)
            .str(&p.cert_path)
            .str(&p.key_path)
            .u64(p.generation);
        self.u32(u32::try_from(p.chain.len()).unwrap_or(u32::MAX));
        for c in &p.chain {
            self.bytes(c);
        }
        self.u8(p.algorithm);
        self.u32(u32::try_from(p.schemes.len()).unwrap_or(u32::MAX));
        for s in &p.schemes {
            self.u16(*s);
        }
        match &p.spki {
            Some(k) => self.u8(1).bytes(k),
            None => self.u8(0),
        }
    }
    fn pkis(&mut self, v: &[PkiCert]) -> &mut Self {
        self.u32(u32::try_from(v.len()).unwrap_or(u32::MAX));
        for p in v {
            self.pki(p);
        }
        self
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.0.len() < n {
            return Err(DecodeError("truncated packet"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, DecodeError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64, DecodeError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    fn len(&mut self) -> Result<usize, DecodeError> {
        let n = usize::try_from(self.u32()?).map_err(|_| DecodeError("length"))?;
        // No list or string can be longer than what is left: refuses absurd counts before
        // anything is allocated for them.
        if n > self.0.len() {
            return Err(DecodeError("length beyond the packet"));
        }
        Ok(n)
    }
    fn bytes(&mut self) -> Result<Vec<u8>, DecodeError> {
        let n = self.len()?;
        Ok(self.take(n)?.to_vec())
    }
    fn str(&mut self) -> Result<String, DecodeError> {
        String::from_utf8(self.bytes()?).map_err(|_| DecodeError("not UTF-8"))
    }
    fn strs(&mut self) -> Result<Vec<String>, DecodeError> {
        let n = self.len()?;
        (0..n).map(|_| self.str()).collect()
    }
    fn pki(&mut self) -> Result<PkiCert, DecodeError> {
        let name = self.str()?;
        let cert_path = self.str()?;
        let key_path = self.str()?;
        let generation = self.u64()?;
        let n = self.len()?;
        let chain = (0..n).map(|_| self.bytes()).collect::<Result<_, _>>()?;
        let algorithm = self.u8()?;
        let n = self.len()?;
        let schemes = (0..n).map(|_| self.u16()).collect::<Result<_, _>>()?;
        let spki = match self.u8()? {
            0 => None,
            1 => Some(self.bytes()?),
            _ => return Err(DecodeError("bad option")),
        };
        Ok(PkiCert {
            name,
            cert_path,
            key_path,
            generation,
            chain,
            algorithm,
            schemes,
            spki,
        })
    }
    fn pkis(&mut self) -> Result<Vec<PkiCert>, DecodeError> {
        let n = self.len()?;
        (0..n).map(|_| self.pki()).collect()
    }
    fn end<T>(&self, v: T) -> Result<T, DecodeError> {
        if self.0.is_empty() {
            Ok(v)
        } else {
            Err(DecodeError("bytes after the message"))
        }
    }
}

impl Request {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        match self {
            Request::Hello => w.u8(1),
            Request::Sign {
                pki,
                generation,
                scheme,
                message,
            } => w
                .u8(2)
                .str(pki)
                .u64(*generation)
                .u16(*scheme)
                .bytes(message),
            Request::PollPki => w.u8(3),
            Request::Forward {
                user,
                uid,
                gid,
                directory,
            } => w.u8(4).str(user).u32(*uid).u32(*gid).str(directory),
            Request::SpawnFilter { name } => w.u8(5).str(name),
            Request::KillFilter { pid } => w.u8(6).u32(*pid),
            Request::DeliveryProcess => w.u8(7),
            Request::Auth { user, password } => w.u8(8).bytes(user).bytes(password),
            Request::Offline => w.u8(9),
            Request::SpawnTable {
                table,
                backend,
                arg,
            } => {
                w.u8(10).str(table).str(backend);
                match arg {
                    Some(a) => w.u8(1).str(a),
                    None => w.u8(0),
                }
            }
            Request::KillTable { handle } => w.u8(11).u64(*handle),
        };
        w.0
    }

    pub fn decode(data: &[u8]) -> Result<Request, DecodeError> {
        let mut r = Reader(data);
        let req = match r.u8()? {
            1 => Request::Hello,
            2 => Request::Sign {
                pki: r.str()?,
                generation: r.u64()?,
                scheme: r.u16()?,
                message: r.bytes()?,
            },
            3 => Request::PollPki,
            4 => Request::Forward {
                user: r.str()?,
                uid: r.u32()?,
                gid: r.u32()?,
                directory: r.str()?,
            },
            5 => Request::SpawnFilter { name: r.str()? },
            6 => Request::KillFilter { pid: r.u32()? },
            7 => Request::DeliveryProcess,
            8 => Request::Auth {
                user: r.bytes()?,
                password: r.bytes()?,
            },
            9 => Request::Offline,
            10 => Request::SpawnTable {
                table: r.str()?,
                backend: r.str()?,
                arg: match r.u8()? {
                    0 => None,
                    1 => Some(r.str()?),
                    _ => return Err(DecodeError("bad option")),
                },
            },
            11 => Request::KillTable { handle: r.u64()? },
            _ => return Err(DecodeError("unknown request")),
        };
        r.end(req)
    }
}

impl Reply {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        match self {
            Reply::Done { pid } => w.u8(1).u32(*pid),
            Reply::Failed(line) => w.u8(2).str(line),
            Reply::Pkis(p) => w.u8(3).pkis(p),
            Reply::Refused(lines) => w.u8(4).strs(lines),
            Reply::PkiChanges { lines, reloaded } => w.u8(5).strs(lines).pkis(reloaded),
            Reply::Signature(s) => w.u8(6).bytes(s),
            Reply::Forward(f) => match f {
                Forward::Missing => w.u8(7).u8(0),
                Forward::Content(c) => w.u8(7).u8(1).bytes(c),
                Forward::PermFail => w.u8(7).u8(2),
                Forward::TempFail => w.u8(7).u8(3),
            },
            Reply::Auth(v) => w.u8(8).u8(*v),
            Reply::Table { handle, pid } => w.u8(9).u64(*handle).u32(*pid),
        };
        w.0
    }

    pub fn decode(data: &[u8]) -> Result<Reply, DecodeError> {
        let mut r = Reader(data);
        let rep = match r.u8()? {
            1 => Reply::Done { pid: r.u32()? },
            2 => Reply::Failed(r.str()?),
            3 => Reply::Pkis(r.pkis()?),
            4 => Reply::Refused(r.strs()?),
            5 => Reply::PkiChanges {
                lines: r.strs()?,
                reloaded: r.pkis()?,
            },
            6 => Reply::Signature(r.bytes()?),
            7 => Reply::Forward(match r.u8()? {
                0 => Forward::Missing,
                1 => Forward::Content(r.bytes()?),
                2 => Forward::PermFail,
                3 => Forward::TempFail,
                _ => return Err(DecodeError("bad forward outcome")),
            }),
            8 => Reply::Auth(r.u8()?),
            9 => Reply::Table {
                handle: r.u64()?,
                pid: r.u32()?,
            },
            _ => return Err(DecodeError("unknown reply")),
        };
        r.end(rep)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pki() -> PkiCert {
        PkiCert {
            name: "mx.example".into(),
            cert_path: "/etc/ssl/mx.crt".into(),
            key_path: "/etc/ssl/private/mx.key".into(),
            generation: 7,
            chain: vec![vec![0x30, 1, 2], vec![0x30, 3]],
            algorithm: 3,
            schemes: vec![0x0403],
            spki: Some(vec![9, 9]),
        }
    }

    fn requests() -> Vec<Request> {
        vec![
            Request::Hello,
            Request::Sign {
                pki: "mx.example".into(),
                generation: u64::MAX,
                scheme: 0x0804,
                message: vec![0; 200],
            },
            Request::PollPki,
            Request::Forward {
                user: "gilles".into(),
                uid: 1000,
                gid: 1000,
                directory: "/home/gilles".into(),
            },
            Request::SpawnFilter {
                name: "rspamd".into(),
            },
            Request::KillFilter { pid: 4242 },
            Request::DeliveryProcess,
            Request::Auth {
                user: b"bob".to_vec(),
                password: b"s\0cret".to_vec(),
            },
            Request::Offline,
            Request::SpawnTable {
                table: "users".into(),
                backend: "sqlite".into(),
                arg: Some("/etc/mail/sqlite.conf".into()),
            },
            Request::SpawnTable {
                table: "t".into(),
                backend: "ldap".into(),
                arg: None,
            },
            Request::KillTable { handle: u64::MAX },
        ]
    }

    fn replies() -> Vec<Reply> {
        vec![
            Reply::Done { pid: 1 },
            Reply::Failed("smtpd: getpwnam: No such file or directory".into()),
            Reply::Pkis(vec![
                pki(),
                PkiCert {
                    spki: None,
                    ..pki()
                },
            ]),
            Reply::Refused(vec!["a".into(), "b".into()]),
            Reply::PkiChanges {
                lines: vec!["info: pki x: reloaded".into()],
                reloaded: vec![pki()],
            },
            Reply::Signature(vec![1, 2, 3]),
            Reply::Forward(Forward::Missing),
            Reply::Forward(Forward::Content(b"bob@example.org\n".to_vec())),
            Reply::Forward(Forward::PermFail),
            Reply::Forward(Forward::TempFail),
            Reply::Auth(2),
            Reply::Table {
                handle: 3,
                pid: 4243,
            },
        ]
    }

    #[test]
    fn every_message_decodes_to_itself() {
        for r in requests() {
            assert_eq!(Request::decode(&r.encode()), Ok(r.clone()), "{r:?}");
        }
        for r in replies() {
            assert_eq!(Reply::decode(&r.encode()), Ok(r.clone()), "{r:?}");
        }
    }

    #[test]
    fn every_truncation_and_extension_is_refused_without_panic() {
        for r in requests() {
            let data = r.encode();
            for n in 0..data.len() {
                assert!(Request::decode(&data[..n]).is_err(), "{r:?} cut at {n}");
            }
            let mut longer = data.clone();
            longer.push(0);
            assert!(Request::decode(&longer).is_err(), "{r:?} + 1 byte");
        }
        for r in replies() {
            let data = r.encode();
            for n in 0..data.len() {
                assert!(Reply::decode(&data[..n]).is_err(), "{r:?} cut at {n}");
            }
        }
    }

    #[test]
    fn absurd_lengths_and_bad_text_are_refused() {
        // A list of 2^32-1 pkis in a 5-byte packet: refused before anything is allocated.
        assert!(Reply::decode(&[3, 0xff, 0xff, 0xff, 0xff]).is_err());
        // A name that is not UTF-8.
        assert_eq!(
            Request::decode(&[5, 1, 0, 0, 0, 0xff]),
            Err(DecodeError("not UTF-8"))
        );
        assert!(Request::decode(&[0]).is_err());
        assert!(Reply::decode(&[7, 9]).is_err());
    }

    #[test]
    fn the_password_is_not_in_debug_output() {
        let r = Request::Auth {
            user: b"bob".to_vec(),
            password: b"hunter2".to_vec(),
        };
        let shown = format!("{r:?}");
        assert!(
            shown.contains("bob") && !shown.contains("hunter2"),
            "{shown}"
        );
    }
}
