//! The protocol between OpenSMTPD 6.8 and its external table backends (`table-sqlite`,
//! `table-ldap`... of opensmtpd-extras): OpenBSD imsg frames over a socket, the messages of
//! `smtpd-api.h` (`PROC_TABLE_API_VERSION` 2) as `table_proc.c` sends them and the extras'
//! `table_api.c` answers them.
//!
//! Pure: requests are encoded into bytes, and the backend's bytes are fed to a [`Decoder`] that
//! yields whole frames. Nothing the backend sends can make it allocate more than one frame's
//! worth (libimsg's `MAX_IMSGSIZE`), or panic: a frame that breaks the rules is an [`Error`],
//! after which the stream is out of step and the caller drops the backend.
//!
//! Frame: a 16-byte header in the machine's byte order (the two ends are on one machine),
//! `u32 type, u16 len (header included), u16 flags, u32 peerid, u32 pid`, then `len - 16`
//! bytes of data.
//!
//! Requests and answers (every answer is `PROC_TABLE_OK`; the backend is sequential, one
//! answer per request, in order):
//! - `OPEN {u32 version; char name[LINE_MAX]}` -> `OK` with no data;
//! - `CHECK`/`LOOKUP {int service; size_t count = 0; key NUL-terminated}` -> `OK {int r}`, and
//!   for `LOOKUP` with `r == 1` the value, NUL-terminated;
//! - `FETCH {int service; size_t count = 0}` -> as `LOOKUP`;
//! - `UPDATE` -> `OK {int r}`; `CLOSE` -> no answer (the backend exits).

/// `PROC_TABLE_API_VERSION` in 6.8's smtpd-api.h (and the extras' 6.7.1).
pub const API_VERSION: u32 = 2;

/// `IMSG_HEADER_SIZE`.
pub const HEADER_SIZE: usize = 16;

/// libimsg's `MAX_IMSGSIZE`: its `imsg_get()` refuses a longer frame, and so do we.
pub const MAX_FRAME: usize = 16384;

/// `LINE_MAX` on Linux (glibc), the size of `table_open_params.name`.
pub const LINE_MAX: usize = 2048;

/// The longest key `table_lookup()` passes (`char lkey[1024]`, NUL included).
pub const MAX_KEY: usize = 1023;

/// `enum table_message_type` (`PROC_TABLE_OK` = 0...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum MsgType {
    Ok = 0,
    Fail = 1,
    Open = 2,
    Close = 3,
    Update = 4,
    Check = 5,
    Lookup = 6,
    Fetch = 7,
}

/// `enum table_service` (`K_*`), the values on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Service {
    Alias = 0x001,
    Domain = 0x002,
    Credentials = 0x004,
    Netaddr = 0x008,
    Userinfo = 0x010,
    Source = 0x020,
    Mailaddr = 0x040,
    Addrname = 0x080,
    Mailaddrmap = 0x100,
    Relayhost = 0x200,
    String = 0x400,
    Regex = 0x800,
}

impl Service {
    /// `table_service_name()`: the word `-T lookup` lines use.
    pub fn name(self) -> &'static str {
        match self {
            Service::Alias => "ALIAS",
            Service::Domain => "DOMAIN",
            Service::Credentials => "CREDENTIALS",
            Service::Netaddr => "NETADDR",
            Service::Userinfo => "USERINFO",
            Service::Source => "SOURCE",
            Service::Mailaddr => "MAILADDR",
            Service::Addrname => "ADDRNAME",
            Service::Mailaddrmap => "MAILADDRMAP",
            Service::Relayhost => "RELAYHOST",
            Service::String => "STRING",
            Service::Regex => "REGEX",
        }
    }
}

