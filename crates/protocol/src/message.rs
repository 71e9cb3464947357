//! What OpenSMTPD 6.8 does to a message while receiving it: a port of
//! `rfc5322.c` and of the header handling in `smtp_tx_dataline` /
//! `header_domain_append_callback` (`smtp_session.c`).
//!
//! - `Bcc:` headers are dropped;
//! - `To:`, `Cc:`, `From:` are unfolded and every address without `@` gets
//!   `@<listener hostname>` (and, with sender masquerading, `From:` gets the
//!   envelope sender);
//! - `Received:` headers are counted (100 → routing loop);
//! - on local / port-587 listeners missing `Date:` and `Message-ID:` are
//!   added at the end of the header block;
//! - a first non-header line that is not empty makes the message malformed.
//!
//! Output uses LF line endings, as in OpenSMTPD's queue files. The buffer
//! limits of the C parser (1024 bytes of header name, 64 KiB of unfolded
//! address header) are emulated because exceeding them changes the reply.

/// `MAX_HOPS_COUNT`.
pub const MAX_HOPS_COUNT: usize = 100;
const APPEND_DOMAIN_BUFFER_SIZE: usize = 65535;
const HDR_BUFMAX: usize = 1024;
const VAL_BUFMAX: usize = 65536;

/// Why a message is refused at the final dot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageError {
    /// Header block not followed by an empty line, or a parser limit hit.
    Malformed,
    /// 100 or more `Received:` headers.
    Loop,
}

/// Per-message settings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MessageOptions {
    /// The listener's `hostname` (not the per-session name from a
    /// `hostnames` table: OpenSMTPD uses the listener's here).
    pub hostname: String,
    /// Listener is local (unix socket / loopback) or on port 587.
    pub add_missing_headers: bool,
    /// Text for an added `Date:` header.
    pub date: String,
    /// Random 64-bit value for an added `Message-ID:`.
    pub message_id_uid: u64,
    /// `Some(sender)` when `From:` must be masqueraded to the envelope
    /// sender (authenticated session, listener `senders <t> masquerade`).
    pub masquerade_from: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum St {
    None,
    HeaderStart,
    HeaderCont,
    HeaderEnd,
    EndOfHeaders,
    BodyStart,
    Body,
    EndOfMessage,
    Error,
}

/// C `buf_alloc` growth rule: grows in 256-byte steps, refuses to grow to
/// `bufmax` or beyond.
#[derive(Clone, Debug, Default)]
struct BufModel {
    bufsz: usize,
    allocated: bool,
}

impl BufModel {
    fn alloc(&mut self, need: usize, bufmax: usize) -> bool {
        if self.allocated && self.bufsz >= need {
            return true;
        }
        if need >= bufmax {
            return false;
        }
        self.bufsz = need.div_ceil(256) * 256;
        self.allocated = true;
        true
    }
}

/// Message content processor. Feed dot-unstuffed lines with [`line`], then
/// call [`end`]; drain produced bytes with [`take_output`].
///
/// [`line`]: MessageProcessor::line
/// [`end`]: MessageProcessor::end
/// [`take_output`]: MessageProcessor::take_output
#[derive(Clone, Debug)]
pub struct MessageProcessor {
    opts: MessageOptions,
    state: St,
    hdr: Vec<u8>,
    hdr_buflen: usize,
    hdr_buf: BufModel,
    val: Vec<u8>,
    val_buf: BufModel,
    unfold: bool,
    currhdr: Option<Vec<u8>>,
    rcvcount: usize,
    has_date: bool,
    has_message_id: bool,
    error: Option<MessageError>,
    out: Vec<u8>,
    written: u64,
}

