//! One module per target; see the crate's `TARGETS`.

pub mod address;
pub mod alias;
pub mod bdb;
pub mod bytes;
pub mod command;
pub mod config;
pub mod control;
pub mod credentials;
pub mod data;
pub mod envelope;
pub mod filter;
pub mod pki;
pub mod proxy;
pub mod reply;
pub mod session;
pub mod smtpctl;
pub mod table;
