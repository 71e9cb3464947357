//! pki and ca files (`pki NAME cert`/`key`, `ca NAME cert`): PEM read into a certificate chain
//! and a private key, the key matched with the certificate, and ca files read into trust
//! anchors, as the daemon does at start and at each reload of a changed file. The files are the
//! administrator's, but they come from elsewhere (an ACME client, a copy from another host) and
//! a bad one must be refused with a line, never crash the start or the parent's reload.

use rsmtpd::tls::client::anchors_from_pem;
use rsmtpd::tls::store::pair_from_pem;

use crate::input::Input;

pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let cut = usize::from(u16::from_le_bytes([input.byte(), input.byte()]));
    let rest = input.rest();
    let (cert, key) = rest.split_at(cut.min(rest.len()));
    match pair_from_pem("mx.example", "cert.pem", cert, "key.pem", key) {
        Ok(ck) => assert!(!ck.cert.is_empty()),
        Err(lines) => assert!(!lines.is_empty(), "refused without a line"),
    }
    let _ = anchors_from_pem(rest);
}
