//! What /proc says of processes: tests check who started whom, as which user, and that a process
//! is gone. Read without root; a process that ends mid-read is just not there.

#![allow(dead_code)]

/// A process as /proc shows it.
#[derive(Debug, Clone)]
pub struct Proc {
    pub pid: u32,
    pub ppid: u32,
    pub comm: String,
    /// The arguments, NULs turned to spaces.
    pub cmdline: String,
    pub uid: Vec<u32>,
    pub gid: Vec<u32>,
    pub groups: Vec<u32>,
    pub cap_eff: String,
    pub cap_prm: String,
    pub no_new_privs: String,
}

/// None once the process is gone (reaped).
pub fn read_proc(pid: u32) -> Option<Proc> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> String {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    };
    let ids = |name: &str| -> Vec<u32> {
        field(name)
            .split_whitespace()
            .filter_map(|v| v.parse().ok())
            .collect()
    };
    Some(Proc {
        pid,
        ppid: field("PPid:").parse().ok()?,
        comm: std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .ok()?
            .trim()
            .to_string(),
        cmdline: cmdline(pid)?,
        uid: ids("Uid:"),
        gid: ids("Gid:"),
        groups: ids("Groups:"),
        cap_eff: field("CapEff:"),
        cap_prm: field("CapPrm:"),
        no_new_privs: field("NoNewPrivs:"),
    })
}

/// Every pid in /proc now.
pub fn pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()))
        .collect()
}

pub fn children(of: u32) -> Vec<Proc> {
    pids()
        .into_iter()
        .filter_map(read_proc)
        .filter(|p| p.ppid == of)
        .collect()
}

/// The process's parent, from /proc/PID/stat (what follows the command's closing parenthesis,
/// which may itself hold spaces and parentheses).
pub fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ")
        .and_then(|(_, rest)| rest.split(' ').nth(1))
        .and_then(|p| p.parse::<u32>().ok())
}

/// The arguments, NULs turned to spaces; None once the process is gone.
pub fn cmdline(pid: u32) -> Option<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(
        String::from_utf8_lossy(&raw)
            .trim_end_matches('\0')
            .replace('\0', " "),
    )
}

/// `argv[0]` (a table backend's is its table's name), as bytes.
pub fn arg0(pid: u32) -> Vec<u8> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    raw.split(|&b| b == 0).next().unwrap_or_default().to_vec()
}

/// The running processes of a program: those whose command line holds that text (its path).
pub fn running(program: &str) -> Vec<u32> {
    pids()
        .into_iter()
        .filter(|&p| cmdline(p).is_some_and(|c| c.contains(program)))
        .collect()
}

/// SIGKILL to each of them: what a failed test left behind (a child orphaned by a daemon killed
/// with SIGKILL may hang for ever). Needs the right to signal them.
pub fn kill_running(program: &str) {
    for pid in running(program) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}
