//! The `sendmail` personality (enqueue.c): options, reading the message, and the SMTP dialogue
//! it has with the daemon's local session. Pure parts here; the socket and files in main.rs.

/// sendmail's options.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Options {
    pub from: Option<String>,
    pub fromname: Option<String>,
    pub dsn_notify: Option<String>,
    pub dsn_ret: Option<String>,
    pub dsn_envid: Option<String>,
    pub no_getlogin: bool,
    pub tflag: bool,
    pub verbose: bool,
    /// `-q`: exit EX_SOFTWARE at once.
    pub queue_run: bool,
    pub recipients: Vec<String>,
}

/// What went wrong with the command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OptError {
    /// getopt's message (`invalid option -- 'z'`), then usage.
    Bad(String),
}

const OPTSTRING: &str = "A:B:b:E::e:F:f:iJ::L:mN:o:p:qr:R:StvV:x";

/// How an option takes its argument in an optstring: 0 none, 1 required, 2 optional.
pub fn opt_kind(optstring: &str, c: char) -> Option<u8> {
    let b = optstring.as_bytes();
    let i = b.iter().position(|&x| x as char == c && x != b':')?;
    Some(match (b.get(i + 1), b.get(i + 2)) {
        (Some(b':'), Some(b':')) => 2,
        (Some(b':'), _) => 1,
        _ => 0,
    })
}

/// glibc getopt (permuting): the options in order with their arguments, and the operands.
#[allow(clippy::type_complexity)]
pub fn getopt(
    args: &[String],
    optstring: &str,
) -> Result<(Vec<(char, Option<String>)>, Vec<String>), OptError> {
    let mut opts = Vec::new();
    let mut operands = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        i += 1;
        if a == "--" {
            operands.extend(args[i..].iter().cloned());
            break;
        }
        if !a.starts_with('-') || a == "-" {
            operands.push(a.clone());
            continue;
        }
        let chars: Vec<char> = a[1..].chars().collect();
        let mut j = 0;
        while j < chars.len() {
            let c = chars[j];
            j += 1;
            match opt_kind(optstring, c) {
                None => return Err(OptError::Bad(format!("invalid option -- '{c}'"))),
                Some(0) => opts.push((c, None)),
                Some(k) => {
                    let rest: String = chars[j..].iter().collect();
                    if !rest.is_empty() {
                        opts.push((c, Some(rest)));
                    } else if k == 2 {
                        opts.push((c, None));
                    } else if i < args.len() {
                        opts.push((c, Some(args[i].clone())));
                        i += 1;
                    } else {
                        return Err(OptError::Bad(format!(
                            "option requires an argument -- '{c}'"
                        )));
                    }
                    break;
                }
            }
        }
    }
    Ok((opts, operands))
}

/// Parses sendmail's arguments (after argv\[0\]).
pub fn parse_args(args: &[String]) -> Result<Options, OptError> {
    let (opts, operands) = getopt(args, OPTSTRING)?;
    let mut o = Options::default();
    for (c, v) in opts {
        match c {
            'f' | 'r' => o.from = v,
            'F' => o.fromname = v,
            'N' => o.dsn_notify = v,
            'R' => o.dsn_ret = v,
            'S' => o.no_getlogin = true,
            't' => o.tflag = true,
            'v' => o.verbose = true,
            'V' => o.dsn_envid = v,
            'q' => {
                o.queue_run = true;
                return Ok(o);
            }
            _ => {}
        }
    }
    o.recipients = operands;
    Ok(o)
}

/// Whether any argument asks for newaliases (`-bi`, matched as a prefix anywhere).
pub fn wants_newaliases(args: &[String]) -> bool {
    args.iter().any(|a| a.starts_with("-bi"))
}

/// The message as enqueue.c has read it, and what it saw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Message {
    /// Lines ending in `\n`, CRLF normalised, `Bcc:` header lines left out.
    pub text: Vec<u8>,
    pub from: Option<String>,
    pub rcpts: Vec<String>,
    pub need_linesplit: bool,
    pub saw_date: bool,
    pub saw_msgid: bool,
    pub saw_from: bool,
    pub saw_mime_version: bool,
    pub saw_content_type: bool,
    pub saw_content_disposition: bool,
    pub saw_content_transfer_encoding: bool,
    pub saw_user_agent: bool,
    pub noheader: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Hdr {
    None,
    From,
    To,
    Cc,
    Bcc,
    Subject,
    Date,
    MsgId,
    MimeVersion,
    ContentType,
    ContentDisposition,
    ContentTransferEncoding,
    UserAgent,
}

