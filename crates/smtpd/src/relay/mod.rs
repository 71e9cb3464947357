//! Relaying: mail leaves the machine (OpenSMTPD's mta). [`agent`] is the scheduler's agent for
//! envelopes of type mta, [`route`] chooses where they go (smarthost, MX) behind a
//! [`route::Resolver`], [`session`] is the thin shell around the protocol crate's client and
//! keeps idle connections for more messages, [`url`] reads relay URLs, [`limits`] holds 6.8's
//! mta limits and [`pace`] our `destination-rate-delay`.

pub mod agent;
pub mod limits;
pub mod pace;
pub mod report;
pub mod route;
pub mod session;
pub mod tls;
pub mod url;

use std::net::IpAddr;

pub use agent::RelayAgent;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// The relay's state as `smtpctl` sees it ([`crate::server::RelayViews`]).
pub struct Views {
    pub routes: Arc<route::Routes>,
    pub hoststats: Arc<HostStats>,
    pub conns: Arc<limits::Conns>,
    pub blocks: Arc<Blocks>,
}

/// `smtpctl pause mta from ADDR for DOMAIN` (6.8's `mta_block`): the relays to DOMAIN (a
/// destination domain, or a smarthost's name) do not connect from source ADDR (`src <t>`)
/// until `resume mta from ADDR for DOMAIN`; `show mta paused` lists them. Not kept across a
/// restart, as in 6.8.
#[derive(Default)]
pub struct Blocks {
    /// (source, domain as given); the domain compared without case, as 6.8's strcasecmp.
    set: Mutex<Vec<(IpAddr, String)>>,
}

impl Blocks {
    pub fn set(&self, block: bool, src: IpAddr, domain: &str) {
        let Ok(mut v) = self.set.lock() else { return };
        let pos = v
            .iter()
            .position(|(a, d)| *a == src && d.eq_ignore_ascii_case(domain));
        match (block, pos) {
            (true, None) => v.push((src, domain.to_string())),
            (false, Some(i)) => {
                v.remove(i);
            }
            _ => {}
        }
    }

    pub fn is_blocked(&self, src: IpAddr, domain: &str) -> bool {
        self.set.lock().is_ok_and(|v| {
            v.iter()
                .any(|(a, d)| *a == src && d.eq_ignore_ascii_case(domain))
        })
    }

    /// `show mta paused`: `SOURCE -> DOMAIN`, by source then domain (6.8 orders its sources
    /// by their place in memory, i.e. in no order a script could rely on).
    pub fn lines(&self) -> Vec<String> {
        let Ok(v) = self.set.lock() else {
            return Vec::new();
        };
        let mut v = v.clone();
        v.sort_by(|a, b| {
            a.0.cmp(&b.0)
                .then_with(|| a.1.to_ascii_lowercase().cmp(&b.1.to_ascii_lowercase()))
        });
        v.into_iter()
            .map(|(a, d)| format!("{} -> {d}", crate::sys::compat::addr_text(&a)))
            .collect()
    }
}

impl crate::server::RelayViews for Views {
    fn hoststats(&self) -> Vec<String> {
        self.hoststats.lines(crate::sys::date::now())
    }

    fn routes(&self) -> Vec<String> {
        self.routes.lines()
    }

    fn resume_route(&self, id: u64) {
        self.routes.resume(id)
    }

    fn mta_block(&self, block: bool, src: IpAddr, domain: &str) {
        self.blocks.set(block, src, domain)
    }

    fn blocks(&self) -> Vec<String> {
        self.blocks.lines()
    }

    /// 6.8's `ADDR PTR refcount=N nconn=N lastconn=DURATION` per destination address.
    fn hosts(&self) -> Vec<String> {
        let now = std::time::Instant::now();
        self.conns
            .hosts()
            .into_iter()
            .map(|(addr, c)| {
                // 6.8's refcount: each route's reference, and the MX list's.
                format!(
                    "{} {} refcount={} nconn={} lastconn={}",
                    crate::sys::compat::addr_text(&addr),
                    self.routes.ptr(addr).unwrap_or_else(|| "(null)".into()),
                    c.nconn + 1,
                    c.nconn,
                    since(c.last, now)
                )
            })
            .collect()
    }

    /// 6.8's `mta_relay_show`: each relay, then its connectors (one per source).
    fn relays(&self) -> Vec<String> {
        let now = std::time::Instant::now();
        let mut out = Vec::new();
        for (relay, c, connectors) in self.conns.relays() {
            // 6.8's refcounts: the relay's, one per session and one of its own; a
            // connector's, 0 (nothing refers to it but its relay). Its relay's timer and
            // wait states (`timeout=1s wait=connector` between tasks) are of 6.8's
            // connector scheduling, which we do not have: `-` and none.
            out.push(format!(
                "{relay} refcount={} ntask=0 nconn={} lastconn={} timeout=- wait=",
                c.nconn + 1,
                c.nconn,
                since(c.last, now)
            ));
            for (src, cc) in connectors {
                out.push(format!(
                    "  connector {} refcount=0 nconn={} lastconn={} timeout=- flags=",
                    src.map_or("[]".to_string(), |a| crate::sys::compat::addr_text(&a)),
                    cc.nconn,
                    since(cc.last, now)
                ));
            }
        }
        out
    }
}

