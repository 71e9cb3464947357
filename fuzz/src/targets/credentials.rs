//! Credential tables (`auth <creds>`): the table's line for a user, split as
//! `table_parse_lookup(K_CREDENTIALS)` splits it, and the password a client sent checked
//! against its hash as `crypt_checkpass()` does (SHA-512-crypt, bcrypt). The line is the
//! administrator's, the password the client's: both are fuzzed.
//!
//! Hashes that ask for more work than a test can spend (a `rounds=` or bcrypt cost above what
//! `smtpctl encrypt` makes) are skipped: their cost is the administrator's choice, not input.

use rsmtpd::auth::crypt;
use rsmtpd::routing::lookup::parse_credentials;

use crate::input::fields;

pub fn run(data: &[u8]) {
    let f = fields(data);
    let key = f.first().map(String::as_str).unwrap_or("");
    let line = f.get(1).map(String::as_str).unwrap_or("");
    let password = f.get(2).map(String::as_bytes).unwrap_or(b"");
    if let Some(c) = parse_credentials(key, line) {
        assert!(!c.password.is_empty());
        if cheap(&c.password) {
            let _ = crypt::check(password, &c.password);
        }
    }
    if cheap(line) {
        let _ = crypt::check(password, line);
        // What we make from a setting is a hash that the same password matches.
        if let Some(made) = crypt::sha512_crypt(password, line) {
            assert!(made.starts_with("$6$"), "{made}");
            assert!(crypt::check(password, &made), "{line:?} made {made:?}");
        }
    }
}

/// Whether checking against `hash` costs at most the default work.
fn cheap(hash: &str) -> bool {
    if let Some(rest) = hash.strip_prefix("$6$rounds=") {
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        return digits.len() < 5 && digits.parse::<u32>().map_or(true, |n| n <= 5000);
    }
    if hash.starts_with("$2") {
        // `$2b$NN$`: the cost is 2^NN rounds.
        let cost = hash.get(4..6).and_then(|c| c.parse::<u32>().ok());
        return cost.is_none_or(|c| c <= 6);
    }
    true
}
