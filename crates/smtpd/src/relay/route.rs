//! Where a relayed message goes: the smarthost of the action, or the destination domain's MX
//! hosts by preference (unresolvable ones skipped, the domain itself when it has no MX, a
//! null MX refused), each host's addresses IPv6 first; and which routes are disabled for a
//! while after a refused connection or a `421` greeting (6.8's `smtp-out: Disabling route`).
//!
//! DNS is behind [`Resolver`], so that hickory stays in `dns` and tests can answer for it.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::scheduler::BoxFuture;
use crate::sys::log;

/// An MX query's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MxAnswer {
    /// (preference, exchange without its final dot; `""` for the null MX `.`).
    Found(Vec<(u16, String)>),
    /// The name exists and has no MX.
    NoRecords,
    /// NXDOMAIN.
    NoDomain,
    TempFail,
}

/// An address query's answer (AAAA and A, then /etc/hosts).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AddrAnswer {
    Found(Vec<IpAddr>),
    NotFound,
    TempFail,
}

pub trait Resolver: Send + Sync + 'static {
    fn mx<'a>(&'a self, domain: &'a str) -> BoxFuture<'a, MxAnswer>;
    fn addrs<'a>(&'a self, host: &'a str) -> BoxFuture<'a, AddrAnswer>;
    /// The reverse name of a relay address (`host=` of `mta connecting`).
    fn ptr(&self, ip: IpAddr) -> BoxFuture<'_, Option<String>>;
}

/// One address to try.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The MX (or smarthost) name it came from.
    pub mx: String,
    pub addr: IpAddr,
}

/// Why no address could be found: the envelope's error text and whether it is final.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoRoute {
    pub text: String,
    pub permanent: bool,
}

fn temp(t: &str) -> NoRoute {
    NoRoute {
        text: t.into(),
        permanent: false,
    }
}

/// The addresses of one host, IPv6 first.
async fn host_addrs(r: &dyn Resolver, host: &str) -> Result<Vec<IpAddr>, AddrAnswer> {
    match r.addrs(host).await {
        AddrAnswer::Found(mut a) => {
            a.sort_by_key(|ip| ip.is_ipv4());
            a.dedup();
            Ok(a)
        }
        other => Err(other),
    }
}

/// A smarthost's addresses.
pub async fn smarthost(r: &dyn Resolver, host: &str) -> Result<Vec<Target>, NoRoute> {
    match host_addrs(r, host).await {
        Ok(a) => Ok(a
            .into_iter()
            .map(|addr| Target {
                mx: host.to_string(),
                addr,
            })
            .collect()),
        Err(AddrAnswer::TempFail) => Err(temp("Temporary failure in MX lookup")),
        Err(_) => Err(temp("Host not found")),
    }
}

/// The MX routing of `domain`. `backup_of`: with `backup mx NAME`, only MXs strictly better
/// than NAME's preference are used.
pub async fn mx_targets(
    r: &dyn Resolver,
    domain: &str,
    backup_of: Option<&str>,
) -> Result<Vec<Target>, NoRoute> {
    let mut mxs = match r.mx(domain).await {
        MxAnswer::Found(m) => m,
        MxAnswer::NoRecords => {
            // RFC 5321 §5.1: no MX, the domain itself is the implicit MX.
            return match host_addrs(r, domain).await {
                Ok(a) => Ok(a
                    .into_iter()
                    .map(|addr| Target {
                        mx: domain.to_string(),
                        addr,
                    })
                    .collect()),
                Err(AddrAnswer::TempFail) => Err(temp("Temporary failure in MX lookup")),
                Err(_) => Err(temp("No MX found for domain")),
            };
        }
        MxAnswer::NoDomain => {
            return Err(NoRoute {
                text: "Domain does not exist".into(),
                permanent: true,
            })
        }
        MxAnswer::TempFail => return Err(temp("Temporary failure in MX lookup")),
    };
    // RFC 7505: a single MX `.` says the domain takes no mail. 6.8 retries it until the
    // envelope expires; we bounce at once, on purpose.
    if mxs.iter().any(|(_, h)| h.is_empty()) {
        return Err(NoRoute {
            text: "Domain does not accept mail (null MX)".into(),
            permanent: true,
        });
    }
    mxs.sort_by_key(|(p, _)| *p);
    if let Some(me) = backup_of {
        if let Some(mine) = mxs
            .iter()
            .find(|(_, h)| h.eq_ignore_ascii_case(me))
            .map(|(p, _)| *p)
        {
            mxs.retain(|(p, _)| *p < mine);
        }
    }
    let mut out = Vec::new();
    let mut tempfail = false;
    for (_, host) in &mxs {
        match host_addrs(r, host).await {
            Ok(a) => out.extend(a.into_iter().map(|addr| Target {
                mx: host.clone(),
                addr,
            })),
            Err(AddrAnswer::TempFail) => tempfail = true,
            // An MX host that does not resolve is skipped.
            Err(_) => {}
        }
    }
    if out.is_empty() {
        return Err(temp(if tempfail {
            "Temporary failure in MX lookup"
        } else {
            "No MX found for destination"
        }));
    }
    Ok(out)
}

