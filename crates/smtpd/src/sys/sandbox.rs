//! Confining the engine of a split daemon on Linux, beyond OpenSMTPD (which has pledge/unveil on
//! OpenBSD and nothing on Debian): Landlock limits what files it may open, seccomp what system
//! calls it may make. Applied once, right after the switch to the queue user and before any
//! thread exists (both are per thread; the runtime's threads inherit them), for the life of the
//! process.
//!
//! **Files (Landlock).** Read and write beneath the spool only. Read-only: the directories of
//! the configuration file and of every file it names that the engine reads again at run time
//! (includes, `file:`/`db:` tables, `ca` files, the system's CA bundle), and what name resolution, user
//! lookups and dates read ([`SYSTEM_READ`], `/etc` among them). Directories rather than the
//! files themselves because a Landlock rule holds an inode: a table that `makemap` or an editor
//! replaces by a rename would become unreadable to `update table`. Everything else is refused
//! with `EACCES` whatever its mode: mailboxes and Maildirs, home directories, `/root`, `/tmp`,
//! `/var/lib`, any write outside the spool, a new socket file anywhere but the spool. The
//! engine never needs more: the control socket is bound by the parent, keys and `.forward`
//! files are read by the parent, deliveries, filters and table backends are processes the
//! parent starts. A reload that names a file in a directory outside that set is refused with
//! the open's `Permission denied` (the running configuration stays): that needs a restart.
//! Connecting to a named socket (`/dev/log`, `nscd`, systemd's userdb) is not a file access
//! Landlock rules before ABI 9; we do not ask for that right.
//!
//! **System calls (seccomp).** A deny list, not an allow list: the engine is a tokio runtime
//! with rustls, hickory and glibc's NSS under it, whose set of calls changes with every
//! upgrade of any of them, and an allow list that misses one takes all mail down. What is
//! denied is what an engine never does and an exploit would: running a program (`execve`,
//! `execveat`), reading or writing another process (`ptrace`, `process_vm_*`), namespaces and
//! mounts, loading kernel code (modules, kexec, `bpf`), io_uring (whose operations seccomp does
//! not see), keyrings, `perf_event_open`, `userfaultfd`, clocks, swap, reboot. Denied calls
//! fail with `EPERM` rather than kill the process: the engine is the whole daemon's service,
//! and a refused call is already a failed exploit; a kill would turn it into an outage.
//!
//! Without Landlock or seccomp in the kernel the engine runs with what it has, and says so in
//! one line. `RSMTPD_SANDBOX=off` in the environment of the starting daemon turns both off (to
//! strace what the engine would need, for instance), also said in one line. The unsplit daemon
//! (no queue user) and an unprivileged one are not confined: they start filters, deliveries and
//! table backends themselves.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rsmtpd_config::{Config, TableSource};

use crate::sys::log;

/// What the engine reads at run time besides what the configuration names: `/etc` as a whole
/// (resolv.conf and hosts, which hickory reads again when they change; passwd, group and
/// nsswitch.conf for `getpwnam` of local users; localtime; the CA bundle), because its files
/// are replaced by renames (`useradd` rewrites `/etc/passwd`, resolvconf `/etc/resolv.conf`)
/// and a rule on a file holds the old inode; what resolv.conf links to; NSS modules, the
/// userdb directories `libnss_systemd` looks in (strace of a running engine: it opens
/// `/run/systemd/userdb/` for a user that `/etc/passwd` lacks), zoneinfo; its own `/proc` entries (status, limits, open descriptors), `/proc/meminfo` (how much dirty data a commit barrier would wait for: queue/commit.rs); the CPU and cgroup
/// files thread pools size themselves from; random devices.
pub const SYSTEM_READ: &[&str] = &[
    "/etc",
    "/run/systemd/resolve",
    "/run/resolvconf",
    "/run/systemd/userdb",
    "/run/userdb",
    "/run/host/userdb",
    "/usr/share/zoneinfo",
    "/usr/share/ca-certificates",
    "/usr/lib",
    "/lib",
    "/lib64",
    "/proc/self",
    "/proc/sys/kernel",
    "/proc/meminfo",
    "/sys/devices/system/cpu",
    "/sys/fs/cgroup",
    "/dev/urandom",
    "/dev/random",
];

/// Written to as well as read (a discarded output).
const SYSTEM_WRITE: &[&str] = &["/dev/null"];

/// The environment variable that turns the sandbox off.
pub const ENV_SWITCH: &str = "RSMTPD_SANDBOX";
/// Test hook: after confinement the engine tries to open this file and to exec `/bin/sh`, and
/// logs both outcomes (`info: smtpd: sandbox probe: ...`), so that a test sees from inside the
/// engine what the sandbox refuses.
pub const ENV_PROBE: &str = "RSMTPD_SANDBOX_PROBE";

