//! Command lines: verb recognition and MAIL/RCPT argument parsing, with
//! OpenSMTPD 6.8's exact leniencies (see `smtp_command`, `smtp_tx_mail_from`
//! and `smtp_tx_rcpt_to` in `smtp_session.c`).
//!
//! Splitting is separate from validation on purpose: OpenSMTPD checks
//! session state *before* argument syntax (e.g. `MAIL FROM:<bad` outside a
//! session gets 503, not 553), so the session calls the typed parsers only
//! once the state allows the command.

use crate::address::{parse_path, text_to_mailaddr, valid_domainpart, valid_localpart, Mailaddr};
use crate::reply::Reply;

/// Longest ENVID value kept (`DSN_ENVID_LEN`).
pub const DSN_ENVID_LEN: usize = 100;

/// The recognised verbs. `MAIL FROM` and `RCPT TO` are single verbs because
/// OpenSMTPD matches them as the exact prefixes `MAIL FROM:` / `RCPT TO:`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verb {
    Helo,
    Ehlo,
    StartTls,
    Auth,
    MailFrom,
    RcptTo,
    Data,
    Rset,
    Quit,
    Noop,
    Help,
    Wiz,
    /// A lone `.` outside DATA: in the command table but never handled, so
    /// it ends up as "Command unrecognized".
    Dot,
    Unknown,
}

/// A command line split the OpenSMTPD way. `args` is `None` when there was
/// nothing after the verb; `Some(b"")` when there was a space but nothing
/// else (which matters: `NOOP ` is refused for having arguments).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Command {
    pub verb: Verb,
    pub args: Option<Vec<u8>>,
}

impl Command {
    /// Split a line (CRLF already removed). Never fails: unknown verbs map
    /// to [`Verb::Unknown`].
    pub fn parse(line: &[u8]) -> Command {
        let line = match line.iter().position(|&c| c == 0) {
            Some(n) => &line[..n],
            None => line,
        };
        let colon_verb = (line.len() >= 10 && line[..10].eq_ignore_ascii_case(b"mail from:"))
            || (line.len() >= 8 && line[..8].eq_ignore_ascii_case(b"rcpt to:"));
        let split = if colon_verb {
            line.iter().position(|&c| c == b':')
        } else {
            line.iter().position(|&c| c == b' ')
        };
        let (verb, args) = match split {
            None => (line, None),
            Some(p) => {
                let mut a = &line[p + 1..];
                // C isspace(): SP, HT, LF, VT, FF, CR.
                while let Some(&c) = a.first() {
                    if matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r') {
                        a = &a[1..];
                    } else {
                        break;
                    }
                }
                (&line[..p], Some(a.to_vec()))
            }
        };
        const TABLE: &[(&[u8], Verb)] = &[
            (b"HELO", Verb::Helo),
            (b"EHLO", Verb::Ehlo),
            (b"STARTTLS", Verb::StartTls),
            (b"AUTH", Verb::Auth),
            (b"MAIL FROM", Verb::MailFrom),
            (b"RCPT TO", Verb::RcptTo),
            (b"DATA", Verb::Data),
            (b"RSET", Verb::Rset),
            (b"QUIT", Verb::Quit),
            (b"NOOP", Verb::Noop),
            (b"HELP", Verb::Help),
            (b"WIZ", Verb::Wiz),
            (b".", Verb::Dot),
        ];
        let verb = TABLE
            .iter()
            .find(|(name, _)| verb.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
            .unwrap_or(Verb::Unknown);
        Command { verb, args }
    }
}

/// `BODY=` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Body {
    SevenBit,
    EightBitMime,
}

/// `RET=` values (DSN).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ret {
    Full,
    Hdrs,
}

/// A parsed `MAIL FROM:`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MailFrom {
    pub sender: Mailaddr,
    /// `SIZE=` as given (OpenSMTPD accepts and ignores it, valid or not).
    pub size: Option<String>,
    pub body: Option<Body>,
    /// `AUTH=` as given (accepted and ignored).
    pub auth: Option<String>,
    pub ret: Option<Ret>,
    pub envid: Option<String>,
}

