//! OpenSMTPD's mta limits (`mta limit [for domain D] [inet4|inet6] KEY N`, limit.c) and the
//! connection counts they are checked against: how many sessions may be open at once per
//! destination address (host), per source and destination (route), per source, per relay
//! and source (connector), per relay (a destination domain or smarthost with its options) and
//! per domain; how long after the last connection of each a new one may open; how many
//! messages a session carries before QUIT; how long an idle session waits for more; which
//! address family is used.
//!
//! A batch that finds no idle session and a limit reached waits until a session ends or goes
//! idle, or the delay is over (6.8's connector waits, `DELAY_CHECK_LIMIT`), then looks again.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rsmtpd_config::{Config, Family};

/// The limits of one relay, as 6.8's `limit_mta_set_defaults` then the config's values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max_conn_per_host: usize,
    pub max_conn_per_route: usize,
    pub max_conn_per_source: usize,
    pub max_conn_per_connector: usize,
    pub max_conn_per_relay: usize,
    pub max_conn_per_domain: usize,
    pub conn_delay_host: Duration,
    pub conn_delay_route: Duration,
    pub conn_delay_source: Duration,
    pub conn_delay_connector: Duration,
    pub conn_delay_relay: Duration,
    pub conn_delay_domain: Duration,
    /// `reconn-delay-route`: how long after a session of a route ends a new one may open on it.
    pub reconn_delay_route: Duration,
    /// `session-mail-max`: messages per session, then QUIT.
    pub session_mail_max: usize,
    /// `session-keepalive`: how long an idle session waits for another message.
    pub keepalive: Duration,
    /// `session-transaction-delay`: how long a session waits after each transaction.
    pub transaction_delay: Duration,
    /// `max-failures-per-session`: refused recipients in a row that end a session (0: none).
    pub max_failures_per_session: usize,
    /// `inet4` / `inet6`: only destination addresses of that family.
    pub family: Option<Family>,
    /// `destination-rate-delay` (ours, not 6.8's: [`super::pace`]): one delivery at a time to
    /// the destination, this long between the end of one and the start of the next; zero:
    /// no pacing.
    pub destination_rate_delay: Duration,
}

impl Default for Limits {
    /// 6.8's defaults, except the connection delays: 6.8 waits 5 s between two connections
    /// of a route, 2 s between two of a relay and 3 s after a session of a route ended before
    /// the next, which caps a relay at one new connection every 2 s whatever the load; we
    /// open one only when no idle session can take the message, so by default we do not wait
    /// (README, "Relaying"). Written in the config, the delays apply as in 6.8.
    fn default() -> Limits {
        Limits {
            max_conn_per_host: 10,
            max_conn_per_route: 5,
            max_conn_per_source: 100,
            max_conn_per_connector: 20,
            max_conn_per_relay: 100,
            max_conn_per_domain: 100,
            conn_delay_host: Duration::ZERO,
            conn_delay_route: Duration::ZERO,
            conn_delay_source: Duration::ZERO,
            conn_delay_connector: Duration::ZERO,
            conn_delay_relay: Duration::ZERO,
            conn_delay_domain: Duration::ZERO,
            reconn_delay_route: Duration::ZERO,
            session_mail_max: 100,
            keepalive: Duration::from_secs(10),
            transaction_delay: Duration::ZERO,
            max_failures_per_session: 25,
            family: None,
            destination_rate_delay: Duration::ZERO,
        }
    }
}

impl Limits {
    /// The limits of a relay to `domain` (its destination domain or smarthost name): the
    /// `for domain` set of that name if any (on 6.8's defaults, not the global set's),
    /// else the global set.
    pub fn for_domain(conf: &Config, domain: &str) -> Limits {
        let sets = &conf.options.mta_limits;
        let set = sets
            .iter()
            .find(|s| {
                s.domain
                    .as_deref()
                    .is_some_and(|d| d.eq_ignore_ascii_case(domain))
            })
            .or_else(|| sets.iter().find(|s| s.domain.is_none()));
        let mut l = Limits::default();
        let Some(set) = set else { return l };
        l.family = set.family;
        for (key, n) in &set.values {
            let count = usize::try_from(*n).unwrap_or(0);
            let secs = Duration::from_secs(u64::try_from(*n).unwrap_or(0));
            match key.as_str() {
                "max-conn-per-host" => l.max_conn_per_host = count,
                "max-conn-per-route" => l.max_conn_per_route = count,
                "max-conn-per-source" => l.max_conn_per_source = count,
                "max-conn-per-connector" => l.max_conn_per_connector = count,
                "max-conn-per-relay" => l.max_conn_per_relay = count,
                "max-conn-per-domain" => l.max_conn_per_domain = count,
                "conn-delay-host" => l.conn_delay_host = secs,
                "conn-delay-route" => l.conn_delay_route = secs,
                "conn-delay-source" => l.conn_delay_source = secs,
                "conn-delay-connector" => l.conn_delay_connector = secs,
                "conn-delay-relay" => l.conn_delay_relay = secs,
                "conn-delay-domain" => l.conn_delay_domain = secs,
                "session-mail-max" => l.session_mail_max = count,
                "session-keepalive" => l.keepalive = secs,
                "reconn-delay-route" => l.reconn_delay_route = secs,
                "session-transaction-delay" => l.transaction_delay = secs,
                "max-failures-per-session" => l.max_failures_per_session = count,
                "destination-rate-delay" => l.destination_rate_delay = secs,
                // The task-* keys tune 6.8's inter-process queues (docs/compatibility.md).
                _ => {}
            }
        }
        l
    }

