//! What all sessions share: the configuration, the tables, DNS, the queue; and the work a
//! session asks of them (rules and expansion at RCPT, the queue at DATA).

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwap;
use rsmtpd_config::lexer::strerror;
use rsmtpd_config::Config;
use rsmtpd_protocol::received::PeerAddr;

use crate::dns::Dns;
use crate::listener::Listening;
use crate::queue::{Envelope, Queue, QueueOptions};
use crate::routing::lookup::{HostInfo, LiveTables, SystemUsers, Tables};
use crate::scheduler::Handle;
use crate::sys::log::{self};
use crate::sys::stat;

pub struct Server {
    /// The configuration in service and its tables, replaced whole by a reload (SIGHUP, see
    /// `crate::reload`). Read through [`Server::running`]: a session takes one at its start and
    /// keeps it to its end, a delivery one per attempt, so that none of them sees half of one
    /// configuration and half of the next.
    running: ArcSwap<Running>,
    pub hostname: String,
    pub dns: Dns,
    pub queue: Queue,
    /// Who files and commands from system aliases run as: OpenSMTPD's unprivileged user when we
    /// run as root, else ourselves ([`crate::sys::system::smtpd_user`]).
    pub smtpd_user: String,
    /// The scheduler, once started (it needs the server for its agents).
    pub scheduler: OnceLock<Handle>,
    /// What the queue held at start, for the scheduler.
    pub loaded: std::sync::Mutex<Vec<Envelope>>,
    /// What is paused (`smtpd -P`, `smtpctl pause|resume`): the one place that says so.
    pub paused: Paused,
    pub stats: Stats,
    /// The listener local sessions (sendmail, bounces) arrive on; it never changes, so it is
    /// built once rather than per message.
    pub local_listen: Arc<Listening>,
    /// The pkis and the TLS settings shared by listeners, set once at start.
    pub tls: OnceLock<Arc<crate::tls::Tls>>,
    /// The `proc` filter processes, started before the listeners accept.
    pub procs: OnceLock<crate::procfilter::Procs>,
    /// What `smtpctl` may ask the relay (`show hoststats`, `show routes`, `resume route`),
    /// set when the relay agent starts.
    pub relay: OnceLock<Arc<dyn RelayViews>>,
}

/// One configuration in service: what the daemon started with, or what a reload put in its
/// place. The parts a reload cannot change (listeners, pkis, filters, queue format: see
/// `crate::reload`) are equal in every generation, so what was built from them at start
/// (sockets, TLS, filter processes) fits every one.
pub struct Running {
    pub config: Config,
    /// Read through [`LiveTables::load`]: `update table` swaps them while sessions run. The
    /// contents of the tables are there only, not in `config.tables` (see
    /// [`Tables::take_from`]).
    pub tables: LiveTables,
    /// 0 for the configuration the daemon started with, then one more per reload.
    pub generation: u64,
}

impl Running {
    /// The configuration's tables, loaded (files read: blocking) and moved out of it.
    /// Its external table backends are started here (lka's table_open_all()); the lines of a
    /// backend that failed to open are the error.
    pub fn new(
        mut config: Config,
        hostname: &str,
        generation: u64,
    ) -> Result<Running, Vec<String>> {
        let host = HostInfo {
            hostname: hostname.to_string(),
            local_addrs: crate::sys::system::local_addresses(),
        };
        let mut tables = Tables::take_from(&mut config, &host, Box::new(SystemUsers));
        tables.start_backends()?;
        Ok(Running {
            config,
            tables: LiveTables::new(tables),
            generation,
        })
    }
}

/// The relay's views for `smtpctl`, implemented in the relay layer above this one.
pub trait RelayViews: Send + Sync {
    /// `show hoststats` lines.
    fn hoststats(&self) -> Vec<String>;
    /// `show routes` lines.
    fn routes(&self) -> Vec<String>;
    /// `resume route ID` (0: all).
    fn resume_route(&self, id: u64);
    /// `show hosts` lines.
    fn hosts(&self) -> Vec<String>;
    /// `show relays` lines.
    fn relays(&self) -> Vec<String>;
    /// `pause|resume mta from SRC for DOMAIN`.
    fn mta_block(&self, block: bool, src: std::net::IpAddr, domain: &str);
    /// `show mta paused` lines.
    fn blocks(&self) -> Vec<String>;
}

