//! The envelope and its on-disk text form, byte for byte OpenSMTPD's
//! (`envelope.c`, version 3): `key: value\n` lines in a fixed order, empty
//! strings and zero-default optional fields left out. `smtpctl show envelope`
//! prints the same text, and an OpenSMTPD spool can be taken over as is.
//!
//! Parsing follows `envelope_load_buffer`: every line must end with `\n`, a
//! key is `[A-Za-z0-9-]+`, blanks around the `:` are skipped, a repeated key
//! keeps its last value, an unknown key or a bad value rejects the whole
//! envelope, `version` (spelled in lower case) must be 3, and numbers follow
//! `strtonum` (sign allowed, no trailing garbage, range-checked).
//!
//! One deliberate difference: OpenSMTPD copies strings into fixed C buffers
//! and refuses an envelope whose field would not fit. We never truncate, so
//! we accept any length (up to the file size limit of the queue): refusing
//! our own long `helo` after a restart would lose mail.

use crate::sys::compat::strip_prefix_ci;
use std::fmt;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use rsmtpd_protocol::address::Mailaddr;

use super::id::EvpId;

/// `SMTPD_ENVELOPE_VERSION`: always written, required when reading.
pub const ENVELOPE_VERSION: u32 = 3;

/// `dsn-notify` bits.
pub const DSN_SUCCESS: u8 = 0x01;
pub const DSN_FAILURE: u8 = 0x02;
pub const DSN_DELAY: u8 = 0x04;
pub const DSN_NEVER: u8 = 0x08;

/// `type`: which agent delivers the envelope.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum DeliveryType {
    /// Local delivery (the C enum's 0, hence the default of a missing key).
    #[default]
    Mda,
    Mta,
    Bounce,
}

/// `bounce-type` of a bounce envelope.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum BounceType {
    #[default]
    Failed,
    Delayed,
    Delivered,
}

/// `dsn-ret`, present only when the client gave `RET=`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DsnRet {
    Full,
    Hdrs,
}

/// The client's address (`struct sockaddr_storage ss`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum SockAddr {
    /// AF_UNSPEC: nothing written.
    #[default]
    Unspec,
    /// The unix socket: `local`.
    Local,
    Ip(IpAddr),
}

/// `flags`: the bits OpenSMTPD saves (runstate bits never reach the disk).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct EnvelopeFlags(pub u32);

impl EnvelopeFlags {
    pub const AUTHENTICATED: u32 = 0x01;
    pub const BOUNCE: u32 = 0x02;
    /// Internal expansion forward.
    pub const INTERNAL: u32 = 0x04;

    pub fn contains(self, bit: u32) -> bool {
        self.0 & bit != 0
    }
}

/// Bounce parameters (`agent.bounce`); written only for `type: bounce`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct BounceInfo {
    pub kind: BounceType,
    /// Written only for a `delayed` bounce.
    pub delay: i64,
    /// Written only for a `delayed` bounce.
    pub ttl: i64,
}

/// One recipient of one message, as queued.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Envelope {
    /// The file name; not part of the text (OpenSMTPD keeps it in memory).
    pub id: EvpId,
    /// Action name.
    pub dispatcher: String,
    /// Listener tag.
    pub tag: String,
    pub kind: DeliveryType,
    /// Our name on the listener that accepted the message.
    pub smtpname: String,
    /// The client's HELO/EHLO argument.
    pub helo: String,
    /// The client's reverse DNS name.
    pub hostname: String,
    /// AUTH user.
    pub username: String,
    /// Last error text, as logged in `stat=`.
    pub errorline: String,
    pub sockaddr: SockAddr,
    pub sender: Mailaddr,
    pub rcpt: Mailaddr,
    pub dest: Mailaddr,
    pub ctime: i64,
    pub last_try: i64,
    pub last_bounce: i64,
    pub ttl: i64,
    /// Failed attempts so far.
    pub retry: u16,
    pub flags: EnvelopeFlags,
    /// `DSN_*` bits; 0 when the client gave no NOTIFY.
    pub dsn_notify: u8,
    pub dsn_ret: Option<DsnRet>,
    pub dsn_envid: String,
    /// Written only when both parts are non-empty.
    pub dsn_orcpt: Mailaddr,
    /// Enhanced status class; 0 = none (then `esc-code` is not written either).
    pub esc_class: u8,
    pub esc_code: u8,
    pub mda_exec: String,
    pub mda_subaddress: String,
    pub mda_user: String,
    pub bounce: BounceInfo,
}

