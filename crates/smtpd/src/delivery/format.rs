//! `%{...}` expansion with one envelope's values: a port of OpenSMTPD's `mda_expand_format()`
//! (mda_variables.c), quirks included.
//!
//! We expand the format's raw text rather than the config crate's parsed tokens so that what
//! OpenSMTPD does with odd input is what we do. In particular:
//! - every value but `user.directory` (and `mda`) has the characters of `MAILADDR_ESCAPE`
//!   replaced by `:` unless the `raw` modifier is given (the CVE-2020-7247 lesson: envelope data
//!   must not reach a shell with `$`, backquotes, `|`, ... in it);
//! - a modifier after a substring (`%{rcpt.user[0]:lowercase}`) is an expansion error, because
//!   OpenSMTPD keeps the `:` in the modifier name there;
//! - an unterminated `%{` or a token of 128 bytes or more leaves the whole format unexpanded
//!   (OpenSMTPD returns 0, which its callers take for success).

use rsmtpd_protocol::address::Mailaddr;

/// Characters replaced by `:` in expanded values (smtpd.h `MAILADDR_ESCAPE`).
pub const MAILADDR_ESCAPE: &[u8] = b"!#$%&'*?`{|}~";

const EXPAND_BUFFER: usize = 1024;
const MAXTOKENLEN: usize = 128;

/// The values a format may name.
#[derive(Debug, Clone, Default)]
pub struct Values<'a> {
    pub sender: Option<&'a Mailaddr>,
    pub rcpt: Option<&'a Mailaddr>,
    pub dest: Option<&'a Mailaddr>,
    pub username: &'a str,
    pub directory: &'a str,
    /// `%{mda}`, for wrappers only.
    pub mda: Option<&'a str>,
    /// The sub-address delimiter for `strip` (`+` unless configured).
    pub delim: char,
}

/// Why a format could not be expanded (OpenSMTPD logs `mda command line could not be expanded`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpandError;

fn both(a: Option<&Mailaddr>) -> (String, String) {
    a.map(|m| (m.user.clone(), m.domain.clone()))
        .unwrap_or_default()
}

fn token_value(name: &str, v: &Values) -> Option<(Vec<u8>, bool)> {
    let at = |a: Option<&Mailaddr>, empty: &str| {
        let (u, d) = both(a);
        let s = format!("{u}@{d}");
        if s == "@" {
            empty.to_string()
        } else {
            s
        }
    };
    let n = name.to_ascii_lowercase();
    let (s, replace) = match n.as_str() {
        "sender" => (at(v.sender, ""), true),
        "rcpt" => (at(v.rcpt, ""), true),
        "dest" => (at(v.dest, ""), true),
        "sender.user" => (both(v.sender).0, true),
        "sender.domain" => (both(v.sender).1, true),
        "user.username" => (v.username.to_string(), true),
        "user.directory" => (v.directory.to_string(), false),
        "rcpt.user" => (both(v.rcpt).0, true),
        "rcpt.domain" => (both(v.rcpt).1, true),
        "dest.user" => (both(v.dest).0, true),
        "dest.domain" => (both(v.dest).1, true),
        "mda" => (v.mda.unwrap_or("").to_string(), false),
        "mbox.from" => (at(v.sender, "MAILER-DAEMON"), true),
        _ => return None,
    };
    // Values are NUL-terminated C strings in OpenSMTPD.
    let mut b = s.into_bytes();
    if let Some(z) = b.iter().position(|&c| c == 0) {
        b.truncate(z);
    }
    Some((b, replace))
}

fn strtonum(s: &str) -> Option<i64> {
    let n: i64 = s.parse().ok()?;
    let lim = EXPAND_BUFFER as i64;
    (-lim..=lim).contains(&n).then_some(n)
}

