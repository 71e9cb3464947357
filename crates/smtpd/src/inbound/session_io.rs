//! What the shell keeps for one session next to the protocol machine ([`SessionIo`]: the
//! client, the listener, the message being written and its envelopes), and the server's
//! answers to the machine's requests that need it: builtin filters, message creation, RCPT
//! routing and envelope building, commit and rollback. They are methods of [`Server`] written
//! here so that `server.rs` holds only what every part of the daemon shares, and knows nothing
//! of sessions.

use std::sync::Arc;

use rsmtpd_config::lexer::strerror;
use rsmtpd_protocol::address::Mailaddr;
use rsmtpd_protocol::command::{MailFrom, RcptTo, Ret};
use rsmtpd_protocol::received::PeerAddr;
use rsmtpd_protocol::server::{FilterDecision, FilterPhase, RecipientResult, Session};

use crate::inbound::filter::FilterFacts;
use crate::listener::Listening;
use crate::queue::{DeliveryType, DsnRet, Envelope, EnvelopeFlags, MessageWriter, MsgId, SockAddr};
use crate::routing::expand::{expand, DeliveryType as ExpandType, ExpandContext};
use crate::routing::forward::SystemForwards;
use crate::routing::lookup::Source;
use crate::routing::rule::RuleEnvelope;
use crate::server::{Running, Server};
use crate::sys::log::{self, Trace};

/// What a session knows about its client before the banner.
pub struct Client {
    pub peer: PeerAddr,
    /// Reverse name, or None (`<unknown>`).
    pub rdns: Option<String>,
    pub fcrdns: bool,
    /// The connection's peer and local socket addresses (None on the local socket), for the
    /// filters' `link-connect`.
    pub sockets: Option<(std::net::SocketAddr, std::net::SocketAddr)>,
}

/// Per-session state the shell keeps next to the protocol machine.
pub struct SessionIo {
    pub id: u64,
    pub client: Client,
    pub listen: Arc<Listening>,
    /// The configuration the session started with: it keeps it to its end, across a reload.
    pub running: Arc<Running>,
    msgid: Option<MsgId>,
    writer: Option<MessageWriter>,
    /// One per accepted RCPT: the id of its last envelope and the address, for the log.
    envelopes: Vec<(u64, Mailaddr)>,
    /// Every envelope of the message, for the scheduler once it is committed.
    created: Vec<Envelope>,
    filter_helo: Option<String>,
    filter_mail_from: Option<String>,
    /// The user once AUTH passed, for builtin filters' `auth` criteria (lka_filter.c keeps it
    /// from the `link-auth` report).
    pub filter_username: Option<String>,
}

/// The session facts rules and expansion look at.
pub struct Facts {
    pub helo: String,
    pub smtpname: String,
    pub tls: bool,
    pub auth: Option<String>,
}

impl SessionIo {
    pub fn new(
        id: u64,
        client: Client,
        listen: Arc<Listening>,
        running: Arc<Running>,
    ) -> SessionIo {
        SessionIo {
            id,
            client,
            listen,
            running,
            msgid: None,
            writer: None,
            envelopes: Vec::new(),
            created: Vec::new(),
            filter_helo: None,
            filter_mail_from: None,
            filter_username: None,
        }
    }

    /// How many envelopes the message has so far.
    pub fn envelope_count(&self) -> usize {
        self.created.len()
    }

