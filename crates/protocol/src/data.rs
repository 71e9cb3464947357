//! Line framing and the DATA body reader.
//!
//! OpenSMTPD 6.8 splits input on LF only and strips one trailing CR, so a
//! bare LF ends a line exactly like CRLF, and a bare CR inside a line is
//! kept as data (verified on the binary: `bare\rcr line` is delivered with
//! the CR). Lines are C strings there: everything from the first NUL to the
//! end of the line is dropped (verified: `hi\0there` is stored as `hi`).
//! We keep all of that.
//!
//! **Deliberate difference (SMTP smuggling):** OpenSMTPD ends DATA on any
//! line that reads `.` after CR stripping, so `<LF>.<LF>`, `<LF>.<CR><LF>`
//! and `<CR><LF>.<LF>` all end the message (verified: `hi\n.\n` is accepted
//! as a complete message). A downstream server that disagrees on where a
//! message ends can be made to see smuggled commands. Here only
//! `<CR><LF>.<CR><LF>` ends DATA: the `.` line must itself end in CRLF and
//! the line before it (or the `DATA` command, for an empty body) must have
//! ended in CRLF. Any other `.` line is kept as a message line reading `.`
//! (not dot-unstuffed into an empty line, which would silently end the
//! header block). This is what Postfix calls `smtpd_forbid_bare_newline =
//! normalize`. Bare-LF lines are otherwise accepted as before.

/// OpenSMTPD's `SMTP_LINE_MAX`: a line of this many bytes or more (CR
/// included, LF excluded) ends the session with `500 5.0.0 Line too long`.
pub const SMTP_LINE_MAX: usize = 65535;

/// A line as framed on the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawLine {
    /// Bytes before the LF, trailing CR stripped, cut at the first NUL.
    pub text: Vec<u8>,
    /// The line ended in CRLF (not a bare LF).
    pub crlf: bool,
    /// The exact bytes before the LF, CR included, for the terminator check.
    pub raw_is_dot_cr: bool,
}

/// Result of pulling a line out of a [`LineBuffer`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Framed {
    Line(RawLine),
    /// A line reached [`SMTP_LINE_MAX`].
    TooLong,
}

/// Input buffer shared by command and DATA mode, like OpenSMTPD's iobuf.
#[derive(Clone, Debug, Default)]
pub struct LineBuffer {
    buf: Vec<u8>,
    start: usize,
}

impl LineBuffer {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, data: &[u8]) {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// Bytes buffered and not yet framed.
    pub fn pending(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    pub fn is_empty(&self) -> bool {
        self.start >= self.buf.len()
    }

    pub fn clear(&mut self) {
        self.buf.clear();
        self.start = 0;
    }

    /// Next complete line, `None` if none is complete yet.
    pub fn next_line(&mut self) -> Option<Framed> {
        let pending = &self.buf[self.start..];
        match pending.iter().position(|&c| c == b'\n') {
            None => {
                if pending.len() >= SMTP_LINE_MAX {
                    return Some(Framed::TooLong);
                }
                None
            }
            Some(len) => {
                if len >= SMTP_LINE_MAX {
                    return Some(Framed::TooLong);
                }
                let raw = &pending[..len];
                let crlf = raw.last() == Some(&b'\r');
                let body = if crlf { &raw[..len - 1] } else { raw };
                let text = match body.iter().position(|&c| c == 0) {
                    Some(n) => &body[..n],
                    None => body,
                };
                let line = RawLine {
                    text: text.to_vec(),
                    crlf,
                    raw_is_dot_cr: raw == b".\r",
                };
                self.start += len + 1;
                if self.start > 4096 && self.start * 2 > self.buf.len() {
                    self.buf.drain(..self.start);
                    self.start = 0;
                }
                Some(Framed::Line(line))
            }
        }
    }
}

/// What one DATA line means.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DataLine {
    /// A message line, dot-unstuffed, without line ending.
    Line(Vec<u8>),
    /// The `<CRLF>.<CRLF>` terminator.
    End,
}

