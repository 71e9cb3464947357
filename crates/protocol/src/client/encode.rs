//! The message as it goes on the wire after `DATA`: the queued message's LF lines as CRLF
//! lines, a `.` doubled at the start of a line (RFC 5321 §4.5.2), the last line ended even if
//! the file does not end with LF. This is 6.8's `mta_queue_data`: `getline`, strip the LF,
//! `"%s%s\r\n", *ln == '.' ? "." : "", ln`, so a CR before the LF is sent as it is.
//!
//! Streaming: chunks may split lines anywhere; the output is the same as for the whole file.

#[derive(Debug, Clone)]
pub struct DotStuffer {
    at_line_start: bool,
    /// Bytes of the last line seen without its LF yet.
    open_line: bool,
    written: u64,
}

impl Default for DotStuffer {
    fn default() -> Self {
        DotStuffer {
            at_line_start: true,
            open_line: false,
            written: 0,
        }
    }
}

impl DotStuffer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends the wire form of `chunk` to `out`.
    pub fn encode(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        let start = out.len();
        out.reserve(chunk.len() + chunk.len() / 32 + 8);
        let mut rest = chunk;
        while !rest.is_empty() {
            if self.at_line_start && rest[0] == b'.' {
                out.push(b'.');
            }
            self.at_line_start = false;
            match rest.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    out.extend_from_slice(&rest[..i]);
                    out.extend_from_slice(b"\r\n");
                    rest = &rest[i + 1..];
                    self.at_line_start = true;
                    self.open_line = false;
                }
                None => {
                    out.extend_from_slice(rest);
                    self.open_line = true;
                    rest = &[];
                }
            }
        }
        self.written += (out.len() - start) as u64;
    }

    /// Ends the body: a CRLF after a last line without LF. The `.` that ends DATA is the
    /// client session's.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.open_line {
            out.extend_from_slice(b"\r\n");
            self.written += 2;
            self.open_line = false;
            self.at_line_start = true;
        }
    }

    /// Bytes produced so far (6.8's `datalen`).
    pub fn written(&self) -> u64 {
        self.written
    }
}

/// The whole wire form of `message` (without the final `.`).
pub fn dot_stuff(message: &[u8]) -> Vec<u8> {
    let mut d = DotStuffer::new();
    let mut out = Vec::new();
    d.encode(message, &mut out);
    d.finish(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn lines_dots_and_the_last_line() {
        assert_eq!(dot_stuff(b"a\n.b\n..\nc"), b"a\r\n..b\r\n...\r\nc\r\n");
        assert_eq!(dot_stuff(b""), b"");
        assert_eq!(dot_stuff(b".\n"), b"..\r\n");
        // 6.8 keeps a CR before the LF: the stored file has LF lines.
        assert_eq!(dot_stuff(b"x\r\n"), b"x\r\r\n");
    }

    proptest! {
        #[test]
        fn chunking_does_not_change_the_output(
            msg in proptest::collection::vec(prop_oneof![Just(b'.'), Just(b'\n'), Just(b'a'), Just(b'\r')], 0..200),
            cuts in proptest::collection::vec(0usize..200, 0..10),
        ) {
            let whole = dot_stuff(&msg);
            let mut d = DotStuffer::new();
            let mut out = Vec::new();
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(msg.len())).collect();
            cuts.sort();
            let mut prev = 0;
            for c in cuts {
                d.encode(&msg[prev..c], &mut out);
                prev = c;
            }
            d.encode(&msg[prev..], &mut out);
            d.finish(&mut out);
            prop_assert_eq!(&out, &whole);
            prop_assert_eq!(d.written(), whole.len() as u64);
            // What a server's DotDecoder reads back is the message, LF-terminated.
            let mut back = Vec::new();
            let mut lb = crate::data::LineBuffer::new();
            lb.push(&out);
            lb.push(b".\r\n");
            let mut dec = crate::data::DotDecoder::new();
            while let Some(crate::data::Framed::Line(l)) = lb.next_line() {
                match dec.decode(l).0 {
                    crate::data::DataLine::Line(b) => { back.extend_from_slice(&b); back.push(b'\n'); }
                    _ => break,
                }
            }
            let mut want = msg.clone();
            if !want.is_empty() && want.last() != Some(&b'\n') { want.push(b'\n'); }
            prop_assert_eq!(back, want);
        }
    }
}
