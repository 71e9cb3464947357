//! Delivery status notifications as OpenSMTPD's `bounce.c` writes them.
//!
//! Pure: the caller gathers the bounce envelopes of one report (same
//! message, same listener name, same kind, delay, ttl and RET), reads the
//! queued message, and gets the exact DATA payload that OpenSMTPD's internal
//! bounce session sends after `MAIL FROM: <>` / `RCPT TO: <sender>` / `DATA`.

use rsmtpd_protocol::address::Mailaddr;

use crate::queue::{BounceType, DsnRet, Envelope, EvpId, MsgId};

/// `ESC_STATUS_*`.
pub const ESC_STATUS_OK: u8 = 2;
pub const ESC_STATUS_TEMPFAIL: u8 = 4;
pub const ESC_STATUS_PERMFAIL: u8 = 5;
/// `ESC_OTHER_MAIL_SYSTEM_STATUS` (x.3.0), what the mda reports.
pub const ESC_OTHER_MAIL_SYSTEM_STATUS: u8 = 30;
/// `ESC_ROUTING_LOOP_DETECTED` (x.4.6).
pub const ESC_ROUTING_LOOP_DETECTED: u8 = 46;
/// `ESC_DELIVERY_TIME_EXPIRED` (x.4.7).
pub const ESC_DELIVERY_TIME_EXPIRED: u8 = 47;

/// `queue_bounce`: the ttl of every bounce envelope, 7 days.
pub const BOUNCE_TTL: i64 = 3600 * 24 * 7;

/// The DSN kind from the envelope's status class (`bounce_add`): 2 →
/// delivered, 4 → delayed, anything else → failed. So an expired or looping
/// envelope (class 4) gives a *delayed* report, as OpenSMTPD's does.
pub fn kind_of(esc_class: u8) -> BounceType {
    match esc_class {
        ESC_STATUS_OK => BounceType::Delivered,
        ESC_STATUS_TEMPFAIL => BounceType::Delayed,
        _ => BounceType::Failed,
    }
}

/// `esc_code()`: `4.3.0`.
pub fn esc_text(class: u8, code: u8) -> String {
    format!("{}.{}.{}", class, code / 10, code % 10)
}

/// `bounce_duration()`.
pub fn bounce_duration(d: i64) -> String {
    let (n, unit) = if d < 60 {
        (d, "second")
    } else if d < 3600 {
        (d / 60, "minute")
    } else if d < 3600 * 24 {
        (d / 3600, "hour")
    } else {
        (d / (3600 * 24), "day")
    };
    format!("{} {}{}", n, unit, if n == 1 { "" } else { "s" })
}

/// What groups bounce envelopes into one report (`bounce_message_cmp`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ReportKey {
    pub msgid: MsgId,
    pub smtpname: String,
    pub kind: BounceType,
    /// `bounce-delay` (warn interval of a delay warning, else 0).
    pub delay: i64,
    /// The bounce envelope's own ttl (always 7 days).
    pub ttl: i64,
    pub dsn_ret: Option<DsnRet>,
}

impl ReportKey {
    pub fn of(env: &Envelope) -> ReportKey {
        ReportKey {
            msgid: env.id.msgid(),
            smtpname: env.smtpname.clone(),
            kind: kind_of(env.esc_class),
            delay: env.bounce.delay,
            ttl: env.ttl,
            dsn_ret: env.dsn_ret,
        }
    }
}

/// One recipient line of a report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportLine {
    pub evpid: EvpId,
    pub dest: Mailaddr,
    /// `dest: errorline` (a leading `1xx `/`6xx ` of the errorline dropped).
    pub report: String,
    pub esc_class: u8,
    pub esc_code: u8,
}

impl ReportLine {
    pub fn of(env: &Envelope) -> ReportLine {
        let mut line = env.errorline.as_str();
        if line.len() > 4 && (line.starts_with('1') || line.starts_with('6')) {
            line = line.get(4..).unwrap_or(line);
        }
        ReportLine {
            evpid: env.id,
            dest: env.dest.clone(),
            report: format!("{}@{}: {}", env.dest.user, env.dest.domain, line),
            esc_class: env.esc_class,
            esc_code: env.esc_code,
        }
    }
}

/// One DSN to send: the grouped bounce envelopes of one message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    pub key: ReportKey,
    /// `sender.user@sender.domain` of the original message.
    pub to: String,
    /// Whether a relayed success was to a server without DSN ("relayed").
    pub mta_without_dsn: bool,
    pub lines: Vec<ReportLine>,
}

impl Report {
    pub fn new(env: &Envelope) -> Report {
        Report {
            key: ReportKey::of(env),
            to: format!("{}@{}", env.sender.user, env.sender.domain),
            mta_without_dsn: false,
            lines: Vec::new(),
        }
    }

    pub fn add(&mut self, env: &Envelope) {
        self.lines.push(ReportLine::of(env));
    }