/// Per-line DATA decoding: terminator detection and dot-unstuffing.
#[derive(Clone, Debug)]
pub struct DotDecoder {
    prev_crlf: bool,
}

impl Default for DotDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl DotDecoder {
    /// Start of the body: the DATA command's own line end counts as CRLF so
    /// that an immediate `.\r\n` ends an empty message.
    pub fn new() -> Self {
        DotDecoder { prev_crlf: true }
    }

    /// Also returns the number of bytes OpenSMTPD adds to its size counter
    /// for this line (`strlen(line) + 1` before unstuffing, 0 for the end).
    pub fn decode(&mut self, line: RawLine) -> (DataLine, usize) {
        let terminator = line.raw_is_dot_cr && self.prev_crlf;
        self.prev_crlf = line.crlf;
        if terminator {
            return (DataLine::End, 0);
        }
        let counted = line.text.len() + 1;
        let mut text = line.text;
        if text.first() == Some(&b'.') && text.len() > 1 {
            text.remove(0);
        }
        (DataLine::Line(text), counted)
    }
}

/// Standalone DATA reader: feed arbitrary chunks, pull lines until
/// [`DataItem::End`]. The session uses the same [`LineBuffer`] and
/// [`DotDecoder`]; this type exists for callers that only need a body (and
/// for the chunking-invariance tests).
#[derive(Clone, Debug)]
pub struct DataReader {
    buf: LineBuffer,
    dots: DotDecoder,
    max_size: u64,
    size: u64,
    done: bool,
}

/// One step of [`DataReader::next_item`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DataItem {
    Line(Vec<u8>),
    End,
    LineTooLong,
}

impl DataReader {
    pub fn new(max_size: u64) -> Self {
        DataReader {
            buf: LineBuffer::new(),
            dots: DotDecoder::new(),
            max_size,
            size: 0,
            done: false,
        }
    }

    pub fn push(&mut self, chunk: &[u8]) {
        self.buf.push(chunk);
    }

    pub fn next_item(&mut self) -> Option<DataItem> {
        if self.done {
            return None;
        }
        match self.buf.next_line()? {
            Framed::TooLong => {
                self.done = true;
                Some(DataItem::LineTooLong)
            }
            Framed::Line(l) => match self.dots.decode(l) {
                (DataLine::End, _) => {
                    self.done = true;
                    Some(DataItem::End)
                }
                (DataLine::Line(t), n) => {
                    self.size = self.size.saturating_add(n as u64);
                    Some(DataItem::Line(t))
                }
            },
        }
    }

    /// OpenSMTPD's `datain`: sum of `strlen(line) + 1` over body lines.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// `datain > max-message-size` (the 554 condition).
    pub fn too_big(&self) -> bool {
        self.size > self.max_size
    }

