//! The scheduler's relay agent (OpenSMTPD's mta process): envelopes of type mta are gathered
//! per message and destination, so that one transaction carries all of a message's
//! recipients that go the same way; the route is chosen (smarthost or MX); the transaction
//! runs on a pooled or new session; each envelope gets its `mta delivery` line and its result.
//!
//! The scheduler hands over one envelope per call; the agent holds a new batch for a moment
//! (`GATHER`) so that the envelopes the scheduler hands over together (all those of a new
//! message) join it.

use std::collections::HashMap;
use std::io::Read;
use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rsmtpd_config::Method;
use rsmtpd_protocol::client::{
    dot_stuff, AuthCredentials, ClientConfig, Outcome, Recipient, Tls, Transaction,
    TOO_MANY_FAILURES,
};
use rsmtpd_protocol::table_protocol::Service;
use tokio::sync::oneshot;

use super::route::{self, host_text, NoRoute, Resolver, Routes, Target};
use super::session::{run_job, Connect, Job, JobResult, Key, Pool};
use super::url::{RelayUrl, Scheme};
use crate::queue::envelope::{DsnRet, DSN_DELAY, DSN_FAILURE, DSN_NEVER, DSN_SUCCESS};
use crate::queue::{DeliveryType, Envelope};
use crate::routing::lookup::Lookup;
use crate::scheduler::{duration_to_text, Agent, AgentResult, BoxFuture};
use crate::server::Server;
use crate::sys::log;

/// How long a new batch waits for the rest of its message's envelopes.
const GATHER: Duration = Duration::from_millis(20);

/// 6.8's `ESC_OTHER_STATUS` (X.0.0), used when the remote gave no enhanced code we can keep.
const ESC_OTHER_STATUS: u8 = 0;

type BatchKey = (u32, String, String);

struct Waiting {
    env: Envelope,
    reply: oneshot::Sender<AgentResult>,
}

pub struct RelayAgent {
    pub server: Arc<Server>,
    /// Local deliveries (everything that is not type mta).
    pub local: Arc<dyn Agent>,
    pub resolver: Arc<dyn Resolver>,
    routes: Arc<Routes>,
    pool: Arc<Pool>,
    batches: Arc<Mutex<HashMap<BatchKey, Vec<Waiting>>>>,
    src_turn: Arc<AtomicUsize>,
    tls: Arc<super::tls::TlsCache>,
    hoststats: Arc<super::HostStats>,
    conns: Arc<super::limits::Conns>,
    blocks: Arc<super::Blocks>,
    pacer: Arc<super::pace::Pacer>,
}

impl RelayAgent {
    pub fn new(server: Arc<Server>, local: Arc<dyn Agent>, resolver: Arc<dyn Resolver>) -> Self {
        let routes: Arc<Routes> = Arc::default();
        let hoststats: Arc<super::HostStats> = Arc::default();
        let conns: Arc<super::limits::Conns> = Arc::default();
        let blocks: Arc<super::Blocks> = Arc::default();
        let _ = server.relay.set(Arc::new(super::Views {
            routes: routes.clone(),
            hoststats: hoststats.clone(),
            conns: conns.clone(),
            blocks: blocks.clone(),
        }));
        RelayAgent {
            server: server.clone(),
            hoststats,
            local,
            resolver,
            routes,
            pool: Arc::default(),
            batches: Arc::default(),
            src_turn: Arc::default(),
            tls: Arc::default(),
            conns,
            blocks,
            pacer: Arc::default(),
        }
    }
}

impl Agent for RelayAgent {
    fn deliver<'a>(&'a self, env: &'a Envelope, message: &'a Path) -> BoxFuture<'a, AgentResult> {
        if env.kind != DeliveryType::Mta {
            return self.local.deliver(env, message);
        }
        Box::pin(async move { self.gather(env.clone()).await })
    }
}

/// What a relay action says about the route, resolved for one envelope.
#[derive(Clone, Debug)]
enum Destination {
    Smarthost(RelayUrl),
    Mx { domain: String },
}