/// `MAIL FROM:` arguments → address and parameters, or the exact error
/// reply. `default_domain` completes a bare local part; `dsn` is whether
/// the listener advertises DSN (RET/ENVID are unknown options otherwise).
pub fn parse_mail_from(args: &[u8], default_domain: &str, dsn: bool) -> Result<MailFrom, Reply> {
    let (sender, rest) =
        parse_path(args, true, default_domain).map_err(|_| Reply::sender_syntax_error())?;
    let mut out = MailFrom {
        sender,
        ..MailFrom::default()
    };
    for opt in rest.split(|&c| c == b' ') {
        if opt.is_empty() {
            continue;
        }
        let text = String::from_utf8_lossy(opt).into_owned();
        if starts_with_ci(opt, b"AUTH=") {
            out.auth = Some(text[5..].to_string());
        } else if starts_with_ci(opt, b"SIZE=") {
            out.size = Some(text[5..].to_string());
        } else if opt.eq_ignore_ascii_case(b"BODY=7BIT") {
            out.body = Some(Body::SevenBit);
        } else if opt.eq_ignore_ascii_case(b"BODY=8BITMIME") {
            out.body = Some(Body::EightBitMime);
        } else if dsn && starts_with_ci(opt, b"RET=") {
            let v = &opt[4..];
            if v.eq_ignore_ascii_case(b"HDRS") {
                out.ret = Some(Ret::Hdrs);
            } else if v.eq_ignore_ascii_case(b"FULL") {
                out.ret = Some(Ret::Full);
            }
        } else if dsn && starts_with_ci(opt, b"ENVID=") {
            let v = &text[6..];
            if opt.len() - 6 > DSN_ENVID_LEN {
                return Err(Reply::option_too_large(v));
            }
            out.envid = Some(v.to_string());
        } else {
            return Err(Reply::mail_unsupported_option(&text));
        }
    }
    Ok(out)
}

/// DSN `NOTIFY=` bits, as in OpenSMTPD's `enum dsn_notify`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Notify(pub u8);

impl Notify {
    pub const SUCCESS: u8 = 0x1;
    pub const FAILURE: u8 = 0x2;
    pub const DELAY: u8 = 0x4;
    pub const NEVER: u8 = 0x8;
    pub fn contains(self, bit: u8) -> bool {
        self.0 & bit != 0
    }
}

/// A parsed `RCPT TO:`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RcptTo {
    pub rcpt: Mailaddr,
    /// Accumulated NOTIFY bits (see [`parse_rcpt_to`]).
    pub notify: Notify,
    /// ORCPT address if given on this command (user@domain, domain may be
    /// empty).
    pub orcpt: Option<Mailaddr>,
}

