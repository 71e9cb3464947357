//! The alias and `.forward` line grammar (aliases.c, forward.c, `fparseln(3)`): what an alias
//! value or a forward line means, before expansion places it in a tree. Both the table lookups
//! (a `mailaddr` or alias table entry) and the expansion walk read it, so it sits below both.

use crate::sys::compat::strip_prefix_ci;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Username = 1,
    Filename = 2,
    Filter = 3,
    Include = 4,
    Address = 5,
    Error = 6,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Username => "username",
            Kind::Filename => "filename",
            Kind::Filter => "filter",
            Kind::Include => "include",
            Kind::Address => "address",
            Kind::Error => "error",
        }
    }
}

/// A node as an alias value or forward line gives it (no place in a tree yet).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Item {
    pub kind: Kind,
    /// User name, file name, command, include path or error text.
    pub text: String,
    /// For addresses.
    pub addr: (String, String),
}

impl Item {
    pub fn value_text(&self) -> String {
        match self.kind {
            Kind::Address => format!("{}@{}", self.addr.0, self.addr.1),
            _ => self.text.clone(),
        }
    }
}

/// `fparseln(fp, ..., {esc, con, com}, 0)`: lines with comments cut at an unescaped `com`,
/// lines ending in an unescaped `con` joined with the next; escapes are kept.
pub fn fparseln(data: &[u8], esc: u8, con: u8, com: Option<u8>) -> Vec<String> {
    let escaped = |line: &[u8], pos: usize| {
        let mut n = 0;
        let mut p = pos;
        while p > 0 && line[p - 1] == esc {
            n += 1;
            p -= 1;
        }
        n % 2 == 1
    };
    let mut out = Vec::new();
    let mut raw_lines: Vec<&[u8]> = data.split_inclusive(|&b| b == b'\n').collect();
    raw_lines.reverse();
    loop {
        let mut buf: Option<Vec<u8>> = None;
        let mut more = true;
        while more {
            more = false;
            let Some(line) = raw_lines.pop() else {
                break;
            };
            let mut s = line.len();
            if let Some(com) = com {
                if let Some(p) = (0..s).find(|&p| line[p] == com && !escaped(line, p)) {
                    s = p;
                    more = s == 0 && buf.is_none();
                }
            }
            if s > 0 && line[s - 1] == b'\n' {
                s -= 1;
            }
            if s > 0 && line[s - 1] == con && !escaped(line, s - 1) {
                s -= 1;
                more = true;
            }
            if s == 0 && (more || buf.is_some()) {
                continue;
            }
            buf.get_or_insert_with(Vec::new)
                .extend_from_slice(&line[..s]);
        }
        match buf {
            Some(b) => out.push(String::from_utf8_lossy(&b).into_owned()),
            None => break,
        }
    }
    out
}

