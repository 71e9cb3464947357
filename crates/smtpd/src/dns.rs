//! DNS for sessions: the client's reverse name and whether it is forward-confirmed.
//!
//! OpenSMTPD asks its resolver (asr) in the order "bind file": DNS first, then /etc/hosts, which
//! is why a client on 127.0.0.1 shows as `host=localhost` on a machine whose DNS knows nothing of
//! it. Lookups are asynchronous (hickory-resolver), so a slow DNS server delays only the session
//! that waits for it. Tests point the resolver at their own server with `SMTPD_RESOLVER=ADDR:PORT`.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::TokioResolver;

/// What a session learns about its client at connect time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientNames {
    /// The reverse name, without its final dot; None when there is none.
    pub rdns: Option<String>,
    /// The reverse name resolves back to the client address.
    pub fcrdns: bool,
}

pub struct Dns {
    resolver: Option<TokioResolver>,
}

impl Dns {
    /// The system's resolver (`/etc/resolv.conf`), or the server `SMTPD_RESOLVER` names.
    pub fn new(server: Option<SocketAddr>) -> Dns {
        let mut opts = ResolverOpts::default();
        opts.timeout = Duration::from_secs(5);
        opts.attempts = 2;
        // /etc/hosts is consulted by us after DNS, in asr's order.
        opts.use_hosts_file = ResolveHosts::Never;
        let builder = match server {
            Some(addr) => {
                let mut udp = ConnectionConfig::udp();
                udp.port = addr.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = addr.port();
                let ns = NameServerConfig::new(addr.ip(), true, vec![udp, tcp]);
                let mut cfg = ResolverConfig::default();
                cfg.add_name_server(ns);
                Some(TokioResolver::builder_with_config(
                    cfg,
                    TokioRuntimeProvider::default(),
                ))
            }
            None => TokioResolver::builder_tokio().ok(),
        };
        let resolver = builder.and_then(|b| b.with_options(opts).build().ok());
        Dns { resolver }
    }

    /// Reverse name of `ip`, then forward confirmation.
    pub async fn client_names(&self, ip: IpAddr) -> ClientNames {
        let rdns = match self.ptr(ip).await {
            Some(n) => Some(n),
            None => hosts_reverse(ip),
        };
        let fcrdns = match &rdns {
            Some(name) => self.forward(name).await.contains(&ip),
            None => false,
        };
        ClientNames { rdns, fcrdns }
    }

    async fn ptr(&self, ip: IpAddr) -> Option<String> {
        // hickory answers loopback PTR queries itself with `localhost` (RFC 6761); OpenSMTPD
        // asks its DNS server then /etc/hosts, which on many machines does not name ::1. Leave
        // loopback to /etc/hosts so `host=` agrees with OpenSMTPD's.
        if ip.is_loopback() {
            return None;
        }
        let r = self.resolver.as_ref()?;
        let lookup = r.reverse_lookup(ip).await.ok()?;
        lookup.answers().iter().find_map(|rec| match &rec.data {
            RData::PTR(name) => Some(name.to_utf8().trim_end_matches('.').to_string()),
            _ => None,
        })
    }

    /// Addresses of a name: DNS A and AAAA, then /etc/hosts.
    pub async fn forward(&self, name: &str) -> Vec<IpAddr> {
        let mut out = Vec::new();
        let local_name = name.eq_ignore_ascii_case("localhost")
            || name.to_ascii_lowercase().ends_with(".localhost");
        if let (Some(r), false) = (&self.resolver, local_name) {
            let fqdn = format!("{}.", name.trim_end_matches('.'));
            if let Ok(ips) = r.lookup_ip(fqdn.as_str()).await {
                out.extend(ips.iter());
            }
        }
        if out.is_empty() {
            out = hosts_forward(name);
        }
        out
    }
}

fn hosts_entries() -> Vec<(IpAddr, Vec<String>)> {
    let Ok(text) = std::fs::read_to_string("/etc/hosts") else {
        return Vec::new();
    };
    parse_hosts(&text)
}

fn parse_hosts(text: &str) -> Vec<(IpAddr, Vec<String>)> {
    text.lines()
        .filter_map(|l| {
            let l = l.split('#').next().unwrap_or("");
            let mut f = l.split_whitespace();
            let ip: IpAddr = f.next()?.parse().ok()?;
            let names: Vec<String> = f.map(str::to_string).collect();
            (!names.is_empty()).then_some((ip, names))
        })
        .collect()
}

fn hosts_reverse(ip: IpAddr) -> Option<String> {
    hosts_entries()
        .into_iter()
        .find(|(a, _)| *a == ip)
        .and_then(|(_, names)| names.into_iter().next())
}

fn hosts_forward(name: &str) -> Vec<IpAddr> {
    hosts_entries()
        .into_iter()
        .filter(|(_, names)| names.iter().any(|n| n.eq_ignore_ascii_case(name)))
        .map(|(a, _)| a)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_file() {
        let h =
            parse_hosts("127.0.0.1\tlocalhost\n::1 localhost ip6-localhost # c\n# x\nbad line\n");
        assert_eq!(h.len(), 2);
        assert_eq!(h[1].1, vec!["localhost", "ip6-localhost"]);
    }
}
