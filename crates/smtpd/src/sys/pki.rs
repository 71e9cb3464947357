//! Loading certificates and keys at start (`load_pki_tree`, `load_pki_keys`), also done by `-n`.

use std::os::unix::fs::MetadataExt;

use rsmtpd_config::Config;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::PrivateKeyDer;
use zeroize::Zeroize;

/// Checks every pki and ca as OpenSMTPD does before it says `configuration OK`. On failure,
/// returns the lines OpenSMTPD prints before exiting.
pub fn check(conf: &Config) -> Result<(), Vec<String>> {
    for pki in &conf.pkis {
        let Some(cert) = &pki.cert else {
            return Err(vec!["smtpd: load_pki_tree: missing certificate file".into()]);
        };
        if pki.key.is_none() {
            return Err(vec!["smtpd: load_pki_tree: missing key file".into()]);
        }
        // Only read here, as OpenSMTPD does; it is parsed when TLS is set up.
        if let Err(mut lines) = load_file(cert, 0o755) {
            lines.push("smtpd: load_pki_tree: failed to load certificate file".into());
            return Err(lines);
        }
    }
    for ca in &conf.cas {
        if let Err(mut lines) = load_file(ca.cert.as_deref().unwrap_or(""), 0o755) {
            lines.push("smtpd: load_pki_tree: failed to load CA file".into());
            return Err(lines);
        }
    }
    for pki in &conf.pkis {
        let Some(key) = &pki.key else { continue };
        // Read before the daemon forks its engine (crate::parent): wiped at once, so that no
        // copy of the key is left in the memory the engine inherits.
        let loaded = load_file(key, 0o740).and_then(|mut data| {
            let parsed = PrivateKeyDer::from_pem_slice(&data);
            data.zeroize();
            match parsed {
                Ok(mut der) => {
                    der.zeroize();
                    Ok(())
                }
                Err(_) => Err(Vec::new()),
            }
        });
        if let Err(mut lines) = loaded {
            lines.push("smtpd: load_pki_keys: failed to load key file".into());
            return Err(lines);
        }
    }
    Ok(())
}

/// `ssl_load_file()`: the file must belong to root and have no permission outside `perm`, since
/// it may hold a private key. A daemon run unprivileged (tests, trying it out) also takes its own
/// user's files, as it does for its control socket: root's are out of its reach anyway.
pub fn load_file(path: &str, perm: u32) -> Result<Vec<u8>, Vec<String>> {
    let meta = std::fs::metadata(path).map_err(|_| Vec::new())?;
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != 0 && meta.uid() != me {
        return Err(vec![format!("warn:  {}: not owned by uid 0", path)]);
    }
    if meta.mode() & 0o777 & !perm != 0 {
        return Err(vec![format!(
            "warn:  {}: insecure permissions: must be at most {}",
            path,
            strmode(perm)
        )]);
    }
    std::fs::read(path).map_err(|_| Vec::new())
}

/// BSD `strmode()` of the permission bits, without the file type (and with its trailing space).
fn strmode(mode: u32) -> String {
    let mut s = String::new();
    for shift in [6, 3, 0] {
        let b = (mode >> shift) & 7;
        s.push(if b & 4 != 0 { 'r' } else { '-' });
        s.push(if b & 2 != 0 { 'w' } else { '-' });
        s.push(if b & 1 != 0 { 'x' } else { '-' });
    }
    s.push(' ');
    s
}

#[cfg(test)]
mod tests {
    #[test]
    fn strmode() {
        assert_eq!(super::strmode(0o740), "rwxr----- ");
        assert_eq!(super::strmode(0o755), "rwxr-xr-x ");
    }
}
