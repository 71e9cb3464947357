//! The smtpd.conf language of OpenSMTPD 6.8: lexer, parser, validation, the typed [`Config`] and
//! its canonical dump.
//!
//! Pure: the only I/O is reading the files the config names, and even that goes through an
//! [`Environment`] so that callers (the daemon, tests) decide what the machine looks like.
//!
//! ```
//! use rsmtpd_config::{parse_file, ParseOptions, StaticEnvironment};
//! let env = StaticEnvironment::typical()
//!     .with_file("/etc/mail/smtpd.conf", "listen on lo\nmatch from any for local reject\n");
//! let out = parse_file("/etc/mail/smtpd.conf", &env, &ParseOptions::default());
//! assert!(out.ok());
//! ```

#![forbid(unsafe_code)]

pub mod dbfile;
pub mod dump;
pub mod entries;
pub mod env;
pub mod format;
pub mod keyword;
pub mod lexer;
pub mod model;
pub mod parser;
pub mod table;
pub mod validate;

pub use dump::dump;
pub use env::{Environment, Family, StaticEnvironment};
pub use model::*;
pub use parser::{parse_file, Outcome, ParseOptions};
pub use table::{Table, TableKind, TableSource};
