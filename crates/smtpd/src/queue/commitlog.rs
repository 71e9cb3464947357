//! The commit log: the record that lets one barrier, not two, make a message
//! durable before its `250` (the committer's side is in `commit`, the
//! reading after a crash in `recover`). Pure: bytes in, records out.
//!
//! Without a journal the file system may write a rename before the data it
//! names, so moving `incoming/MSGID` into `queue/` and syncing once could
//! leave, after a crash, a committed-looking message whose file or
//! envelopes never reached the disk; hence two barriers, data then rename.
//! Instead, before the one barrier of its round, the committer writes for
//! each message a line naming its id and the SHA-256 of its message file
//! and of each envelope file, as written. After the barrier the message is
//! durable *in `incoming/`*, with a record that proves it whole; it is
//! renamed into `queue/` and answered at once, and the next round's barrier
//! makes the rename durable. After a crash, a message still in `incoming/`
//! whose files match a record exactly (the same envelope names, no other
//! file, every sum) was answered and is moved into `queue/`; anything else
//! there was never answered and is discarded, as OpenSMTPD discards all of
//! `incoming/`. Nothing in `queue/` changes: its files keep OpenSMTPD's
//! format, and OpenSMTPD reads none of this.
//!
//! A torn record cannot pass: each line ends with a check of its own text,
//! and a sum cannot match data that did not all reach the disk (nor a
//! recycled inode's earlier content: the id and every sum must agree). A
//! line left over from an older round names a message that is in `queue/`
//! by now (its rename was made durable before the line could be
//! overwritten), so no directory of `incoming/` matches it.

use std::fmt::Write as _;

use super::id::{EvpId, MsgId};

/// The commit log's two files in `incoming/`: not message ids, so nothing
/// takes them for a message, and purged with `incoming/` at every start
/// once `layout::setup` has read them.
pub const LOG_FILES: [&str; 2] = ["commit.0", "commit.1"];

/// A file's SHA-256.
pub type Sum = [u8; 32];

/// What a message was when it was committed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub msgid: MsgId,
    /// The `message` file's bytes, as on disk (compressed, encrypted).
    pub message: Sum,
    /// Every envelope file of the message, with its bytes' sum.
    pub envelopes: Vec<(EvpId, Sum)>,
}

/// The first word of every line: the format's version.
const MAGIC: &str = "rsmtpd-commit-1";
/// Hex digits of the line's own check (the first bytes of its SHA-256).
const CHECK_HEX: usize = 16;
const CHECK_TAG: &str = " check:";

/// The SHA-256 of `data`.
pub fn sum(data: &[u8]) -> Sum {
    let mut s = Summer::new();
    s.update(data);
    s.finish()
}

/// A SHA-256 computed as the bytes go by.
#[derive(Clone)]
pub struct Summer(ring::digest::Context);

impl Summer {
    pub fn new() -> Summer {
        Summer(ring::digest::Context::new(&ring::digest::SHA256))
    }

    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    pub fn finish(self) -> Sum {
        let mut out = [0u8; 32];
        out.copy_from_slice(self.0.finish().as_ref());
        out
    }
}

impl Default for Summer {
    fn default() -> Summer {
        Summer::new()
    }
}

impl Record {
    /// One line, `\n` included.
    pub fn encode(&self) -> String {
        let mut body = format!("{MAGIC} {} message:{}", self.msgid, hex(&self.message));
        for (evpid, s) in &self.envelopes {
            let _ = write!(body, " {evpid}:{}", hex(s));
        }
        let check = line_check(&body);
        format!("{body}{CHECK_TAG}{check}\n")
    }
}

/// Every whole, intact record of `data`; torn, foreign or stale bytes
/// between them are skipped. A record is looked for at every `MAGIC`, not
/// only after a newline: a torn line that lost its end must not hide the
/// next one.
pub fn parse(data: &[u8]) -> Vec<Record> {
    let magic = MAGIC.as_bytes();
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(found) = data
        .get(at..)
        .and_then(|rest| rest.windows(magic.len()).position(|w| w == magic))
    {
        let start = at + found;
        let rest = data.get(start..).unwrap_or_default();
        let len = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
        if let Some(r) = rest
            .get(..len)
            .and_then(|line| std::str::from_utf8(line).ok())
            .and_then(parse_line)
        {
            out.push(r);
        }
        at = start + magic.len();
    }
    out
}

