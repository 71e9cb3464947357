//! The certificates and keys of every `pki` block, loaded at start and reloaded when their files
//! change on disk (certificates that renew themselves: an ACME client such as certbot replaces
//! the files, and the next handshake serves the new chain without a restart).
//!
//! A pki's current certificate and key sit behind an `ArcSwap`: a handshake takes the `Arc` of
//! the moment, so sessions already under way keep what they negotiated, and a reload is one
//! atomic store. A new file that does not load (half written, key and certificate not matching
//! yet, bad permissions) is logged and the previous pair stays in service.

use std::os::unix::fs::MetadataExt;
use std::sync::{Arc, Mutex};

use crate::privsep::proto::PkiCert;

use arc_swap::ArcSwap;
use rsmtpd_config::Config;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::sign::CertifiedKey;
use zeroize::Zeroize;

use super::key::PkiKey;

/// What tells us a file changed: enough of its `stat` that an in-place write, a rename over it
/// and a symlink moved to another file (certbot's `live/` links) all show.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: i64,
    mtime_ns: i64,
    ctime: i64,
    ctime_ns: i64,
}

fn stamp(path: &str) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    Some(Stamp {
        dev: m.dev(),
        ino: m.ino(),
        size: m.size(),
        mtime: m.mtime(),
        mtime_ns: m.mtime_nsec(),
        ctime: m.ctime(),
        ctime_ns: m.ctime_nsec(),
    })
}

/// One `pki NAME cert FILE key FILE`.
#[derive(Debug)]
pub struct Pki {
    pub name: String,
    pub cert_path: String,
    pub key_path: String,
    current: ArcSwap<CertifiedKey>,
    watch: Mutex<Watch>,
    /// The pairs loaded, newest last, each with its generation: the last two, so that a
    /// handshake that took the certificate just before a reload is signed by its own key when
    /// signing is asked of another process (crate::parent).
    generations: Mutex<Vec<(u64, Arc<CertifiedKey>)>>,
}

#[derive(Debug)]
struct Watch {
    /// The files' stamps when the pair in service was loaded (or a load last failed).
    loaded: (Option<Stamp>, Option<Stamp>),
    /// Stamps seen changed at the previous poll: a reload waits until they hold still for one
    /// poll, so that a certificate and key written one after the other load together.
    settling: Option<(Option<Stamp>, Option<Stamp>)>,
}

impl Pki {
    fn new(name: &str, cert: &str, key: &str, ck: CertifiedKey, generation: u64) -> Pki {
        let ck = Arc::new(ck);
        Pki {
            name: name.to_string(),
            cert_path: cert.to_string(),
            key_path: key.to_string(),
            current: ArcSwap::new(ck.clone()),
            watch: Mutex::new(Watch {
                loaded: (stamp(cert), stamp(key)),
                settling: None,
            }),
            generations: Mutex::new(vec![(generation, ck)]),
        }
    }

    /// Puts a new pair in service.
    fn install(&self, ck: Arc<CertifiedKey>, generation: Option<u64>) {
        let Ok(mut g) = self.generations.lock() else {
            return;
        };
        let generation = generation.unwrap_or_else(|| g.last().map_or(1, |(n, _)| n + 1));
        g.push((generation, ck.clone()));
        if g.len() > 2 {
            g.remove(0);
        }
        self.current.store(ck);
    }

    /// The key of that generation, if it is still one of the last two (the `ca` side).
    pub fn key_of(&self, generation: u64) -> Option<Arc<dyn rustls::sign::SigningKey>> {
        let g = self.generations.lock().ok()?;
        g.iter()
            .find(|(n, _)| *n == generation)
            .map(|(_, ck)| ck.key.clone())
    }