enum Ev<'a> {
    HeaderStart(&'a [u8]),
    HeaderCont(&'a [u8]),
    HeaderEnd(Option<Vec<u8>>),
    EndOfHeaders,
    Body(&'a [u8]),
    EndOfMessage,
}

impl MessageProcessor {
    pub fn new(opts: MessageOptions) -> Self {
        MessageProcessor {
            opts,
            state: St::None,
            hdr: Vec::new(),
            hdr_buflen: 0,
            hdr_buf: BufModel::default(),
            val: Vec::new(),
            val_buf: BufModel::default(),
            unfold: false,
            currhdr: None,
            rcvcount: 0,
            has_date: false,
            has_message_id: false,
            error: None,
            out: Vec::new(),
            written: 0,
        }
    }

    /// Write bytes smtpd adds itself (X-Spam, Received) before the content.
    pub fn prepend(&mut self, bytes: &[u8]) {
        self.emit(bytes);
    }

    /// First error hit, if any. Once set, further lines are ignored.
    pub fn error(&self) -> Option<MessageError> {
        self.error
    }

    /// Total bytes produced (OpenSMTPD's `odatalen`, logged as `size=`).
    pub fn written(&self) -> u64 {
        self.written
    }

    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    fn emit(&mut self, bytes: &[u8]) {
        if self.error.is_some() {
            return;
        }
        self.written += bytes.len() as u64;
        self.out.extend_from_slice(bytes);
    }

    /// One message line (no line ending, already dot-unstuffed, no NUL).
    pub fn line(&mut self, line: &[u8]) {
        if self.error.is_some() {
            return;
        }
        self.push(Some(line));
    }

    /// End of data. Returns the error that makes the message refused.
    pub fn end(&mut self) -> Result<(), MessageError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        self.push(None);
        match self.error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn push(&mut self, line: Option<&[u8]>) {
        let mut pending = true;
        loop {
            let ev = match self.next_event(line, &mut pending) {
                Ok(Some(ev)) => ev,
                Ok(None) => return,
                Err(()) => {
                    self.error = Some(MessageError::Malformed);
                    self.state = St::Error;
                    return;
                }
            };
            match ev {
                Ev::HeaderStart(value) => {
                    let hdr = self.hdr.clone();
                    if hdr.eq_ignore_ascii_case(b"Bcc") {
                        continue;
                    }
                    if is_addr_header(&hdr) {
                        // rfc5322_unfold_header; its failure is ignored by
                        // smtpd and cannot happen for a single line anyway.
                        if let Some(cur) = self.currhdr.take() {
                            let need = self.val.len() + cur.len() + 1;
                            if self.val_buf.alloc(need, VAL_BUFMAX) {
                                self.val.extend_from_slice(&cur);
                                self.unfold = true;
                            }
                        }
                        continue;
                    }
                    if hdr.eq_ignore_ascii_case(b"Received") {
                        self.rcvcount += 1;
                        if self.rcvcount >= MAX_HOPS_COUNT {
                            self.error = Some(MessageError::Loop);
                            return;
                        }
                    } else if !self.has_date && hdr.eq_ignore_ascii_case(b"Date") {
                        self.has_date = true;
                    } else if !self.has_message_id && hdr.eq_ignore_ascii_case(b"Message-Id") {
                        self.has_message_id = true;
                    }
                    let mut l = hdr;
                    l.push(b':');
                    l.extend_from_slice(value);
                    l.push(b'\n');
                    self.emit(&l);
                }
                Ev::HeaderCont(value) => {
                    if self.hdr.eq_ignore_ascii_case(b"Bcc") || is_addr_header(&self.hdr) {
                        continue;
                    }
                    let mut l = value.to_vec();
                    l.push(b'\n');
                    self.emit(&l);
                }
                Ev::HeaderEnd(value) => {
                    if is_addr_header(&self.hdr) {
                        let hdr = self.hdr.clone();
                        self.domain_append(&hdr, value.as_deref());
                    }
                }
                Ev::EndOfHeaders => {
                    if self.opts.add_missing_headers {
                        if !self.has_date {
                            let l = format!("Date: {}\n", self.opts.date);
                            self.emit(l.as_bytes());
                        }
                        if !self.has_message_id {
                            let l = format!(
                                "Message-ID: <{:016x}@{}>\n",
                                self.opts.message_id_uid, self.opts.hostname
                            );
                            self.emit(l.as_bytes());
                        }
                    }
                }
                Ev::Body(value) => {
                    let mut l = value.to_vec();
                    l.push(b'\n');
                    self.emit(&l);
                }
                Ev::EndOfMessage => return,
            }
        }
    }

    /// `_rfc5322_next`. `pending` is whether the pushed line is still
    /// unconsumed; `Ok(None)` means "need more data".
    fn next_event<'a>(
        &mut self,
        line: Option<&'a [u8]>,
        pending: &mut bool,
    ) -> Result<Option<Ev<'a>>, ()> {
        let cur = if *pending { line } else { return Ok(None) };
        match self.state {
            St::HeaderStart | St::HeaderCont => {
                if let Some(l) = cur {
                    if matches!(l.first(), Some(b' ') | Some(b'\t')) {
                        *pending = false;
                        if self.unfold {
                            let need = self.val.len() + 1 + 1;
                            if !self.val_buf.alloc(need, VAL_BUFMAX) {
                                return Err(());
                            }
                            self.val.push(b'\n');
                            let need = self.val.len() + l.len() + 1;
                            if !self.val_buf.alloc(need, VAL_BUFMAX) {
                                return Err(());
                            }
                            self.val.extend_from_slice(l);
                        }
                        self.state = St::HeaderCont;
                        return Ok(Some(Ev::HeaderCont(l)));
                    }
                }
                let value = if self.unfold {
                    self.unfold = false;
                    Some(std::mem::take(&mut self.val))
                } else {
                    None
                };
                self.state = St::HeaderEnd;
                Ok(Some(Ev::HeaderEnd(value)))
            }
            St::None | St::HeaderEnd => {
                if let Some(l) = cur {
                    if let Some(pos) = l.iter().position(|&c| c == b':') {
                        let need = self.hdr_buflen + pos + 1;
                        if !self.hdr_buf.alloc(need, HDR_BUFMAX) {
                            return Err(());
                        }
                        self.hdr = l[..pos].to_vec();
                        self.hdr_buflen = pos + 1;
                        *pending = false;
                        self.currhdr = Some(l[pos + 1..].to_vec());
                        self.state = St::HeaderStart;
                        return Ok(Some(Ev::HeaderStart(&l[pos + 1..])));
                    }
                }
                self.state = St::EndOfHeaders;
                Ok(Some(Ev::EndOfHeaders))
            }
            St::EndOfHeaders => match cur {
                None => {
                    self.state = St::EndOfMessage;
                    Ok(Some(Ev::EndOfMessage))
                }
                Some(l) if l.is_empty() => {
                    *pending = false;
                    self.state = St::BodyStart;
                    Ok(Some(Ev::Body(l)))
                }
                Some(_) => Err(()),
            },
            St::BodyStart | St::Body => match cur {
                None => {
                    self.state = St::EndOfMessage;
                    Ok(Some(Ev::EndOfMessage))
                }
                Some(l) => {
                    *pending = false;
                    self.state = St::Body;
                    Ok(Some(Ev::Body(l)))
                }
            },
            St::EndOfMessage | St::Error => Err(()),
        }
    }

    /// `header_domain_append_callback`.
    fn domain_append(&mut self, hdr: &[u8], value: Option<&[u8]>) {
        let mut head = hdr.to_vec();
        head.push(b':');
        self.emit(&head);
        let Some(value) = value else { return };
        let host = self.opts.hostname.clone();
        let masq = if hdr.eq_ignore_ascii_case(b"From") {
            self.opts.masquerade_from.clone()
        } else {
            None
        };
        let finish = |buf: &mut Vec<u8>| {
            header_append_domain(buf, host.as_bytes());
            if let Some(addr) = &masq {
                header_address_rewrite(buf, addr.as_bytes());
            }
        };
        let (mut escape, mut quote, mut skip) = (false, false, false);
        let mut comment = 0u32;
        let mut buffer: Vec<u8> = Vec::new();
        for line in value.split(|&c| c == b'\n') {
            for &c in line {
                if c == b'(' && !escape && !quote {
                    comment += 1;
                }
                if c == b'"' && !escape && comment == 0 {
                    quote = !quote;
                }
                if c == b')' && !escape && !quote && comment > 0 {
                    comment -= 1;
                }
                escape = c == b'\\' && !escape && comment == 0 && !quote;
                if c == b',' && !escape && !quote && comment == 0 {
                    if !skip && buffer.len() + host.len() + 1 < APPEND_DOMAIN_BUFFER_SIZE {
                        finish(&mut buffer);
                    }
                    buffer.push(b',');
                    self.emit(&buffer);
                    buffer.clear();
                    skip = false;
                } else if skip {
                    self.emit(&[c]);
                } else {
                    buffer.push(c);
                    if buffer.len() == APPEND_DOMAIN_BUFFER_SIZE - 1 {
                        self.emit(&buffer);
                        buffer.clear();
                        skip = true;
                    }
                }
            }
            if skip {
                self.emit(b"\n");
            } else {
                buffer.push(b'\n');
                if buffer.len() == APPEND_DOMAIN_BUFFER_SIZE - 1 {
                    self.emit(&buffer);
                    buffer.clear();
                    skip = true;
                }
            }
        }
        if !buffer.is_empty() {
            if buffer.len() + host.len() + 1 < APPEND_DOMAIN_BUFFER_SIZE {
                finish(&mut buffer);
            }
            self.emit(&buffer);
        }
    }
}

