//! The client side, for relaying with STARTTLS or smtps: a rustls `ClientConfig` that trusts a
//! `ca` file (or the system bundle), presents a pki's certificate if asked, or skips the check
//! (`tls no-verify`).

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::ResolvesClientCert;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::store::Pki;

/// How a relay checks the server's certificate.
pub enum ServerCheck<'a> {
    /// Against the certificates of this PEM file (a `ca` block, or [`super::verify::CA_FILE`]).
    Anchors(&'a str),
    /// `tls no-verify`: any certificate (the result is still logged by the caller).
    None,
}

/// A client configuration. `pki`: the relay's `pki NAME`, sent when the server asks for a
/// client certificate (its key signs through the same [`super::key::PkiKey`]).
pub fn config(check: ServerCheck<'_>, pki: Option<Arc<Pki>>) -> ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .unwrap_or_else(|_| {
            // The ring provider supports both versions; this arm is unreachable in practice.
            ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .expect("the ring provider has safe defaults")
        });
    let builder = match check {
        ServerCheck::Anchors(path) => builder.with_root_certificates(anchors(path)),
        ServerCheck::None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyServerCert {
                algs: provider.signature_verification_algorithms,
            })),
    };
    match pki {
        Some(p) => builder.with_client_cert_resolver(Arc::new(PkiClientCert(p))),
        None => builder.with_no_client_auth(),
    }
}

/// The certificates of a PEM file as trust anchors (those that do not parse are skipped).
pub fn anchors(path: &str) -> RootCertStore {
    match std::fs::read(path) {
        Ok(pem) => anchors_from_pem(&pem),
        Err(_) => RootCertStore::empty(),
    }
}

/// The certificates of a ca file's contents as trust anchors (fuzzed).
pub fn anchors_from_pem(pem: &[u8]) -> RootCertStore {
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(pem).filter_map(Result::ok) {
        let _ = roots.add(c);
    }
    roots
}

/// A name to check the server's certificate against.
pub fn server_name(host: &str) -> Option<ServerName<'static>> {
    ServerName::try_from(host.to_string()).ok()
}

#[derive(Debug)]
struct PkiClientCert(Arc<Pki>);

impl ResolvesClientCert for PkiClientCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.0.current())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

#[derive(Debug)]
struct AnyServerCert {
    algs: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
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