    /// `action_str()`.
    pub fn action(&self) -> &'static str {
        match self.key.kind {
            BounceType::Failed => "failed",
            BounceType::Delayed => "delayed",
            BounceType::Delivered if self.mta_without_dsn => "relayed",
            BounceType::Delivered => "delivered",
        }
    }
}

/// The bounce session's boundary number (`generate_uid()`), one per session.
pub fn new_boundary() -> u64 {
    rand::random::<u64>()
}

/// The DATA payload OpenSMTPD's bounce session sends for `report`: CRLF
/// lines from `Subject:` to the closing `--BOUNDARY--\r\n`; the session then
/// sends `.\r\n`. `message` is the queued message file, `date` the `Date:`
/// text (`time_to_text(now)`).
///
/// The returned copy of the message follows bounce.c exactly, including its
/// dot-stuffing bug: only a line that is exactly `.` is doubled, so a
/// receiving SMTP server strips the first dot of other lines starting with
/// one (see [`as_received`]). The last byte of every line is dropped as the
/// newline, even on a last line without one.
pub fn compose(report: &Report, message: &[u8], date: &str, boundary: u64) -> Vec<u8> {
    let name = &report.key.smtpname;
    let b = format!("{:>16}/{}", boundary, name);
    let mut o = String::new();
    o.push_str(&format!(
        "Subject: Delivery status notification: {}\r\n\
         From: Mailer Daemon <MAILER-DAEMON@{}>\r\n\
         To: {}\r\n\
         Date: {}\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed;boundary=\"{}\"\r\n\
         \r\n\
         This is a MIME-encapsulated message.\r\n\
         \r\n",
        report.action(),
        name,
        report.to,
        date,
        b
    ));
    o.push_str(&format!(
        "--{}\r\n\
         Content-Description: Notification\r\n\
         Content-Type: text/plain; charset=us-ascii\r\n\
         \r\n\
         \x20   Hi!\r\n\r\n\
         \x20   This is the MAILER-DAEMON, please DO NOT REPLY to this email.\r\n\
         \r\n",
        b
    ));
    match report.key.kind {
        BounceType::Failed => o.push_str(
            "    An error has occurred while attempting to deliver a message for\r\n\
             \x20   the following list of recipients:\r\n\r\n",
        ),
        BounceType::Delayed => o.push_str(&format!(
            "    A message is delayed for more than {} for the following\r\n\
             \x20   list of recipients:\r\n\r\n",
            bounce_duration(report.key.delay)
        )),
        BounceType::Delivered => o.push_str(if report.mta_without_dsn {
            "    Your message was relayed to these recipients.\r\n\r\n"
        } else {
            "    Your message was successfully delivered to these recipients.\r\n\r\n"
        }),
    }
    for l in &report.lines {
        o.push_str(&l.report);
        o.push_str("\r\n");
    }
    o.push_str("\r\n");
    if report.key.kind == BounceType::Delayed {
        o.push_str(&format!(
            "    Please note that this is only a temporary failure report.\r\n\
             \x20   The message is kept in the queue for up to {}.\r\n\
             \x20   You DO NOT NEED to re-send the message to these recipients.\r\n\r\n",
            bounce_duration(report.key.ttl)
        ));
    }
    o.push_str("    Below is a copy of the original message:\r\n\r\n");
    o.push_str(&format!(
        "--{}\r\n\
         Content-Description: Delivery Report\r\n\
         Content-Type: message/delivery-status\r\n\
         \r\n",
        b
    ));
    o.push_str(&format!("Reporting-MTA: dns; {}\r\n\r\n", name));
    for l in &report.lines {
        o.push_str(&format!(
            "Final-Recipient: rfc822; {}@{}\r\nAction: {}\r\nStatus: {}\r\n\r\n",
            l.dest.user,
            l.dest.domain,
            report.action(),
            esc_text(l.esc_class, l.esc_code)
        ));
    }
    o.push_str(&format!(
        "--{}\r\n\
         Content-Description: Message headers\r\n\
         Content-Type: text/rfc822-headers\r\n\
         \r\n",
        b
    ));
    let mut out = o.into_bytes();
    let headers_only =
        report.key.kind == BounceType::Delivered && report.key.dsn_ret == Some(DsnRet::Hdrs);
    for line in message.split_inclusive(|&c| c == b'\n') {
        if headers_only && line == b"\n" {
            break;
        }
        let body = &line[..line.len() - 1];
        if body == b"." {
            out.push(b'.');
        }
        out.extend_from_slice(body);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("\r\n--{}--\r\n", b).as_bytes());
    out
}

/// What an SMTP server stores of `payload` (DATA with dots unstuffed, CRLF
/// turned into LF): the text a mailbox shows under the server's own
/// `Received:` line.
pub fn as_received(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len());
    for line in payload.split_inclusive(|&c| c == b'\n') {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let line = line.strip_prefix(b".").unwrap_or(line);
        out.extend_from_slice(line);
        out.push(b'\n');
    }
    out
}