    /// The ids of the envelopes from the `from`th on (those of the last RCPT).
    pub fn envelope_ids_from(&self, from: usize) -> Vec<u64> {
        self.created.iter().skip(from).map(|e| e.id.0).collect()
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
    /// The listener's builtin filters for one command.
    /// The listener's filter chain for one command: builtin members in place, proc members
    /// through their processes (the session waits on its channel, no thread blocks).
    pub async fn filter(
        &self,
        tx: &mut SessionIo,
        link: &mut crate::inbound::filter_link::FilterLink,
        phase: FilterPhase,
        param: &str,
    ) -> Result<FilterDecision, crate::inbound::filter_link::Broken> {
        // The session's filter state follows the commands, as lka_filter.c's filter_protocol().
        match phase {
            FilterPhase::Helo | FilterPhase::Ehlo => tx.filter_helo = Some(param.to_string()),
            FilterPhase::MailFrom => {
                tx.filter_mail_from =
                    Some(crate::inbound::filter::strip_brackets(param).to_string())
            }
            _ => {}
        }
        let rdns = tx.client.rdns.as_deref().unwrap_or("<unknown>");
        let facts = FilterFacts {
            rdns,
            fcrdns: tx.client.fcrdns,
            src: Some(tx.source()),
            helo: tx.filter_helo.as_deref(),
            username: tx.filter_username.as_deref(),
            mail_from: tx.filter_mail_from.as_deref(),
        };
        // A snapshot of the tables for this phase; an `update table` while a proc filter
        // answers applies from the next command.
        let running = tx.running.clone();
        let tables = std::sync::Arc::clone(&running.tables.load());
        link.phase(
            &running.config,
            &tables,
            phase,
            param,
            &facts,
            rdns,
            rsmtpd_protocol::server::SESSION_TIMEOUT,
        )
        .await
    }

    pub fn create_message(&self, tx: &mut SessionIo) -> std::io::Result<u32> {
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

    /// Rules, expansion, and one envelope per delivery, at RCPT time. This blocks (getpwnam,
    /// which may ask NSS or LDAP; `~/.forward` files; envelope files written and synced), so it
    /// runs under `block_in_place`: the worker's other sessions move to another thread meanwhile.
    pub fn recipient(
        &self,
        tx: &mut SessionIo,
        facts: &Facts,
        msgid: u32,
        mail: Option<&MailFrom>,
        rcpt: &RcptTo,
    ) -> RecipientResult {
        crate::routing::lookup::blocking(|| self.recipient_now(tx, facts, msgid, mail, rcpt))
    }

    fn recipient_now(
        &self,
        tx: &mut SessionIo,
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
        let running = tx.running.clone();
        let tables = running.tables.load();
        let cx = ExpandContext {
            conf: &running.config,
            tables: &tables,
            forwards: &SystemForwards,
            smtpd_user: &self.smtpd_user,
            trace: log::tracing(Trace::Expand) || log::tracing(Trace::Rules),
            now: crate::sys::date::now(),
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
        for l in &expansion.infos {
            log::info(l);
        }
        let deliveries = match expansion.result {
            Ok(d) => d,
            Err(e) => return RecipientResult::Refused(e.reply_line()),
        };
        let now = crate::sys::date::now();
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
                ttl: running
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
                    .mda_exec(crate::sys::system::LIBEXEC_DIRS[1])
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
                    // scheduler.c counts an envelope submitted until its message is committed.
                    crate::sys::stat::increment("scheduler.envelope.incoming", 1);
                    tx.created.push(e);
                }
                Err(err) => {
                    log::warn(&format!(
                        "warn: queue: cannot create envelope: {}{}",
                        strerror(&err),
                        crate::startup::storage_hint(&err)
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

    pub fn open_message(&self, tx: &mut SessionIo, msgid: u32) -> std::io::Result<()> {
        tx.writer = Some(self.queue.message_writer(MsgId(msgid))?);
        Ok(())
    }

    /// Makes the message durable; `Ok` only once it is on stable storage.
    pub async fn commit(&self, tx: &mut SessionIo, msgid: u32) -> std::io::Result<()> {
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
        crate::sys::stat::decrement("scheduler.envelope.incoming", created.len());
        if r.is_ok() {
            if let Some(s) = self.scheduler.get() {
                s.insert(created);
            }
        }
        if let Err(e) = &r {
            log::warn(&format!(
                "warn: queue: cannot commit message {:08x}: {}{}",
                msgid,
                strerror(e),
                crate::startup::storage_hint(e)
            ));
        }
        r
    }

    pub fn rollback(&self, tx: &mut SessionIo, msgid: u32) {
        tx.writer = None;
        crate::sys::stat::decrement("scheduler.envelope.incoming", tx.created.len());
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
    pub fn rollback_open(&self, tx: &mut SessionIo) {
        if let Some(m) = tx.msgid {
            self.rollback(tx, m.0);
        }
    }
}
