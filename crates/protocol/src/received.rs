//! The `Received:` header OpenSMTPD prepends (`smtp_message_begin`), and the
//! connection facts it is built from.

use std::fmt;
use std::net::IpAddr;

use crate::address::Mailaddr;

/// The client's address as OpenSMTPD prints it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerAddr {
    Inet(IpAddr),
    /// Unix socket (local enqueue).
    Local,
}

impl PeerAddr {
    /// `ss_to_text`: `1.2.3.4`, `[::1]` (IPv6 comes bracketed already),
    /// `local`. This is the `address=` of the `smtp connected` log line and
    /// the parameter of the connect filter phase.
    pub fn text(&self) -> String {
        match self {
            PeerAddr::Inet(IpAddr::V4(a)) => a.to_string(),
            PeerAddr::Inet(IpAddr::V6(a)) => format!("[{a}]"),
            PeerAddr::Local => "local".to_string(),
        }
    }

    /// What HELO/EHLO replies and `Received:` show: always in brackets,
    /// because smtpd adds them to everything but IPv6, which has them.
    pub fn bracketed(&self) -> String {
        match self {
            PeerAddr::Inet(IpAddr::V6(_)) => self.text(),
            _ => format!("[{}]", self.text()),
        }
    }
}

impl fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text())
    }
}

/// Outcome of the client certificate check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerCert {
    /// No certificate presented.
    None,
    /// Presented and verified.
    Verified,
    /// Presented, not verified.
    Unverified,
}

/// What the TLS layer reports after the handshake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsInfo {
    /// `SSL_get_version`, e.g. `TLSv1.3`.
    pub version: String,
    /// `SSL_get_cipher_name`, e.g. `TLS_AES_256_GCM_SHA384`.
    pub cipher: String,
    pub bits: u32,
    pub peer_cert: PeerCert,
}

impl TlsInfo {
    /// `ssl_to_text`: `TLSv1.3:TLS_AES_256_GCM_SHA384:256` for the
    /// `smtp tls ciphers=` log line.
    pub fn ciphers_text(&self) -> String {
        format!("{}:{}:{}", self.version, self.cipher, self.bits)
    }
}

/// Inputs of [`received_header`].
#[derive(Clone, Debug)]
pub struct ReceivedInfo<'a> {
    /// HELO/EHLO argument, empty if none.
    pub helo: &'a str,
    /// Reverse DNS name or `<unknown>`.
    pub rdns: &'a str,
    pub peer: &'a PeerAddr,
    /// Listener `mask-src`: the whole `from` clause is left out.
    pub mask_source: bool,
    /// The session's server name.
    pub smtpname: &'a str,
    pub esmtp: bool,
    pub tls: Option<&'a TlsInfo>,
    pub authenticated: bool,
    /// Listener `received-auth` (only shown on TLS sessions).
    pub received_auth: bool,
    /// Name given in AUTH, if any (OpenSMTPD shows it even if AUTH failed).
    pub username: Option<&'a str>,
    pub msgid: u32,
    /// The recipient, only when the transaction has exactly one.
    pub rcpt: Option<&'a Mailaddr>,
    /// `Www, D Mon YYYY HH:MM:SS +HHMM (TZ)` from the caller's clock.
    pub date: &'a str,
}

