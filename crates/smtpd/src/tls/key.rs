//! The private key of a pki, behind rustls' `SigningKey` trait.
//!
//! Handshakes never touch the key itself: they ask a [`PkiKey`] to sign. Today it signs in this
//! process; OpenSMTPD keeps keys in a process of their own (its `ca` process) and the privilege
//! separation work will do the same by giving `PkiKey` another [`Sign`] backend that forwards
//! the request over a socket, without any change to sessions or configs.

use std::fmt;
use std::sync::Arc;

use rustls::pki_types::{PrivateKeyDer, SubjectPublicKeyInfoDer};
use rustls::sign::{Signer, SigningKey};
use rustls::{SignatureAlgorithm, SignatureScheme};

/// Where signatures are made. `Local` holds the key in this process.
#[derive(Clone)]
pub enum Sign {
    Local(Arc<dyn SigningKey>),
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
}

impl SigningKey for PkiKey {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        match &self.backend {
            Sign::Local(k) => k.choose_scheme(offered),
        }
    }

    fn public_key(&self) -> Option<SubjectPublicKeyInfoDer<'_>> {
        match &self.backend {
            Sign::Local(k) => k.public_key(),
        }
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        match &self.backend {
            Sign::Local(k) => k.algorithm(),
        }
    }
}