/// The read-only directories and files a configuration needs at run time.
/// `also`: files the engine reads whatever the configuration (the system's CA bundle, which
/// the caller names: this module sits below the TLS layer).
pub fn config_reads(conf: &Config, config_file: Option<&str>, also: &[&str]) -> Vec<PathBuf> {
    let mut files: Vec<String> = Vec::new();
    files.extend(config_file.map(str::to_string));
    files.extend(also.iter().map(|f| f.to_string()));
    for t in &conf.tables {
        match &t.source {
            TableSource::File(p) | TableSource::Db(p) => files.push(p.clone()),
            _ => {}
        }
        files.push(t.at.file.clone());
        // Aliases' `:include:` files, which expansion reads in the engine (as 6.8's lookup
        // process does). Only those of tables whose contents are known now: a `db:` or
        // external table's, or one a reload adds, must be in a directory already allowed.
        for (_, value) in t.entries() {
            files.extend(value.into_iter().flat_map(includes));
        }
    }
    for c in &conf.cas {
        files.extend(c.cert.clone());
        files.push(c.at.file.clone());
    }
    // Included files: where declarations were made.
    files.extend(conf.pkis.iter().map(|p| p.at.file.clone()));
    files.extend(conf.procs.iter().map(|p| p.at.file.clone()));
    let mut dirs: Vec<PathBuf> = Vec::new();
    for f in files.iter().filter(|f| f.starts_with('/')) {
        let path = Path::new(f);
        // A file right under `/`: the file itself (the directory would be everything).
        let allowed = match path.parent() {
            Some(d) if d != Path::new("/") => d.to_path_buf(),
            _ => path.to_path_buf(),
        };
        if !dirs.contains(&allowed) {
            dirs.push(allowed);
        }
    }
    dirs
}

/// The paths of the `:include:` items of an alias value (`a, :include:/etc/mail/list, b`).
fn includes(value: &str) -> impl Iterator<Item = String> + '_ {
    value.split(',').filter_map(|item| {
        let item = item.trim().trim_matches('"');
        let rest = item
            .get(..9)
            .filter(|p| p.eq_ignore_ascii_case(":include:"))?;
        let path = item.get(rest.len()..)?.trim();
        Some(path.to_string())
    })
}

/// What [`confine`] achieved, for the one line it logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// `None`: enforced; else why not.
    pub landlock: Option<String>,
    pub seccomp: Option<String>,
}

/// Confines this process (the engine, one thread, queue user, no_new_privs set). Logs one line.
pub fn confine(spool: &Path, reads: &[PathBuf]) -> Outcome {
    if std::env::var(ENV_SWITCH).is_ok_and(|v| v == "off") {
        log::warn(&format!(
            "warn: smtpd: sandbox: off ({ENV_SWITCH}=off): the engine is not confined"
        ));
        return Outcome {
            landlock: Some("off".into()),
            seccomp: Some("off".into()),
        };
    }
    let outcome = Outcome {
        landlock: landlock(spool, reads).err(),
        seccomp: seccomp().err(),
    };
    match (&outcome.landlock, &outcome.seccomp) {
        (None, None) => log::debug(&format!(
            "debug: smtpd: sandbox: engine confined (landlock: {} read-only paths and the \
             spool; seccomp: {} system calls denied)",
            reads.len() + SYSTEM_READ.len(),
            denied().len()
        )),
        (l, s) => log::warn(&format!(
            "warn: smtpd: sandbox: engine not fully confined: landlock: {}; seccomp: {}",
            l.as_deref().unwrap_or("enforced"),
            s.as_deref().unwrap_or("enforced")
        )),
    }
    if let Ok(path) = std::env::var(ENV_PROBE) {
        probe(&path);
    }
    outcome
}

fn landlock(spool: &Path, reads: &[PathBuf]) -> Result<(), String> {
    use landlock::{
        make_bitflags, path_beneath_rules, Access, AccessFs, Ruleset, RulesetAttr,
        RulesetCreatedAttr, RulesetStatus, ABI,
    };
    // V5: every file right Linux 6.10 knows (rename across directories, truncate, device
    // ioctls). Best effort: an older kernel enforces what it has.
    let abi = ABI::V5;
    let all = AccessFs::from_all(abi);
    let read = make_bitflags!(AccessFs::{ReadFile | ReadDir});
    let rw_files = make_bitflags!(AccessFs::{ReadFile | WriteFile | Truncate | IoctlDev});
    let fixed: Vec<PathBuf> = SYSTEM_READ.iter().map(PathBuf::from).collect();
    let status = Ruleset::default()
        .handle_access(all)
        .and_then(|r| r.create())
        .and_then(|r| r.add_rules(path_beneath_rules([spool], all)))
        .and_then(|r| r.add_rules(path_beneath_rules(SYSTEM_WRITE, rw_files)))
        .and_then(|r| r.add_rules(path_beneath_rules(&fixed, read)))
        .and_then(|r| r.add_rules(path_beneath_rules(reads, read)))
        .and_then(|r| r.restrict_self())
        .map_err(|e| e.to_string())?;
    match status.ruleset {
        RulesetStatus::FullyEnforced | RulesetStatus::PartiallyEnforced => Ok(()),
        _ => Err("not supported by this kernel".into()),
    }
}

/// x86_64 system calls of the x32 ABI carry this bit; a kernel built with x32 would run them
/// past a deny list of plain numbers.
#[cfg(target_arch = "x86_64")]
const X32_BIT: i64 = 0x4000_0000;

