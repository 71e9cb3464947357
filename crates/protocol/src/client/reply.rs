//! Reading the server's replies, bounded.
//!
//! A hostile server controls every byte we read here, so the parser has hard caps: a line of
//! [`LINE_MAX`] bytes or more without its LF ends the session (`Input too long`, as 6.8's
//! `io_getline` does), and so does a reply of more than [`MAX_LINES`] lines. The text we keep
//! has no control characters: a reply ends up in an envelope's `errorline`, in the log and in a
//! bounce, and CVE-2020-8794 was exactly a server's multi-line reply written into an envelope
//! file. Whatever a server sends, at most `LINE_MAX * MAX_LINES` bytes are held.

use std::collections::VecDeque;

/// Linux `LINE_MAX`, the size of 6.8's `io_getline` and reply buffers.
pub const LINE_MAX: usize = 2048;
/// Lines in one reply. An EHLO reply has a line per extension, a dozen or two in practice.
pub const MAX_LINES: usize = 128;

/// One complete reply: `code` and the text of each line (after `NNN-` / `NNN `).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerReply {
    pub code: u16,
    /// Text of each line, control characters replaced by `?`; never empty.
    pub lines: Vec<String>,
}

/// Why the input cannot be read as replies; the session ends with this text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplyError {
    /// `Input too long`: a line of `LINE_MAX` bytes without LF.
    LineTooLong,
    /// `Bad response: ...` with 6.8's `parse_smtp_response` words.
    Bad(&'static str),
    /// More than `MAX_LINES` lines in one reply.
    TooManyLines,
}

impl ReplyError {
    /// The `mta error reason=` / errorline text.
    pub fn text(&self) -> String {
        match self {
            ReplyError::LineTooLong => "Input too long".into(),
            ReplyError::Bad(w) => format!("Bad response: {w}"),
            ReplyError::TooManyLines => "Bad response: too many lines".into(),
        }
    }
}

impl ServerReply {
    /// `2`, `3`, `4` or `5`.
    pub fn class(&self) -> u8 {
        (self.code / 100) as u8
    }

    pub fn is_positive(&self) -> bool {
        self.class() == 2
    }

    /// The reply as one line, the way 6.8 keeps it in `replybuf` (what the `stat=` of the log,
    /// the envelope's errorline and the bounce show): the first line whole (`550-5.1.1 text`
    /// for a multi-line reply), then the text of each further line with its own code and
    /// enhanced code stripped, at most `LINE_MAX - 1` bytes (the last line whole if the
    /// concatenation would not fit).
    pub fn line(&self) -> String {
        let sep = if self.lines.len() > 1 { '-' } else { ' ' };
        let first = format!("{:03}{}{}", self.code, sep, self.lines[0]);
        if self.lines.len() == 1 {
            return clip(first);
        }
        let mut out = clip(first);
        let n = self.lines.len();
        for (i, l) in self.lines.iter().enumerate().skip(1) {
            let piece = strip_enhanced(l);
            if i == n - 1 {
                if out.len() + piece.len() >= LINE_MAX {
                    return clip(format!("{:03} {}", self.code, l));
                }
                out.push_str(piece);
            } else {
                // strlcat: what fits of a middle line.
                out.push_str(piece);
                out = clip(out);
            }
        }
        out
    }

    /// The first line as the server sent it (`550-5.1.1 text` for a multi-line reply).
    pub fn first_line(&self) -> String {
        let sep = if self.lines.len() > 1 { '-' } else { ' ' };
        format!("{:03}{}{}", self.code, sep, self.lines[0])
    }

    /// The last line as the server sent it (`550 5.1.1 text`).
    pub fn last_line(&self) -> String {
        let last = self.lines.last().map_or("", |l| l.as_str());
        format!("{:03} {}", self.code, last)
    }

    /// The enhanced status code at the start of the first line (`5.1.1`), if any.
    pub fn enhanced(&self) -> Option<(u8, u16, u16)> {
        let t = self.lines[0].as_str();
        let code = t.split(' ').next()?;
        let mut it = code.split('.');
        let class: u8 = it.next()?.parse().ok()?;
        let subject: u16 = it.next()?.parse().ok()?;
        let detail: u16 = it.next()?.parse().ok()?;
        if it.next().is_some() || !(2..=5).contains(&class) || class != self.class() {
            return None;
        }
        if subject > 999 || detail > 999 {
            return None;
        }
        Some((class, subject, detail))
    }

