//! The rsmtpd daemon: everything that does I/O around the pure `config` and `protocol` crates.
//!
//! One module per concept, named as an administrator names it.

pub mod expand;
pub mod lookup;
pub mod pki;
pub mod queue;
pub mod rule;
pub mod system;