fn is_addr_header(h: &[u8]) -> bool {
    h.eq_ignore_ascii_case(b"To")
        || h.eq_ignore_ascii_case(b"Cc")
        || h.eq_ignore_ascii_case(b"From")
}

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// Scan state shared by the two header rewriters.
struct Scan {
    escape: bool,
    quote: bool,
    comment: u32,
}

impl Scan {
    fn new() -> Self {
        Scan {
            escape: false,
            quote: false,
            comment: 0,
        }
    }
    fn step(&mut self, c: u8) {
        if c == b'(' && !self.escape && !self.quote {
            self.comment += 1;
        }
        if c == b'"' && !self.escape && self.comment == 0 {
            self.quote = !self.quote;
        }
        if c == b')' && !self.escape && !self.quote && self.comment > 0 {
            self.comment -= 1;
        }
        self.escape = c == b'\\' && !self.escape && self.comment == 0 && !self.quote;
    }
    fn plain(&self) -> bool {
        !self.escape && self.comment == 0 && !self.quote
    }
}

/// `header_append_domain_buffer`: add `@domain` to one address of an
/// address list unless it has a domain, is a group, is empty or does not
/// parse.
pub fn header_append_domain(buffer: &mut Vec<u8>, domain: &[u8]) {
    let mut sc = Scan::new();
    let mut bracket = 0u32;
    let (mut has_domain, mut has_bracket, mut has_group) = (false, false, false);
    let (mut pos_bracket, mut pos_component) = (0usize, 0usize);
    for (i, &c) in buffer.iter().enumerate() {
        sc.step(c);
        if c == b'<' && sc.plain() && bracket == 0 {
            bracket += 1;
            has_bracket = true;
        }
        if c == b'>' && sc.plain() && bracket > 0 {
            bracket -= 1;
            pos_bracket = i;
        }
        if c == b'@' && sc.plain() {
            has_domain = true;
        }
        if c == b':' && sc.plain() {
            has_group = true;
        }
        if sc.comment == 0 && c != b')' && !is_space(c) {
            pos_component = i;
        }
    }
    if sc.escape || sc.quote || sc.comment > 0 || bracket > 0 || has_domain || has_group {
        return;
    }
    let pos_insert = if has_bracket {
        let mut p = pos_bracket;
        loop {
            if p == 0 {
                break;
            }
            p -= 1;
            if !buffer.get(p).copied().is_some_and(is_space) {
                break;
            }
        }
        if buffer.get(p) == Some(&b'<') {
            return;
        }
        p + 1
    } else {
        match buffer.get(pos_component) {
            None => return,
            Some(&c) if is_space(c) => return,
            Some(_) => pos_component + 1,
        }
    };
    if buffer.len() + 1 + domain.len() >= APPEND_DOMAIN_BUFFER_SIZE {
        return;
    }
    let mut ins = Vec::with_capacity(domain.len() + 1);
    ins.push(b'@');
    ins.extend_from_slice(domain);
    buffer.splice(pos_insert..pos_insert, ins);
}