/// Why the backend's bytes cannot be taken: the messages are `table_proc.c`'s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// A header whose length is under 16 or over [`MAX_FRAME`] (libimsg's `imsg_get` fails:
    /// `warn: table-proc: imsg_get`).
    BadLength(usize),
    /// An answer other than `OK` (`warn: table-proc: bad response`).
    BadResponse(u32),
    /// Less data than the answer needs (`warn: table-proc: bad msg len`).
    Short,
    /// More data than the answer has (`warn: table-proc: bogus data`).
    Bogus,
    /// `r == 1` with no value (`warn: table-proc: empty response`).
    Empty,
    /// A value without its NUL (`warn: table-proc: not NUL-terminated`).
    NotTerminated,
}

impl Error {
    /// The line 6.8 logs before `table-proc: exiting`.
    pub fn log_line(&self) -> &'static str {
        match self {
            Error::BadLength(_) => "warn: table-proc: imsg_get: Numerical result out of range",
            Error::BadResponse(_) => "warn: table-proc: bad response",
            Error::Short => "warn: table-proc: bad msg len",
            Error::Bogus => "warn: table-proc: bogus data",
            Error::Empty => "warn: table-proc: empty response",
            Error::NotTerminated => "warn: table-proc: not NUL-terminated",
        }
    }
}

/// Why a request cannot be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncodeError {
    /// A key with a NUL byte, or longer than [`MAX_KEY`] (6.8 refuses it before asking:
    /// `warn: lookup key too long`).
    BadKey,
}

/// One frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub msg_type: u32,
    pub peerid: u32,
    pub pid: u32,
    pub data: Vec<u8>,
}

fn frame(t: MsgType, pid: u32, data: &[u8]) -> Vec<u8> {
    let len = HEADER_SIZE + data.len();
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(&(t as u32).to_ne_bytes());
    // Every request we make is far under MAX_FRAME (checked by the callers' key bound).
    out.extend_from_slice(&(len.min(u16::MAX as usize) as u16).to_ne_bytes());
    out.extend_from_slice(&0u16.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes());
    out.extend_from_slice(&pid.to_ne_bytes());
    out.extend_from_slice(data);
    out
}

/// `PROC_TABLE_OPEN`: the API version and the table's name (cut to fit, as `strlcpy`).
pub fn open(name: &str, pid: u32) -> Vec<u8> {
    let mut data = vec![0u8; 4 + LINE_MAX];
    data[..4].copy_from_slice(&API_VERSION.to_ne_bytes());
    let n = name.len().min(LINE_MAX - 1);
    data[4..4 + n].copy_from_slice(&name.as_bytes()[..n]);
    frame(MsgType::Open, pid, &data)
}

/// `service`, then `imsg_add_params()`: a `size_t` count of parameters, always 0.
fn service_and_params(service: Service) -> Vec<u8> {
    let mut data = Vec::with_capacity(4 + 8 + 64);
    data.extend_from_slice(&(service as u32).to_ne_bytes());
    data.extend_from_slice(&0usize.to_ne_bytes());
    data
}

fn keyed(t: MsgType, service: Service, key: &str, pid: u32) -> Result<Vec<u8>, EncodeError> {
    if key.len() > MAX_KEY || key.as_bytes().contains(&0) {
        return Err(EncodeError::BadKey);
    }
    let mut data = service_and_params(service);
    data.extend_from_slice(key.as_bytes());
    data.push(0);
    Ok(frame(t, pid, &data))
}

/// `PROC_TABLE_CHECK` (`table_match()`).
pub fn check(service: Service, key: &str, pid: u32) -> Result<Vec<u8>, EncodeError> {
    keyed(MsgType::Check, service, key, pid)
}

/// `PROC_TABLE_LOOKUP` (`table_lookup()` with a value wanted).
pub fn lookup(service: Service, key: &str, pid: u32) -> Result<Vec<u8>, EncodeError> {
    keyed(MsgType::Lookup, service, key, pid)
}

/// `PROC_TABLE_FETCH` (`table_fetch()`: the backend's next entry for the service).
pub fn fetch(service: Service, pid: u32) -> Vec<u8> {
    frame(MsgType::Fetch, pid, &service_and_params(service))
}

/// `PROC_TABLE_UPDATE` (`smtpctl update table`).
pub fn update(pid: u32) -> Vec<u8> {
    frame(MsgType::Update, pid, &[])
}

