//! From a recipient to its deliveries (OpenSMTPD's lka): tables, `match` rules, recipient
//! expansion through aliases, virtual tables and `~/.forward`.

pub mod alias;
pub mod expand;
pub mod forward;
pub mod lookup;
pub mod rule;
pub mod srs;
