//! What all sessions share: the configuration, the tables, DNS, the queue; and the work a
//! session asks of them (rules and expansion at RCPT, the queue at DATA).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use rsmtpd_config::lexer::strerror;
use rsmtpd_config::Config;
use rsmtpd_protocol::address::Mailaddr;
use rsmtpd_protocol::command::{MailFrom, RcptTo, Ret};
use rsmtpd_protocol::received::PeerAddr;
use rsmtpd_protocol::session::{FilterDecision, FilterPhase, RecipientResult, Session};

use crate::dns::Dns;
use crate::expand::{expand, DeliveryType as ExpandType, ExpandContext, SystemForwards};
use crate::filter::FilterFacts;
use crate::log::{self, Trace};
use crate::lookup::{HostInfo, LiveTables, Source, SystemUsers, Tables};
use crate::queue::{
    DeliveryType, DsnRet, Envelope, EnvelopeFlags, MessageWriter, MsgId, Queue, QueueOptions,
    SockAddr,
};
use crate::rule::RuleEnvelope;
use crate::scheduler::Handle;
use crate::session::Client;

/// One listening address and the options its sessions run with.
#[derive(Clone, Debug)]
pub struct Listening {
    /// None for the control socket.
    pub addr: Option<SocketAddr>,
    pub port: u16,
    /// The name in the banner and Received lines.
    pub hostname: String,
    pub tag: Option<String>,
    pub filter: Option<String>,
    pub no_dsn: bool,
    pub mask_src: bool,
    pub received_auth: bool,
    /// Loopback or the control socket: `from local` rules match.
    pub local: bool,
    /// OpenSMTPD's listener flags, for its debug line.
    pub flags: u32,
    pub pki: String,
    pub ca: String,
}

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

/// Per-session state the shell keeps next to the protocol machine.
pub struct Transaction {
    pub id: u64,
    pub client: Client,
    pub listen: Arc<Listening>,
    msgid: Option<MsgId>,
    writer: Option<MessageWriter>,
    /// One per accepted RCPT: the id of its last envelope and the address, for the log.
    envelopes: Vec<(u64, Mailaddr)>,
    /// Every envelope of the message, for the scheduler once it is committed.
    created: Vec<Envelope>,
    filter_helo: Option<String>,
    filter_mail_from: Option<String>,
}

/// The session facts rules and expansion look at.
pub struct Facts {
    pub helo: String,
    pub smtpname: String,
    pub tls: bool,
    pub auth: Option<String>,
}

impl Transaction {
    pub fn new(id: u64, client: Client, listen: Arc<Listening>) -> Transaction {
        Transaction {
            id,
            client,
            listen,
            msgid: None,
            writer: None,
            envelopes: Vec::new(),
            created: Vec::new(),
            filter_helo: None,
            filter_mail_from: None,
        }
    }

    /// Envelope ids and recipients of the message being received.
    pub fn envelopes(&self) -> &[(u64, Mailaddr)] {
        &self.envelopes
    }

    /// Appends message bytes; the first error sticks and fails the commit.
    pub fn write(&mut self, data: &[u8]) -> std::io::Result<()> {
        match &mut self.writer {
            Some(w) => w.write(data),
            None => Err(std::io::Error::other("no message open")),
        }
    }

    pub fn facts(&self, sess: &Session) -> Facts {
        Facts {
            helo: sess.helo().to_string(),
            smtpname: sess.smtpname().to_string(),
            tls: sess.is_secure(),
            auth: sess
                .is_authenticated()
                .then(|| String::from_utf8_lossy(sess.username()).into_owned()),
        }
    }

    fn source(&self) -> Source {
        match self.client.peer {
            PeerAddr::Inet(ip) => Source::Addr(ip),
            PeerAddr::Local => Source::Local,
        }
    }