/// Which subsystems are paused: OpenSMTPD's `SMTPD_{SMTP,MDA,MTA}_PAUSED` flags, which `-P`
/// sets at start and `smtpctl pause|resume` later. `show status` reads these, `resume` checks
/// them, the listeners and the scheduler follow them: one state, so that they cannot disagree.
#[derive(Default)]
pub struct Paused {
    smtp: AtomicBool,
    mda: AtomicBool,
    mta: AtomicBool,
}

impl Paused {
    fn flag(&self, s: rsmtpd_control::Subsystem) -> &AtomicBool {
        use rsmtpd_control::Subsystem;
        match s {
            Subsystem::Smtp => &self.smtp,
            Subsystem::Mda => &self.mda,
            Subsystem::Mta => &self.mta,
        }
    }

    pub fn get(&self, s: rsmtpd_control::Subsystem) -> bool {
        self.flag(s).load(Ordering::Relaxed)
    }

    pub fn status(&self) -> rsmtpd_control::Status {
        use rsmtpd_control::Subsystem;
        rsmtpd_control::Status {
            mda_paused: self.get(Subsystem::Mda),
            mta_paused: self.get(Subsystem::Mta),
            smtp_paused: self.get(Subsystem::Smtp),
        }
    }
}

impl Server {
    /// The configuration in service now. Hold it for one unit of work (a session, a delivery);
    /// a reload meanwhile does not change what that work sees.
    pub fn running(&self) -> Arc<Running> {
        self.running.load_full()
    }

    /// Puts a new configuration in service (a reload); work that holds the old one finishes on
    /// it. The old one is returned.
    pub fn replace_running(&self, next: Running) -> Arc<Running> {
        self.running.swap(Arc::new(next))
    }

    /// `smtpd -P NAME`: paused before the listeners and the scheduler start, silently.
    pub fn paused_at_start(&self, s: rsmtpd_control::Subsystem) {
        self.paused.flag(s).store(true, Ordering::Relaxed);
    }

    /// Pauses or resumes a subsystem: the flag, then whoever acts on it (the scheduler, once it
    /// runs; before, it starts from the flags). Listeners look at the flag before each accept.
    pub fn set_paused(&self, s: rsmtpd_control::Subsystem, paused: bool) {
        use rsmtpd_control::Subsystem;
        self.paused.flag(s).store(paused, Ordering::Relaxed);
        let kind = match s {
            Subsystem::Smtp => {
                // smtp.c logs these in the smtp process as it gets the order.
                log::debug(if paused {
                    "debug: smtp: pausing listening sockets"
                } else {
                    "debug: smtp: resuming listening sockets"
                });
                return;
            }
            Subsystem::Mda => crate::queue::DeliveryType::Mda,
            Subsystem::Mta => crate::queue::DeliveryType::Mta,
        };
        if let Some(h) = self.scheduler.get() {
            h.pause(kind, paused);
        }
    }
}

/// `smtpctl monitor`'s counters (`show stats` reads [`crate::sys::stat`]), and the session
/// counters of both.
#[derive(Default)]
pub struct Stats {
    /// Sessions started and ended since start (`monitor`'s `conn` and `disc`: the increments and
    /// decrements of `smtp.session`).
    pub connects: AtomicU64,
    pub disconnects: AtomicU64,
    /// The scheduler's part of `monitor`, handed to it when it starts.
    pub scheduler: Arc<crate::scheduler::Counters>,
}

impl Stats {
    /// A session starts; the returned guard counts it as ended when dropped (smtp.c: the
    /// current `smtp.session`, the totals by client kind).
    pub fn session(&self, peer: &PeerAddr) -> SessionCount<'_> {
        self.connects.fetch_add(1, Ordering::Relaxed);
        stat::increment("smtp.session", 1);
        stat::increment(
            match peer {
                PeerAddr::Inet(std::net::IpAddr::V4(_)) => "smtp.session.inet4",
                PeerAddr::Inet(std::net::IpAddr::V6(_)) => "smtp.session.inet6",
                PeerAddr::Local => "smtp.session.local",
            },
            1,
        );
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

    /// `show stats`: every counter set since start.
    pub fn snapshot(&self) -> Vec<(String, rsmtpd_control::StatValue)> {
        stat::snapshot()
            .into_iter()
            .map(|(k, v)| (k, rsmtpd_control::StatValue::Counter(v)))
            .collect()
    }
}

