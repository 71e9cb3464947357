//! Relaying checked against real peers (one test binary): MX routing cases through OpenSMTPD
//! 6.8 and through us, recorded and compared (`mx`); Postfix as a relay peer both ways
//! (`postfix`); kill -9 under relay load (`durability`).
//!
//! One module per concern: `cargo test -p rsmtpd --test relay_live MODULE::` runs one.

#[path = "../common/mod.rs"]
mod common;

mod durability;
mod mx;
mod postfix;
mod recorder;
