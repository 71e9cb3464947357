//! The server side: one rustls `ServerConfig` per listener, built at start, and the choice of
//! certificate for each handshake (SNI).

use std::sync::Arc;

use rsmtpd_config::Config;
use rustls::crypto::CryptoProvider;
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{
    ClientHello, NoServerSessionStorage, ResolvesServerCert, WebPkiClientVerifier,
};
use rustls::sign::CertifiedKey;
use rustls::{ServerConfig, SupportedCipherSuite};
use tokio_rustls::TlsAcceptor;

use super::store::PkiStore;
use super::verify::{CertCheck, ClientCheck, RequestClientCert, CA_FILE};

/// What the TLS layer of the whole daemon shares: the pkis and the suites `smtp ciphers` allows.
#[derive(Debug)]
pub struct Tls {
    pub store: Arc<PkiStore>,
    suites: Vec<SupportedCipherSuite>,
}

/// What a listener's TLS depends on.
pub struct ListenerSpec<'a> {
    /// `pki NAME` on the listener.
    pub pki: Option<&'a str>,
    /// The listener's hostname (the server name of its sessions).
    pub hostname: &'a str,
    /// `ca NAME` on the listener.
    pub ca: Option<&'a str>,
    /// `verify`: ask for a client certificate and require it to check.
    pub verify: bool,
}

/// A listener's TLS, ready for handshakes.
#[derive(Clone)]
pub struct ListenerTls {
    pub acceptor: TlsAcceptor,
    /// The pki a handshake falls back to, None if no pki applies (`smtp_cert_init()` then
    /// fails: `reason=ca-failure`).
    pub default_pki: Option<String>,
    /// On `verify` listeners: the chain check after the handshake.
    pub check: Option<Arc<ClientCheck>>,
}

impl std::fmt::Debug for ListenerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenerTls")
            .field("default_pki", &self.default_pki)
            .field("verify", &self.check.is_some())
            .finish()
    }
}

impl ListenerTls {
    /// Checks the client's certificate after the handshake of a `verify` listener.
    pub fn check_client(&self, conn: &rustls::ServerConnection) -> Option<CertCheck> {
        let check = self.check.as_ref()?;
        Some(check.check(conn.peer_certificates()))
    }
}

impl Tls {
    /// Loads every pki and reads `smtp ciphers`; the lines to refuse the start with otherwise.
    pub fn new(conf: &Config) -> Result<Tls, Vec<String>> {
        Tls::with_store(conf, PkiStore::load(conf)?)
    }

    /// With the pkis loaded elsewhere (the engine's, from its parent).
    pub fn with_store(conf: &Config, store: PkiStore) -> Result<Tls, Vec<String>> {
        let mut suites: Vec<SupportedCipherSuite> = rustls::crypto::ring::DEFAULT_CIPHER_SUITES
            .iter()
            .filter(|s| s.tls13().is_some())
            .copied()
            .collect();
        // OpenSSL's server order for TLS 1.3: AES-256 first, then ChaCha20, then AES-128.
        suites.sort_by_key(|s| {
            super::names::SUITES
                .iter()
                .position(|n| n.suite == s.suite())
                .unwrap_or(usize::MAX)
        });
        match &conf.options.ciphers {
            Some(spec) => suites.extend(super::ciphers::tls12_suites(spec).map_err(|l| vec![l])?),
            None => {
                let mut tls12: Vec<SupportedCipherSuite> = rustls::crypto::ring::ALL_CIPHER_SUITES
                    .iter()
                    .filter(|s| s.tls13().is_none())
                    .copied()
                    .collect();
                tls12.sort_by_key(|s| {
                    super::names::SUITES
                        .iter()
                        .position(|n| n.suite == s.suite())
                        .unwrap_or(usize::MAX)
                });
                suites.extend(tls12);
            }
        }
        Ok(Tls {
            store: Arc::new(store),
            suites,
        })
    }

