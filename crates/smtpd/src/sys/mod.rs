//! What every part of the daemon uses: logging and traces, dates, facts about the host, key
//! files, text helpers that reproduce libc's output, the engine's sandbox, and the thread that
//! forks the children that die with us.

pub mod compat;
pub mod date;
pub mod log;
pub mod pki;
pub mod sandbox;
pub mod spawn;
pub mod stat;
pub mod system;
