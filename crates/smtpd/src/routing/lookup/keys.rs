//! How keys are normalised and compared: lower-casing with OpenSMTPD's length limit, address
//! splitting, `hostname_match()`.

use super::*;

/// `lowercase(lkey, key, 1024)`: keys that do not fit fail the lookup.
pub(crate) fn lower_key(key: &str) -> Result<String, TempFail> {
    if key.len() > MAX_KEY {
        return Err(TempFail);
    }
    Ok(key.to_ascii_lowercase())
}

/// `text_to_mailaddr()`: split at the last `@`; no `@` is a user alone.
pub fn split_mailaddr(s: &str) -> (&str, &str) {
    match s.rfind('@') {
        Some(i) => (&s[..i], &s[i + 1..]),
        None => (s, ""),
    }
}

/// `hostname_match()` from util.c, byte for byte: `*` skips up to the next occurrence of the
/// pattern's following character, so `*.example.org` matches one label only
/// (`a.example.org`, not `b.a.example.org` nor `example.org`; verified against smtpd 6.8.0p2).
pub fn hostname_match(hostname: &str, pattern: &str) -> bool {
    let h = hostname.as_bytes();
    let p = pattern.as_bytes();
    let (mut i, mut j) = (0, 0);
    while j < p.len() && i < h.len() {
        if p[j] == b'*' {
            while j < p.len() && p[j] == b'*' {
                j += 1;
            }
            let next = p.get(j).copied().unwrap_or(0).to_ascii_lowercase();
            while i < h.len() && h[i].to_ascii_lowercase() != next {
                i += 1;
            }
            continue;
        }
        if !p[j].eq_ignore_ascii_case(&h[i]) {
            return false;
        }
        i += 1;
        j += 1;
    }
    i == h.len() && j == p.len()
}
