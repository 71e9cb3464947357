//! What every part of the daemon uses: logging and traces, dates, facts about the host, key
//! files, text helpers that reproduce libc's output, and the engine's sandbox.

pub mod compat;
pub mod date;
pub mod log;
pub mod pki;
pub mod sandbox;
pub mod stat;
pub mod system;
