//! AUTH: checking a user's password (`lka_authenticate()`), against the listener's `auth <table>`
//! of crypt(3) hashes, or the system's users through PAM ([`pam`]) when no table is given.
//!
//! The hash is computed on tokio's blocking pool: SHA-512-crypt and bcrypt cost milliseconds on
//! purpose, which would stall every session sharing an async worker. The password is the
//! protocol's `Secret` and the stored hash a `Zeroizing` string: both wiped when dropped.

pub mod crypt;
pub mod pam;

use rsmtpd_protocol::server::{LookupResult, Secret};
use zeroize::Zeroizing;

use crate::routing::lookup::{LiveTables, Lookup};
use crate::sys::log;

/// Checks `user`'s password against the credentials of `table`.
pub async fn authenticate(
    tables: &LiveTables,
    table: &str,
    user: &[u8],
    password: Secret,
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
    let ok = tokio::task::spawn_blocking(move || crypt::check(password.expose(), &hash))
        .await
        .unwrap_or(false);
    if ok {
        LookupResult::Ok
    } else {
        LookupResult::PermFail
    }
}

/// `auth` without a table: the system's users, through PAM (blocking: on tokio's pool).
pub async fn authenticate_system(user: &[u8], password: Secret) -> LookupResult {
    let user = user.to_vec();
    tokio::task::spawn_blocking(move || pam::check(&user, password.expose()))
        .await
        .unwrap_or(LookupResult::TempFail)
}

/// OpenSMTPD's pause before answering a failed AUTH (`smtp_auth_failure_pause()`): a random
/// 0 to 1 s, so that the time of the answer tells nothing about why it failed.
pub fn failure_pause() -> std::time::Duration {
    std::time::Duration::from_micros(rand::random_range(0..1_000_000u64))
}

/// `lka_mailaddrmap()`: whether the authenticated `user` may send as `sender`, by the
/// listener's `senders <table>` (an entry per user, a list of addresses: `user@domain`,
/// `@domain`, `user`).
pub fn check_sender(
    tables: &crate::routing::lookup::Tables,
    table: &str,
    user: &[u8],
    sender: &rsmtpd_protocol::address::Mailaddr,
    delim: char,
) -> LookupResult {
    let Ok(user) = std::str::from_utf8(user) else {
        return LookupResult::PermFail;
    };
    match tables.mailaddrmap(table, user) {
        Lookup::Found(list) => {
            if list.iter().any(|m| mailaddr_match(sender, m, delim)) {
                LookupResult::Ok
            } else {
                LookupResult::PermFail
            }
        }
        Lookup::NotFound => LookupResult::PermFail,
        Lookup::TempFail => {
            log::warn(&format!(
                "warn: failure during mailaddrmap lookup {}:{}",
                table, user
            ));
            LookupResult::TempFail
        }
    }
}

/// `mailaddr_match()`: an entry with neither user nor domain matches all; a domain must match
/// (wildcards allowed); a user, case-insensitively, with the session address's `+tag` removed
/// unless the entry has one itself.
fn mailaddr_match(
    addr: &rsmtpd_protocol::address::Mailaddr,
    entry: &rsmtpd_protocol::address::Mailaddr,
    delim: char,
) -> bool {
    if entry.user.is_empty() && entry.domain.is_empty() {
        return true;
    }
    if !entry.domain.is_empty()
        && !crate::routing::lookup::hostname_match(&addr.domain, &entry.domain)
    {
        return false;
    }
    if !entry.user.is_empty() {
        let user = if entry.user.contains(delim) {
            addr.user.as_str()
        } else {
            addr.user.split(delim).next().unwrap_or("")
        };
        if !user.eq_ignore_ascii_case(&entry.user) {
            return false;
        }
    }
    true
}