    /// Whether an address may be used under `inet4`/`inet6`.
    pub fn allows(&self, addr: IpAddr) -> bool {
        match self.family {
            None => true,
            Some(Family::Inet4) => addr.is_ipv4(),
            Some(Family::Inet6) => addr.is_ipv6(),
        }
    }
}

/// What a new connection counts against.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnKey {
    /// The relay as `show relays` names it (`[relay:DOMAIN,...]`).
    pub relay: String,
    /// Its domain: the destination domain, or the smarthost's name.
    pub domain: String,
    pub src: Option<IpAddr>,
    pub addr: IpAddr,
}

fn get<K: std::hash::Hash + Eq>(m: &HashMap<K, Count>, k: &K) -> Count {
    m.get(k).copied().unwrap_or_default()
}

/// Open sessions and the time of the last connection, of one counted thing.
#[derive(Clone, Copy, Debug, Default)]
pub struct Count {
    pub nconn: usize,
    pub last: Option<Instant>,
    /// When a session last ended (kept for routes: `reconn-delay-route`).
    pub last_end: Option<Instant>,
}

impl Count {
    /// Why this one cannot take a new connection now: None when it can, else the time to
    /// look again (None inside: when a session ends).
    fn check(&self, max: usize, delay: Duration, now: Instant) -> Option<Option<Instant>> {
        if let Some(at) = self.last.map(|l| l + delay).filter(|at| *at > now) {
            return Some(Some(at));
        }
        (self.nconn >= max).then_some(None)
    }

    /// The same, and `reconn` after the last session's end (6.8's route `lastdisc`).
    fn check_route(
        &self,
        max: usize,
        delay: Duration,
        reconn: Duration,
        now: Instant,
    ) -> Option<Option<Instant>> {
        let after_end = self
            .last_end
            .filter(|_| !reconn.is_zero())
            .map(|l| l + reconn)
            .filter(|at| *at > now);
        match (self.check(max, delay, now), after_end) {
            (Some(None), _) => Some(None),
            (Some(Some(a)), Some(b)) => Some(Some(a.max(b))),
            (Some(Some(a)), None) => Some(Some(a)),
            (None, b) => b.map(Some),
        }
    }

    fn open(&mut self, now: Instant) {
        self.nconn += 1;
        self.last = Some(now);
    }
}

#[derive(Default)]
struct State {
    host: HashMap<IpAddr, Count>,
    route: HashMap<(Option<IpAddr>, IpAddr), Count>,
    source: HashMap<Option<IpAddr>, Count>,
    connector: HashMap<(String, Option<IpAddr>), Count>,
    relay: HashMap<String, Count>,
    domain: HashMap<String, Count>,
}

/// How long the last connection of something no session uses any more is remembered: longer
/// than any connection delay an administrator would write.
const FORGET: Duration = Duration::from_secs(3600);

impl State {
    fn forget(&mut self, now: Instant) {
        fn keep(c: &Count, now: Instant) -> bool {
            let recent =
                |t: Option<Instant>| t.is_some_and(|t| now.saturating_duration_since(t) < FORGET);
            c.nconn > 0 || recent(c.last) || recent(c.last_end)
        }
        self.host.retain(|_, c| keep(c, now));
        self.route.retain(|_, c| keep(c, now));
        self.source.retain(|_, c| keep(c, now));
        self.connector.retain(|_, c| keep(c, now));
        self.relay.retain(|_, c| keep(c, now));
        self.domain.retain(|_, c| keep(c, now));
    }
}

/// The connection counts of every relay session.
#[derive(Default)]
pub struct Conns {
    state: Mutex<State>,
    /// Woken when a session ends or goes idle: a waiting batch looks again.
    pub changed: tokio::sync::Notify,
}