/// `[] <-> 127.0.0.1 (localhost)`: 6.8's `mta_route_to_text` for a route without a source.
/// 6.8's `mta_route_to_text`: `SOURCE <-> HOST`, the source `[]` when none is bound (no
/// `src <t>`), else `a.b.c.d` or `[v6]` (`sa_to_text`).
pub fn route_text(src: Option<IpAddr>, addr: IpAddr, ptr: Option<&str>) -> String {
    let s = match src {
        None => "[]".to_string(),
        Some(IpAddr::V4(a)) => a.to_string(),
        Some(IpAddr::V6(a)) => format!("[{a}]"),
    };
    format!("{s} <-> {}", host_text(addr, ptr))
}

/// `127.0.0.1 (localhost)`: 6.8's `mta_host_to_text`, the `relay=` of `mta delivery`.
pub fn host_text(addr: IpAddr, ptr: Option<&str>) -> String {
    let a = crate::sys::compat::addr_text(&addr);
    match ptr {
        Some(p) => format!("{a} ({p})"),
        None => a,
    }
}

/// 6.8's route penalties: a route whose first session fails (refused connection, `421`
/// greeting, any end before the server was ready) is disabled for `15 s * penalty²` (at most
/// an hour), the penalty growing by one each time and shrinking by one when it is enabled.
const DELAY_ROUTE_BASE: u64 = 15;
const DELAY_ROUTE_MAX: u64 = 3600;

/// A route (6.8's `mta_route`: one source and one destination address) as `show routes` and
/// `resume route` see it.
struct Route {
    id: u64,
    ptr: Option<String>,
    /// Disabled until then.
    disabled_until: Option<Instant>,
    penalty: u32,
    /// Sessions open on it.
    nconn: usize,
    /// No session reached the server yet (6.8's `ROUTE_NEW`).
    new: bool,
    last_use: Instant,
}

/// How long an unused route is remembered (6.8 frees a route with its last reference).
const ROUTE_FORGET: Duration = Duration::from_secs(300);

/// The routes of every relay session: which are disabled for a while, and their ids.
#[derive(Default)]
pub struct Routes {
    /// By (source, destination), in 6.8's order of display (by route).
    map: Mutex<std::collections::BTreeMap<(Option<IpAddr>, IpAddr), Route>>,
    next_id: std::sync::atomic::AtomicU64,
}

impl Routes {
    pub fn is_disabled(&self, src: Option<IpAddr>, addr: IpAddr) -> bool {
        let Ok(m) = self.map.lock() else {
            return false;
        };
        m.get(&(src, addr))
            .and_then(|r| r.disabled_until)
            .is_some_and(|until| until > Instant::now())
    }

    /// A session starts on the route (created on first use, as 6.8 creates it at connect).
    pub fn opened(&self, src: Option<IpAddr>, addr: IpAddr, ptr: Option<&str>) {
        let Ok(mut m) = self.map.lock() else { return };
        let now = Instant::now();
        m.retain(|_, r| {
            r.nconn > 0 || r.disabled_until.is_some() || now - r.last_use < ROUTE_FORGET
        });
        let r = m.entry((src, addr)).or_insert_with(|| Route {
            id: self
                .next_id
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                + 1,
            ptr: ptr.map(str::to_string),
            disabled_until: None,
            penalty: 0,
            nconn: 0,
            new: true,
            last_use: now,
        });
        r.nconn += 1;
        r.last_use = now;
    }