/// Why an envelope text was refused (the key, as OpenSMTPD's
/// `envelope: invalid field "%s"`, or a structural reason).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// A line is not `key: value\n` (or the text has a NUL byte).
    Syntax,
    NoVersion,
    BadVersion(String),
    InvalidField(String),
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Syntax => write!(f, "cannot parse envelope to dict"),
            ParseError::NoVersion => write!(f, "envelope version not found"),
            ParseError::BadVersion(v) => write!(f, "bad envelope version {v}"),
            ParseError::InvalidField(k) => write!(f, "envelope: invalid field \"{k}\""),
        }
    }
}

impl std::error::Error for ParseError {}

impl Envelope {
    /// The file content, byte-identical with `envelope_dump_buffer`.
    ///
    /// A `\n` inside a value would let one field forge others (say an
    /// `mda-exec` smuggled in a HELO name) when the file is read back;
    /// OpenSMTPD relies on every producer never passing one. We replace it by
    /// a space here, so the file stays one field per line whatever the
    /// callers do. NUL bytes, which a C string cannot hold, end the value as
    /// they would in C.
    pub fn to_text(&self) -> String {
        let mut out = String::with_capacity(512);
        let mut put = |key: &str, value: &str| {
            let value = value.split('\0').next().unwrap_or("");
            if value.is_empty() {
                return;
            }
            out.push_str(key);
            out.push_str(": ");
            if value.contains('\n') {
                out.push_str(&value.replace('\n', " "));
            } else {
                out.push_str(value);
            }
            out.push('\n');
        };
        put("version", &ENVELOPE_VERSION.to_string());
        put("dispatcher", &self.dispatcher);
        put("tag", &self.tag);
        put(
            "type",
            match self.kind {
                DeliveryType::Mda => "mda",
                DeliveryType::Mta => "mta",
                DeliveryType::Bounce => "bounce",
            },
        );
        put("smtpname", &self.smtpname);
        put("helo", &self.helo);
        put("hostname", &self.hostname);
        put("username", &self.username);
        put("errorline", &self.errorline);
        put("sockaddr", &sockaddr_text(&self.sockaddr));
        put("sender", &self.sender.to_string());
        put("rcpt", &self.rcpt.to_string());
        put("dest", &self.dest.to_string());
        put("ctime", &self.ctime.to_string());
        put("last-try", &self.last_try.to_string());
        put("last-bounce", &self.last_bounce.to_string());
        put("ttl", &self.ttl.to_string());
        put("retry", &self.retry.to_string());
        put("flags", &flags_text(self.flags));
        put("dsn-notify", &self.dsn_notify.to_string());
        put(
            "dsn-ret",
            match self.dsn_ret {
                Some(DsnRet::Full) => "FULL",
                Some(DsnRet::Hdrs) => "HDRS",
                None => "",
            },
        );
        put("dsn-envid", &self.dsn_envid);
        if !self.dsn_orcpt.user.is_empty() && !self.dsn_orcpt.domain.is_empty() {
            put("dsn-orcpt", &self.dsn_orcpt.to_string());
        }
        // esc-code is written only with a class: a code alone means nothing.
        if self.esc_class != 0 {
            put("esc-class", &self.esc_class.to_string());
            put("esc-code", &self.esc_code.to_string());
        }
        match self.kind {
            DeliveryType::Mda => {
                put("mda-exec", &self.mda_exec);
                put("mda-subaddress", &self.mda_subaddress);
                put("mda-user", &self.mda_user);
            }
            DeliveryType::Mta => {}
            DeliveryType::Bounce => {
                if self.bounce.kind == BounceType::Delayed {
                    put("bounce-ttl", &self.bounce.ttl.to_string());
                    put("bounce-delay", &self.bounce.delay.to_string());
                }
                put(
                    "bounce-type",
                    match self.bounce.kind {
                        BounceType::Failed => "failed",
                        BounceType::Delayed => "delayed",
                        BounceType::Delivered => "delivered",
                    },
                );
            }
        }
        out
    }