/// The denied system calls.
pub fn denied() -> Vec<i64> {
    let mut v = vec![
        libc::SYS_execve,
        libc::SYS_execveat,
        libc::SYS_ptrace,
        libc::SYS_process_vm_readv,
        libc::SYS_process_vm_writev,
        libc::SYS_mount,
        libc::SYS_umount2,
        libc::SYS_pivot_root,
        libc::SYS_chroot,
        libc::SYS_unshare,
        libc::SYS_setns,
        libc::SYS_open_tree,
        libc::SYS_move_mount,
        libc::SYS_fsopen,
        libc::SYS_fsmount,
        libc::SYS_kexec_load,
        libc::SYS_kexec_file_load,
        libc::SYS_init_module,
        libc::SYS_finit_module,
        libc::SYS_delete_module,
        libc::SYS_bpf,
        libc::SYS_perf_event_open,
        libc::SYS_userfaultfd,
        libc::SYS_io_uring_setup,
        libc::SYS_io_uring_enter,
        libc::SYS_io_uring_register,
        libc::SYS_keyctl,
        libc::SYS_add_key,
        libc::SYS_request_key,
        libc::SYS_open_by_handle_at,
        libc::SYS_name_to_handle_at,
        libc::SYS_fanotify_init,
        libc::SYS_quotactl,
        libc::SYS_swapon,
        libc::SYS_swapoff,
        libc::SYS_reboot,
        libc::SYS_acct,
        libc::SYS_settimeofday,
        libc::SYS_clock_settime,
        libc::SYS_clock_adjtime,
        libc::SYS_adjtimex,
        libc::SYS_syslog,
        libc::SYS_personality,
    ];
    #[cfg(target_arch = "x86_64")]
    {
        v.extend([libc::SYS_iopl, libc::SYS_ioperm]);
        let x32: Vec<i64> = v.iter().map(|n| n | X32_BIT).collect();
        v.extend(x32);
        // The x32 ABI's own numbers for the calls whose arguments differ there.
        v.extend([520, 521, 539, 540, 545].map(|n| n | X32_BIT));
    }
    v
}

/// New namespaces through `clone` (its flags are the first argument): denied like `unshare`.
/// `clone3` passes its flags in memory, which seccomp cannot read: it fails with `ENOSYS`, and
/// glibc falls back to `clone` for threads as it does on older kernels.
const NAMESPACE_FLAGS: [i32; 7] = [
    libc::CLONE_NEWUSER,
    libc::CLONE_NEWNS,
    libc::CLONE_NEWPID,
    libc::CLONE_NEWNET,
    libc::CLONE_NEWIPC,
    libc::CLONE_NEWUTS,
    libc::CLONE_NEWCGROUP,
];

fn seccomp() -> Result<(), String> {
    use seccompiler::{
        BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
        SeccompRule, TargetArch,
    };
    let arch: TargetArch = std::env::consts::ARCH
        .try_into()
        .map_err(|e| format!("{e}"))?;
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> =
        denied().into_iter().map(|n| (n, Vec::new())).collect();
    let mut clone_rules = Vec::new();
    for flag in NAMESPACE_FLAGS {
        let f = flag as u64;
        let cond = SeccompCondition::new(0, SeccompCmpArgLen::Qword, SeccompCmpOp::MaskedEq(f), f)
            .map_err(|e| e.to_string())?;
        clone_rules.push(SeccompRule::new(vec![cond]).map_err(|e| e.to_string())?);
    }
    rules.insert(libc::SYS_clone, clone_rules);
    let deny = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )
    .map_err(|e| e.to_string())?;
    let clone3 = SeccompFilter::new(
        [(libc::SYS_clone3, Vec::new())].into_iter().collect(),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        arch,
    )
    .map_err(|e| e.to_string())?;
    for f in [deny, clone3] {
        let prog: BpfProgram = f.try_into().map_err(|e| format!("{e}"))?;
        seccompiler::apply_filter(&prog).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// [`ENV_PROBE`]: what the confined engine may do, logged.
fn probe(path: &str) {
    let open = match std::fs::File::open(path) {
        Ok(_) => "opened".to_string(),
        Err(e) => crate::sys::compat::strerror(&e),
    };
    let exec = match std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg("exit 0")
        .stdin(std::process::Stdio::null())
        .status()
    {
        Ok(s) => format!("ran ({s})"),
        Err(e) => crate::sys::compat::strerror(&e),
    };
    log::info(&format!(
        "info: smtpd: sandbox probe: open {path}: {open}; exec /bin/sh: {exec}"
    ));
}

#[cfg(test)]
mod tests {
    use super::includes;

    #[test]
    fn include_items_of_alias_values() {
        let got: Vec<String> =
            includes("bob, :include:/etc/mail/staff , \":INCLUDE:/srv/lists/x\",|cmd").collect();
        assert_eq!(got, vec!["/etc/mail/staff", "/srv/lists/x"]);
        assert_eq!(includes("é:include:x,:inc").count(), 0);
    }
}