/// `PROC_TABLE_CLOSE`: the backend leaves without answering.
pub fn close(pid: u32) -> Vec<u8> {
    frame(MsgType::Close, pid, &[])
}

/// Gathers the backend's bytes into frames. Holds at most one frame and the bytes of one read
/// beyond it.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
}

impl Decoder {
    pub fn new() -> Decoder {
        Decoder::default()
    }

    /// Bytes read from the backend.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes held that are not yet a whole frame.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// The next whole frame, `None` until one is there. An error leaves the stream unusable.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, Error> {
        if self.buf.len() < HEADER_SIZE {
            return Ok(None);
        }
        let u32_at = |i: usize| -> u32 {
            let mut b = [0u8; 4];
            b.copy_from_slice(&self.buf[i..i + 4]);
            u32::from_ne_bytes(b)
        };
        let len = u16::from_ne_bytes([self.buf[4], self.buf[5]]) as usize;
        if !(HEADER_SIZE..=MAX_FRAME).contains(&len) {
            return Err(Error::BadLength(len));
        }
        if self.buf.len() < len {
            return Ok(None);
        }
        let msg_type = u32_at(0);
        let peerid = u32_at(8);
        let pid = u32_at(12);
        let data = self.buf[HEADER_SIZE..len].to_vec();
        self.buf.drain(..len);
        Ok(Some(Frame {
            msg_type,
            peerid,
            pid,
            data,
        }))
    }

    /// How many bytes the next read may usefully bring: the rest of the frame under way (at
    /// least a header), so that the buffer never holds much more than one frame.
    pub fn wanted(&self) -> usize {
        if self.buf.len() < HEADER_SIZE {
            return HEADER_SIZE - self.buf.len();
        }
        let len = u16::from_ne_bytes([self.buf[4], self.buf[5]]) as usize;
        len.saturating_sub(self.buf.len()).max(1)
    }
}

/// What a `CHECK`, `LOOKUP`, `FETCH` or `UPDATE` answered: the backend's `r`, and the value
/// when `r == 1` and one was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// `r == 1`; the value for `LOOKUP`/`FETCH` (lossy UTF-8: values are text, and a byte that
    /// is not becomes U+FFFD rather than a refusal of the whole answer).
    Yes(Option<String>),
    /// `r == 0`.
    No,
    /// Any other `r` (`-1`: the backend could not answer, e.g. no query for that service).
    Failed(i32),
}

fn ok_data(f: &Frame) -> Result<&[u8], Error> {
    if f.msg_type != MsgType::Ok as u32 {
        return Err(Error::BadResponse(f.msg_type));
    }
    Ok(&f.data)
}

/// The answer to `OPEN`: `OK` and nothing else.
pub fn parse_open(f: &Frame) -> Result<(), Error> {
    if !ok_data(f)?.is_empty() {
        return Err(Error::Bogus);
    }
    Ok(())
}

fn parse_r(data: &[u8]) -> Result<(i32, &[u8]), Error> {
    if data.len() < 4 {
        return Err(Error::Short);
    }
    let mut b = [0u8; 4];
    b.copy_from_slice(&data[..4]);
    Ok((i32::from_ne_bytes(b), &data[4..]))
}

fn answer(r: i32) -> Answer {
    match r {
        1 => Answer::Yes(None),
        0 => Answer::No,
        r => Answer::Failed(r),
    }
}

/// The answer to `CHECK` or `UPDATE`: `{int r}` alone.
pub fn parse_check(f: &Frame) -> Result<Answer, Error> {
    let (r, rest) = parse_r(ok_data(f)?)?;
    if !rest.is_empty() {
        return Err(Error::Bogus);
    }
    Ok(answer(r))
}