    /// Reads the text of an envelope file (`id` is left at 0: it is the
    /// file's name, not its content).
    pub fn parse(text: &str) -> Result<Envelope, ParseError> {
        if text.contains('\0') {
            return Err(ParseError::Syntax);
        }
        // A repeated key keeps its last value, as OpenSMTPD's dict_set.
        let mut fields: Vec<(&str, &str)> = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            // A last line without its newline is refused, as in C, where the
            // length bookkeeping then runs past the end of the buffer.
            let nl = rest.find('\n').ok_or(ParseError::Syntax)?;
            let line = &rest[..nl];
            rest = &rest[nl + 1..];
            let key_len = line
                .bytes()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == b'-')
                .count();
            if key_len == line.len() {
                return Err(ParseError::Syntax);
            }
            let key = &line[..key_len];
            let after = line[key_len..].trim_start_matches(is_c_space);
            let value = after.strip_prefix(':').ok_or(ParseError::Syntax)?;
            let value = value.trim_start_matches(is_c_space);
            match fields.iter_mut().find(|(k, _)| *k == key) {
                Some(slot) => slot.1 = value,
                None => fields.push((key, value)),
            }
        }
        let version = fields
            .iter()
            .find(|(k, _)| *k == "version")
            .map(|(_, v)| *v)
            .ok_or(ParseError::NoVersion)?;
        match strtonum(version, 1, 64) {
            Some(v) if v == ENVELOPE_VERSION as i64 => {}
            _ => return Err(ParseError::BadVersion(version.to_string())),
        }
        // C walks its dict in key order; only matters for which bad key is named.
        fields.sort_by(|a, b| a.0.cmp(b.0));
        let mut e = Envelope::default();
        for (key, value) in fields {
            if load_field(&mut e, key, value).is_none() {
                return Err(ParseError::InvalidField(key.to_string()));
            }
        }
        Ok(e)
    }
}

fn is_c_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r')
}

fn load_field(e: &mut Envelope, key: &str, v: &str) -> Option<()> {
    let time = |v: &str| strtonum(v, 0, i64::MAX);
    match key.to_ascii_lowercase().as_str() {
        "dispatcher" => e.dispatcher = v.to_string(),
        "bounce-delay" => e.bounce.delay = time(v)?,
        "bounce-ttl" => e.bounce.ttl = time(v)?,
        "bounce-type" => {
            e.bounce.kind = match v.to_ascii_lowercase().as_str() {
                "error" | "failed" => BounceType::Failed,
                "warn" | "delayed" => BounceType::Delayed,
                "dsn" | "delivered" => BounceType::Delivered,
                _ => return None,
            }
        }
        "ctime" => e.ctime = time(v)?,
        "dest" => e.dest = mailaddr(v),
        "username" => e.username = v.to_string(),
        "errorline" => e.errorline = v.to_string(),
        "ttl" => e.ttl = time(v)?,
        "flags" => {
            for word in v.split([' ', ',', '|']) {
                match word.to_ascii_lowercase().as_str() {
                    "authenticated" => e.flags.0 |= EnvelopeFlags::AUTHENTICATED,
                    "enqueued" => {}
                    "bounce" => e.flags.0 |= EnvelopeFlags::BOUNCE,
                    "internal" => e.flags.0 |= EnvelopeFlags::INTERNAL,
                    _ => return None,
                }
            }
        }
        "helo" => e.helo = v.to_string(),
        "hostname" => e.hostname = v.to_string(),
        "last-bounce" => e.last_bounce = time(v)?,
        "last-try" => e.last_try = time(v)?,
        "retry" => e.retry = u16::try_from(strtonum(v, 0, 0xffff)?).ok()?,
        "rcpt" => e.rcpt = mailaddr(v),
        "mda-exec" => e.mda_exec = v.to_string(),
        "mda-subaddress" => e.mda_subaddress = v.to_string(),
        "mda-user" => e.mda_user = v.to_string(),
        "sender" => e.sender = mailaddr(v),
        "smtpname" => e.smtpname = v.to_string(),
        "sockaddr" => e.sockaddr = parse_sockaddr(v)?,
        "tag" => e.tag = v.to_string(),
        "type" => {
            e.kind = match v.to_ascii_lowercase().as_str() {
                "mda" => DeliveryType::Mda,
                "mta" => DeliveryType::Mta,
                "bounce" => DeliveryType::Bounce,
                _ => return None,
            }
        }
        // Already checked (lower-case spelling) before the fields are loaded;
        // an upper-case duplicate is only range-checked, as in C.
        "version" => {
            strtonum(v, 0, 0xffff_ffff)?;
        }
        "dsn-notify" => e.dsn_notify = u8::try_from(strtonum(v, 0, 0xff)?).ok()?,
        "dsn-orcpt" => e.dsn_orcpt = mailaddr(v),
        "dsn-ret" => {
            e.dsn_ret = Some(match v.to_ascii_lowercase().as_str() {
                "hdrs" => DsnRet::Hdrs,
                "full" => DsnRet::Full,
                _ => return None,
            })
        }
        "dsn-envid" => e.dsn_envid = v.to_string(),
        "esc-class" => e.esc_class = u8::try_from(strtonum(v, 0, 0xff)?).ok()?,
        "esc-code" => e.esc_code = u8::try_from(strtonum(v, 0, 0xff)?).ok()?,
        _ => return None,
    }
    Some(())
}

