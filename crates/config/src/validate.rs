//! Checks of table *contents* that OpenSMTPD leaves to run time.
//!
//! OpenSMTPD accepts `table trusted { 10.0.0.0/33 }` used as `from src <trusted>` and only fails
//! when a session looks it up (the entry never matches); likewise a regex that does not compile,
//! a userbase entry that is not `uid:gid:home`, or a relay URL it cannot parse. Such a config
//! cannot work as written, so we refuse it at `smtpd -n` time with the table and the entry named.
//! These are deliberate differences, listed in the README.

use std::net::IpAddr;

use crate::model::FilterCheck;
use crate::table::{Service, Table, TableSource};

/// The first entry of `t` that cannot serve lookups of kind `s`, as an error message.
pub fn table_contents(t: &Table, s: Service) -> Option<String> {
    let checked = matches!(
        s,
        Service::Netaddr
            | Service::Source
            | Service::Regex
            | Service::Userinfo
            | Service::Relayhost
    );
    if !checked || matches!(t.source, TableSource::Builtin) {
        return None;
    }
    for (key, value) in t.entries() {
        let problem = match s {
            Service::Netaddr | Service::Source => {
                (!is_netaddr(key)).then(|| format!("invalid network address \"{}\"", key))
            }
            Service::Regex => regex::RegexBuilder::new(key)
                .case_insensitive(true)
                .build()
                .err()
                .map(|e| {
                    let first = e.to_string();
                    let last = first.lines().last().unwrap_or("").trim().to_string();
                    format!("invalid regex \"{}\": {}", key, last)
                }),
            Service::Userinfo => value.and_then(|v| {
                (!is_userinfo(v)).then(|| {
                    format!(
                        "invalid userinfo \"{}\" for \"{}\" (need uid:gid:home)",
                        v, key
                    )
                })
            }),
            Service::Relayhost => {
                let url = value.unwrap_or(key);
                relay_url_error(url).map(|why| format!("invalid relay host \"{}\": {}", url, why))
            }
            _ => None,
        };
        if let Some(p) = problem {
            return Some(format!("table \"{}\": {}", t.name, p));
        }
    }
    None
}

/// The table a builtin filter check reads, and how.
pub fn filter_check_table(c: &FilterCheck) -> Option<(String, Service)> {
    use FilterCheck::*;
    match c {
        SrcTable(t) => Some((t.clone(), Service::Netaddr)),
        RdnsRegex(t) | SrcRegex(t) | HeloRegex(t) | AuthRegex(t) | MailFromRegex(t)
        | RcptToRegex(t) => Some((t.clone(), Service::Regex)),
        _ => None,
    }
}

/// An address or a network in CIDR notation, IPv6 possibly bracketed, as `text_to_netaddr` reads.
pub fn is_netaddr(s: &str) -> bool {
    let s = s
        .strip_prefix('[')
        .and_then(|x| x.strip_suffix(']'))
        .unwrap_or(s);
    let s = s.strip_prefix("ipv6:").unwrap_or(s);
    if s.parse::<IpAddr>().is_ok() {
        return true;
    }
    match s.split_once('/') {
        Some((a, bits)) => {
            let Ok(addr) = a.parse::<IpAddr>() else {
                return false;
            };
            let Ok(n) = bits.parse::<u8>() else {
                return false;
            };
            n <= if addr.is_ipv4() { 32 } else { 128 }
        }
        None => false,
    }
}

/// `uid:gid:directory` with numeric ids (`parse_userinfo`).
pub fn is_userinfo(v: &str) -> bool {
    let mut it = v.splitn(3, ':');
    let (Some(uid), Some(gid), Some(dir)) = (it.next(), it.next(), it.next()) else {
        return false;
    };
    uid.parse::<u32>().is_ok() && gid.parse::<u32>().is_ok() && !dir.is_empty()
}

/// Schemes a relay URL may use (to.c `text_to_relayhost`).
pub const RELAY_SCHEMES: &[&str] = &[
    "smtp",
    "smtp+tls",
    "smtp+notls",
    "smtps",
    "tls",
    "ssl",
    "lmtp",
    "smtp+starttls",
    "smtps+auth",
];

/// Why a relay URL `[scheme://][label@]host[:port]` cannot be used, if it cannot.
pub fn relay_url_error(url: &str) -> Option<&'static str> {
    let rest = match url.split_once("://") {
        Some((scheme, rest)) => {
            if !RELAY_SCHEMES.contains(&scheme.to_ascii_lowercase().as_str()) {
                return Some("unknown scheme");
            }
            rest
        }
        None => url,
    };
    let hostport = rest.rsplit_once('@').map(|(_, h)| h).unwrap_or(rest);
    let (host, port) = if let Some(h) = hostport.strip_prefix('[') {
        match h.split_once(']') {
            Some((h, p)) => (h, p.strip_prefix(':')),
            None => return Some("unterminated ["),
        }
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    if host.is_empty() {
        return Some("no host");
    }
    if let Some(p) = port {
        if !p.parse::<u16>().is_ok_and(|n| n > 0) {
            return Some("invalid port");
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netaddrs() {
        for ok in [
            "10.0.0.0/8",
            "192.168.1.1",
            "::1",
            "2001:DB8:666::/64",
            "[::1]",
            "[ipv6:::1]",
        ] {
            assert!(is_netaddr(ok), "{ok}");
        }
        for bad in ["10.0.0.0/33", "host.example", "10/8", "::1/129", ""] {
            assert!(!is_netaddr(bad), "{bad}");
        }
    }

    #[test]
    fn userinfos() {
        assert!(is_userinfo("2000:2000:/var/empty"));
        assert!(!is_userinfo("2000:/var/empty"));
        assert!(!is_userinfo("a:b:/c"));
        assert!(!is_userinfo("1:2:"));
    }

    #[test]
    fn relay_urls() {
        assert_eq!(relay_url_error("smtp+tls://label@mx.example.org:587"), None);
        assert_eq!(relay_url_error("mx.example.org"), None);
        assert_eq!(relay_url_error("lmtp://[::1]:24"), None);
        assert_eq!(relay_url_error("gopher://x"), Some("unknown scheme"));
        assert_eq!(relay_url_error("smtp://x:99999"), Some("invalid port"));
        assert_eq!(relay_url_error("smtp://"), Some("no host"));
    }

    #[test]
    fn contents() {
        let mut t = Table::new("trusted".into(), false, TableSource::Inline);
        t.add("10.0.0.0/33", None);
        assert_eq!(
            table_contents(&t, Service::Netaddr).as_deref(),
            Some("table \"trusted\": invalid network address \"10.0.0.0/33\"")
        );
        let mut r = Table::new("re".into(), false, TableSource::Inline);
        r.add("@bsdsx\\.fr$", None);
        assert_eq!(table_contents(&r, Service::Regex), None);
        r.add("(unclosed", None);
        assert!(table_contents(&r, Service::Regex).is_some());
    }
}
