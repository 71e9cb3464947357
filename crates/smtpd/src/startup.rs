//! Problems an administrator must fix for the daemon to start or to queue mail (issue 10, item
//! 5): each is one line that says what is wrong and what to do, and at start the daemon exits 1
//! before it serves anything (and removes the control socket it had made).
//!
//! Where OpenSMTPD has a message of its own (`control socket already listening`, `smtpd: bind`,
//! ckdir's `... must be rwx--x--x (711)`), its words come first, unchanged, so that what was
//! grepped for still matches; the remedy follows after `: `. Two checks OpenSMTPD does not make
//! at start, on purpose: an action's `user` that does not exist (6.8 starts, then temp-fails
//! every delivery of that action with `delivery user '...' does not exist` until the message
//! expires days later), and a full spool file system (6.8 on Linux starts and answers `421`
//! to every recipient); the first refuses to start, the second is a warning, because a daemon
//! that delivers what it holds is how the space comes back.

use std::io;
use std::net::SocketAddr;
use std::path::Path;

use rsmtpd_config::{Config, Method};

use crate::sys::compat::strerror;

/// Every action whose `user` does not exist here, one line each (without a prefix: the daemon
/// prints `smtpd: `, `-n` prints `warn: `, as the refusals of [`crate::support`]).
pub fn missing_users(conf: &Config) -> Vec<String> {
    missing_users_with(conf, |name| {
        matches!(nix::unistd::User::from_name(name), Ok(Some(_)))
    })
}

fn missing_users_with(conf: &Config, exists: impl Fn(&str) -> bool) -> Vec<String> {
    let mut out = Vec::new();
    for a in &conf.actions {
        let Method::Local(local) = &a.method else {
            continue;
        };
        let Some(user) = &local.user else { continue };
        if exists(user) {
            continue;
        }
        let place = if a.at.file.is_empty() {
            String::new()
        } else {
            format!("{}:{}: ", a.at.file, a.at.line)
        };
        out.push(format!(
            "{place}action \"{}\": delivery user \"{user}\" does not exist: create it \
             (adduser --system {user}) or name an existing user",
            a.name
        ));
    }
    out
}

/// The line for a listening address that could not be bound (after `smtpd: `).
pub fn bind_failure(addr: &SocketAddr, e: &io::Error) -> String {
    let port = addr.port();
    let what = match e.raw_os_error() {
        Some(libc::EADDRINUSE) => format!(
            "another program listens on port {port} (ss -ltnp 'sport = :{port}' names it): \
             stop it (systemctl stop opensmtpd postfix exim4...) or change the port of this \
             listen on"
        ),
        Some(libc::EACCES) if port < 1024 => {
            format!("port {port} needs root: start smtpd as root, or listen on a port above 1023")
        }
        Some(libc::EADDRNOTAVAIL) => format!(
            "no interface of this host has {}: listen on an address `ip address` lists",
            addr.ip()
        ),
        _ => String::new(),
    };
    if what.is_empty() {
        format!("bind: {addr}: {}", strerror(e))
    } else {
        format!("bind: {addr}: {}: {what}", strerror(e))
    }
}

/// The line when another daemon answers on the control socket (after `smtpd: `).
pub fn control_held(path: &Path) -> String {
    format!(
        "control socket already listening: another smtpd runs with {} (smtpctl show status): \
         stop it first, or give this one its own socket and spool (SMTPD_SOCKET, SMTPD_SPOOL)",
        path.display()
    )
}

/// What to run to give a spool directory the owner and mode the daemon insists on (appended to
/// ckdir's own message).
pub fn ckdir_remedy(path: &Path, mode: u32, uid: u32, gid: u32, owner_checked: bool) -> String {
    let p = path.display();
    if owner_checked {
        format!("fix it: chown {uid}:{gid} {p} && chmod {mode:o} {p}")
    } else {
        format!("fix it: chmod {mode:o} {p}")
    }
}

/// `: the spool's file system is full...` for an error that says so, else nothing: appended to
/// the lines of a queue write that failed (the session answers a temporary error, 421) and of a
/// spool that cannot be made at start.
pub fn storage_hint(e: &io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(libc::ENOSPC) => ": the spool's file system is full: free space there",
        Some(libc::EDQUOT) => ": the queue user's disk quota is used up: raise it",
        _ => "",
    }
}

/// A warning when the spool's file system is (nearly) full at start: fewer than 1% of its
/// blocks or inodes free for us.
pub fn disk_space_warning(spool: &Path) -> Option<String> {
    let st = nix::sys::statvfs::statvfs(spool).ok()?;
    let low = |free: u64, total: u64| total > 0 && free.saturating_mul(100) < total;
    let blocks = low(st.blocks_available(), st.blocks());
    let inodes = low(st.files_available(), st.files());
    if !blocks && !inodes {
        return None;
    }
    let free_bytes = st.blocks_available().saturating_mul(st.fragment_size());
    Some(format!(
        "warn: queue: {}: the file system is full ({} bytes, {} inodes free): free space there, \
         or every message will be refused with a temporary error",
        spool.display(),
        free_bytes,
        st.files_available()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsmtpd_config::{parse_file, ParseOptions, StaticEnvironment};

    #[test]
    fn a_missing_delivery_user_is_named_with_its_line() {
        let env = StaticEnvironment::typical().with_file(
            "smtpd.conf",
            "action \"a\" maildir user nosuch\naction \"b\" maildir user here\n\
             match from any for local action \"a\"\nmatch from any for any action \"b\"\n",
        );
        let out = parse_file("smtpd.conf", &env, &ParseOptions::default());
        let Some(conf) = out.config else {
            panic!("{:?}", out.messages)
        };
        assert_eq!(
            missing_users_with(&conf, |u| u == "here"),
            vec![
                "smtpd.conf:1: action \"a\": delivery user \"nosuch\" does not exist: create it \
                 (adduser --system nosuch) or name an existing user"
                    .to_string()
            ]
        );
    }

    #[test]
    fn bind_failures_say_what_to_do() {
        let addr: SocketAddr = "127.0.0.1:25".parse().expect("addr");
        let used = bind_failure(&addr, &io::Error::from_raw_os_error(libc::EADDRINUSE));
        assert!(
            used.starts_with("bind: 127.0.0.1:25: Address already in use: another program"),
            "{used}"
        );
        let root = bind_failure(&addr, &io::Error::from_raw_os_error(libc::EACCES));
        assert!(root.contains("port 25 needs root"), "{root}");
        let other = bind_failure(&addr, &io::Error::from_raw_os_error(libc::EINVAL));
        assert_eq!(other, "bind: 127.0.0.1:25: Invalid argument");
    }
}