    /// The text of the EHLO reply's extension lines (every line but the first).
    pub fn extensions(&self) -> impl Iterator<Item = &str> {
        self.lines.iter().skip(1).map(|s| s.as_str())
    }
}

fn clip(mut s: String) -> String {
    if s.len() >= LINE_MAX {
        let mut end = LINE_MAX - 1;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

/// 6.8: a continuation's text after `NNN-`, without a leading `D.D.D` enhanced code (it
/// keeps the space before the text).
fn strip_enhanced(l: &str) -> &str {
    let b = l.as_bytes();
    if b.len() > 5
        && b[0].is_ascii_digit()
        && b[1] == b'.'
        && b[2].is_ascii_digit()
        && b[3] == b'.'
        && b[4].is_ascii_digit()
        && b[5].is_ascii_whitespace()
    {
        &l[5..]
    } else {
        l
    }
}

/// Turns bytes from the server into [`ServerReply`]s.
#[derive(Debug, Default)]
pub struct ReplyParser {
    buf: Vec<u8>,
    partial: Option<ServerReply>,
    ready: VecDeque<Result<ServerReply, ReplyError>>,
    failed: bool,
}

impl ReplyParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes bytes as read. After an error, nothing more is read.
    pub fn push(&mut self, data: &[u8]) {
        if self.failed {
            return;
        }
        let mut rest = data;
        while !rest.is_empty() && !self.failed {
            match rest.iter().position(|&b| b == b'\n') {
                None => {
                    self.buf.extend_from_slice(rest);
                    if self.buf.len() >= LINE_MAX {
                        self.fail(ReplyError::LineTooLong);
                    }
                    return;
                }
                Some(i) => {
                    if self.buf.len() + i >= LINE_MAX {
                        self.fail(ReplyError::LineTooLong);
                        return;
                    }
                    self.buf.extend_from_slice(&rest[..i]);
                    rest = &rest[i + 1..];
                    let line = std::mem::take(&mut self.buf);
                    self.line(&line);
                }
            }
        }
    }

    fn fail(&mut self, e: ReplyError) {
        self.failed = true;
        self.buf = Vec::new();
        self.partial = None;
        self.ready.push_back(Err(e));
    }

    fn line(&mut self, line: &[u8]) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.len() < 3 {
            return self.fail(ReplyError::Bad("line too short"));
        }
        if !(b'2'..=b'5').contains(&line[0])
            || !line[1].is_ascii_digit()
            || !line[2].is_ascii_digit()
        {
            return self.fail(ReplyError::Bad("reply code out of range"));
        }
        let code = u16::from(line[0] - b'0') * 100
            + u16::from(line[1] - b'0') * 10
            + u16::from(line[2] - b'0');
        let (cont, text) = match line.get(3) {
            None => (false, &line[3..]),
            Some(b'-') => (true, &line[4..]),
            Some(_) => (false, &line[4..]),
        };
        let text = safe_text(text);
        match &mut self.partial {
            Some(p) => {
                if p.code != code {
                    return self.fail(ReplyError::Bad("reply code mismatch"));
                }
                if p.lines.len() >= MAX_LINES {
                    return self.fail(ReplyError::TooManyLines);
                }
                p.lines.push(text);
            }
            None => {
                self.partial = Some(ServerReply {
                    code,
                    lines: vec![text],
                })
            }
        }
        if !cont {
            if let Some(p) = self.partial.take() {
                self.ready.push_back(Ok(p));
            }
        }
    }

    /// The next complete reply, or the error that ended the input.
    pub fn next_reply(&mut self) -> Option<Result<ServerReply, ReplyError>> {
        self.ready.pop_front()
    }

    /// True when bytes of an unfinished reply are held (6.8: `Remote host sent too much data`
    /// when a server talks without being asked).
    pub fn has_pending_input(&self) -> bool {
        !self.buf.is_empty() || self.partial.is_some() || !self.ready.is_empty()
    }
}

