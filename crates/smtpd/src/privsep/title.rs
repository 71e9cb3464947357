//! Process titles as OpenSMTPD's `setproctitle()` gives its children (`smtpd: engine` here), so
//! that `ps` tells the processes apart.
//!
//! Two things name a process on Linux: `comm` (15 bytes, `ps -o comm`, `top`), set with
//! `PR_SET_NAME`; and the command line (`ps -ef`, `/proc/PID/cmdline`), which the kernel reads
//! from the memory where `argv` was laid out at exec. A forked process has its parent's argv,
//! so the title is written over it. No crate is used: the maintained ones are for other
//! systems or do much more (moving `environ` aside to make room); this is twenty lines, and a
//! title longer than the original command line is cut, which ours never are in practice
//! (`/usr/sbin/smtpd` is 15 bytes; `smtpd: engine` 13).

/// Sets `comm` and the command line to `title`.
pub fn set(title: &str) {
    if let Ok(c) = std::ffi::CString::new(title) {
        let _ = nix::sys::prctl::set_name(&c);
    }
    let Some((start, end)) = argv_area() else {
        return;
    };
    let len = end.saturating_sub(start);
    if len == 0 {
        return;
    }
    let bytes = title.as_bytes();
    let n = bytes.len().min(len - 1);
    // SAFETY: [arg_start, arg_end) is where the kernel copied argv's strings at exec, on this
    // process's stack, which is mapped and writable for the life of the process; nothing in this
    // program reads argv after start-up (std reads it lazily only through env::args, which the
    // daemon no longer calls once it serves). Writes stay inside the range.
    unsafe {
        let p = start as *mut u8;
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), p, n);
        std::ptr::write_bytes(p.add(n), 0, len - n);
    }
}

/// `arg_start` and `arg_end` of `/proc/self/stat` (fields 48 and 49).
fn argv_area() -> Option<(usize, usize)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count from after it.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let start = fields.get(48 - 3)?.parse().ok()?;
    let end = fields.get(49 - 3)?.parse().ok()?;
    (start != 0 && end > start).then_some((start, end))
}