/// The header, LF line endings, TAB continuations, final LF included.
pub fn received_header(i: &ReceivedInfo<'_>) -> String {
    let mut s = String::from("Received: ");
    if !i.mask_source {
        s.push_str(&format!(
            "from {} ({} {})",
            i.helo,
            i.rdns,
            i.peer.bracketed()
        ));
    }
    s.push_str(&format!(
        "\n\tby {} (OpenSMTPD) with {}SMTP{}{} id {:08x}",
        i.smtpname,
        if i.esmtp { "E" } else { "" },
        if i.tls.is_some() { "S" } else { "" },
        if i.authenticated { "A" } else { "" },
        i.msgid
    ));
    if let Some(tls) = i.tls {
        let verify = match tls.peer_cert {
            PeerCert::Verified => "YES",
            PeerCert::Unverified => "FAIL",
            PeerCert::None => "NO",
        };
        s.push_str(&format!(
            " ({}:{}:{}:{})",
            tls.version, tls.cipher, tls.bits, verify
        ));
        if i.received_auth {
            match i.username.filter(|u| !u.is_empty()) {
                Some(u) => s.push_str(&format!(" auth=yes user={u}")),
                None => s.push_str(" auth=no"),
            }
        }
    }
    if let Some(r) = i.rcpt {
        s.push_str(&format!("\n\tfor <{}@{}>", r.user, r.domain));
    }
    s.push_str(&format!(";\n\t{}\n", i.date));
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const DATE: &str = "Wed, 25 Nov 2026 11:36:08 +0000 (UTC)";

    fn base<'a>(peer: &'a PeerAddr, rcpt: Option<&'a Mailaddr>) -> ReceivedInfo<'a> {
        ReceivedInfo {
            helo: "client.test",
            rdns: "localhost",
            peer,
            mask_source: false,
            smtpname: "mx.test",
            esmtp: true,
            tls: None,
            authenticated: false,
            received_auth: false,
            username: None,
            msgid: 0x5f8b4979,
            rcpt,
            date: DATE,
        }
    }

    #[test]
    fn layouts() {
        let v4 = PeerAddr::Inet(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)));
        let rcpt = Mailaddr::new("alice", "localhost");
        assert_eq!(
            received_header(&base(&v4, Some(&rcpt))),
            format!("Received: from client.test (localhost [127.0.0.1])\n\tby mx.test (OpenSMTPD) with ESMTP id 5f8b4979\n\tfor <alice@localhost>;\n\t{DATE}\n")
        );
        // ✔ spec: no `for` line with several recipients.
        assert_eq!(
            received_header(&base(&v4, None)),
            format!("Received: from client.test (localhost [127.0.0.1])\n\tby mx.test (OpenSMTPD) with ESMTP id 5f8b4979;\n\t{DATE}\n")
        );
        let mut masked = base(&v4, None);
        masked.mask_source = true;
        masked.esmtp = false;
        assert_eq!(
            received_header(&masked),
            format!("Received: \n\tby mx.test (OpenSMTPD) with SMTP id 5f8b4979;\n\t{DATE}\n")
        );
        let v6 = PeerAddr::Inet("::1".parse().expect("v6"));
        let tls = TlsInfo {
            version: "TLSv1.3".into(),
            cipher: "TLS_AES_256_GCM_SHA384".into(),
            bits: 256,
            peer_cert: PeerCert::None,
        };
        let mut t = base(&v6, None);
        t.tls = Some(&tls);
        t.authenticated = true;
        t.received_auth = true;
        t.username = Some("bob");
        assert_eq!(
            received_header(&t),
            format!("Received: from client.test (localhost [::1])\n\tby mx.test (OpenSMTPD) with ESMTPSA id 5f8b4979 (TLSv1.3:TLS_AES_256_GCM_SHA384:256:NO) auth=yes user=bob;\n\t{DATE}\n")
        );
        t.username = None;
        t.authenticated = false;
        assert!(received_header(&t)
            .contains("with ESMTPS id 5f8b4979 (TLSv1.3:TLS_AES_256_GCM_SHA384:256:NO) auth=no;"));
    }

    #[test]
    fn peer_text() {
        assert_eq!(PeerAddr::Local.text(), "local");
        assert_eq!(PeerAddr::Local.bracketed(), "[local]");
        let v6 = PeerAddr::Inet("2001:db8:666::1".parse().expect("v6"));
        assert_eq!(v6.bracketed(), "[2001:db8:666::1]"); // ✔ spec
    }
}