/// A session's place in the counts, given back when it ends.
pub struct Slot {
    conns: Arc<Conns>,
    key: ConnKey,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let k = &self.key;
        if let Ok(mut s) = self.conns.state.lock() {
            let dec = |c: Option<&mut Count>| {
                if let Some(c) = c {
                    c.nconn = c.nconn.saturating_sub(1);
                }
            };
            dec(s.host.get_mut(&k.addr));
            if let Some(r) = s.route.get_mut(&(k.src, k.addr)) {
                r.last_end = Some(Instant::now());
            }
            dec(s.route.get_mut(&(k.src, k.addr)));
            dec(s.source.get_mut(&k.src));
            dec(s.connector.get_mut(&(k.relay.clone(), k.src)));
            dec(s.relay.get_mut(&k.relay));
            dec(s.domain.get_mut(&k.domain));
        }
        self.conns.changed.notify_waiters();
    }
}

/// A relay's counts and its connectors' (by source), for `show relays`.
pub type RelayCounts = (String, Count, Vec<(Option<IpAddr>, Count)>);

/// Why no connection may open now.
#[derive(Debug, PartialEq, Eq)]
pub enum Wait {
    /// A count is at its limit: until a session ends.
    Limit,
    /// A connection delay runs until then.
    Until(Instant),
}

impl Conns {
    /// Counts a new session when every limit allows it.
    pub fn open(self: &Arc<Self>, key: &ConnKey, l: &Limits, now: Instant) -> Result<Slot, Wait> {
        let Ok(mut s) = self.state.lock() else {
            return Err(Wait::Limit);
        };
        s.forget(now);
        let checks = [
            get(&s.host, &key.addr).check(l.max_conn_per_host, l.conn_delay_host, now),
            get(&s.route, &(key.src, key.addr)).check_route(
                l.max_conn_per_route,
                l.conn_delay_route,
                l.reconn_delay_route,
                now,
            ),
            get(&s.source, &key.src).check(l.max_conn_per_source, l.conn_delay_source, now),
            get(&s.connector, &(key.relay.clone(), key.src)).check(
                l.max_conn_per_connector,
                l.conn_delay_connector,
                now,
            ),
            get(&s.relay, &key.relay).check(l.max_conn_per_relay, l.conn_delay_relay, now),
            get(&s.domain, &key.domain).check(l.max_conn_per_domain, l.conn_delay_domain, now),
        ];
        // A limit reached waits for a session; else the latest delay.
        let mut wait = None;
        for c in checks.into_iter().flatten() {
            wait = match (wait, c) {
                (_, None) | (Some(Wait::Limit), _) => Some(Wait::Limit),
                (Some(Wait::Until(a)), Some(b)) => Some(Wait::Until(a.max(b))),
                (None, Some(b)) => Some(Wait::Until(b)),
            };
        }
        if let Some(w) = wait {
            return Err(w);
        }
        s.host.entry(key.addr).or_default().open(now);
        s.route.entry((key.src, key.addr)).or_default().open(now);
        s.source.entry(key.src).or_default().open(now);
        s.connector
            .entry((key.relay.clone(), key.src))
            .or_default()
            .open(now);
        s.relay.entry(key.relay.clone()).or_default().open(now);
        s.domain.entry(key.domain.clone()).or_default().open(now);
        Ok(Slot {
            conns: self.clone(),
            key: key.clone(),
        })
    }

    /// Open sessions and last connection per destination address in use (`show hosts`: 6.8
    /// forgets a host with its last session).
    pub fn hosts(&self) -> Vec<(IpAddr, Count)> {
        let Ok(s) = self.state.lock() else {
            return Vec::new();
        };
        let mut v: Vec<_> = s
            .host
            .iter()
            .filter(|(_, c)| c.nconn > 0)
            .map(|(a, c)| (*a, *c))
            .collect();
        v.sort_by_key(|(a, _)| *a);
        v
    }

