//! Sans-IO SMTP server core for rsmtpd, reproducing OpenSMTPD 6.8.0p2's
//! smtp-in dialogue byte for byte (as smtp_session.c of OpenSMTPD 6.8.0p2 writes it).
//!
//! Nothing here does I/O, reads a clock or generates an id: the async shell
//! in `crates/smtpd` does, and drives a [`server::Session`] like this:
//!
//! 1. After accept and reverse DNS, build a [`server::SessionConfig`] from
//!    the listener and a [`server::ConnectionInfo`], and call
//!    [`server::Session::new`].
//! 2. Loop: drain [`server::Session::poll_event`]:
//!    - [`server::Event::Reply`]: write `reply.to_bytes()`;
//!    - [`server::Event::Log`]: write the log line ([`server::LogEvent::line`]);
//!    - [`server::Event::Request`]: do the work (filters, senders table,
//!      queue, rules/lookups, credentials) and answer with the matching
//!      method (`filter_result`, `sender_result`, `message_created`,
//!      `recipient_result`, `message_opened`, `commit_result`,
//!      `auth_result`); answering may queue more events;
//!    - [`server::Event::MessageData`]: append to the open queue file
//!      (on failure call `message_write_failed`);
//!    - [`server::Event::FilterData`] / [`server::Event::FilterDataEnd`] (only
//!      with `filter_data`): run the data filter chain, give its lines back with
//!      `filtered_line` and its end with `filtered_end`;
//!    - [`server::Event::Trace`] (only with `trace`): write the `-T smtp` line;
//!    - [`server::Event::Rollback`]: drop that message from the queue;
//!    - [`server::Event::StartTls`]: flush, handshake, then
//!      `tls_established(info)` or `tls_failed(reason)`;
//!    - [`server::Event::Close`]: flush, close, log the reason. Done.
//! 3. When the queue is empty and [`server::Session::wants_read`] is true,
//!    read once (bounded by [`server::Session::timeout`]) and pass the
//!    bytes to [`server::Session::receive`]; on EOF call `peer_closed`, on
//!    timeout `timed_out`.
//!
//! Reading only when the machine asks is what makes OpenSMTPD's
//! "no pipelining" rule come out the same: bytes that arrive together with
//! a command are refused with `500 5.5.1 Invalid command: Pipelining not
//! supported`.
//!
//! Building blocks, usable on their own: [`command`] (verb splitting and
//! MAIL/RCPT parameters), [`address`] (OpenSMTPD's address rules),
//! [`reply`] (every reply text), [`data`] (line framing and the
//! smuggling-safe DATA reader), [`message`] (header rewriting while
//! receiving), [`received`] (the `Received:` header), [`filter_protocol`]
//! (the line protocol of `proc-exec` filters, 0.6), [`proxy`] (the PROXY v2 header of
//! `proxy-v2` listeners).

#![forbid(unsafe_code)]

pub mod address;
pub mod client;
pub mod command;
pub mod data;
pub mod filter_protocol;
pub mod message;
pub mod proxy;
pub mod received;
pub mod reply;
pub mod server;
pub mod table_protocol;
pub mod util;

pub use address::Mailaddr;
pub use command::{Command, Verb};
pub use reply::Reply;
pub use server::{Event, Request, Session, SessionConfig};