    /// The session reached the server (greeted, ready for mail: 6.8's `mta_route_ok`).
    pub fn reached(&self, src: Option<IpAddr>, addr: IpAddr) {
        if let Ok(mut m) = self.map.lock() {
            if let Some(r) = m.get_mut(&(src, addr)) {
                r.new = false;
            }
        }
    }

    /// A session on the route ended (6.8's `mta_route_collect`): the route is disabled if no
    /// session ever reached the server on it (unless `may_disable` is false).
    pub fn closed(self: &Arc<Self>, src: Option<IpAddr>, addr: IpAddr, may_disable: bool) {
        let new = {
            let Ok(mut m) = self.map.lock() else { return };
            let Some(r) = m.get_mut(&(src, addr)) else {
                return;
            };
            r.nconn = r.nconn.saturating_sub(1);
            r.last_use = Instant::now();
            r.new
        };
        if new && may_disable {
            self.disable(src, addr);
        }
    }

    /// Disables the route and logs it, and logs its enabling when the delay is over, as 6.8.
    fn disable(self: &Arc<Self>, src: Option<IpAddr>, addr: IpAddr) {
        let key = (src, addr);
        let (text, delay, until) = {
            let Ok(mut m) = self.map.lock() else { return };
            let Some(r) = m.get_mut(&key) else { return };
            r.penalty += 1;
            let p = u64::from(r.penalty);
            let delay = (DELAY_ROUTE_BASE * p * p).min(DELAY_ROUTE_MAX);
            let until = Instant::now() + Duration::from_secs(delay);
            r.disabled_until = Some(until);
            (route_text(src, addr, r.ptr.as_deref()), delay, until)
        };
        log::info(&format!("smtp-out: Disabling route {text} for {delay}s"));
        let me = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(until.into()).await;
            // Unless it was disabled again or enabled by `resume route` meanwhile.
            let still = me.map.lock().ok().is_some_and(|mut m| {
                m.get_mut(&key)
                    .filter(|r| r.disabled_until == Some(until))
                    .map(|r| {
                        r.disabled_until = None;
                        r.new = true;
                        r.penalty = r.penalty.saturating_sub(1);
                    })
                    .is_some()
            });
            if still {
                log::info(&format!("smtp-out: Enabling route {text}"));
            }
        });
    }

    /// The reverse name a route to `addr` was opened with, if any.
    pub fn ptr(&self, addr: IpAddr) -> Option<String> {
        let m = self.map.lock().ok()?;
        m.iter()
            .find(|((_, a), _)| *a == addr)
            .and_then(|(_, r)| r.ptr.clone())
    }

    /// `smtpctl resume route ID` (0: every route): enables the disabled ones, logging
    /// `smtp-out: Enabling route ... per admin request`, their penalty cleared, as 6.8 does.
    pub fn resume(&self, id: u64) {
        let Ok(mut m) = self.map.lock() else { return };
        for ((src, addr), r) in m.iter_mut() {
            if id != 0 && r.id != id {
                continue;
            }
            if r.disabled_until.take().is_some() {
                r.new = true;
                r.penalty = 0;
                log::info(&format!(
                    "smtp-out: Enabling route {} per admin request",
                    route_text(*src, *addr, r.ptr.as_deref())
                ));
            }
        }
    }

    /// `smtpctl show routes`, 6.8's format: `ID. SRC <-> HOST FLAGS nconn=N nerror=0
    /// penalty=P timeout=T`, flags N (new: no session reached the server yet) and D
    /// (disabled; 6.8's Q and K flags stay `-`), the time until a disabled route is enabled.
    pub fn lines(&self) -> Vec<String> {
        let Ok(m) = self.map.lock() else {
            return Vec::new();
        };
        let now = Instant::now();
        m.iter()
            .map(|((src, addr), r)| {
                let left = r.disabled_until.filter(|u| *u > now).map(|u| u - now);
                format!(
                    "{}. {} {}{}-- nconn={} nerror=0 penalty={} timeout={}",
                    r.id,
                    route_text(*src, *addr, r.ptr.as_deref()),
                    if r.new { 'N' } else { '-' },
                    if left.is_some() { 'D' } else { '-' },
                    r.nconn,
                    r.penalty,
                    left.map_or("-".to_string(), |d| {
                        crate::scheduler::duration_to_text(d.as_secs() as i64)
                    })
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct Fake(HashMap<String, MxAnswer>, HashMap<String, AddrAnswer>);

    impl Resolver for Fake {
        fn mx<'a>(&'a self, d: &'a str) -> BoxFuture<'a, MxAnswer> {
            Box::pin(async move { self.0.get(d).cloned().unwrap_or(MxAnswer::NoDomain) })
        }
        fn addrs<'a>(&'a self, h: &'a str) -> BoxFuture<'a, AddrAnswer> {
            Box::pin(async move { self.1.get(h).cloned().unwrap_or(AddrAnswer::NotFound) })
        }
        fn ptr(&self, _: IpAddr) -> BoxFuture<'_, Option<String>> {
            Box::pin(async { None })
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn fake() -> Fake {
        let mut mx = HashMap::new();
        mx.insert(
            "d.test".to_string(),
            MxAnswer::Found(vec![
                (20, "b.d.test".into()),
                (10, "a.d.test".into()),
                (5, "gone.d.test".into()),
                (30, "c.d.test".into()),
            ]),
        );
        mx.insert(
            "null.test".to_string(),
            MxAnswer::Found(vec![(0, "".into())]),
        );
        mx.insert("implicit.test".to_string(), MxAnswer::NoRecords);
        mx.insert("later.test".to_string(), MxAnswer::TempFail);
        let mut a = HashMap::new();
        a.insert(
            "a.d.test".to_string(),
            AddrAnswer::Found(vec![ip("10.0.0.1"), ip("fd00::1")]),
        );
        a.insert(
            "b.d.test".to_string(),
            AddrAnswer::Found(vec![ip("10.0.0.2")]),
        );
        a.insert(
            "c.d.test".to_string(),
            AddrAnswer::Found(vec![ip("10.0.0.3")]),
        );
        a.insert(
            "implicit.test".to_string(),
            AddrAnswer::Found(vec![ip("fd00::9")]),
        );
        Fake(mx, a)
    }

    fn addrs(t: &[Target]) -> Vec<String> {
        t.iter().map(|t| t.addr.to_string()).collect()
    }

    #[tokio::test]
    async fn mx_by_preference_unresolvable_skipped_ipv6_first() {
        let f = fake();
        let t = mx_targets(&f, "d.test", None).await.unwrap();
        assert_eq!(addrs(&t), ["fd00::1", "10.0.0.1", "10.0.0.2", "10.0.0.3"]);
        assert_eq!(t[0].mx, "a.d.test");
        // backup mx b.d.test: only the strictly better ones.
        let t = mx_targets(&f, "d.test", Some("b.d.test")).await.unwrap();
        assert_eq!(addrs(&t), ["fd00::1", "10.0.0.1"]);
    }

    #[tokio::test]
    async fn null_mx_nxdomain_implicit_mx_and_tempfail() {
        let f = fake();
        let e = mx_targets(&f, "null.test", None).await.unwrap_err();
        assert!(e.permanent);
        let e = mx_targets(&f, "nowhere.test", None).await.unwrap_err();
        assert_eq!(e.text, "Domain does not exist");
        assert!(e.permanent);
        let t = mx_targets(&f, "implicit.test", None).await.unwrap();
        assert_eq!(addrs(&t), ["fd00::9"]);
        let e = mx_targets(&f, "later.test", None).await.unwrap_err();
        assert_eq!(e, temp("Temporary failure in MX lookup"));
        assert_eq!(
            smarthost(&f, "none.test").await.unwrap_err(),
            temp("Host not found")
        );
    }

    #[test]
    fn texts() {
        assert_eq!(
            route_text(None, ip("127.0.0.1"), Some("localhost")),
            "[] <-> 127.0.0.1 (localhost)"
        );
        assert_eq!(
            route_text(Some(ip("::1")), ip("::2"), None),
            "[::1] <-> [::2]"
        );
        assert_eq!(host_text(ip("::1"), None), "[::1]");
    }
}