/// The answer to `LOOKUP` or `FETCH`: `{int r}`, and the NUL-terminated value when `r == 1`.
/// The value is what comes before the first NUL, as `strdup()` takes it.
pub fn parse_lookup(f: &Frame) -> Result<Answer, Error> {
    let (r, rest) = parse_r(ok_data(f)?)?;
    if r != 1 {
        if !rest.is_empty() {
            return Err(Error::Bogus);
        }
        return Ok(answer(r));
    }
    match rest.last() {
        None => Err(Error::Empty),
        Some(&b) if b != 0 => Err(Error::NotTerminated),
        Some(_) => {
            let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
            Ok(Answer::Yes(Some(
                String::from_utf8_lossy(&rest[..end]).into_owned(),
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ok(data: &[u8]) -> Frame {
        let mut d = Decoder::new();
        d.feed(&frame(MsgType::Ok, 7, data));
        match d.next_frame() {
            Ok(Some(f)) => f,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn open_is_version_and_name() {
        let b = open("domains", 42);
        assert_eq!(b.len(), HEADER_SIZE + 4 + LINE_MAX);
        assert_eq!(
            u32::from_ne_bytes([b[0], b[1], b[2], b[3]]),
            MsgType::Open as u32
        );
        assert_eq!(
            u16::from_ne_bytes([b[4], b[5]]) as usize,
            HEADER_SIZE + 4 + LINE_MAX
        );
        assert_eq!(u32::from_ne_bytes([b[12], b[13], b[14], b[15]]), 42);
        assert_eq!(u32::from_ne_bytes([b[16], b[17], b[18], b[19]]), 2);
        assert_eq!(&b[20..27], b"domains");
        assert_eq!(b[27], 0);
        // A name longer than the field is cut, NUL kept.
        let long = "x".repeat(5000);
        let b = open(&long, 1);
        assert_eq!(b.len(), HEADER_SIZE + 4 + LINE_MAX);
        assert_eq!(*b.last().unwrap_or(&1), 0);
    }

    #[test]
    fn check_layout() {
        let b = check(Service::Domain, "example.com", 0).unwrap_or_default();
        let data = &b[HEADER_SIZE..];
        assert_eq!(&data[..4], &0x002u32.to_ne_bytes());
        assert_eq!(&data[4..12], &0usize.to_ne_bytes());
        assert_eq!(&data[12..], b"example.com\0");
        assert_eq!(u32::from_ne_bytes([b[0], b[1], b[2], b[3]]), 5);
        assert_eq!(check(Service::Domain, "a\0b", 0), Err(EncodeError::BadKey));
        assert_eq!(
            lookup(Service::Alias, &"k".repeat(MAX_KEY + 1), 0),
            Err(EncodeError::BadKey)
        );
        assert!(lookup(Service::Alias, &"k".repeat(MAX_KEY), 0).is_ok());
        let f = fetch(Service::Source, 0);
        assert_eq!(f.len(), HEADER_SIZE + 12);
        assert_eq!(update(0).len(), HEADER_SIZE);
        assert_eq!(close(0)[0..4], 3u32.to_ne_bytes());
    }

    #[test]
    fn answers() {
        assert_eq!(parse_open(&ok(&[])), Ok(()));
        assert_eq!(parse_open(&ok(&[1])), Err(Error::Bogus));
        assert_eq!(parse_check(&ok(&1i32.to_ne_bytes())), Ok(Answer::Yes(None)));
        assert_eq!(parse_check(&ok(&0i32.to_ne_bytes())), Ok(Answer::No));
        assert_eq!(
            parse_check(&ok(&(-1i32).to_ne_bytes())),
            Ok(Answer::Failed(-1))
        );
        assert_eq!(parse_check(&ok(&[1, 0])), Err(Error::Short));
        let mut v = 1i32.to_ne_bytes().to_vec();
        v.extend_from_slice(b"bob@example.com, carol\0");
        assert_eq!(
            parse_lookup(&ok(&v)),
            Ok(Answer::Yes(Some("bob@example.com, carol".into())))
        );
        assert_eq!(parse_check(&ok(&v)), Err(Error::Bogus));
        assert_eq!(parse_lookup(&ok(&1i32.to_ne_bytes())), Err(Error::Empty));
        let mut nt = 1i32.to_ne_bytes().to_vec();
        nt.extend_from_slice(b"abc");
        assert_eq!(parse_lookup(&ok(&nt)), Err(Error::NotTerminated));
        let mut zero_extra = 0i32.to_ne_bytes().to_vec();
        zero_extra.push(0);
        assert_eq!(parse_lookup(&ok(&zero_extra)), Err(Error::Bogus));
        let mut d = Decoder::new();
        d.feed(&frame(MsgType::Fail, 0, &[]));
        let f = d.next_frame().ok().flatten();
        assert_eq!(
            f.as_ref().map(parse_check),
            Some(Err(Error::BadResponse(1)))
        );
    }

    #[test]
    fn decoder_refuses_bad_lengths() {
        let mut hdr = frame(MsgType::Ok, 0, &[]);
        hdr[4..6].copy_from_slice(&3u16.to_ne_bytes());
        let mut d = Decoder::new();
        d.feed(&hdr);
        assert_eq!(d.next_frame(), Err(Error::BadLength(3)));
        let mut hdr = frame(MsgType::Ok, 0, &[]);
        hdr[4..6].copy_from_slice(&((MAX_FRAME + 1) as u16).to_ne_bytes());
        let mut d = Decoder::new();
        d.feed(&hdr);
        assert_eq!(d.next_frame(), Err(Error::BadLength(MAX_FRAME + 1)));
    }

    proptest! {
        /// Any bytes, cut anywhere: no panic, and never more buffered than a frame and a read.
        #[test]
        fn decoder_never_panics(chunks in proptest::collection::vec(
            proptest::collection::vec(any::<u8>(), 0..64), 0..64)) {
            let mut d = Decoder::new();
            for c in &chunks {
                d.feed(c);
                loop {
                    match d.next_frame() {
                        Ok(Some(f)) => {
                            prop_assert!(f.data.len() <= MAX_FRAME - HEADER_SIZE);
                            let _ = parse_lookup(&f);
                            let _ = parse_check(&f);
                            let _ = parse_open(&f);
                        }
                        Ok(None) => break,
                        Err(_) => return Ok(()),
                    }
                }
                prop_assert!(d.pending() < MAX_FRAME + 64);
            }
        }

        /// A lookup answer split at any point comes out whole and equal.
        #[test]
        fn lookup_roundtrip(value in "[^\\x00]{0,200}", r in -2i32..3, cut in 0usize..400) {
            let mut data = r.to_ne_bytes().to_vec();
            if r == 1 {
                data.extend_from_slice(value.as_bytes());
                data.push(0);
            }
            let bytes = frame(MsgType::Ok, 9, &data);
            let cut = cut.min(bytes.len());
            let mut d = Decoder::new();
            d.feed(&bytes[..cut]);
            let first = d.next_frame();
            prop_assert!(first.is_ok());
            let f = match first {
                Ok(Some(f)) => f,
                _ => {
                    prop_assert!(cut < bytes.len());
                    d.feed(&bytes[cut..]);
                    match d.next_frame() {
                        Ok(Some(f)) => f,
                        other => return Err(TestCaseError::fail(format!("{other:?}"))),
                    }
                }
            };
            let want = match r {
                1 => Answer::Yes(Some(value.clone())),
                0 => Answer::No,
                r => Answer::Failed(r),
            };
            prop_assert_eq!(parse_lookup(&f), Ok(want));
            prop_assert_eq!(d.pending(), 0);
        }

        /// Keys within bounds encode to a frame the decoder reads back.
        #[test]
        fn requests_decode(key in "[^\\x00]{0,300}") {
            if let Ok(b) = lookup(Service::Userinfo, &key, 5) {
                let mut d = Decoder::new();
                d.feed(&b);
                let f = d.next_frame();
                prop_assert!(matches!(f, Ok(Some(_))));
                if let Ok(Some(f)) = f {
                    prop_assert_eq!(f.msg_type, MsgType::Lookup as u32);
                    prop_assert_eq!(&f.data[12..f.data.len() - 1], key.as_bytes());
                }
            }
        }
    }
}
