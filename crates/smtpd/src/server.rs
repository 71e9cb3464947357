//! What all sessions share: the configuration, the tables, DNS, the queue; and the work a
//! session asks of them (rules and expansion at RCPT, the queue at DATA).

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use rsmtpd_config::lexer::strerror;
use rsmtpd_config::Config;
use rsmtpd_protocol::received::PeerAddr;

use crate::dns::Dns;
use crate::listener::Listening;
use crate::queue::{Envelope, Queue, QueueOptions};
use crate::routing::lookup::{HostInfo, LiveTables, SystemUsers, Tables};
use crate::scheduler::Handle;
use crate::sys::log::{self};

pub struct Server {
    pub config: Config,
    pub hostname: String,
    pub dns: Dns,
    /// Read through [`LiveTables::load`]: `update table` swaps them while sessions run. The
    /// contents of the tables are there only, not in `config.tables` (see
    /// [`Tables::take_from`]).
    pub tables: LiveTables,
    pub queue: Queue,
    /// Who files and commands from system aliases run as: OpenSMTPD's unprivileged user when we
    /// run as root, else ourselves.
    pub smtpd_user: String,
    /// The scheduler, once started (it needs the server for its agents).
    pub scheduler: OnceLock<Handle>,
    /// What the queue held at start, for the scheduler.
    pub loaded: std::sync::Mutex<Vec<Envelope>>,
    /// `smtpctl pause smtp`: listeners stop accepting.
    pub smtp_paused: AtomicBool,
    pub stats: Stats,
    /// The listener local sessions (sendmail, bounces) arrive on; it never changes, so it is
    /// built once rather than per message.
    pub local_listen: Arc<Listening>,
    /// The pkis and the TLS settings shared by listeners, set once at start.
    pub tls: OnceLock<Arc<crate::tls::Tls>>,
}

/// Counters for `smtpctl show stats`, named as OpenSMTPD names them, and the client side of
/// `smtpctl monitor`.
#[derive(Default)]
pub struct Stats {
    pub sessions: AtomicI64,
    /// Sessions started and ended since start (`monitor`'s `conn` and `disc`: the increments and
    /// decrements of `smtp.session`).
    pub connects: AtomicU64,
    pub disconnects: AtomicU64,
    /// The scheduler's part of `monitor`, handed to it when it starts.
    pub scheduler: Arc<crate::scheduler::Counters>,
    pub sessions_inet4: AtomicI64,
    pub sessions_inet6: AtomicI64,
    pub sessions_local: AtomicI64,
    pub messages: AtomicI64,
}

impl Stats {
    /// A session starts; the returned guard counts it as ended when dropped.
    pub fn session(&self, peer: &PeerAddr) -> SessionCount<'_> {
        self.sessions.fetch_add(1, Ordering::Relaxed);
        self.connects.fetch_add(1, Ordering::Relaxed);
        let total = match peer {
            PeerAddr::Inet(std::net::IpAddr::V4(_)) => &self.sessions_inet4,
            PeerAddr::Inet(std::net::IpAddr::V6(_)) => &self.sessions_inet6,
            PeerAddr::Local => &self.sessions_local,
        };
        total.fetch_add(1, Ordering::Relaxed);
        SessionCount(self)
    }

    /// `monitor`'s counters now.
    pub fn digest(&self) -> rsmtpd_control::Digest {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let c = &self.scheduler;
        rsmtpd_control::Digest {
            clt_connect: g(&self.connects),
            clt_disconnect: g(&self.disconnects),
            evp_enqueued: g(&c.enqueued),
            evp_dequeued: g(&c.dequeued),
            evp_expired: g(&c.expired),
            evp_removed: g(&c.removed),
            evp_bounce: g(&c.bounce),
            dlv_ok: g(&c.ok),
            dlv_permfail: g(&c.permfail),
            dlv_tempfail: g(&c.tempfail),
            dlv_loop: g(&c.looped),
        }
    }

    pub fn snapshot(&self) -> Vec<(String, rsmtpd_control::StatValue)> {
        use rsmtpd_control::StatValue::Counter;
        let g = |a: &AtomicI64| a.load(Ordering::Relaxed);
        vec![
            ("smtp.session".into(), Counter(g(&self.sessions))),
            (
                "smtp.session.inet4".into(),
                Counter(g(&self.sessions_inet4)),
            ),
            (
                "smtp.session.inet6".into(),
                Counter(g(&self.sessions_inet6)),
            ),
            (
                "smtp.session.local".into(),
                Counter(g(&self.sessions_local)),
            ),
            ("queue.message".into(), Counter(g(&self.messages))),
        ]
    }
}

