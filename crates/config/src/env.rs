//! What the configuration needs to know about the machine it runs on.
//!
//! OpenSMTPD consults the system while it parses: it reads included files and `file:` tables,
//! maps port names through `/etc/services`, expands interface names into addresses, resolves host
//! names in `listen on`, and looks for `table-NAME` helper programs. Keeping those questions behind
//! this trait keeps the parser pure and lets tests describe any machine they like.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    Inet4,
    Inet6,
}

pub trait Environment {
    /// Reads a whole file: the config itself, an `include`, or a `file:` table.
    fn read_file(&self, path: &str) -> io::Result<Vec<u8>>;
    /// `getservbyname(name, "tcp")`.
    fn service_port(&self, name: &str) -> Option<u16>;
    /// Addresses of the interface (or interface group) with that name; empty if there is none.
    fn interface_addrs(&self, name: &str) -> Vec<IpAddr>;
    /// Addresses a host name resolves to (`getaddrinfo` with AI_ADDRCONFIG); empty if none.
    fn resolve_host(&self, name: &str) -> Vec<IpAddr>;
    /// Whether an external table backend named `backend` is installed (OpenSMTPD looks for the
    /// program `PATH_LIBEXEC/table-BACKEND`).
    fn table_backend_exists(&self, backend: &str) -> bool;
}

/// A machine described in memory: files, services and interfaces given by the caller. Used by
/// tests and by property tests, where touching the real system would make results depend on it.
#[derive(Debug, Default, Clone)]
pub struct StaticEnvironment {
    pub files: Vec<(String, Vec<u8>)>,
    pub services: Vec<(String, u16)>,
    pub interfaces: Vec<(String, Vec<IpAddr>)>,
    pub hosts: Vec<(String, Vec<IpAddr>)>,
    pub backends: Vec<String>,
}

impl StaticEnvironment {
    /// A machine with the usual `smtp`/`smtps`/`submission` services and a loopback interface `lo`.
    pub fn typical() -> Self {
        StaticEnvironment {
            files: Vec::new(),
            services: vec![
                ("smtp".into(), 25),
                ("smtps".into(), 465),
                ("submission".into(), 587),
                ("submissions".into(), 465),
                ("lmtp".into(), 24),
            ],
            interfaces: vec![(
                "lo".into(),
                vec![
                    IpAddr::V4(Ipv4Addr::LOCALHOST),
                    IpAddr::V6(Ipv6Addr::LOCALHOST),
                ],
            )],
            hosts: vec![("localhost".into(), vec![IpAddr::V4(Ipv4Addr::LOCALHOST)])],
            // Debian's opensmtpd-extras, as on the machine the corpus was recorded on.
            backends: crate::parser::EXTRAS_BACKENDS
                .iter()
                .map(|b| b.to_string())
                .collect(),
        }
    }

    pub fn with_file(mut self, path: &str, content: &str) -> Self {
        self.files
            .push((path.to_string(), content.as_bytes().to_vec()));
        self
    }
}

impl Environment for StaticEnvironment {
    fn read_file(&self, path: &str) -> io::Result<Vec<u8>> {
        self.files
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, d)| d.clone())
            .ok_or_else(|| io::Error::from_raw_os_error(2))
    }
    fn service_port(&self, name: &str) -> Option<u16> {
        self.services
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, p)| *p)
    }
    fn interface_addrs(&self, name: &str) -> Vec<IpAddr> {
        self.interfaces
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, a)| a.clone())
            .unwrap_or_default()
    }
    fn resolve_host(&self, name: &str) -> Vec<IpAddr> {
        self.hosts
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, a)| a.clone())
            .unwrap_or_default()
    }
    fn table_backend_exists(&self, backend: &str) -> bool {
        self.backends.iter().any(|b| b == backend)
    }
}