    /// The TLS of one listener.
    pub fn listener(&self, conf: &Config, spec: &ListenerSpec<'_>) -> Result<ListenerTls, String> {
        // smtp_cert_init(): the listener's pki, else the pki named after its hostname, else `*`.
        let default_pki = match spec.pki {
            Some(p) => self.store.get(p).map(|p| p.name.clone()),
            None => self
                .store
                .get(spec.hostname)
                .or_else(|| self.store.get("*"))
                .map(|p| p.name.clone()),
        };
        let check = spec.verify.then(|| {
            // smtp_cert_verify(): the listener's ca, else the ca named after its hostname, else
            // `*`, else the system bundle.
            let ca = match spec.ca {
                Some(name) => conf.ca(name),
                None => conf.ca(spec.hostname).or_else(|| conf.ca("*")),
            };
            Arc::new(match (spec.ca, ca) {
                (Some(_), None) => ClientCheck::no_ca(),
                (_, Some(ca)) => ClientCheck::from_file(ca.cert.as_deref().unwrap_or("")),
                (None, None) => ClientCheck::from_file(CA_FILE),
            })
        });
        let provider = CryptoProvider {
            cipher_suites: self.suites.clone(),
            ..rustls::crypto::ring::default_provider()
        };
        let verifier: Arc<dyn ClientCertVerifier> = if spec.verify {
            Arc::new(RequestClientCert::new())
        } else {
            WebPkiClientVerifier::no_client_auth()
        };
        let mut cfg = ServerConfig::builder_with_provider(Arc::new(provider))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| format!("smtpd: ssl_ctx_create: {}", e))?
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(Arc::new(SniResolver {
                store: self.store.clone(),
                default: default_pki.clone(),
            }));
        // SSL_OP_CIPHER_SERVER_PREFERENCE and SSL_SESS_CACHE_OFF, as OpenSMTPD.
        cfg.ignore_client_order = true;
        cfg.session_storage = Arc::new(NoServerSessionStorage {});
        // OpenSMTPD also sets SSL_OP_NO_TICKET; we differ on purpose (README, "TLS session
        // tickets"): a client that comes back within the ticket's life resumes without a
        // certificate or a signature, about half of a full handshake's CPU with an RSA key, as
        // Postfix allows by default. Stateless (the ticket holds the state, sealed with a key
        // that lives only in this process and rotates every 6 hours), and TLS 1.3 resumption
        // still makes a fresh (EC)DHE exchange, so forward secrecy is kept. Not on `verify`
        // listeners: each of their sessions checks a certificate the client presents again.
        match (spec.verify, rustls::crypto::ring::Ticketer::new()) {
            (false, Ok(ticketer)) => cfg.ticketer = ticketer,
            _ => cfg.send_tls13_tickets = 0,
        }
        Ok(ListenerTls {
            acceptor: TlsAcceptor::from(Arc::new(cfg)),
            default_pki,
            check,
        })
    }
}

/// Which certificate a handshake gets.
///
/// As 6.8's `smtp_sni_callback()`: the pki whose name is the server name the client asked for,
/// else the listener's own. Beyond 6.8, when no pki has that name, a pki whose certificate
/// covers it (subject alternative names, wildcards): the listener's own first, then the others
/// in the order declared, so that one `pki mail` with a certificate for several names serves
/// each of them.
#[derive(Debug)]
struct SniResolver {
    store: Arc<PkiStore>,
    default: Option<String>,
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let own = self.default.as_deref().and_then(|n| self.store.get(n));
        if let Some(sn) = hello.server_name() {
            if let Some(p) = self.store.get(sn) {
                return Some(p.current());
            }
            if let Some(p) = own.filter(|p| p.covers(sn)) {
                return Some(p.current());
            }
            if let Some(p) = self.store.iter().find(|p| p.covers(sn)) {
                return Some(p.current());
            }
        }
        own.map(|p| p.current())
    }
}
