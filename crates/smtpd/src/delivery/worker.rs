//! A delivery worker (`smtpd: worker`): forked by the delivery process for one set of
//! credentials, it drops to them for good and then runs jobs of that user one after the other
//! until its socket closes.

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};

use nix::sys::socket::MsgFlags;
use nix::unistd::Pid;

use super::job::{self, Finished, Job, Packet};
use super::{strerror, AgentError};

const EX_SOFTWARE: i32 = 70;
const EX_TEMPFAIL: i32 = 75;

/// Runs as the worker and returns its exit status. `first` and `message` are the job it was
/// started for; `parent` is the delivery process.
pub fn run(sock: OwnedFd, first: Job, message: OwnedFd, parent: Pid) -> i32 {
    let _ = nix::sys::prctl::set_name(c"smtpd: worker");
    set_title(b"smtpd: worker");
    let creds = first.creds.clone();
    if let Err(e) = creds.drop_raw() {
        let text = format!("smtpd: forkmda: cannot drop privileges: {}", strerror(&e));
        answer(&sock, Finished::failed(AgentError::new(1, text)));
        return 1;
    }
    // Die with the delivery process: nobody would report this worker's deliveries, and the
    // daemon retries them. Set after the credential change, which clears it; a delivery
    // process that died before this line is seen as a new parent.
    if nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL).is_err()
        || nix::unistd::getppid() != parent
    {
        return 1;
    }
    let mut next = Some((first, message));
    loop {
        let (job, message) = match next.take() {
            Some(j) => j,
            None => match job::recv(sock.as_fd(), MsgFlags::empty()) {
                Ok(Packet::Data(data, Some(fd))) => match Job::decode(&data) {
                    Ok(j) => (j, fd),
                    Err(e) => {
                        let text = format!("bad delivery request: {e}");
                        answer(&sock, Finished::failed(AgentError::new(EX_SOFTWARE, text)));
                        continue;
                    }
                },
                Ok(Packet::Data(_, None)) => {
                    let text = "Cannot get message fd".to_string();
                    answer(&sock, Finished::failed(AgentError::new(EX_TEMPFAIL, text)));
                    continue;
                }
                // The delivery process let us go, or is gone.
                Ok(Packet::Eof) | Err(_) => return 0,
            },
        };
        if job.creds != creds {
            // The delivery process only sends a worker its own user's jobs; never write as
            // someone else.
            let text = "delivery worker of other credentials".to_string();
            answer(&sock, Finished::failed(AgentError::new(EX_SOFTWARE, text)));
            continue;
        }
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            job.run(File::from(message))
        }));
        match r {
            Ok(result) => {
                if !answer(&sock, result) {
                    return 1;
                }
            }
            // Reported as a forked agent's panic was; then leave, the state may be broken.
            Err(_) => {
                answer(
                    &sock,
                    Finished::failed(AgentError::new(EX_SOFTWARE, "internal error".into())),
                );
                return EX_SOFTWARE;
            }
        }
    }
}

/// Sends a job's result; `false` if the delivery process is gone.
fn answer(sock: &OwnedFd, mut f: Finished) -> bool {
    f.text = f.text.map(job::cut_text);
    job::send(sock.as_fd(), &f.encode(), None, MsgFlags::empty()).is_ok()
}

/// What `ps` shows as the command line: our argv, rewritten in place as setproctitle(3) does
/// (`comm`, set above, is only what `top` and `ps -e` show). The kernel tells where it is
/// (arg_start and arg_end, fields 48 and 49 of /proc/self/stat); it holds the delivery
/// process's `smtpd: delivery\0`, which a shorter title fits.
fn set_title(title: &[u8]) {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return;
    };
    // After the `(comm)`, fields from the third (state) on.
    let Some(close) = stat.rfind(')') else {
        return;
    };
    let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<usize>().ok());
    let (Some(start), Some(end)) = (field(48), field(49)) else {
        return;
    };
    if start == 0 || end <= start || title.len() >= end - start {
        return;
    }
    // SAFETY: [start, end) is this process's argument area, in its writable stack mapping,
    // which no Rust reference points into; we write only inside it and leave it NUL-filled.
    unsafe {
        let p = start as *mut u8;
        std::ptr::write_bytes(p, 0, end - start);
        std::ptr::copy_nonoverlapping(title.as_ptr(), p, title.len());
    }
}
