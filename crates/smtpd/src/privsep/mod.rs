//! Privilege separation: started as root, the daemon splits in two (see ARCHITECTURE.md,
//! "Processes"):
//!
//! - the root parent (OpenSMTPD's `[priv]`, its command line unchanged in `ps`) (`crate::parent`): binds the listeners and the control
//!   socket, holds the TLS private keys and signs handshakes (OpenSMTPD's `ca` process, here
//!   threads of the parent), opens `~/.forward` files, checks system passwords with PAM,
//!   starts filter processes and delivery processes, resubmits the offline queue;
//! - `smtpd: engine`, everything that reads the network (sessions, filters' pipes, DNS,
//!   tables, queue, scheduler, relaying, control server), as the queue user with no
//!   capability.
//!
//! This module is the engine's side and what both sides share: the protocol ([`proto`]), the
//! packets ([`wire`]), the calls ([`client`]), the credentials the engine takes ([`creds`]) and
//! the process titles ([`title`]). Without root nothing splits: everything runs as the invoking
//! user as before, and [`engine`] is `None`.

pub mod client;
pub mod creds;
pub mod proto;
pub mod title;
pub mod wire;

use std::sync::OnceLock;

pub use client::Client;

static ENGINE: OnceLock<Client> = OnceLock::new();

/// The engine's channels to its parent, when this process is the engine of a split daemon.
pub fn engine() -> Option<&'static Client> {
    ENGINE.get()
}

/// Makes this process the engine (once, right after the fork).
pub fn become_engine(client: Client) {
    let _ = ENGINE.set(client);
}

/// Whether deliveries switch to their users (through the delivery process): when we are root,
/// or the engine of a root parent.
pub fn delivers_as_users() -> bool {
    engine().is_some() || nix::unistd::geteuid().is_root()
}