impl RelayAgent {
    async fn gather(&self, env: Envelope) -> AgentResult {
        let key: BatchKey = (
            env.id.msgid().0,
            env.dispatcher.clone(),
            env.dest.domain.to_ascii_lowercase(),
        );
        let (tx, rx) = oneshot::channel();
        let first = {
            let Ok(mut b) = self.batches.lock() else {
                return AgentResult::temp("internal error");
            };
            let list = b.entry(key.clone()).or_default();
            list.push(Waiting { env, reply: tx });
            list.len() == 1
        };
        if first {
            let me = self.clone_parts();
            tokio::spawn(async move {
                tokio::time::sleep(GATHER).await;
                let batch = me
                    .batches
                    .lock()
                    .ok()
                    .and_then(|mut b| b.remove(&key))
                    .unwrap_or_default();
                me.run_batch(batch).await;
            });
        }
        rx.await
            .unwrap_or_else(|_| AgentResult::temp("relay session ended"))
    }

    fn clone_parts(&self) -> Arc<Parts> {
        Arc::new(Parts {
            server: self.server.clone(),
            resolver: self.resolver.clone(),
            routes: self.routes.clone(),
            pool: self.pool.clone(),
            batches: self.batches.clone(),
            src_turn: self.src_turn.clone(),
            tls: self.tls.clone(),
            hoststats: self.hoststats.clone(),
            conns: self.conns.clone(),
            blocks: self.blocks.clone(),
            pacer: self.pacer.clone(),
        })
    }
}

struct Parts {
    server: Arc<Server>,
    resolver: Arc<dyn Resolver>,
    routes: Arc<Routes>,
    pool: Arc<Pool>,
    batches: Arc<Mutex<HashMap<BatchKey, Vec<Waiting>>>>,
    /// `src <t>`: the next source to use, turning through the table's addresses as 6.8's
    /// `table_fetch` does.
    src_turn: Arc<AtomicUsize>,
    tls: Arc<super::tls::TlsCache>,
    hoststats: Arc<super::HostStats>,
    conns: Arc<super::limits::Conns>,
    /// `smtpctl pause mta from SRC for DOMAIN`.
    blocks: Arc<super::Blocks>,
    /// The destinations' turns under `destination-rate-delay`.
    pacer: Arc<super::pace::Pacer>,
}

/// How many deliveries may hold or wait for one paced destination's turn in the agent; the
/// others go back to the scheduler (`AgentResult::Later`) to come back one by one as the line
/// moves. A few are enough to keep the destination busy, and each waiting one holds an
/// in-flight slot that every destination shares (`scheduler limit max-inflight`).
const PACE_BACKLOG: usize = 10;

/// `user@domain`, or empty for the null sender.
fn addr(user: &str, domain: &str) -> String {
    if user.is_empty() && domain.is_empty() {
        String::new()
    } else {
        format!("{user}@{domain}")
    }
}

/// `dsn_strnotify`.
fn notify_text(bits: u8) -> Option<String> {
    if bits == 0 {
        return None;
    }
    if bits & DSN_NEVER != 0 {
        return Some("NEVER".into());
    }
    let mut v = Vec::new();
    if bits & DSN_SUCCESS != 0 {
        v.push("SUCCESS");
    }
    if bits & DSN_FAILURE != 0 {
        v.push("FAILURE");
    }
    if bits & DSN_DELAY != 0 {
        v.push("DELAY");
    }
    Some(v.join(","))
}

/// The envelope's esc code from a remote reply: its enhanced code when it fits OpenSMTPD's
/// one-digit subject and detail (5.1.1 → 11), else X.0.0. 6.8 always stores X.0.0; carrying
/// the remote's code into the DSN is on purpose (README, "Relaying").
fn esc_of(o: &Outcome) -> u8 {
    let r = match o {
        Outcome::TempFail(_, Some(r)) | Outcome::PermFail(_, Some(r)) => r,
        _ => return ESC_OTHER_STATUS,
    };
    match r.enhanced() {
        Some((_, s, d)) if s <= 9 && d <= 9 => (s * 10 + d) as u8,
        _ => ESC_OTHER_STATUS,
    }
}

struct Delivery<'a> {
    env: &'a Envelope,
    sender: &'a str,
}