    /// The certificate in service and what a handshake must know of its key, for an engine
    /// that signs through us.
    pub fn export(&self) -> Option<PkiCert> {
        let g = self.generations.lock().ok()?;
        let (generation, ck) = g.last()?;
        let key = &ck.key;
        Some(PkiCert {
            name: self.name.clone(),
            cert_path: self.cert_path.clone(),
            key_path: self.key_path.clone(),
            generation: *generation,
            chain: ck.cert.iter().map(|c| c.as_ref().to_vec()).collect(),
            algorithm: u8::from(key.algorithm()),
            schemes: super::key::schemes_of(key.as_ref())
                .into_iter()
                .map(u16::from)
                .collect(),
            spki: key.public_key().map(|k| k.as_ref().to_vec()),
        })
    }

    /// The certificate chain and key in service now.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current.load_full()
    }

    /// Whether the certificate in service is valid for `name` (its subject alternative names,
    /// wildcards included, as a TLS client checks them).
    pub fn covers(&self, name: &str) -> bool {
        let Ok(sn) = ServerName::try_from(name) else {
            return false;
        };
        let ck = self.current.load();
        let Some(ee) = ck.cert.first() else {
            return false;
        };
        match webpki::EndEntityCert::try_from(ee) {
            Ok(cert) => cert.verify_is_valid_for_subject_name(&sn).is_ok(),
            Err(_) => false,
        }
    }
}

/// Every pki of the configuration, in the order declared.
#[derive(Debug, Default)]
pub struct PkiStore {
    pkis: Vec<Arc<Pki>>,
}

impl PkiStore {
    /// Loads every pki, refusing the first that does not load with the lines OpenSMTPD prints
    /// (and, for a key that does not match its certificate, which 6.8 only finds at the first
    /// handshake, the names of both files).
    pub fn load(conf: &Config) -> Result<PkiStore, Vec<String>> {
        let mut pkis = Vec::new();
        for p in &conf.pkis {
            let (Some(cert), Some(key)) = (&p.cert, &p.key) else {
                // pki::check() refused these already.
                continue;
            };
            let ck = load_pair(&p.name, cert, key)?;
            pkis.push(Arc::new(Pki::new(&p.name, cert, key, ck, 1)));
        }
        Ok(PkiStore { pkis })
    }

    /// The store of an engine: the certificates its parent loaded, whose keys stay there.
    pub fn from_remote(certs: &[PkiCert]) -> PkiStore {
        let pkis = certs
            .iter()
            .map(|c| {
                Arc::new(Pki::new(
                    &c.name,
                    &c.cert_path,
                    &c.key_path,
                    remote_pair(c),
                    c.generation,
                ))
            })
            .collect();
        PkiStore { pkis }
    }

    /// Puts in service a pair the parent reloaded.
    pub fn install_remote(&self, c: &PkiCert) {
        if let Some(p) = self.get(&c.name) {
            p.install(Arc::new(remote_pair(c)), Some(c.generation));
        }
    }

