//! Mail addresses as OpenSMTPD 6.8 parses and validates them
//! (`to.c:text_to_mailaddr`, `util.c:valid_localpart`/`valid_domainpart`,
//! `smtp_session.c:smtp_mailaddr`).
//!
//! The rules are deliberately narrow: a local part is dot-separated atoms of
//! ASCII alphanumerics and `!#$%&'*/?^`{|}~+-=_` only. Quoted local parts,
//! spaces, `;`, `<`, `>`, `(`, `)`, `"`, `\` and 8-bit bytes are refused.
//! That narrowness is what keeps an address from ever breaking out of an MDA
//! command line (the CVE-2020-7247 lesson), so it must not be relaxed.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

/// Size of OpenSMTPD's `user`/`domain` buffers: a part must be shorter.
pub const MAX_PART_SIZE: usize = 256;
/// `LINE_MAX` on Linux, the buffer `text_to_mailaddr` copies into.
pub const LINE_MAX: usize = 2048;

/// The characters besides ASCII alphanumerics allowed in a local-part atom.
pub const MAILADDR_ALLOWED: &[u8] = b"!#$%&'*/?^`{|}~+-=_";

/// A mail address split at its last `@`. Both parts are ASCII once
/// validated; an empty pair is the null reverse-path `<>`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Mailaddr {
    pub user: String,
    pub domain: String,
}

impl Mailaddr {
    pub fn new(user: impl Into<String>, domain: impl Into<String>) -> Self {
        Mailaddr {
            user: user.into(),
            domain: domain.into(),
        }
    }

    /// True for the null reverse-path `<>`.
    pub fn is_null(&self) -> bool {
        self.user.is_empty() && self.domain.is_empty()
    }

    /// Text used in log lines: `from=<%s%s%s>` drops the `@` when the user
    /// part is empty, so `<>` logs as `from=<>`.
    pub fn log_text(&self) -> String {
        if self.user.is_empty() {
            self.domain.clone()
        } else {
            format!("{}@{}", self.user, self.domain)
        }
    }
}

impl fmt::Display for Mailaddr {
    /// `user@domain` (OpenSMTPD's `mailaddr_to_text` always puts the `@`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.user, self.domain)
    }
}

/// Raw (unvalidated) result of `text_to_mailaddr`: bytes, because nothing has
/// been checked yet.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RawMailaddr {
    pub user: Vec<u8>,
    pub domain: Vec<u8>,
}

/// `text_to_mailaddr`: split at the last `@`, refusing parts that would not
/// fit OpenSMTPD's fixed buffers. Input is a C string: it ends at a NUL.
pub fn text_to_mailaddr(email: &[u8]) -> Option<RawMailaddr> {
    let email = cstr(email);
    if email.len() >= LINE_MAX {
        return None;
    }
    let (user, domain) = match email.iter().rposition(|&c| c == b'@') {
        None => (email, &b""[..]),
        Some(at) => (&email[..at], &email[at + 1..]),
    };
    if user.len() >= MAX_PART_SIZE || domain.len() >= MAX_PART_SIZE {
        return None;
    }
    Some(RawMailaddr {
        user: user.to_vec(),
        domain: domain.to_vec(),
    })
}

fn cstr(s: &[u8]) -> &[u8] {
    match s.iter().position(|&c| c == 0) {
        Some(n) => &s[..n],
        None => s,
    }
}

fn is_atext(c: u8) -> bool {
    c.is_ascii_alphanumeric() || MAILADDR_ALLOWED.contains(&c)
}

/// `valid_localpart`: one or more atoms separated by single dots.
pub fn valid_localpart(s: &[u8]) -> bool {
    let s = cstr(s);
    if s.is_empty() {
        return false;
    }
    s.split(|&c| c == b'.')
        .all(|atom| !atom.is_empty() && atom.iter().all(|&c| is_atext(c)))
}

/// `valid_domainpart`: an address literal (`[1.2.3.4]`, `[IPv6:::1]`,
/// `[::1]`) or a host name accepted by glibc's `res_hnok`, without trailing
/// dot and shorter than 256 bytes.
pub fn valid_domainpart(s: &[u8]) -> bool {
    let s = cstr(s);
    if s.first() == Some(&b'[') {
        let inner = if s.len() >= 6 && s[..6].eq_ignore_ascii_case(b"[IPv6:") {
            &s[6..]
        } else {
            &s[1..]
        };
        if inner.len() >= MAX_PART_SIZE {
            return false;
        }
        let close = match inner.iter().position(|&c| c == b']') {
            Some(p) => p,
            None => return false,
        };
        if close + 1 != inner.len() {
            return false;
        }
        let Ok(text) = std::str::from_utf8(&inner[..close]) else {
            return false;
        };
        return text.parse::<Ipv6Addr>().is_ok() || text.parse::<Ipv4Addr>().is_ok();
    }
    if s.is_empty() || s.len() >= MAX_PART_SIZE || s.last() == Some(&b'.') {
        return false;
    }
    res_hnok(s)
}

