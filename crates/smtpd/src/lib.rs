//! The rsmtpd daemon: everything that does I/O around the pure `config` and `protocol` crates.
//!
//! The modules are the daemon's layers, bottom up; each imports only from the layers above it
//! in this list (checked by `tests/layers.rs`):
//!
//! - `support`: what this build implements of the smtpd.conf language (the refusal list).
//! - `sys`: logging, dates, the host, key files: what every part uses.
//! - `privsep`: the engine's side of privilege separation: the protocol and calls to the root
//!   parent, the credentials it drops to, process titles.
//! - `startup`: the problems that stop the daemon from starting or queueing, each with its remedy.
//! - `tls`: rustls for listeners and the relay: pki certificates and keys, SNI, client
//!   certificates.
//! - `dns`: the resolver (client names; later MX routing).
//! - `tableproc`: external table backends (`table-sqlite`...): their processes and requests.
//! - `routing`: tables (`lookup`), `match` rules, recipient expansion with aliases and
//!   `.forward`: OpenSMTPD's lka, pure functions over injected users and files.
//! - `auth`: AUTH password checks against credential tables.
//! - `queue`: the durable spool. `scheduler`: retries, expiry, bounces.
//! - `listener`: listening sockets and the options their sessions run with.
//! - `server`: what every session, agent and control command shares.
//! - `inbound`: the SMTP session shell and its per-session I/O, builtin filters, local
//!   injection (bounces).
//! - `delivery`: the scheduler's local agent and the delivery process that writes mailboxes.
//! - `relay`: the scheduler's relay agent (routes, MX, outbound SMTP sessions).
//! - `control`: the control socket. `reload`: SIGHUP puts a changed configuration in service.
//!   `daemon`: start-up, wiring, signals. `parent`: the root parent of a split daemon (keys and
//!   signatures, forward files, PAM, filter and delivery processes).

// Every unsafe block says why it is sound, and unsafe fns do not make their bodies unsafe.
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

pub mod startup;
pub mod support;
pub mod sys;

pub mod privsep;
pub mod tls;

pub mod auth;
pub mod dns;
pub mod routing;
pub mod tableproc;

pub mod queue;
pub mod scheduler;

pub mod listener;
pub mod procfilter;
pub mod server;

pub mod inbound;

pub mod delivery;
pub mod relay;

pub mod control;
pub mod reload;

pub mod daemon;
pub mod parent;