/// `RCPT TO:` arguments → recipient and DSN parameters, or the exact error
/// reply.
///
/// `notify` is the transaction's accumulated NOTIFY bits and is updated in
/// place even when the command then fails: OpenSMTPD keeps them in the
/// transaction's envelope template and never clears them between RCPTs
/// (verified: after `NOTIFY=NEVER`, a later `NOTIFY=SUCCESS` gets the 553).
pub fn parse_rcpt_to(
    args: &[u8],
    default_domain: &str,
    dsn: bool,
    notify: &mut Notify,
) -> Result<RcptTo, Reply> {
    let (rcpt, rest) =
        parse_path(args, false, default_domain).map_err(|_| Reply::recipient_syntax_error())?;
    let mut orcpt = None;
    for opt in rest.split(|&c| c == b' ') {
        if opt.is_empty() {
            continue;
        }
        if dsn && starts_with_ci(opt, b"NOTIFY=") {
            for word in opt[7..].split(|&c| c == b',') {
                if word.eq_ignore_ascii_case(b"SUCCESS") {
                    notify.0 |= Notify::SUCCESS;
                } else if word.eq_ignore_ascii_case(b"FAILURE") {
                    notify.0 |= Notify::FAILURE;
                } else if word.eq_ignore_ascii_case(b"DELAY") {
                    notify.0 |= Notify::DELAY;
                } else if word.eq_ignore_ascii_case(b"NEVER") {
                    notify.0 |= Notify::NEVER;
                }
            }
            if notify.contains(Notify::NEVER)
                && notify.0 & (Notify::SUCCESS | Notify::FAILURE | Notify::DELAY) != 0
            {
                return Err(Reply::notify_never_combined());
            }
        } else if dsn && starts_with_ci(opt, b"ORCPT=") {
            let mut v = &opt[6..];
            if starts_with_ci(v, b"rfc822;") {
                v = &v[7..];
            }
            let raw = text_to_mailaddr(v).ok_or_else(Reply::orcpt_syntax_error)?;
            if !valid_localpart(&raw.user)
                || (!raw.domain.is_empty() && !valid_domainpart(&raw.domain))
            {
                return Err(Reply::orcpt_syntax_error());
            }
            orcpt = Some(Mailaddr {
                user: String::from_utf8_lossy(&raw.user).into_owned(),
                domain: String::from_utf8_lossy(&raw.domain).into_owned(),
            });
        } else {
            return Err(Reply::rcpt_unsupported_option(&String::from_utf8_lossy(
                opt,
            )));
        }
    }
    Ok(RcptTo {
        rcpt,
        notify: *notify,
        orcpt,
    })
}

