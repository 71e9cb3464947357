//! Delivery: each agent on its own, end to end through the daemon, failures, the delivery process
//! and Dovecot reading what we deliver (one test binary).
//!
//! One module per former test file: `cargo test -p rsmtpd --test delivery MODULE::` runs one.

#[path = "../common/mod.rs"]
mod common;

mod agents;
mod dovecot;
mod e2e;
mod failures;
mod process;
