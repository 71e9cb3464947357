//! Table values for the services that parse them: userinfo, credentials, mailaddr lists.

use super::*;

/// `text_to_userinfo("key:value")`: `uid:gid:directory` with numeric ids.
pub fn parse_userinfo(user: &str, value: &str) -> Option<UserInfo> {
    let mut parts = value.splitn(3, ':');
    let uid = parse_id(parts.next()?)?;
    let gid = parse_id(parts.next()?)?;
    let directory = parts.next()?;
    if user.contains(':') {
        return None;
    }
    Some(UserInfo {
        username: user.to_string(),
        uid,
        gid,
        directory: directory.to_string(),
    })
}

/// `strtonum(s, 0, UID_MAX)`: strtoll's leading blanks and sign, then digits only.
pub(crate) fn parse_id(s: &str) -> Option<u32> {
    let t = s.trim_start_matches(|c: char| c.is_ascii_whitespace());
    let t = t.strip_prefix('+').unwrap_or(t);
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    t.parse().ok()
}

/// `table_parse_lookup(K_CREDENTIALS)`.
pub fn parse_credentials(key: &str, line: &str) -> Option<Credentials> {
    if line.len() < 3 {
        return None;
    }
    match line.find(':') {
        None => Some(Credentials {
            username: key.to_string(),
            password: line.to_string(),
        }),
        Some(0) => None,
        Some(i) if i == line.len() - 1 => None,
        Some(i) => Some(Credentials {
            username: line[..i].to_string(),
            password: line[i + 1..].to_string(),
        }),
    }
}

/// `mailaddr_line()`: a comma-separated list of addresses (quotes and `\` as in alias values).
pub fn parse_mailaddr_line(s: &str) -> Option<Vec<Mailaddr>> {
    let items = crate::routing::alias::split_line(s)?;
    Some(
        items
            .iter()
            .map(|i| i.trim_matches(|c: char| c.is_ascii_whitespace()))
            .filter(|i| !i.is_empty())
            .map(|i| {
                let (u, d) = split_mailaddr(i);
                Mailaddr::new(u, d)
            })
            .collect(),
    )
}