impl Delivery<'_> {
    /// 6.8's `mta_log`.
    fn log(&self, session: u64, source: Option<IpAddr>, relay: &str, result: &str, stat: &str) {
        let e = self.env;
        let dest = addr(&e.dest.user, &e.dest.domain);
        let rcpt = addr(&e.rcpt.user, &e.rcpt.domain);
        let rcpt = if rcpt == dest { "-".to_string() } else { rcpt };
        let now = crate::sys::date::now();
        log::info(&format!(
            "{session:016x} mta delivery evpid={:016x} from=<{}> to=<{dest}> rcpt=<{rcpt}> source=\"{}\" relay=\"{relay}\" delay={} result=\"{result}\" stat=\"{stat}\"",
            e.id.0,
            self.sender,
            source.map_or("-".to_string(), |s| crate::sys::compat::addr_text(&s)),
            duration_to_text(now - e.ctime),
        ));
    }
}

impl Parts {
    async fn run_batch(&self, mut batch: Vec<Waiting>) {
        batch.sort_by_key(|w| w.env.id.0);
        if batch.is_empty() {
            return;
        }
        let results = self.deliver(&batch).await;
        for (w, r) in batch.into_iter().zip(results) {
            let _ = w.reply.send(r);
        }
    }

    fn relay_config(&self, env: &Envelope) -> Result<rsmtpd_config::model::Relay, AgentResult> {
        let running = self.server.running();
        match running.config.action(&env.dispatcher).map(|a| &a.method) {
            Some(Method::Relay(r)) => Ok(r.clone()),
            Some(_) => Err(AgentResult::perm("unknown dispatcher")),
            None => Err(crate::server::unknown_dispatcher(&running, env)),
        }
    }

    /// The smarthost of `host <t>` (6.8: `table_fetch`, the table's first entry here) or of
    /// `domain <t>` for the destination domain, else MX routing.
    fn destination(
        &self,
        r: &rsmtpd_config::model::Relay,
        domain: &str,
    ) -> Result<Destination, String> {
        let tables = self.server.running().tables.load();
        let url = if let Some(t) = &r.host {
            // 6.8's table_fetch: an external table's next entry, a static table's first.
            let first = match tables.fetch_relayhost(t) {
                Lookup::Found(u) => Some(u),
                _ => None,
            };
            match first {
                Some(u) => Some(u),
                None => return Err("Cannot fetch smarthost".into()),
            }
        } else if let Some(t) = &r.domain {
            match tables.lookup_domain(t, domain) {
                Lookup::Found(u) => Some(u),
                Lookup::NotFound => None,
                Lookup::TempFail => return Err("Cannot fetch smarthost".into()),
            }
        } else {
            None
        };
        match url {
            None => Ok(Destination::Mx {
                domain: domain.to_string(),
            }),
            Some(u) => match RelayUrl::parse(&u) {
                Some(url) => Ok(Destination::Smarthost(url)),
                None => {
                    log::warn(&format!("warn: Failed to parse smarthost {u}"));
                    Err("Cannot parse smarthost".into())
                }
            },
        }
    }