/// `expand_line_split()`: items separated by commas outside quotes; `\` escapes the next
/// character (and is removed). None for an unterminated quote or trailing `\`.
pub fn split_line(s: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let (mut esc, mut dq, mut sq) = (false, false, false);
    for c in s.chars() {
        if esc {
            cur.push(c);
            esc = false;
            continue;
        }
        if c == '\\' {
            esc = true;
            continue;
        }
        if c == ',' && !dq && !sq {
            out.push(std::mem::take(&mut cur));
            continue;
        }
        cur.push(c);
        if c == '"' && !sq {
            dq = !dq;
        }
        if c == '\'' && !dq {
            sq = !sq;
        }
    }
    if esc || dq || sq {
        return None;
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    Some(out)
}

/// An alias value (or `.forward` line) as nodes, in written order; None if any item is invalid
/// (OpenSMTPD then fails the lookup: a temporary failure).
pub fn parse_alias_value(s: &str) -> Option<Vec<Item>> {
    let items = split_line(s)?;
    let mut out = Vec::new();
    for it in items {
        let t = it.trim_matches(|c: char| c.is_ascii_whitespace());
        if t.is_empty() {
            continue;
        }
        out.push(text_to_item(t)?);
    }
    Some(out)
}

/// Like [`parse_alias_value`] but keeps the items before the first invalid one, which
/// `expand_line()` has already inserted by then.
pub fn parse_alias_value_partial(s: &str) -> Option<Vec<Item>> {
    let items = split_line(s)?;
    let mut out = Vec::new();
    for it in items {
        let t = it.trim_matches(|c: char| c.is_ascii_whitespace());
        if t.is_empty() {
            continue;
        }
        match text_to_item(t) {
            Some(x) => out.push(x),
            None => break,
        }
    }
    Some(out)
}

fn item(kind: Kind, text: &str) -> Item {
    Item {
        kind,
        text: text.to_string(),
        addr: Default::default(),
    }
}

/// Whether `text_to_expandnode()` accepts one recipient of an alias value, as makemap's
/// make_aliases() asks of each comma-separated part (`makemap -t aliases`, `newaliases`).
pub fn is_valid_node(s: &str) -> bool {
    text_to_item(s).is_some()
}

/// `text_to_expandnode()`: error, include, filter, filename, address, username, in that order.
fn text_to_item(s: &str) -> Option<Item> {
    is_error(s)
        .or_else(|| is_include(s))
        .or_else(|| is_filter(s))
        .or_else(|| is_filename(s))
        .or_else(|| is_address(s))
        .or_else(|| is_username(s))
}

fn is_error(s: &str) -> Option<Item> {
    let rest = strip_prefix_ci(s, ":error:").or_else(|| strip_prefix_ci(s, "error:"))?;
    let b = rest.as_bytes();
    // [45][0-9]{2} [a-zA-Z0-9].*
    if b.len() < 5
        || b[3] != b' '
        || !b[4].is_ascii_alphanumeric()
        || (b[0] != b'4' && b[0] != b'5')
        || !b[1].is_ascii_digit()
        || !b[2].is_ascii_digit()
    {
        return None;
    }
    Some(item(Kind::Error, rest))
}

fn is_include(s: &str) -> Option<Item> {
    let rest = strip_prefix_ci(s, ":include:").or_else(|| strip_prefix_ci(s, "include:"))?;
    is_filename(rest).map(|i| item(Kind::Include, &i.text))
}

fn is_filter(s: &str) -> Option<Item> {
    if let Some(cmd) = s.strip_prefix('|') {
        return Some(item(Kind::Filter, cmd));
    }
    let cmd = s.strip_prefix("\"|")?;
    let cmd = cmd.strip_suffix('"')?;
    Some(item(Kind::Filter, cmd))
}

fn is_filename(s: &str) -> Option<Item> {
    s.starts_with('/').then(|| item(Kind::Filename, s))
}

fn is_address(s: &str) -> Option<Item> {
    if s.len() < 3 {
        return None;
    }
    let at = s.find('@')?;
    if at == 0 || at == s.len() - 1 {
        return None;
    }
    let (user, domain) = (&s[..at], &s[at + 1..]);
    let user_ok = user
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || b"!#$%*/?|^{}`~&'+-=_.".contains(&c));
    let domain_ok = domain
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.');
    (user_ok && domain_ok).then(|| Item {
        kind: Kind::Address,
        text: String::new(),
        addr: (user.to_string(), domain.to_string()),
    })
}

fn is_username(s: &str) -> Option<Item> {
    s.bytes()
        .all(|c| c.is_ascii_alphanumeric() || b"_.-+".contains(&c))
        .then(|| item(Kind::Username, s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify() {
        let k = |s: &str| text_to_item(s).map(|i| i.kind);
        assert_eq!(k("error:550 go away"), Some(Kind::Error));
        assert_eq!(k(":error:450 later"), Some(Kind::Error));
        assert_eq!(k("error:550go"), None);
        assert_eq!(k(":include:/etc/list"), Some(Kind::Include));
        assert_eq!(k("include:rel"), None);
        assert_eq!(k("|/bin/cat"), Some(Kind::Filter));
        assert_eq!(k("\"|/bin/cat -n\""), Some(Kind::Filter));
        assert_eq!(k("/var/mail/x"), Some(Kind::Filename));
        assert_eq!(k("bob@example.org"), Some(Kind::Address));
        assert_eq!(k("bob"), Some(Kind::Username));
        assert_eq!(k("bob+tag"), Some(Kind::Username));
        assert_eq!(k("b b"), None);
        assert_eq!(k("@x"), None);
    }

    #[test]
    fn split() {
        assert_eq!(
            split_line("a, b,\"c,d\", 'e,f', g\\,h"),
            Some(vec![
                "a".into(),
                " b".into(),
                "\"c,d\"".into(),
                " 'e,f'".into(),
                " g,h".into()
            ])
        );
        assert_eq!(split_line("\"a"), None);
        assert_eq!(split_line("a\\"), None);
    }

    #[test]
    fn parseln() {
        let l = fparseln(b"a # c\n\n# only\nb\\\nc\nd", b'\\', b'\\', Some(b'#'));
        assert_eq!(l, vec!["a ", "", "bc", "d"]);
        let l = fparseln(b"a #\nb\n# x\n", b'\\', b'#', None);
        assert_eq!(l, vec!["a b", "# x"]);
    }
}
