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
    /// The reverse name resolves back to the client address (false when unknown).
    pub fcrdns: bool,
    /// `getnameinfo: ...` / `getaddrinfo: ...` warnings OpenSMTPD logs when DNS fails.
    pub warnings: Vec<String>,
}

/// A DNS answer as OpenSMTPD tells them apart: a name with no such record (EAI_NONAME or
/// EAI_NODATA) is not an error, anything else is a temporary failure.
enum Answer<T> {
    Found(T),
    Nothing,
    TempFail,
}

/// gai_strerror(EAI_AGAIN), the text OpenSMTPD logs for a DNS failure.
const EAI_AGAIN_TEXT: &str = "Temporary failure in name resolution";

pub struct Dns {
    resolver: Option<TokioResolver>,
    /// No server override: loopback reverse lookups go to the system's resolver (see `ptr`).
    system: bool,
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
        Dns {
            resolver,
            system: server.is_none(),
        }
    }

    /// Reverse name of `ip`, then forward confirmation with records of the client's family, as
    /// smtp_session.c does it.
    pub async fn client_names(&self, ip: IpAddr) -> ClientNames {
        let mut warnings = Vec::new();
        let rdns = match self.ptr(ip).await {
            Answer::Found(n) => Some(n),
            Answer::Nothing => hosts_reverse(ip),
            Answer::TempFail => {
                let h = hosts_reverse(ip);
                if h.is_none() {
                    warnings.push(format!(
                        "getnameinfo: {}: {}",
                        crate::sys::compat::addr_text(&ip),
                        EAI_AGAIN_TEXT
                    ));
                }
                h
            }
        };
        let fcrdns = match &rdns {
            Some(name) => match self.forward(name, ip.is_ipv4()).await {
                Answer::Found(addrs) => addrs.contains(&ip),
                Answer::Nothing => false,
                Answer::TempFail => {
                    warnings.push(format!("getaddrinfo: {}: {}", name, EAI_AGAIN_TEXT));
                    false
                }
            },
            None => false,
        };
        ClientNames {
            rdns,
            fcrdns,
            warnings,
        }
    }

    async fn ptr(&self, ip: IpAddr) -> Answer<String> {
        // hickory answers loopback PTR queries itself with `localhost` (RFC 6761), while
        // OpenSMTPD asks its DNS server and /etc/hosts, which on many machines name 127.0.0.1
        // but not ::1. So loopback goes to the C library's resolver, which asks the same
        // sources; with a test server (`SMTPD_RESOLVER`) only /etc/hosts is asked.
        if ip.is_loopback() {
            if !self.system {
                return Answer::Nothing;
            }
            return match tokio::task::spawn_blocking(move || getnameinfo(ip)).await {
                Ok(Some(name)) => Answer::Found(name),
                _ => Answer::Nothing,
            };
        }
        let Some(r) = self.resolver.as_ref() else {
            return Answer::Nothing;
        };
        match r.reverse_lookup(ip).await {
            Ok(lookup) => lookup
                .answers()
                .iter()
                .find_map(|rec| match &rec.data {
                    RData::PTR(name) => Some(name.to_utf8().trim_end_matches('.').to_string()),
                    _ => None,
                })
                .map_or(Answer::Nothing, Answer::Found),
            Err(e) if e.is_nx_domain() || e.is_no_records_found() => Answer::Nothing,
            Err(_) => Answer::TempFail,
        }
    }

    /// Addresses of a name of one family: DNS, then /etc/hosts.
    async fn forward(&self, name: &str, v4: bool) -> Answer<Vec<IpAddr>> {
        let mut answer = Answer::Nothing;
        if let Some(r) = &self.resolver {
            let fqdn = format!("{}.", name.trim_end_matches('.'));
            let res = if v4 {
                r.ipv4_lookup(fqdn.as_str()).await
            } else {
                r.ipv6_lookup(fqdn.as_str()).await
            };
            answer = match res {
                Ok(lookup) => {
                    let addrs: Vec<IpAddr> = lookup
                        .answers()
                        .iter()
                        .filter_map(|rec| match &rec.data {
                            RData::A(a) => Some(IpAddr::V4(a.0)),
                            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                            _ => None,
                        })
                        .collect();
                    if addrs.is_empty() {
                        Answer::Nothing
                    } else {
                        Answer::Found(addrs)
                    }
                }
                Err(e) if e.is_nx_domain() || e.is_no_records_found() => Answer::Nothing,
                Err(_) => Answer::TempFail,
            };
        }
        match answer {
            Answer::Found(a) => Answer::Found(a),
            other => {
                let h: Vec<IpAddr> = hosts_forward(name)
                    .into_iter()
                    .filter(|a| a.is_ipv4() == v4)
                    .collect();
                if h.is_empty() {
                    other
                } else {
                    Answer::Found(h)
                }
            }
        }
    }
}