/// The text of a line as we keep it: UTF-8 (lossy), control characters as `?`.
fn safe_text(b: &[u8]) -> String {
    String::from_utf8_lossy(b)
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(input: &[u8]) -> Vec<Result<ServerReply, ReplyError>> {
        let mut p = ReplyParser::new();
        p.push(input);
        std::iter::from_fn(|| p.next_reply()).collect()
    }

    #[test]
    fn single_and_multiline() {
        let r = all(b"220 mx ESMTP\r\n250-mx hello\r\n250-PIPELINING\r\n250 SIZE 100\r\n");
        assert_eq!(r.len(), 2);
        let e = r[1].clone().unwrap();
        assert_eq!(e.code, 250);
        assert_eq!(
            e.extensions().collect::<Vec<_>>(),
            ["PIPELINING", "SIZE 100"]
        );
    }

    #[test]
    fn chunked_bytes_give_the_same_replies() {
        let input = b"250-a\r\n250-b\r\n250 c\r\n354 go\r\n";
        let mut p = ReplyParser::new();
        for b in input {
            p.push(&[*b]);
        }
        let r: Vec<_> = std::iter::from_fn(|| p.next_reply()).collect();
        assert_eq!(r, all(input));
    }

    #[test]
    fn line_as_6_8_keeps_it() {
        let r = all(b"550-5.1.1 first\r\n550 5.1.1 second\r\n")[0]
            .clone()
            .unwrap();
        assert_eq!(r.line(), "550-5.1.1 first second");
        assert_eq!(r.enhanced(), Some((5, 1, 1)));
        let r = all(b"250 2.0.0 Ok: queued\r\n")[0].clone().unwrap();
        assert_eq!(r.line(), "250 2.0.0 Ok: queued");
        let r = all(b"354\r\n")[0].clone().unwrap();
        assert_eq!(r.line(), "354 ");
        assert_eq!(r.enhanced(), None);
    }

    #[test]
    fn bounded_line_length() {
        let mut p = ReplyParser::new();
        for _ in 0..100 {
            p.push(&[b'2'; 100]);
        }
        assert_eq!(p.next_reply(), Some(Err(ReplyError::LineTooLong)));
        assert!(p.buf.capacity() < LINE_MAX * 2);
        // Nothing is read after the error.
        p.push(b"250 ok\r\n");
        assert_eq!(p.next_reply(), None);
    }

    #[test]
    fn bounded_reply_lines() {
        let mut input = Vec::new();
        for _ in 0..=MAX_LINES {
            input.extend_from_slice(b"250-x\r\n");
        }
        let r = all(&input);
        assert_eq!(r, vec![Err(ReplyError::TooManyLines)]);
    }

    #[test]
    fn bad_codes() {
        assert_eq!(all(b"ab\r\n"), vec![Err(ReplyError::Bad("line too short"))]);
        assert_eq!(
            all(b"650 x\r\n"),
            vec![Err(ReplyError::Bad("reply code out of range"))]
        );
        assert_eq!(
            all(b"250-x\r\n550 y\r\n"),
            vec![Err(ReplyError::Bad("reply code mismatch"))]
        );
    }

    #[test]
    fn no_control_characters_reach_the_text() {
        // CVE-2020-8794: a reply must not carry a line break (or anything else) into the
        // envelope file it is written to.
        let r = all(b"550 a\rb\0c\x1bd\r\n")[0].clone().unwrap();
        assert_eq!(r.line(), "550 a?b?c?d");
        assert!(!r.line().contains(['\n', '\r', '\0']));
    }

    #[test]
    fn long_concatenations_are_clipped_on_a_char_boundary() {
        let mut input = Vec::new();
        for _ in 0..40 {
            input.extend_from_slice("550-é".as_bytes());
            input.extend_from_slice("ü".repeat(200).as_bytes());
            input.extend_from_slice(b"\r\n");
        }
        input.extend_from_slice(b"550 last\r\n");
        let r = all(&input)[0].clone().unwrap();
        let l = r.line();
        assert!(l.len() < LINE_MAX);
        assert_eq!(l, "550 last");
    }
}
