//! The line protocol between smtpd and its `proc-exec` filters, version 0.6 (OpenSMTPD 6.8's
//! `lka_filter.c` and `lka_proc.c`): what smtpd writes to a filter's standard input (`config|`,
//! `report|`, `filter|` lines) and the parsing of what the filter writes back (`register|`,
//! `filter-result|`, `filter-dataline|`, `report|`).
//!
//! Pure: lines in, typed values out; the caller owns the pipes and the clock (a timestamp is
//! an input). Errors carry OpenSMTPD's own fatal message for the line, so that the daemon logs
//! what OpenSMTPD logs before it gives up on the filter.

use std::fmt;

use crate::server::FilterPhase;

/// `PROTOCOL_VERSION` of OpenSMTPD 6.8.
pub const VERSION: &str = "0.6";
/// A filter's line longer than this (without its newline) is a protocol error. OpenSMTPD copies
/// responses into a `LINE_MAX` buffer and silently truncates longer ones (a data line over about
/// 2000 bytes loses its end); we refuse rather than alter a message. 64 KiB is its `IOBUF_MAX`.
pub const MAX_LINE: usize = 65_536;

/// The smtp-in report events of 6.8, in `smtp_events[]` order.
pub const REPORT_EVENTS: &[&str] = &[
    "link-connect",
    "link-disconnect",
    "link-greeting",
    "link-identify",
    "link-tls",
    "link-auth",
    "tx-reset",
    "tx-begin",
    "tx-mail",
    "tx-rcpt",
    "tx-envelope",
    "tx-data",
    "tx-commit",
    "tx-rollback",
    "protocol-client",
    "protocol-server",
    "filter-report",
    "filter-response",
    "timeout",
];

/// The phases a filter may register, in `filter_execs[]` order (the index is the bit of the
/// `hooks=` mask in `-T filters` traces).
pub const PHASES: &[&str] = &[
    "connect",
    "helo",
    "ehlo",
    "starttls",
    "auth",
    "mail-from",
    "rcpt-to",
    "data",
    "data-line",
    "rset",
    "quit",
    "noop",
    "help",
    "wiz",
    "commit",
];

/// Index of the data-line phase in [`PHASES`].
pub const DATA_LINE: usize = 8;

/// The protocol name of a session phase, and its index in [`PHASES`].
pub fn phase_name(p: FilterPhase) -> (&'static str, usize) {
    match p {
        FilterPhase::Connect => ("connect", 0),
        FilterPhase::Helo => ("helo", 1),
        FilterPhase::Ehlo => ("ehlo", 2),
        FilterPhase::StartTls => ("starttls", 3),
        FilterPhase::Auth => ("auth", 4),
        FilterPhase::MailFrom => ("mail-from", 5),
        FilterPhase::RcptTo => ("rcpt-to", 6),
        FilterPhase::Data => ("data", 7),
        FilterPhase::Rset => ("rset", 9),
        FilterPhase::Quit => ("quit", 10),
        FilterPhase::Noop => ("noop", 11),
        FilterPhase::Commit => ("commit", 14),
    }
}

/// The phase name in `filter-response` reports (`lka_report_smtp_filter_response`): connect is
/// `connected` and starttls `tls` there.
pub fn response_phase_name(p: FilterPhase) -> &'static str {
    match p {
        FilterPhase::Connect => "connected",
        FilterPhase::StartTls => "tls",
        other => phase_name(other).0,
    }
}

/// A moment as OpenSMTPD prints it: `%lld.%06ld` of a `struct timeval`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timestamp {
    pub sec: i64,
    pub usec: u32,
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:06}", self.sec, self.usec)
    }
}

