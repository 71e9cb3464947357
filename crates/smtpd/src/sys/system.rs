//! The real machine, as the configuration parser asks about it.

use std::io;
use std::net::{IpAddr, ToSocketAddrs};
use std::path::Path;

use rsmtpd_config::Environment;

/// The machine as seen from the directory the daemon was started in. Detached, the daemon
/// works in `/` (as daemon(3) makes OpenSMTPD's), so a reload would look for a relative
/// `include "local.conf"` or `table t file:aliases` there; the names keep meaning what they
/// meant at the start instead. Everything but files is the machine's, unchanged.
pub struct StartDir(pub std::path::PathBuf);

impl Environment for StartDir {
    fn read_file(&self, path: &str) -> io::Result<Vec<u8>> {
        if Path::new(path).is_relative() {
            std::fs::read(self.0.join(path))
        } else {
            std::fs::read(path)
        }
    }

    fn service_port(&self, name: &str) -> Option<u16> {
        SystemEnvironment.service_port(name)
    }

    fn interface_addrs(&self, name: &str) -> Vec<IpAddr> {
        SystemEnvironment.interface_addrs(name)
    }

    fn resolve_host(&self, name: &str) -> Vec<IpAddr> {
        SystemEnvironment.resolve_host(name)
    }

    fn table_backend_exists(&self, backend: &str) -> bool {
        SystemEnvironment.table_backend_exists(backend)
    }
}

/// Where OpenSMTPD (Debian) and we look for external `table-NAME` backends.
pub const LIBEXEC_DIRS: &[&str] = &["/usr/libexec/opensmtpd", "/usr/libexec/rsmtpd"];

pub struct SystemEnvironment;

impl Environment for SystemEnvironment {
    fn read_file(&self, path: &str) -> io::Result<Vec<u8>> {
        std::fs::read(path)
    }

    fn service_port(&self, name: &str) -> Option<u16> {
        // getservbyname() reads /etc/services; names only, a number is not a service name.
        let text = std::fs::read_to_string("/etc/services").ok()?;
        service_in(&text, name)
    }

    fn interface_addrs(&self, name: &str) -> Vec<IpAddr> {
        let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for ifa in addrs {
            if ifa.interface_name != name {
                continue;
            }
            let Some(a) = ifa.address else { continue };
            if let Some(v4) = a.as_sockaddr_in() {
                out.push(IpAddr::V4(v4.ip()));
            } else if let Some(v6) = a.as_sockaddr_in6() {
                out.push(IpAddr::V6(v6.ip()));
            }
        }
        out
    }

    fn resolve_host(&self, name: &str) -> Vec<IpAddr> {
        match (name, 0u16).to_socket_addrs() {
            Ok(it) => {
                let mut v: Vec<IpAddr> = it.map(|s| s.ip()).collect();
                v.dedup();
                v
            }
            Err(_) => Vec::new(),
        }
    }

    fn table_backend_exists(&self, backend: &str) -> bool {
        LIBEXEC_DIRS
            .iter()
            .any(|d| Path::new(d).join(format!("table-{}", backend)).exists())
    }
}

/// Looks a TCP service up in the text of /etc/services (name or alias).
fn service_in(text: &str, name: &str) -> Option<u16> {
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        let mut fields = line.split_whitespace();
        let (Some(svc), Some(portproto)) = (fields.next(), fields.next()) else {
            continue;
        };
        let Some((port, proto)) = portproto.split_once('/') else {
            continue;
        };
        if proto != "tcp" {
            continue;
        }
        if svc == name || fields.any(|alias| alias == name) {
            return port.parse().ok();
        }
    }
    None
}

/// The server's name, as OpenSMTPD finds it (`getmailname`): the first line of /etc/mailname if
/// there is one, else the host name, made fully qualified through the resolver when it can be.
pub fn server_hostname() -> Option<String> {
    if let Ok(text) = std::fs::read_to_string("/etc/mailname") {
        if let Some(first) = text.lines().next().map(str::trim) {
            if !first.is_empty() {
                return Some(first.to_string());
            }
        }
    }
    let host = nix::unistd::gethostname().ok()?.into_string().ok()?;
    if host.is_empty() {
        return None;
    }
    Some(canonical_name(&host).unwrap_or(host))
}