    /// The same per relay in use, with the relay's connectors (`show relays`).
    pub fn relays(&self) -> Vec<RelayCounts> {
        let Ok(s) = self.state.lock() else {
            return Vec::new();
        };
        let mut v: Vec<_> = s
            .relay
            .iter()
            .filter(|(_, c)| c.nconn > 0)
            .map(|(r, c)| {
                let mut conns: Vec<_> = s
                    .connector
                    .iter()
                    .filter(|((cr, _), _)| cr == r)
                    .map(|((_, src), c)| (*src, *c))
                    .collect();
                conns.sort_by_key(|(src, _)| *src);
                (r.clone(), *c, conns)
            })
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(addr: &str) -> ConnKey {
        ConnKey {
            relay: "[relay:d.test,smtp]".into(),
            domain: "d.test".into(),
            src: None,
            addr: addr.parse().unwrap(),
        }
    }

    #[test]
    fn per_host_limit_and_release() {
        let c = Arc::new(Conns::default());
        let l = Limits {
            max_conn_per_host: 2,
            ..Limits::default()
        };
        let now = Instant::now();
        let a = c.open(&key("10.0.0.1"), &l, now).unwrap();
        let _b = c.open(&key("10.0.0.1"), &l, now).unwrap();
        assert_eq!(c.open(&key("10.0.0.1"), &l, now).err(), Some(Wait::Limit));
        // Another host of the relay is not limited by this one.
        let _d = c.open(&key("10.0.0.2"), &l, now).unwrap();
        drop(a);
        assert!(c.open(&key("10.0.0.1"), &l, now).is_ok());
    }

    #[test]
    fn connection_delay_waits() {
        let c = Arc::new(Conns::default());
        let l = Limits {
            conn_delay_relay: Duration::from_secs(2),
            ..Limits::default()
        };
        let now = Instant::now();
        let _a = c.open(&key("10.0.0.1"), &l, now).unwrap();
        assert_eq!(
            c.open(&key("10.0.0.2"), &l, now).err(),
            Some(Wait::Until(now + Duration::from_secs(2)))
        );
        assert!(c
            .open(&key("10.0.0.2"), &l, now + Duration::from_secs(2))
            .is_ok());
    }

    #[test]
    fn reconnection_delay_after_a_route_s_session_ends() {
        let c = Arc::new(Conns::default());
        let l = Limits {
            reconn_delay_route: Duration::from_secs(3),
            ..Limits::default()
        };
        let now = Instant::now();
        let a = c.open(&key("10.0.0.1"), &l, now).unwrap();
        // While it runs, others may open (the delay counts from an end).
        let b = c.open(&key("10.0.0.1"), &l, now).unwrap();
        drop(a);
        let ended = Instant::now();
        match c.open(&key("10.0.0.1"), &l, ended) {
            Err(Wait::Until(t)) => assert!(t >= ended + Duration::from_secs(2)),
            other => panic!("{:?}", other.err()),
        }
        // Another route of the relay is not held.
        assert!(c.open(&key("10.0.0.2"), &l, ended).is_ok());
        drop(b);
        assert!(c
            .open(
                &key("10.0.0.1"),
                &l,
                Instant::now() + Duration::from_secs(3)
            )
            .is_ok());
    }

    #[test]
    fn limits_from_the_config() {
        let text = "mta limit max-conn-per-host 3 reconn-delay-route 2\nmta limit session-transaction-delay 1 max-failures-per-session 0\nmta limit session-mail-max 7 session-keepalive 4 destination-rate-delay 2\nmta limit for domain big.test inet4 max-conn-per-route 9\nmta limit for domain sfr.test destination-rate-delay 1m\naction \"a\" relay\nmatch for any action \"a\"\n";
        let env = rsmtpd_config::StaticEnvironment::typical().with_file("smtpd.conf", text);
        let out =
            rsmtpd_config::parse_file("smtpd.conf", &env, &rsmtpd_config::ParseOptions::default());
        let Some(conf) = out.config else {
            panic!("{:?}", out.messages)
        };
        let l = Limits::for_domain(&conf, "other.test");
        assert_eq!(l.max_conn_per_host, 3);
        assert_eq!(l.session_mail_max, 7);
        assert_eq!(l.keepalive, Duration::from_secs(4));
        assert_eq!(l.reconn_delay_route, Duration::from_secs(2));
        assert_eq!(l.transaction_delay, Duration::from_secs(1));
        assert_eq!(l.max_failures_per_session, 0);
        assert_eq!(l.destination_rate_delay, Duration::from_secs(2));
        // A `for domain` set is on 6.8's defaults, the pace's too (off).
        assert_eq!(
            Limits::for_domain(&conf, "big.test").destination_rate_delay,
            Duration::ZERO
        );
        assert_eq!(
            Limits::for_domain(&conf, "SFR.test").destination_rate_delay,
            Duration::from_secs(60)
        );
        let b = Limits::for_domain(&conf, "BIG.test");
        assert_eq!(b.max_failures_per_session, 25);
        assert_eq!(b.max_conn_per_host, 10);
        assert_eq!(b.max_conn_per_route, 9);
        assert!(!b.allows("::1".parse().unwrap()));
    }
}
