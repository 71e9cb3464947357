//! The queue: the envelope format, encrypted spools, `smtpctl discover`, no loss under SIGKILL and
//! what a crash can leave of a commit (one test binary).
//!
//! One module per former test file: `cargo test -p rsmtpd --test queue MODULE::` runs one.

#[path = "../common/mod.rs"]
mod common;

mod crash_no_loss;
mod crash_states;
mod discover;
mod durable_order;
mod encryption;
mod envelope;
