//! TLS for the daemon, with rustls and its ring provider (ring builds with a C compiler only;
//! aws-lc-rs would need cmake, and nasm for speed, on every machine that builds us).
//!
//! - [`store`]: the `pki` certificates and keys, loaded at start and reloaded when the files
//!   change; [`key`]: the private key behind rustls' `SigningKey`, so that signing can move to
//!   another process later.
//! - [`server`]: one `ServerConfig` per listener, SNI; [`verify`]: client certificates on
//!   `verify` listeners; [`ciphers`]: `smtp ciphers`.
//! - [`client`]: the client side, for the relay.
//! - [`stream`]: the connection that becomes TLS; [`names`]: OpenSSL's names for the logs.

pub mod ciphers;
pub mod client;
pub mod key;
pub mod names;
pub mod server;
pub mod store;
pub mod stream;
pub mod verify;

pub use server::{ListenerSpec, ListenerTls, Tls};
pub use stream::Conn;

use rsmtpd_protocol::received::{PeerCert, TlsInfo};

/// What the session machine, the logs and the Received header need to know of a handshake.
pub fn info(conn: &rustls::ServerConnection, peer_cert: PeerCert) -> TlsInfo {
    let version = conn
        .protocol_version()
        .map(names::version)
        .unwrap_or_default();
    let (cipher, bits) = conn
        .negotiated_cipher_suite()
        .map(|s| names::suite(s.suite()))
        .unwrap_or_default();
    TlsInfo {
        version,
        cipher,
        bits,
        peer_cert,
    }
}
