//! Listening sockets: one per address of each `listen on` line, plus the control socket.

use std::net::SocketAddr;
use std::path::Path;

use rsmtpd_config::{AuthMode, Config, Listener, TlsMode};
use tokio::net::{TcpListener, TcpSocket, UnixListener};

/// OpenSMTPD listens with a backlog of 5, so bursts of connections wait on SYN retries; we take
/// what the system allows (it clamps to net.core.somaxconn).
const BACKLOG: u32 = 4096;

/// Listener flags as OpenSMTPD prints them in `debug: smtp: listen on ... flags 0x...`.
pub fn flags(l: &Listener) -> u32 {
    let mut f = 0;
    match l.tls {
        Some(TlsMode::StartTls) => f |= 0x01,
        Some(TlsMode::StartTlsRequire) => f |= 0x01 | 0x20,
        Some(TlsMode::Smtps) => f |= 0x02,
        None => {}
    }
    match l.auth {
        Some(AuthMode::Required(_)) => f |= 0x08 | 0x40,
        Some(AuthMode::Optional(_)) => f |= 0x08,
        None => {}
    }
    if l.mask_src {
        f |= 0x100;
    }
    if l.tls_verify {
        f |= 0x200;
    }
    if !l.no_dsn {
        f |= 0x400;
    }
    if l.received_auth {
        f |= 0x800;
    }
    if l.senders.is_some() && l.masquerade {
        f |= 0x1000;
    }
    if l.filter.is_some() {
        f |= 0x2000;
    }
    if l.proxy_v2 {
        f |= 0x4000;
    }
    f
}

/// One listening address and the options its sessions run with.
#[derive(Clone, Debug)]
pub struct Listening {
    /// None for the control socket.
    pub addr: Option<SocketAddr>,
    pub port: u16,
    /// The name in the banner and Received lines.
    pub hostname: String,
    pub tag: Option<String>,
    pub filter: Option<String>,
    pub no_dsn: bool,
    pub mask_src: bool,
    pub received_auth: bool,
    /// Loopback or the control socket: `from local` rules match.
    pub local: bool,
    /// OpenSMTPD's listener flags, for its debug line.
    pub flags: u32,
    pub pki: String,
    pub ca: String,
    /// `tls`, `tls-require` or `smtps`.
    pub tls_mode: Option<TlsMode>,
    /// The handshake side, built at start for listeners with a TLS mode.
    pub tls: Option<crate::tls::ListenerTls>,
    /// `auth [<table>]` / `auth-optional [<table>]`.
    pub auth: Option<AuthMode>,
    /// `senders <table> [masquerade]`.
    pub senders: Option<String>,
    pub masquerade: bool,
    /// `hostnames <table>`: the banner name looked up by the listener's address.
    pub hostnames: Option<String>,
    /// `proxy-v2`: connections start with a PROXY header naming the real client.
    pub proxy_v2: bool,
}

impl Listening {
    /// The credentials table of `auth <table>`, None for system users.
    pub fn auth_table(&self) -> Option<&str> {
        match &self.auth {
            Some(AuthMode::Required(t)) | Some(AuthMode::Optional(t)) => t.as_deref(),
            None => None,
        }
    }
}

/// Everything the sessions of one listening address need to know; `tls` builds the handshake
/// side of listeners with a TLS mode.
pub fn listenings(
    conf: &Config,
    hostname: &str,
    tls: Option<&crate::tls::Tls>,
) -> Result<Vec<Listening>, String> {
    let mut out = Vec::new();
    for l in &conf.listeners {
        let own_hostname = l.hostname.clone().unwrap_or_else(|| hostname.to_string());
        let listener_tls = match (l.tls, tls) {
            (Some(_), Some(t)) => Some(t.listener(
                conf,
                &crate::tls::ListenerSpec {
                    pki: l.pki.as_deref(),
                    hostname: &own_hostname,
                    ca: l.ca.as_deref(),
                    verify: l.tls_verify,
                },
            )?),
            _ => None,
        };
        for ip in &l.addrs {
            out.push(Listening {
                addr: Some(SocketAddr::new(*ip, l.port)),
                port: l.port,
                hostname: l.hostname.clone().unwrap_or_else(|| hostname.to_string()),
                tag: l.tag.clone(),
                filter: l.filter.clone(),
                no_dsn: l.no_dsn,
                mask_src: l.mask_src,
                received_auth: l.received_auth,
                local: Listener::is_loopback(ip),
                flags: flags(l),
                pki: l.pki.clone().unwrap_or_default(),
                ca: l.ca.clone().unwrap_or_default(),
                tls_mode: l.tls,
                tls: listener_tls.clone(),
                auth: l.auth.clone(),
                senders: l.senders.clone(),
                masquerade: l.masquerade,
                hostnames: l.hostnames.clone(),
                proxy_v2: l.proxy_v2,
            });
        }
    }
    Ok(out)
}