const KEYWORDS: &[(&str, Hdr)] = &[
    ("From:", Hdr::From),
    ("To:", Hdr::To),
    ("Cc:", Hdr::Cc),
    ("Bcc:", Hdr::Bcc),
    ("Subject:", Hdr::Subject),
    ("Date:", Hdr::Date),
    ("Message-Id:", Hdr::MsgId),
    ("MIME-Version:", Hdr::MimeVersion),
    ("Content-Type:", Hdr::ContentType),
    ("Content-Disposition:", Hdr::ContentDisposition),
    ("Content-Transfer-Encoding:", Hdr::ContentTransferEncoding),
    ("User-Agent:", Hdr::UserAgent),
];

const LINESPLIT: usize = 990;
const SMTP_LINELEN: usize = 1000;

#[derive(Default)]
struct PState {
    quote: bool,
    comment: u32,
    esc: bool,
    brackets: bool,
    buf: Vec<u8>,
}

/// Errors that end sendmail (`errx(1, ...)`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fatal(pub String);

fn wsp(c: u8) -> bool {
    c == b' ' || c == b'\t'
}

struct Parser<'a> {
    p: PState,
    msg: &'a mut Message,
    host: &'a str,
}

impl Parser<'_> {
    fn terminal(&mut self, is_from: bool) -> Result<(), Fatal> {
        if self.p.comment > 0 || self.p.quote || self.p.esc {
            return Err(Fatal("syntax error in address".into()));
        }
        if !self.p.buf.is_empty() {
            if self.p.buf.len() >= SMTP_LINELEN {
                return Err(Fatal("address exceeds buffer size".into()));
            }
            let a = String::from_utf8_lossy(&self.p.buf).into_owned();
            if is_from {
                self.msg.from = Some(qualify(&a, self.host));
            } else {
                rcpt_add(&mut self.msg.rcpts, &a, self.host);
            }
            self.p.buf.clear();
        }
        Ok(())
    }

    fn addr(&mut self, s: &[u8], is_from: bool) -> Result<(), Fatal> {
        let len = s.len();
        let mut pos = 0;
        let mut terminal = false;
        if len > 0 && !wsp(s[0]) && s[0] != b',' && s[0] != b';' {
            while pos < len && s[pos] != b':' {
                pos += 1;
            }
            self.terminal(is_from)?;
        }
        while pos < len
            && !self.p.quote
            && (wsp(s[pos]) || s[pos] == b':' || s[pos] == b',' || s[pos] == b';')
        {
            pos += 1;
        }
        while pos < len {
            let c = s[pos];
            if !self.p.esc && !self.p.quote && c == b'(' {
                self.p.comment += 1;
            }
            if self.p.comment == 0 && !self.p.esc && c == b'"' {
                self.p.quote = !self.p.quote;
            }
            let mut c = c;
            if self.p.comment == 0 && !self.p.quote && !self.p.esc {
                if c == b':' {
                    pos += 1;
                    while pos < len && wsp(s[pos]) {
                        pos += 1;
                    }
                    self.p.buf.clear();
                    if pos >= len {
                        break;
                    }
                    c = s[pos];
                }
                if c == b'\n' || c == b'\r' {
                    break;
                }
                if c == b',' || c == b';' {
                    terminal = true;
                    break;
                }
                if c == b'<' {
                    self.p.brackets = true;
                    self.p.buf.clear();
                }
                if self.p.brackets && c == b'>' {
                    terminal = true;
                }
            }
            if self.p.comment == 0
                && !terminal
                && ((self.p.quote || self.p.esc) || !(c == b'<' || wsp(c)))
            {
                if self.p.buf.len() >= SMTP_LINELEN {
                    return Err(Fatal("address exceeds buffer size".into()));
                }
                self.p.buf.push(c);
            }
            if !self.p.quote && self.p.comment > 0 && c == b')' {
                self.p.comment -= 1;
            }
            self.p.esc = !self.p.esc && self.p.comment == 0 && c == b'\\';
            pos += 1;
        }
        if terminal {
            self.terminal(is_from)?;
        }
        while pos < len && (s[pos] == b'\r' || s[pos] == b'\n') {
            pos += 1;
        }
        if pos < len {
            self.addr(&s[pos..], is_from)?;
        }
        Ok(())
    }
}

/// `user` → `user@host`; an address with `@` (or empty) unchanged.
pub fn qualify(a: &str, host: &str) -> String {
    if !a.is_empty() && !a.contains('@') {
        format!("{a}@{host}")
    } else {
        a.to_string()
    }
}