pub struct SessionCount<'a>(&'a Stats);

impl Drop for SessionCount<'_> {
    fn drop(&mut self) {
        stat::decrement("smtp.session", 1);
        self.0.disconnects.fetch_add(1, Ordering::Relaxed);
    }
}

impl Server {
    pub fn new(
        config: Config,
        hostname: String,
        spool: &Path,
        dns: Dns,
        smtpd_user: String,
    ) -> Result<Server, String> {
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
            commit_mode: commit_mode_from_env(),
            commit_linger: commit_linger_from_env(),
            ..QueueOptions::default()
        };
        let queue = Queue::open_with(spool, queue_options)
            .map_err(|e| format!("smtpd: queue: {}", spool_error(spool, &e)))?;
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
        let local_listen = Arc::new(crate::listener::socket_listening(&config, &hostname));
        // The external backends start once the queue is there (as 6.8's lookup process gets
        // its configuration after the others started), before anything is served.
        let running = ArcSwap::from_pointee(
            Running::new(config, &hostname, 0).map_err(|lines| lines.join("\n"))?,
        );
        Ok(Server {
            local_listen,
            tls: OnceLock::new(),
            running,
            hostname,
            dns,
            queue,
            smtpd_user,
            scheduler: OnceLock::new(),
            loaded: std::sync::Mutex::new(known),
            paused: Paused::default(),
            stats: Stats::default(),
            procs: OnceLock::new(),
            relay: OnceLock::new(),
        })
    }
}

/// A delivery whose action the configuration in service lacks. At start such envelopes are
/// dropped as OpenSMTPD drops them (`Server::new`), and a reload is refused while the queue
/// holds any (`crate::reload`); what remains is a message whose RCPT was accepted under the
/// previous configuration and committed after the reload. It waits in the queue (temporary
/// failure, retried, `smtpctl show queue` lists it) rather than bouncing at once: a reload
/// must not lose mail that was accepted, and the action may come back with the next one.
pub fn unknown_dispatcher(running: &Running, env: &Envelope) -> crate::scheduler::AgentResult {
    if running.generation == 0 {
        return crate::scheduler::AgentResult::perm("unknown dispatcher");
    }
    crate::scheduler::AgentResult::temp(format!(
        "action \"{}\" is not in the reloaded configuration",
        env.dispatcher
    ))
}

/// The `Date:` of a message that has none, and of the Received line.
pub fn rfc5322_date() -> String {
    crate::sys::date::time_to_text(crate::sys::date::now())
}

/// `address=` text of a client.
pub fn peer_text(p: &PeerAddr) -> String {
    p.text()
}

/// A spool that cannot be set up, as one line: ckdir's messages name their directory already;
/// other errors (a mkdir that fails) are given with the spool's path and, when the disk is
/// full, what to do.
pub fn spool_error(spool: &Path, e: &std::io::Error) -> String {
    if e.raw_os_error().is_none() {
        return e.to_string();
    }
    format!(
        "{}: {}{}",
        spool.display(),
        strerror(e),
        crate::startup::storage_hint(e)
    )
}

/// `SMTPD_COMMIT_LINGER=MICROSECONDS`: the most a commit round waits for the sessions the
/// last one answered (`queue::commit`; 0: never), for benchmarks; unset: the default.
fn commit_linger_from_env() -> Option<std::time::Duration> {
    std::env::var("SMTPD_COMMIT_LINGER")
        .ok()?
        .parse()
        .ok()
        .map(std::time::Duration::from_micros)
}

/// `SMTPD_COMMIT=auto|syncfs|fsync|single` picks how commits reach the disk (see
/// `queue::commit`), for benchmarks that compare them on one binary; unset
/// or anything else: the default.
fn commit_mode_from_env() -> crate::queue::CommitMode {
    use crate::queue::CommitMode;
    match std::env::var("SMTPD_COMMIT").as_deref() {
        Ok("syncfs") => CommitMode::GroupSyncfs,
        Ok("fsync") => CommitMode::GroupFsync,
        Ok("single") => CommitMode::Single,
        Ok("auto") => CommitMode::GroupAuto,
        _ => CommitMode::default(),
    }
}
