//! The private key of a pki, behind rustls' `SigningKey` trait.
//!
//! Handshakes never touch the key itself: they ask a [`PkiKey`] to sign. Without root it signs
//! in this process (`Local`); the engine of a split daemon has no key at all (`Remote`): the
//! signature is asked of the root parent, which holds the keys as OpenSMTPD's `ca` process
//! does, over a socket (crate::privsep). Sessions and configs do not know the difference.

use std::fmt;
use std::sync::Arc;

use rustls::pki_types::{PrivateKeyDer, SubjectPublicKeyInfoDer};
use rustls::sign::{Signer, SigningKey};
use rustls::{SignatureAlgorithm, SignatureScheme};

/// Where signatures are made. `Local` holds the key in this process.
#[derive(Clone)]
pub enum Sign {
    Local(Arc<dyn SigningKey>),
    /// The key stays in the parent; what the handshake must know of it came with the
    /// certificate.
    Remote(Arc<Remote>),
}

/// What the engine knows of a key held by the parent.
#[derive(Debug)]
pub struct Remote {
    pub generation: u64,
    pub algorithm: SignatureAlgorithm,
    /// In the key's order of preference.
    pub schemes: Vec<SignatureScheme>,
    pub spki: Option<Vec<u8>>,
}

/// A pki's private key, as the handshakes see it.
#[derive(Clone)]
pub struct PkiKey {
    /// The pki's name (the key a separate signing process would look it up by).
    pub pki: String,
    backend: Sign,
}

impl fmt::Debug for PkiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key material.
        f.debug_struct("PkiKey").field("pki", &self.pki).finish()
    }
}

impl PkiKey {
    /// Parses a private key (PKCS#8, PKCS#1 RSA or SEC1 EC, DER) for signing in this process.
    pub fn local(pki: &str, der: PrivateKeyDer<'_>) -> Result<PkiKey, rustls::Error> {
        let key = rustls::crypto::ring::sign::any_supported_type(&der.clone_key())?;
        Ok(PkiKey {
            pki: pki.to_string(),
            backend: Sign::Local(key),
        })
    }

    /// A key the parent holds (the engine of a split daemon).
    pub fn remote(pki: &str, remote: Remote) -> PkiKey {
        PkiKey {
            pki: pki.to_string(),
            backend: Sign::Remote(Arc::new(remote)),
        }
    }

    /// The key itself, when it is in this process (the parent signs with it).
    pub fn local_key(&self) -> Option<&Arc<dyn SigningKey>> {
        match &self.backend {
            Sign::Local(k) => Some(k),
            Sign::Remote(_) => None,
        }
    }
}

/// Every scheme rustls may offer, in the order ring's keys prefer them (RSA: PSS before
/// PKCS#1, longer hashes first), so that a remote key chooses what the local one would.
pub const SCHEMES: [SignatureScheme; 9] = [
    SignatureScheme::RSA_PSS_SHA512,
    SignatureScheme::RSA_PSS_SHA384,
    SignatureScheme::RSA_PSS_SHA256,
    SignatureScheme::RSA_PKCS1_SHA512,
    SignatureScheme::RSA_PKCS1_SHA384,
    SignatureScheme::RSA_PKCS1_SHA256,
    SignatureScheme::ECDSA_NISTP256_SHA256,
    SignatureScheme::ECDSA_NISTP384_SHA384,
    SignatureScheme::ED25519,
];

/// The schemes a local key can sign with, in its order of preference.
pub fn schemes_of(key: &dyn SigningKey) -> Vec<SignatureScheme> {
    SCHEMES
        .iter()
        .copied()
        .filter(|s| key.choose_scheme(&[*s]).is_some())
        .collect()
}

impl SigningKey for PkiKey {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        match &self.backend {
            Sign::Local(k) => k.choose_scheme(offered),
            Sign::Remote(r) => {
                let scheme = r.schemes.iter().find(|s| offered.contains(s))?;
                Some(Box::new(RemoteSigner {
                    pki: self.pki.clone(),
                    key: r.clone(),
                    scheme: *scheme,
                }))
            }
        }
    }

    fn public_key(&self) -> Option<SubjectPublicKeyInfoDer<'_>> {
        match &self.backend {
            Sign::Local(k) => k.public_key(),
            Sign::Remote(r) => r
                .spki
                .as_deref()
                .map(|b| SubjectPublicKeyInfoDer::from(b.to_vec())),
        }
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        match &self.backend {
            Sign::Local(k) => k.algorithm(),
            Sign::Remote(r) => r.algorithm,
        }
    }
}

/// One signature asked of the parent. rustls calls `sign` on the handshake's thread and waits:
/// one round trip (tens of microseconds) beside the signature itself, which took as long here.
#[derive(Debug)]
struct RemoteSigner {
    pki: String,
    key: Arc<Remote>,
    scheme: SignatureScheme,
}

impl Signer for RemoteSigner {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rustls::Error> {
        use crate::privsep::proto::{Reply, Request};
        let Some(client) = crate::privsep::engine() else {
            return Err(rustls::Error::General("no signing process".into()));
        };
        let req = Request::Sign {
            pki: self.pki.clone(),
            generation: self.key.generation,
            scheme: u16::from(self.scheme),
            message: message.to_vec(),
        };
        match client.sign(&req) {
            Ok(Reply::Signature(s)) => Ok(s),
            Ok(Reply::Failed(why)) => Err(rustls::Error::General(why)),
            Ok(_) => Err(rustls::Error::General("ca: unexpected reply".into())),
            Err(e) => Err(rustls::Error::General(e)),
        }
    }

    fn scheme(&self) -> SignatureScheme {
        self.scheme
    }
}