/// `getaddrinfo(name, AI_CANONNAME)`: the fully qualified form of a host name.
fn canonical_name(host: &str) -> Option<String> {
    let c_host = std::ffi::CString::new(host).ok()?;
    // SAFETY: hints is zeroed then filled; res is freed with freeaddrinfo on every path where
    // getaddrinfo succeeded; ai_canonname is read while res is alive.
    unsafe {
        let mut hints: libc::addrinfo = std::mem::zeroed();
        hints.ai_flags = libc::AI_CANONNAME;
        hints.ai_family = libc::AF_UNSPEC;
        let mut res: *mut libc::addrinfo = std::ptr::null_mut();
        if libc::getaddrinfo(c_host.as_ptr(), std::ptr::null(), &hints, &mut res) != 0 {
            return None;
        }
        let name = if res.is_null() || (*res).ai_canonname.is_null() {
            None
        } else {
            std::ffi::CStr::from_ptr((*res).ai_canonname)
                .to_str()
                .ok()
                .map(str::to_string)
        };
        libc::freeaddrinfo(res);
        name.filter(|n| !n.is_empty())
    }
}

/// Every address of every interface (for the builtin `<localhost>`/`<localnames>` tables).
pub fn local_addresses() -> Vec<IpAddr> {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    let mut out: Vec<IpAddr> = addrs
        .filter_map(|ifa| {
            let a = ifa.address?;
            if let Some(v4) = a.as_sockaddr_in() {
                Some(IpAddr::V4(v4.ip()))
            } else {
                a.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip()))
            }
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The unprivileged users, in order, that files and commands of system aliases run as when we
/// are root: OpenSMTPD's `SMTPD_USER`, which Debian's build sets to `opensmtpd` (its package
/// creates that user) and upstream's default is `_smtpd`.
pub const SMTPD_USERS: [&str; 2] = ["opensmtpd", "_smtpd"];

/// Who files and commands of system aliases run as: `setting` (`--user`, `SMTPD_USER`) or the
/// first of [`SMTPD_USERS`] this system has, when we are root; ourselves otherwise. None of them
/// existing is refused at start, as OpenSMTPD's `fatalx("unknown user ...")`, rather than
/// failing (and bouncing into nowhere) every such delivery later.
pub fn smtpd_user(setting: Option<&str>) -> Result<String, String> {
    use nix::unistd::{geteuid, User};
    let exists = |name: &str| matches!(User::from_name(name), Ok(Some(_)));
    if !geteuid().is_root() {
        return Ok(User::from_uid(geteuid())
            .ok()
            .flatten()
            .map(|u| u.name)
            .unwrap_or_else(|| "nobody".into()));
    }
    match setting {
        Some(name) if exists(name) => Ok(name.to_string()),
        Some(name) => Err(format!(
            "smtpd: unknown user {name}: create it (adduser --system {name}), or name an \
             existing one with SMTPD_USER"
        )),
        None => SMTPD_USERS
            .iter()
            .find(|n| exists(n))
            .map(|n| n.to_string())
            .ok_or_else(|| {
                format!(
                    "smtpd: unknown user {} (nor {}): the unprivileged user alias commands and \
                     files run as; create it, or name another with SMTPD_USER",
                    SMTPD_USERS[0], SMTPD_USERS[1]
                )
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services() {
        let t = "smtp\t\t25/tcp\t\tmail\nsubmissions\t465/tcp\t\tssmtp smtps\n# x 1/tcp\n";
        assert_eq!(service_in(t, "smtp"), Some(25));
        assert_eq!(service_in(t, "mail"), Some(25));
        assert_eq!(service_in(t, "smtps"), Some(465));
        assert_eq!(service_in(t, "25"), None);
        assert_eq!(service_in(t, "x"), None);
    }
}