fn parse_line(line: &str) -> Option<Record> {
    let at = line.rfind(CHECK_TAG)?;
    let body = line.get(..at)?;
    let check = line.get(at + CHECK_TAG.len()..)?;
    if check != line_check(body) {
        return None;
    }
    let mut words = body.split(' ');
    if words.next()? != MAGIC {
        return None;
    }
    let msgid = MsgId::from_hex(words.next()?)?;
    let message = unhex(words.next()?.strip_prefix("message:")?)?;
    let mut envelopes = Vec::new();
    for w in words {
        let (id, s) = w.split_once(':')?;
        let evpid = EvpId::from_hex(id)?;
        if evpid.msgid() != msgid {
            return None;
        }
        envelopes.push((evpid, unhex(s)?));
    }
    Some(Record {
        msgid,
        message,
        envelopes,
    })
}

fn line_check(body: &str) -> String {
    let s = sum(body.as_bytes());
    let mut h = hex(&s);
    h.truncate(CHECK_HEX);
    h
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn unhex(s: &str) -> Option<Sum> {
    if s.len() != 64 || !s.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn record(msgid: u32, evps: &[u32]) -> Record {
        Record {
            msgid: MsgId(msgid),
            message: sum(format!("message {msgid}").as_bytes()),
            envelopes: evps
                .iter()
                .map(|&e| {
                    let id = EvpId(((msgid as u64) << 32) | e as u64);
                    (id, sum(id.to_string().as_bytes()))
                })
                .collect(),
        }
    }

    #[test]
    fn a_line_names_the_message_and_each_envelope_with_their_sums() {
        let r = record(0x898840a8, &[0x8eb2b16e]);
        let line = r.encode();
        assert!(line.starts_with("rsmtpd-commit-1 898840a8 message:"));
        assert!(line.contains(" 898840a88eb2b16e:"));
        assert!(line.ends_with('\n'));
        assert_eq!(parse(line.as_bytes()), vec![r]);
    }

    #[test]
    fn torn_foreign_and_altered_lines_are_skipped_and_the_others_kept() {
        let a = record(1, &[1, 2]);
        let b = record(2, &[3]);
        let (la, lb) = (a.encode(), b.encode());
        // A torn first line, then a whole one, then garbage.
        let torn = format!("{}{lb}garbage\n", &la[..la.len() / 2]);
        assert_eq!(parse(torn.as_bytes()), vec![b.clone()]);
        // Any single byte changed spoils that line only.
        for i in 0..la.len() - 1 {
            let mut bytes = la.clone().into_bytes();
            bytes[i] = if bytes[i] == b'0' { b'1' } else { b'0' };
            bytes.extend_from_slice(lb.as_bytes());
            assert_eq!(parse(&bytes), vec![b.clone()], "byte {i}");
        }
        // An envelope of another message.
        let mut odd = record(3, &[4]);
        odd.envelopes[0].0 = EvpId((9u64 << 32) | 4);
        assert!(parse(odd.encode().as_bytes()).is_empty());
        // A stale tail after a shorter new round.
        let stale = format!("{lb}{}", &la[10..]);
        assert_eq!(parse(stale.as_bytes()), vec![b]);
        assert!(parse(b"").is_empty());
        assert!(parse(&[0xff, b'\n', 0]).is_empty());
    }

    #[test]
    fn sums_are_sha256() {
        let s = sum(b"abc");
        assert_eq!(
            hex(&s),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let mut h = Summer::new();
        h.update(b"a");
        h.update(b"bc");
        assert_eq!(h.finish(), s);
    }

    proptest! {
        #[test]
        fn records_round_trip(msgid in 1u32.., evps in proptest::collection::vec(1u32.., 0..8),
                              salt in any::<[u8; 32]>()) {
            let mut rs = vec![record(msgid, &evps)];
            rs.push(Record { message: salt, ..record(msgid ^ 1 | 1, &evps) });
            let text: String = rs.iter().map(Record::encode).collect();
            prop_assert_eq!(parse(text.as_bytes()), rs);
        }

        #[test]
        fn any_bytes_parse_without_panic(data in proptest::collection::vec(any::<u8>(), 0..600)) {
            for r in parse(&data) {
                // Whatever passes is a record that encodes to a line found in the input.
                let line = r.encode();
                prop_assert!(data.windows(line.len() - 1).any(|w| w == &line.as_bytes()[..line.len() - 1]));
            }
        }
    }
}