/// The `listen on socket` options, for sessions on the control socket (local submission).
pub fn socket_listening(conf: &Config, hostname: &str) -> Listening {
    Listening {
        addr: None,
        port: 0,
        hostname: hostname.to_string(),
        tag: conf.socket.tag.clone(),
        filter: conf.socket.filter.clone(),
        // parse.y sets F_EXT_DSN on every `listen` line, but the socket listener it makes when
        // there is none starts from zeroed options: no DSN in its EHLO reply, and DSN
        // parameters of MAIL FROM and RCPT TO refused as unsupported.
        no_dsn: !conf.socket.declared,
        mask_src: conf.socket.mask_src,
        received_auth: false,
        local: true,
        // F_EXT_DSN only when declared, as above.
        flags: if conf.socket.declared { 0x400 } else { 0 },
        pki: String::new(),
        ca: String::new(),
        tls_mode: None,
        tls: None,
        auth: None,
        senders: None,
        masquerade: false,
        hostnames: None,
        proxy_v2: false,
    }
}

pub fn bind_tcp(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let sock = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    sock.set_reuseaddr(true)?;
    sock.bind(addr)?;
    sock.listen(BACKLOG)
}

/// [`bind_tcp`] outside a runtime: the root parent of a split daemon binds, its engine serves.
pub fn bind_tcp_std(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use std::os::fd::{FromRawFd, IntoRawFd};
    let sock = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    sock.set_reuseaddr(true)?;
    sock.bind(addr)?;
    let fd = sock.into_raw_fd();
    // SAFETY: `fd` is the socket we own (into_raw_fd gave up tokio's ownership); it becomes the
    // std listener's, which closes it.
    let l = unsafe { std::net::TcpListener::from_raw_fd(fd) };
    // SAFETY: listen(2) on a socket we own.
    if unsafe { libc::listen(fd, BACKLOG as libc::c_int) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(l)
}

/// A socket bound by the parent, served by this runtime.
pub fn tcp_from_std(l: std::net::TcpListener) -> std::io::Result<TcpListener> {
    l.set_nonblocking(true)?;
    TcpListener::from_std(l)
}

/// The control socket, as OpenSMTPD creates it: refuse to start if a daemon already answers
/// there, else replace a stale socket; anyone may connect (commands check the peer's uid).
pub fn bind_control(path: &Path) -> Result<UnixListener, String> {
    let l = bind_control_std(path)?;
    l.set_nonblocking(true)
        .and_then(|()| UnixListener::from_std(l))
        .map_err(|e| format!("smtpd: control_init: {}", crate::sys::compat::strerror(&e)))
}

/// [`bind_control`] outside a runtime (the parent of a split daemon binds it).
pub fn bind_control_std(path: &Path) -> Result<std::os::unix::net::UnixListener, String> {
    if control_answers(path) {
        return Err(format!("smtpd: {}", crate::startup::control_held(path)));
    }
    let _ = std::fs::remove_file(path);
    let l = std::os::unix::net::UnixListener::bind(path).map_err(|e| {
        format!(
            "smtpd: control_init: bind: {}: {}",
            path.display(),
            crate::sys::compat::strerror(&e)
        )
    })?;
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666));
    Ok(l)
}

/// Whether a daemon answers on the control socket. OpenSMTPD only tries to connect; we also ask
/// for the status, because after a crash a delivery child forked by the dead daemon may still
/// hold the listening socket for a moment: connecting succeeds, but nobody answers.
fn control_answers(path: &Path) -> bool {
    use std::io::Read;
    let Ok(mut s) = std::os::unix::net::UnixStream::connect(path) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(2)));
    let frame = rsmtpd_control::Request::ShowStatus.encode();
    if rsmtpd_control::write_frame(&mut s, &frame).is_err() {
        return false;
    }
    let mut b = [0u8; 1];
    matches!(s.read(&mut b), Ok(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_flags_are_dsn() {
        let l = Listener::new("::1".into());
        assert_eq!(flags(&l), 0x400);
    }
}
