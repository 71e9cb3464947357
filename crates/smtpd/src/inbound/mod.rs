//! Mail coming in: the async shell around the protocol crate's session and the
//! per-session I/O it asks for, builtin filters, and local injection (bounces).

pub mod filter;
pub mod filter_link;
pub mod inject;
pub mod proxy;
pub mod session;
pub mod session_io;
