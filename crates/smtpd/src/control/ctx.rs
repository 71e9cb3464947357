//! What smtpctl's commands do to this daemon: the scheduler and queue behind the control
//! socket, and local submission (`sendmail`) as a session on the control connection.

use std::sync::Arc;

use rsmtpd_control::{
    flags, Agent as CAgent, EnvelopeInfo, RunState as CRunState, Source as CSource, StatValue,
    Status, Subsystem, Target as CTarget,
};
use tokio::net::UnixStream;

use crate::control::{BoxFuture, ControlContext};
use crate::inbound::session;
use crate::queue::{DeliveryType, Discover, EnvelopeFlags, EvpId, MsgId, SockAddr};
use crate::routing::lookup::Update;
use crate::scheduler::schedule::{RunState, Target};
use crate::server::Server;
use crate::sys::log;

pub struct DaemonControl {
    pub server: Arc<Server>,
    pub started: i64,
}

impl DaemonControl {
    pub fn new(server: Arc<Server>) -> DaemonControl {
        DaemonControl {
            server,
            started: crate::sys::date::now(),
        }
    }
}

fn target(t: CTarget) -> Target {
    match t {
        CTarget::All => Target::All,
        CTarget::Message(m) => Target::Message(MsgId(m)),
        CTarget::Envelope(e) => Target::Envelope(EvpId(e)),
    }
}

fn addr(m: &rsmtpd_protocol::address::Mailaddr) -> String {
    format!("{}@{}", m.user, m.domain)
}

