//! What every part of the daemon uses: logging and traces, dates, facts about the host, key
//! files, and text helpers that reproduce libc's output.

pub mod compat;
pub mod date;
pub mod log;
pub mod pki;
pub mod stat;
pub mod system;