/// What smtpd tells a filter right after starting it (`lka_proc_config`).
pub fn config_lines(
    version: &str,
    session_timeout: u64,
    smtp_in: bool,
    smtp_out: bool,
    admd: &str,
) -> String {
    let mut s =
        format!("config|smtpd-version|{version}\nconfig|smtp-session-timeout|{session_timeout}\n");
    if smtp_in {
        s.push_str("config|subsystem|smtp-in\n");
    }
    if smtp_out {
        s.push_str("config|subsystem|smtp-out\n");
    }
    s.push_str("config|admd|");
    push_field(&mut s, admd.as_bytes());
    s.push_str("\nconfig|ready\n");
    s
}

/// Appends a field as OpenSMTPD's `%s` writes it: the bytes up to the first NUL. OpenSMTPD does
/// not escape `|` in fields (a filter splits only as many fields as it expects, and data lines
/// and commands keep their `|`). A newline cannot come from an SMTP line; one that came from
/// elsewhere would start a forged line, so it ends the field too.
fn push_field(out: &mut String, bytes: &[u8]) {
    let end = bytes
        .iter()
        .position(|&b| b == 0 || b == b'\n')
        .unwrap_or(bytes.len());
    out.push_str(&String::from_utf8_lossy(&bytes[..end]));
}

/// A report event line (`report_smtp_broadcast`):
/// `report|0.6|TIME|smtp-in|EVENT|SESSID[|PARAMS]`, the `|` before the parameters left out when
/// there are none (`link-disconnect`, `timeout`).
pub fn report_line(out: &mut String, time: Timestamp, event: &str, sessid: u64, params: &[u8]) {
    report_line_for(out, time, "smtp-in", event, sessid, params)
}

/// [`report_line`] of a subsystem: `smtp-in`, or `smtp-out` for the relay's sessions.
pub fn report_line_for(
    out: &mut String,
    time: Timestamp,
    subsystem: &str,
    event: &str,
    sessid: u64,
    params: &[u8],
) {
    use fmt::Write;
    let _ = write!(
        out,
        "report|{VERSION}|{time}|{subsystem}|{event}|{sessid:016x}"
    );
    if !params.is_empty() {
        out.push('|');
        push_field(out, params);
    }
    out.push('\n');
}

/// A filter request (`filter_protocol_query`): `filter|0.6|TIME|smtp-in|PHASE|SESSID|TOKEN|PARAM`;
/// at connect the parameter is `RDNS|SRC-IP`.
pub fn filter_line(
    out: &mut String,
    time: Timestamp,
    phase: &str,
    sessid: u64,
    token: u64,
    param: &[u8],
) {
    use fmt::Write;
    let _ = write!(
        out,
        "filter|{VERSION}|{time}|smtp-in|{phase}|{sessid:016x}|{token:016x}|"
    );
    push_field(out, param);
    out.push('\n');
}

/// One message line for a data-line filter (`filter_data_query`), as bytes: a message need
/// not be UTF-8, and a filter that signs it must see the bytes the client sent. The line is
/// given as it goes through OpenSMTPD's pipe (dot-stuffed; "." ends the message); it ends at
/// a NUL or LF as `%s` would.
pub fn data_line(out: &mut Vec<u8>, time: Timestamp, sessid: u64, token: u64, line: &[u8]) {
    use std::io::Write;
    let _ = write!(
        out,
        "filter|{VERSION}|{time}|smtp-in|data-line|{sessid:016x}|{token:016x}|"
    );
    let end = line
        .iter()
        .position(|&b| b == 0 || b == b'\n')
        .unwrap_or(line.len());
    out.extend_from_slice(&line[..end]);
    out.push(b'\n');
}

/// A report event of a session, before the shell stamps it: the event name (one of
/// [`REPORT_EVENTS`]) and its parameters as OpenSMTPD formats them (empty: none).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    pub event: &'static str,
    pub params: Vec<u8>,
}

/// A filter's answer for one phase.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    Proceed,
    Junk,
    Rewrite(String),
    Reject(String),
    Disconnect(String),
}

