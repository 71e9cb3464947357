//! Who the engine runs as, and the one-way switch to it.
//!
//! The engine runs as the queue user (`opensmtpq` on Debian, `_smtpq` upstream), not as
//! `opensmtpd`. OpenSMTPD's queue process is `_smtpq` and its network processes `_smtpd`; our
//! engine is both in one process, so it must be one user, and the queue's is the one that fits:
//!
//! - the spool stays exactly as 6.8's `setup_spool` lays it out and Debian's package ships it
//!   (`queue/`, `incoming/`, ... owned by the queue user, 0700), so a spool still passes
//!   between the two daemons and the operational checks of spool modes are unchanged;
//! - `opensmtpd` is also who filter processes and the commands and files of system aliases run
//!   as (OpenSMTPD's `SMTPD_USER`). Whoever can write the queue can have mail delivered by any
//!   command as any user, so the queue's owner must not be shared with them: with the engine as
//!   `opensmtpd`, a filter could signal or read the engine's files and write envelopes.
//!
//! The engine keeps `opensmtpd`'s group as a supplementary group: files that an administrator
//! made readable to OpenSMTPD's lookup process (`table` files such as relay secrets, mode 0640
//! `root:opensmtpd`) stay readable when `update table` reads them again.

use nix::unistd::{Gid, Group, Uid, User};

/// The queue users, in order: Debian's, then upstream's.
pub const QUEUE_USERS: [&str; 2] = ["opensmtpq", "_smtpq"];

/// The credentials the engine switches to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineCreds {
    pub user: String,
    pub uid: Uid,
    pub gid: Gid,
    /// Supplementary groups (the primary one first).
    pub groups: Vec<Gid>,
}

/// The engine's credentials: the queue user with its group, and the group of `smtpd_user`.
/// `None` when this system has no queue user (then the daemon does not split: see daemon.rs).
pub fn engine_creds(smtpd_user: &str) -> Option<EngineCreds> {
    let user = QUEUE_USERS
        .iter()
        .find_map(|n| User::from_name(n).ok().flatten())?;
    let gid = match Group::from_name(&user.name) {
        Ok(Some(g)) => g.gid,
        _ => user.gid,
    };
    let mut groups = vec![gid];
    if let Ok(Some(u)) = User::from_name(smtpd_user) {
        if u.uid.is_root() {
            return None;
        }
        if !groups.contains(&u.gid) {
            groups.push(u.gid);
        }
    }
    if user.uid.is_root() || gid.as_raw() == 0 {
        return None;
    }
    Some(EngineCreds {
        user: user.name,
        uid: user.uid,
        gid,
        groups,
    })
}

/// Switches this process to `c` for good: supplementary groups, then gid and uid (real,
/// effective and saved), no new privileges through exec, no capability left in any set. Any
/// step that fails is an error: an engine that kept root must not serve.
pub fn drop_to(c: &EngineCreds) -> Result<(), String> {
    let err =
        |what: &str, e: nix::Error| format!("smtpd: cannot drop privileges: {what}: {}", e.desc());
    // While still root: empty the bounding set, so that nothing this process ever execs gains a
    // capability back (file capabilities). Stops at the first number the kernel does not know.
    for cap in 0..64 {
        // SAFETY: prctl with integer arguments only.
        if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) } != 0 {
            break;
        }
    }
    // SAFETY: prctl with integer arguments only.
    unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        )
    };
    nix::unistd::setgroups(&c.groups).map_err(|e| err("setgroups", e))?;
    nix::unistd::setresgid(c.gid, c.gid, c.gid).map_err(|e| err("setresgid", e))?;
    // From root to a non-zero uid in all three ids: the kernel clears the permitted and
    // effective sets (no SECBIT_KEEP_CAPS is set).
    nix::unistd::setresuid(c.uid, c.uid, c.uid).map_err(|e| err("setresuid", e))?;
    nix::sys::prctl::set_no_new_privs().map_err(|e| err("PR_SET_NO_NEW_PRIVS", e))?;
    // A changed uid makes the process non-dumpable already; said again so that it does not
    // depend on the suid_dumpable sysctl: no process of the same user may ptrace the engine.
    let _ = nix::sys::prctl::set_dumpable(false);
    verify(c)
}

/// Reads back what the kernel says this process is: the switch either happened entirely or the
/// engine does not start.
fn verify(c: &EngineCreds) -> Result<(), String> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| format!("smtpd: cannot drop privileges: /proc/self/status: {e}"))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
            .unwrap_or("")
            .to_string()
    };
    for caps in ["CapInh:", "CapPrm:", "CapEff:", "CapAmb:"] {
        let v = field(caps);
        if u64::from_str_radix(&v, 16) != Ok(0) {
            return Err(format!("smtpd: cannot drop privileges: {caps} {v}"));
        }
    }
    if nix::unistd::getuid() != c.uid || nix::unistd::geteuid() != c.uid {
        return Err("smtpd: cannot drop privileges: uid".into());
    }
    if field("NoNewPrivs:") != "1" {
        return Err("smtpd: cannot drop privileges: NoNewPrivs".into());
    }
    Ok(())
}