    /// Bytes received after the terminator (OpenSMTPD answers those with
    /// "Pipelining not supported").
    pub fn remaining(&self) -> &[u8] {
        self.buf.pending()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(input: &[u8]) -> (Vec<Vec<u8>>, bool) {
        let mut r = DataReader::new(u64::MAX);
        r.push(input);
        let mut lines = Vec::new();
        while let Some(item) = r.next_item() {
            match item {
                DataItem::Line(l) => lines.push(l),
                DataItem::End => return (lines, true),
                DataItem::LineTooLong => return (lines, false),
            }
        }
        (lines, false)
    }

    fn s(v: &[&str]) -> Vec<Vec<u8>> {
        v.iter().map(|x| x.as_bytes().to_vec()).collect()
    }

    #[test]
    fn basic() {
        assert_eq!(read(b"a\r\nb\r\n.\r\n"), (s(&["a", "b"]), true));
        assert_eq!(read(b".\r\n"), (s(&[]), true));
        assert_eq!(read(b"..x\r\n..\r\n.\r\n"), (s(&[".x", "."]), true));
        assert_eq!(
            read(b"bare\rcr line\r\n.\r\n"),
            (s(&["bare\rcr line"]), true)
        );
        assert_eq!(read(b"hi\x00there\r\n.\r\n"), (s(&["hi"]), true));
        assert_eq!(read(b"a\nb\n.\r\n"), (s(&["a", "b", "."]), false));
        assert_eq!(
            read(b"8bit \xe9\xff\r\n.\r\n"),
            (vec![b"8bit \xe9\xff".to_vec()], true)
        );
    }

    #[test]
    fn smuggling() {
        // Each of these is a complete message to OpenSMTPD 6.8 (the first
        // verified on the binary); none may end the message here.
        for input in [
            &b"x\r\n\n.\n"[..],
            b"x\n.\r\n",
            b"x\r\n.\n",
            b"x\r.\r\n",
            b"x\r\n.\r\r\n",
            b"x\r\n.\x00\r\n",
            b"x\r.\r",
        ] {
            let (_, ended) = read(input);
            assert!(!ended, "{input:?} must not end DATA");
        }
        // A smuggled command after a bogus end stays message content.
        let (lines, ended) = read(b"x\n.\r\nMAIL FROM:<evil@x>\r\n.\r\n");
        assert!(ended);
        assert_eq!(lines, s(&["x", ".", "MAIL FROM:<evil@x>"]));
        let (lines, ended) = read(b"x\n.\r\nMAIL FROM:<evil@x>\r\n\r\n.\r\n");
        assert!(ended);
        assert_eq!(lines, s(&["x", ".", "MAIL FROM:<evil@x>", ""]));
        // Once a CRLF line follows, a proper terminator works again.
        assert_eq!(read(b"x\nok\r\n.\r\n"), (s(&["x", "ok"]), true));
    }

    #[test]
    fn size_accounting() {
        let mut r = DataReader::new(5);
        r.push(b"abcd\r\n..e\r\n.\r\n");
        assert_eq!(r.next_item(), Some(DataItem::Line(b"abcd".to_vec())));
        assert_eq!(r.size(), 5);
        assert!(!r.too_big());
        assert_eq!(r.next_item(), Some(DataItem::Line(b".e".to_vec())));
        assert_eq!(r.size(), 9);
        assert!(r.too_big());
        assert_eq!(r.next_item(), Some(DataItem::End));
        assert_eq!(r.size(), 9);
    }

    #[test]
    fn line_too_long() {
        let mut long = vec![b'a'; SMTP_LINE_MAX - 1];
        long.extend_from_slice(b"\n.\r\n");
        assert!(!read(&long).1); // bare LF before the dot: no end
        let mut ok = vec![b'a'; SMTP_LINE_MAX - 1];
        ok.extend_from_slice(b"\r\n");
        // 65534 + CR = 65535 ≥ SMTP_LINE_MAX.
        let mut r = DataReader::new(u64::MAX);
        r.push(&ok);
        assert_eq!(r.next_item(), Some(DataItem::LineTooLong));
        let mut r = DataReader::new(u64::MAX);
        r.push(&vec![b'a'; SMTP_LINE_MAX]);
        assert_eq!(r.next_item(), Some(DataItem::LineTooLong));
        let mut r = DataReader::new(u64::MAX);
        r.push(&vec![b'a'; SMTP_LINE_MAX - 1]);
        assert_eq!(r.next_item(), None);
        r.push(b"\n");
        assert!(matches!(r.next_item(), Some(DataItem::Line(_))));
    }

    #[test]
    fn remaining_after_end() {
        let mut r = DataReader::new(100);
        r.push(b"a\r\n.\r\nQUIT\r\n");
        assert!(matches!(r.next_item(), Some(DataItem::Line(_))));
        assert_eq!(r.next_item(), Some(DataItem::End));
        assert_eq!(r.remaining(), b"QUIT\r\n");
        assert_eq!(r.next_item(), None);
    }
}