    async fn deliver(&self, batch: &[Waiting]) -> Vec<AgentResult> {
        let env0 = &batch[0].env;
        let n = batch.len();
        let all = |r: AgentResult| vec![r; n];
        let relay = match self.relay_config(env0) {
            Ok(r) => r,
            Err(e) => return all(e),
        };
        let sender = if !env0.sender.user.is_empty() {
            match relay.mail_from.as_deref().and_then(parse_mailaddr) {
                Some((u, d)) => addr(
                    if u.is_empty() { &env0.sender.user } else { &u },
                    if d.is_empty() {
                        &env0.sender.domain
                    } else {
                        &d
                    },
                ),
                None => addr(&env0.sender.user, &env0.sender.domain),
            }
        } else {
            String::new()
        };
        // `srs`: the sender of forwarded mail (the first envelope's RCPT is not its
        // destination) in the name of the RCPT's domain, as 6.8's MTA_MAIL; the lines of
        // the session's deliveries name it, those of failures before a session do not.
        let srs_sender = self.srs_sender(&relay, &sender, env0);
        let dests: Vec<Delivery> = batch
            .iter()
            .map(|w| Delivery {
                env: &w.env,
                sender: &sender,
            })
            .collect();
        let fail_all = |text: &str, permanent: bool, relay_text: &str| -> Vec<AgentResult> {
            for d in &dests {
                d.log(
                    0,
                    None,
                    relay_text,
                    if permanent { "PermFail" } else { "TempFail" },
                    text,
                );
            }
            let r = if permanent {
                AgentResult::PermFail {
                    error: text.into(),
                    stat: text.into(),
                    code: ESC_OTHER_STATUS,
                }
            } else {
                AgentResult::TempFail {
                    error: text.into(),
                    stat: text.into(),
                    code: ESC_OTHER_STATUS,
                }
            };
            vec![r; n]
        };
        let domain = env0.dest.domain.to_ascii_lowercase();
        let dest = match self.destination(&relay, &domain) {
            Ok(d) => d,
            Err(text) => return fail_all(&text, false, &domain),
        };
        // `destination-rate-delay`: past a backlog, the envelopes go back to the scheduler
        // untried rather than wait here, where they would hold in-flight slots that every
        // destination shares.
        let pace_name = match &dest {
            Destination::Smarthost(u) => u.host.to_ascii_lowercase(),
            Destination::Mx { domain } => domain.clone(),
        };
        let delay = super::limits::Limits::for_domain(&self.server.running().config, &pace_name)
            .destination_rate_delay;
        // Counted in until this delivery is over.
        let _admitted = if delay.is_zero() {
            None
        } else {
            match self.pacer.admit(&pace_name, PACE_BACKLOG) {
                Some(a) => Some(a),
                None => {
                    let now = std::time::Instant::now();
                    let at = self.pacer.later(&pace_name, delay, now);
                    let after = i64::try_from(at.saturating_duration_since(now).as_secs())
                        .unwrap_or(i64::MAX);
                    return vec![AgentResult::Later { after }; n];
                }
            }
        };
        let (targets, port, scheme, relay_name, label) = match &dest {
            Destination::Smarthost(u) => {
                let t = match u.literal().or_else(|| u.host.parse().ok()) {
                    Some(ip) => Ok(vec![Target {
                        mx: u.host.clone(),
                        addr: ip,
                    }]),
                    None => route::smarthost(&*self.resolver, &u.host).await,
                };
                (t, u.port, u.scheme, u.host.clone(), u.label.clone())
            }
            Destination::Mx { domain } => {
                let backup = relay
                    .backup
                    .as_ref()
                    .map(|b| b.clone().unwrap_or_else(|| self.server.hostname.clone()));
                let t = route::mx_targets(&*self.resolver, domain, backup.as_deref()).await;
                (t, 25, Scheme::Smtp, domain.clone(), None)
            }
        };
        let (mut scheme, label) = (scheme, label);
        // `tls [no-verify]`: smtp:// becomes smtp+tls://, smtp+notls:// is refused (6.8's
        // `mta_on_smarthost`... `TLS required for relaying`).
        if relay.tls.is_some() {
            match scheme {
                Scheme::Smtp => scheme = Scheme::SmtpTls,
                Scheme::SmtpNoTls | Scheme::Lmtp => {
                    log::warn(&format!(
                        "warn: TLS required for action \"{}\"",
                        env0.dispatcher
                    ));
                    return fail_all("TLS required for relaying", false, &relay_name);
                }
                Scheme::SmtpTls | Scheme::Smtps => {}
            }
        }
        // An auth label: the credentials of `auth <t>` for it.
        let auth = match &label {
            None => None,
            Some(l) => {
                let Some(table) = &relay.auth else {
                    log::warn(&format!(
                        "warn: No auth table on action \"{}\" for relay {}",
                        env0.dispatcher, relay_name
                    ));
                    return fail_all("No auth table for relaying", false, &relay_name);
                };
                match self.server.running().tables.load().credentials(table, l) {
                    Lookup::Found(c) => Some(AuthCredentials {
                        username: c.username,
                        password: c.password,
                    }),
                    other => {
                        if matches!(other, Lookup::NotFound) {
                            log::warn(&format!("warn: credentials not found for {table}:{l}"));
                        }
                        log::warn(&format!(
                            "warn: Failed to retrieve secret for [relay:{relay_name},{},auth={table}:{l}]",
                            scheme_word(scheme)
                        ));
                        return fail_all("Could not retrieve credentials", false, &relay_name);
                    }
                }
            }
        };
        let targets = match targets {
            Ok(t) => t,
            Err(NoRoute { text, permanent }) => {
                log::info(&format!(
                    "smtp-out: Failed to resolve MX for [relay:{relay_name},{}]: {text}",
                    scheme_word(scheme)
                ));
                return fail_all(&text, permanent, &relay_name);
            }
        };
        // The message, in wire form, once for every address tried.
        let body = match read_message(&self.server, env0).await {
            Ok(b) => b,
            Err(_) => return fail_all("Error reading content file", false, &relay_name),
        };
        let sent_sender = srs_sender.as_deref().unwrap_or(&sender);
        let session_dests: Vec<Delivery> = batch
            .iter()
            .map(|w| Delivery {
                env: &w.env,
                sender: sent_sender,
            })
            .collect();
        let mut tx = Transaction::new(
            sent_sender.to_string(),
            batch
                .iter()
                .map(|w| {
                    let e = &w.env;
                    Recipient {
                        address: addr(&e.dest.user, &e.dest.domain),
                        notify: notify_text(e.dsn_notify),
                        orcpt: (!e.dsn_orcpt.user.is_empty() && !e.dsn_orcpt.domain.is_empty())
                            .then(|| addr(&e.dsn_orcpt.user, &e.dsn_orcpt.domain)),
                    }
                })
                .collect(),
        );
        tx.size = Some(body.len() as u64);
        tx.eight_bit = body.iter().any(|&b| b >= 0x80);
        tx.ret = env0.dsn_ret.map(|r| match r {
            DsnRet::Full => "FULL".to_string(),
            DsnRet::Hdrs => "HDRS".to_string(),
        });
        tx.envid = (!env0.dsn_envid.is_empty()).then(|| env0.dsn_envid.clone());
        let body = Arc::new(body);
        let helo = relay
            .helo
            .clone()
            .unwrap_or_else(|| self.server.hostname.clone());
        // `src <t>`: the addresses to connect from (6.8's K_SOURCE `table_fetch`).
        let sources = match &relay.src {
            None => None,
            Some(t) => {
                let list = self.sources(t);
                if list.is_empty() {
                    log::warn(&format!(
                        "warn: Failed to get source address for [relay:{relay_name},{}]",
                        scheme_word(scheme)
                    ));
                    return fail_all("Could not retrieve source address", false, &relay_name);
                }
                Some(list)
            }
        };
        let limits = super::limits::Limits::for_domain(&self.server.running().config, &relay_name);
        let relay_id = relay_text(
            &relay,
            &relay_name,
            &dest,
            scheme,
            port,
            label.as_deref(),
            &self.server.hostname,
        );
        // `filter F`: the smtp-out reports of each session to the chain's processes.
        let reports: Option<super::session::ReportsFactory> = relay.filter.clone().map(|name| {
            let server = self.server.clone();
            let f: super::session::ReportsFactory = Arc::new(move |id| {
                let procs = server.procs.get()?;
                super::report::Reports::open(&server.running().config, procs, &name, id)
            });
            f
        });
        let mut tried = false;
        let mut no_source = false;
        let mut blocked = false;
        for t in &targets {
            // `mta limit inet4|inet6`: the other family is not used (6.8's family mismatch).
            if !limits.allows(t.addr) {
                no_source = true;
                continue;
            }
            // A source of the target's family, the next in turn (6.8 pairs each source with
            // the hosts it can reach).
            let src = match &sources {
                None => None,
                Some(list) => {
                    let fam: Vec<IpAddr> = list
                        .iter()
                        .filter(|a| a.is_ipv4() == t.addr.is_ipv4())
                        .copied()
                        .collect();
                    if fam.is_empty() {
                        no_source = true;
                        continue;
                    }
                    // `pause mta from SRC for DOMAIN`: that source is not used for the relay.
                    let fam: Vec<IpAddr> = fam
                        .into_iter()
                        .filter(|a| !self.blocks.is_blocked(*a, &relay_name))
                        .collect();
                    if fam.is_empty() {
                        blocked = true;
                        continue;
                    }
                    let i = self.src_turn.fetch_add(1, Ordering::Relaxed) % fam.len();
                    fam.get(i).copied()
                }
            };
            if self.routes.is_disabled(src, t.addr) {
                continue;
            }
            let ptr = self.resolver.ptr(t.addr).await;
            // `helo-src <t>`: the name for the source address (K_ADDRNAME); only with a bound
            // source, as in 6.8 (without `src` the route has no source address to look up).
            let helo = match (&relay.helo_src, src) {
                (Some(table), Some(a)) => {
                    match self.server.running().tables.load().addrname(table, a) {
                        Lookup::Found(name) => name,
                        _ => {
                            log::info(&format!(
                                "smtp-out: Error on {}: Failed to retrieve helo string",
                                route::route_text(src, t.addr, ptr.as_deref())
                            ));
                            continue;
                        }
                    }
                }
                _ => helo.clone(),
            };
            tried = true;
            let mut cc = ClientConfig::new(helo.clone());
            cc.lmtp = scheme == Scheme::Lmtp;
            cc.tls = match scheme {
                Scheme::Smtp => Tls::Opportunistic,
                Scheme::SmtpTls => Tls::Required,
                // smtps: TLS before the banner; the others never.
                Scheme::Smtps | Scheme::SmtpNoTls | Scheme::Lmtp => Tls::Off,
            };
            cc.auth = auth.clone();
            cc.keepalive = limits.keepalive;
            cc.max_failures = limits.max_failures_per_session;
            cc.transaction_delay = limits.transaction_delay;
            let tls = (!matches!(scheme, Scheme::SmtpNoTls | Scheme::Lmtp))
                .then(|| self.tls_setup(&relay, &helo, scheme));
            let c = Connect {
                key: Key {
                    action: env0.dispatcher.clone(),
                    src,
                    addr: t.addr,
                    port,
                    scheme,
                    helo: helo.clone(),
                },
                ptr: ptr.clone(),
                client: cc,
                tls,
                smtps: scheme == Scheme::Smtps,
                mx_name: t.mx.clone(),
                conn: super::limits::ConnKey {
                    relay: relay_id.clone(),
                    domain: relay_name.clone(),
                    src,
                    addr: t.addr,
                },
                limits: limits.clone(),
                reports: reports.clone(),
            };
            let (reply, _) = oneshot::channel();
            let job = Job {
                tx: tx.clone(),
                body: body.clone(),
                reply,
                info: super::report::TxInfo {
                    msgid: env0.id.msgid().0,
                    sender: sent_sender.to_string(),
                    rcpts: batch
                        .iter()
                        .map(|w| (w.env.id.0, addr(&w.env.dest.user, &w.env.dest.domain)))
                        .collect(),
                    size: body.len(),
                },
                turn: None,
            };
            match run_job(&self.pool, &self.routes, &self.conns, &self.pacer, c, job).await {
                JobResult::NotStarted => continue,
                JobResult::Done {
                    outcomes,
                    session,
                    source,
                } => {
                    let relay_text = host_text(t.addr, ptr.as_deref());
                    return session_dests
                        .iter()
                        .zip(outcomes)
                        .map(|(d, o)| {
                            let code = esc_of(&o);
                            let stat = match &o {
                                Outcome::Delivered(r) => r.line(),
                                Outcome::TempFail(t, _) | Outcome::PermFail(t, _) => t.clone(),
                            };
                            let domain = &d.env.dest.domain;
                            self.hoststats.undefer(domain, d.env.id.0);
                            self.hoststats
                                .update(domain, &stat, crate::sys::date::now());
                            match o {
                                Outcome::Delivered(r) => {
                                    self.reschedule_deferred(domain);
                                    d.log(session, source, &relay_text, "Ok", &r.line());
                                    AgentResult::Ok
                                }
                                Outcome::TempFail(text, _) => {
                                    d.log(session, source, &relay_text, "TempFail", &text);
                                    // Given up with the session, not refused: sent again as
                                    // soon as the domain accepts mail (6.8's cache=1).
                                    if text == TOO_MANY_FAILURES {
                                        let max =
                                            self.server.running().config.options.mta_max_deferred;
                                        self.hoststats.defer(domain, d.env.id.0, max);
                                    }
                                    AgentResult::TempFail {
                                        error: text.clone(),
                                        stat: text,
                                        code,
                                    }
                                }
                                Outcome::PermFail(text, _) => {
                                    d.log(session, source, &relay_text, "PermFail", &text);
                                    AgentResult::PermFail {
                                        error: text.clone(),
                                        stat: text,
                                        code,
                                    }
                                }
                            }
                        })
                        .collect();
                }
            }
        }
        let text = if tried {
            "Network error on destination MXs"
        } else if no_source {
            "Address family mismatch on destination MXs"
        } else if blocked {
            "All routes to destination blocked"
        } else {
            "No valid route to destination"
        };
        // Every route failed: the envelopes wait for the domain to accept mail again (6.8
        // caches them when all its connectors have route errors).
        if !matches!(
            text,
            "Address family mismatch on destination MXs" | "All routes to destination blocked"
        ) {
            let max = self.server.running().config.options.mta_max_deferred;
            for w in batch {
                self.hoststats.defer(&w.env.dest.domain, w.env.id.0, max);
            }
        }
        fail_all(text, false, &relay_name)
    }