/// glibc's `res_hnok`: printable ASCII, a valid presentation-format name
/// (`ns_name_pton`, which honours `\X` and `\DDD` escapes), no leading dash,
/// and only `[A-Za-z0-9_-]` in the decoded labels.
pub fn res_hnok(s: &[u8]) -> bool {
    if !s.iter().all(|&c| (0x21..=0x7e).contains(&c)) {
        return false;
    }
    let Some(labels) = ns_name_pton(s) else {
        return false;
    };
    if let Some(first) = labels.first() {
        if first.first() == Some(&b'-') {
            return false;
        }
    }
    labels.iter().all(|l| {
        l.iter()
            .all(|&c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
    })
}

/// Decode a presentation-format domain name into its labels, with
/// `ns_name_pton`'s limits (label ≤ 63, wire form ≤ 255 bytes).
fn ns_name_pton(src: &[u8]) -> Option<Vec<Vec<u8>>> {
    const MAXCDNAME: usize = 255;
    let mut labels: Vec<Vec<u8>> = Vec::new();
    let mut cur: Vec<u8> = Vec::new();
    // Wire bytes used so far: one length byte per label plus contents.
    let mut wire = 1usize;
    let mut i = 0;
    let mut escaped = false;
    while i < src.len() {
        let mut c = src[i];
        i += 1;
        if escaped {
            if c.is_ascii_digit() {
                let d2 = *src.get(i)?;
                let d3 = *src.get(i + 1)?;
                if !d2.is_ascii_digit() || !d3.is_ascii_digit() {
                    return None;
                }
                i += 2;
                let n =
                    u32::from(c - b'0') * 100 + u32::from(d2 - b'0') * 10 + u32::from(d3 - b'0');
                c = u8::try_from(n).ok()?;
            }
            escaped = false;
        } else if c == b'\\' {
            escaped = true;
            continue;
        } else if c == b'.' {
            if cur.len() > 63 {
                return None;
            }
            if i == src.len() {
                // Fully qualified name.
                let empty = cur.is_empty();
                if !empty {
                    labels.push(std::mem::take(&mut cur));
                    wire += 1;
                }
                return if wire > MAXCDNAME { None } else { Some(labels) };
            }
            if cur.is_empty() || src[i] == b'.' {
                return None;
            }
            labels.push(std::mem::take(&mut cur));
            wire += 1;
            continue;
        }
        if wire >= MAXCDNAME {
            return None;
        }
        wire += 1;
        cur.push(c);
    }
    if cur.len() > 63 {
        return None;
    }
    if !cur.is_empty() {
        labels.push(cur);
        wire += 1;
    }
    if wire > MAXCDNAME {
        return None;
    }
    Some(labels)
}

/// Why a `<path>` was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PathError;

/// `smtp_mailaddr`: parse the `<...>` path at the start of a MAIL/RCPT
/// argument. Returns the address and the parameter text after `>` (leading
/// spaces skipped). A source route (`<@a,@b:u@d>`) keeps only what follows
/// the first `:`; a missing domain is completed with `default_domain`.
pub fn parse_path<'a>(
    line: &'a [u8],
    mailfrom: bool,
    default_domain: &str,
) -> Result<(Mailaddr, &'a [u8]), PathError> {
    let line = cstr(line);
    if line.first() != Some(&b'<') {
        return Err(PathError);
    }
    let close = line.iter().position(|&c| c == b'>').ok_or(PathError)?;
    let mut rest = &line[close + 1..];
    while rest.first() == Some(&b' ') {
        rest = &rest[1..];
    }
    let mut raw = text_to_mailaddr(&line[1..close]).ok_or(PathError)?;
    if let Some(colon) = raw.user.iter().position(|&c| c == b':') {
        raw.user.drain(..=colon);
    }
    if mailfrom && raw.user.is_empty() && raw.domain.is_empty() {
        return Ok((Mailaddr::default(), rest));
    }
    if raw.user.is_empty() || !valid_localpart(&raw.user) {
        return Err(PathError);
    }
    if raw.domain.is_empty() {
        raw.domain = default_domain.as_bytes().to_vec();
    }
    if !valid_domainpart(&raw.domain) {
        return Err(PathError);
    }
    // Both parts are ASCII now; the conversion cannot fail, but never panic.
    let user = String::from_utf8(raw.user).map_err(|_| PathError)?;
    let domain = String::from_utf8(raw.domain).map_err(|_| PathError)?;
    Ok((Mailaddr { user, domain }, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    // (input, valid) for valid_domainpart. Cases marked ✔ were checked
    // against /usr/sbin/smtpd 6.8.0p2 as `HELO <input>`.
    const DOMAINS: &[(&str, bool)] = &[
        ("a_b", true),         // ✔
        ("a\\bc", true),       // ✔ escape decodes to a plain letter
        ("-a", false),         // ✔
        ("a-", true),          // ✔
        ("a.-b", true),        // ✔ only the first label's dash is refused
        ("[1.2.3.4]", true),   // ✔
        ("[IPv6:::1]", true),  // ✔
        ("[ipv6:::1]", true),  // ✔
        ("[::1]", true),       // ✔
        ("[01.2.3.4]", false), // ✔
        ("[1.2.3.4]x", false), // ✔
        ("foo ", false),       // ✔
        ("", false),           // ✔
        ("foo.", false),       // ✔
        (".foo", false),       // ✔
        ("a..b", false),       // ✔
        ("\u{e9}", false),     // ✔
        ("a\\.b", false),      // ✔
        ("a\\065b", true),     // ✔
        ("1.2.3.4", true),     // ✔
        ("[1.2.3]", false),
        ("[1.2.3.4", false),
        ("[]", false),
        ("[IPv6:1.2.3.4]", true),
        ("example.com", true),
        ("EXAMPLE.COM", true),
        ("a\\", true),
        ("a\\256", false),
        ("a\\06", false),
        ("a b", false),
        ("a;b", false),
        ("a@b", false),
    ];

    #[test]
    fn domainpart_table() {
        for (d, ok) in DOMAINS {
            assert_eq!(valid_domainpart(d.as_bytes()), *ok, "{d:?}");
        }
    }

    #[test]
    fn label_lengths() {
        let l63 = format!("{}.b", "a".repeat(63));
        let l64 = format!("{}.b", "a".repeat(64));
        assert!(valid_domainpart(l63.as_bytes())); // ✔
        assert!(!valid_domainpart(l64.as_bytes())); // ✔
                                                    // 4 labels of 63 = 255 wire bytes with the root: too long.
        let long = [&"a".repeat(63)[..]; 4].join(".");
        assert!(!valid_domainpart(long.as_bytes()));
        let ok = [
            &"a".repeat(63)[..],
            &"a".repeat(63),
            &"a".repeat(63),
            &"a".repeat(61),
        ]
        .join(".");
        assert!(valid_domainpart(ok.as_bytes()));
    }

    const LOCALPARTS: &[(&str, bool)] = &[
        ("u", true),
        ("u%v", true), // ✔ percent hack accepted
        ("a.b", true),
        ("a.", false), // ✔
        (".a", false),
        ("a..b", false),
        ("\"a b\"", false),   // ✔ quoted local parts refused
        ("u;sleep 1", false), // ✔
        ("!#$%&'*/?^`{|}~+-=_", true),
        ("a b", false),
        ("a<b", false),
        ("a(b", false),
        ("a\\b", false),
        ("\u{e9}", false),
        ("", false),
    ];

    #[test]
    fn localpart_table() {
        for (l, ok) in LOCALPARTS {
            assert_eq!(valid_localpart(l.as_bytes()), *ok, "{l:?}");
        }
    }

    fn p(s: &str, from: bool) -> Option<(String, String)> {
        parse_path(s.as_bytes(), from, "mx.test")
            .ok()
            .map(|(a, rest)| (a.to_string(), String::from_utf8_lossy(rest).into_owned()))
    }

    #[test]
    fn paths() {
        // ✔ = observed on the real binary (MAIL FROM reply 250 vs 553).
        assert_eq!(p("<>", true), Some(("@".into(), "".into()))); // ✔
        assert_eq!(p("<>", false), None); // ✔ RCPT TO:<> → 501
        assert_eq!(p("<a@b>", true), Some(("a@b".into(), "".into()))); // ✔
        assert_eq!(p("a@b", true), None); // ✔
        assert_eq!(p("<a@b", true), None); // ✔
        assert_eq!(p("<a@b>x", true), Some(("a@b".into(), "x".into()))); // ✔ then 503 option
        assert_eq!(p("<@x,@y:u@d>", true), Some(("u@d".into(), "".into()))); // ✔
        assert_eq!(
            p("<u@[1.2.3.4]>", true),
            Some(("u@[1.2.3.4]".into(), "".into()))
        ); // ✔
        assert_eq!(p("<u>", true), Some(("u@mx.test".into(), "".into()))); // ✔
        assert_eq!(p("<@d>", true), None); // ✔
        assert_eq!(p("<@>", true), Some(("@".into(), "".into())));
        assert_eq!(
            p("<a@b>   SIZE=1", true),
            Some(("a@b".into(), "SIZE=1".into()))
        );
        assert_eq!(
            p("<a@b>\tSIZE=1", true),
            Some(("a@b".into(), "\tSIZE=1".into()))
        );
        assert_eq!(p("<a@b@c>", true), None);
        assert_eq!(
            p("<A.B@Example.COM>", true),
            Some(("A.B@Example.COM".into(), "".into()))
        );
        let long = format!("<{}@d>", "u".repeat(256));
        assert_eq!(p(&long, true), None);
        let ok = format!("<{}@d>", "u".repeat(255));
        assert!(p(&ok, true).is_some());
    }
}
