//! The scheduler: its schedule, the DSN composer and the runner on a real queue (one test
//! binary).
//!
//! One module per former test file: `cargo test -p rsmtpd --test scheduler MODULE::` runs one.

mod bounce;
mod runner;
mod schedule;