    /// `mta_hoststat_reschedule`: the envelopes deferred for `domain` are due now.
    fn reschedule_deferred(&self, domain: &str) {
        let ids = self.hoststats.take_deferred(domain);
        if ids.is_empty() {
            return;
        }
        let Some(h) = self.server.scheduler.get().cloned() else {
            return;
        };
        tokio::spawn(async move {
            for id in ids {
                h.schedule(crate::scheduler::Target::Envelope(crate::queue::EvpId(id)))
                    .await;
            }
        });
    }
}

impl Parts {
    /// The SRS-rewritten sender, when the relay has `srs`, the global key is set, the sender
    /// is an address and the first envelope was forwarded (its RCPT is not its destination).
    fn srs_sender(
        &self,
        relay: &rsmtpd_config::model::Relay,
        sender: &str,
        env: &Envelope,
    ) -> Option<String> {
        let running = self.server.running();
        let o = &running.config.options;
        let key = o.srs_key.as_deref()?;
        let rcpt = addr(&env.rcpt.user, &env.rcpt.domain);
        if !relay.srs || !sender.contains('@') || rcpt == addr(&env.dest.user, &env.dest.domain) {
            return None;
        }
        // 6.8 takes what follows the RCPT's first `@`.
        let (_, domain) = rcpt.split_once('@')?;
        let keys = crate::routing::srs::Keys {
            key,
            backup: o.srs_key_backup.as_deref(),
            ttl_days: o.srs_ttl_days,
        };
        Some(crate::routing::srs::encode(
            &keys,
            sender,
            domain,
            crate::sys::date::now(),
        ))
    }

