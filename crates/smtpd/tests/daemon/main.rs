//! The running daemon as its administrator drives it: smtpctl and sendmail through the control
//! socket, `smtpctl monitor`, pause and resume, signals, syslog (one test binary).
//!
//! One module per former test file: `cargo test -p rsmtpd --test daemon MODULE::` runs one.

#[path = "../common/mod.rs"]
mod common;

mod control;
mod monitor;
mod reload;
mod runtime_state;
mod signals;
mod syslog;