impl ControlContext for DaemonControl {
    fn list_envelopes(
        &self,
        msgid: Option<u32>,
        from: u64,
        limit: usize,
    ) -> BoxFuture<'_, Vec<EnvelopeInfo>> {
        Box::pin(async move {
            let Some(h) = self.server.scheduler.get() else {
                return Vec::new();
            };
            let mut states = h.list().await;
            states.retain(|s| s.evpid.0 >= from && msgid.is_none_or(|m| s.evpid.msgid().0 == m));
            states.sort_by_key(|s| s.evpid.0);
            states.truncate(limit);
            let mut out = Vec::new();
            for s in states {
                let Ok(env) = self.server.queue.envelope_load(s.evpid) else {
                    continue;
                };
                let mut f = 0;
                if env.flags.contains(EnvelopeFlags::BOUNCE) {
                    f |= flags::BOUNCE;
                }
                if env.flags.contains(EnvelopeFlags::AUTHENTICATED) {
                    f |= flags::AUTH;
                }
                if env.flags.contains(EnvelopeFlags::INTERNAL) {
                    f |= flags::INTERNAL;
                }
                if s.suspended {
                    f |= flags::SUSPEND;
                }
                out.push(EnvelopeInfo {
                    id: s.evpid.0,
                    source: match env.sockaddr {
                        SockAddr::Local => CSource::Local,
                        SockAddr::Ip(std::net::IpAddr::V4(_)) => CSource::Inet4,
                        SockAddr::Ip(std::net::IpAddr::V6(_)) => CSource::Inet6,
                        SockAddr::Unspec => CSource::Unknown,
                    },
                    agent: match s.kind {
                        DeliveryType::Mda => CAgent::Mda,
                        DeliveryType::Mta => CAgent::Mta,
                        DeliveryType::Bounce => CAgent::Bounce,
                    },
                    flags: f,
                    sender: addr(&env.sender),
                    rcpt: addr(&env.rcpt),
                    dest: addr(&env.dest),
                    creation: env.ctime,
                    ttl: env.ttl,
                    // queue.c: for an envelope in flight, the last try is the attempt under way,
                    // which began when the scheduler handed it out (the envelope records it only
                    // when that attempt fails).
                    lasttry: if s.state == RunState::Inflight {
                        s.time
                    } else {
                        env.last_try
                    },
                    retry: u32::from(env.retry),
                    state: match s.state {
                        RunState::Inflight => CRunState::Inflight,
                        RunState::Pending | RunState::Scheduled => {
                            CRunState::Pending { nexttry: s.time }
                        }
                    },
                    errorline: env.errorline.clone(),
                });
            }
            out
        })
    }

    fn schedule(&self, t: CTarget) -> BoxFuture<'_, u64> {
        Box::pin(async move {
            match self.server.scheduler.get() {
                Some(h) => h.schedule(target(t)).await as u64,
                None => 0,
            }
        })
    }

    fn remove(&self, t: CTarget) -> BoxFuture<'_, u64> {
        Box::pin(async move {
            match self.server.scheduler.get() {
                Some(h) => h.remove(target(t)).await as u64,
                None => 0,
            }
        })
    }

    fn discover(&self, t: CTarget) -> BoxFuture<'_, u64> {
        Box::pin(async move {
            let what = match t {
                CTarget::Message(m) => Discover::Message(MsgId(m)),
                CTarget::Envelope(e) => Discover::Envelope(EvpId(e)),
                CTarget::All => return 0,
            };
            let queue = self.server.queue.clone();
            let found = tokio::task::spawn_blocking(move || queue.discover(what))
                .await
                .unwrap_or_default();
            let n = found.len() as u64;
            if let Some(h) = self.server.scheduler.get() {
                h.discover(found);
            }
            n
        })
    }

    fn pause_envelopes(&self, t: CTarget) -> BoxFuture<'_, u64> {
        Box::pin(async move {
            match self.server.scheduler.get() {
                Some(h) => h.suspend(target(t)).await as u64,
                None => 0,
            }
        })
    }

    fn resume_envelopes(&self, t: CTarget) -> BoxFuture<'_, u64> {
        Box::pin(async move {
            match self.server.scheduler.get() {
                Some(h) => h.resume(target(t)).await as u64,
                None => 0,
            }
        })
    }

    fn set_paused(&self, subsystem: Subsystem, paused: bool) -> BoxFuture<'_, ()> {
        Box::pin(async move { self.server.set_paused(subsystem, paused) })
    }

    /// `show hoststats`, `show routes`, `show hosts`, `show relays` and `show mta paused` as
    /// 6.8's mta answers them.
    fn show(&self, what: rsmtpd_control::ShowWhat) -> Vec<String> {
        match what {
            rsmtpd_control::ShowWhat::Hoststats => self
                .server
                .relay
                .get()
                .map(|r| r.hoststats())
                .unwrap_or_default(),
            rsmtpd_control::ShowWhat::Routes => self
                .server
                .relay
                .get()
                .map(|r| r.routes())
                .unwrap_or_default(),
            rsmtpd_control::ShowWhat::Hosts => self
                .server
                .relay
                .get()
                .map(|r| r.hosts())
                .unwrap_or_default(),
            rsmtpd_control::ShowWhat::Relays => self
                .server
                .relay
                .get()
                .map(|r| r.relays())
                .unwrap_or_default(),
            rsmtpd_control::ShowWhat::MtaBlock => self
                .server
                .relay
                .get()
                .map(|r| r.blocks())
                .unwrap_or_default(),
        }
    }

    /// 6.8's mta answers OK for any address smtpctl could parse (brackets of an IPv6 one
    /// taken off, as its text_to_sockaddr does).
    fn mta_block(&self, block: bool, addr: &str, domain: &str) -> bool {
        let text = addr
            .strip_prefix('[')
            .and_then(|a| a.strip_suffix(']'))
            .unwrap_or(addr);
        let Ok(src) = text.parse::<std::net::IpAddr>() else {
            return false;
        };
        if let Some(r) = self.server.relay.get() {
            r.mta_block(block, src, domain);
        }
        true
    }

    /// control.c answers `command succeeded` at once and passes the order to the relay
    /// process, which logs it and enables the disabled routes it names (0: all).
    fn resume_route(&self, id: u64) -> bool {
        if id != 0 {
            log::debug(&format!("resuming route: {id}"));
        } else {
            log::debug("resuming all routes");
        }
        if let Some(r) = self.server.relay.get() {
            r.resume_route(id);
        }
        true
    }

    fn status(&self) -> Status {
        self.server.paused.status()
    }

    fn stats(&self) -> (i64, Vec<(String, StatValue)>) {
        (self.started, self.server.stats.snapshot())
    }

    fn digest(&self) -> rsmtpd_control::Digest {
        self.server.stats.digest()
    }

    fn set_verbose(&self, verbose: bool) {
        crate::sys::log::set_verbose(verbose);
    }

    fn update_table(&self, name: &str) -> BoxFuture<'_, bool> {
        let server = self.server.clone();
        let name = name.to_string();
        Box::pin(async move {
            // Reading a large file is blocking work: not on the async workers.
            let (name, outcome) = match tokio::task::spawn_blocking(move || {
                let outcome = server.running().tables.update(&name);
                (name, outcome)
            })
            .await
            {
                Ok(r) => r,
                Err(_) => return false,
            };
            // The lines lka.c and the table backends log.
            match outcome {
                Update::NotFound => {
                    log::warn(&format!("warn: Lookup table not found: \"{name}\""));
                    false
                }
                Update::StaticUpdated => {
                    log::info(&format!("info: Table \"{name}\" successfully updated"));
                    true
                }
                Update::StaticFailed(line) => {
                    log::warn(&line);
                    log::info(&format!("info: Failed to update table \"{name}\""));
                    false
                }
                Update::Updated => true,
                Update::Failed => false,
            }
        })
    }

    fn enqueue(&self, conn: UnixStream, _uid: u32) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let server = self.server.clone();
            let rdns = server.hostname.clone();
            session::run_local(server, conn, rdns).await;
        })
    }
}