    /// The relay's TLS: the client certificate of its `pki` (else the pki named after the HELO
    /// name, if any), the anchors of its `ca` (else the ca named after the HELO name, else the
    /// system bundle), and whether a failed check ends the session: for `smtp+tls://` and
    /// `smtps://` (and `tls`), unless `tls no-verify` (6.8's `RELAY_TLS_VERIFY`).
    fn tls_setup(
        &self,
        relay: &rsmtpd_config::model::Relay,
        helo: &str,
        scheme: Scheme,
    ) -> Arc<super::tls::TlsSetup> {
        let store = self.server.tls.get().map(|t| t.store.clone());
        let pki = store.as_ref().and_then(|s| match &relay.pki {
            Some(name) => s.get(name).cloned(),
            None => s.get(helo).cloned(),
        });
        let running = self.server.running();
        let conf = &running.config;
        let ca = match &relay.ca {
            Some(name) => conf.ca(name),
            None => conf.ca(helo),
        };
        let anchors = ca
            .and_then(|c| c.cert.clone())
            .unwrap_or_else(|| crate::tls::verify::CA_FILE.to_string());
        let verify = matches!(scheme, Scheme::SmtpTls | Scheme::Smtps) && relay.tls != Some(true);
        self.tls.get(pki, &anchors, verify)
    }

