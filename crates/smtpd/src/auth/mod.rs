//! AUTH: checking a user's password (`lka_authenticate()`), against the listener's `auth <table>`
//! of crypt(3) hashes.
//!
//! The hash is computed on tokio's blocking pool: SHA-512-crypt and bcrypt cost milliseconds on
//! purpose, which would stall every session sharing an async worker. The password lives in a
//! `Zeroizing` buffer, wiped when dropped.

pub mod crypt;

use rsmtpd_protocol::session::LookupResult;
use zeroize::Zeroizing;

use crate::sys::log;
use crate::routing::lookup::{LiveTables, Lookup};

/// Checks `user`'s password against the credentials of `table`.
pub async fn authenticate(
    tables: &LiveTables,
    table: &str,
    user: &[u8],
    password: Zeroizing<Vec<u8>>,
) -> LookupResult {
    // Table keys are text; a name that is not UTF-8 cannot be in one.
    let Ok(user) = std::str::from_utf8(user) else {
        return LookupResult::PermFail;
    };
    let hash = match tables.load().credentials(table, user) {
        Lookup::Found(c) => Zeroizing::new(c.password),
        Lookup::NotFound => return LookupResult::PermFail,
        Lookup::TempFail => {
            log::warn(&format!(
                "warn: user credentials lookup fail for {}:{}",
                table, user
            ));
            return LookupResult::TempFail;
        }
    };
    let ok = tokio::task::spawn_blocking(move || crypt::check(&password, &hash))
        .await
        .unwrap_or(false);
    if ok {
        LookupResult::Ok
    } else {
        LookupResult::PermFail
    }
}

/// OpenSMTPD's pause before answering a failed AUTH (`smtp_auth_failure_pause()`): a random
/// 0 to 1 s, so that the time of the answer tells nothing about why it failed.
pub fn failure_pause() -> std::time::Duration {
    std::time::Duration::from_micros(rand::random_range(0..1_000_000u64))
}
