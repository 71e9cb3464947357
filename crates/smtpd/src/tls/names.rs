//! What OpenSSL calls things, for the log lines and the Received header OpenSMTPD writes:
//! `SSL_get_version()`, `SSL_get_cipher_name()` and the bits of the cipher, and the error strings
//! OpenSMTPD logs as `io-error` reasons when a handshake fails.

use rustls::{AlertDescription, CipherSuite, PeerIncompatible, ProtocolVersion};

/// `SSL_get_version()`.
pub fn version(v: ProtocolVersion) -> String {
    match v {
        ProtocolVersion::TLSv1_3 => "TLSv1.3".into(),
        ProtocolVersion::TLSv1_2 => "TLSv1.2".into(),
        ProtocolVersion::TLSv1_1 => "TLSv1.1".into(),
        ProtocolVersion::TLSv1_0 => "TLSv1".into(),
        other => format!("{:?}", other),
    }
}

/// A suite rustls can negotiate, with OpenSSL's name for it and its secret bits.
pub struct SuiteName {
    pub suite: CipherSuite,
    pub openssl: &'static str,
    pub bits: u32,
    pub tls13: bool,
}

/// Every suite of the ring provider. OpenSSL names TLS 1.3 suites by their IANA names.
pub const SUITES: &[SuiteName] = &[
    SuiteName {
        suite: CipherSuite::TLS13_AES_256_GCM_SHA384,
        openssl: "TLS_AES_256_GCM_SHA384",
        bits: 256,
        tls13: true,
    },
    SuiteName {
        suite: CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
        openssl: "TLS_CHACHA20_POLY1305_SHA256",
        bits: 256,
        tls13: true,
    },
    SuiteName {
        suite: CipherSuite::TLS13_AES_128_GCM_SHA256,
        openssl: "TLS_AES_128_GCM_SHA256",
        bits: 128,
        tls13: true,
    },
    SuiteName {
        suite: CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        openssl: "ECDHE-ECDSA-AES256-GCM-SHA384",
        bits: 256,
        tls13: false,
    },
    SuiteName {
        suite: CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        openssl: "ECDHE-RSA-AES256-GCM-SHA384",
        bits: 256,
        tls13: false,
    },
    SuiteName {
        suite: CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        openssl: "ECDHE-ECDSA-CHACHA20-POLY1305",
        bits: 256,
        tls13: false,
    },
    SuiteName {
        suite: CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        openssl: "ECDHE-RSA-CHACHA20-POLY1305",
        bits: 256,
        tls13: false,
    },
    SuiteName {
        suite: CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        openssl: "ECDHE-ECDSA-AES128-GCM-SHA256",
        bits: 128,
        tls13: false,
    },
    SuiteName {
        suite: CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        openssl: "ECDHE-RSA-AES128-GCM-SHA256",
        bits: 128,
        tls13: false,
    },
];

/// OpenSSL's name and bits of a negotiated suite.
pub fn suite(s: CipherSuite) -> (String, u32) {
    match SUITES.iter().find(|n| n.suite == s) {
        Some(n) => (n.openssl.to_string(), n.bits),
        None => (format!("{:?}", s), 0),
    }
}

/// The OpenSSL error string OpenSMTPD would log for a failed handshake, as
/// `smtp disconnected reason="io-error: ..."`. Only the common causes have an OpenSSL
/// counterpart; the others are rustls' own words.
pub fn handshake_error(e: &std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        return "error:0A000126:SSL routines::unexpected eof while reading".into();
    }
    let Some(tls) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    else {
        return rsmtpd_config::lexer::strerror(e);
    };
    match tls {
        // Plaintext where a ClientHello should be (a client that ignored the 220, or a plain
        // client on an smtps port) is not a TLS record.
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
            "error:0A00010B:SSL routines::wrong version number".into()
        }
        rustls::Error::PeerIncompatible(p) => match p {
            PeerIncompatible::NoCipherSuitesInCommon => {
                "error:0A0000C1:SSL routines::no shared cipher".into()
            }
            PeerIncompatible::SupportedVersionsExtensionRequired
            | PeerIncompatible::Tls12NotOffered
            | PeerIncompatible::Tls12NotOfferedOrEnabled
            | PeerIncompatible::Tls13RequiredForQuic => {
                "error:0A000102:SSL routines::unsupported protocol".into()
            }
            PeerIncompatible::NoKxGroupsInCommon | PeerIncompatible::NoEcPointFormatsInCommon => {
                "error:0A000065:SSL routines::no suitable key share".into()
            }
            PeerIncompatible::NoSignatureSchemesInCommon => {
                "error:0A000076:SSL routines::no suitable signature algorithm".into()
            }
            other => format!("{:?}", other),
        },
        rustls::Error::AlertReceived(a) => alert(*a),
        other => other.to_string(),
    }
}

/// OpenSSL's text for an alert the client sent (`SSL_R_SSLV3_ALERT_*` / `SSL_R_TLSV1_ALERT_*`).
fn alert(a: AlertDescription) -> String {
    let (code, text) = match a {
        AlertDescription::BadCertificate => ("0A000412", "sslv3 alert bad certificate"),
        AlertDescription::UnsupportedCertificate => {
            ("0A000413", "sslv3 alert unsupported certificate")
        }
        AlertDescription::CertificateRevoked => ("0A000414", "sslv3 alert certificate revoked"),
        AlertDescription::CertificateExpired => ("0A000415", "sslv3 alert certificate expired"),
        AlertDescription::CertificateUnknown => ("0A000416", "sslv3 alert certificate unknown"),
        AlertDescription::HandshakeFailure => ("0A000410", "sslv3 alert handshake failure"),
        AlertDescription::UnknownCA => ("0A000418", "tlsv1 alert unknown ca"),
        AlertDescription::AccessDenied => ("0A000419", "tlsv1 alert access denied"),
        AlertDescription::DecodeError => ("0A00041A", "tlsv1 alert decode error"),
        AlertDescription::DecryptError => ("0A00041B", "tlsv1 alert decrypt error"),
        AlertDescription::ProtocolVersion => ("0A000046", "tlsv1 alert protocol version"),
        AlertDescription::InternalError => ("0A000438", "tlsv1 alert internal error"),
        AlertDescription::UnrecognisedName => ("0A000458", "tlsv1 unrecognized name"),
        other => return format!("alert {:?}", other),
    };
    format!("error:{}:SSL routines::{}", code, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_as_openssl() {
        assert_eq!(version(ProtocolVersion::TLSv1_3), "TLSv1.3");
        assert_eq!(
            suite(CipherSuite::TLS13_AES_256_GCM_SHA384),
            ("TLS_AES_256_GCM_SHA384".to_string(), 256)
        );
        assert_eq!(
            suite(CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256),
            ("ECDHE-RSA-AES128-GCM-SHA256".to_string(), 128)
        );
    }

    #[test]
    fn eof_and_plaintext() {
        let eof = std::io::Error::from(std::io::ErrorKind::UnexpectedEof);
        assert!(handshake_error(&eof).ends_with("unexpected eof while reading"));
        let plain = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType),
        );
        assert!(handshake_error(&plain).ends_with("wrong version number"));
    }
}