/// Adds recipients, splitting on commas (rcpt_add).
pub fn rcpt_add(rcpts: &mut Vec<String>, addr: &str, host: &str) {
    for a in addr.split(',') {
        rcpts.push(qualify(a, host));
    }
}

/// Reads the message (parse_message): `get_from` when no -f was given (a From: header then
/// sets the envelope sender), `tflag` for -t.
pub fn parse_message(
    input: &[u8],
    get_from: bool,
    tflag: bool,
    host: &str,
) -> Result<Message, Fatal> {
    let mut msg = Message::default();
    let mut cur = Hdr::None;
    let mut header_seen = false;
    let mut header_done = false;
    let mut lines: Vec<Vec<u8>> = Vec::new();
    for l in input.split_inclusive(|&b| b == b'\n') {
        let mut v = l.to_vec();
        if v.ends_with(b"\r\n") {
            v.truncate(v.len() - 2);
            v.push(b'\n');
        }
        lines.push(v);
    }
    let mut p = Parser {
        p: PState::default(),
        msg: &mut msg,
        host,
    };
    for buf in lines {
        let len = buf.len();
        if len == 1 && buf[0] == b'\n' {
            header_done = true;
        }
        if !wsp(buf[0]) {
            if cur == Hdr::From {
                p.terminal(true)?;
            }
            if matches!(cur, Hdr::To | Hdr::Cc | Hdr::Bcc) {
                p.terminal(false)?;
            }
            cur = Hdr::None;
        }
        if len + usize::from(buf[len - 1] != b'\n') >= LINESPLIT {
            p.msg.need_linesplit = true;
        }
        if !header_done && cur == Hdr::None {
            for (w, h) in KEYWORDS {
                if len > w.len() && buf[..w.len()].eq_ignore_ascii_case(w.as_bytes()) {
                    cur = *h;
                    break;
                }
            }
        }
        if cur != Hdr::None {
            header_seen = true;
        }
        if cur != Hdr::Bcc {
            p.msg.text.extend_from_slice(&buf);
            if buf[len - 1] != b'\n' {
                p.msg.text.push(b'\n');
            }
        }
        if cur == Hdr::From {
            p.msg.saw_from = true;
            if get_from {
                p.addr(&buf, true)?;
            }
        }
        if tflag && matches!(cur, Hdr::To | Hdr::Cc | Hdr::Bcc) {
            p.addr(&buf, false)?;
        }
        match cur {
            Hdr::Date => p.msg.saw_date = true,
            Hdr::MsgId => p.msg.saw_msgid = true,
            Hdr::MimeVersion => p.msg.saw_mime_version = true,
            Hdr::ContentType => p.msg.saw_content_type = true,
            Hdr::ContentDisposition => p.msg.saw_content_disposition = true,
            Hdr::ContentTransferEncoding => p.msg.saw_content_transfer_encoding = true,
            Hdr::UserAgent => p.msg.saw_user_agent = true,
            _ => {}
        }
    }
    msg.noheader = !header_seen;
    Ok(msg)
}

/// The envelope sender (build_from): -f (with `<...>` stripped) or the user, qualified.
pub fn envelope_from(fake_from: Option<&str>, user: &str, host: &str) -> Result<String, Fatal> {
    match fake_from {
        None => Ok(qualify(user, host)),
        Some(f) => {
            if let Some(inner) = f.strip_prefix('<') {
                let Some(inner) = inner.strip_suffix('>') else {
                    return Err(Fatal("leading < but no trailing >".into()));
                };
                Ok(qualify(inner, host))
            } else {
                Ok(qualify(f, host))
            }
        }
    }
}

/// The full name from the GECOS field (build_from): up to the first comma, `&` = the login
/// name with its first letter upper-cased.
pub fn gecos_name(gecos: &str, login: &str) -> String {
    let field = gecos.split(',').next().unwrap_or("");
    match field.find('&') {
        Some(i) => {
            let mut cap = login.to_string();
            if let Some(f) = cap.get(0..1) {
                let up = f.to_ascii_uppercase();
                cap.replace_range(0..1, &up);
            }
            format!("{}{}{}", &field[..i], cap, &field[i + 1..])
        }
        None => field.to_string(),
    }
}

/// The `MAIL FROM` command line (note the spaces OpenSMTPD leaves when there are no params).
pub fn mail_from_line(from: &str, o: &Options) -> String {
    let envid = o.dsn_envid.as_deref().filter(|s| !s.is_empty());
    format!(
        "MAIL FROM:<{}> {}{} {}{}\r\n",
        from,
        if o.dsn_ret.is_some() { "RET=" } else { "" },
        o.dsn_ret.as_deref().unwrap_or(""),
        if envid.is_some() { "ENVID=" } else { "" },
        envid.unwrap_or("")
    )
}

