//! Text as OpenSMTPD's libc-based helpers print it, where our logs and replies must match.

use std::net::IpAddr;

/// `ss_to_text()`: IPv6 in brackets.
pub fn addr_text(ip: &IpAddr) -> String {
    match ip {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => format!("[{}]", a),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_in_brackets() {
        assert_eq!(
            addr_text(&IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1])),
            "[::1]"
        );
        assert_eq!(addr_text(&IpAddr::from([127, 0, 0, 1])), "127.0.0.1");
    }
}
