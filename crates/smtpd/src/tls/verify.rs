//! Client certificates on `verify` listeners, checked as OpenSMTPD does: the handshake asks for
//! a certificate but completes without one or with any, and the chain is checked afterwards
//! against the listener's `ca` (`cert_verify()` in its lookup process). So a missing or
//! unverifiable certificate ends the session after `smtp tls ciphers=...` with
//! `reason=no-client-cert` or `reason=cert-invalid`, not with a handshake alert.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};

/// The CA bundle OpenSMTPD uses when no `ca` block applies (Debian's build).
pub const CA_FILE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// `enum cert_status`, as the log names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertCheck {
    Ok,
    NoCa,
    NoCert,
    Invalid,
}

impl CertCheck {
    /// The `reason=` of `smtp disconnected` when a `verify` listener refuses the session.
    pub fn reason(self) -> &'static str {
        match self {
            CertCheck::Ok => "cert-ok",
            CertCheck::NoCa => "no-ca",
            CertCheck::NoCert => "no-client-cert",
            CertCheck::Invalid => "cert-invalid",
        }
    }
}

/// The chain check of one listener: its trust anchors, loaded at start.
#[derive(Debug)]
pub struct ClientCheck {
    /// None: no `ca` applies and the fallback is not allowed (`CERT_NOCA`), or the anchors did
    /// not load (every certificate is then invalid, as with an unreadable CA file).
    verifier: Option<Arc<dyn ClientCertVerifier>>,
    no_ca: bool,
}

impl ClientCheck {
    /// Trust anchors from a PEM file.
    pub fn from_file(path: &str) -> ClientCheck {
        let mut roots = RootCertStore::empty();
        if let Ok(pem) = std::fs::read(path) {
            for c in CertificateDer::pem_slice_iter(&pem).filter_map(Result::ok) {
                let _ = roots.add(c);
            }
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::new(rustls::crypto::ring::default_provider()),
        )
        .allow_unauthenticated()
        .build()
        .ok();
        ClientCheck {
            verifier,
            no_ca: false,
        }
    }

    /// `CERT_NOCA`: the listener names no `ca` and none applies.
    pub fn no_ca() -> ClientCheck {
        ClientCheck {
            verifier: None,
            no_ca: true,
        }
    }

    /// Checks the chain the client presented during the handshake.
    pub fn check(&self, chain: Option<&[CertificateDer<'_>]>) -> CertCheck {
        let Some((ee, intermediates)) = chain.and_then(|c| c.split_first()) else {
            return CertCheck::NoCert;
        };
        if self.no_ca {
            return CertCheck::NoCa;
        }
        let Some(v) = &self.verifier else {
            return CertCheck::Invalid;
        };
        match v.verify_client_cert(ee, intermediates, UnixTime::now()) {
            Ok(_) => CertCheck::Ok,
            Err(_) => CertCheck::Invalid,
        }
    }
}

/// The handshake side of `verify`: ask for a certificate (`SSL_VERIFY_PEER` without a CA list,
/// as OpenSMTPD), accept the session without one or with any chain, and only check that the
/// client holds the key of the certificate it sent.
#[derive(Debug)]
pub struct RequestClientCert {
    algs: WebPkiSupportedAlgorithms,
}

impl RequestClientCert {
    pub fn new() -> RequestClientCert {
        RequestClientCert {
            algs: rustls::crypto::ring::default_provider().signature_verification_algorithms,
        }
    }
}

impl Default for RequestClientCert {
    fn default() -> Self {
        RequestClientCert::new()
    }
}

impl ClientCertVerifier for RequestClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        // Checked after the handshake by ClientCheck, so that the outcome is logged as
        // OpenSMTPD logs it.
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}