/// What a filter may register (`register|...`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Register {
    /// `register|report|smtp-in|EVENT`, or `*` for every event (`None`). `smtp_out` is true for
    /// `smtp-out|`, sent the relay sessions of `relay ... filter F` (6.8 sends no smtp-out filter requests).
    Report {
        smtp_out: bool,
        event: Option<&'static str>,
    },
    /// `register|filter|smtp-in|PHASE`: the index in [`PHASES`].
    Filter(usize),
    Ready,
}

/// One line from a filter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FilterMessage {
    Register(Register),
    Result {
        sessid: u64,
        token: u64,
        response: Response,
    },
    /// `filter-dataline|SESSID|TOKEN|LINE`: one line of the filtered message (`.` ends it).
    DataLine {
        sessid: u64,
        token: u64,
        line: Vec<u8>,
    },
    /// `report|TIME|smtp-in|SESSID|MESSAGE`: broadcast as `filter-report|proc|NAME|MESSAGE`.
    Report {
        sessid: u64,
        message: Vec<u8>,
    },
}

/// A line smtpd cannot accept; OpenSMTPD treats each as fatal. The text is its `fatalx` message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProtocolError(pub String);

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ProtocolError {}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Parses one line of a filter (without its newline). `ready` says whether the filter already
/// sent `register|ready`: before it only `register|` lines are allowed.
pub fn parse_line(line: &[u8], ready: bool) -> Result<FilterMessage, ProtocolError> {
    if line.len() > MAX_LINE {
        return Err(ProtocolError(format!(
            "Line too long: {} bytes",
            line.len()
        )));
    }
    if line.contains(&0) {
        return Err(ProtocolError(format!(
            "Invalid NUL byte in line: {}",
            text(line)
        )));
    }
    if line.starts_with(b"register|") {
        return parse_register(line).map(FilterMessage::Register);
    }
    if !ready {
        return Err(ProtocolError(format!(
            "Non-register message before register|ready: {}",
            text(line)
        )));
    }
    if line.starts_with(b"filter-result|") || line.starts_with(b"filter-dataline|") {
        return parse_response(line);
    }
    if line.starts_with(b"report|") {
        return parse_report(line);
    }
    Err(ProtocolError(format!(
        "Invalid filter message type: {}",
        text(line)
    )))
}

fn parse_register(line: &[u8]) -> Result<Register, ProtocolError> {
    if line == b"register|ready" {
        return Ok(Register::Ready);
    }
    if let Some(hook) = line.strip_prefix(b"register|report|") {
        // lka_report_register_hook: the direction is case-sensitive here.
        let (smtp_out, ev) = if let Some(e) = hook.strip_prefix(b"smtp-in|") {
            (false, e)
        } else if let Some(e) = hook.strip_prefix(b"smtp-out|") {
            (true, e)
        } else {
            return Err(ProtocolError(format!(
                "Invalid message direction: {}",
                text(hook)
            )));
        };
        if ev == b"*" {
            return Ok(Register::Report {
                smtp_out,
                event: None,
            });
        }
        return match REPORT_EVENTS.iter().find(|e| e.as_bytes() == ev) {
            Some(e) => Ok(Register::Report {
                smtp_out,
                event: Some(e),
            }),
            None => Err(ProtocolError(format!(
                "Unrecognized report name: {}",
                text(ev)
            ))),
        };
    }
    if let Some(hook) = line.strip_prefix(b"register|filter|") {
        // lka_filter_register_hook: strncasecmp, so the direction's case does not matter.
        let ok = hook.len() >= 8 && hook[..8].eq_ignore_ascii_case(b"smtp-in|");
        if !ok {
            return Err(ProtocolError(format!(
                "Invalid message direction: {}",
                text(hook)
            )));
        }
        let phase = &hook[8..];
        return match PHASES.iter().position(|p| p.as_bytes() == phase) {
            Some(i) => Ok(Register::Filter(i)),
            None => Err(ProtocolError(format!(
                "Unrecognized report name: {}",
                text(phase)
            ))),
        };
    }
    Err(ProtocolError(format!(
        "Invalid register line received: {}",
        text(line)
    )))
}