/// `lastconn=`: the time since the last connection (`duration_to_text`), `-` for none.
fn since(last: Option<std::time::Instant>, now: std::time::Instant) -> String {
    last.map_or("-".to_string(), |l| {
        crate::scheduler::duration_to_text(now.saturating_duration_since(l).as_secs() as i64)
    })
}

/// How long a host's last result is kept for `show hoststats` (6.8's
/// `HOSTSTAT_EXPIRE_DELAY`).
const HOSTSTAT_EXPIRE: i64 = 4 * 3600;

/// The last result of a delivery to each destination domain, as 6.8's mta keeps it for
/// `smtpctl show hoststats` (`mta_hoststat_update`: every recipient a session decided on,
/// delivered or not; not the failures before a session, such as a failed MX lookup), with the
/// envelopes deferred for it (`mta max-deferred`).
#[derive(Default)]
pub struct HostStats {
    /// By lower-cased domain (6.8's dict: sorted by name).
    map: Mutex<BTreeMap<String, HostStat>>,
}

struct HostStat {
    time: i64,
    text: String,
    /// Envelopes that failed on every route of the domain, to schedule again as soon as a
    /// recipient of it is accepted (6.8's `hs->deferred`), at most `mta max-deferred`.
    deferred: std::collections::BTreeSet<u64>,
}

impl HostStats {
    pub fn update(&self, domain: &str, text: &str, now: i64) {
        if let Ok(mut m) = self.map.lock() {
            m.retain(|_, h| now - h.time < HOSTSTAT_EXPIRE);
            let h = m
                .entry(domain.to_ascii_lowercase())
                .or_insert_with(|| HostStat {
                    time: now,
                    text: String::new(),
                    deferred: Default::default(),
                });
            h.time = now;
            h.text = text.to_string();
        }
    }

    /// `show hoststats`: `DOMAIN|TIME|TEXT`, entries older than 4 hours gone.
    pub fn lines(&self, now: i64) -> Vec<String> {
        let Ok(mut m) = self.map.lock() else {
            return Vec::new();
        };
        m.retain(|_, h| now - h.time < HOSTSTAT_EXPIRE);
        m.iter()
            .map(|(d, h)| format!("{d}|{}|{}", h.time, h.text))
            .collect()
    }

    /// `mta_hoststat_cache`: keeps the envelope for a rescheduling, when the domain has a
    /// result and fewer than `max` are kept.
    pub fn defer(&self, domain: &str, evpid: u64, max: i64) {
        if let Ok(mut m) = self.map.lock() {
            if let Some(h) = m.get_mut(&domain.to_ascii_lowercase()) {
                if (h.deferred.len() as i64) < max {
                    h.deferred.insert(evpid);
                }
            }
        }
    }

    /// `mta_hoststat_uncache`: the envelope is being tried.
    pub fn undefer(&self, domain: &str, evpid: u64) {
        if let Ok(mut m) = self.map.lock() {
            if let Some(h) = m.get_mut(&domain.to_ascii_lowercase()) {
                h.deferred.remove(&evpid);
            }
        }
    }

    /// `mta_hoststat_reschedule`: the domain accepted a recipient; its deferred envelopes, to
    /// schedule now.
    pub fn take_deferred(&self, domain: &str) -> Vec<u64> {
        let Ok(mut m) = self.map.lock() else {
            return Vec::new();
        };
        m.get_mut(&domain.to_ascii_lowercase())
            .map(|h| std::mem::take(&mut h.deferred).into_iter().collect())
            .unwrap_or_default()
    }
}

use crate::dns::{Dns, MxLookup};
use crate::scheduler::BoxFuture;
use route::{AddrAnswer, MxAnswer, Resolver};

impl Resolver for Dns {
    fn mx<'a>(&'a self, domain: &'a str) -> BoxFuture<'a, MxAnswer> {
        Box::pin(async move {
            match Dns::mx(self, domain).await {
                MxLookup::Found(v) => MxAnswer::Found(v),
                MxLookup::NoRecords => MxAnswer::NoRecords,
                MxLookup::NoDomain => MxAnswer::NoDomain,
                MxLookup::TempFail => MxAnswer::TempFail,
            }
        })
    }

    fn addrs<'a>(&'a self, host: &'a str) -> BoxFuture<'a, AddrAnswer> {
        Box::pin(async move {
            match self.host_addrs(host).await {
                Ok(a) => AddrAnswer::Found(a),
                Err(true) => AddrAnswer::TempFail,
                Err(false) => AddrAnswer::NotFound,
            }
        })
    }

    fn ptr(&self, ip: IpAddr) -> BoxFuture<'_, Option<String>> {
        Box::pin(async move { self.ptr_name(ip).await })
    }
}