/// `text_to_mailaddr` without its buffer limits: split at the last `@`.
fn mailaddr(v: &str) -> Mailaddr {
    match v.rfind('@') {
        Some(at) => Mailaddr::new(&v[..at], &v[at + 1..]),
        None => Mailaddr::new(v, ""),
    }
}

/// OpenBSD's `strtonum`: base 10 with optional blanks and sign in front,
/// nothing after, within `[min, max]`.
fn strtonum(s: &str, min: i64, max: i64) -> Option<i64> {
    let t = s.trim_start_matches(is_c_space);
    let digits = t.strip_prefix(['+', '-']).unwrap_or(t);
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let t = t.strip_prefix('+').unwrap_or(t);
    let v: i64 = t.parse().ok()?;
    (min..=max).contains(&v).then_some(v)
}

fn parse_sockaddr(v: &str) -> Option<SockAddr> {
    if v == "local" {
        return Some(SockAddr::Local);
    }
    if let Some(v6) = strip_prefix_ci(v, "IPv6:") {
        return v6.parse::<Ipv6Addr>().ok().map(|a| SockAddr::Ip(a.into()));
    }
    if let Some(inner) = v.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
        return inner
            .parse::<Ipv6Addr>()
            .ok()
            .map(|a| SockAddr::Ip(a.into()));
    }
    v.parse::<Ipv4Addr>().ok().map(|a| SockAddr::Ip(a.into()))
}

/// `sa_to_text`: IPv6 in brackets, as glibc's `inet_ntop` prints it.
fn sockaddr_text(s: &SockAddr) -> String {
    match s {
        SockAddr::Unspec => String::new(),
        SockAddr::Local => "local".to_string(),
        SockAddr::Ip(IpAddr::V4(a)) => a.to_string(),
        SockAddr::Ip(IpAddr::V6(a)) => format!("[{}]", ipv6_text(a)),
    }
}

/// Rust prints an IPv4-compatible address (`::1.2.3.4`) in hex words where
/// glibc keeps the dotted quad; every other form agrees.
fn ipv6_text(a: &Ipv6Addr) -> String {
    let s = a.segments();
    if s[..6] == [0; 6] && s[6] != 0 {
        let o = a.octets();
        let mut t = String::new();
        let _ = write!(t, "::{}.{}.{}.{}", o[12], o[13], o[14], o[15]);
        return t;
    }
    a.to_string()
}

fn flags_text(f: EnvelopeFlags) -> String {
    let mut words = Vec::new();
    if f.contains(EnvelopeFlags::AUTHENTICATED) {
        words.push("authenticated");
    }
    if f.contains(EnvelopeFlags::BOUNCE) {
        words.push("bounce");
    }
    if f.contains(EnvelopeFlags::INTERNAL) {
        words.push("internal");
    }
    words.join(" ")
}