/// `strtoull(s, &ep, 16)` with OpenSMTPD's checks: non-empty, only hex digits (an optional
/// `0x` and leading spaces or sign are what strtoull would also take; we do not: a filter echoes
/// the ids it was given).
fn hex_id(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 16 || !s.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    u64::from_str_radix(std::str::from_utf8(s).ok()?, 16).ok()
}

fn split_once(s: &[u8], c: u8) -> Option<(&[u8], &[u8])> {
    let i = s.iter().position(|&b| b == c)?;
    Some((&s[..i], &s[i + 1..]))
}

fn parse_response(line: &[u8]) -> Result<FilterMessage, ProtocolError> {
    let err = |what: &str| ProtocolError(format!("{what}: {}", text(line)));
    let (kind, rest) = split_once(line, b'|').ok_or_else(|| err("Missing token"))?;
    let (qid, rest) = split_once(rest, b'|').ok_or_else(|| err("Missing reqid"))?;
    let sessid = hex_id(qid).ok_or_else(|| err("Invalid reqid"))?;
    let (tok, response) = split_once(rest, b'|').ok_or_else(|| err("Missing directive"))?;
    let token = hex_id(tok).ok_or_else(|| err("Invalid token"))?;
    if kind == b"filter-dataline" {
        return Ok(FilterMessage::DataLine {
            sessid,
            token,
            line: response.to_vec(),
        });
    }
    let (verb, param) = match split_once(response, b'|') {
        Some((v, p)) => (v, Some(p)),
        None => (response, None),
    };
    let response = match (verb, param) {
        (b"proceed", None) => Response::Proceed,
        (b"proceed", Some(_)) => return Err(err("Unexpected parameter after proceed")),
        (b"junk", None) => Response::Junk,
        (b"junk", Some(_)) => return Err(err("Unexpected parameter after junk")),
        (_, None) => return Err(err("Missing parameter")),
        (b"rewrite", Some(p)) => Response::Rewrite(text(p)),
        (b"reject", Some(p)) => Response::Reject(text(p)),
        (b"disconnect", Some(p)) => Response::Disconnect(text(p)),
        _ => return Err(err("Invalid directive")),
    };
    Ok(FilterMessage::Result {
        sessid,
        token,
        response,
    })
}

/// `report|SEC.USEC|smtp-in|SESSID|MESSAGE` (`lka_report_proc`). OpenSMTPD 6.8 parses the
/// session id from the wrong place (it reads the microseconds again) so that such reports reach
/// no session; we read the field the line has.
fn parse_report(line: &[u8]) -> Result<FilterMessage, ProtocolError> {
    let bad = |what: &str| ProtocolError(format!("Invalid report: {what}: {}", text(line)));
    let rest = &line[b"report|".len()..];
    let (time, rest) = split_once(rest, b'|').ok_or_else(|| bad("invalid time"))?;
    let (sec, usec) = split_once(time, b'.').ok_or_else(|| bad("invalid time"))?;
    let digits = |s: &[u8]| !s.is_empty() && s.iter().all(u8::is_ascii_digit);
    if !digits(sec) || !digits(usec) || usec.len() != 6 {
        return Err(bad("invalid time"));
    }
    let rest = rest
        .strip_prefix(b"smtp-in|")
        .ok_or_else(|| bad("invalid direction"))?;
    let (qid, message) = split_once(rest, b'|').ok_or_else(|| bad("invalid reqid"))?;
    let sessid = hex_id(qid).ok_or_else(|| bad("invalid reqid"))?;
    Ok(FilterMessage::Report {
        sessid,
        message: message.to_vec(),
    })
}

/// Splits a byte stream from a filter into lines, with the [`MAX_LINE`] cap: a partial line
/// longer than the cap is reported as soon as it is seen, not buffered without end.
#[derive(Debug, Default)]
pub struct LineReader {
    buf: Vec<u8>,
    start: usize,
}