    /// The addresses of a `src <t>` table (a list of addresses; entries that are not one are
    /// skipped, as 6.8's table backends refuse them).
    fn sources(&self, table: &str) -> Vec<IpAddr> {
        let tables = self.server.running().tables.load();
        // An external table: 6.8's `table_fetch(K_SOURCE)`, one address, the backend's next.
        if let Some(got) = tables.fetch(table, Service::Source) {
            return match got {
                Lookup::Found(a) => source_addr(&a).into_iter().collect(),
                _ => Vec::new(),
            };
        }
        let Some(c) = tables.table(table) else {
            return Vec::new();
        };
        c.entries().filter_map(|(k, _)| source_addr(k)).collect()
    }
}

/// A `src` entry as an address (`[v6]` brackets allowed); other entries are skipped, as 6.8's
/// `parse_sockaddr` refuses them.
fn source_addr(k: &str) -> Option<IpAddr> {
    let k = k.trim();
    let k = k
        .strip_prefix('[')
        .and_then(|x| x.strip_suffix(']'))
        .unwrap_or(k);
    k.parse::<IpAddr>().ok()
}

/// 6.8's `mta_relay_to_text`: `[relay:DOMAIN,port=N,SCHEME,auth=T:L,pki_name=P,mx,backup=B,
/// sourcetable=T,helotable=T,heloname=H]`, each part when it applies (`mx` for a smarthost,
/// whose "domain" is a host; the port when it is not the scheme's own).
#[allow(clippy::too_many_arguments)]
fn relay_text(
    r: &rsmtpd_config::model::Relay,
    name: &str,
    dest: &Destination,
    scheme: Scheme,
    port: u16,
    label: Option<&str>,
    hostname: &str,
) -> String {
    let mut t = format!("[relay:{name}");
    let smarthost = matches!(dest, Destination::Smarthost(_));
    let default_port = match scheme {
        Scheme::Smtps => 465,
        _ => 25,
    };
    if smarthost && port != default_port {
        t.push_str(&format!(",port={port}"));
    }
    t.push(',');
    t.push_str(scheme_word(scheme));
    if let (Some(table), Some(l)) = (&r.auth, label) {
        t.push_str(&format!(",auth={table}:{l}"));
    }
    if let Some(p) = &r.pki {
        t.push_str(&format!(",pki_name={p}"));
    }
    if smarthost {
        t.push_str(",mx");
    }
    if let Some(b) = &r.backup {
        t.push_str(&format!(",backup={}", b.as_deref().unwrap_or(hostname)));
    }
    if let Some(s) = &r.src {
        t.push_str(&format!(",sourcetable={s}"));
    }
    if let Some(h) = &r.helo_src {
        t.push_str(&format!(",helotable={h}"));
    }
    if let Some(h) = &r.helo {
        t.push_str(&format!(",heloname={h}"));
    }
    t.push(']');
    t
}

fn scheme_word(s: Scheme) -> &'static str {
    match s {
        Scheme::Lmtp => "lmtp",
        Scheme::Smtps => "smtps",
        Scheme::SmtpTls => "smtp+tls",
        Scheme::SmtpNoTls => "smtp+notls",
        Scheme::Smtp => "smtp",
    }
}

/// `mail-from ADDR`: `user@domain`, `@domain` or `user@`.
fn parse_mailaddr(s: &str) -> Option<(String, String)> {
    let s = s.trim_start_matches('<').trim_end_matches('>');
    let (u, d) = s.rsplit_once('@')?;
    Some((u.to_string(), d.to_string()))
}

/// The queued message (decoded if the queue is compressed or encrypted), dot-stuffed.
async fn read_message(server: &Arc<Server>, env: &Envelope) -> std::io::Result<Vec<u8>> {
    let q = server.queue.clone();
    let msgid = env.id.msgid();
    tokio::task::spawn_blocking(move || {
        let mut raw = Vec::new();
        q.open_message(msgid)?.read_to_end(&mut raw)?;
        Ok(dot_stuff(&raw))
    })
    .await
    .map_err(|_| std::io::Error::other("reader failed"))?
}
