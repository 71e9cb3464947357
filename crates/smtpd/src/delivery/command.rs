//! Running a command as OpenSMTPD's forkmda() does: `/bin/sh -c CMD` with the mda environment,
//! in the user's home (else `/`), in a new session, as whoever runs this (as root, a delivery
//! worker already switched to the user; see `process.rs`), with the
//! delivery headers and the message on stdin and stdout+stderr captured to an unlinked file in
//! /tmp, whose last line becomes the error text. A 5-minute alarm bounds it (SIGALRM is reported
//! as `terminated; timeout`).

use std::ffi::CString;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::process::CommandExt;
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::time::Duration;

use super::ExitKind;

pub struct Run {
    pub command: String,
    pub env: Vec<(String, String)>,
    pub home: String,
    pub timeout: Duration,
}

pub struct Finished {
    pub exit: ExitKind,
    /// The last line of the output (without its newline), if there was any output.
    pub last_line: Option<Vec<u8>>,
    /// Whether all of the message went into the pipe.
    pub fully_written: bool,
}

/// An unlinked temporary file in /tmp (OpenSMTPD's `mkstemp` + `unlink` of
/// `/tmp/smtpd.out.XXXXXXXXXXX`; tempfile's has no name at all, where the kernel allows).
pub fn capture_file() -> std::io::Result<File> {
    tempfile::tempfile_in("/tmp")
}

/// The last line of `f` as mda_getlastline() finds it (reads at most the last 64 KiB).
pub fn last_line(f: &mut File) -> Option<Vec<u8>> {
    let len = f.seek(SeekFrom::End(0)).ok()?;
    let from = len.saturating_sub(64 * 1024);
    f.seek(SeekFrom::Start(from)).ok()?;
    let mut data = Vec::new();
    f.read_to_end(&mut data).ok()?;
    if data.is_empty() {
        return None;
    }
    if data.last() == Some(&b'\n') {
        data.pop();
    }
    let start = data.iter().rposition(|&c| c == b'\n').map_or(0, |p| p + 1);
    let mut line = data[start..].to_vec();
    if let Some(z) = line.iter().position(|&c| c == 0) {
        line.truncate(z);
    }
    Some(line)
}

fn cstr(s: &str) -> CString {
    CString::new(s.replace('\0', "")).unwrap_or_default()
}

/// Runs the command (blocking: call it from a blocking thread); the delivery headers, then the
/// queued message, go to its stdin from a second thread while we wait for it.
pub fn run(r: &Run, prefix: Vec<u8>, mut message: File) -> std::io::Result<Finished> {
    let mut out = capture_file()?;
    let mut cmd = std::process::Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(&r.command)
        .env_clear()
        .envs(r.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::from(out.try_clone()?))
        .stderr(Stdio::from(out.try_clone()?));
    let home = cstr(&r.home);
    let alarm = r.timeout.as_secs().clamp(1, u32::MAX as u64) as libc::c_uint;
    // SAFETY: the closure runs between fork and exec and only makes raw system calls.
    unsafe {
        cmd.pre_exec(move || {
            if libc::chdir(home.as_ptr()) == -1 && libc::chdir(c"/".as_ptr()) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            // The delivery process and its workers ignore the stop signals (they leave when
            // the daemon does); the command must not inherit that.
            for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
                libc::signal(sig, libc::SIG_DFL);
            }
            libc::setsid();
            libc::alarm(alarm);
            Ok(())
        });
    }
    let mut child = cmd.spawn()?;
    let stdin = child.stdin.take();
    let (fully_written, status) = std::thread::scope(|s| {
        let writer = s.spawn(move || {
            let Some(mut w) = stdin else {
                return false;
            };
            w.write_all(&prefix).is_ok() && std::io::copy(&mut message, &mut w).is_ok()
        });
        let status = child.wait();
        (writer.join().unwrap_or(false), status)
    });
    let status = status?;
    let exit = match (status.code(), status.signal()) {
        (Some(c), _) => ExitKind::Exited(c),
        (None, Some(s)) => ExitKind::Signaled(s),
        _ => ExitKind::Exited(1),
    };
    Ok(Finished {
        exit,
        last_line: last_line(&mut out),
        fully_written,
    })
}