fn starts_with_ci(s: &[u8], prefix: &[u8]) -> bool {
    s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(s: &str) -> (Verb, Option<String>) {
        let c = Command::parse(s.as_bytes());
        (
            c.verb,
            c.args.map(|a| String::from_utf8_lossy(&a).into_owned()),
        )
    }

    #[test]
    fn verbs() {
        // ✔ = behaviour observed on the real binary.
        let table: &[(&str, Verb, Option<&str>)] = &[
            ("HELO foo", Verb::Helo, Some("foo")),
            ("helo foo", Verb::Helo, Some("foo")),      // ✔
            ("HELO   foo", Verb::Helo, Some("foo")),    // ✔
            ("HELO\tfoo", Verb::Unknown, None),         // ✔ only SP splits
            ("HELO ", Verb::Helo, Some("")),            // ✔ → invalid domain
            ("HELO", Verb::Helo, None),                 // ✔ → requires domain
            ("HELO foo\0bar", Verb::Helo, Some("foo")), // ✔ C string
            ("NOOP ", Verb::Noop, Some("")),            // ✔ → has arguments
            ("NOOP\0 x", Verb::Noop, None),             // ✔
            ("MAIL FROM:<a@b>", Verb::MailFrom, Some("<a@b>")),
            ("mail from:\t<a@b>", Verb::MailFrom, Some("<a@b>")), // ✔
            ("MAIL FROM: <a@b>", Verb::MailFrom, Some("<a@b>")),  // ✔
            ("MAIL FROM :<a@b>", Verb::Unknown, Some("FROM :<a@b>")), // ✔ unrecognized
            ("MAIL FROM", Verb::Unknown, Some("FROM")),
            ("MAIL", Verb::Unknown, None),
            ("MAIL FROM:", Verb::MailFrom, Some("")),
            ("RCPT TO:<x>", Verb::RcptTo, Some("<x>")),
            (
                "Rcpt To:  <x> NOTIFY=NEVER",
                Verb::RcptTo,
                Some("<x> NOTIFY=NEVER"),
            ),
            ("RCPT TO :<x>", Verb::Unknown, Some("TO :<x>")),
            ("DATA", Verb::Data, None),
            ("DATA x", Verb::Data, Some("x")),
            ("RSET", Verb::Rset, None),
            ("QUIT", Verb::Quit, None),
            ("HELP", Verb::Help, None),
            ("WIZ", Verb::Wiz, None),
            (".", Verb::Dot, None),
            ("STARTTLS", Verb::StartTls, None),
            ("starttls x", Verb::StartTls, Some("x")),
            (
                "AUTH PLAIN AGZvbwBiYXI=",
                Verb::Auth,
                Some("PLAIN AGZvbwBiYXI="),
            ),
            ("VRFY root", Verb::Unknown, Some("root")),
            ("EXPN root", Verb::Unknown, Some("root")),
            ("BDAT 10", Verb::Unknown, Some("10")),
            ("TURN", Verb::Unknown, None),
            ("", Verb::Unknown, None),
            (" NOOP", Verb::Unknown, Some("NOOP")),
        ];
        for (line, verb, args) in table {
            assert_eq!(cmd(line), (*verb, args.map(str::to_string)), "{line:?}");
        }
    }

    fn mf(s: &str, dsn: bool) -> Result<MailFrom, String> {
        parse_mail_from(s.as_bytes(), "mx.test", dsn).map_err(|r| r.text())
    }

    #[test]
    fn mail_from_table() {
        // (args, dsn, Ok(sender) | Err(reply)); ✔ verified on the binary.
        let table: &[(&str, bool, Result<&str, &str>)] = &[
            ("<>", true, Ok("@")),                                        // ✔
            ("<a@b>", true, Ok("a@b")),                                   // ✔
            ("a@b", true, Err("553 5.1.0 Sender address syntax error")),  // ✔
            ("<a@b", true, Err("553 5.1.0 Sender address syntax error")), // ✔
            ("", true, Err("553 5.1.0 Sender address syntax error")),
            (
                "<a@b>x",
                true,
                Err("503 5.5.4 Invalid command arguments: Unsupported option x"),
            ), // ✔
            (
                "<\"a b\"@b>",
                true,
                Err("553 5.1.0 Sender address syntax error"),
            ), // ✔
            ("<@x,@y:u@d>", true, Ok("u@d")),           // ✔
            ("<u%v@d>", true, Ok("u%v@d")),             // ✔
            ("<u@[1.2.3.4]>", true, Ok("u@[1.2.3.4]")), // ✔
            (
                "<u;sleep 1@d>",
                true,
                Err("553 5.1.0 Sender address syntax error"),
            ), // ✔
            ("<u>", true, Ok("u@mx.test")),             // ✔
            ("<@d>", true, Err("553 5.1.0 Sender address syntax error")), // ✔
            ("<a.@d>", true, Err("553 5.1.0 Sender address syntax error")), // ✔
            ("<a@b> SIZE=100 BODY=8BITMIME AUTH=<>", true, Ok("a@b")), // ✔
            (
                "<a@b> FOO=1",
                true,
                Err("503 5.5.4 Invalid command arguments: Unsupported option FOO=1"),
            ), // ✔
            ("<a@b>  RET=HDRS  ENVID=xyz", true, Ok("a@b")), // ✔
            ("<a@b> RET=BOGUS", true, Ok("a@b")),       // ✔
            (
                "<a@b> RET=HDRS",
                false,
                Err("503 5.5.4 Invalid command arguments: Unsupported option RET=HDRS"),
            ),
            (
                "<a@b> ENVID=x",
                false,
                Err("503 5.5.4 Invalid command arguments: Unsupported option ENVID=x"),
            ),
            (
                "<a@b>\tSIZE=1",
                true,
                Err("503 5.5.4 Invalid command arguments: Unsupported option \tSIZE=1"),
            ), // ✔
            ("<a@b> body=7bit", true, Ok("a@b")),
            (
                "<a@b> BODY=BINARYMIME",
                true,
                Err("503 5.5.4 Invalid command arguments: Unsupported option BODY=BINARYMIME"),
            ),
            (
                "<a@b> SMTPUTF8",
                true,
                Err("503 5.5.4 Invalid command arguments: Unsupported option SMTPUTF8"),
            ),
        ];
        for (args, dsn, want) in table {
            let got = mf(args, *dsn).map(|m| m.sender.to_string());
            assert_eq!(got.as_deref().map_err(String::as_str), *want, "{args:?}");
        }
    }

    #[test]
    fn envid_limit() {
        // ✔ 100 accepted, 101 refused with the whole value echoed.
        let ok = format!("<a@b> ENVID={}", "x".repeat(100));
        assert_eq!(
            mf(&ok, true).map(|m| m.envid.map(|e| e.len())),
            Ok(Some(100))
        );
        let long = format!("<a@b> ENVID={}", "x".repeat(101));
        assert_eq!(
            mf(&long, true).err(),
            Some(format!(
                "503 5.5.4 Invalid command arguments: option too large, truncated: {}",
                "x".repeat(101)
            ))
        );
    }

    #[test]
    fn mail_params() {
        let m = mf("<a@b> SIZE=12 BODY=7BIT RET=full ENVID=q AUTH=x@y", true).expect("ok");
        assert_eq!(m.size.as_deref(), Some("12"));
        assert_eq!(m.body, Some(Body::SevenBit));
        assert_eq!(m.ret, Some(Ret::Full));
        assert_eq!(m.envid.as_deref(), Some("q"));
        assert_eq!(m.auth.as_deref(), Some("x@y"));
    }

    #[test]
    fn rcpt_table() {
        let mut n = Notify::default();
        let r = |s: &str, n: &mut Notify| {
            parse_rcpt_to(s.as_bytes(), "mx.test", true, n)
                .map(|r| r.rcpt.to_string())
                .map_err(|e| e.text())
        };
        assert_eq!(r("<foo>", &mut n), Ok("foo@mx.test".into())); // ✔
        assert_eq!(r("<postmaster>", &mut n), Ok("postmaster@mx.test".into()));
        assert_eq!(
            r("<>", &mut n),
            Err("501 5.1.3 Recipient address syntax error".into())
        ); // ✔
        assert_eq!(
            r("<foo@mx.test> XX=1", &mut n),
            Err("503 Unsupported option XX=1".into())
        ); // ✔
        assert_eq!(
            r("<foo@mx.test> ORCPT=bad..x@y", &mut n),
            Err("553 ORCPT address syntax error".into())
        ); // ✔
        assert_eq!(
            r("<foo@mx.test> NOTIFY=bogus ORCPT=rfc822;x@y", &mut n),
            Ok("foo@mx.test".into())
        ); // ✔
        assert_eq!(r("<f@d> ORCPT=RFC822;x", &mut n), Ok("f@d".into()));
        assert_eq!(
            r("<f@d> ORCPT=rfc822;<x@y>", &mut n),
            Err("553 ORCPT address syntax error".into())
        );
        assert_eq!(r("<f@d> NOTIFY=NEVER", &mut n), Ok("f@d".into())); // ✔
                                                                       // ✔ sticky bits: NEVER from the previous RCPT poisons this one.
        assert_eq!(
            r("<f@d> NOTIFY=SUCCESS", &mut n),
            Err("553 NOTIFY option NEVER cannot be combined with other options".into())
        );
        let mut fresh = Notify::default();
        assert_eq!(
            r("<f@d> NOTIFY=NEVER,DELAY", &mut fresh),
            Err("553 NOTIFY option NEVER cannot be combined with other options".into())
        );
        let mut nodsn = Notify::default();
        assert_eq!(
            parse_rcpt_to(b"<f@d> NOTIFY=NEVER", "mx.test", false, &mut nodsn)
                .map_err(|e| e.text())
                .err(),
            Some("503 Unsupported option NOTIFY=NEVER".into())
        );
        let mut n2 = Notify::default();
        let ok = parse_rcpt_to(
            b"<f@d> NOTIFY=success,failure ORCPT=rfc822;o@p",
            "mx.test",
            true,
            &mut n2,
        )
        .expect("ok");
        assert_eq!(ok.notify, Notify(Notify::SUCCESS | Notify::FAILURE));
        assert_eq!(ok.orcpt, Some(Mailaddr::new("o", "p")));
    }
}