/// One item of a filter's output stream.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadLine {
    Line(Vec<u8>),
    TooLong,
}

impl LineReader {
    pub fn new() -> LineReader {
        LineReader::default()
    }

    pub fn push(&mut self, data: &[u8]) {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// The next complete line, without its `\n`.
    pub fn next_line(&mut self) -> Option<ReadLine> {
        let pending = &self.buf[self.start..];
        match pending.iter().position(|&b| b == b'\n') {
            Some(i) if i <= MAX_LINE => {
                let line = pending[..i].to_vec();
                self.start += i + 1;
                if self.start > 64 * 1024 {
                    self.buf.drain(..self.start);
                    self.start = 0;
                }
                Some(ReadLine::Line(line))
            }
            Some(_) => Some(ReadLine::TooLong),
            None if pending.len() > MAX_LINE => Some(ReadLine::TooLong),
            None => None,
        }
    }

    /// Bytes of an unfinished line.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.start
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Timestamp = Timestamp {
        sec: 1796170980,
        usec: 284044,
    };

    #[test]
    fn config_as_opensmtpd() {
        assert_eq!(
            config_lines("6.8.0p2", 300, true, false, "vm"),
            "config|smtpd-version|6.8.0p2\nconfig|smtp-session-timeout|300\n\
             config|subsystem|smtp-in\nconfig|admd|vm\nconfig|ready\n"
        );
    }

    #[test]
    fn reports_as_recorded() {
        let mut s = String::new();
        report_line(
            &mut s,
            T,
            "link-connect",
            0x651d41226dcb07ec,
            b"localhost|pass|127.0.0.1:53696|127.0.0.1:10125",
        );
        report_line(&mut s, T, "link-disconnect", 0x651d41226dcb07ec, b"");
        assert_eq!(
            s,
            "report|0.6|1796170980.284044|smtp-in|link-connect|651d41226dcb07ec|localhost|pass|127.0.0.1:53696|127.0.0.1:10125\n\
             report|0.6|1796170980.284044|smtp-in|link-disconnect|651d41226dcb07ec\n"
        );
        let mut f = String::new();
        filter_line(&mut f, Timestamp { sec: 5, usec: 7 }, "rset", 1, 2, b"");
        assert_eq!(
            f,
            "filter|0.6|5.000007|smtp-in|rset|0000000000000001|0000000000000002|\n"
        );
        let mut d = Vec::new();
        data_line(&mut d, T, 1, 2, b"a|b\0hidden\nforged");
        assert!(d.ends_with(b"|data-line|0000000000000001|0000000000000002|a|b\n"));
        let mut d = Vec::new();
        data_line(&mut d, T, 1, 2, b"caf\xe9 ..");
        assert!(
            d.ends_with(b"|0000000000000002|caf\xe9 ..\n"),
            "bytes kept as sent"
        );
    }

    #[test]
    fn register_lines() {
        assert_eq!(
            parse_line(b"register|ready", false),
            Ok(FilterMessage::Register(Register::Ready))
        );
        assert_eq!(
            parse_line(b"register|report|smtp-in|*", false),
            Ok(FilterMessage::Register(Register::Report {
                smtp_out: false,
                event: None
            }))
        );
        assert_eq!(
            parse_line(b"register|filter|SMTP-IN|data-line", false),
            Ok(FilterMessage::Register(Register::Filter(DATA_LINE)))
        );
        let e = |l: &[u8]| parse_line(l, false).unwrap_err().0;
        assert_eq!(
            e(b"register|filter|smtp-in|bogus"),
            "Unrecognized report name: bogus"
        );
        assert_eq!(
            e(b"register|report|smtp-in|bogus"),
            "Unrecognized report name: bogus"
        );
        assert_eq!(
            e(b"register|filter|smtp-out|helo"),
            "Invalid message direction: smtp-out|helo"
        );
        assert_eq!(
            e(b"register|foo"),
            "Invalid register line received: register|foo"
        );
        assert_eq!(
            e(b"filter-result|1|2|proceed"),
            "Non-register message before register|ready: filter-result|1|2|proceed"
        );
    }

    #[test]
    fn responses() {
        let ok = |l: &[u8]| parse_line(l, true).unwrap();
        assert_eq!(
            ok(b"filter-result|651d41226dcb07ec|1aa8452e02a1cacf|proceed"),
            FilterMessage::Result {
                sessid: 0x651d41226dcb07ec,
                token: 0x1aa8452e02a1cacf,
                response: Response::Proceed
            }
        );
        assert_eq!(
            ok(b"filter-result|1|2|reject|550 go away|really"),
            FilterMessage::Result {
                sessid: 1,
                token: 2,
                response: Response::Reject("550 go away|really".into())
            }
        );
        assert_eq!(
            ok(b"filter-dataline|1|2|a|b"),
            FilterMessage::DataLine {
                sessid: 1,
                token: 2,
                line: b"a|b".to_vec()
            }
        );
        assert_eq!(
            ok(b"filter-dataline|1|2|"),
            FilterMessage::DataLine {
                sessid: 1,
                token: 2,
                line: Vec::new()
            }
        );
        let e = |l: &[u8]| parse_line(l, true).unwrap_err().0;
        assert_eq!(
            e(b"filter-result"),
            "Invalid filter message type: filter-result"
        );
        assert_eq!(e(b"filter-result|"), "Missing reqid: filter-result|");
        assert_eq!(e(b"filter-result|1"), "Missing reqid: filter-result|1");
        assert_eq!(
            e(b"filter-result|zz|1|proceed"),
            "Invalid reqid: filter-result|zz|1|proceed"
        );
        assert_eq!(
            e(b"filter-result|1|2"),
            "Missing directive: filter-result|1|2"
        );
        assert_eq!(
            e(b"filter-result|1|x|proceed"),
            "Invalid token: filter-result|1|x|proceed"
        );
        assert_eq!(
            e(b"filter-result|1|2|proceed|x"),
            "Unexpected parameter after proceed: filter-result|1|2|proceed|x"
        );
        assert_eq!(
            e(b"filter-result|1|2|reject"),
            "Missing parameter: filter-result|1|2|reject"
        );
        assert_eq!(
            e(b"filter-result|1|2|maybe|x"),
            "Invalid directive: filter-result|1|2|maybe|x"
        );
        assert_eq!(e(b"hello"), "Invalid filter message type: hello");
    }

    #[test]
    fn filter_reports() {
        assert_eq!(
            parse_line(
                b"report|1.000001|smtp-in|00000000000000ab|hello|world",
                true
            ),
            Ok(FilterMessage::Report {
                sessid: 0xab,
                message: b"hello|world".to_vec()
            })
        );
        assert!(parse_line(b"report|1.1|smtp-in|ab|x", true).is_err());
        assert!(parse_line(b"report|1.000001|smtp-out|ab|x", true).is_err());
    }

    #[test]
    fn reader_caps_lines() {
        let mut r = LineReader::new();
        r.push(b"one\ntw");
        assert_eq!(r.next_line(), Some(ReadLine::Line(b"one".to_vec())));
        assert_eq!(r.next_line(), None);
        r.push(b"o\n");
        assert_eq!(r.next_line(), Some(ReadLine::Line(b"two".to_vec())));
        r.push(&vec![b'x'; MAX_LINE + 1]);
        assert_eq!(r.next_line(), Some(ReadLine::TooLong));
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(line in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200), ready: bool) {
            let _ = parse_line(&line, ready);
        }

        #[test]
        fn responses_round_trip(sessid: u64, token: u64, text in "[ -~]{1,80}") {
            let line = format!("filter-result|{sessid:016x}|{token:016x}|reject|{text}");
            let parsed = parse_line(line.as_bytes(), true);
            proptest::prop_assert_eq!(parsed, Ok(FilterMessage::Result { sessid, token, response: Response::Reject(text) }));
        }
    }
}
