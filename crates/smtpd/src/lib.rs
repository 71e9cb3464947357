//! The rsmtpd daemon: everything that does I/O around the pure `config` and `protocol` crates.
//!
//! One module per concept, named as an administrator names it.

pub mod control;
pub mod control_ctx;
pub mod daemon;
pub mod date;
pub mod delivery;
pub mod dns;
pub mod expand;
pub mod filter;
pub mod inject;
pub mod listener;
pub mod log;
pub mod lookup;
pub mod mda;
pub mod pki;
pub mod queue;
pub mod rule;
pub mod scheduler;
pub mod server;
pub mod session;
pub mod system;