pub struct SessionCount<'a>(&'a Stats);

impl Drop for SessionCount<'_> {
    fn drop(&mut self) {
        self.0.sessions.fetch_sub(1, Ordering::Relaxed);
        self.0.disconnects.fetch_add(1, Ordering::Relaxed);
    }
}

impl Server {
    pub fn new(
        mut config: Config,
        hostname: String,
        spool: &Path,
        dns: Dns,
    ) -> Result<Server, String> {
        let host = HostInfo {
            hostname: hostname.clone(),
            local_addrs: crate::sys::system::local_addresses(),
        };
        let tables = LiveTables::new(Tables::take_from(&mut config, &host, Box::new(SystemUsers)));
        // The key is the configured string by now (main read it from stdin or the terminal when
        // the configuration asks); anything but 32 bytes is refused as OpenSMTPD's queue process
        // refuses it, rather than writing a spool in clear that was meant to be encrypted.
        let encryption = if config.options.queue_encryption {
            let key = config.options.queue_key.as_deref().unwrap_or("");
            Some(crate::queue::QueueKey::new(key.as_bytes()).ok_or_else(|| {
                "smtpd: crypto_setup: invalid key for queue encryption".to_string()
            })?)
        } else {
            None
        };
        let queue_options_note = (config.options.queue_compression, encryption.is_some());
        let queue_options = QueueOptions {
            compression: config.options.queue_compression,
            encryption,
            ..QueueOptions::default()
        };
        let queue = Queue::open_with(spool, queue_options)
            .map_err(|e| format!("smtpd: queue: {}: {}", spool.display(), strerror(&e)))?;
        // queue.c's lines at the queue process's start.
        if queue_options_note.0 {
            log::info("queue: queue compression enabled");
        }
        if queue_options_note.1 {
            log::info("queue: queue encryption enabled");
        }
        // Rebuilds the queue's index and drops what a crash left half-done; the scheduler (the
        // delivery issue) will take the envelopes from here.
        let loaded = queue
            .load()
            .map_err(|e| format!("smtpd: queue: load: {}", strerror(&e)))?;
        for (evpid, why) in &loaded.invalid {
            log::warn(&format!("warn: queue: envelope {}: {}", evpid, why));
        }
        // As OpenSMTPD: an envelope whose action is gone from the config cannot be scheduled.
        let (known, unknown): (Vec<Envelope>, Vec<Envelope>) = loaded
            .envelopes
            .into_iter()
            .partition(|e| config.action(&e.dispatcher).is_some());
        for e in unknown {
            log::warn(&format!(
                "warn: invalid envelope {}: unknown dispatcher",
                e.id
            ));
        }
        let smtpd_user = if nix::unistd::geteuid().is_root() {
            "_smtpd".to_string()
        } else {
            nix::unistd::User::from_uid(nix::unistd::geteuid())
                .ok()
                .flatten()
                .map(|u| u.name)
                .unwrap_or_else(|| "nobody".into())
        };
        let local_listen = Arc::new(crate::listener::socket_listening(&config, &hostname));
        Ok(Server {
            local_listen,
            tls: OnceLock::new(),
            config,
            hostname,
            dns,
            tables,
            queue,
            smtpd_user,
            scheduler: OnceLock::new(),
            loaded: std::sync::Mutex::new(known),
            smtp_paused: AtomicBool::new(false),
            stats: Stats::default(),
        })
    }
}

/// The `Date:` of a message that has none, and of the Received line.
pub fn rfc5322_date() -> String {
    crate::sys::date::time_to_text(crate::sys::date::now())
}

/// `address=` text of a client.
pub fn peer_text(p: &PeerAddr) -> String {
    p.text()
}
