//! Relay URLs (`relay host smtp://mx.example.org:587`), read as 6.8's `text_to_relayhost`:
//! a scheme (default `smtp://`), an optional `label@` naming the `auth` credentials, a host
//! name or `[address]`, an optional `:port`.

/// What the scheme asks of the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// `smtp://`: STARTTLS when offered.
    Smtp,
    /// `smtp+tls://`: STARTTLS required.
    SmtpTls,
    /// `smtp+notls://`: never TLS.
    SmtpNoTls,
    /// `lmtp://`: LHLO, no TLS, an explicit port.
    Lmtp,
    /// `smtps://`: TLS from the first byte.
    Smtps,
}

impl Scheme {
    /// The text 6.8 puts before `address=` in `mta connecting`.
    pub fn text(self) -> &'static str {
        match self {
            Scheme::Smtp => "smtp://",
            Scheme::SmtpTls => "smtp+tls://",
            Scheme::SmtpNoTls => "smtp+notls://",
            Scheme::Lmtp => "lmtp://",
            Scheme::Smtps => "smtps://",
        }
    }

    fn default_port(self) -> u16 {
        match self {
            Scheme::Smtps => 465,
            Scheme::Lmtp => 0,
            _ => 25,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RelayUrl {
    pub scheme: Scheme,
    /// The `auth` table key, if any.
    pub label: Option<String>,
    /// A host name, or `[address]` with its brackets.
    pub host: String,
    /// 0 for an LMTP URL without a port (refused at start).
    pub port: u16,
}

impl RelayUrl {
    pub fn parse(s: &str) -> Option<RelayUrl> {
        if s.len() >= 1024 {
            return None;
        }
        let schemes = [
            Scheme::Smtp,
            Scheme::SmtpTls,
            Scheme::SmtpNoTls,
            Scheme::Lmtp,
            Scheme::Smtps,
        ];
        let lower = s.to_ascii_lowercase();
        let (scheme, rest) = match schemes.iter().find(|sc| lower.starts_with(sc.text())) {
            Some(sc) => (*sc, &s[sc.text().len()..]),
            None if s.contains("://") => return None,
            None => (Scheme::Smtp, s),
        };
        let (label, rest) = match rest.split_once('@') {
            Some((l, r)) => (Some(l.to_string()), r),
            None => (None, rest),
        };
        let (host, after) = if rest.starts_with('[') {
            let end = rest.find(']')? + 1;
            (&rest[..end], &rest[end..])
        } else {
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-'))
                .unwrap_or(rest.len());
            (&rest[..end], &rest[end..])
        };
        if host.is_empty() || host.len() >= 256 {
            return None;
        }
        // 6.8: credentials only over TLS, so a label only with smtp+tls:// or smtps://.
        if label.is_some() && !matches!(scheme, Scheme::SmtpTls | Scheme::Smtps) {
            return None;
        }
        let port = match after.strip_prefix(':') {
            Some(p) => {
                let n: u32 = p.parse().ok()?;
                if n == 0 || n > 65535 {
                    return None;
                }
                n as u16
            }
            None if after.is_empty() => scheme.default_port(),
            None => return None,
        };
        Some(RelayUrl {
            scheme,
            label,
            host: host.to_string(),
            port,
        })
    }

    /// The address inside `[...]`, if the host is one.
    pub fn literal(&self) -> Option<std::net::IpAddr> {
        let inner = self.host.strip_prefix('[')?.strip_suffix(']')?;
        let inner = match inner.get(..5) {
            Some(p) if p.eq_ignore_ascii_case("ipv6:") => &inner[5..],
            _ => inner,
        };
        inner.parse().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_as_6_8_reads_them() {
        let u = RelayUrl::parse("smtp://central").unwrap();
        assert_eq!(
            (u.scheme, u.host.as_str(), u.port),
            (Scheme::Smtp, "central", 25)
        );
        let u = RelayUrl::parse("smtp+tls://lbl@mx.example.org:587").unwrap();
        assert_eq!(u.label.as_deref(), Some("lbl"));
        assert_eq!((u.scheme, u.port), (Scheme::SmtpTls, 587));
        assert_eq!(RelayUrl::parse("smtps://h").unwrap().port, 465);
        assert_eq!(RelayUrl::parse("lmtp://h").unwrap().port, 0);
        let u = RelayUrl::parse("[127.0.0.1]:2525").unwrap();
        assert_eq!(u.literal(), Some("127.0.0.1".parse().unwrap()));
        assert_eq!(
            RelayUrl::parse("smtp://[IPv6:::1]").unwrap().literal(),
            Some("::1".parse().unwrap())
        );
        assert_eq!(
            RelayUrl::parse("SMTP+NOTLS://h").unwrap().scheme,
            Scheme::SmtpNoTls
        );
        assert!(RelayUrl::parse("http://h").is_none());
        assert!(RelayUrl::parse("smtp://h:0").is_none());
        assert!(RelayUrl::parse("smtp://h:99999").is_none());
        assert!(RelayUrl::parse("smtp://h/x").is_none());
        assert!(RelayUrl::parse("smtp://").is_none());
        assert!(RelayUrl::parse("smtp://lbl@h").is_none());
        assert!(RelayUrl::parse("lbl@h").is_none());
        assert_eq!(
            RelayUrl::parse("smtps://lbl@h").unwrap().label.as_deref(),
            Some("lbl")
        );
    }
}
