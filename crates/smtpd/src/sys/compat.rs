//! Text as OpenSMTPD's libc-based helpers print it, where our logs and replies must match.

use std::net::IpAddr;

/// `ss_to_text()`: IPv6 in brackets.
pub fn addr_text(ip: &IpAddr) -> String {
    match ip {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => format!("[{}]", a),
    }
}

/// `s` without `prefix`, compared in ASCII case-insensitively (`strncasecmp(s, prefix, len)`);
/// `None` when `s` does not start with it. Never splits a character: a `&str` cut at a byte
/// offset would panic on non-ASCII text (`[abcd€]:24`).
pub fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// `strerror()` of an I/O error, without Rust's ` (os error N)`.
pub fn strerror(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => nix::errno::Errno::from_raw(n).desc().to_string(),
        None => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strip_prefix_ci_ignores_case_and_never_splits_a_character() {
        assert_eq!(strip_prefix_ci("IPV6:::1", "IPv6:"), Some("::1"));
        assert_eq!(strip_prefix_ci("ipv6:", "IPv6:"), Some(""));
        assert_eq!(strip_prefix_ci("IPv4:x", "IPv6:"), None);
        assert_eq!(strip_prefix_ci("IPv", "IPv6:"), None);
        // Byte 5 falls inside the euro sign: no panic, no match.
        assert_eq!(strip_prefix_ci("abcd€", "IPv6:"), None);
        assert_eq!(strip_prefix_ci("€€", "IPv6:"), None);
    }

    #[test]
    fn ipv6_in_brackets() {
        assert_eq!(
            addr_text(&IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1])),
            "[::1]"
        );
        assert_eq!(addr_text(&IpAddr::from([127, 0, 0, 1])), "127.0.0.1");
    }
}