/// What the relay asks (see `relay::route::Resolver`): MX records, a host's addresses, a
/// reverse name. `None` in an answer's place means a temporary failure.
pub enum MxLookup {
    Found(Vec<(u16, String)>),
    NoRecords,
    NoDomain,
    TempFail,
}

impl Dns {
    /// The MX records of `domain`, exchange names without their final dot (the null MX `.` as
    /// an empty name).
    pub async fn mx(&self, domain: &str) -> MxLookup {
        let Some(r) = &self.resolver else {
            return MxLookup::TempFail;
        };
        let fqdn = format!("{}.", domain.trim_end_matches('.'));
        match r.mx_lookup(fqdn.as_str()).await {
            Ok(lookup) => {
                let v: Vec<(u16, String)> = lookup
                    .answers()
                    .iter()
                    .filter_map(|rec| match &rec.data {
                        RData::MX(mx) => Some((
                            mx.preference,
                            mx.exchange.to_utf8().trim_end_matches('.').to_string(),
                        )),
                        _ => None,
                    })
                    .collect();
                if v.is_empty() {
                    MxLookup::NoRecords
                } else {
                    MxLookup::Found(v)
                }
            }
            Err(e) if e.is_nx_domain() => MxLookup::NoDomain,
            Err(e) if e.is_no_records_found() => MxLookup::NoRecords,
            Err(_) => MxLookup::TempFail,
        }
    }

    /// A host's IPv6 and IPv4 addresses (DNS, then /etc/hosts); `Err(true)` on a temporary
    /// failure, `Err(false)` when it has none.
    pub async fn host_addrs(&self, host: &str) -> Result<Vec<IpAddr>, bool> {
        let mut out = Vec::new();
        let mut temp = false;
        for v4 in [false, true] {
            match self.forward(host, v4).await {
                Answer::Found(a) => out.extend(a),
                Answer::Nothing => {}
                Answer::TempFail => temp = true,
            }
        }
        if !out.is_empty() {
            Ok(out)
        } else {
            Err(temp)
        }
    }

    /// The reverse name of an address, as sessions find it.
    pub async fn ptr_name(&self, ip: IpAddr) -> Option<String> {
        match self.ptr(ip).await {
            Answer::Found(n) => Some(n),
            _ => hosts_reverse(ip),
        }
    }
}

/// `getnameinfo(NI_NAMEREQD)` through the C library.
fn getnameinfo(ip: IpAddr) -> Option<String> {
    let sa: std::net::SocketAddr = (ip, 0).into();
    let storage = nix::sys::socket::SockaddrStorage::from(sa);
    let mut host = [0 as libc::c_char; 1025];
    use nix::sys::socket::SockaddrLike;
    // SAFETY: the sockaddr and its length come from nix; host is a buffer of the given size,
    // NUL-terminated by getnameinfo on success.
    let rc = unsafe {
        libc::getnameinfo(
            storage.as_ptr(),
            storage.len(),
            host.as_mut_ptr(),
            host.len() as libc::socklen_t,
            std::ptr::null_mut(),
            0,
            libc::NI_NAMEREQD,
        )
    };
    if rc != 0 {
        return None;
    }
    // SAFETY: NUL-terminated on success.
    let name = unsafe { std::ffi::CStr::from_ptr(host.as_ptr()) };
    name.to_str()
        .ok()
        .map(|s| s.trim_end_matches('.').to_string())
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
