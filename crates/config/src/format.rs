//! Format strings of actions: `maildir "/var/vmail/%{dest.domain}/%{dest.user:lowercase}"`.
//!
//! OpenSMTPD only discovers a bad format when it delivers (`mda_expand_format()` fails and the
//! message is deferred or bounced). We parse them with the config so that `smtpd -n` names the
//! mistake; expansion itself happens in the delivery code with the values of one envelope.

use std::fmt;

/// The tokens `%{...}` may name.
pub const TOKENS: &[&str] = &[
    "sender",
    "sender.user",
    "sender.domain",
    "rcpt",
    "rcpt.user",
    "rcpt.domain",
    "dest",
    "dest.user",
    "dest.domain",
    "user.username",
    "user.directory",
    "mda",
    "mbox.from",
];

pub const MODIFIERS: &[&str] = &["lowercase", "uppercase", "strip", "raw"];

/// OpenSMTPD's MAXTOKENLEN: a token longer than this cannot be expanded.
const MAX_TOKEN_LEN: usize = 128;
/// EXPAND_BUFFER bounds the substring offsets.
const EXPAND_BUFFER: i64 = 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Literal(String),
    /// `~/` at the very start: the user's home directory.
    Home,
    Token(Token),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// Lower-cased token name (OpenSMTPD compares without case).
    pub name: String,
    /// `[begin:end]` substring, both inclusive, negative counting from the end.
    pub begin: i64,
    pub end: Option<i64>,
    pub modifiers: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Format {
    pub raw: String,
    pub parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatError(pub String);

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Format {
    pub fn parse(raw: &str) -> Result<Format, FormatError> {
        let mut parts = Vec::new();
        let mut rest = raw;
        if let Some(r) = rest.strip_prefix("~/") {
            parts.push(Part::Home);
            parts.push(Part::Literal("/".into()));
            rest = r;
        }
        let mut lit = String::new();
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix("%%") {
                lit.push('%');
                rest = r;
                continue;
            }
            let Some(r) = rest.strip_prefix("%{") else {
                let mut chars = rest.chars();
                if let Some(c) = chars.next() {
                    lit.push(c);
                }
                rest = chars.as_str();
                continue;
            };
            let Some(close) = r.find('}') else {
                return Err(FormatError(format!(
                    "unterminated format token in \"{}\"",
                    raw
                )));
            };
            let inner = &r[..close];
            if !lit.is_empty() {
                parts.push(Part::Literal(std::mem::take(&mut lit)));
            }
            parts.push(Part::Token(parse_token(inner)?));
            rest = &r[close + 1..];
        }
        if !lit.is_empty() {
            parts.push(Part::Literal(lit));
        }
        Ok(Format {
            raw: raw.to_string(),
            parts,
        })
    }
}

fn parse_token(inner: &str) -> Result<Token, FormatError> {
    let bad = |why: &str| FormatError(format!("invalid format token %{{{}}}: {}", inner, why));
    if inner.len() + 1 >= MAX_TOKEN_LEN {
        return Err(bad("too long"));
    }
    let (mut name, mut begin, mut end, mods);
    begin = 0;
    end = None;
    match (inner.find('['), inner.find(']')) {
        (Some(l), Some(r)) => {
            if r < l || r - l <= 1 {
                return Err(bad("bad substring"));
            }
            name = &inner[..l];
            let content = &inner[l + 1..r];
            let num = |s: &str| -> Result<i64, FormatError> {
                s.parse::<i64>()
                    .ok()
                    .filter(|n| (-EXPAND_BUFFER..=EXPAND_BUFFER).contains(n))
                    .ok_or_else(|| bad("bad substring"))
            };
            match content.find(':') {
                None => {
                    begin = num(content)?;
                    end = Some(begin);
                }
                Some(c) => {
                    if c > 0 {
                        begin = num(&content[..c])?;
                    }
                    if c + 1 < content.len() {
                        end = Some(num(&content[c + 1..])?);
                    }
                }
            }
            mods = inner[r + 1..].find(':').map(|c| &inner[r + 1 + c + 1..]);
        }
        _ => {
            name = inner;
            mods = None;
            if let Some(c) = inner.find(':') {
                name = &inner[..c];
                return finish(name, begin, end, Some(&inner[c + 1..]), &bad);
            }
        }
    }
    if name.is_empty() {
        name = "";
    }
    finish(name, begin, end, mods, &bad)
}

fn finish(
    name: &str,
    begin: i64,
    end: Option<i64>,
    mods: Option<&str>,
    bad: &dyn Fn(&str) -> FormatError,
) -> Result<Token, FormatError> {
    let lname = name.to_ascii_lowercase();
    if !TOKENS.contains(&lname.as_str()) {
        return Err(bad("unknown token"));
    }
    let mut modifiers = Vec::new();
    if let Some(m) = mods {
        for one in m.split('|') {
            let l = one.to_ascii_lowercase();
            if !MODIFIERS.contains(&l.as_str()) {
                return Err(bad("unknown modifier"));
            }
            modifiers.push(l);
        }
    }
    Ok(Token {
        name: lname,
        begin,
        end,
        modifiers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_literals() {
        let f = Format::parse("/var/vmail/%{dest.domain}/%{dest.user:lowercase|strip}")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(f.parts.len(), 4);
        match &f.parts[3] {
            Part::Token(t) => {
                assert_eq!(t.name, "dest.user");
                assert_eq!(t.modifiers, vec!["lowercase", "strip"]);
            }
            p => panic!("{p:?}"),
        }
        assert!(Format::parse("~/Maildir").is_ok_and(|f| f.parts[0] == Part::Home));
        assert!(Format::parse("100%% %x")
            .is_ok_and(|f| f.parts == vec![Part::Literal("100% %x".into())]));
        assert!(Format::parse("%{USER.USERNAME}").is_ok());
        assert!(Format::parse("%{rcpt.user[0]}").is_ok());
        assert!(Format::parse("%{rcpt.user[-3:]}:raw").is_ok());
        assert!(Format::parse("%{rcpt.user[1:2]:uppercase}").is_ok());
    }

    #[test]
    fn errors() {
        assert!(Format::parse("%{nope}").is_err());
        assert!(Format::parse("%{rcpt:shout}").is_err());
        assert!(Format::parse("%{rcpt").is_err());
        assert!(Format::parse("%{rcpt[]}").is_err());
        assert!(Format::parse("%{rcpt[x]}").is_err());
        assert!(Format::parse("%{rcpt[5000]}").is_err());
    }
}
