//! Message and envelope identifiers, as OpenSMTPD generates and prints them
//! (`queue_backend.c:queue_generate_msgid/evpid`): a message id is 32 random
//! non-zero bits, an envelope id is the message id in its high half and 32
//! random non-zero bits in its low half, so the message of an envelope is
//! known from its id alone.

use std::fmt;

/// A message id, printed as 8 lowercase hex digits (`898840a8`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MsgId(pub u32);

/// An envelope id, printed as 16 lowercase hex digits (`898840a88eb2b16e`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EvpId(pub u64);

impl MsgId {
    /// A fresh random id; 0 is reserved (OpenSMTPD treats it as "no message").
    pub fn random() -> MsgId {
        loop {
            let v: u32 = rand::random();
            if v != 0 {
                return MsgId(v);
            }
        }
    }

    /// The `queue/<xx>` bucket: the high byte, 2 hex digits.
    pub fn bucket(self) -> String {
        format!("{:02x}", self.0 >> 24)
    }

    /// Parses exactly 8 hex digits (a directory name under `queue/<xx>/`).
    pub fn from_hex(s: &str) -> Option<MsgId> {
        if s.len() != 8 || !s.bytes().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        u32::from_str_radix(s, 16).ok().map(MsgId)
    }
}

impl EvpId {
    /// A fresh random envelope id of message `msgid`.
    pub fn random(msgid: MsgId) -> EvpId {
        loop {
            let v: u32 = rand::random();
            if v != 0 {
                return EvpId(((msgid.0 as u64) << 32) | v as u64);
            }
        }
    }

    pub fn msgid(self) -> MsgId {
        MsgId((self.0 >> 32) as u32)
    }

    /// Parses exactly 16 hex digits (an envelope file name).
    pub fn from_hex(s: &str) -> Option<EvpId> {
        if s.len() != 16 || !s.bytes().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        u64::from_str_radix(s, 16).ok().map(EvpId)
    }
}

impl fmt::Display for MsgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}", self.0)
    }
}

impl fmt::Display for EvpId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}
