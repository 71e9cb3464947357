//! The queue: the envelope format, encrypted spools, `smtpctl discover` and no loss under SIGKILL
//! (one test binary).
//!
//! One module per former test file: `cargo test -p rsmtpd --test queue MODULE::` runs one.

#[path = "../common/mod.rs"]
mod common;

mod crash_no_loss;
mod discover;
mod durable_order;
mod encryption;
mod envelope;