    fn rdns(&self) -> String {
        self.client
            .rdns
            .clone()
            .unwrap_or_else(|| "<unknown>".into())
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
            local_addrs: crate::system::local_addresses(),
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

    /// The listener's builtin filters for one command.
    pub async fn filter(
        &self,
        tx: &mut Transaction,
        phase: FilterPhase,
        param: &str,
    ) -> Option<FilterDecision> {
        let listen = tx.listen.clone();
        let name = listen.filter.as_deref()?;
        // The session's filter state follows the commands, as lka_filter.c's filter_protocol().
        match phase {
            FilterPhase::Helo | FilterPhase::Ehlo => tx.filter_helo = Some(param.to_string()),
            FilterPhase::MailFrom => {
                tx.filter_mail_from = Some(crate::filter::strip_brackets(param).to_string())
            }
            _ => {}
        }
        let facts = FilterFacts {
            rdns: tx.client.rdns.as_deref().unwrap_or("<unknown>"),
            fcrdns: tx.client.fcrdns,
            src: Some(tx.source()),
            helo: tx.filter_helo.as_deref(),
            username: None,
            mail_from: tx.filter_mail_from.as_deref(),
        };
        let out = crate::filter::run(
            &self.config,
            &self.tables.load(),
            name,
            phase,
            param,
            &facts,
            log::tracing(Trace::Filters).then_some(tx.id),
        );
        for line in &out.trace.lines {
            log::trace(Trace::Filters, format_args!("{}", line));
        }
        Some(out.decision)
    }

    pub fn create_message(&self, tx: &mut Transaction) -> std::io::Result<u32> {
        let msgid = self.queue.create_message()?;
        log::trace(
            Trace::Queue,
            format_args!("queue-backend: queue_message_create() -> 1 ({})", msgid),
        );
        tx.msgid = Some(msgid);
        tx.envelopes.clear();
        tx.created.clear();
        Ok(msgid.0)
    }

    /// Rules, expansion, and one envelope per delivery, at RCPT time.
    pub fn recipient(
        &self,
        tx: &mut Transaction,
        facts: &Facts,
        msgid: u32,
        mail: Option<&MailFrom>,
        rcpt: &RcptTo,
    ) -> RecipientResult {
        let sender = mail.map(|m| m.sender.clone()).unwrap_or_default();
        let env = RuleEnvelope {
            source: tx.source(),
            hostname: tx.rdns(),
            helo: facts.helo.clone(),
            tag: tx.listen.tag.clone().unwrap_or_default(),
            tls: facts.tls,
            auth_user: facts.auth.clone(),
            sender: sender.clone(),
            dest: rcpt.rcpt.clone(),
            internal: false,
        };
        // One snapshot for the whole RCPT: its rules and expansion see one version of each table.
        let tables = self.tables.load();
        let cx = ExpandContext {
            conf: &self.config,
            tables: &tables,
            forwards: &SystemForwards,
            smtpd_user: &self.smtpd_user,
            trace: log::tracing(Trace::Expand) || log::tracing(Trace::Rules),
        };
        let expansion = expand(&cx, &env, &rcpt.rcpt);
        for line in &expansion.trace {
            let t = if line.starts_with("expand:") {
                Trace::Expand
            } else {
                Trace::Rules
            };
            log::trace(t, format_args!("{}", line));
        }
        for w in &expansion.warnings {
            log::warn(w);
        }
        let deliveries = match expansion.result {
            Ok(d) => d,
            Err(e) => return RecipientResult::Refused(e.reply_line()),
        };
        let now = crate::date::now();
        let mut last = None;
        for d in deliveries {
            let mut e = Envelope {
                dispatcher: d.action.clone(),
                tag: env.tag.clone(),
                kind: match d.kind {
                    ExpandType::Mda => DeliveryType::Mda,
                    ExpandType::Mta => DeliveryType::Mta,
                },
                smtpname: facts.smtpname.clone(),
                helo: facts.helo.clone(),
                hostname: env.hostname.clone(),
                username: facts.auth.clone().unwrap_or_default(),
                sockaddr: match tx.client.peer {
                    PeerAddr::Inet(ip) => SockAddr::Ip(ip),
                    PeerAddr::Local => SockAddr::Local,
                },
                sender: sender.clone(),
                rcpt: d.rcpt.clone(),
                dest: d.dest.clone(),
                ctime: now,
                ttl: self
                    .config
                    .action(&d.action)
                    .and_then(|a| a.ttl)
                    .map_or(0, i64::from),
                flags: EnvelopeFlags(
                    if facts.auth.is_some() {
                        EnvelopeFlags::AUTHENTICATED
                    } else {
                        0
                    } | if d.internal {
                        EnvelopeFlags::INTERNAL
                    } else {
                        0
                    },
                ),
                dsn_notify: rcpt.notify.0,
                dsn_ret: mail.and_then(|m| match m.ret {
                    Some(Ret::Full) => Some(DsnRet::Full),
                    Some(Ret::Hdrs) => Some(DsnRet::Hdrs),
                    None => None,
                }),
                dsn_envid: mail.and_then(|m| m.envid.clone()).unwrap_or_default(),
                dsn_orcpt: rcpt.orcpt.clone().unwrap_or_default(),
                mda_exec: d
                    .mda_exec(crate::system::LIBEXEC_DIRS[1])
                    .unwrap_or_default(),
                mda_subaddress: d.subaddress.clone(),
                mda_user: d.mda_user.clone().unwrap_or_default(),
                ..Envelope::default()
            };
            match self.queue.create_envelope(MsgId(msgid), &mut e) {
                Ok(id) => {
                    log::trace(
                        Trace::Queue,
                        format_args!(
                            "queue-backend: queue_envelope_create({:016x}, {}) -> 1 ({})",
                            u64::from(msgid) << 32,
                            e.to_text().len(),
                            id
                        ),
                    );
                    last = Some(id);
                    tx.created.push(e);
                }
                Err(err) => {
                    log::warn(&format!(
                        "warn: queue: cannot create envelope: {}",
                        strerror(&err)
                    ));
                    return RecipientResult::EnvelopeFailed;
                }
            }
        }
        if let Some(id) = last {
            tx.envelopes.push((id.0, rcpt.rcpt.clone()));
        }
        RecipientResult::Accepted
    }

    pub fn open_message(&self, tx: &mut Transaction, msgid: u32) -> std::io::Result<()> {
        tx.writer = Some(self.queue.message_writer(MsgId(msgid))?);
        Ok(())
    }

    /// Makes the message durable; `Ok` only once it is on stable storage.
    pub async fn commit(&self, tx: &mut Transaction, msgid: u32) -> std::io::Result<()> {
        tx.msgid = None;
        let Some(w) = tx.writer.take() else {
            self.queue.rollback(MsgId(msgid));
            return Err(std::io::Error::other("no message open"));
        };
        let r = self.queue.commit(MsgId(msgid), w).await;
        log::trace(
            Trace::Queue,
            format_args!(
                "queue-backend: queue_message_commit({:08x}) -> {}",
                msgid,
                i32::from(r.is_ok())
            ),
        );
        let created = std::mem::take(&mut tx.created);
        if r.is_ok() {
            self.stats.messages.fetch_add(1, Ordering::Relaxed);
            if let Some(s) = self.scheduler.get() {
                s.insert(created);
            }
        }
        if let Err(e) = &r {
            log::warn(&format!(
                "warn: queue: cannot commit message {:08x}: {}",
                msgid,
                strerror(e)
            ));
        }
        r
    }

    pub fn rollback(&self, tx: &mut Transaction, msgid: u32) {
        tx.writer = None;
        tx.created.clear();
        tx.msgid = None;
        tx.envelopes.clear();
        self.queue.rollback(MsgId(msgid));
        log::trace(
            Trace::Queue,
            format_args!("queue-backend: queue_message_delete({:08x}) -> 1", msgid),
        );
    }

    /// The session ended: forget a message it had not committed.
    pub fn rollback_open(&self, tx: &mut Transaction) {
        if let Some(m) = tx.msgid {
            self.rollback(tx, m.0);
        }
    }
}

/// The `Date:` of a message that has none, and of the Received line.
pub fn rfc5322_date() -> String {
    crate::date::time_to_text(crate::date::now())
}

/// `address=` text of a client.
pub fn peer_text(p: &PeerAddr) -> String {
    p.text()
}