/// One `RCPT TO` command line.
pub fn rcpt_line(rcpt: &str, o: &Options) -> String {
    format!(
        "RCPT TO:<{}> {}{}\r\n",
        rcpt,
        if o.dsn_notify.is_some() {
            "NOTIFY="
        } else {
            ""
        },
        o.dsn_notify.as_deref().unwrap_or("")
    )
}

/// RFC 2045 quoted-printable of one line (qp_encoded_write), with its CRLF.
fn qp_line(out: &mut Vec<u8>, line: &[u8]) {
    let mut linelen = 0usize;
    let wrap = |out: &mut Vec<u8>, linelen: &mut usize, size: usize, first: u8| {
        *linelen += size;
        if *linelen + 1 > 76 {
            out.extend_from_slice(b"=\r\n");
            if first == b'.' {
                out.push(b'.');
            }
            *linelen = size;
        }
    };
    for (i, &c) in line.iter().enumerate() {
        let next = line.get(i + 1).copied().unwrap_or(b'\n');
        if c == b' ' || c == b'\t' {
            if next == b'\n' {
                wrap(out, &mut linelen, 3, c);
                out.extend_from_slice(format!("={c:2X}").as_bytes());
            } else {
                wrap(out, &mut linelen, 1, c);
                out.push(c);
            }
        } else if !((33..=60).contains(&c) || (62..=126).contains(&c)) {
            wrap(out, &mut linelen, 3, c);
            out.extend_from_slice(format!("={c:2X}").as_bytes());
        } else {
            wrap(out, &mut linelen, 1, c);
            out.push(c);
        }
    }
    out.extend_from_slice(b"\r\n");
}

/// The header lines sendmail adds in front of a message: From: and Date: when it has none, and
/// MIME headers when long lines will be encoded. `eol` is "\r\n" on the wire and "\n" in
/// dead.letter.
pub fn added_headers(
    msg: &Message,
    from: &str,
    fromname: Option<&str>,
    date: &str,
    eol: &str,
) -> Vec<u8> {
    let mut out = String::new();
    if !msg.saw_from {
        out.push_str(&format!(
            "From: {}{}<{}>{eol}",
            fromname.unwrap_or(""),
            if fromname.is_some() { " " } else { "" },
            from
        ));
    }
    if !msg.saw_date {
        out.push_str(&format!("Date: {date}{eol}"));
    }
    if msg.need_linesplit {
        let mime = [
            (msg.saw_mime_version, "MIME-Version: 1.0"),
            (
                msg.saw_content_type,
                "Content-Type: text/plain; charset=unknown-8bit",
            ),
            (msg.saw_content_disposition, "Content-Disposition: inline"),
            (
                msg.saw_content_transfer_encoding,
                "Content-Transfer-Encoding: quoted-printable",
            ),
        ];
        for (_, header) in mime.iter().filter(|(saw, _)| !saw) {
            out.push_str(header);
            out.push_str(eol);
        }
    }
    out.into_bytes()
}

/// What sendmail writes after `DATA` is accepted, up to and including `.\r\n`: the From:
/// and Date: it adds, MIME headers for long lines, the message dot-stuffed, `From ` and
/// `Return-Path:` header lines dropped. `date` is time_to_text's.
pub fn data_section(msg: &Message, from: &str, fromname: Option<&str>, date: &str) -> Vec<u8> {
    let mut out = added_headers(msg, from, fromname, date, "\r\n");
    let mut inheaders = true;
    if msg.noheader {
        out.extend_from_slice(b"\r\n");
        inheaders = false;
    }
    for l in msg.text.split_inclusive(|&b| b == b'\n') {
        let line = l.strip_suffix(b"\n").unwrap_or(l);
        if line.first() == Some(&b'.') {
            out.push(b'.');
        }
        if inheaders {
            if line.len() >= 5 && line[..5].eq_ignore_ascii_case(b"from ") {
                continue;
            }
            if line.len() >= 13 && line[..13].eq_ignore_ascii_case(b"return-path: ") {
                continue;
            }
        }
        if msg.saw_content_transfer_encoding || msg.noheader || inheaders || !msg.need_linesplit {
            out.extend_from_slice(line);
            out.extend_from_slice(b"\r\n");
            if inheaders && line.is_empty() {
                inheaders = false;
            }
            continue;
        }
        qp_line(&mut out, line);
    }
    out.extend_from_slice(b".\r\n");
    out
}
