//! Outbound TLS, as 6.8's mta does it: the handshake accepts any certificate, then the chain
//! and the MX name are checked (`mta_cert_verify`), so that the log says
//! `mta tls ciphers=...` and `mta server-cert-check result="success|failure"` in 6.8's order.
//! Whether a failed check ends the session is the relay's choice: it does for `smtp+tls://`
//! and `smtps://` (and `tls`) unless `tls no-verify` (`SSL certificate check failed`), it does
//! not for opportunistic STARTTLS (`smtp://`), which is only logged, as in 6.8.
//!
//! Trust anchors: the relay's `ca`, else the `ca` named after the HELO name, else the system
//! bundle (`cert_verify()` with its fallback). Client certificate: the relay's `pki`, else the
//! pki named after the HELO name, if any (`mta_cert_init()`).

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use rustls::client::danger::ServerCertVerifier;
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{ServerName, UnixTime};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::tls::client::ServerCheck;
use crate::tls::store::Pki;

/// What one relay's TLS is made of, shared by its sessions.
pub struct TlsSetup {
    pub connector: TlsConnector,
    /// None when the anchors did not load (no certificate then verifies).
    verifier: Option<Arc<WebPkiServerVerifier>>,
    /// A failed check ends the session (`RELAY_TLS_VERIFY`).
    pub verify: bool,
}

/// What a setup is built from: the pki's name, the anchors file, whether it verifies.
type SetupKey = (Option<String>, String, bool);

/// Built TLS setups, so that a CA bundle is read once.
#[derive(Default)]
pub struct TlsCache {
    built: Mutex<HashMap<SetupKey, Arc<TlsSetup>>>,
}

impl TlsCache {
    pub fn get(&self, pki: Option<Arc<Pki>>, anchors: &str, verify: bool) -> Arc<TlsSetup> {
        let key = (
            pki.as_ref().map(|p| p.name.clone()),
            anchors.to_string(),
            verify,
        );
        if let Some(s) = self.built.lock().ok().and_then(|m| m.get(&key).cloned()) {
            return s;
        }
        let roots = Arc::new(crate::tls::client::anchors(anchors));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = WebPkiServerVerifier::builder_with_provider(roots, provider)
            .build()
            .ok();
        let config = crate::tls::client::config(ServerCheck::None, pki);
        let setup = Arc::new(TlsSetup {
            connector: TlsConnector::from(Arc::new(config)),
            verifier,
            verify,
        });
        if let Ok(mut m) = self.built.lock() {
            m.insert(key, setup.clone());
        }
        setup
    }
}

impl TlsSetup {
    /// `mta_cert_verify_cb`: the chain against the anchors and the name against the MX name.
    /// None: the server sent no certificate.
    pub fn check(&self, conn: &rustls::ClientConnection, name: &str) -> Option<bool> {
        let chain = conn.peer_certificates().filter(|c| !c.is_empty())?;
        let (end_entity, intermediates) = chain.split_first()?;
        let Some(verifier) = &self.verifier else {
            return Some(false);
        };
        let Some(server_name) = server_name(name) else {
            return Some(false);
        };
        Some(
            verifier
                .verify_server_cert(
                    end_entity,
                    intermediates,
                    &server_name,
                    &[],
                    UnixTime::now(),
                )
                .is_ok(),
        )
    }
}

/// The name a certificate must carry: a host name, or the address of a `[literal]`.
pub fn server_name(name: &str) -> Option<ServerName<'static>> {
    let inner = name
        .strip_prefix('[')
        .and_then(|n| n.strip_suffix(']'))
        .unwrap_or(name);
    let inner = match inner.get(..5) {
        Some(p) if p.eq_ignore_ascii_case("ipv6:") => inner.get(5..).unwrap_or(""),
        _ => inner,
    };
    if let Ok(ip) = inner.parse::<IpAddr>() {
        return Some(ServerName::IpAddress(ip.into()));
    }
    ServerName::try_from(inner.trim_end_matches('.').to_string()).ok()
}

/// `ssl_to_text`: `TLSv1.3:TLS_AES_256_GCM_SHA384:256`.
pub fn ciphers_text(conn: &rustls::ClientConnection) -> String {
    let version = conn
        .protocol_version()
        .map(crate::tls::names::version)
        .unwrap_or_default();
    let (cipher, bits) = conn
        .negotiated_cipher_suite()
        .map(|s| crate::tls::names::suite(s.suite()))
        .unwrap_or_default();
    format!("{version}:{cipher}:{bits}")
}

/// The connection of one outbound session: plaintext, then maybe TLS.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    /// During a handshake, or after a failed one.
    Gone,
}

impl Stream {
    /// The client side of a handshake (STARTTLS, or the start of smtps). The name sent as SNI
    /// is the MX name when it is a host name (none for an address).
    pub async fn start_tls(
        &mut self,
        setup: &TlsSetup,
        name: &str,
        addr: IpAddr,
    ) -> io::Result<()> {
        let Stream::Plain(s) = std::mem::replace(self, Stream::Gone) else {
            return Err(io::Error::other("TLS already started"));
        };
        let sni = server_name(name).unwrap_or(ServerName::IpAddress(addr.into()));
        let tls = setup.connector.connect(sni, s).await?;
        *self = Stream::Tls(Box::new(tls));
        Ok(())
    }

    pub fn tls(&self) -> Option<&rustls::ClientConnection> {
        match self {
            Stream::Tls(t) => Some(t.get_ref().1),
            _ => None,
        }
    }

    pub fn local_ip(&self) -> Option<IpAddr> {
        match self {
            Stream::Plain(s) => s.local_addr().ok().map(|a| a.ip()),
            Stream::Tls(t) => t.get_ref().0.local_addr().ok().map(|a| a.ip()),
            Stream::Gone => None,
        }
    }
}

fn gone() -> io::Error {
    io::Error::from(io::ErrorKind::NotConnected)
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(t) => Pin::new(t.as_mut()).poll_read(cx, buf),
            Stream::Gone => Poll::Ready(Err(gone())),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(t) => Pin::new(t.as_mut()).poll_write(cx, buf),
            Stream::Gone => Poll::Ready(Err(gone())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(t) => Pin::new(t.as_mut()).poll_flush(cx),
            Stream::Gone => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(t) => Pin::new(t.as_mut()).poll_shutdown(cx),
            Stream::Gone => Poll::Ready(Ok(())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_to_check() {
        assert!(matches!(
            server_name("mx.example.org."),
            Some(ServerName::DnsName(_))
        ));
        assert!(matches!(
            server_name("[127.0.0.1]"),
            Some(ServerName::IpAddress(_))
        ));
        assert!(matches!(
            server_name("[IPv6:::1]"),
            Some(ServerName::IpAddress(_))
        ));
        assert!(server_name("[ab\u{20ac}cd]").is_none());
    }
}