/// One `%{token}` (without the braces); `Err` when OpenSMTPD returns -1.
fn expand_token(token: &str, v: &Values) -> Result<Vec<u8>, ExpandError> {
    if token.len() >= MAXTOKENLEN {
        return Err(ExpandError);
    }
    let mut begoff: i64 = 0;
    let mut endoff: i64 = EXPAND_BUFFER as i64;
    let name: &str;
    let mods: Option<&str>;
    match (token.find('['), token.find(']')) {
        (Some(l), Some(r)) => {
            if r < l || r - l <= 1 {
                return Err(ExpandError);
            }
            name = &token[..l];
            let content = &token[l + 1..r];
            match content.find(':') {
                None => {
                    begoff = strtonum(content).ok_or(ExpandError)?;
                    endoff = begoff;
                }
                Some(c) => {
                    if c > 0 {
                        begoff = strtonum(&content[..c]).ok_or(ExpandError)?;
                    }
                    if c + 1 < content.len() {
                        endoff = strtonum(&content[c + 1..]).ok_or(ExpandError)?;
                    }
                }
            }
            // OpenSMTPD points at the ':' itself here: the modifier never matches.
            mods = token[r + 1..].find(':').map(|c| &token[r + 1 + c..]);
        }
        _ => match token.find(':') {
            Some(c) => {
                name = &token[..c];
                mods = Some(&token[c + 1..]);
            }
            None => {
                name = token;
                mods = None;
            }
        },
    }
    let (mut tmp, replace) = token_value(name, v).ok_or(ExpandError)?;
    if tmp.len() >= EXPAND_BUFFER {
        return Err(ExpandError);
    }
    let mut raw = false;
    if let Some(mods) = mods {
        for m in mods.split('|') {
            match m.to_ascii_lowercase().as_str() {
                "lowercase" => tmp.make_ascii_lowercase(),
                "uppercase" => tmp.make_ascii_uppercase(),
                "strip" => {
                    let mut d = [0u8; 4];
                    let d = v.delim.encode_utf8(&mut d).as_bytes();
                    if let Some(t) = tmp.iter().position(|&c| c == d[0]) {
                        match tmp[t..].iter().position(|&c| c == b'@') {
                            Some(a) => {
                                tmp.drain(t..t + a);
                            }
                            None => tmp.truncate(t),
                        }
                    }
                }
                "raw" => raw = true,
                _ => return Err(ExpandError),
            }
        }
    }
    if !raw && replace {
        for c in tmp.iter_mut() {
            if MAILADDR_ESCAPE.contains(c) {
                *c = b':';
            }
        }
    }
    let i = tmp.len() as i64;
    if i == 0 {
        return Ok(Vec::new());
    }
    if begoff >= i {
        return Err(ExpandError);
    }
    if endoff >= i {
        endoff = i - 1;
    }
    if begoff < 0 {
        begoff += i;
    }
    if endoff < 0 {
        endoff += i - 1;
    }
    if begoff < 0 || endoff < 0 || endoff < begoff {
        return Err(ExpandError);
    }
    endoff += 1;
    if (endoff - begoff) as usize + 1 >= EXPAND_BUFFER {
        return Err(ExpandError);
    }
    Ok(tmp[begoff as usize..endoff as usize].to_vec())
}

/// Expands `raw` as `mda_expand_format()` does. The result is bytes turned into a string
/// lossily (substrings may cut a UTF-8 sequence, as OpenSMTPD would).
pub fn expand(raw: &str, v: &Values) -> Result<String, ExpandError> {
    let src = raw.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(src.len() + 64);
    let mut p = 0;
    if src.starts_with(b"~/") {
        let home = format!("{}/", v.directory);
        if home.len() >= EXPAND_BUFFER {
            return Ok(raw.to_string());
        }
        out.extend_from_slice(home.as_bytes());
        p = 2;
    }
    while p < src.len() && out.len() < EXPAND_BUFFER {
        if src[p] == b'%' && src.get(p + 1) == Some(&b'%') {
            out.push(b'%');
            p += 2;
            continue;
        }
        if src[p] != b'%' || src.get(p + 1) != Some(&b'{') {
            out.push(src[p]);
            p += 1;
            continue;
        }
        let Some(close) = src[p + 1..].iter().position(|&c| c == b'}') else {
            return Ok(raw.to_string());
        };
        let ebuf = p + 1 + close;
        if ebuf - p > MAXTOKENLEN {
            return Ok(raw.to_string());
        }
        let token = String::from_utf8_lossy(&src[p + 2..ebuf]);
        let exp = expand_token(&token, v)?;
        if EXPAND_BUFFER - out.len() <= exp.len() {
            return Err(ExpandError);
        }
        out.extend_from_slice(&exp);
        p = ebuf + 1;
    }
    if out.len() >= EXPAND_BUFFER {
        return Err(ExpandError);
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}
