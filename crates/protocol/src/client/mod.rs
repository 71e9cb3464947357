//! The outbound side: an SMTP/LMTP client as a sans-IO state machine ([`Client`]), its bounded
//! reply parser ([`ReplyParser`]) and the dot-stuffing body encoder ([`DotStuffer`]).
//!
//! One client core serves every place rsmtpd talks SMTP to someone: relaying (`smtpd`'s
//! `relay/`), LMTP delivery, bounce injection into our own session, and sendmail's submission
//! over the local socket. Each shell owns the socket and the clock; the machine owns the
//! dialogue and decides what every reply means.

pub mod encode;
pub mod reply;
pub mod session;

pub use encode::{dot_stuff, DotStuffer};
pub use reply::{ReplyError, ReplyParser, ServerReply};
pub use session::{
    AuthCredentials, Client, ClientConfig, Close, Event, Extensions, Outcome, Recipient, Timeouts,
    Tls, Transaction, TOO_MANY_FAILURES,
};