/// `header_address_rewrite_buffer`: replace the address of one list entry
/// with `address` (sender masquerading).
pub fn header_address_rewrite(buffer: &mut Vec<u8>, address: &[u8]) {
    let mut sc = Scan::new();
    let mut bracket = 0u32;
    let (mut has_bracket, mut has_group) = (false, false);
    let (mut pos_bracket_beg, mut pos_bracket_end, mut pos_component_end) =
        (0usize, 0usize, 0usize);
    for (i, &c) in buffer.iter().enumerate() {
        sc.step(c);
        if c == b'<' && sc.plain() && bracket == 0 {
            bracket += 1;
            has_bracket = true;
            pos_bracket_beg = i + 1;
        }
        if c == b'>' && sc.plain() && bracket > 0 {
            bracket -= 1;
            pos_bracket_end = i;
        }
        if c == b':' && sc.plain() {
            has_group = true;
        }
        if sc.comment == 0 && c != b')' && !is_space(c) {
            pos_component_end = i;
        }
    }
    if sc.escape || sc.quote || sc.comment > 0 || bracket > 0 || has_group {
        return;
    }
    let (beg, end) = if has_bracket {
        (pos_bracket_beg, pos_bracket_end)
    } else if pos_component_end == 0 {
        (0, 0)
    } else {
        let mut b = pos_component_end as isize;
        while b >= 0 {
            let c = buffer[b as usize];
            if c == b')' || is_space(c) {
                break;
            }
            b -= 1;
        }
        ((b + 1) as usize, pos_component_end + 1)
    };
    if end < beg || end > buffer.len() {
        return;
    }
    if buffer.len() - (end - beg) + address.len() >= APPEND_DOMAIN_BUFFER_SIZE {
        return;
    }
    buffer.splice(beg..end, address.iter().copied());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(lines: &[&str], opts: MessageOptions) -> (String, Result<(), MessageError>) {
        let mut p = MessageProcessor::new(opts);
        for l in lines {
            p.line(l.as_bytes());
        }
        let r = p.end();
        (String::from_utf8_lossy(&p.take_output()).into_owned(), r)
    }

    fn opts() -> MessageOptions {
        MessageOptions {
            hostname: "mx.test".into(),
            ..Default::default()
        }
    }

    #[test]
    fn plain_message() {
        let (out, r) = run(&["Subject: x", "", "hi"], opts());
        assert_eq!(r, Ok(()));
        assert_eq!(out, "Subject: x\n\nhi\n");
    }

    #[test]
    fn address_headers() {
        // ✔ spec: `From: x` → `From: x@mx.test`,
        // `To: bob, "Carol, X" <carol>` → `To: bob@mx.test, "Carol, X" <carol@mx.test>`.
        let (out, r) = run(
            &[
                "From: x",
                "To: bob, \"Carol, X\" <carol>",
                "Bcc: secret",
                " folded",
                "X-A: 1",
                "  cont",
                "",
                "body",
            ],
            opts(),
        );
        assert_eq!(r, Ok(()));
        assert_eq!(
            out,
            "From: x@mx.test\nTo: bob@mx.test, \"Carol, X\" <carol@mx.test>\nX-A: 1\n  cont\n\nbody\n"
        );
        let (out, _) = run(&["To: a,", "  b (comment), c@d, grp: x;, <>", ""], opts());
        assert_eq!(
            out,
            "To: a@mx.test,\n  b@mx.test (comment), c@d, grp: x;, <>\n\n"
        );
    }

    #[test]
    fn malformed_and_loop() {
        // ✔ `hello no header` as first line → 550 5.7.1.
        assert_eq!(
            run(&["hello no header"], opts()).1,
            Err(MessageError::Malformed)
        );
        assert_eq!(
            run(&["A: b", "no colon here"], opts()).1,
            Err(MessageError::Malformed)
        );
        assert_eq!(run(&["A: b"], opts()).1, Ok(()));
        assert_eq!(run(&[], opts()).1, Ok(()));
        let mut lines = vec!["Received: x"; 99];
        assert_eq!(run(&lines, opts()).1, Ok(()));
        lines.push("received: y");
        assert_eq!(run(&lines, opts()).1, Err(MessageError::Loop));
        let long = format!("{}: x", "H".repeat(1100));
        assert_eq!(run(&[&long], opts()).1, Err(MessageError::Malformed));
    }

    #[test]
    fn added_headers() {
        let o = MessageOptions {
            add_missing_headers: true,
            date: "Wed, 25 Nov 2026 11:36:08 +0000 (UTC)".into(),
            message_id_uid: 0xf1550c1610795978,
            ..opts()
        };
        let (out, _) = run(&["Subject: x", "", "b"], o.clone());
        assert_eq!(
            out,
            "Subject: x\nDate: Wed, 25 Nov 2026 11:36:08 +0000 (UTC)\nMessage-ID: <f1550c1610795978@mx.test>\n\nb\n"
        );
        let (out, _) = run(&["Date: d", "message-id: <m>", "", "b"], o);
        assert_eq!(out, "Date: d\nmessage-id: <m>\n\nb\n");
    }

    #[test]
    fn masquerade() {
        let o = MessageOptions {
            masquerade_from: Some("u@example.org".into()),
            ..opts()
        };
        let (out, _) = run(&["From: Someone <x@y>", "To: t", ""], o.clone());
        assert_eq!(out, "From: Someone <u@example.org>\nTo: t@mx.test\n\n");
        let (out, _) = run(&["From: x", ""], o);
        assert_eq!(out, "From: u@example.org\n\n");
    }

    #[test]
    fn written_counts_bytes() {
        let mut p = MessageProcessor::new(opts());
        p.prepend(b"Received: x\n");
        p.line(b"A: b");
        let _ = p.end();
        assert_eq!(p.written(), 12 + 5);
    }
}