    /// The pki of that name (names are lower case in the configuration).
    pub fn get(&self, name: &str) -> Option<&Arc<Pki>> {
        self.pkis.iter().find(|p| p.name.eq_ignore_ascii_case(name))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Pki>> {
        self.pkis.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.pkis.is_empty()
    }

    /// Looks at every pki's files; loads those that changed and held still since the previous
    /// call. Returns the log lines to write (reloads and failures).
    pub fn poll_changes(&self) -> Vec<String> {
        self.poll_reloads().0
    }

    /// [`PkiStore::poll_changes`], with the pkis it put a new pair in service for.
    pub fn poll_reloads(&self) -> (Vec<String>, Vec<Arc<Pki>>) {
        let mut lines = Vec::new();
        let mut reloaded = Vec::new();
        for p in &self.pkis {
            let now = (stamp(&p.cert_path), stamp(&p.key_path));
            let Ok(mut w) = p.watch.lock() else { continue };
            if now == w.loaded {
                w.settling = None;
                continue;
            }
            if w.settling != Some(now) {
                w.settling = Some(now);
                continue;
            }
            w.settling = None;
            w.loaded = now;
            drop(w);
            let (l, ok) = reload(p);
            lines.extend(l);
            if ok {
                reloaded.push(p.clone());
            }
        }
        (lines, reloaded)
    }

    /// Reloads every pki now (`smtpctl update pki`), whether its files changed or not.
    pub fn reload_all(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for p in &self.pkis {
            if let Ok(mut w) = p.watch.lock() {
                w.loaded = (stamp(&p.cert_path), stamp(&p.key_path));
                w.settling = None;
            }
            lines.extend(reload(p).0);
        }
        lines
    }
}

/// A certificate whose key is in the parent.
fn remote_pair(c: &PkiCert) -> CertifiedKey {
    let chain = c
        .chain
        .iter()
        .map(|d| CertificateDer::from(d.clone()))
        .collect();
    let key = PkiKey::remote(
        &c.name,
        super::key::Remote {
            generation: c.generation,
            algorithm: rustls::SignatureAlgorithm::from(c.algorithm),
            schemes: c
                .schemes
                .iter()
                .map(|s| rustls::SignatureScheme::from(*s))
                .collect(),
            spki: c.spki.clone(),
        },
    );
    CertifiedKey::new(chain, Arc::new(key))
}

/// The lines to log, and whether a new pair is in service.
fn reload(p: &Pki) -> (Vec<String>, bool) {
    match load_pair(&p.name, &p.cert_path, &p.key_path) {
        Ok(ck) => {
            p.install(Arc::new(ck), None);
            (
                vec![format!(
                    "info: pki {}: reloaded certificate {} and key {}",
                    p.name, p.cert_path, p.key_path
                )],
                true,
            )
        }
        Err(mut lines) => {
            lines.push(format!(
                "warn: pki {}: new certificate or key not loaded, the previous one stays in service",
                p.name
            ));
            (lines, false)
        }
    }
}

/// Loads and checks one certificate chain and its key, with OpenSMTPD's checks on the files
/// (owner root, no permission beyond rwxr-xr-x for the certificate and rwxr----- for the key).
pub fn load_pair(name: &str, cert_path: &str, key_path: &str) -> Result<CertifiedKey, Vec<String>> {
    let cert_pem = crate::sys::pki::load_file(cert_path, 0o755).map_err(|mut l| {
        l.push("smtpd: load_pki_tree: failed to load certificate file".into());
        l
    })?;
    let mut key_pem = crate::sys::pki::load_file(key_path, 0o740).map_err(|mut l| {
        l.push("smtpd: load_pki_keys: failed to load key file".into());
        l
    })?;
    let pair = pair_from_pem(name, cert_path, &cert_pem, key_path, &key_pem);
    key_pem.zeroize();
    pair
}

/// The chain and key of a pki from the files' contents (the paths are for the lines only),
/// matched with each other. The part of [`load_pair`] that reads no file (fuzzed).
pub fn pair_from_pem(
    name: &str,
    cert_path: &str,
    cert_pem: &[u8],
    key_path: &str,
    key_pem: &[u8],
) -> Result<CertifiedKey, Vec<String>> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .filter_map(Result::ok)
        .collect();
    if chain.is_empty() {
        return Err(vec![
            format!("warn:  {}: no certificate found", cert_path),
            "smtpd: ssl_ctx_create: invalid certificate chain".into(),
        ]);
    }
    let refused = |why: &str| {
        vec![
            format!("warn:  {}: {}", key_path, why),
            "smtpd: load_pki_keys: failed to load key file".to_string(),
        ]
    };
    let der = PrivateKeyDer::from_pem_slice(key_pem).map_err(|_| refused("no private key"))?;
    let key = PkiKey::local(name, der).map_err(|e| refused(&e.to_string()))?;
    let ck = CertifiedKey::new(chain, Arc::new(key));
    match ck.keys_match() {
        Ok(()) => Ok(ck),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok(ck),
        Err(_) => Err(vec![
            format!(
                "warn:  {}: key does not match the certificate {} (pki {})",
                key_path, cert_path, name
            ),
            "ssl_ctx_create: error:05800074:x509 certificate routines::key values mismatch".into(),
            "smtpd: ssl_ctx_create: invalid private key".into(),
        ]),
    }
}
